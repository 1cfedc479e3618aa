/* test_http_server.c - the HTTP server over real loopback sockets: keep-alive,
 * pipelining answered in order (also when a handler answers late from
 * another thread), chunked bodies, 100-continue, limits, timeouts (short
 * ones), connection limits and draining with requests in flight.  Every
 * read has a receive timeout, so a broken server fails a test instead of
 * hanging it; no test asserts a duration. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "testing.h"

#include "base/time.h"
#include "http/http.h"

/* ---- the test handler ------------------------------------------------------- */

/* Paths: /echo answers "METHOD path|query|body"; /async?ms=N answers the
 * same from another thread N ms later; /buf answers through
 * http_respond_buf; /hdr?name=X answers the value of header X. */

#define MAX_LATE 256
static pthread_t late_threads[MAX_LATE];
static int n_late;
static pthread_mutex_t late_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int handled;
static http_server *stop_target; /* for /stop */

static void echo_body(const http_request *r, st_buf *out)
{
    st_buf_printf(out, "%.*s %.*s|%.*s|", ST_STR_FMT(r->method), ST_STR_FMT(r->path),
                  ST_STR_FMT(r->query));
    if (r->body_len)
        st_buf_append(out, r->body, r->body_len);
}

static void respond_echo(http_exchange *ex)
{
    st_buf out = { 0 };
    echo_body(http_exchange_request(ex), &out);
    http_respond(ex, 200, "text/plain", "X-Test: 1\r\n", 11, out.data, out.len);
    st_buf_free(&out);
}

typedef struct {
    http_exchange *ex;
    int ms;
} late_job;

static void *late_main(void *arg)
{
    late_job *job = arg;
    st_sleep_us((uint64_t)job->ms * 1000);
    respond_echo(job->ex);
    free(job);
    return NULL;
}

static int query_int(st_str q, const char *key)
{
    size_t klen = strlen(key);
    if (q.len > klen && memcmp(q.ptr, key, klen) == 0 && q.ptr[klen] == '=') {
        int v = 0;
        for (size_t i = klen + 1; i < q.len && q.ptr[i] >= '0' && q.ptr[i] <= '9'; i++)
            v = v * 10 + (q.ptr[i] - '0');
        return v;
    }
    return 0;
}

static void test_handler(http_exchange *ex, void *user)
{
    atomic_fetch_add(&handled, 1);
    const http_request *r = http_exchange_request(ex);
    if (st_str_eq_c(r->path, "/async")) {
        late_job *job = malloc(sizeof *job);
        job->ex = ex;
        job->ms = query_int(r->query, "ms");
        pthread_mutex_lock(&late_mu);
        assert_true(n_late < MAX_LATE);
        assert_int_equal(pthread_create(&late_threads[n_late++], NULL, late_main, job), 0);
        pthread_mutex_unlock(&late_mu);
        return;
    }
    if (st_str_eq_c(r->path, "/buf")) {
        st_buf out = { 0 };
        echo_body(r, &out);
        http_respond_buf(ex, 201, "text/plain", NULL, 0, &out);
        assert_null(out.data);
        return;
    }
    if (st_str_eq_c(r->path, "/hdr")) {
        char name[64];
        int n = snprintf(name, sizeof name, "%.*s", (int)(r->query.len > 5 ? r->query.len - 5 : 0),
                         r->query.ptr + 5);
        (void)n;
        st_str v = http_request_header(r, name);
        http_respond(ex, v.ptr ? 200 : 404, "text/plain", NULL, 0, v.ptr, v.len);
        return;
    }
    if (st_str_eq_c(r->path, "/big")) {
        /* a body far larger than a socket buffer: partial writes, EPOLLOUT */
        st_buf out = { 0 };
        int n = query_int(r->query, "n");
        st_buf_reserve(&out, (size_t)n);
        for (int i = 0; i < n; i++)
            out.data[i] = (uint8_t)('a' + i % 26);
        out.len = (size_t)n;
        http_respond_buf(ex, 200, "application/octet-stream", NULL, 0, &out);
        return;
    }
    if (st_str_eq_c(r->path, "/stop")) { /* a handler may start the drain */
        (void)user;
        http_server_stop(stop_target, 2000);
        respond_echo(ex);
        return;
    }
    if (st_str_eq_c(r->path, "/nocontent")) {
        http_respond(ex, 204, NULL, NULL, 0, NULL, 0);
        return;
    }
    respond_echo(ex);
}

