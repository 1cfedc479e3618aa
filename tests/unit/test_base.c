/* test_base.c - unit tests for the foundation: status, alloc, str, buf,
 * arena, dtype (with an exhaustive float16 check against independent
 * references), time and hash. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/alloc.h"
#include "base/arena.h"
#include "base/buf.h"
#include "base/cpu.h"
#include "base/dtype.h"
#include "base/hash.h"
#include "base/status.h"
#include "base/str.h"
#include "base/time.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_F16C_REFERENCE 1
#else
#define HAVE_F16C_REFERENCE 0
#endif

/* A small deterministic generator so failures reproduce. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- status ------------------------------------------------------------- */

static void test_status_tables(void **state)
{
    (void)state;
    for (int i = 0; i < ST_STATUS_COUNT_; i++) {
        st_status s = (st_status)i;
        const char *name = st_status_name(s);
        assert_non_null(name);
        assert_int_equal(strncmp(name, "ST_", 3), 0);
        assert_true(strlen(st_status_str(s)) > 0);
        int http = st_status_http(s);
        assert_true(http >= 200 && http <= 599);
        assert_int_equal(http == 200, s == ST_OK);
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(name, st_status_name((st_status)j));
            assert_string_not_equal(st_status_str(s), st_status_str((st_status)j));
        }
    }
    assert_string_equal(st_status_name(ST_ECORRUPT), "ST_ECORRUPT");
    assert_string_equal(st_status_str(ST_OK), "ok");
    assert_int_equal(st_status_http(ST_ENOTFOUND), 404);
    assert_int_equal(st_status_http(ST_EBUSY), 429);
    assert_int_equal(st_status_http(ST_ELIMIT), 413);
    assert_int_equal(st_status_http(ST_EINVAL), 400);
    assert_int_equal(st_status_http(ST_EINTERNAL), 500);
    assert_string_equal(st_status_name((st_status)ST_STATUS_COUNT_), "ST_UNKNOWN");
    assert_string_equal(st_status_str((st_status)1000), "unknown status");
    assert_int_equal(st_status_http((st_status)ST_STATUS_COUNT_), 500);
}

static void test_status_fail(void **state)
{
    (void)state;
    st_error err = { 0 };
    assert_int_equal(st_fail(&err, ST_ECORRUPT, "bad header at %zu", (size_t)12), ST_ECORRUPT);
    assert_int_equal(err.code, ST_ECORRUPT);
    assert_string_equal(err.msg, "bad header at 12");
    assert_string_equal(st_error_msg(&err), "bad header at 12");
    assert_int_equal(st_fail(&err, ST_EINVAL, "second"), ST_EINVAL);
    assert_int_equal(err.code, ST_EINVAL);
    assert_string_equal(err.msg, "second");
    assert_int_equal(st_fail(NULL, ST_EIO, "nobody listens %d", 1), ST_EIO);

    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    st_fail(&err, ST_ELIMIT, "%s", big);
    assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
    assert_int_equal(err.msg[0], 'a');

    st_error empty = { 0 };
    assert_string_equal(st_error_msg(&empty), "ok");
    empty.code = ST_ENOTFOUND;
    assert_string_equal(st_error_msg(&empty), "not found");
    assert_string_equal(st_error_msg(NULL), "");
}

static void test_status_fail_wrap(void **state)
{
    (void)state;
    st_error err = { 0 };
    st_fail(&err, ST_ENOTFOUND, "no such file");
    /* The original code wins over the wrapper's. */
    assert_int_equal(st_fail_wrap(&err, ST_EIO, "model.onnx"), ST_ENOTFOUND);
    assert_string_equal(err.msg, "model.onnx: no such file");
    st_fail_wrap(&err, ST_EIO, "load %d", 3);
    assert_string_equal(err.msg, "load 3: model.onnx: no such file");
    assert_int_equal(err.code, ST_ENOTFOUND);

    st_error fresh = { 0 };
    assert_int_equal(st_fail_wrap(&fresh, ST_EIO, "reading"), ST_EIO);
    assert_int_equal(fresh.code, ST_EIO);
    assert_string_equal(fresh.msg, "reading: I/O error");
    assert_int_equal(st_fail_wrap(NULL, ST_EIO, "x"), ST_EIO);

    /* A long message is cut at its end, the prefix kept. */
    st_error e = { 0 };
    char rest[sizeof e.msg]; /* fills the record on its own */
    memset(rest, 'b', sizeof rest - 1);
    rest[sizeof rest - 1] = '\0';
    st_fail(&e, ST_ECORRUPT, "%s", rest);
    st_fail_wrap(&e, ST_EIO, "ctx");
    assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
    assert_int_equal(strncmp(e.msg, "ctx: bbb", 8), 0);

    /* A prefix that fills the record alone. */
    char prefix[600];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    st_fail(&e, ST_ECORRUPT, "inner");
    st_fail_wrap(&e, ST_EIO, "%s", prefix);
    assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
    for (size_t i = 0; i < sizeof e.msg - 1; i++)
        assert_int_equal(e.msg[i], 'p');

    /* Boundary: prefix + ": " exactly fill the record. */
    size_t plen = sizeof e.msg - 3;
    prefix[plen] = '\0';
    st_fail(&e, ST_ECORRUPT, "inner");
    st_fail_wrap(&e, ST_EIO, "%s", prefix);
    assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
    assert_int_equal(e.msg[plen], ':');
}

