/* run.c - the ONNX backend conformance runner (`make conformance`).
 *
 * Runs every case folder (model.onnx + test_data_set_N/{input,output}_M.pb)
 * of Debian's libonnx-testdata through the engine, each in a forked child
 * with a time limit so that a crash or a hang is a failure, not the end of
 * the run.  Compares with rtol 1e-3 / atol 1e-7 (exact for integers, bool
 * and strings) and prints passed / failed / unsupported per folder and per
 * operator, ending with "N passed, N failed" (unsupported count as failed).
 *
 *   run [--only LIST] [--write-passing LIST] [--verbose] [--filter SUBSTR] DIR...
 *
 * --only runs just the cases named in LIST (one "folder/case" per line):
 * that is how `make test` keeps passing cases passing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "engine/engine.h"
#include "engine/eng_int.h"
#include "engine/onnx_pb.h"

enum { RES_PASS = 0, RES_FAIL = 1, RES_UNSUPPORTED = 2 };
#define CASE_TIMEOUT_S 60
#define MAX_IO 64

typedef struct mapped {
    uint8_t *data;
    size_t len;
} mapped;

static bool map_file(const char *path, mapped *m)
{
    m->data = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return false;
    }
    m->len = (size_t)st.st_size;
    if (m->len) {
        m->data = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m->data == MAP_FAILED)
            m->data = NULL;
    }
    close(fd);
    return m->data != NULL || m->len == 0;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool tensor_from_proto(const onnx_tensor *pt, st_arena *arena, eng_tensor *t, char *why, size_t why_cap);
static bool value_from_proto(const onnx_value *v, st_arena *arena, eng_tensor *t, char *why, size_t cap);

/* Loads a TensorProto file into an eng_tensor (data in arena). */
static bool load_tensor(const char *path, st_dtype kind, st_arena *arena, eng_tensor *t, char *name,
                        size_t name_cap, char *why, size_t why_cap)
{
    mapped m;
    if (!map_file(path, &m)) {
        snprintf(why, why_cap, "cannot read %s", path);
        return false;
    }
    st_error err = { 0 };
    bool ok = false;
    if (kind == ENG_DT_SEQUENCE || kind == ENG_DT_OPTIONAL) {
        onnx_value v;
        st_status s = kind == ENG_DT_SEQUENCE ? onnx_decode_sequence(m.data, m.len, arena, &v, &err)
                                               : onnx_decode_optional(m.data, m.len, arena, &v, &err);
        if (s != ST_OK) {
            snprintf(why, why_cap, "%s: %s", path, err.msg);
            goto done;
        }
        ok = value_from_proto(&v, arena, t, why, why_cap);
        snprintf(name, name_cap, "%.*s", ST_STR_FMT(v.name));
        goto done;
    }
    onnx_tensor pt;
    if (onnx_decode_tensor(m.data, m.len, arena, &pt, &err) != ST_OK) {
        snprintf(why, why_cap, "%s: %s", path, err.msg);
        goto done;
    }
    ok = tensor_from_proto(&pt, arena, t, why, why_cap);
    snprintf(name, name_cap, "%.*s", ST_STR_FMT(pt.name));
done:
    /* Strings point into the mapping: keep it for the process's life. */
    if (!ok && m.data)
        munmap(m.data, m.len);
    return ok;
}

/* A tensor decoded from an onnx_tensor (data copied into arena). */
static bool tensor_from_proto(const onnx_tensor *pt, st_arena *arena, eng_tensor *t, char *why, size_t why_cap)
{
    onnx_tensor_data td;
    st_error err = { 0 };
    if (onnx_tensor_materialize(pt, NULL, arena, &td, &err) != ST_OK) {
        snprintf(why, why_cap, "%s", err.msg);
        return false;
    }
    if (pt->dim_count > ENG_MAX_RANK || !st_dtype_is_valid(pt->data_type)) {
        snprintf(why, why_cap, "unsupported tensor (type %d, rank %zu)", pt->data_type, pt->dim_count);
        return false;
    }
    *t = eng_tensor_make((st_dtype)pt->data_type, pt->dims, (uint32_t)pt->dim_count, NULL);
    size_t bytes = pt->data_type == ST_DT_STRING ? t->count * sizeof(st_str) : td.byte_size;
    void *copy = st_arena_alloc(arena, bytes ? bytes : 1, 64);
    if (!copy)
        return false;
    if (bytes)
        memcpy(copy, pt->data_type == ST_DT_STRING ? (const void *)td.strings : td.data, bytes);
    t->data = copy;
    return true;
}

