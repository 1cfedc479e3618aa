/* push.c - `stratus push`: check that a model loads, then register it as
 * the next version of a named model (blob, metrics, params, tags, lineage,
 * alias), from a model file or an MLflow model folder. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "engine/engine.h"
#include "json/json.h"
#include "registry/registry.h"

/* Splits every "KEY=VALUE" of a repeated flag into kvs (pointers into
 * argv, which is writable).  Usage error when one has no '=' or no key. */
static int split_kvs(const cli_verb *verb, const char *flag, const cli_multi *m, reg_kv *kvs,
                     bool is_number)
{
    for (size_t i = 0; i < m->count; i++) {
        char *text = (char *)m->values[i];
        char *eq = strchr(text, '=');
        if (!eq || eq == text)
            return cli_usage_error(verb, "%s expects KEY=VALUE, got '%s'", flag, text);
        *eq = '\0';
        kvs[i] = (reg_kv){ text, eq + 1 };
        if (is_number) {
            char *end;
            errno = 0;
            double v = strtod(eq + 1, &end);
            if (!eq[1] || *end || errno || v != v)
                return cli_usage_error(verb, "%s %s=%s: the value must be a number", flag, text, eq + 1);
        }
    }
    return CLI_EXIT_OK;
}

/* The engine tells formats apart by content; the registry records which.
 * The first 4 KiB decide (leading whitespace before a JSON object). */
static const char *sniff_format(const char *path)
{
    uint8_t head[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return "onnx";
    ssize_t n = read(fd, head, sizeof head);
    close(fd);
    return eng_detect_format(head, n > 0 ? (size_t)n : 0);
}

typedef struct push_progress {
    cli_progress bar;
    uint64_t total;
    bool is_started;
} push_progress;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    push_progress *p = ctx;
    if (!p->is_started || p->total != total) {
        if (p->is_started)
            cli_progress_finish(&p->bar);
        cli_progress_start(&p->bar, "hashing", total);
        p->total = total;
        p->is_started = true;
    }
    cli_progress_update(&p->bar, done);
}

