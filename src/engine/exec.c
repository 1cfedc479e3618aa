/* exec.c - sessions and the run loop: check the inputs against the model's
 * declarations, then for every node in order infer output shapes, give the
 * outputs memory from the run arena and call the kernel.  The run arena
 * grows to the high-water mark of the first runs and is then reused, so a
 * warm session does not touch the heap. */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/eng_int.h"
#include "engine/model_int.h"

#define ENG_PLAN_CACHE 8

/* One memory plan: the input shapes it is for and each value's place. */
typedef struct eng_plan {
    int64_t *sig;          /* per input: rank, then dims */
    size_t sig_len;
    uint64_t hash;
    size_t *offset;        /* per value; SIZE_MAX = not planned */
    size_t *size;          /* planned bytes per value */
    size_t total;
    uint8_t *block;        /* 64-byte aligned, `total` bytes */
    uint64_t last_used;
} eng_plan;

struct eng_session {
    eng_model *model;
    size_t *sizes;                 /* bytes of each value in the last run */
    eng_plan plans[ENG_PLAN_CACHE];
    uint64_t clock;
    eng_tensor *vals;              /* one per value of the main graph */
    const eng_tensor **in_ptrs;    /* every node's input pointers, flattened */
    eng_tensor **out_ptrs;
    size_t *io_offset;             /* node i's pointers start here */
    st_arena run_arena;
    st_pool *pool;
};

static void plan_free(eng_plan *p);

st_status eng_session_new(eng_model *m, eng_session **out, st_error *err)
{
    *out = NULL;
    const eng_graph *g = &m->graph;
    eng_session *s = st_calloc(1, sizeof *s);
    if (!s)
        return st_fail(err, ST_ENOMEM, "out of memory creating a session");
    s->model = m;
    size_t n_io = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        n_io += g->nodes[i].n_inputs + g->nodes[i].n_outputs;
    s->vals = st_calloc(g->n_values + 1, sizeof *s->vals);
    s->sizes = st_calloc(g->n_values + 1, sizeof *s->sizes);
    s->in_ptrs = st_calloc(n_io + 1, sizeof *s->in_ptrs);
    s->out_ptrs = st_calloc(n_io + 1, sizeof *s->out_ptrs);
    s->io_offset = st_calloc(g->n_nodes + 1, sizeof *s->io_offset);
    if (!s->vals || !s->sizes || !s->in_ptrs || !s->out_ptrs || !s->io_offset) {
        eng_session_free(s);
        return st_fail(err, ST_ENOMEM, "out of memory creating a session");
    }
    size_t off = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const eng_node *n = &g->nodes[i];
        s->io_offset[i] = off;
        for (uint32_t j = 0; j < n->n_inputs; j++)
            s->in_ptrs[off + j] = n->inputs[j] >= 0 ? &s->vals[n->inputs[j]] : NULL;
        for (uint32_t j = 0; j < n->n_outputs; j++)
            s->out_ptrs[off + n->n_inputs + j] = n->outputs[j] >= 0 ? &s->vals[n->outputs[j]] : NULL;
        off += n->n_inputs + n->n_outputs;
    }
    for (size_t v = 0; v < g->n_values; v++)
        if (g->values[v].is_const)
            s->vals[v] = g->values[v].constant;
    st_arena_init(&s->run_arena, 1 << 20);
    int threads = m->options.threads;
    if (threads > 1) {
        st_status rc = st_pool_create(threads, &s->pool, err);
        if (rc != ST_OK) {
            eng_session_free(s);
            return rc;
        }
    }
    *out = s;
    return ST_OK;
}

void eng_session_free(eng_session *s)
{
    if (!s)
        return;
    st_pool_destroy(s->pool);
    for (size_t i = 0; i < ENG_PLAN_CACHE; i++)
        plan_free(&s->plans[i]);
    st_free(s->sizes);
    st_arena_free(&s->run_arena);
    st_free(s->vals);
    st_free(s->in_ptrs);
    st_free(s->out_ptrs);
    st_free(s->io_offset);
    st_free(s);
}

