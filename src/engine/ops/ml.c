/* ml.c - the ONNX-ML operator family (domain "ai.onnx.ml") other than the
 * tree ensembles: its table, and what its files share (post transforms,
 * class labels, numeric rows, sorted key tables).  The kernels are in
 * ml_linear.c (linear models, SVMs), ml_prep.c (feature preprocessing)
 * and ml_map.c (encoders and map values). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/ml_int.h"

/* --- post transforms ------------------------------------------------------- */

st_status ml_post_parse(const eng_node *n, ml_post *out, st_error *err)
{
    static const char *const names[] = { "NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT" };
    st_str s = eng_attr_str(n, "post_transform", "NONE");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (st_str_eq_c(s, names[i])) {
            *out = (ml_post)i;
            return ST_OK;
        }
    }
    return st_fail(err, ST_EINVAL, "post_transform '%.*s' is not NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO or PROBIT",
                   (int)(s.len > 40 ? 40 : s.len), s.ptr);
}

float ml_logistic(float x)
{
    float v = 1.0f / (1.0f + expf(-fabsf(x)));
    return x < 0 ? 1.0f - v : v;
}

/* The inverse error function as the ONNX-ML spec and ONNX Runtime
 * compute it (Winitzki's approximation, a = 0.147), so PROBIT scores
 * match theirs rather than an exact inverse. */
static float ml_erfinv(float x)
{
    float sgn = x < 0 ? -1.0f : 1.0f;
    x = (1 - x) * (1 + x);
    float lg = logf(x);
    float v = 2 / (3.14159f * 0.147f) + 0.5f * lg;
    float v2 = 1 / 0.147f * lg;
    return sgn * sqrtf(-v + sqrtf(v * v - v2));
}

void ml_post_row(ml_post p, float *s, size_t n)
{
    switch (p) {
    case ML_POST_NONE:
        break;
    case ML_POST_LOGISTIC:
        for (size_t i = 0; i < n; i++)
            s[i] = ml_logistic(s[i]);
        break;
    case ML_POST_PROBIT:
        for (size_t i = 0; i < n; i++)
            s[i] = 1.41421356f * ml_erfinv(2 * s[i] - 1);
        break;
    case ML_POST_SOFTMAX:
    case ML_POST_SOFTMAX_ZERO: {
        /* SOFTMAX_ZERO leaves exact zeros at (almost) zero: they are
         * scaled by exp(-max) rather than exponentiated. */
        float mx = -INFINITY;
        for (size_t i = 0; i < n; i++)
            mx = s[i] > mx ? s[i] : mx;
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            bool is_zero = p == ML_POST_SOFTMAX_ZERO && s[i] < 1e-7f && s[i] > -1e-7f;
            s[i] = is_zero ? s[i] * expf(-mx) : expf(s[i] - mx);
            if (!is_zero)
                sum += s[i];
        }
        for (size_t i = 0; i < n; i++)
            s[i] = (float)(s[i] / sum);
        break;
    }
    }
}

/* --- labels and attributes ----------------------------------------------------- */

const st_str *ml_attr_strings(const eng_node *n, const char *name, size_t *count)
{
    const onnx_attr *a = onnx_node_attr(n->proto, name);
    if (!a || a->type != ONNX_ATTR_STRINGS) {
        *count = 0;
        return NULL;
    }
    *count = a->string_count;
    return a->strings;
}

st_status ml_labels_get(const eng_node *n, const char *ints_name, const char *strs_name, ml_labels *out,
                        st_error *err)
{
    size_t n_ints, n_strs;
    memset(out, 0, sizeof *out);
    out->ints = eng_attr_ints(n, ints_name, &n_ints);
    out->strs = ml_attr_strings(n, strs_name, &n_strs);
    if (n_ints && n_strs)
        return st_fail(err, ST_EINVAL, "both %s and %s are set; give one", ints_name, strs_name);
    out->is_string = n_strs > 0;
    out->count = n_strs ? n_strs : n_ints;
    return ST_OK;
}

void ml_label_put(const ml_labels *l, size_t i, int64_t fallback_int, const char *fallback_str, eng_tensor *y,
                  size_t at)
{
    if (y->dtype == ST_DT_STRING)
        ((st_str *)y->data)[at] = i < l->count && l->strs ? l->strs[i] : st_str_c(fallback_str);
    else
        ((int64_t *)y->data)[at] = i < l->count && l->ints ? l->ints[i] : fallback_int;
}

/* --- numeric input --------------------------------------------------------------- */

bool ml_is_numeric(st_dtype t)
{
    return t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64 || t == ST_DT_INT64 || t == ST_DT_INT32;
}

