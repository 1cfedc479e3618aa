/* tensor_slice.c - operators that cut, pad and repeat tensors along axes:
 * Slice, Split, Pad, Compress, ReverseSequence, Tile, Expand.  All move
 * whole elements by size, with contiguous runs copied as one memcpy. */
#include <string.h>

#include "base/alloc.h"
#include "engine/ops/tensor_int.h"

/* --- Slice ---------------------------------------------------------------- */

typedef struct slice_plan {
    int64_t start[ENG_MAX_RANK];
    int64_t step[ENG_MAX_RANK];
    int64_t dims[ENG_MAX_RANK]; /* output dims */
} slice_plan;

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Reads starts/ends/axes/steps (attributes before opset 10, inputs from
 * 10) and computes each axis's first index, step and output length. */
static st_status slice_plan_make(const eng_kctx *k, slice_plan *p)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the data input is required");
    int r = (int)x->rank;
    int64_t starts[ENG_MAX_RANK], ends[ENG_MAX_RANK], axes[ENG_MAX_RANK], steps[ENG_MAX_RANK];
    size_t ns, ne, na = 0, nst = 0;
    bool has_axes = false, has_steps = false;
    st_status s;
    if (k->node->opset < 10) {
        const int64_t *a;
        if (!(a = eng_attr_ints(k->node, "starts", &ns)) || ns > ENG_MAX_RANK)
            return eng_fail(k, ST_EINVAL, "the starts attribute is required (at most %d values)", ENG_MAX_RANK);
        memcpy(starts, a, ns * sizeof *a);
        if (!(a = eng_attr_ints(k->node, "ends", &ne)) || ne > ENG_MAX_RANK)
            return eng_fail(k, ST_EINVAL, "the ends attribute is required (at most %d values)", ENG_MAX_RANK);
        memcpy(ends, a, ne * sizeof *a);
        if ((a = eng_attr_ints(k->node, "axes", &na)) != NULL) {
            if (na > ENG_MAX_RANK)
                return eng_fail(k, ST_EINVAL, "axes has %zu values, at most %d", na, ENG_MAX_RANK);
            memcpy(axes, a, na * sizeof *a);
            has_axes = true;
        }
    } else {
        if (k->n_in < 3)
            return eng_fail(k, ST_EINVAL, "starts and ends inputs are required");
        if ((s = tensor_read_ints(k, k->in[1], "starts", starts, ENG_MAX_RANK, &ns)) != ST_OK ||
            (s = tensor_read_ints(k, k->in[2], "ends", ends, ENG_MAX_RANK, &ne)) != ST_OK)
            return s;
        if (k->n_in > 3 && k->in[3]) {
            if ((s = tensor_read_ints(k, k->in[3], "axes", axes, ENG_MAX_RANK, &na)) != ST_OK)
                return s;
            has_axes = true;
        }
        if (k->n_in > 4 && k->in[4]) {
            if ((s = tensor_read_ints(k, k->in[4], "steps", steps, ENG_MAX_RANK, &nst)) != ST_OK)
                return s;
            has_steps = true;
        }
    }
    if (ns != ne || (has_axes && na != ns) || (has_steps && nst != ns))
        return eng_fail(k, ST_EINVAL, "starts, ends, axes and steps must have one length (%zu, %zu, %zu, %zu)", ns,
                        ne, has_axes ? na : ns, has_steps ? nst : ns);
    if ((int)ns > r)
        return eng_fail(k, ST_EINVAL, "%zu starts for a rank-%d input", ns, r);
    for (int d = 0; d < r; d++) {
        p->start[d] = 0;
        p->step[d] = 1;
        p->dims[d] = x->shape[d];
    }
    bool seen[ENG_MAX_RANK] = { false };
    for (size_t i = 0; i < ns; i++) {
        int a = (int)i;
        if (has_axes && (s = eng_axis(k, axes[i], r, &a)) != ST_OK)
            return s;
        if (seen[a])
            return eng_fail(k, ST_EINVAL, "axis %d is repeated", a);
        seen[a] = true;
        int64_t step = has_steps ? steps[i] : 1;
        if (step == 0)
            return eng_fail(k, ST_EINVAL, "steps[%zu] is 0", i);
        int64_t dim = x->shape[a], b = starts[i], e = ends[i], n;
        /* Negative indices count from the end; adding a non-negative dim to
         * a negative value cannot overflow. */
        if (b < 0)
            b += dim;
        if (e < 0)
            e += dim;
        if (dim == 0) {
            n = 0;
            b = 0;
        } else if (step > 0) {
            b = clamp64(b, 0, dim);
            e = clamp64(e, 0, dim);
            n = e > b ? (e - b) / step + ((e - b) % step != 0) : 0;
        } else {
            b = clamp64(b, 0, dim - 1);
            e = clamp64(e, -1, dim - 1);
            int64_t mag = step == INT64_MIN ? INT64_MAX : -step;
            n = b > e ? (b - e) / mag + ((b - e) % mag != 0) : 0;
        }
        p->start[a] = b;
        p->step[a] = n > 1 ? step : 1; /* an unused step stays small: no overflow later */
        p->dims[a] = n;
    }
    return ST_OK;
}

