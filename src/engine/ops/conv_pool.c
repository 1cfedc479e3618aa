/* conv_pool.c - pooling operators: MaxPool (with Indices), AveragePool,
 * LpPool, their Global forms, MaxUnpool, RoiAlign and MaxRoiPool.
 *
 * Windowed pools precompute, per spatial axis and output index, the first
 * valid input index and the number of valid taps, so the loops over the
 * output have no per-element bounds checks.  Float32 1-D/2-D pools without
 * Indices take faster routes: a SIMD kernel for 2x2 stride 2, otherwise a
 * separable pass over rows then columns; the direct loops serve the other
 * types, 3-D and Indices.  Planes (n, c) are split over the thread pool. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "engine/ops/conv_int.h"

/* --- window tables -------------------------------------------------------- */

/* Taps of one output index along one axis: input positions first,
 * first + dilation, ... (count of them), and how many taps fall inside
 * the padded extent (AveragePool's divisor with count_include_pad). */
typedef struct pool_win {
    int64_t first;
    int64_t count;
    int64_t span;
} pool_win;

typedef struct pool_job {
    const conv_geom *g;
    const pool_win *win[CONV_SP];
    const void *x;
    void *y;
    int64_t *indices;           /* MaxPool's second output, or NULL */
    bool col_major;
    bool include_pad;
    float p;
    size_t in_plane, out_plane;
    int kind;                   /* separable path: POOL_MAX, POOL_AVG, POOL_LP */
    size_t row_len, phase_w;    /* separable path: padded row layout */
    const float *inv_w;         /* separable average: 1 / taps per output column */
    float *scratch;             /* per task, scratch_floats each */
    size_t scratch_floats;
    size_t n_planes;
    void (*plane_fn)(const struct pool_job *j, size_t plane, float *scratch);
} pool_job;

enum { POOL_MAX, POOL_AVG, POOL_LP };

static st_status build_windows(eng_kctx *k, const conv_geom *g, pool_job *j)
{
    for (int d = 0; d < CONV_SP; d++) {
        pool_win *w = st_arena_alloc(k->scratch, (size_t)g->out[d] * sizeof *w + 1, 8);
        if (!w)
            return eng_fail(k, ST_ENOMEM, "out of memory for pooling windows");
        int64_t in = g->in[d], kern = g->kernel[d], dil = g->dilation[d];
        for (int64_t o = 0; o < g->out[d]; o++) {
            int64_t start = o * g->stride[d] - g->pad_begin[d];
            int64_t lo = start >= 0 ? 0 : (-start + dil - 1) / dil;
            int64_t hi = start > in - 1 ? 0 : (in - 1 - start) / dil + 1;
            if (hi > kern)
                hi = kern;
            int64_t span = (in + g->pad_end[d] - start + dil - 1) / dil;
            w[o].first = start + lo * dil;
            w[o].count = hi > lo ? hi - lo : 0;
            w[o].span = span < kern ? (span > 0 ? span : 0) : kern;
        }
        j->win[d] = w;
    }
    j->in_plane = conv_in_plane(g);
    j->out_plane = conv_out_plane(g);
    return ST_OK;
}

static void planes_task(void *ctx, int ith, int nth)
{
    const pool_job *j = ctx;
    size_t begin = j->n_planes * (size_t)ith / (size_t)nth, end = j->n_planes * (size_t)(ith + 1) / (size_t)nth;
    float *scratch = j->scratch ? j->scratch + (size_t)ith * j->scratch_floats : NULL;
    for (size_t p = begin; p < end; p++)
        j->plane_fn(j, p, scratch);
}

/* Runs j->plane_fn over every (n, c) plane, split over the threads when
 * there is enough work; each task gets j->scratch_floats of scratch. */
static st_status run_planes(eng_kctx *k, pool_job *j, size_t planes, size_t work_per_plane)
{
    size_t tasks = (size_t)st_pool_size(k->pool);
    if (tasks > planes)
        tasks = planes;
    if (work_per_plane * planes < 65536)
        tasks = 1;
    j->n_planes = planes;
    if (j->scratch_floats) {
        size_t bytes;
        if (__builtin_mul_overflow(tasks, j->scratch_floats * sizeof(float), &bytes))
            return eng_fail(k, ST_EOVERFLOW, "pooling scratch size overflows");
        j->scratch = st_arena_alloc(k->scratch, bytes, 64);
        if (!j->scratch)
            return eng_fail(k, ST_ENOMEM, "out of memory for pooling scratch");
    }
    if (tasks > 0)
        st_pool_run(k->pool, planes_task, j, (int)tasks);
    return ST_OK;
}

/* --- separable float32 path ---------------------------------------------- */

/* 1-D and 2-D float32 pools without indices.  Max and sums are separable:
 * each input row is first reduced over the window's columns at every
 * output column (one pass per column tap over a padded, phase-split copy
 * of the row, so taps are unit-stride whatever the stride), then each
 * output row over the window's rows (one pass per row tap).  Every pass
 * is a SIMD loop over a whole row. */
