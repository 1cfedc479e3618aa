/* shape.c - operators that move or reinterpret data without arithmetic:
 * Identity, Constant, Shape, Reshape, Flatten, Squeeze, Unsqueeze,
 * Transpose, Concat, Cast. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/ops/ops.h"


static st_status copy_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    if (x->count)
        memcpy(o->data, x->data, x->count * eng_elem_bytes(x->dtype));
    return ST_OK;
}

/* --- Identity / Dropout (inference) ------------------------------------- */

static st_status dropout_infer(eng_kctx *k)
{
    st_status s = eng_infer_same_as_input(k);
    if (s == ST_OK && k->n_out > 1 && k->out[1])
        eng_set_shape(k->out[1], ST_DT_BOOL, k->in[0]->shape, k->in[0]->rank);
    return s;
}

static st_status dropout_run(eng_kctx *k)
{
    copy_run(k);
    if (k->n_out > 1 && k->out[1])
        memset(k->out[1]->data, 1, k->out[1]->count);
    return ST_OK;
}

/* --- Constant ------------------------------------------------------------- */

static st_status constant_check(eng_node *n, st_arena *arena, st_error *err)
{
    eng_tensor *t = st_arena_calloc(arena, 1, sizeof *t, 8);
    if (!t)
        return st_fail(err, ST_ENOMEM, "out of memory");
    const onnx_attr *a = n->proto->attr_count ? &n->proto->attrs[0] : NULL;
    if (!a || n->proto->attr_count != 1)
        return st_fail(err, ST_ECORRUPT, "Constant needs exactly one value attribute");
    int64_t one = 1;
    if (st_str_eq_c(a->name, "value") && a->t) {
        const onnx_tensor *pt = a->t;
        if (pt->dim_count > ENG_MAX_RANK || !st_dtype_is_valid(pt->data_type))
            return st_fail(err, ST_EUNSUPPORTED, "Constant of type %s or rank %zu is not supported",
                           onnx_data_type_name(pt->data_type), pt->dim_count);
        onnx_tensor_data td;
        st_status s = onnx_tensor_materialize(pt, NULL, arena, &td, err);
        if (s != ST_OK)
            return s;
        eng_set_shape(t, (st_dtype)pt->data_type, pt->dims, (uint32_t)pt->dim_count);
        size_t bytes = t->count * eng_elem_bytes(t->dtype);
        void *copy = st_arena_alloc(arena, bytes ? bytes : 1, 64);
        if (!copy)
            return st_fail(err, ST_ENOMEM, "out of memory");
        if (bytes)
            memcpy(copy, t->dtype == ST_DT_STRING ? (const void *)td.strings : td.data, bytes);
        t->data = copy;
    } else if (st_str_eq_c(a->name, "value_float") || st_str_eq_c(a->name, "value_int")) {
        bool is_f = a->name.ptr[6] == 'f';
        eng_set_shape(t, is_f ? ST_DT_FLOAT32 : ST_DT_INT64, &one, 0);
        t->data = st_arena_alloc(arena, 8, 64);
        if (!t->data)
            return st_fail(err, ST_ENOMEM, "out of memory");
        if (is_f)
            *(float *)t->data = a->f;
        else
            *(int64_t *)t->data = a->i;
    } else if (st_str_eq_c(a->name, "value_floats") || st_str_eq_c(a->name, "value_ints")) {
        bool is_f = a->name.ptr[6] == 'f';
        int64_t count = (int64_t)(is_f ? a->float_count : a->int_count);
        eng_set_shape(t, is_f ? ST_DT_FLOAT32 : ST_DT_INT64, &count, 1);
        size_t bytes = (size_t)count * (is_f ? 4 : 8);
        t->data = st_arena_alloc(arena, bytes ? bytes : 1, 64);
        if (!t->data)
            return st_fail(err, ST_ENOMEM, "out of memory");
        if (bytes)
            memcpy(t->data, is_f ? (const void *)a->floats : (const void *)a->ints, bytes);
    } else if (st_str_eq_c(a->name, "value_string")) {
        eng_set_shape(t, ST_DT_STRING, &one, 0);
        st_str *sv = st_arena_alloc(arena, sizeof *sv, 8);
        if (!sv)
            return st_fail(err, ST_ENOMEM, "out of memory");
        *sv = a->s;
        t->data = sv;
    } else if (st_str_eq_c(a->name, "value_strings")) {
        int64_t count = (int64_t)a->string_count;
        eng_set_shape(t, ST_DT_STRING, &count, 1);
        t->data = (void *)a->strings;
    } else {
        return st_fail(err, ST_EUNSUPPORTED, "Constant attribute '%.*s' is not supported", ST_STR_FMT(a->name));
    }
    n->state = t;
    return ST_OK;
}

