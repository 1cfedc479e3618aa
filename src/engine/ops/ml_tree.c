/* ml_tree.c - the ONNX-ML tree ensembles: TreeEnsembleRegressor and
 * TreeEnsembleClassifier (ml opsets 1 and 3) and TreeEnsemble (ml opset 5).
 *
 * check() turns the node's attribute arrays into a tree_ir and compiles
 * it once (engine/tree); run() converts the rows to float and predicts.
 * Where the spec is silent the behaviour of ONNX Runtime is followed: a
 * classifier with two labels whose weights all name one class ("binary
 * case") scores that class alone and writes two columns; NEQ sends NaN to
 * the true branch (NaN != t holds). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/ops/ops.h"
#include "engine/tree/tree.h"

typedef struct mlt_state {
    tree_model *model;
    size_t n_features;      /* columns the rows need */
    size_t n_out;           /* columns of Y (regressor) or of the scores */
    bool is_classifier;
    bool is_v5;             /* TreeEnsemble: Y has the type of X */
    /* classifier */
    size_t n_classes;
    const int64_t *labels_int; /* one of the two */
    const st_str *labels_str;
    bool is_binary;         /* one score from the engine, two columns out */
    bool is_all_positive;   /* binary: every weight >= 0 */
    tree_post post;         /* applied here for classifiers */
} mlt_state;

/* --- reading attributes ---------------------------------------------------- */

/* A float or double tensor attribute's values as doubles in the arena;
 * absent: *count 0. */
static st_status tensor_doubles(const eng_node *n, const char *name, st_arena *arena, double **out,
                                size_t *count, st_error *err)
{
    const onnx_tensor *t = eng_attr_tensor(n, name);
    *out = NULL;
    *count = 0;
    if (!t)
        return ST_OK;
    onnx_tensor_data td;
    st_status s = onnx_tensor_materialize(t, NULL, arena, &td, err);
    if (s != ST_OK)
        return s;
    if (td.data_type != ST_DT_FLOAT32 && td.data_type != ST_DT_FLOAT64)
        return st_fail(err, ST_EUNSUPPORTED, "attribute %s: %s values (float or double expected)", name,
                       onnx_data_type_name(td.data_type));
    double *v = st_arena_calloc(arena, td.elem_count ? td.elem_count : 1, sizeof *v, 16);
    if (!v)
        return st_fail(err, ST_ENOMEM, "attribute %s: out of memory", name);
    for (size_t i = 0; i < td.elem_count; i++) {
        if (td.data_type == ST_DT_FLOAT64) {
            memcpy(&v[i], (const char *)td.data + i * 8, 8);
        } else {
            float f;
            memcpy(&f, (const char *)td.data + i * 4, 4);
            v[i] = f;
        }
    }
    *out = v;
    *count = td.elem_count;
    return ST_OK;
}

/* Values of a float list attribute, or of its *_as_tensor twin (doubles)
 * when that is present, as doubles in the arena; absent: *count 0. */
static st_status attr_doubles(const eng_node *n, const char *name, st_arena *arena, double **out,
                              size_t *count, st_error *err)
{
    char tname[96];
    snprintf(tname, sizeof tname, "%s_as_tensor", name);
    if (eng_attr_has(n, tname))
        return tensor_doubles(n, tname, arena, out, count, err);
    size_t nf;
    const float *f = eng_attr_floats(n, name, &nf);
    *out = NULL;
    *count = 0;
    if (!nf)
        return ST_OK;
    double *v = st_arena_calloc(arena, nf, sizeof *v, 16);
    if (!v)
        return st_fail(err, ST_ENOMEM, "attribute %s: out of memory", name);
    for (size_t i = 0; i < nf; i++)
        v[i] = f[i];
    *out = v;
    *count = nf;
    return ST_OK;
}

static st_status parse_post(st_str s, tree_post *out, st_error *err)
{
    static const char *const names[] = { "NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT" };
    static const tree_post posts[] = { TREE_POST_NONE, TREE_POST_SOFTMAX, TREE_POST_LOGISTIC,
                                       TREE_POST_SOFTMAX_ZERO, TREE_POST_PROBIT };
    for (size_t i = 0; i < 5; i++)
        if (st_str_eq_c(s, names[i])) {
            *out = posts[i];
            return ST_OK;
        }
    return st_fail(err, ST_ECORRUPT, "post_transform '%.*s' (expected NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO or PROBIT)",
                   (int)(s.len > 40 ? 40 : s.len), s.ptr);
}

