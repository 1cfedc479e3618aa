/* proto_v2.c - Open Inference Protocol (KServe V2) infer request and
 * response over REST.  Tensor data goes from the body straight into the
 * arena with the JSON cursor's typed-array reader (no tree), checked
 * against the declared shape and the model's signature first.
 *
 * Datatypes: the request's "datatype" must be the model's, or a numeric
 * type the model's type can take without surprise: integer -> integer
 * (each value range-checked), integer -> float and float -> float
 * (rounded to nearest).  Float -> integer, BOOL and BYTES must match.
 * ZipMap outputs (a sequence of {label: probability} maps) are answered as
 * FP32 (or the maps' value type) [N, K] in the maps' key order, which is
 * the order of the model's class labels. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "serve/proto_int.h"

/* ---- request ------------------------------------------------------------------- */

typedef struct v2_input {
    st_str name;
    st_str datatype;
    int64_t shape[ENG_MAX_RANK];
    size_t rank;
    size_t data_start, data_end; /* a "data" seen before its name/shape/datatype */
    bool has_name, has_shape, has_datatype, has_data, data_deferred;
    size_t index; /* position in "inputs" */
} v2_input;

static bool parse_datatype(st_str s, st_dtype *out)
{
    static const st_dtype all[] = { ST_DT_BOOL,  ST_DT_UINT8,   ST_DT_UINT16,  ST_DT_UINT32,
                                    ST_DT_UINT64, ST_DT_INT8,   ST_DT_INT16,   ST_DT_INT32,
                                    ST_DT_INT64, ST_DT_FLOAT16, ST_DT_FLOAT32, ST_DT_FLOAT64,
                                    ST_DT_STRING };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (st_str_eq_c(s, sv_v2_datatype(all[i]))) {
            *out = all[i];
            return true;
        }
    return false;
}

static bool is_float_type(st_dtype t)
{
    return t == ST_DT_FLOAT16 || t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64;
}

static bool is_int_type(st_dtype t)
{
    switch (t) {
    case ST_DT_UINT8: case ST_DT_UINT16: case ST_DT_UINT32: case ST_DT_UINT64:
    case ST_DT_INT8: case ST_DT_INT16: case ST_DT_INT32: case ST_DT_INT64:
        return true;
    default:
        return false;
    }
}

static bool converts(st_dtype from, st_dtype to)
{
    if (from == to)
        return true;
    if (is_int_type(from))
        return is_int_type(to) || is_float_type(to);
    return is_float_type(from) && is_float_type(to);
}

/* An integer element as sign and magnitude. */
static void load_int(st_dtype t, const uint8_t *p, bool *neg, uint64_t *mag)
{
    int64_t s = 0;
    uint64_t u = 0;
    bool is_signed = true;
    switch (t) {
    case ST_DT_INT8: { int8_t v; memcpy(&v, p, 1); s = v; break; }
    case ST_DT_INT16: { int16_t v; memcpy(&v, p, 2); s = v; break; }
    case ST_DT_INT32: { int32_t v; memcpy(&v, p, 4); s = v; break; }
    case ST_DT_INT64: { memcpy(&s, p, 8); break; }
    case ST_DT_UINT8: { uint8_t v; memcpy(&v, p, 1); u = v; is_signed = false; break; }
    case ST_DT_UINT16: { uint16_t v; memcpy(&v, p, 2); u = v; is_signed = false; break; }
    case ST_DT_UINT32: { uint32_t v; memcpy(&v, p, 4); u = v; is_signed = false; break; }
    default: { memcpy(&u, p, 8); is_signed = false; break; }
    }
    if (is_signed) {
        *neg = s < 0;
        *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    } else {
        *neg = false;
        *mag = u;
    }
}

