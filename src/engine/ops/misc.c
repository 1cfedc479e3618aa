/* misc.c - the eng_ops_misc table and the recurrent layers (RNN, GRU,
 * LSTM); the table's other families live in quant.c, signal.c and text.c
 * (see misc_ops.h).
 *
 * The recurrences run in float32 (float16 and float64 tensors are
 * converted on the way in and out).  Per direction, the input projection
 * X * W^T for every time step is one GEMM; each step then does one GEMM
 * of the hidden state with R (two for GRU without linear_before_reset)
 * and the gate arithmetic row by row. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/kernels.h"
#include "engine/ops/misc_ops.h"

/* --- float32 views --------------------------------------------------------------- */

static bool is_float_dtype(st_dtype t)
{
    return t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64 || t == ST_DT_FLOAT16;
}

/* The tensor's elements as float32: its own data, or a converted copy in
 * scratch.  NULL when out of memory. */
static float *f32_view(eng_kctx *k, const eng_tensor *t)
{
    if (t->dtype == ST_DT_FLOAT32)
        return t->data;
    float *f = st_arena_alloc(k->scratch, t->count * sizeof *f + 1, 64);
    if (!f)
        return NULL;
    if (t->dtype == ST_DT_FLOAT16)
        for (size_t i = 0; i < t->count; i++)
            f[i] = st_half_to_float(((const uint16_t *)t->data)[i]);
    else
        for (size_t i = 0; i < t->count; i++)
            f[i] = (float)eng_num_at(t, i);
    return f;
}

/* Writes float32 results back into a float16/float64 output (no-op when
 * the output is float32 and f is its data). */
static void f32_store(eng_tensor *t, const float *f)
{
    if (t->dtype == ST_DT_FLOAT16)
        for (size_t i = 0; i < t->count; i++)
            ((uint16_t *)t->data)[i] = st_float_to_half(f[i]);
    else if (t->dtype == ST_DT_FLOAT64)
        for (size_t i = 0; i < t->count; i++)
            ((double *)t->data)[i] = f[i];
}

/* A float32 buffer for an output: its data, or zeroed scratch that
 * f32_store copies back. */
static float *f32_out(eng_kctx *k, eng_tensor *t)
{
    if (t->dtype == ST_DT_FLOAT32)
        return t->data;
    return st_arena_calloc(k->scratch, t->count + 1, sizeof(float), 64);
}

/* --- RNN / GRU / LSTM ------------------------------------------------------------- */

typedef enum { ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_AFFINE, ACT_LEAKY_RELU, ACT_THRESHOLDED_RELU,
               ACT_SCALED_TANH, ACT_HARD_SIGMOID, ACT_ELU, ACT_SOFTSIGN, ACT_SOFTPLUS } act_kind;

typedef struct rnn_act {
    act_kind kind;
    float alpha, beta;
} rnn_act;

/* Activation names with how many of activation_alpha / activation_beta
 * each consumes and their defaults (those of the ONNX operators of the
 * same name, as ONNX Runtime uses). */
static const struct {
    const char *name;
    act_kind kind;
    bool takes_alpha, takes_beta;
    float alpha, beta;
} act_table[] = {
    { "Relu", ACT_RELU, false, false, 0, 0 },
    { "Tanh", ACT_TANH, false, false, 0, 0 },
    { "Sigmoid", ACT_SIGMOID, false, false, 0, 0 },
    { "Affine", ACT_AFFINE, true, true, 1.0f, 0.0f },
    { "LeakyRelu", ACT_LEAKY_RELU, true, false, 0.01f, 0 },
    { "ThresholdedRelu", ACT_THRESHOLDED_RELU, true, false, 1.0f, 0 },
    { "ScaledTanh", ACT_SCALED_TANH, true, true, 1.0f, 1.0f },
    { "HardSigmoid", ACT_HARD_SIGMOID, true, true, 0.2f, 0.5f },
    { "Elu", ACT_ELU, true, false, 1.0f, 0 },
    { "Softsign", ACT_SOFTSIGN, false, false, 0, 0 },
    { "Softplus", ACT_SOFTPLUS, false, false, 0, 0 },
};

