/* xgb.c - XGBoost models as Booster.save_model writes them (JSON, or
 * UBJSON read into the same DOM by ubjson.c), into a gbm_desc.
 *
 * What Booster.predict computes, per row: for each class (tree_info names
 * a tree's class) the sum of the leaf values reached, plus the base margin
 * (base_score mapped into margin space by the objective: logit for the
 * logistic objectives, log for the exp ones), then the objective's
 * transform.  At an interior node a numerical split goes left when
 * x < split_condition (float32 compare); a categorical split goes right
 * when the category is in the node's set, left otherwise; NaN takes
 * default_left either way. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/gbm_int.h"

typedef enum xgb_margin { XGB_MARGIN_IDENTITY, XGB_MARGIN_LOGIT, XGB_MARGIN_LOG } xgb_margin;

typedef struct xgb_objective {
    const char *name;
    xgb_margin margin;   /* base_score into margin space */
    tree_post post;
    gbm_finish finish;
    bool is_multiclass;
} xgb_objective;

static const xgb_objective xgb_objectives[] = {
    { "reg:squarederror", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_NONE, false },
    { "reg:linear", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_NONE, false },
    { "reg:squaredlogerror", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_NONE, false },
    { "reg:pseudohubererror", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_NONE, false },
    { "reg:absoluteerror", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_NONE, false },
    { "reg:quantileerror", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_NONE, false },
    { "binary:logitraw", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_NONE, false },
    { "rank:pairwise", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_NONE, false },
    { "rank:ndcg", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_NONE, false },
    { "rank:map", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_NONE, false },
    { "binary:logistic", XGB_MARGIN_LOGIT, TREE_POST_LOGISTIC, GBM_FINISH_NONE, false },
    { "reg:logistic", XGB_MARGIN_LOGIT, TREE_POST_LOGISTIC, GBM_FINISH_NONE, false },
    { "binary:hinge", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_SIGN, false },
    { "count:poisson", XGB_MARGIN_LOG, TREE_POST_EXP, GBM_FINISH_NONE, false },
    { "reg:gamma", XGB_MARGIN_LOG, TREE_POST_EXP, GBM_FINISH_NONE, false },
    { "reg:tweedie", XGB_MARGIN_LOG, TREE_POST_EXP, GBM_FINISH_NONE, false },
    { "survival:cox", XGB_MARGIN_LOG, TREE_POST_EXP, GBM_FINISH_NONE, false },
    { "survival:aft", XGB_MARGIN_LOG, TREE_POST_EXP, GBM_FINISH_NONE, false },
    { "multi:softprob", XGB_MARGIN_IDENTITY, TREE_POST_SOFTMAX, GBM_FINISH_NONE, true },
    { "multi:softmax", XGB_MARGIN_IDENTITY, TREE_POST_NONE, GBM_FINISH_ARGMAX, true },
};

/* Bounds on sizes from the file, far above real models, so that counts
 * multiply without overflow. */
#define XGB_MAX_FEATURES ((size_t)1 << 30)
#define XGB_MAX_CLASSES ((size_t)1 << 20)

/* Everything the walk needs, for messages too. */
typedef struct xgb_ctx {
    st_error *err;
    st_arena scratch;     /* per-tree arrays; freed at the end */
    gbm_ir ir;
    size_t n_features;
    size_t n_targets;
} xgb_ctx;

/* --- parameters (XGBoost writes most of them as strings) ---------------- */

static st_status xgb_param_double(const json_value *obj, const char *where, const char *key, double dflt,
                                  double *out, st_error *err)
{
    const json_value *v = json_value_get_c(obj, key);
    *out = dflt;
    if (!v)
        return ST_OK;
    st_str text = v->type == JSON_KIND_STRING ? v->u.string : v->type == JSON_KIND_NUMBER ? v->u.number : ST_STR("");
    if (v->type != JSON_KIND_STRING && v->type != JSON_KIND_NUMBER)
        return st_fail(err, ST_ECORRUPT, "%s.%s must be a number or a string", where, key);
    /* XGBoost 2 writes base_score as a one-element vector, "[5E-1]". */
    if (text.len >= 2 && text.ptr[0] == '[' && text.ptr[text.len - 1] == ']') {
        text = st_str_make(text.ptr + 1, text.len - 2);
        if (memchr(text.ptr, ',', text.len))
            return st_fail(err, ST_EUNSUPPORTED, "%s.%s: one value per target is not supported", where, key);
    }
    if (json_parse_double(text, out) != ST_OK || !isfinite(*out))
        return st_fail(err, ST_ECORRUPT, "%s.%s is '%.*s', not a finite number", where, key,
                       (int)(text.len > 40 ? 40 : text.len), text.ptr);
    return ST_OK;
}

