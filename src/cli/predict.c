/* predict.c - `stratus predict`: batch transform.  Inputs are mapped, cut
 * into batches along the first dimension, run, and each output is streamed
 * into DIR/<output>.npy (written to a temporary file, renamed at the end),
 * so inputs far larger than memory go through.  A sequence of maps (what
 * ONNX-ML's ZipMap gives: one map of class -> probability per row) is
 * written as an [N, keys] array in the first map's key order, with the
 * keys as a JSON array in DIR/<output>.keys.json.  String tensors (class
 * labels), which .npy cannot hold, go to DIR/<output>.json as nested JSON
 * arrays following the shape. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "json/json.h"
#include "cli/progress.h"
#include "cli/tensors.h"

typedef struct out_file {
    char path[4096];
    char tmp[4200];
    int fd;
    eng_tensor first;    /* shape and type of the first batch's output */
    bool is_maps;        /* a sequence of maps, written dense (see above) */
    bool is_json;        /* strings, written as JSON (see above) */
    size_t rows_written; /* is_json: rows so far, for the commas */
    st_buf keys_json;    /* is_maps: the keys, written at the end */
    st_buf dense;        /* is_maps: this batch's values as [N, keys] */
} out_file;

/* File names from output names: keep [A-Za-z0-9._-], map the rest to '_'. */
static void safe_name(const char *name, char *buf, size_t cap)
{
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < cap; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        buf[n++] = ok ? c : '_';
    }
    if (n == 0 || (n <= 2 && buf[0] == '.'))
        buf[n++] = '_';
    buf[n] = '\0';
}

static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* Opens the temporary file of an output and writes its .npy header for the
 * full shape: the first batch's shape with dim 0 replaced by total_rows. */
static int out_open(const cli_verb *verb, out_file *o, const eng_tensor *t, bool is_batched, size_t total_rows)
{
    st_error err = { 0 };
    if (t->dtype == ST_DT_UNDEFINED)
        return cli_fail(verb, "%s: the output has no type that can be written", o->path);
    if (t->dtype == ST_DT_STRING) {
        size_t n = strlen(o->path);
        snprintf(o->path + n - 4, sizeof o->path - (n - 4), ".json");
        snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld", o->path, (long)getpid());
        o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (o->fd < 0 || (t->rank > 0 && !write_all(o->fd, "[", 1)))
            return cli_fail(verb, "%s: cannot write: %s", o->tmp, strerror(errno));
        o->is_json = true;
        o->first = *t;
        return CLI_EXIT_OK;
    }
    size_t shape[ENG_MAX_RANK];
    for (uint32_t i = 0; i < t->rank; i++)
        shape[i] = (size_t)t->shape[i];
    if (is_batched)
        shape[0] = total_rows;
    st_buf header = { 0 };
    if (npy_write_header(&header, t->dtype, shape, t->rank, 0, &err) != ST_OK) {
        st_buf_free(&header);
        return cli_fail(verb, "%s: %s", o->path, st_error_msg(&err));
    }
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld", o->path, (long)getpid());
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = o->fd >= 0 && write_all(o->fd, header.data, header.len);
    st_buf_free(&header);
    if (!ok)
        return cli_fail(verb, "%s: cannot write: %s", o->tmp, strerror(errno));
    o->first = *t;
    return CLI_EXIT_OK;
}

/* Turns a sequence of maps into a dense [N, keys] tensor over o->dense.
 * Every map must have the first map's keys in the same order (ZipMap's
 * output does) and numeric values.  On the first batch it records the
 * keys as JSON.  Returns an error message or NULL. */