/* ---- alloc -------------------------------------------------------------- */

static void test_alloc_count_and_fail_after(void **state)
{
    (void)state;
    uint64_t before = st_alloc_count();
    void *a = st_malloc(10);
    void *b = st_calloc(2, 3);
    void *c = st_realloc(NULL, 5);
    void *d = st_aligned_alloc(64, 100);
    void *z = st_malloc(0);
    assert_int_equal(st_alloc_count(), before + 5);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(d);
    assert_non_null(z);
    assert_int_equal((uintptr_t)d % 64, 0);
    assert_int_equal(((unsigned char *)b)[5], 0);
    st_free(a);
    st_free(b);
    st_free(c);
    st_free(d);
    st_free(z);
    st_free(NULL);

    st_alloc_fail_after(1);
    assert_null(st_malloc(1));
    assert_null(st_malloc(1)); /* and every later one */
    assert_null(st_aligned_alloc(16, 1));
    st_alloc_fail_reset();
    a = st_malloc(1);
    assert_non_null(a);
    st_free(a);

    st_alloc_fail_after(3);
    a = st_malloc(1);
    b = st_calloc(1, 1);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(st_malloc(1));
    assert_null(st_calloc(1, 1));
    st_alloc_fail_reset();
    st_free(a);
    st_free(b);

    st_alloc_fail_after(0); /* disables */
    a = st_malloc(1);
    assert_non_null(a);
    st_free(a);

    /* A failed realloc leaves the block intact. */
    char *p = st_malloc(8);
    assert_non_null(p);
    memcpy(p, "abcdefg", 8);
    st_alloc_fail_after(1);
    assert_null(st_realloc(p, 1000));
    st_alloc_fail_reset();
    assert_string_equal(p, "abcdefg");
    st_free(p);
}

static void test_alloc_overflow(void **state)
{
    (void)state;
    assert_null(st_calloc(SIZE_MAX, 2));
    assert_null(st_calloc(SIZE_MAX / 2 + 1, 2));
    assert_null(st_calloc(2, SIZE_MAX / 2 + 1));
    void *p = st_calloc(0, 5);
    assert_non_null(p);
    st_free(p);
    size_t out;
    assert_true(st_mul_overflow(SIZE_MAX / 3 + 1, 3, &out));
    assert_false(st_mul_overflow(SIZE_MAX / 3, 3, &out));
    assert_int_equal(out, SIZE_MAX / 3 * 3);
    assert_true(st_add_overflow(SIZE_MAX, 1, &out));
    assert_false(st_add_overflow(SIZE_MAX - 1, 1, &out));
    assert_true(out == SIZE_MAX);
}

/* ---- str ---------------------------------------------------------------- */