st_status tensor_slice_infer(eng_kctx *k)
{
    slice_plan p;
    st_status s = slice_plan_make(k, &p);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], k->in[0]->dtype, p.dims, k->in[0]->rank);
    return ST_OK;
}

st_status tensor_slice_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    if (o->count == 0)
        return ST_OK;
    slice_plan p;
    st_status s = slice_plan_make(k, &p);
    if (s != ST_OK)
        return s;
    int64_t stride[ENG_MAX_RANK], view[ENG_MAX_RANK];
    tensor_strides(x->shape, x->rank, stride);
    size_t es = tensor_esize(x->dtype);
    int64_t base = 0;
    for (uint32_t d = 0; d < x->rank; d++) {
        base += p.start[d] * stride[d];
        view[d] = p.step[d] * stride[d];
    }
    tensor_copy_strided(o->data, (const char *)x->data + base * (int64_t)es, es, p.dims, view, (int)x->rank);
    return ST_OK;
}

/* --- Split ------------------------------------------------------------------------- */

/* The part lengths along the axis (scratch memory, k->n_out entries). */
static st_status split_sizes(const eng_kctx *k, int *axis, int64_t **sizes_out)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the input is required");
    st_status s = eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)x->rank, axis);
    if (s != ST_OK)
        return s;
    size_t n = k->n_out;
    if (n == 0)
        return eng_fail(k, ST_EINVAL, "needs at least one output");
    int64_t *sizes = st_arena_alloc(k->scratch, n * sizeof *sizes, 8);
    if (!sizes)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    int64_t dim = x->shape[*axis];
    const eng_tensor *split_in = k->n_in > 1 ? k->in[1] : NULL;
    size_t given = 0;
    const int64_t *attr = NULL;
    if (k->node->opset < 13)
        attr = eng_attr_ints(k->node, "split", &given);
    if (attr) {
        if (given != n)
            return eng_fail(k, ST_EINVAL, "split has %zu values for %zu outputs", given, n);
        memcpy(sizes, attr, n * sizeof *sizes);
    } else if (split_in) {
        if ((s = tensor_read_ints(k, split_in, "split", sizes, n, &given)) != ST_OK)
            return s;
        if (given != n)
            return eng_fail(k, ST_EINVAL, "split has %zu values for %zu outputs", given, n);
    } else {
        int64_t num = eng_attr_int(k->node, "num_outputs", (int64_t)n);
        if (num != (int64_t)n)
            return eng_fail(k, ST_EINVAL, "num_outputs is %lld but the node has %zu outputs", (long long)num, n);
        if (dim % (int64_t)n != 0 && k->node->opset < 18)
            return eng_fail(k, ST_ESHAPE, "dimension %lld does not split into %zu equal parts", (long long)dim, n);
        /* From opset 18 an uneven split makes the last part smaller. */
        int64_t chunk = dim / (int64_t)n + (dim % (int64_t)n != 0);
        for (size_t i = 0; i < n; i++) {
            int64_t left = dim - (int64_t)i * chunk;
            sizes[i] = left < 0 ? 0 : left < chunk ? left : chunk;
        }
    }
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (sizes[i] < 0 || sizes[i] > dim)
            return eng_fail(k, ST_EINVAL, "split[%zu] is %lld, expected 0..%lld", i, (long long)sizes[i],
                            (long long)dim);
        sum += sizes[i];
    }
    if (sum != dim)
        return eng_fail(k, ST_EINVAL, "split sums to %lld, the axis has %lld", (long long)sum, (long long)dim);
    *sizes_out = sizes;
    return ST_OK;
}

