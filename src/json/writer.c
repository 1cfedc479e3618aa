/* writer.c - compact JSON output into an st_buf: structure tracking,
 * string escaping (always valid UTF-8 out), integers, shortest floats and
 * fast typed-tensor serialisation (json_write_numbers). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "json/json_int.h"

enum {
    WS_START = 0, /* nothing written yet */
    WS_FIRST,     /* just after '[' or '{' */
    WS_AFTER,     /* a value was written inside a container */
    WS_KEY,       /* a key was written, its value is due */
    WS_DONE,      /* the document's value is complete */
};

void json_writer_init(json_writer *w, st_buf *out, st_error *err)
{
    w->out = out;
    w->err = err;
    w->status = ST_OK;
    w->depth = 0;
    w->state = WS_START;
    w->nonfinite = JSON_NONFINITE_ERROR;
}

void json_writer_set_nonfinite(json_writer *w, json_nonfinite policy)
{
    w->nonfinite = policy;
}

st_status json_writer_status(const json_writer *w)
{
    return w->status;
}

static st_status writer_fail(json_writer *w, st_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static st_status writer_fail(json_writer *w, st_status code, const char *fmt, ...)
{
    if (w->status != ST_OK)
        return w->status;
    w->status = code;
    if (w->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->err->msg, sizeof w->err->msg, fmt, ap);
        va_end(ap);
        w->err->code = code;
    }
    return code;
}

static inline bool top_is_object(const json_writer *w)
{
    uint32_t d = w->depth - 1;
    return (w->kinds[d / 64] >> (d % 64)) & 1;
}

static inline st_status put(json_writer *w, const void *p, size_t n)
{
    if (st_buf_append(w->out, p, n) != ST_OK)
        return writer_fail(w, ST_ENOMEM, "json_writer: out of memory at %zu bytes", w->out->len);
    return ST_OK;
}

static inline st_status put_byte(json_writer *w, char c)
{
    if (st_buf_append_byte(w->out, (uint8_t)c) != ST_OK)
        return writer_fail(w, ST_ENOMEM, "json_writer: out of memory at %zu bytes", w->out->len);
    return ST_OK;
}

/* Writes the separator a value needs here, or fails on misuse. */
static st_status begin_value(json_writer *w)
{
    if (w->status != ST_OK)
        return w->status;
    if (w->depth == 0) {
        if (w->state != WS_START)
            return writer_fail(w, ST_EINVAL, "json_writer misuse: a second top-level value");
        return ST_OK;
    }
    if (top_is_object(w)) {
        if (w->state != WS_KEY)
            return writer_fail(w, ST_EINVAL, "json_writer misuse: a value inside an object needs a key first");
        return ST_OK;
    }
    return w->state == WS_AFTER ? put_byte(w, ',') : ST_OK;
}

static inline void end_value(json_writer *w)
{
    w->state = w->depth == 0 ? WS_DONE : WS_AFTER;
}

static st_status begin_container(json_writer *w, bool is_object)
{
    if (begin_value(w) != ST_OK)
        return w->status;
    if (w->depth >= JSON_DEPTH_CAP)
        return writer_fail(w, ST_ELIMIT, "json_writer: nesting deeper than %d", JSON_DEPTH_CAP);
    if (put_byte(w, is_object ? '{' : '[') != ST_OK)
        return w->status;
    uint32_t d = w->depth++;
    uint64_t bit = 1ull << (d % 64);
    if (is_object)
        w->kinds[d / 64] |= bit;
    else
        w->kinds[d / 64] &= ~bit;
    w->state = WS_FIRST;
    return ST_OK;
}

static st_status end_container(json_writer *w, bool is_object)
{
    if (w->status != ST_OK)
        return w->status;
    if (w->depth == 0 || top_is_object(w) != is_object)
        return writer_fail(w, ST_EINVAL, "json_writer misuse: %s without a matching begin",
                           is_object ? "object end" : "array end");
    if (w->state == WS_KEY)
        return writer_fail(w, ST_EINVAL, "json_writer misuse: object ended after a key without a value");
    if (put_byte(w, is_object ? '}' : ']') != ST_OK)
        return w->status;
    w->depth--;
    end_value(w);
    return ST_OK;
}

