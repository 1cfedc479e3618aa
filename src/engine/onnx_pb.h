/* onnx_pb.h - zero-copy decoder of the ONNX protobuf wire format (engine-internal).
 *
 * Decodes ModelProto, and the standalone TensorProto / SequenceProto /
 * OptionalProto files of the ONNX conformance cases, from a caller-owned
 * buffer (usually an mmap of the file) into structs allocated from an
 * st_arena.  Every st_str and every tensor byte view points INTO that
 * buffer: the buffer must outlive the decoded structs.  Weights are never
 * copied at decode time; onnx_tensor_materialize turns any encoding
 * (raw_data, typed repeated fields, an external file) into one contiguous
 * little-endian array when the engine asks for it.
 *
 *     st_arena arena;
 *     st_arena_init(&arena, 0);
 *     st_error err = { 0 };
 *     onnx_model model;
 *     if (onnx_decode_model(buf, len, &arena, &model, &err) != ST_OK)
 *         fail(err.msg);            // "onnx: graph 'g': node 3 ...: ... at byte 1234"
 *     onnx_external ext;
 *     onnx_external_init(&ext, "/models/resnet/1");   // folder of model.onnx
 *     for (size_t i = 0; i < model.graph->initializer_count; i++) {
 *         onnx_tensor_data td;
 *         if (onnx_tensor_materialize(&model.graph->initializers[i], &ext,
 *                                     &arena, &td, &err) != ST_OK)
 *             fail(err.msg);
 *         use(td.data, td.byte_size, td.elem_count, td.align_bytes);
 *     }
 *     onnx_external_release(&ext);  // unmaps external files: views die here
 *     st_arena_free(&arena);        // decoded structs and converted data die here
 *
 * Decoding checks the wire format (truncation, lengths past the end, bad
 * wire types, overlong varints, groups, nesting deeper than
 * ONNX_PB_MAX_DEPTH) and the tensor invariants (known data_type,
 * non-negative dims whose product times the element size fits in size_t,
 * raw_data length and typed field counts matching the element count), so
 * that materialize only fails on I/O, unsupported types or memory.
 * Not thread-safe per arena; decoded structs are read-only and may be
 * shared between threads.  Assumes a little-endian host. */
#ifndef ST_ENGINE_ONNX_PB_H
#define ST_ENGINE_ONNX_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/status.h"
#include "base/str.h"

/* Maximum nesting of protobuf messages (a subgraph costs 3: node,
 * attribute, graph).  Deeper input fails with ST_ELIMIT. */
#define ONNX_PB_MAX_DEPTH 100

/* Highest TensorProto.DataType number the decoder knows (FLOAT8E5M2FNUZ,
 * IR 9).  Types above 13 decode but do not materialize. */
#define ONNX_DATA_TYPE_MAX 20

typedef struct onnx_graph onnx_graph;
typedef struct onnx_type onnx_type;
typedef struct onnx_value onnx_value;

/* StringStringEntryProto (metadata_props, external_data). */
typedef struct onnx_string_entry {
    st_str key;
    st_str value;
} onnx_string_entry;

/* OperatorSetIdProto; domain "" (or "ai.onnx") is the default domain. */
typedef struct onnx_opset {
    st_str domain;
    int64_t version;
} onnx_opset;

/* One repeated numeric or bytes field of a TensorProto, read lazily by
 * onnx_tensor_materialize.  count is validated at decode time. */
typedef struct onnx_typed_field {
    size_t count;          /* elements over all occurrences */
    size_t occurrences;    /* packed chunks plus unpacked elements */
    st_str only_packed;    /* payload when the field is one packed chunk */
} onnx_typed_field;

/* TensorProto.DataLocation: values in this file or in another one. */
typedef enum onnx_data_location {
    ONNX_LOCATION_DEFAULT = 0,
    ONNX_LOCATION_EXTERNAL = 1,
} onnx_data_location;

/* TensorProto.  data_type is a TensorProto.DataType number (equal to
 * st_dtype for the types Stratus runs); exactly one of raw_data, the typed
 * field that carries data_type, or external data holds the values (none
 * when elem_count is 0). */
