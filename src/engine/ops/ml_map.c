/* ml_map.c - ONNX-ML encoders and map values: LabelEncoder (ml opsets 1,
 * 2 and 4), CategoryMapper, ZipMap (scores to a sequence of maps) and
 * DictVectorizer (a map to a dense row).  Map and sequence layout is in
 * engine.h; lookups go through the sorted key tables of ml.c. */
#include <string.h>

#include "engine/ops/ml_int.h"

/* --- encoders: keys -> values with a default --------------------------------------- */

typedef struct ml_encoder {
    ml_keys keys;
    st_dtype out_type;
    const void *values;   /* keys.count elements of out_type (st_str for strings) */
    union {
        int64_t i64;
        int32_t i32;
        int16_t i16;
        float f32;
        double f64;
        st_str str;
    } dflt;
} ml_encoder;

/* One or two encoders: opset-1 LabelEncoder and CategoryMapper map both
 * ways (string -> int64 and int64 -> string) and pick by input type. */
typedef struct ml_codec {
    ml_encoder enc[2];
    size_t n_enc;
} ml_codec;

static void set_default(ml_encoder *e, const eng_node *n)
{
    switch (e->out_type) {
    case ST_DT_STRING: e->dflt.str = eng_attr_str(n, "default_string", "_Unused"); break;
    case ST_DT_INT64: e->dflt.i64 = eng_attr_int(n, "default_int64", -1); break;
    case ST_DT_FLOAT32: e->dflt.f32 = eng_attr_float(n, "default_float", -0.0f); break;
    /* Types only a values_tensor gives (opset 4): the spec's -1 / -0.0. */
    case ST_DT_INT32: e->dflt.i32 = -1; break;
    case ST_DT_INT16: e->dflt.i16 = -1; break;
    case ST_DT_FLOAT64: e->dflt.f64 = -0.0; break;
    default: memset(&e->dflt, 0, sizeof e->dflt); break;
    }
}

/* Two directions between a string list and its positions (opset-1
 * LabelEncoder) or a string list and an int list (CategoryMapper). */
static st_status codec_two_way(ml_codec *c, const st_str *strs, const int64_t *ints, size_t count,
                               const eng_node *n, st_arena *arena, st_error *err)
{
    int64_t *pos = NULL;
    if (!ints) {
        pos = st_arena_alloc(arena, (count + 1) * sizeof *pos, 8);
        if (!pos)
            return st_fail(err, ST_ENOMEM, "out of memory");
        for (size_t i = 0; i < count; i++)
            pos[i] = (int64_t)i;
        ints = pos;
    }
    st_status s = ml_keys_build(&c->enc[0].keys, ML_KEY_STRING, NULL, NULL, NULL, strs, count, arena, err);
    if (s != ST_OK || (s = ml_keys_build(&c->enc[1].keys, ML_KEY_INT, ints, NULL, NULL, NULL, count, arena, err)))
        return s;
    c->enc[0].out_type = ST_DT_INT64;
    c->enc[0].values = ints;
    c->enc[1].out_type = ST_DT_STRING;
    c->enc[1].values = strs;
    set_default(&c->enc[0], n);
    set_default(&c->enc[1], n);
    c->n_enc = 2;
    return ST_OK;
}

/* A tensor attribute's values: its type, count and data (st_str for
 * strings), in arena memory or the model's. */