st_status json_write_object_begin(json_writer *w) { return begin_container(w, true); }
st_status json_write_object_end(json_writer *w) { return end_container(w, true); }
st_status json_write_array_begin(json_writer *w) { return begin_container(w, false); }
st_status json_write_array_end(json_writer *w) { return end_container(w, false); }

/* ---- strings ------------------------------------------------------------------ */

static st_status put_escaped(json_writer *w, st_str str)
{
    const unsigned char *s = (const unsigned char *)str.ptr;
    size_t n = str.len, i = 0, start = 0;
    if (n && !s)
        return writer_fail(w, ST_EINVAL, "json_writer: NULL string with length %zu", n);
    if (st_buf_reserve(w->out, n + 2) != ST_OK)
        return writer_fail(w, ST_ENOMEM, "json_writer: out of memory writing a string of %zu bytes", n);
    if (put_byte(w, '"') != ST_OK)
        return w->status;
    while (i < n) {
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = json_utf8_seq(s + i, n - i);
            if (k) {
                i += k;
                continue;
            }
        }
        if (i > start && put(w, s + start, i - start) != ST_OK)
            return w->status;
        char esc[8];
        size_t elen = 2;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            if (c >= 0x80) { /* an invalid UTF-8 byte: U+FFFD */
                memcpy(esc, "\xEF\xBF\xBD", 3);
                elen = 3;
            } else {
                static const char hex[] = "0123456789abcdef";
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                elen = 6;
            }
        }
        if (put(w, esc, elen) != ST_OK)
            return w->status;
        i++;
        start = i;
    }
    if (i > start && put(w, s + start, i - start) != ST_OK)
        return w->status;
    return put_byte(w, '"');
}

st_status json_write_key(json_writer *w, st_str key)
{
    if (w->status != ST_OK)
        return w->status;
    if (w->depth == 0 || !top_is_object(w) || w->state == WS_KEY)
        return writer_fail(w, ST_EINVAL, "json_writer misuse: a key %s",
                           w->state == WS_KEY ? "right after another key" : "outside an object");
    if (w->state == WS_AFTER && put_byte(w, ',') != ST_OK)
        return w->status;
    if (put_escaped(w, key) != ST_OK || put_byte(w, ':') != ST_OK)
        return w->status;
    w->state = WS_KEY;
    return ST_OK;
}

st_status json_write_string(json_writer *w, st_str s)
{
    if (begin_value(w) != ST_OK || put_escaped(w, s) != ST_OK)
        return w->status;
    end_value(w);
    return ST_OK;
}

/* ---- scalars -------------------------------------------------------------------- */

static st_status put_value_text(json_writer *w, const char *text, size_t n)
{
    if (begin_value(w) != ST_OK || put(w, text, n) != ST_OK)
        return w->status;
    end_value(w);
    return ST_OK;
}

st_status json_write_null(json_writer *w)
{
    return put_value_text(w, "null", 4);
}

st_status json_write_bool(json_writer *w, bool v)
{
    return v ? put_value_text(w, "true", 4) : put_value_text(w, "false", 5);
}