static double load_float(st_dtype t, const uint8_t *p)
{
    if (t == ST_DT_FLOAT16) {
        uint16_t h;
        memcpy(&h, p, 2);
        return st_half_to_float(h);
    }
    if (t == ST_DT_FLOAT32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    double d;
    memcpy(&d, p, 8);
    return d;
}

static void store_float(st_dtype t, uint8_t *p, double d)
{
    if (t == ST_DT_FLOAT16) {
        uint16_t h = st_float_to_half((float)d);
        memcpy(p, &h, 2);
    } else if (t == ST_DT_FLOAT32) {
        float f = (float)d;
        memcpy(p, &f, 4);
    } else {
        memcpy(p, &d, 8);
    }
}

bool sv_store_int(st_dtype t, uint8_t *p, bool neg, uint64_t mag)
{
    uint64_t pos_max, neg_max;
    size_t es = st_dtype_size(t);
    switch (t) {
    case ST_DT_INT8: pos_max = INT8_MAX; neg_max = 128; break;
    case ST_DT_INT16: pos_max = INT16_MAX; neg_max = 32768; break;
    case ST_DT_INT32: pos_max = INT32_MAX; neg_max = (uint64_t)INT32_MAX + 1; break;
    case ST_DT_INT64: pos_max = INT64_MAX; neg_max = (uint64_t)INT64_MAX + 1; break;
    case ST_DT_UINT8: pos_max = UINT8_MAX; neg_max = 0; break;
    case ST_DT_UINT16: pos_max = UINT16_MAX; neg_max = 0; break;
    case ST_DT_UINT32: pos_max = UINT32_MAX; neg_max = 0; break;
    default: pos_max = UINT64_MAX; neg_max = 0; break;
    }
    if (mag > (neg ? neg_max : pos_max))
        return false;
    uint64_t v = neg ? 0 - mag : mag; /* two's complement, little-endian low bytes */
    memcpy(p, &v, es);
    return true;
}

/* Converts n elements (the pair already passed converts()); returns the
 * index of the first value out of the target's range, or n. */
static size_t convert_numbers(const uint8_t *src, st_dtype from, uint8_t *dst, st_dtype to,
                              size_t n)
{
    size_t ss = st_dtype_size(from), ds = st_dtype_size(to);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = src + i * ss;
        uint8_t *d = dst + i * ds;
        if (is_float_type(from)) {
            store_float(to, d, load_float(from, s));
            continue;
        }
        bool neg;
        uint64_t mag;
        load_int(from, s, &neg, &mag);
        if (is_float_type(to))
            store_float(to, d, neg ? -(double)mag : (double)mag);
        else if (!sv_store_int(to, d, neg, mag))
            return i;
    }
    return n;
}

static const char *input_label(const v2_input *in, char *buf, size_t cap)
{
    if (in->has_name)
        snprintf(buf, cap, "input \"%.*s\"", (int)(in->name.len > 200 ? 200 : in->name.len),
                 in->name.ptr);
    else
        snprintf(buf, cap, "inputs[%zu]", in->index);
    return buf;
}

static st_status read_shape(sv_ctx *c, json_reader *r, v2_input *in)
{
    double dims[ENG_MAX_RANK];
    size_t n = 0, shape1[1], rank = 0;
    char label[240];
    input_label(in, label, sizeof label);
    if (json_peek(r) != JSON_KIND_ARRAY) {
        if (json_reader_status(r) != ST_OK)
            return sv_fail_json(c, r, NULL);
        return sv_fail(c, 400, ST_ETYPE, "%s: \"shape\" must be a list of integers", label);
    }
    /* Read as doubles so that absurd sizes (1e30, 1e400) are told apart
     * from wrong types: the first are 413, the others 400. */
    st_status s =
        json_read_numbers_into(r, ST_DT_FLOAT64, dims, ENG_MAX_RANK, &n, shape1, 1, &rank);
    if (s == ST_ELIMIT && n == ENG_MAX_RANK)
        return sv_fail(c, 400, ST_ESHAPE, "%s: \"shape\" has more than %d dimensions", label,
                       ENG_MAX_RANK);
    if (s == ST_EINVAL)
        return sv_fail(c, 413, ST_ELIMIT, "%s: \"shape\" has a dimension larger than any tensor "
                       "can be", label);
    if (s == ST_ETYPE || s == ST_ESHAPE || s == ST_ELIMIT)
        return sv_fail(c, 400, ST_ESHAPE, "%s: \"shape\" must be a flat list of non-negative "
                       "integers", label);
    if (s != ST_OK)
        return sv_fail_json(c, r, NULL);
    for (size_t i = 0; i < n; i++) {
        if (dims[i] < 0 || dims[i] != floor(dims[i]))
            return sv_fail(c, 400, ST_ESHAPE, "%s: \"shape\" dimension %zu must be a non-negative "
                           "integer", label, i);
        if (dims[i] > 0x1p53)
            return sv_fail(c, 413, ST_ELIMIT, "%s: \"shape\" dimension %zu (%.17g) is larger "
                           "than any tensor can be", label, i, dims[i]);
        in->shape[i] = (int64_t)dims[i];
    }
    in->rank = n;
    in->has_shape = true;
    return ST_OK;
}

