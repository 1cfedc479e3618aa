/* ops.c - the changes: push a version, move or remove an alias, remove a
 * version.  Each is one write transaction (BEGIN IMMEDIATE), so numbering is decided
 * under the lock and a failure anywhere leaves the registry as it was. */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "json/json.h"
#include "registry/reg_int.h"

static st_status check_key(const char *flag, const reg_kv *kv, st_error *err)
{
    st_str key = st_str_c(kv->key), value = st_str_c(kv->value);
    if (key.len == 0 || key.len > REG_NAME_MAX)
        return st_fail(err, ST_EINVAL, "%s key must be 1 to %d bytes, got %zu", flag,
                       REG_NAME_MAX, key.len);
    if (value.len > REG_VALUE_MAX)
        return st_fail(err, ST_EINVAL, "%s %s: the value is %zu bytes; at most %d are allowed",
                       flag, kv->key, value.len, REG_VALUE_MAX);
    for (size_t i = 0; i < key.len; i++)
        if ((unsigned char)key.ptr[i] < 0x20 || key.ptr[i] == 0x7f || key.ptr[i] == '=')
            return st_fail(err, ST_EINVAL, "%s key '%s' contains '=' or a control character",
                           flag, kv->key);
    for (size_t i = 0; i < value.len; i++)
        if ((unsigned char)value.ptr[i] < 0x20 || value.ptr[i] == 0x7f)
            return st_fail(err, ST_EINVAL, "%s %s: the value contains a control character", flag,
                           kv->key);
    return ST_OK;
}

static st_status check_kvs(const char *flag, const reg_kv *kvs, size_t n, bool is_number,
                           st_error *err)
{
    for (size_t i = 0; i < n; i++) {
        st_status s = check_key(flag, &kvs[i], err);
        if (s != ST_OK)
            return s;
        for (size_t j = 0; j < i; j++)
            if (strcmp(kvs[i].key, kvs[j].key) == 0)
                return st_fail(err, ST_EINVAL, "%s %s is given twice", flag, kvs[i].key);
        if (is_number) {
            char *end;
            errno = 0;
            double v = strtod(kvs[i].value, &end);
            if (!*kvs[i].value || *end || errno || !isfinite(v))
                return st_fail(err, ST_EINVAL, "%s %s=%s: the value must be a finite number",
                               flag, kvs[i].key, kvs[i].value);
        }
    }
    return ST_OK;
}

static st_status insert_kvs(reg_store *r, const char *table, int64_t version_id,
                            const reg_kv *kvs, size_t n, bool is_number, st_error *err)
{
    char sql[96];
    snprintf(sql, sizeof sql, "INSERT INTO %s(version_id, key, value) VALUES (?, ?, ?)", table);
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st;
        st_status s = reg_db_prepare(r, sql, &st, err);
        if (s != ST_OK)
            return s;
        sqlite3_bind_int64(st, 1, version_id);
        reg_bind_cstr(st, 2, kvs[i].key);
        if (is_number)
            sqlite3_bind_double(st, 3, strtod(kvs[i].value, NULL));
        else
            reg_bind_cstr(st, 3, kvs[i].value);
        if ((s = reg_db_run(r, st, table, err)) != ST_OK)
            return s;
    }
    return ST_OK;
}

static void write_kvs(json_writer *w, const char *key, const reg_kv *kvs, size_t n,
                      bool is_number)
{
    json_write_key(w, st_str_c(key));
    json_write_object_begin(w);
    for (size_t i = 0; i < n; i++) {
        json_write_key(w, st_str_c(kvs[i].key));
        if (is_number)
            json_write_double(w, strtod(kvs[i].value, NULL));
        else
            json_write_string(w, st_str_c(kvs[i].value));
    }
    json_write_object_end(w);
}

/* The alias record for the audit log, NUL-terminated. */
static st_status alias_json(st_buf *out, st_str name, st_str alias, int64_t version,
                            st_error *err)
{
    if (reg_json_alias(out, name, alias, version) != ST_OK || !st_buf_cstr(out))
        return st_fail(err, ST_ENOMEM, "out of memory");
    return ST_OK;
}

/* The version `alias` of model_id points at, or 0 when it does not exist. */
static st_status alias_version(reg_store *r, int64_t model_id, st_str alias, int64_t *version,
                               st_error *err)
{
    *version = 0;
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r,
                                 "SELECT v.version FROM aliases a JOIN versions v ON v.id = a.version_id "
                                 "WHERE a.model_id = ? AND a.alias = ?",
                                 &st, err);
    if (s != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, model_id);
    reg_bind_str(st, 2, alias);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? ST_OK : reg_db_fail(r, rc, "alias", err);
}

