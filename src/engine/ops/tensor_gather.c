/* tensor_gather.c - index-driven reads and writes: Gather (the embedding
 * lookup: one row memcpy per index), GatherElements, GatherND, ScatterND,
 * ScatterElements and its opset-9 alias Scatter.  Indices are checked
 * against the data before any element moves; negative ones count from the
 * end of their axis. */
#include <string.h>

#include "base/alloc.h"
#include "engine/ops/tensor_int.h"

static bool is_index_type(st_dtype t)
{
    return t == ST_DT_INT64 || t == ST_DT_INT32;
}

static int64_t index_at(const eng_tensor *t, size_t i)
{
    return t->dtype == ST_DT_INT64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
}

/* Normalises index i of `t` against an axis of size dim; ST_EINVAL naming
 * the value when it is outside [-dim, dim). */
static st_status norm_index(const eng_kctx *k, const eng_tensor *t, size_t i, int64_t dim, int64_t *out)
{
    int64_t v = index_at(t, i);
    if (v < -dim || v >= dim)
        return eng_fail(k, ST_EINVAL, "index %lld (at %zu) is out of range for a dimension of size %lld", (long long)v,
                        i, (long long)dim);
    *out = v < 0 ? v + dim : v;
    return ST_OK;
}

/* Copies one element of es bytes. */
static inline void copy_elem(char *dst, const char *src, size_t es)
{
    switch (es) {
    case 1: *(uint8_t *)dst = *(const uint8_t *)src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, es); break;
    }
}

/* --- Gather ---------------------------------------------------------------- */

st_status tensor_gather_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *ind = k->n_in > 1 ? k->in[1] : NULL;
    if (!x || !ind)
        return eng_fail(k, ST_EINVAL, "data and indices are required");
    if (!is_index_type(ind->dtype))
        return eng_fail(k, ST_ETYPE, "indices must be int32 or int64, got %s", st_dtype_name(ind->dtype));
    int axis;
    st_status s = eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)x->rank, &axis);
    if (s != ST_OK)
        return s;
    uint32_t rank = x->rank - 1 + ind->rank;
    if (rank > ENG_MAX_RANK)
        return eng_fail(k, ST_EUNSUPPORTED, "output rank %u is above %d", rank, ENG_MAX_RANK);
    int64_t shape[ENG_MAX_RANK];
    uint32_t r = 0;
    for (int d = 0; d < axis; d++)
        shape[r++] = x->shape[d];
    for (uint32_t d = 0; d < ind->rank; d++)
        shape[r++] = ind->shape[d];
    for (uint32_t d = (uint32_t)axis + 1; d < x->rank; d++)
        shape[r++] = x->shape[d];
    eng_set_shape(k->out[0], x->dtype, shape, r);
    return ST_OK;
}

st_status tensor_gather_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *ind = k->in[1];
    eng_tensor *o = k->out[0];
    if (o->count == 0)
        return ST_OK;
    int axis;
    eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)x->rank, &axis);
    size_t outer = 1, row = tensor_esize(x->dtype), n_idx = ind->count;
    int64_t dim = x->shape[axis];
    for (int d = 0; d < axis; d++)
        outer *= (size_t)x->shape[d];
    for (uint32_t d = (uint32_t)axis + 1; d < x->rank; d++)
        row *= (size_t)x->shape[d];
    /* Indices checked and normalised once, reused for every outer slice. */
    int64_t *idx = st_arena_alloc(k->scratch, n_idx * sizeof *idx, 8);
    if (!idx)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t j = 0; j < n_idx; j++) {
        st_status s = norm_index(k, ind, j, dim, &idx[j]);
        if (s != ST_OK)
            return s;
    }
    const char *src = x->data;
    char *dst = o->data;
    size_t slab = (size_t)dim * row;
    for (size_t t = 0; t < outer; t++, src += slab) {
        switch (row) {
        case 4:
            for (size_t j = 0; j < n_idx; j++)
                ((uint32_t *)dst)[j] = ((const uint32_t *)src)[idx[j]];
            break;
        case 8:
            for (size_t j = 0; j < n_idx; j++)
                ((uint64_t *)dst)[j] = ((const uint64_t *)src)[idx[j]];
            break;
        default:
            for (size_t j = 0; j < n_idx; j++)
                memcpy(dst + j * row, src + (size_t)idx[j] * row, row);
        }
        dst += n_idx * row;
    }
    return ST_OK;
}