typedef struct onnx_tensor {
    st_str name;
    int32_t data_type;            /* 1..ONNX_DATA_TYPE_MAX */
    const int64_t *dims;          /* all >= 0 */
    size_t dim_count;
    size_t elem_count;            /* product of dims; 1 for a scalar */
    size_t byte_size;             /* elem_count x element bytes; 0 for STRING */
    bool has_raw_data;
    st_str raw_data;              /* view into the input; may be unaligned */
    onnx_typed_field float_data;  /* field 4: FLOAT, COMPLEX64 */
    onnx_typed_field int32_data;  /* field 5: INT32 and the narrow types */
    onnx_typed_field string_data; /* field 6: STRING */
    onnx_typed_field int64_data;  /* field 7: INT64 */
    onnx_typed_field double_data; /* field 10: DOUBLE, COMPLEX128 */
    onnx_typed_field uint64_data; /* field 11: UINT32, UINT64 */
    onnx_data_location data_location;
    const onnx_string_entry *external_data;
    size_t external_count;
    st_str ext_location;          /* EXTERNAL: "location", relative path */
    uint64_t ext_offset;          /* EXTERNAL: "offset", 0 when absent */
    uint64_t ext_length;          /* EXTERNAL: "length" when has_ext_length */
    bool has_ext_length;
    st_str body;                  /* the whole TensorProto, for lazy reads */
} onnx_tensor;

/* SparseTensorProto: values (1-D) at indices ([NNZ] or [NNZ, rank]). */
typedef struct onnx_sparse_tensor {
    onnx_tensor values;
    onnx_tensor indices;
    const int64_t *dims;
    size_t dim_count;
} onnx_sparse_tensor;

/* What a TensorShapeProto.Dimension holds. */
typedef enum onnx_dim_kind {
    ONNX_DIM_UNKNOWN = 0,   /* neither value nor param (or a negative value) */
    ONNX_DIM_VALUE = 1,
    ONNX_DIM_PARAM = 2,     /* symbolic, e.g. "batch" */
} onnx_dim_kind;

/* TensorShapeProto.Dimension. */
typedef struct onnx_dim {
    onnx_dim_kind kind;
    int64_t value;          /* ONNX_DIM_VALUE: >= 0 */
    st_str param;           /* ONNX_DIM_PARAM */
} onnx_dim;

/* TypeProto's oneof. */
typedef enum onnx_type_kind {
    ONNX_TYPE_NONE = 0,     /* absent */
    ONNX_TYPE_TENSOR,
    ONNX_TYPE_SPARSE_TENSOR,
    ONNX_TYPE_SEQUENCE,     /* elements: inner */
    ONNX_TYPE_MAP,          /* key_type -> inner (ZipMap: seq(map(...))) */
    ONNX_TYPE_OPTIONAL,     /* element: inner */
    ONNX_TYPE_OPAQUE,
} onnx_type_kind;

/* TypeProto, recursively. */
struct onnx_type {
    onnx_type_kind kind;
    int32_t elem_type;        /* TENSOR / SPARSE_TENSOR: DataType, 0 unknown */
    bool has_shape;           /* TENSOR / SPARSE_TENSOR: false = rank unknown */
    const onnx_dim *dims;
    size_t dim_count;
    int32_t key_type;         /* MAP: DataType of the keys */
    const onnx_type *inner;   /* SEQUENCE / OPTIONAL element, MAP value */
    st_str opaque_domain;     /* OPAQUE */
    st_str opaque_name;
    st_str denotation;
};

/* ValueInfoProto: graph input, output or intermediate value. */
typedef struct onnx_value_info {
    st_str name;
    onnx_type type;           /* kind NONE when the type is absent */
} onnx_value_info;

/* AttributeProto.AttributeType numbers. */
typedef enum onnx_attr_type {
    ONNX_ATTR_UNDEFINED = 0,
    ONNX_ATTR_FLOAT = 1,
    ONNX_ATTR_INT = 2,
    ONNX_ATTR_STRING = 3,
    ONNX_ATTR_TENSOR = 4,
    ONNX_ATTR_GRAPH = 5,
    ONNX_ATTR_FLOATS = 6,
    ONNX_ATTR_INTS = 7,
    ONNX_ATTR_STRINGS = 8,
    ONNX_ATTR_TENSORS = 9,
    ONNX_ATTR_GRAPHS = 10,
    ONNX_ATTR_SPARSE_TENSOR = 11,
    ONNX_ATTR_SPARSE_TENSORS = 12,
    ONNX_ATTR_TYPE_PROTO = 13,
    ONNX_ATTR_TYPE_PROTOS = 14,
} onnx_attr_type;

