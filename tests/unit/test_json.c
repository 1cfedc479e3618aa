/* test_json.c - unit tests for src/json: the pull reader, typed arrays,
 * strings, number parsing and shortest formatting (bit-exact round trips
 * against the C library), limits, the writer, the DOM, and allocation
 * failure injection. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

#include "base/alloc.h"
#include "json/json.h"

#define S(lit) lit, sizeof(lit) - 1

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Asserts that err holds `code` and names byte offset `at`. */
static void assert_error_at(const st_error *err, st_status got, st_status code, size_t at)
{
    char want[64];
    snprintf(want, sizeof want, "at byte offset %zu", at);
    if (got != code || err->code != code || !strstr(err->msg, want))
        fail_msg("expected %s %s, got %s: %s", st_status_name(code), want, st_status_name(got),
                 err->msg);
}

static st_status validate_c(const char *text, st_error *err)
{
    return json_validate(text, strlen(text), NULL, err);
}

/* ---- reader ------------------------------------------------------------------ */

static void test_reader_kserve_body(void **state)
{
    (void)state;
    const char body[] = "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],"
                        "\"datatype\":\"FP32\",\"data\":[[1,2,3],[4,5,6.5]]},"
                        "{\"name\":\"b\",\"shape\":[2],\"datatype\":\"BOOL\",\"data\":[true,false]}],"
                        "\"parameters\":{\"x\":[1,{\"y\":null}]}}";
    st_error err = { 0 };
    st_arena arena;
    st_arena_init(&arena, 0);
    json_reader r;
    json_reader_init(&r, body, sizeof body - 1, NULL, &arena, &err);
    st_buf data = { 0 };
    int inputs = 0;
    assert_int_equal(json_enter_object(&r), ST_OK);
    st_str key;
    while (json_object_next(&r, &key)) {
        if (!st_str_eq_c(key, "inputs"))
            continue;
        assert_int_equal(json_enter_array(&r), ST_OK);
        while (json_array_next(&r)) {
            st_str name = { 0 }, datatype = { 0 };
            int64_t dims[8];
            size_t ndims = 0, shape[8], rank = 9;
            data.len = 0;
            assert_int_equal(json_enter_object(&r), ST_OK);
            while (json_object_next(&r, &key)) {
                if (st_str_eq_c(key, "name"))
                    assert_int_equal(json_read_string(&r, &name), ST_OK);
                else if (st_str_eq_c(key, "datatype"))
                    assert_int_equal(json_read_string(&r, &datatype), ST_OK);
                else if (st_str_eq_c(key, "shape"))
                    assert_int_equal(json_read_numbers_into(&r, ST_DT_INT64, dims, 8, &ndims,
                                                            NULL, 0, NULL), ST_ELIMIT);
                else if (st_str_eq_c(key, "data"))
                    assert_int_equal(json_read_numbers(&r, st_str_eq_c(datatype, "BOOL")
                                                               ? ST_DT_BOOL : ST_DT_FLOAT32,
                                                       &data, shape, 8, &rank), ST_OK);
                if (json_reader_status(&r) != ST_OK)
                    break;
            }
            break;
        }
        break;
    }
    /* shape with shape == NULL means scalars only: the sticky error shows. */
    assert_int_equal(json_reader_status(&r), ST_ELIMIT);
    assert_non_null(strstr(err.msg, "deeper than rank 0"));
    st_buf_free(&data);

    /* The proper way: shape of rank 1. */
    memset(&err, 0, sizeof err);
    json_reader_init(&r, body, sizeof body - 1, NULL, &arena, &err);
    assert_int_equal(json_enter_object(&r), ST_OK);
    while (json_object_next(&r, &key)) {
        if (!st_str_eq_c(key, "inputs"))
            continue;
        json_enter_array(&r);
        while (json_array_next(&r)) {
            st_str name = { 0 }, datatype = { 0 };
            int64_t dims[8];
            size_t ndims = 0, dshape[1], drank, shape[8], rank = 9;
            data.len = 0;
            json_enter_object(&r);
            while (json_object_next(&r, &key)) {
                if (st_str_eq_c(key, "name"))
                    json_read_string(&r, &name);
                else if (st_str_eq_c(key, "datatype"))
                    json_read_string(&r, &datatype);
                else if (st_str_eq_c(key, "shape"))
                    json_read_numbers_into(&r, ST_DT_INT64, dims, 8, &ndims, dshape, 1, &drank);
                else if (st_str_eq_c(key, "data"))
                    json_read_numbers(&r, st_str_eq_c(datatype, "BOOL") ? ST_DT_BOOL : ST_DT_FLOAT32,
                                      &data, shape, 8, &rank);
            }
            assert_int_equal(json_reader_status(&r), ST_OK);
            if (inputs == 0) {
                assert_true(st_str_eq_c(name, "x"));
                assert_true(st_str_eq_c(datatype, "FP32"));
                assert_int_equal(ndims, 2);
                assert_int_equal(dims[0], 2);
                assert_int_equal(dims[1], 3);
                assert_int_equal(rank, 2);
                assert_int_equal(shape[0], 2);
                assert_int_equal(shape[1], 3);
                float want[6] = { 1, 2, 3, 4, 5, 6.5f };
                assert_int_equal(data.len, sizeof want);
                assert_memory_equal(data.data, want, sizeof want);
            } else {
                assert_true(st_str_eq_c(name, "b"));
                assert_int_equal(rank, 1);
                assert_int_equal(shape[0], 2);
                assert_int_equal(data.len, 2);
                assert_int_equal(data.data[0], 1);
                assert_int_equal(data.data[1], 0);
            }
            inputs++;
        }
    }
    assert_int_equal(json_reader_finish(&r), ST_OK);
    assert_int_equal(inputs, 2);
    st_buf_free(&data);
    st_arena_free(&arena);
}

static void test_reader_skips_unread_values(void **state)
{
    (void)state;
    const char doc[] = " [ {\"a\": [1, {\"b\": \"c\"}], \"d\": true}, \"s\", 3, [], {} ] ";
    json_reader r;
    st_error err = { 0 };
    json_reader_init(&r, doc, sizeof doc - 1, NULL, NULL, &err);
    assert_int_equal(json_peek(&r), JSON_KIND_ARRAY);
    assert_int_equal(json_enter_array(&r), ST_OK);
    size_t n = 0;
    while (json_array_next(&r)) {
        if (n == 2) {
            int64_t v;
            assert_int_equal(json_peek(&r), JSON_KIND_NUMBER);
            assert_int_equal(json_read_int64(&r, &v), ST_OK);
            assert_int_equal(v, 3);
        }
        n++;
    }
    assert_int_equal(n, 5);
    assert_int_equal(json_peek(&r), JSON_KIND_NONE);
    assert_int_equal(json_reader_finish(&r), ST_OK);

    /* finish consumes what is left of open containers and validates it. */
    json_reader_init(&r, doc, sizeof doc - 1, NULL, NULL, &err);
    json_enter_array(&r);
    assert_true(json_array_next(&r));
    assert_int_equal(json_reader_finish(&r), ST_OK);

    const char bad[] = "[1, {\"a\": tru}]";
    json_reader_init(&r, bad, sizeof bad - 1, NULL, NULL, &err);
    json_enter_array(&r);
    assert_true(json_array_next(&r));
    assert_error_at(&err, json_reader_finish(&r), ST_ECORRUPT, 10);
}