/* --- GatherElements / ScatterElements shared checks --------------------------- */

/* indices has data's rank and, off the axis, no larger dims. */
static st_status elements_args(const eng_kctx *k, const eng_tensor *x, const eng_tensor *ind, int *axis)
{
    if (!is_index_type(ind->dtype))
        return eng_fail(k, ST_ETYPE, "indices must be int32 or int64, got %s", st_dtype_name(ind->dtype));
    if (ind->rank != x->rank)
        return eng_fail(k, ST_ESHAPE, "indices has rank %u, data has rank %u", ind->rank, x->rank);
    st_status s = eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)x->rank, axis);
    if (s != ST_OK)
        return s;
    for (uint32_t d = 0; d < x->rank; d++)
        if ((int)d != *axis && ind->shape[d] > x->shape[d])
            return eng_fail(k, ST_ESHAPE, "indices dimension %u is %lld, data's is %lld", d, (long long)ind->shape[d],
                            (long long)x->shape[d]);
    return ST_OK;
}

/* Walks indices in C order calling back with (position in indices, element
 * offset in data).  Stops at the first error. */
typedef st_status (*elements_fn)(void *ctx, size_t pos, size_t data_off);

static st_status walk_elements(const eng_kctx *k, const eng_tensor *x, const eng_tensor *ind, int axis,
                               elements_fn fn, void *ctx)
{
    int64_t stride[ENG_MAX_RANK], idx[ENG_MAX_RANK] = { 0 };
    tensor_strides(x->shape, x->rank, stride);
    int64_t dim = x->shape[axis];
    size_t base = 0; /* offset of idx with the axis coordinate left out */
    for (size_t pos = 0; pos < ind->count; pos++) {
        int64_t v = 0;
        st_status s = norm_index(k, ind, pos, dim, &v);
        if (s != ST_OK)
            return s;
        if ((s = fn(ctx, pos, base + (size_t)(v * stride[axis]))) != ST_OK)
            return s;
        for (int d = (int)ind->rank - 1; d >= 0; d--) {
            idx[d]++;
            if (d != axis)
                base += (size_t)stride[d];
            if (idx[d] < ind->shape[d])
                break;
            if (d != axis)
                base -= (size_t)(stride[d] * idx[d]);
            idx[d] = 0;
        }
    }
    return ST_OK;
}

/* --- GatherElements ------------------------------------------------------------- */

st_status tensor_gather_elements_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *ind = k->n_in > 1 ? k->in[1] : NULL;
    if (!x || !ind)
        return eng_fail(k, ST_EINVAL, "data and indices are required");
    int axis;
    st_status s = elements_args(k, x, ind, &axis);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], x->dtype, ind->shape, ind->rank);
    return ST_OK;
}

typedef struct elem_ctx {
    char *out;
    const char *src;
    size_t es;
    int reduction;
    st_dtype dtype;
} elem_ctx;

static st_status gather_elem(void *vctx, size_t pos, size_t off)
{
    elem_ctx *c = vctx;
    copy_elem(c->out + pos * c->es, c->src + off * c->es, c->es);
    return ST_OK;
}

st_status tensor_gather_elements_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *ind = k->in[1];
    if (k->out[0]->count == 0)
        return ST_OK;
    int axis;
    st_status s = elements_args(k, x, ind, &axis);
    if (s != ST_OK)
        return s;
    elem_ctx c = { .out = k->out[0]->data, .src = x->data, .es = tensor_esize(x->dtype) };
    return walk_elements(k, x, ind, axis, gather_elem, &c);
}

/* --- GatherND ------------------------------------------------------------------------ */

typedef struct nd_plan {
    size_t batches;      /* product of the batch dims */
    size_t tuples;       /* index tuples per batch */
    size_t m;            /* tuple length */
    size_t slice;        /* elements per gathered slice */
    size_t batch_elems;  /* data elements per batch */
    int64_t dims[ENG_MAX_RANK], stride[ENG_MAX_RANK]; /* the m indexed data dims */
} nd_plan;

/* Checks data/indices for GatherND / ScatterND (batch_dims b, 0 for
 * ScatterND) and fills the plan. */
