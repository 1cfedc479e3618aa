/* serve_int.h - the insides of `stratus serve` shared by its files: the
 * model manager (models.c), the batcher (batcher.c), the metrics
 * (metrics.c) and the HTTP router (router.c).  Not a door: the CLI uses
 * serve.h. */
#ifndef ST_SERVE_INT_H
#define ST_SERVE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/status.h"
#include "base/str.h"
#include "engine/engine.h"
#include "http/http.h"
#include "registry/registry.h"
#include "serve/proto.h"

/* ---- metrics ------------------------------------------------------------ */

/* Label values of `protocol`: the four wire protocols, then requests that
 * carry no payload (health, metadata, metrics). */
enum { SV_PROTO_LABEL_NONE = SV_PROTO_VERTEX + 1, SV_N_PROTO_LABELS };
/* The status codes counted one by one; anything else counts as the last. */
#define SV_N_CODES 15
#define SV_DURATION_BUCKETS 16
#define SV_BATCH_BUCKETS 10

/* Request counters of one model version, kept by the model after the
 * version unloads so that counters never go backwards.  Incremented with
 * relaxed atomics: no lock on the hot path. */
typedef struct sv_counters {
    char version[24];
    _Atomic uint64_t requests[SV_N_PROTO_LABELS][SV_N_CODES];
    /* This version as a deployment's shadow: copies sent, answers that
     * differed from the primary's, runs that failed, copies not sent
     * because its queue was full. */
    _Atomic uint64_t shadow_requests, shadow_mismatches, shadow_errors, shadow_dropped;
    struct sv_counters *next;
} sv_counters;

/* A Prometheus histogram: per-bucket (not cumulative) atomic counts. */
typedef struct sv_histogram {
    _Atomic uint64_t buckets[SV_DURATION_BUCKETS + 1]; /* last: +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
} sv_histogram;

typedef struct sv_model_stats {
    sv_histogram duration; /* routing to response, microseconds */
    sv_histogram queue;    /* enqueue to run */
    sv_histogram compute;  /* eng_run of the batch */
    _Atomic uint64_t batch_buckets[SV_BATCH_BUCKETS + 1];
    _Atomic uint64_t batch_count;
    _Atomic uint64_t batch_sum;
    _Atomic uint64_t load_failures;
    _Atomic uint64_t rollbacks;  /* automatic canary rollbacks */
} sv_model_stats;

/* Index of an HTTP status among the counted ones. */
int sv_metrics_code_index(int http_status);
int sv_metrics_code_at(int index);
void sv_histogram_observe_us(sv_histogram *h, uint64_t us);
void sv_batch_observe(sv_model_stats *s, uint64_t rows);

/* ---- traffic (traffic.c): the pure parts of deployment policies --------- */

/* Exact weighted split: the n-th request goes to the canary when
 * floor((k+1)*share/10000) > floor(k*share/10000), k = n mod 10000, so
 * every run of 10,000 consecutive requests sends exactly `share_bp` of
 * them to the canary, spread evenly.  One atomic add per request. */
typedef struct sv_split {
    _Atomic uint64_t n;
} sv_split;

/* Basis points: 10000 = 100 %. */
#define SV_SHARE_ALL 10000u

/* True when this request goes to the canary of share_bp (0..10000). */
bool sv_split_take(sv_split *s, uint32_t share_bp);
/* The sticky bucket of a header value, 0..9999 (FNV-1a 64 mod 10000):
 * the canary takes the value when bucket < share_bp, the same answer
 * every time, so one user stays on one version. */
uint32_t sv_sticky_bucket(const uint8_t *value, size_t len);

/* Latency buckets of the rollback windows: 4 per power of two (about 19 %
 * wide), exact below 4 us, up to ~2^33 us. */
#define SV_LATENCY_BUCKETS 128
int sv_latency_bucket(uint64_t us);
/* The largest latency (us) that falls in bucket b. */
uint64_t sv_latency_bucket_upper(int b);

