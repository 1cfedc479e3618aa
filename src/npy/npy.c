/* npy.c - NumPy .npy reading and writing.
 *
 * The reader parses the header's Python dict literal itself, over
 * (pointer, length) bytes: tolerant of what real writers produce (any key
 * order, spacing, trailing commas, Python 2 'L' suffixes) and refusing
 * anything it cannot fully account for.  The writer reproduces
 * numpy.lib.format byte for byte so that our files diff cleanly against
 * numpy's. */
#include "npy/npy.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "npy/npy_int.h"

/* Element bytes are handed out exactly as stored, which is only "native"
 * on a little-endian host. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "src/npy assumes a little-endian host");

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_BYTES 6
/* The magic plus the two version bytes (numpy's MAGIC_LEN). */
#define NPY_MAGIC_LEN 8
/* numpy pads the preamble so the data offset is a multiple of this
 * (format.ARRAY_ALIGN); we write the same, and read any alignment. */
#define NPY_ARRAY_ALIGN 64
/* numpy leaves spaces for the first axis to grow to this many digits in
 * place (format.GROWTH_AXIS_MAX_DIGITS); copied so output is identical. */
#define NPY_GROWTH_AXIS_MAX_DIGITS 21
/* How many input bytes an error message quotes. */
#define NPY_QUOTE_BYTES 40
/* Pipes may carry this much header on top of max_data_bytes. */
#define NPY_STREAM_HEADER_SLACK ((size_t)1 << 20)

/* ---- messages ----------------------------------------------------------- */