static st_status attr_tensor_values(const eng_node *n, const char *name, st_arena *arena, st_dtype *type,
                                    size_t *count, const void **data, st_error *err)
{
    const onnx_tensor *t = eng_attr_tensor(n, name);
    *data = NULL;
    *count = 0;
    if (!t)
        return ST_OK;
    onnx_tensor_data td;
    st_status s = onnx_tensor_materialize(t, NULL, arena, &td, err);
    if (s != ST_OK)
        return s;
    *type = (st_dtype)td.data_type;
    if (*type != ST_DT_STRING && *type != ST_DT_INT64 && *type != ST_DT_INT32 && *type != ST_DT_INT16 &&
        *type != ST_DT_FLOAT32 && *type != ST_DT_FLOAT64)
        return st_fail(err, ST_EUNSUPPORTED, "%s has type %s (string, int64, int32, int16, float or double)",
                       name, st_dtype_name(*type));
    *count = td.elem_count;
    *data = *type == ST_DT_STRING ? (const void *)td.strings : td.data;
    if (*count && !*data)
        return st_fail(err, ST_EINVAL, "%s has no data", name);
    /* Borrowed bytes may be unaligned inside the file: copy them. */
    if (*type != ST_DT_STRING && *count) {
        void *copy = st_arena_alloc(arena, td.byte_size, 64);
        if (!copy)
            return st_fail(err, ST_ENOMEM, "out of memory");
        memcpy(copy, td.data, td.byte_size);
        *data = copy;
    }
    return ST_OK;
}

static st_status keys_from_tensor(ml_keys *keys, st_dtype type, const void *data, size_t count, st_arena *arena,
                                  st_error *err)
{
    if (type == ST_DT_STRING)
        return ml_keys_build(keys, ML_KEY_STRING, NULL, NULL, NULL, data, count, arena, err);
    if (type == ST_DT_FLOAT32)
        return ml_keys_build(keys, ML_KEY_FLOAT, NULL, data, NULL, NULL, count, arena, err);
    if (type == ST_DT_FLOAT64)
        return ml_keys_build(keys, ML_KEY_FLOAT, NULL, NULL, data, NULL, count, arena, err);
    int64_t *ints = st_arena_alloc(arena, (count + 1) * sizeof *ints, 8);
    if (!ints)
        return st_fail(err, ST_ENOMEM, "out of memory");
    for (size_t i = 0; i < count; i++)
        ints[i] = type == ST_DT_INT64 ? ((const int64_t *)data)[i]
                  : type == ST_DT_INT32 ? ((const int32_t *)data)[i] : ((const int16_t *)data)[i];
    return ml_keys_build(keys, ML_KEY_INT, ints, NULL, NULL, NULL, count, arena, err);
}

/* LabelEncoder at ml opset 2 and later: keys_* and values_* (and, from
 * opset 4, keys_tensor / values_tensor / default_tensor). */
static st_status label_encoder_v2(ml_codec *c, const eng_node *n, st_arena *arena, st_error *err)
{
    ml_encoder *e = &c->enc[0];
    c->n_enc = 1;
    size_t nk_i, nk_f, nk_s, nv_i, nv_f, nv_s, nk_t, nv_t;
    const int64_t *k_i = eng_attr_ints(n, "keys_int64s", &nk_i);
    const float *k_f = eng_attr_floats(n, "keys_floats", &nk_f);
    const st_str *k_s = ml_attr_strings(n, "keys_strings", &nk_s);
    const int64_t *v_i = eng_attr_ints(n, "values_int64s", &nv_i);
    const float *v_f = eng_attr_floats(n, "values_floats", &nv_f);
    const st_str *v_s = ml_attr_strings(n, "values_strings", &nv_s);
    st_dtype kt_type = ST_DT_UNDEFINED, vt_type = ST_DT_UNDEFINED;
    const void *k_t = NULL, *v_t = NULL;
    st_status s;
    if (n->opset >= 4) {
        if ((s = attr_tensor_values(n, "keys_tensor", arena, &kt_type, &nk_t, &k_t, err)) != ST_OK ||
            (s = attr_tensor_values(n, "values_tensor", arena, &vt_type, &nv_t, &v_t, err)) != ST_OK)
            return s;
    } else {
        nk_t = nv_t = 0;
    }
    int n_keys = (nk_i > 0) + (nk_f > 0) + (nk_s > 0) + (k_t != NULL);
    int n_vals = (nv_i > 0) + (nv_f > 0) + (nv_s > 0) + (v_t != NULL);
    if (n_keys != 1 || n_vals != 1)
        return st_fail(err, ST_EINVAL, "give exactly one keys_* and one values_* attribute (found %d and %d)",
                       n_keys, n_vals);
    size_t nk = nk_i + nk_f + nk_s + nk_t, nv = nv_i + nv_f + nv_s + nv_t;
    if (nk != nv)
        return st_fail(err, ST_EINVAL, "%zu keys but %zu values", nk, nv);
    if (k_t)
        s = keys_from_tensor(&e->keys, kt_type, k_t, nk, arena, err);
    else
        s = ml_keys_build(&e->keys, nk_s ? ML_KEY_STRING : nk_f ? ML_KEY_FLOAT : ML_KEY_INT, k_i, k_f, NULL, k_s, nk,
                          arena, err);
    if (s != ST_OK)
        return s;
    e->out_type = v_t ? vt_type : nv_s ? ST_DT_STRING : nv_f ? ST_DT_FLOAT32 : ST_DT_INT64;
    e->values = v_t ? v_t : nv_s ? (const void *)v_s : nv_f ? (const void *)v_f : (const void *)v_i;
    set_default(e, n);
    if (n->opset >= 4 && eng_attr_tensor(n, "default_tensor")) {
        st_dtype dt;
        size_t nd;
        const void *d;
        if ((s = attr_tensor_values(n, "default_tensor", arena, &dt, &nd, &d, err)) != ST_OK)
            return s;
        if (dt != e->out_type || nd != 1)
            return st_fail(err, ST_EINVAL, "default_tensor must hold one %s value", st_dtype_name(e->out_type));
        memcpy(&e->dflt, d, eng_elem_bytes(dt));
    }
    return ST_OK;
}

