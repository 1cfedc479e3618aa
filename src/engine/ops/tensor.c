/* tensor.c - the indexing / slicing / generation operator family: its
 * registry table, the data-movement helpers the tensor_*.c files share,
 * and the small generators (ConstantOfShape, Range, EyeLike, Trilu,
 * OneHot) plus Where.  Ops that only move elements are written by element
 * size, so every dtype (strings are st_str elements) goes through them. */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/ops/tensor_int.h"

/* --- shared helpers ------------------------------------------------------- */

size_t tensor_esize(st_dtype t)
{
    return t == ST_DT_STRING ? sizeof(st_str) : st_dtype_size(t);
}

st_status tensor_read_ints(const eng_kctx *k, const eng_tensor *t, const char *what, int64_t *out, size_t cap,
                           size_t *n)
{
    if (!t)
        return eng_fail(k, ST_EINVAL, "the %s input is required", what);
    if (t->dtype != ST_DT_INT64 && t->dtype != ST_DT_INT32)
        return eng_fail(k, ST_ETYPE, "%s must be int64 or int32, got %s", what, st_dtype_name(t->dtype));
    if (t->rank > 1)
        return eng_fail(k, ST_ESHAPE, "%s must be 1-D, got rank %u", what, t->rank);
    if (t->count > cap)
        return eng_fail(k, ST_EINVAL, "%s has %zu values, at most %zu expected", what, t->count, cap);
    for (size_t i = 0; i < t->count; i++)
        out[i] = t->dtype == ST_DT_INT64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
    *n = t->count;
    return ST_OK;
}

st_status tensor_read_scalar_int(const eng_kctx *k, const eng_tensor *t, const char *what, int64_t *out)
{
    if (!t)
        return eng_fail(k, ST_EINVAL, "the %s input is required", what);
    if (t->dtype != ST_DT_INT64 && t->dtype != ST_DT_INT32)
        return eng_fail(k, ST_ETYPE, "%s must be int64 or int32, got %s", what, st_dtype_name(t->dtype));
    if (t->count != 1)
        return eng_fail(k, ST_ESHAPE, "%s must hold one value, has %zu", what, t->count);
    *out = t->dtype == ST_DT_INT64 ? *(const int64_t *)t->data : *(const int32_t *)t->data;
    return ST_OK;
}

void tensor_strides(const int64_t *shape, uint32_t rank, int64_t *stride)
{
    int64_t acc = 1;
    for (int d = (int)rank - 1; d >= 0; d--) {
        stride[d] = acc;
        acc *= shape[d];
    }
}

void tensor_fill(void *dst, const void *value, size_t es, size_t count)
{
    switch (es) {
    case 1: memset(dst, *(const uint8_t *)value, count); break;
    case 2: {
        uint16_t v;
        memcpy(&v, value, 2);
        for (size_t i = 0; i < count; i++)
            ((uint16_t *)dst)[i] = v;
        break;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, value, 4);
        for (size_t i = 0; i < count; i++)
            ((uint32_t *)dst)[i] = v;
        break;
    }
    case 8: {
        uint64_t v;
        memcpy(&v, value, 8);
        for (size_t i = 0; i < count; i++)
            ((uint64_t *)dst)[i] = v;
        break;
    }
    default:
        for (size_t i = 0; i < count; i++)
            memcpy((char *)dst + i * es, value, es);
    }
}

/* One destination row of n elements from src with element stride `stride`. */
static void copy_row(char *dst, const char *src, size_t es, size_t n, int64_t stride)
{
    if (stride == 1) {
        memcpy(dst, src, n * es);
        return;
    }
    if (stride == 0) {
        tensor_fill(dst, src, es, n);
        return;
    }
    ptrdiff_t s = (ptrdiff_t)stride;
    switch (es) {
    case 1:
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)dst)[i] = ((const uint8_t *)src)[(ptrdiff_t)i * s];
        break;
    case 2:
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = ((const uint16_t *)src)[(ptrdiff_t)i * s];
        break;
    case 4:
        for (size_t i = 0; i < n; i++)
            ((uint32_t *)dst)[i] = ((const uint32_t *)src)[(ptrdiff_t)i * s];
        break;
    case 8:
        for (size_t i = 0; i < n; i++)
            ((uint64_t *)dst)[i] = ((const uint64_t *)src)[(ptrdiff_t)i * s];
        break;
    default:
        for (size_t i = 0; i < n; i++)
            memcpy(dst + i * es, src + (ptrdiff_t)i * s * (ptrdiff_t)es, es);
    }
}

