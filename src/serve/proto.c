/* proto.c - what every protocol adapter shares: dispatch on the protocol
 * and the content type, shape and limit checks with the messages users
 * see, reading values of unknown shape (numbers, strings, base64), the
 * error body and V2 metadata. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "serve/proto_int.h"

/* ---- names ------------------------------------------------------------------ */

const char *sv_v2_datatype(st_dtype dtype)
{
    switch (dtype) {
    case ST_DT_BOOL: return "BOOL";
    case ST_DT_UINT8: return "UINT8";
    case ST_DT_UINT16: return "UINT16";
    case ST_DT_UINT32: return "UINT32";
    case ST_DT_UINT64: return "UINT64";
    case ST_DT_INT8: return "INT8";
    case ST_DT_INT16: return "INT16";
    case ST_DT_INT32: return "INT32";
    case ST_DT_INT64: return "INT64";
    case ST_DT_FLOAT16: return "FP16";
    case ST_DT_FLOAT32: return "FP32";
    case ST_DT_FLOAT64: return "FP64";
    case ST_DT_STRING: return "BYTES";
    default: return NULL;
    }
}

const char *sv_type_name(sv_proto p, st_dtype t)
{
    if (p == SV_PROTO_V2) {
        const char *n = sv_v2_datatype(t);
        return n ? n : "unsupported";
    }
    return st_dtype_name(t);
}

const char *sv_dims_text(char *buf, size_t cap, const int64_t *dims, int rank)
{
    if (rank < 0) {
        snprintf(buf, cap, "any shape");
        return buf;
    }
    size_t n = 0;
    buf[0] = '\0';
    n += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

static int find_io(const eng_io *ios, size_t n, st_str name)
{
    for (size_t i = 0; i < n; i++)
        if (ios[i].name && st_str_eq_c(name, ios[i].name))
            return (int)i;
    return -1;
}

int sv_find_input(const sv_model_sig *sig, st_str name)
{
    return find_io(sig->inputs, sig->n_inputs, name);
}

int sv_find_output(const sv_model_sig *sig, st_str name)
{
    return find_io(sig->outputs, sig->n_outputs, name);
}

const char *sv_names_text(char *buf, size_t cap, const eng_io *ios, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\"", i ? ", " : "", ios[i].name);
    return buf;
}

/* ---- errors ----------------------------------------------------------------- */

st_status sv_fail(sv_ctx *c, int http, st_status code, const char *fmt, ...)
{
    c->failed = true;
    if (c->http_status)
        *c->http_status = http;
    if (c->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
        va_end(ap);
        c->err->code = code;
    }
    return code;
}

st_status sv_fail_json(sv_ctx *c, json_reader *r, const char *what)
{
    st_status s = json_reader_status(r);
    if (s == ST_OK)
        s = ST_ECORRUPT;
    /* The reader's own limits are set so that only nesting depth can
     * trip them: a malformed request (400), not a big one (413). */
    int http = s == ST_ENOMEM ? 503 : 400;
    if (c->http_status)
        *c->http_status = http;
    if (c->err) {
        c->err->code = s;
        size_t wl = what ? strlen(what) : 0;
        if (what && wl + 2 < sizeof c->err->msg) {
            /* Shift the reader's message right and put the context first. */
            size_t ml = strnlen(c->err->msg, sizeof c->err->msg - 1);
            if (ml > sizeof c->err->msg - 1 - wl - 2)
                ml = sizeof c->err->msg - 1 - wl - 2;
            memmove(c->err->msg + wl + 2, c->err->msg, ml);
            memcpy(c->err->msg, what, wl);
            memcpy(c->err->msg + wl, ": ", 2);
            c->err->msg[wl + 2 + ml] = '\0';
        }
    }
    return s;
}

/* ---- shapes and limits ------------------------------------------------------ */

st_status sv_check_shape(sv_ctx *c, size_t idx, const int64_t *shape, size_t rank)
{
    const eng_io *io = &c->sig->inputs[idx];
    bool ok = io->rank < 0 || (size_t)io->rank == rank;
    for (size_t i = 0; ok && io->rank >= 0 && i < rank; i++)
        ok = io->dims[i] < 0 || io->dims[i] == shape[i];
    if (ok)
        return ST_OK;
    char want[128], got[128];
    sv_dims_text(want, sizeof want, io->dims, io->rank);
    sv_dims_text(got, sizeof got, shape, (int)rank);
    return sv_fail(c, 400, ST_ESHAPE, "input \"%s\": expected shape %s (%s), got %s", io->name,
                   want, sv_type_name(c->proto, io->dtype), got);
}