static st_status constant_infer(eng_kctx *k)
{
    const eng_tensor *t = k->node->state;
    eng_set_shape(k->out[0], t->dtype, t->shape, t->rank);
    return ST_OK;
}

static st_status constant_run(eng_kctx *k)
{
    const eng_tensor *t = k->node->state;
    if (t->count)
        memcpy(k->out[0]->data, t->data, t->count * eng_elem_bytes(t->dtype));
    return ST_OK;
}

/* --- Shape ------------------------------------------------------------------ */

static void shape_range(const eng_kctx *k, int rank, int *begin, int *end)
{
    int64_t s = eng_attr_int(k->node, "start", 0);
    int64_t e = eng_attr_int(k->node, "end", rank);
    if (s < 0)
        s += rank;
    if (e < 0)
        e += rank;
    s = s < 0 ? 0 : s > rank ? rank : s;
    e = e < 0 ? 0 : e > rank ? rank : e;
    *begin = (int)s;
    *end = (int)(e < s ? s : e);
}

static st_status shape_infer(eng_kctx *k)
{
    int b, e;
    shape_range(k, (int)k->in[0]->rank, &b, &e);
    int64_t n = e - b;
    eng_set_shape(k->out[0], ST_DT_INT64, &n, 1);
    return ST_OK;
}

static st_status shape_run(eng_kctx *k)
{
    int b, e;
    shape_range(k, (int)k->in[0]->rank, &b, &e);
    for (int i = b; i < e; i++)
        ((int64_t *)k->out[0]->data)[i - b] = k->in[0]->shape[i];
    return ST_OK;
}

static st_status size_infer(eng_kctx *k)
{
    eng_set_shape(k->out[0], ST_DT_INT64, NULL, 0);
    return ST_OK;
}

static st_status size_run(eng_kctx *k)
{
    *(int64_t *)k->out[0]->data = (int64_t)k->in[0]->count;
    return ST_OK;
}

/* --- Reshape ---------------------------------------------------------------- */

static st_status reshape_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    int64_t target[ENG_MAX_RANK];
    size_t n;
    if (k->node->opset < 5) {
        const int64_t *s = eng_attr_ints(k->node, "shape", &n);
        if (n > ENG_MAX_RANK)
            return eng_fail(k, ST_EUNSUPPORTED, "rank %zu is above %d", n, ENG_MAX_RANK);
        memcpy(target, s, n * sizeof *s);
    } else {
        const eng_tensor *shape = k->n_in > 1 ? k->in[1] : NULL;
        if (!shape || shape->dtype != ST_DT_INT64 || shape->rank != 1)
            return eng_fail(k, ST_EINVAL, "the shape input must be a 1-D int64 tensor");
        n = shape->count;
        if (n > ENG_MAX_RANK)
            return eng_fail(k, ST_EUNSUPPORTED, "rank %zu is above %d", n, ENG_MAX_RANK);
        memcpy(target, shape->data, n * sizeof(int64_t));
    }
    bool allowzero = eng_attr_int(k->node, "allowzero", 0) != 0;
    int infer_at = -1;
    size_t known = 1;
    for (size_t i = 0; i < n; i++) {
        if (target[i] == 0 && !allowzero) {
            if (i >= x->rank)
                return eng_fail(k, ST_ESHAPE, "dimension %zu is 0 (copy) but the input has rank %u", i, x->rank);
            target[i] = x->shape[i];
        }
        if (target[i] == -1) {
            if (infer_at >= 0)
                return eng_fail(k, ST_ESHAPE, "more than one dimension is -1");
            infer_at = (int)i;
            continue;
        }
        if (target[i] < 0)
            return eng_fail(k, ST_ESHAPE, "dimension %zu is %lld", i, (long long)target[i]);
        if (st_mul_overflow(known, (size_t)target[i], &known))
            return eng_fail(k, ST_EOVERFLOW, "the target shape overflows");
    }
    if (infer_at >= 0) {
        if (known == 0 || x->count % known != 0)
            return eng_fail(k, ST_ESHAPE, "cannot infer dimension %d: %zu elements into blocks of %zu", infer_at,
                            x->count, known);
        target[infer_at] = (int64_t)(x->count / known);
        known = x->count;
    }
    if (known != x->count)
        return eng_fail(k, ST_ESHAPE, "cannot reshape %zu elements into a shape of %zu", x->count, known);
    eng_set_shape(k->out[0], x->dtype, target, (uint32_t)n);
    return ST_OK;
}

