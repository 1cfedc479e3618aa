/* norm.c - normalisations and their neighbours: Softmax, LogSoftmax,
 * Hardmax, BatchNormalization, InstanceNormalization, LayerNormalization,
 * GroupNormalization, LRN, MeanVarianceNormalization, PRelu and Clip.  The
 * op table at the bottom also lists the resampling ops of resize.c.
 *
 * float32 is the hot path (transformer Softmax/LayerNorm, CNN BatchNorm and
 * Clip): contiguous rows go through vector kernels compiled twice (generic
 * and AVX2+FMA, chosen by st_cpu_features()) and are split over k->pool.
 * float64 runs plain scalar loops; float16 is computed in float32. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "engine/ops/norm_int.h"

/* --- shared helpers --------------------------------------------------------- */

/* Product of shape[begin..end).  Only for tensors known to be non-empty,
 * whose every sub-product is then bounded by the element count. */
static size_t dims_prod(const int64_t *shape, int begin, int end)
{
    size_t p = 1;
    for (int i = begin; i < end; i++)
        p *= (size_t)shape[i];
    return p;
}

/* n elements of `size` bytes from the run's scratch arena, or NULL. */
static void *scratch_array(eng_kctx *k, size_t n, size_t size)
{
    size_t bytes;
    if (st_mul_overflow(n, size, &bytes))
        return NULL;
    return st_arena_alloc(k->scratch, bytes ? bytes : 1, 64);
}

/* Reads n elements of a numeric tensor as double (for small parameter
 * tensors; the switch is outside the loop). */
static void load_f64(const eng_tensor *t, double *dst, size_t n)
{
    switch (t->dtype) {
    case ST_DT_FLOAT32:
        for (size_t i = 0; i < n; i++)
            dst[i] = ((const float *)t->data)[i];
        break;
    case ST_DT_FLOAT64:
        memcpy(dst, t->data, n * sizeof *dst);
        break;
    case ST_DT_FLOAT16:
        for (size_t i = 0; i < n; i++)
            dst[i] = st_half_to_float(((const uint16_t *)t->data)[i]);
        break;
    default:
        for (size_t i = 0; i < n; i++)
            dst[i] = eng_num_at(t, i);
        break;
    }
}

/* Writes n doubles into a float tensor of any float type. */
static void store_f64(eng_tensor *t, const double *src, size_t n)
{
    switch (t->dtype) {
    case ST_DT_FLOAT32:
        for (size_t i = 0; i < n; i++)
            ((float *)t->data)[i] = (float)src[i];
        break;
    case ST_DT_FLOAT64:
        memcpy(t->data, src, n * sizeof *src);
        break;
    case ST_DT_FLOAT16:
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)t->data)[i] = st_float_to_half((float)src[i]);
        break;
    default:
        break;
    }
}

/* Per-channel parameter input `idx` (name `what`) as `n` doubles. */
static st_status param_f64(eng_kctx *k, uint32_t idx, const char *what, size_t n, double **out)
{
    const eng_tensor *t = idx < k->n_in ? k->in[idx] : NULL;
    if (!t)
        return eng_fail(k, ST_EINVAL, "input %u (%s) is required", idx, what);
    if (t->count != n)
        return eng_fail(k, ST_ESHAPE, "%s has %zu elements, expected %zu", what, t->count, n);
    double *d = scratch_array(k, n, sizeof *d);
    if (!d)
        return eng_fail(k, ST_ENOMEM, "out of memory for %s", what);
    load_f64(t, d, n);
    *out = d;
    return ST_OK;
}

#define NORM_MAX_IO 8

st_status norm_run_f16_as_f32(eng_kctx *k, st_status (*run)(eng_kctx *k))
{
    if (k->n_in > NORM_MAX_IO || k->n_out > NORM_MAX_IO)
        return eng_fail(k, ST_EUNSUPPORTED, "float16 with more than %d inputs or outputs", NORM_MAX_IO);
    const eng_tensor *in[NORM_MAX_IO];
    eng_tensor *out[NORM_MAX_IO];
    eng_tensor tin[NORM_MAX_IO], tout[NORM_MAX_IO];
    for (uint32_t i = 0; i < k->n_in; i++) {
        in[i] = k->in[i];
        if (!in[i] || in[i]->dtype != ST_DT_FLOAT16)
            continue;
        tin[i] = *in[i];
        tin[i].dtype = ST_DT_FLOAT32;
        float *d = scratch_array(k, in[i]->count, sizeof *d);
        if (!d)
            return eng_fail(k, ST_ENOMEM, "out of memory converting float16 input %u", i);
        const uint16_t *h = in[i]->data;
        for (size_t j = 0; j < in[i]->count; j++)
            d[j] = st_half_to_float(h[j]);
        tin[i].data = d;
        in[i] = &tin[i];
    }
    for (uint32_t o = 0; o < k->n_out; o++) {
        out[o] = k->out[o];
        if (!out[o] || out[o]->dtype != ST_DT_FLOAT16)
            continue;
        tout[o] = *out[o];
        tout[o].dtype = ST_DT_FLOAT32;
        tout[o].data = scratch_array(k, out[o]->count, sizeof(float));
        if (!tout[o].data)
            return eng_fail(k, ST_ENOMEM, "out of memory for float16 output %u", o);
        out[o] = &tout[o];
    }
    eng_kctx k32 = *k;
    k32.in = in;
    k32.out = out;
    st_status s = run(&k32);
    if (s != ST_OK)
        return s;
    for (uint32_t o = 0; o < k->n_out; o++) {
        if (out[o] != &tout[o])
            continue;
        const float *f = tout[o].data;
        uint16_t *h = k->out[o]->data;
        for (size_t j = 0; j < k->out[o]->count; j++)
            h[j] = st_float_to_half(f[j]);
    }
    return ST_OK;
}

/* Zeroed op state of `size` bytes in the graph arena, set as n->state. */
static void *alloc_state(eng_node *n, st_arena *arena, size_t size)
{
    n->state = st_arena_calloc(arena, 1, size, 16);
    return n->state;
}

static st_status need_inputs(const eng_kctx *k, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        if (i >= k->n_in || !k->in[i])
            return eng_fail(k, ST_EINVAL, "input %u is required (the operator takes %u)", i, count);
    return ST_OK;
}

static st_status need_float(const eng_kctx *k, const eng_tensor *t, const char *what)
{
    if (!norm_is_float(t->dtype))
        return eng_fail(k, ST_ETYPE, "%s must be float16, float32 or float64, got %s", what, st_dtype_name(t->dtype));
    return ST_OK;
}

/* --- threads ------------------------------------------------------------------ */

typedef struct par_job {
    norm_rows_fn fn;
    void *ctx;
    size_t rows;
} par_job;

static void par_task(void *arg, int ith, int nth)
{
    const par_job *job = arg;
    size_t i = (size_t)ith, chunk = job->rows / (size_t)nth, rem = job->rows % (size_t)nth;
    size_t begin = i * chunk + (i < rem ? i : rem);
    size_t end = begin + chunk + (i < rem ? 1 : 0);
    if (begin < end)
        job->fn(job->ctx, begin, end, ith);
}

int norm_par_tasks(const eng_kctx *k, size_t rows, size_t row_cost)
{
    size_t threads = (size_t)st_pool_size(k->pool);
    if (threads <= 1 || rows <= 1)
        return 1;
    size_t work;
    if (st_mul_overflow(rows, row_cost ? row_cost : 1, &work))
        work = SIZE_MAX;
    size_t n = work / 32768;
    if (n > threads)
        n = threads;
    if (n > rows)
        n = rows;
    return n < 1 ? 1 : (int)n;
}

