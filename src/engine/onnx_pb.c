/* onnx_pb.c - hand-written protobuf wire-format decoder for onnx.proto.
 * Each message decoder walks its bytes twice: the first pass checks the
 * framing and counts repeated fields, the second fills exact-size arena
 * arrays.  Tensor payloads stay in the input until materialized. */
#include "engine/onnx_pb.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/dtype.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "onnx_pb reads little-endian payloads in place");

/* ---- ONNX data types ------------------------------------------------------ */

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_SGROUP = 3, PB_EGROUP = 4, PB_I32 = 5 };

/* TensorProto field numbers of the typed repeated fields. */
enum {
    TF_FLOAT = 4, TF_INT32 = 5, TF_STRING = 6, TF_INT64 = 7, TF_DOUBLE = 10, TF_UINT64 = 11
};

typedef struct {
    const char *name;
    unsigned char size;      /* bytes per element; 0 for string */
    unsigned char carrier;   /* typed field holding it (TF_*) */
    unsigned char per_elem;  /* carrier values per element (2 for complex) */
} dt_info;

static const dt_info dt_table[ONNX_DATA_TYPE_MAX + 1] = {
    [0] = { "undefined", 0, 0, 0 },
    [1] = { "float32", 4, TF_FLOAT, 1 },
    [2] = { "uint8", 1, TF_INT32, 1 },
    [3] = { "int8", 1, TF_INT32, 1 },
    [4] = { "uint16", 2, TF_INT32, 1 },
    [5] = { "int16", 2, TF_INT32, 1 },
    [6] = { "int32", 4, TF_INT32, 1 },
    [7] = { "int64", 8, TF_INT64, 1 },
    [8] = { "string", 0, TF_STRING, 1 },
    [9] = { "bool", 1, TF_INT32, 1 },
    [10] = { "float16", 2, TF_INT32, 1 },
    [11] = { "float64", 8, TF_DOUBLE, 1 },
    [12] = { "uint32", 4, TF_UINT64, 1 },
    [13] = { "uint64", 8, TF_UINT64, 1 },
    [14] = { "complex64", 8, TF_FLOAT, 2 },
    [15] = { "complex128", 16, TF_DOUBLE, 2 },
    [16] = { "bfloat16", 2, TF_INT32, 1 },
    [17] = { "float8e4m3fn", 1, TF_INT32, 1 },
    [18] = { "float8e4m3fnuz", 1, TF_INT32, 1 },
    [19] = { "float8e5m2", 1, TF_INT32, 1 },
    [20] = { "float8e5m2fnuz", 1, TF_INT32, 1 },
};

const char *onnx_data_type_name(int32_t data_type)
{
    if (data_type < 0 || data_type > ONNX_DATA_TYPE_MAX)
        return "unknown";
    return dt_table[data_type].name;
}

/* ---- decoder state and errors -------------------------------------------- */

typedef struct onnx_dec {
    const uint8_t *base;   /* start of the whole input: offsets in messages */
    st_arena *arena;
    st_error *err;
    unsigned depth;
} onnx_dec;

typedef struct pb_msg {
    const uint8_t *p;
    const uint8_t *end;
    const char *type;      /* "NodeProto", for messages */
} pb_msg;

typedef struct pb_field {
    uint32_t num;
    uint32_t wire;
    uint64_t value;        /* VARINT, I64, I32 */
    st_str bytes;          /* LEN payload */
    const uint8_t *at;     /* the tag */
} pb_field;

/* Names from the file go into messages cut to a readable length. */
#define NAME_MAX_SHOWN 64
#define SHOWN(s) (int)((s).len < NAME_MAX_SHOWN ? (s).len : NAME_MAX_SHOWN), (s).ptr

static size_t dec_off(const onnx_dec *d, const void *p)
{
    return (size_t)((const uint8_t *)p - d->base);
}

static pb_msg pb_open(st_str body, const char *type)
{
    const uint8_t *p = (const uint8_t *)body.ptr;
    if (!p) /* an empty input may come as NULL */
        return (pb_msg){ NULL, NULL, type };
    return (pb_msg){ p, p + body.len, type };
}

static st_status dec_enter(onnx_dec *d, st_str body, const char *type)
{
    if (d->depth >= ONNX_PB_MAX_DEPTH)
        return st_fail(d->err, ST_ELIMIT,
                       "%s at byte %zu is nested deeper than %d messages",
                       type, dec_off(d, body.ptr), ONNX_PB_MAX_DEPTH);
    d->depth++;
    return ST_OK;
}

static st_status dec_oom(onnx_dec *d, size_t n, size_t size)
{
    return st_fail(d->err, ST_ENOMEM, "out of memory allocating %zu x %zu bytes", n, size);
}

/* Prefixes the error with where it happened ("node 3 'conv1' (Conv)").
 * Deep nesting would push the actual error out of the fixed-size message,
 * so past a budget the outer prefixes collapse into one "...". */
#define WRAP_BUDGET 380
static st_status dec_wrap(onnx_dec *d, st_status rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static st_status dec_wrap(onnx_dec *d, st_status rc, const char *fmt, ...)
{
    char prefix[160];
    va_list ap;
    if (!d->err)
        return rc;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t have = strnlen(d->err->msg, sizeof d->err->msg);
    if (have + strlen(prefix) + 2 <= WRAP_BUDGET)
        return st_fail_wrap(d->err, rc, "%s", prefix);
    if (strncmp(d->err->msg, "...: ", 5) != 0)
        return st_fail_wrap(d->err, rc, "...");
    return d->err->code;
}

static st_status dec_changed(onnx_dec *d, const char *type)
{
    return st_fail(d->err, ST_ECORRUPT,
                   "%s changed while it was decoded (file modified during load?)", type);
}

/* Arena array of n elements, NULL for n == 0 (callers check n first). */
static void *dec_alloc(onnx_dec *d, size_t n, size_t size)
{
    size_t total;
    if (n == 0 || st_mul_overflow(n, size, &total))
        return NULL;
    return st_arena_alloc(d->arena, total, 16);
}

#define NEW_ARRAY(ptr, n)                                              \
    do {                                                               \
        if ((n) != 0 && ((ptr) = dec_alloc(d, (n), sizeof *(ptr))) == NULL) { \
            rc = dec_oom(d, (n), sizeof *(ptr));                      \
            goto done;                                                 \
        }                                                              \
    } while (0)

#define TRY(expr)                                                      \
    do {                                                               \
        if ((rc = (expr)) != ST_OK)                                    \
            goto done;                                                 \
    } while (0)

#define WANT(wt, fname)                                                \
    do {                                                               \
        if (f.wire != (wt)) {                                          \
            rc = pb_bad_wire(d, &f, (wt), m.type, (fname));            \
            goto done;                                                 \
        }                                                              \
    } while (0)

/* Stores into arr[idx++] during the fill pass, guarding the count. */
#define PUT(arr, idx, n, val)                                          \
    do {                                                               \
        if ((idx) >= (n)) {                                            \
            rc = dec_changed(d, m.type);                               \
            goto done;                                                 \
        }                                                              \
        (arr)[(idx)++] = (val);                                        \
    } while (0)

/* ---- wire primitives ---------------------------------------------------- */

static st_status pb_varint(onnx_dec *d, pb_msg *m, uint64_t *out, uint32_t field)
{
    const uint8_t *start = m->p;
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (m->p >= m->end) {
            if (field == 0)
                return st_fail(d->err, ST_ECORRUPT, "truncated tag in %s at byte %zu",
                               m->type, dec_off(d, start));
            return st_fail(d->err, ST_ECORRUPT,
                           "truncated varint field %u of %s at byte %zu", field, m->type,
                           dec_off(d, start));
        }
        uint8_t b = *m->p++;
        if (shift == 63 && b > 1)
            return st_fail(d->err, ST_ECORRUPT,
                           "varint %s %u of %s at byte %zu is longer than 10 bytes or "
                           "overflows 64 bits",
                           field ? "field" : "tag of field", field, m->type,
                           dec_off(d, start));
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80)
            break;
    }
    *out = v;
    return ST_OK;
}

/* Reads the next field of `m`; the caller loops while m->p < m->end. */
static st_status pb_next(onnx_dec *d, pb_msg *m, pb_field *f)
{
    st_status rc;
    uint64_t tag, len;
    size_t left;
    f->at = m->p;
    if ((rc = pb_varint(d, m, &tag, 0)) != ST_OK)
        return rc;
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffffu)
        return st_fail(d->err, ST_ECORRUPT, "invalid field number %llu in %s at byte %zu",
                       (unsigned long long)(tag >> 3), m->type, dec_off(d, f->at));
    f->num = (uint32_t)(tag >> 3);
    f->wire = (uint32_t)(tag & 7);
    f->value = 0;
    f->bytes = st_str_make(NULL, 0);
    left = (size_t)(m->end - m->p);
    switch (f->wire) {
    case PB_VARINT:
        return pb_varint(d, m, &f->value, f->num);
    case PB_I64:
    case PB_I32: {
        size_t need = f->wire == PB_I64 ? 8 : 4;
        if (left < need)
            return st_fail(d->err, ST_ECORRUPT,
                           "truncated fixed%zu field %u of %s at byte %zu (needs %zu bytes, "
                           "%zu left)",
                           need * 8, f->num, m->type, dec_off(d, f->at), need, left);
        if (need == 8) {
            memcpy(&f->value, m->p, 8);
        } else {
            uint32_t v32;
            memcpy(&v32, m->p, 4);
            f->value = v32;
        }
        m->p += need;
        return ST_OK;
    }
    case PB_LEN:
        if ((rc = pb_varint(d, m, &len, f->num)) != ST_OK)
            return rc;
        left = (size_t)(m->end - m->p);
        if (len > left)
            return st_fail(d->err, ST_ECORRUPT,
                           "truncated length-delimited field %u of %s at byte %zu (needs "
                           "%llu bytes, %zu left)",
                           f->num, m->type, dec_off(d, f->at), (unsigned long long)len, left);
        f->bytes = st_str_make(m->p, (size_t)len);
        m->p += len;
        return ST_OK;
    case PB_SGROUP:
    case PB_EGROUP:
        return st_fail(d->err, ST_ECORRUPT,
                       "field %u of %s at byte %zu is a group (wire type %u), which ONNX "
                       "never uses",
                       f->num, m->type, dec_off(d, f->at), f->wire);
    default:
        return st_fail(d->err, ST_ECORRUPT,
                       "field %u of %s at byte %zu has invalid wire type %u", f->num,
                       m->type, dec_off(d, f->at), f->wire);
    }
}

