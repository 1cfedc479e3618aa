/* test_npy.c - unit tests of src/npy: round trips through the writer and
 * reader, numpy-made fixtures (tests/data/npy, from
 * tests/fixtures/make_npy.py), every rejection with its message, and
 * allocation-failure injection. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"

#include "base/alloc.h"
#include "npy/npy.h"
#include "npy/npy_int.h"

#define FIXTURE_DIR "tests/data/npy"

static const st_dtype all_dtypes[] = {
    ST_DT_BOOL,   ST_DT_INT8,   ST_DT_UINT8,  ST_DT_INT16,   ST_DT_UINT16,  ST_DT_INT32,
    ST_DT_UINT32, ST_DT_INT64,  ST_DT_UINT64, ST_DT_FLOAT16, ST_DT_FLOAT32, ST_DT_FLOAT64,
};
#define DTYPE_COUNT (sizeof all_dtypes / sizeof all_dtypes[0])

/* ---- helpers ------------------------------------------------------------- */

/* Fails the test with both strings when `msg` lacks `fragment`. */
static void expect_msg(const st_error *err, const char *fragment)
{
    if (!strstr(err->msg, fragment)) {
        print_error("message \"%s\"\n   lacks \"%s\"\n", err->msg, fragment);
        fail();
    }
    /* Messages are one line: they end up in logs and HTTP bodies. */
    assert_null(strchr(err->msg, '\n'));
}

/* A .npy image with a hand-written header dict (no alignment padding: the
 * reader accepts any), followed by `data_bytes` bytes of 0xab. */
static void make_image(st_buf *b, unsigned major, const char *dict, size_t data_bytes)
{
    size_t dict_len = strlen(dict), header_len = dict_len + 1;
    b->len = 0;
    assert_int_equal(st_buf_append(b, "\x93NUMPY", 6), ST_OK);
    assert_int_equal(st_buf_append_byte(b, (uint8_t)major), ST_OK);
    assert_int_equal(st_buf_append_byte(b, 0), ST_OK);
    size_t field = major == 1 ? 2 : 4;
    for (size_t i = 0; i < field; i++)
        assert_int_equal(st_buf_append_byte(b, (uint8_t)(header_len >> (8 * i))), ST_OK);
    assert_int_equal(st_buf_append(b, dict, dict_len), ST_OK);
    assert_int_equal(st_buf_append_byte(b, '\n'), ST_OK);
    for (size_t i = 0; i < data_bytes; i++)
        assert_int_equal(st_buf_append_byte(b, 0xab), ST_OK);
}

/* Parses `b` and expects failure with `status` and a message fragment. */
static void expect_reject(const st_buf *b, const npy_options *opts, st_status status,
                          const char *fragment)
{
    npy_array a;
    st_error err = { 0 };
    memset(&a, 0x5a, sizeof a);
    st_status s = npy_parse(b->data, b->len, opts, &a, &err);
    if (s != status)
        print_error("got %s (%s), want %s\n", st_status_name(s), err.msg,
                    st_status_name(status));
    assert_int_equal(s, status);
    expect_msg(&err, fragment);
    /* A failed parse leaves nothing dangling for a careless caller. */
    assert_null(a.data);
    assert_int_equal(a.rank, 0);
    assert_int_equal(a.element_count, 0);
}

/* Header dict text + data bytes -> expect_reject, in one call. */
static void reject_dict(unsigned major, const char *dict, size_t data_bytes,
                        st_status status, const char *fragment)
{
    st_buf b = { 0 };
    make_image(&b, major, dict, data_bytes);
    expect_reject(&b, NULL, status, fragment);
    st_buf_free(&b);
}

/* Parses a hand-written header that must be accepted. */
static void accept_dict(unsigned major, const char *dict, size_t data_bytes,
                        st_dtype dtype, size_t rank, const size_t *shape)
{
    st_buf b = { 0 };
    npy_array a;
    st_error err = { 0 };
    make_image(&b, major, dict, data_bytes);
    st_status s = npy_parse(b.data, b.len, NULL, &a, &err);
    if (s != ST_OK)
        print_error("rejected %s: %s\n", dict, err.msg);
    assert_int_equal(s, ST_OK);
    assert_int_equal(a.dtype, dtype);
    assert_int_equal(a.rank, rank);
    for (size_t i = 0; i < rank; i++)
        assert_int_equal(a.shape[i], shape[i]);
    assert_int_equal(a.data_bytes, data_bytes);
    assert_ptr_equal(a.data, b.data + b.len - data_bytes);
    st_buf_free(&b);
}

static void read_whole_file(const char *path, st_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        print_error("cannot open %s (run the tests from the repository root)\n", path);
    assert_non_null(f);
    uint8_t chunk[4096];
    size_t n;
    out->len = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        assert_int_equal(st_buf_append(out, chunk, n), ST_OK);
    fclose(f);
}

/* Deterministic element bytes: a counter pattern that differs per byte. */
static void fill_pattern(uint8_t *p, size_t n, st_dtype dtype)
{
    for (size_t i = 0; i < n; i++)
        p[i] = dtype == ST_DT_BOOL ? (uint8_t)(i % 3 == 0) : (uint8_t)(i * 37 + 11);
}

