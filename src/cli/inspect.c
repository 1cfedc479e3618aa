/* inspect.c - `stratus inspect MODEL`: inputs, outputs, opsets, operators,
 * parameters, and what this engine cannot run yet. */
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "json/json.h"

void cli_io_shape_text(const eng_io *io, char *buf, size_t cap)
{
    if (io->rank < 0) {
        snprintf(buf, cap, "(unknown shape)");
        return;
    }
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < io->rank && len < cap; i++) {
        const char *sep = i ? ", " : "";
        if (io->dims[i] >= 0)
            len += (size_t)snprintf(buf + len, cap - len, "%s%lld", sep, (long long)io->dims[i]);
        else
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", sep, io->dim_names[i] ? io->dim_names[i] : "?");
    }
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
}

static void write_io_json(json_writer *w, const eng_io *io, size_t n)
{
    json_write_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        json_write_object_begin(w);
        json_write_key(w, ST_STR("name"));
        json_write_string(w, st_str_c(io[i].name));
        json_write_key(w, ST_STR("dtype"));
        json_write_string(w, st_str_c(st_dtype_name(io[i].dtype)));
        json_write_key(w, ST_STR("shape"));
        if (io[i].rank < 0) {
            json_write_null(w);
        } else {
            json_write_array_begin(w);
            for (int d = 0; d < io[i].rank; d++) {
                if (io[i].dims[d] >= 0)
                    json_write_int64(w, io[i].dims[d]);
                else if (io[i].dim_names[d])
                    json_write_string(w, st_str_c(io[i].dim_names[d]));
                else
                    json_write_null(w);
            }
            json_write_array_end(w);
        }
        json_write_object_end(w);
    }
    json_write_array_end(w);
}

static int print_json(const cli_verb *verb, const char *path, const eng_model_info *info)
{
    st_buf out = { 0 };
    st_error err = { 0 };
    json_writer w;
    json_writer_init(&w, &out, &err);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("path"));
    json_write_string(&w, st_str_c(path));
    json_write_key(&w, ST_STR("format"));
    json_write_string(&w, st_str_c(info->format));
    json_write_key(&w, ST_STR("ir_version"));
    json_write_int64(&w, info->ir_version);
    json_write_key(&w, ST_STR("producer"));
    json_write_string(&w, st_str_c(info->producer));
    json_write_key(&w, ST_STR("opsets"));
    json_write_array_begin(&w);
    for (size_t i = 0; i < info->n_opsets; i++) {
        json_write_object_begin(&w);
        json_write_key(&w, ST_STR("domain"));
        json_write_string(&w, st_str_c(info->opsets[i].domain[0] ? info->opsets[i].domain : "ai.onnx"));
        json_write_key(&w, ST_STR("version"));
        json_write_int64(&w, info->opsets[i].version);
        json_write_object_end(&w);
    }
    json_write_array_end(&w);
    json_write_key(&w, ST_STR("inputs"));
    write_io_json(&w, info->inputs, info->n_inputs);
    json_write_key(&w, ST_STR("outputs"));
    write_io_json(&w, info->outputs, info->n_outputs);
    json_write_key(&w, ST_STR("parameters"));
    json_write_uint64(&w, info->n_parameters);
    json_write_key(&w, ST_STR("parameter_bytes"));
    json_write_uint64(&w, info->parameter_bytes);
    json_write_key(&w, ST_STR("nodes"));
    json_write_uint64(&w, info->n_nodes);
    json_write_key(&w, ST_STR("operators"));
    json_write_array_begin(&w);
    for (size_t i = 0; i < info->n_ops; i++) {
        json_write_object_begin(&w);
        json_write_key(&w, ST_STR("op_type"));
        json_write_string(&w, st_str_c(info->ops[i].op_type));
        json_write_key(&w, ST_STR("domain"));
        json_write_string(&w, st_str_c(info->ops[i].domain[0] ? info->ops[i].domain : "ai.onnx"));
        json_write_key(&w, ST_STR("count"));
        json_write_uint64(&w, info->ops[i].count);
        json_write_key(&w, ST_STR("supported"));
        json_write_bool(&w, info->ops[i].is_supported);
        json_write_object_end(&w);
    }
    json_write_array_end(&w);
    json_write_key(&w, ST_STR("unsupported"));
    json_write_array_begin(&w);
    for (size_t i = 0; i < info->n_ops; i++)
        if (!info->ops[i].is_supported)
            json_write_string(&w, st_str_c(info->ops[i].op_type));
    json_write_array_end(&w);
    if (info->objective) { /* tree ensembles in their own formats */
        json_write_key(&w, ST_STR("encoding"));
        json_write_string(&w, st_str_c(info->encoding));
        json_write_key(&w, ST_STR("objective"));
        json_write_string(&w, st_str_c(info->objective));
        json_write_key(&w, ST_STR("trees"));
        json_write_uint64(&w, info->n_trees);
        json_write_key(&w, ST_STR("tree_nodes"));
        json_write_uint64(&w, info->n_tree_nodes);
        json_write_key(&w, ST_STR("features"));
        json_write_uint64(&w, info->n_features);
        json_write_key(&w, ST_STR("classes"));
        json_write_uint64(&w, info->n_classes);
    }
    json_write_object_end(&w);
    int rc = CLI_EXIT_OK;
    if (json_writer_finish(&w) != ST_OK)
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    else
        printf("%.*s\n", (int)out.len, (const char *)out.data);
    st_buf_free(&out);
    return rc;
}

