/* models.c - the model manager of `stratus serve`: what is served, and
 * which version a request runs on.
 *
 * A loader thread rescans the repository (DIR/<name>/<version>/model.*),
 * loads the versions each model's version policy wants, one at a time,
 * and swaps them in under the lock.  A version is reference counted: the
 * serving list holds one reference and every routed request another, so a
 * version retired while requests run on it is freed by the last of them.
 * An old version is retired only once everything the policy wants is
 * loaded (or failed), so a model never has a gap; a version that fails to
 * load is remembered by its file's size and mtime, and tried again only
 * when the file changes. */
#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/file.h"
#include "base/log.h"
#include "base/time.h"
#include "json/json.h"
#include "serve/serve_int.h"

#define SV_MAX_MODELS 256
/* A file younger than this may still be being copied in. */
#define SV_SETTLE_NS 200000000LL

struct sv_manager {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* the loader's sleep; also initial-load done */
    sv_model *models[SV_MAX_MODELS];
    size_t n_models;
    char repository[2048];
    int n_workers;
    int poll_ms;
    int load_wait_ms;
    eng_options engine;
    _Atomic bool is_stopping;   /* read unlocked by the loader between loads */
    bool is_initial_done;
    bool is_sync_requested;     /* sv_manager_sync_now: scan before the period ends */
    pthread_t loader;
    bool is_loader_started;
    sv_counters unrouted;
    /* Serving a registry (loader thread only after start): */
    reg_store *reg;
    int64_t generation;         /* of the last read */
    bool has_generation;
    uint64_t registry_warned_us;
};

static const char *const model_files[] = { "model.onnx", "model.json", "model.ubj", "model.txt" };

/* ---- versions ----------------------------------------------------------- */

void sv_version_retain(sv_version *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

static void version_destroy(sv_version *v)
{
    for (int i = 0; i < v->n_sessions; i++)
        eng_session_free(v->sessions[i]);
    st_free(atomic_load_explicit(&v->window, memory_order_acquire));
    st_free(v->sessions);
    eng_free(v->engine);
    st_free(v->inputs);
    st_free(v->outputs);
    st_free(v);
}

void sv_version_release(sv_version *v)
{
    if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
        version_destroy(v);
}

sv_model_stats *sv_version_stats(sv_version *v)
{
    return &v->model->stats;
}

/* Loads one version (no lock held: this is the slow part). */
static st_status version_load(sv_manager *m, sv_model *model, int64_t number, const char *path,
                              const sv_config *cfg, sv_version **out, st_error *err)
{
    *out = NULL;
    eng_model *engine = NULL;
    st_status st = eng_load_file(path, &m->engine, &engine, err);
    if (st != ST_OK)
        return st;
    sv_version *v = st_calloc(1, sizeof *v);
    size_t n_in = eng_n_inputs(engine), n_out = eng_n_outputs(engine);
    if (v) {
        v->inputs = st_calloc(n_in + 1, sizeof *v->inputs);
        v->outputs = st_calloc(n_out + 1, sizeof *v->outputs);
        v->sessions = st_calloc((size_t)m->n_workers, sizeof *v->sessions);
    }
    if (!v || !v->inputs || !v->outputs || !v->sessions) {
        if (v) {
            st_free(v->inputs);
            st_free(v->outputs);
            st_free(v->sessions);
            st_free(v);
        }
        eng_free(engine);
        return st_fail(err, ST_ENOMEM, "out of memory loading %s", path);
    }
    atomic_init(&v->refs, 1);
    v->model = model;
    v->number = number;
    snprintf(v->number_text, sizeof v->number_text, "%lld", (long long)number);
    v->engine = engine;
    v->n_sessions = m->n_workers;
    v->config = *cfg;
    bool is_batchable = cfg->max_batch_size > 1 && n_in > 0;
    for (size_t i = 0; i < n_in; i++) {
        v->inputs[i] = *eng_input(engine, i);
        if (v->inputs[i].rank < 1 || v->inputs[i].dims[0] >= 0)
            is_batchable = false;
    }
    for (size_t i = 0; i < n_out; i++)
        v->outputs[i] = *eng_output(engine, i);
    atomic_init(&v->is_batchable, is_batchable);
    v->sig = (sv_model_sig){
        .name = model->name,
        .version = v->number_text,
        .inputs = v->inputs,
        .n_inputs = n_in,
        .outputs = v->outputs,
        .n_outputs = n_out,
        .platform = eng_format(engine), /* by content: blobs have no extension */
    };
    *out = v;
    return ST_OK;
}

/* ---- configuration ------------------------------------------------------ */

static void config_default(sv_config *c, int n_workers)
{
    *c = (sv_config){
        .policy = SV_POLICY_LATEST,
        .latest_n = 1,
        .max_batch_size = 64,
        .max_queue_delay_us = 0,
        .max_queue_size = 1024,
        .instances = n_workers,
    };
}

static st_status get_int(const json_value *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                         st_error *err)
{
    const json_value *v = json_value_get_c(obj, key);
    if (!v)
        return ST_OK;
    int64_t x;
    if (json_value_int64(v, &x) != ST_OK || x < lo || x > hi)
        return st_fail(err, ST_EINVAL, "\"%s\" must be an integer in %lld..%lld", key, (long long)lo,
                       (long long)hi);
    *out = x;
    return ST_OK;
}

/* Reads DIR/<name>/config.json over the defaults; a missing file is fine. */
static st_status config_read(const char *model_dir, int n_workers, sv_config *c, st_error *err)
{
    config_default(c, n_workers);
    if (!model_dir[0])
        return ST_OK;
    char path[2200];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return ST_OK;
    st_buf text = { 0 };
    st_arena arena;
    st_arena_init(&arena, 0);
    json_value *root = NULL;
    st_status st = st_file_read_all(path, &text, 1 << 20, err);
    if (st == ST_OK)
        st = json_parse(text.data, text.len, NULL, &arena, &root, err);
    if (st == ST_OK && root->type != JSON_KIND_OBJECT)
        st = st_fail(err, ST_EINVAL, "not a JSON object");
    int64_t x;
    if (st == ST_OK && (st = get_int(root, "max_batch_size", 0, 1 << 20, &c->max_batch_size, err)) == ST_OK &&
        (st = get_int(root, "max_queue_delay_us", 0, 60000000, &c->max_queue_delay_us, err)) == ST_OK &&
        (st = get_int(root, "max_queue_size", 0, 1 << 24, &c->max_queue_size, err)) == ST_OK) {
        x = c->instances;
        if ((st = get_int(root, "instances", 1, 1024, &x, err)) == ST_OK)
            c->instances = (int)x;
    }
    const json_value *pol = st == ST_OK ? json_value_get_c(root, "version_policy") : NULL;
    if (pol && pol->type == JSON_KIND_OBJECT) {
        const json_value *v;
        if ((v = json_value_get_c(pol, "latest"))) {
            c->policy = SV_POLICY_LATEST;
            /* Triton writes {"latest": {"num_versions": N}}; N alone is accepted too. */
            const json_value *n = v->type == JSON_KIND_OBJECT ? json_value_get_c(v, "num_versions") : v;
            if (json_value_int64(n, &x) != ST_OK || x < 1 || x > SV_MAX_VERSIONS)
                st = st_fail(err, ST_EINVAL, "version_policy.latest must be 1..%d", SV_MAX_VERSIONS);
            else
                c->latest_n = (int)x;
        } else if ((v = json_value_get_c(pol, "specific"))) {
            c->policy = SV_POLICY_SPECIFIC;
            const json_value *list = v->type == JSON_KIND_OBJECT ? json_value_get_c(v, "versions") : v;
            if (!list || list->type != JSON_KIND_ARRAY || list->u.array.count > SV_MAX_SPECIFIC)
                st = st_fail(err, ST_EINVAL, "version_policy.specific must be a list of at most %d versions",
                             SV_MAX_SPECIFIC);
            for (size_t i = 0; st == ST_OK && i < list->u.array.count; i++) {
                if (json_value_int64(&list->u.array.items[i], &x) != ST_OK || x < 0)
                    st = st_fail(err, ST_EINVAL, "version_policy.specific: versions are integers >= 0");
                else
                    c->specific[c->n_specific++] = x;
            }
        } else if (json_value_get_c(pol, "all")) {
            c->policy = SV_POLICY_ALL;
        } else {
            st = st_fail(err, ST_EINVAL, "version_policy must have \"latest\", \"specific\" or \"all\"");
        }
    } else if (pol) {
        st = st_fail(err, ST_EINVAL, "version_policy must be an object");
    }
    const json_value *labels = st == ST_OK ? json_value_get_c(root, "version_labels") : NULL;
    if (labels && labels->type == JSON_KIND_OBJECT) {
        for (size_t i = 0; st == ST_OK && i < labels->u.object.count && i < SV_MAX_LABELS; i++) {
            const json_member *mb = &labels->u.object.members[i];
            if (mb->key.len == 0 || mb->key.len >= sizeof c->label_names[0] ||
                json_value_int64(&mb->value, &x) != ST_OK)
                st = st_fail(err, ST_EINVAL, "version_labels: {\"label\": version number, ...}");
            else {
                memcpy(c->label_names[c->n_labels], mb->key.ptr, mb->key.len);
                c->label_names[c->n_labels][mb->key.len] = '\0';
                c->label_versions[c->n_labels++] = x;
            }
        }
    }
    st_buf_free(&text);
    st_arena_free(&arena);
    if (st != ST_OK) {
        st_fail_wrap(err, st, "%s", path);
        config_default(c, n_workers);
    }
    return st;
}

/* ---- the repository ----------------------------------------------------- */

typedef struct sv_found {
    int64_t number;
    int64_t mtime_ns, size;
    char path[2200];
} sv_found;

static bool is_safe_name(const char *s)
{
    if (!*s || *s == '.' || strlen(s) >= 128)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

static bool parse_number(const char *s, int64_t *out)
{
    if (!*s || strlen(s) > 18)
        return false;
    int64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        x = x * 10 + (*s - '0');
    }
    *out = x;
    return true;
}

static bool stat_file(const char *path, int64_t *mtime_ns, int64_t *size)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return false;
    *mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    *size = (int64_t)sb.st_size;
    return true;
}