st_status tensor_split_infer(eng_kctx *k)
{
    int axis;
    int64_t *sizes;
    st_status s = split_sizes(k, &axis, &sizes);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    int64_t shape[ENG_MAX_RANK];
    memcpy(shape, x->shape, x->rank * sizeof *shape);
    for (uint32_t i = 0; i < k->n_out; i++) {
        if (!k->out[i])
            continue;
        shape[axis] = sizes[i];
        eng_set_shape(k->out[i], x->dtype, shape, x->rank);
    }
    return ST_OK;
}

st_status tensor_split_run(eng_kctx *k)
{
    int axis;
    int64_t *sizes;
    st_status s = split_sizes(k, &axis, &sizes);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    size_t outer = 1, inner = tensor_esize(x->dtype);
    for (int d = 0; d < axis; d++)
        outer *= (size_t)x->shape[d];
    for (uint32_t d = (uint32_t)axis + 1; d < x->rank; d++)
        inner *= (size_t)x->shape[d];
    size_t in_row = inner * (size_t)x->shape[axis], col = 0;
    for (uint32_t i = 0; i < k->n_out; i++) {
        size_t part = inner * (size_t)sizes[i];
        eng_tensor *o = k->out[i];
        if (o && part) {
            for (size_t r = 0; r < outer; r++)
                memcpy((char *)o->data + r * part, (const char *)x->data + r * in_row + col, part);
        }
        col += part;
    }
    return ST_OK;
}

/* --- Pad --------------------------------------------------------------------------- */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

typedef struct pad_plan {
    int mode;
    int64_t begin[ENG_MAX_RANK], end[ENG_MAX_RANK];
    int64_t dims[ENG_MAX_RANK];
    uint8_t value[16]; /* the constant, one element */
} pad_plan;

