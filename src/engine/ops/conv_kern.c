/* conv_kern.c - SIMD kernels of the convolution family: the direct
 * depthwise plane kernel and the row helpers of the pools (AVX2/FMA with
 * portable fallbacks, chosen from st_cpu_features(), looked up once).
 *
 * The kernel reads a zero-padded copy of the input plane whose rows are
 * split into `stride` column phases (conv_int.h), so every tap reads
 * consecutive floats for consecutive outputs whatever the stride: no
 * bounds checks, no gathers or shuffles.  It keeps four output rows in
 * flight (four independent FMA chains); 3x3 stride-1 undilated kernels,
 * the common case, get a version with the nine weights in registers. */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/cpu.h"
#include "engine/ops/conv_int.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "engine/kernels/cols512.h"
#define CONV_X86 1
#endif

#ifdef CONV_X86
/* Whether the AVX2+FMA kernels may run: asked once, then one relaxed load
 * (the row helpers are called per row, st_cpu_features per call showed). */
static bool use_avx2(void)
{
    static atomic_int state; /* 0 not asked yet, 1 no, 2 yes */
    int s = atomic_load_explicit(&state, memory_order_relaxed);
    if (!s) {
        const st_cpu_feature_set *cpu = st_cpu_features();
        s = cpu->has_avx2 && cpu->has_fma ? 2 : 1;
        atomic_store_explicit(&state, s, memory_order_relaxed);
    }
    return s == 2;
}
#endif

/* Offset of tap (i, j) from an output's origin in the phase layout. */
static inline size_t tap_offset(const conv_dw_shape *s, size_t i, size_t j)
{
    size_t col = j * s->dw;
    return i * s->dh * s->row_len + (col % s->sw) * s->phase_w + col / s->sw;
}

void conv_dw_plane_f32_ref(const conv_dw_shape *s, const float *src, const float *w, float bias, float *dst)
{
    size_t row_step = s->sh * s->row_len;
    for (size_t y = 0; y < s->oh; y++) {
        float *o = dst + y * s->ow;
        for (size_t x = 0; x < s->ow; x++)
            o[x] = bias;
        for (size_t i = 0; i < s->kh; i++)
            for (size_t j = 0; j < s->kw; j++) {
                const float *p = src + y * row_step + tap_offset(s, i, j);
                float wv = w[i * s->kw + j];
                for (size_t x = 0; x < s->ow; x++)
                    o[x] += wv * p[x];
            }
    }
}

#ifdef CONV_X86

#define AVX2 __attribute__((target("avx2,fma")))

static const int32_t mask_table[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };

/* Stores the first n lanes of v (all eight when n >= 8). */
static inline __attribute__((always_inline, target("avx2,fma"))) void store8(float *p, __m256 v, size_t n)
{
    if (n >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, _mm256_loadu_si256((const __m256i *)(mask_table + 8 - n)), v);
}

/* Any kernel: per tap, one offset and one weight broadcast shared by the
 * four rows in flight. */
AVX2 static void dw_plane_avx2(const conv_dw_shape *s, const float *src, const float *w, float bias, float *dst)
{
    size_t taps = s->kh * s->kw, off[CONV_DW_MAX_TAPS];
    for (size_t i = 0; i < s->kh; i++)
        for (size_t j = 0; j < s->kw; j++)
            off[i * s->kw + j] = tap_offset(s, i, j);
    const __m256 vb = _mm256_set1_ps(bias);
    const size_t rs = s->sh * s->row_len, ow = s->ow;
    size_t y = 0;
    for (; y + 4 <= s->oh; y += 4) {
        const float *r0 = src + y * rs;
        float *o = dst + y * ow;
        for (size_t x = 0; x < ow; x += 8) {
            __m256 a0 = vb, a1 = vb, a2 = vb, a3 = vb;
            const float *p = r0 + x;
            for (size_t t = 0; t < taps; t++) {
                __m256 wt = _mm256_broadcast_ss(w + t);
                const float *q = p + off[t];
                a0 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(q), a0);
                a1 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(q + rs), a1);
                a2 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(q + 2 * rs), a2);
                a3 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(q + 3 * rs), a3);
            }
            size_t n = ow - x;
            store8(o + x, a0, n);
            store8(o + ow + x, a1, n);
            store8(o + 2 * ow + x, a2, n);
            store8(o + 3 * ow + x, a3, n);
        }
    }
    for (; y < s->oh; y++) {
        const float *r0 = src + y * rs;
        float *o = dst + y * ow;
        for (size_t x = 0; x < ow; x += 8) {
            __m256 a0 = vb;
            for (size_t t = 0; t < taps; t++)
                a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + t), _mm256_loadu_ps(r0 + x + off[t]), a0);
            store8(o + x, a0, ow - x);
        }
    }
}

