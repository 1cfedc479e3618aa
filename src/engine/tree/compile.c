/* compile.c - checks a tree_ir and lays it out as tree_int.h describes.
 *
 * Each tree is walked twice from its root with an explicit stack: the
 * first walk checks every reachable node and counts what the layout
 * needs, the second writes the pre-order node array.  Thresholds of the
 * ordered tests are narrowed to float so that a float feature compared
 * with the float threshold gives exactly the answer of the double test. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/tree/tree_int.h"

/* Categories below this go into a bitset (8 KiB at most per node). */
#define TREE_BITSET_LIMIT 65536
/* Scores per row the walkers keep on their stack for a block. */
#define TREE_MAX_TARGETS 4096
/* Trees at most this deep are walked a fixed number of steps. */
#define TREE_FIXED_DEPTH 16
/* Trees at most this deep are laid out as complete trees (up to 12 KiB
 * each) when at least an eighth full; up to TREE_DENSE_DEPTH, always. */
#define TREE_PERFECT_DEPTH 10
#define TREE_DENSE_DEPTH 8

/* The largest float <= t, for finite t. */
static float float_at_or_below(double t)
{
    if (t >= (double)FLT_MAX)
        return FLT_MAX;
    if (t < -(double)FLT_MAX)
        return -INFINITY;
    float f = (float)t;
    if ((double)f > t)
        f = nextafterf(f, -INFINITY);
    return f;
}

/* The largest float < t, for finite t: x < t iff x <= it. */
static float float_below(double t)
{
    float f = float_at_or_below(t);
    if ((double)f == t)
        f = nextafterf(f, -INFINITY);
    return f;
}

static bool is_fast_node(const tree_ir_node *n)
{
    return n->missing == TREE_MISSING_NAN &&
           (n->cmp == TREE_CMP_LEQ || n->cmp == TREE_CMP_LT || n->cmp == TREE_CMP_GTE ||
            n->cmp == TREE_CMP_GT);
}

typedef struct stack_item {
    int32_t id;         /* ir node */
    uint32_t parent;    /* compiled index whose `right` this fills, or UINT32_MAX */
    uint32_t depth;
} stack_item;

typedef struct compiler {
    const tree_ir *ir;
    tree_model *m;
    st_arena *arena;
    st_error *err;
    uint8_t *seen;          /* per ir node */
    stack_item *stack;      /* n_nodes + 1 */
    /* counted by the checking walk */
    size_t n_reached;
    size_t n_entries;
    size_t n_gnodes;
    size_t n_bitset_words;
    size_t n_sorted_cats;
} compiler;

static const char *cmp_name(tree_cmp c)
{
    static const char *const names[] = { "LEQ", "LT", "GTE", "GT", "EQ", "NEQ", "MEMBER" };
    return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "?";
}

