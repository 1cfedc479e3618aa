/* ml_linear.c - the linear models and SVMs of ONNX-ML: LinearClassifier,
 * LinearRegressor, SVMClassifier, SVMRegressor.
 *
 * Dot products accumulate in double and scores are rounded to float once,
 * so results sit within float rounding of scikit-learn's (which works in
 * double).  Where ONNX Runtime and the ONNX reference implementation
 * disagree on the binary special case (one set of coefficients, two class
 * labels), the score pair is [-s, s] with the post transform applied to
 * both, as the reference does: with LOGISTIC that is [P(class 0),
 * P(class 1)], where ONNX Runtime writes [1 - s, s] untransformed. */
#include <math.h>
#include <string.h>

#include "engine/ops/ml_int.h"

static double dot_row(const double *x, const float *w, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * (double)w[i];
    return s;
}

static size_t argmax_first(const float *s, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (s[i] > s[best])
            best = i;
    return best;
}

/* Label output type and shape [N]; scores [N, cols]. */
static void set_classifier_outputs(eng_kctx *k, const ml_labels *labels, size_t rows, size_t cols)
{
    int64_t y_shape[1] = { (int64_t)rows }, z_shape[2] = { (int64_t)rows, (int64_t)cols };
    eng_set_shape(k->out[0], labels->is_string ? ST_DT_STRING : ST_DT_INT64, y_shape, 1);
    if (k->n_out > 1 && k->out[1])
        eng_set_shape(k->out[1], ST_DT_FLOAT32, z_shape, 2);
}

/* Checks that X has `features` columns and makes output 0 a float
 * [rows, out_cols]: the regressors' infer. */
static st_status infer_regressor(eng_kctx *k, size_t features, size_t out_cols)
{
    size_t rows, cols;
    st_status s = ml_matrix(k, k->in[0], "X", &rows, &cols);
    if (s != ST_OK)
        return s;
    if (cols != features)
        return eng_fail(k, ST_ESHAPE, "the model has %zu features, the input %zu", features, cols);
    int64_t shape[2] = { (int64_t)rows, (int64_t)out_cols };
    eng_set_shape(k->out[0], ST_DT_FLOAT32, shape, 2);
    return ST_OK;
}

/* The input's rows and columns (infer checked them) and a scratch
 * buffer for the features of one row. */
static st_status rows_begin(const eng_kctx *k, size_t *rows, size_t *cols, double **row)
{
    st_status s = ml_matrix(k, k->in[0], "X", rows, cols);
    if (s != ST_OK)
        return s;
    *row = st_arena_alloc(k->scratch, (*cols ? *cols : 1) * sizeof **row, 64);
    return *row ? ST_OK : eng_fail(k, ST_ENOMEM, "out of memory");
}

/* --- LinearClassifier -------------------------------------------------------- */

typedef struct lin_clf {
    const float *coef;
    size_t n_coef;
    const float *intercepts; /* NULL: none */
    size_t n_intercepts;
    ml_labels labels;
    ml_post post;
} lin_clf;

/* The number of score rows in the coefficients: the intercepts' count
 * when given, else coefficients / features (known at run time only). */
static st_status lin_clf_targets(const lin_clf *st, size_t cols, size_t *targets, const eng_kctx *k)
{
    size_t t = st->n_intercepts;
    if (!t) {
        if (cols == 0 || st->n_coef % cols != 0)
            return eng_fail(k, ST_ESHAPE, "%zu coefficients do not split into rows of %zu features", st->n_coef,
                            cols);
        t = st->n_coef / cols;
    }
    if (t * cols != st->n_coef)
        return eng_fail(k, ST_ESHAPE, "the model has %zu coefficients for %zu classes, so %zu features, but the "
                        "input has %zu", st->n_coef, t, st->n_coef / t, cols);
    if (t > 1 && st->labels.count != t)
        return eng_fail(k, ST_EINVAL, "%zu score rows but %zu class labels", t, st->labels.count);
    *targets = t;
    return ST_OK;
}