/* One kernel row of a 3x3 at consecutive columns. */
#define DW3_ROW(acc, r, wa, wb, wc)                                    \
    do {                                                               \
        acc = _mm256_fmadd_ps(wa, _mm256_loadu_ps((r) + x), acc);      \
        acc = _mm256_fmadd_ps(wb, _mm256_loadu_ps((r) + x + 1), acc);  \
        acc = _mm256_fmadd_ps(wc, _mm256_loadu_ps((r) + x + 2), acc);  \
    } while (0)

/* 3x3, stride 1 (any row stride sh), no dilation: column offsets are
 * constants, so the rows in flight need only one pointer each. */
AVX2 static void dw_plane_avx2_3x3(const conv_dw_shape *s, const float *src, const float *w, float bias, float *dst)
{
    const __m256 vb = _mm256_set1_ps(bias);
    const __m256 w00 = _mm256_set1_ps(w[0]), w01 = _mm256_set1_ps(w[1]), w02 = _mm256_set1_ps(w[2]);
    const __m256 w10 = _mm256_set1_ps(w[3]), w11 = _mm256_set1_ps(w[4]), w12 = _mm256_set1_ps(w[5]);
    const __m256 w20 = _mm256_set1_ps(w[6]), w21 = _mm256_set1_ps(w[7]), w22 = _mm256_set1_ps(w[8]);
    const size_t ow = s->ow, len = s->row_len, rs = s->sh * len;
    size_t y = 0;
    if (s->sh == 1) {
        /* Rows y..y+3 read input rows y..y+5. */
        for (; y + 4 <= s->oh; y += 4) {
            const float *i0 = src + y * len, *i1 = i0 + len, *i2 = i1 + len, *i3 = i2 + len, *i4 = i3 + len,
                        *i5 = i4 + len;
            float *o0 = dst + y * ow, *o1 = o0 + ow, *o2 = o1 + ow, *o3 = o2 + ow;
            for (size_t x = 0; x < ow; x += 8) {
                __m256 a0 = vb, a1 = vb, a2 = vb, a3 = vb;
                DW3_ROW(a0, i0, w00, w01, w02);
                DW3_ROW(a1, i1, w00, w01, w02);
                DW3_ROW(a2, i2, w00, w01, w02);
                DW3_ROW(a3, i3, w00, w01, w02);
                DW3_ROW(a0, i1, w10, w11, w12);
                DW3_ROW(a1, i2, w10, w11, w12);
                DW3_ROW(a2, i3, w10, w11, w12);
                DW3_ROW(a3, i4, w10, w11, w12);
                DW3_ROW(a0, i2, w20, w21, w22);
                DW3_ROW(a1, i3, w20, w21, w22);
                DW3_ROW(a2, i4, w20, w21, w22);
                DW3_ROW(a3, i5, w20, w21, w22);
                size_t n = ow - x;
                store8(o0 + x, a0, n);
                store8(o1 + x, a1, n);
                store8(o2 + x, a2, n);
                store8(o3 + x, a3, n);
            }
        }
    } else {
        /* Two rows in flight: rows y, y+1 read 2 x 3 input rows. */
        for (; y + 2 <= s->oh; y += 2) {
            const float *i0 = src + y * rs, *i1 = i0 + len, *i2 = i1 + len;
            const float *j0 = i0 + rs, *j1 = j0 + len, *j2 = j1 + len;
            float *o0 = dst + y * ow, *o1 = o0 + ow;
            for (size_t x = 0; x < ow; x += 8) {
                __m256 a0 = vb, a1 = vb;
                DW3_ROW(a0, i0, w00, w01, w02);
                DW3_ROW(a1, j0, w00, w01, w02);
                DW3_ROW(a0, i1, w10, w11, w12);
                DW3_ROW(a1, j1, w10, w11, w12);
                DW3_ROW(a0, i2, w20, w21, w22);
                DW3_ROW(a1, j2, w20, w21, w22);
                size_t n = ow - x;
                store8(o0 + x, a0, n);
                store8(o1 + x, a1, n);
            }
        }
    }
    for (; y < s->oh; y++) {
        const float *i0 = src + y * rs, *i1 = i0 + len, *i2 = i1 + len;
        float *o0 = dst + y * ow;
        for (size_t x = 0; x < ow; x += 8) {
            __m256 a0 = vb;
            DW3_ROW(a0, i0, w00, w01, w02);
            DW3_ROW(a0, i1, w10, w11, w12);
            DW3_ROW(a0, i2, w20, w21, w22);
            store8(o0 + x, a0, ow - x);
        }
    }
}

