/* predict_avx.c - the fixed-depth walk of TREE_BLOCK rows with AVX-512:
 * one lane per row, four gathers per step (threshold, feature, other
 * child, feature value), a masked add picks the le child.  Compiled for
 * AVX-512 by target attribute; chosen at run time from st_cpu_features(),
 * so STRATUS_CPU=generic keeps the scalar walk (tests compare the two). */
#include <string.h>

#include "base/cpu.h"
#include "engine/tree/tree_int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

bool tree_avx512_ok(void)
{
    return st_cpu_features()->has_avx512f;
}

__attribute__((target("avx512f"))) void tree_walk_fixed_avx512(const tree_node *nodes, uint32_t root,
                                                               unsigned depth, const float *x,
                                                               size_t row_stride, uint32_t *leaf)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i row_offset = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)row_stride));
    const __m512i one = _mm512_set1_epi32(1);
    const float *thr_base = &nodes[0].thr;
    const int *feature_base = (const int *)(const void *)&nodes[0].feature;
    const int *right_base = (const int *)(const void *)&nodes[0].right;
    __m512i idx = _mm512_set1_epi32((int)root);
    for (unsigned s = 0; s < depth; s++) {
        __m512i field = _mm512_slli_epi32(idx, 2); /* 4 words per node */
        __m512 thr = _mm512_i32gather_ps(field, thr_base, 4);
        __m512i feature = _mm512_i32gather_epi32(field, feature_base, 4);
        __m512i right = _mm512_i32gather_epi32(field, right_base, 4);
        __m512 v = _mm512_i32gather_ps(_mm512_add_epi32(row_offset, feature), x, 4);
        __mmask16 is_le = _mm512_cmp_ps_mask(v, thr, _CMP_LE_OQ);
        idx = _mm512_mask_add_epi32(right, is_le, idx, one);
    }
    _mm512_storeu_si512(leaf, idx);
}

#else

bool tree_avx512_ok(void)
{
    return false;
}

void tree_walk_fixed_avx512(const tree_node *nodes, uint32_t root, unsigned depth, const float *x,
                            size_t row_stride, uint32_t *leaf)
{
    (void)nodes, (void)root, (void)depth, (void)x, (void)row_stride, (void)leaf;
}

#endif
