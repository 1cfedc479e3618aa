/* test_proto.c - unit tests for src/serve/proto*.c and csv.c: decoding
 * and encoding per protocol (V2, TF Serving, SageMaker JSON and CSV,
 * Vertex AI), good and bad requests with the status and message users
 * see, limits, classifier outputs, and round trips. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/alloc.h"
#include "json/json.h"
#include "serve/proto.h"

/* ---- fixtures -------------------------------------------------------------------- */

/* A tabular classifier: x FP32 [-1, 4] -> label INT64 [-1], probs FP32 [-1, 3]. */
static const eng_io iris_in[] = {
    { .name = "x", .dtype = ST_DT_FLOAT32, .rank = 2, .dims = { -1, 4 } },
};
static const eng_io iris_out[] = {
    { .name = "label", .dtype = ST_DT_INT64, .rank = 1, .dims = { -1 } },
    { .name = "probs", .dtype = ST_DT_FLOAT32, .rank = 2, .dims = { -1, 3 } },
};
static const sv_model_sig iris = { "iris", "3", iris_in, 1, iris_out, 2, "onnx" };

/* Two inputs of other types and a string output. */
static const eng_io multi_in[] = {
    { .name = "ids", .dtype = ST_DT_INT64, .rank = 2, .dims = { -1, 2 } },
    { .name = "text", .dtype = ST_DT_STRING, .rank = 1, .dims = { -1 } },
    { .name = "mask", .dtype = ST_DT_BOOL, .rank = 1, .dims = { -1 } },
};
static const eng_io multi_out[] = {
    { .name = "names", .dtype = ST_DT_STRING, .rank = 1, .dims = { -1 } },
    { .name = "score", .dtype = ST_DT_FLOAT64, .rank = 1, .dims = { -1 } },
};
static const sv_model_sig multi = { "multi", NULL, multi_in, 3, multi_out, 2, "onnx" };

static const sv_limits limits = { .max_elements = 1000000, .max_total_bytes = 64 << 20 };

typedef struct decoded {
    st_arena arena;
    sv_request req;
    int http;
    st_error err;
    st_status status;
} decoded;

static st_status decode_ct(decoded *d, sv_proto p, const char *ct, const char *body,
                           const sv_model_sig *sig, const sv_limits *lim)
{
    st_arena_init(&d->arena, 0);
    memset(&d->err, 0, sizeof d->err);
    d->http = 0;
    d->status = sv_decode(p, ct, (const uint8_t *)body, strlen(body), sig, lim, &d->arena, &d->req,
                          &d->http, &d->err);
    return d->status;
}

static st_status decode(decoded *d, sv_proto p, const char *body, const sv_model_sig *sig)
{
    return decode_ct(d, p, NULL, body, sig, &limits);
}

static void done(decoded *d)
{
    st_arena_free(&d->arena);
}

/* Decoding fails with `http` and a message containing `part`. */
static void expect_fail_ct(sv_proto p, const char *ct, const char *body, const sv_model_sig *sig,
                           int http, const char *part)
{
    decoded d;
    st_status s = decode_ct(&d, p, ct, body, sig, &limits);
    if (s == ST_OK || d.http != http || !strstr(d.err.msg, part))
        fail_msg("body %s: expected %d with \"%s\", got %s %d: %s", body, http, part,
                 st_status_name(s), d.http, d.err.msg);
    done(&d);
}

static void expect_fail(sv_proto p, const char *body, const sv_model_sig *sig, int http,
                        const char *part)
{
    expect_fail_ct(p, NULL, body, sig, http, part);
}

static void assert_floats(const eng_tensor *t, const float *want, size_t n)
{
    assert_int_equal(t->dtype, ST_DT_FLOAT32);
    assert_int_equal(t->count, n);
    for (size_t i = 0; i < n; i++)
        assert_true(((const float *)t->data)[i] == want[i]);
}

static void assert_shape(const eng_tensor *t, uint32_t rank, int64_t d0, int64_t d1)
{
    assert_int_equal(t->rank, rank);
    if (rank > 0)
        assert_int_equal(t->shape[0], d0);
    if (rank > 1)
        assert_int_equal(t->shape[1], d1);
}

/* Encodes and returns the body as a NUL-terminated string (caller frees). */
static char *encode(sv_proto p, const char *accept, const sv_model_sig *sig, const sv_request *req,
                    const eng_tensor *outs, size_t n, const char **ct)
{
    st_buf body = { 0 };
    st_error err = { 0 };
    const char *type = NULL;
    st_status s = sv_encode(p, accept, sig, req, outs, n, &body, &type, &err);
    if (s != ST_OK)
        fail_msg("encode: %s", err.msg);
    if (ct)
        *ct = type;
    char *text = malloc(body.len + 1);
    memcpy(text, body.data, body.len);
    text[body.len] = '\0';
    st_buf_free(&body);
    return text;
}

static void assert_text(char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("got  %s\nwant %s", got, want);
    free(got);
}

/* Iris outputs for two rows. */
static int64_t iris_labels[2] = { 0, 2 };
static float iris_probs[6] = { 0.9f, 0.05f, 0.05f, 0.1f, 0.2f, 0.7f };

static void iris_outputs(eng_tensor outs[2])
{
    outs[0] = eng_tensor_make(ST_DT_INT64, (int64_t[]){ 2 }, 1, iris_labels);
    outs[1] = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ 2, 3 }, 2, iris_probs);
}

/* ---- V2 decode ----------------------------------------------------------------- */

static void test_v2_flat_and_nested(void **state)
{
    (void)state;
    static const float want[] = { 1, 2, 3, 4, 5, 6, 7, 8.5f };
    const char *bodies[] = {
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP32\","
        "\"data\":[1,2,3,4,5,6,7,8.5]}]}",
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP32\","
        "\"data\":[[1,2,3,4],[5,6,7,8.5]]}]}",
        /* data before the fields that describe it */
        "{\"inputs\":[{\"data\":[[1,2,3,4],[5,6,7,8.5]],\"datatype\":\"FP32\","
        "\"shape\":[2,4],\"name\":\"x\"}]}",
        /* FP64 and integer data convert to the model's FP32 */
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP64\","
        "\"data\":[1,2,3,4,5,6,7,8.5]}]}",
        " { \"id\" : \"a\" , \"parameters\" : {\"p\": [1, {\"q\": null}]}, \"inputs\" : [ { "
        "\"name\" : \"x\" , \"parameters\": {}, \"shape\" : [ 2 , 4 ] , \"datatype\" : \"FP32\" , "
        "\"data\" : [ [1,2,3,4] , [5,6,7,8.5] ] } ] } ",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        decoded d;
        if (decode(&d, SV_PROTO_V2, bodies[i], &iris) != ST_OK)
            fail_msg("body %zu: %s", i, d.err.msg);
        assert_int_equal(d.req.n_inputs, 1);
        assert_shape(&d.req.inputs[0], 2, 2, 4);
        assert_floats(&d.req.inputs[0], want, 8);
        assert_int_equal(d.req.batch, 2);
        assert_int_equal(d.req.n_outputs, 0);
        done(&d);
    }
}

