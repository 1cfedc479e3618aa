/* store.c - opening a Stratus home: folders, the SQLite connection and its
 * settings (WAL, busy timeout, foreign keys), versioned schema migrations,
 * and the small database helpers the other registry files share. */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "registry/reg_int.h"

/* ---- SQLite memory through st_malloc -----------------------------------
 * So that tests' st_alloc_fail_after reaches SQLite too: its allocations
 * carry a 16-byte header with their size (xSize needs it). */

#define SQ_HEADER 16

static void *sq_malloc(int n)
{
    if (n <= 0)
        return NULL;
    uint8_t *p = st_malloc((size_t)n + SQ_HEADER);
    if (!p)
        return NULL;
    memcpy(p, &(size_t){ (size_t)n }, sizeof(size_t));
    return p + SQ_HEADER;
}

static void sq_free(void *p)
{
    if (p)
        st_free((uint8_t *)p - SQ_HEADER);
}

static void *sq_realloc(void *p, int n)
{
    if (!p)
        return sq_malloc(n);
    if (n <= 0)
        return NULL;
    uint8_t *q = st_realloc((uint8_t *)p - SQ_HEADER, (size_t)n + SQ_HEADER);
    if (!q)
        return NULL;
    memcpy(q, &(size_t){ (size_t)n }, sizeof(size_t));
    return q + SQ_HEADER;
}

static int sq_size(void *p)
{
    if (!p)
        return 0;
    size_t n;
    memcpy(&n, (uint8_t *)p - SQ_HEADER, sizeof n);
    return (int)n;
}

static int sq_roundup(int n) { return (n + 7) & ~7; }
static int sq_init(void *ctx) { (void)ctx; return SQLITE_OK; }
static void sq_shutdown(void *ctx) { (void)ctx; }

static pthread_once_t sq_once = PTHREAD_ONCE_INIT;

static void sq_setup(void)
{
    static const sqlite3_mem_methods methods = {
        sq_malloc, sq_free, sq_realloc, sq_size, sq_roundup, sq_init, sq_shutdown, NULL,
    };
    /* Fails harmlessly when something initialised SQLite first. */
    sqlite3_config(SQLITE_CONFIG_MALLOC, &methods);
    sqlite3_initialize();
}

/* ---- helpers -------------------------------------------------------------- */

st_status reg_db_fail(reg_store *r, int rc, const char *what, st_error *err)
{
    const char *detail = r && r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return st_fail(err, ST_EBUSY,
                       "%s: the registry stayed locked by another stratus process for %d s; "
                       "try again when it is done",
                       what, REG_BUSY_TIMEOUT_MS / 1000);
    case SQLITE_NOMEM:
        return st_fail(err, ST_ENOMEM, "%s: out of memory", what);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return st_fail(err, ST_ECORRUPT,
                       "%s: the registry database is damaged (%s); restore registry.db from a "
                       "backup",
                       what, detail);
    case SQLITE_CONSTRAINT:
        return st_fail(err, ST_EINVAL, "%s: %s", what, detail);
    case SQLITE_FULL:
        return st_fail(err, ST_EIO, "%s: the disk is full", what);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
        return st_fail(err, ST_EIO, "%s: cannot write the registry (%s); check the permissions",
                       what, detail);
    default:
        return st_fail(err, ST_EIO, "%s: %s", what, detail);
    }
}

st_status reg_db_exec(reg_store *r, const char *sql, st_error *err)
{
    int rc = sqlite3_exec(r->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? ST_OK : reg_db_fail(r, rc, "registry", err);
}

st_status reg_db_prepare(reg_store *r, const char *sql, sqlite3_stmt **out, st_error *err)
{
    *out = NULL;
    int rc = sqlite3_prepare_v2(r->db, sql, -1, out, NULL);
    return rc == SQLITE_OK ? ST_OK : reg_db_fail(r, rc, "registry", err);
}

st_status reg_db_run(reg_store *r, sqlite3_stmt *st, const char *what, st_error *err)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? ST_OK : reg_db_fail(r, rc, what, err);
}

st_status reg_tx_write(reg_store *r, st_error *err) { return reg_db_exec(r, "BEGIN IMMEDIATE", err); }
st_status reg_tx_read(reg_store *r, st_error *err) { return reg_db_exec(r, "BEGIN", err); }

st_status reg_tx_commit(reg_store *r, st_error *err)
{
    st_status s = reg_db_exec(r, "COMMIT", err);
    if (s != ST_OK)
        reg_tx_rollback(r);
    return s;
}

void reg_tx_rollback(reg_store *r)
{
    if (!sqlite3_get_autocommit(r->db))
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
}