/* A sliding window of per-slot request, error and latency counts; a slot
 * is one second, or window_s/(SV_WINDOW_SLOTS-2) seconds for windows
 * longer than that.  Recording is lock-free (relaxed atomics; a slot
 * reused for a new second is reset by the one recorder that claims it);
 * sums read without a lock are exact up to racing recordings. */
#define SV_WINDOW_SLOTS 64
typedef struct sv_window_slot {
    _Atomic int64_t epoch; /* slot-time it holds; -1 while being reset */
    _Atomic uint64_t requests, errors;
    _Atomic uint64_t latency[SV_LATENCY_BUCKETS];
} sv_window_slot;

typedef struct sv_window {
    _Atomic int64_t window_s, slot_s;
    sv_window_slot slots[SV_WINDOW_SLOTS];
} sv_window;

typedef struct sv_window_sum {
    uint64_t requests, errors;
    uint64_t latency[SV_LATENCY_BUCKETS];
} sv_window_sum;

/* Empties the window and sets its span (1..86400 s). */
void sv_window_reset(sv_window *w, int64_t window_s);
/* Counts one answer at now_us (monotonic): an error unless 2xx. */
void sv_window_record(sv_window *w, uint64_t now_us, bool is_error, uint64_t latency_us);
/* What was recorded over the last window_s seconds before now_us. */
void sv_window_sum_at(sv_window *w, uint64_t now_us, sv_window_sum *out);
/* The q-quantile (0..1) of the summed latencies as the upper bound of its
 * bucket; 0 when nothing was recorded. */
uint64_t sv_window_quantile_us(const sv_window_sum *s, double q);

/* What the automatic rollback judged. */
typedef struct sv_verdict {
    bool is_judged;    /* the canary had min_requests answers in the window */
    bool is_rollback;
    uint64_t stable_requests, canary_requests;
    double stable_error_rate, canary_error_rate;
    uint64_t stable_p99_us, canary_p99_us; /* 0 when not measured */
    char reason[240];  /* why, with the numbers; "" when no rollback */
} sv_verdict;

/* Judges a canary against the stable version by `rule`: once the canary
 * has min_requests answers, rolls back when its error rate exceeds the
 * stable one's by more than max_error_rate_increase, or (max_p99_ratio >
 * 0, and both versions have max(min_requests, SV_P99_MIN_SAMPLES)
 * answers) when its p99 exceeds max_p99_ratio times the stable p99. */
#define SV_P99_MIN_SAMPLES 100
void sv_rollback_judge(const reg_rollback_rule *rule, const sv_window_sum *stable,
                       const sv_window_sum *canary, sv_verdict *out);

/* Deep copy of a value (tensor, string tensor, sequence, map, optional)
 * into `arena`.  ST_ENOMEM when the arena cannot grow, ST_EOVERFLOW for a
 * size that does not fit. */
st_status sv_value_copy(st_arena *arena, const eng_tensor *src, eng_tensor *dst);
/* True when two values agree: same dtype and shape, floating point within
 * |a-b| <= 1e-5 + 1e-4*|b| (NaN equals NaN), everything else exact.  When
 * not, `why` (may be NULL) says where they first differ. */
bool sv_value_match(const eng_tensor *a, const eng_tensor *b, char *why, size_t cap);

/* ---- models ------------------------------------------------------------- */

typedef enum { SV_POLICY_LATEST, SV_POLICY_SPECIFIC, SV_POLICY_ALL } sv_policy;

#define SV_MAX_SPECIFIC 32
#define SV_MAX_LABELS 32
#define SV_MAX_VERSIONS 64

/* DIR/<name>/config.json, or the defaults. */
typedef struct sv_config {
    sv_policy policy;
    int latest_n;
    int64_t specific[SV_MAX_SPECIFIC];
    size_t n_specific;
    int64_t max_batch_size;     /* rows merged into one run; <= 1: no batching */
    int64_t max_queue_delay_us; /* longest a request waits for others to join */
    int64_t max_queue_size;     /* requests queued per version; 429 beyond */
    int instances;              /* workers running one version at once */
    char label_names[SV_MAX_LABELS][REG_NAME_MAX + 1]; /* registry aliases too */
    int64_t label_versions[SV_MAX_LABELS];
    size_t n_labels;
} sv_config;

