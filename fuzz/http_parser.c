/* http_parser.c - libFuzzer target for the HTTP request parser.  The input
 * is a connection's byte stream (pipelined requests); it is parsed the
 * way the server does (a buffer per request, leftovers carried over),
 * once whole, once byte by byte and once in pieces of input-chosen sizes.
 * All three must give the same verdicts and the same requests, and every
 * accepted request must respect the limits and point inside its buffer. */
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz.h"
#include "base/buf.h"
#include "http/http_int.h"

#define CHECK(cond)          \
    do {                     \
        if (!(cond))         \
            abort();         \
    } while (0)

static const http_limits limits = {
    .max_header_bytes = 2048,
    .max_headers = 16,
    .max_body_bytes = 4096,
    .max_uri_bytes = 512,
};

static void check_request(const http_parser *p, const uint8_t *buf, size_t len, st_buf *log)
{
    CHECK(p->head_len <= limits.max_header_bytes && p->head_len <= len);
    CHECK(p->body_len <= limits.max_body_bytes);
    CHECK(p->pos <= len && p->head_len + p->body_len <= p->pos);
    CHECK(p->n_fields <= limits.max_headers);
    CHECK(p->target.len <= limits.max_uri_bytes);
    CHECK(p->method.off + p->method.len <= p->head_len);
    CHECK(p->target.off + p->target.len <= p->head_len);
    CHECK(!(p->is_chunked && p->has_content_length));
    for (size_t i = 0; i < p->n_fields; i++) {
        const http_field *f = &p->fields[i];
        CHECK(f->name.len > 0 && f->name.off + f->name.len <= p->head_len);
        CHECK(f->value.off + f->value.len <= p->head_len);
        if (f->value.len) {
            uint8_t first = buf[f->value.off], last = buf[f->value.off + f->value.len - 1];
            CHECK(first != ' ' && first != '\t' && last != ' ' && last != '\t');
        }
    }
    st_str path_raw, query;
    http_target_split(st_str_make(buf + p->target.off, p->target.len), &path_raw, &query);
    char *path = malloc(path_raw.len + 1);
    size_t path_len = 0;
    CHECK(path && http_path_decode(path_raw, path, &path_len));
    CHECK(path_len == p->path_len && path_len <= path_raw.len);
    st_buf_printf(log, "OK %zu %d %d|", p->n_fields, p->is_keep_alive, p->version_minor);
    st_buf_append(log, buf + p->method.off, p->method.len);
    st_buf_append(log, buf + p->target.off, p->target.len);
    st_buf_append(log, path, path_len);
    st_buf_append(log, buf + p->head_len, p->body_len);
    free(path);
}

/* Parses the whole stream, `step` bytes per delivery (0: sizes taken from
 * the input itself), and logs what came out. */
static void run(const uint8_t *data, size_t size, size_t step, st_buf *log)
{
    uint8_t *buf = malloc(size + 1);
    CHECK(buf != NULL);
    size_t blen = 0, fed = 0, k = 0;
    http_parser p;
    http_parser_init(&p, &limits);
    while (fed < size) {
        size_t n = step ? step : (size_t)(data[k++ % size] % 17) + 1;
        if (n > size - fed)
            n = size - fed;
        memcpy(buf + blen, data + fed, n);
        blen += n;
        fed += n;
        for (;;) { /* as many requests as the buffer holds */
            bool was_head_done = p.is_head_done;
            http_rc rc = http_parse_head(&p, buf, blen);
            if (rc == HTTP_RC_OK) {
                if (!was_head_done && p.expects_continue)
                    st_buf_append_str(log, ST_STR("100|"));
                rc = http_parse_body(&p, buf, &blen);
            }
            if (rc == HTTP_RC_AGAIN)
                break;
            if (rc == HTTP_RC_ERROR) {
                CHECK(p.status >= 400 && p.status <= 505 && p.error != NULL);
                st_buf_printf(log, "ERR %d", p.status);
                goto done;
            }
            check_request(&p, buf, blen, log);
            size_t rest = blen - p.pos;
            memmove(buf, buf + p.pos, rest);
            blen = rest;
            http_parser_reset(&p);
            if (blen == 0)
                break;
        }
    }
    st_buf_printf(log, "END %zu", blen);
done:
    http_parser_free(&p);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 64 * 1024)
        return 0;
    st_buf whole = { 0 }, bytes = { 0 }, pieces = { 0 };
    run(data, size, size, &whole);
    run(data, size, 1, &bytes);
    run(data, size, 0, &pieces);
    CHECK(whole.len == bytes.len && memcmp(whole.data, bytes.data, whole.len) == 0);
    CHECK(whole.len == pieces.len && memcmp(whole.data, pieces.data, whole.len) == 0);
    st_buf_free(&whole);
    st_buf_free(&bytes);
    st_buf_free(&pieces);
    return 0;
}
