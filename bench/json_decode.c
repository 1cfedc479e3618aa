/* json_decode.c - benchmark: decode a ~10 MB JSON array of float32 numbers
 * (random values written in shortest form, like a real inference request)
 * into a float buffer with our reader, jansson and cJSON; then encode the
 * same floats back to JSON with each.  Best of several repeats of thread
 * CPU time; prints MB/s and our speed-up over each peer.  Not a test: it
 * asserts nothing (it exits non-zero only if a result is wrong). */
#include <cjson/cJSON.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "bench.h"
#include "json/json.h"

#define TARGET_BYTES ((size_t)10 << 20)
#define REPEATS 7

typedef struct {
    const char *name;
    double decode_s;
    double encode_s;
    size_t encode_bytes;
    size_t mismatches;
} result;

static int decode_ours(const char *text, size_t len, st_buf *out)
{
    st_error err = { 0 };
    json_reader r;
    json_limits lim = json_limits_default();
    out->len = 0;
    json_reader_init(&r, text, len, &lim, NULL, &err);
    size_t shape[1], rank = 0;
    if (json_read_numbers(&r, ST_DT_FLOAT32, out, shape, 1, &rank) != ST_OK ||
        json_reader_finish(&r) != ST_OK) {
        fprintf(stderr, "ours: %s\n", st_error_msg(&err));
        return -1;
    }
    return 0;
}

static int decode_jansson(const char *text, size_t len, float *out, size_t n)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root || !json_is_array(root) || json_array_size(root) != n) {
        fprintf(stderr, "jansson: %s\n", root ? "bad shape" : jerr.text);
        json_decref(root);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (float)json_number_value(json_array_get(root, i));
    json_decref(root);
    return 0;
}

static int decode_cjson(const char *text, size_t len, float *out, size_t n)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root || !cJSON_IsArray(root)) {
        fprintf(stderr, "cJSON: parse failed\n");
        cJSON_Delete(root);
        return -1;
    }
    size_t i = 0;
    for (cJSON *c = root->child; c && i < n; c = c->next)
        out[i++] = (float)c->valuedouble;
    cJSON_Delete(root);
    return i == n ? 0 : -1;
}

static size_t encode_ours(const float *v, size_t n, st_buf *out)
{
    json_writer w;
    size_t shape[1] = { n };
    out->len = 0;
    json_writer_init(&w, out, NULL);
    if (json_write_numbers(&w, ST_DT_FLOAT32, v, shape, 1, false) != ST_OK)
        return 0;
    return out->len;
}

static size_t encode_jansson(const float *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_real(v[i]));
    char *s = json_dumps(arr, JSON_COMPACT);
    size_t len = s ? strlen(s) : 0;
    free(s);
    json_decref(arr);
    return len;
}

static size_t encode_cjson(const float *v, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(v[i]));
    char *s = cJSON_PrintUnformatted(arr);
    size_t len = s ? strlen(s) : 0;
    cJSON_free(s);
    cJSON_Delete(arr);
    return len;
}

