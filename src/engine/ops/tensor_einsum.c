/* tensor_einsum.c - Einsum and Det.
 *
 * Einsum parses its equation once at load time.  Per run, every label
 * (letters, and one synthetic label per broadcast ellipsis dim) gets a size
 * and, per operand, a stride (summed over repeated labels: diagonals); a
 * general loop then sums products over the labels missing from the output.
 * Two-operand float32 contractions without diagonals or lone summed labels
 * ("bij,bjk->bik", "bhqd,bhkd->bhqk", ...) are mapped onto eng_sgemm
 * batches, transposing operands only when their layout needs it. */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/kernels/kernels.h"
#include "engine/ops/tensor_int.h"

#define N_LETTERS 52
#define MAX_LABELS (N_LETTERS + ENG_MAX_RANK) /* letters, then ellipsis dims */

typedef struct einsum_term {
    int n;                       /* letters */
    int8_t label[ENG_MAX_RANK];  /* letter ids 0..51 */
    int ell;                     /* letters before the ellipsis, -1 none */
} einsum_term;

typedef struct einsum_spec {
    int n_in;
    einsum_term *in;
    bool has_out;                /* explicit "->" */
    einsum_term out;
} einsum_spec;

/* a-z are 26..51 and A-Z 0..25, so that id order is ASCII order (the
 * implicit output lists letters in that order). */
static int letter_id(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return 26 + (c - 'a');
    return -1;
}

static st_status parse_term(const char *s, size_t len, einsum_term *t, st_error *err)
{
    t->n = 0;
    t->ell = -1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == ' ')
            continue;
        if (c == '.') {
            if (i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.' || t->ell >= 0)
                return st_fail(err, ST_EINVAL, "Einsum: bad ellipsis in '%.*s'", (int)len, s);
            t->ell = t->n;
            i += 2;
            continue;
        }
        int id = letter_id(c);
        if (id < 0)
            return st_fail(err, ST_EINVAL, "Einsum: '%c' is not a letter", c);
        if (t->n >= ENG_MAX_RANK)
            return st_fail(err, ST_EUNSUPPORTED, "Einsum: term '%.*s' has more than %d labels", (int)len, s,
                           ENG_MAX_RANK);
        t->label[t->n++] = (int8_t)id;
    }
    return ST_OK;
}

st_status tensor_einsum_check(eng_node *n, st_arena *arena, st_error *err)
{
    st_str eq = eng_attr_str(n, "equation", "");
    if (eq.len == 0)
        return st_fail(err, ST_EINVAL, "Einsum: the equation attribute is required");
    einsum_spec *sp = st_arena_calloc(arena, 1, sizeof *sp, 8);
    if (!sp)
        return st_fail(err, ST_ENOMEM, "out of memory");
    size_t lhs_len = eq.len;
    for (size_t i = 0; i + 1 < eq.len; i++)
        if (eq.ptr[i] == '-' && eq.ptr[i + 1] == '>') {
            lhs_len = i;
            sp->has_out = true;
            break;
        }
    int terms = 1;
    for (size_t i = 0; i < lhs_len; i++)
        terms += eq.ptr[i] == ',';
    if ((uint32_t)terms != n->n_inputs)
        return st_fail(err, ST_EINVAL, "Einsum: the equation has %d operands, the node %u inputs", terms,
                       n->n_inputs);
    sp->n_in = terms;
    sp->in = st_arena_calloc(arena, (size_t)terms, sizeof *sp->in, 8);
    if (!sp->in)
        return st_fail(err, ST_ENOMEM, "out of memory");
    size_t start = 0;
    int t = 0;
    for (size_t i = 0; i <= lhs_len; i++) {
        if (i == lhs_len || eq.ptr[i] == ',') {
            st_status s = parse_term(eq.ptr + start, i - start, &sp->in[t++], err);
            if (s != ST_OK)
                return s;
            start = i + 1;
        }
    }
    if (sp->has_out) {
        st_status s = parse_term(eq.ptr + lhs_len + 2, eq.len - lhs_len - 2, &sp->out, err);
        if (s != ST_OK)
            return s;
        for (int i = 0; i < sp->out.n; i++)
            for (int j = 0; j < i; j++)
                if (sp->out.label[i] == sp->out.label[j])
                    return st_fail(err, ST_EINVAL, "Einsum: an output label is repeated");
    }
    n->state = sp;
    return ST_OK;
}

