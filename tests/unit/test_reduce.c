/* test_reduce.c - unit tests for the strided reduction engine
 * (src/engine/ops/reduce.c): every op and type against a naive reference
 * that walks every element, on random shapes and axis sets (including
 * size-0 and size-1 dims and scalars), serially and through a thread pool,
 * plus the identities of empty reductions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/arena.h"
#include "base/pool.h"
#include "engine/ops/reduce.h"

/* A small deterministic generator so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static const char *op_name(eng_reduce_op op)
{
    static const char *const names[] = { "Sum", "Mean", "Max", "Min", "Prod", "L1", "L2", "LogSum", "LogSumExp",
                                         "SumSquare" };
    return names[op];
}

/* Reference: accumulate each element into its output slot in double (or
 * in uint64 with wrap-around for integer sums and products). */
static void reference(eng_reduce_op op, st_dtype t, const double *x, const int64_t *shape, uint32_t rank,
                      const bool *is_reduced, double *out, double *scale, size_t out_count, size_t reduce_count)
{
    bool is_int = t == ST_DT_INT32 || t == ST_DT_INT64;
    uint64_t *iacc = calloc(out_count + 1, sizeof *iacc);
    double *mx = calloc(out_count + 1, sizeof *mx);
    assert_non_null(iacc);
    assert_non_null(mx);
    for (size_t o = 0; o < out_count; o++) {
        out[o] = op == ENG_REDUCE_PROD ? 1 : op == ENG_REDUCE_MAX ? -INFINITY : op == ENG_REDUCE_MIN ? INFINITY : 0;
        iacc[o] = op == ENG_REDUCE_PROD ? 1 : 0;
        mx[o] = -INFINITY;
        scale[o] = 0;
    }
    size_t count = 1;
    for (uint32_t d = 0; d < rank; d++)
        count *= (size_t)shape[d];
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < count; i++) {
            size_t rem = i, o = 0, mul = 1;
            for (int d = (int)rank - 1; d >= 0; d--) {
                size_t c = rem % (size_t)shape[d];
                rem /= (size_t)shape[d];
                if (!is_reduced[d]) {
                    o += c * mul;
                    mul *= (size_t)shape[d];
                }
            }
            double v = x[i];
            if (pass == 0) {
                mx[o] = v > mx[o] ? v : mx[o];
                continue;
            }
            int64_t iv = (int64_t)v;
            scale[o] += fabs(v);
            switch (op) {
            case ENG_REDUCE_SUM:
            case ENG_REDUCE_MEAN:
            case ENG_REDUCE_LOG_SUM: out[o] += v; iacc[o] += (uint64_t)iv; break;
            case ENG_REDUCE_MAX: out[o] = v > out[o] ? v : out[o]; break;
            case ENG_REDUCE_MIN: out[o] = v < out[o] ? v : out[o]; break;
            case ENG_REDUCE_PROD: out[o] *= v; iacc[o] *= (uint64_t)iv; break;
            case ENG_REDUCE_L1: out[o] += fabs(v); iacc[o] += (uint64_t)(iv < 0 ? -iv : iv); break;
            case ENG_REDUCE_L2:
            case ENG_REDUCE_SUM_SQUARE: out[o] += v * v; iacc[o] += (uint64_t)(iv * iv); break;
            case ENG_REDUCE_LOG_SUM_EXP: out[o] += exp(v - mx[o]); break;
            }
        }
    }
    for (size_t o = 0; o < out_count; o++) {
        double n = (double)reduce_count;
        if (is_int && (op == ENG_REDUCE_SUM || op == ENG_REDUCE_PROD || op == ENG_REDUCE_L1 ||
                       op == ENG_REDUCE_SUM_SQUARE || op == ENG_REDUCE_MEAN || op == ENG_REDUCE_L2)) {
            /* Wrap to the element width like the engine does. */
            uint64_t w = iacc[o];
            int64_t sv;
            if (t == ST_DT_INT32)
                sv = (int32_t)(uint32_t)w;
            else
                sv = (int64_t)w;
            out[o] = (double)sv;
        }
        if (op == ENG_REDUCE_MEAN && reduce_count)
            scale[o] /= n;
        if (is_int && reduce_count == 0 && op == ENG_REDUCE_MAX) /* the type's lowest */
            out[o] = t == ST_DT_INT32 ? (double)INT32_MIN : (double)INT64_MIN;
        if (is_int && reduce_count == 0 && op == ENG_REDUCE_MIN)
            out[o] = t == ST_DT_INT32 ? (double)INT32_MAX : (double)INT64_MAX;
        switch (op) {
        case ENG_REDUCE_MEAN: out[o] = is_int ? (reduce_count ? trunc(out[o] / n) : 0) : out[o] / n; break;
        case ENG_REDUCE_L2: out[o] = is_int ? trunc(sqrt(out[o])) : sqrt(out[o]); break;
        case ENG_REDUCE_LOG_SUM: out[o] = log(out[o]); break;
        case ENG_REDUCE_LOG_SUM_EXP: out[o] = log(out[o]) + (isfinite(mx[o]) ? mx[o] : 0); break;
        default: break;
        }
    }
    free(iacc);
    free(mx);
}

