/* text.c - operators on tokens: StringNormalizer (stop words, case
 * change) and TfIdfVectorizer (n-gram counts against a pool).
 *
 * Case mapping is locale-independent: the `locale` attribute is ignored.
 * It maps ASCII and the two-byte UTF-8 letters with simple one-to-one
 * case pairs (Latin-1, Latin Extended-A, Greek, basic Cyrillic); other
 * bytes (other scripts, ß, invalid UTF-8) pass through unchanged, so a
 * string never changes length.  Output strings live in the run arena,
 * like every output of the run. */
#include <string.h>

#include "base/alloc.h"
#include "base/hash.h"
#include "engine/ops/misc_ops.h"

/* --- case mapping --------------------------------------------------------------- */

static uint32_t to_lower_cp(uint32_t c)
{
    if (c < 0x80)
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) ||
        (c >= 0x410 && c <= 0x42F))
        return c + 0x20;
    if (c >= 0x400 && c <= 0x40F)
        return c + 0x50;
    if (c == 0x178)
        return 0xFF;
    if ((c >= 0x100 && c <= 0x137 && c != 0x130 && c != 0x131) || (c >= 0x14A && c <= 0x177))
        return c | 1;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
        return (c & 1) ? c + 1 : c;
    if (c == 0x386)
        return 0x3AC;
    if (c >= 0x388 && c <= 0x38A)
        return c + 0x25;
    if (c == 0x38C || c == 0x38E || c == 0x38F)
        return c + 0x40 - (c == 0x38C ? 0 : 1);
    return c;
}

static uint32_t to_upper_cp(uint32_t c)
{
    if (c < 0x80)
        return c >= 'a' && c <= 'z' ? c - 32 : c;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7) || (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) ||
        (c >= 0x430 && c <= 0x44F))
        return c - 0x20;
    if (c == 0x3C2)
        return 0x3A3;
    if (c >= 0x450 && c <= 0x45F)
        return c - 0x50;
    if (c == 0xFF)
        return 0x178;
    if ((c >= 0x100 && c <= 0x137 && c != 0x130 && c != 0x131) || (c >= 0x14A && c <= 0x177))
        return c & ~(uint32_t)1;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
        return (c & 1) ? c : c - 1;
    if (c == 0x3AC)
        return 0x386;
    if (c >= 0x3AD && c <= 0x3AF)
        return c - 0x25;
    if (c == 0x3CC)
        return 0x38C;
    if (c == 0x3CD || c == 0x3CE)
        return c - 0x3F;
    return c;
}

/* Decodes the code point at s[i] when it is ASCII or a valid two-byte
 * sequence (*len 1 or 2); anything else is returned as a raw byte that
 * the mapping leaves alone (values >= 0x110000 never match a range). */
static uint32_t next_cp(const uint8_t *s, size_t n, size_t i, size_t *len)
{
    uint8_t b = s[i];
    if (b >= 0xC2 && b <= 0xDF && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
        *len = 2;
        return ((uint32_t)(b & 0x1F) << 6) | (s[i + 1] & 0x3F);
    }
    *len = 1;
    return b < 0x80 ? b : 0x110000u + b;
}

/* Writes src's case-mapped bytes into dst (same length). */
static void map_case(const uint8_t *src, size_t n, uint8_t *dst, bool upper)
{
    for (size_t i = 0; i < n;) {
        size_t len;
        uint32_t c = next_cp(src, n, i, &len);
        if (len == 1) {
            dst[i] = c < 0x80 ? (uint8_t)(upper ? to_upper_cp(c) : to_lower_cp(c)) : src[i];
        } else {
            uint32_t m = upper ? to_upper_cp(c) : to_lower_cp(c);
            /* Every pair above stays within two-byte code points. */
            dst[i] = (uint8_t)(0xC0 | (m >> 6));
            dst[i + 1] = (uint8_t)(0x80 | (m & 0x3F));
        }
        i += len;
    }
}

/* Equality after lower-casing both sides. */
static bool eq_nocase(st_str a, st_str b)
{
    if (a.len != b.len)
        return false;
    const uint8_t *pa = (const uint8_t *)a.ptr, *pb = (const uint8_t *)b.ptr;
    for (size_t i = 0; i < a.len;) {
        size_t la, lb;
        uint32_t ca = next_cp(pa, a.len, i, &la), cb = next_cp(pb, b.len, i, &lb);
        if (la != lb || to_lower_cp(ca) != to_lower_cp(cb))
            return false;
        i += la;
    }
    return true;
}

/* --- StringNormalizer ------------------------------------------------------------- */

typedef enum { CASE_NONE, CASE_LOWER, CASE_UPPER } case_action;