st_status sv_count(sv_ctx *c, const char *name, st_dtype t, const int64_t *shape, size_t rank,
                   size_t *count)
{
    size_t n = 1;
    bool overflow = false;
    for (size_t i = 0; i < rank; i++) {
        if (shape[i] < 0)
            return sv_fail(c, 400, ST_ESHAPE, "input \"%s\": dimension %zu is negative (%lld)",
                           name, i, (long long)shape[i]);
        if ((uint64_t)shape[i] > SIZE_MAX || st_mul_overflow(n, (size_t)shape[i], &n))
            overflow = true;
    }
    char dims[160];
    if (overflow || n > c->max_elements)
        return sv_fail(c, 413, ST_ELIMIT,
                       "input \"%s\": shape %s has more elements than the limit of %zu per "
                       "tensor", name, sv_dims_text(dims, sizeof dims, shape, (int)rank),
                       c->max_elements);
    size_t es = t == ST_DT_STRING ? sizeof(st_str) : st_dtype_size(t), bytes, total;
    if (st_mul_overflow(n, es, &bytes) || st_add_overflow(c->total_bytes, bytes, &total) ||
        total > c->max_total_bytes)
        return sv_fail(c, 413, ST_ELIMIT,
                       "input \"%s\": shape %s takes the request's decoded inputs past the "
                       "limit of %zu bytes", name,
                       sv_dims_text(dims, sizeof dims, shape, (int)rank),
                       c->max_total_bytes);
    c->total_bytes = total;
    *count = n;
    return ST_OK;
}

st_status sv_alloc_data(sv_ctx *c, eng_tensor *t, size_t count)
{
    size_t es = t->dtype == ST_DT_STRING ? sizeof(st_str) : st_dtype_size(t->dtype);
    t->count = count;
    t->data = st_arena_alloc(c->arena, count ? count * es : 1, 64);
    if (!t->data)
        return sv_fail(c, 503, ST_ENOMEM, "out of memory for %zu elements of an input", count);
    return ST_OK;
}

/* ---- base64 ----------------------------------------------------------------- */

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

st_status sv_b64_decode(sv_ctx *c, const char *name, st_str in, st_str *out)
{
    size_t len = in.len;
    while (len && in.ptr[len - 1] == '=' && in.len - len < 2)
        len--;
    if (len % 4 == 1)
        goto bad;
    char *dst = st_arena_alloc(c->arena, len / 4 * 3 + 3, 1);
    if (!dst)
        return sv_fail(c, 503, ST_ENOMEM, "out of memory decoding base64");
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in.ptr[i]);
        if (v < 0)
            goto bad;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    *out = st_str_make(dst, n);
    return ST_OK;
bad:
    return sv_fail(c, 400, ST_ECORRUPT, "input \"%s\": \"b64\" value is not valid base64", name);
}

st_status sv_b64_encode(st_buf *out, st_str bytes)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (bytes.len + 2) / 3 * 4;
    if (st_buf_reserve(out, n) != ST_OK)
        return ST_ENOMEM;
    const unsigned char *s = (const unsigned char *)bytes.ptr;
    uint8_t *o = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= bytes.len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = (uint8_t)tab[(v >> 6) & 63];
        *o++ = (uint8_t)tab[v & 63];
    }
    if (i < bytes.len) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < bytes.len ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = (uint8_t)tab[v >> 18];
        *o++ = (uint8_t)tab[(v >> 12) & 63];
        *o++ = i + 1 < bytes.len ? (uint8_t)tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    out->len += n;
    return ST_OK;
}

/* ---- strings ------------------------------------------------------------------ */