void tensor_copy_strided(void *dst, const void *src, size_t es, const int64_t *dims_in, const int64_t *stride_in,
                         int n_in)
{
    int64_t dims[2 * ENG_MAX_RANK], st[2 * ENG_MAX_RANK];
    int n = 0;
    /* Drop unit dims and merge a dim into its outer neighbour when walking
     * both is one uniform stride, so contiguous runs become long rows. */
    for (int d = 0; d < n_in; d++) {
        if (dims_in[d] == 0)
            return;
        if (dims_in[d] == 1)
            continue;
        if (n > 0 && st[n - 1] == stride_in[d] * dims_in[d]) {
            dims[n - 1] *= dims_in[d];
            st[n - 1] = stride_in[d];
            continue;
        }
        dims[n] = dims_in[d];
        st[n] = stride_in[d];
        n++;
    }
    char *o = dst;
    const char *s = src;
    if (n == 0) {
        memcpy(o, s, es);
        return;
    }
    size_t inner = (size_t)dims[n - 1];
    int64_t inner_stride = st[n - 1];
    int outer = n - 1;
    int64_t idx[2 * ENG_MAX_RANK] = { 0 };
    ptrdiff_t off = 0;
    size_t row_bytes = inner * es;
    for (;;) {
        copy_row(o, s + off * (ptrdiff_t)es, es, inner, inner_stride);
        o += row_bytes;
        int d = outer - 1;
        for (; d >= 0; d--) {
            idx[d]++;
            off += (ptrdiff_t)st[d];
            if (idx[d] < dims[d])
                break;
            off -= (ptrdiff_t)(st[d] * idx[d]);
            idx[d] = 0;
        }
        if (d < 0)
            return;
    }
}

/* --- ConstantOfShape ---------------------------------------------------------- */

static st_status constant_of_shape_check(eng_node *n, st_arena *arena, st_error *err)
{
    eng_tensor *v = st_arena_calloc(arena, 1, sizeof *v, 8);
    void *data = st_arena_calloc(arena, 1, 16, 16);
    if (!v || !data)
        return st_fail(err, ST_ENOMEM, "out of memory");
    v->dtype = ST_DT_FLOAT32;
    v->count = 1;
    v->data = data;
    const onnx_tensor *t = eng_attr_tensor(n, "value");
    if (t) {
        if (t->elem_count != 1)
            return st_fail(err, ST_EINVAL, "ConstantOfShape: value must hold one element, has %zu", t->elem_count);
        if (!st_dtype_is_valid(t->data_type) || t->data_type == ST_DT_UNDEFINED)
            return st_fail(err, ST_EUNSUPPORTED, "ConstantOfShape: value of type %s is not supported",
                           onnx_data_type_name(t->data_type));
        onnx_tensor_data td;
        st_status s = onnx_tensor_materialize(t, NULL, arena, &td, err);
        if (s != ST_OK)
            return s;
        v->dtype = (st_dtype)t->data_type;
        if (v->dtype == ST_DT_STRING)
            memcpy(data, td.strings, sizeof(st_str));
        else
            memcpy(data, td.data, st_dtype_size(v->dtype));
    }
    n->state = v;
    return ST_OK;
}

static st_status constant_of_shape_infer(eng_kctx *k)
{
    const eng_tensor *v = k->node->state;
    int64_t shape[ENG_MAX_RANK];
    size_t n;
    st_status s = tensor_read_ints(k, k->in[0], "shape", shape, ENG_MAX_RANK, &n);
    if (s != ST_OK)
        return s;
    for (size_t i = 0; i < n; i++)
        if (shape[i] < 0)
            return eng_fail(k, ST_ESHAPE, "shape[%zu] is %lld, expected >= 0", i, (long long)shape[i]);
    eng_set_shape(k->out[0], v->dtype, shape, (uint32_t)n);
    return ST_OK;
}

static st_status constant_of_shape_run(eng_kctx *k)
{
    const eng_tensor *v = k->node->state;
    tensor_fill(k->out[0]->data, v->data, tensor_esize(v->dtype), k->out[0]->count);
    return ST_OK;
}

