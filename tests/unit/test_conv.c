/* test_conv.c - unit tests for the float32 convolution paths of
 * src/engine/ops/conv.c: im2col + GEMM, the direct 1x1 GEMM and the
 * depthwise SIMD kernel, each against a naive direct convolution written
 * here, on random shapes with padding, strides, dilations and groups,
 * single-threaded and on a thread pool; geometry (auto_pad, ceil_mode,
 * errors); and the separable float32 pools against the direct loops. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/arena.h"
#include "base/dtype.h"
#include "base/pool.h"
#include "engine/kernels/kernels.h"
#include "engine/ops/conv_int.h"

/* --- helpers ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Uniform integer in [lo, hi]. */
static int64_t rnd_int(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint32_t)(hi - lo + 1));
}

static void fill(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
}

/* Naive direct convolution over the geometry, accumulating in double. */
static void reference_conv(const conv_geom *g, const float *x, const float *w, const float *bias, float *y)
{
    size_t c_g = (size_t)(g->c_in / g->group), m_g = (size_t)(g->c_out / g->group);
    size_t in_plane = conv_in_plane(g), kk = conv_kernel_size(g);
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t m = 0; m < g->c_out; m++) {
            size_t grp = (size_t)m / m_g;
            for (int64_t od = 0; od < g->out[0]; od++)
                for (int64_t oh = 0; oh < g->out[1]; oh++)
                    for (int64_t ow = 0; ow < g->out[2]; ow++) {
                        double acc = bias ? bias[m] : 0.0;
                        for (size_t c = 0; c < c_g; c++)
                            for (int64_t a = 0; a < g->kernel[0]; a++)
                                for (int64_t b = 0; b < g->kernel[1]; b++)
                                    for (int64_t e = 0; e < g->kernel[2]; e++) {
                                        int64_t id = od * g->stride[0] - g->pad_begin[0] + a * g->dilation[0];
                                        int64_t ih = oh * g->stride[1] - g->pad_begin[1] + b * g->dilation[1];
                                        int64_t iw = ow * g->stride[2] - g->pad_begin[2] + e * g->dilation[2];
                                        if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1] || iw < 0 ||
                                            iw >= g->in[2])
                                            continue;
                                        size_t xi = ((size_t)n * (size_t)g->c_in + grp * c_g + c) * in_plane +
                                                    (size_t)((id * g->in[1] + ih) * g->in[2] + iw);
                                        size_t wi = ((size_t)m * c_g + c) * kk +
                                                    (size_t)((a * g->kernel[1] + b) * g->kernel[2] + e);
                                        acc += (double)x[xi] * (double)w[wi];
                                    }
                        *y++ = (float)acc;
                    }
        }
}

/* The fused activations, in double. */
static double apply_act(const conv_act *a, double x)
{
    switch (a->kind) {
    case CONV_ACT_NONE: return x;
    case CONV_ACT_RELU: return x > 0 ? x : 0;
    case CONV_ACT_LEAKY_RELU: return x >= 0 ? x : a->alpha * x;
    case CONV_ACT_SIGMOID: return 1 / (1 + exp(-x));
    case CONV_ACT_TANH: return tanh(x);
    case CONV_ACT_CLIP: return x < a->alpha ? a->alpha : x > a->beta ? a->beta : x;
    case CONV_ACT_HARD_SIGMOID: return fmax(0, fmin(1, a->alpha * x + a->beta));
    }
    return x;
}

/* A random problem description: shapes and attributes. */
typedef struct problem {
    int nsp;
    int64_t x_shape[5], w_shape[5];
    conv_attrs attrs;
} problem;

static conv_geom geometry_of(const problem *p)
{
    conv_geom g;
    st_error err = { 0 };
    st_status s = conv_geom_conv(&g, &p->attrs, p->x_shape, (uint32_t)p->nsp + 2, p->w_shape, (uint32_t)p->nsp + 2,
                                 &err);
    if (s != ST_OK)
        fail_msg("geometry rejected: %s", err.msg);
    return g;
}

/* Random problem of the kind `path` handles (IM2COL: anything). */
static problem random_problem(conv_path path)
{
    problem p;
    memset(&p, 0, sizeof p);
    bool is_direct = path == CONV_PATH_DIRECT;
    p.nsp = path == CONV_PATH_DEPTHWISE || is_direct ? (int)rnd_int(1, 2) : (int)rnd_int(1, 3);
    int64_t group = rnd_int(1, 3);
    int64_t c_g = path == CONV_PATH_DEPTHWISE ? 1 : rnd_int(1, is_direct ? 9 : 5);
    /* The direct path's tiles are 8 output channels: cross a block edge. */
    int64_t m_g = rnd_int(1, is_direct ? 20 : 4);
    if (path == CONV_PATH_DEPTHWISE)
        group = rnd_int(1, 12);
    p.x_shape[0] = rnd_int(1, 2);
    p.x_shape[1] = group * c_g;
    p.w_shape[0] = group * m_g;
    p.w_shape[1] = c_g;
    p.attrs.group = group;
    p.attrs.p = 2.0f;
    p.attrs.n_strides = p.attrs.n_dilations = (size_t)p.nsp;
    p.attrs.n_pads = 2 * (size_t)p.nsp;
    int64_t max_in = p.nsp == 3 ? 7 : p.nsp == 2 ? 19 : 40;
    for (int i = 0; i < p.nsp; i++) {
        int64_t k = path == CONV_PATH_POINTWISE ? 1 : rnd_int(1, 5);
        int64_t s = path == CONV_PATH_POINTWISE || is_direct ? 1 : rnd_int(1, 3);
        int64_t d = path == CONV_PATH_POINTWISE ? 1 : rnd_int(1, 2);
        int64_t pb = path == CONV_PATH_POINTWISE ? 0 : rnd_int(0, 2);
        int64_t pe = path == CONV_PATH_POINTWISE ? 0 : rnd_int(0, 2);
        int64_t dk = (k - 1) * d + 1;
        int64_t lo = dk - pb - pe > 1 ? dk - pb - pe : 1;
        p.x_shape[2 + i] = rnd_int(lo, lo + max_in);
        p.w_shape[2 + i] = k;
        p.attrs.strides[i] = s;
        p.attrs.dilations[i] = d;
        p.attrs.pads[i] = pb;
        p.attrs.pads[p.nsp + i] = pe;
    }
    return p;
}

static size_t count_of(const int64_t *shape, int rank)
{
    size_t c = 1;
    for (int i = 0; i < rank; i++)
        c *= (size_t)shape[i];
    return c;
}

/* Stride 1 and "same" padding on every axis (output as large as the
 * input), the shape im2col copies in runs of whole rows. */
static void make_same(problem *p)
{
    for (int i = 0; i < p->nsp; i++) {
        int64_t k = 2 * rnd_int(0, 2) + 1, d = rnd_int(1, 2), total = (k - 1) * d;
        int64_t pb = rnd_int(0, total);
        p->w_shape[2 + i] = k;
        p->attrs.strides[i] = 1;
        p->attrs.dilations[i] = d;
        p->attrs.pads[i] = pb;
        p->attrs.pads[p->nsp + i] = total - pb;
        if (p->x_shape[2 + i] < 1)
            p->x_shape[2 + i] = 1;
    }
}

