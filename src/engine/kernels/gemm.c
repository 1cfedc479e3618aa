/* gemm.c - single-precision matrix multiply: the scalar reference, the
 * cache-blocked driver (GotoBLAS/BLIS loop nest around per-ISA register
 * tiles), the small-M paths, pre-packed B operands and the split over a
 * thread pool.  The micro-kernels live in gemm_<isa>.c.
 *
 * Paths, picked per call from m and B's layout:
 *   axpy     few rows, B stored k x n: C accumulates alpha * A(i,p) * B(p,:)
 *            row after row of B, reading B once in address order.
 *   stream   m <= mr, B pre-packed (or stored k x n with m past axpy's
 *            range): one register tile of m rows slides along n over the
 *            whole depth; nothing is packed.  Batch 1 with packed weights.
 *   dot      few rows, B stored n x k (y = x W^T): dot products along the
 *            contiguous rows of W, streaming W once.
 *   gemv     one column (C = A b): the dot kernel on C^T = b^T A^T.
 *   blocked  everything else: B packed in kc x nc blocks (unless
 *            pre-packed), A in mc x kc blocks (or read in place when C is
 *            narrow), register tiles over both. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "engine/kernels/gemm_int.h"

void eng_sgemm_ref(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, bool trans_a,
                   const float *b, size_t ldb, bool trans_b, float beta, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, n * sizeof *ci);
        else if (beta != 1.0f)
            for (size_t j = 0; j < n; j++)
                ci[j] *= beta;
        if (alpha == 0.0f)
            continue;
        for (size_t p = 0; p < k; p++) {
            float av = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
            if (!trans_b) {
                const float *bp = b + p * ldb;
                for (size_t j = 0; j < n; j++)
                    ci[j] += av * bp[j];
            } else {
                for (size_t j = 0; j < n; j++)
                    ci[j] += av * b[j * ldb + p];
            }
        }
    }
}

/* --- variant choice -------------------------------------------------------- */

static const gemm_variant *best_variant;
static pthread_once_t best_once = PTHREAD_ONCE_INIT;

static void choose_variant(void)
{
    const st_cpu_feature_set *f = st_cpu_features();
    const gemm_variant *v = NULL;
    if (f->has_avx512f)
        v = gemm_variant_avx512();
    if (!v && f->has_avx2 && f->has_fma)
        v = gemm_variant_avx2();
    best_variant = v ? v : gemm_variant_generic();
}

const gemm_variant *gemm_variant_best(void)
{
    pthread_once(&best_once, choose_variant);
    return best_variant;
}

/* --- per-thread packing memory ------------------------------------------------ */

/* Growing buffers per thread, reused by every call on that thread, so
 * the steady state allocates nothing.  Pthread keys free them when the
 * thread exits; the main thread's live until the process ends.  Two: the
 * packing buffer, and the buffer eng_sgemm_unaligned_b holds its operand
 * in while it calls eng_sgemm (which uses the first). */
typedef enum { BUF_PACK, BUF_BOUNCE, BUF_COUNT } thread_buf_id;

static _Thread_local float *thread_bufs[BUF_COUNT];
static _Thread_local size_t thread_buf_floats[BUF_COUNT];
static pthread_key_t thread_buf_keys[BUF_COUNT];
static pthread_once_t thread_buf_once = PTHREAD_ONCE_INIT;
static bool is_thread_buf_key_ok[BUF_COUNT];

static void thread_buf_free(void *p)
{
    st_free(p);
}

static void thread_buf_keys_create(void)
{
    for (int i = 0; i < BUF_COUNT; i++)
        is_thread_buf_key_ok[i] = pthread_key_create(&thread_buf_keys[i], thread_buf_free) == 0;
}

/* At least `floats` floats of buffer id, 64-byte aligned; NULL when out
 * of memory. */
