/* traffic.c - the pure parts of a deployment policy in `stratus serve`:
 * the exact canary split and the sticky bucket, the sliding windows the
 * automatic rollback judges, the judgement itself, and the deep copy and
 * comparison of values a shadow version's answers go through.  No
 * manager, no HTTP here, so each piece is unit-tested on its own. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "serve/serve_int.h"

/* ---- split and stickiness ----------------------------------------------- */

bool sv_split_take(sv_split *s, uint32_t share_bp)
{
    if (share_bp == 0)
        return false;
    if (share_bp >= SV_SHARE_ALL)
        return true;
    uint64_t k = atomic_fetch_add_explicit(&s->n, 1, memory_order_relaxed) % SV_SHARE_ALL;
    return (k + 1) * share_bp / SV_SHARE_ALL > k * share_bp / SV_SHARE_ALL;
}

uint32_t sv_sticky_bucket(const uint8_t *value, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= value[i];
        h *= 1099511628211ull;
    }
    return (uint32_t)(h % SV_SHARE_ALL);
}

/* ---- latency buckets ---------------------------------------------------- */

int sv_latency_bucket(uint64_t us)
{
    if (us < 4)
        return (int)us;
    int octave = 63 - __builtin_clzll(us); /* >= 2 */
    int b = 4 * (octave - 1) + (int)((us >> (octave - 2)) & 3);
    return b < SV_LATENCY_BUCKETS ? b : SV_LATENCY_BUCKETS - 1;
}

uint64_t sv_latency_bucket_upper(int b)
{
    if (b < 4)
        return (uint64_t)b;
    int octave = b / 4 + 1, sub = b % 4;
    return ((uint64_t)(4 + sub + 1) << (octave - 2)) - 1;
}

/* ---- windows ------------------------------------------------------------ */

#define EPOCH_EMPTY (-2)
#define EPOCH_RESETTING (-1)

void sv_window_reset(sv_window *w, int64_t window_s)
{
    if (window_s < 1)
        window_s = 1;
    int64_t usable = SV_WINDOW_SLOTS - 2; /* the current slot and one being reused stay out */
    int64_t slot_s = (window_s + usable - 1) / usable;
    atomic_store_explicit(&w->window_s, window_s, memory_order_relaxed);
    atomic_store_explicit(&w->slot_s, slot_s, memory_order_relaxed);
    for (size_t i = 0; i < SV_WINDOW_SLOTS; i++)
        atomic_store_explicit(&w->slots[i].epoch, EPOCH_EMPTY, memory_order_release);
}

static int64_t slot_time(const sv_window *w, uint64_t now_us)
{
    int64_t slot_s = atomic_load_explicit(&w->slot_s, memory_order_relaxed);
    return (int64_t)(now_us / 1000000u) / (slot_s > 0 ? slot_s : 1);
}

