/* cols512.h - AVX-512 helpers for kernels that read image rows in place
 * instead of from a zero-padded copy (kernels/wino.c, the depthwise 3x3 in
 * ops/conv_kern.c).  Include only under __x86_64__ and __GNUC__; callers
 * are compiled with target("avx512f"). */
#ifndef ST_ENGINE_COLS512_H
#define ST_ENGINE_COLS512_H

#include <immintrin.h>
#include <stddef.h>

/* The first n lanes (all 16 when n >= 16). */
static inline __attribute__((always_inline, target("avx512f"))) __mmask16 eng_lanes16(size_t n)
{
    return _cvtu32_mask16(n >= 16 ? 0xffffu : (1u << n) - 1u);
}

/* Columns [start, start + 16) of a row of w floats, 0 outside it; start
 * >= -1 (a pad of at most one column before the row).  Reads only inside
 * the row. */
static inline __attribute__((always_inline, target("avx512f"))) __m512 eng_cols16(const float *row, ptrdiff_t start,
                                                                                   size_t w)
{
    if (start >= (ptrdiff_t)w)
        return _mm512_setzero_ps();
    if (start >= 0)
        return _mm512_maskz_loadu_ps(eng_lanes16(w - (size_t)start), row + start);
    /* start == -1: columns 0..14 one lane up, lane 0 zero. */
    const __m512i up = _mm512_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
    return _mm512_maskz_permutexvar_ps(_cvtu32_mask16(0xfffe), up, _mm512_maskz_loadu_ps(eng_lanes16(w), row));
}

#endif
