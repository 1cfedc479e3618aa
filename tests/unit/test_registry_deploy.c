/* test_registry_deploy.c - deployments in the registry: every validation,
 * promotion, both kinds of rollback (and the race of two servers rolling
 * back one canary), rm refused and forced, alias removal, the generation
 * counter seen from two handles, the audit log, the actor, migration from
 * schema 2 and the JSON of a policy and of an audit record. */
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"

#include "base/alloc.h"
#include "json/json.h"
#include "registry/reg_int.h"
#include "registry/registry.h"

/* ---- fixture ------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    char home[128];
    reg_store *reg;
    st_arena arena;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/st_deploy_XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->home, sizeof f->home, "%s/home", f->dir);
    st_error err = { 0 };
    if (reg_open(f->home, REG_OPEN_CREATE, &f->reg, &err) != ST_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    st_arena_init(&f->arena, 0);
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture *f = *state;
    reg_close(f->reg);
    st_arena_free(&f->arena);
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Pushes `n` versions of `name`, each a different small file (the
 * registry stores bytes; checking that they load is the CLI's job). */
static void push_versions(fixture *f, const char *name, int n)
{
    for (int i = 0; i < n; i++) {
        char path[192], text[64];
        snprintf(path, sizeof path, "%s/%s-%d.onnx", f->dir, name, i);
        int len = snprintf(text, sizeof text, "%s bytes %d", name, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, (size_t)len), len);
        close(fd);
        reg_push_request req = { .name = name, .model_path = path, .format = "onnx" };
        int64_t version;
        st_error err = { 0 };
        st_status s = reg_push(f->reg, &req, &version, &err);
        if (s != ST_OK)
            fprintf(stderr, "push: %s\n", err.msg);
        assert_int_equal(s, ST_OK);
    }
}

static st_status deploy(fixture *f, const char *name, reg_deployment want, reg_deployment *out,
                        st_error *err)
{
    return reg_deploy_set(f->reg, st_str_c(name), &want, &f->arena, out, err);
}

static size_t audit_count(fixture *f)
{
    reg_audit_entry *e;
    size_t n;
    assert_int_equal(reg_list_audit(f->reg, 0, &f->arena, &e, &n, NULL), ST_OK);
    return n;
}

static reg_audit_entry last_audit(fixture *f)
{
    reg_audit_entry *e;
    size_t n;
    assert_int_equal(reg_list_audit(f->reg, 1, &f->arena, &e, &n, NULL), ST_OK);
    assert_int_equal(n, 1);
    return e[0];
}

static int64_t generation(reg_store *r)
{
    int64_t g = -1;
    assert_int_equal(reg_generation(r, &g, NULL), ST_OK);
    return g;
}

static reg_deployment get(fixture *f, const char *name)
{
    reg_deployment d;
    st_error err = { 0 };
    assert_int_equal(reg_deploy_get(f->reg, st_str_c(name), &f->arena, &d, &err), ST_OK);
    return d;
}

/* ---- validation -------------------------------------------------------------- */

