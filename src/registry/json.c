/* json.c - the registry's records as JSON, one writer per record, shared
 * by the audit log, `stratus ... --json` and the management API so that
 * every surface spells a record the same way. */
#include <string.h>

#include "json/json.h"
#include "registry/registry.h"

/* A version number, or null when unset (0). */
static void write_version_or_null(json_writer *w, const char *key, int64_t version)
{
    json_write_key(w, st_str_c(key));
    if (version)
        json_write_int64(w, version);
    else
        json_write_null(w);
}

/* A string, or null when NULL or empty. */
static void write_string_or_null(json_writer *w, const char *key, const char *value)
{
    json_write_key(w, st_str_c(key));
    if (value && *value)
        json_write_string(w, st_str_c(value));
    else
        json_write_null(w);
}

/* Text that holds JSON (audit before/after) as a value; text that does not
 * parse is written as a string rather than lost. */
static void write_embedded(json_writer *w, const char *key, const char *text)
{
    json_write_key(w, st_str_c(key));
    if (!text) {
        json_write_null(w);
        return;
    }
    st_arena scratch;
    st_arena_init(&scratch, 0);
    json_value *v = NULL;
    if (json_parse(text, strlen(text), NULL, &scratch, &v, NULL) == ST_OK)
        json_write_value(w, v);
    else
        json_write_string(w, st_str_c(text));
    st_arena_free(&scratch);
}

/* Finishes a document written to `out`; ST_ENOMEM when it could not grow. */
static st_status finish(json_writer *w)
{
    return json_writer_finish(w) == ST_OK ? ST_OK : ST_ENOMEM;
}

void reg_json_write_deployment(json_writer *w, const reg_deployment *d)
{
    json_write_object_begin(w);
    json_write_key(w, ST_STR("model"));
    json_write_string(w, st_str_c(d->model ? d->model : ""));
    write_version_or_null(w, "stable", d->stable);
    write_version_or_null(w, "canary", d->canary);
    json_write_key(w, ST_STR("canary_percent"));
    json_write_double(w, d->canary_percent);
    write_version_or_null(w, "shadow", d->shadow);
    write_string_or_null(w, "sticky_header", d->sticky_header);
    json_write_key(w, ST_STR("rollback_rule"));
    json_write_object_begin(w);
    json_write_key(w, ST_STR("max_error_rate_increase"));
    json_write_double(w, d->rule.max_error_rate_increase);
    json_write_key(w, ST_STR("max_p99_ratio"));
    json_write_double(w, d->rule.max_p99_ratio);
    json_write_key(w, ST_STR("window_s"));
    json_write_int64(w, d->rule.window_s);
    json_write_key(w, ST_STR("min_requests"));
    json_write_int64(w, d->rule.min_requests);
    json_write_object_end(w);
    write_version_or_null(w, "previous_stable", d->previous_stable);
    write_string_or_null(w, "state", d->state);
    write_string_or_null(w, "reason", d->reason);
    write_string_or_null(w, "updated_at", d->updated_at);
    write_string_or_null(w, "updated_by", d->updated_by);
    json_write_key(w, ST_STR("revision"));
    json_write_int64(w, d->revision);
    json_write_object_end(w);
}

st_status reg_json_deployment(st_buf *out, const reg_deployment *d)
{
    json_writer w;
    json_writer_init(&w, out, NULL);
    reg_json_write_deployment(&w, d);
    return finish(&w);
}

st_status reg_json_alias(st_buf *out, st_str name, st_str alias, int64_t version)
{
    json_writer w;
    json_writer_init(&w, out, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("model"));
    json_write_string(&w, name);
    json_write_key(&w, ST_STR("alias"));
    json_write_string(&w, alias);
    json_write_key(&w, ST_STR("version"));
    json_write_int64(&w, version);
    json_write_object_end(&w);
    return finish(&w);
}

void reg_json_write_audit(json_writer *w, const reg_audit_entry *e)
{
    json_write_object_begin(w);
    json_write_key(w, ST_STR("id"));
    json_write_int64(w, e->id);
    json_write_key(w, ST_STR("at"));
    json_write_string(w, st_str_c(e->at));
    json_write_key(w, ST_STR("who"));
    json_write_string(w, st_str_c(e->who));
    json_write_key(w, ST_STR("action"));
    json_write_string(w, st_str_c(e->action));
    json_write_key(w, ST_STR("target"));
    json_write_string(w, st_str_c(e->target));
    write_embedded(w, "before", e->before);
    write_embedded(w, "after", e->after);
    json_write_object_end(w);
}

st_status reg_json_audit(st_buf *out, const reg_audit_entry *e)
{
    json_writer w;
    json_writer_init(&w, out, NULL);
    reg_json_write_audit(&w, e);
    return finish(&w);
}

/* ---- models and versions ---------------------------------------------- */

void reg_json_write_model(json_writer *w, const reg_model *m)
{
    json_write_object_begin(w);
    json_write_key(w, ST_STR("name"));
    json_write_string(w, st_str_c(m->name));
    json_write_key(w, ST_STR("versions"));
    json_write_int64(w, m->n_versions);
    json_write_key(w, ST_STR("latest"));
    json_write_int64(w, m->latest_version);
    json_write_key(w, ST_STR("created_at"));
    json_write_string(w, st_str_c(m->created_at));
    json_write_key(w, ST_STR("aliases"));
    json_write_object_begin(w);
    for (size_t a = 0; a < m->n_aliases; a++) {
        json_write_key(w, st_str_c(m->aliases[a].alias));
        json_write_int64(w, m->aliases[a].version);
    }
    json_write_object_end(w);
    json_write_object_end(w);
}

