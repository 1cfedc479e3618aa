/* registry.h - the model registry: versions, aliases, metrics, lineage and
 * an audit log in SQLite, artifacts as content-addressed blobs.
 *
 * Everything lives in a Stratus home (STRATUS_HOME, default ./.stratus):
 * registry.db (SQLite, WAL mode) and blobs/sha256/<hex>.  Several processes
 * may use one home at once: every change is one BEGIN IMMEDIATE transaction,
 * and a blob is written (temp file, fsync, rename, directory fsync) before
 * the row that names it commits, so a crash at any instant leaves at worst
 * an orphan blob, never a row naming a missing one.  Blobs are verified
 * (SHA-256 recomputed) whenever they are resolved for use.
 *
 * Worked example:
 *
 *     reg_store *reg;
 *     st_error err = {0};
 *     if (reg_open(NULL, REG_OPEN_CREATE, &reg, &err) != ST_OK)
 *         die(err.msg);
 *     reg_kv metrics[] = { { "auc", "0.91" } };
 *     reg_push_request req = {
 *         .name = "churn", .model_path = "model.onnx", .format = "onnx",
 *         .alias = "staging", .metrics = metrics, .n_metrics = 1,
 *     };
 *     int64_t version;
 *     reg_push(reg, &req, &version, &err);            // 1, then 2, ...
 *     char path[REG_PATH_MAX];
 *     reg_resolve(reg, st_str_c("churn@staging"), path, sizeof path, &err);
 *     // path: ".stratus/blobs/sha256/9f86d0...", its hash just checked
 *     reg_close(reg);
 *
 * A reg_store belongs to one thread at a time.  Errors: ST_EINVAL for a bad
 * name or value, ST_ENOTFOUND for a missing model/version/alias/registry,
 * ST_ECORRUPT for a damaged blob or database, ST_EBUSY when another process
 * held the registry past the busy timeout, ST_EIO, ST_ENOMEM; each with a
 * message that says what to do. */
#ifndef ST_REGISTRY_H
#define ST_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/status.h"
#include "base/str.h"

/* Longest model name, alias, or metric/param/tag key, in bytes. */
#define REG_NAME_MAX 128
/* Longest param or tag value, in bytes. */
#define REG_VALUE_MAX 4096
/* Room for any path the registry hands out. */
#define REG_PATH_MAX 4096
/* Folders in the home named REG_UPLOAD_PREFIX "<pid>-..." hold an upload
 * being pushed (the management API); fsck lists those whose process is
 * gone and --gc removes them. */
#define REG_UPLOAD_PREFIX ".upload-"
/* How long a process waits for another's write transaction (ms). */
#define REG_BUSY_TIMEOUT_MS 30000

typedef struct reg_store reg_store;

typedef enum reg_open_mode {
    REG_OPEN_EXISTING = 0, /* ST_ENOTFOUND when the home has no registry */
    REG_OPEN_CREATE = 1,   /* create the home, blob folders and database */
} reg_open_mode;

/* The home used when none is given: $STRATUS_HOME when set and not empty,
 * else ".stratus" (relative to the working directory). */
const char *reg_home_default(void);

/* Opens (or creates) the registry in `home` (NULL: reg_home_default()),
 * upgrading its schema when it is older than this binary's; a newer schema
 * is ST_EUNSUPPORTED.  On success the caller owns *out (reg_close). */
st_status reg_open(const char *home, reg_open_mode mode, reg_store **out, st_error *err);
/* Closes the database; NULL is fine. */
void reg_close(reg_store *r);
/* The home folder this store was opened in. */
const char *reg_home(const reg_store *r);

/* ---- names and references ---------------------------------------------- */

/* Checks a model name or alias: 1..REG_NAME_MAX bytes, no '/', '\\', '@',
 * "..", control characters or spaces at either end.  Aliases also may not
 * be all digits (they would read as versions) nor "latest".  The message
 * names the thing ("model name" or "alias") and the rule broken. */
st_status reg_check_name(st_str name, bool is_alias, st_error *err);

/* A parsed reference "NAME", "NAME@VERSION", "NAME@ALIAS" or "NAME@latest".
 * Both strings point into the parsed text. */
typedef struct reg_ref {
    st_str name;
    int64_t version; /* > 0 when given by number, else 0 */
    st_str alias;    /* an alias when given, else empty (latest) */
} reg_ref;