static void test_v2_id_and_outputs(void **state)
{
    (void)state;
    decoded d;
    assert_int_equal(decode(&d, SV_PROTO_V2,
                            "{\"id\":\"req-\\u00e9\",\"outputs\":[{\"name\":\"probs\",\"parameters\":"
                            "{\"binary_data\":false}}],\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],"
                            "\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}",
                            &iris),
                     ST_OK);
    assert_string_equal(d.req.id, "req-\xc3\xa9");
    assert_int_equal(d.req.n_outputs, 1);
    assert_int_equal(d.req.outputs[0], 1);
    eng_tensor outs[2];
    iris_outputs(outs);
    assert_text(encode(SV_PROTO_V2, NULL, &iris, &d.req, outs, 2, NULL),
                "{\"model_name\":\"iris\",\"model_version\":\"3\",\"id\":\"req-\xc3\xa9\","
                "\"outputs\":[{\"name\":\"probs\",\"datatype\":\"FP32\",\"shape\":[2,3],"
                "\"data\":[0.9,0.05,0.05,0.1,0.2,0.7]}]}");
    done(&d);
}

static void test_v2_all_outputs_no_id(void **state)
{
    (void)state;
    decoded d;
    assert_int_equal(decode(&d, SV_PROTO_V2,
                            "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP32\","
                            "\"data\":[1,2,3,4,5,6,7,8]}],\"outputs\":[]}",
                            &iris),
                     ST_OK);
    assert_null(d.req.id);
    eng_tensor outs[2];
    iris_outputs(outs);
    assert_text(encode(SV_PROTO_V2, NULL, &iris, &d.req, outs, 2, NULL),
                "{\"model_name\":\"iris\",\"model_version\":\"3\",\"outputs\":["
                "{\"name\":\"label\",\"datatype\":\"INT64\",\"shape\":[2],\"data\":[0,2]},"
                "{\"name\":\"probs\",\"datatype\":\"FP32\",\"shape\":[2,3],"
                "\"data\":[0.9,0.05,0.05,0.1,0.2,0.7]}]}");
    done(&d);
}

static void test_v2_types(void **state)
{
    (void)state;
    decoded d;
    if (decode(&d, SV_PROTO_V2,
               "{\"inputs\":[{\"name\":\"text\",\"shape\":[2],\"datatype\":\"BYTES\","
               "\"data\":[\"hello\",\"w\\\"orld\"]},"
               "{\"name\":\"ids\",\"shape\":[2,2],\"datatype\":\"INT64\","
               "\"data\":[[1,-2],[3,9007199254740993]]},"
               "{\"name\":\"mask\",\"shape\":[2],\"datatype\":\"BOOL\","
               "\"data\":[true,false]}]}",
               &multi) != ST_OK)
        fail_msg("%s", d.err.msg);
    const int64_t *ids = d.req.inputs[0].data;
    assert_int_equal(ids[1], -2);
    assert_true(ids[3] == 9007199254740993LL);
    const st_str *text = d.req.inputs[1].data;
    assert_int_equal(d.req.inputs[1].dtype, ST_DT_STRING);
    assert_true(st_str_eq_c(text[0], "hello") && st_str_eq_c(text[1], "w\"orld"));
    const uint8_t *mask = d.req.inputs[2].data;
    assert_true(mask[0] == 1 && mask[1] == 0);
    assert_int_equal(d.req.batch, 2);
    done(&d);

    /* Narrower integers widen, values checked. */
    assert_int_equal(decode(&d, SV_PROTO_V2,
                            "{\"inputs\":[{\"name\":\"text\",\"shape\":[1],\"datatype\":\"BYTES\","
                            "\"data\":[\"\"]},{\"name\":\"ids\",\"shape\":[1,2],\"datatype\":"
                            "\"UINT8\",\"data\":[255,0]},{\"name\":\"mask\",\"shape\":[1],"
                            "\"datatype\":\"BOOL\",\"data\":[1]}]}",
                            &multi),
                     ST_OK);
    ids = d.req.inputs[0].data;
    assert_true(ids[0] == 255 && ids[1] == 0);
    done(&d);
}

/* Every numeric datatype decodes into a model of that type and encodes
 * back to the same text. */