static double get(st_dtype t, const void *p, size_t i)
{
    switch (t) {
    case ST_DT_FLOAT32: return ((const float *)p)[i];
    case ST_DT_FLOAT64: return ((const double *)p)[i];
    case ST_DT_INT32: return ((const int32_t *)p)[i];
    case ST_DT_INT64: return (double)((const int64_t *)p)[i];
    case ST_DT_FLOAT16: return st_half_to_float(((const uint16_t *)p)[i]);
    default: return NAN;
    }
}

static void put(st_dtype t, void *p, size_t i, double v)
{
    switch (t) {
    case ST_DT_FLOAT32: ((float *)p)[i] = (float)v; break;
    case ST_DT_FLOAT64: ((double *)p)[i] = v; break;
    case ST_DT_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case ST_DT_INT64: ((int64_t *)p)[i] = (int64_t)v; break;
    case ST_DT_FLOAT16: ((uint16_t *)p)[i] = st_float_to_half((float)v); break;
    default: break;
    }
}

/* Random values the op keeps finite: products near 1, positive sums for
 * the logs, small integers. */
static double random_value(eng_reduce_op op, st_dtype t)
{
    bool is_int = t == ST_DT_INT32 || t == ST_DT_INT64;
    if (is_int) {
        int v = (int)(rnd() % 7) - 3;
        if (op == ENG_REDUCE_LOG_SUM)
            v = v < 0 ? -v : v;
        return v;
    }
    double u = (double)(rnd() % 100000) / 100000.0;
    if (t == ST_DT_FLOAT16) /* exactly representable */
        u = (double)(rnd() % 64) / 64.0;
    switch (op) {
    case ENG_REDUCE_PROD: return 0.75 + 0.5 * u;
    case ENG_REDUCE_LOG_SUM: return 0.1 + u;
    case ENG_REDUCE_LOG_SUM_EXP: return 20.0 * u - 10.0;
    default: return 4.0 * u - 2.0;
    }
}

/* Sums may cancel: the error allowed grows with the sum of magnitudes
 * (`scale`), not with the result. */
static bool close_enough(st_dtype t, double got, double want, double scale)
{
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    if (t == ST_DT_INT32 || t == ST_DT_INT64)
        return got == want;
    double tol = t == ST_DT_FLOAT64 ? 1e-9 : t == ST_DT_FLOAT16 ? 1e-2 : 1e-4;
    return fabs(got - want) <= tol * (1.0 + fabs(want) + scale);
}

/* Runs one reduction through eng_reduce and the reference and compares. */
static void check_one(eng_reduce_op op, st_dtype t, const int64_t *shape, uint32_t rank, const bool *is_reduced,
                      st_pool *pool, st_arena *arena)
{
    size_t count = 1, out_count = 1, reduce_count = 1;
    for (uint32_t d = 0; d < rank; d++) {
        count *= (size_t)shape[d];
        if (is_reduced[d])
            reduce_count *= (size_t)shape[d];
        else
            out_count *= (size_t)shape[d];
    }
    size_t es = st_dtype_size(t);
    void *xd = malloc(count * es + 8);
    void *od = malloc(out_count * es + 8);
    double *xv = malloc((count + 1) * sizeof *xv);
    double *want = malloc((out_count + 1) * sizeof *want);
    double *scale = malloc((out_count + 1) * sizeof *scale);
    assert_true(xd && od && xv && want && scale);
    for (size_t i = 0; i < count; i++) {
        put(t, xd, i, random_value(op, t));
        xv[i] = get(t, xd, i); /* what the engine sees after rounding */
    }
    reference(op, t, xv, shape, rank, is_reduced, want, scale, out_count, reduce_count);
    bool may_cancel = op == ENG_REDUCE_SUM || op == ENG_REDUCE_MEAN;
    eng_tensor x = eng_tensor_make(t, shape, rank, xd);
    eng_tensor o = eng_tensor_make(t, (int64_t[]){ (int64_t)out_count }, 1, od);
    st_arena_reset(arena);
    assert_int_equal(eng_reduce(op, &x, is_reduced, &o, arena, pool), ST_OK);
    for (size_t i = 0; i < out_count; i++) {
        double got = get(t, od, i);
        if (!close_enough(t, got, want[i], may_cancel ? scale[i] : 0)) {
            char desc[256];
            int len = snprintf(desc, sizeof desc, "shape [");
            for (uint32_t d = 0; d < rank; d++)
                len += snprintf(desc + len, sizeof desc - (size_t)len, "%s%lld%s", d ? "," : "",
                                (long long)shape[d], is_reduced[d] ? "r" : "");
            fail_msg("Reduce%s %s %s] pool %d: output %zu is %.9g, expected %.9g", op_name(op), st_dtype_name(t),
                     desc, st_pool_size(pool), i, got, want[i]);
        }
    }
    free(xd);
    free(od);
    free(xv);
    free(want);
    free(scale);
}

