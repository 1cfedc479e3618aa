/* conv_int.h - internals shared by the convolution and pooling operators
 * (conv.c, conv_pool.c, conv_kern.c) and their unit test.  Geometry is
 * normalised to three spatial dims (depth, height, width): 1-D and 2-D
 * problems get leading dims of size 1, so every loop is written once. */
#ifndef ST_ENGINE_CONV_INT_H
#define ST_ENGINE_CONV_INT_H

#include "engine/ops/ops.h"

/* Spatial dims handled natively (Conv1d/2d/3d and the pools). */
#define CONV_SP 3
/* Attribute lists may name up to this many spatial dims (rank 8 - N, C). */
#define CONV_MAX_ATTR_SP (ENG_MAX_RANK - 2)

typedef enum { CONV_PAD_NOTSET, CONV_PAD_SAME_UPPER, CONV_PAD_SAME_LOWER, CONV_PAD_VALID } conv_auto_pad;

/* Work fused into a convolution's output write, applied to each tile
 * while it is in cache: y = act(conv + bias + sum). */
typedef enum {
    CONV_ACT_NONE,
    CONV_ACT_RELU,
    CONV_ACT_LEAKY_RELU,   /* alpha */
    CONV_ACT_SIGMOID,
    CONV_ACT_TANH,
    CONV_ACT_CLIP,         /* min alpha, max beta */
    CONV_ACT_HARD_SIGMOID, /* max(0, min(1, alpha x + beta)) */
} conv_act_kind;

typedef struct conv_act {
    conv_act_kind kind;
    float alpha, beta;
    const float *sum;      /* a tensor of Y's shape added before the
                              activation (FusedConv's Z), or NULL */
} conv_act;

/* Attributes of Conv, ConvTranspose and the pools, parsed and range
 * checked once at load (conv_attrs_parse).  n_* is 0 when absent. */
typedef struct conv_attrs {
    conv_auto_pad auto_pad;
    int64_t group;
    size_t n_kernel, n_strides, n_dilations, n_pads, n_out_pad, n_out_shape;
    int64_t kernel[CONV_MAX_ATTR_SP];
    int64_t strides[CONV_MAX_ATTR_SP];
    int64_t dilations[CONV_MAX_ATTR_SP];
    int64_t pads[2 * CONV_MAX_ATTR_SP];
    int64_t out_pad[CONV_MAX_ATTR_SP];      /* ConvTranspose output_padding */
    int64_t out_shape[ENG_MAX_RANK];        /* ConvTranspose output_shape */
    bool ceil_mode;                         /* pools */
    bool count_include_pad;                 /* AveragePool */
    bool col_major_indices;                 /* MaxPool storage_order = 1 */
    float p;                                /* LpPool */
    /* RoiAlign (output_height/width) and MaxRoiPool (pooled_shape). */
    int64_t roi_out_h, roi_out_w, sampling_ratio;
    float spatial_scale;
    bool roi_max;                           /* RoiAlign mode "max" */
    bool roi_half_pixel;                    /* coordinate_transformation_mode */
    /* FusedConv (com.microsoft): activation and activation_params. */
    conv_act_kind act;
    float act_alpha, act_beta;
    /* Conv / FusedConv with a constant float32 W: W packed at load for the
     * direct path (eng_sconv_pack), valid while W's data is w_packed_of. */
    const float *w_packed;
    const void *w_packed_of;
    /* The same W transformed for the Winograd path (eng_wino_pack) when
     * the kernel is 3x3 with unit strides and dilations, one group. */
    const float *w_wino;
} conv_attrs;

/* One convolution or pooling problem.  Spatial arrays are indexed
 * [0] depth, [1] height, [2] width; the first 3 - nsp are unit dims.
 * All values are bounded by conv_geom_* (dims and attributes < 2^31,
 * every product used for indexing fits in size_t). */
typedef struct conv_geom {
    int nsp;                    /* spatial dims of the tensors: 1..3 */
    int64_t batch, c_in, c_out, group;
    int64_t in[CONV_SP], out[CONV_SP], kernel[CONV_SP];
    int64_t stride[CONV_SP], dilation[CONV_SP];
    int64_t pad_begin[CONV_SP], pad_end[CONV_SP];
} conv_geom;

