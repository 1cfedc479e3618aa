/* gemm_avx512.c - AVX-512 micro-kernels of eng_sgemm: register tiles of up
 * to 14 x 32 (28 zmm accumulators, two B vectors, one broadcast) and the
 * small-M dot-product kernel for C = A W^T.  Compiled with target
 * attributes so the rest of the build stays baseline x86-64; used only
 * when st_cpu_features() reports AVX-512F. */
#include "engine/kernels/gemm_int.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx2,fma")))
#define INLINE512 static inline __attribute__((always_inline)) T512

enum { V = 16, MR = 14, NV = 2 };

/* Partial sums per accumulator when a tile has few of them: keeps at least
 * eight FMA chains in flight so the 4-cycle FMA latency is hidden (matters
 * for m = 1..3, where the tile is a row or two of the output). */
#define KSPLIT(mr, nv) ((mr) * (nv) >= 8 ? 1 : (mr) * (nv) >= 4 ? 2 : (mr) * (nv) >= 2 ? 4 : 8)

INLINE512 __mmask16 tail_mask(size_t lanes)
{
    return _cvtu32_mask16(lanes >= V ? 0xffffu : (1u << lanes) - 1u);
}

/* The register tile, specialised by the wrappers below for every (rows,
 * vectors, A layout); acc holds ku * rows * nv accumulators. */
INLINE512 void tile_body(const gemm_tile *t, __m512 *acc, const int rows, const int nv, const int ku,
                         const int a_rows)
{
    const size_t kc = t->kc, b_ps = t->b_ps, a_rs = t->a_rs, a_ps = t->a_ps;
    const float *a = t->a, *b = t->b;
    const __mmask16 lm = tail_mask(t->nr - (size_t)(nv - 1) * V);
#pragma GCC unroll 64
    for (int x = 0; x < rows * nv * ku; x++)
        acc[x] = _mm512_setzero_ps();
    size_t p = 0;
    for (; p + (size_t)ku <= kc; p += (size_t)ku) {
#pragma GCC unroll 8
        for (int u = 0; u < ku; u++) {
            const size_t q = p + (size_t)u;
            const float *bp = b + q * b_ps;
            __m512 bv[GEMM_NV_MAX];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                bv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(lm, bp + V * v) : _mm512_loadu_ps(bp + V * v);
#pragma GCC unroll 16
            for (int i = 0; i < rows; i++) {
                __m512 av = _mm512_set1_ps(a_rows ? a[(size_t)i * a_rs + q] : a[q * a_ps + (size_t)i]);
#pragma GCC unroll 4
                for (int v = 0; v < nv; v++)
                    acc[(u * rows + i) * nv + v] = _mm512_fmadd_ps(av, bv[v], acc[(u * rows + i) * nv + v]);
            }
        }
    }
    for (; p < kc; p++) {
        const float *bp = b + p * b_ps;
        __m512 bv[GEMM_NV_MAX];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            bv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(lm, bp + V * v) : _mm512_loadu_ps(bp + V * v);
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++) {
            __m512 av = _mm512_set1_ps(a_rows ? a[(size_t)i * a_rs + p] : a[p * a_ps + (size_t)i]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                acc[i * nv + v] = _mm512_fmadd_ps(av, bv[v], acc[i * nv + v]);
        }
    }
#pragma GCC unroll 8
    for (int u = 1; u < ku; u++)
#pragma GCC unroll 64
        for (int x = 0; x < rows * nv; x++)
            acc[x] = _mm512_add_ps(acc[x], acc[u * rows * nv + x]);

    float *c = t->c;
    const size_t ldc = t->ldc;
    const __m512 alpha = _mm512_set1_ps(t->alpha);
    if (t->beta == 0.0f) {
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
                float *cp = c + (size_t)i * ldc + V * v;
                __m512 r = _mm512_mul_ps(alpha, acc[i * nv + v]);
                if (v == nv - 1)
                    _mm512_mask_storeu_ps(cp, lm, r);
                else
                    _mm512_storeu_ps(cp, r);
            }
    } else {
        const __m512 beta = _mm512_set1_ps(t->beta);
        const int is_beta_one = t->beta == 1.0f;
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
                float *cp = c + (size_t)i * ldc + V * v;
                __m512 old = v == nv - 1 ? _mm512_maskz_loadu_ps(lm, cp) : _mm512_loadu_ps(cp);
                __m512 r = is_beta_one ? _mm512_fmadd_ps(alpha, acc[i * nv + v], old)
                                       : _mm512_fmadd_ps(alpha, acc[i * nv + v], _mm512_mul_ps(beta, old));
                if (v == nv - 1)
                    _mm512_mask_storeu_ps(cp, lm, r);
                else
                    _mm512_storeu_ps(cp, r);
            }
    }
}

