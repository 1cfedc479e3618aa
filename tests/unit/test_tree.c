/* test_tree.c - the tree engine against a plain reference walk of the IR
 * (every comparison, missing rule, aggregation and post transform, each
 * walk: complete trees, node arrays, deep trees, NaN blocks), and
 * corrupted IRs refused with the tree and node named. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/pool.h"
#include "engine/tree/tree.h"
#include "engine/tree/tree_int.h"

/* --- a small deterministic generator -------------------------------------- */

static uint64_t rng_state = 12345;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33) % n;
}

/* Feature values come from a small grid so that thresholds hit them. */
static double grid(uint32_t i)
{
    return ((double)i - 8.0) * 0.37;
}

typedef struct gen {
    tree_ir_node nodes[4096];
    int32_t roots[64];
    uint32_t targets[8192];
    double weights[8192];
    int64_t cats[4096];
    double base[8];
    size_t n_nodes, n_entries, n_cats;
    tree_ir ir;
} gen;

typedef struct gen_opts {
    bool is_general;   /* every comparison and missing rule, multi-entry leaves */
    size_t n_targets;
    unsigned max_depth;
} gen_opts;

static int32_t gen_node(gen *g, const gen_opts *o, unsigned depth, size_t n_features)
{
    int32_t id = (int32_t)g->n_nodes++;
    tree_ir_node *n = &g->nodes[id];
    memset(n, 0, sizeof *n);
    bool is_full = g->n_nodes + 2 * (o->max_depth - depth) + 2 >= 4096;
    if (depth >= o->max_depth || is_full || (depth > 1 && rnd(o->max_depth > 10 ? 2 : 5) == 0)) {
        n->feature = -1;
        n->leaf_begin = (uint32_t)g->n_entries;
        n->n_leaf = o->is_general ? rnd(3) : 1;
        for (uint32_t i = 0; i < n->n_leaf; i++) {
            g->targets[g->n_entries] = rnd((uint32_t)o->n_targets);
            g->weights[g->n_entries++] = (double)rnd(1000) / 250.0 - 2.0;
        }
        return id;
    }
    n->feature = (int32_t)rnd((uint32_t)n_features);
    n->cmp = (tree_cmp)(o->is_general ? rnd(7) : rnd(4));
    n->missing = o->is_general ? (tree_missing)rnd(3) : TREE_MISSING_NAN;
    n->is_missing_true = rnd(2);
    /* on a grid value, or just off one (not a float) */
    n->threshold = grid(rnd(17)) + (rnd(2) ? 0.0 : (rnd(2) ? 1e-12 : -1e-12));
    if (rnd(4) == 0)
        n->threshold = (double)(float)grid(rnd(17));
    if (n->cmp == TREE_CMP_MEMBER) {
        n->cat_begin = (uint32_t)g->n_cats;
        n->n_cat = 1 + rnd(4);
        bool is_big = rnd(4) == 0;
        for (uint32_t i = 0; i < n->n_cat; i++)
            g->cats[g->n_cats++] = is_big ? (int64_t)rnd(5) - 2 + (rnd(2) ? 100000 : 0) : rnd(9);
    }
    int32_t t = gen_node(g, o, depth + 1, n_features);
    int32_t f = gen_node(g, o, depth + 1, n_features);
    n = &g->nodes[id];
    n->true_child = t;
    n->false_child = f;
    return id;
}

static void gen_model(gen *g, const gen_opts *o, size_t n_trees, size_t n_features)
{
    g->n_nodes = g->n_entries = g->n_cats = 0;
    for (size_t t = 0; t < n_trees; t++)
        g->roots[t] = gen_node(g, o, 0, n_features);
    for (size_t k = 0; k < o->n_targets; k++)
        g->base[k] = (double)rnd(100) / 50.0 - 1.0;
    g->ir = (tree_ir){
        .n_features = n_features,
        .n_targets = o->n_targets,
        .nodes = g->nodes,
        .n_nodes = g->n_nodes,
        .roots = g->roots,
        .n_trees = n_trees,
        .categories = g->cats,
        .n_categories = g->n_cats,
        .leaf_targets = g->targets,
        .leaf_weights = g->weights,
        .n_leaf_entries = g->n_entries,
        .agg = TREE_AGG_SUM,
        .base_values = g->base,
        .post = TREE_POST_NONE,
    };
}

