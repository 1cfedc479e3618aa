/* gbm.c - XGBoost and LightGBM models inside the engine: format detection
 * by content, the IR builder the front ends share, and the eng_model they
 * become (one node of the internal op ai.stratus/GbmPredict that calls
 * the tree engine and finishes the prediction). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "engine/gbm_int.h"
#include "engine/model_int.h"

/* --- detection ------------------------------------------------------------- */

gbm_format gbm_detect(const uint8_t *data, size_t len)
{
    /* UBJSON objects start with '{' and then a key's length marker (or an
     * optimised container's '$' / '#'); JSON never has those bytes there.
     * Neither '{' nor 't'/'v' can start an ONNX protobuf (field 15 start
     * group, field 14 end group / invalid wire type 6). */
    if (len >= 2 && data[0] == '{' && memchr("iUIlL$#", data[1], 7))
        return GBM_FORMAT_XGB_UBJSON;
    size_t i = 0;
    if (len >= 3 && data[0] == 0xef && data[1] == 0xbb && data[2] == 0xbf)
        i = 3; /* UTF-8 byte order mark */
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    if (i < len && data[i] == '{')
        return GBM_FORMAT_XGB_JSON;
    st_str s = st_str_make(data, len);
    if (st_str_starts_with(s, ST_STR("tree\n")) || st_str_starts_with(s, ST_STR("tree\r\n")) ||
        st_str_starts_with(s, ST_STR("version=")))
        return GBM_FORMAT_LIGHTGBM;
    return GBM_FORMAT_NONE;
}

const char *eng_detect_format(const uint8_t *data, size_t len)
{
    switch (gbm_detect(data, len)) {
    case GBM_FORMAT_XGB_JSON:
    case GBM_FORMAT_XGB_UBJSON:
        return "xgboost";
    case GBM_FORMAT_LIGHTGBM:
        return "lightgbm";
    default:
        return "onnx";
    }
}

/* XGBoost writes NaN and infinities as bare NaN / Infinity / -Infinity
 * (the split_conditions of categorical nodes are NaN), which strict JSON
 * refuses.  This copies the text with each such token outside strings
 * turned into null; *out stays empty when there is none. */
static st_status gbm_json_nonfinite(const uint8_t *data, size_t len, st_buf *out)
{
    static const char *const tokens[] = { "-Infinity", "Infinity", "NaN" };
    size_t copied = 0;
    bool is_in_string = false;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = data[i];
        if (is_in_string) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                is_in_string = false;
            continue;
        }
        if (ch == '"') {
            is_in_string = true;
            continue;
        }
        if (ch != 'N' && ch != 'I' && ch != '-')
            continue;
        for (size_t t = 0; t < 3; t++) {
            size_t n = strlen(tokens[t]);
            if (len - i < n || memcmp(data + i, tokens[t], n) != 0)
                continue;
            st_status s;
            if ((s = st_buf_append(out, data + copied, i - copied)) != ST_OK ||
                (s = st_buf_append(out, "null", 4)) != ST_OK)
                return s;
            i += n - 1;
            copied = i + 1;
            break;
        }
    }
    if (out->len && copied < len)
        return st_buf_append(out, data + copied, len - copied);
    return ST_OK;
}

st_status gbm_describe(const uint8_t *data, size_t len, st_arena *arena, gbm_desc *out, st_error *err)
{
    memset(out, 0, sizeof *out);
    gbm_format f = gbm_detect(data, len);
    if (f == GBM_FORMAT_LIGHTGBM) {
        st_status s = lgbm_describe(data, len, arena, out, err);
        out->encoding = "text";
        return s;
    }
    if (f != GBM_FORMAT_XGB_JSON && f != GBM_FORMAT_XGB_UBJSON)
        return st_fail(err, ST_EINVAL, "not an XGBoost or LightGBM model");
    /* The DOM is only needed while reading: its own arena. */
    st_arena dom;
    st_arena_init(&dom, 1 << 20);
    json_value *root = NULL;
    st_status s;
    st_buf text = { 0 };
    if (f == GBM_FORMAT_XGB_JSON) {
        if ((s = gbm_json_nonfinite(data, len, &text)) != ST_OK) {
            s = st_fail(err, s, "out of memory reading an XGBoost model");
        } else {
            const uint8_t *json = text.len ? text.data : data;
            size_t json_len = text.len ? text.len : len;
            json_limits limits = { .max_input_bytes = json_len ? json_len : 1,
                                   .max_elements = (size_t)256 << 20 };
            s = json_parse(json, json_len, &limits, &dom, &root, err);
            if (s != ST_OK)
                st_fail_wrap(err, s, "XGBoost JSON");
        }
    } else {
        s = ubj_parse(data, len, &dom, &root, err);
    }
    if (s == ST_OK)
        s = xgb_describe(root, arena, out, err);
    out->encoding = f == GBM_FORMAT_XGB_JSON ? "json" : "ubjson";
    st_buf_free(&text);
    st_arena_free(&dom);
    return s;
}

