/* sequence.c - sequence and optional values: SequenceEmpty, -Construct,
 * -Insert, -At, -Erase, -Length, ConcatFromSequence, SplitToSequence,
 * Optional, OptionalHasElement, OptionalGetElement.  Layout in eng_int.h;
 * element data is always copied into the run's scratch arena. */
#include <string.h>

#include "engine/ops/ops.h"

static bool is_seq(const eng_tensor *t)
{
    return t && t->dtype == ENG_DT_SEQUENCE;
}

static st_dtype seq_elem_type(const eng_tensor *seq)
{
    return (st_dtype)seq->shape[1];
}

static void set_seq_shape(eng_tensor *out, size_t count, st_dtype elem)
{
    int64_t shape[2] = { (int64_t)count, (int64_t)elem };
    eng_set_shape(out, ENG_DT_SEQUENCE, shape, 1);
    out->shape[1] = (int64_t)elem;
}

/* A deep copy of tensor t (data into scratch). */
static st_status copy_tensor(const eng_kctx *k, const eng_tensor *t, eng_tensor *out)
{
    *out = *t;
    size_t bytes = t->count * eng_elem_bytes(t->dtype);
    out->data = st_arena_alloc(k->scratch, bytes ? bytes : 1, 64);
    if (!out->data)
        return eng_fail(k, ST_ENOMEM, "out of memory copying a sequence element");
    if (bytes)
        memcpy(out->data, t->data, bytes);
    if (t->dtype == ENG_DT_SEQUENCE || t->dtype == ENG_DT_OPTIONAL) {
        eng_tensor *items = out->data;
        for (size_t i = 0; i < t->count; i++) {
            st_status s = copy_tensor(k, &((const eng_tensor *)t->data)[i], &items[i]);
            if (s != ST_OK)
                return s;
        }
    }
    return ST_OK;
}

/* Sequence positions may be negative (from the end); `allow_end` admits
 * position == count (insert at the end). */
static st_status seq_position(const eng_kctx *k, const eng_tensor *pos, size_t count, bool allow_end, size_t dflt,
                              size_t *out)
{
    if (!pos) {
        *out = dflt;
        return ST_OK;
    }
    if (pos->count != 1)
        return eng_fail(k, ST_ESHAPE, "position must be a scalar");
    int64_t p = eng_int_at(pos, 0), n = (int64_t)count;
    if (p < 0)
        p += n;
    if (p < 0 || p > n || (p == n && !allow_end))
        return eng_fail(k, ST_EINVAL, "position %lld is out of range for a sequence of %zu",
                        (long long)eng_int_at(pos, 0), count);
    *out = (size_t)p;
    return ST_OK;
}

/* --- SequenceEmpty / SequenceConstruct / SequenceInsert / SequenceErase --- */

static st_status seq_empty_infer(eng_kctx *k)
{
    int64_t dt = eng_attr_int(k->node, "dtype", ST_DT_FLOAT32);
    set_seq_shape(k->out[0], 0, st_dtype_is_valid((int)dt) ? (st_dtype)dt : ST_DT_FLOAT32);
    return ST_OK;
}

static st_status seq_noop_run(eng_kctx *k)
{
    (void)k;
    return ST_OK;
}

static st_status seq_construct_infer(eng_kctx *k)
{
    if (k->n_in == 0 || !k->in[0])
        return eng_fail(k, ST_EINVAL, "needs at least one tensor");
    for (uint32_t i = 1; i < k->n_in; i++)
        if (!k->in[i] || k->in[i]->dtype != k->in[0]->dtype)
            return eng_fail(k, ST_ETYPE, "all tensors must have the same type");
    set_seq_shape(k->out[0], k->n_in, k->in[0]->dtype);
    return ST_OK;
}

static st_status seq_construct_run(eng_kctx *k)
{
    eng_tensor *items = k->out[0]->data;
    for (uint32_t i = 0; i < k->n_in; i++) {
        st_status s = copy_tensor(k, k->in[i], &items[i]);
        if (s != ST_OK)
            return s;
    }
    return ST_OK;
}

static st_status seq_insert_infer(eng_kctx *k)
{
    const eng_tensor *seq = k->in[0], *t = k->n_in > 1 ? k->in[1] : NULL;
    if (!is_seq(seq) || !t)
        return eng_fail(k, ST_ETYPE, "needs a sequence and a tensor");
    if (seq->count && t->dtype != seq_elem_type(seq))
        return eng_fail(k, ST_ETYPE, "tensor of %s into a sequence of %s", st_dtype_name(t->dtype),
                        st_dtype_name(seq_elem_type(seq)));
    size_t pos = 0;
    st_status s = seq_position(k, k->n_in > 2 ? k->in[2] : NULL, seq->count, true, seq->count, &pos);
    if (s != ST_OK)
        return s;
    set_seq_shape(k->out[0], seq->count + 1, t->dtype);
    return ST_OK;
}

