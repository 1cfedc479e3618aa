/* linalg.c - MatMul (numpy batch broadcasting) and Gemm on top of the
 * sgemm kernel (kernels/gemm.c); other types use a plain reference loop. */
#include <stdint.h>
#include <string.h>

#include "engine/kernels/kernels.h"
#include "engine/ops/ops.h"

/* --- weights packed once ---------------------------------------------------
 * A constant B (the weights of a Linear layer) is packed into the GEMM's
 * panel layout at load, so runs neither pack it again nor read it in its
 * stored order. */

typedef struct linalg_state {
    const eng_sgemm_packed_b *packed_b; /* NULL: B packed per call */
} linalg_state;

static const eng_sgemm_packed_b *pack_const_b(eng_node *n, st_arena *arena, bool trans_b)
{
    int v = n->n_inputs > 1 ? n->inputs[1] : -1;
    if (v < 0 || !n->graph->values[v].is_const)
        return NULL;
    const eng_tensor *b = &n->graph->values[v].constant;
    /* A weight read in place stays unpacked: packing is the copy into
     * fresh memory that reading it in place avoids. */
    if (b->dtype != ST_DT_FLOAT32 || b->rank != 2 || b->count == 0 || n->graph->values[v].is_in_place)
        return NULL;
    size_t k = (size_t)(trans_b ? b->shape[1] : b->shape[0]), cols = (size_t)(trans_b ? b->shape[0] : b->shape[1]);
    size_t bytes = eng_sgemm_pack_b_bytes(k, cols);
    void *mem = bytes ? st_arena_alloc(arena, bytes, 64) : NULL;
    if (!mem)
        return NULL; /* fine: per-call packing still works */
    return eng_sgemm_pack_b(k, cols, b->data, (size_t)b->shape[1], trans_b, mem, bytes);
}

static st_status linalg_check(eng_node *n, st_arena *arena, st_error *err, bool is_gemm)
{
    linalg_state *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->packed_b = pack_const_b(n, arena, is_gemm && eng_attr_int(n, "transB", 0) != 0);
    n->state = st;
    return ST_OK;
}

static st_status matmul_check(eng_node *n, st_arena *arena, st_error *err)
{
    return linalg_check(n, arena, err, false);
}

static st_status gemm_check(eng_node *n, st_arena *arena, st_error *err)
{
    return linalg_check(n, arena, err, true);
}

/* The packed B when it is the one this call multiplies by. */
static const eng_sgemm_packed_b *packed_for(const eng_kctx *k, size_t kk, size_t n)
{
    const linalg_state *st = k->node->state;
    const eng_sgemm_packed_b *p = st ? st->packed_b : NULL;
    if (!p || eng_sgemm_packed_b_k(p) != kk || eng_sgemm_packed_b_n(p) != n)
        return NULL;
    return p;
}

/* B of a float product: a weight in place in the model file may sit at any
 * byte address and goes through eng_sgemm_unaligned_b. */
static bool is_b_unaligned(const eng_tensor *b)
{
    return ((uintptr_t)b->data & (sizeof(float) - 1)) != 0;
}

/* --- MatMul --------------------------------------------------------------- */