static void sep_plane(const pool_job *j, size_t plane, float *scratch)
{
    const conv_geom *g = j->g;
    const float *x = (const float *)j->x + plane * j->in_plane;
    float *y = (float *)j->y + plane * j->out_plane;
    size_t ih_n = (size_t)g->in[1], iw_n = (size_t)g->in[2], oh_n = (size_t)g->out[1], ow_n = (size_t)g->out[2];
    size_t kw = (size_t)g->kernel[2], sw = (size_t)g->stride[2], dw = (size_t)g->dilation[2];
    size_t dh = (size_t)g->dilation[1];
    bool is_max = j->kind == POOL_MAX;
    float fill = is_max ? -INFINITY : 0.0f, p = j->p;
    float *row = scratch, *hbuf = scratch + j->row_len + CONV_DW_SLACK;
    for (size_t r = 0; r < ih_n; r++) {
        conv_pad_row_f32(x + r * iw_n, iw_n, (size_t)g->pad_begin[2], sw, j->phase_w, fill, row);
        if (j->kind == POOL_LP)
            for (size_t i = 0; i < j->row_len; i++)
                row[i] = p == 1.0f ? fabsf(row[i]) : p == 2.0f ? row[i] * row[i] : powf(fabsf(row[i]), p);
        float *h = hbuf + r * ow_n;
        for (size_t t = 0; t < kw; t++) {
            size_t col = t * dw;
            const float *src = row + (col % sw) * j->phase_w + col / sw;
            if (t == 0)
                memcpy(h, src, ow_n * sizeof *h);
            else if (is_max)
                conv_vmax_f32(h, src, ow_n);
            else
                conv_vadd_f32(h, src, ow_n);
        }
    }
    for (size_t oh = 0; oh < oh_n; oh++) {
        pool_win wh = j->win[1][oh];
        float *o = y + oh * ow_n;
        if (wh.count == 0) {
            for (size_t i = 0; i < ow_n; i++)
                o[i] = fill;
        } else {
            memcpy(o, hbuf + (size_t)wh.first * ow_n, ow_n * sizeof *o);
            for (size_t i = 1; i < (size_t)wh.count; i++) {
                const float *src = hbuf + ((size_t)wh.first + i * dh) * ow_n;
                if (is_max)
                    conv_vmax_f32(o, src, ow_n);
                else
                    conv_vadd_f32(o, src, ow_n);
            }
        }
        if (j->kind == POOL_AVG) {
            int64_t n_h = j->include_pad ? wh.span : wh.count;
            float inv_h = n_h ? 1.0f / (float)n_h : 0.0f;
            for (size_t i = 0; i < ow_n; i++)
                o[i] = o[i] * j->inv_w[i] * inv_h;
        } else if (j->kind == POOL_LP) {
            for (size_t i = 0; i < ow_n; i++)
                o[i] = p == 1.0f ? o[i] : p == 2.0f ? sqrtf(o[i]) : powf(o[i], 1.0f / p);
        }
    }
}

static void pool2x2_plane(const pool_job *j, size_t plane, float *scratch)
{
    (void)scratch;
    conv_pool2x2_f32((const float *)j->x + plane * j->in_plane, (size_t)j->g->in[2],
                     (float *)j->y + plane * j->out_plane, (size_t)j->g->out[1], (size_t)j->g->out[2],
                     j->kind == POOL_MAX);
}

/* Sets up j for sep_plane when the problem suits it (float32, up to two
 * spatial dims); false otherwise. */
static st_status sep_setup(eng_kctx *k, const conv_geom *g, pool_job *j, int kind, bool *use)
{
    *use = false;
    if (k->in[0]->dtype != ST_DT_FLOAT32 || g->nsp > 2)
        return ST_OK;
    if (kind != POOL_LP && g->kernel[1] == 2 && g->kernel[2] == 2 && g->stride[1] == 2 && g->stride[2] == 2 &&
        g->dilation[1] == 1 && g->dilation[2] == 1 && g->pad_begin[1] == 0 && g->pad_begin[2] == 0 &&
        2 * g->out[1] <= g->in[1] && 2 * g->out[2] <= g->in[2]) {
        /* Every window whole: MaxPool2d(2) / AvgPool2d(2). */
        j->kind = kind;
        j->plane_fn = pool2x2_plane;
        *use = true;
        return ST_OK;
    }
    size_t ow = (size_t)g->out[2], sw = (size_t)g->stride[2];
    size_t cols = (ow - 1) * sw + (size_t)((g->kernel[2] - 1) * g->dilation[2]) + 1;
    j->phase_w = (cols + sw - 1) / sw;
    j->row_len = j->phase_w * sw;
    size_t hbuf;
    if (__builtin_mul_overflow((size_t)g->in[1], ow, &hbuf) ||
        __builtin_add_overflow(hbuf, j->row_len + CONV_DW_SLACK + 16, &j->scratch_floats))
        return eng_fail(k, ST_EOVERFLOW, "pooling scratch size overflows");
    j->scratch_floats &= ~(size_t)15;
    if (kind == POOL_AVG) {
        float *inv = st_arena_alloc(k->scratch, ow * sizeof *inv + 1, 64);
        if (!inv)
            return eng_fail(k, ST_ENOMEM, "out of memory for pooling");
        for (size_t i = 0; i < ow; i++) {
            int64_t n = j->include_pad ? j->win[2][i].span : j->win[2][i].count;
            inv[i] = n ? 1.0f / (float)n : 0.0f;
        }
        j->inv_w = inv;
    }
    j->kind = kind;
    j->plane_fn = sep_plane;
    *use = true;
    return ST_OK;
}

/* --- MaxPool ------------------------------------------------------------- */

