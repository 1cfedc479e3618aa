/* eng_int.h - engine internals shared by the loader, the executor and the
 * operator kernels (src/engine/ops/).  Nothing outside src/engine/ may
 * include it; engine.h is the public door.
 *
 * A loaded model is a graph of values (tensors, by id) and nodes (operator
 * calls) in topological order.  Each node resolves at load time to an
 * eng_op: `check` validates attributes once, `infer` computes output types
 * and shapes for the input shapes (and values, when an output shape depends
 * on them) of this run, `run` computes.  The executor owns output memory. */
#ifndef ST_ENGINE_INT_H
#define ST_ENGINE_INT_H

#include "base/arena.h"
#include "base/pool.h"
#include "engine/engine.h"
#include "engine/onnx_pb.h"

typedef struct eng_op eng_op;
typedef struct eng_graph eng_graph;

/* A tensor-valued name of the graph. */
typedef struct eng_value {
    st_str name;
    st_dtype dtype;            /* declared or inferred; UNDEFINED if unknown */
    int rank;                  /* declared rank, -1 unknown */
    int64_t dims[ENG_MAX_RANK];/* declared dims, -1 dynamic */
    bool is_const;             /* initializer or folded constant */
    bool is_graph_input;
    bool is_graph_output;
    eng_tensor constant;       /* is_const: its data (read-only) */
    bool is_in_place;          /* constant.data is a large weight where it
                                  lies in the mapped file, at any byte
                                  address: only Gemm and MatMul read it, as
                                  their B (model.c, weight_in_place) */
    int producer;              /* node index, -1 for inputs and constants */
    int outer;                 /* captured from the enclosing graph: its
                                  place among the owner node's implicit
                                  inputs; -1 otherwise */
    int n_consumers;           /* node inputs that read it */
    int last_consumer;         /* node index of the last reader, -1 none */
} eng_value;

/* Work fused into a node by the load-time passes and applied to its first
 * output after the kernel: a bias along the last axis (MatMul + Add), then
 * an activation (Conv/Gemm/MatMul/Add + Relu, ...). */
typedef enum {
    ENG_ACT_NONE,
    ENG_ACT_RELU,
    ENG_ACT_LEAKY_RELU, /* alpha */
    ENG_ACT_SIGMOID,
    ENG_ACT_TANH,
    ENG_ACT_CLIP,       /* [alpha, beta] */
    ENG_ACT_HARD_SIGMOID, /* max(0, min(1, alpha x + beta)) */
} eng_act;

typedef struct eng_post_op {
    int bias;           /* constant value id, -1 none */
    eng_act act;
    float alpha, beta;
} eng_post_op;

/* One operator call. */
typedef struct eng_node {
    const eng_op *op;
    const onnx_node *proto;    /* name, attributes */
    int opset;                 /* version of the node's domain in the model */
    int *inputs;               /* value ids; -1 = omitted optional input */
    uint32_t n_inputs;         /* including n_implicit trailing ones */
    uint32_t n_implicit;       /* outer values its subgraphs read: they
                                  order and keep alive, kernels skip them */
    int *outputs;              /* value ids; -1 = omitted optional output */
    uint32_t n_outputs;
    void *state;               /* op's load-time state (graph arena) */
    eng_graph *graph;          /* owner (subgraph ops run nested graphs) */
    eng_post_op post;          /* fused bias/activation, see above */
} eng_node;

struct eng_graph {
    st_arena *arena;           /* owns everything below */
    eng_value *values;
    size_t n_values;
    size_t cap_values;
    eng_node *nodes;           /* topological order */
    size_t n_nodes;
    int *inputs;               /* non-constant graph inputs, declared order */
    size_t n_inputs;
    int *outputs;
    size_t n_outputs;
    const eng_graph *parent;   /* enclosing graph for subgraphs, else NULL */
    eng_node *owner;           /* the If/Loop/Scan node owning a subgraph */
    struct eng_model *model;
    void *names;               /* name -> value id table (model.c) */
};

/* What a kernel sees for one call. */
typedef struct eng_kctx {
    const eng_node *node;
    const eng_tensor *const *in; /* n_in entries; NULL = omitted */
    uint32_t n_in;
    eng_tensor *const *out;      /* n_out entries; NULL = omitted */
    uint32_t n_out;
    st_pool *pool;               /* intra-op threads, may be NULL */
    st_arena *scratch;           /* temporaries for this run */
    st_error *err;
    void *stash;                 /* infer may leave results here for run */
    bool is_post_done;           /* run applied node->post itself */
} eng_kctx;

