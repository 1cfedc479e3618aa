/* test_onnx_pb.c - unit tests of the ONNX protobuf decoder (engine/onnx_pb).
 * Decodes every model and test-data file of Debian's libonnx-testdata,
 * checks field values, malformed and truncated input, allocation failures
 * and external data (fixtures from tests/fixtures/make_onnx_external.py). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"

#include "base/alloc.h"
#include "base/arena.h"
#include "base/buf.h"
#include "base/dtype.h"
#include "engine/onnx_pb.h"

#define TESTDATA_ROOT "/usr/share/libonnx-testdata/data"
#define FIXTURE_DIR "tests/data/onnx"

/* ---- helpers ---------------------------------------------------------------- */

typedef struct file_buf {
    uint8_t *data;
    size_t len;
} file_buf;

/* Reads a file into an exact-size heap block (so ASan sees over-reads). */
static bool read_whole(const char *path, file_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return false;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *data = st_malloc(len ? len : 1);
    bool ok = data && fread(data, 1, len, f) == len;
    fclose(f);
    if (!ok) {
        st_free(data);
        return false;
    }
    out->data = data;
    out->len = len;
    return true;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool str_is(st_str s, const char *c)
{
    return st_str_eq_c(s, c);
}

/* ---- a tiny protobuf writer for crafted inputs ------------------------------- */

static void w_raw(st_buf *b, const void *p, size_t n)
{
    assert_int_equal(st_buf_append(b, p, n), ST_OK);
}

static void w_varint(st_buf *b, uint64_t v)
{
    do {
        uint8_t byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            byte |= 0x80;
        w_raw(b, &byte, 1);
    } while (v);
}

static void w_tag(st_buf *b, uint32_t num, uint32_t wire)
{
    w_varint(b, (uint64_t)num << 3 | wire);
}

static void w_int(st_buf *b, uint32_t num, int64_t v)
{
    w_tag(b, num, 0);
    w_varint(b, (uint64_t)v);
}

static void w_bytes(st_buf *b, uint32_t num, const void *p, size_t n)
{
    w_tag(b, num, 2);
    w_varint(b, n);
    if (n)
        w_raw(b, p, n);
}

static void w_str(st_buf *b, uint32_t num, const char *s)
{
    w_bytes(b, num, s, strlen(s));
}

static void w_float(st_buf *b, uint32_t num, float f)
{
    w_tag(b, num, 5);
    w_raw(b, &f, 4);
}

static void w_double(st_buf *b, uint32_t num, double x)
{
    w_tag(b, num, 1);
    w_raw(b, &x, 8);
}

/* Appends `sub` as a length-delimited field and frees it. */
static void w_msg(st_buf *b, uint32_t num, st_buf *sub)
{
    w_bytes(b, num, sub->data, sub->len);
    st_buf_free(sub);
}

static void w_packed_varints(st_buf *b, uint32_t num, const int64_t *v, size_t n)
{
    st_buf p = { 0 };
    for (size_t i = 0; i < n; i++)
        w_varint(&p, (uint64_t)v[i]);
    w_msg(b, num, &p);
}

/* TensorProto with dims and data_type only (the caller adds data). */
static void w_tensor_head(st_buf *t, const char *name, int32_t data_type, const int64_t *dims,
                          size_t rank)
{
    for (size_t i = 0; i < rank; i++)
        w_int(t, 1, dims[i]);
    w_int(t, 2, data_type);
    if (name)
        w_str(t, 8, name);
}

static void w_value_info_tensor(st_buf *g, uint32_t field, const char *name, int32_t elem,
                                const char *dim_param)
{
    st_buf vi = { 0 }, type = { 0 }, tt = { 0 }, shape = { 0 }, dim = { 0 };
    w_str(&dim, 2, dim_param); /* symbolic batch */
    w_msg(&shape, 1, &dim);
    w_int(&dim, 1, 3);
    w_msg(&shape, 1, &dim);
    w_msg(&shape, 1, &dim); /* empty Dimension: unknown */
    w_int(&dim, 1, -1);     /* -1: unknown too */
    w_msg(&shape, 1, &dim);
    w_int(&tt, 1, elem);
    w_msg(&tt, 2, &shape);
    w_msg(&type, 1, &tt);
    w_str(&vi, 1, name);
    w_msg(&vi, 2, &type);
    w_msg(g, field, &vi);
}

/* The crafted model most tests use: two nodes (one an If with a
 * subgraph), initializers in several encodings, typed graph I/O, a ZipMap
 * style sequence(map) output, opset_import last. */
static void build_model(st_buf *model)
{
    st_buf g = { 0 }, node = { 0 }, attr = { 0 }, t = { 0 }, sub = { 0 };
    static const int64_t d22[] = { 2, 2 }, d2[] = { 2 }, d3[] = { 3 };
    static const float w[] = { 1.0f, 2.0f, 3.0f, 4.0f };

    /* node 0: Conv with attributes in every plain encoding */
    w_str(&node, 1, "X");
    w_str(&node, 1, "W");
    w_str(&node, 1, ""); /* omitted optional input */
    w_str(&node, 2, "Y0");
    w_str(&node, 3, "n0");
    w_str(&node, 4, "Conv");
    static const int64_t ks[] = { 3, 3 };
    w_str(&attr, 1, "kernel_shape");
    w_packed_varints(&attr, 8, ks, 2);
    w_int(&attr, 20, 7);
    w_msg(&node, 5, &attr);
    w_str(&attr, 1, "pads");
    for (int i = 0; i < 4; i++)
        w_int(&attr, 8, 1);
    w_int(&attr, 20, 7);
    w_msg(&node, 5, &attr);
    w_str(&attr, 1, "alpha");
    w_float(&attr, 2, 0.5f);
    w_int(&attr, 20, 1);
    w_msg(&node, 5, &attr);
    w_str(&attr, 1, "mode"); /* no type: inferred STRING */
    w_str(&attr, 4, "constant");
    w_msg(&node, 5, &attr);
    w_str(&attr, 1, "scales"); /* no type: inferred FLOATS */
    w_float(&attr, 7, 1.5f);
    w_float(&attr, 7, 2.5f);
    w_msg(&node, 5, &attr);
    w_str(&attr, 1, "value");
    w_tensor_head(&t, "v", ST_DT_FLOAT32, d2, 1);
    w_float(&t, 4, 7.0f);
    w_float(&t, 4, 8.0f);
    w_msg(&attr, 5, &t);
    w_int(&attr, 20, 4);
    w_msg(&node, 5, &attr);
    w_msg(&g, 1, &node);

    /* node 1: If whose then_branch holds a Constant */
    w_str(&sub, 2, "then");
    w_str(&node, 2, "c");
    w_str(&node, 4, "Constant");
    w_str(&attr, 1, "value");
    static const int64_t iv[] = { 5, -6, 7 };
    w_tensor_head(&t, NULL, ST_DT_INT64, d3, 1);
    w_packed_varints(&t, 7, iv, 3);
    w_msg(&attr, 5, &t);
    w_int(&attr, 20, 4);
    w_msg(&node, 5, &attr);
    w_msg(&sub, 1, &node);
    w_value_info_tensor(&sub, 12, "c", ST_DT_INT64, "n");
    w_str(&node, 1, "cond");
    w_str(&node, 2, "Y1");
    w_str(&node, 3, "if0");
    w_str(&node, 4, "If");
    w_str(&attr, 1, "then_branch");
    w_msg(&attr, 6, &sub);
    w_int(&attr, 20, 5);
    w_msg(&node, 5, &attr);
    w_msg(&g, 1, &node);

    w_str(&g, 2, "g");
    /* initializers: raw_data, packed float_data, unpacked int64_data, strings */
    w_tensor_head(&t, "W", ST_DT_FLOAT32, d22, 2);
    w_bytes(&t, 9, w, sizeof w);
    w_msg(&g, 5, &t);
    w_tensor_head(&t, "B", ST_DT_FLOAT32, d2, 1);
    {
        st_buf p = { 0 };
        w_raw(&p, &w[2], 8);
        w_msg(&t, 4, &p);
    }
    w_msg(&g, 5, &t);
    w_tensor_head(&t, "I", ST_DT_INT64, d3, 1);
    w_int(&t, 7, 1);
    w_int(&t, 7, -2);
    w_int(&t, 7, 3);
    w_msg(&g, 5, &t);
    w_tensor_head(&t, "S", ST_DT_STRING, d2, 1);
    w_str(&t, 6, "ab");
    w_str(&t, 6, "");
    w_msg(&g, 5, &t);

    w_value_info_tensor(&g, 11, "X", ST_DT_FLOAT32, "N");
    w_value_info_tensor(&g, 12, "Y0", ST_DT_FLOAT32, "N");
    {   /* output Z: sequence(map(int64 -> tensor(float))) as ZipMap makes */
        st_buf vi = { 0 }, type = { 0 }, seq = { 0 }, elem = { 0 }, map = { 0 }, val = { 0 },
               tt = { 0 };
        w_int(&tt, 1, ST_DT_FLOAT32);
        w_msg(&val, 1, &tt);
        w_int(&map, 1, ST_DT_INT64);
        w_msg(&map, 2, &val);
        w_msg(&elem, 5, &map);
        w_msg(&seq, 1, &elem);
        w_msg(&type, 4, &seq);
        w_str(&vi, 1, "Z");
        w_msg(&vi, 2, &type);
        w_msg(&g, 12, &vi);
    }

    w_int(model, 1, 8);
    w_str(model, 2, "stratus-test");
    w_str(model, 3, "1.0");
    w_int(model, 5, 42);
    w_str(model, 6, "a doc string that is skipped");
    {
        st_buf e = { 0 };
        w_str(&e, 1, "author");
        w_str(&e, 2, "me");
        w_msg(model, 14, &e);
    }
    w_msg(model, 7, &g);
    {
        st_buf op = { 0 };
        w_str(&op, 1, "");
        w_int(&op, 2, 13);
        w_msg(model, 8, &op);
    }
}

/* ---- walking decoded structures --------------------------------------------- */

typedef struct walk {
    onnx_external *ext;
    st_arena *arena;
    size_t tensors;
    bool must_succeed;
    const char *where;
} walk;

static void walk_tensor(walk *w, const onnx_tensor *t)
{
    onnx_tensor_data td;
    st_error err = { 0 };
    st_status rc = onnx_tensor_materialize(t, w->ext, w->arena, &td, &err);
    if (w->must_succeed && rc != ST_OK)
        fail_msg("%s: %s", w->where, err.msg);
    if (rc == ST_OK) {
        w->tensors++;
        assert_int_equal(td.elem_count, t->elem_count);
        if (td.data_type != ST_DT_STRING)
            assert_int_equal(td.byte_size, t->elem_count * st_dtype_size((st_dtype)td.data_type));
        if (td.byte_size)
            assert_non_null(td.data);
        volatile uint8_t sink = 0;
        if (td.byte_size)
            sink ^= ((const uint8_t *)td.data)[td.byte_size - 1];
        (void)sink;
    }
}

static void walk_graph(walk *w, const onnx_graph *g);

static void walk_nodes(walk *w, const onnx_node *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < nodes[i].attr_count; k++) {
            const onnx_attr *a = &nodes[i].attrs[k];
            if (a->t)
                walk_tensor(w, a->t);
            for (size_t j = 0; j < a->tensor_count; j++)
                walk_tensor(w, &a->tensors[j]);
            if (a->g)
                walk_graph(w, a->g);
            for (size_t j = 0; j < a->graph_count; j++)
                walk_graph(w, &a->graphs[j]);
        }
    }
}

