/* conv.c - convolutions: Conv, ConvTranspose, ConvInteger, FusedConv
 * (com.microsoft), and the table of the conv family (the pools live in
 * conv_pool.c, SIMD kernels in conv_kern.c and kernels/sconv.c).
 *
 * Float32 Conv takes one of four paths: a conv with one input channel per
 * group (depthwise) runs a direct SIMD kernel over a zero-padded copy of
 * each plane; a stride-1 conv with at least DIRECT_MIN_OUT outputs per
 * group runs eng_sconv register tiles straight on the input planes (or a
 * copy padded with zero rows), bias and ReLU applied in registers, its
 * weights packed once at load; a 1x1 stride-1 unpadded conv is otherwise a
 * GEMM on X itself; any other conv copies tiles of output positions into a
 * column buffer (im2col) and multiplies it with eng_sgemm.  On the GEMM
 * paths bias (and a fused sum) is written into the output before the GEMM
 * accumulates onto it, a fused activation is applied to each tile right
 * after.  Other types take a direct loop (float64, integers) or are
 * widened to float32 (float16). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/kernels.h"
#include "engine/ops/conv_int.h"

/* --- attributes --------------------------------------------------------- */

static st_status read_ints(const eng_node *n, const char *name, int64_t *dst, size_t cap, size_t *count,
                           int64_t min, st_error *err)
{
    size_t c;
    const int64_t *v = eng_attr_ints(n, name, &c);
    if (c > cap)
        return st_fail(err, ST_EUNSUPPORTED, "attribute %s has %zu values (at most %zu are supported)", name, c,
                       cap);
    for (size_t i = 0; i < c; i++) {
        if (v[i] < min || v[i] > INT32_MAX)
            return st_fail(err, ST_EINVAL, "attribute %s[%zu] is %lld (expected %lld..%d)", name, i,
                           (long long)v[i], (long long)min, INT32_MAX);
        dst[i] = v[i];
    }
    *count = c;
    return ST_OK;
}

/* FusedConv's activation: ONNX Runtime's names and parameter lists. */
static st_status parse_activation(const eng_node *n, conv_attrs *a, st_error *err)
{
    static const struct {
        const char *name;
        conv_act_kind kind;
        size_t n_params;
        float alpha, beta; /* defaults */
    } acts[] = {
        { "Relu", CONV_ACT_RELU, 0, 0, 0 },
        { "LeakyRelu", CONV_ACT_LEAKY_RELU, 1, 0.01f, 0 },
        { "Sigmoid", CONV_ACT_SIGMOID, 0, 0, 0 },
        { "Tanh", CONV_ACT_TANH, 0, 0, 0 },
        { "Clip", CONV_ACT_CLIP, 2, -FLT_MAX, FLT_MAX },
        { "HardSigmoid", CONV_ACT_HARD_SIGMOID, 2, 0.2f, 0.5f },
    };
    a->act = CONV_ACT_NONE;
    if (!eng_attr_has(n, "activation"))
        return ST_OK;
    st_str name = eng_attr_str(n, "activation", "");
    size_t n_params;
    const float *params = eng_attr_floats(n, "activation_params", &n_params);
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (!st_str_eq_c(name, acts[i].name))
            continue;
        if (n_params && n_params != acts[i].n_params)
            return st_fail(err, ST_EINVAL, "activation %s takes %zu activation_params, got %zu", acts[i].name,
                           acts[i].n_params, n_params);
        a->act = acts[i].kind;
        a->act_alpha = n_params > 0 ? params[0] : acts[i].alpha;
        a->act_beta = n_params > 1 ? params[1] : acts[i].beta;
        return ST_OK;
    }
    return st_fail(err, ST_EUNSUPPORTED,
                   "activation '%.*s' is not supported (Relu, LeakyRelu, Sigmoid, Tanh, Clip, HardSigmoid)",
                   (int)(name.len > 40 ? 40 : name.len), name.ptr);
}

st_status conv_attrs_parse(const eng_node *n, conv_attrs *a, st_error *err)
{
    memset(a, 0, sizeof *a);
    st_str ap = eng_attr_str(n, "auto_pad", "NOTSET");
    if (st_str_eq_c(ap, "NOTSET") || ap.len == 0)
        a->auto_pad = CONV_PAD_NOTSET;
    else if (st_str_eq_c(ap, "SAME_UPPER"))
        a->auto_pad = CONV_PAD_SAME_UPPER;
    else if (st_str_eq_c(ap, "SAME_LOWER"))
        a->auto_pad = CONV_PAD_SAME_LOWER;
    else if (st_str_eq_c(ap, "VALID"))
        a->auto_pad = CONV_PAD_VALID;
    else
        return st_fail(err, ST_EINVAL, "auto_pad '%.*s' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID",
                       (int)(ap.len > 40 ? 40 : ap.len), ap.ptr);
    a->group = eng_attr_int(n, "group", 1);
    if (a->group < 1 || a->group > INT32_MAX)
        return st_fail(err, ST_EINVAL, "group is %lld (expected >= 1)", (long long)a->group);
    st_status s;
    if ((s = read_ints(n, "kernel_shape", a->kernel, CONV_MAX_ATTR_SP, &a->n_kernel, 1, err)) != ST_OK ||
        (s = read_ints(n, "strides", a->strides, CONV_MAX_ATTR_SP, &a->n_strides, 1, err)) != ST_OK ||
        (s = read_ints(n, "dilations", a->dilations, CONV_MAX_ATTR_SP, &a->n_dilations, 1, err)) != ST_OK ||
        (s = read_ints(n, "pads", a->pads, 2 * CONV_MAX_ATTR_SP, &a->n_pads, 0, err)) != ST_OK ||
        (s = read_ints(n, "output_padding", a->out_pad, CONV_MAX_ATTR_SP, &a->n_out_pad, 0, err)) != ST_OK ||
        (s = read_ints(n, "output_shape", a->out_shape, ENG_MAX_RANK, &a->n_out_shape, 0, err)) != ST_OK)
        return s;
    if (a->n_pads % 2)
        return st_fail(err, ST_EINVAL, "pads has %zu values (expected two per spatial axis)", a->n_pads);
    int64_t ceil_mode = eng_attr_int(n, "ceil_mode", 0);
    int64_t include_pad = eng_attr_int(n, "count_include_pad", 0);
    int64_t order = eng_attr_int(n, "storage_order", 0);
    if ((ceil_mode != 0 && ceil_mode != 1) || (include_pad != 0 && include_pad != 1) || (order != 0 && order != 1))
        return st_fail(err, ST_EINVAL, "ceil_mode, count_include_pad and storage_order must be 0 or 1");
    a->ceil_mode = ceil_mode != 0;
    a->count_include_pad = include_pad != 0;
    a->col_major_indices = order != 0;
    /* LpPool's p is a float in opset 1 and an int later; eng_attr_float
     * reads both. */
    a->p = eng_attr_float(n, "p", 2.0f);
    if (!(a->p > 0.0f) || !isfinite(a->p))
        return st_fail(err, ST_EINVAL, "p is %g (expected a positive number)", (double)a->p);
    /* RoiAlign / MaxRoiPool. */
    a->roi_out_h = eng_attr_int(n, "output_height", 1);
    a->roi_out_w = eng_attr_int(n, "output_width", 1);
    size_t n_pooled;
    const int64_t *pooled = eng_attr_ints(n, "pooled_shape", &n_pooled);
    if (n_pooled == 2) {
        a->roi_out_h = pooled[0];
        a->roi_out_w = pooled[1];
    } else if (n_pooled) {
        return st_fail(err, ST_EINVAL, "pooled_shape has %zu values (expected 2)", n_pooled);
    }
    if (a->roi_out_h < 1 || a->roi_out_w < 1 || a->roi_out_h > INT32_MAX || a->roi_out_w > INT32_MAX)
        return st_fail(err, ST_EINVAL, "the pooled output size %lld x %lld must be positive",
                       (long long)a->roi_out_h, (long long)a->roi_out_w);
    a->sampling_ratio = eng_attr_int(n, "sampling_ratio", 0);
    if (a->sampling_ratio < 0 || a->sampling_ratio > 1 << 16)
        return st_fail(err, ST_EINVAL, "sampling_ratio is %lld (expected 0..65536)", (long long)a->sampling_ratio);
    a->spatial_scale = eng_attr_float(n, "spatial_scale", 1.0f);
    st_str mode = eng_attr_str(n, "mode", "avg");
    if (!st_str_eq_c(mode, "avg") && !st_str_eq_c(mode, "max"))
        return st_fail(err, ST_EINVAL, "mode '%.*s' is not avg or max", (int)(mode.len > 40 ? 40 : mode.len),
                       mode.ptr);
    a->roi_max = st_str_eq_c(mode, "max");
    /* Opset 10 RoiAlign had no attribute and behaved as output_half_pixel. */
    st_str ctm = eng_attr_str(n, "coordinate_transformation_mode", n->opset >= 16 ? "half_pixel" : "output_half_pixel");
    if (!st_str_eq_c(ctm, "half_pixel") && !st_str_eq_c(ctm, "output_half_pixel"))
        return st_fail(err, ST_EINVAL, "coordinate_transformation_mode '%.*s' is not half_pixel or output_half_pixel",
                       (int)(ctm.len > 40 ? 40 : ctm.len), ctm.ptr);
    a->roi_half_pixel = st_str_eq_c(ctm, "half_pixel");
    return parse_activation(n, a, err);
}

st_status conv_attrs_check(eng_node *n, st_arena *arena, st_error *err)
{
    conv_attrs *a = st_arena_alloc(arena, sizeof *a, 8);
    if (!a)
        return st_fail(err, ST_ENOMEM, "out of memory");
    n->state = a;
    return conv_attrs_parse(n, a, err);
}