/* Parses and checks a reference; ST_EINVAL with a message when malformed. */
st_status reg_parse_ref(st_str text, reg_ref *out, st_error *err);

/* ---- changes ----------------------------------------------------------- */

/* A key and a value (metric, param, tag). */
typedef struct reg_kv {
    const char *key;
    const char *value;
} reg_kv;

/* Called while a big file is hashed or copied (may be NULL). */
typedef void (*reg_progress_fn)(void *ctx, uint64_t done_bytes, uint64_t total_bytes);

typedef struct reg_push_request {
    const char *name;        /* model name (reg_check_name) */
    const char *model_path;  /* the file to store (already checked loadable) */
    const char *format;      /* "onnx", "xgboost", "lightgbm" */
    const char *source_path; /* what lineage names and looks up git in;
                                NULL: model_path (an MLflow folder, say) */
    const char *source_label;/* recorded as the source instead of a path,
                                with no git lookup (an upload: the file
                                pushed is a temporary copy) */
    const char *alias;       /* NULL, or an alias to point at the new version */
    const reg_kv *metrics;   /* values are decimal numbers */
    size_t n_metrics;
    const reg_kv *params;
    size_t n_params;
    const reg_kv *tags;
    size_t n_tags;
    const char *data_path;   /* training data: hash and schema in lineage */
    reg_progress_fn progress;
    void *progress_ctx;
} reg_push_request;

/* Registers a new version of req->name (created on first push): stores the
 * blob, then in one transaction numbers the version (last + 1, never
 * reused), writes its metrics, params, tags, lineage (data hash and schema,
 * source commit from git, user, time), moves the alias, appends the audit
 * log.  *version receives the number.  On failure nothing is registered
 * (the blob may remain as an orphan that `fsck --gc` removes). */
st_status reg_push(reg_store *r, const reg_push_request *req, int64_t *version, st_error *err);

/* Points `alias` of model `name` at `version` (moving it if it pointed
 * elsewhere); ST_ENOTFOUND when the version does not exist. */
st_status reg_set_alias(reg_store *r, st_str name, int64_t version, st_str alias, st_error *err);

/* Removes a version with its metrics, params, tags and lineage.  When an
 * alias or a deployment points to it: ST_EINVAL (naming them) unless
 * `force`, which removes those aliases too, clears the deployment's canary
 * or shadow, and removes a deployment whose stable version it was (each
 * change audited, in the same transaction).  A deployment's
 * previous_stable naming it is cleared either way.  The blob is deleted
 * when no other version uses it.  The model and its numbering stay (a
 * later push does not reuse the number). */
st_status reg_remove_version(reg_store *r, st_str name, int64_t version, bool force,
                             st_error *err);

/* ---- queries ----------------------------------------------------------- */

typedef struct reg_metric {
    const char *key;
    double value;
} reg_metric;

typedef struct reg_alias {
    const char *alias;
    int64_t version;
} reg_alias;

/* Where a version came from. */
typedef struct reg_lineage {
    const char *source_path;   /* the pushed path, absolute */
    const char *source_commit; /* `git rev-parse HEAD` there, or "" */
    const char *user;          /* who pushed */
    const char *created_at;    /* ISO 8601 UTC */
    bool has_data;             /* --data was given: */
    const char *data_path;     /*   absolute path */
    const char *data_sha256;   /*   64 hex digits */
    int64_t data_bytes;
    const char *data_schema;   /*   JSON: {"format":"csv","columns":[..],"rows":N} */
} reg_lineage;

/* One version with everything recorded about it. */
typedef struct reg_version {
    const char *model;
    int64_t version;
    const char *sha256;      /* of the blob */
    int64_t size_bytes;
    const char *format;
    const char *file_name;   /* base name of the pushed file */
    const char *created_at;
    const char *created_by;
    const char **aliases;    /* aliases pointing here, sorted */
    size_t n_aliases;
    reg_metric *metrics;     /* sorted by key */
    size_t n_metrics;
    reg_kv *params;
    size_t n_params;
    reg_kv *tags;
    size_t n_tags;
    reg_lineage lineage;
} reg_version;

/* One model with a summary of its versions. */
typedef struct reg_model {
    const char *name;
    const char *created_at;
    int64_t n_versions;
    int64_t latest_version;  /* 0 when every version was removed */
    reg_alias *aliases;      /* sorted by alias */
    size_t n_aliases;
} reg_model;