typedef struct sv_model sv_model;
typedef struct sv_item sv_item;

/* One loaded model version.  Reference counted: the model's serving list
 * holds one reference, every request routed to it another; the last
 * release frees the engine model and the workers' sessions. */
typedef struct sv_version {
    _Atomic int refs;
    sv_model *model;
    int64_t number;
    char number_text[24];
    eng_model *engine;
    eng_io *inputs, *outputs;
    sv_model_sig sig;
    sv_config config;            /* as it was when this version loaded */
    _Atomic bool is_batchable;   /* cleared when an output cannot be split */
    sv_counters *counters;
    eng_session **sessions;      /* one per worker, made by that worker */
    int n_sessions;
    /* The batcher's queue, under the batcher's lock. */
    sv_item *q_head, *q_tail;
    size_t q_len;
    int running;
    bool is_in_ready;
    struct sv_version *ready_next;
    /* Answers routed here by a deployment policy over its rollback rule's
     * window, or NULL: set once by the loader (release), read by the
     * router (acquire); freed with the version. */
    _Atomic(sv_window *) window;
} sv_version;

/* A request parked until its model finishes loading.  resume() runs on the
 * loader thread, with status ST_OK (route again) or the reason it gave up. */
typedef struct sv_waiter {
    struct sv_waiter *next;
    uint64_t deadline_us;
    void (*resume)(struct sv_waiter *w, st_status status, const char *msg);
} sv_waiter;

typedef struct sv_failed_load {
    int64_t number;
    int64_t mtime_ns, size; /* the file that failed; a new one is tried again */
} sv_failed_load;

/* A registry model's deployment policy, as served (manager lock).
 * stable 0: no deployment. */
typedef struct sv_traffic {
    int64_t stable, canary, shadow; /* version numbers, 0 when unset */
    uint32_t canary_bp;             /* canary share in basis points */
    char sticky_header[REG_NAME_MAX + 1];
    reg_rollback_rule rule;
    int64_t revision;               /* the deployment's revision */
    int64_t rolled_back_revision;   /* the canary of this revision was rolled
                                       back here; until the registry says so
                                       too, it gets no traffic */
} sv_traffic;

/* A model as the repository names it.  Never freed while the manager runs
 * (its counters must outlive its versions); fields under the manager lock
 * except the stats. */
struct sv_model {
    char name[128];
    char dir[2048];             /* DIR/<name> of the repository, or "" */
    char file[2048];            /* the single file of --model, or "" */
    sv_config config;
    bool is_present;            /* still in the repository */
    bool is_attempted;          /* the first load has been tried */
    sv_version *serving[SV_MAX_VERSIONS]; /* ascending by number */
    size_t n_serving;
    int64_t pending[SV_MAX_VERSIONS];     /* wanted, not loaded yet */
    size_t n_pending;
    int64_t loading;            /* the version being loaded, or -1 */
    sv_failed_load failed[SV_MAX_VERSIONS];
    size_t n_failed;
    char last_error[480];
    sv_waiter *waiters;
    sv_counters *counters;      /* every version ever served */
    sv_model_stats stats;
    /* Registry models (config.specific holds the versions to serve,
     * config.label_names the aliases): */
    bool is_registry;
    int64_t default_version;    /* requests naming no version; 0: highest served */
    int64_t effective_default;  /* the last default that was served */
    sv_traffic traffic;
    sv_split split;             /* the canary counter */
    char rollback_reason[256];  /* an automatic rollback the registry has */
    int64_t rollback_canary;    /*   not recorded yet (loader thread only) */
    uint64_t rollback_tried_us;
    _Atomic uint64_t shadow_logged_us; /* last mismatch logged */
};

/* Writes the Prometheus exposition of the models (manager lock held). */
void sv_metrics_write(st_buf *out, sv_model *const *models, size_t n_models,
                      sv_counters *unrouted, int64_t in_flight);