int reg_bind_str(sqlite3_stmt *st, int i, st_str s)
{
    if (!s.ptr)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, s.len ? s.ptr : "", (int)s.len, SQLITE_TRANSIENT);
}

int reg_bind_cstr(sqlite3_stmt *st, int i, const char *s)
{
    return s ? reg_bind_str(st, i, st_str_c(s)) : sqlite3_bind_null(st, i);
}

const char *reg_col_dup(sqlite3_stmt *st, int col, st_arena *arena)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    return st_arena_strndup(arena, text ? (const char *)text : "", text ? len : 0);
}

void reg_now(char buf[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static bool is_printable_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

void reg_user(char *buf, size_t cap)
{
    const char *env = getenv("USER");
    if (is_printable_name(env)) {
        snprintf(buf, cap, "%s", env);
        return;
    }
    struct passwd pw, *found = NULL;
    char scratch[1024];
    if (getpwuid_r(getuid(), &pw, scratch, sizeof scratch, &found) == 0 && found &&
        is_printable_name(found->pw_name)) {
        snprintf(buf, cap, "%s", found->pw_name);
        return;
    }
    snprintf(buf, cap, "uid:%ld", (long)getuid());
}

void reg_actor(const reg_store *r, char *buf, size_t cap)
{
    if (r->actor[0])
        snprintf(buf, cap, "%s", r->actor);
    else
        reg_user(buf, cap);
}

void reg_set_actor(reg_store *r, const char *who)
{
    /* The audit log is read by people: keep it to one printable line. */
    size_t n = 0;
    for (const char *p = who ? who : ""; *p && n + 1 < sizeof r->actor; p++)
        r->actor[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
    r->actor[n] = '\0';
}

st_status reg_generation(reg_store *r, int64_t *out, st_error *err)
{
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r, "SELECT value FROM meta WHERE key = 'generation'", &st, err);
    if (s != ST_OK)
        return s;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        rc = SQLITE_CORRUPT; /* migration 3 inserts the row; it is never deleted */
    return rc == SQLITE_ROW ? ST_OK : reg_db_fail(r, rc, "reading the registry generation", err);
}

st_status reg_audit(reg_store *r, const char *action, st_str target, const char *before,
                    const char *after, st_error *err)
{
    char now[32], who[80];
    reg_now(now);
    reg_actor(r, who, sizeof who);
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r,
                                 "INSERT INTO audit(at, who, action, target, before, after) "
                                 "VALUES (?, ?, ?, ?, ?, ?)",
                                 &st, err);
    if (s != ST_OK)
        return s;
    reg_bind_cstr(st, 1, now);
    reg_bind_cstr(st, 2, who);
    reg_bind_cstr(st, 3, action);
    reg_bind_str(st, 4, target);
    reg_bind_cstr(st, 5, before);
    reg_bind_cstr(st, 6, after);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return reg_db_fail(r, rc, "audit log", err);
    /* Servers poll this number to notice changes made by any process. */
    return reg_db_exec(r, "UPDATE meta SET value = value + 1 WHERE key = 'generation'", err);
}

st_status reg_model_id(reg_store *r, st_str name, int64_t *id, st_error *err)
{
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r, "SELECT id FROM models WHERE name = ?", &st, err);
    if (s != ST_OK)
        return s;
    reg_bind_str(st, 1, name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return st_fail(err, ST_ENOTFOUND,
                       "no model named '%.*s' in the registry; 'stratus models' lists them",
                       ST_STR_FMT(name));
    return rc == SQLITE_ROW ? ST_OK : reg_db_fail(r, rc, "registry", err);
}

st_status reg_version_id(reg_store *r, int64_t model_id, st_str name, int64_t version,
                         int64_t *id, st_error *err)
{
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r, "SELECT id FROM versions WHERE model_id = ? AND version = ?",
                                 &st, err);
    if (s != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_int64(st, 2, version);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return st_fail(err, ST_ENOTFOUND,
                       "model '%.*s' has no version %lld; 'stratus models %.*s' lists its versions",
                       ST_STR_FMT(name), (long long)version, ST_STR_FMT(name));
    return rc == SQLITE_ROW ? ST_OK : reg_db_fail(r, rc, "registry", err);
}

/* ---- migrations -------------------------------------------------------------
 * One function per step; step N takes the schema from N-1 to N.  Steps run
 * in one write transaction together with the user_version update, so a
 * crash mid-upgrade leaves the old schema.  Never edit a released step:
 * add a new one. */

/* 1: models, versions, aliases and the key/value tables. */
static st_status migrate_1(reg_store *r, st_error *err)
{
    return reg_db_exec(r,
        "CREATE TABLE models ("
        "  id INTEGER PRIMARY KEY,"
        "  name TEXT NOT NULL UNIQUE,"
        "  last_version INTEGER NOT NULL DEFAULT 0," /* numbering never reuses */
        "  created_at TEXT NOT NULL);"
        "CREATE TABLE versions ("
        "  id INTEGER PRIMARY KEY,"
        "  model_id INTEGER NOT NULL REFERENCES models(id),"
        "  version INTEGER NOT NULL,"
        "  blob TEXT NOT NULL,"
        "  size_bytes INTEGER NOT NULL,"
        "  format TEXT NOT NULL,"
        "  file_name TEXT NOT NULL,"
        "  created_at TEXT NOT NULL,"
        "  created_by TEXT NOT NULL,"
        "  UNIQUE (model_id, version));"
        "CREATE INDEX versions_blob ON versions(blob);"
        "CREATE TABLE aliases ("
        "  model_id INTEGER NOT NULL REFERENCES models(id),"
        "  alias TEXT NOT NULL,"
        "  version_id INTEGER NOT NULL REFERENCES versions(id),"
        "  PRIMARY KEY (model_id, alias));"
        "CREATE TABLE metrics ("
        "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
        "  key TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (version_id, key));"
        "CREATE TABLE params ("
        "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
        "  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (version_id, key));"
        "CREATE TABLE tags ("
        "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
        "  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (version_id, key));",
        err);
}

/* 2: lineage per version and the audit log. */
static st_status migrate_2(reg_store *r, st_error *err)
{
    return reg_db_exec(r,
        "CREATE TABLE lineage ("
        "  version_id INTEGER PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,"
        "  source_path TEXT NOT NULL,"
        "  source_commit TEXT NOT NULL,"
        "  user TEXT NOT NULL,"
        "  created_at TEXT NOT NULL,"
        "  data_path TEXT, data_sha256 TEXT, data_bytes INTEGER, data_schema TEXT);"
        "CREATE TABLE audit ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  at TEXT NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,"
        "  target TEXT NOT NULL, before TEXT, after TEXT);",
        err);
}

/* 3: deployments (one traffic policy per model; versions by number, as
 * users name them) and `meta`, whose generation counter every change
 * bumps. */
static st_status migrate_3(reg_store *r, st_error *err)
{
    return reg_db_exec(r,
        "CREATE TABLE deployments ("
        "  id INTEGER PRIMARY KEY,"
        "  model_id INTEGER NOT NULL UNIQUE REFERENCES models(id),"
        "  stable INTEGER NOT NULL,"
        "  canary INTEGER NOT NULL DEFAULT 0,"
        "  canary_percent REAL NOT NULL DEFAULT 0,"
        "  shadow INTEGER NOT NULL DEFAULT 0,"
        "  sticky_header TEXT NOT NULL DEFAULT '',"
        "  max_error_rate_increase REAL NOT NULL,"
        "  max_p99_ratio REAL NOT NULL,"
        "  window_s INTEGER NOT NULL,"
        "  min_requests INTEGER NOT NULL,"
        "  previous_stable INTEGER NOT NULL DEFAULT 0,"
        "  state TEXT NOT NULL,"
        "  reason TEXT NOT NULL DEFAULT '',"
        "  updated_at TEXT NOT NULL,"
        "  updated_by TEXT NOT NULL,"
        "  revision INTEGER NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta(key, value) VALUES ('generation', 1);",
        err);
}

typedef st_status (*migration_fn)(reg_store *r, st_error *err);
static const migration_fn migrations[REG_SCHEMA_VERSION] = { migrate_1, migrate_2, migrate_3 };

static st_status schema_version(reg_store *r, int *out, st_error *err)
{
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r, "PRAGMA user_version", &st, err);
    if (s != ST_OK)
        return s;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? ST_OK : reg_db_fail(r, rc, "reading the schema version", err);
}

