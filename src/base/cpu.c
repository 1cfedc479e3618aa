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

/* Reads a small sysfs file as text; false when absent or unreadable. */
static bool cpu_read_small(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t got = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[got] = '\0';
    return got > 0;
}

static int cpu_quota_ratio(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    long long cpus = (quota + period - 1) / period;
    return cpus > 4096 ? 4096 : (int)cpus;
}

/* v2: "<quota|max> <period>" in <root><path>/cpu.max. */
static int cpu_quota_v2(const char *root, st_str path)
{
    char file[512], text[64];
    if (snprintf(file, sizeof file, "%s%.*s/cpu.max", root, (int)path.len, path.ptr) >= (int)sizeof file ||
        !cpu_read_small(file, text, sizeof text))
        return 0;
    long long quota, period;
    if (sscanf(text, "%lld %lld", &quota, &period) != 2)
        return 0; /* "max 100000": no limit */
    return cpu_quota_ratio(quota, period);
}

/* v1: cpu.cfs_quota_us (-1 = none) and cpu.cfs_period_us under the cpu
 * controller's mount, which distributions name "cpu" or "cpu,cpuacct". */
static int cpu_quota_v1(const char *root, st_str path)
{
    static const char *const mounts[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu"};
    for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
        char file[512], text[64];
        long long quota, period;
        int n = snprintf(file, sizeof file, "%s/%s%.*s/cpu.cfs_quota_us", root, mounts[i], (int)path.len,
                         path.ptr);
        if (n >= (int)sizeof file || !cpu_read_small(file, text, sizeof text) || sscanf(text, "%lld", &quota) != 1)
            continue;
        snprintf(file, sizeof file, "%s/%s%.*s/cpu.cfs_period_us", root, mounts[i], (int)path.len, path.ptr);
        if (!cpu_read_small(file, text, sizeof text) || sscanf(text, "%lld", &period) != 1)
            continue;
        return cpu_quota_ratio(quota, period);
    }
    return 0;
}

int st_cpu_quota_from(const char *cgroup_root, st_str self_cgroup)
{
    /* Lines are "id:controllers:path"; v2 is "0::path", v1's cpu
     * controller is listed among comma-separated controllers. */
    int best = 0;
    st_str rest = self_cgroup;
    while (rest.len > 0) {
        const char *nl = memchr(rest.ptr, '\n', rest.len);
        size_t line_len = nl ? (size_t)(nl - rest.ptr) : rest.len;
        st_str line = st_str_make(rest.ptr, line_len);
        rest = nl ? st_str_make(nl + 1, rest.len - line_len - 1) : st_str_make(rest.ptr + line_len, 0);
        const char *c1 = memchr(line.ptr, ':', line.len);
        if (!c1)
            continue;
        size_t after1 = (size_t)(c1 - line.ptr) + 1;
        const char *c2 = memchr(c1 + 1, ':', line.len - after1);
        if (!c2)
            continue;
        st_str controllers = st_str_make(c1 + 1, (size_t)(c2 - c1 - 1));
        size_t path_at = (size_t)(c2 - line.ptr) + 1;
        st_str path = st_str_make(line.ptr + path_at, line.len - path_at);
        if (path.len == 1 && path.ptr[0] == '/')
            path.len = 0;
        int q = 0;
        if (controllers.len == 0 && line.len >= 2 && line.ptr[0] == '0') {
            q = cpu_quota_v2(cgroup_root, path);
        } else {
            for (size_t i = 0; i < controllers.len;) {
                size_t j = i;
                while (j < controllers.len && controllers.ptr[j] != ',')
                    j++;
                if (j - i == 3 && memcmp(controllers.ptr + i, "cpu", 3) == 0)
                    q = cpu_quota_v1(cgroup_root, path);
                i = j + 1;
            }
        }
        if (q > 0 && (best == 0 || q < best))
            best = q;
    }
    return best;
}

static int cpu_count_cached;
static pthread_once_t cpu_count_once = PTHREAD_ONCE_INIT;

static void cpu_count_init(void)
{
    int count = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        count = CPU_COUNT(&set);
    if (count <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        count = online > 0 ? (int)online : 1;
    }
    char self[4096];
    if (cpu_read_small("/proc/self/cgroup", self, sizeof self)) {
        int quota = st_cpu_quota_from("/sys/fs/cgroup", st_str_make(self, strlen(self)));
        if (quota > 0 && quota < count)
            count = quota;
    }
    cpu_count_cached = count;
}

int st_cpu_count_online(void)
{
    pthread_once(&cpu_count_once, cpu_count_init);
    return cpu_count_cached;
}
