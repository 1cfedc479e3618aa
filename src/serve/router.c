/* router.c - the HTTP handler of `stratus serve`: maps a route to a
 * protocol and a model, runs the request through the manager (which
 * version), the protocol decoder, the batcher and the encoder, and counts
 * it.  Each inference exchange gets a context from a free list; its arena
 * is reset, not freed, so a warm server stops touching the heap for
 * request memory.  Health, metadata and metrics are answered inline on
 * the I/O thread.  A request a deployment routes to a version with a
 * shadow also goes, as a copy, to the shadow version; the two answers are
 * compared when both are in, and only counted and logged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/cpu.h"
#include "base/log.h"
#include "base/time.h"
#include "registry/registry.h"
#include "serve/serve.h"
#include "serve/serve_int.h"

typedef struct sv_shadow sv_shadow;

typedef struct sv_ctx {
    sv_item item;
    sv_waiter waiter;
    struct sv_server *server;
    http_exchange *ex;
    st_arena arena;
    sv_proto proto;
    st_str model, version, label;  /* into the request, valid until answered */
    sv_version *ver;
    sv_version *shadow_ver;        /* the route's shadow, until the copy is sent */
    sv_shadow *shadow;             /* the copy sent, until the primary answers */
    bool is_policy;                /* counts in ver->window */
    sv_request req;
    const char *accept;
    char version_header[64];       /* X-Stratus-Model-Version: N\r\n */
    struct sv_ctx *next_free;
} sv_ctx;

/* A copy of a request sent to a shadow version.  Two sides finish it in
 * either order: the primary's answer (its outputs copied, since they live
 * only during done()) and the shadow's run; the last one compares. */
struct sv_shadow {
    sv_item item;
    _Atomic int pending;             /* sides still to finish */
    sv_version *primary, *shadow;    /* references */
    st_arena inputs_arena;           /* written before the copy is queued */
    st_arena primary_arena;          /* the primary's side */
    st_arena shadow_arena;           /* the shadow's side */
    eng_tensor *inputs;
    eng_tensor *primary_out, *shadow_out;
    size_t n_primary_out, n_shadow_out;
    bool is_primary_ok;
    st_status shadow_status;
    char shadow_error[200];
};

struct sv_server {
    sv_manager *manager;
    sv_batcher *batcher;
    sv_admin *admin;               /* /api/v1 when serving a registry, else NULL */
    sv_keys *keys;                 /* --api-keys, else NULL (inference open) */
    http_server *http;
    /* The same, for handlers: a request can arrive before
     * http_server_start has returned and set `http`. */
    _Atomic(http_server *) http_shared;
    sv_limits limits;
    char predict_route[256];
    char health_route[256];
    char server_version[64];
    pthread_mutex_t free_mu;
    sv_ctx *free_list;
    bool is_stopped;
};

#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

sv_options sv_options_default(void)
{
    sv_options o = { 0 };
    o.http = http_config_default();
    o.limits.max_elements = (size_t)1 << 24;
    o.limits.max_total_bytes = (size_t)1 << 30;
    o.poll_ms = 1000;
    o.load_wait_ms = 30000;
    return o;
}

/* ---- contexts ----------------------------------------------------------- */

static sv_ctx *ctx_get(sv_server *s)
{
    pthread_mutex_lock(&s->free_mu);
    sv_ctx *c = s->free_list;
    if (c)
        s->free_list = c->next_free;
    pthread_mutex_unlock(&s->free_mu);
    if (!c) {
        c = st_calloc(1, sizeof *c);
        if (!c)
            return NULL;
        st_arena_init(&c->arena, 16 * 1024);
        c->server = s;
    }
    return c;
}

static void ctx_put(sv_ctx *c)
{
    sv_server *s = c->server;
    st_arena_reset(&c->arena);
    c->ex = NULL;
    c->ver = NULL;
    c->shadow_ver = NULL;
    c->shadow = NULL;
    c->is_policy = false;
    c->version_header[0] = '\0';
    c->waiter = (sv_waiter){ 0 };
    pthread_mutex_lock(&s->free_mu);
    c->next_free = s->free_list;
    s->free_list = c;
    pthread_mutex_unlock(&s->free_mu);
}

/* ---- responses ---------------------------------------------------------- */

static void count(sv_server *s, sv_version *v, int proto_label, int status)
{
    sv_counters *c = v && v->counters ? v->counters : sv_manager_unrouted(s->manager);
    atomic_fetch_add_explicit(&c->requests[proto_label][sv_metrics_code_index(status)], 1,
                              memory_order_relaxed);
}

static const char json_type[] = "application/json";

