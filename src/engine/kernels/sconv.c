/* sconv.c - the register tile of the direct (stride-1) convolution: a
 * block of ENG_SCONV_MR output channels times a run of consecutive "flat"
 * positions, every input channel and tap accumulated in registers, bias
 * and ReLU applied before the single store.  AVX-512 (8 x 48), AVX2+FMA
 * (two passes of 4 x 24) and the portable reference, chosen once from
 * st_cpu_features().  Target attributes keep the build baseline x86-64. */
#include <pthread.h>
#include <stdint.h>

#include "base/cpu.h"
#include "engine/kernels/kernels.h"

enum { MR = ENG_SCONV_MR };

void eng_sconv_tile_ref(const eng_sconv_tile *t)
{
    for (size_t r = 0; r < t->rows; r++) {
        float *y = t->y + r * t->ldy;
        for (size_t j = 0; j < t->np; j++) {
            float acc = t->bias[r];
            const float *w = t->w + r;
            for (size_t c = 0; c < t->c_in; c++) {
                const float *xc = t->x + c * t->x_cs + j;
                for (size_t k = 0; k < t->n_taps; k++, w += MR)
                    acc += *w * xc[t->taps[k]];
            }
            y[j] = t->relu && !(acc > 0.0f) ? 0.0f : acc;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx2,fma")))
#define INLINE512 static inline __attribute__((always_inline)) T512
#define T256 __attribute__((target("avx2,fma")))
#define INLINE256 static inline __attribute__((always_inline)) T256

/* --- AVX-512: 8 rows x nv vectors of 16 ------------------------------------ */

INLINE512 void tile512(const eng_sconv_tile *t, const int nv)
{
    __m512 acc[MR][3];
    const unsigned tail = (unsigned)(t->np - (size_t)(nv - 1) * 16);
    const __mmask16 lm = _cvtu32_mask16(tail >= 16 ? 0xffffu : (1u << tail) - 1u);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        __m512 b = _mm512_set1_ps(t->bias[r]);
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            acc[r][v] = b;
    }
    const float *w = t->w;
    const size_t *taps = t->taps, n_taps = t->n_taps;
    for (size_t c = 0; c < t->c_in; c++) {
        const float *xc = t->x + c * t->x_cs;
        for (size_t k = 0; k < n_taps; k++, w += MR) {
            const float *xp = xc + taps[k];
            __m512 xv[3];
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++)
                xv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(lm, xp + 16 * v) : _mm512_loadu_ps(xp + 16 * v);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                __m512 wv = _mm512_set1_ps(w[r]);
#pragma GCC unroll 3
                for (int v = 0; v < nv; v++)
                    acc[r][v] = _mm512_fmadd_ps(wv, xv[v], acc[r][v]);
            }
        }
    }
    const __m512 zero = _mm512_setzero_ps();
    /* Fixed trip count: a runtime index into acc would put it in memory. */
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        if ((size_t)r >= t->rows)
            break;
        float *y = t->y + (size_t)r * t->ldy;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            __m512 o = t->relu ? _mm512_max_ps(acc[r][v], zero) : acc[r][v];
            if (v == nv - 1)
                _mm512_mask_storeu_ps(y + 16 * v, lm, o);
            else
                _mm512_storeu_ps(y + 16 * v, o);
        }
    }
}

static T512 void sconv_avx512(const eng_sconv_tile *t)
{
    if (t->np > 32)
        tile512(t, 3);
    else if (t->np > 16)
        tile512(t, 2);
    else
        tile512(t, 1);
}

/* --- AVX2: rows [r0, r0 + 4) x nv vectors of 8 ------------------------------ */

static const int32_t mask_table[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };

