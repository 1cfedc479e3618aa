/* alloc.h - the one allocation hook of Stratus.
 *
 * All heap memory goes through st_malloc/st_calloc/st_realloc/st_free so
 * that tests can make the Nth allocation fail (SQLite-style fault
 * injection) and check that every error path cleans up. */
#ifndef ST_ALLOC_H
#define ST_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Like malloc/calloc/realloc/free; NULL on failure (or injected failure).
 * st_calloc checks n * size for overflow. */
void *st_malloc(size_t size);
void *st_calloc(size_t n, size_t size);
void *st_realloc(void *ptr, size_t size);
void st_free(void *ptr);

/* Aligned allocation (alignment a power of two >= sizeof(void *)); free
 * with st_free. */
void *st_aligned_alloc(size_t alignment, size_t size);

/* Test hook: the `n`th allocation from now (1 = the next one) and every
 * later one fail until st_alloc_fail_reset().  n = 0 disables. */
void st_alloc_fail_after(uint64_t n);
void st_alloc_fail_reset(void);
/* Number of allocations attempted since start (for tests). */
uint64_t st_alloc_count(void);

/* Overflow-checked size arithmetic: true when the result overflowed. */
static inline bool st_mul_overflow(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}
static inline bool st_add_overflow(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

#endif
