/* control.c - control flow: If, Loop and Scan run their body graphs on the
 * subgraph interpreter (exec.c).  Output shapes are only known once a body
 * has run, so `infer` runs the bodies and leaves the results in k->stash;
 * `run` copies them into the outputs. */
#include <string.h>

#include "engine/ops/ops.h"

/* Results of a body run, kept between infer and run. */
typedef struct cf_results {
    eng_tensor *t;
    size_t n;
} cf_results;


static st_status graph_attr(eng_node *n, const char *name, eng_graph **out, st_error *err)
{
    const onnx_attr *a = onnx_node_attr(n->proto, name);
    if (!a || !a->g)
        return st_fail(err, ST_ECORRUPT, "attribute '%s' (a graph) is missing", name);
    return eng_subgraph_build(n, a->g, out, err);
}

static st_status copy_results_run(eng_kctx *k)
{
    const cf_results *r = k->stash;
    for (uint32_t o = 0; o < k->n_out && o < r->n; o++) {
        eng_tensor *t = k->out[o];
        if (t && t->count)
            memcpy(t->data, r->t[o].data, t->count * eng_elem_bytes(t->dtype));
    }
    return ST_OK;
}

static st_status stash_results(eng_kctx *k, eng_tensor *t, size_t n)
{
    cf_results *r = st_arena_alloc(k->scratch, sizeof *r, 8);
    if (!r)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    r->t = t;
    r->n = n;
    k->stash = r;
    for (uint32_t o = 0; o < k->n_out; o++) {
        if (!k->out[o])
            continue;
        if (o >= n)
            return eng_fail(k, ST_ESHAPE, "body produced %zu outputs, the node has %u", n, k->n_out);
        eng_set_shape(k->out[o], t[o].dtype, t[o].shape, t[o].rank);
        if (t[o].dtype == ENG_DT_SEQUENCE)
            k->out[o]->shape[1] = t[o].shape[1]; /* element type */
    }
    return ST_OK;
}

static bool truth(const eng_tensor *t)
{
    return t && t->count >= 1 && eng_int_at(t, 0) != 0;
}

/* --- If ------------------------------------------------------------------------ */

typedef struct if_state {
    eng_graph *then_g, *else_g;
} if_state;

static st_status if_check(eng_node *n, st_arena *arena, st_error *err)
{
    if_state *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_status s = graph_attr(n, "then_branch", &st->then_g, err);
    if (s == ST_OK)
        s = graph_attr(n, "else_branch", &st->else_g, err);
    n->state = st;
    return s;
}

static st_status if_infer(eng_kctx *k)
{
    const if_state *st = k->node->state;
    if (!k->in[0] || k->in[0]->count != 1)
        return eng_fail(k, ST_ESHAPE, "cond must be a single boolean");
    const eng_graph *g = truth(k->in[0]) ? st->then_g : st->else_g;
    eng_tensor *res = st_arena_calloc(k->scratch, g->n_outputs + 1, sizeof *res, 8);
    if (!res)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    st_status s = eng_subgraph_run(g, k, NULL, 0, res, g->n_outputs);
    if (s != ST_OK)
        return s;
    return stash_results(k, res, g->n_outputs);
}

/* --- Loop ---------------------------------------------------------------------- */

/* No model loops forever on purpose; a runaway one is an error. */
#define LOOP_MAX_ITERATIONS 10000000

typedef struct loop_state {
    eng_graph *body;
} loop_state;

static st_status loop_check(eng_node *n, st_arena *arena, st_error *err)
{
    loop_state *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    n->state = st;
    return graph_attr(n, "body", &st->body, err);
}

/* Stacks `count` same-shaped tensors along a new axis `axis` (reversed
 * when `reverse`) into *out, allocated in scratch. */
static st_status stack(eng_kctx *k, const eng_tensor *parts, size_t count, int axis, bool reverse, st_dtype dtype,
                       const eng_tensor *like, eng_tensor *out)
{
    if (like->rank + 1 > ENG_MAX_RANK)
        return eng_fail(k, ST_EUNSUPPORTED, "scan output rank above %d", ENG_MAX_RANK);
    int64_t shape[ENG_MAX_RANK];
    uint32_t r = 0;
    for (uint32_t d = 0; d <= like->rank; d++)
        shape[d] = (int)d == axis ? (int64_t)count : like->shape[r++];
    *out = eng_tensor_make(dtype, shape, like->rank + 1, NULL);
    size_t es = eng_elem_bytes(dtype);
    size_t bytes = out->count * es;
    out->data = st_arena_alloc(k->scratch, bytes ? bytes : 1, 64);
    if (!out->data)
        return eng_fail(k, ST_ENOMEM, "out of memory stacking scan outputs");
    size_t outer = 1, inner = es;
    for (int d = 0; d < axis; d++)
        outer *= (size_t)like->shape[d];
    for (uint32_t d = (uint32_t)axis; d < like->rank; d++)
        inner *= (size_t)like->shape[d];
    for (size_t i = 0; i < count; i++) {
        const eng_tensor *p = &parts[reverse ? count - 1 - i : i];
        if (p->dtype != dtype || p->rank != like->rank || p->count != like->count)
            return eng_fail(k, ST_ESHAPE, "scan output %zu changes shape or type between iterations", i);
        for (size_t o = 0; o < outer; o++)
            memcpy((char *)out->data + (o * count + i) * inner, (const char *)p->data + o * inner, inner);
    }
    return ST_OK;
}