static char *make_temp_dir(void)
{
    const char *base = getenv("TMPDIR");
    char *dir = malloc(4096);
    assert_non_null(dir);
    snprintf(dir, 4096, "%s/test_npy.XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(dir));
    return dir;
}

/* Number of entries in `dir` (for "no temporary file left behind"). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void remove_temp_dir(char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char path[4200];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
    free(dir);
}

/* ---- dtype mapping ------------------------------------------------------- */

static void test_descr_mapping(void **state)
{
    (void)state;
    static const struct {
        const char *descr;
        st_dtype dtype;
        bool is_big_endian;
    } good[] = {
        { "|b1", ST_DT_BOOL, false },    { "<b1", ST_DT_BOOL, false },
        { "|i1", ST_DT_INT8, false },    { "|u1", ST_DT_UINT8, false },
        { ">u1", ST_DT_UINT8, false },   { "<i2", ST_DT_INT16, false },
        { "<u2", ST_DT_UINT16, false },  { "<i4", ST_DT_INT32, false },
        { "<u4", ST_DT_UINT32, false },  { "<i8", ST_DT_INT64, false },
        { "<u8", ST_DT_UINT64, false },  { "<f2", ST_DT_FLOAT16, false },
        { "<f4", ST_DT_FLOAT32, false }, { "<f8", ST_DT_FLOAT64, false },
        { "=f4", ST_DT_FLOAT32, false }, { "|f4", ST_DT_FLOAT32, false },
        { "f8", ST_DT_FLOAT64, false },  { ">f8", ST_DT_FLOAT64, true },
        { ">i2", ST_DT_INT16, true },    { ">u8", ST_DT_UINT64, true },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        st_dtype t = ST_DT_UNDEFINED;
        bool big = !good[i].is_big_endian;
        st_error err = { 0 };
        st_status s = npy_dtype_from_descr(st_str_c(good[i].descr), &t, &big, &err);
        if (s != ST_OK)
            print_error("%s: %s\n", good[i].descr, err.msg);
        assert_int_equal(s, ST_OK);
        assert_int_equal(t, good[i].dtype);
        assert_int_equal(big, good[i].is_big_endian);
    }
    /* writer side: every dtype has numpy's own descr and maps back to itself */
    for (size_t i = 0; i < DTYPE_COUNT; i++) {
        const char *d = npy_descr_from_dtype(all_dtypes[i]);
        assert_non_null(d);
        st_dtype t;
        assert_int_equal(npy_dtype_from_descr(st_str_c(d), &t, NULL, NULL), ST_OK);
        assert_int_equal(t, all_dtypes[i]);
    }
    assert_string_equal(npy_descr_from_dtype(ST_DT_FLOAT32), "<f4");
    assert_string_equal(npy_descr_from_dtype(ST_DT_BOOL), "|b1");
    assert_string_equal(npy_descr_from_dtype(ST_DT_UINT8), "|u1");
    assert_null(npy_descr_from_dtype(ST_DT_STRING));
    assert_null(npy_descr_from_dtype(ST_DT_UNDEFINED));
    assert_null(npy_descr_from_dtype((st_dtype)99));

    static const struct {
        const char *descr;
        st_status status;
        const char *fragment;
    } bad[] = {
        { "|O", ST_EUNSUPPORTED, "object arrays ('|O') are not supported" },
        { "<U5", ST_EUNSUPPORTED, "dtype '<U5' (unicode strings) is not supported" },
        { "|S3", ST_EUNSUPPORTED, "dtype '|S3' (byte strings)" },
        { "|V8", ST_EUNSUPPORTED, "raw void" },
        { "<c16", ST_EUNSUPPORTED, "complex" },
        { "<M8[ns]", ST_EUNSUPPORTED, "datetime64" },
        { "<m8[s]", ST_EUNSUPPORTED, "timedelta64" },
        { "<f16", ST_EUNSUPPORTED, "dtype '<f16' (16-byte float) is not supported" },
        { "<i3", ST_EUNSUPPORTED, "3-byte integer" },
        { "|b2", ST_EUNSUPPORTED, "2-byte bool" },
        { "", ST_ECORRUPT, "names no type" },
        { "<", ST_ECORRUPT, "names no type" },
        { "float32", ST_ECORRUPT, "dtype descr 'float32' is not one numpy writes" },
        { "<f", ST_ECORRUPT, "is not one numpy writes" },
        { "<f4x", ST_ECORRUPT, "is not one numpy writes" },
        { "<f0004", ST_ECORRUPT, "is not one numpy writes" },
        { "<x4", ST_ECORRUPT, "is not one numpy writes" },
        { "\x01\xff", ST_ECORRUPT, "'\\x01\\xff'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st_dtype t;
        st_error err = { 0 };
        st_status s = npy_dtype_from_descr(st_str_c(bad[i].descr), &t, NULL, &err);
        assert_int_equal(s, bad[i].status);
        expect_msg(&err, bad[i].fragment);
    }
}

/* ---- round trips ------------------------------------------------------- */

static void roundtrip(st_dtype dtype, const size_t *shape, size_t rank)
{
    size_t count = 1;
    for (size_t i = 0; i < rank; i++)
        count *= shape[i];
    size_t bytes = count * st_dtype_size(dtype);
    uint8_t *data = malloc(bytes ? bytes : 1);
    assert_non_null(data);
    fill_pattern(data, bytes, dtype);

    st_buf b = { 0 };
    st_error err = { 0 };
    assert_int_equal(npy_write(&b, dtype, shape, rank, data, &err), ST_OK);
    npy_array a;
    st_status s = npy_parse(b.data, b.len, NULL, &a, &err);
    if (s != ST_OK)
        print_error("%s: %s\n", st_dtype_name(dtype), err.msg);
    assert_int_equal(s, ST_OK);
    assert_int_equal(a.dtype, dtype);
    assert_int_equal(a.rank, rank);
    for (size_t i = 0; i < rank; i++)
        assert_int_equal(a.shape[i], shape[i]);
    assert_int_equal(a.element_count, count);
    assert_int_equal(a.item_bytes, st_dtype_size(dtype));
    assert_int_equal(a.data_bytes, bytes);
    assert_int_equal(a.version_major, 1);
    assert_int_equal(a.version_minor, 0);
    assert_false(a.is_big_endian);
    /* numpy's layout: data starts on a 64-byte boundary, after a '\n' */
    assert_int_equal(a.data_offset % 64, 0);
    assert_int_equal(b.data[a.data_offset - 1], '\n');
    assert_int_equal(b.len, a.data_offset + bytes);
    assert_ptr_equal(a.data, b.data + a.data_offset);
    if (bytes)
        assert_memory_equal(a.data, data, bytes);
    st_buf_free(&b);
    free(data);
}

static void test_roundtrip_every_dtype(void **state)
{
    (void)state;
    static const size_t shape[2] = { 2, 3 };
    for (size_t i = 0; i < DTYPE_COUNT; i++)
        roundtrip(all_dtypes[i], shape, 2);
}

static void test_roundtrip_shapes(void **state)
{
    (void)state;
    static const size_t one_d[1] = { 7 }, empty_1d[1] = { 0 }, empty_2d[2] = { 0, 3 },
                        trailing_zero[3] = { 4, 5, 0 }, four_d[4] = { 2, 1, 3, 2 };
    size_t max_rank[NPY_MAX_RANK];
    for (size_t i = 0; i < NPY_MAX_RANK; i++)
        max_rank[i] = i % 5 == 0 ? 2 : 1;
    for (size_t i = 0; i < DTYPE_COUNT; i++) {
        roundtrip(all_dtypes[i], NULL, 0); /* 0-d: one element */
        roundtrip(all_dtypes[i], one_d, 1);
        roundtrip(all_dtypes[i], empty_1d, 1);
        roundtrip(all_dtypes[i], empty_2d, 2);
        roundtrip(all_dtypes[i], trailing_zero, 3);
        roundtrip(all_dtypes[i], four_d, 4);
        roundtrip(all_dtypes[i], max_rank, NPY_MAX_RANK);
    }
}

static void test_writer_header_bytes(void **state)
{
    (void)state;
    /* numpy's bytes for np.save(np.zeros((2, 3), '<f4')): preamble, dict,
     * spaces, '\n' at byte 127 (the fixtures check the rest of the cases
     * byte for byte against real numpy output). */
    static const char prefix[] = "\x93NUMPY\x01\x00\x76\x00";
    static const char dict[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    static const size_t shape[2] = { 2, 3 };
    st_buf b = { 0 };
    assert_int_equal(npy_write_header(&b, ST_DT_FLOAT32, shape, 2, 0, NULL), ST_OK);
    assert_int_equal(b.len, 128);
    assert_memory_equal(b.data, prefix, 10);
    assert_memory_equal(b.data + 10, dict, sizeof dict - 1);
    for (size_t i = 10 + sizeof dict - 1; i < 127; i++)
        assert_int_equal(b.data[i], ' ');
    assert_int_equal(b.data[127], '\n');

    /* A 0-d header gets no growth padding; a 20-digit first axis gets one
     * space of it, and numpy still aligns to 64. */
    b.len = 0;
    assert_int_equal(npy_write_header(&b, ST_DT_INT64, NULL, 0, 0, NULL), ST_OK);
    assert_int_equal(b.len, 128);
    assert_non_null(memmem(b.data, b.len, "'shape': (), }     ", 19));
    static const size_t wide[2] = { 18446744073709551615u, 0 };
    b.len = 0;
    assert_int_equal(npy_write_header(&b, ST_DT_UINT8, wide, 2, 0, NULL), ST_OK);
    assert_int_equal(b.len % 64, 0);
    assert_non_null(memmem(b.data, b.len, "(18446744073709551615, 0), } ", 29));
    /* and it reads back when the caller lifts the per-dimension limit */
    npy_options big = { .max_elements = SIZE_MAX };
    npy_array a;
    st_error err = { 0 };
    assert_int_equal(npy_parse(b.data, b.len, &big, &a, &err), ST_OK);
    assert_int_equal(a.shape[0], 18446744073709551615u);
    assert_int_equal(a.element_count, 0);
    assert_int_equal(npy_parse(b.data, b.len, NULL, &a, &err), ST_ELIMIT);
    expect_msg(&err, "dimension 18446744073709551615 of shape (18446744073709551615, 0) "
                     "exceeds the limit");
    st_buf_free(&b);
}

static void test_header_versions(void **state)
{
    (void)state;
    static const size_t shape[1] = { 3 };
    static const float v[3] = { 1.5f, -0.25f, 100.0f };
    for (unsigned major = 1; major <= 3; major++) {
        st_buf b = { 0 };
        assert_int_equal(npy_write_header(&b, ST_DT_FLOAT32, shape, 1, major, NULL), ST_OK);
        assert_int_equal(b.data[6], major);
        assert_int_equal(b.len % 64, 0);
        assert_int_equal(st_buf_append(&b, v, sizeof v), ST_OK);
        npy_array a;
        st_error err = { 0 };
        assert_int_equal(npy_parse(b.data, b.len, NULL, &a, &err), ST_OK);
        assert_int_equal(a.version_major, major);
        assert_int_equal(a.element_count, 3);
        assert_true(npy_get_double(&a, 1) == -0.25);
        st_buf_free(&b);
    }
    st_buf b = { 0 };
    st_error err = { 0 };
    assert_int_equal(npy_write_header(&b, ST_DT_FLOAT32, shape, 1, 4, &err), ST_EINVAL);
    expect_msg(&err, "format version 4.0 does not exist");
    assert_int_equal(b.len, 0);
    st_buf_free(&b);
}

/* The 2.0 switch only triggers for headers over 64 KiB, which no numeric
 * array produces; drive it through the internal wrapper. */
static void test_header_auto_v2(void **state)
{
    (void)state;
    static const char head[] = "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }";
    size_t dict_len = 70000;
    char *dict = malloc(dict_len);
    assert_non_null(dict);
    memset(dict, ' ', dict_len);
    memcpy(dict, head, sizeof head - 1);

    st_buf b = { 0 };
    st_error err = { 0 };
    assert_int_equal(npy_int_wrap_header(&b, dict, dict_len, 0, &err), ST_OK);
    assert_int_equal(b.data[6], 2);
    assert_int_equal(b.len % 64, 0);
    assert_int_equal(st_buf_append(&b, "\x01\x00\xff\xff", 4), ST_OK);
    npy_array a;
    assert_int_equal(npy_parse(b.data, b.len, NULL, &a, &err), ST_OK);
    assert_int_equal(a.version_major, 2);
    assert_true(npy_get_double(&a, 1) == -1.0);

    b.len = 0;
    assert_int_equal(npy_int_wrap_header(&b, dict, dict_len, 1, &err), ST_ELIMIT);
    expect_msg(&err, "does not fit format 1.0");
    assert_int_equal(b.len, 0);

    /* Exactly aligned input still gets a full 64 bytes of padding, as in
     * numpy (padlen = 64 - 0). */
    assert_int_equal(npy_int_wrap_header(&b, dict, 64 - 11, 1, &err), ST_OK);
    assert_int_equal(b.len, 128);
    st_buf_free(&b);
    free(dict);
}

/* ---- numpy fixtures -------------------------------------------------------- */

static void check_values(const npy_array *a, char *values, const char *name)
{
    char *save = NULL;
    size_t i = 0;
    for (char *tok = strtok_r(values, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), i++) {
        assert_true(i < a->element_count);
        uint8_t raw[8];
        memcpy(raw, a->data + i * a->item_bytes, a->item_bytes);
        if (a->is_big_endian)
            npy_byteswap(raw, 1, a->item_bytes);
        if (a->dtype == ST_DT_INT64) {
            int64_t got;
            memcpy(&got, raw, 8);
            assert_int_equal(got, strtoll(tok, NULL, 10));
        } else if (a->dtype == ST_DT_UINT64) {
            uint64_t got;
            memcpy(&got, raw, 8);
            assert_int_equal(got, strtoull(tok, NULL, 10));
        } else {
            double want = strtod(tok, NULL), got = npy_get_double(a, i);
            if (isnan(want)) {
                assert_true(isnan(got));
            } else if (got != want || signbit(got) != signbit(want)) {
                print_error("%s[%zu]: got %.17g want %s\n", name, i, got, tok);
                fail();
            }
        }
    }
    assert_int_equal(i, a->element_count);
}

static void check_ok_fixture(char *line)
{
    char *save = NULL;
    strtok_r(line, " ", &save); /* "ok" */
    const char *name = strtok_r(NULL, " ", &save);
    const char *dtype_name = strtok_r(NULL, " ", &save);
    const char *version = strtok_r(NULL, " ", &save);
    const char *order = strtok_r(NULL, " ", &save);
    char *shape_text = strtok_r(NULL, " \n", &save);
    char *values = save; /* the rest of the line */
    assert_non_null(shape_text);
    bool is_big = strcmp(order, "be") == 0;

    char path[512];
    snprintf(path, sizeof path, FIXTURE_DIR "/%s", name);
    st_dtype dtype;
    assert_true(st_dtype_parse(st_str_c(dtype_name), &dtype));
    size_t shape[NPY_MAX_RANK], rank = 0;
    if (strcmp(shape_text, "()") != 0) {
        char *s2 = NULL;
        for (char *d = strtok_r(shape_text, ",", &s2); d; d = strtok_r(NULL, ",", &s2))
            shape[rank++] = (size_t)strtoull(d, NULL, 10);
    }

    /* 1. the file API, which converts big-endian data */
    npy_file f;
    st_error err = { 0 };
    st_status s = npy_read_file(path, &f, NULL, &err);
    if (s != ST_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(s, ST_OK);
    assert_int_equal(f.array.dtype, dtype);
    assert_int_equal(f.array.version_major, version[0] - '0');
    assert_int_equal(f.array.rank, rank);
    for (size_t i = 0; i < rank; i++)
        assert_int_equal(f.array.shape[i], shape[i]);
    assert_false(f.array.is_big_endian);
    char *values_copy = strdup(values);
    assert_non_null(values_copy);
    check_values(&f.array, values_copy, name);
    free(values_copy);

    /* 2. in memory, zero-copy */
    st_buf image = { 0 };
    read_whole_file(path, &image);
    npy_array a;
    if (is_big) {
        assert_int_equal(npy_parse(image.data, image.len, NULL, &a, &err), ST_EUNSUPPORTED);
        expect_msg(&err, "big-endian dtype '>");
        npy_options allow = { .allow_big_endian = true };
        assert_int_equal(npy_parse(image.data, image.len, &allow, &a, &err), ST_OK);
        assert_true(a.is_big_endian);
    } else {
        assert_int_equal(npy_parse(image.data, image.len, NULL, &a, &err), ST_OK);
        assert_false(a.is_big_endian);
        /* 3. our writer reproduces numpy's file byte for byte */
        st_buf mine = { 0 };
        assert_int_equal(npy_write_header(&mine, dtype, shape, rank,
                                          (unsigned)(version[0] - '0'), &err), ST_OK);
        assert_int_equal(st_buf_append(&mine, a.data, a.data_bytes), ST_OK);
        assert_int_equal(mine.len, image.len);
        assert_memory_equal(mine.data, image.data, image.len);
        st_buf_free(&mine);
    }
    assert_ptr_equal(a.data, image.data + a.data_offset);
    check_values(&a, values, name);
    /* (check_values on the file's bytes passing for big-endian fixtures
     * also shows npy_read_file swapped a private copy, not the file) */
    st_buf_free(&image);
    npy_file_close(&f);
    npy_file_close(&f); /* twice is harmless */
}

static void check_rejected_fixture(char *line)
{
    char *save = NULL;
    strtok_r(line, " ", &save); /* "reject" */
    const char *name = strtok_r(NULL, " ", &save);
    const char *status = strtok_r(NULL, " ", &save);
    char *fragment = save;
    fragment[strcspn(fragment, "\n")] = '\0';
    char path[512];
    snprintf(path, sizeof path, FIXTURE_DIR "/%s", name);
    npy_file f;
    st_error err = { 0 };
    st_status s = npy_read_file(path, &f, NULL, &err);
    assert_string_equal(st_status_name(s), status);
    expect_msg(&err, fragment);
    expect_msg(&err, path); /* file errors name the file */
    assert_null(f.base);
}

static void test_numpy_fixtures(void **state)
{
    (void)state;
    FILE *list = fopen(FIXTURE_DIR "/expected.txt", "r");
    if (!list)
        print_error("cannot open " FIXTURE_DIR "/expected.txt (run from the repository "
                    "root; regenerate with /usr/bin/python3 tests/fixtures/make_npy.py)\n");
    assert_non_null(list);
    char line[4096];
    int ok = 0, rejected = 0;
    while (fgets(line, sizeof line, list)) {
        if (strncmp(line, "ok ", 3) == 0) {
            check_ok_fixture(line);
            ok++;
        } else if (strncmp(line, "reject ", 7) == 0) {
            check_rejected_fixture(line);
            rejected++;
        }
    }
    fclose(list);
    /* every dtype, 0-d, empty, v2, v3, big-endian; and the refusals */
    assert_true(ok >= 19);
    assert_true(rejected >= 7);
}

/* ---- rejections -------------------------------------------------------------- */

#define F32_23 "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"

static void test_reject_preamble(void **state)
{
    (void)state;
    st_buf b = { 0 };
    npy_array a;
    st_error err = { 0 };

    assert_int_equal(npy_parse(NULL, 0, NULL, &a, &err), ST_ECORRUPT);
    expect_msg(&err, "npy: not a .npy file");
    assert_int_equal(npy_parse((const uint8_t *)"PK\x03\x04", 4, NULL, &a, &err), ST_ECORRUPT);
    expect_msg(&err, "not a .npy file (it does not start with \"\\x93NUMPY\")");

    make_image(&b, 1, F32_23, 24);
    b.data[6] = 4;
    expect_reject(&b, NULL, ST_EUNSUPPORTED, "format version 4.0 is not supported");
    b.data[6] = 1;
    b.data[7] = 1;
    expect_reject(&b, NULL, ST_EUNSUPPORTED, "format version 1.1 is not supported");
    b.data[6] = 0;
    b.data[7] = 0;
    expect_reject(&b, NULL, ST_EUNSUPPORTED, "format version 0.0");

    /* header length beyond the file (u16 and u32 fields) */
    make_image(&b, 1, F32_23, 0);
    b.data[8] = 0xff;
    b.data[9] = 0xff;
    expect_reject(&b, NULL, ST_ECORRUPT, "header length 65535 runs past the end of the file");
    make_image(&b, 2, F32_23, 0);
    memset(b.data + 8, 0xff, 4);
    expect_reject(&b, NULL, ST_ECORRUPT, "header length 4294967295 runs past the end");

    /* every truncation of a valid file fails cleanly */
    make_image(&b, 1, F32_23, 24);
    for (size_t n = 0; n < b.len; n++) {
        memset(&a, 0, sizeof a);
        st_status s = npy_parse(b.data, n, NULL, &a, &err);
        assert_int_not_equal(s, ST_OK);
        assert_null(a.data);
        assert_non_null(strstr(err.msg, "npy: "));
    }
    make_image(&b, 3, F32_23, 24);
    for (size_t n = 0; n < b.len; n++)
        assert_int_not_equal(npy_parse(b.data, n, NULL, &a, &err), ST_OK);
    st_buf_free(&b);
}

static void test_reject_data_length(void **state)
{
    (void)state;
    reject_dict(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 24,
                ST_ECORRUPT,
                "npy: data is 24 bytes but shape (2, 3) of float64 needs 48 bytes "
                "(file truncated?)");
    reject_dict(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 56,
                ST_ECORRUPT, "npy: data is 56 bytes but shape (2, 3) of float64 needs 48 "
                "bytes (8 extra");
    reject_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 0,
                ST_ECORRUPT, "data is 0 bytes but shape () of float32 needs 4 bytes");
    reject_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", 1,
                ST_ECORRUPT, "data is 1 bytes but shape (0,) of float32 needs 0 bytes");
    reject_dict(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (5,), }", 4,
                ST_ECORRUPT, "shape (5,) of bool needs 5 bytes");
}

static void test_reject_sizes(void **state)
{
    (void)state;
    /* products that overflow 64 bits */
    reject_dict(1, "{'descr': '<f4', 'fortran_order': False, "
                   "'shape': (4294967296, 4294967296, 16), }", 0,
                ST_EOVERFLOW, "npy: shape (4294967296, 4294967296, 16) has more elements "
                              "than a 64-bit size can count");
    reject_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (17179869185,), }", 0,
                ST_ELIMIT, "dimension 17179869185 of shape (17179869185,) exceeds the "
                           "limit of 17179869184 elements");
    st_buf b = { 0 };
    npy_options no_limits = { .max_elements = SIZE_MAX, .max_data_bytes = SIZE_MAX };
    make_image(&b, 1, "{'descr': '<f4', 'fortran_order': False, "
                      "'shape': (4294967296, 4294967296, 16), }", 0);
    expect_reject(&b, &no_limits, ST_EOVERFLOW, "has more elements than a 64-bit size");
    make_image(&b, 1, "{'descr': '<f8', 'fortran_order': False, "
                      "'shape': (4294967296, 1073741824), }", 0);
    expect_reject(&b, &no_limits, ST_EOVERFLOW, "of float64 needs more bytes than a 64-bit");
    /* a zero dimension does not excuse an overflowing rest */
    make_image(&b, 1, "{'descr': '<f4', 'fortran_order': False, "
                      "'shape': (0, 4294967296, 4294967296, 16), }", 0);
    expect_reject(&b, &no_limits, ST_EOVERFLOW, "has more elements than a 64-bit size");
    reject_dict(1, "{'descr': '<f4', 'fortran_order': False, "
                   "'shape': (99999999999999999999999999,), }", 0,
                ST_EOVERFLOW, "dimension 99999999999999999999999999 does not fit in 64 bits");
    reject_dict(1, "{'descr': '<f4', 'fortran_order': False, "
                   "'shape': (18446744073709551616,), }", 0,
                ST_EOVERFLOW, "dimension 18446744073709551616 does not fit");

    /* configurable limits */
    npy_options small = { .max_elements = 5 };
    make_image(&b, 1, F32_23, 24);
    expect_reject(&b, &small, ST_ELIMIT, "shape (2, 3) has 6 elements, over the limit of 5");
    npy_options few_bytes = { .max_data_bytes = 23 };
    expect_reject(&b, &few_bytes, ST_ELIMIT, "shape (2, 3) of float32 needs 24 bytes, over "
                                            "the limit of 23");
    npy_options exact = { .max_elements = 6, .max_data_bytes = 24 };
    npy_array a;
    assert_int_equal(npy_parse(b.data, b.len, &exact, &a, NULL), ST_OK);
    /* the default limit is on by itself */
    reject_dict(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (131072, 131072, 2), }",
                0, ST_ELIMIT, "elements, over the limit of 17179869184");
    st_buf_free(&b);
}

