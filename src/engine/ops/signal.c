/* signal.c - signal processing operators of opset 17: HannWindow,
 * HammingWindow, BlackmanWindow, DFT, STFT, MelWeightMatrix.
 *
 * Transforms run in double: a radix-2 FFT for power-of-two lengths and
 * Bluestein's chirp-z algorithm (through a power-of-two FFT) for every
 * other length, so n_fft = 400 (Whisper) costs O(n log n), not O(n^2).
 * A plan (twiddles, chirp) is built once per node run from scratch. */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/ops/misc_ops.h"

static const eng_tensor *in_opt(const eng_kctx *k, uint32_t i)
{
    return i < k->n_in ? k->in[i] : NULL;
}

/* Reads a scalar (rank 0 or one element) integer input. */
static st_status int_scalar(const eng_kctx *k, const eng_tensor *t, const char *what, int64_t *out)
{
    if (!t || t->count != 1 || (t->dtype != ST_DT_INT32 && t->dtype != ST_DT_INT64))
        return eng_fail(k, ST_EINVAL, "%s must be an int32 or int64 scalar", what);
    *out = eng_int_at(t, 0);
    return ST_OK;
}

static bool is_float_dtype(st_dtype t)
{
    return t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64 || t == ST_DT_FLOAT16;
}

/* Stores v as element i of a numeric tensor. */
static void store_num(eng_tensor *t, size_t i, double v)
{
    switch (t->dtype) {
    case ST_DT_FLOAT32: ((float *)t->data)[i] = (float)v; break;
    case ST_DT_FLOAT64: ((double *)t->data)[i] = v; break;
    case ST_DT_FLOAT16: ((uint16_t *)t->data)[i] = st_float_to_half((float)v); break;
    case ST_DT_INT8: ((int8_t *)t->data)[i] = (int8_t)v; break;
    case ST_DT_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)(v < 0 ? 0 : v); break;
    case ST_DT_INT16: ((int16_t *)t->data)[i] = (int16_t)v; break;
    case ST_DT_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)(v < 0 ? 0 : v); break;
    case ST_DT_INT32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case ST_DT_INT64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    case ST_DT_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)(v < 0 ? 0 : v); break;
    case ST_DT_UINT64: ((uint64_t *)t->data)[i] = (uint64_t)(v < 0 ? 0 : v); break;
    default: break;
    }
}

/* output_datatype as a dtype we can store (numeric only). */
static st_status output_dtype(const eng_kctx *k, st_dtype *out)
{
    int64_t t = eng_attr_int(k->node, "output_datatype", ST_DT_FLOAT32);
    if (!st_dtype_is_valid((int)t) || t == ST_DT_STRING || t == ST_DT_BOOL || t == ST_DT_UNDEFINED)
        return eng_fail(k, ST_EUNSUPPORTED, "output_datatype %lld is not supported", (long long)t);
    *out = (st_dtype)t;
    return ST_OK;
}

/* --- windows ------------------------------------------------------------------------ */

/* A generalised cosine window: a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N),
 * N = size (periodic) or size - 1 (symmetric). */
typedef struct window_state {
    double a0, a1, a2;
} window_state;

