/* quant.c - linear quantisation (QuantizeLinear, DequantizeLinear,
 * DynamicQuantizeLinear) and the integer products (MatMulInteger,
 * QLinearMatMul, QLinearConv; ConvInteger is in conv.c).
 *
 * Products shift operands by their zero points into int32, multiply with
 * 32-bit wrapping accumulation (as the spec allows) and requantise with a
 * float multiplier, rounding half to even and saturating, as ONNX Runtime
 * does.  Convolutions go through im2col per image and group. */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/ops/misc_ops.h"

/* --- helpers ------------------------------------------------------------------ */

static bool is_q8(st_dtype t)
{
    return t == ST_DT_UINT8 || t == ST_DT_INT8;
}

static const eng_tensor *in_opt(const eng_kctx *k, uint32_t i)
{
    return i < k->n_in ? k->in[i] : NULL;
}

/* Element i of a uint8 / int8 / int32 tensor. */
static inline int32_t q_at(const eng_tensor *t, size_t i)
{
    switch (t->dtype) {
    case ST_DT_UINT8: return ((const uint8_t *)t->data)[i];
    case ST_DT_INT8: return ((const int8_t *)t->data)[i];
    case ST_DT_INT32: return ((const int32_t *)t->data)[i];
    default: return 0;
    }
}

/* round-half-even(v) + zp saturated to the 8-bit type; NaN gives zp. */
static inline int32_t q_saturate(float v, int32_t zp, st_dtype t)
{
    float lo = t == ST_DT_UINT8 ? 0.0f : -128.0f, hi = t == ST_DT_UINT8 ? 255.0f : 127.0f;
    float r = nearbyintf(v) + (float)zp;
    if (!(r >= lo)) /* also NaN */
        return r != r ? zp : (int32_t)lo;
    return r > hi ? (int32_t)hi : (int32_t)r;
}

static inline void q_store(eng_tensor *t, size_t i, int32_t v)
{
    if (t->dtype == ST_DT_UINT8)
        ((uint8_t *)t->data)[i] = (uint8_t)v;
    else
        ((int8_t *)t->data)[i] = (int8_t)v;
}

/* A scale or zero-point tensor that is per tensor (one value) or holds
 * `count` values. */
static bool is_scalar_like(const eng_tensor *t)
{
    return t->count == 1 && t->rank <= 1;
}

/* --- QuantizeLinear / DequantizeLinear ------------------------------------------- */

/* Validates scale / zero point against x for per-tensor or per-axis use
 * and returns the axis decomposition (outer x channels x inner). */
static st_status axis_params(const eng_kctx *k, const eng_tensor *x, const eng_tensor *scale, const eng_tensor *zp,
                             size_t *outer, size_t *channels, size_t *inner)
{
    if (scale->dtype != ST_DT_FLOAT32)
        return eng_fail(k, ST_EUNSUPPORTED, "scale of type %s is not supported (float32 expected)",
                        st_dtype_name(scale->dtype));
    if (zp && zp->count != scale->count)
        return eng_fail(k, ST_ESHAPE, "the zero point has %zu values and the scale %zu", zp->count, scale->count);
    *outer = x->count;
    *channels = 1;
    *inner = 1;
    if (is_scalar_like(scale))
        return ST_OK;
    if (k->node->opset < 13 || scale->rank != 1)
        return eng_fail(k, ST_ESHAPE, "the scale must be a scalar%s", k->node->opset < 13 ? "" : " or 1-D (per axis)");
    int axis;
    st_status s = eng_axis(k, eng_attr_int(k->node, "axis", 1), (int)x->rank, &axis);
    if (s != ST_OK)
        return s;
    if (scale->shape[0] != x->shape[axis])
        return eng_fail(k, ST_ESHAPE, "the scale has %lld values but axis %d has size %lld",
                        (long long)scale->shape[0], axis, (long long)x->shape[axis]);
    *outer = 1;
    for (int d = 0; d < axis; d++)
        *outer *= (size_t)x->shape[d];
    *channels = (size_t)x->shape[axis];
    for (uint32_t d = (uint32_t)axis + 1; d < x->rank; d++)
        *inner *= (size_t)x->shape[d];
    return ST_OK;
}

st_status op_quant_quantize_check(eng_node *n, st_arena *arena, st_error *err)
{
    (void)arena;
    if (n->n_inputs < 2)
        return st_fail(err, ST_ECORRUPT, "takes x and y_scale, has %u inputs", n->n_inputs);
    return ST_OK;
}

