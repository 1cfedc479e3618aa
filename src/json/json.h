/* json.h - Stratus's JSON reader and writer (RFC 8259, strict).
 *
 * Made for the inference hot path: numeric arrays, flat or nested, decode
 * straight into typed buffers without building a tree; numbers are parsed
 * and printed correctly rounded (bit-exact both ways, shortest output).
 * Three layers share one tokenizer:
 *   - json_reader: a pull cursor over (pointer, length) input;
 *   - json_parse:  a small DOM in an st_arena, for config files and metadata;
 *   - json_writer: appends JSON to an st_buf.
 *
 * Worked example: a KServe V2 request
 *   {"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32",
 *               "data":[[1,2,3],[4,5,6]]}]}
 *
 *     st_error err = {0};
 *     json_reader r;
 *     json_reader_init(&r, body, body_len, NULL, arena, &err);
 *     json_enter_object(&r);
 *     st_str key;
 *     while (json_object_next(&r, &key)) {
 *         if (!st_str_eq_c(key, "inputs"))
 *             continue;                       // unread values are skipped
 *         json_enter_array(&r);
 *         while (json_array_next(&r)) {
 *             json_enter_object(&r);
 *             while (json_object_next(&r, &key)) {
 *                 if (st_str_eq_c(key, "name"))
 *                     json_read_string(&r, &name);
 *                 else if (st_str_eq_c(key, "data"))
 *                     json_read_numbers(&r, ST_DT_FLOAT32, &values,
 *                                       shape, 8, &rank);   // rank 2, {2, 3}
 *             }
 *         }
 *     }
 *     if (json_reader_finish(&r) != ST_OK)
 *         return err.code;  // err.msg: "... at byte offset 57", say
 *
 * Errors are sticky: the first failure is recorded (status, and the message
 * in the st_error given at init, naming the byte offset); every later call
 * is a no-op returning that status (or false / JSON_KIND_NONE), so a walk checks
 * once at the end.  Status codes: ST_ECORRUPT for malformed JSON, ST_ELIMIT
 * for a json_limits violation, ST_ETYPE for a value of the wrong kind,
 * ST_EINVAL for a number out of range of the requested type, ST_ESHAPE for
 * a ragged array, ST_ENOMEM, and ST_EINVAL for API misuse.
 *
 * Input is never NUL-terminated by contract and never read past `len`.
 * Strings are validated (UTF-8, escapes, surrogate pairs); a string without
 * escapes is returned zero-copy as an st_str into the input.
 */
#ifndef ST_JSON_H
#define ST_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/dtype.h"
#include "base/status.h"
#include "base/str.h"

/* ---- limits ------------------------------------------------------------ */

/* Hard ceilings: nesting depth (reader and writer) and array rank. */
#define JSON_DEPTH_CAP 1024
#define JSON_MAX_RANK 32

/* Bounds applied to one document.  Zero fields mean "the default". */
typedef struct json_limits {
    size_t max_depth;       /* nesting of arrays/objects; default 128, <= JSON_DEPTH_CAP */
    size_t max_input_bytes; /* document size; default 64 MiB */
    size_t max_elements;    /* values of any kind (numbers in typed arrays
                               included); default 16 Mi */
} json_limits;

/* The defaults: 128 levels, 64 MiB, 16 Mi values. */
json_limits json_limits_default(void);

/* ---- value kinds --------------------------------------------------------- */

typedef enum json_kind {
    JSON_KIND_NONE = 0, /* no value here (end of a container, misuse, or error) */
    JSON_KIND_NULL,
    JSON_KIND_BOOL,
    JSON_KIND_NUMBER,
    JSON_KIND_STRING,
    JSON_KIND_ARRAY,
    JSON_KIND_OBJECT,
} json_kind;

/* "null", "bool", ... for messages; "none" for JSON_KIND_NONE. */
const char *json_kind_name(json_kind t);

/* ---- pull reader ---------------------------------------------------------- */

/* Size of the built-in buffers for escaped strings when no arena is given. */
#define JSON_SCRATCH_BYTES 256

/* A cursor over one document.  Lives on the caller's stack; owns nothing,
 * needs no cleanup.  Fields are private: use the functions below. */
typedef struct json_reader {
    const char *data;
    size_t len;
    size_t pos;
    json_limits limits;
    st_arena *arena;
    st_error *err;
    st_status status;
    uint32_t depth;
    uint8_t state;
    size_t elements;
    uint64_t kinds[JSON_DEPTH_CAP / 64]; /* bit set: object at that depth */
    char key_scratch[JSON_SCRATCH_BYTES];
    char str_scratch[JSON_SCRATCH_BYTES];
} json_reader;

/* Starts reading `len` bytes at `data` (not copied: it must outlive every
 * st_str the reader returns).  `limits` NULL means defaults.  `arena` (may
 * be NULL) receives unescaped copies of strings that contain escapes;
 * without one, such strings must fit JSON_SCRATCH_BYTES and stay valid only
 * until the next string of the same kind (key or value) is read.  `err`
 * (may be NULL) receives the first error's message.  An input larger than
 * limits->max_input_bytes fails here (sticky). */