static float *thread_buf_get(thread_buf_id id, size_t floats)
{
    if (floats <= thread_buf_floats[id])
        return thread_bufs[id];
    pthread_once(&thread_buf_once, thread_buf_keys_create);
    if (!is_thread_buf_key_ok[id] || floats > SIZE_MAX / sizeof(float))
        return NULL;
    float *fresh = st_aligned_alloc(64, floats * sizeof(float));
    if (!fresh)
        return NULL;
    if (pthread_setspecific(thread_buf_keys[id], fresh) != 0) {
        st_free(fresh);
        return NULL;
    }
    st_free(thread_bufs[id]);
    thread_bufs[id] = fresh;
    thread_buf_floats[id] = floats;
    return fresh;
}

static float *scratch_get(size_t floats)
{
    return thread_buf_get(BUF_PACK, floats);
}

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* --- pre-packed B ------------------------------------------------------------- */

/* Column panels of width nr: panel s holds columns [s*nr, s*nr + nr) as k
 * rows of nr floats (B(p, s*nr + j) at data[s*k*nr + p*nr + j]), columns
 * past n zero.  Any depth range of a panel is itself a packed panel with
 * the same row stride, so the blocked path slices it for every kc. */
struct eng_sgemm_packed_b {
    const gemm_variant *v;
    size_t k, n;
    float *data;
};

enum { PACKED_HEADER_BYTES = 64 };
_Static_assert(sizeof(struct eng_sgemm_packed_b) <= PACKED_HEADER_BYTES, "packed-B header outgrew its slot");

size_t gemm_pack_b_bytes_variant(const gemm_variant *v, size_t k, size_t n)
{
    size_t cols = round_up(n, v->nr), floats, bytes;
    if (cols < n || st_mul_overflow(cols, k, &floats) || st_mul_overflow(floats, sizeof(float), &bytes) ||
        st_add_overflow(bytes, PACKED_HEADER_BYTES + 64, &bytes))
        return 0;
    return bytes;
}

/* Packs op(B)[p0 : p0 + kc, j0 : j0 + nc) into panels of nr columns,
 * panel s at dst + s * panel_stride with row stride nr, zero-padding the
 * columns past nc.  A stored B is read row by row, in address order: a
 * panel-by-panel walk would touch one or two cache lines per row, on a new
 * page each time, which defeats the hardware prefetchers. */
static void pack_b_block(const gemm_variant *v, size_t kc, size_t nc, const float *b, size_t ldb, bool trans_b,
                         size_t p0, size_t j0, float *dst, size_t panel_stride)
{
    const size_t nr = v->nr, full = nc / nr * nr;
    if (!trans_b) {
        for (size_t p = 0; p < kc; p++) {
            const float *src = b + (p0 + p) * ldb + j0;
            float *row = dst + p * nr;
            for (size_t j = 0; j < full; j += nr)
                memcpy(row + j / nr * panel_stride, src + j, nr * sizeof *src);
            if (full < nc) {
                float *tail = row + full / nr * panel_stride;
                memcpy(tail, src + full, (nc - full) * sizeof *src);
                memset(tail + (nc - full), 0, (nr - (nc - full)) * sizeof *tail);
            }
        }
        return;
    }
    /* B stored n x k: rows of the source become columns of a panel. */
    for (size_t j = 0; j < nc; j += nr, dst += panel_stride) {
        const size_t cols = min_size(nr, nc - j);
        const float *w = b + (j0 + j) * ldb + p0;
        if (v->pack_b_trans) {
            v->pack_b_trans(cols, kc, w, ldb, dst);
            continue;
        }
        for (size_t jj = 0; jj < cols; jj++)
            for (size_t p = 0; p < kc; p++)
                dst[p * nr + jj] = w[jj * ldb + p];
        for (size_t p = 0; p < kc; p++)
            for (size_t jj = cols; jj < nr; jj++)
                dst[p * nr + jj] = 0.0f;
    }
}

