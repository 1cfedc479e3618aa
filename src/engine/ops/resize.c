/* resize.c - resampling operators: Resize (opsets 10, 11, 13), Upsample (7,
 * 9), DepthToSpace, SpaceToDepth and GridSample (16).  Their table entries
 * live in norm.c.
 *
 * Resize follows the ONNX reference implementation: per axis, each output
 * index maps back to a real input coordinate; nearest picks one input
 * element (a single gather over any element type), linear and cubic weight
 * 2 or 4 edge-clamped neighbours and run as separable 1-D passes from the
 * last axis to the first (the reference's nesting order), in float32
 * (float64 for float64 data). */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/ops/norm_int.h"

static size_t elem_size(st_dtype t)
{
    return t == ST_DT_STRING ? sizeof(st_str) : st_dtype_size(t);
}

static void *scratch_array(eng_kctx *k, size_t n, size_t size)
{
    size_t bytes;
    if (st_mul_overflow(n, size, &bytes))
        return NULL;
    return st_arena_alloc(k->scratch, bytes ? bytes : 1, 64);
}

/* --- Resize / Upsample: attributes ------------------------------------------- */

typedef enum { RS_NEAREST, RS_LINEAR, RS_CUBIC } rs_mode;
typedef enum { CT_HALF_PIXEL, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC, CT_TF_HALF_PIXEL_FOR_NN,
               CT_TF_CROP_AND_RESIZE } rs_coord;
/* NM_SIMPLE is what Resize-10 and Upsample did before nearest_mode
 * existed (as ONNX Runtime keeps it): floor when enlarging, ceil when
 * shrinking. */
typedef enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE } rs_nearest;
/* Where the scales come from: Upsample-7's attribute, input 1 (Upsample-9,
 * Resize-10), or Resize-11's (roi, scales, sizes) inputs. */
typedef enum { SRC_ATTR, SRC_INPUT1, SRC_RESIZE11 } rs_source;

typedef struct rs_state {
    rs_mode mode;
    rs_coord coord;
    rs_nearest nearest;
    rs_source source;
    double cubic_a;
    float extrapolation;
    bool exclude_outside;
    const float *attr_scales;
    size_t n_attr_scales;
} rs_state;

static bool parse_enum(st_str s, const char *const *names, int count, int *out)
{
    for (int i = 0; i < count; i++)
        if (st_str_eq_c(s, names[i])) {
            *out = i;
            return true;
        }
    return false;
}

