/* admin.c - the management API under /api/v1: models, versions, aliases,
 * deployments and the audit log of the registry being served, JSON in and
 * out, behind a bearer token.  The token is checked on the I/O thread
 * (a digest compare); everything else runs on one admin thread with its
 * own reg_store, because registry calls may wait on SQLite's lock and a
 * push hashes and copies a whole model file, neither of which may stall
 * an I/O thread.  Requests are copied into a job before they are queued,
 * so the thread never touches server memory but its exchange. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/log.h"
#include "engine/engine.h"
#include "json/json.h"
#include "registry/registry.h"
#include "serve/serve_int.h"

/* Requests waiting for the admin thread; 503 beyond. */
#define ADMIN_QUEUE_MAX 32
/* Largest JSON body a route takes (model uploads are bounded by the HTTP
 * server's max_body_bytes instead). */
#define ADMIN_JSON_MAX_BYTES (64 * 1024)
/* Most audit records one request returns. */
#define ADMIN_AUDIT_MAX 10000
#define TOKEN_FILE_MAX_BYTES 4096

static const char json_type[] = "application/json";
static const char www_auth[] = "WWW-Authenticate: Bearer realm=\"stratus\"\r\n";

/* A request as the admin thread needs it: one allocation holding the
 * strings and the body. */
typedef struct admin_job {
    struct admin_job *next;
    http_exchange *ex;
    st_str method, path, query;
    const uint8_t *body;
    size_t body_len;
} admin_job;

struct sv_admin {
    reg_store *reg;            /* the admin thread's, after start */
    sv_manager *manager;
    uint8_t token_digest[SV_DIGEST_BYTES];
    pthread_t thread;
    bool has_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    admin_job *head, *tail;
    size_t queued;
    bool is_stopping;
    _Atomic uint64_t answers[SV_N_CODES]; /* by status, for /metrics */
};

/* The API whose request this thread is answering: the admin thread always,
 * an I/O thread during sv_admin_handle.  The answer helpers count through
 * it, so no route can answer uncounted. */
static _Thread_local sv_admin *answering;

static void count_answer(int status)
{
    if (answering)
        atomic_fetch_add_explicit(&answering->answers[sv_metrics_code_index(status)], 1, memory_order_relaxed);
}

void sv_admin_write_metrics(sv_admin *a, st_buf *out)
{
    static const char head[] = "# HELP stratus_api_requests_total Management API (/api/v1) requests, by status.\n"
                               "# TYPE stratus_api_requests_total counter\n";
    st_buf_append(out, head, sizeof head - 1);
    for (int i = 0; i < SV_N_CODES; i++) {
        uint64_t n = atomic_load_explicit(&a->answers[i], memory_order_relaxed);
        char line[96];
        int len = snprintf(line, sizeof line, "stratus_api_requests_total{code=\"%d\"} %llu\n",
                           sv_metrics_code_at(i), (unsigned long long)n);
        if (n && len > 0)
            st_buf_append(out, line, (size_t)len);
    }
}

/* ---- answers ------------------------------------------------------------- */

