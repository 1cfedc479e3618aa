/* gemm_avx2.c - AVX2 + FMA kernels of eng_sgemm: register tiles of up to
 * 6 x 16 (12 ymm accumulators, two B vectors, one broadcast), the small-M
 * dot-product (C = A W^T) and row-order (axpy) kernels, and 8 x 8
 * transposing packers.  Compiled with target attributes so the rest of the
 * build stays baseline x86-64; used when st_cpu_features() reports AVX2
 * and FMA but not AVX-512F. */
#include "engine/kernels/gemm_int.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define T256 __attribute__((target("avx2,fma")))
#define INLINE256 static inline __attribute__((always_inline)) T256

enum { V = 8, MR = 6, NV = 2 };

/* Partial sums per accumulator for tiles with few accumulators, so that
 * enough FMA chains are in flight (see gemm_avx512.c). */
#define KSPLIT(mr, nv) ((mr) * (nv) >= 8 ? 1 : (mr) * (nv) >= 4 ? 2 : (mr) * (nv) >= 2 ? 4 : 8)

/* Lanes [0, lanes) set. */
INLINE256 __m256i tail_mask(size_t lanes)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int n = lanes >= V ? V : (int)lanes;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

/* Loads vector v of a row: full when it is not the last, masked if the
 * last is partial. */
INLINE256 __m256 load_vec(const float *p, int is_last, int is_partial, __m256i lm)
{
    return is_last && is_partial ? _mm256_maskload_ps(p, lm) : _mm256_loadu_ps(p);
}

INLINE256 void store_vec(float *p, int is_last, int is_partial, __m256i lm, __m256 x)
{
    if (is_last && is_partial)
        _mm256_maskstore_ps(p, lm, x);
    else
        _mm256_storeu_ps(p, x);
}

/* One depth step: acc[rows][nv] += A(:, q) B(q, :). */
INLINE256 void tile_step(const gemm_tile *t, size_t q, __m256 *acc, const int rows, const int nv,
                         const int a_rows, const int is_masked, __m256i lm)
{
    const float *bp = t->b + q * t->b_ps;
    __m256 bv[GEMM_NV_MAX];
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++)
        bv[v] = load_vec(bp + V * v, v == nv - 1, is_masked, lm);
#pragma GCC unroll 16
    for (int i = 0; i < rows; i++) {
        __m256 av = _mm256_broadcast_ss(a_rows ? t->a + (size_t)i * t->a_rs + q : t->a + q * t->a_ps + (size_t)i);
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[i * nv + v] = _mm256_fmadd_ps(av, bv[v], acc[i * nv + v]);
    }
}

/* Depth steps before the end at which C's rows are prefetched (see
 * gemm_avx512.c). */
enum { C_PREFETCH_STEPS = 48 };

/* The register tile, specialised by the wrappers below for every (rows,
 * vectors, A layout, masked B loads); acc holds ku * rows * nv
 * accumulators: ku partial sums over interleaved depth steps. */
INLINE256 void tile_body(const gemm_tile *t, __m256 *acc, const int rows, const int nv, const int ku,
                         const int a_rows, const int is_masked)
{
    const size_t kc = t->kc;
    const size_t last = t->nr - (size_t)(nv - 1) * V;
    const int is_partial = last < V;
    const __m256i lm = tail_mask(last);
#pragma GCC unroll 64
    for (int x = 0; x < rows * nv * ku; x++)
        acc[x] = _mm256_setzero_ps();
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
            acc[x] = _mm256_add_ps(acc[x], acc[u * rows * nv + x]);

    float *c = t->c;
    const size_t ldc = t->ldc;
    const __m256 alpha = _mm256_set1_ps(t->alpha);
    if (t->beta == 0.0f) {
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                store_vec(c + (size_t)i * ldc + V * v, v == nv - 1, is_partial, lm,
                          _mm256_mul_ps(alpha, acc[i * nv + v]));
    } else {
        const __m256 beta = _mm256_set1_ps(t->beta);
        const int is_beta_one = t->beta == 1.0f;
#pragma GCC unroll 16
        for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) {
                float *cp = c + (size_t)i * ldc + V * v;
                __m256 old = load_vec(cp, v == nv - 1, is_partial, lm);
                __m256 r = is_beta_one ? _mm256_fmadd_ps(alpha, acc[i * nv + v], old)
                                       : _mm256_fmadd_ps(alpha, acc[i * nv + v], _mm256_mul_ps(beta, old));
                store_vec(cp, v == nv - 1, is_partial, lm, r);
            }
    }
}

