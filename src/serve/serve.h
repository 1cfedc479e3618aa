/* serve.h - `stratus serve` as a library: models from a repository or
 * files, behind the HTTP server, answering V2, TF Serving, SageMaker and
 * Vertex AI requests through the dynamic batcher.
 *
 *     sv_options opt = sv_options_default();
 *     opt.repository = "examples/models";
 *     opt.http.port = 8080;
 *     sv_server *srv;
 *     if (sv_server_start(&opt, &srv, &err) != ST_OK) die(err.msg);
 *     ...                                   // until SIGTERM
 *     sv_server_stop(srv, 30000);           // drain, then
 *     sv_server_free(srv);
 */
#ifndef ST_SERVE_H
#define ST_SERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"
#include "http/http.h"
#include "serve/proto.h"

typedef struct sv_options {
    const char *repository;        /* DIR/<name>/<version>/model.*, or NULL */
    const char *const *names;      /* single files: --model NAME=PATH */
    const char *const *paths;
    size_t n_files;
    http_config http;              /* host, port, limits of the HTTP server */
    int workers;                   /* inference threads; 0 = one per CPU */
    sv_limits limits;              /* decoded tensor sizes */
    int poll_ms;                   /* repository rescan period (default 1000) */
    int load_wait_ms;              /* how long requests wait for a loading model */
    const char *predict_route;     /* Vertex AI; default $AIP_PREDICT_ROUTE or /predict */
    const char *health_route;      /* Vertex AI; default $AIP_HEALTH_ROUTE or /health */
    const char *server_version;    /* GET /v2 "version" */
    const char *registry;          /* serve this STRATUS_HOME's registry: every
                                      model's aliased versions under its
                                      deployment policy, followed live, and
                                      the management API under /api/v1 */
    const char *admin_token_file;  /* the API's bearer token; NULL:
                                      <registry>/admin.token, made (mode 0600)
                                      at first start */
    const char *api_keys_file;     /* inference routes need a key from this
                                      file; NULL: open */
} sv_options;

/* Defaults: http_config_default(), workers 0, 16 Mi elements per tensor,
 * 1 GiB of decoded inputs, rescans every second, 30 s load wait. */
sv_options sv_options_default(void);

typedef struct sv_server sv_server;

/* Starts the workers, the model manager (models load in the background)
 * and the HTTP server.  ST_EIO when the port cannot be bound, ST_ENOTFOUND
 * for a missing repository. */
st_status sv_server_start(const sv_options *opt, sv_server **out, st_error *err);
/* The bound port. */
int sv_server_port(const sv_server *s);
/* True when every model has a version loaded. */
bool sv_server_is_ready(sv_server *s);
/* Drains: stops accepting, answers what is in flight within grace_ms. */
void sv_server_stop(sv_server *s, int grace_ms);
/* Stops (no grace) if needed and frees everything. */
void sv_server_free(sv_server *s);

#endif