static const st_dtype all_types[] = { ST_DT_FLOAT32, ST_DT_FLOAT64, ST_DT_INT32, ST_DT_INT64, ST_DT_FLOAT16 };

static bool op_applies(eng_reduce_op op, st_dtype t)
{
    bool is_int = t == ST_DT_INT32 || t == ST_DT_INT64;
    /* Integer logs truncate transcendental results: not a meaningful
     * comparison against a double reference. */
    return !(is_int && (op == ENG_REDUCE_LOG_SUM || op == ENG_REDUCE_LOG_SUM_EXP));
}

static void random_cases(st_pool *pool, int n_cases, int max_dim)
{
    st_arena arena;
    st_arena_init(&arena, 0);
    for (int c = 0; c < n_cases; c++) {
        uint32_t rank = rnd() % 6;
        int64_t shape[ENG_MAX_RANK];
        bool is_reduced[ENG_MAX_RANK];
        for (uint32_t d = 0; d < rank; d++) {
            uint32_t r = rnd() % 10;
            shape[d] = r == 0 ? 1 : r == 1 && c % 7 == 0 ? 0 : 1 + (int64_t)(rnd() % (uint32_t)max_dim);
            is_reduced[d] = rnd() % 2;
        }
        if (rank && rnd() % 5 == 0) /* all axes, as an empty axes list does */
            for (uint32_t d = 0; d < rank; d++)
                is_reduced[d] = true;
        for (int op = ENG_REDUCE_SUM; op <= ENG_REDUCE_SUM_SQUARE; op++)
            for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++)
                if (op_applies((eng_reduce_op)op, all_types[ti]))
                    check_one((eng_reduce_op)op, all_types[ti], shape, rank, is_reduced, pool, &arena);
    }
    st_arena_free(&arena);
}

static void test_random_serial(void **state)
{
    (void)state;
    random_cases(NULL, 300, 7);
}

/* Shapes large enough to take the threaded paths (group 0 kept, or the
 * columns of a single block), each innermost layout. */
static void test_threaded(void **state)
{
    (void)state;
    st_pool *pool = NULL;
    st_error err = { 0 };
    assert_int_equal(st_pool_create(4, &pool, &err), ST_OK);
    st_arena arena;
    st_arena_init(&arena, 0);
    static const struct {
        uint32_t rank;
        int64_t shape[4];
        bool red[4];
    } cases[] = {
        { 2, { 256, 768 }, { false, true } },            /* transformer ReduceMean */
        { 2, { 4096, 40 }, { true, false } },            /* columns split */
        { 3, { 64, 50, 33 }, { false, true, false } },   /* [O][R][I] */
        { 4, { 8, 30, 20, 17 }, { false, true, false, true } },
        { 3, { 3, 200, 100 }, { true, false, true } },   /* group 0 reduced: serial */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int op = ENG_REDUCE_SUM; op <= ENG_REDUCE_SUM_SQUARE; op++) {
            check_one((eng_reduce_op)op, ST_DT_FLOAT32, cases[i].shape, cases[i].rank, cases[i].red, pool, &arena);
            check_one((eng_reduce_op)op, ST_DT_FLOAT64, cases[i].shape, cases[i].rank, cases[i].red, pool, &arena);
        }
    random_cases(pool, 40, 12);
    st_arena_free(&arena);
    st_pool_destroy(pool);
}