/* --- Flatten ------------------------------------------------------------------ */

static st_status flatten_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    int axis;
    int64_t a = eng_attr_int(k->node, "axis", 1);
    if (a < -(int64_t)x->rank || a > (int64_t)x->rank)
        return eng_fail(k, ST_EINVAL, "axis %lld is out of range for rank %u", (long long)a, x->rank);
    axis = (int)(a < 0 ? a + x->rank : a);
    int64_t shape[2] = { 1, 1 };
    for (int i = 0; i < (int)x->rank; i++)
        shape[i < axis ? 0 : 1] *= x->shape[i];
    eng_set_shape(k->out[0], x->dtype, shape, 2);
    return ST_OK;
}

/* --- Squeeze / Unsqueeze ----------------------------------------------------- */

static const int64_t *axes_of(const eng_kctx *k, size_t input, size_t *count)
{
    if (k->node->opset >= 13) {
        const eng_tensor *a = k->n_in > input ? k->in[input] : NULL;
        if (!a) {
            *count = 0;
            return NULL;
        }
        *count = a->count;
        return a->data;
    }
    return eng_attr_ints(k->node, "axes", count);
}

static st_status squeeze_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    size_t n;
    const int64_t *axes = axes_of(k, 1, &n);
    bool drop[ENG_MAX_RANK] = { false };
    if (n == 0) {
        for (uint32_t i = 0; i < x->rank; i++)
            drop[i] = x->shape[i] == 1;
    }
    for (size_t i = 0; i < n; i++) {
        int ax;
        st_status s = eng_axis(k, axes[i], (int)x->rank, &ax);
        if (s != ST_OK)
            return s;
        if (x->shape[ax] != 1)
            return eng_fail(k, ST_ESHAPE, "cannot squeeze axis %d of size %lld", ax, (long long)x->shape[ax]);
        drop[ax] = true;
    }
    int64_t shape[ENG_MAX_RANK];
    uint32_t r = 0;
    for (uint32_t i = 0; i < x->rank; i++)
        if (!drop[i])
            shape[r++] = x->shape[i];
    eng_set_shape(k->out[0], x->dtype, shape, r);
    return ST_OK;
}

static st_status unsqueeze_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    size_t n;
    const int64_t *axes = axes_of(k, 1, &n);
    int out_rank = (int)x->rank + (int)n;
    if (out_rank > ENG_MAX_RANK)
        return eng_fail(k, ST_EUNSUPPORTED, "rank %d is above %d", out_rank, ENG_MAX_RANK);
    bool add[ENG_MAX_RANK] = { false };
    for (size_t i = 0; i < n; i++) {
        int ax;
        st_status s = eng_axis(k, axes[i], out_rank, &ax);
        if (s != ST_OK)
            return s;
        if (add[ax])
            return eng_fail(k, ST_EINVAL, "axis %d is repeated", ax);
        add[ax] = true;
    }
    int64_t shape[ENG_MAX_RANK];
    uint32_t src = 0;
    for (int i = 0; i < out_rank; i++)
        shape[i] = add[i] ? 1 : x->shape[src++];
    eng_set_shape(k->out[0], x->dtype, shape, (uint32_t)out_rank);
    return ST_OK;
}

