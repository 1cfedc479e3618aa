/* cpu.c - cpuid/xgetbv feature detection, the STRATUS_CPU cap and the CPU
 * count.  A feature counts only when the OS saves its register state
 * (XCR0), otherwise using it would fault or corrupt other threads. */
#include "base/cpu.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CPU_IS_X86 1
#else
#define CPU_IS_X86 0
#endif

static st_cpu_feature_set cpu_detected;
static st_cpu_feature_set cpu_effective;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

/* Clears any flag whose prerequisite is missing (odd hypervisors can
 * advertise AVX-512 without AVX2); kernels then never test two flags. */
static void cpu_normalise(st_cpu_feature_set *fs)
{
    if (!fs->has_sse42)
        fs->has_avx = false;
    if (!fs->has_avx)
        fs->has_avx2 = fs->has_fma = fs->has_f16c = false;
    if (!fs->has_avx2 || !fs->has_fma)
        fs->has_avx512f = false;
    if (!fs->has_avx512f)
        fs->has_avx512dq = fs->has_avx512bw = fs->has_avx512vl = fs->has_avx512vnni =
            fs->has_avx512bf16 = false;
}

#if CPU_IS_X86
static unsigned long long cpu_xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (unsigned long long)hi << 32 | lo;
}

static void cpu_detect_x86(st_cpu_feature_set *fs)
{
    unsigned a, b, c, d;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 1 || !__get_cpuid(1, &a, &b, &c, &d))
        return;
    bool has_osxsave = c >> 27 & 1;
    /* XCR0 bits: 1 SSE, 2 AVX (YMM upper halves); 5-7 opmask, ZMM 0-15 upper
     * halves, ZMM 16-31. */
    unsigned long long xcr0 = has_osxsave ? cpu_xgetbv0() : 0;
    bool os_ymm = (xcr0 & 0x6) == 0x6;
    bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;

    fs->has_sse42 = c >> 20 & 1;
    fs->has_avx = os_ymm && (c >> 28 & 1);
    fs->has_fma = os_ymm && (c >> 12 & 1);
    fs->has_f16c = os_ymm && (c >> 29 & 1);
    if (max_leaf < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned max_subleaf = a;
    fs->has_avx2 = os_ymm && (b >> 5 & 1);
    fs->has_avx512f = os_zmm && (b >> 16 & 1);
    fs->has_avx512dq = os_zmm && (b >> 17 & 1);
    fs->has_avx512bw = os_zmm && (b >> 30 & 1);
    fs->has_avx512vl = os_zmm && (b >> 31 & 1);
    fs->has_avx512vnni = os_zmm && (c >> 11 & 1);
    if (max_subleaf >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        fs->has_avx512bf16 = os_zmm && (a >> 5 & 1);
    }
}
#endif

static void cpu_init(void)
{
#if CPU_IS_X86
    cpu_detect_x86(&cpu_detected);
#endif
    cpu_normalise(&cpu_detected);
    cpu_effective = cpu_detected;
    const char *level = getenv("STRATUS_CPU");
    if (level && level[0]) {
        st_error err;
        if (st_cpu_cap(&cpu_effective, st_str_c(level), &err) != ST_OK) {
            st_log(ST_LOG_LEVEL_WARN, "STRATUS_CPU: %s; using generic", err.msg);
            st_cpu_cap(&cpu_effective, ST_STR("generic"), NULL);
        }
    }
}

const st_cpu_feature_set *st_cpu_features(void)
{
    pthread_once(&cpu_once, cpu_init);
    return &cpu_effective;
}

const st_cpu_feature_set *st_cpu_features_detected(void)
{
    pthread_once(&cpu_once, cpu_init);
    return &cpu_detected;
}

st_status st_cpu_cap(st_cpu_feature_set *fs, st_str level, st_error *err)
{
    if (st_str_eq_nocase(level, ST_STR("generic"))) {
        *fs = (st_cpu_feature_set){ 0 };
    } else if (st_str_eq_nocase(level, ST_STR("avx2"))) {
        fs->has_avx512f = false;
    } else if (!st_str_eq_nocase(level, ST_STR("avx512")) &&
               !st_str_eq_nocase(level, ST_STR("native"))) {
        return st_fail(err, ST_EINVAL, "unknown CPU level '%.*s' (use generic, avx2, avx512 or native)",
                       level.len > 64 ? 64 : (int)level.len, level.ptr);
    }
    cpu_normalise(fs);
    return ST_OK;
}

size_t st_cpu_format(const st_cpu_feature_set *fs, char *buf, size_t n)
{
    const struct {
        bool is_set;
        const char *name;
    } names[] = {
        { fs->has_sse42, "sse4.2" },         { fs->has_avx, "avx" },
        { fs->has_avx2, "avx2" },            { fs->has_fma, "fma" },
        { fs->has_f16c, "f16c" },            { fs->has_avx512f, "avx512f" },
        { fs->has_avx512dq, "avx512dq" },    { fs->has_avx512bw, "avx512bw" },
        { fs->has_avx512vl, "avx512vl" },    { fs->has_avx512vnni, "avx512vnni" },
        { fs->has_avx512bf16, "avx512bf16" },
    };
    size_t len = 0;
    if (n > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!names[i].is_set)
            continue;
        const char *sep = len ? " " : "";
        int w = snprintf(n > len ? buf + len : NULL, n > len ? n - len : 0, "%s%s", sep, names[i].name);
        len += (size_t)w;
    }
    if (len == 0)
        len = (size_t)snprintf(buf, n, "none");
    return len;
}

size_t st_cpu_describe(char *buf, size_t n)
{
    return st_cpu_format(st_cpu_features(), buf, n);
}

int st_cpu_count_online(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int count = CPU_COUNT(&set);
        if (count > 0)
            return count;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
}
