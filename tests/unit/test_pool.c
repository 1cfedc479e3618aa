/* test_pool.c - unit tests for base/pool: every task index runs exactly
 * once with the right nth, writes are visible after the barrier, ranges
 * cover their input, nested and concurrent runs, idle workers sleep, and
 * create/destroy clean up (also under allocation failure). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testing.h"

#include "base/alloc.h"
#include "base/cpu.h"
#include "base/pool.h"
#include "base/time.h"

static st_pool *make_pool(int n_threads)
{
    st_pool *pool = NULL;
    st_error err = { 0 };
    assert_int_equal(st_pool_create(n_threads, &pool, &err), ST_OK);
    assert_non_null(pool);
    return pool;
}

/* ---- st_pool_run -------------------------------------------------------- */

enum { MAX_TASKS = 4096 };

typedef struct {
    _Atomic int calls[MAX_TASKS];
    _Atomic int wrong_nth;
    int nth;
} count_ctx;

static void count_task(void *arg, int ith, int nth)
{
    count_ctx *c = arg;
    if (nth != c->nth || ith < 0 || ith >= nth)
        atomic_fetch_add(&c->wrong_nth, 1);
    else
        atomic_fetch_add(&c->calls[ith], 1);
}

static void run_and_check(st_pool *pool, int n_tasks)
{
    static count_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.nth = n_tasks;
    st_pool_run(pool, count_task, &ctx, n_tasks);
    assert_int_equal(atomic_load(&ctx.wrong_nth), 0);
    for (int i = 0; i < n_tasks; i++)
        if (atomic_load(&ctx.calls[i]) != 1)
            fail_msg("pool of %d, %d tasks: task %d ran %d times", st_pool_size(pool), n_tasks,
                     i, atomic_load(&ctx.calls[i]));
}

static void test_run_every_task_once(void **state)
{
    (void)state;
    static const int sizes[] = { 1, 2, 3, 4, 8, 17 };
    static const int tasks[] = { 1, 2, 3, 5, 16, 100, 1000, MAX_TASKS };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        st_pool *pool = make_pool(sizes[s]);
        assert_int_equal(st_pool_size(pool), sizes[s]);
        for (size_t t = 0; t < sizeof tasks / sizeof tasks[0]; t++)
            run_and_check(pool, tasks[t]);
        st_pool_destroy(pool);
    }
}

static void test_run_ith_nth_coverage(void **state)
{
    (void)state;
    st_pool *pool = make_pool(6);
    for (int nth = 1; nth <= 64; nth++)
        run_and_check(pool, nth);
    st_pool_destroy(pool);
}

/* Plain (non-atomic) writes: each slot has one writer per run and runs are
 * separated by the barrier, so ThreadSanitizer sees no race. */
typedef struct {
    long sums[64];
    int round;
} plain_ctx;

static void plain_task(void *arg, int ith, int nth)
{
    plain_ctx *c = arg;
    (void)nth;
    c->sums[ith] += c->round;
}

static void test_run_repeated(void **state)
{
    (void)state;
    st_pool *pool = make_pool(4);
    static plain_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    long expect[64] = { 0 };
    for (int r = 0; r < 5000; r++) {
        int n_tasks = 1 + r % 13;
        ctx.round = r;
        st_pool_run(pool, plain_task, &ctx, n_tasks);
        for (int i = 0; i < n_tasks; i++)
            expect[i] += r;
        if (r % 500 == 0)
            st_sleep_us(3000); /* let the workers fall asleep now and then */
    }
    for (int i = 0; i < 64; i++)
        assert_int_equal(ctx.sums[i], expect[i]);
    st_pool_destroy(pool);
}

typedef struct {
    pthread_t threads[64];
    _Atomic int n;
} thread_ctx;

static void record_thread_task(void *arg, int ith, int nth)
{
    thread_ctx *c = arg;
    (void)nth;
    c->threads[ith] = pthread_self();
    atomic_fetch_add(&c->n, 1);
    st_sleep_us(2000);
}

static int count_distinct(const pthread_t *threads, int n)
{
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        bool is_new = true;
        for (int j = 0; j < i; j++)
            is_new = is_new && !pthread_equal(threads[i], threads[j]);
        distinct += is_new;
    }
    return distinct;
}