/* Everything a run needs, derived from the spec and the input shapes. */
typedef struct einsum_plan {
    int64_t size[MAX_LABELS];
    int n_out, n_red;
    int out_label[ENG_MAX_RANK];
    int red_label[MAX_LABELS];
    int64_t out_shape[ENG_MAX_RANK];
    int8_t dim_label[16][ENG_MAX_RANK]; /* per operand (first 16), label of each dim */
    int64_t *stride;                    /* [n_in][MAX_LABELS], scratch */
    size_t out_count, red_count;
} einsum_plan;

#define MAX_FAST_INPUTS 16

static st_status einsum_plan_make(const eng_kctx *k, einsum_plan *p)
{
    const einsum_spec *sp = k->node->state;
    int n_in = sp->n_in;
    if (n_in > MAX_FAST_INPUTS)
        return eng_fail(k, ST_EUNSUPPORTED, "more than %d operands", MAX_FAST_INPUTS);
    st_dtype dt = ST_DT_UNDEFINED;
    int ell_rank[MAX_FAST_INPUTS], E = 0;
    for (int t = 0; t < n_in; t++) {
        const eng_tensor *x = k->in[t];
        if (!x)
            return eng_fail(k, ST_EINVAL, "operand %d is missing", t);
        if (t == 0)
            dt = x->dtype;
        if (x->dtype != dt)
            return eng_fail(k, ST_ETYPE, "operand %d has type %s, operand 0 %s", t, st_dtype_name(x->dtype),
                            st_dtype_name(dt));
        const einsum_term *tm = &sp->in[t];
        int r = (int)x->rank;
        if ((tm->ell < 0 && r != tm->n) || r < tm->n)
            return eng_fail(k, ST_ESHAPE, "operand %d has rank %d, its term has %d labels%s", t, r, tm->n,
                            tm->ell >= 0 ? " and an ellipsis" : "");
        ell_rank[t] = r - tm->n;
        if (ell_rank[t] > E)
            E = ell_rank[t];
    }
    switch (dt) {
    case ST_DT_FLOAT32: case ST_DT_FLOAT64: case ST_DT_FLOAT16: case ST_DT_INT32: case ST_DT_INT64:
    case ST_DT_UINT32: case ST_DT_UINT64:
        break;
    default:
        return eng_fail(k, ST_ETYPE, "type %s is not supported", st_dtype_name(dt));
    }
    int uses[MAX_LABELS] = { 0 };
    for (int l = 0; l < MAX_LABELS; l++)
        p->size[l] = -1;
    for (int l = N_LETTERS; l < N_LETTERS + E; l++)
        p->size[l] = 1;
    for (int t = 0; t < n_in; t++) {
        const eng_tensor *x = k->in[t];
        const einsum_term *tm = &sp->in[t];
        int e = ell_rank[t];
        for (int d = 0; d < (int)x->rank; d++) {
            int l;
            if (tm->ell >= 0 && d >= tm->ell && d < tm->ell + e)
                l = N_LETTERS + (E - e) + (d - tm->ell);
            else
                l = tm->label[tm->ell >= 0 && d >= tm->ell + e ? d - e : d];
            p->dim_label[t][d] = (int8_t)l;
            int64_t dim = x->shape[d];
            if (l >= N_LETTERS) {
                /* Ellipsis dims broadcast numpy-style. */
                if (dim != 1) {
                    if (p->size[l] != 1 && p->size[l] != dim)
                        return eng_fail(k, ST_ESHAPE, "ellipsis dimensions do not broadcast (%lld vs %lld)",
                                        (long long)p->size[l], (long long)dim);
                    p->size[l] = dim;
                }
            } else if (p->size[l] < 0) {
                p->size[l] = dim;
            } else if (p->size[l] != dim) {
                char c = (char)(l < 26 ? 'A' + l : 'a' + (l - 26));
                return eng_fail(k, ST_ESHAPE, "label '%c' has sizes %lld and %lld", c, (long long)p->size[l],
                                (long long)dim);
            }
            uses[l]++;
        }
    }
    for (int l = N_LETTERS; l < N_LETTERS + E; l++)
        uses[l] = 1;
    /* Output labels. */
    bool in_out[MAX_LABELS] = { false };
    p->n_out = 0;
    if (sp->has_out) {
        if (E > 0 && sp->out.ell < 0)
            return eng_fail(k, ST_EINVAL, "the operands have ellipsis dimensions but the output has no '...'");
        for (int i = 0; i <= sp->out.n; i++) {
            if (i == sp->out.ell)
                for (int l = N_LETTERS; l < N_LETTERS + E; l++)
                    p->out_label[p->n_out++] = l;
            if (i == sp->out.n)
                break;
            int l = sp->out.label[i];
            if (!uses[l])
                return eng_fail(k, ST_EINVAL, "output label '%c' is not in any operand",
                                (char)(l < 26 ? 'A' + l : 'a' + (l - 26)));
            if (p->n_out >= ENG_MAX_RANK)
                return eng_fail(k, ST_EUNSUPPORTED, "output rank above %d", ENG_MAX_RANK);
            p->out_label[p->n_out++] = l;
        }
    } else {
        for (int l = N_LETTERS; l < N_LETTERS + E; l++)
            p->out_label[p->n_out++] = l;
        for (int l = 0; l < N_LETTERS; l++)
            if (uses[l] == 1) {
                if (p->n_out >= ENG_MAX_RANK)
                    return eng_fail(k, ST_EUNSUPPORTED, "output rank above %d", ENG_MAX_RANK);
                p->out_label[p->n_out++] = l;
            }
    }
    p->out_count = 1;
    for (int i = 0; i < p->n_out; i++) {
        in_out[p->out_label[i]] = true;
        p->out_shape[i] = p->size[p->out_label[i]];
        p->out_count *= (size_t)p->out_shape[i];
    }
    p->n_red = 0;
    p->red_count = 1;
    for (int l = 0; l < MAX_LABELS; l++)
        if (uses[l] && !in_out[l]) {
            p->red_label[p->n_red++] = l;
            if (st_mul_overflow(p->red_count, (size_t)p->size[l], &p->red_count))
                return eng_fail(k, ST_EOVERFLOW, "the summed labels have too many combinations");
        }
    size_t total;
    if (st_mul_overflow(p->red_count, p->out_count, &total))
        return eng_fail(k, ST_EOVERFLOW, "the contraction has too many terms");
    p->stride = NULL;
    return ST_OK;
}

