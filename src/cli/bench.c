/* bench.c - `stratus bench`: latency percentiles and throughput of a model
 * on this machine, with random inputs of the declared types and shapes
 * unless --input gives real ones. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/time.h"
#include "cli/progress.h"
#include "cli/tensors.h"
#include "json/json.h"

/* xorshift64*: fast, deterministic random inputs. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

static void fill_random(eng_tensor *t, uint64_t *seed)
{
    for (size_t i = 0; i < t->count; i++) {
        uint64_t r = rng_next(seed);
        double u = (double)(r >> 11) / 9007199254740992.0; /* [0, 1) */
        switch (t->dtype) {
        case ST_DT_FLOAT32: ((float *)t->data)[i] = (float)(u * 2 - 1); break;
        case ST_DT_FLOAT64: ((double *)t->data)[i] = u * 2 - 1; break;
        case ST_DT_FLOAT16: ((uint16_t *)t->data)[i] = st_float_to_half((float)(u * 2 - 1)); break;
        case ST_DT_BOOL: ((uint8_t *)t->data)[i] = r >> 63; break;
        /* Small non-negative integers: safe as indices and token ids. */
        default: {
            size_t es = st_dtype_size(t->dtype);
            uint64_t v = r % 8;
            memcpy((char *)t->data + i * es, &v, es); /* little-endian */
        }
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)ceil(p * (double)n) - 1;
    if (i >= n)
        i = n - 1;
    return (double)sorted[i] / 1000.0;
}

/* Sets symbolic dims from --dim NAME=VALUE; returns false on a bad spec. */
static bool dim_value(const cli_multi *dims, const char *name, long *out, bool *bad)
{
    for (size_t i = 0; i < dims->count; i++) {
        const char *eq = strchr(dims->values[i], '=');
        if (!eq) {
            *bad = true;
            return false;
        }
        if (name && st_str_eq_c(st_str_make(dims->values[i], (size_t)(eq - dims->values[i])), name)) {
            char *end;
            long v = strtol(eq + 1, &end, 10);
            if (*end || v < 0) {
                *bad = true;
                return false;
            }
            *out = v;
            return true;
        }
    }
    return false;
}