/* Output channels per group from which AUTO takes the direct path: its
 * tiles compute 8 channels at a time, fewer leave FMAs idle that im2col's
 * GEMM (small-M kernels) would not. */
enum { DIRECT_MIN_OUT = 4 };

/* --- Winograd path -------------------------------------------------------------
 * 3x3 stride-1 convs with enough channels and tiles run as Winograd
 * F(2x2, 3x3) (kernels/wino.c): 16 multiplies per 2x2 outputs and channel
 * pair instead of 36, on the same register tile as the direct path, when
 * the SIMD transforms exist (AVX-512).  Measured on the bench CNN: below
 * these sizes the transforms cost more than the multiplies saved. */
enum { WINO_MIN_C_IN = 16, WINO_MIN_C_OUT = 16, WINO_MIN_TILES = 16 };

static bool is_all_ones(const int64_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != 1)
            return false;
    return true;
}

/* W transformed at load when the attributes allow the Winograd path. */
static void wino_pack_check(conv_attrs *a, const eng_tensor *w, st_arena *arena)
{
    if (!eng_wino_is_fast() || a->group != 1 || w->rank != 4 || w->shape[2] != 3 || w->shape[3] != 3 ||
        w->shape[0] < WINO_MIN_C_OUT || w->shape[1] < WINO_MIN_C_IN || !is_all_ones(a->strides, a->n_strides) ||
        !is_all_ones(a->dilations, a->n_dilations))
        return;
    size_t c_out = (size_t)w->shape[0], c_in = (size_t)w->shape[1], floats = eng_wino_pack_floats(c_out, c_in);
    float *u = floats && floats <= SIZE_MAX / sizeof(float) ? st_arena_alloc(arena, floats * sizeof *u, 64) : NULL;
    float *tmp = st_malloc(c_out * c_in * sizeof *tmp);
    if (u && tmp) {
        eng_wino_pack(w->data, c_out, c_in, u, tmp);
        a->w_wino = u;
    }
    st_free(tmp);
}

/* Whether this call takes the Winograd path: W transformed at load (and
 * still this call's W), 2-D geometry with pads of at most 1, enough tiles,
 * an activation the transform applies (none or ReLU), and threads only
 * when there are images to share out. */
static bool wino_applies(const eng_kctx *k, const conv_geom *g, const conv_act *act)
{
    const conv_attrs *a = k->node->state;
    if (!a->w_wino || a->w_packed_of != k->in[1]->data || g->nsp != 2 || g->group != 1 || g->kernel[1] != 3 ||
        g->kernel[2] != 3 || (act && (act->kind != CONV_ACT_RELU || act->sum)))
        return false;
    for (int d = 1; d < CONV_SP; d++)
        if (g->stride[d] != 1 || g->dilation[d] != 1 || g->pad_begin[d] > 1 || g->pad_end[d] > 1)
            return false;
    size_t tiles = (size_t)((g->out[1] + 1) / 2 * ((g->out[2] + 1) / 2));
    int threads = st_pool_size(k->pool);
    return tiles >= WINO_MIN_TILES && (threads <= 1 || g->batch >= 2 * threads);
}

typedef struct wino_job {
    const conv_geom *g;
    eng_wino_conv one;  /* image 0; x and y move per image */
    size_t scratch_floats;
    float *scratch;     /* one block per task */
    atomic_size_t next;
} wino_job;

static void wino_task(void *ctx, int ith, int nth)
{
    (void)nth;
    wino_job *j = ctx;
    eng_wino_conv p = j->one;
    p.scratch = j->scratch + (size_t)ith * j->scratch_floats;
    size_t in_image = p.c_in * p.h * p.w, out_image = p.c_out * p.oh * p.ow;
    for (;;) {
        size_t n = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (n >= (size_t)j->g->batch)
            break;
        p.x = j->one.x + n * in_image;
        p.y = j->one.y + n * out_image;
        eng_wino_run(&p);
    }
}

static st_status conv_wino(const eng_kctx *k, const conv_geom *g, const float *bias, bool relu)
{
    const conv_attrs *a = k->node->state;
    wino_job j = { .g = g };
    j.one = (eng_wino_conv){ .x = k->in[0]->data, .c_in = (size_t)g->c_in, .h = (size_t)g->in[1],
                             .w = (size_t)g->in[2], .pad_top = (size_t)g->pad_begin[1],
                             .pad_left = (size_t)g->pad_begin[2], .oh = (size_t)g->out[1], .ow = (size_t)g->out[2],
                             .c_out = (size_t)g->c_out, .u = a->w_wino, .bias = bias, .relu = relu,
                             .y = k->out[0]->data };
    j.scratch_floats = eng_wino_scratch_floats(j.one.c_in, j.one.c_out, j.one.oh, j.one.ow);
    int threads = st_pool_size(k->pool);
    size_t tasks = threads > 1 ? (size_t)threads : 1, bytes;
    if (j.scratch_floats == 0 || __builtin_mul_overflow(tasks * sizeof(float), j.scratch_floats, &bytes))
        return ST_EOVERFLOW;
    j.scratch = st_arena_alloc(k->scratch, bytes, 64);
    if (!j.scratch)
        return ST_ENOMEM;
    atomic_init(&j.next, 0);
    if (tasks > 1)
        st_pool_run(k->pool, wino_task, &j, (int)tasks);
    else
        wino_task(&j, 0, 1);
    return ST_OK;
}

/* Conv and FusedConv: the attributes, and a constant float32 W packed
 * for the direct path when the strides allow it (per-call packing costs
 * a pass over W at every run, most of a batch-1 run for small images). */
static st_status conv_check(eng_node *n, st_arena *arena, st_error *err)
{
    st_status s = conv_attrs_check(n, arena, err);
    if (s != ST_OK)
        return s;
    conv_attrs *a = n->state;
    int v = n->n_inputs > 1 ? n->inputs[1] : -1;
    if (v < 0 || !n->graph->values[v].is_const)
        return ST_OK;
    const eng_tensor *w = &n->graph->values[v].constant;
    if (w->dtype != ST_DT_FLOAT32 || w->rank < 3 || w->rank > 4 || w->count == 0 || w->shape[0] % a->group ||
        w->shape[1] == 1 || w->shape[0] / a->group < DIRECT_MIN_OUT)
        return ST_OK; /* not for the direct path (depthwise has its own) */
    for (size_t i = 0; i < a->n_strides; i++)
        if (a->strides[i] != 1)
            return ST_OK;
    size_t c_out = (size_t)w->shape[0], k_rows = w->count / c_out;
    size_t floats = eng_sconv_pack_floats(c_out, (size_t)a->group, k_rows);
    float *p = floats && floats <= SIZE_MAX / sizeof(float) ? st_arena_alloc(arena, floats * sizeof *p, 64) : NULL;
    if (!p)
        return ST_OK; /* fine: runs pack per call */
    eng_sconv_pack(w->data, c_out, (size_t)a->group, k_rows, p);
    a->w_packed = p;
    a->w_packed_of = w->data;
    wino_pack_check(a, w, arena);
    return ST_OK;
}

/* The packed W when it was made from this call's W. */
static const float *packed_w_of(const eng_kctx *k)
{
    const conv_attrs *a = k->node->state;
    return a->w_packed && a->w_packed_of == k->in[1]->data ? a->w_packed : NULL;
}

/* --- geometry ------------------------------------------------------------- */

/* Output size and pads of spatial axis `axis` from input size `in`. */
static st_status out_dim(int axis, int64_t in, int64_t k, int64_t s, int64_t d, conv_auto_pad ap, bool ceil_mode,
                         int64_t *pb, int64_t *pe, int64_t *out, st_error *err)
{
    int64_t dk = (k - 1) * d + 1; /* k, d < 2^31: no overflow */
    if (ap == CONV_PAD_SAME_UPPER || ap == CONV_PAD_SAME_LOWER) {
        *out = (in + s - 1) / s;
        int64_t total = (*out - 1) * s + dk - in;
        if (total < 0)
            total = 0;
        *pb = ap == CONV_PAD_SAME_UPPER ? total / 2 : total - total / 2;
        *pe = total - *pb;
        return ST_OK;
    }
    if (ap == CONV_PAD_VALID)
        *pb = *pe = 0;
    int64_t span = in + *pb + *pe - dk;
    if (span < 0)
        return st_fail(err, ST_ESHAPE,
                       "spatial axis %d: the kernel spans %lld but the padded input has %lld (input %lld)", axis,
                       (long long)dk, (long long)(in + *pb + *pe), (long long)in);
    if (ceil_mode && ap == CONV_PAD_NOTSET) {
        *out = (span + s - 1) / s + 1;
        /* The last window must start inside the input or the leading pad
         * (as PyTorch and ONNX Runtime do), never in the trailing pad. */
        if ((*out - 1) * s >= in + *pb)
            (*out)--;
    } else {
        *out = span / s + 1;
    }
    return ST_OK;
}

/* Fills the fields every geometry shares from X's shape, the kernel and
 * the attributes (pads as given; out left at 1), after checking the
 * attribute counts against the spatial rank and the dims' range. */
