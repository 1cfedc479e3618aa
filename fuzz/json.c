/* json.c - libFuzzer target for src/json.  Each input goes through every
 * layer with cross-checks that abort on disagreement: json_validate vs the
 * DOM, DOM -> writer -> DOM equality, typed-array reads for several dtypes
 * (shape consistent, write -> read back bit-exact), tight limits, the
 * number parser against strtod/strtof, and shortest float formatting of
 * the input's bytes taken as float bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz.h"
#include "base/alloc.h"
#include "json/json.h"

#define CHECK(cond)          \
    do {                     \
        if (!(cond))         \
            abort();         \
    } while (0)

static void check_dom(const char *text, size_t size, st_status validated)
{
    st_arena arena;
    st_arena_init(&arena, 4096);
    json_value *root = NULL, *again = NULL;
    st_error err = { 0 };
    st_status d = json_parse(text, size, NULL, &arena, &root, &err);
    CHECK((d == ST_OK) == (validated == ST_OK));
    if (d == ST_OK) {
        st_buf out = { 0 }, out2 = { 0 };
        json_writer w;
        json_writer_init(&w, &out, NULL);
        CHECK(json_write_value(&w, root) == ST_OK && json_writer_finish(&w) == ST_OK);
        CHECK(json_parse(out.data, out.len, NULL, &arena, &again, NULL) == ST_OK);
        CHECK(json_value_equal(root, again));
        json_writer_init(&w, &out2, NULL);
        CHECK(json_write_value(&w, again) == ST_OK);
        CHECK(out.len == out2.len && memcmp(out.data, out2.data, out.len) == 0);
        st_buf_free(&out);
        st_buf_free(&out2);
    }
    st_arena_free(&arena);
}

static void check_typed(const char *text, size_t size, st_dtype t, st_status validated)
{
    json_reader r;
    st_error err = { 0 };
    st_buf out = { 0 }, back = { 0 }, written = { 0 };
    size_t shape[8], rank = 0, es = st_dtype_size(t);
    json_reader_init(&r, text, size, NULL, NULL, &err);
    st_status s = json_read_numbers(&r, t, &out, shape, 8, &rank);
    if (s == ST_OK)
        s = json_reader_finish(&r);
    if (s == ST_OK) {
        CHECK(validated == ST_OK);
        size_t count = 1;
        for (size_t i = 0; i < rank; i++)
            count *= shape[i];
        CHECK(out.len == count * es);
        json_writer w;
        json_writer_init(&w, &written, NULL);
        CHECK(json_write_numbers(&w, t, out.data, shape, rank, true) == ST_OK);
        CHECK(json_writer_finish(&w) == ST_OK);
        size_t shape2[8], rank2 = 0;
        json_reader_init(&r, written.data, written.len, NULL, NULL, NULL);
        CHECK(json_read_numbers(&r, t, &back, shape2, 8, &rank2) == ST_OK);
        CHECK(json_reader_finish(&r) == ST_OK);
        CHECK(rank2 == rank && back.len == out.len);
        CHECK(memcmp(shape, shape2, rank * sizeof shape[0]) == 0);
        CHECK(out.len == 0 || memcmp(out.data, back.data, out.len) == 0);
    } else {
        CHECK(err.code == s && err.msg[0] != '\0');
    }
    st_buf_free(&out);
    st_buf_free(&back);
    st_buf_free(&written);
}

/* The input as one number: ours must agree with the C library bit for bit
 * whenever ours accepts it (strtod accepts more syntax than JSON). */
static void check_number(const char *text, size_t size)
{
    if (size == 0 || size > 4096)
        return;
    double d;
    float f;
    uint16_t h;
    char *z = malloc(size + 1);
    CHECK(z != NULL);
    memcpy(z, text, size);
    z[size] = '\0';
    st_status sd = json_parse_double(st_str_make(text, size), &d);
    st_status sf = json_parse_float(st_str_make(text, size), &f);
    st_status sh = json_parse_half(st_str_make(text, size), &h);
    if (sd == ST_OK) {
        double ref = strtod(z, NULL);
        CHECK(memcmp(&ref, &d, sizeof d) == 0);
        CHECK(sf == ST_OK || sf == ST_EINVAL);
    }
    if (sf == ST_OK) {
        float ref = strtof(z, NULL);
        CHECK(memcmp(&ref, &f, sizeof f) == 0);
    }
    if (sh == ST_OK) {
        /* The double is correctly rounded; rounding it again to half can
         * only differ when it sits on a half midpoint, where both
         * neighbours are equally near it. */
        double ref = strtod(z, NULL);
        float rf = (float)ref;
        if ((double)rf == ref) {
            double a = st_half_to_float(st_float_to_half(rf));
            CHECK(fabs(st_half_to_float(h) - ref) <= fabs(a - ref));
        }
    }
    free(z);
}

static void check_float_bits(const uint8_t *data, size_t size)
{
    char buf[JSON_NUMBER_MAX_CHARS];
    if (size >= 8) {
        double v, back;
        memcpy(&v, data, 8);
        size_t n = json_format_double(v, buf);
        if (isfinite(v)) {
            CHECK(n > 0 && json_parse_double(st_str_make(buf, n), &back) == ST_OK);
            CHECK(memcmp(&v, &back, 8) == 0);
        } else {
            CHECK(n == 0);
        }
    }
    if (size >= 4) {
        float v, back;
        memcpy(&v, data + size - 4, 4);
        size_t n = json_format_float(v, buf);
        if (isfinite(v)) {
            CHECK(n > 0 && json_parse_float(st_str_make(buf, n), &back) == ST_OK);
            CHECK(memcmp(&v, &back, 4) == 0);
        }
    }
    if (size >= 2) {
        uint16_t h, back;
        memcpy(&h, data, 2);
        size_t n = json_format_half(h, buf);
        if ((h & 0x7c00) != 0x7c00) {
            CHECK(n > 0 && json_parse_half(st_str_make(buf, n), &back) == ST_OK);
            CHECK(h == back);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    st_error err = { 0 };
    st_status v = json_validate(text, size, NULL, &err);
    CHECK(v == ST_OK || (err.code == v && strstr(err.msg, "byte offset") != NULL));

    /* Tight limits never crash, and never accept what the defaults reject. */
    json_limits tight = { .max_depth = 4, .max_input_bytes = 512, .max_elements = 40 };
    st_status vt = json_validate(text, size, &tight, NULL);
    CHECK(vt != ST_OK || v == ST_OK);

    check_dom(text, size, v);
    static const st_dtype types[] = { ST_DT_FLOAT32, ST_DT_FLOAT64, ST_DT_FLOAT16, ST_DT_INT64,
                                      ST_DT_UINT8, ST_DT_INT16, ST_DT_UINT64, ST_DT_BOOL };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        check_typed(text, size, types[i], v);
    check_number(text, size);
    check_float_bits(data, size);
    return 0;
}
