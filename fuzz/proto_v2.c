/* proto_v2.c - libFuzzer target for src/serve/proto*.c: the input is a
 * request body, decoded by every protocol (V2, TF Serving, Vertex,
 * SageMaker JSON and CSV) against three fixed signatures (one float
 * input, one string input, four inputs of mixed types).  Checks: a
 * failure has a message and status 400, 413 or 415 (nothing else is
 * expected of bad bytes); a success has every input
 * with the declared dtype and a consistent count; V2 requests written
 * back from the decoded tensors decode to the same bytes; every success
 * encodes in every protocol. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz.h"
#include "json/json.h"
#include "serve/proto.h"

#define CHECK(cond)          \
    do {                     \
        if (!(cond))         \
            abort();         \
    } while (0)

static const eng_io float_in[] = {
    { .name = "x", .dtype = ST_DT_FLOAT32, .rank = 2, .dims = { -1, 4 } },
};
static const eng_io string_in[] = {
    { .name = "s", .dtype = ST_DT_STRING, .rank = 1, .dims = { -1 } },
};
static const eng_io mixed_in[] = {
    { .name = "ids", .dtype = ST_DT_INT64, .rank = 2, .dims = { -1, 2 } },
    { .name = "text", .dtype = ST_DT_STRING, .rank = -1 },
    { .name = "mask", .dtype = ST_DT_BOOL, .rank = 1, .dims = { -1 } },
    { .name = "h", .dtype = ST_DT_FLOAT16, .rank = 1, .dims = { 3 } },
};

static size_t elem_size(st_dtype t)
{
    return t == ST_DT_STRING ? sizeof(st_str) : st_dtype_size(t);
}

static bool tensors_equal(const eng_tensor *a, const eng_tensor *b)
{
    if (a->dtype != b->dtype || a->count != b->count || a->rank != b->rank)
        return false;
    if (memcmp(a->shape, b->shape, a->rank * sizeof a->shape[0]) != 0)
        return false;
    if (a->dtype == ST_DT_STRING) {
        const st_str *x = a->data, *y = b->data;
        for (size_t i = 0; i < a->count; i++)
            if (!st_str_eq(x[i], y[i]))
                return false;
        return true;
    }
    return a->count == 0 || memcmp(a->data, b->data, a->count * elem_size(a->dtype)) == 0;
}

/* Writes a V2 request for the decoded tensors and checks it decodes to
 * the same tensors. */
static void v2_round_trip(const sv_model_sig *sig, const sv_request *req, const sv_limits *lim)
{
    st_buf body = { 0 };
    json_writer w;
    json_writer_init(&w, &body, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("inputs"));
    json_write_array_begin(&w);
    for (size_t i = 0; i < req->n_inputs; i++) {
        const eng_tensor *t = &req->inputs[i];
        json_write_object_begin(&w);
        json_write_key(&w, ST_STR("name"));
        json_write_string(&w, st_str_c(sig->inputs[i].name));
        json_write_key(&w, ST_STR("shape"));
        json_write_array_begin(&w);
        for (uint32_t d = 0; d < t->rank; d++)
            json_write_int64(&w, t->shape[d]);
        json_write_array_end(&w);
        json_write_key(&w, ST_STR("datatype"));
        json_write_string(&w, st_str_c(sv_v2_datatype(t->dtype)));
        json_write_key(&w, ST_STR("data"));
        if (t->dtype == ST_DT_STRING) {
            json_write_array_begin(&w);
            for (size_t k = 0; k < t->count; k++)
                json_write_string(&w, ((const st_str *)t->data)[k]);
            json_write_array_end(&w);
        } else {
            size_t dims[1] = { t->count };
            json_write_numbers(&w, t->dtype, t->data, dims, 1, false);
        }
        json_write_object_end(&w);
    }
    json_write_array_end(&w);
    json_write_object_end(&w);
    /* Strings with invalid UTF-8 are written with U+FFFD: skip those. */
    bool lossy = false;
    for (size_t i = 0; i < req->n_inputs; i++)
        if (req->inputs[i].dtype == ST_DT_STRING)
            for (size_t k = 0; k < req->inputs[i].count; k++) {
                st_str s = ((const st_str *)req->inputs[i].data)[k];
                st_buf tmp = { 0 };
                json_writer w2;
                json_writer_init(&w2, &tmp, NULL);
                json_write_string(&w2, s);
                json_reader r;
                st_str back;
                json_reader_init(&r, tmp.data, tmp.len, NULL, NULL, NULL);
                lossy |= json_read_string(&r, &back) != ST_OK || !st_str_eq(back, s);
                st_buf_free(&tmp);
            }
    if (json_writer_finish(&w) == ST_OK && !lossy) {
        st_arena arena;
        st_arena_init(&arena, 0);
        sv_request again;
        int http;
        st_error err = { 0 };
        CHECK(sv_decode(SV_PROTO_V2, NULL, body.data, body.len, sig, lim, &arena, &again, &http,
                        &err) == ST_OK);
        for (size_t i = 0; i < req->n_inputs; i++)
            CHECK(tensors_equal(&req->inputs[i], &again.inputs[i]));
        st_arena_free(&arena);
    }
    st_buf_free(&body);
}