#define MAXPOOL_PLANE(NAME, T, LOWEST)                                                                      \
    static void NAME(const pool_job *j, size_t plane, float *scratch)                                       \
    {                                                                                                       \
        (void)scratch;                                                                                      \
        const conv_geom *g = j->g;                                                                          \
        const T *x = (const T *)j->x + plane * j->in_plane;                                                 \
        T *y = (T *)j->y + plane * j->out_plane;                                                            \
        int64_t *ix = j->indices ? j->indices + plane * j->out_plane : NULL;                                \
        const int64_t ih_n = g->in[1], iw_n = g->in[2];                                                     \
        const int64_t dd = g->dilation[0], dh = g->dilation[1], dw = g->dilation[2];                        \
        for (int64_t od = 0; od < g->out[0]; od++) {                                                        \
            pool_win wd = j->win[0][od];                                                                    \
            for (int64_t oh = 0; oh < g->out[1]; oh++) {                                                    \
                pool_win wh = j->win[1][oh];                                                                \
                for (int64_t ow = 0; ow < g->out[2]; ow++) {                                                \
                    pool_win ww = j->win[2][ow];                                                            \
                    T best = LOWEST;                                                                        \
                    int64_t at = -1;                                                                        \
                    for (int64_t a = 0; a < wd.count; a++) {                                                \
                        int64_t id = wd.first + a * dd;                                                     \
                        for (int64_t b = 0; b < wh.count; b++) {                                            \
                            int64_t ih = wh.first + b * dh;                                                 \
                            const T *row = x + (id * ih_n + ih) * iw_n + ww.first;                          \
                            if (!ix) {                                                                      \
                                for (int64_t c = 0; c < ww.count; c++)                                      \
                                    best = row[c * dw] > best ? row[c * dw] : best;                         \
                                continue;                                                                   \
                            }                                                                               \
                            for (int64_t c = 0; c < ww.count; c++)                                          \
                                if (row[c * dw] > best || at < 0) { /* first tap, then strictly larger */   \
                                    best = row[c * dw];                                                     \
                                    int64_t iw = ww.first + c * dw;                                         \
                                    at = j->col_major ? id + (ih + iw * ih_n) * g->in[0]                    \
                                                      : (id * ih_n + ih) * iw_n + iw;                       \
                                }                                                                           \
                        }                                                                                   \
                    }                                                                                       \
                    *y++ = best;                                                                            \
                    if (ix)                                                                                 \
                        *ix++ = at < 0 ? -1 : (int64_t)(plane * j->in_plane) + at;                         \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
    }

MAXPOOL_PLANE(maxpool_f32, float, -INFINITY)
MAXPOOL_PLANE(maxpool_f64, double, -INFINITY)
MAXPOOL_PLANE(maxpool_i8, int8_t, INT8_MIN)
MAXPOOL_PLANE(maxpool_u8, uint8_t, 0)

static st_status pool_geom_of(eng_kctx *k, conv_geom *g)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "input X is required");
    st_error e = { 0 };
    st_status s = conv_geom_pool(g, k->node->state, x->shape, x->rank, &e);
    return s == ST_OK ? ST_OK : eng_fail(k, s, "%s", e.msg);
}

static st_status pool_infer_types(eng_kctx *k, bool ints_ok)
{
    conv_geom g;
    st_status s = pool_geom_of(k, &g);
    if (s != ST_OK)
        return s;
    st_dtype t = k->in[0]->dtype;
    bool ok = t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64 || t == ST_DT_FLOAT16 ||
              (ints_ok && (t == ST_DT_INT8 || t == ST_DT_UINT8));
    if (!ok)
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported (float32, float64, float16%s)",
                        st_dtype_name(t), ints_ok ? ", int8, uint8" : "");
    int64_t shape[ENG_MAX_RANK];
    shape[0] = g.batch;
    shape[1] = g.c_in;
    for (int i = 0; i < g.nsp; i++)
        shape[2 + i] = g.out[CONV_SP - g.nsp + i];
    eng_set_shape(k->out[0], t, shape, (uint32_t)g.nsp + 2);
    if (k->n_out > 1 && k->out[1])
        eng_set_shape(k->out[1], ST_DT_INT64, shape, (uint32_t)g.nsp + 2);
    return ST_OK;
}

st_status conv_maxpool_infer(eng_kctx *k)
{
    return pool_infer_types(k, true);
}

st_status conv_maxpool_run(eng_kctx *k)
{
    if (k->in[0]->dtype == ST_DT_FLOAT16)
        return conv_run_via_f32(k, conv_maxpool_run);
    conv_geom g;
    st_status s = pool_geom_of(k, &g);
    if (s != ST_OK)
        return s;
    if (k->out[0]->count == 0)
        return ST_OK;
    const conv_attrs *a = k->node->state;
    pool_job j = { .g = &g, .x = k->in[0]->data, .y = k->out[0]->data, .col_major = a->col_major_indices };
    if (k->n_out > 1 && k->out[1])
        j.indices = k->out[1]->data;
    if ((s = build_windows(k, &g, &j)) != ST_OK)
        return s;
    bool sep = false;
    if (!j.indices && (s = sep_setup(k, &g, &j, POOL_MAX, &sep)) != ST_OK)
        return s;
    if (sep)
        return run_planes(k, &j, (size_t)(g.batch * g.c_in), j.out_plane * conv_kernel_size(&g));
    switch (k->in[0]->dtype) {
    case ST_DT_FLOAT32: j.plane_fn = maxpool_f32; break;
    case ST_DT_FLOAT64: j.plane_fn = maxpool_f64; break;
    case ST_DT_INT8: j.plane_fn = maxpool_i8; break;
    default: j.plane_fn = maxpool_u8; break;
    }
    return run_planes(k, &j, (size_t)(g.batch * g.c_in), j.out_plane * conv_kernel_size(&g));
}

