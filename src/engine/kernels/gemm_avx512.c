/* gemm_avx512.c - AVX-512 kernels of eng_sgemm: register tiles of up to
 * 14 x 32 (28 zmm accumulators, two B vectors, one broadcast), the small-M
 * dot-product (C = A W^T) and row-order (axpy) kernels, and 16 x 16
 * transposing packers.  Compiled with target attributes so the rest of the
 * build stays baseline x86-64; used only when st_cpu_features() reports
 * AVX-512F. */
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

/* One depth step: acc[rows][nv] += A(:, q) B(q, :). */
INLINE512 void tile_step(const gemm_tile *t, size_t q, __m512 *acc, const int rows, const int nv,
                         const int a_rows, const int is_masked, __mmask16 lm)
{
    const float *bp = t->b + q * t->b_ps;
    __m512 bv[GEMM_NV_MAX];
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++)
        bv[v] = is_masked && v == nv - 1 ? _mm512_maskz_loadu_ps(lm, bp + V * v) : _mm512_loadu_ps(bp + V * v);
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) {
        __m512 av = _mm512_set1_ps(a_rows ? t->a[(size_t)i * t->a_rs + q] : t->a[q * t->a_ps + (size_t)i]);
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[i * nv + v] = _mm512_fmadd_ps(av, bv[v], acc[i * nv + v]);
    }
}

/* Depth steps before the end at which C's rows are prefetched: late enough
 * that the streaming A and B do not evict them again, early enough to hide
 * a miss to memory. */
enum { C_PREFETCH_STEPS = 48 };

/* The register tile, specialised by the wrappers below for every (rows,
 * vectors, A layout, masked B loads); acc holds ku * rows * nv
 * accumulators: ku partial sums over interleaved depth steps. */
INLINE512 void tile_body(const gemm_tile *t, __m512 *acc, const int rows, const int nv, const int ku,
                         const int a_rows, const int is_masked)
{
    const size_t kc = t->kc;
    const __mmask16 lm = tail_mask(t->nr - (size_t)(nv - 1) * V);
#pragma GCC unroll 64
    for (int x = 0; x < rows * nv * ku; x++)
        acc[x] = _mm512_setzero_ps();
    const size_t ku_steps = kc / (size_t)ku * (size_t)ku;
    const size_t before_prefetch = kc > C_PREFETCH_STEPS ? (kc - C_PREFETCH_STEPS) / (size_t)ku * (size_t)ku : 0;
    size_t p = 0;
    for (; p < before_prefetch; p += (size_t)ku)
#pragma GCC unroll 8
        for (int u = 0; u < ku; u++)
            tile_step(t, p + (size_t)u, acc + u * rows * nv, rows, nv, a_rows, is_masked, lm);
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            _mm_prefetch((const char *)(t->c + (size_t)i * t->ldc + V * v), _MM_HINT_T0);
    for (; p < ku_steps; p += (size_t)ku)
#pragma GCC unroll 8
        for (int u = 0; u < ku; u++)
            tile_step(t, p + (size_t)u, acc + u * rows * nv, rows, nv, a_rows, is_masked, lm);
    for (; p < kc; p++)
        tile_step(t, p, acc, rows, nv, a_rows, is_masked, lm);
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
        if (t->is_b_padded || t->nr == (N) * V)                          \
            tile_body(t, acc, R, N, KSPLIT(R, N), AR, 0);                \
        else                                                             \
            tile_body(t, acc, R, N, KSPLIT(R, N), AR, 1);                \
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

/* --- small M, stored B: row-order accumulation into C -------------------- */

/* Columns per chunk: `rows` rows of C this wide stay in L1 while every row
 * of B passes. */
enum { AXPY_COLS = 1024 };

/* C[0:rows, 0:n] += alpha * A[:, 0:k] B[0:k, 0:n], `depth` rows of B per
 * pass over C (one C load and store per `depth` FMAs). */
INLINE512 void axpy_body(size_t n, size_t k, float alpha, const float *a, size_t a_rs, size_t a_ps,
                         const float *b, size_t ldb, float *c, size_t ldc, const int rows, const int depth)
{
    const __mmask16 lm = tail_mask(n % V);
    for (size_t p = 0; p + (size_t)depth <= k; p += (size_t)depth) {
        __m512 x[GEMM_AXPY_ROWS][4];
        const float *bq[4];
#pragma GCC unroll 4
        for (int q = 0; q < depth; q++) {
            bq[q] = b + (p + (size_t)q) * ldb;
#pragma GCC unroll 4
            for (int i = 0; i < rows; i++)
                x[i][q] = _mm512_set1_ps(alpha * a[(size_t)i * a_rs + (p + (size_t)q) * a_ps]);
        }
        size_t j = 0;
        for (; j + V <= n; j += V) {
            __m512 bv[4];
#pragma GCC unroll 4
            for (int q = 0; q < depth; q++)
                bv[q] = _mm512_loadu_ps(bq[q] + j);
#pragma GCC unroll 4
            for (int i = 0; i < rows; i++) {
                float *cp = c + (size_t)i * ldc + j;
                __m512 acc = _mm512_loadu_ps(cp);
#pragma GCC unroll 4
                for (int q = 0; q < depth; q++)
                    acc = _mm512_fmadd_ps(x[i][q], bv[q], acc);
                _mm512_storeu_ps(cp, acc);
            }
        }
        if (j < n) {
            __m512 bv[4];
#pragma GCC unroll 4
            for (int q = 0; q < depth; q++)
                bv[q] = _mm512_maskz_loadu_ps(lm, bq[q] + j);
#pragma GCC unroll 4
            for (int i = 0; i < rows; i++) {
                float *cp = c + (size_t)i * ldc + j;
                __m512 acc = _mm512_maskz_loadu_ps(lm, cp);
#pragma GCC unroll 4
                for (int q = 0; q < depth; q++)
                    acc = _mm512_fmadd_ps(x[i][q], bv[q], acc);
                _mm512_mask_storeu_ps(cp, lm, acc);
            }
        }
    }
}

/* C[0:rows, 0:n] *= beta (0: cleared, whatever it held). */
INLINE512 void scale_rows(size_t rows, size_t n, float beta, float *c, size_t ldc)
{
    if (beta == 1.0f)
        return;
    const __m512 vb = _mm512_set1_ps(beta);
    const __mmask16 lm = tail_mask(n % V);
    for (size_t i = 0; i < rows; i++) {
        float *ci = c + i * ldc;
        size_t j = 0;
        for (; j + V <= n; j += V)
            _mm512_storeu_ps(ci + j, beta == 0.0f ? _mm512_setzero_ps() : _mm512_mul_ps(vb, _mm512_loadu_ps(ci + j)));
        if (j < n)
            _mm512_mask_storeu_ps(ci + j, lm,
                                  beta == 0.0f ? _mm512_setzero_ps()
                                               : _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(lm, ci + j)));
    }
}