st_status op_resize_check(eng_node *n, st_arena *arena, st_error *err)
{
    rs_state *st = st_arena_calloc(arena, 1, sizeof *st, 16);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    n->state = st;
    bool is_upsample = st_str_eq_c(n->proto->op_type, "Upsample");
    bool legacy = is_upsample || n->opset < 11;
    st_str mode = eng_attr_str(n, "mode", "nearest");
    if (st_str_eq_c(mode, "nearest"))
        st->mode = RS_NEAREST;
    else if (st_str_eq_c(mode, "linear") || (is_upsample && st_str_eq_c(mode, "bilinear")))
        st->mode = RS_LINEAR;
    else if (st_str_eq_c(mode, "cubic") && !legacy)
        st->mode = RS_CUBIC;
    else
        return st_fail(err, ST_EINVAL, "mode '%.*s' is not one of nearest, linear%s", ST_STR_FMT(mode),
                       legacy ? "" : ", cubic");
    st->cubic_a = -0.75;
    if (legacy) {
        st->coord = CT_ASYMMETRIC;
        st->nearest = NM_SIMPLE;
        if (is_upsample && n->opset < 9) {
            st->source = SRC_ATTR;
            st->attr_scales = eng_attr_floats(n, "scales", &st->n_attr_scales);
            if (!st->attr_scales)
                return st_fail(err, ST_ECORRUPT, "the scales attribute is required");
        } else {
            st->source = SRC_INPUT1;
            if (n->n_inputs < 2)
                return st_fail(err, ST_ECORRUPT, "takes X and scales; has %u inputs", n->n_inputs);
        }
        return ST_OK;
    }
    st->source = SRC_RESIZE11;
    static const char *const coords[] = { "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                          "tf_half_pixel_for_nn", "tf_crop_and_resize" };
    static const char *const nearests[] = { "round_prefer_floor", "round_prefer_ceil", "floor", "ceil" };
    st_str coord = eng_attr_str(n, "coordinate_transformation_mode", "half_pixel");
    st_str nearest = eng_attr_str(n, "nearest_mode", "round_prefer_floor");
    int v;
    if (!parse_enum(coord, coords, 6, &v))
        return st_fail(err, ST_EINVAL,
                       "coordinate_transformation_mode '%.*s' is not one of half_pixel, pytorch_half_pixel, "
                       "align_corners, asymmetric, tf_half_pixel_for_nn, tf_crop_and_resize",
                       ST_STR_FMT(coord));
    st->coord = (rs_coord)v;
    if (!parse_enum(nearest, nearests, 4, &v))
        return st_fail(err, ST_EINVAL,
                       "nearest_mode '%.*s' is not one of round_prefer_floor, round_prefer_ceil, floor, ceil",
                       ST_STR_FMT(nearest));
    st->nearest = (rs_nearest)v;
    st->cubic_a = eng_attr_float(n, "cubic_coeff_a", -0.75f);
    st->exclude_outside = eng_attr_int(n, "exclude_outside", 0) != 0;
    st->extrapolation = eng_attr_float(n, "extrapolation_value", 0.0f);
    /* Opset 18 additions this implementation does not do. */
    if (eng_attr_int(n, "antialias", 0) != 0)
        return st_fail(err, ST_EUNSUPPORTED, "antialias=1 is not supported");
    if (eng_attr_has(n, "axes"))
        return st_fail(err, ST_EUNSUPPORTED, "the axes attribute is not supported");
    if (!st_str_eq_c(eng_attr_str(n, "keep_aspect_ratio_policy", "stretch"), "stretch"))
        return st_fail(err, ST_EUNSUPPORTED, "keep_aspect_ratio_policy other than stretch is not supported");
    return ST_OK;
}

/* --- Resize: output shape and coordinate maps ---------------------------------- */

typedef struct rs_axis {
    int64_t in, out;
    double scale;   /* output / input, as the coordinate formulas use it */
    double out_len; /* "length_resized": in * scale when scales are given */
    double roi_start, roi_end;
} rs_axis;

/* An optional input, NULL when omitted or empty (Resize-11 passes empty
 * tensors for the unused one of scales / sizes). */
static const eng_tensor *opt_input(const eng_kctx *k, uint32_t i)
{
    const eng_tensor *t = i < k->n_in ? k->in[i] : NULL;
    return t && t->count ? t : NULL;
}

static st_status rs_plan(const eng_kctx *k, const eng_tensor *x, rs_axis *ax)
{
    const rs_state *st = k->node->state;
    int r = (int)x->rank;
    const eng_tensor *scales = NULL, *sizes = NULL, *roi = NULL;
    if (st->source == SRC_ATTR) {
        if (st->n_attr_scales != (size_t)r)
            return eng_fail(k, ST_ESHAPE, "scales has %zu values; expected X's rank %d", st->n_attr_scales, r);
    } else if (st->source == SRC_INPUT1) {
        scales = k->n_in > 1 ? k->in[1] : NULL;
        if (!scales)
            return eng_fail(k, ST_EINVAL, "the scales input is required");
    } else {
        roi = opt_input(k, 1);
        scales = opt_input(k, 2);
        sizes = opt_input(k, 3);
        if (scales && sizes)
            return eng_fail(k, ST_EINVAL, "scales and sizes are both given; give exactly one");
        if (!scales && !sizes)
            return eng_fail(k, ST_EINVAL, "needs scales or sizes (both are empty or missing)");
    }
    if (scales && (!norm_is_float(scales->dtype) || scales->count != (size_t)r))
        return eng_fail(k, ST_ESHAPE, "scales must be %d floats (X's rank); got %zu of type %s", r, scales->count,
                        st_dtype_name(scales->dtype));
    if (sizes && (sizes->dtype != ST_DT_INT64 || sizes->count != (size_t)r))
        return eng_fail(k, ST_ESHAPE, "sizes must be %d int64 values (X's rank); got %zu of type %s", r,
                        sizes->count, st_dtype_name(sizes->dtype));
    bool want_roi = st->coord == CT_TF_CROP_AND_RESIZE;
    if (want_roi && roi && (!norm_is_float(roi->dtype) || roi->count != 2 * (size_t)r))
        return eng_fail(k, ST_ESHAPE, "roi must be %d floats (starts then ends per axis); got %zu", 2 * r,
                        roi->count);
    for (int d = 0; d < r; d++) {
        rs_axis *a = &ax[d];
        a->in = x->shape[d];
        if (sizes) {
            int64_t out = ((const int64_t *)sizes->data)[d];
            if (out < 0)
                return eng_fail(k, ST_ESHAPE, "sizes[%d] is %lld", d, (long long)out);
            if (a->in == 0 && out != 0)
                return eng_fail(k, ST_ESHAPE, "axis %d is empty and cannot be resized to %lld", d, (long long)out);
            a->out = out;
            a->scale = a->in ? (double)out / (double)a->in : 1.0;
            a->out_len = (double)out;
        } else {
            double s = scales ? eng_num_at(scales, (size_t)d) : st->attr_scales[d];
            if (!(s > 0) || !isfinite(s))
                return eng_fail(k, ST_EINVAL, "scale %g on axis %d is not a positive number", s, d);
            double out = floor((double)a->in * s);
            if (out > 1e15)
                return eng_fail(k, ST_EOVERFLOW, "axis %d would have %g elements", d, out);
            a->out = (int64_t)out;
            a->scale = s;
            a->out_len = (double)a->in * s;
        }
        a->roi_start = want_roi && roi ? eng_num_at(roi, (size_t)d) : 0.0;
        a->roi_end = want_roi && roi ? eng_num_at(roi, (size_t)(r + d)) : 1.0;
    }
    return ST_OK;
}

st_status op_resize_infer(eng_kctx *k)
{
    const rs_state *st = k->node->state;
    const eng_tensor *x = k->n_in ? k->in[0] : NULL;
    if (!x)
        return eng_fail(k, ST_EINVAL, "input X is required");
    if (x->rank == 0)
        return eng_fail(k, ST_ESHAPE, "X is a scalar; it needs rank >= 1");
    st_dtype t = x->dtype;
    if (elem_size(t) == 0 ||
        (st->mode != RS_NEAREST && (t == ST_DT_STRING || t == ST_DT_BOOL)))
        return eng_fail(k, ST_ETYPE, "type %s is not supported in this mode", st_dtype_name(t));
    rs_axis ax[ENG_MAX_RANK];
    st_status s = rs_plan(k, x, ax);
    if (s != ST_OK)
        return s;
    int64_t shape[ENG_MAX_RANK];
    for (uint32_t d = 0; d < x->rank; d++)
        shape[d] = ax[d].out;
    eng_set_shape(k->out[0], t, shape, x->rank);
    return ST_OK;
}

static double rs_source_coord(const rs_state *st, const rs_axis *a, int64_t o)
{
    double x = (double)o, s = a->scale, len_in = (double)a->in;
    switch (st->coord) {
    case CT_HALF_PIXEL: return (x + 0.5) / s - 0.5;
    case CT_PYTORCH_HALF_PIXEL: return a->out_len > 1 ? (x + 0.5) / s - 0.5 : 0.0;
    case CT_ALIGN_CORNERS: return a->out_len == 1 ? 0.0 : x * (len_in - 1) / (a->out_len - 1);
    case CT_ASYMMETRIC: return x / s;
    case CT_TF_HALF_PIXEL_FOR_NN: return (x + 0.5) / s;
    case CT_TF_CROP_AND_RESIZE:
        if (a->out_len > 1)
            return a->roi_start * (len_in - 1) + x * (a->roi_end - a->roi_start) * (len_in - 1) / (a->out_len - 1);
        return 0.5 * (a->roi_start + a->roi_end) * (len_in - 1);
    }
    return x;
}

/* For each output index along one axis: `n` input indices (clamped into
 * the axis) and their weights, or a flag to write extrapolation_value. */
typedef struct rs_taps {
    int n;
    int64_t *idx;
    double *w;
    uint8_t *extrap;
    bool identity; /* output o is exactly input o for every o */
} rs_taps;

static void cubic_coeffs(double r, double a, double *c)
{
    double s = 1 - r;
    c[0] = ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a;
    c[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
    c[2] = ((a + 2) * s - (a + 3)) * s * s + 1;
    c[3] = ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a;
}

static void rs_build_taps(const rs_state *st, const rs_axis *a, rs_taps *t)
{
    int n = t->n;
    int64_t last = a->in - 1;
    t->identity = a->in == a->out;
    for (int64_t o = 0; o < a->out; o++) {
        int64_t *ix = t->idx + o * n;
        double *w = t->w + o * n;
        double x = rs_source_coord(st, a, o);
        t->extrap[o] = st->coord == CT_TF_CROP_AND_RESIZE && (x < 0 || x > (double)last);
        if (t->extrap[o]) {
            for (int j = 0; j < n; j++) {
                ix[j] = 0;
                w[j] = 0;
            }
            t->identity = false;
            continue;
        }
        /* Keep x in a range where the integer conversions are defined. */
        if (!(x > -1e12))
            x = -1e12;
        if (x > 1e12)
            x = 1e12;
        double fl = floor(x), frac = x - fl;
        if (st->mode == RS_NEAREST) {
            double pick = fl;
            switch (st->nearest) {
            case NM_ROUND_PREFER_FLOOR: pick = frac <= 0.5 ? fl : fl + 1; break;
            case NM_ROUND_PREFER_CEIL: pick = frac < 0.5 ? fl : fl + 1; break;
            case NM_FLOOR: pick = fl; break;
            case NM_CEIL: pick = ceil(x); break;
            case NM_SIMPLE: pick = a->scale < 1 ? ceil(x) : fl; break;
            }
            int64_t i = (int64_t)pick;
            ix[0] = i < 0 ? 0 : i > last ? last : i;
            w[0] = 1;
        } else {
            int64_t base = (int64_t)fl;
            double c[4];
            if (st->mode == RS_LINEAR) {
                c[0] = 1 - frac;
                c[1] = frac;
            } else {
                base -= 1;
                cubic_coeffs(frac, st->cubic_a, c);
            }
            /* exclude_outside: taps past the edges get weight 0 and the
             * rest are renormalised to sum to 1. */
            if (st->exclude_outside) {
                double sum = 0;
                for (int j = 0; j < n; j++) {
                    if (base + j < 0 || base + j > last)
                        c[j] = 0;
                    sum += c[j];
                }
                if (sum != 0)
                    for (int j = 0; j < n; j++)
                        c[j] /= sum;
            }
            for (int j = 0; j < n; j++) {
                int64_t i = base + j;
                ix[j] = i < 0 ? 0 : i > last ? last : i;
                w[j] = c[j];
            }
        }
        double self = 0;
        for (int j = 0; j < n; j++) {
            if (ix[j] == o)
                self += w[j];
            else if (w[j] != 0)
                t->identity = false;
        }
        if (self != 1)
            t->identity = false;
    }
}

/* --- Resize: nearest (one gather pass, any element type) ------------------------ */

/* The extrapolation value as one element of `t` (strings: empty). */
static void rs_extrap_bytes(st_dtype t, double v, void *out)
{
    memset(out, 0, 16);
    switch (t) {
    case ST_DT_FLOAT32: *(float *)out = (float)v; break;
    case ST_DT_FLOAT64: *(double *)out = v; break;
    case ST_DT_FLOAT16: *(uint16_t *)out = st_float_to_half((float)v); break;
    case ST_DT_INT8: *(int8_t *)out = (int8_t)fmax(-128, fmin(127, v)); break;
    case ST_DT_UINT8: *(uint8_t *)out = (uint8_t)fmax(0, fmin(255, v)); break;
    case ST_DT_INT16: *(int16_t *)out = (int16_t)fmax(-32768, fmin(32767, v)); break;
    case ST_DT_UINT16: *(uint16_t *)out = (uint16_t)fmax(0, fmin(65535, v)); break;
    case ST_DT_INT32: *(int32_t *)out = (int32_t)fmax(-2147483648.0, fmin(2147483647.0, v)); break;
    case ST_DT_UINT32: *(uint32_t *)out = (uint32_t)fmax(0, fmin(4294967295.0, v)); break;
    case ST_DT_INT64: *(int64_t *)out = (int64_t)fmax(-9.2e18, fmin(9.2e18, v)); break;
    case ST_DT_UINT64: *(uint64_t *)out = (uint64_t)fmax(0, fmin(1.8e19, v)); break;
    case ST_DT_BOOL: *(uint8_t *)out = v != 0; break;
    default: break;
    }
}

typedef struct rs_near_job {
    const eng_tensor *x;
    eng_tensor *y;
    const rs_taps *taps;
    size_t es, inner;
    size_t in_stride[ENG_MAX_RANK];
    _Alignas(16) unsigned char extrap[16]; /* extrapolation_value as one element */
} rs_near_job;

/* Output rows (all dims but the last) [begin, end). */
static void rs_nearest_rows(void *ctx, size_t begin, size_t end, int task)
{
    (void)task;
    const rs_near_job *job = ctx;
    const eng_tensor *y = job->y;
    int r = (int)y->rank;
    const rs_taps *taps = job->taps, *tl = &taps[r - 1];
    size_t es = job->es, inner = job->inner;
    size_t idx[ENG_MAX_RANK] = { 0 }, rem = begin;
    for (int d = r - 2; d >= 0; d--) {
        idx[d] = rem % (size_t)y->shape[d];
        rem /= (size_t)y->shape[d];
    }
    const char *src = job->x->data;
    char *dst = job->y->data;
    for (size_t row = begin; row < end; row++) {
        size_t off = 0;
        bool row_extrap = false;
        for (int d = 0; d < r - 1; d++) {
            off += (size_t)taps[d].idx[idx[d]] * job->in_stride[d];
            row_extrap |= taps[d].extrap[idx[d]] != 0;
        }
        char *out = dst + row * inner * es;
        const char *in = src + off * es;
        if (es == 4 && !row_extrap) {
            uint32_t ev;
            memcpy(&ev, job->extrap, sizeof ev);
            for (size_t j = 0; j < inner; j++)
                ((uint32_t *)out)[j] = tl->extrap[j] ? ev : ((const uint32_t *)in)[tl->idx[j]];
        } else {
            for (size_t j = 0; j < inner; j++) {
                bool e = row_extrap || tl->extrap[j];
                memcpy(out + j * es, e ? (const char *)job->extrap : in + (size_t)tl->idx[j] * es, es);
            }
        }
        for (int d = r - 2; d >= 0; d--) {
            if (++idx[d] < (size_t)y->shape[d])
                break;
            idx[d] = 0;
        }
    }
}

static void rs_nearest_run(eng_kctx *k, const eng_tensor *x, eng_tensor *y, const rs_taps *taps,
                           float extrapolation)
{
    int r = (int)x->rank;
    rs_near_job job = { .x = x, .y = y, .taps = taps, .es = elem_size(x->dtype) };
    rs_extrap_bytes(x->dtype, extrapolation, job.extrap);
    size_t acc = 1;
    for (int d = r - 1; d >= 0; d--) {
        job.in_stride[d] = acc;
        acc *= (size_t)x->shape[d];
    }
    job.inner = (size_t)y->shape[r - 1];
    size_t rows = y->count / job.inner;
    norm_par_run(k, norm_par_tasks(k, rows, job.inner), rows, rs_nearest_rows, &job);
}

/* --- Resize: linear / cubic (separable passes) --------------------------------------- */

/* One pass along an axis: src [outer, in, inner] -> dst [outer, out, inner],
 * one row per (outer, out) pair. */
typedef struct rs_pass_job {
    const void *src;
    void *dst;
    size_t in, out, inner;
    const rs_taps *taps;
    double extrapolation;
} rs_pass_job;

static void rs_pass_rows_f32(void *ctx, size_t begin, size_t end, int task)
{
    (void)task;
    const rs_pass_job *job = ctx;
    const rs_taps *t = job->taps;
    size_t n = (size_t)t->n, inner = job->inner;
    for (size_t row = begin; row < end; row++) {
        size_t o = row / job->out, p = row % job->out;
        const float *s = (const float *)job->src + o * job->in * inner;
        float *dp = (float *)job->dst + row * inner;
        const int64_t *ix = t->idx + p * n;
        const double *w = t->w + p * n;
        if (t->extrap[p]) {
            for (size_t i = 0; i < inner; i++)
                dp[i] = (float)job->extrapolation;
        } else if (inner == 1) {
            float acc = 0;
            for (size_t j = 0; j < n; j++)
                acc += (float)w[j] * s[ix[j]];
            dp[0] = acc;
        } else {
            norm_scale_f32(dp, s + (size_t)ix[0] * inner, (float)w[0], inner);
            for (size_t j = 1; j < n; j++)
                if (w[j] != 0)
                    norm_axpy_f32(dp, s + (size_t)ix[j] * inner, (float)w[j], inner);
        }
    }
}

static void rs_pass_rows_f64(void *ctx, size_t begin, size_t end, int task)
{
    (void)task;
    const rs_pass_job *job = ctx;
    const rs_taps *t = job->taps;
    size_t n = (size_t)t->n, inner = job->inner;
    for (size_t row = begin; row < end; row++) {
        size_t o = row / job->out, p = row % job->out;
        const double *s = (const double *)job->src + o * job->in * inner;
        double *dp = (double *)job->dst + row * inner;
        const int64_t *ix = t->idx + p * n;
        const double *w = t->w + p * n;
        for (size_t i = 0; i < inner; i++) {
            double acc = 0;
            for (size_t j = 0; j < n; j++)
                acc += w[j] * s[(size_t)ix[j] * inner + i];
            dp[i] = t->extrap[p] ? job->extrapolation : acc;
        }
    }
}

/* Converts a numeric tensor to float (float32 work buffers). */
#define LOAD_AS_FLOAT(T)                            \
    for (size_t i = 0; i < x->count; i++)           \
        dst[i] = (float)((const T *)x->data)[i];
static void to_float(const eng_tensor *x, float *dst)
{
    switch (x->dtype) {
    case ST_DT_FLOAT16:
        for (size_t i = 0; i < x->count; i++)
            dst[i] = st_half_to_float(((const uint16_t *)x->data)[i]);
        break;
    case ST_DT_INT8: LOAD_AS_FLOAT(int8_t) break;
    case ST_DT_UINT8: LOAD_AS_FLOAT(uint8_t) break;
    case ST_DT_INT16: LOAD_AS_FLOAT(int16_t) break;
    case ST_DT_UINT16: LOAD_AS_FLOAT(uint16_t) break;
    case ST_DT_INT32: LOAD_AS_FLOAT(int32_t) break;
    case ST_DT_UINT32: LOAD_AS_FLOAT(uint32_t) break;
    case ST_DT_INT64: LOAD_AS_FLOAT(int64_t) break;
    case ST_DT_UINT64: LOAD_AS_FLOAT(uint64_t) break;
    default: break;
    }
}
#undef LOAD_AS_FLOAT

/* Writes a float work buffer into an output of another numeric type:
 * integers are rounded to nearest and saturated (NaN gives 0). */
#define STORE_INT(T, LO, HI)                                                             \
    for (size_t i = 0; i < n; i++) {                                                     \
        double v = rint(src[i]);                                                         \
        ((T *)y->data)[i] = (T)(v != v ? 0 : v < (LO) ? (LO) : v > (HI) ? (HI) : v);     \
    }
static void from_float(const float *src, eng_tensor *y)
{
    size_t n = y->count;
    switch (y->dtype) {
    case ST_DT_FLOAT16:
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)y->data)[i] = st_float_to_half(src[i]);
        break;
    case ST_DT_INT8: STORE_INT(int8_t, -128.0, 127.0) break;
    case ST_DT_UINT8: STORE_INT(uint8_t, 0.0, 255.0) break;
    case ST_DT_INT16: STORE_INT(int16_t, -32768.0, 32767.0) break;
    case ST_DT_UINT16: STORE_INT(uint16_t, 0.0, 65535.0) break;
    case ST_DT_INT32: STORE_INT(int32_t, -2147483648.0, 2147483647.0) break;
    case ST_DT_UINT32: STORE_INT(uint32_t, 0.0, 4294967295.0) break;
    case ST_DT_INT64: STORE_INT(int64_t, -9223372036854775808.0, 9223372036854774784.0) break;
    case ST_DT_UINT64: STORE_INT(uint64_t, 0.0, 18446744073709549568.0) break;
    default: break;
    }
}
#undef STORE_INT