/* AttributeProto.  When the file omits `type` (old exporters) it is
 * inferred from the field that is set.  Lists are arena arrays. */
typedef struct onnx_attr {
    st_str name;
    st_str ref_attr_name;     /* inside a FunctionProto: refers to its attr */
    onnx_attr_type type;
    float f;
    int64_t i;
    st_str s;
    const onnx_tensor *t;             /* NULL when absent */
    const onnx_graph *g;              /* NULL when absent */
    const onnx_sparse_tensor *sparse_tensor;
    const onnx_type *tp;
    const float *floats;
    size_t float_count;
    const int64_t *ints;
    size_t int_count;
    const st_str *strings;
    size_t string_count;
    const onnx_tensor *tensors;
    size_t tensor_count;
    const onnx_graph *graphs;
    size_t graph_count;
    const onnx_sparse_tensor *sparse_tensors;
    size_t sparse_tensor_count;
    const onnx_type *type_protos;
    size_t type_proto_count;
} onnx_attr;

/* NodeProto.  An input "" is an omitted optional input. */
typedef struct onnx_node {
    st_str name;
    st_str op_type;
    st_str domain;
    const st_str *inputs;
    size_t input_count;
    const st_str *outputs;
    size_t output_count;
    const onnx_attr *attrs;
    size_t attr_count;
} onnx_node;

/* GraphProto (the main graph or an If/Loop/Scan body). */
struct onnx_graph {
    st_str name;
    const onnx_node *nodes;          /* in file order (topological per spec) */
    size_t node_count;
    const onnx_tensor *initializers;
    size_t initializer_count;
    const onnx_sparse_tensor *sparse_initializers;
    size_t sparse_initializer_count;
    const onnx_value_info *inputs;   /* IR < 4: may include initializers */
    size_t input_count;
    const onnx_value_info *outputs;
    size_t output_count;
    const onnx_value_info *value_info;
    size_t value_info_count;
    size_t quantization_annotation_count; /* counted, not decoded */
};

/* FunctionProto (model-local function). */
typedef struct onnx_function {
    st_str name;
    st_str domain;
    const st_str *inputs;
    size_t input_count;
    const st_str *outputs;
    size_t output_count;
    const st_str *attr_names;        /* field 6: attributes without default */
    size_t attr_name_count;
    const onnx_attr *attr_defaults;  /* field 11 (IR 9): with default */
    size_t attr_default_count;
    const onnx_node *nodes;
    size_t node_count;
    const onnx_opset *opsets;
    size_t opset_count;
} onnx_function;

/* ModelProto.  graph is never NULL after a successful decode and
 * opset_count >= 1; doc_string is skipped; training_info is counted only. */
typedef struct onnx_model {
    int64_t ir_version;
    const onnx_opset *opsets;
    size_t opset_count;
    st_str producer_name;
    st_str producer_version;
    st_str domain;
    int64_t model_version;
    const onnx_graph *graph;
    const onnx_string_entry *metadata_props;
    size_t metadata_count;
    const onnx_function *functions;
    size_t function_count;
    size_t training_info_count;
} onnx_model;

/* SequenceProto / OptionalProto element kinds (their DataType numbers). */
typedef enum onnx_value_kind {
    ONNX_VALUE_UNDEFINED = 0,
    ONNX_VALUE_TENSOR = 1,
    ONNX_VALUE_SPARSE_TENSOR = 2,
    ONNX_VALUE_SEQUENCE = 3,
    ONNX_VALUE_MAP = 4,
    ONNX_VALUE_OPTIONAL = 5,
} onnx_value_kind;

/* A SequenceProto, MapProto or OptionalProto value, or one element of it. */
struct onnx_value {
    onnx_value_kind kind;
    st_str name;
    const onnx_tensor *tensor;          /* TENSOR */
    const onnx_sparse_tensor *sparse;   /* SPARSE_TENSOR */
    onnx_value_kind elem_kind;          /* SEQUENCE / OPTIONAL: declared */
    const onnx_value *items;            /* SEQUENCE: elements; OPTIONAL: */
    size_t item_count;                  /*   0 (empty) or 1 */
    int32_t key_type;                   /* MAP */
    const int64_t *keys;                /* MAP with integer keys */
    const st_str *string_keys;          /* MAP with string keys */
    size_t key_count;
    const onnx_value *map_values;       /* MAP: a SEQUENCE, NULL if absent */
};

