/* server.c - the epoll HTTP/1.1 server: I/O threads, connections, and
 * exchanges handed to asynchronous handlers with responses kept in request
 * order.
 *
 * Each I/O thread owns an epoll set, a SO_REUSEPORT listener and its
 * connections; nothing about a connection is touched by another thread.
 * A handler answers from any thread by building the response bytes on
 * that thread and queueing the exchange to its I/O thread (eventfd wake-up).
 * A connection keeps its exchanges in one FIFO: answered ones at the front
 * (being written), at most one at the handler, then complete requests
 * parsed ahead (up to max_pipelined).  Connection memory is freed only at
 * the end of an event-loop round, so an event never meets a freed
 * connection. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/time.h"
#include "http/http.h"
#include "http/http_int.h"

#define READ_CHUNK 4096            /* first input buffer, and read-ahead */
#define READ_MIN_FREE 1024         /* grow the buffer below this much room */
#define SPARE_MAX_BYTES (64 * 1024) /* bigger request buffers are not kept */
#define SMALL_BODY_BYTES (1024 * 1024)
#define READS_PER_EVENT 4          /* fairness: bounded work per event */
#define ACCEPTS_PER_EVENT 64
#define EVENTS_PER_WAIT 128
#define IOV_PER_WRITE 64
#define LINGER_US 1000000          /* read-and-discard after our close */
#define DRAIN_TICK_MS 10
#define ACCEPT_PAUSE_US 100000     /* after EMFILE: let connections close */

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

enum { EX_QUEUED, EX_DISPATCHED, EX_RESPONDED };

typedef struct http_io http_io;
typedef struct http_conn http_conn;

struct http_exchange {
    http_exchange *next;      /* the connection's FIFO */
    http_exchange *done_next; /* the I/O thread's answered list */
    http_conn *conn;
    http_io *io;
    http_server *srv;
    int state;
    bool closes;              /* the connection ends after this response */
    bool is_head;             /* HEAD: no body on the wire */
    bool is_counted;          /* counted in in_flight until answered */
    uint8_t *in;              /* the request's bytes (owned) */
    size_t in_cap;
    uint64_t start_us;
    http_request req;
    st_buf out;               /* status line, headers, copied body */
    st_buf body;              /* body handed over by http_respond_buf */
    size_t written;           /* bytes of out then body already sent */
    http_header headers[];    /* req.n_headers, then the decoded path */
};

struct http_conn {
    http_conn *prev, *next;   /* live list, or graveyard via next */
    http_io *io;
    int fd;
    uint32_t events;          /* epoll interest registered */
    uint8_t *buf;             /* bytes of the request being parsed, and more */
    size_t len, cap;
    uint8_t *spare;           /* a request buffer back from an exchange */
    size_t spare_cap;
    http_parser parser;
    uint64_t req_start_us;    /* first byte of the request being parsed; 0 none */
    uint64_t last_active_us;
    uint64_t deadline_us;     /* 0: none */
    http_exchange *q_head, *q_tail;
    size_t q_len;
    size_t cont_written;      /* of continue_line, while is_cont_pending */
    bool is_cont_pending;     /* "100 Continue" waits in the output */
    bool is_cont_wanted;      /* a head expects it once earlier answers are out */
    bool is_dispatched;       /* an exchange is at the handler */
    bool is_parse_stopped;    /* no further request on this connection */
    bool is_failed;           /* a server-made error answer is queued */
    bool is_read_eof;
    bool is_write_blocked;    /* EAGAIN on write: wait for EPOLLOUT */
    bool is_lingering;        /* our side shut down; discarding input */
    bool is_closed;           /* fd closed; freed once no exchange refers to it */
    bool is_in_graveyard;
    bool is_dirty;            /* on the I/O thread's to-write list */
    http_conn *dirty_next;
};

struct http_io {
    http_server *srv;
    int index;
    pthread_t thread;
    bool is_thread_started;
    int epfd, evfd, lfd;
    http_conn live;           /* sentinel of the live list */
    size_t n_live;
    http_conn *graveyard;
    http_conn *dirty;         /* connections with answers to write */
    http_exchange *local_head, *local_tail; /* answered on this thread */
    uint64_t now_us;
    uint64_t accept_paused_until_us;
    bool is_draining;
    pthread_mutex_t mu;       /* guards the three fields below */
    http_exchange *remote_head, *remote_tail; /* answered on other threads */
    bool is_wake_pending;
    bool is_stopped;          /* the thread is gone: answers free directly */
};

struct http_server {
    http_config cfg;
    http_limits limits;
    http_handler handler;
    void *user;
    int port;
    int n_io;
    http_io *io;
    uint64_t tick_us;
    atomic_int n_conns;
    atomic_size_t in_flight;
    atomic_size_t n_responding;   /* threads inside respond_finish */
    atomic_bool is_stopping;
    _Atomic uint64_t stop_deadline_us;
    pthread_mutex_t stop_mu;
    bool is_joined;
};

static char tag_listen, tag_wake; /* epoll data for the non-connection fds */
static _Thread_local http_io *tls_io;

/* --- configuration -------------------------------------------------------- */

http_config http_config_default(void)
{
    return (http_config){
        .host = "0.0.0.0",
        .port = 8080,
        .io_threads = 0,
        .max_header_bytes = 16 * 1024,
        .max_body_bytes = 64 * 1024 * 1024,
        .max_headers = 100,
        .max_connections = 10000,
        .header_timeout_ms = 10000,
        .request_timeout_ms = 60000,
        .idle_timeout_ms = 65000,
        .max_pipelined = 16,
        .max_uri_bytes = 8192,
    };
}

/* Zero limits mean "the default", so a config built field by field still
 * gets sane values. */
