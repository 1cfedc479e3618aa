/* reader.c - the pull cursor: structure, strings, scalars, skipping and
 * validation.  One byte-level tokenizer that every other layer (typed
 * arrays, DOM, json_validate) builds on; it never reads past `len` and
 * keeps the first error sticky. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "base/alloc.h"
#include "json/json_int.h"

json_limits json_limits_default(void)
{
    return (json_limits){
        .max_depth = 128,
        .max_input_bytes = (size_t)64 << 20,
        .max_elements = (size_t)16 << 20,
    };
}

const char *json_kind_name(json_kind t)
{
    switch (t) {
    case JSON_KIND_NULL: return "null";
    case JSON_KIND_BOOL: return "bool";
    case JSON_KIND_NUMBER: return "number";
    case JSON_KIND_STRING: return "string";
    case JSON_KIND_ARRAY: return "array";
    case JSON_KIND_OBJECT: return "object";
    default: return "none";
    }
}

/* ---- errors ----------------------------------------------------------------- */

static st_status reader_verror(json_reader *r, st_status code, size_t at,
                               const char *fmt, va_list ap)
{
    if (r->status != ST_OK)
        return r->status;
    r->status = code;
    if (r->err) {
        st_error *e = r->err;
        int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        if (n >= 0 && (size_t)n < sizeof e->msg)
            snprintf(e->msg + n, sizeof e->msg - (size_t)n, " at byte offset %zu", at);
        e->code = code;
    }
    return code;
}

st_status json_reader_error_at(json_reader *r, st_status code, size_t at,
                               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_status s = reader_verror(r, code, at, fmt, ap);
    va_end(ap);
    return s;
}

st_status json_reader_fail(json_reader *r, st_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_status s = reader_verror(r, code, r->pos, fmt, ap);
    va_end(ap);
    return s;
}