/* Answers with {"error": msg}; extra headers may be NULL. */
static void respond_error(http_exchange *ex, int status, const char *msg, const char *extra)
{
    st_buf body = { 0 };
    if (sv_encode_error(msg, &body) != ST_OK) {
        st_buf_free(&body);
        http_respond(ex, status, json_type, extra, extra ? strlen(extra) : 0, "{\"error\":\"\"}", 12);
        return;
    }
    http_respond_buf(ex, status, json_type, extra, extra ? strlen(extra) : 0, &body);
    st_buf_free(&body);
}

static void respond_text(http_exchange *ex, int status, const char *type, const char *body)
{
    http_respond(ex, status, type, NULL, 0, body, strlen(body));
}

/* ---- shadows ------------------------------------------------------------ */

static void shadow_count(sv_version *v, size_t field_offset)
{
    if (v->counters)
        atomic_fetch_add_explicit((_Atomic uint64_t *)(void *)((char *)v->counters + field_offset), 1,
                                  memory_order_relaxed);
}

/* At most one line a second per model: a shadow that always differs must
 * not flood the log (the counters have every one). */
static bool shadow_may_log(sv_model *model)
{
    uint64_t now = st_now_us(), last = atomic_load_explicit(&model->shadow_logged_us, memory_order_relaxed);
    return (last == 0 || now - last >= 1000000u) &&
           atomic_compare_exchange_strong_explicit(&model->shadow_logged_us, &last, now, memory_order_relaxed,
                                                   memory_order_relaxed);
}

/* Compares the two answers by output name; says where they first differ. */
static bool shadow_outputs_match(const sv_shadow *sh, char *why, size_t cap)
{
    const sv_model_sig *ps = &sh->primary->sig, *ss = &sh->shadow->sig;
    if (sh->n_primary_out != sh->n_shadow_out) {
        snprintf(why, cap, "%zu outputs vs %zu", sh->n_shadow_out, sh->n_primary_out);
        return false;
    }
    for (size_t i = 0; i < sh->n_primary_out; i++) {
        size_t k = 0;
        while (k < sh->n_shadow_out && strcmp(ss->outputs[k].name, ps->outputs[i].name) != 0)
            k++;
        if (k == sh->n_shadow_out) {
            snprintf(why, cap, "no output '%s'", ps->outputs[i].name);
            return false;
        }
        char detail[160];
        if (!sv_value_match(&sh->shadow_out[k], &sh->primary_out[i], detail, sizeof detail)) {
            snprintf(why, cap, "output '%s': %s", ps->outputs[i].name, detail);
            return false;
        }
    }
    return true;
}

static void shadow_free(sv_shadow *sh)
{
    sv_version_release(sh->primary);
    sv_version_release(sh->shadow);
    st_arena_free(&sh->inputs_arena);
    st_arena_free(&sh->primary_arena);
    st_arena_free(&sh->shadow_arena);
    st_free(sh);
}

/* One side is done; the last compares, counts and frees. */
static void shadow_arrive(sv_shadow *sh)
{
    if (atomic_fetch_sub_explicit(&sh->pending, 1, memory_order_acq_rel) != 1)
        return;
    sv_version *v = sh->shadow;
    if (sh->shadow_status != ST_OK) {
        shadow_count(v, offsetof(sv_counters, shadow_errors));
        if (shadow_may_log(v->model))
            ST_LOG_WARN("model %s: shadow version %s failed: %s", v->model->name, v->number_text,
                        sh->shadow_error);
    } else if (sh->is_primary_ok) {
        char why[240];
        if (!shadow_outputs_match(sh, why, sizeof why)) {
            shadow_count(v, offsetof(sv_counters, shadow_mismatches));
            if (shadow_may_log(v->model))
                ST_LOG_WARN("model %s: shadow version %s differs from version %s: %s (logged at most once "
                            "a second; stratus_shadow_mismatches_total counts them all)",
                            v->model->name, v->number_text, sh->primary->number_text, why);
        }
    }
    shadow_free(sh);
}

/* The shadow's run (batcher callback): keep its outputs for comparison. */
static void shadow_done(sv_item *it, const sv_result *res)
{
    sv_shadow *sh = CONTAINER_OF(it, sv_shadow, item);
    sh->shadow_status = res->status;
    if (res->status != ST_OK) {
        snprintf(sh->shadow_error, sizeof sh->shadow_error, "%s", st_error_msg(res->err));
    } else {
        sh->shadow_out = st_arena_calloc(&sh->shadow_arena, res->n_outputs + 1, sizeof *sh->shadow_out,
                                         _Alignof(eng_tensor));
        sh->n_shadow_out = res->n_outputs;
        for (size_t i = 0; sh->shadow_out && i < res->n_outputs && sh->shadow_status == ST_OK; i++)
            sh->shadow_status = sv_value_copy(&sh->shadow_arena, &res->outputs[i], &sh->shadow_out[i]);
        if (!sh->shadow_out)
            sh->shadow_status = ST_ENOMEM;
        if (sh->shadow_status != ST_OK)
            snprintf(sh->shadow_error, sizeof sh->shadow_error, "out of memory keeping its outputs");
    }
    shadow_arrive(sh);
}