void norm_par_run(eng_kctx *k, int tasks, size_t rows, norm_rows_fn fn, void *ctx)
{
    if (tasks <= 1) {
        if (rows)
            fn(ctx, 0, rows, 0);
        return;
    }
    par_job job = { fn, ctx, rows };
    st_pool_run(k->pool, par_task, &job, tasks);
}

static bool use_avx2(void)
{
#if NORM_HAS_AVX2_BUILD
    const st_cpu_feature_set *f = st_cpu_features();
    return f->has_avx2 && f->has_fma;
#else
    return false;
#endif
}

/* --- float32 vector kernels --------------------------------------------------
 *
 * The jobs the row functions take; the functions themselves come from
 * norm_simd.h, compiled once per vector width. */

enum { SM_SOFTMAX, SM_LOGSOFTMAX, SM_HARDMAX };

/* Softmax-family rows: n elements `inner` apart (1 = contiguous). */
typedef struct sm_job {
    int kind;
    const void *x;
    void *y;
    size_t n, inner;
    void *bufs; /* per task: one row, for strided rows */
} sm_job;

/* LayerNormalization rows of n elements. */
typedef struct ln_job {
    const void *x;
    void *y;
    size_t n;
    const void *scale, *bias;
    float epsilon;
    void *mean, *inv; /* per row, float or double like x; may be NULL */
} ln_job;

/* y = (x - mean) * a + b over planes of `plane` elements, with (mean, a,
 * b) per plane index modulo `period`. */
typedef struct chan_job {
    const void *x;
    void *y;
    size_t plane, period;
    const void *mean, *a, *b; /* per channel, float or double like x */
} chan_job;

/* Mean and variance of `rows` contiguous groups of n elements. */
typedef struct stats_job {
    const void *x;
    size_t n;
    double *mean, *var;
} stats_job;

/* X as rows of `inner` elements; along a row the slope is constant
 * (is_vec false) or a contiguous vector.  Rows advance an odometer over
 * the leading `split` dims for the slope's offset. */
typedef struct bc_rows {
    size_t inner;
    bool is_vec;
    int split;
    size_t sstride[ENG_MAX_RANK];
} bc_rows;

#define NK_LANES 4
#define NK_NAME(x) x##_generic
#define NK_TARGET
#include "engine/ops/norm_simd.h"
#undef NK_LANES
#undef NK_NAME
#undef NK_TARGET

#if NORM_HAS_AVX2_BUILD
#define NK_LANES 8
#define NK_NAME(x) x##_avx2
#define NK_TARGET NORM_TARGET_AVX2
#include "engine/ops/norm_simd.h"
#undef NK_LANES
#undef NK_NAME
#undef NK_TARGET
#define NORM_PICK(fn) (use_avx2() ? fn##_avx2 : fn##_generic)
#else
#define NORM_PICK(fn) fn##_generic
#endif

/* --- float64 row kernels (scalar) ------------------------------------------- */

static void softmax_row_f64(const double *x, double *y, size_t n, int kind)
{
    double m = -INFINITY;
    for (size_t i = 0; i < n; i++)
        m = x[i] > m ? x[i] : m;
    if (kind == SM_HARDMAX) {
        size_t best = 0;
        for (size_t i = 0; i < n; i++)
            if (x[i] == m || isnan(x[i])) {
                best = i;
                break;
            }
        memset(y, 0, n * sizeof *y);
        y[best] = 1.0;
        return;
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double e = exp(x[i] - m);
        if (kind == SM_SOFTMAX)
            y[i] = e;
        sum += e;
    }
    if (kind == SM_SOFTMAX) {
        for (size_t i = 0; i < n; i++)
            y[i] /= sum;
        return;
    }
    double log_sum = log(sum);
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] - m) - log_sum;
}

static void row_stats_f64(const double *x, size_t n, double *mean_out, double *var_out)
{
    double sum = 0, sq = 0, shift = x[0];
    for (size_t i = 0; i < n; i++)
        sum += x[i] - shift;
    double mean = shift + sum / (double)n;
    for (size_t i = 0; i < n; i++)
        sq += (x[i] - mean) * (x[i] - mean);
    *mean_out = mean;
    *var_out = sq / (double)n;
}

static void norm_apply_f64(const double *x, double *y, size_t n, double mean, double a, double b)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] - mean) * a + b;
}

/* --- Softmax / LogSoftmax / Hardmax ----------------------------------------- */

typedef struct sm_state {
    int kind;
    int64_t axis;
} sm_state;

static st_status sm_check(eng_node *n, st_arena *arena, st_error *err, int kind)
{
    sm_state *st = alloc_state(n, arena, sizeof *st);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->kind = kind;
    /* Before opset 13 the input is coerced to 2-D at `axis` (default 1);
     * from 13 the op runs along the single axis `axis` (default -1). */
    st->axis = eng_attr_int(n, "axis", n->opset < 13 ? 1 : -1);
    return ST_OK;
}

static st_status check_softmax(eng_node *n, st_arena *a, st_error *e) { return sm_check(n, a, e, SM_SOFTMAX); }
static st_status check_logsoftmax(eng_node *n, st_arena *a, st_error *e) { return sm_check(n, a, e, SM_LOGSOFTMAX); }
static st_status check_hardmax(eng_node *n, st_arena *a, st_error *e) { return sm_check(n, a, e, SM_HARDMAX); }

/* The axis, normalised: before opset 13 the split point of the 2-D view
 * (in [0, rank]), from 13 the axis the op runs along (in [0, rank)). */
static st_status sm_axis(const eng_kctx *k, const eng_tensor *x, int *axis)
{
    const sm_state *st = k->node->state;
    int r = (int)x->rank;
    if (k->node->opset < 13) {
        /* axis == rank is accepted: the 2-D view is then [count, 1]. */
        if (st->axis < -r || st->axis > r)
            return eng_fail(k, ST_EINVAL, "axis %lld is out of range for rank %d (expected %d..%d)",
                            (long long)st->axis, r, -r, r);
        *axis = (int)(st->axis < 0 ? st->axis + r : st->axis);
        return ST_OK;
    }
    if (r == 0)
        return eng_fail(k, ST_ESHAPE, "the input is a scalar; it needs rank >= 1 (opset 13+ works along one axis)");
    return eng_axis(k, st->axis, r, axis);
}

static st_status sm_infer(eng_kctx *k)
{
    st_status s = need_inputs(k, 1);
    if (s != ST_OK || (s = need_float(k, k->in[0], "the input")) != ST_OK)
        return s;
    int axis;
    if ((s = sm_axis(k, k->in[0], &axis)) != ST_OK)
        return s;
    return eng_infer_same_as_input(k);
}

static void sm_rows_f64(void *ctx, size_t begin, size_t end, int task)
{
    const sm_job *job = ctx;
    const double *x = job->x;
    double *y = job->y;
    size_t n = job->n, inner = job->inner;
    if (inner == 1) {
        for (size_t r = begin; r < end; r++)
            softmax_row_f64(x + r * n, y + r * n, n, job->kind);
        return;
    }
    double *buf = (double *)job->bufs + (size_t)task * n;
    for (size_t r = begin; r < end; r++) {
        size_t base = (r / inner) * n * inner + r % inner;
        for (size_t i = 0; i < n; i++)
            buf[i] = x[base + i * inner];
        softmax_row_f64(buf, buf, n, job->kind);
        for (size_t i = 0; i < n; i++)
            y[base + i * inner] = buf[i];
    }
}