static st_status xgb_param_size(const json_value *obj, const char *where, const char *key, size_t max, size_t *out,
                                st_error *err)
{
    double d;
    st_status s = xgb_param_double(obj, where, key, 0, &d, err);
    if (s != ST_OK)
        return s;
    if (d < 0 || d != floor(d) || d > (double)max)
        return st_fail(err, ST_ECORRUPT, "%s.%s is %g; it must be an integer in [0, %zu]", where, key, d, max);
    *out = (size_t)d;
    return ST_OK;
}

static const json_value *xgb_object(const json_value *obj, const char *key)
{
    const json_value *v = json_value_get_c(obj, key);
    return v && v->type == JSON_KIND_OBJECT ? v : NULL;
}

/* --- per-tree arrays -------------------------------------------------------- */

typedef struct xgb_tree {
    size_t index;             /* in the model's trees, for messages */
    size_t n;                 /* nodes */
    int64_t *left, *right, *feature, *default_left, *split_type;
    float *cond;
    /* categorical nodes: the range of `cats` each node owns */
    int64_t *cats;
    size_t n_cats;
    size_t *cat_begin, *cat_count; /* per node; count 0 when none */
} xgb_tree;

/* The array `key` of tree t.  A missing optional array is NULL with
 * *n 0; a missing required one is an error. */
static st_status xgb_tree_array(xgb_ctx *c, const json_value *tree, size_t t, const char *key, bool is_required,
                                const json_value **out)
{
    const json_value *v = json_value_get_c(tree, key);
    *out = NULL;
    if (!v) {
        if (is_required)
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: '%s' is missing", t, key);
        return ST_OK;
    }
    if (v->type != JSON_KIND_ARRAY)
        return st_fail(c->err, ST_ECORRUPT, "tree %zu: '%s' must be an array, not %s", t, key,
                       json_kind_name(v->type));
    *out = v;
    return ST_OK;
}

static st_status xgb_ints(xgb_ctx *c, const json_value *tree, size_t t, const char *key, bool is_required,
                          size_t want, int64_t **out, size_t *n)
{
    const json_value *a;
    st_status s = xgb_tree_array(c, tree, t, key, is_required, &a);
    *out = NULL;
    *n = 0;
    if (s != ST_OK || !a)
        return s;
    size_t count = a->u.array.count;
    if (want != SIZE_MAX && count != want)
        return st_fail(c->err, ST_ECORRUPT, "tree %zu: '%s' has %zu entries, left_children has %zu", t, key, count,
                       want);
    int64_t *vals = st_arena_calloc(&c->scratch, count + 1, sizeof *vals, 8);
    if (!vals)
        return st_fail(c->err, ST_ENOMEM, "out of memory reading tree %zu", t);
    for (size_t i = 0; i < count; i++) {
        const json_value *e = &a->u.array.items[i];
        bool b;
        if (e->type == JSON_KIND_BOOL && json_value_bool(e, &b) == ST_OK)
            vals[i] = b;
        else if (json_value_int64(e, &vals[i]) != ST_OK)
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: %s[%zu] is not an integer", t, key, i);
    }
    *out = vals;
    *n = count;
    return ST_OK;
}

