/* util.c - helpers every kernel uses: attributes, shapes, broadcasting,
 * element access, error messages naming the node. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/eng_int.h"

/* --- attributes ------------------------------------------------------------ */

static const onnx_attr *attr(const eng_node *n, const char *name)
{
    return onnx_node_attr(n->proto, name);
}

bool eng_attr_has(const eng_node *n, const char *name)
{
    return attr(n, name) != NULL;
}

int64_t eng_attr_int(const eng_node *n, const char *name, int64_t dflt)
{
    const onnx_attr *a = attr(n, name);
    return a && a->type == ONNX_ATTR_INT ? a->i : dflt;
}

float eng_attr_float(const eng_node *n, const char *name, float dflt)
{
    const onnx_attr *a = attr(n, name);
    if (!a)
        return dflt;
    if (a->type == ONNX_ATTR_FLOAT)
        return a->f;
    if (a->type == ONNX_ATTR_INT)
        return (float)a->i;
    return dflt;
}

st_str eng_attr_str(const eng_node *n, const char *name, const char *dflt)
{
    const onnx_attr *a = attr(n, name);
    if (a && a->type == ONNX_ATTR_STRING)
        return a->s;
    return st_str_c(dflt);
}

const int64_t *eng_attr_ints(const eng_node *n, const char *name, size_t *count)
{
    const onnx_attr *a = attr(n, name);
    if (!a || a->type != ONNX_ATTR_INTS) {
        *count = 0;
        return NULL;
    }
    *count = a->int_count;
    return a->ints;
}

const float *eng_attr_floats(const eng_node *n, const char *name, size_t *count)
{
    const onnx_attr *a = attr(n, name);
    if (!a || a->type != ONNX_ATTR_FLOATS) {
        *count = 0;
        return NULL;
    }
    *count = a->float_count;
    return a->floats;
}

const onnx_tensor *eng_attr_tensor(const eng_node *n, const char *name)
{
    const onnx_attr *a = attr(n, name);
    return a && a->type == ONNX_ATTR_TENSOR ? a->t : NULL;
}

/* --- shapes ------------------------------------------------------------------- */

bool eng_shape_count(const int64_t *shape, uint32_t rank, size_t *count)
{
    size_t c = 1;
    for (uint32_t i = 0; i < rank; i++) {
        if (shape[i] < 0 || st_mul_overflow(c, (size_t)shape[i], &c))
            return false;
    }
    *count = c;
    return true;
}

size_t eng_elem_bytes(st_dtype dtype)
{
    if (dtype == ST_DT_STRING)
        return sizeof(st_str);
    /* A map's data is its two headers (keys, values) whatever its entry
     * count; code copying a map copies those two, not count elements. */
    if (dtype == ENG_DT_SEQUENCE || dtype == ENG_DT_OPTIONAL || dtype == ENG_DT_MAP)
        return sizeof(eng_tensor);
    return st_dtype_size(dtype);
}

bool eng_tensor_bytes(st_dtype dtype, size_t count, size_t *bytes)
{
    return !st_mul_overflow(count, eng_elem_bytes(dtype), bytes);
}

void eng_set_shape(eng_tensor *t, st_dtype dtype, const int64_t *shape, uint32_t rank)
{
    t->dtype = dtype;
    t->rank = rank;
    size_t count = 1;
    for (uint32_t i = 0; i < rank && i < ENG_MAX_RANK; i++) {
        t->shape[i] = shape[i];
        /* Saturate: callers check byte sizes, and SIZE_MAX never fits. */
        if (st_mul_overflow(count, shape[i] > 0 ? (size_t)shape[i] : 0, &count))
            count = SIZE_MAX;
    }
    t->count = count;
}