/* --- Transpose ------------------------------------------------------------------ */

static st_status transpose_perm(const eng_kctx *k, int *perm)
{
    const eng_tensor *x = k->in[0];
    size_t n;
    const int64_t *p = eng_attr_ints(k->node, "perm", &n);
    if (!p) {
        for (uint32_t i = 0; i < x->rank; i++)
            perm[i] = (int)(x->rank - 1 - i);
        return ST_OK;
    }
    if (n != x->rank)
        return eng_fail(k, ST_EINVAL, "perm has %zu entries for rank %u", n, x->rank);
    bool seen[ENG_MAX_RANK] = { false };
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0 || p[i] >= (int64_t)n || seen[p[i]])
            return eng_fail(k, ST_EINVAL, "perm is not a permutation");
        seen[p[i]] = true;
        perm[i] = (int)p[i];
    }
    return ST_OK;
}

static st_status transpose_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    int perm[ENG_MAX_RANK];
    st_status s = transpose_perm(k, perm);
    if (s != ST_OK)
        return s;
    int64_t shape[ENG_MAX_RANK];
    for (uint32_t i = 0; i < x->rank; i++)
        shape[i] = x->shape[perm[i]];
    eng_set_shape(k->out[0], x->dtype, shape, x->rank);
    return ST_OK;
}

void eng_transpose(const void *src, void *dst, size_t es, const int64_t *shape, uint32_t rank, const int *perm)
{
    size_t in_stride[ENG_MAX_RANK], out_shape[ENG_MAX_RANK], st[ENG_MAX_RANK];
    size_t acc = 1, count = 1;
    for (int i = (int)rank - 1; i >= 0; i--) {
        in_stride[i] = acc;
        acc *= (size_t)shape[i];
    }
    for (uint32_t i = 0; i < rank; i++) {
        out_shape[i] = (size_t)shape[perm[i]];
        st[i] = in_stride[perm[i]];
        count *= out_shape[i];
    }
    if (count == 0)
        return;
    size_t idx[ENG_MAX_RANK] = { 0 };
    size_t off = 0;
    const char *s = src;
    char *d = dst;
    size_t inner = rank ? out_shape[rank - 1] : 1, inner_stride = rank ? st[rank - 1] : 1;
    for (size_t o = 0; o < count; o += inner) {
        if (es == 4) {
            for (size_t j = 0; j < inner; j++)
                ((uint32_t *)d)[o + j] = ((const uint32_t *)s)[off + j * inner_stride];
        } else {
            for (size_t j = 0; j < inner; j++)
                memcpy(d + (o + j) * es, s + (off + j * inner_stride) * es, es);
        }
        for (int dd = (int)rank - 2; dd >= 0; dd--) {
            idx[dd]++;
            off += st[dd];
            if (idx[dd] < out_shape[dd])
                break;
            off -= st[dd] * idx[dd];
            idx[dd] = 0;
        }
    }
}

static st_status transpose_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    int perm[ENG_MAX_RANK];
    transpose_perm(k, perm);
    eng_transpose(x->data, k->out[0]->data, eng_elem_bytes(x->dtype), x->shape, x->rank, perm);
    return ST_OK;
}

/* --- Concat --------------------------------------------------------------------- */

static st_status concat_infer(eng_kctx *k)
{
    const eng_tensor *first = NULL;
    for (uint32_t i = 0; i < k->n_in; i++)
        if (k->in[i]) {
            first = k->in[i];
            break;
        }
    if (!first)
        return eng_fail(k, ST_EINVAL, "needs at least one input");
    int axis;
    st_status s = eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)first->rank, &axis);
    if (s != ST_OK)
        return s;
    int64_t shape[ENG_MAX_RANK];
    memcpy(shape, first->shape, sizeof shape);
    shape[axis] = 0;
    for (uint32_t i = 0; i < k->n_in; i++) {
        const eng_tensor *t = k->in[i];
        if (!t)
            continue;
        if (t->dtype != first->dtype || t->rank != first->rank)
            return eng_fail(k, ST_ESHAPE, "input %u has type %s rank %u, expected %s rank %u", i,
                            st_dtype_name(t->dtype), t->rank, st_dtype_name(first->dtype), first->rank);
        for (uint32_t d = 0; d < t->rank; d++)
            if ((int)d != axis && t->shape[d] != first->shape[d])
                return eng_fail(k, ST_ESHAPE, "input %u dimension %u is %lld, expected %lld", i, d,
                                (long long)t->shape[d], (long long)first->shape[d]);
        shape[axis] += t->shape[axis];
    }
    eng_set_shape(k->out[0], first->dtype, shape, first->rank);
    return ST_OK;
}