static void config_fill(http_config *c)
{
    http_config d = http_config_default();
    if (!c->host)
        c->host = d.host;
    if (c->io_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->io_threads = n > 0 ? (int)(n > 256 ? 256 : n) : 1;
    }
#define FILL_(f)          \
    if (c->f <= 0)        \
        c->f = d.f;
    FILL_(max_header_bytes)
    FILL_(max_body_bytes)
    FILL_(max_headers)
    FILL_(max_connections)
    FILL_(header_timeout_ms)
    FILL_(request_timeout_ms)
    FILL_(idle_timeout_ms)
    FILL_(max_uri_bytes)
#undef FILL_
}

/* --- responses --------------------------------------------------------------- */

static size_t put_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static const char *date_now(void)
{
    static _Thread_local int64_t cached_sec = -1;
    static _Thread_local char cached[HTTP_DATE_LEN];
    int64_t sec = (int64_t)(st_wall_ns() / 1000000000u);
    if (sec != cached_sec) {
        http_format_date(sec, cached);
        cached_sec = sec;
    }
    return cached;
}

#define PUT_LIT(p, lit)                     \
    do {                                    \
        memcpy((p), (lit), sizeof(lit) - 1); \
        (p) += sizeof(lit) - 1;             \
    } while (0)

/* Builds status line, headers and (when body_copy) the body into ex->out.
 * On allocation failure ex->out stays empty and the connection closes in
 * place of this response. */
static void build_response(http_exchange *ex, int status, const char *content_type,
                           const char *extra, size_t extra_len, size_t content_len,
                           const void *body_copy)
{
    if (status < 200 || status > 999)
        status = 500;
    bool has_length = status != 204 && status != 304;
    bool sends_body = has_length && !ex->is_head && content_len > 0;
    const char *reason = http_status_text(status);
    size_t reason_len = strlen(reason);
    size_t ct_len = content_type ? strlen(content_type) : 0;
    if (!extra)
        extra_len = 0;
    size_t need = 128 + reason_len + ct_len, total;
    if (st_add_overflow(need, extra_len, &need) ||
        st_add_overflow(need, body_copy && sends_body ? content_len : 0, &total) ||
        st_buf_reserve(&ex->out, total) != ST_OK) {
        ex->closes = true;
        return;
    }
    char *p = (char *)ex->out.data + ex->out.len, *start = p;
    PUT_LIT(p, "HTTP/1.1 ");
    p += put_u64(p, (uint64_t)status);
    *p++ = ' ';
    memcpy(p, reason, reason_len);
    p += reason_len;
    PUT_LIT(p, "\r\nDate: ");
    memcpy(p, date_now(), HTTP_DATE_LEN);
    p += HTTP_DATE_LEN;
    PUT_LIT(p, "\r\n");
    if (ct_len) {
        PUT_LIT(p, "Content-Type: ");
        memcpy(p, content_type, ct_len);
        p += ct_len;
        PUT_LIT(p, "\r\n");
    }
    if (has_length) {
        PUT_LIT(p, "Content-Length: ");
        p += put_u64(p, content_len);
        PUT_LIT(p, "\r\n");
    }
    if (ex->closes)
        PUT_LIT(p, "Connection: close\r\n");
    else if (ex->req.version_minor == 0)
        PUT_LIT(p, "Connection: keep-alive\r\n");
    if (extra_len) {
        memcpy(p, extra, extra_len);
        p += extra_len;
    }
    PUT_LIT(p, "\r\n");
    if (body_copy && sends_body) {
        memcpy(p, body_copy, content_len);
        p += content_len;
    }
    ex->out.len += (size_t)(p - start);
}

/* --- small helpers --------------------------------------------------------- */

static uint64_t ms_to_us(int ms)
{
    return (uint64_t)(ms > 0 ? ms : 0) * 1000u;
}

static size_t queue_cap(const http_conn *c)
{
    return c->io->srv->cfg.max_pipelined + 1;
}

static void exchange_free(http_exchange *ex)
{
    st_free(ex->in);
    st_buf_free(&ex->out);
    st_buf_free(&ex->body);
    st_free(ex);
}

/* A request buffer back from an exchange: kept for the next request when
 * small, so a keep-alive connection alternates between two buffers. */
static void conn_take_spare(http_conn *c, uint8_t *buf, size_t cap)
{
    if (!c->is_closed && !c->spare && cap <= SPARE_MAX_BYTES) {
        c->spare = buf;
        c->spare_cap = cap;
    } else {
        st_free(buf);
    }
}

static void conn_to_graveyard(http_conn *c)
{
    if (c->is_in_graveyard)
        return;
    c->is_in_graveyard = true;
    c->next = c->io->graveyard;
    c->io->graveyard = c;
}

static void conn_free(http_conn *c)
{
    st_free(c->buf);
    st_free(c->spare);
    http_parser_free(&c->parser);
    st_free(c);
}

static void queue_push(http_conn *c, http_exchange *ex)
{
    ex->next = NULL;
    if (c->q_tail)
        c->q_tail->next = ex;
    else
        c->q_head = ex;
    c->q_tail = ex;
    c->q_len++;
}

static void queue_pop(http_conn *c)
{
    http_exchange *ex = c->q_head;
    c->q_head = ex->next;
    if (!c->q_head)
        c->q_tail = NULL;
    c->q_len--;
}

/* Closes the socket at once.  An exchange still at the handler keeps the
 * connection's memory until it is answered. */
