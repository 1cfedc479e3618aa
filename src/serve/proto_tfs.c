/* proto_tfs.c - the JSON forms that share TF Serving's shape of request:
 * TF Serving REST predict ("instances" rows or "inputs" columns), Vertex
 * AI ({"instances", "parameters"} -> {"predictions"}) and SageMaker's
 * application/json (those two, or a bare list of rows), plus SageMaker's
 * text/csv in and out.
 *
 * Rows: each instance is the value of the only input, or an object naming
 * every input; the batch is the number of instances, and every instance of
 * an input has the same shape.  Columns: the value of the only input, or
 * an object naming every input, each taken whole.  Answers: "predictions"
 * (a row form, and always for Vertex and SageMaker) holds the only output
 * as is, or one object per row naming the outputs; "outputs" (TF Serving
 * columns) holds the only output or an object of them.  String outputs
 * whose name ends in "_bytes" go out as {"b64": ...}; ZipMap outputs as a
 * list of {label: probability} objects.  Vertex's "deployedModelId" is
 * added by Vertex itself, not by the container, so it is not written here.
 * TF Serving's NaN/Infinity tokens are not JSON and are refused (400). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "serve/proto_int.h"

/* ---- request ------------------------------------------------------------------- */

/* What has been read for one input. */
typedef struct col {
    st_buf buf;                     /* elements: the dtype's, or st_str */
    size_t item_shape[JSON_MAX_RANK];
    size_t item_rank;
    size_t items;                   /* instances read (rows) */
    bool given;                     /* columns: present */
} col;

static const char *quoted(char *buf, size_t cap, st_str s)
{
    snprintf(buf, cap, "\"%.*s\"", (int)(s.len > 200 ? 200 : s.len), s.ptr);
    return buf;
}

static st_status unknown_input(sv_ctx *c, const char *where, st_str name)
{
    char names[300], q[210];
    return sv_fail(c, 400, ST_EINVAL, "%sunknown input %s; the model's inputs are %s", where,
                   quoted(q, sizeof q, name),
                   sv_names_text(names, sizeof names, c->sig->inputs, c->sig->n_inputs));
}

/* Reads one value of input idx, appended to its column; the value's shape
 * must be the same as the previous ones' (rows). */
static st_status read_item(sv_ctx *c, json_reader *r, const char *where, size_t idx, col *k,
                           bool same_shape)
{
    const eng_io *io = &c->sig->inputs[idx];
    char label[300];
    snprintf(label, sizeof label, "%sinput \"%s\"", where, io->name);
    size_t shape[JSON_MAX_RANK], rank = 0;
    st_status s = sv_read_value(c, r, label, io->dtype, &k->buf, shape, &rank);
    if (s != ST_OK)
        return c->failed ? s : sv_fail_json(c, r, label);
    if (same_shape && k->items > 0 &&
        (rank != k->item_rank || memcmp(shape, k->item_shape, rank * sizeof shape[0]) != 0)) {
        int64_t a[JSON_MAX_RANK], b[JSON_MAX_RANK];
        char sa[160], sb[160];
        for (size_t i = 0; i < rank; i++)
            a[i] = (int64_t)shape[i];
        for (size_t i = 0; i < k->item_rank; i++)
            b[i] = (int64_t)k->item_shape[i];
        return sv_fail(c, 400, ST_ESHAPE, "%s has shape %s, the first instance's has %s: every "
                       "instance must have the same shape", label,
                       sv_dims_text(sa, sizeof sa, a, (int)rank),
                       sv_dims_text(sb, sizeof sb, b, (int)k->item_rank));
    }
    k->item_rank = rank;
    memcpy(k->item_shape, shape, rank * sizeof shape[0]);
    k->items++;
    return ST_OK;
}

/* A {"b64": "..."} object whose key was just read: one binary string for
 * the model's only (string) input. */
