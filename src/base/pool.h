/* pool.h - a fixed pool of worker threads for data-parallel compute.
 * ggml-style: threads are started once; a run hands out task indices,
 * the caller works too, and the run ends at a barrier.  A run allocates
 * nothing; idle workers spin briefly, then sleep on a condition variable.
 *
 *     static void scale_rows(void *ctx, size_t begin, size_t end) { ... }
 *     st_pool *pool;
 *     if (st_pool_create(0, &pool, &err) != ST_OK) ...   // one per CPU
 *     st_pool_parallel_for(pool, n_rows, 64, scale_rows, &args);
 *     st_pool_destroy(pool);
 */
#ifndef ST_POOL_H
#define ST_POOL_H

#include <stddef.h>

#include "base/status.h"

typedef struct st_pool st_pool;

/* A task: called once for each ith in [0, nth). */
typedef void (*st_pool_task_fn)(void *ctx, int ith, int nth);
/* A range task: called for disjoint [begin, end) ranges covering the input. */
typedef void (*st_pool_range_fn)(void *ctx, size_t begin, size_t end);

/* Most threads a pool may have (including the caller). */
#define ST_POOL_MAX_THREADS 1024

/* Starts a pool of `n_threads` threads counting the caller (so n_threads - 1
 * workers); n_threads <= 0 means st_cpu_count_online().  Workers block all
 * signals.  ST_EINVAL above ST_POOL_MAX_THREADS, ST_ENOMEM, or ST_EAGAIN
 * when a thread cannot be started; *out is set only on success. */
st_status st_pool_create(int n_threads, st_pool **out, st_error *err);
/* Stops and joins the workers and frees the pool; NULL is a no-op.  No run
 * may be in progress. */
void st_pool_destroy(st_pool *pool);
/* Threads that work on a run, caller included; 1 for NULL. */
int st_pool_size(const st_pool *pool);

/* Calls fn(ctx, ith, n_tasks) exactly once for every ith in [0, n_tasks)
 * on the workers and the calling thread, returning when all calls are done
 * (their writes are then visible to the caller).  Tasks are handed out in
 * order, first come first served.  Runs inline on the caller for a NULL or
 * one-thread pool, for n_tasks == 1, and when called from inside a task of
 * any pool (nested runs never deadlock).  Runs from different threads are
 * serialised.  n_tasks <= 0 does nothing. */
void st_pool_run(st_pool *pool, st_pool_task_fn fn, void *ctx, int n_tasks);

/* Splits [0, n_items) into contiguous chunks of at least `grain` items
 * (grain 0 means 1; a single chunk when n_items < grain), at most four
 * chunks per thread, and calls fn once per chunk through st_pool_run.
 * n_items == 0 does nothing. */
void st_pool_parallel_for(st_pool *pool, size_t n_items, size_t grain, st_pool_range_fn fn,
                          void *ctx);

#endif
