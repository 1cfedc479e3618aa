/* model.c - loading an ONNX model: map the file, decode it, build and
 * check the graph (operators resolved, every name produced exactly once,
 * no cycles), materialize initializers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/hash.h"
#include "engine/eng_int.h"
#include "engine/gbm_int.h"
#include "engine/model_int.h"

/* --- name table: st_str -> value id, open addressing ------------------- */

typedef struct name_table {
    st_str *keys;
    int *ids;
    size_t cap; /* power of two */
} name_table;

static st_status names_init(name_table *t, st_arena *arena, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2 + 1) {
        if (cap > SIZE_MAX / 4)
            return ST_EOVERFLOW;
        cap *= 2;
    }
    t->keys = st_arena_calloc(arena, cap, sizeof *t->keys, 8);
    t->ids = st_arena_calloc(arena, cap, sizeof *t->ids, 8);
    if (!t->keys || !t->ids)
        return ST_ENOMEM;
    t->cap = cap;
    return ST_OK;
}

/* Returns the slot of `name`: its id >= 0 when present, else the empty
 * slot where it would go (id field unset, key.ptr NULL). */
static size_t names_slot(const name_table *t, st_str name)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t)st_hash_str(name, 0x5eed) & mask;
    while (t->keys[i].ptr && !st_str_eq(t->keys[i], name))
        i = (i + 1) & mask;
    return i;
}

static int names_get(const name_table *t, st_str name)
{
    size_t i = names_slot(t, name);
    return t->keys[i].ptr ? t->ids[i] : -1;
}

static void names_put(name_table *t, st_str name, int id)
{
    size_t i = names_slot(t, name);
    if (name.ptr == NULL)
        name.ptr = ""; /* empty names keep a non-NULL pointer */
    t->keys[i] = name;
    t->ids[i] = id;
}

/* --- helpers -------------------------------------------------------------- */

static bool is_default_domain(st_str d)
{
    return d.len == 0 || st_str_eq_c(d, "ai.onnx");
}

static int opset_of(const onnx_model *m, st_str domain)
{
    for (size_t i = 0; i < m->opset_count; i++) {
        st_str d = m->opsets[i].domain;
        if (st_str_eq(d, domain) || (is_default_domain(d) && is_default_domain(domain)))
            return (int)m->opsets[i].version;
    }
    return -1;
}

static void declared_type(eng_value *v, const onnx_type *t)
{
    v->rank = -1;
    if (t->kind == ONNX_TYPE_SEQUENCE || t->kind == ONNX_TYPE_OPTIONAL || t->kind == ONNX_TYPE_MAP) {
        v->dtype = t->kind == ONNX_TYPE_SEQUENCE ? ENG_DT_SEQUENCE
                   : t->kind == ONNX_TYPE_MAP    ? ENG_DT_MAP
                                                 : ENG_DT_OPTIONAL;
        return;
    }
    if (t->kind != ONNX_TYPE_TENSOR)
        return;
    if (st_dtype_is_valid(t->elem_type))
        v->dtype = (st_dtype)t->elem_type;
    if (!t->has_shape || t->dim_count > ENG_MAX_RANK)
        return;
    v->rank = (int)t->dim_count;
    for (size_t i = 0; i < t->dim_count; i++)
        v->dims[i] = t->dims[i].kind == ONNX_DIM_VALUE ? t->dims[i].value : -1;
}

static void io_from_value(eng_io *io, const eng_value *v, const onnx_type *t, st_arena *arena)
{
    io->name = st_arena_strndup(arena, v->name.ptr, v->name.len);
    io->dtype = v->dtype;
    io->rank = v->rank;
    for (int i = 0; i < v->rank; i++) {
        io->dims[i] = v->dims[i];
        io->dim_names[i] = NULL;
        if (t && t->kind == ONNX_TYPE_TENSOR && (size_t)i < t->dim_count &&
            t->dims[i].kind == ONNX_DIM_PARAM)
            io->dim_names[i] = st_arena_strndup(arena, t->dims[i].param.ptr, t->dims[i].param.len);
    }
}

/* Materializes an initializer into an aligned, read-only tensor, or with
 * in_place leaves its data where the decoder found it (any alignment). */
