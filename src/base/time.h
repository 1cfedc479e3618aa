/* time.h - clocks and timestamps.
 * Durations are measured on the monotonic clock (never jumps); log and
 * record timestamps use the wall clock, printed as RFC 3339 UTC. */
#ifndef ST_TIME_H
#define ST_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Bytes st_time_format_rfc3339 needs: "2026-01-02T03:04:05.678Z" + NUL. */
#define ST_TIME_RFC3339_SIZE 25

/* Monotonic clock (CLOCK_MONOTONIC) in nanoseconds; only differences mean
 * anything. */
uint64_t st_now_ns(void);
/* The same clock in microseconds. */
uint64_t st_now_us(void);
/* Wall clock (CLOCK_REALTIME) in nanoseconds since the Unix epoch. */
uint64_t st_wall_ns(void);
/* Sleeps at least `us` microseconds, resuming after signal interruptions. */
void st_sleep_us(uint64_t us);
/* Writes `wall_ns` as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, milliseconds
 * truncated) plus a NUL into buf; returns the length (24), or 0 with buf
 * set to "" (when n > 0) if n < ST_TIME_RFC3339_SIZE. */
size_t st_time_format_rfc3339(uint64_t wall_ns, char *buf, size_t n);

#endif