#define TILE(R, N, AR)                                                   \
    static T512 void tile_##R##_##N##_##AR(const gemm_tile *t)          \
    {                                                                    \
        __m512 acc[KSPLIT(R, N) * (R) * (N)];                            \
        tile_body(t, acc, R, N, KSPLIT(R, N), AR);                       \
    }
#define TILE_ROWS(R) TILE(R, 1, 0) TILE(R, 2, 0) TILE(R, 1, 1) TILE(R, 2, 1)
TILE_ROWS(1) TILE_ROWS(2) TILE_ROWS(3) TILE_ROWS(4) TILE_ROWS(5) TILE_ROWS(6) TILE_ROWS(7)
TILE_ROWS(8) TILE_ROWS(9) TILE_ROWS(10) TILE_ROWS(11) TILE_ROWS(12) TILE_ROWS(13) TILE_ROWS(14)

/* --- small M, C = A W^T: dot products along k ---------------------------- */

/* Sums of four vectors, one per lane of the result. */
INLINE512 __m128 hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
#define HALF_SUM(x) _mm256_add_ps(_mm512_castps512_ps256(x), \
                                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)))
    __m256 s0 = HALF_SUM(a0), s1 = HALF_SUM(a1), s2 = HALF_SUM(a2), s3 = HALF_SUM(a3);
#undef HALF_SUM
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

INLINE512 void dot_store4(float *c, __m128 s, float alpha, float beta)
{
    __m128 r = _mm_mul_ps(_mm_set1_ps(alpha), s);
    if (beta == 1.0f)
        r = _mm_add_ps(r, _mm_loadu_ps(c));
    else if (beta != 0.0f)
        r = _mm_fmadd_ps(_mm_set1_ps(beta), _mm_loadu_ps(c), r);
    _mm_storeu_ps(c, r);
}

INLINE512 void dot_store1(float *c, float s, float alpha, float beta)
{
    float r = alpha * s;
    if (beta == 1.0f)
        r += *c;
    else if (beta != 0.0f)
        r += beta * *c;
    *c = r;
}