st_status op_quant_quantize_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *scale = k->in[1], *zp = in_opt(k, 2);
    if (!x || !scale)
        return eng_fail(k, ST_EINVAL, "x and y_scale are required");
    if (x->dtype != ST_DT_FLOAT32 && x->dtype != ST_DT_FLOAT16 && x->dtype != ST_DT_INT32)
        return eng_fail(k, ST_EUNSUPPORTED, "x of type %s is not supported", st_dtype_name(x->dtype));
    if (zp && !is_q8(zp->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "zero point of type %s is not supported (uint8 or int8)",
                        st_dtype_name(zp->dtype));
    size_t o, c, i;
    st_status s = axis_params(k, x, scale, zp, &o, &c, &i);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], zp ? zp->dtype : ST_DT_UINT8, x->shape, x->rank);
    return ST_OK;
}

st_status op_quant_quantize_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *scale = k->in[1], *zp = in_opt(k, 2);
    eng_tensor *y = k->out[0];
    size_t outer, channels, inner;
    axis_params(k, x, scale, zp, &outer, &channels, &inner);
    const float *sc = scale->data;
    size_t i = 0;
    for (size_t o = 0; o < outer; o++)
        for (size_t c = 0; c < channels; c++) {
            float s = sc[c];
            int32_t z = zp ? q_at(zp, c) : 0;
            for (size_t j = 0; j < inner; j++, i++) {
                float v;
                if (x->dtype == ST_DT_FLOAT32)
                    v = ((const float *)x->data)[i];
                else if (x->dtype == ST_DT_FLOAT16)
                    v = st_half_to_float(((const uint16_t *)x->data)[i]);
                else
                    v = (float)((const int32_t *)x->data)[i];
                q_store(y, i, q_saturate(v / s, z, y->dtype));
            }
        }
    return ST_OK;
}

st_status op_quant_dequantize_check(eng_node *n, st_arena *arena, st_error *err)
{
    return op_quant_quantize_check(n, arena, err);
}

st_status op_quant_dequantize_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *scale = k->in[1], *zp = in_opt(k, 2);
    if (!x || !scale)
        return eng_fail(k, ST_EINVAL, "x and x_scale are required");
    if (!is_q8(x->dtype) && x->dtype != ST_DT_INT32)
        return eng_fail(k, ST_EUNSUPPORTED, "x of type %s is not supported", st_dtype_name(x->dtype));
    if (zp && zp->dtype != x->dtype)
        return eng_fail(k, ST_ETYPE, "the zero point is %s but x is %s", st_dtype_name(zp->dtype),
                        st_dtype_name(x->dtype));
    size_t o, c, i;
    st_status s = axis_params(k, x, scale, zp, &o, &c, &i);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], ST_DT_FLOAT32, x->shape, x->rank);
    return ST_OK;
}

st_status op_quant_dequantize_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *scale = k->in[1], *zp = in_opt(k, 2);
    float *y = k->out[0]->data;
    size_t outer, channels, inner;
    axis_params(k, x, scale, zp, &outer, &channels, &inner);
    const float *sc = scale->data;
    size_t i = 0;
    for (size_t o = 0; o < outer; o++)
        for (size_t c = 0; c < channels; c++) {
            float s = sc[c];
            int32_t z = zp ? q_at(zp, c) : 0;
            if (x->dtype == ST_DT_UINT8) {
                const uint8_t *xd = (const uint8_t *)x->data + i;
                for (size_t j = 0; j < inner; j++)
                    y[i + j] = (float)((int32_t)xd[j] - z) * s;
            } else if (x->dtype == ST_DT_INT8) {
                const int8_t *xd = (const int8_t *)x->data + i;
                for (size_t j = 0; j < inner; j++)
                    y[i + j] = (float)((int32_t)xd[j] - z) * s;
            } else {
                const int32_t *xd = (const int32_t *)x->data + i;
                for (size_t j = 0; j < inner; j++)
                    y[i + j] = (float)((int64_t)xd[j] - z) * s;
            }
            i += inner;
        }
    return ST_OK;
}

/* --- DynamicQuantizeLinear ------------------------------------------------------------ */

st_status op_quant_dynamic_check(eng_node *n, st_arena *arena, st_error *err)
{
    (void)arena;
    (void)n;
    (void)err;
    return ST_OK;
}

st_status op_quant_dynamic_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (!x || x->dtype != ST_DT_FLOAT32)
        return eng_fail(k, ST_EUNSUPPORTED, "x must be float32");
    eng_set_shape(k->out[0], ST_DT_UINT8, x->shape, x->rank);
    if (k->n_out > 1 && k->out[1])
        eng_set_shape(k->out[1], ST_DT_FLOAT32, NULL, 0);
    if (k->n_out > 2 && k->out[2])
        eng_set_shape(k->out[2], ST_DT_UINT8, NULL, 0);
    return ST_OK;
}

/* The range always includes 0 so that 0 is exact; scale = range / 255,
 * zero point = round(-min / scale). */