static void walk_graph(walk *w, const onnx_graph *g)
{
    for (size_t i = 0; i < g->initializer_count; i++)
        walk_tensor(w, &g->initializers[i]);
    walk_nodes(w, g->nodes, g->node_count);
}

static void walk_value(walk *w, const onnx_value *v)
{
    if (v->tensor)
        walk_tensor(w, v->tensor);
    for (size_t i = 0; i < v->item_count; i++)
        walk_value(w, &v->items[i]);
    if (v->map_values)
        walk_value(w, v->map_values);
}

/* Decodes and materializes everything in buf; returns the decode status. */
static st_status decode_all(const uint8_t *data, size_t len, st_arena *arena)
{
    st_error err = { 0 };
    onnx_external ext;
    onnx_external_init(&ext, "/nonexistent/stratus-test");
    walk w = { &ext, arena, 0, false, "" };
    onnx_model m;
    st_status rc = onnx_decode_model(data, len, arena, &m, &err);
    if (rc == ST_OK) {
        assert_non_null(m.graph);
        walk_graph(&w, m.graph);
        for (size_t i = 0; i < m.function_count; i++)
            walk_nodes(&w, m.functions[i].nodes, m.functions[i].node_count);
    } else {
        assert_true(err.msg[0] != '\0');
        assert_int_equal(err.code, rc);
    }
    onnx_tensor t;
    if (onnx_decode_tensor(data, len, arena, &t, &err) == ST_OK)
        walk_tensor(&w, &t);
    onnx_value v;
    if (onnx_decode_sequence(data, len, arena, &v, &err) == ST_OK)
        walk_value(&w, &v);
    if (onnx_decode_optional(data, len, arena, &v, &err) == ST_OK)
        walk_value(&w, &v);
    onnx_external_release(&ext);
    return rc;
}

/* ---- (1) every file of libonnx-testdata ------------------------------------ */

static bool is_initializer(const onnx_graph *g, st_str name)
{
    for (size_t i = 0; i < g->initializer_count; i++)
        if (st_str_eq(g->initializers[i].name, name))
            return true;
    return false;
}

static void check_test_value(const char *path, const onnx_value_info *vi, walk *w,
                             size_t *files)
{
    file_buf fb;
    st_error err = { 0 };
    st_status rc;
    if (!read_whole(path, &fb))
        fail_msg("cannot read %s", path);
    w->where = path;
    switch (vi->type.kind) {
    case ONNX_TYPE_TENSOR: {
        onnx_tensor t;
        rc = onnx_decode_tensor(fb.data, fb.len, w->arena, &t, &err);
        if (rc != ST_OK)
            fail_msg("%s: %s", path, err.msg);
        /* the generator stores bfloat16 values as uint16 tensors */
        bool bf16_quirk = vi->type.elem_type == 16 && t.data_type == ST_DT_UINT16;
        if (vi->type.elem_type != 0 && t.data_type != vi->type.elem_type && !bf16_quirk)
            fail_msg("%s: data_type %d, model says %d", path, t.data_type, vi->type.elem_type);
        walk_tensor(w, &t);
        break;
    }
    case ONNX_TYPE_SEQUENCE:
    case ONNX_TYPE_OPTIONAL: {
        onnx_value v;
        if (vi->type.kind == ONNX_TYPE_SEQUENCE)
            rc = onnx_decode_sequence(fb.data, fb.len, w->arena, &v, &err);
        else
            rc = onnx_decode_optional(fb.data, fb.len, w->arena, &v, &err);
        if (rc != ST_OK)
            fail_msg("%s: %s", path, err.msg);
        walk_value(w, &v);
        break;
    }
    default:
        fail_msg("%s: value '%.*s' has type kind %d", path, ST_STR_FMT(vi->name),
                 (int)vi->type.kind);
    }
    (*files)++;
    st_free(fb.data);
}

static void check_case(const char *dir, size_t *models, size_t *pbs, size_t *tensors)
{
    char path[8192];
    file_buf fb;
    st_arena arena;
    st_error err = { 0 };
    onnx_model m;
    onnx_external ext;

    snprintf(path, sizeof path, "%s/model.onnx", dir);
    if (!read_whole(path, &fb))
        return;
    st_arena_init(&arena, 0);
    onnx_external_init(&ext, dir);
    if (onnx_decode_model(fb.data, fb.len, &arena, &m, &err) != ST_OK)
        fail_msg("%s: %s", path, err.msg);
    (*models)++;
    walk w = { &ext, &arena, 0, true, path };
    walk_graph(&w, m.graph);

    /* test_data_set_N/input_K.pb match the inputs that are not initializers */
    const onnx_value_info *ins[256];
    size_t n_ins = 0;
    for (size_t i = 0; i < m.graph->input_count && n_ins < 256; i++)
        if (!is_initializer(m.graph, m.graph->inputs[i].name))
            ins[n_ins++] = &m.graph->inputs[i];
    DIR *dd = opendir(dir);
    assert_non_null(dd);
    struct dirent *e;
    while ((e = readdir(dd)) != NULL) {
        if (strncmp(e->d_name, "test_data_set_", 14) != 0)
            continue;
        for (size_t i = 0;; i++) {
            snprintf(path, sizeof path, "%s/%s/input_%zu.pb", dir, e->d_name, i);
            if (!exists(path))
                break;
            if (i >= n_ins)
                fail_msg("%s: the model has only %zu inputs", path, n_ins);
            check_test_value(path, ins[i], &w, pbs);
        }
        for (size_t i = 0;; i++) {
            snprintf(path, sizeof path, "%s/%s/output_%zu.pb", dir, e->d_name, i);
            if (!exists(path))
                break;
            if (i >= m.graph->output_count)
                fail_msg("%s: the model has only %zu outputs", path, m.graph->output_count);
            check_test_value(path, &m.graph->outputs[i], &w, pbs);
        }
    }
    closedir(dd);
    *tensors += w.tensors;
    onnx_external_release(&ext);
    st_arena_free(&arena);
    st_free(fb.data);
}