static void respond_error(http_exchange *ex, int status, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void respond_error(http_exchange *ex, int status, const char *extra, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    st_buf body = { 0 };
    size_t extra_len = extra ? strlen(extra) : 0;
    count_answer(status);
    if (sv_encode_error(msg, &body) == ST_OK)
        http_respond_buf(ex, status, json_type, extra, extra_len, &body);
    else
        http_respond(ex, status, json_type, extra, extra_len, "{\"error\":\"\"}", 12);
    st_buf_free(&body);
}

/* The HTTP status of a registry failure.  `refused` is what ST_EINVAL
 * means for this call: 409 where the values were checked before and the
 * registry refused the change for the state it is in (rm of a version in
 * use, promote without a canary), else 400. */
static int reg_http(st_status st, int refused)
{
    switch (st) {
    case ST_EINVAL:
        return refused;
    case ST_ENOTFOUND:
        return 404;
    case ST_EEXIST:
        return 409;
    case ST_EBUSY:
    case ST_EAGAIN:
    case ST_ENOMEM:
        return 503;
    case ST_ELIMIT:
    case ST_EOVERFLOW:
        return 413;
    case ST_ECORRUPT:
    case ST_EIO:
    case ST_EINTERNAL:
        return 500;
    default:
        return st_status_http(st);
    }
}

static void respond_reg_error(http_exchange *ex, st_status st, const st_error *err, int refused)
{
    int code = reg_http(st, refused);
    respond_error(ex, code, code == 503 ? "Retry-After: 1\r\n" : NULL, "%s", st_error_msg(err));
}

/* Sends what `w` wrote to `out`, or 500 when writing failed. */
static void respond_json(http_exchange *ex, int status, json_writer *w, st_buf *out)
{
    if (json_writer_finish(w) != ST_OK) {
        respond_error(ex, 500, NULL, "cannot encode the answer (out of memory?)");
        return;
    }
    count_answer(status);
    http_respond_buf(ex, status, json_type, NULL, 0, out);
}

/* Sends a document a reg_json_* writer made (`st` its status), or 500. */
static void respond_doc(http_exchange *ex, int status, st_status st, st_buf *out)
{
    if (st != ST_OK) {
        respond_error(ex, 500, NULL, "cannot encode the answer (out of memory?)");
    } else {
        count_answer(status);
        http_respond_buf(ex, status, json_type, NULL, 0, out);
    }
    st_buf_free(out);
}

static void respond_405(http_exchange *ex, st_str method, const char *allowed)
{
    char allow[80];
    snprintf(allow, sizeof allow, "Allow: %s\r\n", allowed);
    respond_error(ex, 405, allow, "method %.*s not allowed here; use %s", (int)(method.len > 16 ? 16 : method.len),
                  method.ptr, allowed);
}

/* ---- request pieces ------------------------------------------------------- */

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool method_is(const admin_job *j, const char *m)
{
    return st_str_eq_c(j->method, m) || (strcmp(m, "GET") == 0 && st_str_eq_c(j->method, "HEAD"));
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The value of query parameter `key`, percent-decoded into the arena
 * ('+' is a space); false when absent. */
static bool query_get(const admin_job *j, st_arena *arena, const char *key, st_str *out)
{
    st_str q = j->query, k = st_str_c(key);
    while (q.len) {
        const char *amp = memchr(q.ptr, '&', q.len);
        st_str pair = st_str_make(q.ptr, amp ? (size_t)(amp - q.ptr) : q.len);
        q.ptr += pair.len + (amp ? 1 : 0);
        q.len -= pair.len + (amp ? 1 : 0);
        const char *eq = memchr(pair.ptr, '=', pair.len);
        st_str name = st_str_make(pair.ptr, eq ? (size_t)(eq - pair.ptr) : pair.len);
        if (!st_str_eq(name, k))
            continue;
        st_str raw = eq ? st_str_make(eq + 1, pair.len - name.len - 1) : (st_str){ "", 0 };
        char *dst = st_arena_alloc(arena, raw.len + 1, 1);
        if (!dst)
            return false;
        size_t n = 0;
        for (size_t i = 0; i < raw.len; i++) {
            int hi, lo;
            if (raw.ptr[i] == '%' && i + 2 < raw.len &&
                (hi = hex_value(raw.ptr[i + 1])) >= 0 && (lo = hex_value(raw.ptr[i + 2])) >= 0) {
                dst[n++] = (char)(hi * 16 + lo);
                i += 2;
            } else {
                dst[n++] = raw.ptr[i] == '+' ? ' ' : raw.ptr[i];
            }
        }
        dst[n] = '\0';
        *out = st_str_make(dst, n);
        return true;
    }
    return false;
}

/* A positive whole number (a version, a limit) of at most 16 digits. */
static bool parse_version(st_str s, int64_t *out)
{
    if (s.len == 0 || s.len > 16)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (s.ptr[i] - '0');
    }
    if (v < 1)
        return false;
    *out = v;
    return true;
}

/* A NUL-terminated copy in the arena (registry calls take C strings). */
static const char *cstr(st_arena *arena, st_str s)
{
    const char *c = st_arena_strndup(arena, s.ptr ? s.ptr : "", s.len);
    return c ? c : "";
}

/* Checks a model name (or alias) from the path: 400 with the rule when bad. */
static bool check_name(http_exchange *ex, st_str name, bool is_alias)
{
    st_error err = { 0 };
    if (reg_check_name(name, is_alias, &err) == ST_OK)
        return true;
    respond_error(ex, 400, NULL, "%s", st_error_msg(&err));
    return false;
}

/* Parses a JSON object body into the arena: 400 (bad JSON, not an
 * object) or 413 (too big) answered here.  An empty body gives an empty
 * object when `may_be_empty`. */
static bool parse_body(http_exchange *ex, const admin_job *j, st_arena *arena, bool may_be_empty,
                       const json_value **out)
{
    static const json_value empty = { .type = JSON_KIND_OBJECT };
    if (j->body_len == 0 && may_be_empty) {
        *out = &empty;
        return true;
    }
    if (j->body_len > ADMIN_JSON_MAX_BYTES) {
        respond_error(ex, 413, NULL, "the JSON body has %zu bytes; at most %d are accepted", j->body_len,
                      ADMIN_JSON_MAX_BYTES);
        return false;
    }
    st_error err = { 0 };
    json_value *v = NULL;
    json_limits lim = { .max_depth = 16, .max_input_bytes = ADMIN_JSON_MAX_BYTES, .max_elements = 4096 };
    if (json_parse(j->body, j->body_len, &lim, arena, &v, &err) != ST_OK) {
        respond_error(ex, 400, NULL, "the body is not valid JSON: %s", st_error_msg(&err));
        return false;
    }
    if (v->type != JSON_KIND_OBJECT) {
        respond_error(ex, 400, NULL, "the body must be a JSON object, not %s", json_kind_name(v->type));
        return false;
    }
    *out = v;
    return true;
}

/* 400 naming every member of `obj` that is not in `known` (NULL-ended). */
static bool check_keys(http_exchange *ex, const json_value *obj, const char *const *known, const char *where)
{
    char list[300];
    size_t len = 0, n_unknown = 0;
    list[0] = '\0';
    for (size_t i = 0; i < obj->u.object.count; i++) {
        st_str key = obj->u.object.members[i].key;
        bool is_known = false;
        for (size_t k = 0; known[k] && !is_known; k++)
            is_known = st_str_eq_c(key, known[k]);
        if (is_known)
            continue;
        if (len < sizeof list)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s\"%.*s\"", n_unknown ? ", " : "",
                                    (int)(key.len > 64 ? 64 : key.len), key.ptr);
        n_unknown++;
    }
    if (n_unknown == 0)
        return true;
    char expected[300];
    size_t elen = 0;
    expected[0] = '\0';
    for (size_t k = 0; known[k] && elen < sizeof expected; k++)
        elen += (size_t)snprintf(expected + elen, sizeof expected - elen, "%s%s", k ? ", " : "", known[k]);
    respond_error(ex, 400, NULL, "unknown key%s %s in %s; known: %s", n_unknown == 1 ? "" : "s", list, where,
                  expected);
    return false;
}