/* Per-operand element strides of each label (repeated labels add up, a
 * broadcast ellipsis dim of size 1 contributes 0). */
static st_status einsum_strides(const eng_kctx *k, einsum_plan *p)
{
    const einsum_spec *sp = k->node->state;
    p->stride = st_arena_calloc(k->scratch, (size_t)sp->n_in * MAX_LABELS, sizeof(int64_t), 8);
    if (!p->stride)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (int t = 0; t < sp->n_in; t++) {
        const eng_tensor *x = k->in[t];
        int64_t st[ENG_MAX_RANK];
        tensor_strides(x->shape, x->rank, st);
        for (uint32_t d = 0; d < x->rank; d++) {
            int l = p->dim_label[t][d];
            if (x->shape[d] == 1 && p->size[l] != 1)
                continue;
            p->stride[t * MAX_LABELS + l] += st[d];
        }
    }
    return ST_OK;
}

st_status tensor_einsum_infer(eng_kctx *k)
{
    einsum_plan p;
    st_status s = einsum_plan_make(k, &p);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], k->in[0]->dtype, p.out_shape, (uint32_t)p.n_out);
    return ST_OK;
}

/* --- the general loop ---------------------------------------------------------- */

/* Walks the output in C order; for each element sums, over every
 * combination of the summed labels, the product of the operands. */