/* --- Range ------------------------------------------------------------------------ */

/* The three scalars as int64 (integer types) or double (float types). */
static st_status range_args(const eng_kctx *k, bool *is_float, int64_t *iv, double *fv, int64_t *count)
{
    if (k->n_in < 3 || !k->in[0] || !k->in[1] || !k->in[2])
        return eng_fail(k, ST_EINVAL, "start, limit and delta are required");
    st_dtype t = k->in[0]->dtype;
    for (int i = 0; i < 3; i++) {
        if (k->in[i]->dtype != t)
            return eng_fail(k, ST_ETYPE, "start, limit and delta must have one type (%s vs %s)", st_dtype_name(t),
                            st_dtype_name(k->in[i]->dtype));
        if (k->in[i]->count != 1)
            return eng_fail(k, ST_ESHAPE, "input %d must be a scalar, has %zu elements", i, k->in[i]->count);
    }
    switch (t) {
    case ST_DT_FLOAT32:
    case ST_DT_FLOAT64: {
        *is_float = true;
        for (int i = 0; i < 3; i++)
            fv[i] = eng_num_at(k->in[i], 0);
        if (fv[2] == 0 || !isfinite(fv[0]) || !isfinite(fv[1]) || !isfinite(fv[2]))
            return eng_fail(k, ST_EINVAL, "start, limit and delta must be finite and delta non-zero");
        double n = ceil((fv[1] - fv[0]) / fv[2]);
        if (n > 1e15)
            return eng_fail(k, ST_EOVERFLOW, "the range has too many elements (%g)", n);
        *count = n > 0 ? (int64_t)n : 0;
        return ST_OK;
    }
    case ST_DT_INT16:
    case ST_DT_INT32:
    case ST_DT_INT64: {
        *is_float = false;
        for (int i = 0; i < 3; i++)
            iv[i] = eng_int_at(k->in[i], 0);
        if (iv[2] == 0)
            return eng_fail(k, ST_EINVAL, "delta must be non-zero");
        int64_t diff;
        if (__builtin_sub_overflow(iv[1], iv[0], &diff) || (diff == INT64_MIN && iv[2] == -1))
            return eng_fail(k, ST_EOVERFLOW, "the range has too many elements");
        if ((diff > 0) != (iv[2] > 0) || diff == 0) {
            *count = 0;
            return ST_OK;
        }
        /* Same signs: truncating division rounds the magnitude down. */
        *count = diff / iv[2] + (diff % iv[2] != 0);
        return ST_OK;
    }
    default:
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported (float, double, int16/32/64)",
                        st_dtype_name(t));
    }
}

static st_status range_infer(eng_kctx *k)
{
    bool is_float;
    int64_t iv[3], count;
    double fv[3];
    st_status s = range_args(k, &is_float, iv, fv, &count);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], k->in[0]->dtype, &count, 1);
    return ST_OK;
}

static st_status range_run(eng_kctx *k)
{
    bool is_float;
    int64_t iv[3], count;
    double fv[3];
    st_status s = range_args(k, &is_float, iv, fv, &count);
    if (s != ST_OK)
        return s;
    void *o = k->out[0]->data;
    size_t n = (size_t)count;
    switch (k->out[0]->dtype) {
    case ST_DT_FLOAT32: {
        float start = (float)fv[0], delta = (float)fv[2];
        for (size_t i = 0; i < n; i++)
            ((float *)o)[i] = start + (float)i * delta;
        break;
    }
    case ST_DT_FLOAT64:
        for (size_t i = 0; i < n; i++)
            ((double *)o)[i] = fv[0] + (double)i * fv[2];
        break;
    /* Every value lies between start and limit, so it fits the type. */
    case ST_DT_INT16:
        for (size_t i = 0; i < n; i++)
            ((int16_t *)o)[i] = (int16_t)(iv[0] + (int64_t)i * iv[2]);
        break;
    case ST_DT_INT32:
        for (size_t i = 0; i < n; i++)
            ((int32_t *)o)[i] = (int32_t)(iv[0] + (int64_t)i * iv[2]);
        break;
    default:
        for (size_t i = 0; i < n; i++)
            ((int64_t *)o)[i] = iv[0] + (int64_t)i * iv[2];
        break;
    }
    return ST_OK;
}

