/* test_norm.c - the normalisation family (src/engine/ops/norm.c) driven
 * through the op registry on hand-built nodes: Softmax rows sum to 1 and
 * survive -inf / huge inputs, LayerNormalization matches a naive
 * double-precision reference, threaded runs match single-threaded ones,
 * and bad attributes fail with a message instead of crashing. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/arena.h"
#include "base/pool.h"
#include "engine/eng_int.h"

/* --- a harness that runs one operator -------------------------------------- */

#define MAX_IO 6

typedef struct op_run {
    const char *op_type;
    int opset;
    const onnx_attr *attrs;
    size_t n_attrs;
    const eng_tensor *in[MAX_IO];
    uint32_t n_in;
    eng_tensor out[MAX_IO];
    uint32_t n_out;
    st_pool *pool;
} op_run;

static st_arena g_arena;
static st_error g_err;

/* check, infer, allocate outputs, run.  Outputs live in g_arena. */
static st_status run_op(op_run *r)
{
    onnx_node proto;
    memset(&proto, 0, sizeof proto);
    proto.op_type = st_str_c(r->op_type);
    proto.name = st_str_c("test");
    proto.attrs = r->attrs;
    proto.attr_count = r->n_attrs;
    proto.input_count = r->n_in;
    proto.output_count = r->n_out;
    int ids_in[MAX_IO], ids_out[MAX_IO];
    for (int i = 0; i < MAX_IO; i++) {
        ids_in[i] = (uint32_t)i < r->n_in && r->in[i] ? i : -1;
        ids_out[i] = i;
    }
    eng_node node;
    memset(&node, 0, sizeof node);
    node.proto = &proto;
    node.opset = r->opset;
    node.inputs = ids_in;
    node.n_inputs = r->n_in;
    node.outputs = ids_out;
    node.n_outputs = r->n_out;
    node.op = eng_op_find(st_str_c(""), proto.op_type, r->opset);
    assert_non_null(node.op);
    memset(&g_err, 0, sizeof g_err);
    st_status s;
    if (node.op->check && (s = node.op->check(&node, &g_arena, &g_err)) != ST_OK)
        return s;
    eng_tensor *outs[MAX_IO];
    for (uint32_t o = 0; o < r->n_out; o++) {
        memset(&r->out[o], 0, sizeof r->out[o]);
        outs[o] = &r->out[o];
    }
    eng_kctx k = { .node = &node, .in = r->in, .n_in = r->n_in, .out = outs, .n_out = r->n_out,
                   .pool = r->pool, .scratch = &g_arena, .err = &g_err };
    if ((s = node.op->infer(&k)) != ST_OK)
        return s;
    for (uint32_t o = 0; o < r->n_out; o++) {
        size_t count;
        assert_true(eng_shape_count(r->out[o].shape, r->out[o].rank, &count));
        r->out[o].count = count;
        r->out[o].data = st_arena_alloc(&g_arena, count * st_dtype_size(r->out[o].dtype) + 1, 64);
        assert_non_null(r->out[o].data);
    }
    return node.op->run(&k);
}

static onnx_attr attr_int(const char *name, int64_t v)
{
    onnx_attr a;
    memset(&a, 0, sizeof a);
    a.name = st_str_c(name);
    a.type = ONNX_ATTR_INT;
    a.i = v;
    return a;
}

static onnx_attr attr_float(const char *name, float v)
{
    onnx_attr a;
    memset(&a, 0, sizeof a);
    a.name = st_str_c(name);
    a.type = ONNX_ATTR_FLOAT;
    a.f = v;
    return a;
}

static onnx_attr attr_str(const char *name, const char *v)
{
    onnx_attr a;
    memset(&a, 0, sizeof a);
    a.name = st_str_c(name);
    a.type = ONNX_ATTR_STRING;
    a.s = st_str_c(v);
    return a;
}

static eng_tensor make_f32(const int64_t *shape, uint32_t rank, float *data)
{
    return eng_tensor_make(ST_DT_FLOAT32, shape, rank, data);
}

/* Deterministic pseudo-random floats in [lo, hi). */
static uint64_t g_rng = 88172645463325252ull;
static float frand(float lo, float hi)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 11) * (1.0 / 9007199254740992.0));
}