st_status op_quant_dynamic_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    const float *xd = x->data;
    float lo = 0, hi = 0;
    for (size_t i = 0; i < x->count; i++) {
        lo = xd[i] < lo ? xd[i] : lo;
        hi = xd[i] > hi ? xd[i] : hi;
    }
    float scale = (hi - lo) / 255.0f;
    int32_t zp = 0;
    if (scale > 0 && isfinite(scale))
        zp = q_saturate((0.0f - lo) / scale, 0, ST_DT_UINT8);
    uint8_t *y = k->out[0]->data;
    for (size_t i = 0; i < x->count; i++)
        y[i] = scale > 0 ? (uint8_t)q_saturate(xd[i] / scale, zp, ST_DT_UINT8) : (uint8_t)zp;
    if (k->n_out > 1 && k->out[1])
        *(float *)k->out[1]->data = scale;
    if (k->n_out > 2 && k->out[2])
        *(uint8_t *)k->out[2]->data = (uint8_t)zp;
    return ST_OK;
}

/* --- integer matrix products ---------------------------------------------------------- */

/* c[j] += a * b[j]: fixed 16-wide strips and restrict parameters are
 * what GCC -O2 vectorises.  Unsigned so that overflow wraps. */
static inline void axpy_u32(uint32_t a, const uint32_t *restrict b, uint32_t *restrict c, size_t n)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int q = 0; q < 16; q++)
            c[j + (size_t)q] += a * b[j + (size_t)q];
    for (; j < n; j++)
        c[j] += a * b[j];
}

/* c = a (m x k) * b (k x n), int32 operands, wrapping int32 sums. */
static void igemm(size_t m, size_t n, size_t k, const int32_t *a, const int32_t *b, int32_t *c)
{
    for (size_t i = 0; i < m; i++) {
        uint32_t *ci = (uint32_t *)c + i * n;
        memset(ci, 0, n * sizeof *ci);
        for (size_t p = 0; p < k; p++) {
            uint32_t av = (uint32_t)a[i * k + p];
            if (av != 0)
                axpy_u32(av, (const uint32_t *)b + p * n, ci, n);
        }
    }
}

/* numpy matmul shapes: batch dims broadcast, 1-D operands promoted and
 * their unit dim dropped from the result. */
typedef struct mm_plan {
    size_t m, k, n;
    size_t batch;                     /* output matrices */
    uint32_t batch_rank;
    int64_t batch_dims[ENG_MAX_RANK];
    size_t a_stride[ENG_MAX_RANK], b_stride[ENG_MAX_RANK]; /* in matrices, 0 when broadcast */
    size_t a_mats, b_mats;
    int64_t out_shape[ENG_MAX_RANK];
    uint32_t out_rank;
} mm_plan;

static st_status mm_plan_make(const eng_kctx *k, const eng_tensor *a, const eng_tensor *b, mm_plan *p)
{
    memset(p, 0, sizeof *p);
    if (a->rank < 1 || b->rank < 1)
        return eng_fail(k, ST_ESHAPE, "matmul operands must have rank 1 or more");
    uint32_t ar = a->rank, br = b->rank;
    p->m = ar == 1 ? 1 : (size_t)a->shape[ar - 2];
    p->k = (size_t)a->shape[ar - 1];
    size_t kb = br == 1 ? (size_t)b->shape[0] : (size_t)b->shape[br - 2];
    p->n = br == 1 ? 1 : (size_t)b->shape[br - 1];
    if (p->k != kb)
        return eng_fail(k, ST_ESHAPE, "inner dimensions differ: A has K=%zu, B has K=%zu", p->k, kb);
    uint32_t a_batch = ar > 2 ? ar - 2 : 0, b_batch = br > 2 ? br - 2 : 0;
    p->batch_rank = a_batch > b_batch ? a_batch : b_batch;
    if (p->batch_rank + 2 > ENG_MAX_RANK)
        return eng_fail(k, ST_EUNSUPPORTED, "rank above %d", ENG_MAX_RANK);
    size_t acc_a = 1, acc_b = 1;
    p->batch = 1;
    for (int d = (int)p->batch_rank - 1; d >= 0; d--) {
        int ia = d - (int)(p->batch_rank - a_batch), ib = d - (int)(p->batch_rank - b_batch);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return eng_fail(k, ST_ESHAPE, "batch dimension %d does not broadcast (%lld vs %lld)", d, (long long)da,
                            (long long)db);
        p->batch_dims[d] = da == 1 ? db : da;
        p->a_stride[d] = da == 1 ? 0 : acc_a;
        p->b_stride[d] = db == 1 ? 0 : acc_b;
        acc_a *= (size_t)da;
        acc_b *= (size_t)db;
        p->batch *= (size_t)p->batch_dims[d];
    }
    p->a_mats = acc_a;
    p->b_mats = acc_b;
    for (uint32_t d = 0; d < p->batch_rank; d++)
        p->out_shape[p->out_rank++] = p->batch_dims[d];
    if (ar > 1)
        p->out_shape[p->out_rank++] = (int64_t)p->m;
    if (br > 1)
        p->out_shape[p->out_rank++] = (int64_t)p->n;
    size_t tmp;
    if (st_mul_overflow(p->m, p->k, &tmp) || st_mul_overflow(p->k, p->n, &tmp) || st_mul_overflow(p->m, p->n, &tmp))
        return eng_fail(k, ST_EOVERFLOW, "the product is too large");
    return ST_OK;
}

