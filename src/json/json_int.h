/* json_int.h - internals shared by the files of src/json/ (not a door: other
 * modules include json.h only).  Number scanning and conversion, the power
 * table, and the reader's private helpers. */
#ifndef ST_JSON_INT_H
#define ST_JSON_INT_H

#include <float.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "json/json.h"

/* 128-bit mantissas of 5^q, see pow5.c. */
#define JSON_POW5_QMIN (-342)
#define JSON_POW5_QMAX 324
extern const uint64_t json_pow5_table[JSON_POW5_QMAX - JSON_POW5_QMIN + 1][2];

/* floor(log2(5^q)) for |q| < 400 (checked exhaustively against exact
 * arithmetic when the constants were chosen). */
static inline int json_flog2_pow5(int q)
{
    return (int)(((int64_t)q * 1217359) >> 19);
}

/* A scanned JSON number: its digit spans and a 19-digit head. */
typedef struct json_decimal {
    const char *int_digits; /* integer part, at least one digit */
    size_t int_len;
    const char *frac_digits; /* after '.', may be empty */
    size_t frac_len;
    int64_t exp10;  /* explicit exponent, clamped to +-1e15 */
    uint64_t w;     /* first (up to) 19 significant digits */
    int64_t q;      /* |value| ~= w * 10^q (exactly, unless truncated) */
    bool negative;
    bool truncated; /* non-zero digits were dropped after w */
    bool is_plain;  /* no fraction, no exponent, at most 19 digits: value is w */
} json_decimal;

/* Scans a strict JSON number starting at p (avail bytes readable).  Returns
 * the bytes it spans; 0 when malformed, with *bad the offset (from p) of
 * the offending byte and *why a short reason.  Stops at the first byte
 * that cannot continue the number; the caller checks what follows.
 * Inline: it is the inner loop of typed-array decoding. */
static inline bool json_is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Eight bytes at a time (SWAR): how many leading bytes are digits, and
 * their value.  Bytes after the first non-digit may be garbage after the
 * subtraction (borrows only travel upwards), and they are shifted out. */
static inline int json_swar_digit_count(uint64_t v)
{
    uint64_t x = v ^ 0x3030303030303030ull;
    uint64_t m = ((x + 0x7676767676767676ull) | x) & 0x8080808080808080ull;
    return m ? __builtin_ctzll(m) >> 3 : 8;
}

static inline uint64_t json_swar_value(uint64_t v, int k)
{
    uint64_t x = (v - 0x3030303030303030ull) << (8 * (8 - k)); /* k leading zeros */
    x = (x * 10 + (x >> 8)) & 0x00ff00ff00ff00ffull;
    x = (x * 100 + (x >> 16)) & 0x0000ffff0000ffffull;
    return (x * 10000 + (x >> 32)) & 0xffffffffull;
}

/* Accumulates digits at p[i..] into *w while 8 bytes are readable and w
 * keeps at most 19 digits; q (may be NULL) drops by one per digit. */
static inline size_t json_swar_digits(const char *p, size_t i, size_t avail, uint64_t *w,
                                 int *nd, int64_t *q)
{
    static const uint64_t pow10[9] = { 1, 10, 100, 1000, 10000, 100000, 1000000,
                                       10000000, 100000000 };
    while (avail - i >= 8) {
        uint64_t v;
        memcpy(&v, p + i, sizeof v);
        int k = json_swar_digit_count(v);
        if (k == 0 || *nd + k > 19)
            break;
        *w = *w * pow10[k] + json_swar_value(v, k);
        *nd += k;
        if (q)
            *q -= k;
        i += (size_t)k;
        if (k < 8)
            break;
    }
    return i;
}
#else
static inline size_t json_swar_digits(const char *p, size_t i, size_t avail, uint64_t *w,
                                 int *nd, int64_t *q)
{
    (void)p, (void)avail, (void)w, (void)nd, (void)q;
    return i;
}
#endif