/* ---- models and versions ----------------------------------------------------- */

static void get_models(sv_admin *a, admin_job *j, st_arena *arena)
{
    reg_model *models;
    size_t n;
    st_error err = { 0 };
    st_status st = reg_list_models(a->reg, arena, &models, &n, &err);
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 400);
        return;
    }
    st_buf out = { 0 };
    respond_doc(j->ex, 200, reg_json_models(&out, models, n), &out);
}

static void get_model(sv_admin *a, admin_job *j, st_arena *arena, st_str name)
{
    reg_version *versions;
    size_t n;
    st_error err = { 0 };
    st_status st = reg_list_versions(a->reg, name, arena, &versions, &n, &err);
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 400);
        return;
    }
    st_buf out = { 0 };
    respond_doc(j->ex, 200, reg_json_model_versions(&out, name, versions, n), &out);
}

static void get_version(sv_admin *a, admin_job *j, st_arena *arena, st_str name, int64_t version)
{
    char ref[REG_NAME_MAX + 32];
    snprintf(ref, sizeof ref, "%.*s@%lld", ST_STR_FMT(name), (long long)version);
    reg_version v;
    st_error err = { 0 };
    st_status st = reg_get(a->reg, st_str_c(ref), arena, &v, &err);
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 400);
        return;
    }
    st_buf out = { 0 };
    respond_doc(j->ex, 200, reg_json_version(&out, &v), &out);
}

/* {"model": name, "<key>": value..., "removed": true} answers of deletions. */
static void respond_removed(http_exchange *ex, st_str name, const char *key, st_str text, int64_t number)
{
    st_buf out = { 0 };
    json_writer w;
    json_writer_init(&w, &out, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("model"));
    json_write_string(&w, name);
    if (key) {
        json_write_key(&w, st_str_c(key));
        if (text.ptr)
            json_write_string(&w, text);
        else
            json_write_int64(&w, number);
    }
    json_write_key(&w, ST_STR("removed"));
    json_write_bool(&w, true);
    json_write_object_end(&w);
    respond_json(ex, 200, &w, &out);
    st_buf_free(&out);
}

static bool delete_version(sv_admin *a, admin_job *j, st_arena *arena, st_str name, int64_t version)
{
    bool force = false;
    st_str f;
    if (query_get(j, arena, "force", &f)) {
        if (st_str_eq_c(f, "true") || st_str_eq_c(f, "1") || f.len == 0) {
            force = true;
        } else if (!st_str_eq_c(f, "false") && !st_str_eq_c(f, "0")) {
            respond_error(j->ex, 400, NULL, "force must be true or false, not '%.*s'",
                          (int)(f.len > 32 ? 32 : f.len), f.ptr);
            return false;
        }
    }
    st_error err = { 0 };
    st_status st = reg_remove_version(a->reg, name, version, force, &err);
    if (st != ST_OK) {
        if (st == ST_EINVAL)
            st_fail_wrap(&err, ST_EINVAL, "refused (add ?force=true to remove it anyway)");
        respond_reg_error(j->ex, st, &err, 409);
        return false;
    }
    respond_removed(j->ex, name, "version", (st_str){ 0 }, version);
    return true;
}

/* True when the bytes start like a JSON object ('{' then a key or '}');
 * UBJSON objects start with '{' too, then a length marker. */
static bool is_json_object(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len && is_space(p[i]))
        i++;
    if (i == len || p[i++] != '{')
        return false;
    while (i < len && is_space(p[i]))
        i++;
    return i < len && (p[i] == '"' || p[i] == '}');
}

/* The upload of a push: the body as model.<ext> in a fresh folder in the
 * home (the registry copies it into a blob; the version's file_name then
 * says what it is).  `dir` receives the folder, `path` the file. */
static st_status write_upload(const char *home, const char *format, const admin_job *j, char *dir, char *path,
                              size_t cap, st_error *err)
{
    const char *ext = strcmp(format, "onnx") == 0 ? "onnx" : strcmp(format, "lightgbm") == 0 ? "txt"
                      : is_json_object(j->body, j->body_len)                                  ? "json"
                                                                                              : "ubj";
    if (strlen(home) + 64 > cap)
        return st_fail(err, ST_EINVAL, "the home path is too long: %s", home);
    /* The pid in the name lets `fsck --gc` tell a live upload from one a
     * crash left behind (REG_UPLOAD_PREFIX). */
    snprintf(dir, cap, "%s/" REG_UPLOAD_PREFIX "%ld-XXXXXX", home, (long)getpid());
    if (!mkdtemp(dir))
        return st_fail(err, ST_EIO, "cannot make a folder for the upload in %s: %s", home, strerror(errno));
    if ((size_t)snprintf(path, cap, "%s/model.%s", dir, ext) >= cap)
        return st_fail(err, ST_EINVAL, "the home path is too long: %s", home);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        st_status st = st_fail(err, ST_EIO, "cannot create %s: %s", path, strerror(errno));
        rmdir(dir);
        return st;
    }
    size_t done = 0;
    while (done < j->body_len) {
        ssize_t n = write(fd, j->body + done, j->body_len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            st_status st = st_fail(err, ST_EIO, "cannot write %s: %s", path, strerror(errno));
            close(fd);
            unlink(path);
            rmdir(dir);
            return st;
        }
        done += (size_t)n;
    }
    close(fd);
    return ST_OK;
}