static void test_reader_scalars_and_types(void **state)
{
    (void)state;
    const char doc[] = "[null, true, false, \"hi\", -12.5e1, 18446744073709551615]";
    json_reader r;
    st_error err = { 0 };
    json_reader_init(&r, doc, sizeof doc - 1, NULL, NULL, &err);
    json_enter_array(&r);
    bool b = true;
    st_str s;
    double d;
    uint64_t u;
    assert_true(json_array_next(&r));
    assert_int_equal(json_peek(&r), JSON_KIND_NULL);
    assert_int_equal(json_read_null(&r), ST_OK);
    assert_true(json_array_next(&r));
    assert_int_equal(json_read_bool(&r, &b), ST_OK);
    assert_true(b);
    assert_true(json_array_next(&r));
    assert_int_equal(json_read_bool(&r, &b), ST_OK);
    assert_false(b);
    assert_true(json_array_next(&r));
    assert_int_equal(json_read_string(&r, &s), ST_OK);
    assert_true(st_str_eq_c(s, "hi"));
    assert_ptr_equal(s.ptr, doc + 21); /* zero-copy */
    assert_true(json_array_next(&r));
    assert_int_equal(json_read_double(&r, &d), ST_OK);
    assert_true(d == -125.0);
    assert_true(json_array_next(&r));
    assert_int_equal(json_read_uint64(&r, &u), ST_OK);
    assert_true(u == UINT64_MAX);
    assert_false(json_array_next(&r));
    assert_int_equal(json_reader_finish(&r), ST_OK);

    /* Wrong kind: ST_ETYPE naming the offset and both kinds. */
    json_reader_init(&r, doc, sizeof doc - 1, NULL, NULL, &err);
    json_enter_array(&r);
    json_array_next(&r);
    assert_error_at(&err, json_read_string(&r, &s), ST_ETYPE, 1);
    assert_non_null(strstr(err.msg, "expected a string, found a null"));
    /* Sticky: everything after fails the same way. */
    assert_false(json_array_next(&r));
    assert_int_equal(json_reader_finish(&r), ST_ETYPE);

    /* Misuse: reading twice at the top level. */
    json_reader_init(&r, "1", 1, NULL, NULL, &err);
    assert_int_equal(json_read_double(&r, &d), ST_OK);
    assert_int_equal(json_read_double(&r, &d), ST_EINVAL);

    /* json_reader_fail records a caller's error with the offset. */
    json_reader_init(&r, "{\"datatype\":\"FP33\"}", 19, NULL, NULL, &err);
    json_enter_object(&r);
    json_object_next(&r, &s);
    json_read_string(&r, &s);
    assert_error_at(&err, json_reader_fail(&r, ST_EINVAL, "unknown datatype %.*s", ST_STR_FMT(s)),
                    ST_EINVAL, 18);
}

typedef struct {
    const char *text;
    st_status code;
    size_t offset;
} error_case;

static void test_reader_syntax_errors(void **state)
{
    (void)state;
    static const error_case cases[] = {
        { "", ST_ECORRUPT, 0 },
        { "   ", ST_ECORRUPT, 3 },
        { "[1,]", ST_ECORRUPT, 3 },
        { "[1 2]", ST_ECORRUPT, 3 },
        { "{\"a\" 1}", ST_ECORRUPT, 5 },
        { "{\"a\":1,}", ST_ECORRUPT, 7 },
        { "{1:2}", ST_ECORRUPT, 1 },
        { "[01]", ST_ECORRUPT, 2 },
        { "[-]", ST_ECORRUPT, 2 },
        { "[1.]", ST_ECORRUPT, 3 },
        { "[1e]", ST_ECORRUPT, 3 },
        { "[.5]", ST_ECORRUPT, 1 },
        { "[+1]", ST_ECORRUPT, 1 },
        { "[tru]", ST_ECORRUPT, 1 },
        { "[nul", ST_ECORRUPT, 1 },
        { "[1] x", ST_ECORRUPT, 4 },
        { "[\"abc", ST_ECORRUPT, 5 },
        { "[\"a\\x\"]", ST_ECORRUPT, 3 },
        { "[\"\\u12\"]", ST_ECORRUPT, 2 },
        { "[\"\\uD800\"]", ST_ECORRUPT, 2 },
        { "[\"a\\uDC00\"]", ST_ECORRUPT, 3 },
        { "[\"\\uD800\\u0041\"]", ST_ECORRUPT, 2 },
        { "[\"a\tb\"]", ST_ECORRUPT, 3 },
        { "[1}", ST_ECORRUPT, 2 },
        { "{\"a\":1]", ST_ECORRUPT, 6 },
        { "NaN", ST_ECORRUPT, 0 },
        { "[Infinity]", ST_ECORRUPT, 1 },
        { "\xEF\xBB\xBF[]", ST_ECORRUPT, 0 },
        { "[1]]", ST_ECORRUPT, 3 },
        { "[\"\xC0\x80\"]", ST_ECORRUPT, 2 },         /* overlong NUL */
        { "[\"\xE0\x80\xAF\"]", ST_ECORRUPT, 2 },     /* overlong '/' */
        { "[\"\xED\xA0\x80\"]", ST_ECORRUPT, 2 },     /* UTF-8 encoded surrogate */
        { "[\"\xF4\x90\x80\x80\"]", ST_ECORRUPT, 2 }, /* above U+10FFFF */
        { "[\"\xF5\x80\x80\x80\"]", ST_ECORRUPT, 2 },
        { "[\"ab\x80\"]", ST_ECORRUPT, 4 },          /* lone continuation */
        { "[\"\xE2\x82\"]", ST_ECORRUPT, 2 },         /* truncated */
        { "[\"\xFF\"]", ST_ECORRUPT, 2 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_error err = { 0 };
        st_status s = validate_c(cases[i].text, &err);
        char want[64];
        snprintf(want, sizeof want, "at byte offset %zu", cases[i].offset);
        if (s != cases[i].code || !strstr(err.msg, want))
            fail_msg("case %zu (%s): expected %s %s, got %s: %s", i, cases[i].text,
                     st_status_name(cases[i].code), want, st_status_name(s), err.msg);
    }
    /* Never reads past len: a valid prefix is not a document. */
    const char text[] = "[1,2,3]";
    for (size_t n = 0; n < sizeof text - 1; n++)
        assert_int_not_equal(json_validate(text, n, NULL, NULL), ST_OK);
    assert_int_equal(json_validate(text, sizeof text - 1, NULL, NULL), ST_OK);
}

/* ---- strings ------------------------------------------------------------------- */

static void test_strings_escapes(void **state)
{
    (void)state;
    const char doc[] = "\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t A\\u0041 e\\u00e9 eur\\u20AC "
                       "clef\\uD834\\uDD1E nul\\u0000 raw\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"";
    const char want[] = "q\" b\\ s/ \b\f\n\r\t AA e\xC3\xA9 eur\xE2\x82\xAC "
                        "clef\xF0\x9D\x84\x9E nul\0 raw\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    st_error err = { 0 };
    json_reader r;
    st_str s;
    /* No arena: fits the scratch buffer. */
    json_reader_init(&r, doc, sizeof doc - 1, NULL, NULL, &err);
    assert_int_equal(json_read_string(&r, &s), ST_OK);
    assert_int_equal(s.len, sizeof want - 1);
    assert_memory_equal(s.ptr, want, sizeof want - 1);
    /* Into a caller buffer. */
    st_buf b = { 0 };
    json_reader_init(&r, doc, sizeof doc - 1, NULL, NULL, &err);
    assert_int_equal(json_read_string_buf(&r, &b), ST_OK);
    assert_int_equal(b.len, sizeof want - 1);
    assert_memory_equal(b.data, want, sizeof want - 1);
    st_buf_free(&b);

    /* Long escaped strings need an arena. */
    char big[600];
    size_t n = 0;
    big[n++] = '"';
    for (int i = 0; i < 290; i++) {
        big[n++] = '\\';
        big[n++] = 'n';
    }
    big[n++] = '"';
    json_reader_init(&r, big, n, NULL, NULL, &err);
    assert_error_at(&err, json_read_string(&r, &s), ST_ELIMIT, 0);
    st_arena arena;
    st_arena_init(&arena, 0);
    json_reader_init(&r, big, n, NULL, &arena, &err);
    assert_int_equal(json_read_string(&r, &s), ST_OK);
    assert_int_equal(s.len, 290);
    assert_int_equal(s.ptr[289], '\n');
    st_arena_free(&arena);

    /* Escaped keys. */
    const char obj[] = "{\"na\\u006de\":1, \"k\\\"\":2}";
    json_reader_init(&r, obj, sizeof obj - 1, NULL, NULL, &err);
    json_enter_object(&r);
    assert_true(json_object_next(&r, &s));
    assert_true(st_str_eq_c(s, "name"));
    assert_true(json_object_next(&r, &s));
    assert_true(st_str_eq_c(s, "k\""));
    assert_false(json_object_next(&r, &s));
    assert_int_equal(json_reader_finish(&r), ST_OK);
}

/* ---- numbers ------------------------------------------------------------------- */

static void test_numbers_integers(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        st_status s64;
        int64_t v64;
        st_status su64;
        uint64_t vu64;
    } cases[] = {
        { "0", ST_OK, 0, ST_OK, 0 },
        { "-0", ST_OK, 0, ST_OK, 0 },
        { "-0.0e5", ST_OK, 0, ST_OK, 0 },
        { "9223372036854775807", ST_OK, INT64_MAX, ST_OK, INT64_MAX },
        { "-9223372036854775808", ST_OK, INT64_MIN, ST_EINVAL, 0 },
        { "9223372036854775808", ST_EINVAL, 0, ST_OK, 9223372036854775808ull },
        { "-9223372036854775809", ST_EINVAL, 0, ST_EINVAL, 0 },
        { "18446744073709551615", ST_EINVAL, 0, ST_OK, UINT64_MAX },
        { "18446744073709551616", ST_EINVAL, 0, ST_EINVAL, 0 },
        { "1.5", ST_EINVAL, 0, ST_EINVAL, 0 },
        { "2.0", ST_OK, 2, ST_OK, 2 },
        { "1e3", ST_OK, 1000, ST_OK, 1000 },
        { "1.25e2", ST_OK, 125, ST_OK, 125 },
        { "12500e-2", ST_OK, 125, ST_OK, 125 },
        { "1e-1", ST_EINVAL, 0, ST_EINVAL, 0 },
        { "1e19", ST_EINVAL, 0, ST_OK, 10000000000000000000ull },
        { "1e20", ST_EINVAL, 0, ST_EINVAL, 0 },
        { "-1", ST_OK, -1, ST_EINVAL, 0 },
        { "1e999999999999999999999", ST_EINVAL, 0, ST_EINVAL, 0 },
        { "0.00000000000000000000000000000000000000000001e44", ST_OK, 1, ST_OK, 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_reader r;
        st_error err = { 0 };
        int64_t v = 0;
        uint64_t u = 0;
        size_t len = strlen(cases[i].text);
        json_reader_init(&r, cases[i].text, len, NULL, NULL, &err);
        st_status s = json_read_int64(&r, &v);
        if (s != cases[i].s64 || (s == ST_OK && v != cases[i].v64))
            fail_msg("int64 %s: %s %lld (%s)", cases[i].text, st_status_name(s), (long long)v, err.msg);
        if (s != ST_OK)
            assert_non_null(strstr(err.msg, "at byte offset 0"));
        json_reader_init(&r, cases[i].text, len, NULL, NULL, &err);
        s = json_read_uint64(&r, &u);
        if (s != cases[i].su64 || (s == ST_OK && u != cases[i].vu64))
            fail_msg("uint64 %s: %s %llu (%s)", cases[i].text, st_status_name(s),
                     (unsigned long long)u, err.msg);
    }
}

static void check_double(const char *text)
{
    double want = strtod(text, NULL), got = 0;
    st_status s = json_parse_double(st_str_c(text), &got);
    if (isinf(want)) {
        if (s != ST_EINVAL)
            fail_msg("%s: expected out of range, got %s", text, st_status_name(s));
        return;
    }
    if (s != ST_OK || memcmp(&want, &got, sizeof want) != 0)
        fail_msg("%s: expected %a, got %a (%s)", text, want, got, st_status_name(s));
}

static void check_float(const char *text)
{
    float want = strtof(text, NULL), got = 0;
    st_status s = json_parse_float(st_str_c(text), &got);
    if (isinf(want)) {
        if (s != ST_EINVAL)
            fail_msg("%s: expected float out of range, got %s", text, st_status_name(s));
        return;
    }
    if (s != ST_OK || memcmp(&want, &got, sizeof want) != 0)
        fail_msg("%s: expected float %a, got %a (%s)", text, (double)want, (double)got,
                 st_status_name(s));
}

static void test_numbers_hard_cases(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "0", "-0", "1", "0.1", "0.3", "1e23", "8.988465674311580536566680e307",
        "2.2250738585072011e-308", "2.2250738585072012e-308", "2.2250738585072014e-308",
        "4.9406564584124654e-324", "2.4703282292062327e-324", "2.4703282292062328e-324",
        "2.47032822920623272088e-324", "1e-400", "1.7976931348623157e308",
        "1.7976931348623158e308", "1.7976931348623159e308", "179769313486231580793728971405301e276",
        "9007199254740993", "9007199254740992.5", "9007199254740993.0000000000000000001",
        "4503599627370496.5", "4503599627370497.5", "45035996273704965e-1",
        "7.038531e-26", "1.00000005960464477539062499", "1.000000059604644775390625",
        "1.00000005960464477539062501", "3.4028235e38", "3.4028235677973366e38",
        "3.40282356779733661637539395458142568448e38", "3.4028236e38", "1.17549435e-38",
        "1.4e-45", "7.006492321624085354618647916449580656401309709382578858785341419448955413"
        "42930300743319094181060791015625e-46",
        "7.00649232162408535461864791644958065640130970938257885878534141944895541342930300"
        "7433190941810607910156250001e-46",
        "1.0000000000000000000000000000000000000000000000000000000000000000000000000000000001",
        "123456789012345678901234567890e-10", "0.000000000000000000000000000000000000000001e40",
        "1e308", "1e309", "-1e309", "1e-324", "5e-324", "1e-45", "100000000000000000000000",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_double(cases[i]);
        check_float(cases[i]);
    }
    /* A number with many digits exactly on a double midpoint, then just above. */
    char big[1200];
    int n = snprintf(big, sizeof big, "9007199254740993");
    for (int i = 0; i < 900; i++)
        big[n++] = i == 0 ? '.' : '0';
    big[n] = '\0';
    check_double(big);
    big[n++] = '1';
    big[n] = '\0';
    check_double(big);
}

