/* gemm_int.h - the parts of eng_sgemm shared between the driver (gemm.c)
 * and the per-ISA micro-kernels (gemm_generic.c, gemm_avx2.c,
 * gemm_avx512.c), and per-variant entry points for tests and benchmarks.
 * Nothing outside src/engine/kernels/, tests and bench may include it. */
#ifndef ST_ENGINE_GEMM_INT_H
#define ST_ENGINE_GEMM_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/kernels/kernels.h"

/* Largest register tile any variant uses (rows, and vectors per row). */
enum { GEMM_MR_MAX = 16, GEMM_NV_MAX = 2 };

/* One register tile: C[0:mr, 0:nr] = alpha * A B + beta * C over depth kc,
 * where mr and nr are fixed by the kernel chosen from the variant's table.
 *   A(i, p) = a[i * a_rs + p * a_ps]   (a panel: a_rs == 1; rows: a_ps == 1)
 *   B(p, j) = b[p * b_ps + j]          (only columns j < nr are read)
 *   C(i, j) = c[i * ldc + j]
 * beta == 0 never reads C (it may hold NaN); beta == 1 adds without a
 * multiply. */
typedef struct gemm_tile {
    size_t kc;
    const float *a;
    size_t a_rs, a_ps;
    const float *b;
    size_t b_ps;
    float *c;
    size_t ldc;
    float alpha, beta;
    size_t nr;         /* columns to compute: 1 .. vec * nv of the kernel */
    bool is_b_padded;  /* B's rows are readable to the kernel's full width
                        * (packed panels), so loads need no mask */
} gemm_tile;

typedef void (*gemm_tile_fn)(const gemm_tile *t);

/* Small-M kernel for op(B) = W^T with W stored [n, k] (ldb): computes
 * C[0:m, 0:n] = alpha * A W^T + beta * C as dot products of rows of A
 * (contiguous, lda) with rows of W, streaming W once.  m is small. */
typedef void (*gemm_dot_fn)(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                            const float *w, size_t ldw, float beta, float *c, size_t ldc);

/* Small-M kernel for a stored (neither transposed nor packed) B:
 * C[0:m, 0:n] = alpha * A B + beta * C with A(i, p) = a[i * a_rs + p * a_ps]
 * and m <= GEMM_AXPY_ROWS.  It walks B row by row in address order, which
 * the hardware prefetchers follow (a narrow column panel touches a new page
 * every row or two and they give up), and accumulates into C, kept in L1
 * by working on column chunks. */
enum { GEMM_AXPY_ROWS = 4 };
typedef void (*gemm_axpy_fn)(size_t m, size_t n, size_t k, float alpha, const float *a, size_t a_rs, size_t a_ps,
                             const float *b, size_t ldb, float beta, float *c, size_t ldc);

/* A set of kernels for one instruction set and its blocking. */
typedef struct gemm_variant {
    const char *name; /* "generic", "avx2", "avx512" */
    size_t vec;       /* floats per vector */
    size_t mr, nr;    /* full register tile; nr == vec * nv_max */
    size_t kc, mc, nc;/* cache blocks: kc depth, mc rows (multiple of mr),
                       * nc columns (multiple of nr) */
    /* tiles[a_rows][rows - 1][vectors - 1]; a_rows selects the A layout
     * (0: panel, a_rs == 1; 1: rows, a_ps == 1).  Rows 1 .. mr and vectors
     * 1 .. nr / vec are all present. */
    gemm_tile_fn tiles[2][GEMM_MR_MAX][GEMM_NV_MAX];
    gemm_dot_fn dot;     /* C = A W^T for m <= dot_max_m (NULL: tiles) */
    gemm_axpy_fn axpy;   /* stored B, m <= axpy_max_m (NULL: tiles) */
    size_t dot_max_m, axpy_max_m;
    bool is_dot_any_address; /* dot reads W with unaligned vector loads
                              * only: W may sit at any byte address */
    /* Transposing packers (NULL: the portable loops in gemm.c).
     * pack_a_rows: dst[p * mr + i] = a[i * lda + p] for i < rows <= mr,
     *   p < kc (lanes i >= rows are left alone).
     * pack_b_trans: dst[p * nr + j] = w[j * ldw + p] for j < cols <= nr,
     *   p < kc, and 0 for cols <= j < nr. */
    void (*pack_a_rows)(size_t rows, size_t kc, const float *a, size_t lda, float *dst);
    void (*pack_b_trans)(size_t cols, size_t kc, const float *w, size_t ldw, float *dst);
} gemm_variant;

/* The variants built into this binary; NULL when the ISA is not compiled
 * in (non-x86).  Whether the CPU can run them is the caller's business. */
const gemm_variant *gemm_variant_generic(void);
const gemm_variant *gemm_variant_avx2(void);
const gemm_variant *gemm_variant_avx512(void);
/* The variant eng_sgemm uses: chosen once from st_cpu_features(). */
const gemm_variant *gemm_variant_best(void);

/* eng_sgemm with an explicit variant (tests force each path). */
void gemm_sgemm_variant(const gemm_variant *v, size_t m, size_t n, size_t k, float alpha, const float *a,
                        size_t lda, bool trans_a, const float *b, size_t ldb, bool trans_b, float beta,
                        float *c, size_t ldc, st_pool *pool);
/* eng_sgemm_unaligned_b with an explicit variant. */
void gemm_sgemm_unaligned_b_variant(const gemm_variant *v, size_t m, size_t n, size_t k, float alpha,
                                    const float *a, size_t lda, bool trans_a, const void *b, size_t ldb,
                                    bool trans_b, float beta, float *c, size_t ldc, st_pool *pool);
/* eng_sgemm_pack_b with an explicit variant. */
eng_sgemm_packed_b *gemm_pack_b_variant(const gemm_variant *v, size_t k, size_t n, const float *b, size_t ldb,
                                        bool trans_b, void *mem, size_t mem_bytes);
size_t gemm_pack_b_bytes_variant(const gemm_variant *v, size_t k, size_t n);

#endif