/* Copies the decoded request for the shadow version; it is queued once
 * the primary has answered (shadow_primary_answered), so the shadow never
 * runs ahead of the client's request on the shared workers.  No memory
 * drops the copy and counts it; the primary goes on either way. */
static void shadow_prepare(sv_ctx *c)
{
    sv_version *v = c->shadow_ver;
    c->shadow_ver = NULL;
    sv_shadow *sh = st_calloc(1, sizeof *sh);
    bool is_copied = sh != NULL;
    if (sh) {
        st_arena_init(&sh->inputs_arena, 0);
        st_arena_init(&sh->primary_arena, 0);
        st_arena_init(&sh->shadow_arena, 0);
        sh->inputs = st_arena_calloc(&sh->inputs_arena, c->req.n_inputs + 1, sizeof *sh->inputs,
                                     _Alignof(eng_tensor));
        is_copied = sh->inputs != NULL;
        for (size_t i = 0; is_copied && i < c->req.n_inputs; i++)
            is_copied = sv_value_copy(&sh->inputs_arena, &c->req.inputs[i], &sh->inputs[i]) == ST_OK;
    }
    /* The shadow must take the same inputs: same names, in order. */
    bool is_same_sig = v->sig.n_inputs == c->ver->sig.n_inputs;
    for (size_t i = 0; is_same_sig && i < v->sig.n_inputs; i++)
        is_same_sig = strcmp(v->sig.inputs[i].name, c->ver->sig.inputs[i].name) == 0;
    if (!is_copied || !is_same_sig) {
        shadow_count(v, is_same_sig ? offsetof(sv_counters, shadow_dropped) : offsetof(sv_counters, shadow_errors));
        if (sh) {
            sh->shadow = v;
            shadow_free(sh);
        } else {
            sv_version_release(v);
        }
        return;
    }
    sh->primary = c->ver;
    sv_version_retain(c->ver);
    sh->shadow = v;
    atomic_init(&sh->pending, 2);
    sh->item = (sv_item){
        .version = v,
        .inputs = sh->inputs,
        .rows = c->req.batch,
        .done = shadow_done,
    };
    c->shadow = sh;
}

/* The primary has answered: keep its outputs (or its failure), then queue
 * the shadow's run.  A full shadow queue drops the copy and counts it. */
static void shadow_primary_answered(sv_ctx *c, const sv_result *res)
{
    sv_shadow *sh = c->shadow;
    if (!sh)
        return;
    c->shadow = NULL;
    if (!res) {
        /* The primary failed before running (its queue was full, say):
         * nothing to compare, and an overloaded server gets no extra run. */
        shadow_count(sh->shadow, offsetof(sv_counters, shadow_dropped));
        shadow_free(sh);
        return;
    }
    if (res->status == ST_OK) {
        sh->primary_out = st_arena_calloc(&sh->primary_arena, res->n_outputs + 1, sizeof *sh->primary_out,
                                          _Alignof(eng_tensor));
        sh->n_primary_out = res->n_outputs;
        bool is_ok = sh->primary_out != NULL;
        for (size_t i = 0; is_ok && i < res->n_outputs; i++)
            is_ok = sv_value_copy(&sh->primary_arena, &res->outputs[i], &sh->primary_out[i]) == ST_OK;
        sh->is_primary_ok = is_ok;
    }
    sv_version *v = sh->shadow;
    /* Counted before it is queued: it may finish (and go) at once. */
    shadow_count(v, offsetof(sv_counters, shadow_requests));
    sv_version_retain(v); /* so the count below stays safe if it does */
    if (sv_batcher_submit(c->server->batcher, &sh->item) == ST_EBUSY) {
        shadow_count(v, offsetof(sv_counters, shadow_dropped));
        shadow_free(sh);
    } else {
        shadow_arrive(sh); /* the primary's side; the shadow's run is the other */
    }
    sv_version_release(v);
}

/* Ends an inference exchange: the response is sent, now count it and
 * give everything back. */
static void ctx_finish(sv_ctx *c, int status, uint64_t age_us)
{
    sv_server *s = c->server;
    count(s, c->ver, (int)c->proto, status);
    shadow_primary_answered(c, NULL);
    if (c->shadow_ver) {
        sv_version_release(c->shadow_ver);
        c->shadow_ver = NULL;
    }
    if (c->ver) {
        sv_histogram_observe_us(&sv_version_stats(c->ver)->duration, age_us);
        sv_window *w = c->is_policy ? atomic_load_explicit(&c->ver->window, memory_order_acquire) : NULL;
        if (w)
            sv_window_record(w, st_now_us(), status < 200 || status > 299, age_us);
        sv_version_release(c->ver);
    }
    ctx_put(c);
}

