/* tensor_sort.c - operators that order or scan values along an axis:
 * TopK (a bounded heap per slice, ties to the lower index), ArgMax and
 * ArgMin, CumSum, Unique and NonZero.  NaN orders above every number and
 * equal to itself, as numpy sorts it, so the orders stay total. */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "engine/ops/tensor_int.h"

/* Splits x around `axis` into outer x n x inner. */
static void axis_split(const eng_tensor *x, int axis, size_t *outer, size_t *n, size_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= (size_t)x->shape[d];
    for (uint32_t d = (uint32_t)axis + 1; d < x->rank; d++)
        *inner *= (size_t)x->shape[d];
    *n = (size_t)x->shape[axis];
}

static bool is_sortable(st_dtype t)
{
    switch (t) {
    case ST_DT_FLOAT32: case ST_DT_FLOAT64: case ST_DT_FLOAT16:
    case ST_DT_INT8: case ST_DT_INT16: case ST_DT_INT32: case ST_DT_INT64:
    case ST_DT_UINT8: case ST_DT_UINT16: case ST_DT_UINT32: case ST_DT_UINT64:
        return true;
    default:
        return false;
    }
}

#define NO_NAN(x) 0
#define F_NAN(x) isnan(x)

/* The numeric types with their NaN test; float16 is widened to float. */
#define SORT_TYPES(X) X(f32, float, F_NAN) X(f64, double, F_NAN) X(i8, int8_t, NO_NAN) \
    X(i16, int16_t, NO_NAN) X(i32, int32_t, NO_NAN) X(i64, int64_t, NO_NAN) X(u8, uint8_t, NO_NAN) \
    X(u16, uint16_t, NO_NAN) X(u32, uint32_t, NO_NAN) X(u64, uint64_t, NO_NAN)

/* --- TopK -------------------------------------------------------------------- */