static void test_str_eq(void **state)
{
    (void)state;
    st_str empty = { NULL, 0 };
    assert_true(st_str_eq(ST_STR("abc"), st_str_c("abc")));
    assert_false(st_str_eq(ST_STR("abc"), ST_STR("abd")));
    assert_false(st_str_eq(ST_STR("abc"), ST_STR("ab")));
    assert_true(st_str_eq(empty, ST_STR("")));
    assert_true(st_str_eq_c(st_str_make("abcdef", 3), "abc"));
    assert_int_equal(st_str_c(NULL).len, 0);
    assert_true(st_str_starts_with(ST_STR("/v2/models"), ST_STR("/v2/")));
    assert_false(st_str_starts_with(ST_STR("/v2"), ST_STR("/v2/")));
    assert_true(st_str_starts_with(ST_STR("x"), empty));
    assert_true(st_str_starts_with(empty, empty));

    assert_true(st_str_eq_nocase(ST_STR("Content-Length"), ST_STR("content-LENGTH")));
    assert_false(st_str_eq_nocase(ST_STR("Content-Length"), ST_STR("Content-Lengths")));
    assert_false(st_str_eq_nocase(ST_STR("a-b"), ST_STR("a_b")));
    assert_true(st_str_eq_nocase(empty, ST_STR("")));
    /* Only ASCII letters fold: '@' (0x40) and '`' (0x60) stay apart, as do
     * bytes >= 0x80. */
    assert_false(st_str_eq_nocase(ST_STR("@"), ST_STR("`")));
    assert_false(st_str_eq_nocase(ST_STR("\xc3\x89"), ST_STR("\xc3\xa9")));
    assert_false(st_str_eq_nocase(ST_STR("["), ST_STR("{")));
}

static void test_str_edit_distance(void **state)
{
    (void)state;
    assert_int_equal(st_str_edit_distance(ST_STR("kitten"), ST_STR("sitting"), 100), 3);
    assert_int_equal(st_str_edit_distance(ST_STR("sitting"), ST_STR("kitten"), 100), 3);
    assert_int_equal(st_str_edit_distance(ST_STR("kitten"), ST_STR("sitting"), 2), 2);
    assert_int_equal(st_str_edit_distance(ST_STR(""), ST_STR("abc"), 100), 3);
    assert_int_equal(st_str_edit_distance(ST_STR("abc"), ST_STR(""), 100), 3);
    assert_int_equal(st_str_edit_distance(ST_STR("serve"), ST_STR("serve"), 100), 0);
    assert_int_equal(st_str_edit_distance(ST_STR("serve"), ST_STR("serv"), 100), 1);
    assert_int_equal(st_str_edit_distance(ST_STR("serve"), ST_STR("sevre"), 100), 2);
    assert_int_equal(st_str_edit_distance(ST_STR("--port"), ST_STR("--prot"), 8), 2);
    /* Past 63 bytes only the prefix counts (documented). */
    char a[100], b[100];
    memset(a, 'x', sizeof a);
    memcpy(b, a, sizeof b);
    b[80] = 'y';
    assert_int_equal(st_str_edit_distance(st_str_make(a, 100), st_str_make(b, 100), 100), 0);
    b[10] = 'y';
    assert_int_equal(st_str_edit_distance(st_str_make(a, 100), st_str_make(b, 100), 100), 1);
}

/* ---- buf ---------------------------------------------------------------- */

static void test_buf_basic(void **state)
{
    (void)state;
    st_buf b = { 0 };
    assert_int_equal(st_buf_append(&b, "hello", 5), ST_OK);
    assert_int_equal(st_buf_append_byte(&b, ' '), ST_OK);
    assert_int_equal(st_buf_printf(&b, "%d-%s", 42, "x"), ST_OK);
    assert_int_equal(st_buf_append_str(&b, ST_STR("!")), ST_OK);
    assert_int_equal(st_buf_append(&b, NULL, 0), ST_OK);
    assert_int_equal(b.len, 11);
    assert_string_equal(st_buf_cstr(&b), "hello 42-x!");
    assert_int_equal(b.len, 11); /* the NUL is not counted */
    assert_true(st_str_eq_c(st_buf_str(&b), "hello 42-x!"));

    /* printf longer than the current capacity */
    char longer[300];
    memset(longer, 'q', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(st_buf_printf(&b, "[%s]", longer), ST_OK);
    assert_int_equal(b.len, 11 + 301);
    assert_int_equal(b.data[11], '[');
    assert_int_equal(b.data[b.len - 1], ']');

    size_t cap = b.cap;
    st_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_string_equal(st_buf_cstr(&b), "");
    st_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len + b.cap, 0);
    assert_int_equal(st_buf_append(&b, "again", 5), ST_OK);
    st_buf_free(&b);
}

static void test_buf_growth(void **state)
{
    (void)state;
    st_buf b = { 0 };
    enum { N = 100000 };
    uint64_t before = st_alloc_count();
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(st_buf_append_byte(&b, (uint8_t)(i * 7)), ST_OK);
        assert_true(b.cap >= b.len);
    }
    /* Geometric growth: a handful of reallocations, not one per byte. */
    assert_true(st_alloc_count() - before < 20);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(b.data[i], (uint8_t)(i * 7));
    st_buf_free(&b);
}

