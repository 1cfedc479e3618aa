/* ml_prep.c - ONNX-ML feature preprocessing: Scaler, Normalizer,
 * Binarizer, Imputer, OneHotEncoder, ArrayFeatureExtractor and
 * FeatureVectorizer, the operators a scikit-learn pipeline becomes in
 * front of its estimator.  Semantics follow the ONNX-ML spec; where it is
 * silent (zero norms, NaN), ONNX Runtime's behaviour. */
#include <math.h>
#include <string.h>

#include "engine/ops/ml_int.h"

/* Rows of a tensor along its last axis (rank 0 is one value). */
static void last_axis(const eng_tensor *x, size_t *rows, size_t *cols)
{
    *cols = x->rank ? (size_t)x->shape[x->rank - 1] : 1;
    *rows = *cols ? x->count / *cols : 0;
}

static st_status need_numeric(const eng_kctx *k, const eng_tensor *x)
{
    if (!x || !ml_is_numeric(x->dtype))
        return eng_fail(k, ST_ETYPE, "X must be float, double, int64 or int32, got %s",
                        x ? st_dtype_name(x->dtype) : "nothing");
    return ST_OK;
}

/* --- Scaler ----------------------------------------------------------------------- */

typedef struct scaler {
    const float *offset, *scale;
    size_t n_offset, n_scale;
} scaler;

st_status ml_scaler_check(eng_node *n, st_arena *arena, st_error *err)
{
    scaler *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->offset = eng_attr_floats(n, "offset", &st->n_offset);
    st->scale = eng_attr_floats(n, "scale", &st->n_scale);
    n->state = st;
    return ST_OK;
}

st_status ml_scaler_infer(eng_kctx *k)
{
    const scaler *st = k->node->state;
    st_status s = need_numeric(k, k->in[0]);
    if (s != ST_OK)
        return s;
    size_t rows, cols;
    last_axis(k->in[0], &rows, &cols);
    if ((st->n_offset > 1 && st->n_offset != cols) || (st->n_scale > 1 && st->n_scale != cols))
        return eng_fail(k, ST_ESHAPE, "offset (%zu) and scale (%zu) must have 1 or %zu values (the last axis)",
                        st->n_offset, st->n_scale, cols);
    eng_set_shape(k->out[0], ST_DT_FLOAT32, k->in[0]->shape, k->in[0]->rank);
    return ST_OK;
}

st_status ml_scaler_run(eng_kctx *k)
{
    const scaler *st = k->node->state;
    size_t rows, cols;
    last_axis(k->in[0], &rows, &cols);
    float *y = k->out[0]->data;
    double *xr = st_arena_alloc(k->scratch, (cols + 1) * sizeof *xr, 64);
    if (!xr)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t r = 0; r < rows; r++) {
        ml_read(k->in[0], r * cols, cols, xr);
        for (size_t c = 0; c < cols; c++) {
            double off = st->n_offset ? st->offset[st->n_offset > 1 ? c : 0] : 0;
            double sc = st->n_scale ? st->scale[st->n_scale > 1 ? c : 0] : 1;
            y[r * cols + c] = (float)((xr[c] - off) * sc);
        }
    }
    return ST_OK;
}

/* --- Normalizer -------------------------------------------------------------------- */

typedef enum norm_kind { NORM_MAX, NORM_L1, NORM_L2 } norm_kind;

st_status ml_normalizer_check(eng_node *n, st_arena *arena, st_error *err)
{
    static const char *const names[] = { "MAX", "L1", "L2" };
    norm_kind *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_str s = eng_attr_str(n, "norm", "MAX");
    size_t i = 0;
    while (i < 3 && !st_str_eq_c(s, names[i]))
        i++;
    if (i == 3)
        return st_fail(err, ST_EINVAL, "norm '%.*s' is not MAX, L1 or L2", (int)(s.len > 40 ? 40 : s.len), s.ptr);
    *st = (norm_kind)i;
    n->state = st;
    return ST_OK;
}

st_status ml_normalizer_infer(eng_kctx *k)
{
    size_t rows, cols;
    st_status s = ml_matrix(k, k->in[0], "X", &rows, &cols);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], ST_DT_FLOAT32, k->in[0]->shape, k->in[0]->rank);
    return ST_OK;
}

