/* test_cpu.c - unit tests for base/cpu: the feature set is consistent,
 * agrees with the kernel's /proc/cpuinfo, STRATUS_CPU caps it (checked in a
 * re-executed child, since detection happens once per process), and the
 * description names exactly the usable features. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"

#include "base/cpu.h"
#include "base/str.h"

static const char *self_path; /* this test program, for re-execution */

static void assert_consistent(const st_cpu_feature_set *fs)
{
    if (fs->has_avx)
        assert_true(fs->has_sse42);
    if (fs->has_avx2 || fs->has_fma || fs->has_f16c)
        assert_true(fs->has_avx);
    if (fs->has_avx512f)
        assert_true(fs->has_avx2 && fs->has_fma);
    if (fs->has_avx512dq || fs->has_avx512bw || fs->has_avx512vl || fs->has_avx512vnni ||
        fs->has_avx512bf16)
        assert_true(fs->has_avx512f);
}

/* a is a subset of b. */
static void assert_subset(const st_cpu_feature_set *a, const st_cpu_feature_set *b)
{
    const bool *pa = (const bool *)a, *pb = (const bool *)b;
    for (size_t i = 0; i < sizeof *a / sizeof(bool); i++)
        assert_true(!pa[i] || pb[i]);
}

static st_cpu_feature_set all_features(void)
{
    st_cpu_feature_set fs;
    memset(&fs, 1, sizeof fs);
    return fs;
}

static void test_consistent(void **state)
{
    (void)state;
    const st_cpu_feature_set *detected = st_cpu_features_detected();
    const st_cpu_feature_set *effective = st_cpu_features();
    assert_consistent(detected);
    assert_consistent(effective);
    assert_subset(effective, detected);
    assert_ptr_equal(effective, st_cpu_features()); /* one static copy */
#if !defined(__x86_64__) && !defined(__i386__)
    st_cpu_feature_set none = { 0 };
    assert_memory_equal(detected, &none, sizeof none);
#endif
}

/* Kernel flag names, in the struct's field order. */
static const char *const kernel_flags[] = { "sse4_2",   "avx",      "avx2",     "fma",
                                            "f16c",     "avx512f",  "avx512dq", "avx512bw",
                                            "avx512vl", "avx512_vnni", "avx512_bf16" };

static bool cpuinfo_has_flag(const char *flags_line, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = flags_line; (p = strstr(p, flag)) != NULL; p += n) {
        bool starts = p == flags_line || p[-1] == ' ' || p[-1] == '\t';
        bool ends = p[n] == ' ' || p[n] == '\n' || p[n] == '\0';
        if (starts && ends)
            return true;
    }
    return false;
}

/* The kernel lists a flag only when the CPU has it and the OS enabled its
 * state, so it must agree with cpuid + xgetbv. */
static void test_matches_proc_cpuinfo(void **state)
{
    (void)state;
#if defined(__x86_64__) || defined(__i386__)
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) {
        skip();
        return;
    }
    static char line[16384];
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) == 0) {
            found = true;
            break;
        }
    }
    fclose(f);
    if (!found) {
        skip();
        return;
    }
    st_cpu_feature_set from_kernel;
    bool *flags = (bool *)&from_kernel;
    assert_int_equal(sizeof kernel_flags / sizeof kernel_flags[0], sizeof from_kernel / sizeof(bool));
    for (size_t i = 0; i < sizeof kernel_flags / sizeof kernel_flags[0]; i++)
        flags[i] = cpuinfo_has_flag(strchr(line, ':') + 1, kernel_flags[i]);
    /* Apply the same prerequisite rules, then they must agree exactly. */
    st_cpu_feature_set normalised = from_kernel;
    assert_int_equal(st_cpu_cap(&normalised, ST_STR("native"), NULL), ST_OK);
    const bool *want = (const bool *)&normalised;
    const bool *got = (const bool *)st_cpu_features_detected();
    for (size_t i = 0; i < sizeof kernel_flags / sizeof kernel_flags[0]; i++)
        if (got[i] != want[i])
            fail_msg("%s: detected %d, /proc/cpuinfo %d", kernel_flags[i], got[i], want[i]);
#else
    skip();
#endif
}

