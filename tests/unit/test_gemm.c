/* test_gemm.c - eng_sgemm against eng_sgemm_ref: every kernel variant the
 * CPU can run (forced through gemm_int.h), every path (stream, dot,
 * blocked, pre-packed B, threads), all transposes, padded strides,
 * alpha/beta, NaN-filled C with beta 0, and C's padding left untouched. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/alloc.h"
#include "base/cpu.h"
#include "base/pool.h"
#include "engine/kernels/gemm_int.h"

/* --- helpers ---------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rand_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static size_t rand_below(size_t n)
{
    return (size_t)rand_u32() % n;
}

static float rand_float(void) /* [-1, 1) */
{
    return (float)(rand_u32() & 0xffffff) / (float)0x800000 - 1.0f;
}

/* Sizes at and around every tile and block edge of every variant. */
static const size_t edge_sizes[] = { 1,  2,  3,  4,  5,  6,  7,  8,  9,  12, 13, 14, 15, 16,  17,  23,
                                     24, 29, 31, 32, 33, 47, 48, 63, 64, 65, 97, 127, 128, 129, 167, 168,
                                     169, 191, 255, 256, 257, 263, 300 };

static size_t rand_size(void)
{
    if (rand_below(2))
        return edge_sizes[rand_below(sizeof edge_sizes / sizeof edge_sizes[0])];
    return 1 + rand_below(300);
}

static const float alphas[] = { 1.0f, -0.5f, 2.5f };
static const float betas[] = { 0.0f, 1.0f, 0.25f, -1.0f };

typedef struct gemm_case {
    size_t m, n, k;
    bool trans_a, trans_b;
    size_t lda, ldb, ldc; /* 0: the tight stride */
    float alpha, beta;
} gemm_case;

static gemm_case random_case(size_t m, size_t n, size_t k)
{
    gemm_case g = { .m = m, .n = n, .k = k };
    g.trans_a = rand_below(2);
    g.trans_b = rand_below(2);
    g.lda = rand_below(3) ? 0 : 1 + rand_below(7);
    g.ldb = rand_below(3) ? 0 : 1 + rand_below(7);
    g.ldc = rand_below(3) ? 0 : 1 + rand_below(7);
    g.alpha = alphas[rand_below(3)];
    g.beta = betas[rand_below(4)];
    return g;
}

/* A matrix stored rows x cols with row stride ld, allocated to the last
 * element exactly so that reads past it trip the address sanitizer. */
static float *matrix(size_t rows, size_t cols, size_t ld)
{
    size_t count = rows == 0 || cols == 0 ? 1 : (rows - 1) * ld + cols;
    float *x = malloc(count * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < count; i++)
        x[i] = rand_float();
    return x;
}

/* RUN_UNALIGNED: B copied to an odd byte address (a weight in place in a
 * model file) and multiplied through eng_sgemm_unaligned_b. */
typedef enum { RUN_PLAIN, RUN_PACKED, RUN_UNALIGNED } run_kind;

/* Runs case g with variant v (plain or with B pre-packed), on `pool`, and
 * compares with the reference; C's padding must stay as it was. */