static void test_buf_reserve_overflow(void **state)
{
    (void)state;
    st_buf b = { 0 };
    assert_int_equal(st_buf_append(&b, "0123456789", 10), ST_OK);
    assert_int_equal(st_buf_reserve(&b, SIZE_MAX), ST_EOVERFLOW);
    assert_int_equal(st_buf_reserve(&b, SIZE_MAX - 9), ST_EOVERFLOW);
    assert_int_equal(st_buf_append(&b, "x", SIZE_MAX - 5), ST_EOVERFLOW);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "0123456789", 10);
    assert_int_equal(st_buf_reserve(&b, 0), ST_OK);
    st_buf_free(&b);
}

/* Runs a fixed script of appends with the k-th allocation failing; the
 * buffer must always hold exactly the output of the steps that succeeded. */
static void test_buf_fault_injection(void **state)
{
    (void)state;
    static char expect[8192];
    bool is_clean = false;
    for (uint64_t k = 1; !is_clean && k < 100; k++) {
        st_buf b = { 0 };
        size_t expect_len = 0;
        is_clean = true;
        st_alloc_fail_after(k);
        for (int step = 0; step < 60; step++) {
            st_status s;
            char piece[128];
            int n = snprintf(piece, sizeof piece, "step %d %.*s;", step, step, "................................................................");
            switch (step % 3) {
            case 0:
                s = st_buf_append(&b, piece, (size_t)n);
                break;
            case 1:
                s = st_buf_printf(&b, "%s", piece);
                break;
            default:
                s = ST_OK;
                for (int i = 0; i < n && s == ST_OK; i++) {
                    s = st_buf_append_byte(&b, (uint8_t)piece[i]);
                    if (s == ST_OK)
                        expect[expect_len++] = piece[i];
                }
                n = 0;
                break;
            }
            if (s == ST_OK) {
                memcpy(expect + expect_len, piece, (size_t)n);
                expect_len += (size_t)n;
            } else {
                assert_int_equal(s, ST_ENOMEM);
                is_clean = false;
            }
            assert_int_equal(b.len, expect_len);
            assert_true(b.len <= b.cap);
            if (b.len)
                assert_memory_equal(b.data, expect, b.len);
        }
        if (!st_buf_cstr(&b))
            is_clean = false;
        st_alloc_fail_reset();
        st_buf_free(&b);
    }
    assert_true(is_clean); /* the script eventually ran without failures */
}

/* ---- arena -------------------------------------------------------------- */

static void test_arena_alignment(void **state)
{
    (void)state;
    enum { N = 3000 };
    static unsigned char *ptrs[N];
    static size_t sizes[N];
    st_arena a;
    st_arena_init(&a, 4096);
    uint64_t rng = 0x1234567;
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        size_t align = (size_t)1 << (rng_next(&rng) % 13); /* 1 .. 4096 */
        size_t size = (size_t)(rng_next(&rng) % 300);
        if (i % 97 == 0)
            size = 5000 + (size_t)(rng_next(&rng) % 20000); /* bigger than a chunk */
        unsigned char *p = st_arena_alloc(&a, size, align);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % align, 0);
        memset(p, (int)(i & 0xff), size);
        ptrs[i] = p;
        sizes[i] = size;
        total += size;
    }
    assert_int_equal(a.used_bytes, total);
    /* No allocation overlaps another: every pattern survived. */
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(ptrs[i][j], (unsigned char)(i & 0xff));
    st_arena_free(&a);
}

static void test_arena_big_and_reset(void **state)
{
    (void)state;
    st_arena a;
    st_arena_init(&a, 0);
    assert_int_equal(a.chunk_bytes, 64 * 1024);
    assert_null(a.head); /* nothing allocated yet */

    unsigned char *first = st_arena_alloc(&a, 1000, 8);
    assert_non_null(first);
    unsigned char *big = st_arena_alloc(&a, 1 << 20, 64);
    assert_non_null(big);
    memset(big, 1, 1 << 20);
    /* The partly used chunk keeps serving small allocations. */
    unsigned char *after = st_arena_alloc(&a, 1000, 8);
    assert_ptr_equal(after, first + 1000);

    st_arena_reset(&a);
    assert_int_equal(a.used_bytes, 0);
    uint64_t before = st_alloc_count();
    unsigned char *again = st_arena_alloc(&a, 1000, 8);
    assert_ptr_equal(again, first); /* the first chunk is reused */
    for (int i = 0; i < 50; i++)
        assert_non_null(st_arena_alloc(&a, 1000, 16));
    assert_int_equal(st_alloc_count(), before); /* warm: no heap traffic */

    /* An arena whose only chunk is a big one frees it on reset. */
    st_arena b;
    st_arena_init(&b, 1024);
    assert_non_null(st_arena_alloc(&b, 100000, 8));
    st_arena_reset(&b);
    assert_null(b.head);
    assert_non_null(st_arena_alloc(&b, 10, 8));
    st_arena_free(&b);
    assert_null(b.head);
    st_arena_free(&a);
    st_arena_free(&a); /* freeing twice is harmless */
}