static st_status nd_plan_make(const eng_kctx *k, const eng_tensor *x, const eng_tensor *ind, int64_t b, nd_plan *p)
{
    if (!is_index_type(ind->dtype))
        return eng_fail(k, ST_ETYPE, "indices must be int64 or int32, got %s", st_dtype_name(ind->dtype));
    if (ind->rank < 1 || x->rank < 1)
        return eng_fail(k, ST_ESHAPE, "data and indices must have rank >= 1");
    if (b < 0 || b >= (int64_t)ind->rank || b >= (int64_t)x->rank)
        return eng_fail(k, ST_EINVAL, "batch_dims %lld must be below both ranks (%u, %u)", (long long)b, x->rank,
                        ind->rank);
    int64_t m = ind->shape[ind->rank - 1];
    if (m < 0 || m > (int64_t)x->rank - b)
        return eng_fail(k, ST_ESHAPE, "the last indices dimension is %lld, expected 1..%lld", (long long)m,
                        (long long)(x->rank - b));
    p->batches = 1;
    for (int64_t d = 0; d < b; d++) {
        if (ind->shape[d] != x->shape[d])
            return eng_fail(k, ST_ESHAPE, "batch dimension %lld differs (data %lld, indices %lld)", (long long)d,
                            (long long)x->shape[d], (long long)ind->shape[d]);
        p->batches *= (size_t)x->shape[d];
    }
    p->tuples = 1;
    for (uint32_t d = (uint32_t)b; d + 1 < ind->rank; d++)
        p->tuples *= (size_t)ind->shape[d];
    p->m = (size_t)m;
    p->slice = 1;
    for (uint32_t d = (uint32_t)(b + m); d < x->rank; d++)
        p->slice *= (size_t)x->shape[d];
    int64_t acc = (int64_t)p->slice;
    for (int64_t j = m - 1; j >= 0; j--) {
        p->dims[j] = x->shape[b + j];
        p->stride[j] = acc;
        acc *= p->dims[j];
    }
    p->batch_elems = (size_t)acc;
    return ST_OK;
}

/* Element offset (within its batch) of tuple t of batch bt. */
static st_status nd_offset(const eng_kctx *k, const eng_tensor *ind, const nd_plan *p, size_t bt, size_t t,
                           size_t *off)
{
    size_t first = (bt * p->tuples + t) * p->m, o = 0;
    for (size_t j = 0; j < p->m; j++) {
        int64_t v = 0;
        st_status s = norm_index(k, ind, first + j, p->dims[j], &v);
        if (s != ST_OK)
            return s;
        o += (size_t)(v * p->stride[j]);
    }
    *off = o;
    return ST_OK;
}

st_status tensor_gather_nd_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *ind = k->n_in > 1 ? k->in[1] : NULL;
    if (!x || !ind)
        return eng_fail(k, ST_EINVAL, "data and indices are required");
    int64_t b = eng_attr_int(k->node, "batch_dims", 0);
    nd_plan p;
    st_status s = nd_plan_make(k, x, ind, b, &p);
    if (s != ST_OK)
        return s;
    uint32_t rank = ind->rank - 1 + x->rank - (uint32_t)b - (uint32_t)p.m;
    if (rank > ENG_MAX_RANK)
        return eng_fail(k, ST_EUNSUPPORTED, "output rank %u is above %d", rank, ENG_MAX_RANK);
    int64_t shape[ENG_MAX_RANK];
    uint32_t r = 0;
    for (uint32_t d = 0; d + 1 < ind->rank; d++)
        shape[r++] = ind->shape[d];
    for (uint32_t d = (uint32_t)b + (uint32_t)p.m; d < x->rank; d++)
        shape[r++] = x->shape[d];
    eng_set_shape(k->out[0], x->dtype, shape, r);
    return ST_OK;
}

st_status tensor_gather_nd_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *ind = k->in[1];
    if (k->out[0]->count == 0)
        return ST_OK;
    nd_plan p;
    st_status s = nd_plan_make(k, x, ind, eng_attr_int(k->node, "batch_dims", 0), &p);
    if (s != ST_OK)
        return s;
    size_t es = tensor_esize(x->dtype), bytes = p.slice * es;
    char *dst = k->out[0]->data;
    for (size_t bt = 0; bt < p.batches; bt++) {
        const char *src = (const char *)x->data + bt * p.batch_elems * es;
        for (size_t t = 0; t < p.tuples; t++, dst += bytes) {
            size_t off;
            if ((s = nd_offset(k, ind, &p, bt, t, &off)) != ST_OK)
                return s;
            memcpy(dst, src + off * es, bytes);
        }
    }
    return ST_OK;
}

