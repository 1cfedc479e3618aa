/* inspect.c - describe a model without running it: opsets, inputs and
 * outputs, operator histogram (with what is unsupported), parameters. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>

#include "engine/eng_int.h"
#include "engine/gbm_int.h"

typedef struct op_tally {
    eng_op_use *ops;
    size_t n, cap;
    st_arena *arena;
    const onnx_model *model;
} op_tally;

static int opset_for(const onnx_model *m, st_str domain)
{
    bool want_default = domain.len == 0 || st_str_eq_c(domain, "ai.onnx");
    for (size_t i = 0; i < m->opset_count; i++) {
        st_str d = m->opsets[i].domain;
        bool is_default = d.len == 0 || st_str_eq_c(d, "ai.onnx");
        if (want_default ? is_default : st_str_eq(d, domain))
            return (int)m->opsets[i].version;
    }
    return -1;
}

static st_status tally_node(op_tally *t, const onnx_node *n)
{
    for (size_t i = 0; i < t->n; i++)
        if (st_str_eq_c(n->op_type, t->ops[i].op_type) && st_str_eq_c(n->domain, t->ops[i].domain)) {
            t->ops[i].count++;
            return ST_OK;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        eng_op_use *ops = st_arena_alloc(t->arena, cap * sizeof *ops, 8);
        if (!ops)
            return ST_ENOMEM;
        if (t->n)
            memcpy(ops, t->ops, t->n * sizeof *ops);
        t->ops = ops;
        t->cap = cap;
    }
    eng_op_use *u = &t->ops[t->n++];
    u->domain = st_arena_strndup(t->arena, n->domain.ptr, n->domain.len);
    u->op_type = st_arena_strndup(t->arena, n->op_type.ptr, n->op_type.len);
    u->count = 1;
    u->is_supported = eng_op_find(n->domain, n->op_type, opset_for(t->model, n->domain)) != NULL;
    return u->domain && u->op_type ? ST_OK : ST_ENOMEM;
}

static st_status tally_graph(op_tally *t, const onnx_graph *g, int depth)
{
    if (depth > 32)
        return ST_OK;
    for (size_t i = 0; i < g->node_count; i++) {
        const onnx_node *n = &g->nodes[i];
        st_status s = tally_node(t, n);
        if (s != ST_OK)
            return s;
        for (size_t a = 0; a < n->attr_count; a++) {
            const onnx_attr *at = &n->attrs[a];
            if (at->g && (s = tally_graph(t, at->g, depth + 1)) != ST_OK)
                return s;
            for (size_t j = 0; j < at->graph_count; j++)
                if ((s = tally_graph(t, &at->graphs[j], depth + 1)) != ST_OK)
                    return s;
        }
    }
    return ST_OK;
}

static size_t count_nodes(const onnx_graph *g, int depth)
{
    size_t n = g->node_count;
    if (depth > 32)
        return n;
    for (size_t i = 0; i < g->node_count; i++)
        for (size_t a = 0; a < g->nodes[i].attr_count; a++) {
            const onnx_attr *at = &g->nodes[i].attrs[a];
            if (at->g)
                n += count_nodes(at->g, depth + 1);
            for (size_t j = 0; j < at->graph_count; j++)
                n += count_nodes(&at->graphs[j], depth + 1);
        }
    return n;
}

static int cmp_use(const void *a, const void *b)
{
    const eng_op_use *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->op_type, y->op_type);
}

static void fill_io(eng_io *io, const onnx_value_info *vi, st_arena *arena)
{
    memset(io, 0, sizeof *io);
    io->name = st_arena_strndup(arena, vi->name.ptr, vi->name.len);
    io->rank = -1;
    const onnx_type *t = &vi->type;
    if (t->kind != ONNX_TYPE_TENSOR)
        return;
    io->dtype = st_dtype_is_valid(t->elem_type) ? (st_dtype)t->elem_type : ST_DT_UNDEFINED;
    if (!t->has_shape || t->dim_count > ENG_MAX_RANK)
        return;
    io->rank = (int)t->dim_count;
    for (size_t i = 0; i < t->dim_count; i++) {
        io->dims[i] = t->dims[i].kind == ONNX_DIM_VALUE ? t->dims[i].value : -1;
        if (t->dims[i].kind == ONNX_DIM_PARAM)
            io->dim_names[i] = st_arena_strndup(arena, t->dims[i].param.ptr, t->dims[i].param.len);
    }
}

static bool is_initializer(const onnx_graph *g, st_str name)
{
    for (size_t i = 0; i < g->initializer_count; i++)
        if (st_str_eq(g->initializers[i].name, name))
            return true;
    return false;
}

st_status eng_inspect_file(const char *path, st_arena *arena, eng_model_info *out, st_error *err)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return st_fail(err, ST_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return st_fail(err, ST_EINVAL, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    void *map = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (map == MAP_FAILED)
        return st_fail(err, ST_EIO, "%s: cannot map: %s", path, strerror(errno));
    static const uint8_t empty[1];
    onnx_model m;
    st_status s;
    if (map && gbm_detect(map, len) != GBM_FORMAT_NONE) {
        if ((s = gbm_inspect(map, len, arena, out, err)) != ST_OK)
            st_fail_wrap(err, s, "%s", path);
        goto done;
    }
    s = onnx_decode_model(map ? map : empty, len, arena, &m, err);
    if (s != ST_OK) {
        st_fail_wrap(err, s, "%s", path);
        goto done;
    }
    /* Copy every string we keep out of the mapping before unmapping it. */
    out->format = "onnx";
    out->ir_version = m.ir_version;
    char producer[160];
    snprintf(producer, sizeof producer, "%.*s%s%.*s", (int)(m.producer_name.len > 70 ? 70 : m.producer_name.len),
             m.producer_name.ptr, m.producer_version.len ? " " : "",
             (int)(m.producer_version.len > 70 ? 70 : m.producer_version.len), m.producer_version.ptr);
    out->producer = st_arena_strndup(arena, producer, strlen(producer));
    out->opsets = st_arena_calloc(arena, m.opset_count + 1, sizeof *out->opsets, 8);
    const onnx_graph *g = m.graph;
    out->inputs = st_arena_calloc(arena, g->input_count + 1, sizeof *out->inputs, 8);
    out->outputs = st_arena_calloc(arena, g->output_count + 1, sizeof *out->outputs, 8);
    if (!out->opsets || !out->inputs || !out->outputs || !out->producer) {
        s = st_fail(err, ST_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < m.opset_count; i++) {
        out->opsets[i].domain = st_arena_strndup(arena, m.opsets[i].domain.ptr, m.opsets[i].domain.len);
        out->opsets[i].version = m.opsets[i].version;
    }
    out->n_opsets = m.opset_count;
    for (size_t i = 0; i < g->input_count; i++)
        if (!is_initializer(g, g->inputs[i].name))
            fill_io(&out->inputs[out->n_inputs++], &g->inputs[i], arena);
    for (size_t i = 0; i < g->output_count; i++)
        fill_io(&out->outputs[out->n_outputs++], &g->outputs[i], arena);
    op_tally t = { .arena = arena, .model = &m };
    if ((s = tally_graph(&t, g, 0)) != ST_OK) {
        st_fail(err, s, "out of memory");
        goto done;
    }
    qsort(t.ops, t.n, sizeof *t.ops, cmp_use);
    out->ops = t.ops;
    out->n_ops = t.n;
    for (size_t i = 0; i < t.n; i++)
        out->n_unsupported += !t.ops[i].is_supported;
    out->n_nodes = count_nodes(g, 0);
    for (size_t i = 0; i < g->initializer_count; i++) {
        out->n_parameters += g->initializers[i].elem_count;
        out->parameter_bytes += g->initializers[i].byte_size;
    }
done:
    if (map)
        munmap(map, len);
    return s;
}