static st_status parse_agg(st_str s, tree_agg *out, st_error *err)
{
    static const char *const names[] = { "SUM", "AVERAGE", "MIN", "MAX" };
    static const tree_agg aggs[] = { TREE_AGG_SUM, TREE_AGG_AVERAGE, TREE_AGG_MIN, TREE_AGG_MAX };
    for (size_t i = 0; i < 4; i++)
        if (st_str_eq_c(s, names[i])) {
            *out = aggs[i];
            return ST_OK;
        }
    return st_fail(err, ST_ECORRUPT, "aggregate_function '%.*s' (expected SUM, AVERAGE, MIN or MAX)",
                   (int)(s.len > 40 ? 40 : s.len), s.ptr);
}

static bool parse_mode(st_str s, tree_cmp *cmp, bool *is_leaf)
{
    static const char *const names[] = { "BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE",
                                         "BRANCH_GT",  "BRANCH_EQ", "BRANCH_NEQ" };
    static const tree_cmp cmps[] = { TREE_CMP_LEQ, TREE_CMP_LT, TREE_CMP_GTE,
                                     TREE_CMP_GT,  TREE_CMP_EQ, TREE_CMP_NEQ };
    *is_leaf = st_str_eq_c(s, "LEAF");
    if (*is_leaf)
        return true;
    for (size_t i = 0; i < 6; i++)
        if (st_str_eq_c(s, names[i])) {
            *cmp = cmps[i];
            return true;
        }
    return false;
}

/* --- opsets 1 and 3: nodes named by (tree id, node id) ------------------------ */

typedef struct node_key {
    int64_t tree;
    int64_t node;
    int32_t index;
} node_key;

static int key_cmp(const void *a, const void *b)
{
    const node_key *x = a, *y = b;
    if (x->tree != y->tree)
        return x->tree < y->tree ? -1 : 1;
    return (x->node > y->node) - (x->node < y->node);
}

static int i32_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int32_t key_find(const node_key *keys, size_t n, int64_t tree, int64_t node)
{
    node_key want = { tree, node, 0 };
    const node_key *k = bsearch(&want, keys, n, sizeof *keys, key_cmp);
    return k ? k->index : -1;
}

/* Builds the ir of a TreeEnsembleRegressor / Classifier from its
 * attributes.  Weights go to targets (regressor) or class ids. */
