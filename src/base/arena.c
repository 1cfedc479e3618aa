/* arena.c - chunked region allocator. */
#include "base/arena.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "base/alloc.h"

struct st_arena_chunk {
    st_arena_chunk *next;
    size_t cap;
    size_t used;
    _Alignas(64) unsigned char data[];
};

void st_arena_init(st_arena *a, size_t chunk_bytes)
{
    a->head = NULL;
    a->chunk_bytes = chunk_bytes ? chunk_bytes : 64 * 1024;
    a->used_bytes = 0;
}

/* Chunks of 2 MiB and more sit on transparent huge pages: a model's
 * packed weights then cost a page fault per 2 MiB instead of per 4 KiB,
 * which on a VM is most of the time spent loading a large model. */
#define ARENA_HUGE_BYTES ((size_t)2 << 20)

static st_arena_chunk *arena_new_chunk(size_t cap)
{
    size_t total;
    if (st_add_overflow(sizeof(st_arena_chunk), cap, &total))
        return NULL;
    st_arena_chunk *c;
    if (total >= ARENA_HUGE_BYTES) {
        size_t rounded = (total + ARENA_HUGE_BYTES - 1) & ~(ARENA_HUGE_BYTES - 1);
        if (rounded < total)
            return NULL;
        c = st_aligned_alloc(ARENA_HUGE_BYTES, rounded);
        if (c)
            madvise(c, rounded, MADV_HUGEPAGE);
    } else {
        c = st_aligned_alloc(64, total);
    }
    if (!c)
        return NULL;
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    return c;
}

void *st_arena_alloc(st_arena *a, size_t size, size_t align)
{
    if (align == 0)
        align = 1;
    if ((align & (align - 1)) != 0 || align > 4096)
        return NULL;
    st_arena_chunk *c = a->head;
    if (c) {
        /* Align the address, not the offset: data is only 64-aligned. */
        uintptr_t base = (uintptr_t)c->data;
        size_t off = (size_t)(((base + c->used + align - 1) & ~(uintptr_t)(align - 1)) - base);
        if (off <= c->cap && size <= c->cap - off) {
            c->used = off + size;
            a->used_bytes += size;
            return c->data + off;
        }
    }
    size_t need;
    if (st_add_overflow(size, align, &need))
        return NULL;
    size_t cap = need > a->chunk_bytes ? need : a->chunk_bytes;
    st_arena_chunk *n = arena_new_chunk(cap);
    if (!n)
        return NULL;
    /* Keep a big one-off allocation from displacing a partly used chunk. */
    if (c && need > a->chunk_bytes) {
        n->next = c->next;
        c->next = n;
    } else {
        n->next = c;
        a->head = n;
    }
    size_t off = ((uintptr_t)n->data % align) ? align - (uintptr_t)n->data % align : 0;
    n->used = off + size;
    a->used_bytes += size;
    return n->data + off;
}

void *st_arena_calloc(st_arena *a, size_t n, size_t size, size_t align)
{
    size_t total;
    if (st_mul_overflow(n, size, &total))
        return NULL;
    void *p = st_arena_alloc(a, total, align);
    if (p)
        memset(p, 0, total);
    return p;
}

char *st_arena_strndup(st_arena *a, const char *s, size_t len)
{
    size_t total;
    if (st_add_overflow(len, 1, &total))
        return NULL;
    char *p = st_arena_alloc(a, total, 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void st_arena_reset(st_arena *a)
{
    st_arena_chunk *c = a->head;
    if (!c)
        return;
    /* Keep one chunk of default size (big one-off chunks may sit behind
     * it in the list); free the rest. */
    st_arena_chunk *keep = NULL;
    while (c) {
        st_arena_chunk *next = c->next;
        if (!keep && c->cap == a->chunk_bytes)
            keep = c;
        else
            st_free(c);
        c = next;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->used_bytes = 0;
}

void st_arena_free(st_arena *a)
{
    st_arena_chunk *c = a->head;
    while (c) {
        st_arena_chunk *next = c->next;
        st_free(c);
        c = next;
    }
    a->head = NULL;
    a->used_bytes = 0;
}