/* --- scatter reductions ------------------------------------------------------------- */

enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };

st_status tensor_scatter_check(eng_node *n, st_arena *arena, st_error *err)
{
    int *red = st_arena_alloc(arena, sizeof *red, 8);
    if (!red)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_str r = eng_attr_str(n, "reduction", "none");
    if (st_str_eq_c(r, "none"))
        *red = RED_NONE;
    else if (st_str_eq_c(r, "add"))
        *red = RED_ADD;
    else if (st_str_eq_c(r, "mul"))
        *red = RED_MUL;
    else if (st_str_eq_c(r, "max"))
        *red = RED_MAX;
    else if (st_str_eq_c(r, "min"))
        *red = RED_MIN;
    else
        return st_fail(err, ST_EINVAL, "%.*s: reduction '%.*s' is not one of none, add, mul, max, min",
                       ST_STR_FMT(n->proto->op_type), ST_STR_FMT(r));
    n->state = red;
    return ST_OK;
}

#define REDUCE_LOOP(T)                                                             \
    do {                                                                           \
        T *d = dst;                                                                \
        const T *s = src;                                                          \
        switch (red) {                                                             \
        case RED_ADD: for (size_t i = 0; i < n; i++) d[i] = (T)(d[i] + s[i]); break; \
        case RED_MUL: for (size_t i = 0; i < n; i++) d[i] = (T)(d[i] * s[i]); break; \
        case RED_MAX: for (size_t i = 0; i < n; i++) d[i] = s[i] > d[i] ? s[i] : d[i]; break; \
        default: for (size_t i = 0; i < n; i++) d[i] = s[i] < d[i] ? s[i] : d[i]; break; \
        }                                                                          \
    } while (0)

/* dst[i] = dst[i] (red) src[i]; false for types without arithmetic. */
static bool reduce_into(st_dtype t, int red, void *dst, const void *src, size_t n)
{
    switch (t) {
    case ST_DT_FLOAT32: REDUCE_LOOP(float); return true;
    case ST_DT_FLOAT64: REDUCE_LOOP(double); return true;
    case ST_DT_INT8: REDUCE_LOOP(int8_t); return true;
    case ST_DT_INT16: REDUCE_LOOP(int16_t); return true;
    case ST_DT_INT32: REDUCE_LOOP(int32_t); return true;
    case ST_DT_INT64: REDUCE_LOOP(int64_t); return true;
    case ST_DT_UINT8: REDUCE_LOOP(uint8_t); return true;
    case ST_DT_UINT16: REDUCE_LOOP(uint16_t); return true;
    case ST_DT_UINT32: REDUCE_LOOP(uint32_t); return true;
    case ST_DT_UINT64: REDUCE_LOOP(uint64_t); return true;
    case ST_DT_FLOAT16:
        for (size_t i = 0; i < n; i++) {
            float a = st_half_to_float(((uint16_t *)dst)[i]), b = st_half_to_float(((const uint16_t *)src)[i]);
            float r = red == RED_ADD ? a + b : red == RED_MUL ? a * b : red == RED_MAX ? (b > a ? b : a)
                                                                                      : (b < a ? b : a);
            ((uint16_t *)dst)[i] = st_float_to_half(r);
        }
        return true;
    default: return false;
    }
}

static st_status check_reducible(const eng_kctx *k, st_dtype t)
{
    const int *red = k->node->state;
    uint8_t a = 0, b = 0;
    if (*red != RED_NONE && (t == ST_DT_BOOL || !reduce_into(t, *red, &a, &b, 0)))
        return eng_fail(k, ST_EUNSUPPORTED, "a reduction on type %s is not supported", st_dtype_name(t));
    return ST_OK;
}

/* --- ScatterND ------------------------------------------------------------------------ */