static st_status build_v3(const eng_node *n, st_arena *arena, bool is_classifier, tree_ir *ir,
                          st_error *err)
{
    const char *wp = is_classifier ? "class" : "target";
    char name_tree[32], name_node[32], name_id[32], name_w[32];
    snprintf(name_tree, sizeof name_tree, "%s_treeids", wp);
    snprintf(name_node, sizeof name_node, "%s_nodeids", wp);
    snprintf(name_id, sizeof name_id, "%s_ids", wp);
    snprintf(name_w, sizeof name_w, "%s_weights", wp);

    size_t nn, c_node, c_feat, c_true, c_false, c_track, c_vals, c_modes;
    const int64_t *treeids = eng_attr_ints(n, "nodes_treeids", &nn);
    const int64_t *nodeids = eng_attr_ints(n, "nodes_nodeids", &c_node);
    const int64_t *featids = eng_attr_ints(n, "nodes_featureids", &c_feat);
    const int64_t *trues = eng_attr_ints(n, "nodes_truenodeids", &c_true);
    const int64_t *falses = eng_attr_ints(n, "nodes_falsenodeids", &c_false);
    const int64_t *tracks = eng_attr_ints(n, "nodes_missing_value_tracks_true", &c_track);
    const onnx_attr *modes = onnx_node_attr(n->proto, "nodes_modes");
    c_modes = modes && modes->type == ONNX_ATTR_STRINGS ? modes->string_count : 0;
    double *values;
    st_status s = attr_doubles(n, "nodes_values", arena, &values, &c_vals, err);
    if (s != ST_OK)
        return s;
    if (nn == 0)
        return st_fail(err, ST_ECORRUPT, "no nodes (nodes_treeids is empty)");
    if (c_node != nn || c_feat != nn || c_true != nn || c_false != nn || c_modes != nn ||
        (c_vals != nn) || (c_track != 0 && c_track != nn))
        return st_fail(err, ST_ECORRUPT,
                       "node attributes of different lengths: treeids %zu, nodeids %zu, featureids %zu, "
                       "modes %zu, values %zu, truenodeids %zu, falsenodeids %zu, missing_value_tracks_true %zu",
                       nn, c_node, c_feat, c_modes, c_vals, c_true, c_false, c_track);
    if (nn >= INT32_MAX / 2)
        return st_fail(err, ST_ECORRUPT, "%zu nodes is too many", nn);

    size_t nw, c_wnode, c_wid, c_ww;
    const int64_t *wtree = eng_attr_ints(n, name_tree, &nw);
    const int64_t *wnode = eng_attr_ints(n, name_node, &c_wnode);
    const int64_t *wid = eng_attr_ints(n, name_id, &c_wid);
    double *ww;
    if ((s = attr_doubles(n, name_w, arena, &ww, &c_ww, err)) != ST_OK)
        return s;
    if (c_wnode != nw || c_wid != nw || c_ww != nw)
        return st_fail(err, ST_ECORRUPT, "%s attributes of different lengths: treeids %zu, nodeids %zu, ids %zu, weights %zu",
                       wp, nw, c_wnode, c_wid, c_ww);

    node_key *keys = st_arena_alloc(arena, nn * sizeof *keys, 16);
    tree_ir_node *nodes = st_arena_calloc(arena, nn, sizeof *nodes, 16);
    int32_t *roots = st_arena_alloc(arena, nn * sizeof *roots, 16);
    uint32_t *targets = st_arena_alloc(arena, (nw ? nw : 1) * sizeof *targets, 16);
    double *weights = st_arena_alloc(arena, (nw ? nw : 1) * sizeof *weights, 16);
    uint32_t *leaf_of = st_arena_alloc(arena, (nw ? nw : 1) * sizeof *leaf_of, 16);
    if (!keys || !nodes || !roots || !targets || !weights || !leaf_of)
        return st_fail(err, ST_ENOMEM, "out of memory for %zu nodes", nn);
    for (size_t i = 0; i < nn; i++)
        keys[i] = (node_key){ treeids[i], nodeids[i], (int32_t)i };
    qsort(keys, nn, sizeof *keys, key_cmp);
    for (size_t i = 1; i < nn; i++)
        if (keys[i].tree == keys[i - 1].tree && keys[i].node == keys[i - 1].node)
            return st_fail(err, ST_ECORRUPT, "tree %lld: node id %lld appears twice", (long long)keys[i].tree,
                           (long long)keys[i].node);
    /* the root of a tree is its first node; trees in the order of their roots */
    size_t n_trees = 0;
    for (size_t i = 0; i < nn; i++) {
        if (i == 0 || keys[i].tree != keys[i - 1].tree)
            roots[n_trees++] = keys[i].index;
        else if (keys[i].index < roots[n_trees - 1])
            roots[n_trees - 1] = keys[i].index;
    }
    qsort(roots, n_trees, sizeof *roots, i32_cmp);
    size_t max_feature = 0;
    for (size_t i = 0; i < nn; i++) {
        tree_ir_node *x = &nodes[i];
        bool is_leaf;
        tree_cmp cmp = TREE_CMP_LEQ;
        if (!parse_mode(modes->strings[i], &cmp, &is_leaf))
            return st_fail(err, ST_ECORRUPT, "tree %lld: node %lld: unknown mode '%.*s'", (long long)treeids[i],
                           (long long)nodeids[i], (int)(modes->strings[i].len > 20 ? 20 : modes->strings[i].len),
                           modes->strings[i].ptr);
        if (is_leaf) {
            x->feature = -1;
            continue;
        }
        if (featids[i] < 0 || featids[i] >= INT32_MAX)
            return st_fail(err, ST_ECORRUPT, "tree %lld: node %lld: feature %lld out of range",
                           (long long)treeids[i], (long long)nodeids[i], (long long)featids[i]);
        x->feature = (int32_t)featids[i];
        if ((size_t)featids[i] + 1 > max_feature)
            max_feature = (size_t)featids[i] + 1;
        x->cmp = cmp;
        x->missing = TREE_MISSING_NAN;
        x->threshold = values[i];
        /* NaN != t holds, so NEQ always sends NaN to the true branch */
        x->is_missing_true = cmp == TREE_CMP_NEQ || (c_track && tracks[i] != 0);
        x->true_child = key_find(keys, nn, treeids[i], trues[i]);
        x->false_child = key_find(keys, nn, treeids[i], falses[i]);
        if (x->true_child < 0 || x->false_child < 0)
            return st_fail(err, ST_ECORRUPT, "tree %lld: node %lld: child node %lld is not in the tree",
                           (long long)treeids[i], (long long)nodeids[i],
                           (long long)(x->true_child < 0 ? trues[i] : falses[i]));
    }
    /* weights grouped by leaf: count, then place */
    for (size_t j = 0; j < nw; j++) {
        int32_t leaf = key_find(keys, nn, wtree[j], wnode[j]);
        if (leaf < 0 || nodes[leaf].feature != -1)
            return st_fail(err, ST_ECORRUPT, "%s weight %zu: tree %lld node %lld is not a leaf", wp, j,
                           (long long)wtree[j], (long long)wnode[j]);
        if (wid[j] < 0 || wid[j] >= INT32_MAX)
            return st_fail(err, ST_ECORRUPT, "%s weight %zu: id %lld out of range", wp, j, (long long)wid[j]);
        leaf_of[j] = (uint32_t)leaf;
        nodes[leaf].n_leaf++;
    }
    uint32_t at = 0;
    for (size_t i = 0; i < nn; i++) {
        nodes[i].leaf_begin = at;
        at += nodes[i].n_leaf;
        nodes[i].n_leaf = 0;
    }
    for (size_t j = 0; j < nw; j++) {
        tree_ir_node *x = &nodes[leaf_of[j]];
        uint32_t k = x->leaf_begin + x->n_leaf++;
        targets[k] = (uint32_t)wid[j];
        weights[k] = ww[j];
    }
    *ir = (tree_ir){ .n_features = max_feature, .nodes = nodes, .n_nodes = nn, .roots = roots,
                     .n_trees = n_trees, .leaf_targets = targets, .leaf_weights = weights,
                     .n_leaf_entries = nw, .agg = TREE_AGG_SUM, .post = TREE_POST_NONE };
    return ST_OK;
}