eng_sgemm_packed_b *gemm_pack_b_variant(const gemm_variant *v, size_t k, size_t n, const float *b, size_t ldb,
                                        bool trans_b, void *mem, size_t mem_bytes)
{
    size_t need = gemm_pack_b_bytes_variant(v, k, n);
    if (need == 0 || mem_bytes < need || !mem)
        return NULL;
    uintptr_t base = ((uintptr_t)mem + 63) & ~(uintptr_t)63;
    eng_sgemm_packed_b *pb = (eng_sgemm_packed_b *)base;
    pb->v = v;
    pb->k = k;
    pb->n = n;
    pb->data = (float *)(base + PACKED_HEADER_BYTES);
    pack_b_block(v, k, n, b, ldb, trans_b, 0, 0, pb->data, k * v->nr);
    return pb;
}

size_t eng_sgemm_pack_b_bytes(size_t k, size_t n)
{
    return gemm_pack_b_bytes_variant(gemm_variant_best(), k, n);
}

eng_sgemm_packed_b *eng_sgemm_pack_b(size_t k, size_t n, const float *b, size_t ldb, bool trans_b, void *mem,
                                     size_t mem_bytes)
{
    return gemm_pack_b_variant(gemm_variant_best(), k, n, b, ldb, trans_b, mem, mem_bytes);
}

size_t eng_sgemm_packed_b_k(const eng_sgemm_packed_b *b)
{
    return b->k;
}

size_t eng_sgemm_packed_b_n(const eng_sgemm_packed_b *b)
{
    return b->n;
}

/* --- the product ---------------------------------------------------------------- */

typedef enum { PATH_STREAM, PATH_DOT, PATH_AXPY, PATH_GEMV, PATH_BLOCKED } gemm_path;

typedef struct gemm_problem {
    const gemm_variant *v;
    gemm_path path;
    size_t m, n, k;
    float alpha, beta;
    const float *a;
    size_t lda;
    bool trans_a;
    const float *b;
    size_t ldb;
    bool trans_b;
    const eng_sgemm_packed_b *pb; /* NULL: b, ldb, trans_b */
    float *c;
    size_t ldc;
    bool is_a_packed; /* blocked path: pack A, or read it in place */
    /* The split over threads: a grid of tm x tn rectangles of C, cut at
     * multiples of mr rows and nr columns (dot: 8 columns). */
    size_t tm, tn;
} gemm_problem;

static gemm_tile_fn tile_for(const gemm_variant *v, bool is_a_rows, size_t rows, size_t cols)
{
    return v->tiles[is_a_rows][rows - 1][(cols + v->vec - 1) / v->vec - 1];
}

/* Slow but allocation-free: for when packing memory cannot be had. */
static void rect_ref(const gemm_problem *pr, size_t i0, size_t i1, size_t j0, size_t j1)
{
    const float *a = pr->a + (pr->trans_a ? i0 : i0 * pr->lda);
    if (pr->pb) {
        /* Column j is a k x 1 matrix with row stride nr inside its panel. */
        const eng_sgemm_packed_b *pb = pr->pb;
        size_t nr = pb->v->nr;
        for (size_t j = j0; j < j1; j++) {
            const float *col = pb->data + (j / nr) * pb->k * nr + j % nr;
            eng_sgemm_ref(i1 - i0, 1, pr->k, pr->alpha, a, pr->lda, pr->trans_a, col, nr, false, pr->beta,
                          pr->c + i0 * pr->ldc + j, pr->ldc);
        }
        return;
    }
    const float *b = pr->b + (pr->trans_b ? j0 * pr->ldb : j0);
    eng_sgemm_ref(i1 - i0, j1 - j0, pr->k, pr->alpha, a, pr->lda, pr->trans_a, b, pr->ldb, pr->trans_b, pr->beta,
                  pr->c + i0 * pr->ldc + j0, pr->ldc);
}