static st_status xgb_floats(xgb_ctx *c, const json_value *tree, size_t t, const char *key, size_t want,
                            float **out)
{
    const json_value *a;
    st_status s = xgb_tree_array(c, tree, t, key, true, &a);
    if (s != ST_OK)
        return s;
    size_t count = a->u.array.count;
    if (count != want)
        return st_fail(c->err, ST_ECORRUPT, "tree %zu: '%s' has %zu entries, left_children has %zu", t, key, count,
                       want);
    float *vals = st_arena_calloc(&c->scratch, count + 1, sizeof *vals, 8);
    if (!vals)
        return st_fail(c->err, ST_ENOMEM, "out of memory reading tree %zu", t);
    for (size_t i = 0; i < count; i++) {
        const json_value *e = &a->u.array.items[i];
        /* Straight to float32 from the text: XGBoost's values are float32.
         * NaN (null here) is checked where it matters: categorical nodes
         * carry it, numerical nodes and leaves may not. */
        if (e->type == JSON_KIND_NULL)
            vals[i] = NAN;
        else if (e->type != JSON_KIND_NUMBER || json_parse_float(e->u.number, &vals[i]) != ST_OK)
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: %s[%zu] is not a float32 number", t, key, i);
    }
    *out = vals;
    return ST_OK;
}

/* Categorical splits: categories_nodes[j] owns categories[segments[j] ..
 * + sizes[j]). */
static st_status xgb_read_categories(xgb_ctx *c, const json_value *tree, xgb_tree *x)
{
    size_t t = x->index, n_nodes, n_seg, n_sizes;
    int64_t *nodes, *segments, *sizes;
    st_status s;
    if ((s = xgb_ints(c, tree, t, "categories", false, SIZE_MAX, &x->cats, &x->n_cats)) != ST_OK ||
        (s = xgb_ints(c, tree, t, "categories_nodes", false, SIZE_MAX, &nodes, &n_nodes)) != ST_OK ||
        (s = xgb_ints(c, tree, t, "categories_segments", false, SIZE_MAX, &segments, &n_seg)) != ST_OK ||
        (s = xgb_ints(c, tree, t, "categories_sizes", false, SIZE_MAX, &sizes, &n_sizes)) != ST_OK)
        return s;
    if (n_seg != n_nodes || n_sizes != n_nodes)
        return st_fail(c->err, ST_ECORRUPT,
                       "tree %zu: categories_nodes, categories_segments and categories_sizes have %zu, %zu and %zu "
                       "entries; they must match",
                       t, n_nodes, n_seg, n_sizes);
    x->cat_begin = st_arena_calloc(&c->scratch, x->n + 1, sizeof *x->cat_begin, 8);
    x->cat_count = st_arena_calloc(&c->scratch, x->n + 1, sizeof *x->cat_count, 8);
    if (!x->cat_begin || !x->cat_count)
        return st_fail(c->err, ST_ENOMEM, "out of memory reading tree %zu", t);
    for (size_t j = 0; j < n_nodes; j++) {
        int64_t node = nodes[j];
        if (node < 0 || (uint64_t)node >= x->n)
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: categories_nodes[%zu] is node %lld, out of range (tree has %zu nodes)",
                           t, j, (long long)node, x->n);
        if (segments[j] < 0 || sizes[j] < 0 || (uint64_t)segments[j] > x->n_cats ||
            (uint64_t)sizes[j] > x->n_cats - (uint64_t)segments[j])
            return st_fail(c->err, ST_ECORRUPT,
                           "tree %zu: node %lld: categories [%lld, +%lld) run past the %zu stored categories", t,
                           (long long)node, (long long)segments[j], (long long)sizes[j], x->n_cats);
        x->cat_begin[node] = (size_t)segments[j];
        x->cat_count[node] = (size_t)sizes[j];
    }
    for (size_t i = 0; i < x->n_cats; i++)
        if (x->cats[i] < 0 || x->cats[i] > INT32_MAX)
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: categories[%zu] is %lld; categories are integers >= 0", t,
                           i, (long long)x->cats[i]);
    return ST_OK;
}