static void test_run_uses_workers_and_inline_cases(void **state)
{
    (void)state;
    static thread_ctx ctx;
    pthread_t self = pthread_self();

    st_pool *pool = make_pool(4);
    memset(&ctx, 0, sizeof ctx);
    st_pool_run(pool, record_thread_task, &ctx, 16);
    assert_int_equal(atomic_load(&ctx.n), 16);
    assert_true(count_distinct(ctx.threads, 16) >= 2);
    st_pool_destroy(pool);

    /* NULL pool, one-thread pool and a single task all run on the caller. */
    st_pool *single = make_pool(1);
    assert_int_equal(st_pool_size(single), 1);
    assert_int_equal(st_pool_size(NULL), 1);
    st_pool *several = make_pool(3);
    st_pool *const pools[] = { NULL, single, several };
    for (size_t p = 0; p < 3; p++) {
        int n_tasks = pools[p] == several ? 1 : 5;
        memset(&ctx, 0, sizeof ctx);
        st_pool_run(pools[p], record_thread_task, &ctx, n_tasks);
        assert_int_equal(atomic_load(&ctx.n), n_tasks);
        for (int i = 0; i < n_tasks; i++)
            assert_true(pthread_equal(ctx.threads[i], self));
    }

    /* No tasks: nothing runs. */
    memset(&ctx, 0, sizeof ctx);
    st_pool_run(several, record_thread_task, &ctx, 0);
    st_pool_run(several, record_thread_task, &ctx, -3);
    st_pool_run(NULL, record_thread_task, &ctx, 0);
    assert_int_equal(atomic_load(&ctx.n), 0);
    st_pool_destroy(single);
    st_pool_destroy(several);
    st_pool_destroy(NULL);
}

/* ---- nesting and concurrent callers ------------------------------------- */

typedef struct {
    st_pool *pool;
    _Atomic int inner_calls[8][8];
    _Atomic int range_items[8][100];
} nested_ctx;

typedef struct {
    nested_ctx *outer;
    int outer_ith;
} inner_arg;

static void inner_task(void *arg, int ith, int nth)
{
    inner_arg *a = arg;
    (void)nth;
    atomic_fetch_add(&a->outer->inner_calls[a->outer_ith][ith], 1);
}

static void inner_range(void *arg, size_t begin, size_t end)
{
    inner_arg *a = arg;
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add(&a->outer->range_items[a->outer_ith][i], 1);
}

static void outer_task(void *arg, int ith, int nth)
{
    nested_ctx *c = arg;
    (void)nth;
    inner_arg a = { c, ith };
    st_pool_run(c->pool, inner_task, &a, 8); /* runs inline: no deadlock */
    st_pool_parallel_for(c->pool, 100, 1, inner_range, &a);
}

static void test_nested_runs_inline(void **state)
{
    (void)state;
    static nested_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.pool = make_pool(4);
    st_pool_run(ctx.pool, outer_task, &ctx, 8);
    for (int o = 0; o < 8; o++) {
        for (int i = 0; i < 8; i++)
            assert_int_equal(atomic_load(&ctx.inner_calls[o][i]), 1);
        for (int i = 0; i < 100; i++)
            assert_int_equal(atomic_load(&ctx.range_items[o][i]), 1);
    }
    st_pool_destroy(ctx.pool);
}

typedef struct {
    st_pool *pool;
    int id;
    long sums[16];
    bool is_ok;
} caller_ctx;

static void caller_task(void *arg, int ith, int nth)
{
    caller_ctx *c = arg;
    (void)nth;
    c->sums[ith] += c->id + 1;
}

static void *caller_main(void *arg)
{
    caller_ctx *c = arg;
    for (int r = 0; r < 300; r++)
        st_pool_run(c->pool, caller_task, c, 16);
    c->is_ok = true;
    for (int i = 0; i < 16; i++)
        c->is_ok = c->is_ok && c->sums[i] == 300L * (c->id + 1);
    return NULL;
}