/* Checks one reachable node; counts what its layout needs. */
static st_status check_node(compiler *c, size_t t, int32_t id)
{
    const tree_ir *ir = c->ir;
    const tree_ir_node *n = &ir->nodes[id];
    if (n->feature == -1) {
        size_t end;
        if (st_add_overflow(n->leaf_begin, n->n_leaf, &end) || end > ir->n_leaf_entries)
            return st_fail(c->err, ST_ECORRUPT,
                           "tree %zu: node %d: leaf entries [%u, +%u) run past the %zu entries", t, id,
                           n->leaf_begin, n->n_leaf, ir->n_leaf_entries);
        for (size_t i = n->leaf_begin; i < end; i++) {
            if (ir->leaf_targets[i] >= ir->n_targets)
                return st_fail(c->err, ST_ECORRUPT,
                               "tree %zu: node %d: leaf target %u out of range (%zu targets)", t, id,
                               ir->leaf_targets[i], ir->n_targets);
            if (!isfinite(ir->leaf_weights[i]))
                return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: leaf weight %g is not finite",
                               t, id, ir->leaf_weights[i]);
        }
        c->n_entries += n->n_leaf ? n->n_leaf : 1;
        return ST_OK;
    }
    if (n->feature < 0 || (size_t)n->feature >= ir->n_features)
        return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: feature %d out of range (%zu features)",
                       t, id, n->feature, ir->n_features);
    if ((unsigned)n->cmp > TREE_CMP_MEMBER)
        return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: unknown comparison %d", t, id, (int)n->cmp);
    if ((unsigned)n->missing > TREE_MISSING_ZERO)
        return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: unknown missing-value rule %d", t, id,
                       (int)n->missing);
    if (n->cmp == TREE_CMP_MEMBER) {
        size_t end;
        if (st_add_overflow(n->cat_begin, n->n_cat, &end) || end > ir->n_categories)
            return st_fail(c->err, ST_ECORRUPT,
                           "tree %zu: node %d: categories [%u, +%u) run past the %zu categories", t, id,
                           n->cat_begin, n->n_cat, ir->n_categories);
        int64_t max_cat = -1;
        bool is_small = true;
        for (size_t i = n->cat_begin; i < end; i++) {
            int64_t v = ir->categories[i];
            if (v < 0 || v >= TREE_BITSET_LIMIT)
                is_small = false;
            else if (v > max_cat)
                max_cat = v;
        }
        if (is_small)
            c->n_bitset_words += (size_t)(max_cat + 64) / 64;
        else
            c->n_sorted_cats += n->n_cat;
    } else if (!isfinite(n->threshold)) {
        return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: %s threshold %g is not finite", t, id,
                       cmp_name(n->cmp), n->threshold);
    }
    if (!is_fast_node(n))
        c->n_gnodes++;
    for (int side = 0; side < 2; side++) {
        int32_t child = side ? n->false_child : n->true_child;
        if (child < 0 || (size_t)child >= ir->n_nodes)
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: node %d: %s child %d out of range (%zu nodes)",
                           t, id, side ? "false" : "true", child, ir->n_nodes);
    }
    return ST_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Writes the gnode of a node that the fast test cannot express. */
static void emit_gnode(compiler *c, const tree_ir_node *n, tree_gnode *g, uint64_t **words, int64_t **cats)
{
    const tree_ir *ir = c->ir;
    memset(g, 0, sizeof *g);
    g->threshold = n->threshold;
    g->cmp = (uint8_t)n->cmp;
    g->missing = (uint8_t)n->missing;
    g->is_missing_true = n->is_missing_true;
    if (n->cmp != TREE_CMP_MEMBER)
        return;
    const int64_t *v = ir->categories + n->cat_begin;
    int64_t max_cat = -1;
    bool is_small = true;
    for (uint32_t i = 0; i < n->n_cat; i++) {
        if (v[i] < 0 || v[i] >= TREE_BITSET_LIMIT)
            is_small = false;
        else if (v[i] > max_cat)
            max_cat = v[i];
    }
    if (is_small) {
        uint32_t n_words = (uint32_t)(max_cat + 64) / 64;
        memset(*words, 0, n_words * sizeof **words);
        for (uint32_t i = 0; i < n->n_cat; i++)
            (*words)[v[i] / 64] |= 1ull << (v[i] % 64);
        g->bits = *words;
        g->n_bits = n_words * 64;
        *words += n_words;
    } else {
        memcpy(*cats, v, n->n_cat * sizeof *v);
        qsort(*cats, n->n_cat, sizeof **cats, cmp_i64);
        g->cats = *cats;
        g->n_cats = n->n_cat;
        *cats += n->n_cat;
    }
}

typedef struct emit_cursor {
    size_t node;
    size_t entry;
    size_t gnode;
    uint64_t *words;
    int64_t *cats;
} emit_cursor;

/* Lays out one checked node at compiled index `at`; returns the ir ids
 * of its children, le child first (-1 for a leaf). */
