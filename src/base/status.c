/* status.c - message tables for st_status and the st_error helpers. */
#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_messages[] = {
#define ST_STATUS_MSG_(name, http, msg) msg,
    ST_STATUS_LIST(ST_STATUS_MSG_)
#undef ST_STATUS_MSG_
};

static const char *const status_names[] = {
#define ST_STATUS_NAME_(name, http, msg) #name,
    ST_STATUS_LIST(ST_STATUS_NAME_)
#undef ST_STATUS_NAME_
};

static const short status_http[] = {
#define ST_STATUS_HTTP_(name, http, msg) http,
    ST_STATUS_LIST(ST_STATUS_HTTP_)
#undef ST_STATUS_HTTP_
};

const char *st_status_str(st_status s)
{
    if ((unsigned)s >= ST_STATUS_COUNT_)
        return "unknown status";
    return status_messages[s];
}

const char *st_status_name(st_status s)
{
    if ((unsigned)s >= ST_STATUS_COUNT_)
        return "ST_UNKNOWN";
    return status_names[s];
}

int st_status_http(st_status s)
{
    if ((unsigned)s >= ST_STATUS_COUNT_)
        return 500;
    return status_http[s];
}

st_status st_fail(st_error *err, st_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

st_status st_fail_wrap(st_error *err, st_status code, const char *fmt, ...)
{
    if (!err)
        return code;
    char prefix[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (err->code == ST_OK)
        err->code = code;
    const char *rest = err->msg[0] ? err->msg : st_status_str(err->code);
    size_t cap = sizeof err->msg;
    size_t plen = strnlen(prefix, cap - 1);
    size_t rlen = strnlen(rest, cap - 1);
    if (plen + 2 >= cap) { /* prefix alone fills the message */
        memcpy(err->msg, prefix, cap - 1);
        err->msg[cap - 1] = '\0';
        return err->code;
    }
    if (rlen > cap - 1 - plen - 2)
        rlen = cap - 1 - plen - 2;
    memmove(err->msg + plen + 2, rest, rlen);
    memcpy(err->msg, prefix, plen);
    err->msg[plen] = ':';
    err->msg[plen + 1] = ' ';
    err->msg[plen + 2 + rlen] = '\0';
    return err->code;
}

const char *st_error_msg(const st_error *err)
{
    if (!err)
        return "";
    if (err->msg[0])
        return err->msg;
    return st_status_str(err->code);
}