static void check_case(const gemm_variant *v, gemm_case g, run_kind kind, st_pool *pool)
{
    const size_t m = g.m, n = g.n, k = g.k;
    const size_t a_rows = g.trans_a ? k : m, a_cols = g.trans_a ? m : k;
    const size_t b_rows = g.trans_b ? n : k, b_cols = g.trans_b ? k : n;
    const size_t lda = a_cols + g.lda, ldb = b_cols + g.ldb, ldc = n + g.ldc;
    float *a = matrix(a_rows, a_cols, lda);
    float *b = matrix(b_rows, b_cols, ldb);
    float *c = matrix(m, n, ldc);
    const size_t c_count = m == 0 || n == 0 ? 1 : (m - 1) * ldc + n;
    for (size_t i = 0; i < c_count; i++) {
        if (i % ldc >= n)
            c[i] = 12345.0f; /* padding: must survive */
        else if (g.beta == 0.0f)
            c[i] = NAN; /* beta 0 must not read C */
    }
    float *want = malloc(c_count * sizeof *want);
    assert_non_null(want);
    memcpy(want, c, c_count * sizeof *want);
    eng_sgemm_ref(m, n, k, g.alpha, a, lda, g.trans_a, b, ldb, g.trans_b, g.beta, want, ldc);

    void *mem = NULL;
    if (kind == RUN_PACKED) {
        size_t bytes = gemm_pack_b_bytes_variant(v, k, n);
        assert_true(bytes > 0);
        mem = malloc(bytes);
        assert_non_null(mem);
        assert_null(gemm_pack_b_variant(v, k, n, b, ldb, g.trans_b, mem, bytes - 1));
        eng_sgemm_packed_b *pb = gemm_pack_b_variant(v, k, n, b, ldb, g.trans_b, mem, bytes);
        assert_non_null(pb);
        assert_int_equal(eng_sgemm_packed_b_k(pb), k);
        assert_int_equal(eng_sgemm_packed_b_n(pb), n);
        /* B is not referenced after packing. */
        memset(b, 0xff, (b_rows == 0 || b_cols == 0 ? 1 : (b_rows - 1) * ldb + b_cols) * sizeof *b);
        eng_sgemm_packed(m, g.alpha, a, lda, g.trans_a, pb, g.beta, c, ldc, pool);
    } else if (kind == RUN_UNALIGNED) {
        size_t b_bytes = (b_rows == 0 || b_cols == 0 ? 1 : (b_rows - 1) * ldb + b_cols) * sizeof *b;
        size_t shift = 1 + rand_below(3);
        unsigned char *raw = malloc(b_bytes + shift);
        assert_non_null(raw);
        memcpy(raw + shift, b, b_bytes);
        gemm_sgemm_unaligned_b_variant(v, m, n, k, g.alpha, a, lda, g.trans_a, raw + shift, ldb, g.trans_b, g.beta,
                                       c, ldc, pool);
        free(raw);
    } else {
        gemm_sgemm_variant(v, m, n, k, g.alpha, a, lda, g.trans_a, b, ldb, g.trans_b, g.beta, c, ldc, pool);
    }

    for (size_t i = 0; i < c_count; i++) {
        float got = c[i], exp = want[i];
        float tol = 1e-5f * (float)(k + 1) * (1.0f + fabsf(exp));
        if (i % ldc >= n ? got != 12345.0f : !(fabsf(got - exp) <= tol))
            fail_msg("%s%s: m=%zu n=%zu k=%zu ta=%d tb=%d lda=%zu ldb=%zu ldc=%zu alpha=%g beta=%g: "
                     "C[%zu][%zu] = %.8g, want %.8g",
                     v->name, kind == RUN_PACKED ? " packed" : kind == RUN_UNALIGNED ? " unaligned B" : "", m, n, k, g.trans_a, g.trans_b, lda, ldb, ldc,
                     (double)g.alpha, (double)g.beta, i / ldc, i % ldc, (double)got, (double)exp);
    }
    free(mem);
    free(want);
    free(a);
    free(b);
    free(c);
}

/* The variants this CPU can run. */
static size_t runnable_variants(const gemm_variant **out)
{
    const st_cpu_feature_set *f = st_cpu_features_detected();
    size_t count = 0;
    out[count++] = gemm_variant_generic();
    if (f->has_avx2 && f->has_fma && gemm_variant_avx2())
        out[count++] = gemm_variant_avx2();
    if (f->has_avx512f && gemm_variant_avx512())
        out[count++] = gemm_variant_avx512();
    return count;
}

/* --- tests -------------------------------------------------------------------- */

/* Batch-1 serving shapes: m = 1 .. 16 against edge-sized n and k, every
 * transpose (stream, dot and small blocked paths). */
