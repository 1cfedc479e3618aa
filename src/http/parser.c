/* parser.c - the resumable HTTP/1.1 request parser (RFC 9112).
 *
 * Fed the bytes of one connection as they arrive, it keeps its place in a
 * byte state machine and answers OK, AGAIN or ERROR with the status to send.
 * It records offsets rather than pointers so the caller may grow (move) its
 * buffer between calls, and it is strict wherever leniency would let two
 * parsers disagree on framing (request smuggling): bare CR, obs-fold,
 * whitespace before the colon, Content-Length with Transfer-Encoding,
 * disagreeing Content-Lengths and oversized chunk sizes are all errors. */
#include <string.h>

#include "base/alloc.h"
#include "http/http_int.h"

/* Character classes, one bit each: 1 tchar (token), 2 field-vchar (VCHAR
 * or obs-text), 4 request-target byte (VCHAR), 8 hex digit. */
static const uint8_t char_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6, 6, 6, 6, 6, 6,
    6, 15, 15, 15, 15, 15, 15, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
    7, 15, 15, 15, 15, 15, 15, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};
#define IS_TCHAR(c) (char_class[(uint8_t)(c)] & 1)
#define IS_FIELD_VCHAR(c) (char_class[(uint8_t)(c)] & 2)
#define IS_TARGET(c) (char_class[(uint8_t)(c)] & 4)
#define IS_HEX(c) (char_class[(uint8_t)(c)] & 8)

/* Longest method name looked at; anything longer is not one we know. */
#define METHOD_MAX 16
/* A chunk-size line with its extensions; extensions are skipped, but not
 * without end. */
#define CHUNK_LINE_MAX 4096

enum {
    S_START = 0, S_METHOD, S_TARGET_START, S_TARGET,
    S_V_H, S_V_T1, S_V_T2, S_V_P, S_V_SLASH, S_V_MAJOR, S_V_DOT, S_V_MINOR,
    S_RL_END, S_RL_LF,
    S_HDR_START, S_HDR_NAME, S_HDR_OWS, S_HDR_VALUE, S_HDR_LF, S_HEAD_LF,
    /* body */
    S_BODY_LENGTH, S_CHUNK_SIZE_START, S_CHUNK_SIZE, S_CHUNK_EXT, S_CHUNK_SIZE_LF,
    S_CHUNK_DATA, S_CHUNK_DATA_CR, S_CHUNK_DATA_LF,
    S_TRAILER_START, S_TRAILER_NAME, S_TRAILER_VALUE, S_TRAILER_LF, S_TRAILER_END_LF,
    S_DONE,
};

void http_parser_init(http_parser *p, const http_limits *limits)
{
    memset(p, 0, sizeof *p);
    p->limits = *limits;
}

void http_parser_reset(http_parser *p)
{
    http_field *fields = p->fields;
    size_t cap = p->cap_fields;
    http_limits limits = p->limits;
    memset(p, 0, sizeof *p);
    p->limits = limits;
    p->fields = fields;
    p->cap_fields = cap;
}

void http_parser_free(http_parser *p)
{
    st_free(p->fields);
    p->fields = NULL;
    p->cap_fields = 0;
}

static http_rc fail(http_parser *p, int status, const char *why)
{
    p->status = status;
    p->error = why;
    return HTTP_RC_ERROR;
}

static bool span_eq_nocase(const uint8_t *buf, http_span s, const char *lit)
{
    return st_str_eq_nocase(st_str_make(buf + s.off, s.len), st_str_c(lit));
}

static bool is_known_method(const uint8_t *m, size_t len)
{
    static const char *const known[] = { "GET", "HEAD", "POST", "PUT", "DELETE",
                                         "OPTIONS", "PATCH", "TRACE", "CONNECT" };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i]) == len && memcmp(known[i], m, len) == 0)
            return true;
    return false;
}

