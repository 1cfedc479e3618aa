/* query.c - reading the registry: models, versions with everything known
 * about them, references resolved to verified blobs, the audit log.  Each
 * query reads one snapshot (a read transaction), so a concurrent push is
 * seen whole or not at all. */
#include <stdio.h>

#include "registry/reg_int.h"

#define OOM(err) st_fail(err, ST_ENOMEM, "out of memory reading the registry")

/* Runs a query with one int64 parameter twice: once to count, once to
 * copy; `row` stores row i of `st` into `items`.  Items are `size` bytes. */
typedef bool (*row_fn)(sqlite3_stmt *st, void *items, size_t i, st_arena *arena);

static st_status collect(reg_store *r, const char *sql, int64_t id, size_t size, row_fn row,
                         st_arena *arena, void **out, size_t *n, st_error *err)
{
    sqlite3_stmt *st;
    *out = NULL;
    *n = 0;
    st_status s = reg_db_prepare(r, sql, &st, err);
    if (s != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, id);
    size_t count = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        count++;
    if (rc != SQLITE_DONE)
        goto fail;
    void *items = st_arena_calloc(arena, count ? count : 1, size, 8);
    if (!items) {
        sqlite3_finalize(st);
        return OOM(err);
    }
    sqlite3_reset(st);
    size_t i = 0;
    while (i < count && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!row(st, items, i++, arena)) {
            sqlite3_finalize(st);
            return OOM(err);
        }
    }
    if (i < count)
        goto fail;
    sqlite3_finalize(st);
    *out = items;
    *n = count;
    return ST_OK;
fail:
    sqlite3_finalize(st);
    return reg_db_fail(r, rc, "reading the registry", err);
}

static bool row_string(sqlite3_stmt *st, void *items, size_t i, st_arena *arena)
{
    const char **v = items;
    return (v[i] = reg_col_dup(st, 0, arena)) != NULL;
}

static bool row_kv(sqlite3_stmt *st, void *items, size_t i, st_arena *arena)
{
    reg_kv *v = items;
    v[i].key = reg_col_dup(st, 0, arena);
    v[i].value = reg_col_dup(st, 1, arena);
    return v[i].key && v[i].value;
}

static bool row_metric(sqlite3_stmt *st, void *items, size_t i, st_arena *arena)
{
    reg_metric *v = items;
    v[i].key = reg_col_dup(st, 0, arena);
    v[i].value = sqlite3_column_double(st, 1);
    return v[i].key != NULL;
}

static bool row_alias(sqlite3_stmt *st, void *items, size_t i, st_arena *arena)
{
    reg_alias *v = items;
    v[i].alias = reg_col_dup(st, 0, arena);
    v[i].version = sqlite3_column_int64(st, 1);
    return v[i].alias != NULL;
}

/* Fills *out with version row `version_id`. */
static st_status load_version(reg_store *r, int64_t version_id, st_arena *a, reg_version *out,
                              st_error *err)
{
    *out = (reg_version){ 0 };
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r,
                                 "SELECT m.name, v.version, v.blob, v.size_bytes, v.format, v.file_name, "
                                 "v.created_at, v.created_by FROM versions v JOIN models m ON m.id = v.model_id "
                                 "WHERE v.id = ?",
                                 &st, err);
    if (s != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, version_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->model = reg_col_dup(st, 0, a);
        out->version = sqlite3_column_int64(st, 1);
        out->sha256 = reg_col_dup(st, 2, a);
        out->size_bytes = sqlite3_column_int64(st, 3);
        out->format = reg_col_dup(st, 4, a);
        out->file_name = reg_col_dup(st, 5, a);
        out->created_at = reg_col_dup(st, 6, a);
        out->created_by = reg_col_dup(st, 7, a);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return reg_db_fail(r, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "reading a version", err);
    if (!out->model || !out->sha256 || !out->format || !out->file_name || !out->created_at ||
        !out->created_by)
        return OOM(err);
    void *p;
    if ((s = collect(r, "SELECT alias FROM aliases WHERE version_id = ? ORDER BY alias", version_id,
                     sizeof(char *), row_string, a, &p, &out->n_aliases, err)) != ST_OK)
        return s;
    out->aliases = p;
    if ((s = collect(r, "SELECT key, value FROM metrics WHERE version_id = ? ORDER BY key", version_id,
                     sizeof(reg_metric), row_metric, a, &p, &out->n_metrics, err)) != ST_OK)
        return s;
    out->metrics = p;
    if ((s = collect(r, "SELECT key, value FROM params WHERE version_id = ? ORDER BY key", version_id,
                     sizeof(reg_kv), row_kv, a, &p, &out->n_params, err)) != ST_OK)
        return s;
    out->params = p;
    if ((s = collect(r, "SELECT key, value FROM tags WHERE version_id = ? ORDER BY key", version_id,
                     sizeof(reg_kv), row_kv, a, &p, &out->n_tags, err)) != ST_OK)
        return s;
    out->tags = p;

    if ((s = reg_db_prepare(r,
                            "SELECT source_path, source_commit, user, created_at, data_path, data_sha256, "
                            "data_bytes, data_schema FROM lineage WHERE version_id = ?",
                            &st, err)) != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, version_id);
    rc = sqlite3_step(st);
    reg_lineage *l = &out->lineage;
    bool is_oom = false;
    if (rc == SQLITE_ROW) {
        l->source_path = reg_col_dup(st, 0, a);
        l->source_commit = reg_col_dup(st, 1, a);
        l->user = reg_col_dup(st, 2, a);
        l->created_at = reg_col_dup(st, 3, a);
        is_oom = !l->source_path || !l->source_commit || !l->user || !l->created_at;
        l->has_data = sqlite3_column_type(st, 5) != SQLITE_NULL;
        if (l->has_data) {
            l->data_path = reg_col_dup(st, 4, a);
            l->data_sha256 = reg_col_dup(st, 5, a);
            l->data_bytes = sqlite3_column_int64(st, 6);
            l->data_schema = reg_col_dup(st, 7, a);
            is_oom = is_oom || !l->data_path || !l->data_sha256 || !l->data_schema;
        }
        rc = SQLITE_DONE;
    } else if (rc == SQLITE_DONE) {
        l->source_path = l->source_commit = l->user = l->created_at = "";
    }
    sqlite3_finalize(st);
    if (is_oom)
        return OOM(err);
    return rc == SQLITE_DONE ? ST_OK : reg_db_fail(r, rc, "reading lineage", err);
}