/* Sets the classifier's fields of st and remaps ir's targets. */
static st_status setup_classifier(const eng_node *n, st_arena *arena, tree_ir *ir, mlt_state *st,
                                  st_error *err)
{
    size_t n_int;
    const int64_t *labels_int = eng_attr_ints(n, "classlabels_int64s", &n_int);
    const onnx_attr *ls = onnx_node_attr(n->proto, "classlabels_strings");
    size_t n_str = ls && ls->type == ONNX_ATTR_STRINGS ? ls->string_count : 0;
    if ((n_int == 0) == (n_str == 0))
        return st_fail(err, ST_ECORRUPT, "exactly one of classlabels_int64s and classlabels_strings must be given");
    st->n_classes = n_int ? n_int : n_str;
    st->labels_int = n_int ? labels_int : NULL;
    st->labels_str = n_str ? ls->strings : NULL;
    uint32_t *targets = (uint32_t *)ir->leaf_targets;
    bool is_one_class = ir->n_leaf_entries > 0;
    st->is_all_positive = true;
    for (size_t j = 0; j < ir->n_leaf_entries; j++) {
        if (targets[j] >= st->n_classes)
            return st_fail(err, ST_ECORRUPT, "class id %u out of range (%zu class labels)", targets[j],
                           st->n_classes);
        is_one_class &= targets[j] == targets[0];
        st->is_all_positive &= ir->leaf_weights[j] >= 0.0;
    }
    double *base;
    size_t n_base;
    st_status s = attr_doubles(n, "base_values", arena, &base, &n_base, err);
    if (s != ST_OK)
        return s;
    if ((s = parse_post(eng_attr_str(n, "post_transform", "NONE"), &st->post, err)) != ST_OK)
        return s;
    st->is_binary = st->n_classes == 2 && is_one_class;
    if (st->is_binary) {
        for (size_t j = 0; j < ir->n_leaf_entries; j++)
            targets[j] = 0;
        ir->n_targets = 1;
        /* ONNX Runtime: with two base values the positive class's counts */
        ir->base_values = n_base == 2 ? base + 1 : n_base == 1 ? base : NULL;
        if (n_base > 2)
            return st_fail(err, ST_ECORRUPT, "%zu base_values for 2 classes", n_base);
    } else {
        if (n_base != 0 && n_base != st->n_classes)
            return st_fail(err, ST_ECORRUPT, "%zu base_values for %zu classes", n_base, st->n_classes);
        ir->n_targets = st->n_classes;
        ir->base_values = n_base ? base : NULL;
    }
    st->n_out = st->n_classes;
    return ST_OK;
}

static st_status setup_regressor(const eng_node *n, st_arena *arena, tree_ir *ir, mlt_state *st, st_error *err)
{
    int64_t n_targets = eng_attr_int(n, "n_targets", 1);
    if (n_targets <= 0 || n_targets > 4096)
        return st_fail(err, ST_ECORRUPT, "n_targets %lld out of range", (long long)n_targets);
    ir->n_targets = (size_t)n_targets;
    double *base;
    size_t n_base;
    st_status s = attr_doubles(n, "base_values", arena, &base, &n_base, err);
    if (s != ST_OK)
        return s;
    if (n_base != 0 && n_base != ir->n_targets)
        return st_fail(err, ST_ECORRUPT, "%zu base_values for %lld targets", n_base, (long long)n_targets);
    ir->base_values = n_base ? base : NULL;
    if ((s = parse_agg(eng_attr_str(n, "aggregate_function", "SUM"), &ir->agg, err)) != ST_OK)
        return s;
    if ((s = parse_post(eng_attr_str(n, "post_transform", "NONE"), &ir->post, err)) != ST_OK)
        return s;
    st->n_out = ir->n_targets;
    return ST_OK;
}