/* before(i, j): element i ranks ahead of element j in the output. */
#define DEF_TOPK(S, T, ISNAN)                                                                   \
    static inline bool before_##S(const T *v, int64_t i, int64_t j, bool largest)               \
    {                                                                                           \
        T a = v[i], b = v[j];                                                                   \
        bool na = ISNAN(a), nb = ISNAN(b);                                                      \
        if (na || nb) {                                                                         \
            if (na && nb)                                                                       \
                return i < j;                                                                   \
            return largest ? na : nb;                                                           \
        }                                                                                       \
        if (a == b)                                                                             \
            return i < j;                                                                       \
        return largest ? a > b : a < b;                                                         \
    }                                                                                           \
    static void sift_##S(const T *v, int64_t *heap, size_t at, size_t size, bool largest)       \
    {                                                                                           \
        for (;;) {                                                                              \
            size_t worst = at, l = 2 * at + 1, r = l + 1;                                       \
            if (l < size && before_##S(v, heap[worst], heap[l], largest))                       \
                worst = l;                                                                      \
            if (r < size && before_##S(v, heap[worst], heap[r], largest))                       \
                worst = r;                                                                      \
            if (worst == at)                                                                    \
                return;                                                                         \
            int64_t t = heap[at];                                                               \
            heap[at] = heap[worst];                                                             \
            heap[worst] = t;                                                                    \
            at = worst;                                                                         \
        }                                                                                       \
    }                                                                                           \
    /* The k best of v[0..n) into heap[0..k), best first.  The heap keeps its \
     * worst member at the root, so each new element costs O(log k). */      \
    static void topk_##S(const void *vv, size_t n, size_t k, bool largest, int64_t *heap)      \
    {                                                                                           \
        const T *v = vv;                                                                        \
        size_t size = 0;                                                                        \
        for (size_t e = 0; e < n; e++) {                                                        \
            if (size < k) {                                                                     \
                size_t c = size++;                                                              \
                heap[c] = (int64_t)e;                                                           \
                while (c > 0) {                                                                 \
                    size_t p = (c - 1) / 2;                                                     \
                    if (!before_##S(v, heap[p], heap[c], largest))                              \
                        break;                                                                  \
                    int64_t t = heap[p];                                                        \
                    heap[p] = heap[c];                                                          \
                    heap[c] = t;                                                                \
                    c = p;                                                                      \
                }                                                                               \
            } else if (k && before_##S(v, (int64_t)e, heap[0], largest)) {                      \
                heap[0] = (int64_t)e;                                                           \
                sift_##S(v, heap, 0, size, largest);                                            \
            }                                                                                   \
        }                                                                                       \
        for (size_t end = size; end > 1; end--) {                                               \
            int64_t t = heap[0];                                                                \
            heap[0] = heap[end - 1];                                                            \
            heap[end - 1] = t;                                                                  \
            sift_##S(v, heap, 0, end - 1, largest);                                             \
        }                                                                                       \
    }
SORT_TYPES(DEF_TOPK)

typedef void (*topk_fn)(const void *v, size_t n, size_t k, bool largest, int64_t *heap);

static topk_fn pick_topk(st_dtype t)
{
    switch (t) {
    case ST_DT_FLOAT32: case ST_DT_FLOAT16: return topk_f32;
    case ST_DT_FLOAT64: return topk_f64;
    case ST_DT_INT8: return topk_i8;
    case ST_DT_INT16: return topk_i16;
    case ST_DT_INT32: return topk_i32;
    case ST_DT_INT64: return topk_i64;
    case ST_DT_UINT8: return topk_u8;
    case ST_DT_UINT16: return topk_u16;
    case ST_DT_UINT32: return topk_u32;
    case ST_DT_UINT64: return topk_u64;
    default: return NULL;
    }
}

static st_status topk_args(const eng_kctx *k, int *axis, size_t *kk)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the X input is required");
    if (!is_sortable(x->dtype))
        return eng_fail(k, ST_ETYPE, "type %s is not supported", st_dtype_name(x->dtype));
    st_status s = eng_axis(k, eng_attr_int(k->node, "axis", -1), (int)x->rank, axis);
    if (s != ST_OK)
        return s;
    int64_t v;
    if (k->node->opset < 10) {
        if (!eng_attr_has(k->node, "k"))
            return eng_fail(k, ST_EINVAL, "the k attribute is required");
        v = eng_attr_int(k->node, "k", 0);
    } else if ((s = tensor_read_scalar_int(k, k->n_in > 1 ? k->in[1] : NULL, "K", &v)) != ST_OK) {
        return s;
    }
    if (v < 0 || v > x->shape[*axis])
        return eng_fail(k, ST_EINVAL, "K is %lld, expected 0..%lld (the axis size)", (long long)v,
                        (long long)x->shape[*axis]);
    *kk = (size_t)v;
    return ST_OK;
}

st_status tensor_topk_infer(eng_kctx *k)
{
    int axis;
    size_t kk;
    st_status s = topk_args(k, &axis, &kk);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    int64_t shape[ENG_MAX_RANK];
    memcpy(shape, x->shape, x->rank * sizeof *shape);
    shape[axis] = (int64_t)kk;
    if (k->out[0])
        eng_set_shape(k->out[0], x->dtype, shape, x->rank);
    if (k->n_out > 1 && k->out[1])
        eng_set_shape(k->out[1], ST_DT_INT64, shape, x->rank);
    return ST_OK;
}

st_status tensor_topk_run(eng_kctx *k)
{
    int axis;
    size_t kk, outer, n, inner;
    st_status s = topk_args(k, &axis, &kk);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    eng_tensor *vals = k->out[0], *idxs = k->n_out > 1 ? k->out[1] : NULL;
    axis_split(x, axis, &outer, &n, &inner);
    if (kk == 0 || outer * inner == 0)
        return ST_OK;
    bool largest = eng_attr_int(k->node, "largest", 1) != 0;
    size_t es = tensor_esize(x->dtype);
    topk_fn fn = pick_topk(x->dtype);
    /* Each slice is made contiguous (float16 widened) before selection. */
    size_t key_es = x->dtype == ST_DT_FLOAT16 ? 4 : es;
    char *keys = st_arena_alloc(k->scratch, n * key_es, 64);
    int64_t *heap = st_arena_alloc(k->scratch, kk * sizeof *heap, 8);
    if (!keys || !heap)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    const char *src = x->data;
    for (size_t o = 0; o < outer; o++) {
        for (size_t i = 0; i < inner; i++) {
            const char *first = src + (o * n * inner + i) * es;
            if (x->dtype == ST_DT_FLOAT16) {
                for (size_t j = 0; j < n; j++)
                    ((float *)keys)[j] = st_half_to_float(((const uint16_t *)first)[j * inner]);
            } else {
                int64_t dim = (int64_t)n, stride = (int64_t)inner;
                tensor_copy_strided(keys, first, es, &dim, &stride, 1);
            }
            fn(keys, n, kk, largest, heap);
            for (size_t j = 0; j < kk; j++) {
                size_t out = (o * kk + j) * inner + i;
                if (vals)
                    memcpy((char *)vals->data + out * es, first + (size_t)heap[j] * inner * es, es);
                if (idxs)
                    ((int64_t *)idxs->data)[out] = heap[j];
            }
        }
    }
    return ST_OK;
}

/* --- ArgMax / ArgMin ------------------------------------------------------------- */

st_status tensor_arg_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the data input is required");
    if (!is_sortable(x->dtype))
        return eng_fail(k, ST_ETYPE, "type %s is not supported", st_dtype_name(x->dtype));
    int axis;
    st_status s = eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)x->rank, &axis);
    if (s != ST_OK)
        return s;
    if (x->shape[axis] == 0 && x->count == 0) {
        bool other_empty = false;
        for (uint32_t d = 0; d < x->rank; d++)
            other_empty |= (int)d != axis && x->shape[d] == 0;
        if (!other_empty)
            return eng_fail(k, ST_ESHAPE, "axis %d is empty: no %s", axis,
                            k->node->op->run == tensor_argmax_run ? "maximum" : "minimum");
    }
    bool keep = eng_attr_int(k->node, "keepdims", 1) != 0;
    int64_t shape[ENG_MAX_RANK];
    uint32_t r = 0;
    for (uint32_t d = 0; d < x->rank; d++) {
        if ((int)d == axis) {
            if (keep)
                shape[r++] = 1;
        } else {
            shape[r++] = x->shape[d];
        }
    }
    eng_set_shape(k->out[0], ST_DT_INT64, shape, r);
    return ST_OK;
}