INLINE256 void tile256(const eng_sconv_tile *t, const int r0, const int nv)
{
    enum { HR = MR / 2 };
    __m256 acc[HR][3];
    size_t tail = t->np - (size_t)(nv - 1) * 8;
    const __m256i lm = _mm256_loadu_si256((const __m256i *)(mask_table + 8 - (tail > 8 ? 8 : tail)));
#pragma GCC unroll 4
    for (int r = 0; r < HR; r++) {
        __m256 b = _mm256_set1_ps(t->bias[r0 + r]);
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            acc[r][v] = b;
    }
    const float *w = t->w + r0;
    const size_t *taps = t->taps, n_taps = t->n_taps;
    for (size_t c = 0; c < t->c_in; c++) {
        const float *xc = t->x + c * t->x_cs;
        for (size_t k = 0; k < n_taps; k++, w += MR) {
            const float *xp = xc + taps[k];
            __m256 xv[3];
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++)
                xv[v] = v == nv - 1 ? _mm256_maskload_ps(xp + 8 * v, lm) : _mm256_loadu_ps(xp + 8 * v);
#pragma GCC unroll 4
            for (int r = 0; r < HR; r++) {
                __m256 wv = _mm256_broadcast_ss(w + r);
#pragma GCC unroll 3
                for (int v = 0; v < nv; v++)
                    acc[r][v] = _mm256_fmadd_ps(wv, xv[v], acc[r][v]);
            }
        }
    }
    const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int r = 0; r < HR; r++) {
        if ((size_t)(r0 + r) >= t->rows)
            break;
        float *y = t->y + (size_t)(r0 + r) * t->ldy;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            __m256 o = t->relu ? _mm256_max_ps(acc[r][v], zero) : acc[r][v];
            if (v == nv - 1)
                _mm256_maskstore_ps(y + 8 * v, lm, o);
            else
                _mm256_storeu_ps(y + 8 * v, o);
        }
    }
}

static T256 void sconv_avx2_half(const eng_sconv_tile *t, int r0)
{
    if (t->np > 16)
        tile256(t, r0, 3);
    else if (t->np > 8)
        tile256(t, r0, 2);
    else
        tile256(t, r0, 1);
}

static T256 void sconv_avx2(const eng_sconv_tile *t)
{
    sconv_avx2_half(t, 0);
    if (t->rows > MR / 2)
        sconv_avx2_half(t, MR / 2);
}

#endif

/* --- choice ------------------------------------------------------------------ */

static void (*best_tile)(const eng_sconv_tile *t) = eng_sconv_tile_ref;
static size_t best_np = 64;
static pthread_once_t best_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    const st_cpu_feature_set *f = st_cpu_features();
    if (f->has_avx512f) {
        best_tile = sconv_avx512;
        best_np = 48;
    } else if (f->has_avx2 && f->has_fma) {
        best_tile = sconv_avx2;
        best_np = 24;
    }
#endif
}

size_t eng_sconv_max_np(void)
{
    pthread_once(&best_once, choose);
    return best_np;
}

void eng_sconv_tile_run(const eng_sconv_tile *t)
{
    pthread_once(&best_once, choose);
    best_tile(t);
}

void eng_sconv_pack(const float *w, size_t c_out, size_t group, size_t k_per_out, float *dst)
{
    size_t m_g = group ? c_out / group : 0, blocks = (m_g + MR - 1) / MR;
    for (size_t grp = 0; grp < group; grp++)
        for (size_t b = 0; b < blocks; b++)
            for (size_t k = 0; k < k_per_out; k++)
                for (size_t r = 0; r < MR; r++) {
                    size_t m = b * MR + r;
                    *dst++ = m < m_g ? w[(grp * m_g + m) * k_per_out + k] : 0.0f;
                }
}

size_t eng_sconv_pack_floats(size_t c_out, size_t group, size_t k_per_out)
{
    size_t m_g = group ? c_out / group : 0, blocks = (m_g + MR - 1) / MR, n;
    if (__builtin_mul_overflow(blocks * MR, group, &n) || __builtin_mul_overflow(n, k_per_out, &n))
        return 0;
    return n;
}