/* --- the reference: the IR's meaning, read directly ----------------------- */

static bool ref_test(const tree_ir *ir, const tree_ir_node *n, double x)
{
    if (isnan(x)) {
        if (n->missing != TREE_MISSING_NONE)
            return n->is_missing_true;
        x = 0.0;
    }
    if (n->missing == TREE_MISSING_ZERO && fabs(x) <= (double)1e-35f)
        return n->is_missing_true;
    double t = n->threshold;
    switch (n->cmp) {
    case TREE_CMP_LEQ: return x <= t;
    case TREE_CMP_LT: return x < t;
    case TREE_CMP_GTE: return x >= t;
    case TREE_CMP_GT: return x > t;
    case TREE_CMP_EQ: return x == t;
    case TREE_CMP_NEQ: return x != t;
    case TREE_CMP_MEMBER:
        for (uint32_t i = 0; i < n->n_cat; i++)
            if ((double)ir->categories[n->cat_begin + i] == trunc(x))
                return true;
        return false;
    }
    return false;
}

static void ref_predict(const tree_ir *ir, const float *row, double *out)
{
    size_t nt = ir->n_targets;
    bool has[64] = { 0 };
    for (size_t k = 0; k < nt; k++)
        out[k] = 0.0;
    for (size_t t = 0; t < ir->n_trees; t++) {
        const tree_ir_node *n = &ir->nodes[ir->roots[t]];
        while (n->feature >= 0)
            n = &ir->nodes[ref_test(ir, n, row[n->feature]) ? n->true_child : n->false_child];
        for (uint32_t i = 0; i < n->n_leaf; i++) {
            uint32_t k = ir->leaf_targets[n->leaf_begin + i];
            double w = ir->leaf_weights[n->leaf_begin + i];
            if (ir->agg == TREE_AGG_MIN)
                out[k] = has[k] && out[k] < w ? out[k] : w;
            else if (ir->agg == TREE_AGG_MAX)
                out[k] = has[k] && out[k] > w ? out[k] : w;
            else
                out[k] += w;
            has[k] = true;
        }
    }
    for (size_t k = 0; k < nt; k++) {
        if (ir->agg == TREE_AGG_AVERAGE)
            out[k] /= (double)ir->n_trees;
        out[k] += ir->base_values ? ir->base_values[k] : 0.0;
    }
    if (ir->post == TREE_POST_LOGISTIC)
        for (size_t k = 0; k < nt; k++)
            out[k] = 1.0 / (1.0 + exp(-out[k]));
    if (ir->post == TREE_POST_SOFTMAX) {
        double mx = out[0], sum = 0.0;
        for (size_t k = 0; k < nt; k++)
            mx = out[k] > mx ? out[k] : mx;
        for (size_t k = 0; k < nt; k++)
            sum += out[k] = exp(out[k] - mx);
        for (size_t k = 0; k < nt; k++)
            out[k] /= sum;
    }
}

/* Rows over the grid, with NaN in some when asked. */
static float *make_rows(size_t n_rows, size_t n_features, bool with_nan)
{
    float *x = malloc(n_rows * n_features * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n_rows * n_features; i++) {
        x[i] = (float)grid(rnd(17));
        if (rnd(3) == 0)
            x[i] = nextafterf(x[i], rnd(2) ? INFINITY : -INFINITY);
        if (with_nan && rnd(13) == 0)
            x[i] = NAN;
    }
    return x;
}