#define DEF_EINSUM_LOOP(S, T, ACC, LOAD, STORE)                                                      \
    static void einsum_loop_##S(const einsum_plan *p, int n_in, const void *const *in, void *out)    \
    {                                                                                                \
        const T *x[MAX_FAST_INPUTS];                                                                 \
        for (int t = 0; t < n_in; t++)                                                               \
            x[t] = in[t];                                                                            \
        T *o = out;                                                                                  \
        int64_t oidx[ENG_MAX_RANK] = { 0 }, ooff[MAX_FAST_INPUTS] = { 0 };                           \
        int64_t ridx[MAX_LABELS], roff[MAX_FAST_INPUTS];                                             \
        for (size_t e = 0; e < p->out_count; e++) {                                                  \
            ACC sum = 0;                                                                             \
            memset(ridx, 0, sizeof ridx);                                                            \
            for (int t = 0; t < n_in; t++)                                                           \
                roff[t] = ooff[t];                                                                   \
            for (size_t r = 0; r < p->red_count; r++) {                                              \
                ACC prod = LOAD(x[0][roff[0]]);                                                      \
                for (int t = 1; t < n_in; t++)                                                       \
                    prod *= LOAD(x[t][roff[t]]);                                                     \
                sum += prod;                                                                         \
                for (int d = p->n_red - 1; d >= 0; d--) {                                            \
                    int l = p->red_label[d];                                                         \
                    ridx[d]++;                                                                       \
                    for (int t = 0; t < n_in; t++)                                                   \
                        roff[t] += p->stride[t * MAX_LABELS + l];                                    \
                    if (ridx[d] < p->size[l])                                                        \
                        break;                                                                       \
                    for (int t = 0; t < n_in; t++)                                                   \
                        roff[t] -= p->stride[t * MAX_LABELS + l] * ridx[d];                          \
                    ridx[d] = 0;                                                                     \
                }                                                                                    \
            }                                                                                        \
            o[e] = STORE(sum);                                                                       \
            for (int d = p->n_out - 1; d >= 0; d--) {                                                \
                int l = p->out_label[d];                                                             \
                oidx[d]++;                                                                           \
                for (int t = 0; t < n_in; t++)                                                       \
                    ooff[t] += p->stride[t * MAX_LABELS + l];                                        \
                if (oidx[d] < p->size[l])                                                            \
                    break;                                                                           \
                for (int t = 0; t < n_in; t++)                                                       \
                    ooff[t] -= p->stride[t * MAX_LABELS + l] * oidx[d];                              \
                oidx[d] = 0;                                                                         \
            }                                                                                        \
        }                                                                                            \
    }
#define AS_IS(v) (v)
#define TO_FLOAT(v) ((float)(v))
DEF_EINSUM_LOOP(f32, float, double, AS_IS, TO_FLOAT)
DEF_EINSUM_LOOP(f64, double, double, AS_IS, AS_IS)
DEF_EINSUM_LOOP(f16, uint16_t, float, st_half_to_float, st_float_to_half)
/* Integer products wrap: done in the unsigned type of the same width. */
DEF_EINSUM_LOOP(u32, uint32_t, uint32_t, AS_IS, AS_IS)
DEF_EINSUM_LOOP(u64, uint64_t, uint64_t, AS_IS, AS_IS)

