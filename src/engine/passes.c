/* passes.c - load-time graph passes: constant folding, Identity/Dropout
 * removal and dead-node removal.  They run once per model, after the graph
 * is built and checked, and leave a smaller graph that the executor runs
 * exactly as before (the conformance suite runs with them on). */
#include <math.h>
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
static st_status fold_node(eng_graph *g, eng_node *n, bool *folded, st_error *err)
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
    /* Scratch is the model's arena: what an op allocates there (string
     * bytes, sequence elements) becomes part of the folded constant. */
    eng_kctx k = { .node = n, .in = in, .n_in = n->n_inputs - n->n_implicit, .out = out, .n_out = n->n_outputs,
                   .pool = NULL, .scratch = g->arena, .err = err };
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

/* --- fusion ------------------------------------------------------------------ */

static bool op_is(const eng_node *n, const char *op_type)
{
    return st_str_eq_c(n->proto->op_type, op_type) && n->proto->domain.len == 0;
}

/* The single node reading value v, or NULL. */
static eng_node *sole_reader(eng_graph *g, int v)
{
    if (v < 0 || g->values[v].n_consumers != 1 || g->values[v].is_graph_output)
        return NULL;
    eng_node *n = &g->nodes[g->values[v].last_consumer];
    int uses = 0;
    for (uint32_t j = 0; j < n->n_inputs; j++)
        uses += n->inputs[j] == v;
    return uses == 1 ? n : NULL;
}

static bool is_float_const(const eng_graph *g, int v)
{
    return v >= 0 && g->values[v].is_const &&
           (g->values[v].constant.dtype == ST_DT_FLOAT32 || g->values[v].constant.dtype == ST_DT_FLOAT64);
}

/* Reads a scalar float constant input (Clip min/max); false if absent. */
static bool const_scalar(const eng_graph *g, int v, float *out)
{
    if (v < 0 || !g->values[v].is_const || g->values[v].constant.count != 1)
        return false;
    const eng_tensor *t = &g->values[v].constant;
    if (t->dtype == ST_DT_FLOAT32)
        *out = *(const float *)t->data;
    else if (t->dtype == ST_DT_FLOAT64)
        *out = (float)*(const double *)t->data;
    else
        return false;
    return true;
}

/* Which activation node `a` is, as a post-op; false if not fusable. */
static bool activation_of(const eng_graph *g, const eng_node *a, eng_post_op *p)
{
    if (op_is(a, "Relu")) {
        p->act = ENG_ACT_RELU;
    } else if (op_is(a, "LeakyRelu")) {
        p->act = ENG_ACT_LEAKY_RELU;
        p->alpha = eng_attr_float(a, "alpha", 0.01f);
    } else if (op_is(a, "Sigmoid")) {
        p->act = ENG_ACT_SIGMOID;
    } else if (op_is(a, "Tanh")) {
        p->act = ENG_ACT_TANH;
    } else if (op_is(a, "HardSigmoid")) {
        p->act = ENG_ACT_HARD_SIGMOID;
        p->alpha = eng_attr_float(a, "alpha", 0.2f);
        p->beta = eng_attr_float(a, "beta", 0.5f);
    } else if (op_is(a, "Clip")) {
        p->act = ENG_ACT_CLIP;
        p->alpha = -INFINITY;
        p->beta = INFINITY;
        if (a->opset < 11) {
            p->alpha = eng_attr_float(a, "min", -INFINITY);
            p->beta = eng_attr_float(a, "max", INFINITY);
        } else {
            if (a->n_inputs > 1 && a->inputs[1] >= 0 && !const_scalar(g, a->inputs[1], &p->alpha))
                return false;
            if (a->n_inputs > 2 && a->inputs[2] >= 0 && !const_scalar(g, a->inputs[2], &p->beta))
                return false;
        }
    } else {
        return false;
    }
    return true;
}

/* Folds BatchNormalization (inference, constant statistics) into the Conv
 * that feeds it: W' = W * s, b' = (b - mean) * s + beta, s = gamma /
 * sqrt(var + eps), per output channel. */