static void test_testdata_all(void **state)
{
    (void)state;
    static const char *const sets[] = { "node", "pytorch-converted", "pytorch-operator",
                                        "simple" };
    if (!exists(TESTDATA_ROOT)) {
        print_message("# skipped: %s is absent (apt-get install libonnx-testdata)\n",
                      TESTDATA_ROOT);
        skip();
    }
    size_t models = 0, pbs = 0, tensors = 0;
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", TESTDATA_ROOT, sets[s]);
        DIR *d = opendir(dir);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char sub[4096 + 256];
            snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
            check_case(sub, &models, &pbs, &tensors);
        }
        closedir(d);
    }
    print_message("# libonnx-testdata: %zu models, %zu test-data files, %zu tensors "
                  "materialized\n",
                  models, pbs, tensors);
    assert_true(models > 1000);
    assert_true(pbs > 3000);
}

/* ---- (3) field values of known models --------------------------------------- */

static bool load_case_file(const char *rel, file_buf *fb)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", TESTDATA_ROOT, rel);
    return read_whole(path, fb);
}

static const float *materialize_f32(const onnx_tensor *t, st_arena *arena, size_t n)
{
    onnx_tensor_data td;
    st_error err = { 0 };
    assert_int_equal(onnx_tensor_materialize(t, NULL, arena, &td, &err), ST_OK);
    assert_int_equal(td.data_type, ST_DT_FLOAT32);
    assert_int_equal(td.elem_count, n);
    if (onnx_tensor_data_is_aligned(&td))
        return td.data;
    float *copy = st_arena_alloc(arena, td.byte_size, 64);
    assert_non_null(copy);
    memcpy(copy, td.data, td.byte_size);
    return copy;
}

static void test_known_add(void **state)
{
    (void)state;
    file_buf fm, f0, f1, fo;
    if (!load_case_file("node/test_add/model.onnx", &fm)) {
        print_message("# skipped: libonnx-testdata is absent\n");
        skip();
    }
    assert_true(load_case_file("node/test_add/test_data_set_0/input_0.pb", &f0));
    assert_true(load_case_file("node/test_add/test_data_set_0/input_1.pb", &f1));
    assert_true(load_case_file("node/test_add/test_data_set_0/output_0.pb", &fo));
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    onnx_model m;
    assert_int_equal(onnx_decode_model(fm.data, fm.len, &arena, &m, &err), ST_OK);
    assert_int_equal(m.ir_version, 7);
    assert_true(str_is(m.producer_name, "backend-test"));
    assert_int_equal(m.opset_count, 1);
    assert_true(str_is(m.opsets[0].domain, ""));
    assert_int_equal(m.opsets[0].version, 14);
    const onnx_graph *g = m.graph;
    assert_true(str_is(g->name, "test_add"));
    assert_int_equal(g->node_count, 1);
    assert_true(str_is(g->nodes[0].op_type, "Add"));
    assert_int_equal(g->nodes[0].input_count, 2);
    assert_true(str_is(g->nodes[0].inputs[0], "x"));
    assert_true(str_is(g->nodes[0].inputs[1], "y"));
    assert_int_equal(g->nodes[0].output_count, 1);
    assert_true(str_is(g->nodes[0].outputs[0], "sum"));
    assert_int_equal(g->input_count, 2);
    assert_int_equal(g->output_count, 1);
    for (size_t i = 0; i < 2; i++) {
        const onnx_type *ty = &g->inputs[i].type;
        assert_int_equal(ty->kind, ONNX_TYPE_TENSOR);
        assert_int_equal(ty->elem_type, ST_DT_FLOAT32);
        assert_true(ty->has_shape);
        assert_int_equal(ty->dim_count, 3);
        assert_int_equal(ty->dims[0].kind, ONNX_DIM_VALUE);
        assert_int_equal(ty->dims[0].value, 3);
        assert_int_equal(ty->dims[1].value, 4);
        assert_int_equal(ty->dims[2].value, 5);
    }
    onnx_tensor x, y, sum;
    assert_int_equal(onnx_decode_tensor(f0.data, f0.len, &arena, &x, &err), ST_OK);
    assert_int_equal(onnx_decode_tensor(f1.data, f1.len, &arena, &y, &err), ST_OK);
    assert_int_equal(onnx_decode_tensor(fo.data, fo.len, &arena, &sum, &err), ST_OK);
    assert_true(str_is(x.name, "x"));
    assert_int_equal(x.dim_count, 3);
    assert_int_equal(x.dims[2], 5);
    assert_int_equal(x.elem_count, 60);
    assert_int_equal(x.byte_size, 240);
    /* the reference output is the float32 sum of the inputs */
    const float *px = materialize_f32(&x, &arena, 60);
    const float *py = materialize_f32(&y, &arena, 60);
    const float *ps = materialize_f32(&sum, &arena, 60);
    for (size_t i = 0; i < 60; i++)
        assert_true(px[i] + py[i] == ps[i]);
    st_arena_free(&arena);
    st_free(fm.data);
    st_free(f0.data);
    st_free(f1.data);
    st_free(fo.data);
}

