/* test_serve_models.c - unit tests for the model manager of `stratus
 * serve`: a repository loads in the background, a new version replaces the
 * old one while a reference to the old one stays usable, a version that
 * fails to load leaves the previous one serving and is counted, unknown
 * models and versions are ST_ENOTFOUND, version policies and labels pick
 * the right versions, and a request for a loading model is parked and
 * resumed. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "testing.h"

#include "base/file.h"
#include "base/time.h"
#include "serve/serve_int.h"

#define MODEL_PATH "examples/models/iris/2/model.onnx"

static char repo[256];

/* Runs a shell command with every '@' replaced by the repository path. */
static void sh(const char *tmpl)
{
    char cmd[2048];
    size_t n = 0;
    for (const char *p = tmpl; *p && n + sizeof repo < sizeof cmd; p++) {
        if (*p == '@') {
            memcpy(cmd + n, repo, strlen(repo));
            n += strlen(repo);
        } else {
            cmd[n++] = *p;
        }
    }
    cmd[n] = '\0';
    assert_int_equal(system(cmd), 0);
}

/* Puts a version in the repository, its file dated a second back so the
 * manager does not wait for it to settle. */
static void add_version(const char *model, int number, const char *src)
{
    char dir[320], path[400];
    snprintf(dir, sizeof dir, "%s/%s/%d", repo, model, number);
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s %s/model.onnx.tmp && mv %s/model.onnx.tmp %s/model.onnx", dir,
             src, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= 2;
    tv[1] = tv[0];
    assert_int_equal(utimes(path, tv), 0);
}

static void write_file(const char *rel, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", repo, rel);
    assert_int_equal(st_file_write_atomic(path, text, strlen(text), NULL), ST_OK);
}

static int setup(void **state)
{
    (void)state;
    snprintf(repo, sizeof repo, "/tmp/stratus-test-models-%ld", (long)getpid());
    sh("rm -rf @ && mkdir -p @");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sh("rm -rf @");
    return 0;
}

static sv_manager *start(int poll_ms)
{
    sv_manager_options opt = { .repository = repo, .n_workers = 2, .poll_ms = poll_ms, .load_wait_ms = 5000 };
    sv_manager *m = NULL;
    st_error err = { 0 };
    assert_int_equal(sv_manager_start(&opt, &m, &err), ST_OK);
    sv_manager_wait_initial(m, 10000);
    return m;
}

/* Polls (bounded) until routing `model` with no version gives `number`. */
static void wait_for_version(sv_manager *m, const char *model, int64_t number)
{
    for (int i = 0; i < 1000; i++) {
        sv_version *v = NULL;
        bool parked;
        st_status st = sv_manager_acquire(m, st_str_c(model), (st_str){ 0 }, (st_str){ 0 }, NULL, &parked, &v, NULL);
        int64_t got = st == ST_OK ? v->number : -1;
        if (v)
            sv_version_release(v);
        if (got == number)
            return;
        st_sleep_us(10000);
    }
    fail_msg("model %s never served version %lld", model, (long long)number);
}

static sv_version *acquire(sv_manager *m, const char *model, const char *version, st_status want)
{
    sv_version *v = NULL;
    bool parked;
    st_error err = { 0 };
    st_status st = sv_manager_acquire(m, st_str_c(model), st_str_c(version), (st_str){ 0 }, NULL, &parked, &v,
                                      &err);
    if (st != want)
        fail_msg("acquire %s/%s: %d (%s), wanted %d", model, version, st, err.msg, want);
    return v;
}