static void test_validation(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 3);
    size_t audits = audit_count(f);
    int64_t gen = generation(f->reg);
    char long_header[REG_HEADER_MAX + 2];
    memset(long_header, 'h', sizeof long_header - 1);
    long_header[sizeof long_header - 1] = '\0';
    const struct {
        reg_deployment want;
        st_status code;
        const char *says;
    } cases[] = {
        { { .stable = 0 }, ST_EINVAL, "stable version" },
        { { .stable = -1 }, ST_EINVAL, "stable version" },
        { { .stable = 9 }, ST_ENOTFOUND, "churn@9" },
        { { .stable = 1, .canary = 9, .canary_percent = 10 }, ST_ENOTFOUND, "churn@9" },
        { { .stable = 1, .shadow = 8 }, ST_ENOTFOUND, "churn@8" },
        { { .stable = 1, .canary = 1, .canary_percent = 10 }, ST_EINVAL, "canary must differ" },
        { { .stable = 1, .shadow = 1 }, ST_EINVAL, "shadow must differ" },
        { { .stable = 1, .canary = 2, .canary_percent = 5, .shadow = 2 }, ST_EINVAL, "differ from the canary" },
        { { .stable = 1, .canary = 2 }, ST_EINVAL, "percent" },
        { { .stable = 1, .canary = 2, .canary_percent = 100.5 }, ST_EINVAL, "percent" },
        { { .stable = 1, .canary = 2, .canary_percent = -3 }, ST_EINVAL, "percent" },
        { { .stable = 1, .canary = 2, .canary_percent = NAN }, ST_EINVAL, "percent" },
        { { .stable = 1, .canary_percent = 10 }, ST_EINVAL, "without a canary" },
        { { .stable = 1, .sticky_header = "X User" }, ST_EINVAL, "header" },
        { { .stable = 1, .sticky_header = "X-User:" }, ST_EINVAL, "header" },
        { { .stable = 1, .sticky_header = "X-\xc3\xa9" }, ST_EINVAL, "header" },
        { { .stable = 1, .sticky_header = long_header }, ST_EINVAL, "bytes" },
        { { .stable = 1, .rule.max_error_rate_increase = 1.5 }, ST_EINVAL, "error rate" },
        { { .stable = 1, .rule.max_error_rate_increase = -0.1 }, ST_EINVAL, "error rate" },
        { { .stable = 1, .rule.max_error_rate_increase = NAN }, ST_EINVAL, "error rate" },
        { { .stable = 1, .rule.max_p99_ratio = 0.5 }, ST_EINVAL, "p99" },
        { { .stable = 1, .rule.max_p99_ratio = 1000.5 }, ST_EINVAL, "p99" },
        { { .stable = 1, .rule.max_p99_ratio = -2 }, ST_EINVAL, "p99" },
        { { .stable = 1, .rule.window_s = -1 }, ST_EINVAL, "window" },
        { { .stable = 1, .rule.window_s = 86401 }, ST_EINVAL, "window" },
        { { .stable = 1, .rule.min_requests = -5 }, ST_EINVAL, "min requests" },
        { { .stable = 1, .rule.min_requests = 1000000001 }, ST_EINVAL, "min requests" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_error err = { 0 };
        st_status s = deploy(f, "churn", cases[i].want, NULL, &err);
        if (s != cases[i].code || !strstr(err.msg, cases[i].says))
            fprintf(stderr, "case %zu: %s: %s\n", i, st_status_name(s), err.msg);
        assert_int_equal(s, cases[i].code);
        assert_non_null(strstr(err.msg, cases[i].says));
    }
    st_error err = { 0 };
    assert_int_equal(deploy(f, "nosuch", (reg_deployment){ .stable = 1 }, NULL, &err), ST_ENOTFOUND);
    assert_int_equal(deploy(f, "a/b", (reg_deployment){ .stable = 1 }, NULL, &err), ST_EINVAL);
    /* Nothing changed. */
    assert_int_equal(audit_count(f), audits);
    assert_int_equal(generation(f->reg), gen);
    reg_deployment d;
    assert_int_equal(reg_deploy_get(f->reg, ST_STR("churn"), &f->arena, &d, &err), ST_ENOTFOUND);
    assert_non_null(strstr(err.msg, "stratus deploy churn"));
    /* The edges are fine. */
    reg_deployment edge = {
        .stable = 1, .canary = 2, .canary_percent = 100, .shadow = 3,
        .sticky_header = "x-!#$%&'*+-.^_`|~1", .rule = { 1, 1000, 86400, 1000000000 },
    };
    assert_int_equal(deploy(f, "churn", edge, &d, &err), ST_OK);
    assert_int_equal(d.rule.window_s, 86400);
    memset(long_header, 'h', REG_HEADER_MAX);
    long_header[REG_HEADER_MAX] = '\0';
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1, .sticky_header = long_header }, NULL, &err), ST_OK);
}

/* ---- set, get, list ------------------------------------------------------------ */