st_status ml_linear_classifier_check(eng_node *n, st_arena *arena, st_error *err)
{
    lin_clf *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_status s = ml_post_parse(n, &st->post, err);
    if (s != ST_OK || (s = ml_labels_get(n, "classlabels_ints", "classlabels_strings", &st->labels, err)) != ST_OK)
        return s;
    st->coef = eng_attr_floats(n, "coefficients", &st->n_coef);
    st->intercepts = eng_attr_floats(n, "intercepts", &st->n_intercepts);
    if (!st->n_coef)
        return st_fail(err, ST_EINVAL, "coefficients are missing");
    if (st->n_intercepts) {
        if (st->n_coef % st->n_intercepts != 0)
            return st_fail(err, ST_EINVAL, "%zu coefficients do not split into %zu classes (one intercept each)",
                           st->n_coef, st->n_intercepts);
        if (st->n_intercepts > 1 && st->labels.count != st->n_intercepts)
            return st_fail(err, ST_EINVAL, "%zu intercepts (classes) but %zu class labels", st->n_intercepts,
                           st->labels.count);
        if (st->n_intercepts == 1 && st->labels.count > 2)
            return st_fail(err, ST_EINVAL, "one set of coefficients but %zu class labels (at most 2)",
                           st->labels.count);
    }
    n->state = st;
    return ST_OK;
}

st_status ml_linear_classifier_infer(eng_kctx *k)
{
    const lin_clf *st = k->node->state;
    size_t rows, cols, targets;
    st_status s = ml_matrix(k, k->in[0], "X", &rows, &cols);
    if (s != ST_OK || (s = lin_clf_targets(st, cols, &targets, k)) != ST_OK)
        return s;
    set_classifier_outputs(k, &st->labels, rows, targets == 1 && st->labels.count == 2 ? 2 : targets);
    return ST_OK;
}

st_status ml_linear_classifier_run(eng_kctx *k)
{
    const lin_clf *st = k->node->state;
    const eng_tensor *x = k->in[0];
    eng_tensor *y = k->out[0], *z = k->n_out > 1 ? k->out[1] : NULL;
    size_t rows, cols, targets;
    double *xr;
    st_status s = rows_begin(k, &rows, &cols, &xr);
    if (s != ST_OK || (s = lin_clf_targets(st, cols, &targets, k)) != ST_OK)
        return s;
    bool is_pair = targets == 1 && st->labels.count == 2;
    size_t z_cols = is_pair ? 2 : targets;
    float *sc = st_arena_alloc(k->scratch, (z_cols + 1) * sizeof *sc, 64);
    if (!sc)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    for (size_t r = 0; r < rows; r++) {
        ml_read(x, r * cols, cols, xr);
        for (size_t t = 0; t < targets; t++)
            sc[t] = (float)(dot_row(xr, st->coef + t * cols, cols) + (st->intercepts ? st->intercepts[t] : 0.0));
        if (targets == 1) {
            float s0 = sc[0];
            if (st->labels.count == 2)
                ml_label_put(&st->labels, s0 > 0 ? 1 : 0, 0, "", y, r);
            else
                ml_label_put(&st->labels, SIZE_MAX, s0 > 0 ? 1 : 0, s0 > 0 ? "1" : "0", y, r);
            if (is_pair) {
                sc[0] = -s0;
                sc[1] = s0;
            }
        } else {
            ml_label_put(&st->labels, argmax_first(sc, targets), 0, "", y, r);
        }
        ml_post_row(st->post, sc, z_cols);
        if (z)
            memcpy((float *)z->data + r * z_cols, sc, z_cols * sizeof *sc);
    }
    return ST_OK;
}

/* --- LinearRegressor ----------------------------------------------------------- */

typedef struct lin_reg {
    const float *coef;
    size_t n_coef;
    const float *intercepts;
    size_t targets;
    ml_post post;
} lin_reg;

