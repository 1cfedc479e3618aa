/* norm_int.h - what the normalisation family (norm.c) and the resampling
 * operators (resize.c) share: resize.c's entry points for norm.c's op
 * table, and small helpers for float kernels. */
#ifndef ST_ENGINE_OPS_NORM_INT_H
#define ST_ENGINE_OPS_NORM_INT_H

#include <stdint.h>
#include <string.h>

#include "engine/ops/ops.h"

/* --- resize.c ------------------------------------------------------------- */

st_status op_resize_check(eng_node *n, st_arena *arena, st_error *err);
st_status op_resize_infer(eng_kctx *k);
st_status op_resize_run(eng_kctx *k);
st_status op_depth_to_space_check(eng_node *n, st_arena *arena, st_error *err);
st_status op_depth_to_space_infer(eng_kctx *k);
st_status op_depth_to_space_run(eng_kctx *k);
st_status op_space_to_depth_infer(eng_kctx *k);
st_status op_space_to_depth_run(eng_kctx *k);
st_status op_grid_sample_check(eng_node *n, st_arena *arena, st_error *err);
st_status op_grid_sample_infer(eng_kctx *k);
st_status op_grid_sample_run(eng_kctx *k);

/* --- float helpers (norm.c) ----------------------------------------------- */

static inline bool norm_is_float(st_dtype t)
{
    return t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64 || t == ST_DT_FLOAT16;
}

/* Runs `run` with every float16 input and output of k seen as float32:
 * inputs are converted into scratch copies, outputs computed into scratch
 * and converted back.  Lets an op implement float32/float64 only. */
st_status norm_run_f16_as_f32(eng_kctx *k, st_status (*run)(eng_kctx *k));

/* --- threads --------------------------------------------------------------------- */

/* Processes rows [begin, end); `task` (< the task count) indexes per-task
 * scratch. */
typedef void (*norm_rows_fn)(void *ctx, size_t begin, size_t end, int task);

/* Tasks to split `rows` rows of about `row_cost` elements each into: one
 * per thread of k->pool, none under ~32K elements (a pool run costs a few
 * microseconds); 1 without a pool. */
int norm_par_tasks(const eng_kctx *k, size_t rows, size_t row_cost);
/* Calls fn over contiguous row ranges on `tasks` tasks of k->pool (inline
 * when tasks <= 1) and returns when all are done. */
void norm_par_run(eng_kctx *k, int tasks, size_t rows, norm_rows_fn fn, void *ctx);

/* --- vector helpers ---------------------------------------------------------
 *
 * The project builds at -O2, where GCC's cost model vectorises almost no
 * loop, so float32 hot loops use vector extensions.  Four lanes here (plain
 * SSE2 on x86-64); norm.c's kernels also have an eight-lane AVX2 build. */

#define NORM_INLINE static inline __attribute__((always_inline))
#if defined(__x86_64__) || defined(__i386__)
#define NORM_HAS_AVX2_BUILD 1
#define NORM_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define NORM_HAS_AVX2_BUILD 0
#define NORM_TARGET_AVX2
#endif

typedef float norm_vf4 __attribute__((vector_size(16)));

/* y[i] += a * x[i] for i < n (y and x do not overlap). */
NORM_INLINE void norm_axpy_f32(float *restrict y, const float *restrict x, float a, size_t n)
{
    norm_vf4 va = { a, a, a, a };
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        norm_vf4 vx, vy;
        memcpy(&vx, x + i, sizeof vx);
        memcpy(&vy, y + i, sizeof vy);
        vy += va * vx;
        memcpy(y + i, &vy, sizeof vy);
    }
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* y[i] = a * x[i] for i < n (y may be x). */
NORM_INLINE void norm_scale_f32(float *y, const float *x, float a, size_t n)
{
    norm_vf4 va = { a, a, a, a };
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        norm_vf4 vx;
        memcpy(&vx, x + i, sizeof vx);
        vx *= va;
        memcpy(y + i, &vx, sizeof vx);
    }
    for (; i < n; i++)
        y[i] = a * x[i];
}

#endif
