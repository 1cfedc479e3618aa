/* registry.c - the registry verbs besides push and the deployment verbs
 * (deploy.c): `models`, `show`, `alias`, `rm`, `fsck`, and model
 * references (NAME@VERSION, NAME@ALIAS) wherever a verb takes a MODEL
 * argument. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "cli/cli.h"
#include "json/json.h"
#include "registry/registry.h"

int cli_model_path(const cli_verb *verb, const char *arg, char *out, size_t cap)
{
    st_error err = { 0 };
    reg_ref ref;
    /* A file wins; a name with '/' can only be a path (names refuse '/'). */
    if (access(arg, F_OK) == 0 || strchr(arg, '/') ||
        reg_parse_ref(st_str_c(arg), &ref, &err) != ST_OK) {
        if ((size_t)snprintf(out, cap, "%s", arg) >= cap)
            return cli_fail(verb, "path too long: %s", arg);
        return CLI_EXIT_OK;
    }
    reg_store *reg = NULL;
    if (reg_open(NULL, REG_OPEN_EXISTING, &reg, &err) == ST_OK &&
        reg_resolve(reg, st_str_c(arg), out, cap, &err) == ST_OK) {
        reg_close(reg);
        return CLI_EXIT_OK;
    }
    reg_close(reg);
    return cli_fail(verb, "%s: no such file, and %s", arg, st_error_msg(&err));
}

int cli_open_registry(const cli_verb *verb, reg_store **reg)
{
    st_error err = { 0 };
    if (reg_open(NULL, REG_OPEN_EXISTING, reg, &err) != ST_OK)
        return cli_fail(verb, "%s", st_error_msg(&err));
    return CLI_EXIT_OK;
}

int cli_print_json_doc(const cli_verb *verb, st_status st, st_buf *out)
{
    int rc = CLI_EXIT_OK;
    if (st == ST_OK)
        printf("%.*s\n", (int)out->len, (const char *)out->data);
    else
        rc = cli_fail(verb, "out of memory");
    st_buf_free(out);
    return rc;
}

int cli_print_json(const cli_verb *verb, st_buf *out, json_writer *w)
{
    return cli_print_json_doc(verb, json_writer_finish(w) == ST_OK ? ST_OK : ST_ENOMEM, out);
}

/* ---- text of one version ---------------------------------------------------- */

static void print_version(const reg_version *v)
{
    printf("%s@%lld\n", v->model, (long long)v->version);
    printf("  sha256     %s\n", v->sha256);
    printf("  size       %lld bytes\n", (long long)v->size_bytes);
    printf("  format     %s (%s)\n", v->format, v->file_name);
    printf("  created    %s by %s\n", v->created_at, v->created_by);
    printf("  aliases   ");
    for (size_t i = 0; i < v->n_aliases; i++)
        printf(" %s", v->aliases[i]);
    printf("%s\n", v->n_aliases ? "" : " -");
    printf("  metrics   ");
    for (size_t i = 0; i < v->n_metrics; i++) {
        char num[JSON_NUMBER_MAX_CHARS];
        size_t len = json_format_double(v->metrics[i].value, num);
        printf(" %s=%.*s", v->metrics[i].key, (int)len, num);
    }
    printf("%s\n", v->n_metrics ? "" : " -");
    printf("  params    ");
    for (size_t i = 0; i < v->n_params; i++)
        printf(" %s=%s", v->params[i].key, v->params[i].value);
    printf("%s\n", v->n_params ? "" : " -");
    printf("  tags      ");
    for (size_t i = 0; i < v->n_tags; i++)
        printf(" %s=%s", v->tags[i].key, v->tags[i].value);
    printf("%s\n", v->n_tags ? "" : " -");
    const reg_lineage *l = &v->lineage;
    printf("  source     %s", l->source_path);
    if (l->source_commit[0])
        printf(" (git %s)", l->source_commit);
    printf("\n");
    if (l->has_data) {
        printf("  data       %s (%lld bytes, sha256 %s)\n", l->data_path, (long long)l->data_bytes,
               l->data_sha256);
        printf("  schema     %s\n", l->data_schema);
    }
}

/* ---- models ---------------------------------------------------------------- */

