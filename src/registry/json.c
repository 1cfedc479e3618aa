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