/* --- Where ---------------------------------------------------------------------- */

static st_status where_infer(eng_kctx *k)
{
    if (k->n_in < 3 || !k->in[0] || !k->in[1] || !k->in[2])
        return eng_fail(k, ST_EINVAL, "condition, X and Y are required");
    const eng_tensor *c = k->in[0], *x = k->in[1], *y = k->in[2];
    if (c->dtype != ST_DT_BOOL)
        return eng_fail(k, ST_ETYPE, "condition must be bool, got %s", st_dtype_name(c->dtype));
    if (x->dtype != y->dtype)
        return eng_fail(k, ST_ETYPE, "X and Y have different types (%s and %s)", st_dtype_name(x->dtype),
                        st_dtype_name(y->dtype));
    int64_t xy[ENG_MAX_RANK], shape[ENG_MAX_RANK];
    uint32_t xy_rank, rank;
    st_status s = eng_broadcast_shape(x, y, xy, &xy_rank, k);
    if (s != ST_OK)
        return s;
    eng_tensor t = eng_tensor_make(x->dtype, xy, xy_rank, NULL);
    if ((s = eng_broadcast_shape(c, &t, shape, &rank, k)) != ST_OK)
        return s;
    eng_set_shape(k->out[0], x->dtype, shape, rank);
    return ST_OK;
}

/* Selects through a mask rather than a branch: a random condition would
 * mispredict about half the time. */
#define WHERE_SELECT(T, XI, YI)                                                              \
    do {                                                                                     \
        for (; i < n; i++) {                                                                 \
            T m = (T)((T)0 - (T)(cp[i] != 0));                                               \
            os[i] = (T)((XI & m) | (YI & (T)~m));                                            \
        }                                                                                    \
    } while (0)

#define WHERE_ROW(T)                                                                         \
    do {                                                                                     \
        const T *restrict xs = (const T *)xp, *restrict ys = (const T *)yp;                  \
        T *restrict os = (T *)op;                                                            \
        size_t i = 0;                                                                        \
        if (sc == 1 && sx == 1 && sy == 1) {                                                 \
            WHERE_SELECT(T, xs[i], ys[i]);                                                   \
        } else if (sc == 1 && sx == 1 && sy == 0) {                                          \
            T yv = ys[0];                                                                    \
            WHERE_SELECT(T, xs[i], yv);                                                      \
        } else if (sc == 1 && sx == 0 && sy == 1) {                                          \
            T xv = xs[0];                                                                    \
            WHERE_SELECT(T, xv, ys[i]);                                                      \
        }                                                                                    \
        for (; i < n; i++)                                                                   \
            os[i] = cp[i * sc] ? xs[i * sx] : ys[i * sy];                                    \
    } while (0)

/* One output row of n elements; sc/sx/sy are 0 (broadcast) or 1. */
static void where_row(const uint8_t *restrict cp, const char *xp, const char *yp, char *op, size_t es, size_t n,
                      size_t sc, size_t sx, size_t sy)
{
    switch (es) {
    case 1: WHERE_ROW(uint8_t); break;
    case 2: WHERE_ROW(uint16_t); break;
    case 4: WHERE_ROW(uint32_t); break;
    case 8: WHERE_ROW(uint64_t); break;
    default: {
        const st_str *xs = (const st_str *)xp, *ys = (const st_str *)yp;
        st_str *os = (st_str *)op;
        for (size_t i = 0; i < n; i++)
            os[i] = cp[i * sc] ? xs[i * sx] : ys[i * sy];
    }
    }
}