st_status ml_linear_regressor_check(eng_node *n, st_arena *arena, st_error *err)
{
    lin_reg *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_status s = ml_post_parse(n, &st->post, err);
    if (s != ST_OK)
        return s;
    int64_t targets = eng_attr_int(n, "targets", 1);
    size_t n_int;
    st->coef = eng_attr_floats(n, "coefficients", &st->n_coef);
    st->intercepts = eng_attr_floats(n, "intercepts", &n_int);
    if (targets < 1 || targets > (1 << 24))
        return st_fail(err, ST_EINVAL, "targets is %lld, expected at least 1", (long long)targets);
    st->targets = (size_t)targets;
    if (!st->n_coef || st->n_coef % st->targets != 0)
        return st_fail(err, ST_EINVAL, "%zu coefficients do not split into %zu targets", st->n_coef, st->targets);
    if (n_int && n_int != st->targets)
        return st_fail(err, ST_EINVAL, "%zu intercepts for %zu targets", n_int, st->targets);
    n->state = st;
    return ST_OK;
}

st_status ml_linear_regressor_infer(eng_kctx *k)
{
    const lin_reg *st = k->node->state;
    return infer_regressor(k, st->n_coef / st->targets, st->targets); /* check made it divide */
}

st_status ml_linear_regressor_run(eng_kctx *k)
{
    const lin_reg *st = k->node->state;
    size_t rows, cols;
    double *xr;
    st_status s = rows_begin(k, &rows, &cols, &xr);
    if (s != ST_OK)
        return s;
    float *y = k->out[0]->data;
    for (size_t r = 0; r < rows; r++) {
        ml_read(k->in[0], r * cols, cols, xr);
        float *out = y + r * st->targets;
        for (size_t t = 0; t < st->targets; t++)
            out[t] = (float)(dot_row(xr, st->coef + t * cols, cols) + (st->intercepts ? st->intercepts[t] : 0.0));
        ml_post_row(st->post, out, st->targets);
    }
    return ST_OK;
}

/* --- SVM kernels ------------------------------------------------------------------ */

typedef enum svm_kernel_type { SVM_LINEAR, SVM_POLY, SVM_RBF, SVM_SIGMOID } svm_kernel_type;

typedef struct svm_kernel {
    svm_kernel_type type;
    double gamma, coef0, degree;
} svm_kernel;

static st_status svm_kernel_parse(const eng_node *n, svm_kernel *out, st_error *err)
{
    static const char *const names[] = { "LINEAR", "POLY", "RBF", "SIGMOID" };
    st_str s = eng_attr_str(n, "kernel_type", "LINEAR");
    size_t i = 0;
    while (i < 4 && !st_str_eq_c(s, names[i]))
        i++;
    if (i == 4)
        return st_fail(err, ST_EINVAL, "kernel_type '%.*s' is not LINEAR, POLY, RBF or SIGMOID",
                       (int)(s.len > 40 ? 40 : s.len), s.ptr);
    out->type = (svm_kernel_type)i;
    size_t np;
    const float *p = eng_attr_floats(n, "kernel_params", &np);
    if (np != 0 && np != 3)
        return st_fail(err, ST_EINVAL, "kernel_params has %zu values; it is [gamma, coef0, degree]", np);
    out->gamma = np ? p[0] : 0;
    out->coef0 = np ? p[1] : 0;
    out->degree = np ? p[2] : 0;
    return ST_OK;
}

static double svm_kernel_eval(const svm_kernel *kn, const double *x, const float *sv, size_t n)
{
    if (kn->type == SVM_RBF) {
        double s = 0;
        for (size_t i = 0; i < n; i++) {
            double d = x[i] - (double)sv[i];
            s += d * d;
        }
        return exp(-kn->gamma * s);
    }
    double d = dot_row(x, sv, n);
    switch (kn->type) {
    case SVM_POLY:
        return pow(kn->gamma * d + kn->coef0, kn->degree);
    case SVM_SIGMOID:
        return tanh(kn->gamma * d + kn->coef0);
    default:
        return d;
    }
}