static void act_apply(const rnn_act *a, float *x, size_t n)
{
    float al = a->alpha, be = a->beta;
    switch (a->kind) {
    case ACT_RELU: for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0; break;
    case ACT_TANH: for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i]); break;
    case ACT_SIGMOID: for (size_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i])); break;
    case ACT_AFFINE: for (size_t i = 0; i < n; i++) x[i] = al * x[i] + be; break;
    case ACT_LEAKY_RELU: for (size_t i = 0; i < n; i++) x[i] = x[i] >= 0 ? x[i] : al * x[i]; break;
    case ACT_THRESHOLDED_RELU: for (size_t i = 0; i < n; i++) x[i] = x[i] > al ? x[i] : 0; break;
    case ACT_SCALED_TANH: for (size_t i = 0; i < n; i++) x[i] = al * tanhf(be * x[i]); break;
    case ACT_HARD_SIGMOID:
        for (size_t i = 0; i < n; i++) {
            float v = al * x[i] + be;
            x[i] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
        break;
    case ACT_ELU: for (size_t i = 0; i < n; i++) x[i] = x[i] >= 0 ? x[i] : al * (expf(x[i]) - 1.0f); break;
    case ACT_SOFTSIGN: for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + fabsf(x[i])); break;
    case ACT_SOFTPLUS:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] > 30.0f ? x[i] : log1pf(expf(x[i]));
        break;
    }
}

typedef enum { CELL_RNN, CELL_GRU, CELL_LSTM } cell_kind;

typedef struct rnn_state {
    cell_kind cell;
    int n_gates;               /* 1, 3 (z r h), 4 (i o f c) */
    int n_dirs;
    bool is_reverse;           /* direction "reverse" (one direction) */
    int64_t hidden_size;       /* -1: taken from W */
    bool has_clip;
    float clip;
    bool is_batch_first;       /* layout 1 */
    bool linear_before_reset;  /* GRU */
    bool input_forget;         /* LSTM */
    rnn_act act[2][3];         /* per direction: f, g, h */
} rnn_state;