static const char *maps_to_dense(out_file *o, const eng_tensor *seq, bool is_first, eng_tensor *dense)
{
    const eng_tensor *maps = seq->data;
    size_t rows = seq->count, n_keys = rows ? maps[0].count : 0;
    st_dtype vt = rows ? (st_dtype)maps[0].shape[2] : ST_DT_FLOAT32;
    if (vt == ST_DT_STRING || !st_dtype_is_valid((int)vt) || vt == ST_DT_UNDEFINED)
        return "map values must be numbers to be written as .npy";
    size_t es = st_dtype_size(vt), row_bytes, bytes;
    if (st_mul_overflow(n_keys, es, &row_bytes) || st_mul_overflow(rows, row_bytes, &bytes))
        return "too many map entries";
    o->dense.len = 0;
    if (st_buf_reserve(&o->dense, bytes + 1) != ST_OK)
        return "out of memory";
    const eng_tensor *keys0 = rows ? &((const eng_tensor *)maps[0].data)[0] : NULL;
    for (size_t r = 0; r < rows; r++) {
        const eng_tensor *kv = maps[r].data;
        if (maps[r].dtype != ENG_DT_MAP || maps[r].count != n_keys || kv[1].dtype != vt ||
            kv[0].dtype != keys0->dtype || (kv[0].dtype != ST_DT_STRING && kv[0].dtype != ST_DT_INT64))
            return "the maps differ in keys or value type, so they do not form a table";
        for (size_t i = 0; i < n_keys; i++) {
            bool same = kv[0].dtype == ST_DT_STRING
                            ? st_str_eq(((const st_str *)kv[0].data)[i], ((const st_str *)keys0->data)[i])
                            : ((const int64_t *)kv[0].data)[i] == ((const int64_t *)keys0->data)[i];
            if (!same)
                return "the maps differ in keys, so they do not form a table";
        }
        memcpy(o->dense.data + r * row_bytes, kv[1].data, row_bytes);
    }
    if (is_first && rows) {
        st_error err = { 0 };
        json_writer w;
        json_writer_init(&w, &o->keys_json, &err);
        json_write_array_begin(&w);
        for (size_t i = 0; i < n_keys; i++) {
            if (keys0->dtype == ST_DT_STRING)
                json_write_string(&w, ((const st_str *)keys0->data)[i]);
            else
                json_write_int64(&w, ((const int64_t *)keys0->data)[i]);
        }
        json_write_array_end(&w);
        if (json_writer_finish(&w) != ST_OK)
            return "cannot write the keys as JSON";
        st_buf_append(&o->keys_json, "\n", 1);
    }
    int64_t shape[2] = { (int64_t)rows, (int64_t)n_keys };
    *dense = eng_tensor_make(vt, shape, 2, o->dense.data);
    return NULL;
}

/* Writes DIR/<output>.keys.json next to the .npy (temporary file, rename). */
static int keys_write(const cli_verb *verb, const out_file *o)
{
    char path[4200], tmp[4300];
    size_t n = strlen(o->path);
    snprintf(path, sizeof path, "%.*s.keys.json", (int)(n - 4), o->path);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && (o->keys_json.len ? write_all(fd, o->keys_json.data, o->keys_json.len)
                                           : write_all(fd, "[]\n", 3)); /* no rows, no keys seen */
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return cli_fail(verb, "%s: cannot write: %s", path, strerror(errno));
    }
    return CLI_EXIT_OK;
}

static void json_strings(json_writer *w, const st_str *s, const int64_t *shape, uint32_t rank)
{
    if (rank == 0) {
        json_write_string(w, *s);
        return;
    }
    size_t inner = 1;
    for (uint32_t d = 1; d < rank; d++)
        inner *= (size_t)shape[d];
    json_write_array_begin(w);
    for (int64_t i = 0; i < shape[0]; i++)
        json_strings(w, s + (size_t)i * inner, shape + 1, rank - 1);
    json_write_array_end(w);
}

