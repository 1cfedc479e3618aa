/* reduce.c - reductions (ReduceSum ... ReduceLogSumExp) and the losses
 * (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss).  ArgMax / ArgMin
 * live with TopK in the tensor family.
 *
 * One strided engine does every Reduce*: the input's dims are merged into
 * alternating groups of kept and reduced dims, and the walk calls one of
 * two typed kernels per contiguous block of the last two groups - a row
 * kernel when the innermost group is reduced (contiguous rows, eight
 * accumulators so float sums vectorise; the transformer ReduceMean case)
 * and a column kernel when it is kept (acc[j] op= x[r][j], vectorised).
 * Mean, L2 and the logs are a finishing pass over the output. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/ops/ops.h"
#include "engine/ops/reduce.h"

/* --- kernels ----------------------------------------------------------------- */

/* What is accumulated: the op applied per element and the combine step. */
typedef enum { A_SUM, A_ABS, A_SQ, A_MAX, A_MIN, A_PROD, A_EXPSUB, A_COUNT } acc_kind;

/* acc[r] = combine(acc[r], reduction of x[r * width .. r * width + width))
 * for r < rows; ref[r] is the per-output value (only A_EXPSUB reads it:
 * the sum is of exp(x - ref[r])). */
typedef void (*row_fn)(const void *x, size_t rows, size_t width, void *acc, const void *ref);
/* acc[j] = combine(acc[j], x[r * ld + j]) for r < rows, j < width. */
typedef void (*col_fn)(const void *x, size_t rows, size_t width, size_t ld, void *acc, const void *ref);

typedef struct red_fns {
    row_fn row;
    col_fn col;
} red_fns;

/* Integer arithmetic goes through the unsigned type so that overflow wraps
 * (as in numpy and ONNX Runtime) instead of being undefined.  elem_t and
 * uelem_t are typedefs local to each generated kernel. */
#define C_ADD(a, b) ((elem_t)((uelem_t)(a) + (uelem_t)(b)))
#define C_MUL(a, b) ((elem_t)((uelem_t)(a) * (uelem_t)(b)))
#define C_MAX(a, b) ((a) > (b) ? (a) : (b))
#define C_MIN(a, b) ((a) < (b) ? (a) : (b))
#define F_ID(v) (v)
#define F_ABS(v) ((v) < 0 ? (elem_t)((uelem_t)0 - (uelem_t)(v)) : (v))
#define F_SQ(v) C_MUL(v, v)

/* GCC's -O2 vectorises only loops whose trip count is a multiple of the
 * vector width, so the hot loops work in fixed blocks (8 row accumulators,
 * 16-column strips) with a scalar tail.  Rows of 8 or more elements use
 * eight accumulators; short rows a plain loop. */
#define DEF_KERNEL(S, T, UT, K, ID, F, COMB)                                                           \
    static void row_##K##_##S(const void *vx, size_t rows, size_t width, void *vacc, const void *vref) \
    {                                                                                                  \
        typedef T elem_t;                                                                              \
        typedef UT uelem_t;                                                                            \
        (void)sizeof(uelem_t);                                                                         \
        (void)vref;                                                                                    \
        elem_t *acc = vacc;                                                                            \
        for (size_t r = 0; r < rows; r++) {                                                            \
            const elem_t *x = (const elem_t *)vx + r * width;                                          \
            elem_t t = (elem_t)(ID);                                                                   \
            size_t i = 0;                                                                              \
            if (width >= 8) {                                                                          \
                elem_t s[8];                                                                           \
                for (int j = 0; j < 8; j++)                                                            \
                    s[j] = (elem_t)(ID);                                                               \
                for (; i + 8 <= width; i += 8)                                                         \
                    for (int j = 0; j < 8; j++) {                                                      \
                        elem_t v = x[i + (size_t)j];                                                   \
                        s[j] = COMB(s[j], F(v));                                                       \
                    }                                                                                  \
                for (int j = 0; j < 8; j++)                                                            \
                    t = COMB(t, s[j]);                                                                 \
            }                                                                                          \
            for (; i < width; i++) {                                                                   \
                elem_t v = x[i];                                                                       \
                t = COMB(t, F(v));                                                                     \
            }                                                                                          \
            acc[r] = COMB(acc[r], t);                                                                  \
        }                                                                                              \
    }                                                                                                  \
    /* One row of the column kernel; restrict parameters (not locals) are  \
     * what lets GCC prove acc and x do not overlap. */                    \
    static inline void col_row_##K##_##S(const T *restrict xr, size_t width, T *restrict acc)         \
    {                                                                                                  \
        typedef T elem_t;                                                                              \
        typedef UT uelem_t;                                                                            \
        (void)sizeof(uelem_t);                                                                         \
        size_t j = 0;                                                                                  \
        for (; j + 16 <= width; j += 16)                                                               \
            for (int q = 0; q < 16; q++) {                                                             \
                elem_t v = xr[j + (size_t)q];                                                          \
                acc[j + (size_t)q] = COMB(acc[j + (size_t)q], F(v));                                   \
            }                                                                                          \
        for (; j < width; j++) {                                                                       \
            elem_t v = xr[j];                                                                          \
            acc[j] = COMB(acc[j], F(v));                                                               \
        }                                                                                              \
    }                                                                                                  \
    static void col_##K##_##S(const void *vx, size_t rows, size_t width, size_t ld, void *vacc,        \
                              const void *vref)                                                        \
    {                                                                                                  \
        (void)vref;                                                                                    \
        for (size_t r = 0; r < rows; r++)                                                              \
            col_row_##K##_##S((const T *)vx + r * ld, width, vacc);                                    \
    }

