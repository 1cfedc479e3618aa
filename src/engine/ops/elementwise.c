/* elementwise.c - numpy-broadcasting binary operators (arithmetic,
 * comparison, logic) and elementwise unary operators.
 *
 * A binary op walks the output with the operands' broadcast strides; the
 * innermost dimension is a tight loop with three shapes (both contiguous,
 * scalar left, scalar right) that the compiler vectorises. */
#include <math.h>
#include <string.h>

#include "engine/ops/ops.h"

/* --- binary ops ------------------------------------------------------------ */

typedef enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MOD, B_FMOD, B_MAX, B_MIN,
               B_EQ, B_LT, B_GT, B_LE, B_GE, B_AND, B_OR, B_XOR, B_BITAND, B_BITOR, B_BITXOR,
               B_SHL, B_SHR } bin_kind;

/* Inner loop: o[i] = a[i*sa] OP b[i*sb] for i < n, sa/sb in {0, 1}. */
typedef void (*bin_loop)(const void *a, size_t sa, const void *b, size_t sb, void *o, size_t n);

#define DEF_LOOP(NAME, TA, TO, EXPR)                                                           \
    static void NAME(const void *va, size_t sa, const void *vb, size_t sb, void *vo, size_t n) \
    {                                                                                          \
        const TA *a = va;                                                                      \
        const TA *b = vb;                                                                      \
        TO *o = vo;                                                                            \
        if (sa && sb) {                                                                        \
            for (size_t i = 0; i < n; i++) {                                                   \
                TA x = a[i], y = b[i];                                                         \
                o[i] = (TO)(EXPR);                                                             \
            }                                                                                  \
        } else if (sb) {                                                                       \
            TA x = a[0];                                                                       \
            for (size_t i = 0; i < n; i++) {                                                   \
                TA y = b[i];                                                                   \
                o[i] = (TO)(EXPR);                                                             \
            }                                                                                  \
        } else if (sa) {                                                                       \
            TA y = b[0];                                                                       \
            for (size_t i = 0; i < n; i++) {                                                   \
                TA x = a[i];                                                                   \
                o[i] = (TO)(EXPR);                                                             \
            }                                                                                  \
        } else {                                                                               \
            TA x = a[0], y = b[0];                                                             \
            for (size_t i = 0; i < n; i++)                                                     \
                o[i] = (TO)(EXPR);                                                             \
        }                                                                                      \
    }

/* Integer division and modulo follow numpy/ONNX: division truncates
 * (C semantics, as ONNX runtimes do), Mod with fmod=0 takes the divisor's
 * sign.  Division by zero gives 0 instead of a trap. */
#define IDIV(x, y) ((y) == 0 ? 0 : (y) == (__typeof__(y))-1 && (y) < 1 ? (__typeof__(x))(0 - (unsigned long long)(x)) : (x) / (y))
#define IMOD(x, y) ((y) == 0 || ((y) == (__typeof__(y))-1 && (y) < 1) ? 0 \
    : (((x) % (y)) != 0 && (((x) % (y) < 0) != ((y) < 0)) ? (x) % (y) + (y) : (x) % (y)))
#define IFMOD(x, y) ((y) == 0 || ((y) == (__typeof__(y))-1 && (y) < 1) ? 0 : (x) % (y))
#define FMODPY(x, y) (fmod((x), (y)) != 0 && ((fmod((x), (y)) < 0) != ((y) < 0)) ? fmod((x), (y)) + (y) : fmod((x), (y)))

/* X(suffix, type, arithmetic type): integers add, subtract and multiply
 * in their unsigned type so overflow wraps as numpy and ONNX Runtime do,
 * instead of being undefined behaviour in C. */
/* x**y in wrapping integer arithmetic (exponentiation by squaring);
 * negative exponents give 1/x truncated: 1 for x = 1, +-1 for x = -1, else 0. */
static inline uint64_t int_pow(uint64_t x, int64_t y)
{
    if (y < 0)
        return x == 1 ? 1 : x == (uint64_t)-1 ? ((y & 1) ? (uint64_t)-1 : 1) : 0;
    uint64_t r = 1;
    while (y) {
        if (y & 1)
            r *= x;
        x *= x;
        y >>= 1;
    }
    return r;
}

#define ARITH_TYPES(X) X(f32, float, float) X(f64, double, double) X(i32, int32_t, uint32_t) \
    X(i64, int64_t, uint64_t) X(i8, int8_t, uint32_t) X(i16, int16_t, uint32_t) X(u8, uint8_t, uint32_t) \
    X(u16, uint16_t, uint32_t) X(u32, uint32_t, uint32_t) X(u64, uint64_t, uint64_t)
#define INT_TYPES(X) X(i32, int32_t) X(i64, int64_t) X(i8, int8_t) X(i16, int16_t) \
    X(u8, uint8_t) X(u16, uint16_t) X(u32, uint32_t) X(u64, uint64_t)

