/* csv.c - text/csv request bodies (SageMaker's /invocations): rows of
 * numbers into one [rows, cols] tensor.  RFC 4180 framing (quoted fields
 * with "" escapes, CRLF or LF records), no header, every row the same
 * width.  One scanner runs twice: first to count rows and columns (so the
 * size is checked against the limit and allocated once), then to convert
 * the fields. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "serve/proto_int.h"

#define CSV_FIELD_MAX 512

typedef struct csv_scan {
    const uint8_t *p;
    size_t len, pos;
    size_t row, col;   /* 1-based, of the field being read */
    st_error *err;
} csv_scan;

/* A field's text: its span (quotes removed) and whether it had "" escapes. */
typedef struct csv_field {
    size_t start, end;
    bool quoted;
} csv_field;

/* Reads one field at s->pos; *at_eol tells whether it ended its record.
 * Returns ST_OK or ST_ECORRUPT. */
static st_status next_field(csv_scan *s, csv_field *f, bool *at_eol)
{
    const uint8_t *p = s->p;
    size_t i = s->pos, n = s->len;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    f->quoted = false;
    if (i < n && p[i] == '"') {
        f->quoted = true;
        f->start = ++i;
        for (;;) {
            if (i >= n)
                return st_fail(s->err, ST_ECORRUPT, "CSV row %zu, column %zu: quoted field is not "
                               "closed", s->row, s->col);
            if (p[i] == '"') {
                if (i + 1 < n && p[i + 1] == '"') {
                    i += 2;
                    continue;
                }
                break;
            }
            i++;
        }
        f->end = i++;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i < n && p[i] != ',' && p[i] != '\n' && p[i] != '\r')
            return st_fail(s->err, ST_ECORRUPT, "CSV row %zu, column %zu: unexpected character "
                           "after a closing quote", s->row, s->col);
    } else {
        f->start = i;
        while (i < n && p[i] != ',' && p[i] != '\n' && p[i] != '\r')
            i++;
        f->end = i;
    }
    if (i < n && p[i] == ',') {
        s->pos = i + 1;
        *at_eol = false;
        return ST_OK;
    }
    if (i < n && p[i] == '\r')
        i++;
    if (i < n && p[i] == '\n')
        i++;
    s->pos = i;
    *at_eol = true;
    return ST_OK;
}

/* Is the record at pos empty (a blank line, or only spaces)? Skips it. */
static bool skip_blank_line(csv_scan *s)
{
    size_t i = s->pos;
    while (i < s->len && (s->p[i] == ' ' || s->p[i] == '\t'))
        i++;
    if (i >= s->len) {
        s->pos = i;
        return true;
    }
    if (s->p[i] != '\n' && s->p[i] != '\r')
        return false;
    if (s->p[i] == '\r')
        i++;
    if (i < s->len && s->p[i] == '\n')
        i++;
    s->pos = i;
    return true;
}

static bool lower_eq(const char *a, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = a[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != lit[i])
            return false;
    }
    return true;
}

static st_status field_error(csv_scan *s, st_status code, const char *text, size_t n,
                             const char *why)
{
    return st_fail(s->err, code, "CSV row %zu, column %zu: \"%.*s\"%s %s", s->row, s->col,
                   (int)(n > 40 ? 40 : n), text, n > 40 ? "..." : "", why);
}

