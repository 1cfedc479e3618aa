/* norm_simd.h - norm.c's float32 vector kernels, as a template that norm.c
 * includes twice: NK_LANES 4 (16-byte vectors, any target) and NK_LANES 8
 * under the AVX2+FMA target attribute.  Two widths because GCC lowers
 * 32-byte vector comparisons to scalar code when AVX is off.
 *
 * The includer defines NK_LANES, NK_NAME(x) (appends the variant's suffix)
 * and NK_TARGET, plus the job structs (sm_job, ln_job, chan_job, stats_job,
 * bc_rows).  Defines NK_NAME(sm_rows), NK_NAME(ln_rows), NK_NAME(chan_rows),
 * NK_NAME(stats_rows) (rows_fn), NK_NAME(prelu_f32) and NK_NAME(clip_f32).
 * No include guard on purpose.
 *
 * Vectors never cross a function boundary by value (that would depend on
 * the ABI of the variant): helpers are always_inline and take pointers. */

typedef float NK_NAME(nk_vf) __attribute__((vector_size(NK_LANES * 4)));
typedef int32_t NK_NAME(nk_vi) __attribute__((vector_size(NK_LANES * 4)));
typedef uint32_t NK_NAME(nk_vu) __attribute__((vector_size(NK_LANES * 4)));
#define vf NK_NAME(nk_vf)
#define vi NK_NAME(nk_vi)
#define vu NK_NAME(nk_vu)
#define v_load NK_NAME(v_load)
#define v_store NK_NAME(v_store)
#define v_splat NK_NAME(v_splat)
#define v_select NK_NAME(v_select)
#define v_hsum NK_NAME(v_hsum)
#define v_exp NK_NAME(v_exp)
#define row_max NK_NAME(row_max)
#define softmax_row NK_NAME(softmax_row)
#define row_stats NK_NAME(row_stats)
#define norm_apply NK_NAME(norm_apply)
#define layernorm_apply NK_NAME(layernorm_apply)

NORM_INLINE void v_load(vf *v, const float *p)
{
    memcpy(v, p, sizeof *v);
}

NORM_INLINE void v_store(float *p, const vf *v)
{
    memcpy(p, v, sizeof *v);
}

NORM_INLINE void v_splat(vf *v, float x)
{
    vf zero = { 0 };
    *v = zero + x;
}

/* *v = mask ? a : b, lane by lane (mask lanes are all ones or zero). */
NORM_INLINE void v_select(vf *v, const vi *mask, const vf *a, const vf *b)
{
    *v = (vf)(((vi)*a & *mask) | ((vi)*b & ~*mask));
}

NORM_INLINE float v_hsum(const vf *v)
{
    float s = 0;
    for (int j = 0; j < NK_LANES; j++)
        s += (*v)[j];
    return s;
}

/* exp per lane: Cephes' expf (range reduction by ln 2, degree-6
 * polynomial, exponent built in the bits), within 2 ulp of expf.  Inputs
 * below -87 give 0 (expf would give under 1.7e-38), above 88 give exp(88);
 * NaN stays NaN. */
NORM_INLINE void v_exp(vf *px)
{
    vf x = *px, lim;
    vi tiny = x < -87.0f;
    vi big = x > 88.0f;
    v_splat(&lim, 88.0f);
    v_select(&x, &big, &lim, &x);
    v_splat(&lim, -87.0f);
    v_select(&x, &tiny, &lim, &x);
    /* t's low mantissa bits hold round(x / ln 2) (the 1.5 * 2^23 trick). */
    vf t = x * 1.44269504088896341f + 12582912.0f;
    vf n = t - 12582912.0f;
    vf r = x - n * 0.693359375f + n * 2.12194440e-4f;
    vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    vu bits = ((vu)t - 0x4B400000u + 127u) << 23;
    p *= (vf)bits;
    *px = (vf)((vi)p & ~tiny);
}