static st_status concat_run(eng_kctx *k)
{
    eng_tensor *o = k->out[0];
    int axis;
    eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)o->rank, &axis);
    size_t es = eng_elem_bytes(o->dtype);
    size_t outer = 1, inner = es;
    for (int d = 0; d < axis; d++)
        outer *= (size_t)o->shape[d];
    for (uint32_t d = (uint32_t)axis + 1; d < o->rank; d++)
        inner *= (size_t)o->shape[d];
    size_t out_row = inner * (size_t)o->shape[axis];
    size_t col = 0;
    for (uint32_t i = 0; i < k->n_in; i++) {
        const eng_tensor *t = k->in[i];
        if (!t)
            continue;
        size_t row = inner * (size_t)t->shape[axis];
        for (size_t r = 0; r < outer; r++)
            memcpy((char *)o->data + r * out_row + col, (const char *)t->data + r * row, row);
        col += row;
    }
    return ST_OK;
}

/* --- Cast --------------------------------------------------------------------------- */

static st_status cast_infer(eng_kctx *k)
{
    int64_t to = eng_attr_int(k->node, "to", 0);
    if (!st_dtype_is_valid((int)to) || to == ST_DT_UNDEFINED)
        return eng_fail(k, ST_EUNSUPPORTED, "cannot cast to data type %lld", (long long)to);
    eng_set_shape(k->out[0], (st_dtype)to, k->in[0]->shape, k->in[0]->rank);
    return ST_OK;
}

static bool is_int_type(st_dtype t)
{
    return t == ST_DT_INT8 || t == ST_DT_INT16 || t == ST_DT_INT32 || t == ST_DT_INT64 || t == ST_DT_UINT8 ||
           t == ST_DT_UINT16 || t == ST_DT_UINT32 || t == ST_DT_UINT64 || t == ST_DT_BOOL;
}

static void store_int(eng_tensor *o, size_t i, int64_t v)
{
    switch (o->dtype) {
    case ST_DT_INT8: ((int8_t *)o->data)[i] = (int8_t)v; break;
    case ST_DT_INT16: ((int16_t *)o->data)[i] = (int16_t)v; break;
    case ST_DT_INT32: ((int32_t *)o->data)[i] = (int32_t)v; break;
    case ST_DT_INT64: ((int64_t *)o->data)[i] = v; break;
    case ST_DT_UINT8: ((uint8_t *)o->data)[i] = (uint8_t)v; break;
    case ST_DT_UINT16: ((uint16_t *)o->data)[i] = (uint16_t)v; break;
    case ST_DT_UINT32: ((uint32_t *)o->data)[i] = (uint32_t)v; break;
    case ST_DT_UINT64: ((uint64_t *)o->data)[i] = (uint64_t)v; break;
    case ST_DT_BOOL: ((uint8_t *)o->data)[i] = v != 0; break;
    case ST_DT_FLOAT32: ((float *)o->data)[i] = (float)v; break;
    case ST_DT_FLOAT64: ((double *)o->data)[i] = (double)v; break;
    case ST_DT_FLOAT16: ((uint16_t *)o->data)[i] = st_float_to_half((float)v); break;
    default: break;
    }
}