static void test_new_version_replaces_old(void **state)
{
    (void)state;
    add_version("iris", 1, "examples/models/iris/1/model.onnx");
    sv_manager *m = start(20);
    wait_for_version(m, "iris", 1);
    sv_version *old = acquire(m, "iris", "", ST_OK);
    assert_int_equal(old->number, 1);

    add_version("iris", 2, MODEL_PATH);
    wait_for_version(m, "iris", 2);
    /* Latest 1 by default: version 1 is retired (right after version 2
     * is installed) but still runs for us. */
    for (int i = 0; i < 1000; i++) {
        sv_version *v1 = NULL;
        bool parked;
        if (sv_manager_acquire(m, st_str_c("iris"), st_str_c("1"), (st_str){ 0 }, NULL, &parked, &v1, NULL) != ST_OK)
            break;
        sv_version_release(v1);
        st_sleep_us(10000);
    }
    acquire(m, "iris", "1", ST_ENOTFOUND);
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(old->engine, &s, NULL), ST_OK);
    float x[4] = { 5.1f, 3.5f, 1.4f, 0.2f };
    eng_tensor in = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ 1, 4 }, 2, x), out[2];
    assert_int_equal(eng_run(s, &in, 1, out, 2, NULL), ST_OK);
    assert_int_equal(((int64_t *)out[1].data)[0], 0); /* setosa */
    eng_session_free(s);
    sv_version_release(old);

    acquire(m, "nope", "", ST_ENOTFOUND);
    acquire(m, "iris", "7", ST_ENOTFOUND);
    acquire(m, "iris", "x", ST_ENOTFOUND);
    sv_manager_free(m);
}

static void test_failed_load_keeps_previous(void **state)
{
    (void)state;
    add_version("iris", 1, MODEL_PATH);
    sv_manager *m = start(20);
    wait_for_version(m, "iris", 1);
    /* Version 2 is not a model. */
    sh("mkdir -p @/iris/2 && echo garbage > @/iris/2/model.onnx.tmp && touch -d '-2 seconds' "
       "@/iris/2/model.onnx.tmp && mv @/iris/2/model.onnx.tmp @/iris/2/model.onnx");
    st_buf metrics = { 0 };
    for (int i = 0; i < 500; i++) {
        st_buf_clear(&metrics);
        sv_manager_write_metrics(m, &metrics, 0);
        st_buf_cstr(&metrics);
        if (strstr((const char *)metrics.data, "stratus_model_load_failures_total{model=\"iris\"} 1"))
            break;
        st_sleep_us(10000);
    }
    assert_non_null(strstr((const char *)metrics.data, "stratus_model_load_failures_total{model=\"iris\"} 1"));
    st_buf_free(&metrics);
    sv_version *v = acquire(m, "iris", "", ST_OK);
    assert_int_equal(v->number, 1);
    sv_version_release(v);
    /* The failure is not retried while the file stays the same. */
    st_sleep_us(100000);
    sv_version *again = acquire(m, "iris", "", ST_OK);
    assert_int_equal(again->number, 1);
    sv_version_release(again);
    sv_manager_free(m);
}