/* A sequence or optional value (SequenceProto / OptionalProto). */
static bool value_from_proto(const onnx_value *v, st_arena *arena, eng_tensor *t, char *why, size_t cap)
{
    if (v->kind == ONNX_VALUE_TENSOR)
        return tensor_from_proto(v->tensor, arena, t, why, cap);
    if (v->kind != ONNX_VALUE_SEQUENCE && v->kind != ONNX_VALUE_OPTIONAL) {
        snprintf(why, cap, "unsupported value kind %d", (int)v->kind);
        return false;
    }
    eng_tensor *items = st_arena_calloc(arena, v->item_count + 1, sizeof *items, 64);
    if (!items)
        return false;
    st_dtype elem = ST_DT_FLOAT32;
    for (size_t i = 0; i < v->item_count; i++) {
        if (!value_from_proto(&v->items[i], arena, &items[i], why, cap))
            return false;
        elem = items[i].dtype;
    }
    int64_t shape[2] = { (int64_t)v->item_count, 0 };
    *t = eng_tensor_make(v->kind == ONNX_VALUE_SEQUENCE ? ENG_DT_SEQUENCE : ENG_DT_OPTIONAL, shape, 1, items);
    t->shape[1] = (int64_t)elem;
    return true;
}

static double num_at(const eng_tensor *t, size_t i)
{
    switch (t->dtype) {
    case ST_DT_FLOAT32: return ((const float *)t->data)[i];
    case ST_DT_FLOAT64: return ((const double *)t->data)[i];
    case ST_DT_FLOAT16: return st_half_to_float(((const uint16_t *)t->data)[i]);
    default: return 0;
    }
}

static bool compare(const eng_tensor *got, const eng_tensor *want, const char *oname, char *why, size_t cap)
{
    if ((want->dtype == ENG_DT_SEQUENCE || want->dtype == ENG_DT_OPTIONAL) && got->dtype == want->dtype) {
        if (got->count != want->count) {
            snprintf(why, cap, "output %s: %zu elements, expected %zu", oname, got->count, want->count);
            return false;
        }
        for (size_t i = 0; i < want->count; i++)
            if (!compare(&((const eng_tensor *)got->data)[i], &((const eng_tensor *)want->data)[i], oname, why, cap))
                return false;
        return true;
    }
    if (got->dtype != want->dtype) {
        snprintf(why, cap, "output %s: type %s, expected %s", oname, st_dtype_name(got->dtype),
                 st_dtype_name(want->dtype));
        return false;
    }
    bool shape_ok = got->rank == want->rank;
    for (uint32_t i = 0; shape_ok && i < got->rank; i++)
        shape_ok = got->shape[i] == want->shape[i];
    if (!shape_ok || got->count != want->count) {
        char gs[128] = "", ws[128] = "";
        size_t gl = 0, wl = 0;
        for (uint32_t i = 0; i < got->rank && gl < sizeof gs - 24; i++)
            gl += (size_t)snprintf(gs + gl, sizeof gs - gl, "%lld,", (long long)got->shape[i]);
        for (uint32_t i = 0; i < want->rank && wl < sizeof ws - 24; i++)
            wl += (size_t)snprintf(ws + wl, sizeof ws - wl, "%lld,", (long long)want->shape[i]);
        snprintf(why, cap, "output %s: shape [%s], expected [%s]", oname, gs, ws);
        return false;
    }
    st_dtype t = want->dtype;
    if (t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64 || t == ST_DT_FLOAT16) {
        for (size_t i = 0; i < want->count; i++) {
            double g = num_at(got, i), w = num_at(want, i);
            if (isnan(w) && isnan(g))
                continue;
            if (isinf(w) && g == w)
                continue;
            if (!(fabs(g - w) <= 1e-7 + 1e-3 * fabs(w))) {
                snprintf(why, cap, "output %s: element %zu is %.9g, expected %.9g", oname, i, g, w);
                return false;
            }
        }
        return true;
    }
    if (t == ST_DT_STRING) {
        const st_str *g = got->data, *w = want->data;
        for (size_t i = 0; i < want->count; i++)
            if (!st_str_eq(g[i], w[i])) {
                snprintf(why, cap, "output %s: string %zu is '%.*s', expected '%.*s'", oname, i,
                         (int)(g[i].len > 40 ? 40 : g[i].len), g[i].ptr, (int)(w[i].len > 40 ? 40 : w[i].len),
                         w[i].ptr);
                return false;
            }
        return true;
    }
    size_t es = st_dtype_size(t);
    if (t == ST_DT_BOOL) {
        for (size_t i = 0; i < want->count; i++)
            if ((((const uint8_t *)got->data)[i] != 0) != (((const uint8_t *)want->data)[i] != 0)) {
                snprintf(why, cap, "output %s: bool %zu differs", oname, i);
                return false;
            }
        return true;
    }
    for (size_t i = 0; i < want->count; i++)
        if (memcmp((const char *)got->data + i * es, (const char *)want->data + i * es, es) != 0) {
            snprintf(why, cap, "output %s: element %zu differs", oname, i);
            return false;
        }
    return true;
}