static st_status pb_bad_wire(onnx_dec *d, const pb_field *f, uint32_t want,
                             const char *type, const char *fname)
{
    return st_fail(d->err, ST_ECORRUPT,
                   "field %u (%s) of %s at byte %zu has wire type %u, expected %u", f->num,
                   fname, type, dec_off(d, f->at), f->wire, want);
}

/* Elements that one occurrence of a repeated scalar field contributes:
 * 1 when unpacked, the validated element count of a packed payload. */
static st_status pb_rep_count(onnx_dec *d, const pb_field *f, uint32_t scalar_wire,
                              const char *type, const char *fname, size_t *n)
{
    if (f->wire == scalar_wire) {
        *n = 1;
        return ST_OK;
    }
    if (f->wire != PB_LEN)
        return pb_bad_wire(d, f, scalar_wire, type, fname);
    const uint8_t *p = (const uint8_t *)f->bytes.ptr;
    size_t len = f->bytes.len;
    if (scalar_wire == PB_I32 || scalar_wire == PB_I64) {
        size_t width = scalar_wire == PB_I32 ? 4 : 8;
        if (len % width != 0)
            return st_fail(d->err, ST_ECORRUPT,
                           "packed field %u (%s) of %s at byte %zu has %zu bytes, not a "
                           "multiple of %zu",
                           f->num, fname, type, dec_off(d, f->at), len, width);
        *n = len / width;
        return ST_OK;
    }
    size_t count = 0, run = 0;
    for (size_t i = 0; i < len; i++) {
        run++;
        if (run == 10 && p[i] > 1)
            return st_fail(d->err, ST_ECORRUPT,
                           "packed field %u (%s) of %s: varint at byte %zu is longer than "
                           "10 bytes or overflows 64 bits",
                           f->num, fname, type, dec_off(d, p + i + 1 - run));
        if (p[i] < 0x80) {
            count++;
            run = 0;
        }
    }
    if (run != 0)
        return st_fail(d->err, ST_ECORRUPT,
                       "packed field %u (%s) of %s at byte %zu ends inside a varint",
                       f->num, fname, type, dec_off(d, f->at));
    *n = count;
    return ST_OK;
}

/* Walks the elements of one occurrence of a repeated scalar field. */
typedef struct pb_rep_iter {
    const uint8_t *p;
    const uint8_t *end;
    uint32_t wire;         /* wire type of one element */
    bool has_single;
    uint64_t single;
} pb_rep_iter;

static void pb_rep_begin(pb_rep_iter *it, const pb_field *f, uint32_t scalar_wire)
{
    it->wire = scalar_wire;
    it->has_single = f->wire != PB_LEN;
    it->single = f->value;
    it->p = it->end = NULL;
    if (f->wire == PB_LEN && f->bytes.len > 0) {
        it->p = (const uint8_t *)f->bytes.ptr;
        it->end = it->p + f->bytes.len;
    }
}

/* Next element (raw bits for fixed32/64); false at the end or on bytes
 * that pb_rep_count would have refused. */
static bool pb_rep_next(pb_rep_iter *it, uint64_t *v)
{
    if (it->has_single) {
        it->has_single = false;
        *v = it->single;
        return true;
    }
    if (it->p == it->end)
        return false;
    size_t left = (size_t)(it->end - it->p);
    if (it->wire == PB_I32) {
        uint32_t v32;
        if (left < 4)
            return false;
        memcpy(&v32, it->p, 4);
        it->p += 4;
        *v = v32;
        return true;
    }
    if (it->wire == PB_I64) {
        if (left < 8)
            return false;
        memcpy(v, it->p, 8);
        it->p += 8;
        return true;
    }
    uint64_t acc = 0;
    for (unsigned shift = 0; it->p < it->end; shift += 7) {
        uint8_t b = *it->p++;
        if (shift == 63 && b > 1)
            return false;
        acc |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *v = acc;
            return true;
        }
    }
    return false;
}

static st_status pb_int32(onnx_dec *d, const pb_field *f, const char *type,
                          const char *fname, int32_t *out)
{
    int64_t v = (int64_t)f->value;
    if (v < INT32_MIN || v > INT32_MAX)
        return st_fail(d->err, ST_ECORRUPT,
                       "field %u (%s) of %s at byte %zu: %lld is out of int32 range", f->num,
                       fname, type, dec_off(d, f->at), (long long)v);
    *out = (int32_t)v;
    return ST_OK;
}

static float pb_float(uint64_t bits)
{
    uint32_t b32 = (uint32_t)bits;
    float x;
    memcpy(&x, &b32, sizeof x);
    return x;
}

/* ---- small messages ----------------------------------------------------- */

static st_status dec_entry(onnx_dec *d, st_str body, onnx_string_entry *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "StringStringEntryProto");
    if (rc != ST_OK)
        return rc;
    pb_msg m = pb_open(body, "StringStringEntryProto");
    pb_field f;
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        switch (f.num) {
        case 1:
            WANT(PB_LEN, "key");
            out->key = f.bytes;
            break;
        case 2:
            WANT(PB_LEN, "value");
            out->value = f.bytes;
            break;
        default:
            break;
        }
    }
done:
    d->depth--;
    return rc;
}

static st_status dec_opset(onnx_dec *d, st_str body, onnx_opset *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "OperatorSetIdProto");
    if (rc != ST_OK)
        return rc;
    pb_msg m = pb_open(body, "OperatorSetIdProto");
    pb_field f;
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        switch (f.num) {
        case 1:
            WANT(PB_LEN, "domain");
            out->domain = f.bytes;
            break;
        case 2:
            WANT(PB_VARINT, "version");
            out->version = (int64_t)f.value;
            break;
        default:
            break;
        }
    }
done:
    d->depth--;
    return rc;
}

/* ---- types -------------------------------------------------------------- */

static st_status dec_type(onnx_dec *d, st_str body, onnx_type *out);

static st_status dec_dim(onnx_dec *d, st_str body, onnx_dim *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "TensorShapeProto.Dimension");
    if (rc != ST_OK)
        return rc;
    pb_msg m = pb_open(body, "TensorShapeProto.Dimension");
    pb_field f;
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        switch (f.num) {
        case 1:
            WANT(PB_VARINT, "dim_value");
            /* Some exporters write -1 for "unknown"; keep it as unknown. */
            out->value = (int64_t)f.value;
            out->kind = out->value >= 0 ? ONNX_DIM_VALUE : ONNX_DIM_UNKNOWN;
            out->param = st_str_make(NULL, 0);
            if (out->kind == ONNX_DIM_UNKNOWN)
                out->value = 0;
            break;
        case 2:
            WANT(PB_LEN, "dim_param");
            out->kind = ONNX_DIM_PARAM;
            out->param = f.bytes;
            out->value = 0;
            break;
        default:
            break;
        }
    }
done:
    d->depth--;
    return rc;
}

static st_status dec_shape(onnx_dec *d, st_str body, onnx_type *out)
{
    st_status rc = dec_enter(d, body, "TensorShapeProto");
    if (rc != ST_OK)
        return rc;
    size_t n = 0;
    onnx_dim *dims = NULL;
    for (int pass = 0; pass < 2; pass++) {
        pb_msg m = pb_open(body, "TensorShapeProto");
        pb_field f;
        size_t i = 0;
        while (m.p < m.end) {
            TRY(pb_next(d, &m, &f));
            if (f.num != 1)
                continue;
            WANT(PB_LEN, "dim");
            if (pass == 1) {
                if (i >= n) {
                    rc = dec_changed(d, m.type);
                    goto done;
                }
                TRY(dec_dim(d, f.bytes, &dims[i]));
            }
            i++;
        }
        if (pass == 0) {
            n = i;
            NEW_ARRAY(dims, n);
        } else if (i != n) {
            rc = dec_changed(d, m.type);
            goto done;
        }
    }
    out->has_shape = true;
    out->dims = dims;
    out->dim_count = n;
done:
    d->depth--;
    return rc;
}

/* TypeProto.Tensor / TypeProto.SparseTensor. */
static st_status dec_type_tensor(onnx_dec *d, st_str body, onnx_type *out, const char *type)
{
    st_status rc = dec_enter(d, body, type);
    if (rc != ST_OK)
        return rc;
    pb_msg m = pb_open(body, type);
    pb_field f;
    bool has_shape = false;
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        switch (f.num) {
        case 1:
            WANT(PB_VARINT, "elem_type");
            TRY(pb_int32(d, &f, m.type, "elem_type", &out->elem_type));
            break;
        case 2:
            WANT(PB_LEN, "shape");
            if (has_shape) {
                rc = st_fail(d->err, ST_ECORRUPT, "%s at byte %zu has two shapes", m.type,
                             dec_off(d, f.at));
                goto done;
            }
            has_shape = true;
            TRY(dec_shape(d, f.bytes, out));
            break;
        default:
            break;
        }
    }
done:
    d->depth--;
    return rc;
}

/* TypeProto.Sequence / Optional / Map: the element (value) type and, for
 * maps, the key type. */
static st_status dec_type_inner(onnx_dec *d, st_str body, onnx_type *out, const char *type,
                                uint32_t inner_field)
{
    st_status rc = dec_enter(d, body, type);
    if (rc != ST_OK)
        return rc;
    pb_msg m = pb_open(body, type);
    pb_field f;
    onnx_type *inner = NULL;
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        if (f.num == inner_field) {
            WANT(PB_LEN, "elem_type");
            if (inner) {
                rc = st_fail(d->err, ST_ECORRUPT, "%s at byte %zu has two element types",
                             m.type, dec_off(d, f.at));
                goto done;
            }
            NEW_ARRAY(inner, 1);
            TRY(dec_type(d, f.bytes, inner));
            out->inner = inner;
        } else if (f.num == 1 && out->kind == ONNX_TYPE_MAP) {
            WANT(PB_VARINT, "key_type");
            TRY(pb_int32(d, &f, m.type, "key_type", &out->key_type));
        }
    }
done:
    d->depth--;
    return rc;
}

static st_status dec_type_opaque(onnx_dec *d, st_str body, onnx_type *out)
{
    st_status rc = dec_enter(d, body, "TypeProto.Opaque");
    if (rc != ST_OK)
        return rc;
    pb_msg m = pb_open(body, "TypeProto.Opaque");
    pb_field f;
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        if (f.num == 1) {
            WANT(PB_LEN, "domain");
            out->opaque_domain = f.bytes;
        } else if (f.num == 2) {
            WANT(PB_LEN, "name");
            out->opaque_name = f.bytes;
        }
    }
