/* gemm.c - benchmark: eng_sgemm (and eng_sgemm_packed, B packed once as a
 * model's weights are) against OpenBLAS cblas_sgemm, single-threaded, on
 * the shapes models run: batch-1 dense layers, small batches, transformer
 * projections, conv im2col products and square ones.  Best of several
 * timed batches taken in turns; prints GFLOP/s and our ratio over OpenBLAS (> 1: we are
 * faster).  Not a test: it asserts nothing but a loose agreement.
 *   gemm [--threads N] [--filter m,n,k]   (N > 1: both sides use N threads;
 *                                          m,n,k: that shape only) */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/pool.h"
#include "engine/kernels/gemm_int.h"

/* OpenBLAS extension (declared by its cblas.h, repeated for other ones). */
void openblas_set_num_threads(int num_threads);

#define REPEATS 25
#define BATCH_SECONDS 0.004

/* Single-threaded runs are timed in thread CPU time: the machine may be
 * shared, and time spent descheduled is not the kernel's. */
static clockid_t bench_clock = CLOCK_THREAD_CPUTIME_ID;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float random_float(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) * 0x1p-53 * 2.0 - 1.0);
}

typedef struct shape {
    size_t m, n, k;
    const char *what;
} shape;

static const shape shapes[] = {
    { 1, 512, 784, "MLP layer, batch 1" },
    { 1, 256, 512, "MLP layer, batch 1" },
    { 1, 10, 256, "classifier, batch 1" },
    { 2, 512, 784, "MLP layer, batch 2" },
    { 4, 512, 784, "MLP layer, batch 4" },
    { 8, 1024, 1024, "dense, batch 8" },
    { 8, 512, 784, "MLP layer, batch 8" },
    { 14, 512, 784, "MLP layer, batch 14" },
    { 64, 512, 784, "MLP layer, batch 64" },
    { 64, 256, 512, "MLP layer, batch 64" },
    { 64, 128, 128, "small dense" },
    { 256, 256, 256, "square" },
    { 1024, 1024, 1024, "square" },
    { 4096, 128, 128, "transformer, 4096 tokens" },
    { 512, 768, 768, "BERT projection" },
    { 512, 3072, 768, "BERT FFN up" },
    { 512, 768, 3072, "BERT FFN down" },
    { 1024, 32, 27, "conv 3x3x3 -> 32, im2col" },
    { 256, 64, 288, "conv 3x3x32 -> 64, im2col" },
    { 3136, 64, 576, "conv 3x3x64 -> 64 @56x56" },
};

typedef void (*run_fn)(const shape *s, bool trans_b, const float *a, const float *b, const void *packed,
                       float *c, st_pool *pool);

static void run_ours(const shape *s, bool trans_b, const float *a, const float *b, const void *packed, float *c,
                     st_pool *pool)
{
    (void)packed;
    eng_sgemm(s->m, s->n, s->k, 1.0f, a, s->k, false, b, trans_b ? s->k : s->n, trans_b, 0.0f, c, s->n, pool);
}

static void run_packed(const shape *s, bool trans_b, const float *a, const float *b, const void *packed,
                       float *c, st_pool *pool)
{
    (void)trans_b;
    (void)b;
    eng_sgemm_packed(s->m, 1.0f, a, s->k, false, packed, 0.0f, c, s->n, pool);
}

static void run_openblas(const shape *s, bool trans_b, const float *a, const float *b, const void *packed,
                         float *c, st_pool *pool)
{
    (void)packed;
    (void)pool;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)s->m, (int)s->n,
                (int)s->k, 1.0f, a, (int)s->k, b, trans_b ? (int)s->k : (int)s->n, 0.0f, c, (int)s->n);
}

enum { N_RUNNERS = 3 };

/* Best GFLOP/s of each runner over REPEATS batches, the runners taking
 * turns so that a noisy moment hits them alike.  The batch size (calls
 * between two clock reads) is calibrated to about BATCH_SECONDS. */
static void measure(const run_fn *fns, const shape *s, bool trans_b, const float *a, const float *b,
                    const void *packed, float *const *c, st_pool *pool, double *best)
{
    size_t iters[N_RUNNERS];
    for (int f = 0; f < N_RUNNERS; f++) {
        fns[f](s, trans_b, a, b, packed, c[f], pool); /* warm caches and scratch */
        size_t n = 0;
        double t0 = now_s();
        do {
            fns[f](s, trans_b, a, b, packed, c[f], pool);
            n++;
        } while (now_s() - t0 < BATCH_SECONDS / 4);
        iters[f] = n * 4;
        best[f] = 0.0;
    }
    for (int r = 0; r < REPEATS; r++)
        for (int f = 0; f < N_RUNNERS; f++) {
            double t0 = now_s();
            for (size_t i = 0; i < iters[f]; i++)
                fns[f](s, trans_b, a, b, packed, c[f], pool);
            double dt = now_s() - t0;
            double gflops = 2.0 * (double)s->m * (double)s->n * (double)s->k * (double)iters[f] / dt * 1e-9;
            if (gflops > best[f])
                best[f] = gflops;
        }
}