/* "'x'", "end of input" or "byte 0xNN", for messages. */
static const char *describe_byte(const json_reader *r, size_t at, char buf[16])
{
    if (at >= r->len)
        return "end of input";
    unsigned char c = (unsigned char)r->data[at];
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static st_status misuse(json_reader *r, const char *what)
{
    return json_reader_error_at(r, ST_EINVAL, r->pos, "json_reader misuse: %s", what);
}

/* ---- setup and state --------------------------------------------------------- */

void json_reader_init(json_reader *r, const void *data, size_t len,
                      const json_limits *limits, st_arena *arena, st_error *err)
{
    json_limits def = json_limits_default();
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->limits = limits ? *limits : def;
    if (r->limits.max_depth == 0)
        r->limits.max_depth = def.max_depth;
    if (r->limits.max_depth > JSON_DEPTH_CAP)
        r->limits.max_depth = JSON_DEPTH_CAP;
    if (r->limits.max_input_bytes == 0)
        r->limits.max_input_bytes = def.max_input_bytes;
    if (r->limits.max_elements == 0)
        r->limits.max_elements = def.max_elements;
    r->arena = arena;
    r->err = err;
    r->status = ST_OK;
    r->depth = 0;
    r->state = JSON_RS_VALUE;
    r->elements = 0;
    if (!data && len)
        json_reader_error_at(r, ST_EINVAL, 0, "json_reader: NULL data with length %zu", len);
    else if (len > r->limits.max_input_bytes)
        json_reader_error_at(r, ST_ELIMIT, r->limits.max_input_bytes,
                             "JSON input of %zu bytes is larger than "
                             "json_limits.max_input_bytes (%zu)",
                             len, r->limits.max_input_bytes);
}

st_status json_reader_status(const json_reader *r)
{
    return r->status;
}

size_t json_reader_offset(const json_reader *r)
{
    return r->pos;
}

bool json_reader_count(json_reader *r, size_t at)
{
    if (++r->elements <= r->limits.max_elements)
        return true;
    json_reader_error_at(r, ST_ELIMIT, at,
                         "more than %zu values (json_limits.max_elements)",
                         r->limits.max_elements);
    return false;
}

static inline bool top_is_object(const json_reader *r)
{
    uint32_t d = r->depth - 1;
    return (r->kinds[d / 64] >> (d % 64)) & 1;
}

size_t json_reader_value_start(json_reader *r)
{
    if (r->status != ST_OK)
        return SIZE_MAX;
    if (r->state != JSON_RS_VALUE) {
        misuse(r, r->depth ? "no value is due; call json_array_next or json_object_next first"
                           : "the document's value was already read");
        return SIZE_MAX;
    }
    size_t at = json_skip_ws(r->data, r->pos, r->len);
    r->pos = at;
    if (at >= r->len) {
        json_reader_error_at(r, ST_ECORRUPT, at, "unexpected end of input, expected a value");
        return SIZE_MAX;
    }
    return at;
}

static json_kind classify(char c)
{
    switch (c) {
    case '{': return JSON_KIND_OBJECT;
    case '[': return JSON_KIND_ARRAY;
    case '"': return JSON_KIND_STRING;
    case 't':
    case 'f': return JSON_KIND_BOOL;
    case 'n': return JSON_KIND_NULL;
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': return JSON_KIND_NUMBER;
    default: return JSON_KIND_NONE;
    }
}

static st_status unexpected(json_reader *r, size_t at, const char *expected)
{
    char b[16];
    return json_reader_error_at(r, ST_ECORRUPT, at, "unexpected %s, expected %s",
                                describe_byte(r, at, b), expected);
}

/* The value at `at` is not of the wanted kind: ST_ETYPE, or ST_ECORRUPT
 * when it is no value at all. */
static st_status type_error(json_reader *r, size_t at, json_kind want)
{
    json_kind got = classify(r->data[at]);
    if (got == JSON_KIND_NONE)
        return unexpected(r, at, "a value");
    return json_reader_error_at(r, ST_ETYPE, at, "expected %s %s, found %s %s",
                                want == JSON_KIND_ARRAY || want == JSON_KIND_OBJECT ? "an" : "a",
                                json_kind_name(want),
                                got == JSON_KIND_ARRAY || got == JSON_KIND_OBJECT ? "an" : "a",
                                json_kind_name(got));
}

json_kind json_peek(json_reader *r)
{
    if (r->status != ST_OK || r->state != JSON_RS_VALUE)
        return JSON_KIND_NONE;
    size_t at = json_reader_value_start(r);
    if (at == SIZE_MAX)
        return JSON_KIND_NONE;
    json_kind t = classify(r->data[at]);
    if (t == JSON_KIND_NONE)
        unexpected(r, at, "a value");
    return t;
}

/* ---- containers ---------------------------------------------------------------- */

static st_status push(json_reader *r, size_t at, bool is_object)
{
    if (!json_reader_count(r, at))
        return r->status;
    if (r->depth >= r->limits.max_depth)
        return json_reader_error_at(r, ST_ELIMIT, at,
                                    "nesting deeper than %zu levels (json_limits.max_depth)",
                                    r->limits.max_depth);
    uint32_t d = r->depth++;
    uint64_t bit = 1ull << (d % 64);
    if (is_object)
        r->kinds[d / 64] |= bit;
    else
        r->kinds[d / 64] &= ~bit;
    r->pos = at + 1;
    r->state = JSON_RS_FIRST;
    return ST_OK;
}

static void pop(json_reader *r, size_t after)
{
    r->depth--;
    r->pos = after;
    r->state = JSON_RS_AFTER;
}

st_status json_enter_array(json_reader *r)
{
    size_t at = json_reader_value_start(r);
    if (at == SIZE_MAX)
        return r->status;
    if (r->data[at] != '[')
        return type_error(r, at, JSON_KIND_ARRAY);
    return push(r, at, false);
}

st_status json_enter_object(json_reader *r)
{
    size_t at = json_reader_value_start(r);
    if (at == SIZE_MAX)
        return r->status;
    if (r->data[at] != '{')
        return type_error(r, at, JSON_KIND_OBJECT);
    return push(r, at, true);
}

bool json_array_next(json_reader *r)
{
    if (r->status != ST_OK)
        return false;
    if (r->depth == 0 || top_is_object(r)) {
        misuse(r, "json_array_next outside an array");
        return false;
    }
    if (r->state == JSON_RS_VALUE && json_skip(r) != ST_OK)
        return false;
    size_t at = json_skip_ws(r->data, r->pos, r->len);
    if (at >= r->len) {
        unexpected(r, at, r->state == JSON_RS_FIRST ? "a value or ']'" : "',' or ']'");
        return false;
    }
    char c = r->data[at];
    if (c == ']') {
        pop(r, at + 1);
        return false;
    }
    if (r->state == JSON_RS_AFTER) {
        if (c != ',') {
            unexpected(r, at, "',' or ']' after an array element");
            return false;
        }
        at++;
    }
    r->pos = at;
    r->state = JSON_RS_VALUE;
    return true;
}

/* Unescapes the string [at+1, end-1) into the arena or a scratch buffer. */
static bool decode_into_scratch(json_reader *r, size_t at, size_t end, char *scratch,
                                st_str *out)
{
    const char *from = r->data + at + 1, *to = r->data + end - 1;
    size_t raw = (size_t)(to - from);
    char *dst;
    if (r->arena) {
        dst = st_arena_alloc(r->arena, raw + 1, 1);
        if (!dst) {
            json_reader_error_at(r, ST_ENOMEM, at, "out of memory unescaping a string of %zu bytes", raw);
            return false;
        }
    } else if (raw < JSON_SCRATCH_BYTES) {
        dst = scratch;
    } else {
        json_reader_error_at(r, ST_ELIMIT, at,
                             "string with escapes longer than %d bytes needs an arena "
                             "(json_reader_init)",
                             JSON_SCRATCH_BYTES - 1);
        return false;
    }
    size_t n = json_string_unescape(from, to, dst);
    dst[n] = '\0';
    *out = st_str_make(dst, n);
    return true;
}

bool json_object_next(json_reader *r, st_str *key)
{
    if (r->status != ST_OK)
        return false;
    if (r->depth == 0 || !top_is_object(r)) {
        misuse(r, "json_object_next outside an object");
        return false;
    }
    if (r->state == JSON_RS_VALUE && json_skip(r) != ST_OK)
        return false;
    size_t at = json_skip_ws(r->data, r->pos, r->len);
    if (at < r->len && r->data[at] == '}') {
        pop(r, at + 1);
        return false;
    }
    if (r->state == JSON_RS_AFTER) {
        if (at >= r->len || r->data[at] != ',') {
            unexpected(r, at, "',' or '}' after an object member");
            return false;
        }
        at = json_skip_ws(r->data, at + 1, r->len);
    }
    if (at >= r->len || r->data[at] != '"') {
        unexpected(r, at, r->state == JSON_RS_FIRST ? "a string key or '}'" : "a string key");
        return false;
    }
    bool esc;
    size_t end = json_string_scan(r, at, &esc);
    if (!end)
        return false;
    st_str k = st_str_make(r->data + at + 1, end - at - 2);
    /* Only a caller that wants the key pays for unescaping it. */
    if (key && esc && !decode_into_scratch(r, at, end, r->key_scratch, &k))
        return false;
    size_t colon = json_skip_ws(r->data, end, r->len);
    if (colon >= r->len || r->data[colon] != ':') {
        unexpected(r, colon, "':' after an object key");
        return false;
    }
    if (key)
        *key = k;
    r->pos = colon + 1;
    r->state = JSON_RS_VALUE;
    return true;
}

/* ---- strings ------------------------------------------------------------------- */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Four hex digits at p (n readable); -1 when invalid or short. */
static long hex4(const unsigned char *p, size_t n)
{
    if (n < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

size_t json_string_scan(json_reader *r, size_t at, bool *has_escapes)
{
    const unsigned char *p = (const unsigned char *)r->data;
    size_t len = r->len, i = at + 1;
    bool esc = false;
    for (;;) {
#ifdef __SSE2__
        /* 16 bytes at a time while none is a quote, a backslash, a control
         * character or non-ASCII (signed compare catches both of the last). */
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
        const __m128i space = _mm_set1_epi8(0x20);
        while (i + 16 <= len) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                  _mm_cmpeq_epi8(v, bslash)),
                                     _mm_cmplt_epi8(v, space));
            int mask = _mm_movemask_epi8(m);
            if (mask) {
                i += (size_t)__builtin_ctz((unsigned)mask);
                break;
            }
            i += 16;
        }
#endif
        if (i >= len) {
            json_reader_error_at(r, ST_ECORRUPT, len,
                                 "unterminated string (opened at byte offset %zu)", at);
            return 0;
        }
        unsigned c = p[i];
        if (c == '"') {
            *has_escapes = esc;
            return i + 1;
        }
        if (c == '\\') {
            esc = true;
            if (i + 1 >= len) {
                json_reader_error_at(r, ST_ECORRUPT, len,
                                     "unterminated string (opened at byte offset %zu)", at);
                return 0;
            }
            switch (p[i + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                i += 2;
                continue;
            case 'u': {
                long cp = hex4(p + i + 2, len - i - 2);
                if (cp < 0) {
                    json_reader_error_at(r, ST_ECORRUPT, i,
                                         "invalid \\u escape (expected 4 hex digits)");
                    return 0;
                }
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    json_reader_error_at(r, ST_ECORRUPT, i,
                                         "lone low surrogate \\u%04lX in string", cp);
                    return 0;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    long lo = -1;
                    if (i + 7 < len && p[i + 6] == '\\' && p[i + 7] == 'u')
                        lo = hex4(p + i + 8, len - i - 8);
                    if (lo < 0xDC00 || lo > 0xDFFF) {
                        json_reader_error_at(r, ST_ECORRUPT, i,
                                             "high surrogate \\u%04lX not followed by a "
                                             "low surrogate escape",
                                             cp);
                        return 0;
                    }
                    i += 12;
                } else {
                    i += 6;
                }
                continue;
            }
            default: {
                char b[16];
                json_reader_error_at(r, ST_ECORRUPT, i, "invalid escape: backslash then %s",
                                     describe_byte(r, i + 1, b));
                return 0;
            }
            }
        }
        if (c < 0x20) {
            json_reader_error_at(r, ST_ECORRUPT, i,
                                 "unescaped control character 0x%02x in string", c);
            return 0;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n = json_utf8_seq(p + i, len - i);
        if (!n) {
            json_reader_error_at(r, ST_ECORRUPT, i, "invalid UTF-8 in string");
            return 0;
        }
        i += n;
    }
}

static size_t put_utf8(char *dst, uint32_t cp)
{
    unsigned char *o = (unsigned char *)dst;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t json_string_unescape(const char *from, const char *to, char *dst)
{
    const unsigned char *p = (const unsigned char *)from;
    const unsigned char *end = (const unsigned char *)to;
    char *o = dst;
    while (p < end) {
        const unsigned char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t run = bs ? (size_t)(bs - p) : (size_t)(end - p);
        memcpy(o, p, run);
        o += run;
        p += run;
        if (!bs)
            break;
        /* Validated already: every escape is complete and well formed. */
        unsigned char e = p[1];
        p += 2;
        switch (e) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            uint32_t cp = (uint32_t)hex4(p, 4);
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo = (uint32_t)hex4(p + 2, 4);
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += put_utf8(o, cp);
            break;
        }
        default: *o++ = (char)e; break; /* " \ / */
        }
    }
    return (size_t)(o - dst);
}

