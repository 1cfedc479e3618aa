/* test_ml_ops.c - edge cases of the ONNX-ML operators (ml*.c) that the
 * scikit-learn end-to-end tests do not reach: the binary special cases,
 * post transforms, string labels, every LabelEncoder opset, maps in and
 * out (also through a whole model: a map graph input, a sequence of maps
 * as graph output), and attributes refused at load with their reason. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testing.h"

#include "base/arena.h"
#include "engine/eng_int.h"

/* --- a tiny harness: one ai.onnx.ml node through check / infer / run ---- */

#define MAX_ATTRS 12

typedef struct harness {
    st_arena arena;
    onnx_attr attrs[MAX_ATTRS];
    size_t n_attrs;
    st_error err;
} harness;

static void h_init(harness *h)
{
    memset(h, 0, sizeof *h);
    st_arena_init(&h->arena, 0);
}

static void h_free(harness *h)
{
    st_arena_free(&h->arena);
}

static onnx_attr *add_attr(harness *h, const char *name, onnx_attr_type type)
{
    assert_true(h->n_attrs < MAX_ATTRS);
    onnx_attr *a = &h->attrs[h->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = st_str_c(name);
    a->type = type;
    return a;
}

static void attr_int(harness *h, const char *name, int64_t v)
{
    add_attr(h, name, ONNX_ATTR_INT)->i = v;
}

static void attr_float(harness *h, const char *name, float v)
{
    add_attr(h, name, ONNX_ATTR_FLOAT)->f = v;
}

static void attr_ints(harness *h, const char *name, const int64_t *v, size_t n)
{
    onnx_attr *a = add_attr(h, name, ONNX_ATTR_INTS);
    a->ints = v;
    a->int_count = n;
}

static void attr_floats(harness *h, const char *name, const float *v, size_t n)
{
    onnx_attr *a = add_attr(h, name, ONNX_ATTR_FLOATS);
    a->floats = v;
    a->float_count = n;
}

static void attr_str(harness *h, const char *name, const char *v)
{
    add_attr(h, name, ONNX_ATTR_STRING)->s = st_str_c(v);
}

static void attr_strs(harness *h, const char *name, const st_str *v, size_t n)
{
    onnx_attr *a = add_attr(h, name, ONNX_ATTR_STRINGS);
    a->strings = v;
    a->string_count = n;
}

static void attr_tensor(harness *h, const char *name, const onnx_tensor *t)
{
    add_attr(h, name, ONNX_ATTR_TENSOR)->t = t;
}

/* A 1-D tensor attribute over raw little-endian bytes. */
static onnx_tensor raw_tensor(int32_t type, const int64_t *dims, const void *data, size_t count, size_t es)
{
    onnx_tensor t;
    memset(&t, 0, sizeof t);
    t.data_type = type;
    t.dims = dims;
    t.dim_count = 1;
    t.elem_count = count;
    t.byte_size = count * es;
    t.has_raw_data = true;
    t.raw_data = (st_str){ .ptr = data, .len = count * es };
    return t;
}

static st_status check_op(harness *h, const char *op_type, int opset, uint32_t n_in, eng_node *node,
                          onnx_node *proto)
{
    const eng_op *op = eng_op_find(st_str_c("ai.onnx.ml"), st_str_c(op_type), opset);
    assert_non_null(op);
    *proto = (onnx_node){ .name = st_str_c("t"), .op_type = st_str_c(op_type), .attrs = h->attrs,
                          .attr_count = h->n_attrs };
    static int ids[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
    *node = (eng_node){ .op = op, .proto = proto, .opset = opset, .inputs = ids, .n_inputs = n_in,
                        .outputs = ids, .n_outputs = 2 };
    return op->check ? op->check(node, &h->arena, &h->err) : ST_OK;
}

/* Runs op_type at `opset` on inputs; outputs get arena memory.  Returns
 * the status of the first failing stage. */
static st_status run_op(harness *h, const char *op_type, int opset, const eng_tensor *const *in, uint32_t n_in,
                        eng_tensor *out, uint32_t n_out)
{
    onnx_node proto;
    eng_node node;
    st_status s = check_op(h, op_type, opset, n_in, &node, &proto);
    if (s != ST_OK)
        return s;
    node.n_outputs = n_out;
    eng_tensor *outs[4];
    for (uint32_t i = 0; i < n_out; i++) {
        memset(&out[i], 0, sizeof out[i]);
        outs[i] = &out[i];
    }
    eng_kctx k = { .node = &node, .in = in, .n_in = n_in, .out = outs, .n_out = n_out, .scratch = &h->arena,
                   .err = &h->err };
    if ((s = node.op->infer(&k)) != ST_OK)
        return s;
    for (uint32_t i = 0; i < n_out; i++) {
        size_t bytes;
        assert_true(eng_tensor_bytes(out[i].dtype, out[i].count, &bytes));
        out[i].data = st_arena_alloc(&h->arena, bytes ? bytes : 1, 64);
        assert_non_null(out[i].data);
    }
    return node.op->run(&k);
}

static eng_tensor tensor(st_dtype t, const int64_t *shape, uint32_t rank, const void *data)
{
    return eng_tensor_make(t, shape, rank, (void *)data);
}

static void assert_floats_near(const float *got, const float *want, size_t n, float tol)
{
    for (size_t i = 0; i < n; i++) {
        if (fabsf(got[i] - want[i]) > tol) {
            fprintf(stderr, "element %zu: got %.7g, want %.7g\n", i, got[i], want[i]);
            fail();
        }
    }
}

static void assert_str(st_str s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static const st_str abc[3] = { { "a", 1 }, { "b", 1 }, { "c", 1 } };

/* --- LinearClassifier ------------------------------------------------------ */

static void test_linear_binary_single_row(void **state)
{
    (void)state;
    /* One weight row, two string labels: scores [-s, s], LOGISTIC on both. */
    static const float coef[2] = { 1, -1 }, icpt[1] = { 0.5f };
    static const st_str labels[2] = { { "no", 2 }, { "yes", 3 } };
    static const float x[4] = { 1, 0, 0, 2 };
    int64_t xs[2] = { 2, 2 };
    eng_tensor xt = tensor(ST_DT_FLOAT32, xs, 2, x), out[2];
    const eng_tensor *in[1] = { &xt };
    harness h;
    h_init(&h);
    attr_floats(&h, "coefficients", coef, 2);
    attr_floats(&h, "intercepts", icpt, 1);
    attr_strs(&h, "classlabels_strings", labels, 2);
    attr_str(&h, "post_transform", "LOGISTIC");
    assert_int_equal(run_op(&h, "LinearClassifier", 1, in, 1, out, 2), ST_OK);
    assert_int_equal(out[1].shape[1], 2);
    assert_str(((st_str *)out[0].data)[0], "yes"); /* s = 1.5 */
    assert_str(((st_str *)out[0].data)[1], "no");  /* s = -1.5 */
    float want[4] = { 1 / (1 + expf(1.5f)), 1 / (1 + expf(-1.5f)), 1 / (1 + expf(-1.5f)), 1 / (1 + expf(1.5f)) };
    assert_floats_near(out[1].data, want, 4, 1e-6f);
    h_free(&h);

    /* No labels at all: 0/1 by the sign of the score, one score column. */
    h_init(&h);
    attr_floats(&h, "coefficients", coef, 2);
    attr_floats(&h, "intercepts", icpt, 1);
    assert_int_equal(run_op(&h, "LinearClassifier", 1, in, 1, out, 2), ST_OK);
    assert_int_equal(out[1].shape[1], 1);
    assert_int_equal(((int64_t *)out[0].data)[0], 1);
    assert_int_equal(((int64_t *)out[0].data)[1], 0);
    h_free(&h);
}

static void test_linear_multiclass_int_input_and_post(void **state)
{
    (void)state;
    /* Three classes from int64 features, no intercepts (targets from the
     * input width), SOFTMAX_ZERO keeps an exact zero score near zero. */
    static const float coef[6] = { 1, 0, 0, 1, 0, 0 };
    static const int64_t labels[3] = { 10, 20, 30 }, x[2] = { 2, 1 };
    int64_t xs[1] = { 2 };
    eng_tensor xt = tensor(ST_DT_INT64, xs, 1, x), out[2];
    const eng_tensor *in[1] = { &xt };
    harness h;
    h_init(&h);
    attr_floats(&h, "coefficients", coef, 6);
    attr_ints(&h, "classlabels_ints", labels, 3);
    attr_str(&h, "post_transform", "SOFTMAX_ZERO");
    assert_int_equal(run_op(&h, "LinearClassifier", 1, in, 1, out, 2), ST_OK);
    assert_int_equal(out[0].shape[0], 1);
    assert_int_equal(((int64_t *)out[0].data)[0], 10);
    float e2 = expf(0), e1 = expf(-1), z = 1 * expf(-2) * 0;
    float want[3] = { e2 / (e2 + e1), e1 / (e2 + e1), z };
    assert_floats_near(out[1].data, want, 3, 1e-6f);
    h_free(&h);

    /* PROBIT uses the spec's erfinv approximation: probit(0.5) = 0. */
    static const float half[2] = { 0.25f, 0.25f };
    static const float ones[2] = { 1, 1 };
    int64_t hs[2] = { 1, 2 };
    eng_tensor ht = tensor(ST_DT_FLOAT32, hs, 2, ones);
    const eng_tensor *in2[1] = { &ht };
    h_init(&h);
    attr_floats(&h, "coefficients", half, 2);
    attr_str(&h, "post_transform", "PROBIT");
    assert_int_equal(run_op(&h, "LinearRegressor", 1, in2, 1, out, 1), ST_OK);
    assert_true(fabsf(((float *)out[0].data)[0]) < 1e-6f);
    h_free(&h);
}

static void test_linear_refused_at_load(void **state)
{
    (void)state;
    static const float coef[5] = { 1, 2, 3, 4, 5 }, icpt[2] = { 0, 0 };
    static const int64_t labels[3] = { 0, 1, 2 };
    harness h;
    onnx_node proto;
    eng_node node;
    struct {
        const char *what;
        size_t n_coef, n_icpt, n_labels;
        const char *post;
        const char *msg;
    } bad[] = {
        { "split", 5, 2, 2, "NONE", "5 coefficients do not split into 2 classes" },
        { "labels", 4, 2, 3, "NONE", "2 intercepts (classes) but 3 class labels" },
        { "post", 4, 2, 2, "SIGMOID", "post_transform 'SIGMOID' is not" },
        { "none", 0, 2, 2, "NONE", "coefficients are missing" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_init(&h);
        if (bad[i].n_coef)
            attr_floats(&h, "coefficients", coef, bad[i].n_coef);
        attr_floats(&h, "intercepts", icpt, bad[i].n_icpt);
        attr_ints(&h, "classlabels_ints", labels, bad[i].n_labels);
        attr_str(&h, "post_transform", bad[i].post);
        assert_int_equal(check_op(&h, "LinearClassifier", 1, 1, &node, &proto), ST_EINVAL);
        if (!strstr(h.err.msg, bad[i].msg)) {
            fprintf(stderr, "%s: message '%s'\n", bad[i].what, h.err.msg);
            fail();
        }
        h_free(&h);
    }
    /* Both label kinds. */
    h_init(&h);
    attr_floats(&h, "coefficients", coef, 4);
    attr_ints(&h, "classlabels_ints", labels, 2);
    attr_strs(&h, "classlabels_strings", abc, 2);
    assert_int_equal(check_op(&h, "LinearClassifier", 1, 1, &node, &proto), ST_EINVAL);
    h_free(&h);
    /* LinearRegressor: intercepts per target. */
    h_init(&h);
    attr_floats(&h, "coefficients", coef, 4);
    attr_floats(&h, "intercepts", icpt, 1);
    attr_int(&h, "targets", 2);
    assert_int_equal(check_op(&h, "LinearRegressor", 1, 1, &node, &proto), ST_EINVAL);
    assert_non_null(strstr(h.err.msg, "1 intercepts for 2 targets"));
    h_free(&h);
}

/* --- SVMs ------------------------------------------------------------------------ */

static void test_svm_refused_at_load(void **state)
{
    (void)state;
    static const float coef[4] = { 1, -1, 1, -1 }, sv[4] = { 0, 0, 1, 1 }, rho[1] = { 0 }, pa[2] = { 1, 1 },
                       kp2[2] = { 1, 0 };
    static const int64_t labels[2] = { 0, 1 }, vpc[2] = { 1, 1 }, vpc3[3] = { 1, 1, 0 };
    harness h;
    onnx_node proto;
    eng_node node;
    struct {
        int variant;
        const char *msg;
    } bad[] = {
        { 0, "kernel_type 'GAUSS' is not" },
        { 1, "kernel_params has 2 values" },
        { 2, "vectors_per_class has 3 entries for 2 classes" },
        { 3, "4 coefficients, expected (classes - 1) x vectors = 2" },
        { 4, "prob_a has 2 values, prob_b 0" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int v = bad[i].variant;
        h_init(&h);
        attr_str(&h, "kernel_type", v == 0 ? "GAUSS" : "RBF");
        if (v == 1)
            attr_floats(&h, "kernel_params", kp2, 2);
        attr_ints(&h, "classlabels_ints", labels, 2);
        attr_ints(&h, "vectors_per_class", v == 2 ? vpc3 : vpc, v == 2 ? 3 : 2);
        attr_floats(&h, "support_vectors", sv, 4);
        attr_floats(&h, "coefficients", coef, v == 3 ? 4 : 2);
        attr_floats(&h, "rho", rho, 1);
        if (v == 4)
            attr_floats(&h, "prob_a", pa, 2);
        assert_int_equal(check_op(&h, "SVMClassifier", 1, 1, &node, &proto), ST_EINVAL);
        if (!strstr(h.err.msg, bad[i].msg)) {
            fprintf(stderr, "variant %d: message '%s'\n", v, h.err.msg);
            fail();
        }
        h_free(&h);
    }
    h_init(&h);
    attr_int(&h, "n_supports", 3);
    attr_floats(&h, "support_vectors", sv, 4);
    attr_floats(&h, "coefficients", coef, 3);
    attr_floats(&h, "rho", rho, 1);
    assert_int_equal(check_op(&h, "SVMRegressor", 1, 1, &node, &proto), ST_EINVAL);
    assert_non_null(strstr(h.err.msg, "do not split into 3 vectors"));
    h_free(&h);
}

static void test_svm_linear_mode_and_one_class(void **state)
{
    (void)state;
    /* No support vectors: one weight row per class plus rho[0]. */
    static const float coef[6] = { 1, 0, 0, 1, -1, -1 }, rho[1] = { 0.5f };
    static const int64_t labels[3] = { 7, 8, 9 };
    static const float x[4] = { 2, 0, -3, -1 };
    int64_t xs[2] = { 2, 2 };
    eng_tensor xt = tensor(ST_DT_FLOAT32, xs, 2, x), out[2];
    const eng_tensor *in[1] = { &xt };
    harness h;
    h_init(&h);
    attr_floats(&h, "coefficients", coef, 6);
    attr_floats(&h, "rho", rho, 1);
    attr_ints(&h, "classlabels_ints", labels, 3);
    assert_int_equal(run_op(&h, "SVMClassifier", 1, in, 1, out, 2), ST_OK);
    static const float want[6] = { 2.5f, 0.5f, -1.5f, -2.5f, -0.5f, 4.5f };
    assert_floats_near(out[1].data, want, 6, 1e-6f);
    assert_int_equal(((int64_t *)out[0].data)[0], 7);
    assert_int_equal(((int64_t *)out[0].data)[1], 9);
    h_free(&h);

    /* One-class SVMRegressor: +1 / -1 by the sign of the RBF score. */
    static const float sv[2] = { 0, 0 }, one[1] = { 1 }, r2[1] = { -0.5f }, kp[3] = { 1, 0, 0 };
    h_init(&h);
    attr_str(&h, "kernel_type", "RBF");
    attr_floats(&h, "kernel_params", kp, 3);
    attr_int(&h, "n_supports", 1);
    attr_int(&h, "one_class", 1);
    attr_floats(&h, "support_vectors", sv, 2);
    attr_floats(&h, "coefficients", one, 1);
    attr_floats(&h, "rho", r2, 1);
    static const float pts[4] = { 0.1f, 0.1f, 3, 3 };
    eng_tensor pt = tensor(ST_DT_FLOAT32, xs, 2, pts);
    const eng_tensor *in2[1] = { &pt };
    assert_int_equal(run_op(&h, "SVMRegressor", 1, in2, 1, out, 1), ST_OK);
    assert_true(((float *)out[0].data)[0] == 1.0f && ((float *)out[0].data)[1] == -1.0f);
    h_free(&h);
}

/* --- preprocessing ---------------------------------------------------------------- */

static void test_scaler_normalizer_imputer_binarizer(void **state)
{
    (void)state;
    static const float x[6] = { 1, 2, 3, 0, 0, 0 };
    int64_t xs[2] = { 2, 3 };
    eng_tensor xt = tensor(ST_DT_FLOAT32, xs, 2, x), out[1];
    const eng_tensor *in[1] = { &xt };
    harness h;

    static const float off[1] = { 1 }, scale3[3] = { 1, 2, 3 }, scale2[2] = { 1, 2 };
    h_init(&h);
    attr_floats(&h, "offset", off, 1);
    attr_floats(&h, "scale", scale3, 3);
    assert_int_equal(run_op(&h, "Scaler", 1, in, 1, out, 1), ST_OK);
    static const float want_sc[6] = { 0, 2, 6, -1, -2, -3 };
    assert_floats_near(out[0].data, want_sc, 6, 0);
    h_free(&h);
    h_init(&h);
    attr_floats(&h, "scale", scale2, 2);
    assert_int_equal(run_op(&h, "Scaler", 1, in, 1, out, 1), ST_ESHAPE);
    h_free(&h);

    /* L2 with an all-zero row: left as it is. */
    h_init(&h);
    attr_str(&h, "norm", "L2");
    assert_int_equal(run_op(&h, "Normalizer", 1, in, 1, out, 1), ST_OK);
    float r = sqrtf(14);
    float want_l2[6] = { 1 / r, 2 / r, 3 / r, 0, 0, 0 };
    assert_floats_near(out[0].data, want_l2, 6, 1e-6f);
    h_free(&h);
    h_init(&h);
    attr_str(&h, "norm", "L3");
    assert_int_equal(run_op(&h, "Normalizer", 1, in, 1, out, 1), ST_EINVAL);
    assert_non_null(strstr(h.err.msg, "norm 'L3' is not MAX, L1 or L2"));
    h_free(&h);

    /* Imputer on int64 with one value per column. */
    static const int64_t xi[6] = { -1, 5, -1, 7, -1, 9 }, fill[3] = { 10, 20, 30 };
    eng_tensor it = tensor(ST_DT_INT64, xs, 2, xi);
    const eng_tensor *in_i[1] = { &it };
    h_init(&h);
    attr_ints(&h, "imputed_value_int64s", fill, 3);
    attr_int(&h, "replaced_value_int64", -1);
    assert_int_equal(run_op(&h, "Imputer", 1, in_i, 1, out, 1), ST_OK);
    static const int64_t want_i[6] = { 10, 5, 30, 7, 20, 9 };
    assert_memory_equal(out[0].data, want_i, sizeof want_i);
    h_free(&h);
    /* A float input with only int64 fill values. */
    h_init(&h);
    attr_ints(&h, "imputed_value_int64s", fill, 3);
    assert_int_equal(run_op(&h, "Imputer", 1, in, 1, out, 1), ST_ETYPE);
    h_free(&h);

    /* Binarizer keeps the type; NaN is not above the threshold. */
    static const double xd[3] = { 0.5, NAN, 2 };
    int64_t ds[1] = { 3 };
    eng_tensor dt = tensor(ST_DT_FLOAT64, ds, 1, xd);
    const eng_tensor *in_d[1] = { &dt };
    h_init(&h);
    attr_float(&h, "threshold", 1.0f);
    assert_int_equal(run_op(&h, "Binarizer", 1, in_d, 1, out, 1), ST_OK);
    assert_int_equal(out[0].dtype, ST_DT_FLOAT64);
    static const double want_b[3] = { 0, 0, 1 };
    assert_memory_equal(out[0].data, want_b, sizeof want_b);
    h_free(&h);
}

static void test_one_hot_and_feature_ops(void **state)
{
    (void)state;
    static const st_str x[4] = { { "b", 1 }, { "z", 1 }, { "a", 1 }, { "c", 1 } };
    int64_t xs[2] = { 2, 2 };
    eng_tensor xt = tensor(ST_DT_STRING, xs, 2, x), out[1];
    const eng_tensor *in[1] = { &xt };
    harness h;
    h_init(&h);
    attr_strs(&h, "cats_strings", abc, 3);
    assert_int_equal(run_op(&h, "OneHotEncoder", 1, in, 1, out, 1), ST_OK);
    assert_int_equal(out[0].rank, 3);
    assert_int_equal(out[0].shape[2], 3);
    static const float want[12] = { 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1 };
    assert_memory_equal(out[0].data, want, sizeof want);
    h_free(&h);
    h_init(&h);
    attr_strs(&h, "cats_strings", abc, 3);
    attr_int(&h, "zeros", 0);
    assert_int_equal(run_op(&h, "OneHotEncoder", 1, in, 1, out, 1), ST_EINVAL);
    assert_non_null(strstr(h.err.msg, "element 1 is not one of the 3 categories"));
    h_free(&h);

    /* Float categories are truncated; NaN and huge values match nothing. */
    static const float xf[3] = { NAN, 2.7f, 1e30f };
    static const int64_t cat2[1] = { 2 };
    int64_t fs[1] = { 3 };
    eng_tensor ft = tensor(ST_DT_FLOAT32, fs, 1, xf);
    const eng_tensor *in_f[1] = { &ft };
    h_init(&h);
    attr_ints(&h, "cats_int64s", cat2, 1);
    assert_int_equal(run_op(&h, "OneHotEncoder", 1, in_f, 1, out, 1), ST_OK);
    static const float want_f[3] = { 0, 1, 0 };
    assert_memory_equal(out[0].data, want_f, sizeof want_f);
    h_free(&h);

    /* ArrayFeatureExtractor: a rank-1 input gives one row; strings too. */
    static const int64_t idx[2] = { 2, 0 }, bad_idx[1] = { 4 };
    int64_t is[1] = { 2 }, ss[1] = { 3 };
    eng_tensor st = tensor(ST_DT_STRING, ss, 1, abc), it = tensor(ST_DT_INT64, is, 1, idx);
    const eng_tensor *in2[2] = { &st, &it };
    h_init(&h);
    assert_int_equal(run_op(&h, "ArrayFeatureExtractor", 1, in2, 2, out, 1), ST_OK);
    assert_int_equal(out[0].rank, 2);
    assert_int_equal(out[0].shape[0], 1);
    assert_str(((st_str *)out[0].data)[0], "c");
    assert_str(((st_str *)out[0].data)[1], "a");
    is[0] = 1;
    eng_tensor bt = tensor(ST_DT_INT64, is, 1, bad_idx);
    const eng_tensor *in3[2] = { &st, &bt };
    assert_int_equal(run_op(&h, "ArrayFeatureExtractor", 1, in3, 2, out, 1), ST_EINVAL);
    h_free(&h);

    /* FeatureVectorizer pads short inputs and cuts long ones. */
    static const float a[4] = { 1, 2, 3, 4 };
    static const int64_t b[2] = { 5, 6 }, dims[2] = { 1, 3 };
    int64_t as[2] = { 2, 2 }, bs[2] = { 2, 1 };
    eng_tensor at = tensor(ST_DT_FLOAT32, as, 2, a), bt2 = tensor(ST_DT_INT64, bs, 2, b);
    const eng_tensor *in4[2] = { &at, &bt2 };
    h_init(&h);
    attr_ints(&h, "inputdimensions", dims, 2);
    assert_int_equal(run_op(&h, "FeatureVectorizer", 1, in4, 2, out, 1), ST_OK);
    static const float want_fv[8] = { 1, 5, 0, 0, 3, 6, 0, 0 };
    assert_memory_equal(out[0].data, want_fv, sizeof want_fv);
    h_free(&h);
    h_init(&h);
    attr_ints(&h, "inputdimensions", dims, 1);
    assert_int_equal(run_op(&h, "FeatureVectorizer", 1, in4, 2, out, 1), ST_EINVAL);
    assert_non_null(strstr(h.err.msg, "inputdimensions has 1 entries for 2 inputs"));
    h_free(&h);
}

/* --- encoders -------------------------------------------------------------------- */

static void test_label_encoder_opsets(void **state)
{
    (void)state;
    harness h;
    eng_tensor out[1];
    /* Opset 1: strings <-> positions in classes_strings. */
    static const st_str xs_[3] = { { "c", 1 }, { "q", 1 }, { "a", 1 } };
    static const int64_t xi[3] = { 1, 5, 0 };
    int64_t n3[1] = { 3 };
    eng_tensor ts = tensor(ST_DT_STRING, n3, 1, xs_), ti = tensor(ST_DT_INT64, n3, 1, xi);
    const eng_tensor *in_s[1] = { &ts }, *in_i[1] = { &ti };
    h_init(&h);
    attr_strs(&h, "classes_strings", abc, 3);
    attr_int(&h, "default_int64", -7);
    assert_int_equal(run_op(&h, "LabelEncoder", 1, in_s, 1, out, 1), ST_OK);
    static const int64_t want1[3] = { 2, -7, 0 };
    assert_memory_equal(out[0].data, want1, sizeof want1);
    assert_int_equal(run_op(&h, "LabelEncoder", 1, in_i, 1, out, 1), ST_OK);
    assert_str(((st_str *)out[0].data)[0], "b");
    assert_str(((st_str *)out[0].data)[1], "_Unused");
    h_free(&h);

    /* Opset 2: float keys (NaN matches NaN) to strings. */
    static const float kf[3] = { 0.5f, NAN, -1 };
    static const float xf[3] = { NAN, -1, 2 };
    eng_tensor tf = tensor(ST_DT_FLOAT32, n3, 1, xf);
    const eng_tensor *in_f[1] = { &tf };
    h_init(&h);
    attr_floats(&h, "keys_floats", kf, 3);
    attr_strs(&h, "values_strings", abc, 3);
    attr_str(&h, "default_string", "?");
    assert_int_equal(run_op(&h, "LabelEncoder", 2, in_f, 1, out, 1), ST_OK);
    assert_str(((st_str *)out[0].data)[0], "b");
    assert_str(((st_str *)out[0].data)[1], "c");
    assert_str(((st_str *)out[0].data)[2], "?");
    /* The input type must suit the keys. */
    assert_int_equal(run_op(&h, "LabelEncoder", 2, in_s, 1, out, 1), ST_ETYPE);
    h_free(&h);
    h_init(&h);
    attr_floats(&h, "keys_floats", kf, 3);
    attr_strs(&h, "values_strings", abc, 2);
    assert_int_equal(run_op(&h, "LabelEncoder", 2, in_f, 1, out, 1), ST_EINVAL);
    assert_non_null(strstr(h.err.msg, "3 keys but 2 values"));
    h_free(&h);

    /* Opset 4: int64 keys_tensor to double values_tensor, default_tensor. */
    static const int64_t keys[2] = { 5, 1 }, dim2[1] = { 2 }, dim1[1] = { 1 };
    static const double vals[2] = { 0.25, 4.5 }, dflt[1] = { -2 };
    onnx_tensor kt = raw_tensor(ST_DT_INT64, dim2, keys, 2, 8), vt = raw_tensor(ST_DT_FLOAT64, dim2, vals, 2, 8),
                dt = raw_tensor(ST_DT_FLOAT64, dim1, dflt, 1, 8);
    h_init(&h);
    attr_tensor(&h, "keys_tensor", &kt);
    attr_tensor(&h, "values_tensor", &vt);
    attr_tensor(&h, "default_tensor", &dt);
    assert_int_equal(run_op(&h, "LabelEncoder", 4, in_i, 1, out, 1), ST_OK);
    assert_int_equal(out[0].dtype, ST_DT_FLOAT64);
    static const double want4[3] = { 4.5, 0.25, -2 };
    assert_memory_equal(out[0].data, want4, sizeof want4);
    h_free(&h);

    /* CategoryMapper both ways. */
    static const int64_t cats[3] = { 100, 200, 300 };
    static const int64_t xc[3] = { 300, 7, 100 };
    eng_tensor tc = tensor(ST_DT_INT64, n3, 1, xc);
    const eng_tensor *in_c[1] = { &tc };
    h_init(&h);
    attr_strs(&h, "cats_strings", abc, 3);
    attr_ints(&h, "cats_int64s", cats, 3);
    attr_str(&h, "default_string", "none");
    assert_int_equal(run_op(&h, "CategoryMapper", 1, in_c, 1, out, 1), ST_OK);
    assert_str(((st_str *)out[0].data)[0], "c");
    assert_str(((st_str *)out[0].data)[1], "none");
    assert_int_equal(run_op(&h, "CategoryMapper", 1, in_s, 1, out, 1), ST_OK);
    static const int64_t want_c[3] = { 300, -1, 100 };
    assert_memory_equal(out[0].data, want_c, sizeof want_c);
    h_free(&h);
    h_init(&h);
    attr_strs(&h, "cats_strings", abc, 3);
    attr_ints(&h, "cats_int64s", cats, 2);
    assert_int_equal(run_op(&h, "CategoryMapper", 1, in_c, 1, out, 1), ST_EINVAL);
    h_free(&h);
}

/* --- maps -------------------------------------------------------------------------- */

static void test_zipmap_and_dict_vectorizer(void **state)
{
    (void)state;
    static const float x[4] = { 0.25f, 0.75f, 1, 0 };
    static const int64_t labels[2] = { 4, 9 };
    int64_t xs[2] = { 2, 2 };
    eng_tensor xt = tensor(ST_DT_FLOAT32, xs, 2, x), out[1];
    const eng_tensor *in[1] = { &xt };
    harness h;
    h_init(&h);
    attr_ints(&h, "classlabels_int64s", labels, 2);
    assert_int_equal(run_op(&h, "ZipMap", 1, in, 1, out, 1), ST_OK);
    assert_int_equal(out[0].dtype, ENG_DT_SEQUENCE);
    assert_int_equal(out[0].count, 2);
    assert_int_equal(out[0].shape[1], ENG_DT_MAP);
    const eng_tensor *m1 = &((eng_tensor *)out[0].data)[1];
    assert_int_equal(m1->dtype, ENG_DT_MAP);
    assert_int_equal(m1->count, 2);
    assert_int_equal(m1->shape[1], ST_DT_INT64);
    const eng_tensor *kv = m1->data;
    assert_int_equal(((int64_t *)kv[0].data)[1], 9);
    assert_true(((float *)kv[1].data)[0] == 1.0f);

    /* The ZipMap output (a sequence of int64-keyed maps) through
     * DictVectorizer: one dense row per map in vocabulary order. */
    static const int64_t vocab[3] = { 9, 5, 4 };
    eng_tensor seq = out[0], dense[1];
    const eng_tensor *in2[1] = { &seq };
    h.n_attrs = 0;
    attr_ints(&h, "int64_vocabulary", vocab, 3);
    assert_int_equal(run_op(&h, "DictVectorizer", 1, in2, 1, dense, 1), ST_OK);
    assert_int_equal(dense[0].shape[0], 2);
    assert_int_equal(dense[0].shape[1], 3);
    static const float want[6] = { 0.75f, 0, 0.25f, 0, 0, 1 };
    assert_memory_equal(dense[0].data, want, sizeof want);
    /* String vocabulary against int64 keys. */
    h.n_attrs = 0;
    attr_strs(&h, "string_vocabulary", abc, 3);
    assert_int_equal(run_op(&h, "DictVectorizer", 1, in2, 1, dense, 1), ST_ETYPE);
    /* Column count must match the labels. */
    h.n_attrs = 0;
    attr_ints(&h, "classlabels_int64s", labels, 1);
    assert_int_equal(run_op(&h, "ZipMap", 1, in, 1, out, 1), ST_ESHAPE);
    h_free(&h);
}

/* A whole model: X map(string, float) -> DictVectorizer(a, b, c) -> Y
 * [1, 3] -> ZipMap(a, b, c) -> Z seq(map(string, float)).  Bytes made
 * with the onnx helper API (ir_version 8, opsets "" 15, ai.onnx.ml 1). */
static const char map_model[] =
    "\x08\x08\x3a\xc2\x01\x0a\x43\x0a\x01\x58\x12\x01\x59\x22\x0e\x44\x69\x63\x74\x56\x65\x63\x74\x6f"
    "\x72\x69\x7a\x65\x72\x2a\x1f\x0a\x11\x73\x74\x72\x69\x6e\x67\x5f\x76\x6f\x63\x61\x62\x75\x6c\x61"
    "\x72\x79\x4a\x01\x61\x4a\x01\x62\x4a\x01\x63\xa0\x01\x08\x3a\x0a\x61\x69\x2e\x6f\x6e\x6e\x78\x2e"
    "\x6d\x6c\x0a\x3d\x0a\x01\x59\x12\x01\x5a\x22\x06\x5a\x69\x70\x4d\x61\x70\x2a\x21\x0a\x13\x63\x6c"
    "\x61\x73\x73\x6c\x61\x62\x65\x6c\x73\x5f\x73\x74\x72\x69\x6e\x67\x73\x4a\x01\x61\x4a\x01\x62\x4a"
    "\x01\x63\xa0\x01\x08\x3a\x0a\x61\x69\x2e\x6f\x6e\x6e\x78\x2e\x6d\x6c\x12\x01\x67\x5a\x0f\x0a\x01"
    "\x58\x12\x0a\x2a\x08\x08\x08\x12\x04\x0a\x02\x08\x01\x62\x13\x0a\x01\x59\x12\x0e\x0a\x0c\x08\x01"
    "\x12\x08\x0a\x02\x08\x01\x0a\x02\x08\x03\x62\x13\x0a\x01\x5a\x12\x0e\x22\x0c\x0a\x0a\x2a\x08\x08"
    "\x08\x12\x04\x0a\x02\x08\x01\x42\x04\x0a\x00\x10\x0f\x42\x0e\x0a\x0a\x61\x69\x2e\x6f\x6e\x6e\x78"
    "\x2e\x6d\x6c\x10\x01";

static void test_map_model_end_to_end(void **state)
{
    (void)state;
    eng_model *m = NULL;
    eng_session *s = NULL;
    st_error err = { 0 };
    assert_int_equal(eng_load_memory((const uint8_t *)map_model, sizeof map_model - 1, NULL, NULL, &m, &err), ST_OK);
    assert_int_equal(eng_input(m, 0)->dtype, ENG_DT_MAP);
    assert_int_equal(eng_output(m, 1)->dtype, ENG_DT_SEQUENCE);
    assert_int_equal(eng_session_new(m, &s, &err), ST_OK);
    static const st_str keys[2] = { { "c", 1 }, { "zz", 2 } };
    static const float vals[2] = { 2.5f, 9 };
    int64_t n2[1] = { 2 };
    eng_tensor kv[2] = { eng_tensor_make(ST_DT_STRING, n2, 1, (void *)keys),
                         eng_tensor_make(ST_DT_FLOAT32, n2, 1, (void *)vals) };
    eng_tensor x = eng_tensor_make(ENG_DT_MAP, n2, 1, kv);
    x.shape[1] = ST_DT_STRING;
    x.shape[2] = ST_DT_FLOAT32;
    eng_tensor outs[2];
    for (int run = 0; run < 2; run++) { /* the second run goes through the memory plan */
        assert_int_equal(eng_run(s, &x, 1, outs, 2, &err), ST_OK);
        static const float want[3] = { 0, 0, 2.5f };
        assert_int_equal(outs[0].count, 3);
        assert_memory_equal(outs[0].data, want, sizeof want);
        assert_int_equal(outs[1].count, 1);
        const eng_tensor *map = outs[1].data;
        const eng_tensor *mkv = map->data;
        assert_str(((st_str *)mkv[0].data)[2], "c");
        assert_true(((float *)mkv[1].data)[2] == 2.5f);
    }
    /* A tensor where the map belongs. */
    float plain[2] = { 1, 2 };
    eng_tensor bad = eng_tensor_make(ST_DT_FLOAT32, n2, 1, plain);
    assert_int_not_equal(eng_run(s, &bad, 1, outs, 2, &err), ST_OK);
    eng_session_free(s);
    eng_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_binary_single_row),
        cmocka_unit_test(test_linear_multiclass_int_input_and_post),
        cmocka_unit_test(test_linear_refused_at_load),
        cmocka_unit_test(test_svm_refused_at_load),
        cmocka_unit_test(test_svm_linear_mode_and_one_class),
        cmocka_unit_test(test_scaler_normalizer_imputer_binarizer),
        cmocka_unit_test(test_one_hot_and_feature_ops),
        cmocka_unit_test(test_label_encoder_opsets),
        cmocka_unit_test(test_zipmap_and_dict_vectorizer),
        cmocka_unit_test(test_map_model_end_to_end),
    };
    return cmocka_run_group_tests_name("ml_ops", tests, NULL, NULL);
}