/* Calls fn(element, p) for each element of a comma-separated list value,
 * trimmed of OWS; empty elements are skipped (RFC 9110 5.6.1).  Returns
 * false when fn does. */
typedef bool (*list_fn)(http_parser *p, st_str element);
static bool each_list_element(http_parser *p, st_str value, list_fn fn)
{
    size_t i = 0;
    while (i < value.len) {
        size_t start = i;
        while (i < value.len && value.ptr[i] != ',')
            i++;
        size_t end = i;
        while (start < end && (value.ptr[start] == ' ' || value.ptr[start] == '\t'))
            start++;
        while (end > start && (value.ptr[end - 1] == ' ' || value.ptr[end - 1] == '\t'))
            end--;
        if (end > start && !fn(p, st_str_make(value.ptr + start, end - start)))
            return false;
        i++; /* past the comma */
    }
    return true;
}

static bool te_element(http_parser *p, st_str coding)
{
    for (size_t i = 0; i < coding.len; i++)
        if (!IS_TCHAR(coding.ptr[i]) && coding.ptr[i] != ';' && coding.ptr[i] != '=' &&
            coding.ptr[i] != ' ' && coding.ptr[i] != '\t' && coding.ptr[i] != '"')
            return false;
    bool is_chunked = st_str_eq_nocase(coding, ST_STR("chunked"));
    if (is_chunked)
        p->te_chunked_count++;
    else
        p->te_other_count++;
    p->is_te_chunked_last = is_chunked;
    return true;
}

static bool connection_element(http_parser *p, st_str option)
{
    if (st_str_eq_nocase(option, ST_STR("close")))
        p->conn_close = true;
    else if (st_str_eq_nocase(option, ST_STR("keep-alive")))
        p->conn_keep_alive = true;
    return true;
}

/* Meaning of the header line just ended, for the headers that decide
 * framing and connection handling; the rest is the handler's business. */
static http_rc header_semantics(http_parser *p, const uint8_t *buf, const http_field *f)
{
    st_str value = st_str_make(buf + f->value.off, f->value.len);
    switch (f->name.len) {
    case 4:
        if (span_eq_nocase(buf, f->name, "host")) {
            if (p->has_host)
                return fail(p, 400, "more than one Host header");
            p->has_host = true;
        }
        break;
    case 6:
        if (span_eq_nocase(buf, f->name, "expect")) {
            if (st_str_eq_nocase(value, ST_STR("100-continue")))
                p->expects_continue = true;
            else
                p->is_expect_bad = true;
        }
        break;
    case 10:
        if (span_eq_nocase(buf, f->name, "connection"))
            each_list_element(p, value, connection_element);
        break;
    case 14:
        if (span_eq_nocase(buf, f->name, "content-length")) {
            if (value.len == 0)
                return fail(p, 400, "empty Content-Length");
            uint64_t n = 0;
            for (size_t i = 0; i < value.len; i++) {
                unsigned d = (unsigned)(uint8_t)value.ptr[i] - '0';
                if (d > 9)
                    return fail(p, 400, "Content-Length is not a decimal number");
                if (n > (UINT64_MAX - d) / 10)
                    return fail(p, 400, "Content-Length overflows");
                n = n * 10 + d;
            }
            if (p->has_content_length && n != p->content_length)
                return fail(p, 400, "Content-Length headers disagree");
            p->has_content_length = true;
            p->content_length = n;
        }
        break;
    case 17:
        if (span_eq_nocase(buf, f->name, "transfer-encoding")) {
            p->has_te = true;
            if (!each_list_element(p, value, te_element))
                return fail(p, 400, "malformed Transfer-Encoding");
        }
        break;
    default:
        break;
    }
    return HTTP_RC_OK;
}

