/* model_int.h - the loaded model (engine-internal). */
#ifndef ST_ENGINE_MODEL_INT_H
#define ST_ENGINE_MODEL_INT_H

#include "engine/eng_int.h"

struct eng_model {
    st_arena arena;           /* decoded proto, graph, converted constants */
    const uint8_t *bytes;     /* the model file's bytes (mapped or caller's) */
    size_t n_bytes;
    void *map;                /* our mapping of the file, or NULL */
    size_t map_len;
    onnx_model onnx;
    const onnx_model *proto;
    onnx_external external;
    eng_options options;
    uint8_t *weights;         /* copies of unaligned initializers (one block) */
    size_t weights_cap;
    size_t weights_used;
    eng_graph graph;
    eng_io *inputs;
    eng_io *outputs;
};

/* Builds `g` from a decoded graph: values, nodes resolved to ops, checks. */
st_status eng_graph_build(eng_model *m, const onnx_graph *pg, eng_graph *g, st_error *err);
/* Folds constants, removes Identity/Dropout and dead nodes, re-sorts. */
st_status eng_graph_optimize(eng_graph *g, st_error *err);
/* Sorts g->nodes topologically and fills consumer counts. */
st_status eng_graph_sort(eng_graph *g, st_error *err);

#endif
