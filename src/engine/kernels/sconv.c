/* sconv.c - the register tile of the direct (stride-1) convolution: a
 * block of ENG_SCONV_MR output channels times a run of consecutive "flat"
 * positions, every input channel and tap accumulated in registers, bias
 * and ReLU applied before the single store.  AVX-512 (8 x 48), AVX2+FMA
 * (two passes of 4 x 24) and the portable reference, chosen once from
 * st_cpu_features().  Target attributes keep the build baseline x86-64. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cpu.h"
#include "engine/kernels/kernels.h"

enum { MR = ENG_SCONV_MR };

/* Where the tile's outputs go: runs of lanes [lane, lane + n) of vector
 * vec (of vec_len lanes) that land at y[dst + i] for i < n, grouped by
 * vector (first[v] .. first[v + 1]).  Positions in a flat row's last
 * wp - ow columns are not outputs and get no piece. */
typedef struct sconv_piece {
    unsigned vec, lane, n;
    size_t dst;
} sconv_piece;

enum { MAX_PIECES = 64 + 4 }; /* np <= 64 lanes, one piece at least each */

static size_t sconv_pieces(const eng_sconv_tile *t, size_t vec_len, sconv_piece *out, size_t *first, size_t nv)
{
    size_t count = 0, gap = t->wp - t->ow;
    for (size_t j = 0; j < t->np;) {
        size_t p = t->p0 + j, oh = p / t->wp, col = p % t->wp;
        if (col >= t->ow) {
            j += t->wp - col;
            continue;
        }
        size_t run = t->ow - col < t->np - j ? t->ow - col : t->np - j;
        while (run) {
            size_t lane = j % vec_len, n = vec_len - lane < run ? vec_len - lane : run;
            out[count++] = (sconv_piece){ (unsigned)(j / vec_len), (unsigned)lane, (unsigned)n, p - oh * gap };
            j += n;
            p += n;
            run -= n;
        }
    }
    /* first[v]: the first piece of vector v (pieces come in lane order). */
    size_t i = 0;
    for (size_t v = 0; v <= nv; v++) {
        while (i < count && out[i].vec < v)
            i++;
        first[v] = i;
    }
    return count;
}

/* Whether tap k of a position in column col reads x (masked taps: the
 * shifted column stays inside the row). */
static inline bool sconv_tap_reads(const eng_sconv_tile *t, size_t col, size_t k)
{
    if (!t->col_shift)
        return true;
    ptrdiff_t c = (ptrdiff_t)col + t->col_shift[k % t->n_cols];
    return c >= 0 && c < (ptrdiff_t)t->wp;
}

/* The lanes of vector v (of vec_len) that tap column j reads, as bits:
 * positions below np whose shifted column stays in the row. */
static inline uint32_t sconv_lane_bits(const eng_sconv_tile *t, size_t vec_len, size_t v, size_t j)
{
    /* Walk the vector's lanes one row segment at a time: in each, the
     * lanes that read are one contiguous range. */
    uint32_t bits = 0;
    size_t lanes = t->np - v * vec_len < vec_len ? t->np - v * vec_len : vec_len;
    size_t col = (t->p0 + v * vec_len) % t->wp;
    ptrdiff_t shift = t->col_shift[j], wp = (ptrdiff_t)t->wp;
    /* Columns [lo, hi) read inside the row. */
    ptrdiff_t lo = shift < 0 ? -shift : 0, hi = shift > 0 ? wp - shift : wp;
    for (size_t i = 0; i < lanes;) {
        size_t seg = t->wp - col < lanes - i ? t->wp - col : lanes - i;
        ptrdiff_t a = (ptrdiff_t)col > lo ? (ptrdiff_t)col : lo;
        ptrdiff_t b = (ptrdiff_t)(col + seg) < hi ? (ptrdiff_t)(col + seg) : hi;
        if (a < b) {
            uint32_t n = (uint32_t)(b - a), first = (uint32_t)(i + (size_t)(a - (ptrdiff_t)col));
            bits |= (n >= 32 ? 0xffffffffu : (1u << n) - 1u) << first;
        }
        i += seg;
        col = 0;
    }
    return bits;
}