/* Better(v, best): v replaces the current best.  `last` keeps the last of
 * equal values (select_last_index).  NaN is the maximum. */
#define DEF_ARG(S, T, ISNAN)                                                                         \
    static void arg_##S(const void *vx, int64_t *out, T *best, size_t outer, size_t n, size_t inner,  \
                        bool is_max, bool last)                                                      \
    {                                                                                                \
        const T *x = vx;                                                                             \
        for (size_t o = 0; o < outer; o++) {                                                         \
            const T *slab = x + o * n * inner;                                                       \
            int64_t *res = out + o * inner;                                                          \
            for (size_t i = 0; i < inner; i++) {                                                     \
                best[i] = slab[i];                                                                   \
                res[i] = 0;                                                                          \
            }                                                                                        \
            for (size_t j = 1; j < n; j++) {                                                         \
                const T *row = slab + j * inner;                                                     \
                for (size_t i = 0; i < inner; i++) {                                                 \
                    T v = row[i], b = best[i];                                                       \
                    bool nv = ISNAN(v), nb = ISNAN(b), better;                                       \
                    if (nv || nb)                                                                    \
                        better = is_max ? (nv && (!nb || last)) : (nb && (!nv || last));             \
                    else                                                                             \
                        better = is_max ? (last ? v >= b : v > b) : (last ? v <= b : v < b);         \
                    if (better) {                                                                    \
                        best[i] = v;                                                                 \
                        res[i] = (int64_t)j;                                                         \
                    }                                                                                \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
    }
SORT_TYPES(DEF_ARG)

static st_status arg_run(eng_kctx *k, bool is_max)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    if (o->count == 0)
        return ST_OK;
    int axis;
    eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)x->rank, &axis);
    bool last = eng_attr_int(k->node, "select_last_index", 0) != 0;
    size_t outer, n, inner;
    axis_split(x, axis, &outer, &n, &inner);
    void *best = st_arena_alloc(k->scratch, inner * 8, 64);
    if (!best)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    const void *data = x->data;
    if (x->dtype == ST_DT_FLOAT16) {
        float *wide = st_arena_alloc(k->scratch, x->count * sizeof(float), 64);
        if (!wide)
            return eng_fail(k, ST_ENOMEM, "out of memory");
        for (size_t i = 0; i < x->count; i++)
            wide[i] = st_half_to_float(((const uint16_t *)x->data)[i]);
        data = wide;
    }
    int64_t *res = o->data;
    switch (x->dtype) {
    case ST_DT_FLOAT32: case ST_DT_FLOAT16: arg_f32(data, res, best, outer, n, inner, is_max, last); break;
    case ST_DT_FLOAT64: arg_f64(data, res, best, outer, n, inner, is_max, last); break;
    case ST_DT_INT8: arg_i8(data, res, best, outer, n, inner, is_max, last); break;
    case ST_DT_INT16: arg_i16(data, res, best, outer, n, inner, is_max, last); break;
    case ST_DT_INT32: arg_i32(data, res, best, outer, n, inner, is_max, last); break;
    case ST_DT_INT64: arg_i64(data, res, best, outer, n, inner, is_max, last); break;
    case ST_DT_UINT8: arg_u8(data, res, best, outer, n, inner, is_max, last); break;
    case ST_DT_UINT16: arg_u16(data, res, best, outer, n, inner, is_max, last); break;
    case ST_DT_UINT32: arg_u32(data, res, best, outer, n, inner, is_max, last); break;
    default: arg_u64(data, res, best, outer, n, inner, is_max, last); break;
    }
    return ST_OK;
}