static void test_v2_every_datatype(void **state)
{
    (void)state;
    static const struct {
        st_dtype t;
        const char *data;
    } cases[] = {
        { ST_DT_BOOL, "[true,false,true]" },
        { ST_DT_UINT8, "[0,255,7]" },
        { ST_DT_UINT16, "[0,65535,7]" },
        { ST_DT_UINT32, "[0,4294967295,7]" },
        { ST_DT_UINT64, "[0,18446744073709551615,7]" },
        { ST_DT_INT8, "[-128,127,0]" },
        { ST_DT_INT16, "[-32768,32767,0]" },
        { ST_DT_INT32, "[-2147483648,2147483647,0]" },
        { ST_DT_INT64, "[-9223372036854775808,9223372036854775807,0]" },
        { ST_DT_FLOAT16, "[0.5,-65504.0,0.0001]" },
        { ST_DT_FLOAT32, "[0.1,3.4028235e+38,1e-45]" },
        { ST_DT_FLOAT64, "[0.1,1.7976931348623157e+308,5e-324]" },
        { ST_DT_STRING, "[\"a\",\"\\u00e9\",\"\"]" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eng_io in = { .name = "v", .dtype = cases[i].t, .rank = 1, .dims = { -1 } };
        eng_io out = { .name = "v", .dtype = cases[i].t, .rank = 1, .dims = { -1 } };
        sv_model_sig sig = { "m", "1", &in, 1, &out, 1, "onnx" };
        char body[512], want[512];
        snprintf(body, sizeof body,
                 "{\"inputs\":[{\"name\":\"v\",\"shape\":[3],\"datatype\":\"%s\",\"data\":%s}]}",
                 sv_v2_datatype(cases[i].t), cases[i].data);
        decoded d;
        if (decode(&d, SV_PROTO_V2, body, &sig) != ST_OK)
            fail_msg("%s: %s", body, d.err.msg);
        assert_int_equal(d.req.inputs[0].dtype, cases[i].t);
        assert_int_equal(d.req.inputs[0].count, 3);
        char *got = encode(SV_PROTO_V2, NULL, &sig, &d.req, d.req.inputs, 1, NULL);
        snprintf(want, sizeof want,
                 "{\"model_name\":\"m\",\"model_version\":\"1\",\"outputs\":[{\"name\":\"v\","
                 "\"datatype\":\"%s\",\"shape\":[3],\"data\":%s}]}",
                 sv_v2_datatype(cases[i].t),
                 cases[i].t == ST_DT_FLOAT16 ? "[0.5,-65500.0,0.0001]"
                 : cases[i].t == ST_DT_STRING ? "[\"a\",\"\xc3\xa9\",\"\"]"
                                              : cases[i].data);
        assert_text(got, want);
        done(&d);
    }
}

static void test_v2_errors(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int http;
        const char *part;
    } cases[] = {
        /* malformed JSON */
        { "", 400, "invalid JSON" },
        { "{\"inputs\":[", 400, "invalid JSON" },
        { "{\"inputs\":[]} x", 400, "invalid JSON" },
        { "[1,2]", 400, "must be a JSON object" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4,]}]}",
          400, "input \"x\"" },
        /* structure */
        { "{}", 400, "no \"inputs\"" },
        { "{\"inputs\":{}}", 400, "\"inputs\" must be a list" },
        { "{\"inputs\":[]}", 400, "missing input \"x\" (expected shape [-1, 4], FP32)" },
        { "{\"inputs\":[5]}", 400, "inputs[0] must be an object" },
        { "{\"id\":5,\"inputs\":[]}", 400, "\"id\" must be a string" },
        { "{\"inputs\":[{\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}", 400,
          "inputs[0]: missing \"name\"" },
        { "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}", 400,
          "input \"x\": missing \"shape\"" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"data\":[1,2,3,4]}]}", 400,
          "input \"x\": missing \"datatype\"" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\"}]}", 400,
          "input \"x\": missing \"data\"" },
        { "{\"inputs\":[{\"name\":\"y\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}",
          400, "unknown input \"y\"; the model's inputs are \"x\"" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]},"
          "{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}",
          400, "input \"x\" given twice" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}],"
          "\"outputs\":[{\"name\":\"nope\"}]}",
          400, "unknown output \"nope\"; the model's outputs are \"label\", \"probs\"" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}],"
          "\"outputs\":[{}]}",
          400, "outputs[0]: missing \"name\"" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4],"
          "\"name\":\"y\"}]}",
          400, "input \"x\": \"name\" given twice" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"shape\":[2,4],\"datatype\":\"FP32\","
          "\"data\":[1,2,3,4]}]}",
          400, "input \"x\": \"shape\" given twice" },
        /* shapes */
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[3,5],\"datatype\":\"FP32\",\"data\":[]}]}", 400,
          "input \"x\": expected shape [-1, 4] (FP32), got [3, 5]" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}",
          400, "input \"x\": expected shape [-1, 4] (FP32), got [4]" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}",
          400, "input \"x\": shape [2, 4] needs 8 values, \"data\" has 3" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4,5]}]}",
          400, "input \"x\": \"data\" has more values than shape [1, 4] holds (4)" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP32\","
          "\"data\":[[1,2],[3,4],[5,6],[7,8]]}]}",
          400, "input \"x\": \"data\" is nested as [4, 2], which does not match shape [2, 4]" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP32\","
          "\"data\":[[1,2,3,4],[5,6,7]]}]}",
          400, "ragged" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[-1,4],\"datatype\":\"FP32\",\"data\":[]}]}", 400,
          "\"shape\" dimension 0 must be a non-negative integer" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1.5,4],\"datatype\":\"FP32\",\"data\":[]}]}", 400,
          "must be a non-negative integer" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":\"1,4\",\"datatype\":\"FP32\",\"data\":[]}]}", 400,
          "\"shape\" must be a list" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[[1,4]],\"datatype\":\"FP32\",\"data\":[]}]}", 400,
          "\"shape\" must be a flat list" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,1,1,1,1,1,1,1,1],\"datatype\":\"FP32\","
          "\"data\":[]}]}",
          400, "more than 8 dimensions" },
        /* sizes: refused before any allocation */
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1000000000000,4],\"datatype\":\"FP32\","
          "\"data\":[]}]}",
          413, "more elements than the limit of 1000000 per tensor" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[4611686018427387904,4],\"datatype\":\"FP32\","
          "\"data\":[]}]}",
          413, "larger than any tensor" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1e400,4],\"datatype\":\"FP32\",\"data\":[]}]}",
          413, "larger than any tensor" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[18446744073709551616,4],\"datatype\":\"FP32\","
          "\"data\":[]}]}",
          413, "larger than any tensor" },
        /* types */
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"BYTES\","
          "\"data\":[\"a\",\"b\",\"c\",\"d\"]}]}",
          400, "input \"x\": expected datatype FP32 (shape [-1, 4]), got BYTES" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"BOOL\","
          "\"data\":[true,true,true,true]}]}",
          400, "expected datatype FP32 (shape [-1, 4]), got BOOL" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP8\",\"data\":[1,2,3,4]}]}",
          400, "input \"x\": unknown datatype \"FP8\"" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\","
          "\"data\":[1,\"2\",3,4]}]}",
          400, "input \"x\": expected a number" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\","
          "\"data\":[1,null,3,4]}]}",
          400, "input \"x\"" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\","
          "\"data\":[1,1e39,3,4]}]}",
          400, "out of range for float32" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"INT8\","
          "\"data\":[1,300,3,4]}]}",
          400, "out of range for int8" },
        { "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\","
          "\"data\":[[1,2,3,4]]}],\"outputs\":{}}",
          400, "\"outputs\" must be a list" },
        /* deferred data is checked the same way */
        { "{\"inputs\":[{\"data\":[1,2,3],\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\"}]}",
          400, "input \"x\": shape [1, 4] needs 4 values, \"data\" has 3" },
        { "{\"inputs\":[{\"data\":[1,2,3,\"a\"],\"name\":\"x\",\"shape\":[1,4],"
          "\"datatype\":\"FP32\"}]}",
          400, "input \"x\"" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_fail(SV_PROTO_V2, cases[i].body, &iris, cases[i].http, cases[i].part);

    /* Types of the multi-input model. */
    expect_fail(SV_PROTO_V2,
                "{\"inputs\":[{\"name\":\"ids\",\"shape\":[1,2],\"datatype\":\"FP32\","
                "\"data\":[1,2]}]}",
                &multi, 400, "input \"ids\": expected datatype INT64 (shape [-1, 2]), got FP32");
    expect_fail(SV_PROTO_V2,
                "{\"inputs\":[{\"name\":\"ids\",\"shape\":[1,2],\"datatype\":\"UINT64\","
                "\"data\":[1,18446744073709551615]}]}",
                &multi, 400, "input \"ids\": value 1 does not fit the model's datatype INT64");
    expect_fail(SV_PROTO_V2,
                "{\"inputs\":[{\"name\":\"text\",\"shape\":[2],\"datatype\":\"BYTES\","
                "\"data\":[\"a\",2]}]}",
                &multi, 400, "input \"text\": expected a string, found number");
    expect_fail(SV_PROTO_V2,
                "{\"inputs\":[{\"name\":\"text\",\"shape\":[2],\"datatype\":\"BYTES\","
                "\"data\":[[\"a\"],\"b\"]}]}",
                &multi, 400, "ragged");
    expect_fail(SV_PROTO_V2,
                "{\"inputs\":[{\"name\":\"text\",\"shape\":[1],\"datatype\":\"BYTES\","
                "\"data\":[\"a\",\"b\"]}]}",
                &multi, 400, "input \"text\": \"data\" has more values than shape [1] holds (1)");
    expect_fail(SV_PROTO_V2,
                "{\"inputs\":[{\"name\":\"mask\",\"shape\":[2],\"datatype\":\"BOOL\","
                "\"data\":[true,2]}]}",
                &multi, 400, "input \"mask\"");
    expect_fail_ct(SV_PROTO_V2, "text/csv", "1,2,3,4", &iris, 415, "unsupported Content-Type");
}