/* --- IR builder -------------------------------------------------------------- */

static bool gbm_grow(void **items, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return true;
    size_t want = *cap ? *cap * 2 : 64, bytes;
    if (st_mul_overflow(want, size, &bytes))
        return false;
    void *grown = st_realloc(*items, bytes);
    if (!grown)
        return false;
    *items = grown;
    *cap = want;
    return true;
}

st_status gbm_ir_node(gbm_ir *b, const tree_ir_node *node, int32_t *id)
{
    if (b->n_nodes >= INT32_MAX)
        return ST_ELIMIT;
    if (!gbm_grow((void **)&b->nodes, b->n_nodes, &b->cap_nodes, sizeof *b->nodes))
        return ST_ENOMEM;
    *id = (int32_t)b->n_nodes;
    b->nodes[b->n_nodes++] = *node;
    return ST_OK;
}

st_status gbm_ir_leaf(gbm_ir *b, uint32_t target, double weight, int32_t *id)
{
    size_t cap = b->cap_leaves;
    if (b->n_leaves >= UINT32_MAX || !gbm_grow((void **)&b->leaf_targets, b->n_leaves, &cap, sizeof *b->leaf_targets))
        return ST_ENOMEM;
    cap = b->cap_leaves;
    if (!gbm_grow((void **)&b->leaf_weights, b->n_leaves, &cap, sizeof *b->leaf_weights))
        return ST_ENOMEM;
    b->cap_leaves = cap;
    tree_ir_node leaf = { .feature = -1, .true_child = -1, .false_child = -1,
                          .leaf_begin = (uint32_t)b->n_leaves, .n_leaf = 1 };
    st_status s = gbm_ir_node(b, &leaf, id);
    if (s != ST_OK)
        return s;
    b->leaf_targets[b->n_leaves] = target;
    b->leaf_weights[b->n_leaves++] = weight;
    return ST_OK;
}

st_status gbm_ir_root(gbm_ir *b, int32_t root)
{
    if (!gbm_grow((void **)&b->roots, b->n_trees, &b->cap_trees, sizeof *b->roots))
        return ST_ENOMEM;
    b->roots[b->n_trees++] = root;
    return ST_OK;
}

st_status gbm_ir_category(gbm_ir *b, int64_t category)
{
    if (b->n_categories >= UINT32_MAX)
        return ST_ELIMIT;
    if (!gbm_grow((void **)&b->categories, b->n_categories, &b->cap_categories, sizeof *b->categories))
        return ST_ENOMEM;
    b->categories[b->n_categories++] = category;
    return ST_OK;
}

static void *gbm_copy(st_arena *arena, const void *src, size_t n, size_t size)
{
    void *dst = st_arena_calloc(arena, n ? n : 1, size, 16);
    if (dst && n)
        memcpy(dst, src, n * size);
    return dst;
}

st_status gbm_ir_finish(gbm_ir *b, st_arena *arena, size_t n_features, size_t n_targets, tree_post post,
                        gbm_desc *out)
{
    tree_ir *ir = &out->ir;
    ir->n_features = n_features;
    ir->n_targets = n_targets;
    ir->agg = TREE_AGG_SUM;
    ir->post = post;
    out->n_features = n_features;
    out->n_tree_nodes = b->n_nodes;
    ir->nodes = gbm_copy(arena, b->nodes, b->n_nodes, sizeof *b->nodes);
    ir->roots = gbm_copy(arena, b->roots, b->n_trees, sizeof *b->roots);
    ir->categories = gbm_copy(arena, b->categories, b->n_categories, sizeof *b->categories);
    ir->leaf_targets = gbm_copy(arena, b->leaf_targets, b->n_leaves, sizeof *b->leaf_targets);
    ir->leaf_weights = gbm_copy(arena, b->leaf_weights, b->n_leaves, sizeof *b->leaf_weights);
    if (!ir->nodes || !ir->roots || !ir->categories || !ir->leaf_targets || !ir->leaf_weights)
        return ST_ENOMEM;
    ir->n_nodes = b->n_nodes;
    ir->n_trees = b->n_trees;
    ir->n_categories = b->n_categories;
    ir->n_leaf_entries = b->n_leaves;
    return ST_OK;
}