static void check_against_ref(gen *g, size_t n_rows, bool with_nan)
{
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    tree_model *m = NULL;
    if (tree_compile(&g->ir, &arena, &m, &err) != ST_OK)
        fail_msg("compile: %s", err.msg);
    size_t nf = g->ir.n_features, nt = g->ir.n_targets;
    float *x = make_rows(n_rows, nf, with_nan);
    float *got = malloc(n_rows * nt * sizeof *got);
    float *got_pool = malloc(n_rows * nt * sizeof *got);
    assert_non_null(got);
    assert_non_null(got_pool);
    tree_predict_range(m, x, nf, got, 0, n_rows, false);
    if (tree_avx512_ok()) {
        tree_predict_range(m, x, nf, got_pool, 0, n_rows, true);
        assert_memory_equal(got, got_pool, n_rows * nt * sizeof *got);
    }
    for (size_t r = 0; r < n_rows; r++) {
        double want[64];
        ref_predict(&g->ir, x + r * nf, want);
        for (size_t k = 0; k < nt; k++)
            if (fabs(got[r * nt + k] - want[k]) > 1e-5 * (1.0 + fabs(want[k])))
                fail_msg("row %zu target %zu: got %.9g, want %.9g", r, k, got[r * nt + k], want[k]);
    }
    /* one row at a time (trees walked side by side) */
    for (size_t r = 0; r < n_rows; r++)
        tree_predict_range(m, x, nf, got_pool, r, r + 1, false);
    assert_memory_equal(got, got_pool, n_rows * nt * sizeof *got);
    /* every walk a tree may take gives the same bits: complete trees
     * walked as node arrays, node arrays step by step */
    for (int w = TREE_WALK_FIXED; w <= TREE_WALK_DEEP; w++) {
        uint8_t saved[64];
        memcpy(saved, m->walk, m->n_trees);
        for (size_t t = 0; t < m->n_trees; t++)
            if (m->walk[t] < w)
                m->walk[t] = (uint8_t)w;
        tree_predict_range(m, x, nf, got_pool, 0, n_rows, false);
        assert_memory_equal(got, got_pool, n_rows * nt * sizeof *got);
        memcpy(m->walk, saved, m->n_trees);
    }
    /* the public entry, with and without a pool, gives the same bits */
    st_pool *pool = NULL;
    assert_int_equal(st_pool_create(2, &pool, NULL), ST_OK);
    tree_predict(m, x, n_rows, nf, got_pool, pool);
    assert_memory_equal(got, got_pool, n_rows * nt * sizeof *got);
    tree_predict(m, x, n_rows, nf, got_pool, NULL);
    assert_memory_equal(got, got_pool, n_rows * nt * sizeof *got);
    st_pool_destroy(pool);
    free(x);
    free(got);
    free(got_pool);
    st_arena_free(&arena);
}

static gen G;

static void test_fast_trees(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        gen_opts o = { .n_targets = 1 + rnd(3), .max_depth = 1 + rnd(8) };
        gen_model(&G, &o, 1 + rnd(20), 1 + rnd(6));
        G.ir.agg = round % 2 ? TREE_AGG_AVERAGE : TREE_AGG_SUM;
        check_against_ref(&G, 203, round % 3 == 0);
    }
}

static void test_general_trees(void **state)
{
    (void)state;
    static const tree_agg aggs[] = { TREE_AGG_SUM, TREE_AGG_AVERAGE, TREE_AGG_MIN, TREE_AGG_MAX };
    static const tree_post posts[] = { TREE_POST_NONE, TREE_POST_LOGISTIC, TREE_POST_SOFTMAX };
    for (int round = 0; round < 40; round++) {
        gen_opts o = { .is_general = true, .n_targets = 1 + rnd(4), .max_depth = 1 + rnd(7) };
        gen_model(&G, &o, 1 + rnd(12), 1 + rnd(5));
        G.ir.agg = aggs[round % 4];
        G.ir.post = posts[(round / 4) % 3];
        check_against_ref(&G, 97, round % 2 == 0);
    }
}