static st_status read_b64_scalar(sv_ctx *c, json_reader *r, col *k, bool same_shape)
{
    st_str text, bytes;
    const char *name = c->sig->inputs[0].name;
    if (json_read_string(r, &text) != ST_OK)
        return sv_fail_json(c, r, "\"b64\"");
    st_str key;
    if (json_object_next(r, &key))
        return sv_fail(c, 400, ST_EINVAL, "input \"%s\": a {\"b64\": ...} object has one member",
                       name);
    if (json_reader_status(r) != ST_OK)
        return sv_fail_json(c, r, NULL);
    st_status s = sv_b64_decode(c, name, text, &bytes);
    if (s != ST_OK)
        return s;
    if (same_shape && k->items > 0 && k->item_rank != 0)
        return sv_fail(c, 400, ST_ESHAPE, "input \"%s\": every instance must have the same shape",
                       name);
    if (st_buf_append(&k->buf, &bytes, sizeof bytes) != ST_OK)
        return sv_fail(c, 503, ST_ENOMEM, "out of memory");
    k->item_rank = 0;
    k->items++;
    return ST_OK;
}

/* Would an object here be {"b64": ...} for the only input rather than an
 * object naming the inputs? */
static bool b64_is_value(const sv_model_sig *sig, st_str first_key)
{
    return sig->n_inputs == 1 && sig->inputs[0].dtype == ST_DT_STRING &&
           st_str_eq_c(first_key, "b64") && strcmp(sig->inputs[0].name, "b64") != 0;
}

/* An object naming inputs; its first key is already read. */
static st_status read_named(sv_ctx *c, json_reader *r, const char *where, st_str key, col *cols,
                            bool *row_seen, bool rows)
{
    do {
        int idx = sv_find_input(c->sig, key);
        if (idx < 0)
            return unknown_input(c, where, key);
        if (row_seen[idx]) {
            char q[210];
            return sv_fail(c, 400, ST_EINVAL, "%sinput %s given twice", where,
                           quoted(q, sizeof q, key));
        }
        row_seen[idx] = true;
        st_status s = read_item(c, r, where, (size_t)idx, &cols[idx], rows);
        if (s != ST_OK)
            return s;
    } while (json_object_next(r, &key));
    if (json_reader_status(r) != ST_OK)
        return sv_fail_json(c, r, NULL);
    return ST_OK;
}

/* Is the value at the cursor a list whose first element is not an
 * object?  Looks at the body's bytes only. */
