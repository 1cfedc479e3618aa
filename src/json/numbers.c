/* numbers.c - typed numeric arrays: json_read_numbers decodes a number, a
 * bool or a nested array of them straight into a typed buffer, recording
 * the shape and refusing ragged arrays; no tree is built.  The writer half
 * (json_write_numbers) lives in writer.c. */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "json/json_int.h"

/* Where elements go: a growable st_buf or a fixed caller array. */
typedef struct {
    st_buf *buf;   /* NULL for a fixed array */
    uint8_t *base; /* buf->data or the caller's array */
    size_t len;    /* bytes written (buf: from buf->len) */
    size_t cap;    /* bytes available */
} sink;

static const char *dtype_range_text(st_dtype t)
{
    switch (t) {
    case ST_DT_UINT8: return "0..255";
    case ST_DT_INT8: return "-128..127";
    case ST_DT_UINT16: return "0..65535";
    case ST_DT_INT16: return "-32768..32767";
    case ST_DT_UINT32: return "0..4294967295";
    case ST_DT_INT32: return "-2147483648..2147483647";
    case ST_DT_UINT64: return "0..18446744073709551615";
    case ST_DT_INT64: return "-9223372036854775808..9223372036854775807";
    case ST_DT_BOOL: return "true, false, 0 or 1";
    case ST_DT_FLOAT16: return "|x| < 65520";
    case ST_DT_FLOAT32: return "|x| < 3.4028235677973366e+38";
    default: return "|x| < 1.7976931348623158e+308";
    }
}

static st_status value_error(json_reader *r, size_t at, size_t end, st_dtype t, bool integral)
{
    size_t n = end - at;
    return json_reader_error_at(r, ST_EINVAL, at, "number %.*s%s %s %s (%s)",
                                (int)(n > 40 ? 40 : n), r->data + at, n > 40 ? "..." : "",
                                integral ? "is out of range for" : "is not an integer, as needed for",
                                st_dtype_name(t), dtype_range_text(t));
}

/* Integer limits per dtype: largest magnitude for positive and negative. */
static bool int_limits(st_dtype t, uint64_t *pos_max, uint64_t *neg_max)
{
    switch (t) {
    case ST_DT_UINT8: *pos_max = UINT8_MAX; *neg_max = 0; return true;
    case ST_DT_INT8: *pos_max = INT8_MAX; *neg_max = 128; return true;
    case ST_DT_UINT16: *pos_max = UINT16_MAX; *neg_max = 0; return true;
    case ST_DT_INT16: *pos_max = INT16_MAX; *neg_max = 32768; return true;
    case ST_DT_UINT32: *pos_max = UINT32_MAX; *neg_max = 0; return true;
    case ST_DT_INT32: *pos_max = INT32_MAX; *neg_max = (uint64_t)INT32_MAX + 1; return true;
    case ST_DT_UINT64: *pos_max = UINT64_MAX; *neg_max = 0; return true;
    case ST_DT_INT64: *pos_max = INT64_MAX; *neg_max = (uint64_t)INT64_MAX + 1; return true;
    case ST_DT_BOOL: *pos_max = 1; *neg_max = 0; return true;
    default: return false;
    }
}

/* Stores magnitude/sign as dtype t at dst (range already checked). */
static inline void store_int(st_dtype t, void *dst, uint64_t mag, bool neg)
{
    uint64_t v = neg ? 0 - mag : mag; /* two's complement */
    switch (t) {
    case ST_DT_UINT8: case ST_DT_INT8: case ST_DT_BOOL: {
        uint8_t x = (uint8_t)v;
        memcpy(dst, &x, 1);
        break;
    }
    case ST_DT_UINT16: case ST_DT_INT16: {
        uint16_t x = (uint16_t)v;
        memcpy(dst, &x, 2);
        break;
    }
    case ST_DT_UINT32: case ST_DT_INT32: {
        uint32_t x = (uint32_t)v;
        memcpy(dst, &x, 4);
        break;
    }
    default:
        memcpy(dst, &v, 8);
        break;
    }
}

/* Parses the number at `at` into dst as dtype t; returns the offset after
 * it, or 0 after an error. */