static void test_reject_shape_syntax(void **state)
{
    (void)state;
    static const struct {
        const char *shape;
        st_status status;
        const char *fragment;
    } cases[] = {
        { "(-3, 2)", ST_ECORRUPT, "shape has a negative dimension near '-3, 2)" },
        { "(2, -1)", ST_ECORRUPT, "negative dimension" },
        { "(2, x)", ST_ECORRUPT, "shape must hold non-negative integers, found near 'x)" },
        { "(2.0,)", ST_ECORRUPT, "expected ',' or ')' in shape near '.0,)" },
        { "(2 3)", ST_ECORRUPT, "expected ',' or ')' in shape near '3)" },
        { "(,)", ST_ECORRUPT, "non-negative integers, found near ',)" },
        { "(2,,)", ST_ECORRUPT, "non-negative integers, found near ',)" },
        { "(5)", ST_ECORRUPT, "shape (5) is not a tuple; a 1-d shape is written (5,)" },
        { "[2, 3]", ST_ECORRUPT, "shape must be a tuple like (2, 3), found near '[2, 3]" },
        { "5", ST_ECORRUPT, "shape must be a tuple" },
        { "(2, 3", ST_ECORRUPT, "non-negative integers, found near '}" },
        { "(0x10,)", ST_ECORRUPT, "near 'x10,)" },
        { "(1_000,)", ST_ECORRUPT, "near '_000,)" },
        { "(True,)", ST_ECORRUPT, "non-negative integers, found near 'True,)" },
        { "(2L, 3L)", ST_ECORRUPT, "near 'L, 3L)" }, /* only tolerated in 1.0/2.0, see below */
    };
    char dict[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
                 cases[i].shape);
        reject_dict(3, dict, 0, cases[i].status, cases[i].fragment);
    }
    /* rank over NPY_MAX_RANK */
    char shape[256] = "(";
    for (int i = 0; i <= NPY_MAX_RANK; i++)
        strcat(shape, "1, ");
    strcat(shape, ")");
    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    reject_dict(1, dict, 4, ST_EUNSUPPORTED, "shape has more than 32 dimensions");
}