static void test_set_get_list(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 3);
    push_versions(f, "alpha", 1);
    st_error err = { 0 };
    reg_deployment d;
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1 }, &d, &err), ST_OK);
    assert_string_equal(d.model, "churn");
    assert_int_equal(d.stable, 1);
    assert_int_equal(d.canary, 0);
    assert_int_equal(d.previous_stable, 0);
    assert_string_equal(d.state, "stable");
    assert_string_equal(d.sticky_header, "");
    assert_int_equal(d.revision, 1);
    reg_rollback_rule def = reg_rollback_rule_default();
    assert_true(d.rule.max_error_rate_increase == def.max_error_rate_increase);
    assert_true(d.rule.max_p99_ratio == 2.0);
    assert_int_equal(d.rule.window_s, 60);
    assert_int_equal(d.rule.min_requests, 20);
    reg_audit_entry e = last_audit(f);
    assert_string_equal(e.action, "deploy");
    assert_string_equal(e.target, "churn");
    assert_null(e.before);
    assert_non_null(strstr(e.after, "\"stable\":1"));

    reg_deployment want = {
        .stable = 2, .canary = 3, .canary_percent = 10, .shadow = 1, .sticky_header = "X-User",
        .rule = { .max_error_rate_increase = 0.1, .max_p99_ratio = REG_P99_OFF, .window_s = 30 },
        /* Ignored: */
        .previous_stable = 77, .revision = 99, .state = "rolled_back", .reason = "no",
    };
    assert_int_equal(deploy(f, "churn", want, &d, &err), ST_OK);
    assert_int_equal(d.stable, 2);
    assert_int_equal(d.canary, 3);
    assert_true(d.canary_percent == 10);
    assert_int_equal(d.shadow, 1);
    assert_string_equal(d.sticky_header, "X-User");
    assert_int_equal(d.previous_stable, 1);
    assert_string_equal(d.state, "canary");
    assert_string_equal(d.reason, "");
    assert_int_equal(d.revision, 2);
    assert_true(d.rule.max_error_rate_increase == 0.1);
    assert_true(d.rule.max_p99_ratio == 0);
    assert_int_equal(d.rule.window_s, 30);
    assert_int_equal(d.rule.min_requests, 20);
    e = last_audit(f);
    assert_non_null(strstr(e.before, "\"stable\":1"));
    assert_non_null(strstr(e.after, "\"canary\":3"));

    /* The same stable again keeps previous_stable. */
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 2 }, &d, &err), ST_OK);
    assert_int_equal(d.previous_stable, 1);
    assert_int_equal(d.revision, 3);
    reg_deployment got = get(f, "churn");
    assert_int_equal(got.revision, 3);
    assert_int_equal(got.canary, 0);

    assert_int_equal(deploy(f, "alpha", (reg_deployment){ .stable = 1 }, NULL, &err), ST_OK);
    reg_deployment *list;
    size_t n;
    assert_int_equal(reg_deploy_list(f->reg, &f->arena, &list, &n, &err), ST_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].model, "alpha");
    assert_string_equal(list[1].model, "churn");

    assert_int_equal(reg_deploy_remove(f->reg, ST_STR("alpha"), &err), ST_OK);
    e = last_audit(f);
    assert_string_equal(e.action, "undeploy");
    assert_non_null(e.before);
    assert_null(e.after);
    assert_int_equal(reg_deploy_remove(f->reg, ST_STR("alpha"), &err), ST_ENOTFOUND);
    assert_int_equal(reg_deploy_list(f->reg, &f->arena, &list, &n, &err), ST_OK);
    assert_int_equal(n, 1);
}

/* ---- promote and rollback ------------------------------------------------------ */

static void test_promote(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 3);
    st_error err = { 0 };
    reg_deployment d;
    assert_int_equal(reg_deploy_promote(f->reg, ST_STR("churn"), &f->arena, &d, &err), ST_ENOTFOUND);
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1, .shadow = 3 }, NULL, &err), ST_OK);
    size_t audits = audit_count(f);
    assert_int_equal(reg_deploy_promote(f->reg, ST_STR("churn"), &f->arena, &d, &err), ST_EINVAL);
    assert_non_null(strstr(err.msg, "no canary"));
    assert_int_equal(audit_count(f), audits);
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1, .canary = 2, .canary_percent = 25, .shadow = 3 }, NULL, &err), ST_OK);
    assert_int_equal(reg_deploy_promote(f->reg, ST_STR("churn"), &f->arena, &d, &err), ST_OK);
    assert_int_equal(d.stable, 2);
    assert_int_equal(d.canary, 0);
    assert_true(d.canary_percent == 0);
    assert_int_equal(d.previous_stable, 1);
    assert_int_equal(d.shadow, 3);
    assert_string_equal(d.state, "stable");
    assert_int_equal(d.revision, 3);
    reg_audit_entry e = last_audit(f);
    assert_string_equal(e.action, "promote");
    assert_non_null(strstr(e.before, "\"canary\":2"));
    assert_non_null(strstr(e.after, "\"stable\":2"));
    /* NULL out is fine. */
    assert_int_equal(reg_deploy_promote(f->reg, ST_STR("churn"), NULL, NULL, &err), ST_EINVAL);
}