void sv_window_record(sv_window *w, uint64_t now_us, bool is_error, uint64_t latency_us)
{
    int64_t t = slot_time(w, now_us);
    sv_window_slot *sl = &w->slots[t % SV_WINDOW_SLOTS];
    int64_t e = atomic_load_explicit(&sl->epoch, memory_order_acquire);
    while (e != t) {
        if (e > t)
            return; /* the slot moved on past this (late) answer */
        if (e == EPOCH_RESETTING) {
            e = atomic_load_explicit(&sl->epoch, memory_order_acquire);
            continue;
        }
        /* An older second: whoever claims the slot empties it. */
        if (atomic_compare_exchange_weak_explicit(&sl->epoch, &e, EPOCH_RESETTING, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            atomic_store_explicit(&sl->requests, 0, memory_order_relaxed);
            atomic_store_explicit(&sl->errors, 0, memory_order_relaxed);
            for (size_t b = 0; b < SV_LATENCY_BUCKETS; b++)
                atomic_store_explicit(&sl->latency[b], 0, memory_order_relaxed);
            atomic_store_explicit(&sl->epoch, t, memory_order_release);
            e = t;
        }
    }
    atomic_fetch_add_explicit(&sl->requests, 1, memory_order_relaxed);
    if (is_error)
        atomic_fetch_add_explicit(&sl->errors, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sl->latency[sv_latency_bucket(latency_us)], 1, memory_order_relaxed);
}

void sv_window_sum_at(sv_window *w, uint64_t now_us, sv_window_sum *out)
{
    memset(out, 0, sizeof *out);
    int64_t t = slot_time(w, now_us);
    int64_t window_s = atomic_load_explicit(&w->window_s, memory_order_relaxed);
    int64_t slot_s = atomic_load_explicit(&w->slot_s, memory_order_relaxed);
    int64_t span = slot_s > 0 ? (window_s + slot_s - 1) / slot_s : 1;
    for (size_t i = 0; i < SV_WINDOW_SLOTS; i++) {
        sv_window_slot *sl = &w->slots[i];
        int64_t e = atomic_load_explicit(&sl->epoch, memory_order_acquire);
        if (e < 0 || e > t || e <= t - span)
            continue;
        out->requests += atomic_load_explicit(&sl->requests, memory_order_relaxed);
        out->errors += atomic_load_explicit(&sl->errors, memory_order_relaxed);
        for (size_t b = 0; b < SV_LATENCY_BUCKETS; b++)
            out->latency[b] += atomic_load_explicit(&sl->latency[b], memory_order_relaxed);
    }
}

uint64_t sv_window_quantile_us(const sv_window_sum *s, double q)
{
    uint64_t total = 0;
    for (size_t b = 0; b < SV_LATENCY_BUCKETS; b++)
        total += s->latency[b];
    if (total == 0)
        return 0;
    /* The smallest bucket holding the ceil(q * total)-th answer. */
    double want = ceil(q * (double)total);
    uint64_t rank = want < 1 ? 1 : (uint64_t)want, seen = 0;
    for (int b = 0; b < SV_LATENCY_BUCKETS; b++) {
        seen += s->latency[b];
        if (seen >= rank)
            return sv_latency_bucket_upper(b);
    }
    return sv_latency_bucket_upper(SV_LATENCY_BUCKETS - 1);
}

/* ---- the rollback judgement --------------------------------------------- */

void sv_rollback_judge(const reg_rollback_rule *rule, const sv_window_sum *stable, const sv_window_sum *canary,
                       sv_verdict *out)
{
    memset(out, 0, sizeof *out);
    out->stable_requests = stable->requests;
    out->canary_requests = canary->requests;
    out->stable_error_rate = stable->requests ? (double)stable->errors / (double)stable->requests : 0.0;
    out->canary_error_rate = canary->requests ? (double)canary->errors / (double)canary->requests : 0.0;
    uint64_t min_requests = rule->min_requests > 0 ? (uint64_t)rule->min_requests : 1;
    if (canary->requests < min_requests)
        return;
    out->is_judged = true;
    double increase = out->canary_error_rate - out->stable_error_rate;
    if (increase > rule->max_error_rate_increase) {
        out->is_rollback = true;
        snprintf(out->reason, sizeof out->reason,
                 "error rate %.4f over %llu requests vs %.4f over %llu on the stable version "
                 "(+%.4f > +%.4f allowed) in the last %lld s",
                 out->canary_error_rate, (unsigned long long)canary->requests, out->stable_error_rate,
                 (unsigned long long)stable->requests, increase, rule->max_error_rate_increase,
                 (long long)rule->window_s);
        return;
    }
    /* Below 100 answers a p99 is just the slowest one: one stall would
     * decide.  Both sides need that many (and min_requests). */
    uint64_t min_p99 = min_requests > SV_P99_MIN_SAMPLES ? min_requests : SV_P99_MIN_SAMPLES;
    if (rule->max_p99_ratio > 0 && stable->requests >= min_p99 && canary->requests >= min_p99) {
        out->stable_p99_us = sv_window_quantile_us(stable, 0.99);
        out->canary_p99_us = sv_window_quantile_us(canary, 0.99);
        if ((double)out->canary_p99_us > rule->max_p99_ratio * (double)out->stable_p99_us) {
            out->is_rollback = true;
            snprintf(out->reason, sizeof out->reason,
                     "p99 latency %.3f ms vs %.3f ms on the stable version (more than %.2fx) "
                     "over %llu and %llu requests in the last %lld s",
                     (double)out->canary_p99_us / 1000.0, (double)out->stable_p99_us / 1000.0,
                     rule->max_p99_ratio, (unsigned long long)canary->requests,
                     (unsigned long long)stable->requests, (long long)rule->window_s);
        }
    }
}

/* ---- values: copy and compare ------------------------------------------- */

static bool is_nested(st_dtype dt)
{
    return dt == ENG_DT_SEQUENCE || dt == ENG_DT_MAP || dt == ENG_DT_OPTIONAL;
}

/* How many eng_tensor a nested value's data holds. */
static size_t nested_count(const eng_tensor *t)
{
    return t->dtype == ENG_DT_MAP ? 2 : t->count;
}

st_status sv_value_copy(st_arena *arena, const eng_tensor *src, eng_tensor *dst)
{
    *dst = *src;
    dst->data = NULL;
    if (is_nested(src->dtype)) {
        size_t n = nested_count(src);
        if (n == 0)
            return ST_OK;
        eng_tensor *items = st_arena_calloc(arena, n, sizeof *items, _Alignof(eng_tensor));
        if (!items)
            return ST_ENOMEM;
        const eng_tensor *from = src->data;
        for (size_t i = 0; i < n; i++) {
            st_status st = sv_value_copy(arena, &from[i], &items[i]);
            if (st != ST_OK)
                return st;
        }
        dst->data = items;
        return ST_OK;
    }
    if (src->dtype == ST_DT_STRING) {
        size_t bytes;
        if (st_mul_overflow(src->count, sizeof(st_str), &bytes))
            return ST_EOVERFLOW;
        st_str *to = st_arena_alloc(arena, bytes ? bytes : 1, _Alignof(st_str));
        if (!to)
            return ST_ENOMEM;
        const st_str *from = src->data;
        for (size_t i = 0; i < src->count; i++) {
            char *p = st_arena_strndup(arena, from[i].ptr ? from[i].ptr : "", from[i].len);
            if (!p)
                return ST_ENOMEM;
            to[i] = st_str_make(p, from[i].len);
        }
        dst->data = to;
        return ST_OK;
    }
    size_t bytes;
    if (st_mul_overflow(src->count, st_dtype_size(src->dtype), &bytes))
        return ST_EOVERFLOW;
    void *to = st_arena_alloc(arena, bytes ? bytes : 1, 16);
    if (!to)
        return ST_ENOMEM;
    if (bytes)
        memcpy(to, src->data, bytes);
    dst->data = to;
    return ST_OK;
}

static bool close_enough(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    if (a == b)
        return true; /* equal infinities */
    return fabs(a - b) <= 1e-5 + 1e-4 * fabs(b);
}

static double float_at(const eng_tensor *t, size_t i)
{
    switch ((int)t->dtype) {
    case ST_DT_FLOAT32:
        return ((const float *)t->data)[i];
    case ST_DT_FLOAT64:
        return ((const double *)t->data)[i];
    default:
        return st_half_to_float(((const unsigned short *)t->data)[i]);
    }
}

bool sv_value_match(const eng_tensor *a, const eng_tensor *b, char *why, size_t cap)
{
    char scratch[8];
    if (!why) {
        why = scratch;
        cap = sizeof scratch;
    }
    if (a->dtype != b->dtype) {
        snprintf(why, cap, "type %s vs %s", st_dtype_name(a->dtype), st_dtype_name(b->dtype));
        return false;
    }
    if (a->rank != b->rank || a->count != b->count) {
        snprintf(why, cap, "rank %u vs %u, %zu vs %zu elements", a->rank, b->rank, a->count, b->count);
        return false;
    }
    for (uint32_t d = 0; d < a->rank && d < ENG_MAX_RANK; d++)
        if (a->shape[d] != b->shape[d]) {
            snprintf(why, cap, "dimension %u is %lld vs %lld", d, (long long)a->shape[d], (long long)b->shape[d]);
            return false;
        }
    if (is_nested(a->dtype)) {
        const eng_tensor *x = a->data, *y = b->data;
        for (size_t i = 0; i < nested_count(a); i++)
            if (!sv_value_match(&x[i], &y[i], why, cap))
                return false;
        return true;
    }
    if (a->dtype == ST_DT_STRING) {
        const st_str *x = a->data, *y = b->data;
        for (size_t i = 0; i < a->count; i++)
            if (!st_str_eq(x[i], y[i])) {
                snprintf(why, cap, "string %zu differs", i);
                return false;
            }
        return true;
    }
    if (a->dtype == ST_DT_FLOAT32 || a->dtype == ST_DT_FLOAT64 || a->dtype == ST_DT_FLOAT16) {
        for (size_t i = 0; i < a->count; i++) {
            double x = float_at(a, i), y = float_at(b, i);
            if (!close_enough(x, y)) {
                snprintf(why, cap, "element %zu is %.9g vs %.9g", i, x, y);
                return false;
            }
        }
        return true;
    }
    size_t es = st_dtype_size(a->dtype);
    for (size_t i = 0; i < a->count; i++)
        if (memcmp((const char *)a->data + i * es, (const char *)b->data + i * es, es) != 0) {
            snprintf(why, cap, "element %zu differs", i);
            return false;
        }
    return true;
}