/* Runs `path` on a random problem and compares with the reference. */
static void check_one(conv_path path, bool same_padding, st_pool *pool, st_arena *arena)
{
    problem p = random_problem(path);
    if (same_padding)
        make_same(&p);
    conv_geom g = geometry_of(&p);
    assert_true(conv_path_applies(&g, path));
    int rank = p.nsp + 2;
    size_t nx = count_of(p.x_shape, rank), nw = count_of(p.w_shape, rank);
    size_t ny = (size_t)(g.batch * g.c_out) * conv_out_plane(&g);
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc((size_t)g.c_out * sizeof *b);
    float *y = malloc(ny * sizeof *y), *ref = malloc(ny * sizeof *ref);
    assert_non_null(x);
    assert_non_null(w);
    assert_non_null(b);
    assert_non_null(y);
    assert_non_null(ref);
    fill(x, nx);
    fill(w, nw);
    fill(b, (size_t)g.c_out);
    bool with_bias = rnd() % 2;
    reference_conv(&g, x, w, with_bias ? b : NULL, ref);
    /* Half the time a fused activation, a quarter of the time a sum. */
    conv_act act = { .kind = rnd() % 2 ? (conv_act_kind)rnd_int(1, 6) : CONV_ACT_NONE };
    act.alpha = act.kind == CONV_ACT_CLIP ? -0.3f : 0.2f;
    act.beta = act.kind == CONV_ACT_CLIP ? 0.4f : 0.5f;
    float *sum = rnd() % 4 == 0 ? malloc(ny * sizeof *sum) : NULL;
    if (sum) {
        fill(sum, ny);
        act.sum = sum;
    }
    for (size_t i = 0; i < ny; i++)
        ref[i] = (float)apply_act(&act, (double)ref[i] + (sum ? sum[i] : 0.0));
    for (size_t i = 0; i < ny; i++)
        y[i] = NAN;
    st_arena_reset(arena);
    assert_int_equal(conv_f32(&g, path, x, w, with_bias ? b : NULL, &act, y, arena, pool), ST_OK);
    for (size_t i = 0; i < ny; i++) {
        double tol = 1e-4 * fmax(1.0, fabs((double)ref[i]));
        if (!(fabs((double)y[i] - (double)ref[i]) <= tol))
            fail_msg("path %d, nsp %d, x [%lld %lld %lld %lld %lld], w [%lld %lld %lld %lld %lld], group %lld, "
                     "stride %lld %lld %lld, dil %lld %lld %lld, pads %lld %lld %lld / %lld %lld %lld: "
                     "y[%zu] = %g, expected %g",
                     (int)path, p.nsp, (long long)p.x_shape[0], (long long)p.x_shape[1], (long long)p.x_shape[2],
                     (long long)p.x_shape[3], (long long)p.x_shape[4], (long long)p.w_shape[0],
                     (long long)p.w_shape[1], (long long)p.w_shape[2], (long long)p.w_shape[3],
                     (long long)p.w_shape[4], (long long)g.group, (long long)g.stride[0], (long long)g.stride[1],
                     (long long)g.stride[2], (long long)g.dilation[0], (long long)g.dilation[1],
                     (long long)g.dilation[2], (long long)g.pad_begin[0], (long long)g.pad_begin[1],
                     (long long)g.pad_begin[2], (long long)g.pad_end[0], (long long)g.pad_end[1],
                     (long long)g.pad_end[2], i, (double)y[i], (double)ref[i]);
    }
    free(x);
    free(w);
    free(b);
    free(y);
    free(ref);
    free(sum);
}

static void run_many(conv_path path, bool same_padding, int threads, int iterations)
{
    st_pool *pool = NULL;
    st_error err = { 0 };
    if (threads > 1)
        assert_int_equal(st_pool_create(threads, &pool, &err), ST_OK);
    st_arena arena;
    st_arena_init(&arena, 0);
    for (int i = 0; i < iterations; i++)
        check_one(path, same_padding, pool, &arena);
    st_arena_free(&arena);
    st_pool_destroy(pool);
}

/* --- the paths ----------------------------------------------------------------- */

static void test_im2col_matches_reference(void **state)
{
    (void)state;
    run_many(CONV_PATH_IM2COL, false, 1, 300);
}

static void test_im2col_same_padding(void **state)
{
    (void)state;
    run_many(CONV_PATH_IM2COL, true, 1, 200);
}

static void test_pointwise_matches_reference(void **state)
{
    (void)state;
    run_many(CONV_PATH_POINTWISE, false, 1, 200);
}

static void test_direct_matches_reference(void **state)
{
    (void)state;
    run_many(CONV_PATH_DIRECT, false, 1, 300);
}

static void test_direct_same_padding(void **state)
{
    (void)state;
    run_many(CONV_PATH_DIRECT, true, 1, 200);
}

static void test_depthwise_matches_reference(void **state)
{
    (void)state;
    run_many(CONV_PATH_DEPTHWISE, false, 1, 300);
}

static void test_auto_path_matches_reference(void **state)
{
    (void)state;
    run_many(CONV_PATH_AUTO, false, 1, 100);
}

static void test_paths_on_thread_pool(void **state)
{
    (void)state;
    run_many(CONV_PATH_IM2COL, false, 3, 100);
    run_many(CONV_PATH_POINTWISE, false, 3, 100);
    run_many(CONV_PATH_DEPTHWISE, false, 3, 100);
    run_many(CONV_PATH_IM2COL, true, 3, 50);
    run_many(CONV_PATH_DIRECT, false, 3, 100);
    run_many(CONV_PATH_DIRECT, true, 3, 50);
    run_many(CONV_PATH_DIRECT, true, 2, 50);
}

/* Large enough for several im2col tiles per image (tiles split the output
 * lines), on one thread and on a pool. */
static void test_im2col_many_tiles(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 4; threads += 3) {
        problem p;
        memset(&p, 0, sizeof p);
        p.nsp = 2;
        int64_t xs[4] = { 1, 8, 67, 45 }, ws[4] = { 6, 8, 3, 3 };
        memcpy(p.x_shape, xs, sizeof xs);
        memcpy(p.w_shape, ws, sizeof ws);
        p.attrs.group = 1;
        p.attrs.n_pads = 4;
        p.attrs.pads[0] = p.attrs.pads[1] = p.attrs.pads[2] = p.attrs.pads[3] = 1;
        conv_geom g = geometry_of(&p);
        size_t nx = count_of(xs, 4), nw = count_of(ws, 4), ny = (size_t)g.c_out * conv_out_plane(&g);
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *y = malloc(ny * 4), *ref = malloc(ny * 4);
        float bias[6] = { 0.5f, -1, 2, 0, 0.25f, 3 };
        fill(x, nx);
        fill(w, nw);
        reference_conv(&g, x, w, bias, ref);
        st_pool *pool = NULL;
        st_error err = { 0 };
        if (threads > 1)
            assert_int_equal(st_pool_create(threads, &pool, &err), ST_OK);
        st_arena arena;
        st_arena_init(&arena, 0);
        assert_int_equal(conv_f32(&g, CONV_PATH_IM2COL, x, w, bias, NULL, y, &arena, pool), ST_OK);
        for (size_t i = 0; i < ny; i++)
            assert_true(fabs((double)y[i] - (double)ref[i]) <= 1e-4 * fmax(1.0, fabs((double)ref[i])));
        st_arena_free(&arena);
        st_pool_destroy(pool);
        free(x);
        free(w);
        free(y);
        free(ref);
    }
}