done:
    d->depth--;
    return rc;
}

static st_status dec_type(onnx_dec *d, st_str body, onnx_type *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "TypeProto");
    if (rc != ST_OK)
        return rc;
    pb_msg m = pb_open(body, "TypeProto");
    pb_field f;
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        onnx_type_kind kind;
        switch (f.num) {
        case 1: kind = ONNX_TYPE_TENSOR; break;
        case 4: kind = ONNX_TYPE_SEQUENCE; break;
        case 5: kind = ONNX_TYPE_MAP; break;
        case 7: kind = ONNX_TYPE_OPAQUE; break;
        case 8: kind = ONNX_TYPE_SPARSE_TENSOR; break;
        case 9: kind = ONNX_TYPE_OPTIONAL; break;
        case 6:
            WANT(PB_LEN, "denotation");
            out->denotation = f.bytes;
            continue;
        default:
            continue;
        }
        WANT(PB_LEN, "value");
        if (out->kind != ONNX_TYPE_NONE) {
            rc = st_fail(d->err, ST_ECORRUPT,
                         "TypeProto at byte %zu sets more than one kind of type",
                         dec_off(d, f.at));
            goto done;
        }
        out->kind = kind;
        switch (kind) {
        case ONNX_TYPE_TENSOR:
            TRY(dec_type_tensor(d, f.bytes, out, "TypeProto.Tensor"));
            break;
        case ONNX_TYPE_SPARSE_TENSOR:
            TRY(dec_type_tensor(d, f.bytes, out, "TypeProto.SparseTensor"));
            break;
        case ONNX_TYPE_SEQUENCE:
            TRY(dec_type_inner(d, f.bytes, out, "TypeProto.Sequence", 1));
            break;
        case ONNX_TYPE_OPTIONAL:
            TRY(dec_type_inner(d, f.bytes, out, "TypeProto.Optional", 1));
            break;
        case ONNX_TYPE_MAP:
            TRY(dec_type_inner(d, f.bytes, out, "TypeProto.Map", 2));
            break;
        default:
            TRY(dec_type_opaque(d, f.bytes, out));
            break;
        }
    }
done:
    d->depth--;
    return rc;
}

static st_status dec_value_info(onnx_dec *d, st_str body, onnx_value_info *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "ValueInfoProto");
    if (rc != ST_OK)
        return rc;
    pb_msg m = pb_open(body, "ValueInfoProto");
    pb_field f;
    bool has_type = false;
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        if (f.num == 1) {
            WANT(PB_LEN, "name");
            out->name = f.bytes;
        } else if (f.num == 2) {
            WANT(PB_LEN, "type");
            if (has_type) {
                rc = st_fail(d->err, ST_ECORRUPT, "ValueInfoProto at byte %zu has two types",
                             dec_off(d, f.at));
                goto done;
            }
            has_type = true;
            TRY(dec_type(d, f.bytes, &out->type));
        }
    }
done:
    d->depth--;
    return rc;
}

/* ---- tensors ------------------------------------------------------------ */

static void format_dims(char *buf, size_t cap, const int64_t *dims, size_t n)
{
    size_t used = 0, i = 0;
    buf[0] = '\0';
    for (; i < n && used + 24 < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%lld", i ? "," : "", (long long)dims[i]);
        if (w < 0)
            return;
        used += (size_t)w;
    }
    if (i < n)
        snprintf(buf + used, cap - used, ",...");
}

static bool parse_decimal(st_str s, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned c = (unsigned char)s.ptr[i];
        if (c < '0' || c > '9')
            return false;
        if (v > (UINT64_MAX - (c - '0')) / 10)
            return false;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
}

static onnx_typed_field *typed_field(onnx_tensor *t, unsigned field)
{
    switch (field) {
    case TF_FLOAT: return &t->float_data;
    case TF_INT32: return &t->int32_data;
    case TF_STRING: return &t->string_data;
    case TF_INT64: return &t->int64_data;
    case TF_DOUBLE: return &t->double_data;
    case TF_UINT64: return &t->uint64_data;
    default: return NULL;
    }
}

static const char *typed_field_name(unsigned field)
{
    switch (field) {
    case TF_FLOAT: return "float_data";
    case TF_INT32: return "int32_data";
    case TF_STRING: return "string_data";
    case TF_INT64: return "int64_data";
    case TF_DOUBLE: return "double_data";
    case TF_UINT64: return "uint64_data";
    default: return "?";
    }
}

static uint32_t typed_field_wire(unsigned field)
{
    switch (field) {
    case TF_FLOAT: return PB_I32;
    case TF_DOUBLE: return PB_I64;
    case TF_STRING: return PB_LEN;
    default: return PB_VARINT;
    }
}

static st_status typed_add(onnx_dec *d, const pb_field *f, const char *type,
                           onnx_typed_field *tf)
{
    uint32_t wire = typed_field_wire(f->num);
    size_t n;
    st_status rc = pb_rep_count(d, f, wire, type, typed_field_name(f->num), &n);
    if (rc != ST_OK)
        return rc;
    if (tf->occurrences == 0 && wire != PB_LEN && f->wire == PB_LEN)
        tf->only_packed = f->bytes;
    tf->occurrences++;
    tf->count += n; /* bounded by the input length */
    return ST_OK;
}

/* The invariants onnx_tensor_materialize relies on. */
static st_status tensor_check(onnx_dec *d, onnx_tensor *t, bool has_segment,
                              bool has_data_type)
{
    char dims[96];
    if (has_segment)
        return st_fail(d->err, ST_EUNSUPPORTED,
                       "tensor uses `segment` (a chunk of a larger tensor), which Stratus "
                       "does not support");
    if (!has_data_type || t->data_type == 0)
        return st_fail(d->err, ST_ECORRUPT, "tensor has no data_type");
    if (t->data_type < 0 || t->data_type > ONNX_DATA_TYPE_MAX)
        return st_fail(d->err, ST_ECORRUPT, "tensor has unknown data_type %d", t->data_type);
    const dt_info *dt = &dt_table[t->data_type];

    size_t elems = 1;
    for (size_t i = 0; i < t->dim_count; i++) {
        if (t->dims[i] < 0)
            return st_fail(d->err, ST_ECORRUPT, "tensor has negative dim %lld at index %zu",
                           (long long)t->dims[i], i);
        if ((uint64_t)t->dims[i] > SIZE_MAX ||
            st_mul_overflow(elems, (size_t)t->dims[i], &elems)) {
            format_dims(dims, sizeof dims, t->dims, t->dim_count);
            return st_fail(d->err, ST_EOVERFLOW, "tensor dims [%s] overflow the address space",
                           dims);
        }
    }
    t->elem_count = elems;
    if (st_mul_overflow(elems, dt->size, &t->byte_size)) {
        format_dims(dims, sizeof dims, t->dims, t->dim_count);
        return st_fail(d->err, ST_EOVERFLOW, "tensor dims [%s] of %s overflow the address space",
                       dims, dt->name);
    }

    if (t->data_location != ONNX_LOCATION_DEFAULT && t->data_location != ONNX_LOCATION_EXTERNAL)
        return st_fail(d->err, ST_ECORRUPT, "tensor has unknown data_location %d",
                       (int)t->data_location);

    static const unsigned fields[] = { TF_FLOAT, TF_INT32, TF_STRING,
                                       TF_INT64, TF_DOUBLE, TF_UINT64 };
    size_t typed_total = 0;
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        const onnx_typed_field *tf = typed_field(t, fields[k]);
        typed_total += tf->count;
        if (tf->count != 0 && fields[k] != dt->carrier)
            return st_fail(d->err, ST_ECORRUPT,
                           "tensor of type %s has %zu values in %s, which does not carry %s",
                           dt->name, tf->count, typed_field_name(fields[k]), dt->name);
    }

    if (t->data_location == ONNX_LOCATION_EXTERNAL) {
        bool has_location = false;
        if (t->data_type == 8)
            return st_fail(d->err, ST_ECORRUPT, "STRING tensor cannot use external data");
        if (t->has_raw_data || typed_total != 0)
            return st_fail(d->err, ST_ECORRUPT,
                           "tensor has data_location EXTERNAL and data in the file too");
        for (size_t i = 0; i < t->external_count; i++) {
            const onnx_string_entry *e = &t->external_data[i];
            if (st_str_eq_c(e->key, "location")) {
                t->ext_location = e->value;
                has_location = true;
            } else if (st_str_eq_c(e->key, "offset")) {
                if (!parse_decimal(e->value, &t->ext_offset))
                    return st_fail(d->err, ST_ECORRUPT,
                                   "external data offset '%.*s' is not a decimal number",
                                   SHOWN(e->value));
            } else if (st_str_eq_c(e->key, "length")) {
                if (!parse_decimal(e->value, &t->ext_length))
                    return st_fail(d->err, ST_ECORRUPT,
                                   "external data length '%.*s' is not a decimal number",
                                   SHOWN(e->value));
                t->has_ext_length = true;
            }
        }
        if (!has_location)
            return st_fail(d->err, ST_ECORRUPT, "external data has no location");
        if (t->has_ext_length && t->ext_length != t->byte_size) {
            format_dims(dims, sizeof dims, t->dims, t->dim_count);
            return st_fail(d->err, ST_ECORRUPT,
                           "external data length %llu does not match dims [%s] of %s (%zu "
                           "bytes)",
                           (unsigned long long)t->ext_length, dims, dt->name, t->byte_size);
        }
        return ST_OK;
    }

    if (t->has_raw_data) {
        if (t->data_type == 8)
            return st_fail(d->err, ST_ECORRUPT, "STRING tensor uses raw_data");
        if (typed_total != 0)
            return st_fail(d->err, ST_ECORRUPT, "tensor has both raw_data and %s",
                           typed_field_name(dt->carrier));
        if (t->raw_data.len != t->byte_size) {
            format_dims(dims, sizeof dims, t->dims, t->dim_count);
            return st_fail(d->err, ST_ECORRUPT,
                           "raw_data has %zu bytes but dims [%s] of %s need %zu",
                           t->raw_data.len, dims, dt->name, t->byte_size);
        }
        return ST_OK;
    }

    size_t need;
    if (st_mul_overflow(elems, dt->per_elem, &need))
        return st_fail(d->err, ST_EOVERFLOW, "tensor element count overflows");
    const onnx_typed_field *carrier = typed_field(t, dt->carrier);
    if (carrier->count != need) {
        format_dims(dims, sizeof dims, t->dims, t->dim_count);
        if (carrier->count == 0)
            return st_fail(d->err, ST_ECORRUPT, "tensor with dims [%s] of %s has no data",
                           dims, dt->name);
        return st_fail(d->err, ST_ECORRUPT,
                       "tensor has %zu values in %s but dims [%s] of %s need %zu",
                       carrier->count, typed_field_name(dt->carrier), dims, dt->name, need);
    }
    return ST_OK;
}