static void test_rollback_canary(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 2);
    st_error err = { 0 };
    reg_deployment d;
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, NULL, &f->arena, &d, &err), ST_ENOTFOUND);
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1, .canary = 2, .canary_percent = 10 }, NULL, &err), ST_OK);
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, "error rate +12 points", &f->arena, &d, &err), ST_OK);
    assert_int_equal(d.stable, 1);
    assert_int_equal(d.canary, 0);
    assert_true(d.canary_percent == 0);
    assert_int_equal(d.previous_stable, 0);
    assert_string_equal(d.state, "rolled_back");
    assert_string_equal(d.reason, "error rate +12 points");
    reg_audit_entry e = last_audit(f);
    assert_string_equal(e.action, "rollback");
    assert_non_null(strstr(e.after, "\"reason\":\"error rate +12 points\""));
    assert_non_null(strstr(e.after, "\"state\":\"rolled_back\""));
    /* A reason is one bounded line. */
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1, .canary = 2, .canary_percent = 10 }, NULL, &err), ST_OK);
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, "two\nlines", &f->arena, &d, &err), ST_EINVAL);
    char *long_reason = calloc(1, REG_VALUE_MAX + 2);
    memset(long_reason, 'r', REG_VALUE_MAX + 1);
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, long_reason, &f->arena, &d, &err), ST_EINVAL);
    long_reason[REG_VALUE_MAX] = '\0';
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, long_reason, &f->arena, &d, &err), ST_OK);
    free(long_reason);
    /* Nothing left to roll back. */
    size_t audits = audit_count(f);
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, NULL, &f->arena, &d, &err), ST_EINVAL);
    assert_non_null(strstr(err.msg, "nothing to roll back"));
    assert_int_equal(audit_count(f), audits);
    /* A new deploy clears the state and reason. */
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1 }, &d, &err), ST_OK);
    assert_string_equal(d.state, "stable");
    assert_string_equal(d.reason, "");
}

static void test_rollback_stable(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 3);
    st_error err = { 0 };
    reg_deployment d;
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1 }, NULL, &err), ST_OK);
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, NULL, &f->arena, &d, &err), ST_EINVAL);
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 2, .shadow = 1 }, NULL, &err), ST_OK);
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, NULL, &f->arena, &d, &err), ST_OK);
    assert_int_equal(d.stable, 1);
    assert_int_equal(d.previous_stable, 0);
    assert_int_equal(d.shadow, 0); /* it was 1, now the stable version */
    assert_string_equal(d.state, "rolled_back");
    assert_string_equal(d.reason, "");
    /* Not a roll forward. */
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, NULL, &f->arena, &d, &err), ST_EINVAL);
    /* Promotion can be undone. */
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1, .canary = 3, .canary_percent = 50 }, NULL, &err), ST_OK);
    assert_int_equal(reg_deploy_promote(f->reg, ST_STR("churn"), &f->arena, &d, &err), ST_OK);
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, "bad release", &f->arena, &d, &err), ST_OK);
    assert_int_equal(d.stable, 1);
    assert_string_equal(d.reason, "bad release");
}

/* Two servers judging the same canary: only the first rollback changes
 * anything; a stale judgement on an old canary is a no-op. */