/* One string element: "text" or {"b64": "..."}; copied into the arena. */
static st_status read_string_elem(sv_ctx *c, json_reader *r, const char *name, st_str *dst)
{
    st_str s;
    if (json_peek(r) == JSON_KIND_OBJECT) {
        bool got = false;
        st_str key;
        json_enter_object(r);
        while (json_object_next(r, &key)) {
            if (!st_str_eq_c(key, "b64") || got) {
                json_reader_fail(r, ST_ETYPE, "expected {\"b64\": \"...\"} for binary data");
                break;
            }
            if (json_read_string(r, &s) != ST_OK)
                break;
            got = true;
        }
        if (json_reader_status(r) != ST_OK)
            return ST_ETYPE;
        if (!got) {
            json_reader_fail(r, ST_ETYPE, "expected {\"b64\": \"...\"} for binary data");
            return ST_ETYPE;
        }
        return sv_b64_decode(c, name, s, dst);
    }
    if (json_read_string(r, &s) != ST_OK)
        return ST_ETYPE;
    char *copy = st_arena_strndup(c->arena, s.ptr, s.len);
    if (!copy)
        return sv_fail(c, 503, ST_ENOMEM, "out of memory copying a string");
    *dst = st_str_make(copy, s.len);
    return ST_OK;
}

typedef struct str_sink {
    st_buf *buf;      /* growable, or NULL */
    st_str *fixed;    /* else a fixed array */
    size_t cap, count;
} str_sink;

/* Walks a string, an object {"b64"} or a nested array of them; dims[] as
 * in json_read_numbers (SIZE_MAX while unknown). */
static st_status walk_strings(sv_ctx *c, json_reader *r, const char *name, str_sink *sink,
                              size_t lvl, size_t *dims, int *rank)
{
    json_kind k = json_peek(r);
    if (k == JSON_KIND_ARRAY) {
        if (*rank >= 0 && lvl >= (size_t)*rank) {
            json_reader_fail(r, ST_ESHAPE, "ragged array: an array where a string was expected");
            return ST_ESHAPE;
        }
        if (lvl >= ENG_MAX_RANK) {
            json_reader_fail(r, ST_ESHAPE, "array nested deeper than %d levels", ENG_MAX_RANK);
            return ST_ESHAPE;
        }
        if (*rank < 0)
            dims[lvl] = SIZE_MAX;
        size_t n = 0;
        json_enter_array(r);
        while (json_array_next(r)) {
            if (dims[lvl] != SIZE_MAX && n >= dims[lvl]) {
                json_reader_fail(r, ST_ESHAPE, "ragged array: more than %zu elements at depth %zu",
                                 dims[lvl], lvl + 1);
                return ST_ESHAPE;
            }
            st_status s = walk_strings(c, r, name, sink, lvl + 1, dims, rank);
            if (s != ST_OK)
                return s;
            n++;
        }
        if (json_reader_status(r) != ST_OK)
            return json_reader_status(r);
        if (*rank < 0)
            *rank = (int)lvl + 1;
        if (dims[lvl] == SIZE_MAX) {
            dims[lvl] = n;
        } else if (dims[lvl] != n) {
            json_reader_fail(r, ST_ESHAPE,
                             "ragged array: %zu elements at depth %zu where the first "
                             "array there has %zu", n, lvl + 1, dims[lvl]);
            return ST_ESHAPE;
        }
        return ST_OK;
    }
    if (k != JSON_KIND_STRING && k != JSON_KIND_OBJECT) {
        if (k != JSON_KIND_NONE)
            json_reader_fail(r, ST_ETYPE, "expected a string, found %s", json_kind_name(k));
        return json_reader_status(r);
    }
    if (*rank < 0)
        *rank = (int)lvl;
    else if ((size_t)*rank != lvl) {
        json_reader_fail(r, ST_ESHAPE, "ragged array: a string at depth %zu, expected an array",
                         lvl);
        return ST_ESHAPE;
    }
    st_str v;
    st_status s = read_string_elem(c, r, name, &v);
    if (s != ST_OK)
        return s;
    if (sink->buf) {
        if (st_buf_append(sink->buf, &v, sizeof v) != ST_OK)
            return sv_fail(c, 503, ST_ENOMEM, "out of memory reading strings");
    } else {
        if (sink->count >= sink->cap) {
            json_reader_fail(r, ST_ELIMIT, "more than %zu strings", sink->cap);
            return ST_ELIMIT;
        }
        sink->fixed[sink->count] = v;
    }
    sink->count++;
    return ST_OK;
}

