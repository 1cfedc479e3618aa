/* predict_avx.c - complete trees walked with AVX-512: one lane per row,
 * 64 rows as four independent chains (a gather's latency is long; four
 * chains keep the load ports busy).  The tests of levels 0-4 (at most 16
 * (threshold, feature) pairs) sit in one or two registers and are picked
 * per lane by a permute; deeper levels and the row values are gathered.
 * Compiled by target attribute and chosen at run time from
 * st_cpu_features(), so STRATUS_CPU=generic keeps the scalar walk. */
#include "base/cpu.h"
#include "engine/tree/tree_int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

bool tree_avx512_ok(void)
{
    return st_cpu_features()->has_avx512f;
}

#define CHAINS (TREE_SIMD_BLOCK / 16)

__attribute__((target("avx512f"))) void tree_walk_perfect_avx512(const tree_test *tests, const uint32_t *leaf,
                                                                 unsigned depth, const float *x,
                                                                 size_t row_stride, uint32_t *entry)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i stride = _mm512_set1_epi32((int)row_stride);
    const __m512i one = _mm512_set1_epi32(1);
    const float *thr_base = &tests[0].thr;
    const int *feature_base = (const int *)(const void *)&tests[0].feature;
    const int *words = (const int *)(const void *)tests;
    __m512i row_offset[CHAINS], idx[CHAINS];
    for (int k = 0; k < CHAINS; k++) {
        row_offset[k] = _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(16 * k)), stride);
        idx[k] = _mm512_setzero_si512();
    }
    for (unsigned s = 0; s < depth; s++) {
        int base = (1 << s) - 1;
        __m512i lo = _mm512_setzero_si512(), hi = lo;
        if (s <= 3) {
            lo = _mm512_maskz_loadu_epi32((__mmask16)((1u << (2u << s)) - 1), words + 2 * base);
        } else if (s == 4) {
            lo = _mm512_loadu_si512(words + 2 * base);
            hi = _mm512_loadu_si512(words + 2 * base + 16);
        }
        for (int k = 0; k < CHAINS; k++) {
            __m512 t;
            __m512i f;
            if (s <= 4) {
                __m512i at = _mm512_slli_epi32(_mm512_sub_epi32(idx[k], _mm512_set1_epi32(base)), 1);
                __m512i at1 = _mm512_add_epi32(at, one);
                if (s <= 3) {
                    t = _mm512_castsi512_ps(_mm512_permutexvar_epi32(at, lo));
                    f = _mm512_permutexvar_epi32(at1, lo);
                } else {
                    t = _mm512_castsi512_ps(_mm512_permutex2var_epi32(lo, at, hi));
                    f = _mm512_permutex2var_epi32(lo, at1, hi);
                }
            } else {
                t = _mm512_i32gather_ps(idx[k], thr_base, 8);
                f = _mm512_i32gather_epi32(idx[k], feature_base, 8);
            }
            __m512 v = _mm512_i32gather_ps(_mm512_add_epi32(row_offset[k], f), x, 4);
            __mmask16 is_gt = _mm512_cmp_ps_mask(v, t, _CMP_GT_OQ);
            idx[k] = _mm512_add_epi32(_mm512_add_epi32(idx[k], idx[k]), one);
            idx[k] = _mm512_mask_add_epi32(idx[k], is_gt, idx[k], one);
        }
    }
    __m512i first_leaf = _mm512_set1_epi32((int)((1u << depth) - 1));
    for (int k = 0; k < CHAINS; k++) {
        __m512i slot = _mm512_sub_epi32(idx[k], first_leaf);
        _mm512_storeu_si512(entry + 16 * k, _mm512_i32gather_epi32(slot, (const int *)(const void *)leaf, 4));
    }
}

#else

bool tree_avx512_ok(void)
{
    return false;
}

void tree_walk_perfect_avx512(const tree_test *tests, const uint32_t *leaf, unsigned depth, const float *x,
                              size_t row_stride, uint32_t *entry)
{
    (void)tests, (void)leaf, (void)depth, (void)x, (void)row_stride, (void)entry;
}

#endif