static bool is_list_of_values(const sv_ctx *c, const json_reader *r)
{
    size_t i = json_reader_offset(r), n = c->body_len;
    const uint8_t *p = c->body;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    if (i >= n || p[i] != '[')
        return false;
    for (i++; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'); i++)
        ;
    return i < n && p[i] != '{';
}

/* Rows of the only, numeric input: one typed-array read of the whole
 * list, which is [rows, item...] already. */
static st_status read_rows_numeric(sv_ctx *c, json_reader *r, col *k, size_t *n_rows)
{
    const eng_io *io = &c->sig->inputs[0];
    char label[240];
    snprintf(label, sizeof label, "\"instances\" of input \"%s\"", io->name);
    size_t shape[JSON_MAX_RANK], rank = 0;
    st_status s = sv_read_value(c, r, label, io->dtype, &k->buf, shape, &rank);
    if (s != ST_OK)
        return c->failed ? s : sv_fail_json(c, r, label);
    if (shape[0] == 0)
        return sv_fail(c, 400, ST_EINVAL, "\"instances\" is empty: send at least one instance");
    k->item_rank = rank - 1;
    memcpy(k->item_shape, shape + 1, k->item_rank * sizeof shape[0]);
    k->items = shape[0];
    *n_rows = shape[0];
    return ST_OK;
}

static st_status read_rows(sv_ctx *c, json_reader *r, col *cols, bool *row_seen, size_t *n_rows)
{
    const sv_model_sig *sig = c->sig;
    char names[300];
    if (sig->n_inputs == 1 && sig->inputs[0].dtype != ST_DT_STRING && is_list_of_values(c, r))
        return read_rows_numeric(c, r, &cols[0], n_rows);
    if (json_enter_array(r) != ST_OK)
        return sv_fail(c, 400, ST_ETYPE, "\"instances\" must be a list with one instance per row");
    size_t row = 0;
    while (json_array_next(r)) {
        char where[48];
        snprintf(where, sizeof where, "instances[%zu]: ", row);
        st_status s;
        st_str key;
        if (json_peek(r) == JSON_KIND_OBJECT) {
            json_enter_object(r);
            if (!json_object_next(r, &key)) {
                if (json_reader_status(r) != ST_OK)
                    return sv_fail_json(c, r, NULL);
                return sv_fail(c, 400, ST_EINVAL, "%san empty object; name the inputs %s", where,
                               sv_names_text(names, sizeof names, sig->inputs, sig->n_inputs));
            }
            if (b64_is_value(sig, key)) {
                s = read_b64_scalar(c, r, &cols[0], true);
            } else {
                memset(row_seen, 0, sig->n_inputs * sizeof row_seen[0]);
                s = read_named(c, r, where, key, cols, row_seen, true);
                for (size_t i = 0; s == ST_OK && i < sig->n_inputs; i++)
                    if (!row_seen[i])
                        s = sv_fail(c, 400, ST_EINVAL, "%smissing input \"%s\"", where,
                                    sig->inputs[i].name);
            }
        } else if (json_reader_status(r) != ST_OK) {
            return sv_fail_json(c, r, NULL);
        } else if (sig->n_inputs != 1) {
            return sv_fail(c, 400, ST_EINVAL, "%sthe model has %zu inputs, so each instance must "
                           "be an object naming them: %s", where, sig->n_inputs,
                           sv_names_text(names, sizeof names, sig->inputs, sig->n_inputs));
        } else {
            s = read_item(c, r, where, 0, &cols[0], true);
        }
        if (s != ST_OK)
            return s;
        row++;
    }
    if (json_reader_status(r) != ST_OK)
        return sv_fail_json(c, r, NULL);
    if (row == 0)
        return sv_fail(c, 400, ST_EINVAL, "\"instances\" is empty: send at least one instance");
    *n_rows = row;
    return ST_OK;
}

static st_status read_columns(sv_ctx *c, json_reader *r, col *cols, bool *seen)
{
    const sv_model_sig *sig = c->sig;
    if (json_peek(r) == JSON_KIND_OBJECT) {
        st_str key;
        json_enter_object(r);
        if (!json_object_next(r, &key)) {
            if (json_reader_status(r) != ST_OK)
                return sv_fail_json(c, r, NULL);
            return sv_fail(c, 400, ST_EINVAL, "\"inputs\" is an empty object");
        }
        if (b64_is_value(sig, key)) {
            seen[0] = true;
            return read_b64_scalar(c, r, &cols[0], false);
        }
        return read_named(c, r, "", key, cols, seen, false);
    }
    if (json_reader_status(r) != ST_OK)
        return sv_fail_json(c, r, NULL);
    if (sig->n_inputs != 1) {
        char names[300];
        return sv_fail(c, 400, ST_EINVAL, "the model has %zu inputs, so \"inputs\" must be an "
                       "object naming them: %s", sig->n_inputs,
                       sv_names_text(names, sizeof names, sig->inputs, sig->n_inputs));
    }
    seen[0] = true;
    return read_item(c, r, "", 0, &cols[0], false);
}

/* Moves a column into out->inputs[idx]: [rows, item...] for rows (or the
 * item itself for a model without a batch axis given one instance). */
static st_status finish_col(sv_ctx *c, size_t idx, col *k, bool rows, size_t n_rows,
                            sv_request *out)
{
    const eng_io *io = &c->sig->inputs[idx];
    int64_t shape[JSON_MAX_RANK + 1];
    size_t rank = 0;
    bool lead = rows && !(io->rank >= 0 && (size_t)io->rank == k->item_rank && n_rows == 1);
    if (lead)
        shape[rank++] = (int64_t)n_rows;
    for (size_t i = 0; i < k->item_rank; i++)
        shape[rank++] = (int64_t)k->item_shape[i];
    if (rank > ENG_MAX_RANK)
        return sv_fail(c, 400, ST_ESHAPE, "input \"%s\" has %zu dimensions, more than %d",
                       io->name, rank, ENG_MAX_RANK);
    st_status s = sv_check_shape(c, idx, shape, rank);
    size_t count;
    if (s != ST_OK || (s = sv_count(c, io->name, io->dtype, shape, rank, &count)) != ST_OK)
        return s;
    eng_tensor *t = &out->inputs[idx];
    t->dtype = io->dtype;
    t->rank = (uint32_t)rank;
    memcpy(t->shape, shape, rank * sizeof shape[0]);
    if ((s = sv_alloc_data(c, t, count)) != ST_OK)
        return s;
    size_t es = io->dtype == ST_DT_STRING ? sizeof(st_str) : st_dtype_size(io->dtype);
    if (k->buf.len != count * es)
        return sv_fail(c, 500, ST_EINTERNAL, "input \"%s\": %zu bytes read for %zu elements",
                       io->name, k->buf.len, count);
    if (count)
        memcpy(t->data, k->buf.data, count * es);
    return ST_OK;
}

st_status sv_decode_tfs(sv_ctx *c, sv_request *out)
{
    const sv_model_sig *sig = c->sig;
    json_reader r;
    json_limits lim = { .max_input_bytes = c->body_len + 1, .max_elements = c->body_len + 1 };
    json_reader_init(&r, c->body, c->body_len, &lim, c->arena, c->err);
    size_t n = sig->n_inputs ? sig->n_inputs : 1, n_rows = 0;
    col *cols = st_calloc(n, sizeof *cols);
    bool *seen = st_arena_calloc(c->arena, n, sizeof(bool), 8);
    bool *row_seen = st_arena_calloc(c->arena, n, sizeof(bool), 8);
    bool has_rows = false, has_cols = false;
    st_status s = ST_OK;
    if (!cols || !seen || !row_seen) {
        s = sv_fail(c, 503, ST_ENOMEM, "out of memory");
        goto cleanup;
    }
    json_kind top = json_peek(&r);
    if (top == JSON_KIND_ARRAY && c->proto == SV_PROTO_SAGEMAKER) {
        has_rows = true;
        s = read_rows(c, &r, cols, row_seen, &n_rows);
    } else if (top != JSON_KIND_OBJECT) {
        if (json_reader_status(&r) != ST_OK)
            s = sv_fail_json(c, &r, "invalid JSON");
        else
            s = sv_fail(c, 400, ST_ETYPE, "the request body must be a JSON object with "
                        "\"instances\"%s", c->proto == SV_PROTO_VERTEX ? ""
                        : c->proto == SV_PROTO_SAGEMAKER ? " or \"inputs\", or a list of rows"
                                                         : " or \"inputs\"");
        goto cleanup;
    } else {
        st_str key;
        json_enter_object(&r);
        while (s == ST_OK && json_object_next(&r, &key)) {
            bool is_rows = st_str_eq_c(key, "instances"), is_cols = st_str_eq_c(key, "inputs");
            if ((is_rows || is_cols) && (has_rows || has_cols)) {
                s = sv_fail(c, 400, ST_EINVAL, "send either \"instances\" (rows) or \"inputs\" "
                            "(columns), once");
            } else if (is_rows) {
                has_rows = true;
                s = read_rows(c, &r, cols, row_seen, &n_rows);
            } else if (is_cols) {
                has_cols = true;
                s = read_columns(c, &r, cols, seen);
            } else if (st_str_eq_c(key, "signature_name")) {
                /* One signature per model: any name selects it. */
                st_str name;
                if (json_peek(&r) != JSON_KIND_STRING && json_reader_status(&r) == ST_OK)
                    s = sv_fail(c, 400, ST_ETYPE, "\"signature_name\" must be a string");
                else if (json_read_string(&r, &name) != ST_OK)
                    s = sv_fail_json(c, &r, "invalid JSON");
            } else if (st_str_eq_c(key, "parameters")) {
                if (json_peek(&r) != JSON_KIND_OBJECT && json_peek(&r) != JSON_KIND_NULL &&
                    json_reader_status(&r) == ST_OK)
                    s = sv_fail(c, 400, ST_ETYPE, "\"parameters\" must be an object");
            }
        }
    }
    if (s != ST_OK)
        goto cleanup;
    if (json_reader_finish(&r) != ST_OK) {
        s = sv_fail_json(c, &r, "invalid JSON");
        goto cleanup;
    }
    if (!has_rows && !has_cols) {
        s = sv_fail(c, 400, ST_EINVAL, "the request has no \"instances\"%s",
                    c->proto == SV_PROTO_VERTEX ? "" : " (rows) or \"inputs\" (columns)");
        goto cleanup;
    }
    if (has_rows)
        for (size_t i = 0; i < sig->n_inputs; i++)
            seen[i] = cols[i].items > 0;
    for (size_t i = 0; s == ST_OK && i < sig->n_inputs; i++)
        if (seen[i])
            s = finish_col(c, i, &cols[i], has_rows, n_rows, out);
    if (s != ST_OK)
        goto cleanup;
    /* Vertex and SageMaker always answer "predictions". */
    out->is_row_form = has_rows || c->proto != SV_PROTO_TFS;
    s = sv_finish_request(c, out, seen);
cleanup:
    for (size_t i = 0; cols && i < n; i++)
        st_buf_free(&cols[i].buf);
    st_free(cols);
    return s;
}

/* ---- text/csv request ---------------------------------------------------------- */

st_status sv_decode_csv(sv_ctx *c, sv_request *out)
{
    const sv_model_sig *sig = c->sig;
    if (sig->n_inputs == 0)
        return sv_fail(c, 400, ST_EINVAL, "the model takes no inputs");
    const eng_io *io = &sig->inputs[0];
    if (io->dtype == ST_DT_STRING || st_dtype_size(io->dtype) == 0)
        return sv_fail(c, 415, ST_EUNSUPPORTED, "input \"%s\" takes %s, which text/csv cannot "
                       "carry: send application/json", io->name, st_dtype_name(io->dtype));
    sv_csv csv;
    st_status s = sv_csv_parse(c->body, c->body_len, io->dtype, c->max_elements, c->arena, &csv,
                               c->err);
    if (s != ST_OK) {
        /* The message is already in c->err; only the status is ours. */
        c->failed = true;
        if (c->http_status)
            *c->http_status = s == ST_ELIMIT ? 413 : s == ST_ENOMEM ? 503 : 400;
        return s;
    }
    /* A one-column CSV feeds a 1-D input as [rows]. */
    int64_t shape[2] = { (int64_t)csv.rows, (int64_t)csv.cols };
    size_t rank = io->rank == 1 && csv.cols == 1 ? 1 : 2;
    size_t count;
    if ((s = sv_check_shape(c, 0, shape, rank)) != ST_OK ||
        (s = sv_count(c, io->name, io->dtype, shape, rank, &count)) != ST_OK)
        return s;
    eng_tensor *t = &out->inputs[0];
    t->dtype = io->dtype;
    t->rank = (uint32_t)rank;
    memcpy(t->shape, shape, rank * sizeof shape[0]);
    t->data = csv.data;
    t->count = count;
    bool seen[1] = { true };
    if (sig->n_inputs > 1) {
        char dims[128];
        return sv_fail(c, 400, ST_EINVAL, "text/csv fills only input \"%s\"; the model also needs "
                       "\"%s\" (shape %s): send application/json", io->name, sig->inputs[1].name,
                       sv_dims_text(dims, sizeof dims, sig->inputs[1].dims, sig->inputs[1].rank));
    }
    out->is_row_form = true;
    return sv_finish_request(c, out, seen);
}

/* ---- response ------------------------------------------------------------------ */

static bool ends_with_bytes(const char *name)
{
    size_t n = strlen(name);
    return n >= 6 && memcmp(name + n - 6, "_bytes", 6) == 0;
}

static void write_str(json_writer *w, st_str s, bool b64)
{
    if (!b64) {
        json_write_string(w, s);
        return;
    }
    st_buf tmp = { 0 };
    json_write_object_begin(w);
    json_write_key(w, ST_STR("b64"));
    if (sv_b64_encode(&tmp, s) == ST_OK)
        json_write_string(w, st_buf_str(&tmp));
    else
        json_write_null(w);
    json_write_object_end(w);
    st_buf_free(&tmp);
}

static void write_strings(json_writer *w, const st_str *s, const int64_t *shape, uint32_t rank,
                          bool b64, size_t *k)
{
    if (rank == 0) {
        write_str(w, s[(*k)++], b64);
        return;
    }
    json_write_array_begin(w);
    for (int64_t i = 0; i < shape[0]; i++)
        write_strings(w, s, shape + 1, rank - 1, b64, k);
    json_write_array_end(w);
}

static void write_map(json_writer *w, const eng_tensor *m)
{
    const eng_tensor *kv = m->data;
    char key[32];
    json_write_object_begin(w);
    size_t es = st_dtype_size(kv[1].dtype);
    for (size_t i = 0; i < m->count; i++) {
        if (kv[0].dtype == ST_DT_STRING) {
            json_write_key(w, ((const st_str *)kv[0].data)[i]);
        } else {
            int n = snprintf(key, sizeof key, "%lld", (long long)((const int64_t *)kv[0].data)[i]);
            json_write_key(w, st_str_make(key, (size_t)n));
        }
        if (kv[1].dtype == ST_DT_STRING)
            json_write_string(w, ((const st_str *)kv[1].data)[i]);
        else
            sv_write_scalar(w, kv[1].dtype, (const uint8_t *)kv[1].data + i * es);
    }
    json_write_object_end(w);
}

/* A value in its natural nested JSON form. */
static st_status write_value(json_writer *w, const char *name, const eng_tensor *t, st_error *err)
{
    if (t->dtype == ENG_DT_OPTIONAL) {
        if (t->count == 0)
            return json_write_null(w);
        return write_value(w, name, t->data, err);
    }
    if (t->dtype == ENG_DT_MAP) {
        write_map(w, t);
        return json_writer_status(w);
    }
    if (t->dtype == ENG_DT_SEQUENCE) {
        const eng_tensor *items = t->data;
        json_write_array_begin(w);
        for (size_t i = 0; i < t->count; i++)
            if (write_value(w, name, &items[i], err) != ST_OK)
                return json_writer_status(w) != ST_OK ? json_writer_status(w) : ST_EUNSUPPORTED;
        return json_write_array_end(w);
    }
    if (t->dtype == ST_DT_STRING) {
        size_t k = 0;
        write_strings(w, t->data, t->shape, t->rank, ends_with_bytes(name), &k);
        return json_writer_status(w);
    }
    if (st_dtype_size(t->dtype) == 0)
        return st_fail(err, ST_EUNSUPPORTED, "output \"%s\" has no JSON form", name);
    size_t dims[ENG_MAX_RANK];
    for (uint32_t i = 0; i < t->rank; i++)
        dims[i] = (size_t)t->shape[i];
    return json_write_numbers(w, t->dtype, t->data, dims, t->rank, true);
}

/* Rows along axis 0 of a value, or -1 when it has none. */
static int64_t value_rows(const eng_tensor *t)
{
    if (t->dtype == ENG_DT_OPTIONAL)
        return t->count ? value_rows(t->data) : -1;
    if (t->dtype == ENG_DT_SEQUENCE)
        return (int64_t)t->count;
    if (t->dtype == ENG_DT_MAP || t->rank == 0)
        return -1;
    return t->shape[0];
}

/* Row i of a value: a sub-tensor, or a sequence's element. */
static eng_tensor value_row(const eng_tensor *t, size_t i)
{
    if (t->dtype == ENG_DT_OPTIONAL)
        return value_row(t->data, i);
    if (t->dtype == ENG_DT_SEQUENCE)
        return ((const eng_tensor *)t->data)[i];
    eng_tensor row = *t;
    row.rank = t->rank - 1;
    memmove(row.shape, t->shape + 1, row.rank * sizeof row.shape[0]);
    size_t per = t->shape[0] ? t->count / (size_t)t->shape[0] : 0;
    size_t es = t->dtype == ST_DT_STRING ? sizeof(st_str) : st_dtype_size(t->dtype);
    row.count = per;
    row.data = (uint8_t *)t->data + i * per * es;
    return row;
}

st_status sv_encode_tfs(sv_proto p, const sv_model_sig *sig, const sv_request *req,
                        const eng_tensor *outputs, size_t n_outputs, st_buf *body, st_error *err)
{
    (void)n_outputs;
    json_writer w;
    json_writer_init(&w, body, err);
    json_writer_set_nonfinite(&w, JSON_NONFINITE_NULL);
    json_write_object_begin(&w);
    bool rows_form = req->is_row_form || p != SV_PROTO_TFS;
    json_write_key(&w, rows_form ? ST_STR("predictions") : ST_STR("outputs"));
    size_t n = sv_selected_count(sig, req);
    int64_t rows = -1;
    for (size_t k = 0; rows_form && k < n; k++) {
        int64_t r = value_rows(&outputs[sv_selected_index(req, k)]);
        if (k == 0)
            rows = r;
        else if (r != rows)
            rows = -1;
    }
    st_status s = ST_OK;
    if (n == 1) {
        size_t i = sv_selected_index(req, 0);
        s = write_value(&w, sig->outputs[i].name, &outputs[i], err);
    } else if (rows_form && rows >= 0) {
        json_write_array_begin(&w);
        for (int64_t r = 0; s == ST_OK && r < rows; r++) {
            json_write_object_begin(&w);
            for (size_t k = 0; s == ST_OK && k < n; k++) {
                size_t i = sv_selected_index(req, k);
                eng_tensor row = value_row(&outputs[i], (size_t)r);
                json_write_key(&w, st_str_c(sig->outputs[i].name));
                s = write_value(&w, sig->outputs[i].name, &row, err);
            }
            json_write_object_end(&w);
        }
        json_write_array_end(&w);
    } else {
        /* Columns, or rows whose outputs do not share a batch axis. */
        json_write_object_begin(&w);
        for (size_t k = 0; s == ST_OK && k < n; k++) {
            size_t i = sv_selected_index(req, k);
            json_write_key(&w, st_str_c(sig->outputs[i].name));
            s = write_value(&w, sig->outputs[i].name, &outputs[i], err);
        }
        json_write_object_end(&w);
    }
    if (s != ST_OK)
        return s;
    json_write_object_end(&w);
    return json_writer_finish(&w);
}

/* ---- text/csv response ------------------------------------------------------- */

static st_status csv_put(st_buf *b, const char *s, size_t n)
{
    return st_buf_append(b, s, n);
}

/* One element as CSV text: numbers shortest, bools 1/0, NaN as "nan",
 * strings quoted when they hold a comma, quote or line break. */
static st_status csv_element(st_buf *b, st_dtype t, const void *p)
{
    char buf[JSON_NUMBER_MAX_CHARS + 8];
    size_t n = 0;
    double d = 0;
    bool is_float = true;
    switch (t) {
    case ST_DT_FLOAT32: { float f; memcpy(&f, p, 4); d = f; n = json_format_float(f, buf); break; }
    case ST_DT_FLOAT64: { memcpy(&d, p, 8); n = json_format_double(d, buf); break; }
    case ST_DT_FLOAT16: {
        uint16_t h;
        memcpy(&h, p, 2);
        d = st_half_to_float(h);
        n = json_format_half(h, buf);
        break;
    }
    case ST_DT_STRING: {
        st_str s = *(const st_str *)p;
        bool quote = false;
        for (size_t i = 0; i < s.len; i++)
            quote |= s.ptr[i] == ',' || s.ptr[i] == '"' || s.ptr[i] == '\n' || s.ptr[i] == '\r';
        if (!quote)
            return csv_put(b, s.ptr, s.len);
        if (st_buf_append_byte(b, '"') != ST_OK)
            return ST_ENOMEM;
        for (size_t i = 0; i < s.len; i++)
            if ((s.ptr[i] == '"' && st_buf_append_byte(b, '"') != ST_OK) ||
                st_buf_append_byte(b, (uint8_t)s.ptr[i]) != ST_OK)
                return ST_ENOMEM;
        return st_buf_append_byte(b, '"');
    }
    default: {
        is_float = false;
        st_buf tmp = { 0 };
        json_writer w;
        json_writer_init(&w, &tmp, NULL);
        st_status s = t == ST_DT_BOOL ? json_write_int64(&w, *(const uint8_t *)p)
                                      : json_write_numbers(&w, t, p, NULL, 0, true);
        if (s == ST_OK)
            s = csv_put(b, (const char *)tmp.data, tmp.len);
        st_buf_free(&tmp);
        return s;
    }
    }
    if (is_float && n == 0) {
        const char *txt = isnan(d) ? "nan" : d > 0 ? "inf" : "-inf";
        return csv_put(b, txt, strlen(txt));
    }
    return csv_put(b, buf, n);
}

/* The elements of one row of a value (a map's values in key order). */
static st_status csv_row_values(st_buf *b, const eng_tensor *t, bool *first)
{
    const eng_tensor *vals = t;
    if (t->dtype == ENG_DT_MAP)
        vals = &((const eng_tensor *)t->data)[1];
    if (st_dtype_size(vals->dtype) == 0 && vals->dtype != ST_DT_STRING)
        return ST_EUNSUPPORTED;
    size_t es = vals->dtype == ST_DT_STRING ? sizeof(st_str) : st_dtype_size(vals->dtype);
    for (size_t i = 0; i < vals->count; i++) {
        if (!*first && st_buf_append_byte(b, ',') != ST_OK)
            return ST_ENOMEM;
        *first = false;
        st_status s = csv_element(b, vals->dtype, (const uint8_t *)vals->data + i * es);
        if (s != ST_OK)
            return s;
    }
    return ST_OK;
}

st_status sv_encode_csv(const sv_model_sig *sig, const sv_request *req, const eng_tensor *outputs,
                        size_t n_outputs, st_buf *body, st_error *err)
{
    (void)n_outputs;
    size_t n = sv_selected_count(sig, req);
    int64_t rows = -1;
    for (size_t k = 0; k < n; k++) {
        int64_t r = value_rows(&outputs[sv_selected_index(req, k)]);
        rows = k == 0 ? r : r == rows ? rows : -1;
    }
    /* One line per row with every selected output's values side by side;
     * outputs without a shared batch axis go out as one line. */
    size_t lines = rows >= 0 ? (size_t)rows : 1;
    for (size_t r = 0; r < lines; r++) {
        bool first = true;
        for (size_t k = 0; k < n; k++) {
            size_t i = sv_selected_index(req, k);
            const eng_tensor *t = &outputs[i];
            if (t->dtype == ENG_DT_OPTIONAL && t->count == 0)
                continue;
            eng_tensor row = rows >= 0 ? value_row(t, r)
                                       : t->dtype == ENG_DT_OPTIONAL ? *(const eng_tensor *)t->data
                                                                     : *t;
            st_status s = csv_row_values(body, &row, &first);
            if (s != ST_OK)
                return st_fail(err, s, "output \"%s\" has no CSV form", sig->outputs[i].name);
        }
        if (st_buf_append_byte(body, '\n') != ST_OK)
            return st_fail(err, ST_ENOMEM, "out of memory");
    }
    return ST_OK;
}
