/* deploy.c - the deployment verbs: `deploy` (set, show, delete a model's
 * traffic policy), `deployments`, `promote`, `rollback`, and `audit`, the
 * registry's change log. */
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "cli/cli.h"
#include "json/json.h"
#include "registry/registry.h"

/* ---- output ---------------------------------------------------------------- */

void cli_print_deployment(const reg_deployment *d)
{
    printf("%s: stable %lld (%g%%)", d->model, (long long)d->stable, 100 - d->canary_percent);
    if (d->canary)
        printf(", canary %lld (%g%%)", (long long)d->canary, d->canary_percent);
    if (d->shadow)
        printf(", shadow %lld", (long long)d->shadow);
    if (d->sticky_header[0])
        printf(", sticky %s", d->sticky_header);
    printf("; rollback when error rate +%.1f pts", d->rule.max_error_rate_increase * 100);
    if (d->rule.max_p99_ratio > 0)
        printf(" or p99 x%.1f", d->rule.max_p99_ratio);
    printf(" over %lld s after %lld requests\n", (long long)d->rule.window_s,
           (long long)d->rule.min_requests);
    printf("  state %s, revision %lld, updated %s by %s", d->state, (long long)d->revision,
           d->updated_at, d->updated_by);
    if (d->previous_stable)
        printf("; previous stable %lld", (long long)d->previous_stable);
    printf("\n");
    if (d->reason[0])
        printf("  reason: %s\n", d->reason);
}

/* Prints one policy as JSON or for people. */
static int show(const cli_verb *verb, const reg_deployment *d, bool as_json)
{
    if (!as_json) {
        cli_print_deployment(d);
        return CLI_EXIT_OK;
    }
    st_buf out = { 0 };
    return cli_print_json_doc(verb, reg_json_deployment(&out, d), &out);
}

/* ---- deploy ---------------------------------------------------------------- */

/* The version number `text` (a number, an alias or "latest") names. */
static int resolve_version(const cli_verb *verb, reg_store *reg, const char *name,
                           const char *flag, const char *text, st_arena *arena, int64_t *out)
{
    *out = 0;
    if (!text)
        return CLI_EXIT_OK;
    char ref[2 * REG_NAME_MAX + 8];
    if ((size_t)snprintf(ref, sizeof ref, "%s@%s", name, text) >= sizeof ref)
        return cli_usage_error(verb, "%s '%s' is too long", flag, text);
    st_error err = { 0 };
    reg_ref parsed;
    if (reg_parse_ref(st_str_c(ref), &parsed, &err) != ST_OK)
        return cli_usage_error(verb, "%s '%s': %s", flag, text, st_error_msg(&err));
    reg_version v;
    if (reg_get(reg, st_str_c(ref), arena, &v, &err) != ST_OK)
        return cli_fail(verb, "%s %s: %s", flag, text, st_error_msg(&err));
    *out = v.version;
    return CLI_EXIT_OK;
}

int cli_deploy_run(const cli_verb *verb, int argc, char **argv)
{
    const char *version = NULL, *canary = NULL, *shadow = NULL, *header = NULL;
    double percent = -1, error_rate = -1, p99_ratio = -1;
    long window_s = 0, min_requests = 0;
    bool as_json = false, is_delete = false;
    const cli_flag flags[] = {
        { "--version", CLI_STRING, &version, 0, 0 },
        { "--canary", CLI_STRING, &canary, 0, 0 },
        { "--percent", CLI_DOUBLE, &percent, 0, 0 },
        { "--shadow", CLI_STRING, &shadow, 0, 0 },
        { "--sticky-header", CLI_STRING, &header, 0, 0 },
        { "--max-error-rate-increase", CLI_DOUBLE, &error_rate, 0, 0 },
        { "--max-p99-ratio", CLI_DOUBLE, &p99_ratio, 0, 0 },
        { "--window", CLI_INT, &window_s, 1, REG_WINDOW_MAX_S },
        { "--min-requests", CLI_INT, &min_requests, 1, REG_MIN_REQUESTS_MAX },
        { "--delete", CLI_BOOL, &is_delete, 0, 0 },
        { "--json", CLI_BOOL, &as_json, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[1];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 1, &npos))
        return CLI_EXIT_USAGE;
    if (npos != 1)
        return cli_usage_error(verb, "needs the model NAME");
    st_error err = { 0 };
    st_str name = st_str_c(pos[0]);
    if (reg_check_name(name, false, &err) != ST_OK)
        return cli_usage_error(verb, "%s", st_error_msg(&err));
    bool is_set = version || canary || shadow || header || percent >= 0 || error_rate >= 0 ||
                  p99_ratio >= 0 || window_s || min_requests;
    if (is_delete && (is_set || as_json))
        return cli_usage_error(verb, "--delete takes no other flag");
    if (is_set && !version)
        return cli_usage_error(verb, "--version V is needed: the stable version that takes the "
                                     "traffic the canary does not");
    if (percent >= 0 && !canary)
        return cli_usage_error(verb, "--percent needs --canary V");
    if (error_rate == 0)
        return cli_usage_error(verb, "--max-error-rate-increase must be more than 0 (a fraction: "
                                     "0.05 is 5 points)");

    reg_store *reg;
    int rc = cli_open_registry(verb, &reg);
    if (rc != CLI_EXIT_OK)
        return rc;
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_deployment d;
    if (is_delete) {
        if (reg_deploy_remove(reg, name, &err) != ST_OK)
            rc = cli_fail(verb, "%s", st_error_msg(&err));
        else
            printf("removed the deployment of %s\n", pos[0]);
    } else if (!is_set) {
        if (reg_deploy_get(reg, name, &arena, &d, &err) != ST_OK)
            rc = cli_fail(verb, "%s", st_error_msg(&err));
        else
            rc = show(verb, &d, as_json);
    } else {
        reg_deployment want = {
            .canary_percent = percent >= 0 ? percent : 0,
            .sticky_header = header,
            .rule = {
                .max_error_rate_increase = error_rate > 0 ? error_rate : 0,
                /* 0 on the command line turns the check off; 0 in `want` is the default. */
                .max_p99_ratio = p99_ratio == 0 ? REG_P99_OFF : p99_ratio > 0 ? p99_ratio : 0,
                .window_s = window_s,
                .min_requests = min_requests,
            },
        };
        if ((rc = resolve_version(verb, reg, pos[0], "--version", version, &arena, &want.stable)) == CLI_EXIT_OK &&
            (rc = resolve_version(verb, reg, pos[0], "--canary", canary, &arena, &want.canary)) == CLI_EXIT_OK &&
            (rc = resolve_version(verb, reg, pos[0], "--shadow", shadow, &arena, &want.shadow)) == CLI_EXIT_OK) {
            if (reg_deploy_set(reg, name, &want, &arena, &d, &err) != ST_OK)
                rc = cli_fail(verb, "%s", st_error_msg(&err));
            else
                rc = show(verb, &d, as_json);
        }
    }
    st_arena_free(&arena);
    reg_close(reg);
    return rc;
}