static st_status rs_interp_run(eng_kctx *k, const eng_tensor *x, eng_tensor *y, const rs_axis *ax,
                               const rs_taps *taps)
{
    const rs_state *st = k->node->state;
    int r = (int)x->rank;
    bool is_f64 = x->dtype == ST_DT_FLOAT64;
    size_t es = is_f64 ? sizeof(double) : sizeof(float);
    int last_pass = -1;
    for (int d = 0; d < r && last_pass < 0; d++)
        if (!taps[d].identity)
            last_pass = d;
    const void *cur = x->data;
    if (!is_f64 && x->dtype != ST_DT_FLOAT32) {
        float *f = scratch_array(k, x->count, sizeof *f);
        if (!f)
            return eng_fail(k, ST_ENOMEM, "out of memory converting X");
        to_float(x, f);
        cur = f;
    }
    bool direct_out = y->dtype == x->dtype && (is_f64 || x->dtype == ST_DT_FLOAT32);
    if (last_pass < 0) {
        /* Every axis maps onto itself. */
        if (direct_out)
            memcpy(y->data, cur, y->count * es);
        else
            from_float(cur, y);
        return ST_OK;
    }
    int64_t shape[ENG_MAX_RANK];
    memcpy(shape, x->shape, (size_t)r * sizeof *shape);
    for (int d = r - 1; d >= 0; d--) {
        if (taps[d].identity)
            continue;
        size_t outer = 1, inner = 1, elems;
        for (int i = 0; i < d; i++)
            outer *= (size_t)shape[i];
        for (int i = d + 1; i < r; i++)
            inner *= (size_t)shape[i];
        shape[d] = ax[d].out;
        if (!eng_shape_count(shape, (uint32_t)r, &elems))
            return eng_fail(k, ST_EOVERFLOW, "an intermediate of the resize is too large");
        void *dst = d == last_pass && direct_out ? y->data : scratch_array(k, elems, es);
        if (!dst)
            return eng_fail(k, ST_ENOMEM, "out of memory for an intermediate of %zu elements", elems);
        rs_pass_job job = { .src = cur, .dst = dst, .in = (size_t)ax[d].in, .out = (size_t)ax[d].out,
                            .inner = inner, .taps = &taps[d], .extrapolation = st->extrapolation };
        size_t rows = outer * job.out;
        norm_par_run(k, norm_par_tasks(k, rows, inner * (size_t)taps[d].n), rows,
                     is_f64 ? rs_pass_rows_f64 : rs_pass_rows_f32, &job);
        cur = dst;
    }
    if (cur != y->data)
        from_float(cur, y);
    return ST_OK;
}

