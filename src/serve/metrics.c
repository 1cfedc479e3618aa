/* metrics.c - what `GET /metrics` says, in the Prometheus text exposition
 * format (version 0.0.4): "# HELP" and "# TYPE" once per family, then one
 * line per series; histograms as cumulative _bucket{le=...} lines ending
 * with le="+Inf", then _sum and _count.  The hot path only adds to relaxed
 * atomics; this file turns them into text when scraped. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "serve/serve_int.h"

static const int counted_codes[SV_N_CODES] = { 200, 400, 401, 404, 405, 408, 411, 413,
                                                415, 429, 431, 500, 503, 504, 0 };
/* Upper bounds of the duration buckets, in microseconds. */
static const uint64_t duration_bounds_us[SV_DURATION_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000,
};
static const uint64_t batch_bounds[SV_BATCH_BUCKETS] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512 };
static const char *const proto_labels[SV_N_PROTO_LABELS] = { "v2", "tfserving", "sagemaker", "vertex", "none" };

int sv_metrics_code_index(int http_status)
{
    for (int i = 0; i < SV_N_CODES - 1; i++)
        if (counted_codes[i] == http_status)
            return i;
    return SV_N_CODES - 1;
}

int sv_metrics_code_at(int index)
{
    return counted_codes[index];
}