static st_status geom_fill(conv_geom *g, const conv_attrs *a, const int64_t *x_shape, uint32_t x_rank,
                           const int64_t *kernel, st_error *err)
{
    int nsp = (int)x_rank - 2;
    if ((a->n_strides && a->n_strides != (size_t)nsp) || (a->n_dilations && a->n_dilations != (size_t)nsp) ||
        (a->n_pads && a->n_pads != 2 * (size_t)nsp))
        return st_fail(err, ST_EINVAL,
                       "strides (%zu), dilations (%zu) and pads (%zu) must have %d, %d and %d values for a rank-%u "
                       "input",
                       a->n_strides, a->n_dilations, a->n_pads, nsp, nsp, 2 * nsp, x_rank);
    for (uint32_t i = 0; i < x_rank; i++)
        if (x_shape[i] < 0 || x_shape[i] > INT32_MAX)
            return st_fail(err, ST_EUNSUPPORTED, "input dimension %u is %lld (at most %d)", i,
                           (long long)x_shape[i], INT32_MAX);
    g->nsp = nsp;
    g->batch = x_shape[0];
    int off = CONV_SP - nsp;
    for (int i = 0; i < CONV_SP; i++) {
        g->in[i] = g->out[i] = g->kernel[i] = g->stride[i] = g->dilation[i] = 1;
        g->pad_begin[i] = g->pad_end[i] = 0;
    }
    for (int i = 0; i < nsp; i++) {
        int j = off + i;
        g->in[j] = x_shape[2 + i];
        g->kernel[j] = kernel[i];
        g->stride[j] = a->n_strides ? a->strides[i] : 1;
        g->dilation[j] = a->n_dilations ? a->dilations[i] : 1;
        g->pad_begin[j] = a->n_pads ? a->pads[i] : 0;
        g->pad_end[j] = a->n_pads ? a->pads[nsp + i] : 0;
    }
    return ST_OK;
}

/* geom_fill, then the output sizes (and pads for auto_pad) of a conv or
 * pool. */
static st_status geom_spatial(conv_geom *g, const conv_attrs *a, const int64_t *x_shape, uint32_t x_rank,
                              const int64_t *kernel, bool ceil_mode, st_error *err)
{
    st_status s = geom_fill(g, a, x_shape, x_rank, kernel, err);
    if (s != ST_OK)
        return s;
    for (int i = 0; i < g->nsp; i++) {
        int j = CONV_SP - g->nsp + i;
        s = out_dim(i, g->in[j], g->kernel[j], g->stride[j], g->dilation[j], a->auto_pad, ceil_mode,
                    &g->pad_begin[j], &g->pad_end[j], &g->out[j], err);
        if (s != ST_OK)
            return s;
    }
    size_t plane;
    if (!eng_shape_count(g->in, CONV_SP, &plane) || !eng_shape_count(g->out, CONV_SP, &plane) ||
        !eng_shape_count(g->kernel, CONV_SP, &plane))
        return st_fail(err, ST_EOVERFLOW, "spatial sizes overflow");
    return ST_OK;
}

st_status conv_geom_conv(conv_geom *g, const conv_attrs *a, const int64_t *x_shape, uint32_t x_rank,
                         const int64_t *w_shape, uint32_t w_rank, st_error *err)
{
    memset(g, 0, sizeof *g);
    if (x_rank < 3)
        return st_fail(err, ST_ESHAPE, "X has rank %u (expected N x C x spatial dims, rank >= 3)", x_rank);
    if (x_rank > 2 + CONV_SP)
        return st_fail(err, ST_EUNSUPPORTED, "%u spatial dims (at most %d are supported)", x_rank - 2, CONV_SP);
    if (w_rank != x_rank)
        return st_fail(err, ST_ESHAPE, "W has rank %u but X has rank %u (expected equal)", w_rank, x_rank);
    int nsp = (int)x_rank - 2;
    if (a->n_kernel && a->n_kernel != (size_t)nsp)
        return st_fail(err, ST_EINVAL, "kernel_shape has %zu values (expected %d)", a->n_kernel, nsp);
    for (uint32_t i = 0; i < w_rank; i++)
        if (w_shape[i] < 0 || w_shape[i] > INT32_MAX)
            return st_fail(err, ST_EUNSUPPORTED, "W dimension %u is %lld (at most %d)", i, (long long)w_shape[i],
                           INT32_MAX);
    for (int i = 0; i < nsp; i++) {
        if (a->n_kernel && a->kernel[i] != w_shape[2 + i])
            return st_fail(err, ST_ESHAPE, "kernel_shape[%d] is %lld but W has %lld", i, (long long)a->kernel[i],
                           (long long)w_shape[2 + i]);
        if (w_shape[2 + i] < 1)
            return st_fail(err, ST_ESHAPE, "W spatial dimension %d is 0", i);
    }
    int64_t c = x_shape[1], m = w_shape[0];
    g->group = a->group;
    if (c % g->group || m % g->group)
        return st_fail(err, ST_ESHAPE, "X channels (%lld) and W output channels (%lld) must divide by group %lld",
                       (long long)c, (long long)m, (long long)g->group);
    if (w_shape[1] != c / g->group)
        return st_fail(err, ST_ESHAPE, "W has %lld input channels per group, X has %lld channels in %lld groups",
                       (long long)w_shape[1], (long long)c, (long long)g->group);
    g->c_in = c;
    g->c_out = m;
    st_status s = geom_spatial(g, a, x_shape, x_rank, w_shape + 2, false, err);
    if (s != ST_OK)
        return s;
    size_t kk = conv_kernel_size(g), col_rows;
    if (__builtin_mul_overflow(kk, (size_t)(c / g->group), &col_rows) || col_rows > (SIZE_MAX >> 4))
        return st_fail(err, ST_EOVERFLOW, "kernel size times channels overflows");
    return ST_OK;
}

st_status conv_geom_pool(conv_geom *g, const conv_attrs *a, const int64_t *x_shape, uint32_t x_rank, st_error *err)
{
    memset(g, 0, sizeof *g);
    if (x_rank < 3)
        return st_fail(err, ST_ESHAPE, "X has rank %u (expected N x C x spatial dims, rank >= 3)", x_rank);
    if (x_rank > 2 + CONV_SP)
        return st_fail(err, ST_EUNSUPPORTED, "%u spatial dims (at most %d are supported)", x_rank - 2, CONV_SP);
    int nsp = (int)x_rank - 2;
    if (a->n_kernel != (size_t)nsp)
        return st_fail(err, ST_EINVAL, "kernel_shape has %zu values (expected %d for a rank-%u input)", a->n_kernel,
                       nsp, x_rank);
    g->c_in = g->c_out = g->group = x_shape[1];
    return geom_spatial(g, a, x_shape, x_rank, a->kernel, a->ceil_mode, err);
}

/* --- float32 convolution ---------------------------------------------------- */

/* Column-buffer floats per task the im2col path aims for: enough columns
 * to amortise re-reading the weights, small enough to stay in L2. */
enum { IM2COL_TARGET_FLOATS = 64 * 1024, GEMM_MIN_COLS = 128 };

bool conv_path_applies(const conv_geom *g, conv_path path)
{
    switch (path) {
    case CONV_PATH_AUTO:
    case CONV_PATH_IM2COL:
        return true;
    case CONV_PATH_POINTWISE:
        for (int i = 0; i < CONV_SP; i++)
            if (g->kernel[i] != 1 || g->stride[i] != 1 || g->pad_begin[i] || g->pad_end[i])
                return false;
        return true;
    case CONV_PATH_DEPTHWISE:
        /* Depth is a unit dim for 1-D and 2-D convs. */
        return g->c_in == g->group && g->in[0] == 1 && g->kernel[0] == 1 && g->pad_begin[0] == 0 &&
               g->pad_end[0] == 0;
    case CONV_PATH_DIRECT:
        return g->in[0] == 1 && g->kernel[0] == 1 && g->pad_begin[0] == 0 && g->pad_end[0] == 0 &&
               g->stride[1] == 1 && g->stride[2] == 1;
    }
    return false;
}

typedef struct conv_job {
    const conv_geom *g;
    const float *x, *w, *bias;
    const conv_act *act;           /* NULL: nothing fused */
    float *y;
    conv_path path;
    size_t c_g, m_g, k_rows;       /* channels per group in/out; GEMM depth */
    size_t in_plane, out_plane;
    size_t lines, lines_per_tile, n_tiles; /* output lines = depth x height */
    size_t n_units;
    float *buf;                    /* per-task scratch, buf_floats each */
    size_t buf_floats;
    conv_dw_shape dw;              /* depthwise path */
    /* Direct path: padded planes of hp x wp floats (x_cs apart when
     * is_padded, else X's own planes), positions [0, n_pos) in n_chunks
     * chunks of whole vectors (unit positions), taps of the flat layout
     * (and their column shifts when masked), packed weights. */
    size_t wp, hp, x_cs, n_pos, unit, n_units_pos, n_chunks, n_blocks;
    bool is_padded, is_relu_fused;
    size_t *taps;
    const ptrdiff_t *col_shift;    /* masked taps ("same" width), or NULL */
    size_t front;                  /* slack before each masked plane */
    const float *w_packed;
    atomic_size_t next_unit;
} conv_job;

/* Copies output lines [l0, l1) of one group's input (c_g planes) into the
 * column buffer: row (c, kd, kh, kw), column (line - l0) * OW + ow. */
