/* conv_kern.c - SIMD kernels of the convolution family: the direct
 * depthwise plane kernel (AVX2/FMA with a portable fallback, chosen per
 * call from st_cpu_features()).
 *
 * The depthwise kernel reads a zero-padded copy of the input plane, so its
 * loops have no bounds checks; it keeps four output rows in flight (four
 * independent FMA chains) and, for 3x3, the nine weights in registers. */
#include <stdint.h>
#include <string.h>

#include "base/cpu.h"
#include "engine/ops/conv_int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CONV_X86 1
#endif

/* Portable version: same traversal, scalar. */
static void dw_plane_generic(const float *src, size_t stride, const float *w, size_t kh, size_t kw, size_t sh,
                             size_t sw, size_t dh, size_t dw, float bias, float *dst, size_t oh, size_t ow)
{
    for (size_t y = 0; y < oh; y++) {
        float *o = dst + y * ow;
        for (size_t x = 0; x < ow; x++)
            o[x] = bias;
        for (size_t i = 0; i < kh; i++) {
            const float *r = src + (y * sh + i * dh) * stride;
            for (size_t jj = 0; jj < kw; jj++) {
                const float *p = r + jj * dw;
                float wv = w[i * kw + jj];
                for (size_t x = 0; x < ow; x++)
                    o[x] += wv * p[x * sw];
            }
        }
    }
}

#ifdef CONV_X86

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* Eight floats at p, p + sw, ... (sw 1 or 2). */
AVX2_INLINE __m256 load8(const float *p, size_t sw)
{
    if (sw == 1)
        return _mm256_loadu_ps(p);
    __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    /* a0 a2 b0 b2 | a4 a6 b4 b6, then reorder the 64-bit pairs. */
    __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}

static const int32_t mask_table[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };

/* Stores the first n (1..8) lanes of v. */
AVX2_INLINE void store8(float *p, __m256 v, size_t n)
{
    if (n >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, _mm256_loadu_si256((const __m256i *)(mask_table + 8 - n)), v);
}

/* Any kernel size: a broadcast load per tap (as cheap as a register spill),
 * four rows in flight. */
AVX2_INLINE void dw_plane_avx2_body(const float *src, size_t stride, const float *w, size_t kh, size_t kw,
                                    size_t sh, size_t sw, size_t dh, size_t dw, float bias, float *dst,
                                    size_t oh, size_t ow)
{
    const __m256 vb = _mm256_set1_ps(bias);
    size_t row_step = sh * stride;
    size_t y = 0;
    for (; y + 4 <= oh; y += 4) {
        const float *r0 = src + y * row_step;
        float *o = dst + y * ow;
        for (size_t x = 0; x < ow; x += 8) {
            __m256 a0 = vb, a1 = vb, a2 = vb, a3 = vb;
            const float *p = r0 + x * sw;
            for (size_t i = 0; i < kh; i++) {
                const float *pr = p + i * dh * stride;
                for (size_t jj = 0; jj < kw; jj++) {
                    __m256 wt = _mm256_broadcast_ss(w + i * kw + jj);
                    const float *q = pr + jj * dw;
                    a0 = _mm256_fmadd_ps(wt, load8(q, sw), a0);
                    a1 = _mm256_fmadd_ps(wt, load8(q + row_step, sw), a1);
                    a2 = _mm256_fmadd_ps(wt, load8(q + 2 * row_step, sw), a2);
                    a3 = _mm256_fmadd_ps(wt, load8(q + 3 * row_step, sw), a3);
                }
            }
            size_t n = ow - x;
            store8(o + x, a0, n);
            store8(o + ow + x, a1, n);
            store8(o + 2 * ow + x, a2, n);
            store8(o + 3 * ow + x, a3, n);
        }
    }
    for (; y < oh; y++) {
        const float *r0 = src + y * row_step;
        float *o = dst + y * ow;
        for (size_t x = 0; x < ow; x += 8) {
            __m256 a0 = vb;
            const float *p = r0 + x * sw;
            for (size_t i = 0; i < kh; i++)
                for (size_t jj = 0; jj < kw; jj++) {
                    __m256 wt = _mm256_broadcast_ss(w + i * kw + jj);
                    a0 = _mm256_fmadd_ps(wt, load8(p + i * dh * stride + jj * dw, sw), a0);
                }
            store8(o + x, a0, ow - x);
        }
    }
}

/* One kernel row of a 3x3: acc + wa*p[0] + wb*p[dw] + wc*p[2dw]. */
AVX2_INLINE __m256 row3(__m256 acc, const float *p, size_t sw, size_t dw, __m256 wa, __m256 wb, __m256 wc)
{
    acc = _mm256_fmadd_ps(wa, load8(p, sw), acc);
    acc = _mm256_fmadd_ps(wb, load8(p + dw, sw), acc);
    return _mm256_fmadd_ps(wc, load8(p + 2 * dw, sw), acc);
}