static void random_decimal(char *s, size_t cap)
{
    int nd = 1 + (int)(rnd() % 30);
    int e = (int)(rnd() % 720) - 360;
    size_t o = 0;
    if (rnd() & 1)
        s[o++] = '-';
    s[o++] = (char)('1' + rnd() % 9);
    if (nd > 1 && (rnd() & 1)) {
        s[o++] = '.';
        for (int j = 1; j < nd; j++)
            s[o++] = (char)('0' + rnd() % 10);
    }
    if (rnd() % 4)
        snprintf(s + o, cap - o, "e%d", e);
    else
        s[o] = '\0';
}

static void test_numbers_random_vs_libc(void **state)
{
    (void)state;
    char s[96];
    for (int i = 0; i < 300000; i++) {
        random_decimal(s, sizeof s);
        check_double(s);
        check_float(s);
    }
    /* Short decimals near float32 values, the typical request content. */
    for (int i = 0; i < 300000; i++) {
        uint32_t b = (uint32_t)rnd();
        float f;
        memcpy(&f, &b, 4);
        if (!isfinite(f))
            continue;
        snprintf(s, sizeof s, "%.*g", 1 + (int)(rnd() % 10), (double)f);
        check_double(s);
        check_float(s);
    }
}

/* float16 reference: exact when the double is not on a half midpoint. */
static void test_numbers_float16(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint16_t bits;
        st_status s;
    } cases[] = {
        { "1", 0x3c00, ST_OK },
        { "-2", 0xc000, ST_OK },
        { "65504", 0x7bff, ST_OK },
        { "65519.99", 0x7bff, ST_OK },
        { "65520", 0, ST_EINVAL },
        { "5.960464477539063e-8", 0x0001, ST_OK }, /* 2^-24 */
        { "2.9802322387695312e-8", 0x0000, ST_OK }, /* 2^-25 exactly: tie to even 0 */
        { "2.9802322387695313e-8", 0x0001, ST_OK },
        { "1.00048828125", 0x3c00, ST_OK }, /* midpoint 1 + 2^-11: even */
        { "1.000488281250000001", 0x3c01, ST_OK }, /* double rounds onto the midpoint */
        { "1.00048828124999999999", 0x3c00, ST_OK },
        { "1.00146484375", 0x3c02, ST_OK }, /* midpoint above odd 0x3c01: up to even */
        { "0.1", 0x2e66, ST_OK },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = 0;
        st_status s = json_parse_half(st_str_c(cases[i].text), &h);
        if (s != cases[i].s || (s == ST_OK && h != cases[i].bits))
            fail_msg("half %s: %s 0x%04x, want 0x%04x", cases[i].text, st_status_name(s), h,
                     cases[i].bits);
    }
    /* Random decimals vs rounding the (correct) double when no tie is possible. */
    char s[96];
    for (int i = 0; i < 100000; i++) {
        snprintf(s, sizeof s, "%.*g", 1 + (int)(rnd() % 12),
                 ((double)(rnd() >> 11) * 0x1p-53 - 0.5) * pow(10, (double)(rnd() % 14) - 8));
        double d = strtod(s, NULL);
        float f = (float)d;
        if ((double)f != d || fabs(d) > 65504)
            continue; /* keep the reference simple: d exact in float, then float->half */
        uint16_t want = st_float_to_half(f), got = 0;
        assert_int_equal(json_parse_half(st_str_c(s), &got), ST_OK);
        if (want != got)
            fail_msg("half %s: want 0x%04x got 0x%04x", s, want, got);
    }
}