st_status tensor_argmax_run(eng_kctx *k)
{
    return arg_run(k, true);
}

st_status tensor_argmin_run(eng_kctx *k)
{
    return arg_run(k, false);
}

/* --- CumSum ---------------------------------------------------------------------------- */

static st_status cumsum_args(const eng_kctx *k, int *axis)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the x input is required");
    switch (x->dtype) {
    case ST_DT_FLOAT32: case ST_DT_FLOAT64: case ST_DT_FLOAT16: case ST_DT_INT32: case ST_DT_INT64:
    case ST_DT_UINT32: case ST_DT_UINT64:
        break;
    default:
        return eng_fail(k, ST_ETYPE, "type %s is not supported", st_dtype_name(x->dtype));
    }
    int64_t a;
    st_status s = tensor_read_scalar_int(k, k->n_in > 1 ? k->in[1] : NULL, "axis", &a);
    if (s != ST_OK)
        return s;
    if (x->rank == 0)
        return eng_fail(k, ST_ESHAPE, "x must have rank >= 1");
    return eng_axis(k, a, (int)x->rank, axis);
}

st_status tensor_cumsum_infer(eng_kctx *k)
{
    int axis;
    st_status s = cumsum_args(k, &axis);
    if (s != ST_OK)
        return s;
    return eng_infer_same_as_input(k);
}

/* Running sums along the middle dim of outer x n x inner, one row of
 * `inner` accumulators at a time (rows are contiguous, so this vectorises). */