static void emit_node(compiler *c, int32_t id, uint32_t at, emit_cursor *cur, int32_t kids[2])
{
    const tree_ir *ir = c->ir;
    tree_model *m = c->m;
    const tree_ir_node *n = &ir->nodes[id];
    tree_node *out = &m->nodes[at];
    if (n->feature == -1) {
        out->thr = NAN;
        out->feature = 0;
        out->right = at;
        out->aux = (uint32_t)cur->entry;
        if (n->n_leaf == 0) {
            m->entries[cur->entry++] = (tree_entry){ 0.0, UINT32_MAX, 1 };
            m->is_single_entry = false;
        }
        for (uint32_t i = 0; i < n->n_leaf; i++)
            m->entries[cur->entry++] = (tree_entry){ ir->leaf_weights[n->leaf_begin + i],
                                                     ir->leaf_targets[n->leaf_begin + i],
                                                     i + 1 == n->n_leaf };
        if (n->n_leaf > 1)
            m->is_single_entry = false;
        kids[0] = kids[1] = -1;
        return;
    }
    out->feature = (uint32_t)n->feature;
    out->right = UINT32_MAX; /* filled when the other child is laid out */
    bool is_le_true = true;
    if (is_fast_node(n)) {
        switch (n->cmp) {
        case TREE_CMP_LEQ: out->thr = float_at_or_below(n->threshold); break;
        case TREE_CMP_LT: out->thr = float_below(n->threshold); break;
        case TREE_CMP_GT: /* x > t  iff  !(x <= t) */
            out->thr = float_at_or_below(n->threshold);
            is_le_true = false;
            break;
        default: /* GTE: x >= t  iff  !(x < t) */
            out->thr = float_below(n->threshold);
            is_le_true = false;
            break;
        }
        out->aux = n->is_missing_true == is_le_true ? TREE_AUX_NAN_LE : 0;
    } else {
        out->thr = 0.0f;
        out->aux = TREE_AUX_GENERAL | (uint32_t)(cur->gnode << 2);
        emit_gnode(c, n, &m->gnodes[cur->gnode++], &cur->words, &cur->cats);
    }
    kids[0] = is_le_true ? n->true_child : n->false_child;
    kids[1] = is_le_true ? n->false_child : n->true_child;
}

/* Walks tree t from its root: checks (emit NULL) or lays out. */
static st_status walk_tree(compiler *c, size_t t, emit_cursor *emit)
{
    const tree_ir *ir = c->ir;
    int32_t root = ir->roots[t];
    if (root < 0 || (size_t)root >= ir->n_nodes)
        return st_fail(c->err, ST_ECORRUPT, "tree %zu: root %d out of range (%zu nodes)", t, root,
                       ir->n_nodes);
    size_t top = 0;
    uint32_t max_depth = 0;
    bool is_general = false;
    c->stack[top++] = (stack_item){ root, UINT32_MAX, 0 };
    if (!emit) {
        if (c->seen[root])
            return st_fail(c->err, ST_ECORRUPT, "tree %zu: root %d is already part of another tree", t,
                           root);
        c->seen[root] = 1;
    } else {
        c->m->roots[t] = (uint32_t)emit->node;
    }
    while (top > 0) {
        stack_item it = c->stack[--top];
        const tree_ir_node *n = &ir->nodes[it.id];
        if (it.depth > max_depth)
            max_depth = it.depth;
        int32_t kids[2];
        if (!emit) {
            st_status s = check_node(c, t, it.id);
            if (s != ST_OK)
                return s;
            c->n_reached++;
            if (n->feature == -1)
                continue;
            kids[0] = n->true_child;
            kids[1] = n->false_child;
            for (int k = 0; k < 2; k++) {
                if (c->seen[kids[k]])
                    return st_fail(c->err, ST_ECORRUPT,
                                   "tree %zu: node %d: child %d is reached twice (a cycle or a shared subtree)",
                                   t, it.id, kids[k]);
                c->seen[kids[k]] = 1;
                c->stack[top++] = (stack_item){ kids[k], UINT32_MAX, it.depth + 1 };
            }
            continue;
        }
        uint32_t at = (uint32_t)emit->node++;
        if (it.parent != UINT32_MAX)
            c->m->nodes[it.parent].right = at;
        emit_node(c, it.id, at, emit, kids);
        if (kids[0] < 0)
            continue;
        if (!is_fast_node(n))
            is_general = true;
        /* the other child first, so the le child is popped next and lands at at + 1 */
        c->stack[top++] = (stack_item){ kids[1], at, it.depth + 1 };
        c->stack[top++] = (stack_item){ kids[0], UINT32_MAX, it.depth + 1 };
    }
    if (emit) {
        c->m->depth[t] = max_depth > UINT16_MAX ? UINT16_MAX : (uint16_t)max_depth;
        c->m->walk[t] = is_general ? TREE_WALK_GENERAL
                        : max_depth <= TREE_FIXED_DEPTH ? TREE_WALK_FIXED
                                                        : TREE_WALK_DEEP;
    }
    return ST_OK;
}