int cli_bench_run(const cli_verb *verb, int argc, char **argv)
{
    cli_multi specs = { .count = 0 }, dims = { .count = 0 };
    long batch = 1, threads = 1;
    double seconds = 3.0;
    bool as_json = false;
    const cli_flag flags[] = {
        { "--batch", CLI_INT, &batch, 1, 1L << 24 },
        { "--threads", CLI_INT, &threads, 1, 1024 },
        { "--seconds", CLI_DOUBLE, &seconds, 0, 0 },
        { "--input", CLI_MULTI, &specs, 0, 0 },
        { "--dim", CLI_MULTI, &dims, 0, 0 },
        { "--json", CLI_BOOL, &as_json, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[1];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 1, &npos))
        return CLI_EXIT_USAGE;
    if (npos != 1)
        return cli_usage_error(verb, "needs a model file");
    char model_path[4096];
    int ref_rc = cli_model_path(verb, pos[0], model_path, sizeof model_path);
    if (ref_rc != CLI_EXIT_OK)
        return ref_rc;
    st_error err = { 0 };
    eng_options opt = { .threads = (int)threads };
    eng_model *model = NULL;
    eng_session *sess = NULL;
    cli_inputs in = { 0 };
    eng_tensor *outs = NULL;
    uint64_t *lat = NULL;
    int rc = CLI_EXIT_OK;
    uint64_t t_load = st_now_ns();
    if (eng_load_file(model_path, &opt, &model, &err) != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
        goto done;
    }
    double load_ms = (double)(st_now_ns() - t_load) / 1e6;
    if ((rc = cli_inputs_load(verb, model, &specs, false, &in)) != CLI_EXIT_OK)
        goto done;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    size_t rows = (size_t)batch;
    for (size_t i = 0; i < in.n; i++) {
        const eng_io *io = eng_input(model, i);
        if (in.is_given[i]) {
            if (in.tensors[i].rank > 0)
                rows = (size_t)in.tensors[i].shape[0];
            continue;
        }
        if (io->rank < 0) {
            rc = cli_usage_error(verb, "input '%s' has no declared shape; give it with --input %s=FILE", io->name,
                                 io->name);
            goto done;
        }
        int64_t shape[ENG_MAX_RANK];
        for (int d = 0; d < io->rank; d++) {
            long v = 1;
            bool bad = false;
            if (io->dims[d] >= 0)
                shape[d] = io->dims[d];
            else if (dim_value(&dims, io->dim_names[d], &v, &bad))
                shape[d] = v;
            else if (bad) {
                rc = cli_usage_error(verb, "--dim takes NAME=VALUE with VALUE >= 0");
                goto done;
            } else
                shape[d] = d == 0 ? batch : 1;
        }
        st_dtype dt = io->dtype == ST_DT_UNDEFINED ? ST_DT_FLOAT32 : io->dtype;
        if (dt == ST_DT_STRING) {
            rc = cli_usage_error(verb, "input '%s' is a string tensor; give it with --input", io->name);
            goto done;
        }
        eng_tensor *t = &in.tensors[i];
        *t = eng_tensor_make(dt, shape, (uint32_t)io->rank, NULL);
        size_t bytes;
        if (st_mul_overflow(t->count, st_dtype_size(dt), &bytes) || !(t->data = st_arena_alloc(&in.arena, bytes ? bytes : 1, 64))) {
            rc = cli_fail(verb, "input '%s' is too large", io->name);
            goto done;
        }
        fill_random(t, &seed);
    }
    if (eng_session_new(model, &sess, &err) != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
        goto done;
    }
    size_t n_out = eng_n_outputs(model);
    outs = st_calloc(n_out + 1, sizeof *outs);
    size_t cap = 1 << 16, n = 0;
    lat = st_malloc(cap * sizeof *lat);
    if (!outs || !lat) {
        rc = cli_fail(verb, "out of memory");
        goto done;
    }
    /* Warm up: plans, caches, page faults. */
    uint64_t t0 = st_now_ns();
    for (int i = 0; i < 10 && st_now_ns() - t0 < 500000000ull; i++)
        if (eng_run(sess, in.tensors, in.n, outs, n_out, &err) != ST_OK) {
            rc = cli_fail(verb, "%s", st_error_msg(&err));
            goto done;
        }
    uint64_t budget = (uint64_t)(seconds * 1e9);
    cli_progress bar;
    cli_progress_start(&bar, "bench", budget / 1000000 + 1);
    uint64_t start = st_now_ns(), now = start;
    while (n < 5 || now - start < budget) {
        uint64_t a = st_now_ns();
        if (eng_run(sess, in.tensors, in.n, outs, n_out, &err) != ST_OK) {
            rc = cli_fail(verb, "%s", st_error_msg(&err));
            goto done;
        }
        now = st_now_ns();
        if (n == cap) {
            uint64_t *grown = st_realloc(lat, cap * 2 * sizeof *lat);
            if (!grown)
                break;
            lat = grown;
            cap *= 2;
        }
        lat[n++] = now - a;
        cli_progress_update(&bar, (now - start) / 1000000);
    }
    cli_progress_finish(&bar);
    double wall_s = (double)(now - start) / 1e9;
    qsort(lat, n, sizeof *lat, cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)lat[i];
    double ips = (double)n / wall_s;
    double p50 = percentile(lat, n, 0.50), p90 = percentile(lat, n, 0.90), p99 = percentile(lat, n, 0.99);
    if (as_json) {
        st_buf out = { 0 };
        json_writer w;
        json_writer_init(&w, &out, &err);
        json_write_object_begin(&w);
        json_write_key(&w, ST_STR("model"));
        json_write_string(&w, st_str_c(pos[0]));
        json_write_key(&w, ST_STR("batch"));
        json_write_uint64(&w, rows);
        json_write_key(&w, ST_STR("threads"));
        json_write_int64(&w, threads);
        json_write_key(&w, ST_STR("runs"));
        json_write_uint64(&w, n);
        json_write_key(&w, ST_STR("seconds"));
        json_write_double(&w, wall_s);
        json_write_key(&w, ST_STR("load_ms"));
        json_write_double(&w, load_ms);
        json_write_key(&w, ST_STR("min_us"));
        json_write_double(&w, (double)lat[0] / 1000.0);
        json_write_key(&w, ST_STR("mean_us"));
        json_write_double(&w, sum / (double)n / 1000.0);
        json_write_key(&w, ST_STR("p50_us"));
        json_write_double(&w, p50);
        json_write_key(&w, ST_STR("p90_us"));
        json_write_double(&w, p90);
        json_write_key(&w, ST_STR("p99_us"));
        json_write_double(&w, p99);
        json_write_key(&w, ST_STR("inferences_per_s"));
        json_write_double(&w, ips);
        json_write_key(&w, ST_STR("rows_per_s"));
        json_write_double(&w, ips * (double)rows);
        json_write_object_end(&w);
        if (json_writer_finish(&w) != ST_OK)
            rc = cli_fail(verb, "%s", st_error_msg(&err));
        else
            printf("%.*s\n", (int)out.len, (const char *)out.data);
        st_buf_free(&out);
    } else {
        printf("%s: batch %zu, %ld thread%s, %zu runs in %.2f s (load %.1f ms)\n", pos[0], rows, threads,
               threads == 1 ? "" : "s", n, wall_s, load_ms);
        printf("latency   p50 %.1f us   p90 %.1f us   p99 %.1f us   min %.1f us\n", p50, p90, p99,
               (double)lat[0] / 1000.0);
        printf("throughput  %.1f inferences/s   %.1f rows/s\n", ips, ips * (double)rows);
    }
done:
    st_free(lat);
    st_free(outs);
    cli_inputs_free(&in);
    eng_session_free(sess);
    eng_free(model);
    return rc;
}