static void test_rollback_only_canary_race(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 3);
    push_versions(f, "other", 1);
    st_error err = { 0 };
    reg_deployment d;
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1, .canary = 3, .canary_percent = 10 }, NULL, &err), ST_OK);
    size_t audits = audit_count(f);
    int64_t gen = generation(f->reg);
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 2, "stale", &f->arena, &d, &err), ST_OK);
    assert_int_equal(d.canary, 3);
    assert_int_equal(d.revision, 1);
    assert_string_equal(d.model, "churn");
    assert_int_equal(audit_count(f), audits);
    assert_int_equal(generation(f->reg), gen);

    reg_store *second;
    assert_int_equal(reg_open(f->home, REG_OPEN_EXISTING, &second, &err), ST_OK);
    reg_set_actor(second, "stratus serve");
    assert_int_equal(reg_deploy_rollback(f->reg, ST_STR("churn"), 3, "p99 x3", &f->arena, &d, &err), ST_OK);
    assert_int_equal(d.canary, 0);
    assert_int_equal(d.revision, 2);
    assert_int_equal(reg_deploy_rollback(second, ST_STR("churn"), 3, "p99 x3 too", &f->arena, &d, &err), ST_OK);
    assert_int_equal(d.revision, 2);
    assert_string_equal(d.reason, "p99 x3");
    assert_int_equal(audit_count(f), audits + 1);
    /* No policy at all: still a quiet no-op. */
    assert_int_equal(reg_deploy_rollback(second, ST_STR("other"), 1, NULL, &f->arena, &d, &err), ST_OK);
    assert_int_equal(d.revision, 0);
    assert_string_equal(d.model, "other");
    assert_int_equal(reg_deploy_rollback(second, ST_STR("other"), 1, NULL, NULL, NULL, &err), ST_OK);
    /* A missing model is still an error. */
    assert_int_equal(reg_deploy_rollback(second, ST_STR("nosuch"), 1, NULL, NULL, NULL, &err), ST_ENOTFOUND);
    reg_close(second);
}

/* The same race with real concurrency: threads with their own handles
 * judge one canary at once; exactly one rollback is recorded. */
typedef struct racer {
    const char *home;
    st_status status;
} racer;

static void *race_rollback(void *arg)
{
    racer *x = arg;
    reg_store *r;
    if ((x->status = reg_open(x->home, REG_OPEN_EXISTING, &r, NULL)) != ST_OK)
        return NULL;
    x->status = reg_deploy_rollback(r, ST_STR("churn"), 2, "raced", NULL, NULL, NULL);
    reg_close(r);
    return NULL;
}

static void test_rollback_threads(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 2);
    st_error err = { 0 };
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1, .canary = 2, .canary_percent = 10 }, NULL, &err), ST_OK);
    size_t audits = audit_count(f);
    enum { N = 4 };
    pthread_t threads[N];
    racer racers[N];
    for (int i = 0; i < N; i++) {
        racers[i] = (racer){ f->home, ST_EINTERNAL };
        assert_int_equal(pthread_create(&threads[i], NULL, race_rollback, &racers[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(racers[i].status, ST_OK);
    }
    assert_int_equal(audit_count(f), audits + 1);
    reg_deployment d = get(f, "churn");
    assert_int_equal(d.canary, 0);
    assert_int_equal(d.revision, 2);
}

/* ---- rm and the deployment --------------------------------------------------- */

static void test_rm_refused_and_forced(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 5);
    st_error err = { 0 };
    reg_deployment d;
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1 }, NULL, &err), ST_OK);
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 2, .canary = 3, .canary_percent = 10, .shadow = 4 }, NULL, &err), ST_OK);
    size_t audits = audit_count(f);
    const struct { int64_t version; const char *role; } used[] = { { 2, "stable" }, { 3, "canary" }, { 4, "shadow" } };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), used[i].version, false, &err), ST_EINVAL);
        assert_non_null(strstr(err.msg, "deployment of 'churn'"));
        assert_non_null(strstr(err.msg, used[i].role));
        assert_non_null(strstr(err.msg, "--force"));
    }
    assert_int_equal(audit_count(f), audits);
    assert_int_equal(get(f, "churn").revision, 2);

    /* previous_stable does not protect a version, and is cleared. */
    assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), 1, false, &err), ST_OK);
    d = get(f, "churn");
    assert_int_equal(d.previous_stable, 0);
    assert_int_equal(d.revision, 3);
    /* Unrelated versions leave the policy alone. */
    assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), 5, false, &err), ST_OK);
    assert_int_equal(get(f, "churn").revision, 3);

    assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), 4, true, &err), ST_OK);
    d = get(f, "churn");
    assert_int_equal(d.shadow, 0);
    assert_int_equal(d.canary, 3);
    assert_int_equal(d.revision, 4);
    assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), 3, true, &err), ST_OK);
    d = get(f, "churn");
    assert_int_equal(d.canary, 0);
    assert_true(d.canary_percent == 0);
    assert_string_equal(d.state, "stable");
    reg_audit_entry *e;
    size_t n;
    assert_int_equal(reg_list_audit(f->reg, 2, &f->arena, &e, &n, &err), ST_OK);
    assert_string_equal(e[0].action, "deploy");
    assert_non_null(strstr(e[0].before, "\"canary\":3"));
    assert_non_null(strstr(e[0].after, "\"canary\":null"));
    assert_string_equal(e[1].action, "rm");
    assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), 2, true, &err), ST_OK);
    assert_int_equal(reg_deploy_get(f->reg, ST_STR("churn"), &f->arena, &d, &err), ST_ENOTFOUND);
    assert_int_equal(reg_list_audit(f->reg, 2, &f->arena, &e, &n, &err), ST_OK);
    assert_string_equal(e[0].action, "undeploy");
    assert_string_equal(e[1].action, "rm");
    reg_fsck_report report;
    assert_int_equal(reg_fsck(f->reg, false, NULL, NULL, &report, &err), ST_OK);
    assert_int_equal(report.damaged, 0);
}