static void test_arena_errors(void **state)
{
    (void)state;
    st_arena a;
    st_arena_init(&a, 1024);
    assert_null(st_arena_alloc(&a, 10, 3));
    assert_null(st_arena_alloc(&a, 10, 8192));
    assert_non_null(st_arena_alloc(&a, 10, 0)); /* 0 means 1 */
    assert_null(st_arena_alloc(&a, SIZE_MAX, 8));
    assert_null(st_arena_alloc(&a, SIZE_MAX - 8, 16));
    assert_null(st_arena_calloc(&a, SIZE_MAX / 2, 4, 8));
    assert_null(st_arena_strndup(&a, "x", SIZE_MAX));

    unsigned char *junk = st_arena_alloc(&a, 64, 8);
    memset(junk, 0xff, 64);
    st_arena_reset(&a);
    uint32_t *zeros = st_arena_calloc(&a, 16, sizeof(uint32_t), 4);
    assert_non_null(zeros);
    for (int i = 0; i < 16; i++)
        assert_int_equal(zeros[i], 0);

    char *s = st_arena_strndup(&a, "hello", 3);
    assert_string_equal(s, "hel");
    s = st_arena_strndup(&a, NULL, 0);
    assert_string_equal(s, "");
    st_arena_free(&a);
}

static void test_arena_fault_injection(void **state)
{
    (void)state;
    for (uint64_t k = 1; k <= 8; k++) {
        st_arena a;
        st_arena_init(&a, 4096);
        st_alloc_fail_after(k);
        int n_ok = 0;
        for (int i = 0; i < 100; i++) {
            unsigned char *p = st_arena_alloc(&a, 1000, 32);
            if (!p)
                continue;
            memset(p, 0x5a, 1000);
            n_ok++;
        }
        /* Four 1000-byte allocations fit a 4096-byte chunk (k-1 chunks). */
        assert_int_equal(n_ok, (int)(k - 1) * 4);
        st_alloc_fail_reset();
        assert_non_null(st_arena_alloc(&a, 1000, 32)); /* usable afterwards */
        st_arena_reset(&a);
        assert_non_null(st_arena_alloc(&a, 1000, 32));
        st_arena_free(&a);
    }
}

/* ---- dtype -------------------------------------------------------------- */

static void test_dtype_tables(void **state)
{
    (void)state;
    assert_int_equal(ST_DT_FLOAT32, 1);
    assert_int_equal(ST_DT_FLOAT16, 10);
    assert_int_equal(ST_DT_UINT64, 13);
    for (int i = 1; i < ST_DT_COUNT_; i++) {
        assert_true(st_dtype_is_valid(i));
        const char *name = st_dtype_name((st_dtype)i);
        st_dtype parsed;
        assert_true(st_dtype_parse(st_str_c(name), &parsed));
        assert_int_equal(parsed, i);
    }
    assert_int_equal(st_dtype_size(ST_DT_FLOAT32), 4);
    assert_int_equal(st_dtype_size(ST_DT_UINT8), 1);
    assert_int_equal(st_dtype_size(ST_DT_INT8), 1);
    assert_int_equal(st_dtype_size(ST_DT_INT16), 2);
    assert_int_equal(st_dtype_size(ST_DT_INT64), 8);
    assert_int_equal(st_dtype_size(ST_DT_FLOAT16), 2);
    assert_int_equal(st_dtype_size(ST_DT_FLOAT64), 8);
    assert_int_equal(st_dtype_size(ST_DT_BOOL), 1);
    assert_int_equal(st_dtype_size(ST_DT_STRING), 0);
    assert_int_equal(st_dtype_size(ST_DT_UNDEFINED), 0);
    assert_string_equal(st_dtype_name(ST_DT_INT64), "int64");
    assert_string_equal(st_dtype_name(ST_DT_UNDEFINED), "undefined");
    assert_true(st_dtype_is_valid(0));
    assert_false(st_dtype_is_valid(-1));
    assert_false(st_dtype_is_valid(ST_DT_COUNT_));
    assert_false(st_dtype_is_valid(1000));
    assert_string_equal(st_dtype_name((st_dtype)ST_DT_COUNT_), "invalid");
    assert_int_equal(st_dtype_size((st_dtype)99), 0);

    st_dtype t = ST_DT_INT8;
    assert_false(st_dtype_parse(ST_STR("float"), &t));
    assert_false(st_dtype_parse(ST_STR("FLOAT32"), &t));
    assert_false(st_dtype_parse(ST_STR(""), &t));
    assert_false(st_dtype_parse(ST_STR("undefined"), &t)); /* not a usable type */
    assert_false(st_dtype_parse(st_str_make("float32x", 8), &t));
    assert_int_equal(t, ST_DT_INT8); /* untouched on failure */
    assert_true(st_dtype_parse(st_str_make("float32x", 7), &t));
    assert_int_equal(t, ST_DT_FLOAT32);
}

