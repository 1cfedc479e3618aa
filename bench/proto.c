/* proto.c - benchmark: a KServe V2 infer request of 1000 x 20 float32
 * (random values in shortest form) decoded by sv_decode, and its response
 * (the same tensor) encoded by sv_encode, against the bare JSON reader
 * and writer on the data array alone.  The protocol layer should cost
 * little beyond them (no tree is built).  Best of several repeats of
 * thread CPU time; also TF Serving rows and SageMaker CSV of the same
 * data.  Not a test: it asserts nothing (it exits non-zero only if a
 * result is wrong). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "bench.h"
#include "json/json.h"
#include "serve/proto.h"

#define ROWS 1000
#define COLS 20
#define REPEATS 200

static const eng_io io[] = {
    { .name = "x", .dtype = ST_DT_FLOAT32, .rank = 2, .dims = { -1, COLS } },
};
static const sv_model_sig sig = { "tab", "1", io, 1, io, 1, "onnx" };

typedef struct {
    double best;
} timing;

static void take(timing *t, double s)
{
    if (s < t->best)
        t->best = s;
}

/* Decodes body with protocol p; checks the values. */
static int decode_once(sv_proto p, const char *ct, const st_buf *body, const float *values,
                       st_arena *arena, sv_request *req)
{
    int http;
    st_error err = { 0 };
    st_arena_reset(arena);
    if (sv_decode(p, ct, body->data, body->len, &sig, NULL, arena, req, &http, &err) != ST_OK) {
        fprintf(stderr, "decode: %s\n", err.msg);
        return -1;
    }
    if (req->inputs[0].count != ROWS * COLS ||
        memcmp(req->inputs[0].data, values, ROWS * COLS * sizeof(float)) != 0) {
        fprintf(stderr, "decode: values differ\n");
        return -1;
    }
    return 0;
}

