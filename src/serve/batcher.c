/* batcher.c - the dynamic batcher of `stratus serve`: one queue per model
 * version, a fixed set of workers, each owning one engine session per
 * version it has run.  A worker takes the oldest ready queue, merges its
 * requests along axis 0 up to max_batch_size rows (waiting at most
 * max_queue_delay_us for more to arrive), runs once and hands each request
 * its rows of the outputs.  Items are owned by the caller and linked
 * intrusively, so queueing allocates nothing. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/time.h"
#include "serve/serve_int.h"

typedef struct sv_worker {
    struct sv_batcher *batcher;
    int index;
    pthread_t thread;
    bool is_started;
    st_buf *gathered;     /* one per input of the merged batch */
    size_t n_gathered;
    eng_tensor *inputs;   /* merged inputs */
    eng_tensor *outputs;  /* what eng_run gave */
    eng_tensor *slices;   /* one request's rows of the outputs */
    size_t n_io;          /* capacity of the three arrays above */
    st_buf scratch;
} sv_worker;

struct sv_batcher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sv_version *ready_head, *ready_tail; /* versions with queued items */
    bool is_stopping;
    int n_workers;
    sv_worker *workers;
};

int sv_batcher_workers(const sv_batcher *b)
{
    return b->n_workers;
}

/* Bytes of one element as the engine stores it. */
static size_t element_bytes(st_dtype dt)
{
    if (dt == ST_DT_STRING)
        return sizeof(st_str);
    if (dt == ENG_DT_SEQUENCE || dt == ENG_DT_MAP || dt == ENG_DT_OPTIONAL)
        return sizeof(eng_tensor);
    return st_dtype_size(dt);
}

static void ready_push(sv_batcher *b, sv_version *v)
{
    if (v->is_in_ready)
        return;
    v->is_in_ready = true;
    v->ready_next = NULL;
    if (b->ready_tail)
        b->ready_tail->ready_next = v;
    else
        b->ready_head = v;
    b->ready_tail = v;
}

static void ready_remove(sv_batcher *b, sv_version *v)
{
    sv_version **pp = &b->ready_head, *prev = NULL;
    while (*pp && *pp != v) {
        prev = *pp;
        pp = &(*pp)->ready_next;
    }
    if (!*pp)
        return;
    *pp = v->ready_next;
    if (b->ready_tail == v)
        b->ready_tail = prev;
    v->ready_next = NULL;
    v->is_in_ready = false;
}

st_status sv_batcher_submit(sv_batcher *b, sv_item *it)
{
    sv_version *v = it->version;
    it->next = NULL;
    it->enqueue_us = st_now_us();
    pthread_mutex_lock(&b->mu);
    if (v->config.max_queue_size > 0 && v->q_len >= (size_t)v->config.max_queue_size) {
        pthread_mutex_unlock(&b->mu);
        return ST_EBUSY;
    }
    if (v->q_tail)
        v->q_tail->next = it;
    else
        v->q_head = it;
    v->q_tail = it;
    v->q_len++;
    ready_push(b, v);
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return ST_OK;
}

/* Can `it` run in one eng_run with `first`: same dtypes, same dims past
 * axis 0, both with rows along axis 0. */
static bool is_mergeable(const sv_item *first, const sv_item *it, size_t n_inputs)
{
    if (it->rows <= 0 || first->rows <= 0)
        return false;
    for (size_t i = 0; i < n_inputs; i++) {
        const eng_tensor *a = &first->inputs[i], *c = &it->inputs[i];
        if (a->dtype != c->dtype || a->rank != c->rank || a->rank == 0 ||
            a->shape[0] != first->rows || c->shape[0] != it->rows)
            return false;
        for (uint32_t d = 1; d < a->rank; d++)
            if (a->shape[d] != c->shape[d])
                return false;
    }
    return true;
}

/* Is version v's queue worth running now?  Sets *wake_us to when it will
 * be, when not. */