static void ctx_fail(sv_ctx *c, int status, const char *msg)
{
    uint64_t age = http_exchange_start_us(c->ex);
    char extra[128];
    snprintf(extra, sizeof extra, "%s%s", status == 429 ? "Retry-After: 1\r\n" : "", c->version_header);
    respond_error(c->ex, status, msg, extra[0] ? extra : NULL);
    ctx_finish(c, status, age);
}

/* The HTTP status of an engine failure: the request's fault (shape, type)
 * or the server's. */
static int run_status(st_status st)
{
    switch (st) {
    case ST_ESHAPE:
    case ST_ETYPE:
    case ST_EINVAL:
    case ST_EUNSUPPORTED:
        return 400;
    case ST_ELIMIT:
    case ST_EOVERFLOW:
        return 413;
    case ST_ENOMEM:
    case ST_EAGAIN:
        return 503;
    default:
        return 500;
    }
}

/* Batcher callback, on a worker: outputs are valid only during the call. */
static void on_done(sv_item *it, const sv_result *res)
{
    sv_ctx *c = CONTAINER_OF(it, sv_ctx, item);
    sv_model_stats *stats = sv_version_stats(c->ver);
    sv_histogram_observe_us(&stats->queue, res->queue_us);
    if (res->status != ST_OK) {
        sv_histogram_observe_us(&stats->compute, res->compute_us);
        int status = run_status(res->status);
        uint64_t age = http_exchange_start_us(c->ex); /* the exchange goes with the answer */
        respond_error(c->ex, status, st_error_msg(res->err), c->version_header);
        shadow_primary_answered(c, res); /* it ran: the shadow's run is still worth counting */
        ctx_finish(c, status, age);
        return;
    }
    sv_histogram_observe_us(&stats->compute, res->compute_us);
    st_error err = { 0 };
    const char *ct = json_type;
    st_buf *body = res->scratch;
    st_buf_clear(body);
    st_status st = sv_encode(c->proto, c->accept, &c->ver->sig, &c->req, res->outputs, res->n_outputs, body,
                             &ct, &err);
    if (st != ST_OK) {
        ctx_fail(c, st == ST_ENOMEM ? 503 : 500, st_error_msg(&err));
        return;
    }
    uint64_t age = http_exchange_start_us(c->ex);
    /* Big bodies are handed over; small ones copied (cheaper than a malloc). */
    size_t extra_len = strlen(c->version_header);
    if (body->len > 256 * 1024)
        http_respond_buf(c->ex, 200, ct, c->version_header, extra_len, body);
    else
        http_respond(c->ex, 200, ct, c->version_header, extra_len, body->data, body->len);
    /* Answered first: the copy for the shadow never delays the client. */
    shadow_primary_answered(c, res);
    ctx_finish(c, 200, age);
}

/* Routes, decodes and queues; also the resume path of a parked request. */
static void dispatch(sv_ctx *c)
{
    sv_server *s = c->server;
    st_error err = { 0 };
    bool is_parked = false;
    const http_request *req = http_exchange_request(c->ex);
    sv_route route;
    st_status st = sv_manager_route(s->manager, c->model, c->version, c->label, req, &c->waiter, &is_parked,
                                    &route, &err);
    if (is_parked)
        return;
    if (st != ST_OK) {
        ctx_fail(c, st_status_http(st), st_error_msg(&err));
        return;
    }
    c->ver = route.version;
    c->shadow_ver = route.shadow;
    c->is_policy = route.is_policy;
    snprintf(c->version_header, sizeof c->version_header, "X-Stratus-Model-Version: %s\r\n",
             c->ver->number_text);
    st_str ct = http_request_header(req, "Content-Type");
    const char *ct_text = ct.ptr ? st_arena_strndup(&c->arena, ct.ptr, ct.len) : NULL;
    st_str accept = http_request_header(req, "Accept");
    c->accept = accept.ptr ? st_arena_strndup(&c->arena, accept.ptr, accept.len) : NULL;
    int http_status = 400;
    st = sv_decode(c->proto, ct_text, req->body, req->body_len, &c->ver->sig, &s->limits, &c->arena, &c->req,
                   &http_status, &err);
    if (st != ST_OK) {
        ctx_fail(c, http_status, st_error_msg(&err));
        return;
    }
    /* The copy is made first: once the primary is queued it may answer
     * (and this context be reused) at any moment. */
    if (c->shadow_ver)
        shadow_prepare(c);
    c->item = (sv_item){
        .version = c->ver,
        .inputs = c->req.inputs,
        .rows = c->req.batch,
        .done = on_done,
    };
    if (sv_batcher_submit(s->batcher, &c->item) == ST_EBUSY) {
        char msg[200];
        snprintf(msg, sizeof msg, "model '%s' version %s has %lld requests queued; retry later", c->ver->sig.name,
                 c->ver->number_text, (long long)c->ver->config.max_queue_size);
        ctx_fail(c, 429, msg);
    }
}