/* Reducing over a size-0 axis gives each op's identity. */
static void test_empty_identities(void **state)
{
    (void)state;
    st_arena arena;
    st_arena_init(&arena, 0);
    float xd[1] = { 0 }, od[3];
    int64_t shape[2] = { 3, 0 };
    bool red[2] = { false, true };
    eng_tensor x = eng_tensor_make(ST_DT_FLOAT32, shape, 2, xd);
    eng_tensor o = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ 3 }, 1, od);
    static const struct {
        eng_reduce_op op;
        double want;
    } cases[] = {
        { ENG_REDUCE_SUM, 0 }, { ENG_REDUCE_PROD, 1 }, { ENG_REDUCE_MAX, -INFINITY }, { ENG_REDUCE_MIN, INFINITY },
        { ENG_REDUCE_L1, 0 }, { ENG_REDUCE_L2, 0 }, { ENG_REDUCE_SUM_SQUARE, 0 }, { ENG_REDUCE_LOG_SUM, -INFINITY },
        { ENG_REDUCE_LOG_SUM_EXP, -INFINITY }, { ENG_REDUCE_MEAN, NAN },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(eng_reduce(cases[i].op, &x, red, &o, &arena, NULL), ST_OK);
        for (int j = 0; j < 3; j++)
            if (!close_enough(ST_DT_FLOAT32, od[j], cases[i].want, 0))
                fail_msg("Reduce%s over nothing gave %g, expected %g", op_name(cases[i].op), od[j], cases[i].want);
    }
    /* Integer Max over nothing is the type's lowest value, Mean 0. */
    int32_t id[1] = { 0 }, io[3];
    eng_tensor xi = eng_tensor_make(ST_DT_INT32, shape, 2, id);
    eng_tensor oi = eng_tensor_make(ST_DT_INT32, (int64_t[]){ 3 }, 1, io);
    assert_int_equal(eng_reduce(ENG_REDUCE_MAX, &xi, red, &oi, &arena, NULL), ST_OK);
    assert_int_equal(io[0], INT32_MIN);
    assert_int_equal(eng_reduce(ENG_REDUCE_MEAN, &xi, red, &oi, &arena, NULL), ST_OK);
    assert_int_equal(io[2], 0);
    st_arena_free(&arena);
}

/* LogSumExp subtracts the max: large inputs do not overflow, and -inf
 * inputs do not turn into NaN. */
static void test_log_sum_exp_stable(void **state)
{
    (void)state;
    st_arena arena;
    st_arena_init(&arena, 0);
    float xd[4] = { 1000.0f, 1000.0f, -INFINITY, -INFINITY }, od[2];
    int64_t shape[2] = { 2, 2 };
    bool red[2] = { false, true };
    eng_tensor x = eng_tensor_make(ST_DT_FLOAT32, shape, 2, xd);
    eng_tensor o = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ 2 }, 1, od);
    assert_int_equal(eng_reduce(ENG_REDUCE_LOG_SUM_EXP, &x, red, &o, &arena, NULL), ST_OK);
    assert_true(fabs(od[0] - (1000.0 + log(2.0))) < 1e-3);
    assert_true(isinf(od[1]) && od[1] < 0);
    st_arena_free(&arena);
}

/* Integer sums wrap like the element type instead of trapping. */
static void test_integer_wraparound(void **state)
{
    (void)state;
    st_arena arena;
    st_arena_init(&arena, 0);
    int32_t xd[3] = { INT32_MAX, 1, INT32_MIN }, od[1];
    int64_t shape[1] = { 3 };
    bool red[1] = { true };
    eng_tensor x = eng_tensor_make(ST_DT_INT32, shape, 1, xd);
    eng_tensor o = eng_tensor_make(ST_DT_INT32, NULL, 0, od);
    assert_int_equal(eng_reduce(ENG_REDUCE_SUM, &x, red, &o, &arena, NULL), ST_OK);
    assert_int_equal(od[0], 0);
    assert_int_equal(eng_reduce(ENG_REDUCE_L1, &x, red, &o, &arena, NULL), ST_OK);
    assert_int_equal(eng_reduce(ENG_REDUCE_PROD, &x, red, &o, &arena, NULL), ST_OK);
    st_arena_free(&arena);
}

static void test_unsupported_type(void **state)
{
    (void)state;
    st_arena arena;
    st_arena_init(&arena, 0);
    uint8_t xd[2] = { 1, 0 }, od[1];
    int64_t shape[1] = { 2 };
    bool red[1] = { true };
    eng_tensor x = eng_tensor_make(ST_DT_BOOL, shape, 1, xd);
    eng_tensor o = eng_tensor_make(ST_DT_BOOL, NULL, 0, od);
    assert_false(eng_reduce_supports(ENG_REDUCE_SUM, ST_DT_BOOL));
    assert_int_equal(eng_reduce(ENG_REDUCE_SUM, &x, red, &o, &arena, NULL), ST_EUNSUPPORTED);
    st_arena_free(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_serial),
        cmocka_unit_test(test_threaded),
        cmocka_unit_test(test_empty_identities),
        cmocka_unit_test(test_log_sum_exp_stable),
        cmocka_unit_test(test_integer_wraparound),
        cmocka_unit_test(test_unsupported_type),
    };
    return cmocka_run_group_tests_name("reduce", tests, NULL, NULL);
}
