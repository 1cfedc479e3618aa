/* test_http_parser.c - the request parser on a table of good and bad
 * requests, each fed whole, byte by byte and in uneven pieces (the parser
 * must reach the same verdict however the bytes arrive), plus target
 * splitting, percent-decoding and the Date format. */
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "http/http_int.h"

static const http_limits limits = {
    .max_header_bytes = 1024,
    .max_headers = 8,
    .max_body_bytes = 64,
    .max_uri_bytes = 128,
};

typedef struct {
    http_rc rc;
    int status;
    char method[16];
    char target[160];
    char body[128];
    size_t body_len;
    size_t next;          /* input offset where the next request starts */
    size_t n_fields;
    int version_minor;
    bool is_keep_alive, expects_continue;
} outcome;

/* Feeds `len` bytes `step` at a time (step 0: uneven pieces 1, 2, 3, ...)
 * the way a connection does: appended to a buffer that the body parser may
 * shrink when it de-chunks. */
static outcome feed(const char *req, size_t len, size_t step)
{
    outcome o;
    memset(&o, 0, sizeof o);
    uint8_t *buf = malloc(len + 1);
    size_t fed = 0, blen = 0, piece = 1;
    http_parser p;
    http_parser_init(&p, &limits);
    http_rc rc = HTTP_RC_AGAIN;
    while (rc == HTTP_RC_AGAIN && fed < len) {
        size_t n = step ? step : piece++;
        if (n > len - fed)
            n = len - fed;
        memcpy(buf + blen, req + fed, n);
        blen += n;
        fed += n;
        rc = http_parse_head(&p, buf, blen);
        if (rc == HTTP_RC_OK) {
            rc = http_parse_body(&p, buf, &blen);
            assert_true(blen <= fed);
        }
    }
    o.rc = rc;
    o.status = p.status;
    if (rc == HTTP_RC_ERROR)
        assert_non_null(p.error);
    if (p.is_head_done) {
        snprintf(o.method, sizeof o.method, "%.*s", (int)p.method.len, (char *)buf + p.method.off);
        snprintf(o.target, sizeof o.target, "%.*s", (int)p.target.len, (char *)buf + p.target.off);
        o.n_fields = p.n_fields;
        o.version_minor = p.version_minor;
        o.is_keep_alive = p.is_keep_alive;
        o.expects_continue = p.expects_continue;
    }
    if (rc == HTTP_RC_OK) {
        assert_true(p.body_len < sizeof o.body);
        memcpy(o.body, buf + p.head_len, p.body_len);
        o.body_len = p.body_len;
        o.next = fed - (blen - p.pos);
    }
    http_parser_free(&p);
    free(buf);
    return o;
}

typedef struct {
    const char *name;
    const char *req;
    int status;             /* 0: parses; else the error status */
    const char *body;       /* for good requests */
    bool is_keep_alive;
} parse_case;

#define H "Host: h\r\n"