static bool dims_equal(const size_t *a, const int64_t *b, size_t rank)
{
    for (size_t i = 0; i < rank; i++)
        if ((int64_t)a[i] != b[i])
            return false;
    return true;
}

/* The data just read (n elements, nested as dshape[0..drank)) against
 * the declared shape: flat with the right count, nested exactly as the
 * shape, or a lone scalar for a one-element tensor. */
static st_status check_data_shape(sv_ctx *c, const char *label, const v2_input *in, size_t count,
                                  size_t n, const size_t *dshape, size_t drank)
{
    if ((drank == in->rank && dims_equal(dshape, in->shape, drank)) ||
        (drank == 1 && n == count) || (drank == 0 && count == 1))
        return ST_OK;
    char want[160], got[160];
    sv_dims_text(want, sizeof want, in->shape, (int)in->rank);
    if (drank <= 1)
        return sv_fail(c, 400, ST_ESHAPE, "%s: shape %s needs %zu values, \"data\" has %zu", label,
                       want, count, n);
    int64_t d[JSON_MAX_RANK];
    for (size_t i = 0; i < drank; i++)
        d[i] = (int64_t)dshape[i];
    return sv_fail(c, 400, ST_ESHAPE, "%s: \"data\" is nested as %s, which does not match shape %s",
                   label, sv_dims_text(got, sizeof got, d, (int)drank), want);
}

/* Reads the "data" of a fully described input into out->inputs[idx]. */
static st_status read_data(sv_ctx *c, json_reader *r, const v2_input *in, size_t idx,
                           sv_request *out)
{
    const eng_io *io = &c->sig->inputs[idx];
    char label[240];
    input_label(in, label, sizeof label);
    st_dtype dt;
    if (!parse_datatype(in->datatype, &dt))
        return sv_fail(c, 400, ST_ETYPE,
                       "%s: unknown datatype \"%.*s\" (expected one of BOOL, UINT8, UINT16, "
                       "UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)",
                       label, (int)(in->datatype.len > 40 ? 40 : in->datatype.len),
                       in->datatype.ptr);
    if (!converts(dt, io->dtype)) {
        char want[128];
        return sv_fail(c, 400, ST_ETYPE, "%s: expected datatype %s (shape %s), got %s", label,
                       sv_type_name(SV_PROTO_V2, io->dtype),
                       sv_dims_text(want, sizeof want, io->dims, io->rank), sv_v2_datatype(dt));
    }
    st_status s = sv_check_shape(c, idx, in->shape, in->rank);
    if (s != ST_OK)
        return s;
    size_t count;
    if ((s = sv_count(c, io->name, io->dtype, in->shape, in->rank, &count)) != ST_OK)
        return s;
    eng_tensor *t = &out->inputs[idx];
    t->dtype = io->dtype;
    t->rank = (uint32_t)in->rank;
    memcpy(t->shape, in->shape, in->rank * sizeof in->shape[0]);
    if ((s = sv_alloc_data(c, t, count)) != ST_OK)
        return s;

    size_t n = 0, dshape[JSON_MAX_RANK], drank = 0;
    if (io->dtype == ST_DT_STRING) {
        s = sv_read_strings(c, r, label, t->data, count, &n, dshape, &drank);
    } else if (dt == io->dtype) {
        s = json_read_numbers_into(r, dt, t->data, count, &n, dshape, JSON_MAX_RANK, &drank);
    } else {
        void *tmp = st_arena_alloc(c->arena, count ? count * st_dtype_size(dt) : 1, 64);
        if (!tmp)
            return sv_fail(c, 503, ST_ENOMEM, "%s: out of memory", label);
        s = json_read_numbers_into(r, dt, tmp, count, &n, dshape, JSON_MAX_RANK, &drank);
        if (s == ST_OK && n == count) {
            size_t bad = convert_numbers(tmp, dt, t->data, io->dtype, n);
            if (bad < n)
                return sv_fail(c, 400, ST_EINVAL,
                               "%s: value %zu does not fit the model's datatype %s", label, bad,
                               sv_v2_datatype(io->dtype));
        }
    }
    if (s == ST_ELIMIT && n == count) {
        char want[160];
        return sv_fail(c, 400, ST_ESHAPE, "%s: \"data\" has more values than shape %s holds (%zu)",
                       label, sv_dims_text(want, sizeof want, in->shape, (int)in->rank), count);
    }
    if (s != ST_OK)
        return c->failed ? s : sv_fail_json(c, r, label);
    return check_data_shape(c, label, in, count, n, dshape, drank);
}