void eng_sconv_tile_ref(const eng_sconv_tile *t)
{
    float acc[64];
    sconv_piece pieces[MAX_PIECES];
    size_t first[2];
    size_t count = sconv_pieces(t, 64, pieces, first, 1), k_rows = t->c_in * t->n_taps;
    for (size_t m = 0; m < t->rows; m++) {
        const float *wb = t->w + m / MR * MR * k_rows + m % MR;
        for (size_t j = 0; j < t->np; j++) {
            float a = t->bias ? t->bias[m] : 0.0f;
            const float *w = wb;
            size_t col = (t->p0 + j) % t->wp;
            for (size_t c = 0; c < t->c_in; c++) {
                const float *xc = t->x + c * t->x_cs + t->p0 + j;
                for (size_t k = 0; k < t->n_taps; k++, w += MR)
                    if (sconv_tap_reads(t, col, k))
                        a += *w * xc[t->taps[k]];
            }
            acc[j] = t->relu && !(a > 0.0f) ? 0.0f : a;
        }
        for (size_t i = 0; i < count; i++)
            for (size_t l = 0; l < pieces[i].n; l++)
                t->y[m * t->ldy + pieces[i].dst + l] = acc[pieces[i].lane + l];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx2,fma")))
#define INLINE512 static inline __attribute__((always_inline)) T512
#define T256 __attribute__((target("avx2,fma")))
#define INLINE256 static inline __attribute__((always_inline)) T256

/* One block's outputs: rows (1..MR) of w, bias (NULL: 0) and y. */
typedef struct sconv_block {
    const float *w, *bias;
    float *y;
    size_t rows;
} sconv_block;

/* --- AVX-512: 8 rows x nv vectors of 16 ------------------------------------ */

INLINE512 void block512(const eng_sconv_tile *t, const sconv_block *bk, const sconv_piece *pieces,
                        const size_t *first, const __mmask16 (*mk)[3], const int nv, const int masked)
{
    __m512 acc[MR][3];
    const unsigned tail = (unsigned)(t->np - (size_t)(nv - 1) * 16);
    const __mmask16 lm = _cvtu32_mask16(tail >= 16 ? 0xffffu : (1u << tail) - 1u);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        __m512 b = _mm512_set1_ps(bk->bias && (size_t)r < bk->rows ? bk->bias[r] : 0.0f);
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            acc[r][v] = b;
    }
    const float *w = bk->w;
    const size_t *taps = t->taps, n_taps = t->n_taps;
    for (size_t c = 0; c < t->c_in; c++) {
        const float *xc = t->x + c * t->x_cs + t->p0;
        size_t j = 0; /* tap column */
        for (size_t k = 0; k < n_taps; k++, w += MR) {
            const float *xp = xc + taps[k];
            __m512 xv[3];
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++)
                xv[v] = masked        ? _mm512_maskz_loadu_ps(mk[j][v], xp + 16 * v)
                        : v == nv - 1 ? _mm512_maskz_loadu_ps(lm, xp + 16 * v)
                                      : _mm512_loadu_ps(xp + 16 * v);
            if (masked && ++j == t->n_cols)
                j = 0;
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
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* Fixed trip counts: a runtime index into acc would put it in memory. */
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        if ((size_t)r >= bk->rows)
            break;
        float *y = bk->y + (size_t)r * t->ldy;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            __m512 o = t->relu ? _mm512_max_ps(acc[r][v], zero) : acc[r][v];
            for (size_t i = first[v]; i < first[v + 1]; i++) {
                const sconv_piece *pc = &pieces[i];
                if (pc->n == 16) {
                    _mm512_storeu_ps(y + pc->dst, o);
                    continue;
                }
                __m512 sh = pc->lane ? _mm512_permutexvar_ps(_mm512_add_epi32(iota, _mm512_set1_epi32((int)pc->lane)), o)
                                     : o;
                _mm512_mask_storeu_ps(y + pc->dst, _cvtu32_mask16((1u << pc->n) - 1u), sh);
            }
        }
    }
}

static T512 void sconv_avx512(const eng_sconv_tile *t)
{
    sconv_piece pieces[MAX_PIECES];
    size_t first[4];
    const int nv = t->np > 32 ? 3 : t->np > 16 ? 2 : 1;
    sconv_pieces(t, 16, pieces, first, (size_t)nv);
    __mmask16 mk[ENG_SCONV_MAX_COLS][3];
    if (t->col_shift)
        for (size_t j = 0; j < t->n_cols; j++)
            for (int v = 0; v < nv; v++)
                mk[j][v] = _cvtu32_mask16(sconv_lane_bits(t, 16, (size_t)v, j));
    size_t k_rows = t->c_in * t->n_taps;
    for (size_t m0 = 0; m0 < t->rows; m0 += MR) {
        sconv_block bk = { t->w + m0 * k_rows, t->bias ? t->bias + m0 : NULL, t->y + m0 * t->ldy,
                           t->rows - m0 < MR ? t->rows - m0 : MR };
        const int masked = t->col_shift != NULL;
        if (nv == 3 && masked)
            block512(t, &bk, pieces, first, mk, 3, 1);
        else if (nv == 3)
            block512(t, &bk, pieces, first, mk, 3, 0);
        else if (nv == 2 && masked)
            block512(t, &bk, pieces, first, mk, 2, 1);
        else if (nv == 2)
            block512(t, &bk, pieces, first, mk, 2, 0);
        else if (masked)
            block512(t, &bk, pieces, first, mk, 1, 1);
        else
            block512(t, &bk, pieces, first, mk, 1, 0);
    }
}

