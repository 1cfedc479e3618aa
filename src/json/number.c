/* number.c - JSON number scanning and correctly rounded decimal-to-binary
 * conversion.  Three tiers: Clinger's exact fast path (one IEEE operation),
 * a 128-bit product against a table of powers of five with an explicit
 * error window (after Eisel and Lemire), and an exact big-integer
 * comparison against the binary midpoints for whatever the window cannot
 * decide.  float32 and float16 go through the correctly rounded double and
 * fall back to the exact comparison when that double sits exactly on a
 * midpoint of the narrow type, which is the only case where rounding twice
 * differs from rounding once. */
#include <math.h>
#include <string.h>

#include "json/json_int.h"

typedef unsigned __int128 u128;

#define F64_INF_BITS 0x7ff0000000000000ull
#define F64_SIGN_BIT 0x8000000000000000ull
#define F64_FRAC_MASK 0x000fffffffffffffull

/* A binary format: p significant bits (hidden bit included), qmin the
 * exponent of the smallest subnormal's unit, inf_bits its infinity. */
typedef struct {
    int p;
    int qmin;
    uint64_t inf_bits;
} bin_format;

static const bin_format fmt_f64 = { 53, -1074, F64_INF_BITS };
static const bin_format fmt_f32 = { 24, -149, 0x7f800000u };
static const bin_format fmt_f16 = { 11, -24, 0x7c00u };