/* Appends this batch's rows of a string output to its JSON file. */
static bool strings_write(out_file *o, const eng_tensor *t)
{
    size_t rows = t->rank ? (size_t)t->shape[0] : 1, inner = rows ? t->count / rows : 0;
    const st_str *s = t->data;
    o->dense.len = 0;
    for (size_t r = 0; r < rows; r++) {
        if (o->rows_written++ && st_buf_append(&o->dense, ",", 1) != ST_OK)
            return false;
        json_writer w;
        json_writer_init(&w, &o->dense, NULL);
        json_strings(&w, s + r * inner, t->shape + 1, t->rank ? t->rank - 1 : 0);
        if (json_writer_finish(&w) != ST_OK)
            return false;
    }
    return write_all(o->fd, o->dense.data, o->dense.len);
}

static void out_abort(out_file *o)
{
    st_buf_free(&o->keys_json);
    st_buf_free(&o->dense);
    if (o->fd >= 0) {
        close(o->fd);
        unlink(o->tmp);
        o->fd = -1;
    }
}

int cli_predict_run(const cli_verb *verb, int argc, char **argv)
{
    cli_multi specs = { .count = 0 };
    const char *out_dir = NULL;
    long threads = 1, batch_size = 256;
    const cli_flag flags[] = {
        { "--input", CLI_MULTI, &specs, 0, 0 },
        { "--output-dir", CLI_STRING, &out_dir, 0, 0 },
        { "--threads", CLI_INT, &threads, 1, 1024 },
        { "--batch-size", CLI_INT, &batch_size, 0, 1L << 30 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[1];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 1, &npos))
        return CLI_EXIT_USAGE;
    if (npos != 1)
        return cli_usage_error(verb, "needs a model file");
    if (!out_dir)
        return cli_usage_error(verb, "needs --output-dir DIR");
    if (specs.count == 0)
        return cli_usage_error(verb, "needs at least one --input NAME=FILE");
    char model_path[4096];
    int ref_rc = cli_model_path(verb, pos[0], model_path, sizeof model_path);
    if (ref_rc != CLI_EXIT_OK)
        return ref_rc;
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return cli_fail(verb, "cannot create %s: %s", out_dir, strerror(errno));

    st_error err = { 0 };
    eng_options opt = { .threads = (int)threads };
    eng_model *model = NULL;
    eng_session *sess = NULL;
    cli_inputs in = { 0 };
    out_file *outs = NULL;
    eng_tensor *results = NULL, *batch_in = NULL;
    size_t n_out = 0;
    int rc = CLI_EXIT_OK;
    if (eng_load_file(model_path, &opt, &model, &err) != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
        goto done;
    }
    if ((rc = cli_inputs_load(verb, model, &specs, true, &in)) != CLI_EXIT_OK)
        goto done;
    if (eng_session_new(model, &sess, &err) != ST_OK) {
        rc = cli_fail(verb, "%s", st_error_msg(&err));
        goto done;
    }
    n_out = eng_n_outputs(model);
    outs = st_calloc(n_out + 1, sizeof *outs);
    results = st_calloc(n_out + 1, sizeof *results);
    batch_in = st_calloc(in.n + 1, sizeof *batch_in);
    if (!outs || !results || !batch_in) {
        rc = cli_fail(verb, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_out; i++) {
        char name[256];
        safe_name(eng_output(model, i)->name, name, sizeof name);
        snprintf(outs[i].path, sizeof outs[i].path, "%s/%s.npy", out_dir, name);
        outs[i].fd = -1;
    }

    /* Batch along dim 0 when every input shares it and the model lets it vary. */
    size_t rows = 0;
    bool is_batched = batch_size > 0 && in.n > 0;
    for (size_t i = 0; i < in.n && is_batched; i++) {
        const eng_io *io = eng_input(model, i);
        const eng_tensor *t = &in.tensors[i];
        if (t->rank == 0 || (io->rank > 0 && io->dims[0] >= 0) || (i > 0 && (size_t)t->shape[0] != rows))
            is_batched = false;
        else
            rows = (size_t)t->shape[0];
    }
    if (is_batched && (rows == 0 || rows <= (size_t)batch_size))
        is_batched = false; /* one run covers it */
    size_t step = is_batched ? (size_t)batch_size : 1;
    size_t total = is_batched ? rows : 1;
    cli_progress bar;
    cli_progress_start(&bar, "predict", total);
    for (size_t start = 0; start < total; start += step) {
        size_t take = is_batched ? (total - start < step ? total - start : step) : 0;
        for (size_t i = 0; i < in.n; i++) {
            batch_in[i] = in.tensors[i];
            if (is_batched) {
                size_t row_elems = in.tensors[i].count / rows;
                size_t es = st_dtype_size(in.tensors[i].dtype);
                batch_in[i].shape[0] = (int64_t)take;
                batch_in[i].count = row_elems * take;
                batch_in[i].data = (char *)in.tensors[i].data + start * row_elems * es;
            }
        }
        if (eng_run(sess, batch_in, in.n, results, n_out, &err) != ST_OK) {
            rc = cli_fail(verb, "%s", st_error_msg(&err));
            goto done;
        }
        for (size_t o = 0; o < n_out; o++) {
            const eng_tensor *t = &results[o];
            eng_tensor dense;
            if (t->dtype == ENG_DT_SEQUENCE && (st_dtype)t->shape[1] == ENG_DT_MAP) {
                const char *why = maps_to_dense(&outs[o], t, start == 0, &dense);
                if (why) {
                    rc = cli_fail(verb, "output '%s': %s", eng_output(model, o)->name, why);
                    goto done;
                }
                outs[o].is_maps = true;
                t = &dense;
            }
            if (is_batched && (t->rank == 0 || (size_t)t->shape[0] != take)) {
                rc = cli_fail(verb, "output '%s' does not keep the batch as its first dimension, so it cannot be "
                                    "computed in batches; run with --batch-size 0",
                              eng_output(model, o)->name);
                goto done;
            }
            if (start == 0 && (rc = out_open(verb, &outs[o], t, is_batched, rows)) != CLI_EXIT_OK)
                goto done;
            bool same = t->dtype == outs[o].first.dtype && t->rank == outs[o].first.rank;
            for (uint32_t d = 1; same && d < t->rank; d++)
                same = t->shape[d] == outs[o].first.shape[d];
            if (!same) {
                rc = cli_fail(verb, "output '%s' changed shape between batches; run with --batch-size 0",
                              eng_output(model, o)->name);
                goto done;
            }
            bool wrote = outs[o].is_json ? strings_write(&outs[o], t)
                                         : write_all(outs[o].fd, t->data, t->count * st_dtype_size(t->dtype));
            if (!wrote) {
                rc = cli_fail(verb, "%s: write failed: %s", outs[o].tmp, strerror(errno));
                goto done;
            }
        }
        cli_progress_update(&bar, is_batched ? start + take : 1);
    }
    cli_progress_finish(&bar);
    for (size_t o = 0; o < n_out; o++) {
        if (outs[o].is_json && !write_all(outs[o].fd, outs[o].first.rank ? "]\n" : "\n", outs[o].first.rank ? 2 : 1)) {
            rc = cli_fail(verb, "%s: write failed: %s", outs[o].tmp, strerror(errno));
            goto done;
        }
        if (fsync(outs[o].fd) != 0 || close(outs[o].fd) != 0) {
            outs[o].fd = -1;
            rc = cli_fail(verb, "%s: cannot flush: %s", outs[o].tmp, strerror(errno));
            goto done;
        }
        outs[o].fd = -1;
        if (rename(outs[o].tmp, outs[o].path) != 0) {
            rc = cli_fail(verb, "%s: cannot rename into place: %s", outs[o].path, strerror(errno));
            goto done;
        }
        if (outs[o].is_maps && (rc = keys_write(verb, &outs[o])) != CLI_EXIT_OK)
            goto done;
    }
done:
    for (size_t o = 0; outs && o < n_out; o++)
        out_abort(&outs[o]);
    st_free(outs);
    st_free(results);
    st_free(batch_in);
    cli_inputs_free(&in);
    eng_session_free(sess);
    eng_free(model);
    return rc;
}
