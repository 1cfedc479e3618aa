/* api_keys.c - libFuzzer target for the API key file parser
 * (src/serve/auth.c): any bytes either fail with a message or give a
 * non-empty set whose every key line is accepted by sv_keys_check. */
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz.h"
#include "serve/serve_int.h"

#define CHECK(cond)          \
    do {                     \
        if (!(cond))         \
            abort();         \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sv_keys *k = NULL;
    st_error err = { 0 };
    st_status s = sv_keys_parse(data, size, &k, &err);
    if (s != ST_OK) {
        CHECK(k == NULL && err.code == s && err.msg[0] != '\0');
        return 0;
    }
    CHECK(k && sv_keys_count(k) > 0);
    /* The first non-comment line, trimmed, is a key of the set. */
    size_t pos = 0;
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size, a = pos, b = end;
        pos = nl ? end + 1 : size;
        while (a < b && strchr(" \t\r\v\f", data[a]) && data[a])
            a++;
        while (b > a && strchr(" \t\r\v\f", data[b - 1]) && data[b - 1])
            b--;
        if (a == b || data[a] == '#')
            continue;
        http_header h = { ST_STR("X-API-Key"), st_str_make(data + a, b - a) };
        http_request req = { .headers = &h, .n_headers = 1 };
        CHECK(sv_keys_check(k, &req));
        break;
    }
    sv_keys_free(k);
    return 0;
}