int main(void)
{
    static float values[ROWS * COLS];
    for (size_t i = 0; i < ROWS * COLS; i++)
        values[i] = bench_random_float();
    size_t shape[2] = { ROWS, COLS };

    /* The bodies: V2 (flat data), TF Serving rows, CSV; and the bare array. */
    st_buf array = { 0 }, v2 = { 0 }, tfs = { 0 }, csv = { 0 };
    json_writer w;
    json_writer_init(&w, &array, NULL);
    json_write_numbers(&w, ST_DT_FLOAT32, values, shape, 2, false);
    st_buf_printf(&v2, "{\"id\":\"bench\",\"inputs\":[{\"name\":\"x\",\"shape\":[%d,%d],"
                  "\"datatype\":\"FP32\",\"data\":", ROWS, COLS);
    st_buf_append(&v2, array.data, array.len);
    st_buf_printf(&v2, "}]}");
    st_buf_printf(&tfs, "{\"instances\":");
    json_writer_init(&w, &tfs, NULL);
    json_write_numbers(&w, ST_DT_FLOAT32, values, shape, 2, true);
    st_buf_printf(&tfs, "}");
    for (size_t r = 0; r < ROWS; r++)
        for (size_t c = 0; c < COLS; c++) {
            char num[JSON_NUMBER_MAX_CHARS];
            size_t n = json_format_float(values[r * COLS + c], num);
            st_buf_append(&csv, num, n);
            st_buf_append_byte(&csv, c + 1 < COLS ? ',' : '\n');
        }

    st_arena arena;
    st_arena_init(&arena, 0);
    sv_request req;
    st_buf out = { 0 }, raw = { 0 };
    timing t_array = { 1e9 }, t_v2 = { 1e9 }, t_tfs = { 1e9 }, t_csv = { 1e9 };
    timing t_write = { 1e9 }, t_enc_v2 = { 1e9 }, t_enc_tfs = { 1e9 }, t_enc_csv = { 1e9 };
    for (int rep = 0; rep < REPEATS; rep++) {
        double t0 = bench_now_s();
        json_reader r;
        raw.len = 0;
        json_reader_init(&r, array.data, array.len, NULL, NULL, NULL);
        size_t dims[1], rank;
        if (json_read_numbers(&r, ST_DT_FLOAT32, &raw, dims, 1, &rank) != ST_OK)
            return 1;
        take(&t_array, bench_now_s() - t0);

        t0 = bench_now_s();
        if (decode_once(SV_PROTO_V2, "application/json", &v2, values, &arena, &req) != 0)
            return 1;
        take(&t_v2, bench_now_s() - t0);

        const char *ct;
        st_error err = { 0 };
        out.len = 0;
        t0 = bench_now_s();
        if (sv_encode(SV_PROTO_V2, NULL, &sig, &req, req.inputs, 1, &out, &ct, &err) != ST_OK)
            return 1;
        take(&t_enc_v2, bench_now_s() - t0);

        raw.len = 0;
        t0 = bench_now_s();
        json_writer_init(&w, &raw, NULL);
        json_write_numbers(&w, ST_DT_FLOAT32, values, shape, 2, false);
        take(&t_write, bench_now_s() - t0);

        t0 = bench_now_s();
        if (decode_once(SV_PROTO_TFS, NULL, &tfs, values, &arena, &req) != 0)
            return 1;
        take(&t_tfs, bench_now_s() - t0);
        out.len = 0;
        t0 = bench_now_s();
        if (sv_encode(SV_PROTO_TFS, NULL, &sig, &req, req.inputs, 1, &out, &ct, &err) != ST_OK)
            return 1;
        take(&t_enc_tfs, bench_now_s() - t0);

        t0 = bench_now_s();
        if (decode_once(SV_PROTO_SAGEMAKER, "text/csv", &csv, values, &arena, &req) != 0)
            return 1;
        take(&t_csv, bench_now_s() - t0);
        out.len = 0;
        t0 = bench_now_s();
        if (sv_encode(SV_PROTO_SAGEMAKER, NULL, &sig, &req, req.inputs, 1, &out, &ct, &err) !=
            ST_OK)
            return 1;
        take(&t_enc_csv, bench_now_s() - t0);
    }
    printf("%d x %d float32 (best of %d, thread CPU time)\n", ROWS, COLS, REPEATS);
    printf("  %-34s %10s %10s %10s\n", "step", "us", "MB/s", "vs bare");
    double mb_array = (double)array.len / 1e6;
    printf("  %-34s %10.1f %10.1f %10s\n", "bare json_read_numbers (data only)", t_array.best * 1e6,
           mb_array / t_array.best, "1.00x");
    printf("  %-34s %10.1f %10.1f %9.2fx\n", "V2 sv_decode (whole request)", t_v2.best * 1e6,
           (double)v2.len / 1e6 / t_v2.best, t_v2.best / t_array.best);
    printf("  %-34s %10.1f %10.1f %9.2fx\n", "TFS rows sv_decode", t_tfs.best * 1e6,
           (double)tfs.len / 1e6 / t_tfs.best, t_tfs.best / t_array.best);
    printf("  %-34s %10.1f %10.1f %9.2fx\n", "SageMaker CSV sv_decode", t_csv.best * 1e6,
           (double)csv.len / 1e6 / t_csv.best, t_csv.best / t_array.best);
    printf("  %-34s %10.1f %10.1f %10s\n", "bare json_write_numbers", t_write.best * 1e6,
           mb_array / t_write.best, "1.00x");
    printf("  %-34s %10.1f %10s %9.2fx\n", "V2 sv_encode", t_enc_v2.best * 1e6, "",
           t_enc_v2.best / t_write.best);
    printf("  %-34s %10.1f %10s %9.2fx\n", "TFS sv_encode (nested)", t_enc_tfs.best * 1e6, "",
           t_enc_tfs.best / t_write.best);
    printf("  %-34s %10.1f %10s %9.2fx\n", "SageMaker CSV sv_encode", t_enc_csv.best * 1e6, "",
           t_enc_csv.best / t_write.best);
    st_arena_free(&arena);
    st_buf_free(&array);
    st_buf_free(&v2);
    st_buf_free(&tfs);
    st_buf_free(&csv);
    st_buf_free(&out);
    st_buf_free(&raw);
    return 0;
}