static inline uint64_t dbl_bits(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static inline double bits_dbl(uint64_t b)
{
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* ---- exact big-integer comparison (the slow path) --------------------------- */

/* Enough for every comparison the slow path makes: at most 800 decimal
 * digits (2658 bits) times 5^1143 or shifted by the binary exponent range;
 * about 3800 bits are ever needed. */
#define BIG_LIMBS 80
#define BIG_MAX_DIGITS 800

typedef struct {
    int n; /* limbs in use, little-endian, no leading zero limb */
    uint64_t d[BIG_LIMBS];
} big_int;

static bool big_mul_add(big_int *a, uint64_t mul, uint64_t add)
{
    u128 carry = add;
    for (int i = 0; i < a->n; i++) {
        u128 t = (u128)a->d[i] * mul + carry;
        a->d[i] = (uint64_t)t;
        carry = t >> 64;
    }
    if (carry) {
        if (a->n == BIG_LIMBS)
            return false;
        a->d[a->n++] = (uint64_t)carry;
    }
    return true;
}

static bool big_mul_pow5(big_int *a, int64_t n)
{
    static const uint64_t pow5_27 = 7450580596923828125ull;
    while (n >= 27) {
        if (!big_mul_add(a, pow5_27, 0))
            return false;
        n -= 27;
    }
    uint64_t m = 1;
    while (n-- > 0)
        m *= 5;
    return m == 1 || big_mul_add(a, m, 0);
}

static bool big_shl(big_int *a, int64_t bits)
{
    if (a->n == 0 || bits == 0)
        return true;
    int64_t limbs = bits / 64;
    int sh = (int)(bits % 64);
    int64_t need = a->n + limbs + 1;
    if (need > BIG_LIMBS) {
        /* The top limb may not spill; check exactly before giving up. */
        if (need - 1 > BIG_LIMBS || (sh && (a->d[a->n - 1] >> (64 - sh))))
            return false;
    }
    int n = a->n;
    uint64_t spill = sh ? a->d[n - 1] >> (64 - sh) : 0;
    for (int i = n - 1; i >= 0; i--) {
        uint64_t v = a->d[i] << sh;
        if (sh && i > 0)
            v |= a->d[i - 1] >> (64 - sh);
        a->d[i + limbs] = v;
    }
    for (int64_t i = 0; i < limbs; i++)
        a->d[i] = 0;
    a->n = (int)(n + limbs);
    if (spill)
        a->d[a->n++] = spill;
    return true;
}

static int big_cmp(const big_int *a, const big_int *b)
{
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    for (int i = a->n - 1; i >= 0; i--)
        if (a->d[i] != b->d[i])
            return a->d[i] < b->d[i] ? -1 : 1;
    return 0;
}

static inline char decimal_digit(const json_decimal *d, size_t i)
{
    return i < d->int_len ? d->int_digits[i] : d->frac_digits[i - d->int_len];
}

/* |value| as D * 10^E plus `sticky` (non-zero digits beyond the first
 * BIG_MAX_DIGITS significant ones; midpoints of every supported format have
 * fewer significant digits, so they only break ties). */
static bool decimal_to_big(const json_decimal *d, big_int *D, int64_t *E, bool *sticky)
{
    static const uint64_t pow10[20] = {
        1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
        10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
        100000000000ull, 1000000000000ull, 10000000000000ull,
        100000000000000ull, 1000000000000000ull, 10000000000000000ull,
        100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
    };
    size_t total = d->int_len + d->frac_len, i = 0;
    while (i < total && decimal_digit(d, i) == '0')
        i++;
    D->n = 0;
    *sticky = false;
    *E = 0;
    if (i == total)
        return true;
    size_t end = total - i > BIG_MAX_DIGITS ? i + BIG_MAX_DIGITS : total;
    uint64_t acc = 0;
    int chunk = 0;
    for (size_t j = i; j < end; j++) {
        acc = acc * 10 + (uint64_t)(decimal_digit(d, j) - '0');
        if (++chunk == 19) {
            if (!big_mul_add(D, pow10[19], acc))
                return false;
            acc = 0;
            chunk = 0;
        }
    }
    if (chunk && !big_mul_add(D, pow10[chunk], acc))
        return false;
    for (size_t j = end; j < total; j++)
        if (decimal_digit(d, j) != '0') {
            *sticky = true;
            break;
        }
    *E = d->exp10 - (int64_t)d->frac_len + (int64_t)(total - end);
    return true;
}

/* Sign of (x - midpoint between format values b and b+1), x = D*10^E (+sticky).
 * 2 when the numbers do not fit (never expected). */
static int cmp_midpoint(const big_int *D, int64_t E, bool sticky,
                        const bin_format *f, uint64_t b)
{
    uint64_t be = b >> (f->p - 1), frac = b & ((1ull << (f->p - 1)) - 1);
    uint64_t m;
    int64_t k;
    if (be == 0) {
        m = frac;
        k = f->qmin;
    } else {
        m = frac | (1ull << (f->p - 1));
        k = f->qmin + (int64_t)be - 1;
    }
    /* midpoint = (2m + 1) * 2^(k-1) */
    big_int L = *D, R;
    R.n = 1;
    R.d[0] = 2 * m + 1;
    bool ok = E >= 0 ? big_mul_pow5(&L, E) : big_mul_pow5(&R, -E);
    int64_t el = E, er = k - 1;
    ok = ok && (el > er ? big_shl(&L, el - er) : big_shl(&R, er - el));
    if (!ok)
        return 2;
    int c = big_cmp(&L, &R);
    return c == 0 && sticky ? 1 : c;
}

/* The correctly rounded format value of |x| (bits, sign excluded), given a
 * candidate within a few units of the last place. */
static uint64_t slow_path(const json_decimal *d, const bin_format *f, uint64_t cand)
{
    big_int D;
    int64_t E;
    bool sticky;
    if (!decimal_to_big(d, &D, &E, &sticky) || D.n == 0)
        return D.n == 0 ? 0 : cand;
    for (int iter = 0; iter < 64; iter++) {
        if (cand < f->inf_bits) {
            int c = cmp_midpoint(&D, E, sticky, f, cand);
            if (c == 2)
                break;
            if (c > 0 || (c == 0 && (cand & 1))) {
                cand++;
                continue;
            }
        }
        if (cand > 0) {
            int c = cmp_midpoint(&D, E, sticky, f, cand - 1);
            if (c == 2)
                break;
            if (c < 0 || (c == 0 && (cand & 1))) {
                cand--;
                continue;
            }
        }
        break;
    }
    return cand;
}

/* ---- 128-bit tier -------------------------------------------------------- */

static inline uint64_t compose_f64(uint64_t m, int64_t ex, int keep)
{
    if (keep < 53)
        return m; /* subnormal: m == 2^52 is exactly the smallest normal */
    if (m >> 53) {
        m >>= 1;
        ex++;
    }
    if (ex > 1023)
        return F64_INF_BITS;
    return ((uint64_t)(ex + 1023) << 52) | (m & F64_FRAC_MASK);
}

/* Rounds w * 10^q (w != 0, q within the table) to double bits.  The table
 * entry is exact for 0 <= q <= 55, so the product is exact there; elsewhere
 * the true product lies in [z, z + 2) units of z's last bit, and the result
 * is decided unless the discarded bits sit in that window around one half.
 * Returns false when undecided, with *bits within one unit. */
static bool round_w_pow10(uint64_t w, int64_t q, uint64_t *bits)
{
    int l = __builtin_clzll(w);
    uint64_t wn = w << l;
    const uint64_t *t = json_pow5_table[q - JSON_POW5_QMIN];
    u128 hi = (u128)wn * t[0];
    u128 lo = (u128)wn * t[1];
    u128 z = hi + (uint64_t)(lo >> 64);
    uint64_t low = (uint64_t)lo;
    bool exact = q >= 0 && q <= 55;
    int top = 126 + (int)(z >> 127);
    int64_t ex = top + q + json_flog2_pow5((int)q) - 63 - l; /* x in [2^ex, 2^(ex+1)) */
    int keep = ex >= -1022 ? 53 : (int)(ex + 1075);
    if (keep <= 0) {
        /* Below the smallest subnormal: 0 or 2^-1074 (no exact cases here). */
        u128 one = (u128)1 << top;
        if (keep == 0 && z > one) {
            *bits = 1;
            return true;
        }
        *bits = 0;
        if (keep == 0)
            return false;
        /* x < 2^(ex+1) <= 2^-1075 unless the error window reaches it. */
        return z < one + (one - 2);
    }
    int discard = top + 1 - keep;
    uint64_t m = (uint64_t)(z >> discard);
    u128 rem = z & (((u128)1 << discard) - 1);
    u128 half = (u128)1 << (discard - 1);
    bool up;
    if (exact) {
        up = rem > half || (rem == half && (low != 0 || (m & 1)));
    } else if (rem > half) {
        up = true;
    } else if (rem + 2 <= half) {
        up = false;
    } else {
        *bits = compose_f64(m, ex, keep);
        return false;
    }
    *bits = compose_f64(m + up, ex, keep);
    return true;
}

const double json_pow10_exact[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* |value| as double bits. */
static uint64_t decimal_to_f64_bits(const json_decimal *d)
{
    uint64_t w = d->w;
    int64_t q = d->q;
    if (w == 0)
        return 0;
#if FLT_EVAL_METHOD == 0
    /* Clinger: both operands exact, one correctly rounded operation. */
    if (!d->truncated && w <= (1ull << 53) && q >= -22 && q <= 22) {
        double x = (double)w;
        x = q < 0 ? x / json_pow10_exact[-q] : x * json_pow10_exact[q];
        return dbl_bits(x);
    }
#endif
    if (q > 308) /* w >= 1, so x >= 1e309 */
        return F64_INF_BITS;
    if (q < JSON_POW5_QMIN) /* x < 2^64 * 1e-343 < 2^-1075 */
        return 0;
    uint64_t b, b2;
    bool ok = round_w_pow10(w, q, &b);
    /* Dropped digits put x in [w, w+1) * 10^q: both ends must agree. */
    if (ok && d->truncated)
        ok = round_w_pow10(w + 1, q, &b2) && b2 == b;
    if (ok)
        return b;
    return slow_path(d, &fmt_f64, b);
}

double json_decimal_to_double(const json_decimal *d)
{
    uint64_t b = decimal_to_f64_bits(d);
    return bits_dbl(d->negative ? b | F64_SIGN_BIT : b);
}

/* Rounds positive double bits to a narrower format (ties to even) and tells
 * whether the double was exactly on a midpoint of that format. */
static uint64_t narrow_bits(uint64_t db, const bin_format *f, bool *tie)
{
    *tie = false;
    if (db == 0)
        return 0;
    if (db >= F64_INF_BITS)
        return f->inf_bits;
    int be = (int)(db >> 52);
    uint64_t m = db & F64_FRAC_MASK;
    int64_t k = -1074;
    if (be) {
        m |= 1ull << 52;
        k = be - 1075;
    }
    int blen = 64 - __builtin_clzll(m);
    int64_t ex = k + blen - 1;
    int64_t emin = f->qmin + f->p - 1;
    int keep = ex >= emin ? f->p : (int)(ex - f->qmin + 1);
    if (keep <= 0) {
        if (keep < 0)
            return 0;
        /* In [2^(qmin-1), 2^qmin): exactly half rounds to even (zero). */
        *tie = m == (1ull << (blen - 1));
        return *tie ? 0 : 1;
    }
    int discard = blen - keep;
    uint64_t r;
    if (discard <= 0) {
        r = m << -discard;
    } else {
        r = m >> discard;
        uint64_t rem = m & ((1ull << discard) - 1), half = 1ull << (discard - 1);
        *tie = rem == half;
        if (rem > half || (rem == half && (r & 1)))
            r++;
    }
    if (keep < f->p)
        return r;
    if (r >> f->p) {
        r >>= 1;
        ex++;
    }
    uint64_t biased = (uint64_t)(ex - emin + 1);
    if (biased >= (f->inf_bits >> (f->p - 1)))
        return f->inf_bits;
    return (biased << (f->p - 1)) | (r & ((1ull << (f->p - 1)) - 1));
}

float json_decimal_to_float(const json_decimal *d)
{
    uint64_t db = decimal_to_f64_bits(d);
    uint32_t fb;
    /* A float32 midpoint has at most 25 significant bits, so the low 28
     * bits of the double's fraction are zero; otherwise the cast is exact
     * single rounding. */
    if (db & 0x0fffffffu) {
        float f = (float)bits_dbl(db);
        memcpy(&fb, &f, sizeof fb);
    } else {
        bool tie;
        fb = (uint32_t)narrow_bits(db, &fmt_f32, &tie);
        if (tie)
            fb = (uint32_t)slow_path(d, &fmt_f32, fb);
    }
    if (d->negative)
        fb |= 0x80000000u;
    float f;
    memcpy(&f, &fb, sizeof f);
    return f;
}

uint16_t json_decimal_to_half(const json_decimal *d)
{
    uint64_t db = decimal_to_f64_bits(d);
    bool tie;
    uint64_t hb = narrow_bits(db, &fmt_f16, &tie);
    if (tie)
        hb = slow_path(d, &fmt_f16, hb);
    if (d->negative)
        hb |= 0x8000u;
    return (uint16_t)hb;
}

/* ---- integers ---------------------------------------------------------- */

int json_decimal_to_magnitude(const json_decimal *d, uint64_t *mag)
{
    if (d->is_plain) {
        *mag = d->w;
        return 0;
    }
    size_t total = d->int_len + d->frac_len, first = 0, last = total;
    while (first < total && decimal_digit(d, first) == '0')
        first++;
    *mag = 0;
    if (first == total)
        return 0;
    while (decimal_digit(d, last - 1) == '0')
        last--;
    /* value = digits[first, last) * 10^scale, last digit non-zero */
    int64_t scale = d->exp10 - (int64_t)d->frac_len + (int64_t)(total - last);
    if (scale < 0)
        return 1;
    if ((int64_t)(last - first) + scale > 20)
        return 2;
    uint64_t v = 0;
    for (size_t i = first; i < last; i++) {
        if (__builtin_mul_overflow(v, 10u, &v) ||
            __builtin_add_overflow(v, (uint64_t)(decimal_digit(d, i) - '0'), &v))
            return 2;
    }
    for (int64_t i = 0; i < scale; i++)
        if (__builtin_mul_overflow(v, 10u, &v))
            return 2;
    *mag = v;
    return 0;
}

/* ---- public one-shot parsers ---------------------------------------------- */

static st_status scan_whole(st_str text, json_decimal *d)
{
    size_t bad;
    const char *why;
    size_t n = json_number_scan(text.ptr, text.len, d, &bad, &why);
    return n != 0 && n == text.len ? ST_OK : ST_ECORRUPT;
}

st_status json_parse_double(st_str text, double *out)
{
    json_decimal d;
    st_status s = scan_whole(text, &d);
    if (s != ST_OK)
        return s;
    double v = json_decimal_to_double(&d);
    if (isinf(v))
        return ST_EINVAL;
    *out = v;
    return ST_OK;
}

st_status json_parse_float(st_str text, float *out)
{
    json_decimal d;
    st_status s = scan_whole(text, &d);
    if (s != ST_OK)
        return s;
    float v = json_decimal_to_float(&d);
    if (isinf(v))
        return ST_EINVAL;
    *out = v;
    return ST_OK;
}

st_status json_parse_half(st_str text, uint16_t *out)
{
    json_decimal d;
    st_status s = scan_whole(text, &d);
    if (s != ST_OK)
        return s;
    uint16_t v = json_decimal_to_half(&d);
    if ((v & 0x7fffu) == 0x7c00u)
        return ST_EINVAL;
    *out = v;
    return ST_OK;
}
