/* test_gbm.c - the XGBoost (JSON, UBJSON) and LightGBM (text) loaders: the
 * tree IR they build from small models written here, the refusal of
 * corrupted models with their reason, and predictions through the engine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/buf.h"
#include "engine/engine.h"
#include "engine/gbm_int.h"

/* Tree 0: numerical split on feature 1 at 0.5, NaN left.  Tree 1:
 * categorical split on feature 0, categories {2, 5} go right, NaN right
 * (default_left 0).  base_score 0.5 is margin 0 for binary:logistic. */
static const char xgb_model[] =
    "{\"learner\":{\"attributes\":{},\"feature_names\":[],\"feature_types\":[],"
    "\"gradient_booster\":{\"model\":{\"gbtree_model_param\":{\"num_parallel_tree\":\"1\",\"num_trees\":\"2\"},"
    "\"tree_info\":[0,0],\"trees\":["
    "{\"base_weights\":[0,0,0],\"categories\":[],\"categories_nodes\":[],\"categories_segments\":[],"
    "\"categories_sizes\":[],\"default_left\":[1,0,0],\"id\":0,\"left_children\":[1,-1,-1],"
    "\"right_children\":[2,-1,-1],\"split_conditions\":[5E-1,-1E0,2E0],\"split_indices\":[1,0,0],"
    "\"split_type\":[0,0,0],\"tree_param\":{\"num_deleted\":\"0\",\"num_feature\":\"3\",\"num_nodes\":\"3\"}},"
    "{\"base_weights\":[0,0,0],\"categories\":[2,5],\"categories_nodes\":[0],\"categories_segments\":[0],"
    "\"categories_sizes\":[2],\"default_left\":[0,0,0],\"id\":1,\"left_children\":[1,-1,-1],"
    "\"right_children\":[2,-1,-1],\"split_conditions\":[NaN,2.5E-1,-2.5E-1],\"split_indices\":[0,0,0],"
    "\"split_type\":[1,0,0],\"tree_param\":{\"num_deleted\":\"0\",\"num_feature\":\"3\",\"num_nodes\":\"3\"}}"
    "]},\"name\":\"gbtree\"},"
    "\"learner_model_param\":{\"base_score\":\"5E-1\",\"num_class\":\"0\",\"num_feature\":\"3\",\"num_target\":\"1\"},"
    "\"objective\":{\"name\":\"binary:logistic\",\"reg_loss_param\":{\"scale_pos_weight\":\"1\"}}},"
    "\"version\":[1,7,4]}";

/* The rules of LightGBM's decisions, one tree each (see lgbm.c). */
static const char lgbm_model[] =
    "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=3\n"
    "objective=regression\nfeature_names=a b c d\nfeature_infos=none none none none\n\n"
    "Tree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=0.5\ndecision_type=0\nleft_child=-1\n"
    "right_child=-2\nleaf_value=1 2\nshrinkage=1\n\n\n"
    "Tree=1\nnum_leaves=2\nnum_cat=0\nsplit_feature=1\nthreshold=-1\ndecision_type=6\nleft_child=-1\n"
    "right_child=-2\nleaf_value=10 20\nshrinkage=1\n\n\n"
    "Tree=2\nnum_leaves=2\nnum_cat=0\nsplit_feature=2\nthreshold=1\ndecision_type=8\nleft_child=-1\n"
    "right_child=-2\nleaf_value=100 200\nshrinkage=1\n\n\n"
    "Tree=3\nnum_leaves=2\nnum_cat=1\nsplit_feature=3\nthreshold=0\ndecision_type=1\nleft_child=-1\n"
    "right_child=-2\nleaf_value=1000 2000\ncat_boundaries=0 2\ncat_threshold=10 2\nis_linear=0\nshrinkage=1\n\n\n"
    "end of trees\n\nfeature_importances:\n\nparameters:\nend of parameters\n";

