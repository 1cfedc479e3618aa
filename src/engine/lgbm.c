/* lgbm.c - LightGBM text models (Booster.save_model) into a gbm_desc.
 *
 * The file is a header of key=value lines, then one block per tree
 * ("Tree=N", key=value lines of space-separated arrays), then
 * "end of trees" and parameters we do not need.  Interior nodes are
 * 0..num_leaves-2; a child c < 0 is the leaf ~c.  Leaf values already
 * include the shrinkage (and boost_from_average's init score lands in the
 * first tree), so a score is the plain sum over a class's trees.
 *
 * Decisions, as LightGBM's Tree::NumericalDecision / CategoricalDecision
 * (v3 and v4) take them, with decision_type bit 0 = categorical, bit 1 =
 * default left, bits 2-3 = missing type (0 None, 1 Zero, 2 NaN):
 *  - numerical: NaN becomes 0.0 unless the missing type is NaN; then
 *    missing (Zero: |x| <= 1e-35, NaN: NaN) takes the default side, else
 *    x <= threshold goes left;
 *  - categorical: NaN and negative values go right; otherwise the integer
 *    part goes left when its bit is set in the node's cat_threshold
 *    words (threshold is the index into cat_boundaries). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/gbm_int.h"

#define LGBM_MAX_FEATURES ((int64_t)1 << 30)
#define LGBM_MAX_CLASSES ((int64_t)1 << 20)

typedef struct lgbm_tree_text {
    size_t index;
    st_str num_leaves, num_cat, split_feature, threshold, decision_type, left_child, right_child, leaf_value,
        cat_boundaries, cat_threshold, is_linear;
} lgbm_tree_text;

typedef struct lgbm_ctx {
    st_error *err;
    st_arena scratch;
    gbm_ir ir;
    size_t n_features;
    size_t n_targets;      /* num_tree_per_iteration */
    double leaf_scale;     /* sigmoid factor for binary objectives */
} lgbm_ctx;

/* --- lines and numbers ----------------------------------------------------- */

static bool lgbm_line(const uint8_t *data, size_t len, size_t *pos, st_str *line)
{
    if (*pos >= len)
        return false;
    const uint8_t *start = data + *pos;
    const uint8_t *nl = memchr(start, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - start) : len - *pos;
    *pos += n + (nl ? 1 : 0);
    if (n && start[n - 1] == '\r')
        n--;
    *line = st_str_make(start, n);
    return true;
}

static void lgbm_split(st_str line, st_str *key, st_str *value)
{
    const char *eq = memchr(line.ptr, '=', line.len);
    if (!eq) {
        *key = line;
        *value = st_str_make(line.ptr + line.len, 0);
        return;
    }
    *key = st_str_make(line.ptr, (size_t)(eq - line.ptr));
    *value = st_str_make(eq + 1, line.len - (size_t)(eq - line.ptr) - 1);
}

/* The next space-separated token of *list (consumed), false at the end. */
static bool lgbm_token(st_str *list, st_str *tok)
{
    size_t i = 0;
    while (i < list->len && list->ptr[i] == ' ')
        i++;
    size_t j = i;
    while (j < list->len && list->ptr[j] != ' ')
        j++;
    *tok = st_str_make(list->ptr + i, j - i);
    *list = st_str_make(list->ptr + j, list->len - j);
    return tok->len > 0;
}

static size_t lgbm_count(st_str list)
{
    size_t n = 0;
    st_str tok;
    while (lgbm_token(&list, &tok))
        n++;
    return n;
}

static bool lgbm_parse_double(st_str tok, double *out)
{
    return json_parse_double(tok, out) == ST_OK;
}

static bool lgbm_parse_int(st_str tok, int64_t *out)
{
    size_t i = 0;
    bool is_negative = tok.len > 0 && tok.ptr[0] == '-';
    i = is_negative;
    if (i >= tok.len || tok.len - i > 18)
        return false;
    int64_t v = 0;
    for (; i < tok.len; i++) {
        if (tok.ptr[i] < '0' || tok.ptr[i] > '9')
            return false;
        v = v * 10 + (tok.ptr[i] - '0');
    }
    *out = is_negative ? -v : v;
    return true;
}

