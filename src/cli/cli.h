/* cli.h - the stratus command line: verbs, flags, help, exit codes.
 *
 * Every verb is a `cli_verb` in the table of cli.c: a name, a one-line
 * summary, a usage line, a help text and a run function.  A verb parses its
 * own flags with cli_parse_flags(), which rejects unknown flags with the
 * closest valid one as a hint.  Exit codes: 0 success, 1 runtime failure,
 * 2 usage error. */
#ifndef ST_CLI_H
#define ST_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

typedef struct cli_verb {
    const char *name;
    const char *summary; /* one line for `stratus help` */
    const char *usage;   /* "stratus version [--json]" */
    const char *help;    /* paragraphs for `stratus help VERB` */
    int (*run)(const struct cli_verb *verb, int argc, char **argv);
} cli_verb;

typedef enum {
    CLI_BOOL,   /* --json: dest is bool* */
    CLI_STRING, /* --output-dir DIR: dest is const char** */
    CLI_INT,    /* --threads N: dest is long* (decimal, range-checked) */
    CLI_DOUBLE, /* --seconds S: dest is double* */
    CLI_MULTI,  /* --input N=F, repeatable: dest is cli_multi* */
} cli_flag_kind;

/* Values of a repeatable flag, in order. */
typedef struct cli_multi {
    const char *values[64];
    size_t count;
} cli_multi;

typedef struct cli_flag {
    const char *name; /* with dashes: "--json" */
    cli_flag_kind kind;
    void *dest;
    long min, max;    /* for CLI_INT; ignored when min == max == 0 */
} cli_flag;

/* Parses argv[1..argc) of `verb` (argv[0] is the verb name): flags as
 * `--name value` or `--name=value`, `--` ends flags; positional arguments
 * are stored in `positional` (at most max_positional, else usage error).
 * On a usage error prints one line and a hint to stderr and returns false. */
bool cli_parse_flags(const cli_verb *verb, const cli_flag *flags, int argc, char **argv,
                     const char **positional, size_t max_positional, size_t *n_positional);

/* Prints "stratus VERB: MESSAGE" and a hint to run `stratus help VERB`;
 * returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_verb *verb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "stratus VERB: error: MESSAGE"; returns CLI_EXIT_FAIL. */
int cli_fail(const cli_verb *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The verb table and lookup (cli.c). */
const cli_verb *cli_find_verb(const char *name);
int cli_main(int argc, char **argv);

/* Verbs, one file each under src/cli/. */
int cli_help_run(const cli_verb *verb, int argc, char **argv);
int cli_version_run(const cli_verb *verb, int argc, char **argv);
int cli_convert_run(const cli_verb *verb, int argc, char **argv);
int cli_inspect_run(const cli_verb *verb, int argc, char **argv);
int cli_predict_run(const cli_verb *verb, int argc, char **argv);
int cli_bench_run(const cli_verb *verb, int argc, char **argv);
int cli_push_run(const cli_verb *verb, int argc, char **argv);
int cli_models_run(const cli_verb *verb, int argc, char **argv);
int cli_show_run(const cli_verb *verb, int argc, char **argv);
int cli_alias_run(const cli_verb *verb, int argc, char **argv);
int cli_rm_run(const cli_verb *verb, int argc, char **argv);
int cli_fsck_run(const cli_verb *verb, int argc, char **argv);
int cli_deploy_run(const cli_verb *verb, int argc, char **argv);
int cli_deployments_run(const cli_verb *verb, int argc, char **argv);
int cli_promote_run(const cli_verb *verb, int argc, char **argv);
int cli_rollback_run(const cli_verb *verb, int argc, char **argv);
int cli_audit_run(const cli_verb *verb, int argc, char **argv);

/* Registry helpers of the registry verbs (registry.c, deploy.c). */
struct reg_store;
struct reg_deployment;
struct st_buf;
struct json_writer;
/* Opens the registry in STRATUS_HOME; prints the error and returns
 * CLI_EXIT_FAIL when there is none. */
int cli_open_registry(const cli_verb *verb, struct reg_store **reg);
/* Finishes the document of `w`, prints it with a newline and frees `out`. */
int cli_print_json(const cli_verb *verb, struct st_buf *out, struct json_writer *w);
/* Prints a document a reg_json_* writer appended to `out` (`st` its
 * status: out of memory fails) with a newline, and frees `out`. */
int cli_print_json_doc(const cli_verb *verb, st_status st, struct st_buf *out);
/* One line for people: "churn: stable 3 (90%), canary 4 (10%), ...". */
void cli_print_deployment(const struct reg_deployment *d);

/* The MODEL argument of predict, bench and inspect: an existing file (or
 * anything with a '/') is used as is; otherwise it is a registry reference
 * NAME[@VERSION|@ALIAS], resolved to its blob after checking the blob's
 * hash.  Returns CLI_EXIT_OK with the path in out, else prints the error
 * and returns CLI_EXIT_FAIL. */
int cli_model_path(const cli_verb *verb, const char *arg, char *out, size_t cap);
int cli_serve_run(const cli_verb *verb, int argc, char **argv);

struct eng_io;
/* "[batch, 3, 224, 224]" for a declared input or output. */
void cli_io_shape_text(const struct eng_io *io, char *buf, size_t cap);

#endif