/* The numbered version folders of a model that hold a model file. */
static size_t list_versions(const char *model_dir, sv_found *found, size_t cap)
{
    DIR *d = opendir(model_dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        int64_t number;
        if (!parse_number(e->d_name, &number))
            continue;
        for (size_t k = 0; k < sizeof model_files / sizeof model_files[0]; k++) {
            sv_found *f = &found[n];
            snprintf(f->path, sizeof f->path, "%s/%s/%s", model_dir, e->d_name, model_files[k]);
            if (stat_file(f->path, &f->mtime_ns, &f->size)) {
                f->number = number;
                n++;
                break;
            }
        }
    }
    closedir(d);
    return n;
}

static sv_model *model_find(sv_manager *m, st_str name)
{
    for (size_t i = 0; i < m->n_models; i++)
        if (st_str_eq_c(name, m->models[i]->name))
            return m->models[i];
    return NULL;
}

static sv_model *model_add(sv_manager *m, const char *name, const char *dir, const char *file)
{
    if (m->n_models == SV_MAX_MODELS) {
        ST_LOG_WARN("more than %d models; '%s' is not served", SV_MAX_MODELS, name);
        return NULL;
    }
    sv_model *model = st_calloc(1, sizeof *model);
    if (!model)
        return NULL;
    snprintf(model->name, sizeof model->name, "%s", name);
    snprintf(model->dir, sizeof model->dir, "%s", dir);
    snprintf(model->file, sizeof model->file, "%s", file);
    model->loading = -1;
    model->is_present = true;
    config_default(&model->config, m->n_workers);
    m->models[m->n_models++] = model;
    return model;
}

static bool is_failed(const sv_model *model, const sv_found *f)
{
    for (size_t i = 0; i < model->n_failed; i++)
        if (model->failed[i].number == f->number && model->failed[i].mtime_ns == f->mtime_ns &&
            model->failed[i].size == f->size)
            return true;
    return false;
}

static int cmp_found_desc(const void *a, const void *b)
{
    int64_t x = ((const sv_found *)a)->number, y = ((const sv_found *)b)->number;
    return x < y ? 1 : x > y ? -1 : 0;
}

static bool is_serving(const sv_model *model, int64_t number)
{
    for (size_t i = 0; i < model->n_serving; i++)
        if (model->serving[i]->number == number)
            return true;
    return false;
}

