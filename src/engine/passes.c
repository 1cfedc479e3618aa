/* passes.c - load-time graph passes: constant folding, Identity/Dropout
 * removal and dead-node removal.  They run once per model, after the graph
 * is built and checked, and leave a smaller graph that the executor runs
 * exactly as before (the conformance suite runs with them on). */
#include <string.h>

#include "base/alloc.h"
#include "engine/eng_int.h"
#include "engine/model_int.h"

/* Nodes with side effects or randomness never fold. */
static bool is_foldable_op(const eng_node *n)
{
    st_str t = n->proto->op_type;
    if (st_str_starts_with(t, ST_STR("Random")) || st_str_eq_c(t, "Bernoulli"))
        return false;
    for (size_t a = 0; a < n->proto->attr_count; a++)
        if (n->proto->attrs[a].g || n->proto->attrs[a].graph_count)
            return false; /* subgraphs (If/Loop/Scan) */
    return true;
}

/* Folded outputs larger than this stay computed at run time: folding
 * would only trade a cheap op for a large copy in the model's memory. */
#define FOLD_MAX_BYTES ((size_t)16 << 20)

static _Alignas(64) uint8_t empty_const[64];

/* Evaluates node n whose inputs are all constant; on success its outputs
 * become constants in the model arena. */
static st_status fold_node(eng_graph *g, eng_node *n, st_arena *scratch, bool *folded, st_error *err)
{
    const eng_tensor *in[64];
    eng_tensor outs[16];
    eng_tensor *out[16];
    *folded = false;
    if (n->n_inputs > 64 || n->n_outputs > 16)
        return ST_OK;
    for (uint32_t i = 0; i < n->n_inputs; i++)
        in[i] = n->inputs[i] >= 0 ? &g->values[n->inputs[i]].constant : NULL;
    for (uint32_t o = 0; o < n->n_outputs; o++) {
        memset(&outs[o], 0, sizeof outs[o]);
        out[o] = n->outputs[o] >= 0 ? &outs[o] : NULL;
    }
    eng_kctx k = { .node = n, .in = in, .n_in = n->n_inputs, .out = out, .n_out = n->n_outputs,
                   .pool = NULL, .scratch = scratch, .err = err };
    st_status s = n->op->infer(&k);
    if (s != ST_OK)
        return s;
    for (uint32_t o = 0; o < n->n_outputs; o++) {
        if (!out[o])
            continue;
        size_t count, bytes;
        if (!eng_shape_count(outs[o].shape, outs[o].rank, &count) || !eng_tensor_bytes(outs[o].dtype, count, &bytes))
            return eng_fail(&k, ST_EOVERFLOW, "output %u would have too many elements", o);
        if (bytes > FOLD_MAX_BYTES)
            return ST_OK;
        outs[o].count = count;
        outs[o].data = bytes ? st_arena_alloc(g->arena, bytes, 64) : empty_const;
        if (!outs[o].data)
            return st_fail(err, ST_ENOMEM, "out of memory folding constants");
    }
    if ((s = n->op->run(&k)) != ST_OK)
        return s;
    for (uint32_t o = 0; o < n->n_outputs; o++) {
        if (!out[o])
            continue;
        eng_value *v = &g->values[n->outputs[o]];
        v->constant = outs[o];
        v->is_const = true;
        v->producer = -1;
        v->dtype = outs[o].dtype;
        v->rank = (int)outs[o].rank;
        memcpy(v->dims, outs[o].shape, sizeof v->dims);
    }
    *folded = true;
    return ST_OK;
}

static bool is_identity_like(const eng_node *n)
{
    st_str t = n->proto->op_type;
    if (st_str_eq_c(t, "Identity"))
        return n->n_inputs == 1 && n->n_outputs == 1;
    /* Dropout at inference is Identity when its mask is not used. */
    if (st_str_eq_c(t, "Dropout"))
        return n->n_outputs == 1 || (n->n_outputs == 2 && n->outputs[1] < 0);
    return false;
}