st_status op_resize_run(eng_kctx *k)
{
    const rs_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    eng_tensor *y = k->out[0];
    if (y->count == 0)
        return ST_OK;
    int r = (int)x->rank;
    rs_axis ax[ENG_MAX_RANK];
    st_status s = rs_plan(k, x, ax);
    if (s != ST_OK)
        return s;
    rs_taps taps[ENG_MAX_RANK];
    int n = st->mode == RS_NEAREST ? 1 : st->mode == RS_LINEAR ? 2 : 4;
    for (int d = 0; d < r; d++) {
        size_t out = (size_t)ax[d].out, per;
        taps[d].n = n;
        if (st_mul_overflow(out, (size_t)n, &per))
            return eng_fail(k, ST_EOVERFLOW, "axis %d is too long", d);
        taps[d].idx = scratch_array(k, per, sizeof(int64_t));
        taps[d].w = scratch_array(k, per, sizeof(double));
        taps[d].extrap = scratch_array(k, out, 1);
        if (!taps[d].idx || !taps[d].w || !taps[d].extrap)
            return eng_fail(k, ST_ENOMEM, "out of memory for the coordinate maps");
        rs_build_taps(st, &ax[d], &taps[d]);
    }
    if (st->mode == RS_NEAREST) {
        rs_nearest_run(k, x, y, taps, st->extrapolation);
        return ST_OK;
    }
    return rs_interp_run(k, x, y, ax, taps);
}

