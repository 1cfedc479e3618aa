/* shortest.c - shortest round-trip decimal text of binary floats (float64,
 * float32, float16), laid out like Python's repr.
 *
 * The digit search follows Giulietti's "Schubfach" idea: with 10^k no
 * larger than the rounding interval of v, the interval holds at most one
 * multiple of 10^(k+1) and at least one of 10^k, so the answer is either
 * that multiple or the nearer of s*10^k and (s+1)*10^k, s = floor(v/10^k).
 * The interval ends and v are scaled by 10^-k with a 126-bit power from the
 * shared table and rounded to odd, which keeps every comparison against a
 * multiple of 4 exact. */
#include <string.h>

#include "json/json_int.h"

typedef unsigned __int128 u128;

/* floor(q * log10(2)) and floor(q * log10(2) + log10(3/4)) for
 * |q| < 1200 (checked exhaustively with exact arithmetic). */
static inline int flog10_pow2(int q)
{
    return (int)(((int64_t)q * 1292913986) >> 32);
}

static inline int flog10_three_quarters_pow2(int q)
{
    return (int)(((int64_t)q * 1292913986 - 536607444) >> 32);
}

static const uint64_t pow5_u64[28] = {
    1ull, 5ull, 25ull, 125ull, 625ull, 3125ull, 15625ull, 78125ull,
    390625ull, 1953125ull, 9765625ull, 48828125ull, 244140625ull,
    1220703125ull, 6103515625ull, 30517578125ull, 152587890625ull,
    762939453125ull, 3814697265625ull, 19073486328125ull, 95367431640625ull,
    476837158203125ull, 2384185791015625ull, 11920928955078125ull,
    59604644775390625ull, 298023223876953125ull, 1490116119384765625ull,
    7450580596923828125ull,
};

/* Round to odd of cb * 2^q * 10^-k, computed as g * (cb << h) / 2^128 where
 * g = ceil(10^-k * 2^(125 - floor(log2 10^-k))).  g is exact for
 * 0 <= -k <= 54, making the product exact.  For k > 0, g is a slight
 * over-estimate, so an exactly integral value would show a tiny fraction
 * (at most cp / 2^128): integral means 5^k divides cb, checked then. */
static inline uint64_t round_odd(u128 g, uint64_t cb, int h, int k)
{
    uint64_t cp = cb << h;
    u128 a = (u128)(uint64_t)g * cp;
    u128 b = (u128)(uint64_t)(g >> 64) * cp;
    u128 t = b + (uint64_t)(a >> 64);
    uint64_t v = (uint64_t)(t >> 64);
    uint64_t frac_hi = (uint64_t)t, frac_lo = (uint64_t)a;
    if ((frac_hi | frac_lo) == 0)
        return v;
    if (k > 0 && frac_hi == 0 && frac_lo <= cp && k < 28 && cb % pow5_u64[k] == 0)
        return v;
    return v | 1;
}

/* v = c * 2^q with c < 2^p; p bits of precision, qmin the subnormal
 * exponent.  Writes the digits and exponent of the shortest decimal that
 * rounds back to v (nearest to v among the shortest, ties to even). */
static void shortest_decimal(uint64_t c, int q, int p, int qmin,
                             uint64_t *digits, int *exp10)
{
    uint64_t out = c & 1;
    uint64_t cb = c << 2, cbr = cb + 2, cbl;
    int k;
    if (c != (1ull << (p - 1)) || q == qmin) {
        cbl = cb - 2;
        k = flog10_pow2(q);
    } else {
        /* At a power of two the gap below is half the gap above. */
        cbl = cb - 1;
        k = flog10_three_quarters_pow2(q);
    }
    int K = -k;
    const uint64_t *t = json_pow5_table[K - JSON_POW5_QMIN];
    u128 T = ((u128)t[0] << 64) | t[1];
    bool table_exact = K >= 0 && K <= 55;
    u128 g = (T >> 2) + (!table_exact || (T & 3) != 0);
    int h = q + 3 + json_flog2_pow5(K) + K;

    uint64_t vb = round_odd(g, cb, h, k);
    uint64_t vbl = round_odd(g, cbl, h, k);
    uint64_t vbr = round_odd(g, cbr, h, k);

    uint64_t s = vb >> 2;
    if (s >= 10) {
        /* One digit shorter: the multiple of 10^(k+1) below or above. */
        uint64_t sp10 = s / 10 * 10, tp10 = sp10 + 10;
        bool upin = vbl + out <= sp10 << 2;
        bool wpin = (tp10 << 2) + out <= vbr;
        if (upin != wpin) {
            *digits = upin ? sp10 : tp10;
            *exp10 = k;
            return;
        }
    }
    uint64_t tt = s + 1;
    bool uin = vbl + out <= s << 2;
    bool win = (tt << 2) + out <= vbr;
    *exp10 = k;
    if (uin != win) {
        *digits = uin ? s : tt;
        return;
    }
    /* Both in: the nearer to v; vb against 4s + 2 is v against s + 1/2. */
    uint64_t mid = (s + tt) << 1;
    *digits = vb < mid || (vb == mid && (s & 1) == 0) ? s : tt;
}

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Writes the decimal digits of v (no leading zeros) ending at `end`;
 * returns the count. */