/* The value of half `h` computed from its fields with ldexp. */
static double half_reference_value(unsigned h)
{
    unsigned exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp((double)mant, -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp((double)(1024 + mant), (int)exp - 25);
    return (h & 0x8000) ? -v : v;
}

static void test_half_to_float_exhaustive(void **state)
{
    (void)state;
    for (unsigned h = 0; h < 65536; h++) {
        float f = st_half_to_float((unsigned short)h);
        bool is_nan_pattern = ((h >> 10) & 0x1f) == 31 && (h & 0x3ff) != 0;
        if (is_nan_pattern) {
            assert_true(isnan(f));
            unsigned short back = st_float_to_half(f);
            assert_int_equal(back & 0x7c00, 0x7c00);
            assert_int_not_equal(back & 0x3ff, 0);
            assert_int_equal(back & 0x8000, h & 0x8000);
            continue;
        }
        double ref = half_reference_value(h);
        assert_true((double)f == ref);
        assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0);
        assert_int_equal(st_float_to_half(f), h);
    }
}

/* Positive finite halves in value order, with 0x7c00 standing for 2^16:
 * IEEE rounding treats overflow as if the exponent range went on, so a
 * value rounds to infinity exactly when it would round to 65536. */
static double half_ladder[0x7c01];

static void half_ladder_init(void)
{
    for (unsigned h = 0; h < 0x7c00; h++)
        half_ladder[h] = half_reference_value(h);
    half_ladder[0x7c00] = 65536.0;
}

/* Round to nearest, ties to even, by searching the ladder in doubles (the
 * differences below are exact). */
static unsigned short half_reference_round(float f)
{
    if (isnan(f))
        return 0x7e00;
    unsigned short sign = signbit(f) ? 0x8000 : 0;
    double x = fabs((double)f);
    if (x >= 65536.0)
        return sign | 0x7c00;
    unsigned lo = 0, hi = 0x7c00; /* ladder[lo] <= x < ladder[hi] */
    while (hi - lo > 1) {
        unsigned mid = (lo + hi) / 2;
        if (half_ladder[mid] <= x)
            lo = mid;
        else
            hi = mid;
    }
    double below = x - half_ladder[lo], above = half_ladder[hi] - x;
    unsigned pick = below < above ? lo : above < below ? hi : (lo & 1) ? hi : lo;
    return (unsigned short)(sign | pick);
}

static void check_round(float f)
{
    unsigned short got = st_float_to_half(f), want = half_reference_round(f);
    if (isnan(f)) {
        assert_int_equal(got & 0x7c00, 0x7c00);
        assert_int_not_equal(got & 0x3ff, 0);
        return;
    }
    if (got != want)
        fail_msg("st_float_to_half(%a) = 0x%04x, reference 0x%04x", (double)f, got, want);
}

