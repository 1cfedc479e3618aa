/* test_traffic.c - unit tests for the pure parts of deployment policies:
 * the canary split is exact over every 10,000 requests (also when threads
 * race), sticky buckets are stable and spread, the rollback windows count
 * only their last window_s seconds (also when slots are reused and when
 * threads record at once), p99 comes from the right bucket, the judgement
 * follows the rule, and shadow comparison copies and compares values.
 * Then the same through the model manager serving a registry: aliases,
 * the split, sticky routing, the shadow, and a failing canary rolled back
 * by the loader and recorded in the registry. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

#include "base/arena.h"
#include "base/time.h"
#include "serve/serve_int.h"

#define SEC 1000000ull

static void test_split_is_exact_over_any_10000(void **state)
{
    (void)state;
    static const uint32_t shares[] = { 0, 1, 1000, 3333, 5000, 9999, 10000 };
    for (size_t s = 0; s < sizeof shares / sizeof shares[0]; s++) {
        sv_split sp = { 0 };
        /* Skip an odd number first: any run of 10,000, not only aligned ones. */
        for (int i = 0; i < 1234; i++)
            sv_split_take(&sp, shares[s]);
        unsigned taken = 0, run = 0, max_run_gap = 0;
        for (int i = 0; i < 10000; i++) {
            if (sv_split_take(&sp, shares[s])) {
                taken++;
                run = 0;
            } else if (++run > max_run_gap) {
                max_run_gap = run;
            }
        }
        assert_int_equal(taken, shares[s]);
        /* Spread evenly: at 10 % never more than 10 misses in a row. */
        if (shares[s] == 1000)
            assert_true(max_run_gap <= 10);
    }
}

typedef struct {
    sv_split *split;
    unsigned taken;
} split_job;

static void *split_thread(void *arg)
{
    split_job *j = arg;
    for (int i = 0; i < 25000; i++)
        j->taken += sv_split_take(j->split, 1000);
    return NULL;
}

static void test_split_exact_when_threads_race(void **state)
{
    (void)state;
    sv_split sp = { 0 };
    pthread_t t[4];
    split_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (split_job){ &sp, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, split_thread, &jobs[i]), 0);
    }
    unsigned total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += jobs[i].taken;
    }
    assert_int_equal(total, 10000); /* 100,000 requests at 10 % */
}

static void test_sticky_bucket_stable_and_spread(void **state)
{
    (void)state;
    assert_int_equal(sv_sticky_bucket((const uint8_t *)"user-42", 7), sv_sticky_bucket((const uint8_t *)"user-42", 7));
    unsigned canary = 0;
    char id[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(id, sizeof id, "user-%d", i);
        uint32_t b = sv_sticky_bucket((const uint8_t *)id, (size_t)n);
        assert_true(b < SV_SHARE_ALL);
        canary += b < 1000;
    }
    /* 10 % of users within two points. */
    assert_true(canary > 800 && canary < 1200);
}

static void test_latency_buckets(void **state)
{
    (void)state;
    int prev = -1;
    for (uint64_t us = 0; us < 5000000; us = us < 64 ? us + 1 : us + us / 7) {
        int b = sv_latency_bucket(us);
        assert_true(b >= prev);
        assert_true(sv_latency_bucket_upper(b) >= us);
        if (b > 0)
            assert_true(sv_latency_bucket_upper(b - 1) < us);
        prev = b;
    }
    for (int b = 0; b < SV_LATENCY_BUCKETS - 1; b++)
        assert_int_equal(sv_latency_bucket(sv_latency_bucket_upper(b)), b);
    assert_int_equal(sv_latency_bucket(UINT64_MAX), SV_LATENCY_BUCKETS - 1);
}

static sv_window win; /* big: keep it off the stack */