static void im2col_lines(const conv_job *j, const float *x, size_t l0, size_t l1, float *col)
{
    const conv_geom *g = j->g;
    const int64_t id_n = g->in[0], ih_n = g->in[1], iw_n = g->in[2];
    const int64_t oh_n = g->out[1], ow_n = g->out[2];
    const int64_t sd = g->stride[0], sh = g->stride[1], sw = g->stride[2];
    const size_t ncols = (l1 - l0) * (size_t)ow_n;
    /* Stride 1 with "same" width: output line l + 1 reads the input row
     * after the one line l reads. */
    const bool contiguous = sw == 1 && sh == 1 && ow_n == iw_n;
    float *dst = col;
    for (size_t c = 0; c < j->c_g; c++) {
        const float *plane = x + c * j->in_plane;
        for (int64_t kd = 0; kd < g->kernel[0]; kd++)
            for (int64_t kh = 0; kh < g->kernel[1]; kh++)
                for (int64_t kw = 0; kw < g->kernel[2]; kw++) {
                    /* Output columns [lo, hi) read inside the row. */
                    int64_t off = kw * g->dilation[2] - g->pad_begin[2];
                    int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                    int64_t hi = off > iw_n - 1 ? 0 : (iw_n - 1 - off) / sw + 1;
                    if (hi > ow_n)
                        hi = ow_n;
                    if (lo > hi)
                        lo = hi;
                    float *d = dst;
                    for (size_t line = l0; line < l1;) {
                        int64_t od = (int64_t)line / oh_n, oh = (int64_t)line % oh_n;
                        int64_t id = od * sd - g->pad_begin[0] + kd * g->dilation[0];
                        int64_t ih = oh * sh - g->pad_begin[1] + kh * g->dilation[1];
                        if (id < 0 || id >= id_n || ih < 0 || ih >= ih_n) {
                            memset(d, 0, (size_t)ow_n * sizeof *d);
                            line++;
                            d += ow_n;
                            continue;
                        }
                        const float *src = plane + (id * ih_n + ih) * iw_n + off;
                        if (contiguous) {
                            /* Following lines read following input rows:
                             * one copy for the run, then zero the pads. */
                            size_t run = l1 - line;
                            if (run > (size_t)(oh_n - oh))
                                run = (size_t)(oh_n - oh);
                            if (run > (size_t)(ih_n - ih))
                                run = (size_t)(ih_n - ih);
                            if (hi == lo) { /* the tap reads only padding */
                                memset(d, 0, run * (size_t)ow_n * sizeof *d);
                                line += run;
                                d += run * (size_t)ow_n;
                                continue;
                            }
                            memcpy(d + lo, src + lo, ((run - 1) * (size_t)ow_n + (size_t)(hi - lo)) * sizeof *d);
                            for (size_t r = 0; r < run; r++, d += ow_n) {
                                for (int64_t ow = 0; ow < lo; ow++)
                                    d[ow] = 0.0f;
                                for (int64_t ow = hi; ow < ow_n; ow++)
                                    d[ow] = 0.0f;
                            }
                            line += run;
                            continue;
                        }
                        if (lo > 0)
                            memset(d, 0, (size_t)lo * sizeof *d);
                        conv_copy_strided_f32(d + lo, src + lo * sw, (size_t)(hi - lo), (size_t)sw);
                        if (hi < ow_n)
                            memset(d + hi, 0, (size_t)(ow_n - hi) * sizeof *d);
                        line++;
                        d += ow_n;
                    }
                    dst += ncols;
                }
    }
}

/* One unit of the GEMM paths: output lines of one tile of one (n, group). */
static void gemm_unit(const conv_job *j, size_t unit, float *buf, st_pool *pool)
{
    const conv_geom *g = j->g;
    size_t tile = unit % j->n_tiles, ng = unit / j->n_tiles;
    size_t n = ng / (size_t)g->group, grp = ng % (size_t)g->group;
    size_t l0 = tile * j->lines_per_tile;
    size_t l1 = l0 + j->lines_per_tile < j->lines ? l0 + j->lines_per_tile : j->lines;
    size_t ow = (size_t)g->out[2], p0 = l0 * ow, ncols = (l1 - l0) * ow;
    const float *x = j->x + (n * (size_t)g->c_in + grp * j->c_g) * j->in_plane;
    float *y = j->y + (n * (size_t)g->c_out + grp * j->m_g) * j->out_plane + p0;
    const float *w = j->w + grp * j->m_g * j->k_rows;
    const float *b;
    size_t ldb;
    if (j->path == CONV_PATH_POINTWISE) {
        b = x + p0;
        ldb = j->in_plane;
    } else {
        im2col_lines(j, x, l0, l1, buf);
        b = buf;
        ldb = ncols;
    }
    float beta = 0.0f;
    const float *sum = j->act && j->act->sum ? j->act->sum + (y - j->y) : NULL;
    if (j->bias || sum) {
        conv_fill_rows_f32(y, j->m_g, j->out_plane, ncols, j->bias ? j->bias + grp * j->m_g : NULL, sum);
        beta = 1.0f;
    }
    eng_sgemm(j->m_g, ncols, j->k_rows, 1.0f, w, j->k_rows, false, b, ldb, false, beta, y, j->out_plane, pool);
    if (j->act)
        conv_act_rows_f32(y, j->m_g, j->out_plane, ncols, j->act);
}

/* One unit of the depthwise path: input plane (n, c) padded into buf, then
 * its m_g output planes. */
static void depthwise_unit(const conv_job *j, size_t unit, float *buf)
{
    const conv_geom *g = j->g;
    size_t n = unit / (size_t)g->c_in, c = unit % (size_t)g->c_in;
    const conv_dw_shape *s = &j->dw;
    const float *plane = j->x + (n * (size_t)g->c_in + c) * j->in_plane;
    bool is_raw = conv_dw_raw_applies(s);
    if (!is_raw)
        conv_dw_pad(s, plane, buf);
    for (size_t mm = 0; mm < j->m_g; mm++) {
        size_t m = c * j->m_g + mm;
        size_t at = (n * (size_t)g->c_out + m) * j->out_plane;
        float b = j->bias ? j->bias[m] : 0.0f;
        if (is_raw)
            conv_dw_raw_f32(s, plane, j->w + m * s->kh * s->kw, b, j->y + at);
        else
            conv_dw_plane_f32(s, buf, j->w + m * s->kh * s->kw, b, j->y + at);
        if (j->act && j->act->sum)
            conv_vadd_f32(j->y + at, j->act->sum + at, j->out_plane);
        if (j->act)
            conv_act_rows_f32(j->y + at, 1, j->out_plane, j->out_plane, j->act);
    }
}

/* --- direct path ------------------------------------------------------------
 * Stride-1 convs run eng_sconv tiles on the input planes themselves (when
 * unpadded) or on a zero-padded copy (c_g planes of hp x wp floats per
 * image and group, a fraction of im2col's copy: no tap duplication). */

/* The padded copy of one (n, group)'s c_g input planes. */
static void direct_pad(const conv_job *j, const float *x, float *buf)
{
    const conv_geom *g = j->g;
    size_t ih_n = (size_t)g->in[1], iw_n = (size_t)g->in[2], wp = j->wp;
    size_t top = (size_t)g->pad_begin[1], bottom = j->hp - top - ih_n;
    for (size_t c = 0; c < j->c_g; c++) {
        const float *src = x + c * j->in_plane;
        float *d = buf + c * j->x_cs;
        if (j->col_shift) {
            /* Rows as wide as the input: the plane in one copy between
             * zero rows (and the slack masked taps never read). */
            memset(d, 0, (j->front + top * wp) * sizeof *d);
            d += j->front + top * wp;
            memcpy(d, src, j->in_plane * sizeof *d);
            d += j->in_plane;
            memset(d, 0, (bottom * wp + j->front) * sizeof *d);
            continue;
        }
        size_t left = (size_t)g->pad_begin[2], right = wp - left - iw_n;
        memset(d, 0, top * wp * sizeof *d);
        d += top * wp;
        /* Plain loops: rows are short, library calls per piece cost more
         * than the copy. */
        for (size_t r = 0; r < ih_n; r++, d += wp, src += iw_n) {
            for (size_t i = 0; i < left; i++)
                d[i] = 0.0f;
            for (size_t i = 0; i < iw_n; i++)
                d[left + i] = src[i];
            for (size_t i = 0; i < right; i++)
                d[left + iw_n + i] = 0.0f;
        }
        memset(d, 0, bottom * wp * sizeof *d);
    }
}

/* Positions [p0, p0 + np) of one (n, group), every output channel: x is
 * the group's first (padded) plane, y its first output plane. */
static void direct_chunk(const conv_job *j, const float *x, const float *w, const float *bias, float *y, size_t chunk)
{
    /* Chunks share the vectors evenly (3 3 2 2, not 3 3 3 1): a tile of
     * one vector streams 8 broadcasts per 8 FMAs and is load-bound. */
    size_t base = j->n_units_pos / j->n_chunks, extra = j->n_units_pos % j->n_chunks;
    size_t p0 = (chunk * base + (chunk < extra ? chunk : extra)) * j->unit;
    size_t np = (base + (chunk < extra)) * j->unit;
    if (np > j->n_pos - p0)
        np = j->n_pos - p0;
    eng_sconv_tile t = { .x = x, .x_cs = j->x_cs, .c_in = j->c_g, .taps = j->taps, .n_taps = j->k_rows / j->c_g,
                         .w = w, .bias = bias, .y = y, .ldy = j->out_plane, .rows = j->m_g, .p0 = p0, .np = np,
                         .wp = j->wp, .ow = (size_t)j->g->out[2], .col_shift = j->col_shift,
                         .n_cols = (size_t)j->g->kernel[2], .relu = j->is_relu_fused };
    eng_sconv_tile_run(&t);
}

/* The fused work the tiles did not do: the sum and activations other
 * than a plain ReLU, on one (n, group)'s m_g output planes. */
static void direct_post(const conv_job *j, float *y)
{
    if (!j->act || j->is_relu_fused)
        return;
    size_t count = j->m_g * j->out_plane;
    if (j->act->sum)
        conv_vadd_f32(y, j->act->sum + (y - j->y), count);
    conv_act_rows_f32(y, j->m_g, j->out_plane, j->out_plane, j->act);
}

/* Pointers of one (n, group) of the direct path. */
static void direct_at(const conv_job *j, size_t ng, const float **x, const float **w, const float **bias, float **y)
{
    const conv_geom *g = j->g;
    size_t n = ng / (size_t)g->group, grp = ng % (size_t)g->group;
    *x = j->x + (n * (size_t)g->c_in + grp * j->c_g) * j->in_plane;
    *w = j->w_packed + grp * j->n_blocks * ENG_SCONV_MR * j->k_rows;
    *bias = j->bias ? j->bias + grp * j->m_g : NULL;
    *y = j->y + (n * (size_t)g->c_out + grp * j->m_g) * j->out_plane;
}