/* The row id of the version `ref` names, inside the caller's transaction. */
static st_status find_version(reg_store *r, const reg_ref *ref, int64_t *version_id,
                              st_error *err)
{
    int64_t model_id = 0;
    st_status s = reg_model_id(r, ref->name, &model_id, err);
    if (s != ST_OK)
        return s;
    if (ref->version)
        return reg_version_id(r, model_id, ref->name, ref->version, version_id, err);
    sqlite3_stmt *st;
    if (ref->alias.len)
        s = reg_db_prepare(r, "SELECT version_id FROM aliases WHERE model_id = ? AND alias = ?", &st, err);
    else
        s = reg_db_prepare(r, "SELECT id FROM versions WHERE model_id = ? ORDER BY version DESC LIMIT 1",
                           &st, err);
    if (s != ST_OK)
        return s;
    sqlite3_bind_int64(st, 1, model_id);
    if (ref->alias.len)
        reg_bind_str(st, 2, ref->alias);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *version_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE && ref->alias.len)
        return st_fail(err, ST_ENOTFOUND,
                       "model '%.*s' has no alias '%.*s'; 'stratus show %.*s' lists its aliases",
                       ST_STR_FMT(ref->name), ST_STR_FMT(ref->alias), ST_STR_FMT(ref->name));
    if (rc == SQLITE_DONE)
        return st_fail(err, ST_ENOTFOUND, "model '%.*s' has no versions left", ST_STR_FMT(ref->name));
    return rc == SQLITE_ROW ? ST_OK : reg_db_fail(r, rc, "registry", err);
}

st_status reg_get(reg_store *r, st_str text, st_arena *arena, reg_version *out, st_error *err)
{
    reg_ref ref;
    st_status s = reg_parse_ref(text, &ref, err);
    if (s != ST_OK)
        return s;
    if ((s = reg_tx_read(r, err)) != ST_OK)
        return s;
    int64_t version_id = 0;
    if ((s = find_version(r, &ref, &version_id, err)) == ST_OK)
        s = load_version(r, version_id, arena, out, err);
    reg_tx_rollback(r);
    return s;
}

st_status reg_resolve(reg_store *r, st_str text, char *path, size_t cap, st_error *err)
{
    st_arena arena;
    st_arena_init(&arena, 4096);
    reg_version v;
    st_status s = reg_get(r, text, &arena, &v, err);
    if (s == ST_OK && (s = reg_blob_verify(r, v.sha256, v.size_bytes, NULL, err)) != ST_OK)
        st_fail_wrap(err, s, "%s@%lld cannot be used; run 'stratus fsck' and push the model again",
                     v.model, (long long)v.version);
    if (s == ST_OK) {
        char full[REG_PATH_MAX + 72];
        reg_blob_path(r, v.sha256, full, sizeof full);
        if ((size_t)snprintf(path, cap, "%s", full) >= cap)
            s = st_fail(err, ST_ELIMIT, "blob path too long");
    }
    st_arena_free(&arena);
    return s;
}

