/* cli.c - the verb table, dispatch, global options and `stratus help`. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/str.h"

static const cli_verb verbs[] = {
    {
        "help",
        "show the verbs, or the full help of one verb",
        "stratus help [VERB]",
        "Without an argument lists every verb with a one-line summary.\n"
        "With a verb prints its usage, what it does, its flags and examples.\n",
        cli_help_run,
    },
    {
        "version",
        "print version, git commit, build flags and CPU features",
        "stratus version [--json]",
        "Prints the version of this binary, the git commit it was built from,\n"
        "the compiler and flags used, and the CPU features detected at start-up\n"
        "(these choose the engine's kernels).\n"
        "\n"
        "Flags:\n"
        "  --json    one JSON object: version, commit, compiler, build_flags,\n"
        "            cpu_features (array of strings), cpus\n",
        cli_version_run,
    },
    {
        "convert",
        "convert a tensor between .npy and JSON",
        "stratus convert IN OUT [--dtype T] [--flat]",
        "Converts a tensor from a NumPy .npy file to JSON or back; the format\n"
        "comes from each file's extension.  JSON holds the tensor as nested\n"
        "arrays that follow its shape (the \"data\" of a V2 inference request);\n"
        "floats are written in the shortest form that reads back to the same\n"
        "bits.  .npy files are read zero-copy and written atomically.\n"
        "\n"
        "Flags:\n"
        "  --dtype T   element type when reading JSON (default float32): float16,\n"
        "              float32, float64, int8, int16, int32, int64, uint8, uint16,\n"
        "              uint32, uint64, bool.  Values that do not fit are an error.\n"
        "  --flat      write JSON as one flat array instead of nested arrays\n"
        "\n"
        "Examples:\n"
        "  stratus convert batch.npy batch.json\n"
        "  stratus convert response.json out.npy --dtype float64\n",
        cli_convert_run,
    },
    {
        "inspect",
        "describe a model: inputs, outputs, opsets, operators, parameters",
        "stratus inspect MODEL [--json]",
        "Reads a model without running it and prints its inputs and outputs\n"
        "(types and shapes, symbolic dimensions by name), the opsets it imports,\n"
        "an operator histogram, the parameter count, and every operator this\n"
        "engine cannot run yet.  XGBoost (JSON, UBJSON) and LightGBM (text)\n"
        "models are recognised by content; for them it prints the objective and\n"
        "the number of trees, features and classes.\n"
        "\n"
        "Flags:\n"
        "  --json    one JSON object: path, format, ir_version, producer, opsets,\n"
        "            inputs, outputs (name, dtype, shape), parameters,\n"
        "            parameter_bytes, nodes, operators, unsupported; for tree\n"
        "            models also encoding, objective, trees, tree_nodes,\n"
        "            features, classes\n"
        "\n"
        "Example:\n"
        "  stratus inspect resnet50.onnx --json\n",
        cli_inspect_run,
    },
    {
        "predict",
        "run a model over input files (batch transform), writing .npy outputs",
        "stratus predict MODEL --input NAME=FILE [--input ...] --output-dir DIR [--threads N] [--batch-size N]",
        "Runs MODEL on the given inputs and writes DIR/<output name>.npy for\n"
        "every output of the model.  Inputs are .npy files (mapped, not read\n"
        "into memory) or ONNX TensorProto .pb files.  When every input shares a\n"
        "first dimension that the model leaves dynamic, the rows go through in\n"
        "batches of --batch-size and the outputs are streamed to disk, so files\n"
        "larger than memory work; a progress bar shows on a terminal.  Outputs\n"
        "appear only when the whole run succeeded.\n"
        "\n"
        "Flags:\n"
        "  --input NAME=FILE   an input tensor; NAME may be left out when the\n"
        "                      model has one input (repeat for several)\n"
        "  --output-dir DIR    where the .npy outputs go (created if missing)\n"
        "  --threads N         threads per operator (default 1)\n"
        "  --batch-size N      rows per run (default 256; 0 = all at once)\n"
        "\n"
        "Example:\n"
        "  stratus predict mlp.onnx --input input=x.npy --output-dir out/\n",
        cli_predict_run,
    },
    {
        "bench",
        "measure latency percentiles and throughput of a model",
        "stratus bench MODEL [--batch N] [--threads N] [--seconds S] [--input NAME=FILE] [--dim NAME=N] [--json]",
        "Runs MODEL repeatedly for --seconds after a short warm-up and reports\n"
        "latency percentiles and throughput.  Inputs not given with --input are\n"
        "random values of the declared type and shape; a dynamic first\n"
        "dimension is --batch, other symbolic dimensions come from --dim or are 1.\n"
        "\n"
        "Flags:\n"
        "  --batch N          rows per inference for random inputs (default 1)\n"
        "  --threads N        threads per operator (default 1)\n"
        "  --seconds S        how long to measure (default 3)\n"
        "  --input NAME=FILE  a real input (.npy or .pb) instead of random data\n"
        "  --dim NAME=N       value of a symbolic dimension, e.g. --dim seq=64\n"
        "  --json             one JSON object with p50_us, p90_us, p99_us, min_us,\n"
        "                     mean_us, inferences_per_s, rows_per_s, runs, load_ms\n"
        "\n"
        "Example:\n"
        "  stratus bench cnn.onnx --batch 64 --seconds 5 --json\n",
        cli_bench_run,
    },
};

static const size_t n_verbs = sizeof verbs / sizeof verbs[0];

static const char global_help[] =
    "Global flags (before or after the verb):\n"
    "  --log-format text|json   log lines as plain text (default) or JSON lines\n"
    "  --log-level debug|info|warn|error   minimum level logged (default info)\n";

const cli_verb *cli_find_verb(const char *name)
{
    for (size_t i = 0; i < n_verbs; i++)
        if (strcmp(verbs[i].name, name) == 0)
            return &verbs[i];
    return NULL;
}

static const cli_verb *closest_verb(const char *name)
{
    const cli_verb *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n_verbs; i++) {
        size_t d = st_str_edit_distance(st_str_c(name), st_str_c(verbs[i].name), 8);
        if (d < best_d) {
            best_d = d;
            best = &verbs[i];
        }
    }
    return best;
}

static void print_overview(FILE *out)
{
    fprintf(out,
            "stratus - a self-hosted AI deployment platform in one binary\n"
            "\n"
            "usage: stratus VERB [flags] [args]\n"
            "\n"
            "Verbs:\n");
    for (size_t i = 0; i < n_verbs; i++)
        fprintf(out, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(out, "\n%s\nRun 'stratus help VERB' for the flags and examples of a verb.\n",
            global_help);
}

int cli_help_run(const cli_verb *verb, int argc, char **argv)
{
    const char *pos[1];
    size_t npos = 0;
    static const cli_flag flags[] = { { NULL, CLI_BOOL, NULL, 0, 0 } };
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 1, &npos))
        return CLI_EXIT_USAGE;
    if (npos == 0) {
        print_overview(stdout);
        return CLI_EXIT_OK;
    }
    const cli_verb *target = cli_find_verb(pos[0]);
    if (!target) {
        const cli_verb *near = closest_verb(pos[0]);
        if (near)
            return cli_usage_error(verb, "no verb '%s'; did you mean '%s'?", pos[0], near->name);
        return cli_usage_error(verb, "no verb '%s'", pos[0]);
    }
    printf("usage: %s\n\n%s\n%s", target->usage, target->summary, target->help);
    printf("\n%s", global_help);
    return CLI_EXIT_OK;
}

/* Consumes the global flags wherever they appear before "--", compacting
 * argv in place.  Returns false (after printing) on a bad value. */