static void store_float(eng_tensor *o, size_t i, double v)
{
    switch (o->dtype) {
    case ST_DT_FLOAT32: ((float *)o->data)[i] = (float)v; break;
    case ST_DT_FLOAT64: ((double *)o->data)[i] = v; break;
    case ST_DT_FLOAT16: ((uint16_t *)o->data)[i] = st_float_to_half((float)v); break;
    case ST_DT_BOOL: ((uint8_t *)o->data)[i] = v != 0; break;
    default:
        /* NaN and out-of-range values have no defined integer; use 0 / clamp
         * rather than C's undefined behaviour. */
        if (isnan(v))
            v = 0;
        if (o->dtype == ST_DT_UINT64 && v >= 0) {
            ((uint64_t *)o->data)[i] = v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)v;
            break;
        }
        if (v >= 9223372036854775807.0)
            v = 9223372036854775807.0;
        if (v <= -9223372036854775808.0)
            v = -9223372036854775808.0;
        store_int(o, i, (int64_t)v);
    }
}

static st_status cast_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    if (x->dtype == o->dtype)
        return copy_run(k);
    if (x->dtype == ST_DT_STRING || o->dtype == ST_DT_STRING) {
        if (o->dtype == ST_DT_STRING) {
            st_str *out = o->data;
            for (size_t i = 0; i < x->count; i++) {
                char buf[40];
                int n;
                if (is_int_type(x->dtype))
                    n = snprintf(buf, sizeof buf, "%lld", (long long)eng_int_at(x, i));
                else {
                    double v = eng_num_at(x, i);
                    n = isnan(v) ? snprintf(buf, sizeof buf, "NaN")
                        : isinf(v) ? snprintf(buf, sizeof buf, v > 0 ? "INF" : "-INF")
                        : snprintf(buf, sizeof buf, "%.9g", v);
                }
                char *p = st_arena_strndup(k->scratch, buf, (size_t)n);
                if (!p)
                    return eng_fail(k, ST_ENOMEM, "out of memory");
                out[i] = st_str_make(p, (size_t)n);
            }
            return ST_OK;
        }
        const st_str *in = x->data;
        for (size_t i = 0; i < x->count; i++) {
            char buf[64];
            size_t n = in[i].len < sizeof buf - 1 ? in[i].len : sizeof buf - 1;
            memcpy(buf, in[i].ptr, n);
            buf[n] = '\0';
            if (is_int_type(o->dtype))
                store_int(o, i, strtoll(buf, NULL, 10));
            else
                store_float(o, i, strtod(buf, NULL));
        }
        return ST_OK;
    }
    if (is_int_type(x->dtype)) {
        if (x->dtype == ST_DT_UINT64) {
            for (size_t i = 0; i < x->count; i++) {
                uint64_t v = ((const uint64_t *)x->data)[i];
                if (is_int_type(o->dtype))
                    store_int(o, i, (int64_t)v);
                else
                    store_float(o, i, (double)v);
            }
            return ST_OK;
        }
        for (size_t i = 0; i < x->count; i++)
            store_int(o, i, eng_int_at(x, i));
        return ST_OK;
    }
    for (size_t i = 0; i < x->count; i++)
        store_float(o, i, eng_num_at(x, i));
    return ST_OK;
}

static st_status castlike_infer(eng_kctx *k)
{
    if (k->n_in < 2 || !k->in[1])
        return eng_fail(k, ST_EINVAL, "needs the target_type input");
    eng_set_shape(k->out[0], k->in[1]->dtype, k->in[0]->shape, k->in[0]->rank);
    return ST_OK;
}

const eng_op eng_ops_shape[] = {
    { "", "Identity", 1, NULL, eng_infer_same_as_input, copy_run },
    { "", "Dropout", 1, NULL, dropout_infer, dropout_run },
    { "", "Constant", 1, constant_check, constant_infer, constant_run },
    { "", "Shape", 1, NULL, shape_infer, shape_run },
    { "", "Size", 1, NULL, size_infer, size_run },
    { "", "Reshape", 1, NULL, reshape_infer, copy_run },
    { "", "Flatten", 1, NULL, flatten_infer, copy_run },
    { "", "Squeeze", 1, NULL, squeeze_infer, copy_run },
    { "", "Unsqueeze", 1, NULL, unsqueeze_infer, copy_run },
    { "", "Transpose", 1, NULL, transpose_infer, transpose_run },
    { "", "Concat", 1, NULL, concat_infer, concat_run },
    { "", "Cast", 1, NULL, cast_infer, cast_run },
    { "", "CastLike", 15, NULL, castlike_infer, cast_run },
    { 0 },
};