static st_status pad_plan_make(const eng_kctx *k, pad_plan *p)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the data input is required");
    int r = (int)x->rank;
    st_str mode = eng_attr_str(k->node, "mode", "constant");
    if (st_str_eq_c(mode, "constant"))
        p->mode = PAD_CONSTANT;
    else if (st_str_eq_c(mode, "reflect"))
        p->mode = PAD_REFLECT;
    else if (st_str_eq_c(mode, "edge"))
        p->mode = PAD_EDGE;
    else if (st_str_eq_c(mode, "wrap"))
        p->mode = PAD_WRAP;
    else
        return eng_fail(k, ST_EINVAL, "mode '%.*s' is not one of constant, reflect, edge, wrap", ST_STR_FMT(mode));
    int64_t pads[2 * ENG_MAX_RANK], axes[ENG_MAX_RANK];
    size_t np, na;
    st_status s;
    memset(p->value, 0, sizeof p->value);
    if (x->dtype == ST_DT_STRING) {
        st_str empty = ST_STR("");
        memcpy(p->value, &empty, sizeof empty);
    }
    if (k->node->opset < 11) {
        const int64_t *a = eng_attr_ints(k->node, "pads", &np);
        if (!a)
            a = eng_attr_ints(k->node, "paddings", &np);
        if (!a || np > 2 * ENG_MAX_RANK)
            return eng_fail(k, ST_EINVAL, "the pads attribute is required (2 x rank values)");
        memcpy(pads, a, np * sizeof *a);
        float v = eng_attr_float(k->node, "value", 0.0f);
        switch (x->dtype) {
        case ST_DT_FLOAT32: memcpy(p->value, &v, 4); break;
        case ST_DT_FLOAT64: { double dv = v; memcpy(p->value, &dv, 8); break; }
        case ST_DT_FLOAT16: { uint16_t h = st_float_to_half(v); memcpy(p->value, &h, 2); break; }
        default:
            return eng_fail(k, ST_ETYPE, "type %s is not supported before opset 11", st_dtype_name(x->dtype));
        }
        for (int i = 0; i < r; i++)
            axes[i] = i;
        na = (size_t)r;
    } else {
        if ((s = tensor_read_ints(k, k->n_in > 1 ? k->in[1] : NULL, "pads", pads, 2 * ENG_MAX_RANK, &np)) != ST_OK)
            return s;
        const eng_tensor *cv = k->n_in > 2 ? k->in[2] : NULL;
        if (cv && cv->count) {
            if (cv->dtype != x->dtype || cv->count != 1)
                return eng_fail(k, ST_EINVAL, "constant_value must be one %s, got %zu %s", st_dtype_name(x->dtype),
                                cv->count, st_dtype_name(cv->dtype));
            memcpy(p->value, cv->data, tensor_esize(x->dtype));
        }
        const eng_tensor *ax = k->n_in > 3 ? k->in[3] : NULL;
        if (ax) {
            if ((s = tensor_read_ints(k, ax, "axes", axes, ENG_MAX_RANK, &na)) != ST_OK)
                return s;
        } else {
            for (int i = 0; i < r; i++)
                axes[i] = i;
            na = (size_t)r;
        }
    }
    if (np != 2 * na)
        return eng_fail(k, ST_EINVAL, "pads has %zu values, expected %zu (begins then ends of %zu axes)", np, 2 * na,
                        na);
    for (int d = 0; d < r; d++) {
        p->begin[d] = p->end[d] = 0;
        p->dims[d] = x->shape[d];
    }
    bool seen[ENG_MAX_RANK] = { false };
    for (size_t i = 0; i < na; i++) {
        int a;
        if ((s = eng_axis(k, axes[i], r, &a)) != ST_OK)
            return s;
        if (seen[a])
            return eng_fail(k, ST_EINVAL, "axis %d is repeated", a);
        seen[a] = true;
        int64_t b = pads[i], e = pads[i + na], dim = x->shape[a];
        /* Bound the pads so that the sum below cannot overflow. */
        if (b > INT32_MAX * 1024LL || e > INT32_MAX * 1024LL || b < -dim || e < -dim || b + e + dim < 0)
            return eng_fail(k, ST_EINVAL, "pads %lld, %lld do not fit axis %d of size %lld", (long long)b,
                            (long long)e, a, (long long)dim);
        int64_t out = dim + b + e;
        if (p->mode != PAD_CONSTANT && dim == 0 && out > 0)
            return eng_fail(k, ST_EINVAL, "cannot pad the empty axis %d in %.*s mode", a, ST_STR_FMT(mode));
        p->begin[a] = b;
        p->end[a] = e;
        p->dims[a] = out;
    }
    return ST_OK;
}

st_status tensor_pad_infer(eng_kctx *k)
{
    pad_plan p;
    st_status s = pad_plan_make(k, &p);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], k->in[0]->dtype, p.dims, k->in[0]->rank);
    return ST_OK;
}

/* Source index along an axis of size dim for output index o, or -1 for
 * the constant. */
static int64_t pad_source(int mode, int64_t o, int64_t begin, int64_t dim)
{
    int64_t i = o - begin;
    if (i >= 0 && i < dim)
        return i;
    switch (mode) {
    case PAD_EDGE: return i < 0 ? 0 : dim - 1;
    case PAD_WRAP: return ((i % dim) + dim) % dim;
    case PAD_REFLECT: {
        if (dim == 1)
            return 0;
        /* numpy 'reflect': mirror about the end values, repeating. */
        int64_t period = 2 * (dim - 1), m = ((i % period) + period) % period;
        return m < dim ? m : period - m;
    }
    default: return -1;
    }
}