/* "data" that came before the fields that describe it: read again from
 * its bytes now that they are known. */
static st_status read_deferred(sv_ctx *c, const v2_input *in, size_t idx, sv_request *out)
{
    json_reader sub;
    json_limits lim = { .max_input_bytes = c->body_len + 1, .max_elements = c->body_len + 1 };
    json_reader_init(&sub, c->body + in->data_start, in->data_end - in->data_start, &lim, c->arena,
                     c->err);
    st_status s = read_data(c, &sub, in, idx, out);
    if (s == ST_OK && json_reader_finish(&sub) != ST_OK)
        return sv_fail_json(c, &sub, "\"data\"");
    return s;
}

static st_status read_input(sv_ctx *c, json_reader *r, size_t index, bool *seen, sv_request *out)
{
    v2_input in = { .index = index };
    char label[240];
    if (json_peek(r) != JSON_KIND_OBJECT) {
        if (json_reader_status(r) != ST_OK)
            return sv_fail_json(c, r, NULL);
        return sv_fail(c, 400, ST_ETYPE, "inputs[%zu] must be an object with name, shape, "
                       "datatype and data", index);
    }
    int idx = -1;
    st_str key;
    json_enter_object(r);
    while (json_object_next(r, &key)) {
        st_status s = ST_OK;
        bool is_name = st_str_eq_c(key, "name"), is_shape = st_str_eq_c(key, "shape"),
             is_datatype = st_str_eq_c(key, "datatype");
        /* Once data is read these fields are fixed: a second one could
         * bind the data to another input or shape. */
        if ((is_name && in.has_name) || (is_shape && in.has_shape) ||
            (is_datatype && in.has_datatype))
            return sv_fail(c, 400, ST_EINVAL, "%s: \"%.*s\" given twice",
                           input_label(&in, label, sizeof label), (int)key.len, key.ptr);
        if (is_name) {
            if (json_peek(r) != JSON_KIND_STRING)
                return sv_fail(c, 400, ST_ETYPE, "inputs[%zu]: \"name\" must be a string", index);
            if (json_read_string(r, &in.name) != ST_OK)
                return sv_fail_json(c, r, NULL);
            in.has_name = true;
        } else if (is_shape) {
            s = read_shape(c, r, &in);
        } else if (is_datatype) {
            if (json_peek(r) != JSON_KIND_STRING)
                return sv_fail(c, 400, ST_ETYPE, "%s: \"datatype\" must be a string",
                               input_label(&in, label, sizeof label));
            if (json_read_string(r, &in.datatype) != ST_OK)
                return sv_fail_json(c, r, NULL);
            in.has_datatype = true;
        } else if (st_str_eq_c(key, "data")) {
            if (in.has_data)
                return sv_fail(c, 400, ST_EINVAL, "%s: \"data\" given twice",
                               input_label(&in, label, sizeof label));
            in.has_data = true;
            if (in.has_name && in.has_shape && in.has_datatype) {
                idx = sv_find_input(c->sig, in.name);
                if (idx < 0 || seen[idx])
                    break; /* reported below */
                s = read_data(c, r, &in, (size_t)idx, out);
            } else {
                in.data_deferred = true;
                in.data_start = json_reader_offset(r);
                json_skip(r);
                in.data_end = json_reader_offset(r);
            }
        } else if (st_str_eq_c(key, "parameters")) {
            if (json_peek(r) != JSON_KIND_OBJECT && json_reader_status(r) == ST_OK)
                return sv_fail(c, 400, ST_ETYPE, "%s: \"parameters\" must be an object",
                               input_label(&in, label, sizeof label));
        }
        if (s != ST_OK)
            return s;
    }
    if (json_reader_status(r) != ST_OK)
        return sv_fail_json(c, r, NULL);
    input_label(&in, label, sizeof label);
    if (!in.has_name)
        return sv_fail(c, 400, ST_EINVAL, "%s: missing \"name\"", label);
    idx = sv_find_input(c->sig, in.name);
    if (idx < 0) {
        char names[300];
        return sv_fail(c, 400, ST_EINVAL, "unknown %s; the model's inputs are %s", label,
                       sv_names_text(names, sizeof names, c->sig->inputs, c->sig->n_inputs));
    }
    if (seen[idx])
        return sv_fail(c, 400, ST_EINVAL, "%s given twice", label);
    if (!in.has_shape)
        return sv_fail(c, 400, ST_EINVAL, "%s: missing \"shape\"", label);
    if (!in.has_datatype)
        return sv_fail(c, 400, ST_EINVAL, "%s: missing \"datatype\"", label);
    if (!in.has_data)
        return sv_fail(c, 400, ST_EINVAL, "%s: missing \"data\" (binary tensor data is not "
                       "supported)", label);
    if (in.data_deferred) {
        st_status s = read_deferred(c, &in, (size_t)idx, out);
        if (s != ST_OK)
            return s;
    }
    seen[idx] = true;
    return ST_OK;
}