/* --- DepthToSpace / SpaceToDepth ------------------------------------------------------ */

typedef struct d2s_state {
    int64_t blocksize;
    bool is_crd;
} d2s_state;

st_status op_depth_to_space_check(eng_node *n, st_arena *arena, st_error *err)
{
    d2s_state *st = st_arena_calloc(arena, 1, sizeof *st, 16);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    n->state = st;
    if (!eng_attr_has(n, "blocksize"))
        return st_fail(err, ST_ECORRUPT, "the blocksize attribute is required");
    st->blocksize = eng_attr_int(n, "blocksize", 0);
    if (st->blocksize <= 0 || st->blocksize > (1 << 20))
        return st_fail(err, ST_EINVAL, "blocksize %lld is not in 1..%d", (long long)st->blocksize, 1 << 20);
    st_str mode = eng_attr_str(n, "mode", "DCR");
    if (!st_str_eq_c(mode, "DCR") && !st_str_eq_c(mode, "CRD"))
        return st_fail(err, ST_EINVAL, "mode '%.*s' is not DCR or CRD", ST_STR_FMT(mode));
    st->is_crd = st_str_eq_c(mode, "CRD");
    return ST_OK;
}

static st_status nchw_input(const eng_kctx *k, const eng_tensor **x)
{
    *x = k->n_in ? k->in[0] : NULL;
    if (!*x)
        return eng_fail(k, ST_EINVAL, "the input is required");
    if ((*x)->rank != 4)
        return eng_fail(k, ST_ESHAPE, "the input has rank %u; expected 4 (N, C, H, W)", (*x)->rank);
    if (elem_size((*x)->dtype) == 0)
        return eng_fail(k, ST_ETYPE, "type %s is not supported", st_dtype_name((*x)->dtype));
    return ST_OK;
}