static void on_resume(sv_waiter *w, st_status status, const char *msg)
{
    sv_ctx *c = CONTAINER_OF(w, sv_ctx, waiter);
    if (status != ST_OK) {
        ctx_fail(c, 503, msg);
        return;
    }
    w->next = NULL;
    dispatch(c);
}

static void infer(sv_server *s, http_exchange *ex, sv_proto proto, st_str model, st_str version, st_str label)
{
    sv_ctx *c = ctx_get(s);
    if (!c) {
        respond_error(ex, 503, "out of memory", NULL);
        count(s, NULL, (int)proto, 503);
        return;
    }
    c->ex = ex;
    c->proto = proto;
    /* A parked request outlives this call: the name may be on our stack. */
    char *name = st_arena_strndup(&c->arena, model.ptr ? model.ptr : "", model.len);
    c->model = name ? st_str_make(name, model.len) : model;
    c->version = version;
    c->label = label;
    c->ver = NULL;
    c->req = (sv_request){ 0 };
    c->waiter = (sv_waiter){ .resume = on_resume };
    dispatch(c);
}

/* ---- routes ------------------------------------------------------------- */

static bool take_prefix(st_str *s, const char *prefix)
{
    st_str p = st_str_c(prefix);
    if (!st_str_starts_with(*s, p))
        return false;
    s->ptr += p.len;
    s->len -= p.len;
    return true;
}

/* The path segment up to one of `stops` (or the end), consumed. */
static st_str take_segment(st_str *s, const char *stops)
{
    size_t i = 0;
    while (i < s->len && !strchr(stops, s->ptr[i]))
        i++;
    st_str seg = st_str_make(s->ptr, i);
    s->ptr += i;
    s->len -= i;
    return seg;
}

static bool method_is(const http_request *req, const char *m)
{
    return st_str_eq_c(req->method, m);
}

/* 405 unless the method is `allowed` (GET routes also take HEAD). */
static bool check_method(sv_server *s, http_exchange *ex, const http_request *req, const char *allowed, int proto)
{
    if (method_is(req, allowed) || (strcmp(allowed, "GET") == 0 && method_is(req, "HEAD")))
        return true;
    char allow[64], msg[128];
    snprintf(allow, sizeof allow, "Allow: %s%s\r\n", allowed, strcmp(allowed, "GET") == 0 ? ", HEAD" : "");
    snprintf(msg, sizeof msg, "method %.*s not allowed here; use %s", (int)(req->method.len > 16 ? 16 : req->method.len),
             req->method.ptr, allowed);
    respond_error(ex, 405, msg, allow);
    count(s, NULL, proto, 405);
    return false;
}

/* POST bodies must say how long they are (411 otherwise). */
static bool check_length(sv_server *s, http_exchange *ex, const http_request *req, int proto)
{
    if (http_request_header(req, "Content-Length").ptr || http_request_header(req, "Transfer-Encoding").ptr)
        return true;
    respond_error(ex, 411, "a request body needs Content-Length or chunked Transfer-Encoding", NULL);
    count(s, NULL, proto, 411);
    return false;
}

static void not_found(sv_server *s, http_exchange *ex, const http_request *req, int proto)
{
    char msg[300];
    snprintf(msg, sizeof msg, "no route %.*s", (int)(req->path.len > 200 ? 200 : req->path.len), req->path.ptr);
    respond_error(ex, 404, msg, NULL);
    count(s, NULL, proto, 404);
}

static void respond_status(sv_server *s, http_exchange *ex, st_status st, const st_error *err, int proto)
{
    int code = st_status_http(st);
    respond_error(ex, code, st_error_msg(err), NULL);
    count(s, NULL, proto, code);
}

static void respond_json_buf(sv_server *s, http_exchange *ex, st_buf *body, int proto)
{
    http_respond(ex, 200, json_type, NULL, 0, body->data, body->len);
    count(s, NULL, proto, 200);
}

