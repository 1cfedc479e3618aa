/* kernels.h - compute kernels used by the operators.  Each has a scalar
 * reference (`*_ref`) and, where it pays, AVX2 / AVX-512 variants chosen
 * once at start-up from st_cpu_features(); tests compare them. */
#ifndef ST_ENGINE_KERNELS_H
#define ST_ENGINE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/pool.h"

/* C = alpha * op(A) * op(B) + beta * C, row-major.  op(A) is m x k, op(B)
 * is k x n.  lda/ldb/ldc are row strides in elements of the stored
 * matrices.  beta 0 ignores C's contents (may be uninitialised).  `pool`
 * may be NULL. */
void eng_sgemm(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, bool trans_a,
               const float *b, size_t ldb, bool trans_b, float beta, float *c, size_t ldc, st_pool *pool);
/* The scalar reference of eng_sgemm (same contract, single thread). */
void eng_sgemm_ref(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, bool trans_a,
                   const float *b, size_t ldb, bool trans_b, float beta, float *c, size_t ldc);

#endif
