/* wino.c - 3x3 stride-1 convolution by Winograd's F(2x2, 3x3): each 2x2
 * block of outputs comes from a 4x4 input patch with 16 multiplies per
 * (input, output) channel pair instead of 36.  Three stages per image:
 * the input transform V = B^T d B of every patch, 16 products
 * M[xi] = U[xi] V[xi] (U = G g G^T, made at load) on the direct-conv tile
 * (eng_sconv, one tap), and the output transform Y = A^T M A with bias and
 * ReLU.  The transforms' coefficients are 0, +-1 and 1/2 (exact in
 * float), so results match the direct convolution to rounding.  AVX-512
 * transforms; the portable version is the scalar reference. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "base/cpu.h"
#include "engine/kernels/kernels.h"

enum { MR = ENG_SCONV_MR };

/* The image is done a band of tile rows at a time, sized so that its V
 * and M (16 floats per tile and channel each) stay in L2 between the
 * stages: about 512 KiB, and at most two product chunks (96 tiles). */
enum { BAND_BUDGET_FLOATS = 1 << 17, BAND_MAX_TILES = 96 };

/* Tiles, bands and the buffers the stages share. */
typedef struct wino_geom {
    size_t th, tw;         /* tile rows and columns of the image */
    size_t band_rows;      /* tile rows per band */
    size_t band_tiles;     /* tiles of a full band */
    size_t vs, ms;         /* floats from one V[xi] / M[xi] to the next:
                              a cache line more than needed, so that the
                              16 streams of a transform do not all fall
                              in the same L1 set */
    size_t u_floats;       /* one packed U[xi] */
    float *v, *m;          /* V [16][c_in][band_tiles], M [16][c_out][..] */
} wino_geom;

static size_t round16(size_t x)
{
    return (x + 15) & ~(size_t)15;
}

/* Sizes, and with scratch the buffers carved out of it; false on
 * overflow. */
static bool wino_geom_of(size_t c_in, size_t c_out, size_t oh, size_t ow, float *scratch, wino_geom *g)
{
    g->th = (oh + 1) / 2;
    g->tw = (ow + 1) / 2;
    g->u_floats = eng_sconv_pack_floats(c_out, 1, c_in);
    size_t chans, per_tile;
    if (g->u_floats == 0 || g->tw == 0 || __builtin_add_overflow(c_in, c_out, &chans) ||
        __builtin_mul_overflow(chans, 16, &per_tile))
        return false;
    size_t tiles = BAND_BUDGET_FLOATS / per_tile;
    if (tiles > BAND_MAX_TILES)
        tiles = BAND_MAX_TILES;
    g->band_rows = tiles / g->tw ? tiles / g->tw : 1;
    if (g->band_rows > g->th)
        g->band_rows = g->th;
    g->band_tiles = g->band_rows * g->tw; /* <= max(96, tw): no overflow */
    size_t v, m;
    if (__builtin_mul_overflow(c_in, g->band_tiles, &v) || __builtin_mul_overflow(c_out, g->band_tiles, &m) ||
        v > SIZE_MAX / 64 || m > SIZE_MAX / 64)
        return false;
    g->vs = round16(v) + 16;
    g->ms = round16(m) + 16;
    g->v = scratch;
    g->m = scratch ? scratch + 16 * g->vs : NULL;
    return true;
}

size_t eng_wino_scratch_floats(size_t c_in, size_t c_out, size_t oh, size_t ow)
{
    wino_geom g;
    if (!wino_geom_of(c_in, c_out, oh, ow, NULL, &g) || g.vs > SIZE_MAX / 64 - g.ms)
        return 0;
    return 16 * (g.vs + g.ms);
}

size_t eng_wino_pack_floats(size_t c_out, size_t c_in)
{
    size_t one = eng_sconv_pack_floats(c_out, 1, c_in), all;
    return one && !__builtin_mul_overflow(one, 16, &all) ? all : 0;
}