static void einsum_general(const einsum_plan *p, st_dtype dt, int n_in, const void *const *in, void *out)
{
    switch (dt) {
    case ST_DT_FLOAT32: einsum_loop_f32(p, n_in, in, out); break;
    case ST_DT_FLOAT64: einsum_loop_f64(p, n_in, in, out); break;
    case ST_DT_FLOAT16: einsum_loop_f16(p, n_in, in, out); break;
    case ST_DT_INT32: case ST_DT_UINT32: einsum_loop_u32(p, n_in, in, out); break;
    default: einsum_loop_u64(p, n_in, in, out); break;
    }
}

/* --- fast paths ------------------------------------------------------------------ */

/* Operand t's dims as labels; false when a label repeats (a diagonal). */
static bool distinct_labels(const einsum_plan *p, const eng_tensor *x, int t)
{
    for (uint32_t i = 0; i < x->rank; i++)
        for (uint32_t j = 0; j < i; j++)
            if (p->dim_label[t][i] == p->dim_label[t][j])
                return false;
    return true;
}

/* Position of label l among operand t's dims, or -1. */
static int dim_of(const einsum_plan *p, const eng_tensor *x, int t, int l)
{
    for (uint32_t d = 0; d < x->rank; d++)
        if (p->dim_label[t][d] == l)
            return (int)d;
    return -1;
}

/* Lays operand t out in the label order `want` (n labels): returns its data
 * when already there, else a transposed copy in scratch. */
static const float *arrange(const eng_kctx *k, const einsum_plan *p, int t, const int *want, int n)
{
    const eng_tensor *x = k->in[t];
    int perm[ENG_MAX_RANK];
    bool same = true;
    for (int i = 0; i < n; i++) {
        perm[i] = dim_of(p, x, t, want[i]);
        same &= perm[i] == i;
    }
    if (same)
        return x->data;
    float *buf = st_arena_alloc(k->scratch, x->count * sizeof(float), 64);
    if (buf)
        eng_transpose(x->data, buf, sizeof(float), x->shape, x->rank, perm);
    return buf;
}

/* Is operand t laid out as the groups g1 then g2 (in those label orders)? */
static bool laid_out(const einsum_plan *p, const eng_tensor *x, int t, const int *g0, int n0, const int *g1, int n1,
                     const int *g2, int n2)
{
    if ((int)x->rank != n0 + n1 + n2)
        return false;
    int d = 0;
    for (int i = 0; i < n0; i++)
        if (p->dim_label[t][d++] != g0[i])
            return false;
    for (int i = 0; i < n1; i++)
        if (p->dim_label[t][d++] != g1[i])
            return false;
    for (int i = 0; i < n2; i++)
        if (p->dim_label[t][d++] != g2[i])
            return false;
    return true;
}

/* "A,B->C" with every label in exactly two of A, B, C (batch: all three;
 * m: A and C; n: B and C; k: A and B) as batched sgemm.  Returns
 * ST_EAGAIN when the pattern does not fit. */
