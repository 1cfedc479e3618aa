/* mlmodel.c - the few keys Stratus needs from an MLflow MLmodel file.
 *
 * MLmodel is YAML written by MLflow: block mappings indented by spaces,
 * plain or quoted scalars, sometimes flow or list values we do not need.
 * We read exactly: top-level `flavors:`, its children (one per flavour),
 * and each servable flavour's `data:` (the model file), plus `run_id`.
 * Anything else is skipped line by line; nothing here allocates. */
#include <stdio.h>
#include <string.h>

#include "registry/registry.h"

#define MLMODEL_MAX_BYTES (1u << 20)

static const char *const servable[] = { "onnx", "xgboost", "lightgbm" };
#define N_SERVABLE (sizeof servable / sizeof servable[0])

static st_str trim(st_str s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t'))
        s = st_str_make(s.ptr + 1, s.len - 1);
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* Copies the scalar `v` (plain, 'single' or "double" quoted, optionally
 * followed by a comment) into out[cap], NUL-terminated.  *is_null is set
 * for an empty, null or ~ plain value. */
static st_status scalar(st_str v, size_t line, char *out, size_t cap, bool *is_null,
                        st_error *err)
{
    size_t n = 0;
    *is_null = false;
    if (v.len && (v.ptr[0] == '\'' || v.ptr[0] == '"')) {
        char q = v.ptr[0];
        size_t i = 1;
        for (;; i++) {
            if (i >= v.len)
                return st_fail(err, ST_ECORRUPT, "MLmodel line %zu: unterminated quoted value", line);
            char c = v.ptr[i];
            if (c == q && q == '\'' && i + 1 < v.len && v.ptr[i + 1] == '\'') {
                i++; /* '' is a quote inside single quotes */
            } else if (c == q) {
                break;
            } else if (c == '\\' && q == '"') {
                if (i + 1 >= v.len || !strchr("\"\\/", v.ptr[i + 1]))
                    return st_fail(err, ST_ECORRUPT,
                                   "MLmodel line %zu: unsupported escape in a quoted value", line);
                c = v.ptr[++i];
            }
            if (n + 1 >= cap)
                return st_fail(err, ST_ELIMIT, "MLmodel line %zu: value longer than %zu bytes", line,
                               cap - 1);
            out[n++] = c;
        }
        st_str rest = trim(st_str_make(v.ptr + i + 1, v.len - i - 1));
        if (rest.len && rest.ptr[0] != '#')
            return st_fail(err, ST_ECORRUPT, "MLmodel line %zu: text after a quoted value", line);
        out[n] = '\0';
        return ST_OK;
    }
    /* Plain scalar: a comment starts at " #". */
    for (size_t i = 1; i < v.len; i++) {
        if (v.ptr[i] == '#' && (v.ptr[i - 1] == ' ' || v.ptr[i - 1] == '\t')) {
            v.len = i;
            break;
        }
    }
    if (v.len && v.ptr[0] == '#')
        v.len = 0;
    v = trim(v);
    if (v.len == 0 || st_str_eq_c(v, "null") || st_str_eq_c(v, "~")) {
        *is_null = true;
        out[0] = '\0';
        return ST_OK;
    }
    if (v.len >= cap)
        return st_fail(err, ST_ELIMIT, "MLmodel line %zu: value longer than %zu bytes", line, cap - 1);
    memcpy(out, v.ptr, v.len);
    out[v.len] = '\0';
    return ST_OK;
}

/* The model file must stay inside the folder. */
static st_status check_data_path(const char *p, size_t line, st_error *err)
{
    size_t len = strlen(p);
    if (p[0] == '/' || strchr(p, '\\'))
        return st_fail(err, ST_EINVAL, "MLmodel line %zu: data path '%s' must be relative to the folder",
                       line, p);
    if (strchr("[{&*!|>%@`", p[0]))
        return st_fail(err, ST_EUNSUPPORTED, "MLmodel line %zu: data must be a plain path", line);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return st_fail(err, ST_EINVAL, "MLmodel line %zu: data path has a control character", line);
        bool starts = i == 0 || p[i - 1] == '/';
        if (starts && p[i] == '.' && i + 1 < len && p[i + 1] == '.' && (i + 2 == len || p[i + 2] == '/'))
            return st_fail(err, ST_EINVAL, "MLmodel line %zu: data path '%s' leaves the folder ('..')",
                           line, p);
    }
    return ST_OK;
}