/* ---- shortest formatting ------------------------------------------------------- */

static void test_format_python_repr(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } dcases[] = {
        { 0.1, "0.1" }, { 1.0, "1.0" }, { -0.0, "-0.0" }, { 0.0, "0.0" }, { 1e16, "1e+16" },
        { 1e15, "1000000000000000.0" }, { 1e-5, "1e-05" }, { 1e-4, "0.0001" },
        { 123.456, "123.456" }, { 5e-324, "5e-324" }, { 1.7976931348623157e308, "1.7976931348623157e+308" },
        { 2.5, "2.5" }, { 100.0, "100.0" }, { 1e22, "1e+22" }, { 1e23, "1e+23" },
        { 9007199254740993.0, "9007199254740992.0" }, { 0.3, "0.3" }, { 2.0 / 3, "0.6666666666666666" },
        { 1234567890123456789.0, "1.2345678901234568e+18" }, { 2.2250738585072014e-308, "2.2250738585072014e-308" },
        { -1.5e-7, "-1.5e-07" }, { 1e100, "1e+100" }, { 123456789012345.6, "123456789012345.6" },
    };
    char buf[JSON_NUMBER_MAX_CHARS];
    for (size_t i = 0; i < sizeof dcases / sizeof dcases[0]; i++) {
        size_t n = json_format_double(dcases[i].v, buf);
        if (n != strlen(dcases[i].text) || memcmp(buf, dcases[i].text, n) != 0)
            fail_msg("double %a: got %.*s want %s", dcases[i].v, (int)n, buf, dcases[i].text);
    }
    static const struct {
        float v;
        const char *text;
    } fcases[] = {
        { 0.1f, "0.1" }, { 1.0f, "1.0" }, { 3.4028235e38f, "3.4028235e+38" }, { 1e-45f, "1e-45" },
        { 16777216.0f, "16777216.0" }, { 1.1754944e-38f, "1.1754944e-38" }, { 0.3f, "0.3" },
        { 2.0f / 3, "0.6666667" }, { 1e10f, "10000000000.0" }, { -7.0e-10f, "-7e-10" },
    };
    for (size_t i = 0; i < sizeof fcases / sizeof fcases[0]; i++) {
        size_t n = json_format_float(fcases[i].v, buf);
        if (n != strlen(fcases[i].text) || memcmp(buf, fcases[i].text, n) != 0)
            fail_msg("float %a: got %.*s want %s", (double)fcases[i].v, (int)n, buf, fcases[i].text);
    }
    assert_int_equal(json_format_double(NAN, buf), 0);
    assert_int_equal(json_format_float(INFINITY, buf), 0);
    assert_int_equal(json_format_half(0x7c00, buf), 0);
    size_t n = json_format_half(0x3c00, buf);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "1.0", 3);
    n = json_format_half(0x0001, buf);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "6e-08", 5);
}

/* Significant digits in a formatted number (trailing zeros not counted). */
static int sig_digits(const char *s, size_t n)
{
    int count = 0, pending = 0;
    bool started = false;
    for (size_t i = 0; i < n && s[i] != 'e'; i++) {
        if (s[i] < '0' || s[i] > '9')
            continue;
        if (s[i] != '0')
            started = true;
        if (!started)
            continue;
        if (s[i] == '0') {
            pending++;
        } else {
            count += pending + 1;
            pending = 0;
        }
    }
    return count;
}

static void test_float_roundtrip_random(void **state)
{
    (void)state;
    char buf[JSON_NUMBER_MAX_CHARS + 1], ref[64];
    for (int i = 0; i < 1000000; i++) {
        uint32_t b = (uint32_t)rnd();
        float f, back, ours;
        memcpy(&f, &b, 4);
        if (!isfinite(f))
            continue;
        size_t n = json_format_float(f, buf);
        buf[n] = '\0';
        back = strtof(buf, NULL);
        assert_int_equal(json_parse_float(st_str_make(buf, n), &ours), ST_OK);
        if (memcmp(&back, &f, 4) || memcmp(&ours, &f, 4))
            fail_msg("float32 0x%08x -> %s does not read back", b, buf);
        if (i % 16 == 0) { /* never longer than the shortest %.*e that round-trips */
            for (int p = 1; p <= 9; p++) {
                snprintf(ref, sizeof ref, "%.*e", p - 1, (double)f);
                if (strtof(ref, NULL) == f) {
                    if (sig_digits(buf, n) > p && f != 0)
                        fail_msg("float32 %s longer than %s", buf, ref);
                    break;
                }
            }
        }
    }
    for (int i = 0; i < 1000000; i++) {
        uint64_t b = rnd();
        if (i % 3 == 1) /* also exercise subnormals and small exponents */
            b >>= rnd() % 64;
        double d, back, ours;
        memcpy(&d, &b, 8);
        if (!isfinite(d))
            continue;
        size_t n = json_format_double(d, buf);
        buf[n] = '\0';
        back = strtod(buf, NULL);
        assert_int_equal(json_parse_double(st_str_make(buf, n), &ours), ST_OK);
        if (memcmp(&back, &d, 8) || memcmp(&ours, &d, 8))
            fail_msg("float64 0x%016llx -> %s does not read back", (unsigned long long)b, buf);
        if (i % 16 == 0) {
            for (int p = 1; p <= 17; p++) {
                snprintf(ref, sizeof ref, "%.*e", p - 1, d);
                if (strtod(ref, NULL) == d) {
                    if (sig_digits(buf, n) > p && d != 0)
                        fail_msg("float64 %s longer than %s", buf, ref);
                    break;
                }
            }
        }
    }
}

static void test_half_exhaustive(void **state)
{
    (void)state;
    char buf[JSON_NUMBER_MAX_CHARS], cand[64];
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        size_t n = json_format_half((uint16_t)h, buf);
        uint16_t back = 0;
        assert_int_equal(json_parse_half(st_str_make(buf, n), &back), ST_OK);
        if (back != h)
            fail_msg("half 0x%04x -> %.*s -> 0x%04x", h, (int)n, buf, back);
        /* Shortest: no decimal with one digit fewer reads back to h.  Those
         * nearest to h are the neighbours of its correct rounding. */
        int digits = sig_digits(buf, n);
        if (digits > 1) {
            double v = st_half_to_float((uint16_t)h);
            snprintf(cand, sizeof cand, "%.*e", digits - 2, v);
            double base = strtod(cand, NULL);
            const char *e = strchr(cand, 'e');
            int exp10 = atoi(e + 1);
            double ulp = pow(10, exp10 - (digits - 2));
            for (int k = -1; k <= 1; k++) {
                char alt[64];
                snprintf(alt, sizeof alt, "%.*e", digits - 2, base + k * ulp);
                uint16_t ab = 0;
                if (json_parse_half(st_str_c(alt), &ab) == ST_OK && ab == h && sig_digits(alt, strlen(alt)) < digits)
                    fail_msg("half 0x%04x: %.*s is not shortest (%s)", h, (int)n, buf, alt);
            }
        }
    }
}