static int setup(void **state)
{
    (void)state;
    st_arena_init(&g_arena, 1 << 20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    st_arena_free(&g_arena);
    return 0;
}

/* --- Softmax -------------------------------------------------------------------- */

/* Softmax of each row of x [rows, n] in double. */
static void softmax_ref(const float *x, double *y, size_t rows, size_t n, bool is_log)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        double m = -INFINITY, s = 0;
        for (size_t i = 0; i < n; i++)
            m = xr[i] > m ? xr[i] : m;
        for (size_t i = 0; i < n; i++)
            s += exp((double)xr[i] - m);
        for (size_t i = 0; i < n; i++)
            y[r * n + i] = is_log ? ((double)xr[i] - m) - log(s) : exp((double)xr[i] - m) / s;
    }
}

static void test_softmax_rows_sum_to_one(void **state)
{
    (void)state;
    static const size_t lengths[] = { 1, 2, 7, 8, 9, 31, 64, 1000 };
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        size_t n = lengths[li], rows = 5;
        float *x = malloc(rows * n * sizeof *x);
        double *want = malloc(rows * n * sizeof *want);
        assert_non_null(x);
        assert_non_null(want);
        for (size_t i = 0; i < rows * n; i++)
            x[i] = frand(-30, 30);
        /* Row 1: masked entries (-inf), as attention masks produce. */
        for (size_t i = 0; i < n; i += 2)
            x[n + i] = n > 1 ? -INFINITY : x[n + i];
        /* Row 2: values whose exp overflows float. */
        for (size_t i = 0; i < n; i++)
            x[2 * n + i] = 1e30f * (i % 3 == 0 ? 1.0f : -1.0f);
        /* Row 3: all equal and huge. */
        for (size_t i = 0; i < n; i++)
            x[3 * n + i] = 3e38f;
        softmax_ref(x, want, rows, n, false);
        int64_t shape[2] = { (int64_t)rows, (int64_t)n };
        eng_tensor xt = make_f32(shape, 2, x);
        op_run r = { .op_type = "Softmax", .opset = 13, .in = { &xt }, .n_in = 1, .n_out = 1 };
        assert_int_equal(run_op(&r), ST_OK);
        const float *y = r.out[0].data;
        for (size_t row = 0; row < rows; row++) {
            double sum = 0;
            for (size_t i = 0; i < n; i++) {
                float v = y[row * n + i];
                assert_false(isnan(v));
                assert_true(v >= 0.0f && v <= 1.0f);
                assert_true(fabs(v - want[row * n + i]) <= 1e-6 + 1e-5 * want[row * n + i]);
                sum += v;
            }
            assert_true(fabs(sum - 1.0) < 1e-5);
        }
        free(x);
        free(want);
    }
}

static void test_logsoftmax_large_values(void **state)
{
    (void)state;
    size_t rows = 4, n = 37;
    float x[4 * 37];
    double want[4 * 37];
    for (size_t i = 0; i < rows * n; i++)
        x[i] = frand(-1e4f, 1e4f);
    x[5] = -INFINITY;
    softmax_ref(x, want, rows, n, true);
    int64_t shape[2] = { (int64_t)rows, (int64_t)n };
    eng_tensor xt = make_f32(shape, 2, x);
    op_run r = { .op_type = "LogSoftmax", .opset = 13, .in = { &xt }, .n_in = 1, .n_out = 1 };
    assert_int_equal(run_op(&r), ST_OK);
    const float *y = r.out[0].data;
    assert_true(isinf(y[5]) && y[5] < 0);
    for (size_t i = 0; i < rows * n; i++) {
        if (i == 5)
            continue;
        assert_false(isnan(y[i]));
        assert_true(fabs(y[i] - want[i]) <= 1e-3 + 1e-5 * fabs(want[i]));
    }
}

/* Opset 13 along a middle axis (strided rows) and opset 11's 2-D
 * coercion at the same axis give different, reference-matching results. */