/* m <= mr: one tile of all rows per panel of nr columns, full depth. */
static void rect_stream(const gemm_problem *pr, size_t j0, size_t j1)
{
    const gemm_variant *v = pr->v;
    gemm_tile t = {
        .kc = pr->k,
        .a = pr->a,
        .a_rs = pr->trans_a ? 1 : pr->lda,
        .a_ps = pr->trans_a ? pr->lda : 1,
        .ldc = pr->ldc,
        .alpha = pr->alpha,
        .beta = pr->beta,
    };
    for (size_t j = j0; j < j1; j += v->nr) {
        t.nr = min_size(v->nr, j1 - j);
        if (pr->pb) {
            t.b = pr->pb->data + j * pr->k;
            t.b_ps = v->nr;
            t.is_b_padded = true;
        } else {
            t.b = pr->b + j;
            t.b_ps = pr->ldb;
        }
        t.c = pr->c + j;
        tile_for(v, !pr->trans_a, pr->m, t.nr)(&t);
    }
}

/* Packs rows [i0, i0 + mc) x depth [p0, p0 + kc) of op(A) into panels of mr
 * rows: panel r holds A(i0 + r*mr + i, p0 + p) at dst[r*kc*mr + p*mr + i]. */
static void pack_a_block(const gemm_variant *v, size_t mc, size_t kc, const float *a, size_t lda, bool trans_a,
                         size_t i0, size_t p0, float *dst)
{
    const size_t mr = v->mr;
    for (size_t r = 0; r < mc; r += mr, dst += kc * mr) {
        size_t rows = min_size(mr, mc - r);
        if (!trans_a && v->pack_a_rows) {
            v->pack_a_rows(rows, kc, a + (i0 + r) * lda + p0, lda, dst);
        } else if (trans_a) {
            const float *src = a + p0 * lda + i0 + r;
            for (size_t p = 0; p < kc; p++, src += lda)
                memcpy(dst + p * mr, src, rows * sizeof *dst);
        } else {
            const float *src = a + (i0 + r) * lda + p0;
            for (size_t i = 0; i < rows; i++, src += lda)
                for (size_t p = 0; p < kc; p++)
                    dst[p * mr + i] = src[p];
        }
    }
}

/* C with at most this many row panels reuses a packed B block only a few
 * times: the block is then kept small enough (SMALLM_KC x SMALLM_NC panels)
 * to stay in L2 between its packing and its use. */
enum { SMALLM_PANELS = 3, SMALLM_KC = 256, SMALLM_NC = 8 };

/* The GotoBLAS loop nest over C[i0:i1, j0:j1]; false when packing memory
 * is unavailable (nothing was written then).  Depth blocks are long (up to
 * 1024 on x86): every extra pass over C costs a load and a store of each
 * tile, which measured dearer than keeping B's panel in L1. */