static st_status load_constant(eng_model *m, const onnx_tensor *t, eng_value *v, bool in_place, st_error *err)
{
    if (!st_dtype_is_valid(t->data_type) || t->data_type == ST_DT_UNDEFINED)
        return st_fail(err, ST_EUNSUPPORTED, "initializer '%.*s' has data type %s, which Stratus does not run",
                       ST_STR_FMT(t->name), onnx_data_type_name(t->data_type));
    if (t->dim_count > ENG_MAX_RANK)
        return st_fail(err, ST_EUNSUPPORTED, "initializer '%.*s' has rank %zu (at most %d)",
                       ST_STR_FMT(t->name), t->dim_count, ENG_MAX_RANK);
    onnx_tensor_data td;
    st_status s = onnx_tensor_materialize(t, &m->external, &m->arena, &td, err);
    if (s != ST_OK)
        return s;
    eng_tensor *c = &v->constant;
    eng_set_shape(c, (st_dtype)t->data_type, t->dims, (uint32_t)t->dim_count);
    if (c->dtype == ST_DT_STRING) {
        c->data = (void *)td.strings;
    } else if (td.byte_size == 0) {
        c->data = NULL;
    } else if (in_place || (onnx_tensor_data_is_aligned(&td) && td.align_bytes >= 16)) {
        c->data = (void *)td.data;
        v->is_in_place = in_place;
    } else {
        /* Unaligned raw_data (most of it: protobuf packs bytes anywhere) is
         * copied into the model's weight block. */
        void *copy;
        size_t at = (m->weights_used + 63) & ~(size_t)63;
        if (m->weights && at + td.byte_size <= m->weights_cap) {
            copy = m->weights + at;
            m->weights_used = at + td.byte_size;
        } else {
            copy = st_arena_alloc(&m->arena, td.byte_size, 64);
        }
        if (!copy)
            return ST_ENOMEM;
        memcpy(copy, td.data, td.byte_size);
        c->data = copy;
    }
    v->is_const = true;
    v->dtype = c->dtype;
    v->rank = (int)c->rank;
    memcpy(v->dims, c->shape, sizeof v->dims);
    return ST_OK;
}

/* --- weights read in place ------------------------------------------------------ */

/* Weights at least this large that only Gemm and MatMul read, as B, are
 * neither copied to aligned memory nor packed at load: they are multiplied
 * where they lie in the mapped file (eng_sgemm_unaligned_b).  Bigger than
 * a core's caches, they stream from memory on every product whether
 * packed or not, and copying them means writing fresh pages, which on a
 * VM costs from 0.3 to 8 ms per MB (a 100 MB model's load went from
 * ~100 ms to ~600 ms when no huge pages were to be had). */
#define WEIGHT_IN_PLACE_BYTES ((size_t)8 << 20)

static bool is_matmul_like(const onnx_node *n)
{
    return n->domain.len == 0 && (st_str_eq_c(n->op_type, "Gemm") || st_str_eq_c(n->op_type, "MatMul"));
}

/* Whether initializer t of the main graph pg qualifies: float32, 2-D,
 * inline, large, read only as input 1 of Gemm/MatMul, not a graph output.
 * Graphs with subgraphs are left alone (a body may read any outer name). */
static bool weight_in_place(const onnx_graph *pg, const onnx_tensor *t)
{
    if (t->data_type != ST_DT_FLOAT32 || t->dim_count != 2 || t->data_location == ONNX_LOCATION_EXTERNAL ||
        !t->has_raw_data || t->byte_size < WEIGHT_IN_PLACE_BYTES)
        return false;
    for (size_t i = 0; i < pg->output_count; i++)
        if (st_str_eq(pg->outputs[i].name, t->name))
            return false;
    size_t readers = 0;
    for (size_t i = 0; i < pg->node_count; i++) {
        const onnx_node *n = &pg->nodes[i];
        for (size_t a = 0; a < n->attr_count; a++)
            if (n->attrs[a].g || n->attrs[a].graph_count)
                return false;
        for (size_t j = 0; j < n->input_count; j++) {
            if (!st_str_eq(n->inputs[j], t->name))
                continue;
            if (j != 1 || !is_matmul_like(n))
                return false;
            readers++;
        }
    }
    return readers > 0;
}

