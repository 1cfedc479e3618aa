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
        "MODEL is a file, or a registered model: NAME@VERSION, NAME@ALIAS or NAME\n"
        "(the latest), whose file is checked against its hash first.\n"
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
        "appear only when the whole run succeeded.  An output that is a\n"
        "sequence of maps (ONNX-ML ZipMap: class -> probability per row) is\n"
        "written as DIR/<name>.npy, an [N, classes] array in the maps' key\n"
        "order, plus DIR/<name>.keys.json, the keys as a JSON array.  String\n"
        "outputs (class labels), which .npy cannot hold, are written as\n"
        "DIR/<name>.json: nested JSON arrays following the output's shape.\n"
        "\n"
        "MODEL is a file, or a registered model: NAME@VERSION, NAME@ALIAS or NAME\n"
        "(the latest), whose file is checked against its hash first.\n"
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
        "MODEL is a file, or a registered model: NAME@VERSION, NAME@ALIAS or NAME\n"
        "(the latest), whose file is checked against its hash first.\n"
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
    {
        "push",
        "register a new version of a model in the registry",
        "stratus push PATH --name NAME [--alias A] [--metric K=V]... [--param K=V]... [--tag K=V]... [--data FILE] [--json]",
        "Loads the model at PATH once to check it, then registers it as the next\n"
        "version of NAME (1, 2, 3, ...; a number is never reused) in the registry\n"
        "in STRATUS_HOME (default ./.stratus).  The file is stored once per\n"
        "content (SHA-256) under blobs/sha256/; the version records its metrics,\n"
        "params, tags and lineage: who pushed it and when, the git commit of\n"
        "PATH's folder when it is in a git work tree, and with --data the hash\n"
        "and schema (CSV columns and rows, .npy dtype and shape) of the training\n"
        "data.  Every change is one transaction: a failed or killed push leaves\n"
        "the registry as it was.  Several pushes may run at once.\n"
        "\n"
        "PATH is an ONNX model, an XGBoost or LightGBM model file when the engine\n"
        "loads that format, or an MLflow model folder (an MLmodel file with an\n"
        "onnx, xgboost or lightgbm flavour; its run_id becomes the tag\n"
        "mlflow.run_id).\n"
        "\n"
        "Names and aliases: 1 to 128 bytes, no '/', '\\', '@', '..' or control\n"
        "characters; an alias is not a number and not 'latest'.\n"
        "\n"
        "Flags:\n"
        "  --name NAME     the model this is a version of (created on first push)\n"
        "  --alias A       point alias A (staging, production, ...) at the new version\n"
        "  --metric K=V    a numeric metric, e.g. --metric auc=0.91 (repeatable)\n"
        "  --param K=V     a training parameter (repeatable)\n"
        "  --tag K=V       a free-form tag (repeatable)\n"
        "  --data FILE     the training data, recorded by hash and schema\n"
        "  --json          print {name, version, sha256, size_bytes, format, alias}\n"
        "\n"
        "Examples:\n"
        "  stratus push churn.onnx --name churn --alias staging --metric auc=0.91 --data train.csv\n"
        "  stratus push mlruns/0/abc/artifacts/model --name churn\n",
        cli_push_run,
    },
    {
        "models",
        "list registered models, or the versions of one",
        "stratus models [NAME] [--json]",
        "Without NAME lists every model with its number of versions, latest\n"
        "version and aliases.  With NAME lists that model's versions: number,\n"
        "creation time, size, format, aliases and metrics.\n"
        "\n"
        "Flags:\n"
        "  --json    {\"models\": [{name, versions, latest, created_at, aliases}]}, or\n"
        "            with NAME {\"name\", \"versions\": [as 'stratus show --json']}\n",
        cli_models_run,
    },
    {
        "show",
        "everything recorded about one model version",
        "stratus show NAME[@VERSION|@ALIAS] [--json]",
        "Prints a version's blob hash and size, format, who pushed it and when,\n"
        "its aliases, metrics, params, tags and lineage (source path and git\n"
        "commit, training data hash and schema).  NAME alone (or NAME@latest)\n"
        "is the newest version.\n"
        "\n"
        "Flags:\n"
        "  --json    one object: name, version, sha256, size_bytes, format,\n"
        "            file_name, created_at, created_by, aliases, metrics, params,\n"
        "            tags, lineage {source_path, source_commit, user, created_at,\n"
        "            data {path, sha256, size_bytes, schema} or null}\n"
        "\n"
        "Example:\n"
        "  stratus show churn@production\n",
        cli_show_run,
    },
    {
        "alias",
        "point an alias (staging, production, ...) at a model version, or remove one",
        "stratus alias NAME@VERSION ALIAS | stratus alias NAME --delete ALIAS",
        "Points ALIAS of model NAME at VERSION, moving it when it pointed\n"
        "elsewhere; the move is recorded in the audit log.  NAME@OTHER_ALIAS\n"
        "works too: 'stratus alias churn@staging production' promotes whatever\n"
        "staging points to.  Everywhere a model is accepted, NAME@ALIAS then\n"
        "names that version.\n"
        "\n"
        "Flags:\n"
        "  --delete ALIAS   remove ALIAS of model NAME (the version stays)\n"
        "\n"
        "Examples:\n"
        "  stratus alias churn@3 production\n"
        "  stratus alias churn@staging production\n"
        "  stratus alias churn --delete staging\n",
        cli_alias_run,
    },
    {
        "rm",
        "remove a model version",
        "stratus rm NAME@VERSION [--force]",
        "Removes one version with its metrics, params, tags and lineage; its\n"
        "blob is deleted when no other version has the same content.  A version\n"
        "an alias points to, or that the model's deployment uses as its stable\n"
        "version, canary or shadow, is refused unless --force.  Version numbers\n"
        "are not reused by later pushes.\n"
        "\n"
        "Flags:\n"
        "  --force   also remove the aliases that point to the version, and\n"
        "            change the deployment: a canary or shadow is dropped (all\n"
        "            traffic to the stable version), a stable version removes\n"
        "            the deployment\n"
        "\n"
        "Example:\n"
        "  stratus rm churn@2\n",
        cli_rm_run,
    },
    {
        "fsck",
        "check the registry: database, every blob's hash, every reference",
        "stratus fsck [--gc] [--json]",
        "Checks the registry database (SQLite integrity and foreign keys), that\n"
        "every version's blob exists with the registered size and SHA-256, and\n"
        "that every alias points at a version of its own model.  Lists files in\n"
        "the blob folder that no version names: orphans left by an interrupted\n"
        "push are harmless, and --gc removes them.  Exits 1 when anything is\n"
        "damaged, 0 when the registry is consistent.\n"
        "\n"
        "Flags:\n"
        "  --gc      remove orphan blobs and temporary files of finished processes\n"
        "  --json    {issues: [{kind, damage, removed, path, message}], ok,\n"
        "            versions, blobs_verified, bytes_hashed, damaged, removed}\n",
        cli_fsck_run,
    },
    {
        "deploy",
        "set, show or delete a model's traffic policy (stable, canary, shadow)",
        "stratus deploy NAME [--version V [--canary V2 --percent P] [--shadow V3] [--sticky-header H] [rule flags]] [--delete] [--json]",
        "With --version, sets the deployment of model NAME: the stable version\n"
        "takes all traffic, or all but --percent of it when a --canary is given;\n"
        "a --shadow version gets a copy of every request, its answers compared\n"
        "and logged but never returned; with --sticky-header, requests with the\n"
        "same value of that header always go to the same version.  V, V2 and V3\n"
        "are version numbers or aliases (resolved to numbers now).  Every\n"
        "deploy sets the whole policy: flags left out take their defaults.\n"
        "'stratus serve' (serving the registry) follows changes live.\n"
        "\n"
        "While a canary serves, it is rolled back automatically when, over the\n"
        "last --window seconds and once it has answered --min-requests, its\n"
        "error rate exceeds the stable version's by more than\n"
        "--max-error-rate-increase, or its p99 latency exceeds --max-p99-ratio\n"
        "times the stable version's.\n"
        "\n"
        "Without --version, prints the deployment; with --delete, removes it.\n"
        "Every change is recorded in the audit log ('stratus audit').\n"
        "\n"
        "Flags:\n"
        "  --version V                   the stable version\n"
        "  --canary V2                   a version to try on a share of traffic\n"
        "  --percent P                   the canary's share, more than 0 and at most 100\n"
        "  --shadow V3                   a version that gets a copy of every request\n"
        "  --sticky-header H             pin each value of request header H to one version\n"
        "  --max-error-rate-increase X   a fraction, 0 < X <= 1 (default 0.05: 5 points)\n"
        "  --max-p99-ratio R             1 to 1000, or 0 = not checked (default 2)\n"
        "  --window SECONDS              1 to 86400 (default 60)\n"
        "  --min-requests N              canary answers before judging (default 20)\n"
        "  --delete                      remove the deployment\n"
        "  --json                        print the policy as JSON: model, stable,\n"
        "                                canary, canary_percent, shadow, sticky_header,\n"
        "                                rollback_rule, previous_stable, state,\n"
        "                                reason, updated_at, updated_by, revision\n"
        "\n"
        "Examples:\n"
        "  stratus deploy churn --version 3\n"
        "  stratus deploy churn --version production --canary 4 --percent 10 --sticky-header X-User\n"
        "  stratus deploy churn\n"
        "  stratus deploy churn --delete\n",
        cli_deploy_run,
    },
    {
        "deployments",
        "list every model's traffic policy",
        "stratus deployments [--json]",
        "Prints the deployment of every model that has one, as 'stratus deploy\n"
        "NAME' does.\n"
        "\n"
        "Flags:\n"
        "  --json    {\"deployments\": [as 'stratus deploy NAME --json']}\n",
        cli_deployments_run,
    },
    {
        "promote",
        "make a model's canary its stable version",
        "stratus promote NAME [--json]",
        "The canary becomes the stable version and takes all traffic; the old\n"
        "stable version is kept as the previous one, so 'stratus rollback NAME'\n"
        "undoes the promotion.  Fails when there is no canary.\n"
        "\n"
        "Flags:\n"
        "  --json    print the new policy as JSON\n"
        "\n"
        "Example:\n"
        "  stratus promote churn\n",
        cli_promote_run,
    },
    {
        "rollback",
        "send a model's traffic back: drop the canary, or return to the previous stable",
        "stratus rollback NAME [--reason TEXT] [--json]",
        "With a canary, all traffic returns to the stable version and the\n"
        "canary is dropped.  Without one, the stable version goes back to the\n"
        "previous stable version (the one before the last deploy or promote).\n"
        "Fails when there is nothing to roll back.  The state becomes\n"
        "rolled_back and the reason is kept in the policy and the audit log.\n"
        "\n"
        "Flags:\n"
        "  --reason TEXT   why, for the audit log\n"
        "  --json          print the new policy as JSON\n"
        "\n"
        "Example:\n"
        "  stratus rollback churn --reason 'complaints about scores'\n",
        cli_rollback_run,
    },
    {
        "audit",
        "the registry's change log: who changed what, when",
        "stratus audit [--limit N] [--json]",
        "Lists every change to the registry, oldest first: pushes, alias moves\n"
        "and removals, rm, fsck --gc, deployments, promotions, rollbacks (also\n"
        "the automatic ones of 'stratus serve').\n"
        "\n"
        "Flags:\n"
        "  --limit N   only the last N records (default 0: all)\n"
        "  --json      {\"audit\": [{id, at, who, action, target, before, after}]},\n"
        "              before and after as JSON objects or null\n",
        cli_audit_run,
    },
    {
        "serve",
        "serve models over HTTP (KServe V2, TF Serving, SageMaker, Vertex AI)",
        "stratus serve [--registry HOME | --models DIR | --model NAME=PATH ...] [--host H] [--port P] [...]",
        "Serves models over HTTP/1.1 on one port with the protocols clients\n"
        "already speak:\n"
        "  KServe V2 / Open Inference Protocol  GET /v2, /v2/health/live,\n"
        "      /v2/health/ready, /v2/models/M[/versions/V][/ready];\n"
        "      POST /v2/models/M[/versions/V]/infer\n"
        "  TF Serving REST   POST /v1/models/M[/versions/V|/labels/L]:predict,\n"
        "      GET /v1/models/M[/versions/V] (version status)\n"
        "  SageMaker         GET /ping, POST /invocations (JSON or text/csv);\n"
        "      X-Amzn-SageMaker-Target-Model picks the model when several\n"
        "  Vertex AI         POST $AIP_PREDICT_ROUTE (default /predict),\n"
        "      GET $AIP_HEALTH_ROUTE (default /health)\n"
        "  Prometheus        GET /metrics\n"
        "Errors are {\"error\": \"...\"} with 400, 404, 405, 411, 413, 415, 429\n"
        "(with Retry-After) or 503.\n"
        "\n"
        "Models come from a repository, DIR/<name>/<version>/model.onnx\n"
        "(version folders are numbers), rescanned while serving: new versions\n"
        "load in the background and replace old ones without a failed request\n"
        "(requests finish on the version they started on); a version that\n"
        "fails to load is logged and counted, and the one before keeps serving.\n"
        "Requests for a model still loading wait for it (--load-wait-seconds).\n"
        "An optional DIR/<name>/config.json sets, per model:\n"
        "  \"version_policy\": {\"latest\": N} | {\"specific\": [1, 3]} | {\"all\": {}}\n"
        "                       which versions serve (default latest 1)\n"
        "  \"max_batch_size\": rows merged into one run (default 64; 0 or 1\n"
        "                       turns dynamic batching off).  Only models whose\n"
        "                       inputs all have a dynamic first dimension merge.\n"
        "  \"max_queue_delay_us\": how long a request may wait for others to\n"
        "                       join its batch (default 0: merge what is queued)\n"
        "  \"max_queue_size\": requests queued per version before 429 (1024)\n"
        "  \"instances\": workers that may run this model at once (all)\n"
        "  \"version_labels\": {\"stable\": 1, \"canary\": 2} for TF Serving labels\n"
        "\n"
        "The registry (`stratus push`): with --registry HOME, or with no model\n"
        "flags when STRATUS_HOME (default ./.stratus) holds a registry, every\n"
        "registry model is served, following changes live (checked every\n"
        "--poll-ms): the versions its aliases and its deployment name load,\n"
        "the others unload once nothing runs on them.  Aliases are labels:\n"
        "POST /v2/models/M/versions/ALIAS/infer, /v1/models/M/labels/ALIAS:predict.\n"
        "A request naming no version goes to the deployment's stable version\n"
        "or canary (`stratus deploy`); without a deployment to the version\n"
        "aliased \"production\", else the latest.  A canary at P % gets exactly\n"
        "P % of them (a counter, not dice), or, when the deployment has a\n"
        "sticky header and the request carries it, the users whose header\n"
        "value hashes below P %, always the same ones.  A shadow version gets\n"
        "a copy of each; its answers are compared with the primary's (floats\n"
        "within rtol 1e-4, atol 1e-5), counted and logged, never returned.\n"
        "Automatic rollback: over the deployment's window the canary's error\n"
        "rate (any non-2xx) and p99 latency are compared with the stable\n"
        "version's; once the canary has min_requests answers, a worse error\n"
        "rate (by more than max_error_rate_increase) or p99 (more than\n"
        "max_p99_ratio times, judged once both have 100 answers) stops its\n"
        "traffic at once; the rollback is then recorded in the registry\n"
        "(audit log, by \"stratus serve (automatic rollback)\") and counted\n"
        "in stratus_rollbacks_total.  Every inference answer says which\n"
        "version ran in X-Stratus-Model-Version.\n"
        "\n"
        "With no model flags and no registry, serves the SageMaker location\n"
        "/opt/ml/model (STRATUS_SAGEMAKER_MODEL_DIR overrides it): a model.onnx\n"
        "there is served as model \"model\", folders as a repository.\n"
        "\n"
        "SIGTERM or SIGINT drains: no new connections, requests in flight are\n"
        "answered within --grace-seconds, then exit 0.  Logs go to stderr.\n"
        "\n"
        "Flags:\n"
        "  --registry HOME         serve the registry in HOME (see above)\n"
        "  --models DIR            a model repository\n"
        "  --model NAME=PATH       one model file, or a registry reference NAME@VERSION|@ALIAS\n"
        "                          (resolved once, at start; repeat for several)\n"
        "  --host H                address to bind (default 0.0.0.0)\n"
        "  --port P                port (default 8080, or AIP_HTTP_PORT or\n"
        "                          SAGEMAKER_BIND_TO_PORT when set; 0 = any free)\n"
        "  --workers N             inference threads (default one per CPU)\n"
        "  --io-threads N          HTTP I/O threads (default one per CPU)\n"
        "  --max-body-bytes N      largest request body (413 beyond; 64 MiB)\n"
        "  --max-header-bytes N    request line and headers (431 beyond; 16 KiB)\n"
        "  --max-connections N     open connections (default 10000)\n"
        "  --request-timeout-ms N  a whole request must arrive within (60000)\n"
        "  --idle-timeout-ms N     keep-alive connection with no request (65000)\n"
        "  --max-elements N        largest input tensor in elements (413 beyond; 16 Mi)\n"
        "  --grace-seconds S       drain time on SIGTERM (default 30)\n"
        "  --load-wait-seconds S   how long requests wait for a loading model (30)\n"
        "  --poll-ms N             repository rescan / registry check period (1000)\n"
        "  --admin-token-file F    the bearer token of the management API under\n"
        "                          /api/v1 (default: HOME/admin.token, made with\n"
        "                          mode 0600 at first start); see\n"
        "                          docs/management-api.md\n"
        "  --api-keys FILE         inference routes need one of these keys (one\n"
        "                          per line, # comments) as 'Authorization: Bearer\n"
        "                          KEY' or 'X-API-Key: KEY'; reread when it changes.\n"
        "                          Health, GET /v2 and /metrics stay open\n"
        "\n"
        "Examples:\n"
        "  stratus serve --models examples/models --port 8080\n"
        "  stratus serve --model churn=churn.onnx\n"
        "  curl -d '{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\n"
        "            \"data\":[5.1,3.5,1.4,0.2]}]}' localhost:8080/v2/models/iris/infer\n",
        cli_serve_run,
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
        fprintf(out, "  %-12s %s\n", verbs[i].name, verbs[i].summary);
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
