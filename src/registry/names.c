/* names.c - what a model name or alias may be, and references
 * "NAME[@VERSION|@ALIAS]".  Names end up in paths, URLs, logs and
 * terminals, so anything that could escape one of those is refused. */
#include <stdio.h>

#include "registry/registry.h"

/* Length of the UTF-8 sequence at p (1..4), or 0 when it is not valid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_len(const unsigned char *p, size_t left)
{
    if (p[0] < 0x80)
        return 1;
    size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || n > left || p[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return n;
}

st_status reg_check_name(st_str name, bool is_alias, st_error *err)
{
    const char *what = is_alias ? "alias" : "model name";
    if (name.len == 0)
        return st_fail(err, ST_EINVAL, "%s is empty", what);
    if (name.len > REG_NAME_MAX)
        return st_fail(err, ST_EINVAL, "%s is %zu bytes long; at most %d are allowed", what,
                       name.len, REG_NAME_MAX);
    for (size_t i = 0; i < name.len; i++) {
        unsigned char c = (unsigned char)name.ptr[i];
        if (c < 0x20 || c == 0x7f)
            return st_fail(err, ST_EINVAL, "%s contains a control character (byte %zu)", what, i);
        if (c == '/' || c == '\\')
            return st_fail(err, ST_EINVAL, "%s '%.*s' contains a path separator '%c'", what,
                           ST_STR_FMT(name), c);
        if (c == '@')
            return st_fail(err, ST_EINVAL,
                           "%s '%.*s' contains '@', which separates a name from a version", what,
                           ST_STR_FMT(name));
        if (c == '.' && i + 1 < name.len && name.ptr[i + 1] == '.')
            return st_fail(err, ST_EINVAL, "%s '%.*s' contains '..'", what, ST_STR_FMT(name));
    }
    for (size_t i = 0; i < name.len;) {
        size_t n = utf8_len((const unsigned char *)name.ptr + i, name.len - i);
        if (n == 0)
            return st_fail(err, ST_EINVAL, "%s is not valid UTF-8 (byte %zu)", what, i);
        i += n;
    }
    if (name.ptr[0] == ' ' || name.ptr[name.len - 1] == ' ')
        return st_fail(err, ST_EINVAL, "%s '%.*s' starts or ends with a space", what,
                       ST_STR_FMT(name));
    if (is_alias) {
        bool is_digits = true;
        for (size_t i = 0; i < name.len; i++)
            is_digits = is_digits && name.ptr[i] >= '0' && name.ptr[i] <= '9';
        if (is_digits)
            return st_fail(err, ST_EINVAL,
                           "alias '%.*s' is a number, which would read as a version; pick a word "
                           "such as 'staging' or 'production'",
                           ST_STR_FMT(name));
        if (st_str_eq_c(name, "latest"))
            return st_fail(err, ST_EINVAL, "alias 'latest' is reserved: NAME@latest is always "
                                           "the newest version");
    }
    return ST_OK;
}

st_status reg_parse_ref(st_str text, reg_ref *out, st_error *err)
{
    *out = (reg_ref){ { NULL, 0 }, 0, { NULL, 0 } };
    size_t at = text.len;
    for (size_t i = 0; i < text.len; i++) {
        if (text.ptr[i] == '@') {
            at = i;
            break;
        }
    }
    st_str name = st_str_make(text.ptr, at);
    st_status s = reg_check_name(name, false, err);
    if (s != ST_OK)
        return s;
    out->name = name;
    if (at == text.len)
        return ST_OK;
    st_str tail = st_str_make(text.ptr + at + 1, text.len - at - 1);
    if (tail.len == 0)
        return st_fail(err, ST_EINVAL, "'%.*s' ends with '@'; write NAME@VERSION or NAME@ALIAS",
                       ST_STR_FMT(text));
    if (st_str_eq_c(tail, "latest"))
        return ST_OK;
    if (tail.ptr[0] >= '0' && tail.ptr[0] <= '9') {
        int64_t v = 0;
        for (size_t i = 0; i < tail.len; i++) {
            char c = tail.ptr[i];
            if (c < '0' || c > '9' || v > (INT64_MAX - 9) / 10)
                return st_fail(err, ST_EINVAL,
                               "version '%.*s' in '%.*s' is not a positive whole number",
                               ST_STR_FMT(tail), ST_STR_FMT(text));
            v = v * 10 + (c - '0');
        }
        if (v == 0)
            return st_fail(err, ST_EINVAL, "versions start at 1, '%.*s' names version 0",
                           ST_STR_FMT(text));
        out->version = v;
        return ST_OK;
    }
    if ((s = reg_check_name(tail, true, err)) != ST_OK)
        return s;
    out->alias = tail;
    return ST_OK;
}