static void test_window_counts_its_span_only(void **state)
{
    (void)state;
    sv_window_reset(&win, 3);
    uint64_t t0 = 1000 * SEC;
    for (int i = 0; i < 10; i++)
        sv_window_record(&win, t0 + 100, i < 2, 100);
    for (int i = 0; i < 5; i++)
        sv_window_record(&win, t0 + 2 * SEC, true, 100);
    sv_window_sum s;
    sv_window_sum_at(&win, t0 + 2 * SEC + 500, &s);
    assert_int_equal(s.requests, 15);
    assert_int_equal(s.errors, 7);
    /* Three seconds on, the first second has left the window. */
    sv_window_sum_at(&win, t0 + 3 * SEC, &s);
    assert_int_equal(s.requests, 5);
    sv_window_sum_at(&win, t0 + 5 * SEC, &s);
    assert_int_equal(s.requests, 0);
    /* A slot reused SV_WINDOW_SLOTS seconds later starts from zero. */
    sv_window_record(&win, t0 + (SV_WINDOW_SLOTS)*SEC + 100, false, 100);
    sv_window_sum_at(&win, t0 + (SV_WINDOW_SLOTS)*SEC + 200, &s);
    assert_int_equal(s.requests, 1);
    assert_int_equal(s.errors, 0);
    /* A late answer for a slot already reused is dropped, not misfiled. */
    sv_window_record(&win, t0 + 100, true, 100);
    sv_window_sum_at(&win, t0 + (SV_WINDOW_SLOTS)*SEC + 200, &s);
    assert_int_equal(s.requests, 1);
}

static void test_window_long_span_uses_wider_slots(void **state)
{
    (void)state;
    sv_window_reset(&win, 3600);
    uint64_t t0 = 100000 * SEC;
    for (int i = 0; i < 60; i++)
        sv_window_record(&win, t0 + (uint64_t)i * 60 * SEC, false, 10);
    sv_window_sum s;
    sv_window_sum_at(&win, t0 + 59 * 60 * SEC, &s);
    assert_true(s.requests >= 59); /* slot granularity: the oldest may just leave */
    sv_window_sum_at(&win, t0 + 200 * 60 * SEC, &s);
    assert_int_equal(s.requests, 0);
}

static void *window_thread(void *arg)
{
    uint64_t base = *(uint64_t *)arg;
    for (int i = 0; i < 20000; i++)
        sv_window_record(&win, base + (uint64_t)(i % 3) * SEC, (i % 10) == 0, (uint64_t)i % 500);
    return NULL;
}

static void test_window_threads_record_at_once(void **state)
{
    (void)state;
    sv_window_reset(&win, 10);
    uint64_t base = 5000 * SEC;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, window_thread, &base), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    sv_window_sum s;
    sv_window_sum_at(&win, base + 3 * SEC, &s);
    assert_int_equal(s.requests, 80000);
    assert_int_equal(s.errors, 8000);
}

static void test_quantile(void **state)
{
    (void)state;
    sv_window_sum s = { 0 };
    assert_int_equal(sv_window_quantile_us(&s, 0.99), 0);
    s.latency[sv_latency_bucket(100)] = 99;
    s.latency[sv_latency_bucket(10000)] = 1;
    s.requests = 100;
    uint64_t p99 = sv_window_quantile_us(&s, 0.99);
    assert_true(p99 >= 100 && p99 < 120);
    s.latency[sv_latency_bucket(10000)] = 2;
    p99 = sv_window_quantile_us(&s, 0.99);
    assert_true(p99 >= 10000 && p99 < 12000);
}

static void fill(sv_window_sum *s, uint64_t requests, uint64_t errors, uint64_t latency_us)
{
    memset(s, 0, sizeof *s);
    s->requests = requests;
    s->errors = errors;
    s->latency[sv_latency_bucket(latency_us)] = requests;
}