/* Called with an extra reference held by the caller. */
void sv_version_retain(sv_version *v);
/* Drops a reference; the last one frees the version. */
void sv_version_release(sv_version *v);

typedef struct sv_manager sv_manager;

typedef struct sv_manager_options {
    const char *repository;      /* DIR of --models, or NULL */
    const char *registry;        /* a STRATUS_HOME to serve, or NULL */
    const char *const *names;    /* --model NAME=PATH pairs */
    const char *const *paths;
    size_t n_files;
    int n_workers;               /* sessions per version */
    int poll_ms;                 /* repository rescan period */
    int load_wait_ms;            /* how long a request waits for a loading model */
    eng_options engine;
} sv_manager_options;

/* Scans the repository (names and versions are known on return), then
 * loads every model on a background thread. */
st_status sv_manager_start(const sv_manager_options *opt, sv_manager **out, st_error *err);
/* Stops the loader and releases every version (in-flight requests keep
 * theirs until they answer). */
void sv_manager_free(sv_manager *m);

/* Routes a request: the version to run (a reference the caller releases),
 * chosen by number (`version`), label, or the highest served when both are
 * empty.  When the model or that version is still loading and `w` is given,
 * parks w, sets *is_parked and returns ST_EAGAIN.  ST_ENOTFOUND for unknown
 * models or versions, ST_EAGAIN (503) when nothing can serve. */
st_status sv_manager_acquire(sv_manager *m, st_str name, st_str version, st_str label,
                             sv_waiter *w, bool *is_parked, sv_version **out, st_error *err);
/* What sv_manager_route chose. */
typedef struct sv_route {
    sv_version *version;   /* runs the request: a reference to release */
    sv_version *shadow;    /* gets a copy of it: a reference, or NULL */
    bool is_policy;        /* chosen by a deployment policy: its answer
                              counts in version->window */
} sv_route;

/* sv_manager_acquire for an inference request: when no version or label
 * is named and the model has a deployment policy, the policy chooses (the
 * canary's share by the exact split, or by the sticky header of `req`
 * when it carries it) and names its shadow.  A version segment that is
 * not a number is taken as a label (a registry alias). */
st_status sv_manager_route(sv_manager *m, st_str name, st_str version, st_str label,
                           const http_request *req, sv_waiter *w, bool *is_parked, sv_route *out,
                           st_error *err);
/* The only model when exactly one is known (SageMaker, Vertex); else
 * NULL name.  Copies its name into buf. */
bool sv_manager_single_name(sv_manager *m, char *buf, size_t cap);
/* True when every known model has a served version and nothing is
 * loading for the first time. */
bool sv_manager_is_ready(sv_manager *m);
/* Wakes the loader to scan (the repository, or the registry) now rather
 * than at the end of its poll period: the management API calls it after a
 * change so the policy it just wrote is served at once. */
void sv_manager_sync_now(sv_manager *m);
/* Blocks until the first loads are done (tests, `make run` banners). */
void sv_manager_wait_initial(sv_manager *m, int timeout_ms);

/* Prometheus text of every model's series and the process. */
void sv_manager_write_metrics(sv_manager *m, st_buf *out, int64_t in_flight);
/* TF Serving's GET /v1/models/{m}[/versions/{v}] body, or an error. */
st_status sv_manager_tfs_status(sv_manager *m, st_str name, st_str version, st_buf *out,
                                st_error *err);
/* V2 model metadata/readiness.  *is_ready for the model (or version). */
st_status sv_manager_v2_metadata(sv_manager *m, st_str name, st_str version, st_buf *out,
                                 bool *is_ready, st_error *err);
/* The counters and stats of requests that reached no model. */
sv_counters *sv_manager_unrouted(sv_manager *m);
sv_model_stats *sv_version_stats(sv_version *v);

/* ---- management API (admin.c) and API keys (auth.c) ---------------------- */

typedef struct sv_admin sv_admin;

typedef struct sv_admin_options {
    const char *home;        /* the registry's STRATUS_HOME */
    const char *token_file;  /* NULL: <home>/admin.token, made (0600) when absent */
    sv_manager *manager;     /* poked (sv_manager_sync_now) after every change */
} sv_admin_options;