struct eng_op {
    const char *domain;        /* "" or "ai.onnx.ml" */
    const char *name;          /* op_type */
    int min_opset;             /* oldest opset whose semantics it implements */
    /* Load time: validate attributes, fill node->state.  May be NULL. */
    st_status (*check)(eng_node *node, st_arena *arena, st_error *err);
    /* Sets dtype, rank and shape of every present output from the inputs.
     * Reads input data only when the output shape depends on it. */
    st_status (*infer)(eng_kctx *k);
    /* Computes outputs (their data already allocated). */
    st_status (*run)(eng_kctx *k);
};

/* --- subgraphs (If / Loop / Scan bodies) ------------------------------- */

/* Builds the body graph `pg` of node `owner` (call from the op's check).
 * Names the body reads from enclosing graphs become captured values and
 * implicit inputs of `owner`, so ordering and lifetimes stay right. */
st_status eng_subgraph_build(eng_node *owner, const onnx_graph *pg, eng_graph **out, st_error *err);
/* Runs a body graph: inputs in its declared order, outputs (headers; data
 * in k->scratch) in its declared order.  k is the owner's context. */
st_status eng_subgraph_run(const eng_graph *g, const eng_kctx *k, const eng_tensor *inputs, size_t n_inputs,
                           eng_tensor *outputs, size_t n_outputs);

/* --- operator registry (ops/registry.c) -------------------------------- */

/* The op for (domain, op_type) at `opset`, or NULL when unsupported. */
const eng_op *eng_op_find(st_str domain, st_str op_type, int opset);

/* --- attributes ----------------------------------------------------------- */

int64_t eng_attr_int(const eng_node *n, const char *name, int64_t dflt);
float eng_attr_float(const eng_node *n, const char *name, float dflt);
/* The string attribute, or dflt (as an st_str) when absent. */
st_str eng_attr_str(const eng_node *n, const char *name, const char *dflt);
/* The ints attribute; *count 0 and NULL when absent. */
const int64_t *eng_attr_ints(const eng_node *n, const char *name, size_t *count);
const float *eng_attr_floats(const eng_node *n, const char *name, size_t *count);
/* The tensor attribute, or NULL. */
const onnx_tensor *eng_attr_tensor(const eng_node *n, const char *name);
bool eng_attr_has(const eng_node *n, const char *name);

/* --- tensors and shapes ---------------------------------------------------- */

/* Non-tensor values (ENG_DT_SEQUENCE, ENG_DT_OPTIONAL, ENG_DT_MAP) are
 * described in engine.h.  Ops that create them copy element data into
 * k->scratch, which lives for the whole run, so an element never points
 * into memory the plan reuses. */

/* Bytes of one element of dtype: st_str for strings, eng_tensor headers
 * for sequences and optionals. */
size_t eng_elem_bytes(st_dtype dtype);

/* Product of the dims, or false on overflow / negative dims. */
bool eng_shape_count(const int64_t *shape, uint32_t rank, size_t *count);
/* Bytes for `count` elements of dtype (strings: st_str each). */
bool eng_tensor_bytes(st_dtype dtype, size_t count, size_t *bytes);
/* Sets dtype/rank/shape (not data) of t; rank <= ENG_MAX_RANK. */
void eng_set_shape(eng_tensor *t, st_dtype dtype, const int64_t *shape, uint32_t rank);
/* numpy broadcasting of a and b into out; ST_ESHAPE with a message. */
st_status eng_broadcast_shape(const eng_tensor *a, const eng_tensor *b, int64_t *out,
                              uint32_t *out_rank, const eng_kctx *k);
/* Normalises an axis in [-rank, rank) (or [-rank-1, rank] when
 * inclusive_end); ST_EINVAL with the op's name when out of range. */
st_status eng_axis(const eng_kctx *k, int64_t axis, int rank, int *out);
/* Reads element i of an integer tensor (int32/int64/uint8...) as int64. */
int64_t eng_int_at(const eng_tensor *t, size_t i);
/* Reads element i of any numeric tensor as double. */
double eng_num_at(const eng_tensor *t, size_t i);
/* Applies node->post to output 0 (float32/float64); ST_ESHAPE when a fused
 * bias does not fit the output's last axis. */
st_status eng_apply_post_op(const eng_kctx *k, const eng_graph *g);
/* Fails the kernel with a message prefixed by the node's op type and name. */
st_status eng_fail(const eng_kctx *k, st_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