/* The text with the first `from` replaced by `to` (malloc'd). */
static char *replaced(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    size_t head = (size_t)(at - text), n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

static st_status describe(const char *text, size_t len, st_arena *arena, gbm_desc *d, st_error *err)
{
    return gbm_describe((const uint8_t *)text, len, arena, d, err);
}

static void test_detect(void **state)
{
    (void)state;
    assert_int_equal(gbm_detect((const uint8_t *)" \n{\"learner\"", 11), GBM_FORMAT_XGB_JSON);
    assert_int_equal(gbm_detect((const uint8_t *)"{L\0", 3), GBM_FORMAT_XGB_UBJSON);
    assert_int_equal(gbm_detect((const uint8_t *)"tree\nversion=v4", 15), GBM_FORMAT_LIGHTGBM);
    assert_int_equal(gbm_detect((const uint8_t *)"version=v3\n", 11), GBM_FORMAT_LIGHTGBM);
    assert_int_equal(gbm_detect((const uint8_t *)"\x08\x07\x12", 3), GBM_FORMAT_NONE);
    assert_int_equal(gbm_detect((const uint8_t *)"", 0), GBM_FORMAT_NONE);
}

static void test_xgb_ir(void **state)
{
    (void)state;
    st_arena arena;
    st_arena_init(&arena, 0);
    gbm_desc d;
    st_error err = { 0 };
    assert_int_equal(describe(xgb_model, sizeof xgb_model - 1, &arena, &d, &err), ST_OK);
    assert_string_equal(d.format, "xgboost");
    assert_string_equal(d.encoding, "json");
    assert_string_equal(d.version, "1.7.4");
    assert_string_equal(d.objective, "binary:logistic");
    assert_int_equal(d.n_features, 3);
    assert_int_equal(d.n_trees, 2);
    assert_int_equal(d.n_classes, 0);
    assert_false(d.is_output_2d);
    assert_string_equal(d.output_name, "predictions");
    const tree_ir *ir = &d.ir;
    assert_int_equal(ir->n_nodes, 6);
    assert_int_equal(ir->n_trees, 2);
    assert_int_equal(ir->roots[0], 0);
    assert_int_equal(ir->roots[1], 3);
    assert_int_equal(ir->post, TREE_POST_LOGISTIC);
    assert_true(fabs(ir->base_values[0]) < 1e-12);
    const tree_ir_node *n = &ir->nodes[0];
    assert_int_equal(n->feature, 1);
    assert_int_equal(n->cmp, TREE_CMP_LT);
    assert_int_equal(n->missing, TREE_MISSING_NAN);
    assert_true(n->threshold == 0.5);
    assert_int_equal(n->true_child, 1);   /* x < 0.5: left */
    assert_int_equal(n->false_child, 2);
    assert_true(n->is_missing_true);      /* default_left */
    assert_int_equal(ir->nodes[1].feature, -1);
    assert_true(ir->leaf_weights[ir->nodes[1].leaf_begin] == -1.0);
    n = &ir->nodes[3];
    assert_int_equal(n->cmp, TREE_CMP_MEMBER);
    assert_int_equal(n->true_child, 5);   /* in the set: right */
    assert_int_equal(n->false_child, 4);
    assert_true(n->is_missing_true);      /* default right */
    assert_int_equal(n->n_cat, 2);
    assert_int_equal(ir->categories[n->cat_begin], 2);
    assert_int_equal(ir->categories[n->cat_begin + 1], 5);
    assert_true(ir->leaf_weights[ir->nodes[5].leaf_begin] == -0.25);
    /* XGBoost 2 writes base_score as a vector of one. */
    char *v2 = replaced(xgb_model, "\"base_score\":\"5E-1\"", "\"base_score\":\"[2.5E-1]\"");
    assert_int_equal(describe(v2, strlen(v2), &arena, &d, &err), ST_OK);
    assert_true(fabs(d.ir.base_values[0] - log(0.25 / 0.75)) < 1e-6);
    free(v2);
    st_arena_free(&arena);
}

static void expect_refused(const char *text, const char *reason)
{
    st_arena arena;
    st_arena_init(&arena, 0);
    gbm_desc d;
    st_error err = { 0 };
    st_status s = describe(text, strlen(text), &arena, &d, &err);
    if (s == ST_OK || !strstr(err.msg, reason))
        fail_msg("expected refusal with '%s', got status %d: %s", reason, s, err.msg);
    /* The engine refuses it the same way. */
    eng_model *m = NULL;
    assert_int_not_equal(eng_load_memory((const uint8_t *)text, strlen(text), NULL, NULL, &m, &err), ST_OK);
    assert_null(m);
    st_arena_free(&arena);
}

/* A model text edited one way, and the reason it must be refused for. */
typedef struct corruption {
    const char *from, *to, *reason;
} corruption;

static void expect_each_refused(const char *model, const corruption *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *text = replaced(model, cases[i].from, cases[i].to);
        expect_refused(text, cases[i].reason);
        free(text);
    }
}