int cli_models_run(const cli_verb *verb, int argc, char **argv)
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
    st_error err = { 0 };
    if (npos && reg_check_name(st_str_c(pos[0]), false, &err) != ST_OK)
        return cli_usage_error(verb, "%s", st_error_msg(&err));
    reg_store *reg;
    int rc = cli_open_registry(verb, &reg);
    if (rc != CLI_EXIT_OK)
        return rc;
    st_arena arena;
    st_arena_init(&arena, 0);
    st_buf out = { 0 };
    if (npos) {
        reg_version *versions;
        size_t n;
        if (reg_list_versions(reg, st_str_c(pos[0]), &arena, &versions, &n, &err) != ST_OK) {
            rc = cli_fail(verb, "%s", st_error_msg(&err));
        } else if (as_json) {
            rc = cli_print_json_doc(verb, reg_json_model_versions(&out, st_str_c(pos[0]), versions, n), &out);
        } else if (n == 0) {
            printf("%s has no versions left\n", pos[0]);
        } else {
            printf("%-8s %-24s %12s  %-9s %-20s %s\n", "VERSION", "CREATED", "BYTES", "FORMAT", "ALIASES",
                   "METRICS");
            for (size_t i = 0; i < n; i++) {
                const reg_version *v = &versions[i];
                char aliases[256] = "-", metrics[256] = "-";
                size_t len = 0;
                for (size_t a = 0; a < v->n_aliases && len < sizeof aliases; a++)
                    len += (size_t)snprintf(aliases + len, sizeof aliases - len, "%s%s", a ? "," : "",
                                            v->aliases[a]);
                len = 0;
                for (size_t m = 0; m < v->n_metrics && len < sizeof metrics; m++) {
                    char num[JSON_NUMBER_MAX_CHARS];
                    size_t nlen = json_format_double(v->metrics[m].value, num);
                    len += (size_t)snprintf(metrics + len, sizeof metrics - len, "%s%s=%.*s", m ? " " : "",
                                            v->metrics[m].key, (int)nlen, num);
                }
                printf("%-8lld %-24s %12lld  %-9s %-20s %s\n", (long long)v->version, v->created_at,
                       (long long)v->size_bytes, v->format, aliases, metrics);
            }
        }
    } else {
        reg_model *models;
        size_t n;
        if (reg_list_models(reg, &arena, &models, &n, &err) != ST_OK) {
            rc = cli_fail(verb, "%s", st_error_msg(&err));
        } else if (as_json) {
            rc = cli_print_json_doc(verb, reg_json_models(&out, models, n), &out);
        } else if (n == 0) {
            printf("no models yet; register one with 'stratus push MODEL --name NAME'\n");
        } else {
            printf("%-24s %8s %7s  %s\n", "NAME", "VERSIONS", "LATEST", "ALIASES");
            for (size_t i = 0; i < n; i++) {
                printf("%-24s %8lld %7lld  ", models[i].name, (long long)models[i].n_versions,
                       (long long)models[i].latest_version);
                for (size_t a = 0; a < models[i].n_aliases; a++)
                    printf("%s%s->%lld", a ? ", " : "", models[i].aliases[a].alias,
                           (long long)models[i].aliases[a].version);
                printf("%s\n", models[i].n_aliases ? "" : "-");
            }
        }
    }
    st_buf_free(&out);
    st_arena_free(&arena);
    reg_close(reg);
    return rc;
}

/* Parses flags and exactly one reference argument (`need` says what is
 * expected when it is missing).  CLI_EXIT_OK, or the usage error's code. */
static int parse_ref_arg(const cli_verb *verb, const cli_flag *flags, int argc, char **argv,
                         const char *need, const char **text, reg_ref *ref)
{
    const char *pos[1];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 1, &npos))
        return CLI_EXIT_USAGE;
    if (npos != 1)
        return cli_usage_error(verb, "needs %s", need);
    st_error err = { 0 };
    if (reg_parse_ref(st_str_c(pos[0]), ref, &err) != ST_OK)
        return cli_usage_error(verb, "%s", st_error_msg(&err));
    *text = pos[0];
    return CLI_EXIT_OK;
}

/* ---- show ------------------------------------------------------------------ */