void sv_histogram_observe_us(sv_histogram *h, uint64_t us)
{
    size_t b = 0;
    while (b < SV_DURATION_BUCKETS && us > duration_bounds_us[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

void sv_batch_observe(sv_model_stats *s, uint64_t rows)
{
    size_t b = 0;
    while (b < SV_BATCH_BUCKETS && rows > batch_bounds[b])
        b++;
    atomic_fetch_add_explicit(&s->batch_buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->batch_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->batch_sum, rows, memory_order_relaxed);
}

static uint64_t load(_Atomic uint64_t *x)
{
    return atomic_load_explicit(x, memory_order_relaxed);
}

static void family(st_buf *out, const char *name, const char *type, const char *help)
{
    st_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values here are model names and version numbers, which the
 * manager restricts to [A-Za-z0-9._-]; escaping is still applied so the
 * output stays valid whatever a name holds. */
static void label_value(st_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            st_buf_append_byte(out, '\\');
        if (*s == '\n') {
            st_buf_append_str(out, ST_STR("\\n"));
            continue;
        }
        st_buf_append_byte(out, (uint8_t)*s);
    }
}

static void write_counters(st_buf *out, const char *model, sv_counters *c)
{
    for (int p = 0; p < SV_N_PROTO_LABELS; p++)
        for (int k = 0; k < SV_N_CODES; k++) {
            uint64_t n = load(&c->requests[p][k]);
            if (n == 0)
                continue;
            st_buf_append_str(out, ST_STR("stratus_requests_total{model=\""));
            label_value(out, model);
            st_buf_append_str(out, ST_STR("\",version=\""));
            label_value(out, c->version);
            if (counted_codes[k])
                st_buf_printf(out, "\",protocol=\"%s\",code=\"%d\"} %llu\n", proto_labels[p], counted_codes[k],
                              (unsigned long long)n);
            else
                st_buf_printf(out, "\",protocol=\"%s\",code=\"other\"} %llu\n", proto_labels[p],
                              (unsigned long long)n);
        }
}

/* Microseconds as decimal seconds without exponent or trailing zeros
 * ("0.00005", "2.5", "10"). */
static const char *seconds_text(uint64_t us, char *buf, size_t cap)
{
    snprintf(buf, cap, "%llu.%06llu", (unsigned long long)(us / 1000000u), (unsigned long long)(us % 1000000u));
    size_t n = strlen(buf);
    while (buf[n - 1] == '0')
        buf[--n] = '\0';
    if (buf[n - 1] == '.')
        buf[--n] = '\0';
    return buf;
}

static void write_histogram(st_buf *out, const char *name, const char *model, sv_histogram *h)
{
    uint64_t cum = 0;
    char sec[32];
    for (size_t b = 0; b <= SV_DURATION_BUCKETS; b++) {
        cum += load(&h->buckets[b]);
        st_buf_printf(out, "%s_bucket{model=\"", name);
        label_value(out, model);
        if (b < SV_DURATION_BUCKETS)
            st_buf_printf(out, "\",le=\"%s\"} %llu\n", seconds_text(duration_bounds_us[b], sec, sizeof sec),
                          (unsigned long long)cum);
        else
            st_buf_printf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    st_buf_printf(out, "%s_sum{model=\"", name);
    label_value(out, model);
    st_buf_printf(out, "\"} %.6f\n%s_count{model=\"", (double)load(&h->sum_us) / 1e6, name);
    label_value(out, model);
    /* _count is the +Inf bucket: read separately it could differ by a
     * racing observation, and Prometheus wants them equal. */
    st_buf_printf(out, "\"} %llu\n", (unsigned long long)cum);
}

static void write_batch(st_buf *out, const char *model, sv_model_stats *s)
{
    uint64_t cum = 0;
    for (size_t b = 0; b <= SV_BATCH_BUCKETS; b++) {
        cum += load(&s->batch_buckets[b]);
        st_buf_append_str(out, ST_STR("stratus_batch_size_bucket{model=\""));
        label_value(out, model);
        if (b < SV_BATCH_BUCKETS)
            st_buf_printf(out, "\",le=\"%llu\"} %llu\n", (unsigned long long)batch_bounds[b], (unsigned long long)cum);
        else
            st_buf_printf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    st_buf_append_str(out, ST_STR("stratus_batch_size_sum{model=\""));
    label_value(out, model);
    st_buf_printf(out, "\"} %llu\nstratus_batch_size_count{model=\"", (unsigned long long)load(&s->batch_sum));
    label_value(out, model);
    st_buf_printf(out, "\"} %llu\n", (unsigned long long)cum);
}

/* One line `name{model="..."} value`. */
static void model_counter(st_buf *out, const char *name, const char *model, _Atomic uint64_t *value)
{
    st_buf_printf(out, "%s{model=\"", name);
    label_value(out, model);
    st_buf_printf(out, "\"} %llu\n", (unsigned long long)load(value));
}

static uint64_t resident_bytes(void)
{
    st_buf text = { 0 };
    unsigned long long size = 0, resident = 0;
    if (st_file_read_all("/proc/self/statm", &text, 4096, NULL) == ST_OK && st_buf_cstr(&text))
        sscanf((const char *)text.data, "%llu %llu", &size, &resident);
    st_buf_free(&text);
    long page = sysconf(_SC_PAGESIZE);
    return resident * (uint64_t)(page > 0 ? page : 4096);
}

void sv_metrics_write(st_buf *out, sv_model *const *models, size_t n_models, sv_counters *unrouted,
                      int64_t in_flight)
{
    family(out, "stratus_requests_total", "counter",
           "Requests answered, by model, version, protocol and HTTP status code.");
    write_counters(out, "", unrouted);
    for (size_t i = 0; i < n_models; i++)
        for (sv_counters *c = models[i]->counters; c; c = c->next)
            write_counters(out, models[i]->name, c);

    static const struct {
        const char *name, *help;
        size_t offset;
    } hists[] = {
        { "stratus_request_duration_seconds", "Time from a request's first byte to its response.",
          offsetof(sv_model_stats, duration) },
        { "stratus_request_queue_seconds", "Time a request waited in its model's queue.",
          offsetof(sv_model_stats, queue) },
        { "stratus_request_compute_seconds", "Time of the model run a request was part of.",
          offsetof(sv_model_stats, compute) },
    };
    for (size_t h = 0; h < sizeof hists / sizeof hists[0]; h++) {
        family(out, hists[h].name, "histogram", hists[h].help);
        for (size_t i = 0; i < n_models; i++)
            write_histogram(out, hists[h].name, models[i]->name,
                            (sv_histogram *)((char *)&models[i]->stats + hists[h].offset));
    }
    family(out, "stratus_batch_size", "histogram", "Rows per model run (merged requests).");
    for (size_t i = 0; i < n_models; i++)
        write_batch(out, models[i]->name, &models[i]->stats);

    family(out, "stratus_requests_in_flight", "gauge", "Requests received and not yet answered.");
    st_buf_printf(out, "stratus_requests_in_flight %lld\n", (long long)in_flight);

    family(out, "stratus_models_loaded", "gauge", "Model versions loaded and serving.");
    size_t loaded = 0;
    for (size_t i = 0; i < n_models; i++)
        loaded += models[i]->n_serving;
    st_buf_printf(out, "stratus_models_loaded %zu\n", loaded);

    family(out, "stratus_model_load_failures_total", "counter", "Model versions that failed to load.");
    for (size_t i = 0; i < n_models; i++)
        model_counter(out, "stratus_model_load_failures_total", models[i]->name, &models[i]->stats.load_failures);

    static const struct {
        const char *name, *help;
        size_t offset;
    } shadow[] = {
        { "stratus_shadow_requests_total", "Request copies sent to a deployment's shadow version.",
          offsetof(sv_counters, shadow_requests) },
        { "stratus_shadow_mismatches_total", "Shadow answers that differed from the primary's.",
          offsetof(sv_counters, shadow_mismatches) },
        { "stratus_shadow_errors_total", "Shadow runs that failed.", offsetof(sv_counters, shadow_errors) },
        { "stratus_shadow_dropped_total", "Request copies not sent: the shadow's queue was full.",
          offsetof(sv_counters, shadow_dropped) },
    };
    for (size_t f = 0; f < sizeof shadow / sizeof shadow[0]; f++) {
        family(out, shadow[f].name, "counter", shadow[f].help);
        for (size_t i = 0; i < n_models; i++)
            for (sv_counters *c = models[i]->counters; c; c = c->next) {
                /* Only versions that have been a shadow (any counter moved). */
                if (!load(&c->shadow_requests) && !load(&c->shadow_dropped) && !load(&c->shadow_errors))
                    continue;
                st_buf_printf(out, "%s{model=\"", shadow[f].name);
                label_value(out, models[i]->name);
                st_buf_append_str(out, ST_STR("\",version=\""));
                label_value(out, c->version);
                st_buf_printf(out, "\"} %llu\n",
                              (unsigned long long)load((_Atomic uint64_t *)(void *)((char *)c + shadow[f].offset)));
            }
    }

    family(out, "stratus_rollbacks_total", "counter", "Canaries rolled back automatically.");
    for (size_t i = 0; i < n_models; i++)
        if (models[i]->is_registry)
            model_counter(out, "stratus_rollbacks_total", models[i]->name, &models[i]->stats.rollbacks);

    family(out, "stratus_process_resident_memory_bytes", "gauge", "Resident memory of the server process.");
    st_buf_printf(out, "stratus_process_resident_memory_bytes %llu\n", (unsigned long long)resident_bytes());
}
