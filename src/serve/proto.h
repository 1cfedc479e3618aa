/* proto.h - the wire protocols of `stratus serve`, as pure functions:
 * request bytes -> protocol-neutral tensors, output tensors -> response
 * bytes.  No sockets, no models, no threads here: the router (serve.c)
 * picks the protocol from the route, the model manager supplies the
 * signature, the batcher runs the request.
 *
 * Protocols: Open Inference Protocol / KServe V2, TF Serving REST,
 * SageMaker (JSON and text/csv), Vertex AI.  Every decoder checks sizes
 * from the body (shapes, element counts) against sv_limits before it
 * allocates, and says which input was wrong and what was expected.
 *
 *     sv_model_sig sig = {.name = "iris", .version = "3", .inputs = ..., ...};
 *     sv_request req;
 *     int http_status;
 *     if (sv_decode(SV_PROTO_V2, ct, body, len, &sig, &limits, arena, &req,
 *                   &http_status, &err) != ST_OK)
 *         -> respond http_status with sv_encode_error(err.msg)
 *     ... run: outputs[i] for sig.outputs[i] ...
 *     sv_encode(SV_PROTO_V2, accept, &sig, &req, outputs, n, &body, &ct, &err);
 */
#ifndef ST_SV_PROTO_H
#define ST_SV_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/status.h"
#include "engine/engine.h"

typedef enum sv_proto {
    SV_PROTO_V2,        /* POST /v2/models/{m}[/versions/{v}]/infer */
    SV_PROTO_TFS,       /* POST /v1/models/{m}[...]:predict */
    SV_PROTO_SAGEMAKER, /* POST /invocations */
    SV_PROTO_VERTEX,    /* POST $AIP_PREDICT_ROUTE */
} sv_proto;

typedef struct sv_limits {
    size_t max_elements;     /* per input tensor; 413 beyond */
    size_t max_total_bytes;  /* all decoded inputs together; 413 beyond */
} sv_limits;

/* What the decoder needs of a model: its name, version and declared
 * inputs/outputs (dims -1 where dynamic; dim 0 is the batch axis when
 * it is dynamic). */
typedef struct sv_model_sig {
    const char *name;
    const char *version;
    const eng_io *inputs;
    size_t n_inputs;
    const eng_io *outputs;
    size_t n_outputs;
    const char *platform;    /* "onnx", "xgboost", "lightgbm" (V2 metadata) */
} sv_model_sig;

/* A decoded request.  inputs[i] is the tensor for sig->inputs[i] (decoders
 * bind by name and order them); memory is in the arena given to sv_decode. */
typedef struct sv_request {
    const char *id;              /* V2 "id" to echo, or NULL */
    eng_tensor *inputs;          /* sig->n_inputs entries */
    size_t n_inputs;
    int *outputs;                /* requested output indexes into sig->outputs
                                    (V2 "outputs", TFS output filter); */
    size_t n_outputs;            /* 0 = all */
    bool is_row_form;            /* TFS/Vertex "instances": answer by row */
    bool wants_csv;              /* SageMaker: answer text/csv */
    int64_t batch;               /* rows along axis 0, -1 when no batch axis */
} sv_request;

/* Decodes a request body of protocol p against sig.  content_type may be
 * NULL (JSON assumed).  On failure returns non-OK with err saying what
 * was wrong (the input's name, the shape or type expected and got) and
 * sets *http_status: 400 malformed or mismatched, 413 over limits,
 * 415 unsupported content type. */
st_status sv_decode(sv_proto p, const char *content_type, const uint8_t *body, size_t len,
                    const sv_model_sig *sig, const sv_limits *limits, st_arena *arena,
                    sv_request *out, int *http_status, st_error *err);

/* Encodes a response: outputs[i] is the value of sig->outputs[i] (all of
 * them, whatever req->outputs selects).  Appends to *body; *content_type
 * receives a static string.  Classifier outputs (an int64/string label
 * tensor, a probability tensor, a sequence of maps from ZipMap) take each
 * protocol's natural form.  SageMaker answers text/csv when Accept names
 * text/csv before application/json, JSON when it names application/json
 * first, else in the request's own format (req->wants_csv).  NaN and
 * infinities are written as null (JSON) or nan/inf (CSV). */
st_status sv_encode(sv_proto p, const char *accept, const sv_model_sig *sig, const sv_request *req,
                    const eng_tensor *outputs, size_t n_outputs, st_buf *body,
                    const char **content_type, st_error *err);

/* {"error": "<msg>"} with msg JSON-escaped. */
st_status sv_encode_error(const char *msg, st_buf *body);

/* V2 model metadata: {"name", "versions", "platform", "inputs": [{"name",
 * "datatype", "shape"}], "outputs": [...]}; versions may be NULL. */
st_status sv_encode_v2_metadata(const sv_model_sig *sig, const char *const *versions,
                                size_t n_versions, st_buf *body);

/* V2 server metadata: {"name", "version", "extensions": [...]}. */
st_status sv_encode_v2_server_metadata(const char *name, const char *version,
                                       const char *const *extensions, size_t n_extensions,
                                       st_buf *body);

/* A model version's state as TF Serving's model status API reports it. */
typedef enum sv_version_state {
    SV_VERSION_START,
    SV_VERSION_LOADING,
    SV_VERSION_AVAILABLE,
    SV_VERSION_UNLOADING,
    SV_VERSION_END,
} sv_version_state;

typedef struct sv_version_status {
    const char *version;
    sv_version_state state;
    const char *error_message; /* NULL: OK; else the load failure */
} sv_version_status;

/* TF Serving model status (GET /v1/models/{m}[/versions/{v}]):
 * {"model_version_status": [{"version", "state", "status": {"error_code",
 * "error_message"}}]}; error_code "OK", or "UNKNOWN" with the message. */
st_status sv_encode_tfs_status(const sv_version_status *versions, size_t n, st_buf *body);

/* TF Serving model metadata (GET /v1/models/{m}[...]/metadata): the
 * GetModelMetadataResponse in proto3 JSON, one "serving_default"
 * signature: {"model_spec": {"name", "signature_name", "version"},
 * "metadata": {"signature_def": {"signature_def": {"serving_default":
 * {"inputs": {name: {"dtype": "DT_FLOAT", "tensor_shape": {"dim":
 * [{"size": "-1", "name": ""}], "unknown_rank": false}, "name"}},
 * "outputs": {...}, "method_name": "tensorflow/serving/predict"}}}}}. */
st_status sv_encode_tfs_metadata(const sv_model_sig *sig, st_buf *body);

/* The V2 datatype name ("FP32", "INT64", "BYTES", ...) of a dtype, or NULL. */
const char *sv_v2_datatype(st_dtype dtype);

#endif