st_status tensor_pad_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    if (o->count == 0)
        return ST_OK;
    pad_plan p;
    st_status s = pad_plan_make(k, &p);
    if (s != ST_OK)
        return s;
    size_t es = tensor_esize(x->dtype);
    uint32_t r = x->rank;
    if (r == 0) {
        memcpy(o->data, x->data, es);
        return ST_OK;
    }
    /* Per-axis maps from output index to source index (-1: constant). */
    int64_t *map[ENG_MAX_RANK];
    for (uint32_t d = 0; d < r; d++) {
        map[d] = st_arena_alloc(k->scratch, (size_t)p.dims[d] * sizeof(int64_t), 8);
        if (!map[d])
            return eng_fail(k, ST_ENOMEM, "out of memory");
        for (int64_t i = 0; i < p.dims[d]; i++)
            map[d][i] = x->shape[d] ? pad_source(p.mode, i, p.begin[d], x->shape[d]) : -1;
    }
    int64_t stride[ENG_MAX_RANK];
    tensor_strides(x->shape, r, stride);
    int64_t out_inner = p.dims[r - 1], b = p.begin[r - 1], dim = x->shape[r - 1];
    /* Output columns [lo, hi) copy source columns [lo - b, hi - b). */
    int64_t lo = clamp64(b, 0, out_inner), hi = clamp64(b + dim, lo, out_inner);
    size_t row_bytes = (size_t)out_inner * es;
    int64_t idx[ENG_MAX_RANK] = { 0 };
    const char *src = x->data;
    char *dst = o->data;
    size_t rows = o->count / (size_t)out_inner;
    for (size_t row = 0; row < rows; row++, dst += row_bytes) {
        int64_t off = 0;
        bool is_const = false;
        for (uint32_t d = 0; d + 1 < r; d++) {
            int64_t m = map[d][idx[d]];
            if (m < 0) {
                is_const = true;
                break;
            }
            off += m * stride[d];
        }
        if (is_const) {
            tensor_fill(dst, p.value, es, (size_t)out_inner);
        } else {
            const char *srow = src + off * (int64_t)es;
            for (int64_t c = 0; c < lo; c++) {
                int64_t m = map[r - 1][c];
                memcpy(dst + c * (int64_t)es, m < 0 ? (const char *)p.value : srow + m * (int64_t)es, es);
            }
            memcpy(dst + lo * (int64_t)es, srow + (lo - b) * (int64_t)es, (size_t)(hi - lo) * es);
            for (int64_t c = hi; c < out_inner; c++) {
                int64_t m = map[r - 1][c];
                memcpy(dst + c * (int64_t)es, m < 0 ? (const char *)p.value : srow + m * (int64_t)es, es);
            }
        }
        for (int d = (int)r - 2; d >= 0; d--) {
            if (++idx[d] < p.dims[d])
                break;
            idx[d] = 0;
        }
    }
    return ST_OK;
}

/* --- Compress ------------------------------------------------------------------------ */

/* Axis (-1 when flattening), and the number of selected slices. */
static st_status compress_args(const eng_kctx *k, int *axis, size_t *selected, size_t *len)
{
    const eng_tensor *x = k->in[0], *c = k->n_in > 1 ? k->in[1] : NULL;
    if (!x || !c)
        return eng_fail(k, ST_EINVAL, "input and condition are required");
    if (c->dtype != ST_DT_BOOL || c->rank != 1)
        return eng_fail(k, ST_ETYPE, "condition must be a 1-D bool tensor");
    *axis = -1;
    size_t dim = x->count;
    if (eng_attr_has(k->node, "axis")) {
        st_status s = eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)x->rank, axis);
        if (s != ST_OK)
            return s;
        dim = (size_t)x->shape[*axis];
    }
    const uint8_t *cond = c->data;
    size_t n = 0;
    for (size_t i = 0; i < c->count; i++) {
        if (!cond[i])
            continue;
        if (i >= dim)
            return eng_fail(k, ST_EINVAL, "condition selects index %zu beyond the size %zu", i, dim);
        n++;
    }
    *selected = n;
    *len = c->count < dim ? c->count : dim;
    return ST_OK;
}