static http_rc end_header_line(http_parser *p, const uint8_t *buf)
{
    if (p->n_fields >= p->limits.max_headers)
        return fail(p, 431, "too many header lines");
    if (p->n_fields == p->cap_fields) {
        size_t cap = p->cap_fields ? p->cap_fields * 2 : 16;
        if (cap > p->limits.max_headers)
            cap = p->limits.max_headers;
        http_field *grown = st_realloc(p->fields, cap * sizeof *grown);
        if (!grown)
            return fail(p, 503, "out of memory for header lines");
        p->fields = grown;
        p->cap_fields = cap;
    }
    http_field *f = &p->fields[p->n_fields++];
    f->name = (http_span){ p->name_off, p->name_len };
    f->value = (http_span){ p->value_off, p->value_end - p->value_off };
    return header_semantics(p, buf, f);
}

/* The empty line ended the head: decide framing, keep-alive and limits. */
static http_rc end_head(http_parser *p, const uint8_t *buf, size_t head_len)
{
    p->head_len = head_len;
    if (p->version_minor >= 1 && !p->has_host)
        return fail(p, 400, "HTTP/1.1 request without a Host header");
    if (p->has_te) {
        if (p->version_minor == 0)
            return fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (p->has_content_length)
            return fail(p, 400, "both Content-Length and Transfer-Encoding");
        if (!p->is_te_chunked_last || p->te_chunked_count != 1)
            return fail(p, 400, "Transfer-Encoding must end with one chunked");
        if (p->te_other_count)
            return fail(p, 501, "only the chunked transfer coding is supported");
        p->is_chunked = true;
    }
    if (p->version_minor >= 1)
        p->is_keep_alive = !p->conn_close;
    else
        p->is_keep_alive = p->conn_keep_alive && !p->conn_close;
    if (p->is_expect_bad && p->version_minor >= 1)
        return fail(p, 417, "the only expectation supported is 100-continue");
    /* HTTP/1.0 clients do not wait for 100 Continue (RFC 9110 10.1.1). */
    p->expects_continue = p->expects_continue && p->version_minor >= 1;
    if (p->has_content_length && p->content_length > p->limits.max_body_bytes)
        return fail(p, 413, "request body larger than the server accepts");

    st_str path_raw, query;
    http_target_split(st_str_make(buf + p->target.off, p->target.len), &path_raw, &query);
    if (!http_path_decode(path_raw, NULL, &p->path_len))
        return fail(p, 400, "malformed percent-encoding in the request path");

    p->is_head_done = true;
    if (p->is_chunked)
        p->state = S_CHUNK_SIZE_START;
    else if (p->content_length > 0)
        p->state = S_BODY_LENGTH;
    else
        p->state = S_DONE;
    return HTTP_RC_OK;
}