static st_status where_run(eng_kctx *k)
{
    const eng_tensor *in[3] = { k->in[0], k->in[1], k->in[2] };
    eng_tensor *o = k->out[0];
    if (o->count == 0)
        return ST_OK;
    size_t es = tensor_esize(o->dtype);
    uint32_t r = o->rank;
    /* Element strides of each operand in the output's index space. */
    int64_t st[3][ENG_MAX_RANK];
    for (int t = 0; t < 3; t++) {
        int64_t acc = 1;
        for (int d = (int)r - 1; d >= 0; d--) {
            int id = d - (int)(r - in[t]->rank);
            int64_t dim = id >= 0 ? in[t]->shape[id] : 1;
            st[t][d] = dim == 1 ? 0 : acc;
            acc *= dim;
        }
    }
    /* Merge dims inward while every operand stays uniform across them. */
    int64_t dims[ENG_MAX_RANK];
    int64_t ms[3][ENG_MAX_RANK];
    int n = 0;
    for (uint32_t d = 0; d < r; d++) {
        if (o->shape[d] == 1)
            continue;
        bool merge = n > 0;
        for (int t = 0; t < 3 && merge; t++)
            merge = ms[t][n - 1] == st[t][d] * o->shape[d];
        if (merge) {
            dims[n - 1] *= o->shape[d];
            for (int t = 0; t < 3; t++)
                ms[t][n - 1] = st[t][d];
            continue;
        }
        dims[n] = o->shape[d];
        for (int t = 0; t < 3; t++)
            ms[t][n] = st[t][d];
        n++;
    }
    const uint8_t *c = in[0]->data;
    const char *x = in[1]->data, *y = in[2]->data;
    char *out = o->data;
    if (n == 0) {
        memcpy(out, c[0] ? x : y, es);
        return ST_OK;
    }
    /* The innermost kept dim has only unit dims after it, so each
     * operand's stride there is 1, or 0 where it broadcasts. */
    size_t inner = (size_t)dims[n - 1];
    size_t sc = ms[0][n - 1] ? 1 : 0, sx = ms[1][n - 1] ? 1 : 0, sy = ms[2][n - 1] ? 1 : 0;
    int64_t idx[ENG_MAX_RANK] = { 0 };
    int64_t off[3] = { 0, 0, 0 };
    for (;;) {
        where_row(c + off[0], x + off[1] * (int64_t)es, y + off[2] * (int64_t)es, out, es, inner, sc, sx, sy);
        out += inner * es;
        int d = n - 2;
        for (; d >= 0; d--) {
            idx[d]++;
            for (int t = 0; t < 3; t++)
                off[t] += ms[t][d];
            if (idx[d] < dims[d])
                break;
            for (int t = 0; t < 3; t++)
                off[t] -= ms[t][d] * idx[d];
            idx[d] = 0;
        }
        if (d < 0)
            return ST_OK;
    }
}

/* --- EyeLike ---------------------------------------------------------------------- */

/* Writes the value 1 of dtype t into `one` (es bytes); false for types
 * without a one (strings). */
static bool one_of(st_dtype t, void *one)
{
    switch (t) {
    case ST_DT_FLOAT32: *(float *)one = 1.0f; return true;
    case ST_DT_FLOAT64: *(double *)one = 1.0; return true;
    case ST_DT_FLOAT16: *(uint16_t *)one = 0x3C00; return true;
    case ST_DT_INT8: case ST_DT_UINT8: case ST_DT_BOOL: *(uint8_t *)one = 1; return true;
    case ST_DT_INT16: case ST_DT_UINT16: *(uint16_t *)one = 1; return true;
    case ST_DT_INT32: case ST_DT_UINT32: *(uint32_t *)one = 1; return true;
    case ST_DT_INT64: case ST_DT_UINT64: *(uint64_t *)one = 1; return true;
    default: return false;
    }
}

static st_status eyelike_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (!x || x->rank != 2)
        return eng_fail(k, ST_ESHAPE, "input must be 2-D, got rank %u", x ? x->rank : 0);
    int64_t dt = eng_attr_int(k->node, "dtype", x->dtype);
    uint64_t one;
    if (!st_dtype_is_valid((int)dt) || dt != (int)dt || !one_of((st_dtype)dt, &one))
        return eng_fail(k, ST_EUNSUPPORTED, "output data type %lld is not supported", (long long)dt);
    eng_set_shape(k->out[0], (st_dtype)dt, x->shape, 2);
    return ST_OK;
}

static st_status eyelike_run(eng_kctx *k)
{
    eng_tensor *o = k->out[0];
    size_t es = tensor_esize(o->dtype);
    uint64_t one;
    one_of(o->dtype, &one);
    memset(o->data, 0, o->count * es);
    int64_t rows = o->shape[0], cols = o->shape[1];
    int64_t diag = eng_attr_int(k->node, "k", 0);
    if (diag >= cols || diag <= -rows)
        return ST_OK;
    int64_t i0 = diag < 0 ? -diag : 0;
    for (int64_t i = i0; i < rows && i + diag < cols; i++)
        memcpy((char *)o->data + (size_t)(i * cols + i + diag) * es, &one, es);
    return ST_OK;
}