st_status reg_mlmodel_parse(const uint8_t *data, size_t len, reg_mlmodel *out, st_error *err)
{
    memset(out, 0, sizeof *out);
    if (len > MLMODEL_MAX_BYTES)
        return st_fail(err, ST_ELIMIT, "MLmodel is %zu bytes; at most %u are read", len,
                       MLMODEL_MAX_BYTES);
    char found[N_SERVABLE][sizeof out->data];
    bool has[N_SERVABLE] = { false };
    char present[256] = "";
    size_t present_len = 0;
    bool has_flavors = false, in_flavors = false;
    long flavor_indent = -1, child_indent = -1;
    int flavor = -2; /* index in servable, -1 another flavour, -2 none yet */
    size_t pos = 0, line_no = 0;
    st_status s;
    while (pos < len) {
        line_no++;
        size_t start = pos;
        while (pos < len && data[pos] != '\n')
            pos++;
        st_str line = st_str_make(data + start, pos - start);
        if (pos < len)
            pos++;
        if (line.len && line.ptr[line.len - 1] == '\r')
            line.len--;
        for (size_t i = 0; i < line.len; i++) {
            unsigned char c = (unsigned char)line.ptr[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return st_fail(err, ST_ECORRUPT, "MLmodel line %zu: control character (byte 0x%02x)",
                               line_no, c);
        }
        size_t indent = 0;
        while (indent < line.len && line.ptr[indent] == ' ')
            indent++;
        if (indent < line.len && line.ptr[indent] == '\t')
            return st_fail(err, ST_ECORRUPT, "MLmodel line %zu: tab in indentation (YAML allows spaces only)",
                           line_no);
        st_str rest = trim(st_str_make(line.ptr + indent, line.len - indent));
        if (rest.len == 0 || rest.ptr[0] == '#' || rest.ptr[0] == '-' ||
            st_str_starts_with(rest, ST_STR("...")))
            continue; /* blank, comment, list item, document markers */
        size_t colon = rest.len;
        for (size_t i = 0; i < rest.len; i++) {
            if (rest.ptr[i] == ':' && (i + 1 == rest.len || rest.ptr[i + 1] == ' ')) {
                colon = i;
                break;
            }
        }
        if (colon == rest.len || colon == 0) {
            if (indent == 0)
                return st_fail(err, ST_ECORRUPT, "MLmodel line %zu: expected 'key: value'", line_no);
            continue; /* continuation of a multi-line value */
        }
        st_str key = trim(st_str_make(rest.ptr, colon));
        st_str value = trim(st_str_make(rest.ptr + colon + 1, rest.len - colon - 1));
        bool is_null;
        if (indent == 0) {
            in_flavors = st_str_eq_c(key, "flavors");
            has_flavors = has_flavors || in_flavors;
            flavor_indent = child_indent = -1;
            flavor = -2;
            if (st_str_eq_c(key, "run_id")) {
                char run_id[sizeof out->run_id];
                if (scalar(value, line_no, run_id, sizeof run_id, &is_null, NULL) == ST_OK)
                    memcpy(out->run_id, run_id, sizeof run_id);
            }
            continue;
        }
        if (!in_flavors)
            continue;
        if (flavor_indent < 0)
            flavor_indent = (long)indent;
        if ((long)indent < flavor_indent)
            return st_fail(err, ST_ECORRUPT, "MLmodel line %zu: indentation does not match the lines above",
                           line_no);
        if ((long)indent == flavor_indent) {
            flavor = -1;
            child_indent = -1;
            for (size_t i = 0; i < N_SERVABLE; i++)
                if (st_str_eq_c(key, servable[i]))
                    flavor = (int)i;
            if (present_len + key.len + 3 < sizeof present)
                present_len += (size_t)snprintf(present + present_len, sizeof present - present_len,
                                                "%s%.*s", present_len ? ", " : "", ST_STR_FMT(key));
            continue;
        }
        if (child_indent < 0)
            child_indent = (long)indent;
        if ((long)indent != child_indent || flavor < 0 || !st_str_eq_c(key, "data") || has[flavor])
            continue;
        if ((s = scalar(value, line_no, found[flavor], sizeof found[flavor], &is_null, err)) != ST_OK)
            return s;
        if (is_null)
            continue;
        if ((s = check_data_path(found[flavor], line_no, err)) != ST_OK)
            return s;
        has[flavor] = true;
    }
    for (size_t i = 0; i < N_SERVABLE; i++) {
        if (has[i]) {
            snprintf(out->flavor, sizeof out->flavor, "%s", servable[i]);
            memcpy(out->data, found[i], sizeof out->data);
            return ST_OK;
        }
    }
    if (!has_flavors)
        return st_fail(err, ST_ECORRUPT, "MLmodel has no 'flavors:' section; is this an MLflow model?");
    return st_fail(err, ST_EUNSUPPORTED,
                   "MLmodel has the flavours %s but none Stratus can serve (onnx, xgboost or "
                   "lightgbm with a 'data' file)",
                   present_len ? present : "(none)");
}
