/* fsck.c - checking a Stratus home: the database's own integrity and
 * foreign keys, every version's blob (present, right size, right hash),
 * every alias and deployment, and files in the blob folder that nothing names.  With gc,
 * orphans are removed under the write lock (a push re-checks its blob
 * after taking that lock, so it is never robbed). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "registry/reg_int.h"

typedef struct fsck_ctx {
    reg_store *r;
    reg_fsck_fn on_issue;
    void *user;
    reg_fsck_report *report;
} fsck_ctx;

static void issue(fsck_ctx *c, reg_fsck_kind kind, bool was_removed, const char *path,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void issue(fsck_ctx *c, reg_fsck_kind kind, bool was_removed, const char *path,
                  const char *fmt, ...)
{
    bool is_damage = kind <= REG_FSCK_DANGLING;
    if (is_damage)
        c->report->damaged++;
    else
        c->report->other++;
    if (was_removed)
        c->report->removed++;
    if (!c->on_issue)
        return;
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    reg_fsck_issue i = { kind, is_damage, was_removed, path ? path : "", message };
    c->on_issue(c->user, &i);
}

const char *reg_fsck_kind_name(reg_fsck_kind kind)
{
    switch (kind) {
    case REG_FSCK_DATABASE: return "database";
    case REG_FSCK_MISSING_BLOB: return "missing_blob";
    case REG_FSCK_BAD_BLOB: return "bad_blob";
    case REG_FSCK_DANGLING: return "dangling";
    case REG_FSCK_ORPHAN_BLOB: return "orphan_blob";
    case REG_FSCK_TEMP_FILE: return "temp_file";
    case REG_FSCK_STRAY_FILE: return "stray_file";
    }
    return "unknown";
}

/* Runs a check query; every row it returns is one damage finding, with
 * the columns joined into the message after `label`. */
static st_status check_rows(fsck_ctx *c, const char *sql, reg_fsck_kind kind, const char *label,
                            const char *skip_value, st_error *err)
{
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(c->r, sql, &st, err);
    if (s != ST_OK)
        return s;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char text[512];
        size_t len = 0;
        text[0] = '\0';
        for (int i = 0; i < sqlite3_column_count(st) && len < sizeof text; i++) {
            const char *v = (const char *)sqlite3_column_text(st, i);
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? " " : "", v ? v : "NULL");
        }
        if (skip_value && strcmp(text, skip_value) == 0)
            continue;
        issue(c, kind, false, "", "%s: %s", label, text);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? ST_OK : reg_db_fail(c->r, rc, "fsck", err);
}

/* Every version's blob, each distinct blob hashed once. */
static st_status check_blobs(fsck_ctx *c, st_error *err)
{
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(c->r,
                                 "SELECT v.blob, v.size_bytes, m.name, v.version FROM versions v "
                                 "JOIN models m ON m.id = v.model_id ORDER BY v.blob, m.name, v.version",
                                 &st, err);
    if (s != ST_OK)
        return s;
    int rc;
    char last[65] = "", last_msg[sizeof(((st_error *)0)->msg)] = "";
    st_status last_status = ST_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *hex = (const char *)sqlite3_column_text(st, 0);
        int64_t size = sqlite3_column_int64(st, 1);
        const char *model = (const char *)sqlite3_column_text(st, 2);
        model = model ? model : "?";
        long long version = (long long)sqlite3_column_int64(st, 3);
        c->report->versions++;
        if (!hex || !reg_is_hex64(hex, strlen(hex))) {
            issue(c, REG_FSCK_DANGLING, false, "", "%s@%lld names a malformed blob '%s'", model,
                  version, hex ? hex : "NULL");
            continue;
        }
        char path[REG_PATH_MAX + 72];
        reg_blob_path(c->r, hex, path, sizeof path);
        if (strcmp(hex, last) != 0) {
            st_error verr = { 0 };
            uint64_t hashed = 0;
            last_status = reg_blob_verify(c->r, hex, size, &hashed, &verr);
            c->report->bytes_hashed += hashed;
            c->report->blobs_verified++;
            memcpy(last, hex, 65);
            if (last_status == ST_ENOMEM) {
                sqlite3_finalize(st);
                return st_fail(err, last_status, "%s", verr.msg);
            }
            memcpy(last_msg, verr.msg, sizeof last_msg);
        }
        if (last_status == ST_ENOTFOUND)
            issue(c, REG_FSCK_MISSING_BLOB, false, path, "%s@%lld: blob %.12s... is missing", model,
                  version, hex);
        else if (last_status == ST_ECORRUPT)
            issue(c, REG_FSCK_BAD_BLOB, false, path,
                  "%s@%lld: blob %.12s... is damaged (content does not match its hash or size); "
                  "push the model again",
                  model, version, hex);
        else if (last_status != ST_OK) /* unreadable: a folder, no permission, I/O error */
            issue(c, REG_FSCK_BAD_BLOB, false, path, "%s@%lld: %s", model, version, last_msg);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? ST_OK : reg_db_fail(c->r, rc, "fsck", err);
}