static void test_deep_tree(void **state)
{
    (void)state;
    gen_opts o = { .n_targets = 2, .max_depth = 40 };
    gen_model(&G, &o, 3, 4);
    check_against_ref(&G, 64, true);
    check_against_ref(&G, 64, false);
}

/* x <= t for double t is decided exactly for floats next to t. */
static void test_threshold_narrowing(void **state)
{
    (void)state;
    static const double ts[] = { 0.1, -0.1, 1.0, 1e-40, 3.4e38, -3.5e38, 1e300, -1e300, 0.0 };
    static const tree_cmp cmps[] = { TREE_CMP_LEQ, TREE_CMP_LT, TREE_CMP_GTE, TREE_CMP_GT };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        for (size_t c = 0; c < 4; c++) {
            tree_ir_node nodes[3] = {
                { .feature = 0, .cmp = cmps[c], .threshold = ts[i], .true_child = 1, .false_child = 2 },
                { .feature = -1, .leaf_begin = 0, .n_leaf = 1 },
                { .feature = -1, .leaf_begin = 1, .n_leaf = 1 },
            };
            int32_t root = 0;
            uint32_t targets[2] = { 0, 0 };
            double weights[2] = { 1.0, 0.0 };
            tree_ir ir = { .n_features = 1, .n_targets = 1, .nodes = nodes, .n_nodes = 3,
                           .roots = &root, .n_trees = 1, .leaf_targets = targets,
                           .leaf_weights = weights, .n_leaf_entries = 2 };
            st_arena arena;
            st_arena_init(&arena, 0);
            tree_model *m;
            assert_int_equal(tree_compile(&ir, &arena, &m, NULL), ST_OK);
            float f = (float)fmax(fmin(ts[i], 3.4e38), -3.4e38);
            float xs[7] = { f, nextafterf(f, INFINITY), nextafterf(f, -INFINITY), INFINITY, -INFINITY,
                            0.0f, -0.0f };
            for (size_t k = 0; k < 7; k++) {
                float out;
                tree_predict(m, &xs[k], 1, 1, &out, NULL);
                bool want = ref_test(&ir, &nodes[0], xs[k]);
                if (out != (want ? 1.0f : 0.0f))
                    fail_msg("cmp %zu t %.17g x %.9g: got %g", c, ts[i], xs[k], out);
            }
            st_arena_free(&arena);
        }
    }
}

static void test_post_transforms(void **state)
{
    (void)state;
    double s[3] = { 0.0, 1.0, 2.0 };
    tree_post_transform(TREE_POST_SOFTMAX_ZERO, s, 3);
    assert_true(s[0] == 0.0);
    assert_true(fabs(s[1] - 1.0 / (1.0 + exp(1.0))) < 1e-12);
    double p[3] = { 0.5, 0.975, 0.025 };
    tree_post_transform(TREE_POST_PROBIT, p, 3);
    assert_true(fabs(p[0]) < 1e-12);
    assert_true(fabs(p[1] - 1.959963984540054) < 1e-9);
    assert_true(fabs(p[2] + 1.959963984540054) < 1e-9);
    double e[1] = { 1.0 };
    tree_post_transform(TREE_POST_EXP, e, 1);
    assert_true(fabs(e[0] - exp(1.0)) < 1e-15);
}

/* --- corrupted IRs -------------------------------------------------------- */

typedef struct small {
    tree_ir_node nodes[5];
    int32_t roots[2];
    uint32_t targets[3];
    double weights[3];
    int64_t cats[2];
    tree_ir ir;
} small;

/* One tree: node 0 (x0 <= 0.5) -> leaf 1, or node 2 (x1 in {3, 7}) ->
 * leaf 3 or leaf 4.  Each test breaks one thing. */