st_status eng_graph_optimize(eng_graph *g, st_error *err)
{
    size_t nv = g->n_values, nn = g->n_nodes;
    bool *keep = st_calloc(nn + 1, sizeof *keep);
    int *alias = st_calloc(nv + 1, sizeof *alias);
    bool *is_used = st_calloc(nv + 1, sizeof *is_used);
    st_arena scratch;
    st_arena_init(&scratch, 0);
    st_status s = ST_OK;
    if (!keep || !alias || !is_used) {
        s = st_fail(err, ST_ENOMEM, "out of memory optimising the graph");
        goto done;
    }
    for (size_t v = 0; v < nv; v++)
        alias[v] = (int)v;

    /* 1. Fold nodes whose inputs are all constants, in order, so chains
     *    (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) fold whole. */
    for (size_t i = 0; i < nn; i++) {
        eng_node *n = &g->nodes[i];
        keep[i] = true;
        bool all_const = n->n_inputs > 0 || st_str_eq_c(n->proto->op_type, "Constant");
        for (uint32_t j = 0; j < n->n_inputs && all_const; j++)
            all_const = n->inputs[j] < 0 || g->values[n->inputs[j]].is_const;
        for (uint32_t o = 0; o < n->n_outputs && all_const; o++)
            all_const = n->outputs[o] < 0 || !g->values[n->outputs[o]].is_graph_output;
        if (!all_const || !is_foldable_op(n))
            continue;
        bool folded;
        st_arena_reset(&scratch);
        if ((s = fold_node(g, n, &scratch, &folded, err)) != ST_OK) {
            st_fail_wrap(err, s, "while folding constants");
            goto done;
        }
        if (folded)
            keep[i] = false;
    }

    /* 2. Identity and inference Dropout: readers use the input directly,
     *    unless the output is a graph output (its name must survive). */
    for (size_t i = 0; i < nn; i++) {
        eng_node *n = &g->nodes[i];
        if (!keep[i] || !is_identity_like(n) || n->inputs[0] < 0 || n->outputs[0] < 0)
            continue;
        if (g->values[n->outputs[0]].is_graph_output)
            continue;
        alias[n->outputs[0]] = alias[n->inputs[0]];
        keep[i] = false;
    }
    for (size_t i = 0; i < nn; i++)
        for (uint32_t j = 0; j < g->nodes[i].n_inputs; j++) {
            int v = g->nodes[i].inputs[j];
            if (v >= 0)
                g->nodes[i].inputs[j] = alias[v];
        }

    /* 3. Dead nodes: nothing reads any output and none is a graph output.
     *    Walk backwards so whole dead chains go in one pass. */
    for (size_t v = 0; v < nv; v++)
        is_used[v] = g->values[v].is_graph_output;
    for (size_t i = nn; i-- > 0;) {
        eng_node *n = &g->nodes[i];
        if (!keep[i])
            continue;
        bool live = false;
        for (uint32_t o = 0; o < n->n_outputs && !live; o++)
            live = n->outputs[o] >= 0 && is_used[n->outputs[o]];
        if (!live) {
            keep[i] = false;
            continue;
        }
        for (uint32_t j = 0; j < n->n_inputs; j++)
            if (n->inputs[j] >= 0)
                is_used[n->inputs[j]] = true;
    }

    size_t w = 0;
    for (size_t i = 0; i < nn; i++)
        if (keep[i])
            g->nodes[w++] = g->nodes[i];
    g->n_nodes = w;
    for (size_t v = 0; v < nv; v++)
        g->values[v].producer = -1;
    for (size_t i = 0; i < w; i++)
        for (uint32_t o = 0; o < g->nodes[i].n_outputs; o++)
            if (g->nodes[i].outputs[o] >= 0)
                g->values[g->nodes[i].outputs[o]].producer = (int)i;
    s = eng_graph_sort(g, err);
done:
    st_arena_free(&scratch);
    st_free(keep);
    st_free(alias);
    st_free(is_used);
    return s;
}
