/* deploy.c - deployments: one traffic policy per model (stable, canary with
 * a share of requests, shadow, sticky header, automatic rollback rule),
 * with promotion, rollback and removal.  Every change is one write
 * transaction that re-reads the current policy under the lock, bumps its
 * revision and records before/after in the audit log. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "registry/reg_int.h"

#define OOM(err) st_fail(err, ST_ENOMEM, "out of memory")

reg_rollback_rule reg_rollback_rule_default(void)
{
    return (reg_rollback_rule){
        .max_error_rate_increase = 0.05,
        .max_p99_ratio = 2.0,
        .window_s = 60,
        .min_requests = 20,
    };
}

/* ---- checks ------------------------------------------------------------- */

/* RFC 9110 tchar: what a header field name is made of. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static st_status check_header(const char *header, st_error *err)
{
    size_t len = strlen(header);
    if (len > REG_HEADER_MAX)
        return st_fail(err, ST_EINVAL, "sticky header name is %zu bytes; at most %d are allowed",
                       len, REG_HEADER_MAX);
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)header[i]))
            return st_fail(err, ST_EINVAL,
                           "sticky header '%.*s' is not a valid HTTP header name (letters, digits "
                           "and !#$%%&'*+-.^_`|~ only), e.g. X-User-Id",
                           (int)len, header);
    return ST_OK;
}

/* Fills zero fields of `rule` with the defaults and checks the others. */
static st_status check_rule(reg_rollback_rule *rule, st_error *err)
{
    reg_rollback_rule def = reg_rollback_rule_default();
    double mei = rule->max_error_rate_increase, p99 = rule->max_p99_ratio;
    if (mei == 0)
        mei = def.max_error_rate_increase;
    if (!(mei > 0 && mei <= 1))
        return st_fail(err, ST_EINVAL,
                       "max error rate increase must be more than 0 and at most 1 (a fraction: "
                       "0.05 is 5 points), got %g",
                       rule->max_error_rate_increase);
    if (p99 == 0)
        p99 = def.max_p99_ratio;
    else if (p99 == REG_P99_OFF)
        p99 = 0;
    else if (!(p99 >= 1 && p99 <= REG_P99_RATIO_MAX))
        return st_fail(err, ST_EINVAL,
                       "max p99 ratio must be at least 1 and at most %g (or off), got %g",
                       REG_P99_RATIO_MAX, rule->max_p99_ratio);
    int64_t window_s = rule->window_s ? rule->window_s : def.window_s;
    if (window_s < 1 || window_s > REG_WINDOW_MAX_S)
        return st_fail(err, ST_EINVAL, "rollback window must be 1 to %d seconds, got %lld",
                       REG_WINDOW_MAX_S, (long long)rule->window_s);
    int64_t min_requests = rule->min_requests ? rule->min_requests : def.min_requests;
    if (min_requests < 1 || min_requests > (long long)REG_MIN_REQUESTS_MAX)
        return st_fail(err, ST_EINVAL, "min requests must be 1 to %lld, got %lld",
                       (long long)REG_MIN_REQUESTS_MAX, (long long)rule->min_requests);
    *rule = (reg_rollback_rule){ mei, p99, window_s, min_requests };
    return ST_OK;
}

/* Checks everything in `want` that needs no database. */
static st_status check_want(const reg_deployment *want, st_error *err)
{
    if (want->stable <= 0)
        return st_fail(err, ST_EINVAL, "a deployment needs a stable version (a version number > 0)");
    if (want->canary < 0 || want->shadow < 0)
        return st_fail(err, ST_EINVAL, "version numbers are positive");
    if (want->canary == want->stable)
        return st_fail(err, ST_EINVAL,
                       "the canary must differ from the stable version (both are %lld)",
                       (long long)want->stable);
    if (want->shadow == want->stable)
        return st_fail(err, ST_EINVAL,
                       "the shadow must differ from the stable version (both are %lld)",
                       (long long)want->stable);
    if (want->shadow && want->shadow == want->canary)
        return st_fail(err, ST_EINVAL,
                       "the shadow must differ from the canary (both are %lld): the canary "
                       "already answers its share of requests",
                       (long long)want->canary);
    double p = want->canary_percent;
    if (want->canary && !(p > 0 && p <= 100))
        return st_fail(err, ST_EINVAL,
                       "a canary needs a percent of requests more than 0 and at most 100, got %g", p);
    if (!want->canary && p != 0)
        return st_fail(err, ST_EINVAL,
                       "a canary percent (%g) was given without a canary version", p);
    return want->sticky_header && *want->sticky_header ? check_header(want->sticky_header, err)
                                                       : ST_OK;
}