static void test_cap(void **state)
{
    (void)state;
    st_cpu_feature_set fs = all_features();
    assert_int_equal(st_cpu_cap(&fs, ST_STR("avx2"), NULL), ST_OK);
    assert_true(fs.has_sse42 && fs.has_avx && fs.has_avx2 && fs.has_fma && fs.has_f16c);
    assert_false(fs.has_avx512f || fs.has_avx512dq || fs.has_avx512bw || fs.has_avx512vl ||
                 fs.has_avx512vnni || fs.has_avx512bf16);

    fs = all_features();
    assert_int_equal(st_cpu_cap(&fs, ST_STR("AVX512"), NULL), ST_OK);
    st_cpu_feature_set all = all_features();
    assert_memory_equal(&fs, &all, sizeof fs);
    assert_int_equal(st_cpu_cap(&fs, ST_STR("native"), NULL), ST_OK);
    assert_memory_equal(&fs, &all, sizeof fs);

    assert_int_equal(st_cpu_cap(&fs, ST_STR("Generic"), NULL), ST_OK);
    st_cpu_feature_set none = { 0 };
    assert_memory_equal(&fs, &none, sizeof fs);

    /* A cap never adds a feature. */
    st_cpu_feature_set only_sse = { .has_sse42 = true };
    fs = only_sse;
    assert_int_equal(st_cpu_cap(&fs, ST_STR("avx512"), NULL), ST_OK);
    assert_memory_equal(&fs, &only_sse, sizeof fs);
    assert_int_equal(st_cpu_cap(&fs, ST_STR("avx2"), NULL), ST_OK);
    assert_memory_equal(&fs, &only_sse, sizeof fs);

    /* Capping the detected set gives consistent subsets. */
    static const char *const levels[] = { "generic", "avx2", "avx512", "native" };
    for (size_t i = 0; i < 4; i++) {
        fs = *st_cpu_features_detected();
        assert_int_equal(st_cpu_cap(&fs, st_str_c(levels[i]), NULL), ST_OK);
        assert_consistent(&fs);
        assert_subset(&fs, st_cpu_features_detected());
    }

    st_error err = { 0 };
    fs = all;
    assert_int_equal(st_cpu_cap(&fs, ST_STR("sse"), &err), ST_EINVAL);
    assert_memory_equal(&fs, &all, sizeof fs);
    assert_non_null(strstr(err.msg, "'sse'"));
    assert_non_null(strstr(err.msg, "generic"));
    assert_int_equal(st_cpu_cap(&fs, ST_STR(""), NULL), ST_EINVAL);
}

static void test_describe(void **state)
{
    (void)state;
    char buf[256];
    st_cpu_feature_set fs = { 0 };
    assert_int_equal(st_cpu_format(&fs, buf, sizeof buf), 4);
    assert_string_equal(buf, "none");

    fs = all_features();
    static const char all[] =
        "sse4.2 avx avx2 fma f16c avx512f avx512dq avx512bw avx512vl avx512vnni avx512bf16";
    assert_int_equal(st_cpu_format(&fs, buf, sizeof buf), sizeof all - 1);
    assert_string_equal(buf, all);

    /* snprintf-style truncation. */
    char small[10];
    assert_int_equal(st_cpu_format(&fs, small, sizeof small), sizeof all - 1);
    assert_string_equal(small, "sse4.2 av");
    assert_int_equal(st_cpu_format(&fs, NULL, 0), sizeof all - 1);
    fs = (st_cpu_feature_set){ 0 };
    assert_int_equal(st_cpu_format(&fs, small, 3), 4);
    assert_string_equal(small, "no");

    fs = (st_cpu_feature_set){ .has_sse42 = true, .has_avx = true, .has_f16c = true };
    st_cpu_format(&fs, buf, sizeof buf);
    assert_string_equal(buf, "sse4.2 avx f16c");

    /* st_cpu_describe names exactly the usable features. */
    size_t n = st_cpu_describe(buf, sizeof buf);
    assert_int_equal(n, strlen(buf));
    char expect[256];
    st_cpu_format(st_cpu_features(), expect, sizeof expect);
    assert_string_equal(buf, expect);
    assert_int_equal(strstr(buf, "avx2") != NULL, st_cpu_features()->has_avx2);
    assert_int_equal(strstr(buf, "avx512f") != NULL, st_cpu_features()->has_avx512f);
}

static void test_count_online(void **state)
{
    (void)state;
    int n = st_cpu_count_online();
    long configured = sysconf(_SC_NPROCESSORS_CONF);
    assert_true(n >= 1);
    if (configured > 0)
        assert_true(n <= configured);
}