static st_status dec_tensor(onnx_dec *d, st_str body, onnx_tensor *out)
{
    memset(out, 0, sizeof *out);
    out->body = body;
    st_status rc = dec_enter(d, body, "TensorProto");
    if (rc != ST_OK)
        return rc;
    size_t n_dims = 0, n_ext = 0;
    int64_t *dims = NULL;
    onnx_string_entry *ext = NULL;
    bool has_segment = false, has_data_type = false;
    for (int pass = 0; pass < 2; pass++) {
        pb_msg m = pb_open(body, "TensorProto");
        pb_field f;
        size_t i_dims = 0, i_ext = 0;
        while (m.p < m.end) {
            TRY(pb_next(d, &m, &f));
            switch (f.num) {
            case 1:
                if (pass == 0) {
                    size_t k;
                    TRY(pb_rep_count(d, &f, PB_VARINT, m.type, "dims", &k));
                    i_dims += k;
                } else {
                    pb_rep_iter it;
                    uint64_t v;
                    pb_rep_begin(&it, &f, PB_VARINT);
                    while (pb_rep_next(&it, &v))
                        PUT(dims, i_dims, n_dims, (int64_t)v);
                }
                break;
            case 2:
                WANT(PB_VARINT, "data_type");
                TRY(pb_int32(d, &f, m.type, "data_type", &out->data_type));
                has_data_type = true;
                break;
            case 3:
                WANT(PB_LEN, "segment");
                has_segment = true;
                break;
            case TF_FLOAT:
            case TF_INT32:
            case TF_STRING:
            case TF_INT64:
            case TF_DOUBLE:
            case TF_UINT64:
                if (pass == 0)
                    TRY(typed_add(d, &f, m.type, typed_field(out, f.num)));
                break;
            case 8:
                WANT(PB_LEN, "name");
                out->name = f.bytes;
                break;
            case 9:
                WANT(PB_LEN, "raw_data");
                out->raw_data = f.bytes;
                out->has_raw_data = true;
                break;
            case 13:
                WANT(PB_LEN, "external_data");
                if (pass == 1) {
                    if (i_ext >= n_ext) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    TRY(dec_entry(d, f.bytes, &ext[i_ext]));
                }
                i_ext++;
                break;
            case 14: {
                int32_t loc = 0;
                WANT(PB_VARINT, "data_location");
                TRY(pb_int32(d, &f, m.type, "data_location", &loc));
                out->data_location = (onnx_data_location)loc;
                break;
            }
            default:
                break;
            }
        }
        if (pass == 0) {
            n_dims = i_dims;
            n_ext = i_ext;
            NEW_ARRAY(dims, n_dims);
            NEW_ARRAY(ext, n_ext);
        } else if (i_dims != n_dims || i_ext != n_ext) {
            rc = dec_changed(d, m.type);
            goto done;
        }
    }
    out->dims = dims;
    out->dim_count = n_dims;
    out->external_data = ext;
    out->external_count = n_ext;
    rc = tensor_check(d, out, has_segment, has_data_type);
done:
    d->depth--;
    return rc;
}

static st_status dec_sparse(onnx_dec *d, st_str body, onnx_sparse_tensor *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "SparseTensorProto");
    if (rc != ST_OK)
        return rc;
    size_t n_dims = 0;
    int64_t *dims = NULL;
    bool has_values = false, has_indices = false;
    for (int pass = 0; pass < 2; pass++) {
        pb_msg m = pb_open(body, "SparseTensorProto");
        pb_field f;
        size_t i_dims = 0;
        while (m.p < m.end) {
            TRY(pb_next(d, &m, &f));
            switch (f.num) {
            case 1:
            case 2: {
                bool *seen = f.num == 1 ? &has_values : &has_indices;
                WANT(PB_LEN, f.num == 1 ? "values" : "indices");
                if (pass == 0) {
                    if (*seen) {
                        rc = st_fail(d->err, ST_ECORRUPT,
                                     "SparseTensorProto at byte %zu repeats field %u",
                                     dec_off(d, f.at), f.num);
                        goto done;
                    }
                    *seen = true;
                } else {
                    rc = dec_tensor(d, f.bytes, f.num == 1 ? &out->values : &out->indices);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "sparse tensor %s",
                                     f.num == 1 ? "values" : "indices");
                        goto done;
                    }
                }
                break;
            }
            case 3:
                if (pass == 0) {
                    size_t k;
                    TRY(pb_rep_count(d, &f, PB_VARINT, m.type, "dims", &k));
                    i_dims += k;
                } else {
                    pb_rep_iter it;
                    uint64_t v;
                    pb_rep_begin(&it, &f, PB_VARINT);
                    while (pb_rep_next(&it, &v))
                        PUT(dims, i_dims, n_dims, (int64_t)v);
                }
                break;
            default:
                break;
            }
        }
        if (pass == 0) {
            n_dims = i_dims;
            NEW_ARRAY(dims, n_dims);
        } else if (i_dims != n_dims) {
            rc = dec_changed(d, m.type);
            goto done;
        }
    }
    if (!has_values || !has_indices) {
        rc = st_fail(d->err, ST_ECORRUPT, "sparse tensor at byte %zu has no %s",
                     dec_off(d, body.ptr), has_values ? "indices" : "values");
        goto done;
    }
    for (size_t i = 0; i < n_dims; i++) {
        if (dims[i] < 0) {
            rc = st_fail(d->err, ST_ECORRUPT, "sparse tensor has negative dim %lld",
                         (long long)dims[i]);
            goto done;
        }
    }
    out->dims = dims;
    out->dim_count = n_dims;
done:
    d->depth--;
    return rc;
}

/* ---- attributes, nodes, graphs ------------------------------------------ */

static st_status dec_graph(onnx_dec *d, st_str body, onnx_graph *out);

static const char *attr_type_name(onnx_attr_type type)
{
    switch (type) {
    case ONNX_ATTR_TENSOR: return "TENSOR";
    case ONNX_ATTR_GRAPH: return "GRAPH";
    case ONNX_ATTR_SPARSE_TENSOR: return "SPARSE_TENSOR";
    case ONNX_ATTR_TYPE_PROTO: return "TYPE_PROTO";
    default: return "?";
    }
}

static onnx_attr_type attr_infer_type(const onnx_attr *a, bool has_f, bool has_i, bool has_s)
{
    if (a->float_count) return ONNX_ATTR_FLOATS;
    if (a->int_count) return ONNX_ATTR_INTS;
    if (a->string_count) return ONNX_ATTR_STRINGS;
    if (a->tensor_count) return ONNX_ATTR_TENSORS;
    if (a->graph_count) return ONNX_ATTR_GRAPHS;
    if (a->sparse_tensor_count) return ONNX_ATTR_SPARSE_TENSORS;
    if (a->type_proto_count) return ONNX_ATTR_TYPE_PROTOS;
    if (a->t) return ONNX_ATTR_TENSOR;
    if (a->g) return ONNX_ATTR_GRAPH;
    if (a->sparse_tensor) return ONNX_ATTR_SPARSE_TENSOR;
    if (a->tp) return ONNX_ATTR_TYPE_PROTO;
    if (has_s) return ONNX_ATTR_STRING;
    if (has_i) return ONNX_ATTR_INT;
    if (has_f) return ONNX_ATTR_FLOAT;
    return ONNX_ATTR_UNDEFINED;
}

