/* dtype.c - element type tables and float16 conversion. */
#include "base/dtype.h"

#include <stdint.h>
#include <string.h>

typedef struct {
    const char *name;
    unsigned char size;
    bool is_valid;
} dtype_info;

static const dtype_info dtype_table[ST_DT_COUNT_] = {
#define ST_DTYPE_INFO_(name, num, size, str) [num] = { str, size, true },
    ST_DTYPE_LIST(ST_DTYPE_INFO_)
#undef ST_DTYPE_INFO_
};

bool st_dtype_is_valid(int value)
{
    return value >= 0 && value < ST_DT_COUNT_ && dtype_table[value].is_valid;
}

size_t st_dtype_size(st_dtype t)
{
    return st_dtype_is_valid((int)t) ? dtype_table[t].size : 0;
}

const char *st_dtype_name(st_dtype t)
{
    return st_dtype_is_valid((int)t) ? dtype_table[t].name : "invalid";
}

bool st_dtype_parse(st_str name, st_dtype *out)
{
    for (int i = 1; i < ST_DT_COUNT_; i++) {
        if (dtype_table[i].is_valid && st_str_eq_c(name, dtype_table[i].name)) {
            *out = (st_dtype)i;
            return true;
        }
    }
    return false;
}

float st_half_to_float(unsigned short h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while ((mant & 0x400u) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

unsigned short st_float_to_half(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint32_t sign = (bits >> 16) & 0x8000u;
    uint32_t exp = (bits >> 23) & 0xffu;
    uint32_t mant = bits & 0x7fffffu;
    if (exp == 0xff) /* inf or nan (keep nan quiet and non-zero) */
        return (unsigned short)(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f)
        return (unsigned short)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10)
            return (unsigned short)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u)))
            half++;
        return (unsigned short)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u)))
        half++; /* may carry into the exponent, which is the right answer */
    return (unsigned short)half;
}