static st_status sm_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (x->dtype == ST_DT_FLOAT16)
        return norm_run_f16_as_f32(k, sm_run);
    if (x->count == 0)
        return ST_OK;
    const sm_state *st = k->node->state;
    int axis, r = (int)x->rank;
    st_status s = sm_axis(k, x, &axis);
    if (s != ST_OK)
        return s;
    sm_job job = { .kind = st->kind, .x = x->data, .y = k->out[0]->data };
    if (k->node->opset < 13) {
        job.n = dims_prod(x->shape, axis, r);
        job.inner = 1;
    } else {
        job.n = (size_t)x->shape[axis];
        job.inner = dims_prod(x->shape, axis + 1, r);
    }
    size_t rows = x->count / job.n;
    int tasks = norm_par_tasks(k, rows, job.n);
    bool is_f64 = x->dtype == ST_DT_FLOAT64;
    if (job.inner > 1) {
        size_t per_task;
        if (st_mul_overflow((size_t)tasks, job.n, &per_task) ||
            !(job.bufs = scratch_array(k, per_task, is_f64 ? sizeof(double) : sizeof(float))))
            return eng_fail(k, ST_ENOMEM, "out of memory for row buffers");
    }
    norm_par_run(k, tasks, rows, is_f64 ? sm_rows_f64 : NORM_PICK(sm_rows), &job);
    return ST_OK;
}

/* --- LayerNormalization -------------------------------------------------------- */

typedef struct ln_state {
    int64_t axis;
    float epsilon;
    st_dtype stash;
} ln_state;

static st_status ln_check(eng_node *n, st_arena *arena, st_error *err)
{
    ln_state *st = alloc_state(n, arena, sizeof *st);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->axis = eng_attr_int(n, "axis", -1);
    st->epsilon = eng_attr_float(n, "epsilon", 1e-5f);
    int64_t stash = eng_attr_int(n, "stash_type", 1);
    if (stash != ST_DT_FLOAT32 && stash != ST_DT_FLOAT64)
        return st_fail(err, ST_EUNSUPPORTED, "stash_type %lld is not supported (1 = float32 or 11 = float64)",
                       (long long)stash);
    st->stash = (st_dtype)stash;
    if (n->n_inputs < 2)
        return st_fail(err, ST_ECORRUPT, "takes X, Scale and optionally B; has %u inputs", n->n_inputs);
    return ST_OK;
}

/* Checks that parameter p broadcasts onto x's dims [axis, rank) without
 * varying along the dims before axis. */
static st_status check_param_shape(const eng_kctx *k, const eng_tensor *p, const eng_tensor *x, int axis,
                                   const char *what)
{
    if (p->rank > x->rank)
        return eng_fail(k, ST_ESHAPE, "%s has rank %u, above the input's %u", what, p->rank, x->rank);
    uint32_t lead = x->rank - p->rank;
    for (uint32_t i = 0; i < p->rank; i++) {
        uint32_t xi = i + lead;
        int64_t pd = p->shape[i], xd = x->shape[xi];
        if ((int)xi < axis && pd != 1)
            return eng_fail(k, ST_ESHAPE, "%s dimension %u is %lld; it lines up with X's dimension %u, before axis %d, "
                            "so it must be 1", what, i, (long long)pd, xi, axis);
        if (pd != 1 && pd != xd)
            return eng_fail(k, ST_ESHAPE, "%s dimension %u is %lld; expected 1 or X's dimension %u (%lld)", what, i,
                            (long long)pd, xi, (long long)xd);
    }
    return ST_OK;
}

/* Parameter p (checked by check_param_shape) as a contiguous array of the
 * n = prod(x dims [axis, rank)) elements of a row; p's own data when it
 * already has that layout. */
static const void *expand_param(eng_kctx *k, const eng_tensor *p, const eng_tensor *x, int axis, size_t n)
{
    if (p->count == n)
        return p->data;
    size_t es = st_dtype_size(p->dtype);
    char *out = scratch_array(k, n, es);
    if (!out)
        return NULL;
    int r = (int)x->rank, lead = r - (int)p->rank;
    size_t pstride[ENG_MAX_RANK] = { 0 }, acc = 1;
    for (int d = r - 1; d >= axis; d--) {
        int pi = d - lead;
        int64_t pd = pi >= 0 ? p->shape[pi] : 1;
        pstride[d] = pd == 1 ? 0 : acc;
        acc *= (size_t)pd;
    }
    size_t idx[ENG_MAX_RANK] = { 0 }, off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + i * es, (const char *)p->data + off * es, es);
        for (int d = r - 1; d >= axis; d--) {
            off += pstride[d];
            if (++idx[d] < (size_t)x->shape[d])
                break;
            off -= pstride[d] * idx[d];
            idx[d] = 0;
        }
    }
    return out;
}

static st_status ln_axis(const eng_kctx *k, const eng_tensor *x, int *axis)
{
    const ln_state *st = k->node->state;
    if (x->rank == 0)
        return eng_fail(k, ST_ESHAPE, "X is a scalar; it needs rank >= 1");
    return eng_axis(k, st->axis, (int)x->rank, axis);
}

static st_status ln_infer(eng_kctx *k)
{
    const ln_state *st = k->node->state;
    st_status s = need_inputs(k, 2);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0], *scale = k->in[1], *bias = k->n_in > 2 ? k->in[2] : NULL;
    int axis;
    if ((s = need_float(k, x, "X")) != ST_OK || (s = ln_axis(k, x, &axis)) != ST_OK)
        return s;
    if (scale->dtype != x->dtype || (bias && bias->dtype != x->dtype))
        return eng_fail(k, ST_ETYPE, "Scale and B must have X's type %s", st_dtype_name(x->dtype));
    if ((s = check_param_shape(k, scale, x, axis, "Scale")) != ST_OK ||
        (bias && (s = check_param_shape(k, bias, x, axis, "B")) != ST_OK))
        return s;
    eng_set_shape(k->out[0], x->dtype, x->shape, x->rank);
    int64_t stat_shape[ENG_MAX_RANK];
    for (uint32_t i = 0; i < x->rank; i++)
        stat_shape[i] = (int)i < axis ? x->shape[i] : 1;
    for (uint32_t o = 1; o < 3 && o < k->n_out; o++)
        if (k->out[o])
            eng_set_shape(k->out[o], st->stash, stat_shape, x->rank);
    return ST_OK;
}

static void ln_rows_f64(void *ctx, size_t begin, size_t end, int task)
{
    (void)task;
    const ln_job *job = ctx;
    const double *x = job->x, *scale = job->scale, *bias = job->bias;
    double *y = job->y;
    size_t n = job->n;
    for (size_t r = begin; r < end; r++) {
        double mean, var;
        row_stats_f64(x + r * n, n, &mean, &var);
        double inv = 1.0 / sqrt(var + job->epsilon);
        const double *xr = x + r * n;
        double *yr = y + r * n;
        for (size_t i = 0; i < n; i++)
            yr[i] = (xr[i] - mean) * inv * scale[i] + (bias ? bias[i] : 0.0);
        if (job->mean)
            ((double *)job->mean)[r] = mean;
        if (job->inv)
            ((double *)job->inv)[r] = inv;
    }
}

/* Copies per-row statistics computed as float or double into an output of
 * the stash type. */
static void store_stats(eng_tensor *out, const void *src, bool src_f64, size_t n)
{
    if (!out)
        return;
    for (size_t i = 0; i < n; i++) {
        double v = src_f64 ? ((const double *)src)[i] : ((const float *)src)[i];
        if (out->dtype == ST_DT_FLOAT64)
            ((double *)out->data)[i] = v;
        else
            ((float *)out->data)[i] = (float)v;
    }
}