static void test_judge(void **state)
{
    (void)state;
    reg_rollback_rule rule = { .max_error_rate_increase = 0.05, .max_p99_ratio = 2, .window_s = 3, .min_requests = 20 };
    sv_window_sum stable, canary;
    sv_verdict v;
    /* Too few canary answers: no judgement, however bad. */
    fill(&stable, 500, 0, 1000);
    fill(&canary, 19, 19, 1000);
    sv_rollback_judge(&rule, &stable, &canary, &v);
    assert_false(v.is_judged);
    assert_false(v.is_rollback);
    /* Errors: 50 % against 1 %. */
    fill(&stable, 500, 5, 1000);
    fill(&canary, 20, 10, 1000);
    sv_rollback_judge(&rule, &stable, &canary, &v);
    assert_true(v.is_judged && v.is_rollback);
    assert_non_null(strstr(v.reason, "error rate 0.5000"));
    /* Within the allowance: 5 % against 1 %. */
    fill(&canary, 100, 5, 1000);
    sv_rollback_judge(&rule, &stable, &canary, &v);
    assert_true(v.is_judged);
    assert_false(v.is_rollback);
    /* Latency: 5 ms against 1 ms rolls back; 1.5 ms does not. */
    fill(&canary, 100, 0, 5000);
    sv_rollback_judge(&rule, &stable, &canary, &v);
    assert_true(v.is_rollback);
    assert_non_null(strstr(v.reason, "p99"));
    fill(&canary, 100, 0, 1500);
    sv_rollback_judge(&rule, &stable, &canary, &v);
    assert_false(v.is_rollback);
    /* Latency not judged without enough samples on either side (below
     * 100 a p99 is the slowest answer), nor when off. */
    fill(&stable, 5, 0, 1000);
    fill(&canary, 100, 0, 50000);
    sv_rollback_judge(&rule, &stable, &canary, &v);
    assert_false(v.is_rollback);
    fill(&stable, 500, 0, 1000);
    fill(&canary, 99, 0, 50000);
    sv_rollback_judge(&rule, &stable, &canary, &v);
    assert_true(v.is_judged);
    assert_false(v.is_rollback);
    fill(&canary, 100, 0, 50000);
    fill(&stable, 500, 0, 1000);
    rule.max_p99_ratio = 0;
    sv_rollback_judge(&rule, &stable, &canary, &v);
    assert_false(v.is_rollback);
    /* No stable traffic at all (a 100 % canary): errors judged absolutely. */
    fill(&stable, 0, 0, 0);
    fill(&canary, 40, 4, 100);
    sv_rollback_judge(&rule, &stable, &canary, &v);
    assert_true(v.is_rollback);
}

static void test_value_copy_and_match(void **state)
{
    (void)state;
    st_arena arena;
    st_arena_init(&arena, 0);
    float a[4] = { 1.0f, 2.0f, 3.0f, 0.0f }, b[4] = { 1.00005f, 2.0f, 3.0f, 0.000001f };
    eng_tensor ta = { .dtype = ST_DT_FLOAT32, .rank = 2, .shape = { 2, 2 }, .data = a, .count = 4 };
    eng_tensor tb = ta;
    tb.data = b;
    eng_tensor copy;
    assert_int_equal(sv_value_copy(&arena, &ta, &copy), ST_OK);
    assert_ptr_not_equal(copy.data, a);
    a[0] = 7.0f; /* the copy does not follow the original */
    assert_true(((float *)copy.data)[0] == 1.0f);
    char why[128];
    assert_true(sv_value_match(&copy, &tb, why, sizeof why));
    b[2] = 3.01f;
    assert_false(sv_value_match(&copy, &tb, why, sizeof why));
    assert_non_null(strstr(why, "element 2"));
    eng_tensor tc = ta;
    tc.shape[0] = 4;
    tc.shape[1] = 1;
    assert_false(sv_value_match(&copy, &tc, why, sizeof why));
    int64_t ia[2] = { 1, 2 }, ib[2] = { 1, 3 };
    eng_tensor xa = { .dtype = ST_DT_INT64, .rank = 1, .shape = { 2 }, .data = ia, .count = 2 };
    eng_tensor xb = xa;
    xb.data = ib;
    assert_false(sv_value_match(&xa, &xb, NULL, 0));
    st_str sa[2] = { ST_STR("cat"), ST_STR("dog") }, sb[2] = { ST_STR("cat"), ST_STR("dog") };
    eng_tensor s1 = { .dtype = ST_DT_STRING, .rank = 1, .shape = { 2 }, .data = sa, .count = 2 };
    eng_tensor s2 = s1;
    s2.data = sb;
    assert_int_equal(sv_value_copy(&arena, &s1, &copy), ST_OK);
    assert_true(sv_value_match(&copy, &s2, NULL, 0));
    sb[1] = ST_STR("cow");
    assert_false(sv_value_match(&copy, &s2, NULL, 0));
    /* A sequence of two tensors, deep-copied. */
    eng_tensor items[2] = { xa, xa };
    eng_tensor seq = { .dtype = ENG_DT_SEQUENCE, .rank = 1, .shape = { 2, ST_DT_INT64 }, .data = items, .count = 2 };
    assert_int_equal(sv_value_copy(&arena, &seq, &copy), ST_OK);
    assert_true(sv_value_match(&copy, &seq, NULL, 0));
    ia[0] = 9;
    assert_false(sv_value_match(&copy, &seq, NULL, 0));
    st_arena_free(&arena);
}