static void test_v2_total_bytes_limit(void **state)
{
    (void)state;
    sv_limits tight = { .max_elements = 100, .max_total_bytes = 16 };
    decoded d;
    const char *body = "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP32\","
                       "\"data\":[1,2,3,4,5,6,7,8]}]}";
    assert_int_equal(decode_ct(&d, SV_PROTO_V2, NULL, body, &iris, &tight), ST_ELIMIT);
    assert_int_equal(d.http, 413);
    assert_non_null(strstr(d.err.msg, "limit of 16 bytes"));
    done(&d);
    /* Zero limits mean none. */
    sv_limits none = { 0 };
    assert_int_equal(decode_ct(&d, SV_PROTO_V2, NULL, body, &iris, &none), ST_OK);
    done(&d);
}

/* ---- TF Serving, Vertex, SageMaker JSON ------------------------------------------- */

static void test_tfs_rows_single_input(void **state)
{
    (void)state;
    static const float want[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    const char *bodies[] = {
        "{\"instances\":[[1,2,3,4],[5,6,7,8]]}",
        "{\"signature_name\":\"serving_default\",\"instances\":[{\"x\":[1,2,3,4]},{\"x\":[5,6,7,8]}]}",
    };
    for (size_t i = 0; i < 2; i++) {
        decoded d;
        if (decode(&d, SV_PROTO_TFS, bodies[i], &iris) != ST_OK)
            fail_msg("%s", d.err.msg);
        assert_shape(&d.req.inputs[0], 2, 2, 4);
        assert_floats(&d.req.inputs[0], want, 8);
        assert_true(d.req.is_row_form);
        assert_int_equal(d.req.batch, 2);
        eng_tensor outs[2];
        iris_outputs(outs);
        assert_text(encode(SV_PROTO_TFS, NULL, &iris, &d.req, outs, 2, NULL),
                    "{\"predictions\":[{\"label\":0,\"probs\":[0.9,0.05,0.05]},"
                    "{\"label\":2,\"probs\":[0.1,0.2,0.7]}]}");
        done(&d);
    }
}

static void test_tfs_columns(void **state)
{
    (void)state;
    decoded d;
    assert_int_equal(decode(&d, SV_PROTO_TFS, "{\"inputs\":[[1,2,3,4]]}", &iris), ST_OK);
    assert_shape(&d.req.inputs[0], 2, 1, 4);
    assert_false(d.req.is_row_form);
    eng_tensor outs[2];
    iris_outputs(outs);
    assert_text(encode(SV_PROTO_TFS, NULL, &iris, &d.req, outs, 2, NULL),
                "{\"outputs\":{\"label\":[0,2],\"probs\":[[0.9,0.05,0.05],[0.1,0.2,0.7]]}}");
    done(&d);
    assert_int_equal(decode(&d, SV_PROTO_TFS, "{\"inputs\":{\"x\":[[1,2,3,4],[5,6,7,8]]}}", &iris),
                     ST_OK);
    assert_shape(&d.req.inputs[0], 2, 2, 4);
    done(&d);

    /* Several inputs in columns: their own batch sizes are allowed. */
    assert_int_equal(decode(&d, SV_PROTO_TFS,
                            "{\"inputs\":{\"ids\":[[1,2]],\"text\":[\"a\",{\"b64\":\"aGk=\"}],"
                            "\"mask\":[true]}}",
                            &multi),
                     ST_OK);
    const st_str *text = d.req.inputs[1].data;
    assert_true(st_str_eq_c(text[1], "hi"));
    assert_int_equal(d.req.batch, -1);
    done(&d);
}

static void test_tfs_rows_multi_input(void **state)
{
    (void)state;
    decoded d;
    if (decode(&d, SV_PROTO_TFS,
               "{\"instances\":[{\"ids\":[1,2],\"text\":\"a\",\"mask\":true},"
               "{\"mask\":false,\"text\":{\"b64\":\"AP8=\"},\"ids\":[3,4]}]}",
               &multi) != ST_OK)
        fail_msg("%s", d.err.msg);
    assert_shape(&d.req.inputs[0], 2, 2, 2);
    const int64_t *ids = d.req.inputs[0].data;
    assert_true(ids[0] == 1 && ids[3] == 4);
    const st_str *text = d.req.inputs[1].data;
    assert_int_equal(text[1].len, 2);
    assert_true((uint8_t)text[1].ptr[0] == 0 && (uint8_t)text[1].ptr[1] == 0xff);
    assert_shape(&d.req.inputs[2], 1, 2, 0);
    assert_int_equal(d.req.batch, 2);
    /* String outputs; a name ending in _bytes goes out as base64. */
    static st_str names[2] = { { "a", 1 }, { "\xff", 1 } };
    static double score[2] = { 0.5, 1e-7 };
    eng_io outs_io[2] = {
        { .name = "names_bytes", .dtype = ST_DT_STRING, .rank = 1, .dims = { -1 } },
        { .name = "score", .dtype = ST_DT_FLOAT64, .rank = 1, .dims = { -1 } },
    };
    sv_model_sig sig = multi;
    sig.outputs = outs_io;
    eng_tensor outs[2] = {
        eng_tensor_make(ST_DT_STRING, (int64_t[]){ 2 }, 1, names),
        eng_tensor_make(ST_DT_FLOAT64, (int64_t[]){ 2 }, 1, score),
    };
    assert_text(encode(SV_PROTO_TFS, NULL, &sig, &d.req, outs, 2, NULL),
                "{\"predictions\":[{\"names_bytes\":{\"b64\":\"YQ==\"},\"score\":0.5},"
                "{\"names_bytes\":{\"b64\":\"/w==\"},\"score\":1e-07}]}");
    done(&d);
}

/* One string input: instances are strings or {"b64"} objects; scalars
 * make a 1-D batch. */
static void test_tfs_strings_and_scalars(void **state)
{
    (void)state;
    eng_io in = { .name = "s", .dtype = ST_DT_STRING, .rank = 1, .dims = { -1 } };
    sv_model_sig sig = { "m", NULL, &in, 1, &in, 1, "onnx" };
    decoded d;
    assert_int_equal(decode(&d, SV_PROTO_TFS,
                            "{\"instances\":[\"foo\",{\"b64\":\"YmFy\"},\"\\u0000z\"]}", &sig),
                     ST_OK);
    assert_shape(&d.req.inputs[0], 1, 3, 0);
    const st_str *s = d.req.inputs[0].data;
    assert_true(st_str_eq_c(s[0], "foo") && st_str_eq_c(s[1], "bar"));
    assert_true(s[2].len == 2 && s[2].ptr[0] == '\0' && s[2].ptr[1] == 'z');
    assert_text(encode(SV_PROTO_TFS, NULL, &sig, &d.req, d.req.inputs, 1, NULL),
                "{\"predictions\":[\"foo\",\"bar\",\"\\u0000z\"]}");
    done(&d);
    assert_int_equal(decode(&d, SV_PROTO_TFS, "{\"inputs\":[\"a\",\"b\"]}", &sig), ST_OK);
    assert_text(encode(SV_PROTO_TFS, NULL, &sig, &d.req, d.req.inputs, 1, NULL),
                "{\"outputs\":[\"a\",\"b\"]}");
    done(&d);
    expect_fail(SV_PROTO_TFS, "{\"instances\":[\"a\",[\"b\"]]}", &sig, 400,
                "instances[1]: input \"s\" has shape [1], the first instance's has []");
    expect_fail(SV_PROTO_TFS, "{\"instances\":[{\"b64\":\"YQ==\",\"x\":1}]}", &sig, 400,
                "a {\"b64\": ...} object has one member");
    expect_fail(SV_PROTO_TFS, "{\"instances\":[1]}", &sig, 400, "expected a string, found number");

    /* Scalars for a 1-D numeric input; a model without a batch axis takes
     * exactly one instance as its whole input. */
    eng_io v = { .name = "v", .dtype = ST_DT_FLOAT64, .rank = 1, .dims = { -1 } };
    sv_model_sig vs = { "m", NULL, &v, 1, &v, 1, "onnx" };
    assert_int_equal(decode(&d, SV_PROTO_VERTEX, "{\"instances\":[1.5,2,3]}", &vs), ST_OK);
    assert_shape(&d.req.inputs[0], 1, 3, 0);
    assert_int_equal(d.req.batch, 3);
    assert_text(encode(SV_PROTO_VERTEX, NULL, &vs, &d.req, d.req.inputs, 1, NULL),
                "{\"predictions\":[1.5,2.0,3.0]}");
    done(&d);
    eng_io fixed = { .name = "f", .dtype = ST_DT_INT32, .rank = 1, .dims = { 3 } };
    sv_model_sig fs = { "m", NULL, &fixed, 1, &fixed, 1, "onnx" };
    assert_int_equal(decode(&d, SV_PROTO_TFS, "{\"instances\":[[1,2,3]]}", &fs), ST_OK);
    assert_shape(&d.req.inputs[0], 1, 3, 0);
    assert_int_equal(d.req.batch, -1);
    done(&d);
    expect_fail(SV_PROTO_TFS, "{\"instances\":[[1,2,3],[4,5,6]]}", &fs, 400,
                "input \"f\": expected shape [3] (int32), got [2, 3]");
}

static void test_tfs_errors(void **state)
{
    (void)state;
    static const struct {
        sv_proto p;
        const char *body;
        int http;
        const char *part;
    } cases[] = {
        { SV_PROTO_TFS, "{}", 400, "no \"instances\" (rows) or \"inputs\" (columns)" },
        { SV_PROTO_TFS, "[[1,2,3,4]]", 400, "must be a JSON object" },
        { SV_PROTO_TFS, "{\"instances\":[[1,2,3,4]],\"inputs\":[[1,2,3,4]]}", 400,
          "either \"instances\" (rows) or \"inputs\" (columns)" },
        { SV_PROTO_TFS, "{\"instances\":[]}", 400, "\"instances\" is empty" },
        { SV_PROTO_TFS, "{\"instances\":{\"x\":1}}", 400, "\"instances\" must be a list" },
        { SV_PROTO_TFS, "{\"instances\":[[1,2,3,4],[5,6,7]]}", 400,
          "\"instances\" of input \"x\": ragged array" },
        { SV_PROTO_TFS, "{\"instances\":[[1,2,3,4],{\"x\":[5,6,7,8]}]}", 400,
          "\"instances\" of input \"x\": " },
        { SV_PROTO_TFS, "{\"instances\":[{\"x\":[1,2,3,4]},{\"x\":[5,6,7]}]}", 400,
          "instances[1]: input \"x\" has shape [3], the first instance's has [4]" },
        { SV_PROTO_TFS, "{\"instances\":[[1,2,3]]}", 400,
          "input \"x\": expected shape [-1, 4] (float32), got [1, 3]" },
        { SV_PROTO_TFS, "{\"instances\":[{\"y\":[1,2,3,4]}]}", 400,
          "instances[0]: unknown input \"y\"; the model's inputs are \"x\"" },
        { SV_PROTO_TFS, "{\"instances\":[{}]}", 400, "instances[0]: an empty object" },
        { SV_PROTO_TFS, "{\"instances\":[[1,\"a\",3,4]]}", 400,
          "\"instances\" of input \"x\": expected a number" },
        { SV_PROTO_TFS, "{\"instances\":[ ]}", 400, "\"instances\" is empty" },
        { SV_PROTO_TFS, "{\"instances\":[{\"x\":[1,\"a\",3,4]}]}", 400,
          "instances[0]: input \"x\": expected a number" },
        { SV_PROTO_TFS, "{\"instances\":[[1,2,3,4]], \"signature_name\": 5}", 400,
          "\"signature_name\" must be a string" },
        { SV_PROTO_TFS, "{\"instances\":[[1,2,3,4]] ", 400, "invalid JSON" },
        { SV_PROTO_TFS, "{\"inputs\":{\"x\":[1,2,3,4]}}", 400,
          "input \"x\": expected shape [-1, 4] (float32), got [4]" },
        { SV_PROTO_TFS, "{\"inputs\":{\"x\":[[1,2,3,4]],\"x\":[[1,2,3,4]]}}", 400,
          "input \"x\" given twice" },
        { SV_PROTO_TFS, "{\"inputs\":{}}", 400, "\"inputs\" is an empty object" },
        { SV_PROTO_TFS, "{\"inputs\":[[[[[[[[[[1]]]]]]]]]]}", 400, "more than 8 dimensions" },
        { SV_PROTO_VERTEX, "{\"parameters\":{}}", 400, "the request has no \"instances\"" },
        { SV_PROTO_VERTEX, "{\"instances\":[[1,2,3,4]],\"parameters\":[]}", 400,
          "\"parameters\" must be an object" },
        { SV_PROTO_SAGEMAKER, "[[1,2,3,4],[1,2]]", 400, "ragged array" },
        { SV_PROTO_SAGEMAKER, "5", 400, "or a list of rows" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_fail(cases[i].p, cases[i].body, &iris, cases[i].http, cases[i].part);
    expect_fail(SV_PROTO_TFS, "{\"instances\":[[1,2]]}", &multi, 400,
                "instances[0]: the model has 3 inputs, so each instance must be an object naming "
                "them: \"ids\", \"text\", \"mask\"");
    expect_fail(SV_PROTO_TFS, "{\"instances\":[{\"ids\":[1,2],\"text\":\"a\"}]}", &multi, 400,
                "instances[0]: missing input \"mask\"");
    expect_fail(SV_PROTO_TFS, "{\"inputs\":{\"ids\":[[1,2]],\"text\":[\"a\"]}}", &multi, 400,
                "missing input \"mask\" (expected shape [-1], bool)");
    expect_fail(SV_PROTO_TFS, "{\"inputs\":{\"ids\":[[1,2]],\"text\":[{\"b64\":\"!!\"}],"
                "\"mask\":[true]}}", &multi, 400, "not valid base64");
    expect_fail(SV_PROTO_TFS, "{\"inputs\":[1]}", &multi, 400,
                "the model has 3 inputs, so \"inputs\" must be an object");
    expect_fail_ct(SV_PROTO_TFS, "image/png", "{}", &iris, 415, "unsupported Content-Type");
    expect_fail_ct(SV_PROTO_SAGEMAKER, "application/x-npy", "{}", &iris, 415,
                   "send application/json or text/csv");
}

/* Vertex and SageMaker JSON answer "predictions"; curl's default form
 * content type is read as JSON. */
static void test_vertex_and_sagemaker_json(void **state)
{
    (void)state;
    eng_tensor outs[2];
    iris_outputs(outs);
    const char *want = "{\"predictions\":[{\"label\":0,\"probs\":[0.9,0.05,0.05]},"
                       "{\"label\":2,\"probs\":[0.1,0.2,0.7]}]}";
    decoded d;
    assert_int_equal(decode_ct(&d, SV_PROTO_VERTEX, "application/json; charset=utf-8",
                               "{\"instances\":[[1,2,3,4],[5,6,7,8]],\"parameters\":{\"k\":1}}",
                               &iris, &limits),
                     ST_OK);
    assert_text(encode(SV_PROTO_VERTEX, NULL, &iris, &d.req, outs, 2, NULL), want);
    done(&d);
    const char *bodies[] = { "[[1,2,3,4],[5,6,7,8]]", "{\"instances\":[[1,2,3,4],[5,6,7,8]]}",
                             "{\"inputs\":[[1,2,3,4],[5,6,7,8]]}" };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(decode_ct(&d, SV_PROTO_SAGEMAKER, "application/x-www-form-urlencoded",
                                   bodies[i], &iris, &limits),
                         ST_OK);
        assert_shape(&d.req.inputs[0], 2, 2, 4);
        assert_false(d.req.wants_csv);
        const char *ct;
        assert_text(encode(SV_PROTO_SAGEMAKER, "*/*", &iris, &d.req, outs, 2, &ct), want);
        assert_string_equal(ct, "application/json");
        done(&d);
    }
}

/* ZipMap: a sequence of {label: probability} maps. */
static void test_zipmap_outputs(void **state)
{
    (void)state;
    static int64_t labels[2] = { 1, 0 };
    static st_str keys_s[3] = { { "setosa", 6 }, { "versicolor", 10 }, { "virginica", 9 } };
    static float p0[3] = { 0.1f, 0.8f, 0.1f }, p1[3] = { 0.7f, 0.2f, 0.1f };
    eng_tensor kv0[2] = { eng_tensor_make(ST_DT_STRING, (int64_t[]){ 3 }, 1, keys_s),
                          eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ 3 }, 1, p0) };
    eng_tensor kv1[2] = { eng_tensor_make(ST_DT_STRING, (int64_t[]){ 3 }, 1, keys_s),
                          eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ 3 }, 1, p1) };
    eng_tensor maps[2] = {
        { .dtype = ENG_DT_MAP, .rank = 1, .shape = { 3, ST_DT_STRING, ST_DT_FLOAT32 }, .data = kv0,
          .count = 3 },
        { .dtype = ENG_DT_MAP, .rank = 1, .shape = { 3, ST_DT_STRING, ST_DT_FLOAT32 }, .data = kv1,
          .count = 3 },
    };
    eng_tensor outs[2] = {
        eng_tensor_make(ST_DT_INT64, (int64_t[]){ 2 }, 1, labels),
        { .dtype = ENG_DT_SEQUENCE, .rank = 1, .shape = { 2, ENG_DT_MAP }, .data = maps,
          .count = 2 },
    };
    eng_io out_io[2] = {
        { .name = "output_label", .dtype = ST_DT_INT64, .rank = 1, .dims = { -1 } },
        { .name = "output_probability", .dtype = ENG_DT_SEQUENCE, .rank = -1 },
    };
    sv_model_sig sig = { "clf", "1", iris_in, 1, out_io, 2, "onnx" };
    sv_request req = { .is_row_form = true, .batch = 2 };
    assert_text(encode(SV_PROTO_TFS, NULL, &sig, &req, outs, 2, NULL),
                "{\"predictions\":[{\"output_label\":1,\"output_probability\":"
                "{\"setosa\":0.1,\"versicolor\":0.8,\"virginica\":0.1}},"
                "{\"output_label\":0,\"output_probability\":"
                "{\"setosa\":0.7,\"versicolor\":0.2,\"virginica\":0.1}}]}");
    int sel = 1;
    sv_request only = { .is_row_form = true, .batch = 2, .outputs = &sel, .n_outputs = 1 };
    assert_text(encode(SV_PROTO_VERTEX, NULL, &sig, &only, outs, 2, NULL),
                "{\"predictions\":[{\"setosa\":0.1,\"versicolor\":0.8,\"virginica\":0.1},"
                "{\"setosa\":0.7,\"versicolor\":0.2,\"virginica\":0.1}]}");
    sv_request v2 = { .id = "7" };
    assert_text(encode(SV_PROTO_V2, NULL, &sig, &v2, outs, 2, NULL),
                "{\"model_name\":\"clf\",\"model_version\":\"1\",\"id\":\"7\",\"outputs\":["
                "{\"name\":\"output_label\",\"datatype\":\"INT64\",\"shape\":[2],\"data\":[1,0]},"
                "{\"name\":\"output_probability\",\"datatype\":\"FP32\",\"shape\":[2,3],"
                "\"data\":[0.1,0.8,0.1,0.7,0.2,0.1]}]}");
    const char *ct;
    assert_text(encode(SV_PROTO_SAGEMAKER, "text/csv", &sig, &req, outs, 2, &ct),
                "1,0.1,0.8,0.1\n0,0.7,0.2,0.1\n");
    assert_string_equal(ct, "text/csv");
    /* Metadata shows the map sequence as FP32 [-1, -1]. */
    st_buf meta = { 0 };
    assert_int_equal(sv_encode_v2_metadata(&sig, (const char *[]){ "1", "2" }, 2, &meta), ST_OK);
    char *text = malloc(meta.len + 1);
    memcpy(text, meta.data, meta.len);
    text[meta.len] = '\0';
    st_buf_free(&meta);
    assert_text(text, "{\"name\":\"clf\",\"versions\":[\"1\",\"2\"],\"platform\":\"onnx\","
                      "\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,4]}],"
                      "\"outputs\":[{\"name\":\"output_label\",\"datatype\":\"INT64\","
                      "\"shape\":[-1]},{\"name\":\"output_probability\",\"datatype\":\"FP32\","
                      "\"shape\":[-1,-1]}]}");
}