static void test_reject_dict_syntax(void **state)
{
    (void)state;
    static const struct {
        const char *dict;
        st_status status;
        const char *fragment;
    } cases[] = {
        { "", ST_ECORRUPT, "header is not a Python dict literal: expected '{' at the end" },
        { "   ", ST_ECORRUPT, "expected '{' at the end of the header" },
        { "garbage", ST_ECORRUPT, "expected '{' near 'garbage" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ",
          ST_ECORRUPT, "expected a key in quotes at the end of the header" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3) ",
          ST_ECORRUPT, "expected ',' or '}' after the value of 'shape' at the end" },
        { "{}", ST_ECORRUPT, "header is missing the key(s) 'descr', 'fortran_order', 'shape'" },
        { "{'descr': '<f4', 'shape': (6,)}", ST_ECORRUPT, "missing the key(s) 'fortran_order'" },
        { "{'fortran_order': False, 'shape': (6,)}", ST_ECORRUPT, "missing the key(s) 'descr'" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'shape': (6,)}",
          ST_ECORRUPT, "header has the key 'shape' twice" },
        { "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}",
          ST_ECORRUPT, "header has the key 'descr' twice" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1}",
          ST_ECORRUPT, "header has an unexpected key 'extra'" },
        { "{'Descr': '<f4'}", ST_ECORRUPT, "unexpected key 'Descr'" },
        { "{descr: '<f4'}", ST_ECORRUPT, "expected a key in quotes near 'descr: '<f4'}" },
        { "{'descr' '<f4'}", ST_ECORRUPT, "expected ':' after 'descr' near ''<f4'}" },
        { "{'descr': '<f4' 'fortran_order': False, 'shape': (6,)}",
          ST_ECORRUPT, "expected ',' or '}' after the value of 'descr'" },
        { "{'descr': '<f4',, 'fortran_order': False, 'shape': (6,)}",
          ST_ECORRUPT, "expected a key in quotes near ', 'fortran_order'" },
        { "{'descr': '<f4, 'fortran_order': False, 'shape': (6,)}",
          ST_ECORRUPT, "dtype descr '<f4, ' is not one numpy writes" },
        { "{'descr': '<f4", ST_ECORRUPT, "line break inside a string near ''<f4\\x0a'" },
        { "{'descr': 'a\\'b'}", ST_ECORRUPT, "escape or line break inside a string" },
        { "{'descr': 5, 'fortran_order': False, 'shape': (6,)}",
          ST_ECORRUPT, "expected the 'descr' value in quotes near '5," },
        { "{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}",
          ST_ECORRUPT, "fortran_order must be True or False, found near '0," },
        { "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (6,)}",
          ST_ECORRUPT, "fortran_order must be True or False" },
        { "{'descr': '<f4', 'fortran_order': false, 'shape': (6,)}",
          ST_ECORRUPT, "fortran_order must be True or False" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} x",
          ST_ECORRUPT, "unexpected bytes after the closing '}' near 'x" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}}",
          ST_ECORRUPT, "unexpected bytes after the closing '}'" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}\x01",
          ST_ECORRUPT, "near '\\x01" },
        { "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
          ST_EUNSUPPORTED,
          "npy: Fortran-order arrays are not supported; save with np.ascontiguousarray" },
        { "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }",
          ST_EUNSUPPORTED, "object arrays ('|O') are not supported" },
        { "{'descr': '<U7', 'fortran_order': False, 'shape': (2,), }",
          ST_EUNSUPPORTED, "dtype '<U7' (unicode strings) is not supported" },
        { "{'descr': [('x', '<f4'), ('y', '<f4')], 'fortran_order': False, 'shape': (2,), }",
          ST_EUNSUPPORTED, "structured dtype [('x', '<f4'), ('y', '<f4')] is not supported" },
        { "{'descr': [('x', '<f4'", ST_EUNSUPPORTED, "structured dtype [('x', '<f4' is not" },
        { "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }",
          ST_EUNSUPPORTED, "big-endian dtype '>f8' is not supported for in-memory input; "
                           "save with arr.astype('<f8')" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        reject_dict(1, cases[i].dict, 24, cases[i].status, cases[i].fragment);

    /* a header line break or non-ASCII byte in a message is escaped */
    reject_dict(1, "{'descr': '\xe9', 'fortran_order': False, 'shape': (2,), }", 0,
                ST_ECORRUPT, "dtype descr '\\xe9'");
    reject_dict(1, "{'descr': '<f4\n', 'fortran_order': False}", 0, ST_ECORRUPT,
                "escape or line break inside a string near ''<f4\\x0a'");
    /* a string running into the end of the header */
    st_buf b = { 0 };
    make_image(&b, 1, "{'descr': '<f4", 0);
    b.data[b.len - 1] = 'x';
    expect_reject(&b, NULL, ST_ECORRUPT, "header: unterminated string near ''<f4x'");
    /* err may be NULL */
    npy_array a;
    make_image(&b, 1, "{'descr': 5}", 0);
    assert_int_equal(npy_parse(b.data, b.len, NULL, &a, NULL), ST_ECORRUPT);
    st_buf_free(&b);
}