static st_status npy_fail(st_error *err, st_status code, const char *who,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* st_fail with "<who>: " in front, so messages name the file they are about
 * ("npy" for in-memory input). */
static st_status npy_fail(st_error *err, st_status code, const char *who,
                          const char *fmt, ...)
{
    if (!err)
        return code;
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return st_fail(err, code, "%s: %s", who, msg);
}

/* Untrusted bytes made safe to print on one line: printable ASCII as is,
 * the rest as \xNN, cut after NPY_QUOTE_BYTES with "...". */
typedef struct npy_quote {
    char text[NPY_QUOTE_BYTES * 4 + 8];
} npy_quote;

static const char *quote_bytes(npy_quote *q, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t shown = n < NPY_QUOTE_BYTES ? n : NPY_QUOTE_BYTES;
    size_t o = 0;
    for (size_t i = 0; i < shown; i++) {
        uint8_t ch = p[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            q->text[o++] = (char)ch;
        } else {
            q->text[o++] = '\\';
            q->text[o++] = 'x';
            q->text[o++] = hex[ch >> 4];
            q->text[o++] = hex[ch & 15];
        }
    }
    if (shown < n) {
        memcpy(q->text + o, "...", 3);
        o += 3;
    }
    q->text[o] = '\0';
    return q->text;
}

static const char *quote_str(npy_quote *q, st_str s)
{
    return quote_bytes(q, (const uint8_t *)s.ptr, s.len);
}

/* A shape as Python's repr of a tuple: "()", "(5,)", "(2, 3)".  The writer
 * puts this in the header, so it must match repr exactly. */
typedef struct npy_shape_text {
    char text[NPY_MAX_RANK * 22 + 4];
} npy_shape_text;

static const char *format_shape(npy_shape_text *t, const size_t *shape, size_t rank)
{
    size_t o = 0, cap = sizeof t->text;
    t->text[o++] = '(';
    for (size_t i = 0; i < rank && i < NPY_MAX_RANK; i++) {
        int n = snprintf(t->text + o, cap - o, i ? ", %zu" : "%zu", shape[i]);
        if (n > 0)
            o += (size_t)n;
    }
    if (rank == 1)
        t->text[o++] = ',';
    t->text[o++] = ')';
    t->text[o] = '\0';
    return t->text;
}

/* ---- dtypes --------------------------------------------------------------- */

typedef struct npy_descr_entry {
    st_dtype dtype;
    char kind;           /* numpy kind character */
    uint8_t item_bytes;
    const char *descr;   /* what numpy.save writes */
} npy_descr_entry;

static const npy_descr_entry descr_table[] = {
    { ST_DT_BOOL, 'b', 1, "|b1" },     { ST_DT_INT8, 'i', 1, "|i1" },
    { ST_DT_UINT8, 'u', 1, "|u1" },    { ST_DT_INT16, 'i', 2, "<i2" },
    { ST_DT_UINT16, 'u', 2, "<u2" },   { ST_DT_INT32, 'i', 4, "<i4" },
    { ST_DT_UINT32, 'u', 4, "<u4" },   { ST_DT_INT64, 'i', 8, "<i8" },
    { ST_DT_UINT64, 'u', 8, "<u8" },   { ST_DT_FLOAT16, 'f', 2, "<f2" },
    { ST_DT_FLOAT32, 'f', 4, "<f4" },  { ST_DT_FLOAT64, 'f', 8, "<f8" },
};
#define DESCR_COUNT (sizeof descr_table / sizeof descr_table[0])

static const npy_descr_entry *entry_for_dtype(st_dtype dtype)
{
    for (size_t i = 0; i < DESCR_COUNT; i++)
        if (descr_table[i].dtype == dtype)
            return &descr_table[i];
    return NULL;
}

/* numpy kinds we recognise but refuse, named for the message. */
static const char *refused_kind(uint8_t kind)
{
    switch (kind) {
    case 'U': return "unicode strings";
    case 'S': case 'a': return "byte strings";
    case 'V': return "raw void records";
    case 'c': return "complex numbers";
    case 'M': return "datetime64";
    case 'm': return "timedelta64";
    default: return NULL;
    }
}

#define NPY_SUPPORTED_TYPES "bool, int8/16/32/64, uint8/16/32/64, float16/32/64"

static st_status descr_to_dtype(const char *who, st_str descr, st_dtype *out,
                                bool *is_big_endian, st_error *err)
{
    const uint8_t *s = (const uint8_t *)descr.ptr;
    size_t n = descr.len, i = 0;
    npy_quote q;
    uint8_t order = '=';
    if (n > 0 && (s[0] == '<' || s[0] == '>' || s[0] == '|' || s[0] == '=')) {
        order = s[0];
        i = 1;
    }
    if (i >= n)
        return npy_fail(err, ST_ECORRUPT, who, "dtype descr '%s' names no type",
                        quote_str(&q, descr));
    uint8_t kind = s[i++];
    if (kind == 'O')
        return npy_fail(err, ST_EUNSUPPORTED, who,
                        "object arrays ('%s') are not supported: they hold pickled "
                        "Python objects; save a numeric array", quote_str(&q, descr));
    const char *refused = refused_kind(kind);
    if (refused)
        return npy_fail(err, ST_EUNSUPPORTED, who,
                        "dtype '%s' (%s) is not supported; use " NPY_SUPPORTED_TYPES,
                        quote_str(&q, descr), refused);
    size_t size = 0, digits = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9' && digits < 3; i++, digits++)
        size = size * 10 + (size_t)(s[i] - '0');
    bool is_numeric_kind = kind == 'f' || kind == 'i' || kind == 'u' || kind == 'b';
    if (digits == 0 || i != n || !is_numeric_kind)
        return npy_fail(err, ST_ECORRUPT, who,
                        "dtype descr '%s' is not one numpy writes (expected e.g. "
                        "'<f4', '|u1' or '|b1')", quote_str(&q, descr));
    for (size_t k = 0; k < DESCR_COUNT; k++) {
        const npy_descr_entry *e = &descr_table[k];
        if (e->kind == (char)kind && e->item_bytes == size) {
            *out = e->dtype;
            if (is_big_endian)
                *is_big_endian = order == '>' && size > 1;
            return ST_OK;
        }
    }
    return npy_fail(err, ST_EUNSUPPORTED, who,
                    "dtype '%s' (%zu-byte %s) is not supported; use " NPY_SUPPORTED_TYPES,
                    quote_str(&q, descr), size,
                    kind == 'f' ? "float" : kind == 'b' ? "bool" : "integer");
}

st_status npy_dtype_from_descr(st_str descr, st_dtype *out, bool *is_big_endian,
                               st_error *err)
{
    return descr_to_dtype("npy", descr, out, is_big_endian, err);
}

const char *npy_descr_from_dtype(st_dtype dtype)
{
    const npy_descr_entry *e = entry_for_dtype(dtype);
    return e ? e->descr : NULL;
}

void npy_byteswap(void *data, size_t count, size_t item_bytes)
{
    uint8_t *p = data;
    /* memcpy in and out: the data may sit at any alignment. */
    for (size_t i = 0; i < count; i++, p += item_bytes) {
        if (item_bytes == 2) {
            uint16_t v;
            memcpy(&v, p, 2);
            v = __builtin_bswap16(v);
            memcpy(p, &v, 2);
        } else if (item_bytes == 4) {
            uint32_t v;
            memcpy(&v, p, 4);
            v = __builtin_bswap32(v);
            memcpy(p, &v, 4);
        } else if (item_bytes == 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            v = __builtin_bswap64(v);
            memcpy(p, &v, 8);
        } else {
            return;
        }
    }
}

double npy_get_double(const npy_array *a, size_t index)
{
    if (!a || !a->data || index >= a->element_count || a->item_bytes == 0 ||
        a->item_bytes > 8)
        return NAN;
    uint8_t b[8];
    memcpy(b, a->data + index * a->item_bytes, a->item_bytes);
    if (a->is_big_endian)
        npy_byteswap(b, 1, a->item_bytes);
    union {
        int8_t i8; uint8_t u8; int16_t i16; uint16_t u16; int32_t i32;
        uint32_t u32; int64_t i64; uint64_t u64; float f32; double f64;
    } v;
    memcpy(&v, b, a->item_bytes);
    switch (a->dtype) {
    case ST_DT_BOOL: return v.u8 != 0;
    case ST_DT_INT8: return v.i8;
    case ST_DT_UINT8: return v.u8;
    case ST_DT_INT16: return v.i16;
    case ST_DT_UINT16: return v.u16;
    case ST_DT_INT32: return v.i32;
    case ST_DT_UINT32: return v.u32;
    case ST_DT_INT64: return (double)v.i64;
    case ST_DT_UINT64: return (double)v.u64;
    case ST_DT_FLOAT16: return st_half_to_float(v.u16);
    case ST_DT_FLOAT32: return v.f32;
    case ST_DT_FLOAT64: return v.f64;
    default: return NAN;
    }
}

/* ---- header dict parser --------------------------------------------------- */

typedef struct npy_cursor {
    const uint8_t *p;        /* the header dict bytes (untrusted) */
    size_t len;
    size_t pos;
    unsigned version_major;  /* 1.0/2.0 headers may carry Python 2 'L's */
    const char *who;
    st_error *err;
} npy_cursor;

/* What the dict said, beyond what lands in npy_array. */
typedef struct npy_header {
    st_str descr;
    bool is_fortran;
    bool is_big_endian;
} npy_header;

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4, KEY_ALL = 7 };