/* One unit of the direct path run whole on one thread: an (n, group). */
static void direct_unit(const conv_job *j, size_t ng, float *buf)
{
    const float *x, *w, *bias;
    float *y;
    direct_at(j, ng, &x, &w, &bias, &y);
    if (j->is_padded) {
        direct_pad(j, x, buf);
        x = buf;
    }
    for (size_t c = 0; c < j->n_chunks; c++)
        direct_chunk(j, x, w, bias, y, c);
    direct_post(j, y);
}

/* Chunks of one (n, group) split over a pool (few images, several
 * threads): ctx is the job, its next_unit the next chunk, buf the padded
 * input (or X). */
typedef struct direct_split {
    conv_job *j;
    const float *x, *w, *bias;
    float *y;
} direct_split;

static void direct_split_task(void *ctx, int ith, int nth)
{
    (void)ith;
    (void)nth;
    direct_split *d = ctx;
    for (;;) {
        size_t c = atomic_fetch_add_explicit(&d->j->next_unit, 1, memory_order_relaxed);
        if (c >= d->j->n_chunks)
            break;
        direct_chunk(d->j, d->x, d->w, d->bias, d->y, c);
    }
}

/* Sets up the direct path's geometry, taps and weights in j. */
static st_status direct_init(conv_job *j, const float *w_packed, st_arena *scratch)
{
    const conv_geom *g = j->g;
    size_t kh = (size_t)g->kernel[1], kw = (size_t)g->kernel[2];
    j->is_padded = g->pad_begin[1] || g->pad_begin[2] || g->pad_end[1] || g->pad_end[2];
    /* Output rows as wide as the input rows ("same" width): masked taps on
     * planes padded with zero rows only, nothing computed to be thrown
     * away.  Otherwise flat rows padded on both sides. */
    bool is_masked = j->is_padded && g->out[2] == g->in[2] && kw <= ENG_SCONV_MAX_COLS;
    j->front = is_masked ? (size_t)g->pad_begin[2] : 0;
    j->wp = (size_t)(is_masked ? g->in[2] : g->in[2] + g->pad_begin[2] + g->pad_end[2]);
    j->hp = (size_t)(g->in[1] + g->pad_begin[1] + g->pad_end[1]);
    j->x_cs = j->is_padded ? j->hp * j->wp + 2 * j->front : j->in_plane;
    j->n_pos = (size_t)(g->out[1] - 1) * j->wp + (size_t)g->out[2];
    j->unit = eng_sconv_max_np() / 3; /* a vector */
    j->n_units_pos = (j->n_pos + j->unit - 1) / j->unit;
    j->n_chunks = (j->n_units_pos + 2) / 3;
    j->n_blocks = (j->m_g + ENG_SCONV_MR - 1) / ENG_SCONV_MR;
    j->is_relu_fused = j->act && j->act->kind == CONV_ACT_RELU && !j->act->sum;
    j->taps = st_arena_alloc(scratch, kh * kw * sizeof *j->taps, 8);
    if (!j->taps)
        return ST_ENOMEM;
    for (size_t a = 0; a < kh; a++)
        for (size_t b = 0; b < kw; b++)
            j->taps[a * kw + b] = a * (size_t)g->dilation[1] * j->wp + b * (size_t)g->dilation[2];
    j->col_shift = NULL;
    if (is_masked) {
        ptrdiff_t *cs = st_arena_alloc(scratch, kw * sizeof *cs, 8);
        if (!cs)
            return ST_ENOMEM;
        for (size_t b = 0; b < kw; b++)
            cs[b] = (ptrdiff_t)(b * (size_t)g->dilation[2]) - (ptrdiff_t)g->pad_begin[2];
        j->col_shift = cs;
    }
    j->w_packed = w_packed;
    if (!w_packed) {
        size_t floats = eng_sconv_pack_floats((size_t)g->c_out, (size_t)g->group, j->k_rows);
        float *p = floats && floats <= SIZE_MAX / sizeof(float) ? st_arena_alloc(scratch, floats * sizeof *p, 64)
                                                                 : NULL;
        if (!p)
            return ST_ENOMEM;
        eng_sconv_pack(j->w, (size_t)g->c_out, (size_t)g->group, j->k_rows, p);
        j->w_packed = p;
    }
    if (j->is_padded && (__builtin_mul_overflow(j->x_cs, j->c_g, &j->buf_floats) || j->buf_floats > SIZE_MAX / 8))
        return ST_EOVERFLOW;
    j->buf_floats = (j->buf_floats + 15) & ~(size_t)15;
    return ST_OK;
}

static void conv_task(void *ctx, int ith, int nth)
{
    (void)nth;
    conv_job *j = ctx;
    float *buf = j->buf ? j->buf + (size_t)ith * j->buf_floats : NULL;
    for (;;) {
        size_t u = atomic_fetch_add_explicit(&j->next_unit, 1, memory_order_relaxed);
        if (u >= j->n_units)
            break;
        if (j->path == CONV_PATH_DEPTHWISE)
            depthwise_unit(j, u, buf);
        else if (j->path == CONV_PATH_DIRECT)
            direct_unit(j, u, buf);
        else
            gemm_unit(j, u, buf, NULL);
    }
}

st_status conv_f32(const conv_geom *g, conv_path path, const float *x, const float *w, const float *bias,
                   const conv_act *act, float *y, st_arena *scratch, st_pool *pool)
{
    return conv_f32_packed(g, path, x, w, NULL, bias, act, y, scratch, pool);
}

st_status conv_f32_packed(const conv_geom *g, conv_path path, const float *x, const float *w,
                          const float *w_packed, const float *bias, const conv_act *act, float *y,
                          st_arena *scratch, st_pool *pool)
{
    if (act && act->kind == CONV_ACT_NONE && !act->sum)
        act = NULL;
    if (path == CONV_PATH_AUTO) {
        if (conv_path_applies(g, CONV_PATH_DEPTHWISE))
            path = CONV_PATH_DEPTHWISE;
        else if (conv_path_applies(g, CONV_PATH_DIRECT) && g->c_out / g->group >= DIRECT_MIN_OUT)
            path = CONV_PATH_DIRECT;
        else if (conv_path_applies(g, CONV_PATH_POINTWISE))
            path = CONV_PATH_POINTWISE;
        else
            path = CONV_PATH_IM2COL;
    }
    conv_job j = { .g = g, .x = x, .w = w, .bias = bias, .act = act, .y = y, .path = path };
    j.c_g = (size_t)(g->c_in / g->group);
    j.m_g = (size_t)(g->c_out / g->group);
    j.in_plane = conv_in_plane(g);
    j.out_plane = conv_out_plane(g);
    j.k_rows = j.c_g * conv_kernel_size(g);
    if (g->batch == 0 || g->c_out == 0 || j.out_plane == 0)
        return ST_OK;
    if (j.k_rows == 0) { /* no input channels: the output is the bias */
        for (size_t n = 0; n < (size_t)g->batch; n++) {
            size_t at = n * (size_t)g->c_out * j.out_plane;
            conv_fill_rows_f32(y + at, (size_t)g->c_out, j.out_plane, j.out_plane, bias,
                               act && act->sum ? act->sum + at : NULL);
            if (act)
                conv_act_rows_f32(y + at, (size_t)g->c_out, j.out_plane, j.out_plane, act);
        }
        return ST_OK;
    }
    size_t ow = (size_t)g->out[2];
    j.lines = (size_t)(g->out[0] * g->out[1]);
    if (path == CONV_PATH_DEPTHWISE) {
        j.n_units = (size_t)(g->batch * g->c_in);
        conv_dw_shape_init(&j.dw, g);
        if (__builtin_mul_overflow(j.dw.rows, j.dw.row_len, &j.buf_floats) ||
            __builtin_add_overflow(j.buf_floats, (size_t)CONV_DW_SLACK + 16, &j.buf_floats))
            return ST_EOVERFLOW;
        j.buf_floats &= ~(size_t)15; /* keep each task's buffer 64-byte aligned */
    } else if (path == CONV_PATH_DIRECT) {
        st_status s = direct_init(&j, w_packed, scratch);
        if (s != ST_OK)
            return s;
        j.n_units = (size_t)(g->batch * g->group);
    } else {
        /* Whole output lines per tile, at least GEMM_MIN_COLS columns. */
        size_t want_cols = IM2COL_TARGET_FLOATS / j.k_rows;
        if (want_cols < GEMM_MIN_COLS)
            want_cols = GEMM_MIN_COLS;
        j.lines_per_tile = (want_cols + ow - 1) / ow;
        if (j.lines_per_tile > j.lines)
            j.lines_per_tile = j.lines;
        j.n_tiles = (j.lines + j.lines_per_tile - 1) / j.lines_per_tile;
        j.n_units = (size_t)(g->batch * g->group) * j.n_tiles;
        if (path == CONV_PATH_IM2COL &&
            (__builtin_mul_overflow(j.k_rows, j.lines_per_tile * ow, &j.buf_floats) ||
             j.buf_floats > SIZE_MAX / 8))
            return ST_EOVERFLOW;
        j.buf_floats = (j.buf_floats + 15) & ~(size_t)15;
    }
    size_t threads = (size_t)st_pool_size(pool);
    /* Split units over threads when there are enough of them to balance;
     * otherwise run them in order and let eng_sgemm use the threads. */
    bool outer = threads > 1 && (path == CONV_PATH_DEPTHWISE || j.n_units >= 3 * threads ||
                                 (j.n_units >= threads && j.n_units % threads == 0));
    if (path == CONV_PATH_DIRECT && threads > 1 && !outer && j.n_chunks < 2 * threads)
        outer = j.n_units > 1; /* too few chunks to split an image */
    size_t tasks = outer ? (threads < j.n_units ? threads : j.n_units) : 1;
    if (j.buf_floats) {
        size_t bytes;
        if (__builtin_mul_overflow(tasks * j.buf_floats, sizeof(float), &bytes))
            return ST_EOVERFLOW;
        j.buf = st_arena_alloc(scratch, bytes, 64);
        if (!j.buf)
            return ST_ENOMEM;
    }
    if (outer) {
        atomic_init(&j.next_unit, 0);
        st_pool_run(pool, conv_task, &j, (int)tasks);
    } else {
        for (size_t u = 0; u < j.n_units; u++) {
            if (path == CONV_PATH_DEPTHWISE) {
                depthwise_unit(&j, u, j.buf);
            } else if (path == CONV_PATH_DIRECT && threads > 1) {
                direct_split d = { .j = &j };
                direct_at(&j, u, &d.x, &d.w, &d.bias, &d.y);
                if (j.is_padded) {
                    direct_pad(&j, d.x, j.buf);
                    d.x = j.buf;
                }
                atomic_store_explicit(&j.next_unit, 0, memory_order_relaxed);
                st_pool_run(pool, direct_split_task, &d, (int)(threads < j.n_chunks ? threads : j.n_chunks));
                direct_post(&j, d.y);
            } else if (path == CONV_PATH_DIRECT) {
                direct_unit(&j, u, j.buf);
            } else {
                gemm_unit(&j, u, j.buf, pool);
            }
        }
    }
    return ST_OK;
}

