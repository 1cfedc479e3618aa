/* kernels.h - compute kernels used by the operators.  Each has a scalar
 * reference (`*_ref`) and, where it pays, AVX2 / AVX-512 variants chosen
 * once at start-up from st_cpu_features(); tests compare them. */
#ifndef ST_ENGINE_KERNELS_H
#define ST_ENGINE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"

/* C = alpha * op(A) * op(B) + beta * C, row-major.  op(A) is m x k, op(B)
 * is k x n.  lda/ldb/ldc are row strides in elements of the stored
 * matrices (A is stored m x k, or k x m when trans_a; B k x n, or n x k
 * when trans_b); C must not overlap them.  beta 0 ignores C's contents
 * (may be uninitialised, even NaN); alpha 0 or k 0 read neither A nor B.  `pool` may be NULL (one
 * thread); with a pool, big products are split over its threads.  The
 * kernel (AVX-512, AVX2+FMA or portable C) is chosen once from
 * st_cpu_features().  After the first calls on a thread it allocates
 * nothing: the packing buffer is cached per thread (up to about 4.5 MiB,
 * freed at thread exit); if it cannot be allocated the product is still
 * computed, slowly. */
void eng_sgemm(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, bool trans_a,
               const float *b, size_t ldb, bool trans_b, float beta, float *c, size_t ldc, st_pool *pool);
/* The scalar reference of eng_sgemm (same contract, single thread). */
void eng_sgemm_ref(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, bool trans_a,
                   const float *b, size_t ldb, bool trans_b, float beta, float *c, size_t ldc);

/* eng_sgemm with B at any byte address (ldb still counts floats): a
 * weight read in place from a mapped model file, where protobuf put it.  B
 * is only ever copied with memcpy, a block of about 1 MiB at a time, into
 * an aligned per-thread buffer (kept, like the packing buffer) and
 * multiplied from there.  Without that memory it still computes, slowly.
 * Summation order over k may differ from eng_sgemm (B stored k x n is
 * taken in depth blocks). */
void eng_sgemm_unaligned_b(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, bool trans_a,
                           const void *b, size_t ldb, bool trans_b, float beta, float *c, size_t ldc, st_pool *pool);

/* A B operand packed once for many products, e.g. a model's constant
 * weights, in the layout the micro-kernels stream (column panels as wide
 * as the register tile, zero-padded).  Packing at load time saves the
 * per-call packing of B, and makes the batch-1 case (m = 1) read B
 * contiguously whatever its transposition.  The handle lives inside memory
 * the caller owns (typically the model's arena), is read-only once packed,
 * and may be used by any number of threads at once.  Its layout belongs to
 * this process's CPU choice: do not store it.
 *
 *     size_t bytes = eng_sgemm_pack_b_bytes(k, n);            // 0: too big
 *     void *mem = st_arena_alloc(model_arena, bytes, 64);
 *     eng_sgemm_packed_b *w = eng_sgemm_pack_b(k, n, b, ldb, trans_b, mem, bytes);
 *     ...
 *     eng_sgemm_packed(m, 1.0f, x, k, false, w, 0.0f, y, n, pool);  // y = x op(B)
 */
typedef struct eng_sgemm_packed_b eng_sgemm_packed_b;

/* Bytes eng_sgemm_pack_b needs for a k x n op(B), any alignment of the
 * memory included; 0 when the size does not fit in size_t. */
size_t eng_sgemm_pack_b_bytes(size_t k, size_t n);
/* Packs op(B) (k x n; B stored k x n, or n x k when trans_b, row stride
 * ldb) into `mem` and returns the handle, which points into `mem`; B is not
 * referenced afterwards.  NULL when mem_bytes < eng_sgemm_pack_b_bytes(k, n)
 * or that is 0.  k or n may be 0. */
eng_sgemm_packed_b *eng_sgemm_pack_b(size_t k, size_t n, const float *b, size_t ldb, bool trans_b, void *mem,
                                     size_t mem_bytes);
/* The k and n a packed operand was made with. */
size_t eng_sgemm_packed_b_k(const eng_sgemm_packed_b *b);
size_t eng_sgemm_packed_b_n(const eng_sgemm_packed_b *b);
/* eng_sgemm with op(B) from eng_sgemm_pack_b: C (m x n, ldc) = alpha *
 * op(A) * op(B) + beta * C, where k and n are those of `b`.  Same contract
 * as eng_sgemm otherwise. */
void eng_sgemm_packed(size_t m, float alpha, const float *a, size_t lda, bool trans_a, const eng_sgemm_packed_b *b,
                      float beta, float *c, size_t ldc, st_pool *pool);