/* The direct path on images wide and tall enough for many position chunks
 * and several channel blocks, with the weights packed ahead (as at load)
 * and per call, on one thread, a pool splitting one image's chunks and a
 * pool splitting images. */
static void test_direct_large_images(void **state)
{
    (void)state;
    static const int64_t shapes[][8] = {
        /* N, C, H, W, M, kh, kw, pad */
        { 1, 3, 32, 32, 32, 3, 3, 1 },   { 2, 32, 16, 16, 64, 3, 3, 1 }, { 1, 64, 8, 8, 128, 3, 3, 1 },
        { 3, 16, 16, 16, 24, 1, 1, 0 },  { 1, 7, 23, 41, 13, 5, 3, 2 },  { 1, 5, 9, 50, 17, 3, 5, 0 },
        { 2, 12, 1, 97, 9, 1, 7, 3 },
    };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int threads = 1; threads <= 4; threads += 3) {
            const int64_t *sh = shapes[si];
            problem p;
            memset(&p, 0, sizeof p);
            p.nsp = 2;
            int64_t xs[4] = { sh[0], sh[1], sh[2], sh[3] }, ws[4] = { sh[4], sh[1], sh[5], sh[6] };
            memcpy(p.x_shape, xs, sizeof xs);
            memcpy(p.w_shape, ws, sizeof ws);
            p.attrs.group = 1;
            p.attrs.n_pads = 4;
            p.attrs.pads[0] = p.attrs.pads[2] = sh[5] > 1 ? sh[7] : 0;
            p.attrs.pads[1] = p.attrs.pads[3] = sh[7];
            conv_geom g = geometry_of(&p);
            assert_true(conv_path_applies(&g, CONV_PATH_DIRECT));
            size_t nx = count_of(xs, 4), nw = count_of(ws, 4), ny = (size_t)(g.batch * g.c_out) * conv_out_plane(&g);
            float *x = malloc(nx * 4), *w = malloc(nw * 4), *y = malloc(ny * 4), *ref = malloc(ny * 4);
            float *bias = malloc((size_t)g.c_out * 4);
            size_t k_rows = nw / (size_t)g.c_out;
            float *packed = malloc(eng_sconv_pack_floats((size_t)g.c_out, 1, k_rows) * 4);
            fill(x, nx);
            fill(w, nw);
            fill(bias, (size_t)g.c_out);
            eng_sconv_pack(w, (size_t)g.c_out, 1, k_rows, packed);
            reference_conv(&g, x, w, bias, ref);
            conv_act relu = { .kind = CONV_ACT_RELU };
            for (size_t i = 0; i < ny; i++)
                ref[i] = ref[i] > 0 ? ref[i] : 0;
            st_pool *pool = NULL;
            st_error err = { 0 };
            if (threads > 1)
                assert_int_equal(st_pool_create(threads, &pool, &err), ST_OK);
            st_arena arena;
            st_arena_init(&arena, 0);
            for (int pre = 0; pre < 2; pre++) {
                for (size_t i = 0; i < ny; i++)
                    y[i] = NAN;
                assert_int_equal(conv_f32_packed(&g, CONV_PATH_DIRECT, x, w, pre ? packed : NULL, bias, &relu, y,
                                                 &arena, pool),
                                 ST_OK);
                for (size_t i = 0; i < ny; i++)
                    if (!(fabs((double)y[i] - (double)ref[i]) <= 1e-4 * fmax(1.0, fabs((double)ref[i]))))
                        fail_msg("shape %zu, %d threads, packed %d: y[%zu] = %g, expected %g", si, threads, pre, i,
                                 (double)y[i], (double)ref[i]);
            }
            st_arena_free(&arena);
            st_pool_destroy(pool);
            free(x);
            free(w);
            free(y);
            free(ref);
            free(bias);
            free(packed);
        }
}

/* The dispatched direct tile (AVX-512 or AVX2 where available) against
 * the scalar one: every position count up to the tile's width, row counts
 * over several channel blocks, odd channel and tap counts, flat rows wider
 * than the output rows (narrow ones too: a vector spanning several rows),
 * masked taps, with and without bias and ReLU, reading x only where the
 * contract says (exact-size buffers catch overreads under ASan). */
static void test_direct_tile_matches_scalar(void **state)
{
    (void)state;
    size_t max_np = eng_sconv_max_np();
    for (int it = 0; it < 600; it++) {
        size_t np = (size_t)rnd_int(1, (int64_t)max_np), rows = (size_t)rnd_int(1, 3 * ENG_SCONV_MR);
        size_t c_in = (size_t)rnd_int(1, 7), n_taps = (size_t)rnd_int(1, 10);
        bool is_masked = it % 3 == 0; /* masked taps, on "same"-width rows */
        size_t wp = (size_t)rnd_int(1, it % 2 ? 12 : 70);
        size_t ow = is_masked || it % 5 == 0 ? wp : (size_t)rnd_int(1, (int64_t)wp);
        size_t p0 = (size_t)rnd_int(0, 100);
        size_t taps[10], max_tap = 0;
        for (size_t k = 0; k < n_taps; k++) {
            taps[k] = (size_t)rnd_int(0, 40);
            max_tap = taps[k] > max_tap ? taps[k] : max_tap;
        }
        size_t x_cs = max_tap + p0 + np + (size_t)rnd_int(0, 5);
        size_t nx = (c_in - 1) * x_cs + max_tap + p0 + np; /* the last read is x[nx - 1] */
        size_t last = p0 + np - 1, ldy = last - last / wp * (wp - ow) + 1 + (size_t)rnd_int(0, 3);
        size_t blocks = (rows + ENG_SCONV_MR - 1) / ENG_SCONV_MR;
        size_t nw = blocks * c_in * n_taps * ENG_SCONV_MR, ny = (rows - 1) * ldy + ldy;
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *a = malloc(ny * 4), *b = malloc(ny * 4);
        float bias[3 * ENG_SCONV_MR];
        fill(x, nx);
        fill(w, nw);
        fill(bias, rows);
        eng_sconv_tile t = { .x = x, .x_cs = x_cs, .c_in = c_in, .taps = taps, .n_taps = n_taps, .w = w,
                             .bias = it % 3 ? bias : NULL, .y = a, .ldy = ldy, .rows = rows, .p0 = p0, .np = np, .wp = wp,
                             .ow = ow, .relu = it % 2 };
        ptrdiff_t shifts[ENG_SCONV_MAX_COLS];
        if (is_masked) {
            t.n_cols = (size_t)rnd_int(1, n_taps < ENG_SCONV_MAX_COLS ? (int64_t)n_taps : ENG_SCONV_MAX_COLS);
            for (size_t k = 0; k < t.n_cols; k++)
                shifts[k] = (ptrdiff_t)rnd_int(-3, 3);
            t.col_shift = shifts;
        }
        for (size_t i = 0; i < ny; i++)
            a[i] = b[i] = -7.0f;
        eng_sconv_tile_run(&t);
        t.y = b;
        eng_sconv_tile_ref(&t);
        for (size_t i = 0; i < ny; i++)
            if (!(fabs((double)a[i] - (double)b[i]) <= 1e-5 * fmax(1.0, fabs((double)b[i]))))
                fail_msg("np %zu rows %zu c_in %zu taps %zu p0 %zu wp %zu ow %zu: [%zu] %g vs %g", np, rows, c_in,
                         n_taps, p0, wp, ow, i, (double)a[i], (double)b[i]);
        free(x);
        free(w);
        free(a);
        free(b);
    }
}