st_status ml_matrix(const eng_kctx *k, const eng_tensor *x, const char *what, size_t *rows, size_t *cols)
{
    if (!x)
        return eng_fail(k, ST_EINVAL, "%s is missing", what);
    if (!ml_is_numeric(x->dtype))
        return eng_fail(k, ST_ETYPE, "%s must be float, double, int64 or int32, got %s", what,
                        st_dtype_name(x->dtype));
    if (x->rank == 1) {
        *rows = 1;
        *cols = (size_t)x->shape[0];
    } else if (x->rank == 2) {
        *rows = (size_t)x->shape[0];
        *cols = (size_t)x->shape[1];
    } else {
        return eng_fail(k, ST_ESHAPE, "%s must be [N, C] or [C], got rank %u", what, x->rank);
    }
    return ST_OK;
}

void ml_read(const eng_tensor *x, size_t off, size_t n, double *dst)
{
    switch (x->dtype) {
    case ST_DT_FLOAT32:
        for (size_t i = 0; i < n; i++)
            dst[i] = ((const float *)x->data)[off + i];
        break;
    case ST_DT_FLOAT64:
        memcpy(dst, (const double *)x->data + off, n * sizeof *dst);
        break;
    case ST_DT_INT64:
        for (size_t i = 0; i < n; i++)
            dst[i] = (double)((const int64_t *)x->data)[off + i];
        break;
    case ST_DT_INT32:
        for (size_t i = 0; i < n; i++)
            dst[i] = ((const int32_t *)x->data)[off + i];
        break;
    default:
        for (size_t i = 0; i < n; i++)
            dst[i] = eng_num_at(x, off + i);
        break;
    }
}

/* --- key tables ------------------------------------------------------------------- */

static int cmp_double(double a, double b)
{
    /* NaN sorts last and equals NaN, so NaN keys can be found. */
    bool an = isnan(a), bn = isnan(b);
    if (an || bn)
        return an == bn ? 0 : an ? 1 : -1;
    return a < b ? -1 : a > b ? 1 : 0;
}