http_rc http_parse_head(http_parser *p, const uint8_t *buf, size_t len)
{
    if (p->is_head_done)
        return HTTP_RC_OK;
    size_t end = len;
    bool is_capped = false;
    if (end > p->limits.max_header_bytes) {
        end = p->limits.max_header_bytes;
        is_capped = true;
    }
    size_t i = p->pos;
    http_rc rc;
    for (; i < end; i++) {
        uint8_t c = buf[i];
        switch (p->state) {
        case S_START:
            /* RFC 9112 2.2: empty lines before the request line are ignored. */
            if (c == '\r' || c == '\n')
                break;
            if (!IS_TCHAR(c))
                return fail(p, 400, "malformed request line");
            p->method.off = i;
            p->state = S_METHOD;
            break;
        case S_METHOD:
            if (IS_TCHAR(c)) {
                if (i - p->method.off >= METHOD_MAX)
                    return fail(p, 501, "unknown method");
                break;
            }
            if (c != ' ')
                return fail(p, 400, "malformed method");
            p->method.len = i - p->method.off;
            if (!is_known_method(buf + p->method.off, p->method.len))
                return fail(p, 501, "unknown method");
            p->is_method_head = p->method.len == 4 && memcmp(buf + p->method.off, "HEAD", 4) == 0;
            p->state = S_TARGET_START;
            break;
        case S_TARGET_START:
            if (!IS_TARGET(c))
                return fail(p, 400, "malformed request target");
            p->target.off = i;
            p->state = S_TARGET;
            break;
        case S_TARGET:
            if (IS_TARGET(c)) {
                if (i - p->target.off >= p->limits.max_uri_bytes)
                    return fail(p, 414, "request target too long");
                break;
            }
            if (c != ' ')
                return fail(p, 400, "malformed request target");
            p->target.len = i - p->target.off;
            p->state = S_V_H;
            break;
        case S_V_H:
            if (c != 'H')
                return fail(p, 400, "malformed HTTP version");
            p->state = S_V_T1;
            break;
        case S_V_T1:
        case S_V_T2:
            if (c != 'T')
                return fail(p, 400, "malformed HTTP version");
            p->state++;
            break;
        case S_V_P:
            if (c != 'P')
                return fail(p, 400, "malformed HTTP version");
            p->state = S_V_SLASH;
            break;
        case S_V_SLASH:
            if (c != '/')
                return fail(p, 400, "malformed HTTP version");
            p->state = S_V_MAJOR;
            break;
        case S_V_MAJOR:
            if (c < '0' || c > '9')
                return fail(p, 400, "malformed HTTP version");
            if (c != '1')
                return fail(p, 505, "only HTTP/1.x is supported");
            p->state = S_V_DOT;
            break;
        case S_V_DOT:
            if (c != '.')
                return fail(p, 400, "malformed HTTP version");
            p->state = S_V_MINOR;
            break;
        case S_V_MINOR:
            if (c < '0' || c > '9')
                return fail(p, 400, "malformed HTTP version");
            p->version_minor = c - '0';
            p->state = S_RL_END;
            break;
        case S_RL_END:
            if (c == '\r')
                p->state = S_RL_LF;
            else if (c == '\n')
                p->state = S_HDR_START;
            else
                return fail(p, 400, "malformed request line");
            break;
        case S_RL_LF:
        case S_HDR_LF:
        case S_HEAD_LF:
            if (c != '\n')
                return fail(p, 400, "CR not followed by LF");
            if (p->state == S_HEAD_LF)
                return end_head(p, buf, i + 1);
            if (p->state == S_HDR_LF && (rc = end_header_line(p, buf)) != HTTP_RC_OK)
                return rc;
            p->state = S_HDR_START;
            break;
        case S_HDR_START:
            if (c == '\r') {
                p->state = S_HEAD_LF;
                break;
            }
            if (c == '\n')
                return end_head(p, buf, i + 1);
            if (c == ' ' || c == '\t')
                return fail(p, 400, "obsolete line folding or whitespace before a header");
            if (!IS_TCHAR(c))
                return fail(p, 400, "malformed header name");
            p->name_off = i;
            p->state = S_HDR_NAME;
            break;
        case S_HDR_NAME:
            if (IS_TCHAR(c))
                break;
            if (c != ':')
                return fail(p, 400, "malformed header name");
            p->name_len = i - p->name_off;
            p->value_off = p->value_end = i + 1;
            p->state = S_HDR_OWS;
            break;
        case S_HDR_OWS:
            if (c == ' ' || c == '\t') {
                p->value_off = p->value_end = i + 1;
                break;
            }
            p->state = S_HDR_VALUE; /* the value starts here */
            /* FALLTHROUGH */
        case S_HDR_VALUE:
            if (IS_FIELD_VCHAR(c)) {
                p->value_end = i + 1;
                break;
            }
            if (c == ' ' || c == '\t')
                break;
            if (c == '\r') {
                p->state = S_HDR_LF;
                break;
            }
            if (c == '\n') {
                if ((rc = end_header_line(p, buf)) != HTTP_RC_OK)
                    return rc;
                p->state = S_HDR_START;
                break;
            }
            return fail(p, 400, "control character in a header value");
        default:
            return fail(p, 500, "parser in a body state");
        }
    }
    p->pos = i;
    if (is_capped) {
        if (p->state == S_TARGET || p->state == S_TARGET_START)
            return fail(p, 414, "request target too long");
        return fail(p, 431, "request head larger than the server accepts");
    }
    return HTTP_RC_AGAIN;
}