/* --- graph building ----------------------------------------------------------- */

static bool op_in(st_str op, const char *const *names)
{
    for (; *names; names++)
        if (st_str_eq_c(op, *names))
            return true;
    return false;
}

/* Every ONNX operator has at least one output and, but for a few, a first
 * input and a first output that are present; kernels rely on both, so a
 * node without them is refused here rather than trusted later. */
static st_status check_arity(const onnx_node *pn, st_error *err)
{
    static const char *const no_first_input[] = { "Constant", "SequenceEmpty", "Loop", "Optional",
                                                  "RandomNormal", "RandomUniform", NULL };
    static const char *const no_first_output[] = { "LSTM", "GRU", "RNN", NULL };
    if (pn->output_count == 0)
        return st_fail(err, ST_ECORRUPT, "node '%.*s' (%.*s) has no outputs", ST_STR_FMT(pn->name),
                       ST_STR_FMT(pn->op_type));
    if (pn->outputs[0].len == 0 && !op_in(pn->op_type, no_first_output))
        return st_fail(err, ST_ECORRUPT, "node '%.*s' (%.*s) omits its first output", ST_STR_FMT(pn->name),
                       ST_STR_FMT(pn->op_type));
    if ((pn->input_count == 0 || pn->inputs[0].len == 0) && !op_in(pn->op_type, no_first_input))
        return st_fail(err, ST_ECORRUPT, "node '%.*s' (%.*s) has no first input", ST_STR_FMT(pn->name),
                       ST_STR_FMT(pn->op_type));
    return ST_OK;
}

typedef struct unsupported_list {
    char text[400];
    size_t len;
    int count;
} unsupported_list;

static void note_unsupported(unsupported_list *u, const onnx_node *n, int opset)
{
    char one[160];
    int w = snprintf(one, sizeof one, "%s%.*s (domain '%.*s', opset %d)", u->count ? ", " : "",
                     (int)(n->op_type.len > 60 ? 60 : n->op_type.len), n->op_type.ptr,
                     (int)(n->domain.len > 40 ? 40 : n->domain.len), n->domain.ptr, opset);
    /* Each operator once. */
    if (w > 0 && !strstr(u->text, one + (u->count ? 2 : 0)) && u->len + (size_t)w < sizeof u->text) {
        memcpy(u->text + u->len, one, (size_t)w + 1);
        u->len += (size_t)w;
        u->count++;
    }
}

static st_status add_value(eng_graph *g, name_table *names, st_str name, int *id, st_error *err)
{
    (void)err;
    int v = (int)g->n_values++;
    eng_value *val = &g->values[v];
    memset(val, 0, sizeof *val);
    val->name = name;
    val->rank = -1;
    val->producer = -1;
    val->outer = -1;
    val->last_consumer = -1;
    names_put(names, name, v);
    *id = v;
    return ST_OK;
}

/* The id of `name` in g, capturing it from the enclosing graphs when g is
 * a subgraph that does not define it; -1 when nobody defines it. */
static int resolve_name(eng_graph *g, st_str name, st_error *err)
{
    name_table *names = g->names;
    int id = names_get(names, name);
    if (id >= 0 || !g->parent || !g->owner)
        return id;
    eng_graph *parent = (eng_graph *)g->parent;
    int pid = resolve_name(parent, name, err);
    if (pid < 0 || g->n_values == g->cap_values)
        return -1;
    add_value(g, names, name, &id, err);
    eng_value *v = &g->values[id];
    const eng_value *pv = &parent->values[pid];
    v->outer = (int)g->owner->n_implicit; /* its place among the implicit inputs */
    v->dtype = pv->dtype;
    v->rank = pv->rank;
    memcpy(v->dims, pv->dims, sizeof v->dims);
    /* The owner reads it too (implicitly): ordering and lifetime. */
    eng_node *owner = g->owner;
    int *grown = st_arena_alloc(g->arena, (owner->n_inputs + 2) * sizeof *grown, 8);
    if (!grown)
        return -1;
    memcpy(grown, owner->inputs, owner->n_inputs * sizeof *grown);
    grown[owner->n_inputs++] = pid;
    owner->n_implicit++;
    owner->inputs = grown;
    return id;
}