st_status reg_list_versions(reg_store *r, st_str name, st_arena *arena, reg_version **out,
                            size_t *n, st_error *err)
{
    *out = NULL;
    *n = 0;
    st_status s = reg_check_name(name, false, err);
    if (s != ST_OK || (s = reg_tx_read(r, err)) != ST_OK)
        return s;
    int64_t model_id = 0;
    void *ids_p = NULL;
    size_t count = 0;
    if ((s = reg_model_id(r, name, &model_id, err)) != ST_OK)
        goto done;
    /* Row ids as strings would be wasteful: collect them as aliases' version column. */
    if ((s = collect(r, "SELECT '', id FROM versions WHERE model_id = ? ORDER BY version", model_id,
                     sizeof(reg_alias), row_alias, arena, &ids_p, &count, err)) != ST_OK)
        goto done;
    reg_alias *ids = ids_p;
    reg_version *versions = st_arena_calloc(arena, count ? count : 1, sizeof *versions, 8);
    if (!versions) {
        s = OOM(err);
        goto done;
    }
    for (size_t i = 0; i < count; i++)
        if ((s = load_version(r, ids[i].version, arena, &versions[i], err)) != ST_OK)
            goto done;
    *out = versions;
    *n = count;
done:
    reg_tx_rollback(r);
    return s;
}

st_status reg_list_models(reg_store *r, st_arena *arena, reg_model **out, size_t *n,
                          st_error *err)
{
    *out = NULL;
    *n = 0;
    st_status s = reg_tx_read(r, err);
    if (s != ST_OK)
        return s;
    sqlite3_stmt *st = NULL;
    size_t count = 0, cap = 0;
    reg_model *models = NULL;
    if ((s = reg_db_prepare(r,
                            "SELECT m.id, m.name, m.created_at, count(v.id), coalesce(max(v.version), 0) "
                            "FROM models m LEFT JOIN versions v ON v.model_id = m.id "
                            "GROUP BY m.id ORDER BY m.name",
                            &st, err)) != ST_OK)
        goto done;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t grown = cap ? cap * 2 : 16;
            reg_model *bigger = st_arena_calloc(arena, grown, sizeof *bigger, 8);
            if (!bigger) {
                s = OOM(err);
                goto done;
            }
            if (count)
                memcpy(bigger, models, count * sizeof *models);
            models = bigger;
            cap = grown;
        }
        reg_model *m = &models[count++];
        int64_t id = sqlite3_column_int64(st, 0);
        m->name = reg_col_dup(st, 1, arena);
        m->created_at = reg_col_dup(st, 2, arena);
        m->n_versions = sqlite3_column_int64(st, 3);
        m->latest_version = sqlite3_column_int64(st, 4);
        if (!m->name || !m->created_at) {
            s = OOM(err);
            goto done;
        }
        void *p;
        if ((s = collect(r, "SELECT a.alias, v.version FROM aliases a JOIN versions v ON v.id = a.version_id "
                            "WHERE a.model_id = ? ORDER BY a.alias",
                         id, sizeof(reg_alias), row_alias, arena, &p, &m->n_aliases, err)) != ST_OK)
            goto done;
        m->aliases = p;
    }
    if (rc != SQLITE_DONE) {
        s = reg_db_fail(r, rc, "listing models", err);
        goto done;
    }
    *out = models;
    *n = count;
done:
    sqlite3_finalize(st);
    reg_tx_rollback(r);
    return s;
}

static bool row_audit(sqlite3_stmt *st, void *items, size_t i, st_arena *arena)
{
    reg_audit_entry *e = items;
    e[i].id = sqlite3_column_int64(st, 0);
    e[i].at = reg_col_dup(st, 1, arena);
    e[i].who = reg_col_dup(st, 2, arena);
    e[i].action = reg_col_dup(st, 3, arena);
    e[i].target = reg_col_dup(st, 4, arena);
    e[i].before = sqlite3_column_type(st, 5) == SQLITE_NULL ? NULL : reg_col_dup(st, 5, arena);
    e[i].after = sqlite3_column_type(st, 6) == SQLITE_NULL ? NULL : reg_col_dup(st, 6, arena);
    return e[i].at && e[i].who && e[i].action && e[i].target &&
           (e[i].before || sqlite3_column_type(st, 5) == SQLITE_NULL) &&
           (e[i].after || sqlite3_column_type(st, 6) == SQLITE_NULL);
}

st_status reg_list_audit(reg_store *r, size_t limit, st_arena *arena, reg_audit_entry **out,
                         size_t *n, st_error *err)
{
    void *p = NULL;
    st_status s = reg_tx_read(r, err);
    if (s != ST_OK)
        return s;
    s = collect(r,
                "SELECT id, at, who, action, target, before, after FROM "
                "(SELECT * FROM audit ORDER BY id DESC LIMIT ?) ORDER BY id",
                limit ? (int64_t)limit : -1, sizeof(reg_audit_entry), row_audit, arena, &p, n, err);
    reg_tx_rollback(r);
    *out = p;
    return s;
}

st_status reg_db_collect(reg_store *r, const char *sql, int64_t param, size_t size, reg_row_fn row,
                         st_arena *arena, void **out, size_t *n, st_error *err)
{
    return collect(r, sql, param, size, row, arena, out, n, err);
}