int cli_show_run(const cli_verb *verb, int argc, char **argv)
{
    bool as_json = false;
    const cli_flag flags[] = {
        { "--json", CLI_BOOL, &as_json, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *text;
    reg_ref ref;
    int rc = parse_ref_arg(verb, flags, argc, argv, "NAME, NAME@VERSION or NAME@ALIAS", &text, &ref);
    if (rc != CLI_EXIT_OK)
        return rc;
    st_error err = { 0 };
    reg_store *reg;
    rc = cli_open_registry(verb, &reg);
    if (rc != CLI_EXIT_OK)
        return rc;
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_version v;
    if (reg_get(reg, st_str_c(text), &arena, &v, &err) != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    } else if (as_json) {
        st_buf out = { 0 };
        rc = cli_print_json_doc(verb, reg_json_version(&out, &v), &out);
    } else {
        print_version(&v);
    }
    st_arena_free(&arena);
    reg_close(reg);
    return rc;
}

/* ---- alias ----------------------------------------------------------------- */

/* `stratus alias NAME --delete ALIAS` */
static int alias_delete(const cli_verb *verb, const char *name, const char *alias)
{
    st_error err = { 0 };
    if (reg_check_name(st_str_c(name), false, &err) != ST_OK ||
        reg_check_name(st_str_c(alias), true, &err) != ST_OK)
        return cli_usage_error(verb, "%s", st_error_msg(&err));
    reg_store *reg;
    int rc = cli_open_registry(verb, &reg);
    if (rc != CLI_EXIT_OK)
        return rc;
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_version before;
    char ref[REG_NAME_MAX * 2 + 8];
    snprintf(ref, sizeof ref, "%s@%s", name, alias);
    bool had_before = reg_get(reg, st_str_c(ref), &arena, &before, NULL) == ST_OK;
    if (reg_remove_alias(reg, st_str_c(name), st_str_c(alias), &err) != ST_OK)
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    else if (had_before)
        printf("removed alias %s (was %lld)\n", ref, (long long)before.version);
    else
        printf("removed alias %s\n", ref);
    st_arena_free(&arena);
    reg_close(reg);
    return rc;
}

int cli_alias_run(const cli_verb *verb, int argc, char **argv)
{
    const char *to_delete = NULL;
    const cli_flag flags[] = {
        { "--delete", CLI_STRING, &to_delete, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[2];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 2, &npos))
        return CLI_EXIT_USAGE;
    if (to_delete) {
        if (npos != 1)
            return cli_usage_error(verb, "--delete ALIAS takes the model NAME only");
        return alias_delete(verb, pos[0], to_delete);
    }
    if (npos != 2)
        return cli_usage_error(verb, "needs NAME@VERSION and an alias");
    st_error err = { 0 };
    reg_ref ref;
    if (reg_parse_ref(st_str_c(pos[0]), &ref, &err) != ST_OK ||
        reg_check_name(st_str_c(pos[1]), true, &err) != ST_OK)
        return cli_usage_error(verb, "%s", st_error_msg(&err));
    if (!ref.version && !ref.alias.len)
        return cli_usage_error(verb, "'%s' names no version; write NAME@VERSION (or NAME@ALIAS)", pos[0]);
    reg_store *reg;
    int rc = cli_open_registry(verb, &reg);
    if (rc != CLI_EXIT_OK)
        return rc;
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_version target, before;
    char old[REG_NAME_MAX * 2 + 8];
    snprintf(old, sizeof old, "%.*s@%s", ST_STR_FMT(ref.name), pos[1]);
    bool had_before = reg_get(reg, st_str_c(old), &arena, &before, NULL) == ST_OK;
    if (reg_get(reg, st_str_c(pos[0]), &arena, &target, &err) != ST_OK ||
        reg_set_alias(reg, ref.name, target.version, st_str_c(pos[1]), &err) != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    } else if (had_before && before.version != target.version) {
        printf("alias %s -> %lld (was %lld)\n", old, (long long)target.version, (long long)before.version);
    } else {
        printf("alias %s -> %lld\n", old, (long long)target.version);
    }
    st_arena_free(&arena);
    reg_close(reg);
    return rc;
}

/* ---- rm -------------------------------------------------------------------- */

int cli_rm_run(const cli_verb *verb, int argc, char **argv)
{
    bool force = false;
    const cli_flag flags[] = {
        { "--force", CLI_BOOL, &force, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *text;
    reg_ref ref;
    int rc = parse_ref_arg(verb, flags, argc, argv, "NAME@VERSION", &text, &ref);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (!ref.version)
        return cli_usage_error(verb, "'%s' has no version number; rm takes NAME@VERSION so that "
                                     "nothing is removed by mistake", text);
    st_error err = { 0 };
    reg_store *reg;
    rc = cli_open_registry(verb, &reg);
    if (rc != CLI_EXIT_OK)
        return rc;
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_version v;
    reg_deployment before, after;
    bool had = reg_get(reg, st_str_c(text), &arena, &v, NULL) == ST_OK;
    bool was_deployed = reg_deploy_get(reg, ref.name, &arena, &before, NULL) == ST_OK;
    if (reg_remove_version(reg, ref.name, ref.version, force, &err) != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    } else {
        printf("removed %s", text);
        for (size_t i = 0; had && i < v.n_aliases; i++)
            printf("%s%s", i ? ", " : " (and its alias ", v.aliases[i]);
        printf("%s\n", had && v.n_aliases ? ")" : "");
        /* --force may have changed the deployment: say how. */
        bool is_deployed = reg_deploy_get(reg, ref.name, &arena, &after, NULL) == ST_OK;
        if (was_deployed && !is_deployed) {
            printf("removed the deployment of %.*s (its stable version)\n", ST_STR_FMT(ref.name));
        } else if (was_deployed && after.revision != before.revision) {
            printf("deployment now ");
            cli_print_deployment(&after);
        }
    }
    st_arena_free(&arena);
    reg_close(reg);
    return rc;
}

/* ---- fsck ------------------------------------------------------------------ */

typedef struct fsck_out {
    bool as_json;
    json_writer *w;
} fsck_out;

static void on_issue(void *ctx, const reg_fsck_issue *i)
{
    fsck_out *o = ctx;
    if (!o->as_json) {
        printf("%-7s %s\n", i->is_damage ? "DAMAGE" : i->was_removed ? "removed" : "note", i->message);
        return;
    }
    json_writer *w = o->w;
    json_write_object_begin(w);
    json_write_key(w, ST_STR("kind"));
    json_write_string(w, st_str_c(reg_fsck_kind_name(i->kind)));
    json_write_key(w, ST_STR("damage"));
    json_write_bool(w, i->is_damage);
    json_write_key(w, ST_STR("removed"));
    json_write_bool(w, i->was_removed);
    json_write_key(w, ST_STR("path"));
    json_write_string(w, st_str_c(i->path));
    json_write_key(w, ST_STR("message"));
    json_write_string(w, st_str_c(i->message));
    json_write_object_end(w);
}

int cli_fsck_run(const cli_verb *verb, int argc, char **argv)
{
    bool gc = false, as_json = false;
    const cli_flag flags[] = {
        { "--gc", CLI_BOOL, &gc, 0, 0 },
        { "--json", CLI_BOOL, &as_json, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[1];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 0, &npos))
        return CLI_EXIT_USAGE;
    reg_store *reg;
    int rc = cli_open_registry(verb, &reg);
    if (rc != CLI_EXIT_OK)
        return rc;
    st_buf out = { 0 };
    json_writer w;
    json_writer_init(&w, &out, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("issues"));
    json_write_array_begin(&w);
    fsck_out ctx = { as_json, &w };
    reg_fsck_report report;
    st_error err = { 0 };
    st_status s = reg_fsck(reg, gc, on_issue, &ctx, &report, &err);
    reg_close(reg);
    if (s != ST_OK) {
        st_buf_free(&out);
        return cli_fail(verb, "%s", st_error_msg(&err));
    }
    if (as_json) {
        json_write_array_end(&w);
        json_write_key(&w, ST_STR("ok"));
        json_write_bool(&w, report.damaged == 0);
        json_write_key(&w, ST_STR("versions"));
        json_write_uint64(&w, report.versions);
        json_write_key(&w, ST_STR("blobs_verified"));
        json_write_uint64(&w, report.blobs_verified);
        json_write_key(&w, ST_STR("bytes_hashed"));
        json_write_uint64(&w, report.bytes_hashed);
        json_write_key(&w, ST_STR("damaged"));
        json_write_uint64(&w, report.damaged);
        json_write_key(&w, ST_STR("removed"));
        json_write_uint64(&w, report.removed);
        json_write_object_end(&w);
        rc = cli_print_json(verb, &out, &w);
    } else {
        st_buf_free(&out);
        printf("checked %zu version%s, %zu blob%s (%llu bytes hashed): %s\n", report.versions,
               report.versions == 1 ? "" : "s", report.blobs_verified,
               report.blobs_verified == 1 ? "" : "s", (unsigned long long)report.bytes_hashed,
               report.damaged ? "DAMAGED" : "ok");
        if (report.damaged)
            printf("%zu problem%s; versions with a damaged or missing blob cannot be served: push "
                   "them again, or remove them with 'stratus rm NAME@VERSION --force'\n",
                   report.damaged, report.damaged == 1 ? "" : "s");
    }
    if (rc == CLI_EXIT_OK && report.damaged)
        rc = CLI_EXIT_FAIL;
    return rc;
}