static void test_known_conv_if_strings(void **state)
{
    (void)state;
    file_buf fc, fi, fs, fsi;
    if (!load_case_file("node/test_conv_with_strides_padding/model.onnx", &fc)) {
        print_message("# skipped: libonnx-testdata is absent\n");
        skip();
    }
    assert_true(load_case_file("node/test_if/model.onnx", &fi));
    assert_true(load_case_file("simple/test_strnorm_model_monday_casesensintive_lower/model.onnx",
                               &fs));
    assert_true(load_case_file(
        "simple/test_strnorm_model_monday_casesensintive_lower/test_data_set_0/input_0.pb", &fsi));
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    onnx_model m;

    assert_int_equal(onnx_decode_model(fc.data, fc.len, &arena, &m, &err), ST_OK);
    const onnx_node *conv = &m.graph->nodes[0];
    assert_true(str_is(conv->op_type, "Conv"));
    assert_int_equal(conv->attr_count, 3);
    const onnx_attr *a = onnx_node_attr(conv, "pads");
    assert_non_null(a);
    assert_int_equal(a->type, ONNX_ATTR_INTS);
    assert_int_equal(a->int_count, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(a->ints[i], 1);
    a = onnx_node_attr(conv, "strides");
    assert_non_null(a);
    assert_int_equal(a->int_count, 2);
    assert_int_equal(a->ints[0], 2);
    assert_null(onnx_node_attr(conv, "dilations"));
    assert_int_equal(m.graph->outputs[0].type.dims[2].value, 4);

    assert_int_equal(onnx_decode_model(fi.data, fi.len, &arena, &m, &err), ST_OK);
    assert_true(str_is(m.graph->nodes[0].op_type, "If"));
    assert_int_equal(m.graph->inputs[0].type.elem_type, ST_DT_BOOL);
    assert_true(m.graph->inputs[0].type.has_shape);
    assert_int_equal(m.graph->inputs[0].type.dim_count, 0);
    a = onnx_node_attr(&m.graph->nodes[0], "then_branch");
    assert_non_null(a);
    assert_int_equal(a->type, ONNX_ATTR_GRAPH);
    assert_non_null(a->g);
    assert_true(str_is(a->g->name, "then_body"));
    const onnx_node *k = &a->g->nodes[0];
    assert_true(str_is(k->op_type, "Constant"));
    const onnx_attr *value = onnx_node_attr(k, "value");
    assert_non_null(value);
    assert_int_equal(value->type, ONNX_ATTR_TENSOR);
    assert_int_equal(value->t->dims[0], 5);
    const float *v = materialize_f32(value->t, &arena, 5);
    for (int i = 0; i < 5; i++)
        assert_true(v[i] == (float)(i + 1));

    assert_int_equal(onnx_decode_model(fs.data, fs.len, &arena, &m, &err), ST_OK);
    a = onnx_node_attr(&m.graph->nodes[0], "stopwords");
    assert_int_equal(a->type, ONNX_ATTR_STRINGS);
    assert_int_equal(a->string_count, 1);
    assert_true(str_is(a->strings[0], "monday"));
    a = onnx_node_attr(&m.graph->nodes[0], "case_change_action");
    assert_int_equal(a->type, ONNX_ATTR_STRING);
    assert_true(str_is(a->s, "LOWER"));
    a = onnx_node_attr(&m.graph->nodes[0], "is_case_sensitive");
    assert_int_equal(a->type, ONNX_ATTR_INT);
    assert_int_equal(a->i, 1);

    onnx_tensor t;
    onnx_tensor_data td;
    assert_int_equal(onnx_decode_tensor(fsi.data, fsi.len, &arena, &t, &err), ST_OK);
    assert_int_equal(t.data_type, ST_DT_STRING);
    assert_int_equal(onnx_tensor_materialize(&t, NULL, &arena, &td, &err), ST_OK);
    assert_int_equal(td.elem_count, 4);
    assert_null(td.data);
    assert_true(str_is(td.strings[0], "monday"));
    assert_true(str_is(td.strings[3], "thursday"));

    st_arena_free(&arena);
    st_free(fc.data);
    st_free(fi.data);
    st_free(fs.data);
    st_free(fsi.data);
}

static void test_sequence_optional_files(void **state)
{
    (void)state;
    file_buf fq, fo;
    if (!load_case_file("node/test_sequence_insert_at_back/test_data_set_0/input_0.pb", &fq)) {
        print_message("# skipped: libonnx-testdata is absent\n");
        skip();
    }
    assert_true(load_case_file("node/test_optional_has_element_empty/test_data_set_0/input_0.pb",
                               &fo));
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    onnx_value v;
    assert_int_equal(onnx_decode_sequence(fq.data, fq.len, &arena, &v, &err), ST_OK);
    assert_int_equal(v.kind, ONNX_VALUE_SEQUENCE);
    assert_int_equal(v.elem_kind, ONNX_VALUE_TENSOR);
    assert_int_equal(v.item_count, 3);
    assert_int_equal(v.items[0].tensor->dims[0], 4);
    assert_int_equal(v.items[2].tensor->dims[0], 2);
    assert_int_equal(onnx_decode_optional(fo.data, fo.len, &arena, &v, &err), ST_OK);
    assert_int_equal(v.kind, ONNX_VALUE_OPTIONAL);
    assert_int_equal(v.item_count, 0);
    assert_true(str_is(v.name, "optional_input"));
    st_arena_free(&arena);
    st_free(fq.data);
    st_free(fo.data);
}

/* ---- crafted model: content, truncation, flips, allocation failures ---------- */

static void test_crafted_model_content(void **state)
{
    (void)state;
    st_buf b = { 0 };
    build_model(&b);
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    onnx_model m;
    assert_int_equal(onnx_decode_model(b.data, b.len, &arena, &m, &err), ST_OK);
    assert_int_equal(m.ir_version, 8);
    assert_int_equal(m.model_version, 42);
    assert_true(str_is(m.producer_version, "1.0"));
    assert_int_equal(m.metadata_count, 1);
    assert_true(str_is(m.metadata_props[0].key, "author"));
    assert_int_equal(m.opsets[0].version, 13);
    const onnx_graph *g = m.graph;
    assert_int_equal(g->node_count, 2);
    const onnx_node *n0 = &g->nodes[0];
    assert_true(str_is(n0->name, "n0"));
    assert_int_equal(n0->input_count, 3);
    assert_int_equal(n0->inputs[2].len, 0);
    const onnx_attr *a = onnx_node_attr(n0, "kernel_shape");
    assert_int_equal(a->type, ONNX_ATTR_INTS);
    assert_int_equal(a->int_count, 2);
    assert_int_equal(a->ints[1], 3);
    a = onnx_node_attr(n0, "pads");
    assert_int_equal(a->int_count, 4);
    a = onnx_node_attr(n0, "alpha");
    assert_int_equal(a->type, ONNX_ATTR_FLOAT);
    assert_true(a->f == 0.5f);
    a = onnx_node_attr(n0, "mode");
    assert_int_equal(a->type, ONNX_ATTR_STRING);
    assert_true(str_is(a->s, "constant"));
    a = onnx_node_attr(n0, "scales");
    assert_int_equal(a->type, ONNX_ATTR_FLOATS);
    assert_int_equal(a->float_count, 2);
    assert_true(a->floats[1] == 2.5f);
    a = onnx_node_attr(n0, "value");
    assert_int_equal(a->type, ONNX_ATTR_TENSOR);
    assert_int_equal(a->t->float_data.count, 2);

    const onnx_attr *tb = onnx_node_attr(&g->nodes[1], "then_branch");
    assert_int_equal(tb->type, ONNX_ATTR_GRAPH);
    assert_true(str_is(tb->g->name, "then"));
    const onnx_tensor *ct = onnx_node_attr(&tb->g->nodes[0], "value")->t;
    onnx_tensor_data td;
    assert_int_equal(onnx_tensor_materialize(ct, NULL, &arena, &td, &err), ST_OK);
    assert_false(td.is_borrowed);
    assert_int_equal(((const int64_t *)td.data)[1], -6);

    assert_int_equal(g->initializer_count, 4);
    /* W: raw_data, zero-copy */
    assert_int_equal(onnx_tensor_materialize(&g->initializers[0], NULL, &arena, &td, &err),
                     ST_OK);
    assert_true(td.is_borrowed);
    assert_ptr_equal(td.data, g->initializers[0].raw_data.ptr);
    assert_true((const uint8_t *)td.data >= b.data && (const uint8_t *)td.data < b.data + b.len);
    /* B: one packed float_data chunk, zero-copy as well */
    assert_int_equal(onnx_tensor_materialize(&g->initializers[1], NULL, &arena, &td, &err),
                     ST_OK);
    assert_true(td.is_borrowed);
    float bf[2];
    memcpy(bf, td.data, sizeof bf);
    assert_true(bf[0] == 3.0f && bf[1] == 4.0f);
    /* I: unpacked int64_data, converted */
    assert_int_equal(onnx_tensor_materialize(&g->initializers[2], NULL, &arena, &td, &err),
                     ST_OK);
    assert_false(td.is_borrowed);
    assert_int_equal(td.align_bytes, 64);
    assert_int_equal(((const int64_t *)td.data)[0], 1);
    assert_int_equal(((const int64_t *)td.data)[1], -2);
    /* S: strings */
    assert_int_equal(onnx_tensor_materialize(&g->initializers[3], NULL, &arena, &td, &err),
                     ST_OK);
    assert_true(str_is(td.strings[0], "ab"));
    assert_int_equal(td.strings[1].len, 0);

    const onnx_type *xt = &g->inputs[0].type;
    assert_int_equal(xt->dim_count, 4);
    assert_int_equal(xt->dims[0].kind, ONNX_DIM_PARAM);
    assert_true(str_is(xt->dims[0].param, "N"));
    assert_int_equal(xt->dims[1].kind, ONNX_DIM_VALUE);
    assert_int_equal(xt->dims[1].value, 3);
    assert_int_equal(xt->dims[2].kind, ONNX_DIM_UNKNOWN);
    assert_int_equal(xt->dims[3].kind, ONNX_DIM_UNKNOWN);
    const onnx_type *zt = &g->outputs[1].type;
    assert_int_equal(zt->kind, ONNX_TYPE_SEQUENCE);
    assert_int_equal(zt->inner->kind, ONNX_TYPE_MAP);
    assert_int_equal(zt->inner->key_type, ST_DT_INT64);
    assert_int_equal(zt->inner->inner->kind, ONNX_TYPE_TENSOR);
    assert_int_equal(zt->inner->inner->elem_type, ST_DT_FLOAT32);
    assert_false(zt->inner->inner->has_shape);
    st_arena_free(&arena);
    st_buf_free(&b);
}

static void check_every_prefix_fails(const uint8_t *data, size_t len)
{
    for (size_t n = 0; n < len; n++) {
        st_arena arena;
        st_arena_init(&arena, 0);
        st_error err = { 0 };
        onnx_model m;
        /* an exact-size copy so ASan catches reads past the prefix */
        uint8_t *copy = st_malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, data, n);
        st_status rc = onnx_decode_model(copy, n, &arena, &m, &err);
        if (rc == ST_OK)
            fail_msg("prefix of %zu of %zu bytes decoded without error", n, len);
        assert_int_equal(rc, ST_ECORRUPT);
        assert_true(strncmp(err.msg, "onnx: ", 6) == 0);
        st_free(copy);
        st_arena_free(&arena);
    }
}

static void test_truncation(void **state)
{
    (void)state;
    st_buf b = { 0 };
    build_model(&b);
    check_every_prefix_fails(b.data, b.len);
    st_buf_free(&b);
    file_buf fb;
    static const char *const cases[] = { "node/test_add/model.onnx", "node/test_if/model.onnx",
                                         "node/test_conv_with_strides_padding/model.onnx" };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!load_case_file(cases[i], &fb))
            continue;
        check_every_prefix_fails(fb.data, fb.len);
        st_free(fb.data);
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void flip_and_decode(const uint8_t *data, size_t len, int rounds)
{
    uint8_t *copy = st_malloc(len);
    assert_non_null(copy);
    size_t ok = 0;
    for (int r = 0; r < rounds; r++) {
        memcpy(copy, data, len);
        int flips = 1 + (int)(rng() % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(rng() % len);
            if (rng() & 1)
                copy[at] ^= (uint8_t)(1u << (rng() % 8));
            else
                copy[at] = (uint8_t)rng();
        }
        st_arena arena;
        st_arena_init(&arena, 0);
        if (decode_all(copy, len, &arena) == ST_OK)
            ok++;
        st_arena_free(&arena);
    }
    print_message("# %d flipped variants of %zu bytes: %zu still decoded as a model\n", rounds,
                  len, ok);
    st_free(copy);
}