/* Every model, sorted by name; memory in `arena`. */
st_status reg_list_models(reg_store *r, st_arena *arena, reg_model **out, size_t *n,
                          st_error *err);
/* Every version of `name`, oldest first; memory in `arena`. */
st_status reg_list_versions(reg_store *r, st_str name, st_arena *arena, reg_version **out,
                            size_t *n, st_error *err);
/* The version a reference names (no alias or version: the latest). */
st_status reg_get(reg_store *r, st_str ref, st_arena *arena, reg_version *out, st_error *err);

/* The blob path of the version `ref` names, after checking that the blob
 * hashes to what was registered (ST_ECORRUPT, naming the reference and
 * suggesting `stratus fsck`, when not). */
st_status reg_resolve(reg_store *r, st_str ref, char *path, size_t cap, st_error *err);

/* One audit record (every change: push, alias, unalias, rm, gc, and the
 * deployment changes). */
typedef struct reg_audit_entry {
    int64_t id;
    const char *at;
    const char *who;
    const char *action;  /* "push", "alias", "unalias", "rm", "gc", "deploy",
                            "promote", "rollback", "undeploy" */
    const char *target;  /* "churn@3" */
    const char *before;  /* JSON or NULL */
    const char *after;   /* JSON or NULL */
} reg_audit_entry;

/* The last `limit` audit records (0: all), oldest first. */
st_status reg_list_audit(reg_store *r, size_t limit, st_arena *arena, reg_audit_entry **out,
                         size_t *n, st_error *err);

/* ---- deployments ------------------------------------------------------- */

/* When a canary is judged worse than the stable version and traffic goes
 * back (`stratus serve` checks this while it serves).  Over the last
 * `window_s` seconds, once the canary has answered `min_requests`:
 * its error rate minus the stable one's above `max_error_rate_increase`,
 * or its p99 latency above `max_p99_ratio` times the stable one's (0: not
 * checked), rolls it back. */
typedef struct reg_rollback_rule {
    double max_error_rate_increase; /* 0..1; default 0.05 */
    double max_p99_ratio;           /* >= 1, or 0 = off; default 2 */
    int64_t window_s;               /* 1..86400; default 60 */
    int64_t min_requests;           /* >= 1; default 20 */
} reg_rollback_rule;

/* The defaults above. */
reg_rollback_rule reg_rollback_rule_default(void);

/* In a `want` given to reg_deploy_set, max_p99_ratio = REG_P99_OFF turns
 * the latency check off (0 there means "the default"); the stored policy
 * then reads 0. */
#define REG_P99_OFF (-1.0)
/* Longest sticky header name, in bytes. */
#define REG_HEADER_MAX 64
/* Upper limits of the rollback rule. */
#define REG_P99_RATIO_MAX 1000.0
#define REG_WINDOW_MAX_S 86400
#define REG_MIN_REQUESTS_MAX 1000000000

/* A model's traffic policy.  Version numbers are 0 when unset. */
typedef struct reg_deployment {
    const char *model;
    int64_t stable;            /* takes the traffic the canary does not */
    int64_t canary;            /* 0: none */
    double canary_percent;     /* 0..100 of requests to the canary */
    int64_t shadow;            /* gets a copy of every request; never answers */
    const char *sticky_header; /* "" or a header whose value pins the choice */
    reg_rollback_rule rule;
    int64_t previous_stable;   /* what `rollback` without a canary returns to */
    const char *state;         /* "stable", "canary", "rolled_back" */
    const char *reason;        /* why the last rollback happened, or "" */
    const char *updated_at;
    const char *updated_by;
    int64_t revision;          /* 1, 2, ...: bumps on every change */
} reg_deployment;

/* Sets (creates or replaces) the policy of `name` from `want` (its
 * stable, canary, canary_percent, shadow, sticky_header and rule; the
 * other fields are ignored).  Every version named must exist; the canary
 * and shadow must differ from the stable version; percent 0..100, and a
 * canary needs a percent > 0; the sticky header must be a valid header
 * name.  The old stable version becomes previous_stable when it changes.
 * Audit action "deploy" with before/after as JSON.  `out` (may be NULL)
 * receives the new policy, memory in `arena`.
 *
 * Precisely: stable > 0 is required; canary_percent is in (0, 100] with a
 * canary and 0 without one; sticky_header (NULL or "": none) is an HTTP
 * token (RFC 9110 tchar) of 1..REG_HEADER_MAX bytes.  A rule field that is
 * 0 in `want` takes its default (reg_rollback_rule_default()); others must
 * be in range: max_error_rate_increase (0, 1], max_p99_ratio [1, 1000] or
 * REG_P99_OFF, window_s 1..86400, min_requests 1..1e9.  ST_EINVAL names
 * the field; ST_ENOTFOUND names the missing "model@version".  state
 * becomes "canary" with a canary, else "stable"; reason is cleared. */