static inline size_t json_number_scan(const char *p, size_t avail, json_decimal *d,
                                      size_t *bad, const char **why)
{
    size_t i = 0;
    uint64_t w = 0;
    int nd = 0; /* significant digits held in w */
    int64_t q = 0;
    bool truncated = false, plain = true;

    d->negative = false;
    if (i < avail && p[i] == '-') {
        d->negative = true;
        i++;
    }
    if (i >= avail || !json_is_digit(p[i])) {
        *bad = i;
        *why = d->negative ? "expected a digit after '-'" : "expected a digit";
        return 0;
    }
    d->int_digits = p + i;
    if (p[i] == '0') {
        i++;
        if (i < avail && json_is_digit(p[i])) {
            *bad = i;
            *why = "leading zeros are not allowed";
            return 0;
        }
    } else {
        i = json_swar_digits(p, i, avail, &w, &nd, NULL);
        while (i < avail && json_is_digit(p[i]) && nd < 19) {
            w = w * 10 + (uint64_t)(p[i] - '0');
            nd++;
            i++;
        }
        while (i < avail && json_is_digit(p[i])) {
            q++;
            truncated |= p[i] != '0';
            i++;
        }
    }
    d->int_len = (size_t)(p + i - d->int_digits);
    d->frac_digits = p + i;
    d->frac_len = 0;
    if (i < avail && p[i] == '.') {
        plain = false;
        i++;
        size_t start = i;
        if (nd == 0) { /* leading zeros of a fraction only move the point */
            while (i < avail && p[i] == '0') {
                q--;
                i++;
            }
        }
        i = json_swar_digits(p, i, avail, &w, &nd, &q);
        while (i < avail && json_is_digit(p[i]) && nd < 19) {
            w = w * 10 + (uint64_t)(p[i] - '0');
            nd++;
            q--;
            i++;
        }
        while (i < avail && json_is_digit(p[i])) {
            truncated |= p[i] != '0';
            i++;
        }
        if (i == start) {
            *bad = i;
            *why = "expected a digit after '.'";
            return 0;
        }
        d->frac_digits = p + start;
        d->frac_len = i - start;
    }
    int64_t e = 0;
    if (i < avail && (p[i] == 'e' || p[i] == 'E')) {
        plain = false;
        i++;
        bool eneg = false;
        if (i < avail && (p[i] == '+' || p[i] == '-')) {
            eneg = p[i] == '-';
            i++;
        }
        size_t start = i;
        /* Clamp: any exponent this large already means 0 or infinity,
         * and the clamp keeps q exact for every input that fits memory. */
        while (i < avail && json_is_digit(p[i])) {
            if (e < 1000000000000000LL)
                e = e * 10 + (p[i] - '0');
            i++;
        }
        if (i == start) {
            *bad = i;
            *why = "expected a digit in the exponent";
            return 0;
        }
        if (eneg)
            e = -e;
    }
    d->exp10 = e;
    d->w = w;
    d->q = q + e;
    d->truncated = truncated;
    d->is_plain = plain && d->int_len <= 19;
    return i;
}


/* Correctly rounded conversions (round to nearest, ties to even).  Out of
 * range gives infinity (the caller reports it); never fails otherwise. */
double json_decimal_to_double(const json_decimal *d);
float json_decimal_to_float(const json_decimal *d);
uint16_t json_decimal_to_half(const json_decimal *d); /* bits */

extern const double json_pow10_exact[23];

/* json_decimal_to_float with the common case inline: Clinger's exact
 * double (one correctly rounded operation on exact operands), narrowed by
 * one cast unless the double could be a float32 midpoint (its low 28
 * fraction bits all zero), in which case the careful path decides. */
static inline float json_decimal_to_float_fast(const json_decimal *d)
{
#if FLT_EVAL_METHOD == 0
    if (!d->truncated && d->w <= (1ull << 53) && d->q >= -22 && d->q <= 22) {
        double x = (double)d->w;
        x = d->q < 0 ? x / json_pow10_exact[-d->q] : x * json_pow10_exact[d->q];
        uint64_t bits;
        memcpy(&bits, &x, sizeof bits);
        if (bits & 0x0fffffffu)
            return (float)(d->negative ? -x : x);
    }
#endif
    return json_decimal_to_float(d);
}

/* Exact integer value: magnitude in *mag, sign in d->negative.  Returns 0
 * when integral and |value| <= UINT64_MAX, 1 when not integral, 2 when too
 * large. */
int json_decimal_to_magnitude(const json_decimal *d, uint64_t *mag);

/* Reader internals shared with numbers.c and dom.c. */
enum {
    JSON_RS_VALUE = 0, /* a value is due */
    JSON_RS_FIRST,     /* just after '[' or '{' */
    JSON_RS_AFTER,     /* a value was read */
};
/* Sets the sticky error: "<msg> at byte offset <at>". */
st_status json_reader_error_at(json_reader *r, st_status code, size_t at,
                               const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Counts one value against max_elements (error at offset `at`). */
bool json_reader_count(json_reader *r, size_t at);
/* Skips whitespace; returns the offset of the next byte (may be len). */
static inline size_t json_skip_ws(const char *p, size_t pos, size_t len)
{
    while (pos < len) {
        unsigned char c = (unsigned char)p[pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            break;
        pos++;
    }
    return pos;
}
/* Prepares to read a value: checks state, skips whitespace, returns the
 * offset of its first byte or SIZE_MAX after setting an error. */
size_t json_reader_value_start(json_reader *r);
/* Marks the value just consumed (ending at `end`). */
static inline void json_reader_value_done(json_reader *r, size_t end)
{
    r->pos = end;
    r->state = JSON_RS_AFTER;
}
/* Validates the string whose opening quote is at `at`; returns the offset
 * after its closing quote, or 0 after setting an error.  *has_escapes tells
 * whether it must be unescaped. */
size_t json_string_scan(json_reader *r, size_t at, bool *has_escapes);
/* Unescapes a validated string body [from, to) into dst (room for to-from
 * bytes); returns the length written. */
size_t json_string_unescape(const char *from, const char *to, char *dst);

/* Length of the valid UTF-8 sequence at s (n bytes readable), 0 when
 * invalid (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). */
static inline size_t json_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0xF0) {
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        return n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c > 0xF4)
        return 0;
    if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    return n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
                   (s[3] & 0xC0) == 0x80
               ? 4
               : 0;
}

#endif