static void test_softmax_axis_semantics(void **state)
{
    (void)state;
    enum { A = 2, B = 3, C = 5 };
    float x[A * B * C];
    for (size_t i = 0; i < A * B * C; i++)
        x[i] = frand(-5, 5);
    int64_t shape[3] = { A, B, C };
    eng_tensor xt = make_f32(shape, 3, x);
    onnx_attr axis1 = attr_int("axis", 1);

    op_run r13 = { .op_type = "Softmax", .opset = 13, .attrs = &axis1, .n_attrs = 1, .in = { &xt }, .n_in = 1,
                   .n_out = 1 };
    assert_int_equal(run_op(&r13), ST_OK);
    const float *y = r13.out[0].data;
    for (int a = 0; a < A; a++)
        for (int c = 0; c < C; c++) {
            double m = -INFINITY, s = 0;
            for (int b = 0; b < B; b++)
                m = fmax(m, x[(a * B + b) * C + c]);
            for (int b = 0; b < B; b++)
                s += exp(x[(a * B + b) * C + c] - m);
            for (int b = 0; b < B; b++)
                assert_true(fabs(y[(a * B + b) * C + c] - exp(x[(a * B + b) * C + c] - m) / s) < 1e-6);
        }

    /* Opset 11: rows are the flattened [B * C] block after axis 1. */
    op_run r11 = { .op_type = "Softmax", .opset = 11, .attrs = &axis1, .n_attrs = 1, .in = { &xt }, .n_in = 1,
                   .n_out = 1 };
    assert_int_equal(run_op(&r11), ST_OK);
    double want[A * B * C];
    softmax_ref(x, want, A, B * C, false);
    for (size_t i = 0; i < A * B * C; i++)
        assert_true(fabs(((const float *)r11.out[0].data)[i] - want[i]) < 1e-6);
}

static void test_hardmax_first_max_wins(void **state)
{
    (void)state;
    float x[2 * 4] = { 1, 3, 3, 2, -INFINITY, -INFINITY, -1, -1 };
    int64_t shape[2] = { 2, 4 };
    eng_tensor xt = make_f32(shape, 2, x);
    op_run r = { .op_type = "Hardmax", .opset = 13, .in = { &xt }, .n_in = 1, .n_out = 1 };
    assert_int_equal(run_op(&r), ST_OK);
    static const float want[8] = { 0, 1, 0, 0, 0, 0, 1, 0 };
    assert_memory_equal(r.out[0].data, want, sizeof want);
}

static void test_softmax_bad_axis_fails(void **state)
{
    (void)state;
    float x[6] = { 0 };
    int64_t shape[2] = { 2, 3 };
    eng_tensor xt = make_f32(shape, 2, x);
    onnx_attr axis = attr_int("axis", 2);
    op_run r = { .op_type = "Softmax", .opset = 13, .attrs = &axis, .n_attrs = 1, .in = { &xt }, .n_in = 1,
                 .n_out = 1 };
    assert_int_equal(run_op(&r), ST_EINVAL);
    assert_non_null(strstr(g_err.msg, "axis 2"));
}

/* --- LayerNormalization -------------------------------------------------------------- */

static void layernorm_ref(const float *x, const float *scale, const float *bias, size_t rows, size_t n, double eps,
                          double *y, double *mean, double *inv)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        double m = 0, v = 0;
        for (size_t i = 0; i < n; i++)
            m += xr[i];
        m /= (double)n;
        for (size_t i = 0; i < n; i++)
            v += (xr[i] - m) * (xr[i] - m);
        v /= (double)n;
        double is = 1.0 / sqrt(v + eps);
        for (size_t i = 0; i < n; i++)
            y[r * n + i] = (xr[i] - m) * is * scale[i] + (bias ? bias[i] : 0.0);
        mean[r] = m;
        inv[r] = is;
    }
}