static void test_byte_flips(void **state)
{
    (void)state;
    st_buf b = { 0 };
    build_model(&b);
    flip_and_decode(b.data, b.len, 20000);
    st_buf_free(&b);
    file_buf fb;
    if (load_case_file("node/test_if/model.onnx", &fb)) {
        flip_and_decode(fb.data, fb.len, 5000);
        st_free(fb.data);
    }
    if (load_case_file("node/test_sequence_insert_at_back/test_data_set_0/input_0.pb", &fb)) {
        flip_and_decode(fb.data, fb.len, 5000);
        st_free(fb.data);
    }
}

/* Every allocation point fails once: the result is ST_ENOMEM, never a crash
 * or a leak (ASan), and the run eventually succeeds. */
static void test_alloc_failures(void **state)
{
    (void)state;
    st_buf b = { 0 };
    build_model(&b);
    size_t failures = 0;
    for (uint64_t n = 1;; n++) {
        st_arena arena;
        st_arena_init(&arena, 128); /* tiny chunks: many allocation points */
        st_error err = { 0 };
        onnx_model m;
        st_alloc_fail_after(n);
        st_status rc = onnx_decode_model(b.data, b.len, &arena, &m, &err);
        onnx_tensor_data td;
        if (rc == ST_OK) /* I: converted into the arena */
            rc = onnx_tensor_materialize(&m.graph->initializers[2], NULL, &arena, &td, &err);
        if (rc == ST_OK) /* S: string views array */
            rc = onnx_tensor_materialize(&m.graph->initializers[3], NULL, &arena, &td, &err);
        st_alloc_fail_reset();
        st_arena_free(&arena);
        if (rc == ST_OK)
            break;
        assert_int_equal(rc, ST_ENOMEM);
        assert_non_null(strstr(err.msg, "out of memory"));
        failures++;
        assert_true(n < 100000);
    }
    print_message("# %zu injected allocation failures, all reported as ST_ENOMEM\n", failures);
    assert_true(failures > 10);
    st_buf_free(&b);

    /* the external registry under failures */
    if (!exists(FIXTURE_DIR "/external.onnx"))
        return;
    file_buf fb;
    assert_true(read_whole(FIXTURE_DIR "/external.onnx", &fb));
    for (uint64_t n = 1;; n++) {
        st_arena arena;
        st_arena_init(&arena, 0);
        st_error err = { 0 };
        onnx_model m;
        onnx_external ext;
        onnx_external_init(&ext, FIXTURE_DIR);
        onnx_tensor_data td;
        st_alloc_fail_after(n);
        st_status rc = onnx_decode_model(fb.data, fb.len, &arena, &m, &err);
        for (size_t i = 0; rc == ST_OK && i < m.graph->initializer_count; i++)
            rc = onnx_tensor_materialize(&m.graph->initializers[i], &ext, &arena, &td, &err);
        st_alloc_fail_reset();
        onnx_external_release(&ext);
        st_arena_free(&arena);
        if (rc == ST_OK)
            break;
        assert_int_equal(rc, ST_ENOMEM);
        assert_true(n < 1000);
    }
    st_free(fb.data);
}

/* ---- malformed input: each check with its message ------------------------------ */

static st_status decode_buf_model(const st_buf *b, st_error *err)
{
    st_arena arena;
    st_arena_init(&arena, 0);
    onnx_model m;
    uint8_t *copy = st_malloc(b->len ? b->len : 1);
    assert_non_null(copy);
    if (b->len)
        memcpy(copy, b->data, b->len);
    st_status rc = onnx_decode_model(copy, b->len, &arena, &m, err);
    st_free(copy);
    st_arena_free(&arena);
    return rc;
}

static st_status decode_buf_tensor(const st_buf *b, st_error *err)
{
    st_arena arena;
    st_arena_init(&arena, 0);
    onnx_tensor t;
    uint8_t *copy = st_malloc(b->len ? b->len : 1);
    assert_non_null(copy);
    if (b->len)
        memcpy(copy, b->data, b->len);
    st_status rc = onnx_decode_tensor(copy, b->len, &arena, &t, err);
    st_free(copy);
    st_arena_free(&arena);
    return rc;
}

#define EXPECT_ERR(rc_expr, want_rc, substr)                                       \
    do {                                                                           \
        st_error e_ = { 0 };                                                       \
        st_error *xerr = &e_;                                                      \
        st_status got_ = (rc_expr);                                                \
        if (got_ != (want_rc) || strstr(e_.msg, (substr)) == NULL)                 \
            fail_msg("line %d: got %s \"%s\", want %s \"...%s...\"", __LINE__,     \
                     st_status_name(got_), e_.msg, st_status_name(want_rc), substr); \
    } while (0)

static void test_malformed_wire(void **state)
{
    (void)state;
    st_buf b = { 0 };
    static const uint8_t overlong[] = { 0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                        0x80, 0x80, 0x80, 0x80, 0x01 };
    w_raw(&b, overlong, sizeof overlong);
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT,
               "varint field 1 of ModelProto at byte 1 is longer than 10 bytes");
    st_buf_clear(&b);
    static const uint8_t tenth[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                     0xff, 0xff, 0xff, 0xff, 0x02 };
    w_raw(&b, tenth, sizeof tenth);
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT, "overflows 64 bits");
    st_buf_clear(&b);
    static const uint8_t max64[] = { 0x28, 0xff, 0xff, 0xff, 0xff, 0xff,
                                     0xff, 0xff, 0xff, 0xff, 0x01 };
    w_raw(&b, max64, sizeof max64); /* model_version = -1: valid varint */
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT, "model has no graph");
    st_buf_clear(&b);
    static const uint8_t cut[] = { 0x08, 0x80 };
    w_raw(&b, cut, sizeof cut);
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT,
               "truncated varint field 1 of ModelProto at byte 1");
    st_buf_clear(&b);
    w_tag(&b, 7, 3); /* start group */
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT, "group (wire type 3)");
    st_buf_clear(&b);
    w_tag(&b, 7, 4);
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT, "group (wire type 4)");
    st_buf_clear(&b);
    w_tag(&b, 7, 6);
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT, "invalid wire type 6");
    st_buf_clear(&b);
    w_tag(&b, 0, 0);
    w_varint(&b, 1);
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT, "invalid field number 0");
    st_buf_clear(&b);
    w_int(&b, 1, 8);
    w_tag(&b, 7, 2);
    w_varint(&b, 100);
    w_raw(&b, "ab", 2);
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT,
               "onnx: truncated length-delimited field 7 of ModelProto at byte 2 (needs 100 "
               "bytes, 2 left)");
    st_buf_clear(&b);
    w_tag(&b, 7, 1);
    w_raw(&b, "abc", 3);
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT, "truncated fixed64 field 7");
    st_buf_clear(&b);
    w_int(&b, 7, 1); /* graph as a varint */
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT,
               "field 7 (graph) of ModelProto at byte 0 has wire type 0, expected 2");
    st_buf_clear(&b);
    /* unknown fields of every allowed wire type are skipped */
    {
        st_buf g = { 0 }, op = { 0 };
        w_int(&b, 1000, 5);
        w_double(&b, 1001, 1.0);
        w_float(&b, 1002, 1.0f);
        w_str(&b, 1003, "skip me");
        w_int(&g, 99, 1);
        w_msg(&b, 7, &g);
        w_int(&op, 2, 1);
        w_msg(&b, 8, &op);
        EXPECT_ERR(decode_buf_model(&b, xerr), ST_OK, "");
    }
    st_buf_clear(&b);
    w_msg(&b, 7, &(st_buf){ 0 });
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT, "model has no opset_import");
    st_buf_clear(&b);
    {
        st_buf g = { 0 };
        w_msg(&b, 7, &g);
        w_msg(&b, 7, &g);
        EXPECT_ERR(decode_buf_model(&b, xerr), ST_ECORRUPT, "second graph");
    }
    st_buf_free(&b);
}

/* A model whose graph holds one node whose attribute "kp" holds tensor t. */
static void wrap_tensor_in_model(st_buf *model, st_buf *t)
{
    st_buf attr = { 0 }, node = { 0 }, g = { 0 }, op = { 0 };
    w_str(&attr, 1, "kp");
    w_msg(&attr, 5, t);
    w_str(&node, 3, "n0");
    w_str(&node, 4, "Conv");
    w_msg(&node, 5, &attr);
    w_str(&g, 2, "g");
    w_msg(&g, 1, &node);
    w_msg(model, 7, &g);
    w_int(&op, 2, 13);
    w_msg(model, 8, &op);
}