static st_status read_strings(sv_ctx *c, json_reader *r, const char *name, str_sink *sink,
                              size_t *shape, size_t *rank)
{
    size_t dims[ENG_MAX_RANK];
    int rk = -1;
    st_status s = walk_strings(c, r, name, sink, 0, dims, &rk);
    if (s != ST_OK)
        return s;
    *rank = (size_t)rk;
    for (int i = 0; i < rk; i++)
        shape[i] = dims[i];
    return ST_OK;
}

st_status sv_read_strings(sv_ctx *c, json_reader *r, const char *name, st_str *dst, size_t cap,
                          size_t *count, size_t *shape, size_t *rank)
{
    str_sink sink = { NULL, dst, cap, 0 };
    st_status s = read_strings(c, r, name, &sink, shape, rank);
    *count = sink.count;
    return s;
}

st_status sv_read_value(sv_ctx *c, json_reader *r, const char *name, st_dtype t, st_buf *out,
                        size_t *shape, size_t *rank)
{
    if (t == ST_DT_STRING) {
        str_sink sink = { out, NULL, 0, 0 };
        return read_strings(c, r, name, &sink, shape, rank);
    }
    st_status s = json_read_numbers(r, t, out, shape, JSON_MAX_RANK, rank);
    if (s == ST_OK && *rank > ENG_MAX_RANK)
        return sv_fail(c, 400, ST_ESHAPE, "%s: a value nested %zu deep, more than %d dimensions",
                       name, *rank, ENG_MAX_RANK);
    return s;
}

/* ---- requests --------------------------------------------------------------- */

st_status sv_finish_request(sv_ctx *c, sv_request *out, const bool *seen)
{
    const sv_model_sig *sig = c->sig;
    for (size_t i = 0; i < sig->n_inputs; i++) {
        if (seen[i])
            continue;
        char dims[128];
        return sv_fail(c, 400, ST_EINVAL, "missing input \"%s\" (expected shape %s, %s)",
                       sig->inputs[i].name,
                       sv_dims_text(dims, sizeof dims, sig->inputs[i].dims, sig->inputs[i].rank),
                       sv_type_name(c->proto, sig->inputs[i].dtype));
    }
    /* Rows along axis 0 when every input has one and they agree, so the
     * batcher can merge; -1 otherwise. */
    out->batch = -1;
    for (size_t i = 0; i < sig->n_inputs; i++) {
        const eng_tensor *t = &out->inputs[i];
        if (t->rank == 0 || (sig->inputs[i].rank > 0 && sig->inputs[i].dims[0] >= 0)) {
            out->batch = -1;
            break;
        }
        if (i == 0)
            out->batch = t->shape[0];
        else if (out->batch != t->shape[0]) {
            out->batch = -1;
            break;
        }
    }
    return ST_OK;
}

static bool media_is(st_str ct, const char *type)
{
    /* The media type before any ';' parameters, trimmed, case-insensitive. */
    if (ct.len == 0)
        return false;
    size_t end = 0;
    while (end < ct.len && ct.ptr[end] != ';')
        end++;
    size_t b = 0;
    while (b < end && (ct.ptr[b] == ' ' || ct.ptr[b] == '\t'))
        b++;
    while (end > b && (ct.ptr[end - 1] == ' ' || ct.ptr[end - 1] == '\t'))
        end--;
    return st_str_eq_nocase(st_str_make(ct.ptr + b, end - b), st_str_c(type));
}

/* JSON unless it is clearly something else: curl -d sends form encoding
 * and TF Serving's own examples rely on that. */
static bool content_is_json(st_str ct)
{
    if (ct.len == 0 || media_is(ct, "application/json") ||
        media_is(ct, "application/x-www-form-urlencoded") || media_is(ct, "text/plain") ||
        media_is(ct, "*/*"))
        return true;
    size_t end = 0;
    while (end < ct.len && ct.ptr[end] != ';')
        end++;
    return end >= 5 && st_str_eq_nocase(st_str_make(ct.ptr + end - 5, 5), ST_STR("+json"));
}

