/* log.c - line assembly for text and JSON logs.  A line is built in a
 * fixed stack buffer with room kept at its end for the closing bytes, so a
 * cut line is still one well-formed line (and valid JSON). */
#include "base/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/time.h"

/* Where lines go: fd << 2 | colour state, in one word so that a line never
 * pairs one fd with another fd's colour decision. */
enum { SINK_COLOR_UNKNOWN = 0, SINK_COLOR_OFF = 1, SINK_COLOR_ON = 2 };
static _Atomic int log_sink = 2 << 2 | SINK_COLOR_UNKNOWN;
static _Atomic int log_min_level = ST_LOG_LEVEL_INFO;
static _Atomic int log_format = ST_LOG_TEXT;

static const char *const level_names[] = { "debug", "info", "warn", "error", "off" };
static const char *const level_labels[] = { "DEBUG", "INFO ", "WARN ", "ERROR" };
static const char *const level_colors[] = { "\x1b[90m", "\x1b[32m", "\x1b[33m", "\x1b[1;31m" };
#define COLOR_RESET "\x1b[0m"

void st_log_set_level(st_log_level min_level)
{
    atomic_store_explicit(&log_min_level, (int)min_level, memory_order_relaxed);
}

st_log_level st_log_get_level(void)
{
    return (st_log_level)atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

bool st_log_is_enabled(st_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_min_level, memory_order_relaxed) &&
           level < ST_LOG_LEVEL_OFF && (int)level >= 0;
}

void st_log_set_format(st_log_format format)
{
    atomic_store_explicit(&log_format, (int)format, memory_order_relaxed);
}

st_log_format st_log_get_format(void)
{
    return (st_log_format)atomic_load_explicit(&log_format, memory_order_relaxed);
}

static bool color_wanted(int fd)
{
    const char *no_color = getenv("NO_COLOR");
    const char *term = getenv("TERM");
    if (no_color && no_color[0])
        return false;
    if (term && strcmp(term, "dumb") == 0)
        return false;
    return isatty(fd) == 1;
}

void st_log_set_fd(int fd)
{
    if (fd < 0)
        fd = 2;
    int color = color_wanted(fd) ? SINK_COLOR_ON : SINK_COLOR_OFF;
    atomic_store_explicit(&log_sink, fd << 2 | color, memory_order_relaxed);
}

int st_log_get_fd(void)
{
    return atomic_load_explicit(&log_sink, memory_order_relaxed) >> 2;
}

const char *st_log_level_name(st_log_level level)
{
    if ((unsigned)level > ST_LOG_LEVEL_OFF)
        return "invalid";
    return level_names[level];
}

st_status st_log_parse_level(st_str name, st_log_level *out, st_error *err)
{
    for (int i = 0; i <= ST_LOG_LEVEL_OFF; i++) {
        if (st_str_eq_nocase(name, st_str_c(level_names[i]))) {
            *out = (st_log_level)i;
            return ST_OK;
        }
    }
    if (st_str_eq_nocase(name, ST_STR("warning"))) {
        *out = ST_LOG_LEVEL_WARN;
        return ST_OK;
    }
    return st_fail(err, ST_EINVAL, "unknown log level '%.*s' (use debug, info, warn, error or off)",
                   name.len > 64 ? 64 : (int)name.len, name.ptr);
}

st_status st_log_parse_format(st_str name, st_log_format *out, st_error *err)
{
    if (st_str_eq_nocase(name, ST_STR("text"))) {
        *out = ST_LOG_TEXT;
        return ST_OK;
    }
    if (st_str_eq_nocase(name, ST_STR("json"))) {
        *out = ST_LOG_JSON;
        return ST_OK;
    }
    return st_fail(err, ST_EINVAL, "unknown log format '%.*s' (use text or json)",
                   name.len > 64 ? 64 : (int)name.len, name.ptr);
}

/* ---- line assembly ------------------------------------------------------ */

/* Bytes kept free at the end of every line for what closes it: one quote
 * (see line_close_quote), then ,"truncated":true} and the newline (JSON) or
 * " [truncated]\n" (text). */
enum { LINE_TAIL = 32 };

typedef struct {
    st_log_format format;
    bool is_full; /* something did not fit; nothing more is added */
    size_t len;
    char data[ST_LOG_LINE_MAX];
} log_line;

/* Appends all n bytes or none (then the line is full). */
static bool line_put(log_line *l, const char *s, size_t n)
{
    size_t limit = ST_LOG_LINE_MAX - LINE_TAIL;
    if (l->is_full || l->len >= limit || n > limit - l->len) {
        l->is_full = true;
        return false;
    }
    memcpy(l->data + l->len, s, n);
    l->len += n;
    return true;
}

/* Closes a quoted string even past the limit (the tail keeps a byte for
 * it), so a value that just fits is not reported as cut. */
static void line_close_quote(log_line *l)
{
    l->data[l->len++] = '"';
}

static bool line_put_c(log_line *l, const char *s)
{
    return line_put(l, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence starting at s, or 0. */
static size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1fu, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0fu, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0u) != 0x80u)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Appends the contents of a JSON string: quote, backslash and control
 * characters escaped, ill-formed UTF-8 replaced by U+FFFD.  Stops at the
 * first escape unit that does not fit. */
static void line_put_json_chars(log_line *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && !l->is_full) {
        unsigned char c = p[i];
        char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
        size_t run = 1;
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            line_put(l, esc, 2);
        } else if (c < 0x20) {
            const char *short_esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
                                  : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (short_esc)
                line_put(l, short_esc, 2);
            else
                line_put(l, esc, 6);
        } else if (c < 0x80) {
            line_put(l, s + i, 1);
        } else if ((run = utf8_sequence_len(p + i, n - i)) != 0) {
            line_put(l, s + i, run);
        } else {
            run = 1;
            line_put(l, "\\ufffd", 6);
        }
        i += run;
    }
}