static void check_layernorm(size_t rows, size_t n, bool with_bias, float offset, st_pool *pool)
{
    float *x = malloc(rows * n * sizeof *x), *scale = malloc(n * sizeof *scale), *bias = malloc(n * sizeof *bias);
    double *y = malloc(rows * n * sizeof *y), *mean = malloc(rows * sizeof *mean), *inv = malloc(rows * sizeof *inv);
    assert_true(x && scale && bias && y && mean && inv);
    for (size_t i = 0; i < rows * n; i++)
        x[i] = offset + frand(-3, 3);
    for (size_t i = 0; i < n; i++) {
        scale[i] = frand(0.5f, 1.5f);
        bias[i] = frand(-1, 1);
    }
    layernorm_ref(x, scale, with_bias ? bias : NULL, rows, n, 1e-5, y, mean, inv);
    int64_t xs[2] = { (int64_t)rows, (int64_t)n }, ps[1] = { (int64_t)n };
    eng_tensor xt = make_f32(xs, 2, x), st = make_f32(ps, 1, scale), bt = make_f32(ps, 1, bias);
    op_run r = { .op_type = "LayerNormalization", .opset = 17, .in = { &xt, &st, with_bias ? &bt : NULL },
                 .n_in = 3, .n_out = 3, .pool = pool };
    assert_int_equal(run_op(&r), ST_OK);
    assert_int_equal(r.out[1].rank, 2);
    assert_int_equal(r.out[1].shape[0], (int64_t)rows);
    assert_int_equal(r.out[1].shape[1], 1);
    const float *got = r.out[0].data, *got_mean = r.out[1].data, *got_inv = r.out[2].data;
    /* Beyond rounding, float32 cannot hold the mean better than half an
     * ulp, which the normalisation scales by inv * scale (scale < 1.5). */
    for (size_t i = 0; i < rows * n; i++)
        assert_true(fabs(got[i] - y[i]) <= 1e-5 + 1e-4 * fabs(y[i]) + fabs(mean[i / n]) * FLT_EPSILON * inv[i / n]);
    for (size_t i = 0; i < rows; i++) {
        assert_true(fabs(got_mean[i] - mean[i]) <= 1e-5 * (1 + fabs(mean[i])));
        assert_true(fabs(got_inv[i] - inv[i]) <= 1e-4 * inv[i]);
    }
    free(x);
    free(scale);
    free(bias);
    free(y);
    free(mean);
    free(inv);
}

static void test_layernorm_matches_double_reference(void **state)
{
    (void)state;
    static const size_t lengths[] = { 1, 5, 8, 13, 64, 768, 1027 };
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        check_layernorm(7, lengths[i], true, 0.0f, NULL);
        check_layernorm(3, lengths[i], false, 0.0f, NULL);
        /* A large mean against a small spread: the two-pass variance. */
        check_layernorm(3, lengths[i], true, 1000.0f, NULL);
    }
}

/* Scale broadcast over a 3-D normalised block ([1, C] against [H, C]). */
static void test_layernorm_broadcast_scale(void **state)
{
    (void)state;
    enum { N = 2, H = 3, C = 4 };
    float x[N * H * C], scale[C] = { 1, 2, 3, 4 };
    for (size_t i = 0; i < N * H * C; i++)
        x[i] = frand(-2, 2);
    float full_scale[H * C];
    for (int i = 0; i < H * C; i++)
        full_scale[i] = scale[i % C];
    double y[N * H * C], mean[N], inv[N];
    layernorm_ref(x, full_scale, NULL, N, H * C, 1e-5, y, mean, inv);
    int64_t xs[3] = { N, H, C }, ss[2] = { 1, C };
    eng_tensor xt = make_f32(xs, 3, x), st = make_f32(ss, 2, scale);
    onnx_attr axis = attr_int("axis", 1);
    op_run r = { .op_type = "LayerNormalization", .opset = 17, .attrs = &axis, .n_attrs = 1, .in = { &xt, &st },
                 .n_in = 2, .n_out = 1 };
    assert_int_equal(run_op(&r), ST_OK);
    for (size_t i = 0; i < N * H * C; i++)
        assert_true(fabs(((const float *)r.out[0].data)[i] - y[i]) < 1e-4);

    /* A scale that varies along a dimension before the axis is refused. */
    int64_t bad[2] = { N, 1 };
    float bad_scale[N] = { 1, 1 };
    eng_tensor bt = make_f32(bad, 2, bad_scale);
    int64_t x2s[2] = { N, H * C };
    eng_tensor x2 = make_f32(x2s, 2, x);
    op_run rb = { .op_type = "LayerNormalization", .opset = 17, .in = { &x2, &bt }, .n_in = 2, .n_out = 1 };
    assert_int_equal(run_op(&rb), ST_ESHAPE);
}