static bool push_version(sv_admin *a, admin_job *j, st_arena *arena, st_str name)
{
    st_str alias = { 0 };
    bool has_alias = query_get(j, arena, "alias", &alias);
    if (has_alias && !check_name(j->ex, alias, true))
        return false;
    if (j->body_len == 0) {
        respond_error(j->ex, 400, NULL, "the body must be the model file (ONNX, XGBoost JSON or UBJ, LightGBM "
                                        "text), e.g. curl --data-binary @model.onnx");
        return false;
    }
    /* Loaded once so that nothing unusable gets a version number; from
     * memory with no folder, so an upload cannot name external data files
     * on this machine. */
    st_error err = { 0 };
    eng_model *model = NULL;
    st_status st = eng_load_memory(j->body, j->body_len, NULL, NULL, &model, &err);
    eng_free(model);
    if (st != ST_OK) {
        respond_error(j->ex, st == ST_ENOMEM ? 503 : 400, NULL, "the body is not a model Stratus can load: %s",
                      st_error_msg(&err));
        return false;
    }
    const char *format = eng_detect_format(j->body, j->body_len);
    char dir[REG_PATH_MAX], path[REG_PATH_MAX];
    st = write_upload(reg_home(a->reg), format, j, dir, path, sizeof path, &err);
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 400);
        return false;
    }
    reg_push_request req = {
        .name = cstr(arena, name),
        .model_path = path,
        .format = format,
        .source_label = "upload to the management API",
        .alias = has_alias ? cstr(arena, alias) : NULL,
    };
    int64_t version = 0;
    st = reg_push(a->reg, &req, &version, &err);
    unlink(path);
    rmdir(dir);
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 400);
        return false;
    }
    char ref[REG_NAME_MAX + 32];
    snprintf(ref, sizeof ref, "%.*s@%lld", ST_STR_FMT(name), (long long)version);
    reg_version v = { 0 };
    bool has_v = reg_get(a->reg, st_str_c(ref), arena, &v, NULL) == ST_OK;
    st_buf out = { 0 };
    json_writer w;
    json_writer_init(&w, &out, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("model"));
    json_write_string(&w, name);
    json_write_key(&w, ST_STR("version"));
    json_write_int64(&w, version);
    if (has_v) {
        json_write_key(&w, ST_STR("sha256"));
        json_write_string(&w, st_str_c(v.sha256));
        json_write_key(&w, ST_STR("size_bytes"));
        json_write_int64(&w, v.size_bytes);
    }
    json_write_key(&w, ST_STR("format"));
    json_write_string(&w, st_str_c(format));
    json_write_key(&w, ST_STR("alias"));
    if (has_alias)
        json_write_string(&w, alias);
    else
        json_write_null(&w);
    json_write_object_end(&w);
    respond_json(j->ex, 201, &w, &out);
    st_buf_free(&out);
    ST_LOG_INFO("api: pushed %s (%zu bytes, %s)", ref, j->body_len, format);
    return true;
}

static bool put_alias(sv_admin *a, admin_job *j, st_arena *arena, st_str name, st_str alias)
{
    const json_value *body;
    static const char *const known[] = { "version", NULL };
    if (!parse_body(j->ex, j, arena, false, &body) || !check_keys(j->ex, body, known, "the alias body"))
        return false;
    int64_t version = 0;
    const json_value *v = json_value_get_c(body, "version");
    if (!v || json_value_int64(v, &version) != ST_OK || version < 1) {
        respond_error(j->ex, 400, NULL, "the body needs {\"version\": N} with N a version number >= 1");
        return false;
    }
    st_error err = { 0 };
    st_status st = reg_set_alias(a->reg, name, version, alias, &err);
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 400);
        return false;
    }
    st_buf out = { 0 };
    respond_doc(j->ex, 200, reg_json_alias(&out, name, alias, version), &out);
    return true;
}

static bool delete_alias(sv_admin *a, admin_job *j, st_str name, st_str alias)
{
    st_error err = { 0 };
    st_status st = reg_remove_alias(a->reg, name, alias, &err);
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 400);
        return false;
    }
    respond_removed(j->ex, name, "alias", alias, 0);
    return true;
}

/* ---- deployments ---------------------------------------------------------------- */

static void respond_deployment(http_exchange *ex, const reg_deployment *d)
{
    st_buf out = { 0 };
    respond_doc(ex, 200, reg_json_deployment(&out, d), &out);
}

static void get_deployments(sv_admin *a, admin_job *j, st_arena *arena)
{
    reg_deployment *deps;
    size_t n;
    st_error err = { 0 };
    st_status st = reg_deploy_list(a->reg, arena, &deps, &n, &err);
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 400);
        return;
    }
    st_buf out = { 0 };
    respond_doc(j->ex, 200, reg_json_deployments(&out, deps, n), &out);
}