static st_status rnn_check(eng_node *n, st_arena *arena, st_error *err, cell_kind cell)
{
    rnn_state *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->cell = cell;
    st->n_gates = cell == CELL_RNN ? 1 : cell == CELL_GRU ? 3 : 4;
    st_str dir = eng_attr_str(n, "direction", "forward");
    if (st_str_eq_c(dir, "forward") || st_str_eq_c(dir, "reverse")) {
        st->n_dirs = 1;
        st->is_reverse = st_str_eq_c(dir, "reverse");
    } else if (st_str_eq_c(dir, "bidirectional")) {
        st->n_dirs = 2;
    } else {
        return st_fail(err, ST_EINVAL, "direction '%.*s' is not forward, reverse or bidirectional",
                       (int)(dir.len > 40 ? 40 : dir.len), dir.ptr);
    }
    st->hidden_size = eng_attr_int(n, "hidden_size", -1);
    if (eng_attr_has(n, "hidden_size") && st->hidden_size <= 0)
        return st_fail(err, ST_EINVAL, "hidden_size must be positive, got %lld", (long long)st->hidden_size);
    st->has_clip = eng_attr_has(n, "clip");
    st->clip = eng_attr_float(n, "clip", 0);
    if (st->has_clip && !(st->clip > 0))
        return st_fail(err, ST_EINVAL, "clip must be positive, got %g", (double)st->clip);
    int64_t layout = eng_attr_int(n, "layout", 0);
    if (layout != 0 && layout != 1)
        return st_fail(err, ST_EINVAL, "layout must be 0 or 1, got %lld", (long long)layout);
    st->is_batch_first = layout == 1;
    st->linear_before_reset = eng_attr_int(n, "linear_before_reset", 0) != 0;
    st->input_forget = eng_attr_int(n, "input_forget", 0) != 0;

    /* Activations: f (and g, h) per direction; one set is reused for
     * both directions. */
    int per_dir = cell == CELL_RNN ? 1 : cell == CELL_GRU ? 2 : 3;
    static const act_kind defaults[3] = { ACT_SIGMOID, ACT_TANH, ACT_TANH };
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < per_dir; i++)
            st->act[d][i] = (rnn_act){ cell == CELL_RNN ? ACT_TANH : defaults[i], 0, 0 };
    const onnx_attr *acts = onnx_node_attr(n->proto, "activations");
    if (acts && acts->type == ONNX_ATTR_STRINGS && acts->string_count) {
        size_t count = acts->string_count;
        if (count != (size_t)per_dir && count != (size_t)(per_dir * st->n_dirs))
            return st_fail(err, ST_EINVAL, "activations has %zu entries, expected %d per direction", count, per_dir);
        size_t n_alpha, n_beta, ia = 0, ib = 0;
        const float *alphas = eng_attr_floats(n, "activation_alpha", &n_alpha);
        const float *betas = eng_attr_floats(n, "activation_beta", &n_beta);
        for (size_t i = 0; i < count; i++) {
            st_str name = acts->strings[i];
            size_t e = 0;
            while (e < sizeof act_table / sizeof act_table[0] &&
                   !st_str_eq_nocase(name, st_str_c(act_table[e].name)))
                e++;
            if (e == sizeof act_table / sizeof act_table[0])
                return st_fail(err, ST_EUNSUPPORTED, "activation '%.*s' is not supported",
                               (int)(name.len > 40 ? 40 : name.len), name.ptr);
            rnn_act a = { act_table[e].kind, act_table[e].alpha, act_table[e].beta };
            if (act_table[e].takes_alpha && ia < n_alpha)
                a.alpha = alphas[ia++];
            if (act_table[e].takes_beta && ib < n_beta)
                a.beta = betas[ib++];
            st->act[i / (size_t)per_dir][i % (size_t)per_dir] = a;
        }
        if (count == (size_t)per_dir)
            memcpy(st->act[1], st->act[0], sizeof st->act[0]);
    }
    n->state = st;
    if (n->n_inputs < 3)
        return st_fail(err, ST_ECORRUPT, "takes X, W and R, has %u inputs", n->n_inputs);
    return ST_OK;
}

static st_status check_rnn(eng_node *n, st_arena *a, st_error *e) { return rnn_check(n, a, e, CELL_RNN); }
static st_status check_gru(eng_node *n, st_arena *a, st_error *e) { return rnn_check(n, a, e, CELL_GRU); }
static st_status check_lstm(eng_node *n, st_arena *a, st_error *e) { return rnn_check(n, a, e, CELL_LSTM); }

/* Sizes of one call, read from the inputs. */
typedef struct rnn_dims {
    size_t seq, batch, input, hidden, dirs, gates;
} rnn_dims;

static const eng_tensor *opt_in(const eng_kctx *k, uint32_t i)
{
    return i < k->n_in ? k->in[i] : NULL;
}

static st_status expect_shape(const eng_kctx *k, const eng_tensor *t, const char *what, st_dtype dtype,
                              uint32_t rank, const size_t *dims)
{
    bool ok = t->dtype == dtype && t->rank == rank;
    for (uint32_t i = 0; ok && i < rank; i++)
        ok = t->shape[i] == (int64_t)dims[i];
    if (ok)
        return ST_OK;
    char want[96];
    int len = snprintf(want, sizeof want, "[");
    for (uint32_t i = 0; i < rank && len < (int)sizeof want; i++)
        len += snprintf(want + len, sizeof want - (size_t)len, "%s%zu", i ? ", " : "", dims[i]);
    return eng_fail(k, ST_ESHAPE, "%s must be %s of shape %s]", what, st_dtype_name(dtype), want);
}

