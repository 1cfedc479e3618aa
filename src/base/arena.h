/* arena.h - region allocator: many allocations, one release.
 *
 * A request's memory comes from its arena and dies with it; a model's from
 * the model's arena.  st_arena_reset keeps one chunk so a reused
 * arena (one per worker) stops touching the heap once warm. */
#ifndef ST_ARENA_H
#define ST_ARENA_H

#include <stddef.h>

typedef struct st_arena_chunk st_arena_chunk;

typedef struct st_arena {
    st_arena_chunk *head;   /* current chunk; older chunks follow ->next */
    size_t chunk_bytes;     /* default size of a new chunk */
    size_t used_bytes;      /* total handed out since the last reset */
} st_arena;

/* Initialises an empty arena; chunk_bytes 0 picks 64 KiB.  No allocation
 * happens until the first st_arena_alloc. */
void st_arena_init(st_arena *a, size_t chunk_bytes);
/* `size` bytes aligned to `align` (a power of two, <= 4096); NULL when out
 * of memory or when size overflows.  Memory is not zeroed. */
void *st_arena_alloc(st_arena *a, size_t size, size_t align);
/* Zeroed array of n elements of `size` bytes, overflow-checked. */
void *st_arena_calloc(st_arena *a, size_t n, size_t size, size_t align);
/* Copies bytes into the arena, adding a NUL after them. */
char *st_arena_strndup(st_arena *a, const char *s, size_t len);
/* Frees all chunks but one of the default size, which it rewinds. */
void st_arena_reset(st_arena *a);
/* Frees everything; the arena may be initialised again. */
void st_arena_free(st_arena *a);

#endif