/* ---- SageMaker CSV -------------------------------------------------------------- */

static void test_csv_requests(void **state)
{
    (void)state;
    decoded d;
    assert_int_equal(decode_ct(&d, SV_PROTO_SAGEMAKER, "text/csv",
                               "\xEF\xBB\xBF" "1,2,3,4\r\n5, 6 ,\"7\",+8.\n\n", &iris, &limits),
                     ST_OK);
    static const float want[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    assert_shape(&d.req.inputs[0], 2, 2, 4);
    assert_floats(&d.req.inputs[0], want, 8);
    assert_true(d.req.wants_csv);
    eng_tensor outs[2];
    iris_outputs(outs);
    const char *ct;
    assert_text(encode(SV_PROTO_SAGEMAKER, NULL, &iris, &d.req, outs, 2, &ct),
                "0,0.9,0.05,0.05\n2,0.1,0.2,0.7\n");
    assert_string_equal(ct, "text/csv");
    /* Accept: application/json wins over the request's CSV. */
    assert_text(encode(SV_PROTO_SAGEMAKER, "application/json", &iris, &d.req, outs, 2, &ct),
                "{\"predictions\":[{\"label\":0,\"probs\":[0.9,0.05,0.05]},"
                "{\"label\":2,\"probs\":[0.1,0.2,0.7]}]}");
    assert_string_equal(ct, "application/json");
    done(&d);

    /* Missing values and special numbers in float columns. */
    assert_int_equal(decode_ct(&d, SV_PROTO_SAGEMAKER, "text/csv; charset=utf-8",
                               ",nan,-Infinity,.5e1", &iris, &limits),
                     ST_OK);
    const float *v = d.req.inputs[0].data;
    assert_true(isnan(v[0]) && isnan(v[1]) && isinf(v[2]) && v[2] < 0 && v[3] == 5.0f);
    done(&d);

    /* JSON in, CSV out when asked. */
    assert_int_equal(decode(&d, SV_PROTO_SAGEMAKER, "[[1,2,3,4],[5,6,7,8]]", &iris), ST_OK);
    assert_text(encode(SV_PROTO_SAGEMAKER, "text/csv, application/json", &iris, &d.req, outs, 2,
                       &ct),
                "0,0.9,0.05,0.05\n2,0.1,0.2,0.7\n");
    done(&d);

    static const struct {
        const char *body;
        int http;
        const char *part;
    } bad[] = {
        { "", 400, "no rows" },
        { "\n\n", 400, "no rows" },
        { "1,2,3,4\n5,6,7\n", 400, "CSV row 2 has 3 fields, row 1 has 4" },
        { "a,b,c,d\n1,2,3,4\n", 400, "CSV row 1, column 1: \"a\" is not a number" },
        { "1,2,3,\"4\n", 400, "CSV row 1, column 4: quoted field is not closed" },
        { "1,2,3,\"4\"x\n", 400, "unexpected character after a closing quote" },
        { "1,2,3,1e39\n", 400, "CSV row 1, column 4: \"1e39\" is out of range for float32" },
        { "1,2,3\n", 400, "input \"x\": expected shape [-1, 4] (float32), got [1, 3]" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_fail_ct(SV_PROTO_SAGEMAKER, "text/csv", bad[i].body, &iris, bad[i].http,
                       bad[i].part);
    sv_limits tight = { .max_elements = 6 };
    assert_int_equal(decode_ct(&d, SV_PROTO_SAGEMAKER, "text/csv", "1,2,3,4\n5,6,7,8\n", &iris,
                               &tight),
                     ST_ELIMIT);
    assert_int_equal(d.http, 413);
    done(&d);
    expect_fail_ct(SV_PROTO_SAGEMAKER, "text/csv", "1,2\n", &multi, 400,
                   "text/csv fills only input \"ids\"");

    /* Integer inputs: plain integers, range-checked; a 1-D input takes one column. */
    eng_io in = { .name = "n", .dtype = ST_DT_UINT8, .rank = 1, .dims = { -1 } };
    sv_model_sig sig = { "m", NULL, &in, 1, iris_out, 2, "onnx" };
    assert_int_equal(decode_ct(&d, SV_PROTO_SAGEMAKER, "text/csv", "7\n255\n", &sig, &limits),
                     ST_OK);
    assert_shape(&d.req.inputs[0], 1, 2, 0);
    done(&d);
    expect_fail_ct(SV_PROTO_SAGEMAKER, "text/csv", "256\n", &sig, 400,
                   "\"256\" is out of range for uint8");
    expect_fail_ct(SV_PROTO_SAGEMAKER, "text/csv", "1.5\n", &sig, 400, "is not an integer");
    /* Blank lines are skipped. */
    assert_int_equal(decode_ct(&d, SV_PROTO_SAGEMAKER, "text/csv", "\n1\n \n", &sig, &limits),
                     ST_OK);
    assert_shape(&d.req.inputs[0], 1, 1, 0);
    done(&d);
}

/* ---- odds and ends ---------------------------------------------------------------- */

static char *buf_text(st_buf *b)
{
    char *text = malloc(b->len + 1);
    memcpy(text, b->data, b->len);
    text[b->len] = '\0';
    st_buf_free(b);
    return text;
}

static void test_metadata_and_status(void **state)
{
    (void)state;
    st_buf b = { 0 };
    assert_int_equal(sv_encode_v2_server_metadata("stratus", "0.1", NULL, 0, &b), ST_OK);
    assert_text(buf_text(&b), "{\"name\":\"stratus\",\"version\":\"0.1\",\"extensions\":[]}");
    assert_int_equal(sv_encode_v2_metadata(&iris, NULL, 0, &b), ST_OK);
    assert_text(buf_text(&b),
                "{\"name\":\"iris\",\"platform\":\"onnx\",\"inputs\":[{\"name\":\"x\","
                "\"datatype\":\"FP32\",\"shape\":[-1,4]}],\"outputs\":[{\"name\":\"label\","
                "\"datatype\":\"INT64\",\"shape\":[-1]},{\"name\":\"probs\",\"datatype\":\"FP32\","
                "\"shape\":[-1,3]}]}");
    sv_version_status vs[2] = { { "2", SV_VERSION_AVAILABLE, NULL },
                                { "3", SV_VERSION_END, "model.onnx: \"bad\"" } };
    assert_int_equal(sv_encode_tfs_status(vs, 2, &b), ST_OK);
    assert_text(buf_text(&b),
                "{\"model_version_status\":[{\"version\":\"2\",\"state\":\"AVAILABLE\",\"status\":"
                "{\"error_code\":\"OK\",\"error_message\":\"\"}},{\"version\":\"3\",\"state\":"
                "\"END\",\"status\":{\"error_code\":\"UNKNOWN\",\"error_message\":"
                "\"model.onnx: \\\"bad\\\"\"}}]}");
    assert_int_equal(sv_encode_tfs_metadata(&iris, &b), ST_OK);
    assert_text(buf_text(&b),
                "{\"model_spec\":{\"name\":\"iris\",\"signature_name\":\"\",\"version\":\"3\"},"
                "\"metadata\":{\"signature_def\":{\"signature_def\":{\"serving_default\":{"
                "\"inputs\":{\"x\":{\"dtype\":\"DT_FLOAT\",\"tensor_shape\":{\"dim\":["
                "{\"size\":\"-1\",\"name\":\"\"},{\"size\":\"4\",\"name\":\"\"}],"
                "\"unknown_rank\":false},\"name\":\"x\"}},\"outputs\":{\"label\":{\"dtype\":"
                "\"DT_INT64\",\"tensor_shape\":{\"dim\":[{\"size\":\"-1\",\"name\":\"\"}],"
                "\"unknown_rank\":false},\"name\":\"label\"},\"probs\":{\"dtype\":\"DT_FLOAT\","
                "\"tensor_shape\":{\"dim\":[{\"size\":\"-1\",\"name\":\"\"},{\"size\":\"3\","
                "\"name\":\"\"}],\"unknown_rank\":false},\"name\":\"probs\"}},"
                "\"method_name\":\"tensorflow/serving/predict\"}}}}}");
    assert_int_equal(sv_encode_error("input \"x\": bad\n", &b), ST_OK);
    assert_text(buf_text(&b), "{\"error\":\"input \\\"x\\\": bad\\n\"}");
    assert_string_equal(sv_v2_datatype(ST_DT_FLOAT16), "FP16");
    assert_null(sv_v2_datatype(ST_DT_UNDEFINED));
}

/* Non-finite outputs are null in JSON and nan/inf in CSV. */
static void test_nonfinite_outputs(void **state)
{
    (void)state;
    static float v[3] = { 1.5f, NAN, -INFINITY };
    eng_io out = { .name = "y", .dtype = ST_DT_FLOAT32, .rank = 1, .dims = { -1 } };
    sv_model_sig sig = { "m", NULL, iris_in, 1, &out, 1, "onnx" };
    eng_tensor t = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ 3 }, 1, v);
    sv_request req = { .is_row_form = true };
    assert_text(encode(SV_PROTO_V2, NULL, &sig, &req, &t, 1, NULL),
                "{\"model_name\":\"m\",\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP32\","
                "\"shape\":[3],\"data\":[1.5,null,null]}]}");
    assert_text(encode(SV_PROTO_TFS, NULL, &sig, &req, &t, 1, NULL),
                "{\"predictions\":[1.5,null,null]}");
    assert_text(encode(SV_PROTO_SAGEMAKER, "text/csv", &sig, &req, &t, 1, NULL),
                "1.5\nnan\n-inf\n");
}

/* Nesting beyond the reader's depth is a malformed request, not a big one. */
static void test_deep_nesting(void **state)
{
    (void)state;
    char body[1200];
    size_t n = 0;
    n += (size_t)snprintf(body + n, sizeof body - n, "{\"instances\":");
    for (int i = 0; i < 300; i++)
        body[n++] = '[';
    body[n] = '\0';
    expect_fail(SV_PROTO_TFS, body, &iris, 400, "");
    expect_fail(SV_PROTO_V2, "{\"parameters\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                "]]]]]]]]]}}", &iris, 400, "");
}