static void small_init(small *s)
{
    memset(s, 0, sizeof *s);
    s->nodes[0] = (tree_ir_node){ .feature = 0, .cmp = TREE_CMP_LEQ, .threshold = 0.5, .true_child = 1,
                                  .false_child = 2 };
    s->nodes[1] = (tree_ir_node){ .feature = -1, .leaf_begin = 0, .n_leaf = 1 };
    s->nodes[2] = (tree_ir_node){ .feature = 1, .cmp = TREE_CMP_MEMBER, .cat_begin = 0, .n_cat = 2,
                                  .true_child = 3, .false_child = 4 };
    s->nodes[3] = (tree_ir_node){ .feature = -1, .leaf_begin = 1, .n_leaf = 1 };
    s->nodes[4] = (tree_ir_node){ .feature = -1, .leaf_begin = 2, .n_leaf = 1 };
    s->targets[0] = 0, s->targets[1] = 1, s->targets[2] = 0;
    s->weights[0] = 1, s->weights[1] = 2, s->weights[2] = 3;
    s->cats[0] = 3, s->cats[1] = 7;
    s->roots[0] = 0;
    s->ir = (tree_ir){ .n_features = 2, .n_targets = 2, .nodes = s->nodes, .n_nodes = 5,
                       .roots = s->roots, .n_trees = 1, .categories = s->cats, .n_categories = 2,
                       .leaf_targets = s->targets, .leaf_weights = s->weights,
                       .n_leaf_entries = 3 };
}

static void expect_refused(const small *s, const char *needle)
{
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    tree_model *m = NULL;
    st_status st = tree_compile(&s->ir, &arena, &m, &err);
    if (st != ST_ECORRUPT || !strstr(err.msg, needle))
        fail_msg("want ECORRUPT with \"%s\", got %s: %s", needle, st_status_name(st), err.msg);
    st_arena_free(&arena);
}

static void test_corrupt_irs(void **state)
{
    (void)state;
    small s;
    small_init(&s);
    {
        st_arena arena;
        st_arena_init(&arena, 0);
        tree_model *m;
        assert_int_equal(tree_compile(&s.ir, &arena, &m, NULL), ST_OK);
        float x[2] = { 1.0f, 7.9f }, out[2];
        tree_predict(m, x, 1, 2, out, NULL);
        assert_true(out[0] == 0.0f && out[1] == 2.0f);
        st_arena_free(&arena);
    }
    small_init(&s), s.nodes[0].true_child = 5;
    expect_refused(&s, "tree 0: node 0: true child 5 out of range");
    small_init(&s), s.nodes[2].false_child = -3;
    expect_refused(&s, "tree 0: node 2: false child -3 out of range");
    small_init(&s), s.nodes[2].false_child = 0;
    expect_refused(&s, "tree 0: node 2: child 0 is reached twice");
    small_init(&s), s.nodes[2].false_child = 3;
    expect_refused(&s, "tree 0: node 2: child 3 is reached twice");
    small_init(&s), s.nodes[2].feature = 2;
    expect_refused(&s, "tree 0: node 2: feature 2 out of range");
    small_init(&s), s.nodes[2].feature = -7;
    expect_refused(&s, "tree 0: node 2: feature -7 out of range");
    small_init(&s), s.nodes[0].threshold = NAN;
    expect_refused(&s, "tree 0: node 0: LEQ threshold nan is not finite");
    small_init(&s), s.nodes[0].threshold = -INFINITY;
    expect_refused(&s, "not finite");
    small_init(&s), s.targets[1] = 2;
    expect_refused(&s, "tree 0: node 3: leaf target 2 out of range");
    small_init(&s), s.weights[2] = INFINITY;
    expect_refused(&s, "tree 0: node 4: leaf weight inf");
    small_init(&s), s.nodes[4].leaf_begin = 2, s.nodes[4].n_leaf = 2;
    expect_refused(&s, "tree 0: node 4: leaf entries [2, +2) run past");
    small_init(&s), s.nodes[4].leaf_begin = UINT32_MAX, s.nodes[4].n_leaf = UINT32_MAX;
    expect_refused(&s, "run past");
    small_init(&s), s.nodes[2].cat_begin = 1, s.nodes[2].n_cat = 2;
    expect_refused(&s, "tree 0: node 2: categories [1, +2) run past");
    small_init(&s), s.nodes[2].cmp = (tree_cmp)99;
    expect_refused(&s, "unknown comparison");
    small_init(&s), s.nodes[2].missing = (tree_missing)9;
    expect_refused(&s, "unknown missing-value rule");
    small_init(&s), s.roots[0] = 9;
    expect_refused(&s, "tree 0: root 9 out of range");
    small_init(&s), s.ir.n_trees = 2, s.roots[1] = 2;
    expect_refused(&s, "tree 1: root 2 is already part of another tree");
    small_init(&s), s.ir.n_trees = 2, s.roots[0] = 2, s.roots[1] = 0;
    expect_refused(&s, "tree 1: node 0: child 2 is reached twice");
    small_init(&s), s.ir.n_targets = 0;
    expect_refused(&s, "0 targets");
    small_init(&s), s.ir.leaf_weights = NULL;
    expect_refused(&s, "missing");
    small_init(&s), s.ir.agg = (tree_agg)7;
    expect_refused(&s, "unknown aggregation");
    small_init(&s), s.ir.post = (tree_post)7;
    expect_refused(&s, "unknown post transform");
    small_init(&s), s.ir.n_trees = 6;
    expect_refused(&s, "6 trees but only 5 nodes");
    small_init(&s), s.ir.n_nodes = (size_t)1 << 40;
    expect_refused(&s, "too many");
    double bad_base[2] = { 0.0, NAN };
    small_init(&s), s.ir.base_values = bad_base;
    expect_refused(&s, "base value 1");
    /* a self-loop */
    small_init(&s), s.nodes[2].true_child = 2;
    expect_refused(&s, "tree 0: node 2: child 2 is reached twice");
}

