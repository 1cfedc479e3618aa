/* gemm_generic.c - portable micro-kernels of eng_sgemm for CPUs without
 * AVX2 (and non-x86 builds): 6 x 8 register tiles in GCC vector extensions
 * (four lanes: SSE2 on baseline x86-64, NEON on arm64), with plain loops
 * for partial tiles, and a dot-product kernel for C = A W^T. */
#include <string.h>

#include "engine/kernels/gemm_int.h"

enum { V = 4, MR = 6, NV = 2 };

typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p)
{
    v4f r;
    memcpy(&r, p, sizeof r);
    return r;
}

static inline void v4_store(float *p, v4f x)
{
    memcpy(p, &x, sizeof x);
}

static inline void store_one(float *c, float s, float alpha, float beta)
{
    float r = alpha * s;
    if (beta == 1.0f)
        r += *c;
    else if (beta != 0.0f)
        r += beta * *c;
    *c = r;
}

/* Partial tiles (fewer columns than the kernel's width): scalar. */
static void tile_scalar(const gemm_tile *t, int rows)
{
    float acc[MR * V * NV];
    const size_t nr = t->nr;
    memset(acc, 0, sizeof acc);
    for (size_t p = 0; p < t->kc; p++) {
        const float *bp = t->b + p * t->b_ps;
        for (int i = 0; i < rows; i++) {
            float av = t->a[(size_t)i * t->a_rs + p * t->a_ps];
            for (size_t j = 0; j < nr; j++)
                acc[(size_t)i * V * NV + j] += av * bp[j];
        }
    }
    for (int i = 0; i < rows; i++)
        for (size_t j = 0; j < nr; j++)
            store_one(t->c + (size_t)i * t->ldc + j, acc[(size_t)i * V * NV + j], t->alpha, t->beta);
}

static inline __attribute__((always_inline)) void tile_body(const gemm_tile *t, v4f *acc, const int rows,
                                                            const int nv, const int a_rows)
{
    if (t->nr != (size_t)(nv * V)) {
        tile_scalar(t, rows);
        return;
    }
    const size_t kc = t->kc, b_ps = t->b_ps, a_rs = t->a_rs, a_ps = t->a_ps;
    const float *a = t->a, *b = t->b;
#pragma GCC unroll 16
    for (int x = 0; x < rows * nv; x++)
        acc[x] = (v4f){ 0 };
    for (size_t p = 0; p < kc; p++) {
        v4f bv[NV];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            bv[v] = v4_load(b + p * b_ps + (size_t)(V * v));
#pragma GCC unroll 8
        for (int i = 0; i < rows; i++) {
            float s = a_rows ? a[(size_t)i * a_rs + p] : a[p * a_ps + (size_t)i];
            v4f av = { s, s, s, s };
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++)
                acc[i * nv + v] += av * bv[v];
        }
    }
    const v4f alpha = { t->alpha, t->alpha, t->alpha, t->alpha };
    const v4f beta = { t->beta, t->beta, t->beta, t->beta };
#pragma GCC unroll 8
    for (int i = 0; i < rows; i++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            float *cp = t->c + (size_t)i * t->ldc + (size_t)(V * v);
            v4f r = alpha * acc[i * nv + v];
            if (t->beta == 1.0f)
                r += v4_load(cp);
            else if (t->beta != 0.0f)
                r += beta * v4_load(cp);
            v4_store(cp, r);
        }
}

#define TILE(R, N, AR)                                          \
    static void tile_##R##_##N##_##AR(const gemm_tile *t)      \
    {                                                           \
        v4f acc[(R) * (N)];                                     \
        tile_body(t, acc, R, N, AR);                            \
    }
#define TILE_ROWS(R) TILE(R, 1, 0) TILE(R, 2, 0) TILE(R, 1, 1) TILE(R, 2, 1)
TILE_ROWS(1) TILE_ROWS(2) TILE_ROWS(3) TILE_ROWS(4) TILE_ROWS(5) TILE_ROWS(6)

/* C = A W^T for few rows of A: one dot product per output, four partial
 * sums of four lanes each. */
static void dot_generic(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, const float *w,
                        size_t ldw, float beta, float *c, size_t ldc)
{
    for (size_t j = 0; j < n; j++) {
        const float *wj = w + j * ldw;
        for (size_t i = 0; i < m; i++) {
            const float *ai = a + i * lda;
            v4f s0 = { 0 }, s1 = { 0 };
            size_t p = 0;
            for (; p + 2 * V <= k; p += 2 * V) {
                s0 += v4_load(ai + p) * v4_load(wj + p);
                s1 += v4_load(ai + p + V) * v4_load(wj + p + V);
            }
            s0 += s1;
            float s = s0[0] + s0[1] + s0[2] + s0[3];
            for (; p < k; p++)
                s += ai[p] * wj[p];
            store_one(c + i * ldc + j, s, alpha, beta);
        }
    }
}

#define ROW_TILES(R, AR) { tile_##R##_1_##AR, tile_##R##_2_##AR }
#define LAYOUT_TILES(AR)                                                                          \
    {                                                                                             \
        ROW_TILES(1, AR), ROW_TILES(2, AR), ROW_TILES(3, AR), ROW_TILES(4, AR), ROW_TILES(5, AR), \
            ROW_TILES(6, AR)                                                                      \
    }

static const gemm_variant generic_variant = {
    .name = "generic",
    .vec = V,
    .mr = MR,
    .nr = V * NV,
    .kc = 256,
    .mc = MR * 16,
    .nc = 8 * 256,
    .tiles = { LAYOUT_TILES(0), LAYOUT_TILES(1) },
    .dot = dot_generic,
    .dot_max_m = 8,
};

const gemm_variant *gemm_variant_generic(void)
{
    return &generic_variant;
}