static st_status rnn_dims_of(const eng_kctx *k, rnn_dims *d)
{
    const rnn_state *st = k->node->state;
    const eng_tensor *x = k->in[0], *w = k->in[1], *r = k->in[2];
    if (!x || !w || !r)
        return eng_fail(k, ST_EINVAL, "X, W and R are required");
    if (!is_float_dtype(x->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported", st_dtype_name(x->dtype));
    if (x->rank != 3)
        return eng_fail(k, ST_ESHAPE, "X must have rank 3, got %u", x->rank);
    d->seq = (size_t)x->shape[st->is_batch_first ? 1 : 0];
    d->batch = (size_t)x->shape[st->is_batch_first ? 0 : 1];
    d->input = (size_t)x->shape[2];
    d->dirs = (size_t)st->n_dirs;
    d->gates = (size_t)st->n_gates;
    if (w->rank != 3 || w->shape[1] <= 0 || w->shape[1] % st->n_gates != 0)
        return eng_fail(k, ST_ESHAPE, "W must have shape [num_directions, %d*hidden_size, input_size]", st->n_gates);
    d->hidden = (size_t)(w->shape[1] / st->n_gates);
    if (st->hidden_size > 0 && (size_t)st->hidden_size != d->hidden)
        return eng_fail(k, ST_ESHAPE, "hidden_size is %lld but W holds %zu", (long long)st->hidden_size, d->hidden);
    size_t gh = d->gates * d->hidden;
    st_status s = expect_shape(k, w, "W", x->dtype, 3, (size_t[]){ d->dirs, gh, d->input });
    if (s == ST_OK)
        s = expect_shape(k, r, "R", x->dtype, 3, (size_t[]){ d->dirs, gh, d->hidden });
    const eng_tensor *b = opt_in(k, 3), *lens = opt_in(k, 4), *h0 = opt_in(k, 5);
    if (s == ST_OK && b)
        s = expect_shape(k, b, "B", x->dtype, 2, (size_t[]){ d->dirs, 2 * gh });
    size_t state_dims[3] = { d->dirs, d->batch, d->hidden };
    if (st->is_batch_first) {
        state_dims[0] = d->batch;
        state_dims[1] = d->dirs;
    }
    if (s == ST_OK && h0)
        s = expect_shape(k, h0, "initial_h", x->dtype, 3, state_dims);
    if (s == ST_OK && st->cell == CELL_LSTM) {
        const eng_tensor *c0 = opt_in(k, 6), *p = opt_in(k, 7);
        if (c0)
            s = expect_shape(k, c0, "initial_c", x->dtype, 3, state_dims);
        if (s == ST_OK && p)
            s = expect_shape(k, p, "P", x->dtype, 2, (size_t[]){ d->dirs, 3 * d->hidden });
    }
    if (s != ST_OK)
        return s;
    if (lens) {
        if ((lens->dtype != ST_DT_INT32 && lens->dtype != ST_DT_INT64) || lens->rank != 1 ||
            lens->shape[0] != (int64_t)d->batch)
            return eng_fail(k, ST_ESHAPE, "sequence_lens must be int32 of shape [%zu]", d->batch);
        for (size_t i = 0; i < d->batch; i++) {
            int64_t v = eng_int_at(lens, i);
            if (v < 0 || v > (int64_t)d->seq)
                return eng_fail(k, ST_EINVAL, "sequence_lens[%zu] is %lld, outside [0, %zu]", i, (long long)v,
                                d->seq);
        }
    }
    /* Scratch sizes below multiply these; keep every product in range. */
    size_t rows, tmp;
    if (st_mul_overflow(d->seq, d->batch, &rows) || st_mul_overflow(rows, gh, &tmp) ||
        st_mul_overflow(tmp, 2 * sizeof(float), &tmp) || st_mul_overflow(d->batch, gh, &tmp) ||
        st_mul_overflow(tmp, 2 * sizeof(float), &tmp))
        return eng_fail(k, ST_EOVERFLOW, "the recurrence is too large");
    return ST_OK;
}

static st_status rnn_infer(eng_kctx *k)
{
    const rnn_state *st = k->node->state;
    rnn_dims d;
    st_status s = rnn_dims_of(k, &d);
    if (s != ST_OK)
        return s;
    st_dtype t = k->in[0]->dtype;
    int64_t seq = (int64_t)d.seq, batch = (int64_t)d.batch, hid = (int64_t)d.hidden, dirs = (int64_t)d.dirs;
    if (k->n_out > 0 && k->out[0]) {
        if (st->is_batch_first)
            eng_set_shape(k->out[0], t, (int64_t[]){ batch, seq, dirs, hid }, 4);
        else
            eng_set_shape(k->out[0], t, (int64_t[]){ seq, dirs, batch, hid }, 4);
    }
    int64_t state_shape[3] = { dirs, batch, hid };
    if (st->is_batch_first) {
        state_shape[0] = batch;
        state_shape[1] = dirs;
    }
    for (uint32_t o = 1; o < k->n_out && o < (st->cell == CELL_LSTM ? 3u : 2u); o++)
        if (k->out[o])
            eng_set_shape(k->out[o], t, state_shape, 3);
    return ST_OK;
}

static void clip_apply(float *x, size_t n, float c)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] < -c ? -c : x[i] > c ? c : x[i];
}