st_status json_read_string(json_reader *r, st_str *out)
{
    size_t at = json_reader_value_start(r);
    if (at == SIZE_MAX)
        return r->status;
    if (r->data[at] != '"')
        return type_error(r, at, JSON_KIND_STRING);
    bool esc;
    size_t end = json_string_scan(r, at, &esc);
    if (!end || !json_reader_count(r, at))
        return r->status;
    st_str s = st_str_make(r->data + at + 1, end - at - 2);
    if (esc && !decode_into_scratch(r, at, end, r->str_scratch, &s))
        return r->status;
    json_reader_value_done(r, end);
    *out = s;
    return ST_OK;
}

st_status json_read_string_buf(json_reader *r, st_buf *out)
{
    size_t at = json_reader_value_start(r);
    if (at == SIZE_MAX)
        return r->status;
    if (r->data[at] != '"')
        return type_error(r, at, JSON_KIND_STRING);
    bool esc;
    size_t end = json_string_scan(r, at, &esc);
    if (!end || !json_reader_count(r, at))
        return r->status;
    size_t raw = end - at - 2;
    if (st_buf_reserve(out, raw + 1) != ST_OK)
        return json_reader_error_at(r, ST_ENOMEM, at, "out of memory copying a string of %zu bytes", raw);
    out->len += json_string_unescape(r->data + at + 1, r->data + end - 1,
                                     (char *)out->data + out->len);
    json_reader_value_done(r, end);
    return ST_OK;
}

