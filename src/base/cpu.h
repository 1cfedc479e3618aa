/* cpu.h - what the processor (and the OS) let kernels use.
 * Detected once by cpuid/xgetbv; STRATUS_CPU=generic|avx2|avx512|native caps
 * the result so tests and users can force the scalar or AVX2 paths.
 * Non-x86 builds report no features. */
#ifndef ST_CPU_H
#define ST_CPU_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"
#include "base/str.h"

/* Usable instruction-set extensions.  Always consistent: every AVX-512
 * flag implies has_avx512f, which implies has_avx2 and has_fma; has_avx2,
 * has_fma and has_f16c imply has_avx; has_avx implies has_sse42. */
typedef struct st_cpu_feature_set {
    bool has_sse42;
    bool has_avx;
    bool has_avx2;
    bool has_fma;
    bool has_f16c;
    bool has_avx512f;
    bool has_avx512dq;
    bool has_avx512bw;
    bool has_avx512vl;
    bool has_avx512vnni;
    bool has_avx512bf16;
} st_cpu_feature_set;

/* The features kernels may use: detected once (thread-safe), then capped by
 * STRATUS_CPU; an unknown STRATUS_CPU value logs a warning and means
 * generic.  The pointer is to static storage. */
const st_cpu_feature_set *st_cpu_features(void);
/* What the hardware and OS support, ignoring STRATUS_CPU. */
const st_cpu_feature_set *st_cpu_features_detected(void);
/* Caps `fs` in place to a level: "generic" (none), "avx2" (up to AVX2, FMA,
 * F16C), "avx512" or "native" (no cap); then clears flags whose
 * prerequisites are missing, so the result is consistent.  Never adds a
 * feature.  ST_EINVAL for other names, `fs` untouched. */
st_status st_cpu_cap(st_cpu_feature_set *fs, st_str level, st_error *err);
/* Writes the usable features as space-separated names ("sse4.2 avx avx2
 * fma ..."; "none" when empty) into buf, snprintf-style: returns the full
 * length, truncates to n - 1 bytes plus NUL. */
size_t st_cpu_describe(char *buf, size_t n);
/* st_cpu_describe for a given feature set. */
size_t st_cpu_format(const st_cpu_feature_set *fs, char *buf, size_t n);
/* CPUs this process may use, at least 1: its affinity mask, capped by a
 * cgroup CPU quota (v2 cpu.max, v1 cpu.cfs_quota_us / cfs_period_us,
 * rounded up), as containers under Kubernetes get.  Read once. */
int st_cpu_count_online(void);
/* The cgroup CPU quota in whole CPUs (rounded up), 0 when there is none.
 * `cgroup_root` is normally "/sys/fs/cgroup", `self_cgroup` the text of
 * /proc/self/cgroup; both are parameters so tests can fake them. */
int st_cpu_quota_from(const char *cgroup_root, st_str self_cgroup);

#endif