/* Compares a sample of doubles with /usr/bin/python3's repr, digit for digit. */
static void test_python_repr_sample(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) {
        print_message("skipped: /usr/bin/python3 not available\n");
        skip();
    }
    char path[] = "/tmp/stratus_json_reprXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    char buf[JSON_NUMBER_MAX_CHARS];
    for (int i = 0; i < 5000; i++) {
        uint64_t b = rnd();
        if (i % 2)
            b >>= rnd() % 64;
        double d;
        memcpy(&d, &b, 8);
        if (!isfinite(d))
            continue;
        size_t n = json_format_double(d, buf);
        fprintf(f, "%016llx %.*s\n", (unsigned long long)b, (int)n, buf);
    }
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import struct,sys\n"
             "bad=[l for l in open('%s') if repr(struct.unpack('<d',bytes.fromhex(l.split()[0])[::-1])[0])!=l.split()[1]]\n"
             "print(len(bad), bad[:3])\"",
             path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[512] = "";
    if (!fgets(out, sizeof out, p))
        out[0] = '\0';
    int rc = pclose(p);
    unlink(path);
    if (rc != 0 || strncmp(out, "0 ", 2) != 0)
        fail_msg("python repr differs: %s", out);
}

/* ---- typed arrays ---------------------------------------------------------------- */

static st_status read_nums(const char *text, st_dtype t, st_buf *out, size_t *shape,
                           size_t *rank, st_error *err)
{
    json_reader r;
    out->len = 0;
    json_reader_init(&r, text, strlen(text), NULL, NULL, err);
    st_status s = json_read_numbers(&r, t, out, shape, 8, rank);
    if (s == ST_OK)
        s = json_reader_finish(&r);
    return s;
}

static void test_read_numbers_shapes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t rank;
        size_t shape[4];
        size_t count;
    } cases[] = {
        { "5", 0, { 0 }, 1 },
        { "[]", 1, { 0 }, 0 },
        { " [ 1 , 2 , 3 ] ", 1, { 3 }, 3 },
        { "[[1,2,3],[4,5,6]]", 2, { 2, 3 }, 6 },
        { "[[[1],[2]],[[3],[4]],[[5],[6]]]", 3, { 3, 2, 1 }, 6 },
        { "[[]]", 2, { 1, 0 }, 0 },
        { "[[],[]]", 2, { 2, 0 }, 0 },
        { "[[[]],[[]]]", 3, { 2, 1, 0 }, 0 },
        { "[\n[1, 2]\t,\r\n[3, 4]\n]", 2, { 2, 2 }, 4 },
    };
    st_buf out = { 0 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t shape[8] = { 99, 99, 99, 99 }, rank = 99;
        st_error err = { 0 };
        st_status s = read_nums(cases[i].text, ST_DT_FLOAT64, &out, shape, &rank, &err);
        if (s != ST_OK)
            fail_msg("%s: %s", cases[i].text, err.msg);
        assert_int_equal(rank, cases[i].rank);
        for (size_t k = 0; k < rank; k++)
            assert_int_equal(shape[k], cases[i].shape[k]);
        assert_int_equal(out.len, cases[i].count * sizeof(double));
        for (size_t k = 0; k < cases[i].count; k++) {
            double v;
            memcpy(&v, out.data + k * 8, 8);
            assert_true(v == (double)(cases[i].count == 1 ? 5 : k + 1));
        }
    }
    st_buf_free(&out);
}

static void test_read_numbers_ragged_and_limits(void **state)
{
    (void)state;
    static const error_case cases[] = {
        { "[[1,2],[3]]", ST_ESHAPE, 9 },
        { "[[1],[2,3]]", ST_ESHAPE, 8 },
        { "[[1],2]", ST_ESHAPE, 5 },
        { "[1,[2]]", ST_ESHAPE, 3 },
        { "[[],[1]]", ST_ESHAPE, 5 },
        { "[[[1]],[]]", ST_ESHAPE, 8 },
        { "[[],[[]]]", ST_ESHAPE, 5 },
        { "[[1,2],[3,4],[5]]", ST_ESHAPE, 15 },
        { "[[[[[[[[[1]]]]]]]]]", ST_ELIMIT, 8 }, /* rank 9 > max_rank 8 */
        { "[1,\"a\"]", ST_ETYPE, 3 },
        { "[1,null]", ST_ETYPE, 3 },
        { "[true]", ST_ETYPE, 1 },
        { "[{}]", ST_ETYPE, 1 },
        { "[1,]", ST_ECORRUPT, 3 },
        { "[1 2]", ST_ECORRUPT, 3 },
        { "[1,2", ST_ECORRUPT, 4 },
        { "[1,2]]", ST_ECORRUPT, 5 },
        { "[-]", ST_ECORRUPT, 2 },
        { "\"x\"", ST_ETYPE, 0 },
    };
    st_buf out = { 0 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t shape[8], rank;
        st_error err = { 0 };
        st_status s = read_nums(cases[i].text, ST_DT_INT32, &out, shape, &rank, &err);
        char want[64];
        snprintf(want, sizeof want, "at byte offset %zu", cases[i].offset);
        if (s != cases[i].code || !strstr(err.msg, want))
            fail_msg("%s: expected %s %s, got %s: %s", cases[i].text,
                     st_status_name(cases[i].code), want, st_status_name(s), err.msg);
    }
    st_buf_free(&out);

    /* Fixed destination. */
    int32_t dst[4];
    size_t count = 0, shape[2], rank;
    json_reader r;
    st_error err = { 0 };
    json_reader_init(&r, "[[1,2],[3,4]]", 13, NULL, NULL, &err);
    assert_int_equal(json_read_numbers_into(&r, ST_DT_INT32, dst, 4, &count, shape, 2, &rank), ST_OK);
    assert_int_equal(count, 4);
    assert_int_equal(dst[3], 4);
    json_reader_init(&r, "[1,2,3,4,5]", 11, NULL, NULL, &err);
    assert_error_at(&err, json_read_numbers_into(&r, ST_DT_INT32, dst, 4, &count, shape, 2, &rank),
                    ST_ELIMIT, 9);
    /* Non-numeric dtype. */
    json_reader_init(&r, "[1]", 3, NULL, NULL, &err);
    assert_int_equal(json_read_numbers_into(&r, ST_DT_STRING, dst, 4, &count, shape, 2, &rank), ST_EINVAL);
}

typedef struct {
    st_dtype t;
    const char *ok_text; /* values at both ends of the range */
    const char *ok_bytes;
    size_t ok_len;
    const char *too_low;
    const char *too_high;
} range_case;