static void conn_close(http_conn *c)
{
    if (c->is_closed)
        return;
    http_server *srv = c->io->srv;
    close(c->fd);
    c->fd = -1;
    c->is_closed = true;
    atomic_fetch_sub(&srv->n_conns, 1);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->io->n_live--;
    for (http_exchange *ex = c->q_head, *next; ex; ex = next) {
        next = ex->next;
        if (ex->state == EX_DISPATCHED)
            continue;
        if (ex->is_counted)
            atomic_fetch_sub(&srv->in_flight, 1);
        exchange_free(ex);
    }
    c->q_head = c->q_tail = NULL;
    c->q_len = 0;
    st_free(c->buf);
    st_free(c->spare);
    c->buf = c->spare = NULL;
    c->len = c->cap = c->spare_cap = 0;
    http_parser_free(&c->parser);
    if (!c->is_dispatched)
        conn_to_graveyard(c);
}

/* Our side is done.  When the peer may still be sending (an error cut its
 * request short, or bytes are unread), half-close and read and discard for
 * a while: closing with unread input sends a reset, which can destroy the
 * response before the peer reads it. */
static void conn_linger(http_conn *c)
{
    int unread = 0;
    if (!c->is_failed && c->len == 0)
        ioctl(c->fd, FIONREAD, &unread);
    bool may_get_more = c->is_failed || c->len > 0 || unread > 0;
    if (c->is_read_eof || !may_get_more || shutdown(c->fd, SHUT_WR) != 0) {
        conn_close(c);
        return;
    }
    c->is_lingering = true;
    c->deadline_us = c->io->now_us + LINGER_US;
    st_free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

/* --- input ------------------------------------------------------------------ */

static bool conn_wants_read(const http_conn *c)
{
    if (c->is_lingering)
        return true;
    return !c->is_read_eof && !c->is_parse_stopped && c->q_len < queue_cap(c);
}

/* Makes room to read into; false when out of memory. */
static bool conn_reserve(http_conn *c)
{
    if (!c->buf) {
        if (c->spare) {
            c->buf = c->spare;
            c->cap = c->spare_cap;
            c->spare = NULL;
        } else {
            c->buf = st_malloc(READ_CHUNK);
            if (!c->buf)
                return false;
            c->cap = READ_CHUNK;
        }
        c->len = 0;
    }
    if (c->cap - c->len >= READ_MIN_FREE)
        return true;
    const http_parser *p = &c->parser;
    const http_limits *lim = &c->io->srv->limits;
    size_t limit;
    if (!p->is_head_done)
        limit = lim->max_header_bytes + READ_CHUNK;
    else if (!p->is_chunked)
        limit = http_parser_need(p) + READ_CHUNK;
    else
        limit = p->head_len + lim->max_body_bytes + 2 * READ_CHUNK;
    size_t cap = c->cap * 2;
    /* A small declared body gets its room at once; a large one by
     * doubling, so a client cannot make us reserve what it never sends. */
    if (p->is_head_done && !p->is_chunked && limit <= SMALL_BODY_BYTES && limit > cap)
        cap = limit;
    if (cap > limit)
        cap = limit;
    if (cap <= c->cap)
        return c->cap > c->len;
    uint8_t *grown = st_realloc(c->buf, cap);
    if (!grown)
        return false;
    c->buf = grown;
    c->cap = cap;
    return true;
}

static http_exchange *exchange_new(http_conn *c, size_t n_headers, size_t path_len)
{
    size_t size;
    if (st_mul_overflow(n_headers, sizeof(http_header), &size) ||
        st_add_overflow(size, sizeof(http_exchange) + path_len, &size))
        return NULL;
    http_exchange *ex = st_malloc(size);
    if (!ex)
        return NULL;
    memset(ex, 0, sizeof *ex);
    ex->conn = c;
    ex->io = c->io;
    ex->srv = c->io->srv;
    return ex;
}

/* A server-made answer (parse error, timeout): queued in order, and the
 * connection takes no further request. */
static void conn_fail(http_conn *c, int status, const char *why)
{
    c->is_parse_stopped = true;
    c->is_failed = true;
    c->is_cont_wanted = false;
    http_exchange *ex = exchange_new(c, 0, 0);
    if (!ex) {
        conn_close(c);
        return;
    }
    ex->state = EX_RESPONDED;
    ex->closes = true;
    char body[192];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s: %s\"}", http_status_text(status),
                     why ? why : "rejected");
    if (n < 0 || (size_t)n >= sizeof body)
        n = 0;
    build_response(ex, status, "application/json", NULL, 0, (size_t)n, body);
    queue_push(c, ex);
}

static void conn_dispatch(http_conn *c)
{
    if (c->is_dispatched || c->is_closed)
        return;
    http_exchange *ex = c->q_head;
    while (ex && ex->state != EX_QUEUED)
        ex = ex->next;
    if (!ex)
        return;
    ex->state = EX_DISPATCHED;
    c->is_dispatched = true;
    http_server *srv = c->io->srv;
    srv->handler(ex, srv->user);
}

/* The request in c->buf is complete: it moves, buffer and all, into an
 * exchange; bytes after it start the connection's next buffer. */