/* rows (<= 4) rows of A against nw (1, 4 or 8) rows of W. */
INLINE512 void dot_body(size_t k, const float *a, size_t lda, const float *w, size_t ldw, float alpha,
                        float beta, float *c, size_t ldc, __m512 *acc, const int rows, const int nw)
{
#pragma GCC unroll 32
    for (int x = 0; x < rows * nw; x++)
        acc[x] = _mm512_setzero_ps();
    size_t p = 0;
    for (; p + V <= k; p += V) {
        __m512 av[4];
#pragma GCC unroll 4
        for (int i = 0; i < rows; i++)
            av[i] = _mm512_loadu_ps(a + (size_t)i * lda + p);
#pragma GCC unroll 8
        for (int j = 0; j < nw; j++) {
            __m512 wv = _mm512_loadu_ps(w + (size_t)j * ldw + p);
#pragma GCC unroll 4
            for (int i = 0; i < rows; i++)
                acc[i * nw + j] = _mm512_fmadd_ps(av[i], wv, acc[i * nw + j]);
        }
    }
    if (p < k) {
        const __mmask16 m = tail_mask(k - p);
        __m512 av[4];
#pragma GCC unroll 4
        for (int i = 0; i < rows; i++)
            av[i] = _mm512_maskz_loadu_ps(m, a + (size_t)i * lda + p);
#pragma GCC unroll 8
        for (int j = 0; j < nw; j++) {
            __m512 wv = _mm512_maskz_loadu_ps(m, w + (size_t)j * ldw + p);
#pragma GCC unroll 4
            for (int i = 0; i < rows; i++)
                acc[i * nw + j] = _mm512_fmadd_ps(av[i], wv, acc[i * nw + j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
        const __m512 *ai = acc + i * nw;
        if (nw == 1) {
            dot_store1(ci, _mm512_reduce_add_ps(ai[0]), alpha, beta);
        } else {
#pragma GCC unroll 2
            for (int j = 0; j < nw; j += 4)
                dot_store4(ci + j, hsum4(ai[j], ai[j + 1], ai[j + 2], ai[j + 3]), alpha, beta);
        }
    }
}

#define DOT(R, NW)                                                                                    \
    static T512 void dot_##R##_##NW(size_t k, const float *a, size_t lda, const float *w, size_t ldw, \
                                    float alpha, float beta, float *c, size_t ldc)                    \
    {                                                                                                 \
        __m512 acc[(R) * (NW)];                                                                       \
        dot_body(k, a, lda, w, ldw, alpha, beta, c, ldc, acc, R, NW);                                 \
    }
DOT(1, 8) DOT(1, 4) DOT(1, 1) DOT(2, 4) DOT(2, 1) DOT(3, 4) DOT(3, 1) DOT(4, 4) DOT(4, 1)

typedef void (*dot_fn)(size_t, const float *, size_t, const float *, size_t, float, float, float *, size_t);

/* W is walked in blocks of 4 or 8 rows (a few KiB, L1-resident) and every
 * group of up to 4 rows of A is multiplied with a block before moving on,
 * so W streams from memory once. */
static T512 void dot512(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, const float *w,
                        size_t ldw, float beta, float *c, size_t ldc)
{
    static const dot_fn wide[4] = { dot_1_4, dot_2_4, dot_3_4, dot_4_4 };
    static const dot_fn narrow[4] = { dot_1_1, dot_2_1, dot_3_1, dot_4_1 };
    const size_t nw = m == 1 ? 8 : 4;
    size_t j = 0;
    for (; j + nw <= n; j += nw)
        for (size_t i = 0; i < m; i += 4) {
            size_t rows = m - i < 4 ? m - i : 4;
            (nw == 8 ? dot_1_8 : wide[rows - 1])(k, a + i * lda, lda, w + j * ldw, ldw, alpha, beta,
                                                 c + i * ldc + j, ldc);
        }
    for (; j < n; j++)
        for (size_t i = 0; i < m; i += 4) {
            size_t rows = m - i < 4 ? m - i : 4;
            narrow[rows - 1](k, a + i * lda, lda, w + j * ldw, ldw, alpha, beta, c + i * ldc + j, ldc);
        }
}

#define ROW_TILES(R, AR) { tile_##R##_1_##AR, tile_##R##_2_##AR }
#define LAYOUT_TILES(AR)                                                                              \
    {                                                                                                 \
        ROW_TILES(1, AR), ROW_TILES(2, AR), ROW_TILES(3, AR), ROW_TILES(4, AR), ROW_TILES(5, AR),     \
            ROW_TILES(6, AR), ROW_TILES(7, AR), ROW_TILES(8, AR), ROW_TILES(9, AR), ROW_TILES(10, AR), \
            ROW_TILES(11, AR), ROW_TILES(12, AR), ROW_TILES(13, AR), ROW_TILES(14, AR)                \
    }

static const gemm_variant avx512_variant = {
    .name = "avx512",
    .vec = V,
    .mr = MR,
    .nr = V * NV,
    .kc = 256,
    .mc = MR * 12,
    .nc = 32 * 64,
    .tiles = { LAYOUT_TILES(0), LAYOUT_TILES(1) },
    .dot = dot512,
};

const gemm_variant *gemm_variant_avx512(void)
{
    return &avx512_variant;
}

#else

const gemm_variant *gemm_variant_avx512(void)
{
    return NULL;
}

#endif