static void test_accept_variants(void **state)
{
    (void)state;
    static const size_t s23[2] = { 2, 3 }, s6[1] = { 6 };
    /* key order, spacing, trailing commas, quotes */
    accept_dict(1, "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", 24,
                ST_DT_FLOAT32, 2, s23);
    accept_dict(1, "{'descr':'<f4','fortran_order':False,'shape':(2,3)}", 24,
                ST_DT_FLOAT32, 2, s23);
    accept_dict(1, "  {\n 'descr' :\t'<f4' ,\r\n 'fortran_order' : False , 'shape' : "
                   "( 2 , 3 , ) , }   \n\n", 24, ST_DT_FLOAT32, 2, s23);
    accept_dict(1, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (6,)}", 24,
                ST_DT_FLOAT32, 1, s6);
    accept_dict(1, "{'descr': '<i4', 'fortran_order': False, 'shape': ( 6 , ), }", 24,
                ST_DT_INT32, 1, s6);
    /* 0-d, with and without inner space */
    accept_dict(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 8,
                ST_DT_FLOAT64, 0, NULL);
    accept_dict(1, "{'descr': '<f8', 'fortran_order': False, 'shape': ( ), }", 8,
                ST_DT_FLOAT64, 0, NULL);
    /* Python 2 longs in 1.0 and 2.0 headers */
    accept_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", 24,
                ST_DT_FLOAT32, 2, s23);
    accept_dict(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (6L,), }", 24,
                ST_DT_FLOAT32, 1, s6);
    /* other byte orders for single-byte types; '=' and '|' are native */
    accept_dict(1, "{'descr': '>u1', 'fortran_order': False, 'shape': (6,), }", 6,
                ST_DT_UINT8, 1, s6);
    accept_dict(1, "{'descr': '=i2', 'fortran_order': False, 'shape': (6,), }", 12,
                ST_DT_INT16, 1, s6);
    /* leading zeros are just digits */
    accept_dict(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (02, 003), }", 24,
                ST_DT_FLOAT32, 2, s23);
    /* a header that is not aligned and has no final newline (make_image adds
     * one; this one ends in spaces via its own text) */
    st_buf b = { 0 };
    make_image(&b, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,)}   ", 3);
    b.data[b.len - 4] = ' '; /* the '\n' make_image put before the data */
    npy_array a;
    assert_int_equal(npy_parse(b.data, b.len, NULL, &a, NULL), ST_OK);
    assert_int_equal(a.element_count, 3);
    st_buf_free(&b);
}