/* ---- aliases, generation, actor ------------------------------------------------- */

static void test_remove_alias(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 1);
    st_error err = { 0 };
    assert_int_equal(reg_set_alias(f->reg, ST_STR("churn"), 1, ST_STR("prod"), &err), ST_OK);
    assert_int_equal(reg_remove_alias(f->reg, ST_STR("churn"), ST_STR("staging"), &err), ST_ENOTFOUND);
    assert_non_null(strstr(err.msg, "staging"));
    assert_int_equal(reg_remove_alias(f->reg, ST_STR("nosuch"), ST_STR("prod"), &err), ST_ENOTFOUND);
    assert_int_equal(reg_remove_alias(f->reg, ST_STR("churn"), ST_STR("12"), &err), ST_EINVAL);
    assert_int_equal(reg_remove_alias(f->reg, ST_STR("churn"), ST_STR("prod"), &err), ST_OK);
    reg_audit_entry e = last_audit(f);
    assert_string_equal(e.action, "unalias");
    assert_string_equal(e.target, "churn@prod");
    assert_non_null(strstr(e.before, "\"version\":1"));
    assert_null(e.after);
    reg_version v;
    assert_int_equal(reg_get(f->reg, ST_STR("churn@prod"), &f->arena, &v, &err), ST_ENOTFOUND);
    assert_int_equal(reg_remove_alias(f->reg, ST_STR("churn"), ST_STR("prod"), &err), ST_ENOTFOUND);
}

static void test_generation(void **state)
{
    fixture *f = *state;
    st_error err = { 0 };
    reg_store *second;
    assert_int_equal(reg_open(f->home, REG_OPEN_EXISTING, &second, &err), ST_OK);
    int64_t g = generation(f->reg);
    assert_int_equal(generation(second), g);
    /* Each change moves it, seen from both handles. */
#define CHANGED(call)                                          \
    do {                                                       \
        assert_int_equal(call, ST_OK);                         \
        int64_t now = generation(second);                      \
        assert_true(now > g);                                  \
        assert_int_equal(generation(f->reg), now);             \
        g = now;                                               \
    } while (0)
    push_versions(f, "churn", 3);
    assert_true(generation(second) > g);
    g = generation(second);
    CHANGED(reg_set_alias(f->reg, ST_STR("churn"), 1, ST_STR("prod"), &err));
    CHANGED(reg_remove_alias(f->reg, ST_STR("churn"), ST_STR("prod"), &err));
    CHANGED(deploy(f, "churn", (reg_deployment){ .stable = 1, .canary = 2, .canary_percent = 5 }, NULL, &err));
    CHANGED(reg_deploy_promote(second, ST_STR("churn"), NULL, NULL, &err));
    CHANGED(reg_deploy_rollback(f->reg, ST_STR("churn"), 0, NULL, NULL, NULL, &err));
    CHANGED(reg_deploy_remove(second, ST_STR("churn"), &err));
    CHANGED(reg_remove_version(f->reg, ST_STR("churn"), 3, false, &err));
#undef CHANGED
    /* Failures and reads leave it alone. */
    assert_int_equal(reg_deploy_remove(f->reg, ST_STR("churn"), &err), ST_ENOTFOUND);
    assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), 3, false, &err), ST_ENOTFOUND);
    reg_deployment *list;
    size_t n;
    assert_int_equal(reg_deploy_list(f->reg, &f->arena, &list, &n, &err), ST_OK);
    assert_int_equal(generation(second), g);
    reg_close(second);
}