/* Decimal digits of v ending at `end`; returns the start. */
static char *u64_backwards(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static size_t format_u64(uint64_t v, char *buf)
{
    char tmp[24];
    char *s = u64_backwards(v, tmp + sizeof tmp);
    size_t n = (size_t)(tmp + sizeof tmp - s);
    memcpy(buf, s, n);
    return n;
}

static size_t format_i64(int64_t v, char *buf)
{
    if (v < 0) {
        buf[0] = '-';
        return 1 + format_u64(0 - (uint64_t)v, buf + 1);
    }
    return format_u64((uint64_t)v, buf);
}

st_status json_write_int64(json_writer *w, int64_t v)
{
    char buf[24];
    return put_value_text(w, buf, format_i64(v, buf));
}

st_status json_write_uint64(json_writer *w, uint64_t v)
{
    char buf[24];
    return put_value_text(w, buf, format_u64(v, buf));
}

static st_status nonfinite_value(json_writer *w, const char *what)
{
    if (w->nonfinite == JSON_NONFINITE_NULL)
        return json_write_null(w);
    return writer_fail(w, ST_EINVAL,
                       "json_writer: %s is not representable in JSON "
                       "(json_writer_set_nonfinite(JSON_NONFINITE_NULL) writes null)",
                       what);
}

st_status json_write_double(json_writer *w, double v)
{
    char buf[JSON_NUMBER_MAX_CHARS];
    size_t n = json_format_double(v, buf);
    if (!n)
        return nonfinite_value(w, isnan(v) ? "NaN" : "infinity");
    return put_value_text(w, buf, n);
}

st_status json_write_float(json_writer *w, float v)
{
    char buf[JSON_NUMBER_MAX_CHARS];
    size_t n = json_format_float(v, buf);
    if (!n)
        return nonfinite_value(w, isnan(v) ? "NaN" : "infinity");
    return put_value_text(w, buf, n);
}

st_status json_write_number_text(json_writer *w, st_str text)
{
    json_decimal d;
    size_t bad = 0;
    const char *why = "";
    if (w->status != ST_OK)
        return w->status;
    if (!text.ptr || json_number_scan(text.ptr, text.len, &d, &bad, &why) != text.len || !text.len)
        return writer_fail(w, ST_EINVAL, "json_write_number_text: %.*s is not a JSON number",
                           (int)(text.len > 40 ? 40 : text.len), text.ptr ? text.ptr : "");
    return put_value_text(w, text.ptr, text.len);
}

/* ---- tensors ----------------------------------------------------------------------- */

/* Formats element i of a `t` array into o (JSON_NUMBER_MAX_CHARS room);
 * returns the length, 0 for a non-finite float. */
static inline size_t format_element(st_dtype t, const uint8_t *data, size_t i, char *o)
{
    switch (t) {
    case ST_DT_FLOAT32: {
        float v;
        memcpy(&v, data + 4 * i, 4);
        return json_format_float(v, o);
    }
    case ST_DT_FLOAT64: {
        double v;
        memcpy(&v, data + 8 * i, 8);
        return json_format_double(v, o);
    }
    case ST_DT_FLOAT16: {
        uint16_t v;
        memcpy(&v, data + 2 * i, 2);
        return json_format_half(v, o);
    }
    case ST_DT_BOOL:
        if (data[i]) {
            memcpy(o, "true", 4);
            return 4;
        }
        memcpy(o, "false", 5);
        return 5;
    case ST_DT_UINT8: return format_u64(data[i], o);
    case ST_DT_INT8: return format_i64((int8_t)data[i], o);
    case ST_DT_UINT16: {
        uint16_t v;
        memcpy(&v, data + 2 * i, 2);
        return format_u64(v, o);
    }
    case ST_DT_INT16: {
        int16_t v;
        memcpy(&v, data + 2 * i, 2);
        return format_i64(v, o);
    }
    case ST_DT_UINT32: {
        uint32_t v;
        memcpy(&v, data + 4 * i, 4);
        return format_u64(v, o);
    }
    case ST_DT_INT32: {
        int32_t v;
        memcpy(&v, data + 4 * i, 4);
        return format_i64(v, o);
    }
    case ST_DT_UINT64: {
        uint64_t v;
        memcpy(&v, data + 8 * i, 8);
        return format_u64(v, o);
    }
    default: {
        int64_t v;
        memcpy(&v, data + 8 * i, 8);
        return format_i64(v, o);
    }
    }
}

/* Writes elements [first, first+n) comma-separated (no brackets).  Space
 * is reserved a block at a time so the inner loop writes straight into
 * the buffer without a bounds check per byte. */
static st_status write_run(json_writer *w, st_dtype t, const uint8_t *data,
                           size_t first, size_t n)
{
    enum { BLOCK = 1024, ROOM = JSON_NUMBER_MAX_CHARS + 1 };
    st_buf *b = w->out;
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < BLOCK ? n - done : BLOCK;
        if (st_buf_reserve(b, chunk * ROOM) != ST_OK)
            return writer_fail(w, ST_ENOMEM, "json_writer: out of memory at %zu bytes", b->len);
        char *o = (char *)b->data + b->len, *start = o;
        for (size_t k = 0; k < chunk; k++) {
            size_t i = first + done + k;
            if (i != first)
                *o++ = ',';
            size_t len = format_element(t, data, i, o);
            if (!len) {
                if (w->nonfinite != JSON_NONFINITE_NULL) {
                    b->len += (size_t)(o - start);
                    return writer_fail(w, ST_EINVAL,
                                       "json_write_numbers: element %zu is NaN or infinite, "
                                       "which JSON cannot represent", i);
                }
                memcpy(o, "null", 4);
                len = 4;
            }
            o += len;
        }
        b->len += (size_t)(o - start);
        done += chunk;
    }
    return ST_OK;
}