static st_status matmul_infer(eng_kctx *k)
{
    const eng_tensor *a = k->in[0], *b = k->in[1];
    if (!a || !b)
        return eng_fail(k, ST_EINVAL, "both inputs are required");
    if (a->dtype != b->dtype)
        return eng_fail(k, ST_ETYPE, "inputs have different types (%s and %s)", st_dtype_name(a->dtype),
                        st_dtype_name(b->dtype));
    if (a->rank == 0 || b->rank == 0)
        return eng_fail(k, ST_ESHAPE, "inputs must have rank >= 1");
    /* 1-D operands are promoted (prepend / append 1) and the added dim dropped. */
    int64_t as[ENG_MAX_RANK + 1], bs[ENG_MAX_RANK + 1];
    uint32_t ar = a->rank, br = b->rank;
    memcpy(as, a->shape, ar * sizeof *as);
    memcpy(bs, b->shape, br * sizeof *bs);
    if (ar == 1) {
        as[1] = as[0];
        as[0] = 1;
        ar = 2;
    }
    if (br == 1) {
        bs[1] = 1;
        br = 2;
    }
    int64_t m = as[ar - 2], ka = as[ar - 1], kb = bs[br - 2], n = bs[br - 1];
    if (ka != kb)
        return eng_fail(k, ST_ESHAPE, "inner dimensions differ (%lld vs %lld)", (long long)ka, (long long)kb);
    eng_tensor ba = eng_tensor_make(a->dtype, as, ar - 2, NULL), bb = eng_tensor_make(b->dtype, bs, br - 2, NULL);
    int64_t shape[ENG_MAX_RANK + 2];
    uint32_t rank;
    st_status s = eng_broadcast_shape(&ba, &bb, shape, &rank, k);
    if (s != ST_OK)
        return s;
    if (a->rank > 1)
        shape[rank++] = m;
    if (b->rank > 1)
        shape[rank++] = n;
    if (rank > ENG_MAX_RANK)
        return eng_fail(k, ST_EUNSUPPORTED, "rank above %d", ENG_MAX_RANK);
    if (a->dtype != ST_DT_FLOAT32 && a->dtype != ST_DT_FLOAT64 && a->dtype != ST_DT_INT32 &&
        a->dtype != ST_DT_INT64 && a->dtype != ST_DT_UINT32 && a->dtype != ST_DT_UINT64)
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported", st_dtype_name(a->dtype));
    eng_set_shape(k->out[0], a->dtype, shape, rank);
    return ST_OK;
}

#define REF_MATMUL(NAME, T)                                                                  \
    static void NAME(const void *va, const void *vb, void *vc, size_t m, size_t n, size_t kk) \
    {                                                                                        \
        const T *a = va, *b = vb;                                                            \
        T *c = vc;                                                                           \
        for (size_t i = 0; i < m; i++) {                                                     \
            for (size_t j = 0; j < n; j++)                                                   \
                c[i * n + j] = 0;                                                            \
            for (size_t p = 0; p < kk; p++) {                                                \
                T av = a[i * kk + p];                                                        \
                for (size_t j = 0; j < n; j++)                                               \
                    c[i * n + j] += av * b[p * n + j];                                       \
            }                                                                                \
        }                                                                                    \
    }
REF_MATMUL(mm_f64, double)
REF_MATMUL(mm_i32, int32_t)
REF_MATMUL(mm_i64, int64_t)
REF_MATMUL(mm_u32, uint32_t)
REF_MATMUL(mm_u64, uint64_t)

static void mm_f32(const void *a, const void *b, void *c, size_t m, size_t n, size_t kk)
{
    eng_sgemm(m, n, kk, 1.0f, a, kk, false, b, n, false, 0.0f, c, n, NULL);
}