/* ---- literals and numbers ---------------------------------------------------- */

static bool match_literal(json_reader *r, size_t at, const char *lit, size_t n)
{
    if (r->len - at >= n && memcmp(r->data + at, lit, n) == 0)
        return true;
    json_reader_error_at(r, ST_ECORRUPT, at, "invalid literal (expected %s)", lit);
    return false;
}

st_status json_read_null(json_reader *r)
{
    size_t at = json_reader_value_start(r);
    if (at == SIZE_MAX)
        return r->status;
    if (r->data[at] != 'n')
        return type_error(r, at, JSON_KIND_NULL);
    if (!match_literal(r, at, "null", 4) || !json_reader_count(r, at))
        return r->status;
    json_reader_value_done(r, at + 4);
    return ST_OK;
}

st_status json_read_bool(json_reader *r, bool *out)
{
    size_t at = json_reader_value_start(r);
    if (at == SIZE_MAX)
        return r->status;
    char c = r->data[at];
    if (c != 't' && c != 'f')
        return type_error(r, at, JSON_KIND_BOOL);
    bool v = c == 't';
    size_t n = v ? 4 : 5;
    if (!match_literal(r, at, v ? "true" : "false", n) || !json_reader_count(r, at))
        return r->status;
    json_reader_value_done(r, at + n);
    *out = v;
    return ST_OK;
}