/* --- direct convolution (float64, ConvInteger) ---------------------------- */

/* y = sum (x - x_zero) * (w - w_zero[m]) + bias over the window; padding
 * contributes 0.  Slow but exact; only types without a fast path use it. */
#define DIRECT_CONV(NAME, TX, TW, TACC, TY)                                                                   \
    static void NAME(const conv_geom *g, const TX *x, const TW *w, const TY *bias, TY *y, TACC x_zero,        \
                     const TW *w_zero, size_t n_w_zero)                                                       \
    {                                                                                                         \
        size_t c_g = (size_t)(g->c_in / g->group), m_g = (size_t)(g->c_out / g->group);                       \
        size_t in_plane = conv_in_plane(g), kk = conv_kernel_size(g);                                          \
        const int64_t *in = g->in, *k = g->kernel, *s = g->stride, *d = g->dilation, *pb = g->pad_begin;      \
        for (size_t n = 0; n < (size_t)g->batch; n++)                                                         \
            for (size_t m = 0; m < (size_t)g->c_out; m++) {                                                   \
                const TX *xg = x + (n * (size_t)g->c_in + m / m_g * c_g) * in_plane;                          \
                const TW *wm = w + m * c_g * kk;                                                              \
                TACC wz = n_w_zero ? (TACC)w_zero[n_w_zero == 1 ? 0 : m] : 0;                                 \
                for (int64_t od = 0; od < g->out[0]; od++)                                                    \
                    for (int64_t oh = 0; oh < g->out[1]; oh++)                                                \
                        for (int64_t ow = 0; ow < g->out[2]; ow++) {                                          \
                            TACC acc = 0;                                                                     \
                            for (size_t c = 0; c < c_g; c++)                                                  \
                                for (int64_t a = 0; a < k[0]; a++) {                                          \
                                    int64_t id = od * s[0] - pb[0] + a * d[0];                                \
                                    if (id < 0 || id >= in[0])                                                \
                                        continue;                                                             \
                                    for (int64_t b = 0; b < k[1]; b++) {                                      \
                                        int64_t ih = oh * s[1] - pb[1] + b * d[1];                            \
                                        if (ih < 0 || ih >= in[1])                                            \
                                            continue;                                                         \
                                        for (int64_t e = 0; e < k[2]; e++) {                                  \
                                            int64_t iw = ow * s[2] - pb[2] + e * d[2];                        \
                                            if (iw < 0 || iw >= in[2])                                        \
                                                continue;                                                     \
                                            TACC xv = (TACC)xg[c * in_plane + (size_t)((id * in[1] + ih) *    \
                                                                                       in[2] + iw)];          \
                                            TACC wv = (TACC)wm[c * kk + (size_t)((a * k[1] + b) * k[2] + e)]; \
                                            acc += (xv - x_zero) * (wv - wz);                                 \
                                        }                                                                     \
                                    }                                                                         \
                                }                                                                             \
                            *y++ = (TY)acc + (bias ? bias[m] : 0);                                            \
                        }                                                                                     \
            }                                                                                                 \
    }

DIRECT_CONV(direct_conv_f64, double, double, double, double)
DIRECT_CONV(direct_conv_u8u8, uint8_t, uint8_t, int32_t, int32_t)
DIRECT_CONV(direct_conv_u8i8, uint8_t, int8_t, int32_t, int32_t)
DIRECT_CONV(direct_conv_i8u8, int8_t, uint8_t, int32_t, int32_t)
DIRECT_CONV(direct_conv_i8i8, int8_t, int8_t, int32_t, int32_t)

/* --- float16 through float32 ------------------------------------------------ */

st_status conv_run_via_f32(eng_kctx *k, st_status (*run)(eng_kctx *))
{
    enum { MAX_IO = 8 };
    if (k->n_in > MAX_IO || k->n_out > MAX_IO)
        return eng_fail(k, ST_EUNSUPPORTED, "too many inputs or outputs for float16");
    eng_tensor tin[MAX_IO], tout[MAX_IO];
    const eng_tensor *pin[MAX_IO];
    eng_tensor *pout[MAX_IO];
    for (uint32_t i = 0; i < k->n_in + k->n_out; i++) {
        bool is_in = i < k->n_in;
        const eng_tensor *t = is_in ? k->in[i] : k->out[i - k->n_in];
        eng_tensor *wide = is_in ? &tin[i] : &tout[i - k->n_in];
        if (is_in)
            pin[i] = t;
        else
            pout[i - k->n_in] = (eng_tensor *)t;
        if (!t || t->dtype != ST_DT_FLOAT16)
            continue;
        *wide = *t;
        wide->dtype = ST_DT_FLOAT32;
        float *data = st_arena_alloc(k->scratch, t->count ? t->count * sizeof(float) : 64, 64);
        if (!data)
            return eng_fail(k, ST_ENOMEM, "out of memory widening float16 to float32");
        wide->data = data;
        if (is_in) {
            const uint16_t *h = t->data;
            for (size_t e = 0; e < t->count; e++)
                data[e] = st_half_to_float(h[e]);
            pin[i] = wide;
        } else {
            pout[i - k->n_in] = wide;
        }
    }
    eng_kctx wk = *k;
    wk.in = pin;
    wk.out = pout;
    st_status s = run(&wk);
    if (s != ST_OK)
        return s;
    for (uint32_t o = 0; o < k->n_out; o++) {
        if (!k->out[o] || k->out[o]->dtype != ST_DT_FLOAT16)
            continue;
        const float *f = pout[o]->data;
        uint16_t *h = k->out[o]->data;
        for (size_t e = 0; e < k->out[o]->count; e++)
            h[e] = st_float_to_half(f[e]);
    }
    return ST_OK;
}

static bool any_f16(const eng_kctx *k)
{
    for (uint32_t i = 0; i < k->n_in; i++)
        if (k->in[i] && k->in[i]->dtype == ST_DT_FLOAT16)
            return true;
    return false;
}

/* --- Conv -------------------------------------------------------------------- */

static st_status fail_geom(const eng_kctx *k, st_status s, const st_error *e)
{
    return eng_fail(k, s, "%s", e->msg);
}

static bool is_float_type(st_dtype t)
{
    return t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64 || t == ST_DT_FLOAT16;
}

/* Checks X, W and the optional bias of Conv/ConvTranspose; m is the
 * output channel count the bias must match. */
static st_status check_inputs(const eng_kctx *k, int64_t m)
{
    const eng_tensor *x = k->in[0], *w = k->in[1];
    const eng_tensor *b = k->n_in > 2 ? k->in[2] : NULL;
    if (w->dtype != x->dtype || (b && b->dtype != x->dtype))
        return eng_fail(k, ST_ETYPE, "X (%s), W (%s) and B must have the same type", st_dtype_name(x->dtype),
                        st_dtype_name(w->dtype));
    if (b && (b->rank != 1 || b->shape[0] != m))
        return eng_fail(k, ST_ESHAPE, "B must be 1-D with %lld values (one per output channel)", (long long)m);
    return ST_OK;
}

static st_status conv_geom_of(const eng_kctx *k, conv_geom *g)
{
    const eng_tensor *x = k->in[0], *w = k->n_in > 1 ? k->in[1] : NULL;
    if (!x || !w)
        return eng_fail(k, ST_EINVAL, "inputs X and W are required");
    st_error e = { 0 };
    st_status s = conv_geom_conv(g, k->node->state, x->shape, x->rank, w->shape, w->rank, &e);
    return s == ST_OK ? ST_OK : fail_geom(k, s, &e);
}

static void out_shape_of(const conv_geom *g, int64_t *shape)
{
    shape[0] = g->batch;
    shape[1] = g->c_out;
    for (int i = 0; i < g->nsp; i++)
        shape[2 + i] = g->out[CONV_SP - g->nsp + i];
}