static st_status dec_attr(onnx_dec *d, st_str body, onnx_attr *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "AttributeProto");
    if (rc != ST_OK)
        return rc;
    size_t n_floats = 0, n_ints = 0, n_strings = 0, n_tensors = 0, n_graphs = 0,
           n_sparse = 0, n_tps = 0;
    float *floats = NULL;
    int64_t *ints = NULL;
    st_str *strings = NULL;
    onnx_tensor *tensors = NULL, *t = NULL;
    onnx_graph *graphs = NULL, *g = NULL;
    onnx_sparse_tensor *sparse = NULL, *sp = NULL;
    onnx_type *tps = NULL, *tp = NULL;
    bool has_f = false, has_i = false, has_s = false;
    int seen_single[24] = { 0 };
    for (int pass = 0; pass < 2; pass++) {
        pb_msg m = pb_open(body, "AttributeProto");
        pb_field f;
        size_t i_floats = 0, i_ints = 0, i_strings = 0, i_tensors = 0, i_graphs = 0,
               i_sparse = 0, i_tps = 0;
        while (m.p < m.end) {
            TRY(pb_next(d, &m, &f));
            switch (f.num) {
            case 1:
                WANT(PB_LEN, "name");
                out->name = f.bytes;
                break;
            case 21:
                WANT(PB_LEN, "ref_attr_name");
                out->ref_attr_name = f.bytes;
                break;
            case 20: {
                int32_t ty = 0;
                WANT(PB_VARINT, "type");
                TRY(pb_int32(d, &f, m.type, "type", &ty));
                if (ty < 0 || ty > ONNX_ATTR_TYPE_PROTOS) {
                    rc = st_fail(d->err, ST_ECORRUPT, "attribute has unknown type %d at byte %zu",
                                 ty, dec_off(d, f.at));
                    goto done;
                }
                out->type = (onnx_attr_type)ty;
                break;
            }
            case 2:
                WANT(PB_I32, "f");
                out->f = pb_float(f.value);
                has_f = true;
                break;
            case 3:
                WANT(PB_VARINT, "i");
                out->i = (int64_t)f.value;
                has_i = true;
                break;
            case 4:
                WANT(PB_LEN, "s");
                out->s = f.bytes;
                has_s = true;
                break;
            case 5:
            case 6:
            case 14:
            case 22: {
                WANT(PB_LEN, f.num == 5    ? "t"
                             : f.num == 6  ? "g"
                             : f.num == 14 ? "tp"
                                           : "sparse_tensor");
                if (pass == 0) {
                    if (seen_single[f.num]++) {
                        rc = st_fail(d->err, ST_ECORRUPT,
                                     "attribute at byte %zu repeats field %u", dec_off(d, f.at),
                                     f.num);
                        goto done;
                    }
                    break;
                }
                if (f.num == 5) {
                    NEW_ARRAY(t, 1);
                    TRY(dec_tensor(d, f.bytes, t));
                    out->t = t;
                } else if (f.num == 6) {
                    NEW_ARRAY(g, 1);
                    rc = dec_graph(d, f.bytes, g);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "graph '%.*s'", SHOWN(g->name));
                        goto done;
                    }
                    out->g = g;
                } else if (f.num == 14) {
                    NEW_ARRAY(tp, 1);
                    TRY(dec_type(d, f.bytes, tp));
                    out->tp = tp;
                } else {
                    NEW_ARRAY(sp, 1);
                    TRY(dec_sparse(d, f.bytes, sp));
                    out->sparse_tensor = sp;
                }
                break;
            }
            case 7:
            case 8: {
                uint32_t wire = f.num == 7 ? PB_I32 : PB_VARINT;
                if (pass == 0) {
                    size_t k;
                    TRY(pb_rep_count(d, &f, wire, m.type, f.num == 7 ? "floats" : "ints", &k));
                    if (f.num == 7)
                        i_floats += k;
                    else
                        i_ints += k;
                } else {
                    pb_rep_iter it;
                    uint64_t v;
                    pb_rep_begin(&it, &f, wire);
                    while (pb_rep_next(&it, &v)) {
                        if (f.num == 7)
                            PUT(floats, i_floats, n_floats, pb_float(v));
                        else
                            PUT(ints, i_ints, n_ints, (int64_t)v);
                    }
                }
                break;
            }
            case 9:
                WANT(PB_LEN, "strings");
                if (pass == 1)
                    PUT(strings, i_strings, n_strings, f.bytes);
                else
                    i_strings++;
                break;
            case 10:
                WANT(PB_LEN, "tensors");
                if (pass == 1) {
                    if (i_tensors >= n_tensors) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_tensor(d, f.bytes, &tensors[i_tensors]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "tensor %zu '%.*s'", i_tensors,
                                     SHOWN(tensors[i_tensors].name));
                        goto done;
                    }
                }
                i_tensors++;
                break;
            case 11:
                WANT(PB_LEN, "graphs");
                if (pass == 1) {
                    if (i_graphs >= n_graphs) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_graph(d, f.bytes, &graphs[i_graphs]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "graph %zu '%.*s'", i_graphs,
                                     SHOWN(graphs[i_graphs].name));
                        goto done;
                    }
                }
                i_graphs++;
                break;
            case 23:
                WANT(PB_LEN, "sparse_tensors");
                if (pass == 1) {
                    if (i_sparse >= n_sparse) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    TRY(dec_sparse(d, f.bytes, &sparse[i_sparse]));
                }
                i_sparse++;
                break;
            case 15:
                WANT(PB_LEN, "type_protos");
                if (pass == 1) {
                    if (i_tps >= n_tps) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    TRY(dec_type(d, f.bytes, &tps[i_tps]));
                }
                i_tps++;
                break;
            default:
                break;
            }
        }
        if (pass == 0) {
            n_floats = i_floats;
            n_ints = i_ints;
            n_strings = i_strings;
            n_tensors = i_tensors;
            n_graphs = i_graphs;
            n_sparse = i_sparse;
            n_tps = i_tps;
            NEW_ARRAY(floats, n_floats);
            NEW_ARRAY(ints, n_ints);
            NEW_ARRAY(strings, n_strings);
            NEW_ARRAY(tensors, n_tensors);
            NEW_ARRAY(graphs, n_graphs);
            NEW_ARRAY(sparse, n_sparse);
            NEW_ARRAY(tps, n_tps);
        } else if (i_floats != n_floats || i_ints != n_ints || i_strings != n_strings ||
                   i_tensors != n_tensors || i_graphs != n_graphs || i_sparse != n_sparse ||
                   i_tps != n_tps) {
            rc = dec_changed(d, m.type);
            goto done;
        }
    }
    out->floats = floats;
    out->float_count = n_floats;
    out->ints = ints;
    out->int_count = n_ints;
    out->strings = strings;
    out->string_count = n_strings;
    out->tensors = tensors;
    out->tensor_count = n_tensors;
    out->graphs = graphs;
    out->graph_count = n_graphs;
    out->sparse_tensors = sparse;
    out->sparse_tensor_count = n_sparse;
    out->type_protos = tps;
    out->type_proto_count = n_tps;
    if (out->type == ONNX_ATTR_UNDEFINED)
        out->type = attr_infer_type(out, has_f, has_i, has_s);
    /* A reference to a function attribute carries no value; otherwise the
     * value a pointer-typed attribute names must be there, so that users
     * can follow a->t, a->g, ... without checking for NULL. */
    if (out->ref_attr_name.len == 0 &&
        ((out->type == ONNX_ATTR_TENSOR && !out->t) || (out->type == ONNX_ATTR_GRAPH && !out->g) ||
         (out->type == ONNX_ATTR_SPARSE_TENSOR && !out->sparse_tensor) ||
         (out->type == ONNX_ATTR_TYPE_PROTO && !out->tp))) {
        rc = st_fail(d->err, ST_ECORRUPT, "attribute of type %s at byte %zu has no value",
                     attr_type_name(out->type), dec_off(d, body.ptr));
        goto done;
    }
done:
    d->depth--;
    return rc;
}

static st_status dec_node(onnx_dec *d, st_str body, onnx_node *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "NodeProto");
    if (rc != ST_OK)
        return rc;
    size_t n_in = 0, n_out = 0, n_attr = 0;
    st_str *ins = NULL, *outs = NULL;
    onnx_attr *attrs = NULL;
    for (int pass = 0; pass < 2; pass++) {
        pb_msg m = pb_open(body, "NodeProto");
        pb_field f;
        size_t i_in = 0, i_out = 0, i_attr = 0;
        while (m.p < m.end) {
            TRY(pb_next(d, &m, &f));
            switch (f.num) {
            case 1:
                WANT(PB_LEN, "input");
                if (pass == 1)
                    PUT(ins, i_in, n_in, f.bytes);
                else
                    i_in++;
                break;
            case 2:
                WANT(PB_LEN, "output");
                if (pass == 1)
                    PUT(outs, i_out, n_out, f.bytes);
                else
                    i_out++;
                break;
            case 3:
                WANT(PB_LEN, "name");
                out->name = f.bytes;
                break;
            case 4:
                WANT(PB_LEN, "op_type");
                out->op_type = f.bytes;
                break;
            case 7:
                WANT(PB_LEN, "domain");
                out->domain = f.bytes;
                break;
            case 5:
                WANT(PB_LEN, "attribute");
                if (pass == 1) {
                    if (i_attr >= n_attr) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_attr(d, f.bytes, &attrs[i_attr]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "attribute '%.*s'", SHOWN(attrs[i_attr].name));
                        goto done;
                    }
                }
                i_attr++;
                break;
            default:
                break;
            }
        }
        if (pass == 0) {
            n_in = i_in;
            n_out = i_out;
            n_attr = i_attr;
            NEW_ARRAY(ins, n_in);
            NEW_ARRAY(outs, n_out);
            NEW_ARRAY(attrs, n_attr);
        } else if (i_in != n_in || i_out != n_out || i_attr != n_attr) {
            rc = dec_changed(d, m.type);
            goto done;
        }
    }
    out->inputs = ins;
    out->input_count = n_in;
    out->outputs = outs;
    out->output_count = n_out;
    out->attrs = attrs;
    out->attr_count = n_attr;
done:
    d->depth--;
    return rc;
}

static st_status dec_graph(onnx_dec *d, st_str body, onnx_graph *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "GraphProto");
    if (rc != ST_OK)
        return rc;
    size_t n_node = 0, n_init = 0, n_sparse = 0, n_in = 0, n_out = 0, n_vi = 0;
    onnx_node *nodes = NULL;
    onnx_tensor *inits = NULL;
    onnx_sparse_tensor *sparse = NULL;
    onnx_value_info *ins = NULL, *outs = NULL, *vis = NULL;
    for (int pass = 0; pass < 2; pass++) {
        pb_msg m = pb_open(body, "GraphProto");
        pb_field f;
        size_t i_node = 0, i_init = 0, i_sparse = 0, i_in = 0, i_out = 0, i_vi = 0, i_qa = 0;
        while (m.p < m.end) {
            TRY(pb_next(d, &m, &f));
            switch (f.num) {
            case 2:
                WANT(PB_LEN, "name");
                out->name = f.bytes;
                break;
            case 1:
                WANT(PB_LEN, "node");
                if (pass == 1) {
                    if (i_node >= n_node) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_node(d, f.bytes, &nodes[i_node]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "node %zu '%.*s' (%.*s)", i_node,
                                     SHOWN(nodes[i_node].name), SHOWN(nodes[i_node].op_type));
                        goto done;
                    }
                }
                i_node++;
                break;
            case 5:
                WANT(PB_LEN, "initializer");
                if (pass == 1) {
                    if (i_init >= n_init) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_tensor(d, f.bytes, &inits[i_init]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "initializer %zu '%.*s'", i_init,
                                     SHOWN(inits[i_init].name));
                        goto done;
                    }
                }
                i_init++;
                break;
            case 15:
                WANT(PB_LEN, "sparse_initializer");
                if (pass == 1) {
                    if (i_sparse >= n_sparse) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_sparse(d, f.bytes, &sparse[i_sparse]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "sparse initializer %zu", i_sparse);
                        goto done;
                    }
                }
                i_sparse++;
                break;
            case 11:
            case 12:
            case 13: {
                static const char *const what[] = { "input", "output", "value_info" };
                const char *fname = what[f.num - 11];
                onnx_value_info *arr = f.num == 11 ? ins : f.num == 12 ? outs : vis;
                size_t *idx = f.num == 11 ? &i_in : f.num == 12 ? &i_out : &i_vi;
                size_t cap = f.num == 11 ? n_in : f.num == 12 ? n_out : n_vi;
                WANT(PB_LEN, fname);
                if (pass == 1) {
                    if (*idx >= cap) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_value_info(d, f.bytes, &arr[*idx]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "%s %zu '%.*s'", fname, *idx,
                                     SHOWN(arr[*idx].name));
                        goto done;
                    }
                }
                (*idx)++;
                break;
            }
            case 14:
                WANT(PB_LEN, "quantization_annotation");
                i_qa++;
                break;
            default:
                break;
            }
        }
        if (pass == 0) {
            n_node = i_node;
            n_init = i_init;
            n_sparse = i_sparse;
            n_in = i_in;
            n_out = i_out;
            n_vi = i_vi;
            out->quantization_annotation_count = i_qa;
            NEW_ARRAY(nodes, n_node);
            NEW_ARRAY(inits, n_init);
            NEW_ARRAY(sparse, n_sparse);
            NEW_ARRAY(ins, n_in);
            NEW_ARRAY(outs, n_out);
            NEW_ARRAY(vis, n_vi);
        } else if (i_node != n_node || i_init != n_init || i_sparse != n_sparse ||
                   i_in != n_in || i_out != n_out || i_vi != n_vi) {
            rc = dec_changed(d, m.type);
            goto done;
        }
    }
    out->nodes = nodes;
    out->node_count = n_node;
    out->initializers = inits;
    out->initializer_count = n_init;
    out->sparse_initializers = sparse;
    out->sparse_initializer_count = n_sparse;
    out->inputs = ins;
    out->input_count = n_in;
    out->outputs = outs;
    out->output_count = n_out;
    out->value_info = vis;
    out->value_info_count = n_vi;