static void test_policy_and_labels(void **state)
{
    (void)state;
    add_version("iris", 1, MODEL_PATH);
    add_version("iris", 2, MODEL_PATH);
    add_version("iris", 3, MODEL_PATH);
    write_file("iris/config.json", "{\"version_policy\": {\"specific\": {\"versions\": [1, 3]}},"
                                   " \"version_labels\": {\"stable\": 1}, \"max_batch_size\": 0}");
    sv_manager *m = start(20);
    wait_for_version(m, "iris", 3);
    /* Version 1 loads after 3 (highest first): wait for it too. */
    for (int i = 0; i < 1000; i++) {
        sv_version *probe = NULL;
        bool parked;
        if (sv_manager_acquire(m, st_str_c("iris"), st_str_c("1"), (st_str){ 0 }, NULL, &parked, &probe, NULL) == ST_OK) {
            sv_version_release(probe);
            break;
        }
        st_sleep_us(10000);
    }
    sv_version *v1 = acquire(m, "iris", "1", ST_OK);
    assert_false(atomic_load(&v1->is_batchable));
    sv_version_release(v1);
    acquire(m, "iris", "2", ST_ENOTFOUND);
    sv_version *v = NULL;
    bool parked;
    assert_int_equal(sv_manager_acquire(m, st_str_c("iris"), (st_str){ 0 }, st_str_c("stable"), NULL, &parked, &v, NULL),
                     ST_OK);
    assert_int_equal(v->number, 1);
    sv_version_release(v);
    assert_int_equal(sv_manager_acquire(m, st_str_c("iris"), (st_str){ 0 }, st_str_c("nope"), NULL, &parked, &v, NULL),
                     ST_ENOTFOUND);
    st_buf body = { 0 };
    assert_int_equal(sv_manager_tfs_status(m, st_str_c("iris"), (st_str){ 0 }, &body, NULL), ST_OK);
    st_buf_cstr(&body);
    assert_non_null(strstr((const char *)body.data, "\"version\":\"3\",\"state\":\"AVAILABLE\""));
    assert_non_null(strstr((const char *)body.data, "\"version\":\"1\",\"state\":\"AVAILABLE\""));
    assert_null(strstr((const char *)body.data, "\"version\":\"2\""));
    st_buf_free(&body);
    sv_manager_free(m);
}

static _Atomic int resumed;
static _Atomic int resumed_status = -1;

static void on_resume(sv_waiter *w, st_status st, const char *msg)
{
    (void)w;
    (void)msg;
    atomic_store(&resumed_status, (int)st);
    atomic_fetch_add(&resumed, 1);
}

static void test_waits_for_loading_model(void **state)
{
    (void)state;
    /* The file is fresh (just written), so the manager waits for it to
     * settle: the model is known and loading, and requests park. */
    sh("mkdir -p @/iris/1 && cp " MODEL_PATH " @/iris/1/model.onnx");
    sv_manager_options opt = { .repository = repo, .n_workers = 1, .poll_ms = 20, .load_wait_ms = 5000 };
    sv_manager *m = NULL;
    assert_int_equal(sv_manager_start(&opt, &m, NULL), ST_OK);
    sv_waiter w = { .resume = on_resume };
    sv_version *v = NULL;
    bool parked = false;
    atomic_store(&resumed, 0);
    st_status st = sv_manager_acquire(m, st_str_c("iris"), (st_str){ 0 }, (st_str){ 0 }, &w, &parked, &v, NULL);
    if (st == ST_OK) {
        sv_version_release(v); /* already loaded: nothing to wait for */
    } else {
        assert_int_equal(st, ST_EAGAIN);
        assert_true(parked);
        for (int i = 0; i < 1000 && atomic_load(&resumed) == 0; i++)
            st_sleep_us(10000);
        assert_int_equal(atomic_load(&resumed), 1);
        assert_int_equal(atomic_load(&resumed_status), ST_OK);
        v = acquire(m, "iris", "", ST_OK);
        sv_version_release(v);
    }
    assert_true(sv_manager_is_ready(m));
    sv_manager_free(m);
}

static void test_removed_model_is_gone(void **state)
{
    (void)state;
    add_version("a", 1, MODEL_PATH);
    add_version("b", 1, MODEL_PATH);
    sv_manager *m = start(20);
    wait_for_version(m, "a", 1);
    wait_for_version(m, "b", 1);
    char name[64];
    assert_false(sv_manager_single_name(m, name, sizeof name));
    sh("rm -rf @/b");
    for (int i = 0; i < 500 && !sv_manager_single_name(m, name, sizeof name); i++)
        st_sleep_us(10000);
    assert_true(sv_manager_single_name(m, name, sizeof name));
    assert_string_equal(name, "a");
    acquire(m, "b", "", ST_ENOTFOUND);
    sv_manager_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_version_replaces_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_load_keeps_previous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_and_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waits_for_loading_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_model_is_gone, setup, teardown),
    };
    return cmocka_run_group_tests_name("serve_models", tests, NULL, NULL);
}