static st_status lgbm_bad_token(lgbm_ctx *c, const char *where, const char *key, size_t i, st_str tok,
                                const char *want)
{
    return st_fail(c->err, ST_ECORRUPT, "%s: %s[%zu] is '%.*s', not %s", where, key, i,
                   (int)(tok.len > 30 ? 30 : tok.len), tok.ptr, want);
}

/* Parses the array `list` (named key) of exactly `want` entries. */
static st_status lgbm_ints(lgbm_ctx *c, const char *where, const char *key, st_str list, size_t want,
                           int64_t **out)
{
    size_t n = lgbm_count(list);
    if (n != want)
        return st_fail(c->err, ST_ECORRUPT, "%s: %s has %zu entries, expected %zu", where, key, n, want);
    int64_t *vals = st_arena_calloc(&c->scratch, n + 1, sizeof *vals, 8);
    if (!vals)
        return st_fail(c->err, ST_ENOMEM, "out of memory reading %s", where);
    st_str tok;
    for (size_t i = 0; lgbm_token(&list, &tok); i++)
        if (!lgbm_parse_int(tok, &vals[i]))
            return lgbm_bad_token(c, where, key, i, tok, "an integer");
    *out = vals;
    return ST_OK;
}

static st_status lgbm_doubles(lgbm_ctx *c, const char *where, const char *key, st_str list, size_t want,
                              double **out)
{
    size_t n = lgbm_count(list);
    if (n != want)
        return st_fail(c->err, ST_ECORRUPT, "%s: %s has %zu entries, expected %zu", where, key, n, want);
    double *vals = st_arena_calloc(&c->scratch, n + 1, sizeof *vals, 8);
    if (!vals)
        return st_fail(c->err, ST_ENOMEM, "out of memory reading %s", where);
    st_str tok;
    for (size_t i = 0; lgbm_token(&list, &tok); i++)
        if (!lgbm_parse_double(tok, &vals[i]) || !isfinite(vals[i]))
            return lgbm_bad_token(c, where, key, i, tok, "a finite number");
    *out = vals;
    return ST_OK;
}

static st_status lgbm_size(lgbm_ctx *c, const char *where, const char *key, st_str value, int64_t min, int64_t max,
                           int64_t *out)
{
    if (!lgbm_parse_int(value, out) || *out < min || *out > max)
        return st_fail(c->err, ST_ECORRUPT, "%s: %s is '%.*s', not an integer in [%lld, %lld]", where, key,
                       (int)(value.len > 30 ? 30 : value.len), value.ptr, (long long)min, (long long)max);
    return ST_OK;
}

/* --- one tree ---------------------------------------------------------------- */

