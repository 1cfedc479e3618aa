/* predict.c - walks a compiled ensemble over rows.
 *
 * Rows go in blocks of up to TREE_BLOCK; each tree is walked by the whole
 * block before the next tree (tree-major), so the rows' walks are
 * independent chains the CPU overlaps, and the tree's nodes stay in cache.
 * A block without NaN features takes the plain "x <= thr" steps; one with
 * NaN also looks at each node's NaN direction.  Scores accumulate in
 * double and are rounded to float once, after the post transform. */
#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "engine/tree/tree_int.h"

/* float(1e-35): LightGBM's zero threshold, compared in double. */
#define TREE_ZERO_THRESHOLD ((double)1e-35f)

static bool is_member(const tree_gnode *g, double x)
{
    if (!(x > -4.0e18 && x < 4.0e18))
        return false;
    int64_t c = (int64_t)x; /* truncated, like LightGBM and XGBoost */
    if (g->bits)
        return c >= 0 && c < (int64_t)g->n_bits && (g->bits[c / 64] >> (c % 64) & 1);
    size_t lo = 0, hi = g->n_cats;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->cats[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < g->n_cats && g->cats[lo] == c;
}

bool tree_gnode_test(const tree_gnode *g, float xf)
{
    double x = xf;
    if (isnan(x)) {
        if (g->missing != TREE_MISSING_NONE)
            return g->is_missing_true;
        x = 0.0;
    }
    if (g->missing == TREE_MISSING_ZERO && fabs(x) <= TREE_ZERO_THRESHOLD)
        return g->is_missing_true;
    double t = g->threshold;
    switch ((tree_cmp)g->cmp) {
    case TREE_CMP_LEQ: return x <= t;
    case TREE_CMP_LT: return x < t;
    case TREE_CMP_GTE: return x >= t;
    case TREE_CMP_GT: return x > t;
    case TREE_CMP_EQ: return x == t;
    case TREE_CMP_NEQ: return x != t;
    case TREE_CMP_MEMBER: return is_member(g, x);
    }
    return false;
}

/* One step of a fast tree; a leaf steps to itself. */
static inline uint32_t step_fast(const tree_node *nodes, uint32_t i, const float *xr)
{
    const tree_node *nd = &nodes[i];
    return xr[nd->feature] <= nd->thr ? i + 1 : nd->right;
}

/* The same where x may be NaN. */
static inline uint32_t step_nan(const tree_node *nodes, uint32_t i, const float *xr)
{
    const tree_node *nd = &nodes[i];
    float v = xr[nd->feature];
    bool is_le = v <= nd->thr || (isnan(v) && (nd->aux & TREE_AUX_NAN_LE));
    return is_le ? i + 1 : nd->right;
}

/* Leaf indexes of n rows through a tree of fast nodes, `depth` steps. */
static void walk_fixed(const tree_node *nodes, uint32_t root, unsigned depth, const float *const *xr,
                       size_t n, uint32_t *leaf)
{
    if (n == TREE_BLOCK) {
        uint32_t idx[TREE_BLOCK];
        for (size_t r = 0; r < TREE_BLOCK; r++)
            idx[r] = root;
        for (unsigned s = 0; s < depth; s++)
            for (size_t r = 0; r < TREE_BLOCK; r++)
                idx[r] = step_fast(nodes, idx[r], xr[r]);
        memcpy(leaf, idx, sizeof idx);
        return;
    }
    for (size_t r = 0; r < n; r++)
        leaf[r] = root;
    for (unsigned s = 0; s < depth; s++)
        for (size_t r = 0; r < n; r++)
            leaf[r] = step_fast(nodes, leaf[r], xr[r]);
}

/* Leaf index of one row, stepping until a leaf; any node kind. */
static uint32_t walk_row(const tree_model *m, uint32_t i, const float *xr, bool has_nan)
{
    const tree_node *nodes = m->nodes;
    for (;;) {
        const tree_node *nd = &nodes[i];
        if (nd->right == i)
            return i;
        bool is_le;
        if (nd->aux & TREE_AUX_GENERAL) {
            is_le = tree_gnode_test(&m->gnodes[nd->aux >> 2], xr[nd->feature]);
        } else if (!has_nan) {
            is_le = xr[nd->feature] <= nd->thr;
        } else {
            float v = xr[nd->feature];
            is_le = v <= nd->thr || (isnan(v) && (nd->aux & TREE_AUX_NAN_LE));
        }
        i = is_le ? i + 1 : nd->right;
    }
}

/* Adds the leaves' entries to acc (n rows of n_targets). */
static void accumulate(const tree_model *m, const uint32_t *leaf, size_t n, double *acc)
{
    const size_t n_targets = m->n_targets;
    const tree_entry *entries = m->entries;
    if (m->is_single_entry && (m->agg == TREE_AGG_SUM || m->agg == TREE_AGG_AVERAGE)) {
        for (size_t r = 0; r < n; r++) {
            const tree_entry *e = &entries[m->nodes[leaf[r]].aux];
            acc[r * n_targets + e->target] += e->weight;
        }
        return;
    }
    for (size_t r = 0; r < n; r++) {
        double *a = acc + r * n_targets;
        for (const tree_entry *e = &entries[m->nodes[leaf[r]].aux];; e++) {
            if (e->target != UINT32_MAX) {
                double *p = &a[e->target];
                switch (m->agg) {
                case TREE_AGG_SUM:
                case TREE_AGG_AVERAGE: *p += e->weight; break;
                case TREE_AGG_MIN: *p = isnan(*p) || e->weight < *p ? e->weight : *p; break;
                case TREE_AGG_MAX: *p = isnan(*p) || e->weight > *p ? e->weight : *p; break;
                }
            }
            if (e->is_last)
                break;
        }
    }
}

/* erf^-1 in double: Winitzki's closed form, polished by Newton steps. */
static double erfinv(double x)
{
    if (!(x > -1.0 && x < 1.0))
        return x == 1.0 ? INFINITY : x == -1.0 ? -INFINITY : NAN;
    const double a = 0.147, pi = 3.14159265358979323846;
    double ln = log((1.0 - x) * (1.0 + x));
    double u = 2.0 / (pi * a) + 0.5 * ln;
    double y = copysign(sqrt(sqrt(u * u - ln / a) - u), x);
    for (int k = 0; k < 3; k++) {
        double d = 2.0 / sqrt(pi) * exp(-y * y);
        if (d == 0.0)
            break;
        y -= (erf(y) - x) / d;
    }
    return y;
}

void tree_post_row(tree_post post, double *s, size_t n)
{
    switch (post) {
    case TREE_POST_NONE: return;
    case TREE_POST_LOGISTIC:
        for (size_t i = 0; i < n; i++)
            s[i] = 1.0 / (1.0 + exp(-s[i]));
        return;
    case TREE_POST_EXP:
        for (size_t i = 0; i < n; i++)
            s[i] = exp(s[i]);
        return;
    case TREE_POST_PROBIT:
        for (size_t i = 0; i < n; i++)
            s[i] = sqrt(2.0) * erfinv(2.0 * s[i] - 1.0);
        return;
    case TREE_POST_SOFTMAX:
    case TREE_POST_SOFTMAX_ZERO: {
        /* SOFTMAX_ZERO (ONNX Runtime): values within 1e-7 of zero are not
         * exponentiated and stay (almost exactly) zero. */
        bool is_zero_kept = post == TREE_POST_SOFTMAX_ZERO;
        double mx = -INFINITY, sum = 0.0;
        for (size_t i = 0; i < n; i++)
            mx = s[i] > mx ? s[i] : mx;
        for (size_t i = 0; i < n; i++) {
            if (is_zero_kept && fabs(s[i]) <= 1e-7) {
                s[i] *= exp(-mx);
            } else {
                s[i] = exp(s[i] - mx);
                sum += s[i];
            }
        }
        if (sum > 0.0)
            for (size_t i = 0; i < n; i++)
                s[i] /= sum;
        return;
    }
    }
}

/* Rows per block for n_targets scores on the stack. */
#define TREE_ACC_DOUBLES 4096

void tree_predict_range(const tree_model *m, const float *x, size_t row_stride, float *scores,
                        size_t begin, size_t end, bool use_simd)
{
    const size_t n_targets = m->n_targets;
    size_t block = TREE_ACC_DOUBLES / n_targets;
    block = block > TREE_BLOCK ? TREE_BLOCK : block ? block : 1;
    double acc[TREE_ACC_DOUBLES];
    const float *xr[TREE_BLOCK];
    uint32_t leaf[TREE_BLOCK];
    double init = m->agg == TREE_AGG_MIN || m->agg == TREE_AGG_MAX ? NAN : 0.0;
    for (size_t b = begin; b < end; b += block) {
        size_t n = end - b < block ? end - b : block;
        bool has_nan = false;
        for (size_t r = 0; r < n; r++) {
            xr[r] = x + (b + r) * row_stride;
            for (size_t f = 0; f < m->n_features; f++)
                has_nan |= isnan(xr[r][f]);
        }
        for (size_t i = 0; i < n * n_targets; i++)
            acc[i] = init;
        for (size_t t = 0; t < m->n_trees; t++) {
            uint32_t root = m->roots[t];
            if (m->walk[t] == TREE_WALK_FIXED && !has_nan) {
                if (use_simd && n == TREE_BLOCK)
                    tree_walk_fixed_avx512(m->nodes, root, m->depth[t], x + b * row_stride, row_stride,
                                           leaf);
                else
                    walk_fixed(m->nodes, root, m->depth[t], xr, n, leaf);
            } else {
                for (size_t r = 0; r < n; r++)
                    leaf[r] = walk_row(m, root, xr[r], has_nan);
            }
            accumulate(m, leaf, n, acc);
        }
        for (size_t r = 0; r < n; r++) {
            double *a = acc + r * n_targets;
            for (size_t k = 0; k < n_targets; k++) {
                if (m->agg == TREE_AGG_AVERAGE && m->n_trees)
                    a[k] /= (double)m->n_trees;
                else if (isnan(a[k]))
                    a[k] = 0.0; /* MIN/MAX: no tree scored this target */
                a[k] += m->base_values[k];
            }
            tree_post_row(m->post, a, n_targets);
            float *out = scores + (b + r) * n_targets;
            for (size_t k = 0; k < n_targets; k++)
                out[k] = (float)a[k];
        }
    }
}

typedef struct predict_args {
    const tree_model *m;
    const float *x;
    size_t row_stride;
    float *scores;
    bool use_simd;
} predict_args;

static void predict_task(void *ctx, size_t begin, size_t end)
{
    const predict_args *a = ctx;
    tree_predict_range(a->m, a->x, a->row_stride, a->scores, begin, end, a->use_simd);
}

void tree_predict(const tree_model *m, const float *x, size_t n_rows, size_t row_stride, float *scores,
                  st_pool *pool)
{
    /* the gathers index nodes and rows with 32-bit offsets */
    bool use_simd = tree_avx512_ok() && m->n_nodes < (1u << 29) &&
                    row_stride <= (INT32_MAX - m->n_features) / TREE_BLOCK;
    predict_args a = { m, x, row_stride, scores, use_simd };
    if (!pool || n_rows <= 64) {
        predict_task(&a, 0, n_rows);
        return;
    }
    st_pool_parallel_for(pool, n_rows, 64, predict_task, &a);
}