static bool conn_complete(http_conn *c)
{
    http_parser *p = &c->parser;
    http_exchange *ex = exchange_new(c, p->n_fields, p->path_len);
    if (!ex)
        return false;
    size_t leftover = c->len - p->pos;
    uint8_t *next = NULL;
    size_t next_cap = 0;
    if (leftover > 0) {
        if (c->spare && c->spare_cap >= leftover) {
            next = c->spare;
            next_cap = c->spare_cap;
            c->spare = NULL;
        } else {
            next_cap = leftover > READ_CHUNK ? leftover : READ_CHUNK;
            next = st_malloc(next_cap);
            if (!next) {
                st_free(ex);
                return false;
            }
        }
        memcpy(next, c->buf + p->pos, leftover);
    }
    uint8_t *in = c->buf;
    ex->in = in;
    ex->in_cap = c->cap;
    c->buf = next;
    c->cap = next_cap;
    c->len = leftover;

    http_request *r = &ex->req;
    r->method = st_str_make(in + p->method.off, p->method.len);
    r->target = st_str_make(in + p->target.off, p->target.len);
    st_str path_raw;
    http_target_split(r->target, &path_raw, &r->query);
    char *path = (char *)(ex->headers + p->n_fields);
    size_t path_len = 0;
    http_path_decode(path_raw, path, &path_len); /* validated with the head */
    r->path = st_str_make(path, path_len);
    r->version_minor = p->version_minor;
    for (size_t i = 0; i < p->n_fields; i++) {
        ex->headers[i].name = st_str_make(in + p->fields[i].name.off, p->fields[i].name.len);
        ex->headers[i].value = st_str_make(in + p->fields[i].value.off, p->fields[i].value.len);
    }
    r->headers = ex->headers;
    r->n_headers = p->n_fields;
    r->body = p->body_len ? in + p->head_len : NULL;
    r->body_len = p->body_len;
    r->is_keep_alive = p->is_keep_alive;
    ex->is_head = p->is_method_head;
    ex->start_us = c->req_start_us;
    ex->state = EX_QUEUED;
    ex->is_counted = true;
    atomic_fetch_add(&c->io->srv->in_flight, 1);
    queue_push(c, ex);

    if (!p->is_keep_alive)
        c->is_parse_stopped = true;
    http_parser_reset(p);
    c->is_cont_wanted = false;
    c->req_start_us = leftover ? c->io->now_us : 0;
    return true;
}

static void conn_parse(http_conn *c)
{
    http_parser *p = &c->parser;
    while (!c->is_closed && !c->is_parse_stopped && c->q_len < queue_cap(c) && c->len > 0) {
        if (!c->req_start_us)
            c->req_start_us = c->io->now_us;
        http_rc rc;
        if (!p->is_head_done) {
            rc = http_parse_head(p, c->buf, c->len);
            if (rc == HTTP_RC_AGAIN)
                break;
            if (rc == HTTP_RC_ERROR) {
                conn_fail(c, p->status, p->error);
                break;
            }
            /* RFC 9110 10.1.1: no 100 once body bytes are already here. */
            bool has_body = p->is_chunked || p->content_length > 0;
            if (p->expects_continue && has_body && c->len == p->head_len)
                c->is_cont_wanted = true;
        }
        rc = http_parse_body(p, c->buf, &c->len);
        if (rc == HTTP_RC_AGAIN)
            break;
        if (rc == HTTP_RC_ERROR) {
            conn_fail(c, p->status, p->error);
            break;
        }
        if (!conn_complete(c)) {
            conn_close(c);
            return;
        }
        conn_dispatch(c);
    }
}

/* Reads what is there (bounded per event) and parses it. */
static void conn_read(http_conn *c)
{
    if (c->is_lingering) {
        uint8_t sink[4096];
        for (int r = 0; r < READS_PER_EVENT; r++) {
            ssize_t n = recv(c->fd, sink, sizeof sink, 0);
            if (n > 0)
                continue;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return;
            conn_close(c);
            return;
        }
        return;
    }
    for (int r = 0; r < READS_PER_EVENT && conn_wants_read(c); r++) {
        if (!conn_reserve(c)) {
            conn_close(c);
            return;
        }
        size_t room = c->cap - c->len;
        ssize_t n = recv(c->fd, c->buf + c->len, room, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->last_active_us = c->io->now_us;
            conn_parse(c);
            if (c->is_closed || (size_t)n < room)
                return;
            continue;
        }
        if (n == 0) {
            c->is_read_eof = true;
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_close(c);
        return;
    }
}

/* --- output ------------------------------------------------------------------ */

static bool conn_has_output(const http_conn *c)
{
    return c->is_cont_pending || (c->q_head && c->q_head->state == EX_RESPONDED);
}

/* Writes answered responses in order with writev; an exchange that
 * closes the connection ends it once written. */
static void conn_flush(http_conn *c)
{
    while (!c->is_closed && conn_has_output(c)) {
        struct iovec iov[IOV_PER_WRITE];
        int n_iov = 0;
        size_t total = 0;
        if (c->is_cont_pending) {
            iov[n_iov].iov_base = (char *)continue_line + c->cont_written;
            iov[n_iov].iov_len = sizeof continue_line - 1 - c->cont_written;
            total += iov[n_iov++].iov_len;
        }
        for (http_exchange *ex = c->q_head;
             ex && ex->state == EX_RESPONDED && n_iov + 2 <= IOV_PER_WRITE; ex = ex->next) {
            size_t w = ex->written;
            if (w < ex->out.len) {
                iov[n_iov].iov_base = ex->out.data + w;
                iov[n_iov].iov_len = ex->out.len - w;
                total += iov[n_iov++].iov_len;
                w = ex->out.len;
            }
            if (w - ex->out.len < ex->body.len) {
                iov[n_iov].iov_base = ex->body.data + (w - ex->out.len);
                iov[n_iov].iov_len = ex->body.len - (w - ex->out.len);
                total += iov[n_iov++].iov_len;
            }
            if (ex->closes)
                break;
        }
        size_t sent = 0, sent_all = 0;
        if (total > 0) {
            struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n_iov };
            ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    c->is_write_blocked = true;
                    return;
                }
                conn_close(c);
                return;
            }
            sent = sent_all = (size_t)n;
            c->last_active_us = c->io->now_us;
        }
        if (c->is_cont_pending) {
            size_t left = sizeof continue_line - 1 - c->cont_written;
            if (sent < left) {
                c->cont_written += sent;
                c->is_write_blocked = true;
                return;
            }
            sent -= left;
            c->is_cont_pending = false;
        }
        while (c->q_head && c->q_head->state == EX_RESPONDED) {
            http_exchange *ex = c->q_head;
            size_t left = ex->out.len + ex->body.len - ex->written;
            if (sent < left) {
                ex->written += sent;
                sent = 0;
                break;
            }
            sent -= left;
            bool closes = ex->closes;
            queue_pop(c);
            exchange_free(ex);
            if (closes) {
                conn_linger(c);
                return;
            }
        }
        if (sent_all < total) {
            c->is_write_blocked = true; /* short write: the socket is full */
            return;
        }
    }
    c->is_write_blocked = false;
}