/* 3x3 written out: nine weights in registers, four rows in flight. */
AVX2_INLINE void dw_plane_avx2_3x3_body(const float *src, size_t stride, const float *w, size_t sh, size_t sw,
                                        size_t dh, size_t dw, float bias, float *dst, size_t oh, size_t ow)
{
    const __m256 vb = _mm256_set1_ps(bias);
    const __m256 w00 = _mm256_set1_ps(w[0]), w01 = _mm256_set1_ps(w[1]), w02 = _mm256_set1_ps(w[2]);
    const __m256 w10 = _mm256_set1_ps(w[3]), w11 = _mm256_set1_ps(w[4]), w12 = _mm256_set1_ps(w[5]);
    const __m256 w20 = _mm256_set1_ps(w[6]), w21 = _mm256_set1_ps(w[7]), w22 = _mm256_set1_ps(w[8]);
    size_t row_step = sh * stride, k1 = dh * stride, k2 = 2 * dh * stride;
#define DW3_ACC(acc, p)                                 \
    acc = row3(acc, (p), sw, dw, w00, w01, w02);        \
    acc = row3(acc, (p) + k1, sw, dw, w10, w11, w12);   \
    acc = row3(acc, (p) + k2, sw, dw, w20, w21, w22)
    size_t y = 0;
    for (; y + 4 <= oh; y += 4) {
        const float *r0 = src + y * row_step;
        float *o = dst + y * ow;
        for (size_t x = 0; x < ow; x += 8) {
            __m256 a0 = vb, a1 = vb, a2 = vb, a3 = vb;
            const float *p = r0 + x * sw;
            DW3_ACC(a0, p);
            DW3_ACC(a1, p + row_step);
            DW3_ACC(a2, p + 2 * row_step);
            DW3_ACC(a3, p + 3 * row_step);
            size_t n = ow - x;
            store8(o + x, a0, n);
            store8(o + ow + x, a1, n);
            store8(o + 2 * ow + x, a2, n);
            store8(o + 3 * ow + x, a3, n);
        }
    }
    for (; y < oh; y++) {
        const float *r0 = src + y * row_step;
        float *o = dst + y * ow;
        for (size_t x = 0; x < ow; x += 8) {
            __m256 a0 = vb;
            DW3_ACC(a0, r0 + x * sw);
            store8(o + x, a0, ow - x);
        }
    }
#undef DW3_ACC
}

AVX2 static void dw_plane_avx2_3x3s1(const float *src, size_t stride, const float *w, size_t sh, size_t dh,
                                     size_t dw, float bias, float *dst, size_t oh, size_t ow)
{
    dw_plane_avx2_3x3_body(src, stride, w, sh, 1, dh, dw, bias, dst, oh, ow);
}

AVX2 static void dw_plane_avx2_3x3s2(const float *src, size_t stride, const float *w, size_t sh, size_t dh,
                                     size_t dw, float bias, float *dst, size_t oh, size_t ow)
{
    dw_plane_avx2_3x3_body(src, stride, w, sh, 2, dh, dw, bias, dst, oh, ow);
}

AVX2 static void dw_plane_avx2_s1(const float *src, size_t stride, const float *w, size_t kh, size_t kw,
                                  size_t sh, size_t dh, size_t dw, float bias, float *dst, size_t oh, size_t ow)
{
    dw_plane_avx2_body(src, stride, w, kh, kw, sh, 1, dh, dw, bias, dst, oh, ow);
}

AVX2 static void dw_plane_avx2_s2(const float *src, size_t stride, const float *w, size_t kh, size_t kw,
                                  size_t sh, size_t dh, size_t dw, float bias, float *dst, size_t oh, size_t ow)
{
    dw_plane_avx2_body(src, stride, w, kh, kw, sh, 2, dh, dw, bias, dst, oh, ow);
}

#endif /* CONV_X86 */

void conv_dw_plane_f32(const float *src, size_t src_stride, const float *w, size_t kh, size_t kw, size_t sh,
                       size_t sw, size_t dh, size_t dw, float bias, float *dst, size_t oh, size_t ow)
{
#ifdef CONV_X86
    if (st_cpu_features()->has_avx2 && st_cpu_features()->has_fma && (sw == 1 || sw == 2)) {
        if (kh == 3 && kw == 3) {
            (sw == 1 ? dw_plane_avx2_3x3s1 : dw_plane_avx2_3x3s2)(src, src_stride, w, sh, dh, dw, bias, dst, oh,
                                                                  ow);
            return;
        }
        (sw == 1 ? dw_plane_avx2_s1 : dw_plane_avx2_s2)(src, src_stride, w, kh, kw, sh, dh, dw, bias, dst, oh, ow);
        return;
    }
#endif
    dw_plane_generic(src, src_stride, w, kh, kw, sh, sw, dh, dw, bias, dst, oh, ow);
}