static st_status xgb_read_tree(xgb_ctx *c, const json_value *tree, size_t t, xgb_tree *x)
{
    memset(x, 0, sizeof *x);
    x->index = t;
    if (tree->type != JSON_KIND_OBJECT)
        return st_fail(c->err, ST_ECORRUPT, "tree %zu is not an object", t);
    size_t n, got;
    st_status s = xgb_ints(c, tree, t, "left_children", true, SIZE_MAX, &x->left, &n);
    if (s != ST_OK)
        return s;
    if (n == 0)
        return st_fail(c->err, ST_ECORRUPT, "tree %zu has no nodes", t);
    if (n > INT32_MAX)
        return st_fail(c->err, ST_ELIMIT, "tree %zu has %zu nodes, more than %d", t, n, INT32_MAX);
    x->n = n;
    const json_value *param = xgb_object(tree, "tree_param");
    if (param) {
        size_t declared, leaf_vector;
        if ((s = xgb_param_size(param, "tree_param", "size_leaf_vector", INT32_MAX, &leaf_vector, c->err)) != ST_OK)
            return st_fail_wrap(c->err, s, "tree %zu", t);
        if (leaf_vector > 1)
            return st_fail(c->err, ST_EUNSUPPORTED,
                           "tree %zu: vector leaves (multi_strategy=multi_output_tree) are not supported", t);
        if ((s = xgb_param_size(param, "tree_param", "num_nodes", INT32_MAX, &declared, c->err)) != ST_OK)
            return st_fail_wrap(c->err, s, "tree %zu", t);
        if (json_value_get_c(param, "num_nodes") && declared != n)
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: tree_param.num_nodes is %zu but left_children has %zu entries",
                           t, declared, n);
    }
    if ((s = xgb_ints(c, tree, t, "right_children", true, n, &x->right, &got)) != ST_OK ||
        (s = xgb_ints(c, tree, t, "split_indices", true, n, &x->feature, &got)) != ST_OK ||
        (s = xgb_ints(c, tree, t, "default_left", true, n, &x->default_left, &got)) != ST_OK ||
        (s = xgb_ints(c, tree, t, "split_type", false, n, &x->split_type, &got)) != ST_OK ||
        (s = xgb_floats(c, tree, t, "split_conditions", n, &x->cond)) != ST_OK)
        return s;
    return xgb_read_categories(c, tree, x);
}

/* Checks tree x (children in range, every node reached at most once from
 * the root, features in range) and appends it to the IR: nodes in
 * breadth-first order, only those reachable from the root (XGBoost keeps
 * deleted nodes in the arrays). */