/* The A and B matrix indices of output matrix `i`. */
static void mm_indices(const mm_plan *p, size_t i, size_t *ai, size_t *bi)
{
    *ai = *bi = 0;
    for (int d = (int)p->batch_rank - 1; d >= 0; d--) {
        size_t c = i % (size_t)p->batch_dims[d];
        i /= (size_t)p->batch_dims[d];
        *ai += c * p->a_stride[d];
        *bi += c * p->b_stride[d];
    }
}

/* A quantisation parameter of a matmul operand: one value, one per row of
 * A (per column of B), or one per row of each A matrix ([..., M, 1]). */
static st_status mm_param_ok(const eng_kctx *k, const eng_tensor *t, const char *what, size_t per, size_t mats)
{
    if (!t || t->count == 1 || t->count == per || t->count == per * mats)
        return ST_OK;
    return eng_fail(k, ST_ESHAPE, "%s has %zu values; expected 1, %zu or %zu", what, t->count, per, per * mats);
}

static size_t mm_param_index(const eng_tensor *t, size_t mat, size_t per, size_t i)
{
    return t->count == 1 ? 0 : t->count == per ? i : mat * per + i;
}

/* Shifts matrix `mat` of a (rows x cols, the per-row parameter zp) and of b
 * (per column) into int32 scratch, multiplies, leaves the sums in acc. */
typedef struct mm_work {
    int32_t *a32, *b32, *acc;
} mm_work;

static st_status mm_work_alloc(eng_kctx *k, const mm_plan *p, mm_work *w)
{
    w->a32 = st_arena_alloc(k->scratch, p->m * p->k * sizeof(int32_t) + 1, 64);
    w->b32 = st_arena_alloc(k->scratch, p->k * p->n * sizeof(int32_t) + 1, 64);
    w->acc = st_arena_alloc(k->scratch, p->m * p->n * sizeof(int32_t) + 1, 64);
    if (!w->a32 || !w->b32 || !w->acc)
        return eng_fail(k, ST_ENOMEM, "out of scratch memory");
    return ST_OK;
}

static void mm_product(const mm_plan *p, const mm_work *w, const eng_tensor *a, const eng_tensor *azp,
                       const eng_tensor *b, const eng_tensor *bzp, size_t am, size_t bm)
{
    size_t a_off = am * p->m * p->k, b_off = bm * p->k * p->n;
    for (size_t i = 0; i < p->m; i++) {
        int32_t z = azp ? q_at(azp, mm_param_index(azp, am, p->m, i)) : 0;
        for (size_t j = 0; j < p->k; j++)
            w->a32[i * p->k + j] = q_at(a, a_off + i * p->k + j) - z;
    }
    for (size_t j = 0; j < p->n; j++) {
        int32_t z = bzp ? q_at(bzp, mm_param_index(bzp, bm, p->n, j)) : 0;
        for (size_t i = 0; i < p->k; i++)
            w->b32[i * p->n + j] = q_at(b, b_off + i * p->n + j) - z;
    }
    igemm(p->m, p->n, p->k, w->a32, w->b32, w->acc);
}

st_status op_quant_matmul_integer_check(eng_node *n, st_arena *arena, st_error *err)
{
    (void)arena;
    if (n->n_inputs < 2)
        return st_fail(err, ST_ECORRUPT, "takes A and B, has %u inputs", n->n_inputs);
    return ST_OK;
}

st_status op_quant_matmul_integer_infer(eng_kctx *k)
{
    const eng_tensor *a = k->in[0], *b = k->in[1], *azp = in_opt(k, 2), *bzp = in_opt(k, 3);
    if (!a || !b)
        return eng_fail(k, ST_EINVAL, "A and B are required");
    if (!is_q8(a->dtype) || !is_q8(b->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "A and B must be uint8 or int8, got %s and %s", st_dtype_name(a->dtype),
                        st_dtype_name(b->dtype));
    if ((azp && azp->dtype != a->dtype) || (bzp && bzp->dtype != b->dtype))
        return eng_fail(k, ST_ETYPE, "zero points must have the type of their operand");
    mm_plan p;
    st_status s = mm_plan_make(k, a, b, &p);
    if (s == ST_OK)
        s = mm_param_ok(k, azp, "a_zero_point", p.m, p.a_mats);
    if (s == ST_OK)
        s = mm_param_ok(k, bzp, "b_zero_point", p.n, p.b_mats);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], ST_DT_INT32, p.out_shape, p.out_rank);
    return ST_OK;
}

