/* onnx_model.c - libFuzzer driver for the ONNX protobuf decoder.
 * Decodes the input as a ModelProto and materializes every tensor it holds
 * (initializers, attribute tensors, subgraphs, functions); then decodes the
 * same bytes as a standalone TensorProto, SequenceProto and OptionalProto. */
#include <stdint.h>
#include <stdio.h>

#include "base/arena.h"
#include "engine/engine.h"
#include "engine/onnx_pb.h"
#include "fuzz.h"

/* External data must fail cleanly: the folder does not exist. */
#define FUZZ_MODEL_DIR "/nonexistent/stratus-fuzz-model-dir"

static void fuzz_tensor(const onnx_tensor *t, onnx_external *ext, st_arena *arena)
{
    onnx_tensor_data td;
    st_error err = { 0 };
    if (onnx_tensor_materialize(t, ext, arena, &td, &err) != ST_OK)
        return;
    /* Touch the first and last byte so ASan checks the view's bounds. */
    volatile uint8_t sink = 0;
    if (td.data && td.byte_size) {
        sink ^= ((const uint8_t *)td.data)[0];
        sink ^= ((const uint8_t *)td.data)[td.byte_size - 1];
    }
    for (size_t i = 0; td.strings && i < td.elem_count; i++)
        if (td.strings[i].len)
            sink ^= (uint8_t)td.strings[i].ptr[td.strings[i].len - 1];
    (void)sink;
}

static void fuzz_graph(const onnx_graph *g, onnx_external *ext, st_arena *arena);

static void fuzz_nodes(const onnx_node *nodes, size_t n, onnx_external *ext, st_arena *arena)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < nodes[i].attr_count; k++) {
            const onnx_attr *a = &nodes[i].attrs[k];
            if (a->t)
                fuzz_tensor(a->t, ext, arena);
            for (size_t j = 0; j < a->tensor_count; j++)
                fuzz_tensor(&a->tensors[j], ext, arena);
            if (a->sparse_tensor) {
                fuzz_tensor(&a->sparse_tensor->values, ext, arena);
                fuzz_tensor(&a->sparse_tensor->indices, ext, arena);
            }
            if (a->g)
                fuzz_graph(a->g, ext, arena);
            for (size_t j = 0; j < a->graph_count; j++)
                fuzz_graph(&a->graphs[j], ext, arena);
        }
    }
}

static void fuzz_graph(const onnx_graph *g, onnx_external *ext, st_arena *arena)
{
    for (size_t i = 0; i < g->initializer_count; i++)
        fuzz_tensor(&g->initializers[i], ext, arena);
    for (size_t i = 0; i < g->sparse_initializer_count; i++) {
        fuzz_tensor(&g->sparse_initializers[i].values, ext, arena);
        fuzz_tensor(&g->sparse_initializers[i].indices, ext, arena);
    }
    fuzz_nodes(g->nodes, g->node_count, ext, arena);
}

static void fuzz_value(const onnx_value *v, onnx_external *ext, st_arena *arena)
{
    if (v->tensor)
        fuzz_tensor(v->tensor, ext, arena);
    for (size_t i = 0; i < v->item_count; i++)
        fuzz_value(&v->items[i], ext, arena);
    if (v->map_values)
        fuzz_value(v->map_values, ext, arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_arena arena;
    st_error err = { 0 };
    onnx_external ext;
    st_arena_init(&arena, 0);
    onnx_external_init(&ext, FUZZ_MODEL_DIR);

    onnx_model model;
    if (onnx_decode_model(data, size, &arena, &model, &err) == ST_OK) {
        fuzz_graph(model.graph, &ext, &arena);
        for (size_t i = 0; i < model.function_count; i++)
            fuzz_nodes(model.functions[i].nodes, model.functions[i].node_count, &ext, &arena);
    }
    onnx_tensor tensor;
    if (onnx_decode_tensor(data, size, &arena, &tensor, &err) == ST_OK)
        fuzz_tensor(&tensor, &ext, &arena);
    onnx_value value;
    if (onnx_decode_sequence(data, size, &arena, &value, &err) == ST_OK)
        fuzz_value(&value, &ext, &arena);
    if (onnx_decode_optional(data, size, &arena, &value, &err) == ST_OK)
        fuzz_value(&value, &ext, &arena);

    /* The whole loader on top: graph building, every op's attribute
     * checks, and the passes (constant folding runs kernels on whatever
     * constants the input holds). */
    eng_model *m = NULL;
    if (eng_load_memory(data, size, NULL, NULL, &m, &err) == ST_OK)
        eng_free(m);

    onnx_external_release(&ext);
    st_arena_free(&arena);
    return 0;
}
