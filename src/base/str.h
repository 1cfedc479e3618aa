/* str.h - (pointer, length) strings, nginx-style.  Never NUL-terminated by
 * contract; untrusted bytes are always handled as st_str. */
#ifndef ST_STR_H
#define ST_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct st_str {
    const char *ptr;
    size_t len;
} st_str;

/* An st_str over a string literal. */
#define ST_STR(lit) ((st_str){ (lit), sizeof(lit) - 1 })
/* printf("%.*s", ST_STR_FMT(s)) */
#define ST_STR_FMT(s) (int)(s).len, (s).ptr

static inline st_str st_str_make(const void *ptr, size_t len)
{
    return (st_str){ (const char *)ptr, len };
}

/* From a trusted NUL-terminated C string (argv, literals). */
static inline st_str st_str_c(const char *cstr)
{
    return (st_str){ cstr, cstr ? strlen(cstr) : 0 };
}

static inline bool st_str_eq(st_str a, st_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool st_str_eq_c(st_str a, const char *cstr)
{
    return st_str_eq(a, st_str_c(cstr));
}

static inline bool st_str_starts_with(st_str s, st_str prefix)
{
    return s.len >= prefix.len &&
           (prefix.len == 0 || memcmp(s.ptr, prefix.ptr, prefix.len) == 0);
}

/* Case-insensitive ASCII equality (HTTP header names). */
bool st_str_eq_nocase(st_str a, st_str b);

/* Levenshtein distance, capped at `cap` (for "did you mean" hints). */
size_t st_str_edit_distance(st_str a, st_str b, size_t cap);

#endif