int main(int argc, char **argv)
{
    int threads = 1;
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
            filter = argv[++i];
    }
    st_pool *pool = NULL;
    if (threads > 1) {
        bench_clock = CLOCK_MONOTONIC;
        st_error err;
        if (st_pool_create(threads, &pool, &err) != ST_OK) {
            fprintf(stderr, "gemm: cannot start %d threads\n", threads);
            return 1;
        }
    }
    openblas_set_num_threads(threads > 1 ? threads : 1);
    printf("eng_sgemm variant %s vs OpenBLAS cblas_sgemm, %d thread%s, GFLOP/s (best of %d)\n",
           gemm_variant_best()->name, threads, threads > 1 ? "s" : "", REPEATS);
    printf("%-16s %-2s %9s %9s %9s %7s %7s  %s\n", "m,n,k", "B", "ours", "packed", "openblas", "ours/ob",
           "pack/ob", "");
    double log_sum = 0.0, log_sum_packed = 0.0;
    int count = 0;
    /* --filter m,n,k runs that shape alone, listed or not. */
    shape custom = { 0, 0, 0, "given shape" };
    size_t n_shapes = sizeof shapes / sizeof shapes[0];
    if (filter && sscanf(filter, "%zu,%zu,%zu", &custom.m, &custom.n, &custom.k) != 3) {
        fprintf(stderr, "gemm: --filter wants m,n,k\n");
        return 2;
    }
    for (size_t si = 0; si < (filter ? 1 : n_shapes); si++) {
        const shape *s = filter ? &custom : &shapes[si];
        for (size_t li = 0; filter && li < n_shapes; li++)
            if (shapes[li].m == custom.m && shapes[li].n == custom.n && shapes[li].k == custom.k)
                s = &shapes[li];
        char name[48];
        snprintf(name, sizeof name, "%zu,%zu,%zu", s->m, s->n, s->k);
        float *a = malloc(s->m * s->k * sizeof *a), *b = malloc(s->k * s->n * sizeof *b);
        float *c[N_RUNNERS];
        for (int f = 0; f < N_RUNNERS; f++)
            c[f] = malloc(s->m * s->n * sizeof *c[f]);
        size_t packed_bytes = eng_sgemm_pack_b_bytes(s->k, s->n);
        void *mem = malloc(packed_bytes);
        if (!a || !b || !c[0] || !c[1] || !c[2] || !mem)
            return 1;
        for (size_t i = 0; i < s->m * s->k; i++)
            a[i] = random_float();
        for (size_t i = 0; i < s->k * s->n; i++)
            b[i] = random_float();
        for (int tb = 0; tb < 2; tb++) {
            const eng_sgemm_packed_b *packed =
                eng_sgemm_pack_b(s->k, s->n, b, tb ? s->k : s->n, tb, mem, packed_bytes);
            static const run_fn fns[N_RUNNERS] = { run_ours, run_packed, run_openblas };
            double best[N_RUNNERS];
            measure(fns, s, tb, a, b, packed, c, pool, best);
            double max_diff = 0.0;
            for (size_t i = 0; i < s->m * s->n; i++)
                max_diff = fmax(max_diff, fmax(fabs((double)c[0][i] - (double)c[2][i]),
                                               fabs((double)c[1][i] - (double)c[2][i])));
            double ours = best[0], pk = best[1], ob = best[2];
            printf("%-16s %-2s %9.1f %9.1f %9.1f %7.2f %7.2f  %s%s\n", name, tb ? "T" : "N", ours, pk, ob,
                   ours / ob, pk / ob, s->what, max_diff > 1e-4 * (double)s->k ? "  MISMATCH" : "");
            fflush(stdout);
            log_sum += log(ours / ob);
            log_sum_packed += log(pk / ob);
            count++;
        }
        free(a);
        free(b);
        for (int f = 0; f < N_RUNNERS; f++)
            free(c[f]);
        free(mem);
    }
    if (count > 0)
        printf("geometric mean ours/openblas %.2f, packed/openblas %.2f\n", exp(log_sum / count),
               exp(log_sum_packed / count));
    st_pool_destroy(pool);
    return 0;
}