st_status reg_deploy_set(reg_store *r, st_str name, const reg_deployment *want,
                         st_arena *arena, reg_deployment *out, st_error *err);
/* The policy of `name`; ST_ENOTFOUND when the model has none. */
st_status reg_deploy_get(reg_store *r, st_str name, st_arena *arena, reg_deployment *out,
                         st_error *err);
/* Every policy, sorted by model name. */
st_status reg_deploy_list(reg_store *r, st_arena *arena, reg_deployment **out, size_t *n,
                          st_error *err);
/* Promotion: the canary becomes the stable version with all traffic
 * (previous_stable keeps the old one).  ST_EINVAL when there is no canary.
 * Audit action "promote". */
st_status reg_deploy_promote(reg_store *r, st_str name, st_arena *arena, reg_deployment *out,
                             st_error *err);
/* Rollback: with a canary, traffic returns to the stable version (canary
 * cleared, state "rolled_back", `reason` kept); without one, the stable
 * version goes back to previous_stable.  When `only_canary` > 0 this is
 * the automatic kind: it changes nothing (and returns ST_OK) unless that
 * version is still the canary, so two servers judging the same canary
 * roll it back once.  Audit action "rollback" (reason in "after").
 *
 * After a rollback to previous_stable, previous_stable is 0: a second
 * rollback is ST_EINVAL ("nothing to roll back"), not a roll forward.
 * `reason` may be NULL; at most REG_VALUE_MAX bytes, no control
 * characters (ST_EINVAL).  In the automatic no-op case `out` receives the
 * current policy, or revision 0 when the model has none any more. */
st_status reg_deploy_rollback(reg_store *r, st_str name, int64_t only_canary, const char *reason,
                              st_arena *arena, reg_deployment *out, st_error *err);
/* Removes the policy; ST_ENOTFOUND when there is none.  Audit "undeploy". */
st_status reg_deploy_remove(reg_store *r, st_str name, st_error *err);

/* Removes an alias; ST_ENOTFOUND when it does not exist.  Audit "unalias". */
st_status reg_remove_alias(reg_store *r, st_str name, st_str alias, st_error *err);

/* A number that changes whenever anything in the registry changes, in
 * this process or another (servers poll it to follow changes live). */
st_status reg_generation(reg_store *r, int64_t *out, st_error *err);

/* Who the audit log names for this store's changes from now on (default:
 * the user running the process); e.g. "api:admin" or "stratus serve". */
void reg_set_actor(reg_store *r, const char *who);

/* ---- JSON (json.c) ----------------------------------------------------- */

struct json_writer;

/* A policy as one JSON object: model, stable, canary, canary_percent,
 * shadow, sticky_header, rollback_rule {max_error_rate_increase,
 * max_p99_ratio, window_s, min_requests}, previous_stable, state, reason,
 * updated_at, updated_by, revision.  Unset versions (0) and empty strings
 * are null.  Appended to `out`; ST_ENOMEM when it could not grow. */
st_status reg_json_deployment(st_buf *out, const reg_deployment *d);
/* The same as one value of a document being written. */
void reg_json_write_deployment(struct json_writer *w, const reg_deployment *d);
/* An alias: {"model", "alias", "version"} (the audit log of an alias
 * change, PUT /api/v1/models/{m}/aliases/{a}). */
st_status reg_json_alias(st_buf *out, st_str name, st_str alias, int64_t version);
/* An audit record: id, at, who, action, target, before, after (the last
 * two as JSON values, or null). */
st_status reg_json_audit(st_buf *out, const reg_audit_entry *e);
void reg_json_write_audit(struct json_writer *w, const reg_audit_entry *e);

/* A model summary: {"name", "versions" (count), "latest", "created_at",
 * "aliases": {alias: version}}. */
void reg_json_write_model(struct json_writer *w, const reg_model *m);
/* {"models": [summary, ...]}, appended to `out` (`stratus models --json`,
 * GET /api/v1/models); ST_ENOMEM when it could not grow. */