/* --- direct convolution tile (sconv.c) --------------------------------------
 * A stride-1 convolution seen on "flat" input planes: with the input
 * zero-padded to rows of Wp floats, output (oh, ow) sits at flat position
 * p = oh * Wp + ow and tap (i, j) reads plane[p + i * dh * Wp + j * dw], so a
 * run of consecutive positions reads consecutive floats for every tap (the
 * positions with ow >= OW in between are computed and thrown away).  One
 * call computes `rows` output channels over the np consecutive positions
 * p = p0 + j:
 *     out(m, p) = relu?(bias[m] + sum_{c, k} W(m, c, k) x[c * x_cs + taps[k] + p])
 * reading x only at those indices, and stores each position that is an
 * output (p % wp < ow) at y[m * ldy + p - (p / wp) * (wp - ow)]: the
 * compact NCHW plane.  W comes from eng_sconv_pack (blocks of
 * ENG_SCONV_MR outputs, each held in registers for the whole depth). */
enum { ENG_SCONV_MR = 8 };

typedef struct eng_sconv_tile {
    const float *x;       /* channel 0, flat position 0 */
    size_t x_cs;          /* floats from one input channel to the next */
    size_t c_in;
    const size_t *taps;   /* n_taps offsets from a position to its taps */
    size_t n_taps;
    const float *w;       /* packed: one group's ceil(rows / MR) blocks */
    const float *bias;    /* rows floats, or NULL for 0 */
    float *y;             /* output plane of channel 0 */
    size_t ldy, rows;     /* plane stride; output channels */
    size_t p0, np;        /* positions; np <= eng_sconv_max_np() */
    size_t wp, ow;        /* flat row length, outputs per row (<= wp) */
    /* Masked taps (NULL: none): tap k reads, and adds, only for positions
     * whose column p % wp plus col_shift[k % n_cols] stays in [0, wp); the
     * others add 0.  This lets "same"-width convs (ow == wp) run on planes
     * padded with zero rows only, with no thrown-away columns. */
    const ptrdiff_t *col_shift;
    size_t n_cols;        /* <= ENG_SCONV_MAX_COLS */
    bool relu;
} eng_sconv_tile;

enum { ENG_SCONV_MAX_COLS = 16 };

/* The most positions one call of eng_sconv_tile_run takes: three vectors
 * (48 AVX-512 and portable, 24 AVX2). */
size_t eng_sconv_max_np(void);
/* The tile for this CPU (AVX-512, AVX2+FMA or portable C). */
void eng_sconv_tile_run(const eng_sconv_tile *t);
/* The scalar reference (np <= 64). */
void eng_sconv_tile_ref(const eng_sconv_tile *t);
/* Floats eng_sconv_pack writes for weights [c_out, k_per_out] in `group`
 * groups (c_out divisible by group); 0 on overflow. */
size_t eng_sconv_pack_floats(size_t c_out, size_t group, size_t k_per_out);
/* Reorders W [c_out, k_per_out] (k = input channel x taps of one output)
 * into per group, per block of ENG_SCONV_MR outputs, k-major groups of
 * ENG_SCONV_MR floats, zero for the outputs past a group's last. */
void eng_sconv_pack(const float *w, size_t c_out, size_t group, size_t k_per_out, float *dst);

/* --- Winograd F(2x2, 3x3) convolution (wino.c) -------------------------------
 * One image of a 3x3, stride-1, dilation-1, single-group convolution with
 * pads of at most 1 before each axis: y (c_out planes oh x ow) =
 * relu?(bias + conv(x, W)).  Outputs must only read rows and columns
 * below h + 1 and w + 1 (any end pads are 0 or 1).  W is transformed and
 * packed once (eng_wino_pack); the run needs eng_wino_scratch_floats
 * floats of 64-byte-aligned scratch and allocates nothing. */
typedef struct eng_wino_conv {
    const float *x;          /* c_in planes of h x w */
    size_t c_in, h, w;
    size_t pad_top, pad_left;/* 0 or 1 */
    size_t oh, ow;           /* >= 1 */
    size_t c_out;
    const float *u;          /* eng_wino_pack's output */
    const float *bias;       /* c_out floats, or NULL */
    bool relu;
    float *y;
    float *scratch;
} eng_wino_conv;

/* Floats of scratch for one image; 0 on overflow. */
size_t eng_wino_scratch_floats(size_t c_in, size_t c_out, size_t oh, size_t ow);
/* Floats eng_wino_pack writes; 0 on overflow. */
size_t eng_wino_pack_floats(size_t c_out, size_t c_in);
/* U = G g G^T of every (output, input) pair of W [c_out, c_in, 3, 3],
 * packed per transform position for the eng_sconv tile.  tmp: c_out x
 * c_in floats of working memory. */
void eng_wino_pack(const float *w, size_t c_out, size_t c_in, float *dst, float *tmp);
/* Whether eng_wino_run has SIMD transforms here (AVX-512); without them
 * the direct convolution is faster. */
bool eng_wino_is_fast(void);
/* The convolution, with the transforms for this CPU. */
void eng_wino_run(const eng_wino_conv *p);
/* The scalar reference (same scratch). */
void eng_wino_run_ref(const eng_wino_conv *p);

#endif