/* Appends text-format bytes: control characters become \n, \t, \xNN so a
 * message can never forge a second line; with `is_quoted`, quote and
 * backslash are escaped as well. */
static void line_put_text_chars(log_line *l, const char *s, size_t n, bool is_quoted)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && !l->is_full; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
            if (c == '\n' || c == '\t' || c == '\r') {
                esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
                line_put(l, esc, 2);
            } else {
                line_put(l, esc, 4);
            }
        } else if (is_quoted && (c == '"' || c == '\\')) {
            char esc[2] = { '\\', (char)c };
            line_put(l, esc, 2);
        } else {
            line_put(l, s + i, 1);
        }
    }
}

static void line_begin(log_line *l, st_log_format format, st_log_level level, bool is_color)
{
    char ts[ST_TIME_RFC3339_SIZE];
    st_time_format_rfc3339(st_wall_ns(), ts, sizeof ts);
    l->format = format;
    l->is_full = false;
    l->len = 0;
    if (format == ST_LOG_JSON) {
        line_put_c(l, "{\"ts\":\"");
        line_put_c(l, ts);
        line_put_c(l, "\",\"level\":\"");
        line_put_c(l, level_names[level]);
        line_put_c(l, "\",\"msg\":\"");
    } else {
        line_put_c(l, ts);
        line_put_c(l, " ");
        if (is_color)
            line_put_c(l, level_colors[level]);
        line_put_c(l, level_labels[level]);
        if (is_color)
            line_put_c(l, COLOR_RESET);
        line_put_c(l, " ");
    }
}

static void line_message(log_line *l, const char *msg, size_t n)
{
    if (l->format == ST_LOG_JSON) {
        line_put_json_chars(l, msg, n);
        line_close_quote(l);
    } else {
        line_put_text_chars(l, msg, n, false);
    }
}

static bool text_needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
            return true;
    }
    return false;
}

/* Adds one field.  A key is written whole or not at all (a JSON key
 * without its value would be invalid); a value may be cut. */
static void line_field(log_line *l, const char *key, const char *value)
{
    size_t save = l->len;
    if (l->is_full)
        return;
    if (l->format == ST_LOG_JSON) {
        line_put(l, ",\"", 2);
        line_put_json_chars(l, key, strlen(key));
        if (!line_put(l, value ? "\":\"" : "\":null", value ? 3 : 6)) {
            l->len = save;
            return;
        }
        if (!value)
            return;
        line_put_json_chars(l, value, strlen(value));
        line_close_quote(l);
    } else {
        line_put(l, " ", 1);
        line_put_text_chars(l, key, strlen(key), false);
        if (!line_put(l, "=", 1)) {
            l->len = save;
            return;
        }
        if (!value)
            value = "(null)";
        size_t n = strlen(value);
        bool is_quoted = text_needs_quotes(value, n);
        if (is_quoted && !line_put(l, "\"", 1))
            return;
        line_put_text_chars(l, value, n, is_quoted);
        if (is_quoted)
            line_close_quote(l);
    }
}

/* Closes the line in the reserved tail and writes it with one write(2). */
static void line_finish_and_write(log_line *l, int fd)
{
    const char *tail;
    if (l->format == ST_LOG_JSON)
        tail = l->is_full ? ",\"truncated\":true}\n" : "}\n";
    else
        tail = l->is_full ? " [truncated]\n" : "\n";
    size_t tail_len = strlen(tail);
    memcpy(l->data + l->len, tail, tail_len);
    l->len += tail_len;

    const char *p = l->data;
    size_t left = l->len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report a failing log sink */
        }
        p += w;
        left -= (size_t)w;
    }
}

/* Reads the sink, settling the colour decision on first use of stderr. */
static int sink_fd(bool *is_color)
{
    int sink = atomic_load_explicit(&log_sink, memory_order_relaxed);
    int fd = sink >> 2;
    int color = sink & 3;
    if (color == SINK_COLOR_UNKNOWN) {
        color = color_wanted(fd) ? SINK_COLOR_ON : SINK_COLOR_OFF;
        atomic_compare_exchange_strong_explicit(&log_sink, &sink, fd << 2 | color,
                                                memory_order_relaxed, memory_order_relaxed);
    }
    *is_color = color == SINK_COLOR_ON;
    return fd;
}

void st_log_v(st_log_level level, const char *fmt, va_list ap)
{
    if (!st_log_is_enabled(level))
        return;
    int saved_errno = errno;
    char msg[ST_LOG_LINE_MAX];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t msg_len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    bool is_color;
    int fd = sink_fd(&is_color);
    log_line line;
    line_begin(&line, st_log_get_format(), level, is_color);
    line_message(&line, msg, msg_len);
    if (n < 0 || (size_t)n >= sizeof msg)
        line.is_full = true;
    line_finish_and_write(&line, fd);
    errno = saved_errno;
}

void st_log(st_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_log_v(level, fmt, ap);
    va_end(ap);
}

void st_log_kv(st_log_level level, const char *msg, ...)
{
    if (!st_log_is_enabled(level))
        return;
    int saved_errno = errno;
    bool is_color;
    int fd = sink_fd(&is_color);
    log_line line;
    line_begin(&line, st_log_get_format(), level, is_color);
    line_message(&line, msg ? msg : "", msg ? strlen(msg) : 0);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        const char *value = va_arg(ap, const char *);
        line_field(&line, key, value);
    }
    va_end(ap);
    line_finish_and_write(&line, fd);
    errno = saved_errno;
}