static void test_malformed_tensors(void **state)
{
    (void)state;
    st_buf t = { 0 }, model = { 0 };
    static const int64_t d3[] = { 3 }, dneg[] = { 2, -1 }, dbig[] = { 1LL << 40, 1LL << 40 },
                         dbig2[] = { 1LL << 31, 1LL << 31 };

    /* the message names graph, node and attribute */
    w_tensor_head(&t, "bad", 99, d3, 1);
    wrap_tensor_in_model(&model, &t);
    EXPECT_ERR(decode_buf_model(&model, xerr), ST_ECORRUPT,
               "onnx: graph 'g': node 0 'n0' (Conv): attribute 'kp': tensor has unknown "
               "data_type 99");
    st_buf_clear(&model);

    w_tensor_head(&t, "t", ST_DT_FLOAT32, dneg, 2);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT,
               "onnx: tensor 't': tensor has negative dim -1 at index 1");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_FLOAT32, dbig, 2);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_EOVERFLOW, "overflow");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_INT64, dbig2, 2);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_EOVERFLOW, "of int64 overflow");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_FLOAT32, d3, 1);
    w_bytes(&t, 9, "12345678", 8);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT,
               "raw_data has 8 bytes but dims [3] of float32 need 12");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_FLOAT32, d3, 1);
    w_float(&t, 4, 1.0f);
    w_float(&t, 4, 2.0f);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT,
               "has 2 values in float_data but dims [3] of float32 need 3");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_FLOAT32, d3, 1);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT, "dims [3] of float32 has no data");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_FLOAT32, d3, 1);
    w_packed_varints(&t, 7, d3, 1);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT,
               "has 1 values in int64_data, which does not carry float32");
    st_buf_clear(&t);
    w_int(&t, 1, 3);
    w_str(&t, 8, "t");
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT, "tensor has no data_type");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_STRING, d3, 1);
    w_bytes(&t, 9, "abc", 3);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT, "STRING tensor uses raw_data");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_FLOAT32, d3, 1);
    {
        st_buf seg = { 0 };
        w_int(&seg, 1, 0);
        w_msg(&t, 3, &seg);
    }
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_EUNSUPPORTED, "segment");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_FLOAT32, d3, 1);
    w_bytes(&t, 4, "1234567", 7);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT,
               "packed field 4 (float_data) of TensorProto at byte 7 has 7 bytes, not a "
               "multiple of 4");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_INT64, d3, 1);
    w_bytes(&t, 7, "\x01\x02\x83", 3);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT, "ends inside a varint");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_INT64, d3, 1);
    w_bytes(&t, 7, "\x01\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 13);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT, "longer than 10 bytes");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_FLOAT32, d3, 1);
    w_int(&t, 14, 1);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT, "external data has no location");
    st_buf_clear(&t);
    w_tensor_head(&t, "t", ST_DT_FLOAT32, d3, 1);
    w_int(&t, 14, 2);
    EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT, "unknown data_location 2");
    st_buf_clear(&t);
    {
        st_buf e = { 0 };
        w_tensor_head(&t, "t", ST_DT_FLOAT32, d3, 1);
        w_int(&t, 14, 1);
        w_str(&e, 1, "location");
        w_str(&e, 2, "w.bin");
        w_msg(&t, 13, &e);
        w_str(&e, 1, "length");
        w_str(&e, 2, "16");
        w_msg(&t, 13, &e);
        EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT,
                   "external data length 16 does not match dims [3] of float32 (12 bytes)");
        st_buf_clear(&t);
        w_tensor_head(&t, "t", ST_DT_FLOAT32, d3, 1);
        w_int(&t, 14, 1);
        w_str(&e, 1, "location");
        w_str(&e, 2, "w.bin");
        w_msg(&t, 13, &e);
        w_str(&e, 1, "offset");
        w_str(&e, 2, "-4");
        w_msg(&t, 13, &e);
        EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT,
                   "external data offset '-4' is not a decimal number");
        st_buf_clear(&t);
    }
    {   /* long shapes are cut in messages */
        int64_t ones[60];
        for (size_t i = 0; i < 60; i++)
            ones[i] = 1;
        w_tensor_head(&t, "t", ST_DT_FLOAT32, ones, 60);
        w_bytes(&t, 9, "abc", 3);
        EXPECT_ERR(decode_buf_tensor(&t, xerr), ST_ECORRUPT, "1,1,...] of float32 need 4");
        st_buf_clear(&t);
    }
    /* an attribute whose type promises a tensor it does not hold */
    {
        st_buf attr = { 0 }, node = { 0 }, g = { 0 }, op = { 0 };
        w_str(&attr, 1, "value");
        w_int(&attr, 20, ONNX_ATTR_TENSOR);
        w_str(&node, 4, "Constant");
        w_msg(&node, 5, &attr);
        w_msg(&g, 1, &node);
        w_msg(&model, 7, &g);
        w_int(&op, 2, 13);
        w_msg(&model, 8, &op);
        EXPECT_ERR(decode_buf_model(&model, xerr), ST_ECORRUPT,
                   "node 0 '' (Constant): attribute 'value': attribute of type TENSOR at byte 16 "
                   "has no value");
        st_buf_clear(&model);
    }
    st_buf_free(&t);
    st_buf_free(&model);
}

/* Builds `levels` Ifs nested through then_branch. */
static void build_nested(st_buf *model, int levels)
{
    st_buf g = { 0 }, op = { 0 };
    w_str(&g, 2, "leaf");
    for (int i = 0; i < levels; i++) {
        st_buf attr = { 0 }, node = { 0 }, outer = { 0 };
        w_str(&attr, 1, "then_branch");
        w_int(&attr, 20, 5);
        w_msg(&attr, 6, &g);
        w_str(&node, 4, "If");
        w_msg(&node, 5, &attr);
        w_msg(&outer, 1, &node);
        g = outer;
    }
    w_msg(model, 7, &g);
    w_int(&op, 2, 13);
    w_msg(model, 8, &op);
}

static void test_nesting_limit(void **state)
{
    (void)state;
    st_buf b = { 0 };
    build_nested(&b, 30); /* 2 + 3 x 30 = 92 messages deep */
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_OK, "");
    st_buf_clear(&b);
    build_nested(&b, 40);
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ELIMIT, "nested deeper than 100 messages");
    st_buf_clear(&b);
    build_nested(&b, 2000); /* far deeper: still a clean error, no stack overflow */
    EXPECT_ERR(decode_buf_model(&b, xerr), ST_ELIMIT, "nested deeper");
    st_buf_free(&b);
}

/* ---- typed fields and materialize conversions --------------------------------- */

static onnx_tensor_data decode_materialize(st_buf *t, st_arena *arena, onnx_tensor *out)
{
    st_error err = { 0 };
    onnx_tensor_data td;
    if (onnx_decode_tensor(t->data, t->len, arena, out, &err) != ST_OK)
        fail_msg("decode: %s", err.msg);
    if (onnx_tensor_materialize(out, NULL, arena, &td, &err) != ST_OK)
        fail_msg("materialize: %s", err.msg);
    st_buf_clear(t);
    return td;
}