/* Every `step`-th prefix of the model is refused (and never read past its
 * end: ASan runs see to that).  LightGBM prefixes that still end with the
 * "end of trees" line are whole models and skipped. */
static void expect_truncations_refused(const char *model, size_t step)
{
    size_t len = strlen(model);
    for (size_t cut = 0; cut < len; cut += step) {
        char *text = strndup(model, cut);
        st_arena arena;
        st_arena_init(&arena, 0);
        gbm_desc d;
        st_error err = { 0 };
        if (!strstr(text, "end of trees"))
            assert_int_not_equal(describe(text, cut, &arena, &d, &err), ST_OK);
        st_arena_free(&arena);
        free(text);
    }
}

static void test_xgb_corrupt(void **state)
{
    (void)state;
    static const corruption cases[] = {
        { "\"left_children\":[1,-1,-1]", "\"left_children\":[90,-1,-1]",
          "tree 0: node 0: left child 90 out of range (tree has 3 nodes)" },
        { "\"right_children\":[2,-1,-1]", "\"right_children\":[0,-1,-1]", "tree 0: node 0: right child 0 is reached twice" },
        { "\"left_children\":[1,-1,-1]", "\"left_children\":[-1,-1,-1]",
          "tree 0: node 0: left child is -1 (a leaf) but right child is 2" },
        { "\"split_indices\":[1,0,0]", "\"split_indices\":[7,0,0]", "feature 7 out of range (the model has 3 features)" },
        { "[5E-1,-1E0,2E0]", "[NaN,-1E0,2E0]", "tree 0: node 0: split condition is not finite" },
        { "[5E-1,-1E0,2E0]", "[5E-1,Infinity,2E0]", "tree 0: node 1: leaf value is not finite" },
        { "\"right_children\":[2,-1,-1]", "\"right_children\":[2,-1]", "'right_children' has 2 entries, left_children has 3" },
        { "\"split_type\":[0,0,0]", "\"split_type\":[0,0,0,0]", "'split_type' has 4 entries" },
        { "binary:logistic", "reg:nonsense", "objective 'reg:nonsense' is not supported" },
        { "\"categories_sizes\":[2]", "\"categories_sizes\":[3]", "run past the 2 stored categories" },
        { "\"categories_nodes\":[0]", "\"categories_nodes\":[4]", "categories_nodes[0] is node 4, out of range" },
        { "\"categories\":[2,5]", "\"categories\":[2,-5]", "categories[1] is -5" },
        { "\"tree_info\":[0,0]", "\"tree_info\":[0,1]", "tree_info[1] is not a class/target in [0, 1)" },
        { "\"tree_info\":[0,0]", "\"tree_info\":[0]", "tree_info has 1 entries for 2 trees" },
        { "\"num_trees\":\"2\"", "\"num_trees\":\"3\"", "num_trees is 3 but 2 trees are stored" },
        { "\"num_nodes\":\"3\"", "\"num_nodes\":\"4\"", "tree 0: tree_param.num_nodes is 4" },
        { "\"base_score\":\"5E-1\"", "\"base_score\":\"1.5\"", "base_score 1.5 is out of range for binary:logistic" },
        { "\"num_feature\":\"3\",\"num_target\"", "\"num_feature\":\"-3\",\"num_target\"", "num_feature is -3" },
        { "\"name\":\"gbtree\"", "\"name\":\"gblinear\"", "booster 'gblinear' is not supported" },
        { "\"num_nodes\":\"3\"", "\"num_nodes\":\"3\",\"size_leaf_vector\":\"2\"", "tree 0: vector leaves" },
        { "\"base_score\":\"5E-1\"", "\"base_score\":\"[5E-1,1E0]\"", "one value per target is not supported" },
        { "\"learner\"", "\"learnr\"", "no 'learner' object" },
        { "\"split_indices\":[1,0,0]", "\"split_indices\":[1.5,0,0]", "split_indices[0] is not an integer" },
    };
    expect_each_refused(xgb_model, cases, sizeof cases / sizeof cases[0]);
    expect_truncations_refused(xgb_model, 7);
}