static bool is_space(uint8_t ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static bool is_digit(int ch)
{
    return ch >= '0' && ch <= '9';
}

static void skip_space(npy_cursor *c)
{
    while (c->pos < c->len && is_space(c->p[c->pos]))
        c->pos++;
}

/* The next byte, or -1 at the end of the header. */
static int peek(const npy_cursor *c)
{
    return c->pos < c->len ? c->p[c->pos] : -1;
}

/* "near '...'" quoting the input from `pos`, for locating an error. */
typedef struct npy_where {
    char text[sizeof(npy_quote) + 16];
} npy_where;

static const char *where_at(npy_where *w, const npy_cursor *c, size_t pos)
{
    if (pos >= c->len)
        return "at the end of the header";
    npy_quote q;
    snprintf(w->text, sizeof w->text, "near '%s'", quote_bytes(&q, c->p + pos, c->len - pos));
    return w->text;
}

static const char *where(npy_where *w, const npy_cursor *c)
{
    return where_at(w, c, c->pos);
}

/* A Python string literal in single or double quotes.  Escapes never
 * occur in what numpy writes for plain dtypes, so they are refused rather
 * than decoded. */
static st_status parse_string(npy_cursor *c, const char *what, st_str *out)
{
    npy_where w;
    int quote = peek(c);
    if (quote != '\'' && quote != '"')
        return npy_fail(c->err, ST_ECORRUPT, c->who, "header: expected %s in quotes %s",
                        what, where(&w, c));
    size_t open = c->pos++;
    while (c->pos < c->len) {
        uint8_t ch = c->p[c->pos];
        if (ch == quote) {
            *out = st_str_make(c->p + open + 1, c->pos - open - 1);
            c->pos++;
            return ST_OK;
        }
        if (ch == '\\' || ch == '\n')
            return npy_fail(c->err, ST_ECORRUPT, c->who,
                            "header: escape or line break inside a string %s",
                            where_at(&w, c, open));
        c->pos++;
    }
    return npy_fail(c->err, ST_ECORRUPT, c->who, "header: unterminated string %s",
                    where_at(&w, c, open));
}

/* Consumes `word` when it stands alone (not the start of a longer name). */
static bool match_word(npy_cursor *c, const char *word)
{
    size_t n = strlen(word); /* a literal of ours, not input */
    if (c->len - c->pos < n || memcmp(c->p + c->pos, word, n) != 0)
        return false;
    if (c->pos + n < c->len) {
        unsigned next = c->p[c->pos + n];
        unsigned lower = next | 0x20u;
        if (next == '_' || is_digit((int)next) || (lower >= 'a' && lower <= 'z'))
            return false;
    }
    c->pos += n;
    return true;
}

/* Length of the bracketed literal starting at c->pos (a structured descr
 * list), so the message can quote exactly it; strings inside are skipped
 * so their brackets do not count. */
static size_t bracket_span(const npy_cursor *c)
{
    size_t depth = 0, i = c->pos;
    while (i < c->len) {
        uint8_t ch = c->p[i++];
        if (ch == '\'' || ch == '"') {
            while (i < c->len && c->p[i] != ch)
                i += (c->p[i] == '\\' && i + 1 < c->len) ? 2 : 1;
            if (i < c->len)
                i++;
        } else if (ch == '[' || ch == '(' || ch == '{') {
            depth++;
        } else if ((ch == ']' || ch == ')' || ch == '}') && depth > 0 && --depth == 0) {
            break;
        }
    }
    return i - c->pos;
}

static st_status parse_descr(npy_cursor *c, npy_header *h, npy_array *a)
{
    npy_quote q;
    if (peek(c) == '[') {
        size_t span = bracket_span(c);
        while (span > 0 && is_space(c->p[c->pos + span - 1]))
            span--; /* an unclosed list runs to the header's padding */
        return npy_fail(c->err, ST_EUNSUPPORTED, c->who,
                        "structured dtype %s is not supported; save each field as "
                        "its own numeric array", quote_bytes(&q, c->p + c->pos, span));
    }
    st_status s = parse_string(c, "the 'descr' value", &h->descr);
    if (s != ST_OK)
        return s;
    s = descr_to_dtype(c->who, h->descr, &a->dtype, &h->is_big_endian, c->err);
    if (s == ST_OK)
        a->item_bytes = st_dtype_size(a->dtype);
    return s;
}

static st_status parse_dim(npy_cursor *c, size_t *out)
{
    npy_where w;
    npy_quote q;
    if (peek(c) == '-')
        return npy_fail(c->err, ST_ECORRUPT, c->who,
                        "header: shape has a negative dimension %s", where(&w, c));
    if (!is_digit(peek(c)))
        return npy_fail(c->err, ST_ECORRUPT, c->who,
                        "header: shape must hold non-negative integers, found %s",
                        where(&w, c));
    size_t start = c->pos, v = 0;
    while (is_digit(peek(c))) {
        if (st_mul_overflow(v, 10, &v) ||
            st_add_overflow(v, (size_t)(c->p[c->pos] - '0'), &v)) {
            size_t end = start;
            while (end < c->len && is_digit(c->p[end]))
                end++;
            return npy_fail(c->err, ST_EOVERFLOW, c->who,
                            "header: dimension %s does not fit in 64 bits",
                            quote_bytes(&q, c->p + start, end - start));
        }
        c->pos++;
    }
    /* Python 2's repr of a long: numpy itself strips these from 1.0/2.0
     * headers. */
    if (c->version_major < 3 && peek(c) == 'L')
        c->pos++;
    *out = v;
    return ST_OK;
}

static st_status parse_shape(npy_cursor *c, npy_array *a)
{
    npy_where w;
    if (peek(c) != '(')
        return npy_fail(c->err, ST_ECORRUPT, c->who,
                        "header: shape must be a tuple like (2, 3), found %s", where(&w, c));
    c->pos++;
    size_t rank = 0;
    bool has_trailing_comma = false;
    skip_space(c);
    while (peek(c) != ')') {
        if (rank == NPY_MAX_RANK)
            return npy_fail(c->err, ST_EUNSUPPORTED, c->who,
                            "shape has more than %d dimensions", NPY_MAX_RANK);
        st_status s = parse_dim(c, &a->shape[rank]);
        if (s != ST_OK)
            return s;
        rank++;
        skip_space(c);
        has_trailing_comma = peek(c) == ',';
        if (has_trailing_comma) {
            c->pos++;
            skip_space(c);
        } else if (peek(c) != ')') {
            return npy_fail(c->err, ST_ECORRUPT, c->who,
                            "header: expected ',' or ')' in shape %s", where(&w, c));
        }
    }
    c->pos++;
    /* "(5)" is the integer 5 in Python, which numpy rejects as a shape. */
    if (rank == 1 && !has_trailing_comma)
        return npy_fail(c->err, ST_ECORRUPT, c->who,
                        "header: shape (%zu) is not a tuple; a 1-d shape is written (%zu,)",
                        a->shape[0], a->shape[0]);
    a->rank = rank;
    return ST_OK;
}

static st_status parse_dict(npy_cursor *c, npy_header *h, npy_array *a)
{
    static const char *const key_names[] = { "descr", "fortran_order", "shape" };
    npy_where w;
    npy_quote q;
    unsigned seen = 0;
    st_status s;
    skip_space(c);
    if (peek(c) != '{')
        return npy_fail(c->err, ST_ECORRUPT, c->who,
                        "header is not a Python dict literal: expected '{' %s", where(&w, c));
    c->pos++;
    for (;;) {
        skip_space(c);
        if (peek(c) == '}')
            break;
        s = ST_OK;
        st_str key;
        if ((s = parse_string(c, "a key", &key)) != ST_OK)
            return s;
        unsigned bit = 0;
        for (unsigned k = 0; k < 3; k++)
            if (st_str_eq_c(key, key_names[k]))
                bit = 1u << k;
        if (!bit)
            return npy_fail(c->err, ST_ECORRUPT, c->who,
                            "header has an unexpected key '%s' (numpy writes only "
                            "'descr', 'fortran_order' and 'shape')", quote_str(&q, key));
        if (seen & bit)
            return npy_fail(c->err, ST_ECORRUPT, c->who, "header has the key '%s' twice",
                            quote_str(&q, key));
        seen |= bit;
        skip_space(c);
        if (peek(c) != ':')
            return npy_fail(c->err, ST_ECORRUPT, c->who,
                            "header: expected ':' after '%s' %s", quote_str(&q, key),
                            where(&w, c));
        c->pos++;
        skip_space(c);
        if (bit == KEY_DESCR) {
            s = parse_descr(c, h, a);
        } else if (bit == KEY_SHAPE) {
            s = parse_shape(c, a);
        } else if (match_word(c, "True")) {
            h->is_fortran = true;
        } else if (match_word(c, "False")) {
            h->is_fortran = false;
        } else {
            s = npy_fail(c->err, ST_ECORRUPT, c->who,
                         "header: fortran_order must be True or False, found %s",
                         where(&w, c));
        }
        if (s != ST_OK)
            return s;
        skip_space(c);
        if (peek(c) == ',') {
            c->pos++;
            continue;
        }
        if (peek(c) != '}')
            return npy_fail(c->err, ST_ECORRUPT, c->who,
                            "header: expected ',' or '}' after the value of '%s' %s",
                            quote_str(&q, key), where(&w, c));
    }
    c->pos++;
    skip_space(c);
    if (c->pos != c->len)
        return npy_fail(c->err, ST_ECORRUPT, c->who,
                        "header: unexpected bytes after the closing '}' %s", where(&w, c));
    if (seen != KEY_ALL) {
        char missing[64] = "";
        for (unsigned k = 0; k < 3; k++) {
            if (!(seen & (1u << k))) {
                size_t o = strlen(missing);
                snprintf(missing + o, sizeof missing - o, "%s'%s'", o ? ", " : "",
                         key_names[k]);
            }
        }
        return npy_fail(c->err, ST_ECORRUPT, c->who, "header is missing the key(s) %s",
                        missing);
    }
    return ST_OK;
}

/* ---- whole image ---------------------------------------------------------- */

static uint32_t read_le(const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

/* The shape's element count with the checks every consumer relies on:
 * no dimension or product over the limit, no overflow in count * item. */
static st_status check_sizes(const char *who, npy_array *a, const npy_options *opts,
                             st_error *err)
{
    size_t max_elements = opts && opts->max_elements ? opts->max_elements
                                                     : NPY_DEFAULT_MAX_ELEMENTS;
    size_t max_bytes = opts && opts->max_data_bytes ? opts->max_data_bytes
                                                    : NPY_DEFAULT_MAX_DATA_BYTES;
    npy_shape_text st;
    const char *shape = format_shape(&st, a->shape, a->rank);
    const char *type = st_dtype_name(a->dtype);
    size_t nonzero_product = 1, bytes;
    bool has_zero = false;
    /* Dimensions are bounded even when another is 0, so that strides
     * computed later from a zero-size array cannot overflow either. */
    for (size_t i = 0; i < a->rank; i++) {
        size_t d = a->shape[i];
        if (d > max_elements)
            return npy_fail(err, ST_ELIMIT, who,
                            "dimension %zu of shape %s exceeds the limit of %zu elements",
                            d, shape, max_elements);
        if (d == 0)
            has_zero = true;
        else if (st_mul_overflow(nonzero_product, d, &nonzero_product))
            return npy_fail(err, ST_EOVERFLOW, who,
                            "shape %s has more elements than a 64-bit size can count",
                            shape);
    }
    a->element_count = has_zero ? 0 : nonzero_product;
    if (a->element_count > max_elements)
        return npy_fail(err, ST_ELIMIT, who,
                        "shape %s has %zu elements, over the limit of %zu", shape,
                        a->element_count, max_elements);
    if (st_mul_overflow(a->element_count, a->item_bytes, &bytes))
        return npy_fail(err, ST_EOVERFLOW, who,
                        "shape %s of %s needs more bytes than a 64-bit size can count",
                        shape, type);
    if (bytes > max_bytes)
        return npy_fail(err, ST_ELIMIT, who,
                        "shape %s of %s needs %zu bytes, over the limit of %zu", shape,
                        type, bytes, max_bytes);
    a->data_bytes = bytes;
    return ST_OK;
}

static st_status parse_image(const uint8_t *data, size_t len, const npy_options *opts,
                             bool allow_big_endian, const char *who, npy_array *a,
                             st_error *err)
{
    npy_quote q;
    memset(a, 0, sizeof *a);
    if (len < NPY_MAGIC_BYTES || memcmp(data, NPY_MAGIC, NPY_MAGIC_BYTES) != 0)
        return npy_fail(err, ST_ECORRUPT, who,
                        "not a .npy file (it does not start with \"\\x93NUMPY\")");
    if (len < NPY_MAGIC_LEN)
        return npy_fail(err, ST_ECORRUPT, who,
                        "truncated: file ends inside the format version");
    unsigned major = data[6], minor = data[7];
    if (major < 1 || major > 3 || minor != 0)
        return npy_fail(err, ST_EUNSUPPORTED, who,
                        "format version %u.%u is not supported (known: 1.0, 2.0, 3.0)",
                        major, minor);
    size_t field_bytes = major == 1 ? 2 : 4;
    size_t prefix = NPY_MAGIC_LEN + field_bytes;
    if (len < prefix)
        return npy_fail(err, ST_ECORRUPT, who,
                        "truncated: file ends inside the header length");
    size_t header_len = read_le(data + NPY_MAGIC_LEN, field_bytes);
    if (header_len > len - prefix)
        return npy_fail(err, ST_ECORRUPT, who,
                        "header length %zu runs past the end of the file (%zu bytes "
                        "after the %zu-byte preamble)", header_len, len - prefix, prefix);

    npy_cursor c = { data + prefix, header_len, 0, major, who, err };
    npy_header h = { { NULL, 0 }, false, false };
    st_status s = parse_dict(&c, &h, a);
    if (s != ST_OK)
        return s;
    if (h.is_fortran)
        return npy_fail(err, ST_EUNSUPPORTED, who,
                        "Fortran-order arrays are not supported; save with "
                        "np.ascontiguousarray");
    if (h.is_big_endian && !allow_big_endian)
        return npy_fail(err, ST_EUNSUPPORTED, who,
                        "big-endian dtype '%s' is not supported for in-memory input; "
                        "save with arr.astype('%s')", quote_str(&q, h.descr),
                        npy_descr_from_dtype(a->dtype));
    a->is_big_endian = h.is_big_endian;
    a->version_major = (uint8_t)major;
    a->version_minor = (uint8_t)minor;
    if ((s = check_sizes(who, a, opts, err)) != ST_OK)
        return s;
    a->data_offset = prefix + header_len;
    size_t have = len - a->data_offset;
    if (have != a->data_bytes) {
        npy_shape_text st;
        const char *shape = format_shape(&st, a->shape, a->rank);
        if (have < a->data_bytes)
            return npy_fail(err, ST_ECORRUPT, who,
                            "data is %zu bytes but shape %s of %s needs %zu bytes "
                            "(file truncated?)", have, shape,
                            st_dtype_name(a->dtype), a->data_bytes);
        return npy_fail(err, ST_ECORRUPT, who,
                        "data is %zu bytes but shape %s of %s needs %zu bytes (%zu "
                        "extra: wrong shape in the header, or data appended)", have,
                        shape, st_dtype_name(a->dtype), a->data_bytes,
                        have - a->data_bytes);
    }
    a->data = data + a->data_offset;
    return ST_OK;
}

st_status npy_parse(const uint8_t *data, size_t len, const npy_options *opts,
                    npy_array *out, st_error *err)
{
    if (!data && len > 0)
        return npy_fail(err, ST_EINVAL, "npy", "no input buffer");
    st_status s = parse_image(data, len, opts, opts && opts->allow_big_endian, "npy",
                              out, err);
    if (s != ST_OK)
        memset(out, 0, sizeof *out);
    return s;
}

/* ---- files ---------------------------------------------------------------- */

void npy_file_close(npy_file *f)
{
    if (!f)
        return;
    if (f->is_mapped && f->base)
        munmap(f->base, f->size);
    else
        st_free(f->base);
    memset(f, 0, sizeof *f);
}

/* Reads a stream (pipe, character device) to its end, refusing more than
 * `max_bytes`. */
static st_status read_stream(int fd, const char *path, size_t max_bytes, st_buf *out,
                             st_error *err)
{
    for (;;) {
        if (out->len > max_bytes)
            return npy_fail(err, ST_ELIMIT, path, "input is larger than %zu bytes",
                            max_bytes);
        if (st_buf_reserve(out, 64 * 1024) != ST_OK)
            return npy_fail(err, ST_ENOMEM, path, "out of memory reading the input");
        ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
        if (n == 0)
            return ST_OK;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return npy_fail(err, ST_EIO, path, "read failed: %s", strerror(errno));
        }
        out->len += (size_t)n;
    }
}

st_status npy_read_file(const char *path, npy_file *out, const npy_options *opts,
                        st_error *err)
{
    st_status s = ST_OK;
    npy_file f;
    memset(&f, 0, sizeof f);
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s = npy_fail(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO, path,
                     "cannot open: %s", strerror(errno));
        goto done;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        s = npy_fail(err, ST_EIO, path, "cannot stat: %s", strerror(errno));
        goto done;
    }
    if (S_ISDIR(sb.st_mode)) {
        s = npy_fail(err, ST_EINVAL, path, "is a directory, not a .npy file");
        goto done;
    }
    if (S_ISREG(sb.st_mode)) {
        if (sb.st_size == 0) {
            s = npy_fail(err, ST_ECORRUPT, path, "file is empty, not a .npy file");
            goto done;
        }
        if ((uintmax_t)sb.st_size > SIZE_MAX) {
            s = npy_fail(err, ST_ELIMIT, path, "file is too large to map");
            goto done;
        }
        f.size = (size_t)sb.st_size;
        /* Private: converting a big-endian array below must never reach
         * the file. */
        void *map = mmap(NULL, f.size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            s = npy_fail(err, ST_EIO, path, "cannot map: %s", strerror(errno));
            goto done;
        }
        f.base = map;
        f.is_mapped = true;
    } else {
        size_t max_bytes = opts && opts->max_data_bytes ? opts->max_data_bytes
                                                        : NPY_DEFAULT_MAX_DATA_BYTES;
        st_buf b = { 0 };
        if (st_add_overflow(max_bytes, NPY_STREAM_HEADER_SLACK, &max_bytes))
            max_bytes = SIZE_MAX;
        s = read_stream(fd, path, max_bytes, &b, err);
        f.base = b.data;
        f.size = b.len;
        if (s != ST_OK)
            goto done;
    }
    s = parse_image(f.base, f.size, opts, true, path, &f.array, err);
    if (s != ST_OK)
        goto done;
    if (f.array.is_big_endian) {
        uint8_t *first = f.base + f.array.data_offset;
        if (f.is_mapped && mprotect(f.base, f.size, PROT_READ | PROT_WRITE) != 0) {
            s = npy_fail(err, ST_EIO, path, "cannot make a private copy to byte-swap: %s",
                         strerror(errno));
            goto done;
        }
        npy_byteswap(first, f.array.element_count, f.array.item_bytes);
        if (f.is_mapped)
            (void)mprotect(f.base, f.size, PROT_READ); /* best effort: guards callers */
        f.array.is_big_endian = false;
    }
done:
    if (fd >= 0)
        close(fd);
    if (s != ST_OK)
        npy_file_close(&f);
    else
        *out = f;
    return s;
}