/* Reads (or makes) the admin token and starts the thread that runs the
 * registry calls: they may wait on SQLite's lock, which must never happen
 * on an I/O thread. */
st_status sv_admin_start(const sv_admin_options *opt, sv_admin **out, st_error *err);
/* Answers a request whose path starts with /api/v1 (`rest` is what
 * follows it): 401 without the right bearer token, before anything else.
 * Answers asynchronously (http_respond from the admin thread). */
void sv_admin_handle(sv_admin *a, http_exchange *ex, const http_request *req, st_str rest);
/* Answers what is queued, stops the thread, frees. */
void sv_admin_free(sv_admin *a);
/* stratus_api_requests_total{code} in Prometheus text. */
void sv_admin_write_metrics(sv_admin *a, st_buf *out);

/* The API keys of the inference routes (--api-keys FILE). */
typedef struct sv_keys sv_keys;
/* Reads one key per line (blank lines and #comments skipped); keeps only
 * their SHA-256.  ST_EINVAL for a file with no key or a key shorter than
 * 16 bytes, naming the line. */
st_status sv_keys_load(const char *path, sv_keys **out, st_error *err);
/* True when the request has `Authorization: Bearer KEY` or `X-API-Key:
 * KEY` with a key of the set (compared in constant time). */
bool sv_keys_check(const sv_keys *k, const http_request *req);
void sv_keys_free(sv_keys *k);
/* Shortest key (and admin token) accepted, in bytes. */
#define SV_KEY_MIN_BYTES 16
/* The parser of sv_keys_load over bytes in memory (the fuzzer's door);
 * the set is never reloaded. */
st_status sv_keys_parse(const uint8_t *data, size_t len, sv_keys **out, st_error *err);
/* Rereads the key file now when it changed (inode, size or mtime); a file
 * that no longer parses keeps the old keys, is logged and returned as the
 * error.  sv_keys_check calls it at most once a second. */
st_status sv_keys_reload(sv_keys *k, st_error *err);
/* Keys in the set. */
size_t sv_keys_count(const sv_keys *k);

/* SHA-256 of secrets: only digests are kept and compared, in constant time. */
#define SV_DIGEST_BYTES 32
void sv_digest(const void *data, size_t len, uint8_t out[SV_DIGEST_BYTES]);
bool sv_digest_eq(const uint8_t a[SV_DIGEST_BYTES], const uint8_t b[SV_DIGEST_BYTES]);
/* The token of `Authorization: Bearer TOKEN` (scheme case-insensitive),
 * pointing into the request; false when there is none. */
bool sv_bearer_token(const http_request *req, st_str *token);

/* ---- batcher ------------------------------------------------------------ */

/* What a run gave one request.  outputs point into the worker's session
 * memory: valid only during the done() call. */
typedef struct sv_result {
    st_status status;
    const st_error *err;
    const eng_tensor *outputs;
    size_t n_outputs;
    uint64_t queue_us;
    uint64_t compute_us;
    int64_t batch_rows;
    st_buf *scratch; /* the worker's reusable buffer for encoding */
} sv_result;

/* A request for the batcher, owned by the caller (no allocation here). */
struct sv_item {
    sv_version *version;
    const eng_tensor *inputs; /* version->sig.n_inputs tensors */
    int64_t rows;             /* along axis 0, -1 when it cannot be merged */
    uint64_t enqueue_us;
    void (*done)(sv_item *it, const sv_result *res);
    sv_item *next;
};

typedef struct sv_batcher sv_batcher;

st_status sv_batcher_start(int n_workers, sv_batcher **out, st_error *err);
/* Queues `it` on its version; ST_EBUSY (nothing queued) when the version's
 * queue holds max_queue_size requests already. */
st_status sv_batcher_submit(sv_batcher *b, sv_item *it);
/* Runs what is queued, then stops and joins the workers. */
void sv_batcher_free(sv_batcher *b);
int sv_batcher_workers(const sv_batcher *b);

#endif