/* The dispatched depthwise kernel (AVX2 where available) against its
 * scalar version on one padded plane, for kernel sizes, strides (the
 * phase-split layout) and widths around the vector tails. */
static void test_depthwise_kernel_matches_scalar(void **state)
{
    (void)state;
    for (int it = 0; it < 600; it++) {
        conv_geom g;
        memset(&g, 0, sizeof g);
        for (int d = 0; d < CONV_SP; d++)
            g.in[d] = g.out[d] = g.kernel[d] = g.stride[d] = g.dilation[d] = 1;
        g.kernel[1] = rnd_int(1, 5);
        g.kernel[2] = rnd_int(1, 5);
        if (it % 3 == 0)
            g.kernel[1] = g.kernel[2] = 3;
        g.stride[1] = rnd_int(1, 3);
        g.stride[2] = rnd_int(1, 3);
        g.dilation[1] = it % 2 ? 1 : rnd_int(1, 2);
        g.dilation[2] = it % 2 ? 1 : rnd_int(1, 2);
        if (it % 6 == 0) /* the unpadded kernel's case */
            g.stride[1] = g.stride[2] = g.dilation[1] = g.dilation[2] = 1;
        g.out[1] = rnd_int(1, 13);
        g.out[2] = rnd_int(1, 37);
        for (int d = 1; d < CONV_SP; d++) {
            int64_t span = (g.out[d] - 1) * g.stride[d] + (g.kernel[d] - 1) * g.dilation[d] + 1;
            g.pad_begin[d] = rnd_int(0, span > 2 ? 2 : span - 1);
            g.in[d] = span - g.pad_begin[d] - rnd_int(0, 1); /* sometimes a trailing pad too */
            if (g.in[d] < 1)
                g.in[d] = 1;
        }
        conv_dw_shape s;
        conv_dw_shape_init(&s, &g);
        size_t in_n = (size_t)(g.in[1] * g.in[2]), buf_n = s.rows * s.row_len + CONV_DW_SLACK;
        float *plane = malloc((in_n + 1) * sizeof *plane), *buf = malloc(buf_n * sizeof *buf);
        float *a = malloc(s.oh * s.ow * sizeof *a), *b = malloc(s.oh * s.ow * sizeof *b), wt[25];
        fill(plane, in_n);
        fill(wt, s.kh * s.kw);
        conv_dw_pad(&s, plane, buf);
        conv_dw_plane_f32(&s, buf, wt, 0.5f, a);
        conv_dw_plane_f32_ref(&s, buf, wt, 0.5f, b);
        for (size_t i = 0; i < s.oh * s.ow; i++)
            if (!(fabs((double)a[i] - (double)b[i]) <= 1e-5 * fmax(1.0, fabs((double)b[i]))))
                fail_msg("k %zux%zu s %zu,%zu d %zu,%zu out %zux%zu: [%zu] %g vs %g", s.kh, s.kw, s.sh, s.sw, s.dh,
                         s.dw, s.oh, s.ow, i, (double)a[i], (double)b[i]);
        /* The kernel on the unpadded plane, where it applies. */
        if (conv_dw_raw_applies(&s)) {
            conv_dw_raw_f32(&s, plane, wt, 0.5f, a);
            for (size_t i = 0; i < s.oh * s.ow; i++)
                if (!(fabs((double)a[i] - (double)b[i]) <= 1e-5 * fmax(1.0, fabs((double)b[i]))))
                    fail_msg("raw: pads %zu,%zu in %zux%zu out %zux%zu: [%zu] %g vs %g", s.pad_top, s.pad_left, s.ih,
                             s.iw, s.oh, s.ow, i, (double)a[i], (double)b[i]);
        }
        free(plane);
        free(buf);
        free(a);
        free(b);
    }
}

/* --- geometry -------------------------------------------------------------------- */

static void test_auto_pad_geometry(void **state)
{
    (void)state;
    problem p;
    memset(&p, 0, sizeof p);
    p.nsp = 2;
    int64_t xs[4] = { 1, 1, 5, 6 }, ws[4] = { 1, 1, 3, 3 };
    memcpy(p.x_shape, xs, sizeof xs);
    memcpy(p.w_shape, ws, sizeof ws);
    p.attrs.group = 1;
    p.attrs.n_strides = 2;
    p.attrs.strides[0] = p.attrs.strides[1] = 2;
    p.attrs.auto_pad = CONV_PAD_SAME_UPPER;
    conv_geom g = geometry_of(&p);
    /* out = ceil(in / stride); total pad = (out - 1) * s + k - in. */
    assert_int_equal(g.out[1], 3);
    assert_int_equal(g.out[2], 3);
    assert_int_equal(g.pad_begin[1], 1); /* total 2 */
    assert_int_equal(g.pad_end[1], 1);
    assert_int_equal(g.pad_begin[2], 0); /* total 1: the extra at the end */
    assert_int_equal(g.pad_end[2], 1);
    p.attrs.auto_pad = CONV_PAD_SAME_LOWER;
    g = geometry_of(&p);
    assert_int_equal(g.pad_begin[2], 1); /* ... or at the beginning */
    assert_int_equal(g.pad_end[2], 0);
    p.attrs.auto_pad = CONV_PAD_VALID;
    g = geometry_of(&p);
    assert_int_equal(g.out[1], 2);
    assert_int_equal(g.out[2], 2);
    assert_int_equal(g.pad_begin[2] + g.pad_end[2], 0);
}

static void test_bad_shapes_are_errors(void **state)
{
    (void)state;
    conv_attrs a;
    memset(&a, 0, sizeof a);
    a.group = 2;
    conv_geom g;
    st_error err = { 0 };
    int64_t xs[4] = { 1, 4, 5, 5 };
    int64_t w_bad_channels[4] = { 4, 3, 3, 3 };
    assert_int_equal(conv_geom_conv(&g, &a, xs, 4, w_bad_channels, 4, &err), ST_ESHAPE);
    assert_non_null(strstr(err.msg, "group"));
    int64_t w_too_big[4] = { 4, 2, 7, 3 };
    assert_int_equal(conv_geom_conv(&g, &a, xs, 4, w_too_big, 4, &err), ST_ESHAPE);
    int64_t w_rank3[3] = { 4, 2, 3 };
    assert_int_equal(conv_geom_conv(&g, &a, xs, 4, w_rank3, 3, &err), ST_ESHAPE);
    a.n_strides = 1; /* one stride for two spatial axes */
    a.strides[0] = 1;
    int64_t w_ok[4] = { 4, 2, 3, 3 };
    assert_int_equal(conv_geom_conv(&g, &a, xs, 4, w_ok, 4, &err), ST_EINVAL);
    a.n_strides = 0;
    int64_t x_huge[4] = { 1, 4, (int64_t)1 << 40, 5 };
    assert_int_equal(conv_geom_conv(&g, &a, x_huge, 4, w_ok, 4, &err), ST_EUNSUPPORTED);
    a.n_kernel = 2;
    a.kernel[0] = 3;
    a.kernel[1] = 2; /* disagrees with W */
    assert_int_equal(conv_geom_conv(&g, &a, xs, 4, w_ok, 4, &err), ST_ESHAPE);
}