/* --- Trilu ------------------------------------------------------------------------- */

static st_status trilu_diag(const eng_kctx *k, int64_t *diag)
{
    *diag = 0;
    if (k->n_in > 1 && k->in[1]) {
        st_status s = tensor_read_scalar_int(k, k->in[1], "k", diag);
        if (s != ST_OK)
            return s;
    }
    return ST_OK;
}

static st_status trilu_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (!x || x->rank < 2)
        return eng_fail(k, ST_ESHAPE, "input must have rank >= 2, got %u", x ? x->rank : 0);
    int64_t diag;
    st_status s = trilu_diag(k, &diag);
    if (s != ST_OK)
        return s;
    return eng_infer_same_as_input(k);
}

static st_status trilu_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    if (o->count == 0)
        return ST_OK;
    int64_t diag;
    trilu_diag(k, &diag);
    bool upper = eng_attr_int(k->node, "upper", 1) != 0;
    size_t es = tensor_esize(x->dtype);
    int64_t rows = x->shape[x->rank - 2], cols = x->shape[x->rank - 1];
    size_t mats = o->count / (size_t)(rows * cols);
    /* Clamp so that i + diag cannot overflow. */
    int64_t lim = rows + cols;
    diag = diag > lim ? lim : diag < -lim ? -lim : diag;
    st_str empty = ST_STR("");
    uint64_t zero_bits = 0;
    const void *zero = x->dtype == ST_DT_STRING ? (const void *)&empty : (const void *)&zero_bits;
    const char *src = x->data;
    char *dst = o->data;
    size_t row_bytes = (size_t)cols * es;
    for (size_t m = 0; m < mats; m++) {
        for (int64_t i = 0; i < rows; i++) {
            /* Columns kept: [lo, hi). */
            int64_t lo = upper ? i + diag : 0, hi = upper ? cols : i + diag + 1;
            lo = lo < 0 ? 0 : lo > cols ? cols : lo;
            hi = hi < lo ? lo : hi > cols ? cols : hi;
            tensor_fill(dst, zero, es, (size_t)lo);
            memcpy(dst + (size_t)lo * es, src + (size_t)lo * es, (size_t)(hi - lo) * es);
            tensor_fill(dst + (size_t)hi * es, zero, es, (size_t)(cols - hi));
            src += row_bytes;
            dst += row_bytes;
        }
    }
    return ST_OK;
}

/* --- OneHot ------------------------------------------------------------------------ */

static bool is_numeric(st_dtype t)
{
    return t != ST_DT_STRING && t != ST_DT_BOOL && t != ST_DT_UNDEFINED && st_dtype_is_valid((int)t);
}

static st_status onehot_args(const eng_kctx *k, int *axis, int64_t *depth)
{
    if (k->n_in < 3 || !k->in[0] || !k->in[1] || !k->in[2])
        return eng_fail(k, ST_EINVAL, "indices, depth and values are required");
    const eng_tensor *ind = k->in[0], *dep = k->in[1], *val = k->in[2];
    if (!is_numeric(ind->dtype) || !is_numeric(dep->dtype))
        return eng_fail(k, ST_ETYPE, "indices and depth must be numeric, got %s and %s", st_dtype_name(ind->dtype),
                        st_dtype_name(dep->dtype));
    if (dep->count != 1)
        return eng_fail(k, ST_ESHAPE, "depth must be a scalar, has %zu elements", dep->count);
    if (val->count != 2)
        return eng_fail(k, ST_ESHAPE, "values must hold [off_value, on_value], has %zu elements", val->count);
    double d = eng_num_at(dep, 0);
    if (!(d >= 1) || d > 1e12)
        return eng_fail(k, ST_EINVAL, "depth must be positive, got %g", d);
    *depth = (int64_t)d;
    if (ind->rank + 1 > ENG_MAX_RANK)
        return eng_fail(k, ST_EUNSUPPORTED, "output rank above %d", ENG_MAX_RANK);
    return eng_axis(k, eng_attr_int(k->node, "axis", -1), (int)ind->rank + 1, axis);
}