typedef struct strnorm_state {
    case_action action;
    bool is_case_sensitive;
    const st_str *stopwords;
    size_t n_stopwords;
} strnorm_state;

st_status op_text_strnorm_check(eng_node *n, st_arena *arena, st_error *err)
{
    strnorm_state *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_str a = eng_attr_str(n, "case_change_action", "NONE");
    if (st_str_eq_c(a, "NONE"))
        st->action = CASE_NONE;
    else if (st_str_eq_c(a, "LOWER"))
        st->action = CASE_LOWER;
    else if (st_str_eq_c(a, "UPPER"))
        st->action = CASE_UPPER;
    else
        return st_fail(err, ST_EINVAL, "case_change_action '%.*s' is not NONE, LOWER or UPPER",
                       (int)(a.len > 40 ? 40 : a.len), a.ptr);
    st->is_case_sensitive = eng_attr_int(n, "is_case_sensitive", 0) != 0;
    const onnx_attr *sw = onnx_node_attr(n->proto, "stopwords");
    if (sw && sw->type == ONNX_ATTR_STRINGS) {
        st->stopwords = sw->strings;
        st->n_stopwords = sw->string_count;
    }
    n->state = st;
    return ST_OK;
}

static bool is_stopword(const strnorm_state *st, st_str s)
{
    for (size_t i = 0; i < st->n_stopwords; i++)
        if (st->is_case_sensitive ? st_str_eq(s, st->stopwords[i]) : eq_nocase(s, st->stopwords[i]))
            return true;
    return false;
}

static st_status strnorm_count(const eng_kctx *k, size_t *kept)
{
    const strnorm_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    if (!x || x->dtype != ST_DT_STRING)
        return eng_fail(k, ST_ETYPE, "X must be a string tensor");
    if (!(x->rank == 1 || (x->rank == 2 && x->shape[0] == 1)))
        return eng_fail(k, ST_ESHAPE, "X must have shape [C] or [1, C]");
    const st_str *s = x->data;
    *kept = 0;
    for (size_t i = 0; i < x->count; i++)
        *kept += !is_stopword(st, s[i]);
    return ST_OK;
}

st_status op_text_strnorm_infer(eng_kctx *k)
{
    size_t kept = 0;
    st_status s = strnorm_count(k, &kept);
    if (s != ST_OK)
        return s;
    const eng_tensor *x = k->in[0];
    /* Everything dropped: one empty string. */
    int64_t c = kept ? (int64_t)kept : 1;
    int64_t shape[2] = { 1, c };
    if (x->rank == 1)
        eng_set_shape(k->out[0], ST_DT_STRING, &c, 1);
    else
        eng_set_shape(k->out[0], ST_DT_STRING, shape, 2);
    return ST_OK;
}

st_status op_text_strnorm_run(eng_kctx *k)
{
    const strnorm_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    const st_str *src = x->data;
    st_str *dst = k->out[0]->data;
    size_t o = 0;
    for (size_t i = 0; i < x->count; i++) {
        if (is_stopword(st, src[i]))
            continue;
        if (st->action == CASE_NONE || src[i].len == 0) {
            dst[o++] = src[i];
            continue;
        }
        uint8_t *buf = st_arena_alloc(k->scratch, src[i].len, 1);
        if (!buf)
            return eng_fail(k, ST_ENOMEM, "out of memory for strings");
        map_case((const uint8_t *)src[i].ptr, src[i].len, buf, st->action == CASE_UPPER);
        dst[o++] = st_str_make(buf, src[i].len);
    }
    if (o == 0)
        dst[0] = st_str_make("", 0);
    return ST_OK;
}

/* --- TfIdfVectorizer ----------------------------------------------------------------- */

typedef enum { TFIDF_TF, TFIDF_IDF, TFIDF_TFIDF } tfidf_mode;

/* One pool n-gram: its items start at pool item `first`. */
typedef struct tfidf_gram {
    uint32_t n;
    size_t first;
    size_t out_index;
    float weight;
} tfidf_gram;

typedef struct tfidf_state {
    tfidf_mode mode;
    int64_t min_n, max_n, max_skip;
    bool is_string;
    const int64_t *pool_ints;
    const st_str *pool_strs;
    tfidf_gram *grams;
    size_t n_grams;
    int32_t *table;             /* open addressing: gram index or -1 */
    size_t table_mask;
    size_t out_dim;
} tfidf_state;

static uint64_t item_hash_int(int64_t v)
{
    return st_hash_u64((uint64_t)v);
}

static uint64_t item_hash_str(st_str s)
{
    return st_hash_str(s, 0x7466696466ull);
}

static uint64_t gram_hash_step(uint64_t h, uint64_t item)
{
    return st_hash_u64(h ^ item) + 0x9e3779b97f4a7c15ull;
}