st_status sv_decode(sv_proto p, const char *content_type, const uint8_t *body, size_t len,
                    const sv_model_sig *sig, const sv_limits *limits, st_arena *arena,
                    sv_request *out, int *http_status, st_error *err)
{
    sv_ctx c = {
        .proto = p,
        .sig = sig,
        .max_elements = limits && limits->max_elements ? limits->max_elements : SIZE_MAX,
        .max_total_bytes = limits && limits->max_total_bytes ? limits->max_total_bytes : SIZE_MAX,
        .arena = arena,
        .err = err,
        .http_status = http_status,
        .body = body,
        .body_len = len,
    };
    memset(out, 0, sizeof *out);
    out->batch = -1;
    if (http_status)
        *http_status = 200;
    if (!body && len)
        return sv_fail(&c, 400, ST_EINVAL, "request body missing");
    out->inputs = st_arena_calloc(arena, sig->n_inputs ? sig->n_inputs : 1, sizeof(eng_tensor), 64);
    if (!out->inputs)
        return sv_fail(&c, 503, ST_ENOMEM, "out of memory for the request's inputs");
    out->n_inputs = sig->n_inputs;
    for (size_t i = 0; i < sig->n_inputs; i++)
        out->inputs[i].dtype = sig->inputs[i].dtype;

    st_str ct = st_str_c(content_type);
    bool is_csv = media_is(ct, "text/csv");
    if (p == SV_PROTO_SAGEMAKER && is_csv) {
        out->wants_csv = true;
        return sv_decode_csv(&c, out);
    }
    if (!content_is_json(ct))
        return sv_fail(&c, 415, ST_EUNSUPPORTED,
                       "unsupported Content-Type \"%s\": send application/json%s", content_type,
                       p == SV_PROTO_SAGEMAKER ? " or text/csv" : "");
    if (p == SV_PROTO_V2)
        return sv_decode_v2(&c, out);
    return sv_decode_tfs(&c, out);
}

/* ---- responses -------------------------------------------------------------- */

size_t sv_selected_count(const sv_model_sig *sig, const sv_request *req)
{
    return req->n_outputs ? req->n_outputs : sig->n_outputs;
}

size_t sv_selected_index(const sv_request *req, size_t k)
{
    return req->n_outputs ? (size_t)req->outputs[k] : k;
}

void sv_write_scalar(json_writer *w, st_dtype t, const void *p)
{
    json_write_numbers(w, t, p, NULL, 0, true);
}

bool sv_is_map_sequence(const eng_tensor *t)
{
    if (t->dtype != ENG_DT_SEQUENCE || (t->count && !t->data))
        return false;
    const eng_tensor *items = t->data;
    for (size_t i = 0; i < t->count; i++)
        if (items[i].dtype != ENG_DT_MAP)
            return false;
    return t->count > 0 || t->shape[1] == (int64_t)ENG_DT_MAP;
}

/* Does Accept ask for CSV?  The first media type we know in the list
 * decides; none (absent, star) keeps the request's own format. */
static bool accept_csv(const char *accept, bool default_csv)
{
    st_str a = st_str_c(accept);
    size_t i = 0;
    while (i < a.len) {
        size_t j = i;
        while (j < a.len && a.ptr[j] != ',')
            j++;
        st_str item = st_str_make(a.ptr + i, j - i);
        if (media_is(item, "text/csv"))
            return true;
        if (media_is(item, "application/json"))
            return false;
        i = j + 1;
    }
    return default_csv;
}

st_status sv_encode(sv_proto p, const char *accept, const sv_model_sig *sig, const sv_request *req,
                    const eng_tensor *outputs, size_t n_outputs, st_buf *body,
                    const char **content_type, st_error *err)
{
    if (n_outputs < sig->n_outputs)
        return st_fail(err, ST_EINTERNAL, "sv_encode: %zu outputs given, the model has %zu",
                       n_outputs, sig->n_outputs);
    for (size_t k = 0; k < req->n_outputs; k++)
        if (req->outputs[k] < 0 || (size_t)req->outputs[k] >= sig->n_outputs)
            return st_fail(err, ST_EINTERNAL, "sv_encode: output index %d out of range",
                           req->outputs[k]);
    size_t mark = body->len;
    st_status s;
    *content_type = "application/json";
    if (p == SV_PROTO_SAGEMAKER && accept_csv(accept, req->wants_csv)) {
        *content_type = "text/csv";
        s = sv_encode_csv(sig, req, outputs, n_outputs, body, err);
    } else if (p == SV_PROTO_V2) {
        s = sv_encode_v2(sig, req, outputs, n_outputs, body, err);
    } else {
        s = sv_encode_tfs(p, sig, req, outputs, n_outputs, body, err);
    }
    if (s != ST_OK)
        body->len = mark;
    return s;
}

