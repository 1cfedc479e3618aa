/* predict.c - walks a compiled ensemble over rows.
 *
 * Rows go in blocks of up to TREE_BLOCK; each tree is walked by the whole
 * block before the next tree (tree-major), so the rows' walks are
 * independent chains the CPU overlaps, and the tree's nodes stay in cache.
 * A block without NaN features takes branch-free steps: arithmetic child
 * indexes in complete trees, selects in the node array; a block with NaN
 * also looks at each node's NaN direction.  Scores accumulate in double
 * and are rounded to float once, after the post transform.
 * Complete trees over full blocks of 64 rows may go through AVX-512
 * (predict_avx.c). */
#include <math.h>
#include <string.h>

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
    /* a select by mask: compilers turn the plain ?: into a branch, which
     * mispredicts half the time on real data */
    uint32_t is_le = 0u - (uint32_t)(xr[nd->feature] <= nd->thr);
    return ((i + 1) & is_le) | (nd->right & ~is_le);
}

/* The same where x may be NaN. */
static inline uint32_t step_nan(const tree_node *nodes, uint32_t i, const float *xr)
{
    const tree_node *nd = &nodes[i];
    float v = xr[nd->feature];
    bool is_le = v <= nd->thr || (isnan(v) && (nd->aux & TREE_AUX_NAN_LE));
    return is_le ? i + 1 : nd->right;
}

/* Entry indexes of n rows through a complete tree of `depth` levels: the
 * next node is arithmetic, so the rows' steps are branch-free and
 * independent. */
static void walk_perfect(const tree_test *tests, const uint32_t *leaf, unsigned depth,
                         const float *const *xr, size_t n, uint32_t *entry)
{
    uint32_t first_leaf = (1u << depth) - 1;
    if (n == TREE_BLOCK) {
        uint32_t idx[TREE_BLOCK] = { 0 };
        for (unsigned s = 0; s < depth; s++)
            for (size_t r = 0; r < TREE_BLOCK; r++)
                idx[r] = 2 * idx[r] + 1 + (uint32_t)(xr[r][tests[idx[r]].feature] > tests[idx[r]].thr);
        for (size_t r = 0; r < TREE_BLOCK; r++)
            entry[r] = leaf[idx[r] - first_leaf];
        return;
    }
    for (size_t r = 0; r < n; r++) {
        uint32_t i = 0;
        for (unsigned s = 0; s < depth; s++)
            i = 2 * i + 1 + (uint32_t)(xr[r][tests[i].feature] > tests[i].thr);
        entry[r] = leaf[i - first_leaf];
    }
}

/* One row through the complete trees t0, t0 + 1, ... (up to 8 of them,
 * while they are complete): independent chains where a block has a single
 * row.  Their entry indexes go to entry[]; returns how many trees. */
static size_t walk_perfect_trees(const tree_model *m, size_t t0, const float *xr, uint32_t *entry)
{
    enum { GROUP = 8 };
    const tree_test *tests[GROUP];
    uint32_t idx[GROUP] = { 0 };
    unsigned depth[GROUP], max_depth = 0;
    size_t g = 0;
    for (; g < GROUP && t0 + g < m->n_trees && m->walk[t0 + g] == TREE_WALK_PERFECT; g++) {
        tests[g] = m->perfect_tests + m->perfect_at[t0 + g];
        depth[g] = m->depth[t0 + g];
        max_depth = depth[g] > max_depth ? depth[g] : max_depth;
    }
    for (unsigned s = 0; s < max_depth; s++)
        for (size_t k = 0; k < g; k++)
            if (s < depth[k]) {
                const tree_test *q = &tests[k][idx[k]];
                idx[k] = 2 * idx[k] + 1 + (uint32_t)(xr[q->feature] > q->thr);
            }
    for (size_t k = 0; k < g; k++)
        entry[k] = m->perfect_leaf[m->perfect_at[t0 + k] + idx[k] - ((1u << depth[k]) - 1)];
    return g;
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
static void accumulate(const tree_model *m, const uint32_t *entry, size_t n, double *acc)
{
    const size_t n_targets = m->n_targets;
    const tree_entry *entries = m->entries;
    if (m->is_single_entry && (m->agg == TREE_AGG_SUM || m->agg == TREE_AGG_AVERAGE)) {
        if (n_targets == 1) {
            for (size_t r = 0; r < n; r++)
                acc[r] += entries[entry[r]].weight;
            return;
        }
        for (size_t r = 0; r < n; r++) {
            const tree_entry *e = &entries[entry[r]];
            acc[r * n_targets + e->target] += e->weight;
        }
        return;
    }
    for (size_t r = 0; r < n; r++) {
        double *a = acc + r * n_targets;
        for (const tree_entry *e = &entries[entry[r]];; e++) {
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

void tree_post_transform(tree_post post, double *s, size_t n)
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
    size_t want = use_simd ? TREE_SIMD_BLOCK : TREE_BLOCK;
    block = block > want ? want : block ? block : 1;
    use_simd = use_simd && block == TREE_SIMD_BLOCK;
    double acc[TREE_ACC_DOUBLES];
    const float *xr[TREE_SIMD_BLOCK];
    uint32_t leaf[TREE_SIMD_BLOCK];
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
            unsigned walk = has_nan ? TREE_WALK_DEEP : m->walk[t];
            if (walk == TREE_WALK_PERFECT && n == 1) {
                size_t g = walk_perfect_trees(m, t, xr[0], leaf);
                for (size_t k = 0; k < g; k++)
                    accumulate(m, &leaf[k], 1, acc);
                t += g - 1;
                continue;
            }
            if (walk == TREE_WALK_PERFECT) {
                uint32_t at = m->perfect_at[t];
                if (use_simd && n == TREE_SIMD_BLOCK) {
                    tree_walk_perfect_avx512(m->perfect_tests + at, m->perfect_leaf + at, m->depth[t],
                                             x + b * row_stride, row_stride, leaf);
                } else {
                    for (size_t r0 = 0; r0 < n; r0 += TREE_BLOCK)
                        walk_perfect(m->perfect_tests + at, m->perfect_leaf + at, m->depth[t], xr + r0,
                                     n - r0 < TREE_BLOCK ? n - r0 : TREE_BLOCK, leaf + r0);
                }
                accumulate(m, leaf, n, acc);
                continue;
            }
            if (walk == TREE_WALK_FIXED) {
                for (size_t r0 = 0; r0 < n; r0 += TREE_BLOCK)
                    walk_fixed(m->nodes, root, m->depth[t], xr + r0,
                               n - r0 < TREE_BLOCK ? n - r0 : TREE_BLOCK, leaf + r0);
            } else {
                for (size_t r = 0; r < n; r++)
                    leaf[r] = walk_row(m, root, xr[r], has_nan);
            }
            for (size_t r = 0; r < n; r++)
                leaf[r] = m->nodes[leaf[r]].aux;
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
            tree_post_transform(m->post, a, n_targets);
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
    /* the gathers address rows with 32-bit offsets */
    bool use_simd = tree_avx512_ok() && row_stride <= (INT32_MAX - m->n_features) / TREE_SIMD_BLOCK;
    predict_args a = { m, x, row_stride, scores, use_simd };
    if (!pool || n_rows <= 64) {
        predict_task(&a, 0, n_rows);
        return;
    }
    st_pool_parallel_for(pool, n_rows, 64, predict_task, &a);
}