#undef DW3_ROW

/* --- 3x3 stride 1 on the unpadded plane (AVX-512) -----------------------------
 * The padded copy costs more than the convolution for small planes (a
 * 16x16 plane: ~18 row copies against 288 FMAs), so with AVX-512 the 3x3
 * stride-1 case reads the input plane itself: masked loads give the zero
 * columns, rows outside the input are skipped. */

#define AVX512 __attribute__((target("avx512f,avx2,fma")))

static AVX512 void dw3_raw_avx512(const conv_dw_shape *s, const float *plane, const float *w, float bias, float *dst)
{
    const __m512 vb = _mm512_set1_ps(bias);
    __m512 wv[9];
    for (int t = 0; t < 9; t++)
        wv[t] = _mm512_set1_ps(w[t]);
    for (size_t y = 0; y < s->oh; y++)
        for (size_t x0 = 0; x0 < s->ow; x0 += 16) {
            __m512 acc = vb;
            ptrdiff_t col = (ptrdiff_t)x0 - (ptrdiff_t)s->pad_left;
            for (int i = 0; i < 3; i++) {
                ptrdiff_t iy = (ptrdiff_t)y + i - (ptrdiff_t)s->pad_top;
                if (iy < 0 || iy >= (ptrdiff_t)s->ih)
                    continue;
                const float *row = plane + (size_t)iy * s->iw;
                acc = _mm512_fmadd_ps(wv[3 * i], eng_cols16(row, col, s->iw), acc);
                acc = _mm512_fmadd_ps(wv[3 * i + 1], eng_cols16(row, col + 1, s->iw), acc);
                acc = _mm512_fmadd_ps(wv[3 * i + 2], eng_cols16(row, col + 2, s->iw), acc);
            }
            _mm512_mask_storeu_ps(dst + y * s->ow + x0, eng_lanes16(s->ow - x0), acc);
        }
}

static bool use_avx512(void)
{
    static atomic_int state; /* 0 not asked yet, 1 no, 2 yes */
    int st = atomic_load_explicit(&state, memory_order_relaxed);
    if (!st) {
        st = st_cpu_features()->has_avx512f ? 2 : 1;
        atomic_store_explicit(&state, st, memory_order_relaxed);
    }
    return st == 2;
}

#endif /* CONV_X86 */

bool conv_dw_raw_applies(const conv_dw_shape *s)
{
#ifdef CONV_X86
    return use_avx512() && s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->dh == 1 && s->dw == 1 &&
           s->pad_top <= 1 && s->pad_left <= 1;
#else
    (void)s;
    return false;
#endif
}

void conv_dw_raw_f32(const conv_dw_shape *s, const float *plane, const float *w, float bias, float *dst)
{
#ifdef CONV_X86
    dw3_raw_avx512(s, plane, w, bias, dst);
#else
    (void)s, (void)plane, (void)w, (void)bias, (void)dst;
#endif
}

void conv_dw_plane_f32(const conv_dw_shape *s, const float *src, const float *w, float bias, float *dst)
{
#ifdef CONV_X86
    if (use_avx2() && s->kh * s->kw <= CONV_DW_MAX_TAPS) {
        if (s->kh == 3 && s->kw == 3 && s->sw == 1 && s->dh == 1 && s->dw == 1)
            dw_plane_avx2_3x3(s, src, w, bias, dst);
        else
            dw_plane_avx2(s, src, w, bias, dst);
        return;
    }
#endif
    conv_dw_plane_f32_ref(s, src, w, bias, dst);
}