static bool rect_blocked(const gemm_problem *pr, size_t i0, size_t i1, size_t j0, size_t j1)
{
    const gemm_variant *v = pr->v;
    const size_t mr = v->mr, nr = v->nr, k = pr->k;
    const bool is_few_rows = !pr->pb && i1 - i0 <= SMALLM_PANELS * mr;
    const size_t kc_cap = is_few_rows ? SMALLM_KC : v->kc;
    const size_t nc_cap = is_few_rows ? SMALLM_NC * nr : v->nc;
    /* Equal depth blocks: no thin last block. */
    const size_t k_blocks = (k + kc_cap - 1) / kc_cap;
    const size_t kc_max = (k + k_blocks - 1) / k_blocks;
    const size_t mc_max = min_size(v->mc, round_up(i1 - i0, mr));
    const size_t nc_max = min_size(nc_cap, round_up(j1 - j0, nr));
    const size_t a_floats = pr->is_a_packed ? round_up(mc_max * kc_max, 16) : 0;
    const size_t b_floats = pr->pb ? 0 : kc_max * nc_max;
    float *buf = NULL;
    if (a_floats + b_floats > 0) {
        buf = scratch_get(a_floats + b_floats);
        if (!buf)
            return false;
    }
    float *abuf = buf, *bbuf = buf + a_floats;

    gemm_tile t = { .ldc = pr->ldc, .alpha = pr->alpha };
    for (size_t jc = j0; jc < j1; jc += nc_max) {
        const size_t nc = min_size(nc_max, j1 - jc);
        for (size_t pc = 0; pc < k; pc += kc_max) {
            const size_t kc = min_size(kc_max, k - pc);
            const float *bpanels;
            size_t panel_stride;
            if (pr->pb) {
                bpanels = pr->pb->data + jc * k + pc * nr;
                panel_stride = k * nr;
            } else {
                pack_b_block(v, kc, nc, pr->b, pr->ldb, pr->trans_b, pc, jc, bbuf, kc * nr);
                bpanels = bbuf;
                panel_stride = kc * nr;
            }
            t.kc = kc;
            t.b_ps = nr;
            t.is_b_padded = true;
            t.beta = pc == 0 ? pr->beta : 1.0f;
            for (size_t ic = i0; ic < i1; ic += mc_max) {
                const size_t mc = min_size(mc_max, i1 - ic);
                if (pr->is_a_packed) {
                    pack_a_block(v, mc, kc, pr->a, pr->lda, pr->trans_a, ic, pc, abuf);
                    t.a_rs = 1;
                    t.a_ps = mr;
                } else {
                    t.a_rs = pr->trans_a ? 1 : pr->lda;
                    t.a_ps = pr->trans_a ? pr->lda : 1;
                }
                const bool is_a_rows = !pr->is_a_packed && !pr->trans_a;
                for (size_t jr = 0; jr < nc; jr += nr) {
                    t.nr = min_size(nr, nc - jr);
                    t.b = bpanels + (jr / nr) * panel_stride;
                    for (size_t ir = 0; ir < mc; ir += mr) {
                        const size_t rows = min_size(mr, mc - ir);
                        if (pr->is_a_packed)
                            t.a = abuf + ir * kc;
                        else if (pr->trans_a)
                            t.a = pr->a + pc * pr->lda + ic + ir;
                        else
                            t.a = pr->a + (ic + ir) * pr->lda + pc;
                        t.c = pr->c + (ic + ir) * pr->ldc + jc + jr;
                        tile_for(v, is_a_rows, rows, t.nr)(&t);
                    }
                }
            }
        }
    }
    return true;
}

/* Computes the rectangle C[i0:i1, j0:j1]. */
static void gemm_rect(const gemm_problem *pr, size_t i0, size_t i1, size_t j0, size_t j1)
{
    if (i0 >= i1 || j0 >= j1)
        return;
    switch (pr->path) {
    case PATH_STREAM:
        rect_stream(pr, j0, j1);
        return;
    case PATH_AXPY:
        for (size_t i = 0; i < pr->m; i += GEMM_AXPY_ROWS) {
            const float *a = pr->a + (pr->trans_a ? i : i * pr->lda);
            pr->v->axpy(min_size(GEMM_AXPY_ROWS, pr->m - i), j1 - j0, pr->k, pr->alpha, a, pr->trans_a ? 1 : pr->lda,
                        pr->trans_a ? pr->lda : 1, pr->b + j0, pr->ldb, pr->beta, pr->c + i * pr->ldc + j0, pr->ldc);
        }
        return;
    case PATH_GEMV:
        /* C^T = b^T A^T: the dot kernel with the roles of A and B swapped. */
        pr->v->dot(1, i1 - i0, pr->k, pr->alpha, pr->b, pr->k, pr->a + i0 * pr->lda, pr->lda, pr->beta, pr->c + i0,
                   1);
        return;
    case PATH_DOT:
        pr->v->dot(pr->m, j1 - j0, pr->k, pr->alpha, pr->a, pr->lda, pr->b + j0 * pr->ldb, pr->ldb, pr->beta,
                   pr->c + j0, pr->ldc);
        return;
    case PATH_BLOCKED:
        if (!rect_blocked(pr, i0, i1, j0, j1))
            rect_ref(pr, i0, i1, j0, j1);
        return;
    }
}

/* Cut points: [0, count) split into `parts` runs of whole units. */
static size_t split_at(size_t count, size_t unit, size_t parts, size_t index)
{
    size_t units = (count + unit - 1) / unit;
    size_t at = units * index / parts * unit;
    return at < count ? at : count;
}