done:
    d->depth--;
    return rc;
}

static st_status dec_function(onnx_dec *d, st_str body, onnx_function *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "FunctionProto");
    if (rc != ST_OK)
        return rc;
    size_t n_in = 0, n_out = 0, n_an = 0, n_ad = 0, n_node = 0, n_ops = 0;
    st_str *ins = NULL, *outs = NULL, *ans = NULL;
    onnx_attr *ads = NULL;
    onnx_node *nodes = NULL;
    onnx_opset *ops = NULL;
    for (int pass = 0; pass < 2; pass++) {
        pb_msg m = pb_open(body, "FunctionProto");
        pb_field f;
        size_t i_in = 0, i_out = 0, i_an = 0, i_ad = 0, i_node = 0, i_ops = 0;
        while (m.p < m.end) {
            TRY(pb_next(d, &m, &f));
            switch (f.num) {
            case 1:
                WANT(PB_LEN, "name");
                out->name = f.bytes;
                break;
            case 10:
                WANT(PB_LEN, "domain");
                out->domain = f.bytes;
                break;
            case 4:
            case 5:
            case 6: {
                st_str *arr = f.num == 4 ? ins : f.num == 5 ? outs : ans;
                size_t *idx = f.num == 4 ? &i_in : f.num == 5 ? &i_out : &i_an;
                size_t cap = f.num == 4 ? n_in : f.num == 5 ? n_out : n_an;
                WANT(PB_LEN, f.num == 4 ? "input" : f.num == 5 ? "output" : "attribute");
                if (pass == 1)
                    PUT(arr, *idx, cap, f.bytes);
                else
                    (*idx)++;
                break;
            }
            case 11:
                WANT(PB_LEN, "attribute_proto");
                if (pass == 1) {
                    if (i_ad >= n_ad) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_attr(d, f.bytes, &ads[i_ad]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "attribute '%.*s'", SHOWN(ads[i_ad].name));
                        goto done;
                    }
                }
                i_ad++;
                break;
            case 7:
                WANT(PB_LEN, "node");
                if (pass == 1) {
                    if (i_node >= n_node) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_node(d, f.bytes, &nodes[i_node]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "node %zu '%.*s' (%.*s)", i_node,
                                     SHOWN(nodes[i_node].name), SHOWN(nodes[i_node].op_type));
                        goto done;
                    }
                }
                i_node++;
                break;
            case 9:
                WANT(PB_LEN, "opset_import");
                if (pass == 1) {
                    if (i_ops >= n_ops) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    TRY(dec_opset(d, f.bytes, &ops[i_ops]));
                }
                i_ops++;
                break;
            default:
                break;
            }
        }
        if (pass == 0) {
            n_in = i_in;
            n_out = i_out;
            n_an = i_an;
            n_ad = i_ad;
            n_node = i_node;
            n_ops = i_ops;
            NEW_ARRAY(ins, n_in);
            NEW_ARRAY(outs, n_out);
            NEW_ARRAY(ans, n_an);
            NEW_ARRAY(ads, n_ad);
            NEW_ARRAY(nodes, n_node);
            NEW_ARRAY(ops, n_ops);
        } else if (i_in != n_in || i_out != n_out || i_an != n_an || i_ad != n_ad ||
                   i_node != n_node || i_ops != n_ops) {
            rc = dec_changed(d, m.type);
            goto done;
        }
    }
    out->inputs = ins;
    out->input_count = n_in;
    out->outputs = outs;
    out->output_count = n_out;
    out->attr_names = ans;
    out->attr_name_count = n_an;
    out->attr_defaults = ads;
    out->attr_default_count = n_ad;
    out->nodes = nodes;
    out->node_count = n_node;
    out->opsets = ops;
    out->opset_count = n_ops;
done:
    d->depth--;
    return rc;
}

static st_status dec_model(onnx_dec *d, st_str body, onnx_model *out)
{
    memset(out, 0, sizeof *out);
    st_status rc = dec_enter(d, body, "ModelProto");
    if (rc != ST_OK)
        return rc;
    size_t n_ops = 0, n_meta = 0, n_fn = 0;
    onnx_opset *ops = NULL;
    onnx_string_entry *meta = NULL;
    onnx_function *fns = NULL;
    onnx_graph *graph = NULL;
    bool has_graph = false;
    for (int pass = 0; pass < 2; pass++) {
        pb_msg m = pb_open(body, "ModelProto");
        pb_field f;
        size_t i_ops = 0, i_meta = 0, i_fn = 0, i_ti = 0;
        while (m.p < m.end) {
            TRY(pb_next(d, &m, &f));
            switch (f.num) {
            case 1:
                WANT(PB_VARINT, "ir_version");
                out->ir_version = (int64_t)f.value;
                break;
            case 2:
                WANT(PB_LEN, "producer_name");
                out->producer_name = f.bytes;
                break;
            case 3:
                WANT(PB_LEN, "producer_version");
                out->producer_version = f.bytes;
                break;
            case 4:
                WANT(PB_LEN, "domain");
                out->domain = f.bytes;
                break;
            case 5:
                WANT(PB_VARINT, "model_version");
                out->model_version = (int64_t)f.value;
                break;
            case 7:
                WANT(PB_LEN, "graph");
                if (pass == 0) {
                    if (has_graph) {
                        rc = st_fail(d->err, ST_ECORRUPT,
                                     "ModelProto has a second graph at byte %zu",
                                     dec_off(d, f.at));
                        goto done;
                    }
                    has_graph = true;
                    break;
                }
                NEW_ARRAY(graph, 1);
                rc = dec_graph(d, f.bytes, graph);
                if (rc != ST_OK) {
                    dec_wrap(d, rc, "graph '%.*s'", SHOWN(graph->name));
                    goto done;
                }
                break;
            case 8:
                WANT(PB_LEN, "opset_import");
                if (pass == 1) {
                    if (i_ops >= n_ops) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    TRY(dec_opset(d, f.bytes, &ops[i_ops]));
                }
                i_ops++;
                break;
            case 14:
                WANT(PB_LEN, "metadata_props");
                if (pass == 1) {
                    if (i_meta >= n_meta) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    TRY(dec_entry(d, f.bytes, &meta[i_meta]));
                }
                i_meta++;
                break;
            case 20:
                WANT(PB_LEN, "training_info");
                i_ti++;
                break;
            case 25:
                WANT(PB_LEN, "functions");
                if (pass == 1) {
                    if (i_fn >= n_fn) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_function(d, f.bytes, &fns[i_fn]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "function '%.*s'", SHOWN(fns[i_fn].name));
                        goto done;
                    }
                }
                i_fn++;
                break;
            default:
                break;
            }
        }
        if (pass == 0) {
            n_ops = i_ops;
            n_meta = i_meta;
            n_fn = i_fn;
            out->training_info_count = i_ti;
            NEW_ARRAY(ops, n_ops);
            NEW_ARRAY(meta, n_meta);
            NEW_ARRAY(fns, n_fn);
        } else if (i_ops != n_ops || i_meta != n_meta || i_fn != n_fn) {
            rc = dec_changed(d, m.type);
            goto done;
        }
    }
    if (!graph) {
        rc = st_fail(d->err, ST_ECORRUPT, "model has no graph (is this an ONNX model file?)");
        goto done;
    }
    if (n_ops == 0) {
        rc = st_fail(d->err, ST_ECORRUPT, "model has no opset_import");
        goto done;
    }
    out->graph = graph;
    out->opsets = ops;
    out->opset_count = n_ops;
    out->metadata_props = meta;
    out->metadata_count = n_meta;
    out->functions = fns;
    out->function_count = n_fn;
done:
    d->depth--;
    return rc;
}

/* ---- SequenceProto / MapProto / OptionalProto ------------------------------ */

static st_status dec_sequence(onnx_dec *d, st_str body, onnx_value *out);
static st_status dec_map(onnx_dec *d, st_str body, onnx_value *out);
static st_status dec_optional(onnx_dec *d, st_str body, onnx_value *out);

/* One element held in field 3..7 of a SequenceProto or OptionalProto. */
static st_status dec_value_item(onnx_dec *d, const pb_field *f, onnx_value *item)
{
    st_status rc = ST_OK;
    memset(item, 0, sizeof *item);
    item->kind = (onnx_value_kind)(f->num - 2);
    switch (item->kind) {
    case ONNX_VALUE_TENSOR: {
        onnx_tensor *t = NULL;
        NEW_ARRAY(t, 1);
        rc = dec_tensor(d, f->bytes, t);
        if (rc != ST_OK) {
            dec_wrap(d, rc, "tensor '%.*s'", SHOWN(t->name));
            goto done;
        }
        item->tensor = t;
        item->name = t->name;
        break;
    }
    case ONNX_VALUE_SPARSE_TENSOR: {
        onnx_sparse_tensor *sp = NULL;
        NEW_ARRAY(sp, 1);
        TRY(dec_sparse(d, f->bytes, sp));
        item->sparse = sp;
        break;
    }
    case ONNX_VALUE_SEQUENCE:
        rc = dec_sequence(d, f->bytes, item);
        break;
    case ONNX_VALUE_MAP:
        rc = dec_map(d, f->bytes, item);
        break;
    default:
        rc = dec_optional(d, f->bytes, item);
        break;
    }
done:
    return rc;
}

