/* tree_int.h - the compiled form of a tree ensemble, shared by the
 * compiler (compile.c) and the walkers (predict.c).
 *
 * Nodes of all trees sit in one array, each tree in pre-order.  Every
 * interior node tests "x[feature] <= thr" (float, exact: see compile.c);
 * the "le" child is the next node, only the other child's index is
 * stored.  A leaf has thr NaN and right == its own index, so a walk that
 * keeps stepping stays on it: trees of small depth are walked a fixed
 * number of steps, branch-free, over a block of rows at once. */
#ifndef ST_TREE_INT_H
#define ST_TREE_INT_H

#include "engine/tree/tree.h"

/* aux of an interior node of a fast tree: NaN goes to the le child. */
#define TREE_AUX_NAN_LE 1u
/* aux of an interior node tested by gnodes[aux >> 2] instead. */
#define TREE_AUX_GENERAL 2u

typedef struct tree_node {
    float thr;          /* interior: narrowed threshold; leaf: NaN */
    uint32_t feature;   /* leaf: 0 (read, never used) */
    uint32_t right;     /* interior: the not-le child; leaf: itself */
    uint32_t aux;       /* leaf: first entry; fast interior: flags;
                           general interior: index into gnodes */
} tree_node;

/* A leaf's contribution: entries[aux ..] up to the one with is_last.  A
 * leaf that adds nothing has one entry with target UINT32_MAX. */
typedef struct tree_entry {
    double weight;
    uint32_t target;
    uint32_t is_last;
} tree_entry;

/* A test of a complete tree: threshold and feature on one cache line. */
typedef struct tree_test {
    float thr;
    uint32_t feature;
} tree_test;

/* An interior node of a general tree (any cmp, any missing rule). */
typedef struct tree_gnode {
    double threshold;
    uint8_t cmp;            /* tree_cmp */
    uint8_t missing;        /* tree_missing */
    uint8_t is_missing_true;
    const uint64_t *bits;   /* MEMBER: bitset of categories < n_bits */
    uint32_t n_bits;
    const int64_t *cats;    /* MEMBER without bitset: sorted categories */
    uint32_t n_cats;
} tree_gnode;

/* How a tree is walked. */
enum {
    TREE_WALK_PERFECT,  /* fast nodes only, laid out as a complete tree */
    TREE_WALK_FIXED,    /* fast nodes only, fixed number of steps */
    TREE_WALK_DEEP,     /* fast nodes only, too deep or lopsided for steps */
    TREE_WALK_GENERAL,  /* some node needs tree_gnode */
};

struct tree_model {
    size_t n_features;
    size_t n_targets;
    size_t n_trees;
    tree_node *nodes;
    size_t n_nodes;
    uint32_t *roots;        /* per tree */
    uint16_t *depth;        /* per tree: longest root-to-leaf path (edges) */
    uint8_t *walk;          /* per tree: TREE_WALK_* */
    tree_entry *entries;
    size_t n_entries;
    tree_gnode *gnodes;
    size_t n_gnodes;
    /* TREE_WALK_PERFECT trees of depth D: node i (0 = root) has children
     * 2i + 1 (le) and 2i + 2; leaves that end a path early are padded
     * with +inf thresholds (x <= +inf: left, for every number).  Tree t's
     * 2^D - 1 tests start at perfect_at[t] in perfect_tests, its 2^D leaf
     * entries at perfect_at[t] in perfect_leaf. */
    tree_test *perfect_tests;
    uint32_t *perfect_leaf;
    uint32_t *perfect_at;
    bool is_single_entry;   /* every leaf adds exactly one entry */
    tree_agg agg;
    tree_post post;
    double *base_values;    /* n_targets */
};

/* Rows walked together: by the scalar walks, by the AVX-512 walk. */
#define TREE_BLOCK 16
#define TREE_SIMD_BLOCK 64

/* Scores rows [begin, end); use_simd picks the AVX-512 walk for full
 * blocks of complete trees (only when tree_avx512_ok()). */
void tree_predict_range(const tree_model *m, const float *x, size_t row_stride, float *scores,
                        size_t begin, size_t end, bool use_simd);

/* AVX-512 walk of TREE_SIMD_BLOCK NaN-free rows through one complete tree:
 * their entry indexes (predict_avx.c).  Needs 32-bit row offsets. */
bool tree_avx512_ok(void);
void tree_walk_perfect_avx512(const tree_test *tests, const uint32_t *leaf, unsigned depth, const float *x,
                              size_t row_stride, uint32_t *entry);
/* The general test at a node: true when the row goes to true child. */
bool tree_gnode_test(const tree_gnode *g, float xf);

#endif