st_status op_quant_matmul_integer_run(eng_kctx *k)
{
    const eng_tensor *a = k->in[0], *b = k->in[1], *azp = in_opt(k, 2), *bzp = in_opt(k, 3);
    mm_plan p;
    mm_plan_make(k, a, b, &p);
    mm_work w;
    st_status s = mm_work_alloc(k, &p, &w);
    if (s != ST_OK)
        return s;
    int32_t *y = k->out[0]->data;
    for (size_t i = 0; i < p.batch; i++) {
        size_t am, bm;
        mm_indices(&p, i, &am, &bm);
        mm_product(&p, &w, a, azp, b, bzp, am, bm);
        memcpy(y + i * p.m * p.n, w.acc, p.m * p.n * sizeof *y);
    }
    return ST_OK;
}

st_status op_quant_qlinear_matmul_check(eng_node *n, st_arena *arena, st_error *err)
{
    (void)arena;
    if (n->n_inputs < 8)
        return st_fail(err, ST_ECORRUPT, "takes 8 inputs, has %u", n->n_inputs);
    return ST_OK;
}

st_status op_quant_qlinear_matmul_infer(eng_kctx *k)
{
    const eng_tensor *a = k->in[0], *as = k->in[1], *azp = k->in[2], *b = k->in[3], *bs = k->in[4],
                     *bzp = k->in[5], *ys = k->in[6], *yzp = k->in[7];
    if (!a || !as || !azp || !b || !bs || !bzp || !ys || !yzp)
        return eng_fail(k, ST_EINVAL, "all 8 inputs are required");
    if (!is_q8(a->dtype) || !is_q8(b->dtype) || !is_q8(yzp->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "a, b and y must be uint8 or int8");
    if (azp->dtype != a->dtype || bzp->dtype != b->dtype)
        return eng_fail(k, ST_ETYPE, "zero points must have the type of their operand");
    if (as->dtype != ST_DT_FLOAT32 || bs->dtype != ST_DT_FLOAT32 || ys->dtype != ST_DT_FLOAT32)
        return eng_fail(k, ST_EUNSUPPORTED, "scales must be float32");
    if (!is_scalar_like(ys) || !is_scalar_like(yzp))
        return eng_fail(k, ST_ESHAPE, "y_scale and y_zero_point must be scalars");
    mm_plan p;
    st_status s = mm_plan_make(k, a, b, &p);
    if (s == ST_OK)
        s = mm_param_ok(k, azp, "a_zero_point", p.m, p.a_mats);
    if (s == ST_OK)
        s = mm_param_ok(k, as, "a_scale", p.m, p.a_mats);
    if (s == ST_OK)
        s = mm_param_ok(k, bzp, "b_zero_point", p.n, p.b_mats);
    if (s == ST_OK)
        s = mm_param_ok(k, bs, "b_scale", p.n, p.b_mats);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], yzp->dtype, p.out_shape, p.out_rank);
    return ST_OK;
}

st_status op_quant_qlinear_matmul_run(eng_kctx *k)
{
    const eng_tensor *a = k->in[0], *as = k->in[1], *azp = k->in[2], *b = k->in[3], *bs = k->in[4],
                     *bzp = k->in[5], *ys = k->in[6], *yzp = k->in[7];
    eng_tensor *y = k->out[0];
    mm_plan p;
    mm_plan_make(k, a, b, &p);
    mm_work w;
    st_status s = mm_work_alloc(k, &p, &w);
    if (s != ST_OK)
        return s;
    const float *asd = as->data, *bsd = bs->data;
    float y_scale = *(const float *)ys->data;
    int32_t y_zp = q_at(yzp, 0);
    for (size_t i = 0; i < p.batch; i++) {
        size_t am, bm;
        mm_indices(&p, i, &am, &bm);
        mm_product(&p, &w, a, azp, b, bzp, am, bm);
        size_t base = i * p.m * p.n;
        for (size_t r = 0; r < p.m; r++) {
            float a_scale = asd[mm_param_index(as, am, p.m, r)];
            for (size_t c = 0; c < p.n; c++) {
                float mult = a_scale * bsd[mm_param_index(bs, bm, p.n, c)] / y_scale;
                q_store(y, base + r * p.n + c, q_saturate((float)w.acc[r * p.n + c] * mult, y_zp, y->dtype));
            }
        }
    }
    return ST_OK;
}

/* --- integer convolutions ------------------------------------------------------------ */

#define MAX_SPATIAL (ENG_MAX_RANK - 2)