/* Maps (ONNX-ML: a map graph input, ZipMap's sequence of maps) hold two
 * headers, keys and values, rather than `count` elements, so operators
 * that copy values generically would misread them.  Only the operators
 * that know maps may read one: DictVectorizer, and Identity passing a
 * sequence of maps along. */
static st_status check_map_readers(eng_graph *g, st_error *err)
{
    bool *is_map = st_arena_calloc(g->arena, g->n_values + 1, sizeof *is_map, 8);
    if (!is_map)
        return st_fail(err, ST_ENOMEM, "out of memory");
    for (size_t v = 0; v < g->n_values; v++)
        is_map[v] = g->values[v].dtype == ENG_DT_MAP;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const eng_node *n = &g->nodes[i];
        st_str op = n->proto->op_type;
        bool is_dict = st_str_eq_c(op, "DictVectorizer"), is_identity = st_str_eq_c(op, "Identity");
        bool reads_map = false;
        for (uint32_t j = 0; j < n->n_inputs; j++) {
            int v = n->inputs[j];
            if (v < 0 || !is_map[v])
                continue;
            reads_map = true;
            bool is_bare = g->values[v].dtype == ENG_DT_MAP;
            if (!is_dict && (is_bare || !is_identity))
                return st_fail(err, ST_EUNSUPPORTED,
                               "node '%.*s' (%.*s) reads '%.*s', a map; only DictVectorizer (and Identity for a "
                               "sequence of maps) can read maps", ST_STR_FMT(n->proto->name), ST_STR_FMT(op),
                               ST_STR_FMT(g->values[v].name));
        }
        bool makes_maps = st_str_eq_c(op, "ZipMap") || (is_identity && reads_map);
        for (uint32_t o = 0; makes_maps && o < n->n_outputs; o++)
            if (n->outputs[o] >= 0)
                is_map[n->outputs[o]] = true;
    }
    return ST_OK;
}

