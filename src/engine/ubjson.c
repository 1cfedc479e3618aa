/* ubjson.c - Universal Binary JSON (draft 12, as XGBoost's save_model
 * writes .ubj files) read into json.h's DOM, so that one XGBoost loader
 * serves both encodings.  Big-endian scalars; optimised containers with
 * '$' (element type) and '#' (count).  Every count is checked against the
 * bytes left before anything is allocated. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/gbm_int.h"

#define UBJ_MAX_DEPTH 128
#define UBJ_MAX_VALUES ((size_t)64 << 20)

typedef struct ubj_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
    size_t depth;
    size_t n_values;
    st_arena *arena;
    st_error *err;
} ubj_reader;

static st_status ubj_fail(ubj_reader *r, st_status code, const char *what)
{
    return st_fail(r->err, code, "UBJSON: %s at byte offset %zu", what, r->pos);
}

static bool ubj_take(ubj_reader *r, size_t n, const uint8_t **out)
{
    if (r->len - r->pos < n)
        return false;
    *out = r->data + r->pos;
    r->pos += n;
    return true;
}

static uint64_t ubj_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Payload bytes of a scalar marker; 0 for markers without payload, -1 for
 * markers that are not fixed-size scalars. */
static int ubj_scalar_size(uint8_t marker)
{
    switch (marker) {
    case 'Z': case 'T': case 'F': return 0;
    case 'i': case 'U': case 'C': return 1;
    case 'I': return 2;
    case 'l': case 'd': return 4;
    case 'L': case 'D': return 8;
    default: return -1;
    }
}

static bool ubj_is_int_marker(uint8_t m)
{
    return m == 'i' || m == 'U' || m == 'I' || m == 'l' || m == 'L';
}

/* An integer of type `marker` whose payload starts at the cursor. */
static st_status ubj_int_payload(ubj_reader *r, uint8_t marker, int64_t *out)
{
    const uint8_t *p;
    size_t n = (size_t)ubj_scalar_size(marker);
    if (!ubj_take(r, n, &p))
        return ubj_fail(r, ST_ECORRUPT, "truncated integer");
    uint64_t v = ubj_be(p, n);
    switch (marker) {
    case 'i': *out = (int8_t)v; break;
    case 'U': *out = (uint8_t)v; break;
    case 'I': *out = (int16_t)v; break;
    case 'l': *out = (int32_t)v; break;
    default: *out = (int64_t)v; break;
    }
    return ST_OK;
}

/* A length or count: an integer with its marker, >= 0. */
static st_status ubj_length(ubj_reader *r, size_t *out)
{
    const uint8_t *m;
    if (!ubj_take(r, 1, &m))
        return ubj_fail(r, ST_ECORRUPT, "truncated length");
    if (!ubj_is_int_marker(*m))
        return ubj_fail(r, ST_ECORRUPT, "a length must be an integer");
    int64_t v;
    st_status s = ubj_int_payload(r, *m, &v);
    if (s != ST_OK)
        return s;
    if (v < 0)
        return ubj_fail(r, ST_ECORRUPT, "negative length");
    if ((uint64_t)v > SIZE_MAX)
        return ubj_fail(r, ST_ELIMIT, "length too large");
    *out = (size_t)v;
    return ST_OK;
}

static st_status ubj_text(ubj_reader *r, size_t n, st_str *out)
{
    const uint8_t *p;
    if (!ubj_take(r, n, &p))
        return ubj_fail(r, ST_ECORRUPT, "string runs past the end of the input");
    char *copy = st_arena_strndup(r->arena, (const char *)p, n);
    if (!copy)
        return st_fail(r->err, ST_ENOMEM, "out of memory reading UBJSON");
    *out = st_str_make(copy, n);
    return ST_OK;
}

static st_status ubj_number_text(ubj_reader *r, const char *text, size_t n, json_value *v)
{
    char *copy = st_arena_strndup(r->arena, text, n);
    if (!copy)
        return st_fail(r->err, ST_ENOMEM, "out of memory reading UBJSON");
    v->type = JSON_KIND_NUMBER;
    v->u.number = st_str_make(copy, n);
    return ST_OK;
}


static st_status ubj_value_of(ubj_reader *r, uint8_t marker, json_value *v);

/* '[' or '{' already consumed; reads the optional '$' type and '#' count.
 * *count is SIZE_MAX when the container ends with its closing marker. */