/* S, element type, its unsigned arithmetic type, lowest, highest. */
#define RED_TYPES(X)                                         \
    X(f32, float, float, -INFINITY, INFINITY)                \
    X(f64, double, double, -INFINITY, INFINITY)              \
    X(i32, int32_t, uint32_t, INT32_MIN, INT32_MAX)          \
    X(i64, int64_t, uint64_t, INT64_MIN, INT64_MAX)          \
    X(u32, uint32_t, uint32_t, 0, UINT32_MAX)                \
    X(u64, uint64_t, uint64_t, 0, UINT64_MAX)                \
    X(i8, int8_t, unsigned, INT8_MIN, INT8_MAX)              \
    X(u8, uint8_t, unsigned, 0, UINT8_MAX)

#define DEF_TYPE(S, T, UT, LO, HI)                                                      \
    DEF_KERNEL(S, T, UT, sum, 0, F_ID, C_ADD)                                           \
    DEF_KERNEL(S, T, UT, abs, 0, F_ABS, C_ADD)                                          \
    DEF_KERNEL(S, T, UT, sq, 0, F_SQ, C_ADD)                                            \
    DEF_KERNEL(S, T, UT, max, LO, F_ID, C_MAX)                                          \
    DEF_KERNEL(S, T, UT, min, HI, F_ID, C_MIN)                                          \
    DEF_KERNEL(S, T, UT, prod, 1, F_ID, C_MUL)                                          \
    static void fill_##S(void *p, size_t n, acc_kind kind)                              \
    {                                                                                   \
        T v = kind == A_MAX ? (T)(LO) : kind == A_MIN ? (T)(HI) : kind == A_PROD ? 1 : 0; \
        T *d = p;                                                                       \
        for (size_t i = 0; i < n; i++)                                                  \
            d[i] = v;                                                                   \
    }
RED_TYPES(DEF_TYPE)

/* exp(x - ref) sums exist for the float types only; integer LogSumExp is
 * computed in double (see eng_reduce). */
static void row_expsub_f32(const void *vx, size_t rows, size_t width, void *vacc, const void *vref)
{
    const float *ref = vref;
    float *acc = vacc;
    for (size_t r = 0; r < rows; r++) {
        const float *x = (const float *)vx + r * width;
        float s = 0;
        for (size_t i = 0; i < width; i++)
            s += expf(x[i] - ref[r]);
        acc[r] += s;
    }
}

static void col_expsub_f32(const void *vx, size_t rows, size_t width, size_t ld, void *vacc, const void *vref)
{
    const float *x = vx, *ref = vref;
    float *acc = vacc;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < width; j++)
            acc[j] += expf(x[r * ld + j] - ref[j]);
}

static void row_expsub_f64(const void *vx, size_t rows, size_t width, void *vacc, const void *vref)
{
    const double *ref = vref;
    double *acc = vacc;
    for (size_t r = 0; r < rows; r++) {
        const double *x = (const double *)vx + r * width;
        double s = 0;
        for (size_t i = 0; i < width; i++)
            s += exp(x[i] - ref[r]);
        acc[r] += s;
    }
}

static void col_expsub_f64(const void *vx, size_t rows, size_t width, size_t ld, void *vacc, const void *vref)
{
    const double *x = vx, *ref = vref;
    double *acc = vacc;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < width; j++)
            acc[j] += exp(x[r * ld + j] - ref[j]);
}