static st_status value_kind_check(onnx_dec *d, const pb_field *f, const char *type,
                                  int32_t *elem_type)
{
    if (*elem_type == 0)
        *elem_type = (int32_t)f->num - 2;
    else if (*elem_type != (int32_t)f->num - 2)
        return st_fail(d->err, ST_ECORRUPT,
                       "%s at byte %zu holds a value of kind %u but its elem_type is %d", type,
                       dec_off(d, f->at), f->num - 2, *elem_type);
    return ST_OK;
}

static st_status dec_sequence(onnx_dec *d, st_str body, onnx_value *out)
{
    memset(out, 0, sizeof *out);
    out->kind = ONNX_VALUE_SEQUENCE;
    st_status rc = dec_enter(d, body, "SequenceProto");
    if (rc != ST_OK)
        return rc;
    size_t n = 0;
    onnx_value *items = NULL;
    int32_t elem_type = 0;
    for (int pass = 0; pass < 2; pass++) {
        pb_msg m = pb_open(body, "SequenceProto");
        pb_field f;
        size_t i = 0;
        while (m.p < m.end) {
            TRY(pb_next(d, &m, &f));
            if (f.num == 1) {
                WANT(PB_LEN, "name");
                out->name = f.bytes;
            } else if (f.num == 2 && pass == 0) {
                WANT(PB_VARINT, "elem_type");
                TRY(pb_int32(d, &f, m.type, "elem_type", &elem_type));
                if (elem_type < 0 || elem_type > ONNX_VALUE_OPTIONAL) {
                    rc = st_fail(d->err, ST_ECORRUPT, "SequenceProto has unknown elem_type %d",
                                 elem_type);
                    goto done;
                }
            } else if (f.num >= 3 && f.num <= 7) {
                WANT(PB_LEN, "values");
                if (pass == 1) {
                    if (i >= n) {
                        rc = dec_changed(d, m.type);
                        goto done;
                    }
                    rc = dec_value_item(d, &f, &items[i]);
                    if (rc != ST_OK) {
                        dec_wrap(d, rc, "sequence element %zu", i);
                        goto done;
                    }
                }
                i++;
            }
        }
        if (pass == 0) {
            n = i;
            NEW_ARRAY(items, n);
        } else if (i != n) {
            rc = dec_changed(d, m.type);
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        pb_field probe = { .num = (uint32_t)items[i].kind + 2, .at = (const uint8_t *)body.ptr };
        TRY(value_kind_check(d, &probe, "SequenceProto", &elem_type));
    }
    out->elem_kind = (onnx_value_kind)elem_type;
    out->items = items;
    out->item_count = n;
done:
    d->depth--;
    return rc;
}

static st_status dec_optional(onnx_dec *d, st_str body, onnx_value *out)
{
    memset(out, 0, sizeof *out);
    out->kind = ONNX_VALUE_OPTIONAL;
    st_status rc = dec_enter(d, body, "OptionalProto");
    if (rc != ST_OK)
        return rc;
    pb_msg m = pb_open(body, "OptionalProto");
    pb_field f;
    int32_t elem_type = 0;
    onnx_value *item = NULL;
    /* elem_type may follow the value, so read it first. */
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        if (f.num == 2) {
            WANT(PB_VARINT, "elem_type");
            TRY(pb_int32(d, &f, m.type, "elem_type", &elem_type));
            if (elem_type < 0 || elem_type > ONNX_VALUE_OPTIONAL) {
                rc = st_fail(d->err, ST_ECORRUPT, "OptionalProto has unknown elem_type %d",
                             elem_type);
                goto done;
            }
        }
    }
    m = pb_open(body, "OptionalProto");
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        if (f.num == 1) {
            WANT(PB_LEN, "name");
            out->name = f.bytes;
        } else if (f.num >= 3 && f.num <= 7) {
            WANT(PB_LEN, "value");
            if (item) {
                rc = st_fail(d->err, ST_ECORRUPT, "OptionalProto at byte %zu has two values",
                             dec_off(d, f.at));
                goto done;
            }
            TRY(value_kind_check(d, &f, m.type, &elem_type));
            NEW_ARRAY(item, 1);
            TRY(dec_value_item(d, &f, item));
        }
    }
    out->elem_kind = (onnx_value_kind)elem_type;
    out->items = item;
    out->item_count = item ? 1 : 0;
done:
    d->depth--;
    return rc;
}

static st_status dec_map(onnx_dec *d, st_str body, onnx_value *out)
{
    memset(out, 0, sizeof *out);
    out->kind = ONNX_VALUE_MAP;
    st_status rc = dec_enter(d, body, "MapProto");
    if (rc != ST_OK)
        return rc;
    size_t n_keys = 0, n_skeys = 0;
    int64_t *keys = NULL;
    st_str *skeys = NULL;
    onnx_value *values = NULL;
    for (int pass = 0; pass < 2; pass++) {
        pb_msg m = pb_open(body, "MapProto");
        pb_field f;
        size_t i_keys = 0, i_skeys = 0;
        while (m.p < m.end) {
            TRY(pb_next(d, &m, &f));
            switch (f.num) {
            case 1:
                WANT(PB_LEN, "name");
                out->name = f.bytes;
                break;
            case 2:
                WANT(PB_VARINT, "key_type");
                TRY(pb_int32(d, &f, m.type, "key_type", &out->key_type));
                break;
            case 3:
                if (pass == 0) {
                    size_t k;
                    TRY(pb_rep_count(d, &f, PB_VARINT, m.type, "keys", &k));
                    i_keys += k;
                } else {
                    pb_rep_iter it;
                    uint64_t v;
                    pb_rep_begin(&it, &f, PB_VARINT);
                    while (pb_rep_next(&it, &v))
                        PUT(keys, i_keys, n_keys, (int64_t)v);
                }
                break;
            case 4:
                WANT(PB_LEN, "string_keys");
                if (pass == 1)
                    PUT(skeys, i_skeys, n_skeys, f.bytes);
                else
                    i_skeys++;
                break;
            case 5:
                WANT(PB_LEN, "values");
                if (pass == 0) {
                    if (values) {
                        rc = st_fail(d->err, ST_ECORRUPT, "MapProto at byte %zu has two values",
                                     dec_off(d, f.at));
                        goto done;
                    }
                    NEW_ARRAY(values, 1);
                    TRY(dec_sequence(d, f.bytes, values));
                }
                break;
            default:
                break;
            }
        }
        if (pass == 0) {
            n_keys = i_keys;
            n_skeys = i_skeys;
            NEW_ARRAY(keys, n_keys);
            NEW_ARRAY(skeys, n_skeys);
        } else if (i_keys != n_keys || i_skeys != n_skeys) {
            rc = dec_changed(d, m.type);
            goto done;
        }
    }
    if (n_keys && n_skeys) {
        rc = st_fail(d->err, ST_ECORRUPT, "MapProto at byte %zu has both keys and string_keys",
                     dec_off(d, body.ptr));
        goto done;
    }
    out->keys = keys;
    out->string_keys = skeys;
    out->key_count = n_keys + n_skeys;
    out->map_values = values;
    if (out->key_count != (values ? values->item_count : 0)) {
        rc = st_fail(d->err, ST_ECORRUPT, "MapProto at byte %zu has %zu keys but %zu values",
                     dec_off(d, body.ptr), out->key_count, values ? values->item_count : 0);
        goto done;
    }
done:
    d->depth--;
    return rc;
}

/* ---- public decoding entry points ------------------------------------------ */

static onnx_dec dec_start(const uint8_t *data, st_arena *arena, st_error *err)
{
    return (onnx_dec){ data, arena, err, 0 };
}

st_status onnx_decode_model(const uint8_t *data, size_t len, st_arena *arena,
                            onnx_model *out, st_error *err)
{
    onnx_dec d = dec_start(data, arena, err);
    st_status rc = dec_model(&d, st_str_make(data, len), out);
    if (rc != ST_OK) {
        memset(out, 0, sizeof *out);
        st_fail_wrap(err, rc, "onnx");
    }
    return rc;
}

st_status onnx_decode_tensor(const uint8_t *data, size_t len, st_arena *arena,
                             onnx_tensor *out, st_error *err)
{
    onnx_dec d = dec_start(data, arena, err);
    st_status rc = dec_tensor(&d, st_str_make(data, len), out);
    if (rc != ST_OK) {
        st_fail_wrap(err, rc, "onnx: tensor '%.*s'", SHOWN(out->name));
        memset(out, 0, sizeof *out);
    }
    return rc;
}

st_status onnx_decode_sequence(const uint8_t *data, size_t len, st_arena *arena,
                               onnx_value *out, st_error *err)
{
    onnx_dec d = dec_start(data, arena, err);
    st_status rc = dec_sequence(&d, st_str_make(data, len), out);
    if (rc != ST_OK) {
        memset(out, 0, sizeof *out);
        st_fail_wrap(err, rc, "onnx: sequence");
    }
    return rc;
}

st_status onnx_decode_optional(const uint8_t *data, size_t len, st_arena *arena,
                               onnx_value *out, st_error *err)
{
    onnx_dec d = dec_start(data, arena, err);
    st_status rc = dec_optional(&d, st_str_make(data, len), out);
    if (rc != ST_OK) {
        memset(out, 0, sizeof *out);
        st_fail_wrap(err, rc, "onnx: optional");
    }
    return rc;
}

const onnx_attr *onnx_node_attr(const onnx_node *node, const char *name)
{
    st_str want = st_str_c(name);
    for (size_t i = 0; i < node->attr_count; i++)
        if (st_str_eq(node->attrs[i].name, want))
            return &node->attrs[i];
    return NULL;
}

/* ---- external data --------------------------------------------------------- */

struct onnx_external_file {
    char *location;        /* st_malloc'd, NUL-terminated */
    size_t location_len;
    const uint8_t *map;    /* NULL for an empty file */
    size_t size;
};

void onnx_external_init(onnx_external *ext, const char *model_dir)
{
    ext->model_dir = model_dir;
    ext->files = NULL;
    ext->file_count = 0;
    ext->file_cap = 0;
}

void onnx_external_release(onnx_external *ext)
{
    for (size_t i = 0; i < ext->file_count; i++) {
        onnx_external_file *file = &ext->files[i];
        if (file->map)
            munmap((void *)file->map, file->size);
        st_free(file->location);
    }
    st_free(ext->files);
    onnx_external_init(ext, ext->model_dir);
}