/* Runs one case in this process; returns RES_* and a reason. */
static int run_case(const char *dir, char *why, size_t cap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    eng_model *model = NULL;
    eng_session *sess = NULL;
    st_error err = { 0 };
    st_status s = eng_load_file(path, NULL, &model, &err);
    if (s != ST_OK) {
        snprintf(why, cap, "%s", err.msg);
        return s == ST_EUNSUPPORTED ? RES_UNSUPPORTED : RES_FAIL;
    }
    if (eng_session_new(model, &sess, &err) != ST_OK) {
        snprintf(why, cap, "%s", err.msg);
        eng_free(model);
        return RES_FAIL;
    }
    st_arena arena;
    st_arena_init(&arena, 1 << 20);
    int result = RES_PASS;
    int sets = 0;
    for (int set = 0;; set++) {
        char set_dir[4300];
        snprintf(set_dir, sizeof set_dir, "%s/test_data_set_%d", dir, set);
        if (!file_exists(set_dir))
            break;
        sets++;
        size_t n_in = eng_n_inputs(model), n_out = eng_n_outputs(model);
        if (n_in > MAX_IO || n_out > MAX_IO) {
            snprintf(why, cap, "too many inputs/outputs");
            result = RES_FAIL;
            break;
        }
        eng_tensor inputs[MAX_IO], outputs[MAX_IO], expected[MAX_IO];
        char names[MAX_IO][256];
        size_t found = 0;
        for (size_t i = 0;; i++) {
            char p[4500];
            snprintf(p, sizeof p, "%s/input_%zu.pb", set_dir, i);
            if (!file_exists(p))
                break;
            if (i >= MAX_IO) {
                result = RES_FAIL;
                break;
            }
            eng_tensor t;
            char name[256];
            st_dtype kind = i < n_in ? eng_input(model, i)->dtype : ST_DT_UNDEFINED;
            if (!load_tensor(p, kind, &arena, &t, name, sizeof name, why, cap)) {
                result = RES_UNSUPPORTED;
                break;
            }
            /* Match by name when given, else by position. */
            size_t slot = i;
            for (size_t j = 0; j < n_in && name[0]; j++)
                if (strcmp(eng_input(model, j)->name, name) == 0)
                    slot = j;
            if (slot < n_in)
                inputs[slot] = t;
            found++;
        }
        if (result != RES_PASS)
            break;
        if (found != n_in) {
            snprintf(why, cap, "test set has %zu inputs, model has %zu", found, n_in);
            result = RES_FAIL;
            break;
        }
        for (size_t i = 0; i < n_out; i++) {
            char p[4500];
            snprintf(p, sizeof p, "%s/output_%zu.pb", set_dir, i);
            if (!load_tensor(p, eng_output(model, i)->dtype, &arena, &expected[i], names[i], sizeof names[i], why,
                             cap)) {
                result = RES_UNSUPPORTED;
                break;
            }
        }
        if (result != RES_PASS)
            break;
        /* Twice: the first run records sizes, the second runs on the
         * session's static memory plan; both must be right. */
        for (int pass = 0; pass < 2 && result == RES_PASS; pass++) {
            if (eng_run(sess, inputs, n_in, outputs, n_out, &err) != ST_OK) {
                snprintf(why, cap, "%s", err.msg);
                result = err.code == ST_EUNSUPPORTED ? RES_UNSUPPORTED : RES_FAIL;
                break;
            }
            for (size_t i = 0; i < n_out; i++)
                if (!compare(&outputs[i], &expected[i], eng_output(model, i)->name, why, cap)) {
                    result = RES_FAIL;
                    break;
                }
        }
        if (result != RES_PASS)
            break;
    }
    if (sets == 0 && result == RES_PASS) {
        snprintf(why, cap, "no test_data_set_0");
        result = RES_FAIL;
    }
    st_arena_free(&arena);
    eng_session_free(sess);
    eng_free(model);
    return result;
}