void eng_wino_pack(const float *w, size_t c_out, size_t c_in, float *dst, float *tmp)
{
    /* tmp: c_out * c_in floats, one U[xi] unpacked at a time. */
    static const float gm[4][3] = { { 1, 0, 0 }, { 0.5f, 0.5f, 0.5f }, { 0.5f, -0.5f, 0.5f }, { 0, 0, 1 } };
    size_t one = eng_sconv_pack_floats(c_out, 1, c_in);
    for (size_t xi = 0; xi < 16; xi++) {
        size_t i = xi / 4, j = xi % 4;
        for (size_t m = 0; m < c_out; m++)
            for (size_t c = 0; c < c_in; c++) {
                const float *g = w + (m * c_in + c) * 9;
                float u = 0.0f;
                for (size_t r = 0; r < 3; r++)
                    for (size_t s = 0; s < 3; s++)
                        u += gm[i][r] * g[r * 3 + s] * gm[j][s];
                tmp[m * c_in + c] = u;
            }
        eng_sconv_pack(tmp, c_out, 1, c_in, dst + xi * one);
    }
}

/* The product stage of a band of `tiles` tiles: M[xi] (c_out x tiles) =
 * U[xi] V[xi] on sconv tiles (one tap, positions = tiles). */
static void wino_products(const eng_wino_conv *p, const wino_geom *g, size_t tiles, bool is_ref)
{
    static const size_t tap0 = 0;
    size_t unit = eng_sconv_max_np() / 3, units = (tiles + unit - 1) / unit, chunks = (units + 2) / 3;
    size_t base = units / chunks, extra = units % chunks;
    for (size_t xi = 0; xi < 16; xi++)
        for (size_t ch = 0; ch < chunks; ch++) {
            size_t p0 = (ch * base + (ch < extra ? ch : extra)) * unit, np = (base + (ch < extra)) * unit;
            if (np > tiles - p0)
                np = tiles - p0;
            eng_sconv_tile t = { .x = g->v + xi * g->vs, .x_cs = g->band_tiles, .c_in = p->c_in, .taps = &tap0,
                                 .n_taps = 1, .w = p->u + xi * g->u_floats, .y = g->m + xi * g->ms,
                                 .ldy = g->band_tiles, .rows = p->c_out, .p0 = p0, .np = np, .wp = tiles,
                                 .ow = tiles };
            if (is_ref)
                eng_sconv_tile_ref(&t);
            else
                eng_sconv_tile_run(&t);
        }
}

/* Input x(c, iy, ix), 0 in the padding. */
static float at_ref(const eng_wino_conv *p, size_t c, ptrdiff_t iy, ptrdiff_t ix)
{
    if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)p->h || ix >= (ptrdiff_t)p->w)
        return 0.0f;
    return p->x[(c * p->h + (size_t)iy) * p->w + (size_t)ix];
}

/* V = B^T d B of every patch of tile rows [ty0, ty1), channel c. */
static void input_ref(const eng_wino_conv *p, const wino_geom *g, size_t c, size_t ty0, size_t ty1)
{
    for (size_t ty = ty0; ty < ty1; ty++)
        for (size_t tx = 0; tx < g->tw; tx++) {
            float d[4][4], a[4][4], v[16];
            for (size_t r = 0; r < 4; r++)
                for (size_t k = 0; k < 4; k++)
                    d[r][k] = at_ref(p, c, (ptrdiff_t)(2 * ty + r) - (ptrdiff_t)p->pad_top,
                                     (ptrdiff_t)(2 * tx + k) - (ptrdiff_t)p->pad_left);
            for (size_t r = 0; r < 4; r++) {
                a[r][0] = d[r][0] - d[r][2];
                a[r][1] = d[r][1] + d[r][2];
                a[r][2] = d[r][2] - d[r][1];
                a[r][3] = d[r][1] - d[r][3];
            }
            for (size_t j = 0; j < 4; j++) {
                v[j] = a[0][j] - a[2][j];
                v[4 + j] = a[1][j] + a[2][j];
                v[8 + j] = a[2][j] - a[1][j];
                v[12 + j] = a[1][j] - a[3][j];
            }
            for (size_t xi = 0; xi < 16; xi++)
                g->v[xi * g->vs + c * g->band_tiles + (ty - ty0) * g->tw + tx] = v[xi];
        }
}

