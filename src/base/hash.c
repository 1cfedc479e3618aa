/* hash.c - a multiply-fold hash: 16 bytes per step go through one 64x64->128
 * multiply whose halves are folded together, with the running state mixed
 * into both operands (so no input block can zero the product without
 * knowing the seed-dependent state); a bijective finaliser ends it. */
#include "base/hash.h"

#include <string.h>
#include <sys/random.h>

#include "base/time.h"

/* Odd constants with well-spread bits (golden ratio and splitmix64). */
#define HASH_K0 0x9e3779b97f4a7c15u
#define HASH_K1 0xbf58476d1ce4e5b9u
#define HASH_K2 0x94d049bb133111ebu

/* The 128-bit product of a and b with its two halves xor-ed together. */
static inline uint64_t hash_fold_mul(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
    uint64_t a_lo = (uint32_t)a, a_hi = a >> 32, b_lo = (uint32_t)b, b_hi = b >> 32;
    uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
    uint64_t cross = (lo_lo >> 32) + (uint32_t)hi_lo + (uint32_t)lo_hi;
    uint64_t hi = hi_hi + (hi_lo >> 32) + (lo_hi >> 32) + (cross >> 32);
    uint64_t lo = (cross << 32) | (uint32_t)lo_lo;
    return lo ^ hi;
#endif
}

static inline uint64_t hash_load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

uint64_t st_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    size_t left = len;
    /* The length enters first, so inputs that differ only by trailing zero
     * bytes (which the zero-padded last block cannot tell apart) differ. */
    uint64_t h = hash_fold_mul(seed ^ HASH_K0, (uint64_t)len ^ HASH_K1);
    while (left > 16) {
        h = hash_fold_mul(hash_load64(p) ^ h ^ HASH_K1, hash_load64(p + 8) ^ h ^ HASH_K2);
        p += 16;
        left -= 16;
    }
    unsigned char last[16] = { 0 };
    if (left)
        memcpy(last, p, left);
    h = hash_fold_mul(hash_load64(last) ^ h ^ HASH_K1, hash_load64(last + 8) ^ h ^ HASH_K2);
    return st_hash_u64(h ^ (uint64_t)len);
}

uint64_t st_hash_seed_random(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    /* No entropy yet (early boot): still differs per process and run. */
    return st_hash_u64(st_wall_ns() ^ (uint64_t)(uintptr_t)&seed);
}