/* Checks tree `tt` and appends it to the IR, breadth first from the root. */
static st_status lgbm_tree(lgbm_ctx *c, const lgbm_tree_text *tt, uint32_t target, double weight)
{
    char where[32];
    snprintf(where, sizeof where, "tree %zu", tt->index);
    int64_t n_leaves, n_cat = 0, is_linear = 0;
    st_status s;
    if (!tt->num_leaves.ptr)
        return st_fail(c->err, ST_ECORRUPT, "%s: num_leaves is missing", where);
    if ((s = lgbm_size(c, where, "num_leaves", tt->num_leaves, 1, INT32_MAX / 2, &n_leaves)) != ST_OK)
        return s;
    if (tt->num_cat.ptr && (s = lgbm_size(c, where, "num_cat", tt->num_cat, 0, INT32_MAX / 2, &n_cat)) != ST_OK)
        return s;
    if (tt->is_linear.ptr && (s = lgbm_size(c, where, "is_linear", tt->is_linear, 0, 1, &is_linear)) != ST_OK)
        return s;
    if (is_linear)
        return st_fail(c->err, ST_EUNSUPPORTED, "%s: linear trees (linear_tree=true) are not supported", where);
    size_t n_int = (size_t)n_leaves - 1, n_leaf = (size_t)n_leaves;
    double *leaf_value;
    if (!tt->leaf_value.ptr)
        return st_fail(c->err, ST_ECORRUPT, "%s: leaf_value is missing", where);
    if ((s = lgbm_doubles(c, where, "leaf_value", tt->leaf_value, n_leaf, &leaf_value)) != ST_OK)
        return s;
    int32_t root = (int32_t)c->ir.n_nodes, id;
    if (n_int == 0) { /* a single leaf */
        if ((s = gbm_ir_root(&c->ir, root)) != ST_OK ||
            (s = gbm_ir_leaf(&c->ir, target, leaf_value[0] * weight * c->leaf_scale, &id)) != ST_OK)
            return st_fail(c->err, s, "out of memory building %s", where);
        return ST_OK;
    }
    static const char *const names[] = { "split_feature", "threshold", "decision_type", "left_child",
                                         "right_child" };
    const st_str *lists[] = { &tt->split_feature, &tt->threshold, &tt->decision_type, &tt->left_child,
                              &tt->right_child };
    for (size_t i = 0; i < 5; i++)
        if (!lists[i]->ptr)
            return st_fail(c->err, ST_ECORRUPT, "%s: %s is missing", where, names[i]);
    int64_t *feature, *decision, *left, *right, *bounds = NULL, *words = NULL;
    double *threshold;
    if ((s = lgbm_ints(c, where, "split_feature", tt->split_feature, n_int, &feature)) != ST_OK ||
        (s = lgbm_doubles(c, where, "threshold", tt->threshold, n_int, &threshold)) != ST_OK ||
        (s = lgbm_ints(c, where, "decision_type", tt->decision_type, n_int, &decision)) != ST_OK ||
        (s = lgbm_ints(c, where, "left_child", tt->left_child, n_int, &left)) != ST_OK ||
        (s = lgbm_ints(c, where, "right_child", tt->right_child, n_int, &right)) != ST_OK)
        return s;
    size_t n_words = 0;
    if (n_cat > 0) {
        if (!tt->cat_boundaries.ptr || !tt->cat_threshold.ptr)
            return st_fail(c->err, ST_ECORRUPT, "%s: num_cat is %lld but cat_boundaries or cat_threshold is missing",
                           where, (long long)n_cat);
        if ((s = lgbm_ints(c, where, "cat_boundaries", tt->cat_boundaries, (size_t)n_cat + 1, &bounds)) != ST_OK)
            return s;
        n_words = lgbm_count(tt->cat_threshold);
        if ((s = lgbm_ints(c, where, "cat_threshold", tt->cat_threshold, n_words, &words)) != ST_OK)
            return s;
        if (bounds[0] != 0 || (uint64_t)bounds[n_cat] != n_words)
            return st_fail(c->err, ST_ECORRUPT, "%s: cat_boundaries must run from 0 to %zu (the cat_threshold words)",
                           where, n_words);
        for (int64_t i = 0; i < n_cat; i++)
            if (bounds[i + 1] < bounds[i])
                return st_fail(c->err, ST_ECORRUPT, "%s: cat_boundaries decrease at %lld", where, (long long)i + 1);
        for (size_t i = 0; i < n_words; i++)
            if (words[i] < 0 || words[i] > UINT32_MAX)
                return st_fail(c->err, ST_ECORRUPT, "%s: cat_threshold[%zu] is not a 32-bit word", where, i);
    }

    /* Breadth-first order over interior (>= 0) and leaf (~leaf) ids. */
    size_t n_all = n_int + n_leaf;
    int64_t *order = st_arena_calloc(&c->scratch, n_all, sizeof *order, 8);
    uint8_t *seen_int = st_arena_calloc(&c->scratch, n_int, 1, 1);
    uint8_t *seen_leaf = st_arena_calloc(&c->scratch, n_leaf, 1, 1);
    if (!order || !seen_int || !seen_leaf)
        return st_fail(c->err, ST_ENOMEM, "out of memory reading %s", where);
    size_t head = 0, tail = 0;
    order[tail++] = 0;
    seen_int[0] = 1;
    while (head < tail) {
        int64_t u = order[head++];
        if (u < 0)
            continue;
        const int64_t kids[2] = { left[u], right[u] };
        for (int k = 0; k < 2; k++) {
            const char *side = k ? "right" : "left";
            int64_t kid = kids[k];
            if (kid >= 0 ? (uint64_t)kid >= n_int : (uint64_t)~kid >= n_leaf)
                return st_fail(c->err, ST_ECORRUPT,
                               "%s: node %lld: %s child %lld out of range (tree has %zu interior nodes and %zu leaves)",
                               where, (long long)u, side, (long long)kid, n_int, n_leaf);
            uint8_t *seen = kid >= 0 ? &seen_int[kid] : &seen_leaf[~kid];
            if (*seen || kid == 0)
                return st_fail(c->err, ST_ECORRUPT,
                               "%s: node %lld: %s child %lld is reached twice (a cycle or a shared subtree)", where,
                               (long long)u, side, (long long)kid);
            *seen = 1;
            order[tail++] = kid;
        }
        if (feature[u] < 0 || (uint64_t)feature[u] >= c->n_features)
            return st_fail(c->err, ST_ECORRUPT, "%s: node %lld: feature %lld out of range (the model has %zu features)",
                           where, (long long)u, (long long)feature[u], c->n_features);
        if (decision[u] < 0 || decision[u] > 15 || ((decision[u] >> 2) & 3) == 3)
            return st_fail(c->err, ST_ECORRUPT, "%s: node %lld: decision_type %lld is not valid", where, (long long)u,
                           (long long)decision[u]);
        if ((decision[u] & 1) &&
            (threshold[u] < 0 || threshold[u] >= (double)n_cat || threshold[u] != floor(threshold[u])))
            return st_fail(c->err, ST_ECORRUPT,
                           "%s: node %lld: categorical split %g is not an index into the %lld category sets", where,
                           (long long)u, threshold[u], (long long)n_cat);
    }
    /* IR ids follow the order: the id of order[i] is root + i. */
    int32_t *int_pos = st_arena_calloc(&c->scratch, n_int, sizeof *int_pos, 8);
    int32_t *leaf_pos = st_arena_calloc(&c->scratch, n_leaf, sizeof *leaf_pos, 8);
    if (!int_pos || !leaf_pos)
        return st_fail(c->err, ST_ENOMEM, "out of memory reading %s", where);
    for (size_t i = 0; i < tail; i++) {
        if (order[i] >= 0)
            int_pos[order[i]] = (int32_t)i;
        else
            leaf_pos[~order[i]] = (int32_t)i;
    }
    if ((size_t)root + tail > INT32_MAX)
        return st_fail(c->err, ST_ELIMIT, "the model has more than %d nodes", INT32_MAX);
    if ((s = gbm_ir_root(&c->ir, root)) != ST_OK)
        return st_fail(c->err, s, "out of memory building %s", where);
    for (size_t i = 0; i < tail; i++) {
        int64_t u = order[i];
        if (u < 0) {
            s = gbm_ir_leaf(&c->ir, target, leaf_value[~u] * weight * c->leaf_scale, &id);
        } else {
            int32_t l = root + (left[u] >= 0 ? int_pos[left[u]] : leaf_pos[~left[u]]);
            int32_t r = root + (right[u] >= 0 ? int_pos[right[u]] : leaf_pos[~right[u]]);
            bool is_default_left = (decision[u] & 2) != 0;
            tree_ir_node node = { .feature = (int32_t)feature[u], .true_child = l, .false_child = r };
            if (decision[u] & 1) {
                size_t set = (size_t)threshold[u];
                node.cmp = TREE_CMP_MEMBER;
                node.missing = TREE_MISSING_NAN;
                node.is_missing_true = false; /* NaN goes right */
                node.cat_begin = (uint32_t)c->ir.n_categories;
                for (int64_t w = bounds[set]; w < bounds[set + 1] && s == ST_OK; w++)
                    for (int bit = 0; bit < 32 && s == ST_OK; bit++)
                        if ((uint64_t)words[w] >> bit & 1)
                            s = gbm_ir_category(&c->ir, (w - bounds[set]) * 32 + bit);
                node.n_cat = (uint32_t)(c->ir.n_categories - node.cat_begin);
            } else {
                static const tree_missing missing[3] = { TREE_MISSING_NONE, TREE_MISSING_ZERO, TREE_MISSING_NAN };
                node.cmp = TREE_CMP_LEQ;
                node.missing = missing[(decision[u] >> 2) & 3];
                node.is_missing_true = is_default_left;
                node.threshold = threshold[u];
            }
            if (s == ST_OK)
                s = gbm_ir_node(&c->ir, &node, &id);
        }
        if (s != ST_OK)
            return st_fail(c->err, s, "out of memory building %s", where);
    }
    return ST_OK;
}