static st_status window_check(eng_node *n, st_arena *arena, st_error *err, double a0, double a1, double a2)
{
    window_state *st = st_arena_alloc(arena, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->a0 = a0;
    st->a1 = a1;
    st->a2 = a2;
    n->state = st;
    return ST_OK;
}

st_status op_signal_hann_check(eng_node *n, st_arena *arena, st_error *err)
{
    return window_check(n, arena, err, 0.5, 0.5, 0);
}

st_status op_signal_hamming_check(eng_node *n, st_arena *arena, st_error *err)
{
    return window_check(n, arena, err, 25.0 / 46.0, 21.0 / 46.0, 0);
}

st_status op_signal_blackman_check(eng_node *n, st_arena *arena, st_error *err)
{
    return window_check(n, arena, err, 0.42, 0.5, 0.08);
}

st_status op_signal_window_infer(eng_kctx *k)
{
    int64_t size;
    st_status s = int_scalar(k, k->in[0], "size", &size);
    if (s != ST_OK)
        return s;
    if (size < 0)
        return eng_fail(k, ST_EINVAL, "size is %lld, must not be negative", (long long)size);
    st_dtype t;
    if ((s = output_dtype(k, &t)) != ST_OK)
        return s;
    eng_set_shape(k->out[0], t, &size, 1);
    return ST_OK;
}

st_status op_signal_window_run(eng_kctx *k)
{
    const window_state *st = k->node->state;
    eng_tensor *y = k->out[0];
    size_t size = y->count;
    bool periodic = eng_attr_int(k->node, "periodic", 1) != 0;
    double denom = periodic ? (double)size : (double)size - 1;
    if (denom <= 0)
        denom = 1;
    for (size_t i = 0; i < size; i++) {
        double ph = 2.0 * M_PI * (double)i / denom;
        store_num(y, i, st->a0 - st->a1 * cos(ph) + st->a2 * cos(2.0 * ph));
    }
    return ST_OK;
}

/* --- FFT ------------------------------------------------------------------------------- */

typedef struct cplx {
    double re, im;
} cplx;

static inline cplx c_mul(cplx a, cplx b)
{
    return (cplx){ a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re };
}

/* Transform of length n with sign -1 (forward) or +1 (inverse, unscaled). */
typedef struct fft_plan {
    size_t n;
    size_t m;           /* power-of-two FFT length used */
    double sign;
    cplx *twiddle;      /* m / 2 twiddles of the radix-2 FFT, sign -1 */
    bool bluestein;
    cplx *chirp;        /* n: exp(sign i pi k^2 / n) */
    cplx *chirp_fft;    /* m: FFT of the conjugate chirp, wrapped */
    cplx *work;         /* m */
} fft_plan;

static bool is_pow2(size_t n)
{
    return n && (n & (n - 1)) == 0;
}

/* In-place radix-2 FFT of length p->m; `inverse` conjugates the twiddles. */
static void fft_pow2(const fft_plan *p, cplx *a, bool inverse)
{
    size_t m = p->m;
    for (size_t i = 1, j = 0; i < m; i++) {
        size_t bit = m >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j) {
            cplx t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }
    for (size_t len = 2; len <= m; len <<= 1) {
        size_t half = len >> 1, step = m / len;
        for (size_t i = 0; i < m; i += len)
            for (size_t j = 0; j < half; j++) {
                cplx w = p->twiddle[j * step];
                if (inverse)
                    w.im = -w.im;
                cplx u = a[i + j], v = c_mul(a[i + j + half], w);
                a[i + j] = (cplx){ u.re + v.re, u.im + v.im };
                a[i + j + half] = (cplx){ u.re - v.re, u.im - v.im };
            }
    }
}

static st_status fft_plan_make(eng_kctx *k, size_t n, bool inverse, fft_plan *p)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->sign = inverse ? 1.0 : -1.0;
    p->bluestein = !is_pow2(n);
    size_t m = 1;
    size_t want = p->bluestein ? 2 * n - 1 : n;
    while (m < want) {
        if (m > ((size_t)1 << 40))
            return eng_fail(k, ST_EOVERFLOW, "transform length %zu is too large", n);
        m <<= 1;
    }
    p->m = m;
    p->twiddle = st_arena_alloc(k->scratch, (m / 2 + 1) * sizeof *p->twiddle, 64);
    p->work = st_arena_alloc(k->scratch, m * sizeof *p->work, 64);
    if (!p->twiddle || !p->work)
        return eng_fail(k, ST_ENOMEM, "out of scratch memory");
    for (size_t i = 0; i < m / 2; i++) {
        double ang = -2.0 * M_PI * (double)i / (double)m;
        p->twiddle[i] = (cplx){ cos(ang), sin(ang) };
    }
    if (!p->bluestein)
        return ST_OK;
    p->chirp = st_arena_alloc(k->scratch, n * sizeof *p->chirp, 64);
    p->chirp_fft = st_arena_calloc(k->scratch, m, sizeof *p->chirp_fft, 64);
    if (!p->chirp || !p->chirp_fft)
        return eng_fail(k, ST_ENOMEM, "out of scratch memory");
    /* i^2 mod 2n, kept exact by stepping (i+1)^2 = i^2 + 2i + 1, so the
     * angle stays small for long transforms. */
    size_t sq = 0;
    for (size_t i = 0; i < n; sq = (sq + 2 * i + 1) % (2 * n), i++) {
        double ang = p->sign * M_PI * (double)sq / (double)n;
        p->chirp[i] = (cplx){ cos(ang), sin(ang) };
    }
    p->chirp_fft[0] = (cplx){ p->chirp[0].re, -p->chirp[0].im };
    for (size_t i = 1; i < n; i++) {
        cplx c = { p->chirp[i].re, -p->chirp[i].im };
        p->chirp_fft[i] = c;
        p->chirp_fft[m - i] = c;
    }
    fft_pow2(p, p->chirp_fft, false);
    return ST_OK;
}