void conv_dw_shape_init(conv_dw_shape *s, const conv_geom *g)
{
    memset(s, 0, sizeof *s);
    s->kh = (size_t)g->kernel[1];
    s->kw = (size_t)g->kernel[2];
    s->sh = (size_t)g->stride[1];
    s->sw = (size_t)g->stride[2];
    s->dh = (size_t)g->dilation[1];
    s->dw = (size_t)g->dilation[2];
    s->oh = (size_t)g->out[1];
    s->ow = (size_t)g->out[2];
    s->ih = (size_t)g->in[1];
    s->iw = (size_t)g->in[2];
    s->pad_top = (size_t)g->pad_begin[1];
    s->pad_left = (size_t)g->pad_begin[2];
    s->rows = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1;
    size_t cols = (s->ow - 1) * s->sw + (s->kw - 1) * s->dw + 1;
    s->phase_w = (cols + s->sw - 1) / s->sw;
    s->row_len = s->phase_w * s->sw;
}

/* --- bias rows ----------------------------------------------------------- */

static void fill_rows_generic(float *y, size_t rows, size_t ld, size_t n, const float *values, const float *add)
{
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * ld, v = values ? values[r] : 0.0f;
        const float *ar = add ? add + r * ld : NULL;
        for (size_t i = 0; i < n; i++)
            yr[i] = ar ? v + ar[i] : v;
    }
}

#ifdef CONV_X86
AVX2 static void fill_rows_avx2(float *y, size_t rows, size_t ld, size_t n, const float *values, const float *add)
{
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * ld;
        __m256 v = values ? _mm256_broadcast_ss(values + r) : _mm256_setzero_ps();
        size_t i = 0;
        if (add) {
            const float *ar = add + r * ld;
            for (; i + 8 <= n; i += 8)
                _mm256_storeu_ps(yr + i, _mm256_add_ps(v, _mm256_loadu_ps(ar + i)));
            for (; i < n; i++)
                yr[i] = (values ? values[r] : 0.0f) + ar[i];
            continue;
        }
        for (; i + 32 <= n; i += 32) {
            _mm256_storeu_ps(yr + i, v);
            _mm256_storeu_ps(yr + i + 8, v);
            _mm256_storeu_ps(yr + i + 16, v);
            _mm256_storeu_ps(yr + i + 24, v);
        }
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(yr + i, v);
        if (i < n)
            store8(yr + i, v, n - i);
    }
}
#endif

void conv_fill_rows_f32(float *y, size_t rows, size_t ld, size_t n, const float *values, const float *add)
{
#ifdef CONV_X86
    if (use_avx2()) {
        fill_rows_avx2(y, rows, ld, n, values, add);
        return;
    }
#endif
    fill_rows_generic(y, rows, ld, n, values, add);
}

/* --- fused activations -------------------------------------------------------------- */

static float act_scalar(const conv_act *a, float x)
{
    switch (a->kind) {
    case CONV_ACT_NONE: return x;
    case CONV_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case CONV_ACT_LEAKY_RELU: return x >= 0.0f ? x : a->alpha * x;
    case CONV_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case CONV_ACT_TANH: return tanhf(x);
    case CONV_ACT_CLIP: return x < a->alpha ? a->alpha : x > a->beta ? a->beta : x;
    case CONV_ACT_HARD_SIGMOID: {
        float v = a->alpha * x + a->beta;
        return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
    }
    return x;
}

static void act_rows_generic(float *y, size_t rows, size_t ld, size_t n, const conv_act *a)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < n; i++)
            y[r * ld + i] = act_scalar(a, y[r * ld + i]);
}

#ifdef CONV_X86
/* The piecewise-linear activations; Sigmoid and Tanh stay scalar. */
AVX2 static void act_rows_avx2(float *y, size_t rows, size_t ld, size_t n, const conv_act *a)
{
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 va = _mm256_set1_ps(a->alpha), vb = _mm256_set1_ps(a->beta);
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * ld;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256 x = _mm256_loadu_ps(yr + i), v;
            switch (a->kind) {
            case CONV_ACT_RELU: v = _mm256_max_ps(x, zero); break;
            case CONV_ACT_LEAKY_RELU:
                v = _mm256_blendv_ps(_mm256_mul_ps(x, va), x, _mm256_cmp_ps(x, zero, _CMP_GE_OQ));
                break;
            case CONV_ACT_CLIP: v = _mm256_min_ps(_mm256_max_ps(x, va), vb); break;
            case CONV_ACT_HARD_SIGMOID: v = _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(va, x, vb), zero), one); break;
            default: v = x; break;
            }
            _mm256_storeu_ps(yr + i, v);
        }
        for (; i < n; i++)
            yr[i] = act_scalar(a, yr[i]);
    }
}
#endif