static st_status ln_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *scale = k->in[1], *bias = k->n_in > 2 ? k->in[2] : NULL;
    if (x->dtype == ST_DT_FLOAT16)
        return norm_run_f16_as_f32(k, ln_run);
    const ln_state *st = k->node->state;
    eng_tensor *mean_out = k->n_out > 1 ? k->out[1] : NULL, *inv_out = k->n_out > 2 ? k->out[2] : NULL;
    int axis;
    st_status s = ln_axis(k, x, &axis);
    if (s != ST_OK)
        return s;
    if (x->count == 0) {
        /* Empty rows have no mean: NaN statistics for each of them. */
        eng_tensor *stats[2] = { mean_out, inv_out };
        for (int j = 0; j < 2; j++)
            for (size_t i = 0; stats[j] && i < stats[j]->count; i++) {
                if (stats[j]->dtype == ST_DT_FLOAT64)
                    ((double *)stats[j]->data)[i] = NAN;
                else
                    ((float *)stats[j]->data)[i] = NAN;
            }
        return ST_OK;
    }
    bool is_f64 = x->dtype == ST_DT_FLOAT64;
    size_t n = dims_prod(x->shape, axis, (int)x->rank), rows = x->count / n;
    size_t es = is_f64 ? sizeof(double) : sizeof(float);
    ln_job job = { .x = x->data, .y = k->out[0]->data, .n = n, .epsilon = st->epsilon };
    job.scale = expand_param(k, scale, x, axis, n);
    job.bias = bias ? expand_param(k, bias, x, axis, n) : NULL;
    if (!job.scale || (bias && !job.bias))
        return eng_fail(k, ST_ENOMEM, "out of memory expanding Scale/B");
    if ((mean_out && !(job.mean = scratch_array(k, rows, es))) || (inv_out && !(job.inv = scratch_array(k, rows, es))))
        return eng_fail(k, ST_ENOMEM, "out of memory for the statistics");
    norm_par_run(k, norm_par_tasks(k, rows, n), rows, is_f64 ? ln_rows_f64 : NORM_PICK(ln_rows), &job);
    store_stats(mean_out, job.mean, is_f64, rows);
    store_stats(inv_out, job.inv, is_f64, rows);
    return ST_OK;
}

/* --- per-channel normalisation (Instance, Group, Batch) --------------------------
 *
 * All three end in y = (x - mean) * a + b over planes of `plane` elements,
 * with (mean, a, b) per plane index modulo `period`. */

static void chan_rows_f64(void *ctx, size_t begin, size_t end, int task)
{
    (void)task;
    const chan_job *job = ctx;
    const double *x = job->x, *mean = job->mean, *a = job->a, *b = job->b;
    double *y = job->y;
    size_t n = job->plane;
    for (size_t r = begin; r < end; r++) {
        size_t c = r % job->period;
        norm_apply_f64(x + r * n, y + r * n, n, mean[c], a[c], b[c]);
    }
}

/* Runs a chan_job over `rows` planes; mean/a/b are doubles, narrowed to
 * float for float32 data. */
static st_status chan_apply(eng_kctx *k, const eng_tensor *x, eng_tensor *y, size_t rows, size_t plane,
                            size_t period, const double *mean, const double *a, const double *b)
{
    chan_job job = { .x = x->data, .y = y->data, .plane = plane, .period = period };
    if (x->dtype == ST_DT_FLOAT64) {
        job.mean = mean;
        job.a = a;
        job.b = b;
        norm_par_run(k, norm_par_tasks(k, rows, plane), rows, chan_rows_f64, &job);
        return ST_OK;
    }
    float *f = scratch_array(k, period, 3 * sizeof *f);
    if (!f)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t c = 0; c < period; c++) {
        f[c] = (float)mean[c];
        f[period + c] = (float)a[c];
        f[2 * period + c] = (float)b[c];
    }
    job.mean = f;
    job.a = f + period;
    job.b = f + 2 * period;
    norm_par_run(k, norm_par_tasks(k, rows, plane), rows, NORM_PICK(chan_rows), &job);
    return ST_OK;
}

static void stats_rows_f64(void *ctx, size_t begin, size_t end, int task)
{
    (void)task;
    const stats_job *job = ctx;
    for (size_t r = begin; r < end; r++)
        row_stats_f64((const double *)job->x + r * job->n, job->n, &job->mean[r], &job->var[r]);
}

static st_status group_stats(eng_kctx *k, const eng_tensor *x, size_t rows, size_t n, double **mean, double **var)
{
    stats_job job = { .x = x->data, .n = n };
    job.mean = scratch_array(k, rows, sizeof(double));
    job.var = scratch_array(k, rows, sizeof(double));
    if (!job.mean || !job.var)
        return eng_fail(k, ST_ENOMEM, "out of memory for the statistics");
    norm_par_run(k, norm_par_tasks(k, rows, n), rows,
            x->dtype == ST_DT_FLOAT64 ? stats_rows_f64 : NORM_PICK(stats_rows), &job);
    *mean = job.mean;
    *var = job.var;
    return ST_OK;
}

/* X [N, C, ...] of a float type, with parameters of a float type. */
static st_status nc_infer(eng_kctx *k, uint32_t n_params, bool same_type)
{
    st_status s = need_inputs(k, 1 + n_params);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    if ((s = need_float(k, x, "X")) != ST_OK)
        return s;
    if (x->rank < 2)
        return eng_fail(k, ST_ESHAPE, "X has rank %u; expected [N, C, ...] (rank >= 2)", x->rank);
    for (uint32_t i = 1; i <= n_params; i++) {
        if ((s = need_float(k, k->in[i], "a parameter input")) != ST_OK)
            return s;
        if (same_type && k->in[i]->dtype != x->dtype)
            return eng_fail(k, ST_ETYPE, "input %u has type %s; expected X's type %s", i,
                            st_dtype_name(k->in[i]->dtype), st_dtype_name(x->dtype));
    }
    eng_set_shape(k->out[0], x->dtype, x->shape, x->rank);
    return ST_OK;
}

/* --- InstanceNormalization ------------------------------------------------------ */

typedef struct group_state {
    double epsilon;
    int64_t num_groups; /* GroupNormalization */
} group_state;

static st_status in_check(eng_node *n, st_arena *arena, st_error *err)
{
    group_state *st = alloc_state(n, arena, sizeof *st);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->epsilon = eng_attr_float(n, "epsilon", 1e-5f);
    return ST_OK;
}

static st_status in_infer(eng_kctx *k)
{
    st_status s = nc_infer(k, 2, true);
    if (s != ST_OK)
        return s;
    int64_t c = k->in[0]->shape[1];
    for (uint32_t i = 1; i <= 2; i++)
        if (k->in[i]->count != (size_t)c)
            return eng_fail(k, ST_ESHAPE, "%s has %zu elements; expected C = %lld", i == 1 ? "scale" : "B",
                            k->in[i]->count, (long long)c);
    return ST_OK;
}

static st_status in_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (x->dtype == ST_DT_FLOAT16)
        return norm_run_f16_as_f32(k, in_run);
    if (x->count == 0)
        return ST_OK;
    double eps = ((const group_state *)k->node->state)->epsilon;
    size_t c = (size_t)x->shape[1], plane = dims_prod(x->shape, 2, (int)x->rank), rows = x->count / plane;
    double *scale, *bias, *mean, *var;
    st_status s;
    if ((s = param_f64(k, 1, "scale", c, &scale)) != ST_OK || (s = param_f64(k, 2, "B", c, &bias)) != ST_OK ||
        (s = group_stats(k, x, rows, plane, &mean, &var)) != ST_OK)
        return s;
    /* Every (n, c) plane has its own statistics: period = rows. */
    double *a = scratch_array(k, rows, sizeof *a), *b = scratch_array(k, rows, sizeof *b);
    if (!a || !b)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t r = 0; r < rows; r++) {
        a[r] = scale[r % c] / sqrt(var[r] + eps);
        b[r] = bias[r % c];
    }
    return chan_apply(k, x, k->out[0], rows, plane, rows, mean, a, b);
}

/* --- GroupNormalization (opset 18) ----------------------------------------------- */