static st_status seq_insert_run(eng_kctx *k)
{
    const eng_tensor *seq = k->in[0], *t = k->in[1];
    size_t pos = 0;
    seq_position(k, k->n_in > 2 ? k->in[2] : NULL, seq->count, true, seq->count, &pos);
    eng_tensor *items = k->out[0]->data;
    const eng_tensor *src = seq->data;
    for (size_t i = 0, j = 0; i < seq->count + 1; i++) {
        st_status s = copy_tensor(k, i == pos ? t : &src[j++], &items[i]);
        if (s != ST_OK)
            return s;
    }
    return ST_OK;
}

static st_status seq_erase_infer(eng_kctx *k)
{
    const eng_tensor *seq = k->in[0];
    if (!is_seq(seq))
        return eng_fail(k, ST_ETYPE, "needs a sequence");
    if (seq->count == 0)
        return eng_fail(k, ST_EINVAL, "cannot erase from an empty sequence");
    size_t pos = 0;
    st_status s = seq_position(k, k->n_in > 1 ? k->in[1] : NULL, seq->count, false, seq->count - 1, &pos);
    if (s != ST_OK)
        return s;
    set_seq_shape(k->out[0], seq->count - 1, seq_elem_type(seq));
    return ST_OK;
}

static st_status seq_erase_run(eng_kctx *k)
{
    const eng_tensor *seq = k->in[0];
    size_t pos = 0;
    seq_position(k, k->n_in > 1 ? k->in[1] : NULL, seq->count, false, seq->count - 1, &pos);
    eng_tensor *items = k->out[0]->data;
    const eng_tensor *src = seq->data;
    for (size_t i = 0, j = 0; i < seq->count; i++) {
        if (i == pos)
            continue;
        st_status s = copy_tensor(k, &src[i], &items[j++]);
        if (s != ST_OK)
            return s;
    }
    return ST_OK;
}

/* --- SequenceAt / SequenceLength --------------------------------------------- */

static st_status seq_at_infer(eng_kctx *k)
{
    const eng_tensor *seq = k->in[0];
    if (!is_seq(seq) || k->n_in < 2 || !k->in[1])
        return eng_fail(k, ST_ETYPE, "needs a sequence and a position");
    size_t pos = 0;
    st_status s = seq_position(k, k->in[1], seq->count, false, 0, &pos);
    if (s != ST_OK)
        return s;
    const eng_tensor *item = &((const eng_tensor *)seq->data)[pos];
    eng_set_shape(k->out[0], item->dtype, item->shape, item->rank);
    return ST_OK;
}

static st_status seq_at_run(eng_kctx *k)
{
    size_t pos = 0;
    seq_position(k, k->in[1], k->in[0]->count, false, 0, &pos);
    const eng_tensor *item = &((const eng_tensor *)k->in[0]->data)[pos];
    if (item->count)
        memcpy(k->out[0]->data, item->data, item->count * eng_elem_bytes(item->dtype));
    return ST_OK;
}

static st_status seq_length_infer(eng_kctx *k)
{
    if (!is_seq(k->in[0]))
        return eng_fail(k, ST_ETYPE, "needs a sequence");
    eng_set_shape(k->out[0], ST_DT_INT64, NULL, 0);
    return ST_OK;
}

static st_status seq_length_run(eng_kctx *k)
{
    *(int64_t *)k->out[0]->data = (int64_t)k->in[0]->count;
    return ST_OK;
}

/* --- ConcatFromSequence ------------------------------------------------------- */

