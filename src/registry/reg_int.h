/* reg_int.h - registry internals shared by its files (database helpers,
 * the blob store, lineage).  Nothing outside src/registry/ includes it
 * except the registry's unit tests. */
#ifndef ST_REG_INT_H
#define ST_REG_INT_H

#include <sqlite3.h>

#include "base/buf.h"
#include "registry/registry.h"

/* Schema version written by this binary (PRAGMA user_version). */
#define REG_SCHEMA_VERSION 3

struct reg_store {
    sqlite3 *db;
    char home[REG_PATH_MAX];
    char blob_dir[REG_PATH_MAX]; /* home/blobs/sha256 */
    char actor[80];              /* reg_set_actor; "" = the user */
};

/* Opens like reg_open but migrates only up to `schema` (tests use it to
 * build an old database and then upgrade it). */
st_status reg_open_schema(const char *home, reg_open_mode mode, int schema, reg_store **out,
                          st_error *err);

/* ---- database helpers (store.c) ---------------------------------------- */

/* Turns a SQLite result code into a status with a message naming `what`. */
st_status reg_db_fail(reg_store *r, int rc, const char *what, st_error *err);
/* Runs SQL without results. */
st_status reg_db_exec(reg_store *r, const char *sql, st_error *err);
/* Prepares a statement; *out is finalized by the caller. */
st_status reg_db_prepare(reg_store *r, const char *sql, sqlite3_stmt **out, st_error *err);
/* Steps a statement that returns no rows and finalizes it. */
st_status reg_db_run(reg_store *r, sqlite3_stmt *st, const char *what, st_error *err);
/* Runs `sql` (one int64 parameter, `param`) into an array of `size`-byte
 * items in `arena`, `row` storing row i; *n items.  Inside the caller's
 * transaction (query.c). */
typedef bool (*reg_row_fn)(sqlite3_stmt *st, void *items, size_t i, st_arena *arena);
st_status reg_db_collect(reg_store *r, const char *sql, int64_t param, size_t size, reg_row_fn row,
                         st_arena *arena, void **out, size_t *n, st_error *err);
/* BEGIN IMMEDIATE (takes the write lock, waiting up to the busy timeout),
 * BEGIN (a read snapshot), COMMIT, ROLLBACK (never fails the caller). */
st_status reg_tx_write(reg_store *r, st_error *err);
st_status reg_tx_read(reg_store *r, st_error *err);
st_status reg_tx_commit(reg_store *r, st_error *err);
void reg_tx_rollback(reg_store *r);
/* Binds st_str / C string (NULL binds NULL) as text. */
int reg_bind_str(sqlite3_stmt *st, int i, st_str s);
int reg_bind_cstr(sqlite3_stmt *st, int i, const char *s);
/* Column text copied into `arena` ("" for NULL); NULL when out of memory. */
const char *reg_col_dup(sqlite3_stmt *st, int col, st_arena *arena);

/* Appends an audit record inside the caller's transaction and bumps the
 * registry generation: every change goes through here. */
st_status reg_audit(reg_store *r, const char *action, st_str target, const char *before,
                    const char *after, st_error *err);

/* "2026-11-29T23:40:01.123Z" */
void reg_now(char buf[32]);
/* $USER, else the passwd entry, else "uid:N". */
void reg_user(char *buf, size_t cap);
/* Who changes are recorded as: the actor set with reg_set_actor, else
 * reg_user(). */
void reg_actor(const reg_store *r, char *buf, size_t cap);

/* Model id of `name`; ST_ENOTFOUND with a message when absent. */
st_status reg_model_id(reg_store *r, st_str name, int64_t *id, st_error *err);
/* Row id of version `version` of model `model_id`; ST_ENOTFOUND when absent. */
st_status reg_version_id(reg_store *r, int64_t model_id, st_str name, int64_t version,
                         int64_t *id, st_error *err);

/* ---- deployments (deploy.c) ------------------------------------------- */

/* Inside reg_remove_version's transaction, before version `version` of
 * model `model_id` goes: refuses (ST_EINVAL naming the deployment) when
 * its deployment uses it as stable, canary or shadow unless `force`, which
 * clears the canary or shadow or removes the deployment (audited).  A
 * previous_stable naming it is cleared in any case. */
st_status reg_deploy_release_version(reg_store *r, int64_t model_id, st_str name,
                                     int64_t version, bool force, st_error *err);

/* ---- blobs (blob.c) ---------------------------------------------------- */

/* True for 64 lowercase hex digits. */
bool reg_is_hex64(const char *s, size_t len);
/* home/blobs/sha256/<hex> */
void reg_blob_path(const reg_store *r, const char *hex, char *out, size_t cap);
/* Hashes `path` (SHA-256) into hex[65]; *size receives its length.  When
 * `copy_fd` >= 0 the bytes are also written there; `scan` (may be NULL)
 * sees every chunk. */
typedef void (*reg_scan_fn)(void *ctx, const uint8_t *data, size_t len);
st_status reg_hash_file(const char *path, int copy_fd, char hex[65], uint64_t *size,
                        reg_scan_fn scan, void *scan_ctx, reg_progress_fn progress,
                        void *progress_ctx, st_error *err);
/* Stores a copy of `path` as a blob: temp file, fsync, rename, directory
 * fsync.  hex[65] receives its name. */
st_status reg_blob_put(reg_store *r, const char *path, char hex[65], uint64_t *size,
                       reg_progress_fn progress, void *progress_ctx, st_error *err);
/* Recomputes a blob's hash: ST_ENOTFOUND when missing, ST_ECORRUPT when its
 * size (expect_size >= 0) or hash differs. */
st_status reg_blob_verify(reg_store *r, const char *hex, int64_t expect_size,
                          uint64_t *bytes_hashed, st_error *err);
/* Deletes the blob when no version names it; call inside a write
 * transaction so no push can claim it meanwhile.  *removed says whether it
 * did. */
st_status reg_blob_release(reg_store *r, const char *hex, bool *removed, st_error *err);
/* fsyncs a directory (after a rename or unlink in it). */
st_status reg_fsync_dir(const char *dir, st_error *err);

/* ---- lineage (lineage.c) ----------------------------------------------- */

/* `git rev-parse HEAD` in the folder of `path` into out (40 or 64 hex), or
 * "" when it is not in a git work tree or git is missing. */
void reg_source_commit(const char *path, char *out, size_t cap);
/* Hashes a training-data file and summarises its schema as JSON into
 * `schema` (csv/tsv: columns and rows; npy: dtype and shape; else the
 * format only). */
st_status reg_data_summary(const char *path, char hex[65], uint64_t *size, st_buf *schema,
                           reg_progress_fn progress, void *progress_ctx, st_error *err);

#endif