static st_status graph_build(eng_model *m, const onnx_graph *pg, eng_graph *g, const eng_graph *parent,
                             eng_node *owner, st_error *err)
{
    st_arena *arena = &m->arena;
    memset(g, 0, sizeof *g);
    g->arena = arena;
    g->model = m;
    g->parent = parent;
    g->owner = owner;
    size_t max_values = pg->initializer_count + pg->input_count;
    for (size_t i = 0; i < pg->node_count; i++)
        max_values += pg->nodes[i].output_count;
    if (parent) { /* room for captured outer names */
        for (size_t i = 0; i < pg->node_count; i++)
            max_values += pg->nodes[i].input_count;
        max_values += pg->output_count;
    }
    name_table *names_p = st_arena_alloc(arena, sizeof *names_p, 8);
    if (!names_p)
        return st_fail(err, ST_ENOMEM, "out of memory building the graph");
    g->names = names_p;
    name_table names;
    st_status s = names_init(&names, arena, max_values);
    if (s != ST_OK)
        return st_fail(err, s, "out of memory building the graph");
    *names_p = names;
    g->cap_values = max_values;
    g->values = st_arena_calloc(arena, max_values ? max_values : 1, sizeof *g->values, 8);
    g->nodes = st_arena_calloc(arena, pg->node_count ? pg->node_count : 1, sizeof *g->nodes, 8);
    g->inputs = st_arena_calloc(arena, pg->input_count + 1, sizeof *g->inputs, 8);
    g->outputs = st_arena_calloc(arena, pg->output_count + 1, sizeof *g->outputs, 8);
    if (!g->values || !g->nodes || !g->inputs || !g->outputs)
        return st_fail(err, ST_ENOMEM, "out of memory building the graph");

    /* One block for the initializers that must be copied, on huge pages:
     * a 100 MB model then costs ~50 page faults instead of ~25,000. */
    size_t weight_bytes = 0;
    bool *in_place = st_arena_calloc(arena, pg->initializer_count + 1, sizeof *in_place, 8);
    if (!in_place)
        return st_fail(err, ST_ENOMEM, "out of memory building the graph");
    for (size_t i = 0; i < pg->initializer_count; i++) {
        in_place[i] = !parent && weight_in_place(pg, &pg->initializers[i]);
        if (pg->initializers[i].data_location != ONNX_LOCATION_EXTERNAL && !in_place[i])
            weight_bytes += pg->initializers[i].byte_size + 64;
    }
    /* Inline data lives in the file: a block larger than the file (plus
     * alignment) could only come from lying dims. */
    size_t file_bound = m->n_bytes + 64 * (pg->initializer_count + 1);
    if (weight_bytes > file_bound)
        weight_bytes = file_bound;
    if (!m->weights && weight_bytes >= (1u << 20)) {
        size_t huge = (size_t)2 << 20;
        size_t cap = (weight_bytes + huge - 1) & ~(huge - 1);
        m->weights = st_aligned_alloc(huge, cap);
        if (m->weights) {
            madvise(m->weights, cap, MADV_HUGEPAGE);
            m->weights_cap = cap;
        }
    }
    for (size_t i = 0; i < pg->initializer_count; i++) {
        const onnx_tensor *t = &pg->initializers[i];
        if (names_get(names_p, t->name) >= 0)
            return st_fail(err, ST_ECORRUPT, "initializer '%.*s' is defined twice", ST_STR_FMT(t->name));
        int id;
        add_value(g, names_p, t->name, &id, err);
        if ((s = load_constant(m, t, &g->values[id], in_place[i], err)) != ST_OK)
            return s;
    }
    for (size_t i = 0; i < pg->input_count; i++) {
        const onnx_value_info *vi = &pg->inputs[i];
        int id = names_get(names_p, vi->name);
        if (id >= 0) {
            if (g->values[id].is_const)
                continue; /* IR < 4: initializers listed as inputs keep their value */
            return st_fail(err, ST_ECORRUPT, "graph input '%.*s' is declared twice", ST_STR_FMT(vi->name));
        }
        if (vi->type.kind != ONNX_TYPE_TENSOR && vi->type.kind != ONNX_TYPE_NONE &&
            vi->type.kind != ONNX_TYPE_SEQUENCE && vi->type.kind != ONNX_TYPE_OPTIONAL &&
            vi->type.kind != ONNX_TYPE_MAP)
            return st_fail(err, ST_EUNSUPPORTED, "graph input '%.*s' is not a tensor, sequence, optional or map",
                           ST_STR_FMT(vi->name));
        add_value(g, names_p, vi->name, &id, err);
        declared_type(&g->values[id], &vi->type);
        g->values[id].is_graph_input = true;
        g->inputs[g->n_inputs++] = id;
    }

    /* Node outputs first, so that a node may name a value produced later in
     * file order; the topological sort below restores the order. */
    unsupported_list unsupported = { .len = 0, .count = 0 };
    unsupported.text[0] = '\0';
    for (size_t i = 0; i < pg->node_count; i++) {
        const onnx_node *pn = &pg->nodes[i];
        eng_node *n = &g->nodes[i];
        n->proto = pn;
        n->graph = g;
        n->post.bias = -1;
        n->opset = opset_of(m->proto, pn->domain);
        if (n->opset < 0)
            return st_fail(err, ST_ECORRUPT, "node '%.*s' (%.*s) uses domain '%.*s', which the model does not import",
                           ST_STR_FMT(pn->name), ST_STR_FMT(pn->op_type), ST_STR_FMT(pn->domain));
        n->op = eng_op_find(pn->domain, pn->op_type, n->opset);
        if (!n->op)
            note_unsupported(&unsupported, pn, n->opset);
        else if ((s = check_arity(pn, err)) != ST_OK)
            return s;
        n->n_outputs = (uint32_t)pn->output_count;
        n->outputs = st_arena_alloc(arena, (pn->output_count + 1) * sizeof(int), 8);
        n->n_inputs = (uint32_t)pn->input_count;
        n->inputs = st_arena_alloc(arena, (pn->input_count + 1) * sizeof(int), 8);
        if (!n->outputs || !n->inputs)
            return st_fail(err, ST_ENOMEM, "out of memory building the graph");
        for (size_t o = 0; o < pn->output_count; o++) {
            st_str name = pn->outputs[o];
            if (name.len == 0) {
                n->outputs[o] = -1;
                continue;
            }
            if (names_get(names_p, name) >= 0)
                return st_fail(err, ST_ECORRUPT, "value '%.*s' is produced twice (again by node '%.*s' (%.*s))",
                               ST_STR_FMT(name), ST_STR_FMT(pn->name), ST_STR_FMT(pn->op_type));
            int id;
            add_value(g, names_p, name, &id, err);
            g->values[id].producer = (int)i;
            n->outputs[o] = id;
        }
    }
    if (unsupported.count)
        return st_fail(err, ST_EUNSUPPORTED, "unsupported operator%s: %s", unsupported.count > 1 ? "s" : "",
                       unsupported.text);
    g->n_nodes = pg->node_count;
    for (size_t i = 0; i < g->n_nodes; i++) {
        eng_node *n = &g->nodes[i];
        const onnx_node *pn = n->proto;
        for (size_t j = 0; j < pn->input_count; j++) {
            st_str name = pn->inputs[j];
            if (name.len == 0) {
                n->inputs[j] = -1;
                continue;
            }
            int id = resolve_name(g, name, err);
            if (id < 0)
                return st_fail(err, ST_ECORRUPT,
                               "node '%.*s' (%.*s) reads '%.*s', which no node, input or initializer produces",
                               ST_STR_FMT(pn->name), ST_STR_FMT(pn->op_type), ST_STR_FMT(name));
            n->inputs[j] = id;
        }
    }
    for (size_t i = 0; i < pg->output_count; i++) {
        const onnx_value_info *vi = &pg->outputs[i];
        int id = resolve_name(g, vi->name, err);
        if (id < 0)
            return st_fail(err, ST_ECORRUPT, "graph output '%.*s' is produced by nothing", ST_STR_FMT(vi->name));
        eng_value *v = &g->values[id];
        if (!v->is_const && !v->is_graph_input && v->outer < 0) {
            eng_value decl = *v;
            declared_type(&decl, &vi->type);
            v->dtype = decl.dtype;
            v->rank = decl.rank;
            memcpy(v->dims, decl.dims, sizeof v->dims);
        }
        v->is_graph_output = true;
        g->outputs[g->n_outputs++] = id;
    }
    if ((s = eng_graph_sort(g, err)) != ST_OK)
        return s;
    bool has_implicit = false;
    for (size_t i = 0; i < g->n_nodes; i++) {
        eng_node *n = &g->nodes[i];
        n->graph = g;
        if (n->op->check && (s = n->op->check(n, arena, err)) != ST_OK)
            return st_fail_wrap(err, s, "node '%.*s' (%.*s)", ST_STR_FMT(n->proto->name),
                                ST_STR_FMT(n->proto->op_type));
        has_implicit |= n->n_implicit > 0;
    }
    /* Subgraph captures added dependencies: order again. */
    if (has_implicit && (s = eng_graph_sort(g, err)) != ST_OK)
        return s;
    return check_map_readers(g, err);
}