static void test_big_endian(void **state)
{
    (void)state;
    st_buf b = { 0 };
    make_image(&b, 1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", 0);
    assert_int_equal(st_buf_append(&b, "\x00\x00\x01\x02\xff\xff\xff\xfe", 8), ST_OK);
    expect_reject(&b, NULL, ST_EUNSUPPORTED, "big-endian dtype '>i4'");
    npy_options allow = { .allow_big_endian = true };
    npy_array a;
    assert_int_equal(npy_parse(b.data, b.len, &allow, &a, NULL), ST_OK);
    assert_true(a.is_big_endian);
    assert_true(npy_get_double(&a, 0) == 258.0);
    assert_true(npy_get_double(&a, 1) == -2.0);
    uint8_t copy[8];
    memcpy(copy, a.data, 8);
    npy_byteswap(copy, 2, 4);
    int32_t v[2];
    memcpy(v, copy, 8);
    assert_int_equal(v[0], 258);
    assert_int_equal(v[1], -2);
    uint8_t same[3] = { 1, 2, 3 };
    npy_byteswap(same, 3, 1);
    assert_memory_equal(same, "\x01\x02\x03", 3);
    st_buf_free(&b);
}

static void test_get_double(void **state)
{
    (void)state;
    st_buf b = { 0 };
    make_image(&b, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", 0);
    assert_int_equal(st_buf_append(&b, "\x00\x01\x07", 3), ST_OK);
    npy_array a;
    assert_int_equal(npy_parse(b.data, b.len, NULL, &a, NULL), ST_OK);
    assert_true(npy_get_double(&a, 0) == 0.0);
    assert_true(npy_get_double(&a, 1) == 1.0);
    assert_true(npy_get_double(&a, 2) == 1.0); /* numpy: any non-zero byte is True */
    assert_true(isnan(npy_get_double(&a, 3)));
    assert_true(isnan(npy_get_double(NULL, 0)));
    /* float16 and unaligned float64 */
    make_image(&b, 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 0);
    assert_int_equal(st_buf_append(&b, "\x00\x3c\x00\xc1", 4), ST_OK);
    assert_int_equal(npy_parse(b.data, b.len, NULL, &a, NULL), ST_OK);
    assert_true(npy_get_double(&a, 0) == 1.0);
    assert_true(npy_get_double(&a, 1) == -2.5);
    make_image(&b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 0);
    double pi = 3.141592653589793;
    assert_int_equal(st_buf_append(&b, &pi, 8), ST_OK);
    assert_int_equal(npy_parse(b.data, b.len, NULL, &a, NULL), ST_OK);
    assert_int_not_equal(a.data_offset % 8, 0); /* the case being tested */
    assert_true(npy_get_double(&a, 0) == pi);
    /* 64-bit integers round to the nearest double */
    static const size_t two[1] = { 2 };
    static const int64_t i64[2] = { -9007199254740993, 42 };
    static const uint64_t u64[2] = { UINT64_MAX, 7 };
    b.len = 0;
    assert_int_equal(npy_write(&b, ST_DT_INT64, two, 1, i64, NULL), ST_OK);
    assert_int_equal(npy_parse(b.data, b.len, NULL, &a, NULL), ST_OK);
    assert_true(npy_get_double(&a, 0) == -9007199254740992.0);
    assert_true(npy_get_double(&a, 1) == 42.0);
    b.len = 0;
    assert_int_equal(npy_write(&b, ST_DT_UINT64, two, 1, u64, NULL), ST_OK);
    assert_int_equal(npy_parse(b.data, b.len, NULL, &a, NULL), ST_OK);
    assert_true(npy_get_double(&a, 0) == 18446744073709551616.0);
    st_buf_free(&b);
    /* a zeroed or corrupted npy_array is refused, not read */
    npy_array zero;
    memset(&zero, 0, sizeof zero);
    assert_true(isnan(npy_get_double(&zero, 0)));
    npy_file_close(NULL);
    st_error err = { 0 };
    assert_int_equal(npy_parse(NULL, 5, NULL, &a, &err), ST_EINVAL);
    expect_msg(&err, "npy: no input buffer");
}

/* ---- writer argument checks ---------------------------------------------------- */

static void test_write_rejects(void **state)
{
    (void)state;
    st_buf b = { 0 };
    st_error err = { 0 };
    static const size_t shape[2] = { 2, 3 };
    static const float data[6] = { 0 };
    assert_int_equal(st_buf_append(&b, "keep", 4), ST_OK);

    assert_int_equal(npy_write(&b, ST_DT_STRING, shape, 2, data, &err), ST_EINVAL);
    expect_msg(&err, "cannot write dtype string");
    assert_int_equal(npy_write(&b, (st_dtype)77, shape, 2, data, &err), ST_EINVAL);
    expect_msg(&err, "cannot write dtype invalid");
    assert_int_equal(npy_write(&b, ST_DT_FLOAT32, shape, 2, NULL, &err), ST_EINVAL);
    expect_msg(&err, "no data for 24 bytes of float32");
    assert_int_equal(npy_write(&b, ST_DT_FLOAT32, NULL, 2, data, &err), ST_EINVAL);
    expect_msg(&err, "rank 2 but no shape");
    size_t big_rank[NPY_MAX_RANK + 1];
    for (size_t i = 0; i <= NPY_MAX_RANK; i++)
        big_rank[i] = 1;
    assert_int_equal(npy_write(&b, ST_DT_FLOAT32, big_rank, NPY_MAX_RANK + 1, data, &err),
                     ST_EINVAL);
    expect_msg(&err, "rank 33 is over the maximum of 32");
    static const size_t huge[3] = { (size_t)1 << 32, (size_t)1 << 32, 2 };
    assert_int_equal(npy_write(&b, ST_DT_FLOAT32, huge, 3, data, &err), ST_EOVERFLOW);
    static const size_t huge_bytes[2] = { (size_t)1 << 32, (size_t)1 << 31 };
    assert_int_equal(npy_write(&b, ST_DT_FLOAT32, huge_bytes, 2, data, &err), ST_EOVERFLOW);
    assert_int_equal(npy_write_header(&b, ST_DT_FLOAT32, huge_bytes, 2, 0, &err),
                     ST_EOVERFLOW);
    /* nothing was appended by any failure */
    assert_int_equal(b.len, 4);
    /* an empty array needs no data pointer */
    static const size_t empty[2] = { 0, 3 };
    assert_int_equal(npy_write(&b, ST_DT_FLOAT32, empty, 2, NULL, &err), ST_OK);
    assert_int_equal(npy_write_file("/nonexistent-dir/x.npy", ST_DT_FLOAT32, shape, 2, NULL,
                                    &err), ST_EINVAL);
    st_buf_free(&b);
}

/* ---- files ---------------------------------------------------------------------- */

static void test_write_file_atomic(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char path[4200];
    snprintf(path, sizeof path, "%s/out.npy", dir);
    static const size_t shape[2] = { 2, 2 };
    static const int64_t first[4] = { 1, 2, 3, 4 };
    static const double second[6] = { 0.5, 1.5, 2.5, 3.5, 4.5, 5.5 };
    st_error err = { 0 };

    assert_int_equal(npy_write_file(path, ST_DT_INT64, shape, 2, first, &err), ST_OK);
    npy_file f;
    assert_int_equal(npy_read_file(path, &f, NULL, &err), ST_OK);
    assert_int_equal(f.array.dtype, ST_DT_INT64);
    assert_memory_equal(f.array.data, first, sizeof first);
    assert_true(f.is_mapped);
    /* Replacing the file leaves the old mapping intact (rename, not
     * truncate-and-rewrite). */
    static const size_t shape2[1] = { 6 };
    assert_int_equal(npy_write_file(path, ST_DT_FLOAT64, shape2, 1, second, &err), ST_OK);
    assert_memory_equal(f.array.data, first, sizeof first);
    npy_file_close(&f);
    assert_int_equal(npy_read_file(path, &f, NULL, &err), ST_OK);
    assert_int_equal(f.array.dtype, ST_DT_FLOAT64);
    assert_memory_equal(f.array.data, second, sizeof second);
    npy_file_close(&f);
    assert_int_equal(count_entries(dir), 1); /* no temporary left over */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_mode & S_IRUSR);

    /* a path without a folder part writes into the current directory */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(npy_write_file("plain.npy", ST_DT_INT64, shape, 2, first, &err), ST_OK);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(count_entries(dir), 2);

    /* failures: missing folder, target is a directory */
    snprintf(path, sizeof path, "%s/missing/out.npy", dir);
    assert_int_equal(npy_write_file(path, ST_DT_INT64, shape, 2, first, &err), ST_EIO);
    expect_msg(&err, "cannot create temporary file");
    expect_msg(&err, path);
    snprintf(path, sizeof path, "%s/sub", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(npy_write_file(path, ST_DT_INT64, shape, 2, first, &err), ST_EIO);
    expect_msg(&err, "cannot rename");
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(count_entries(dir), 2);
    remove_temp_dir(dir);
}

static void test_read_file_errors(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char path[4200];
    npy_file f;
    st_error err = { 0 };

    snprintf(path, sizeof path, "%s/none.npy", dir);
    assert_int_equal(npy_read_file(path, &f, NULL, &err), ST_ENOTFOUND);
    expect_msg(&err, "none.npy: cannot open: No such file or directory");
    assert_int_equal(npy_read_file(dir, &f, NULL, &err), ST_EINVAL);
    expect_msg(&err, "is a directory");

    snprintf(path, sizeof path, "%s/empty.npy", dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(npy_read_file(path, &f, NULL, &err), ST_ECORRUPT);
    expect_msg(&err, "empty.npy: file is empty");

    /* a parse error is reported under the file's name, not "npy" */
    snprintf(path, sizeof path, "%s/short.npy", dir);
    st_buf b = { 0 };
    make_image(&b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 24);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b.data, 1, b.len, fp), b.len);
    fclose(fp);
    assert_int_equal(npy_read_file(path, &f, NULL, &err), ST_ECORRUPT);
    char want[4400];
    snprintf(want, sizeof want, "%s: data is 24 bytes but shape (2, 3) of float64 needs 48", path);
    expect_msg(&err, want);
    assert_null(f.base);
    npy_options small = { .max_elements = 2 };
    assert_int_equal(npy_read_file(path, &f, &small, &err), ST_ELIMIT);
    npy_file_close(&f);
    st_buf_free(&b);
    remove_temp_dir(dir);
}

/* Pipes cannot be mapped: they are read into memory. */
static void test_read_pipe(void **state)
{
    (void)state;
    static const size_t shape[1] = { 3 };
    static const uint16_t v[3] = { 7, 8, 9 };
    st_buf b = { 0 };
    assert_int_equal(npy_write(&b, ST_DT_UINT16, shape, 1, v, NULL), ST_OK);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], b.data, b.len), (ssize_t)b.len);
    close(fds[1]);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    npy_file f;
    st_error err = { 0 };
    assert_int_equal(npy_read_file(path, &f, NULL, &err), ST_OK);
    close(fds[0]);
    assert_false(f.is_mapped);
    assert_int_equal(f.array.element_count, 3);
    assert_memory_equal(f.array.data, v, sizeof v);
    npy_file_close(&f);

    /* limits apply to streams as well */
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], b.data, b.len), (ssize_t)b.len);
    close(fds[1]);
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    npy_options tiny = { .max_data_bytes = 1 };
    assert_int_equal(npy_read_file(path, &f, &tiny, &err), ST_ELIMIT);
    close(fds[0]);
    st_buf_free(&b);
}