static void write_text(const char *dir, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static st_str cstr(const char *s) { return st_str_make(s, strlen(s)); }

/* Quotas read from a fake cgroup tree: v2, v1 under either mount name,
 * rounding up, "max" and -1 meaning none, and lines that do not parse. */
static void test_cgroup_quota(void **state)
{
    (void)state;
    char dir[] = "/tmp/st_cgroup_XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_text(dir, "pod/a/cpu.max", "150000 100000\n");
    write_text(dir, "pod/b/cpu.max", "max 100000\n");
    write_text(dir, "cpu,cpuacct/k8s/cpu.cfs_quota_us", "300000\n");
    write_text(dir, "cpu,cpuacct/k8s/cpu.cfs_period_us", "100000\n");
    write_text(dir, "cpu/none/cpu.cfs_quota_us", "-1\n");
    write_text(dir, "cpu/none/cpu.cfs_period_us", "100000\n");

    assert_int_equal(st_cpu_quota_from(dir, cstr("0::/pod/a\n")), 2);
    assert_int_equal(st_cpu_quota_from(dir, cstr("0::/pod/b\n")), 0);
    assert_int_equal(st_cpu_quota_from(dir, cstr("0::/missing\n")), 0);
    assert_int_equal(st_cpu_quota_from(dir, cstr("4:memory:/x\n2:cpu,cpuacct:/k8s\n")), 3);
    assert_int_equal(st_cpu_quota_from(dir, cstr("2:cpuacct,cpu:/none\n")), 0);
    assert_int_equal(st_cpu_quota_from(dir, cstr("2:cpuset:/k8s\n")), 0);
    assert_int_equal(st_cpu_quota_from(dir, cstr("garbage\n::\n:\n")), 0);
    /* The tightest of several limits wins. */
    assert_int_equal(st_cpu_quota_from(dir, cstr("2:cpu,cpuacct:/k8s\n0::/pod/a")), 2);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Runs this program as "--cpu-child" with STRATUS_CPU=level and returns
 * what it printed on stdout (its description) and stderr. */
static void run_child(const char *level, char *out, size_t out_cap, char *err, size_t err_cap)
{
    int out_pipe[2], err_pipe[2];
    assert_int_equal(pipe(out_pipe), 0);
    assert_int_equal(pipe(err_pipe), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        close(out_pipe[0]);
        close(err_pipe[0]);
        setenv("STRATUS_CPU", level, 1);
        execl(self_path, self_path, "--cpu-child", (char *)NULL);
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    size_t n = 0;
    ssize_t got;
    while (n + 1 < out_cap && (got = read(out_pipe[0], out + n, out_cap - 1 - n)) > 0)
        n += (size_t)got;
    out[n] = '\0';
    n = 0;
    while (n + 1 < err_cap && (got = read(err_pipe[0], err + n, err_cap - 1 - n)) > 0)
        n += (size_t)got;
    err[n] = '\0';
    close(out_pipe[0]);
    close(err_pipe[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_env_override(void **state)
{
    (void)state;
    static const char *const levels[] = { "generic", "avx2", "AVX512", "native", "bogus" };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        char out[512], err[2048], expect[512];
        run_child(levels[i], out, sizeof out, err, sizeof err);
        st_cpu_feature_set fs = *st_cpu_features_detected();
        bool is_known = st_cpu_cap(&fs, st_str_c(levels[i]), NULL) == ST_OK;
        if (!is_known)
            st_cpu_cap(&fs, ST_STR("generic"), NULL);
        st_cpu_format(&fs, expect, sizeof expect);
        strcat(expect, "\n");
        assert_string_equal(out, expect);
        if (is_known)
            assert_string_equal(err, "");
        else
            assert_non_null(strstr(err, "STRATUS_CPU"));
    }
}

static void *child_features_thread(void *arg)
{
    (void)arg;
    return (void *)st_cpu_features();
}

/* The re-executed child: several threads race to the first detection (it
 * must happen once), then the description is printed. */
static int child_main(void)
{
    pthread_t threads[4];
    const void *seen[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&threads[i], NULL, child_features_thread, NULL) != 0)
            return 2;
    for (int i = 0; i < 4; i++) {
        void *p;
        pthread_join(threads[i], &p);
        seen[i] = p;
        if (seen[i] != seen[0])
            return 3;
    }
    char buf[256];
    st_cpu_describe(buf, sizeof buf);
    printf("%s\n", buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--cpu-child") == 0)
        return child_main();
    self_path = "/proc/self/exe";
    if (access(self_path, X_OK) != 0)
        self_path = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consistent),
        cmocka_unit_test(test_matches_proc_cpuinfo),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_count_online),
        cmocka_unit_test(test_cgroup_quota),
        cmocka_unit_test(test_env_override),
    };
    return cmocka_run_group_tests_name("cpu", tests, NULL, NULL);
}