static void test_read_numbers_ranges(void **state)
{
    (void)state;
    static const range_case cases[] = {
        { ST_DT_UINT8, "[0,255]", "\x00\xff", 2, "[0,-1]", "[0,256]" },
        { ST_DT_INT8, "[-128,127]", "\x80\x7f", 2, "[0,-129]", "[0,128]" },
        { ST_DT_UINT16, "[0,65535]", "\x00\x00\xff\xff", 4, "[0,-1]", "[0,65536]" },
        { ST_DT_INT16, "[-32768,32767]", "\x00\x80\xff\x7f", 4, "[0,-32769]", "[0,32768]" },
        { ST_DT_UINT32, "[0,4294967295]", "\0\0\0\0\xff\xff\xff\xff", 8, "[0,-1]", "[0,4294967296]" },
        { ST_DT_INT32, "[-2147483648,2147483647]", "\0\0\0\x80\xff\xff\xff\x7f", 8,
          "[0,-2147483649]", "[0,2147483648]" },
        { ST_DT_UINT64, "[0,18446744073709551615]", "\0\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff", 16,
          "[0,-1]", "[0,18446744073709551616]" },
        { ST_DT_INT64, "[-9223372036854775808,9223372036854775807]",
          "\0\0\0\0\0\0\0\x80\xff\xff\xff\xff\xff\xff\xff\x7f", 16,
          "[0,-9223372036854775809]", "[0,9223372036854775808]" },
        { ST_DT_BOOL, "[false,true,0,1]", "\0\1\0\1", 4, "[0,-1]", "[0,2]" },
        { ST_DT_FLOAT16, "[-65504,65504]", "\xff\xfb\xff\x7b", 4, "[0,-65520]", "[0,65520]" },
        { ST_DT_FLOAT32, "[-3.4028235e38,3.4028235e38]", "\xff\xff\x7f\xff\xff\xff\x7f\x7f", 8,
          "[0,-3.5e38]", "[0,3.5e38]" },
        { ST_DT_FLOAT64, "[-1.7976931348623157e308,1.7976931348623157e308]",
          "\xff\xff\xff\xff\xff\xff\xef\xff\xff\xff\xff\xff\xff\xff\xef\x7f", 16, "[0,-1e309]", "[0,1e309]" },
    };
    st_buf out = { 0 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const range_case *c = &cases[i];
        size_t shape[8], rank;
        st_error err = { 0 };
        if (read_nums(c->ok_text, c->t, &out, shape, &rank, &err) != ST_OK)
            fail_msg("%s %s: %s", st_dtype_name(c->t), c->ok_text, err.msg);
        assert_int_equal(out.len, c->ok_len);
        assert_memory_equal(out.data, c->ok_bytes, c->ok_len);
        assert_error_at(&err, read_nums(c->too_low, c->t, &out, shape, &rank, &err), ST_EINVAL, 3);
        assert_non_null(strstr(err.msg, st_dtype_name(c->t)));
        assert_error_at(&err, read_nums(c->too_high, c->t, &out, shape, &rank, &err), ST_EINVAL, 3);
        if (c->t != ST_DT_FLOAT16 && c->t != ST_DT_FLOAT32 && c->t != ST_DT_FLOAT64)
            assert_error_at(&err, read_nums("[1,1.5]", c->t, &out, shape, &rank, &err), ST_EINVAL, 3);
    }
    size_t shape[8], rank;
    st_error err = { 0 };
    /* 300 into uint8 names the offset and the number. */
    assert_error_at(&err, read_nums("[1, 2, 300]", ST_DT_UINT8, &out, shape, &rank, &err), ST_EINVAL, 7);
    assert_non_null(strstr(err.msg, "300"));
    /* 1.5 into int64 is not an integer; 2.0 and 1e2 are. */
    assert_error_at(&err, read_nums("[1.5]", ST_DT_INT64, &out, shape, &rank, &err), ST_EINVAL, 1);
    assert_non_null(strstr(err.msg, "not an integer"));
    assert_int_equal(read_nums("[2.0, 1e2, -0]", ST_DT_INT64, &out, shape, &rank, &err), ST_OK);
    int64_t want[3] = { 2, 100, 0 };
    assert_memory_equal(out.data, want, sizeof want);
    /* Floats are correctly rounded straight to float32 (no double rounding). */
    assert_int_equal(read_nums("[1.00000005960464477539062501, 0.1]", ST_DT_FLOAT32, &out, shape,
                               &rank, &err), ST_OK);
    float f[2];
    memcpy(f, out.data, sizeof f);
    assert_true(f[0] == nextafterf(1.0f, 2.0f));
    assert_true(f[1] == 0.1f);
    st_buf_free(&out);
}

/* ---- limits --------------------------------------------------------------------- */

static void test_limits(void **state)
{
    (void)state;
    json_limits lim = { .max_depth = 3, .max_input_bytes = 20, .max_elements = 5 };
    st_error err = { 0 };
    assert_int_equal(json_validate("[[[1]]]", 7, &lim, &err), ST_OK);
    assert_error_at(&err, json_validate("[[[[1]]]]", 9, &lim, &err), ST_ELIMIT, 3);
    assert_non_null(strstr(err.msg, "max_depth"));
    assert_error_at(&err, json_validate("{\"a\":{\"b\":{\"c\":{}}}}", 20, &lim, &err), ST_ELIMIT, 15);
    assert_error_at(&err, json_validate("[1,2,3,4,5,6,7,8,9,10]", 22, &lim, &err), ST_ELIMIT, 20);
    assert_non_null(strstr(err.msg, "max_input_bytes"));
    assert_error_at(&err, json_validate("[1,2,3,4,5]", 11, &lim, &err), ST_ELIMIT, 9);
    assert_non_null(strstr(err.msg, "max_elements"));
    assert_int_equal(json_validate("[1,2,3,4]", 9, &lim, &err), ST_OK);

    /* Typed arrays obey the same limits. */
    json_reader r;
    st_buf out = { 0 };
    size_t shape[8], rank;
    json_reader_init(&r, "[1,2,3,4,5]", 11, &lim, NULL, &err);
    assert_error_at(&err, json_read_numbers(&r, ST_DT_FLOAT32, &out, shape, 8, &rank), ST_ELIMIT, 9);
    json_reader_init(&r, "[[[[1]]]]", 9, &lim, NULL, &err);
    assert_error_at(&err, json_read_numbers(&r, ST_DT_FLOAT32, &out, shape, 8, &rank), ST_ELIMIT, 3);
    st_buf_free(&out);

    /* The default depth, and the DOM. */
    char deep[400];
    for (int i = 0; i < 200; i++) {
        deep[i] = '[';
        deep[399 - i] = ']';
    }
    assert_error_at(&err, json_validate(deep, sizeof deep, NULL, &err), ST_ELIMIT, 128);
    st_arena arena;
    st_arena_init(&arena, 0);
    json_value *v;
    assert_error_at(&err, json_parse(deep, sizeof deep, NULL, &arena, &v, &err), ST_ELIMIT, 128);
    lim.max_depth = 5000; /* clamped to JSON_DEPTH_CAP */
    lim.max_input_bytes = 0;
    lim.max_elements = 0;
    assert_int_equal(json_parse(deep, sizeof deep, &lim, &arena, &v, &err), ST_OK);
    st_arena_free(&arena);
}

/* ---- writer ---------------------------------------------------------------------- */

static void assert_buf(const st_buf *b, const char *want)
{
    if (b->len != strlen(want) || memcmp(b->data, want, b->len) != 0)
        fail_msg("got %.*s\nwant %s", (int)b->len, (const char *)b->data, want);
}

static void test_writer_structure(void **state)
{
    (void)state;
    st_buf b = { 0 };
    st_error err = { 0 };
    json_writer w;
    json_writer_init(&w, &b, &err);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("model_name"));
    json_write_string(&w, ST_STR("churn"));
    json_write_key(&w, ST_STR("outputs"));
    json_write_array_begin(&w);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("n"));
    json_write_int64(&w, INT64_MIN);
    json_write_key(&w, ST_STR("u"));
    json_write_uint64(&w, UINT64_MAX);
    json_write_key(&w, ST_STR("f"));
    json_write_double(&w, 0.1);
    json_write_key(&w, ST_STR("g"));
    json_write_float(&w, 0.1f);
    json_write_key(&w, ST_STR("b"));
    json_write_bool(&w, false);
    json_write_key(&w, ST_STR("z"));
    json_write_null(&w);
    json_write_key(&w, ST_STR("t"));
    json_write_number_text(&w, ST_STR("-1.5e3"));
    json_write_object_end(&w);
    json_write_array_begin(&w);
    json_write_array_end(&w);
    json_write_array_end(&w);
    json_write_object_end(&w);
    assert_int_equal(json_writer_finish(&w), ST_OK);
    assert_buf(&b, "{\"model_name\":\"churn\",\"outputs\":[{\"n\":-9223372036854775808,"
                   "\"u\":18446744073709551615,\"f\":0.1,\"g\":0.1,\"b\":false,\"z\":null,"
                   "\"t\":-1.5e3},[]]}");
    assert_int_equal(json_validate(b.data, b.len, NULL, NULL), ST_OK);

    /* Misuse is ST_EINVAL and sticky. */
    b.len = 0;
    json_writer_init(&w, &b, &err);
    json_write_object_begin(&w);
    assert_int_equal(json_write_int64(&w, 1), ST_EINVAL);
    assert_int_equal(json_write_object_end(&w), ST_EINVAL);
    json_writer_init(&w, &b, &err);
    assert_int_equal(json_write_key(&w, ST_STR("k")), ST_EINVAL);
    json_writer_init(&w, &b, &err);
    json_write_array_begin(&w);
    assert_int_equal(json_write_object_end(&w), ST_EINVAL);
    json_writer_init(&w, &b, &err);
    json_write_array_begin(&w);
    assert_int_equal(json_writer_finish(&w), ST_EINVAL);
    json_writer_init(&w, &b, &err);
    json_write_null(&w);
    assert_int_equal(json_write_null(&w), ST_EINVAL);
    json_writer_init(&w, &b, &err);
    assert_int_equal(json_write_number_text(&w, ST_STR("01")), ST_EINVAL);
    json_writer_init(&w, &b, &err);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("k"));
    assert_int_equal(json_write_object_end(&w), ST_EINVAL);
    st_buf_free(&b);
}