static inline size_t number_element(json_reader *r, size_t at, st_dtype t, void *dst)
{
    json_decimal d;
    size_t bad = 0;
    const char *why = "";
    size_t n = json_number_scan(r->data + at, r->len - at, &d, &bad, &why);
    if (!n) {
        json_reader_error_at(r, ST_ECORRUPT, at + bad, "invalid number: %s", why);
        return 0;
    }
    size_t end = at + n;
    switch (t) {
    case ST_DT_FLOAT32: {
        float v = json_decimal_to_float_fast(&d);
        if (isinf(v))
            break;
        memcpy(dst, &v, sizeof v);
        return end;
    }
    case ST_DT_FLOAT64: {
        double v = json_decimal_to_double(&d);
        if (isinf(v))
            break;
        memcpy(dst, &v, sizeof v);
        return end;
    }
    case ST_DT_FLOAT16: {
        uint16_t v = json_decimal_to_half(&d);
        if ((v & 0x7fffu) == 0x7c00u)
            break;
        memcpy(dst, &v, sizeof v);
        return end;
    }
    default: {
        uint64_t mag, pos_max = 0, neg_max = 0;
        int_limits(t, &pos_max, &neg_max);
        int rc = json_decimal_to_magnitude(&d, &mag);
        if (rc == 1) {
            value_error(r, at, end, t, false);
            return 0;
        }
        if (rc == 2 || mag > (d.negative ? neg_max : pos_max))
            break;
        store_int(t, dst, mag, d.negative);
        return end;
    }
    }
    value_error(r, at, end, t, true);
    return 0;
}

/* One scalar element (number, or true/false for bool) at `at`. */
static size_t scalar_element(json_reader *r, size_t at, st_dtype t, void *dst)
{
    char c = r->data[at];
    if (c == '-' || (c >= '0' && c <= '9'))
        return number_element(r, at, t, dst);
    if (t == ST_DT_BOOL && (c == 't' || c == 'f')) {
        bool v = c == 't';
        size_t n = v ? 4 : 5;
        if (r->len - at < n || memcmp(r->data + at, v ? "true" : "false", n) != 0) {
            json_reader_error_at(r, ST_ECORRUPT, at, "invalid literal");
            return 0;
        }
        uint8_t b = v;
        memcpy(dst, &b, 1);
        return at + n;
    }
    const char *kind = c == '"' ? "a string" : c == '{' ? "an object" : c == 'n' ? "null"
                     : c == 't' || c == 'f' ? "a bool" : NULL;
    if (!kind) {
        json_reader_error_at(r, ST_ECORRUPT, at, "unexpected character, expected a value");
        return 0;
    }
    json_reader_error_at(r, ST_ETYPE, at, "expected a number (element of a %s array), found %s",
                         st_dtype_name(t), kind);
    return 0;
}

/* Makes room for one more element of `esize` bytes. */
static bool sink_grow(json_reader *r, sink *s, size_t esize, size_t at)
{
    if (!s->buf) {
        json_reader_error_at(r, ST_ELIMIT, at, "more than %zu elements (the destination's capacity)",
                             s->cap / esize);
        return false;
    }
    s->buf->len = s->len;
    /* st_buf_reserve at least doubles the capacity, so growth is amortised. */
    if (st_buf_reserve(s->buf, esize) != ST_OK) {
        json_reader_error_at(r, ST_ENOMEM, at, "out of memory growing a numeric array past %zu bytes",
                             s->len);
        return false;
    }
    s->base = s->buf->data;
    s->cap = s->buf->cap;
    return true;
}