static void test_concurrent_callers(void **state)
{
    (void)state;
    st_pool *pool = make_pool(3);
    static caller_ctx callers[4];
    pthread_t threads[4];
    memset(callers, 0, sizeof callers);
    for (int t = 0; t < 4; t++) {
        callers[t].pool = pool;
        callers[t].id = t;
        assert_int_equal(pthread_create(&threads[t], NULL, caller_main, &callers[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        assert_true(callers[t].is_ok);
    }
    st_pool_destroy(pool);
}

/* ---- st_pool_parallel_for ----------------------------------------------- */

enum { MAX_CHUNKS = 4 * 32 + 1 };

typedef struct {
    size_t begins[MAX_CHUNKS], ends[MAX_CHUNKS];
    _Atomic int n_chunks;
    _Atomic unsigned char *hits; /* per item, when the range is small */
} range_ctx;

static void record_range(void *arg, size_t begin, size_t end)
{
    range_ctx *c = arg;
    int k = atomic_fetch_add(&c->n_chunks, 1);
    if (k < MAX_CHUNKS) {
        c->begins[k] = begin;
        c->ends[k] = end;
    }
    if (c->hits)
        for (size_t i = begin; i < end; i++)
            atomic_fetch_add(&c->hits[i], 1);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs parallel_for and checks: contiguous disjoint cover of [0, n), every
 * chunk >= grain (or one chunk when n < grain), at most 4 per thread. */
static void check_parallel_for(st_pool *pool, size_t n, size_t grain, bool use_hits)
{
    static range_ctx ctx;
    static _Atomic unsigned char hits[20000];
    memset(&ctx, 0, sizeof ctx);
    if (use_hits) {
        assert_true(n <= sizeof hits);
        memset(hits, 0, sizeof hits);
        ctx.hits = hits;
    }
    st_pool_parallel_for(pool, n, grain, record_range, &ctx);
    int k = atomic_load(&ctx.n_chunks);
    if (n == 0) {
        assert_int_equal(k, 0);
        return;
    }
    assert_true(k >= 1 && k <= 4 * st_pool_size(pool));
    /* Sort chunks by begin (pairs: sort indices through a key array). */
    size_t order[MAX_CHUNKS][2];
    for (int i = 0; i < k; i++)
        order[i][0] = ctx.begins[i], order[i][1] = ctx.ends[i];
    qsort(order, (size_t)k, sizeof order[0], cmp_size);
    size_t at = 0;
    size_t min_size = grain == 0 ? 1 : grain;
    for (int i = 0; i < k; i++) {
        assert_true(order[i][0] == at);
        assert_true(order[i][1] > order[i][0]);
        if (n >= min_size)
            assert_true(order[i][1] - order[i][0] >= min_size);
        at = order[i][1];
    }
    assert_true(at == n);
    if (n < min_size)
        assert_int_equal(k, 1);
    if (use_hits)
        for (size_t i = 0; i < n; i++)
            assert_int_equal(atomic_load(&hits[i]), 1);
}

static void test_parallel_for_covers_range(void **state)
{
    (void)state;
    st_pool *p1 = make_pool(1), *p3 = make_pool(3), *p8 = make_pool(8);
    st_pool *const pools[] = { NULL, p1, p3, p8 };
    static const size_t ns[] = { 0, 1, 2, 7, 31, 100, 1000, 12345, 20000 };
    static const size_t grains[] = { 0, 1, 3, 64, 1000, 100000 };
    for (size_t p = 0; p < 4; p++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
                check_parallel_for(pools[p], ns[i], grains[g], true);
    /* Huge ranges: chunk arithmetic must not overflow. */
    check_parallel_for(p8, SIZE_MAX, 1, false);
    check_parallel_for(p8, SIZE_MAX / 2 + 12345, SIZE_MAX / 9, false);
    check_parallel_for(p3, SIZE_MAX - 1, SIZE_MAX, false);
    st_pool_destroy(p1);
    st_pool_destroy(p3);
    st_pool_destroy(p8);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void test_create_destroy(void **state)
{
    (void)state;
    /* Destroy right away (workers may not have reached their wait yet),
     * after a run, and after the workers have gone to sleep. */
    for (int i = 0; i < 50; i++)
        st_pool_destroy(make_pool(1 + i % 9));
    st_pool *pool = make_pool(8);
    run_and_check(pool, 100);
    st_pool_destroy(pool);
    pool = make_pool(8);
    run_and_check(pool, 100);
    st_sleep_us(20000);
    st_pool_destroy(pool);

    pool = make_pool(0);
    assert_int_equal(st_pool_size(pool), st_cpu_count_online());
    st_pool_destroy(pool);

    st_error err = { 0 };
    pool = NULL;
    assert_int_equal(st_pool_create(ST_POOL_MAX_THREADS + 1, &pool, &err), ST_EINVAL);
    assert_null(pool);
    assert_true(strlen(err.msg) > 0);
}

static void test_create_out_of_memory(void **state)
{
    (void)state;
    bool is_created = false;
    for (uint64_t k = 1; !is_created; k++) {
        st_pool *pool = NULL;
        st_error err = { 0 };
        st_alloc_fail_after(k);
        st_status s = st_pool_create(4, &pool, &err);
        st_alloc_fail_reset();
        if (s == ST_OK) {
            is_created = true;
            run_and_check(pool, 10);
            st_pool_destroy(pool);
        } else {
            assert_int_equal(s, ST_ENOMEM);
            assert_null(pool);
            assert_non_null(strstr(err.msg, "out of memory"));
        }
        assert_true(k < 10);
    }
}

static double process_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Idle workers must sleep, not spin: over 200 ms of idling, four workers
 * that spun would burn several hundred ms of CPU. */
static void test_idle_workers_sleep(void **state)
{
    (void)state;
    st_pool *pool = make_pool(5);
    run_and_check(pool, 50);
    st_sleep_us(50000); /* past any spin phase */
    double before = process_cpu_seconds();
    st_sleep_us(200000);
    double used = process_cpu_seconds() - before;
    st_pool_destroy(pool);
    if (used >= 0.05)
        fail_msg("idle pool used %.3f s of CPU in 0.2 s", used);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_every_task_once),
        cmocka_unit_test(test_run_ith_nth_coverage),
        cmocka_unit_test(test_run_repeated),
        cmocka_unit_test(test_run_uses_workers_and_inline_cases),
        cmocka_unit_test(test_nested_runs_inline),
        cmocka_unit_test(test_concurrent_callers),
        cmocka_unit_test(test_parallel_for_covers_range),
        cmocka_unit_test(test_create_destroy),
        cmocka_unit_test(test_create_out_of_memory),
        cmocka_unit_test(test_idle_workers_sleep),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