/* --- settling after every event ------------------------------------------------ */

static void conn_update_deadline(http_conn *c)
{
    http_server *srv = c->io->srv;
    const http_config *cfg = &srv->cfg;
    if (c->is_lingering)
        return; /* set once by conn_linger */
    if (c->is_write_blocked) {
        c->deadline_us = c->last_active_us + ms_to_us(cfg->request_timeout_ms);
    } else if (c->len > 0 && !c->is_parse_stopped && c->q_len < queue_cap(c)) {
        int ms = cfg->request_timeout_ms;
        if (!c->parser.is_head_done && cfg->header_timeout_ms < ms)
            ms = cfg->header_timeout_ms;
        c->deadline_us = c->req_start_us + ms_to_us(ms);
    } else if (c->q_len == 0 && !c->is_cont_pending) {
        c->deadline_us = c->last_active_us + ms_to_us(cfg->idle_timeout_ms);
    } else {
        c->deadline_us = 0; /* the handler has it */
    }
}

static void conn_settle(http_conn *c)
{
    if (c->is_closed)
        return;
    http_server *srv = c->io->srv;
    if (!c->is_lingering) {
        if (conn_has_output(c) && !c->is_write_blocked)
            conn_flush(c);
        if (c->is_closed)
            return;
        if (!c->is_lingering && !c->is_parse_stopped && c->len > 0 && c->q_len < queue_cap(c)) {
            /* Written answers made room: requests already buffered go on. */
            conn_parse(c);
            if (c->is_closed)
                return;
            if (conn_has_output(c) && !c->is_write_blocked)
                conn_flush(c);
            if (c->is_closed)
                return;
        }
        if (c->is_cont_wanted && c->q_len == 0 && !c->is_lingering) {
            /* every earlier answer is out: now the 100 may go */
            c->is_cont_wanted = false;
            c->is_cont_pending = true;
            c->cont_written = 0;
            conn_flush(c);
            if (c->is_closed)
                return;
        }
        if (!c->is_lingering && c->q_len == 0 && !c->is_cont_pending) {
            bool is_draining = atomic_load_explicit(&srv->is_stopping, memory_order_relaxed);
            if (c->is_read_eof) {
                conn_close(c);
                return;
            }
            if (c->is_parse_stopped) {
                conn_linger(c);
                if (c->is_closed)
                    return;
            } else if (is_draining && c->len == 0) {
                conn_close(c); /* idle keep-alive connection */
                return;
            }
        }
    }
    uint32_t want = 0;
    if (conn_wants_read(c))
        want |= EPOLLIN;
    if (c->is_write_blocked && !c->is_lingering)
        want |= EPOLLOUT;
    if (want != c->events) {
        struct epoll_event ev = { .events = want, .data.ptr = c };
        if (epoll_ctl(c->io->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
            conn_close(c);
            return;
        }
        c->events = want;
    }
    conn_update_deadline(c);
}

/* An answered exchange arrives at its I/O thread. */
static void exchange_answered(http_exchange *ex)
{
    http_conn *c = ex->conn;
    c->is_dispatched = false;
    uint8_t *in = ex->in;
    ex->in = NULL;
    conn_take_spare(c, in, ex->in_cap);
    if (c->is_closed) {
        exchange_free(ex);
        conn_to_graveyard(c);
        return;
    }
    ex->state = EX_RESPONDED;
    if (ex->closes) {
        /* Nothing after a closing response will be sent: drop what was
         * parsed ahead. */
        c->is_parse_stopped = true;
        http_exchange *rest = ex->next;
        ex->next = NULL;
        c->q_tail = ex;
        while (rest) {
            http_exchange *next = rest->next;
            if (rest->is_counted)
                atomic_fetch_sub(&c->io->srv->in_flight, 1);
            exchange_free(rest);
            c->q_len--;
            rest = next;
        }
    }
    conn_dispatch(c);
    conn_parse(c);
    /* Written once the answered list is empty, so that pipelined answers
     * leave in one writev. */
    if (!c->is_dirty) {
        c->is_dirty = true;
        c->dirty_next = c->io->dirty;
        c->io->dirty = c;
    }
}

static void io_run_answered(http_io *io)
{
    /* Settling a connection can dispatch (and so answer) again: repeat. */
    while (io->local_head || io->dirty) {
        while (io->local_head) {
            http_exchange *ex = io->local_head;
            io->local_head = ex->done_next;
            if (!io->local_head)
                io->local_tail = NULL;
            exchange_answered(ex);
        }
        while (io->dirty) {
            http_conn *c = io->dirty;
            io->dirty = c->dirty_next;
            c->is_dirty = false;
            conn_settle(c);
        }
    }
}

static void io_take_remote(http_io *io)
{
    uint64_t count;
    while (read(io->evfd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&io->mu);
    http_exchange *head = io->remote_head, *tail = io->remote_tail;
    io->remote_head = io->remote_tail = NULL;
    io->is_wake_pending = false;
    pthread_mutex_unlock(&io->mu);
    if (!head)
        return;
    if (io->local_tail)
        io->local_tail->done_next = head;
    else
        io->local_head = head;
    io->local_tail = tail;
}

/* --- the exchange API ------------------------------------------------------- */

const http_request *http_exchange_request(const http_exchange *ex)
{
    return &ex->req;
}

uint64_t http_exchange_start_us(const http_exchange *ex)
{
    uint64_t now = st_now_us();
    return now > ex->start_us ? now - ex->start_us : 0;
}

st_str http_request_header(const http_request *req, const char *name)
{
    st_str want = st_str_c(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (st_str_eq_nocase(req->headers[i].name, want))
            return req->headers[i].value;
    return st_str_make(NULL, 0);
}

/* Hands the built response to the exchange's I/O thread. */
static void respond_finish(http_exchange *ex)
{
    http_server *srv = ex->srv;
    http_io *io = ex->io;
    ex->is_counted = false;
    /* Answered as far as http_server_in_flight is concerned; n_responding
     * keeps http_server_free waiting until this thread is done with io. */
    atomic_fetch_add(&srv->n_responding, 1);
    atomic_fetch_sub(&srv->in_flight, 1);
    if (tls_io == io) {
        ex->done_next = NULL;
        if (io->local_tail)
            io->local_tail->done_next = ex;
        else
            io->local_head = ex;
        io->local_tail = ex;
        atomic_fetch_sub(&srv->n_responding, 1);
        return;
    }
    pthread_mutex_lock(&io->mu);
    if (io->is_stopped) {
        /* The I/O thread is gone, and with it the connection. */
        http_conn *c = ex->conn;
        c->is_dispatched = false;
        exchange_free(ex);
        if (c->is_closed)
            conn_free(c);
        pthread_mutex_unlock(&io->mu);
        atomic_fetch_sub(&srv->n_responding, 1);
        return;
    }
    ex->done_next = NULL;
    if (io->remote_tail)
        io->remote_tail->done_next = ex;
    else
        io->remote_head = ex;
    io->remote_tail = ex;
    bool wake = !io->is_wake_pending;
    io->is_wake_pending = true;
    pthread_mutex_unlock(&io->mu);
    if (wake) {
        uint64_t one = 1;
        while (write(io->evfd, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
    atomic_fetch_sub(&srv->n_responding, 1);
}

static bool response_closes(const http_exchange *ex)
{
    return !ex->req.is_keep_alive ||
           atomic_load_explicit(&ex->srv->is_stopping, memory_order_relaxed);
}

void http_respond(http_exchange *ex, int status, const char *content_type,
                  const char *extra_headers, size_t extra_len, const void *body, size_t body_len)
{
    ex->closes = response_closes(ex);
    build_response(ex, status, content_type, extra_headers, extra_len, body_len,
                   body_len ? body : NULL);
    respond_finish(ex);
}

void http_respond_buf(http_exchange *ex, int status, const char *content_type,
                      const char *extra_headers, size_t extra_len, st_buf *body)
{
    ex->closes = response_closes(ex);
    size_t len = body ? body->len : 0;
    build_response(ex, status, content_type, extra_headers, extra_len, len, NULL);
    bool sends_body = ex->out.len > 0 && !ex->is_head && status != 204 && status != 304;
    if (body) {
        if (sends_body)
            ex->body = *body;
        else
            st_buf_free(body);
        *body = (st_buf){ 0 };
    }
    respond_finish(ex);
}

/* --- accepting ----------------------------------------------------------------- */

static void io_accept(http_io *io)
{
    http_server *srv = io->srv;
    for (int i = 0; i < ACCEPTS_PER_EVENT && io->lfd >= 0; i++) {
        int fd = accept4(io->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered: the pending connection would wake us at
                 * once again; stop listening for a moment instead. */
                ST_LOG_WARN("http: accept: %s; pausing accepts for 100 ms", strerror(errno));
                struct epoll_event ev = { .events = 0, .data.ptr = &tag_listen };
                epoll_ctl(io->epfd, EPOLL_CTL_MOD, io->lfd, &ev);
                io->accept_paused_until_us = io->now_us + ACCEPT_PAUSE_US;
            }
            return;
        }
        if (atomic_fetch_add(&srv->n_conns, 1) >= srv->cfg.max_connections) {
            atomic_fetch_sub(&srv->n_conns, 1);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        http_conn *c = st_calloc(1, sizeof *c);
        if (!c) {
            atomic_fetch_sub(&srv->n_conns, 1);
            close(fd);
            continue;
        }
        c->io = io;
        c->fd = fd;
        c->events = EPOLLIN;
        c->last_active_us = io->now_us;
        http_parser_init(&c->parser, &srv->limits);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            atomic_fetch_sub(&srv->n_conns, 1);
            close(fd);
            st_free(c);
            continue;
        }
        c->next = io->live.next;
        c->prev = &io->live;
        io->live.next->prev = c;
        io->live.next = c;
        io->n_live++;
        conn_update_deadline(c);
    }
}

/* --- the I/O thread ---------------------------------------------------------- */

static void conn_event(http_conn *c, uint32_t events)
{
    if (c->is_closed)
        return;
    if (events & (EPOLLERR | EPOLLHUP)) {
        conn_close(c);
        return;
    }
    if (events & EPOLLOUT) {
        c->is_write_blocked = false;
        conn_flush(c);
    }
    if ((events & EPOLLIN) && !c->is_closed)
        conn_read(c);
    conn_settle(c);
}

static void conn_timeout(http_conn *c)
{
    http_server *srv = c->io->srv;
    if (c->is_lingering || c->is_write_blocked ||
        c->len == 0 || c->is_parse_stopped) {
        conn_close(c);
        return;
    }
    /* A request in progress ran out of time (slow client). */
    bool is_head = !c->parser.is_head_done;
    conn_fail(c, 408, is_head ? "request head not received in time" : "request not received in time");
    if (c->is_closed)
        return;
    conn_settle(c);
    if (!c->is_closed && !c->is_lingering) {
        /* Give the 408 a moment to leave, no more. */
        c->deadline_us = c->io->now_us + (srv->tick_us > 100000 ? srv->tick_us : 100000) * 5;
    }
}

static void io_sweep(http_io *io)
{
    for (http_conn *c = io->live.next, *next; c != &io->live; c = next) {
        next = c->next;
        if (c->deadline_us && io->now_us >= c->deadline_us)
            conn_timeout(c);
    }
    if (io->accept_paused_until_us && io->now_us >= io->accept_paused_until_us && io->lfd >= 0) {
        io->accept_paused_until_us = 0;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_listen };
        epoll_ctl(io->epfd, EPOLL_CTL_MOD, io->lfd, &ev);
    }
}

static void io_bury(http_io *io)
{
    while (io->graveyard) {
        http_conn *c = io->graveyard;
        io->graveyard = c->next;
        conn_free(c);
    }
}

/* Draining: no new connections, idle ones closed; true when this thread
 * has nothing left or the grace period is over. */
static bool io_drain(http_io *io)
{
    http_server *srv = io->srv;
    if (!io->is_draining) {
        io->is_draining = true;
        if (io->lfd >= 0) {
            epoll_ctl(io->epfd, EPOLL_CTL_DEL, io->lfd, NULL);
            close(io->lfd);
            io->lfd = -1;
        }
        for (http_conn *c = io->live.next, *next; c != &io->live; c = next) {
            next = c->next;
            conn_settle(c);
        }
    }
    if (io->n_live == 0)
        return true;
    return io->now_us >= atomic_load(&srv->stop_deadline_us);
}

static void io_shutdown(http_io *io)
{
    while (io->live.next != &io->live)
        conn_close(io->live.next);
    io_bury(io);
    pthread_mutex_lock(&io->mu);
    io->is_stopped = true;
    http_exchange *remote = io->remote_head;
    io->remote_head = io->remote_tail = NULL;
    pthread_mutex_unlock(&io->mu);
    /* Answers that arrived before the stop: their connections are closed. */
    if (remote) {
        if (io->local_tail)
            io->local_tail->done_next = remote;
        else
            io->local_head = remote;
    }
    io_run_answered(io);
    io_bury(io);
}

static void *io_main(void *arg)
{
    http_io *io = arg;
    http_server *srv = io->srv;
    tls_io = io;
    struct epoll_event events[EVENTS_PER_WAIT];
    uint64_t next_sweep_us = 0;
    for (;;) {
        bool is_stopping = atomic_load(&srv->is_stopping);
        int timeout_ms = (int)(srv->tick_us / 1000);
        if (is_stopping && timeout_ms > DRAIN_TICK_MS)
            timeout_ms = DRAIN_TICK_MS;
        int n = epoll_wait(io->epfd, events, EVENTS_PER_WAIT, timeout_ms);
        io->now_us = st_now_us();
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &tag_listen)
                io_accept(io);
            else if (tag == &tag_wake)
                io_take_remote(io);
            else
                conn_event(tag, events[i].events);
            io_run_answered(io);
        }
        if (io->now_us >= next_sweep_us) {
            io_sweep(io);
            io_run_answered(io);
            next_sweep_us = io->now_us + srv->tick_us;
        }
        io_bury(io);
        if (atomic_load(&srv->is_stopping) && io_drain(io))
            break;
    }
    io_shutdown(io);
    tls_io = NULL;
    return NULL;
}

/* --- start / stop -------------------------------------------------------------- */

static int listen_socket(const struct addrinfo *ai, int port, bool is_probe, st_error *err,
                         const char *host)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        st_fail(err, ST_EIO, "http: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!is_probe)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_storage addr;
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    if (addr.ss_family == AF_INET)
        ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&addr, ai->ai_addrlen) != 0) {
        st_fail(err, ST_EIO, "http: cannot bind %s:%d: %s; choose another --port or stop "
                "the process using it", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    if (!is_probe && listen(fd, 1024) != 0) {
        st_fail(err, ST_EIO, "http: cannot listen on %s:%d: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void server_free_io(http_server *srv)
{
    for (int i = 0; i < srv->n_io; i++) {
        http_io *io = &srv->io[i];
        if (io->lfd >= 0)
            close(io->lfd);
        if (io->evfd >= 0)
            close(io->evfd);
        if (io->epfd >= 0)
            close(io->epfd);
        pthread_mutex_destroy(&io->mu);
    }
    st_free(srv->io);
    srv->io = NULL;
}

st_status http_server_start(const http_config *cfg_in, http_handler handler, void *user,
                            http_server **out, st_error *err)
{
    *out = NULL;
    if (!cfg_in || !handler)
        return st_fail(err, ST_EINVAL, "http_server_start: config and handler are required");
    http_config cfg = *cfg_in;
    config_fill(&cfg);
    if (cfg.port < 0 || cfg.port > 65535)
        return st_fail(err, ST_EINVAL, "http: port %d is out of range 0..65535", cfg.port);

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(cfg.host, NULL, &hints, &ai);
    if (gai != 0 || !ai)
        return st_fail(err, ST_EINVAL, "http: cannot resolve host '%s': %s", cfg.host,
                       gai_strerror(gai));

    http_server *srv = st_calloc(1, sizeof *srv);
    if (!srv) {
        freeaddrinfo(ai);
        return st_fail(err, ST_ENOMEM, "http: out of memory");
    }
    srv->cfg = cfg;
    srv->limits = (http_limits){ cfg.max_header_bytes, cfg.max_headers, cfg.max_body_bytes,
                                 cfg.max_uri_bytes };
    srv->handler = handler;
    srv->user = user;
    int shortest = cfg.header_timeout_ms;
    if (cfg.request_timeout_ms < shortest)
        shortest = cfg.request_timeout_ms;
    if (cfg.idle_timeout_ms < shortest)
        shortest = cfg.idle_timeout_ms;
    int tick_ms = shortest / 8;
    srv->tick_us = ms_to_us(tick_ms < 5 ? 5 : tick_ms > 100 ? 100 : tick_ms);
    pthread_mutex_init(&srv->stop_mu, NULL);
    st_status s = ST_OK;

    /* SO_REUSEPORT would let us share a port with another server of the
     * same user without a word: probe it plainly first. */
    if (cfg.port != 0) {
        int probe = listen_socket(ai, cfg.port, true, err, cfg.host);
        if (probe < 0) {
            s = ST_EIO;
            goto fail;
        }
        close(probe);
    }
    srv->io = st_calloc((size_t)cfg.io_threads, sizeof *srv->io);
    if (!srv->io) {
        s = st_fail(err, ST_ENOMEM, "http: out of memory");
        goto fail;
    }
    srv->port = cfg.port;
    for (int i = 0; i < cfg.io_threads; i++) {
        http_io *io = &srv->io[i];
        io->srv = srv;
        io->index = i;
        io->lfd = io->evfd = io->epfd = -1;
        io->live.next = io->live.prev = &io->live;
        pthread_mutex_init(&io->mu, NULL);
        srv->n_io = i + 1;
        io->lfd = listen_socket(ai, srv->port, false, err, cfg.host);
        if (io->lfd < 0) {
            s = ST_EIO;
            goto fail;
        }
        if (srv->port == 0) {
            struct sockaddr_storage bound;
            socklen_t blen = sizeof bound;
            getsockname(io->lfd, (struct sockaddr *)&bound, &blen);
            srv->port = bound.ss_family == AF_INET
                            ? ntohs(((struct sockaddr_in *)&bound)->sin_port)
                            : ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        }
        io->epfd = epoll_create1(EPOLL_CLOEXEC);
        io->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (io->epfd < 0 || io->evfd < 0) {
            s = st_fail(err, ST_EIO, "http: epoll/eventfd: %s", strerror(errno));
            goto fail;
        }
        struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &tag_listen };
        struct epoll_event wev = { .events = EPOLLIN, .data.ptr = &tag_wake };
        if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, io->lfd, &lev) != 0 ||
            epoll_ctl(io->epfd, EPOLL_CTL_ADD, io->evfd, &wev) != 0) {
            s = st_fail(err, ST_EIO, "http: epoll_ctl: %s", strerror(errno));
            goto fail;
        }
    }
    freeaddrinfo(ai);
    ai = NULL;
    for (int i = 0; i < srv->n_io; i++) {
        http_io *io = &srv->io[i];
        if (pthread_create(&io->thread, NULL, io_main, io) != 0) {
            s = st_fail(err, ST_EIO, "http: cannot start I/O thread %d", i);
            http_server_stop(srv, 0);
            http_server_free(srv);
            return s;
        }
        io->is_thread_started = true;
        char name[16];
        snprintf(name, sizeof name, "http-io-%u", (unsigned)i % 1000u);
        pthread_setname_np(io->thread, name);
    }
    *out = srv;
    return ST_OK;

fail:
    if (ai)
        freeaddrinfo(ai);
    server_free_io(srv);
    pthread_mutex_destroy(&srv->stop_mu);
    st_free(srv);
    return s;
}

int http_server_port(const http_server *srv)
{
    return srv->port;
}

size_t http_server_in_flight(const http_server *srv)
{
    return atomic_load(&((http_server *)srv)->in_flight);
}

static void server_begin_stop(http_server *srv, int grace_ms)
{
    if (atomic_load(&srv->is_stopping))
        return;
    atomic_store(&srv->stop_deadline_us, st_now_us() + ms_to_us(grace_ms));
    atomic_store(&srv->is_stopping, true);
    for (int i = 0; i < srv->n_io; i++) {
        uint64_t one = 1;
        while (write(srv->io[i].evfd, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
}

void http_server_stop(http_server *srv, int grace_ms)
{
    if (tls_io && tls_io->srv == srv) {
        /* Called from a handler on one of our I/O threads, which cannot
         * join itself: start the drain; a later call from elsewhere joins. */
        server_begin_stop(srv, grace_ms);
        return;
    }
    pthread_mutex_lock(&srv->stop_mu);
    if (!srv->is_joined) {
        server_begin_stop(srv, grace_ms);
        for (int i = 0; i < srv->n_io; i++)
            if (srv->io[i].is_thread_started)
                pthread_join(srv->io[i].thread, NULL);
        srv->is_joined = true;
    }
    pthread_mutex_unlock(&srv->stop_mu);
}

void http_server_free(http_server *srv)
{
    if (!srv)
        return;
    http_server_stop(srv, 0);
    /* Exchanges still at a handler point into the server; their answers
     * free them (the I/O threads are gone).  Wait for those, boundedly. */
    for (int waited_ms = 0;
         atomic_load(&srv->in_flight) > 0 || atomic_load(&srv->n_responding) > 0; waited_ms++) {
        if (waited_ms == 10000) {
            ST_LOG_ERROR("http: %zu requests still unanswered 10 s after stop; leaving the "
                         "server allocated", atomic_load(&srv->in_flight));
            return;
        }
        st_sleep_us(1000);
    }
    server_free_io(srv);
    pthread_mutex_destroy(&srv->stop_mu);
    st_free(srv);
}