static int cmp_hex(const void *a, const void *b) { return memcmp(a, b, 65); }

/* A temp file ".tmp-<pid>-<n>" (or upload folder, `prefix_len` bytes of
 * prefix before the pid) belongs to a live push when its pid runs. */
static bool is_live_temp(const char *name, size_t prefix_len)
{
    char *end;
    long pid = strtol(name + prefix_len, &end, 10);
    if (pid <= 0 || *end != '-')
        return false;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Upload folders in the home whose process is gone: the file in them is
 * a temporary copy, never named by a version. */
static st_status check_uploads(fsck_ctx *c, bool gc, st_error *err)
{
    DIR *dir = opendir(c->r->home);
    if (!dir)
        return st_fail(err, ST_EIO, "cannot read %s: %s", c->r->home, strerror(errno));
    const size_t prefix_len = strlen(REG_UPLOAD_PREFIX);
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (strncmp(e->d_name, REG_UPLOAD_PREFIX, prefix_len) != 0)
            continue;
        char path[REG_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", c->r->home, e->d_name);
        bool is_live = is_live_temp(e->d_name, prefix_len);
        bool remove_it = false;
        if (gc && !is_live) {
            /* Only the upload's own files: model.<ext>. */
            DIR *inner = opendir(path);
            struct dirent *f;
            while (inner && (f = readdir(inner))) {
                char file[REG_PATH_MAX + 600];
                if (strncmp(f->d_name, "model.", 6) == 0 &&
                    (size_t)snprintf(file, sizeof file, "%s/%s", path, f->d_name) < sizeof file)
                    unlink(file);
            }
            if (inner)
                closedir(inner);
            remove_it = rmdir(path) == 0;
        }
        issue(c, REG_FSCK_TEMP_FILE, remove_it, path, "%s: %s", e->d_name,
              is_live ? "an upload in progress" : remove_it ? "left by an interrupted upload, removed"
                                                            : "left by an interrupted upload");
    }
    closedir(dir);
    return ST_OK;
}

/* Files in the blob folder that no version names. */
static st_status check_orphans(fsck_ctx *c, bool gc, st_error *err)
{
    char *names = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    DIR *dir = NULL;
    bool removed_any = false;
    st_status s = reg_db_prepare(c->r, "SELECT DISTINCT blob FROM versions", &st, err);
    if (s != ST_OK)
        return s;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *hex = (const char *)sqlite3_column_text(st, 0);
        if (!hex || strlen(hex) != 64)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char *grown = st_realloc(names, cap * 65);
            if (!grown) {
                s = st_fail(err, ST_ENOMEM, "out of memory");
                goto done;
            }
            names = grown;
        }
        memcpy(names + n++ * 65, hex, 65);
    }
    if (rc != SQLITE_DONE) {
        s = reg_db_fail(c->r, rc, "fsck", err);
        goto done;
    }
    if (n)
        qsort(names, n, 65, cmp_hex);
    dir = opendir(c->r->blob_dir);
    if (!dir) {
        s = st_fail(err, ST_EIO, "cannot read %s: %s", c->r->blob_dir, strerror(errno));
        goto done;
    }
    struct dirent *e;
    while ((e = readdir(dir))) {
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        char path[REG_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", c->r->blob_dir, name);
        if (strncmp(name, ".tmp-", 5) == 0) {
            bool is_live = is_live_temp(name, 5);
            bool remove_it = gc && !is_live && unlink(path) == 0;
            removed_any = removed_any || remove_it;
            issue(c, REG_FSCK_TEMP_FILE, remove_it, path, "%s: %s", name,
                  is_live ? "a push in progress" : remove_it ? "left by an interrupted push, removed"
                                                             : "left by an interrupted push");
            continue;
        }
        if (!reg_is_hex64(name, strlen(name))) {
            issue(c, REG_FSCK_STRAY_FILE, false, path, "%s: not a blob name; left alone", name);
            continue;
        }
        char key[65];
        memcpy(key, name, 65);
        if (n && bsearch(key, names, n, 65, cmp_hex))
            continue;
        bool remove_it = gc && unlink(path) == 0;
        removed_any = removed_any || remove_it;
        issue(c, REG_FSCK_ORPHAN_BLOB, remove_it, path, "blob %.12s... is named by no version%s",
              name, remove_it ? ", removed" : " (fsck --gc removes it)");
    }
    if (removed_any)
        s = reg_fsync_dir(c->r->blob_dir, err);
done:
    if (dir)
        closedir(dir);
    sqlite3_finalize(st);
    st_free(names);
    return s;
}