#define DEF_CUMSUM(S, T, ACC, LOAD, STORE)                                                      \
    static void cumsum_##S(const void *vx, void *vo, ACC *acc, size_t outer, size_t n, size_t inner, \
                           bool exclusive, bool reverse)                                        \
    {                                                                                           \
        const T *x = vx;                                                                        \
        T *out = vo;                                                                            \
        for (size_t o = 0; o < outer; o++) {                                                    \
            for (size_t i = 0; i < inner; i++)                                                  \
                acc[i] = 0;                                                                     \
            for (size_t jj = 0; jj < n; jj++) {                                                 \
                size_t j = reverse ? n - 1 - jj : jj;                                           \
                const T *row = x + (o * n + j) * inner;                                         \
                T *dst = out + (o * n + j) * inner;                                             \
                if (exclusive) {                                                                \
                    for (size_t i = 0; i < inner; i++) {                                        \
                        dst[i] = STORE(acc[i]);                                                 \
                        acc[i] += LOAD(row[i]);                                                 \
                    }                                                                           \
                } else {                                                                        \
                    for (size_t i = 0; i < inner; i++) {                                        \
                        acc[i] += LOAD(row[i]);                                                 \
                        dst[i] = STORE(acc[i]);                                                 \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }
#define PLAIN(x) (x)
DEF_CUMSUM(f32, float, float, PLAIN, PLAIN)
DEF_CUMSUM(f64, double, double, PLAIN, PLAIN)
DEF_CUMSUM(u32, uint32_t, uint32_t, PLAIN, PLAIN)
DEF_CUMSUM(u64, uint64_t, uint64_t, PLAIN, PLAIN)
DEF_CUMSUM(f16, uint16_t, float, st_half_to_float, st_float_to_half)

st_status tensor_cumsum_run(eng_kctx *k)
{
    int axis;
    st_status s = cumsum_args(k, &axis);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    if (x->count == 0)
        return ST_OK;
    size_t outer, n, inner;
    axis_split(x, axis, &outer, &n, &inner);
    bool exclusive = eng_attr_int(k->node, "exclusive", 0) != 0, reverse = eng_attr_int(k->node, "reverse", 0) != 0;
    void *acc = st_arena_alloc(k->scratch, inner * 8, 64);
    if (!acc)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    void *o = k->out[0]->data;
    switch (x->dtype) {
    case ST_DT_FLOAT32: cumsum_f32(x->data, o, acc, outer, n, inner, exclusive, reverse); break;
    case ST_DT_FLOAT64: cumsum_f64(x->data, o, acc, outer, n, inner, exclusive, reverse); break;
    /* Integer sums wrap like the unsigned arithmetic they are done in. */
    case ST_DT_INT32: cumsum_u32(x->data, o, acc, outer, n, inner, exclusive, reverse); break;
    case ST_DT_INT64: cumsum_u64(x->data, o, acc, outer, n, inner, exclusive, reverse); break;
    case ST_DT_UINT32: cumsum_u32(x->data, o, acc, outer, n, inner, exclusive, reverse); break;
    case ST_DT_UINT64: cumsum_u64(x->data, o, acc, outer, n, inner, exclusive, reverse); break;
    default: cumsum_f16(x->data, o, acc, outer, n, inner, exclusive, reverse); break;
    }
    return ST_OK;
}

/* --- Unique --------------------------------------------------------------------------- */

/* Items compared by Unique: n items of len elements each, item j at
 * data + j * len elements (made contiguous when an axis is given). */
typedef struct unique_items {
    st_dtype dtype;
    const char *data;
    size_t len;
    size_t es;
} unique_items;

#define CMP_NUM(T, ISNAN)                                                         \
    do {                                                                          \
        const T *pa = (const T *)a, *pb = (const T *)b;                           \
        for (size_t i = 0; i < len; i++) {                                        \
            T x = pa[i], y = pb[i];                                               \
            bool nx = ISNAN(x), ny = ISNAN(y);                                    \
            if (nx || ny) {                                                       \
                if (nx != ny)                                                     \
                    return nx ? 1 : -1;                                           \
                continue;                                                         \
            }                                                                     \
            if (x != y)                                                           \
                return x < y ? -1 : 1;                                            \
        }                                                                         \
        return 0;                                                                 \
    } while (0)

/* Lexicographic comparison of two items of `len` elements. */
static int cmp_items(st_dtype t, const void *a, const void *b, size_t len)
{
    switch (t) {
    case ST_DT_FLOAT32: CMP_NUM(float, F_NAN);
    case ST_DT_FLOAT64: CMP_NUM(double, F_NAN);
    case ST_DT_INT8: CMP_NUM(int8_t, NO_NAN);
    case ST_DT_INT16: CMP_NUM(int16_t, NO_NAN);
    case ST_DT_INT32: CMP_NUM(int32_t, NO_NAN);
    case ST_DT_INT64: CMP_NUM(int64_t, NO_NAN);
    case ST_DT_UINT8: case ST_DT_BOOL: CMP_NUM(uint8_t, NO_NAN);
    case ST_DT_UINT16: CMP_NUM(uint16_t, NO_NAN);
    case ST_DT_UINT32: CMP_NUM(uint32_t, NO_NAN);
    case ST_DT_UINT64: CMP_NUM(uint64_t, NO_NAN);
    case ST_DT_FLOAT16:
        for (size_t i = 0; i < len; i++) {
            float x = st_half_to_float(((const uint16_t *)a)[i]), y = st_half_to_float(((const uint16_t *)b)[i]);
            bool nx = isnan(x), ny = isnan(y);
            if (nx || ny) {
                if (nx != ny)
                    return nx ? 1 : -1;
                continue;
            }
            if (x != y)
                return x < y ? -1 : 1;
        }
        return 0;
    case ST_DT_STRING:
        for (size_t i = 0; i < len; i++) {
            st_str x = ((const st_str *)a)[i], y = ((const st_str *)b)[i];
            size_t m = x.len < y.len ? x.len : y.len;
            int c = m ? memcmp(x.ptr, y.ptr, m) : 0;
            if (c)
                return c < 0 ? -1 : 1;
            if (x.len != y.len)
                return x.len < y.len ? -1 : 1;
        }
        return 0;
    default:
        return memcmp(a, b, len * st_dtype_size(t));
    }
}

static int cmp_at(const unique_items *it, int64_t i, int64_t j)
{
    return cmp_items(it->dtype, it->data + (size_t)i * it->len * it->es, it->data + (size_t)j * it->len * it->es,
                     it->len);
}

/* Stable bottom-up merge sort of perm[0..n) by item order. */
static void sort_items(const unique_items *it, int64_t *perm, int64_t *tmp, size_t n)
{
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                tmp[o++] = cmp_at(it, perm[b], perm[a]) < 0 ? perm[b++] : perm[a++];
            while (a < mid)
                tmp[o++] = perm[a++];
            while (b < hi)
                tmp[o++] = perm[b++];
        }
        memcpy(perm, tmp, n * sizeof *perm);
    }
}

typedef struct unique_result {
    int axis;          /* -1: flattened */
    size_t n;          /* items in X */
    size_t n_unique;
    int64_t *first;    /* [n_unique] index of each output item's first occurrence */
    int64_t *counts;   /* [n_unique] */
    int64_t *inverse;  /* [n] output position of each input item */
} unique_result;

static st_status unique_compute(const eng_kctx *k, unique_result *r)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the X input is required");
    if (!st_dtype_is_valid((int)x->dtype) || x->dtype == ST_DT_UNDEFINED)
        return eng_fail(k, ST_ETYPE, "type %s is not supported", st_dtype_name(x->dtype));
    size_t es = tensor_esize(x->dtype), outer = 1, inner = 1;
    unique_items it = { .dtype = x->dtype, .data = x->data, .len = 1, .es = es };
    r->axis = -1;
    r->n = x->count;
    if (eng_attr_has(k->node, "axis")) {
        st_status s = eng_axis(k, eng_attr_int(k->node, "axis", 0), (int)x->rank, &r->axis);
        if (s != ST_OK)
            return s;
        axis_split(x, r->axis, &outer, &r->n, &inner);
        it.len = outer * inner;
    }
    size_t n = r->n;
    int64_t *perm = st_arena_alloc(k->scratch, (3 * n + 1) * sizeof(int64_t), 8);
    int64_t *tmp = perm + n, *group_of_first = tmp + n;
    r->inverse = st_arena_alloc(k->scratch, (n + 1) * sizeof(int64_t), 8);
    if (!perm || !r->inverse)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    if (r->axis >= 0 && outer > 1 && n > 1) {
        /* Make each item (a slice across the axis) contiguous. */
        char *buf = st_arena_alloc(k->scratch, x->count * es, 64);
        if (!buf)
            return eng_fail(k, ST_ENOMEM, "out of memory");
        int64_t dims[3] = { (int64_t)n, (int64_t)outer, (int64_t)inner };
        int64_t stride[3] = { (int64_t)inner, (int64_t)(n * inner), 1 };
        tensor_copy_strided(buf, x->data, es, dims, stride, 3);
        it.data = buf;
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = (int64_t)i;
    sort_items(&it, perm, tmp, n);
    /* Runs of equal items; the stable sort puts each run's first
     * occurrence at its head.  group_of_first[i] = run of item i (-1 when
     * i is not a first occurrence); tmp[g] = first item of run g. */
    size_t groups = 0;
    for (size_t i = 0; i < n; i++)
        group_of_first[i] = -1;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || cmp_at(&it, perm[i - 1], perm[i]) != 0) {
            tmp[groups] = perm[i];
            group_of_first[perm[i]] = (int64_t)groups;
            groups++;
        }
        r->inverse[perm[i]] = (int64_t)groups - 1;
    }
    r->n_unique = groups;
    r->first = st_arena_alloc(k->scratch, (groups + 1) * sizeof(int64_t), 8);
    r->counts = st_arena_calloc(k->scratch, groups + 1, sizeof(int64_t), 8);
    int64_t *pos = st_arena_alloc(k->scratch, (groups + 1) * sizeof(int64_t), 8);
    if (!r->first || !r->counts || !pos)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    /* Output position of each run: sorted order, or order of first
     * occurrence (walking items in input order). */
    if (eng_attr_int(k->node, "sorted", 1)) {
        for (size_t g = 0; g < groups; g++)
            pos[g] = (int64_t)g;
    } else {
        size_t next = 0;
        for (size_t i = 0; i < n; i++)
            if (group_of_first[i] >= 0)
                pos[group_of_first[i]] = (int64_t)next++;
    }
    for (size_t g = 0; g < groups; g++)
        r->first[pos[g]] = tmp[g];
    for (size_t i = 0; i < n; i++) {
        r->inverse[i] = pos[r->inverse[i]];
        r->counts[r->inverse[i]]++;
    }
    return ST_OK;
}