static void join_late(void)
{
    pthread_mutex_lock(&late_mu);
    for (int i = 0; i < n_late; i++)
        pthread_join(late_threads[i], NULL);
    n_late = 0;
    pthread_mutex_unlock(&late_mu);
}

/* ---- server and client helpers ---------------------------------------------- */

static http_config test_config(void)
{
    http_config cfg = http_config_default();
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.io_threads = 2;
    cfg.max_header_bytes = 2048;
    cfg.max_body_bytes = 100000;
    cfg.max_headers = 20;
    cfg.max_uri_bytes = 512;
    cfg.max_pipelined = 8;
    return cfg;
}

static http_server *start(const http_config *cfg)
{
    http_server *srv = NULL;
    st_error err = { 0 };
    if (http_server_start(cfg, test_handler, NULL, &srv, &err) != ST_OK) {
        print_error("start: %s\n", err.msg);
        fail();
    }
    assert_true(http_server_port(srv) > 0);
    return srv;
}

static void finish(http_server *srv)
{
    http_server_stop(srv, 2000);
    join_late();
    http_server_free(srv);
}

typedef struct {
    int fd;
    char buf[1 << 17];
    size_t len;
} client;

static client *connect_to(http_server *srv)
{
    client *c = calloc(1, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)http_server_port(srv)) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    return c;
}

static void client_close(client *c)
{
    close(c->fd);
    free(c);
}

static void send_str(client *c, const char *s, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the server may have closed; reads tell */
        off += (size_t)n;
    }
}
#define SEND(c, lit) send_str((c), (lit), sizeof(lit) - 1)

/* Reads more bytes; 0 on EOF or error (timeout included). */
static ssize_t fill(client *c)
{
    if (c->len == sizeof c->buf)
        return 0;
    ssize_t n;
    do
        n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        c->len += (size_t)n;
    return n > 0 ? n : 0;
}

typedef struct {
    int status;
    char head[4096];
    char body[1 << 16];
    size_t body_len;
} response;

static const char *find_crlf2(const char *s, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (memcmp(s + i, "\r\n\r\n", 4) == 0)
            return s + i;
    return NULL;
}

/* Reads one response; false when the connection ended first. */
static bool read_response(client *c, response *r)
{
    const char *end;
    while (!(end = find_crlf2(c->buf, c->len)))
        if (!fill(c))
            return false;
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof r->head);
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    size_t clen = 0;
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    if (cl)
        clen = strtoul(cl + 18, NULL, 10);
    assert_true(clen < sizeof r->body);
    while (c->len < head_len + clen)
        if (!fill(c))
            return false;
    memcpy(r->body, c->buf + head_len, clen);
    r->body[clen] = '\0';
    r->body_len = clen;
    memmove(c->buf, c->buf + head_len + clen, c->len - head_len - clen);
    c->len -= head_len + clen;
    return true;
}

/* True when the server closes the connection (after any bytes left). */
static bool reads_to_close(client *c)
{
    for (;;) {
        ssize_t n;
        do
            n = recv(c->fd, c->buf, sizeof c->buf, 0);
        while (n < 0 && errno == EINTR);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false; /* timeout */
    }
}

static void expect_response(client *c, int status, const char *body)
{
    response *r = malloc(sizeof *r);
    assert_true(read_response(c, r));
    if (r->status != status || (body && strcmp(r->body, body) != 0)) {
        print_error("got %d '%s', want %d '%s'\n", r->status, r->body, status, body ? body : "");
        free(r);
        fail();
    }
    free(r);
}

/* Reads the interim "100 Continue" response. */
static void expect_continue(client *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    while (c->len < sizeof cont - 1)
        assert_true(fill(c) > 0);
    assert_memory_equal(c->buf, cont, sizeof cont - 1);
    c->len -= sizeof cont - 1;
    memmove(c->buf, c->buf + sizeof cont - 1, c->len);
}

/* Waits (boundedly) until the server holds at least one request. */
static void wait_in_flight(http_server *srv)
{
    for (int i = 0; i < 1000 && http_server_in_flight(srv) == 0; i++)
        st_sleep_us(1000);
}

/* ---- tests ------------------------------------------------------------------- */