static void test_small_m(void **state)
{
    (void)state;
    static const size_t ns[] = { 1, 5, 8, 15, 16, 17, 31, 32, 33, 64, 100 };
    static const size_t ks[] = { 1, 3, 16, 17, 31, 64, 100 };
    const gemm_variant *vs[3];
    size_t nv = runnable_variants(vs);
    for (size_t vi = 0; vi < nv; vi++)
        for (size_t m = 1; m <= 16; m++)
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                    for (int t = 0; t < 4; t++) {
                        gemm_case g = random_case(m, ns[ni], ks[ki]);
                        g.trans_a = t & 1;
                        g.trans_b = t >> 1;
                        check_case(vs[vi], g, RUN_PLAIN, NULL);
                    }
}

/* One-column C (matrix times vector) in every layout. */
static void test_one_column(void **state)
{
    (void)state;
    static const size_t ms[] = { 1, 7, 9, 64, 300 };
    static const size_t ks[] = { 1, 15, 16, 17, 200 };
    const gemm_variant *vs[3];
    size_t nv = runnable_variants(vs);
    for (size_t vi = 0; vi < nv; vi++)
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (int t = 0; t < 8; t++) {
                    gemm_case g = random_case(ms[mi], 1, ks[ki]);
                    g.trans_a = t & 1;
                    g.trans_b = (t >> 1) & 1;
                    g.ldc = 0; /* C contiguous: the gemv path */
                    g.ldb = t >> 2 ? g.ldb : 0;
                    check_case(vs[vi], g, RUN_PLAIN, NULL);
                    check_case(vs[vi], g, RUN_PACKED, NULL);
                }
}

static void test_random_shapes(void **state)
{
    (void)state;
    const gemm_variant *vs[3];
    size_t nv = runnable_variants(vs);
    for (size_t vi = 0; vi < nv; vi++)
        for (int i = 0; i < 300; i++)
            check_case(vs[vi], random_case(rand_size(), rand_size(), rand_size()), RUN_PLAIN, NULL);
}

/* Shapes past the cache blocks: depth over kc, rows over mc, columns over
 * nc, so the later depth blocks accumulate into C. */
static void test_blocking(void **state)
{
    (void)state;
    static const size_t shapes[][3] = { { 40, 2100, 30 }, { 170, 70, 600 }, { 350, 200, 520 },
                                        { 9, 2200, 3 },   { 100, 33, 1030 }, { 3, 2100, 50 } };
    const gemm_variant *vs[3];
    size_t nv = runnable_variants(vs);
    for (size_t vi = 0; vi < nv; vi++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++) {
                gemm_case g = random_case(shapes[s][0], shapes[s][1], shapes[s][2]);
                g.trans_a = t & 1;
                g.trans_b = t >> 1;
                check_case(vs[vi], g, RUN_PLAIN, NULL);
            }
}

static void test_packed_b(void **state)
{
    (void)state;
    const gemm_variant *vs[3];
    size_t nv = runnable_variants(vs);
    for (size_t vi = 0; vi < nv; vi++) {
        for (int i = 0; i < 150; i++) {
            size_t m = i < 60 ? 1 + rand_below(16) : rand_size();
            check_case(vs[vi], random_case(m, rand_size(), rand_size()), RUN_PACKED, NULL);
        }
        check_case(vs[vi], random_case(300, 2100, 300), RUN_PACKED, NULL);
    }
}

/* B at odd addresses: small M (one block) and shapes of several blocks
 * in both storage orders, alone and on a pool. */