/* Everything one direction's recurrence reads and writes. */
typedef struct rnn_run {
    const rnn_state *st;
    const rnn_act *act;       /* f, g, h of this direction */
    rnn_dims d;
    const float *w, *r, *b, *p; /* this direction's slices; b, p may be NULL */
    const float *xw;          /* [rows of X, G*H]: X W^T + biases */
    float *h, *c;             /* [batch, H] state */
    float *hr;                /* [batch, G*H]: h R^T */
    float *gates;             /* [batch, G*H] */
    float *tmp;               /* [batch, H] */
    float *y;                 /* Y or NULL */
    size_t dir;
} rnn_run;

static size_t x_row(const rnn_run *rr, size_t t, size_t b)
{
    return rr->st->is_batch_first ? b * rr->d.seq + t : t * rr->d.batch + b;
}

static float *y_at(const rnn_run *rr, size_t t, size_t b)
{
    const rnn_dims *d = &rr->d;
    size_t row = rr->st->is_batch_first ? (b * d->seq + t) * d->dirs + rr->dir : (t * d->dirs + rr->dir) * d->batch + b;
    return rr->y + row * d->hidden;
}

/* The state's offset in initial_h / Y_h / initial_c / Y_c. */
static size_t state_at(const rnn_state *st, const rnn_dims *d, size_t dir, size_t b)
{
    return (st->is_batch_first ? b * d->dirs + dir : dir * d->batch + b) * d->hidden;
}