static void print_io(const char *title, const eng_io *io, size_t n)
{
    printf("%s:\n", title);
    for (size_t i = 0; i < n; i++) {
        char shape[256];
        cli_io_shape_text(&io[i], shape, sizeof shape);
        printf("  %-24s %-8s %s\n", io[i].name, st_dtype_name(io[i].dtype), shape);
    }
}

/* XGBoost and LightGBM models: what the trees are and do. */
static void print_trees_text(const char *path, const eng_model_info *info)
{
    bool is_xgb = strcmp(info->format, "xgboost") == 0;
    printf("%s: %s model (%s, %s)\n", path, is_xgb ? "XGBoost" : "LightGBM", info->encoding, info->producer);
    printf("objective: %s\n", info->objective[0] ? info->objective : "(none)");
    printf("trees: %zu (%zu nodes)\n", info->n_trees, info->n_tree_nodes);
    printf("features: %zu\n", info->n_features);
    if (info->n_classes)
        printf("classes: %zu\n", info->n_classes);
    print_io("inputs", info->inputs, info->n_inputs);
    print_io("outputs", info->outputs, info->n_outputs);
}

static void print_text(const char *path, const eng_model_info *info)
{
    if (info->objective) {
        print_trees_text(path, info);
        return;
    }
    printf("%s: ONNX model (IR %lld%s%s)\n", path, (long long)info->ir_version, info->producer[0] ? ", " : "",
           info->producer);
    printf("opsets:");
    for (size_t i = 0; i < info->n_opsets; i++)
        printf(" %s %lld%s", info->opsets[i].domain[0] ? info->opsets[i].domain : "ai.onnx",
               (long long)info->opsets[i].version, i + 1 < info->n_opsets ? "," : "");
    printf("\n");
    print_io("inputs", info->inputs, info->n_inputs);
    print_io("outputs", info->outputs, info->n_outputs);
    printf("parameters: %zu (%.1f MiB)\n", info->n_parameters, (double)info->parameter_bytes / (1024.0 * 1024.0));
    printf("operators (%zu nodes):\n", info->n_nodes);
    for (size_t i = 0; i < info->n_ops; i++)
        printf("  %-28s %6zu%s\n", info->ops[i].op_type, info->ops[i].count,
               info->ops[i].is_supported ? "" : "  UNSUPPORTED");
    if (info->n_unsupported)
        printf("unsupported: %zu operator%s; this model cannot run yet\n", info->n_unsupported,
               info->n_unsupported == 1 ? "" : "s");
    else
        printf("unsupported: none\n");
}

int cli_inspect_run(const cli_verb *verb, int argc, char **argv)
{
    bool as_json = false;
    const cli_flag flags[] = {
        { "--json", CLI_BOOL, &as_json, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[1];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 1, &npos))
        return CLI_EXIT_USAGE;
    if (npos != 1)
        return cli_usage_error(verb, "needs a model file");
    char model_path[4096];
    int ref_rc = cli_model_path(verb, pos[0], model_path, sizeof model_path);
    if (ref_rc != CLI_EXIT_OK)
        return ref_rc;
    st_arena arena;
    st_arena_init(&arena, 0);
    eng_model_info info;
    st_error err = { 0 };
    int rc;
    if (eng_inspect_file(model_path, &arena, &info, &err) != ST_OK)
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    else if (as_json)
        rc = print_json(verb, pos[0], &info);
    else {
        print_text(pos[0], &info);
        rc = CLI_EXIT_OK;
    }
    st_arena_free(&arena);
    return rc;
}