/* ---- allocation failure ------------------------------------------------------------ */

static void test_alloc_failure_write(void **state)
{
    (void)state;
    static const size_t shape[2] = { 3, 50 };
    uint8_t data[150 * 8];
    fill_pattern(data, sizeof data, ST_DT_FLOAT64);
    for (uint64_t n = 1;; n++) {
        st_buf b = { 0 };
        st_error err = { 0 };
        assert_int_equal(st_buf_append(&b, "xy", 2), ST_OK);
        st_alloc_fail_after(n);
        st_status s = npy_write(&b, ST_DT_FLOAT64, shape, 2, data, &err);
        st_alloc_fail_reset();
        if (s == ST_OK) {
            npy_array a;
            assert_int_equal(npy_parse(b.data + 2, b.len - 2, NULL, &a, &err), ST_OK);
            assert_memory_equal(a.data, data, sizeof data);
            st_buf_free(&b);
            assert_true(n > 1); /* at least one failure was injected */
            break;
        }
        assert_int_equal(s, ST_ENOMEM);
        expect_msg(&err, "out of memory");
        assert_int_equal(b.len, 2);
        st_buf_free(&b);
        assert_true(n < 50);
    }
}

static void test_alloc_failure_files(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char path[4200];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    static const size_t shape[1] = { 4 };
    static const int32_t v[4] = { 1, -1, 2, -2 };
    bool has_succeeded = false;
    for (uint64_t n = 1; !has_succeeded; n++) {
        st_error err = { 0 };
        st_alloc_fail_after(n);
        st_status s = npy_write_file(path, ST_DT_INT32, shape, 1, v, &err);
        st_alloc_fail_reset();
        has_succeeded = s == ST_OK;
        if (!has_succeeded) {
            assert_int_equal(s, ST_ENOMEM);
            assert_int_equal(count_entries(dir), 0); /* neither target nor temporary */
        }
        assert_true(n < 50);
    }
    assert_int_equal(count_entries(dir), 1);

    /* mapped reads allocate nothing; stream reads fail cleanly */
    npy_file f;
    st_error err = { 0 };
    uint64_t before = st_alloc_count();
    assert_int_equal(npy_read_file(path, &f, NULL, &err), ST_OK);
    assert_int_equal(st_alloc_count(), before);
    npy_file_close(&f);

    st_buf b = { 0 };
    read_whole_file(path, &b);
    for (uint64_t n = 1;; n++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        assert_int_equal(write(fds[1], b.data, b.len), (ssize_t)b.len);
        close(fds[1]);
        char fd_path[64];
        snprintf(fd_path, sizeof fd_path, "/dev/fd/%d", fds[0]);
        st_alloc_fail_after(n);
        st_status s = npy_read_file(fd_path, &f, NULL, &err);
        st_alloc_fail_reset();
        close(fds[0]);
        if (s == ST_OK) {
            assert_memory_equal(f.array.data, v, sizeof v);
            npy_file_close(&f);
            break;
        }
        assert_int_equal(s, ST_ENOMEM);
        assert_null(f.base);
        assert_true(n < 50);
    }
    st_buf_free(&b);
    remove_temp_dir(dir);
}