/* --- AveragePool / LpPool ----------------------------------------------------- */

/* LP: 0 average, 1 sum of |x|, 2 root of the sum of squares, 3 any p. */
#define SUMPOOL_PLANE(NAME, T, LP)                                                                          \
    static void NAME(const pool_job *j, size_t plane, float *scratch)                                       \
    {                                                                                                       \
        (void)scratch;                                                                                      \
        const conv_geom *g = j->g;                                                                          \
        const T *x = (const T *)j->x + plane * j->in_plane;                                                 \
        T *y = (T *)j->y + plane * j->out_plane;                                                            \
        const int64_t ih_n = g->in[1], iw_n = g->in[2];                                                     \
        const int64_t dd = g->dilation[0], dh = g->dilation[1], dw = g->dilation[2];                        \
        const T p = (T)j->p;                                                                                \
        for (int64_t od = 0; od < g->out[0]; od++) {                                                        \
            pool_win wd = j->win[0][od];                                                                    \
            for (int64_t oh = 0; oh < g->out[1]; oh++) {                                                    \
                pool_win wh = j->win[1][oh];                                                                \
                for (int64_t ow = 0; ow < g->out[2]; ow++) {                                                \
                    pool_win ww = j->win[2][ow];                                                            \
                    T sum = 0;                                                                              \
                    for (int64_t a = 0; a < wd.count; a++)                                                  \
                        for (int64_t b = 0; b < wh.count; b++) {                                            \
                            const T *row = x + ((wd.first + a * dd) * ih_n + wh.first + b * dh) * iw_n +    \
                                           ww.first;                                                        \
                            for (int64_t c = 0; c < ww.count; c++) {                                        \
                                T v = row[c * dw];                                                          \
                                sum += LP == 0 ? v : LP == 1 ? (T)fabs(v) : LP == 2 ? v * v : (T)pow(fabs(v), p); \
                            }                                                                               \
                        }                                                                                   \
                    if (LP == 0) {                                                                          \
                        int64_t n = j->include_pad ? wd.span * wh.span * ww.span                            \
                                                   : wd.count * wh.count * ww.count;                        \
                        *y++ = n ? sum / (T)n : 0;                                                          \
                    } else {                                                                                \
                        *y++ = LP == 1 ? sum : LP == 2 ? (T)sqrt(sum) : (T)pow(sum, 1 / p);                 \
                    }                                                                                       \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
    }

SUMPOOL_PLANE(avgpool_f32, float, 0)
SUMPOOL_PLANE(avgpool_f64, double, 0)
SUMPOOL_PLANE(lp1pool_f32, float, 1)
SUMPOOL_PLANE(lp1pool_f64, double, 1)
SUMPOOL_PLANE(lp2pool_f32, float, 2)
SUMPOOL_PLANE(lp2pool_f64, double, 2)
SUMPOOL_PLANE(lppool_f32, float, 3)
SUMPOOL_PLANE(lppool_f64, double, 3)

st_status conv_avgpool_infer(eng_kctx *k)
{
    return pool_infer_types(k, false);
}

st_status conv_lppool_infer(eng_kctx *k)
{
    return pool_infer_types(k, false);
}

static st_status sumpool_run(eng_kctx *k, bool is_lp)
{
    conv_geom g;
    st_status s = pool_geom_of(k, &g);
    if (s != ST_OK)
        return s;
    if (k->out[0]->count == 0)
        return ST_OK;
    const conv_attrs *a = k->node->state;
    pool_job j = { .g = &g, .x = k->in[0]->data, .y = k->out[0]->data, .include_pad = a->count_include_pad,
                   .p = a->p };
    if ((s = build_windows(k, &g, &j)) != ST_OK)
        return s;
    bool sep;
    if ((s = sep_setup(k, &g, &j, is_lp ? POOL_LP : POOL_AVG, &sep)) != ST_OK)
        return s;
    if (sep)
        return run_planes(k, &j, (size_t)(g.batch * g.c_in), j.out_plane * conv_kernel_size(&g));
    bool f32 = k->in[0]->dtype == ST_DT_FLOAT32;
    if (!is_lp)
        j.plane_fn = f32 ? avgpool_f32 : avgpool_f64;
    else if (a->p == 1.0f)
        j.plane_fn = f32 ? lp1pool_f32 : lp1pool_f64;
    else if (a->p == 2.0f)
        j.plane_fn = f32 ? lp2pool_f32 : lp2pool_f64;
    else
        j.plane_fn = f32 ? lppool_f32 : lppool_f64;
    return run_planes(k, &j, (size_t)(g.batch * g.c_in), j.out_plane * conv_kernel_size(&g));
}

st_status conv_avgpool_run(eng_kctx *k)
{
    if (k->in[0]->dtype == ST_DT_FLOAT16)
        return conv_run_via_f32(k, conv_avgpool_run);
    return sumpool_run(k, false);
}

st_status conv_lppool_run(eng_kctx *k)
{
    if (k->in[0]->dtype == ST_DT_FLOAT16)
        return conv_run_via_f32(k, conv_lppool_run);
    return sumpool_run(k, true);
}

/* --- global pools ------------------------------------------------------------ */

st_status conv_global_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "input X is required");
    if (x->rank < 2)
        return eng_fail(k, ST_ESHAPE, "X has rank %u (expected N x C x spatial dims)", x->rank);
    if (x->dtype != ST_DT_FLOAT32 && x->dtype != ST_DT_FLOAT64 && x->dtype != ST_DT_FLOAT16)
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported (float32, float64, float16)",
                        st_dtype_name(x->dtype));
    int64_t shape[ENG_MAX_RANK];
    for (uint32_t i = 0; i < x->rank; i++)
        shape[i] = i < 2 ? x->shape[i] : 1;
    eng_set_shape(k->out[0], x->dtype, shape, x->rank);
    return ST_OK;
}

