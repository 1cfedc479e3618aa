/* buf.h - growable byte buffers (for output: JSON, HTTP responses, files).
 * A zeroed st_buf is a valid empty buffer. */
#ifndef ST_BUF_H
#define ST_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "base/str.h"

typedef struct st_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} st_buf;

/* Ensures room for `extra` more bytes; ST_ENOMEM or ST_EOVERFLOW. */
st_status st_buf_reserve(st_buf *b, size_t extra);
st_status st_buf_append(st_buf *b, const void *data, size_t len);
st_status st_buf_append_str(st_buf *b, st_str s);
st_status st_buf_append_byte(st_buf *b, uint8_t byte);
st_status st_buf_printf(st_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The contents as an st_str (valid until the next append). */
static inline st_str st_buf_str(const st_buf *b)
{
    return st_str_make(b->data, b->len);
}
/* Appends a NUL (not counted in len) and returns the data as a C string;
 * NULL on allocation failure. */
const char *st_buf_cstr(st_buf *b);
static inline void st_buf_clear(st_buf *b) { b->len = 0; }
/* Releases memory; the buffer is empty and reusable afterwards. */
void st_buf_free(st_buf *b);

#endif