st_status tensor_unique_infer(eng_kctx *k)
{
    unique_result r;
    st_status s = unique_compute(k, &r);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    int64_t u = (int64_t)r.n_unique, n = (int64_t)r.n;
    if (r.axis < 0) {
        eng_set_shape(k->out[0], x->dtype, &u, 1);
    } else {
        int64_t shape[ENG_MAX_RANK];
        memcpy(shape, x->shape, x->rank * sizeof *shape);
        shape[r.axis] = u;
        eng_set_shape(k->out[0], x->dtype, shape, x->rank);
    }
    if (k->n_out > 1 && k->out[1])
        eng_set_shape(k->out[1], ST_DT_INT64, &u, 1);
    if (k->n_out > 2 && k->out[2])
        eng_set_shape(k->out[2], ST_DT_INT64, &n, 1);
    if (k->n_out > 3 && k->out[3])
        eng_set_shape(k->out[3], ST_DT_INT64, &u, 1);
    return ST_OK;
}

st_status tensor_unique_run(eng_kctx *k)
{
    unique_result r;
    st_status s = unique_compute(k, &r);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    size_t es = tensor_esize(x->dtype), outer = 1, inner = 1, n = r.n, u = r.n_unique;
    if (r.axis >= 0)
        axis_split(x, r.axis, &outer, &n, &inner);
    if (k->out[0]) {
        char *dst = k->out[0]->data;
        size_t row = inner * es;
        for (size_t o = 0; o < outer; o++)
            for (size_t j = 0; j < u; j++, dst += row)
                memcpy(dst, (const char *)x->data + (o * n + (size_t)r.first[j]) * row, row);
    }
    if (k->n_out > 1 && k->out[1])
        memcpy(k->out[1]->data, r.first, u * sizeof(int64_t));
    if (k->n_out > 2 && k->out[2])
        memcpy(k->out[2]->data, r.inverse, n * sizeof(int64_t));
    if (k->n_out > 3 && k->out[3])
        memcpy(k->out[3]->data, r.counts, u * sizeof(int64_t));
    return ST_OK;
}

