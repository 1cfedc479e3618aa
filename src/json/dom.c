/* dom.c - a small JSON tree in an st_arena, for config files and metadata
 * (not the hot path).  Built on the pull reader, so it applies the same
 * validation and limits; children are collected on a scratch stack and
 * copied into the arena in one piece when their container closes. */
#include <string.h>

#include "base/alloc.h"
#include "json/json_int.h"

typedef struct {
    json_reader r;
    st_arena *arena;
    st_buf stack; /* json_member records of the containers being built */
} dom_parser;

static st_status oom(dom_parser *dp)
{
    return json_reader_error_at(&dp->r, ST_ENOMEM, dp->r.pos, "out of memory building the JSON tree");
}

/* A copy of s in the arena (NUL-terminated), unless it already lives
 * there (strings with escapes are unescaped into the arena). */
static bool own_string(dom_parser *dp, st_str s, st_str *out)
{
    const char *in = dp->r.data;
    bool in_input = s.ptr >= in && s.ptr <= in + dp->r.len;
    if (!in_input) {
        *out = s;
        return true;
    }
    char *copy = st_arena_strndup(dp->arena, s.ptr, s.len);
    if (!copy)
        return false;
    *out = st_str_make(copy, s.len);
    return true;
}

static st_status parse_value(dom_parser *dp, json_value *out);

/* Moves the members pushed since `mark` into the arena. */
static st_status collect(dom_parser *dp, size_t mark, json_value *out, bool is_object)
{
    size_t n = (dp->stack.len - mark) / sizeof(json_member);
    const json_member *m =
        n ? (const json_member *)(const void *)(dp->stack.data + mark) : NULL;
    if (is_object) {
        json_member *members = NULL;
        if (n) {
            members = st_arena_alloc(dp->arena, n * sizeof *members, _Alignof(json_member));
            if (!members)
                return oom(dp);
            memcpy(members, m, n * sizeof *members);
        }
        out->type = JSON_KIND_OBJECT;
        out->u.object.members = members;
        out->u.object.count = n;
    } else {
        json_value *items = NULL;
        if (n) {
            items = st_arena_alloc(dp->arena, n * sizeof *items, _Alignof(json_value));
            if (!items)
                return oom(dp);
            for (size_t i = 0; i < n; i++)
                items[i] = m[i].value;
        }
        out->type = JSON_KIND_ARRAY;
        out->u.array.items = items;
        out->u.array.count = n;
    }
    dp->stack.len = mark;
    return ST_OK;
}

static st_status parse_container(dom_parser *dp, json_value *out, bool is_object)
{
    json_reader *r = &dp->r;
    size_t mark = dp->stack.len;
    if ((is_object ? json_enter_object(r) : json_enter_array(r)) != ST_OK)
        return r->status;
    for (;;) {
        json_member m;
        memset(&m, 0, sizeof m);
        if (is_object) {
            st_str key;
            if (!json_object_next(r, &key))
                break;
            if (!own_string(dp, key, &m.key))
                return oom(dp);
        } else if (!json_array_next(r)) {
            break;
        }
        if (parse_value(dp, &m.value) != ST_OK)
            return r->status;
        if (st_buf_append(&dp->stack, &m, sizeof m) != ST_OK)
            return oom(dp);
    }
    if (r->status != ST_OK)
        return r->status;
    return collect(dp, mark, out, is_object);
}

static st_status parse_value(dom_parser *dp, json_value *out)
{
    json_reader *r = &dp->r;
    memset(out, 0, sizeof *out);
    switch (json_peek(r)) {
    case JSON_KIND_NULL:
        out->type = JSON_KIND_NULL;
        return json_read_null(r);
    case JSON_KIND_BOOL:
        out->type = JSON_KIND_BOOL;
        return json_read_bool(r, &out->u.boolean);
    case JSON_KIND_NUMBER: {
        st_str text;
        if (json_read_number_text(r, &text) != ST_OK)
            return r->status;
        out->type = JSON_KIND_NUMBER;
        return own_string(dp, text, &out->u.number) ? ST_OK : oom(dp);
    }
    case JSON_KIND_STRING: {
        st_str s;
        if (json_read_string(r, &s) != ST_OK)
            return r->status;
        out->type = JSON_KIND_STRING;
        return own_string(dp, s, &out->u.string) ? ST_OK : oom(dp);
    }
    case JSON_KIND_ARRAY:
        return parse_container(dp, out, false);
    case JSON_KIND_OBJECT:
        return parse_container(dp, out, true);
    default:
        return r->status != ST_OK ? r->status : ST_EINTERNAL;
    }
}

st_status json_parse(const void *data, size_t len, const json_limits *limits,
                     st_arena *arena, json_value **out, st_error *err)
{
    if (!arena || !out)
        return st_fail(err, ST_EINVAL, "json_parse: arena and out are required");
    dom_parser dp;
    memset(&dp.stack, 0, sizeof dp.stack);
    dp.arena = arena;
    json_reader_init(&dp.r, data, len, limits, arena, err);
    st_status s = dp.r.status;
    json_value *root = NULL;
    if (s != ST_OK)
        goto done;
    root = st_arena_alloc(arena, sizeof *root, _Alignof(json_value));
    if (!root) {
        s = oom(&dp);
        goto done;
    }
    s = parse_value(&dp, root);
    if (s == ST_OK)
        s = json_reader_finish(&dp.r);
done:
    st_buf_free(&dp.stack);
    if (s == ST_OK)
        *out = root;
    return s;
}