/* --- threads ------------------------------------------------------------------------ */

static void test_threaded_matches_serial(void **state)
{
    (void)state;
    st_pool *pool;
    st_error err = { 0 };
    assert_int_equal(st_pool_create(4, &pool, &err), ST_OK);
    enum { ROWS = 512, N = 384 };
    float *x = malloc(ROWS * N * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < ROWS * N; i++)
        x[i] = frand(-8, 8);
    int64_t shape[2] = { ROWS, N };
    eng_tensor xt = make_f32(shape, 2, x);
    static const char *const ops[] = { "Softmax", "LogSoftmax" };
    for (int o = 0; o < 2; o++) {
        op_run serial = { .op_type = ops[o], .opset = 13, .in = { &xt }, .n_in = 1, .n_out = 1 };
        op_run threaded = serial;
        threaded.pool = pool;
        assert_int_equal(run_op(&serial), ST_OK);
        assert_int_equal(run_op(&threaded), ST_OK);
        assert_memory_equal(serial.out[0].data, threaded.out[0].data, sizeof(float) * ROWS * N);
    }
    check_layernorm(ROWS, N, true, 0.5f, pool);

    /* Resize (linear passes and the nearest gather) and BatchNormalization. */
    int64_t img[4] = { 2, 8, 48, 40 }, s1[1] = { 4 }, c1[1] = { 8 };
    eng_tensor it = make_f32(img, 4, x);
    float scales[4] = { 1, 1, 2.5f, 1.75f }, params[8];
    for (int i = 0; i < 8; i++)
        params[i] = 0.5f + (float)i / 8;
    eng_tensor st = make_f32(s1, 1, scales), pt = make_f32(c1, 1, params);
    static const char *const modes[] = { "linear", "nearest", "cubic" };
    for (int m = 0; m < 3; m++) {
        onnx_attr mode = attr_str("mode", modes[m]);
        op_run serial = { .op_type = "Resize", .opset = 13, .attrs = &mode, .n_attrs = 1, .in = { &it, NULL, &st },
                          .n_in = 3, .n_out = 1 };
        op_run threaded = serial;
        threaded.pool = pool;
        assert_int_equal(run_op(&serial), ST_OK);
        assert_int_equal(run_op(&threaded), ST_OK);
        assert_int_equal(serial.out[0].count, 2 * 8 * 120 * 70);
        assert_memory_equal(serial.out[0].data, threaded.out[0].data, sizeof(float) * serial.out[0].count);
    }
    op_run bn = { .op_type = "BatchNormalization", .opset = 15, .in = { &it, &pt, &pt, &pt, &pt }, .n_in = 5,
                  .n_out = 1 };
    op_run bn_threaded = bn;
    bn_threaded.pool = pool;
    assert_int_equal(run_op(&bn), ST_OK);
    assert_int_equal(run_op(&bn_threaded), ST_OK);
    assert_memory_equal(bn.out[0].data, bn_threaded.out[0].data, sizeof(float) * it.count);
    free(x);
    st_pool_destroy(pool);
}

/* --- other ops ------------------------------------------------------------------------- */

static void test_batchnorm_inference(void **state)
{
    (void)state;
    enum { N = 2, C = 3, S = 5 };
    float x[N * C * S], scale[C] = { 1, 2, 0.5f }, bias[C] = { 0, 1, -1 }, mean[C] = { 0.1f, -0.2f, 3 },
                        var[C] = { 1, 0.25f, 4 };
    for (size_t i = 0; i < N * C * S; i++)
        x[i] = frand(-2, 2);
    int64_t xs[4] = { N, C, S, 1 }, cs[1] = { C };
    eng_tensor xt = make_f32(xs, 4, x), st = make_f32(cs, 1, scale), bt = make_f32(cs, 1, bias),
               mt = make_f32(cs, 1, mean), vt = make_f32(cs, 1, var);
    op_run r = { .op_type = "BatchNormalization", .opset = 15, .in = { &xt, &st, &bt, &mt, &vt }, .n_in = 5,
                 .n_out = 1 };
    assert_int_equal(run_op(&r), ST_OK);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int s = 0; s < S; s++) {
                size_t i = ((size_t)n * C + c) * S + s;
                double want = (x[i] - mean[c]) / sqrt(var[c] + 1e-5) * scale[c] + bias[c];
                assert_true(fabs(((const float *)r.out[0].data)[i] - want) < 1e-5);
            }
}