static st_status migrate(reg_store *r, int target, st_error *err)
{
    int current = 0;
    st_status s = schema_version(r, &current, err);
    if (s != ST_OK || current == target)
        return s;
    if ((s = reg_tx_write(r, err)) != ST_OK)
        return s;
    /* Another process may have upgraded while we waited for the lock. */
    if ((s = schema_version(r, &current, err)) != ST_OK)
        goto fail;
    if (current > REG_SCHEMA_VERSION) {
        s = st_fail(err, ST_EUNSUPPORTED,
                    "%s/registry.db has schema version %d, newer than this stratus knows (%d); "
                    "use a newer stratus",
                    r->home, current, REG_SCHEMA_VERSION);
        goto fail;
    }
    for (int step = current + 1; step <= target; step++) {
        if ((s = migrations[step - 1](r, err)) != ST_OK) {
            st_fail_wrap(err, s, "upgrading the registry schema to version %d", step);
            goto fail;
        }
    }
    if (target > current) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", target);
        if ((s = reg_db_exec(r, sql, err)) != ST_OK)
            goto fail;
    }
    return reg_tx_commit(r, err);
fail:
    reg_tx_rollback(r);
    return s;
}

/* ---- open ----------------------------------------------------------------- */

const char *reg_home_default(void)
{
    const char *env = getenv("STRATUS_HOME");
    return env && *env ? env : ".stratus";
}