/* Runs a case in a child process with a time limit. */
static int run_isolated(const char *dir, char *why, size_t cap)
{
    if (getenv("CONFORMANCE_NO_FORK")) /* for debuggers */
        return run_case(dir, why, cap);
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return RES_FAIL;
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        snprintf(why, cap, "fork failed");
        return RES_FAIL;
    }
    if (pid == 0) {
        close(pipefd[0]);
        alarm(CASE_TIMEOUT_S);
        char msg[1024] = "";
        int r = run_case(dir, msg, sizeof msg);
        ssize_t w = write(pipefd[1], msg, strlen(msg));
        (void)w;
        _exit(r);
    }
    close(pipefd[1]);
    char buf[1024];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(pipefd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(why, cap, "%s (%s)", sig == SIGALRM ? "timed out" : "crashed", strsignal(sig));
        return RES_FAIL;
    }
    snprintf(why, cap, "%s", buf);
    int code = WEXITSTATUS(status);
    return code <= RES_UNSUPPORTED ? code : RES_FAIL;
}

/* --- tallies ----------------------------------------------------------------- */

typedef struct tally {
    char key[96];
    int n[3];
} tally;

static tally tallies[1024];
static size_t n_tallies;

static void count(const char *key, int res)
{
    for (size_t i = 0; i < n_tallies; i++)
        if (strcmp(tallies[i].key, key) == 0) {
            tallies[i].n[res]++;
            return;
        }
    if (n_tallies < sizeof tallies / sizeof tallies[0]) {
        snprintf(tallies[n_tallies].key, sizeof tallies[0].key, "%s", key);
        tallies[n_tallies].n[res] = 1;
        n_tallies++;
    }
}

/* The operator a case tests: the op_type of its model's node when it has
 * one node, else the case name. */