/* --- SVMClassifier ---------------------------------------------------------------- */

typedef struct svm_clf {
    svm_kernel kernel;
    ml_labels labels;
    ml_post post;
    size_t n_classes, n_vectors, n_features, n_pairs;
    bool is_svc;                 /* support vectors (libsvm) vs. one weight row per class */
    bool has_proba;
    bool weights_all_positive;
    const int64_t *per_class;    /* vectors_per_class */
    size_t *first;               /* first vector of each class */
    const float *coef, *sv, *rho, *prob_a, *prob_b;
} svm_clf;

st_status ml_svm_classifier_check(eng_node *n, st_arena *arena, st_error *err)
{
    svm_clf *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_status s = ml_post_parse(n, &st->post, err);
    if (s != ST_OK || (s = svm_kernel_parse(n, &st->kernel, err)) != ST_OK ||
        (s = ml_labels_get(n, "classlabels_ints", "classlabels_strings", &st->labels, err)) != ST_OK)
        return s;
    size_t n_coef, n_sv, n_rho, n_pa, n_pb, n_vpc;
    st->coef = eng_attr_floats(n, "coefficients", &n_coef);
    st->sv = eng_attr_floats(n, "support_vectors", &n_sv);
    st->rho = eng_attr_floats(n, "rho", &n_rho);
    st->prob_a = eng_attr_floats(n, "prob_a", &n_pa);
    st->prob_b = eng_attr_floats(n, "prob_b", &n_pb);
    st->per_class = eng_attr_ints(n, "vectors_per_class", &n_vpc);
    st->n_classes = st->labels.count;
    if (st->n_classes == 0)
        return st_fail(err, ST_EINVAL, "classlabels_ints or classlabels_strings is required");
    if (st->n_classes > 65535)
        return st_fail(err, ST_EINVAL, "%zu classes is too many", st->n_classes);
    if (!n_coef)
        return st_fail(err, ST_EINVAL, "coefficients are missing");
    if (!n_rho)
        return st_fail(err, ST_EINVAL, "rho is missing");
    if (n_pa != n_pb)
        return st_fail(err, ST_EINVAL, "prob_a has %zu values, prob_b %zu; they must match", n_pa, n_pb);
    st->n_pairs = st->n_classes * (st->n_classes - 1) / 2;
    size_t total = 0;
    for (size_t i = 0; i < n_vpc; i++) {
        if (st->per_class[i] < 0 || st->per_class[i] > (1 << 30))
            return st_fail(err, ST_EINVAL, "vectors_per_class[%zu] is %lld", i, (long long)st->per_class[i]);
        total += (size_t)st->per_class[i];
    }
    st->is_svc = total > 0;
    st->weights_all_positive = true;
    for (size_t i = 0; i < n_coef; i++)
        st->weights_all_positive &= st->coef[i] >= 0;
    if (st->is_svc) {
        if (n_vpc != st->n_classes)
            return st_fail(err, ST_EINVAL, "vectors_per_class has %zu entries for %zu classes", n_vpc,
                           st->n_classes);
        if (st->n_classes < 2)
            return st_fail(err, ST_EINVAL, "a support-vector classifier needs at least 2 classes");
        st->n_vectors = total;
        if (n_sv == 0 || n_sv % total != 0)
            return st_fail(err, ST_EINVAL, "%zu support_vectors values do not split into %zu vectors", n_sv, total);
        st->n_features = n_sv / total;
        if (n_coef != (st->n_classes - 1) * total)
            return st_fail(err, ST_EINVAL, "%zu coefficients, expected (classes - 1) x vectors = %zu", n_coef,
                           (st->n_classes - 1) * total);
        if (n_rho < st->n_pairs)
            return st_fail(err, ST_EINVAL, "rho has %zu values for %zu class pairs", n_rho, st->n_pairs);
        if (n_pa && n_pa < st->n_pairs)
            return st_fail(err, ST_EINVAL, "prob_a has %zu values for %zu class pairs", n_pa, st->n_pairs);
        st->has_proba = n_pa > 0;
        st->first = st_arena_alloc(arena, st->n_classes * sizeof *st->first, 8);
        if (!st->first)
            return st_fail(err, ST_ENOMEM, "out of memory");
        for (size_t i = 0, at = 0; i < st->n_classes; i++) {
            st->first[i] = at;
            at += (size_t)st->per_class[i];
        }
    } else {
        if (n_coef % st->n_classes != 0)
            return st_fail(err, ST_EINVAL, "%zu coefficients do not split into %zu classes", n_coef,
                           st->n_classes);
        st->n_features = n_coef / st->n_classes;
        st->kernel.type = SVM_LINEAR; /* one weight row per class */
    }
    n->state = st;
    return ST_OK;
}