#define GEN_COMMON(S, T, U)                                       \
    DEF_LOOP(add_##S, T, T, (U)x + (U)y)                          \
    DEF_LOOP(sub_##S, T, T, (U)x - (U)y)                          \
    DEF_LOOP(mul_##S, T, T, (U)x * (U)y)                          \
    DEF_LOOP(max_##S, T, T, x > y ? x : y)                        \
    DEF_LOOP(min_##S, T, T, x < y ? x : y)                        \
    DEF_LOOP(eq_##S, T, uint8_t, x == y)                          \
    DEF_LOOP(lt_##S, T, uint8_t, x < y)                           \
    DEF_LOOP(gt_##S, T, uint8_t, x > y)                           \
    DEF_LOOP(le_##S, T, uint8_t, x <= y)                          \
    DEF_LOOP(ge_##S, T, uint8_t, x >= y)
ARITH_TYPES(GEN_COMMON)

#define GEN_INT(S, T)                                             \
    DEF_LOOP(div_##S, T, T, IDIV(x, y))                           \
    DEF_LOOP(mod_##S, T, T, IMOD(x, y))                           \
    DEF_LOOP(fmod_##S, T, T, IFMOD(x, y))                         \
    DEF_LOOP(pow_##S, T, T, int_pow((uint64_t)x, (int64_t)y))     \
    DEF_LOOP(band_##S, T, T, x & y)                               \
    DEF_LOOP(bor_##S, T, T, x | y)                                \
    DEF_LOOP(bxor_##S, T, T, x ^ y)
INT_TYPES(GEN_INT)

#define GEN_SHIFT(S, T)                                           \
    DEF_LOOP(shl_##S, T, T, y >= sizeof(T) * 8 ? 0 : x << y)      \
    DEF_LOOP(shr_##S, T, T, y >= sizeof(T) * 8 ? 0 : x >> y)
GEN_SHIFT(u8, uint8_t) GEN_SHIFT(u16, uint16_t) GEN_SHIFT(u32, uint32_t) GEN_SHIFT(u64, uint64_t)

DEF_LOOP(div_f32, float, float, x / y)
DEF_LOOP(div_f64, double, double, x / y)
DEF_LOOP(pow_f32, float, float, powf(x, y))
DEF_LOOP(pow_f64, double, double, pow(x, y))
DEF_LOOP(mod_f32, float, float, FMODPY(x, y))
DEF_LOOP(mod_f64, double, double, FMODPY(x, y))
DEF_LOOP(fmod_f32, float, float, fmodf(x, y))
DEF_LOOP(fmod_f64, double, double, fmod(x, y))
DEF_LOOP(and_b, uint8_t, uint8_t, (x != 0) & (y != 0))
DEF_LOOP(or_b, uint8_t, uint8_t, (x != 0) | (y != 0))
DEF_LOOP(xor_b, uint8_t, uint8_t, (x != 0) ^ (y != 0))
DEF_LOOP(eq_b, uint8_t, uint8_t, (x != 0) == (y != 0))

/* Pow with a float exponent and an integer or other-typed base is handled
 * by converting through double (rare in real models). */

static bin_loop pick_loop(bin_kind kind, st_dtype t)
{
    switch (kind) {
/* The integer loops of OPNAME for t, or NULL for other types. */
#define INT_CASES(OPNAME)                                              \
    case ST_DT_INT32: return OPNAME##_i32;                             \
    case ST_DT_INT64: return OPNAME##_i64;                             \
    case ST_DT_INT8: return OPNAME##_i8;                               \
    case ST_DT_INT16: return OPNAME##_i16;                             \
    case ST_DT_UINT8: return OPNAME##_u8;                              \
    case ST_DT_UINT16: return OPNAME##_u16;                            \
    case ST_DT_UINT32: return OPNAME##_u32;                            \
    case ST_DT_UINT64: return OPNAME##_u64;                            \
    default: return NULL;
#define PICK_INT(OPNAME) switch (t) { INT_CASES(OPNAME) }
#define PICK(OPNAME)                                                   \
    switch (t) {                                                       \
    case ST_DT_FLOAT32: return OPNAME##_f32;                           \
    case ST_DT_FLOAT64: return OPNAME##_f64;                           \
    INT_CASES(OPNAME)                                                  \
    }
    case B_ADD: PICK(add)
    case B_SUB: PICK(sub)
    case B_MUL: PICK(mul)
    case B_DIV: PICK(div)
    case B_POW: PICK(pow)
    case B_MOD: PICK(mod)
    case B_FMOD: PICK(fmod)
    case B_MAX: PICK(max)
    case B_MIN: PICK(min)
    case B_EQ: if (t == ST_DT_BOOL) return eq_b; PICK(eq)
    case B_LT: PICK(lt)
    case B_GT: PICK(gt)
    case B_LE: PICK(le)
    case B_GE: PICK(ge)
    case B_AND: return t == ST_DT_BOOL ? and_b : NULL;
    case B_OR: return t == ST_DT_BOOL ? or_b : NULL;
    case B_XOR: return t == ST_DT_BOOL ? xor_b : NULL;
    case B_BITAND: PICK_INT(band)
    case B_BITOR: PICK_INT(bor)
    case B_BITXOR: PICK_INT(bxor)
    case B_SHL:
        switch (t) {
        case ST_DT_UINT8: return shl_u8;
        case ST_DT_UINT16: return shl_u16;
        case ST_DT_UINT32: return shl_u32;
        case ST_DT_UINT64: return shl_u64;
        default: return NULL;
        }
    case B_SHR:
        switch (t) {
        case ST_DT_UINT8: return shr_u8;
        case ST_DT_UINT16: return shr_u16;
        case ST_DT_UINT32: return shr_u32;
        case ST_DT_UINT64: return shr_u64;
        default: return NULL;
        }
    }
    return NULL;
#undef PICK
#undef PICK_INT
#undef INT_CASES
}

static bool is_compare(bin_kind k)
{
    return k == B_EQ || k == B_LT || k == B_GT || k == B_LE || k == B_GE || k == B_AND || k == B_OR ||
           k == B_XOR;
}

typedef struct bin_state {
    bin_kind kind;
} bin_state;

/* Runs `loop` over a broadcast: a and b expanded to out's shape. */
static void broadcast_apply(bin_loop loop, const eng_tensor *a, const eng_tensor *b, eng_tensor *o)
{
    uint32_t r = o->rank;
    if (o->count == 0)
        return;
    size_t ea = st_dtype_size(a->dtype), eb = st_dtype_size(b->dtype), eo = st_dtype_size(o->dtype);
    if (r == 0 || (a->count == o->count && b->count == o->count)) {
        loop(a->data, 1, b->data, 1, o->data, o->count);
        return;
    }
    if (b->count == 1) {
        loop(a->data, a->count == 1 ? 0 : 1, b->data, 0, o->data, o->count);
        if (a->count == 1) /* both scalar-like but out has many: fill */
            for (size_t i = 1; i < o->count; i++)
                memcpy((char *)o->data + i * eo, o->data, eo);
        return;
    }
    if (a->count == 1) {
        loop(a->data, 0, b->data, 1, o->data, o->count);
        return;
    }
    /* General case: strides in elements, 0 on broadcast dims. */
    size_t sa[ENG_MAX_RANK] = { 0 }, sb[ENG_MAX_RANK] = { 0 };
    size_t acc_a = 1, acc_b = 1;
    for (int i = (int)r - 1; i >= 0; i--) {
        int ia = i - (int)(r - a->rank), ib = i - (int)(r - b->rank);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        sa[i] = da == 1 ? 0 : acc_a;
        sb[i] = db == 1 ? 0 : acc_b;
        acc_a *= (size_t)da;
        acc_b *= (size_t)db;
    }
    /* Merge trailing dims while both operands stay contiguous or fixed. */
    size_t inner = (size_t)o->shape[r - 1];
    size_t isa = sa[r - 1] ? 1 : 0, isb = sb[r - 1] ? 1 : 0;
    int outer_rank = (int)r - 1;
    while (outer_rank > 0) {
        int d = outer_rank - 1;
        bool a_ok = isa ? sa[d] == inner : sa[d] == 0;
        bool b_ok = isb ? sb[d] == inner : sb[d] == 0;
        if (!a_ok || !b_ok)
            break;
        inner *= (size_t)o->shape[d];
        outer_rank--;
    }
    size_t idx[ENG_MAX_RANK] = { 0 };
    size_t n_outer = o->count / (inner ? inner : 1);
    size_t off_a = 0, off_b = 0;
    char *out = o->data;
    for (size_t it = 0; it < n_outer; it++) {
        loop((const char *)a->data + off_a * ea, isa, (const char *)b->data + off_b * eb, isb,
             out + it * inner * eo, inner);
        for (int d = outer_rank - 1; d >= 0; d--) {
            idx[d]++;
            off_a += sa[d];
            off_b += sb[d];
            if (idx[d] < (size_t)o->shape[d])
                break;
            off_a -= sa[d] * idx[d];
            off_b -= sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}

static st_status binary_check(eng_node *n, st_arena *arena, st_error *err, bin_kind kind)
{
    bin_state *st = st_arena_alloc(arena, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->kind = kind;
    if (kind == B_MOD && eng_attr_int(n, "fmod", 0))
        st->kind = B_FMOD;
    if (kind == B_SHL && st_str_eq_c(eng_attr_str(n, "direction", ""), "RIGHT"))
        st->kind = B_SHR;
    n->state = st;
    if (n->n_inputs != 2)
        return st_fail(err, ST_ECORRUPT, "takes 2 inputs, has %u", n->n_inputs);
    return ST_OK;
}

static st_status binary_infer(eng_kctx *k)
{
    const bin_state *st = k->node->state;
    const eng_tensor *a = k->in[0], *b = k->in[1];
    if (!a || !b)
        return eng_fail(k, ST_EINVAL, "both inputs are required");
    if (a->dtype != b->dtype)
        return eng_fail(k, ST_ETYPE, "inputs have different types (%s and %s)", st_dtype_name(a->dtype),
                        st_dtype_name(b->dtype));
    if (!pick_loop(st->kind, a->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported", st_dtype_name(a->dtype));
    int64_t shape[ENG_MAX_RANK];
    uint32_t rank;
    st_status s = eng_broadcast_shape(a, b, shape, &rank, k);
    if (s != ST_OK)
        return s;
    eng_set_shape(k->out[0], is_compare(st->kind) ? ST_DT_BOOL : a->dtype, shape, rank);
    return ST_OK;
}

static st_status binary_run(eng_kctx *k)
{
    const bin_state *st = k->node->state;
    broadcast_apply(pick_loop(st->kind, k->in[0]->dtype), k->in[0], k->in[1], k->out[0]);
    return ST_OK;
}

#define BINARY_OP(NAME, KIND)                                                   \
    static st_status check_##NAME(eng_node *n, st_arena *arena, st_error *err) \
    {                                                                           \
        return binary_check(n, arena, err, KIND);                               \
    }
BINARY_OP(add, B_ADD)
BINARY_OP(sub, B_SUB)
BINARY_OP(mul, B_MUL)
BINARY_OP(div, B_DIV)
BINARY_OP(pow, B_POW)
BINARY_OP(mod, B_MOD)
BINARY_OP(equal, B_EQ)
BINARY_OP(less, B_LT)
BINARY_OP(greater, B_GT)
BINARY_OP(less_equal, B_LE)
BINARY_OP(greater_equal, B_GE)
BINARY_OP(and, B_AND)
BINARY_OP(or, B_OR)
BINARY_OP(xor, B_XOR)
BINARY_OP(bitand, B_BITAND)
BINARY_OP(bitor, B_BITOR)
BINARY_OP(bitxor, B_BITXOR)
BINARY_OP(bitshift, B_SHL)

/* Pow's exponent may have another type than its base (opset 12+). */
static st_status pow_infer(eng_kctx *k)
{
    const eng_tensor *a = k->in[0], *b = k->in[1];
    if (!a || !b)
        return eng_fail(k, ST_EINVAL, "both inputs are required");
    int64_t shape[ENG_MAX_RANK];
    uint32_t rank;
    st_status s = eng_broadcast_shape(a, b, shape, &rank, k);
    if (s != ST_OK)
        return s;
    if (!pick_loop(B_POW, a->dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported", st_dtype_name(a->dtype));
    eng_set_shape(k->out[0], a->dtype, shape, rank);
    return ST_OK;
}

static st_status pow_run(eng_kctx *k)
{
    const eng_tensor *a = k->in[0], *b = k->in[1];
    if (a->dtype == b->dtype)
        return binary_run(k);
    /* Mixed types: compute through double, element by element. */
    eng_tensor *o = k->out[0];
    uint32_t r = o->rank;
    size_t idx[ENG_MAX_RANK] = { 0 };
    for (size_t i = 0; i < o->count; i++) {
        size_t ia = 0, ib = 0, mul_a = 1, mul_b = 1;
        for (int d = (int)r - 1; d >= 0; d--) {
            int da = d - (int)(r - a->rank), db = d - (int)(r - b->rank);
            if (da >= 0) {
                ia += (a->shape[da] == 1 ? 0 : idx[d]) * mul_a;
                mul_a *= (size_t)a->shape[da];
            }
            if (db >= 0) {
                ib += (b->shape[db] == 1 ? 0 : idx[d]) * mul_b;
                mul_b *= (size_t)b->shape[db];
            }
        }
        double v = pow(eng_num_at(a, ia), eng_num_at(b, ib));
        switch (o->dtype) {
        case ST_DT_FLOAT32: ((float *)o->data)[i] = (float)v; break;
        case ST_DT_FLOAT64: ((double *)o->data)[i] = v; break;
        case ST_DT_INT32: ((int32_t *)o->data)[i] = (int32_t)v; break;
        case ST_DT_INT64: ((int64_t *)o->data)[i] = (int64_t)v; break;
        default: return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported", st_dtype_name(o->dtype));
        }
        for (int d = (int)r - 1; d >= 0; d--) {
            if (++idx[d] < (size_t)o->shape[d])
                break;
            idx[d] = 0;
        }
    }
    return ST_OK;
}

/* Variadic Max/Min/Sum/Mean: fold pairwise with broadcasting. */
typedef struct var_state {
    bin_kind kind;
    bool is_mean;
} var_state;

static st_status variadic_infer(eng_kctx *k)
{
    if (k->n_in == 0 || !k->in[0])
        return eng_fail(k, ST_EINVAL, "needs at least one input");
    eng_tensor acc = *k->in[0];
    int64_t shape[ENG_MAX_RANK];
    uint32_t rank = acc.rank;
    memcpy(shape, acc.shape, sizeof shape);
    for (uint32_t i = 1; i < k->n_in; i++) {
        if (!k->in[i] || k->in[i]->dtype != acc.dtype)
            return eng_fail(k, ST_ETYPE, "all inputs must have the same type");
        eng_tensor cur = eng_tensor_make(acc.dtype, shape, rank, NULL);
        st_status s = eng_broadcast_shape(&cur, k->in[i], shape, &rank, k);
        if (s != ST_OK)
            return s;
    }
    const var_state *st = k->node->state;
    if (!pick_loop(st->kind, acc.dtype))
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported", st_dtype_name(acc.dtype));
    eng_set_shape(k->out[0], acc.dtype, shape, rank);
    return ST_OK;
}

static st_status variadic_run(eng_kctx *k)
{
    const var_state *st = k->node->state;
    eng_tensor *o = k->out[0];
    bin_loop loop = pick_loop(st->kind, o->dtype);
    size_t es = st_dtype_size(o->dtype);
    if (k->n_in == 1) {
        /* Broadcast the single input into the output (same shape). */
        memcpy(o->data, k->in[0]->data, o->count * es);
    } else {
        broadcast_apply(loop, k->in[0], k->in[1], o);
        for (uint32_t i = 2; i < k->n_in; i++)
            broadcast_apply(loop, o, k->in[i], o);
    }
    if (st->is_mean) {
        double n = (double)k->n_in;
        if (o->dtype == ST_DT_FLOAT32)
            for (size_t i = 0; i < o->count; i++)
                ((float *)o->data)[i] = (float)(((float *)o->data)[i] / n);
        else if (o->dtype == ST_DT_FLOAT64)
            for (size_t i = 0; i < o->count; i++)
                ((double *)o->data)[i] /= n;
    }
    return ST_OK;
}

static st_status variadic_check(eng_node *n, st_arena *arena, st_error *err, bin_kind kind, bool is_mean)
{
    var_state *st = st_arena_alloc(arena, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->kind = kind;
    st->is_mean = is_mean;
    n->state = st;
    return ST_OK;
}

static st_status check_vmax(eng_node *n, st_arena *a, st_error *e) { return variadic_check(n, a, e, B_MAX, false); }
static st_status check_vmin(eng_node *n, st_arena *a, st_error *e) { return variadic_check(n, a, e, B_MIN, false); }
static st_status check_vsum(eng_node *n, st_arena *a, st_error *e) { return variadic_check(n, a, e, B_ADD, false); }
static st_status check_vmean(eng_node *n, st_arena *a, st_error *e) { return variadic_check(n, a, e, B_ADD, true); }

/* --- unary ops -------------------------------------------------------------- */

typedef enum { U_NEG, U_ABS, U_SQRT, U_EXP, U_LOG, U_RECIP, U_FLOOR, U_CEIL, U_SIGN, U_SIN, U_COS, U_TAN,
               U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH, U_ASINH, U_ACOSH, U_ATANH, U_RELU, U_LEAKY,
               U_ELU, U_SELU, U_SIGMOID, U_HSIGMOID, U_HSWISH, U_TANH, U_SOFTPLUS, U_SOFTSIGN, U_ERF,
               U_ROUND, U_NOT, U_ISNAN, U_ISINF, U_CELU, U_THRESHRELU, U_MISH, U_GELU, U_BITNOT,
               U_SHRINK } un_kind;

typedef struct un_state {
    un_kind kind;
    float alpha, beta, gamma;
    int detect_pos, detect_neg;
} un_state;

static double unary_f(const un_state *st, double x)
{
    switch (st->kind) {
    case U_NEG: return -x;
    case U_ABS: return fabs(x);
    case U_SQRT: return sqrt(x);
    case U_EXP: return exp(x);
    case U_LOG: return log(x);
    case U_RECIP: return 1.0 / x;
    case U_FLOOR: return floor(x);
    case U_CEIL: return ceil(x);
    case U_SIGN: return x > 0 ? 1.0 : x < 0 ? -1.0 : x;
    case U_SIN: return sin(x);
    case U_COS: return cos(x);
    case U_TAN: return tan(x);
    case U_ASIN: return asin(x);
    case U_ACOS: return acos(x);
    case U_ATAN: return atan(x);
    case U_SINH: return sinh(x);
    case U_COSH: return cosh(x);
    case U_ASINH: return asinh(x);
    case U_ACOSH: return acosh(x);
    case U_ATANH: return atanh(x);
    case U_RELU: return x > 0 ? x : 0;
    case U_LEAKY: return x >= 0 ? x : st->alpha * x;
    case U_ELU: return x >= 0 ? x : st->alpha * (exp(x) - 1);
    case U_SELU: return x > 0 ? st->gamma * x : st->gamma * (st->alpha * exp(x) - st->alpha);
    case U_SIGMOID: return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
    case U_HSIGMOID: { double v = st->alpha * x + st->beta; return v < 0 ? 0 : v > 1 ? 1 : v; }
    case U_HSWISH: { double v = x / 6.0 + 0.5; return x * (v < 0 ? 0 : v > 1 ? 1 : v); }
    case U_TANH: return tanh(x);
    case U_SOFTPLUS: return x > 30 ? x : log1p(exp(x));
    case U_SOFTSIGN: return x / (1.0 + fabs(x));
    case U_ERF: return erf(x);
    case U_ROUND: return nearbyint(x);
    case U_CELU: return (x > 0 ? x : 0) + fmin(0.0, st->alpha * (exp(x / st->alpha) - 1));
    case U_THRESHRELU: return x > st->alpha ? x : 0;
    case U_MISH: return x * tanh(log1p(exp(x)));
    case U_GELU:
        if (st->beta != 0) /* approximate="tanh" */
            return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case U_SHRINK: return x < -st->alpha ? x + st->beta : x > st->alpha ? x - st->beta : 0;
    default: return x;
    }
}

static bool unary_float_only(un_kind k)
{
    return !(k == U_NEG || k == U_ABS || k == U_SIGN || k == U_RELU || k == U_NOT || k == U_BITNOT ||
             k == U_ISNAN || k == U_ISINF || k == U_SHRINK);
}

static st_status unary_infer(eng_kctx *k)
{
    const un_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    if (!x)
        return eng_fail(k, ST_EINVAL, "input is required");
    st_dtype t = x->dtype;
    bool ok;
    if (st->kind == U_NOT)
        ok = t == ST_DT_BOOL;
    else if (st->kind == U_BITNOT)
        ok = t != ST_DT_BOOL && t != ST_DT_STRING && t != ST_DT_FLOAT32 && t != ST_DT_FLOAT64 && t != ST_DT_FLOAT16;
    else if (unary_float_only(st->kind) || st->kind == U_ISNAN || st->kind == U_ISINF)
        ok = t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64 || t == ST_DT_FLOAT16;
    else
        ok = t != ST_DT_BOOL && t != ST_DT_STRING && t != ST_DT_UNDEFINED;
    if (!ok)
        return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported", st_dtype_name(t));
    bool to_bool = st->kind == U_ISNAN || st->kind == U_ISINF;
    eng_set_shape(k->out[0], to_bool ? ST_DT_BOOL : t, x->shape, x->rank);
    return ST_OK;
}

static inline float relu_f(float x) { return x > 0 ? x : 0; }

static st_status unary_run(eng_kctx *k)
{
    const un_state *st = k->node->state;
    const eng_tensor *x = k->in[0];
    eng_tensor *o = k->out[0];
    size_t n = x->count;
    switch (st->kind) {
    case U_NOT:
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)o->data)[i] = !((const uint8_t *)x->data)[i];
        return ST_OK;
    case U_ISNAN:
    case U_ISINF:
        for (size_t i = 0; i < n; i++) {
            double v = eng_num_at(x, i);
            uint8_t r;
            if (st->kind == U_ISNAN)
                r = isnan(v);
            else
                r = isinf(v) && ((v > 0 && st->detect_pos) || (v < 0 && st->detect_neg));
            ((uint8_t *)o->data)[i] = r;
        }
        return ST_OK;
    case U_BITNOT: {
        size_t es = st_dtype_size(x->dtype);
        const uint8_t *src = x->data;
        uint8_t *dst = o->data;
        for (size_t i = 0; i < n * es; i++)
            dst[i] = (uint8_t)~src[i];
        return ST_OK;
    }
    default:
        break;
    }
    if (x->dtype != ST_DT_FLOAT32 && x->dtype != ST_DT_FLOAT64 && x->dtype != ST_DT_FLOAT16) {
        /* Integers (Neg, Abs, Sign, Relu, Shrink): exact, wrapping like
         * numpy (-INT_MIN is INT_MIN), never through a double. */
        bool is_unsigned = x->dtype == ST_DT_UINT8 || x->dtype == ST_DT_UINT16 || x->dtype == ST_DT_UINT32 ||
                           x->dtype == ST_DT_UINT64;
        size_t es = st_dtype_size(x->dtype);
        for (size_t i = 0; i < n; i++) {
            int64_t v = eng_int_at(x, i);
            uint64_t r;
            switch (st->kind) {
            case U_NEG: r = 0 - (uint64_t)v; break;
            case U_ABS: r = !is_unsigned && v < 0 ? 0 - (uint64_t)v : (uint64_t)v; break;
            case U_SIGN: r = (uint64_t)(v == 0 ? 0 : (!is_unsigned && v < 0) ? -1 : 1); break;
            case U_RELU: r = !is_unsigned && v < 0 ? 0 : (uint64_t)v; break;
            default: {
                double d = unary_f(st, (double)v);
                r = d != d ? 0 : d >= 9.2e18 ? (uint64_t)INT64_MAX : d <= -9.2e18 ? (uint64_t)INT64_MIN
                                                                                   : (uint64_t)(int64_t)d;
            }
            }
            memcpy((char *)o->data + i * es, &r, es); /* low bytes: little-endian truncation */
        }
        return ST_OK;
    }
    if (x->dtype == ST_DT_FLOAT32) {
        const float *a = x->data;
        float *b = o->data;
        switch (st->kind) { /* the hot ones get float loops */
        case U_RELU: for (size_t i = 0; i < n; i++) b[i] = relu_f(a[i]); return ST_OK;
        case U_NEG: for (size_t i = 0; i < n; i++) b[i] = -a[i]; return ST_OK;
        case U_ABS: for (size_t i = 0; i < n; i++) b[i] = fabsf(a[i]); return ST_OK;
        case U_SQRT: for (size_t i = 0; i < n; i++) b[i] = sqrtf(a[i]); return ST_OK;
        case U_EXP: for (size_t i = 0; i < n; i++) b[i] = expf(a[i]); return ST_OK;
        case U_TANH: for (size_t i = 0; i < n; i++) b[i] = tanhf(a[i]); return ST_OK;
        case U_SIGMOID: for (size_t i = 0; i < n; i++) b[i] = 1.0f / (1.0f + expf(-a[i])); return ST_OK;
        case U_ERF: for (size_t i = 0; i < n; i++) b[i] = erff(a[i]); return ST_OK;
        case U_GELU:
            if (st->beta == 0) {
                for (size_t i = 0; i < n; i++)
                    b[i] = 0.5f * a[i] * (1.0f + erff(a[i] * 0.70710678118654752f));
                return ST_OK;
            }
            for (size_t i = 0; i < n; i++)
                b[i] = (float)unary_f(st, a[i]);
            return ST_OK;
        default:
            for (size_t i = 0; i < n; i++)
                b[i] = (float)unary_f(st, a[i]);
            return ST_OK;
        }
    }
    for (size_t i = 0; i < n; i++) {
        double v = unary_f(st, eng_num_at(x, i));
        switch (o->dtype) {
        case ST_DT_FLOAT64: ((double *)o->data)[i] = v; break;
        case ST_DT_FLOAT16: ((uint16_t *)o->data)[i] = st_float_to_half((float)v); break;
        case ST_DT_INT8: ((int8_t *)o->data)[i] = (int8_t)v; break;
        case ST_DT_INT16: ((int16_t *)o->data)[i] = (int16_t)v; break;
        case ST_DT_INT32: ((int32_t *)o->data)[i] = (int32_t)v; break;
        case ST_DT_INT64: ((int64_t *)o->data)[i] = (int64_t)v; break;
        case ST_DT_UINT8: ((uint8_t *)o->data)[i] = (uint8_t)v; break;
        case ST_DT_UINT16: ((uint16_t *)o->data)[i] = (uint16_t)v; break;
        case ST_DT_UINT32: ((uint32_t *)o->data)[i] = (uint32_t)v; break;
        case ST_DT_UINT64: ((uint64_t *)o->data)[i] = (uint64_t)v; break;
        default: return eng_fail(k, ST_EUNSUPPORTED, "type %s is not supported", st_dtype_name(o->dtype));
        }
    }
    return ST_OK;
}

static st_status unary_check(eng_node *n, st_arena *arena, st_error *err, un_kind kind, float alpha, float beta,
                             float gamma)
{
    un_state *st = st_arena_alloc(arena, sizeof *st, 8);
    if (!st)
        return st_fail(err, ST_ENOMEM, "out of memory");
    st->kind = kind;
    st->alpha = eng_attr_float(n, kind == U_SHRINK ? "lambd" : "alpha", alpha);
    st->beta = eng_attr_float(n, kind == U_SHRINK ? "bias" : "beta", beta);
    st->gamma = eng_attr_float(n, "gamma", gamma);
    st->detect_pos = (int)eng_attr_int(n, "detect_positive", 1);
    st->detect_neg = (int)eng_attr_int(n, "detect_negative", 1);
    n->state = st;
    return ST_OK;
}

#define UNARY_OP(NAME, KIND, A, B, G)                                           \
    static st_status check_##NAME(eng_node *n, st_arena *arena, st_error *err) \
    {                                                                           \
        return unary_check(n, arena, err, KIND, A, B, G);                       \
    }
UNARY_OP(neg, U_NEG, 0, 0, 0)
UNARY_OP(abs, U_ABS, 0, 0, 0)
UNARY_OP(sqrt, U_SQRT, 0, 0, 0)
UNARY_OP(exp, U_EXP, 0, 0, 0)
UNARY_OP(log, U_LOG, 0, 0, 0)
UNARY_OP(recip, U_RECIP, 0, 0, 0)
UNARY_OP(floor, U_FLOOR, 0, 0, 0)
UNARY_OP(ceil, U_CEIL, 0, 0, 0)
UNARY_OP(sign, U_SIGN, 0, 0, 0)
UNARY_OP(sin, U_SIN, 0, 0, 0)
UNARY_OP(cos, U_COS, 0, 0, 0)
UNARY_OP(tan, U_TAN, 0, 0, 0)
UNARY_OP(asin, U_ASIN, 0, 0, 0)
UNARY_OP(acos, U_ACOS, 0, 0, 0)
UNARY_OP(atan, U_ATAN, 0, 0, 0)
UNARY_OP(sinh, U_SINH, 0, 0, 0)
UNARY_OP(cosh, U_COSH, 0, 0, 0)
UNARY_OP(asinh, U_ASINH, 0, 0, 0)
UNARY_OP(acosh, U_ACOSH, 0, 0, 0)
UNARY_OP(atanh, U_ATANH, 0, 0, 0)
UNARY_OP(relu, U_RELU, 0, 0, 0)
UNARY_OP(leaky, U_LEAKY, 0.01f, 0, 0)
UNARY_OP(elu, U_ELU, 1.0f, 0, 0)
UNARY_OP(selu, U_SELU, 1.67326319217681884765625f, 0, 1.05070102214813232421875f)
UNARY_OP(sigmoid, U_SIGMOID, 0, 0, 0)
UNARY_OP(hsigmoid, U_HSIGMOID, 0.2f, 0.5f, 0)
UNARY_OP(hswish, U_HSWISH, 0, 0, 0)
UNARY_OP(tanh, U_TANH, 0, 0, 0)
UNARY_OP(softplus, U_SOFTPLUS, 0, 0, 0)
UNARY_OP(softsign, U_SOFTSIGN, 0, 0, 0)
UNARY_OP(erf, U_ERF, 0, 0, 0)

/* Gelu (opset 20) and the target of the Div-Erf-Add-Mul-Mul pattern that
 * exporters emit for it (passes.c). beta != 0 selects approximate="tanh". */
st_status eng_gelu_check(eng_node *n, st_arena *arena, st_error *err)
{
    st_status s = unary_check(n, arena, err, U_GELU, 0, 0, 0);
    if (s == ST_OK)
        ((un_state *)n->state)->beta = st_str_eq_c(eng_attr_str(n, "approximate", "none"), "tanh") ? 1.0f : 0.0f;
    return s;
}
UNARY_OP(round, U_ROUND, 0, 0, 0)
UNARY_OP(not, U_NOT, 0, 0, 0)
UNARY_OP(isnan, U_ISNAN, 0, 0, 0)
UNARY_OP(isinf, U_ISINF, 0, 0, 0)
UNARY_OP(celu, U_CELU, 1.0f, 0, 0)
UNARY_OP(threshrelu, U_THRESHRELU, 1.0f, 0, 0)
UNARY_OP(mish, U_MISH, 0, 0, 0)
UNARY_OP(bitnot, U_BITNOT, 0, 0, 0)
UNARY_OP(shrink, U_SHRINK, 0.5f, 0, 0)

st_status eng_infer_same_as_input(eng_kctx *k)
{
    if (!k->in[0])
        return eng_fail(k, ST_EINVAL, "input is required");
    eng_set_shape(k->out[0], k->in[0]->dtype, k->in[0]->shape, k->in[0]->rank);
    return ST_OK;
}

#define BIN(NAME, OPNAME, SINCE) { "", OPNAME, SINCE, check_##NAME, binary_infer, binary_run }
#define UN(NAME, OPNAME, SINCE) { "", OPNAME, SINCE, check_##NAME, unary_infer, unary_run }
#define VAR(NAME, OPNAME) { "", OPNAME, 1, check_##NAME, variadic_infer, variadic_run }

const eng_op eng_ops_elementwise[] = {
    BIN(add, "Add", 1), BIN(sub, "Sub", 1), BIN(mul, "Mul", 1), BIN(div, "Div", 1),
    { "", "Pow", 1, check_pow, pow_infer, pow_run },
    BIN(mod, "Mod", 10), BIN(equal, "Equal", 1), BIN(less, "Less", 1), BIN(greater, "Greater", 1),
    BIN(less_equal, "LessOrEqual", 12), BIN(greater_equal, "GreaterOrEqual", 12), BIN(and, "And", 1),
    BIN(or, "Or", 1), BIN(xor, "Xor", 1), BIN(bitand, "BitwiseAnd", 18), BIN(bitor, "BitwiseOr", 18),
    BIN(bitxor, "BitwiseXor", 18), BIN(bitshift, "BitShift", 11),
    VAR(vmax, "Max"), VAR(vmin, "Min"), VAR(vsum, "Sum"), VAR(vmean, "Mean"),
    UN(neg, "Neg", 1), UN(abs, "Abs", 1), UN(sqrt, "Sqrt", 1), UN(exp, "Exp", 1), UN(log, "Log", 1),
    UN(recip, "Reciprocal", 1), UN(floor, "Floor", 1), UN(ceil, "Ceil", 1), UN(sign, "Sign", 9),
    UN(sin, "Sin", 7), UN(cos, "Cos", 7), UN(tan, "Tan", 7), UN(asin, "Asin", 7), UN(acos, "Acos", 7),
    UN(atan, "Atan", 7), UN(sinh, "Sinh", 9), UN(cosh, "Cosh", 9), UN(asinh, "Asinh", 9),
    UN(acosh, "Acosh", 9), UN(atanh, "Atanh", 9), UN(relu, "Relu", 1), UN(leaky, "LeakyRelu", 1),
    UN(elu, "Elu", 1), UN(selu, "Selu", 1), UN(sigmoid, "Sigmoid", 1), UN(hsigmoid, "HardSigmoid", 1),
    UN(hswish, "HardSwish", 14), UN(tanh, "Tanh", 1), UN(softplus, "Softplus", 1),
    UN(softsign, "Softsign", 1), UN(erf, "Erf", 9), UN(round, "Round", 11), UN(not, "Not", 1),
    UN(isnan, "IsNaN", 9), UN(isinf, "IsInf", 10), UN(celu, "Celu", 12),
    UN(threshrelu, "ThresholdedRelu", 10), UN(mish, "Mish", 18), UN(bitnot, "BitwiseNot", 18),
    UN(shrink, "Shrink", 9),
    { "", "Gelu", 20, eng_gelu_check, unary_infer, unary_run },
    { 0 },
};