st_status sv_encode_error(const char *msg, st_buf *body)
{
    json_writer w;
    json_writer_init(&w, body, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("error"));
    json_write_string(&w, st_str_c(msg ? msg : ""));
    json_write_object_end(&w);
    return json_writer_finish(&w);
}

static void write_metadata_tensors(json_writer *w, const eng_io *ios, size_t n)
{
    json_write_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        const eng_io *io = &ios[i];
        json_write_object_begin(w);
        json_write_key(w, ST_STR("name"));
        json_write_string(w, st_str_c(io->name));
        json_write_key(w, ST_STR("datatype"));
        /* Non-tensor outputs (ZipMap's sequence of maps) go out as FP32
         * [N, K] probabilities, see proto_v2.c. */
        const char *dt = sv_v2_datatype(io->dtype);
        json_write_string(w, st_str_c(dt ? dt : "FP32"));
        json_write_key(w, ST_STR("shape"));
        json_write_array_begin(w);
        if (!dt) {
            json_write_int64(w, -1);
            json_write_int64(w, -1);
        }
        for (int d = 0; dt && d < io->rank; d++)
            json_write_int64(w, io->dims[d] < 0 ? -1 : io->dims[d]);
        json_write_array_end(w);
        json_write_object_end(w);
    }
    json_write_array_end(w);
}

st_status sv_encode_v2_metadata(const sv_model_sig *sig, const char *const *versions,
                                size_t n_versions, st_buf *body)
{
    json_writer w;
    json_writer_init(&w, body, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("name"));
    json_write_string(&w, st_str_c(sig->name));
    if (versions) {
        json_write_key(&w, ST_STR("versions"));
        json_write_array_begin(&w);
        for (size_t i = 0; i < n_versions; i++)
            json_write_string(&w, st_str_c(versions[i]));
        json_write_array_end(&w);
    }
    json_write_key(&w, ST_STR("platform"));
    json_write_string(&w, st_str_c(sig->platform ? sig->platform : "onnx"));
    json_write_key(&w, ST_STR("inputs"));
    write_metadata_tensors(&w, sig->inputs, sig->n_inputs);
    json_write_key(&w, ST_STR("outputs"));
    write_metadata_tensors(&w, sig->outputs, sig->n_outputs);
    json_write_object_end(&w);
    return json_writer_finish(&w);
}

st_status sv_encode_v2_server_metadata(const char *name, const char *version,
                                       const char *const *extensions, size_t n_extensions,
                                       st_buf *body)
{
    json_writer w;
    json_writer_init(&w, body, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("name"));
    json_write_string(&w, st_str_c(name));
    json_write_key(&w, ST_STR("version"));
    json_write_string(&w, st_str_c(version));
    json_write_key(&w, ST_STR("extensions"));
    json_write_array_begin(&w);
    for (size_t i = 0; i < n_extensions; i++)
        json_write_string(&w, st_str_c(extensions[i]));
    json_write_array_end(&w);
    json_write_object_end(&w);
    return json_writer_finish(&w);
}

static const char *tfs_state_name(sv_version_state s)
{
    switch (s) {
    case SV_VERSION_START: return "START";
    case SV_VERSION_LOADING: return "LOADING";
    case SV_VERSION_AVAILABLE: return "AVAILABLE";
    case SV_VERSION_UNLOADING: return "UNLOADING";
    case SV_VERSION_END: return "END";
    default: return "UNKNOWN";
    }
}

st_status sv_encode_tfs_status(const sv_version_status *versions, size_t n, st_buf *body)
{
    json_writer w;
    json_writer_init(&w, body, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("model_version_status"));
    json_write_array_begin(&w);
    for (size_t i = 0; i < n; i++) {
        const sv_version_status *v = &versions[i];
        json_write_object_begin(&w);
        json_write_key(&w, ST_STR("version"));
        json_write_string(&w, st_str_c(v->version));
        json_write_key(&w, ST_STR("state"));
        json_write_string(&w, st_str_c(tfs_state_name(v->state)));
        json_write_key(&w, ST_STR("status"));
        json_write_object_begin(&w);
        json_write_key(&w, ST_STR("error_code"));
        json_write_string(&w, v->error_message ? ST_STR("UNKNOWN") : ST_STR("OK"));
        json_write_key(&w, ST_STR("error_message"));
        json_write_string(&w, st_str_c(v->error_message ? v->error_message : ""));
        json_write_object_end(&w);
        json_write_object_end(&w);
    }
    json_write_array_end(&w);
    json_write_object_end(&w);
    return json_writer_finish(&w);
}