static size_t svm_clf_cols(const svm_clf *st)
{
    if (!st->is_svc || st->has_proba)
        return st->n_classes;
    return st->n_classes > 2 ? st->n_pairs : 2;
}

st_status ml_svm_classifier_infer(eng_kctx *k)
{
    const svm_clf *st = k->node->state;
    size_t rows, cols;
    st_status s = ml_matrix(k, k->in[0], "X", &rows, &cols);
    if (s != ST_OK)
        return s;
    if (cols != st->n_features)
        return eng_fail(k, ST_ESHAPE, "the model has %zu features, the input %zu", st->n_features, cols);
    set_classifier_outputs(k, &st->labels, rows, svm_clf_cols(st));
    return ST_OK;
}

/* Pairwise coupling of class probabilities (Wu, Lin and Weng 2004, the
 * method libsvm uses): r[i*k+j] estimates P(i | i or j); p receives the
 * k class probabilities.  q and qp are k*k and k doubles of scratch. */
static void svm_couple(size_t k, const double *r, double *p, double *q, double *qp)
{
    for (size_t i = 0; i < k; i++) {
        p[i] = 1.0 / (double)k;
        q[i * k + i] = 0;
        for (size_t j = 0; j < k; j++) {
            if (j == i)
                continue;
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = -r[j * k + i] * r[i * k + j];
        }
    }
    double eps = 0.005 / (double)k;
    size_t max_iter = k > 100 ? k : 100;
    for (size_t iter = 0; iter < max_iter; iter++) {
        double pqp = 0;
        for (size_t i = 0; i < k; i++) {
            qp[i] = 0;
            for (size_t j = 0; j < k; j++)
                qp[i] += q[i * k + j] * p[j];
            pqp += p[i] * qp[i];
        }
        double max_error = 0;
        for (size_t i = 0; i < k; i++) {
            double e = fabs(qp[i] - pqp);
            max_error = e > max_error ? e : max_error;
        }
        if (max_error < eps)
            break;
        for (size_t t = 0; t < k; t++) {
            double diff = (-qp[t] + pqp) / q[t * k + t];
            p[t] += diff;
            pqp = (pqp + diff * (diff * q[t * k + t] + 2 * qp[t])) / (1 + diff) / (1 + diff);
            for (size_t j = 0; j < k; j++) {
                qp[j] = (qp[j] + diff * q[t * k + j]) / (1 + diff);
                p[j] /= (1 + diff);
            }
        }
    }
}

/* One row through the support vectors: pair scores into `pair`, votes,
 * and the winning class. */