/* --- opset 5: TreeEnsemble --------------------------------------------------- */

static st_status build_v5(const eng_node *n, st_arena *arena, tree_ir *ir, mlt_state *st, st_error *err)
{
    size_t nn, c_feat, c_true, c_false, c_tl, c_fl, c_track, c_roots, c_split, c_lt, c_lw, c_mem;
    const int64_t *featids = eng_attr_ints(n, "nodes_featureids", &nn);
    const int64_t *trues = eng_attr_ints(n, "nodes_truenodeids", &c_true);
    const int64_t *falses = eng_attr_ints(n, "nodes_falsenodeids", &c_false);
    const int64_t *tleafs = eng_attr_ints(n, "nodes_trueleafs", &c_tl);
    const int64_t *fleafs = eng_attr_ints(n, "nodes_falseleafs", &c_fl);
    const int64_t *tracks = eng_attr_ints(n, "nodes_missing_value_tracks_true", &c_track);
    const int64_t *roots_in = eng_attr_ints(n, "tree_roots", &c_roots);
    const int64_t *leaf_t = eng_attr_ints(n, "leaf_targetids", &c_lt);
    c_feat = nn;
    double *splits, *lw, *members;
    st_status s;
    if ((s = tensor_doubles(n, "nodes_splits", arena, &splits, &c_split, err)) != ST_OK ||
        (s = tensor_doubles(n, "leaf_weights", arena, &lw, &c_lw, err)) != ST_OK ||
        (s = tensor_doubles(n, "membership_values", arena, &members, &c_mem, err)) != ST_OK)
        return s;
    const onnx_tensor *mt = eng_attr_tensor(n, "nodes_modes");
    if (!mt)
        return st_fail(err, ST_ECORRUPT, "nodes_modes is missing");
    onnx_tensor_data md;
    if ((s = onnx_tensor_materialize(mt, NULL, arena, &md, err)) != ST_OK)
        return s;
    if (md.data_type != ST_DT_UINT8)
        return st_fail(err, ST_ECORRUPT, "nodes_modes holds %s (uint8 expected)", onnx_data_type_name(md.data_type));
    const uint8_t *modes = md.data;
    if (c_true != nn || c_false != nn || c_tl != nn || c_fl != nn || c_split != nn || md.elem_count != nn ||
        (c_track && c_track != nn) || c_lt != c_lw || c_feat != nn)
        return st_fail(err, ST_ECORRUPT,
                       "attributes of different lengths: featureids %zu, modes %zu, splits %zu, truenodeids %zu, "
                       "falsenodeids %zu, trueleafs %zu, falseleafs %zu, missing_value_tracks_true %zu, "
                       "leaf_targetids %zu, leaf_weights %zu",
                       nn, md.elem_count, c_split, c_true, c_false, c_tl, c_fl, c_track, c_lt, c_lw);
    if (nn >= INT32_MAX / 4 || c_lw >= INT32_MAX)
        return st_fail(err, ST_ECORRUPT, "%zu nodes is too many", nn);
    int64_t n_targets = eng_attr_int(n, "n_targets", 0);
    if (n_targets <= 0 || n_targets > 4096)
        return st_fail(err, ST_ECORRUPT, "n_targets %lld out of range (give 1 to 4096)", (long long)n_targets);
    /* interior nodes first, then one leaf node per leaf reference */
    size_t n_ir = nn * 3;
    tree_ir_node *nodes = st_arena_calloc(arena, n_ir ? n_ir : 1, sizeof *nodes, 16);
    int32_t *roots = st_arena_alloc(arena, (c_roots ? c_roots : 1) * sizeof *roots, 16);
    uint32_t *targets = st_arena_alloc(arena, (c_lw ? c_lw : 1) * sizeof *targets, 16);
    int64_t *cats = st_arena_alloc(arena, (c_mem ? c_mem : 1) * sizeof *cats, 16);
    if (!nodes || !roots || !targets || !cats)
        return st_fail(err, ST_ENOMEM, "out of memory for %zu nodes", nn);
    for (size_t j = 0; j < c_lt; j++) {
        if (leaf_t[j] < 0 || leaf_t[j] >= n_targets)
            return st_fail(err, ST_ECORRUPT, "leaf %zu: target %lld out of range (%lld targets)", j,
                           (long long)leaf_t[j], (long long)n_targets);
        targets[j] = (uint32_t)leaf_t[j];
    }
    size_t n_nodes = nn, n_cats = 0, mem_at = 0, max_feature = 0;
    for (size_t i = 0; i < nn; i++) {
        tree_ir_node *x = &nodes[i];
        if (modes[i] > 6)
            return st_fail(err, ST_ECORRUPT, "node %zu: unknown mode %u", i, modes[i]);
        static const tree_cmp cmps[] = { TREE_CMP_LEQ, TREE_CMP_LT, TREE_CMP_GTE, TREE_CMP_GT,
                                         TREE_CMP_EQ,  TREE_CMP_NEQ, TREE_CMP_MEMBER };
        x->cmp = cmps[modes[i]];
        if (featids[i] < 0 || featids[i] >= INT32_MAX)
            return st_fail(err, ST_ECORRUPT, "node %zu: feature %lld out of range", i, (long long)featids[i]);
        x->feature = (int32_t)featids[i];
        if ((size_t)featids[i] + 1 > max_feature)
            max_feature = (size_t)featids[i] + 1;
        x->missing = TREE_MISSING_NAN;
        x->threshold = x->cmp == TREE_CMP_MEMBER ? 0.0 : splits[i];
        x->is_missing_true = x->cmp == TREE_CMP_NEQ || (c_track && tracks[i] != 0);
        if (x->cmp == TREE_CMP_MEMBER) {
            /* this node's set: membership_values up to the next NaN */
            x->cat_begin = (uint32_t)n_cats;
            for (; mem_at < c_mem && !isnan(members[mem_at]); mem_at++) {
                double v = members[mem_at];
                if (!(v > -9.0e15 && v < 9.0e15) || v != trunc(v))
                    return st_fail(err, ST_EUNSUPPORTED,
                                   "node %zu: set member %g is not an integer (only integer categories are supported)",
                                   i, v);
                cats[n_cats++] = (int64_t)v;
            }
            mem_at++; /* the NaN */
            x->n_cat = (uint32_t)(n_cats - x->cat_begin);
        }
        for (int side = 0; side < 2; side++) {
            int64_t id = side ? falses[i] : trues[i];
            bool is_leaf = (side ? fleafs[i] : tleafs[i]) != 0;
            int32_t child;
            if (is_leaf) {
                if (id < 0 || (size_t)id >= c_lw)
                    return st_fail(err, ST_ECORRUPT, "node %zu: %s leaf %lld out of range (%zu leaves)", i,
                                   side ? "false" : "true", (long long)id, c_lw);
                child = (int32_t)n_nodes++;
                nodes[child] = (tree_ir_node){ .feature = -1, .leaf_begin = (uint32_t)id, .n_leaf = 1 };
            } else {
                if (id < 0 || (size_t)id >= nn)
                    return st_fail(err, ST_ECORRUPT, "node %zu: %s node %lld out of range (%zu nodes)", i,
                                   side ? "false" : "true", (long long)id, nn);
                child = (int32_t)id;
            }
            if (side)
                x->false_child = child;
            else
                x->true_child = child;
        }
    }
    for (size_t t = 0; t < c_roots; t++) {
        if (roots_in[t] < 0 || (size_t)roots_in[t] >= nn)
            return st_fail(err, ST_ECORRUPT, "tree %zu: root %lld out of range (%zu nodes)", t,
                           (long long)roots_in[t], nn);
        roots[t] = (int32_t)roots_in[t];
    }
    int64_t agg = eng_attr_int(n, "aggregate_function", 1);
    int64_t post = eng_attr_int(n, "post_transform", 0);
    static const tree_agg aggs[] = { TREE_AGG_AVERAGE, TREE_AGG_SUM, TREE_AGG_MIN, TREE_AGG_MAX };
    static const tree_post posts[] = { TREE_POST_NONE, TREE_POST_SOFTMAX, TREE_POST_LOGISTIC,
                                       TREE_POST_SOFTMAX_ZERO, TREE_POST_PROBIT };
    if (agg < 0 || agg > 3 || post < 0 || post > 4)
        return st_fail(err, ST_ECORRUPT, "aggregate_function %lld or post_transform %lld out of range",
                       (long long)agg, (long long)post);
    *ir = (tree_ir){ .n_features = max_feature, .n_targets = (size_t)n_targets, .nodes = nodes,
                     .n_nodes = n_nodes, .roots = roots, .n_trees = c_roots, .categories = cats,
                     .n_categories = n_cats, .leaf_targets = targets, .leaf_weights = lw,
                     .n_leaf_entries = c_lw, .agg = aggs[agg], .post = posts[post] };
    st->n_out = (size_t)n_targets;
    st->is_v5 = true;
    return ST_OK;
}