static void test_unaligned_b(void **state)
{
    (void)state;
    static const size_t shapes[][3] = { { 1, 100, 64 },  { 3, 33, 17 },    { 1, 2100, 300 }, { 64, 700, 500 },
                                        { 9, 2200, 3 },  { 100, 33, 1030 }, { 1, 40, 9000 },  { 5, 9000, 40 } };
    st_pool *pool = NULL;
    st_error err;
    assert_int_equal(st_pool_create(2, &pool, &err), ST_OK);
    const gemm_variant *vs[3];
    size_t nv = runnable_variants(vs);
    for (size_t vi = 0; vi < nv; vi++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++) {
                gemm_case g = random_case(shapes[s][0], shapes[s][1], shapes[s][2]);
                g.trans_a = t & 1;
                g.trans_b = t >> 1;
                check_case(vs[vi], g, RUN_UNALIGNED, t == 3 ? pool : NULL);
            }
        for (int i = 0; i < 40; i++)
            check_case(vs[vi], random_case(rand_size(), rand_size(), rand_size()), RUN_UNALIGNED, NULL);
    }
    st_pool_destroy(pool);
}

/* Big enough to be split over the pool, in every grid shape. */
static void test_threads(void **state)
{
    (void)state;
    st_pool *pool = NULL;
    st_error err;
    assert_int_equal(st_pool_create(3, &pool, &err), ST_OK);
    static const size_t shapes[][3] = { { 1, 4000, 300 }, { 3, 3000, 257 }, { 7, 1000, 700 }, { 300, 300, 300 },
                                        { 1000, 40, 100 }, { 64, 700, 200 }, { 13, 2500, 64 }, { 200, 3000, 20 },
                                        { 20000, 1, 300 } };
    const gemm_variant *vs[3];
    size_t nv = runnable_variants(vs);
    for (size_t vi = 0; vi < nv; vi++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++) {
                gemm_case g = random_case(shapes[s][0], shapes[s][1], shapes[s][2]);
                g.trans_a = t & 1;
                g.trans_b = t >> 1;
                check_case(vs[vi], g, RUN_PLAIN, pool);
                check_case(vs[vi], g, RUN_PACKED, pool);
            }
    st_pool_destroy(pool);
}

/* The public entry points use the variant st_cpu_features() allows. */
static void test_dispatch(void **state)
{
    (void)state;
    const st_cpu_feature_set *f = st_cpu_features();
    const gemm_variant *v = gemm_variant_best();
    if (f->has_avx512f)
        assert_string_equal(v->name, "avx512");
    else if (f->has_avx2 && f->has_fma)
        assert_string_equal(v->name, "avx2");
    else
        assert_string_equal(v->name, "generic");

    static const size_t shapes[][3] = { { 1, 100, 70 }, { 5, 64, 33 }, { 77, 90, 130 } };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        gemm_case g = random_case(shapes[s][0], shapes[s][1], shapes[s][2]);
        size_t m = g.m, n = g.n, k = g.k;
        float *a = matrix(m, k, k), *b = matrix(k, n, n), *c = matrix(m, n, n), *want = matrix(m, n, n);
        eng_sgemm_ref(m, n, k, 1.0f, a, k, false, b, n, false, 0.0f, want, n);
        eng_sgemm(m, n, k, 1.0f, a, k, false, b, n, false, 0.0f, c, n, NULL);
        for (size_t i = 0; i < m * n; i++)
            assert_true(fabsf(c[i] - want[i]) <= 1e-5f * (float)(k + 1) * (1.0f + fabsf(want[i])));
        size_t bytes = eng_sgemm_pack_b_bytes(k, n);
        void *mem = malloc(bytes);
        eng_sgemm_packed_b *pb = eng_sgemm_pack_b(k, n, b, n, false, mem, bytes);
        assert_non_null(pb);
        memset(c, 0, m * n * sizeof *c);
        eng_sgemm_packed(m, 1.0f, a, k, false, pb, 0.0f, c, n, NULL);
        for (size_t i = 0; i < m * n; i++)
            assert_true(fabsf(c[i] - want[i]) <= 1e-5f * (float)(k + 1) * (1.0f + fabsf(want[i])));
        free(mem);
        free(a);
        free(b);
        free(c);
        free(want);
    }
}

/* Empty products, k = 0 and alpha = 0: C = beta * C without reading A or B
 * (passed as NULL here). */