static void test_actor(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 1);
    st_error err = { 0 };
    char user[80];
    reg_user(user, sizeof user);
    assert_string_equal(last_audit(f).who, user);
    reg_set_actor(f->reg, "api:admin\n");
    reg_deployment d;
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1 }, &d, &err), ST_OK);
    assert_string_equal(d.updated_by, "api:admin?");
    assert_string_equal(last_audit(f).who, "api:admin?");
    reg_set_actor(f->reg, NULL);
    assert_int_equal(reg_deploy_remove(f->reg, ST_STR("churn"), &err), ST_OK);
    assert_string_equal(last_audit(f).who, user);
}

/* ---- allocation failures ---------------------------------------------------- */

/* Runs `op` failing at allocation 1, 2, ... until it succeeds without
 * reaching the failure point; after each failure the policy, audit log and
 * generation are as they were, after the success they moved once. */
static size_t fail_everywhere(fixture *f, st_status (*op)(fixture *f, st_error *err),
                              void (*after_success)(fixture *f))
{
    size_t failures = 0;
    for (uint64_t n = 1; n < 5000; n += n < 64 ? 1 : 3) {
        int64_t revision = get(f, "churn").revision;
        size_t audits = audit_count(f);
        int64_t gen = generation(f->reg);
        st_error err = { 0 };
        uint64_t before = st_alloc_count();
        st_alloc_fail_after(n);
        st_status s = op(f, &err);
        uint64_t used = st_alloc_count() - before;
        st_alloc_fail_reset();
        /* SQLite may keep a poisoned state: reopen. */
        reg_close(f->reg);
        assert_int_equal(reg_open(f->home, REG_OPEN_EXISTING, &f->reg, &err), ST_OK);
        if (s != ST_OK) {
            assert_true(err.msg[0] != '\0');
            assert_int_equal(get(f, "churn").revision, revision);
            assert_int_equal(audit_count(f), audits);
            assert_int_equal(generation(f->reg), gen);
            failures++;
            continue;
        }
        assert_int_equal(get(f, "churn").revision, revision + 1);
        assert_true(audit_count(f) > audits);
        assert_true(generation(f->reg) > gen);
        if (after_success)
            after_success(f);
        if (used < n)
            return failures;
    }
    fail_msg("never succeeded");
    return failures;
}

/* What the operations below work on, read before allocations may fail. */
static int64_t alloc_test_stable = 1, alloc_test_canary = 3;

static st_status deploy_canary(fixture *f, st_error *err)
{
    reg_deployment want = { .stable = alloc_test_stable == 1 ? 2 : 1, .canary = alloc_test_canary,
                            .canary_percent = 5, .sticky_header = "X-User" };
    st_status s = reg_deploy_set(f->reg, ST_STR("churn"), &want, &f->arena, &(reg_deployment){ 0 }, err);
    if (s == ST_OK)
        alloc_test_stable = want.stable;
    return s;
}

static st_status rm_canary(fixture *f, st_error *err)
{
    return reg_remove_version(f->reg, ST_STR("churn"), alloc_test_canary, true, err);
}

/* The canary is gone: push a new one for the next attempt. */
static void new_canary(fixture *f)
{
    push_versions(f, "churn", 1);
    reg_deployment want = { .stable = alloc_test_stable, .canary = ++alloc_test_canary,
                            .canary_percent = 5 };
    assert_int_equal(reg_deploy_set(f->reg, ST_STR("churn"), &want, NULL, NULL, NULL), ST_OK);
}

static void test_alloc_failures(void **state)
{
    fixture *f = *state;
    push_versions(f, "churn", 3);
    st_error err = { 0 };
    assert_int_equal(deploy(f, "churn", (reg_deployment){ .stable = 1 }, NULL, &err), ST_OK);
    size_t deploy_failures = fail_everywhere(f, deploy_canary, NULL);
    size_t rm_failures = fail_everywhere(f, rm_canary, new_canary);
    fprintf(stderr, "# failed %zu deploys and %zu removals, each cleanly\n", deploy_failures, rm_failures);
    assert_true(deploy_failures > 20 && rm_failures > 20);
}

/* ---- schema 2 -> 3 ----------------------------------------------------------- */

