/* exec.c - sessions and the run loop: check the inputs against the model's
 * declarations, then for every node in order infer output shapes, give the
 * outputs memory from the run arena and call the kernel.  The run arena
 * grows to the high-water mark of the first runs and is then reused, so a
 * warm session does not touch the heap. */
#include <string.h>

#include "base/alloc.h"
#include "engine/eng_int.h"
#include "engine/model_int.h"

struct eng_session {
    eng_model *model;
    eng_tensor *vals;              /* one per value of the main graph */
    const eng_tensor **in_ptrs;    /* every node's input pointers, flattened */
    eng_tensor **out_ptrs;
    size_t *io_offset;             /* node i's pointers start here */
    st_arena run_arena;
    st_pool *pool;
};

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
    s->in_ptrs = st_calloc(n_io + 1, sizeof *s->in_ptrs);
    s->out_ptrs = st_calloc(n_io + 1, sizeof *s->out_ptrs);
    s->io_offset = st_calloc(g->n_nodes + 1, sizeof *s->io_offset);
    if (!s->vals || !s->in_ptrs || !s->out_ptrs || !s->io_offset) {
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
    eng_kctx k = { .pool = s->pool, .scratch = &s->run_arena, .err = err };
    for (size_t i = 0; i < g->n_nodes; i++) {
        const eng_node *n = &g->nodes[i];
        size_t off = s->io_offset[i];
        k.node = n;
        k.in = &s->in_ptrs[off];
        k.n_in = n->n_inputs;
        k.out = &s->out_ptrs[off + n->n_inputs];
        k.n_out = n->n_outputs;
        for (uint32_t o = 0; o < n->n_outputs; o++)
            if (k.out[o])
                memset(k.out[o], 0, sizeof *k.out[o]);
        st_status rc = n->op->infer(&k);
        if (rc != ST_OK)
            return rc;
        for (uint32_t o = 0; o < n->n_outputs; o++) {
            eng_tensor *t = k.out[o];
            if (!t)
                continue;
            size_t count, bytes;
            if (!eng_shape_count(t->shape, t->rank, &count) || !eng_tensor_bytes(t->dtype, count, &bytes))
                return eng_fail(&k, ST_EOVERFLOW, "output %u would have too many elements", o);
            t->count = count;
            if (bytes == 0) {
                t->data = empty_data;
                continue;
            }
            t->data = st_arena_alloc(&s->run_arena, bytes, 64);
            if (!t->data)
                return eng_fail(&k, ST_ENOMEM, "out of memory for a %zu-byte output", bytes);
        }
        if ((rc = n->op->run(&k)) != ST_OK)
            return rc;
    }
    for (size_t i = 0; i < n_outputs; i++)
        outputs[i] = s->vals[g->outputs[i]];
    return ST_OK;
}