typedef struct conv_geo {
    int n_spatial;
    size_t batch, channels, filters, group;
    size_t in[MAX_SPATIAL], out[MAX_SPATIAL], kernel[MAX_SPATIAL], stride[MAX_SPATIAL], dilation[MAX_SPATIAL];
    int64_t pad_begin[MAX_SPATIAL];
    size_t in_size, out_size, kernel_size; /* spatial products */
} conv_geo;

static const int64_t *ints_of_len(const eng_kctx *k, const char *name, size_t want, st_status *s)
{
    size_t n;
    const int64_t *v = eng_attr_ints(k->node, name, &n);
    if (v && n != want) {
        *s = eng_fail(k, ST_EINVAL, "%s has %zu values, expected %zu", name, n, want);
        return NULL;
    }
    return v;
}

/* Output geometry of Conv-style attributes (auto_pad, pads, strides,
 * dilations, group, kernel_shape) for x [N, C, D...] and w [M, C/group, k...]. */
static st_status conv_geometry(const eng_kctx *k, const eng_tensor *x, const eng_tensor *w, conv_geo *g)
{
    memset(g, 0, sizeof *g);
    if (x->rank < 3 || w->rank != x->rank)
        return eng_fail(k, ST_ESHAPE, "x must be [N, C, D1, ...] and w [M, C/group, k1, ...] of the same rank");
    int sp = (int)x->rank - 2;
    g->n_spatial = sp;
    g->batch = (size_t)x->shape[0];
    g->channels = (size_t)x->shape[1];
    g->filters = (size_t)w->shape[0];
    int64_t group = eng_attr_int(k->node, "group", 1);
    if (group <= 0 || g->filters % (size_t)group != 0 || (size_t)w->shape[1] * (size_t)group != g->channels)
        return eng_fail(k, ST_ESHAPE, "group %lld does not fit %zu input channels and %zu filters of %lld channels",
                        (long long)group, g->channels, g->filters, (long long)w->shape[1]);
    g->group = (size_t)group;
    st_status s = ST_OK;
    const int64_t *ks = ints_of_len(k, "kernel_shape", (size_t)sp, &s);
    const int64_t *strides = s == ST_OK ? ints_of_len(k, "strides", (size_t)sp, &s) : NULL;
    const int64_t *dil = s == ST_OK ? ints_of_len(k, "dilations", (size_t)sp, &s) : NULL;
    const int64_t *pads = s == ST_OK ? ints_of_len(k, "pads", 2 * (size_t)sp, &s) : NULL;
    if (s != ST_OK)
        return s;
    st_str auto_pad = eng_attr_str(k->node, "auto_pad", "NOTSET");
    bool same_upper = st_str_eq_c(auto_pad, "SAME_UPPER"), same_lower = st_str_eq_c(auto_pad, "SAME_LOWER");
    bool valid = st_str_eq_c(auto_pad, "VALID");
    if (!same_upper && !same_lower && !valid && !st_str_eq_c(auto_pad, "NOTSET"))
        return eng_fail(k, ST_EINVAL, "auto_pad '%.*s' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID",
                        (int)(auto_pad.len > 20 ? 20 : auto_pad.len), auto_pad.ptr);
    g->in_size = g->out_size = g->kernel_size = 1;
    for (int d = 0; d < sp; d++) {
        int64_t kd = w->shape[d + 2];
        if (ks && ks[d] != kd)
            return eng_fail(k, ST_ESHAPE, "kernel_shape[%d] is %lld but w has %lld", d, (long long)ks[d],
                            (long long)kd);
        int64_t st = strides ? strides[d] : 1, dl = dil ? dil[d] : 1;
        int64_t pb = pads ? pads[d] : 0, pe = pads ? pads[d + sp] : 0;
        /* Bounded so that the geometry below cannot overflow int64. */
        const int64_t lim = (int64_t)1 << 31;
        if (st <= 0 || dl <= 0 || pb < 0 || pe < 0 || kd <= 0 || st > lim || dl > lim || pb > lim || pe > lim ||
            kd > lim || x->shape[d + 2] > ((int64_t)1 << 40))
            return eng_fail(k, ST_EINVAL, "strides, dilations and kernel must be in [1, 2^31] and pads in [0, 2^31]");
        int64_t in = x->shape[d + 2], span = dl * (kd - 1) + 1, out;
        if (same_upper || same_lower) {
            out = (in + st - 1) / st;
            int64_t total = (out - 1) * st + span - in;
            total = total < 0 ? 0 : total;
            pb = same_upper ? total / 2 : total - total / 2;
        } else {
            if (valid)
                pb = pe = 0;
            if (in + pb + pe < span)
                return eng_fail(k, ST_ESHAPE, "spatial dimension %d (%lld padded by %lld+%lld) is smaller than the "
                                "dilated kernel (%lld)", d, (long long)in, (long long)pb, (long long)pe,
                                (long long)span);
            out = (in + pb + pe - span) / st + 1;
        }
        g->in[d] = (size_t)in;
        g->out[d] = (size_t)out;
        g->kernel[d] = (size_t)kd;
        g->stride[d] = (size_t)st;
        g->dilation[d] = (size_t)dl;
        g->pad_begin[d] = pb;
        g->in_size *= (size_t)in;
        g->kernel_size *= (size_t)kd;
        if (st_mul_overflow(g->out_size, (size_t)out, &g->out_size))
            return eng_fail(k, ST_EOVERFLOW, "the output is too large");
    }
    size_t tmp;
    if (st_mul_overflow(g->channels / g->group * g->kernel_size, g->out_size, &tmp) ||
        st_mul_overflow(tmp, sizeof(int32_t), &tmp))
        return eng_fail(k, ST_EOVERFLOW, "the convolution is too large");
    return ST_OK;
}