static void test_clip_int8_and_legacy(void **state)
{
    (void)state;
    int8_t x[5] = { -128, -5, 0, 7, 127 }, lo = -4, hi = 6;
    int64_t xs[1] = { 5 };
    eng_tensor xt = eng_tensor_make(ST_DT_INT8, xs, 1, x), lt = eng_tensor_make(ST_DT_INT8, NULL, 0, &lo),
               ht = eng_tensor_make(ST_DT_INT8, NULL, 0, &hi);
    op_run r = { .op_type = "Clip", .opset = 13, .in = { &xt, NULL, &ht }, .n_in = 3, .n_out = 1 };
    assert_int_equal(run_op(&r), ST_OK);
    static const int8_t want_hi[5] = { -128, -5, 0, 6, 6 };
    assert_memory_equal(r.out[0].data, want_hi, sizeof want_hi);
    r.in[1] = &lt;
    assert_int_equal(run_op(&r), ST_OK);
    static const int8_t want_both[5] = { -4, -4, 0, 6, 6 };
    assert_memory_equal(r.out[0].data, want_both, sizeof want_both);

    /* Opset 6: bounds are attributes; NaN passes through. */
    float f[4] = { -2, NAN, 0.25f, 9 };
    eng_tensor ft = make_f32(xs, 1, f);
    ft.shape[0] = 4;
    ft.count = 4;
    onnx_attr attrs[2] = { attr_float("min", -1), attr_float("max", 1) };
    op_run r6 = { .op_type = "Clip", .opset = 6, .attrs = attrs, .n_attrs = 2, .in = { &ft }, .n_in = 1, .n_out = 1 };
    assert_int_equal(run_op(&r6), ST_OK);
    const float *y = r6.out[0].data;
    assert_true(y[0] == -1 && isnan(y[1]) && y[2] == 0.25f && y[3] == 1);
}

static void test_resize_nearest_and_errors(void **state)
{
    (void)state;
    float x[4] = { 1, 2, 3, 4 }, scales[4] = { 1, 1, 2, 2 };
    int64_t xs[4] = { 1, 1, 2, 2 }, ss[1] = { 4 };
    eng_tensor xt = make_f32(xs, 4, x), st = make_f32(ss, 1, scales);
    onnx_attr attrs[2] = { attr_str("mode", "nearest"), attr_str("coordinate_transformation_mode", "asymmetric") };
    op_run r = { .op_type = "Resize", .opset = 13, .attrs = attrs, .n_attrs = 2, .in = { &xt, NULL, &st },
                 .n_in = 3, .n_out = 1 };
    assert_int_equal(run_op(&r), ST_OK);
    assert_int_equal(r.out[0].shape[2], 4);
    static const float want[16] = { 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4 };
    assert_memory_equal(r.out[0].data, want, sizeof want);

    /* A negative scale and an unknown mode fail with a message. */
    scales[2] = -1;
    assert_int_equal(run_op(&r), ST_EINVAL);
    assert_non_null(strstr(g_err.msg, "scale"));
    onnx_attr bad = attr_str("mode", "bogus");
    op_run rb = { .op_type = "Resize", .opset = 13, .attrs = &bad, .n_attrs = 1, .in = { &xt, NULL, &st },
                  .n_in = 3, .n_out = 1 };
    assert_int_equal(run_op(&rb), ST_EINVAL);
    assert_non_null(strstr(g_err.msg, "bogus"));
}

/* Malformed models and inputs fail with a status and a message naming the
 * problem, never a crash. */