static st_status gn_check(eng_node *n, st_arena *arena, st_error *err)
{
    group_state *st = alloc_state(n, arena, sizeof *st);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->epsilon = eng_attr_float(n, "epsilon", 1e-5f);
    if (!eng_attr_has(n, "num_groups"))
        return st_fail(err, ST_ECORRUPT, "the num_groups attribute is required");
    st->num_groups = eng_attr_int(n, "num_groups", 0);
    if (st->num_groups <= 0)
        return st_fail(err, ST_EINVAL, "num_groups must be positive, got %lld", (long long)st->num_groups);
    return ST_OK;
}

static st_status gn_infer(eng_kctx *k)
{
    st_status s = nc_infer(k, 2, true);
    if (s != ST_OK)
        return s;
    int64_t c = k->in[0]->shape[1], g = ((const group_state *)k->node->state)->num_groups;
    if (c % g != 0)
        return eng_fail(k, ST_ESHAPE, "C = %lld channels do not split into num_groups = %lld groups", (long long)c,
                        (long long)g);
    /* Opset 18 gives scale and bias per group, opset 21 per channel. */
    for (uint32_t i = 1; i <= 2; i++)
        if (k->in[i]->count != (size_t)g && k->in[i]->count != (size_t)c)
            return eng_fail(k, ST_ESHAPE, "%s has %zu elements; expected num_groups = %lld or C = %lld",
                            i == 1 ? "scale" : "bias", k->in[i]->count, (long long)g, (long long)c);
    return ST_OK;
}

static st_status gn_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (x->dtype == ST_DT_FLOAT16)
        return norm_run_f16_as_f32(k, gn_run);
    if (x->count == 0)
        return ST_OK;
    const group_state *st = k->node->state;
    double eps = st->epsilon;
    size_t c = (size_t)x->shape[1], g = (size_t)st->num_groups, cg = c / g;
    size_t plane = dims_prod(x->shape, 2, (int)x->rank), planes = x->count / plane, groups = planes / cg;
    double *param[2], *mean, *var;
    st_status s;
    for (uint32_t i = 0; i < 2; i++) {
        const eng_tensor *p = k->in[1 + i];
        if ((s = param_f64(k, 1 + i, i ? "bias" : "scale", p->count, &param[i])) != ST_OK)
            return s;
    }
    if ((s = group_stats(k, x, groups, cg * plane, &mean, &var)) != ST_OK)
        return s;
    double *pm = scratch_array(k, planes, sizeof *pm), *a = scratch_array(k, planes, sizeof *a),
           *b = scratch_array(k, planes, sizeof *b);
    if (!pm || !a || !b)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t r = 0; r < planes; r++) {
        size_t ch = r % c, grp = r / cg;
        size_t pi = k->in[1]->count == c ? ch : ch / cg, bi = k->in[2]->count == c ? ch : ch / cg;
        pm[r] = mean[grp];
        a[r] = param[0][pi] / sqrt(var[grp] + eps);
        b[r] = param[1][bi];
    }
    return chan_apply(k, x, k->out[0], planes, plane, planes, pm, a, b);
}

/* --- BatchNormalization ------------------------------------------------------------ */

typedef struct bn_state {
    float epsilon, momentum;
    bool training;
    bool per_activation; /* spatial=0 (opsets 7-8): statistics per C x D1 x ... */
} bn_state;

static st_status bn_check(eng_node *n, st_arena *arena, st_error *err)
{
    bn_state *st = alloc_state(n, arena, sizeof *st);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->epsilon = eng_attr_float(n, "epsilon", 1e-5f);
    st->momentum = eng_attr_float(n, "momentum", 0.9f);
    st->per_activation = n->opset < 9 && eng_attr_int(n, "spatial", 1) == 0;
    bool extra = false;
    for (uint32_t o = 1; o < n->n_outputs; o++)
        extra |= n->outputs[o] >= 0;
    /* From opset 14 training_mode says it; before, asking for the
     * statistics outputs does (and opset 6's is_test=1 forbids it).  Extra
     * outputs without training (invalid per spec, seen in converted
     * models) just echo the input statistics. */
    if (n->opset >= 14)
        st->training = eng_attr_int(n, "training_mode", 0) != 0;
    else
        st->training = extra && !(n->opset < 7 && eng_attr_int(n, "is_test", 0));
    if (n->n_inputs != 5)
        return st_fail(err, ST_ECORRUPT, "takes 5 inputs (X, scale, B, mean, var), has %u", n->n_inputs);
    if (n->n_outputs > 5)
        return st_fail(err, ST_ECORRUPT, "has %u outputs; at most 5 (Y and four statistics)", n->n_outputs);
    return ST_OK;
}

static st_status bn_infer(eng_kctx *k)
{
    const bn_state *st = k->node->state;
    st_status s = nc_infer(k, 4, k->node->opset < 14);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    size_t c = (size_t)x->shape[1], act;
    if (!eng_shape_count(x->shape + 1, x->rank - 1, &act))
        return eng_fail(k, ST_EOVERFLOW, "X's shape overflows");
    for (uint32_t i = 1; i <= 4; i++) {
        size_t n = k->in[i]->count;
        /* spatial=0 (opsets 7-8) gives a value per activation (C x D1 x ...). */
        bool per_activation = n == act && st->per_activation;
        if (n != c && !per_activation)
            return eng_fail(k, ST_ESHAPE, "input %u has %zu elements; expected C = %zu", i, n, c);
        if (per_activation && st->training)
            return eng_fail(k, ST_EUNSUPPORTED, "training with spatial=0 is not supported");
    }
    /* Statistics outputs are shaped like the mean input ([C] whenever
     * training). */
    const eng_tensor *mean = k->in[3];
    for (uint32_t o = 1; o < k->n_out; o++)
        if (k->out[o])
            eng_set_shape(k->out[o], k->node->opset >= 14 ? mean->dtype : x->dtype, mean->shape, mean->rank);
    return ST_OK;
}

/* Per-channel mean and population variance over N and the spatial dims. */
static st_status bn_batch_stats(eng_kctx *k, const eng_tensor *x, size_t c, size_t plane, double *mean, double *var)
{
    size_t planes = x->count / plane, n = planes / c;
    double *pm, *pv;
    st_status s = group_stats(k, x, planes, plane, &pm, &pv);
    if (s != ST_OK)
        return s;
    /* Combine the planes' statistics (equal sizes): the variance is the
     * mean of their variances plus the variance of their means. */
    for (size_t ch = 0; ch < c; ch++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < n; i++)
            m += pm[i * c + ch];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = pm[i * c + ch] - m;
            v += pv[i * c + ch] + d * d;
        }
        mean[ch] = m;
        var[ch] = v / (double)n;
    }
    return ST_OK;
}