static st_status check_header(const tree_ir *ir, st_error *err)
{
    if (!ir)
        return st_fail(err, ST_EINVAL, "tree_compile: no model given");
    if (ir->n_targets == 0 || ir->n_targets > TREE_MAX_TARGETS)
        return st_fail(err, ST_ECORRUPT, "tree ensemble: %zu targets (supported: 1 to %d)", ir->n_targets,
                       TREE_MAX_TARGETS);
    if (ir->n_nodes >= INT32_MAX || ir->n_features > UINT32_MAX)
        return st_fail(err, ST_ECORRUPT, "tree ensemble: %zu nodes, %zu features is too many",
                       ir->n_nodes, ir->n_features);
    if (ir->n_trees > ir->n_nodes)
        return st_fail(err, ST_ECORRUPT, "tree ensemble: %zu trees but only %zu nodes", ir->n_trees,
                       ir->n_nodes);
    if ((ir->n_nodes && !ir->nodes) || (ir->n_trees && !ir->roots) ||
        (ir->n_categories && !ir->categories) ||
        (ir->n_leaf_entries && (!ir->leaf_targets || !ir->leaf_weights)))
        return st_fail(err, ST_ECORRUPT, "tree ensemble: an array with a non-zero length is missing");
    if ((unsigned)ir->agg > TREE_AGG_MAX)
        return st_fail(err, ST_ECORRUPT, "tree ensemble: unknown aggregation %d", (int)ir->agg);
    if ((unsigned)ir->post > TREE_POST_EXP)
        return st_fail(err, ST_ECORRUPT, "tree ensemble: unknown post transform %d", (int)ir->post);
    if (ir->base_values)
        for (size_t i = 0; i < ir->n_targets; i++)
            if (!isfinite(ir->base_values[i]))
                return st_fail(err, ST_ECORRUPT, "tree ensemble: base value %zu (%g) is not finite", i,
                               ir->base_values[i]);
    return ST_OK;
}

/* n elements of `size` bytes from the arena (at least one byte). */
static void *arena_array(st_arena *a, size_t n, size_t size)
{
    return st_arena_calloc(a, n ? n : 1, size, 64);
}

static st_status build_perfect(tree_model *m, st_arena *arena);

