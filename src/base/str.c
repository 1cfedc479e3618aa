/* str.c - helpers over (pointer, length) strings. */
#include "base/str.h"

bool st_str_eq_nocase(st_str a, st_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b.ptr[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

size_t st_str_edit_distance(st_str a, st_str b, size_t cap)
{
    /* Two-row dynamic programme; strings longer than 63 bytes are only
     * compared by their prefix, which is plenty for verb and flag names. */
    enum { MAXN = 64 };
    size_t n = a.len < MAXN - 1 ? a.len : MAXN - 1;
    size_t m = b.len < MAXN - 1 ? b.len : MAXN - 1;
    size_t prev[MAXN], cur[MAXN];
    for (size_t j = 0; j <= m; j++)
        prev[j] = j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a.ptr[i - 1] == b.ptr[j - 1] ? 0 : 1;
            size_t best = prev[j - 1] + cost;
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (m + 1) * sizeof prev[0]);
    }
    return prev[m] < cap ? prev[m] : cap;
}
