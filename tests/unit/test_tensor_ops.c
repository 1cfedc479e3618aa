/* test_tensor_ops.c - edge cases of the tensor operator family that the
 * ONNX conformance cases do not reach: Slice clamping for every sign of
 * start/end/step (against the spec's rule restated in 128-bit arithmetic), Einsum patterns against
 * naive loops and the sgemm fast path against the general loop, Pad's
 * repeated reflection, TopK ties, uneven Split, Unique order, Where
 * broadcasting, and errors for bad indices. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/arena.h"
#include "engine/eng_int.h"

/* --- a tiny harness: one node, run through check / infer / run ---------- */

#define MAX_ATTRS 4

typedef struct harness {
    st_arena arena;
    onnx_attr attrs[MAX_ATTRS];
    size_t n_attrs;
    st_error err;
} harness;

static void h_init(harness *h)
{
    memset(h, 0, sizeof *h);
    st_arena_init(&h->arena, 0);
}

static void h_free(harness *h)
{
    st_arena_free(&h->arena);
}

static void attr_int(harness *h, const char *name, int64_t v)
{
    onnx_attr *a = &h->attrs[h->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = st_str_c(name);
    a->type = ONNX_ATTR_INT;
    a->i = v;
}

static void attr_ints(harness *h, const char *name, const int64_t *v, size_t n)
{
    onnx_attr *a = &h->attrs[h->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = st_str_c(name);
    a->type = ONNX_ATTR_INTS;
    a->ints = v;
    a->int_count = n;
}

static void attr_str(harness *h, const char *name, const char *v)
{
    onnx_attr *a = &h->attrs[h->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = st_str_c(name);
    a->type = ONNX_ATTR_STRING;
    a->s = st_str_c(v);
}

/* Runs op_type at `opset` on inputs (NULL = omitted); outputs get arena
 * memory.  Returns the status of the first failing stage. */
static st_status run_op(harness *h, const char *op_type, int opset, const eng_tensor *const *in, uint32_t n_in,
                        eng_tensor *out, uint32_t n_out)
{
    const eng_op *op = eng_op_find(st_str_c(""), st_str_c(op_type), opset);
    assert_non_null(op);
    onnx_node proto = { .name = st_str_c("t"), .op_type = st_str_c(op_type), .attrs = h->attrs,
                        .attr_count = h->n_attrs };
    int ids[16];
    for (int i = 0; i < 16; i++)
        ids[i] = i;
    eng_node node = { .op = op, .proto = &proto, .opset = opset, .inputs = ids, .n_inputs = n_in,
                      .outputs = ids, .n_outputs = n_out };
    st_status s;
    if (op->check && (s = op->check(&node, &h->arena, &h->err)) != ST_OK)
        return s;
    eng_tensor *outs[8];
    for (uint32_t i = 0; i < n_out; i++) {
        memset(&out[i], 0, sizeof out[i]);
        outs[i] = &out[i];
    }
    eng_kctx k = { .node = &node, .in = in, .n_in = n_in, .out = outs, .n_out = n_out, .scratch = &h->arena,
                   .err = &h->err };
    if ((s = op->infer(&k)) != ST_OK)
        return s;
    for (uint32_t i = 0; i < n_out; i++) {
        size_t bytes;
        assert_true(eng_tensor_bytes(out[i].dtype, out[i].count, &bytes));
        out[i].data = st_arena_alloc(&h->arena, bytes ? bytes : 1, 64);
        assert_non_null(out[i].data);
    }
    return op->run(&k);
}

static eng_tensor tensor(st_dtype t, const int64_t *shape, uint32_t rank, const void *data)
{
    return eng_tensor_make(t, shape, rank, (void *)data);
}

/* --- Slice ------------------------------------------------------------------ */

/* The ONNX rule for one axis, restated in 128-bit arithmetic: negative
 * start/end count from the end; start clamps to [0, len] (step > 0) or
 * [0, len - 1] (step < 0), end to [0, len] or [-1, len - 1].  Note the
 * start clamp differs from Python's slice.indices, which clamps a start
 * below zero to -1 for negative steps (an empty slice); ONNX keeps
 * element 0, as ONNX Runtime does. */
static void spec_slice(int64_t len, int64_t start, int64_t stop, int64_t step, int64_t *first, int64_t *count)
{
    *first = 0;
    *count = 0;
    if (len == 0)
        return;
    __int128 s = start, e = stop;
    if (s < 0)
        s += len;
    if (e < 0)
        e += len;
    __int128 s_hi = step < 0 ? (__int128)len - 1 : len, e_lo = step < 0 ? -1 : 0, e_hi = s_hi;
    s = s < 0 ? 0 : s > s_hi ? s_hi : s;
    e = e < e_lo ? e_lo : e > e_hi ? e_hi : e;
    __int128 n = 0;
    if (step > 0 && e > s)
        n = (e - s + step - 1) / step;
    if (step < 0 && s > e)
        n = (s - e + (-(__int128)step) - 1) / (-(__int128)step);
    *first = (int64_t)s;
    *count = (int64_t)n;
}

static void test_slice_clamping(void **state)
{
    (void)state;
    static const int64_t bounds[] = { INT64_MIN, INT64_MIN + 1, -13, -11, -10, -9, -5, -1, 0, 1, 4, 9, 10, 11, 13,
                                      INT64_MAX - 1, INT64_MAX };
    static const int64_t steps[] = { INT64_MIN, -11, -3, -2, -1, 1, 2, 3, 11, INT64_MAX };
    static const int64_t lens[] = { 0, 1, 10 };
    size_t nb = sizeof bounds / sizeof bounds[0], nst = sizeof steps / sizeof steps[0];
    int32_t data[10];
    for (int i = 0; i < 10; i++)
        data[i] = 100 + i;
    for (size_t li = 0; li < 3; li++) {
        int64_t len = lens[li];
        eng_tensor x = tensor(ST_DT_INT32, &len, 1, data);
        for (size_t a = 0; a < nb; a++)
            for (size_t b = 0; b < nb; b++)
                for (size_t c = 0; c < nst; c++) {
                    harness h;
                    h_init(&h);
                    int64_t one = 1;
                    eng_tensor st = tensor(ST_DT_INT64, &one, 1, &bounds[a]);
                    eng_tensor en = tensor(ST_DT_INT64, &one, 1, &bounds[b]);
                    eng_tensor sp = tensor(ST_DT_INT64, &one, 1, &steps[c]);
                    const eng_tensor *in[5] = { &x, &st, &en, NULL, &sp };
                    eng_tensor out;
                    st_status s = run_op(&h, "Slice", 13, in, 5, &out, 1);
                    if (s != ST_OK)
                        fail_msg("slice(%lld, %lld, %lld) on %lld: %s", (long long)bounds[a], (long long)bounds[b],
                                 (long long)steps[c], (long long)len, h.err.msg);
                    int64_t first, count;
                    spec_slice(len, bounds[a], bounds[b], steps[c], &first, &count);
                    if (out.shape[0] != count)
                        fail_msg("slice(%lld, %lld, %lld) on %lld: %lld elements, expected %lld",
                                 (long long)bounds[a], (long long)bounds[b], (long long)steps[c], (long long)len,
                                 (long long)out.shape[0], (long long)count);
                    for (int64_t i = 0; i < count; i++)
                        assert_int_equal(((int32_t *)out.data)[i], data[first + i * steps[c]]);
                    h_free(&h);
                }
    }
    /* A start below the axis with a negative step keeps element 0. */
    int64_t ten = 10, one = 1, sv = -100, ev = INT64_MIN, stv = -1;
    eng_tensor x = tensor(ST_DT_INT32, &ten, 1, data), st = tensor(ST_DT_INT64, &one, 1, &sv),
               en = tensor(ST_DT_INT64, &one, 1, &ev), sp = tensor(ST_DT_INT64, &one, 1, &stv);
    const eng_tensor *in[5] = { &x, &st, &en, NULL, &sp };
    harness h;
    h_init(&h);
    eng_tensor out;
    assert_int_equal(run_op(&h, "Slice", 13, in, 5, &out, 1), ST_OK);
    assert_int_equal(out.count, 1);
    assert_int_equal(((int32_t *)out.data)[0], 100);
    h_free(&h);
}

static void test_slice_2d_negative_step_and_opset1(void **state)
{
    (void)state;
    /* data 3x4; rows reversed from the end, every other column from 3 down. */
    float data[12];
    for (int i = 0; i < 12; i++)
        data[i] = (float)i;
    int64_t shape[2] = { 3, 4 };
    eng_tensor x = tensor(ST_DT_FLOAT32, shape, 2, data);
    int64_t two = 2;
    int64_t sv[2] = { -1, 3 }, ev[2] = { INT64_MIN, -100 }, av[2] = { 0, -1 }, stv[2] = { -1, -2 };
    eng_tensor st = tensor(ST_DT_INT64, &two, 1, sv), en = tensor(ST_DT_INT64, &two, 1, ev),
               ax = tensor(ST_DT_INT64, &two, 1, av), sp = tensor(ST_DT_INT64, &two, 1, stv);
    const eng_tensor *in[5] = { &x, &st, &en, &ax, &sp };
    harness h;
    h_init(&h);
    eng_tensor out;
    assert_int_equal(run_op(&h, "Slice", 13, in, 5, &out, 1), ST_OK);
    assert_int_equal(out.shape[0], 3);
    assert_int_equal(out.shape[1], 2);
    static const float want[6] = { 11, 9, 7, 5, 3, 1 };
    for (int i = 0; i < 6; i++)
        assert_true(((float *)out.data)[i] == want[i]);
    h_free(&h);

    /* Opset 1: attributes; a repeated axis is an error. */
    h_init(&h);
    int64_t s1[1] = { 1 }, e1[1] = { 1000 }, a1[1] = { 1 };
    attr_ints(&h, "starts", s1, 1);
    attr_ints(&h, "ends", e1, 1);
    attr_ints(&h, "axes", a1, 1);
    const eng_tensor *in1[1] = { &x };
    assert_int_equal(run_op(&h, "Slice", 1, in1, 1, &out, 1), ST_OK);
    assert_int_equal(out.shape[1], 3);
    assert_true(((float *)out.data)[0] == 1 && ((float *)out.data)[3] == 5);
    h_free(&h);

    h_init(&h);
    int64_t rep_axes[2] = { 1, -1 };
    eng_tensor rax = tensor(ST_DT_INT64, &two, 1, rep_axes);
    const eng_tensor *in2[4] = { &x, &st, &en, &rax };
    assert_int_equal(run_op(&h, "Slice", 13, in2, 4, &out, 1), ST_EINVAL);
    h_free(&h);
}

/* --- Einsum --------------------------------------------------------------------- */

static void fill(float *f, double *d, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        double v = (double)((seed >> 16) % 2001) / 1000.0 - 1.0;
        f[i] = (float)v;
        d[i] = (double)(float)v;
    }
}

typedef struct einsum_case {
    const char *eq;
    int n_in;
    uint32_t rank[2];
    int64_t shape[2][ENG_MAX_RANK];
} einsum_case;

/* Runs eq on float32 (fast paths) and float64 (general loop) copies of
 * the same values and returns both results. */
static void einsum_both(const einsum_case *c, harness *h, eng_tensor *of, eng_tensor *od)
{
    float *fin[2];
    double *din[2];
    eng_tensor tf[2], td[2];
    const eng_tensor *pf[2], *pd[2];
    for (int t = 0; t < c->n_in; t++) {
        size_t n;
        assert_true(eng_shape_count(c->shape[t], c->rank[t], &n));
        fin[t] = st_arena_alloc(&h->arena, (n + 1) * sizeof(float), 64);
        din[t] = st_arena_alloc(&h->arena, (n + 1) * sizeof(double), 64);
        fill(fin[t], din[t], n, 7u + (unsigned)t * 31u);
        tf[t] = tensor(ST_DT_FLOAT32, c->shape[t], c->rank[t], fin[t]);
        td[t] = tensor(ST_DT_FLOAT64, c->shape[t], c->rank[t], din[t]);
        pf[t] = &tf[t];
        pd[t] = &td[t];
    }
    h->n_attrs = 0;
    attr_str(h, "equation", c->eq);
    st_status s = run_op(h, "Einsum", 12, pf, (uint32_t)c->n_in, of, 1);
    if (s != ST_OK)
        fail_msg("%s (float32): %s", c->eq, h->err.msg);
    s = run_op(h, "Einsum", 12, pd, (uint32_t)c->n_in, od, 1);
    if (s != ST_OK)
        fail_msg("%s (float64): %s", c->eq, h->err.msg);
    assert_int_equal(of->rank, od->rank);
    assert_int_equal(of->count, od->count);
    for (size_t i = 0; i < of->count; i++) {
        double a = ((float *)of->data)[i], b = ((double *)od->data)[i];
        if (fabs(a - b) > 1e-4 * (1 + fabs(b)))
            fail_msg("%s: element %zu is %g (float32) vs %g (float64)", c->eq, i, a, b);
    }
}

static void test_einsum_fast_vs_general(void **state)
{
    (void)state;
    static const einsum_case cases[] = {
        { "bij,bjk->bik", 2, { 3, 3 }, { { 2, 3, 4 }, { 2, 4, 5 } } },
        { "bhqd,bhkd->bhqk", 2, { 4, 4 }, { { 2, 3, 5, 8 }, { 2, 3, 6, 8 } } },
        { "bhqk,bhkd->bhqd", 2, { 4, 4 }, { { 2, 3, 5, 6 }, { 2, 3, 6, 8 } } },
        { "ij,jk", 2, { 2, 2 }, { { 7, 9 }, { 9, 4 } } },
        { "ij,kj->ik", 2, { 2, 2 }, { { 7, 9 }, { 4, 9 } } },
        { "ji,jk->ik", 2, { 2, 2 }, { { 9, 7 }, { 9, 4 } } },
        { "bij,bjk->bki", 2, { 3, 3 }, { { 2, 3, 4 }, { 2, 4, 5 } } },
        { "ibj,jbk->bik", 2, { 3, 3 }, { { 3, 2, 4 }, { 4, 2, 5 } } },
        { "i,i", 2, { 1, 1 }, { { 11 }, { 11 } } },
        { "i,j->ij", 2, { 1, 1 }, { { 3 }, { 4 } } },
        { "ij,j->i", 2, { 2, 1 }, { { 5, 6 }, { 6 } } },
        { "...ij,...jk->...ik", 2, { 3, 4 }, { { 3, 2, 4 }, { 2, 3, 4, 5 } } },
        { "...ij,...jk", 2, { 3, 2 }, { { 1, 2, 4 }, { 4, 5 } } },
        { "bij,bjk->ik", 2, { 3, 3 }, { { 2, 3, 4 }, { 2, 4, 5 } } },
        { "ij,jk->k", 2, { 2, 2 }, { { 3, 4 }, { 4, 5 } } },
        { "ii->i", 1, { 2 }, { { 5, 5 } } },
        { "ii", 1, { 2 }, { { 5, 5 } } },
        { "bii->b", 1, { 3 }, { { 2, 4, 4 } } },
        { "ij->ji", 1, { 2 }, { { 3, 5 } } },
        { "ij->", 1, { 2 }, { { 3, 5 } } },
        { "ba", 1, { 2 }, { { 3, 5 } } },
        { "iij,jk->ik", 2, { 3, 2 }, { { 3, 3, 4 }, { 4, 2 } } },
        { "b i j , b j k -> b i k", 2, { 3, 3 }, { { 2, 3, 4 }, { 2, 4, 5 } } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        harness h;
        h_init(&h);
        eng_tensor of, od;
        einsum_both(&cases[i], &h, &of, &od);
        h_free(&h);
    }
}

static void test_einsum_naive_reference(void **state)
{
    (void)state;
    harness h;
    h_init(&h);
    eng_tensor of, od;
    /* Batched matmul, checked against the three-loop definition. */
    einsum_case mm = { "bij,bjk->bik", 2, { 3, 3 }, { { 2, 3, 4 }, { 2, 4, 5 } } };
    einsum_both(&mm, &h, &of, &od);
    float a[24], b[40];
    double da[24], db[40];
    fill(a, da, 24, 7u);
    fill(b, db, 40, 38u);
    for (int bb = 0; bb < 2; bb++)
        for (int i = 0; i < 3; i++)
            for (int kk = 0; kk < 5; kk++) {
                double s = 0;
                for (int j = 0; j < 4; j++)
                    s += da[bb * 12 + i * 4 + j] * db[bb * 20 + j * 5 + kk];
                assert_true(fabs(((float *)of.data)[bb * 15 + i * 5 + kk] - s) < 1e-5);
                assert_true(fabs(((double *)od.data)[bb * 15 + i * 5 + kk] - s) < 1e-12);
            }
    /* Trace, and the diagonal of a batch. */
    einsum_case tr = { "ii", 1, { 2 }, { { 5, 5 } } };
    einsum_both(&tr, &h, &of, &od);
    float m[25];
    double dm[25];
    fill(m, dm, 25, 7u);
    double trace = 0;
    for (int i = 0; i < 5; i++)
        trace += dm[i * 6];
    assert_int_equal(od.rank, 0);
    assert_true(fabs(((double *)od.data)[0] - trace) < 1e-12);
    /* Implicit output of "ba" is "ab": a transpose. */
    einsum_case tp = { "ba", 1, { 2 }, { { 3, 5 } } };
    einsum_both(&tp, &h, &of, &od);
    assert_int_equal(of.shape[0], 5);
    assert_int_equal(of.shape[1], 3);
    float t[15];
    double dt[15];
    fill(t, dt, 15, 7u);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++)
            assert_true(((float *)of.data)[i * 3 + j] == t[j * 5 + i]);
    /* Broadcast ellipsis: [3,1,2,4] x [2,4,5] -> [3,1,2,5] ... with a size-1 dim. */
    einsum_case bc = { "...ij,...jk->...ik", 2, { 4, 3 }, { { 3, 1, 2, 4 }, { 2, 4, 5 } } };
    einsum_both(&bc, &h, &of, &od);
    assert_int_equal(of.rank, 4);
    assert_int_equal(of.shape[1], 2);
    h_free(&h);
}

static void test_einsum_errors(void **state)
{
    (void)state;
    float v[6] = { 0 };
    int64_t s23[2] = { 2, 3 }, s3[1] = { 3 };
    eng_tensor a = tensor(ST_DT_FLOAT32, s23, 2, v), b = tensor(ST_DT_FLOAT32, s3, 1, v);
    const eng_tensor *in[2] = { &a, &b };
    eng_tensor out;
    static const struct {
        const char *eq;
        uint32_t n;
        st_status want;
    } bad[] = {
        { "ij,i->j", 2, ST_ESHAPE },   /* label i: 2 vs 3 */
        { "ij->k", 1, ST_EINVAL },     /* k is not an input label */
        { "ijk->i", 1, ST_ESHAPE },    /* rank 2 for three labels */
        { "ij->ii", 1, ST_EINVAL },    /* repeated output label */
        { "i.j->ij", 1, ST_EINVAL },   /* broken ellipsis */
        { "ij,j", 1, ST_EINVAL },      /* two terms, one input */
        { "...j->j", 1, ST_EINVAL },   /* ellipsis dims with no '...' out */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        harness h;
        h_init(&h);
        attr_str(&h, "equation", bad[i].eq);
        st_status s = run_op(&h, "Einsum", 12, in, bad[i].n, &out, 1);
        if (s != bad[i].want)
            fail_msg("%s: status %d, expected %d (%s)", bad[i].eq, s, bad[i].want, h.err.msg);
        h_free(&h);
    }
}

/* --- Pad, TopK, Split, Unique, Where, Gather -------------------------------------- */

static void test_pad_reflect_repeats_like_numpy(void **state)
{
    (void)state;
    int32_t data[3] = { 0, 1, 2 };
    int64_t n = 3, two = 2, pads[2] = { 5, 5 };
    eng_tensor x = tensor(ST_DT_INT32, &n, 1, data), p = tensor(ST_DT_INT64, &two, 1, pads);
    const eng_tensor *in[2] = { &x, &p };
    harness h;
    h_init(&h);
    attr_str(&h, "mode", "reflect");
    eng_tensor out;
    assert_int_equal(run_op(&h, "Pad", 13, in, 2, &out, 1), ST_OK);
    static const int32_t want[13] = { 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1 };
    assert_int_equal(out.count, 13);
    assert_memory_equal(out.data, want, sizeof want);
    h_free(&h);

    /* Negative pads crop; edge mode on a 2-D tensor. */
    int32_t d2[6] = { 1, 2, 3, 4, 5, 6 };
    int64_t s2[2] = { 2, 3 }, four = 4, p2[4] = { 1, -1, 0, 1 };
    eng_tensor x2 = tensor(ST_DT_INT32, s2, 2, d2), pp2 = tensor(ST_DT_INT64, &four, 1, p2);
    const eng_tensor *in2[2] = { &x2, &pp2 };
    h_init(&h);
    attr_str(&h, "mode", "edge");
    assert_int_equal(run_op(&h, "Pad", 13, in2, 2, &out, 1), ST_OK);
    assert_int_equal(out.shape[0], 3);
    assert_int_equal(out.shape[1], 3);
    static const int32_t want2[9] = { 2, 3, 3, 2, 3, 3, 5, 6, 6 };
    assert_memory_equal(out.data, want2, sizeof want2);
    h_free(&h);
}

static void test_topk_ties_lower_index_first(void **state)
{
    (void)state;
    float data[6] = { 1, 3, 3, 2, 3, NAN };
    int64_t n = 5, one = 1, kv = 3;
    eng_tensor x = tensor(ST_DT_FLOAT32, &n, 1, data), kk = tensor(ST_DT_INT64, &one, 1, &kv);
    const eng_tensor *in[2] = { &x, &kk };
    harness h;
    h_init(&h);
    eng_tensor out[2];
    assert_int_equal(run_op(&h, "TopK", 11, in, 2, out, 2), ST_OK);
    static const int64_t want_i[3] = { 1, 2, 4 };
    assert_memory_equal(out[1].data, want_i, sizeof want_i);
    h_free(&h);

    h_init(&h);
    attr_int(&h, "largest", 0);
    assert_int_equal(run_op(&h, "TopK", 11, in, 2, out, 2), ST_OK);
    static const int64_t want_s[3] = { 0, 3, 1 };
    assert_memory_equal(out[1].data, want_s, sizeof want_s);
    h_free(&h);

    /* NaN ranks above every number. */
    n = 6;
    x = tensor(ST_DT_FLOAT32, &n, 1, data);
    kv = 2;
    h_init(&h);
    assert_int_equal(run_op(&h, "TopK", 11, in, 2, out, 2), ST_OK);
    assert_int_equal(((int64_t *)out[1].data)[0], 5);
    assert_int_equal(((int64_t *)out[1].data)[1], 1);
    h_free(&h);

    /* K above the axis size is an error. */
    kv = 7;
    h_init(&h);
    assert_int_equal(run_op(&h, "TopK", 11, in, 2, out, 2), ST_EINVAL);
    h_free(&h);
}

static void test_split_uneven_and_errors(void **state)
{
    (void)state;
    int64_t data[7] = { 0, 1, 2, 3, 4, 5, 6 }, n = 7;
    eng_tensor x = tensor(ST_DT_INT64, &n, 1, data);
    const eng_tensor *in[1] = { &x };
    eng_tensor out[3];
    harness h;
    /* Before opset 18 an uneven equal split is an error... */
    h_init(&h);
    assert_int_equal(run_op(&h, "Split", 13, in, 1, out, 3), ST_ESHAPE);
    h_free(&h);
    /* ...from 18 the last part is smaller (3, 3, 1). */
    h_init(&h);
    attr_int(&h, "num_outputs", 3);
    assert_int_equal(run_op(&h, "Split", 18, in, 1, out, 3), ST_OK);
    assert_int_equal(out[0].shape[0], 3);
    assert_int_equal(out[1].shape[0], 3);
    assert_int_equal(out[2].shape[0], 1);
    assert_int_equal(((int64_t *)out[2].data)[0], 6);
    h_free(&h);
    /* split attribute (opset 2..12) must sum to the axis. */
    h_init(&h);
    int64_t bad[3] = { 1, 2, 3 };
    attr_ints(&h, "split", bad, 3);
    assert_int_equal(run_op(&h, "Split", 11, in, 1, out, 3), ST_EINVAL);
    h_free(&h);
}

static void test_unique_unsorted_and_strings(void **state)
{
    (void)state;
    st_str words[6] = { ST_STR("b"), ST_STR("a"), ST_STR("b"), ST_STR(""), ST_STR("ab"), ST_STR("a") };
    int64_t n = 6;
    eng_tensor x = tensor(ST_DT_STRING, &n, 1, words);
    const eng_tensor *in[1] = { &x };
    eng_tensor out[4];
    harness h;
    h_init(&h);
    assert_int_equal(run_op(&h, "Unique", 11, in, 1, out, 4), ST_OK);
    assert_int_equal(out[0].count, 4);
    const st_str *y = out[0].data;
    assert_true(st_str_eq_c(y[0], "") && st_str_eq_c(y[1], "a") && st_str_eq_c(y[2], "ab") && st_str_eq_c(y[3], "b"));
    static const int64_t inv[6] = { 3, 1, 3, 0, 2, 1 }, cnt[4] = { 1, 2, 1, 2 };
    assert_memory_equal(out[2].data, inv, sizeof inv);
    assert_memory_equal(out[3].data, cnt, sizeof cnt);
    h_free(&h);

    h_init(&h);
    attr_int(&h, "sorted", 0);
    assert_int_equal(run_op(&h, "Unique", 11, in, 1, out, 4), ST_OK);
    y = out[0].data;
    assert_true(st_str_eq_c(y[0], "b") && st_str_eq_c(y[1], "a") && st_str_eq_c(y[2], "") && st_str_eq_c(y[3], "ab"));
    static const int64_t first[4] = { 0, 1, 3, 4 };
    assert_memory_equal(out[1].data, first, sizeof first);
    h_free(&h);
}

static void test_where_three_way_broadcast(void **state)
{
    (void)state;
    /* cond [2,1,3], x scalar, y [4,1] -> out [2,4,3]. */
    uint8_t c[6] = { 1, 0, 1, 0, 1, 0 };
    float xv = -1, yv[4] = { 10, 20, 30, 40 };
    int64_t cs[3] = { 2, 1, 3 }, ys[2] = { 4, 1 };
    eng_tensor tc = tensor(ST_DT_BOOL, cs, 3, c), tx = tensor(ST_DT_FLOAT32, NULL, 0, &xv),
               ty = tensor(ST_DT_FLOAT32, ys, 2, yv);
    const eng_tensor *in[3] = { &tc, &tx, &ty };
    eng_tensor out;
    harness h;
    h_init(&h);
    assert_int_equal(run_op(&h, "Where", 16, in, 3, &out, 1), ST_OK);
    assert_int_equal(out.rank, 3);
    assert_int_equal(out.count, 24);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 3; j++) {
                float want = c[b * 3 + j] ? xv : yv[i];
                assert_true(((float *)out.data)[(b * 4 + i) * 3 + j] == want);
            }
    h_free(&h);

    /* Contiguous condition and X, scalar Y (the attention-mask shape), on
     * int64; then scalar X and contiguous Y on strings. */
    int64_t xi[6] = { 1, 2, 3, 4, 5, -6 }, yi = 99, s23[2] = { 2, 3 };
    eng_tensor c2 = tensor(ST_DT_BOOL, s23, 2, c), x2 = tensor(ST_DT_INT64, s23, 2, xi),
               y2 = tensor(ST_DT_INT64, NULL, 0, &yi);
    const eng_tensor *in2[3] = { &c2, &x2, &y2 };
    h_init(&h);
    assert_int_equal(run_op(&h, "Where", 16, in2, 3, &out, 1), ST_OK);
    static const int64_t want2[6] = { 1, 99, 3, 99, 5, 99 };
    assert_memory_equal(out.data, want2, sizeof want2);
    h_free(&h);
    st_str sx = ST_STR("x"), sy[6] = { ST_STR("a"), ST_STR("b"), ST_STR("c"), ST_STR("d"), ST_STR("e"), ST_STR("f") };
    eng_tensor x3 = tensor(ST_DT_STRING, NULL, 0, &sx), y3 = tensor(ST_DT_STRING, s23, 2, sy);
    const eng_tensor *in3[3] = { &c2, &x3, &y3 };
    h_init(&h);
    assert_int_equal(run_op(&h, "Where", 16, in3, 3, &out, 1), ST_OK);
    static const char *want3[6] = { "x", "b", "x", "d", "x", "f" };
    for (int i = 0; i < 6; i++)
        assert_true(st_str_eq_c(((st_str *)out.data)[i], want3[i]));
    h_free(&h);
}

static void test_gather_negative_and_out_of_range(void **state)
{
    (void)state;
    float emb[12];
    for (int i = 0; i < 12; i++)
        emb[i] = (float)i;
    int64_t es[2] = { 4, 3 }, is[2] = { 1, 3 }, idx[3] = { -1, 0, 2 };
    eng_tensor e = tensor(ST_DT_FLOAT32, es, 2, emb), ind = tensor(ST_DT_INT64, is, 2, idx);
    const eng_tensor *in[2] = { &e, &ind };
    eng_tensor out;
    harness h;
    h_init(&h);
    assert_int_equal(run_op(&h, "Gather", 13, in, 2, &out, 1), ST_OK);
    assert_int_equal(out.rank, 3);
    static const float want[9] = { 9, 10, 11, 0, 1, 2, 6, 7, 8 };
    assert_memory_equal(out.data, want, sizeof want);
    h_free(&h);

    idx[1] = 4;
    h_init(&h);
    assert_int_equal(run_op(&h, "Gather", 13, in, 2, &out, 1), ST_EINVAL);
    h_free(&h);
    idx[1] = -5;
    h_init(&h);
    assert_int_equal(run_op(&h, "Gather", 13, in, 2, &out, 1), ST_EINVAL);
    h_free(&h);
}

static void test_scatter_nd_reductions(void **state)
{
    (void)state;
    float data[4] = { 1, 2, 3, 4 }, upd[3] = { 10, 20, 30 };
    int64_t n = 4, is[2] = { 3, 1 }, idx[3] = { 1, 1, -1 }, three = 3;
    eng_tensor x = tensor(ST_DT_FLOAT32, &n, 1, data), ind = tensor(ST_DT_INT64, is, 2, idx),
               u = tensor(ST_DT_FLOAT32, &three, 1, upd);
    const eng_tensor *in[3] = { &x, &ind, &u };
    eng_tensor out;
    harness h;
    h_init(&h);
    attr_str(&h, "reduction", "add");
    assert_int_equal(run_op(&h, "ScatterND", 16, in, 3, &out, 1), ST_OK);
    static const float want_add[4] = { 1, 32, 3, 34 };
    assert_memory_equal(out.data, want_add, sizeof want_add);
    h_free(&h);
    h_init(&h);
    attr_str(&h, "reduction", "mul");
    assert_int_equal(run_op(&h, "ScatterND", 16, in, 3, &out, 1), ST_OK);
    static const float want_mul[4] = { 1, 400, 3, 120 };
    assert_memory_equal(out.data, want_mul, sizeof want_mul);
    h_free(&h);
    h_init(&h);
    attr_str(&h, "reduction", "xor");
    assert_int_equal(run_op(&h, "ScatterND", 16, in, 3, &out, 1), ST_EINVAL);
    h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_clamping),
        cmocka_unit_test(test_slice_2d_negative_step_and_opset1),
        cmocka_unit_test(test_einsum_fast_vs_general),
        cmocka_unit_test(test_einsum_naive_reference),
        cmocka_unit_test(test_einsum_errors),
        cmocka_unit_test(test_pad_reflect_repeats_like_numpy),
        cmocka_unit_test(test_topk_ties_lower_index_first),
        cmocka_unit_test(test_split_uneven_and_errors),
        cmocka_unit_test(test_unique_unsorted_and_strings),
        cmocka_unit_test(test_where_three_way_broadcast),
        cmocka_unit_test(test_gather_negative_and_out_of_range),
        cmocka_unit_test(test_scatter_nd_reductions),
    };
    return cmocka_run_group_tests_name("tensor_ops", tests, NULL, NULL);
}