/* Reads and range-checks the attributes of node `n` (load time). */
st_status conv_attrs_parse(const eng_node *n, conv_attrs *a, st_error *err);
/* The check of every op of the family: conv_attrs_parse into node->state. */
st_status conv_attrs_check(eng_node *n, st_arena *arena, st_error *err);

/* Geometry of Conv / ConvInteger: X [N, C, in...], W [M, C/group, k...].
 * Messages in err say what was wrong (without the node's name). */
st_status conv_geom_conv(conv_geom *g, const conv_attrs *a, const int64_t *x_shape, uint32_t x_rank,
                         const int64_t *w_shape, uint32_t w_rank, st_error *err);

/* Geometry of a pool over X [N, C, in...] with the attributes' kernel
 * (c_in == c_out == C, group == C). */
st_status conv_geom_pool(conv_geom *g, const conv_attrs *a, const int64_t *x_shape, uint32_t x_rank,
                         st_error *err);

static inline size_t conv_in_plane(const conv_geom *g)
{
    return (size_t)(g->in[0] * g->in[1] * g->in[2]);
}
static inline size_t conv_out_plane(const conv_geom *g)
{
    return (size_t)(g->out[0] * g->out[1] * g->out[2]);
}
static inline size_t conv_kernel_size(const conv_geom *g)
{
    return (size_t)(g->kernel[0] * g->kernel[1] * g->kernel[2]);
}

/* --- float32 convolution (conv.c) --------------------------------------- */

typedef enum {
    CONV_PATH_AUTO,       /* the fastest path that applies */
    CONV_PATH_IM2COL,     /* column buffer per tile + eng_sgemm (any shape) */
    CONV_PATH_POINTWISE,  /* 1x1, stride 1, no pads: eng_sgemm on X itself */
    CONV_PATH_DEPTHWISE,  /* C/group == 1, up to 2-D: direct SIMD kernel */
    CONV_PATH_DIRECT,     /* stride 1, up to 2-D: eng_sconv tiles on the
                             (zero-padded) input planes, no im2col */
} conv_path;

/* Whether `path` can compute g (AUTO and IM2COL always can). */
bool conv_path_applies(const conv_geom *g, conv_path path);

/* Y = act(conv(X, W) + bias + act->sum) in float32 along `path` (which
 * must apply).  bias and act may be NULL.  Temporaries come from
 * `scratch`; `pool` may be NULL.  ST_ENOMEM when scratch runs out. */
st_status conv_f32(const conv_geom *g, conv_path path, const float *x, const float *w, const float *bias,
                   const conv_act *act, float *y, st_arena *scratch, st_pool *pool);
/* conv_f32 with W also given as eng_sconv_pack made it (NULL: packed per
 * call when the direct path needs it). */
st_status conv_f32_packed(const conv_geom *g, conv_path path, const float *x, const float *w,
                          const float *w_packed, const float *bias, const conv_act *act, float *y,
                          st_arena *scratch, st_pool *pool);

/* --- SIMD kernels (conv_kern.c) ------------------------------------------ */

/* A depthwise plane problem (2-D; 1-D has height 1) and the layout of
 * its padded source: `rows` rows of row_len floats, each row the padded
 * input columns split into sw phases of phase_w floats (padded column c
 * at (c % sw) * phase_w + c / sw), so that the taps of consecutive
 * outputs are consecutive floats.  Padded means shifted by the leading
 * pads and zero outside the input. */
typedef struct conv_dw_shape {
    size_t kh, kw, sh, sw, dh, dw;  /* kernel, strides, dilations */
    size_t oh, ow, ih, iw;          /* output and input plane sizes */
    size_t pad_top, pad_left;
    size_t rows, row_len, phase_w;  /* padded source layout */
} conv_dw_shape;

/* Floats the padded source needs after its last row (vector loads run
 * past the row end into them). */
#define CONV_DW_SLACK 32
/* Kernels with more taps take the scalar path. */
#define CONV_DW_MAX_TAPS 64