/* Reads an optional member of `obj` into an int64 (null: 0) or double. */
static bool member_int(http_exchange *ex, const json_value *obj, const char *key, const char *where, int64_t *out)
{
    const json_value *v = json_value_get_c(obj, key);
    if (!v || v->type == JSON_KIND_NULL)
        return true;
    if (json_value_int64(v, out) != ST_OK || *out < 0) {
        respond_error(ex, 400, NULL, "%s%s must be a whole number >= 0", where, key);
        return false;
    }
    return true;
}

static bool member_double(http_exchange *ex, const json_value *obj, const char *key, const char *where,
                          double *out)
{
    const json_value *v = json_value_get_c(obj, key);
    if (!v || v->type == JSON_KIND_NULL)
        return true;
    if (json_value_double(v, out) != ST_OK) {
        respond_error(ex, 400, NULL, "%s%s must be a number", where, key);
        return false;
    }
    return true;
}

/* The policy a PUT body asks for; 400 answered here when malformed. */
static bool parse_policy(http_exchange *ex, const json_value *body, reg_deployment *want)
{
    static const char *const known[] = { "version", "canary", "percent", "shadow", "sticky_header", "rollback",
                                         NULL };
    static const char *const rule_keys[] = { "max_error_rate_increase", "max_p99_ratio", "window_seconds",
                                             "min_requests", "window_s", NULL };
    if (!check_keys(ex, body, known, "the deployment"))
        return false;
    /* Rule fields left 0 take the registry's defaults. */
    *want = (reg_deployment){ .sticky_header = "" };
    const json_value *version = json_value_get_c(body, "version");
    if (!version || json_value_int64(version, &want->stable) != ST_OK || want->stable < 1) {
        respond_error(ex, 400, NULL, "the deployment needs \"version\": the stable version number (>= 1)");
        return false;
    }
    if (!member_int(ex, body, "canary", "", &want->canary) || !member_int(ex, body, "shadow", "", &want->shadow) ||
        !member_double(ex, body, "percent", "", &want->canary_percent))
        return false;
    const json_value *sticky = json_value_get_c(body, "sticky_header");
    if (sticky && sticky->type != JSON_KIND_NULL) {
        if (sticky->type != JSON_KIND_STRING) {
            respond_error(ex, 400, NULL, "sticky_header must be a header name (a string)");
            return false;
        }
        want->sticky_header = sticky->u.string.ptr;
    }
    const json_value *rule = json_value_get_c(body, "rollback");
    if (rule && rule->type != JSON_KIND_NULL) {
        if (rule->type != JSON_KIND_OBJECT) {
            respond_error(ex, 400, NULL, "rollback must be an object with %s, %s, %s, %s", rule_keys[0],
                          rule_keys[1], rule_keys[2], rule_keys[3]);
            return false;
        }
        if (!check_keys(ex, rule, rule_keys, "rollback") ||
            !member_double(ex, rule, "max_error_rate_increase", "rollback.", &want->rule.max_error_rate_increase) ||
            !member_double(ex, rule, "max_p99_ratio", "rollback.", &want->rule.max_p99_ratio) ||
            !member_int(ex, rule, "window_seconds", "rollback.", &want->rule.window_s) ||
            !member_int(ex, rule, "window_s", "rollback.", &want->rule.window_s) ||
            !member_int(ex, rule, "min_requests", "rollback.", &want->rule.min_requests))
            return false;
        /* The registry reads 0 in a request as "the default"; here an
         * explicit 0 is taken at its word: out of range, or for the p99
         * ratio "off", as the stored rule reads. */
        static const char *const positive[] = { "max_error_rate_increase", "window_seconds", "window_s",
                                                "min_requests" };
        for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++) {
            double d;
            const json_value *v = json_value_get_c(rule, positive[i]);
            if (v && json_value_double(v, &d) == ST_OK && d == 0) {
                respond_error(ex, 400, NULL, "rollback.%s must be above 0 (leave it out for the default)",
                              positive[i]);
                return false;
            }
        }
        const json_value *p99 = json_value_get_c(rule, "max_p99_ratio");
        if (p99 && p99->type == JSON_KIND_NUMBER && want->rule.max_p99_ratio == 0)
            want->rule.max_p99_ratio = REG_P99_OFF;
    }
    return true;
}

static bool put_deployment(sv_admin *a, admin_job *j, st_arena *arena, st_str name)
{
    const json_value *body;
    reg_deployment want, got;
    if (!parse_body(j->ex, j, arena, false, &body) || !parse_policy(j->ex, body, &want))
        return false;
    st_error err = { 0 };
    st_status st = reg_deploy_set(a->reg, name, &want, arena, &got, &err);
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 400);
        return false;
    }
    respond_deployment(j->ex, &got);
    return true;
}

static bool deployment_action(sv_admin *a, admin_job *j, st_arena *arena, st_str name, bool is_promote)
{
    reg_deployment got;
    st_error err = { 0 };
    st_status st;
    if (is_promote) {
        st = reg_deploy_promote(a->reg, name, arena, &got, &err);
    } else {
        const json_value *body;
        static const char *const known[] = { "reason", NULL };
        if (!parse_body(j->ex, j, arena, true, &body) || !check_keys(j->ex, body, known, "the rollback body"))
            return false;
        const json_value *reason = json_value_get_c(body, "reason");
        if (reason && reason->type != JSON_KIND_STRING && reason->type != JSON_KIND_NULL) {
            respond_error(j->ex, 400, NULL, "reason must be a string");
            return false;
        }
        const char *why = reason && reason->type == JSON_KIND_STRING ? reason->u.string.ptr : "manual (api)";
        st = reg_deploy_rollback(a->reg, name, 0, why, arena, &got, &err);
    }
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 409);
        return false;
    }
    respond_deployment(j->ex, &got);
    return true;
}