/* ST_ENOTFOUND naming "model@version" and its role when it is missing. */
static st_status check_version(reg_store *r, int64_t model_id, st_str name, int64_t version,
                               const char *role, st_error *err)
{
    if (!version)
        return ST_OK;
    int64_t id;
    st_status s = reg_version_id(r, model_id, name, version, &id, err);
    if (s == ST_ENOTFOUND)
        return st_fail(err, s, "the %s %.*s@%lld does not exist; 'stratus models %.*s' lists the versions",
                       role, ST_STR_FMT(name), (long long)version, ST_STR_FMT(name));
    return s;
}

/* ---- rows ---------------------------------------------------------------- */

#define SELECT_DEPLOYMENT                                                                    \
    "SELECT m.name, d.stable, d.canary, d.canary_percent, d.shadow, d.sticky_header, "       \
    "d.max_error_rate_increase, d.max_p99_ratio, d.window_s, d.min_requests, "               \
    "d.previous_stable, d.state, d.reason, d.updated_at, d.updated_by, d.revision "          \
    "FROM deployments d JOIN models m ON m.id = d.model_id "

static bool read_row(sqlite3_stmt *st, st_arena *a, reg_deployment *d)
{
    *d = (reg_deployment){
        .model = reg_col_dup(st, 0, a),
        .stable = sqlite3_column_int64(st, 1),
        .canary = sqlite3_column_int64(st, 2),
        .canary_percent = sqlite3_column_double(st, 3),
        .shadow = sqlite3_column_int64(st, 4),
        .sticky_header = reg_col_dup(st, 5, a),
        .rule = {
            .max_error_rate_increase = sqlite3_column_double(st, 6),
            .max_p99_ratio = sqlite3_column_double(st, 7),
            .window_s = sqlite3_column_int64(st, 8),
            .min_requests = sqlite3_column_int64(st, 9),
        },
        .previous_stable = sqlite3_column_int64(st, 10),
        .state = reg_col_dup(st, 11, a),
        .reason = reg_col_dup(st, 12, a),
        .updated_at = reg_col_dup(st, 13, a),
        .updated_by = reg_col_dup(st, 14, a),
        .revision = sqlite3_column_int64(st, 15),
    };
    return d->model && d->sticky_header && d->state && d->reason && d->updated_at && d->updated_by;
}

/* The policy of model `model_id` into *d (memory in `a`); *found false
 * when it has none. */
static st_status load(reg_store *r, int64_t model_id, st_arena *a, reg_deployment *d,
                      bool *found, st_error *err)
{
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r, SELECT_DEPLOYMENT "WHERE d.model_id = ?", &st, err);
    if (s != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, model_id);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    bool is_oom = *found && !read_row(st, a, d);
    sqlite3_finalize(st);
    if (is_oom)
        return OOM(err);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? ST_OK : reg_db_fail(r, rc, "reading a deployment", err);
}

static st_status store(reg_store *r, int64_t model_id, const reg_deployment *d, st_error *err)
{
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r,
        "INSERT OR REPLACE INTO deployments(model_id, stable, canary, canary_percent, shadow, "
        "sticky_header, max_error_rate_increase, max_p99_ratio, window_s, min_requests, "
        "previous_stable, state, reason, updated_at, updated_by, revision) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &st, err);
    if (s != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_int64(st, 2, d->stable);
    sqlite3_bind_int64(st, 3, d->canary);
    sqlite3_bind_double(st, 4, d->canary_percent);
    sqlite3_bind_int64(st, 5, d->shadow);
    reg_bind_cstr(st, 6, d->sticky_header ? d->sticky_header : "");
    sqlite3_bind_double(st, 7, d->rule.max_error_rate_increase);
    sqlite3_bind_double(st, 8, d->rule.max_p99_ratio);
    sqlite3_bind_int64(st, 9, d->rule.window_s);
    sqlite3_bind_int64(st, 10, d->rule.min_requests);
    sqlite3_bind_int64(st, 11, d->previous_stable);
    reg_bind_cstr(st, 12, d->state);
    reg_bind_cstr(st, 13, d->reason ? d->reason : "");
    reg_bind_cstr(st, 14, d->updated_at);
    reg_bind_cstr(st, 15, d->updated_by);
    sqlite3_bind_int64(st, 16, d->revision);
    return reg_db_run(r, st, "saving the deployment", err);
}

static st_status delete_row(reg_store *r, int64_t model_id, st_error *err)
{
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r, "DELETE FROM deployments WHERE model_id = ?", &st, err);
    if (s != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, model_id);
    return reg_db_run(r, st, "removing the deployment", err);
}