typedef struct global_job {
    const void *x;
    void *y;
    size_t plane;               /* elements reduced per output */
    int kind;                   /* 0 average, 1 max, 2 Lp */
    double p;
} global_job;

/* Sums with eight independent accumulators so the adds pipeline (and the
 * compiler may vectorise); the order differs from a plain loop only in
 * rounding. */
#define GLOBAL_TASK(NAME, T)                                                                                 \
    static void NAME(void *ctx, size_t begin, size_t end)                                                    \
    {                                                                                                        \
        const global_job *j = ctx;                                                                           \
        for (size_t pl = begin; pl < end; pl++) {                                                            \
            const T *x = (const T *)j->x + pl * j->plane;                                                    \
            size_t n = j->plane, i = 0;                                                                      \
            T out;                                                                                           \
            if (j->kind == 1) {                                                                              \
                T m = -INFINITY;                                                                             \
                for (; i < n; i++)                                                                           \
                    m = x[i] > m ? x[i] : m;                                                                 \
                out = m;                                                                                     \
            } else {                                                                                         \
                T acc[8] = { 0 };                                                                            \
                bool sq = j->kind == 2 && j->p == 2.0, ab = j->kind == 2 && j->p == 1.0;                     \
                if (j->kind == 0) {                                                                          \
                    for (; i + 8 <= n; i += 8)                                                               \
                        for (int u = 0; u < 8; u++)                                                          \
                            acc[u] += x[i + (size_t)u];                                                      \
                    for (; i < n; i++)                                                                       \
                        acc[0] += x[i];                                                                      \
                } else if (sq) {                                                                             \
                    for (; i + 8 <= n; i += 8)                                                               \
                        for (int u = 0; u < 8; u++)                                                          \
                            acc[u] += x[i + (size_t)u] * x[i + (size_t)u];                                   \
                    for (; i < n; i++)                                                                       \
                        acc[0] += x[i] * x[i];                                                               \
                } else {                                                                                     \
                    for (; i < n; i++)                                                                       \
                        acc[0] += ab ? (T)fabs(x[i]) : (T)pow(fabs(x[i]), j->p);                             \
                }                                                                                            \
                T sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));   \
                if (j->kind == 0)                                                                            \
                    out = n ? sum / (T)n : 0;                                                                \
                else                                                                                         \
                    out = sq ? (T)sqrt(sum) : ab ? sum : (T)pow(sum, 1.0 / j->p);                            \
            }                                                                                                \
            ((T *)j->y)[pl] = out;                                                                           \
        }                                                                                                    \
    }

GLOBAL_TASK(global_f32, float)
GLOBAL_TASK(global_f64, double)

static st_status global_run(eng_kctx *k, int kind)
{
    const eng_tensor *x = k->in[0];
    const conv_attrs *a = k->node->state;
    size_t planes = (size_t)k->out[0]->count;
    global_job j = { .x = x->data, .y = k->out[0]->data, .plane = planes ? x->count / planes : 0, .kind = kind,
                     .p = a->p };
    size_t grain = j.plane ? 65536 / j.plane : 1;
    st_pool_parallel_for(k->pool, planes, grain ? grain : 1, x->dtype == ST_DT_FLOAT32 ? global_f32 : global_f64,
                         &j);
    return ST_OK;
}

st_status conv_global_avg_run(eng_kctx *k)
{
    if (k->in[0]->dtype == ST_DT_FLOAT16)
        return conv_run_via_f32(k, conv_global_avg_run);
    return global_run(k, 0);
}

st_status conv_global_max_run(eng_kctx *k)
{
    if (k->in[0]->dtype == ST_DT_FLOAT16)
        return conv_run_via_f32(k, conv_global_max_run);
    return global_run(k, 1);
}

st_status conv_global_lp_run(eng_kctx *k)
{
    if (k->in[0]->dtype == ST_DT_FLOAT16)
        return conv_run_via_f32(k, conv_global_lp_run);
    return global_run(k, 2);
}

/* --- MaxUnpool ------------------------------------------------------------------ */

/* The unpooled shape: each spatial dim (in - 1) * stride + kernel - pads
 * (the shape MaxPool's input had, which its indices address); with the
 * output_shape input, also the requested shape, which must not be smaller
 * (the extra trailing positions stay zero, as in ONNX Runtime). */