static void test_float_to_half_rounding(void **state)
{
    (void)state;
    half_ladder_init();
    /* Every half, every midpoint between neighbours (exact in float) and the
     * floats just either side of it, both signs. */
    for (unsigned h = 0; h < 0x7c00; h++) {
        float lo = (float)half_ladder[h];
        float mid = (float)((half_ladder[h] + half_ladder[h + 1]) / 2);
        assert_true((double)mid == (half_ladder[h] + half_ladder[h + 1]) / 2);
        const float probes[] = { lo, mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY),
                                 nextafterf(lo, INFINITY) };
        for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
            check_round(probes[i]);
            check_round(-probes[i]);
        }
    }
    const float specials[] = { 0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX,
                               FLT_MIN, FLT_TRUE_MIN, 65504.0f, 65519.99f, 65520.0f, 1e10f,
                               0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1.8p-25f, 0x1p-26f,
                               0x1.ffcp-15f, 0x1.ffep-15f, 1.0f / 3.0f };
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
        check_round(specials[i]);
        check_round(-specials[i]);
    }
    assert_int_equal(st_float_to_half(65520.0f), 0x7c00);
    assert_int_equal(st_float_to_half(0x1p-25f), 0x0000);         /* tie to even: 0 */
    assert_int_equal(st_float_to_half(0x1.000002p-25f), 0x0001);
    assert_int_equal(st_float_to_half(0x1.ffep-15f), 0x0400);     /* carries into normal */
    /* A million random bit patterns. */
    uint64_t rng = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 1000000; i++) {
        uint32_t bits = (uint32_t)rng_next(&rng);
        float f;
        memcpy(&f, &bits, sizeof f);
        check_round(f);
    }
}

#if HAVE_F16C_REFERENCE
__attribute__((target("f16c"))) static unsigned short f16c_float_to_half(float f)
{
    return (unsigned short)_cvtss_sh(f, 0); /* round to nearest even */
}
#endif

/* Cross-checks against the hardware converter over a stride of all 2^32
 * float bit patterns, when the CPU has F16C. */
static void test_float_to_half_vs_f16c(void **state)
{
    (void)state;
#if HAVE_F16C_REFERENCE
    if (!st_cpu_features_detected()->has_f16c) {
        skip();
        return;
    }
    for (uint64_t bits = 0; bits <= UINT32_MAX; bits += 61) {
        uint32_t b = (uint32_t)bits;
        float f;
        memcpy(&f, &b, sizeof f);
        unsigned short got = st_float_to_half(f), want = f16c_float_to_half(f);
        if (isnan(f))
            continue;
        if (got != want)
            fail_msg("st_float_to_half(%a) = 0x%04x, F16C 0x%04x", (double)f, got, want);
    }
#else
    skip();
#endif
}

/* ---- time --------------------------------------------------------------- */

static void test_time_clocks(void **state)
{
    (void)state;
    uint64_t prev = st_now_ns();
    for (int i = 0; i < 1000; i++) {
        uint64_t now = st_now_ns();
        assert_true(now >= prev);
        prev = now;
    }
    uint64_t us_before = st_now_us();
    uint64_t ns = st_now_ns();
    uint64_t us_after = st_now_us();
    assert_true(us_before <= ns / 1000 && ns / 1000 <= us_after);

    uint64_t start = st_now_ns();
    st_sleep_us(2000);
    assert_true(st_now_ns() - start >= 2000000u);
    st_sleep_us(0);

    assert_true(st_wall_ns() > UINT64_C(1577836800) * 1000000000u); /* after 2020 */
}

static void test_time_rfc3339(void **state)
{
    (void)state;
    char buf[ST_TIME_RFC3339_SIZE];
    assert_int_equal(st_time_format_rfc3339(0, buf, sizeof buf), 24);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    st_time_format_rfc3339(UINT64_C(1767225600123456789), buf, sizeof buf);
    assert_string_equal(buf, "2026-01-01T00:00:00.123Z");
    st_time_format_rfc3339(UINT64_C(1709251199) * 1000000000u + 999999999u, buf, sizeof buf);
    assert_string_equal(buf, "2024-02-29T23:59:59.999Z");
    st_time_format_rfc3339(UINT64_C(4102444799) * 1000000000u + 5000000u, buf, sizeof buf);
    assert_string_equal(buf, "2099-12-31T23:59:59.005Z");

    char small[24];
    memset(small, 'x', sizeof small);
    assert_int_equal(st_time_format_rfc3339(0, small, sizeof small), 0);
    assert_int_equal(small[0], '\0');
    assert_int_equal(st_time_format_rfc3339(0, NULL, 0), 0);

    st_time_format_rfc3339(st_wall_ns(), buf, sizeof buf);
    assert_int_equal(strlen(buf), 24);
    assert_int_equal(buf[10], 'T');
    assert_int_equal(buf[23], 'Z');
    assert_true(buf[0] == '2');
}

/* ---- hash --------------------------------------------------------------- */