/* Audit record with the policies before and after (either may be NULL). */
static st_status audit(reg_store *r, const char *action, st_str name, const reg_deployment *before,
                       const reg_deployment *after, st_error *err)
{
    st_buf b = { 0 }, a = { 0 };
    st_status s = ST_OK;
    if ((before && (reg_json_deployment(&b, before) != ST_OK || !st_buf_cstr(&b))) ||
        (after && (reg_json_deployment(&a, after) != ST_OK || !st_buf_cstr(&a))))
        s = OOM(err);
    else
        s = reg_audit(r, action, name, before ? (const char *)b.data : NULL,
                      after ? (const char *)a.data : NULL, err);
    st_buf_free(&b);
    st_buf_free(&a);
    return s;
}

/* ---- one change ------------------------------------------------------------
 * begin() takes the write lock and reads the model and its policy; save()
 * stamps and stores the next policy, audits it, reads it back into `out`
 * and commits.  On any failure the transaction is rolled back. */

typedef struct change {
    st_str name;
    int64_t model_id;
    bool found;          /* the model has a policy */
    reg_deployment cur;  /* it, when found */
    st_arena scratch;    /* cur's strings and the stamps */
    char now[32];
    char who[80];
} change;

static st_status begin(reg_store *r, st_str name, change *c, st_error *err)
{
    *c = (change){ .name = name };
    st_arena_init(&c->scratch, 0);
    st_status s = reg_check_name(name, false, err);
    if (s != ST_OK || (s = reg_tx_write(r, err)) != ST_OK)
        return s;
    if ((s = reg_model_id(r, name, &c->model_id, err)) != ST_OK ||
        (s = load(r, c->model_id, &c->scratch, &c->cur, &c->found, err)) != ST_OK) {
        reg_tx_rollback(r);
        return s;
    }
    reg_now(c->now);
    reg_actor(r, c->who, sizeof c->who);
    return ST_OK;
}

static st_status no_policy(const change *c, st_error *err)
{
    return st_fail(err, ST_ENOTFOUND,
                   "model '%.*s' has no deployment; create one with 'stratus deploy %.*s --version N'",
                   ST_STR_FMT(c->name), ST_STR_FMT(c->name));
}

static st_status save(reg_store *r, change *c, const char *action, reg_deployment *next,
                      st_arena *arena, reg_deployment *out, st_error *err)
{
    next->updated_at = c->now;
    next->updated_by = c->who;
    next->revision = c->found ? c->cur.revision + 1 : 1;
    st_status s;
    bool found;
    if ((s = store(r, c->model_id, next, err)) != ST_OK ||
        (s = load(r, c->model_id, &c->scratch, next, &found, err)) != ST_OK ||
        (s = audit(r, action, c->name, c->found ? &c->cur : NULL, next, err)) != ST_OK ||
        (out && (s = load(r, c->model_id, arena, out, &found, err)) != ST_OK)) {
        reg_tx_rollback(r);
        return s;
    }
    return reg_tx_commit(r, err);
}

static void end(change *c) { st_arena_free(&c->scratch); }

/* ---- the operations ------------------------------------------------------- */