static st_status einsum_gemm(eng_kctx *k, const einsum_plan *p)
{
    const eng_tensor *a = k->in[0], *b = k->in[1];
    eng_tensor *o = k->out[0];
    if (!distinct_labels(p, a, 0) || !distinct_labels(p, b, 1))
        return ST_EAGAIN;
    int bl[ENG_MAX_RANK], ml[ENG_MAX_RANK], nl[ENG_MAX_RANK], kl[ENG_MAX_RANK];
    int nb = 0, nm = 0, nn = 0, nk = 0;
    size_t B = 1, M = 1, N = 1, K = 1;
    for (int i = 0; i < p->n_out; i++) {
        int l = p->out_label[i];
        int da = dim_of(p, a, 0, l), db = dim_of(p, b, 1, l);
        /* A broadcast ellipsis dim (size 1 against a larger one) needs the general loop. */
        if ((da >= 0 && a->shape[da] != p->size[l]) || (db >= 0 && b->shape[db] != p->size[l]))
            return ST_EAGAIN;
        if (da >= 0 && db >= 0) {
            bl[nb++] = l;
            B *= (size_t)p->size[l];
        } else if (da >= 0) {
            ml[nm++] = l;
            M *= (size_t)p->size[l];
        } else if (db >= 0) {
            nl[nn++] = l;
            N *= (size_t)p->size[l];
        }
    }
    for (uint32_t d = 0; d < a->rank; d++) {
        int l = p->dim_label[0][d];
        bool out = false;
        for (int i = 0; i < p->n_out; i++)
            out |= p->out_label[i] == l;
        if (out)
            continue;
        int db = dim_of(p, b, 1, l);
        if (db < 0 || b->shape[db] != a->shape[d])
            return ST_EAGAIN; /* summed over A alone, or broadcast */
        kl[nk++] = l;
        K *= (size_t)p->size[l];
    }
    if (nb + nm + nk != (int)a->rank || nb + nn + nk != (int)b->rank)
        return ST_EAGAIN; /* B has a label summed over B alone */
    float *c = o->data;
    if (o->count == 0)
        return ST_OK;
    if (K == 0) {
        memset(c, 0, o->count * sizeof(float));
        return ST_OK;
    }
    /* A as [batch, m, k] or [batch, k, m]; B as [batch, k, n] or [batch, n, k]. */
    bool ta = false, tb = false;
    const float *pa, *pb;
    int want[ENG_MAX_RANK];
    if (laid_out(p, a, 0, bl, nb, ml, nm, kl, nk)) {
        pa = a->data;
    } else if (laid_out(p, a, 0, bl, nb, kl, nk, ml, nm)) {
        pa = a->data;
        ta = true;
    } else {
        memcpy(want, bl, (size_t)nb * sizeof(int));
        memcpy(want + nb, ml, (size_t)nm * sizeof(int));
        memcpy(want + nb + nm, kl, (size_t)nk * sizeof(int));
        if (!(pa = arrange(k, p, 0, want, nb + nm + nk)))
            return eng_fail(k, ST_ENOMEM, "out of memory");
    }
    if (laid_out(p, b, 1, bl, nb, kl, nk, nl, nn)) {
        pb = b->data;
    } else if (laid_out(p, b, 1, bl, nb, nl, nn, kl, nk)) {
        pb = b->data;
        tb = true;
    } else {
        memcpy(want, bl, (size_t)nb * sizeof(int));
        memcpy(want + nb, kl, (size_t)nk * sizeof(int));
        memcpy(want + nb + nk, nl, (size_t)nn * sizeof(int));
        if (!(pb = arrange(k, p, 1, want, nb + nk + nn)))
            return eng_fail(k, ST_ENOMEM, "out of memory");
    }
    /* The product comes out as [batch, m, n]; transpose when C differs. */
    bool direct = true;
    int prod_label[ENG_MAX_RANK];
    memcpy(prod_label, bl, (size_t)nb * sizeof(int));
    memcpy(prod_label + nb, ml, (size_t)nm * sizeof(int));
    memcpy(prod_label + nb + nm, nl, (size_t)nn * sizeof(int));
    for (int i = 0; i < p->n_out; i++)
        direct &= prod_label[i] == p->out_label[i];
    float *dst = c;
    if (!direct && !(dst = st_arena_alloc(k->scratch, o->count * sizeof(float), 64)))
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t i = 0; i < B; i++)
        eng_sgemm(M, N, K, 1.0f, pa + i * M * K, ta ? M : K, ta, pb + i * K * N, tb ? K : N, tb, 0.0f,
                  dst + i * M * N, N, k->pool);
    if (!direct) {
        int64_t shape[ENG_MAX_RANK];
        int perm[ENG_MAX_RANK];
        for (int i = 0; i < p->n_out; i++) {
            shape[i] = p->size[prod_label[i]];
            for (int j = 0; j < p->n_out; j++)
                if (prod_label[j] == p->out_label[i])
                    perm[i] = j;
        }
        eng_transpose(dst, c, sizeof(float), shape, (uint32_t)p->n_out, perm);
    }
    return ST_OK;
}