/* Points alias at version_id inside the caller's transaction; records the
 * move in the audit log. */
static st_status set_alias_tx(reg_store *r, int64_t model_id, st_str name, int64_t version_id,
                              int64_t version, st_str alias, st_error *err)
{
    sqlite3_stmt *st;
    int64_t before = 0;
    st_buf before_json = { 0 }, after_json = { 0 }, target = { 0 };
    st_status s = alias_version(r, model_id, alias, &before, err);
    if (s != ST_OK)
        return s;
    if ((s = reg_db_prepare(r, "INSERT OR REPLACE INTO aliases(model_id, alias, version_id) VALUES (?, ?, ?)",
                            &st, err)) != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, model_id);
    reg_bind_str(st, 2, alias);
    sqlite3_bind_int64(st, 3, version_id);
    if ((s = reg_db_run(r, st, "alias", err)) != ST_OK)
        return s;
    if ((before && (s = alias_json(&before_json, name, alias, before, err)) != ST_OK) ||
        (s = alias_json(&after_json, name, alias, version, err)) != ST_OK)
        goto done;
    if (st_buf_printf(&target, "%.*s@%.*s", ST_STR_FMT(name), ST_STR_FMT(alias)) != ST_OK) {
        s = st_fail(err, ST_ENOMEM, "out of memory");
        goto done;
    }
    s = reg_audit(r, "alias", st_buf_str(&target), before ? (const char *)before_json.data : NULL,
                  (const char *)after_json.data, err);
done:
    st_buf_free(&before_json);
    st_buf_free(&after_json);
    st_buf_free(&target);
    return s;
}

/* Everything a push records that does not depend on the transaction. */
typedef struct push_facts {
    char sha256[65];
    uint64_t size;
    char source[REG_PATH_MAX];
    char commit[72];
    char user[80];
    char now[32];
    const char *file_name;
    char data_abs[REG_PATH_MAX];
    char data_sha256[65];
    uint64_t data_bytes;
    st_buf data_schema;
    char file_name_buf[REG_PATH_MAX];
} push_facts;