/* --- the op ---------------------------------------------------------------- */

static st_status mlt_check_as(eng_node *n, st_arena *arena, st_error *err, int kind)
{
    mlt_state *st = st_arena_calloc(arena, 1, sizeof *st, 16);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    tree_ir ir;
    st_status s;
    if (kind == 2) {
        s = build_v5(n, arena, &ir, st, err);
    } else {
        st->is_classifier = kind == 1;
        s = build_v3(n, arena, st->is_classifier, &ir, err);
        if (s == ST_OK)
            s = st->is_classifier ? setup_classifier(n, arena, &ir, st, err)
                                  : setup_regressor(n, arena, &ir, st, err);
    }
    if (s == ST_OK)
        s = tree_compile(&ir, arena, &st->model, err);
    if (s != ST_OK)
        return s;
    st->n_features = ir.n_features;
    n->state = st;
    return ST_OK;
}

static st_status regressor_check(eng_node *n, st_arena *arena, st_error *err)
{
    return mlt_check_as(n, arena, err, 0);
}

static st_status classifier_check(eng_node *n, st_arena *arena, st_error *err)
{
    return mlt_check_as(n, arena, err, 1);
}

static st_status ensemble_check(eng_node *n, st_arena *arena, st_error *err)
{
    return mlt_check_as(n, arena, err, 2);
}