static void test_pool_geometry_ceil_mode(void **state)
{
    (void)state;
    conv_attrs a;
    memset(&a, 0, sizeof a);
    a.n_kernel = 2;
    a.kernel[0] = a.kernel[1] = 3;
    a.n_strides = 2;
    a.strides[0] = a.strides[1] = 2;
    a.n_pads = 4;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    int64_t xs[4] = { 1, 1, 6, 7 };
    conv_geom g;
    st_error err = { 0 };
    assert_int_equal(conv_geom_pool(&g, &a, xs, 4, &err), ST_OK);
    assert_int_equal(g.out[1], 3); /* floor((6 + 2 - 3) / 2) + 1 */
    assert_int_equal(g.out[2], 4);
    a.ceil_mode = true;
    assert_int_equal(conv_geom_pool(&g, &a, xs, 4, &err), ST_OK);
    /* ceil((6 + 2 - 3) / 2) + 1 = 4: the last window starts at input row 5 */
    assert_int_equal(g.out[1], 4);
    assert_int_equal(g.out[2], 4);
    /* in 4, kernel 2, stride 2, trailing pad 1: ceil gives 3 windows, but
     * the third would start in the trailing pad, so it is dropped. */
    int64_t xs2[4] = { 1, 1, 4, 4 };
    a.kernel[0] = a.kernel[1] = 2;
    a.pads[0] = a.pads[1] = 0;
    a.pads[2] = a.pads[3] = 1;
    assert_int_equal(conv_geom_pool(&g, &a, xs2, 4, &err), ST_OK);
    assert_int_equal(g.out[1], 2);
    assert_int_equal(g.out[2], 2);
}

/* --- pools: the separable float32 path against the direct float64 one ---------- */

typedef struct pool_case {
    conv_attrs attrs;
    int64_t x_shape[4];
    uint32_t rank;
} pool_case;

static pool_case random_pool_case(void)
{
    pool_case c;
    memset(&c, 0, sizeof c);
    int nsp = (int)rnd_int(1, 2);
    c.rank = (uint32_t)nsp + 2;
    c.x_shape[0] = rnd_int(1, 2);
    c.x_shape[1] = rnd_int(1, 3);
    conv_attrs *a = &c.attrs;
    a->p = (float)rnd_int(1, 3);
    a->n_kernel = a->n_strides = a->n_dilations = (size_t)nsp;
    a->ceil_mode = rnd() % 2;
    a->count_include_pad = rnd() % 2;
    a->auto_pad = rnd() % 4 == 0 ? (conv_auto_pad)rnd_int(1, 3) : CONV_PAD_NOTSET;
    if (a->auto_pad == CONV_PAD_NOTSET)
        a->n_pads = 2 * (size_t)nsp;
    for (int i = 0; i < nsp; i++) {
        a->kernel[i] = rnd_int(1, 4);
        a->strides[i] = rnd_int(1, 3);
        a->dilations[i] = rnd_int(1, 2);
        /* ONNX requires pads smaller than the kernel. */
        a->pads[i] = rnd_int(0, a->kernel[i] - 1);
        a->pads[nsp + i] = rnd_int(0, a->kernel[i] - 1);
        int64_t dk = (a->kernel[i] - 1) * a->dilations[i] + 1;
        c.x_shape[2 + i] = rnd_int(dk, dk + 20);
    }
    if (rnd() % 4 == 0) { /* the 2x2 stride-2 special case, odd sizes too */
        a->auto_pad = CONV_PAD_NOTSET;
        a->n_pads = 0;
        for (int i = 0; i < nsp; i++) {
            a->kernel[i] = a->strides[i] = 2;
            a->dilations[i] = 1;
            c.x_shape[2 + i] = rnd_int(2, 40);
        }
    }
    return c;
}

/* Runs `run` on x (converted to `dtype`) and returns the output as double;
 * on `pool` when not NULL. */
static void run_pool_on(pool_case *c, int op, st_dtype dtype, const float *x, double *out, size_t *n_out,
                        st_pool *pool)
{
    onnx_node proto;
    memset(&proto, 0, sizeof proto);
    eng_node node;
    memset(&node, 0, sizeof node);
    node.proto = &proto;
    node.state = &c->attrs;
    node.opset = 17;
    size_t nx = count_of(c->x_shape, (int)c->rank);
    void *xd = malloc(nx * 8);
    for (size_t i = 0; i < nx; i++) {
        if (dtype == ST_DT_FLOAT32)
            ((float *)xd)[i] = x[i];
        else
            ((double *)xd)[i] = x[i];
    }
    eng_tensor xt = eng_tensor_make(dtype, c->x_shape, c->rank, xd), yt;
    memset(&yt, 0, sizeof yt);
    const eng_tensor *ins[1] = { &xt };
    eng_tensor *outs[1] = { &yt };
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    eng_kctx k = { .node = &node, .in = ins, .n_in = 1, .out = outs, .n_out = 1, .scratch = &arena, .err = &err,
                   .pool = pool };
    st_status (*infer)(eng_kctx *) = op == 0 ? conv_maxpool_infer : op == 1 ? conv_avgpool_infer : conv_lppool_infer;
    st_status (*run)(eng_kctx *) = op == 0 ? conv_maxpool_run : op == 1 ? conv_avgpool_run : conv_lppool_run;
    if (infer(&k) != ST_OK)
        fail_msg("pool infer: %s", err.msg);
    size_t ny = count_of(yt.shape, (int)yt.rank);
    yt.count = ny;
    yt.data = malloc(ny * 8 + 8);
    if (run(&k) != ST_OK)
        fail_msg("pool run: %s", err.msg);
    for (size_t i = 0; i < ny; i++)
        out[i] = dtype == ST_DT_FLOAT32 ? ((float *)yt.data)[i] : ((double *)yt.data)[i];
    *n_out = ny;
    free(yt.data);
    free(xd);
    st_arena_free(&arena);
}

static void run_pool(pool_case *c, int op, st_dtype dtype, const float *x, double *out, size_t *n_out)
{
    run_pool_on(c, op, dtype, x, out, n_out, NULL);
}

/* Planes split over threads give the same results (large enough inputs
 * for the split to happen). */
static void test_pools_on_thread_pool(void **state)
{
    (void)state;
    st_pool *pool = NULL;
    st_error err = { 0 };
    assert_int_equal(st_pool_create(3, &pool, &err), ST_OK);
    for (int it = 0; it < 12; it++) {
        pool_case c;
        memset(&c, 0, sizeof c);
        c.rank = 4;
        int64_t xs[4] = { 2, 5, 40 + it, 33 };
        memcpy(c.x_shape, xs, sizeof xs);
        c.attrs.n_kernel = c.attrs.n_strides = c.attrs.n_pads = 0;
        c.attrs.n_kernel = 2;
        c.attrs.kernel[0] = c.attrs.kernel[1] = 2 + it % 3;
        c.attrs.n_strides = 2;
        c.attrs.strides[0] = c.attrs.strides[1] = 1 + it % 2;
        c.attrs.p = 2;
        size_t nx = count_of(xs, 4);
        float *x = malloc(nx * sizeof *x);
        double *a = malloc(nx * sizeof *a), *b = malloc(nx * sizeof *b);
        fill(x, nx);
        for (int op = 0; op < 3; op++)
            for (int t = 0; t < 2; t++) {
                st_dtype dt = t ? ST_DT_FLOAT64 : ST_DT_FLOAT32;
                size_t na, nb;
                run_pool_on(&c, op, dt, x, a, &na, NULL);
                run_pool_on(&c, op, dt, x, b, &nb, pool);
                assert_int_equal(na, nb);
                assert_memory_equal(a, b, na * sizeof *a);
            }
        free(x);
        free(a);
        free(b);
    }
    st_pool_destroy(pool);
}