static void case_operator(const char *dir, const char *case_name, char *op, size_t cap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    mapped m;
    snprintf(op, cap, "%s", case_name);
    if (!map_file(path, &m))
        return;
    st_arena arena;
    st_arena_init(&arena, 0);
    onnx_model model;
    if (onnx_decode_model(m.data, m.len, &arena, &model, NULL) == ST_OK && model.graph->node_count >= 1) {
        /* The last node is the op under test for function-expanded cases. */
        const onnx_node *n = &model.graph->nodes[model.graph->node_count == 1 ? 0 : model.graph->node_count - 1];
        snprintf(op, cap, "%.*s", ST_STR_FMT(n->op_type));
        if (model.graph->node_count > 1)
            snprintf(op, cap, "%.*s", ST_STR_FMT(model.graph->nodes[0].op_type));
    }
    st_arena_free(&arena);
    if (m.data)
        munmap(m.data, m.len);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool in_list(char **list, size_t n, const char *key)
{
    return bsearch(&key, list, n, sizeof *list, cmp_str) != NULL;
}

int main(int argc, char **argv)
{
    const char *only = NULL, *write_passing = NULL, *filter = NULL, *markdown = NULL;
    bool verbose = false;
    const char *dirs[16];
    size_t n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--write-passing") == 0 && i + 1 < argc)
            write_passing = argv[++i];
        else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
            filter = argv[++i];
        else if (strcmp(argv[i], "--markdown") == 0 && i + 1 < argc)
            markdown = argv[++i];
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = true;
        else if (n_dirs < 16)
            dirs[n_dirs++] = argv[i];
    }
    if (n_dirs == 0) {
        fprintf(stderr, "usage: run [--only LIST] [--write-passing LIST] [--verbose] DIR...\n");
        return 2;
    }
    char **only_list = NULL;
    size_t n_only = 0;
    if (only) {
        FILE *f = fopen(only, "r");
        if (!f) {
            fprintf(stderr, "conformance: cannot read %s\n", only);
            return 2;
        }
        char line[512];
        size_t cap = 0;
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (!line[0] || line[0] == '#')
                continue;
            if (n_only == cap) {
                cap = cap ? cap * 2 : 256;
                only_list = realloc(only_list, cap * sizeof *only_list);
            }
            only_list[n_only++] = strdup(line);
        }
        fclose(f);
        qsort(only_list, n_only, sizeof *only_list, cmp_str);
    }
    FILE *passing = write_passing ? fopen(write_passing, "w") : NULL;
    int total[3] = { 0, 0, 0 };
    char folder_rows[16][160];
    for (size_t d = 0; d < n_dirs; d++) {
        DIR *dh = opendir(dirs[d]);
        if (!dh) {
            fprintf(stderr, "conformance: %s is absent (install libonnx-testdata: make deps)\n", dirs[d]);
            total[RES_FAIL]++;
            continue;
        }
        const char *folder = strrchr(dirs[d], '/') ? strrchr(dirs[d], '/') + 1 : dirs[d];
        char **cases = NULL;
        size_t n_cases = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(dh)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            if (n_cases == cap) {
                cap = cap ? cap * 2 : 256;
                cases = realloc(cases, cap * sizeof *cases);
            }
            cases[n_cases++] = strdup(e->d_name);
        }
        closedir(dh);
        qsort(cases, n_cases, sizeof *cases, cmp_str);
        int folder_n[3] = { 0, 0, 0 };
        for (size_t c = 0; c < n_cases; c++) {
            char key[512];
            snprintf(key, sizeof key, "%s/%s", folder, cases[c]);
            if (only && !in_list(only_list, n_only, key))
                continue;
            if (filter && !strstr(key, filter))
                continue;
            char dir[2048], why[1024] = "", op[96];
            snprintf(dir, sizeof dir, "%s/%s", dirs[d], cases[c]);
            int res = run_isolated(dir, why, sizeof why);
            case_operator(dir, cases[c], op, sizeof op);
            count(op, res);
            folder_n[res]++;
            total[res]++;
            if (res == RES_PASS && passing)
                fprintf(passing, "%s\n", key);
            if (verbose || (only && res != RES_PASS))
                printf("%-12s %s%s%s\n", res == RES_PASS ? "pass" : res == RES_FAIL ? "FAIL" : "unsupported",
                       key, why[0] ? ": " : "", why);
        }
        printf("folder %-20s %4d passed %4d failed %4d unsupported\n", folder, folder_n[0], folder_n[1],
               folder_n[2]);
        int n_all = folder_n[0] + folder_n[1] + folder_n[2];
        snprintf(folder_rows[d], sizeof folder_rows[d], "| %s | %d | %d | %d | %d | %.1f %% |", folder, n_all,
                 folder_n[0], folder_n[1], folder_n[2], n_all ? 100.0 * folder_n[0] / n_all : 0.0);
        for (size_t c = 0; c < n_cases; c++)
            free(cases[c]);
        free(cases);
    }
    if (!only) {
        printf("\n%-28s %6s %6s %6s\n", "operator", "pass", "fail", "unsup");
        for (size_t i = 0; i < n_tallies; i++)
            printf("%-28s %6d %6d %6d\n", tallies[i].key, tallies[i].n[0], tallies[i].n[1], tallies[i].n[2]);
    }
    if (passing)
        fclose(passing);
    FILE *md = markdown && !only ? fopen(markdown, "w") : NULL;
    if (md) {
        fprintf(md, "# ONNX conformance\n\n"
                    "Every case of Debian's `libonnx-testdata` run through the engine by `make conformance`\n"
                    "(rtol 1e-3, atol 1e-7; exact for integers, bool and strings; each case run twice, on\n"
                    "the arena path and then on the static memory plan).  *Unsupported* means the model\n"
                    "uses an operator, type or attribute the engine refuses at load with a message.\n"
                    "This file is written by `make conformance`.\n\n"
                    "| folder | cases | passed | failed | unsupported | pass rate |\n|---|---|---|---|---|---|\n");
        for (size_t d = 0; d < n_dirs; d++)
            fprintf(md, "%s\n", folder_rows[d]);
        fprintf(md, "\n## By operator\n\nThe operator a case tests is its model's only (or first) node.\n\n"
                    "| operator | passed | failed | unsupported |\n|---|---|---|---|\n");
        for (size_t i = 0; i < n_tallies; i++)
            fprintf(md, "| %s | %d | %d | %d |\n", tallies[i].key, tallies[i].n[0], tallies[i].n[1],
                    tallies[i].n[2]);
        fclose(md);
    }
    for (size_t i = 0; i < n_only; i++)
        free(only_list[i]);
    free(only_list);
    printf("%d passed, %d failed\n", total[RES_PASS], total[RES_FAIL] + total[RES_UNSUPPORTED]);
    return total[RES_FAIL] + total[RES_UNSUPPORTED] ? 1 : 0;
}