/* Largest element; NaNs are skipped (they propagate through the sums). */
NORM_INLINE float row_max(const float *x, size_t n)
{
    vf vm, v;
    v_splat(&vm, -INFINITY);
    size_t i = 0;
    for (; i + NK_LANES <= n; i += NK_LANES) {
        v_load(&v, x + i);
        vi gt = v > vm;
        v_select(&vm, &gt, &v, &vm);
    }
    float m = -INFINITY;
    for (int j = 0; j < NK_LANES; j++)
        m = vm[j] > m ? vm[j] : m;
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

/* One row of Softmax / LogSoftmax / Hardmax; y may be x.  exp(x - max)
 * keeps every term in (0, 1], so large inputs cannot overflow and -inf
 * entries contribute 0.  A row that is all -inf has no defined softmax and
 * gives NaN, as in the ONNX reference. */
NORM_INLINE void softmax_row(const float *x, float *y, size_t n, int kind)
{
    float m = row_max(x, n);
    if (kind == SM_HARDMAX) {
        size_t best = 0;
        for (size_t i = 0; i < n; i++)
            if (x[i] == m || isnan(x[i])) {
                best = i;
                break;
            }
        memset(y, 0, n * sizeof *y);
        y[best] = 1.0f;
        return;
    }
    vf vm, v, vsum = { 0 };
    v_splat(&vm, m);
    size_t i = 0;
    for (; i + NK_LANES <= n; i += NK_LANES) {
        v_load(&v, x + i);
        v -= vm;
        v_exp(&v);
        if (kind == SM_SOFTMAX)
            v_store(y + i, &v);
        vsum += v;
    }
    float sum = v_hsum(&vsum);
    if (i < n) {
        float tail[NK_LANES] = { 0 };
        memcpy(tail, x + i, (n - i) * sizeof *tail);
        v_load(&v, tail);
        v -= vm;
        v_exp(&v);
        v_store(tail, &v);
        for (size_t j = 0; j < n - i; j++) {
            sum += tail[j];
            if (kind == SM_SOFTMAX)
                y[i + j] = tail[j];
        }
    }
    if (kind == SM_SOFTMAX) {
        vf scale;
        float inv = 1.0f / sum;
        v_splat(&scale, inv);
        for (i = 0; i + NK_LANES <= n; i += NK_LANES) {
            v_load(&v, y + i);
            v *= scale;
            v_store(y + i, &v);
        }
        for (; i < n; i++)
            y[i] *= inv;
        return;
    }
    /* LogSoftmax: (x - max) - log(sum), in that order so that a large max
     * does not swallow the log term. */
    float log_sum = logf(sum);
    vf vl;
    v_splat(&vl, log_sum);
    for (i = 0; i + NK_LANES <= n; i += NK_LANES) {
        v_load(&v, x + i);
        v = (v - vm) - vl;
        v_store(y + i, &v);
    }
    for (; i < n; i++)
        y[i] = (x[i] - m) - log_sum;
}

/* Mean and population variance of a row: the sum is taken of x - x[0]
 * (shifted data), so a mean far from zero against a small spread loses no
 * precision in float; the variance is a second pass over x - mean. */
NORM_INLINE void row_stats(const float *x, size_t n, float *mean_out, float *var_out)
{
    vf acc = { 0 }, v, vs;
    float shift = x[0];
    v_splat(&vs, shift);
    size_t i = 0;
    for (; i + NK_LANES <= n; i += NK_LANES) {
        v_load(&v, x + i);
        acc += v - vs;
    }
    float sum = v_hsum(&acc);
    for (; i < n; i++)
        sum += x[i] - shift;
    float mean = shift + sum / (float)n;
    vf zero = { 0 };
    acc = zero;
    v_splat(&vs, mean);
    for (i = 0; i + NK_LANES <= n; i += NK_LANES) {
        v_load(&v, x + i);
        v -= vs;
        acc += v * v;
    }
    float sq = v_hsum(&acc);
    for (; i < n; i++) {
        float d = x[i] - mean;
        sq += d * d;
    }
    *mean_out = mean;
    *var_out = sq / (float)n;
}

/* y = (x - mean) * a + b. */
NORM_INLINE void norm_apply(const float *x, float *y, size_t n, float mean, float a, float b)
{
    vf vm, va, vb, v;
    v_splat(&vm, mean);
    v_splat(&va, a);
    v_splat(&vb, b);
    size_t i = 0;
    for (; i + NK_LANES <= n; i += NK_LANES) {
        v_load(&v, x + i);
        v = (v - vm) * va + vb;
        v_store(y + i, &v);
    }
    for (; i < n; i++)
        y[i] = (x[i] - mean) * a + b;
}

/* y = (x - mean) * inv * scale[i] + bias[i] (bias may be NULL). */
NORM_INLINE void layernorm_apply(const float *x, float *y, size_t n, float mean, float inv, const float *scale,
                                 const float *bias)
{
    vf vm, vinv, v, s, b;
    v_splat(&vm, mean);
    v_splat(&vinv, inv);
    size_t i = 0;
    if (bias) {
        for (; i + NK_LANES <= n; i += NK_LANES) {
            v_load(&v, x + i);
            v_load(&s, scale + i);
            v_load(&b, bias + i);
            v = (v - vm) * vinv * s + b;
            v_store(y + i, &v);
        }
        for (; i < n; i++)
            y[i] = (x[i] - mean) * inv * scale[i] + bias[i];
    } else {
        for (; i + NK_LANES <= n; i += NK_LANES) {
            v_load(&v, x + i);
            v_load(&s, scale + i);
            v = (v - vm) * vinv * s;
            v_store(y + i, &v);
        }
        for (; i < n; i++)
            y[i] = (x[i] - mean) * inv * scale[i];
    }
}

/* Softmax-family rows (sm_job). */
NK_TARGET static void NK_NAME(sm_rows)(void *ctx, size_t begin, size_t end, int task)
{
    const sm_job *job = ctx;
    const float *x = job->x;
    float *y = job->y;
    size_t n = job->n, inner = job->inner;
    if (inner == 1) {
        for (size_t r = begin; r < end; r++)
            softmax_row(x + r * n, y + r * n, n, job->kind);
        return;
    }
    /* Not the last axis: gather each row into a buffer, run, scatter. */
    float *buf = (float *)job->bufs + (size_t)task * n;
    for (size_t r = begin; r < end; r++) {
        size_t base = (r / inner) * n * inner + r % inner;
        for (size_t i = 0; i < n; i++)
            buf[i] = x[base + i * inner];
        softmax_row(buf, buf, n, job->kind);
        for (size_t i = 0; i < n; i++)
            y[base + i * inner] = buf[i];
    }
}

/* LayerNormalization rows (ln_job). */
NK_TARGET static void NK_NAME(ln_rows)(void *ctx, size_t begin, size_t end, int task)
{
    (void)task;
    const ln_job *job = ctx;
    const float *x = job->x;
    float *y = job->y;
    size_t n = job->n;
    for (size_t r = begin; r < end; r++) {
        float mean, var;
        row_stats(x + r * n, n, &mean, &var);
        float inv = 1.0f / sqrtf(var + job->epsilon);
        layernorm_apply(x + r * n, y + r * n, n, mean, inv, job->scale, job->bias);
        if (job->mean)
            ((float *)job->mean)[r] = mean;
        if (job->inv)
            ((float *)job->inv)[r] = inv;
    }
}

/* Per-channel planes (chan_job). */
NK_TARGET static void NK_NAME(chan_rows)(void *ctx, size_t begin, size_t end, int task)
{
    (void)task;
    const chan_job *job = ctx;
    const float *x = job->x, *mean = job->mean, *a = job->a, *b = job->b;
    float *y = job->y;
    size_t n = job->plane;
    for (size_t r = begin; r < end; r++) {
        size_t c = r % job->period;
        norm_apply(x + r * n, y + r * n, n, mean[c], a[c], b[c]);
    }
}

/* Mean and variance of contiguous groups (stats_job). */
NK_TARGET static void NK_NAME(stats_rows)(void *ctx, size_t begin, size_t end, int task)
{
    (void)task;
    const stats_job *job = ctx;
    const float *x = job->x;
    for (size_t r = begin; r < end; r++) {
        float mean, var;
        row_stats(x + r * job->n, job->n, &mean, &var);
        job->mean[r] = mean;
        job->var[r] = var;
    }
}

/* PRelu over bc_rows: y = x < 0 ? x * slope : x. */
NK_TARGET static void NK_NAME(prelu_f32)(const bc_rows *b, const eng_tensor *xt, const float *s, float *y)
{
    const float *x = xt->data;
    size_t idx[ENG_MAX_RANK] = { 0 }, off = 0, inner = b->inner;
    vf zero = { 0 };
    for (size_t base = 0; base < xt->count; base += inner) {
        const float *xr = x + base, *sr = s + off;
        float *yr = y + base;
        vf v, sv, prod;
        v_splat(&sv, sr[0]);
        size_t i = 0;
        for (; i + NK_LANES <= inner; i += NK_LANES) {
            v_load(&v, xr + i);
            if (b->is_vec)
                v_load(&sv, sr + i);
            prod = v * sv;
            vi neg = v < zero;
            v_select(&v, &neg, &prod, &v);
            v_store(yr + i, &v);
        }
        for (; i < inner; i++)
            yr[i] = xr[i] < 0 ? xr[i] * sr[b->is_vec ? i : 0] : xr[i];
        for (int d = b->split - 1; d >= 0; d--) {
            off += b->sstride[d];
            if (++idx[d] < (size_t)xt->shape[d])
                break;
            off -= b->sstride[d] * idx[d];
            idx[d] = 0;
        }
    }
}

/* Clip: v < lo ? lo : v, then v > hi ? hi : v (NaN passes through). */
NK_TARGET static void NK_NAME(clip_f32)(const float *x, float *y, size_t n, float lo, float hi)
{
    vf vlo, vhi, v;
    v_splat(&vlo, lo);
    v_splat(&vhi, hi);
    size_t i = 0;
    for (; i + NK_LANES <= n; i += NK_LANES) {
        v_load(&v, x + i);
        vi below = v < vlo;
        v_select(&v, &below, &vlo, &v);
        vi above = v > vhi;
        v_select(&v, &above, &vhi, &v);
        v_store(y + i, &v);
    }
    for (; i < n; i++) {
        float c = x[i] < lo ? lo : x[i];
        y[i] = c > hi ? hi : c;
    }
}

#undef vf
#undef vi
#undef vu
#undef v_load
#undef v_store
#undef v_splat
#undef v_select
#undef v_hsum
#undef v_exp
#undef row_max
#undef softmax_row
#undef row_stats
#undef norm_apply
#undef layernorm_apply