static st_status conv_infer(eng_kctx *k)
{
    conv_geom g;
    st_status s = conv_geom_of(k, &g);
    if (s != ST_OK)
        return s;
    if (!is_float_type(k->in[0]->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported (float32, float64, float16)",
                        st_dtype_name(k->in[0]->dtype));
    if ((s = check_inputs(k, g.c_out)) != ST_OK)
        return s;
    int64_t shape[ENG_MAX_RANK];
    out_shape_of(&g, shape);
    eng_set_shape(k->out[0], k->in[0]->dtype, shape, (uint32_t)g.nsp + 2);
    return ST_OK;
}

static st_status conv_run(eng_kctx *k)
{
    if (any_f16(k))
        return conv_run_via_f32(k, conv_run);
    conv_geom g;
    st_status s = conv_geom_of(k, &g);
    if (s != ST_OK)
        return s;
    const eng_tensor *b = k->n_in > 2 ? k->in[2] : NULL;
    if (k->in[0]->dtype == ST_DT_FLOAT64) {
        direct_conv_f64(&g, k->in[0]->data, k->in[1]->data, b ? b->data : NULL, k->out[0]->data, 0, NULL, 0);
        return ST_OK;
    }
    /* A fused activation (passes.c) runs on each output tile while it is
     * still in cache, instead of in a pass of its own afterwards. */
    const eng_post_op *post = &k->node->post;
    conv_act act = { .kind = CONV_ACT_NONE, .alpha = post->alpha, .beta = post->beta, .sum = NULL };
    switch (post->act) {
    case ENG_ACT_RELU: act.kind = CONV_ACT_RELU; break;
    case ENG_ACT_LEAKY_RELU: act.kind = CONV_ACT_LEAKY_RELU; break;
    case ENG_ACT_SIGMOID: act.kind = CONV_ACT_SIGMOID; break;
    case ENG_ACT_TANH: act.kind = CONV_ACT_TANH; break;
    case ENG_ACT_CLIP: act.kind = CONV_ACT_CLIP; break;
    case ENG_ACT_HARD_SIGMOID: act.kind = CONV_ACT_HARD_SIGMOID; break;
    case ENG_ACT_NONE: break;
    }
    bool fuse = act.kind != CONV_ACT_NONE && post->bias < 0;
    if (wino_applies(k, &g, fuse ? &act : NULL)) {
        if ((s = conv_wino(k, &g, b ? b->data : NULL, fuse)) != ST_OK)
            return eng_fail(k, s, "out of scratch memory");
        k->is_post_done = fuse;
        return ST_OK;
    }
    s = conv_f32_packed(&g, CONV_PATH_AUTO, k->in[0]->data, k->in[1]->data, packed_w_of(k), b ? b->data : NULL,
                        fuse ? &act : NULL, k->out[0]->data, k->scratch, k->pool);
    if (s != ST_OK)
        return eng_fail(k, s, "out of scratch memory");
    k->is_post_done = fuse;
    return ST_OK;
}

/* --- FusedConv (com.microsoft) ------------------------------------------------ */

/* Y = activation(Conv(X, W) + B + Z), as ONNX Runtime's graph optimiser
 * writes it (and as our own Conv + activation fusion can). */
static st_status fusedconv_infer(eng_kctx *k)
{
    st_status s = conv_infer(k);
    if (s != ST_OK)
        return s;
    if (k->in[0]->dtype != ST_DT_FLOAT32)
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported (float32)", st_dtype_name(k->in[0]->dtype));
    const eng_tensor *z = k->n_in > 3 ? k->in[3] : NULL, *y = k->out[0];
    if (z && (z->dtype != ST_DT_FLOAT32 || z->rank != y->rank || memcmp(z->shape, y->shape, y->rank * sizeof(int64_t))))
        return eng_fail(k, ST_ESHAPE, "Z must be float32 with the output's shape");
    return ST_OK;
}

static st_status fusedconv_run(eng_kctx *k)
{
    conv_geom g;
    st_status s = conv_geom_of(k, &g);
    if (s != ST_OK)
        return s;
    const conv_attrs *a = k->node->state;
    const eng_tensor *b = k->n_in > 2 ? k->in[2] : NULL, *z = k->n_in > 3 ? k->in[3] : NULL;
    conv_act act = { .kind = a->act, .alpha = a->act_alpha, .beta = a->act_beta, .sum = z ? z->data : NULL };
    s = conv_f32_packed(&g, CONV_PATH_AUTO, k->in[0]->data, k->in[1]->data, packed_w_of(k), b ? b->data : NULL,
                        &act, k->out[0]->data, k->scratch, k->pool);
    if (s != ST_OK)
        return eng_fail(k, s, "out of scratch memory");
    return ST_OK;
}

/* --- ConvInteger ------------------------------------------------------------- */

static bool is_8bit(st_dtype t)
{
    return t == ST_DT_UINT8 || t == ST_DT_INT8;
}

static st_status convint_infer(eng_kctx *k)
{
    conv_geom g;
    st_status s = conv_geom_of(k, &g);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0], *w = k->in[1];
    const eng_tensor *xz = k->n_in > 2 ? k->in[2] : NULL, *wz = k->n_in > 3 ? k->in[3] : NULL;
    if (!is_8bit(x->dtype) || !is_8bit(w->dtype))
        return eng_fail(k, ST_ETYPE, "X (%s) and W (%s) must be uint8 or int8", st_dtype_name(x->dtype),
                        st_dtype_name(w->dtype));
    if (xz && (xz->dtype != x->dtype || xz->count != 1))
        return eng_fail(k, ST_EINVAL, "x_zero_point must be one %s value", st_dtype_name(x->dtype));
    if (wz && (wz->dtype != w->dtype || (wz->count != 1 && (wz->rank != 1 || wz->shape[0] != g.c_out))))
        return eng_fail(k, ST_EINVAL, "w_zero_point must be one %s value or one per output channel (%lld)",
                        st_dtype_name(w->dtype), (long long)g.c_out);
    int64_t shape[ENG_MAX_RANK];
    out_shape_of(&g, shape);
    eng_set_shape(k->out[0], ST_DT_INT32, shape, (uint32_t)g.nsp + 2);
    return ST_OK;
}

static st_status convint_run(eng_kctx *k)
{
    conv_geom g;
    st_status s = conv_geom_of(k, &g);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0], *w = k->in[1];
    const eng_tensor *xz = k->n_in > 2 ? k->in[2] : NULL, *wz = k->n_in > 3 ? k->in[3] : NULL;
    int32_t x_zero = xz ? (int32_t)eng_int_at(xz, 0) : 0;
    size_t n_wz = wz ? wz->count : 0;
    const void *wzd = wz ? wz->data : NULL;
    int32_t *y = k->out[0]->data;
    bool xu = x->dtype == ST_DT_UINT8, wu = w->dtype == ST_DT_UINT8;
    if (xu && wu)
        direct_conv_u8u8(&g, x->data, w->data, NULL, y, x_zero, wzd, n_wz);
    else if (xu)
        direct_conv_u8i8(&g, x->data, w->data, NULL, y, x_zero, wzd, n_wz);
    else if (wu)
        direct_conv_i8u8(&g, x->data, w->data, NULL, y, x_zero, wzd, n_wz);
    else
        direct_conv_i8i8(&g, x->data, w->data, NULL, y, x_zero, wzd, n_wz);
    return ST_OK;
}

/* --- ConvTranspose ----------------------------------------------------------- */

/* Geometry of ConvTranspose in conv_geom terms: `in` is X's spatial size,
 * `out` is Y's; pads crop Y's full extent.  X [N, C, in...],
 * W [C, M/group, k...], Y [N, M, out...]. */
static st_status convtranspose_geom(const eng_kctx *k, conv_geom *g)
{
    const eng_tensor *x = k->in[0], *w = k->n_in > 1 ? k->in[1] : NULL;
    const conv_attrs *a = k->node->state;
    if (!x || !w)
        return eng_fail(k, ST_EINVAL, "inputs X and W are required");
    memset(g, 0, sizeof *g);
    if (x->rank < 3 || x->rank > 2 + CONV_SP)
        return eng_fail(k, x->rank < 3 ? ST_ESHAPE : ST_EUNSUPPORTED,
                        "X has rank %u (expected N x C x 1 to %d spatial dims)", x->rank, CONV_SP);
    if (w->rank != x->rank)
        return eng_fail(k, ST_ESHAPE, "W has rank %u but X has rank %u (expected equal)", w->rank, x->rank);
    int nsp = (int)x->rank - 2;
    if ((a->n_kernel && a->n_kernel != (size_t)nsp) || (a->n_out_pad && a->n_out_pad != (size_t)nsp) ||
        (a->n_out_shape && a->n_out_shape != (size_t)nsp && a->n_out_shape != (size_t)nsp + 2))
        return eng_fail(k, ST_EINVAL, "kernel_shape, output_padding and output_shape must have %d values", nsp);
    for (uint32_t i = 0; i < w->rank; i++)
        if (w->shape[i] > INT32_MAX || (i >= 2 && w->shape[i] < 1))
            return eng_fail(k, ST_EUNSUPPORTED, "W dimension %u is %lld (expected 1..%d)", i,
                            (long long)w->shape[i], INT32_MAX);
    int64_t c = x->shape[1];
    g->group = a->group;
    if (w->shape[0] != c || c % g->group)
        return eng_fail(k, ST_ESHAPE, "W has %lld input channels, X has %lld (expected equal, divisible by group %lld)",
                        (long long)w->shape[0], (long long)c, (long long)g->group);
    g->c_in = c;
    g->c_out = w->shape[1] * g->group;
    st_error e = { 0 };
    st_status s = geom_fill(g, a, x->shape, x->rank, w->shape + 2, &e);
    if (s != ST_OK)
        return fail_geom(k, s, &e);
    for (int i = 0; i < nsp; i++) {
        int j = CONV_SP - nsp + i;
        if (a->n_kernel && a->kernel[i] != g->kernel[j])
            return eng_fail(k, ST_ESHAPE, "kernel_shape[%d] is %lld but W has %lld", i, (long long)a->kernel[i],
                            (long long)g->kernel[j]);
        int64_t sd = g->stride[j], dk = (g->kernel[j] - 1) * g->dilation[j] + 1;
        int64_t op = a->n_out_pad ? a->out_pad[i] : 0;
        int64_t full = sd * (g->in[j] - 1) + op + dk; /* all < 2^63 */
        int64_t out, pb, pe;
        if (a->n_out_shape || a->auto_pad == CONV_PAD_SAME_UPPER || a->auto_pad == CONV_PAD_SAME_LOWER) {
            out = a->n_out_shape ? a->out_shape[a->n_out_shape - (size_t)nsp + (size_t)i] : g->in[j] * sd;
            int64_t total = full - out;
            if (total < 0) /* a larger output: the extra positions get only the bias */
                total = 0;
            pb = a->auto_pad == CONV_PAD_SAME_UPPER ? total / 2 : total - total / 2;
            pe = total - pb;
        } else {
            pb = a->auto_pad == CONV_PAD_VALID ? 0 : g->pad_begin[j];
            pe = a->auto_pad == CONV_PAD_VALID ? 0 : g->pad_end[j];
            out = full - pb - pe;
            if (out < 0)
                return eng_fail(k, ST_ESHAPE, "spatial axis %d: pads (%lld, %lld) exceed the output size %lld", i,
                                (long long)pb, (long long)pe, (long long)full);
        }
        if (out > INT32_MAX)
            return eng_fail(k, ST_EUNSUPPORTED, "spatial axis %d: output size %lld is above %d", i, (long long)out,
                            INT32_MAX);
        g->out[j] = out;
        g->pad_begin[j] = pb;
        g->pad_end[j] = pe;
    }
    size_t count;
    if (!eng_shape_count(g->out, CONV_SP, &count) || !eng_shape_count(g->in, CONV_SP, &count) ||
        !eng_shape_count(g->kernel, CONV_SP, &count) ||
        __builtin_mul_overflow(count, (size_t)(g->c_out / g->group), &count) || count > (SIZE_MAX >> 4))
        return eng_fail(k, ST_EOVERFLOW, "spatial sizes overflow");
    if (a->n_out_shape == (size_t)nsp + 2 && (a->out_shape[0] != g->batch || a->out_shape[1] != g->c_out))
        return eng_fail(k, ST_ESHAPE, "output_shape starts %lld x %lld but the output is %lld x %lld",
                        (long long)a->out_shape[0], (long long)a->out_shape[1], (long long)g->batch,
                        (long long)g->c_out);
    return ST_OK;
}