int main(void)
{
    /* Build the request body with our shortest float32 formatting. */
    size_t cap = 1 << 20, n = 0;
    float *values = malloc(cap * sizeof *values);
    st_buf text = { 0 };
    if (!values || st_buf_append_byte(&text, '[') != ST_OK)
        return 1;
    while (text.len < TARGET_BYTES) {
        if (n == cap) {
            cap *= 2;
            float *nv = realloc(values, cap * sizeof *nv);
            if (!nv)
                return 1;
            values = nv;
        }
        float f = bench_random_float();
        char num[JSON_NUMBER_MAX_CHARS];
        size_t len = json_format_float(f, num);
        if (n && st_buf_append_byte(&text, ',') != ST_OK)
            return 1;
        if (st_buf_append(&text, num, len) != ST_OK)
            return 1;
        values[n++] = f;
    }
    if (st_buf_append_byte(&text, ']') != ST_OK)
        return 1;
    double mb = (double)text.len / 1e6;
    printf("input: %zu float32 values, %.2f MB of JSON\n", n, mb);

    float *peer = malloc(n * sizeof *peer);
    st_buf ours_out = { 0 }, enc = { 0 };
    if (!peer)
        return 1;
    result res[3] = { { "stratus", 1e9, 1e9, 0, 0 }, { "jansson", 1e9, 1e9, 0, 0 },
                      { "cJSON", 1e9, 1e9, 0, 0 } };
    for (int rep = 0; rep < REPEATS; rep++) {
        double t0 = bench_now_s();
        if (decode_ours((const char *)text.data, text.len, &ours_out) != 0)
            return 1;
        double t1 = bench_now_s();
        if (t1 - t0 < res[0].decode_s)
            res[0].decode_s = t1 - t0;

        t0 = bench_now_s();
        if (decode_jansson((const char *)text.data, text.len, peer, n) != 0)
            return 1;
        t1 = bench_now_s();
        if (t1 - t0 < res[1].decode_s)
            res[1].decode_s = t1 - t0;
        if (rep == 0)
            for (size_t i = 0; i < n; i++)
                res[1].mismatches += memcmp(&peer[i], &values[i], sizeof *peer) != 0;

        t0 = bench_now_s();
        if (decode_cjson((const char *)text.data, text.len, peer, n) != 0)
            return 1;
        t1 = bench_now_s();
        if (t1 - t0 < res[2].decode_s)
            res[2].decode_s = t1 - t0;
        if (rep == 0)
            for (size_t i = 0; i < n; i++)
                res[2].mismatches += memcmp(&peer[i], &values[i], sizeof *peer) != 0;
    }
    if (ours_out.len != n * sizeof(float) || memcmp(ours_out.data, values, ours_out.len) != 0) {
        fprintf(stderr, "ours: decoded values differ from the originals\n");
        return 1;
    }

    for (int rep = 0; rep < REPEATS; rep++) {
        double t0 = bench_now_s();
        res[0].encode_bytes = encode_ours(values, n, &enc);
        double t1 = bench_now_s();
        if (t1 - t0 < res[0].encode_s)
            res[0].encode_s = t1 - t0;
        t0 = bench_now_s();
        res[1].encode_bytes = encode_jansson(values, n);
        t1 = bench_now_s();
        if (t1 - t0 < res[1].encode_s)
            res[1].encode_s = t1 - t0;
        t0 = bench_now_s();
        res[2].encode_bytes = encode_cjson(values, n);
        t1 = bench_now_s();
        if (t1 - t0 < res[2].encode_s)
            res[2].encode_s = t1 - t0;
    }
    if (res[0].encode_bytes != text.len || memcmp(enc.data, text.data, text.len) != 0) {
        fprintf(stderr, "ours: encoded text differs from the input text\n");
        return 1;
    }

    printf("\ndecode %.2f MB float32 array -> float buffer (best of %d, thread CPU time)\n", mb, REPEATS);
    printf("  %-8s %10s %12s %12s\n", "library", "ms", "MB/s", "wrong bits");
    for (int i = 0; i < 3; i++)
        printf("  %-8s %10.2f %12.1f %12zu\n", res[i].name, res[i].decode_s * 1e3,
               mb / res[i].decode_s, res[i].mismatches);
    printf("  ratio ours/jansson: %.2fx faster\n", res[1].decode_s / res[0].decode_s);
    printf("  ratio ours/cJSON:   %.2fx faster\n", res[2].decode_s / res[0].decode_s);

    printf("\nencode %zu float32 -> JSON text (peers: build tree + dump; best of %d)\n", n, REPEATS);
    printf("  %-8s %10s %12s %12s %14s\n", "library", "ms", "Mvalues/s", "out MB", "out MB/s");
    for (int i = 0; i < 3; i++)
        printf("  %-8s %10.2f %12.2f %12.2f %14.1f\n", res[i].name, res[i].encode_s * 1e3,
               (double)n / res[i].encode_s / 1e6, (double)res[i].encode_bytes / 1e6,
               (double)res[i].encode_bytes / 1e6 / res[i].encode_s);
    printf("  ratio ours/jansson: %.2fx faster\n", res[1].encode_s / res[0].encode_s);
    printf("  ratio ours/cJSON:   %.2fx faster\n", res[2].encode_s / res[0].encode_s);

    free(values);
    free(peer);
    st_buf_free(&text);
    st_buf_free(&ours_out);
    st_buf_free(&enc);
    return 0;
}