/* The depthwise shape of g (which conv_path_applies to DEPTHWISE). */
void conv_dw_shape_init(conv_dw_shape *s, const conv_geom *g);
/* Writes the padded, phase-split copy of one input plane into buf, which
 * holds rows * row_len + CONV_DW_SLACK floats. */
void conv_dw_pad(const conv_dw_shape *s, const float *plane, float *buf);
/* One output plane: dst[y][x] = bias + sum_ij w[i][j] * padded[y*sh +
 * i*dh][x*sw + j*dw], reading the copy conv_dw_pad made. */
void conv_dw_plane_f32(const conv_dw_shape *s, const float *src, const float *w, float bias, float *dst);
/* Whether conv_dw_raw_f32 computes s: 3x3, strides and dilations 1, pads
 * before of at most 1, and AVX-512. */
bool conv_dw_raw_applies(const conv_dw_shape *s);
/* conv_dw_plane_f32 reading the input plane itself (ih x iw), no padded
 * copy: the same outputs, for shapes conv_dw_raw_applies to. */
void conv_dw_raw_f32(const conv_dw_shape *s, const float *plane, const float *w, float bias, float *dst);
/* The scalar version conv_dw_plane_f32 falls back to (same contract). */
void conv_dw_plane_f32_ref(const conv_dw_shape *s, const float *src, const float *w, float bias, float *dst);

/* One input row padded and split into sw phases of phase_w floats
 * (padded column c at (c % sw) * phase_w + c / sw), `fill` outside the
 * input: the row layout of conv_dw_pad, also used by the pools. */
void conv_pad_row_f32(const float *in, size_t iw, size_t pad_left, size_t sw, size_t phase_w, float fill,
                      float *dst);
/* dst[i] = src[i * stride] for i < n (reads src[(n - 1) * stride] last). */
void conv_copy_strided_f32(float *dst, const float *src, size_t n, size_t stride);
/* acc[i] = src[i] > acc[i] ? src[i] : acc[i] (NaN in src skipped). */
void conv_vmax_f32(float *acc, const float *src, size_t n);
/* acc[i] += src[i]. */
void conv_vadd_f32(float *acc, const float *src, size_t n);

/* One plane of a 2x2, stride-2, unpadded max (or average) pool: y is
 * oh x ow with 2 oh <= input rows and 2 ow <= iw (the input row length).
 * Max skips NaN like the other paths (v > m). */
void conv_pool2x2_f32(const float *x, size_t iw, float *y, size_t oh, size_t ow, bool is_max);

/* Row r of the rows x n block at y (row stride ld) set to values[r] (0
 * when values is NULL) plus, when add is not NULL, the same block of add:
 * the bias (and FusedConv's Z) written before a GEMM accumulates onto it. */
void conv_fill_rows_f32(float *y, size_t rows, size_t ld, size_t n, const float *values, const float *add);
/* Applies act->kind (not act->sum) in place to the rows x n block at y. */
void conv_act_rows_f32(float *y, size_t rows, size_t ld, size_t n, const conv_act *act);

/* --- pooling operators (conv_pool.c) ------------------------------------- */

st_status conv_maxpool_infer(eng_kctx *k);
st_status conv_maxpool_run(eng_kctx *k);
st_status conv_avgpool_infer(eng_kctx *k);
st_status conv_avgpool_run(eng_kctx *k);
st_status conv_lppool_infer(eng_kctx *k);
st_status conv_lppool_run(eng_kctx *k);
st_status conv_global_infer(eng_kctx *k);
st_status conv_global_avg_run(eng_kctx *k);
st_status conv_global_max_run(eng_kctx *k);
st_status conv_global_lp_run(eng_kctx *k);
st_status conv_maxunpool_infer(eng_kctx *k);
st_status conv_maxunpool_run(eng_kctx *k);
st_status conv_roialign_infer(eng_kctx *k);
st_status conv_roialign_run(eng_kctx *k);
st_status conv_maxroipool_infer(eng_kctx *k);
st_status conv_maxroipool_run(eng_kctx *k);

/* Runs `run` with float16 inputs and outputs widened to float32 in scratch
 * (other types pass through), then narrows the outputs back. */
st_status conv_run_via_f32(eng_kctx *k, st_status (*run)(eng_kctx *));

#endif