static st_status maxunpool_shapes(eng_kctx *k, int64_t *inferred, int64_t *shape)
{
    const eng_tensor *x = k->in[0], *ind = k->n_in > 1 ? k->in[1] : NULL;
    const eng_tensor *os = k->n_in > 2 ? k->in[2] : NULL;
    const conv_attrs *a = k->node->state;
    if (!x || !ind)
        return eng_fail(k, ST_EINVAL, "inputs X and I are required");
    if (ind->dtype != ST_DT_INT64 || ind->rank != x->rank || memcmp(ind->shape, x->shape, x->rank * sizeof(int64_t)))
        return eng_fail(k, ST_ESHAPE, "I must be int64 with the shape of X");
    if (x->rank < 3)
        return eng_fail(k, ST_ESHAPE, "X has rank %u (expected N x C x spatial dims)", x->rank);
    int nsp = (int)x->rank - 2;
    if (a->n_kernel != (size_t)nsp || (a->n_strides && a->n_strides != (size_t)nsp) ||
        (a->n_pads && a->n_pads != 2 * (size_t)nsp))
        return eng_fail(k, ST_EINVAL, "kernel_shape, strides and pads must have %d, %d and %d values", nsp, nsp,
                        2 * nsp);
    inferred[0] = x->shape[0];
    inferred[1] = x->shape[1];
    for (int i = 0; i < nsp; i++) {
        int64_t in = x->shape[2 + i], s = a->n_strides ? a->strides[i] : 1;
        int64_t pads = a->n_pads ? a->pads[i] + a->pads[nsp + i] : 0;
        if (in > INT32_MAX)
            return eng_fail(k, ST_EUNSUPPORTED, "X spatial dim %d is %lld (at most %d)", i, (long long)in, INT32_MAX);
        inferred[2 + i] = in == 0 ? 0 : (in - 1) * s + a->kernel[i] - pads;
        if (inferred[2 + i] < 0)
            return eng_fail(k, ST_ESHAPE, "spatial axis %d: pads exceed the output size", i);
    }
    memcpy(shape, inferred, x->rank * sizeof *shape);
    if (!os)
        return ST_OK;
    if (os->dtype != ST_DT_INT64 || os->rank != 1 || os->count != x->rank)
        return eng_fail(k, ST_ESHAPE, "output_shape must be int64 with %u values", x->rank);
    for (uint32_t i = 0; i < x->rank; i++) {
        shape[i] = ((const int64_t *)os->data)[i];
        if (i < 2 ? shape[i] != inferred[i] : shape[i] < inferred[i])
            return eng_fail(k, ST_ESHAPE, "output_shape[%u] is %lld (expected %s %lld)", i, (long long)shape[i],
                            i < 2 ? "X's" : "at least", (long long)inferred[i]);
    }
    return ST_OK;
}

st_status conv_maxunpool_infer(eng_kctx *k)
{
    int64_t inferred[ENG_MAX_RANK], shape[ENG_MAX_RANK];
    st_status s = maxunpool_shapes(k, inferred, shape);
    if (s != ST_OK)
        return s;
    if (st_dtype_size(k->in[0]->dtype) == 0)
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported", st_dtype_name(k->in[0]->dtype));
    eng_set_shape(k->out[0], k->in[0]->dtype, shape, k->in[0]->rank);
    return ST_OK;
}

/* Y is zero but at Y.flat[I[i]] = X.flat[i], the index taken in the
 * unpooled shape (as MaxPool produced it). */
st_status conv_maxunpool_run(eng_kctx *k)
{
    int64_t inferred[ENG_MAX_RANK], shape[ENG_MAX_RANK];
    st_status s = maxunpool_shapes(k, inferred, shape);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    const int64_t *ind = k->in[1]->data;
    eng_tensor *y = k->out[0];
    size_t es = st_dtype_size(x->dtype), limit;
    uint32_t rank = x->rank;
    if (!eng_shape_count(inferred, rank, &limit))
        return eng_fail(k, ST_EOVERFLOW, "the unpooled shape overflows");
    memset(y->data, 0, y->count * es);
    bool same = memcmp(inferred, shape, rank * sizeof *shape) == 0;
    for (size_t i = 0; i < x->count; i++) {
        if (ind[i] < 0 || (uint64_t)ind[i] >= limit)
            return eng_fail(k, ST_EINVAL, "index I[%zu] = %lld is outside the unpooled tensor (%zu elements)", i,
                            (long long)ind[i], limit);
        size_t at = (size_t)ind[i];
        if (!same) { /* re-address the coordinates in the larger output */
            size_t rest = at, stride = 1;
            at = 0;
            for (int d = (int)rank - 1; d >= 0; d--) {
                at += rest % (size_t)inferred[d] * stride;
                rest /= (size_t)inferred[d];
                stride *= (size_t)shape[d];
            }
        }
        memcpy((char *)y->data + at * es, (const char *)x->data + i * es, es);
    }
    return ST_OK;
}

/* --- RoiAlign -------------------------------------------------------------------- */

static st_status roi_common_infer(eng_kctx *k, size_t roi_cols, bool need_batch)
{
    const eng_tensor *x = k->in[0], *rois = k->n_in > 1 ? k->in[1] : NULL;
    const eng_tensor *bi = k->n_in > 2 ? k->in[2] : NULL;
    const conv_attrs *a = k->node->state;
    if (!x || !rois || (need_batch && !bi))
        return eng_fail(k, ST_EINVAL, "inputs X, rois%s are required", need_batch ? " and batch_indices" : "");
    if (x->rank != 4)
        return eng_fail(k, ST_ESHAPE, "X has rank %u (expected N x C x H x W)", x->rank);
    if (x->dtype != ST_DT_FLOAT32 && x->dtype != ST_DT_FLOAT64 && x->dtype != ST_DT_FLOAT16)
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported (float32, float64, float16)",
                        st_dtype_name(x->dtype));
    if (rois->dtype != x->dtype || rois->rank != 2 || rois->shape[1] != (int64_t)roi_cols)
        return eng_fail(k, ST_ESHAPE, "rois must be %s of shape [num_rois, %zu]", st_dtype_name(x->dtype), roi_cols);
    if (need_batch && (bi->rank != 1 || bi->shape[0] != rois->shape[0] ||
                       (bi->dtype != ST_DT_INT64 && bi->dtype != ST_DT_INT32)))
        return eng_fail(k, ST_ESHAPE, "batch_indices must be int64 with one value per roi (%lld)",
                        (long long)rois->shape[0]);
    int64_t shape[4] = { rois->shape[0], x->shape[1], a->roi_out_h, a->roi_out_w };
    eng_set_shape(k->out[0], x->dtype, shape, 4);
    return ST_OK;
}