static st_status bn_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (x->dtype == ST_DT_FLOAT16)
        return norm_run_f16_as_f32(k, bn_run);
    if (x->count == 0)
        return ST_OK;
    const bn_state *st = k->node->state;
    size_t c = (size_t)x->shape[1], plane = dims_prod(x->shape, 2, (int)x->rank);
    size_t n_param = k->in[1]->count;
    double *scale, *bias, *mean, *var;
    st_status s;
    if ((s = param_f64(k, 1, "scale", n_param, &scale)) != ST_OK || (s = param_f64(k, 2, "B", n_param, &bias)) != ST_OK ||
        (s = param_f64(k, 3, "mean", n_param, &mean)) != ST_OK || (s = param_f64(k, 4, "var", n_param, &var)) != ST_OK)
        return s;
    if (st->training) {
        double *bm = scratch_array(k, c, sizeof *bm), *bv = scratch_array(k, c, sizeof *bv);
        if (!bm || !bv)
            return eng_fail(k, ST_ENOMEM, "out of memory");
        if ((s = bn_batch_stats(k, x, c, plane, bm, bv)) != ST_OK)
            return s;
        double *run_mean = scratch_array(k, c, sizeof *run_mean), *run_var = scratch_array(k, c, sizeof *run_var);
        if (!run_mean || !run_var)
            return eng_fail(k, ST_ENOMEM, "out of memory");
        for (size_t ch = 0; ch < c; ch++) {
            run_mean[ch] = mean[ch] * st->momentum + bm[ch] * (1.0 - st->momentum);
            run_var[ch] = var[ch] * st->momentum + bv[ch] * (1.0 - st->momentum);
        }
        /* Outputs: running mean/var; before opset 14 also the batch's own
         * mean and variance (saved_mean, saved_var). */
        const double *outs[4] = { run_mean, run_var, bm, bv };
        for (uint32_t o = 1; o < k->n_out && o <= 4; o++)
            if (k->out[o])
                store_f64(k->out[o], outs[o - 1], c);
        mean = bm;
        var = bv;
    } else {
        const double *outs[4] = { mean, var, mean, var };
        for (uint32_t o = 1; o < k->n_out && o <= 4; o++)
            if (k->out[o])
                store_f64(k->out[o], outs[o - 1], n_param);
    }
    /* a = scale / sqrt(var + eps) in double, then y = (x - mean) * a + B. */
    double *a = scratch_array(k, n_param, sizeof *a);
    if (!a)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t i = 0; i < n_param; i++)
        a[i] = scale[i] / sqrt(var[i] + st->epsilon);
    if (n_param == c)
        return chan_apply(k, x, k->out[0], x->count / plane, plane, c, mean, a, bias);
    /* spatial=0: one value per activation, rows of C x D1 x ... */
    size_t row = n_param;
    if (x->dtype == ST_DT_FLOAT64) {
        const double *xd = x->data;
        double *yd = k->out[0]->data;
        for (size_t i = 0; i < x->count; i++)
            yd[i] = (xd[i] - mean[i % row]) * a[i % row] + bias[i % row];
    } else {
        const float *xf = x->data;
        float *yf = k->out[0]->data;
        for (size_t i = 0; i < x->count; i++)
            yf[i] = (float)((xf[i] - mean[i % row]) * a[i % row] + bias[i % row]);
    }
    return ST_OK;
}

/* --- LRN ------------------------------------------------------------------------------ */

typedef struct lrn_state {
    int64_t size;
    float alpha, beta, bias;
} lrn_state;

static st_status lrn_check(eng_node *n, st_arena *arena, st_error *err)
{
    lrn_state *st = alloc_state(n, arena, sizeof *st);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    if (!eng_attr_has(n, "size"))
        return st_fail(err, ST_ECORRUPT, "the size attribute is required");
    st->size = eng_attr_int(n, "size", 0);
    if (st->size <= 0)
        return st_fail(err, ST_EINVAL, "size must be positive, got %lld", (long long)st->size);
    st->alpha = eng_attr_float(n, "alpha", 1e-4f);
    st->beta = eng_attr_float(n, "beta", 0.75f);
    st->bias = eng_attr_float(n, "bias", 1.0f);
    return ST_OK;
}

static st_status lrn_infer(eng_kctx *k)
{
    return nc_infer(k, 0, true);
}

/* y = x / (bias + alpha / size * sum of x^2 over the channel window) ^ beta,
 * the window being [c - floor((size-1)/2), c + ceil((size-1)/2)]. */
#define LRN_IMPL(NAME, T, POW)                                                                          \
    static void NAME(const lrn_state *st, const T *x, T *y, size_t batch, size_t ch, size_t plane, T *sq) \
    {                                                                                                   \
        size_t lo = (size_t)((st->size - 1) / 2), hi = (size_t)(st->size / 2);                         \
        T k_alpha = (T)st->alpha / (T)st->size;                                                         \
        for (size_t n = 0; n < batch; n++)                                                              \
            for (size_t c = 0; c < ch; c++) {                                                           \
                size_t first = c > lo ? c - lo : 0, last = c + hi < ch ? c + hi : ch - 1;               \
                memset(sq, 0, plane * sizeof *sq);                                                      \
                for (size_t c2 = first; c2 <= last; c2++) {                                             \
                    const T *p = x + (n * ch + c2) * plane;                                             \
                    for (size_t i = 0; i < plane; i++)                                                  \
                        sq[i] += p[i] * p[i];                                                           \
                }                                                                                       \
                const T *xp = x + (n * ch + c) * plane;                                                 \
                T *yp = y + (n * ch + c) * plane;                                                       \
                for (size_t i = 0; i < plane; i++)                                                      \
                    yp[i] = xp[i] / POW((T)st->bias + k_alpha * sq[i], (T)st->beta);                    \
            }                                                                                           \
    }
LRN_IMPL(lrn_f32, float, powf)
LRN_IMPL(lrn_f64, double, pow)

static st_status lrn_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (x->dtype == ST_DT_FLOAT16)
        return norm_run_f16_as_f32(k, lrn_run);
    if (x->count == 0)
        return ST_OK;
    size_t ch = (size_t)x->shape[1], plane = dims_prod(x->shape, 2, (int)x->rank), batch = x->count / (ch * plane);
    bool is_f64 = x->dtype == ST_DT_FLOAT64;
    void *sq = scratch_array(k, plane, is_f64 ? sizeof(double) : sizeof(float));
    if (!sq)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    if (is_f64)
        lrn_f64(k->node->state, x->data, k->out[0]->data, batch, ch, plane, sq);
    else
        lrn_f32(k->node->state, x->data, k->out[0]->data, batch, ch, plane, sq);
    return ST_OK;
}

/* --- MeanVarianceNormalization ------------------------------------------------------ */

typedef struct mvn_state {
    const int64_t *axes;
    size_t n_axes;
} mvn_state;

static st_status mvn_check(eng_node *n, st_arena *arena, st_error *err)
{
    mvn_state *st = alloc_state(n, arena, sizeof *st);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    static const int64_t default_axes[] = { 0, 2, 3 };
    st->axes = eng_attr_ints(n, "axes", &st->n_axes);
    if (!st->axes) {
        st->axes = default_axes;
        st->n_axes = 3;
    }
    return ST_OK;
}

static st_status mvn_infer(eng_kctx *k)
{
    st_status s = need_inputs(k, 1);
    if (s != ST_OK || (s = need_float(k, k->in[0], "X")) != ST_OK)
        return s;
    const mvn_state *st = k->node->state;
    for (size_t i = 0; i < st->n_axes; i++) {
        int a;
        if ((s = eng_axis(k, st->axes[i], (int)k->in[0]->rank, &a)) != ST_OK)
            return s;
    }
    return eng_infer_same_as_input(k);
}

/* (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) with the expectations over
 * `axes` (the ONNX function body's formula), accumulated in double. */