static void test_degenerate(void **state)
{
    (void)state;
    const gemm_variant *vs[3];
    size_t nv = runnable_variants(vs);
    for (size_t vi = 0; vi < nv; vi++) {
        float c[6] = { 1, 2, 3, 4, 5, 6 };
        gemm_sgemm_variant(vs[vi], 0, 3, 4, 1.0f, NULL, 4, false, NULL, 3, false, 0.0f, c, 3, NULL);
        gemm_sgemm_variant(vs[vi], 2, 0, 4, 1.0f, NULL, 4, false, NULL, 3, false, 0.0f, c, 3, NULL);
        assert_true(c[0] == 1 && c[5] == 6);
        gemm_sgemm_variant(vs[vi], 2, 3, 0, 1.0f, NULL, 1, false, NULL, 3, false, 2.0f, c, 3, NULL);
        assert_true(c[0] == 2 && c[5] == 12);
        gemm_sgemm_variant(vs[vi], 2, 3, 5, 0.0f, NULL, 5, true, NULL, 5, true, 1.0f, c, 3, NULL);
        assert_true(c[0] == 2 && c[5] == 12);
        float nan_c[4] = { NAN, NAN, NAN, NAN };
        gemm_sgemm_variant(vs[vi], 2, 2, 0, 1.0f, NULL, 1, false, NULL, 2, false, 0.0f, nan_c, 2, NULL);
        assert_true(nan_c[0] == 0 && nan_c[3] == 0);
    }
    assert_int_equal(eng_sgemm_pack_b_bytes(SIZE_MAX / 2, 64), 0);
    size_t bytes = eng_sgemm_pack_b_bytes(0, 0);
    void *mem = malloc(bytes);
    eng_sgemm_packed_b *pb = eng_sgemm_pack_b(0, 0, NULL, 1, false, mem, bytes);
    assert_non_null(pb);
    float c1 = 7.0f;
    eng_sgemm_packed(1, 1.0f, NULL, 1, false, pb, 1.0f, &c1, 1, NULL);
    assert_true(c1 == 7.0f);
    free(mem);
}

/* Packing memory that cannot be allocated: a fresh thread (empty cache)
 * with every allocation failing still gets the right answer. */
static void *alloc_failure_thread(void *arg)
{
    const gemm_variant *v = arg;
    st_alloc_fail_after(1);
    gemm_case g = random_case(100, 90, 80);
    check_case(v, g, RUN_PLAIN, NULL);
    check_case(v, random_case(70, 200, 90), RUN_PACKED, NULL);
    g.trans_a = true;
    g.trans_b = true;
    g.m = 5;
    check_case(v, g, RUN_PLAIN, NULL);
    check_case(v, random_case(3, 40, 300), RUN_UNALIGNED, NULL);
    g = random_case(20, 300, 40);
    g.trans_b = false;
    check_case(v, g, RUN_UNALIGNED, NULL);
    st_alloc_fail_reset();
    return NULL;
}

static void test_alloc_failure(void **state)
{
    (void)state;
    const gemm_variant *vs[3];
    size_t nv = runnable_variants(vs);
    for (size_t vi = 0; vi < nv; vi++) {
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, alloc_failure_thread, (void *)vs[vi]), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
    }
}

int main(void)
{
    /* STRATUS_TEST_SEED=<n> explores other random shapes. */
    const char *seed = getenv("STRATUS_TEST_SEED");
    if (seed && *seed)
        rng ^= strtoull(seed, NULL, 10) * 0x2545f4914f6cdd1du;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_m),       cmocka_unit_test(test_one_column),
        cmocka_unit_test(test_random_shapes),
        cmocka_unit_test(test_blocking),      cmocka_unit_test(test_packed_b),
        cmocka_unit_test(test_unaligned_b),
        cmocka_unit_test(test_threads),       cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_degenerate),    cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests_name("gemm", tests, NULL, NULL);
}