/* One time step of batch row b: reads xw/hr/gates, updates h (and c). */
static void cell_step(const rnn_run *rr, size_t b, const float *xw)
{
    const rnn_state *st = rr->st;
    size_t H = rr->d.hidden, gh = rr->d.gates * H;
    float *g = rr->gates + b * gh, *h = rr->h + b * H;
    const float *hr = rr->hr + b * gh;
    switch (st->cell) {
    case CELL_RNN:
        for (size_t i = 0; i < H; i++)
            g[i] = xw[i] + hr[i];
        if (st->has_clip)
            clip_apply(g, H, st->clip);
        act_apply(&rr->act[0], g, H);
        memcpy(h, g, H * sizeof *h);
        break;
    case CELL_GRU: {
        /* z and r; h~ is finished by gru_finish once r is known. */
        for (size_t i = 0; i < 2 * H; i++)
            g[i] = xw[i] + hr[i];
        if (st->has_clip)
            clip_apply(g, 2 * H, st->clip);
        act_apply(&rr->act[0], g, 2 * H);
        break;
    }
    case CELL_LSTM: {
        float *c = rr->c + b * H;
        float *gi = g, *go = g + H, *gf = g + 2 * H, *gc = g + 3 * H;
        for (size_t i = 0; i < gh; i++)
            g[i] = xw[i] + hr[i];
        if (rr->p) {
            const float *pi = rr->p, *pf = rr->p + 2 * H; /* P is i, o, f */
            for (size_t i = 0; i < H; i++) {
                gi[i] += pi[i] * c[i];
                gf[i] += pf[i] * c[i];
            }
        }
        if (st->has_clip) {
            clip_apply(gi, H, st->clip);
            clip_apply(gf, 2 * H, st->clip); /* f and c */
        }
        act_apply(&rr->act[0], gi, H);
        if (st->input_forget)
            for (size_t i = 0; i < H; i++)
                gf[i] = 1.0f - gi[i];
        else
            act_apply(&rr->act[0], gf, H);
        act_apply(&rr->act[1], gc, H);
        for (size_t i = 0; i < H; i++)
            c[i] = gf[i] * c[i] + gi[i] * gc[i];
        if (rr->p)
            for (size_t i = 0; i < H; i++)
                go[i] += rr->p[H + i] * c[i];
        if (st->has_clip)
            clip_apply(go, H, st->clip);
        act_apply(&rr->act[0], go, H);
        float *hc = rr->tmp + b * H;
        memcpy(hc, c, H * sizeof *hc);
        act_apply(&rr->act[2], hc, H);
        for (size_t i = 0; i < H; i++)
            h[i] = go[i] * hc[i];
        break;
    }
    }
}

/* GRU: h~ = g(xw_h + (r . (h Rh^T + Rbh))) with linear_before_reset, else
 * g(xw_h + (r . h) Rh^T + Rbh); then h = (1 - z) h~ + z h.  `hrh` is the
 * [H] row of whichever product applies. */
static void gru_finish(const rnn_run *rr, size_t b, const float *xw, const float *hrh)
{
    const rnn_state *st = rr->st;
    size_t H = rr->d.hidden, gh = 3 * H;
    float *g = rr->gates + b * gh, *h = rr->h + b * H;
    const float *z = g, *r = g + H;
    float *hh = g + 2 * H;
    const float *rbh = rr->b ? rr->b + gh + 2 * H : NULL;
    for (size_t i = 0; i < H; i++) {
        float rec = hrh[i] + (rbh ? rbh[i] : 0);
        hh[i] = xw[2 * H + i] + (st->linear_before_reset ? r[i] * rec : rec);
    }
    if (st->has_clip)
        clip_apply(hh, H, st->clip);
    act_apply(&rr->act[1], hh, H);
    for (size_t i = 0; i < H; i++)
        h[i] = (1.0f - z[i]) * hh[i] + z[i] * h[i];
}