static bool take_global_flags(int *argc, char **argv)
{
    int out = 1;
    bool flags_done = false;
    for (int i = 1; i < *argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0)
            flags_done = true;
        const char *value = NULL;
        int which = 0; /* 1 log-format, 2 log-level */
        if (!flags_done) {
            if (strncmp(arg, "--log-format", 12) == 0 && (arg[12] == '=' || arg[12] == '\0'))
                which = 1;
            else if (strncmp(arg, "--log-level", 11) == 0 && (arg[11] == '=' || arg[11] == '\0'))
                which = 2;
        }
        if (!which) {
            argv[out++] = argv[i];
            continue;
        }
        const char *eq = strchr(arg, '=');
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < *argc) {
            value = argv[++i];
        } else {
            cli_usage_error(NULL, "%s needs a value", arg);
            return false;
        }
        if (which == 1) {
            st_log_format fmt;
            if (st_log_parse_format(st_str_c(value), &fmt, NULL) != ST_OK) {
                cli_usage_error(NULL, "--log-format must be 'text' or 'json', got '%s'", value);
                return false;
            }
            st_log_set_format(fmt);
        } else {
            st_log_level level;
            if (st_log_parse_level(st_str_c(value), &level, NULL) != ST_OK) {
                cli_usage_error(NULL,
                                "--log-level must be debug, info, warn or error, got '%s'", value);
                return false;
            }
            st_log_set_level(level);
        }
    }
    *argc = out;
    argv[out] = NULL;
    return true;
}

int cli_main(int argc, char **argv)
{
    if (!take_global_flags(&argc, argv))
        return CLI_EXIT_USAGE;
    if (argc < 2) {
        print_overview(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    else if (strcmp(name, "--version") == 0)
        name = "version";
    const cli_verb *verb = cli_find_verb(name);
    if (!verb) {
        const cli_verb *near = closest_verb(name);
        if (near)
            return cli_usage_error(NULL, "unknown verb '%s'; did you mean '%s'?", name, near->name);
        return cli_usage_error(NULL, "unknown verb '%s'", name);
    }
    /* `stratus VERB --help` is `stratus help VERB`. */
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            char *help_argv[] = { (char *)"help", (char *)verb->name, NULL };
            return cli_help_run(cli_find_verb("help"), 2, help_argv);
        }
    }
    return verb->run(verb, argc - 1, argv + 1);
}