static st_status push_tx(reg_store *r, const reg_push_request *req, push_facts *f,
                         int64_t *version, st_error *err)
{
    st_str name = st_str_c(req->name);
    sqlite3_stmt *st;
    st_buf after = { 0 }, target = { 0 };
    int64_t model_id = 0, version_id = 0, number = 0;
    st_status s = reg_db_prepare(r, "INSERT OR IGNORE INTO models(name, created_at) VALUES (?, ?)",
                                 &st, err);
    if (s != ST_OK)
        return s;
    reg_bind_str(st, 1, name);
    reg_bind_cstr(st, 2, f->now);
    if ((s = reg_db_run(r, st, "model", err)) != ST_OK)
        return s;
    /* The number is taken under the write lock: race-free, never reused. */
    if ((s = reg_db_prepare(r, "UPDATE models SET last_version = last_version + 1 WHERE name = ? "
                               "RETURNING id, last_version",
                            &st, err)) != ST_OK)
        return s;
    reg_bind_str(st, 1, name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        model_id = sqlite3_column_int64(st, 0);
        number = sqlite3_column_int64(st, 1);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || !number)
        return reg_db_fail(r, rc == SQLITE_DONE ? SQLITE_ERROR : rc, "numbering the version", err);
    if ((s = reg_db_prepare(r,
                            "INSERT INTO versions(model_id, version, blob, size_bytes, format, file_name, "
                            "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            &st, err)) != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_int64(st, 2, number);
    reg_bind_cstr(st, 3, f->sha256);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)f->size);
    reg_bind_cstr(st, 5, req->format ? req->format : "onnx");
    reg_bind_cstr(st, 6, f->file_name);
    reg_bind_cstr(st, 7, f->now);
    reg_bind_cstr(st, 8, f->user);
    if ((s = reg_db_run(r, st, "version", err)) != ST_OK)
        return s;
    version_id = sqlite3_last_insert_rowid(r->db);
    if ((s = insert_kvs(r, "metrics", version_id, req->metrics, req->n_metrics, true, err)) != ST_OK ||
        (s = insert_kvs(r, "params", version_id, req->params, req->n_params, false, err)) != ST_OK ||
        (s = insert_kvs(r, "tags", version_id, req->tags, req->n_tags, false, err)) != ST_OK)
        return s;
    if ((s = reg_db_prepare(r,
                            "INSERT INTO lineage(version_id, source_path, source_commit, user, created_at, "
                            "data_path, data_sha256, data_bytes, data_schema) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            &st, err)) != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, version_id);
    reg_bind_cstr(st, 2, f->source);
    reg_bind_cstr(st, 3, f->commit);
    reg_bind_cstr(st, 4, f->user);
    reg_bind_cstr(st, 5, f->now);
    if (req->data_path) {
        reg_bind_cstr(st, 6, f->data_abs);
        reg_bind_cstr(st, 7, f->data_sha256);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)f->data_bytes);
        reg_bind_cstr(st, 9, (const char *)f->data_schema.data);
    }
    if ((s = reg_db_run(r, st, "lineage", err)) != ST_OK)
        return s;

    json_writer w;
    json_writer_init(&w, &after, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("model"));
    json_write_string(&w, name);
    json_write_key(&w, ST_STR("version"));
    json_write_int64(&w, number);
    json_write_key(&w, ST_STR("sha256"));
    json_write_string(&w, st_str_c(f->sha256));
    json_write_key(&w, ST_STR("size_bytes"));
    json_write_uint64(&w, f->size);
    json_write_key(&w, ST_STR("format"));
    json_write_string(&w, st_str_c(req->format ? req->format : "onnx"));
    json_write_key(&w, ST_STR("source_path"));
    json_write_string(&w, st_str_c(f->source));
    write_kvs(&w, "metrics", req->metrics, req->n_metrics, true);
    write_kvs(&w, "params", req->params, req->n_params, false);
    write_kvs(&w, "tags", req->tags, req->n_tags, false);
    if (req->data_path) {
        json_write_key(&w, ST_STR("data_sha256"));
        json_write_string(&w, st_str_c(f->data_sha256));
    }
    json_write_object_end(&w);
    if (json_writer_finish(&w) != ST_OK || !st_buf_cstr(&after) ||
        st_buf_printf(&target, "%s@%lld", req->name, (long long)number) != ST_OK) {
        s = st_fail(err, ST_ENOMEM, "out of memory");
        goto done;
    }
    if ((s = reg_audit(r, "push", st_buf_str(&target), NULL, (const char *)after.data, err)) != ST_OK)
        goto done;
    if (req->alias &&
        (s = set_alias_tx(r, model_id, name, version_id, number, st_str_c(req->alias), err)) != ST_OK)
        goto done;
    *version = number;
done:
    st_buf_free(&after);
    st_buf_free(&target);
    return s;
}

st_status reg_push(reg_store *r, const reg_push_request *req, int64_t *version, st_error *err)
{
    st_status s;
    if ((s = reg_check_name(st_str_c(req->name), false, err)) != ST_OK ||
        (req->alias && (s = reg_check_name(st_str_c(req->alias), true, err)) != ST_OK) ||
        (s = check_kvs("--metric", req->metrics, req->n_metrics, true, err)) != ST_OK ||
        (s = check_kvs("--param", req->params, req->n_params, false, err)) != ST_OK ||
        (s = check_kvs("--tag", req->tags, req->n_tags, false, err)) != ST_OK)
        return s;
    push_facts *f = st_calloc(1, sizeof *f);
    if (!f)
        return st_fail(err, ST_ENOMEM, "out of memory");
    const char *source = req->source_path ? req->source_path : req->model_path;
    if (req->source_label) {
        snprintf(f->source, sizeof f->source, "%s", req->source_label);
    } else if (!realpath(source, f->source)) {
        s = st_fail(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO, "%s: %s", source, strerror(errno));
        goto done;
    }
    snprintf(f->file_name_buf, sizeof f->file_name_buf, "%s", req->model_path);
    f->file_name = basename(f->file_name_buf);
    if (!req->source_label)
        reg_source_commit(f->source, f->commit, sizeof f->commit);
    reg_actor(r, f->user, sizeof f->user);
    reg_now(f->now);
    if (req->data_path) {
        if (!realpath(req->data_path, f->data_abs)) {
            s = st_fail(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO, "--data %s: %s",
                        req->data_path, strerror(errno));
            goto done;
        }
        if ((s = reg_data_summary(f->data_abs, f->data_sha256, &f->data_bytes, &f->data_schema,
                                  req->progress, req->progress_ctx, err)) != ST_OK)
            goto done;
        if (!st_buf_cstr(&f->data_schema)) {
            s = st_fail(err, ST_ENOMEM, "out of memory");
            goto done;
        }
    }
    if ((s = reg_blob_put(r, req->model_path, f->sha256, &f->size, req->progress,
                          req->progress_ctx, err)) != ST_OK)
        goto done;
    /* A concurrent `fsck --gc` may remove the blob before our row names
     * it; it does so only under the write lock, so checking after taking
     * the lock is enough, and the blob is written again if it is gone. */
    for (int attempt = 0;; attempt++) {
        if ((s = reg_tx_write(r, err)) != ST_OK)
            goto done;
        char path[REG_PATH_MAX + 72];
        reg_blob_path(r, f->sha256, path, sizeof path);
        struct stat sb;
        if (stat(path, &sb) != 0) {
            reg_tx_rollback(r);
            if (attempt == 3) {
                s = st_fail(err, ST_EIO, "blob %s keeps disappearing; is another program "
                                         "deleting files in %s?", path, r->blob_dir);
                goto done;
            }
            if ((s = reg_blob_put(r, req->model_path, f->sha256, &f->size, NULL, NULL, err)) != ST_OK)
                goto done;
            continue;
        }
        if ((s = push_tx(r, req, f, version, err)) != ST_OK) {
            reg_tx_rollback(r);
            goto done;
        }
        s = reg_tx_commit(r, err);
        break;
    }
done:
    st_buf_free(&f->data_schema);
    st_free(f);
    return s;
}

st_status reg_set_alias(reg_store *r, st_str name, int64_t version, st_str alias, st_error *err)
{
    st_status s;
    if ((s = reg_check_name(name, false, err)) != ST_OK ||
        (s = reg_check_name(alias, true, err)) != ST_OK)
        return s;
    int64_t model_id = 0, version_id = 0;
    if ((s = reg_tx_write(r, err)) != ST_OK)
        return s;
    if ((s = reg_model_id(r, name, &model_id, err)) != ST_OK ||
        (s = reg_version_id(r, model_id, name, version, &version_id, err)) != ST_OK ||
        (s = set_alias_tx(r, model_id, name, version_id, version, alias, err)) != ST_OK) {
        reg_tx_rollback(r);
        return s;
    }
    return reg_tx_commit(r, err);
}

st_status reg_remove_alias(reg_store *r, st_str name, st_str alias, st_error *err)
{
    st_status s;
    if ((s = reg_check_name(name, false, err)) != ST_OK ||
        (s = reg_check_name(alias, true, err)) != ST_OK)
        return s;
    int64_t model_id = 0, version = 0;
    st_buf before = { 0 }, target = { 0 };
    sqlite3_stmt *st;
    if ((s = reg_tx_write(r, err)) != ST_OK)
        return s;
    if ((s = reg_model_id(r, name, &model_id, err)) != ST_OK ||
        (s = alias_version(r, model_id, alias, &version, err)) != ST_OK)
        goto fail;
    if (!version) {
        s = st_fail(err, ST_ENOTFOUND,
                    "model '%.*s' has no alias '%.*s'; 'stratus show %.*s' lists its aliases",
                    ST_STR_FMT(name), ST_STR_FMT(alias), ST_STR_FMT(name));
        goto fail;
    }
    if ((s = reg_db_prepare(r, "DELETE FROM aliases WHERE model_id = ? AND alias = ?", &st, err)) != ST_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, model_id);
    reg_bind_str(st, 2, alias);
    if ((s = reg_db_run(r, st, "alias", err)) != ST_OK ||
        (s = alias_json(&before, name, alias, version, err)) != ST_OK)
        goto fail;
    if (st_buf_printf(&target, "%.*s@%.*s", ST_STR_FMT(name), ST_STR_FMT(alias)) != ST_OK) {
        s = st_fail(err, ST_ENOMEM, "out of memory");
        goto fail;
    }
    if ((s = reg_audit(r, "unalias", st_buf_str(&target), (const char *)before.data, NULL, err)) != ST_OK)
        goto fail;
    s = reg_tx_commit(r, err);
    goto done;
fail:
    reg_tx_rollback(r);
done:
    st_buf_free(&before);
    st_buf_free(&target);
    return s;
}

/* The aliases pointing at a version, as "a, b" into `out`. */
static st_status aliases_of(reg_store *r, int64_t version_id, st_buf *out, size_t *count,
                            st_error *err)
{
    *count = 0;
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r, "SELECT alias FROM aliases WHERE version_id = ? ORDER BY alias",
                                 &st, err);
    if (s != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, version_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        (*count)++;
        const char *alias = (const char *)sqlite3_column_text(st, 0);
        if (!alias || st_buf_printf(out, "%s'%s'", out->len ? ", " : "", alias) != ST_OK) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return reg_db_fail(r, rc, "aliases", err);
    return st_buf_cstr(out) ? ST_OK : st_fail(err, ST_ENOMEM, "out of memory");
}

st_status reg_remove_version(reg_store *r, st_str name, int64_t version, bool force,
                             st_error *err)
{
    st_status s = reg_check_name(name, false, err);
    if (s != ST_OK)
        return s;
    int64_t model_id = 0, version_id = 0;
    size_t n_aliases = 0;
    char blob[65] = "";
    st_buf aliases = { 0 }, before = { 0 }, target = { 0 };
    sqlite3_stmt *st;
    if ((s = reg_tx_write(r, err)) != ST_OK)
        return s;
    if ((s = reg_model_id(r, name, &model_id, err)) != ST_OK ||
        (s = reg_version_id(r, model_id, name, version, &version_id, err)) != ST_OK ||
        (s = reg_deploy_release_version(r, model_id, name, version, force, err)) != ST_OK ||
        (s = aliases_of(r, version_id, &aliases, &n_aliases, err)) != ST_OK)
        goto fail;
    if (aliases.len && !force) {
        s = st_fail(err, ST_EINVAL,
                    "alias%s %s point%s to %.*s@%lld; move %s first "
                    "('stratus alias %.*s@OTHER ALIAS') or remove the version and %s with --force",
                    n_aliases > 1 ? "es" : "", (const char *)aliases.data, n_aliases > 1 ? "" : "s",
                    ST_STR_FMT(name), (long long)version, n_aliases > 1 ? "them" : "it",
                    ST_STR_FMT(name), n_aliases > 1 ? "them" : "it");
        goto fail;
    }
    if ((s = reg_db_prepare(r, "SELECT blob, size_bytes, format FROM versions WHERE id = ?", &st, err)) != ST_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, version_id);
    int rc = sqlite3_step(st);
    const char *blob_text = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (rc == SQLITE_ROW && !blob_text)
        rc = SQLITE_NOMEM;
    if (rc == SQLITE_ROW) {
        snprintf(blob, sizeof blob, "%s", blob_text);
        json_writer w;
        json_writer_init(&w, &before, NULL);
        json_write_object_begin(&w);
        json_write_key(&w, ST_STR("model"));
        json_write_string(&w, name);
        json_write_key(&w, ST_STR("version"));
        json_write_int64(&w, version);
        json_write_key(&w, ST_STR("sha256"));
        json_write_string(&w, st_str_c(blob));
        json_write_key(&w, ST_STR("size_bytes"));
        json_write_int64(&w, sqlite3_column_int64(st, 1));
        json_write_key(&w, ST_STR("aliases_removed"));
        json_write_string(&w, st_buf_str(&aliases));
        json_write_object_end(&w);
        if (json_writer_finish(&w) != ST_OK || !st_buf_cstr(&before))
            rc = SQLITE_NOMEM;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        s = reg_db_fail(r, rc, "remove", err);
        goto fail;
    }
    if ((s = reg_db_prepare(r, "DELETE FROM aliases WHERE version_id = ?", &st, err)) != ST_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, version_id);
    if ((s = reg_db_run(r, st, "remove", err)) != ST_OK)
        goto fail;
    if ((s = reg_db_prepare(r, "DELETE FROM versions WHERE id = ?", &st, err)) != ST_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, version_id);
    if ((s = reg_db_run(r, st, "remove", err)) != ST_OK)
        goto fail;
    if (st_buf_printf(&target, "%.*s@%lld", ST_STR_FMT(name), (long long)version) != ST_OK) {
        s = st_fail(err, ST_ENOMEM, "out of memory");
        goto fail;
    }
    if ((s = reg_audit(r, "rm", st_buf_str(&target), (const char *)before.data, NULL, err)) != ST_OK)
        goto fail;
    if ((s = reg_tx_commit(r, err)) != ST_OK)
        goto done;
    /* The blob goes in a second transaction, after the rows that named it:
     * a crash in between leaves an orphan, never a dangling row.  Failing
     * here is not the caller's failure: fsck --gc finishes the job. */
    if (reg_tx_write(r, NULL) == ST_OK) {
        bool removed;
        if (reg_blob_release(r, blob, &removed, NULL) == ST_OK)
            reg_tx_commit(r, NULL);
        else
            reg_tx_rollback(r);
    }
    goto done;
fail:
    reg_tx_rollback(r);
done:
    st_buf_free(&aliases);
    st_buf_free(&before);
    st_buf_free(&target);
    return s;
}
