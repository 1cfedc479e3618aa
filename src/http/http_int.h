/* http_int.h - what the files of src/http share: the resumable request
 * parser (parser.c) and the response-head formatting (response.c).
 * Nothing here is for code outside src/http except the parser's tests and
 * fuzzer. */
#ifndef ST_HTTP_INT_H
#define ST_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/str.h"

/* nginx-style outcomes: done, need more bytes, or give up with a status. */
typedef enum { HTTP_RC_OK, HTTP_RC_AGAIN, HTTP_RC_ERROR } http_rc;

typedef struct http_limits {
    size_t max_header_bytes; /* request line + headers (+ trailers); 431 */
    size_t max_headers;      /* header lines (and trailer lines); 431 */
    size_t max_body_bytes;   /* decoded body; 413 */
    size_t max_uri_bytes;    /* request target; 414 */
} http_limits;

/* A place in the caller's buffer: offsets, so the buffer may move. */
typedef struct http_span {
    size_t off, len;
} http_span;

typedef struct http_field {
    http_span name, value; /* value without surrounding whitespace */
} http_field;

/* One request's parse state.  Offsets count from the first byte of the
 * request, which is buf[0] of every call. */
typedef struct http_parser {
    http_limits limits;
    int state;
    size_t pos;               /* next byte to look at */
    int status;               /* on HTTP_RC_ERROR: the status to answer */
    const char *error;        /* on HTTP_RC_ERROR: why, for the body and logs */

    /* the head, valid once is_head_done */
    bool is_head_done;
    http_span method, target;
    bool is_method_head;      /* HEAD: the response has no body */
    int version_minor;        /* HTTP/1.x */
    size_t head_len;          /* bytes up to and including the empty line */
    http_field *fields;       /* n_fields used, cap_fields allocated */
    size_t n_fields, cap_fields;
    size_t path_len;          /* percent-decoded path length */
    uint64_t content_length;
    bool has_content_length, is_chunked, is_keep_alive, expects_continue;

    /* header-line and semantic scratch */
    size_t name_off, name_len, value_off, value_end;
    bool has_host, has_te, is_te_chunked_last, conn_close, conn_keep_alive, is_expect_bad;
    unsigned te_chunked_count, te_other_count;

    /* the body: decoded bytes sit at buf[head_len, head_len + body_len) */
    size_t body_len;
    uint64_t chunk_left;
    size_t line_bytes;        /* bytes of the current chunk-size line */
    size_t trailer_bytes, n_trailers;
} http_parser;

/* Starts a parser with the given limits (copied); no allocation yet. */
void http_parser_init(http_parser *p, const http_limits *limits);
/* Readies the parser for the next request, keeping its field array. */
void http_parser_reset(http_parser *p);
/* Frees the field array. */
void http_parser_free(http_parser *p);

/* Parses the request line and headers in buf[0, len), resuming at p->pos.
 * OK: the head is complete (fields, framing and keep-alive decided, limits
 * checked: a declared body over the limit is already an ERROR 413).
 * AGAIN: call again with the same bytes plus more.  ERROR: p->status and
 * p->error say why; the connection must close after the answer. */
http_rc http_parse_head(http_parser *p, const uint8_t *buf, size_t len);

/* After a head: consumes body bytes in buf[p->pos, *len).  Chunked bodies
 * are de-chunked in place, so the body is always buf[head_len, head_len +
 * body_len); on AGAIN *len shrinks to head_len + body_len (everything was
 * consumed).  OK: the request is complete and the next request starts at
 * buf[p->pos]. */
http_rc http_parse_body(http_parser *p, uint8_t *buf, size_t *len);

/* Bytes the buffer must hold for the request to complete, as far as known
 * (head_len + Content-Length for a sized body). */
size_t http_parser_need(const http_parser *p);

/* Splits a request target into the raw path (absolute-form reduced to its
 * path) and the query after '?' (empty when none). */
void http_target_split(st_str target, st_str *path_raw, st_str *query);
/* Percent-decodes a path into out (at least raw.len bytes); false for a
 * malformed escape or an encoded NUL.  out may be NULL to only validate;
 * *out_len gets the decoded length. */
bool http_path_decode(st_str raw, char *out, size_t *out_len);

/* Formats "Date: ..." value for `unix_seconds` (29 characters, no NUL). */
#define HTTP_DATE_LEN 29
void http_format_date(int64_t unix_seconds, char out[HTTP_DATE_LEN]);

#endif