st_status eng_tensor_from_pb(const uint8_t *data, size_t len, st_arena *arena, eng_tensor *out, const char **name,
                             st_error *err)
{
    onnx_tensor pt;
    onnx_tensor_data td;
    st_status s = onnx_decode_tensor(data, len, arena, &pt, err);
    if (s != ST_OK)
        return s;
    if (!st_dtype_is_valid(pt.data_type) || pt.data_type == ST_DT_UNDEFINED)
        return st_fail(err, ST_EUNSUPPORTED, "tensor of type %s is not supported", onnx_data_type_name(pt.data_type));
    if (pt.dim_count > ENG_MAX_RANK)
        return st_fail(err, ST_EUNSUPPORTED, "tensor of rank %zu is above %d", pt.dim_count, ENG_MAX_RANK);
    if ((s = onnx_tensor_materialize(&pt, NULL, arena, &td, err)) != ST_OK)
        return s;
    *out = eng_tensor_make((st_dtype)pt.data_type, pt.dims, (uint32_t)pt.dim_count, NULL);
    size_t bytes = pt.data_type == ST_DT_STRING ? out->count * sizeof(st_str) : td.byte_size;
    void *copy = st_arena_alloc(arena, bytes ? bytes : 1, 64);
    if (!copy)
        return st_fail(err, ST_ENOMEM, "out of memory");
    if (bytes)
        memcpy(copy, pt.data_type == ST_DT_STRING ? (const void *)td.strings : td.data, bytes);
    out->data = copy;
    if (name) {
        *name = st_arena_strndup(arena, pt.name.ptr, pt.name.len);
        if (!*name)
            return st_fail(err, ST_ENOMEM, "out of memory");
    }
    return ST_OK;
}