static st_status loop_infer(eng_kctx *k)
{
    const loop_state *st = k->node->state;
    const eng_graph *body = st->body;
    const eng_tensor *max_trip = k->n_in > 0 ? k->in[0] : NULL;
    const eng_tensor *cond_in = k->n_in > 1 ? k->in[1] : NULL;
    size_t n_carried = k->n_in > 2 ? k->n_in - 2 : 0;
    if (body->n_inputs != n_carried + 2 || body->n_outputs < n_carried + 1)
        return eng_fail(k, ST_ESHAPE, "body has %zu inputs / %zu outputs for %zu loop-carried values",
                        body->n_inputs, body->n_outputs, n_carried);
    size_t n_scan = body->n_outputs - 1 - n_carried;
    int64_t trips = max_trip ? eng_int_at(max_trip, 0) : INT64_MAX;
    bool cond = cond_in ? truth(cond_in) : true;
    if (!max_trip && !cond_in)
        trips = LOOP_MAX_ITERATIONS;

    eng_tensor *args = st_arena_calloc(k->scratch, body->n_inputs + 1, sizeof *args, 8);
    eng_tensor *res = st_arena_calloc(k->scratch, body->n_outputs + 1, sizeof *res, 8);
    int64_t *iter_v = st_arena_alloc(k->scratch, sizeof *iter_v, 8);
    uint8_t *cond_v = st_arena_alloc(k->scratch, 1, 8);
    size_t scan_cap = 16, iters = 0;
    eng_tensor *scans = st_arena_calloc(k->scratch, scan_cap * (n_scan + 1), sizeof *scans, 8);
    if (!args || !res || !iter_v || !cond_v || !scans)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t i = 0; i < n_carried; i++) {
        if (!k->in[2 + i])
            return eng_fail(k, ST_EINVAL, "loop-carried input %zu is missing", i);
        args[2 + i] = *k->in[2 + i];
    }
    for (int64_t it = 0; it < trips && cond; it++) {
        if (it >= LOOP_MAX_ITERATIONS)
            return eng_fail(k, ST_ELIMIT, "more than %d iterations", LOOP_MAX_ITERATIONS);
        *iter_v = it;
        *cond_v = 1;
        args[0] = eng_tensor_make(ST_DT_INT64, NULL, 0, iter_v);
        args[1] = eng_tensor_make(ST_DT_BOOL, NULL, 0, cond_v);
        st_status s = eng_subgraph_run(body, k, args, body->n_inputs, res, body->n_outputs);
        if (s != ST_OK)
            return s;
        cond = truth(&res[0]);
        for (size_t i = 0; i < n_carried; i++)
            args[2 + i] = res[1 + i];
        if (n_scan) {
            if (iters == scan_cap) {
                eng_tensor *grown = st_arena_calloc(k->scratch, scan_cap * 2 * n_scan, sizeof *grown, 8);
                if (!grown)
                    return eng_fail(k, ST_ENOMEM, "out of memory");
                memcpy(grown, scans, scan_cap * n_scan * sizeof *grown);
                scans = grown;
                scan_cap *= 2;
            }
            for (size_t j = 0; j < n_scan; j++)
                scans[iters * n_scan + j] = res[1 + n_carried + j];
        }
        iters++;
    }
    eng_tensor *outs = st_arena_calloc(k->scratch, n_carried + n_scan + 1, sizeof *outs, 8);
    eng_tensor *column = st_arena_calloc(k->scratch, iters + 1, sizeof *column, 8);
    if (!outs || !column)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t i = 0; i < n_carried; i++)
        outs[i] = args[2 + i];
    for (size_t j = 0; j < n_scan; j++) {
        if (iters == 0) {
            /* No iteration: an empty stack; its element type from the body. */
            const eng_value *v = &body->values[body->outputs[1 + n_carried + j]];
            int64_t shape[1] = { 0 };
            outs[n_carried + j] = eng_tensor_make(v->dtype ? v->dtype : ST_DT_FLOAT32, shape, 1, NULL);
            continue;
        }
        for (size_t i = 0; i < iters; i++)
            column[i] = scans[i * n_scan + j];
        st_status s = stack(k, column, iters, 0, false, column[0].dtype, &column[0], &outs[n_carried + j]);
        if (s != ST_OK)
            return s;
    }
    return stash_results(k, outs, n_carried + n_scan);
}