void conv_act_rows_f32(float *y, size_t rows, size_t ld, size_t n, const conv_act *act)
{
    if (act->kind == CONV_ACT_NONE)
        return;
#ifdef CONV_X86
    if (use_avx2() && act->kind != CONV_ACT_SIGMOID && act->kind != CONV_ACT_TANH) {
        act_rows_avx2(y, rows, ld, n, act);
        return;
    }
#endif
    act_rows_generic(y, rows, ld, n, act);
}

/* --- depthwise padding ------------------------------------------------------- */

/* dst[t] = src[t * 2] for t < n: one phase of a stride-2 split. */
static void copy_stride2_generic(float *dst, const float *src, size_t n)
{
    for (size_t t = 0; t < n; t++)
        dst[t] = src[2 * t];
}

#ifdef CONV_X86
AVX2 static void copy_stride2_avx2(float *dst, const float *src, size_t n)
{
    size_t t = 0;
    /* Reads src[2t .. 2t + 15]; the last of them must exist: 2t + 15 <= 2n - 2. */
    for (; t + 8 < n; t += 8) {
        __m256 a = _mm256_loadu_ps(src + 2 * t), b = _mm256_loadu_ps(src + 2 * t + 8);
        /* a0 a2 b0 b2 | a4 a6 b4 b6, then put the 64-bit pairs in order. */
        __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        _mm256_storeu_ps(dst + t, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e),
                                                                         _MM_SHUFFLE(3, 1, 2, 0))));
    }
    for (; t < n; t++)
        dst[t] = src[2 * t];
}
#endif

void conv_copy_strided_f32(float *dst, const float *src, size_t n, size_t stride)
{
    if (stride == 1) {
        memcpy(dst, src, n * sizeof *dst);
    } else if (stride == 2) {
#ifdef CONV_X86
        if (use_avx2()) {
            copy_stride2_avx2(dst, src, n);
            return;
        }
#endif
        copy_stride2_generic(dst, src, n);
    } else {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i * stride];
    }
}

void conv_pad_row_f32(const float *in, size_t iw, size_t pad_left, size_t sw, size_t phase_w, float fill,
                      float *dst)
{
    for (size_t q = 0; q < sw; q++) {
        /* Phase q holds padded columns t * sw + q; those in
         * [pad_left, pad_left + iw) come from the input. */
        float *dq = dst + q * phase_w;
        size_t lo = pad_left > q ? (pad_left - q + sw - 1) / sw : 0;
        size_t hi = pad_left + iw > q ? (pad_left + iw - 1 - q) / sw + 1 : 0;
        if (hi > phase_w)
            hi = phase_w;
        if (lo > hi)
            lo = hi;
        for (size_t t = 0; t < lo; t++)
            dq[t] = fill;
        conv_copy_strided_f32(dq + lo, in + (lo * sw + q - pad_left), hi - lo, sw);
        for (size_t t = hi; t < phase_w; t++)
            dq[t] = fill;
    }
}

void conv_dw_pad(const conv_dw_shape *s, const float *plane, float *buf)
{
    for (size_t r = 0; r < s->rows; r++) {
        float *d = buf + r * s->row_len;
        size_t ir = r - s->pad_top; /* wraps when above the input */
        if (r < s->pad_top || ir >= s->ih)
            memset(d, 0, s->row_len * sizeof *d);
        else
            conv_pad_row_f32(plane + ir * s->iw, s->iw, s->pad_left, s->sw, s->phase_w, 0.0f, d);
    }
    memset(buf + s->rows * s->row_len, 0, CONV_DW_SLACK * sizeof *buf);
}

/* --- elementwise rows for the separable pools ------------------------------------ */

static void vmax_generic(float *acc, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] = src[i] > acc[i] ? src[i] : acc[i];
}