/* One nested level: '[' then either elements or sub-arrays, then ']'. */
static st_status write_level(json_writer *w, st_dtype t, const uint8_t *data,
                             const size_t *shape, size_t rank, size_t level,
                             size_t *offset)
{
    if (put_byte(w, '[') != ST_OK)
        return w->status;
    if (level + 1 == rank) {
        if (write_run(w, t, data, *offset, shape[level]) != ST_OK)
            return w->status;
        *offset += shape[level];
    } else {
        for (size_t i = 0; i < shape[level]; i++) {
            if (i && put_byte(w, ',') != ST_OK)
                return w->status;
            if (write_level(w, t, data, shape, rank, level + 1, offset) != ST_OK)
                return w->status;
        }
    }
    return put_byte(w, ']');
}

st_status json_write_numbers(json_writer *w, st_dtype dtype, const void *data,
                             const size_t *shape, size_t rank, bool nested)
{
    if (w->status != ST_OK)
        return w->status;
    if (st_dtype_size(dtype) == 0 || dtype == ST_DT_STRING)
        return writer_fail(w, ST_EINVAL, "json_write_numbers: dtype %s is not numeric",
                           st_dtype_name(dtype));
    if (rank > JSON_MAX_RANK || (rank && !shape))
        return writer_fail(w, ST_EINVAL, "json_write_numbers: bad rank %zu", rank);
    size_t count = 1;
    for (size_t i = 0; i < rank; i++)
        if (st_mul_overflow(count, shape[i], &count))
            return writer_fail(w, ST_EOVERFLOW, "json_write_numbers: element count overflows");
    if (count && !data)
        return writer_fail(w, ST_EINVAL, "json_write_numbers: NULL data for %zu elements", count);
    if (begin_value(w) != ST_OK)
        return w->status;
    if (nested && rank == 0) {
        if (write_run(w, dtype, data, 0, 1) != ST_OK)
            return w->status;
    } else if (!nested) {
        if (put_byte(w, '[') != ST_OK || write_run(w, dtype, data, 0, count) != ST_OK ||
            put_byte(w, ']') != ST_OK)
            return w->status;
    } else {
        size_t offset = 0;
        if (write_level(w, dtype, data, shape, rank, 0, &offset) != ST_OK)
            return w->status;
    }
    end_value(w);
    return ST_OK;
}

st_status json_writer_finish(json_writer *w)
{
    if (w->status != ST_OK)
        return w->status;
    if (w->state != WS_DONE)
        return writer_fail(w, ST_EINVAL, "json_writer misuse: the document is incomplete "
                                         "(%u containers open)", (unsigned)w->depth);
    return ST_OK;
}
