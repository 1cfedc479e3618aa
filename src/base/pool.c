/* pool.c - the thread pool behind st_pool_run.  A run is published as one
 * atomic word (generation and number of participating workers); workers
 * spin on it briefly, then sleep on a condition variable.  The caller waits
 * for every participant, so the run's fields are never reused early. */
#include "base/pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#define POOL_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define POOL_PAUSE() __asm__ volatile("yield")
#else
#define POOL_PAUSE() ((void)0)
#endif

/* Polls before sleeping: tens of microseconds, enough to catch the next
 * run of a compute loop without burning a core when idle. */
enum { POOL_SPIN_ROUNDS = 2048 };
/* run_word layout: generation << 16 | participating workers. */
enum { POOL_PARTICIPANT_BITS = 16 };
#define POOL_PARTICIPANT_MASK ((UINT64_C(1) << POOL_PARTICIPANT_BITS) - 1)

typedef struct {
    st_pool *pool;
    int index; /* among workers, from 0; workers below a run's participant
                * count take part in it */
    pthread_t thread;
} pool_worker;

struct st_pool {
    int n_workers; /* threads besides the caller */
    pool_worker *workers;

    /* The current run: written by the caller before it publishes the run
     * word, read by participants after they see the word. */
    st_pool_task_fn fn;
    void *ctx;
    int n_tasks;
    uint64_t generation; /* caller only, under run_lock (or in destroy) */

    _Atomic uint64_t run_word;
    _Atomic size_t next_task;
    _Atomic int pending;     /* participants not yet finished */
    _Atomic int n_sleeping;  /* workers blocked, or about to block, on wake */
    _Atomic bool is_caller_sleeping;
    _Atomic bool is_stopping;

    pthread_mutex_t mutex; /* guards sleeping on wake and done */
    pthread_cond_t wake;   /* a new run word (or stop) was published */
    pthread_cond_t done;   /* pending reached 0 */
    pthread_mutex_t run_lock; /* one run at a time */
};

/* Non-zero while this thread executes tasks: nested runs go inline. */
static _Thread_local int pool_task_depth;

static void pool_work(st_pool *pool)
{
    st_pool_task_fn fn = pool->fn;
    void *ctx = pool->ctx;
    int n_tasks = pool->n_tasks;
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (t >= (size_t)n_tasks)
            break;
        fn(ctx, (int)t, n_tasks);
    }
}

/* Returns the first run word different from `seen`.  Lost wake-ups are
 * impossible: the sleeper bumps n_sleeping then re-reads the word, the
 * publisher stores the word then reads n_sleeping (both seq_cst), so at
 * least one of them sees the other, and the sleeper holds the mutex until
 * it waits. */
static uint64_t pool_wait_for_run(st_pool *pool, uint64_t seen)
{
    uint64_t word;
    for (int i = 0; i < POOL_SPIN_ROUNDS; i++) {
        word = atomic_load_explicit(&pool->run_word, memory_order_acquire);
        if (word != seen)
            return word;
        POOL_PAUSE();
    }
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add(&pool->n_sleeping, 1);
    while ((word = atomic_load(&pool->run_word)) == seen)
        pthread_cond_wait(&pool->wake, &pool->mutex);
    atomic_fetch_sub(&pool->n_sleeping, 1);
    pthread_mutex_unlock(&pool->mutex);
    return word;
}

static void pool_publish(st_pool *pool, uint64_t word)
{
    atomic_store(&pool->run_word, word);
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
}

/* Worker side of the barrier (same Dekker pairing as pool_wait_for_run). */
static void pool_finish(st_pool *pool)
{
    if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->is_caller_sleeping)) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->mutex);
    }
}

static void pool_wait_done(st_pool *pool)
{
    for (int i = 0; i < POOL_SPIN_ROUNDS; i++) {
        if (atomic_load_explicit(&pool->pending, memory_order_acquire) == 0)
            return;
        POOL_PAUSE();
    }
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->is_caller_sleeping, true);
    while (atomic_load(&pool->pending) != 0)
        pthread_cond_wait(&pool->done, &pool->mutex);
    atomic_store(&pool->is_caller_sleeping, false);
    pthread_mutex_unlock(&pool->mutex);
}

static void *pool_worker_main(void *arg)
{
    pool_worker *self = arg;
    st_pool *pool = self->pool;
    uint64_t seen = 0;
    pool_task_depth = 1; /* a worker only ever runs tasks */
    for (;;) {
        seen = pool_wait_for_run(pool, seen);
        if (atomic_load(&pool->is_stopping))
            break;
        if ((uint64_t)self->index >= (seen & POOL_PARTICIPANT_MASK))
            continue;
        pool_work(pool);
        pool_finish(pool);
    }
    return NULL;
}