static bool is_due(const sv_batcher *b, const sv_version *v, uint64_t now, uint64_t *wake_us)
{
    if (v->running >= v->config.instances)
        return false;
    const sv_item *head = v->q_head;
    if (b->is_stopping || !atomic_load_explicit(&v->is_batchable, memory_order_relaxed) ||
        v->config.max_queue_delay_us <= 0 || head->rows < 0)
        return true;
    int64_t rows = 0;
    for (const sv_item *it = head; it; it = it->next) {
        if (it->rows < 0)
            return true;
        rows += it->rows;
        if (rows >= v->config.max_batch_size)
            return true;
    }
    uint64_t due = head->enqueue_us + (uint64_t)v->config.max_queue_delay_us;
    if (now >= due)
        return true;
    if (due < *wake_us)
        *wake_us = due;
    return false;
}

/* Takes the batch off v's queue (lock held): the head, plus the requests
 * behind it that merge with it, up to max_batch_size rows. */
static sv_item *take_batch(sv_version *v, size_t *n_items, int64_t *total_rows)
{
    sv_item *first = v->q_head, *last = first;
    size_t n = 1;
    int64_t rows = first->rows;
    bool may_merge = atomic_load_explicit(&v->is_batchable, memory_order_relaxed) &&
                     v->config.max_batch_size > 1 && first->rows > 0;
    int64_t limit = v->config.max_batch_size;
    if (may_merge) {
        /* Round the batch down to a power of two rows: a session keeps a
         * plan per input shape in a small cache (8), and batches of every
         * size from 1 to 64 would rebuild plans all the time. */
        int64_t queued = 0;
        for (const sv_item *it = first; it && queued < limit; it = it->next)
            queued += it->rows > 0 ? it->rows : 0;
        if (queued < limit)
            limit = queued;
        int64_t pow2 = 1;
        while (pow2 * 2 <= limit)
            pow2 *= 2;
        limit = pow2;
    }
    while (may_merge && last->next && rows + last->next->rows <= limit &&
           is_mergeable(first, last->next, v->sig.n_inputs)) {
        last = last->next;
        rows += last->rows;
        n++;
    }
    v->q_head = last->next;
    if (!v->q_head)
        v->q_tail = NULL;
    last->next = NULL;
    v->q_len -= n;
    *n_items = n;
    *total_rows = rows;
    return first;
}

static bool worker_reserve(sv_worker *w, size_t n)
{
    if (n <= w->n_io)
        return true;
    size_t cap = n < 8 ? 8 : n;
    eng_tensor *in = st_realloc(w->inputs, cap * sizeof *in);
    if (!in)
        return false;
    w->inputs = in;
    eng_tensor *out = st_realloc(w->outputs, cap * sizeof *out);
    if (!out)
        return false;
    w->outputs = out;
    eng_tensor *sl = st_realloc(w->slices, cap * sizeof *sl);
    if (!sl)
        return false;
    w->slices = sl;
    st_buf *g = st_realloc(w->gathered, cap * sizeof *g);
    if (!g)
        return false;
    for (size_t i = w->n_gathered; i < cap; i++)
        g[i] = (st_buf){ 0 };
    w->gathered = g;
    w->n_gathered = cap;
    w->n_io = cap;
    return true;
}

/* Concatenates the batch's inputs along axis 0 into the worker's buffers. */
static st_status gather(sv_worker *w, const sv_version *v, const sv_item *first, int64_t total_rows,
                        st_error *err)
{
    for (size_t i = 0; i < v->sig.n_inputs; i++) {
        const eng_tensor *t0 = &first->inputs[i];
        size_t es = element_bytes(t0->dtype);
        size_t row_elems = t0->count / (size_t)first->rows;
        size_t bytes;
        if (es == 0 || st_mul_overflow(row_elems, (size_t)total_rows, &bytes) ||
            st_mul_overflow(bytes, es, &bytes))
            return st_fail(err, ST_EOVERFLOW, "input '%s': merged batch too large",
                           v->sig.inputs[i].name);
        st_buf *g = &w->gathered[i];
        st_buf_clear(g);
        if (st_buf_reserve(g, bytes ? bytes : 1) != ST_OK)
            return st_fail(err, ST_ENOMEM, "out of memory merging a batch of %lld rows",
                           (long long)total_rows);
        for (const sv_item *it = first; it; it = it->next)
            st_buf_append(g, it->inputs[i].data, it->inputs[i].count * es);
        w->inputs[i] = *t0;
        w->inputs[i].shape[0] = total_rows;
        w->inputs[i].count = row_elems * (size_t)total_rows;
        w->inputs[i].data = g->data;
    }
    return ST_OK;
}