size_t http_parser_need(const http_parser *p)
{
    if (p->is_head_done && !p->is_chunked)
        return p->head_len + (size_t)p->content_length;
    return 0;
}

/* Trailer lines are read for framing only and dropped. */
static http_rc trailer_byte(http_parser *p, uint8_t c)
{
    if (++p->trailer_bytes > p->limits.max_header_bytes)
        return fail(p, 431, "trailer section larger than the server accepts");
    switch (p->state) {
    case S_TRAILER_START:
        if (c == '\r')
            p->state = S_TRAILER_END_LF;
        else if (c == '\n')
            p->state = S_DONE;
        else if (IS_TCHAR(c)) {
            if (++p->n_trailers > p->limits.max_headers)
                return fail(p, 431, "too many trailer lines");
            p->state = S_TRAILER_NAME;
        } else
            return fail(p, 400, "malformed trailer line");
        break;
    case S_TRAILER_NAME:
        if (c == ':')
            p->state = S_TRAILER_VALUE;
        else if (!IS_TCHAR(c))
            return fail(p, 400, "malformed trailer name");
        break;
    case S_TRAILER_VALUE:
        if (c == '\r')
            p->state = S_TRAILER_LF;
        else if (c == '\n')
            p->state = S_TRAILER_START;
        else if (!IS_FIELD_VCHAR(c) && c != ' ' && c != '\t')
            return fail(p, 400, "control character in a trailer value");
        break;
    case S_TRAILER_LF:
    case S_TRAILER_END_LF:
        if (c != '\n')
            return fail(p, 400, "CR not followed by LF");
        p->state = p->state == S_TRAILER_LF ? S_TRAILER_START : S_DONE;
        break;
    default:
        return fail(p, 500, "parser not in a trailer state");
    }
    return HTTP_RC_OK;
}

static http_rc parse_chunked(http_parser *p, uint8_t *buf, size_t *len)
{
    size_t i = p->pos, n = *len;
    http_rc rc;
    while (i < n && p->state != S_DONE) {
        uint8_t c = buf[i];
        switch (p->state) {
        case S_CHUNK_SIZE_START:
            if (!IS_HEX(c))
                return fail(p, 400, "malformed chunk size");
            p->chunk_left = 0;
            p->line_bytes = 0;
            p->state = S_CHUNK_SIZE;
            /* FALLTHROUGH */
        case S_CHUNK_SIZE:
            if (IS_HEX(c)) {
                unsigned d = c <= '9' ? (unsigned)(c - '0') : (unsigned)(c | 0x20) - 'a' + 10;
                if (p->chunk_left > (UINT64_MAX >> 4))
                    return fail(p, 400, "chunk size overflows");
                p->chunk_left = p->chunk_left << 4 | d;
            } else if (c == ';' || c == ' ' || c == '\t') {
                p->state = S_CHUNK_EXT;
            } else if (c == '\r') {
                p->state = S_CHUNK_SIZE_LF;
            } else if (c == '\n') {
                goto size_line_done;
            } else {
                return fail(p, 400, "malformed chunk size");
            }
            break;
        case S_CHUNK_EXT:
            if (c == '\r')
                p->state = S_CHUNK_SIZE_LF;
            else if (c == '\n')
                goto size_line_done;
            else if (!IS_FIELD_VCHAR(c) && c != ' ' && c != '\t')
                return fail(p, 400, "control character in a chunk extension");
            break;
        case S_CHUNK_SIZE_LF:
            if (c != '\n')
                return fail(p, 400, "CR not followed by LF");
        size_line_done:
            if (p->chunk_left == 0) {
                p->state = S_TRAILER_START;
                break;
            }
            if (p->chunk_left > p->limits.max_body_bytes - p->body_len)
                return fail(p, 413, "request body larger than the server accepts");
            p->state = S_CHUNK_DATA;
            break;
        case S_CHUNK_DATA: {
            size_t take = n - i;
            if (take > p->chunk_left)
                take = (size_t)p->chunk_left;
            /* De-chunk in place: decoded bytes never overtake encoded ones. */
            memmove(buf + p->head_len + p->body_len, buf + i, take);
            p->body_len += take;
            p->chunk_left -= take;
            i += take;
            if (p->chunk_left == 0)
                p->state = S_CHUNK_DATA_CR;
            continue; /* i already advanced */
        }
        case S_CHUNK_DATA_CR:
            if (c == '\r')
                p->state = S_CHUNK_DATA_LF;
            else if (c == '\n')
                p->state = S_CHUNK_SIZE_START;
            else
                return fail(p, 400, "chunk data longer than its size");
            break;
        case S_CHUNK_DATA_LF:
            if (c != '\n')
                return fail(p, 400, "CR not followed by LF");
            p->state = S_CHUNK_SIZE_START;
            break;
        default:
            if ((rc = trailer_byte(p, c)) != HTTP_RC_OK)
                return rc;
            break;
        }
        if (p->state >= S_CHUNK_SIZE && p->state <= S_CHUNK_SIZE_LF &&
            ++p->line_bytes > CHUNK_LINE_MAX)
            return fail(p, 400, "chunk-size line too long");
        i++;
    }
    if (p->state == S_DONE) {
        p->pos = i;
        return HTTP_RC_OK;
    }
    /* Everything seen is consumed: drop the framing bytes behind the body. */
    *len = p->head_len + p->body_len;
    p->pos = *len;
    return HTTP_RC_AGAIN;
}