st_status tensor_compress_infer(eng_kctx *k)
{
    int axis;
    size_t n, len;
    st_status s = compress_args(k, &axis, &n, &len);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    int64_t shape[ENG_MAX_RANK];
    if (axis < 0) {
        shape[0] = (int64_t)n;
        eng_set_shape(k->out[0], x->dtype, shape, 1);
        return ST_OK;
    }
    memcpy(shape, x->shape, x->rank * sizeof *shape);
    shape[axis] = (int64_t)n;
    eng_set_shape(k->out[0], x->dtype, shape, x->rank);
    return ST_OK;
}

st_status tensor_compress_run(eng_kctx *k)
{
    int axis;
    size_t n, len;
    st_status s = compress_args(k, &axis, &n, &len);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    size_t es = tensor_esize(x->dtype), outer = 1, inner = es, dim = x->count;
    if (axis >= 0) {
        dim = (size_t)x->shape[axis];
        for (int d = 0; d < axis; d++)
            outer *= (size_t)x->shape[d];
        for (uint32_t d = (uint32_t)axis + 1; d < x->rank; d++)
            inner *= (size_t)x->shape[d];
    }
    const uint8_t *cond = k->in[1]->data;
    const char *src = x->data;
    char *dst = k->out[0]->data;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < len; i++)
            if (cond[i]) {
                memcpy(dst, src + (o * dim + i) * inner, inner);
                dst += inner;
            }
    return ST_OK;
}

/* --- ReverseSequence ------------------------------------------------------------------ */

static st_status revseq_args(const eng_kctx *k, int *batch_axis, int *time_axis)
{
    const eng_tensor *x = k->in[0], *lens = k->n_in > 1 ? k->in[1] : NULL;
    if (!x || !lens)
        return eng_fail(k, ST_EINVAL, "input and sequence_lens are required");
    if (x->rank < 2)
        return eng_fail(k, ST_ESHAPE, "input must have rank >= 2, got %u", x->rank);
    int64_t b = eng_attr_int(k->node, "batch_axis", 1), t = eng_attr_int(k->node, "time_axis", 0);
    if ((b != 0 && b != 1) || (t != 0 && t != 1) || b == t)
        return eng_fail(k, ST_EINVAL, "batch_axis %lld and time_axis %lld must be 0 and 1 in some order",
                        (long long)b, (long long)t);
    *batch_axis = (int)b;
    *time_axis = (int)t;
    if ((lens->dtype != ST_DT_INT64 && lens->dtype != ST_DT_INT32) || lens->rank != 1 ||
        lens->shape[0] != x->shape[b])
        return eng_fail(k, ST_ESHAPE, "sequence_lens must be a 1-D int64 tensor of the batch size %lld",
                        (long long)x->shape[b]);
    for (size_t i = 0; i < lens->count; i++) {
        int64_t v = eng_int_at(lens, i);
        if (v < 0 || v > x->shape[t])
            return eng_fail(k, ST_EINVAL, "sequence_lens[%zu] is %lld, expected 0..%lld", i, (long long)v,
                            (long long)x->shape[t]);
    }
    return ST_OK;
}

st_status tensor_revseq_infer(eng_kctx *k)
{
    int b, t;
    st_status s = revseq_args(k, &b, &t);
    if (s != ST_OK)
        return s;
    return eng_infer_same_as_input(k);
}