static void shape_text(const int64_t *shape, uint32_t rank, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    len += (size_t)snprintf(buf + len, n - len, "[");
    for (uint32_t i = 0; i < rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
}

st_status eng_broadcast_shape(const eng_tensor *a, const eng_tensor *b, int64_t *out, uint32_t *out_rank,
                              const eng_kctx *k)
{
    uint32_t r = a->rank > b->rank ? a->rank : b->rank;
    for (uint32_t i = 0; i < r; i++) {
        int64_t da = i < r - a->rank ? 1 : a->shape[i - (r - a->rank)];
        int64_t db = i < r - b->rank ? 1 : b->shape[i - (r - b->rank)];
        if (da == db || db == 1)
            out[i] = da;
        else if (da == 1)
            out[i] = db;
        else {
            char sa[128], sb[128];
            shape_text(a->shape, a->rank, sa, sizeof sa);
            shape_text(b->shape, b->rank, sb, sizeof sb);
            return eng_fail(k, ST_ESHAPE, "shapes %s and %s do not broadcast (dimension %u: %lld vs %lld)", sa,
                            sb, i, (long long)da, (long long)db);
        }
    }
    *out_rank = r;
    return ST_OK;
}

st_status eng_axis(const eng_kctx *k, int64_t axis, int rank, int *out)
{
    if (axis < -rank || axis >= rank)
        return eng_fail(k, ST_EINVAL, "axis %lld is out of range for rank %d", (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return ST_OK;
}

/* Saturating and NaN-safe: C leaves out-of-range conversions undefined. */
static int64_t double_to_int64(double v)
{
    if (v != v)
        return 0;
    if (v >= 9223372036854775807.0)
        return INT64_MAX;
    if (v <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)v;
}

int64_t eng_int_at(const eng_tensor *t, size_t i)
{
    switch (t->dtype) {
    case ST_DT_INT64: return ((const int64_t *)t->data)[i];
    case ST_DT_INT32: return ((const int32_t *)t->data)[i];
    case ST_DT_INT16: return ((const int16_t *)t->data)[i];
    case ST_DT_INT8: return ((const int8_t *)t->data)[i];
    case ST_DT_UINT8: return ((const uint8_t *)t->data)[i];
    case ST_DT_UINT16: return ((const uint16_t *)t->data)[i];
    case ST_DT_UINT32: return ((const uint32_t *)t->data)[i];
    case ST_DT_UINT64: return (int64_t)((const uint64_t *)t->data)[i];
    case ST_DT_BOOL: return ((const uint8_t *)t->data)[i] != 0;
    case ST_DT_FLOAT32: return double_to_int64(((const float *)t->data)[i]);
    case ST_DT_FLOAT64: return double_to_int64(((const double *)t->data)[i]);
    case ST_DT_FLOAT16: return double_to_int64(st_half_to_float(((const uint16_t *)t->data)[i]));
    default: return 0;
    }
}

double eng_num_at(const eng_tensor *t, size_t i)
{
    switch (t->dtype) {
    case ST_DT_FLOAT32: return ((const float *)t->data)[i];
    case ST_DT_FLOAT64: return ((const double *)t->data)[i];
    case ST_DT_FLOAT16: return st_half_to_float(((const uint16_t *)t->data)[i]);
    case ST_DT_UINT64: return (double)((const uint64_t *)t->data)[i];
    default: return (double)eng_int_at(t, i);
    }
}

st_status eng_fail(const eng_kctx *k, st_status code, const char *fmt, ...)
{
    if (!k->err)
        return code;
    char msg[360];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const onnx_node *p = k->node->proto;
    return st_fail(k->err, code, "%.*s node '%.*s': %s", (int)(p->op_type.len > 40 ? 40 : p->op_type.len),
                   p->op_type.ptr, (int)(p->name.len > 60 ? 60 : p->name.len), p->name.ptr, msg);
}

eng_tensor eng_tensor_make(st_dtype dtype, const int64_t *shape, uint32_t rank, void *data)
{
    eng_tensor t;
    memset(&t, 0, sizeof t);
    eng_set_shape(&t, dtype, shape, rank > ENG_MAX_RANK ? ENG_MAX_RANK : rank);
    t.data = data;
    return t;
}

#define POST_LOOP(T, EXPR)                                                       \
    do {                                                                         \
        T *y = t->data;                                                          \
        for (size_t r = 0; r < rows; r++) {                                      \
            T *row = y + r * cols;                                               \
            if (bias)                                                            \
                for (size_t c = 0; c < cols; c++)                                \
                    row[c] += (T)(bias_f32 ? bias_f32[c % bias_n] : bias_f64[c % bias_n]); \
            switch (p->act) {                                                    \
            case ENG_ACT_NONE: break;                                            \
            default:                                                             \
                for (size_t c = 0; c < cols; c++) {                              \
                    T x = row[c];                                                \
                    row[c] = (EXPR);                                             \
                }                                                                \
            }                                                                    \
        }                                                                        \
    } while (0)

static inline double post_act(const eng_post_op *p, double x)
{
    switch (p->act) {
    case ENG_ACT_RELU: return x > 0 ? x : 0;
    case ENG_ACT_LEAKY_RELU: return x >= 0 ? x : p->alpha * x;
    case ENG_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case ENG_ACT_TANH: return tanh(x);
    case ENG_ACT_CLIP: return x < p->alpha ? p->alpha : x > p->beta ? p->beta : x;
    case ENG_ACT_HARD_SIGMOID: {
        double v = p->alpha * x + p->beta;
        return v < 0 ? 0 : v > 1 ? 1 : v;
    }
    default: return x;
    }
}

static inline float post_act_f(const eng_post_op *p, float x)
{
    switch (p->act) {
    case ENG_ACT_RELU: return x > 0 ? x : 0;
    case ENG_ACT_LEAKY_RELU: return x >= 0 ? x : p->alpha * x;
    case ENG_ACT_CLIP: return x < p->alpha ? p->alpha : x > p->beta ? p->beta : x;
    default: return (float)post_act(p, x);
    }
}

st_status eng_apply_post_op(const eng_kctx *k, const eng_graph *g)
{
    const eng_post_op *p = &k->node->post;
    eng_tensor *t = k->out[0];
    if (!t || t->count == 0)
        return ST_OK;
    size_t cols = t->rank ? (size_t)t->shape[t->rank - 1] : 1;
    size_t rows = cols ? t->count / cols : 0;
    const eng_tensor *bias = p->bias >= 0 ? &g->values[p->bias].constant : NULL;
    const float *bias_f32 = NULL;
    const double *bias_f64 = NULL;
    size_t bias_n = 1;
    if (bias) {
        if (bias->dtype != t->dtype || (bias->count != cols && bias->count != 1))
            return eng_fail(k, ST_ESHAPE, "fused bias of %zu %s values does not fit a last axis of %zu %s",
                            bias->count, st_dtype_name(bias->dtype), cols, st_dtype_name(t->dtype));
        bias_n = bias->count;
        if (bias->dtype == ST_DT_FLOAT32)
            bias_f32 = bias->data;
        else
            bias_f64 = bias->data;
    }
    if (t->dtype == ST_DT_FLOAT32) {
        /* The hot case (MatMul + bias [+ Relu] in transformers): plain
         * loops the compiler vectorises, one pass per row. */
        float *y = t->data;
        float b0 = bias_f32 && bias_n == 1 ? bias_f32[0] : 0.0f;
        for (size_t r = 0; r < rows; r++) {
            float *restrict row = y + r * cols;
            if (bias_f32 && bias_n == cols)
                for (size_t c = 0; c < cols; c++)
                    row[c] += bias_f32[c];
            else if (bias_f32)
                for (size_t c = 0; c < cols; c++)
                    row[c] += b0;
            if (p->act == ENG_ACT_RELU)
                for (size_t c = 0; c < cols; c++)
                    row[c] = row[c] > 0 ? row[c] : 0;
            else if (p->act != ENG_ACT_NONE)
                for (size_t c = 0; c < cols; c++)
                    row[c] = post_act_f(p, row[c]);
        }
    } else if (t->dtype == ST_DT_FLOAT64) {
        POST_LOOP(double, post_act(p, x));
    } else {
        return eng_fail(k, ST_EUNSUPPORTED, "fused activation on %s", st_dtype_name(t->dtype));
    }
    return ST_OK;
}