static void test_pools_separable_matches_direct(void **state)
{
    (void)state;
    for (int it = 0; it < 400; it++) {
        pool_case c = random_pool_case();
        int op = (int)rnd_int(0, 2);
        size_t nx = count_of(c.x_shape, (int)c.rank);
        float *x = malloc(nx * sizeof *x);
        fill(x, nx);
        double *a = malloc(65536 * sizeof *a), *b = malloc(65536 * sizeof *b);
        size_t na, nb;
        run_pool(&c, op, ST_DT_FLOAT32, x, a, &na); /* separable path */
        run_pool(&c, op, ST_DT_FLOAT64, x, b, &nb); /* direct path */
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++)
            if (!(fabs(a[i] - b[i]) <= 1e-4 * fmax(1.0, fabs(b[i]))) && !(isinf(a[i]) && a[i] == b[i]))
                fail_msg("op %d rank %u kernel %lld,%lld stride %lld,%lld dil %lld,%lld pads %lld,%lld/%lld,%lld "
                         "ceil %d incl %d auto %d: [%zu] %g vs %g",
                         op, c.rank, (long long)c.attrs.kernel[0], (long long)c.attrs.kernel[1],
                         (long long)c.attrs.strides[0], (long long)c.attrs.strides[1],
                         (long long)c.attrs.dilations[0], (long long)c.attrs.dilations[1], (long long)c.attrs.pads[0],
                         (long long)c.attrs.pads[1], (long long)c.attrs.pads[2], (long long)c.attrs.pads[3],
                         c.attrs.ceil_mode, c.attrs.count_include_pad, (int)c.attrs.auto_pad, i, a[i], b[i]);
        free(x);
        free(a);
        free(b);
    }
}

/* --- whole operators through the registry ------------------------------------- */

/* An attribute list under construction. */
typedef struct attr_list {
    onnx_attr a[8];
    int64_t ints[8][8];
    size_t n;
} attr_list;

static void add_ints(attr_list *l, const char *name, const int64_t *v, size_t n)
{
    onnx_attr *a = &l->a[l->n];
    memset(a, 0, sizeof *a);
    a->name = st_str_c(name);
    a->type = ONNX_ATTR_INTS;
    memcpy(l->ints[l->n], v, n * sizeof *v);
    a->ints = l->ints[l->n];
    a->int_count = n;
    l->n++;
}

static void add_int(attr_list *l, const char *name, int64_t v)
{
    onnx_attr *a = &l->a[l->n++];
    memset(a, 0, sizeof *a);
    a->name = st_str_c(name);
    a->type = ONNX_ATTR_INT;
    a->i = v;
}

static void add_str(attr_list *l, const char *name, const char *v)
{
    onnx_attr *a = &l->a[l->n++];
    memset(a, 0, sizeof *a);
    a->name = st_str_c(name);
    a->type = ONNX_ATTR_STRING;
    a->s = st_str_c(v);
}

static void add_floats(attr_list *l, const char *name, const float *v, size_t n)
{
    onnx_attr *a = &l->a[l->n];
    memset(a, 0, sizeof *a);
    a->name = st_str_c(name);
    a->type = ONNX_ATTR_FLOATS;
    a->floats = v;
    a->float_count = n;
    l->n++;
}

/* Runs op_type (default domain, opset 17) on the inputs; fills out[0]
 * (data malloc'd, caller frees).  Returns the status of the first step
 * that failed. */
static st_status run_op(const char *op_type, const attr_list *attrs, const eng_tensor *const *in, uint32_t n_in,
                        eng_tensor *out, st_error *err)
{
    bool ms = strcmp(op_type, "FusedConv") == 0;
    const eng_op *op = eng_op_find(st_str_c(ms ? "com.microsoft" : ""), st_str_c(op_type), ms ? 1 : 17);
    assert_non_null(op);
    onnx_node proto;
    memset(&proto, 0, sizeof proto);
    proto.op_type = st_str_c(op_type);
    proto.attrs = attrs->a;
    proto.attr_count = attrs->n;
    eng_node node;
    memset(&node, 0, sizeof node);
    node.op = op;
    node.proto = &proto;
    node.opset = 17;
    st_arena arena;
    st_arena_init(&arena, 0);
    memset(out, 0, sizeof *out);
    eng_tensor *outs[1] = { out };
    eng_kctx k = { .node = &node, .in = in, .n_in = n_in, .out = outs, .n_out = 1, .scratch = &arena, .err = err };
    st_status s = op->check ? op->check(&node, &arena, err) : ST_OK;
    if (s == ST_OK)
        s = op->infer(&k);
    if (s == ST_OK) {
        out->count = count_of(out->shape, (int)out->rank);
        out->data = malloc(out->count * st_dtype_size(out->dtype) + 8);
        s = op->run(&k);
    }
    st_arena_free(&arena);
    return s;
}

/* Naive ConvTranspose: every input element scatters its kernel. */
static void reference_convtranspose(const int64_t *xs, int nsp, const int64_t *ws, int64_t group, const int64_t *st,
                                    const int64_t *dil, const int64_t *pb, const int64_t *ys, const float *x,
                                    const float *w, const float *bias, float *y)
{
    int64_t c_g = xs[1] / group, m_g = ws[1];
    int64_t in[3] = { 1, 1, 1 }, out[3] = { 1, 1, 1 }, k[3] = { 1, 1, 1 }, s[3] = { 1, 1, 1 }, d[3] = { 1, 1, 1 },
            p[3] = { 0, 0, 0 };
    for (int i = 0; i < nsp; i++) {
        int j = 3 - nsp + i;
        in[j] = xs[2 + i];
        out[j] = ys[2 + i];
        k[j] = ws[2 + i];
        s[j] = st[i];
        d[j] = dil[i];
        p[j] = pb[i];
    }
    int64_t out_plane = out[0] * out[1] * out[2], in_plane = in[0] * in[1] * in[2], kk = k[0] * k[1] * k[2];
    for (int64_t nm = 0; nm < ys[0] * ys[1]; nm++)
        for (int64_t o = 0; o < out_plane; o++)
            y[nm * out_plane + o] = bias ? bias[nm % ys[1]] : 0.0f;
    for (int64_t n = 0; n < xs[0]; n++)
        for (int64_t c = 0; c < xs[1]; c++)
            for (int64_t i = 0; i < in_plane; i++) {
                int64_t id = i / (in[1] * in[2]), ih = i / in[2] % in[1], iw = i % in[2];
                float xv = x[(n * xs[1] + c) * in_plane + i];
                for (int64_t mm = 0; mm < m_g; mm++)
                    for (int64_t t = 0; t < kk; t++) {
                        int64_t a = t / (k[1] * k[2]), b = t / k[2] % k[1], e = t % k[2];
                        int64_t od = id * s[0] - p[0] + a * d[0], oh = ih * s[1] - p[1] + b * d[1],
                                ow = iw * s[2] - p[2] + e * d[2];
                        if (od < 0 || od >= out[0] || oh < 0 || oh >= out[1] || ow < 0 || ow >= out[2])
                            continue;
                        int64_t m = c / c_g * m_g + mm;
                        y[(n * ys[1] + m) * out_plane + (od * out[1] + oh) * out[2] + ow] +=
                            xv * w[(c * m_g + mm) * kk + t];
                    }
            }
}