static st_status read_outputs(sv_ctx *c, json_reader *r, sv_request *out)
{
    size_t cap = c->sig->n_outputs, n = 0, index = 0;
    out->outputs = st_arena_alloc(c->arena, (cap ? cap : 1) * sizeof(int), 16);
    if (!out->outputs)
        return sv_fail(c, 503, ST_ENOMEM, "out of memory");
    if (json_enter_array(r) != ST_OK)
        return sv_fail(c, 400, ST_ETYPE, "\"outputs\" must be a list of {\"name\": ...} objects");
    while (json_array_next(r)) {
        if (json_peek(r) != JSON_KIND_OBJECT)
            return sv_fail(c, 400, ST_ETYPE, "outputs[%zu] must be an object with a \"name\"",
                           index);
        st_str key, name = { 0 };
        bool has_name = false;
        json_enter_object(r);
        while (json_object_next(r, &key)) {
            if (st_str_eq_c(key, "name")) {
                if (json_peek(r) != JSON_KIND_STRING && json_reader_status(r) == ST_OK)
                    return sv_fail(c, 400, ST_ETYPE, "outputs[%zu]: \"name\" must be a string",
                                   index);
                if (json_read_string(r, &name) != ST_OK)
                    return sv_fail_json(c, r, NULL);
                has_name = true;
            }
        }
        if (json_reader_status(r) != ST_OK)
            return sv_fail_json(c, r, NULL);
        if (!has_name)
            return sv_fail(c, 400, ST_EINVAL, "outputs[%zu]: missing \"name\"", index);
        int o = sv_find_output(c->sig, name);
        if (o < 0) {
            char names[300];
            return sv_fail(c, 400, ST_EINVAL, "unknown output \"%.*s\"; the model's outputs are %s",
                           (int)(name.len > 200 ? 200 : name.len), name.ptr,
                           sv_names_text(names, sizeof names, c->sig->outputs, c->sig->n_outputs));
        }
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup |= out->outputs[i] == o;
        if (!dup)
            out->outputs[n++] = o;
        index++;
    }
    if (json_reader_status(r) != ST_OK)
        return sv_fail_json(c, r, NULL);
    /* An empty list counts as absent: all outputs. */
    out->n_outputs = n;
    return ST_OK;
}