st_status tensor_scatter_nd_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *ind = k->n_in > 1 ? k->in[1] : NULL, *upd = k->n_in > 2 ? k->in[2] : NULL;
    if (!x || !ind || !upd)
        return eng_fail(k, ST_EINVAL, "data, indices and updates are required");
    if (upd->dtype != x->dtype)
        return eng_fail(k, ST_ETYPE, "updates has type %s, data has %s", st_dtype_name(upd->dtype),
                        st_dtype_name(x->dtype));
    nd_plan p;
    st_status s = nd_plan_make(k, x, ind, 0, &p);
    if (s != ST_OK)
        return s;
    if ((s = check_reducible(k, x->dtype)) != ST_OK)
        return s;
    /* updates = indices.shape[:-1] + data.shape[m:] */
    uint32_t want = ind->rank - 1 + x->rank - (uint32_t)p.m;
    bool ok = upd->rank == want;
    for (uint32_t d = 0; ok && d + 1 < ind->rank; d++)
        ok = upd->shape[d] == ind->shape[d];
    for (uint32_t d = (uint32_t)p.m; ok && d < x->rank; d++)
        ok = upd->shape[ind->rank - 1 + d - p.m] == x->shape[d];
    if (!ok)
        return eng_fail(k, ST_ESHAPE, "updates must have shape indices.shape[:-1] + data.shape[%zu:]", p.m);
    return eng_infer_same_as_input(k);
}

st_status tensor_scatter_nd_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *ind = k->in[1], *upd = k->in[2];
    eng_tensor *o = k->out[0];
    size_t es = tensor_esize(x->dtype);
    memcpy(o->data, x->data, x->count * es);
    if (o->count == 0 || upd->count == 0)
        return ST_OK;
    nd_plan p;
    st_status s = nd_plan_make(k, x, ind, 0, &p);
    if (s != ST_OK)
        return s;
    int red = *(const int *)k->node->state;
    const char *src = upd->data;
    size_t bytes = p.slice * es;
    for (size_t t = 0; t < p.tuples; t++, src += bytes) {
        size_t off;
        if ((s = nd_offset(k, ind, &p, 0, t, &off)) != ST_OK)
            return s;
        char *dst = (char *)o->data + off * es;
        if (red == RED_NONE)
            memcpy(dst, src, bytes);
        else
            reduce_into(x->dtype, red, dst, src, p.slice);
    }
    return ST_OK;
}

/* --- ScatterElements / Scatter ---------------------------------------------------------- */

st_status tensor_scatter_elements_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *ind = k->n_in > 1 ? k->in[1] : NULL, *upd = k->n_in > 2 ? k->in[2] : NULL;
    if (!x || !ind || !upd)
        return eng_fail(k, ST_EINVAL, "data, indices and updates are required");
    if (upd->dtype != x->dtype)
        return eng_fail(k, ST_ETYPE, "updates has type %s, data has %s", st_dtype_name(upd->dtype),
                        st_dtype_name(x->dtype));
    int axis;
    st_status s = elements_args(k, x, ind, &axis);
    if (s != ST_OK)
        return s;
    if ((s = check_reducible(k, x->dtype)) != ST_OK)
        return s;
    bool same = upd->rank == ind->rank;
    for (uint32_t d = 0; same && d < ind->rank; d++)
        same = upd->shape[d] == ind->shape[d];
    if (!same)
        return eng_fail(k, ST_ESHAPE, "updates must have the shape of indices");
    return eng_infer_same_as_input(k);
}

static st_status scatter_elem(void *vctx, size_t pos, size_t off)
{
    elem_ctx *c = vctx;
    if (c->reduction == RED_NONE)
        copy_elem(c->out + off * c->es, c->src + pos * c->es, c->es);
    else
        reduce_into(c->dtype, c->reduction, c->out + off * c->es, c->src + pos * c->es, 1);
    return ST_OK;
}

st_status tensor_scatter_elements_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *ind = k->in[1], *upd = k->in[2];
    eng_tensor *o = k->out[0];
    size_t es = tensor_esize(x->dtype);
    memcpy(o->data, x->data, x->count * es);
    if (ind->count == 0)
        return ST_OK;
    int axis;
    st_status s = elements_args(k, x, ind, &axis);
    if (s != ST_OK)
        return s;
    elem_ctx c = { .out = o->data, .src = upd->data, .es = es, .reduction = *(const int *)k->node->state,
                   .dtype = x->dtype };
    return walk_elements(k, x, ind, axis, scatter_elem, &c);
}