st_status ml_label_encoder_check(eng_node *n, st_arena *arena, st_error *err)
{
    ml_codec *c = st_arena_calloc(arena, 1, sizeof *c, 8);
    if (!c)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_status s;
    if (n->opset < 2) {
        size_t count;
        const st_str *classes = ml_attr_strings(n, "classes_strings", &count);
        s = codec_two_way(c, classes, NULL, count, n, arena, err);
    } else {
        s = label_encoder_v2(c, n, arena, err);
    }
    if (s != ST_OK)
        return s;
    n->state = c;
    return ST_OK;
}

static const char *key_kind_name(ml_key_kind k)
{
    return k == ML_KEY_STRING ? "string" : k == ML_KEY_INT ? "integer" : "floating-point";
}

/* The encoder whose keys suit the input's type. */
static st_status codec_pick(const eng_kctx *k, const eng_tensor *x, const ml_encoder **out)
{
    const ml_codec *c = k->node->state;
    ml_key_kind kind;
    if (!x || !ml_key_kind_of(x->dtype, &kind))
        return eng_fail(k, ST_ETYPE, "X must be a string, integer or floating-point tensor, got %s",
                        x ? st_dtype_name(x->dtype) : "nothing");
    for (size_t i = 0; i < c->n_enc; i++) {
        if (c->enc[i].keys.kind == kind) {
            *out = &c->enc[i];
            return ST_OK;
        }
    }
    return eng_fail(k, ST_ETYPE, "X is %s but the keys are %s", st_dtype_name(x->dtype),
                    key_kind_name(c->enc[0].keys.kind));
}

st_status ml_codec_infer(eng_kctx *k)
{
    const ml_encoder *e;
    st_status s = codec_pick(k, k->in[0], &e);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], e->out_type, k->in[0]->shape, k->in[0]->rank);
    return ST_OK;
}

st_status ml_codec_run(eng_kctx *k)
{
    const ml_encoder *e;
    st_status s = codec_pick(k, k->in[0], &e);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    size_t es = eng_elem_bytes(e->out_type);
    char *y = k->out[0]->data;
    const char *vals = e->values;
    for (size_t i = 0; i < x->count; i++) {
        int64_t at = ml_keys_find_at(&e->keys, x, i);
        memcpy(y + i * es, at >= 0 ? vals + (size_t)at * es : (const char *)&e->dflt, es);
    }
    return ST_OK;
}

/* --- CategoryMapper ------------------------------------------------------------------- */