/* A request decoded, answered by V2 with its own tensors, and the answer
 * read back with the DOM: same names, shapes and values. */
static void test_v2_round_trip(void **state)
{
    (void)state;
    decoded d;
    const char *body = "{\"id\":\"rt\",\"inputs\":[{\"name\":\"x\",\"shape\":[3,4],"
                       "\"datatype\":\"FP32\",\"data\":[[0.1,0.2,0.3,0.4],[1e-8,-3.4028235e+38,"
                       "16777217,0],[-0.0,5,6,7]]}]}";
    assert_int_equal(decode(&d, SV_PROTO_V2, body, &iris), ST_OK);
    sv_model_sig echo = { "echo", NULL, iris_in, 1, iris_in, 1, "onnx" };
    char *text = encode(SV_PROTO_V2, NULL, &echo, &d.req, d.req.inputs, 1, NULL);
    json_value *root;
    assert_int_equal(json_parse(text, strlen(text), NULL, &d.arena, &root, NULL), ST_OK);
    const json_value *o = json_value_at(json_value_get_c(root, "outputs"), 0);
    assert_non_null(o);
    const json_value *data = json_value_get_c(o, "data");
    assert_int_equal(data->u.array.count, 12);
    const float *in = d.req.inputs[0].data;
    for (size_t i = 0; i < 12; i++) {
        double v;
        assert_int_equal(json_value_double(json_value_at(data, i), &v), ST_OK);
        assert_true((float)v == in[i]);
    }
    assert_true(in[8] == -0.0f && signbit(in[8]));
    st_str id;
    assert_int_equal(json_value_string(json_value_get_c(root, "id"), &id), ST_OK);
    assert_true(st_str_eq_c(id, "rt"));
    free(text);
    done(&d);
}