st_status sv_decode_v2(sv_ctx *c, sv_request *out)
{
    json_reader r;
    json_limits lim = { .max_input_bytes = c->body_len + 1, .max_elements = c->body_len + 1 };
    json_reader_init(&r, c->body, c->body_len, &lim, c->arena, c->err);
    bool *seen = st_arena_calloc(c->arena, c->sig->n_inputs + 1, sizeof(bool), 8);
    if (!seen)
        return sv_fail(c, 503, ST_ENOMEM, "out of memory");
    if (json_peek(&r) != JSON_KIND_OBJECT) {
        if (json_reader_status(&r) != ST_OK)
            return sv_fail_json(c, &r, "invalid JSON");
        return sv_fail(c, 400, ST_ETYPE, "the request body must be a JSON object with \"inputs\"");
    }
    bool has_inputs = false;
    st_str key;
    json_enter_object(&r);
    while (json_object_next(&r, &key)) {
        st_status s = ST_OK;
        if (st_str_eq_c(key, "id")) {
            st_str id;
            if (json_peek(&r) != JSON_KIND_STRING)
                return sv_fail(c, 400, ST_ETYPE, "\"id\" must be a string");
            if (json_read_string(&r, &id) != ST_OK)
                return sv_fail_json(c, &r, "invalid JSON");
            out->id = st_arena_strndup(c->arena, id.ptr, id.len);
            if (!out->id)
                return sv_fail(c, 503, ST_ENOMEM, "out of memory");
        } else if (st_str_eq_c(key, "inputs")) {
            if (has_inputs)
                return sv_fail(c, 400, ST_EINVAL, "\"inputs\" given twice");
            has_inputs = true;
            if (json_peek(&r) != JSON_KIND_ARRAY) {
                if (json_reader_status(&r) != ST_OK)
                    break;
                return sv_fail(c, 400, ST_ETYPE, "\"inputs\" must be a list of tensors");
            }
            json_enter_array(&r);
            size_t index = 0;
            while (s == ST_OK && json_array_next(&r))
                s = read_input(c, &r, index++, seen, out);
        } else if (st_str_eq_c(key, "outputs")) {
            s = read_outputs(c, &r, out);
        } else if (st_str_eq_c(key, "parameters")) {
            if (json_peek(&r) != JSON_KIND_OBJECT && json_reader_status(&r) == ST_OK)
                return sv_fail(c, 400, ST_ETYPE, "\"parameters\" must be an object");
        }
        if (s != ST_OK)
            return s;
    }
    if (json_reader_finish(&r) != ST_OK)
        return sv_fail_json(c, &r, "invalid JSON");
    if (!has_inputs)
        return sv_fail(c, 400, ST_EINVAL, "the request has no \"inputs\"");
    return sv_finish_request(c, out, seen);
}

/* ---- response ------------------------------------------------------------------ */

static void write_shape(json_writer *w, const int64_t *shape, size_t rank)
{
    json_write_array_begin(w);
    for (size_t i = 0; i < rank; i++)
        json_write_int64(w, shape[i]);
    json_write_array_end(w);
}

static void write_header(json_writer *w, const char *name, const char *datatype,
                         const int64_t *shape, size_t rank)
{
    json_write_object_begin(w);
    json_write_key(w, ST_STR("name"));
    json_write_string(w, st_str_c(name));
    json_write_key(w, ST_STR("datatype"));
    json_write_string(w, st_str_c(datatype));
    json_write_key(w, ST_STR("shape"));
    write_shape(w, shape, rank);
    json_write_key(w, ST_STR("data"));
}

static bool keys_equal(const eng_tensor *a, const eng_tensor *b)
{
    if (a->dtype != b->dtype || a->count != b->count)
        return false;
    if (a->dtype == ST_DT_STRING) {
        const st_str *x = a->data, *y = b->data;
        for (size_t i = 0; i < a->count; i++)
            if (!st_str_eq(x[i], y[i]))
                return false;
        return true;
    }
    return a->count == 0 || memcmp(a->data, b->data, a->count * st_dtype_size(a->dtype)) == 0;
}