/* True when every output keeps the batch as axis 0, so rows can be handed
 * back request by request. */
static bool is_splittable(const eng_tensor *outs, size_t n, int64_t total_rows)
{
    for (size_t o = 0; o < n; o++)
        if (outs[o].rank == 0 || outs[o].shape[0] != total_rows || element_bytes(outs[o].dtype) == 0)
            return false;
    return true;
}

static void slice_rows(const eng_tensor *outs, size_t n, int64_t start, int64_t rows,
                       int64_t total_rows, eng_tensor *slices)
{
    for (size_t o = 0; o < n; o++) {
        size_t row_elems = outs[o].count / (size_t)total_rows;
        slices[o] = outs[o];
        slices[o].shape[0] = rows;
        slices[o].count = row_elems * (size_t)rows;
        slices[o].data = (char *)outs[o].data + (size_t)start * row_elems * element_bytes(outs[o].dtype);
    }
}

static void finish(sv_worker *w, sv_item *it, st_status st, const st_error *err,
                   const eng_tensor *outs, size_t n_outs, uint64_t started_us, uint64_t compute_us,
                   int64_t batch_rows)
{
    sv_result res = {
        .status = st,
        .err = err,
        .outputs = outs,
        .n_outputs = n_outs,
        .queue_us = started_us > it->enqueue_us ? started_us - it->enqueue_us : 0,
        .compute_us = compute_us,
        .batch_rows = batch_rows,
        .scratch = &w->scratch,
    };
    it->done(it, &res);
}

/* Runs one item alone (no copy of its inputs). */
static void run_one(sv_worker *w, sv_version *v, eng_session *s, sv_item *it)
{
    st_error err = { 0 };
    size_t n_out = v->sig.n_outputs;
    uint64_t t0 = st_now_us();
    st_status st = eng_run(s, it->inputs, v->sig.n_inputs, w->outputs, n_out, &err);
    uint64_t t1 = st_now_us();
    sv_batch_observe(sv_version_stats(v), it->rows > 0 ? (uint64_t)it->rows : 1);
    finish(w, it, st, &err, w->outputs, n_out, t0, t1 - t0, it->rows);
}

static void run_batch(sv_worker *w, sv_version *v, sv_item *first, size_t n_items, int64_t total_rows)
{
    st_error err = { 0 };
    st_status st = ST_OK;
    eng_session *s = v->sessions[w->index];
    if (!s) {
        st = eng_session_new(v->engine, &v->sessions[w->index], &err);
        s = v->sessions[w->index];
    }
    size_t n_io = v->sig.n_inputs > v->sig.n_outputs ? v->sig.n_inputs : v->sig.n_outputs;
    if (st == ST_OK && !worker_reserve(w, n_io + 1))
        st = st_fail(&err, ST_ENOMEM, "out of memory in a worker");
    if (st != ST_OK) {
        for (sv_item *it = first, *next; it; it = next) {
            next = it->next;
            finish(w, it, st, &err, NULL, 0, st_now_us(), 0, 0);
        }
        return;
    }
    if (n_items == 1) {
        run_one(w, v, s, first);
        return;
    }
    size_t n_out = v->sig.n_outputs;
    uint64_t t0 = st_now_us();
    st = gather(w, v, first, total_rows, &err);
    if (st == ST_OK)
        st = eng_run(s, w->inputs, v->sig.n_inputs, w->outputs, n_out, &err);
    uint64_t t1 = st_now_us();
    if (st == ST_OK && !is_splittable(w->outputs, n_out, total_rows)) {
        ST_LOG_WARN("model %s version %s: an output does not keep the batch as axis 0; "
                    "batching turned off for this version",
                    v->sig.name, v->number_text);
        atomic_store(&v->is_batchable, false);
        st = ST_EUNSUPPORTED;
    }
    if (st != ST_OK) {
        /* One bad request must not fail its neighbours: run each alone. */
        for (sv_item *it = first, *next; it; it = next) {
            next = it->next;
            run_one(w, v, s, it);
        }
        return;
    }
    sv_batch_observe(sv_version_stats(v), (uint64_t)total_rows);
    int64_t start = 0;
    for (sv_item *it = first, *next; it; it = next) {
        next = it->next;
        int64_t rows = it->rows;
        slice_rows(w->outputs, n_out, start, rows, total_rows, w->slices);
        start += rows;
        finish(w, it, ST_OK, NULL, w->slices, n_out, t0, t1 - t0, total_rows);
    }
}