st_status op_depth_to_space_infer(eng_kctx *k)
{
    const d2s_state *st = k->node->state;
    const eng_tensor *x;
    st_status s = nchw_input(k, &x);
    if (s != ST_OK)
        return s;
    int64_t b = st->blocksize, c = x->shape[1];
    if (c % (b * b) != 0)
        return eng_fail(k, ST_ESHAPE, "C = %lld is not a multiple of blocksize^2 = %lld", (long long)c,
                        (long long)(b * b));
    int64_t shape[4] = { x->shape[0], c / (b * b), 0, 0 };
    if (__builtin_mul_overflow(x->shape[2], b, &shape[2]) || __builtin_mul_overflow(x->shape[3], b, &shape[3]))
        return eng_fail(k, ST_EOVERFLOW, "the output's spatial size overflows");
    eng_set_shape(k->out[0], x->dtype, shape, 4);
    return ST_OK;
}

st_status op_depth_to_space_run(eng_kctx *k)
{
    const d2s_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    if (x->count == 0)
        return ST_OK;
    int64_t b = st->blocksize, n = x->shape[0], c = x->shape[1] / (b * b), h = x->shape[2], w = x->shape[3];
    /* DCR: [N, b, b, C', H, W] -> [N, C', H, b, W, b];
     * CRD: [N, C', b, b, H, W] -> [N, C', H, b, W, b]. */
    int64_t dcr[6] = { n, b, b, c, h, w }, crd[6] = { n, c, b, b, h, w };
    static const int perm_dcr[6] = { 0, 3, 4, 1, 5, 2 }, perm_crd[6] = { 0, 1, 4, 2, 5, 3 };
    eng_transpose(x->data, k->out[0]->data, elem_size(x->dtype), st->is_crd ? crd : dcr, 6,
                  st->is_crd ? perm_crd : perm_dcr);
    return ST_OK;
}