/* Scans the number at the cursor into *d; returns its start offset or
 * SIZE_MAX after an error. */
static size_t read_decimal(json_reader *r, json_decimal *d)
{
    size_t at = json_reader_value_start(r);
    if (at == SIZE_MAX)
        return SIZE_MAX;
    if (classify(r->data[at]) != JSON_KIND_NUMBER) {
        type_error(r, at, JSON_KIND_NUMBER);
        return SIZE_MAX;
    }
    size_t bad = 0;
    const char *why = "";
    size_t n = json_number_scan(r->data + at, r->len - at, d, &bad, &why);
    if (!n) {
        json_reader_error_at(r, ST_ECORRUPT, at + bad, "invalid number: %s", why);
        return SIZE_MAX;
    }
    if (!json_reader_count(r, at))
        return SIZE_MAX;
    json_reader_value_done(r, at + n);
    return at;
}

static st_status range_error(json_reader *r, size_t at, const char *type, const char *why)
{
    size_t n = r->pos - at;
    return json_reader_error_at(r, ST_EINVAL, at, "number %.*s%s %s %s",
                                (int)(n > 40 ? 40 : n), r->data + at, n > 40 ? "..." : "",
                                why, type);
}

st_status json_read_double(json_reader *r, double *out)
{
    json_decimal d;
    size_t at = read_decimal(r, &d);
    if (at == SIZE_MAX)
        return r->status;
    double v = json_decimal_to_double(&d);
    if (isinf(v))
        return range_error(r, at, "float64", "is out of range for");
    *out = v;
    return ST_OK;
}

st_status json_read_float(json_reader *r, float *out)
{
    json_decimal d;
    size_t at = read_decimal(r, &d);
    if (at == SIZE_MAX)
        return r->status;
    float v = json_decimal_to_float(&d);
    if (isinf(v))
        return range_error(r, at, "float32", "is out of range for");
    *out = v;
    return ST_OK;
}

