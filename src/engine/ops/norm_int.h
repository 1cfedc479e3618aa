/* norm_int.h - what the normalisation family (norm.c) and the resampling
 * operators (resize.c) share: resize.c's entry points for norm.c's op
 * table, and small helpers for float kernels.
 *
 * The project builds at -O2, where GCC's cost model vectorises almost no
 * loop, so the float32 hot loops are written with GCC/clang vector
 * extensions (eight lanes; SSE2 pairs by default, one AVX2 register in the
 * functions compiled with NORM_TARGET_AVX2).  Vectors never cross a
 * function boundary by value (that would change the ABI between the two
 * compilations): helpers are always_inline and take pointers. */
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

/* --- vector helpers -------------------------------------------------------- */

#define NORM_INLINE static inline __attribute__((always_inline))
#if defined(__x86_64__) || defined(__i386__)
#define NORM_HAS_AVX2_BUILD 1
#define NORM_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define NORM_HAS_AVX2_BUILD 0
#define NORM_TARGET_AVX2
#endif

typedef float norm_vf8 __attribute__((vector_size(32)));
typedef int32_t norm_vi8 __attribute__((vector_size(32)));
typedef uint32_t norm_vu8 __attribute__((vector_size(32)));

NORM_INLINE void vf8_load(norm_vf8 *v, const float *p)
{
    memcpy(v, p, sizeof *v);
}

NORM_INLINE void vf8_store(float *p, const norm_vf8 *v)
{
    memcpy(p, v, sizeof *v);
}

NORM_INLINE void vf8_splat(norm_vf8 *v, float x)
{
    norm_vf8 zero = { 0 };
    *v = zero + x;
}

/* *v = mask ? a : b, lane by lane (mask lanes are all ones or zero). */
NORM_INLINE void vf8_select(norm_vf8 *v, const norm_vi8 *mask, const norm_vf8 *a, const norm_vf8 *b)
{
    *v = (norm_vf8)(((norm_vi8)*a & *mask) | ((norm_vi8)*b & ~*mask));
}

/* y[i] += a * x[i] for i < n. */
NORM_INLINE void vf8_axpy(float *restrict y, const float *restrict x, float a, size_t n)
{
    size_t i = 0;
    norm_vf8 va;
    vf8_splat(&va, a);
    for (; i + 8 <= n; i += 8) {
        norm_vf8 vx, vy;
        vf8_load(&vx, x + i);
        vf8_load(&vy, y + i);
        vy += va * vx;
        vf8_store(y + i, &vy);
    }
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* y[i] = a * x[i] for i < n (y may be x). */
NORM_INLINE void vf8_scale(float *y, const float *x, float a, size_t n)
{
    size_t i = 0;
    norm_vf8 va;
    vf8_splat(&va, a);
    for (; i + 8 <= n; i += 8) {
        norm_vf8 vx;
        vf8_load(&vx, x + i);
        vx *= va;
        vf8_store(y + i, &vx);
    }
    for (; i < n; i++)
        y[i] = a * x[i];
}

#endif