static st_status xgb_emit_tree(xgb_ctx *c, const xgb_tree *x, uint32_t target, double weight)
{
    size_t n = x->n, t = x->index;
    int32_t *order = st_arena_calloc(&c->scratch, n, sizeof *order, 8);
    int32_t *new_id = st_arena_calloc(&c->scratch, n, sizeof *new_id, 8);
    if (!order || !new_id)
        return st_fail(c->err, ST_ENOMEM, "out of memory reading tree %zu", t);
    for (size_t i = 0; i < n; i++)
        new_id[i] = -1;
    size_t head = 0, tail = 0;
    order[tail++] = 0;
    new_id[0] = 0;
    while (head < tail) {
        int32_t u = order[head++];
        int64_t l = x->left[u], r = x->right[u];
        bool is_categorical = x->split_type && x->split_type[u] == 1;
        if (l == -1) {
            if (r != -1)
                return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: left child is -1 (a leaf) but right child is %lld",
                               t, u, (long long)r);
            if (!isfinite(x->cond[u]))
                return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: leaf value is not finite", t, u);
            continue;
        }
        if (!is_categorical && !isfinite(x->cond[u]))
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: split condition is not finite", t, u);
        const int64_t kids[2] = { l, r };
        for (int k = 0; k < 2; k++) {
            const char *side = k ? "right" : "left";
            if (kids[k] < 0 || (uint64_t)kids[k] >= n)
                return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: %s child %lld out of range (tree has %zu nodes)",
                               t, u, side, (long long)kids[k], n);
            if (new_id[kids[k]] >= 0)
                return st_fail(c->err, ST_ECORRUPT,
                               "tree %zu: node %d: %s child %lld is reached twice (a cycle or a shared subtree)", t, u,
                               side, (long long)kids[k]);
            new_id[kids[k]] = (int32_t)tail;
            order[tail++] = (int32_t)kids[k];
        }
        if (x->feature[u] < 0 || (uint64_t)x->feature[u] >= c->n_features)
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: feature %lld out of range (the model has %zu features)",
                           t, u, (long long)x->feature[u], c->n_features);
        if (x->split_type && x->split_type[u] != 0 && x->split_type[u] != 1)
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: split_type %lld is neither 0 (numerical) nor 1 (categorical)",
                           t, u, (long long)x->split_type[u]);
    }
    int32_t base = (int32_t)c->ir.n_nodes;
    if ((size_t)base + tail > INT32_MAX)
        return st_fail(c->err, ST_ELIMIT, "the model has more than %d nodes", INT32_MAX);
    st_status s = gbm_ir_root(&c->ir, base);
    for (size_t i = 0; i < tail && s == ST_OK; i++) {
        int32_t u = order[i], id;
        if (x->left[u] == -1) {
            s = gbm_ir_leaf(&c->ir, target, (double)x->cond[u] * weight, &id);
            continue;
        }
        bool is_default_left = x->default_left[u] != 0;
        tree_ir_node node = {
            .feature = (int32_t)x->feature[u],
            .missing = TREE_MISSING_NAN,
        };
        int32_t left = base + new_id[x->left[u]], right = base + new_id[x->right[u]];
        if (x->split_type && x->split_type[u] == 1) {
            /* In the set goes right. */
            node.cmp = TREE_CMP_MEMBER;
            node.true_child = right;
            node.false_child = left;
            node.is_missing_true = !is_default_left;
            node.cat_begin = (uint32_t)c->ir.n_categories;
            node.n_cat = (uint32_t)x->cat_count[u];
            for (size_t j = 0; j < x->cat_count[u] && s == ST_OK; j++)
                s = gbm_ir_category(&c->ir, x->cats[x->cat_begin[u] + j]);
        } else {
            node.cmp = TREE_CMP_LT;
            node.threshold = x->cond[u];
            node.true_child = left;
            node.false_child = right;
            node.is_missing_true = is_default_left;
        }
        if (s == ST_OK)
            s = gbm_ir_node(&c->ir, &node, &id);
    }
    if (s != ST_OK)
        return st_fail(c->err, s, "out of memory building tree %zu", t);
    return ST_OK;
}

/* --- the model ---------------------------------------------------------- */

static st_status xgb_objective_find(const json_value *learner, const xgb_objective **out, const char **name,
                                    st_arena *arena, st_error *err)
{
    const json_value *obj = xgb_object(learner, "objective");
    const json_value *nv = obj ? json_value_get_c(obj, "name") : NULL;
    if (!nv || nv->type != JSON_KIND_STRING)
        return st_fail(err, ST_ECORRUPT, "learner.objective.name is missing: the model does not say its objective");
    st_str n = nv->u.string;
    *name = st_arena_strndup(arena, n.ptr, n.len > 64 ? 64 : n.len);
    if (!*name)
        return st_fail(err, ST_ENOMEM, "out of memory");
    for (size_t i = 0; i < sizeof xgb_objectives / sizeof xgb_objectives[0]; i++)
        if (st_str_eq_c(n, xgb_objectives[i].name)) {
            *out = &xgb_objectives[i];
            return ST_OK;
        }
    return st_fail(err, ST_EUNSUPPORTED,
                   "objective '%s' is not supported (supported: reg:squarederror, reg:logistic, reg:absoluteerror, "
                   "reg:gamma, reg:tweedie, binary:logistic, binary:logitraw, binary:hinge, multi:softprob, "
                   "multi:softmax, count:poisson, rank:pairwise/ndcg/map, survival:cox/aft)",
                   *name);
}

/* base_score in margin space, as XGBoost 1.7 computes it (float32). */
static st_status xgb_base_margin(const xgb_objective *o, double base_score, double *out, st_error *err)
{
    float b = (float)base_score;
    switch (o->margin) {
    case XGB_MARGIN_LOGIT:
        if (!(b > 0.0f && b < 1.0f))
            return st_fail(err, ST_ECORRUPT, "base_score %g is out of range for %s: it must be in (0, 1)", base_score,
                           o->name);
        *out = (float)-logf(1.0f / b - 1.0f);
        return ST_OK;
    case XGB_MARGIN_LOG:
        if (!(b > 0.0f))
            return st_fail(err, ST_ECORRUPT, "base_score %g is out of range for %s: it must be > 0", base_score,
                           o->name);
        *out = (float)logf(b);
        return ST_OK;
    default:
        *out = b;
        return ST_OK;
    }
}

