/* test_engine.c - the engine's load-time passes and memory plans on small
 * models built here with the ONNX protobuf encoding written by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/buf.h"
#include "engine/engine.h"

/* --- a tiny protobuf writer for test models ------------------------------ */

static void pb_varint(st_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        st_buf_append_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    st_buf_append_byte(b, (uint8_t)v);
}

static void pb_tag(st_buf *b, unsigned field, unsigned wire)
{
    pb_varint(b, (uint64_t)field << 3 | wire);
}

static void pb_bytes(st_buf *b, unsigned field, const void *data, size_t len)
{
    pb_tag(b, field, 2);
    pb_varint(b, len);
    st_buf_append(b, data, len);
}

static void pb_str(st_buf *b, unsigned field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

static void pb_msg(st_buf *b, unsigned field, st_buf *inner)
{
    pb_bytes(b, field, inner->data, inner->len);
    st_buf_free(inner);
}

static void pb_int(st_buf *b, unsigned field, int64_t v)
{
    pb_tag(b, field, 0);
    pb_varint(b, (uint64_t)v);
}

/* NodeProto: inputs, outputs, op_type. */
static void add_node(st_buf *graph, const char *op, const char *in0, const char *in1, const char *out)
{
    st_buf n = { 0 };
    pb_str(&n, 1, in0);
    if (in1)
        pb_str(&n, 1, in1);
    pb_str(&n, 2, out);
    pb_str(&n, 4, op);
    pb_msg(graph, 1, &n);
}

/* TensorProto float32 of shape [rows, count / rows] (or [count] when rows
 * is 0) with raw data. */
static void add_initializer_2d(st_buf *graph, const char *name, const float *v, int64_t count, int64_t rows)
{
    st_buf t = { 0 };
    if (rows) {
        pb_int(&t, 1, rows);
        pb_int(&t, 1, count / rows);
    } else {
        pb_int(&t, 1, count);
    }
    pb_int(&t, 2, 1);
    pb_str(&t, 8, name);
    pb_bytes(&t, 9, v, (size_t)count * sizeof *v);
    pb_msg(graph, 5, &t);
}

static void add_initializer(st_buf *graph, const char *name, const float *v, int64_t count)
{
    add_initializer_2d(graph, name, v, count, 0);
}

/* ValueInfoProto float32 [dim]. */
static void add_value_info(st_buf *graph, unsigned field, const char *name, int64_t dim)
{
    st_buf d = { 0 }, shape = { 0 }, tensor = { 0 }, type = { 0 }, vi = { 0 };
    pb_int(&d, 1, dim);
    pb_msg(&shape, 1, &d);
    pb_int(&tensor, 1, 1);
    pb_msg(&tensor, 2, &shape);
    pb_msg(&type, 1, &tensor);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(graph, field, &vi);
}

static void finish_model(st_buf *model, st_buf *graph)
{
    st_buf opset = { 0 };
    pb_int(model, 1, 8);
    pb_str(&opset, 1, "");
    pb_int(&opset, 2, 13);
    pb_msg(model, 8, &opset);
    pb_msg(model, 7, graph);
}

/* y = (x + (a + b)) through an Identity and a dead branch: a + b folds,
 * the Identity goes, the dead Mul goes: one Add remains. */
static void test_passes_fold_and_prune(void **state)
{
    (void)state;
    st_buf graph = { 0 }, model = { 0 };
    const float a[4] = { 1, 2, 3, 4 }, b[4] = { 10, 20, 30, 40 };
    add_initializer(&graph, "a", a, 4);
    add_initializer(&graph, "b", b, 4);
    add_node(&graph, "Add", "a", "b", "ab");
    add_node(&graph, "Identity", "x", NULL, "x2");
    add_node(&graph, "Mul", "x2", "x2", "dead");
    add_node(&graph, "Add", "x2", "ab", "y");
    add_value_info(&graph, 11, "x", 4);
    add_value_info(&graph, 12, "y", 4);
    finish_model(&model, &graph);

    eng_model *m = NULL;
    st_error err = { 0 };
    assert_int_equal(eng_load_memory(model.data, model.len, NULL, NULL, &m, &err), ST_OK);
    assert_int_equal(eng_node_count(m), 1);
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, &err), ST_OK);
    float x[4] = { 0.5f, 0.25f, -1, 100 };
    int64_t shape[1] = { 4 };
    eng_tensor in = eng_tensor_make(ST_DT_FLOAT32, shape, 1, x), out;
    for (int run = 0; run < 3; run++) { /* arena run, then planned runs */
        assert_int_equal(eng_run(s, &in, 1, &out, 1, &err), ST_OK);
        for (int i = 0; i < 4; i++)
            assert_true(((float *)out.data)[i] == x[i] + a[i] + b[i]);
    }
    eng_session_free(s);
    eng_free(m);

    /* Without passes the same model keeps all four nodes. */
    eng_options opt = { .no_optimize = true };
    assert_int_equal(eng_load_memory(model.data, model.len, NULL, &opt, &m, &err), ST_OK);
    assert_int_equal(eng_node_count(m), 4);
    eng_free(m);
    st_buf_free(&model);
}