/* ---- deployments ------------------------------------------------------------- */

int cli_deployments_run(const cli_verb *verb, int argc, char **argv)
{
    bool as_json = false;
    const cli_flag flags[] = {
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
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    reg_deployment *list;
    size_t n;
    if (reg_deploy_list(reg, &arena, &list, &n, &err) != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    } else if (as_json) {
        st_buf out = { 0 };
        rc = cli_print_json_doc(verb, reg_json_deployments(&out, list, n), &out);
    } else if (n == 0) {
        printf("no deployments yet; create one with 'stratus deploy NAME --version N'\n");
    } else {
        for (size_t i = 0; i < n; i++)
            cli_print_deployment(&list[i]);
    }
    st_arena_free(&arena);
    reg_close(reg);
    return rc;
}

/* ---- promote, rollback --------------------------------------------------------- */

/* Shared by promote and rollback: NAME, --json, and for rollback --reason. */
static int change_run(const cli_verb *verb, int argc, char **argv, bool is_rollback)
{
    bool as_json = false;
    const char *reason = NULL;
    const cli_flag flags[] = {
        { "--json", CLI_BOOL, &as_json, 0, 0 },
        { is_rollback ? "--reason" : NULL, CLI_STRING, &reason, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[1];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 1, &npos))
        return CLI_EXIT_USAGE;
    if (npos != 1)
        return cli_usage_error(verb, "needs the model NAME");
    st_error err = { 0 };
    st_str name = st_str_c(pos[0]);
    if (reg_check_name(name, false, &err) != ST_OK)
        return cli_usage_error(verb, "%s", st_error_msg(&err));
    reg_store *reg;
    int rc = cli_open_registry(verb, &reg);
    if (rc != CLI_EXIT_OK)
        return rc;
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_deployment before, after;
    bool had = reg_deploy_get(reg, name, &arena, &before, NULL) == ST_OK;
    st_status s = is_rollback ? reg_deploy_rollback(reg, name, 0, reason, &arena, &after, &err)
                              : reg_deploy_promote(reg, name, &arena, &after, &err);
    if (s != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    } else {
        if (!as_json && had && is_rollback && before.canary)
            printf("rolled back canary %lld; all traffic to %lld\n", (long long)before.canary,
                   (long long)after.stable);
        else if (!as_json && had && is_rollback)
            printf("rolled back stable %lld to %lld\n", (long long)before.stable, (long long)after.stable);
        else if (!as_json && had)
            printf("promoted %lld; was stable %lld\n", (long long)after.stable, (long long)before.stable);
        rc = show(verb, &after, as_json);
    }
    st_arena_free(&arena);
    reg_close(reg);
    return rc;
}

int cli_promote_run(const cli_verb *verb, int argc, char **argv)
{
    return change_run(verb, argc, argv, false);
}

int cli_rollback_run(const cli_verb *verb, int argc, char **argv)
{
    return change_run(verb, argc, argv, true);
}

/* ---- audit ------------------------------------------------------------------- */

int cli_audit_run(const cli_verb *verb, int argc, char **argv)
{
    bool as_json = false;
    long limit = 0;
    const cli_flag flags[] = {
        { "--limit", CLI_INT, &limit, 0, 1000000000 },
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
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    reg_audit_entry *entries;
    size_t n;
    if (reg_list_audit(reg, (size_t)limit, &arena, &entries, &n, &err) != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    } else if (as_json) {
        st_buf out = { 0 };
        rc = cli_print_json_doc(verb, reg_json_audit_log(&out, entries, n), &out);
    } else if (n == 0) {
        printf("the audit log is empty\n");
    } else {
        printf("%-6s %-24s %-16s %-9s %s\n", "ID", "AT", "WHO", "ACTION", "TARGET");
        for (size_t i = 0; i < n; i++)
            printf("%-6lld %-24s %-16s %-9s %s\n", (long long)entries[i].id, entries[i].at,
                   entries[i].who, entries[i].action, entries[i].target);
    }
    st_arena_free(&arena);
    reg_close(reg);
    return rc;
}