static st_status rnn_run_op(eng_kctx *k)
{
    const rnn_state *st = k->node->state;
    rnn_dims d;
    st_status s = rnn_dims_of(k, &d);
    if (s != ST_OK)
        return s;
    size_t H = d.hidden, gh = d.gates * H, rows = d.seq * d.batch;
    const eng_tensor *lens = opt_in(k, 4), *h0t = opt_in(k, 5);
    const eng_tensor *c0t = st->cell == CELL_LSTM ? opt_in(k, 6) : NULL;
    const eng_tensor *pt = st->cell == CELL_LSTM ? opt_in(k, 7) : NULL;
    eng_tensor *yt = k->n_out > 0 ? k->out[0] : NULL, *yht = k->n_out > 1 ? k->out[1] : NULL;
    eng_tensor *yct = st->cell == CELL_LSTM && k->n_out > 2 ? k->out[2] : NULL;
    const float *x = f32_view(k, k->in[0]), *w = f32_view(k, k->in[1]), *r = f32_view(k, k->in[2]);
    const float *b = opt_in(k, 3) ? f32_view(k, k->in[3]) : NULL;
    const float *h0 = h0t ? f32_view(k, h0t) : NULL, *c0 = c0t ? f32_view(k, c0t) : NULL;
    const float *p = pt ? f32_view(k, pt) : NULL;
    float *y = yt ? f32_out(k, yt) : NULL, *yh = yht ? f32_out(k, yht) : NULL, *yc = yct ? f32_out(k, yct) : NULL;
    float *xw = st_arena_alloc(k->scratch, rows * gh * sizeof *xw + 1, 64);
    float *h = st_arena_alloc(k->scratch, d.batch * H * sizeof *h + 1, 64);
    float *c = st_arena_alloc(k->scratch, d.batch * H * sizeof *c + 1, 64);
    float *hr = st_arena_alloc(k->scratch, d.batch * gh * sizeof *hr + 1, 64);
    float *gates = st_arena_alloc(k->scratch, d.batch * gh * sizeof *gates + 1, 64);
    float *tmp = st_arena_alloc(k->scratch, d.batch * H * sizeof *tmp + 1, 64);
    float *tmp2 = st_arena_alloc(k->scratch, d.batch * H * sizeof *tmp2 + 1, 64);
    if (!x || !w || !r || (opt_in(k, 3) && !b) || (h0t && !h0) || (c0t && !c0) || (pt && !p) || (yt && !y) ||
        (yht && !yh) || (yct && !yc) || !xw || !h || !c || !hr || !gates || !tmp || !tmp2)
        return eng_fail(k, ST_ENOMEM, "out of scratch memory");
    if (y)
        memset(y, 0, yt->count * sizeof *y); /* steps past a sequence's length stay 0 */

    for (size_t dir = 0; dir < d.dirs; dir++) {
        bool reverse = dir == 1 || st->is_reverse;
        rnn_run rr = { st, st->act[dir], d, w + dir * gh * d.input, r + dir * gh * H, b ? b + dir * 2 * gh : NULL,
                       p ? p + dir * 3 * H : NULL, xw, h, c, hr, gates, tmp, y, dir };
        /* X W^T for every step at once, plus Wb + Rb (GRU keeps Rbh for
         * the reset gate product). */
        if (rows)
            eng_sgemm(rows, gh, d.input, 1.0f, x, d.input, false, rr.w, d.input, true, 0.0f, xw, gh, k->pool);
        if (rr.b) {
            size_t rb_len = st->cell == CELL_GRU ? 2 * H : gh;
            for (size_t i = 0; i < rows; i++) {
                float *row = xw + i * gh;
                for (size_t j = 0; j < gh; j++)
                    row[j] += rr.b[j];
                for (size_t j = 0; j < rb_len; j++)
                    row[j] += rr.b[gh + j];
            }
        }
        for (size_t bi = 0; bi < d.batch; bi++) {
            size_t off = state_at(st, &d, dir, bi);
            if (h0)
                memcpy(h + bi * H, h0 + off, H * sizeof *h);
            else
                memset(h + bi * H, 0, H * sizeof *h);
            if (c0)
                memcpy(c + bi * H, c0 + off, H * sizeof *c);
            else
                memset(c + bi * H, 0, H * sizeof *c);
        }
        /* GRU without linear_before_reset multiplies (r . h) by Rh after
         * the gates, so the first product stops at z and r. */
        bool gru_late = st->cell == CELL_GRU && !st->linear_before_reset;
        size_t hr_cols = gru_late ? 2 * H : gh;
        for (size_t step = 0; step < d.seq; step++) {
            if (d.batch)
                eng_sgemm(d.batch, hr_cols, H, 1.0f, h, H, false, rr.r, H, true, 0.0f, hr, gh, k->pool);
            for (size_t bi = 0; bi < d.batch; bi++) {
                size_t len = lens ? (size_t)eng_int_at(lens, bi) : d.seq;
                if (step >= len)
                    continue;
                size_t t = reverse ? len - 1 - step : step;
                cell_step(&rr, bi, xw + x_row(&rr, t, bi) * gh);
            }
            if (st->cell == CELL_GRU) {
                const float *hrh_all = hr + 2 * H;
                size_t hrh_ld = gh;
                if (gru_late) {
                    for (size_t bi = 0; bi < d.batch; bi++)
                        for (size_t i = 0; i < H; i++)
                            tmp[bi * H + i] = gates[bi * gh + H + i] * h[bi * H + i];
                    if (d.batch)
                        eng_sgemm(d.batch, H, H, 1.0f, tmp, H, false, rr.r + 2 * H * H, H, true, 0.0f, tmp2, H,
                                  k->pool);
                    hrh_all = tmp2;
                    hrh_ld = H;
                }
                for (size_t bi = 0; bi < d.batch; bi++) {
                    size_t len = lens ? (size_t)eng_int_at(lens, bi) : d.seq;
                    if (step >= len)
                        continue;
                    size_t t = reverse ? len - 1 - step : step;
                    gru_finish(&rr, bi, xw + x_row(&rr, t, bi) * gh, hrh_all + bi * hrh_ld);
                }
            }
            if (y)
                for (size_t bi = 0; bi < d.batch; bi++) {
                    size_t len = lens ? (size_t)eng_int_at(lens, bi) : d.seq;
                    if (step < len)
                        memcpy(y_at(&rr, reverse ? len - 1 - step : step, bi), h + bi * H, H * sizeof *h);
                }
        }
        for (size_t bi = 0; bi < d.batch; bi++) {
            size_t off = state_at(st, &d, dir, bi);
            if (yh)
                memcpy(yh + off, h + bi * H, H * sizeof *h);
            if (yc)
                memcpy(yc + off, c + bi * H, H * sizeof *c);
        }
    }
    if (yt)
        f32_store(yt, y);
    if (yht)
        f32_store(yht, yh);
    if (yct)
        f32_store(yct, yc);
    return ST_OK;
}

