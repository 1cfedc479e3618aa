/* ml_int.h - shared pieces of the ONNX-ML operator family (domain
 * "ai.onnx.ml", files ml*.c): post transforms, class labels, reading
 * numeric rows, and the sorted key tables behind LabelEncoder,
 * CategoryMapper, OneHotEncoder and DictVectorizer.  The tree ensembles
 * live elsewhere. */
#ifndef ST_ENGINE_OPS_ML_INT_H
#define ST_ENGINE_OPS_ML_INT_H

#include "engine/ops/ops.h"

/* --- post transforms ------------------------------------------------------- */

typedef enum ml_post {
    ML_POST_NONE,
    ML_POST_SOFTMAX,
    ML_POST_LOGISTIC,
    ML_POST_SOFTMAX_ZERO,
    ML_POST_PROBIT,
} ml_post;

/* Reads the `post_transform` attribute (default NONE); an unknown name is
 * ST_EINVAL naming the allowed ones. */
st_status ml_post_parse(const eng_node *n, ml_post *out, st_error *err);
/* Applies `p` to one row of n scores in place: LOGISTIC and PROBIT per
 * value, SOFTMAX and SOFTMAX_ZERO over the row. */
void ml_post_row(ml_post p, float *scores, size_t n);
float ml_logistic(float x);

/* --- class labels ------------------------------------------------------------ */

/* classlabels_ints / classlabels_strings (or other names): one of the two.
 * count 0 when neither is given. */
typedef struct ml_labels {
    const int64_t *ints;
    const st_str *strs;
    size_t count;
    bool is_string;
} ml_labels;

/* Reads the label list; both lists set is ST_EINVAL. */
st_status ml_labels_get(const eng_node *n, const char *ints_name, const char *strs_name, ml_labels *out,
                        st_error *err);
/* Writes label i (or the fallback int / string when i is out of the list)
 * into element `at` of an INT64 or STRING tensor. */
void ml_label_put(const ml_labels *l, size_t i, int64_t fallback_int, const char *fallback_str, eng_tensor *y,
                  size_t at);

/* The strings attribute; *count 0 and NULL when absent. */
const st_str *ml_attr_strings(const eng_node *n, const char *name, size_t *count);

/* --- numeric input -------------------------------------------------------------- */

/* An input read as rows: rank 1 is one row, rank 2 is [rows, cols].
 * Other ranks and non-numeric types (float, double, int64, int32 only) are
 * ST_ESHAPE / ST_ETYPE naming `what`. */
st_status ml_matrix(const eng_kctx *k, const eng_tensor *x, const char *what, size_t *rows, size_t *cols);
/* True for the element types ml_read reads. */
bool ml_is_numeric(st_dtype t);
/* Converts n elements of x starting at element `off` to double. */
void ml_read(const eng_tensor *x, size_t off, size_t n, double *dst);

/* --- key tables ----------------------------------------------------------------- */

/* Keys of one kind, sorted once at load for binary search; lookups give
 * the key's position in the original list (the first one for repeats).
 * Float keys compare as doubles with NaN equal to NaN. */
typedef enum ml_key_kind {
    ML_KEY_INT,
    ML_KEY_FLOAT,
    ML_KEY_STRING,
} ml_key_kind;

typedef struct ml_keys {
    ml_key_kind kind;
    size_t count;
    int64_t *ints;     /* sorted copies */
    double *floats;
    st_str *strs;
    uint32_t *index;   /* original position of each sorted key */
} ml_keys;

/* Builds a table over `count` keys (exactly one of ints, floats, doubles,
 * strs non-NULL, or none for an empty table of `kind`) in arena. */
st_status ml_keys_build(ml_keys *t, ml_key_kind kind, const int64_t *ints, const float *floats,
                        const double *doubles, const st_str *strs, size_t count, st_arena *arena, st_error *err);
/* Position of the key in the original list, or -1. */
int64_t ml_keys_find_int(const ml_keys *t, int64_t key);
int64_t ml_keys_find_float(const ml_keys *t, double key);
int64_t ml_keys_find_str(const ml_keys *t, st_str key);
/* Builds the table from an int64 list or a string list attribute: exactly
 * one of the two must be given (ST_EINVAL otherwise). */
st_status ml_keys_from_attrs(ml_keys *t, const eng_node *n, const char *ints_name, const char *strs_name,
                             st_arena *arena, st_error *err);
/* Looks up element i of x (its type must suit t->kind). */
int64_t ml_keys_find_at(const ml_keys *t, const eng_tensor *x, size_t i);
/* The key kind an input type looks up with; false for other types. */
bool ml_key_kind_of(st_dtype t, ml_key_kind *out);

/* --- the family's operators (ml_linear.c, ml_prep.c, ml_map.c) -------------- */

#define ML_OP_DECL(prefix)                                                   \
    st_status prefix##_check(eng_node *n, st_arena *arena, st_error *err); \
    st_status prefix##_infer(eng_kctx *k);                                   \
    st_status prefix##_run(eng_kctx *k)

/* Checks validate attributes; infer and run are per operator, except
 * that Binarizer and ArrayFeatureExtractor have no attributes to check
 * and LabelEncoder and CategoryMapper share the encoder's infer/run. */
ML_OP_DECL(ml_linear_classifier);
ML_OP_DECL(ml_linear_regressor);
ML_OP_DECL(ml_svm_classifier);
ML_OP_DECL(ml_svm_regressor);
ML_OP_DECL(ml_scaler);
ML_OP_DECL(ml_normalizer);
st_status ml_binarizer_infer(eng_kctx *k);
st_status ml_binarizer_run(eng_kctx *k);
ML_OP_DECL(ml_imputer);
ML_OP_DECL(ml_one_hot);
st_status ml_array_feature_infer(eng_kctx *k);
st_status ml_array_feature_run(eng_kctx *k);
ML_OP_DECL(ml_feature_vectorizer);
st_status ml_label_encoder_check(eng_node *n, st_arena *arena, st_error *err);
st_status ml_category_mapper_check(eng_node *n, st_arena *arena, st_error *err);
st_status ml_codec_infer(eng_kctx *k);
st_status ml_codec_run(eng_kctx *k);
ML_OP_DECL(ml_zipmap);
ML_OP_DECL(ml_dict_vectorizer);

#endif
