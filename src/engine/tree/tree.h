/* tree.h - the one tree-ensemble engine behind ONNX-ML TreeEnsemble*,
 * XGBoost and LightGBM models.
 *
 * A front end (an ONNX-ML op's check, the XGBoost or LightGBM loader)
 * describes the ensemble as a tree_ir: plain arrays, node ids local to the
 * whole ensemble.  tree_compile() checks it (child ids, cycles, feature
 * ids, thresholds, lengths) and lays it out for speed: compact pre-order
 * node arrays, loops specialised per comparison and missing-value rule,
 * rows walked in blocks.  tree_predict() computes raw scores with the
 * aggregation, base values and post transform applied.
 *
 *     tree_ir ir = {...};                 // filled by the front end
 *     tree_model *m;
 *     if (tree_compile(&ir, arena, &m, &err) != ST_OK) ... // "tree 3: node 17: child 90 out of range"
 *     tree_predict(m, x, n_rows, row_stride, scores, pool);  // scores: n_rows x n_targets
 *
 * A compiled model is immutable and lives in the arena given to
 * tree_compile; any number of threads may predict with it at once. */
#ifndef ST_TREE_H
#define ST_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/pool.h"
#include "base/status.h"

/* The test at an interior node; when it holds, the row goes to
 * true_child.  x is the row's feature value, t the node's threshold. */
typedef enum tree_cmp {
    TREE_CMP_LEQ,    /* x <= t  (ONNX BRANCH_LEQ, LightGBM numerical) */
    TREE_CMP_LT,     /* x <  t  (ONNX BRANCH_LT, XGBoost numerical) */
    TREE_CMP_GTE,    /* x >= t */
    TREE_CMP_GT,     /* x >  t */
    TREE_CMP_EQ,     /* x == t */
    TREE_CMP_NEQ,    /* x != t */
    TREE_CMP_MEMBER, /* x, an integer category, is in the node's set
                        (x is truncated toward zero, as LightGBM and
                        XGBoost read categories) */
} tree_cmp;

/* What a NaN (or, for LightGBM's "zero" rule, a zero) feature does. */
typedef enum tree_missing {
    TREE_MISSING_NAN,   /* NaN goes to the default branch (ONNX, XGBoost) */
    TREE_MISSING_NONE,  /* NaN is read as 0.0, then compared (LightGBM "None") */
    TREE_MISSING_ZERO,  /* NaN and |x| <= 1e-35 go to the default branch
                           (LightGBM "Zero") */
} tree_missing;

typedef enum tree_agg {
    TREE_AGG_SUM,
    TREE_AGG_AVERAGE,  /* sum / number of trees */
    TREE_AGG_MIN,
    TREE_AGG_MAX,
} tree_agg;

/* Applied per row over its n_targets scores, after aggregation and
 * base values (ONNX-ML semantics for the first five). */
typedef enum tree_post {
    TREE_POST_NONE,
    TREE_POST_SOFTMAX,
    TREE_POST_LOGISTIC,      /* 1 / (1 + exp(-s)) per score */
    TREE_POST_SOFTMAX_ZERO,  /* softmax where exact zeros stay zero */
    TREE_POST_PROBIT,        /* sqrt(2) * erfinv(2s - 1) per score */
    TREE_POST_EXP,           /* exp(s) per score (XGBoost count:poisson) */
} tree_post;

/* One node.  A leaf has feature -1 and adds n_leaf (target, weight) pairs
 * from ir->leaf_targets / ir->leaf_weights starting at leaf_begin. */
typedef struct tree_ir_node {
    int32_t feature;          /* column of the row; -1 for a leaf */
    tree_cmp cmp;
    tree_missing missing;
    bool is_missing_true;     /* default branch: true_child when set */
    double threshold;         /* numerical tests */
    int32_t true_child;       /* node ids (indexes into ir->nodes) */
    int32_t false_child;
    uint32_t cat_begin;       /* TREE_CMP_MEMBER: categories[cat_begin..+n_cat) */
    uint32_t n_cat;
    uint32_t leaf_begin;      /* leaf: leaf_targets/leaf_weights[leaf_begin..+n_leaf) */
    uint32_t n_leaf;
} tree_ir_node;

typedef struct tree_ir {
    size_t n_features;        /* every feature id must be below it */
    size_t n_targets;         /* scores per row (targets or classes) */
    const tree_ir_node *nodes;
    size_t n_nodes;
    const int32_t *roots;     /* root node id of each tree */
    size_t n_trees;
    const int64_t *categories;   /* category values of MEMBER nodes */
    size_t n_categories;
    const uint32_t *leaf_targets; /* each < n_targets */
    const double *leaf_weights;
    size_t n_leaf_entries;
    tree_agg agg;
    const double *base_values;   /* n_targets values added after
                                    aggregation, or NULL for zeros */
    tree_post post;
} tree_ir;

typedef struct tree_model tree_model;

/* Checks ir and compiles it into arena.  Refuses, with the tree and node
 * named in err: child ids out of range, a node reached twice (cycles and
 * shared subtrees), feature ids >= n_features, non-finite thresholds,
 * leaf targets >= n_targets, ranges past the end of their arrays, and
 * sizes whose products overflow.  ST_ECORRUPT for a bad model, ST_ENOMEM. */
st_status tree_compile(const tree_ir *ir, st_arena *arena, tree_model **out, st_error *err);

size_t tree_n_features(const tree_model *m);
size_t tree_n_targets(const tree_model *m);

/* Scores n_rows rows: row r's features are x[r * row_stride ..
 * + n_features), and its n_targets scores go to scores[r * n_targets ..].
 * Sums accumulate in double; the result is rounded to float once.  pool
 * may be NULL (one thread). */
void tree_predict(const tree_model *m, const float *x, size_t n_rows, size_t row_stride,
                  float *scores, st_pool *pool);

/* Added by the engine (not part of the first contract): applies a post
 * transform to one row of n scores in place, as tree_predict does.  For
 * front ends that must see the raw scores first (a classifier's label is
 * the argmax before SOFTMAX_ZERO reorders zeros). */
void tree_post_transform(tree_post post, double *scores, size_t n);

#endif