/* --- UBJSON ------------------------------------------------------------------ */

static void ubj_key(st_buf *b, const char *k)
{
    st_buf_append_byte(b, 'i');
    st_buf_append_byte(b, (uint8_t)strlen(k));
    st_buf_append(b, k, strlen(k));
}

static void ubj_be32(st_buf *b, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        st_buf_append_byte(b, (uint8_t)(v >> (8 * i)));
}

static void test_ubjson_parse(void **state)
{
    (void)state;
    st_buf b = { 0 };
    /* {"f":[$d#i 2 0.1f -2.5f], "s":"hi", "a":[i -3 U 200 I 0x0102 T Z [] ], "o":{#i1 "k" L 2^40}} */
    st_buf_append_byte(&b, '{');
    ubj_key(&b, "f");
    st_buf_append(&b, "[$d#i\x02", 6);
    float f = 0.1f, g = -2.5f;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    ubj_be32(&b, bits);
    memcpy(&bits, &g, 4);
    ubj_be32(&b, bits);
    ubj_key(&b, "s");
    st_buf_append(&b, "Si\x02hi", 5);
    ubj_key(&b, "a");
    st_buf_append(&b, "[i\xfdU\xc8I\x01\x02TZ[]]", 13);
    ubj_key(&b, "o");
    st_buf_append(&b, "{#i\x01i\x01kL\x00\x00\x01\x00\x00\x00\x00\x00", 16);
    st_buf_append_byte(&b, '}');
    st_arena arena;
    st_arena_init(&arena, 0);
    json_value *v;
    st_error err = { 0 };
    assert_int_equal(ubj_parse(b.data, b.len, &arena, &v, &err), ST_OK);
    const json_value *fv = json_value_get_c(v, "f");
    assert_non_null(fv);
    assert_int_equal(fv->u.array.count, 2);
    float back;
    assert_int_equal(json_parse_float(fv->u.array.items[0].u.number, &back), ST_OK);
    assert_true(back == 0.1f);
    assert_int_equal(json_parse_float(fv->u.array.items[1].u.number, &back), ST_OK);
    assert_true(back == -2.5f);
    st_str s;
    assert_int_equal(json_value_string(json_value_get_c(v, "s"), &s), ST_OK);
    assert_true(st_str_eq_c(s, "hi"));
    const json_value *a = json_value_get_c(v, "a");
    assert_int_equal(a->u.array.count, 6);
    int64_t i;
    assert_int_equal(json_value_int64(&a->u.array.items[0], &i), ST_OK);
    assert_int_equal(i, -3);
    assert_int_equal(json_value_int64(&a->u.array.items[1], &i), ST_OK);
    assert_int_equal(i, 200);
    assert_int_equal(json_value_int64(&a->u.array.items[2], &i), ST_OK);
    assert_int_equal(i, 258);
    assert_int_equal(a->u.array.items[3].type, JSON_KIND_BOOL);
    assert_int_equal(a->u.array.items[4].type, JSON_KIND_NULL);
    assert_int_equal(a->u.array.items[5].type, JSON_KIND_ARRAY);
    assert_int_equal(json_value_int64(json_value_get_c(json_value_get_c(v, "o"), "k"), &i), ST_OK);
    assert_int_equal(i, (int64_t)1 << 40);

    /* Every truncation is refused. */
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_not_equal(ubj_parse(b.data, cut, &arena, &v, &err), ST_OK);
    /* A count larger than the input, trailing bytes, a negative length,
     * an unknown marker, nesting too deep. */
    assert_int_equal(ubj_parse((const uint8_t *)"[$d#l\x7f\xff\xff\xff", 9, &arena, &v, &err), ST_ECORRUPT);
    assert_non_null(strstr(err.msg, "count is larger than the input"));
    assert_int_equal(ubj_parse((const uint8_t *)"[#L\x7f\xff\xff\xff\xff\xff\xff\xff", 11, &arena, &v, &err),
                     ST_ECORRUPT);
    assert_int_equal(ubj_parse((const uint8_t *)"ZZ", 2, &arena, &v, &err), ST_ECORRUPT);
    assert_int_equal(ubj_parse((const uint8_t *)"Si\xff", 3, &arena, &v, &err), ST_ECORRUPT);
    assert_int_equal(ubj_parse((const uint8_t *)"X", 1, &arena, &v, &err), ST_ECORRUPT);
    char deep[300];
    memset(deep, '[', sizeof deep);
    assert_int_equal(ubj_parse((const uint8_t *)deep, sizeof deep, &arena, &v, &err), ST_ELIMIT);
    st_arena_free(&arena);
    st_buf_free(&b);
}