/* --- the model ----------------------------------------------------------------- */

typedef struct lgbm_objective {
    const char *name;
    tree_post post;
    bool is_multiclass;
    bool has_sigmoid;   /* "sigmoid:S" scales the raw score */
} lgbm_objective;

static const lgbm_objective lgbm_objectives[] = {
    { "regression", TREE_POST_NONE, false, false },
    { "regression_l1", TREE_POST_NONE, false, false },
    { "huber", TREE_POST_NONE, false, false },
    { "fair", TREE_POST_NONE, false, false },
    { "quantile", TREE_POST_NONE, false, false },
    { "mape", TREE_POST_NONE, false, false },
    { "lambdarank", TREE_POST_NONE, false, false },
    { "rank_xendcg", TREE_POST_NONE, false, false },
    { "custom", TREE_POST_NONE, false, false },
    { "poisson", TREE_POST_EXP, false, false },
    { "gamma", TREE_POST_EXP, false, false },
    { "tweedie", TREE_POST_EXP, false, false },
    { "binary", TREE_POST_LOGISTIC, false, true },
    { "cross_entropy", TREE_POST_LOGISTIC, false, false },
    { "multiclass", TREE_POST_SOFTMAX, true, false },
    { "multiclassova", TREE_POST_LOGISTIC, true, true },
};