static void test_bad_inputs_fail_cleanly(void **state)
{
    (void)state;
    float x[16] = { 0 }, p3[3] = { 1, 1, 1 };
    int64_t s4[4] = { 1, 4, 2, 2 }, s3[1] = { 3 };
    eng_tensor xt = make_f32(s4, 4, x), pt = make_f32(s3, 1, p3);

    /* BatchNormalization with 3 parameters for 4 channels. */
    op_run bn = { .op_type = "BatchNormalization", .opset = 15, .in = { &xt, &pt, &pt, &pt, &pt }, .n_in = 5,
                  .n_out = 1 };
    assert_int_equal(run_op(&bn), ST_ESHAPE);
    assert_non_null(strstr(g_err.msg, "expected C = 4"));

    /* LayerNormalization with an unsupported stash_type. */
    onnx_attr stash = attr_int("stash_type", 7);
    op_run ln = { .op_type = "LayerNormalization", .opset = 17, .attrs = &stash, .n_attrs = 1, .in = { &xt, &pt },
                  .n_in = 2, .n_out = 1 };
    assert_int_equal(run_op(&ln), ST_EUNSUPPORTED);

    /* DepthToSpace: absurd blocksize, then channels not divisible. */
    onnx_attr big = attr_int("blocksize", (int64_t)1 << 40);
    op_run d2s = { .op_type = "DepthToSpace", .opset = 13, .attrs = &big, .n_attrs = 1, .in = { &xt }, .n_in = 1,
                   .n_out = 1 };
    assert_int_equal(run_op(&d2s), ST_EINVAL);
    onnx_attr three = attr_int("blocksize", 3);
    d2s.attrs = &three;
    assert_int_equal(run_op(&d2s), ST_ESHAPE);

    /* Resize: scales of the wrong length, negative sizes, both given. */
    float scales[2] = { 2, 2 };
    int64_t sizes[4] = { 1, 4, -2, 2 }, s2[1] = { 2 }, sz4[1] = { 4 };
    eng_tensor sc = make_f32(s2, 1, scales), szt = eng_tensor_make(ST_DT_INT64, sz4, 1, sizes);
    op_run rs = { .op_type = "Resize", .opset = 13, .in = { &xt, NULL, &sc }, .n_in = 3, .n_out = 1 };
    assert_int_equal(run_op(&rs), ST_ESHAPE);
    rs.in[2] = NULL;
    rs.in[3] = &szt;
    rs.n_in = 4;
    assert_int_equal(run_op(&rs), ST_ESHAPE);
    assert_non_null(strstr(g_err.msg, "sizes[2]"));
    rs.in[2] = &sc;
    assert_int_equal(run_op(&rs), ST_EINVAL);

    /* GridSample beyond 4-D, and Softmax on a string tensor. */
    op_run gs = { .op_type = "GridSample", .opset = 16, .in = { &pt, &pt }, .n_in = 2, .n_out = 1 };
    assert_int_equal(run_op(&gs), ST_EUNSUPPORTED);
    st_str strs[2] = { st_str_c("a"), st_str_c("b") };
    eng_tensor st = eng_tensor_make(ST_DT_STRING, s2, 1, strs);
    op_run sm = { .op_type = "Softmax", .opset = 13, .in = { &st }, .n_in = 1, .n_out = 1 };
    assert_int_equal(run_op(&sm), ST_ETYPE);

    /* A missing required input. */
    op_run pr = { .op_type = "PRelu", .opset = 16, .in = { &xt, NULL }, .n_in = 2, .n_out = 1 };
    assert_int_equal(run_op(&pr), ST_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_rows_sum_to_one),
        cmocka_unit_test(test_logsoftmax_large_values),
        cmocka_unit_test(test_softmax_axis_semantics),
        cmocka_unit_test(test_hardmax_first_max_wins),
        cmocka_unit_test(test_softmax_bad_axis_fails),
        cmocka_unit_test(test_layernorm_matches_double_reference),
        cmocka_unit_test(test_layernorm_broadcast_scale),
        cmocka_unit_test(test_threaded_matches_serial),
        cmocka_unit_test(test_batchnorm_inference),
        cmocka_unit_test(test_clip_int8_and_legacy),
        cmocka_unit_test(test_resize_nearest_and_errors),
        cmocka_unit_test(test_bad_inputs_fail_cleanly),
    };
    return cmocka_run_group_tests_name("norm", tests, setup, teardown);
}