static void route_v2(sv_server *s, http_exchange *ex, const http_request *req, st_str rest)
{
    const int none = SV_PROTO_LABEL_NONE;
    if (rest.len == 0 || st_str_eq_c(rest, "/")) {
        if (!check_method(s, ex, req, "GET", none))
            return;
        st_buf body = { 0 };
        if (sv_encode_v2_server_metadata("stratus", s->server_version, NULL, 0, &body) == ST_OK)
            respond_json_buf(s, ex, &body, none);
        else
            respond_status(s, ex, ST_ENOMEM, NULL, none);
        st_buf_free(&body);
        return;
    }
    if (st_str_eq_c(rest, "/health/live")) {
        if (!check_method(s, ex, req, "GET", none))
            return;
        respond_text(ex, 200, json_type, "{\"live\":true}");
        count(s, NULL, none, 200);
        return;
    }
    if (st_str_eq_c(rest, "/health/ready")) {
        if (!check_method(s, ex, req, "GET", none))
            return;
        /* The V2 spec: 200 means ready, a 4xx means not (Triton answers
         * 400 too); Kubernetes probes read any 4xx as a failure. */
        bool is_ready = sv_manager_is_ready(s->manager);
        respond_text(ex, is_ready ? 200 : 400, json_type, is_ready ? "{\"ready\":true}" : "{\"ready\":false}");
        count(s, NULL, none, is_ready ? 200 : 400);
        return;
    }
    if (!take_prefix(&rest, "/models/")) {
        not_found(s, ex, req, none);
        return;
    }
    st_str model = take_segment(&rest, "/"), version = { 0 };
    if (model.len == 0) {
        not_found(s, ex, req, none);
        return;
    }
    if (take_prefix(&rest, "/versions/")) {
        version = take_segment(&rest, "/");
        if (version.len == 0) {
            not_found(s, ex, req, none);
            return;
        }
    }
    if (st_str_eq_c(rest, "/infer")) {
        if (check_method(s, ex, req, "POST", SV_PROTO_V2) && check_length(s, ex, req, SV_PROTO_V2))
            infer(s, ex, SV_PROTO_V2, model, version, (st_str){ 0 });
        return;
    }
    bool is_ready_route = st_str_eq_c(rest, "/ready");
    if (!is_ready_route && rest.len != 0) {
        not_found(s, ex, req, none);
        return;
    }
    if (!check_method(s, ex, req, "GET", none))
        return;
    st_buf body = { 0 };
    st_error err = { 0 };
    bool is_ready = false;
    st_status st = sv_manager_v2_metadata(s->manager, model, version, is_ready_route ? NULL : &body, &is_ready, &err);
    if (is_ready_route && (st == ST_OK || st == ST_EAGAIN)) {
        respond_text(ex, is_ready ? 200 : 400, json_type, is_ready ? "{\"ready\":true}" : "{\"ready\":false}");
        count(s, NULL, none, is_ready ? 200 : 400);
    } else if (st != ST_OK) {
        if (st == ST_EAGAIN && !err.msg[0])
            st_fail(&err, ST_EAGAIN, "model '%.*s' is loading", (int)(model.len > 128 ? 128 : model.len), model.ptr);
        respond_status(s, ex, st, &err, none);
    } else {
        respond_json_buf(s, ex, &body, none);
    }
    st_buf_free(&body);
}

static void route_tfs(sv_server *s, http_exchange *ex, const http_request *req, st_str rest)
{
    const int none = SV_PROTO_LABEL_NONE;
    st_str model = take_segment(&rest, "/:"), version = { 0 }, label = { 0 };
    if (model.len == 0) {
        not_found(s, ex, req, SV_PROTO_TFS);
        return;
    }
    if (take_prefix(&rest, "/versions/"))
        version = take_segment(&rest, "/:");
    else if (take_prefix(&rest, "/labels/"))
        label = take_segment(&rest, "/:");
    if ((version.len == 0 && label.len == 0) && (st_str_starts_with(rest, ST_STR("/versions")) ||
                                                  st_str_starts_with(rest, ST_STR("/labels")))) {
        not_found(s, ex, req, SV_PROTO_TFS);
        return;
    }
    if (st_str_eq_c(rest, ":predict")) {
        if (check_method(s, ex, req, "POST", SV_PROTO_TFS) && check_length(s, ex, req, SV_PROTO_TFS))
            infer(s, ex, SV_PROTO_TFS, model, version, label);
        return;
    }
    if (st_str_eq_c(rest, ":classify") || st_str_eq_c(rest, ":regress")) {
        respond_error(ex, 400, "only :predict is supported (the Classify and Regress APIs need tf.Example input)",
                      NULL);
        count(s, NULL, SV_PROTO_TFS, 400);
        return;
    }
    if (st_str_eq_c(rest, "/metadata")) {
        if (!check_method(s, ex, req, "GET", none))
            return;
        sv_version *v = NULL;
        bool is_parked;
        st_error err = { 0 };
        st_buf body = { 0 };
        st_status st = sv_manager_acquire(s->manager, model, version, label, NULL, &is_parked, &v, &err);
        if (st == ST_OK && (st = sv_encode_tfs_metadata(&v->sig, &body)) != ST_OK)
            st_fail(&err, st, "cannot encode the model metadata");
        if (st == ST_OK)
            respond_json_buf(s, ex, &body, none);
        else
            respond_status(s, ex, st, &err, none);
        st_buf_free(&body);
        sv_version_release(v);
        return;
    }
    if (rest.len != 0 || label.len != 0) {
        not_found(s, ex, req, SV_PROTO_TFS);
        return;
    }
    if (!check_method(s, ex, req, "GET", none))
        return;
    st_buf body = { 0 };
    st_error err = { 0 };
    st_status st = sv_manager_tfs_status(s->manager, model, version, &body, &err);
    if (st != ST_OK)
        respond_status(s, ex, st, &err, none);
    else
        respond_json_buf(s, ex, &body, none);
    st_buf_free(&body);
}