static size_t svm_svc_row(const svm_clf *st, const double *x, double *kv, double *pair, int64_t *votes)
{
    size_t nv = st->n_vectors;
    for (size_t v = 0; v < nv; v++)
        kv[v] = svm_kernel_eval(&st->kernel, x, st->sv + v * st->n_features, st->n_features);
    memset(votes, 0, st->n_classes * sizeof *votes);
    size_t at = 0;
    for (size_t i = 0; i + 1 < st->n_classes; i++) {
        for (size_t j = i + 1; j < st->n_classes; j++, at++) {
            /* Class i's vectors weigh in with coefficient row j-1, class j's with row i. */
            const float *ci = st->coef + (j - 1) * nv + st->first[i];
            const float *cj = st->coef + i * nv + st->first[j];
            double s = st->rho[at];
            for (int64_t m = 0; m < st->per_class[i]; m++)
                s += (double)ci[m] * kv[st->first[i] + (size_t)m];
            for (int64_t m = 0; m < st->per_class[j]; m++)
                s += (double)cj[m] * kv[st->first[j] + (size_t)m];
            pair[at] = s;
            votes[s > 0 ? i : j]++;
        }
    }
    size_t best = 0;
    for (size_t c = 1; c < st->n_classes; c++)
        if (votes[c] > votes[best])
            best = c;
    return best;
}

/* Class probabilities from pair scores via Platt's sigmoid per pair. */
static void svm_proba(const svm_clf *st, const double *pair, double *r, double *p, double *q, double *qp)
{
    size_t k = st->n_classes, at = 0;
    for (size_t i = 0; i + 1 < k; i++) {
        for (size_t j = i + 1; j < k; j++, at++) {
            double f = pair[at] * st->prob_a[at] + st->prob_b[at];
            /* 1 / (1 + exp(f)), written to stay finite for any f. */
            double v = f >= 0 ? exp(-f) / (1.0 + exp(-f)) : 1.0 / (1.0 + exp(f));
            v = v < 1e-7 ? 1e-7 : v > 1 - 1e-7 ? 1 - 1e-7 : v;
            r[i * k + j] = v;
            r[j * k + i] = 1 - v;
        }
    }
    /* Two classes go through the coupling too (libsvm as scikit-learn
     * bundles it does so; it stops short of the exact r[0][1]). */
    svm_couple(k, r, p, q, qp);
}

st_status ml_svm_classifier_run(eng_kctx *k)
{
    const svm_clf *st = k->node->state;
    const eng_tensor *x = k->in[0];
    eng_tensor *y = k->out[0], *z = k->n_out > 1 ? k->out[1] : NULL;
    size_t rows, cols, kc = st->n_classes, zc = svm_clf_cols(st);
    double *xr;
    st_status s = rows_begin(k, &rows, &cols, &xr);
    if (s != ST_OK)
        return s;
    double *kv = st_arena_alloc(k->scratch, (st->n_vectors + 1) * sizeof *kv, 64);
    double *pair = st_arena_alloc(k->scratch, (st->n_pairs + 1) * sizeof *pair, 64);
    double *r = st_arena_alloc(k->scratch, (2 * kc * kc + 2 * kc) * sizeof *r, 64);
    int64_t *votes = st_arena_alloc(k->scratch, kc * sizeof *votes, 64);
    float *sc = st_arena_alloc(k->scratch, (zc + kc) * sizeof *sc, 64);
    if (!kv || !pair || !r || !votes || !sc)
        return eng_fail(k, ST_ENOMEM, "out of memory");
    double *p = r + kc * kc, *q = p + kc, *qp = q + kc * kc;
    for (size_t row = 0; row < rows; row++) {
        ml_read(x, row * cols, cols, xr);
        size_t label;
        if (st->is_svc) {
            label = svm_svc_row(st, xr, kv, pair, votes);
            if (st->has_proba) {
                svm_proba(st, pair, r, p, q, qp);
                for (size_t c = 0; c < kc; c++)
                    sc[c] = (float)p[c];
            } else if (kc == 2) {
                sc[0] = (float)-pair[0];
                sc[1] = (float)pair[0];
            } else {
                for (size_t c = 0; c < st->n_pairs; c++)
                    sc[c] = (float)pair[c];
            }
        } else {
            for (size_t c = 0; c < kc; c++)
                sc[c] = (float)(dot_row(xr, st->coef + c * cols, cols) + st->rho[0]);
            label = argmax_first(sc, kc);
            /* ONNX Runtime's rule for two classes scored by weights. */
            if (kc == 2) {
                float mx = sc[label];
                if ((st->weights_all_positive && mx >= 0.5f) || (!st->weights_all_positive && mx > 0))
                    label = 1;
            }
        }
        ml_label_put(&st->labels, label, 0, "", y, row);
        ml_post_row(st->post, sc, zc);
        if (z)
            memcpy((float *)z->data + row * zc, sc, zc * sizeof *sc);
    }
    return ST_OK;
}