/* ---- writer --------------------------------------------------------------- */

st_status npy_int_wrap_header(st_buf *out, const char *dict, size_t dict_len,
                              unsigned version_major, st_error *err)
{
    if (version_major > 3)
        return npy_fail(err, ST_EINVAL, "npy", "format version %u.0 does not exist "
                        "(use 1, 2 or 3, or 0 to choose)", version_major);
    unsigned version = version_major ? version_major : 1;
    size_t field_bytes = 0, header_len = 0, total = 0;
    /* numpy: hlen = len(header) + 1 for the '\n'; padlen = 64 - (prefix +
     * hlen) % 64, so an already aligned header still gets 64 spaces. */
    for (;;) {
        field_bytes = version == 1 ? 2 : 4;
        size_t unpadded;
        if (st_add_overflow(dict_len, NPY_MAGIC_LEN + field_bytes + 1, &unpadded))
            return npy_fail(err, ST_EOVERFLOW, "npy", "header size overflows");
        size_t pad = NPY_ARRAY_ALIGN - unpadded % NPY_ARRAY_ALIGN;
        if (st_add_overflow(unpadded, pad, &total))
            return npy_fail(err, ST_EOVERFLOW, "npy", "header size overflows");
        header_len = total - NPY_MAGIC_LEN - field_bytes;
        if (version != 1 || header_len <= 0xffff)
            break;
        if (version_major == 1)
            return npy_fail(err, ST_ELIMIT, "npy",
                            "a %zu-byte header does not fit format 1.0 (at most 65535); "
                            "use 2.0", header_len);
        version = 2;
    }
    if (header_len > 0xffffffffu)
        return npy_fail(err, ST_ELIMIT, "npy",
                        "a %zu-byte header does not fit the .npy format", header_len);
    if (st_buf_reserve(out, total) != ST_OK)
        return npy_fail(err, ST_ENOMEM, "npy", "out of memory for a %zu-byte header",
                        total);
    uint8_t *p = out->data + out->len;
    memcpy(p, NPY_MAGIC, NPY_MAGIC_BYTES);
    p[6] = (uint8_t)version;
    p[7] = 0;
    for (size_t i = 0; i < field_bytes; i++)
        p[NPY_MAGIC_LEN + i] = (uint8_t)(header_len >> (8 * i));
    p += NPY_MAGIC_LEN + field_bytes;
    memcpy(p, dict, dict_len);
    memset(p + dict_len, ' ', header_len - dict_len - 1);
    p[header_len - 1] = '\n';
    out->len += total;
    return ST_OK;
}