static st_status lgbm_objective_find(lgbm_ctx *c, st_str value, const lgbm_objective **out, double *sigmoid)
{
    st_str tok, list = value;
    *sigmoid = 1.0;
    if (!lgbm_token(&list, &tok)) {
        *out = &lgbm_objectives[0];
        return ST_OK;
    }
    *out = NULL;
    for (size_t i = 0; i < sizeof lgbm_objectives / sizeof lgbm_objectives[0]; i++)
        if (st_str_eq_c(tok, lgbm_objectives[i].name))
            *out = &lgbm_objectives[i];
    if (!*out)
        return st_fail(c->err, ST_EUNSUPPORTED,
                       "objective '%.*s' is not supported (supported: regression, regression_l1, huber, fair, "
                       "quantile, mape, poisson, gamma, tweedie, binary, cross_entropy, multiclass, multiclassova, "
                       "lambdarank, rank_xendcg)",
                       (int)(tok.len > 40 ? 40 : tok.len), tok.ptr);
    while (lgbm_token(&list, &tok)) {
        if (st_str_eq_c(tok, "sqrt"))
            return st_fail(c->err, ST_EUNSUPPORTED, "objective option 'sqrt' (reg_sqrt) is not supported");
        if (st_str_starts_with(tok, ST_STR("sigmoid:")) &&
            (!lgbm_parse_double(st_str_make(tok.ptr + 8, tok.len - 8), sigmoid) || !isfinite(*sigmoid) ||
             *sigmoid <= 0))
            return st_fail(c->err, ST_ECORRUPT, "objective: '%.*s' is not a positive sigmoid factor",
                           (int)(tok.len > 30 ? 30 : tok.len), tok.ptr);
    }
    if (!(*out)->has_sigmoid)
        *sigmoid = 1.0;
    return ST_OK;
}