/* ---- through the manager ------------------------------------------------ */

static char home[256];

static void push(const char *path)
{
    reg_store *r;
    st_error err = { 0 };
    assert_int_equal(reg_open(home, REG_OPEN_CREATE, &r, &err), ST_OK);
    reg_push_request req = { .name = "iris", .model_path = path, .format = "onnx" };
    int64_t version;
    assert_int_equal(reg_push(r, &req, &version, &err), ST_OK);
    reg_close(r);
}

static void set_policy(int64_t stable, int64_t canary, double percent, int64_t shadow, const char *sticky)
{
    reg_store *r;
    st_error err = { 0 };
    assert_int_equal(reg_open(home, REG_OPEN_EXISTING, &r, &err), ST_OK);
    reg_deployment d = { .stable = stable, .canary = canary, .canary_percent = percent, .shadow = shadow,
                         .sticky_header = sticky };
    d.rule = (reg_rollback_rule){ .max_error_rate_increase = 0.05, .max_p99_ratio = REG_P99_OFF, .window_s = 5,
                                  .min_requests = 20 };
    st_arena arena;
    st_arena_init(&arena, 0);
    if (reg_deploy_set(r, st_str_c("iris"), &d, &arena, NULL, &err) != ST_OK)
        fail_msg("deploy: %s", err.msg);
    st_arena_free(&arena);
    reg_close(r);
}

static const http_header user_header[] = { { ST_STR("X-User"), ST_STR("user-7") } };

/* Routes one request (no version named); version and shadow numbers. */
static void route(sv_manager *m, const http_request *req, const char *label, int64_t *version, int64_t *shadow,
                  bool *is_policy)
{
    sv_route r;
    bool parked;
    st_error err = { 0 };
    if (sv_manager_route(m, st_str_c("iris"), st_str_c(label), (st_str){ 0 }, req, NULL, &parked, &r, &err) != ST_OK)
        fail_msg("route: %s", err.msg);
    *version = r.version->number;
    *shadow = r.shadow ? r.shadow->number : 0;
    if (is_policy)
        *is_policy = r.is_policy;
    sv_version_release(r.version);
    sv_version_release(r.shadow);
}

/* Polls (bounded) until a request routes to `want` (and, when a policy is
 * expected, by the policy). */
static void wait_route(sv_manager *m, const char *label, int64_t want, bool want_policy)
{
    http_request req = { 0 };
    for (int i = 0; i < 1000; i++) {
        int64_t v, sh;
        bool is_policy;
        route(m, &req, label, &v, &sh, &is_policy);
        if (v == want && is_policy == want_policy)
            return;
        st_sleep_us(10000);
    }
    fail_msg("never routed to version %lld", (long long)want);
}