/* Element count and data bytes of a shape the caller wants to write. */
static st_status write_sizes(const npy_descr_entry *e, const size_t *shape, size_t rank,
                             size_t *data_bytes, st_error *err)
{
    size_t count = 1;
    bool has_zero = false;
    for (size_t i = 0; i < rank; i++) {
        if (shape[i] == 0)
            has_zero = true;
        else if (st_mul_overflow(count, shape[i], &count))
            return npy_fail(err, ST_EOVERFLOW, "npy", "shape has more elements than a "
                            "64-bit size can count");
    }
    if (has_zero)
        count = 0;
    if (st_mul_overflow(count, e->item_bytes, data_bytes))
        return npy_fail(err, ST_EOVERFLOW, "npy", "array needs more bytes than a 64-bit "
                        "size can count");
    return ST_OK;
}

static st_status check_write_args(st_dtype dtype, const size_t *shape, size_t rank,
                                  const npy_descr_entry **entry, size_t *data_bytes,
                                  st_error *err)
{
    *entry = entry_for_dtype(dtype);
    if (!*entry)
        return npy_fail(err, ST_EINVAL, "npy", "cannot write dtype %s; .npy output "
                        "supports " NPY_SUPPORTED_TYPES, st_dtype_name(dtype));
    if (rank > NPY_MAX_RANK)
        return npy_fail(err, ST_EINVAL, "npy", "rank %zu is over the maximum of %d",
                        rank, NPY_MAX_RANK);
    if (rank > 0 && !shape)
        return npy_fail(err, ST_EINVAL, "npy", "rank %zu but no shape", rank);
    return write_sizes(*entry, shape, rank, data_bytes, err);
}