/* ---- lookup and conversion ------------------------------------------------------ */

const json_value *json_value_get(const json_value *obj, st_str key)
{
    if (!obj || obj->type != JSON_KIND_OBJECT)
        return NULL;
    for (size_t i = obj->u.object.count; i-- > 0;)
        if (st_str_eq(obj->u.object.members[i].key, key))
            return &obj->u.object.members[i].value;
    return NULL;
}

const json_value *json_value_get_c(const json_value *obj, const char *key)
{
    return json_value_get(obj, st_str_c(key));
}

const json_value *json_value_at(const json_value *arr, size_t i)
{
    if (!arr || arr->type != JSON_KIND_ARRAY || i >= arr->u.array.count)
        return NULL;
    return &arr->u.array.items[i];
}

st_status json_value_double(const json_value *v, double *out)
{
    if (!v || v->type != JSON_KIND_NUMBER)
        return ST_ETYPE;
    return json_parse_double(v->u.number, out);
}

static st_status value_magnitude(const json_value *v, json_decimal *d, uint64_t *mag)
{
    size_t bad = 0;
    const char *why = "";
    if (!v || v->type != JSON_KIND_NUMBER)
        return ST_ETYPE;
    if (json_number_scan(v->u.number.ptr, v->u.number.len, d, &bad, &why) != v->u.number.len)
        return ST_ECORRUPT;
    return json_decimal_to_magnitude(d, mag) == 0 ? ST_OK : ST_EINVAL;
}

st_status json_value_int64(const json_value *v, int64_t *out)
{
    json_decimal d;
    uint64_t mag;
    st_status s = value_magnitude(v, &d, &mag);
    if (s != ST_OK)
        return s;
    if (mag > (d.negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
        return ST_EINVAL;
    *out = d.negative ? (int64_t)(0 - mag) : (int64_t)mag;
    return ST_OK;
}

st_status json_value_uint64(const json_value *v, uint64_t *out)
{
    json_decimal d;
    uint64_t mag;
    st_status s = value_magnitude(v, &d, &mag);
    if (s != ST_OK)
        return s;
    if (d.negative && mag)
        return ST_EINVAL;
    *out = mag;
    return ST_OK;
}

st_status json_value_bool(const json_value *v, bool *out)
{
    if (!v || v->type != JSON_KIND_BOOL)
        return ST_ETYPE;
    *out = v->u.boolean;
    return ST_OK;
}

st_status json_value_string(const json_value *v, st_str *out)
{
    if (!v || v->type != JSON_KIND_STRING)
        return ST_ETYPE;
    *out = v->u.string;
    return ST_OK;
}

bool json_value_equal(const json_value *a, const json_value *b)
{
    if (!a || !b || a->type != b->type)
        return false;
    switch (a->type) {
    case JSON_KIND_NULL: return true;
    case JSON_KIND_BOOL: return a->u.boolean == b->u.boolean;
    case JSON_KIND_NUMBER: return st_str_eq(a->u.number, b->u.number);
    case JSON_KIND_STRING: return st_str_eq(a->u.string, b->u.string);
    case JSON_KIND_ARRAY:
        if (a->u.array.count != b->u.array.count)
            return false;
        for (size_t i = 0; i < a->u.array.count; i++)
            if (!json_value_equal(&a->u.array.items[i], &b->u.array.items[i]))
                return false;
        return true;
    case JSON_KIND_OBJECT:
        if (a->u.object.count != b->u.object.count)
            return false;
        for (size_t i = 0; i < a->u.object.count; i++) {
            const json_member *x = &a->u.object.members[i], *y = &b->u.object.members[i];
            if (!st_str_eq(x->key, y->key) || !json_value_equal(&x->value, &y->value))
                return false;
        }
        return true;
    default:
        return false;
    }
}

st_status json_write_value(json_writer *w, const json_value *v)
{
    if (!v)
        return json_write_null(w);
    switch (v->type) {
    case JSON_KIND_NULL: return json_write_null(w);
    case JSON_KIND_BOOL: return json_write_bool(w, v->u.boolean);
    case JSON_KIND_NUMBER: return json_write_number_text(w, v->u.number);
    case JSON_KIND_STRING: return json_write_string(w, v->u.string);
    case JSON_KIND_ARRAY:
        if (json_write_array_begin(w) != ST_OK)
            return w->status;
        for (size_t i = 0; i < v->u.array.count; i++)
            if (json_write_value(w, &v->u.array.items[i]) != ST_OK)
                return w->status;
        return json_write_array_end(w);
    case JSON_KIND_OBJECT:
        if (json_write_object_begin(w) != ST_OK)
            return w->status;
        for (size_t i = 0; i < v->u.object.count; i++) {
            const json_member *m = &v->u.object.members[i];
            if (json_write_key(w, m->key) != ST_OK || json_write_value(w, &m->value) != ST_OK)
                return w->status;
        }
        return json_write_object_end(w);
    default:
        return json_write_null(w);
    }
}