static void gemm_task(void *ctx, int ith, int nth)
{
    const gemm_problem *pr = ctx;
    (void)nth;
    size_t ti = (size_t)ith / pr->tn, tj = (size_t)ith % pr->tn;
    size_t mu = pr->path == PATH_BLOCKED ? pr->v->mr : pr->path == PATH_GEMV ? 8 : pr->m;
    size_t nu = pr->path == PATH_DOT ? 8 : pr->path == PATH_AXPY ? 16 : pr->v->nr;
    gemm_rect(pr, split_at(pr->m, mu, pr->tm, ti), split_at(pr->m, mu, pr->tm, ti + 1),
              split_at(pr->n, nu, pr->tn, tj), split_at(pr->n, nu, pr->tn, tj + 1));
}

/* Below this many multiply-adds (about 40 us on one AVX-512 core) a
 * product runs on the calling thread: waking a worker costs several
 * microseconds on an idle machine and far more on a busy one. */
enum { GEMM_MIN_PARALLEL_MACS = 1 << 22 };

/* Chooses the thread grid: rows x columns of C rectangles, one per thread,
 * minimising each thread's compute plus the traffic it repeats (a thread
 * packs or reads the A rows and B columns of its rectangle). */
static void choose_split(gemm_problem *pr, st_pool *pool)
{
    pr->tm = pr->tn = 1;
    size_t threads = (size_t)st_pool_size(pool), mn, macs;
    if (threads <= 1)
        return;
    if (!st_mul_overflow(pr->m, pr->n, &mn) && !st_mul_overflow(mn, pr->k, &macs) && macs < GEMM_MIN_PARALLEL_MACS)
        return;
    size_t mu = pr->v->mr, nu = pr->v->nr;
    if (pr->path == PATH_GEMV) {
        pr->tm = min_size(threads, (pr->m + 7) / 8);
        return;
    }
    if (pr->path != PATH_BLOCKED) {
        /* All rows in every rectangle: split columns only. */
        nu = pr->path == PATH_DOT ? 8 : pr->path == PATH_AXPY ? 16 : nu;
        size_t units = (pr->n + nu - 1) / nu;
        pr->tn = min_size(threads, units);
        return;
    }
    size_t m_units = (pr->m + mu - 1) / mu, n_units = (pr->n + nu - 1) / nu;
    double best = 0.0;
    for (size_t tm = 1; tm <= threads; tm++) {
        if (threads % tm != 0)
            continue;
        size_t tn = threads / tm;
        if (tm > m_units || tn > n_units)
            continue;
        double rows = (double)((m_units + tm - 1) / tm * mu), cols = (double)((n_units + tn - 1) / tn * nu);
        /* Per unit of depth: a multiply-add lane costs ~1/32 cycle, and
         * every float of A and B the thread brings in (packing it, or
         * reading it in place from memory) ~1 cycle. */
        double cost = rows * cols / 32.0 + cols + rows;
        if (best == 0.0 || cost < best) {
            best = cost;
            pr->tm = tm;
            pr->tn = tn;
        }
    }
}

/* C = beta * C, for alpha == 0 or k == 0. */
static void scale_c(size_t m, size_t n, float beta, float *c, size_t ldc)
{
    if (beta == 1.0f)
        return;
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, n * sizeof *ci);
        else
            for (size_t j = 0; j < n; j++)
                ci[j] *= beta;
    }
}

/* The dot kernel reads its left operand as contiguous rows: a transposed
 * operand (k x m, row stride ld) is copied into the caller's scratch first
 * (m is small).  NULL: no memory. */
static const float *contiguous_rows(size_t m, size_t k, const float *x, size_t ld)
{
    float *rows = scratch_get(m * k);
    if (!rows)
        return NULL;
    for (size_t p = 0; p < k; p++)
        for (size_t i = 0; i < m; i++)
            rows[i * k + p] = x[p * ld + i];
    return rows;
}