/* The JSON test model, re-encoded as UBJSON the way XGBoost writes it
 * (typed arrays), gives the same IR. */
static void ubj_ints(st_buf *b, const char *k, const int32_t *v, size_t n)
{
    ubj_key(b, k);
    st_buf_append(b, "[$l#i", 5);
    st_buf_append_byte(b, (uint8_t)n);
    for (size_t i = 0; i < n; i++)
        ubj_be32(b, (uint32_t)v[i]);
}

static void ubj_floats(st_buf *b, const char *k, const float *v, size_t n)
{
    ubj_key(b, k);
    st_buf_append(b, "[$d#i", 5);
    st_buf_append_byte(b, (uint8_t)n);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        ubj_be32(b, bits);
    }
}

static void ubj_str(st_buf *b, const char *k, const char *v)
{
    ubj_key(b, k);
    st_buf_append(b, "Si", 2);
    st_buf_append_byte(b, (uint8_t)strlen(v));
    st_buf_append(b, v, strlen(v));
}

static void test_xgb_ubjson(void **state)
{
    (void)state;
    st_buf b = { 0 };
    st_buf_append_byte(&b, '{');
    ubj_key(&b, "learner");
    st_buf_append_byte(&b, '{');
    ubj_key(&b, "gradient_booster");
    st_buf_append_byte(&b, '{');
    ubj_str(&b, "name", "gbtree");
    ubj_key(&b, "model");
    st_buf_append_byte(&b, '{');
    ubj_ints(&b, "tree_info", (const int32_t[]){ 0, 0 }, 2);
    ubj_key(&b, "trees");
    st_buf_append(&b, "[#i\x02", 4);
    for (int t = 0; t < 2; t++) {
        st_buf_append_byte(&b, '{');
        ubj_ints(&b, "left_children", (const int32_t[]){ 1, -1, -1 }, 3);
        ubj_ints(&b, "right_children", (const int32_t[]){ 2, -1, -1 }, 3);
        ubj_ints(&b, "split_indices", (const int32_t[]){ t ? 0 : 1, 0, 0 }, 3);
        ubj_ints(&b, "default_left", (const int32_t[]){ t ? 0 : 1, 0, 0 }, 3);
        ubj_ints(&b, "split_type", (const int32_t[]){ t, 0, 0 }, 3);
        if (t)
            ubj_floats(&b, "split_conditions", (const float[]){ NAN, 0.25f, -0.25f }, 3);
        else
            ubj_floats(&b, "split_conditions", (const float[]){ 0.5f, -1.0f, 2.0f }, 3);
        ubj_ints(&b, "categories", (const int32_t[]){ 2, 5 }, t ? 2 : 0);
        ubj_ints(&b, "categories_nodes", (const int32_t[]){ 0 }, (size_t)t);
        ubj_ints(&b, "categories_segments", (const int32_t[]){ 0 }, (size_t)t);
        ubj_ints(&b, "categories_sizes", (const int32_t[]){ 2 }, (size_t)t);
        st_buf_append_byte(&b, '}');
    }
    st_buf_append(&b, "}}", 2);
    ubj_key(&b, "learner_model_param");
    st_buf_append_byte(&b, '{');
    ubj_str(&b, "base_score", "5E-1");
    ubj_str(&b, "num_class", "0");
    ubj_str(&b, "num_feature", "3");
    st_buf_append_byte(&b, '}');
    ubj_key(&b, "objective");
    st_buf_append_byte(&b, '{');
    ubj_str(&b, "name", "binary:logistic");
    st_buf_append(&b, "}}}", 3);

    st_arena arena;
    st_arena_init(&arena, 0);
    gbm_desc u, j;
    st_error err = { 0 };
    assert_int_equal(gbm_detect(b.data, b.len), GBM_FORMAT_XGB_UBJSON);
    if (gbm_describe(b.data, b.len, &arena, &u, &err) != ST_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(u.encoding, "ubjson");
    assert_int_equal(describe(xgb_model, sizeof xgb_model - 1, &arena, &j, &err), ST_OK);
    assert_int_equal(u.ir.n_nodes, j.ir.n_nodes);
    assert_memory_equal(u.ir.nodes, j.ir.nodes, j.ir.n_nodes * sizeof *j.ir.nodes);
    assert_memory_equal(u.ir.leaf_weights, j.ir.leaf_weights, j.ir.n_leaf_entries * sizeof(double));
    assert_memory_equal(u.ir.categories, j.ir.categories, j.ir.n_categories * sizeof(int64_t));
    for (size_t cut = 0; cut < b.len; cut += 3)
        assert_int_not_equal(gbm_describe(b.data, cut, &arena, &u, &err), ST_OK);
    st_arena_free(&arena);
    st_buf_free(&b);
}

/* --- LightGBM --------------------------------------------------------------- */

static void test_lgbm_ir(void **state)
{
    (void)state;
    st_arena arena;
    st_arena_init(&arena, 0);
    gbm_desc d;
    st_error err = { 0 };
    if (describe(lgbm_model, sizeof lgbm_model - 1, &arena, &d, &err) != ST_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(d.format, "lightgbm");
    assert_string_equal(d.objective, "regression");
    assert_string_equal(d.version, "v4");
    assert_int_equal(d.n_features, 4);
    assert_int_equal(d.n_trees, 4);
    const tree_ir *ir = &d.ir;
    assert_int_equal(ir->n_nodes, 12);
    static const tree_missing missing[3] = { TREE_MISSING_NONE, TREE_MISSING_ZERO, TREE_MISSING_NAN };
    static const bool default_left[3] = { false, true, false };
    for (int t = 0; t < 3; t++) {
        const tree_ir_node *n = &ir->nodes[ir->roots[t]];
        assert_int_equal(n->cmp, TREE_CMP_LEQ);
        assert_int_equal(n->missing, missing[t]);
        assert_int_equal(n->is_missing_true, default_left[t]);
        assert_int_equal(n->feature, t);
    }
    const tree_ir_node *n = &ir->nodes[ir->roots[3]];
    assert_int_equal(n->cmp, TREE_CMP_MEMBER);
    assert_false(n->is_missing_true); /* NaN goes right */
    assert_int_equal(n->n_cat, 3);    /* words 0b1010, 0b10: {1, 3, 33} */
    assert_int_equal(ir->categories[n->cat_begin], 1);
    assert_int_equal(ir->categories[n->cat_begin + 1], 3);
    assert_int_equal(ir->categories[n->cat_begin + 2], 33);
    assert_true(ir->leaf_weights[ir->nodes[n->true_child].leaf_begin] == 1000.0);
    assert_true(ir->leaf_weights[ir->nodes[n->false_child].leaf_begin] == 2000.0);
    st_arena_free(&arena);
}

static void test_lgbm_corrupt(void **state)
{
    (void)state;
    static const corruption cases[] = {
        { "left_child=-1\nright_child=-2\nleaf_value=1 2", "left_child=-1\nright_child=-7\nleaf_value=1 2",
          "tree 0: node 0: right child -7 out of range" },
        { "left_child=-1\nright_child=-2\nleaf_value=1 2", "left_child=-1\nright_child=0\nleaf_value=1 2",
          "tree 0: node 0: right child 0 is reached twice" },
        { "split_feature=1\n", "split_feature=9\n", "tree 1: node 0: feature 9 out of range (the model has 4 features)" },
        { "threshold=0.5\n", "threshold=inf\n", "tree 0: threshold[0] is 'inf', not a finite number" },
        { "leaf_value=10 20\n", "leaf_value=10\n", "tree 1: leaf_value has 1 entries, expected 2" },
        { "decision_type=6\n", "decision_type=12\n", "decision_type 12 is not valid" },
        { "cat_boundaries=0 2\n", "cat_boundaries=0 3\n", "cat_boundaries must run from 0 to 2" },
        { "threshold=0\ndecision_type=1", "threshold=1\ndecision_type=1", "categorical split 1 is not an index" },
        { "Tree=2\n", "Tree=5\n", "'Tree=5' where 'Tree=2' was expected" },
        { "objective=regression", "objective=regression sqrt", "'sqrt' (reg_sqrt) is not supported" },
        { "objective=regression", "objective=cross_entropy_lambda", "objective 'cross_entropy_lambda' is not supported" },
        { "end of trees", "end of tress", "truncated: no 'end of trees' line after 4 trees" },
        { "max_feature_idx=3\n", "", "no max_feature_idx line" },
        { "num_leaves=2\nnum_cat=0\nsplit_feature=0\n", "num_leaves=x\nnum_cat=0\nsplit_feature=0\n",
          "num_leaves is 'x'" },
        { "is_linear=0", "is_linear=1", "linear trees" },
    };
    expect_each_refused(lgbm_model, cases, sizeof cases / sizeof cases[0]);
    expect_truncations_refused(lgbm_model, 5);
}

/* --- through the engine ---------------------------------------------------------- */

static void run_model(const char *text, const float *x, size_t rows, size_t cols, const float *want, size_t n_out,
                      const char *out_name)
{
    eng_model *m = NULL;
    st_error err = { 0 };
    if (eng_load_memory((const uint8_t *)text, strlen(text), NULL, NULL, &m, &err) != ST_OK)
        fail_msg("load: %s", err.msg);
    assert_int_equal(eng_n_inputs(m), 1);
    assert_string_equal(eng_input(m, 0)->name, "input");
    assert_int_equal(eng_input(m, 0)->dims[1], (int64_t)cols);
    assert_string_equal(eng_output(m, 0)->name, out_name);
    eng_session *s;
    assert_int_equal(eng_session_new(m, &s, &err), ST_OK);
    eng_tensor in = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ (int64_t)rows, (int64_t)cols }, 2, (void *)x);
    eng_tensor out;
    for (int rep = 0; rep < 2; rep++) { /* the second run uses the plan */
        if (eng_run(s, &in, 1, &out, 1, &err) != ST_OK)
            fail_msg("run: %s", err.msg);
        assert_int_equal(out.count, n_out);
        for (size_t i = 0; i < n_out; i++)
            if (fabsf(((const float *)out.data)[i] - want[i]) > 1e-5f * fmaxf(1.0f, fabsf(want[i])))
                fail_msg("output %zu: %g, expected %g", i, ((const float *)out.data)[i], want[i]);
    }
    /* Wrong feature count: refused with the shape. */
    eng_tensor bad = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ 1, (int64_t)cols - 1 }, 2, (void *)x);
    assert_int_not_equal(eng_run(s, &bad, 1, &out, 1, &err), ST_OK);
    assert_non_null(strstr(err.msg, "input"));
    eng_session_free(s);
    eng_free(m);
}