static void test_manager_serves_registry_policies(void **state)
{
    (void)state;
    snprintf(home, sizeof home, "/tmp/stratus-test-traffic-%ld", (long)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", home);
    assert_int_equal(system(cmd), 0);
    push("examples/models/iris/1/model.onnx");
    push("examples/models/iris/2/model.onnx");
    sv_manager_options opt = { .registry = home, .n_workers = 1, .poll_ms = 20, .load_wait_ms = 5000 };
    sv_manager *m = NULL;
    st_error err = { 0 };
    assert_int_equal(sv_manager_start(&opt, &m, &err), ST_OK);
    sv_manager_wait_initial(m, 10000);

    /* The latest, then what "production" names, also as a label. */
    wait_route(m, "", 2, false);
    reg_store *r;
    assert_int_equal(reg_open(home, REG_OPEN_EXISTING, &r, &err), ST_OK);
    assert_int_equal(reg_set_alias(r, st_str_c("iris"), 1, st_str_c("production"), &err), ST_OK);
    reg_close(r);
    wait_route(m, "", 1, false);
    wait_route(m, "production", 1, false);

    /* 10 %: exactly 100 of 1,000; a sticky user always on one side. */
    set_policy(1, 2, 10, 0, "X-User");
    wait_route(m, "", 1, true);
    http_request plain = { 0 }, sticky = { .headers = user_header, .n_headers = 1 };
    int64_t v = 0, sh, first;
    /* The canary loads after the stable version (the alias move unloaded it). */
    for (int i = 0; i < 1000 && v != 2; i++) {
        route(m, &plain, "", &v, &sh, NULL);
        if (v != 2)
            st_sleep_us(1000);
    }
    assert_int_equal(v, 2);
    int canary = 0;
    for (int i = 0; i < 1000; i++) {
        route(m, &plain, "", &v, &sh, NULL);
        canary += v == 2;
    }
    assert_int_equal(canary, 100); /* any 1,000 in a row: 100 exactly (10,000 * 10 % spread evenly) */
    route(m, &sticky, "", &first, &sh, NULL);
    for (int i = 0; i < 50; i++) {
        route(m, &sticky, "", &v, &sh, NULL);
        assert_int_equal(v, first);
    }

    /* A shadow: named with every policy-routed request, never chosen. */
    set_policy(1, 0, 0, 2, "");
    for (int i = 0; i < 1000; i++) {
        route(m, &plain, "", &v, &sh, NULL);
        if (sh == 2)
            break;
        st_sleep_us(10000);
    }
    assert_int_equal(v, 1);
    assert_int_equal(sh, 2);

    /* A canary that fails every answer is rolled back by the loader. */
    set_policy(1, 2, 50, 0, "");
    for (int i = 0; i < 2000; i++) {
        sv_route rt;
        bool parked;
        assert_int_equal(sv_manager_route(m, st_str_c("iris"), (st_str){ 0 }, (st_str){ 0 }, &plain, NULL, &parked,
                                          &rt, &err),
                         ST_OK);
        sv_window *w = atomic_load(&rt.version->window);
        if (rt.is_policy && w)
            sv_window_record(w, st_now_us(), rt.version->number == 2, 100);
        sv_model *model = rt.version->model;
        sv_version_release(rt.version);
        sv_version_release(rt.shadow); /* the shadow policy may not be replaced yet */
        if (atomic_load(&model->stats.rollbacks) == 1)
            break;
        st_sleep_us(1000);
    }
    for (int i = 0; i < 100; i++) {
        route(m, &plain, "", &v, &sh, NULL);
        assert_int_equal(v, 1);
    }
    /* The registry has it, by the server's name, with the reason. */
    assert_int_equal(reg_open(home, REG_OPEN_EXISTING, &r, &err), ST_OK);
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_deployment d;
    for (int i = 0; i < 500; i++) {
        assert_int_equal(reg_deploy_get(r, st_str_c("iris"), &arena, &d, &err), ST_OK);
        if (strcmp(d.state, "rolled_back") == 0)
            break;
        st_sleep_us(10000);
    }
    assert_string_equal(d.state, "rolled_back");
    assert_int_equal(d.canary, 0);
    assert_non_null(strstr(d.reason, "error rate"));
    assert_string_equal(d.updated_by, "stratus serve (automatic rollback)");
    st_arena_free(&arena);
    reg_close(r);
    sv_manager_free(m);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_is_exact_over_any_10000),
        cmocka_unit_test(test_split_exact_when_threads_race),
        cmocka_unit_test(test_sticky_bucket_stable_and_spread),
        cmocka_unit_test(test_latency_buckets),
        cmocka_unit_test(test_window_counts_its_span_only),
        cmocka_unit_test(test_window_long_span_uses_wider_slots),
        cmocka_unit_test(test_window_threads_record_at_once),
        cmocka_unit_test(test_quantile),
        cmocka_unit_test(test_judge),
        cmocka_unit_test(test_value_copy_and_match),
        cmocka_unit_test(test_manager_serves_registry_policies),
    };
    return cmocka_run_group_tests_name("traffic", tests, NULL, NULL);
}