static void gemm_run(gemm_problem *pr, st_pool *pool)
{
    const gemm_variant *v = pr->v;
    if (pr->m == 0 || pr->n == 0)
        return;
    if (pr->k == 0 || pr->alpha == 0.0f) {
        scale_c(pr->m, pr->n, pr->beta, pr->c, pr->ldc);
        return;
    }
    /* axpy's C loads and stores pay off from a few vectors per row on. */
    if (pr->m <= v->axpy_max_m && pr->n >= 4 * v->vec && !pr->pb && !pr->trans_b && v->axpy) {
        pr->path = PATH_AXPY;
    } else if (pr->m <= v->mr && (pr->pb || !pr->trans_b)) {
        pr->path = PATH_STREAM;
    } else if (pr->m <= v->dot_max_m && !pr->pb && pr->trans_b && v->dot) {
        pr->path = PATH_DOT;
        if (pr->trans_a) {
            const float *rows = contiguous_rows(pr->m, pr->k, pr->a, pr->lda);
            if (rows) {
                pr->a = rows;
                pr->lda = pr->k;
                pr->trans_a = false;
            } else {
                pr->path = PATH_BLOCKED;
            }
        }
    } else if (pr->n == 1 && pr->ldc == 1 && !pr->trans_a && v->dot) {
        /* Matrix times vector: a one-column C is a row of C^T = b^T A^T, dot
         * products along A's rows that read A once, where register tiles
         * would use one lane in a vector.  The column must be contiguous;
         * in a packed operand it has a stride of nr. */
        pr->path = PATH_GEMV;
        if (pr->pb || (!pr->trans_b && pr->ldb != 1)) {
            const float *col = pr->pb ? contiguous_rows(1, pr->k, pr->pb->data, v->nr)
                                      : contiguous_rows(1, pr->k, pr->b, pr->ldb);
            if (col) {
                pr->b = col;
                pr->pb = NULL;
            } else {
                pr->path = PATH_BLOCKED;
            }
        }
    } else {
        pr->path = PATH_BLOCKED;
    }
    /* Packing A pays when each packed panel meets many B panels; for a
     * narrow C the tiles read A where it lies. */
    pr->is_a_packed = pr->n > 4 * v->nr;
    choose_split(pr, pool);
    if (pr->tm * pr->tn <= 1)
        gemm_rect(pr, 0, pr->m, 0, pr->n);
    else
        st_pool_run(pool, gemm_task, pr, (int)(pr->tm * pr->tn));
}

void gemm_sgemm_variant(const gemm_variant *v, size_t m, size_t n, size_t k, float alpha, const float *a,
                        size_t lda, bool trans_a, const float *b, size_t ldb, bool trans_b, float beta,
                        float *c, size_t ldc, st_pool *pool)
{
    gemm_problem pr = {
        .v = v, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta,
        .a = a, .lda = lda, .trans_a = trans_a,
        .b = b, .ldb = ldb, .trans_b = trans_b,
        .c = c, .ldc = ldc,
    };
    gemm_run(&pr, pool);
}

void eng_sgemm(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, bool trans_a,
               const float *b, size_t ldb, bool trans_b, float beta, float *c, size_t ldc, st_pool *pool)
{
    gemm_sgemm_variant(gemm_variant_best(), m, n, k, alpha, a, lda, trans_a, b, ldb, trans_b, beta, c, ldc,
                       pool);
}

/* --- B at any address ---------------------------------------------------------
 * A weight left where it lies in a mapped model file may sit at any byte
 * offset, so it is never read as floats in place: blocks of it are copied
 * (memcpy) into an aligned per-thread buffer and multiplied from there.
 * The copy lands in L2 from the same single pass over B that packing
 * would make, so large weights cost little more than pre-packed ones. */

/* About 1 MiB of B per block: a core's L2. */
enum { BOUNCE_TARGET_FLOATS = 1 << 18, BOUNCE_MIN_ROWS = 32 };