static uint64_t pool_gram_hash(const tfidf_state *st, const tfidf_gram *g)
{
    uint64_t h = g->n;
    for (uint32_t i = 0; i < g->n; i++)
        h = gram_hash_step(h, st->is_string ? item_hash_str(st->pool_strs[g->first + i])
                                            : item_hash_int(st->pool_ints[g->first + i]));
    return h;
}

st_status op_text_tfidf_check(eng_node *n, st_arena *arena, st_error *err)
{
    tfidf_state *st = st_arena_calloc(arena, 1, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st_str mode = eng_attr_str(n, "mode", "");
    if (st_str_eq_c(mode, "TF"))
        st->mode = TFIDF_TF;
    else if (st_str_eq_c(mode, "IDF"))
        st->mode = TFIDF_IDF;
    else if (st_str_eq_c(mode, "TFIDF"))
        st->mode = TFIDF_TFIDF;
    else
        return st_fail(err, ST_EINVAL, "mode '%.*s' is not TF, IDF or TFIDF", (int)(mode.len > 20 ? 20 : mode.len),
                       mode.ptr);
    st->min_n = eng_attr_int(n, "min_gram_length", 0);
    st->max_n = eng_attr_int(n, "max_gram_length", 0);
    st->max_skip = eng_attr_int(n, "max_skip_count", 0);
    if (st->min_n < 1 || st->max_n < st->min_n || st->max_n > 64 || st->max_skip < 0 || st->max_skip > 1024)
        return st_fail(err, ST_EINVAL, "need 1 <= min_gram_length <= max_gram_length <= 64 and 0 <= max_skip_count "
                       "<= 1024");
    size_t n_counts, n_indexes, n_weights, pool_len;
    const int64_t *counts = eng_attr_ints(n, "ngram_counts", &n_counts);
    const int64_t *indexes = eng_attr_ints(n, "ngram_indexes", &n_indexes);
    const float *weights = eng_attr_floats(n, "weights", &n_weights);
    const onnx_attr *ps = onnx_node_attr(n->proto, "pool_strings");
    st->pool_ints = eng_attr_ints(n, "pool_int64s", &pool_len);
    if (ps && ps->type == ONNX_ATTR_STRINGS && ps->string_count) {
        if (st->pool_ints)
            return st_fail(err, ST_EINVAL, "only one of pool_strings and pool_int64s may be set");
        st->is_string = true;
        st->pool_strs = ps->strings;
        pool_len = ps->string_count;
    }
    if (weights && n_weights != n_indexes)
        return st_fail(err, ST_EINVAL, "weights has %zu values for %zu n-grams", n_weights, n_indexes);
    /* ngram_counts[i] is where the (i+1)-grams start in the pool. */
    st->grams = st_arena_alloc(arena, (n_indexes + 1) * sizeof *st->grams, 8);
    if (!st->grams)
        return st_fail(err, ST_ENOMEM, "out of memory");
    size_t g = 0;
    for (size_t i = 0; i < n_counts; i++) {
        int64_t begin = counts[i], end = i + 1 < n_counts ? counts[i + 1] : (int64_t)pool_len;
        size_t len = i + 1;
        if (begin < 0 || end < begin || end > (int64_t)pool_len || (size_t)(end - begin) % len != 0)
            return st_fail(err, ST_EINVAL, "ngram_counts[%zu] does not split the pool into %zu-grams", i, len);
        for (int64_t p = begin; p < end; p += (int64_t)len, g++) {
            if (g >= n_indexes)
                return st_fail(err, ST_EINVAL, "the pool holds more n-grams than ngram_indexes (%zu)", n_indexes);
            if (indexes[g] < 0 || indexes[g] >= ((int64_t)1 << 31))
                return st_fail(err, ST_EINVAL, "ngram_indexes[%zu] is %lld", g, (long long)indexes[g]);
            st->grams[g] = (tfidf_gram){ (uint32_t)len, (size_t)p, (size_t)indexes[g], weights ? weights[g] : 1.0f };
            if ((size_t)indexes[g] + 1 > st->out_dim)
                st->out_dim = (size_t)indexes[g] + 1;
        }
    }
    if (g != n_indexes)
        return st_fail(err, ST_EINVAL, "ngram_indexes has %zu entries for %zu pool n-grams", n_indexes, g);
    st->n_grams = g;
    size_t cap = 16;
    while (cap < 2 * g + 2)
        cap <<= 1;
    st->table = st_arena_alloc(arena, cap * sizeof *st->table, 8);
    if (!st->table)
        return st_fail(err, ST_ENOMEM, "out of memory");
    memset(st->table, 0xff, cap * sizeof *st->table);
    st->table_mask = cap - 1;
    for (size_t i = 0; i < g; i++) {
        size_t slot = (size_t)pool_gram_hash(st, &st->grams[i]) & st->table_mask;
        while (st->table[slot] >= 0)
            slot = (slot + 1) & st->table_mask;
        st->table[slot] = (int32_t)i;
    }
    n->state = st;
    return ST_OK;
}

st_status op_text_tfidf_infer(eng_kctx *k)
{
    const tfidf_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    if (!x || (x->rank != 1 && x->rank != 2))
        return eng_fail(k, ST_ESHAPE, "X must have shape [C] or [N, C]");
    bool is_str = x->dtype == ST_DT_STRING;
    if (is_str != st->is_string || (!is_str && x->dtype != ST_DT_INT32 && x->dtype != ST_DT_INT64))
        return eng_fail(k, ST_ETYPE, "X must be %s to match the pool, got %s",
                        st->is_string ? "string" : "int32 or int64", st_dtype_name(x->dtype));
    int64_t shape[2] = { x->shape[0], (int64_t)st->out_dim };
    if (x->rank == 1)
        eng_set_shape(k->out[0], ST_DT_FLOAT32, &shape[1], 1);
    else
        eng_set_shape(k->out[0], ST_DT_FLOAT32, shape, 2);
    return ST_OK;
}

/* The pool n-gram equal to the n items at row[start], row[start + step],
 * ..., or -1. */
static int32_t find_gram(const tfidf_state *st, const eng_tensor *x, const uint64_t *item_hash, size_t row_off,
                         size_t start, size_t step, uint32_t n)
{
    uint64_t h = n;
    for (uint32_t i = 0; i < n; i++)
        h = gram_hash_step(h, item_hash[start + i * step]);
    for (size_t slot = (size_t)h & st->table_mask; st->table[slot] >= 0; slot = (slot + 1) & st->table_mask) {
        const tfidf_gram *g = &st->grams[st->table[slot]];
        if (g->n != n)
            continue;
        bool eq = true;
        for (uint32_t i = 0; eq && i < n; i++) {
            size_t xi = row_off + start + i * step;
            eq = st->is_string ? st_str_eq(((const st_str *)x->data)[xi], st->pool_strs[g->first + i])
                               : eng_int_at(x, xi) == st->pool_ints[g->first + i];
        }
        if (eq)
            return st->table[slot];
    }
    return -1;
}

st_status op_text_tfidf_run(eng_kctx *k)
{
    const tfidf_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    eng_tensor *y = k->out[0];
    size_t rows = x->rank == 2 ? (size_t)x->shape[0] : 1;
    size_t cols = (size_t)x->shape[x->rank - 1];
    float *out = y->data;
    memset(out, 0, y->count * sizeof *out);
    uint64_t *hashes = st_arena_alloc(k->scratch, cols * sizeof *hashes + 1, 64);
    uint32_t *counts = st_arena_alloc(k->scratch, st->n_grams * sizeof *counts + 1, 64);
    if (!hashes || !counts)
        return eng_fail(k, ST_ENOMEM, "out of scratch memory");
    for (size_t r = 0; r < rows; r++) {
        size_t row_off = r * cols;
        for (size_t c = 0; c < cols; c++)
            hashes[c] = st->is_string ? item_hash_str(((const st_str *)x->data)[row_off + c])
                                      : item_hash_int(eng_int_at(x, row_off + c));
        memset(counts, 0, st->n_grams * sizeof *counts);
        /* Items of an n-gram are `step` apart, step = skip + 1; 1-grams
         * are counted on the first pass only (as ONNX Runtime does). */
        for (size_t step = 1; step <= (size_t)st->max_skip + 1; step++) {
            uint32_t n_lo = (uint32_t)st->min_n;
            if (step > 1 && n_lo < 2)
                n_lo = 2;
            if (n_lo > (uint32_t)st->max_n)
                break;
            for (size_t start = 0; start < cols; start++)
                for (uint32_t n = n_lo; n <= (uint32_t)st->max_n; n++) {
                    if (start + (size_t)(n - 1) * step >= cols)
                        break;
                    int32_t gi = find_gram(st, x, hashes, row_off, start, step, n);
                    if (gi >= 0)
                        counts[gi]++;
                }
        }
        float *orow = out + r * st->out_dim;
        for (size_t i = 0; i < st->n_grams; i++) {
            if (!counts[i])
                continue;
            const tfidf_gram *g = &st->grams[i];
            float v = st->mode == TFIDF_TF ? (float)counts[i]
                      : st->mode == TFIDF_IDF ? g->weight
                                              : (float)counts[i] * g->weight;
            orow[g->out_index] = v;
        }
    }
    return ST_OK;
}