static st_status lgbm_tree_field(lgbm_tree_text *tt, st_str key, st_str value)
{
    static const struct { const char *name; size_t offset; } fields[] = {
        { "num_leaves", offsetof(lgbm_tree_text, num_leaves) },
        { "num_cat", offsetof(lgbm_tree_text, num_cat) },
        { "split_feature", offsetof(lgbm_tree_text, split_feature) },
        { "threshold", offsetof(lgbm_tree_text, threshold) },
        { "decision_type", offsetof(lgbm_tree_text, decision_type) },
        { "left_child", offsetof(lgbm_tree_text, left_child) },
        { "right_child", offsetof(lgbm_tree_text, right_child) },
        { "leaf_value", offsetof(lgbm_tree_text, leaf_value) },
        { "cat_boundaries", offsetof(lgbm_tree_text, cat_boundaries) },
        { "cat_threshold", offsetof(lgbm_tree_text, cat_threshold) },
        { "is_linear", offsetof(lgbm_tree_text, is_linear) },
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (st_str_eq_c(key, fields[i].name)) {
            *(st_str *)((char *)tt + fields[i].offset) = value;
            return ST_OK;
        }
    return ST_OK;
}

st_status lgbm_describe(const uint8_t *data, size_t len, st_arena *arena, gbm_desc *out, st_error *err)
{
    memset(out, 0, sizeof *out);
    out->format = "lightgbm";
    out->output_name = "predictions";
    lgbm_ctx c = { .err = err, .leaf_scale = 1.0 };
    st_arena_init(&c.scratch, 1 << 16);
    st_status s = ST_OK;
    size_t pos = 0;
    st_str line, key, value, version = { "", 0 }, objective = { "", 0 };
    int64_t num_class = 1, per_iter = 1, max_feature = -1;
    bool is_average = false, has_max_feature = false;
    /* Header, up to the first tree. */
    bool has_trees = false;
    size_t line_start = pos;
    while (lgbm_line(data, len, &pos, &line)) {
        if (st_str_starts_with(line, ST_STR("Tree=")) || st_str_eq_c(line, "end of trees")) {
            pos = line_start;
            has_trees = true;
            break;
        }
        line_start = pos;
        lgbm_split(line, &key, &value);
        if (st_str_eq_c(key, "version"))
            version = value;
        else if (st_str_eq_c(key, "objective"))
            objective = value;
        else if (st_str_eq_c(key, "average_output"))
            is_average = true;
        else if (st_str_eq_c(key, "num_class"))
            s = lgbm_size(&c, "header", "num_class", value, 1, LGBM_MAX_CLASSES, &num_class);
        else if (st_str_eq_c(key, "num_tree_per_iteration"))
            s = lgbm_size(&c, "header", "num_tree_per_iteration", value, 1, LGBM_MAX_CLASSES, &per_iter);
        else if (st_str_eq_c(key, "max_feature_idx")) {
            s = lgbm_size(&c, "header", "max_feature_idx", value, 0, LGBM_MAX_FEATURES, &max_feature);
            has_max_feature = true;
        }
        if (s != ST_OK)
            goto done;
    }
    if (!has_trees) {
        s = st_fail(err, ST_ECORRUPT, "LightGBM model is truncated: no trees and no 'end of trees' line");
        goto done;
    }
    if (!has_max_feature) {
        s = st_fail(err, ST_ECORRUPT, "LightGBM header has no max_feature_idx line");
        goto done;
    }
    c.n_features = (size_t)max_feature + 1;
    c.n_targets = (size_t)per_iter;
    const lgbm_objective *obj;
    if ((s = lgbm_objective_find(&c, objective, &obj, &c.leaf_scale)) != ST_OK)
        goto done;
    if (obj->is_multiclass && num_class != per_iter) {
        s = st_fail(err, ST_ECORRUPT, "multiclass model with num_class %lld but num_tree_per_iteration %lld",
                    (long long)num_class, (long long)per_iter);
        goto done;
    }
    const char *vend = memchr(objective.ptr, ' ', objective.len);
    size_t olen = vend ? (size_t)(vend - objective.ptr) : objective.len;
    out->objective = st_arena_strndup(arena, objective.ptr, olen > 64 ? 64 : olen);
    out->version = st_arena_strndup(arena, version.ptr, version.len > 32 ? 32 : version.len);
    if (!out->objective || !out->version) {
        s = st_fail(err, ST_ENOMEM, "out of memory");
        goto done;
    }

    /* The tree blocks: collect them first (the averaging of random-forest
     * models needs the count), then build. */
    lgbm_tree_text *trees = NULL;
    size_t n_trees = 0, cap = 0;
    bool is_ended = false;
    lgbm_tree_text *cur = NULL;
    while (lgbm_line(data, len, &pos, &line)) {
        if (st_str_eq_c(line, "end of trees")) {
            is_ended = true;
            break;
        }
        if (st_str_starts_with(line, ST_STR("Tree="))) {
            int64_t index;
            if (!lgbm_parse_int(st_str_make(line.ptr + 5, line.len - 5), &index) || index != (int64_t)n_trees) {
                s = st_fail(err, ST_ECORRUPT, "'%.*s' where 'Tree=%zu' was expected", (int)(line.len > 30 ? 30 : line.len),
                            line.ptr, n_trees);
                goto done;
            }
            if (n_trees == cap) {
                size_t want = cap ? cap * 2 : 16;
                lgbm_tree_text *grown = st_arena_calloc(&c.scratch, want, sizeof *grown, 8);
                if (!grown) {
                    s = st_fail(err, ST_ENOMEM, "out of memory");
                    goto done;
                }
                if (n_trees)
                    memcpy(grown, trees, n_trees * sizeof *trees);
                trees = grown;
                cap = want;
            }
            cur = &trees[n_trees];
            memset(cur, 0, sizeof *cur);
            cur->index = n_trees++;
            continue;
        }
        if (!cur || line.len == 0)
            continue;
        lgbm_split(line, &key, &value);
        lgbm_tree_field(cur, key, value);
    }
    if (!is_ended) {
        s = st_fail(err, ST_ECORRUPT, "LightGBM model is truncated: no 'end of trees' line after %zu trees", n_trees);
        goto done;
    }
    if (n_trees % c.n_targets) {
        s = st_fail(err, ST_ECORRUPT, "%zu trees is not a multiple of num_tree_per_iteration %zu", n_trees, c.n_targets);
        goto done;
    }
    /* Random-forest models average over iterations: scale the leaves. */
    double weight = is_average && n_trees ? 1.0 / (double)(n_trees / c.n_targets) : 1.0;
    /* Tree arrays go to a second scratch arena, reset per tree; the
     * collected blocks stay in c.scratch. */
    st_arena tree_scratch = c.scratch;
    st_arena_init(&c.scratch, 1 << 16);
    for (size_t t = 0; t < n_trees && s == ST_OK; t++) {
        s = lgbm_tree(&c, &trees[t], (uint32_t)(t % c.n_targets), weight);
        st_arena_reset(&c.scratch);
    }
    st_arena_free(&c.scratch);
    c.scratch = tree_scratch;
    if (s != ST_OK)
        goto done;
    out->n_trees = n_trees;
    out->n_classes = obj->is_multiclass ? c.n_targets : 0;
    if (obj->is_multiclass) {
        out->is_output_2d = true;
        out->output_name = "probabilities";
    } else if (c.n_targets > 1) {
        out->is_output_2d = true;
    }
    if ((s = gbm_ir_finish(&c.ir, arena, c.n_features, c.n_targets, obj->post, out)) != ST_OK)
        s = st_fail(err, s, "out of memory");
done:
    gbm_ir_release(&c.ir);
    st_arena_free(&c.scratch);
    return s;
}