/* --- AVX2: rows [r0, r0 + 4) of a block x nv vectors of 8 ------------------ */

static const int32_t mask_table[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };

INLINE256 void half256(const eng_sconv_tile *t, const sconv_block *bk, const sconv_piece *pieces,
                       const size_t *first, const __m256i (*mk)[3], const int r0, const int nv, const int masked)
{
    enum { HR = MR / 2 };
    __m256 acc[HR][3];
    size_t tail = t->np - (size_t)(nv - 1) * 8;
    const __m256i lm = _mm256_loadu_si256((const __m256i *)(mask_table + 8 - (tail > 8 ? 8 : tail)));
#pragma GCC unroll 4
    for (int r = 0; r < HR; r++) {
        __m256 b = _mm256_set1_ps(bk->bias && (size_t)(r0 + r) < bk->rows ? bk->bias[r0 + r] : 0.0f);
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++)
            acc[r][v] = b;
    }
    const float *w = bk->w + r0;
    const size_t *taps = t->taps, n_taps = t->n_taps;
    for (size_t c = 0; c < t->c_in; c++) {
        const float *xc = t->x + c * t->x_cs + t->p0;
        size_t j = 0; /* tap column */
        for (size_t k = 0; k < n_taps; k++, w += MR) {
            const float *xp = xc + taps[k];
            __m256 xv[3];
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++)
                xv[v] = masked        ? _mm256_maskload_ps(xp + 8 * v, mk[j][v])
                        : v == nv - 1 ? _mm256_maskload_ps(xp + 8 * v, lm)
                                      : _mm256_loadu_ps(xp + 8 * v);
            if (masked && ++j == t->n_cols)
                j = 0;
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
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 4
    for (int r = 0; r < HR; r++) {
        if ((size_t)(r0 + r) >= bk->rows)
            break;
        float *y = bk->y + (size_t)(r0 + r) * t->ldy;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            __m256 o = t->relu ? _mm256_max_ps(acc[r][v], zero) : acc[r][v];
            for (size_t i = first[v]; i < first[v + 1]; i++) {
                const sconv_piece *pc = &pieces[i];
                if (pc->n == 8) {
                    _mm256_storeu_ps(y + pc->dst, o);
                    continue;
                }
                __m256 sh = pc->lane ? _mm256_permutevar8x32_ps(o, _mm256_add_epi32(iota, _mm256_set1_epi32((int)pc->lane)))
                                     : o;
                _mm256_maskstore_ps(y + pc->dst, _mm256_loadu_si256((const __m256i *)(mask_table + 8 - pc->n)), sh);
            }
        }
    }
}

static T256 void sconv_avx2(const eng_sconv_tile *t)
{
    sconv_piece pieces[MAX_PIECES];
    size_t first[4];
    const int nv = t->np > 16 ? 3 : t->np > 8 ? 2 : 1;
    sconv_pieces(t, 8, pieces, first, (size_t)nv);
    __m256i mk[ENG_SCONV_MAX_COLS][3];
    if (t->col_shift)
        for (size_t j = 0; j < t->n_cols; j++)
            for (int v = 0; v < nv; v++) {
                uint32_t bits = sconv_lane_bits(t, 8, (size_t)v, j);
                mk[j][v] = _mm256_setr_epi32(-(int)(bits & 1), -(int)(bits >> 1 & 1), -(int)(bits >> 2 & 1),
                                             -(int)(bits >> 3 & 1), -(int)(bits >> 4 & 1), -(int)(bits >> 5 & 1),
                                             -(int)(bits >> 6 & 1), -(int)(bits >> 7 & 1));
            }
    size_t k_rows = t->c_in * t->n_taps;
    const int masked = t->col_shift != NULL;
    for (size_t m0 = 0; m0 < t->rows; m0 += MR) {
        sconv_block bk = { t->w + m0 * k_rows, t->bias ? t->bias + m0 : NULL, t->y + m0 * t->ldy,
                           t->rows - m0 < MR ? t->rows - m0 : MR };
        for (int r0 = 0; r0 < MR && (size_t)r0 < bk.rows; r0 += MR / 2) {
            if (nv == 3 && masked)
                half256(t, &bk, pieces, first, mk, r0, 3, 1);
            else if (nv == 3)
                half256(t, &bk, pieces, first, mk, r0, 3, 0);
            else if (nv == 2 && masked)
                half256(t, &bk, pieces, first, mk, r0, 2, 1);
            else if (nv == 2)
                half256(t, &bk, pieces, first, mk, r0, 2, 0);
            else if (masked)
                half256(t, &bk, pieces, first, mk, r0, 1, 1);
            else
                half256(t, &bk, pieces, first, mk, r0, 1, 0);
        }
    }
}

#endif

/* --- choice ------------------------------------------------------------------ */

static void (*best_tile)(const eng_sconv_tile *t) = eng_sconv_tile_ref;
static size_t best_np = 48;
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
