/* json.c - the registry's records as JSON, one writer per record, shared
 * by `stratus ... --json` and the management API so that every surface
 * spells a record the same way. */
#include <string.h>

#include "json/json.h"
#include "registry/registry.h"

/* Finishes a document written to `out`; ST_ENOMEM when it could not grow. */
static st_status finish_doc(json_writer *w)
{
    return json_writer_finish(w) == ST_OK ? ST_OK : ST_ENOMEM;
}

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

st_status reg_json_models(st_buf *out, const reg_model *models, size_t n)
{
    json_writer w;
    json_writer_init(&w, out, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("models"));
    json_write_array_begin(&w);
    for (size_t i = 0; i < n; i++)
        reg_json_write_model(&w, &models[i]);
    json_write_array_end(&w);
    json_write_object_end(&w);
    return finish_doc(&w);
}

static void write_lineage(json_writer *w, const reg_lineage *l)
{
    json_write_object_begin(w);
    json_write_key(w, ST_STR("source_path"));
    json_write_string(w, st_str_c(l->source_path));
    json_write_key(w, ST_STR("source_commit"));
    if (l->source_commit && l->source_commit[0])
        json_write_string(w, st_str_c(l->source_commit));
    else
        json_write_null(w);
    json_write_key(w, ST_STR("user"));
    json_write_string(w, st_str_c(l->user));
    json_write_key(w, ST_STR("created_at"));
    json_write_string(w, st_str_c(l->created_at));
    json_write_key(w, ST_STR("data"));
    if (!l->has_data) {
        json_write_null(w);
        json_write_object_end(w);
        return;
    }
    json_write_object_begin(w);
    json_write_key(w, ST_STR("path"));
    json_write_string(w, st_str_c(l->data_path));
    json_write_key(w, ST_STR("sha256"));
    json_write_string(w, st_str_c(l->data_sha256));
    json_write_key(w, ST_STR("size_bytes"));
    json_write_int64(w, l->data_bytes);
    json_write_key(w, ST_STR("schema"));
    json_value *schema = NULL;
    st_arena scratch;
    st_arena_init(&scratch, 0);
    if (l->data_schema && json_parse(l->data_schema, strlen(l->data_schema), NULL, &scratch, &schema, NULL) == ST_OK)
        json_write_value(w, schema);
    else
        json_write_null(w);
    st_arena_free(&scratch);
    json_write_object_end(w);
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
    return finish_doc(&w);
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
    return finish_doc(&w);
}