st_status ml_category_mapper_check(eng_node *n, st_arena *arena, st_error *err)
{
    ml_codec *c = st_arena_calloc(arena, 1, sizeof *c, 8);
    if (!c)
        return st_fail(err, ST_ENOMEM, "out of memory");
    size_t n_strs, n_ints;
    const st_str *strs = ml_attr_strings(n, "cats_strings", &n_strs);
    const int64_t *ints = eng_attr_ints(n, "cats_int64s", &n_ints);
    if (n_strs != n_ints)
        return st_fail(err, ST_EINVAL, "cats_strings has %zu entries, cats_int64s %zu; they must pair up", n_strs,
                       n_ints);
    static const int64_t none[1] = { 0 };
    st_status s = codec_two_way(c, strs, ints ? ints : none, n_strs, n, arena, err);
    if (s != ST_OK)
        return s;
    n->state = c;
    return ST_OK;
}

/* --- ZipMap ---------------------------------------------------------------------------- */

st_status ml_zipmap_check(eng_node *n, st_arena *arena, st_error *err)
{
    ml_labels *l = st_arena_calloc(arena, 1, sizeof *l, 8);
    if (!l)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_status s = ml_labels_get(n, "classlabels_int64s", "classlabels_strings", l, err);
    if (s != ST_OK)
        return s;
    if (l->count == 0)
        return st_fail(err, ST_EINVAL, "classlabels_int64s or classlabels_strings is required");
    n->state = l;
    return ST_OK;
}

static st_status zipmap_rows(const eng_kctx *k, size_t *rows)
{
    const ml_labels *l = k->node->state;
    const eng_tensor *x = k->in[0];
    if (!x || x->dtype != ST_DT_FLOAT32)
        return eng_fail(k, ST_ETYPE, "X must be float");
    if (x->rank != 1 && x->rank != 2)
        return eng_fail(k, ST_ESHAPE, "X must be [N, C] or [C], got rank %u", x->rank);
    size_t cols = (size_t)x->shape[x->rank - 1];
    if (cols != l->count)
        return eng_fail(k, ST_ESHAPE, "X has %zu columns for %zu class labels", cols, l->count);
    *rows = x->rank == 2 ? (size_t)x->shape[0] : 1;
    return ST_OK;
}

st_status ml_zipmap_infer(eng_kctx *k)
{
    size_t rows;
    st_status s = zipmap_rows(k, &rows);
    if (s != ST_OK)
        return s;
    int64_t shape[1] = { (int64_t)rows };
    eng_set_shape(k->out[0], ENG_DT_SEQUENCE, shape, 1);
    k->out[0]->shape[1] = ENG_DT_MAP;
    return ST_OK;
}

st_status ml_zipmap_run(eng_kctx *k)
{
    const ml_labels *l = k->node->state;
    size_t rows, n = l->count;
    zipmap_rows(k, &rows);
    st_dtype key_type = l->is_string ? ST_DT_STRING : ST_DT_INT64;
    eng_tensor *maps = k->out[0]->data;
    /* Every map shares the keys (the model's attribute, alive as long as
     * the model); values are copied into the run's scratch. */
    eng_tensor *parts = st_arena_alloc(k->scratch, (rows ? rows : 1) * 2 * sizeof *parts, 64);
    size_t n_vals = rows * n; /* fits: it is the input's element count */
    float *vals = st_arena_alloc(k->scratch, (n_vals ? n_vals : 1) * sizeof *vals, 64);
    if (!parts || !vals)
        return eng_fail(k, ST_ENOMEM, "out of memory for %zu maps", rows);
    if (n_vals)
        memcpy(vals, k->in[0]->data, n_vals * sizeof *vals);
    int64_t shape[1] = { (int64_t)n };
    for (size_t r = 0; r < rows; r++) {
        eng_tensor *kv = &parts[2 * r];
        kv[0] = eng_tensor_make(key_type, shape, 1, l->is_string ? (void *)l->strs : (void *)l->ints);
        kv[1] = eng_tensor_make(ST_DT_FLOAT32, shape, 1, vals + r * n);
        eng_set_shape(&maps[r], ENG_DT_MAP, shape, 1);
        maps[r].shape[1] = key_type;
        maps[r].shape[2] = ST_DT_FLOAT32;
        maps[r].data = kv;
    }
    return ST_OK;
}