#define TILE(R, N, AR)                                                   \
    static T256 void tile_##R##_##N##_##AR(const gemm_tile *t)          \
    {                                                                    \
        __m256 acc[KSPLIT(R, N) * (R) * (N)];                            \
        if (t->is_b_padded || t->nr == (N) * V)                          \
            tile_body(t, acc, R, N, KSPLIT(R, N), AR, 0);                \
        else                                                             \
            tile_body(t, acc, R, N, KSPLIT(R, N), AR, 1);                \
    }
#define TILE_ROWS(R) TILE(R, 1, 0) TILE(R, 2, 0) TILE(R, 1, 1) TILE(R, 2, 1)
TILE_ROWS(1) TILE_ROWS(2) TILE_ROWS(3) TILE_ROWS(4) TILE_ROWS(5) TILE_ROWS(6)

/* --- small M, C = A W^T: dot products along k ---------------------------- */

INLINE256 __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

INLINE256 float hsum1(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE256 void dot_store4(float *c, __m128 s, float alpha, float beta)
{
    __m128 r = _mm_mul_ps(_mm_set1_ps(alpha), s);
    if (beta == 1.0f)
        r = _mm_add_ps(r, _mm_loadu_ps(c));
    else if (beta != 0.0f)
        r = _mm_fmadd_ps(_mm_set1_ps(beta), _mm_loadu_ps(c), r);
    _mm_storeu_ps(c, r);
}

INLINE256 void dot_store1(float *c, float s, float alpha, float beta)
{
    float r = alpha * s;
    if (beta == 1.0f)
        r += *c;
    else if (beta != 0.0f)
        r += beta * *c;
    *c = r;
}

/* rows (<= 2) rows of A against nw (1, 4 or 8) rows of W. */
INLINE256 void dot_body(size_t k, const float *a, size_t lda, const float *w, size_t ldw, float alpha,
                        float beta, float *c, size_t ldc, __m256 *acc, const int rows, const int nw)
{
#pragma GCC unroll 16
    for (int x = 0; x < rows * nw; x++)
        acc[x] = _mm256_setzero_ps();
    size_t p = 0;
    for (; p + V <= k; p += V) {
        __m256 av[2];
#pragma GCC unroll 2
        for (int i = 0; i < rows; i++)
            av[i] = _mm256_loadu_ps(a + (size_t)i * lda + p);
#pragma GCC unroll 8
        for (int j = 0; j < nw; j++) {
            __m256 wv = _mm256_loadu_ps(w + (size_t)j * ldw + p);
#pragma GCC unroll 2
            for (int i = 0; i < rows; i++)
                acc[i * nw + j] = _mm256_fmadd_ps(av[i], wv, acc[i * nw + j]);
        }
    }
    if (p < k) {
        const __m256i m = tail_mask(k - p);
        __m256 av[2];
#pragma GCC unroll 2
        for (int i = 0; i < rows; i++)
            av[i] = _mm256_maskload_ps(a + (size_t)i * lda + p, m);
#pragma GCC unroll 8
        for (int j = 0; j < nw; j++) {
            __m256 wv = _mm256_maskload_ps(w + (size_t)j * ldw + p, m);
#pragma GCC unroll 2
            for (int i = 0; i < rows; i++)
                acc[i * nw + j] = _mm256_fmadd_ps(av[i], wv, acc[i * nw + j]);
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
        const __m256 *ai = acc + i * nw;
        if (nw == 1) {
            dot_store1(ci, hsum1(ai[0]), alpha, beta);
        } else {
#pragma GCC unroll 2
            for (int j = 0; j < nw; j += 4)
                dot_store4(ci + j, hsum4(ai[j], ai[j + 1], ai[j + 2], ai[j + 3]), alpha, beta);
        }
    }
}

#define DOT(R, NW)                                                                                    \
    static T256 void dot_##R##_##NW(size_t k, const float *a, size_t lda, const float *w, size_t ldw, \
                                    float alpha, float beta, float *c, size_t ldc)                    \
    {                                                                                                 \
        __m256 acc[(R) * (NW)];                                                                       \
        dot_body(k, a, lda, w, ldw, alpha, beta, c, ldc, acc, R, NW);                                 \
    }
DOT(1, 8) DOT(1, 1) DOT(2, 4) DOT(2, 1)

/* W in blocks of 4 or 8 rows (L1-resident), every pair of rows of A
 * against a block before moving on: W streams from memory once. */
static T256 void dot256(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, const float *w,
                        size_t ldw, float beta, float *c, size_t ldc)
{
    const size_t nw = m == 1 ? 8 : 4;
    size_t j = 0;
    for (; j + nw <= n; j += nw)
        for (size_t i = 0; i < m; i += 2) {
            float *cij = c + i * ldc + j;
            if (m - i >= 2)
                dot_2_4(k, a + i * lda, lda, w + j * ldw, ldw, alpha, beta, cij, ldc);
            else if (nw == 8)
                dot_1_8(k, a + i * lda, lda, w + j * ldw, ldw, alpha, beta, cij, ldc);
            else
                for (size_t jj = 0; jj < 4; jj++)
                    dot_1_1(k, a + i * lda, lda, w + (j + jj) * ldw, ldw, alpha, beta, cij + jj, ldc);
        }
    for (; j < n; j++)
        for (size_t i = 0; i < m; i += 2) {
            float *cij = c + i * ldc + j;
            if (m - i >= 2)
                dot_2_1(k, a + i * lda, lda, w + j * ldw, ldw, alpha, beta, cij, ldc);
            else
                dot_1_1(k, a + i * lda, lda, w + j * ldw, ldw, alpha, beta, cij, ldc);
        }
}

/* --- small M, stored B: row-order accumulation into C -------------------- */

/* Columns per chunk: `rows` rows of C this wide stay in L1 while every row
 * of B passes. */
enum { AXPY_COLS = 1024 };

/* C[0:rows, 0:n] += alpha * A[:, 0:k] B[0:k, 0:n], `depth` rows of B per
 * pass over C (one C load and store per `depth` FMAs). */
INLINE256 void axpy_body(size_t n, size_t k, float alpha, const float *a, size_t a_rs, size_t a_ps,
                         const float *b, size_t ldb, float *c, size_t ldc, const int rows, const int depth)
{
    const __m256i lm = tail_mask(n % V);
    for (size_t p = 0; p + (size_t)depth <= k; p += (size_t)depth) {
        __m256 x[GEMM_AXPY_ROWS][2];
        const float *bq[2];
#pragma GCC unroll 2
        for (int q = 0; q < depth; q++) {
            bq[q] = b + (p + (size_t)q) * ldb;
#pragma GCC unroll 4
            for (int i = 0; i < rows; i++)
                x[i][q] = _mm256_set1_ps(alpha * a[(size_t)i * a_rs + (p + (size_t)q) * a_ps]);
        }
        size_t j = 0;
        for (; j + V <= n; j += V) {
            __m256 bv[2];
#pragma GCC unroll 2
            for (int q = 0; q < depth; q++)
                bv[q] = _mm256_loadu_ps(bq[q] + j);
#pragma GCC unroll 4
            for (int i = 0; i < rows; i++) {
                float *cp = c + (size_t)i * ldc + j;
                __m256 acc = _mm256_loadu_ps(cp);
#pragma GCC unroll 2
                for (int q = 0; q < depth; q++)
                    acc = _mm256_fmadd_ps(x[i][q], bv[q], acc);
                _mm256_storeu_ps(cp, acc);
            }
        }
        if (j < n) {
            __m256 bv[2];
#pragma GCC unroll 2
            for (int q = 0; q < depth; q++)
                bv[q] = _mm256_maskload_ps(bq[q] + j, lm);
#pragma GCC unroll 4
            for (int i = 0; i < rows; i++) {
                float *cp = c + (size_t)i * ldc + j;
                __m256 acc = _mm256_maskload_ps(cp, lm);
#pragma GCC unroll 2
                for (int q = 0; q < depth; q++)
                    acc = _mm256_fmadd_ps(x[i][q], bv[q], acc);
                _mm256_maskstore_ps(cp, lm, acc);
            }
        }
    }
}

/* C[0:rows, 0:n] *= beta (0: cleared, whatever it held). */
INLINE256 void scale_rows(size_t rows, size_t n, float beta, float *c, size_t ldc)
{
    if (beta == 1.0f)
        return;
    const __m256 vb = _mm256_set1_ps(beta);
    for (size_t i = 0; i < rows; i++) {
        float *ci = c + i * ldc;
        size_t j = 0;
        for (; j + V <= n; j += V)
            _mm256_storeu_ps(ci + j, beta == 0.0f ? _mm256_setzero_ps() : _mm256_mul_ps(vb, _mm256_loadu_ps(ci + j)));
        for (; j < n; j++)
            ci[j] = beta == 0.0f ? 0.0f : beta * ci[j];
    }
}

#define AXPY(R)                                                                                            \
    static T256 void axpy_##R(size_t n, size_t k, float alpha, const float *a, size_t a_rs, size_t a_ps,  \
                              const float *b, size_t ldb, float *c, size_t ldc)                            \
    {                                                                                                      \
        axpy_body(n, k, alpha, a, a_rs, a_ps, b, ldb, c, ldc, R, 2);                                       \
        size_t done = k / 2 * 2;                                                                           \
        axpy_body(n, k - done, alpha, a + done * a_ps, a_rs, a_ps, b + done * ldb, ldb, c, ldc, R, 1);     \
    }