#define AXPY(R)                                                                                            \
    static T512 void axpy_##R(size_t n, size_t k, float alpha, const float *a, size_t a_rs, size_t a_ps,  \
                              const float *b, size_t ldb, float *c, size_t ldc)                            \
    {                                                                                                      \
        axpy_body(n, k, alpha, a, a_rs, a_ps, b, ldb, c, ldc, R, 4);                                       \
        size_t done = k / 4 * 4;                                                                           \
        axpy_body(n, k - done, alpha, a + done * a_ps, a_rs, a_ps, b + done * ldb, ldb, c, ldc, R, 1);     \
    }
AXPY(1) AXPY(2) AXPY(3) AXPY(4)

static T512 void axpy512(size_t m, size_t n, size_t k, float alpha, const float *a, size_t a_rs, size_t a_ps,
                         const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    typedef void (*axpy_fn)(size_t, size_t, float, const float *, size_t, size_t, const float *, size_t, float *,
                            size_t);
    static const axpy_fn by_rows[GEMM_AXPY_ROWS] = { axpy_1, axpy_2, axpy_3, axpy_4 };
    for (size_t j = 0; j < n; j += AXPY_COLS) {
        const size_t cols = n - j < AXPY_COLS ? n - j : AXPY_COLS;
        scale_rows(m, cols, beta, c + j, ldc);
        by_rows[m - 1](cols, k, alpha, a, a_rs, a_ps, b + j, ldb, c + j, ldc);
    }
}

/* --- transposing packers ------------------------------------------------------- */

/* In-register transpose: r[c] becomes column c of the 16 x 16 block whose
 * rows were r[0..15] (unpack 32-bit, unpack 64-bit, two 128-bit shuffles). */
INLINE512 void transpose16(__m512 *r)
{
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[c + 4], 0x88);
        t[c + 4] = _mm512_shuffle_f32x4(r[c], r[c + 4], 0xdd);
        t[c + 8] = _mm512_shuffle_f32x4(r[c + 8], r[c + 12], 0x88);
        t[c + 12] = _mm512_shuffle_f32x4(r[c + 8], r[c + 12], 0xdd);
    }
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0x88);
        r[c + 8] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0xdd);
    }
}

/* Rows [0, rows) of a 16-deep slice starting at src, zeros for the rest. */
INLINE512 void load_rows16(__m512 *r, const float *src, size_t ld, size_t rows, __mmask16 depth_mask)
{
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        r[i] = (size_t)i < rows ? _mm512_maskz_loadu_ps(depth_mask, src + (size_t)i * ld) : _mm512_setzero_ps();
}

static T512 void pack_a_rows512(size_t rows, size_t kc, const float *a, size_t lda, float *dst)
{
    const __mmask16 row_mask = tail_mask(MR);
    for (size_t p = 0; p < kc; p += V) {
        const size_t depth = kc - p < V ? kc - p : V;
        __m512 r[16];
        load_rows16(r, a + p, lda, rows, tail_mask(depth));
        transpose16(r);
        for (size_t c = 0; c < depth; c++)
            _mm512_mask_storeu_ps(dst + (p + c) * MR, row_mask, r[c]);
    }
}

static T512 void pack_b_trans512(size_t cols, size_t kc, const float *w, size_t ldw, float *dst)
{
    for (size_t p = 0; p < kc; p += V) {
        const size_t depth = kc - p < V ? kc - p : V;
        const __mmask16 depth_mask = tail_mask(depth);
        for (size_t h = 0; h < NV; h++) {
            __m512 r[16];
            const size_t first = h * V, n_here = cols > first ? cols - first : 0;
            load_rows16(r, w + first * ldw + p, ldw, n_here < V ? n_here : V, depth_mask);
            if (n_here > 0)
                transpose16(r);
            for (size_t c = 0; c < depth; c++)
                _mm512_storeu_ps(dst + (p + c) * V * NV + first, r[c]);
        }
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
    .kc = 1024,
    .mc = MR * 6,
    .nc = 32 * 32,
    .tiles = { LAYOUT_TILES(0), LAYOUT_TILES(1) },
    .dot = dot512,
    .axpy = axpy512,
    .is_dot_any_address = true,
    .dot_max_m = 16,
    .axpy_max_m = 4,
    .pack_a_rows = pack_a_rows512,
    .pack_b_trans = pack_b_trans512,
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