/* --- Scan (opset 9+) ---------------------------------------------------------- */

typedef struct scan_state {
    eng_graph *body;
    int64_t n_scan_inputs;
} scan_state;

static st_status scan_check(eng_node *n, st_arena *arena, st_error *err)
{
    scan_state *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    n->state = st;
    st->n_scan_inputs = eng_attr_int(n, "num_scan_inputs", -1);
    if (st->n_scan_inputs < 1 || st->n_scan_inputs > (int64_t)(n->n_inputs - n->n_implicit))
        return st_fail(err, ST_ECORRUPT, "num_scan_inputs is %lld for %u inputs", (long long)st->n_scan_inputs,
                       n->n_inputs - n->n_implicit);
    return graph_attr(n, "body", &st->body, err);
}

static int64_t list_at(const int64_t *list, size_t n, size_t i, int64_t dflt)
{
    return list && i < n ? list[i] : dflt;
}

static st_status scan_infer(eng_kctx *k)
{
    const scan_state *st = k->node->state;
    const eng_graph *body = st->body;
    size_t m = (size_t)st->n_scan_inputs, n_state = k->n_in - m;
    if (body->n_inputs != k->n_in || body->n_outputs < n_state)
        return eng_fail(k, ST_ESHAPE, "body has %zu inputs / %zu outputs for %u inputs", body->n_inputs,
                        body->n_outputs, k->n_in);
    size_t n_scan_out = body->n_outputs - n_state;
    size_t n_axes, n_dirs, n_oaxes, n_odirs;
    const int64_t *axes = eng_attr_ints(k->node, "scan_input_axes", &n_axes);
    const int64_t *dirs = eng_attr_ints(k->node, "scan_input_directions", &n_dirs);
    const int64_t *oaxes = eng_attr_ints(k->node, "scan_output_axes", &n_oaxes);
    const int64_t *odirs = eng_attr_ints(k->node, "scan_output_directions", &n_odirs);
    int64_t length = -1;
    int in_axis[64];
    if (m > 64)
        return eng_fail(k, ST_EUNSUPPORTED, "more than 64 scan inputs");
    for (size_t j = 0; j < m; j++) {
        const eng_tensor *x = k->in[n_state + j];
        if (!x)
            return eng_fail(k, ST_EINVAL, "scan input %zu is missing", j);
        st_status s = eng_axis(k, list_at(axes, n_axes, j, 0), (int)x->rank, &in_axis[j]);
        if (s != ST_OK)
            return s;
        int64_t len = x->shape[in_axis[j]];
        if (length >= 0 && len != length)
            return eng_fail(k, ST_ESHAPE, "scan inputs have different lengths (%lld and %lld)", (long long)length,
                            (long long)len);
        length = len;
    }
    eng_tensor *args = st_arena_calloc(k->scratch, body->n_inputs + 1, sizeof *args, 8);
    eng_tensor *res = st_arena_calloc(k->scratch, body->n_outputs + 1, sizeof *res, 8);
    eng_tensor *scans = st_arena_calloc(k->scratch, (size_t)(length > 0 ? length : 1) * (n_scan_out + 1), sizeof *scans, 8);
    if (!args || !res || !scans)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t i = 0; i < n_state; i++)
        args[i] = *k->in[i];
    for (int64_t t = 0; t < length; t++) {
        for (size_t j = 0; j < m; j++) {
            const eng_tensor *x = k->in[n_state + j];
            int ax = in_axis[j];
            int64_t idx = list_at(dirs, n_dirs, j, 0) ? length - 1 - t : t;
            int64_t shape[ENG_MAX_RANK];
            uint32_t r = 0;
            for (uint32_t d = 0; d < x->rank; d++)
                if ((int)d != ax)
                    shape[r++] = x->shape[d];
            eng_tensor slice = eng_tensor_make(x->dtype, shape, r, NULL);
            size_t es = eng_elem_bytes(x->dtype), outer = 1, inner = es;
            for (int d = 0; d < ax; d++)
                outer *= (size_t)x->shape[d];
            for (uint32_t d = (uint32_t)ax + 1; d < x->rank; d++)
                inner *= (size_t)x->shape[d];
            slice.data = st_arena_alloc(k->scratch, outer * inner + 1, 64);
            if (!slice.data)
                return eng_fail(k, ST_ENOMEM, "out of memory");
            for (size_t o = 0; o < outer; o++)
                memcpy((char *)slice.data + o * inner,
                       (const char *)x->data + (o * (size_t)length + (size_t)idx) * inner, inner);
            args[n_state + j] = slice;
        }
        st_status s = eng_subgraph_run(body, k, args, body->n_inputs, res, body->n_outputs);
        if (s != ST_OK)
            return s;
        for (size_t i = 0; i < n_state; i++)
            args[i] = res[i];
        for (size_t j = 0; j < n_scan_out; j++)
            scans[(size_t)t * n_scan_out + j] = res[n_state + j];
    }
    eng_tensor *outs = st_arena_calloc(k->scratch, body->n_outputs + 1, sizeof *outs, 8);
    eng_tensor *column = st_arena_calloc(k->scratch, (size_t)(length > 0 ? length : 1), sizeof *column, 8);
    if (!outs || !column)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t i = 0; i < n_state; i++)
        outs[i] = args[i];
    for (size_t j = 0; j < n_scan_out; j++) {
        if (length <= 0)
            return eng_fail(k, ST_EUNSUPPORTED, "scan over an empty sequence");
        for (int64_t t = 0; t < length; t++)
            column[t] = scans[(size_t)t * n_scan_out + j];
        int axis;
        st_status s = eng_axis(k, list_at(oaxes, n_oaxes, j, 0), (int)column[0].rank + 1, &axis);
        if (s == ST_OK)
            s = stack(k, column, (size_t)length, axis, list_at(odirs, n_odirs, j, 0) != 0, column[0].dtype,
                      &column[0], &outs[n_state + j]);
        if (s != ST_OK)
            return s;
    }
    return stash_results(k, outs, body->n_outputs);
}