/* A sequence of N maps with the same K keys as [N, K] values. */
static st_status write_map_sequence(json_writer *w, const char *name, const eng_tensor *t,
                                    st_error *err)
{
    const eng_tensor *maps = t->data;
    size_t rows = t->count, k = rows ? maps[0].count : 0;
    st_dtype vt = rows ? ((const eng_tensor *)maps[0].data)[1].dtype : ST_DT_FLOAT32;
    if (!is_float_type(vt) && !is_int_type(vt))
        return st_fail(err, ST_EUNSUPPORTED, "output \"%s\": map values of type %s", name,
                       st_dtype_name(vt));
    for (size_t i = 1; i < rows; i++) {
        const eng_tensor *kv = maps[i].data, *kv0 = maps[0].data;
        if (maps[i].count != k || kv[1].dtype != vt || !keys_equal(&kv[0], &kv0[0]))
            return st_fail(err, ST_EUNSUPPORTED,
                           "output \"%s\": row %zu's map has other keys than row 0's", name, i);
    }
    int64_t shape[2] = { (int64_t)rows, (int64_t)k };
    write_header(w, name, sv_v2_datatype(vt), shape, 2);
    json_write_array_begin(w);
    size_t es = st_dtype_size(vt);
    for (size_t i = 0; i < rows; i++) {
        const uint8_t *v = ((const eng_tensor *)maps[i].data)[1].data;
        for (size_t j = 0; j < k; j++)
            sv_write_scalar(w, vt, v + j * es);
    }
    json_write_array_end(w);
    json_write_object_end(w);
    return json_writer_status(w);
}

static st_status write_output(json_writer *w, const char *name, const eng_tensor *t, st_error *err)
{
    if (t->dtype == ENG_DT_OPTIONAL) {
        if (t->count == 0) {
            int64_t zero = 0;
            write_header(w, name, "FP32", &zero, 1);
            json_write_array_begin(w);
            json_write_array_end(w);
            json_write_object_end(w);
            return json_writer_status(w);
        }
        t = t->data;
    }
    if (sv_is_map_sequence(t))
        return write_map_sequence(w, name, t, err);
    const char *dt = sv_v2_datatype(t->dtype);
    if (!dt)
        return st_fail(err, ST_EUNSUPPORTED, "output \"%s\" is a %s, which V2 cannot express",
                       name, t->dtype == ENG_DT_SEQUENCE ? "sequence" : "non-tensor value");
    write_header(w, name, dt, t->shape, t->rank);
    if (t->dtype == ST_DT_STRING) {
        const st_str *s = t->data;
        json_write_array_begin(w);
        for (size_t i = 0; i < t->count; i++)
            json_write_string(w, s[i]);
        json_write_array_end(w);
    } else {
        size_t dims[1] = { t->count };
        json_write_numbers(w, t->dtype, t->data, dims, 1, false);
    }
    json_write_object_end(w);
    return json_writer_status(w);
}

st_status sv_encode_v2(const sv_model_sig *sig, const sv_request *req, const eng_tensor *outputs,
                       size_t n_outputs, st_buf *body, st_error *err)
{
    (void)n_outputs;
    json_writer w;
    json_writer_init(&w, body, err);
    json_writer_set_nonfinite(&w, JSON_NONFINITE_NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("model_name"));
    json_write_string(&w, st_str_c(sig->name));
    if (sig->version) {
        json_write_key(&w, ST_STR("model_version"));
        json_write_string(&w, st_str_c(sig->version));
    }
    if (req->id) {
        json_write_key(&w, ST_STR("id"));
        json_write_string(&w, st_str_c(req->id));
    }
    json_write_key(&w, ST_STR("outputs"));
    json_write_array_begin(&w);
    size_t n = sv_selected_count(sig, req);
    for (size_t k = 0; k < n; k++) {
        size_t i = sv_selected_index(req, k);
        st_status s = write_output(&w, sig->outputs[i].name, &outputs[i], err);
        if (s != ST_OK)
            return s;
    }
    json_write_array_end(&w);
    json_write_object_end(&w);
    return json_writer_finish(&w);
}