/* relu(x W + b) loads as one MatMul with a fused bias and activation. */
static void test_fusion_matmul_bias_relu(void **state)
{
    (void)state;
    st_buf graph = { 0 }, model = { 0 };
    const float w[12] = { 1, -1, 0.5f, 2, 0, -2, -1, 1, 1, 0, 3, -0.5f }; /* [4, 3] */
    const float b[3] = { 0.25f, -10, 1 };
    add_initializer_2d(&graph, "w", w, 12, 4);
    add_initializer(&graph, "b", b, 3);
    add_node(&graph, "MatMul", "x", "w", "xw");
    add_node(&graph, "Add", "xw", "b", "xwb");
    add_node(&graph, "Relu", "xwb", NULL, "y");
    add_value_info(&graph, 11, "x", 4);
    add_value_info(&graph, 12, "y", 3);
    finish_model(&model, &graph);
    eng_model *m = NULL;
    eng_session *s = NULL;
    st_error err = { 0 };
    assert_int_equal(eng_load_memory(model.data, model.len, NULL, NULL, &m, &err), ST_OK);
    assert_int_equal(eng_node_count(m), 1);
    assert_int_equal(eng_session_new(m, &s, &err), ST_OK);
    float x[4] = { 1, 2, -3, 0.5f };
    int64_t shape[1] = { 4 };
    eng_tensor in = eng_tensor_make(ST_DT_FLOAT32, shape, 1, x), out;
    assert_int_equal(eng_run(s, &in, 1, &out, 1, &err), ST_OK);
    assert_int_equal(out.count, 3);
    for (int j = 0; j < 3; j++) {
        float acc = b[j];
        for (int i = 0; i < 4; i++)
            acc += x[i] * w[i * 3 + j];
        assert_float_equal(((float *)out.data)[j], acc > 0 ? acc : 0, 1e-5);
    }
    eng_session_free(s);
    eng_free(m);
    st_buf_free(&model);
}

/* A weight over 8 MiB that only MatMul reads is multiplied where it lies
 * in the model bytes, at whatever byte address: the model is loaded at
 * four shifts so that the weight sits misaligned in most of them. */
static void test_weight_in_place(void **state)
{
    (void)state;
    enum { K = 1024, N = 2100 };
    st_buf graph = { 0 }, model = { 0 };
    float *w = malloc((size_t)K * N * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < (size_t)K * N; i++)
        w[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    add_initializer_2d(&graph, "w", w, (int64_t)K * N, K);
    add_node(&graph, "MatMul", "x", "w", "y");
    add_value_info(&graph, 11, "x", K);
    add_value_info(&graph, 12, "y", N);
    finish_model(&model, &graph);
    unsigned char *bytes = malloc(model.len + 4);
    assert_non_null(bytes);
    float x[K];
    for (int i = 0; i < K; i++)
        x[i] = (float)(i % 7) - 3.0f;
    for (size_t shift = 0; shift < 4; shift++) {
        memcpy(bytes + shift, model.data, model.len);
        eng_model *m = NULL;
        eng_session *s = NULL;
        st_error err = { 0 };
        assert_int_equal(eng_load_memory(bytes + shift, model.len, NULL, NULL, &m, &err), ST_OK);
        assert_int_equal(eng_session_new(m, &s, &err), ST_OK);
        int64_t shape[1] = { K };
        eng_tensor in = eng_tensor_make(ST_DT_FLOAT32, shape, 1, x), out;
        assert_int_equal(eng_run(s, &in, 1, &out, 1, &err), ST_OK);
        assert_int_equal(out.count, N);
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int i = 0; i < K; i++)
                acc += (double)x[i] * w[(size_t)i * N + j];
            assert_float_equal(((float *)out.data)[j], acc, 1e-3);
        }
        eng_session_free(s);
        eng_free(m);
    }
    free(bytes);
    free(w);
    st_buf_free(&model);
}