static void run(sv_proto p, const char *ct, const uint8_t *data, size_t size,
                const eng_io *ins, size_t n_ins)
{
    /* The inputs double as outputs, so a success can be encoded. */
    sv_model_sig sig = { "m", "1", ins, n_ins, ins, n_ins, "onnx" };
    sv_limits lim = { .max_elements = 4096, .max_total_bytes = 1 << 20 };
    st_arena arena;
    st_arena_init(&arena, 0);
    sv_request req;
    int http = 0;
    st_error err = { 0 };
    st_status s = sv_decode(p, ct, data, size, &sig, &lim, &arena, &req, &http, &err);
    if (s != ST_OK) {
        CHECK((http == 400 || http == 413 || http == 415) && err.msg[0] != '\0');
    } else {
        CHECK(http == 200 && req.n_inputs == n_ins);
        for (size_t i = 0; i < n_ins; i++) {
            const eng_tensor *t = &req.inputs[i];
            size_t count = 1;
            for (uint32_t d = 0; d < t->rank; d++)
                count *= (size_t)t->shape[d];
            CHECK(t->dtype == ins[i].dtype && t->count == count && count <= lim.max_elements);
            CHECK(t->data != NULL);
        }
        for (size_t k = 0; k < req.n_outputs; k++)
            CHECK(req.outputs[k] >= 0 && (size_t)req.outputs[k] < n_ins);
        v2_round_trip(&sig, &req, &lim);
        static const sv_proto all[] = { SV_PROTO_V2, SV_PROTO_TFS, SV_PROTO_SAGEMAKER,
                                        SV_PROTO_VERTEX };
        for (size_t q = 0; q < 4; q++) {
            st_buf body = { 0 };
            const char *type = NULL;
            st_error e2 = { 0 };
            st_status es = sv_encode(all[q], q == 2 ? "text/csv" : NULL, &sig, &req, req.inputs,
                                     n_ins, &body, &type, &e2);
            CHECK(es == ST_OK && type != NULL);
            if (strcmp(type, "application/json") == 0)
                CHECK(json_validate(body.data, body.len, NULL, NULL) == ST_OK);
            st_buf_free(&body);
        }
    }
    st_arena_free(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct {
        sv_proto p;
        const char *ct;
    } modes[] = {
        { SV_PROTO_V2, "application/json" },    { SV_PROTO_TFS, NULL },
        { SV_PROTO_VERTEX, "application/json" }, { SV_PROTO_SAGEMAKER, "application/json" },
        { SV_PROTO_SAGEMAKER, "text/csv" },
    };
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        run(modes[m].p, modes[m].ct, data, size, float_in, 1);
        run(modes[m].p, modes[m].ct, data, size, string_in, 1);
        run(modes[m].p, modes[m].ct, data, size, mixed_in, 4);
    }
    return 0;
}