/* --- SVMRegressor ----------------------------------------------------------------- */

typedef struct svm_reg {
    svm_kernel kernel;
    ml_post post;
    size_t n_vectors, n_features;
    bool is_one_class;
    const float *coef, *sv;
    float rho;
} svm_reg;

st_status ml_svm_regressor_check(eng_node *n, st_arena *arena, st_error *err)
{
    svm_reg *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_status s = ml_post_parse(n, &st->post, err);
    if (s != ST_OK || (s = svm_kernel_parse(n, &st->kernel, err)) != ST_OK)
        return s;
    size_t n_coef, n_sv, n_rho;
    st->coef = eng_attr_floats(n, "coefficients", &n_coef);
    st->sv = eng_attr_floats(n, "support_vectors", &n_sv);
    const float *rho = eng_attr_floats(n, "rho", &n_rho);
    int64_t n_supports = eng_attr_int(n, "n_supports", 0);
    st->is_one_class = eng_attr_int(n, "one_class", 0) != 0;
    if (!n_coef)
        return st_fail(err, ST_EINVAL, "coefficients are missing");
    if (!n_rho)
        return st_fail(err, ST_EINVAL, "rho is missing");
    st->rho = rho[0];
    if (n_supports < 0 || n_supports > (1 << 30))
        return st_fail(err, ST_EINVAL, "n_supports is %lld", (long long)n_supports);
    st->n_vectors = (size_t)n_supports;
    if (st->n_vectors) {
        if (n_sv == 0 || n_sv % st->n_vectors != 0)
            return st_fail(err, ST_EINVAL, "%zu support_vectors values do not split into %zu vectors", n_sv,
                           st->n_vectors);
        if (n_coef != st->n_vectors)
            return st_fail(err, ST_EINVAL, "%zu coefficients for %zu support vectors", n_coef, st->n_vectors);
        st->n_features = n_sv / st->n_vectors;
    } else {
        st->n_features = n_coef;
        st->kernel.type = SVM_LINEAR;
    }
    n->state = st;
    return ST_OK;
}

st_status ml_svm_regressor_infer(eng_kctx *k)
{
    const svm_reg *st = k->node->state;
    return infer_regressor(k, st->n_features, 1);
}

st_status ml_svm_regressor_run(eng_kctx *k)
{
    const svm_reg *st = k->node->state;
    size_t rows, cols;
    double *xr;
    st_status s = rows_begin(k, &rows, &cols, &xr);
    if (s != ST_OK)
        return s;
    float *y = k->out[0]->data;
    for (size_t r = 0; r < rows; r++) {
        ml_read(k->in[0], r * cols, cols, xr);
        double score = st->rho;
        if (st->n_vectors) {
            for (size_t v = 0; v < st->n_vectors; v++)
                score += (double)st->coef[v] * svm_kernel_eval(&st->kernel, xr, st->sv + v * cols, cols);
        } else {
            score += dot_row(xr, st->coef, cols);
        }
        y[r] = st->is_one_class ? (score > 0 ? 1.0f : -1.0f) : (float)score;
        ml_post_row(st->post, &y[r], 1);
    }
    return ST_OK;
}