st_status ml_normalizer_run(eng_kctx *k)
{
    norm_kind kind = *(const norm_kind *)k->node->state;
    size_t rows, cols;
    ml_matrix(k, k->in[0], "X", &rows, &cols);
    double *xr = st_arena_alloc(k->scratch, (cols + 1) * sizeof *xr, 64);
    if (!xr)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    float *y = k->out[0]->data;
    for (size_t r = 0; r < rows; r++) {
        ml_read(k->in[0], r * cols, cols, xr);
        /* MAX divides by the largest value (not magnitude), as the spec
         * and ONNX Runtime do; a zero norm leaves the row as it is. */
        double norm = kind == NORM_MAX ? -INFINITY : 0;
        for (size_t c = 0; c < cols; c++) {
            if (kind == NORM_MAX)
                norm = xr[c] > norm ? xr[c] : norm;
            else
                norm += kind == NORM_L1 ? fabs(xr[c]) : xr[c] * xr[c];
        }
        if (kind == NORM_L2)
            norm = sqrt(norm);
        for (size_t c = 0; c < cols; c++)
            y[r * cols + c] = (float)(norm != 0 && cols ? xr[c] / norm : xr[c]);
    }
    return ST_OK;
}

/* --- Binarizer ----------------------------------------------------------------------- */

st_status ml_binarizer_infer(eng_kctx *k)
{
    st_status s = need_numeric(k, k->in[0]);
    if (s != ST_OK)
        return s;
    return eng_infer_same_as_input(k);
}

st_status ml_binarizer_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0];
    eng_tensor *y = k->out[0];
    double t = eng_attr_float(k->node, "threshold", 0.0f);
    for (size_t i = 0; i < x->count; i++) {
        bool on = eng_num_at(x, i) > t; /* NaN is not above: 0, like scikit-learn */
        switch (x->dtype) {
        case ST_DT_FLOAT32: ((float *)y->data)[i] = on; break;
        case ST_DT_FLOAT64: ((double *)y->data)[i] = on; break;
        case ST_DT_INT64: ((int64_t *)y->data)[i] = on; break;
        default: ((int32_t *)y->data)[i] = on; break;
        }
    }
    return ST_OK;
}

/* --- Imputer --------------------------------------------------------------------------- */

typedef struct imputer {
    const float *floats;
    size_t n_floats;
    const int64_t *ints;
    size_t n_ints;
    float replaced_float;
    int64_t replaced_int;
} imputer;

st_status ml_imputer_check(eng_node *n, st_arena *arena, st_error *err)
{
    imputer *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->floats = eng_attr_floats(n, "imputed_value_floats", &st->n_floats);
    st->ints = eng_attr_ints(n, "imputed_value_int64s", &st->n_ints);
    st->replaced_float = eng_attr_float(n, "replaced_value_float", 0.0f);
    st->replaced_int = eng_attr_int(n, "replaced_value_int64", 0);
    if (!st->n_floats && !st->n_ints)
        return st_fail(err, ST_EINVAL, "imputed_value_floats or imputed_value_int64s is required");
    if (st->n_floats && st->n_ints)
        return st_fail(err, ST_EINVAL, "both imputed_value_floats and imputed_value_int64s are set; give one");
    n->state = st;
    return ST_OK;
}

st_status ml_imputer_infer(eng_kctx *k)
{
    const imputer *st = k->node->state;
    st_status s = need_numeric(k, k->in[0]);
    if (s != ST_OK)
        return s;
    bool is_float = k->in[0]->dtype == ST_DT_FLOAT32 || k->in[0]->dtype == ST_DT_FLOAT64;
    size_t have = is_float ? st->n_floats : st->n_ints, rows, cols;
    if (!have)
        return eng_fail(k, ST_ETYPE, "a %s input needs imputed_value_%s", st_dtype_name(k->in[0]->dtype),
                        is_float ? "floats" : "int64s");
    last_axis(k->in[0], &rows, &cols);
    if (have != 1 && have != cols)
        return eng_fail(k, ST_ESHAPE, "%zu imputed values for %zu columns (give 1 or one per column)", have, cols);
    return eng_infer_same_as_input(k);
}