static int write_digits_backwards(uint64_t v, char *end)
{
    char *p = end;
    while (v >= 100) {
        uint64_t r = v % 100;
        v /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    return (int)(end - p);
}

/* Python repr layout of (-1)^neg * digits * 10^exp10 (digits != 0):
 * positional when -4 < decpt <= 16, else d.ddde[+-]XX. */
static size_t layout(char *buf, bool neg, uint64_t digits, int exp10)
{
    while (digits % 10 == 0) {
        digits /= 10;
        exp10++;
    }
    char tmp[24];
    int n = write_digits_backwards(digits, tmp + sizeof tmp);
    const char *dg = tmp + sizeof tmp - n;
    int decpt = n + exp10;
    char *o = buf;
    if (neg)
        *o++ = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -decpt; i++)
                *o++ = '0';
            memcpy(o, dg, (size_t)n);
            o += n;
        } else if (decpt >= n) {
            memcpy(o, dg, (size_t)n);
            o += n;
            for (int i = n; i < decpt; i++)
                *o++ = '0';
            *o++ = '.';
            *o++ = '0';
        } else {
            memcpy(o, dg, (size_t)decpt);
            o += decpt;
            *o++ = '.';
            memcpy(o, dg + decpt, (size_t)(n - decpt));
            o += n - decpt;
        }
    } else {
        *o++ = dg[0];
        if (n > 1) {
            *o++ = '.';
            memcpy(o, dg + 1, (size_t)(n - 1));
            o += n - 1;
        }
        int e = decpt - 1;
        *o++ = 'e';
        *o++ = e < 0 ? '-' : '+';
        if (e < 0)
            e = -e;
        if (e >= 100) {
            *o++ = (char)('0' + e / 100);
            e %= 100;
        }
        memcpy(o, digit_pairs + 2 * e, 2);
        o += 2;
    }
    return (size_t)(o - buf);
}

/* Shared body: bits of a format with `p` precision bits and `ebits`
 * exponent bits (bias 2^(ebits-1) - 1). */
static size_t format_bits(uint64_t bits, int p, int ebits, char *buf)
{
    int total = p - 1 + ebits; /* index of the sign bit */
    bool neg = (bits >> total) & 1;
    uint64_t frac = bits & ((1ull << (p - 1)) - 1);
    uint64_t be = (bits >> (p - 1)) & ((1ull << ebits) - 1);
    if (be == (1ull << ebits) - 1)
        return 0; /* NaN or infinity */
    int bias = (1 << (ebits - 1)) - 1;
    int qmin = 1 - bias - (p - 1);
    if (be == 0 && frac == 0) {
        char *o = buf;
        if (neg)
            *o++ = '-';
        memcpy(o, "0.0", 3);
        return (size_t)(o - buf) + 3;
    }
    uint64_t c;
    int q;
    if (be == 0) {
        c = frac;
        q = qmin;
    } else {
        c = frac | (1ull << (p - 1));
        q = qmin + (int)be - 1;
    }
    uint64_t digits;
    int exp10;
    shortest_decimal(c, q, p, qmin, &digits, &exp10);
    return layout(buf, neg, digits, exp10);
}

size_t json_format_double(double v, char *buf)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return format_bits(bits, 53, 11, buf);
}

size_t json_format_float(float v, char *buf)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return format_bits(bits, 24, 8, buf);
}

size_t json_format_half(uint16_t bits, char *buf)
{
    return format_bits(bits, 11, 5, buf);
}