AXPY(1) AXPY(2) AXPY(3) AXPY(4)

static T256 void axpy256(size_t m, size_t n, size_t k, float alpha, const float *a, size_t a_rs, size_t a_ps,
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

/* In-register transpose: r[c] becomes column c of the 8 x 8 block whose
 * rows were r[0..7]. */
INLINE256 void transpose8(__m256 *r)
{
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x20);
        r[c + 4] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x31);
    }
}

/* Rows [0, rows) of an 8-deep slice starting at src, zeros for the rest. */
INLINE256 void load_rows8(__m256 *r, const float *src, size_t ld, size_t rows, size_t depth)
{
    const __m256i dm = tail_mask(depth);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        r[i] = (size_t)i >= rows   ? _mm256_setzero_ps()
               : depth >= V        ? _mm256_loadu_ps(src + (size_t)i * ld)
                                   : _mm256_maskload_ps(src + (size_t)i * ld, dm);
}

static T256 void pack_a_rows256(size_t rows, size_t kc, const float *a, size_t lda, float *dst)
{
    const __m256i row_mask = tail_mask(MR);
    for (size_t p = 0; p < kc; p += V) {
        const size_t depth = kc - p < V ? kc - p : V;
        __m256 r[8];
        load_rows8(r, a + p, lda, rows, depth);
        transpose8(r);
        for (size_t c = 0; c < depth; c++)
            _mm256_maskstore_ps(dst + (p + c) * MR, row_mask, r[c]);
    }
}