/* ---- audit ---------------------------------------------------------------------- */

static void get_audit(sv_admin *a, admin_job *j, st_arena *arena)
{
    size_t limit = 100;
    st_str text;
    if (query_get(j, arena, "limit", &text)) {
        int64_t n;
        if (!parse_version(text, &n)) {
            respond_error(j->ex, 400, NULL, "limit must be a whole number >= 1, not '%.*s'",
                          (int)(text.len > 32 ? 32 : text.len), text.ptr);
            return;
        }
        if (n > ADMIN_AUDIT_MAX) {
            respond_error(j->ex, 413, NULL, "limit %lld is over %d records per request", (long long)n,
                          ADMIN_AUDIT_MAX);
            return;
        }
        limit = (size_t)n;
    }
    reg_audit_entry *entries;
    size_t n;
    st_error err = { 0 };
    st_status st = reg_list_audit(a->reg, limit, arena, &entries, &n, &err);
    if (st != ST_OK) {
        respond_reg_error(j->ex, st, &err, 400);
        return;
    }
    st_buf out = { 0 };
    respond_doc(j->ex, 200, reg_json_audit_log(&out, entries, n), &out);
}

/* ---- routing -------------------------------------------------------------------- */

#define MAX_SEGMENTS 6

/* Splits "/a/b/c" into segments; false when a segment is empty or there
 * are too many (no route has them). */
static bool split_path(st_str path, st_str *seg, size_t *n)
{
    *n = 0;
    while (path.len) {
        if (path.ptr[0] != '/' || *n == MAX_SEGMENTS)
            return false;
        path.ptr++;
        path.len--;
        const char *slash = memchr(path.ptr, '/', path.len);
        size_t len = slash ? (size_t)(slash - path.ptr) : path.len;
        if (len == 0)
            return false;
        seg[(*n)++] = st_str_make(path.ptr, len);
        path.ptr += len;
        path.len -= len;
    }
    return true;
}

static void not_found(admin_job *j)
{
    respond_error(j->ex, 404, NULL, "no route /api/v1%.*s; see docs/management-api.md",
                  (int)(j->path.len > 200 ? 200 : j->path.len), j->path.ptr);
}

/* Runs one request; true when it changed the registry. */
static bool run_job(sv_admin *a, admin_job *j, st_arena *arena)
{
    st_str seg[MAX_SEGMENTS];
    size_t n;
    if (!split_path(j->path, seg, &n) || n == 0) {
        not_found(j);
        return false;
    }
    http_exchange *ex = j->ex;
    if (st_str_eq_c(seg[0], "models")) {
        if (n == 1) {
            if (!method_is(j, "GET"))
                respond_405(ex, j->method, "GET, HEAD");
            else
                get_models(a, j, arena);
            return false;
        }
        st_str name = seg[1];
        if (n == 2) {
            if (!method_is(j, "GET"))
                respond_405(ex, j->method, "GET, HEAD");
            else if (check_name(ex, name, false))
                get_model(a, j, arena, name);
            return false;
        }
        if (st_str_eq_c(seg[2], "versions") && n == 3) {
            if (!method_is(j, "POST")) {
                respond_405(ex, j->method, "POST");
                return false;
            }
            return check_name(ex, name, false) && push_version(a, j, arena, name);
        }
        if (st_str_eq_c(seg[2], "versions") && n == 4) {
            bool is_get = method_is(j, "GET"), is_delete = method_is(j, "DELETE");
            if (!is_get && !is_delete) {
                respond_405(ex, j->method, "GET, HEAD, DELETE");
                return false;
            }
            int64_t version;
            if (!check_name(ex, name, false))
                return false;
            if (!parse_version(seg[3], &version)) {
                respond_error(ex, 400, NULL, "'%.*s' is not a version number (1, 2, ...)",
                              (int)(seg[3].len > 32 ? 32 : seg[3].len), seg[3].ptr);
                return false;
            }
            if (is_get) {
                get_version(a, j, arena, name, version);
                return false;
            }
            return delete_version(a, j, arena, name, version);
        }
        if (st_str_eq_c(seg[2], "aliases") && n == 4) {
            bool is_put = method_is(j, "PUT"), is_delete = method_is(j, "DELETE");
            if (!is_put && !is_delete) {
                respond_405(ex, j->method, "PUT, DELETE");
                return false;
            }
            if (!check_name(ex, name, false) || !check_name(ex, seg[3], true))
                return false;
            return is_put ? put_alias(a, j, arena, name, seg[3]) : delete_alias(a, j, name, seg[3]);
        }
        not_found(j);
        return false;
    }
    if (st_str_eq_c(seg[0], "deployments")) {
        if (n == 1) {
            if (!method_is(j, "GET"))
                respond_405(ex, j->method, "GET, HEAD");
            else
                get_deployments(a, j, arena);
            return false;
        }
        st_str name = seg[1];
        if (n == 2) {
            bool is_get = method_is(j, "GET"), is_put = method_is(j, "PUT"), is_delete = method_is(j, "DELETE");
            if (!is_get && !is_put && !is_delete) {
                respond_405(ex, j->method, "GET, HEAD, PUT, DELETE");
                return false;
            }
            if (!check_name(ex, name, false))
                return false;
            if (is_put)
                return put_deployment(a, j, arena, name);
            if (is_get) {
                reg_deployment d;
                st_error err = { 0 };
                st_status st = reg_deploy_get(a->reg, name, arena, &d, &err);
                if (st != ST_OK)
                    respond_reg_error(ex, st, &err, 400);
                else
                    respond_deployment(ex, &d);
                return false;
            }
            st_error err = { 0 };
            st_status st = reg_deploy_remove(a->reg, name, &err);
            if (st != ST_OK) {
                respond_reg_error(ex, st, &err, 400);
                return false;
            }
            respond_removed(ex, name, NULL, (st_str){ 0 }, 0);
            return true;
        }
        bool is_promote = st_str_eq_c(seg[2], "promote");
        if (n == 3 && (is_promote || st_str_eq_c(seg[2], "rollback"))) {
            if (!method_is(j, "POST")) {
                respond_405(ex, j->method, "POST");
                return false;
            }
            return check_name(ex, name, false) && deployment_action(a, j, arena, name, is_promote);
        }
        not_found(j);
        return false;
    }
    if (st_str_eq_c(seg[0], "audit") && n == 1) {
        if (!method_is(j, "GET"))
            respond_405(ex, j->method, "GET, HEAD");
        else
            get_audit(a, j, arena);
        return false;
    }
    not_found(j);
    return false;
}