/* Converts one field into dst as dtype t. */
static st_status convert_field(csv_scan *s, const csv_field *f, st_dtype t, uint8_t *dst)
{
    char buf[CSV_FIELD_MAX + 4];
    size_t n = 0;
    for (size_t i = f->start; i < f->end; i++) {
        if (n >= CSV_FIELD_MAX)
            return st_fail(s->err, ST_ECORRUPT, "CSV row %zu, column %zu: field longer than %d "
                           "bytes", s->row, s->col, CSV_FIELD_MAX);
        buf[n++] = (char)s->p[i];
        if (f->quoted && s->p[i] == '"')
            i++; /* "" stands for one quote */
    }
    size_t b = 0;
    while (b < n && (buf[b] == ' ' || buf[b] == '\t'))
        b++;
    while (n > b && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    char *txt = buf + b;
    n -= b;
    bool is_float = t == ST_DT_FLOAT16 || t == ST_DT_FLOAT32 || t == ST_DT_FLOAT64;
    double special = 0;
    bool has_special = false;
    if (n == 0) {
        if (!is_float)
            return st_fail(s->err, ST_EINVAL, "CSV row %zu, column %zu is empty (missing values "
                           "need a float input)", s->row, s->col);
        special = NAN;
        has_special = true;
    } else if (is_float) {
        const char *u = txt;
        size_t un = n;
        bool neg = false;
        if (un && (u[0] == '-' || u[0] == '+')) {
            neg = u[0] == '-';
            u++;
            un--;
        }
        if (lower_eq(u, un, "nan")) {
            special = NAN;
            has_special = true;
        } else if (lower_eq(u, un, "inf") || lower_eq(u, un, "infinity")) {
            special = neg ? -INFINITY : INFINITY;
            has_special = true;
        }
    }
    if (has_special) {
        if (t == ST_DT_FLOAT16) {
            uint16_t h = st_float_to_half((float)special);
            memcpy(dst, &h, 2);
        } else if (t == ST_DT_FLOAT32) {
            float v = (float)special;
            memcpy(dst, &v, 4);
        } else {
            memcpy(dst, &special, 8);
        }
        return ST_OK;
    }
    if (t == ST_DT_BOOL) {
        uint8_t v;
        if (lower_eq(txt, n, "true") || (n == 1 && txt[0] == '1'))
            v = 1;
        else if (lower_eq(txt, n, "false") || (n == 1 && txt[0] == '0'))
            v = 0;
        else
            return field_error(s, ST_EINVAL, txt, n, "is not a bool (true, false, 1 or 0)");
        *dst = v;
        return ST_OK;
    }
    /* JSON number syntax plus what CSV writers also emit: a leading '+',
     * and a point with no digit before or after it (".5", "1."). */
    char norm[CSV_FIELD_MAX + 8];
    size_t m = 0, i = 0;
    if (i < n && (txt[i] == '+' || txt[i] == '-')) {
        if (txt[i] == '-')
            norm[m++] = '-';
        i++;
    }
    if (i < n && txt[i] == '.')
        norm[m++] = '0';
    for (; i < n; i++) {
        norm[m++] = txt[i];
        if (txt[i] == '.' && (i + 1 == n || txt[i + 1] == 'e' || txt[i + 1] == 'E'))
            norm[m++] = '0';
    }
    st_str num = st_str_make(norm, m);
    st_status st;
    if (t == ST_DT_FLOAT32) {
        float v;
        st = json_parse_float(num, &v);
        memcpy(dst, &v, 4);
    } else if (t == ST_DT_FLOAT64) {
        double v;
        st = json_parse_double(num, &v);
        memcpy(dst, &v, 8);
    } else if (t == ST_DT_FLOAT16) {
        uint16_t v;
        st = json_parse_half(num, &v);
        memcpy(dst, &v, 2);
    } else {
        /* Integers: plain digits with an optional sign. */
        size_t k = num.len && num.ptr[0] == '-' ? 1 : 0;
        bool neg = k == 1;
        uint64_t mag = 0;
        if (k == num.len)
            return field_error(s, ST_ECORRUPT, txt, n, "is not an integer");
        for (; k < num.len; k++) {
            char ch = num.ptr[k];
            if (ch < '0' || ch > '9')
                return field_error(s, ST_ECORRUPT, txt, n, "is not an integer");
            if (mag > (UINT64_MAX - (uint64_t)(ch - '0')) / 10)
                return field_error(s, ST_EINVAL, txt, n, "is out of range");
            mag = mag * 10 + (uint64_t)(ch - '0');
        }
        if (!sv_store_int(t, dst, neg, mag)) {
            char why[64];
            snprintf(why, sizeof why, "is out of range for %s", st_dtype_name(t));
            return field_error(s, ST_EINVAL, txt, n, why);
        }
        return ST_OK;
    }
    if (st == ST_EINVAL) {
        char why[64];
        snprintf(why, sizeof why, "is out of range for %s", st_dtype_name(t));
        return field_error(s, ST_EINVAL, txt, n, why);
    }
    if (st != ST_OK)
        return field_error(s, ST_ECORRUPT, txt, n, "is not a number");
    return ST_OK;
}

/* One pass over the text: counts rows and columns, and converts fields
 * when dst is not NULL. */
static st_status scan(csv_scan *s, st_dtype t, uint8_t *dst, size_t *rows, size_t *cols)
{
    size_t es = st_dtype_size(t), width = 0, k = 0;
    s->pos = 0;
    if (s->len >= 3 && memcmp(s->p, "\xEF\xBB\xBF", 3) == 0)
        s->pos = 3; /* a UTF-8 byte order mark */
    s->row = 0;
    while (s->pos < s->len) {
        if (skip_blank_line(s))
            continue;
        s->row++;
        s->col = 0;
        bool eol = false;
        while (!eol) {
            csv_field f;
            s->col++;
            st_status st = next_field(s, &f, &eol);
            if (st != ST_OK)
                return st;
            if (dst) {
                if ((st = convert_field(s, &f, t, dst + k * es)) != ST_OK)
                    return st;
                k++;
            }
        }
        if (s->row == 1)
            width = s->col;
        else if (s->col != width)
            return st_fail(s->err, ST_ESHAPE, "CSV row %zu has %zu fields, row 1 has %zu", s->row,
                           s->col, width);
    }
    *rows = s->row;
    *cols = width;
    return ST_OK;
}

st_status sv_csv_parse(const uint8_t *text, size_t len, st_dtype t, size_t max_elements,
                       st_arena *arena, sv_csv *out, st_error *err)
{
    memset(out, 0, sizeof *out);
    size_t es = st_dtype_size(t);
    if (es == 0 || t == ST_DT_STRING)
        return st_fail(err, ST_ETYPE, "text/csv carries numbers; this input takes %s",
                       st_dtype_name(t));
    csv_scan s = { .p = text, .len = text ? len : 0, .err = err };
    size_t rows, cols, count;
    st_status st = scan(&s, t, NULL, &rows, &cols);
    if (st != ST_OK)
        return st;
    if (rows == 0)
        return st_fail(err, ST_ECORRUPT, "the CSV body has no rows");
    size_t bytes;
    if (st_mul_overflow(rows, cols, &count) || count > max_elements ||
        st_mul_overflow(count, es, &bytes))
        return st_fail(err, ST_ELIMIT, "CSV of %zu rows by %zu columns is more than the limit of "
                       "%zu values", rows, cols, max_elements);
    out->data = st_arena_alloc(arena, bytes, 64);
    if (!out->data)
        return st_fail(err, ST_ENOMEM, "out of memory for %zu CSV values", count);
    if ((st = scan(&s, t, out->data, &rows, &cols)) != ST_OK)
        return st;
    out->rows = rows;
    out->cols = cols;
    return ST_OK;
}