static st_status ubj_container_header(ubj_reader *r, bool is_object, int *type, size_t *count)
{
    *type = -1;
    *count = SIZE_MAX;
    if (r->pos < r->len && r->data[r->pos] == '$') {
        r->pos++;
        const uint8_t *m;
        if (!ubj_take(r, 1, &m))
            return ubj_fail(r, ST_ECORRUPT, "truncated container type");
        if (*m == 'N' || *m == ']' || *m == '}' || *m == '#' || *m == '$')
            return ubj_fail(r, ST_ECORRUPT, "invalid container element type");
        *type = *m;
        if (r->pos >= r->len || r->data[r->pos] != '#')
            return ubj_fail(r, ST_ECORRUPT, "a typed container needs a count");
    }
    if (r->pos < r->len && r->data[r->pos] == '#') {
        r->pos++;
        st_status s = ubj_length(r, count);
        if (s != ST_OK)
            return s;
        /* Each element takes at least its payload; objects add a key of
         * >= 2 bytes.  Typed null/true/false have no payload: they are
         * held to one element per byte left too, which no real model
         * comes near, so that a few bytes cannot ask for gigabytes. */
        size_t left = r->len - r->pos;
        size_t min = 1;
        if (*type >= 0) {
            int sz = ubj_scalar_size((uint8_t)*type);
            if (sz > 1)
                min = (size_t)sz;
        }
        if (is_object)
            min += 2;
        if (*count > left / min)
            return ubj_fail(r, ST_ECORRUPT, "container count is larger than the input");
    }
    return ST_OK;
}

static bool ubj_at_end(ubj_reader *r, uint8_t close)
{
    while (r->pos < r->len && r->data[r->pos] == 'N')
        r->pos++; /* no-op markers between elements */
    if (r->pos < r->len && r->data[r->pos] == close) {
        r->pos++;
        return true;
    }
    return false;
}

/* Grows an arena array by doubling (old copies stay in the arena, which
 * is freed as a whole). */
static void *ubj_grow(ubj_reader *r, void *items, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return items;
    size_t want = *cap ? *cap * 2 : 8;
    void *grown = st_arena_calloc(r->arena, want, size, 8);
    if (!grown)
        return NULL;
    if (n)
        memcpy(grown, items, n * size);
    *cap = want;
    return grown;
}

static st_status ubj_element(ubj_reader *r, int type, json_value *v)
{
    if (type >= 0)
        return ubj_value_of(r, (uint8_t)type, v);
    const uint8_t *m;
    do {
        if (!ubj_take(r, 1, &m))
            return ubj_fail(r, ST_ECORRUPT, "truncated input: a value is missing");
    } while (*m == 'N');
    return ubj_value_of(r, *m, v);
}

static st_status ubj_array(ubj_reader *r, json_value *v)
{
    int type;
    size_t count, cap = 0, n = 0;
    st_status s = ubj_container_header(r, false, &type, &count);
    if (s != ST_OK)
        return s;
    json_value *items = NULL;
    if (count != SIZE_MAX) {
        items = st_arena_calloc(r->arena, count ? count : 1, sizeof *items, 8);
        if (!items)
            return st_fail(r->err, ST_ENOMEM, "out of memory reading UBJSON");
        for (; n < count; n++)
            if ((s = ubj_element(r, type, &items[n])) != ST_OK)
                return s;
    } else {
        while (!ubj_at_end(r, ']')) {
            if (r->pos >= r->len)
                return ubj_fail(r, ST_ECORRUPT, "truncated input: array not closed");
            if (!(items = ubj_grow(r, items, n, &cap, sizeof *items)))
                return st_fail(r->err, ST_ENOMEM, "out of memory reading UBJSON");
            if ((s = ubj_element(r, -1, &items[n++])) != ST_OK)
                return s;
        }
    }
    v->type = JSON_KIND_ARRAY;
    v->u.array.items = items;
    v->u.array.count = n;
    return ST_OK;
}

static st_status ubj_object(ubj_reader *r, json_value *v)
{
    int type;
    size_t count, cap = 0, n = 0;
    st_status s = ubj_container_header(r, true, &type, &count);
    if (s != ST_OK)
        return s;
    json_member *members = NULL;
    if (count != SIZE_MAX) {
        members = st_arena_calloc(r->arena, count ? count : 1, sizeof *members, 8);
        if (!members)
            return st_fail(r->err, ST_ENOMEM, "out of memory reading UBJSON");
    }
    for (;;) {
        if (count == SIZE_MAX) {
            if (ubj_at_end(r, '}'))
                break;
            if (r->pos >= r->len)
                return ubj_fail(r, ST_ECORRUPT, "truncated input: object not closed");
            if (!(members = ubj_grow(r, members, n, &cap, sizeof *members)))
                return st_fail(r->err, ST_ENOMEM, "out of memory reading UBJSON");
        } else if (n == count) {
            break;
        }
        size_t key_len;
        if ((s = ubj_length(r, &key_len)) != ST_OK || (s = ubj_text(r, key_len, &members[n].key)) != ST_OK)
            return s;
        if ((s = ubj_element(r, type, &members[n].value)) != ST_OK)
            return s;
        n++;
    }
    v->type = JSON_KIND_OBJECT;
    v->u.object.members = members;
    v->u.object.count = n;
    return ST_OK;
}