/* --- NonZero ----------------------------------------------------------------------------- */

static bool nonzero_at(const eng_tensor *x, size_t i)
{
    switch (x->dtype) {
    case ST_DT_FLOAT32: return ((const float *)x->data)[i] != 0;
    case ST_DT_FLOAT64: return ((const double *)x->data)[i] != 0;
    case ST_DT_FLOAT16: return (((const uint16_t *)x->data)[i] & 0x7fff) != 0;
    case ST_DT_STRING: return ((const st_str *)x->data)[i].len != 0;
    case ST_DT_INT16: case ST_DT_UINT16: return ((const uint16_t *)x->data)[i] != 0;
    case ST_DT_INT32: case ST_DT_UINT32: return ((const uint32_t *)x->data)[i] != 0;
    case ST_DT_INT64: case ST_DT_UINT64: return ((const uint64_t *)x->data)[i] != 0;
    default: return ((const uint8_t *)x->data)[i] != 0;
    }
}

st_status tensor_nonzero_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "the X input is required");
    if (!st_dtype_is_valid((int)x->dtype) || x->dtype == ST_DT_UNDEFINED)
        return eng_fail(k, ST_ETYPE, "type %s is not supported", st_dtype_name(x->dtype));
    int64_t shape[2] = { x->rank ? (int64_t)x->rank : 1, 0 };
    for (size_t i = 0; i < x->count; i++)
        shape[1] += nonzero_at(x, i);
    eng_set_shape(k->out[0], ST_DT_INT64, shape, 2);
    return ST_OK;
}

st_status tensor_nonzero_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    size_t nnz = (size_t)o->shape[1], c = 0;
    int64_t *out = o->data;
    if (x->rank == 0) {
        if (nnz)
            out[0] = 0; /* a scalar is indexed as a 1-element vector, as numpy does */
        return ST_OK;
    }
    int64_t idx[ENG_MAX_RANK] = { 0 };
    for (size_t i = 0; i < x->count; i++) {
        if (nonzero_at(x, i)) {
            for (uint32_t d = 0; d < x->rank; d++)
                out[d * nnz + c] = idx[d];
            c++;
        }
        for (int d = (int)x->rank - 1; d >= 0; d--) {
            if (++idx[d] < x->shape[d])
                break;
            idx[d] = 0;
        }
    }
    return ST_OK;
}