static st_status concat_seq_infer(eng_kctx *k)
{
    const eng_tensor *seq = k->in[0];
    if (!is_seq(seq) || seq->count == 0)
        return eng_fail(k, ST_EINVAL, "needs a non-empty sequence");
    const eng_tensor *items = seq->data;
    bool new_axis = eng_attr_int(k->node, "new_axis", 0) != 0;
    int rank = (int)items[0].rank + (new_axis ? 1 : 0), axis;
    if (rank > ENG_MAX_RANK)
        return eng_fail(k, ST_EUNSUPPORTED, "rank above %d", ENG_MAX_RANK);
    st_status s = eng_axis(k, eng_attr_int(k->node, "axis", 0), rank, &axis);
    if (s != ST_OK)
        return s;
    int64_t shape[ENG_MAX_RANK];
    for (int d = 0, src = 0; d < rank; d++)
        shape[d] = new_axis && d == axis ? 1 : items[0].shape[src++];
    shape[axis] = 0;
    for (size_t i = 0; i < seq->count; i++) {
        const eng_tensor *t = &items[i];
        if (t->dtype != items[0].dtype || t->rank != items[0].rank)
            return eng_fail(k, ST_ESHAPE, "sequence elements differ in type or rank");
        for (int d = 0, src = 0; d < rank; d++) {
            if (new_axis && d == axis)
                continue;
            if (d != axis && t->shape[src] != shape[d])
                return eng_fail(k, ST_ESHAPE, "sequence elements differ in dimension %d", d);
            src++;
        }
        shape[axis] += new_axis ? 1 : t->shape[axis];
    }
    eng_set_shape(k->out[0], items[0].dtype, shape, (uint32_t)rank);
    return ST_OK;
}

static st_status concat_seq_run(eng_kctx *k)
{
    const eng_tensor *seq = k->in[0], *items = seq->data;
    eng_tensor *o = k->out[0];
    int axis;
    eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)o->rank, &axis);
    size_t es = eng_elem_bytes(o->dtype), outer = 1, inner = es;
    for (int d = 0; d < axis; d++)
        outer *= (size_t)o->shape[d];
    for (uint32_t d = (uint32_t)axis + 1; d < o->rank; d++)
        inner *= (size_t)o->shape[d];
    size_t out_row = inner * (size_t)o->shape[axis], col = 0;
    for (size_t i = 0; i < seq->count; i++) {
        size_t row = items[i].count * es / (outer ? outer : 1);
        for (size_t r = 0; r < outer; r++)
            memcpy((char *)o->data + r * out_row + col, (const char *)items[i].data + r * row, row);
        col += row;
    }
    return ST_OK;
}

/* --- SplitToSequence --------------------------------------------------------- */

typedef struct split_plan {
    int axis;
    size_t n;
    int64_t sizes[4096];
} split_plan;

static st_status split_plan_make(const eng_kctx *k, split_plan *p)
{
    const eng_tensor *x = k->in[0], *split = k->n_in > 1 ? k->in[1] : NULL;
    st_status s = eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)x->rank, &p->axis);
    if (s != ST_OK)
        return s;
    int64_t len = x->shape[p->axis];
    if (!split) {
        if (len > 4096)
            return eng_fail(k, ST_EUNSUPPORTED, "splitting %lld pieces", (long long)len);
        p->n = (size_t)len;
        for (size_t i = 0; i < p->n; i++)
            p->sizes[i] = 1;
        return ST_OK;
    }
    if (split->count == 1 && split->rank == 0) {
        int64_t size = eng_int_at(split, 0);
        if (size <= 0)
            return eng_fail(k, ST_EINVAL, "split size %lld", (long long)size);
        p->n = 0;
        for (int64_t at = 0; at < len && p->n < 4096; at += size)
            p->sizes[p->n++] = len - at < size ? len - at : size;
        return ST_OK;
    }
    if (split->count > 4096)
        return eng_fail(k, ST_EUNSUPPORTED, "more than 4096 pieces");
    int64_t total = 0;
    p->n = split->count;
    for (size_t i = 0; i < p->n; i++) {
        p->sizes[i] = eng_int_at(split, i);
        if (p->sizes[i] < 0)
            return eng_fail(k, ST_EINVAL, "negative split size");
        total += p->sizes[i];
    }
    if (total != len)
        return eng_fail(k, ST_ESHAPE, "split sizes add up to %lld, the axis is %lld", (long long)total,
                        (long long)len);
    return ST_OK;
}

static st_status split_seq_infer(eng_kctx *k)
{
    if (!k->in[0] || k->in[0]->rank == 0)
        return eng_fail(k, ST_ESHAPE, "input must have rank >= 1");
    split_plan *p = st_arena_alloc(k->scratch, sizeof *p, 8);
    if (!p)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    st_status s = split_plan_make(k, p);
    if (s != ST_OK)
        return s;
    k->stash = p;
    set_seq_shape(k->out[0], p->n, k->in[0]->dtype);
    return ST_OK;
}