static void abs_deadline(uint64_t wake_us, struct timespec *ts)
{
    ts->tv_sec = (time_t)(wake_us / 1000000u);
    ts->tv_nsec = (long)(wake_us % 1000000u) * 1000;
}

static void *worker_main(void *arg)
{
    sv_worker *w = arg;
    sv_batcher *b = w->batcher;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        uint64_t now = st_now_us(), wake_us = UINT64_MAX;
        sv_version *pick = NULL;
        for (sv_version *v = b->ready_head; v; v = v->ready_next)
            if (is_due(b, v, now, &wake_us)) {
                pick = v;
                break;
            }
        if (!pick) {
            if (b->is_stopping && !b->ready_head)
                break;
            if (wake_us == UINT64_MAX) {
                pthread_cond_wait(&b->cv, &b->mu);
            } else {
                struct timespec ts;
                abs_deadline(wake_us, &ts);
                pthread_cond_timedwait(&b->cv, &b->mu, &ts);
            }
            continue;
        }
        size_t n_items;
        int64_t total_rows;
        sv_item *first = take_batch(pick, &n_items, &total_rows);
        ready_remove(b, pick);
        if (pick->q_head) {
            ready_push(b, pick); /* to the back: other versions get a turn */
            pthread_cond_signal(&b->cv);
        }
        pick->running++;
        sv_version_retain(pick); /* items may release the last reference */
        pthread_mutex_unlock(&b->mu);

        run_batch(w, pick, first, n_items, total_rows);

        pthread_mutex_lock(&b->mu);
        pick->running--;
        if (pick->q_head)
            pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
        sv_version_release(pick);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

st_status sv_batcher_start(int n_workers, sv_batcher **out, st_error *err)
{
    *out = NULL;
    if (n_workers <= 0 || n_workers > 1024)
        return st_fail(err, ST_EINVAL, "workers must be 1..1024, got %d", n_workers);
    sv_batcher *b = st_calloc(1, sizeof *b);
    if (!b)
        return st_fail(err, ST_ENOMEM, "out of memory starting the batcher");
    b->workers = st_calloc((size_t)n_workers, sizeof *b->workers);
    if (!b->workers) {
        st_free(b);
        return st_fail(err, ST_ENOMEM, "out of memory starting the batcher");
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    b->n_workers = n_workers;
    /* Workers leave signals to the thread that waits for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < n_workers; i++) {
        sv_worker *w = &b->workers[i];
        w->batcher = b;
        w->index = i;
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            sv_batcher_free(b);
            return st_fail(err, ST_EAGAIN, "cannot start worker thread %d: %s", i, strerror(rc));
        }
        w->is_started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    *out = b;
    return ST_OK;
}

void sv_batcher_free(sv_batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->is_stopping = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->n_workers; i++) {
        sv_worker *w = &b->workers[i];
        if (w->is_started)
            pthread_join(w->thread, NULL);
        for (size_t j = 0; j < w->n_gathered; j++)
            st_buf_free(&w->gathered[j]);
        st_free(w->gathered);
        st_free(w->inputs);
        st_free(w->outputs);
        st_free(w->slices);
        st_buf_free(&w->scratch);
    }
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    st_free(b->workers);
    st_free(b);
}