st_status npy_write_header(st_buf *out, st_dtype dtype, const size_t *shape,
                           size_t rank, unsigned version_major, st_error *err)
{
    const npy_descr_entry *e;
    size_t data_bytes;
    st_status s = check_write_args(dtype, shape, rank, &e, &data_bytes, err);
    if (s != ST_OK)
        return s;
    /* The dict exactly as numpy's _write_array_header builds it: keys
     * sorted, "'key': repr(value), " each, then growth room for axis 0. */
    npy_shape_text st;
    char dict[sizeof st.text + 96 + NPY_GROWTH_AXIS_MAX_DIGITS];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, "
                     "'shape': %s, }", e->descr, format_shape(&st, shape, rank));
    if (n < 0 || (size_t)n >= sizeof dict)
        return npy_fail(err, ST_EINTERNAL, "npy", "header dict does not fit");
    size_t dict_len = (size_t)n;
    if (rank > 0) {
        char first[24];
        int digits = snprintf(first, sizeof first, "%zu", shape[0]);
        size_t growth = NPY_GROWTH_AXIS_MAX_DIGITS - (size_t)digits;
        memset(dict + dict_len, ' ', growth);
        dict_len += growth;
    }
    return npy_int_wrap_header(out, dict, dict_len, version_major, err);
}