#define FNS_ENTRY(S)                                                                                      \
    {                                                                                                     \
        { row_sum_##S, col_sum_##S }, { row_abs_##S, col_abs_##S }, { row_sq_##S, col_sq_##S },         \
            { row_max_##S, col_max_##S }, { row_min_##S, col_min_##S }, { row_prod_##S, col_prod_##S }, \
            { NULL, NULL }                                                                                \
    }
static const red_fns fns_f32[A_COUNT] = { { row_sum_f32, col_sum_f32 }, { row_abs_f32, col_abs_f32 },
                                          { row_sq_f32, col_sq_f32 },   { row_max_f32, col_max_f32 },
                                          { row_min_f32, col_min_f32 }, { row_prod_f32, col_prod_f32 },
                                          { row_expsub_f32, col_expsub_f32 } };
static const red_fns fns_f64[A_COUNT] = { { row_sum_f64, col_sum_f64 }, { row_abs_f64, col_abs_f64 },
                                          { row_sq_f64, col_sq_f64 },   { row_max_f64, col_max_f64 },
                                          { row_min_f64, col_min_f64 }, { row_prod_f64, col_prod_f64 },
                                          { row_expsub_f64, col_expsub_f64 } };
static const red_fns fns_i32[A_COUNT] = FNS_ENTRY(i32);
static const red_fns fns_i64[A_COUNT] = FNS_ENTRY(i64);
static const red_fns fns_u32[A_COUNT] = FNS_ENTRY(u32);
static const red_fns fns_u64[A_COUNT] = FNS_ENTRY(u64);
static const red_fns fns_i8[A_COUNT] = FNS_ENTRY(i8);
static const red_fns fns_u8[A_COUNT] = FNS_ENTRY(u8);

typedef void (*fill_fn)(void *p, size_t n, acc_kind kind);

/* The kernels and identity filler for a type reduced natively. */
static const red_fns *fns_for(st_dtype t, fill_fn *fill)
{
    switch (t) {
    case ST_DT_FLOAT32: *fill = fill_f32; return fns_f32;
    case ST_DT_FLOAT64: *fill = fill_f64; return fns_f64;
    case ST_DT_INT32: *fill = fill_i32; return fns_i32;
    case ST_DT_INT64: *fill = fill_i64; return fns_i64;
    case ST_DT_UINT32: *fill = fill_u32; return fns_u32;
    case ST_DT_UINT64: *fill = fill_u64; return fns_u64;
    case ST_DT_INT8: *fill = fill_i8; return fns_i8;
    case ST_DT_UINT8: *fill = fill_u8; return fns_u8;
    default: return NULL;
    }
}

/* --- the strided walk -------------------------------------------------------- */

/* The input's dims with size-1 dims dropped and runs of kept or reduced
 * dims merged, so groups alternate between kept and reduced. */
typedef struct red_plan {
    int n_groups;
    size_t size[ENG_MAX_RANK];
    bool is_reduced[ENG_MAX_RANK];
    size_t out_stride[ENG_MAX_RANK]; /* 0 for reduced groups */
    size_t in_count, out_count, reduce_count;
    /* The walk: blocks of `rows` x `width` contiguous elements (the last
     * two groups) over the outer groups [0, n_outer).  When last_reduced
     * the rows are a kept group (row kernel, one output per row), else
     * they are reduced (column kernel, one output per column). */
    bool last_reduced;
    int n_outer;
    size_t rows, width;
} red_plan;

static void plan_build(red_plan *p, const int64_t *shape, uint32_t rank, const bool *is_reduced)
{
    memset(p, 0, sizeof *p);
    p->in_count = p->out_count = p->reduce_count = 1;
    for (uint32_t d = 0; d < rank; d++) {
        size_t s = (size_t)shape[d];
        p->in_count *= s;
        if (is_reduced[d])
            p->reduce_count *= s;
        else
            p->out_count *= s;
        if (s == 1)
            continue;
        int g = p->n_groups;
        if (g > 0 && p->is_reduced[g - 1] == is_reduced[d]) {
            p->size[g - 1] *= s;
        } else {
            p->size[g] = s;
            p->is_reduced[g] = is_reduced[d];
            p->n_groups++;
        }
    }
    if (p->n_groups == 0) { /* a single element */
        p->n_groups = 1;
        p->size[0] = 1;
        p->is_reduced[0] = true;
    }
    size_t acc = 1;
    for (int g = p->n_groups - 1; g >= 0; g--) {
        p->out_stride[g] = p->is_reduced[g] ? 0 : acc;
        if (!p->is_reduced[g])
            acc *= p->size[g];
    }
    int n = p->n_groups;
    p->last_reduced = p->is_reduced[n - 1];
    p->n_outer = n >= 2 ? n - 2 : 0;
    p->rows = n >= 2 ? p->size[n - 2] : 1;
    p->width = p->size[n - 1];
}

typedef struct red_job {
    const red_plan *plan;
    red_fns fns;
    const char *x;
    char *acc;
    const char *ref; /* per-output values for A_EXPSUB, else NULL */
    size_t elem_bytes;
} red_job;

/* How the walk may be split between threads: over group 0 when it is a
 * kept outer group (its output ranges are disjoint), else over the rows
 * or columns of a single block when those are the kept ones. */
static size_t split_extent(const red_plan *p, bool *can_split)
{
    if (p->n_outer >= 1) {
        *can_split = !p->is_reduced[0];
        return p->size[0];
    }
    if (p->last_reduced) {
        *can_split = p->n_groups >= 2;
        return p->rows;
    }
    *can_split = true;
    return p->width;
}

/* Walks the part [begin, end) of the split extent. */
static void walk(const red_job *j, size_t begin, size_t end)
{
    const red_plan *p = j->plan;
    size_t es = j->elem_bytes;
    if (p->n_outer == 0) {
        if (p->last_reduced)
            j->fns.row(j->x + begin * p->width * es, end - begin, p->width, j->acc + begin * es,
                       j->ref ? j->ref + begin * es : NULL);
        else
            j->fns.col(j->x + begin * es, p->rows, end - begin, p->width, j->acc + begin * es,
                       j->ref ? j->ref + begin * es : NULL);
        return;
    }
    int m = p->n_outer;
    size_t block = p->rows * p->width;
    size_t blocks_per_g0 = 1;
    for (int g = 1; g < m; g++)
        blocks_per_g0 *= p->size[g];
    size_t idx[ENG_MAX_RANK] = { 0 };
    idx[0] = begin;
    size_t n_blocks = (end - begin) * blocks_per_g0;
    size_t in_off = begin * blocks_per_g0 * block;
    size_t out_off = begin * p->out_stride[0];
    for (size_t t = 0; t < n_blocks; t++) {
        const char *xb = j->x + in_off * es;
        char *ab = j->acc + out_off * es;
        const char *rb = j->ref ? j->ref + out_off * es : NULL;
        if (p->last_reduced)
            j->fns.row(xb, p->rows, p->width, ab, rb);
        else
            j->fns.col(xb, p->rows, p->width, p->width, ab, rb);
        in_off += block;
        for (int d = m - 1; d >= 0; d--) {
            idx[d]++;
            out_off += p->out_stride[d];
            if (idx[d] < p->size[d])
                break;
            out_off -= p->out_stride[d] * idx[d];
            idx[d] = 0;
        }
    }
}

static void walk_range(void *ctx, size_t begin, size_t end)
{
    walk(ctx, begin, end);
}

/* Below this many input elements a reduction runs on the caller only. */
#define PARALLEL_MIN_ELEMS ((size_t)1 << 15)
#define TASK_MIN_ELEMS ((size_t)1 << 13)

static void run_walk(const red_plan *p, const red_fns *fns, acc_kind kind, const void *x, void *acc,
                     const void *ref, size_t es, st_pool *pool)
{
    red_job job = { p, fns[kind], x, acc, ref, es };
    bool can_split;
    size_t extent = split_extent(p, &can_split);
    if (pool && st_pool_size(pool) > 1 && can_split && extent > 1 && p->in_count >= PARALLEL_MIN_ELEMS) {
        size_t per_item = p->in_count / extent;
        size_t grain = per_item >= TASK_MIN_ELEMS ? 1 : TASK_MIN_ELEMS / (per_item ? per_item : 1);
        st_pool_parallel_for(pool, extent, grain, walk_range, &job);
    } else {
        walk(&job, 0, extent);
    }
}

/* --- finishing ------------------------------------------------------------ */

static acc_kind acc_of(eng_reduce_op op)
{
    switch (op) {
    case ENG_REDUCE_MAX: return A_MAX;
    case ENG_REDUCE_MIN: return A_MIN;
    case ENG_REDUCE_PROD: return A_PROD;
    case ENG_REDUCE_L1: return A_ABS;
    case ENG_REDUCE_L2:
    case ENG_REDUCE_SUM_SQUARE: return A_SQ;
    case ENG_REDUCE_LOG_SUM_EXP: return A_EXPSUB;
    default: return A_SUM;
    }
}

/* Stores v into element i of an integer tensor, saturating (NaN gives 0)
 * so that a log of zero never becomes an undefined conversion. */
static void store_int(void *data, size_t i, st_dtype t, double v)
{
#define SAT(T, LO, HI) ((T)(v != v ? 0 : v <= (double)(LO) ? (LO) : v >= (double)(HI) ? (HI) : (T)v))
    switch (t) {
    case ST_DT_INT32: ((int32_t *)data)[i] = SAT(int32_t, INT32_MIN, INT32_MAX); break;
    case ST_DT_INT64: ((int64_t *)data)[i] = SAT(int64_t, INT64_MIN, INT64_MAX); break;
    case ST_DT_UINT32: ((uint32_t *)data)[i] = SAT(uint32_t, 0, UINT32_MAX); break;
    case ST_DT_UINT64: ((uint64_t *)data)[i] = SAT(uint64_t, 0, UINT64_MAX); break;
    case ST_DT_INT8: ((int8_t *)data)[i] = SAT(int8_t, INT8_MIN, INT8_MAX); break;
    case ST_DT_UINT8: ((uint8_t *)data)[i] = SAT(uint8_t, 0, UINT8_MAX); break;
    default: break;
    }
#undef SAT
}

/* Turns accumulators into results: divides for Mean, roots and logs. */
static void finish(eng_reduce_op op, st_dtype t, void *acc, const void *ref, size_t n, size_t reduce_count)
{
    if (op != ENG_REDUCE_MEAN && op != ENG_REDUCE_L2 && op != ENG_REDUCE_LOG_SUM && op != ENG_REDUCE_LOG_SUM_EXP)
        return;
    if (t == ST_DT_FLOAT32) {
        float *a = acc;
        const float *r = ref;
        float count = (float)reduce_count;
        switch (op) {
        case ENG_REDUCE_MEAN: for (size_t i = 0; i < n; i++) a[i] /= count; break;
        case ENG_REDUCE_L2: for (size_t i = 0; i < n; i++) a[i] = sqrtf(a[i]); break;
        case ENG_REDUCE_LOG_SUM: for (size_t i = 0; i < n; i++) a[i] = logf(a[i]); break;
        default: for (size_t i = 0; i < n; i++) a[i] = logf(a[i]) + r[i]; break;
        }
        return;
    }
    if (t == ST_DT_FLOAT64) {
        double *a = acc;
        const double *r = ref;
        double count = (double)reduce_count;
        switch (op) {
        case ENG_REDUCE_MEAN: for (size_t i = 0; i < n; i++) a[i] /= count; break;
        case ENG_REDUCE_L2: for (size_t i = 0; i < n; i++) a[i] = sqrt(a[i]); break;
        case ENG_REDUCE_LOG_SUM: for (size_t i = 0; i < n; i++) a[i] = log(a[i]); break;
        default: for (size_t i = 0; i < n; i++) a[i] = log(a[i]) + r[i]; break;
        }
        return;
    }
    /* Integers (LogSumExp never gets here): an integer Mean truncates,
     * as the integer division of ONNX Runtime does. */
    eng_tensor view = eng_tensor_make(t, NULL, 0, acc);
    for (size_t i = 0; i < n; i++) {
        double v;
        if (op == ENG_REDUCE_MEAN) {
            if (t == ST_DT_UINT64) {
                uint64_t s = ((uint64_t *)acc)[i];
                ((uint64_t *)acc)[i] = reduce_count ? s / reduce_count : 0;
                continue;
            }
            if (t == ST_DT_INT64) {
                int64_t s = ((int64_t *)acc)[i];
                ((int64_t *)acc)[i] = reduce_count ? s / (int64_t)reduce_count : 0;
                continue;
            }
            v = reduce_count ? trunc(eng_num_at(&view, i) / (double)reduce_count) : 0;
        } else if (op == ENG_REDUCE_L2) {
            v = sqrt(eng_num_at(&view, i));
        } else {
            v = log(eng_num_at(&view, i));
        }
        store_int(acc, i, t, v);
    }
}

bool eng_reduce_supports(eng_reduce_op op, st_dtype t)
{
    (void)op;
    fill_fn fill;
    return t == ST_DT_FLOAT16 || fns_for(t, &fill) != NULL;
}

/* Reduces a float16 input through float32, and an integer LogSumExp
 * through float64: convert, reduce, convert back. */
static st_status reduce_converted(eng_reduce_op op, const eng_tensor *x, const bool *is_reduced, eng_tensor *out,
                                  st_arena *scratch, st_pool *pool)
{
    st_dtype wide = x->dtype == ST_DT_FLOAT16 ? ST_DT_FLOAT32 : ST_DT_FLOAT64;
    size_t es = st_dtype_size(wide);
    eng_tensor wx = *x, wo = *out;
    wx.dtype = wo.dtype = wide;
    wx.data = st_arena_alloc(scratch, x->count * es + 1, 64);
    wo.data = st_arena_alloc(scratch, out->count * es + 1, 64);
    if (!wx.data || !wo.data)
        return ST_ENOMEM;
    if (wide == ST_DT_FLOAT32) {
        const uint16_t *h = x->data;
        float *f = wx.data;
        for (size_t i = 0; i < x->count; i++)
            f[i] = st_half_to_float(h[i]);
    } else {
        double *d = wx.data;
        for (size_t i = 0; i < x->count; i++)
            d[i] = eng_num_at(x, i);
    }
    st_status s = eng_reduce(op, &wx, is_reduced, &wo, scratch, pool);
    if (s != ST_OK)
        return s;
    if (wide == ST_DT_FLOAT32) {
        const float *f = wo.data;
        uint16_t *h = out->data;
        for (size_t i = 0; i < out->count; i++)
            h[i] = st_float_to_half(f[i]);
    } else {
        const double *d = wo.data;
        for (size_t i = 0; i < out->count; i++)
            store_int(out->data, i, out->dtype, d[i]);
    }
    return ST_OK;
}

st_status eng_reduce(eng_reduce_op op, const eng_tensor *x, const bool *is_reduced, eng_tensor *out,
                     st_arena *scratch, st_pool *pool)
{
    st_dtype t = x->dtype;
    fill_fn fill;
    const red_fns *fns = fns_for(t, &fill);
    bool is_float = t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64;
    if (t == ST_DT_FLOAT16 || (fns && !is_float && op == ENG_REDUCE_LOG_SUM_EXP))
        return reduce_converted(op, x, is_reduced, out, scratch, pool);
    if (!fns)
        return ST_EUNSUPPORTED;
    red_plan plan;
    plan_build(&plan, x->shape, x->rank, is_reduced);
    size_t es = st_dtype_size(t);
    acc_kind kind = acc_of(op);
    if (plan.out_count == 0)
        return ST_OK;
    void *ref = NULL;
    if (kind == A_EXPSUB) {
        /* log(sum(exp(x))) = m + log(sum(exp(x - m))) with m the max, so
         * large inputs do not overflow; a non-finite max is left out. */
        ref = st_arena_alloc(scratch, plan.out_count * es, 64);
        if (!ref)
            return ST_ENOMEM;
        fill(ref, plan.out_count, A_MAX);
        if (plan.in_count)
            run_walk(&plan, fns, A_MAX, x->data, ref, NULL, es, pool);
        for (size_t i = 0; i < plan.out_count; i++) {
            if (t == ST_DT_FLOAT32 && !isfinite(((float *)ref)[i]))
                ((float *)ref)[i] = 0;
            else if (t == ST_DT_FLOAT64 && !isfinite(((double *)ref)[i]))
                ((double *)ref)[i] = 0;
        }
    }
    fill(out->data, plan.out_count, kind);
    if (plan.in_count)
        run_walk(&plan, fns, kind, x->data, out->data, ref, es, pool);
    finish(op, t, out->data, ref, plan.out_count, plan.reduce_count);
    return ST_OK;
}

/* --- Reduce* operators ------------------------------------------------------ */

typedef struct reduce_state {
    eng_reduce_op op;
    bool keepdims;
} reduce_state;

/* ReduceSum took its axes as an input from opset 13, the others from 18. */
static bool axes_from_input(const eng_kctx *k)
{
    const reduce_state *st = k->node->state;
    return k->node->opset >= 18 || (st->op == ENG_REDUCE_SUM && k->node->opset >= 13);
}

/* Marks the reduced axes; *is_noop when the node copies its input (empty
 * axes input with noop_with_empty_axes).  Empty axes reduce everything. */
static st_status reduce_axes(const eng_kctx *k, bool *is_reduced, bool *is_noop)
{
    const eng_tensor *x = k->in[0];
    const int64_t *axes = NULL;
    size_t n = 0;
    bool from_input = axes_from_input(k);
    if (from_input) {
        const eng_tensor *a = k->n_in > 1 ? k->in[1] : NULL;
        if (a) {
            if (a->dtype != ST_DT_INT64 || a->rank > 1)
                return eng_fail(k, ST_EINVAL, "axes must be a 1-D int64 tensor, got %s of rank %u",
                                st_dtype_name(a->dtype), a->rank);
            axes = a->data;
            n = a->count;
        }
    } else {
        axes = eng_attr_ints(k->node, "axes", &n);
    }
    *is_noop = false;
    if (n == 0) {
        *is_noop = from_input && eng_attr_int(k->node, "noop_with_empty_axes", 0) != 0;
        for (uint32_t d = 0; d < x->rank; d++)
            is_reduced[d] = !*is_noop;
        return ST_OK;
    }
    memset(is_reduced, 0, sizeof(bool) * ENG_MAX_RANK);
    for (size_t i = 0; i < n; i++) {
        int ax;
        st_status s = eng_axis(k, axes[i], (int)x->rank, &ax);
        if (s != ST_OK)
            return s;
        is_reduced[ax] = true;
    }
    return ST_OK;
}

static st_status reduce_infer(eng_kctx *k)
{
    const reduce_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the data input is required");
    if (!eng_reduce_supports(st->op, x->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported", st_dtype_name(x->dtype));
    bool is_reduced[ENG_MAX_RANK], is_noop;
    st_status s = reduce_axes(k, is_reduced, &is_noop);
    if (s != ST_OK)
        return s;
    if (is_noop) {
        eng_set_shape(k->out[0], x->dtype, x->shape, x->rank);
        return ST_OK;
    }
    int64_t shape[ENG_MAX_RANK];
    uint32_t r = 0;
    for (uint32_t d = 0; d < x->rank; d++) {
        if (!is_reduced[d])
            shape[r++] = x->shape[d];
        else if (st->keepdims)
            shape[r++] = 1;
    }
    eng_set_shape(k->out[0], x->dtype, shape, r);
    return ST_OK;
}

static st_status reduce_run(eng_kctx *k)
{
    const reduce_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    bool is_reduced[ENG_MAX_RANK], is_noop;
    st_status s = reduce_axes(k, is_reduced, &is_noop);
    if (s != ST_OK)
        return s;
    if (is_noop) {
        if (x->count)
            memcpy(k->out[0]->data, x->data, x->count * st_dtype_size(x->dtype));
        return ST_OK;
    }
    s = eng_reduce(st->op, x, is_reduced, k->out[0], k->scratch, k->pool);
    if (s == ST_ENOMEM)
        return eng_fail(k, s, "out of scratch memory");
    if (s != ST_OK)
        return eng_fail(k, s, "type %s is not supported", st_dtype_name(x->dtype));
    return ST_OK;
}

static st_status reduce_check(eng_node *n, st_arena *arena, st_error *err, eng_reduce_op op)
{
    reduce_state *st = st_arena_alloc(arena, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->op = op;
    st->keepdims = eng_attr_int(n, "keepdims", 1) != 0;
    n->state = st;
    if (n->n_inputs < 1)
        return st_fail(err, ST_ECORRUPT, "takes the data input, has none");
    return ST_OK;
}

#define REDUCE_OP(NAME, OP)                                                     \
    static st_status check_##NAME(eng_node *n, st_arena *arena, st_error *err) \
    {                                                                           \
        return reduce_check(n, arena, err, OP);                                 \
    }
REDUCE_OP(sum, ENG_REDUCE_SUM)
REDUCE_OP(mean, ENG_REDUCE_MEAN)
REDUCE_OP(max, ENG_REDUCE_MAX)
REDUCE_OP(min, ENG_REDUCE_MIN)
REDUCE_OP(prod, ENG_REDUCE_PROD)
REDUCE_OP(l1, ENG_REDUCE_L1)
REDUCE_OP(l2, ENG_REDUCE_L2)
REDUCE_OP(log_sum, ENG_REDUCE_LOG_SUM)
REDUCE_OP(log_sum_exp, ENG_REDUCE_LOG_SUM_EXP)
REDUCE_OP(sum_square, ENG_REDUCE_SUM_SQUARE)

/* --- losses ------------------------------------------------------------------ */

typedef enum { LOSS_NONE, LOSS_SUM, LOSS_MEAN } loss_reduction;

typedef struct loss_state {
    loss_reduction reduction;
    bool has_ignore;
    int64_t ignore_index;
} loss_state;

static st_status loss_check(eng_node *n, st_arena *arena, st_error *err)
{
    loss_state *st = st_arena_alloc(arena, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_str r = eng_attr_str(n, "reduction", "mean");
    if (st_str_eq_c(r, "none"))
        st->reduction = LOSS_NONE;
    else if (st_str_eq_c(r, "sum"))
        st->reduction = LOSS_SUM;
    else if (st_str_eq_c(r, "mean"))
        st->reduction = LOSS_MEAN;
    else
        return st_fail(err, ST_EINVAL, "reduction '%.*s' is not one of none, sum, mean",
                       (int)(r.len > 40 ? 40 : r.len), r.ptr);
    st->has_ignore = eng_attr_has(n, "ignore_index");
    st->ignore_index = eng_attr_int(n, "ignore_index", 0);
    n->state = st;
    if (n->n_inputs < 2)
        return st_fail(err, ST_ECORRUPT, "takes scores and a target, has %u inputs", n->n_inputs);
    return ST_OK;
}

static bool is_float_type(st_dtype t)
{
    return t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64 || t == ST_DT_FLOAT16;
}

static void store_float(eng_tensor *t, size_t i, double v)
{
    switch (t->dtype) {
    case ST_DT_FLOAT32: ((float *)t->data)[i] = (float)v; break;
    case ST_DT_FLOAT64: ((double *)t->data)[i] = v; break;
    case ST_DT_FLOAT16: ((uint16_t *)t->data)[i] = st_float_to_half((float)v); break;
    default: break;
    }
}

/* Checks scores (N, C, d1..dk), target (N, d1..dk) and the optional
 * weight (C), and sets the loss output's shape. */
static st_status loss_infer_common(eng_kctx *k)
{
    const loss_state *st = k->node->state;
    const eng_tensor *x = k->in[0], *target = k->in[1];
    const eng_tensor *w = k->n_in > 2 ? k->in[2] : NULL;
    if (!x || !target)
        return eng_fail(k, ST_EINVAL, "the scores and target inputs are required");
    if (!is_float_type(x->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "scores of type %s are not supported", st_dtype_name(x->dtype));
    if (target->dtype != ST_DT_INT32 && target->dtype != ST_DT_INT64)
        return eng_fail(k, ST_ETYPE, "the target must be int32 or int64, got %s", st_dtype_name(target->dtype));
    if (x->rank < 2)
        return eng_fail(k, ST_ESHAPE, "scores must have shape (N, C, d1, ...), got rank %u", x->rank);
    if (target->rank != x->rank - 1)
        return eng_fail(k, ST_ESHAPE, "the target must have rank %u (N, d1, ...), got %u", x->rank - 1,
                        target->rank);
    for (uint32_t d = 0; d < target->rank; d++) {
        int64_t want = x->shape[d == 0 ? 0 : d + 1];
        if (target->shape[d] != want)
            return eng_fail(k, ST_ESHAPE, "target dimension %u is %lld, expected %lld from the scores", d,
                            (long long)target->shape[d], (long long)want);
    }
    if (w && (w->dtype != x->dtype || w->rank != 1 || w->shape[0] != x->shape[1]))
        return eng_fail(k, ST_ESHAPE, "the weight must be a 1-D %s tensor of C=%lld values",
                        st_dtype_name(x->dtype), (long long)x->shape[1]);
    if (st->reduction == LOSS_NONE)
        eng_set_shape(k->out[0], x->dtype, target->shape, target->rank);
    else
        eng_set_shape(k->out[0], x->dtype, NULL, 0);
    return ST_OK;
}

/* loss[n][d] = -logp[n][target][d] * weight[target] (0 for ignore_index),
 * then none / sum / mean (the mean divides by the sum of the weights used).
 * logp is (N, C, D) in double, or NULL to read the scores x directly. */
static st_status nll_compute(eng_kctx *k, const eng_tensor *x, const double *logp)
{
    const loss_state *st = k->node->state;
    const eng_tensor *target = k->in[1];
    const eng_tensor *w = k->n_in > 2 ? k->in[2] : NULL;
    eng_tensor *o = k->out[0];
    size_t n_batch = (size_t)x->shape[0], classes = (size_t)x->shape[1];
    size_t inner = n_batch && classes ? x->count / n_batch / classes : 0;
    double loss_sum = 0, weight_sum = 0;
    for (size_t nb = 0; nb < n_batch; nb++) {
        for (size_t d = 0; d < inner; d++) {
            size_t ti = nb * inner + d;
            int64_t c = eng_int_at(target, ti);
            double loss = 0, wt = 0;
            if (!(st->has_ignore && c == st->ignore_index)) {
                if (c < 0 || (size_t)c >= classes)
                    return eng_fail(k, ST_EINVAL, "target %lld at position %zu is outside [0, %zu)",
                                    (long long)c, ti, classes);
                size_t xi = (nb * classes + (size_t)c) * inner + d;
                wt = w ? eng_num_at(w, (size_t)c) : 1.0;
                loss = -(logp ? logp[xi] : eng_num_at(x, xi)) * wt;
            }
            loss_sum += loss;
            weight_sum += wt;
            if (st->reduction == LOSS_NONE)
                store_float(o, ti, loss);
        }
    }
    if (st->reduction == LOSS_SUM)
        store_float(o, 0, loss_sum);
    else if (st->reduction == LOSS_MEAN)
        store_float(o, 0, loss_sum / weight_sum); /* all ignored: 0/0, NaN as in the reference */
    return ST_OK;
}

static st_status nll_run(eng_kctx *k)
{
    return nll_compute(k, k->in[0], NULL);
}

static st_status sce_infer(eng_kctx *k)
{
    st_status s = loss_infer_common(k);
    if (s == ST_OK && k->n_out > 1 && k->out[1])
        eng_set_shape(k->out[1], k->in[0]->dtype, k->in[0]->shape, k->in[0]->rank);
    return s;
}

/* log_softmax over axis 1 in double, then the NLL of it. */
static st_status sce_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    size_t n_batch = (size_t)x->shape[0], classes = (size_t)x->shape[1];
    size_t inner = n_batch && classes ? x->count / n_batch / classes : 0;
    double *logp = st_arena_alloc(k->scratch, (x->count + 1) * sizeof *logp, 64);
    double *mx = st_arena_alloc(k->scratch, (inner + 1) * sizeof *mx, 64);
    double *sum = st_arena_alloc(k->scratch, (inner + 1) * sizeof *sum, 64);
    if (!logp || !mx || !sum)
        return eng_fail(k, ST_ENOMEM, "out of scratch memory");
    for (size_t i = 0; i < x->count; i++)
        logp[i] = eng_num_at(x, i);
    for (size_t nb = 0; nb < n_batch; nb++) {
        double *xb = logp + nb * classes * inner;
        for (size_t d = 0; d < inner; d++) {
            mx[d] = -INFINITY;
            sum[d] = 0;
        }
        for (size_t c = 0; c < classes; c++)
            for (size_t d = 0; d < inner; d++)
                mx[d] = xb[c * inner + d] > mx[d] ? xb[c * inner + d] : mx[d];
        for (size_t c = 0; c < classes; c++)
            for (size_t d = 0; d < inner; d++)
                sum[d] += exp(xb[c * inner + d] - mx[d]);
        for (size_t d = 0; d < inner; d++)
            sum[d] = mx[d] + log(sum[d]);
        for (size_t c = 0; c < classes; c++)
            for (size_t d = 0; d < inner; d++)
                xb[c * inner + d] -= sum[d];
    }
    if (k->n_out > 1 && k->out[1])
        for (size_t i = 0; i < x->count; i++)
            store_float(k->out[1], i, logp[i]);
    return nll_compute(k, x, logp);
}

const eng_op eng_ops_reduce[] = {
    { "", "ReduceSum", 1, check_sum, reduce_infer, reduce_run },
    { "", "ReduceMean", 1, check_mean, reduce_infer, reduce_run },
    { "", "ReduceMax", 1, check_max, reduce_infer, reduce_run },
    { "", "ReduceMin", 1, check_min, reduce_infer, reduce_run },
    { "", "ReduceProd", 1, check_prod, reduce_infer, reduce_run },
    { "", "ReduceL1", 1, check_l1, reduce_infer, reduce_run },
    { "", "ReduceL2", 1, check_l2, reduce_infer, reduce_run },
    { "", "ReduceLogSum", 1, check_log_sum, reduce_infer, reduce_run },
    { "", "ReduceLogSumExp", 1, check_log_sum_exp, reduce_infer, reduce_run },
    { "", "ReduceSumSquare", 1, check_sum_square, reduce_infer, reduce_run },
    { "", "NegativeLogLikelihoodLoss", 12, loss_check, loss_infer_common, nll_run },
    { "", "SoftmaxCrossEntropyLoss", 12, loss_check, sce_infer, sce_run },
    { 0 },
};