/* Y = A^T M A of tile rows [ty0, ty1), plus bias, ReLU, into y. */
static void output_ref(const eng_wino_conv *p, const wino_geom *g, size_t ty0, size_t ty1)
{
    for (size_t m = 0; m < p->c_out; m++)
        for (size_t ty = ty0; ty < ty1; ty++)
            for (size_t tx = 0; tx < g->tw; tx++) {
                float mm[16], s[2][4], y[2][2];
                for (size_t xi = 0; xi < 16; xi++)
                    mm[xi] = g->m[xi * g->ms + m * g->band_tiles + (ty - ty0) * g->tw + tx];
                for (size_t j = 0; j < 4; j++) {
                    s[0][j] = mm[j] + mm[4 + j] + mm[8 + j];
                    s[1][j] = mm[4 + j] - mm[8 + j] - mm[12 + j];
                }
                for (size_t a = 0; a < 2; a++) {
                    y[a][0] = s[a][0] + s[a][1] + s[a][2];
                    y[a][1] = s[a][1] - s[a][2] - s[a][3];
                }
                for (size_t a = 0; a < 2; a++)
                    for (size_t b = 0; b < 2; b++) {
                        size_t oy = 2 * ty + a, ox = 2 * tx + b;
                        if (oy >= p->oh || ox >= p->ow)
                            continue;
                        float val = y[a][b] + (p->bias ? p->bias[m] : 0.0f);
                        if (p->relu && !(val > 0.0f))
                            val = 0.0f;
                        p->y[(m * p->oh + oy) * p->ow + ox] = val;
                    }
            }
}

typedef struct wino_stages {
    void (*input)(const eng_wino_conv *p, const wino_geom *g, size_t c, size_t ty0, size_t ty1);
    void (*output)(const eng_wino_conv *p, const wino_geom *g, size_t ty0, size_t ty1);
    bool is_ref;
} wino_stages;

static void wino_bands(const eng_wino_conv *p, const wino_stages *st)
{
    wino_geom g;
    if (!wino_geom_of(p->c_in, p->c_out, p->oh, p->ow, p->scratch, &g))
        return;
    for (size_t ty0 = 0; ty0 < g.th; ty0 += g.band_rows) {
        size_t ty1 = ty0 + g.band_rows < g.th ? ty0 + g.band_rows : g.th;
        for (size_t c = 0; c < p->c_in; c++)
            st->input(p, &g, c, ty0, ty1);
        wino_products(p, &g, (ty1 - ty0) * g.tw, st->is_ref);
        st->output(p, &g, ty0, ty1);
    }
}

void eng_wino_run_ref(const eng_wino_conv *p)
{
    static const wino_stages ref = { input_ref, output_ref, true };
    wino_bands(p, &ref);
}

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#include "engine/kernels/cols512.h"

#define T512 __attribute__((target("avx512f,avx2,fma")))

/* The row stage of one patch row for 16 tiles: columns 2t + k - pad_left
 * of input row iy (zeros outside), its even and odd columns split out with
 * permutes, combined as B^T does. */
static inline __attribute__((always_inline)) T512 void row512(const eng_wino_conv *p, const float *plane, ptrdiff_t iy, ptrdiff_t col, __m512 a[4])
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    if (iy < 0 || iy >= (ptrdiff_t)p->h) {
        a[0] = a[1] = a[2] = a[3] = _mm512_setzero_ps();
        return;
    }
    const float *row = plane + (size_t)iy * p->w;
    __m512 x0 = eng_cols16(row, col, p->w), x1 = eng_cols16(row, col + 16, p->w);
    __m512 x2 = eng_cols16(row, col + 2, p->w), x3 = eng_cols16(row, col + 18, p->w);
    __m512 e0 = _mm512_permutex2var_ps(x0, ev, x1), o0 = _mm512_permutex2var_ps(x0, od, x1);
    __m512 e1 = _mm512_permutex2var_ps(x2, ev, x3), o1 = _mm512_permutex2var_ps(x2, od, x3);
    a[0] = _mm512_sub_ps(e0, e1);
    a[1] = _mm512_add_ps(o0, e1);
    a[2] = _mm512_sub_ps(e1, o0);
    a[3] = _mm512_sub_ps(o0, o1);
}

/* V = B^T d B for channel c, 16 tiles of a tile row at a time; patch rows
 * 2 and 3 of a tile row are rows 0 and 1 of the next, so each input row
 * goes through the row stage once. */
