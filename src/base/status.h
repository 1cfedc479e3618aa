/* status.h - the one status type of Stratus and its error record.
 *
 * Every fallible function returns st_status.  Functions that can say more
 * than the code take an `st_error *` (may be NULL) and fill it with a
 * human message naming what was wrong and what to do. */
#ifndef ST_STATUS_H
#define ST_STATUS_H

#include <stddef.h>

/* X(name, http status, message).  One list: the enum, the message table
 * and the HTTP mapping are all generated from it. */
#define ST_STATUS_LIST(X)                                           \
    X(ST_OK, 200, "ok")                                             \
    X(ST_EINVAL, 400, "invalid argument")                           \
    X(ST_EUSAGE, 400, "usage error")                                \
    X(ST_ENOMEM, 503, "out of memory")                              \
    X(ST_ENOTFOUND, 404, "not found")                               \
    X(ST_EEXIST, 409, "already exists")                             \
    X(ST_EAGAIN, 503, "try again")                                  \
    X(ST_EBUSY, 429, "busy")                                        \
    X(ST_ETIMEOUT, 504, "timed out")                                \
    X(ST_ECORRUPT, 400, "corrupt or malformed data")                \
    X(ST_ELIMIT, 413, "limit exceeded")                             \
    X(ST_EOVERFLOW, 413, "size overflow")                           \
    X(ST_ETYPE, 400, "type mismatch")                               \
    X(ST_ESHAPE, 400, "shape mismatch")                             \
    X(ST_EUNSUPPORTED, 400, "unsupported")                          \
    X(ST_EIO, 500, "I/O error")                                     \
    X(ST_EINTERNAL, 500, "internal error")

typedef enum {
#define ST_STATUS_ENUM_(name, http, msg) name,
    ST_STATUS_LIST(ST_STATUS_ENUM_)
#undef ST_STATUS_ENUM_
    ST_STATUS_COUNT_
} st_status;

/* Short English description of a status ("corrupt or malformed data"). */
const char *st_status_str(st_status s);
/* The enum's name ("ST_ECORRUPT"), for logs and --json output. */
const char *st_status_name(st_status s);
/* The HTTP status code a protocol adapter answers with for `s`. */
int st_status_http(st_status s);

/* An error record: the status plus a message for a human.  Fixed size so
 * that filling it never allocates (it is used on out-of-memory paths). */
typedef struct st_error {
    st_status code;
    char msg[480];
} st_error;

/* Formats a message into `err` (when not NULL) and returns `code`, so that
 * callers write `return st_fail(err, ST_ECORRUPT, "bad header at %zu", off);`.
 * A message already set is replaced. */
st_status st_fail(st_error *err, st_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in `err` with context ("model.onnx: ..."),
 * returning err->code (or `code` when err is NULL). */
st_status st_fail_wrap(st_error *err, st_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The message of `err`, or the generic text of its code when empty. */
const char *st_error_msg(const st_error *err);

#endif