static st_status fold_batchnorm(eng_graph *g, eng_node *conv, eng_node *bn, bool *done, st_error *err)
{
    *done = false;
    if (conv->n_inputs < 2 || bn->n_inputs < 5 || (bn->n_outputs > 1 && bn->outputs[1] >= 0))
        return ST_OK;
    int w_id = conv->inputs[1], b_id = conv->n_inputs > 2 ? conv->inputs[2] : -1;
    for (int i = 1; i < 5; i++)
        if (!is_float_const(g, bn->inputs[i]) || g->values[bn->inputs[i]].constant.dtype != ST_DT_FLOAT32)
            return ST_OK;
    if (!is_float_const(g, w_id) || g->values[w_id].constant.dtype != ST_DT_FLOAT32 || g->values[w_id].n_consumers != 1)
        return ST_OK;
    if (b_id >= 0 && (!is_float_const(g, b_id) || g->values[b_id].n_consumers != 1 ||
                      g->values[b_id].constant.dtype != ST_DT_FLOAT32))
        return ST_OK;
    eng_tensor *w = &g->values[w_id].constant;
    const eng_tensor *gamma = &g->values[bn->inputs[1]].constant, *beta = &g->values[bn->inputs[2]].constant;
    const eng_tensor *mean = &g->values[bn->inputs[3]].constant, *var = &g->values[bn->inputs[4]].constant;
    if (w->rank < 3)
        return ST_OK;
    size_t c_out = (size_t)w->shape[0];
    if (gamma->count != c_out || beta->count != c_out || mean->count != c_out || var->count != c_out)
        return ST_OK;
    /* The new bias needs a value: the conv's own, else BN's beta (both
     * read by this pair only). */
    int new_b = b_id >= 0 ? b_id : bn->inputs[2];
    if (b_id < 0 && g->values[new_b].n_consumers != 1)
        return ST_OK;
    float eps = eng_attr_float(bn, "epsilon", 1e-5f);
    float *nw = st_arena_alloc(g->arena, w->count * sizeof *nw, 64);
    float *nb = st_arena_alloc(g->arena, c_out * sizeof *nb, 64);
    if (!nw || !nb)
        return st_fail(err, ST_ENOMEM, "out of memory folding BatchNormalization");
    size_t per = w->count / c_out;
    const float *ow = w->data, *ob = b_id >= 0 ? g->values[b_id].constant.data : NULL;
    for (size_t c = 0; c < c_out; c++) {
        double scale = ((const float *)gamma->data)[c] / sqrt((double)((const float *)var->data)[c] + eps);
        for (size_t i = 0; i < per; i++)
            nw[c * per + i] = (float)(ow[c * per + i] * scale);
        nb[c] = (float)(((ob ? ob[c] : 0.0) - ((const float *)mean->data)[c]) * scale + ((const float *)beta->data)[c]);
    }
    w->data = nw;
    eng_tensor *bt = &g->values[new_b].constant;
    int64_t shape[1] = { (int64_t)c_out };
    *bt = eng_tensor_make(ST_DT_FLOAT32, shape, 1, nb);
    if (b_id < 0) {
        conv->inputs[2] = new_b; /* nodes keep one spare input slot */
        conv->n_inputs = 3;
    }
    conv->outputs[0] = bn->outputs[0];
    *done = true;
    return ST_OK;
}

/* The scalar value of a constant input, when it is one float. */
static bool const_is(const eng_graph *g, int v, double want, double tol)
{
    float x;
    return const_scalar(g, v, &x) && x > want - tol && x < want + tol;
}

/* The other input of a two-input node n, given one of them. */
static int other_input(const eng_node *n, int v)
{
    if (n->n_inputs != 2)
        return -2;
    return n->inputs[0] == v ? n->inputs[1] : n->inputs[1] == v ? n->inputs[0] : -2;
}

/* GELU as exporters write it: y = x * 0.5 * (1 + erf(x / sqrt 2)), as
 * Div (or Mul by 1/sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5 (either
 * order of the last two).  Becomes one Gelu node: one pass, no buffers. */
static st_status fuse_gelu(eng_graph *g, eng_node *d, bool *keep, st_error *err)
{
    if (d->n_inputs != 2 || d->n_outputs != 1)
        return ST_OK;
    int x = d->inputs[0];
    bool scaled = (op_is(d, "Div") && const_is(g, d->inputs[1], 1.4142135, 1e-4)) ||
                  (op_is(d, "Mul") && const_is(g, d->inputs[1], 0.70710678, 1e-5));
    if (!scaled || x < 0 || g->values[x].is_const)
        return ST_OK;
    eng_node *e = sole_reader(g, d->outputs[0]);
    if (!e || !op_is(e, "Erf"))
        return ST_OK;
    eng_node *a = sole_reader(g, e->outputs[0]);
    if (!a || !op_is(a, "Add") || !const_is(g, other_input(a, e->outputs[0]), 1.0, 1e-6))
        return ST_OK;
    eng_node *m1 = sole_reader(g, a->outputs[0]);
    if (!m1 || !op_is(m1, "Mul"))
        return ST_OK;
    int m1_other = other_input(m1, a->outputs[0]);
    eng_node *m2 = sole_reader(g, m1->outputs[0]);
    if (!m2 || !op_is(m2, "Mul"))
        return ST_OK;
    int m2_other = other_input(m2, m1->outputs[0]);
    bool ok = (m1_other == x && const_is(g, m2_other, 0.5, 1e-6)) ||
              (const_is(g, m1_other, 0.5, 1e-6) && m2_other == x);
    const eng_op *gelu = eng_op_find(ST_STR(""), ST_STR("Gelu"), 20);
    if (!ok || !gelu)
        return ST_OK;
    d->op = gelu;
    d->n_inputs = 1;
    d->outputs[0] = m2->outputs[0];
    d->post.act = ENG_ACT_NONE;
    keep[e - g->nodes] = keep[a - g->nodes] = keep[m1 - g->nodes] = keep[m2 - g->nodes] = false;
    return gelu->check(d, g->arena, err);
}