st_status json_read_int64(json_reader *r, int64_t *out)
{
    json_decimal d;
    size_t at = read_decimal(r, &d);
    if (at == SIZE_MAX)
        return r->status;
    uint64_t mag;
    int rc = json_decimal_to_magnitude(&d, &mag);
    if (rc == 1)
        return range_error(r, at, "int64", "is not an integer, as needed for");
    if (rc == 2 || mag > (d.negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
        return range_error(r, at, "int64", "is out of range for");
    *out = d.negative ? (int64_t)(0 - mag) : (int64_t)mag;
    return ST_OK;
}

st_status json_read_uint64(json_reader *r, uint64_t *out)
{
    json_decimal d;
    size_t at = read_decimal(r, &d);
    if (at == SIZE_MAX)
        return r->status;
    uint64_t mag;
    int rc = json_decimal_to_magnitude(&d, &mag);
    if (rc == 1)
        return range_error(r, at, "uint64", "is not an integer, as needed for");
    if (rc == 2 || (d.negative && mag != 0))
        return range_error(r, at, "uint64", "is out of range for");
    *out = mag;
    return ST_OK;
}

st_status json_read_number_text(json_reader *r, st_str *out)
{
    json_decimal d;
    size_t at = read_decimal(r, &d);
    if (at == SIZE_MAX)
        return r->status;
    *out = st_str_make(r->data + at, r->pos - at);
    return ST_OK;
}

/* ---- skipping and validation -------------------------------------------------- */

/* Consumes one scalar starting at `at` (a value is due there). */
static st_status skip_scalar(json_reader *r, size_t at)
{
    switch (r->data[at]) {
    case '"': {
        bool esc;
        size_t end = json_string_scan(r, at, &esc);
        if (!end || !json_reader_count(r, at))
            return r->status;
        json_reader_value_done(r, end);
        return ST_OK;
    }
    case 't': {
        bool b;
        return json_read_bool(r, &b);
    }
    case 'f': {
        bool b;
        return json_read_bool(r, &b);
    }
    case 'n':
        return json_read_null(r);
    default: {
        if (classify(r->data[at]) != JSON_KIND_NUMBER)
            return unexpected(r, at, "a value");
        json_decimal d;
        read_decimal(r, &d);
        return r->status;
    }
    }
}

st_status json_skip(json_reader *r)
{
    uint32_t base = r->depth;
    do {
        size_t at = json_reader_value_start(r);
        if (at == SIZE_MAX)
            return r->status;
        char c = r->data[at];
        st_status s = c == '[' ? push(r, at, false)
                    : c == '{' ? push(r, at, true)
                               : skip_scalar(r, at);
        if (s != ST_OK)
            return s;
        /* Move to the next due value, closing finished containers. */
        while (r->depth > base) {
            bool more = top_is_object(r) ? json_object_next(r, NULL) : json_array_next(r);
            if (r->status != ST_OK)
                return r->status;
            if (more)
                break;
        }
    } while (r->depth > base);
    return r->status;
}

st_status json_reader_finish(json_reader *r)
{
    if (r->status != ST_OK)
        return r->status;
    /* Whatever the caller left unread is consumed (and validated). */
    if (r->state == JSON_RS_VALUE && json_skip(r) != ST_OK)
        return r->status;
    while (r->depth > 0) {
        bool more = top_is_object(r) ? json_object_next(r, NULL) : json_array_next(r);
        if (r->status != ST_OK)
            return r->status;
        if (more && json_skip(r) != ST_OK)
            return r->status;
    }
    size_t at = json_skip_ws(r->data, r->pos, r->len);
    if (at != r->len) {
        char b[16];
        return json_reader_error_at(r, ST_ECORRUPT, at,
                                    "unexpected %s after the JSON value (trailing data)",
                                    describe_byte(r, at, b));
    }
    r->pos = at;
    return ST_OK;
}

st_status json_validate(const void *data, size_t len, const json_limits *limits,
                        st_error *err)
{
    json_reader r;
    json_reader_init(&r, data, len, limits, NULL, err);
    return json_reader_finish(&r);
}