static st_status matmul_run(eng_kctx *k)
{
    const eng_tensor *a = k->in[0], *b = k->in[1];
    eng_tensor *o = k->out[0];
    if (o->count == 0)
        return ST_OK;
    size_t m = a->rank >= 2 ? (size_t)a->shape[a->rank - 2] : 1;
    size_t kk = (size_t)a->shape[a->rank - 1];
    size_t n = b->rank >= 2 ? (size_t)b->shape[b->rank - 1] : 1;
    void (*mm)(const void *, const void *, void *, size_t, size_t, size_t);
    switch (a->dtype) {
    case ST_DT_FLOAT32: mm = mm_f32; break;
    case ST_DT_FLOAT64: mm = mm_f64; break;
    case ST_DT_INT32: mm = mm_i32; break;
    case ST_DT_INT64: mm = mm_i64; break;
    case ST_DT_UINT32: mm = mm_u32; break;
    default: mm = mm_u64; break;
    }
    size_t es = st_dtype_size(a->dtype);
    /* Batch dims: broadcast a's and b's leading dims to o's. */
    uint32_t ab = a->rank > 2 ? a->rank - 2 : 0, bb = b->rank > 2 ? b->rank - 2 : 0;
    uint32_t ob = ab > bb ? ab : bb;
    size_t batch = 1;
    for (uint32_t i = 0; i < ob; i++)
        batch *= (size_t)o->shape[i];
    if (kk == 0) {
        memset(o->data, 0, o->count * es);
        return ST_OK;
    }
    /* Fast path: b has no batch dims, so fold a's batch into M. */
    if (bb == 0) {
        if (a->dtype == ST_DT_FLOAT32) {
            const eng_sgemm_packed_b *pb = b->rank == 2 ? packed_for(k, kk, n) : NULL;
            if (pb)
                eng_sgemm_packed(batch * m, 1.0f, a->data, kk, false, pb, 0.0f, o->data, n, k->pool);
            else if (is_b_unaligned(b))
                eng_sgemm_unaligned_b(batch * m, n, kk, 1.0f, a->data, kk, false, b->data, n, false, 0.0f, o->data,
                                      n, k->pool);
            else
                eng_sgemm(batch * m, n, kk, 1.0f, a->data, kk, false, b->data, n, false, 0.0f, o->data, n, k->pool);
            return ST_OK;
        }
        mm(a->data, b->data, o->data, batch * m, n, kk);
        return ST_OK;
    }
    size_t idx[ENG_MAX_RANK] = { 0 };
    for (size_t it = 0; it < batch; it++) {
        size_t ia = 0, ibb = 0, mul_a = 1, mul_b = 1;
        for (int d = (int)ob - 1; d >= 0; d--) {
            int da = d - (int)(ob - ab), db = d - (int)(ob - bb);
            if (da >= 0) {
                ia += (a->shape[da] == 1 ? 0 : idx[d]) * mul_a;
                mul_a *= (size_t)a->shape[da];
            }
            if (db >= 0) {
                ibb += (b->shape[db] == 1 ? 0 : idx[d]) * mul_b;
                mul_b *= (size_t)b->shape[db];
            }
        }
        mm((const char *)a->data + ia * m * kk * es, (const char *)b->data + ibb * kk * n * es,
           (char *)o->data + it * m * n * es, m, n, kk);
        for (int d = (int)ob - 1; d >= 0; d--) {
            if (++idx[d] < (size_t)o->shape[d])
                break;
            idx[d] = 0;
        }
    }
    return ST_OK;
}

/* --- Gemm: Y = alpha * op(A) op(B) + beta * C ---------------------------- */

static st_status gemm_infer(eng_kctx *k)
{
    const eng_tensor *a = k->in[0], *b = k->in[1];
    if (!a || !b || a->rank != 2 || b->rank != 2)
        return eng_fail(k, ST_ESHAPE, "A and B must be 2-D");
    if (a->dtype != b->dtype || (a->dtype != ST_DT_FLOAT32 && a->dtype != ST_DT_FLOAT64))
        return eng_fail(k, ST_EUNSUPPORTED, "types %s and %s are not supported", st_dtype_name(a->dtype),
                        st_dtype_name(b->dtype));
    bool ta = eng_attr_int(k->node, "transA", 0), tb = eng_attr_int(k->node, "transB", 0);
    int64_t m = ta ? a->shape[1] : a->shape[0], ka = ta ? a->shape[0] : a->shape[1];
    int64_t kb = tb ? b->shape[1] : b->shape[0], n = tb ? b->shape[0] : b->shape[1];
    if (ka != kb)
        return eng_fail(k, ST_ESHAPE, "inner dimensions differ (%lld vs %lld)", (long long)ka, (long long)kb);
    int64_t shape[2] = { m, n };
    const eng_tensor *c = k->n_in > 2 ? k->in[2] : NULL;
    if (c) {
        eng_tensor y = eng_tensor_make(a->dtype, shape, 2, NULL);
        int64_t bshape[ENG_MAX_RANK];
        uint32_t br;
        st_status s = eng_broadcast_shape(&y, c, bshape, &br, k);
        if (s != ST_OK)
            return s;
        if (br != 2 || bshape[0] != m || bshape[1] != n)
            return eng_fail(k, ST_ESHAPE, "C does not broadcast to [%lld, %lld]", (long long)m, (long long)n);
    }
    eng_set_shape(k->out[0], a->dtype, shape, 2);
    return ST_OK;
}