/* True when ReduceMean node r reduces the last axis only (attribute before
 * opset 18, constant input from 18), keeping dims. */
static bool reduces_last_axis(const eng_graph *g, const eng_node *r)
{
    if (!op_is(r, "ReduceMean") || eng_attr_int(r, "keepdims", 1) != 1)
        return false;
    if (r->opset < 18) {
        size_t n;
        const int64_t *axes = eng_attr_ints(r, "axes", &n);
        return n == 1 && axes[0] == -1;
    }
    if (r->n_inputs < 2 || r->inputs[1] < 0 || !g->values[r->inputs[1]].is_const)
        return false;
    const eng_tensor *a = &g->values[r->inputs[1]].constant;
    return a->count == 1 && eng_int_at(a, 0) == -1;
}

/* LayerNormalization as exporters before opset 17 write it:
 *   m = ReduceMean(x); d = x - m; v = ReduceMean(d ^ 2);
 *   y = d / Sqrt(v + eps) * gamma + beta      (last axis)
 * becomes one LayerNormalization node (two passes over each row). */
static st_status fuse_layernorm(eng_graph *g, eng_node *r1, bool *keep, st_error *err)
{
    int x = r1->inputs[0];
    eng_node *sub = sole_reader(g, r1->outputs[0]);
    if (x < 0 || !reduces_last_axis(g, r1) || !sub || !op_is(sub, "Sub") || sub->inputs[0] != x ||
        sub->inputs[1] != r1->outputs[0])
        return ST_OK;
    int d = sub->outputs[0];
    if (g->values[d].n_consumers != 2 || g->values[d].is_graph_output)
        return ST_OK;
    /* d feeds Pow(d, 2) and Div(d, Sqrt(...)), in either order. */
    eng_node *pw = NULL, *dv = NULL;
    for (size_t i = 0; i < g->n_nodes; i++) {
        eng_node *n = &g->nodes[i];
        if (!keep[i] || n->n_inputs < 2 || n->inputs[0] != d)
            continue;
        if (op_is(n, "Pow"))
            pw = n;
        else if (op_is(n, "Div"))
            dv = n;
    }
    if (!pw || !dv || !const_is(g, pw->inputs[1], 2.0, 1e-6))
        return ST_OK;
    eng_node *r2 = sole_reader(g, pw->outputs[0]);
    if (!r2 || !reduces_last_axis(g, r2))
        return ST_OK;
    eng_node *add = sole_reader(g, r2->outputs[0]);
    float eps;
    if (!add || !op_is(add, "Add") || !const_scalar(g, other_input(add, r2->outputs[0]), &eps))
        return ST_OK;
    eng_node *sq = sole_reader(g, add->outputs[0]);
    if (!sq || !op_is(sq, "Sqrt") || sole_reader(g, sq->outputs[0]) != dv || dv->inputs[1] != sq->outputs[0])
        return ST_OK;
    eng_node *mul = sole_reader(g, dv->outputs[0]);
    int gamma = mul && op_is(mul, "Mul") ? other_input(mul, dv->outputs[0]) : -1;
    eng_node *badd = gamma >= 0 ? sole_reader(g, mul->outputs[0]) : NULL;
    int beta = badd && op_is(badd, "Add") ? other_input(badd, mul->outputs[0]) : -1;
    if (!is_float_const(g, gamma) || !is_float_const(g, beta) || g->values[gamma].constant.rank != 1 ||
        g->values[beta].constant.rank != 1)
        return ST_OK;
    const eng_op *ln = eng_op_find(ST_STR(""), ST_STR("LayerNormalization"), 17);
    onnx_node *proto = st_arena_calloc(g->arena, 1, sizeof *proto, 8);
    onnx_attr *attrs = st_arena_calloc(g->arena, 2, sizeof *attrs, 8);
    int *inputs = st_arena_alloc(g->arena, 4 * sizeof *inputs, 8);
    if (!ln)
        return ST_OK;
    if (!proto || !attrs || !inputs)
        return st_fail(err, ST_ENOMEM, "out of memory fusing LayerNormalization");
    /* A node of our own making: LayerNormalization's attributes on the
     * first ReduceMean's identity (its name still shows in errors). */
    *proto = *r1->proto;
    proto->op_type = ST_STR("LayerNormalization");
    attrs[0] = (onnx_attr){ .name = ST_STR("axis"), .type = ONNX_ATTR_INT, .i = -1 };
    attrs[1] = (onnx_attr){ .name = ST_STR("epsilon"), .type = ONNX_ATTR_FLOAT, .f = eps };
    proto->attrs = attrs;
    proto->attr_count = 2;
    inputs[0] = x;
    inputs[1] = gamma;
    inputs[2] = beta;
    r1->proto = proto;
    r1->op = ln;
    r1->opset = 17;
    r1->inputs = inputs;
    r1->n_inputs = 3;
    r1->n_implicit = 0;
    r1->outputs[0] = badd->outputs[0];
    eng_node *gone[] = { sub, pw, r2, add, sq, dv, mul, badd };
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        keep[gone[i] - g->nodes] = false;
    return ln->check(r1, g->arena, err);
}