static void test_convtranspose_matches_reference(void **state)
{
    (void)state;
    for (int it = 0; it < 150; it++) {
        int nsp = (int)rnd_int(1, 3);
        int64_t group = rnd_int(1, 3), c_g = rnd_int(1, 3), m_g = rnd_int(1, 3);
        int64_t xs[5] = { rnd_int(1, 2), group * c_g }, ws[5] = { group * c_g, m_g };
        int64_t st[3], dil[3], pads[6], opad[3];
        for (int i = 0; i < nsp; i++) {
            xs[2 + i] = rnd_int(1, nsp == 3 ? 4 : 9);
            ws[2 + i] = rnd_int(1, 4);
            st[i] = rnd_int(1, 3);
            dil[i] = rnd_int(1, 2);
            opad[i] = rnd_int(0, st[i] > dil[i] ? st[i] - 1 : dil[i] - 1);
            int64_t full = st[i] * (xs[2 + i] - 1) + opad[i] + (ws[2 + i] - 1) * dil[i] + 1;
            pads[i] = rnd_int(0, (full - 1) / 2);
            pads[nsp + i] = rnd_int(0, (full - 1) / 2);
        }
        attr_list attrs = { .n = 0 };
        add_int(&attrs, "group", group);
        add_ints(&attrs, "strides", st, (size_t)nsp);
        add_ints(&attrs, "dilations", dil, (size_t)nsp);
        add_ints(&attrs, "pads", pads, 2 * (size_t)nsp);
        add_ints(&attrs, "output_padding", opad, (size_t)nsp);
        size_t nx = count_of(xs, nsp + 2), nw = count_of(ws, nsp + 2);
        float *x = malloc(nx * 4), *w = malloc(nw * 4), bias[9];
        fill(x, nx);
        fill(w, nw);
        fill(bias, 9);
        bool with_bias = rnd() % 2;
        int64_t bs = group * m_g;
        eng_tensor xt = eng_tensor_make(ST_DT_FLOAT32, xs, (uint32_t)nsp + 2, x);
        eng_tensor wt = eng_tensor_make(ST_DT_FLOAT32, ws, (uint32_t)nsp + 2, w);
        eng_tensor bt = eng_tensor_make(ST_DT_FLOAT32, &bs, 1, bias);
        const eng_tensor *in[3] = { &xt, &wt, &bt };
        eng_tensor y;
        st_error err = { 0 };
        if (run_op("ConvTranspose", &attrs, in, with_bias ? 3 : 2, &y, &err) != ST_OK)
            fail_msg("ConvTranspose: %s", err.msg);
        for (int i = 0; i < nsp; i++) {
            int64_t full = st[i] * (xs[2 + i] - 1) + opad[i] + (ws[2 + i] - 1) * dil[i] + 1;
            assert_int_equal(y.shape[2 + i], full - pads[i] - pads[nsp + i]);
        }
        float *ref = malloc(y.count * 4);
        reference_convtranspose(xs, nsp, ws, group, st, dil, pads, y.shape, x, w, with_bias ? bias : NULL, ref);
        const float *got = y.data;
        for (size_t i = 0; i < y.count; i++)
            if (!(fabs((double)got[i] - (double)ref[i]) <= 1e-4 * fmax(1.0, fabs((double)ref[i]))))
                fail_msg("ConvTranspose nsp %d group %lld: y[%zu] = %g, expected %g", nsp, (long long)group, i,
                         (double)got[i], (double)ref[i]);
        free(ref);
        free(y.data);
        free(x);
        free(w);
    }
}

/* Conv in float64 (direct loop) and float16 (widened to float32) against
 * the float32 paths on the same values. */
static void test_conv_other_types(void **state)
{
    (void)state;
    for (int it = 0; it < 60; it++) {
        problem p = random_problem(CONV_PATH_IM2COL);
        attr_list attrs = { .n = 0 };
        add_int(&attrs, "group", p.attrs.group);
        add_ints(&attrs, "strides", p.attrs.strides, (size_t)p.nsp);
        add_ints(&attrs, "dilations", p.attrs.dilations, (size_t)p.nsp);
        add_ints(&attrs, "pads", p.attrs.pads, 2 * (size_t)p.nsp);
        uint32_t rank = (uint32_t)p.nsp + 2;
        size_t nx = count_of(p.x_shape, (int)rank), nw = count_of(p.w_shape, (int)rank);
        float *x = malloc(nx * 4), *w = malloc(nw * 4);
        double *xd = malloc(nx * 8), *wd = malloc(nw * 8);
        uint16_t *xh = malloc(nx * 2), *wh = malloc(nw * 2);
        fill(x, nx);
        fill(w, nw);
        for (size_t i = 0; i < nx; i++) {
            xh[i] = st_float_to_half(x[i]);
            x[i] = st_half_to_float(xh[i]); /* the same values in every type */
            xd[i] = x[i];
        }
        for (size_t i = 0; i < nw; i++) {
            wh[i] = st_float_to_half(w[i]);
            w[i] = st_half_to_float(wh[i]);
            wd[i] = w[i];
        }
        eng_tensor y32, y64, y16;
        st_error err = { 0 };
        eng_tensor xt = eng_tensor_make(ST_DT_FLOAT32, p.x_shape, rank, x);
        eng_tensor wt = eng_tensor_make(ST_DT_FLOAT32, p.w_shape, rank, w);
        const eng_tensor *in32[2] = { &xt, &wt };
        assert_int_equal(run_op("Conv", &attrs, in32, 2, &y32, &err), ST_OK);
        eng_tensor xt64 = eng_tensor_make(ST_DT_FLOAT64, p.x_shape, rank, xd);
        eng_tensor wt64 = eng_tensor_make(ST_DT_FLOAT64, p.w_shape, rank, wd);
        const eng_tensor *in64[2] = { &xt64, &wt64 };
        assert_int_equal(run_op("Conv", &attrs, in64, 2, &y64, &err), ST_OK);
        eng_tensor xt16 = eng_tensor_make(ST_DT_FLOAT16, p.x_shape, rank, xh);
        eng_tensor wt16 = eng_tensor_make(ST_DT_FLOAT16, p.w_shape, rank, wh);
        const eng_tensor *in16[2] = { &xt16, &wt16 };
        assert_int_equal(run_op("Conv", &attrs, in16, 2, &y16, &err), ST_OK);
        assert_int_equal(y32.count, y64.count);
        assert_int_equal(y32.count, y16.count);
        assert_int_equal(y16.dtype, ST_DT_FLOAT16);
        for (size_t i = 0; i < y32.count; i++) {
            double a = ((float *)y32.data)[i], b = ((double *)y64.data)[i];
            double h = st_half_to_float(((uint16_t *)y16.data)[i]);
            assert_true(fabs(a - b) <= 1e-4 * fmax(1.0, fabs(b)));
            assert_true(fabs(h - a) <= 2e-3 * fmax(1.0, fabs(a)));
        }
        free(y32.data);
        free(y64.data);
        free(y16.data);
        free(x);
        free(w);
        free(xd);
        free(wd);
        free(xh);
        free(wh);
    }
}