static st_status check_input(const eng_io *io, const eng_tensor *t, st_error *err)
{
    if (io->dtype != ST_DT_UNDEFINED && t->dtype != io->dtype)
        return st_fail(err, ST_ETYPE, "input '%s' must be %s, got %s", io->name, st_dtype_name(io->dtype),
                       st_dtype_name(t->dtype));
    if (t->rank > ENG_MAX_RANK)
        return st_fail(err, ST_ESHAPE, "input '%s' has rank %u (at most %d)", io->name, t->rank, ENG_MAX_RANK);
    if (io->rank >= 0) {
        if ((int)t->rank != io->rank)
            return st_fail(err, ST_ESHAPE, "input '%s' must have rank %d, got %u", io->name, io->rank, t->rank);
        for (int i = 0; i < io->rank; i++)
            if (io->dims[i] >= 0 && t->shape[i] != io->dims[i])
                return st_fail(err, ST_ESHAPE, "input '%s' dimension %d must be %lld, got %lld", io->name, i,
                               (long long)io->dims[i], (long long)t->shape[i]);
    }
    size_t count;
    if (!eng_shape_count(t->shape, t->rank, &count) || count != t->count)
        return st_fail(err, ST_ESHAPE, "input '%s': element count does not match its shape", io->name);
    if (count && !t->data)
        return st_fail(err, ST_EINVAL, "input '%s' has no data", io->name);
    return ST_OK;
}

/* A data pointer for empty tensors, so kernels never see NULL. */
static _Alignas(64) uint8_t empty_data[64];

/* --- static memory plans ---------------------------------------------------
 * The first run with a given input-shape signature allocates from the run
 * arena and records every value's size.  Then each value gets an offset in
 * one block such that values whose lifetimes (producer .. last reader)
 * overlap never share bytes.  Later runs with that signature put outputs at
 * their offsets and allocate nothing; a value that turns out larger than
 * planned (data-dependent shapes) falls back to the arena. */

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static uint64_t signature_hash(const eng_tensor *inputs, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint64_t)inputs[i].rank) * 1099511628211ull;
        for (uint32_t d = 0; d < inputs[i].rank; d++)
            h = (h ^ (uint64_t)inputs[i].shape[d]) * 1099511628211ull;
    }
    return h;
}

static bool signature_equal(const eng_plan *p, const eng_tensor *inputs, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k >= p->sig_len || p->sig[k++] != (int64_t)inputs[i].rank)
            return false;
        for (uint32_t d = 0; d < inputs[i].rank; d++)
            if (k >= p->sig_len || p->sig[k++] != inputs[i].shape[d])
                return false;
    }
    return k == p->sig_len;
}

static void plan_free(eng_plan *p)
{
    st_free(p->sig);
    st_free(p->offset);
    st_free(p->size);
    st_free(p->block);
    memset(p, 0, sizeof *p);
}

typedef struct live_range {
    int value;
    int def, last;
    size_t size;
} live_range;

static int cmp_range_size(const void *a, const void *b)
{
    const live_range *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->def - y->def;
}

/* Builds a plan from the sizes recorded in s->sizes by the last run. */
static st_status plan_build(eng_session *s, eng_plan *p, const eng_tensor *inputs, size_t n_inputs)
{
    const eng_graph *g = &s->model->graph;
    size_t nv = g->n_values, sig_len = 0;
    for (size_t i = 0; i < n_inputs; i++)
        sig_len += 1 + inputs[i].rank;
    p->sig = st_calloc(sig_len + 1, sizeof *p->sig);
    p->offset = st_calloc(nv + 1, sizeof *p->offset);
    p->size = st_calloc(nv + 1, sizeof *p->size);
    live_range *ranges = st_calloc(nv + 1, sizeof *ranges);
    live_range **placed = st_calloc(nv + 1, sizeof *placed);
    st_status rc = ST_OK;
    if (!p->sig || !p->offset || !p->size || !ranges || !placed) {
        rc = ST_ENOMEM;
        goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_inputs; i++) {
        p->sig[k++] = inputs[i].rank;
        for (uint32_t d = 0; d < inputs[i].rank; d++)
            p->sig[k++] = inputs[i].shape[d];
    }
    p->sig_len = sig_len;
    p->hash = signature_hash(inputs, n_inputs);
    size_t n_ranges = 0;
    for (size_t v = 0; v < nv; v++) {
        const eng_value *val = &g->values[v];
        p->offset[v] = SIZE_MAX;
        if (val->producer < 0 || s->sizes[v] == 0)
            continue;
        live_range *r = &ranges[n_ranges++];
        r->value = (int)v;
        r->def = val->producer;
        r->last = val->is_graph_output ? (int)g->n_nodes : (val->last_consumer < 0 ? r->def : val->last_consumer);
        r->size = align64(s->sizes[v]);
    }
    /* Greedy by size: each range takes the lowest offset that clears every
     * placed range it is alive with.  Placed ranges are kept sorted by
     * offset so one scan finds the first gap. */
    qsort(ranges, n_ranges, sizeof *ranges, cmp_range_size);
    size_t n_placed = 0, total = 0;
    for (size_t i = 0; i < n_ranges; i++) {
        live_range *r = &ranges[i];
        size_t offset = 0;
        for (size_t j = 0; j < n_placed; j++) {
            const live_range *q = placed[j];
            if (q->def > r->last || r->def > q->last)
                continue;
            size_t q_off = p->offset[q->value];
            if (offset + r->size <= q_off)
                break;
            if (q_off + q->size > offset)
                offset = q_off + q->size;
        }
        p->offset[r->value] = offset;
        p->size[r->value] = r->size;
        size_t j = n_placed++;
        while (j > 0 && p->offset[placed[j - 1]->value] > offset) {
            placed[j] = placed[j - 1];
            j--;
        }
        placed[j] = r;
        if (offset + r->size > total)
            total = offset + r->size;
    }
    p->total = total;
    p->block = st_aligned_alloc(64, total ? total : 64);
    if (!p->block)
        rc = ST_ENOMEM;
done:
    st_free(ranges);
    st_free(placed);
    if (rc != ST_OK)
        plan_free(p);
    return rc;
}