/* Random bit flips in the IR's nodes: compile either refuses or gives a
 * model that predicts without reading out of bounds (ASan watches). */
static void test_corrupt_fuzz(void **state)
{
    (void)state;
    for (int round = 0; round < 300; round++) {
        gen_opts o = { .is_general = true, .n_targets = 2, .max_depth = 4 };
        gen_model(&G, &o, 3, 3);
        for (int k = 0; k < 3; k++) {
            uint8_t *bytes = (uint8_t *)&G.nodes[rnd((uint32_t)G.n_nodes)];
            size_t off = rnd(sizeof(tree_ir_node));
            if (off >= offsetof(tree_ir_node, threshold) &&
                off < offsetof(tree_ir_node, threshold) + sizeof(double))
                continue; /* any threshold bits are a valid double or refused */
            if (off == offsetof(tree_ir_node, is_missing_true))
                continue; /* a bool holds 0 or 1 */
            bytes[off] ^= (uint8_t)(1u << rnd(8));
        }
        st_arena arena;
        st_arena_init(&arena, 0);
        tree_model *m;
        st_error err;
        if (tree_compile(&G.ir, &arena, &m, &err) == ST_OK) {
            float x[3 * 20];
            for (size_t i = 0; i < 60; i++)
                x[i] = (float)grid(rnd(17));
            float out[2 * 20];
            tree_predict(m, x, 20, 3, out, NULL);
        } else {
            assert_int_equal(err.code, ST_ECORRUPT);
            assert_non_null(strstr(err.msg, "tree"));
        }
        st_arena_free(&arena);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_trees),
        cmocka_unit_test(test_general_trees),
        cmocka_unit_test(test_deep_tree),
        cmocka_unit_test(test_threshold_narrowing),
        cmocka_unit_test(test_post_transforms),
        cmocka_unit_test(test_corrupt_irs),
        cmocka_unit_test(test_corrupt_fuzz),
    };
    return cmocka_run_group_tests_name("tree", tests, NULL, NULL);
}