/* Refuses locations that could name a file outside the model folder. */
static st_status ext_check_location(st_str loc, st_error *err)
{
    if (loc.len == 0)
        return st_fail(err, ST_EINVAL, "external data location is empty");
    if (loc.len >= PATH_MAX)
        return st_fail(err, ST_EINVAL, "external data location is longer than %d bytes",
                       PATH_MAX - 1);
    if (memchr(loc.ptr, '\0', loc.len))
        return st_fail(err, ST_EINVAL, "external data location contains a NUL byte");
    if (loc.ptr[0] == '/' || loc.ptr[0] == '\\')
        return st_fail(err, ST_EINVAL,
                       "external data location '%.*s' is an absolute path; only paths "
                       "relative to the model folder are allowed",
                       SHOWN(loc));
    size_t start = 0;
    for (size_t i = 0; i <= loc.len; i++) {
        if (i == loc.len || loc.ptr[i] == '/' || loc.ptr[i] == '\\') {
            if (i - start == 2 && loc.ptr[start] == '.' && loc.ptr[start + 1] == '.')
                return st_fail(err, ST_EINVAL,
                               "external data location '%.*s' has a '..' component; only "
                               "paths inside the model folder are allowed",
                               SHOWN(loc));
            start = i + 1;
        }
    }
    return ST_OK;
}

/* openat() confined to dirfd: openat2(RESOLVE_BENEATH) where the kernel
 * has it, else plain openat refusing a final symlink. */
static int ext_openat(int dirfd, const char *path)
{
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
#ifdef SYS_openat2
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
        return (int)fd;
#endif
    return openat(dirfd, path, flags | O_NOFOLLOW);
}

static st_status ext_map(onnx_external *ext, st_str loc, const onnx_external_file **out,
                         st_error *err)
{
    st_status rc = ST_OK;
    int dirfd = -1, fd = -1;
    char *path = NULL;
    void *map = NULL;
    size_t size = 0;

    for (size_t i = 0; i < ext->file_count; i++) {
        if (st_str_eq(st_str_make(ext->files[i].location, ext->files[i].location_len), loc)) {
            *out = &ext->files[i];
            return ST_OK;
        }
    }
    if (ext->file_count == ext->file_cap) {
        size_t cap = ext->file_cap ? ext->file_cap * 2 : 4, bytes;
        if (st_mul_overflow(cap, sizeof *ext->files, &bytes))
            return st_fail(err, ST_ENOMEM, "too many external data files");
        onnx_external_file *grown = st_realloc(ext->files, bytes);
        if (!grown)
            return st_fail(err, ST_ENOMEM, "out of memory registering external data files");
        ext->files = grown;
        ext->file_cap = cap;
    }
    path = st_malloc(loc.len + 1);
    if (!path) {
        rc = st_fail(err, ST_ENOMEM, "out of memory for an external data path");
        goto done;
    }
    memcpy(path, loc.ptr, loc.len);
    path[loc.len] = '\0';

    dirfd = open(ext->model_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        rc = st_fail(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO,
                     "cannot open model folder '%s' for external data: %s", ext->model_dir,
                     strerror(errno));
        goto done;
    }
    fd = ext_openat(dirfd, path);
    if (fd < 0) {
        int e = errno;
        rc = st_fail(err,
                     e == ENOENT ? ST_ENOTFOUND
                     : (e == EXDEV || e == ELOOP) ? ST_EINVAL
                                                  : ST_EIO,
                     "cannot open external data file '%.*s' in '%s': %s%s", SHOWN(loc),
                     ext->model_dir, strerror(e),
                     (e == EXDEV || e == ELOOP) ? " (it leaves the model folder)" : "");
        goto done;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = st_fail(err, ST_EIO, "cannot stat external data file '%.*s': %s", SHOWN(loc),
                     strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = st_fail(err, ST_EINVAL, "external data file '%.*s' is not a regular file",
                     SHOWN(loc));
        goto done;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        rc = st_fail(err, ST_EOVERFLOW, "external data file '%.*s' is too large", SHOWN(loc));
        goto done;
    }
    size = (size_t)st.st_size;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            rc = st_fail(err, ST_EIO, "cannot map external data file '%.*s': %s", SHOWN(loc),
                         strerror(errno));
            goto done;
        }
    }
    onnx_external_file *file = &ext->files[ext->file_count++];
    file->location = path;
    file->location_len = loc.len;
    file->map = map;
    file->size = size;
    *out = file;
    path = NULL;
    map = NULL;
done:
    if (map)
        munmap(map, size);
    st_free(path);
    if (fd >= 0)
        close(fd);
    if (dirfd >= 0)
        close(dirfd);
    return rc;
}

/* ---- materialize ------------------------------------------------------------- */

static size_t ptr_alignment(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (a == 0)
        return 64;
    uintptr_t low = a & (~a + 1);
    return low > 64 ? 64 : (size_t)low;
}

bool onnx_tensor_data_is_aligned(const onnx_tensor_data *td)
{
    size_t size = st_dtype_size((st_dtype)td->data_type);
    return size == 0 || td->align_bytes >= size;
}

static void mat_borrow(onnx_tensor_data *out, const void *p)
{
    out->data = p;
    out->is_borrowed = true;
    out->align_bytes = ptr_alignment(p);
}

static st_status mat_external(const onnx_tensor *t, onnx_external *ext,
                              onnx_tensor_data *out, st_error *err)
{
    st_status rc;
    const onnx_external_file *file = NULL;
    if (!ext || !ext->model_dir)
        return st_fail(err, ST_EUNSUPPORTED,
                       "data is in external file '%.*s' but no model folder was given",
                       SHOWN(t->ext_location));
    if ((rc = ext_check_location(t->ext_location, err)) != ST_OK)
        return rc;
    if ((rc = ext_map(ext, t->ext_location, &file, err)) != ST_OK)
        return rc;
    if (t->ext_offset > file->size || t->byte_size > file->size - (size_t)t->ext_offset)
        return st_fail(err, ST_ECORRUPT,
                       "external data range [%llu, +%zu) is past the end of '%.*s' (%zu bytes)",
                       (unsigned long long)t->ext_offset, t->byte_size, SHOWN(t->ext_location),
                       file->size);
    if (t->byte_size > 0)
        mat_borrow(out, file->map + t->ext_offset);
    else
        out->align_bytes = 64;
    return ST_OK;
}

/* Re-reads every occurrence of typed field `field` of `t` and stores each
 * value's low `width` bytes (little-endian) at dst. */
static st_status mat_scan(const onnx_tensor *t, unsigned field, size_t width, bool is_bool,
                          uint8_t *dst, size_t count, st_error *err)
{
    st_status rc = ST_OK;
    onnx_dec dd = dec_start((const uint8_t *)t->body.ptr, NULL, err);
    onnx_dec *d = &dd;
    pb_msg m = pb_open(t->body, "TensorProto");
    pb_field f;
    uint32_t wire = typed_field_wire(field);
    size_t i = 0;
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        if (f.num != field)
            continue;
        if (f.wire != wire && f.wire != PB_LEN) {
            rc = pb_bad_wire(d, &f, wire, m.type, typed_field_name(field));
            goto done;
        }
        pb_rep_iter it;
        uint64_t v;
        pb_rep_begin(&it, &f, wire);
        while (pb_rep_next(&it, &v)) {
            if (i >= count) {
                rc = dec_changed(d, m.type);
                goto done;
            }
            if (is_bool)
                v = v != 0;
            memcpy(dst + i * width, &v, width);
            i++;
        }
    }
    if (i != count)
        rc = dec_changed(d, m.type);
done:
    return rc;
}

static st_status mat_strings(const onnx_tensor *t, st_arena *arena, onnx_tensor_data *out,
                             st_error *err)
{
    st_status rc = ST_OK;
    onnx_dec dd = dec_start((const uint8_t *)t->body.ptr, arena, err);
    onnx_dec *d = &dd;
    st_str *strings = NULL;
    size_t n = t->elem_count, i = 0;
    NEW_ARRAY(strings, n);
    pb_msg m = pb_open(t->body, "TensorProto");
    pb_field f;
    while (m.p < m.end) {
        TRY(pb_next(d, &m, &f));
        if (f.num != TF_STRING)
            continue;
        WANT(PB_LEN, "string_data");
        PUT(strings, i, n, f.bytes);
    }
    if (i != n) {
        rc = dec_changed(d, m.type);
        goto done;
    }
    out->strings = strings;
    out->align_bytes = 64;
done:
    return rc;
}

st_status onnx_tensor_materialize(const onnx_tensor *t, onnx_external *ext,
                                  st_arena *arena, onnx_tensor_data *out, st_error *err)
{
    st_status rc = ST_OK;
    memset(out, 0, sizeof *out);
    out->data_type = t->data_type;
    out->elem_count = t->elem_count;
    out->byte_size = t->byte_size;
    if (t->data_type == 0 || !st_dtype_is_valid(t->data_type)) {
        rc = st_fail(err, ST_EUNSUPPORTED, "data type %s is not supported",
                     onnx_data_type_name(t->data_type));
        goto done;
    }
    if (t->data_location == ONNX_LOCATION_EXTERNAL) {
        rc = mat_external(t, ext, out, err);
        goto done;
    }
    if (t->elem_count == 0) {
        out->align_bytes = 64;
        goto done;
    }
    if (t->data_type == ST_DT_STRING) {
        rc = mat_strings(t, arena, out, err);
        goto done;
    }
    if (t->has_raw_data) {
        mat_borrow(out, t->raw_data.ptr);
        goto done;
    }
    const dt_info *dt = &dt_table[t->data_type];
    const onnx_typed_field *tf =
        dt->carrier == TF_FLOAT ? &t->float_data
        : dt->carrier == TF_DOUBLE ? &t->double_data
        : dt->carrier == TF_INT64 ? &t->int64_data
        : dt->carrier == TF_UINT64 ? &t->uint64_data
                                   : &t->int32_data;
    if ((dt->carrier == TF_FLOAT || dt->carrier == TF_DOUBLE) && tf->occurrences == 1 &&
        tf->only_packed.len == t->byte_size) {
        mat_borrow(out, tf->only_packed.ptr);
        goto done;
    }
    uint8_t *dst = st_arena_alloc(arena, t->byte_size, 64);
    if (!dst) {
        rc = st_fail(err, ST_ENOMEM, "out of memory converting %zu bytes", t->byte_size);
        goto done;
    }
    rc = mat_scan(t, dt->carrier, dt->size, t->data_type == ST_DT_BOOL, dst, t->elem_count, err);
    if (rc != ST_OK)
        goto done;
    out->data = dst;
    out->align_bytes = 64;
done:
    if (rc != ST_OK)
        st_fail_wrap(err, rc, "onnx: tensor '%.*s'", SHOWN(t->name));
    return rc;
}
