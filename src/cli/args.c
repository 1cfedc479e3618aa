/* args.c - flag parsing shared by every verb, with "did you mean" hints. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "cli/cli.h"

static void cli_vprint(const cli_verb *verb, const char *tag, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (verb)
        fprintf(stderr, "stratus %s: %s%s\n", verb->name, tag, msg);
    else
        fprintf(stderr, "stratus: %s%s\n", tag, msg);
}

int cli_usage_error(const cli_verb *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vprint(verb, "", fmt, ap);
    va_end(ap);
    if (verb)
        fprintf(stderr, "usage: %s\nrun 'stratus help %s' for details\n", verb->usage, verb->name);
    else
        fprintf(stderr, "run 'stratus help' for the list of verbs\n");
    return CLI_EXIT_USAGE;
}

int cli_fail(const cli_verb *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vprint(verb, "error: ", fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

/* The flag closest to `name` by edit distance, or NULL when none is close. */
static const cli_flag *closest_flag(const cli_flag *flags, st_str name)
{
    const cli_flag *best = NULL;
    size_t best_d = 4;
    for (const cli_flag *f = flags; f && f->name; f++) {
        size_t d = st_str_edit_distance(name, st_str_c(f->name), 8);
        if (d < best_d) {
            best_d = d;
            best = f;
        }
    }
    return best;
}

static bool parse_long(const char *text, long *out)
{
    if (!text || !*text)
        return false;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *text, double *out)
{
    if (!text || !*text)
        return false;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || v != v)
        return false;
    *out = v;
    return true;
}

static bool set_flag(const cli_verb *verb, const cli_flag *f, const char *value)
{
    switch (f->kind) {
    case CLI_BOOL:
        *(bool *)f->dest = true;
        return true;
    case CLI_STRING:
        *(const char **)f->dest = value;
        return true;
    case CLI_INT: {
        long v;
        if (!parse_long(value, &v)) {
            cli_usage_error(verb, "%s expects a whole number, got '%s'", f->name, value);
            return false;
        }
        if ((f->min || f->max) && (v < f->min || v > f->max)) {
            cli_usage_error(verb, "%s must be between %ld and %ld, got %ld", f->name, f->min,
                            f->max, v);
            return false;
        }
        *(long *)f->dest = v;
        return true;
    }
    case CLI_DOUBLE: {
        double v;
        if (!parse_double(value, &v) || v < 0) {
            cli_usage_error(verb, "%s expects a non-negative number, got '%s'", f->name, value);
            return false;
        }
        *(double *)f->dest = v;
        return true;
    }
    case CLI_MULTI: {
        cli_multi *m = f->dest;
        if (m->count == sizeof m->values / sizeof m->values[0]) {
            cli_usage_error(verb, "%s given too many times (at most %zu)", f->name,
                            sizeof m->values / sizeof m->values[0]);
            return false;
        }
        m->values[m->count++] = value;
        return true;
    }
    }
    return false;
}

bool cli_parse_flags(const cli_verb *verb, const cli_flag *flags, int argc, char **argv,
                     const char **positional, size_t max_positional, size_t *n_positional)
{
    size_t npos = 0;
    bool flags_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (flags_done || arg[0] != '-' || arg[1] == '\0') {
            if (npos == max_positional) {
                cli_usage_error(verb, "unexpected argument '%s'", arg);
                return false;
            }
            positional[npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            flags_done = true;
            continue;
        }
        const char *eq = strchr(arg, '=');
        st_str name = eq ? st_str_make(arg, (size_t)(eq - arg)) : st_str_c(arg);
        const cli_flag *flag = NULL;
        for (const cli_flag *f = flags; f && f->name; f++) {
            if (st_str_eq_c(name, f->name)) {
                flag = f;
                break;
            }
        }
        if (!flag) {
            const cli_flag *near = closest_flag(flags, name);
            if (near)
                cli_usage_error(verb, "unknown flag '%.*s'; did you mean '%s'?", ST_STR_FMT(name),
                                near->name);
            else
                cli_usage_error(verb, "unknown flag '%.*s'", ST_STR_FMT(name));
            return false;
        }
        const char *value = NULL;
        if (flag->kind == CLI_BOOL) {
            if (eq) {
                cli_usage_error(verb, "%s takes no value", flag->name);
                return false;
            }
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            cli_usage_error(verb, "%s needs a value", flag->name);
            return false;
        }
        if (!set_flag(verb, flag, value))
            return false;
    }
    *n_positional = npos;
    return true;
}
