/* hash.h - fast non-cryptographic 64-bit hashing for in-memory hash tables.
 * Results depend on the seed and may differ between versions and
 * architectures: never persist them or send them over the wire.  Tables
 * keyed by untrusted bytes should use a per-process random seed. */
#ifndef ST_HASH_H
#define ST_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

/* Hash of `len` bytes at `data` (may be NULL when len is 0) under `seed`;
 * any alignment. */
uint64_t st_hash64(const void *data, size_t len, uint64_t seed);

/* A random seed for tables keyed by untrusted bytes (getrandom, with a
 * time-and-address fallback when the kernel has no entropy yet). */
uint64_t st_hash_seed_random(void);

/* Hash of a 64-bit integer key: a bijective mix (distinct keys never
 * collide before reduction to a bucket index). */
static inline uint64_t st_hash_u64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}

/* st_hash64 over an st_str. */
static inline uint64_t st_hash_str(st_str s, uint64_t seed)
{
    return st_hash64(s.ptr, s.len, seed);
}

#endif