static void test_typed_fields(void **state)
{
    (void)state;
    st_arena arena;
    st_arena_init(&arena, 0);
    st_buf t = { 0 };
    onnx_tensor ten;
    onnx_tensor_data td;
    static const int64_t d2[] = { 2 }, d3[] = { 3 }, d0[] = { 0 };

    /* int32_data carries the narrow types (values wrap to the width) */
    static const int64_t i8v[] = { -1, 127, -128 };
    w_tensor_head(&t, "i8", ST_DT_INT8, d3, 1);
    w_packed_varints(&t, 5, i8v, 3);
    td = decode_materialize(&t, &arena, &ten);
    assert_int_equal(td.byte_size, 3);
    assert_memory_equal(td.data, "\xff\x7f\x80", 3);
    static const int64_t u8v[] = { 0, 200, 255 };
    w_tensor_head(&t, "u8", ST_DT_UINT8, d3, 1);
    w_packed_varints(&t, 5, u8v, 3);
    td = decode_materialize(&t, &arena, &ten);
    assert_memory_equal(td.data, "\x00\xc8\xff", 3);
    static const int64_t i16v[] = { -300, 300, 0 };
    w_tensor_head(&t, "i16", ST_DT_INT16, d3, 1);
    w_packed_varints(&t, 5, i16v, 3);
    td = decode_materialize(&t, &arena, &ten);
    assert_int_equal(((const int16_t *)td.data)[0], -300);
    assert_int_equal(((const int16_t *)td.data)[1], 300);
    w_tensor_head(&t, "u16", ST_DT_UINT16, d2, 1);
    w_int(&t, 5, 65535);
    w_int(&t, 5, 1);
    td = decode_materialize(&t, &arena, &ten);
    assert_int_equal(((const uint16_t *)td.data)[0], 65535);
    static const int64_t boolv[] = { 0, 5, 1 };
    w_tensor_head(&t, "b", ST_DT_BOOL, d3, 1);
    w_packed_varints(&t, 5, boolv, 3);
    td = decode_materialize(&t, &arena, &ten);
    assert_memory_equal(td.data, "\x00\x01\x01", 3);
    w_tensor_head(&t, "h", ST_DT_FLOAT16, d2, 1);
    w_int(&t, 5, 0x3c00); /* 1.0 */
    w_int(&t, 5, 0xc000); /* -2.0 */
    td = decode_materialize(&t, &arena, &ten);
    assert_true(st_half_to_float(((const uint16_t *)td.data)[0]) == 1.0f);
    assert_true(st_half_to_float(((const uint16_t *)td.data)[1]) == -2.0f);
    static const int64_t i32v[] = { -2147483648LL, 2147483647, -5 };
    w_tensor_head(&t, "i32", ST_DT_INT32, d3, 1);
    w_packed_varints(&t, 5, i32v, 3);
    td = decode_materialize(&t, &arena, &ten);
    assert_int_equal(((const int32_t *)td.data)[0], INT32_MIN);
    assert_int_equal(((const int32_t *)td.data)[2], -5);
    /* uint64_data carries uint32 and uint64 */
    w_tensor_head(&t, "u32", ST_DT_UINT32, d2, 1);
    w_int(&t, 11, 4294967295LL);
    w_int(&t, 11, 7);
    td = decode_materialize(&t, &arena, &ten);
    assert_int_equal(((const uint32_t *)td.data)[0], UINT32_MAX);
    w_tensor_head(&t, "u64", ST_DT_UINT64, d2, 1);
    w_int(&t, 11, -1);
    w_int(&t, 11, 9);
    td = decode_materialize(&t, &arena, &ten);
    assert_true(((const uint64_t *)td.data)[0] == UINT64_MAX);
    /* int64_data packed and unpacked in one tensor */
    static const int64_t i64v[] = { 1, -2 };
    w_tensor_head(&t, "i64", ST_DT_INT64, d3, 1);
    w_packed_varints(&t, 7, i64v, 2);
    w_int(&t, 7, INT64_MIN);
    td = decode_materialize(&t, &arena, &ten);
    assert_int_equal(ten.int64_data.occurrences, 2);
    assert_int_equal(((const int64_t *)td.data)[1], -2);
    assert_true(((const int64_t *)td.data)[2] == INT64_MIN);
    /* double_data unpacked, converted */
    w_tensor_head(&t, "f64", ST_DT_FLOAT64, d2, 1);
    w_double(&t, 10, 0.25);
    w_double(&t, 10, -1e300);
    td = decode_materialize(&t, &arena, &ten);
    assert_false(td.is_borrowed);
    assert_true(((const double *)td.data)[1] == -1e300);
    /* float_data unpacked: converted, 64-byte aligned */
    w_tensor_head(&t, "f32", ST_DT_FLOAT32, d2, 1);
    w_float(&t, 4, 1.5f);
    w_float(&t, 4, -0.0f);
    td = decode_materialize(&t, &arena, &ten);
    assert_false(td.is_borrowed);
    assert_int_equal(td.align_bytes, 64);
    assert_true(((const float *)td.data)[0] == 1.5f);
    /* raw_data at byte 6 of a 16-aligned block: borrowed, 2-byte aligned */
    w_int(&t, 2, ST_DT_FLOAT32);
    w_int(&t, 1, 3);
    w_bytes(&t, 9, "\0\0\x80?\0\0\0@\0\0@@", 12);
    td = decode_materialize(&t, &arena, &ten);
    assert_true(td.is_borrowed);
    assert_int_equal(td.align_bytes, 2);
    assert_false(onnx_tensor_data_is_aligned(&td));
    float f3[3];
    memcpy(f3, td.data, sizeof f3);
    assert_true(f3[0] == 1.0f && f3[1] == 2.0f && f3[2] == 3.0f);
    /* scalar and empty tensors */
    w_tensor_head(&t, "s", ST_DT_INT64, NULL, 0);
    w_int(&t, 7, 42);
    td = decode_materialize(&t, &arena, &ten);
    assert_int_equal(ten.dim_count, 0);
    assert_int_equal(td.elem_count, 1);
    assert_int_equal(*(const int64_t *)td.data, 42);
    w_tensor_head(&t, "e", ST_DT_FLOAT32, d0, 1);
    td = decode_materialize(&t, &arena, &ten);
    assert_int_equal(td.elem_count, 0);
    assert_int_equal(td.byte_size, 0);
    assert_null(td.data);
    /* known ONNX types Stratus does not run: decode, refuse to materialize */
    st_error err = { 0 };
    w_tensor_head(&t, "bf", 16, d2, 1);
    w_int(&t, 5, 0x3f80);
    w_int(&t, 5, 0x4000);
    assert_int_equal(onnx_decode_tensor(t.data, t.len, &arena, &ten, &err), ST_OK);
    assert_int_equal(onnx_tensor_materialize(&ten, NULL, &arena, &td, &err), ST_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "onnx: tensor 'bf': data type bfloat16 is not supported"));
    st_buf_clear(&t);
    w_tensor_head(&t, "c64", 14, d2, 1);
    for (int i = 0; i < 4; i++)
        w_float(&t, 4, (float)i);
    assert_int_equal(onnx_decode_tensor(t.data, t.len, &arena, &ten, &err), ST_OK);
    assert_int_equal(ten.byte_size, 16);
    st_buf_clear(&t);
    assert_true(strcmp(onnx_data_type_name(19), "float8e5m2") == 0);
    assert_true(strcmp(onnx_data_type_name(1), "float32") == 0);
    assert_true(strcmp(onnx_data_type_name(99), "unknown") == 0);
    st_buf_free(&t);
    st_arena_free(&arena);
}

static void test_crafted_values(void **state)
{
    (void)state;
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    st_buf s = { 0 }, t = { 0 }, map = { 0 }, vals = { 0 }, opt = { 0 };
    static const int64_t d1[] = { 1 }, keys[] = { 3, 4 };
    onnx_value v;

    /* sequence of two maps int64 -> tensor, like ZipMap output */
    for (int k = 0; k < 2; k++) {
        w_int(&map, 2, ST_DT_INT64);
        w_packed_varints(&map, 3, keys, 2);
        w_int(&vals, 2, ONNX_VALUE_TENSOR);
        for (int i = 0; i < 2; i++) {
            w_tensor_head(&t, NULL, ST_DT_FLOAT32, d1, 1);
            w_float(&t, 4, (float)(k * 10 + i));
            w_msg(&vals, 3, &t);
        }
        w_msg(&map, 5, &vals);
        w_msg(&s, 6, &map);
    }
    w_str(&s, 1, "zipmap");
    w_int(&s, 2, ONNX_VALUE_MAP);
    assert_int_equal(onnx_decode_sequence(s.data, s.len, &arena, &v, &err), ST_OK);
    assert_int_equal(v.elem_kind, ONNX_VALUE_MAP);
    assert_int_equal(v.item_count, 2);
    assert_int_equal(v.items[1].kind, ONNX_VALUE_MAP);
    assert_int_equal(v.items[1].key_count, 2);
    assert_int_equal(v.items[1].keys[1], 4);
    assert_int_equal(v.items[1].map_values->item_count, 2);
    assert_non_null(v.items[1].map_values->items[1].tensor);

    /* a sequence that says TENSOR but holds a map */
    st_buf_clear(&s);
    w_int(&map, 2, ST_DT_INT64);
    w_msg(&s, 6, &map);
    w_int(&s, 2, ONNX_VALUE_TENSOR);
    EXPECT_ERR(onnx_decode_sequence(s.data, s.len, &arena, &v, xerr), ST_ECORRUPT,
               "holds a value of kind 4 but its elem_type is 1");
    /* a map with 2 keys and no values */
    st_buf_clear(&s);
    w_int(&map, 2, ST_DT_INT64);
    w_packed_varints(&map, 3, keys, 2);
    w_msg(&s, 6, &map);
    EXPECT_ERR(onnx_decode_sequence(s.data, s.len, &arena, &v, xerr), ST_ECORRUPT,
               "has 2 keys but 0 values");

    /* optional holding a tensor; an optional with two values */
    w_tensor_head(&t, "x", ST_DT_INT64, d1, 1);
    w_int(&t, 7, 5);
    w_msg(&opt, 3, &t);
    w_int(&opt, 2, ONNX_VALUE_TENSOR);
    assert_int_equal(onnx_decode_optional(opt.data, opt.len, &arena, &v, &err), ST_OK);
    assert_int_equal(v.item_count, 1);
    assert_int_equal(v.elem_kind, ONNX_VALUE_TENSOR);
    assert_true(str_is(v.items[0].tensor->name, "x"));
    w_tensor_head(&t, "y", ST_DT_INT64, d1, 1);
    w_int(&t, 7, 6);
    w_msg(&opt, 3, &t);
    EXPECT_ERR(onnx_decode_optional(opt.data, opt.len, &arena, &v, xerr), ST_ECORRUPT,
               "has two values");

    st_buf_free(&s);
    st_buf_free(&opt);
    st_arena_free(&arena);
}