st_status conv_roialign_infer(eng_kctx *k)
{
    return roi_common_infer(k, 4, true);
}

/* Bilinear taps of one sample point, as ONNX Runtime computes them. */
typedef struct roi_tap {
    size_t pos[4];
    double w[4];
} roi_tap;

static roi_tap bilinear(double y, double x, int64_t h, int64_t w)
{
    roi_tap t = { { 0, 0, 0, 0 }, { 0, 0, 0, 0 } };
    if (!(y >= -1.0 && y <= (double)h && x >= -1.0 && x <= (double)w)) /* also NaN */
        return t;
    if (y <= 0)
        y = 0;
    if (x <= 0)
        x = 0;
    int64_t yl = (int64_t)y, xl = (int64_t)x, yh, xh;
    if (yl >= h - 1) {
        yh = yl = h - 1;
        y = (double)yl;
    } else {
        yh = yl + 1;
    }
    if (xl >= w - 1) {
        xh = xl = w - 1;
        x = (double)xl;
    } else {
        xh = xl + 1;
    }
    double ly = y - (double)yl, lx = x - (double)xl, hy = 1.0 - ly, hx = 1.0 - lx;
    t.pos[0] = (size_t)(yl * w + xl);
    t.pos[1] = (size_t)(yl * w + xh);
    t.pos[2] = (size_t)(yh * w + xl);
    t.pos[3] = (size_t)(yh * w + xh);
    t.w[0] = hy * hx;
    t.w[1] = hy * lx;
    t.w[2] = ly * hx;
    t.w[3] = ly * lx;
    return t;
}

/* Samples per bin along one axis: the attribute, else ceil(extent / bins),
 * bounded so that absurd rois cannot make the loop run for ever. */
static int64_t roi_grid(int64_t sampling_ratio, double extent, int64_t bins, int64_t dim)
{
    if (sampling_ratio > 0)
        return sampling_ratio;
    double g = ceil(extent / (double)bins);
    double cap = 2.0 * (double)dim + 2.0;
    if (!(g >= 1.0))
        return 1;
    return g > cap ? (int64_t)cap : (int64_t)g;
}

#define ROIALIGN(NAME, T)                                                                                    \
    static void NAME(const conv_attrs *a, const eng_tensor *xt, const T *rois, const eng_tensor *bt, T *y)   \
    {                                                                                                        \
        const T *x = xt->data;                                                                               \
        int64_t c_n = xt->shape[1], h = xt->shape[2], w = xt->shape[3];                                     \
        int64_t oh = a->roi_out_h, ow = a->roi_out_w;                                                        \
        double off = a->roi_half_pixel ? 0.5 : 0.0, scale = a->spatial_scale;                                \
        for (int64_t r = 0; r < bt->shape[0]; r++) {                                                         \
            const T *roi = rois + r * 4;                                                                     \
            int64_t b = eng_int_at(bt, (size_t)r);                                                           \
            double x0 = (double)roi[0] * scale - off, y0 = (double)roi[1] * scale - off;                     \
            double rw = (double)roi[2] * scale - off - x0, rh = (double)roi[3] * scale - off - y0;           \
            if (!a->roi_half_pixel) {                                                                        \
                rw = rw > 1.0 ? rw : 1.0;                                                                    \
                rh = rh > 1.0 ? rh : 1.0;                                                                    \
            }                                                                                                \
            double bin_h = rh / (double)oh, bin_w = rw / (double)ow;                                         \
            int64_t gh = roi_grid(a->sampling_ratio, rh, oh, h), gw = roi_grid(a->sampling_ratio, rw, ow, w); \
            double count = (double)(gh * gw);                                                                \
            for (int64_t c = 0; c < c_n; c++) {                                                              \
                const T *plane = x + (size_t)((b * c_n + c) * h * w);                                       \
                for (int64_t ph = 0; ph < oh; ph++)                                                          \
                    for (int64_t pw = 0; pw < ow; pw++) {                                                    \
                        double acc = 0.0;                                                                    \
                        bool have = false;                                                                   \
                        for (int64_t iy = 0; iy < gh; iy++) {                                                \
                            double yy = y0 + (double)ph * bin_h + ((double)iy + 0.5) * bin_h / (double)gh;   \
                            for (int64_t ix = 0; ix < gw; ix++) {                                            \
                                double xx = x0 + (double)pw * bin_w + ((double)ix + 0.5) * bin_w / (double)gw; \
                                roi_tap t = bilinear(yy, xx, h, w);                                          \
                                double v[4];                                                                 \
                                for (int q = 0; q < 4; q++)                                                  \
                                    v[q] = t.w[q] * (double)plane[t.pos[q]];                                 \
                                if (!a->roi_max) {                                                           \
                                    acc += v[0] + v[1] + v[2] + v[3];                                        \
                                } else {                                                                     \
                                    double m = fmax(fmax(v[0], v[1]), fmax(v[2], v[3]));                     \
                                    acc = have ? fmax(acc, m) : m;                                           \
                                    have = true;                                                             \
                                }                                                                            \
                            }                                                                                \
                        }                                                                                    \
                        *y++ = (T)(a->roi_max ? acc : acc / count);                                          \
                    }                                                                                        \
            }                                                                                                \
        }                                                                                                    \
    }

