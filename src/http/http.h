/* http.h - the HTTP/1.1 server under `stratus serve`.
 *
 * epoll, one I/O thread per core (SO_REUSEPORT listeners or a shared one),
 * a resumable byte-state-machine request parser, keep-alive, pipelining,
 * Content-Length and chunked bodies, `Expect: 100-continue`, and explicit
 * limits against hostile clients.  The server owns connections and
 * framing; what a request means is the handler's business.
 *
 * Handlers are asynchronous: the server calls `handler(ex, user)` on an
 * I/O thread once a whole request (body included, de-chunked) has
 * arrived; the handler, or any thread it hands `ex` to (a batcher, a
 * worker), later calls http_respond() exactly once.  Until then the
 * request's memory stays valid and no further request of that connection
 * reaches the handler (up to max_pipelined more are read and parsed ahead),
 * so responses on a connection always leave in request order.  A peer that
 * goes away meanwhile does not invalidate the exchange: the answer is then
 * simply dropped.
 *
 *     static void hello(http_exchange *ex, void *user) {
 *         http_respond(ex, 200, "text/plain", NULL, 0, "hi\n", 3);
 *     }
 *     http_config cfg = http_config_default();
 *     cfg.port = 8080;
 *     http_server *srv;
 *     if (http_server_start(&cfg, hello, NULL, &srv, &err) != ST_OK) die(err.msg);
 *     ...                                  // until SIGTERM
 *     http_server_stop(srv, 30000);        // drain: finish in-flight requests
 *     http_server_free(srv);
 */
#ifndef ST_HTTP_H
#define ST_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/status.h"
#include "base/str.h"

/* Limits and knobs; http_config_default() gives sane values.  A limit or
 * timeout left 0 takes its default value at start (max_pipelined 0 means
 * no request is read ahead of the one in progress). */
typedef struct http_config {
    const char *host;                 /* bind address, "0.0.0.0" / "::" / "127.0.0.1" */
    int port;                         /* 0: any free port (see http_server_port) */
    int io_threads;                   /* 0: one per online CPU */
    size_t max_header_bytes;          /* request line + headers; 431 beyond */
    size_t max_body_bytes;            /* 413 beyond (checked before reading) */
    size_t max_headers;               /* header lines; 431 beyond */
    int max_connections;              /* further accepts are closed at once */
    int header_timeout_ms;            /* slowloris: whole head within this */
    int request_timeout_ms;           /* whole request (head + body) within this */
    int idle_timeout_ms;              /* keep-alive connection with no request */
    size_t max_pipelined;             /* requests buffered behind one in progress */
    size_t max_uri_bytes;             /* request target; 414 beyond */
} http_config;

http_config http_config_default(void);

typedef struct http_header {
    st_str name;                      /* as sent; compare case-insensitively */
    st_str value;                     /* surrounding whitespace trimmed */
} http_header;

/* A parsed request.  Everything points into server memory that stays valid
 * until http_respond() returns for this exchange. */
typedef struct http_request {
    st_str method;                    /* "GET", "POST", ... */
    st_str target;                    /* raw request target */
    st_str path;                      /* target before '?', percent-decoded */
    st_str query;                     /* after '?', raw; empty when none */
    int version_minor;                /* HTTP/1.x */
    const http_header *headers;
    size_t n_headers;
    const uint8_t *body;              /* de-chunked; NULL when empty */
    size_t body_len;
    bool is_keep_alive;               /* the connection stays open after */
} http_request;

typedef struct http_exchange http_exchange;
typedef struct http_server http_server;

typedef void (*http_handler)(http_exchange *ex, void *user);

const http_request *http_exchange_request(const http_exchange *ex);
/* The value of header `name` (case-insensitive), or an empty st_str with
 * data NULL when absent. */
st_str http_request_header(const http_request *req, const char *name);
/* Microseconds since the server saw the request's first byte (for latency). */
uint64_t http_exchange_start_us(const http_exchange *ex);

/* Sends the response and ends the exchange; callable from any thread,
 * exactly once per exchange.  `extra_headers` (may be NULL) are complete
 * "Name: value\r\n" lines.  The body is copied once into the connection's
 * output; use http_respond_buf to hand over a buffer instead.  The server
 * adds Date, Content-Length and, when the connection ends after this
 * answer, Connection: close.  A status outside 200..999 is sent as 500;
 * 204 and 304 go without body and length, HEAD answers without body. */
void http_respond(http_exchange *ex, int status, const char *content_type,
                  const char *extra_headers, size_t extra_len, const void *body, size_t body_len);
/* Like http_respond, but takes ownership of *body (written with writev,
 * not copied, then freed); *body is left empty. */
void http_respond_buf(http_exchange *ex, int status, const char *content_type,
                      const char *extra_headers, size_t extra_len, st_buf *body);

/* Binds, listens and starts the I/O threads.  ST_EIO (with the address and
 * errno text) when the port cannot be bound. */
st_status http_server_start(const http_config *cfg, http_handler handler, void *user,
                            http_server **out, st_error *err);
/* The bound port (useful with port 0). */
int http_server_port(const http_server *srv);
/* Requests accepted and not yet answered. */
size_t http_server_in_flight(const http_server *srv);
/* Drains: stops accepting, lets requests in progress finish and be
 * answered for up to grace_ms, closes idle keep-alive connections, then
 * closes everything and joins the I/O threads.  Thread-safe, idempotent;
 * returns when done.  Signal handling is the caller's.  Called from a
 * handler on an I/O thread it only starts the drain (a thread cannot join
 * itself); call it again from another thread to wait. */
void http_server_stop(http_server *srv, int grace_ms);
/* Frees a stopped server (stops it with no grace first if needed).
 * Exchanges still at a handler must be answered first (their answers are
 * dropped); it waits up to 10 s for them, then logs and leaves the server
 * allocated rather than free memory they use. */
void http_server_free(http_server *srv);

/* The reason phrase for a status code ("Not Found"); "Unknown" if none. */
const char *http_status_text(int status);

#endif