st_status reg_fsck(reg_store *r, bool gc, reg_fsck_fn on_issue, void *ctx,
                   reg_fsck_report *report, st_error *err)
{
    *report = (reg_fsck_report){ 0 };
    fsck_ctx c = { r, on_issue, ctx, report };
    st_status s = reg_tx_read(r, err);
    if (s != ST_OK)
        return s;
    if ((s = check_rows(&c, "PRAGMA integrity_check", REG_FSCK_DATABASE, "integrity", "ok", err)) != ST_OK ||
        (s = check_rows(&c, "PRAGMA foreign_key_check", REG_FSCK_DATABASE, "foreign key", NULL, err)) != ST_OK ||
        (s = check_rows(&c,
                        "SELECT m.name, a.alias, 'points at a version of another model' FROM aliases a "
                        "JOIN models m ON m.id = a.model_id JOIN versions v ON v.id = a.version_id "
                        "WHERE v.model_id <> a.model_id",
                        REG_FSCK_DANGLING, "alias", NULL, err)) != ST_OK ||
        (s = check_rows(&c,
                        "SELECT m.name, v.version, 'is numbered above the model''s last version' "
                        "FROM versions v JOIN models m ON m.id = v.model_id WHERE v.version > m.last_version",
                        REG_FSCK_DANGLING, "version", NULL, err)) != ST_OK ||
        (s = check_rows(&c,
                        /* Deployments name versions by number (a version
                         * row may be renumbered never, but removed), so
                         * no foreign key guards them: look. */
                        "SELECT m.name, r.role, r.version, 'names a version that does not exist' FROM ("
                        "  SELECT model_id, 'stable' AS role, stable AS version FROM deployments"
                        "  UNION ALL SELECT model_id, 'canary', canary FROM deployments WHERE canary > 0"
                        "  UNION ALL SELECT model_id, 'shadow', shadow FROM deployments WHERE shadow > 0"
                        ") r JOIN models m ON m.id = r.model_id "
                        "WHERE NOT EXISTS (SELECT 1 FROM versions v WHERE v.model_id = r.model_id "
                        "AND v.version = r.version)",
                        REG_FSCK_DANGLING, "deployment", NULL, err)) != ST_OK ||
        (s = check_blobs(&c, err)) != ST_OK)
        goto done;
    if (gc) {
        /* The orphan scan must see the same rows no push can add to
         * meanwhile: hold the write lock for it. */
        reg_tx_rollback(r);
        if ((s = reg_tx_write(r, err)) != ST_OK)
            return s;
    }
    if ((s = check_orphans(&c, gc, err)) == ST_OK && (s = check_uploads(&c, gc, err)) == ST_OK && gc &&
        report->removed) {
        char after[64];
        snprintf(after, sizeof after, "{\"files_removed\":%zu}", report->removed);
        if ((s = reg_audit(r, "gc", ST_STR("blobs"), NULL, after, err)) == ST_OK)
            return reg_tx_commit(r, err);
    }
done:
    reg_tx_rollback(r);
    return s;
}