static const parse_case cases[] = {
    /* good */
    { "simple GET", "GET / HTTP/1.1\r\n" H "\r\n", 0, "", true },
    { "empty lines first", "\r\n\r\nGET /a?b=c HTTP/1.1\r\n" H "\r\n", 0, "", true },
    { "bare LF", "GET / HTTP/1.1\n" H "X: y\n\n", 0, "", true },
    { "POST length", "POST /p HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello", 0, "hello", true },
    { "POST length equal twice", "POST /p HTTP/1.1\r\n" H "Content-Length: 3\r\ncontent-length: 3\r\n\r\nabc",
      0, "abc", true },
    { "length zero", "POST / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 0, "", true },
    { "chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6;a=b;c=\"d\"\r\n world\r\n0\r\n\r\n", 0, "hello world", true },
    { "chunked hex and trailers", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: Chunked\r\n\r\n"
                                  "0A\r\n0123456789\r\nf\r\nabcdefghijklmno\r\n0\r\nT: 1\r\nU:\r\n\r\n",
      0, "0123456789abcdefghijklmno", true },
    { "chunked bare LF", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n",
      0, "ab", true },
    { "chunk ext with spaces", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                               "1 ; x = y\r\nq\r\n0\r\n\r\n", 0, "q", true },
    { "connection close", "GET / HTTP/1.1\r\n" H "Connection: foo, Close\r\n\r\n", 0, "", false },
    { "1.0 default close", "GET / HTTP/1.0\r\n\r\n", 0, "", false },
    { "1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, "", true },
    { "absolute form", "GET http://x.y:8/v2/models?q=1 HTTP/1.1\r\n" H "\r\n", 0, "", true },
    { "asterisk form", "OPTIONS * HTTP/1.1\r\n" H "\r\n", 0, "", true },
    { "obs-text value", "GET / HTTP/1.1\r\n" H "X: caf\xc3\xa9\r\n\r\n", 0, "", true },
    { "empty value", "GET / HTTP/1.1\r\n" H "X:\r\nY: \t \r\n\r\n", 0, "", true },
    { "HTTP/1.9", "GET / HTTP/1.9\r\n" H "\r\n", 0, "", true },
    { "GET with body", "GET / HTTP/1.1\r\n" H "Content-Length: 2\r\n\r\nhi", 0, "hi", true },
    { "percent path", "GET /a%20b%2Fc HTTP/1.1\r\n" H "\r\n", 0, "", true },

    /* 400 */
    { "bad method byte", "G@T / HTTP/1.1\r\n" H "\r\n", 400, NULL, false },
    { "no version", "GET /\r\n\r\n", 400, NULL, false },
    { "two spaces", "GET  / HTTP/1.1\r\n" H "\r\n", 400, NULL, false },
    { "space after version", "GET / HTTP/1.1 \r\n" H "\r\n", 400, NULL, false },
    { "lowercase version", "GET / http/1.1\r\n" H "\r\n", 400, NULL, false },
    { "version letters", "GET / HTTP/1.x\r\n" H "\r\n", 400, NULL, false },
    { "tab in target", "GET /a\tb HTTP/1.1\r\n" H "\r\n", 400, NULL, false },
    { "8-bit target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 400, NULL, false },
    { "bare CR in request line", "GET / HTTP/1.1\rX\n" H "\r\n", 400, NULL, false },
    { "bare CR in value", "GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", 400, NULL, false },
    { "bare CR ends head", "GET / HTTP/1.1\r\n" H "\rX\n", 400, NULL, false },
    { "space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, NULL, false },
    { "obs-fold", "GET / HTTP/1.1\r\n" H "X: a\r\n  b\r\n\r\n", 400, NULL, false },
    { "whitespace first line", "GET / HTTP/1.1\r\n " H "\r\n", 400, NULL, false },
    { "empty name", "GET / HTTP/1.1\r\n" H ": x\r\n\r\n", 400, NULL, false },
    { "bad name byte", "GET / HTTP/1.1\r\n" H "X(y): x\r\n\r\n", 400, NULL, false },
    { "no colon", "GET / HTTP/1.1\r\n" H "Xy\r\n\r\n", 400, NULL, false },
    { "NUL in value", "GET / HTTP/1.1\r\n" H "X: a\x01" "b\r\n\r\n", 400, NULL, false },
    { "DEL in value", "GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n", 400, NULL, false },
    { "length letters", "POST / HTTP/1.1\r\n" H "Content-Length: 1a\r\n\r\n", 400, NULL, false },
    { "length negative", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 400, NULL, false },
    { "length plus", "POST / HTTP/1.1\r\n" H "Content-Length: +1\r\n\r\n", 400, NULL, false },
    { "length empty", "POST / HTTP/1.1\r\n" H "Content-Length: \r\n\r\n", 400, NULL, false },
    { "length list", "POST / HTTP/1.1\r\n" H "Content-Length: 1, 1\r\n\r\n", 400, NULL, false },
    { "length disagree", "POST / HTTP/1.1\r\n" H "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, NULL, false },
    { "length overflow", "POST / HTTP/1.1\r\n" H "Content-Length: 18446744073709551616\r\n\r\n", 400, NULL, false },
    { "length and chunked", "POST / HTTP/1.1\r\n" H "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, NULL, false },
    { "chunked and length", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400, NULL, false },
    { "chunked not last", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, NULL, false },
    { "chunked twice", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, NULL, false },
    { "TE empty", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: \r\n\r\n", 400, NULL, false },
    { "TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, NULL, false },
    { "no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", 400, NULL, false },
    { "two Hosts", "GET / HTTP/1.1\r\n" H H "\r\n", 400, NULL, false },
    { "chunk size not hex", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, NULL, false },
    { "chunk size empty", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n\r\n", 400, NULL, false },
    { "chunk size overflow", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                             "10000000000000000\r\n", 400, NULL, false },
    { "chunk data too long", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 400, NULL, false },
    { "chunk data bare CR", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n2\r\nab\rX", 400, NULL, false },
    { "chunk ext control", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n1;a\x01\r\nx\r\n0\r\n\r\n", 400, NULL, false },
    { "bad trailer", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer\r\n\r\n", 400, NULL, false },
    { "trailer fold", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n 2\r\n\r\n", 400, NULL, false },
    { "bad percent", "GET /a%zz HTTP/1.1\r\n" H "\r\n", 400, NULL, false },
    { "short percent", "GET /a%2 HTTP/1.1\r\n" H "\r\n", 400, NULL, false },
    { "encoded NUL", "GET /a%00 HTTP/1.1\r\n" H "\r\n", 400, NULL, false },

    /* 413, 414, 417, 431, 501, 505 */
    { "length over limit", "POST / HTTP/1.1\r\n" H "Content-Length: 65\r\n\r\n", 413, NULL, false },
    { "chunk over limit", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n41\r\n", 413, NULL, false },
    { "chunks sum over limit", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                               "20\r\n01234567890123456789012345678901\r\n"
                               "20\r\n01234567890123456789012345678901\r\n1\r\n", 413, NULL, false },
    { "huge chunk", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n", 413, NULL, false },
    { "target too long", "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n" H "\r\n", 414, NULL, false },
    { "bad expectation", "GET / HTTP/1.1\r\n" H "Expect: 200-ok\r\n\r\n", 417, NULL, false },
    { "too many headers", "GET / HTTP/1.1\r\n" H "A: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nI: 1\r\n\r\n", 431, NULL, false },
    { "too many trailers", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\n"
                           "A: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nI: 1\r\nJ: 1\r\n\r\n", 431, NULL, false },
    { "unknown method", "BREW / HTTP/1.1\r\n" H "\r\n", 501, NULL, false },
    { "lowercase method", "get / HTTP/1.1\r\n" H "\r\n", 501, NULL, false },
    { "long method", "GETGETGETGETGETGETGET / HTTP/1.1\r\n" H "\r\n", 501, NULL, false },
    { "gzip coding", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, NULL, false },
    { "HTTP/2", "GET / HTTP/2.0\r\n" H "\r\n", 505, NULL, false },
    { "HTTP/0.9 major", "GET / HTTP/0.9\r\n" H "\r\n", 505, NULL, false },
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const parse_case *pc = &cases[i];
        size_t len = strlen(pc->req);
        static const size_t steps[] = { 100000, 1, 0, 7 };
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            outcome o = feed(pc->req, len, steps[s]);
            int want_rc = pc->status ? HTTP_RC_ERROR : HTTP_RC_OK;
            if ((int)o.rc != want_rc || (pc->status && o.status != pc->status)) {
                print_error("case '%s' (step %zu): rc %d status %d, want rc %d status %d\n",
                            pc->name, steps[s], o.rc, o.status, want_rc, pc->status);
                fail();
            }
            if (pc->status)
                continue;
            if (o.body_len != strlen(pc->body) || memcmp(o.body, pc->body, o.body_len) != 0 ||
                o.next != len || o.is_keep_alive != pc->is_keep_alive) {
                print_error("case '%s' (step %zu): body '%.*s' next %zu/%zu keep-alive %d\n",
                            pc->name, steps[s], (int)o.body_len, o.body, o.next, len, o.is_keep_alive);
                fail();
            }
        }
    }
}

static void test_head_fields(void **state)
{
    (void)state;
    static const char req[] = "POST /v2/models/m/infer?x=1 HTTP/1.1\r\nHost: h\r\n"
                              "Expect: 100-Continue\r\nX-Pad:   a b  \r\nContent-Length: 2\r\n\r\nhi";
    outcome o = feed(req, sizeof req - 1, 3);
    assert_int_equal(o.rc, HTTP_RC_OK);
    assert_string_equal(o.method, "POST");
    assert_string_equal(o.target, "/v2/models/m/infer?x=1");
    assert_int_equal(o.n_fields, 4);
    assert_int_equal(o.version_minor, 1);
    assert_true(o.expects_continue);

    /* trimmed value */
    http_parser p;
    http_parser_init(&p, &limits);
    assert_int_equal(http_parse_head(&p, (const uint8_t *)req, sizeof req - 1), HTTP_RC_OK);
    http_field f = p.fields[2];
    assert_int_equal(f.value.len, 3);
    assert_memory_equal(req + f.value.off, "a b", 3);
    assert_int_equal(http_parser_need(&p), p.head_len + 2);
    http_parser_free(&p);

    /* HTTP/1.0 ignores 100-continue */
    static const char old[] = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx";
    o = feed(old, sizeof old - 1, 1);
    assert_int_equal(o.rc, HTTP_RC_OK);
    assert_false(o.expects_continue);
}

static void test_incomplete_and_pipelined(void **state)
{
    (void)state;
    static const char two[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    outcome o = feed(two, sizeof two - 1, 5);
    assert_int_equal(o.rc, HTTP_RC_OK);
    assert_memory_equal(two + o.next, "GET /next", 9);
    /* every proper prefix of a good request asks for more */
    static const char one[] = "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3\r\nabc\r\n0\r\nT: v\r\n\r\n";
    for (size_t n = 0; n < sizeof one - 1; n++)
        assert_int_equal(feed(one, n, 1).rc, HTTP_RC_AGAIN);
    /* the header limit counts the whole head */
    char big[1100];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    o = feed(big, sizeof big, 64);
    assert_int_equal(o.rc, HTTP_RC_ERROR);
    assert_int_equal(o.status, 431);
}

static void test_target_split(void **state)
{
    (void)state;
    static const struct {
        const char *target, *path, *query;
    } t[] = {
        { "/a/b?c=d", "/a/b", "c=d" },
        { "/", "/", "" },
        { "/x?", "/x", "" },
        { "http://h:1/p/q?z", "/p/q", "z" },
        { "HTTPS://h", "/", "" },
        { "http://h?k", "/", "k" },
        { "*", "*", "" },
        { "h:443", "h:443", "" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        st_str path, query;
        http_target_split(st_str_c(t[i].target), &path, &query);
        if (!st_str_eq_c(path, t[i].path) || !st_str_eq_c(query, t[i].query)) {
            print_error("%s -> '%.*s' '%.*s'\n", t[i].target, ST_STR_FMT(path), ST_STR_FMT(query));
            fail();
        }
    }
    char out[32];
    size_t n;
    assert_true(http_path_decode(ST_STR("/a%20b%2fc%C3%A9"), out, &n));
    assert_int_equal(n, 8);
    assert_memory_equal(out, "/a b/c\xc3\xa9", 8);
    assert_false(http_path_decode(ST_STR("/%"), NULL, &n));
    assert_false(http_path_decode(ST_STR("/%4"), NULL, &n));
    assert_false(http_path_decode(ST_STR("/%g0"), NULL, &n));
    assert_false(http_path_decode(ST_STR("/%00"), NULL, &n));
}

static void test_date(void **state)
{
    (void)state;
    char d[HTTP_DATE_LEN + 1] = { 0 };
    http_format_date(784111777, d);
    assert_string_equal(d, "Sun, 06 Nov 1994 08:49:37 GMT");
    http_format_date(0, d);
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT");
    http_format_date(951782400, d); /* leap day */
    assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 GMT");
    http_format_date(1798761599, d);
    assert_string_equal(d, "Thu, 31 Dec 2026 23:59:59 GMT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_head_fields),
        cmocka_unit_test(test_incomplete_and_pipelined),
        cmocka_unit_test(test_target_split),
        cmocka_unit_test(test_date),
    };
    return cmocka_run_group_tests_name("http_parser", tests, NULL, NULL);
}