static int cmp_str(st_str a, st_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

static int cmp_key(const ml_keys *t, size_t a, size_t b)
{
    switch (t->kind) {
    case ML_KEY_INT:
        return t->ints[a] < t->ints[b] ? -1 : t->ints[a] > t->ints[b];
    case ML_KEY_FLOAT:
        return cmp_double(t->floats[a], t->floats[b]);
    case ML_KEY_STRING:
        return cmp_str(t->strs[a], t->strs[b]);
    }
    return 0;
}

/* Insertion of each key into place is quadratic; a merge sort over an
 * index keeps load time n log n for big vocabularies and stays stable,
 * so repeated keys keep their file order. */
static void sort_index(const ml_keys *t, uint32_t *idx, uint32_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_index(t, idx, tmp, h);
    sort_index(t, idx + h, tmp, n - h);
    size_t i = 0, j = h, o = 0;
    while (i < h && j < n)
        tmp[o++] = cmp_key(t, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
    while (i < h)
        tmp[o++] = idx[i++];
    while (j < n)
        tmp[o++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

st_status ml_keys_build(ml_keys *t, ml_key_kind kind, const int64_t *ints, const float *floats,
                        const double *doubles, const st_str *strs, size_t count, st_arena *arena, st_error *err)
{
    memset(t, 0, sizeof *t);
    t->kind = kind;
    if (count > UINT32_MAX)
        return st_fail(err, ST_EINVAL, "%zu keys is too many", count);
    t->count = count;
    size_t n = count ? count : 1;
    uint32_t *idx = st_arena_alloc(arena, n * sizeof *idx, 8), *tmp = st_arena_alloc(arena, n * sizeof *tmp, 8);
    if (!idx || !tmp)
        return st_fail(err, ST_ENOMEM, "out of memory for %zu keys", count);
    size_t es = kind == ML_KEY_INT ? sizeof *t->ints : kind == ML_KEY_FLOAT ? sizeof *t->floats : sizeof *t->strs;
    void *keys = st_arena_alloc(arena, n * es, 8);
    char *copy = st_arena_alloc(arena, n * es, 8);
    if (!keys || !copy)
        return st_fail(err, ST_ENOMEM, "out of memory for %zu keys", count);
    if (kind == ML_KEY_INT)
        t->ints = keys;
    else if (kind == ML_KEY_FLOAT)
        t->floats = keys;
    else
        t->strs = keys;
    for (size_t i = 0; i < count; i++) {
        idx[i] = (uint32_t)i;
        if (kind == ML_KEY_INT)
            t->ints[i] = ints[i];
        else if (kind == ML_KEY_FLOAT)
            t->floats[i] = floats ? floats[i] : doubles[i];
        else
            t->strs[i] = strs[i];
    }
    sort_index(t, idx, tmp, count);
    for (size_t i = 0; i < count; i++)
        memcpy(copy + i * es, (const char *)keys + idx[i] * es, es);
    memcpy(keys, copy, count * es);
    t->index = idx;
    return ST_OK;
}

/* Leftmost sorted position whose key is not below the probe; `cmp`
 * compares sorted key i with the probe. */
#define ML_LOWER_BOUND(t, cmp_expr)          \
    size_t lo = 0, hi = (t)->count;          \
    while (lo < hi) {                        \
        size_t i = lo + (hi - lo) / 2;       \
        if ((cmp_expr) < 0)                  \
            lo = i + 1;                      \
        else                                 \
            hi = i;                          \
    }

int64_t ml_keys_find_int(const ml_keys *t, int64_t key)
{
    if (t->kind != ML_KEY_INT)
        return -1;
    ML_LOWER_BOUND(t, t->ints[i] < key ? -1 : 0)
    return lo < t->count && t->ints[lo] == key ? (int64_t)t->index[lo] : -1;
}

int64_t ml_keys_find_float(const ml_keys *t, double key)
{
    if (t->kind != ML_KEY_FLOAT)
        return -1;
    ML_LOWER_BOUND(t, cmp_double(t->floats[i], key))
    return lo < t->count && cmp_double(t->floats[lo], key) == 0 ? (int64_t)t->index[lo] : -1;
}

int64_t ml_keys_find_str(const ml_keys *t, st_str key)
{
    if (t->kind != ML_KEY_STRING)
        return -1;
    ML_LOWER_BOUND(t, cmp_str(t->strs[i], key))
    return lo < t->count && cmp_str(t->strs[lo], key) == 0 ? (int64_t)t->index[lo] : -1;
}

st_status ml_keys_from_attrs(ml_keys *t, const eng_node *n, const char *ints_name, const char *strs_name,
                             st_arena *arena, st_error *err)
{
    size_t n_ints, n_strs;
    const int64_t *ints = eng_attr_ints(n, ints_name, &n_ints);
    const st_str *strs = ml_attr_strings(n, strs_name, &n_strs);
    if (!n_ints == !n_strs)
        return st_fail(err, ST_EINVAL, "give exactly one of %s and %s", ints_name, strs_name);
    return ml_keys_build(t, n_strs ? ML_KEY_STRING : ML_KEY_INT, ints, NULL, NULL, strs, n_strs ? n_strs : n_ints,
                         arena, err);
}

bool ml_key_kind_of(st_dtype t, ml_key_kind *out)
{
    switch (t) {
    case ST_DT_STRING:
        *out = ML_KEY_STRING;
        return true;
    case ST_DT_INT64:
    case ST_DT_INT32:
    case ST_DT_INT16:
        *out = ML_KEY_INT;
        return true;
    case ST_DT_FLOAT32:
    case ST_DT_FLOAT64:
        *out = ML_KEY_FLOAT;
        return true;
    default:
        return false;
    }
}

int64_t ml_keys_find_at(const ml_keys *t, const eng_tensor *x, size_t i)
{
    switch (t->kind) {
    case ML_KEY_STRING:
        return ml_keys_find_str(t, ((const st_str *)x->data)[i]);
    case ML_KEY_INT:
        return ml_keys_find_int(t, eng_int_at(x, i));
    case ML_KEY_FLOAT:
        return ml_keys_find_float(t, eng_num_at(x, i));
    }
    return -1;
}

/* --- the table ---------------------------------------------------------------------- */

#define ML_OP(name, prefix) { "ai.onnx.ml", name, 1, prefix##_check, prefix##_infer, prefix##_run }

const eng_op eng_ops_ml[] = {
    ML_OP("LinearClassifier", ml_linear_classifier),
    ML_OP("LinearRegressor", ml_linear_regressor),
    ML_OP("SVMClassifier", ml_svm_classifier),
    ML_OP("SVMRegressor", ml_svm_regressor),
    ML_OP("Scaler", ml_scaler),
    ML_OP("Normalizer", ml_normalizer),
    { "ai.onnx.ml", "Binarizer", 1, NULL, ml_binarizer_infer, ml_binarizer_run },
    ML_OP("Imputer", ml_imputer),
    ML_OP("OneHotEncoder", ml_one_hot),
    { "ai.onnx.ml", "ArrayFeatureExtractor", 1, NULL, ml_array_feature_infer, ml_array_feature_run },
    ML_OP("FeatureVectorizer", ml_feature_vectorizer),
    { "ai.onnx.ml", "LabelEncoder", 1, ml_label_encoder_check, ml_codec_infer, ml_codec_run },
    { "ai.onnx.ml", "CategoryMapper", 1, ml_category_mapper_check, ml_codec_infer, ml_codec_run },
    ML_OP("ZipMap", ml_zipmap),
    ML_OP("DictVectorizer", ml_dict_vectorizer),
    { 0 },
};