static st_status onehot_infer(eng_kctx *k)
{
    int axis;
    int64_t depth;
    st_status s = onehot_args(k, &axis, &depth);
    if (s != ST_OK)
        return s;
    const eng_tensor *ind = k->in[0];
    int64_t shape[ENG_MAX_RANK];
    uint32_t r = 0;
    for (uint32_t d = 0; d <= ind->rank; d++)
        shape[r++] = (int)d == axis ? depth : ind->shape[d < (uint32_t)axis ? d : d - 1];
    eng_set_shape(k->out[0], k->in[2]->dtype, shape, r);
    return ST_OK;
}

static st_status onehot_run(eng_kctx *k)
{
    int axis;
    int64_t depth;
    onehot_args(k, &axis, &depth);
    const eng_tensor *ind = k->in[0], *val = k->in[2];
    eng_tensor *o = k->out[0];
    size_t es = tensor_esize(o->dtype);
    const char *off_v = val->data, *on_v = (const char *)val->data + es;
    tensor_fill(o->data, off_v, es, o->count);
    size_t inner = 1;
    for (uint32_t d = (uint32_t)axis; d < ind->rank; d++)
        inner *= (size_t)ind->shape[d];
    for (size_t i = 0; i < ind->count; i++) {
        double v = eng_num_at(ind, i);
        if (!(v >= -(double)depth && v < (double)depth))
            continue; /* out of range (or NaN): all off */
        int64_t idx = (int64_t)v;
        if (idx < 0)
            idx += depth;
        size_t outer = i / inner, in = i % inner;
        memcpy((char *)o->data + ((outer * (size_t)depth + (size_t)idx) * inner + in) * es, on_v, es);
    }
    return ST_OK;
}

/* --- the family table ------------------------------------------------------------- */

const eng_op eng_ops_tensor[] = {
    { "", "Slice", 1, NULL, tensor_slice_infer, tensor_slice_run },
    { "", "Split", 1, NULL, tensor_split_infer, tensor_split_run },
    { "", "Pad", 1, NULL, tensor_pad_infer, tensor_pad_run },
    { "", "Compress", 9, NULL, tensor_compress_infer, tensor_compress_run },
    { "", "ReverseSequence", 10, NULL, tensor_revseq_infer, tensor_revseq_run },
    { "", "Tile", 6, NULL, tensor_tile_infer, tensor_tile_run },
    { "", "Expand", 8, NULL, tensor_expand_infer, tensor_expand_run },
    { "", "Gather", 1, NULL, tensor_gather_infer, tensor_gather_run },
    { "", "GatherElements", 11, NULL, tensor_gather_elements_infer, tensor_gather_elements_run },
    { "", "GatherND", 11, NULL, tensor_gather_nd_infer, tensor_gather_nd_run },
    { "", "ScatterND", 11, tensor_scatter_check, tensor_scatter_nd_infer, tensor_scatter_nd_run },
    { "", "ScatterElements", 11, tensor_scatter_check, tensor_scatter_elements_infer, tensor_scatter_elements_run },
    { "", "Scatter", 9, tensor_scatter_check, tensor_scatter_elements_infer, tensor_scatter_elements_run },
    { "", "ConstantOfShape", 9, constant_of_shape_check, constant_of_shape_infer, constant_of_shape_run },
    { "", "Range", 11, NULL, range_infer, range_run },
    { "", "Where", 9, NULL, where_infer, where_run },
    { "", "EyeLike", 9, NULL, eyelike_infer, eyelike_run },
    { "", "Trilu", 14, NULL, trilu_infer, trilu_run },
    { "", "OneHot", 9, NULL, onehot_infer, onehot_run },
    { "", "NonZero", 9, NULL, tensor_nonzero_infer, tensor_nonzero_run },
    { "", "TopK", 1, NULL, tensor_topk_infer, tensor_topk_run },
    { "", "ArgMax", 1, NULL, tensor_arg_infer, tensor_argmax_run },
    { "", "ArgMin", 1, NULL, tensor_arg_infer, tensor_argmin_run },
    { "", "CumSum", 11, NULL, tensor_cumsum_infer, tensor_cumsum_run },
    { "", "Unique", 11, NULL, tensor_unique_infer, tensor_unique_run },
    { "", "Einsum", 12, tensor_einsum_check, tensor_einsum_infer, tensor_einsum_run },
    { "", "Det", 11, NULL, tensor_det_infer, tensor_det_run },
    { 0 },
};