/* Rows and columns of X: [N, C], or [C] for one row. */
static st_status input_rows(const eng_kctx *k, const mlt_state *st, size_t *n_rows, size_t *n_cols)
{
    const eng_tensor *x = k->in[0];
    st_dtype t = x->dtype;
    if (t != ST_DT_FLOAT32 && t != ST_DT_FLOAT64 && t != ST_DT_INT64 && t != ST_DT_INT32 &&
        t != ST_DT_FLOAT16)
        return eng_fail(k, ST_ETYPE, "input X is %s (float, double, int64 or int32 expected)", st_dtype_name(t));
    if (x->rank == 1) {
        *n_rows = 1;
        *n_cols = (size_t)x->shape[0];
    } else if (x->rank == 2) {
        *n_rows = (size_t)x->shape[0];
        *n_cols = (size_t)x->shape[1];
    } else {
        return eng_fail(k, ST_ESHAPE, "input X has rank %u ([N, C] expected)", x->rank);
    }
    if (*n_cols < st->n_features && *n_rows > 0)
        return eng_fail(k, ST_ESHAPE, "input X has %zu columns but the trees read feature %zu", *n_cols,
                        st->n_features - 1);
    return ST_OK;
}

static st_status mlt_infer(eng_kctx *k)
{
    const mlt_state *st = k->node->state;
    size_t n_rows, n_cols;
    st_status s = input_rows(k, st, &n_rows, &n_cols);
    if (s != ST_OK)
        return s;
    int64_t shape[2] = { (int64_t)n_rows, (int64_t)st->n_out };
    if (!st->is_classifier) {
        st_dtype t = st->is_v5 ? k->in[0]->dtype : ST_DT_FLOAT32;
        if (st->is_v5 && t != ST_DT_FLOAT32 && t != ST_DT_FLOAT64 && t != ST_DT_FLOAT16)
            return eng_fail(k, ST_ETYPE, "TreeEnsemble input X is %s (float, double or float16 expected)",
                            st_dtype_name(t));
        eng_set_shape(k->out[0], t, shape, 2);
        return ST_OK;
    }
    if (k->out[0])
        eng_set_shape(k->out[0], st->labels_int ? ST_DT_INT64 : ST_DT_STRING, shape, 1);
    if (k->n_out > 1 && k->out[1])
        eng_set_shape(k->out[1], ST_DT_FLOAT32, shape, 2);
    return ST_OK;
}

/* X as float rows (a view when it already is float). */
static const float *rows_as_float(eng_kctx *k, size_t n)
{
    const eng_tensor *x = k->in[0];
    if (x->dtype == ST_DT_FLOAT32)
        return x->data;
    float *f = st_arena_alloc(k->scratch, (n ? n : 1) * sizeof *f, 64);
    if (!f)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        switch (x->dtype) {
        case ST_DT_FLOAT64: f[i] = (float)((const double *)x->data)[i]; break;
        case ST_DT_INT64: f[i] = (float)((const int64_t *)x->data)[i]; break;
        case ST_DT_INT32: f[i] = (float)((const int32_t *)x->data)[i]; break;
        default: f[i] = (float)eng_num_at(x, i); break;
        }
    }
    return f;
}