st_status eng_graph_build(eng_model *m, const onnx_graph *pg, eng_graph *g, st_error *err)
{
    return graph_build(m, pg, g, NULL, NULL, err);
}

st_status eng_subgraph_build(eng_node *owner, const onnx_graph *pg, eng_graph **out, st_error *err)
{
    eng_graph *parent = owner->graph;
    eng_model *m = parent->model;
    int depth = 0;
    for (const eng_graph *p = parent; p; p = p->parent)
        depth++;
    if (depth > 16)
        return st_fail(err, ST_ELIMIT, "subgraphs nest deeper than 16 levels");
    eng_graph *g = st_arena_calloc(&m->arena, 1, sizeof *g, 8);
    if (!g)
        return st_fail(err, ST_ENOMEM, "out of memory building a subgraph");
    st_status s = graph_build(m, pg, g, parent, owner, err);
    if (s != ST_OK)
        return st_fail_wrap(err, s, "in subgraph '%.*s'", ST_STR_FMT(pg->name));
    if (!m->options.no_optimize && (s = eng_graph_optimize(g, err)) != ST_OK)
        return s;
    *out = g;
    return ST_OK;
}

/* Kahn's algorithm over node indices; fails on a cycle.  Also counts
 * consumers and records each value's last reader. */
st_status eng_graph_sort(eng_graph *g, st_error *err)
{
    size_t n = g->n_nodes, nv = g->n_values, n_edges = 0;
    if (n == 0)
        return ST_OK;
    for (size_t i = 0; i < n; i++)
        n_edges += g->nodes[i].n_inputs;
    int *indeg = st_calloc(n, sizeof *indeg);
    int *order = st_calloc(n, sizeof *order);
    eng_node *sorted = st_calloc(n, sizeof *sorted);
    size_t *cons_start = st_calloc(nv + 1, sizeof *cons_start);
    size_t *cons_fill = st_calloc(nv + 1, sizeof *cons_fill);
    int *cons = st_calloc(n_edges + 1, sizeof *cons);
    st_status s = ST_OK;
    if (!indeg || !order || !sorted || !cons_start || !cons_fill || !cons) {
        s = st_fail(err, ST_ENOMEM, "out of memory sorting the graph");
        goto done;
    }
    /* Consumers of each value as a CSR list, so the sort is O(edges). */
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < g->nodes[i].n_inputs; j++) {
            int v = g->nodes[i].inputs[j];
            if (v < 0)
                continue;
            cons_start[v + 1]++;
            if (g->values[v].producer >= 0)
                indeg[i]++;
        }
    for (size_t v = 0; v < nv; v++)
        cons_start[v + 1] += cons_start[v];
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < g->nodes[i].n_inputs; j++) {
            int v = g->nodes[i].inputs[j];
            if (v >= 0)
                cons[cons_start[v] + cons_fill[v]++] = (int)i;
        }
    /* Ready nodes are taken in file order, the order exporters intend. */
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            order[tail++] = (int)i;
    while (head < tail) {
        const eng_node *src = &g->nodes[order[head++]];
        for (uint32_t o = 0; o < src->n_outputs; o++) {
            int v = src->outputs[o];
            if (v < 0)
                continue;
            for (size_t c = cons_start[v]; c < cons_start[v + 1]; c++)
                if (--indeg[cons[c]] == 0)
                    order[tail++] = cons[c];
        }
    }
    if (tail != n) {
        for (size_t i = 0; i < n; i++)
            if (indeg[i] > 0) {
                s = st_fail(err, ST_ECORRUPT, "the graph has a cycle through node '%.*s' (%.*s)",
                            ST_STR_FMT(g->nodes[i].proto->name), ST_STR_FMT(g->nodes[i].proto->op_type));
                goto done;
            }
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = g->nodes[order[i]];
    memcpy(g->nodes, sorted, n * sizeof *sorted);
    for (size_t v = 0; v < nv; v++) {
        g->values[v].n_consumers = 0;
        g->values[v].last_consumer = -1;
    }
    for (size_t i = 0; i < n; i++) {
        for (uint32_t o = 0; o < g->nodes[i].n_outputs; o++)
            if (g->nodes[i].outputs[o] >= 0)
                g->values[g->nodes[i].outputs[o]].producer = (int)i;
        for (uint32_t j = 0; j < g->nodes[i].n_inputs; j++) {
            int v = g->nodes[i].inputs[j];
            if (v >= 0) {
                g->values[v].n_consumers++;
                g->values[v].last_consumer = (int)i;
            }
        }
    }
done:
    st_free(indeg);
    st_free(order);
    st_free(sorted);
    st_free(cons_start);
    st_free(cons_fill);
    st_free(cons);
    return s;
}