static st_status xgb_version(const json_value *root, st_arena *arena, const char **out)
{
    const json_value *v = json_value_get_c(root, "version");
    char text[64] = "";
    size_t len = 0;
    for (size_t i = 0; v && v->type == JSON_KIND_ARRAY && i < v->u.array.count && i < 3; i++) {
        int64_t part;
        if (json_value_int64(&v->u.array.items[i], &part) != ST_OK)
            break;
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%lld", i ? "." : "", (long long)part);
    }
    *out = st_arena_strndup(arena, text, len);
    return *out ? ST_OK : ST_ENOMEM;
}

static st_status xgb_trees(xgb_ctx *c, const json_value *model, const json_value *weight_drop, gbm_desc *out)
{
    const json_value *trees = json_value_get_c(model, "trees");
    const json_value *info = json_value_get_c(model, "tree_info");
    if (!trees || trees->type != JSON_KIND_ARRAY)
        return st_fail(c->err, ST_ECORRUPT, "gradient_booster.model.trees is missing or not an array");
    if (!info || info->type != JSON_KIND_ARRAY)
        return st_fail(c->err, ST_ECORRUPT, "gradient_booster.model.tree_info is missing or not an array");
    size_t n_trees = trees->u.array.count;
    if (info->u.array.count != n_trees)
        return st_fail(c->err, ST_ECORRUPT, "tree_info has %zu entries for %zu trees", info->u.array.count, n_trees);
    if (weight_drop && weight_drop->u.array.count != n_trees)
        return st_fail(c->err, ST_ECORRUPT, "weight_drop has %zu entries for %zu trees", weight_drop->u.array.count,
                       n_trees);
    const json_value *gparam = xgb_object(model, "gbtree_model_param");
    if (gparam && json_value_get_c(gparam, "num_trees")) {
        size_t declared;
        st_status s = xgb_param_size(gparam, "gbtree_model_param", "num_trees", SIZE_MAX / 2, &declared, c->err);
        if (s != ST_OK)
            return s;
        if (declared != n_trees)
            return st_fail(c->err, ST_ECORRUPT, "gbtree_model_param.num_trees is %zu but %zu trees are stored",
                           declared, n_trees);
    }
    for (size_t t = 0; t < n_trees; t++) {
        int64_t target;
        if (json_value_int64(&info->u.array.items[t], &target) != ST_OK || target < 0 ||
            (uint64_t)target >= c->n_targets)
            return st_fail(c->err, ST_ECORRUPT, "tree_info[%zu] is not a class/target in [0, %zu)", t, c->n_targets);
        double weight = 1.0;
        if (weight_drop && (json_value_double(&weight_drop->u.array.items[t], &weight) != ST_OK || !isfinite(weight)))
            return st_fail(c->err, ST_ECORRUPT, "weight_drop[%zu] is not a finite number", t);
        xgb_tree x;
        st_status s = xgb_read_tree(c, &trees->u.array.items[t], t, &x);
        if (s == ST_OK)
            s = xgb_emit_tree(c, &x, (uint32_t)target, weight);
        if (s != ST_OK)
            return s;
        st_arena_reset(&c->scratch);
    }
    out->n_trees = n_trees;
    return ST_OK;
}