#define MVN_IMPL(NAME, T)                                                                                    \
    static void NAME(const T *x, T *y, size_t count, const int64_t *shape, int rank, const size_t *sstride, \
                     double *sum, double *sq, size_t n_stats)                                                \
    {                                                                                                        \
        size_t inner = rank ? (size_t)shape[rank - 1] : 1, in_stride = rank ? sstride[rank - 1] : 0;        \
        size_t idx[ENG_MAX_RANK] = { 0 }, off = 0;                                                           \
        for (int pass = 0; pass < 2; pass++) {                                                               \
            for (size_t base = 0; base < count; base += inner) {                                             \
                for (size_t j = 0; j < inner; j++) {                                                         \
                    size_t si = off + j * in_stride;                                                         \
                    double v = x[base + j];                                                                  \
                    if (pass == 0) {                                                                         \
                        sum[si] += v;                                                                        \
                        sq[si] += v * v;                                                                     \
                    } else {                                                                                 \
                        y[base + j] = (T)((v - sum[si]) / sq[si]);                                           \
                    }                                                                                        \
                }                                                                                            \
                for (int d = rank - 2; d >= 0; d--) {                                                        \
                    off += sstride[d];                                                                       \
                    if (++idx[d] < (size_t)shape[d])                                                         \
                        break;                                                                               \
                    off -= sstride[d] * idx[d];                                                              \
                    idx[d] = 0;                                                                              \
                }                                                                                            \
            }                                                                                                \
            if (pass == 0) {                                                                                 \
                double per = (double)(count / n_stats);                                                      \
                for (size_t s = 0; s < n_stats; s++) {                                                       \
                    double mean = sum[s] / per, var = sq[s] / per - mean * mean;                             \
                    sum[s] = mean;                                                                           \
                    sq[s] = sqrt(var > 0 ? var : 0) + 1e-9;                                                  \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }
MVN_IMPL(mvn_f32, float)
MVN_IMPL(mvn_f64, double)

static st_status mvn_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (x->dtype == ST_DT_FLOAT16)
        return norm_run_f16_as_f32(k, mvn_run);
    if (x->count == 0)
        return ST_OK;
    int rank = (int)x->rank;
    bool reduced[ENG_MAX_RANK] = { false };
    const mvn_state *st = k->node->state;
    for (size_t i = 0; i < st->n_axes; i++) {
        int a;
        st_status s = eng_axis(k, st->axes[i], rank, &a);
        if (s != ST_OK)
            return s;
        reduced[a] = true;
    }
    /* Statistics have the kept dims (reduced ones are 1). */
    size_t sstride[ENG_MAX_RANK] = { 0 }, n_stats = 1;
    for (int d = rank - 1; d >= 0; d--) {
        sstride[d] = reduced[d] ? 0 : n_stats;
        if (!reduced[d])
            n_stats *= (size_t)x->shape[d];
    }
    double *sum = scratch_array(k, n_stats, sizeof *sum), *sq = scratch_array(k, n_stats, sizeof *sq);
    if (!sum || !sq)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    memset(sum, 0, n_stats * sizeof *sum);
    memset(sq, 0, n_stats * sizeof *sq);
    if (x->dtype == ST_DT_FLOAT64)
        mvn_f64(x->data, k->out[0]->data, x->count, x->shape, rank, sstride, sum, sq, n_stats);
    else
        mvn_f32(x->data, k->out[0]->data, x->count, x->shape, rank, sstride, sum, sq, n_stats);
    return ST_OK;
}

/* --- PRelu ------------------------------------------------------------------------------- */

static bool prelu_type_ok(st_dtype t)
{
    return norm_is_float(t) || t == ST_DT_INT32 || t == ST_DT_INT64 || t == ST_DT_UINT32 || t == ST_DT_UINT64 ||
           t == ST_DT_INT8 || t == ST_DT_INT16;
}

/* The slope's shape aligned to x's rank (leading 1s): numpy-style
 * unidirectional broadcasting from opset 7; before that a 1-D slope of C
 * elements is per channel (dim 1). */
static st_status prelu_slope_shape(const eng_kctx *k, const eng_tensor *x, const eng_tensor *slope, int64_t *shape)
{
    int r = (int)x->rank;
    for (int i = 0; i < r; i++)
        shape[i] = 1;
    if (k->node->opset < 7 && slope->rank == 1 && r >= 2 && slope->shape[0] == x->shape[1] && slope->count > 1) {
        shape[1] = slope->shape[0];
        return ST_OK;
    }
    if ((int)slope->rank > r)
        return eng_fail(k, ST_ESHAPE, "slope has rank %u, above X's %d", slope->rank, r);
    int lead = r - (int)slope->rank;
    for (int i = 0; i < (int)slope->rank; i++) {
        int64_t sd = slope->shape[i], xd = x->shape[i + lead];
        if (sd != 1 && sd != xd)
            return eng_fail(k, ST_ESHAPE, "slope dimension %d is %lld; it must be 1 or X's %lld to broadcast", i,
                            (long long)sd, (long long)xd);
        shape[i + lead] = sd;
    }
    return ST_OK;
}

static st_status prelu_infer(eng_kctx *k)
{
    st_status s = need_inputs(k, 2);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0], *slope = k->in[1];
    if (!prelu_type_ok(x->dtype))
        return eng_fail(k, ST_ETYPE, "type %s is not supported (float or int32/int64/uint32/uint64)",
                        st_dtype_name(x->dtype));
    if (slope->dtype != x->dtype)
        return eng_fail(k, ST_ETYPE, "slope has type %s; expected X's type %s", st_dtype_name(slope->dtype),
                        st_dtype_name(x->dtype));
    int64_t shape[ENG_MAX_RANK];
    if ((s = prelu_slope_shape(k, x, slope, shape)) != ST_OK)
        return s;
    return eng_infer_same_as_input(k);
}

static void bc_rows_init(bc_rows *b, const eng_tensor *x, const int64_t *sshape)
{
    int r = (int)x->rank, d = r;
    while (d > 0 && sshape[d - 1] == 1)
        d--;
    b->is_vec = d == r && r > 0;
    if (b->is_vec)
        while (d > 0 && sshape[d - 1] == x->shape[d - 1])
            d--;
    b->split = d;
    b->inner = dims_prod(x->shape, d, r);
    size_t acc = 1;
    for (int i = r - 1; i >= 0; i--) {
        b->sstride[i] = sshape[i] == 1 ? 0 : acc;
        acc *= (size_t)sshape[i];
    }
}

/* Integer products wrap (computed unsigned) instead of overflowing. */
#define PRELU_IMPL(NAME, T, MUL)                                                                           \
    static void NAME(const bc_rows *b, const eng_tensor *xt, const T *s, T *y)                             \
    {                                                                                                      \
        const T *x = xt->data;                                                                             \
        size_t idx[ENG_MAX_RANK] = { 0 }, off = 0, inner = b->inner;                                       \
        for (size_t base = 0; base < xt->count; base += inner) {                                           \
            for (size_t i = 0; i < inner; i++) {                                                           \
                T v = x[base + i], sv = s[off + (b->is_vec ? i : 0)];                                      \
                y[base + i] = v < 0 ? MUL(T, v, sv) : v;                                                   \
            }                                                                                              \
            for (int d = b->split - 1; d >= 0; d--) {                                                      \
                off += b->sstride[d];                                                                      \
                if (++idx[d] < (size_t)xt->shape[d])                                                       \
                    break;                                                                                 \
                off -= b->sstride[d] * idx[d];                                                             \
                idx[d] = 0;                                                                                \
            }                                                                                              \
        }                                                                                                  \
    }
#define MUL_FLOAT(T, a, b) ((a) * (b))
#define MUL_WRAP(T, a, b) ((T)((uint64_t)(a) * (uint64_t)(b)))
PRELU_IMPL(prelu_f64, double, MUL_FLOAT)
PRELU_IMPL(prelu_i8, int8_t, MUL_WRAP)
PRELU_IMPL(prelu_i16, int16_t, MUL_WRAP)
PRELU_IMPL(prelu_i32, int32_t, MUL_WRAP)
PRELU_IMPL(prelu_i64, int64_t, MUL_WRAP)

static st_status prelu_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *slope = k->in[1];
    if (x->dtype == ST_DT_FLOAT16)
        return norm_run_f16_as_f32(k, prelu_run);
    if (x->count == 0)
        return ST_OK;
    int64_t sshape[ENG_MAX_RANK];
    st_status s = prelu_slope_shape(k, x, slope, sshape);
    if (s != ST_OK)
        return s;
    bc_rows b;
    bc_rows_init(&b, x, sshape);
    void *y = k->out[0]->data;
    switch (x->dtype) {
    case ST_DT_FLOAT32:
        NORM_PICK(prelu_f32)(&b, x, slope->data, y);
        break;
    case ST_DT_FLOAT64: prelu_f64(&b, x, slope->data, y); break;
    case ST_DT_INT8: prelu_i8(&b, x, slope->data, y); break;
    case ST_DT_INT16: prelu_i16(&b, x, slope->data, y); break;
    case ST_DT_INT32: prelu_i32(&b, x, slope->data, y); break;
    case ST_DT_INT64: prelu_i64(&b, x, slope->data, y); break;
    default: /* unsigned: never negative */
        memcpy(y, x->data, x->count * st_dtype_size(x->dtype));
        break;
    }
    return ST_OK;
}