/* com.microsoft FusedConv: Clip(Conv + B + Z) against Conv, then the same
 * by hand. */
static void test_fusedconv(void **state)
{
    (void)state;
    int64_t xs[4] = { 2, 4, 9, 7 }, ws[4] = { 6, 2, 3, 3 }, bs = 6;
    float x[504], w[108], b[6], z[2 * 6 * 9 * 7];
    fill(x, 504);
    fill(w, 108);
    fill(b, 6);
    fill(z, sizeof z / sizeof z[0]);
    attr_list attrs = { .n = 0 };
    int64_t pads[4] = { 1, 1, 1, 1 };
    float params[2] = { -0.2f, 0.3f };
    add_int(&attrs, "group", 2);
    add_ints(&attrs, "pads", pads, 4);
    add_str(&attrs, "activation", "Clip");
    add_floats(&attrs, "activation_params", params, 2);
    eng_tensor xt = eng_tensor_make(ST_DT_FLOAT32, xs, 4, x), wt = eng_tensor_make(ST_DT_FLOAT32, ws, 4, w);
    eng_tensor bt = eng_tensor_make(ST_DT_FLOAT32, &bs, 1, b);
    int64_t ys[4] = { 2, 6, 9, 7 };
    eng_tensor zt = eng_tensor_make(ST_DT_FLOAT32, ys, 4, z);
    const eng_tensor *in[4] = { &xt, &wt, &bt, &zt };
    eng_tensor fused, plain;
    st_error err = { 0 };
    if (run_op("FusedConv", &attrs, in, 4, &fused, &err) != ST_OK)
        fail_msg("FusedConv: %s", err.msg);
    attrs.n = 2; /* group and pads only */
    assert_int_equal(run_op("Conv", &attrs, in, 3, &plain, &err), ST_OK);
    assert_int_equal(fused.count, plain.count);
    for (size_t i = 0; i < plain.count; i++) {
        float v = ((float *)plain.data)[i] + z[i];
        v = v < -0.2f ? -0.2f : v > 0.3f ? 0.3f : v;
        assert_true(fabsf(((float *)fused.data)[i] - v) <= 1e-5f);
    }
    free(fused.data);
    free(plain.data);
    attr_list bad = { .n = 0 };
    add_str(&bad, "activation", "Softmax");
    assert_int_equal(run_op("FusedConv", &bad, in, 2, &fused, &err), ST_EUNSUPPORTED);
}

/* Hostile attributes and shapes are errors with a message, not crashes. */
static void test_conv_rejects_bad_models(void **state)
{
    (void)state;
    float data[64] = { 0 };
    int64_t xs[4] = { 1, 2, 4, 4 }, ws[4] = { 2, 2, 3, 3 }, bs = 3;
    eng_tensor xt = eng_tensor_make(ST_DT_FLOAT32, xs, 4, data);
    eng_tensor wt = eng_tensor_make(ST_DT_FLOAT32, ws, 4, data);
    eng_tensor bt = eng_tensor_make(ST_DT_FLOAT32, &bs, 1, data);
    const eng_tensor *in[3] = { &xt, &wt, &bt };
    eng_tensor y;
    st_error err = { 0 };
    attr_list none = { .n = 0 };
    assert_int_equal(run_op("Conv", &none, in, 3, &y, &err), ST_ESHAPE); /* bias of 3 for 2 channels */
    assert_non_null(strstr(err.msg, "B must be"));
    attr_list neg = { .n = 0 };
    int64_t bad_strides[2] = { 0, 1 };
    add_ints(&neg, "strides", bad_strides, 2);
    assert_int_equal(run_op("Conv", &neg, in, 2, &y, &err), ST_EINVAL);
    attr_list big = { .n = 0 };
    int64_t big_pads[4] = { (int64_t)1 << 40, 0, 0, 0 };
    add_ints(&big, "pads", big_pads, 4);
    assert_int_equal(run_op("Conv", &big, in, 2, &y, &err), ST_EINVAL);
    attr_list grp = { .n = 0 };
    add_int(&grp, "group", 0);
    assert_int_equal(run_op("Conv", &grp, in, 2, &y, &err), ST_EINVAL);
    attr_list k = { .n = 0 };
    int64_t ks[2] = { 9, 9 };
    add_ints(&k, "kernel_shape", ks, 2);
    assert_int_equal(run_op("MaxPool", &k, in, 1, &y, &err), ST_ESHAPE); /* kernel larger than the input */
    attr_list nok = { .n = 0 };
    assert_int_equal(run_op("AveragePool", &nok, in, 1, &y, &err), ST_EINVAL); /* no kernel_shape */
    int64_t is[4] = { 1, 2, 2, 2 };
    int64_t idx[8] = { 0, 1, 2, 3, 4, 5, 6, 99 };
    eng_tensor it = eng_tensor_make(ST_DT_INT64, is, 4, idx);
    eng_tensor vt = eng_tensor_make(ST_DT_FLOAT32, is, 4, data);
    const eng_tensor *uin[2] = { &vt, &it };
    attr_list up = { .n = 0 };
    int64_t k2[2] = { 2, 2 };
    add_ints(&up, "kernel_shape", k2, 2);
    add_ints(&up, "strides", k2, 2);
    assert_int_equal(run_op("MaxUnpool", &up, uin, 2, &y, &err), ST_EINVAL); /* index 99 of 32 */
    free(y.data);
}

int main(void)
{
    /* Fixed by default so failures reproduce; TEST_CONV_SEED explores. */
    const char *seed = getenv("TEST_CONV_SEED");
    if (seed && strtoull(seed, NULL, 10))
        rng_state = strtoull(seed, NULL, 10);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_im2col_matches_reference),
        cmocka_unit_test(test_im2col_same_padding),
        cmocka_unit_test(test_pointwise_matches_reference),
        cmocka_unit_test(test_direct_matches_reference),
        cmocka_unit_test(test_direct_same_padding),
        cmocka_unit_test(test_direct_large_images),
        cmocka_unit_test(test_direct_tile_matches_scalar),
        cmocka_unit_test(test_depthwise_matches_reference),
        cmocka_unit_test(test_auto_path_matches_reference),
        cmocka_unit_test(test_paths_on_thread_pool),
        cmocka_unit_test(test_im2col_many_tiles),
        cmocka_unit_test(test_depthwise_kernel_matches_scalar),
        cmocka_unit_test(test_auto_pad_geometry),
        cmocka_unit_test(test_bad_shapes_are_errors),
        cmocka_unit_test(test_pool_geometry_ceil_mode),
        cmocka_unit_test(test_pools_separable_matches_direct),
        cmocka_unit_test(test_pools_on_thread_pool),
        cmocka_unit_test(test_convtranspose_matches_reference),
        cmocka_unit_test(test_conv_other_types),
        cmocka_unit_test(test_fusedconv),
        cmocka_unit_test(test_conv_rejects_bad_models),
    };
    return cmocka_run_group_tests_name("conv", tests, NULL, NULL);
}