st_status npy_write(st_buf *out, st_dtype dtype, const size_t *shape, size_t rank,
                    const void *data, st_error *err)
{
    const npy_descr_entry *e;
    size_t data_bytes, old_len = out->len;
    st_status s = check_write_args(dtype, shape, rank, &e, &data_bytes, err);
    if (s != ST_OK)
        goto done;
    if (data_bytes > 0 && !data) {
        s = npy_fail(err, ST_EINVAL, "npy", "no data for %zu bytes of %s", data_bytes,
                     st_dtype_name(dtype));
        goto done;
    }
    if ((s = npy_write_header(out, dtype, shape, rank, 0, err)) != ST_OK)
        goto done;
    if (st_buf_append(out, data, data_bytes) != ST_OK)
        s = npy_fail(err, ST_ENOMEM, "npy", "out of memory for %zu bytes of data",
                     data_bytes);
done:
    if (s != ST_OK)
        out->len = old_len;
    return s;
}

static st_status write_all(int fd, const char *path, const void *data, size_t len,
                           st_error *err)
{
    const uint8_t *p = data;
    while (len > 0) {
        /* Linux writes at most ~2 GiB per call; ask for no more. */
        size_t chunk = len < ((size_t)1 << 30) ? len : (size_t)1 << 30;
        ssize_t n = write(fd, p, chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return npy_fail(err, ST_EIO, path, "write failed: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
    return ST_OK;
}

/* The folder holding `path` as a C string ("." or "/" at the edges), made
 * before the rename so nothing after it can fail for lack of memory. */
static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) : 0;
    char *dir = st_malloc(dir_len + 2);
    if (!dir)
        return NULL;
    if (!slash)
        memcpy(dir, ".", 2);
    else if (dir_len == 0)
        memcpy(dir, "/", 2);
    else {
        memcpy(dir, path, dir_len);
        dir[dir_len] = '\0';
    }
    return dir;
}

/* fsync of the folder, so that the rename itself survives a crash. */
static st_status sync_dir(const char *dir, const char *path, st_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* Some filesystems cannot fsync a directory (EINVAL); the file itself
     * was synced, which is the best they offer. */
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL)) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        return npy_fail(err, ST_EIO, path, "written, but syncing its folder %s failed: %s",
                        dir, strerror(saved));
    }
    close(fd);
    return ST_OK;
}