/* ValueInfoProto float32 of rank 4; a negative dim is the dynamic "N". */
static void add_value_info_4d(st_buf *graph, unsigned field, const char *name, const int64_t *dims)
{
    st_buf shape = { 0 }, tensor = { 0 }, type = { 0 }, vi = { 0 };
    for (int i = 0; i < 4; i++) {
        st_buf d = { 0 };
        if (dims[i] < 0)
            pb_str(&d, 2, "N");
        else
            pb_int(&d, 1, dims[i]);
        pb_msg(&shape, 1, &d);
    }
    pb_int(&tensor, 1, 1);
    pb_msg(&tensor, 2, &shape);
    pb_msg(&type, 1, &tensor);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(graph, field, &vi);
}

/* relu(Conv(x, W)) with W [16, 16, 3, 3] on 10x10 images: a conv the
 * Winograd path takes on AVX-512 (the direct path elsewhere), with the
 * ReLU fused, alone and with images shared over two threads; against a
 * naive convolution. */
static void test_conv3x3_relu(void **state)
{
    (void)state;
    enum { C = 16, H = 10, OH = 8 };
    st_buf graph = { 0 }, model = { 0 }, t = { 0 };
    static float w[C * C * 9];
    for (size_t i = 0; i < C * C * 9; i++)
        w[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    pb_int(&t, 1, C);
    pb_int(&t, 1, C);
    pb_int(&t, 1, 3);
    pb_int(&t, 1, 3);
    pb_int(&t, 2, 1);
    pb_str(&t, 8, "w");
    pb_bytes(&t, 9, w, sizeof w);
    pb_msg(&graph, 5, &t);
    add_node(&graph, "Conv", "x", "w", "c");
    add_node(&graph, "Relu", "c", NULL, "y");
    add_value_info_4d(&graph, 11, "x", (const int64_t[]){ -1, C, H, H });
    add_value_info_4d(&graph, 12, "y", (const int64_t[]){ -1, C, OH, OH });
    finish_model(&model, &graph);
    enum { N = 4 };
    static float x[N * C * H * H];
    for (size_t i = 0; i < N * C * H * H; i++)
        x[i] = (float)((i * 40503u) % 2001) / 1000.0f - 1.0f;
    for (int threads = 1; threads <= 2; threads++) {
        eng_options opt = { .threads = threads };
        eng_model *m = NULL;
        eng_session *s = NULL;
        st_error err = { 0 };
        assert_int_equal(eng_load_memory(model.data, model.len, NULL, &opt, &m, &err), ST_OK);
        assert_int_equal(eng_session_new(m, &s, &err), ST_OK);
        for (int64_t n = 1; n <= N; n += N - 1) {
            int64_t shape[4] = { n, C, H, H };
            eng_tensor in = eng_tensor_make(ST_DT_FLOAT32, shape, 4, x), out;
            assert_int_equal(eng_run(s, &in, 1, &out, 1, &err), ST_OK);
            assert_int_equal(out.count, (size_t)(n * C * OH * OH));
            const float *y = out.data;
            for (int64_t b = 0; b < n; b++)
                for (int mo = 0; mo < C; mo++)
                    for (int oy = 0; oy < OH; oy++)
                        for (int ox = 0; ox < OH; ox++) {
                            double acc = 0;
                            for (int c = 0; c < C; c++)
                                for (int i = 0; i < 3; i++)
                                    for (int j = 0; j < 3; j++)
                                        acc += (double)x[((b * C + c) * H + oy + i) * H + ox + j] *
                                               w[((mo * C + c) * 3 + i) * 3 + j];
                            assert_float_equal(y[((b * C + mo) * OH + oy) * OH + ox], acc > 0 ? acc : 0, 1e-4);
                        }
        }
        eng_session_free(s);
        eng_free(m);
    }
    st_buf_free(&model);
}

/* x * 0.5 * (1 + erf(x / sqrt 2)), as exporters write GELU, loads as one
 * Gelu node and computes the same values. */
static void test_fusion_gelu(void **state)
{
    (void)state;
    st_buf graph = { 0 }, model = { 0 };
    const float sqrt2 = 1.41421356f, one = 1, half = 0.5f;
    add_initializer(&graph, "sqrt2", &sqrt2, 1);
    add_initializer(&graph, "one", &one, 1);
    add_initializer(&graph, "half", &half, 1);
    add_node(&graph, "Div", "x", "sqrt2", "d");
    add_node(&graph, "Erf", "d", NULL, "e");
    add_node(&graph, "Add", "e", "one", "a");
    add_node(&graph, "Mul", "x", "a", "m");
    add_node(&graph, "Mul", "m", "half", "y");
    add_value_info(&graph, 11, "x", 5);
    add_value_info(&graph, 12, "y", 5);
    finish_model(&model, &graph);
    eng_model *m = NULL;
    eng_session *s = NULL;
    st_error err = { 0 };
    assert_int_equal(eng_load_memory(model.data, model.len, NULL, NULL, &m, &err), ST_OK);
    assert_int_equal(eng_node_count(m), 1);
    assert_int_equal(eng_session_new(m, &s, &err), ST_OK);
    float x[5] = { -3, -0.5f, 0, 0.75f, 4 };
    int64_t shape[1] = { 5 };
    eng_tensor in = eng_tensor_make(ST_DT_FLOAT32, shape, 1, x), out;
    assert_int_equal(eng_run(s, &in, 1, &out, 1, &err), ST_OK);
    for (int i = 0; i < 5; i++)
        assert_float_equal(((float *)out.data)[i], 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0))), 1e-6);
    eng_session_free(s);
    eng_free(m);
    st_buf_free(&model);
}