st_status tree_compile(const tree_ir *ir, st_arena *arena, tree_model **out, st_error *err)
{
    st_status s = check_header(ir, err);
    if (s != ST_OK)
        return s;
    compiler c = { .ir = ir, .arena = arena, .err = err };
    c.seen = st_calloc(ir->n_nodes + 1, 1);
    c.stack = st_calloc(ir->n_nodes + 1, sizeof *c.stack);
    if (!c.seen || !c.stack) {
        s = st_fail(err, ST_ENOMEM, "tree ensemble: no memory for checking %zu nodes", ir->n_nodes);
        goto done;
    }
    for (size_t t = 0; t < ir->n_trees; t++)
        if ((s = walk_tree(&c, t, NULL)) != ST_OK)
            goto done;

    tree_model *m = st_arena_calloc(arena, 1, sizeof *m, 64);
    if (!m)
        goto nomem;
    c.m = m;
    m->n_features = ir->n_features;
    m->n_targets = ir->n_targets;
    m->n_trees = ir->n_trees;
    m->n_nodes = c.n_reached;
    m->n_entries = c.n_entries;
    m->n_gnodes = c.n_gnodes;
    m->agg = ir->agg;
    m->post = ir->post;
    m->is_single_entry = true;
    m->nodes = arena_array(arena, c.n_reached, sizeof *m->nodes);
    m->roots = arena_array(arena, ir->n_trees, sizeof *m->roots);
    m->depth = arena_array(arena, ir->n_trees, sizeof *m->depth);
    m->walk = arena_array(arena, ir->n_trees, sizeof *m->walk);
    m->entries = arena_array(arena, c.n_entries, sizeof *m->entries);
    m->gnodes = arena_array(arena, c.n_gnodes, sizeof *m->gnodes);
    m->base_values = arena_array(arena, ir->n_targets, sizeof *m->base_values);
    emit_cursor cur = { 0 };
    cur.words = arena_array(arena, c.n_bitset_words, sizeof *cur.words);
    cur.cats = arena_array(arena, c.n_sorted_cats, sizeof *cur.cats);
    if (!m->nodes || !m->roots || !m->depth || !m->walk || !m->entries || !m->gnodes ||
        !m->base_values || !cur.words || !cur.cats)
        goto nomem;
    if (ir->base_values)
        memcpy(m->base_values, ir->base_values, ir->n_targets * sizeof *m->base_values);
    for (size_t t = 0; t < ir->n_trees; t++)
        walk_tree(&c, t, &cur); /* checked above: cannot fail */
    if (build_perfect(m, arena) != ST_OK)
        goto nomem;
    *out = m;
    s = ST_OK;
    goto done;
nomem:
    s = st_fail(err, ST_ENOMEM, "tree ensemble: out of memory compiling %zu nodes", ir->n_nodes);
done:
    st_free(c.seen);
    st_free(c.stack);
    return s;
}

/* Fills complete-tree slot `slot` (level `level` of depth) from compiled
 * node i; a leaf above the last level pads its subtree. */
static void fill_perfect(const tree_model *m, uint32_t i, uint32_t slot, unsigned level, unsigned depth,
                         tree_test *tests, uint32_t *leaf)
{
    const tree_node *nd = &m->nodes[i];
    bool is_leaf = nd->right == i;
    if (level == depth) {
        leaf[slot - ((1u << depth) - 1)] = nd->aux;
        return;
    }
    tests[slot].thr = is_leaf ? INFINITY : nd->thr;
    tests[slot].feature = is_leaf ? 0 : nd->feature;
    fill_perfect(m, is_leaf ? i : i + 1, 2 * slot + 1, level + 1, depth, tests, leaf);
    fill_perfect(m, is_leaf ? i : nd->right, 2 * slot + 2, level + 1, depth, tests, leaf);
}

/* Chooses the trees worth a complete layout and builds it. */
static st_status build_perfect(tree_model *m, st_arena *arena)
{
    size_t total = 0;
    for (size_t t = 0; t < m->n_trees; t++) {
        size_t n_real = (t + 1 < m->n_trees ? m->roots[t + 1] : m->n_nodes) - m->roots[t];
        unsigned d = m->depth[t];
        if (m->walk[t] != TREE_WALK_FIXED || d == 0 || d > TREE_PERFECT_DEPTH ||
            (d > TREE_DENSE_DEPTH && ((size_t)2 << d) > 8 * n_real))
            continue;
        m->walk[t] = TREE_WALK_PERFECT;
        total += (size_t)1 << d;
    }
    m->perfect_at = arena_array(arena, m->n_trees, sizeof *m->perfect_at);
    m->perfect_tests = arena_array(arena, total, sizeof *m->perfect_tests);
    m->perfect_leaf = arena_array(arena, total, sizeof *m->perfect_leaf);
    if (!m->perfect_at || !m->perfect_tests || !m->perfect_leaf || total >= UINT32_MAX)
        return ST_ENOMEM;
    size_t at = 0;
    for (size_t t = 0; t < m->n_trees; t++) {
        if (m->walk[t] != TREE_WALK_PERFECT)
            continue;
        m->perfect_at[t] = (uint32_t)at;
        fill_perfect(m, m->roots[t], 0, 0, m->depth[t], m->perfect_tests + at, m->perfect_leaf + at);
        at += (size_t)1 << m->depth[t];
    }
    return ST_OK;
}

size_t tree_n_features(const tree_model *m)
{
    return m->n_features;
}

size_t tree_n_targets(const tree_model *m)
{
    return m->n_targets;
}