st_status npy_write_file(const char *path, st_dtype dtype, const size_t *shape,
                         size_t rank, const void *data, st_error *err)
{
    static atomic_uint tmp_counter;
    st_buf header = { 0 };
    char *tmp = NULL, *dir = NULL;
    int fd = -1;
    bool is_tmp_created = false;
    const npy_descr_entry *e;
    size_t data_bytes;
    st_status s = check_write_args(dtype, shape, rank, &e, &data_bytes, err);
    if (s != ST_OK)
        goto done;
    if (data_bytes > 0 && !data) {
        s = npy_fail(err, ST_EINVAL, path, "no data for %zu bytes of %s", data_bytes,
                     st_dtype_name(dtype));
        goto done;
    }
    if ((s = npy_write_header(&header, dtype, shape, rank, 0, err)) != ST_OK)
        goto done;

    /* Same folder, so the rename cannot cross filesystems; O_EXCL and a
     * per-process counter keep concurrent writers apart. */
    size_t tmp_cap = strlen(path) + 48;
    tmp = st_malloc(tmp_cap);
    dir = parent_dir(path);
    if (!tmp || !dir) {
        s = npy_fail(err, ST_ENOMEM, path, "out of memory");
        goto done;
    }
    for (int attempt = 0; fd < 0; attempt++) {
        snprintf(tmp, tmp_cap, "%s.%ld.%u.tmp", path, (long)getpid(),
                 atomic_fetch_add(&tmp_counter, 1u));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && (errno != EEXIST || attempt == 100)) {
            s = npy_fail(err, ST_EIO, path, "cannot create temporary file %s: %s", tmp,
                         strerror(errno));
            goto done;
        }
    }
    is_tmp_created = true;
    if ((s = write_all(fd, path, header.data, header.len, err)) != ST_OK ||
        (s = write_all(fd, path, data, data_bytes, err)) != ST_OK)
        goto done;
    if (fsync(fd) != 0) {
        s = npy_fail(err, ST_EIO, path, "fsync failed: %s", strerror(errno));
        goto done;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        s = npy_fail(err, ST_EIO, path, "close failed: %s", strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        s = npy_fail(err, ST_EIO, path, "cannot rename %s into place: %s", tmp,
                     strerror(errno));
        goto done;
    }
    is_tmp_created = false;
    s = sync_dir(dir, path, err);
done:
    if (fd >= 0)
        close(fd);
    if (is_tmp_created)
        unlink(tmp);
    st_free(tmp);
    st_free(dir);
    st_buf_free(&header);
    return s;
}