static void test_parse_never_allocates(void **state)
{
    (void)state;
    st_buf good = { 0 }, bad = { 0 };
    make_image(&good, 1, F32_23, 24);
    make_image(&bad, 1, "{'descr': '|O'}", 0);
    npy_array a;
    st_error err = { 0 };
    uint64_t before = st_alloc_count();
    st_alloc_fail_after(1);
    assert_int_equal(npy_parse(good.data, good.len, NULL, &a, &err), ST_OK);
    assert_int_equal(npy_parse(bad.data, bad.len, NULL, &a, &err), ST_EUNSUPPORTED);
    st_alloc_fail_reset();
    assert_int_equal(st_alloc_count(), before);
    st_buf_free(&good);
    st_buf_free(&bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descr_mapping),
        cmocka_unit_test(test_roundtrip_every_dtype),
        cmocka_unit_test(test_roundtrip_shapes),
        cmocka_unit_test(test_writer_header_bytes),
        cmocka_unit_test(test_header_versions),
        cmocka_unit_test(test_header_auto_v2),
        cmocka_unit_test(test_numpy_fixtures),
        cmocka_unit_test(test_reject_preamble),
        cmocka_unit_test(test_reject_data_length),
        cmocka_unit_test(test_reject_sizes),
        cmocka_unit_test(test_reject_shape_syntax),
        cmocka_unit_test(test_reject_dict_syntax),
        cmocka_unit_test(test_accept_variants),
        cmocka_unit_test(test_big_endian),
        cmocka_unit_test(test_get_double),
        cmocka_unit_test(test_write_rejects),
        cmocka_unit_test(test_write_file_atomic),
        cmocka_unit_test(test_read_file_errors),
        cmocka_unit_test(test_read_pipe),
        cmocka_unit_test(test_alloc_failure_write),
        cmocka_unit_test(test_alloc_failure_files),
        cmocka_unit_test(test_parse_never_allocates),
    };
    return cmocka_run_group_tests_name("npy", tests, NULL, NULL);
}