static eng_plan *plan_find(eng_session *s, const eng_tensor *inputs, size_t n)
{
    uint64_t h = signature_hash(inputs, n);
    for (size_t i = 0; i < ENG_PLAN_CACHE; i++) {
        eng_plan *p = &s->plans[i];
        if (p->block && p->hash == h && signature_equal(p, inputs, n)) {
            p->last_used = ++s->clock;
            return p;
        }
    }
    return NULL;
}

static eng_plan *plan_slot(eng_session *s)
{
    eng_plan *victim = &s->plans[0];
    for (size_t i = 0; i < ENG_PLAN_CACHE; i++) {
        if (!s->plans[i].block)
            return &s->plans[i];
        if (s->plans[i].last_used < victim->last_used)
            victim = &s->plans[i];
    }
    plan_free(victim);
    return victim;
}

/* Runs one node whose k->node, in and out are set: infer, give every
 * output memory (its planned place when `plan` has one that fits, else
 * `arena`), run, then the fused post-op unless the kernel applied it.
 * `sizes` (may be NULL) records each output's bytes for planning. */
static st_status node_exec(eng_kctx *k, const eng_graph *g, st_arena *arena, const eng_plan *plan, size_t *sizes)
{
    const eng_node *n = k->node;
    k->stash = NULL;
    k->is_post_done = false;
    for (uint32_t o = 0; o < n->n_outputs; o++)
        if (k->out[o])
            memset(k->out[o], 0, sizeof *k->out[o]);
    st_status rc = n->op->infer(k);
    if (rc != ST_OK)
        return rc;
    for (uint32_t o = 0; o < n->n_outputs; o++) {
        eng_tensor *t = k->out[o];
        if (!t)
            continue;
        int v = n->outputs[o];
        size_t count, bytes;
        if (!eng_shape_count(t->shape, t->rank, &count) || !eng_tensor_bytes(t->dtype, count, &bytes))
            return eng_fail(k, ST_EOVERFLOW, "output %u would have too many elements", o);
        t->count = count;
        if (sizes)
            sizes[v] = bytes;
        if (bytes == 0) {
            t->data = empty_data;
        } else if (plan && plan->offset[v] != SIZE_MAX && bytes <= plan->size[v]) {
            t->data = plan->block + plan->offset[v];
        } else {
            t->data = st_arena_alloc(arena, bytes, 64);
            if (!t->data)
                return eng_fail(k, ST_ENOMEM, "out of memory for a %zu-byte output", bytes);
        }
    }
    if ((rc = n->op->run(k)) != ST_OK)
        return rc;
    if (!k->is_post_done && (n->post.bias >= 0 || n->post.act != ENG_ACT_NONE))
        return eng_apply_post_op(k, g);
    return ST_OK;
}