/* --- SequenceMap (opset 17) ---------------------------------------------------- */

typedef struct seqmap_state {
    eng_graph *body;
} seqmap_state;

static st_status seqmap_check(eng_node *n, st_arena *arena, st_error *err)
{
    seqmap_state *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    n->state = st;
    return graph_attr(n, "body", &st->body, err);
}

static st_status seqmap_infer(eng_kctx *k)
{
    const seqmap_state *st = k->node->state;
    const eng_graph *body = st->body;
    const eng_tensor *seq = k->in[0];
    if (!seq || seq->dtype != ENG_DT_SEQUENCE)
        return eng_fail(k, ST_ETYPE, "input 0 must be a sequence");
    if (body->n_inputs != k->n_in)
        return eng_fail(k, ST_ESHAPE, "body takes %zu inputs, the node has %u", body->n_inputs, k->n_in);
    size_t n = seq->count, n_out = body->n_outputs;
    for (uint32_t j = 1; j < k->n_in; j++)
        if (k->in[j] && k->in[j]->dtype == ENG_DT_SEQUENCE && k->in[j]->count != n)
            return eng_fail(k, ST_ESHAPE, "sequence input %u has %zu elements, input 0 has %zu", j, k->in[j]->count, n);
    eng_tensor *args = st_arena_calloc(k->scratch, k->n_in + 1, sizeof *args, 8);
    eng_tensor *res = st_arena_calloc(k->scratch, n_out + 1, sizeof *res, 8);
    eng_tensor *outs = st_arena_calloc(k->scratch, n_out + 1, sizeof *outs, 8);
    eng_tensor *items = st_arena_calloc(k->scratch, n * n_out + 1, sizeof *items, 64);
    if (!args || !res || !outs || !items)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < k->n_in; j++) {
            const eng_tensor *x = k->in[j];
            if (!x)
                return eng_fail(k, ST_EINVAL, "input %u is missing", j);
            args[j] = x->dtype == ENG_DT_SEQUENCE ? ((const eng_tensor *)x->data)[i] : *x;
        }
        st_status s = eng_subgraph_run(body, k, args, k->n_in, res, n_out);
        if (s != ST_OK)
            return s;
        for (size_t o = 0; o < n_out; o++)
            items[o * n + i] = res[o];
    }
    for (size_t o = 0; o < n_out; o++) {
        const eng_value *v = &body->values[body->outputs[o]];
        st_dtype elem = n ? items[o * n].dtype : (v->dtype ? v->dtype : ST_DT_FLOAT32);
        int64_t shape[1] = { (int64_t)n };
        outs[o] = eng_tensor_make(ENG_DT_SEQUENCE, shape, 1, &items[o * n]);
        outs[o].shape[1] = (int64_t)elem;
    }
    return stash_results(k, outs, n_out);
}

const eng_op eng_ops_control[] = {
    { "", "SequenceMap", 17, seqmap_check, seqmap_infer, copy_results_run },
    { "", "If", 1, if_check, if_infer, copy_results_run },
    { "", "Loop", 1, loop_check, loop_infer, copy_results_run },
    { "", "Scan", 9, scan_check, scan_infer, copy_results_run },
    { 0 },
};