/* x (length n) -> its DFT in place, unscaled. */
static void fft_run(const fft_plan *p, cplx *x)
{
    if (!p->bluestein) {
        fft_pow2(p, x, p->sign > 0);
        return;
    }
    size_t n = p->n, m = p->m;
    cplx *a = p->work;
    for (size_t i = 0; i < n; i++)
        a[i] = c_mul(x[i], p->chirp[i]);
    for (size_t i = n; i < m; i++)
        a[i] = (cplx){ 0, 0 };
    fft_pow2(p, a, false);
    for (size_t i = 0; i < m; i++)
        a[i] = c_mul(a[i], p->chirp_fft[i]);
    fft_pow2(p, a, true);
    double inv_m = 1.0 / (double)m;
    for (size_t i = 0; i < n; i++) {
        cplx v = { a[i].re * inv_m, a[i].im * inv_m };
        x[i] = c_mul(v, p->chirp[i]);
    }
}

/* --- DFT ------------------------------------------------------------------------------------ */

st_status op_signal_dft_check(eng_node *n, st_arena *arena, st_error *err)
{
    (void)arena;
    if (eng_attr_int(n, "inverse", 0) && eng_attr_int(n, "onesided", 0))
        return st_fail(err, ST_EUNSUPPORTED, "inverse with onesided is not supported");
    return ST_OK;
}

typedef struct dft_geo {
    int axis;
    size_t outer, len_in, inner, n, n_out;
    bool is_complex;
} dft_geo;