static T512 void input512(const eng_wino_conv *p, const wino_geom *g, size_t c, size_t ty0, size_t ty1)
{
    const float *plane = p->x + c * p->h * p->w;
    const size_t stride = g->vs;
    for (size_t t0 = 0; t0 < g->tw; t0 += 16) {
        __mmask16 k = eng_lanes16(g->tw - t0);
        ptrdiff_t col = (ptrdiff_t)(2 * t0) - (ptrdiff_t)p->pad_left;
        __m512 a[4][4];
        ptrdiff_t iy0 = (ptrdiff_t)(2 * ty0) - (ptrdiff_t)p->pad_top;
        row512(p, plane, iy0, col, a[0]);
        row512(p, plane, iy0 + 1, col, a[1]);
        for (size_t ty = ty0; ty < ty1; ty++) {
            ptrdiff_t iy = (ptrdiff_t)(2 * ty) - (ptrdiff_t)p->pad_top;
            row512(p, plane, iy + 2, col, a[2]);
            row512(p, plane, iy + 3, col, a[3]);
            float *v = g->v + c * g->band_tiles + (ty - ty0) * g->tw + t0;
            for (int j = 0; j < 4; j++) {
                _mm512_mask_storeu_ps(v + (size_t)j * stride, k, _mm512_sub_ps(a[0][j], a[2][j]));
                _mm512_mask_storeu_ps(v + (size_t)(4 + j) * stride, k, _mm512_add_ps(a[1][j], a[2][j]));
                _mm512_mask_storeu_ps(v + (size_t)(8 + j) * stride, k, _mm512_sub_ps(a[2][j], a[1][j]));
                _mm512_mask_storeu_ps(v + (size_t)(12 + j) * stride, k, _mm512_sub_ps(a[1][j], a[3][j]));
            }
            for (int j = 0; j < 4; j++) {
                a[0][j] = a[2][j];
                a[1][j] = a[3][j];
            }
        }
    }
}

static T512 void output512(const eng_wino_conv *p, const wino_geom *g, size_t ty0, size_t ty1)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const size_t stride = g->ms;
    const __m512 zero = _mm512_setzero_ps();
    for (size_t m = 0; m < p->c_out; m++) {
        const __m512 bias = _mm512_set1_ps(p->bias ? p->bias[m] : 0.0f);
        for (size_t ty = ty0; ty < ty1; ty++)
            for (size_t t0 = 0; t0 < g->tw; t0 += 16) {
                __mmask16 k = eng_lanes16(g->tw - t0);
                const float *src = g->m + m * g->band_tiles + (ty - ty0) * g->tw + t0;
                __m512 s[2][4];
                for (int j = 0; j < 4; j++) {
                    __m512 m0 = _mm512_maskz_loadu_ps(k, src + (size_t)j * stride);
                    __m512 m1 = _mm512_maskz_loadu_ps(k, src + (size_t)(4 + j) * stride);
                    __m512 m2 = _mm512_maskz_loadu_ps(k, src + (size_t)(8 + j) * stride);
                    __m512 m3 = _mm512_maskz_loadu_ps(k, src + (size_t)(12 + j) * stride);
                    s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                    s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                }
                for (size_t a = 0; a < 2; a++) {
                    size_t oy = 2 * ty + a;
                    if (oy >= p->oh)
                        break;
                    __m512 y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[a][0], s[a][1]), s[a][2]), bias);
                    __m512 y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[a][1], s[a][2]), s[a][3]), bias);
                    if (p->relu) {
                        y0 = _mm512_max_ps(y0, zero);
                        y1 = _mm512_max_ps(y1, zero);
                    }
                    float *dst = p->y + (m * p->oh + oy) * p->ow + 2 * t0;
                    size_t cols = p->ow - 2 * t0; /* > 0: t0 < tw */
                    _mm512_mask_storeu_ps(dst, eng_lanes16(cols), _mm512_permutex2var_ps(y0, lo, y1));
                    if (cols > 16)
                        _mm512_mask_storeu_ps(dst + 16, eng_lanes16(cols - 16), _mm512_permutex2var_ps(y0, hi, y1));
                }
            }
    }
}

static void wino512(const eng_wino_conv *p)
{
    static const wino_stages fast = { input512, output512, false };
    wino_bands(p, &fast);
}

#endif

static void (*best_run)(const eng_wino_conv *p) = eng_wino_run_ref;
static bool is_fast;
static pthread_once_t best_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (st_cpu_features()->has_avx512f) {
        best_run = wino512;
        is_fast = true;
    }
#endif
}

bool eng_wino_is_fast(void)
{
    pthread_once(&best_once, choose);
    return is_fast;
}

void eng_wino_run(const eng_wino_conv *p)
{
    pthread_once(&best_once, choose);
    best_run(p);
}