static st_status ubj_value_of(ubj_reader *r, uint8_t marker, json_value *v)
{
    if (++r->n_values > UBJ_MAX_VALUES)
        return ubj_fail(r, ST_ELIMIT, "more than 64 Mi values");
    memset(v, 0, sizeof *v);
    char text[JSON_NUMBER_MAX_CHARS + 8];
    const uint8_t *p;
    st_status s;
    switch (marker) {
    case 'Z':
        v->type = JSON_KIND_NULL;
        return ST_OK;
    case 'T':
    case 'F':
        v->type = JSON_KIND_BOOL;
        v->u.boolean = marker == 'T';
        return ST_OK;
    case 'i': case 'U': case 'I': case 'l': case 'L': {
        int64_t i;
        if ((s = ubj_int_payload(r, marker, &i)) != ST_OK)
            return s;
        int n = snprintf(text, sizeof text, "%lld", (long long)i);
        return ubj_number_text(r, text, (size_t)n, v);
    }
    case 'd': {
        if (!ubj_take(r, 4, &p))
            return ubj_fail(r, ST_ECORRUPT, "truncated float32");
        uint32_t bits = (uint32_t)ubj_be(p, 4);
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!isfinite(f)) { /* no JSON text: null, as gbm.c reads NaN in JSON */
            v->type = JSON_KIND_NULL;
            return ST_OK;
        }
        return ubj_number_text(r, text, json_format_float(f, text), v);
    }
    case 'D': {
        if (!ubj_take(r, 8, &p))
            return ubj_fail(r, ST_ECORRUPT, "truncated float64");
        uint64_t bits = ubj_be(p, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d)) {
            v->type = JSON_KIND_NULL;
            return ST_OK;
        }
        return ubj_number_text(r, text, json_format_double(d, text), v);
    }
    case 'H': { /* high-precision number: its decimal text */
        size_t n;
        st_str t;
        if ((s = ubj_length(r, &n)) != ST_OK || (s = ubj_text(r, n, &t)) != ST_OK)
            return s;
        double d;
        if (json_parse_double(t, &d) == ST_ECORRUPT)
            return ubj_fail(r, ST_ECORRUPT, "high-precision number is not a number");
        v->type = JSON_KIND_NUMBER;
        v->u.number = t;
        return ST_OK;
    }
    case 'C':
        v->type = JSON_KIND_STRING;
        return ubj_text(r, 1, &v->u.string);
    case 'S': {
        size_t n;
        if ((s = ubj_length(r, &n)) != ST_OK)
            return s;
        v->type = JSON_KIND_STRING;
        return ubj_text(r, n, &v->u.string);
    }
    case '[':
    case '{':
        if (++r->depth > UBJ_MAX_DEPTH)
            return ubj_fail(r, ST_ELIMIT, "nesting deeper than 128 levels");
        s = marker == '[' ? ubj_array(r, v) : ubj_object(r, v);
        r->depth--;
        return s;
    default: {
        char what[48];
        snprintf(what, sizeof what, "unknown type marker 0x%02x", marker);
        return ubj_fail(r, ST_ECORRUPT, what);
    }
    }
}

st_status ubj_parse(const uint8_t *data, size_t len, st_arena *arena, json_value **out, st_error *err)
{
    ubj_reader r = { .data = data, .len = len, .arena = arena, .err = err };
    json_value *v = st_arena_calloc(arena, 1, sizeof *v, 8);
    if (!v)
        return st_fail(err, ST_ENOMEM, "out of memory reading UBJSON");
    st_status s = ubj_element(&r, -1, v);
    if (s != ST_OK)
        return s;
    while (r.pos < r.len && r.data[r.pos] == 'N')
        r.pos++;
    if (r.pos != r.len)
        return ubj_fail(&r, ST_ECORRUPT, "trailing bytes after the value");
    *out = v;
    return ST_OK;
}