st_status op_space_to_depth_infer(eng_kctx *k)
{
    const d2s_state *st = k->node->state;
    const eng_tensor *x;
    st_status s = nchw_input(k, &x);
    if (s != ST_OK)
        return s;
    int64_t b = st->blocksize;
    if (x->shape[2] % b != 0 || x->shape[3] % b != 0)
        return eng_fail(k, ST_ESHAPE, "H = %lld and W = %lld must be multiples of blocksize %lld",
                        (long long)x->shape[2], (long long)x->shape[3], (long long)b);
    int64_t shape[4] = { x->shape[0], 0, x->shape[2] / b, x->shape[3] / b };
    if (__builtin_mul_overflow(x->shape[1], b * b, &shape[1]))
        return eng_fail(k, ST_EOVERFLOW, "the output's channel count overflows");
    eng_set_shape(k->out[0], x->dtype, shape, 4);
    return ST_OK;
}

st_status op_space_to_depth_run(eng_kctx *k)
{
    const d2s_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    if (x->count == 0)
        return ST_OK;
    int64_t b = st->blocksize;
    /* [N, C, H', b, W', b] -> [N, b, b, C, H', W']. */
    int64_t view[6] = { x->shape[0], x->shape[1], x->shape[2] / b, b, x->shape[3] / b, b };
    static const int perm[6] = { 0, 3, 5, 1, 2, 4 };
    eng_transpose(x->data, k->out[0]->data, elem_size(x->dtype), view, 6, perm);
    return ST_OK;
}

/* --- GridSample (opset 16: 4-D, PyTorch's grid_sample semantics) ----------------------- */

typedef enum { GS_BILINEAR, GS_NEAREST, GS_BICUBIC } gs_mode;
typedef enum { GS_ZEROS, GS_BORDER, GS_REFLECTION } gs_padding;

typedef struct gs_state {
    gs_mode mode;
    gs_padding padding;
    bool align_corners;
} gs_state;

st_status op_grid_sample_check(eng_node *n, st_arena *arena, st_error *err)
{
    gs_state *st = st_arena_calloc(arena, 1, sizeof *st, 16);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    n->state = st;
    static const char *const modes[] = { "bilinear", "nearest", "bicubic" };
    static const char *const paddings[] = { "zeros", "border", "reflection" };
    st_str mode = eng_attr_str(n, "mode", "bilinear"), padding = eng_attr_str(n, "padding_mode", "zeros");
    int v;
    if (st_str_eq_c(mode, "linear")) /* opset 20 names */
        v = GS_BILINEAR;
    else if (st_str_eq_c(mode, "cubic"))
        v = GS_BICUBIC;
    else if (!parse_enum(mode, modes, 3, &v))
        return st_fail(err, ST_EINVAL, "mode '%.*s' is not one of bilinear, nearest, bicubic", ST_STR_FMT(mode));
    st->mode = (gs_mode)v;
    if (!parse_enum(padding, paddings, 3, &v))
        return st_fail(err, ST_EINVAL, "padding_mode '%.*s' is not one of zeros, border, reflection",
                       ST_STR_FMT(padding));
    st->padding = (gs_padding)v;
    st->align_corners = eng_attr_int(n, "align_corners", 0) != 0;
    return ST_OK;
}

st_status op_grid_sample_infer(eng_kctx *k)
{
    const eng_tensor *x = k->n_in > 0 ? k->in[0] : NULL, *grid = k->n_in > 1 ? k->in[1] : NULL;
    if (!x || !grid)
        return eng_fail(k, ST_EINVAL, "X and grid are required");
    if (!norm_is_float(x->dtype) || !norm_is_float(grid->dtype))
        return eng_fail(k, ST_ETYPE, "X and grid must be float types; got %s and %s", st_dtype_name(x->dtype),
                        st_dtype_name(grid->dtype));
    if (x->rank != 4 || grid->rank != 4)
        return eng_fail(k, ST_EUNSUPPORTED, "only 4-D X (N, C, H, W) and grid (N, H_out, W_out, 2) are supported; "
                                            "got ranks %u and %u", x->rank, grid->rank);
    if (grid->shape[0] != x->shape[0] || grid->shape[3] != 2)
        return eng_fail(k, ST_ESHAPE, "grid must be [N = %lld, H_out, W_out, 2]; got [%lld, %lld, %lld, %lld]",
                        (long long)x->shape[0], (long long)grid->shape[0], (long long)grid->shape[1],
                        (long long)grid->shape[2], (long long)grid->shape[3]);
    int64_t shape[4] = { x->shape[0], x->shape[1], grid->shape[1], grid->shape[2] };
    eng_set_shape(k->out[0], x->dtype, shape, 4);
    return ST_OK;
}

/* Grid value in [-1, 1] to pixel coordinate. */
static double gs_unnormalize(double g, int64_t size, bool align)
{
    return align ? (g + 1) / 2 * (double)(size - 1) : ((g + 1) * (double)size - 1) / 2;
}

/* Reflects x into [twice_low / 2, twice_high / 2] as often as needed. */
static double gs_reflect(double x, double twice_low, double twice_high)
{
    if (twice_low == twice_high)
        return 0;
    double lo = twice_low / 2, span = (twice_high - twice_low) / 2;
    x = fabs(x - lo);
    double extra = fmod(x, span), flips = floor(x / span);
    return fmod(flips, 2) == 0 ? extra + lo : span - extra + lo;
}

/* Applies border / reflection padding to a pixel coordinate. */
static double gs_pad(const gs_state *st, double x, int64_t size)
{
    if (st->padding == GS_ZEROS)
        return x;
    if (st->padding == GS_REFLECTION)
        x = st->align_corners ? gs_reflect(x, 0, 2 * (double)(size - 1)) : gs_reflect(x, -1, 2 * (double)size - 1);
    return x < 0 ? 0 : x > (double)(size - 1) ? (double)(size - 1) : x;
}