st_status ml_imputer_run(eng_kctx *k)
{
    const imputer *st = k->node->state;
    const eng_tensor *x = k->in[0];
    eng_tensor *y = k->out[0];
    size_t rows, cols;
    last_axis(x, &rows, &cols);
    bool nan_marker = isnan(st->replaced_float);
    for (size_t i = 0; i < x->count; i++) {
        size_t c = cols ? i % cols : 0;
        switch (x->dtype) {
        case ST_DT_FLOAT32: {
            float v = ((const float *)x->data)[i];
            bool hit = nan_marker ? isnan(v) : v == st->replaced_float;
            ((float *)y->data)[i] = hit ? st->floats[st->n_floats > 1 ? c : 0] : v;
            break;
        }
        case ST_DT_FLOAT64: {
            double v = ((const double *)x->data)[i];
            bool hit = nan_marker ? isnan(v) : v == (double)st->replaced_float;
            ((double *)y->data)[i] = hit ? st->floats[st->n_floats > 1 ? c : 0] : v;
            break;
        }
        case ST_DT_INT64: {
            int64_t v = ((const int64_t *)x->data)[i];
            ((int64_t *)y->data)[i] = v == st->replaced_int ? st->ints[st->n_ints > 1 ? c : 0] : v;
            break;
        }
        default: {
            int32_t v = ((const int32_t *)x->data)[i];
            ((int32_t *)y->data)[i] = v == st->replaced_int ? (int32_t)st->ints[st->n_ints > 1 ? c : 0] : v;
            break;
        }
        }
    }
    return ST_OK;
}

/* --- OneHotEncoder -------------------------------------------------------------------- */

typedef struct one_hot {
    ml_keys cats;
    bool zeros; /* unknown categories give a row of zeros (else an error) */
} one_hot;

/* A float category is truncated to an integer, as ONNX Runtime does;
 * NaN and values beyond int64 match nothing. */
static int64_t float_category(const ml_keys *cats, double v)
{
    if (!(v > -9.2e18 && v < 9.2e18))
        return -1;
    return ml_keys_find_int(cats, (int64_t)v);
}

st_status ml_one_hot_check(eng_node *n, st_arena *arena, st_error *err)
{
    one_hot *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->zeros = eng_attr_int(n, "zeros", 1) != 0;
    st_status s = ml_keys_from_attrs(&st->cats, n, "cats_int64s", "cats_strings", arena, err);
    if (s != ST_OK)
        return s;
    n->state = st;
    return ST_OK;
}

st_status ml_one_hot_infer(eng_kctx *k)
{
    const one_hot *st = k->node->state;
    const eng_tensor *x = k->in[0];
    bool is_str = x && x->dtype == ST_DT_STRING;
    if (!x || (!is_str && !ml_is_numeric(x->dtype)))
        return eng_fail(k, ST_ETYPE, "X must be a string or numeric tensor");
    if (is_str != (st->cats.kind == ML_KEY_STRING))
        return eng_fail(k, ST_ETYPE, "a %s input needs cats_%s", st_dtype_name(x->dtype),
                        is_str ? "strings" : "int64s");
    if (x->rank + 1 > ENG_MAX_RANK)
        return eng_fail(k, ST_EUNSUPPORTED, "rank above %d", ENG_MAX_RANK - 1);
    int64_t shape[ENG_MAX_RANK];
    memcpy(shape, x->shape, x->rank * sizeof *shape);
    shape[x->rank] = (int64_t)st->cats.count;
    eng_set_shape(k->out[0], ST_DT_FLOAT32, shape, x->rank + 1);
    return ST_OK;
}

st_status ml_one_hot_run(eng_kctx *k)
{
    const one_hot *st = k->node->state;
    const eng_tensor *x = k->in[0];
    size_t nc = st->cats.count;
    float *y = k->out[0]->data;
    memset(y, 0, k->out[0]->count * sizeof *y);
    for (size_t i = 0; i < x->count; i++) {
        int64_t at;
        if (x->dtype == ST_DT_STRING)
            at = ml_keys_find_str(&st->cats, ((const st_str *)x->data)[i]);
        else if (x->dtype == ST_DT_FLOAT32 || x->dtype == ST_DT_FLOAT64)
            at = float_category(&st->cats, eng_num_at(x, i));
        else
            at = ml_keys_find_int(&st->cats, eng_int_at(x, i));
        if (at >= 0)
            y[i * nc + (size_t)at] = 1.0f;
        else if (!st->zeros)
            return eng_fail(k, ST_EINVAL, "element %zu is not one of the %zu categories (zeros=0)", i, nc);
    }
    return ST_OK;
}

/* --- ArrayFeatureExtractor --------------------------------------------------------- */