int cli_push_run(const cli_verb *verb, int argc, char **argv)
{
    const char *name = NULL, *alias = NULL, *data = NULL;
    cli_multi metrics = { .count = 0 }, params = { .count = 0 }, tags = { .count = 0 };
    bool as_json = false;
    const cli_flag flags[] = {
        { "--name", CLI_STRING, &name, 0, 0 },
        { "--alias", CLI_STRING, &alias, 0, 0 },
        { "--metric", CLI_MULTI, &metrics, 0, 0 },
        { "--param", CLI_MULTI, &params, 0, 0 },
        { "--tag", CLI_MULTI, &tags, 0, 0 },
        { "--data", CLI_STRING, &data, 0, 0 },
        { "--json", CLI_BOOL, &as_json, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[1];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 1, &npos))
        return CLI_EXIT_USAGE;
    if (npos != 1)
        return cli_usage_error(verb, "needs a model file or an MLflow model folder");
    if (!name)
        return cli_usage_error(verb, "needs --name NAME");
    st_error err = { 0 };
    if (reg_check_name(st_str_c(name), false, &err) != ST_OK ||
        (alias && reg_check_name(st_str_c(alias), true, &err) != ST_OK))
        return cli_usage_error(verb, "%s", st_error_msg(&err));
    reg_kv metric_kvs[64], param_kvs[64], tag_kvs[65];
    int rc;
    if ((rc = split_kvs(verb, "--metric", &metrics, metric_kvs, true)) != CLI_EXIT_OK ||
        (rc = split_kvs(verb, "--param", &params, param_kvs, false)) != CLI_EXIT_OK ||
        (rc = split_kvs(verb, "--tag", &tags, tag_kvs, false)) != CLI_EXIT_OK)
        return rc;

    /* A folder is an MLflow model: its MLmodel names the flavour and file. */
    const char *path = pos[0];
    char model_file[REG_PATH_MAX];
    const char *format;
    size_t n_tags = tags.count;
    reg_mlmodel mlmodel;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cli_fail(verb, "cannot read %s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        char mlpath[REG_PATH_MAX];
        snprintf(mlpath, sizeof mlpath, "%s/MLmodel", path);
        st_buf text = { 0 };
        if (st_file_read_all(mlpath, &text, 1u << 20, &err) != ST_OK) {
            st_buf_free(&text);
            if (access(mlpath, F_OK) != 0)
                return cli_fail(verb, "%s is a folder without an MLmodel file; push a model file "
                                      "or an MLflow model folder", path);
            return cli_fail(verb, "%s", st_error_msg(&err));
        }
        st_status s = reg_mlmodel_parse(text.data, text.len, &mlmodel, &err);
        st_buf_free(&text);
        if (s != ST_OK)
            return cli_fail(verb, "%s: %s", mlpath, st_error_msg(&err));
        if ((size_t)snprintf(model_file, sizeof model_file, "%s/%s", path, mlmodel.data) >=
            sizeof model_file)
            return cli_fail(verb, "%s: path too long", mlpath);
        format = mlmodel.flavor;
        bool has_run_tag = false;
        for (size_t i = 0; i < n_tags; i++)
            has_run_tag = has_run_tag || strcmp(tag_kvs[i].key, "mlflow.run_id") == 0;
        if (mlmodel.run_id[0] && !has_run_tag)
            tag_kvs[n_tags++] = (reg_kv){ "mlflow.run_id", mlmodel.run_id };
    } else {
        snprintf(model_file, sizeof model_file, "%s", path);
        format = sniff_format(path);
    }

    /* Loaded once so that nothing unusable gets a version number. */
    eng_model *model = NULL;
    if (eng_load_file(model_file, NULL, &model, &err) != ST_OK)
        return cli_fail(verb, "%s is not a model Stratus can load: %s", model_file, st_error_msg(&err));
    eng_free(model);

    reg_store *reg = NULL;
    if (reg_open(NULL, REG_OPEN_CREATE, &reg, &err) != ST_OK)
        return cli_fail(verb, "%s", st_error_msg(&err));
    push_progress progress = { .is_started = false };
    reg_push_request req = {
        .name = name, .model_path = model_file, .format = format, .source_path = path,
        .alias = alias, .metrics = metric_kvs, .n_metrics = metrics.count,
        .params = param_kvs, .n_params = params.count, .tags = tag_kvs, .n_tags = n_tags,
        .data_path = data, .progress = on_progress, .progress_ctx = &progress,
    };
    int64_t version = 0;
    st_status s = reg_push(reg, &req, &version, &err);
    if (progress.is_started)
        cli_progress_finish(&progress.bar);
    if (s != ST_OK) {
        reg_close(reg);
        return cli_fail(verb, "%s", st_error_msg(&err));
    }
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_version v;
    char ref[REG_NAME_MAX + 32];
    snprintf(ref, sizeof ref, "%s@%lld", name, (long long)version);
    rc = CLI_EXIT_OK;
    if (reg_get(reg, st_str_c(ref), &arena, &v, &err) != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    } else if (as_json) {
        st_buf out = { 0 };
        json_writer w;
        json_writer_init(&w, &out, NULL);
        json_write_object_begin(&w);
        json_write_key(&w, ST_STR("name"));
        json_write_string(&w, st_str_c(name));
        json_write_key(&w, ST_STR("version"));
        json_write_int64(&w, version);
        json_write_key(&w, ST_STR("sha256"));
        json_write_string(&w, st_str_c(v.sha256));
        json_write_key(&w, ST_STR("size_bytes"));
        json_write_int64(&w, v.size_bytes);
        json_write_key(&w, ST_STR("format"));
        json_write_string(&w, st_str_c(v.format));
        json_write_key(&w, ST_STR("alias"));
        if (alias)
            json_write_string(&w, st_str_c(alias));
        else
            json_write_null(&w);
        json_write_object_end(&w);
        if (json_writer_finish(&w) == ST_OK)
            printf("%.*s\n", (int)out.len, (const char *)out.data);
        else
            rc = cli_fail(verb, "out of memory");
        st_buf_free(&out);
    } else {
        printf("pushed %s (%s, %lld bytes, sha256 %.12s)\n", ref, v.format, (long long)v.size_bytes,
               v.sha256);
        if (alias)
            printf("alias %s@%s -> %lld\n", name, alias, (long long)version);
    }
    st_arena_free(&arena);
    reg_close(reg);
    return rc;
}
