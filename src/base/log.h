/* log.h - levelled logging as text for a terminal or as JSON lines.
 * Each line is built on the stack and written with one write(2), so lines
 * from different threads never interleave and logging never allocates
 * (it works on out-of-memory paths).  Output goes to stderr by default.
 *
 *     ST_LOG_INFO("listening on %s:%d", host, port);
 *     st_log_kv(ST_LOG_LEVEL_WARN, "slow request", "model", name, "ms", ms_text, NULL);
 *
 * text: 2026-01-02T03:04:05.678Z WARN  slow request model=churn ms=812
 * json: {"ts":"2026-01-02T03:04:05.678Z","level":"warn","msg":"slow request","model":"churn","ms":"812"}
 */
#ifndef ST_LOG_H
#define ST_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "base/status.h"
#include "base/str.h"

typedef enum {
    ST_LOG_LEVEL_DEBUG,
    ST_LOG_LEVEL_INFO,
    ST_LOG_LEVEL_WARN,
    ST_LOG_LEVEL_ERROR,
    ST_LOG_LEVEL_OFF, /* only as a minimum level: log nothing */
} st_log_level;

typedef enum {
    ST_LOG_TEXT, /* timestamp, level, message, key=value fields */
    ST_LOG_JSON, /* one JSON object per line: ts, level, msg, fields */
} st_log_format;

/* Longest line written, newline included; longer lines are cut, marked
 * " [truncated]" (text) or "truncated":true (JSON, still valid JSON).
 * Equal to PIPE_BUF on Linux, so a line is one atomic write to a pipe. */
#define ST_LOG_LINE_MAX 4096

/* Sets the minimum level written (default info); thread-safe. */
void st_log_set_level(st_log_level min_level);
/* The current minimum level. */
st_log_level st_log_get_level(void);
/* True when a line at `level` would be written (use it to skip costly
 * argument preparation). */
bool st_log_is_enabled(st_log_level level);
/* Sets the line format (default ST_LOG_TEXT); thread-safe. */
void st_log_set_format(st_log_format format);
/* The current line format. */
st_log_format st_log_get_format(void);
/* Sends lines to `fd` (not owned, never closed); -1 restores stderr.
 * Colour is decided here: on only when fd is a terminal, NO_COLOR is unset
 * or empty, and TERM is not "dumb". */
void st_log_set_fd(int fd);
/* The fd lines currently go to. */
int st_log_get_fd(void);

/* "debug", "info", "warn", "error", "off"; "invalid" for other values. */
const char *st_log_level_name(st_log_level level);
/* Parses a level name, case-insensitively ("warning" is accepted for
 * warn); ST_EINVAL with a message listing the choices when unknown. */
st_status st_log_parse_level(st_str name, st_log_level *out, st_error *err);
/* Parses "text" or "json" (case-insensitive); ST_EINVAL otherwise. */
st_status st_log_parse_format(st_str name, st_log_format *out, st_error *err);

/* Writes one printf-formatted line at `level` when enabled.  Control
 * characters in the message are escaped; errno is preserved. */
void st_log(st_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* st_log with a va_list, for wrappers. */
void st_log_v(st_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Writes `msg` plus key/value fields given as C-string pairs ended by a
 * NULL key; a NULL value is written as null (JSON) or (null) (text).
 * Keys should not repeat ts, level or msg. */
void st_log_kv(st_log_level level, const char *msg, ...) __attribute__((sentinel));

/* Level macros: arguments are not evaluated when the level is disabled. */
#define ST_LOG_AT_(level, ...)                 \
    do {                                       \
        if (st_log_is_enabled(level))          \
            st_log((level), __VA_ARGS__);      \
    } while (0)
#define ST_LOG_DEBUG(...) ST_LOG_AT_(ST_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define ST_LOG_INFO(...) ST_LOG_AT_(ST_LOG_LEVEL_INFO, __VA_ARGS__)
#define ST_LOG_WARN(...) ST_LOG_AT_(ST_LOG_LEVEL_WARN, __VA_ARGS__)
#define ST_LOG_ERROR(...) ST_LOG_AT_(ST_LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
