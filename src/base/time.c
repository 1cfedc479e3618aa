/* time.c - clock_gettime wrappers and the RFC 3339 formatter used by logs
 * and records.  Formatting does its own digit work so it never allocates
 * and is safe to call from any thread. */
#include "base/time.h"

#include <errno.h>
#include <time.h>

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t st_now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t st_now_us(void)
{
    return clock_ns(CLOCK_MONOTONIC) / 1000u;
}

uint64_t st_wall_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

void st_sleep_us(uint64_t us)
{
    struct timespec req = {
        .tv_sec = (time_t)(us / 1000000u),
        .tv_nsec = (long)(us % 1000000u) * 1000,
    };
    struct timespec rem;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
}

/* Writes `v` as exactly `width` decimal digits (zero padded). */
static void put_digits(char *out, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

size_t st_time_format_rfc3339(uint64_t wall_ns, char *buf, size_t n)
{
    if (n < ST_TIME_RFC3339_SIZE) {
        if (n > 0)
            buf[0] = '\0';
        return 0;
    }
    time_t secs = (time_t)(wall_ns / 1000000000u);
    unsigned ms = (unsigned)(wall_ns % 1000000000u / 1000000u);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        buf[0] = '\0';
        return 0;
    }
    /* 2^64 ns after 1970 is in 2554, so the year always has four digits. */
    put_digits(buf, (unsigned)tm.tm_year + 1900u, 4);
    buf[4] = '-';
    put_digits(buf + 5, (unsigned)tm.tm_mon + 1, 2);
    buf[7] = '-';
    put_digits(buf + 8, (unsigned)tm.tm_mday, 2);
    buf[10] = 'T';
    put_digits(buf + 11, (unsigned)tm.tm_hour, 2);
    buf[13] = ':';
    put_digits(buf + 14, (unsigned)tm.tm_min, 2);
    buf[16] = ':';
    put_digits(buf + 17, (unsigned)tm.tm_sec, 2);
    buf[19] = '.';
    put_digits(buf + 20, ms, 3);
    buf[23] = 'Z';
    buf[24] = '\0';
    return 24;
}