st_status tensor_einsum_run(eng_kctx *k)
{
    const einsum_spec *sp = k->node->state;
    einsum_plan p;
    st_status s = einsum_plan_make(k, &p);
    if (s != ST_OK)
        return s;
    eng_tensor *o = k->out[0];
    st_dtype dt = k->in[0]->dtype;
    if (o->count == 0)
        return ST_OK;
    if (sp->n_in == 2 && dt == ST_DT_FLOAT32) {
        s = einsum_gemm(k, &p);
        if (s != ST_EAGAIN)
            return s;
    }
    /* One operand whose labels are all kept: a transpose. */
    if (sp->n_in == 1 && p.n_red == 0 && distinct_labels(&p, k->in[0], 0) && p.n_out == (int)k->in[0]->rank) {
        int perm[ENG_MAX_RANK];
        for (int i = 0; i < p.n_out; i++)
            perm[i] = dim_of(&p, k->in[0], 0, p.out_label[i]);
        eng_transpose(k->in[0]->data, o->data, tensor_esize(dt), k->in[0]->shape, k->in[0]->rank, perm);
        return ST_OK;
    }
    if ((s = einsum_strides(k, &p)) != ST_OK)
        return s;
    const void *in[MAX_FAST_INPUTS];
    for (int t = 0; t < sp->n_in; t++)
        in[t] = k->in[t]->data;
    einsum_general(&p, dt, sp->n_in, in, o->data);
    return ST_OK;
}

/* --- Det ------------------------------------------------------------------------------ */

st_status tensor_det_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the X input is required");
    if (x->dtype != ST_DT_FLOAT32 && x->dtype != ST_DT_FLOAT64 && x->dtype != ST_DT_FLOAT16)
        return eng_fail(k, ST_ETYPE, "type %s is not supported (float16/32/64)", st_dtype_name(x->dtype));
    if (x->rank < 2 || x->shape[x->rank - 1] != x->shape[x->rank - 2])
        return eng_fail(k, ST_ESHAPE, "X must be [*, M, M] (square matrices)");
    eng_set_shape(k->out[0], x->dtype, x->shape, x->rank - 2);
    return ST_OK;
}

/* Determinant by LU decomposition with partial pivoting, in double. */
static double det_lu(double *a, size_t n)
{
    double det = 1.0;
    for (size_t c = 0; c < n; c++) {
        size_t piv = c;
        for (size_t r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[piv * n + c]))
                piv = r;
        if (a[piv * n + c] == 0.0)
            return 0.0;
        if (piv != c) {
            for (size_t j = 0; j < n; j++) {
                double t = a[c * n + j];
                a[c * n + j] = a[piv * n + j];
                a[piv * n + j] = t;
            }
            det = -det;
        }
        double d = a[c * n + c];
        det *= d;
        for (size_t r = c + 1; r < n; r++) {
            double f = a[r * n + c] / d;
            for (size_t j = c + 1; j < n; j++)
                a[r * n + j] -= f * a[c * n + j];
        }
    }
    return det;
}

st_status tensor_det_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    size_t n = (size_t)x->shape[x->rank - 1], mats = o->count, nn = n * n;
    double *a = st_arena_alloc(k->scratch, (nn ? nn : 1) * sizeof(double), 64);
    if (!a)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t m = 0; m < mats; m++) {
        for (size_t i = 0; i < nn; i++)
            a[i] = eng_num_at(x, m * nn + i);
        double det = det_lu(a, n);
        switch (o->dtype) {
        case ST_DT_FLOAT32: ((float *)o->data)[m] = (float)det; break;
        case ST_DT_FLOAT64: ((double *)o->data)[m] = det; break;
        default: ((uint16_t *)o->data)[m] = st_float_to_half((float)det); break;
        }
    }
    return ST_OK;
}