void gbm_ir_release(gbm_ir *b)
{
    st_free(b->nodes);
    st_free(b->roots);
    st_free(b->categories);
    st_free(b->leaf_targets);
    st_free(b->leaf_weights);
    memset(b, 0, sizeof *b);
}

/* --- the op ----------------------------------------------------------------- */

typedef struct gbm_state {
    const tree_model *trees;
    size_t n_features;
    size_t n_targets;
    gbm_finish finish;
    bool is_output_2d;
} gbm_state;

static st_status gbm_infer(eng_kctx *k)
{
    const gbm_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    if (x->dtype != ST_DT_FLOAT32)
        return eng_fail(k, ST_ETYPE, "input must be float32, got %s", st_dtype_name(x->dtype));
    if (x->rank != 2 || x->shape[1] != (int64_t)st->n_features)
        return eng_fail(k, ST_ESHAPE, "input must be [N, %zu] (rows of %zu features)", st->n_features,
                        st->n_features);
    int64_t shape[2] = { x->shape[0], (int64_t)st->n_targets };
    eng_set_shape(k->out[0], ST_DT_FLOAT32, shape, st->is_output_2d ? 2 : 1);
    return ST_OK;
}

static st_status gbm_run(eng_kctx *k)
{
    const gbm_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    eng_tensor *y = k->out[0];
    size_t n_rows = (size_t)x->shape[0];
    if (n_rows == 0)
        return ST_OK;
    if (st->finish == GBM_FINISH_NONE) {
        tree_predict(st->trees, x->data, n_rows, st->n_features, y->data, k->pool);
        return ST_OK;
    }
    size_t n_scores;
    if (st_mul_overflow(n_rows, st->n_targets, &n_scores) || n_scores > SIZE_MAX / sizeof(float))
        return eng_fail(k, ST_EOVERFLOW, "%zu rows of %zu scores overflow", n_rows, st->n_targets);
    float *scores = st_arena_alloc(k->scratch, n_scores * sizeof *scores, 64);
    if (!scores)
        return eng_fail(k, ST_ENOMEM, "out of memory for %zu scores", n_scores);
    tree_predict(st->trees, x->data, n_rows, st->n_features, scores, k->pool);
    float *out = y->data;
    size_t k_targets = st->n_targets;
    for (size_t r = 0; r < n_rows; r++) {
        const float *row = scores + r * k_targets;
        if (st->finish == GBM_FINISH_ARGMAX) {
            /* First of equal maxima, as XGBoost's argmax; NaN never wins. */
            size_t best = 0;
            for (size_t c = 1; c < k_targets; c++)
                if (row[c] > row[best])
                    best = c;
            out[r] = (float)best;
        } else {
            for (size_t c = 0; c < k_targets; c++)
                out[r * k_targets + c] = row[c] > 0.0f ? 1.0f : 0.0f;
        }
    }
    return ST_OK;
}

static const eng_op gbm_op = {
    .domain = "ai.stratus",
    .name = "GbmPredict",
    .min_opset = 1,
    .infer = gbm_infer,
    .run = gbm_run,
};

/* --- the model ---------------------------------------------------------------- */

static void gbm_io(eng_io *io, const char *name, int rank, int64_t second)
{
    memset(io, 0, sizeof *io);
    io->name = name;
    io->dtype = ST_DT_FLOAT32;
    io->rank = rank;
    io->dims[0] = -1;
    io->dim_names[0] = "N";
    if (rank == 2)
        io->dims[1] = second;
}

static void gbm_value(eng_value *v, const eng_io *io)
{
    memset(v, 0, sizeof *v);
    v->name = st_str_c(io->name);
    v->dtype = io->dtype;
    v->rank = io->rank;
    memcpy(v->dims, io->dims, sizeof v->dims);
    v->producer = -1;
    v->outer = -1;
    v->last_consumer = -1;
}