http_rc http_parse_body(http_parser *p, uint8_t *buf, size_t *len)
{
    if (!p->is_head_done)
        return fail(p, 500, "body parsed before the head");
    if (p->state == S_DONE) {
        if (p->pos < p->head_len + p->body_len)
            p->pos = p->head_len + p->body_len;
        return HTTP_RC_OK;
    }
    if (p->state == S_BODY_LENGTH) {
        size_t need = p->head_len + (size_t)p->content_length;
        if (*len < need)
            return HTTP_RC_AGAIN;
        p->body_len = (size_t)p->content_length;
        p->pos = need;
        p->state = S_DONE;
        return HTTP_RC_OK;
    }
    if (p->pos < p->head_len)
        p->pos = p->head_len;
    return parse_chunked(p, buf, len);
}

void http_target_split(st_str target, st_str *path_raw, st_str *query)
{
    const char *s = target.ptr;
    size_t n = target.len, start = 0;
    /* absolute-form: scheme "://" authority, then the path (RFC 9112 3.2.2) */
    if (n > 0 && s[0] != '/') {
        size_t i = 0;
        while (i < n && s[i] != ':' && s[i] != '/' && s[i] != '?')
            i++;
        if (i + 2 < n && s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
            i += 3;
            while (i < n && s[i] != '/' && s[i] != '?')
                i++;
            start = i;
        }
    }
    size_t q = start;
    while (q < n && s[q] != '?')
        q++;
    if (start == q && start > 0) /* "http://host" or "http://host?x": path "/" */
        *path_raw = ST_STR("/");
    else
        *path_raw = st_str_make(s + start, q - start);
    *query = q < n ? st_str_make(s + q + 1, n - q - 1) : st_str_make(s + n, 0);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool http_path_decode(st_str raw, char *out, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < raw.len; i++) {
        char c = raw.ptr[i];
        if (c == '%') {
            if (raw.len - i < 3)
                return false;
            int hi = hex_value(raw.ptr[i + 1]), lo = hex_value(raw.ptr[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (out)
            out[o] = c;
        o++;
    }
    *out_len = o;
    return true;
}