st_status reg_deploy_set(reg_store *r, st_str name, const reg_deployment *want,
                         st_arena *arena, reg_deployment *out, st_error *err)
{
    reg_deployment next = {
        .stable = want->stable,
        .canary = want->canary,
        .canary_percent = want->canary ? want->canary_percent : 0,
        .shadow = want->shadow,
        .sticky_header = want->sticky_header ? want->sticky_header : "",
        .rule = want->rule,
        .state = want->canary ? "canary" : "stable",
        .reason = "",
    };
    st_status s = check_want(want, err);
    if (s != ST_OK || (s = check_rule(&next.rule, err)) != ST_OK)
        return s;
    change c;
    if ((s = begin(r, name, &c, err)) != ST_OK)
        goto done;
    if ((s = check_version(r, c.model_id, name, want->stable, "stable version", err)) != ST_OK ||
        (s = check_version(r, c.model_id, name, want->canary, "canary", err)) != ST_OK ||
        (s = check_version(r, c.model_id, name, want->shadow, "shadow", err)) != ST_OK) {
        reg_tx_rollback(r);
        goto done;
    }
    if (c.found)
        next.previous_stable = c.cur.stable != want->stable ? c.cur.stable : c.cur.previous_stable;
    s = save(r, &c, "deploy", &next, arena, out, err);
done:
    end(&c);
    return s;
}

st_status reg_deploy_promote(reg_store *r, st_str name, st_arena *arena, reg_deployment *out,
                             st_error *err)
{
    change c;
    st_status s = begin(r, name, &c, err);
    if (s != ST_OK)
        goto done;
    if (!c.found || !c.cur.canary) {
        s = c.found ? st_fail(err, ST_EINVAL,
                              "'%.*s' has no canary to promote (stable is %lld); set one with "
                              "'stratus deploy %.*s --version %lld --canary N --percent P'",
                              ST_STR_FMT(name), (long long)c.cur.stable, ST_STR_FMT(name),
                              (long long)c.cur.stable)
                    : no_policy(&c, err);
        reg_tx_rollback(r);
        goto done;
    }
    reg_deployment next = c.cur;
    next.previous_stable = c.cur.stable;
    next.stable = c.cur.canary;
    next.canary = 0;
    next.canary_percent = 0;
    next.state = "stable";
    next.reason = "";
    s = save(r, &c, "promote", &next, arena, out, err);
done:
    end(&c);
    return s;
}

/* A reason is shown to people in one line: bounded, no control characters. */
static st_status check_reason(const char *reason, st_error *err)
{
    size_t len = reason ? strlen(reason) : 0;
    if (len > REG_VALUE_MAX)
        return st_fail(err, ST_EINVAL, "the rollback reason is %zu bytes; at most %d are allowed",
                       len, REG_VALUE_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)reason[i] < 0x20 || reason[i] == 0x7f)
            return st_fail(err, ST_EINVAL, "the rollback reason contains a control character");
    return ST_OK;
}

st_status reg_deploy_rollback(reg_store *r, st_str name, int64_t only_canary, const char *reason,
                              st_arena *arena, reg_deployment *out, st_error *err)
{
    st_status s = check_reason(reason, err);
    if (s != ST_OK)
        return s;
    change c;
    s = begin(r, name, &c, err);
    if (s != ST_OK)
        goto done;
    if (only_canary > 0 && (!c.found || c.cur.canary != only_canary)) {
        /* Someone (another server, a person) got there first. */
        bool found = false;
        if (out) {
            *out = (reg_deployment){ .model = "", .sticky_header = "", .state = "", .reason = "",
                                     .updated_at = "", .updated_by = "" };
            if ((s = load(r, c.model_id, arena, out, &found, err)) == ST_OK && !found &&
                !(out->model = st_arena_strndup(arena, name.ptr, name.len)))
                s = OOM(err);
        }
        reg_tx_rollback(r);
        goto done;
    }
    if (!c.found) {
        s = no_policy(&c, err);
        reg_tx_rollback(r);
        goto done;
    }
    reg_deployment next = c.cur;
    next.state = "rolled_back";
    next.reason = reason ? reason : "";
    if (c.cur.canary) {
        next.canary = 0;
        next.canary_percent = 0;
    } else if (c.cur.previous_stable) {
        if ((s = check_version(r, c.model_id, name, c.cur.previous_stable, "previous stable version",
                               err)) != ST_OK) {
            reg_tx_rollback(r);
            goto done;
        }
        next.stable = c.cur.previous_stable;
        next.previous_stable = 0;
        if (next.shadow == next.stable)
            next.shadow = 0; /* a version does not shadow itself */
    } else {
        s = st_fail(err, ST_EINVAL,
                    "nothing to roll back: '%.*s' has no canary and no previous stable version "
                    "(stable is %lld)",
                    ST_STR_FMT(name), (long long)c.cur.stable);
        reg_tx_rollback(r);
        goto done;
    }
    s = save(r, &c, "rollback", &next, arena, out, err);
done:
    end(&c);
    return s;
}