/* The model of a SageMaker or Vertex request: the target-model header, or
 * the only model served. */
static bool pick_single(sv_server *s, http_exchange *ex, const http_request *req, sv_proto proto, st_str *model,
                        char *buf, size_t cap)
{
    st_str target = proto == SV_PROTO_SAGEMAKER ? http_request_header(req, "X-Amzn-SageMaker-Target-Model")
                                                : (st_str){ 0 };
    if (target.ptr && target.len) {
        /* Multi-model endpoints name an artifact ("churn.tar.gz", maybe
         * with folders): the model is its base name. */
        for (size_t i = target.len; i-- > 0;)
            if (target.ptr[i] == '/') {
                target.ptr += i + 1;
                target.len -= i + 1;
                break;
            }
        if (target.len > 7 && memcmp(target.ptr + target.len - 7, ".tar.gz", 7) == 0)
            target.len -= 7;
        *model = target;
        return true;
    }
    if (sv_manager_single_name(s->manager, buf, cap)) {
        *model = st_str_c(buf);
        return true;
    }
    respond_error(ex, 400,
                  proto == SV_PROTO_SAGEMAKER
                      ? "several models are served: name one with the X-Amzn-SageMaker-Target-Model header"
                      : "several models are served: this route serves one; use /v2/models/{name}/infer",
                  NULL);
    count(s, NULL, (int)proto, 400);
    return false;
}

/* True for the routes that run a model or describe one (they need an API
 * key when keys are set); health, server metadata and metrics stay open
 * for probes and scrapers. */
static bool is_inference_route(const sv_server *s, st_str path)
{
    return st_str_starts_with(path, ST_STR("/v2/models/")) || st_str_starts_with(path, ST_STR("/v1/models/")) ||
           st_str_eq_c(path, "/invocations") || st_str_eq_c(path, s->predict_route);
}

static void handle(http_exchange *ex, void *user)
{
    sv_server *s = user;
    const http_request *req = http_exchange_request(ex);
    st_str path = req->path;
    const int none = SV_PROTO_LABEL_NONE;
    st_str rest = path;
    if (s->admin && take_prefix(&rest, "/api/v1") && (rest.len == 0 || rest.ptr[0] == '/')) {
        sv_admin_handle(s->admin, ex, req, rest);
        return;
    }
    if (s->keys && is_inference_route(s, path) && !sv_keys_check(s->keys, req)) {
        respond_error(ex, 401, "an API key is needed: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                      "WWW-Authenticate: Bearer realm=\"stratus\"\r\n");
        count(s, NULL, none, 401);
        return;
    }
    rest = path;
    if (take_prefix(&rest, "/v2") && (rest.len == 0 || rest.ptr[0] == '/')) {
        route_v2(s, ex, req, rest);
        return;
    }
    rest = path;
    if (take_prefix(&rest, "/v1/models/")) {
        route_tfs(s, ex, req, rest);
        return;
    }
    /* The Vertex routes come first: AIP_PREDICT_ROUTE may be anything. */
    if (st_str_eq_c(path, s->predict_route) || st_str_eq_c(path, "/invocations")) {
        sv_proto proto = st_str_eq_c(path, s->predict_route) ? SV_PROTO_VERTEX : SV_PROTO_SAGEMAKER;
        st_str model;
        char name[128];
        if (!check_method(s, ex, req, "POST", (int)proto) || !check_length(s, ex, req, (int)proto) ||
            !pick_single(s, ex, req, proto, &model, name, sizeof name))
            return;
        infer(s, ex, proto, model, (st_str){ 0 }, (st_str){ 0 });
        return;
    }
    if (st_str_eq_c(path, s->health_route) || st_str_eq_c(path, "/ping")) {
        if (!check_method(s, ex, req, "GET", none))
            return;
        bool is_ready = sv_manager_is_ready(s->manager);
        respond_text(ex, is_ready ? 200 : 503, json_type, is_ready ? "{\"status\":\"ok\"}" : "{\"status\":\"loading\"}");
        count(s, NULL, none, is_ready ? 200 : 503);
        return;
    }
    if (st_str_eq_c(path, "/execution-parameters")) {
        if (!check_method(s, ex, req, "GET", none))
            return;
        char body[200];
        snprintf(body, sizeof body,
                 "{\"MaxConcurrentTransforms\":%d,\"BatchStrategy\":\"MULTI_RECORD\",\"MaxPayloadInMB\":6}",
                 sv_batcher_workers(s->batcher));
        respond_text(ex, 200, json_type, body);
        count(s, NULL, none, 200);
        return;
    }
    if (st_str_eq_c(path, "/metrics")) {
        if (!check_method(s, ex, req, "GET", none))
            return;
        count(s, NULL, none, 200); /* counted first, so a scrape sees itself */
        st_buf body = { 0 };
        /* In flight as the HTTP server counts them (this scrape included). */
        http_server *http = atomic_load_explicit(&s->http_shared, memory_order_acquire);
        sv_manager_write_metrics(s->manager, &body, http ? (int64_t)http_server_in_flight(http) : 1);
        if (s->admin)
            sv_admin_write_metrics(s->admin, &body);
        http_respond_buf(ex, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, 0, &body);
        st_buf_free(&body);
        return;
    }
    not_found(s, ex, req, none);
}