static st_status make_dir(const char *path, st_error *err)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            return ST_OK;
        return st_fail(err, ST_EIO, "%s exists and is not a folder", path);
    }
    return st_fail(err, ST_EIO, "cannot create %s: %s", path, strerror(errno));
}

static st_status make_dirs(reg_store *r, st_error *err)
{
    char blobs[REG_PATH_MAX + 8];
    snprintf(blobs, sizeof blobs, "%s/blobs", r->home);
    st_status s;
    if ((s = make_dir(r->home, err)) != ST_OK || (s = make_dir(blobs, err)) != ST_OK ||
        (s = make_dir(r->blob_dir, err)) != ST_OK)
        return s;
    /* The folders must survive a crash before any blob is renamed into them. */
    if ((s = reg_fsync_dir(blobs, err)) != ST_OK || (s = reg_fsync_dir(r->home, err)) != ST_OK)
        return s;
    return ST_OK;
}

/* journal_mode=WAL needs a moment without readers the first time; other
 * processes may be opening the same new home. */
static st_status set_wal(reg_store *r, st_error *err)
{
    for (int attempt = 0;; attempt++) {
        sqlite3_stmt *st;
        st_status s = reg_db_prepare(r, "PRAGMA journal_mode = WAL", &st, err);
        if (s != ST_OK)
            return s;
        int rc = sqlite3_step(st);
        const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        bool is_wal = mode && strcmp(mode, "wal") == 0;
        sqlite3_finalize(st);
        if (is_wal)
            return ST_OK;
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || attempt == 300)
            return rc == SQLITE_ROW ? st_fail(err, ST_EIO, "%s: cannot switch the registry to WAL mode", r->home)
                                    : reg_db_fail(r, rc, "opening the registry", err);
        usleep(10000);
    }
}

st_status reg_open_schema(const char *home, reg_open_mode mode, int schema, reg_store **out,
                          st_error *err)
{
    *out = NULL;
    pthread_once(&sq_once, sq_setup);
    if (!home)
        home = reg_home_default();
    if (strlen(home) + 80 > REG_PATH_MAX)
        return st_fail(err, ST_EINVAL, "STRATUS_HOME path is too long");
    reg_store *r = st_calloc(1, sizeof *r);
    if (!r)
        return st_fail(err, ST_ENOMEM, "out of memory opening the registry");
    snprintf(r->home, sizeof r->home, "%s", home);
    snprintf(r->blob_dir, sizeof r->blob_dir, "%s/blobs/sha256", home);
    char db_path[REG_PATH_MAX + 16];
    snprintf(db_path, sizeof db_path, "%s/registry.db", home);
    st_status s = ST_OK;
    int flags = SQLITE_OPEN_READWRITE;
    if (mode == REG_OPEN_CREATE) {
        if ((s = make_dirs(r, err)) != ST_OK)
            goto fail;
        flags |= SQLITE_OPEN_CREATE;
    } else if (access(db_path, F_OK) != 0) {
        s = st_fail(err, ST_ENOTFOUND,
                    "no registry in %s (set STRATUS_HOME, or push a model first with "
                    "'stratus push MODEL --name NAME')",
                    home);
        goto fail;
    }
    int rc = sqlite3_open_v2(db_path, &r->db, flags, NULL);
    if (rc != SQLITE_OK) {
        s = reg_db_fail(r, rc, db_path, err);
        goto fail;
    }
    sqlite3_busy_timeout(r->db, REG_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(r->db, 1);
    if ((s = reg_db_exec(r, "PRAGMA foreign_keys = ON", err)) != ST_OK ||
        (s = set_wal(r, err)) != ST_OK ||
        /* FULL: a commit is on disk when COMMIT returns, not only consistent. */
        (s = reg_db_exec(r, "PRAGMA synchronous = FULL", err)) != ST_OK ||
        (s = migrate(r, schema, err)) != ST_OK)
        goto fail;
    *out = r;
    return ST_OK;
fail:
    reg_close(r);
    return s;
}

st_status reg_open(const char *home, reg_open_mode mode, reg_store **out, st_error *err)
{
    return reg_open_schema(home, mode, REG_SCHEMA_VERSION, out, err);
}

void reg_close(reg_store *r)
{
    if (!r)
        return;
    if (r->db)
        sqlite3_close_v2(r->db);
    st_free(r);
}

const char *reg_home(const reg_store *r) { return r->home; }