static void conv_out_shape(const conv_geo *g, int64_t *shape)
{
    shape[0] = (int64_t)g->batch;
    shape[1] = (int64_t)g->filters;
    for (int d = 0; d < g->n_spatial; d++)
        shape[d + 2] = (int64_t)g->out[d];
}

/* col[(c * K + kk) * out_size + o] = x[n][c0 + c][pos] - zp, 0 where pos
 * falls in the padding (padding holds the zero point). */
static void im2col(const conv_geo *g, const eng_tensor *x, int32_t zp, size_t n, size_t c0, size_t cg, int32_t *col)
{
    int sp = g->n_spatial;
    size_t last_out = g->out[sp - 1], last_in = g->in[sp - 1];
    size_t outer_out = g->out_size / last_out;
    for (size_t c = 0; c < cg; c++) {
        size_t x_base = (n * g->channels + c0 + c) * g->in_size;
        size_t kidx[MAX_SPATIAL] = { 0 };
        for (size_t kk = 0; kk < g->kernel_size; kk++) {
            int32_t *row = col + (c * g->kernel_size + kk) * g->out_size;
            size_t oidx[MAX_SPATIAL] = { 0 };
            for (size_t oo = 0; oo < outer_out; oo++) {
                /* Offset of the outer spatial dims, or out of bounds. */
                bool inside = true;
                size_t off = 0;
                for (int d = 0; d < sp - 1; d++) {
                    int64_t p = (int64_t)(oidx[d] * g->stride[d] + kidx[d] * g->dilation[d]) - g->pad_begin[d];
                    if (p < 0 || p >= (int64_t)g->in[d])
                        inside = false;
                    off = off * g->in[d] + (size_t)(p < 0 ? 0 : p);
                }
                int32_t *dst = row + oo * last_out;
                if (!inside) {
                    memset(dst, 0, last_out * sizeof *dst);
                } else {
                    size_t base = x_base + off * last_in;
                    int64_t p0 = (int64_t)(kidx[sp - 1] * g->dilation[sp - 1]) - g->pad_begin[sp - 1];
                    size_t st = g->stride[sp - 1];
                    for (size_t o = 0; o < last_out; o++) {
                        int64_t p = p0 + (int64_t)(o * st);
                        dst[o] = p < 0 || p >= (int64_t)last_in ? 0 : q_at(x, base + (size_t)p) - zp;
                    }
                }
                for (int d = sp - 2; d >= 0; d--) {
                    if (++oidx[d] < g->out[d])
                        break;
                    oidx[d] = 0;
                }
            }
            for (int d = sp - 1; d >= 0; d--) {
                if (++kidx[d] < g->kernel[d])
                    break;
                kidx[d] = 0;
            }
        }
    }
}

/* For every image and group: acc = (w - w_zp) * im2col(x - x_zp), then
 * `emit` writes the [filters/group x out_size] block of output. */
typedef void (*conv_emit)(eng_kctx *k, const conv_geo *g, size_t n, size_t m0, const int32_t *acc);

static st_status conv_integer_common(eng_kctx *k, const eng_tensor *x, const eng_tensor *xzp, const eng_tensor *w,
                                     const eng_tensor *wzp, conv_emit emit)
{
    conv_geo g;
    st_status s = conv_geometry(k, x, w, &g);
    if (s != ST_OK)
        return s;
    if (g.batch == 0 || g.out_size == 0 || g.filters == 0)
        return ST_OK;
    size_t cg = g.channels / g.group, mg = g.filters / g.group, kdim = cg * g.kernel_size;
    int32_t *col = st_arena_alloc(k->scratch, kdim * g.out_size * sizeof *col + 1, 64);
    int32_t *w32 = st_arena_alloc(k->scratch, g.filters * kdim * sizeof *w32 + 1, 64);
    int32_t *acc = st_arena_alloc(k->scratch, mg * g.out_size * sizeof *acc + 1, 64);
    if (!col || !w32 || !acc)
        return eng_fail(k, ST_ENOMEM, "out of scratch memory");
    for (size_t m = 0; m < g.filters; m++) {
        int32_t z = wzp ? q_at(wzp, wzp->count == 1 ? 0 : m) : 0;
        for (size_t i = 0; i < kdim; i++)
            w32[m * kdim + i] = q_at(w, m * kdim + i) - z;
    }
    int32_t x_zp = xzp ? q_at(xzp, 0) : 0;
    for (size_t n = 0; n < g.batch; n++)
        for (size_t gi = 0; gi < g.group; gi++) {
            im2col(&g, x, x_zp, n, gi * cg, cg, col);
            igemm(mg, g.out_size, kdim, w32 + gi * mg * kdim, col, acc);
            emit(k, &g, n, gi * mg, acc);
        }
    return ST_OK;
}