/* floor() as an index, with far-out or NaN coordinates sent out of range. */
static int64_t gs_floor(double x)
{
    return x > -1e9 && x < 1e9 ? (int64_t)floor(x) : -(1LL << 40);
}

static double cubic_conv1(double x, double a) { return ((a + 2) * x - (a + 3)) * x * x + 1; }
static double cubic_conv2(double x, double a) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; }

static double cubic_interp(const double *v, double t)
{
    const double a = -0.75;
    return v[0] * cubic_conv2(t + 1, a) + v[1] * cubic_conv1(t, a) + v[2] * cubic_conv1(1 - t, a) +
           v[3] * cubic_conv2(2 - t, a);
}

#define GS_IMPL(NAME, T)                                                                                    \
    static T NAME##_at(const T *plane, int64_t h, int64_t w, int64_t y, int64_t x)                          \
    {                                                                                                       \
        return y >= 0 && y < h && x >= 0 && x < w ? plane[y * w + x] : (T)0;                                \
    }                                                                                                       \
    static void NAME(const gs_state *st, const T *xd, const T *grid, T *yd, const int64_t *xs, int64_t ho, \
                     int64_t wo)                                                                            \
    {                                                                                                       \
        int64_t n = xs[0], c = xs[1], h = xs[2], w = xs[3];                                                 \
        size_t plane = (size_t)(h * w), out_plane = (size_t)(ho * wo);                                      \
        for (int64_t b = 0; b < n; b++)                                                                     \
            for (size_t p = 0; p < out_plane; p++) {                                                        \
                const T *g = grid + ((size_t)b * out_plane + p) * 2;                                        \
                double gx = gs_unnormalize(g[0], w, st->align_corners);                                     \
                double gy = gs_unnormalize(g[1], h, st->align_corners);                                     \
                for (int64_t ch = 0; ch < c; ch++) {                                                        \
                    const T *src = xd + ((size_t)b * (size_t)c + (size_t)ch) * plane;                       \
                    double v;                                                                               \
                    if (st->mode == GS_BICUBIC) {                                                           \
                        int64_t x0 = gs_floor(gx), y0 = gs_floor(gy);                                       \
                        double tx = gx - floor(gx), ty = gy - floor(gy), rows[4], px[4];                    \
                        for (int i = 0; i < 4; i++) {                                                       \
                            for (int j = 0; j < 4; j++) {                                                   \
                                double cx = gs_pad(st, (double)(x0 - 1 + j), w);                            \
                                double cy = gs_pad(st, (double)(y0 - 1 + i), h);                            \
                                px[j] = NAME##_at(src, h, w, gs_floor(cy), gs_floor(cx));                   \
                            }                                                                               \
                            rows[i] = cubic_interp(px, tx);                                                 \
                        }                                                                                   \
                        v = cubic_interp(rows, ty);                                                         \
                    } else {                                                                                \
                        double ix = gs_pad(st, gx, w), iy = gs_pad(st, gy, h);                              \
                        if (st->mode == GS_NEAREST) {                                                       \
                            int64_t xi = ix > -1e9 && ix < 1e9 ? (int64_t)nearbyint(ix) : -(1LL << 40);     \
                            int64_t yi = iy > -1e9 && iy < 1e9 ? (int64_t)nearbyint(iy) : -(1LL << 40);     \
                            v = NAME##_at(src, h, w, yi, xi);                                               \
                        } else {                                                                            \
                            int64_t x0 = gs_floor(ix), y0 = gs_floor(iy);                                   \
                            double fx = ix - floor(ix), fy = iy - floor(iy);                                \
                            v = NAME##_at(src, h, w, y0, x0) * (1 - fx) * (1 - fy) +                        \
                                NAME##_at(src, h, w, y0, x0 + 1) * fx * (1 - fy) +                          \
                                NAME##_at(src, h, w, y0 + 1, x0) * (1 - fx) * fy +                          \
                                NAME##_at(src, h, w, y0 + 1, x0 + 1) * fx * fy;                             \
                        }                                                                                   \
                    }                                                                                       \
                    yd[((size_t)b * (size_t)c + (size_t)ch) * out_plane + p] = (T)v;                        \
                }                                                                                           \
            }                                                                                               \
    }
GS_IMPL(gs_f32, float)
GS_IMPL(gs_f64, double)

st_status op_grid_sample_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *grid = k->in[1];
    eng_tensor *y = k->out[0];
    if (x->dtype == ST_DT_FLOAT16 || grid->dtype == ST_DT_FLOAT16)
        return norm_run_f16_as_f32(k, op_grid_sample_run);
    if (y->count == 0)
        return ST_OK;
    const void *g = grid->data;
    if (grid->dtype != x->dtype) {
        /* Grid in X's type (float32 <-> float64). */
        size_t es = x->dtype == ST_DT_FLOAT64 ? sizeof(double) : sizeof(float);
        void *conv = scratch_array(k, grid->count, es);
        if (!conv)
            return eng_fail(k, ST_ENOMEM, "out of memory converting the grid");
        for (size_t i = 0; i < grid->count; i++) {
            if (x->dtype == ST_DT_FLOAT64)
                ((double *)conv)[i] = ((const float *)grid->data)[i];
            else
                ((float *)conv)[i] = (float)((const double *)grid->data)[i];
        }
        g = conv;
    }
    if (x->dtype == ST_DT_FLOAT64)
        gs_f64(k->node->state, x->data, g, y->data, x->shape, y->shape[2], y->shape[3]);
    else
        gs_f32(k->node->state, x->data, g, y->data, x->shape, y->shape[2], y->shape[3]);
    return ST_OK;
}