static float sigmoidf(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

static void test_engine_predict(void **state)
{
    (void)state;
    const float x[] = { NAN, NAN, 0, 5, 1, 0, 3, 0.2f, 0, 2, 0.7f, 9 };
    /* Row 0: tree 0 NaN -> left -1; tree 1 NaN -> default right -0.25.
     * Row 1: 1 >= 0.5 right 2; category 5 right -0.25.  Row 2: left -1;
     * category 3 left 0.25.  Row 3: right 2; category 2 right -0.25. */
    const float want[] = { sigmoidf(-1.25f), sigmoidf(1.75f), sigmoidf(-0.75f), sigmoidf(1.75f) };
    run_model(xgb_model, x, 4, 3, want, 4, "predictions");

    const float nan = NAN;
    const float lx[] = { 0, 0, 0, 1, nan, nan, nan, nan, 0.6f, -2, 1, 3, 0.5f, -0.5f, 1.5f, 33,
                         1, 5, -1, 2, 0, 1e-36f, 0, -1, 0, 0, 0, 3.7f };
    const float lwant[] = { 1111, 2211, 1112, 1221, 2122, 2111, 1111 };
    run_model(lgbm_model, lx, 7, 4, lwant, 7, "predictions");
}

static void test_multiclass_outputs(void **state)
{
    (void)state;
    /* Three classes, one stump each; softprob gives [N, 3] probabilities,
     * softmax the index of the largest margin. */
    static const char tmpl[] =
        "{\"learner\":{\"gradient_booster\":{\"name\":\"gbtree\",\"model\":{\"tree_info\":[0,1,2],\"trees\":["
        "{\"left_children\":[1,-1,-1],\"right_children\":[2,-1,-1],\"split_indices\":[0,0,0],"
        "\"split_conditions\":[0,1,-1],\"default_left\":[1,0,0]},"
        "{\"left_children\":[-1],\"right_children\":[-1],\"split_indices\":[0],\"split_conditions\":[0.5],"
        "\"default_left\":[0]},"
        "{\"left_children\":[1,-1,-1],\"right_children\":[2,-1,-1],\"split_indices\":[1,0,0],"
        "\"split_conditions\":[0,-1,2],\"default_left\":[0,0,0]}]}},"
        "\"learner_model_param\":{\"base_score\":\"0.5\",\"num_class\":\"3\",\"num_feature\":\"2\"},"
        "\"objective\":{\"name\":\"multi:softprob\"}}}";
    const float x[] = { -1, -1, 1, 1 };
    /* Row 0: margins 1, 0.5, -1 (+0.5 each); row 1: -1, 0.5, 2. */
    float want[6];
    const float margins[2][3] = { { 1.5f, 1.0f, -0.5f }, { -0.5f, 1.0f, 2.5f } };
    for (int r = 0; r < 2; r++) {
        float sum = 0;
        for (int c = 0; c < 3; c++)
            sum += expf(margins[r][c]);
        for (int c = 0; c < 3; c++)
            want[r * 3 + c] = expf(margins[r][c]) / sum;
    }
    run_model(tmpl, x, 2, 2, want, 6, "probabilities");
    char *softmax = replaced(tmpl, "multi:softprob", "multi:softmax");
    run_model(softmax, x, 2, 2, (const float[]){ 0, 2 }, 2, "predictions");
    free(softmax);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_xgb_ir),
        cmocka_unit_test(test_xgb_corrupt),
        cmocka_unit_test(test_ubjson_parse),
        cmocka_unit_test(test_xgb_ubjson),
        cmocka_unit_test(test_lgbm_ir),
        cmocka_unit_test(test_lgbm_corrupt),
        cmocka_unit_test(test_engine_predict),
        cmocka_unit_test(test_multiclass_outputs),
    };
    return cmocka_run_group_tests_name("gbm", tests, NULL, NULL);
}