static st_status convtranspose_infer(eng_kctx *k)
{
    conv_geom g;
    st_status s = convtranspose_geom(k, &g);
    if (s != ST_OK)
        return s;
    if (k->in[0]->dtype != ST_DT_FLOAT32 && k->in[0]->dtype != ST_DT_FLOAT16)
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported (float32, float16)",
                        st_dtype_name(k->in[0]->dtype));
    if ((s = check_inputs(k, g.c_out)) != ST_OK)
        return s;
    int64_t shape[ENG_MAX_RANK];
    out_shape_of(&g, shape);
    eng_set_shape(k->out[0], k->in[0]->dtype, shape, (uint32_t)g.nsp + 2);
    return ST_OK;
}

/* Adds column-buffer rows (m, kd, kh, kw) x input positions of lines
 * [l0, l1) into one group's output planes. */
static void col2im_add(const conv_geom *g, const float *col, size_t l0, size_t l1, size_t m_g, float *y)
{
    const int64_t ih_n = g->in[1], iw_n = g->in[2];
    const int64_t od_n = g->out[0], oh_n = g->out[1], ow_n = g->out[2];
    const int64_t sw = g->stride[2];
    size_t ncols = (l1 - l0) * (size_t)iw_n, out_plane = conv_out_plane(g);
    for (size_t m = 0; m < m_g; m++) {
        float *ym = y + m * out_plane;
        for (int64_t kd = 0; kd < g->kernel[0]; kd++)
            for (int64_t kh = 0; kh < g->kernel[1]; kh++)
                for (int64_t kw = 0; kw < g->kernel[2]; kw++, col += ncols) {
                    /* Input columns [lo, hi) land inside the output row. */
                    int64_t off = kw * g->dilation[2] - g->pad_begin[2];
                    int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                    int64_t hi = off > ow_n - 1 ? 0 : (ow_n - 1 - off) / sw + 1;
                    if (hi > iw_n)
                        hi = iw_n;
                    if (lo > hi)
                        lo = hi;
                    const float *src = col;
                    for (size_t line = l0; line < l1; line++, src += iw_n) {
                        int64_t id = (int64_t)line / ih_n, ih = (int64_t)line % ih_n;
                        int64_t od = id * g->stride[0] - g->pad_begin[0] + kd * g->dilation[0];
                        int64_t oh = ih * g->stride[1] - g->pad_begin[1] + kh * g->dilation[1];
                        if (od < 0 || od >= od_n || oh < 0 || oh >= oh_n)
                            continue;
                        float *yr = ym + (od * oh_n + oh) * ow_n + off;
                        if (sw == 1 && hi > lo)
                            conv_vadd_f32(yr + lo, src + lo, (size_t)(hi - lo));
                        else
                            for (int64_t iw = lo; iw < hi; iw++)
                                yr[iw * sw] += src[iw];
                    }
                }
    }
}

static st_status convtranspose_run(eng_kctx *k)
{
    if (any_f16(k))
        return conv_run_via_f32(k, convtranspose_run);
    conv_geom g;
    st_status s = convtranspose_geom(k, &g);
    if (s != ST_OK)
        return s;
    const float *x = k->in[0]->data, *w = k->in[1]->data;
    const eng_tensor *bt = k->n_in > 2 ? k->in[2] : NULL;
    const float *bias = bt ? bt->data : NULL;
    float *y = k->out[0]->data;
    size_t c_g = (size_t)(g.c_in / g.group), m_g = (size_t)(g.c_out / g.group);
    size_t in_plane = conv_in_plane(&g), out_plane = conv_out_plane(&g), kk = conv_kernel_size(&g);
    size_t rows = m_g * kk, batch = (size_t)g.batch;
    for (size_t nm = 0; nm < batch * (size_t)g.c_out; nm++) {
        float v = bias ? bias[nm % (size_t)g.c_out] : 0.0f;
        for (size_t p = 0; p < out_plane; p++)
            y[nm * out_plane + p] = v;
    }
    if (!rows || !in_plane || !c_g || !out_plane)
        return ST_OK;
    size_t iw = (size_t)g.in[2], lines = (size_t)(g.in[0] * g.in[1]);
    size_t want_cols = IM2COL_TARGET_FLOATS / rows < GEMM_MIN_COLS ? GEMM_MIN_COLS : IM2COL_TARGET_FLOATS / rows;
    size_t lines_per_tile = (want_cols + iw - 1) / iw;
    if (lines_per_tile > lines)
        lines_per_tile = lines;
    size_t bytes;
    if (__builtin_mul_overflow(rows, lines_per_tile * iw, &bytes) ||
        __builtin_mul_overflow(bytes, sizeof(float), &bytes))
        return eng_fail(k, ST_EOVERFLOW, "column buffer size overflows");
    float *col = st_arena_alloc(k->scratch, bytes, 64);
    if (!col)
        return eng_fail(k, ST_ENOMEM, "out of memory for a %zu-byte column buffer", bytes);
    for (size_t n = 0; n < batch; n++)
        for (size_t grp = 0; grp < (size_t)g.group; grp++) {
            const float *xg = x + (n * (size_t)g.c_in + grp * c_g) * in_plane;
            const float *wg = w + grp * c_g * rows;
            float *yg = y + (n * (size_t)g.c_out + grp * m_g) * out_plane;
            for (size_t l0 = 0; l0 < lines; l0 += lines_per_tile) {
                size_t l1 = l0 + lines_per_tile < lines ? l0 + lines_per_tile : lines;
                size_t ncols = (l1 - l0) * iw;
                /* col = W_g^T (rows x c_g) * X_g (c_g x ncols) */
                eng_sgemm(rows, ncols, c_g, 1.0f, wg, rows, true, xg + l0 * iw, in_plane, false, 0.0f, col, ncols,
                          k->pool);
                col2im_add(&g, col, l0, l1, m_g, yg);
            }
        }
    return ST_OK;
}

/* --- the family's table ------------------------------------------------------ */

const eng_op eng_ops_conv[] = {
    { "", "Conv", 1, conv_check, conv_infer, conv_run },
    { "", "ConvTranspose", 1, conv_attrs_check, convtranspose_infer, convtranspose_run },
    { "", "ConvInteger", 10, conv_attrs_check, convint_infer, convint_run },
    { "com.microsoft", "FusedConv", 1, conv_check, fusedconv_infer, fusedconv_run },
    { "", "MaxPool", 1, conv_attrs_check, conv_maxpool_infer, conv_maxpool_run },
    { "", "AveragePool", 1, conv_attrs_check, conv_avgpool_infer, conv_avgpool_run },
    { "", "LpPool", 1, conv_attrs_check, conv_lppool_infer, conv_lppool_run },
    { "", "GlobalAveragePool", 1, conv_attrs_check, conv_global_infer, conv_global_avg_run },
    { "", "GlobalMaxPool", 1, conv_attrs_check, conv_global_infer, conv_global_max_run },
    { "", "GlobalLpPool", 1, conv_attrs_check, conv_global_infer, conv_global_lp_run },
    { "", "MaxUnpool", 9, conv_attrs_check, conv_maxunpool_infer, conv_maxunpool_run },
    { "", "RoiAlign", 10, conv_attrs_check, conv_roialign_infer, conv_roialign_run },
    { "", "MaxRoiPool", 1, conv_attrs_check, conv_maxroipool_infer, conv_maxroipool_run },
    { 0 },
};