static void test_writer_strings(void **state)
{
    (void)state;
    st_buf b = { 0 };
    json_writer w;
    json_writer_init(&w, &b, NULL);
    const char raw[] = "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f caf\xC3\xA9 \xF0\x9F\x98\x80 bad\xFF\xC3 end";
    json_write_string(&w, st_str_make(raw, sizeof raw - 1));
    assert_int_equal(json_writer_finish(&w), ST_OK);
    assert_buf(&b, "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f caf\xC3\xA9 \xF0\x9F\x98\x80 "
                   "bad\xEF\xBF\xBD\xEF\xBF\xBD end\"");
    /* The output is valid JSON and reads back. */
    json_reader r;
    st_str s;
    json_reader_init(&r, b.data, b.len, NULL, NULL, NULL);
    assert_int_equal(json_read_string(&r, &s), ST_OK);
    assert_int_equal(s.len, sizeof raw - 1 + 4);

    /* Random byte strings always produce valid JSON that reads back to the
     * input when the input was valid UTF-8. */
    for (int i = 0; i < 20000; i++) {
        char in[32];
        size_t n = rnd() % sizeof in;
        for (size_t k = 0; k < n; k++)
            in[k] = (char)(rnd() % 4 == 0 ? rnd() % 256 : 0x20 + rnd() % 95);
        b.len = 0;
        json_writer_init(&w, &b, NULL);
        assert_int_equal(json_write_string(&w, st_str_make(in, n)), ST_OK);
        json_reader_init(&r, b.data, b.len, NULL, NULL, NULL);
        assert_int_equal(json_read_string(&r, &s), ST_OK);
        assert_int_equal(json_reader_finish(&r), ST_OK);
    }
    st_buf_free(&b);
}

static void test_writer_nonfinite(void **state)
{
    (void)state;
    st_buf b = { 0 };
    st_error err = { 0 };
    json_writer w;
    json_writer_init(&w, &b, &err);
    assert_int_equal(json_write_double(&w, NAN), ST_EINVAL);
    assert_non_null(strstr(err.msg, "NaN"));
    b.len = 0;
    json_writer_init(&w, &b, &err);
    json_writer_set_nonfinite(&w, JSON_NONFINITE_NULL);
    json_write_array_begin(&w);
    json_write_double(&w, INFINITY);
    json_write_float(&w, -INFINITY);
    float v[3] = { 1.0f, NAN, 2.5f };
    size_t shape[1] = { 3 };
    json_write_numbers(&w, ST_DT_FLOAT32, v, shape, 1, true);
    json_write_array_end(&w);
    assert_int_equal(json_writer_finish(&w), ST_OK);
    assert_buf(&b, "[null,null,[1.0,null,2.5]]");
    b.len = 0;
    json_writer_init(&w, &b, &err);
    assert_int_equal(json_write_numbers(&w, ST_DT_FLOAT32, v, shape, 1, true), ST_EINVAL);
    assert_non_null(strstr(err.msg, "element 1"));
    st_buf_free(&b);
}

static void fill_random(st_dtype t, void *data, size_t n)
{
    uint8_t *p = data;
    size_t es = st_dtype_size(t);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = rnd();
        switch (t) {
        case ST_DT_FLOAT32: {
            float f;
            uint32_t b = (uint32_t)v;
            memcpy(&f, &b, 4);
            if (!isfinite(f))
                f = 1.5f;
            memcpy(p + i * 4, &f, 4);
            break;
        }
        case ST_DT_FLOAT64: {
            double d;
            memcpy(&d, &v, 8);
            if (!isfinite(d))
                d = -2.25;
            memcpy(p + i * 8, &d, 8);
            break;
        }
        case ST_DT_FLOAT16: {
            uint16_t h = (uint16_t)v;
            if ((h & 0x7c00) == 0x7c00)
                h = 0x3c00;
            memcpy(p + i * 2, &h, 2);
            break;
        }
        case ST_DT_BOOL: p[i] = v & 1; break;
        default: memcpy(p + i * es, &v, es); break;
        }
    }
}

static void test_write_numbers_roundtrip(void **state)
{
    (void)state;
    static const st_dtype types[] = { ST_DT_FLOAT32, ST_DT_FLOAT64, ST_DT_FLOAT16, ST_DT_UINT8,
                                      ST_DT_INT8, ST_DT_UINT16, ST_DT_INT16, ST_DT_UINT32,
                                      ST_DT_INT32, ST_DT_UINT64, ST_DT_INT64, ST_DT_BOOL };
    static const struct {
        size_t rank;
        size_t shape[3];
    } shapes[] = { { 0, { 0 } }, { 1, { 0 } }, { 1, { 7 } }, { 2, { 3, 4 } },
                   { 3, { 2, 3, 5 } }, { 2, { 2, 0 } }, { 3, { 3000, 1, 1 } } };
    uint8_t data[3000 * 8], *back;
    st_buf text = { 0 }, out = { 0 };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        st_dtype t = types[ti];
        size_t es = st_dtype_size(t);
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            size_t count = 1;
            for (size_t k = 0; k < shapes[si].rank; k++)
                count *= shapes[si].shape[k];
            fill_random(t, data, count);
            for (int nested = 0; nested < 2; nested++) {
                st_error err = { 0 };
                json_writer w;
                text.len = 0;
                json_writer_init(&w, &text, &err);
                assert_int_equal(json_write_numbers(&w, t, data, shapes[si].shape, shapes[si].rank,
                                                    nested), ST_OK);
                assert_int_equal(json_writer_finish(&w), ST_OK);
                json_reader r;
                size_t shape[8], rank;
                out.len = 0;
                json_reader_init(&r, text.data, text.len, NULL, NULL, &err);
                if (json_read_numbers(&r, t, &out, shape, 8, &rank) != ST_OK ||
                    json_reader_finish(&r) != ST_OK)
                    fail_msg("%s: %s in %.*s", st_dtype_name(t), err.msg, (int)(text.len > 200 ? 200 : text.len),
                             (const char *)text.data);
                back = out.data;
                assert_int_equal(out.len, count * es);
                if (count)
                    assert_memory_equal(back, data, count * es);
                if (nested) {
                    assert_int_equal(rank, shapes[si].rank);
                    /* Shapes are exact except that zero-sized dims hide the ones after them. */
                    for (size_t k = 0; k < rank; k++)
                        assert_int_equal(shape[k], shapes[si].shape[k]);
                } else {
                    assert_int_equal(rank, 1);
                    assert_int_equal(shape[0], count);
                }
            }
        }
    }
    /* Spot checks of the text. */
    json_writer w;
    text.len = 0;
    json_writer_init(&w, &text, NULL);
    int16_t small[6] = { -1, 2, -3, 4, 32767, -32768 };
    size_t shape[2] = { 2, 3 };
    json_write_numbers(&w, ST_DT_INT16, small, shape, 2, true);
    assert_buf(&text, "[[-1,2,-3],[4,32767,-32768]]");
    st_buf_free(&text);
    st_buf_free(&out);
}

/* ---- DOM -------------------------------------------------------------------------- */