/* Decides (lock held) what the model wants: fills model->pending with the
 * wanted versions not served yet, retires served versions nobody wants
 * once nothing is pending, and returns the found entry to load next (or
 * NULL).  Retired versions go to retired[] to be released unlocked. */
static const sv_found *reconcile(sv_model *model, sv_found *found, size_t n_found, uint64_t now_wall_ns,
                                 sv_version **retired, size_t *n_retired)
{
    qsort(found, n_found, sizeof *found, cmp_found_desc);
    bool want[SV_MAX_VERSIONS] = { false };
    int taken = 0;
    for (size_t i = 0; i < n_found; i++) {
        if (is_failed(model, &found[i]) && !is_serving(model, found[i].number))
            continue;
        const sv_config *c = &model->config;
        switch (c->policy) {
        case SV_POLICY_LATEST:
            want[i] = taken < c->latest_n;
            break;
        case SV_POLICY_ALL:
            want[i] = true;
            break;
        case SV_POLICY_SPECIFIC:
            for (size_t k = 0; k < c->n_specific; k++)
                want[i] = want[i] || c->specific[k] == found[i].number;
            break;
        }
        taken += want[i];
    }
    const sv_found *next = NULL;
    model->n_pending = 0;
    for (size_t i = 0; i < n_found; i++) {
        if (!want[i] || is_serving(model, found[i].number))
            continue;
        model->pending[model->n_pending++] = found[i].number;
        bool is_settled = (int64_t)now_wall_ns - found[i].mtime_ns >= SV_SETTLE_NS;
        if (!next && is_settled)
            next = &found[i];
    }
    if (model->n_pending == 0) {
        size_t keep = 0;
        for (size_t s = 0; s < model->n_serving; s++) {
            sv_version *v = model->serving[s];
            bool is_wanted = false;
            for (size_t i = 0; i < n_found; i++)
                is_wanted = is_wanted || (want[i] && found[i].number == v->number);
            if (is_wanted)
                model->serving[keep++] = v;
            else
                retired[(*n_retired)++] = v;
        }
        model->n_serving = keep;
    }
    return next;
}

static void install(sv_model *model, sv_version *v)
{
    size_t i = model->n_serving;
    while (i > 0 && model->serving[i - 1]->number > v->number) {
        model->serving[i] = model->serving[i - 1];
        i--;
    }
    model->serving[i] = v;
    model->n_serving++;
    /* Counters survive the version: find or add this version's block. */
    sv_counters *c = model->counters;
    while (c && strcmp(c->version, v->number_text) != 0)
        c = c->next;
    if (!c && (c = st_calloc(1, sizeof *c))) {
        snprintf(c->version, sizeof c->version, "%s", v->number_text);
        c->next = model->counters;
        model->counters = c;
    }
    v->counters = c;
}

static void record_failure(sv_model *model, const sv_found *f, const st_error *err)
{
    if (model->n_failed == SV_MAX_VERSIONS)
        memmove(model->failed, model->failed + 1, (SV_MAX_VERSIONS - 1) * sizeof model->failed[0]);
    else
        model->n_failed++;
    model->failed[model->n_failed - 1] = (sv_failed_load){ f->number, f->mtime_ns, f->size };
    snprintf(model->last_error, sizeof model->last_error, "version %lld: %s", (long long)f->number,
             st_error_msg(err));
    atomic_fetch_add_explicit(&model->stats.load_failures, 1, memory_order_relaxed);
}

/* Takes the model's parked requests (lock held) to resume them unlocked. */
static sv_waiter *take_waiters(sv_model *model)
{
    sv_waiter *w = model->waiters;
    model->waiters = NULL;
    return w;
}

static void resume_all(sv_waiter *w, st_status st, const char *msg)
{
    while (w) {
        sv_waiter *next = w->next;
        w->resume(w, st, msg);
        w = next;
    }
}

/* ---- the registry ------------------------------------------------------- */

static sv_version *serving_find(const sv_model *model, int64_t number)
{
    for (size_t i = 0; i < model->n_serving; i++)
        if (model->serving[i]->number == number)
            return model->serving[i];
    return NULL;
}

static void want_version(sv_config *c, int64_t number)
{
    if (number <= 0)
        return;
    for (size_t i = 0; i < c->n_specific; i++)
        if (c->specific[i] == number)
            return;
    if (c->n_specific < SV_MAX_SPECIFIC)
        c->specific[c->n_specific++] = number;
}

/* Turns a registry model and its deployment (or NULL) into what is served
 * (lock held): the versions (aliases, the deployment's, the default), the
 * aliases as labels, the default and the traffic policy. */
static void registry_apply(sv_manager *m, sv_model *model, const reg_model *rm, const reg_deployment *d)
{
    sv_config *c = &model->config;
    config_default(c, m->n_workers);
    c->policy = SV_POLICY_SPECIFIC;
    int64_t production = 0;
    for (size_t i = 0; i < rm->n_aliases; i++) {
        const reg_alias *a = &rm->aliases[i];
        if (strcmp(a->alias, "production") == 0)
            production = a->version;
        if (c->n_labels < SV_MAX_LABELS && strlen(a->alias) < sizeof c->label_names[0]) {
            snprintf(c->label_names[c->n_labels], sizeof c->label_names[0], "%s", a->alias);
            c->label_versions[c->n_labels++] = a->version;
        }
    }
    sv_traffic t = { 0 };
    if (d && d->stable > 0) {
        t.stable = d->stable;
        t.canary = d->canary;
        double bp = d->canary_percent * 100.0 + 0.5;
        t.canary_bp = bp <= 0 ? 0 : bp >= SV_SHARE_ALL ? SV_SHARE_ALL : (uint32_t)bp;
        t.shadow = d->shadow;
        snprintf(t.sticky_header, sizeof t.sticky_header, "%s", d->sticky_header ? d->sticky_header : "");
        t.rule = d->rule;
        t.revision = d->revision;
        /* Rolled back here and the registry not told yet: stays off. */
        if (model->traffic.rolled_back_revision == d->revision && model->traffic.revision == d->revision) {
            t.rolled_back_revision = d->revision;
            t.canary = 0;
        }
    }
    model->default_version = t.stable ? t.stable : production ? production : rm->latest_version;
    want_version(c, model->default_version);
    want_version(c, t.canary);
    want_version(c, t.shadow);
    for (size_t i = 0; i < c->n_labels; i++)
        want_version(c, c->label_versions[i]);
    model->traffic = t;
}