static st_status split_seq_run(eng_kctx *k)
{
    const split_plan *p = k->stash;
    const eng_tensor *x = k->in[0];
    bool keepdims = eng_attr_int(k->node, "keepdims", 1) != 0 || (k->n_in > 1 && k->in[1]);
    size_t es = eng_elem_bytes(x->dtype), outer = 1, inner = es;
    for (int d = 0; d < p->axis; d++)
        outer *= (size_t)x->shape[d];
    for (uint32_t d = (uint32_t)p->axis + 1; d < x->rank; d++)
        inner *= (size_t)x->shape[d];
    size_t in_row = inner * (size_t)x->shape[p->axis], col = 0;
    eng_tensor *items = k->out[0]->data;
    for (size_t i = 0; i < p->n; i++) {
        int64_t shape[ENG_MAX_RANK];
        uint32_t r = 0;
        for (uint32_t d = 0; d < x->rank; d++) {
            if ((int)d == p->axis && !keepdims)
                continue;
            shape[r++] = (int)d == p->axis ? p->sizes[i] : x->shape[d];
        }
        items[i] = eng_tensor_make(x->dtype, shape, r, NULL);
        size_t row = inner * (size_t)p->sizes[i];
        items[i].data = st_arena_alloc(k->scratch, outer * row + 1, 64);
        if (!items[i].data)
            return eng_fail(k, ST_ENOMEM, "out of memory");
        for (size_t o = 0; o < outer; o++)
            memcpy((char *)items[i].data + o * row, (const char *)x->data + o * in_row + col, row);
        col += row;
    }
    return ST_OK;
}

/* --- Optional ------------------------------------------------------------------ */

static st_status optional_infer(eng_kctx *k)
{
    const eng_tensor *x = k->n_in > 0 ? k->in[0] : NULL;
    int64_t one = x ? 1 : 0;
    eng_set_shape(k->out[0], ENG_DT_OPTIONAL, &one, 1);
    return ST_OK;
}

static st_status optional_run(eng_kctx *k)
{
    if (k->n_in > 0 && k->in[0])
        return copy_tensor(k, k->in[0], (eng_tensor *)k->out[0]->data);
    return ST_OK;
}

static st_status has_element_infer(eng_kctx *k)
{
    eng_set_shape(k->out[0], ST_DT_BOOL, NULL, 0);
    return ST_OK;
}

static st_status has_element_run(eng_kctx *k)
{
    const eng_tensor *x = k->n_in > 0 ? k->in[0] : NULL;
    bool has = x && (x->dtype != ENG_DT_OPTIONAL || x->count == 1);
    *(uint8_t *)k->out[0]->data = has;
    return ST_OK;
}

static const eng_tensor *optional_item(const eng_tensor *x)
{
    if (x && x->dtype == ENG_DT_OPTIONAL)
        return x->count ? (const eng_tensor *)x->data : NULL;
    return x; /* opset 18: a plain tensor or sequence is its own element */
}

static st_status get_element_infer(eng_kctx *k)
{
    const eng_tensor *item = optional_item(k->in[0]);
    if (!item)
        return eng_fail(k, ST_EINVAL, "the optional is empty");
    eng_set_shape(k->out[0], item->dtype, item->shape, item->rank);
    if (item->dtype == ENG_DT_SEQUENCE)
        k->out[0]->shape[1] = item->shape[1];
    return ST_OK;
}

static st_status get_element_run(eng_kctx *k)
{
    const eng_tensor *item = optional_item(k->in[0]);
    if (item->dtype == ENG_DT_SEQUENCE) {
        eng_tensor *items = k->out[0]->data;
        for (size_t i = 0; i < item->count; i++) {
            st_status s = copy_tensor(k, &((const eng_tensor *)item->data)[i], &items[i]);
            if (s != ST_OK)
                return s;
        }
        return ST_OK;
    }
    if (item->count)
        memcpy(k->out[0]->data, item->data, item->count * eng_elem_bytes(item->dtype));
    return ST_OK;
}

const eng_op eng_ops_sequence[] = {
    { "", "SequenceEmpty", 11, NULL, seq_empty_infer, seq_noop_run },
    { "", "SequenceConstruct", 11, NULL, seq_construct_infer, seq_construct_run },
    { "", "SequenceInsert", 11, NULL, seq_insert_infer, seq_insert_run },
    { "", "SequenceErase", 11, NULL, seq_erase_infer, seq_erase_run },
    { "", "SequenceAt", 11, NULL, seq_at_infer, seq_at_run },
    { "", "SequenceLength", 11, NULL, seq_length_infer, seq_length_run },
    { "", "ConcatFromSequence", 11, NULL, concat_seq_infer, concat_seq_run },
    { "", "SplitToSequence", 11, NULL, split_seq_infer, split_seq_run },
    { "", "Optional", 15, NULL, optional_infer, optional_run },
    { "", "OptionalHasElement", 15, NULL, has_element_infer, has_element_run },
    { "", "OptionalGetElement", 15, NULL, get_element_infer, get_element_run },
    { 0 },
};