static T256 void pack_b_trans256(size_t cols, size_t kc, const float *w, size_t ldw, float *dst)
{
    for (size_t p = 0; p < kc; p += V) {
        const size_t depth = kc - p < V ? kc - p : V;
        for (size_t h = 0; h < NV; h++) {
            __m256 r[8];
            const size_t first = h * V, n_here = cols > first ? cols - first : 0;
            load_rows8(r, w + first * ldw + p, ldw, n_here < V ? n_here : V, depth);
            if (n_here > 0)
                transpose8(r);
            for (size_t c = 0; c < depth; c++)
                _mm256_storeu_ps(dst + (p + c) * V * NV + first, r[c]);
        }
    }
}

#define ROW_TILES(R, AR) { tile_##R##_1_##AR, tile_##R##_2_##AR }
#define LAYOUT_TILES(AR)                                                                          \
    {                                                                                             \
        ROW_TILES(1, AR), ROW_TILES(2, AR), ROW_TILES(3, AR), ROW_TILES(4, AR), ROW_TILES(5, AR), \
            ROW_TILES(6, AR)                                                                      \
    }

static const gemm_variant avx2_variant = {
    .name = "avx2",
    .vec = V,
    .mr = MR,
    .nr = V * NV,
    .kc = 1024,
    .mc = MR * 16,
    .nc = 16 * 64,
    .tiles = { LAYOUT_TILES(0), LAYOUT_TILES(1) },
    .dot = dot256,
    .axpy = axpy256,
    .is_dot_any_address = true,
    .dot_max_m = 8,
    .axpy_max_m = 16,
    .pack_a_rows = pack_a_rows256,
    .pack_b_trans = pack_b_trans256,
};

const gemm_variant *gemm_variant_avx2(void)
{
    return &avx2_variant;
}

#else

const gemm_variant *gemm_variant_avx2(void)
{
    return NULL;
}

#endif