static void test_hash_basics(void **state)
{
    (void)state;
    const char text[] = "the quick brown fox jumps over the lazy dog";
    uint64_t h = st_hash64(text, sizeof text - 1, 0);
    assert_true(h == st_hash64(text, sizeof text - 1, 0));
    assert_true(h != st_hash64(text, sizeof text - 1, 1));
    assert_true(h == st_hash_str(ST_STR("the quick brown fox jumps over the lazy dog"), 0));
    assert_true(st_hash64(NULL, 0, 0) == st_hash64("", 0, 0));
    assert_true(st_hash64(NULL, 0, 0) != st_hash64(NULL, 0, 1));

    /* Inputs that differ only by trailing zeros, and every prefix length. */
    unsigned char zeros[80] = { 'a' };
    uint64_t seen[81];
    for (size_t len = 0; len <= 80; len++) {
        seen[len] = st_hash64(zeros, len, 7);
        for (size_t j = 0; j < len; j++)
            assert_true(seen[j] != seen[len]);
    }

    /* Alignment never changes the result. */
    unsigned char backing[128];
    for (size_t off = 0; off < 8; off++) {
        memcpy(backing + off, text, sizeof text - 1);
        assert_true(st_hash64(backing + off, sizeof text - 1, 0) == h);
    }

    assert_true(st_hash_seed_random() != st_hash_seed_random());
    for (uint64_t x = 1; x < 1000; x++)
        assert_true(st_hash_u64(x) != st_hash_u64(x - 1));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_hash_quality(void **state)
{
    (void)state;
    /* Avalanche: flipping any one input bit flips about half the output. */
    uint64_t rng = 42;
    uint64_t flipped_total = 0, trials = 0;
    for (int round = 0; round < 200; round++) {
        unsigned char in[40];
        size_t len = 1 + (size_t)(rng_next(&rng) % sizeof in);
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)rng_next(&rng);
        uint64_t seed = round % 2 ? rng_next(&rng) : 0;
        uint64_t base = st_hash64(in, len, seed);
        for (size_t bit = 0; bit < len * 8; bit++) {
            in[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            int d = __builtin_popcountll(base ^ st_hash64(in, len, seed));
            in[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            assert_true(d >= 8 && d <= 56);
            flipped_total += (uint64_t)d;
            trials++;
        }
    }
    double mean = (double)flipped_total / (double)trials;
    assert_true(mean > 31.0 && mean < 33.0);

    /* Sequential keys: no 64-bit collisions, even spread over buckets. */
    enum { N = 1 << 18, BUCKETS = 1024 };
    uint64_t *hashes = malloc(N * sizeof *hashes);
    static unsigned counts[BUCKETS];
    assert_non_null(hashes);
    for (int i = 0; i < N; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "model-%d", i);
        hashes[i] = st_hash64(key, (size_t)n, 0);
        counts[hashes[i] % BUCKETS]++;
    }
    double chi2 = 0, expect = (double)N / BUCKETS;
    for (int b = 0; b < BUCKETS; b++)
        chi2 += ((double)counts[b] - expect) * ((double)counts[b] - expect) / expect;
    assert_true(chi2 < 1023 + 6 * 45.2); /* 1023 degrees of freedom, 6 sigma */
    qsort(hashes, N, sizeof *hashes, cmp_u64);
    for (int i = 1; i < N; i++)
        assert_true(hashes[i] != hashes[i - 1]);
    free(hashes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_tables),
        cmocka_unit_test(test_status_fail),
        cmocka_unit_test(test_status_fail_wrap),
        cmocka_unit_test(test_alloc_count_and_fail_after),
        cmocka_unit_test(test_alloc_overflow),
        cmocka_unit_test(test_str_eq),
        cmocka_unit_test(test_str_edit_distance),
        cmocka_unit_test(test_buf_basic),
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_buf_reserve_overflow),
        cmocka_unit_test(test_buf_fault_injection),
        cmocka_unit_test(test_arena_alignment),
        cmocka_unit_test(test_arena_big_and_reset),
        cmocka_unit_test(test_arena_errors),
        cmocka_unit_test(test_arena_fault_injection),
        cmocka_unit_test(test_dtype_tables),
        cmocka_unit_test(test_half_to_float_exhaustive),
        cmocka_unit_test(test_float_to_half_rounding),
        cmocka_unit_test(test_float_to_half_vs_f16c),
        cmocka_unit_test(test_time_clocks),
        cmocka_unit_test(test_time_rfc3339),
        cmocka_unit_test(test_hash_basics),
        cmocka_unit_test(test_hash_quality),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