static void *admin_main(void *arg)
{
    sv_admin *a = arg;
    answering = a;
    st_arena arena;
    st_arena_init(&arena, 16 * 1024);
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->head && !a->is_stopping)
            pthread_cond_wait(&a->cv, &a->mu);
        admin_job *j = a->head;
        if (!j)
            break; /* stopping, and everything queued is answered */
        a->head = j->next;
        if (!a->head)
            a->tail = NULL;
        a->queued--;
        pthread_mutex_unlock(&a->mu);
        if (run_job(a, j, &arena) && a->manager)
            sv_manager_sync_now(a->manager);
        st_arena_reset(&arena);
        st_free(j);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    st_arena_free(&arena);
    return NULL;
}

/* ---- the token ------------------------------------------------------------------- */

/* Reads a token file: whitespace around it trimmed, >= SV_KEY_MIN_BYTES. */
static st_status read_token(const char *path, bool is_home_file, uint8_t digest[SV_DIGEST_BYTES], st_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ELOOP)
        fd = open(path, O_RDONLY | O_CLOEXEC); /* a mounted secret is often a symlink */
    if (fd < 0)
        return st_fail(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO, "admin token file %s: %s", path,
                       strerror(errno));
    struct stat sb;
    st_status st = ST_OK;
    uint8_t buf[TOKEN_FILE_MAX_BYTES + 1];
    ssize_t n = 0;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = st_fail(err, ST_EINVAL, "admin token file %s is not a regular file", path);
        goto done;
    }
    if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        if (is_home_file) {
            st = st_fail(err, ST_EINVAL, "admin token file %s can be read by group or others (mode %03o): run "
                         "chmod 600 %s", path, (unsigned)(sb.st_mode & 0777), path);
            goto done;
        }
        ST_LOG_WARN("admin token file %s can be read by group or others (mode %03o); chmod 600 %s keeps it "
                    "private", path, (unsigned)(sb.st_mode & 0777), path);
    }
    do
        n = read(fd, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        st = st_fail(err, ST_EIO, "cannot read admin token file %s: %s", path, strerror(errno));
        goto done;
    }
    if (n > TOKEN_FILE_MAX_BYTES) {
        st = st_fail(err, ST_EINVAL, "admin token file %s is over %d bytes; it holds one token", path,
                     TOKEN_FILE_MAX_BYTES);
        goto done;
    }
    size_t a = 0, b = (size_t)n;
    while (a < b && is_space(buf[a]))
        a++;
    while (b > a && is_space(buf[b - 1]))
        b--;
    for (size_t i = a; i < b; i++) {
        if (buf[i] < 0x21 || buf[i] == 0x7f) {
            st = st_fail(err, ST_EINVAL, "admin token file %s: the token has a space or control character; it "
                         "is sent in an Authorization header", path);
            goto done;
        }
    }
    if (b - a < SV_KEY_MIN_BYTES) {
        st = st_fail(err, ST_EINVAL, "admin token file %s: the token has %zu bytes, at least %d are needed "
                     "(make one with: openssl rand -hex 32)", path, b - a, SV_KEY_MIN_BYTES);
        goto done;
    }
    sv_digest(buf + a, b - a, digest);
done:
    memset(buf, 0, sizeof buf);
    close(fd);
    return st;
}

/* Makes <home>/admin.token: 32 random bytes as 64 hex digits, mode 0600,
 * never overwriting (another server may have just made it: EEXIST is
 * ST_EEXIST and the caller reads that one). */
static st_status make_token(const char *path, st_error *err)
{
    uint8_t raw[32];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return st_fail(err, ST_EIO, "cannot get random bytes for the admin token: %s", strerror(errno));
        got += (size_t)n;
    }
    char text[65 + 1];
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        text[2 * i] = hex[raw[i] >> 4];
        text[2 * i + 1] = hex[raw[i] & 15];
    }
    text[64] = '\n';
    memset(raw, 0, sizeof raw);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        memset(text, 0, sizeof text);
        if (errno == EEXIST)
            return ST_EEXIST;
        return st_fail(err, ST_EIO, "cannot create the admin token file %s: %s", path, strerror(errno));
    }
    st_status st = ST_OK;
    if (fchmod(fd, 0600) != 0 || write(fd, text, 65) != 65 || fsync(fd) != 0)
        st = st_fail(err, ST_EIO, "cannot write the admin token file %s: %s", path, strerror(errno));
    memset(text, 0, sizeof text);
    close(fd);
    if (st != ST_OK)
        unlink(path);
    return st;
}

