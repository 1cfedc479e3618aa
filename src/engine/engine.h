/* engine.h - the Stratus inference engine: load a model, run it.
 *
 * The only door into src/engine/.  A model is loaded once (the file is
 * mapped, decoded without copying weights, checked, optimised); a session
 * runs it.  Sessions cache a plan per input-shape signature, so running the
 * same shapes again allocates nothing.
 *
 *     eng_model *model;
 *     st_error err = {0};
 *     if (eng_load_file("mlp.onnx", NULL, &model, &err) != ST_OK)
 *         die(err.msg);                     // "mlp.onnx: unknown operator ..."
 *     eng_session *s;
 *     eng_session_new(model, &s, &err);
 *     eng_tensor in = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){1, 784}, 2, pixels);
 *     eng_tensor out;
 *     eng_run(s, &in, 1, &out, 1, &err);    // out.data valid until the next run
 *     eng_session_free(s);
 *     eng_free(model);
 *
 * Thread safety: a model is immutable after load and shared by any number
 * of sessions; a session is used by one thread at a time. */
#ifndef ST_ENGINE_H
#define ST_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/dtype.h"
#include "base/status.h"
#include "base/str.h"

#define ENG_MAX_RANK 8

/* A dense tensor in C order.  For ST_DT_STRING, data is an array of st_str.
 * The engine never frees a tensor it did not allocate. */
typedef struct eng_tensor {
    st_dtype dtype;
    uint32_t rank;
    int64_t shape[ENG_MAX_RANK];
    void *data;
    size_t count; /* number of elements (product of shape; 1 for rank 0) */
} eng_tensor;

/* Non-tensor values share eng_tensor's header (ONNX sequences, optionals
 * and the maps of ONNX-ML, as ZipMap and DictVectorizer use them):
 *  - ENG_DT_SEQUENCE: rank 1, shape[0] = count = elements, shape[1] = the
 *    elements' st_dtype, data = an array of count eng_tensor;
 *  - ENG_DT_OPTIONAL: count 0 (empty) or 1, data = one eng_tensor (a
 *    tensor or a sequence);
 *  - ENG_DT_MAP: rank 1, shape[0] = count = entries, shape[1] = the key
 *    st_dtype (INT64 or STRING), shape[2] = the value st_dtype, data = two
 *    eng_tensor, keys then values, each 1-D of count elements. */
#define ENG_DT_SEQUENCE ((st_dtype)100)
#define ENG_DT_OPTIONAL ((st_dtype)101)
#define ENG_DT_MAP ((st_dtype)102)

/* A graph input or output as the model declares it.  dims[i] is -1 when
 * dynamic (dim_names[i] then holds the symbolic name or NULL); rank is -1
 * when the model gives no shape at all. */
typedef struct eng_io {
    const char *name;
    st_dtype dtype;
    int rank;
    int64_t dims[ENG_MAX_RANK];
    const char *dim_names[ENG_MAX_RANK];
} eng_io;

typedef struct eng_options {
    int threads;          /* intra-op threads for sessions; 0 = 1 */
    bool no_optimize;     /* skip graph passes (for debugging/conformance) */
} eng_options;

typedef struct eng_model eng_model;
typedef struct eng_session eng_session;

/* Loads and checks a model: ONNX, XGBoost (JSON or UBJSON, as
 * Booster.save_model writes them) or LightGBM (text), detected by
 * content.  `opt` may be NULL.  On error *out is NULL and err says what
 * was wrong (unknown operator with its domain and opset, dangling names,
 * truncated file, ...). */
st_status eng_load_file(const char *path, const eng_options *opt, eng_model **out,
                        st_error *err);
/* Like eng_load_file over bytes the caller keeps alive for the model's
 * life; base_dir resolves external data (NULL: none allowed). */
st_status eng_load_memory(const uint8_t *data, size_t len, const char *base_dir,
                          const eng_options *opt, eng_model **out, st_error *err);
void eng_free(eng_model *m);