static void test_migration_from_2(void **state)
{
    fixture *f = *state;
    char old_home[160];
    snprintf(old_home, sizeof old_home, "%s/old", f->dir);
    reg_store *r;
    st_error err = { 0 };
    assert_int_equal(reg_open_schema(old_home, REG_OPEN_CREATE, 2, &r, &err), ST_OK);
    assert_int_not_equal(reg_db_exec(r, "SELECT * FROM deployments", NULL), ST_OK);
    assert_int_equal(reg_db_exec(r,
        "INSERT INTO models(name, last_version, created_at) VALUES ('kept', 2, 'then');"
        "INSERT INTO versions(model_id, version, blob, size_bytes, format, file_name, created_at, created_by) "
        "VALUES (1, 1, 'aa', 1, 'onnx', 'm.onnx', 'then', 'me'), (1, 2, 'bb', 1, 'onnx', 'm.onnx', 'then', 'me');"
        "INSERT INTO audit(at, who, action, target) VALUES ('then', 'me', 'push', 'kept@1')",
        &err), ST_OK);
    reg_close(r);

    assert_int_equal(reg_open(old_home, REG_OPEN_EXISTING, &r, &err), ST_OK);
    int64_t g0 = generation(r);
    reg_deployment want = { .stable = 1, .canary = 2, .canary_percent = 50 }, d;
    assert_int_equal(reg_deploy_set(r, ST_STR("kept"), &want, &f->arena, &d, &err), ST_OK);
    assert_int_equal(d.revision, 1);
    assert_true(generation(r) > g0);
    reg_audit_entry *e;
    size_t n;
    assert_int_equal(reg_list_audit(r, 0, &f->arena, &e, &n, &err), ST_OK);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].action, "push");
    assert_string_equal(e[1].action, "deploy");
    reg_close(r);
}

/* ---- JSON ---------------------------------------------------------------------- */

static void test_json(void **state)
{
    fixture *f = *state;
    reg_deployment d = {
        .model = "churn", .stable = 3, .canary = 4, .canary_percent = 12.5, .sticky_header = "",
        .rule = reg_rollback_rule_default(), .state = "canary", .reason = "",
        .updated_at = "2026-11-30T00:00:00.000Z", .updated_by = "me", .revision = 7,
    };
    st_buf out = { 0 };
    assert_int_equal(reg_json_deployment(&out, &d), ST_OK);
    json_value *v;
    assert_int_equal(json_parse(out.data, out.len, NULL, &f->arena, &v, NULL), ST_OK);
    int64_t i;
    double x;
    assert_int_equal(json_value_int64(json_value_get_c(v, "canary"), &i), ST_OK);
    assert_int_equal(i, 4);
    assert_int_equal(json_value_double(json_value_get_c(v, "canary_percent"), &x), ST_OK);
    assert_true(x == 12.5);
    assert_int_equal(json_value_get_c(v, "shadow")->type, JSON_KIND_NULL);
    assert_int_equal(json_value_get_c(v, "sticky_header")->type, JSON_KIND_NULL);
    assert_int_equal(json_value_get_c(v, "previous_stable")->type, JSON_KIND_NULL);
    const json_value *rule = json_value_get_c(v, "rollback_rule");
    assert_int_equal(json_value_int64(json_value_get_c(rule, "min_requests"), &i), ST_OK);
    assert_int_equal(i, 20);

    reg_audit_entry e = { 5, "t", "me", "deploy", "churn", NULL, st_buf_cstr(&out) };
    st_buf audit = { 0 };
    assert_int_equal(reg_json_audit(&audit, &e), ST_OK);
    assert_int_equal(json_parse(audit.data, audit.len, NULL, &f->arena, &v, NULL), ST_OK);
    assert_int_equal(json_value_get_c(v, "before")->type, JSON_KIND_NULL);
    assert_int_equal(json_value_get_c(v, "after")->type, JSON_KIND_OBJECT);
    /* Text that is not JSON stays a string. */
    e.before = "{not json";
    st_buf_clear(&audit);
    assert_int_equal(reg_json_audit(&audit, &e), ST_OK);
    assert_int_equal(json_parse(audit.data, audit.len, NULL, &f->arena, &v, NULL), ST_OK);
    assert_int_equal(json_value_get_c(v, "before")->type, JSON_KIND_STRING);
    st_buf_free(&audit);
    st_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_get_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_canary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_stable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_only_canary_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rm_refused_and_forced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_actor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
    };
    return cmocka_run_group_tests_name("registry_deploy", tests, NULL, NULL);
}