st_status gbm_model_build(eng_model *m, st_error *err)
{
    st_arena *arena = &m->arena;
    gbm_desc d;
    st_status s = gbm_describe(m->bytes, m->n_bytes, arena, &d, err);
    if (s != ST_OK)
        return s;
    tree_model *trees;
    if ((s = tree_compile(&d.ir, arena, &trees, err)) != ST_OK)
        return st_fail_wrap(err, s, "%s model", d.format);
    gbm_state *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    m->inputs = st_arena_calloc(arena, 1, sizeof *m->inputs, 8);
    m->outputs = st_arena_calloc(arena, 1, sizeof *m->outputs, 8);
    eng_graph *g = &m->graph;
    memset(g, 0, sizeof *g);
    g->arena = arena;
    g->model = m;
    g->values = st_arena_calloc(arena, 2, sizeof *g->values, 8);
    g->nodes = st_arena_calloc(arena, 1, sizeof *g->nodes, 8);
    g->inputs = st_arena_calloc(arena, 1, sizeof *g->inputs, 8);
    g->outputs = st_arena_calloc(arena, 1, sizeof *g->outputs, 8);
    onnx_node *proto = st_arena_calloc(arena, 1, sizeof *proto, 8);
    int *node_io = st_arena_calloc(arena, 2, sizeof *node_io, 8);
    if (!st || !m->inputs || !m->outputs || !g->values || !g->nodes || !g->inputs || !g->outputs || !proto ||
        !node_io)
        return st_fail(err, ST_ENOMEM, "out of memory loading a %s model", d.format);
    *st = (gbm_state){ .trees = trees, .n_features = d.n_features, .n_targets = d.ir.n_targets,
                       .finish = d.finish, .is_output_2d = d.is_output_2d };
    gbm_io(&m->inputs[0], "input", 2, (int64_t)d.n_features);
    gbm_io(&m->outputs[0], d.output_name, d.is_output_2d ? 2 : 1, (int64_t)d.ir.n_targets);
    gbm_value(&g->values[0], &m->inputs[0]);
    gbm_value(&g->values[1], &m->outputs[0]);
    g->values[0].is_graph_input = true;
    g->values[0].n_consumers = 1;
    g->values[0].last_consumer = 0;
    g->values[1].is_graph_output = true;
    g->values[1].producer = 0;
    g->n_values = g->cap_values = 2;
    g->inputs[0] = 0;
    g->outputs[0] = 1;
    g->n_inputs = g->n_outputs = 1;
    proto->name = d.format[0] == 'x' ? ST_STR("xgboost") : ST_STR("lightgbm");
    proto->op_type = ST_STR("GbmPredict");
    proto->domain = ST_STR("ai.stratus");
    node_io[0] = 0;
    node_io[1] = 1;
    eng_node *n = &g->nodes[0];
    *n = (eng_node){ .op = &gbm_op, .proto = proto, .opset = 1, .inputs = &node_io[0], .n_inputs = 1,
                     .outputs = &node_io[1], .n_outputs = 1, .state = st, .graph = g, .post = { .bias = -1 } };
    g->n_nodes = 1;
    return ST_OK;
}

/* --- inspect ------------------------------------------------------------------ */

st_status gbm_inspect(const uint8_t *data, size_t len, st_arena *arena, eng_model_info *out, st_error *err)
{
    gbm_desc d;
    st_status s = gbm_describe(data, len, arena, &d, err);
    if (s != ST_OK)
        return s;
    out->format = d.format;
    out->encoding = d.encoding;
    char producer[64];
    int n = snprintf(producer, sizeof producer, "%s%s%s", d.format, d.version[0] ? " " : "", d.version);
    out->producer = st_arena_strndup(arena, producer, (size_t)n < sizeof producer ? (size_t)n : sizeof producer - 1);
    out->objective = d.objective;
    out->n_trees = d.n_trees;
    out->n_tree_nodes = d.n_tree_nodes;
    out->n_features = d.n_features;
    out->n_classes = d.n_classes;
    out->inputs = st_arena_calloc(arena, 1, sizeof *out->inputs, 8);
    out->outputs = st_arena_calloc(arena, 1, sizeof *out->outputs, 8);
    out->ops = st_arena_calloc(arena, 1, sizeof *out->ops, 8);
    if (!out->producer || !out->inputs || !out->outputs || !out->ops)
        return st_fail(err, ST_ENOMEM, "out of memory");
    gbm_io(&out->inputs[0], "input", 2, (int64_t)d.n_features);
    gbm_io(&out->outputs[0], d.output_name, d.is_output_2d ? 2 : 1, (int64_t)d.ir.n_targets);
    out->n_inputs = out->n_outputs = 1;
    out->ops[0] = (eng_op_use){ .domain = "ai.stratus", .op_type = "GbmPredict", .count = 1, .is_supported = true };
    out->n_ops = 1;
    out->n_nodes = 1;
    out->n_parameters = d.ir.n_nodes;
    out->parameter_bytes = d.ir.n_nodes * sizeof(tree_ir_node) + d.ir.n_categories * sizeof(int64_t);
    return ST_OK;
}