static void vadd_generic(float *acc, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += src[i];
}

#ifdef CONV_X86
/* max_ps(s, a) is s > a ? s : a: a NaN in src is skipped, as in the
 * scalar loop. */
AVX2 static void vmax_avx2(float *acc, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(acc + i, _mm256_max_ps(_mm256_loadu_ps(src + i), _mm256_loadu_ps(acc + i)));
    for (; i < n; i++)
        acc[i] = src[i] > acc[i] ? src[i] : acc[i];
}

AVX2 static void vadd_avx2(float *acc, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(src + i), _mm256_loadu_ps(acc + i)));
    for (; i < n; i++)
        acc[i] += src[i];
}
#endif

void conv_vmax_f32(float *acc, const float *src, size_t n)
{
#ifdef CONV_X86
    if (use_avx2()) {
        vmax_avx2(acc, src, n);
        return;
    }
#endif
    vmax_generic(acc, src, n);
}

void conv_vadd_f32(float *acc, const float *src, size_t n)
{
#ifdef CONV_X86
    if (use_avx2()) {
        vadd_avx2(acc, src, n);
        return;
    }
#endif
    vadd_generic(acc, src, n);
}

/* --- 2x2 stride-2 pools ----------------------------------------------------------- */

static void pool2x2_generic(const float *x, size_t iw, float *y, size_t oh, size_t ow, bool is_max)
{
    for (size_t r = 0; r < oh; r++) {
        const float *a = x + 2 * r * iw, *b = a + iw;
        float *o = y + r * ow;
        for (size_t c = 0; c < ow; c++) {
            float p = a[2 * c], q = a[2 * c + 1], u = b[2 * c], v = b[2 * c + 1];
            if (is_max) {
                float m = q > p ? q : p;
                m = u > m ? u : m;
                o[c] = v > m ? v : m;
            } else {
                o[c] = ((p + q) + (u + v)) * 0.25f;
            }
        }
    }
}

#ifdef CONV_X86
AVX2 static void pool2x2_avx2(const float *x, size_t iw, float *y, size_t oh, size_t ow, bool is_max)
{
    const __m256 quarter = _mm256_set1_ps(0.25f);
    for (size_t r = 0; r < oh; r++) {
        const float *a = x + 2 * r * iw, *b = a + iw;
        float *o = y + r * ow;
        size_t c = 0;
        /* Reads a[2c .. 2c + 15] <= a[2 ow - 1], inside the row. */
        for (; c + 8 <= ow; c += 8) {
            __m256 a0 = _mm256_loadu_ps(a + 2 * c), a1 = _mm256_loadu_ps(a + 2 * c + 8);
            __m256 b0 = _mm256_loadu_ps(b + 2 * c), b1 = _mm256_loadu_ps(b + 2 * c + 8);
            __m256 v0 = is_max ? _mm256_max_ps(b0, a0) : _mm256_add_ps(a0, b0);
            __m256 v1 = is_max ? _mm256_max_ps(b1, a1) : _mm256_add_ps(a1, b1);
            /* Columns 2c, 2c + 2, ... and 2c + 1, 2c + 3, ... (pairs of
             * 64-bit lanes out of order, fixed by the permute). */
            __m256 even = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0));
            __m256 odd = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1));
            __m256 m = is_max ? _mm256_max_ps(odd, even) : _mm256_mul_ps(_mm256_add_ps(even, odd), quarter);
            _mm256_storeu_ps(o + c, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m),
                                                                            _MM_SHUFFLE(3, 1, 2, 0))));
        }
        for (; c < ow; c++) {
            float p = a[2 * c], q = a[2 * c + 1], u = b[2 * c], v = b[2 * c + 1];
            if (is_max) {
                float mm = q > p ? q : p;
                mm = u > mm ? u : mm;
                o[c] = v > mm ? v : mm;
            } else {
                o[c] = ((p + q) + (u + v)) * 0.25f;
            }
        }
    }
}
#endif

void conv_pool2x2_f32(const float *x, size_t iw, float *y, size_t oh, size_t ow, bool is_max)
{
#ifdef CONV_X86
    if (use_avx2()) {
        pool2x2_avx2(x, iw, y, oh, ow, is_max);
        return;
    }
#endif
    pool2x2_generic(x, iw, y, oh, ow, is_max);
}