/* Tells the first n_started workers to exit and joins them. */
static void pool_stop(st_pool *pool, int n_started)
{
    atomic_store(&pool->is_stopping, true);
    pthread_mutex_lock(&pool->mutex);
    pool->generation++;
    atomic_store(&pool->run_word, pool->generation << POOL_PARTICIPANT_BITS);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 0; i < n_started; i++)
        pthread_join(pool->workers[i].thread, NULL);
}

static void pool_free(st_pool *pool)
{
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->run_lock);
    st_free(pool->workers);
    st_free(pool);
}

st_status st_pool_create(int n_threads, st_pool **out, st_error *err)
{
    st_status s = ST_OK;
    st_pool *pool = NULL;
    int n_started = 0;
    if (n_threads <= 0)
        n_threads = st_cpu_count_online();
    if (n_threads > ST_POOL_MAX_THREADS)
        return st_fail(err, ST_EINVAL, "thread pool: %d threads asked, at most %d supported",
                       n_threads, ST_POOL_MAX_THREADS);

    pool = st_calloc(1, sizeof *pool);
    if (!pool)
        return st_fail(err, ST_ENOMEM, "thread pool: out of memory");
    /* Default attributes: these inits cannot fail on Linux. */
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    pthread_mutex_init(&pool->run_lock, NULL);
    pool->workers = st_calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool->workers) {
        s = st_fail(err, ST_ENOMEM, "thread pool: out of memory");
        goto cleanup;
    }

    /* Workers inherit a full signal mask: signals belong to the threads
     * that handle them (the server's), never to a compute thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < n_threads - 1; i++) {
        pool_worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i;
        int rc = pthread_create(&w->thread, NULL, pool_worker_main, w);
        if (rc != 0) {
            s = st_fail(err, ST_EAGAIN, "thread pool: cannot start thread %d of %d: %s", i + 2,
                        n_threads, strerror(rc));
            break;
        }
        char name[16];
        snprintf(name, sizeof name, "st-pool-%u", (unsigned)(i + 1) % 10000u);
        pthread_setname_np(w->thread, name);
        n_started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pool->n_workers = n_started;

cleanup:
    if (s != ST_OK) {
        pool_stop(pool, n_started);
        pool_free(pool);
        return s;
    }
    *out = pool;
    return ST_OK;
}

void st_pool_destroy(st_pool *pool)
{
    if (!pool)
        return;
    pool_stop(pool, pool->n_workers);
    pool_free(pool);
}

int st_pool_size(const st_pool *pool)
{
    return pool ? pool->n_workers + 1 : 1;
}

void st_pool_run(st_pool *pool, st_pool_task_fn fn, void *ctx, int n_tasks)
{
    if (n_tasks <= 0)
        return;
    if (!pool || pool->n_workers == 0 || n_tasks == 1 || pool_task_depth > 0) {
        for (int i = 0; i < n_tasks; i++)
            fn(ctx, i, n_tasks);
        return;
    }
    pthread_mutex_lock(&pool->run_lock);
    int participants = n_tasks - 1 < pool->n_workers ? n_tasks - 1 : pool->n_workers;
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_tasks = n_tasks;
    atomic_store_explicit(&pool->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->pending, participants, memory_order_relaxed);
    pool->generation++;
    pool_publish(pool, pool->generation << POOL_PARTICIPANT_BITS | (uint64_t)participants);
    pool_task_depth++;
    pool_work(pool);
    pool_task_depth--;
    pool_wait_done(pool);
    pthread_mutex_unlock(&pool->run_lock);
}

typedef struct {
    st_pool_range_fn fn;
    void *ctx;
    size_t n_items;
    size_t n_chunks;
} pool_range;

/* Chunk ith of n_chunks: sizes differ by at most one, bigger ones first. */
static void pool_range_task(void *arg, int ith, int nth)
{
    const pool_range *r = arg;
    (void)nth;
    size_t i = (size_t)ith;
    size_t base = r->n_items / r->n_chunks, extra = r->n_items % r->n_chunks;
    size_t begin = i * base + (i < extra ? i : extra);
    size_t end = begin + base + (i < extra ? 1 : 0);
    r->fn(r->ctx, begin, end);
}

void st_pool_parallel_for(st_pool *pool, size_t n_items, size_t grain, st_pool_range_fn fn,
                          void *ctx)
{
    if (n_items == 0)
        return;
    if (grain == 0)
        grain = 1;
    size_t max_chunks = (size_t)st_pool_size(pool) * 4;
    size_t n_chunks = n_items / grain;
    if (n_chunks > max_chunks)
        n_chunks = max_chunks;
    if (n_chunks <= 1 || st_pool_size(pool) == 1 || pool_task_depth > 0) {
        fn(ctx, 0, n_items);
        return;
    }
    pool_range range = { fn, ctx, n_items, n_chunks };
    st_pool_run(pool, pool_range_task, &range, (int)n_chunks);
}