/* typed.onnx: values written by onnx.helper into the typed repeated fields */
static void test_typed_fixture(void **state)
{
    (void)state;
    file_buf fb;
    if (!read_whole(FIXTURE_DIR "/typed.onnx", &fb)) {
        print_message("# skipped: run /usr/bin/python3 tests/fixtures/make_onnx_external.py\n");
        skip();
    }
    static const float f32[] = { 1.5f, -2.0f, 3.25f };
    static const uint8_t u8[] = { 0, 200, 255 };
    static const int8_t i8[] = { -128, 0, 127 };
    static const uint16_t u16[] = { 0, 40000, 65535 };
    static const int16_t i16[] = { -32768, 1, 32767 };
    static const int32_t i32[] = { INT32_MIN, 0, INT32_MAX };
    static const int64_t i64[] = { INT64_MIN, 0, INT64_MAX };
    static const uint8_t b8[] = { 1, 0, 1 };
    static const uint16_t f16[] = { 0x3e00, 0xc000, 0x3400 };
    static const double f64[] = { 0.1, -1e300, 2.0 };
    static const uint32_t u32[] = { 0, 7, UINT32_MAX };
    static const uint64_t u64[] = { 0, 7, UINT64_MAX };
    static const struct {
        const char *name;
        int32_t data_type;
        const void *values;
    } want[] = {
        { "f32", ST_DT_FLOAT32, f32 }, { "u8", ST_DT_UINT8, u8 },   { "i8", ST_DT_INT8, i8 },
        { "u16", ST_DT_UINT16, u16 },  { "i16", ST_DT_INT16, i16 }, { "i32", ST_DT_INT32, i32 },
        { "i64", ST_DT_INT64, i64 },   { "str", ST_DT_STRING, NULL }, { "bool", ST_DT_BOOL, b8 },
        { "f16", ST_DT_FLOAT16, f16 }, { "f64", ST_DT_FLOAT64, f64 }, { "u32", ST_DT_UINT32, u32 },
        { "u64", ST_DT_UINT64, u64 },
    };
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    onnx_model m;
    assert_int_equal(onnx_decode_model(fb.data, fb.len, &arena, &m, &err), ST_OK);
    assert_int_equal(m.graph->node_count, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < m.graph->node_count; i++) {
        const onnx_attr *a = onnx_node_attr(&m.graph->nodes[i], "value");
        assert_non_null(a);
        assert_int_equal(a->type, ONNX_ATTR_TENSOR);
        assert_true(str_is(a->t->name, want[i].name));
        assert_int_equal(a->t->data_type, want[i].data_type);
        assert_false(a->t->has_raw_data);
        onnx_tensor_data td;
        assert_int_equal(onnx_tensor_materialize(a->t, NULL, &arena, &td, &err), ST_OK);
        assert_int_equal(td.elem_count, 3);
        if (want[i].data_type == ST_DT_STRING) {
            assert_true(str_is(td.strings[0], "a"));
            assert_true(str_is(td.strings[1], "bc"));
            assert_int_equal(td.strings[2].len, 0);
            continue;
        }
        size_t bytes = 3 * st_dtype_size((st_dtype)want[i].data_type);
        assert_int_equal(td.byte_size, bytes);
        if (memcmp(td.data, want[i].values, bytes) != 0)
            fail_msg("tensor %s: values differ", want[i].name);
    }
    st_arena_free(&arena);
    st_free(fb.data);
}

/* ---- (5) external data ---------------------------------------------------------- */

static void test_external_data(void **state)
{
    (void)state;
    if (!exists(FIXTURE_DIR "/external.onnx")) {
        print_message("# skipped: run /usr/bin/python3 tests/fixtures/make_onnx_external.py\n");
        skip();
    }
    file_buf fb, fe;
    assert_true(read_whole(FIXTURE_DIR "/external.onnx", &fb));
    assert_true(read_whole(FIXTURE_DIR "/external_escape.onnx", &fe));
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    onnx_model m;
    onnx_external ext;
    onnx_tensor_data td;
    onnx_external_init(&ext, FIXTURE_DIR);

    assert_int_equal(onnx_decode_model(fb.data, fb.len, &arena, &m, &err), ST_OK);
    assert_int_equal(m.graph->initializer_count, 2);
    const onnx_tensor *w = &m.graph->initializers[0], *b = &m.graph->initializers[1];
    assert_true(str_is(w->name, "W"));
    assert_int_equal(w->data_location, ONNX_LOCATION_EXTERNAL);
    assert_true(str_is(w->ext_location, "external.bin"));
    assert_int_equal(b->ext_offset, 24);
    assert_true(b->has_ext_length);
    assert_int_equal(b->ext_length, 24);

    assert_int_equal(onnx_tensor_materialize(w, &ext, &arena, &td, &err), ST_OK);
    assert_true(td.is_borrowed);
    assert_int_equal(td.byte_size, 24);
    assert_true(onnx_tensor_data_is_aligned(&td)); /* page-aligned mapping */
    for (int i = 0; i < 6; i++)
        assert_true(((const float *)td.data)[i] == (float)i);
    assert_int_equal(onnx_tensor_materialize(b, &ext, &arena, &td, &err), ST_OK);
    assert_int_equal(((const int64_t *)td.data)[2], 30);
    assert_int_equal(ext.file_count, 1); /* one mapping for both tensors */

    /* no registry: refused cleanly */
    EXPECT_ERR(onnx_tensor_materialize(w, NULL, &arena, &td, xerr), ST_EUNSUPPORTED,
               "no model folder was given");
    /* hostile locations, on a copy of the decoded tensor */
    onnx_tensor bad = *w;
    bad.ext_location = ST_STR("/etc/passwd");
    EXPECT_ERR(onnx_tensor_materialize(&bad, &ext, &arena, &td, xerr), ST_EINVAL,
               "is an absolute path");
    bad.ext_location = ST_STR("sub/../../external.bin");
    EXPECT_ERR(onnx_tensor_materialize(&bad, &ext, &arena, &td, xerr), ST_EINVAL,
               "has a '..' component");
    bad.ext_location = ST_STR("..\\external.bin");
    EXPECT_ERR(onnx_tensor_materialize(&bad, &ext, &arena, &td, xerr), ST_EINVAL,
               "has a '..' component");
    bad.ext_location = ST_STR("missing.bin");
    EXPECT_ERR(onnx_tensor_materialize(&bad, &ext, &arena, &td, xerr), ST_ENOTFOUND,
               "cannot open external data file 'missing.bin'");
    bad.ext_location = ST_STR(".");
    EXPECT_ERR(onnx_tensor_materialize(&bad, &ext, &arena, &td, xerr), ST_EINVAL,
               "is not a regular file");
    bad = *b;
    bad.ext_offset = 40; /* 40 + 24 > 48 */
    EXPECT_ERR(onnx_tensor_materialize(&bad, &ext, &arena, &td, xerr), ST_ECORRUPT,
               "external data range [40, +24) is past the end of 'external.bin' (48 bytes)");
    bad.ext_offset = UINT64_MAX;
    EXPECT_ERR(onnx_tensor_materialize(&bad, &ext, &arena, &td, xerr), ST_ECORRUPT,
               "past the end");
    onnx_external_release(&ext);

    /* the fixture whose location is ../external.bin */
    onnx_external_init(&ext, FIXTURE_DIR);
    assert_int_equal(onnx_decode_model(fe.data, fe.len, &arena, &m, &err), ST_OK);
    EXPECT_ERR(onnx_tensor_materialize(&m.graph->initializers[0], &ext, &arena, &td, xerr),
               ST_EINVAL, "onnx: tensor 'W': external data location '../external.bin' has a "
                          "'..' component");
    onnx_external_release(&ext);

    /* a symlink inside the folder that points outside of it */
    char dir[] = "/tmp/stratus-onnx-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char link[sizeof dir + 32];
    snprintf(link, sizeof link, "%s/escape.bin", dir);
    char target[4096];
    assert_non_null(realpath(FIXTURE_DIR "/external.bin", target));
    assert_int_equal(symlink(target, link), 0);
    onnx_external_init(&ext, dir);
    bad = *w;
    bad.ext_location = ST_STR("escape.bin");
    EXPECT_ERR(onnx_tensor_materialize(&bad, &ext, &arena, &td, xerr), ST_EINVAL,
               "leaves the model folder");
    onnx_external_release(&ext);
    unlink(link);
    rmdir(dir);

    onnx_external_init(&ext, "/nonexistent/stratus");
    EXPECT_ERR(onnx_tensor_materialize(w, &ext, &arena, &td, xerr), ST_ENOTFOUND,
               "cannot open model folder");
    onnx_external_release(&ext);

    st_arena_free(&arena);
    st_free(fb.data);
    st_free(fe.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crafted_model_content),
        cmocka_unit_test(test_malformed_wire),
        cmocka_unit_test(test_malformed_tensors),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_typed_fields),
        cmocka_unit_test(test_crafted_values),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_byte_flips),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_typed_fixture),
        cmocka_unit_test(test_external_data),
        cmocka_unit_test(test_known_add),
        cmocka_unit_test(test_known_conv_if_strings),
        cmocka_unit_test(test_sequence_optional_files),
        cmocka_unit_test(test_testdata_all),
    };
    return cmocka_run_group_tests_name("onnx_pb", tests, NULL, NULL);
}