static st_status load_token(const sv_admin_options *opt, uint8_t digest[SV_DIGEST_BYTES], st_error *err)
{
    if (opt->token_file)
        return read_token(opt->token_file, false, digest, err);
    char path[REG_PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/admin.token", opt->home) >= sizeof path)
        return st_fail(err, ST_EINVAL, "the home path is too long: %s", opt->home);
    st_status st = read_token(path, true, digest, err);
    if (st != ST_ENOTFOUND)
        return st;
    st = make_token(path, err);
    if (st == ST_OK)
        ST_LOG_INFO("management API: made a new admin token in %s (mode 0600); send it as "
                    "'Authorization: Bearer TOKEN'", path);
    if (st != ST_OK && st != ST_EEXIST)
        return st;
    return read_token(path, true, digest, err);
}

/* ---- door ----------------------------------------------------------------------- */

st_status sv_admin_start(const sv_admin_options *opt, sv_admin **out, st_error *err)
{
    *out = NULL;
    sv_admin *a = st_calloc(1, sizeof *a);
    if (!a)
        return st_fail(err, ST_ENOMEM, "out of memory");
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->manager = opt->manager;
    /* The registry first: it makes the home the token goes in. */
    st_status st = reg_open(opt->home, REG_OPEN_CREATE, &a->reg, err);
    if (st == ST_OK)
        st = load_token(opt, a->token_digest, err);
    if (st != ST_OK)
        goto fail;
    reg_set_actor(a->reg, "api");
    if (pthread_create(&a->thread, NULL, admin_main, a) != 0) {
        st = st_fail(err, ST_EIO, "cannot start the management API thread");
        goto fail;
    }
    a->has_thread = true;
    ST_LOG_INFO("management API on /api/v1 (registry %s, token %s)", reg_home(a->reg),
                opt->token_file ? opt->token_file : "in admin.token");
    *out = a;
    return ST_OK;
fail:
    sv_admin_free(a);
    return st;
}

static void handle(sv_admin *a, http_exchange *ex, const http_request *req, st_str rest);

void sv_admin_handle(sv_admin *a, http_exchange *ex, const http_request *req, st_str rest)
{
    answering = a;
    handle(a, ex, req, rest);
    answering = NULL;
}

static void handle(sv_admin *a, http_exchange *ex, const http_request *req, st_str rest)
{
    st_str token;
    if (!sv_bearer_token(req, &token)) {
        respond_error(ex, 401, www_auth, "the management API needs 'Authorization: Bearer TOKEN' (the token is "
                                         "in admin.token in the Stratus home, or the --admin-token-file)");
        return;
    }
    uint8_t digest[SV_DIGEST_BYTES];
    sv_digest(token.ptr, token.len, digest);
    if (!sv_digest_eq(digest, a->token_digest)) {
        static const char bad[] = "WWW-Authenticate: Bearer realm=\"stratus\", error=\"invalid_token\"\r\n";
        respond_error(ex, 401, bad, "wrong admin token");
        return;
    }
    /* One block: the job, then method, path, query and body. */
    size_t size = sizeof(admin_job), add;
    const size_t parts[] = { req->method.len, rest.len, req->query.len, req->body_len };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (st_add_overflow(size, parts[i], &add)) {
            respond_error(ex, 413, NULL, "request too large");
            return;
        }
        size = add;
    }
    admin_job *j = st_malloc(size);
    if (!j) {
        respond_error(ex, 503, "Retry-After: 1\r\n", "out of memory for a request of %zu bytes", size);
        return;
    }
    char *p = (char *)(j + 1);
    *j = (admin_job){ .ex = ex };
    const st_str src[] = { req->method, rest, req->query };
    st_str *dst[] = { &j->method, &j->path, &j->query };
    for (size_t i = 0; i < 3; i++) {
        if (src[i].len)
            memcpy(p, src[i].ptr, src[i].len);
        *dst[i] = st_str_make(p, src[i].len);
        p += src[i].len;
    }
    if (req->body_len)
        memcpy(p, req->body, req->body_len);
    j->body = (const uint8_t *)p;
    j->body_len = req->body_len;

    pthread_mutex_lock(&a->mu);
    bool is_full = a->queued >= ADMIN_QUEUE_MAX || a->is_stopping;
    if (!is_full) {
        if (a->tail)
            a->tail->next = j;
        else
            a->head = j;
        a->tail = j;
        a->queued++;
        pthread_cond_signal(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    if (is_full) {
        st_free(j);
        respond_error(ex, 503, "Retry-After: 1\r\n", "the management API has %d requests queued; retry later",
                      ADMIN_QUEUE_MAX);
    }
}

void sv_admin_free(sv_admin *a)
{
    if (!a)
        return;
    if (a->has_thread) {
        pthread_mutex_lock(&a->mu);
        a->is_stopping = true;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    reg_close(a->reg);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    memset(a->token_digest, 0, sizeof a->token_digest);
    st_free(a);
}