/* Reads the registry when its generation moved since the last read (or
 * never was): every model, with its aliases and deployment, becomes what
 * the model serves; a model gone from the registry stops being served.
 * On failure (another process holding the lock past the busy timeout)
 * what was read before stays, and the next poll tries again. */
static void registry_read(sv_manager *m)
{
    st_error err = { 0 };
    int64_t generation = 0;
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_model *models = NULL;
    reg_deployment *deps = NULL;
    size_t n_models = 0, n_deps = 0;
    st_status st = reg_generation(m->reg, &generation, &err);
    if (st == ST_OK && m->has_generation && generation == m->generation)
        goto done;
    if (st == ST_OK)
        st = reg_list_models(m->reg, &arena, &models, &n_models, &err);
    if (st == ST_OK)
        st = reg_deploy_list(m->reg, &arena, &deps, &n_deps, &err);
    if (st != ST_OK) {
        uint64_t now = st_now_us();
        if (now - m->registry_warned_us > 10000000u) {
            ST_LOG_WARN("registry %s: %s (serving what was read before; trying again)", reg_home(m->reg),
                        st_error_msg(&err));
            m->registry_warned_us = now;
        }
        goto done;
    }
    pthread_mutex_lock(&m->mu);
    bool seen[SV_MAX_MODELS] = { false };
    for (size_t i = 0; i < n_models; i++) {
        sv_model *model = model_find(m, st_str_c(models[i].name));
        if (!model && (model = model_add(m, models[i].name, "", "")))
            model->is_registry = true;
        if (!model || !model->is_registry)
            continue;
        const reg_deployment *d = NULL;
        for (size_t k = 0; k < n_deps && !d; k++)
            if (strcmp(deps[k].model, models[i].name) == 0)
                d = &deps[k];
        model->is_present = true;
        registry_apply(m, model, &models[i], d);
        for (size_t k = 0; k < m->n_models; k++)
            seen[k] = seen[k] || m->models[k] == model;
    }
    for (size_t k = 0; k < m->n_models; k++) {
        sv_model *model = m->models[k];
        if (model->is_registry && !seen[k]) {
            if (model->is_present)
                ST_LOG_INFO("model %s: gone from the registry; no longer served", model->name);
            model->is_present = false;
            model->config.n_specific = 0;
            model->config.n_labels = 0;
            model->traffic = (sv_traffic){ 0 };
            model->default_version = 0;
        }
    }
    pthread_mutex_unlock(&m->mu);
    m->generation = generation;
    m->has_generation = true;
done:
    st_arena_free(&arena);
}

/* The versions a registry model wants, as sv_found entries without a path
 * (resolved, and the blob's hash checked, only when one is loaded). */
static size_t registry_found(const sv_model *model, sv_found *found)
{
    size_t n = 0;
    for (size_t i = 0; model->is_present && i < model->config.n_specific; i++)
        found[n++] = (sv_found){ .number = model->config.specific[i] };
    return n;
}

/* Gives a policy's stable and canary versions their rollback windows
 * (lock held; loader thread: the only writer of v->window). */
static void ensure_windows(sv_model *model)
{
    const sv_traffic *t = &model->traffic;
    sv_version *vs[2] = { t->stable ? serving_find(model, t->stable) : NULL,
                          t->canary ? serving_find(model, t->canary) : NULL };
    if (!vs[1])
        return;
    for (int i = 0; i < 2; i++) {
        if (!vs[i])
            continue;
        sv_window *w = atomic_load_explicit(&vs[i]->window, memory_order_acquire);
        if (!w) {
            if (!(w = st_calloc(1, sizeof *w)))
                continue;
            sv_window_reset(w, t->rule.window_s);
            atomic_store_explicit(&vs[i]->window, w, memory_order_release);
        } else if (atomic_load_explicit(&w->window_s, memory_order_relaxed) != t->rule.window_s) {
            sv_window_reset(w, t->rule.window_s);
        }
    }
}

/* Tells the registry about an automatic rollback; ST_OK when it has it. */
static st_status registry_record_rollback(sv_manager *m, sv_model *model)
{
    st_error err = { 0 };
    st_arena arena;
    st_arena_init(&arena, 0);
    model->rollback_tried_us = st_now_us();
    reg_set_actor(m->reg, "stratus serve (automatic rollback)");
    st_status st = reg_deploy_rollback(m->reg, st_str_c(model->name), model->rollback_canary,
                                       model->rollback_reason, &arena, NULL, &err);
    st_arena_free(&arena);
    if (st == ST_OK) {
        model->rollback_canary = 0;
        pthread_mutex_lock(&m->mu);
        m->is_sync_requested = true; /* read the policy back at once */
        pthread_mutex_unlock(&m->mu);
    } else {
        ST_LOG_ERROR("model %s: the registry did not record the rollback of version %lld (%s); the canary "
                     "stays off here and the write is tried again",
                     model->name, (long long)model->rollback_canary, st_error_msg(&err));
    }
    return st;
}

/* The automatic rollback (loader thread, every wake): judges each canary
 * against its stable version over the rule's window; a canary judged worse
 * stops getting traffic at once, then the registry records the rollback. */