/* Writes beta * C broadcast to [m, n] into y. */
#define GEMM_BIAS(NAME, T)                                                                  \
    static void NAME(const eng_tensor *c, T *y, size_t m, size_t n, T beta)                 \
    {                                                                                       \
        const T *cv = c->data;                                                              \
        size_t cr = c->rank >= 2 ? (size_t)c->shape[c->rank - 2] : 1;                       \
        size_t cc = c->rank >= 1 ? (size_t)c->shape[c->rank - 1] : 1;                       \
        for (size_t i = 0; i < m; i++)                                                      \
            for (size_t j = 0; j < n; j++)                                                  \
                y[i * n + j] = beta * cv[(cr == 1 ? 0 : i) * cc + (cc == 1 ? 0 : j)];       \
    }
GEMM_BIAS(gemm_bias_f32, float)
GEMM_BIAS(gemm_bias_f64, double)

static st_status gemm_run(eng_kctx *k)
{
    const eng_tensor *a = k->in[0], *b = k->in[1];
    const eng_tensor *c = k->n_in > 2 ? k->in[2] : NULL;
    eng_tensor *o = k->out[0];
    bool ta = eng_attr_int(k->node, "transA", 0), tb = eng_attr_int(k->node, "transB", 0);
    float alpha = eng_attr_float(k->node, "alpha", 1.0f), beta = eng_attr_float(k->node, "beta", 1.0f);
    size_t m = (size_t)o->shape[0], n = (size_t)o->shape[1];
    size_t kk = (size_t)(ta ? a->shape[0] : a->shape[1]);
    if (o->count == 0)
        return ST_OK;
    if (a->dtype == ST_DT_FLOAT32) {
        float *y = o->data;
        bool has_c = c && beta != 0.0f;
        if (has_c)
            gemm_bias_f32(c, y, m, n, beta);
        const eng_sgemm_packed_b *pb = packed_for(k, kk, n);
        if (pb)
            eng_sgemm_packed(m, alpha, a->data, (size_t)a->shape[1], ta, pb, has_c ? 1.0f : 0.0f, y, n, k->pool);
        else if (is_b_unaligned(b))
            eng_sgemm_unaligned_b(m, n, kk, alpha, a->data, (size_t)a->shape[1], ta, b->data, (size_t)b->shape[1], tb,
                                  has_c ? 1.0f : 0.0f, y, n, k->pool);
        else
            eng_sgemm(m, n, kk, alpha, a->data, (size_t)a->shape[1], ta, b->data, (size_t)b->shape[1], tb,
                      has_c ? 1.0f : 0.0f, y, n, k->pool);
        return ST_OK;
    }
    double *y = o->data;
    const double *av = a->data, *bv = b->data;
    if (c && beta != 0.0f)
        gemm_bias_f64(c, y, m, n, beta);
    else
        memset(y, 0, m * n * sizeof *y);
    size_t lda = (size_t)a->shape[1], ldb = (size_t)b->shape[1];
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0;
            for (size_t p = 0; p < kk; p++)
                acc += (ta ? av[p * lda + i] : av[i * lda + p]) * (tb ? bv[j * ldb + p] : bv[p * ldb + j]);
            y[i * n + j] += alpha * acc;
        }
    return ST_OK;
}

const eng_op eng_ops_linalg[] = {
    { "", "MatMul", 1, matmul_check, matmul_infer, matmul_run },
    { "", "Gemm", 1, gemm_check, gemm_infer, gemm_run },
    { 0 },
};