void gemm_sgemm_unaligned_b_variant(const gemm_variant *v, size_t m, size_t n, size_t k, float alpha,
                                    const float *a, size_t lda, bool trans_a, const void *b, size_t ldb,
                                    bool trans_b, float beta, float *c, size_t ldc, st_pool *pool)
{
    if (m == 0 || n == 0 || k == 0 || alpha == 0.0f) {
        gemm_sgemm_variant(v, m, n, k, alpha, a, lda, trans_a, NULL, ldb, trans_b, beta, c, ldc, pool);
        return;
    }
    const unsigned char *bytes = b;
    if (trans_b && !trans_a && v->dot && v->is_dot_any_address && m <= v->dot_max_m) {
        /* Batch 1: the dot path streams W once, through unaligned vector
         * loads only, so it reads W where it lies (about a quarter faster than
         * through the buffer). */
        gemm_sgemm_variant(v, m, n, k, alpha, a, lda, trans_a, (const float *)b, ldb, trans_b, beta, c, ldc, pool);
        return;
    }
    /* A block is `rows` stored rows of B, each `len` floats: columns of C
     * when B is stored n x k, depth when it is stored k x n. */
    const size_t len = trans_b ? k : n, total = trans_b ? n : k;
    size_t rows = BOUNCE_TARGET_FLOATS / len;
    rows = rows < BOUNCE_MIN_ROWS ? BOUNCE_MIN_ROWS : rows / BOUNCE_MIN_ROWS * BOUNCE_MIN_ROWS;
    rows = min_size(rows, total);
    size_t floats;
    float *buf = st_mul_overflow(rows, len, &floats) ? NULL : thread_buf_get(BUF_BOUNCE, floats);
    for (size_t r0 = 0; r0 < total; r0 += rows) {
        const size_t nr = min_size(rows, total - r0);
        if (!buf) {
            /* No memory: one stored row at a time through a stack buffer
             * is slow but still right. */
            float row[256];
            for (size_t r = r0; r < r0 + nr; r++)
                for (size_t p0 = 0; p0 < len; p0 += 256) {
                    size_t cnt = min_size(256, len - p0);
                    memcpy(row, bytes + (r * ldb + p0) * sizeof(float), cnt * sizeof(float));
                    if (trans_b)
                        gemm_sgemm_variant(v, m, 1, cnt, alpha, trans_a ? a + p0 * lda : a + p0, lda, trans_a, row,
                                           1, false, p0 ? 1.0f : beta, c + r, ldc, pool);
                    else
                        gemm_sgemm_variant(v, m, cnt, 1, alpha, trans_a ? a + r * lda : a + r, lda, trans_a, row,
                                           cnt, false, r ? 1.0f : beta, c + p0, ldc, pool);
                }
            continue;
        }
        for (size_t r = 0; r < nr; r++)
            memcpy(buf + r * len, bytes + ((r0 + r) * ldb) * sizeof(float), len * sizeof(float));
        if (trans_b)
            gemm_sgemm_variant(v, m, nr, k, alpha, a, lda, trans_a, buf, len, true, beta, c + r0, ldc, pool);
        else
            gemm_sgemm_variant(v, m, n, nr, alpha, trans_a ? a + r0 * lda : a + r0, lda, trans_a, buf, len, false,
                               r0 ? 1.0f : beta, c, ldc, pool);
    }
}

void eng_sgemm_unaligned_b(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, bool trans_a,
                           const void *b, size_t ldb, bool trans_b, float beta, float *c, size_t ldc, st_pool *pool)
{
    gemm_sgemm_unaligned_b_variant(gemm_variant_best(), m, n, k, alpha, a, lda, trans_a, b, ldb, trans_b, beta, c,
                                   ldc, pool);
}

void eng_sgemm_packed(size_t m, float alpha, const float *a, size_t lda, bool trans_a, const eng_sgemm_packed_b *b,
                      float beta, float *c, size_t ldc, st_pool *pool)
{
    gemm_problem pr = {
        .v = b->v, .m = m, .n = b->n, .k = b->k, .alpha = alpha, .beta = beta,
        .a = a, .lda = lda, .trans_a = trans_a,
        .pb = b,
        .c = c, .ldc = ldc,
    };
    gemm_run(&pr, pool);
}