static st_status read_numbers(json_reader *r, st_dtype t, sink *s, size_t *shape,
                              size_t max_rank, size_t *rank_out)
{
    size_t esize = st_dtype_size(t);
    if (esize == 0 || t == ST_DT_STRING)
        return json_reader_error_at(r, ST_EINVAL, r->pos,
                                    "json_read_numbers: dtype %s is not numeric", st_dtype_name(t));
    if (max_rank > JSON_MAX_RANK)
        max_rank = JSON_MAX_RANK;
    size_t pos = json_reader_value_start(r);
    if (pos == SIZE_MAX)
        return r->status;

    const char *p = r->data;
    size_t len = r->len;
    size_t dims[JSON_MAX_RANK], counts[JSON_MAX_RANK];
    int rank = -1;   /* set by the first scalar or the first empty array */
    size_t lvl = 0;  /* arrays open */
    size_t depth_room = r->limits.max_depth - r->depth;
    size_t elements = r->elements, max_elements = r->limits.max_elements;

    for (;;) {
        /* A value is due at pos (whitespace skipped). */
        if (p[pos] == '[') {
            if (lvl > 0) {
                size_t c = ++counts[lvl - 1];
                if (dims[lvl - 1] != SIZE_MAX && c > dims[lvl - 1])
                    goto ragged_long;
            }
            if (rank >= 0 && lvl >= (size_t)rank) {
                json_reader_error_at(r, ST_ESHAPE, pos,
                                     "ragged array: an array where a number was expected "
                                     "(rank %d)", rank);
                goto fail;
            }
            if (lvl >= max_rank) {
                json_reader_error_at(r, ST_ELIMIT, pos, "array nested deeper than rank %zu", max_rank);
                goto fail;
            }
            if (lvl >= depth_room) {
                json_reader_error_at(r, ST_ELIMIT, pos,
                                     "nesting deeper than %zu levels (json_limits.max_depth)",
                                     r->limits.max_depth);
                goto fail;
            }
            if (++elements > max_elements)
                goto too_many;
            if (rank < 0)
                dims[lvl] = SIZE_MAX;
            counts[lvl++] = 0;
            pos = json_skip_ws(p, pos + 1, len);
            if (pos >= len)
                goto eof;
            if (p[pos] == ']')
                goto close;
            continue;
        }
        /* A scalar. */
        if (rank < 0) {
            rank = (int)lvl;
        } else if (lvl != (size_t)rank) {
            json_reader_error_at(r, ST_ESHAPE, pos,
                                 "ragged array: a number at depth %zu, expected an array "
                                 "(rank %d)", lvl, rank);
            goto fail;
        }
        if (lvl > 0) {
            size_t c = ++counts[lvl - 1];
            if (dims[lvl - 1] != SIZE_MAX && c > dims[lvl - 1])
                goto ragged_long;
        }
        if (++elements > max_elements)
            goto too_many;
        if (s->cap - s->len < esize && !sink_grow(r, s, esize, pos))
            goto fail;
        pos = scalar_element(r, pos, t, s->base + s->len);
        if (!pos)
            goto fail;
        s->len += esize;
    after:
        if (lvl == 0)
            break;
        pos = json_skip_ws(p, pos, len);
        if (pos >= len)
            goto eof;
        if (p[pos] == ',') {
            pos = json_skip_ws(p, pos + 1, len);
            if (pos >= len)
                goto eof;
            continue;
        }
        if (p[pos] != ']') {
            json_reader_error_at(r, ST_ECORRUPT, pos, "unexpected character, expected ',' or ']'");
            goto fail;
        }
    close: {
        size_t level = lvl - 1, n = counts[level];
        if (rank < 0)
            rank = (int)lvl; /* an empty innermost array fixes the rank */
        if (dims[level] == SIZE_MAX) {
            dims[level] = n;
        } else if (dims[level] != n) {
            json_reader_error_at(r, ST_ESHAPE, pos,
                                 "ragged array: %zu elements at depth %zu where the first array there has %zu",
                                 n, lvl, dims[level]);
            goto fail;
        }
        lvl--;
        pos++;
        goto after;
    }
    }
    r->elements = elements;
    if (s->buf)
        s->buf->len = s->len;
    json_reader_value_done(r, pos);
    if (rank_out)
        *rank_out = (size_t)rank;
    for (int i = 0; i < rank && shape; i++)
        shape[i] = dims[i];
    return ST_OK;

ragged_long:
    json_reader_error_at(r, ST_ESHAPE, pos,
                         "ragged array: more than %zu elements at depth %zu, as many as the first array there",
                         dims[lvl - 1], lvl);
    goto fail;
eof:
    json_reader_error_at(r, ST_ECORRUPT, pos, "unexpected end of input inside an array");
    goto fail;
too_many:
    json_reader_error_at(r, ST_ELIMIT, pos, "more than %zu values (json_limits.max_elements)",
                         max_elements);
fail:
    if (s->buf)
        s->buf->len = s->len;
    return r->status;
}

st_status json_read_numbers(json_reader *r, st_dtype dtype, st_buf *out,
                            size_t *shape, size_t max_rank, size_t *rank)
{
    sink s = { out, out->data, out->len, out->cap };
    return read_numbers(r, dtype, &s, shape, shape ? max_rank : 0, rank);
}

st_status json_read_numbers_into(json_reader *r, st_dtype dtype, void *dst,
                                 size_t capacity, size_t *count, size_t *shape,
                                 size_t max_rank, size_t *rank)
{
    size_t esize = st_dtype_size(dtype), cap_bytes;
    if (esize == 0 || st_mul_overflow(capacity, esize, &cap_bytes))
        cap_bytes = 0;
    sink s = { NULL, dst, 0, cap_bytes };
    st_status st = read_numbers(r, dtype, &s, shape, shape ? max_rank : 0, rank);
    if (count)
        *count = esize ? s.len / esize : 0;
    return st;
}