static void test_dom(void **state)
{
    (void)state;
    const char cfg[] = "{\"name\":\"churn\",\"max_batch_size\":32,\"delay_us\":1.5e3,"
                       "\"dynamic\":true,\"tags\":[\"a\",\"b\\u00e9\"],\"x\":null,"
                       "\"dup\":1,\"dup\":2,\"big\":18446744073709551615,\"nested\":{\"k\":[[]]}}";
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    json_value *root = NULL;
    char *copy = malloc(sizeof cfg);
    memcpy(copy, cfg, sizeof cfg);
    assert_int_equal(json_parse(copy, sizeof cfg - 1, NULL, &arena, &root, &err), ST_OK);
    memset(copy, 'X', sizeof cfg); /* the tree owns its strings */
    free(copy);
    assert_int_equal(root->type, JSON_KIND_OBJECT);
    st_str s;
    int64_t i64;
    uint64_t u64;
    double d;
    bool b;
    assert_int_equal(json_value_string(json_value_get_c(root, "name"), &s), ST_OK);
    assert_true(st_str_eq_c(s, "churn"));
    assert_int_equal(s.ptr[s.len], '\0');
    assert_int_equal(json_value_int64(json_value_get_c(root, "max_batch_size"), &i64), ST_OK);
    assert_int_equal(i64, 32);
    assert_int_equal(json_value_int64(json_value_get_c(root, "delay_us"), &i64), ST_OK);
    assert_int_equal(i64, 1500);
    assert_int_equal(json_value_double(json_value_get_c(root, "delay_us"), &d), ST_OK);
    assert_true(d == 1500.0);
    assert_int_equal(json_value_bool(json_value_get_c(root, "dynamic"), &b), ST_OK);
    assert_true(b);
    assert_int_equal(json_value_get_c(root, "x")->type, JSON_KIND_NULL);
    assert_int_equal(json_value_int64(json_value_get_c(root, "dup"), &i64), ST_OK);
    assert_int_equal(i64, 2); /* the last one wins */
    assert_int_equal(json_value_int64(json_value_get_c(root, "big"), &i64), ST_EINVAL);
    assert_int_equal(json_value_uint64(json_value_get_c(root, "big"), &u64), ST_OK);
    assert_true(u64 == UINT64_MAX);
    assert_null(json_value_get_c(root, "missing"));
    assert_int_equal(json_value_int64(json_value_get_c(root, "missing"), &i64), ST_ETYPE);
    const json_value *tags = json_value_get_c(root, "tags");
    assert_int_equal(tags->u.array.count, 2);
    assert_int_equal(json_value_string(json_value_at(tags, 1), &s), ST_OK);
    assert_true(st_str_eq_c(s, "b\xC3\xA9"));
    assert_null(json_value_at(tags, 2));
    assert_null(json_value_get_c(tags, "a"));

    /* Write back, parse again, equal. */
    st_buf out = { 0 };
    json_writer w;
    json_writer_init(&w, &out, NULL);
    assert_int_equal(json_write_value(&w, root), ST_OK);
    assert_int_equal(json_writer_finish(&w), ST_OK);
    json_value *again = NULL;
    assert_int_equal(json_parse(out.data, out.len, NULL, &arena, &again, &err), ST_OK);
    assert_true(json_value_equal(root, again));
    assert_false(json_value_equal(root, tags));
    st_buf_free(&out);

    /* Errors name the offset; the scalar documents work. */
    assert_error_at(&err, json_parse("{\"a\":[1,2,}", 11, NULL, &arena, &again, &err), ST_ECORRUPT, 10);
    assert_int_equal(json_parse(" 42 ", 4, NULL, &arena, &again, &err), ST_OK);
    assert_int_equal(again->type, JSON_KIND_NUMBER);
    st_arena_free(&arena);
}

/* ---- allocation failure injection ---------------------------------------------------- */

/* Everything that allocates: DOM parse, write back, typed read into a
 * growing buffer, string into a buffer.  Returns the first failure. */
static st_status alloc_workload(void)
{
    const char doc[] = "{\"inputs\":[{\"name\":\"x\\u00e9y\",\"data\":[[1.5,2,3],[4,5,6]]}],"
                       "\"meta\":{\"a\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20],"
                       "\"b\":\"long string long string long string long string\"}}";
    st_status s = ST_OK;
    st_arena arena;
    st_arena_init(&arena, 256);
    st_buf out = { 0 }, nums = { 0 }, str = { 0 };
    json_value *root = NULL;
    json_writer w;
    json_reader r;
    s = json_parse(doc, sizeof doc - 1, NULL, &arena, &root, NULL);
    if (s != ST_OK)
        goto done;
    json_writer_init(&w, &out, NULL);
    json_write_array_begin(&w);
    json_write_value(&w, root);
    float f[40];
    for (int i = 0; i < 40; i++)
        f[i] = (float)i / 7.0f;
    size_t shape[1] = { 40 };
    json_write_numbers(&w, ST_DT_FLOAT32, f, shape, 1, false);
    json_write_array_end(&w);
    s = json_writer_finish(&w);
    if (s != ST_OK)
        goto done;
    json_reader_init(&r, doc, sizeof doc - 1, NULL, &arena, NULL);
    json_enter_object(&r);
    st_str key;
    while (json_object_next(&r, &key)) {
        if (st_str_eq_c(key, "meta")) {
            json_enter_object(&r);
            while (json_object_next(&r, &key)) {
                size_t sh[2], rank;
                if (st_str_eq_c(key, "a"))
                    json_read_numbers(&r, ST_DT_FLOAT64, &nums, sh, 2, &rank);
                else
                    json_read_string_buf(&r, &str);
            }
        }
    }
    s = json_reader_finish(&r);
done:
    st_buf_free(&out);
    st_buf_free(&nums);
    st_buf_free(&str);
    st_arena_free(&arena);
    return s;
}

static void test_alloc_failure_injection(void **state)
{
    (void)state;
    uint64_t before = st_alloc_count();
    assert_int_equal(alloc_workload(), ST_OK);
    uint64_t total = st_alloc_count() - before;
    assert_true(total > 3);
    for (uint64_t n = 1; n <= total + 1; n++) {
        st_alloc_fail_after(n);
        st_status s = alloc_workload();
        st_alloc_fail_reset();
        if (n <= total && s != ST_ENOMEM)
            fail_msg("allocation %llu of %llu failed but the workload returned %s",
                     (unsigned long long)n, (unsigned long long)total, st_status_name(s));
        if (n > total && s != ST_OK)
            fail_msg("no allocation failed (n=%llu) but the workload returned %s",
                     (unsigned long long)n, st_status_name(s));
    }
}

static void test_validate(void **state)
{
    (void)state;
    assert_int_equal(validate_c("{\"a\":[1,2,{\"b\":null}],\"c\":\"\\ud83d\\ude00\"}", NULL), ST_OK);
    assert_int_equal(validate_c(" \t\r\n[] \t\r\n", NULL), ST_OK);
    assert_int_equal(validate_c("-0.0e-0", NULL), ST_OK);
    assert_int_equal(validate_c("\"\"", NULL), ST_OK);
    assert_int_not_equal(validate_c("[] []", NULL), ST_OK);
    assert_int_not_equal(json_validate(NULL, 5, NULL, NULL), ST_OK);
    assert_int_not_equal(json_validate(NULL, 0, NULL, NULL), ST_OK);
    assert_string_equal(json_kind_name(JSON_KIND_ARRAY), "array");
    /* Regression (found by the fuzzer): validation never unescapes keys, so
     * a long escaped key needs no arena. */
    char doc[700];
    size_t n = 0;
    doc[n++] = '{';
    doc[n++] = '"';
    for (int i = 0; i < 300; i++) {
        doc[n++] = '\\';
        doc[n++] = 't';
    }
    memcpy(doc + n, "\":1}", 4);
    n += 4;
    assert_int_equal(json_validate(doc, n, NULL, NULL), ST_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_kserve_body),
        cmocka_unit_test(test_reader_skips_unread_values),
        cmocka_unit_test(test_reader_scalars_and_types),
        cmocka_unit_test(test_reader_syntax_errors),
        cmocka_unit_test(test_strings_escapes),
        cmocka_unit_test(test_numbers_integers),
        cmocka_unit_test(test_numbers_hard_cases),
        cmocka_unit_test(test_numbers_random_vs_libc),
        cmocka_unit_test(test_numbers_float16),
        cmocka_unit_test(test_format_python_repr),
        cmocka_unit_test(test_float_roundtrip_random),
        cmocka_unit_test(test_half_exhaustive),
        cmocka_unit_test(test_python_repr_sample),
        cmocka_unit_test(test_read_numbers_shapes),
        cmocka_unit_test(test_read_numbers_ragged_and_limits),
        cmocka_unit_test(test_read_numbers_ranges),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_writer_structure),
        cmocka_unit_test(test_writer_strings),
        cmocka_unit_test(test_writer_nonfinite),
        cmocka_unit_test(test_write_numbers_roundtrip),
        cmocka_unit_test(test_dom),
        cmocka_unit_test(test_alloc_failure_injection),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