ROIALIGN(roialign_f32, float)
ROIALIGN(roialign_f64, double)

st_status conv_roialign_run(eng_kctx *k)
{
    if (k->in[0]->dtype == ST_DT_FLOAT16)
        return conv_run_via_f32(k, conv_roialign_run);
    const eng_tensor *x = k->in[0], *bt = k->in[2];
    if (x->shape[2] == 0 || x->shape[3] == 0) {
        memset(k->out[0]->data, 0, k->out[0]->count * st_dtype_size(x->dtype));
        return ST_OK;
    }
    for (size_t r = 0; r < bt->count; r++) {
        int64_t b = eng_int_at(bt, r);
        if (b < 0 || b >= x->shape[0])
            return eng_fail(k, ST_EINVAL, "batch_indices[%zu] is %lld (X has %lld images)", r, (long long)b,
                            (long long)x->shape[0]);
    }
    if (x->dtype == ST_DT_FLOAT32)
        roialign_f32(k->node->state, x, k->in[1]->data, bt, k->out[0]->data);
    else
        roialign_f64(k->node->state, x, k->in[1]->data, bt, k->out[0]->data);
    return ST_OK;
}

/* --- MaxRoiPool (Caffe's ROI pooling) ----------------------------------------------- */

st_status conv_maxroipool_infer(eng_kctx *k)
{
    return roi_common_infer(k, 5, false);
}

/* A roi coordinate scaled and rounded, clamped first so that NaN or huge
 * values cannot overflow the conversion. */
static int64_t roi_coord(double v, double scale)
{
    v = round(v * scale);
    if (!(v > -1e9))
        return -1000000000;
    return v > 1e9 ? 1000000000 : (int64_t)v;
}

#define MAXROIPOOL(NAME, T)                                                                                  \
    static st_status NAME(eng_kctx *k, const conv_attrs *a, const eng_tensor *xt, const T *rois, T *y,       \
                          int64_t n_rois)                                                                    \
    {                                                                                                        \
        const T *x = xt->data;                                                                               \
        int64_t n_img = xt->shape[0], c_n = xt->shape[1], h = xt->shape[2], w = xt->shape[3];               \
        int64_t oh = a->roi_out_h, ow = a->roi_out_w;                                                        \
        for (int64_t r = 0; r < n_rois; r++) {                                                               \
            const T *roi = rois + r * 5;                                                                     \
            double bd = (double)roi[0];                                                                      \
            if (!(bd >= 0 && bd < (double)n_img))                                                            \
                return eng_fail(k, ST_EINVAL, "roi %lld names image %g (X has %lld)", (long long)r, bd,      \
                                (long long)n_img);                                                           \
            int64_t b = (int64_t)bd;                                                                         \
            int64_t x0 = roi_coord((double)roi[1], a->spatial_scale);                                        \
            int64_t y0 = roi_coord((double)roi[2], a->spatial_scale);                                        \
            int64_t x1 = roi_coord((double)roi[3], a->spatial_scale);                                        \
            int64_t y1 = roi_coord((double)roi[4], a->spatial_scale);                                        \
            int64_t rh = y1 - y0 + 1 > 1 ? y1 - y0 + 1 : 1, rw = x1 - x0 + 1 > 1 ? x1 - x0 + 1 : 1;          \
            double bin_h = (double)rh / (double)oh, bin_w = (double)rw / (double)ow;                         \
            for (int64_t c = 0; c < c_n; c++) {                                                              \
                const T *plane = x + (size_t)((b * c_n + c) * h * w);                                       \
                for (int64_t ph = 0; ph < oh; ph++) {                                                        \
                    int64_t hs = (int64_t)floor((double)ph * bin_h) + y0;                                    \
                    int64_t he = (int64_t)ceil((double)(ph + 1) * bin_h) + y0;                               \
                    hs = hs < 0 ? 0 : hs > h ? h : hs;                                                       \
                    he = he < 0 ? 0 : he > h ? h : he;                                                       \
                    for (int64_t pw = 0; pw < ow; pw++) {                                                    \
                        int64_t ws = (int64_t)floor((double)pw * bin_w) + x0;                                \
                        int64_t we = (int64_t)ceil((double)(pw + 1) * bin_w) + x0;                           \
                        ws = ws < 0 ? 0 : ws > w ? w : ws;                                                   \
                        we = we < 0 ? 0 : we > w ? w : we;                                                   \
                        T m = 0;                                                                             \
                        if (he > hs && we > ws) {                                                            \
                            m = -INFINITY;                                                                   \
                            for (int64_t yy = hs; yy < he; yy++)                                             \
                                for (int64_t xx = ws; xx < we; xx++)                                         \
                                    m = plane[yy * w + xx] > m ? plane[yy * w + xx] : m;                     \
                        }                                                                                    \
                        *y++ = m;                                                                            \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
        return ST_OK;                                                                                        \
    }

MAXROIPOOL(maxroipool_f32, float)
MAXROIPOOL(maxroipool_f64, double)

st_status conv_maxroipool_run(eng_kctx *k)
{
    if (k->in[0]->dtype == ST_DT_FLOAT16)
        return conv_run_via_f32(k, conv_maxroipool_run);
    const eng_tensor *x = k->in[0], *rois = k->in[1];
    if (x->dtype == ST_DT_FLOAT32)
        return maxroipool_f32(k, k->node->state, x, rois->data, k->out[0]->data, rois->shape[0]);
    return maxroipool_f64(k, k->node->state, x, rois->data, k->out[0]->data, rois->shape[0]);
}
