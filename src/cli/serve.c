/* serve.c - `stratus serve`: flags and environment to sv_options, then run
 * until SIGTERM or SIGINT and drain.  Signals are blocked before any
 * thread starts (threads inherit the mask), and this thread takes them
 * with sigwait, so no handler runs inside the server. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "cli/cli.h"
#include "registry/registry.h"
#include "serve/serve.h"

/* Where SageMaker puts the model; STRATUS_SAGEMAKER_MODEL_DIR overrides it
 * (tests, or images that keep models elsewhere). */
static const char *sagemaker_dir(void)
{
    const char *d = getenv("STRATUS_SAGEMAKER_MODEL_DIR");
    return d && *d ? d : "/opt/ml/model";
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* True when `home` holds a registry (`stratus push` made one there). */
static bool has_registry(const char *home)
{
    char path[4200];
    struct stat sb;
    int n = snprintf(path, sizeof path, "%s/registry.db", home);
    return n > 0 && (size_t)n < sizeof path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool parse_port(const char *text, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < 0 || v > 65535)
        return false;
    *out = v;
    return true;
}

int cli_serve_run(const cli_verb *verb, int argc, char **argv)
{
    const char *models_dir = NULL, *host = "0.0.0.0", *registry = NULL;
    const char *admin_token_file = NULL, *api_keys_file = NULL;
    cli_multi files = { .count = 0 };
    long port = -1, workers = 0, max_body = -1, max_elements = -1, poll_ms = 1000;
    long io_threads = 0, max_header = -1, max_conns = -1, request_timeout_ms = -1, idle_timeout_ms = -1;
    double grace_s = 30, load_wait_s = 30;
    const cli_flag flags[] = {
        { "--models", CLI_STRING, &models_dir, 0, 0 },
        { "--model", CLI_MULTI, &files, 0, 0 },
        { "--registry", CLI_STRING, &registry, 0, 0 },
        { "--host", CLI_STRING, &host, 0, 0 },
        { "--port", CLI_INT, &port, 0, 65535 },
        { "--workers", CLI_INT, &workers, 0, 1024 },
        { "--max-body-bytes", CLI_INT, &max_body, 1, 1L << 40 },
        { "--max-elements", CLI_INT, &max_elements, 1, 1L << 40 },
        { "--grace-seconds", CLI_DOUBLE, &grace_s, 0, 0 },
        { "--load-wait-seconds", CLI_DOUBLE, &load_wait_s, 0, 0 },
        { "--poll-ms", CLI_INT, &poll_ms, 10, 3600000 },
        { "--io-threads", CLI_INT, &io_threads, 0, 256 },
        { "--max-header-bytes", CLI_INT, &max_header, 256, 1L << 24 },
        { "--max-connections", CLI_INT, &max_conns, 1, 1000000 },
        { "--request-timeout-ms", CLI_INT, &request_timeout_ms, 1, 3600000 },
        { "--idle-timeout-ms", CLI_INT, &idle_timeout_ms, 1, 3600000 },
        { "--admin-token-file", CLI_STRING, &admin_token_file, 0, 0 },
        { "--api-keys", CLI_STRING, &api_keys_file, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[1];
    size_t npos = 0;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 1, &npos))
        return CLI_EXIT_USAGE;
    if (grace_s < 0 || grace_s > 86400 || load_wait_s < 0 || load_wait_s > 86400)
        return cli_usage_error(verb, "--grace-seconds and --load-wait-seconds must be 0..86400");

    const char *names[64], *paths[64];
    char name_buf[64][128];
    /* --model NAME=REF takes a registry reference too: resolved (and its
     * blob's hash checked) once, here; serving the registry itself is what
     * follows aliases live. */
    static char path_buf[64][REG_PATH_MAX];
    for (size_t i = 0; i < files.count; i++) {
        const char *eq = strchr(files.values[i], '=');
        if (!eq || eq == files.values[i] || !eq[1] || (size_t)(eq - files.values[i]) >= sizeof name_buf[i])
            return cli_usage_error(verb, "--model wants NAME=PATH, got '%s'", files.values[i]);
        memcpy(name_buf[i], files.values[i], (size_t)(eq - files.values[i]));
        name_buf[i][eq - files.values[i]] = '\0';
        names[i] = name_buf[i];
        int rc = cli_model_path(verb, eq + 1, path_buf[i], sizeof path_buf[i]);
        if (rc != CLI_EXIT_OK)
            return rc;
        paths[i] = path_buf[i];
    }
    size_t n_files = files.count;
    /* The SageMaker contract: `serve` with the model under /opt/ml/model,
     * either as one model file or as a repository. */
    char sm_file[4200];
    /* No model named: the registry of STRATUS_HOME when there is one. */
    if (!models_dir && n_files == 0 && !registry && has_registry(reg_home_default()))
        registry = reg_home_default();
    if (!models_dir && n_files == 0 && !registry) {
        const char *dir = sagemaker_dir();
        static const char *const candidates[] = { "model.onnx", "model.json", "model.ubj", "model.txt" };
        for (size_t k = 0; k < sizeof candidates / sizeof candidates[0] && n_files == 0; k++) {
            snprintf(sm_file, sizeof sm_file, "%s/%s", dir, candidates[k]);
            struct stat sb;
            if (stat(sm_file, &sb) == 0 && S_ISREG(sb.st_mode)) {
                names[0] = "model";
                paths[0] = sm_file;
                n_files = 1;
            }
        }
        if (n_files == 0 && is_dir(dir))
            models_dir = dir;
        if (n_files == 0 && !models_dir)
            return cli_usage_error(verb, "no models: give --models DIR or --model NAME=PATH (or put a model "
                                         "under %s)", dir);
    }

    if (port < 0) {
        const char *env = getenv("AIP_HTTP_PORT");
        if (!env || !*env)
            env = getenv("SAGEMAKER_BIND_TO_PORT");
        port = 8080;
        if (env && *env && !parse_port(env, &port))
            return cli_usage_error(verb, "the port in AIP_HTTP_PORT/SAGEMAKER_BIND_TO_PORT is not 0..65535: '%s'",
                                   env);
    }

    sv_options opt = sv_options_default();
    opt.repository = models_dir;
    opt.registry = registry;
    opt.names = names;
    opt.paths = paths;
    opt.n_files = n_files;
    opt.http.host = host;
    opt.http.port = (int)port;
    if (max_body > 0)
        opt.http.max_body_bytes = (size_t)max_body;
    opt.http.io_threads = (int)io_threads;
    if (max_header > 0)
        opt.http.max_header_bytes = (size_t)max_header;
    if (max_conns > 0)
        opt.http.max_connections = (int)max_conns;
    if (request_timeout_ms > 0)
        opt.http.request_timeout_ms = (int)request_timeout_ms;
    if (idle_timeout_ms > 0)
        opt.http.idle_timeout_ms = (int)idle_timeout_ms;
    if (max_elements > 0)
        opt.limits.max_elements = (size_t)max_elements;
    opt.workers = (int)workers;
    opt.poll_ms = (int)poll_ms;
    opt.load_wait_ms = (int)(load_wait_s * 1000);
    opt.server_version = "0.1.0";
    opt.admin_token_file = admin_token_file;
    opt.api_keys_file = api_keys_file;

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    st_error err = { 0 };
    sv_server *srv = NULL;
    if (sv_server_start(&opt, &srv, &err) != ST_OK)
        return cli_fail(verb, "%s", st_error_msg(&err));
    if (registry)
        ST_LOG_INFO("serving the registry in %s: every model's aliased versions under its deployment policy, "
                    "followed live",
                    registry);
    ST_LOG_INFO("stratus serve listening on %s:%d (repository %s, %zu model file%s%s)", host, sv_server_port(srv),
                models_dir ? models_dir : "none", n_files, n_files == 1 ? "" : "s", registry ? ", registry" : "");
    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {
    }
    ST_LOG_INFO("%s: draining (up to %.0f s for requests in flight)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                grace_s);
    sv_server_stop(srv, (int)(grace_s * 1000));
    sv_server_free(srv);
    ST_LOG_INFO("stopped");
    return CLI_EXIT_OK;
}