st_status eng_run(eng_session *s, const eng_tensor *inputs, size_t n_inputs, eng_tensor *outputs,
                  size_t n_outputs, st_error *err)
{
    eng_model *m = s->model;
    const eng_graph *g = &m->graph;
    if (n_inputs != g->n_inputs)
        return st_fail(err, ST_EINVAL, "the model takes %zu input%s, got %zu", g->n_inputs,
                       g->n_inputs == 1 ? "" : "s", n_inputs);
    if (n_outputs > g->n_outputs)
        return st_fail(err, ST_EINVAL, "the model has %zu output%s, %zu asked for", g->n_outputs,
                       g->n_outputs == 1 ? "" : "s", n_outputs);
    /* Keep the arena in one chunk of the high-water size once warm. */
    if (s->run_arena.head && s->run_arena.used_bytes > s->run_arena.chunk_bytes) {
        size_t want = s->run_arena.used_bytes + s->run_arena.used_bytes / 4;
        st_arena_free(&s->run_arena);
        st_arena_init(&s->run_arena, want);
    } else {
        st_arena_reset(&s->run_arena);
    }
    for (size_t i = 0; i < n_inputs; i++) {
        st_status rc = check_input(&m->inputs[i], &inputs[i], err);
        if (rc != ST_OK)
            return rc;
        s->vals[g->inputs[i]] = inputs[i];
        if (!inputs[i].count)
            s->vals[g->inputs[i]].data = empty_data;
    }
    eng_plan *plan = plan_find(s, inputs, n_inputs);
    eng_kctx k = { .pool = s->pool, .scratch = &s->run_arena, .err = err };
    for (size_t i = 0; i < g->n_nodes; i++) {
        const eng_node *n = &g->nodes[i];
        size_t off = s->io_offset[i];
        k.node = n;
        k.in = &s->in_ptrs[off];
        k.n_in = n->n_inputs - n->n_implicit;
        k.out = &s->out_ptrs[off + n->n_inputs];
        k.n_out = n->n_outputs;
        st_status rc = node_exec(&k, g, &s->run_arena, plan, s->sizes);
        if (rc != ST_OK)
            return rc;
    }
    for (size_t i = 0; i < n_outputs; i++)
        outputs[i] = s->vals[g->outputs[i]];
    /* A new signature: plan it now that every size is known.  The outputs
     * stay in the arena until the next run, so this is safe. */
    if (!plan && plan_build(s, plan_slot(s), inputs, n_inputs) != ST_OK)
        return st_fail(err, ST_ENOMEM, "out of memory planning the model's memory");
    return ST_OK;
}

/* --- subgraphs ---------------------------------------------------------------
 * Bodies of If/Loop/Scan run on this simple interpreter: values live in
 * the caller's scratch arena, no plan (bodies are small and their shapes
 * change across iterations).  Captured outer values come from the owner's
 * implicit inputs. */
st_status eng_subgraph_run(const eng_graph *g, const eng_kctx *owner, const eng_tensor *inputs, size_t n_inputs,
                           eng_tensor *outputs, size_t n_outputs)
{
    if (n_inputs != g->n_inputs || n_outputs != g->n_outputs)
        return eng_fail(owner, ST_EINVAL, "body takes %zu inputs and %zu outputs, given %zu and %zu", g->n_inputs,
                        g->n_outputs, n_inputs, n_outputs);
    st_arena *arena = owner->scratch;
    eng_tensor *vals = st_arena_calloc(arena, g->n_values + 1, sizeof *vals, 64);
    const eng_tensor **in_ptrs = st_arena_alloc(arena, 72 * sizeof *in_ptrs, 8);
    eng_tensor **out_ptrs = st_arena_alloc(arena, 72 * sizeof *out_ptrs, 8);
    if (!vals || !in_ptrs || !out_ptrs)
        return eng_fail(owner, ST_ENOMEM, "out of memory running a subgraph");
    for (size_t v = 0; v < g->n_values; v++) {
        const eng_value *val = &g->values[v];
        if (val->is_const)
            vals[v] = val->constant;
        else if (val->outer >= 0)
            vals[v] = *owner->in[owner->n_in + (uint32_t)val->outer];
    }
    for (size_t i = 0; i < n_inputs; i++)
        vals[g->inputs[i]] = inputs[i];
    eng_kctx k = { .pool = owner->pool, .scratch = arena, .err = owner->err };
    for (size_t i = 0; i < g->n_nodes; i++) {
        const eng_node *n = &g->nodes[i];
        if (n->n_inputs > 72 || n->n_outputs > 72)
            return eng_fail(owner, ST_EUNSUPPORTED, "a body node has more than 72 inputs or outputs");
        for (uint32_t j = 0; j < n->n_inputs; j++)
            in_ptrs[j] = n->inputs[j] >= 0 ? &vals[n->inputs[j]] : NULL;
        for (uint32_t o = 0; o < n->n_outputs; o++)
            out_ptrs[o] = n->outputs[o] >= 0 ? &vals[n->outputs[o]] : NULL;
        k.node = n;
        k.in = in_ptrs;
        k.n_in = n->n_inputs - n->n_implicit;
        k.out = out_ptrs;
        k.n_out = n->n_outputs;
        st_status rc = node_exec(&k, g, arena, NULL, NULL);
        if (rc != ST_OK)
            return rc;
    }
    for (size_t i = 0; i < n_outputs; i++)
        outputs[i] = vals[g->outputs[i]];
    return ST_OK;
}