static void judge_canaries(sv_manager *m)
{
    if (!m->reg)
        return;
    pthread_mutex_lock(&m->mu);
    size_t n_models = m->n_models;
    pthread_mutex_unlock(&m->mu);
    static sv_window_sum stable_sum, canary_sum; /* loader thread only */
    for (size_t i = 0; i < n_models && !m->is_stopping; i++) {
        sv_model *model = m->models[i];
        if (model->rollback_canary > 0) {
            /* A write that failed (the registry busy) is tried every 5 s. */
            if (st_now_us() - model->rollback_tried_us >= 5000000u)
                registry_record_rollback(m, model);
            continue;
        }
        pthread_mutex_lock(&m->mu);
        sv_traffic t = model->traffic;
        sv_version *sv = t.canary && t.canary_bp ? serving_find(model, t.stable) : NULL;
        sv_version *cv = sv ? serving_find(model, t.canary) : NULL;
        sv_window *sw = sv ? atomic_load_explicit(&sv->window, memory_order_acquire) : NULL;
        sv_window *cw = cv ? atomic_load_explicit(&cv->window, memory_order_acquire) : NULL;
        pthread_mutex_unlock(&m->mu);
        if (!sw || !cw)
            continue; /* the windows go with the versions, which only this thread retires */
        uint64_t now = st_now_us();
        sv_window_sum_at(sw, now, &stable_sum);
        sv_window_sum_at(cw, now, &canary_sum);
        sv_verdict v;
        sv_rollback_judge(&t.rule, &stable_sum, &canary_sum, &v);
        if (!v.is_rollback)
            continue;
        pthread_mutex_lock(&m->mu);
        if (model->traffic.revision == t.revision && model->traffic.canary == t.canary) {
            model->traffic.canary = 0;
            model->traffic.rolled_back_revision = t.revision;
        }
        pthread_mutex_unlock(&m->mu);
        atomic_fetch_add_explicit(&model->stats.rollbacks, 1, memory_order_relaxed);
        ST_LOG_WARN("model %s: canary version %lld rolled back to stable version %lld: %s", model->name,
                    (long long)t.canary, (long long)t.stable, v.reason);
        /* Stale answers must not judge a later deployment of this version. */
        sv_window_reset(cw, t.rule.window_s);
        model->rollback_canary = t.canary;
        snprintf(model->rollback_reason, sizeof model->rollback_reason, "automatic: %s", v.reason);
        registry_record_rollback(m, model);
    }
}

/* One pass over the repository: finds models and versions, loads what is
 * wanted, retires what is not.  Returns after every model is settled. */