const eng_op eng_ops_misc[] = {
    { "", "RNN", 1, check_rnn, rnn_infer, rnn_run_op },
    { "", "GRU", 1, check_gru, rnn_infer, rnn_run_op },
    { "", "LSTM", 1, check_lstm, rnn_infer, rnn_run_op },
#define MISC_OP(NAME, SINCE, FN) { "", NAME, SINCE, FN##_check, FN##_infer, FN##_run }
    MISC_OP("QuantizeLinear", 10, op_quant_quantize),
    MISC_OP("DequantizeLinear", 10, op_quant_dequantize),
    MISC_OP("DynamicQuantizeLinear", 11, op_quant_dynamic),
    MISC_OP("MatMulInteger", 10, op_quant_matmul_integer),
    MISC_OP("QLinearMatMul", 10, op_quant_qlinear_matmul),
    MISC_OP("QLinearConv", 10, op_quant_qlinear_conv),
    { "", "HannWindow", 17, op_signal_hann_check, op_signal_window_infer, op_signal_window_run },
    { "", "HammingWindow", 17, op_signal_hamming_check, op_signal_window_infer, op_signal_window_run },
    { "", "BlackmanWindow", 17, op_signal_blackman_check, op_signal_window_infer, op_signal_window_run },
    MISC_OP("DFT", 17, op_signal_dft),
    MISC_OP("STFT", 17, op_signal_stft),
    MISC_OP("MelWeightMatrix", 17, op_signal_mel),
    MISC_OP("StringNormalizer", 10, op_text_strnorm),
    MISC_OP("TfIdfVectorizer", 9, op_text_tfidf),
    { 0 },
};