static void test_keep_alive(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    client *c = connect_to(srv);
    response *r = malloc(sizeof *r);
    for (int i = 0; i < 3; i++) {
        SEND(c, "GET /echo?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_true(read_response(c, r));
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, "GET /echo|x=1|");
        assert_non_null(strstr(r->head, "\r\nDate: "));
        assert_non_null(strstr(r->head, "\r\nX-Test: 1\r\n"));
        assert_non_null(strstr(r->head, "\r\nContent-Type: text/plain\r\n"));
        assert_null(strstr(r->head, "Connection: close"));
    }
    /* POST with a body, percent-decoded path, respond_buf */
    SEND(c, "POST /b%75f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_true(read_response(c, r));
    assert_int_equal(r->status, 201);
    assert_string_equal(r->body, "POST /buf||hello");
    /* HEAD: length but no body */
    SEND(c, "HEAD /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /hdr?name=x-a HTTP/1.1\r\nHost: a\r\nX-A:  v w \r\n\r\n");
    const char *end;
    while (!(end = find_crlf2(c->buf, c->len)))
        assert_true(fill(c) > 0);
    assert_non_null(strstr(c->buf, "Content-Length: 12\r\n"));
    memmove(c->buf, end + 4, c->len - (size_t)(end + 4 - c->buf));
    c->len -= (size_t)(end + 4 - c->buf);
    expect_response(c, 200, "v w");
    SEND(c, "GET /nocontent HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(read_response(c, r));
    assert_int_equal(r->status, 204);
    assert_null(strstr(r->head, "Content-Length"));
    /* Connection: close ends it after the response */
    SEND(c, "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_true(read_response(c, r));
    assert_non_null(strstr(r->head, "Connection: close"));
    assert_true(reads_to_close(c));
    client_close(c);
    /* HTTP/1.0: closes unless asked to keep alive */
    c = connect_to(srv);
    SEND(c, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(read_response(c, r));
    assert_non_null(strstr(r->head, "Connection: keep-alive"));
    SEND(c, "GET /echo HTTP/1.0\r\n\r\n");
    assert_true(read_response(c, r));
    assert_true(reads_to_close(c));
    client_close(c);
    free(r);
    finish(srv);
}

static void test_pipelined_in_order(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    client *c = connect_to(srv);
    /* The slow ones first: answers must still leave in request order. */
    SEND(c, "GET /async?ms=60 HTTP/1.1\r\nHost: a\r\n\r\n"
            "POST /async?ms=5 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
            "GET /echo?n=3 HTTP/1.1\r\nHost: a\r\n\r\n"
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
            "GET /async?ms=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_response(c, 200, "GET /async|ms=60|");
    expect_response(c, 200, "POST /async|ms=5|abc");
    expect_response(c, 200, "GET /echo|n=3|");
    expect_response(c, 200, "POST /echo||xy");
    expect_response(c, 200, "GET /async|ms=1|");
    /* more than max_pipelined at once: all answered, in order */
    char big[8192];
    size_t off = 0;
    for (int i = 0; i < 40; i++)
        off += (size_t)snprintf(big + off, sizeof big - off,
                                "GET /%s?i=%d HTTP/1.1\r\nHost: a\r\n\r\n", i % 3 ? "echo" : "async", i);
    send_str(c, big, off);
    for (int i = 0; i < 40; i++) {
        char want[64];
        snprintf(want, sizeof want, "GET /%s|i=%d|", i % 3 ? "echo" : "async", i);
        expect_response(c, 200, want);
    }
    client_close(c);
    finish(srv);
}

static void test_chunked(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    client *c = connect_to(srv);
    SEND(c, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5;name=value\r\nhello\r\n1\r\n \r\n0005\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n");
    expect_response(c, 200, "POST /echo||hello world");
    /* byte by byte */
    static const char slow[] = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
    for (size_t i = 0; i < sizeof slow - 1; i++)
        send_str(c, slow + i, 1);
    expect_response(c, 200, "POST /echo||abc0123456789");
    /* a chunk over the body limit: 413 and close */
    SEND(c, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            "FFFFFFFF\r\n");
    expect_response(c, 413, NULL);
    assert_true(reads_to_close(c));
    client_close(c);
    finish(srv);
}

static void test_expect_continue(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    client *c = connect_to(srv);
    SEND(c, "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    expect_continue(c);
    SEND(c, "data");
    expect_response(c, 200, "POST /echo||data");
    /* too large: 413 at once, no 100 */
    SEND(c, "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 100001\r\n\r\n");
    expect_response(c, 413, NULL);
    assert_true(reads_to_close(c));
    client_close(c);
    finish(srv);
}

static void expect_rejected(http_server *srv, const char *request, size_t len, int status)
{
    client *c = connect_to(srv);
    send_str(c, request, len);
    response *r = malloc(sizeof *r);
    bool ok = read_response(c, r);
    if (!ok || r->status != status) {
        print_error("request '%.60s...': got %d, want %d\n", request, ok ? r->status : -1, status);
        free(r);
        fail();
        return;
    }
    assert_non_null(strstr(r->head, "Connection: close"));
    assert_non_null(strstr(r->body, "\"error\""));
    free(r);
    assert_true(reads_to_close(c));
    client_close(c);
}

static void test_limits(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    char big[4096];
    int n = snprintf(big, sizeof big, "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: %03000d\r\n\r\n", 0);
    expect_rejected(srv, big, (size_t)n, 431);
    n = snprintf(big, sizeof big, "GET /%0600d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    expect_rejected(srv, big, (size_t)n, 414);
    n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 25; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-%d: y\r\n", i);
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    expect_rejected(srv, big, (size_t)n, 431);
    static const char body413[] = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100001\r\n\r\n";
    expect_rejected(srv, body413, sizeof body413 - 1, 413);
    static const char brew[] = "BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n";
    expect_rejected(srv, brew, sizeof brew - 1, 501);
    static const char both[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    expect_rejected(srv, both, sizeof both - 1, 400);
    static const char fold[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n";
    expect_rejected(srv, fold, sizeof fold - 1, 400);
    static const char v2[] = "GET / HTTP/2.0\r\nHost: a\r\n\r\n";
    expect_rejected(srv, v2, sizeof v2 - 1, 505);
    /* a good request answered before the bad one that follows it */
    client *c = connect_to(srv);
    SEND(c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost a\r\n\r\n");
    expect_response(c, 200, "GET /echo||");
    expect_response(c, 400, NULL);
    assert_true(reads_to_close(c));
    client_close(c);
    /* a body as large as allowed still gets through */
    char *req = malloc(100200);
    n = snprintf(req, 200, "POST /buf HTTP/1.1\r\nHost: a\r\nContent-Length: 60000\r\n\r\n");
    memset(req + n, 'z', 60000);
    c = connect_to(srv);
    send_str(c, req, (size_t)n + 60000);
    response *r = malloc(sizeof *r);
    assert_true(read_response(c, r));
    assert_int_equal(r->status, 201);
    assert_int_equal(r->body_len, strlen("POST /buf||") + 60000);
    free(r);
    free(req);
    client_close(c);
    finish(srv);
}

/* A client that keeps sending a body the server refused still reads the
 * refusal (the server discards input for a while instead of resetting). */
static void test_refusal_survives_upload(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    client *c = connect_to(srv);
    static const char head[] = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\n";
    size_t len = sizeof head - 1 + 300000;
    char *req = malloc(len);
    memcpy(req, head, sizeof head - 1);
    memset(req + sizeof head - 1, 'b', 300000);
    send_str(c, req, len);
    free(req);
    expect_response(c, 413, NULL);
    assert_true(reads_to_close(c));
    client_close(c);
    finish(srv);
}

/* Big answers to a client that reads late leave whole and in order. */
static void test_big_responses(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    client *c = connect_to(srv);
    SEND(c, "GET /big?n=3000000 HTTP/1.1\r\nHost: a\r\n\r\nGET /big?n=2000001 HTTP/1.1\r\nHost: a\r\n\r\n"
            "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    st_sleep_us(100000); /* let the server fill the socket */
    static const size_t sizes[] = { 3000000, 2000001 };
    for (int k = 0; k < 2; k++) {
        const char *end;
        while (!(end = find_crlf2(c->buf, c->len)))
            assert_true(fill(c) > 0);
        size_t head_len = (size_t)(end - c->buf) + 4;
        char want[64];
        snprintf(want, sizeof want, "Content-Length: %zu\r\n", sizes[k]);
        assert_non_null(strstr(c->buf, want));
        size_t got = c->len - head_len, bad = 0;
        for (size_t i = 0; i < got; i++)
            bad += c->buf[head_len + i] != (char)('a' + i % 26);
        c->len = 0;
        while (got < sizes[k]) {
            size_t before = got;
            ssize_t n = fill(c);
            assert_true(n > 0);
            size_t take = c->len;
            if (got + take > sizes[k])
                take = sizes[k] - got;
            for (size_t i = 0; i < take; i++)
                bad += c->buf[i] != (char)('a' + (before + i) % 26);
            got += take;
            memmove(c->buf, c->buf + take, c->len - take);
            c->len -= take;
        }
        assert_int_equal(bad, 0);
    }
    expect_response(c, 200, "GET /echo||");
    client_close(c);
    finish(srv);
}

/* Requests sent before the client half-closes are all answered. */
static void test_half_close(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    client *c = connect_to(srv);
    SEND(c, "GET /async?ms=30 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    expect_response(c, 200, "GET /async|ms=30|");
    expect_response(c, 200, "GET /echo||");
    assert_true(reads_to_close(c));
    client_close(c);
    /* 100-continue behind a request in progress waits for its answer */
    c = connect_to(srv);
    SEND(c, "GET /async?ms=30 HTTP/1.1\r\nHost: a\r\n\r\n"
            "PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    expect_response(c, 200, "GET /async|ms=30|");
    expect_continue(c);
    SEND(c, "ok");
    expect_response(c, 200, "PUT /echo||ok");
    client_close(c);
    finish(srv);
}

static void test_timeouts(void **state)
{
    (void)state;
    http_config cfg = test_config();
    cfg.header_timeout_ms = 150;
    cfg.request_timeout_ms = 400;
    cfg.idle_timeout_ms = 300;
    http_server *srv = start(&cfg);
    /* slowloris: a head that never ends gets 408 and a close */
    client *c = connect_to(srv);
    SEND(c, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 3; i++) {
        st_sleep_us(20000);
        SEND(c, "X-Slow: 1\r\n");
    }
    expect_response(c, 408, NULL);
    assert_true(reads_to_close(c));
    client_close(c);
    /* a body that never completes: 408 after the request timeout */
    c = connect_to(srv);
    SEND(c, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    expect_response(c, 408, NULL);
    assert_true(reads_to_close(c));
    client_close(c);
    /* idle keep-alive connections are closed */
    c = connect_to(srv);
    SEND(c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_response(c, 200, "GET /echo||");
    assert_true(reads_to_close(c));
    client_close(c);
    /* a silent connection too */
    c = connect_to(srv);
    assert_true(reads_to_close(c));
    client_close(c);
    finish(srv);
}

static void test_max_connections(void **state)
{
    (void)state;
    http_config cfg = test_config();
    cfg.max_connections = 2;
    cfg.io_threads = 1;
    http_server *srv = start(&cfg);
    client *a = connect_to(srv), *b = connect_to(srv);
    SEND(a, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    SEND(b, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_response(a, 200, NULL);
    expect_response(b, 200, NULL);
    client *x = connect_to(srv);
    SEND(x, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_true(reads_to_close(x));
    client_close(x);
    client_close(a);
    /* a slot frees up once a connection goes (the server sees the close) */
    bool served = false;
    for (int i = 0; i < 100 && !served; i++) {
        st_sleep_us(10000);
        client *y = connect_to(srv);
        SEND(y, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
        response *r = malloc(sizeof *r);
        served = read_response(y, r) && r->status == 200;
        free(r);
        client_close(y);
    }
    assert_true(served);
    client_close(b);
    finish(srv);
}

typedef struct {
    http_server *srv;
} stopper;

static void test_stop_drains(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    client *busy = connect_to(srv), *idle = connect_to(srv);
    SEND(idle, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_response(idle, 200, NULL);
    SEND(busy, "GET /async?ms=150 HTTP/1.1\r\nHost: a\r\n\r\n");
    wait_in_flight(srv);
    assert_int_equal(http_server_in_flight(srv), 1);
    http_server_stop(srv, 5000);
    http_server_stop(srv, 5000); /* idempotent */
    /* the in-flight request was answered, with Connection: close */
    response *r = malloc(sizeof *r);
    assert_true(read_response(busy, r));
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "GET /async|ms=150|");
    assert_non_null(strstr(r->head, "Connection: close"));
    free(r);
    assert_true(reads_to_close(busy));
    assert_true(reads_to_close(idle));
    assert_int_equal(http_server_in_flight(srv), 0);
    client_close(busy);
    client_close(idle);
    join_late();
    http_server_free(srv);
}

static void test_peer_gone_while_handled(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    for (int i = 0; i < 4; i++) {
        client *c = connect_to(srv);
        SEND(c, "POST /async?ms=50 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
                "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
        wait_in_flight(srv);
        client_close(c); /* gone before the answer */
    }
    for (int i = 0; i < 1000 && http_server_in_flight(srv) > 0; i++)
        st_sleep_us(2000);
    assert_int_equal(http_server_in_flight(srv), 0);
    client *c = connect_to(srv);
    SEND(c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_response(c, 200, "GET /echo||");
    client_close(c);
    /* stop with no grace while a request is at the handler: the late
     * answer just frees it */
    c = connect_to(srv);
    SEND(c, "GET /async?ms=100 HTTP/1.1\r\nHost: a\r\n\r\n");
    wait_in_flight(srv);
    http_server_stop(srv, 0);
    client_close(c);
    join_late();
    http_server_free(srv);
}

/* Several clients at once, answers from I/O and other threads mixed: each
 * gets its own answers in order (and TSan sees the hand-overs). */
static void *load_client(void *arg)
{
    http_server *srv = arg;
    client *c = connect_to(srv);
    response *r = malloc(sizeof *r);
    long bad = 0;
    for (int i = 0; i < 30; i++) {
        char req[128], want[64];
        const char *path = i % 2 ? "async" : "echo";
        int n = snprintf(req, sizeof req, "POST /%s?ms=0 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n%02d",
                         path, i);
        snprintf(want, sizeof want, "POST /%s|ms=0|%02d", path, i);
        send_str(c, req, (size_t)n);
        if (i % 5 == 4) /* and some pipelined pairs */
            send_str(c, req, (size_t)n);
        if (!read_response(c, r) || strcmp(r->body, want) != 0)
            bad++;
        if (i % 5 == 4 && (!read_response(c, r) || strcmp(r->body, want) != 0))
            bad++;
    }
    free(r);
    client_close(c);
    return (void *)bad;
}

static void test_concurrent_clients(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&t[i], NULL, load_client, srv), 0);
    for (int i = 0; i < 6; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        assert_int_equal((long)bad, 0);
    }
    finish(srv);
}

/* No read-ahead (max_pipelined 0) still answers pipelined requests in
 * order; a handler that stops the server gets its answer out. */
static void test_no_read_ahead_and_stop_from_handler(void **state)
{
    (void)state;
    http_config cfg = test_config();
    cfg.max_pipelined = 0;
    http_server *srv = start(&cfg);
    stop_target = srv;
    client *c = connect_to(srv);
    SEND(c, "GET /async?ms=20 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?k=2 HTTP/1.1\r\nHost: a\r\n\r\n"
            "GET /async?ms=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_response(c, 200, "GET /async|ms=20|");
    expect_response(c, 200, "GET /echo|k=2|");
    expect_response(c, 200, "GET /async|ms=1|");
    SEND(c, "GET /stop HTTP/1.1\r\nHost: a\r\n\r\n");
    response *r = malloc(sizeof *r);
    assert_true(read_response(c, r));
    assert_string_equal(r->body, "GET /stop||");
    assert_non_null(strstr(r->head, "Connection: close"));
    free(r);
    assert_true(reads_to_close(c));
    client_close(c);
    finish(srv); /* joins */
    stop_target = NULL;
}

static void test_bind_errors(void **state)
{
    (void)state;
    http_config cfg = test_config();
    http_server *srv = start(&cfg);
    cfg.port = http_server_port(srv);
    http_server *second = NULL;
    st_error err = { 0 };
    assert_int_equal(http_server_start(&cfg, test_handler, NULL, &second, &err), ST_EIO);
    assert_null(second);
    assert_non_null(strstr(err.msg, "cannot bind"));
    cfg.port = 70000;
    assert_int_equal(http_server_start(&cfg, test_handler, NULL, &second, &err), ST_EINVAL);
    finish(srv);
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_text(799), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_refusal_survives_upload),
        cmocka_unit_test(test_half_close),
        cmocka_unit_test(test_big_responses),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_stop_drains),
        cmocka_unit_test(test_peer_gone_while_handled),
        cmocka_unit_test(test_concurrent_clients),
        cmocka_unit_test(test_no_read_ahead_and_stop_from_handler),
        cmocka_unit_test(test_bind_errors),
        cmocka_unit_test(test_status_text),
    };
    return cmocka_run_group_tests_name("http_server", tests, NULL, NULL);
}