/* Conv + BatchNormalization, MatMul + bias Add, and an activation after
 * Conv / Gemm / MatMul / Add become one node; the absorbed nodes drop. */
static st_status fuse(eng_graph *g, bool *keep, st_error *err)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        eng_node *n = &g->nodes[i];
        if (!keep[i])
            continue;
        if (op_is(n, "Div") || op_is(n, "Mul")) {
            st_status s = fuse_gelu(g, n, keep, err);
            if (s != ST_OK)
                return s;
        }
        if (op_is(n, "ReduceMean")) {
            st_status s = fuse_layernorm(g, n, keep, err);
            if (s != ST_OK)
                return s;
            if (!keep[i])
                continue;
        }
        eng_node *next = n->n_outputs >= 1 ? sole_reader(g, n->outputs[0]) : NULL;
        if (next && op_is(n, "Conv") && op_is(next, "BatchNormalization")) {
            bool done;
            st_status s = fold_batchnorm(g, n, next, &done, err);
            if (s != ST_OK)
                return s;
            if (done) {
                /* n now writes BN's output, whose readers are unchanged, so
                 * the consumer counts from the last sort still hold. */
                keep[next - g->nodes] = false;
                next = sole_reader(g, n->outputs[0]);
                /* Again, so load-time state (Conv's packed W) sees the
                 * folded weights. */
                if (n->op->check && (s = n->op->check(n, g->arena, err)) != ST_OK)
                    return s;
            }
        }
        if (next && op_is(n, "MatMul") && op_is(next, "Add") && n->post.bias < 0 && next->n_inputs == 2) {
            int other = next->inputs[0] == n->outputs[0] ? next->inputs[1] : next->inputs[0];
            if (is_float_const(g, other) && g->values[other].constant.rank == 1) {
                n->post.bias = other;
                n->outputs[0] = next->outputs[0];
                keep[next - g->nodes] = false;
                next = sole_reader(g, n->outputs[0]);
            }
        }
        bool is_float_op = op_is(n, "Conv") || op_is(n, "ConvTranspose") || op_is(n, "Gemm") ||
                           (op_is(n, "MatMul") && n->post.bias >= 0);
        eng_post_op p = n->post;
        if (next && is_float_op && n->post.act == ENG_ACT_NONE && activation_of(g, next, &p)) {
            n->post = p;
            n->outputs[0] = next->outputs[0];
            keep[next - g->nodes] = false;
        }
    }
    return ST_OK;
}

/* Drops the nodes not kept and re-sorts (recomputing producers and
 * consumer counts). */
static st_status compact(eng_graph *g, const bool *keep, st_error *err)
{
    size_t w = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (keep[i])
            g->nodes[w++] = g->nodes[i];
    g->n_nodes = w;
    for (size_t v = 0; v < g->n_values; v++)
        g->values[v].producer = -1;
    for (size_t i = 0; i < w; i++)
        for (uint32_t o = 0; o < g->nodes[i].n_outputs; o++)
            if (g->nodes[i].outputs[o] >= 0)
                g->values[g->nodes[i].outputs[o]].producer = (int)i;
    return eng_graph_sort(g, err);
}

st_status eng_graph_optimize(eng_graph *g, st_error *err)
{
    size_t nv = g->n_values, nn = g->n_nodes;
    bool *keep = st_calloc(nn + 1, sizeof *keep);
    int *alias = st_calloc(nv + 1, sizeof *alias);
    bool *is_used = st_calloc(nv + 1, sizeof *is_used);
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
        if ((s = fold_node(g, n, &folded, err)) != ST_OK) {
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

    if ((s = compact(g, keep, err)) != ST_OK)
        goto done;
    /* 4. Fusion, on fresh consumer counts. */
    for (size_t i = 0; i < g->n_nodes; i++)
        keep[i] = true;
    if ((s = fuse(g, keep, err)) != ST_OK)
        goto done;
    s = compact(g, keep, err);
done:
    st_free(keep);
    st_free(alias);
    st_free(is_used);
    return s;
}
