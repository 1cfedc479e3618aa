/* buf.c - growable byte buffers. */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>

#include "base/alloc.h"

st_status st_buf_reserve(st_buf *b, size_t extra)
{
    size_t need;
    if (st_add_overflow(b->len, extra, &need))
        return ST_EOVERFLOW;
    if (need <= b->cap)
        return ST_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = st_realloc(b->data, cap);
    if (!p)
        return ST_ENOMEM;
    b->data = p;
    b->cap = cap;
    return ST_OK;
}

st_status st_buf_append(st_buf *b, const void *data, size_t len)
{
    if (len == 0)
        return ST_OK;
    st_status s = st_buf_reserve(b, len);
    if (s != ST_OK)
        return s;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return ST_OK;
}

st_status st_buf_append_str(st_buf *b, st_str s)
{
    return st_buf_append(b, s.ptr, s.len);
}

st_status st_buf_append_byte(st_buf *b, uint8_t byte)
{
    if (b->len == b->cap) {
        st_status s = st_buf_reserve(b, 1);
        if (s != ST_OK)
            return s;
    }
    b->data[b->len++] = byte;
    return ST_OK;
}

st_status st_buf_printf(st_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ST_EINVAL;
    st_status s = st_buf_reserve(b, (size_t)n + 1);
    if (s != ST_OK)
        return s;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return ST_OK;
}

const char *st_buf_cstr(st_buf *b)
{
    if (st_buf_reserve(b, 1) != ST_OK)
        return NULL;
    b->data[b->len] = '\0';
    return (const char *)b->data;
}

void st_buf_free(st_buf *b)
{
    st_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