/* --- DictVectorizer ----------------------------------------------------------------------- */

st_status ml_dict_vectorizer_check(eng_node *n, st_arena *arena, st_error *err)
{
    ml_keys *vocab = st_arena_calloc(arena, 1, sizeof *vocab, 8);
    if (!vocab)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_status s = ml_keys_from_attrs(vocab, n, "int64_vocabulary", "string_vocabulary", arena, err);
    if (s != ST_OK)
        return s;
    n->state = vocab;
    return ST_OK;
}

/* Checks one map (it may come from outside the model) against the
 * vocabulary and returns its value type. */
static st_status dict_check_map(const eng_kctx *k, const ml_keys *vocab, const eng_tensor *m, st_dtype *value_type)
{
    if (m->dtype != ENG_DT_MAP || !m->data)
        return eng_fail(k, ST_ETYPE, "X must be a map or a sequence of maps");
    const eng_tensor *kv = m->data;
    ml_key_kind kind;
    if (kv[0].count != m->count || kv[1].count != m->count || kv[0].dtype != (st_dtype)m->shape[1] ||
        kv[1].dtype != (st_dtype)m->shape[2] || (m->count && (!kv[0].data || !kv[1].data)))
        return eng_fail(k, ST_EINVAL, "a map's keys and values do not match its header");
    if (!ml_key_kind_of(kv[0].dtype, &kind) || kind != vocab->kind)
        return eng_fail(k, ST_ETYPE, "map keys are %s but the vocabulary is %s", st_dtype_name(kv[0].dtype),
                        key_kind_name(vocab->kind));
    st_dtype v = kv[1].dtype;
    if (v != ST_DT_FLOAT32 && v != ST_DT_FLOAT64 && v != ST_DT_INT64 && v != ST_DT_STRING)
        return eng_fail(k, ST_ETYPE, "map values are %s (float, double, int64 or string)", st_dtype_name(v));
    *value_type = v;
    return ST_OK;
}

st_status ml_dict_vectorizer_infer(eng_kctx *k)
{
    const ml_keys *vocab = k->node->state;
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "X is missing");
    bool is_seq = x->dtype == ENG_DT_SEQUENCE;
    size_t rows = is_seq ? x->count : 1;
    st_dtype vt = ST_DT_FLOAT32;
    for (size_t r = 0; r < rows; r++) {
        st_dtype t;
        st_status s = dict_check_map(k, vocab, is_seq ? &((const eng_tensor *)x->data)[r] : x, &t);
        if (s != ST_OK)
            return s;
        if (r > 0 && t != vt)
            return eng_fail(k, ST_ETYPE, "the maps' value types differ");
        vt = t;
    }
    int64_t shape[2] = { (int64_t)rows, (int64_t)vocab->count };
    eng_set_shape(k->out[0], vt, shape, 2);
    return ST_OK;
}

st_status ml_dict_vectorizer_run(eng_kctx *k)
{
    const ml_keys *vocab = k->node->state;
    const eng_tensor *x = k->in[0];
    eng_tensor *y = k->out[0];
    bool is_seq = x->dtype == ENG_DT_SEQUENCE;
    size_t rows = is_seq ? x->count : 1, es = eng_elem_bytes(y->dtype);
    memset(y->data, 0, y->count * es);
    if (y->dtype == ST_DT_STRING)
        for (size_t i = 0; i < y->count; i++)
            ((st_str *)y->data)[i] = st_str_c("");
    for (size_t r = 0; r < rows; r++) {
        const eng_tensor *m = is_seq ? &((const eng_tensor *)x->data)[r] : x;
        const eng_tensor *kv = m->data;
        char *row = (char *)y->data + r * vocab->count * es;
        for (size_t e = 0; e < m->count; e++) {
            int64_t at = ml_keys_find_at(vocab, &kv[0], e);
            if (at >= 0)
                memcpy(row + (size_t)at * es, (const char *)kv[1].data + e * es, es);
        }
    }
    return ST_OK;
}