void json_reader_init(json_reader *r, const void *data, size_t len,
                      const json_limits *limits, st_arena *arena, st_error *err);

/* ST_OK, or the sticky error. */
st_status json_reader_status(const json_reader *r);
/* Byte offset of the cursor (the next unread byte), for messages. */
size_t json_reader_offset(const json_reader *r);
/* Records a caller's error (say, an unknown datatype) as the reader's sticky
 * error; the message gets " at byte offset N" appended.  Returns `code`. */
st_status json_reader_fail(json_reader *r, st_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Kind of the value at the cursor, without consuming it; JSON_KIND_NONE when no
 * value is due (after the last element, or on error).  Malformed input is
 * reported here when its first byte is not the start of any value. */
json_kind json_peek(json_reader *r);

/* Consumes '[' / '{'.  ST_ETYPE when the value is of another kind. */
st_status json_enter_array(json_reader *r);
st_status json_enter_object(json_reader *r);
/* Moves to the next array element: true when there is one (read it, or do
 * nothing and it is skipped), false at ']' (consumed) or on error. */
bool json_array_next(json_reader *r);
/* Moves to the next member: true with its key in *key (zero-copy unless it
 * had escapes), false at '}' (consumed) or on error.  Duplicate keys are
 * passed through in order. */
bool json_object_next(json_reader *r, st_str *key);

/* Scalars.  Each consumes one value of the named kind or fails (ST_ETYPE
 * when the value is of another kind, nothing consumed). */
st_status json_read_null(json_reader *r);
st_status json_read_bool(json_reader *r, bool *out);
/* The string, unescaped: zero-copy into the input when it has no escapes,
 * else a copy in the reader's arena (or scratch, see json_reader_init). */
st_status json_read_string(json_reader *r, st_str *out);
/* Appends the unescaped string to `out` (always a copy). */
st_status json_read_string_buf(json_reader *r, st_buf *out);
/* Numbers, correctly rounded; ST_EINVAL when out of the type's range
 * (1e400 as double), or for integers when not integral (1.5) - integral
 * values in any notation (2.0, 1e3) are accepted.  int64/uint64 exact. */
st_status json_read_double(json_reader *r, double *out);
st_status json_read_float(json_reader *r, float *out);
st_status json_read_int64(json_reader *r, int64_t *out);
st_status json_read_uint64(json_reader *r, uint64_t *out);
/* The number's text as written (validated), zero-copy. */
st_status json_read_number_text(json_reader *r, st_str *out);
/* Consumes one value of any kind, validating it fully. */
st_status json_skip(json_reader *r);

/* Reads one value that is a number, a bool, or a (nested) array of them
 * into `dtype` elements appended to `out` (native layout, row-major).
 * Records the shape: shape[0..*rank) (shape may be NULL when max_rank is
 * 0); a scalar has rank 0.  Ragged arrays ([[1,2],[3]]) are ST_ESHAPE,
 * rank above max_rank (<= JSON_MAX_RANK) ST_ELIMIT, a non-numeric element
 * ST_ETYPE, a value that does not fit dtype (300 for uint8, 1.5 for int32,
 * 1e39 for float32) ST_EINVAL; each names its byte offset.  Floats are
 * correctly rounded straight to the dtype (no double rounding); ST_DT_BOOL
 * takes true/false (and 0/1); every numeric st_dtype is supported.  On
 * error `out` may hold a partial result. */
st_status json_read_numbers(json_reader *r, st_dtype dtype, st_buf *out,
                            size_t *shape, size_t max_rank, size_t *rank);
/* Same into a caller array of `capacity` elements; *count receives the
 * number written.  More elements than capacity is ST_ELIMIT. */
st_status json_read_numbers_into(json_reader *r, st_dtype dtype, void *dst,
                                 size_t capacity, size_t *count, size_t *shape,
                                 size_t max_rank, size_t *rank);

/* Ends the document: ST_OK when exactly one complete value was read and
 * only whitespace follows; else the error. */
st_status json_reader_finish(json_reader *r);

/* Checks that data is one complete JSON document within limits (NULL:
 * defaults).  ST_OK or the first error, with its byte offset in err. */
st_status json_validate(const void *data, size_t len, const json_limits *limits,
                        st_error *err);

/* ---- DOM ------------------------------------------------------------------ */

typedef struct json_value json_value;
typedef struct json_member json_member;

/* A parsed value.  Strings are unescaped; numbers keep their text (exact
 * round trip; convert with json_value_*).  All memory is in the arena. */
struct json_value {
    json_kind type;
    union {
        bool boolean;
        st_str string; /* JSON_KIND_STRING: unescaped, NUL after len */
        st_str number; /* JSON_KIND_NUMBER: the text as written */
        struct {
            json_value *items;
            size_t count;
        } array;
        struct {
            json_member *members;
            size_t count;
        } object;
    } u;
};

struct json_member {
    st_str key; /* unescaped, NUL after len */
    json_value value;
};

/* Parses a whole document into `arena` (strings copied: the input may be
 * freed afterwards).  *out points into the arena.  Errors as the reader. */
st_status json_parse(const void *data, size_t len, const json_limits *limits,
                     st_arena *arena, json_value **out, st_error *err);

/* The last member named `key` (as JSON.parse does), or NULL when absent or
 * when obj is not an object. */
const json_value *json_value_get(const json_value *obj, st_str key);
/* obj[key] from a C string literal, same contract. */
const json_value *json_value_get_c(const json_value *obj, const char *key);
/* Element i, or NULL when out of range or not an array. */
const json_value *json_value_at(const json_value *arr, size_t i);

/* Conversions of a DOM value: ST_ETYPE for the wrong kind (v NULL included),
 * ST_EINVAL when out of range / not integral; same rules as the reader. */
st_status json_value_double(const json_value *v, double *out);
st_status json_value_int64(const json_value *v, int64_t *out);
st_status json_value_uint64(const json_value *v, uint64_t *out);
st_status json_value_bool(const json_value *v, bool *out);
st_status json_value_string(const json_value *v, st_str *out);

/* Structural equality; numbers compare by text, objects in member order. */
bool json_value_equal(const json_value *a, const json_value *b);

/* ---- writer --------------------------------------------------------------- */

/* What to do with NaN and infinities, which JSON cannot express. */
typedef enum json_nonfinite {
    JSON_NONFINITE_ERROR = 0, /* ST_EINVAL (default) */
    JSON_NONFINITE_NULL,      /* write null */
} json_nonfinite;

/* Appends one JSON document to an st_buf, compact.  Commas and nesting are
 * tracked; misuse (a value without a key in an object, unbalanced ends) is
 * ST_EINVAL.  Errors are sticky like the reader's.  Owns nothing. */
typedef struct json_writer {
    st_buf *out;
    st_error *err;
    st_status status;
    uint32_t depth;
    uint8_t state;
    json_nonfinite nonfinite;
    uint64_t kinds[JSON_DEPTH_CAP / 64];
} json_writer;

/* Starts a document appended to `out` (existing contents kept).  `err` may
 * be NULL. */
void json_writer_init(json_writer *w, st_buf *out, st_error *err);
/* Chooses the NaN/Inf policy (default JSON_NONFINITE_ERROR). */
void json_writer_set_nonfinite(json_writer *w, json_nonfinite policy);
/* ST_OK, or the sticky error. */
st_status json_writer_status(const json_writer *w);

st_status json_write_object_begin(json_writer *w);
st_status json_write_object_end(json_writer *w);
st_status json_write_array_begin(json_writer *w);
st_status json_write_array_end(json_writer *w);
/* A member key; the next write is its value. */
st_status json_write_key(json_writer *w, st_str key);
/* A string, escaped ('"', '\\', control characters); invalid UTF-8 bytes
 * become U+FFFD so the output is always valid UTF-8. */
st_status json_write_string(json_writer *w, st_str s);
st_status json_write_null(json_writer *w);
st_status json_write_bool(json_writer *w, bool v);
st_status json_write_int64(json_writer *w, int64_t v);
st_status json_write_uint64(json_writer *w, uint64_t v);
/* Shortest text that reads back to the same bits, formatted like Python's
 * repr (0.1, 1.0, 1e+16, 1e-05); float as float32 (numpy float32 repr). */
st_status json_write_double(json_writer *w, double v);
st_status json_write_float(json_writer *w, float v);
/* A number given as text; it must be a valid JSON number (ST_EINVAL). */
st_status json_write_number_text(json_writer *w, st_str text);
/* A tensor of `dtype` elements (row-major) with shape[0..rank): nested
 * arrays when `nested`, else one flat array of all elements.  Nested with
 * rank 0 writes a scalar.  Floats shortest as their own type; bool as
 * true/false. */
st_status json_write_numbers(json_writer *w, st_dtype dtype, const void *data,
                             const size_t *shape, size_t rank, bool nested);
/* A DOM value (numbers written as their text). */
st_status json_write_value(json_writer *w, const json_value *v);
/* ST_OK when exactly one complete value was written. */
st_status json_writer_finish(json_writer *w);

/* ---- number formatting, for other modules --------------------------------- */

/* Longest text json_format_double / json_format_float can produce. */
#define JSON_NUMBER_MAX_CHARS 32

/* Writes the shortest round-trip text of a finite value into buf (at least
 * JSON_NUMBER_MAX_CHARS bytes, not NUL-terminated); returns its length, 0
 * for NaN/Inf. */
size_t json_format_double(double v, char *buf);
size_t json_format_float(float v, char *buf);
/* float16 given as its bits. */
size_t json_format_half(uint16_t bits, char *buf);

/* Parses a complete JSON number text (no surrounding space) correctly
 * rounded: ST_ECORRUPT when not a JSON number, ST_EINVAL when out of range. */
st_status json_parse_double(st_str text, double *out);
st_status json_parse_float(st_str text, float *out);
/* float16 result as bits. */
st_status json_parse_half(st_str text, uint16_t *out);

#endif