/* Every allocation failing in turn: an error (503 for memory) or success,
 * never a crash or a leak (ASan builds check the leaks). */
static void test_allocation_failures(void **state)
{
    (void)state;
    static const struct {
        sv_proto p;
        const char *ct;
        const char *body;
        const sv_model_sig *sig;
    } cases[] = {
        { SV_PROTO_V2, NULL,
          "{\"id\":\"x\",\"inputs\":[{\"data\":[\"a\",{\"b64\":\"aGk=\"}],\"name\":\"text\","
          "\"shape\":[2],\"datatype\":\"BYTES\"},{\"name\":\"ids\",\"shape\":[2,2],"
          "\"datatype\":\"INT8\",\"data\":[1,2,3,4]},{\"name\":\"mask\",\"shape\":[2],"
          "\"datatype\":\"BOOL\",\"data\":[true,false]}],\"outputs\":[{\"name\":\"score\"}]}",
          &multi },
        { SV_PROTO_TFS, NULL,
          "{\"instances\":[{\"ids\":[1,2],\"text\":\"a\",\"mask\":true},"
          "{\"ids\":[3,4],\"text\":\"b\",\"mask\":false}]}",
          &multi },
        { SV_PROTO_SAGEMAKER, "text/csv", "1,2,3,4\n5,6,7,8\n", &iris },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bool succeeded = false;
        for (uint64_t n = 1; n < 200 && !succeeded; n++) {
            decoded d;
            st_alloc_fail_after(n);
            st_status s = decode_ct(&d, cases[c].p, cases[c].ct, cases[c].body, cases[c].sig,
                                    &limits);
            st_alloc_fail_reset();
            if (s == ST_OK)
                succeeded = true;
            else if (d.http != 503)
                fail_msg("case %zu, failing allocation %llu: %d %s", c, (unsigned long long)n,
                         d.http, d.err.msg);
            done(&d);
        }
        assert_true(succeeded);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_flat_and_nested),
        cmocka_unit_test(test_v2_id_and_outputs),
        cmocka_unit_test(test_v2_all_outputs_no_id),
        cmocka_unit_test(test_v2_types),
        cmocka_unit_test(test_v2_every_datatype),
        cmocka_unit_test(test_v2_errors),
        cmocka_unit_test(test_v2_total_bytes_limit),
        cmocka_unit_test(test_tfs_rows_single_input),
        cmocka_unit_test(test_tfs_columns),
        cmocka_unit_test(test_tfs_rows_multi_input),
        cmocka_unit_test(test_tfs_strings_and_scalars),
        cmocka_unit_test(test_tfs_errors),
        cmocka_unit_test(test_vertex_and_sagemaker_json),
        cmocka_unit_test(test_zipmap_outputs),
        cmocka_unit_test(test_csv_requests),
        cmocka_unit_test(test_metadata_and_status),
        cmocka_unit_test(test_nonfinite_outputs),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_v2_round_trip),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