st_status xgb_describe(const json_value *root, st_arena *arena, gbm_desc *out, st_error *err)
{
    memset(out, 0, sizeof *out);
    const json_value *learner = xgb_object(root, "learner");
    if (!learner)
        return st_fail(err, ST_ECORRUPT, "not an XGBoost model: there is no 'learner' object at the top level");
    xgb_ctx c = { .err = err };
    st_arena_init(&c.scratch, 1 << 16);
    st_status s;
    out->format = "xgboost";
    out->output_name = "predictions";
    if ((s = xgb_version(root, arena, &out->version)) != ST_OK) {
        s = st_fail(err, s, "out of memory");
        goto done;
    }
    const xgb_objective *o = NULL;
    if ((s = xgb_objective_find(learner, &o, &out->objective, arena, err)) != ST_OK)
        goto done;
    const json_value *param = xgb_object(learner, "learner_model_param");
    if (!param) {
        s = st_fail(err, ST_ECORRUPT, "learner.learner_model_param is missing");
        goto done;
    }
    size_t n_class, n_target;
    double base_score;
    const char *lmp = "learner_model_param";
    if ((s = xgb_param_size(param, lmp, "num_feature", XGB_MAX_FEATURES, &c.n_features, err)) != ST_OK ||
        (s = xgb_param_size(param, lmp, "num_class", XGB_MAX_CLASSES, &n_class, err)) != ST_OK ||
        (s = xgb_param_size(param, lmp, "num_target", XGB_MAX_CLASSES, &n_target, err)) != ST_OK ||
        (s = xgb_param_double(param, lmp, "base_score", 0.5, &base_score, err)) != ST_OK)
        goto done;
    if (c.n_features == 0) {
        s = st_fail(err, ST_ECORRUPT, "learner_model_param.num_feature is 0: the model takes no features");
        goto done;
    }
    c.n_targets = 1;
    if (o->is_multiclass) {
        if (n_class < 1) {
            s = st_fail(err, ST_ECORRUPT, "objective %s needs num_class >= 1, the model has %zu", o->name, n_class);
            goto done;
        }
        c.n_targets = n_class;
        out->n_classes = n_class;
        out->is_output_2d = o->finish == GBM_FINISH_NONE;
        if (out->is_output_2d)
            out->output_name = "probabilities";
    } else if (n_target > 1) {
        c.n_targets = n_target;
        out->is_output_2d = true;
    }
    out->finish = o->finish;
    double margin;
    if ((s = xgb_base_margin(o, base_score, &margin, err)) != ST_OK)
        goto done;

    const json_value *booster = xgb_object(learner, "gradient_booster");
    const json_value *bname = booster ? json_value_get_c(booster, "name") : NULL;
    if (!bname || bname->type != JSON_KIND_STRING) {
        s = st_fail(err, ST_ECORRUPT, "learner.gradient_booster.name is missing");
        goto done;
    }
    const json_value *model = NULL, *weight_drop = NULL;
    if (st_str_eq_c(bname->u.string, "gbtree")) {
        model = xgb_object(booster, "model");
    } else if (st_str_eq_c(bname->u.string, "dart")) {
        /* DART: a gbtree whose trees are scaled by weight_drop. */
        const json_value *inner = xgb_object(booster, "gbtree");
        model = inner ? xgb_object(inner, "model") : NULL;
        weight_drop = json_value_get_c(booster, "weight_drop");
        if (!weight_drop || weight_drop->type != JSON_KIND_ARRAY) {
            s = st_fail(err, ST_ECORRUPT, "dart booster without a weight_drop array");
            goto done;
        }
    } else {
        s = st_fail(err, ST_EUNSUPPORTED, "booster '%.*s' is not supported: only tree boosters (gbtree, dart) are",
                    (int)(bname->u.string.len > 40 ? 40 : bname->u.string.len), bname->u.string.ptr);
        goto done;
    }
    if (!model) {
        s = st_fail(err, ST_ECORRUPT, "gradient_booster.model is missing");
        goto done;
    }
    if ((s = xgb_trees(&c, model, weight_drop, out)) != ST_OK)
        goto done;
    if ((s = gbm_ir_finish(&c.ir, arena, c.n_features, c.n_targets, o->post, out)) != ST_OK) {
        s = st_fail(err, s, "out of memory");
        goto done;
    }
    double *base = st_arena_calloc(arena, c.n_targets, sizeof *base, 8);
    if (!base) {
        s = st_fail(err, ST_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < c.n_targets; i++)
        base[i] = margin;
    out->ir.base_values = base;
done:
    gbm_ir_release(&c.ir);
    st_arena_free(&c.scratch);
    return s;
}