st_status ml_array_feature_infer(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *idx = k->n_in > 1 ? k->in[1] : NULL;
    if (!x || !idx || (idx->dtype != ST_DT_INT64 && idx->dtype != ST_DT_INT32))
        return eng_fail(k, ST_ETYPE, "needs X and int64 indices Y");
    if (x->rank == 0 || x->dtype >= ENG_DT_SEQUENCE)
        return eng_fail(k, ST_ESHAPE, "X must be a tensor of rank 1 or more");
    int64_t last = x->shape[x->rank - 1];
    for (size_t i = 0; i < idx->count; i++) {
        int64_t v = eng_int_at(idx, i);
        if (v < 0 || v >= last)
            return eng_fail(k, ST_EINVAL, "index %lld is out of range for a last axis of %lld", (long long)v,
                            (long long)last);
    }
    int64_t shape[ENG_MAX_RANK];
    uint32_t rank = x->rank;
    memcpy(shape, x->shape, rank * sizeof *shape);
    if (rank == 1) { /* one row, as ONNX Runtime gives it */
        shape[0] = 1;
        rank = 2;
    }
    shape[rank - 1] = (int64_t)idx->count;
    eng_set_shape(k->out[0], x->dtype, shape, rank);
    return ST_OK;
}

st_status ml_array_feature_run(eng_kctx *k)
{
    const eng_tensor *x = k->in[0], *idx = k->in[1];
    size_t rows, cols, es = eng_elem_bytes(x->dtype), n = idx->count;
    last_axis(x, &rows, &cols);
    const char *src = x->data;
    char *dst = k->out[0]->data;
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < n; i++)
            memcpy(dst + (r * n + i) * es, src + (r * cols + (size_t)eng_int_at(idx, i)) * es, es);
    return ST_OK;
}

/* --- FeatureVectorizer ------------------------------------------------------------------ */

typedef struct feature_vec {
    const int64_t *dims;
    size_t n_dims;
    size_t total;
} feature_vec;

st_status ml_feature_vectorizer_check(eng_node *n, st_arena *arena, st_error *err)
{
    feature_vec *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->dims = eng_attr_ints(n, "inputdimensions", &st->n_dims);
    uint32_t n_in = n->n_inputs - n->n_implicit;
    if (st->n_dims != n_in)
        return st_fail(err, ST_EINVAL, "inputdimensions has %zu entries for %u inputs", st->n_dims, n_in);
    for (size_t i = 0; i < st->n_dims; i++) {
        if (st->dims[i] < 0 || st->dims[i] > (1 << 30))
            return st_fail(err, ST_EINVAL, "inputdimensions[%zu] is %lld", i, (long long)st->dims[i]);
        st->total += (size_t)st->dims[i];
    }
    n->state = st;
    return ST_OK;
}

st_status ml_feature_vectorizer_infer(eng_kctx *k)
{
    const feature_vec *st = k->node->state;
    size_t rows0 = 0;
    for (uint32_t i = 0; i < k->n_in; i++) {
        size_t rows, cols;
        st_status s = ml_matrix(k, k->in[i], "every input", &rows, &cols);
        if (s != ST_OK)
            return s;
        if (i > 0 && rows != rows0)
            return eng_fail(k, ST_ESHAPE, "input %u has %zu rows, input 0 has %zu", i, rows, rows0);
        rows0 = rows;
    }
    int64_t shape[2] = { (int64_t)rows0, (int64_t)st->total };
    eng_set_shape(k->out[0], ST_DT_FLOAT32, shape, 2);
    return ST_OK;
}

st_status ml_feature_vectorizer_run(eng_kctx *k)
{
    const feature_vec *st = k->node->state;
    float *y = k->out[0]->data;
    size_t rows = (size_t)k->out[0]->shape[0];
    double *xr = NULL;
    size_t cap = 0;
    for (size_t r = 0; r < rows; r++) {
        size_t at = 0;
        for (uint32_t i = 0; i < k->n_in; i++) {
            size_t n_rows, cols, want = (size_t)st->dims[i];
            ml_matrix(k, k->in[i], "input", &n_rows, &cols);
            if (cols > cap) {
                cap = cols;
                if (!(xr = st_arena_alloc(k->scratch, cap * sizeof *xr, 64)))
                    return eng_fail(k, ST_ENOMEM, "out of memory");
            }
            /* Longer rows are cut, shorter ones padded with zeros. */
            size_t take = cols < want ? cols : want;
            ml_read(k->in[i], r * cols, take, xr);
            for (size_t c = 0; c < want; c++)
                y[r * st->total + at + c] = c < take ? (float)xr[c] : 0.0f;
            at += want;
        }
    }
    return ST_OK;
}
