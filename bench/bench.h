/* bench.h - what the C benchmarks share: a seeded xorshift generator, the
 * random floats they feed their subjects, and a CPU clock.  Each bench is
 * one program (bench/NAME.c), so these are static functions. */
#ifndef ST_BENCH_H
#define ST_BENCH_H

#include <stdint.h>
#include <time.h>

static uint64_t bench_rng_state = 0x9E3779B97F4A7C15ull;

static inline uint64_t bench_rng_next(void)
{
    bench_rng_state ^= bench_rng_state << 13;
    bench_rng_state ^= bench_rng_state >> 7;
    bench_rng_state ^= bench_rng_state << 17;
    return bench_rng_state;
}

/* CPU time of this thread: the figures stay meaningful on a loaded
 * machine (CI and developer boxes are shared), unlike wall time. */
static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Random floats spread over a few decades, as model inputs are. */
static inline float bench_random_float(void)
{
    static const float scale[5] = { 0.01f, 0.1f, 1.0f, 10.0f, 100.0f };
    double u = (double)(bench_rng_next() >> 11) * 0x1p-53;
    return (float)((2.0 * u - 1.0) * scale[bench_rng_next() % 5]);
}

#endif