st_status tensor_revseq_run(eng_kctx *k)
{
    int ba, ta;
    st_status s = revseq_args(k, &ba, &ta);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0], *lens = k->in[1];
    size_t inner = tensor_esize(x->dtype);
    for (uint32_t d = 2; d < x->rank; d++)
        inner *= (size_t)x->shape[d];
    int64_t batch = x->shape[ba], time = x->shape[ta];
    /* Axes 0 and 1 are batch and time in some order. */
    size_t bstride = inner * (ba == 0 ? (size_t)time : 1), tstride = inner * (ta == 0 ? (size_t)batch : 1);
    const char *src = x->data;
    char *dst = k->out[0]->data;
    for (int64_t b = 0; b < batch; b++) {
        int64_t len = eng_int_at(lens, (size_t)b);
        for (int64_t t = 0; t < time; t++) {
            int64_t from = t < len ? len - 1 - t : t;
            memcpy(dst + (size_t)b * bstride + (size_t)t * tstride, src + (size_t)b * bstride + (size_t)from * tstride,
                   inner);
        }
    }
    return ST_OK;
}

/* --- Tile -------------------------------------------------------------------------------- */

st_status tensor_tile_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the input is required");
    int64_t rep[ENG_MAX_RANK], shape[ENG_MAX_RANK];
    size_t n;
    st_status s = tensor_read_ints(k, k->n_in > 1 ? k->in[1] : NULL, "repeats", rep, ENG_MAX_RANK, &n);
    if (s != ST_OK)
        return s;
    if (n != x->rank)
        return eng_fail(k, ST_EINVAL, "repeats has %zu values for a rank-%u input", n, x->rank);
    for (size_t d = 0; d < n; d++) {
        if (rep[d] < 0)
            return eng_fail(k, ST_EINVAL, "repeats[%zu] is %lld, expected >= 0", d, (long long)rep[d]);
        if (__builtin_mul_overflow(x->shape[d], rep[d], &shape[d]))
            return eng_fail(k, ST_EOVERFLOW, "dimension %zu overflows", d);
    }
    eng_set_shape(k->out[0], x->dtype, shape, x->rank);
    return ST_OK;
}

st_status tensor_tile_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    if (o->count == 0)
        return ST_OK;
    /* The output as a view [r0, d0, r1, d1, ...] whose repeat dims have
     * stride 0 in the input. */
    int64_t stride[ENG_MAX_RANK], dims[2 * ENG_MAX_RANK], view[2 * ENG_MAX_RANK];
    tensor_strides(x->shape, x->rank, stride);
    for (uint32_t d = 0; d < x->rank; d++) {
        dims[2 * d] = o->shape[d] / x->shape[d];
        view[2 * d] = 0;
        dims[2 * d + 1] = x->shape[d];
        view[2 * d + 1] = stride[d];
    }
    tensor_copy_strided(o->data, x->data, tensor_esize(x->dtype), dims, view, 2 * (int)x->rank);
    return ST_OK;
}

/* --- Expand ------------------------------------------------------------------------------- */

st_status tensor_expand_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the input is required");
    int64_t want[ENG_MAX_RANK], shape[ENG_MAX_RANK];
    size_t n;
    st_status s = tensor_read_ints(k, k->n_in > 1 ? k->in[1] : NULL, "shape", want, ENG_MAX_RANK, &n);
    if (s != ST_OK)
        return s;
    for (size_t d = 0; d < n; d++)
        if (want[d] < 0)
            return eng_fail(k, ST_ESHAPE, "shape[%zu] is %lld, expected >= 0", d, (long long)want[d]);
    eng_tensor t = eng_tensor_make(x->dtype, want, (uint32_t)n, NULL);
    uint32_t rank;
    if ((s = eng_broadcast_shape(x, &t, shape, &rank, k)) != ST_OK)
        return s;
    eng_set_shape(k->out[0], x->dtype, shape, rank);
    return ST_OK;
}

st_status tensor_expand_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    if (o->count == 0)
        return ST_OK;
    int64_t view[ENG_MAX_RANK];
    int64_t acc = 1;
    uint32_t r = o->rank;
    for (int d = (int)r - 1; d >= 0; d--) {
        int xd = d - (int)(r - x->rank);
        int64_t dim = xd >= 0 ? x->shape[xd] : 1;
        view[d] = dim == 1 ? 0 : acc;
        acc *= dim;
    }
    tensor_copy_strided(o->data, x->data, tensor_esize(x->dtype), o->shape, view, (int)r);
    return ST_OK;
}