const char *eng_format(const eng_model *m)
{
    return eng_detect_format(m->bytes, m->n_bytes);
}

/* --- public load/free ----------------------------------------------------------- */

static st_status model_finish(eng_model *m, st_error *err)
{
    /* XGBoost and LightGBM models, told apart from ONNX by content. */
    if (gbm_detect(m->bytes, m->n_bytes) != GBM_FORMAT_NONE)
        return gbm_model_build(m, err);
    st_status s = onnx_decode_model(m->bytes, m->n_bytes, &m->arena, &m->onnx, err);
    if (s != ST_OK)
        return s;
    m->proto = &m->onnx;
    if ((s = eng_graph_build(m, m->proto->graph, &m->graph, err)) != ST_OK)
        return s;
    if (!m->options.no_optimize && (s = eng_graph_optimize(&m->graph, err)) != ST_OK)
        return s;
    const onnx_graph *pg = m->proto->graph;
    m->inputs = st_arena_calloc(&m->arena, m->graph.n_inputs + 1, sizeof *m->inputs, 8);
    m->outputs = st_arena_calloc(&m->arena, m->graph.n_outputs + 1, sizeof *m->outputs, 8);
    if (!m->inputs || !m->outputs)
        return st_fail(err, ST_ENOMEM, "out of memory");
    for (size_t i = 0; i < m->graph.n_inputs; i++) {
        const eng_value *v = &m->graph.values[m->graph.inputs[i]];
        const onnx_type *t = NULL;
        for (size_t j = 0; j < pg->input_count; j++)
            if (st_str_eq(pg->inputs[j].name, v->name))
                t = &pg->inputs[j].type;
        io_from_value(&m->inputs[i], v, t, &m->arena);
    }
    for (size_t i = 0; i < m->graph.n_outputs; i++) {
        const eng_value *v = &m->graph.values[m->graph.outputs[i]];
        io_from_value(&m->outputs[i], v, &pg->outputs[i].type, &m->arena);
    }
    return ST_OK;
}

