/* alloc.c - allocation hook with Nth-allocation fault injection. */
#include "base/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>

static _Atomic uint64_t alloc_count;
static _Atomic uint64_t alloc_fail_at; /* 0: never fail */

static bool alloc_should_fail(void)
{
    uint64_t n = atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed) + 1;
    uint64_t at = atomic_load_explicit(&alloc_fail_at, memory_order_relaxed);
    return at != 0 && n >= at;
}

void *st_malloc(size_t size)
{
    if (alloc_should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *st_calloc(size_t n, size_t size)
{
    size_t total;
    if (st_mul_overflow(n, size, &total))
        return NULL;
    if (alloc_should_fail())
        return NULL;
    return calloc(total ? n : 1, total ? size : 1);
}

void *st_realloc(void *ptr, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    return realloc(ptr, size ? size : 1);
}

void st_free(void *ptr)
{
    free(ptr);
}

void *st_aligned_alloc(size_t alignment, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, alignment, size ? size : 1) != 0)
        return NULL;
    return p;
}

void st_alloc_fail_after(uint64_t n)
{
    uint64_t now = atomic_load_explicit(&alloc_count, memory_order_relaxed);
    atomic_store_explicit(&alloc_fail_at, n ? now + n : 0, memory_order_relaxed);
}

void st_alloc_fail_reset(void)
{
    atomic_store_explicit(&alloc_fail_at, 0, memory_order_relaxed);
}

uint64_t st_alloc_count(void)
{
    return atomic_load_explicit(&alloc_count, memory_order_relaxed);
}
