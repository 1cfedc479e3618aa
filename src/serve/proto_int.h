/* proto_int.h - what the protocol adapters (proto*.c) and the CSV reader
 * share; not a door (other modules include proto.h).  A decode runs with
 * one sv_ctx: the signature, the limits, the arena and where the error
 * and HTTP status go. */
#ifndef ST_SV_PROTO_INT_H
#define ST_SV_PROTO_INT_H

#include "json/json.h"
#include "serve/proto.h"

typedef struct sv_ctx {
    sv_proto proto;
    const sv_model_sig *sig;
    size_t max_elements;    /* per tensor; SIZE_MAX when unlimited */
    size_t max_total_bytes; /* all inputs; SIZE_MAX when unlimited */
    size_t total_bytes;     /* decoded so far */
    st_arena *arena;
    st_error *err;
    int *http_status;
    const uint8_t *body;    /* the request, for deferred reads */
    size_t body_len;
    bool failed;            /* sv_fail ran: the message is ours, not the reader's */
} sv_ctx;

/* Sets *http_status and the message; returns code. */
st_status sv_fail(sv_ctx *c, int http, st_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Turns a JSON reader failure into the request's error: the reader's
 * message prefixed with `what` (may be NULL); 503 for ST_ENOMEM, else 400
 * (decoders set the reader's limits so that only depth can trip them). */
st_status sv_fail_json(sv_ctx *c, json_reader *r, const char *what);

/* The name of a dtype as this protocol says it: V2 datatypes ("FP32") for
 * V2, numpy-style names ("float32") for the others. */
const char *sv_type_name(sv_proto p, st_dtype t);
/* "[-1, 4]" into buf; "any shape" for rank < 0. */
const char *sv_dims_text(char *buf, size_t cap, const int64_t *dims, int rank);
/* Index of the signature's input named `name`, or -1. */
int sv_find_input(const sv_model_sig *sig, st_str name);
int sv_find_output(const sv_model_sig *sig, st_str name);
/* '"a", "b"' - the names, for "unknown input" messages. */
const char *sv_names_text(char *buf, size_t cap, const eng_io *ios, size_t n);

/* Checks a tensor of `shape` for input `idx` against the declared rank
 * and fixed dims: 400 'input "x": expected shape [-1, 4] (FP32), got [3, 5]'. */
st_status sv_check_shape(sv_ctx *c, size_t idx, const int64_t *shape, size_t rank);
/* Element count of shape with overflow and the limits checked (413),
 * counting the bytes against max_total_bytes. */
st_status sv_count(sv_ctx *c, const char *name, st_dtype t, const int64_t *shape, size_t rank,
                   size_t *count);
/* Fills t with an arena block for `count` elements of t->dtype. */
st_status sv_alloc_data(sv_ctx *c, eng_tensor *t, size_t count);

/* Reads one value (a scalar, a (nested) array, strings, {"b64": ...})
 * for an input of dtype t: numbers (and bools) appended to `out` as t,
 * strings as st_str copied into the arena.  Records the shape (room for
 * JSON_MAX_RANK dims).  `name` names the input in messages. */
st_status sv_read_value(sv_ctx *c, json_reader *r, const char *name, st_dtype t, st_buf *out,
                        size_t *shape, size_t *rank);
/* Strings (or {"b64": ...} objects) in a nested array, into a fixed array
 * of `cap` st_str (copies in the arena); *count receives how many. */
st_status sv_read_strings(sv_ctx *c, json_reader *r, const char *name, st_str *dst, size_t cap,
                          size_t *count, size_t *shape, size_t *rank);

/* Ends a decode: every input present (400 naming the first missing one),
 * the batch worked out. */
st_status sv_finish_request(sv_ctx *c, sv_request *out, const bool *seen);

/* Base64 (RFC 4648, padding optional) into the arena. */
st_status sv_b64_decode(sv_ctx *c, const char *name, st_str in, st_str *out);
/* Appends the base64 text of bytes to a buffer. */
st_status sv_b64_encode(st_buf *out, st_str bytes);

/* Decoders per family (proto_v2.c, proto_tfs.c). */
st_status sv_decode_v2(sv_ctx *c, sv_request *out);
st_status sv_decode_tfs(sv_ctx *c, sv_request *out);
st_status sv_decode_csv(sv_ctx *c, sv_request *out);

/* Encoders per family. */
st_status sv_encode_v2(const sv_model_sig *sig, const sv_request *req, const eng_tensor *outputs,
                       size_t n_outputs, st_buf *body, st_error *err);
st_status sv_encode_tfs(sv_proto p, const sv_model_sig *sig, const sv_request *req,
                        const eng_tensor *outputs, size_t n_outputs, st_buf *body, st_error *err);
st_status sv_encode_csv(const sv_model_sig *sig, const sv_request *req, const eng_tensor *outputs,
                        size_t n_outputs, st_buf *body, st_error *err);

/* One element of a numeric dtype at p (floats shortest, bools true/false). */
void sv_write_scalar(json_writer *w, st_dtype t, const void *p);

/* The output to write for selection index k: req->outputs[k] or k. */
size_t sv_selected_count(const sv_model_sig *sig, const sv_request *req);
size_t sv_selected_index(const sv_request *req, size_t k);
/* Is t a sequence of maps (ZipMap's {label: probability} per row)? */
bool sv_is_map_sequence(const eng_tensor *t);

/* ---- CSV (csv.c) ---------------------------------------------------------- */

/* Parses text/csv rows of numbers (RFC 4180 framing, no header, every row
 * the same number of fields) into a [rows, cols] block of dtype t in the
 * arena.  Fields: numbers (JSON syntax plus a leading '+' or '.', "nan",
 * "inf"), optionally quoted and space-padded; an empty field is NaN for
 * float types and an error for the others.  Counts first, checks
 * max_elements (ST_ELIMIT) and allocates once.  Errors name the row and
 * column (1-based): ST_ECORRUPT, ST_EINVAL (out of range), ST_ESHAPE. */
typedef struct sv_csv {
    void *data;
    size_t rows, cols;
} sv_csv;
st_status sv_csv_parse(const uint8_t *text, size_t len, st_dtype t, size_t max_elements,
                       st_arena *arena, sv_csv *out, st_error *err);

/* Stores the integer (neg ? -mag : mag) at p as integer type t
 * (little-endian); false, p untouched, when t cannot hold it. */
bool sv_store_int(st_dtype t, uint8_t *p, bool neg, uint64_t mag);

#endif