/* --- Clip ----------------------------------------------------------------------------------- */

typedef struct clip_state {
    float min, max; /* opsets < 11: the attributes */
} clip_state;

static st_status clip_check(eng_node *n, st_arena *arena, st_error *err)
{
    clip_state *st = alloc_state(n, arena, sizeof *st);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    /* Opset 6 defaults to the float range; opset 1 clips nothing it is
     * not told to. */
    float lim = n->opset >= 6 ? FLT_MAX : INFINITY;
    st->min = eng_attr_float(n, "min", -lim);
    st->max = eng_attr_float(n, "max", lim);
    return ST_OK;
}

static bool clip_type_ok(st_dtype t)
{
    return t != ST_DT_BOOL && t != ST_DT_STRING && t != ST_DT_UNDEFINED && st_dtype_size(t) != 0;
}

static st_status clip_infer(eng_kctx *k)
{
    st_status s = need_inputs(k, 1);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    bool legacy = k->node->opset < 11;
    if (legacy ? !norm_is_float(x->dtype) : !clip_type_ok(x->dtype))
        return eng_fail(k, ST_ETYPE, "type %s is not supported", st_dtype_name(x->dtype));
    for (uint32_t i = 1; !legacy && i < 3 && i < k->n_in; i++) {
        const eng_tensor *b = k->in[i];
        if (!b)
            continue;
        if (b->dtype != x->dtype)
            return eng_fail(k, ST_ETYPE, "%s has type %s; expected the input's %s", i == 1 ? "min" : "max",
                            st_dtype_name(b->dtype), st_dtype_name(x->dtype));
        if (b->count != 1)
            return eng_fail(k, ST_ESHAPE, "%s must be a scalar, has %zu elements", i == 1 ? "min" : "max", b->count);
    }
    return eng_infer_same_as_input(k);
}

/* v < lo ? lo : v, then v > hi ? hi : v: NaN passes through, and lo > hi
 * gives hi everywhere, as the spec asks. */
#define CLIP_IMPL(NAME, T)                                                    \
    static void NAME(const T *x, T *y, size_t n, T lo, T hi)                  \
    {                                                                         \
        for (size_t i = 0; i < n; i++) {                                      \
            T v = x[i] < lo ? lo : x[i];                                      \
            y[i] = v > hi ? hi : v;                                           \
        }                                                                     \
    }
CLIP_IMPL(clip_f64, double)
CLIP_IMPL(clip_i8, int8_t)
CLIP_IMPL(clip_i16, int16_t)
CLIP_IMPL(clip_i32, int32_t)
CLIP_IMPL(clip_i64, int64_t)
CLIP_IMPL(clip_u8, uint8_t)
CLIP_IMPL(clip_u16, uint16_t)
CLIP_IMPL(clip_u32, uint32_t)
CLIP_IMPL(clip_u64, uint64_t)

static st_status clip_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (x->dtype == ST_DT_FLOAT16)
        return norm_run_f16_as_f32(k, clip_run);
    const clip_state *st = k->node->state;
    bool legacy = k->node->opset < 11;
    const eng_tensor *lo_t = !legacy && k->n_in > 1 ? k->in[1] : NULL;
    const eng_tensor *hi_t = !legacy && k->n_in > 2 ? k->in[2] : NULL;
    void *y = k->out[0]->data;
    size_t n = x->count;
#define CLIP_CASE(DT, T, FN, LOWEST, HIGHEST)                                                 \
    case DT: {                                                                                \
        T lo = lo_t ? *(const T *)lo_t->data : (LOWEST), hi = hi_t ? *(const T *)hi_t->data : (HIGHEST); \
        FN(x->data, y, n, lo, hi);                                                            \
        break;                                                                                \
    }
    switch (x->dtype) {
    case ST_DT_FLOAT32: {
        float lo = lo_t ? *(const float *)lo_t->data : legacy ? st->min : -INFINITY;
        float hi = hi_t ? *(const float *)hi_t->data : legacy ? st->max : INFINITY;
        NORM_PICK(clip_f32)(x->data, y, n, lo, hi);
        break;
    }
    CLIP_CASE(ST_DT_FLOAT64, double, clip_f64, legacy ? (double)st->min : -INFINITY,
              legacy ? (double)st->max : INFINITY)
    CLIP_CASE(ST_DT_INT8, int8_t, clip_i8, INT8_MIN, INT8_MAX)
    CLIP_CASE(ST_DT_INT16, int16_t, clip_i16, INT16_MIN, INT16_MAX)
    CLIP_CASE(ST_DT_INT32, int32_t, clip_i32, INT32_MIN, INT32_MAX)
    CLIP_CASE(ST_DT_INT64, int64_t, clip_i64, INT64_MIN, INT64_MAX)
    CLIP_CASE(ST_DT_UINT8, uint8_t, clip_u8, 0, UINT8_MAX)
    CLIP_CASE(ST_DT_UINT16, uint16_t, clip_u16, 0, UINT16_MAX)
    CLIP_CASE(ST_DT_UINT32, uint32_t, clip_u32, 0, UINT32_MAX)
    CLIP_CASE(ST_DT_UINT64, uint64_t, clip_u64, 0, UINT64_MAX)
    default:
        return eng_fail(k, ST_ETYPE, "type %s is not supported", st_dtype_name(x->dtype));
    }
#undef CLIP_CASE
    return ST_OK;
}

/* --- table ------------------------------------------------------------------------------------ */

const eng_op eng_ops_norm[] = {
    { "", "Softmax", 1, check_softmax, sm_infer, sm_run },
    { "", "LogSoftmax", 1, check_logsoftmax, sm_infer, sm_run },
    { "", "Hardmax", 1, check_hardmax, sm_infer, sm_run },
    { "", "BatchNormalization", 1, bn_check, bn_infer, bn_run },
    { "", "InstanceNormalization", 1, in_check, in_infer, in_run },
    { "", "LayerNormalization", 17, ln_check, ln_infer, ln_run },
    { "", "GroupNormalization", 18, gn_check, gn_infer, gn_run },
    { "", "LRN", 1, lrn_check, lrn_infer, lrn_run },
    { "", "MeanVarianceNormalization", 9, mvn_check, mvn_infer, mvn_run },
    { "", "PRelu", 1, NULL, prelu_infer, prelu_run },
    { "", "Clip", 1, clip_check, clip_infer, clip_run },
    { "", "Resize", 10, op_resize_check, op_resize_infer, op_resize_run },
    { "", "Upsample", 7, op_resize_check, op_resize_infer, op_resize_run },
    { "", "DepthToSpace", 1, op_depth_to_space_check, op_depth_to_space_infer, op_depth_to_space_run },
    { "", "SpaceToDepth", 1, op_depth_to_space_check, op_space_to_depth_infer, op_space_to_depth_run },
    { "", "GridSample", 16, op_grid_sample_check, op_grid_sample_infer, op_grid_sample_run },
    { 0 },
};