static st_status conv_check(eng_node *n, st_arena *arena, st_error *err, uint32_t min_inputs)
{
    (void)arena;
    if (n->n_inputs < min_inputs)
        return st_fail(err, ST_ECORRUPT, "takes at least %u inputs, has %u", min_inputs, n->n_inputs);
    return ST_OK;
}

st_status op_quant_qlinear_conv_check(eng_node *n, st_arena *arena, st_error *err)
{
    return conv_check(n, arena, err, 8);
}

st_status op_quant_qlinear_conv_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *xs = k->in[1], *xzp = k->in[2], *w = k->in[3], *ws = k->in[4],
                     *wzp = k->in[5], *ys = k->in[6], *yzp = k->in[7], *bias = in_opt(k, 8);
    if (!x || !xs || !xzp || !w || !ws || !wzp || !ys || !yzp)
        return eng_fail(k, ST_EINVAL, "inputs 1 to 8 are required");
    if (!is_q8(x->dtype) || !is_q8(w->dtype) || !is_q8(yzp->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "x, w and y must be uint8 or int8");
    if (xzp->dtype != x->dtype || wzp->dtype != w->dtype)
        return eng_fail(k, ST_ETYPE, "zero points must have the type of their operand");
    if (xs->dtype != ST_DT_FLOAT32 || ws->dtype != ST_DT_FLOAT32 || ys->dtype != ST_DT_FLOAT32)
        return eng_fail(k, ST_EUNSUPPORTED, "scales must be float32");
    if (!is_scalar_like(xs) || !is_scalar_like(xzp) || !is_scalar_like(ys) || !is_scalar_like(yzp))
        return eng_fail(k, ST_ESHAPE, "x and y scales and zero points must be scalars");
    conv_geo g;
    st_status s = conv_geometry(k, x, w, &g);
    if (s != ST_OK)
        return s;
    if ((ws->count != 1 && ws->count != g.filters) || (wzp->count != 1 && wzp->count != g.filters))
        return eng_fail(k, ST_ESHAPE, "w_scale and w_zero_point must have 1 or %zu values", g.filters);
    if (bias && (bias->dtype != ST_DT_INT32 || bias->count != g.filters))
        return eng_fail(k, ST_ESHAPE, "B must be int32 with %zu values", g.filters);
    int64_t shape[ENG_MAX_RANK];
    conv_out_shape(&g, shape);
    eng_set_shape(k->out[0], yzp->dtype, shape, x->rank);
    return ST_OK;
}

/* y = saturate(round((acc + B[m]) * x_scale * w_scale[m] / y_scale) + y_zp) */
static void emit_requant(eng_kctx *k, const conv_geo *g, size_t n, size_t m0, const int32_t *acc)
{
    const eng_tensor *xs = k->in[1], *ws = k->in[4], *ys = k->in[6], *yzp = k->in[7], *bias = in_opt(k, 8);
    eng_tensor *y = k->out[0];
    size_t mg = g->filters / g->group;
    float x_scale = *(const float *)xs->data, y_scale = *(const float *)ys->data;
    int32_t y_zp = q_at(yzp, 0);
    for (size_t mi = 0; mi < mg; mi++) {
        size_t m = m0 + mi;
        float mult = x_scale * ((const float *)ws->data)[ws->count == 1 ? 0 : m] / y_scale;
        int32_t b = bias ? ((const int32_t *)bias->data)[m] : 0;
        size_t base = (n * g->filters + m) * g->out_size;
        const int32_t *row = acc + mi * g->out_size;
        for (size_t o = 0; o < g->out_size; o++) {
            int32_t v = (int32_t)((uint32_t)row[o] + (uint32_t)b);
            q_store(y, base + o, q_saturate((float)v * mult, y_zp, y->dtype));
        }
    }
}

st_status op_quant_qlinear_conv_run(eng_kctx *k)
{
    return conv_integer_common(k, k->in[0], k->in[2], k->in[3], k->in[5], emit_requant);
}