/* ---- lifecycle ---------------------------------------------------------- */

st_status sv_server_start(const sv_options *opt, sv_server **out, st_error *err)
{
    *out = NULL;
    sv_server *s = st_calloc(1, sizeof *s);
    if (!s)
        return st_fail(err, ST_ENOMEM, "out of memory");
    pthread_mutex_init(&s->free_mu, NULL);
    s->limits = opt->limits;
    const char *pr = opt->predict_route ? opt->predict_route : getenv("AIP_PREDICT_ROUTE");
    const char *hr = opt->health_route ? opt->health_route : getenv("AIP_HEALTH_ROUTE");
    snprintf(s->predict_route, sizeof s->predict_route, "%s", pr && *pr ? pr : "/predict");
    snprintf(s->health_route, sizeof s->health_route, "%s", hr && *hr ? hr : "/health");
    snprintf(s->server_version, sizeof s->server_version, "%s", opt->server_version ? opt->server_version : "0");
    int workers = opt->workers > 0 ? opt->workers : st_cpu_count_online();
    sv_manager_options mo = {
        .repository = opt->repository,
        .registry = opt->registry,
        .names = opt->names,
        .paths = opt->paths,
        .n_files = opt->n_files,
        .n_workers = workers,
        .poll_ms = opt->poll_ms,
        .load_wait_ms = opt->load_wait_ms,
        .engine = { .threads = 1 },
    };
    st_status st = sv_batcher_start(workers, &s->batcher, err);
    struct stat home_sb;
    if (st == ST_OK && opt->registry && stat(opt->registry, &home_sb) == 0 && S_ISDIR(home_sb.st_mode)) {
        /* The management API can fill an empty registry (a fresh volume
         * in a container, say), so an existing folder gets one made when
         * it has none, as `stratus push` would; a folder that does not
         * exist is more likely a typo, and the manager refuses it. */
        reg_store *reg = NULL;
        st = reg_open(opt->registry, REG_OPEN_CREATE, &reg, err);
        reg_close(reg);
    }
    if (st == ST_OK)
        st = sv_manager_start(&mo, &s->manager, err);
    if (st == ST_OK && opt->api_keys_file) {
        st = sv_keys_load(opt->api_keys_file, &s->keys, err);
        if (st == ST_OK)
            ST_LOG_INFO("inference routes need an API key (%zu in %s)", sv_keys_count(s->keys), opt->api_keys_file);
    }
    if (st == ST_OK && opt->registry) {
        sv_admin_options ao = { .home = opt->registry, .token_file = opt->admin_token_file, .manager = s->manager };
        st = sv_admin_start(&ao, &s->admin, err);
    }
    if (st == ST_OK)
        st = http_server_start(&opt->http, handle, s, &s->http, err);
    if (st == ST_OK)
        atomic_store_explicit(&s->http_shared, s->http, memory_order_release);
    if (st != ST_OK) {
        sv_server_free(s);
        return st;
    }
    *out = s;
    return ST_OK;
}

int sv_server_port(const sv_server *s)
{
    return http_server_port(s->http);
}

bool sv_server_is_ready(sv_server *s)
{
    return sv_manager_is_ready(s->manager);
}

void sv_server_stop(sv_server *s, int grace_ms)
{
    if (s->is_stopped)
        return;
    s->is_stopped = true;
    if (s->http)
        http_server_stop(s->http, grace_ms);
}

void sv_server_free(sv_server *s)
{
    if (!s)
        return;
    if (s->http)
        sv_server_stop(s, 0);
    /* The admin thread and the batcher answer what is queued and the
     * manager what is parked before the server that owns the exchanges
     * goes (the admin thread first: it pokes the manager). */
    sv_admin_free(s->admin);
    sv_batcher_free(s->batcher);
    sv_manager_free(s->manager);
    http_server_free(s->http);
    sv_keys_free(s->keys);
    while (s->free_list) {
        sv_ctx *c = s->free_list;
        s->free_list = c->next_free;
        st_arena_free(&c->arena);
        st_free(c);
    }
    pthread_mutex_destroy(&s->free_mu);
    st_free(s);
}