/* The format the model was read as: "onnx", "xgboost" or "lightgbm". */
const char *eng_format(const eng_model *m);
size_t eng_n_inputs(const eng_model *m);
const eng_io *eng_input(const eng_model *m, size_t i);
size_t eng_n_outputs(const eng_model *m);
const eng_io *eng_output(const eng_model *m, size_t i);

/* Nodes the executor runs after load-time optimisation (constant
 * folding, Identity/Dropout and dead-node removal). */
size_t eng_node_count(const eng_model *m);

/* Creates a session (plan cache, scratch memory) over a loaded model. */
st_status eng_session_new(eng_model *m, eng_session **out, st_error *err);
void eng_session_free(eng_session *s);

/* Runs the model.  inputs are in the order of eng_input(); outputs are
 * filled in the order of eng_output() and point into session memory that
 * stays valid until the next eng_run on this session.  Shape or type
 * mismatches against the declared inputs are ST_ESHAPE / ST_ETYPE with
 * the input's name. */
st_status eng_run(eng_session *s, const eng_tensor *inputs, size_t n_inputs,
                  eng_tensor *outputs, size_t n_outputs, st_error *err);

/* What `stratus inspect` shows: a model described without running it.
 * Works on models with unsupported operators (they are listed). */
typedef struct eng_op_use {
    const char *domain;       /* "" for the default domain */
    const char *op_type;
    size_t count;             /* nodes using it, subgraphs included */
    bool is_supported;        /* at the model's opset for that domain */
} eng_op_use;

typedef struct eng_opset_use {
    const char *domain;
    int64_t version;
} eng_opset_use;

typedef struct eng_model_info {
    const char *format;        /* "onnx", "xgboost" or "lightgbm" */
    int64_t ir_version;
    const char *producer;      /* "pytorch 2.1" or "" */
    eng_opset_use *opsets;
    size_t n_opsets;
    eng_io *inputs;            /* initializers excluded */
    size_t n_inputs;
    eng_io *outputs;
    size_t n_outputs;
    eng_op_use *ops;           /* sorted by count, most used first */
    size_t n_ops;
    size_t n_nodes;
    size_t n_parameters;       /* elements of all initializers */
    size_t parameter_bytes;
    size_t n_unsupported;      /* distinct unsupported operators */
    /* Tree ensembles in their own formats (format "xgboost" or
     * "lightgbm"); NULL and 0 for ONNX models.  Their graph is one
     * ai.stratus/GbmPredict node: input "input" float32 [N, n_features],
     * output "predictions" [N] (or [N, targets]), or "probabilities"
     * [N, n_classes] for multi:softprob and LightGBM multiclass. */
    const char *encoding;      /* "json", "ubjson" or "text" */
    const char *objective;     /* as the model names it */
    size_t n_trees;
    size_t n_tree_nodes;       /* leaves included */
    size_t n_features;
    size_t n_classes;          /* 0 unless multiclass */
} eng_model_info;

/* Describes the model at `path`; everything in *out lives in `arena`.
 * Fails only when the file cannot be read or decoded. */
st_status eng_inspect_file(const char *path, st_arena *arena, eng_model_info *out, st_error *err);

/* Decodes an ONNX TensorProto (.pb file bytes) into *out; the data is
 * copied into `arena` (strings still point into `data`), *name (may be
 * NULL) receives the tensor's name, NUL-terminated in the arena. */
st_status eng_tensor_from_pb(const uint8_t *data, size_t len, st_arena *arena, eng_tensor *out,
                             const char **name, st_error *err);

/* The format eng_load_* would read `data` as, from its first bytes:
 * "xgboost" (JSON or UBJSON), "lightgbm", or "onnx" for anything else. */
const char *eng_detect_format(const uint8_t *data, size_t len);

/* Convenience: a tensor header over caller memory. */
eng_tensor eng_tensor_make(st_dtype dtype, const int64_t *shape, uint32_t rank, void *data);

#endif