st_status reg_deploy_remove(reg_store *r, st_str name, st_error *err)
{
    change c;
    st_status s = begin(r, name, &c, err);
    if (s != ST_OK)
        goto done;
    if (!c.found) {
        s = no_policy(&c, err);
    } else if ((s = delete_row(r, c.model_id, err)) == ST_OK &&
               (s = audit(r, "undeploy", name, &c.cur, NULL, err)) == ST_OK) {
        s = reg_tx_commit(r, err);
        goto done;
    }
    reg_tx_rollback(r);
done:
    end(&c);
    return s;
}

st_status reg_deploy_get(reg_store *r, st_str name, st_arena *arena, reg_deployment *out,
                         st_error *err)
{
    st_status s = reg_check_name(name, false, err);
    if (s != ST_OK || (s = reg_tx_read(r, err)) != ST_OK)
        return s;
    int64_t model_id;
    bool found = false;
    if ((s = reg_model_id(r, name, &model_id, err)) == ST_OK &&
        (s = load(r, model_id, arena, out, &found, err)) == ST_OK && !found)
        s = st_fail(err, ST_ENOTFOUND,
                    "model '%.*s' has no deployment; create one with 'stratus deploy %.*s --version N'",
                    ST_STR_FMT(name), ST_STR_FMT(name));
    reg_tx_rollback(r);
    return s;
}

static bool row_deployment(sqlite3_stmt *st, void *items, size_t i, st_arena *arena)
{
    return read_row(st, arena, (reg_deployment *)items + i);
}

st_status reg_deploy_list(reg_store *r, st_arena *arena, reg_deployment **out, size_t *n,
                          st_error *err)
{
    *out = NULL;
    *n = 0;
    st_status s = reg_tx_read(r, err);
    if (s != ST_OK)
        return s;
    void *items = NULL;
    s = reg_db_collect(r, SELECT_DEPLOYMENT "WHERE d.model_id > ? ORDER BY m.name", 0,
                       sizeof(reg_deployment), row_deployment, arena, &items, n, err);
    reg_tx_rollback(r);
    *out = items;
    return s;
}

/* ---- removing a version ------------------------------------------------------ */

st_status reg_deploy_release_version(reg_store *r, int64_t model_id, st_str name,
                                     int64_t version, bool force, st_error *err)
{
    change c = { .name = name, .model_id = model_id };
    st_arena_init(&c.scratch, 0);
    st_status s = load(r, model_id, &c.scratch, &c.cur, &c.found, err);
    if (s != ST_OK || !c.found)
        goto done;
    const reg_deployment *d = &c.cur;
    const char *role = d->stable == version   ? "stable version"
                       : d->canary == version ? "canary"
                       : d->shadow == version ? "shadow"
                                              : NULL;
    if (role && !force) {
        const char *effect = d->stable == version   ? "removes the deployment"
                             : d->canary == version ? "sends the canary's traffic back to the stable version"
                                                    : "stops the shadow";
        s = st_fail(err, ST_EINVAL,
                    "the deployment of '%.*s' uses %.*s@%lld as its %s; change the deployment first "
                    "('stratus deploy %.*s ...'), or remove the version with --force, which %s",
                    ST_STR_FMT(name), ST_STR_FMT(name), (long long)version, role, ST_STR_FMT(name),
                    effect);
        goto done;
    }
    reg_now(c.now);
    reg_actor(r, c.who, sizeof c.who);
    if (d->stable == version) {
        if ((s = delete_row(r, model_id, err)) == ST_OK)
            s = audit(r, "undeploy", name, d, NULL, err);
        goto done;
    }
    reg_deployment next = *d;
    if (next.canary == version) {
        next.canary = 0;
        next.canary_percent = 0;
        next.state = "stable";
    }
    if (next.shadow == version)
        next.shadow = 0;
    if (next.previous_stable == version)
        next.previous_stable = 0;
    if (next.canary == d->canary && next.shadow == d->shadow && next.previous_stable == d->previous_stable)
        goto done;
    next.reason = "";
    next.updated_at = c.now;
    next.updated_by = c.who;
    next.revision = d->revision + 1;
    if ((s = store(r, model_id, &next, err)) == ST_OK)
        s = audit(r, "deploy", name, d, &next, err);
done:
    end(&c);
    return s;
}