st_status eng_load_memory(const uint8_t *data, size_t len, const char *base_dir, const eng_options *opt,
                          eng_model **out, st_error *err)
{
    *out = NULL;
    eng_model *m = st_calloc(1, sizeof *m);
    if (!m)
        return st_fail(err, ST_ENOMEM, "out of memory loading a model");
    st_arena_init(&m->arena, 1 << 16);
    if (opt)
        m->options = *opt;
    m->bytes = data;
    m->n_bytes = len;
    char *dir = NULL;
    if (base_dir) {
        dir = st_arena_strndup(&m->arena, base_dir, strlen(base_dir));
        if (!dir) {
            eng_free(m);
            return st_fail(err, ST_ENOMEM, "out of memory loading a model");
        }
    }
    onnx_external_init(&m->external, dir);
    st_status s = model_finish(m, err);
    if (s != ST_OK) {
        eng_free(m);
        return s;
    }
    *out = m;
    return ST_OK;
}

st_status eng_load_file(const char *path, const eng_options *opt, eng_model **out, st_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return st_fail(err, ST_ENOTFOUND, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return st_fail(err, ST_EINVAL, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        /* Populate: fault the whole file in at once (read-ahead from the
         * page cache) rather than a page at a time while decoding. */
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            return st_fail(err, ST_EIO, "%s: cannot map: %s", path, strerror(errno));
        }
    }
    close(fd);
    /* External data lives beside the model file. */
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t dlen = (size_t)(slash - path);
        if (dlen >= sizeof dir)
            dlen = sizeof dir - 1;
        memcpy(dir, path, dlen);
        dir[dlen ? dlen : 1] = '\0';
        if (!dlen)
            dir[0] = '/';
    } else {
        dir[0] = '.';
        dir[1] = '\0';
    }
    static const uint8_t empty[1];
    st_status s = eng_load_memory(map ? map : empty, len, dir, opt, out, err);
    if (s != ST_OK) {
        if (map)
            munmap(map, len);
        return st_fail_wrap(err, s, "%s", path);
    }
    (*out)->map = map;
    (*out)->map_len = len;
    return ST_OK;
}

void eng_free(eng_model *m)
{
    if (!m)
        return;
    onnx_external_release(&m->external);
    st_arena_free(&m->arena);
    st_free(m->weights);
    if (m->map)
        munmap(m->map, m->map_len);
    st_free(m);
}

size_t eng_n_inputs(const eng_model *m) { return m->graph.n_inputs; }
const eng_io *eng_input(const eng_model *m, size_t i) { return i < m->graph.n_inputs ? &m->inputs[i] : NULL; }
size_t eng_n_outputs(const eng_model *m) { return m->graph.n_outputs; }
const eng_io *eng_output(const eng_model *m, size_t i) { return i < m->graph.n_outputs ? &m->outputs[i] : NULL; }
size_t eng_node_count(const eng_model *m) { return m->graph.n_nodes; }