static st_status dft_geometry(const eng_kctx *k, dft_geo *g)
{
    const eng_tensor *x = k->in[0];
    if (!x || !is_float_dtype(x->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "input must be float32, float64 or float16");
    if (x->rank < 2 || (x->shape[x->rank - 1] != 1 && x->shape[x->rank - 1] != 2))
        return eng_fail(k, ST_ESHAPE, "input must be [batch, ..., 1 or 2] (real or complex)");
    int64_t axis = eng_attr_int(k->node, "axis", 1);
    if (axis < 0)
        axis += (int64_t)x->rank;
    if (axis < 0 || axis > (int64_t)x->rank - 2)
        return eng_fail(k, ST_EINVAL, "axis %lld is not a signal dimension of rank %u", (long long)axis, x->rank);
    g->axis = (int)axis;
    g->is_complex = x->shape[x->rank - 1] == 2;
    g->outer = 1;
    g->inner = 1;
    for (int d = 0; d < g->axis; d++)
        g->outer *= (size_t)x->shape[d];
    for (uint32_t d = (uint32_t)g->axis + 1; d + 1 < x->rank; d++)
        g->inner *= (size_t)x->shape[d];
    g->len_in = (size_t)x->shape[g->axis];
    g->n = g->len_in;
    const eng_tensor *len = in_opt(k, 1);
    if (len) {
        int64_t v = 0;
        st_status s = int_scalar(k, len, "dft_length", &v);
        if (s != ST_OK)
            return s;
        if (v <= 0 || v > ((int64_t)1 << 32))
            return eng_fail(k, ST_EINVAL, "dft_length is %lld, must be in [1, 2^32]", (long long)v);
        g->n = (size_t)v;
    }
    if (g->n == 0)
        return eng_fail(k, ST_ESHAPE, "the signal axis is empty");
    g->n_out = eng_attr_int(k->node, "onesided", 0) ? g->n / 2 + 1 : g->n;
    return ST_OK;
}

st_status op_signal_dft_infer(eng_kctx *k)
{
    dft_geo g;
    st_status s = dft_geometry(k, &g);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    int64_t shape[ENG_MAX_RANK];
    memcpy(shape, x->shape, sizeof shape);
    shape[g.axis] = (int64_t)g.n_out;
    shape[x->rank - 1] = 2;
    eng_set_shape(k->out[0], x->dtype, shape, x->rank);
    return ST_OK;
}

st_status op_signal_dft_run(eng_kctx *k)
{
    dft_geo g;
    st_status s = dft_geometry(k, &g);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    eng_tensor *y = k->out[0];
    if (y->count == 0)
        return ST_OK;
    bool inverse = eng_attr_int(k->node, "inverse", 0) != 0;
    fft_plan plan;
    if ((s = fft_plan_make(k, g.n, inverse, &plan)) != ST_OK)
        return s;
    cplx *line = st_arena_alloc(k->scratch, g.n * sizeof *line, 64);
    if (!line)
        return eng_fail(k, ST_ENOMEM, "out of scratch memory");
    size_t comps = g.is_complex ? 2 : 1, copy = g.len_in < g.n ? g.len_in : g.n;
    double scale = inverse ? 1.0 / (double)g.n : 1.0;
    for (size_t o = 0; o < g.outer; o++)
        for (size_t i = 0; i < g.inner; i++) {
            for (size_t j = 0; j < g.n; j++) {
                if (j >= copy) {
                    line[j] = (cplx){ 0, 0 };
                    continue;
                }
                size_t at = ((o * g.len_in + j) * g.inner + i) * comps;
                line[j] = (cplx){ eng_num_at(x, at), g.is_complex ? eng_num_at(x, at + 1) : 0 };
            }
            fft_run(&plan, line);
            for (size_t j = 0; j < g.n_out; j++) {
                size_t at = ((o * g.n_out + j) * g.inner + i) * 2;
                store_num(y, at, line[j].re * scale);
                store_num(y, at + 1, line[j].im * scale);
            }
        }
    return ST_OK;
}

/* --- STFT ------------------------------------------------------------------------------------- */

st_status op_signal_stft_check(eng_node *n, st_arena *arena, st_error *err)
{
    (void)arena;
    if (n->n_inputs < 2)
        return st_fail(err, ST_ECORRUPT, "takes signal and frame_step, has %u inputs", n->n_inputs);
    return ST_OK;
}

typedef struct stft_geo {
    size_t batch, length, frame_length, step, frames, bins;
    bool is_complex;
} stft_geo;

static st_status stft_geometry(const eng_kctx *k, stft_geo *g)
{
    const eng_tensor *x = k->in[0], *window = in_opt(k, 2), *flen = in_opt(k, 3);
    if (!x || !is_float_dtype(x->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "signal must be float32, float64 or float16");
    if (x->rank != 3 || (x->shape[2] != 1 && x->shape[2] != 2))
        return eng_fail(k, ST_ESHAPE, "signal must be [batch, length, 1 or 2]");
    g->batch = (size_t)x->shape[0];
    g->length = (size_t)x->shape[1];
    g->is_complex = x->shape[2] == 2;
    int64_t step = 0;
    st_status s = int_scalar(k, k->in[1], "frame_step", &step);
    if (s != ST_OK)
        return s;
    if (step <= 0)
        return eng_fail(k, ST_EINVAL, "frame_step is %lld, must be positive", (long long)step);
    g->step = (size_t)step;
    int64_t fl = -1;
    if (flen && (s = int_scalar(k, flen, "frame_length", &fl)) != ST_OK)
        return s;
    if (window) {
        if (window->rank != 1 || window->dtype != x->dtype)
            return eng_fail(k, ST_ESHAPE, "window must be 1-D of the signal's type");
        if (fl >= 0 && fl != window->shape[0])
            return eng_fail(k, ST_ESHAPE, "frame_length %lld differs from the window length %lld", (long long)fl,
                            (long long)window->shape[0]);
        fl = window->shape[0];
    }
    if (fl <= 0)
        return eng_fail(k, ST_EINVAL, "a positive frame_length or a window is required");
    if ((size_t)fl > g->length)
        return eng_fail(k, ST_ESHAPE, "frame_length %lld exceeds the signal length %zu", (long long)fl, g->length);
    g->frame_length = (size_t)fl;
    g->frames = 1 + (g->length - g->frame_length) / g->step;
    bool onesided = eng_attr_int(k->node, "onesided", 1) != 0;
    if (onesided && g->is_complex)
        return eng_fail(k, ST_EINVAL, "onesided needs a real signal");
    g->bins = onesided ? g->frame_length / 2 + 1 : g->frame_length;
    return ST_OK;
}

st_status op_signal_stft_infer(eng_kctx *k)
{
    stft_geo g;
    st_status s = stft_geometry(k, &g);
    if (s != ST_OK)
        return s;
    int64_t shape[4] = { (int64_t)g.batch, (int64_t)g.frames, (int64_t)g.bins, 2 };
    eng_set_shape(k->out[0], k->in[0]->dtype, shape, 4);
    return ST_OK;
}

st_status op_signal_stft_run(eng_kctx *k)
{
    stft_geo g;
    st_status s = stft_geometry(k, &g);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0], *window = in_opt(k, 2);
    eng_tensor *y = k->out[0];
    if (y->count == 0)
        return ST_OK;
    fft_plan plan;
    if ((s = fft_plan_make(k, g.frame_length, false, &plan)) != ST_OK)
        return s;
    cplx *line = st_arena_alloc(k->scratch, g.frame_length * sizeof *line, 64);
    double *win = st_arena_alloc(k->scratch, g.frame_length * sizeof *win, 64);
    if (!line || !win)
        return eng_fail(k, ST_ENOMEM, "out of scratch memory");
    for (size_t i = 0; i < g.frame_length; i++)
        win[i] = window ? eng_num_at(window, i) : 1.0;
    size_t comps = g.is_complex ? 2 : 1;
    for (size_t b = 0; b < g.batch; b++)
        for (size_t f = 0; f < g.frames; f++) {
            for (size_t i = 0; i < g.frame_length; i++) {
                size_t at = (b * g.length + f * g.step + i) * comps;
                line[i] = (cplx){ eng_num_at(x, at) * win[i], g.is_complex ? eng_num_at(x, at + 1) * win[i] : 0 };
            }
            fft_run(&plan, line);
            for (size_t j = 0; j < g.bins; j++) {
                size_t at = ((b * g.frames + f) * g.bins + j) * 2;
                store_num(y, at, line[j].re);
                store_num(y, at + 1, line[j].im);
            }
        }
    return ST_OK;
}

/* --- MelWeightMatrix ----------------------------------------------------------------------------- */

st_status op_signal_mel_check(eng_node *n, st_arena *arena, st_error *err)
{
    (void)arena;
    if (n->n_inputs < 5)
        return st_fail(err, ST_ECORRUPT, "takes 5 inputs, has %u", n->n_inputs);
    return ST_OK;
}

typedef struct mel_args {
    int64_t bins, dft_length, sample_rate;
    double lower_hz, upper_hz;
} mel_args;

static st_status mel_read(const eng_kctx *k, mel_args *a)
{
    st_status s = int_scalar(k, k->in[0], "num_mel_bins", &a->bins);
    if (s == ST_OK)
        s = int_scalar(k, k->in[1], "dft_length", &a->dft_length);
    if (s == ST_OK)
        s = int_scalar(k, k->in[2], "sample_rate", &a->sample_rate);
    if (s != ST_OK)
        return s;
    const eng_tensor *lo = k->in[3], *hi = k->in[4];
    if (!lo || !hi || lo->count != 1 || hi->count != 1 || !is_float_dtype(lo->dtype) || !is_float_dtype(hi->dtype))
        return eng_fail(k, ST_EINVAL, "lower_edge_hertz and upper_edge_hertz must be float scalars");
    a->lower_hz = eng_num_at(lo, 0);
    a->upper_hz = eng_num_at(hi, 0);
    if (a->bins <= 0 || a->dft_length <= 0 || a->sample_rate <= 0 || a->bins > ((int64_t)1 << 24) ||
        a->dft_length > ((int64_t)1 << 32))
        return eng_fail(k, ST_EINVAL, "num_mel_bins, dft_length and sample_rate must be positive (and sane)");
    if (!(a->lower_hz >= 0 && a->lower_hz <= a->upper_hz))
        return eng_fail(k, ST_EINVAL, "need 0 <= lower_edge_hertz <= upper_edge_hertz");
    return ST_OK;
}

st_status op_signal_mel_infer(eng_kctx *k)
{
    mel_args a;
    st_status s = mel_read(k, &a);
    if (s != ST_OK)
        return s;
    st_dtype t;
    if ((s = output_dtype(k, &t)) != ST_OK)
        return s;
    int64_t shape[2] = { a.dft_length / 2 + 1, a.bins };
    eng_set_shape(k->out[0], t, shape, 2);
    return ST_OK;
}

/* Triangles between mel-spaced points; the points are spread over
 * num_mel_bins + 2 steps and snapped to spectrogram bins as the ONNX
 * reference does (floor((dft_length + 1) * hz / sample_rate)). */
st_status op_signal_mel_run(eng_kctx *k)
{
    mel_args a;
    st_status s = mel_read(k, &a);
    if (s != ST_OK)
        return s;
    eng_tensor *y = k->out[0];
    size_t n_spec = (size_t)(a.dft_length / 2 + 1), n_mel = (size_t)a.bins;
    int64_t *points = st_arena_alloc(k->scratch, (n_mel + 2) * sizeof *points, 64);
    if (!points)
        return eng_fail(k, ST_ENOMEM, "out of scratch memory");
    float low_mel = 2595.0f * log10f(1.0f + (float)a.lower_hz / 700.0f);
    float high_mel = 2595.0f * log10f(1.0f + (float)a.upper_hz / 700.0f);
    float mel_step = (high_mel - low_mel) / (float)(n_mel + 2);
    for (size_t i = 0; i < n_mel + 2; i++) {
        double mel = (double)i * (double)mel_step + (double)low_mel;
        double hz = 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
        points[i] = (int64_t)floor((double)(a.dft_length + 1) * hz / (double)a.sample_rate);
    }
    for (size_t i = 0; i < y->count; i++)
        store_num(y, i, 0);
    for (size_t m = 0; m < n_mel; m++) {
        int64_t left = points[m], center = points[m + 1], right = points[m + 2];
        if (center - left == 0) {
            if (center >= 0 && (size_t)center < n_spec)
                store_num(y, (size_t)center * n_mel + m, 1.0);
        } else {
            for (int64_t j = left; j <= center; j++)
                if (j >= 0 && (size_t)j < n_spec)
                    store_num(y, (size_t)j * n_mel + m, (double)(j - left) / (double)(center - left));
        }
        if (right - center > 0)
            for (int64_t j = center; j < right; j++)
                if (j >= 0 && (size_t)j < n_spec)
                    store_num(y, (size_t)j * n_mel + m, (double)(right - j) / (double)(right - center));
    }
    return ST_OK;
}