static void write_lineage(json_writer *w, const reg_lineage *l)
{
    json_write_object_begin(w);
    json_write_key(w, ST_STR("source_path"));
    json_write_string(w, st_str_c(l->source_path));
    write_string_or_null(w, "source_commit", l->source_commit);
    json_write_key(w, ST_STR("user"));
    json_write_string(w, st_str_c(l->user));
    json_write_key(w, ST_STR("created_at"));
    json_write_string(w, st_str_c(l->created_at));
    json_write_key(w, ST_STR("data"));
    if (l->has_data) {
        json_write_object_begin(w);
        json_write_key(w, ST_STR("path"));
        json_write_string(w, st_str_c(l->data_path));
        json_write_key(w, ST_STR("sha256"));
        json_write_string(w, st_str_c(l->data_sha256));
        json_write_key(w, ST_STR("size_bytes"));
        json_write_int64(w, l->data_bytes);
        write_embedded(w, "schema", l->data_schema);
        json_write_object_end(w);
    } else {
        json_write_null(w);
    }
    json_write_object_end(w);
}

void reg_json_write_version(json_writer *w, const reg_version *v)
{
    json_write_object_begin(w);
    json_write_key(w, ST_STR("name"));
    json_write_string(w, st_str_c(v->model));
    json_write_key(w, ST_STR("version"));
    json_write_int64(w, v->version);
    json_write_key(w, ST_STR("sha256"));
    json_write_string(w, st_str_c(v->sha256));
    json_write_key(w, ST_STR("size_bytes"));
    json_write_int64(w, v->size_bytes);
    json_write_key(w, ST_STR("format"));
    json_write_string(w, st_str_c(v->format));
    json_write_key(w, ST_STR("file_name"));
    json_write_string(w, st_str_c(v->file_name));
    json_write_key(w, ST_STR("created_at"));
    json_write_string(w, st_str_c(v->created_at));
    json_write_key(w, ST_STR("created_by"));
    json_write_string(w, st_str_c(v->created_by));
    json_write_key(w, ST_STR("aliases"));
    json_write_array_begin(w);
    for (size_t i = 0; i < v->n_aliases; i++)
        json_write_string(w, st_str_c(v->aliases[i]));
    json_write_array_end(w);
    json_write_key(w, ST_STR("metrics"));
    json_write_object_begin(w);
    for (size_t i = 0; i < v->n_metrics; i++) {
        json_write_key(w, st_str_c(v->metrics[i].key));
        json_write_double(w, v->metrics[i].value);
    }
    json_write_object_end(w);
    const reg_kv *sets[2] = { v->params, v->tags };
    size_t counts[2] = { v->n_params, v->n_tags };
    for (int k = 0; k < 2; k++) {
        json_write_key(w, k ? ST_STR("tags") : ST_STR("params"));
        json_write_object_begin(w);
        for (size_t i = 0; i < counts[k]; i++) {
            json_write_key(w, st_str_c(sets[k][i].key));
            json_write_string(w, st_str_c(sets[k][i].value));
        }
        json_write_object_end(w);
    }
    json_write_key(w, ST_STR("lineage"));
    write_lineage(w, &v->lineage);
    json_write_object_end(w);
}

st_status reg_json_version(st_buf *out, const reg_version *v)
{
    json_writer w;
    json_writer_init(&w, out, NULL);
    reg_json_write_version(&w, v);
    return finish(&w);
}

st_status reg_json_model_versions(st_buf *out, st_str name, const reg_version *versions, size_t n)
{
    json_writer w;
    json_writer_init(&w, out, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("name"));
    json_write_string(&w, name);
    json_write_key(&w, ST_STR("versions"));
    json_write_array_begin(&w);
    for (size_t i = 0; i < n; i++)
        reg_json_write_version(&w, &versions[i]);
    json_write_array_end(&w);
    json_write_object_end(&w);
    return finish(&w);
}

/* ---- lists ---------------------------------------------------------------- */

typedef void (*write_item_fn)(json_writer *w, const void *item);

/* {"<key>": [item, ...]}; `write` writes one of the `size`-byte items. */
static st_status write_list(st_buf *out, const char *key, const void *items, size_t n, size_t size,
                            write_item_fn write)
{
    json_writer w;
    json_writer_init(&w, out, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, st_str_c(key));
    json_write_array_begin(&w);
    for (size_t i = 0; i < n; i++)
        write(&w, (const char *)items + i * size);
    json_write_array_end(&w);
    json_write_object_end(&w);
    return finish(&w);
}

static void write_model_item(json_writer *w, const void *item) { reg_json_write_model(w, item); }
static void write_deployment_item(json_writer *w, const void *item) { reg_json_write_deployment(w, item); }
static void write_audit_item(json_writer *w, const void *item) { reg_json_write_audit(w, item); }

st_status reg_json_models(st_buf *out, const reg_model *models, size_t n)
{
    return write_list(out, "models", models, n, sizeof *models, write_model_item);
}

st_status reg_json_deployments(st_buf *out, const reg_deployment *list, size_t n)
{
    return write_list(out, "deployments", list, n, sizeof *list, write_deployment_item);
}

st_status reg_json_audit_log(st_buf *out, const reg_audit_entry *entries, size_t n)
{
    return write_list(out, "audit", entries, n, sizeof *entries, write_audit_item);
}