/* Bad models are refused with a message naming the problem. */
static void test_load_errors(void **state)
{
    (void)state;
    st_buf graph = { 0 }, model = { 0 };
    add_node(&graph, "Add", "x", "nowhere", "y");
    add_value_info(&graph, 11, "x", 4);
    add_value_info(&graph, 12, "y", 4);
    finish_model(&model, &graph);
    eng_model *m = NULL;
    st_error err = { 0 };
    assert_int_equal(eng_load_memory(model.data, model.len, NULL, NULL, &m, &err), ST_ECORRUPT);
    assert_non_null(strstr(err.msg, "'nowhere'"));
    assert_null(m);
    st_buf_free(&model);

    graph = (st_buf){ 0 };
    model = (st_buf){ 0 };
    add_node(&graph, "FrobnicateTensor", "x", NULL, "y");
    add_value_info(&graph, 11, "x", 4);
    add_value_info(&graph, 12, "y", 4);
    finish_model(&model, &graph);
    assert_int_equal(eng_load_memory(model.data, model.len, NULL, NULL, &m, &err), ST_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "FrobnicateTensor"));
    assert_non_null(strstr(err.msg, "opset 13"));
    st_buf_free(&model);

    graph = (st_buf){ 0 };
    model = (st_buf){ 0 };
    add_node(&graph, "Relu", "z", NULL, "y");
    add_node(&graph, "Relu", "y", NULL, "z");
    add_value_info(&graph, 11, "x", 4);
    add_value_info(&graph, 12, "y", 4);
    finish_model(&model, &graph);
    assert_int_equal(eng_load_memory(model.data, model.len, NULL, NULL, &m, &err), ST_ECORRUPT);
    assert_non_null(strstr(err.msg, "cycle"));
    st_buf_free(&model);
}

/* Inputs that do not match the declaration are refused by name. */
static void test_input_checks(void **state)
{
    (void)state;
    st_buf graph = { 0 }, model = { 0 };
    add_node(&graph, "Relu", "x", NULL, "y");
    add_value_info(&graph, 11, "x", 4);
    add_value_info(&graph, 12, "y", 4);
    finish_model(&model, &graph);
    eng_model *m = NULL;
    eng_session *s = NULL;
    st_error err = { 0 };
    assert_int_equal(eng_load_memory(model.data, model.len, NULL, NULL, &m, &err), ST_OK);
    assert_int_equal(eng_session_new(m, &s, &err), ST_OK);
    float x[5] = { 0 };
    int64_t shape[1] = { 5 };
    eng_tensor in = eng_tensor_make(ST_DT_FLOAT32, shape, 1, x), out;
    assert_int_equal(eng_run(s, &in, 1, &out, 1, &err), ST_ESHAPE);
    assert_non_null(strstr(err.msg, "'x'"));
    shape[0] = 4;
    in = eng_tensor_make(ST_DT_INT32, shape, 1, x);
    assert_int_equal(eng_run(s, &in, 1, &out, 1, &err), ST_ETYPE);
    eng_session_free(s);
    eng_free(m);
    st_buf_free(&model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passes_fold_and_prune),
        cmocka_unit_test(test_fusion_matmul_bias_relu),
        cmocka_unit_test(test_fusion_gelu),
        cmocka_unit_test(test_weight_in_place),
        cmocka_unit_test(test_conv3x3_relu),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_input_checks),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