st_status reg_json_models(st_buf *out, const reg_model *models, size_t n);
/* A version with everything recorded: name, version, sha256, size_bytes,
 * format, file_name, created_at, created_by, aliases [..], metrics {..},
 * params {..}, tags {..}, lineage {source_path, source_commit (or null),
 * user, created_at, data (null or {path, sha256, size_bytes, schema})}. */
void reg_json_write_version(struct json_writer *w, const reg_version *v);
/* The same as a whole document appended to `out` (`stratus show --json`). */
st_status reg_json_version(st_buf *out, const reg_version *v);
/* {"name": name, "versions": [version, ...]} (`stratus models NAME
 * --json`, GET /api/v1/models/{name}). */
st_status reg_json_model_versions(st_buf *out, st_str name, const reg_version *versions, size_t n);
/* {"deployments": [policy, ...]} (`stratus deployments --json`, GET
 * /api/v1/deployments). */
st_status reg_json_deployments(st_buf *out, const reg_deployment *list, size_t n);
/* {"audit": [record, ...]} (`stratus audit --json`, GET /api/v1/audit). */
st_status reg_json_audit_log(st_buf *out, const reg_audit_entry *entries, size_t n);

/* ---- consistency ------------------------------------------------------- */

typedef enum reg_fsck_kind {
    REG_FSCK_DATABASE,     /* SQLite integrity or foreign-key check failed */
    REG_FSCK_MISSING_BLOB, /* a version names a blob that is not there */
    REG_FSCK_BAD_BLOB,     /* a blob's content or size is not what was registered */
    REG_FSCK_DANGLING,     /* an alias or row points at nothing valid */
    REG_FSCK_ORPHAN_BLOB,  /* a blob no version names (crash between write and commit) */
    REG_FSCK_TEMP_FILE,    /* a temporary file of an interrupted (or running) push */
    REG_FSCK_STRAY_FILE,   /* something else in the blob folder */
} reg_fsck_kind;

typedef struct reg_fsck_issue {
    reg_fsck_kind kind;
    bool is_damage;        /* orphans, temp and stray files are not damage */
    bool was_removed;      /* gc removed it */
    const char *path;      /* file concerned, or "" */
    const char *message;
} reg_fsck_issue;

typedef void (*reg_fsck_fn)(void *ctx, const reg_fsck_issue *issue);

typedef struct reg_fsck_report {
    size_t versions;       /* versions checked */
    size_t blobs_verified; /* distinct blobs hashed */
    uint64_t bytes_hashed;
    size_t damaged;        /* issues that are damage */
    size_t other;          /* orphans, temp and stray files */
    size_t removed;        /* by gc */
} reg_fsck_report;

/* Checks the database (integrity, foreign keys), every blob's hash and
 * size, every alias; lists files no version names.  With `gc`, orphan
 * blobs and temp files of processes that are gone are removed (under the
 * write lock, so a concurrent push is never robbed).  Each finding goes to
 * `on_issue` (may be NULL).  Returns ST_OK when the check ran (damage is
 * counted in report->damaged), else the error that stopped it. */
st_status reg_fsck(reg_store *r, bool gc, reg_fsck_fn on_issue, void *ctx,
                   reg_fsck_report *report, st_error *err);

/* Name for a kind, "missing_blob", for --json. */
const char *reg_fsck_kind_name(reg_fsck_kind kind);

/* ---- MLflow model folders ---------------------------------------------- */

/* What Stratus needs from an MLflow MLmodel file. */
typedef struct reg_mlmodel {
    char flavor[16];      /* "onnx", "xgboost" or "lightgbm" */
    char data[1024];      /* the model file, relative to the folder */
    char run_id[128];     /* "" when absent */
} reg_mlmodel;

/* Parses the YAML subset MLflow writes in MLmodel (block mappings,
 * scalars, quoted scalars, comments; flow and list values skipped) and
 * picks the first servable flavour (onnx, then xgboost, then lightgbm)
 * with its `data` file.  The path is checked: relative, no "..", no
 * control characters.  ST_ECORRUPT when malformed, ST_EUNSUPPORTED when no
 * flavour is servable (the message lists the ones present).  Never
 * allocates; the input is (ptr, len), not NUL-terminated. */
st_status reg_mlmodel_parse(const uint8_t *data, size_t len, reg_mlmodel *out, st_error *err);

#endif