/* TensorFlow's DataType names for the dtypes TF Serving clients know. */
static const char *tf_dtype_name(st_dtype t)
{
    switch (t) {
    case ST_DT_FLOAT32: return "DT_FLOAT";
    case ST_DT_FLOAT64: return "DT_DOUBLE";
    case ST_DT_FLOAT16: return "DT_HALF";
    case ST_DT_INT8: return "DT_INT8";
    case ST_DT_INT16: return "DT_INT16";
    case ST_DT_INT32: return "DT_INT32";
    case ST_DT_INT64: return "DT_INT64";
    case ST_DT_UINT8: return "DT_UINT8";
    case ST_DT_UINT16: return "DT_UINT16";
    case ST_DT_UINT32: return "DT_UINT32";
    case ST_DT_UINT64: return "DT_UINT64";
    case ST_DT_BOOL: return "DT_BOOL";
    case ST_DT_STRING: return "DT_STRING";
    default: return "DT_INVALID";
    }
}

static void write_tensor_infos(json_writer *w, const eng_io *ios, size_t n)
{
    char size[24];
    json_write_object_begin(w);
    for (size_t i = 0; i < n; i++) {
        const eng_io *io = &ios[i];
        json_write_key(w, st_str_c(io->name));
        json_write_object_begin(w);
        json_write_key(w, ST_STR("dtype"));
        json_write_string(w, st_str_c(tf_dtype_name(io->dtype)));
        json_write_key(w, ST_STR("tensor_shape"));
        json_write_object_begin(w);
        json_write_key(w, ST_STR("dim"));
        json_write_array_begin(w);
        for (int d = 0; d < io->rank; d++) {
            /* proto3 JSON writes int64 as a string. */
            long long dim = io->dims[d] < 0 ? -1 : (long long)io->dims[d];
            int len = snprintf(size, sizeof size, "%lld", dim);
            json_write_object_begin(w);
            json_write_key(w, ST_STR("size"));
            json_write_string(w, st_str_make(size, (size_t)len));
            json_write_key(w, ST_STR("name"));
            json_write_string(w, st_str_c(io->dim_names[d] ? io->dim_names[d] : ""));
            json_write_object_end(w);
        }
        json_write_array_end(w);
        json_write_key(w, ST_STR("unknown_rank"));
        json_write_bool(w, io->rank < 0);
        json_write_object_end(w);
        json_write_key(w, ST_STR("name"));
        json_write_string(w, st_str_c(io->name));
        json_write_object_end(w);
    }
    json_write_object_end(w);
}

st_status sv_encode_tfs_metadata(const sv_model_sig *sig, st_buf *body)
{
    json_writer w;
    json_writer_init(&w, body, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("model_spec"));
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("name"));
    json_write_string(&w, st_str_c(sig->name));
    json_write_key(&w, ST_STR("signature_name"));
    json_write_string(&w, ST_STR(""));
    if (sig->version) {
        json_write_key(&w, ST_STR("version"));
        json_write_string(&w, st_str_c(sig->version));
    }
    json_write_object_end(&w);
    json_write_key(&w, ST_STR("metadata"));
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("signature_def"));
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("signature_def"));
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("serving_default"));
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("inputs"));
    write_tensor_infos(&w, sig->inputs, sig->n_inputs);
    json_write_key(&w, ST_STR("outputs"));
    write_tensor_infos(&w, sig->outputs, sig->n_outputs);
    json_write_key(&w, ST_STR("method_name"));
    json_write_string(&w, ST_STR("tensorflow/serving/predict"));
    json_write_object_end(&w);
    json_write_object_end(&w);
    json_write_object_end(&w);
    json_write_object_end(&w);
    json_write_object_end(&w);
    return json_writer_finish(&w);
}