static void sync_models(sv_manager *m)
{
    if (m->reg)
        registry_read(m);
    if (m->repository[0]) {
        DIR *d = opendir(m->repository);
        struct dirent *e;
        char seen[SV_MAX_MODELS] = { 0 };
        while (d && (e = readdir(d))) {
            if (!is_safe_name(e->d_name))
                continue;
            char dir[2048];
            int n = snprintf(dir, sizeof dir, "%s/%s", m->repository, e->d_name);
            struct stat sb;
            if (n < 0 || (size_t)n >= sizeof dir || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
                continue;
            pthread_mutex_lock(&m->mu);
            sv_model *model = model_find(m, st_str_c(e->d_name));
            if (!model)
                model = model_add(m, e->d_name, dir, "");
            if (model) {
                model->is_present = true;
                for (size_t i = 0; i < m->n_models; i++)
                    if (m->models[i] == model)
                        seen[i] = 1;
            }
            pthread_mutex_unlock(&m->mu);
        }
        if (d)
            closedir(d);
        pthread_mutex_lock(&m->mu);
        for (size_t i = 0; i < m->n_models; i++)
            if (!seen[i] && m->models[i]->dir[0])
                m->models[i]->is_present = false;
        pthread_mutex_unlock(&m->mu);
    }

    static sv_found found[SV_MAX_VERSIONS]; /* loader thread only */
    pthread_mutex_lock(&m->mu);
    size_t n_models = m->n_models;
    pthread_mutex_unlock(&m->mu);
    for (size_t mi = 0; mi < n_models && !m->is_stopping; mi++) {
        sv_model *model = m->models[mi]; /* the array only grows, on this thread */
        for (;;) {
            sv_config cfg;
            st_error err = { 0 };
            size_t n_found = 0;
            if (model->file[0]) {
                found[0].number = 1;
                snprintf(found[0].path, sizeof found[0].path, "%s", model->file);
                if (stat_file(found[0].path, &found[0].mtime_ns, &found[0].size))
                    found[0].mtime_ns = 0; /* given on the command line: load at once */
                else
                    found[0].mtime_ns = found[0].size = 0;
                n_found = 1;
            } else if (model->is_registry) {
                n_found = registry_found(model, found); /* config written on this thread */
            } else if (model->is_present) {
                n_found = list_versions(model->dir, found, SV_MAX_VERSIONS);
            }
            st_status cst = ST_OK;
            if (model->is_registry)
                cfg = model->config;
            else
                cst = config_read(model->dir, m->n_workers, &cfg, &err);
            sv_version *retired[SV_MAX_VERSIONS];
            size_t n_retired = 0;
            pthread_mutex_lock(&m->mu);
            if (cst != ST_OK && strcmp(model->last_error, err.msg) != 0) {
                ST_LOG_WARN("model %s: %s (using the defaults)", model->name, err.msg);
                snprintf(model->last_error, sizeof model->last_error, "%s", err.msg);
            }
            model->config = cfg;
            const sv_found *next = reconcile(model, found, n_found, st_wall_ns(), retired, &n_retired);
            bool was_attempted = model->is_attempted;
            if (!next && model->n_pending == 0)
                model->is_attempted = true;
            sv_waiter *wake = NULL;
            if (!next && (model->n_serving > 0 || model->n_pending == 0))
                wake = take_waiters(model);
            if (next)
                model->loading = next->number;
            if (model->is_registry) {
                if (serving_find(model, model->default_version))
                    model->effective_default = model->default_version;
                ensure_windows(model);
            }
            pthread_mutex_unlock(&m->mu);
            for (size_t i = 0; i < n_retired; i++) {
                ST_LOG_INFO("model %s: version %s unloaded", model->name, retired[i]->number_text);
                sv_version_release(retired[i]);
            }
            resume_all(wake, ST_OK, NULL);
            if (!was_attempted && model->is_attempted && model->n_serving == 0 && !model->n_failed)
                ST_LOG_WARN("model %s: no version to serve in %s", model->name,
                            model->is_registry ? "the registry" : model->dir[0] ? model->dir : model->file);
            if (!next)
                break;

            sv_found f = *next;
            sv_version *v = NULL;
            uint64_t t0 = st_now_us();
            st_status st = ST_OK;
            if (model->is_registry) {
                /* The blob's hash is checked here, once per load. */
                char ref[REG_NAME_MAX + 32];
                snprintf(ref, sizeof ref, "%s@%lld", model->name, (long long)f.number);
                st = reg_resolve(m->reg, st_str_c(ref), f.path, sizeof f.path, &err);
                if (st == ST_EBUSY) {
                    /* Another process held the registry past the busy
                     * timeout: not this version's fault, so it is not
                     * marked failed; the next poll tries again. */
                    pthread_mutex_lock(&m->mu);
                    model->loading = -1;
                    pthread_mutex_unlock(&m->mu);
                    ST_LOG_WARN("model %s: version %lld not loaded yet (%s); retrying", model->name,
                                (long long)f.number, st_error_msg(&err));
                    break;
                }
            }
            if (st == ST_OK)
                st = version_load(m, model, f.number, f.path, &cfg, &v, &err);
            pthread_mutex_lock(&m->mu);
            model->loading = -1;
            model->is_attempted = true;
            if (st == ST_OK)
                install(model, v);
            else
                record_failure(model, &f, &err);
            wake = take_waiters(model);
            pthread_mutex_unlock(&m->mu);
            if (st == ST_OK)
                ST_LOG_INFO("model %s: version %lld loaded from %s in %.1f ms", model->name,
                            (long long)f.number, f.path, (double)(st_now_us() - t0) / 1000.0);
            else
                ST_LOG_ERROR("model %s: version %lld failed to load (%s); the versions loaded before "
                             "keep serving",
                             model->name, (long long)f.number, st_error_msg(&err));
            resume_all(wake, ST_OK, NULL);
        }
    }
}

/* Gives up on requests parked past their deadline. */
static void expire_waiters(sv_manager *m, bool is_all)
{
    uint64_t now = st_now_us();
    sv_waiter *expired = NULL;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_models; i++) {
        sv_waiter **pp = &m->models[i]->waiters;
        while (*pp) {
            sv_waiter *w = *pp;
            if (is_all || now >= w->deadline_us) {
                *pp = w->next;
                w->next = expired;
                expired = w;
            } else {
                pp = &w->next;
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
    resume_all(expired, ST_EAGAIN, "the model is still loading; try again later");
}

static void *loader_main(void *arg)
{
    sv_manager *m = arg;
    uint64_t next_scan = 0;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        bool is_stopping = m->is_stopping;
        pthread_mutex_unlock(&m->mu);
        if (is_stopping)
            break;
        uint64_t now = st_now_us();
        pthread_mutex_lock(&m->mu);
        if (m->is_sync_requested) {
            m->is_sync_requested = false;
            next_scan = now;
        }
        pthread_mutex_unlock(&m->mu);
        if (now >= next_scan) {
            sync_models(m);
            next_scan = st_now_us() + (uint64_t)m->poll_ms * 1000u;
            pthread_mutex_lock(&m->mu);
            if (!m->is_initial_done) {
                m->is_initial_done = true;
                pthread_cond_broadcast(&m->cv);
            }
            pthread_mutex_unlock(&m->mu);
        }
        expire_waiters(m, false);
        judge_canaries(m);
        /* Wake at the next scan, or sooner to expire waiters on time. */
        uint64_t wake = next_scan;
        if (wake > st_now_us() + 100000u)
            wake = st_now_us() + 100000u;
        struct timespec ts = { (time_t)(wake / 1000000u), (long)(wake % 1000000u) * 1000 };
        pthread_mutex_lock(&m->mu);
        if (!m->is_stopping && !m->is_sync_requested)
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
        pthread_mutex_unlock(&m->mu);
    }
    expire_waiters(m, true);
    return NULL;
}

st_status sv_manager_start(const sv_manager_options *opt, sv_manager **out, st_error *err)
{
    *out = NULL;
    sv_manager *m = st_calloc(1, sizeof *m);
    if (!m)
        return st_fail(err, ST_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    m->n_workers = opt->n_workers > 0 ? opt->n_workers : 1;
    m->poll_ms = opt->poll_ms > 0 ? opt->poll_ms : 1000;
    m->load_wait_ms = opt->load_wait_ms > 0 ? opt->load_wait_ms : 30000;
    m->engine = opt->engine;
    st_status st = ST_OK;
    if (opt->repository) {
        struct stat sb;
        if (stat(opt->repository, &sb) != 0 || !S_ISDIR(sb.st_mode))
            st = st_fail(err, ST_ENOTFOUND, "model repository %s: %s", opt->repository,
                         errno ? strerror(errno) : "not a directory");
        else if (strlen(opt->repository) >= sizeof m->repository)
            st = st_fail(err, ST_EINVAL, "model repository path too long");
        else
            snprintf(m->repository, sizeof m->repository, "%s", opt->repository);
    }
    if (st == ST_OK && opt->registry) {
        /* Opened here so a missing registry fails the start; the loader
         * thread owns it from then on. */
        st = reg_open(opt->registry, REG_OPEN_EXISTING, &m->reg, err);
        st_arena arena;
        st_arena_init(&arena, 0);
        reg_model *models = NULL;
        size_t n = 0;
        st_error list_err = { 0 }; /* a busy registry here only delays the names */
        if (st == ST_OK && reg_list_models(m->reg, &arena, &models, &n, &list_err) == ST_OK) {
            /* Learn the names now, so early requests wait rather than 404. */
            for (size_t i = 0; i < n; i++) {
                sv_model *model = model_add(m, models[i].name, "", "");
                if (model)
                    model->is_registry = true;
            }
        }
        st_arena_free(&arena);
    }
    for (size_t i = 0; st == ST_OK && i < opt->n_files; i++) {
        if (!is_safe_name(opt->names[i]))
            st = st_fail(err, ST_EINVAL, "model name '%s': use letters, digits, '_', '-' and '.'",
                         opt->names[i]);
        else if (model_find(m, st_str_c(opt->names[i])))
            st = st_fail(err, ST_EINVAL, "model name '%s' given twice", opt->names[i]);
        else if (strlen(opt->paths[i]) >= sizeof m->models[0]->file)
            st = st_fail(err, ST_EINVAL, "model path too long");
        else if (!model_add(m, opt->names[i], "", opt->paths[i]))
            st = st_fail(err, ST_ENOMEM, "out of memory");
    }
    if (st == ST_OK) {
        /* Learn the names now (so early requests wait rather than 404);
         * the loads themselves happen on the loader thread. */
        if (m->repository[0]) {
            DIR *d = opendir(m->repository);
            struct dirent *e;
            while (d && (e = readdir(d))) {
                char dir[2048];
                struct stat sb;
                int n = snprintf(dir, sizeof dir, "%s/%s", m->repository, e->d_name);
                if (is_safe_name(e->d_name) && n > 0 && (size_t)n < sizeof dir && stat(dir, &sb) == 0 &&
                    S_ISDIR(sb.st_mode) && !model_find(m, st_str_c(e->d_name)))
                    model_add(m, e->d_name, dir, "");
            }
            if (d)
                closedir(d);
        }
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int rc = pthread_create(&m->loader, NULL, loader_main, m);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0)
            st = st_fail(err, ST_EAGAIN, "cannot start the loader thread: %s", strerror(rc));
        else
            m->is_loader_started = true;
    }
    if (st != ST_OK) {
        sv_manager_free(m);
        return st;
    }
    *out = m;
    return ST_OK;
}

void sv_manager_free(sv_manager *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->is_stopping = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (m->is_loader_started)
        pthread_join(m->loader, NULL);
    reg_close(m->reg);
    for (size_t i = 0; i < m->n_models; i++) {
        sv_model *model = m->models[i];
        /* The caller has answered every request (the HTTP server and the
         * batcher are stopped first), so these are the last references. */
        for (size_t s = 0; s < model->n_serving; s++)
            sv_version_release(model->serving[s]);
        while (model->counters) {
            sv_counters *next = model->counters->next;
            st_free(model->counters);
            model->counters = next;
        }
        st_free(model);
    }
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    st_free(m);
}

void sv_manager_sync_now(sv_manager *m)
{
    pthread_mutex_lock(&m->mu);
    m->is_sync_requested = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

void sv_manager_wait_initial(sv_manager *m, int timeout_ms)
{
    uint64_t end = st_now_us() + (uint64_t)timeout_ms * 1000u;
    struct timespec ts = { (time_t)(end / 1000000u), (long)(end % 1000000u) * 1000 };
    pthread_mutex_lock(&m->mu);
    while (!m->is_initial_done && !m->is_stopping)
        if (pthread_cond_timedwait(&m->cv, &m->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&m->mu);
}

/* ---- routing ------------------------------------------------------------ */

static bool parse_version_text(st_str s, int64_t *out)
{
    if (s.len == 0 || s.len > 18)
        return false;
    int64_t x = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        x = x * 10 + (s.ptr[i] - '0');
    }
    *out = x;
    return true;
}

static void list_names(sv_manager *m, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < m->n_models && n < cap; i++) {
        if (!m->models[i]->is_present)
            continue;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", m->models[i]->name);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    if (n == 0)
        snprintf(buf, cap, "none");
}

/* Does the policy send this request to the canary (lock held)? */
static bool takes_canary(sv_model *model, const http_request *req)
{
    const sv_traffic *t = &model->traffic;
    if (t->sticky_header[0]) {
        st_str value = http_request_header(req, t->sticky_header);
        if (value.len)
            return sv_sticky_bucket((const uint8_t *)value.ptr, value.len) < t->canary_bp;
    }
    return sv_split_take(&model->split, t->canary_bp);
}

/* The version a request naming no version runs on (lock held), and the
 * policy's shadow: the deployment's stable version or its canary; else
 * the default (alias production, else the latest); while that is not
 * loaded yet, the default served before, else the highest served. */
static sv_version *route_default(sv_model *model, const http_request *req, sv_route *route)
{
    if (!model->is_registry)
        return model->n_serving ? model->serving[model->n_serving - 1] : NULL;
    const sv_traffic *t = &model->traffic;
    sv_version *v = serving_find(model, t->stable ? t->stable : model->default_version);
    if (v && t->stable && req) {
        route->is_policy = true;
        sv_version *canary = t->canary && t->canary_bp ? serving_find(model, t->canary) : NULL;
        if (canary && takes_canary(model, req))
            v = canary;
        sv_version *shadow = t->shadow ? serving_find(model, t->shadow) : NULL;
        if (shadow && shadow != v) {
            sv_version_retain(shadow);
            route->shadow = shadow;
        }
    }
    if (!v)
        v = serving_find(model, model->effective_default);
    if (!v && model->n_serving)
        v = model->serving[model->n_serving - 1];
    return v;
}

st_status sv_manager_acquire(sv_manager *m, st_str name, st_str version, st_str label, sv_waiter *w,
                             bool *is_parked, sv_version **out, st_error *err)
{
    sv_route route;
    st_status st = sv_manager_route(m, name, version, label, NULL, w, is_parked, &route, err);
    *out = route.version;
    return st;
}

st_status sv_manager_route(sv_manager *m, st_str name, st_str version, st_str label, const http_request *req,
                           sv_waiter *w, bool *is_parked, sv_route *route, st_error *err)
{
    *route = (sv_route){ 0 };
    *is_parked = false;
    st_status st = ST_OK;
    int64_t number_given;
    if (version.len && !label.len && !parse_version_text(version, &number_given)) {
        label = version; /* /versions/production: an alias */
        version = (st_str){ 0 };
    }
    pthread_mutex_lock(&m->mu);
    sv_model *model = model_find(m, name);
    if (!model || !model->is_present) {
        char names[256];
        list_names(m, names, sizeof names);
        st = st_fail(err, ST_ENOTFOUND, "model '%.*s' is not served (served: %s)",
                     (int)(name.len > 128 ? 128 : name.len), name.ptr, names);
        goto done;
    }
    int64_t number = -1;
    if (label.len) {
        for (size_t i = 0; i < model->config.n_labels; i++)
            if (st_str_eq_c(label, model->config.label_names[i]))
                number = model->config.label_versions[i];
        if (number < 0) {
            st = st_fail(err, ST_ENOTFOUND, "model '%s' has no version label '%.*s'", model->name,
                         (int)(label.len > 64 ? 64 : label.len), label.ptr);
            goto done;
        }
    } else if (version.len) {
        parse_version_text(version, &number);
    }
    sv_version *v = NULL;
    bool is_coming = false;
    if (number < 0) {
        v = route_default(model, req, route);
        if (!v)
            is_coming = model->n_pending > 0 || model->loading >= 0 || !model->is_attempted;
    } else {
        for (size_t i = 0; i < model->n_serving; i++)
            if (model->serving[i]->number == number)
                v = model->serving[i];
        for (size_t i = 0; !v && i < model->n_pending; i++)
            is_coming = is_coming || model->pending[i] == number;
        is_coming = is_coming || (!v && (model->loading == number || !model->is_attempted));
    }
    if (v) {
        sv_version_retain(v);
        route->version = v;
    } else if (is_coming && w) {
        if (w->deadline_us == 0)
            w->deadline_us = st_now_us() + (uint64_t)m->load_wait_ms * 1000u;
        w->next = model->waiters;
        model->waiters = w;
        *is_parked = true;
        st = ST_EAGAIN;
    } else if (is_coming || (number < 0 && model->last_error[0])) {
        st = st_fail(err, ST_EAGAIN, "model '%s' has no version ready%s%s", model->name,
                     model->last_error[0] ? ": " : "", model->last_error);
    } else if (number < 0) {
        st = st_fail(err, ST_EAGAIN, "model '%s' has no version to serve", model->name);
    } else if (model->is_registry) {
        st = st_fail(err, ST_ENOTFOUND,
                     "model '%s' version %lld is not served: the registry serves aliased and deployed "
                     "versions (`stratus alias %s@%lld NAME` or `stratus deploy` it)",
                     model->name, (long long)number, model->name, (long long)number);
    } else {
        st = st_fail(err, ST_ENOTFOUND, "model '%s' has no version %lld", model->name, (long long)number);
    }
done:
    pthread_mutex_unlock(&m->mu);
    return st;
}

bool sv_manager_single_name(sv_manager *m, char *buf, size_t cap)
{
    pthread_mutex_lock(&m->mu);
    const sv_model *only = NULL;
    size_t n = 0;
    for (size_t i = 0; i < m->n_models; i++)
        if (m->models[i]->is_present) {
            only = m->models[i];
            n++;
        }
    if (n == 1)
        snprintf(buf, cap, "%s", only->name);
    pthread_mutex_unlock(&m->mu);
    return n == 1;
}

bool sv_manager_is_ready(sv_manager *m)
{
    pthread_mutex_lock(&m->mu);
    bool is_ready = m->is_initial_done;
    for (size_t i = 0; i < m->n_models && is_ready; i++) {
        const sv_model *model = m->models[i];
        /* A registry model with every version removed has nothing to wait for. */
        bool has_wanted = !model->is_registry || model->config.n_specific > 0;
        if (model->is_present && model->n_serving == 0 && has_wanted)
            is_ready = false;
    }
    pthread_mutex_unlock(&m->mu);
    return is_ready;
}

/* ---- status pages ------------------------------------------------------- */

st_status sv_manager_tfs_status(sv_manager *m, st_str name, st_str version, st_buf *out, st_error *err)
{
    st_status st = ST_OK;
    int64_t number = -1;
    if (version.len && !parse_version_text(version, &number))
        return st_fail(err, ST_ENOTFOUND, "versions are numbers");
    pthread_mutex_lock(&m->mu);
    sv_model *model = model_find(m, name);
    if (!model || !model->is_present) {
        st = st_fail(err, ST_ENOTFOUND, "model '%.*s' is not served", (int)(name.len > 128 ? 128 : name.len),
                     name.ptr);
        goto done;
    }
    /* Served versions, newest first, then those loading, then failures. */
    static _Thread_local char texts[3 * SV_MAX_VERSIONS][24];
    static _Thread_local sv_version_status list[3 * SV_MAX_VERSIONS];
    size_t n = 0;
    for (size_t i = model->n_serving; i-- > 0;)
        if (number < 0 || model->serving[i]->number == number)
            list[n++] = (sv_version_status){ model->serving[i]->number_text, SV_VERSION_AVAILABLE, NULL };
    for (size_t i = 0; i < model->n_pending; i++)
        if (number < 0 || model->pending[i] == number) {
            snprintf(texts[n], sizeof texts[n], "%lld", (long long)model->pending[i]);
            list[n] = (sv_version_status){ texts[n], SV_VERSION_LOADING, NULL };
            n++;
        }
    for (size_t i = model->n_failed; i-- > 0;) {
        int64_t f = model->failed[i].number;
        bool is_listed = false;
        for (size_t k = 0; k < n; k++)
            is_listed = is_listed || strtoll(list[k].version, NULL, 10) == f;
        if (is_listed || (number >= 0 && f != number))
            continue;
        snprintf(texts[n], sizeof texts[n], "%lld", (long long)f);
        bool is_last = i == model->n_failed - 1;
        list[n] = (sv_version_status){ texts[n], SV_VERSION_END,
                                       is_last ? model->last_error : "failed to load (see the server log)" };
        n++;
    }
    if (n == 0 && number >= 0) {
        st = st_fail(err, ST_ENOTFOUND, "model '%s' has no version %lld", model->name, (long long)number);
        goto done;
    }
    st = sv_encode_tfs_status(list, n, out);
    if (st != ST_OK)
        st_fail(err, st, "cannot encode the model status");
done:
    pthread_mutex_unlock(&m->mu);
    return st;
}

st_status sv_manager_v2_metadata(sv_manager *m, st_str name, st_str version, st_buf *out, bool *is_ready,
                                 st_error *err)
{
    sv_version *v = NULL;
    bool is_parked;
    *is_ready = false;
    st_status st = sv_manager_acquire(m, name, version, (st_str){ 0 }, NULL, &is_parked, &v, err);
    if (st == ST_EAGAIN)
        return st; /* known, nothing ready: not ready, no metadata yet */
    if (st != ST_OK)
        return st;
    *is_ready = true;
    const char *versions[SV_MAX_VERSIONS];
    size_t n = 0;
    pthread_mutex_lock(&m->mu);
    sv_model *model = v->model;
    for (size_t i = 0; i < model->n_serving; i++)
        versions[n++] = model->serving[i]->number_text;
    /* The texts live in versions that may retire once unlocked: encode
     * under the lock (it is short and allocates only the body). */
    if (out)
        st = sv_encode_v2_metadata(&v->sig, versions, n, out);
    pthread_mutex_unlock(&m->mu);
    sv_version_release(v);
    if (st != ST_OK)
        st_fail(err, st, "cannot encode the model metadata");
    return st;
}

sv_counters *sv_manager_unrouted(sv_manager *m)
{
    return &m->unrouted;
}

void sv_manager_write_metrics(sv_manager *m, st_buf *out, int64_t in_flight)
{
    pthread_mutex_lock(&m->mu);
    sv_metrics_write(out, m->models, m->n_models, &m->unrouted, in_flight);
    pthread_mutex_unlock(&m->mu);
}
