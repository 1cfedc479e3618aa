/* gbm_int.h - XGBoost (JSON, UBJSON) and LightGBM (text) models in their
 * own formats, engine-internal.
 *
 * A front end reads the file into a gbm_desc: the ensemble as a tree_ir
 * (src/engine/tree/tree.h) plus what finishes a prediction and what
 * `stratus inspect` shows.  gbm.c turns a description into an eng_model
 * whose graph is one node of the internal op ai.stratus/GbmPredict:
 *
 *     input "input"  float32 [N, num_feature]
 *     output "predictions"   float32 [N]     regression, binary, ranking,
 *                                            multi:softmax (class index)
 *     output "probabilities" float32 [N, K]  multi:softprob, LightGBM
 *                                            multiclass
 *     output "predictions"   float32 [N, T]  XGBoost multi-target models
 *
 * Every front end checks the structure itself (child ids, cycles, feature
 * ids, thresholds, array lengths) so that its messages name the tree and
 * the node as the file numbers them; tree_compile checks the IR again. */
#ifndef ST_ENGINE_GBM_INT_H
#define ST_ENGINE_GBM_INT_H

#include "base/arena.h"
#include "base/status.h"
#include "engine/engine.h"
#include "engine/tree/tree.h"
#include "json/json.h"

typedef enum gbm_format {
    GBM_FORMAT_NONE,      /* not one of ours: ONNX or unknown */
    GBM_FORMAT_XGB_JSON,
    GBM_FORMAT_XGB_UBJSON,
    GBM_FORMAT_LIGHTGBM,
} gbm_format;

/* Work after the tree engine's post transform. */
typedef enum gbm_finish {
    GBM_FINISH_NONE,
    GBM_FINISH_ARGMAX,    /* multi:softmax: index of the largest score */
    GBM_FINISH_SIGN,      /* binary:hinge: 1 when the margin is > 0, else 0 */
} gbm_finish;

typedef struct gbm_desc {
    const char *format;       /* "xgboost" or "lightgbm" */
    const char *encoding;     /* "json", "ubjson" or "text" */
    const char *version;      /* of the library that wrote it, or "" */
    const char *objective;    /* as the file names it, "" when absent */
    size_t n_features;
    size_t n_classes;         /* 0 unless a multiclass model */
    size_t n_trees;
    size_t n_tree_nodes;      /* nodes of all trees, leaves included */
    tree_ir ir;               /* arrays in the arena given to the loader */
    gbm_finish finish;
    const char *output_name;  /* "predictions" or "probabilities" */
    bool is_output_2d;        /* [N, ir.n_targets] rather than [N] */
} gbm_desc;

/* Which of the formats above `data` is, from its first bytes only. */
gbm_format gbm_detect(const uint8_t *data, size_t len);

/* Reads the model in `data` (format from gbm_detect) into *out; every
 * array lives in `arena`.  ST_ECORRUPT / ST_EUNSUPPORTED with the reason
 * ("tree 3: node 17: left child 90 out of range (tree has 31 nodes)"). */
st_status gbm_describe(const uint8_t *data, size_t len, st_arena *arena, gbm_desc *out, st_error *err);

/* Builds m's graph from the XGBoost or LightGBM model in m->bytes (the
 * compiled trees live in m->arena).  Errors as gbm_describe, or from
 * tree_compile. */
st_status gbm_model_build(eng_model *m, st_error *err);

/* eng_inspect_file for our formats: everything in `arena`. */
st_status gbm_inspect(const uint8_t *data, size_t len, st_arena *arena, eng_model_info *out, st_error *err);

/* --- front ends ------------------------------------------------------------ */

/* Universal Binary JSON (as XGBoost writes it) into the JSON DOM of
 * json.h: numbers keep a text that reads back to the same value in their
 * own type (float32 as its shortest float32 text); NaN and infinities
 * become null, as in XGBoost JSON read by gbm_describe.  Depth, element count
 * and every length are checked against the input. */
st_status ubj_parse(const uint8_t *data, size_t len, st_arena *arena, json_value **out, st_error *err);

/* An XGBoost model (Booster.save_model) given as a DOM. */
st_status xgb_describe(const json_value *root, st_arena *arena, gbm_desc *out, st_error *err);

/* A LightGBM text model (Booster.save_model / model_to_string). */
st_status lgbm_describe(const uint8_t *data, size_t len, st_arena *arena, gbm_desc *out, st_error *err);

/* --- building the tree_ir (gbm.c) ------------------------------------------ */

/* Growable arrays for one ensemble; heap memory until gbm_ir_finish copies
 * it into the arena.  Always call gbm_ir_release. */
typedef struct gbm_ir {
    tree_ir_node *nodes;
    size_t n_nodes, cap_nodes;
    int32_t *roots;
    size_t n_trees, cap_trees;
    int64_t *categories;
    size_t n_categories, cap_categories;
    uint32_t *leaf_targets;
    double *leaf_weights;
    size_t n_leaves, cap_leaves;
} gbm_ir;

/* Appends a node (its id is the returned index in *id); ST_ENOMEM or
 * ST_ELIMIT past INT32_MAX nodes. */
st_status gbm_ir_node(gbm_ir *b, const tree_ir_node *node, int32_t *id);
/* Appends a leaf adding `weight` to score `target`. */
st_status gbm_ir_leaf(gbm_ir *b, uint32_t target, double weight, int32_t *id);
st_status gbm_ir_root(gbm_ir *b, int32_t root);
/* Appends a category to the shared list; the node's range is the caller's. */
st_status gbm_ir_category(gbm_ir *b, int64_t category);
/* Copies the arrays into `arena` and fills out->ir with them and the
 * sizes given (summed trees, no base values: the caller may add them). */
st_status gbm_ir_finish(gbm_ir *b, st_arena *arena, size_t n_features, size_t n_targets, tree_post post,
                        gbm_desc *out);
void gbm_ir_release(gbm_ir *b);

#endif