/* Decodes a ModelProto from data[0..len).  On ST_OK *out and everything
 * it points to live in `arena` and point into `data`.  Errors: ST_ECORRUPT
 * (malformed; the message names the field, the enclosing graph/node/
 * attribute and the byte offset), ST_EUNSUPPORTED, ST_ELIMIT (nesting),
 * ST_EOVERFLOW (tensor sizes), ST_ENOMEM.  On error the arena may hold
 * partial results; free or reset it. */
st_status onnx_decode_model(const uint8_t *data, size_t len, st_arena *arena,
                            onnx_model *out, st_error *err);

/* Decodes a standalone TensorProto (conformance input_N.pb / output_N.pb);
 * same ownership and errors as onnx_decode_model. */
st_status onnx_decode_tensor(const uint8_t *data, size_t len, st_arena *arena,
                             onnx_tensor *out, st_error *err);

/* Decodes a SequenceProto file (used by the sequence_*, loop*_seq, if_seq
 * and identity_sequence cases); out->kind is ONNX_VALUE_SEQUENCE. */
st_status onnx_decode_sequence(const uint8_t *data, size_t len, st_arena *arena,
                               onnx_value *out, st_error *err);

/* Decodes an OptionalProto file (optional_*, *_opt cases); out->kind is
 * ONNX_VALUE_OPTIONAL with item_count 0 (empty) or 1. */
st_status onnx_decode_optional(const uint8_t *data, size_t len, st_arena *arena,
                               onnx_value *out, st_error *err);

/* The node's attribute called `name` (a C string), or NULL. */
const onnx_attr *onnx_node_attr(const onnx_node *node, const char *name);

/* "float32", "bfloat16", "float8e4m3fn", ... for any DataType number;
 * "undefined" for 0 and "unknown" outside the table. */
const char *onnx_data_type_name(int32_t data_type);

/* The external files one model's tensors were read from, mapped once
 * each.  Views returned by onnx_tensor_materialize into these files stay
 * valid until onnx_external_release.  Not thread-safe. */
typedef struct onnx_external_file onnx_external_file;
typedef struct onnx_external {
    const char *model_dir;       /* not owned; NULL refuses external data */
    onnx_external_file *files;   /* st_malloc'd; private */
    size_t file_count;
    size_t file_cap;
} onnx_external;

/* Starts an empty registry for tensors of the model stored in `model_dir`
 * (which must outlive it).  Allocates nothing. */
void onnx_external_init(onnx_external *ext, const char *model_dir);

/* Unmaps every file and frees the registry; it may be initialised again. */
void onnx_external_release(onnx_external *ext);

/* A tensor's values as one contiguous little-endian array. */
typedef struct onnx_tensor_data {
    int32_t data_type;     /* an st_dtype value */
    const void *data;      /* byte_size bytes; NULL when empty or STRING */
    size_t byte_size;      /* elem_count x st_dtype_size(data_type) */
    size_t elem_count;
    size_t align_bytes;    /* largest power of two <= 64 dividing data */
    bool is_borrowed;      /* data points into the model buffer or an
                              external mapping (read-only), not the arena */
    const st_str *strings; /* STRING: elem_count views into the model buffer */
} onnx_tensor_data;

/* Materializes `t`: a zero-copy view of raw_data, of a single packed
 * float_data/double_data chunk or of an external file range when
 * possible, else values converted into a 64-byte aligned arena array
 * (int32_data narrowed to int8/uint8/int16/uint16/float16 bits, bool
 * normalised to 0/1, uint64_data narrowed to uint32; BOOL bytes borrowed
 * from raw_data are not normalised: read them as "non-zero is true").  External data is
 * read from ext->model_dir + location, refusing absolute paths, ".."
 * components, paths leaving the folder through symlinks (where the kernel
 * has openat2), non-regular files and ranges past the file end.  Errors:
 * ST_EUNSUPPORTED (data type Stratus does not run, external without
 * registry), ST_EIO / ST_ENOTFOUND (external file), ST_EINVAL (bad
 * location), ST_ECORRUPT, ST_ENOMEM. */
st_status onnx_tensor_materialize(const onnx_tensor *t, onnx_external *ext,
                                  st_arena *arena, onnx_tensor_data *out,
                                  st_error *err);

/* True when td->data may be read as an array of its element type in
 * place (aligned to the element size); otherwise copy first. */
bool onnx_tensor_data_is_aligned(const onnx_tensor_data *td);

#endif
