/* gemm.c - single-precision matrix multiply.  The reference is a plain
 * row-times-panel loop the compiler vectorises; faster variants dispatch
 * from eng_sgemm. */
#include <string.h>

#include "engine/kernels/kernels.h"

void eng_sgemm_ref(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, bool trans_a,
                   const float *b, size_t ldb, bool trans_b, float beta, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, n * sizeof *ci);
        else if (beta != 1.0f)
            for (size_t j = 0; j < n; j++)
                ci[j] *= beta;
        for (size_t p = 0; p < k; p++) {
            float av = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
            if (!trans_b) {
                const float *bp = b + p * ldb;
                for (size_t j = 0; j < n; j++)
                    ci[j] += av * bp[j];
            } else {
                for (size_t j = 0; j < n; j++)
                    ci[j] += av * b[j * ldb + p];
            }
        }
    }
}

void eng_sgemm(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, bool trans_a,
               const float *b, size_t ldb, bool trans_b, float beta, float *c, size_t ldc, st_pool *pool)
{
    (void)pool;
    eng_sgemm_ref(m, n, k, alpha, a, lda, trans_a, b, ldb, trans_b, beta, c, ldc);
}