/* A binary classifier's two columns and label from its one score, as
 * ONNX Runtime writes them, except that LOGISTIC is always applied: ORT
 * skips it when every weight is positive, which gives XGBoost models on
 * skewed data margins instead of probabilities. */
static void binary_row(const mlt_state *st, double score, float *z, size_t *label)
{
    if (st->post == TREE_POST_PROBIT) {
        double p = score;
        tree_post_transform(TREE_POST_PROBIT, &p, 1);
        *label = (st->is_all_positive ? score > 0.5 : score > 0.0) ? 1 : 0;
        z[0] = (float)p;
        z[1] = 0.0f;
    } else if (st->post == TREE_POST_LOGISTIC) {
        double p = 1.0 / (1.0 + exp(-score));
        *label = p > 0.5 ? 1 : 0;
        z[0] = (float)(1.0 / (1.0 + exp(score)));
        z[1] = (float)p;
    } else if (st->is_all_positive) {
        *label = score > 0.5 ? 1 : 0;
        z[0] = (float)(1.0 - score);
        z[1] = (float)score;
    } else {
        bool is_positive = score > 0.0;
        *label = is_positive ? 1 : 0;
        z[0] = (float)(is_positive ? -score : score);
        z[1] = (float)(is_positive ? score : -score);
    }
}

static st_status mlt_run(eng_kctx *k)
{
    const mlt_state *st = k->node->state;
    size_t n_rows, n_cols;
    st_status s = input_rows(k, st, &n_rows, &n_cols);
    if (s != ST_OK || n_rows == 0)
        return s;
    size_t n_in;
    if (st_mul_overflow(n_rows, n_cols, &n_in))
        return eng_fail(k, ST_EOVERFLOW, "input too large");
    const float *x = rows_as_float(k, n_in);
    size_t n_scores = tree_n_targets(st->model);
    float *scores;
    if (!st->is_classifier && k->out[0]->dtype == ST_DT_FLOAT32) {
        scores = k->out[0]->data;
    } else {
        scores = st_arena_alloc(k->scratch, n_rows * n_scores * sizeof *scores, 64);
    }
    if (!x || !scores)
        return eng_fail(k, ST_ENOMEM, "out of memory for %zu rows", n_rows);
    tree_predict(st->model, x, n_rows, n_cols, scores, k->pool);
    if (!st->is_classifier) {
        eng_tensor *y = k->out[0];
        if (y->dtype == ST_DT_FLOAT64)
            for (size_t i = 0; i < n_rows * n_scores; i++)
                ((double *)y->data)[i] = scores[i];
        else if (y->dtype == ST_DT_FLOAT16)
            for (size_t i = 0; i < n_rows * n_scores; i++)
                ((uint16_t *)y->data)[i] = st_float_to_half(scores[i]);
        return ST_OK;
    }
    eng_tensor *label = k->out[0];
    eng_tensor *z = k->n_out > 1 ? k->out[1] : NULL;
    double row[4096];
    float pair[2];
    for (size_t r = 0; r < n_rows; r++) {
        size_t best = 0;
        float *zr = z ? (float *)z->data + r * st->n_classes : pair;
        if (st->is_binary) {
            binary_row(st, scores[r], zr, &best);
        } else {
            const float *sr = scores + r * n_scores;
            for (size_t c = 0; c < n_scores; c++) {
                row[c] = sr[c];
                if (sr[c] > sr[best])
                    best = c;
            }
            if (z) {
                tree_post_transform(st->post, row, n_scores);
                for (size_t c = 0; c < n_scores; c++)
                    zr[c] = (float)row[c];
            }
        }
        if (label) {
            if (st->labels_int)
                ((int64_t *)label->data)[r] = st->labels_int[best];
            else
                ((st_str *)label->data)[r] = st->labels_str[best];
        }
    }
    return ST_OK;
}

const eng_op eng_ops_ml_tree[] = {
    { "ai.onnx.ml", "TreeEnsembleRegressor", 1, regressor_check, mlt_infer, mlt_run },
    { "ai.onnx.ml", "TreeEnsembleClassifier", 1, classifier_check, mlt_infer, mlt_run },
    { "ai.onnx.ml", "TreeEnsemble", 5, ensemble_check, mlt_infer, mlt_run },
    { 0 },
};
