/* tensor_int.h - internals shared by the tensor-family operator files
 * (tensor.c and tensor_*.c): the kernels the family table in tensor.c
 * points at, and the data-movement helpers they all use. */
#ifndef ST_ENGINE_OPS_TENSOR_INT_H
#define ST_ENGINE_OPS_TENSOR_INT_H

#include "engine/ops/ops.h"

/* Bytes per element (st_str for strings). */
size_t tensor_esize(st_dtype t);

/* Reads a 1-D (or scalar) int32/int64 tensor into out[0..cap).  `what`
 * names the input in errors. */
st_status tensor_read_ints(const eng_kctx *k, const eng_tensor *t, const char *what, int64_t *out, size_t cap,
                           size_t *n);
/* Reads a single-element int32/int64 tensor. */
st_status tensor_read_scalar_int(const eng_kctx *k, const eng_tensor *t, const char *what, int64_t *out);

/* Copies a strided view into dense C-order memory: destination element
 * (i0, ..., i{n-1}) with i_d < dims[d] comes from src + sum(i_d * stride[d])
 * elements of es bytes.  Strides may be 0 (broadcast) or negative.  Runs of
 * contiguous elements become one memcpy.  n <= 2 * ENG_MAX_RANK. */
void tensor_copy_strided(void *dst, const void *src, size_t es, const int64_t *dims, const int64_t *stride, int n);

/* Writes `count` copies of the es-byte element at `value` to dst. */
void tensor_fill(void *dst, const void *value, size_t es, size_t count);

/* C-order element strides of a shape. */
void tensor_strides(const int64_t *shape, uint32_t rank, int64_t *stride);

/* tensor_slice.c */
st_status tensor_slice_infer(eng_kctx *k);
st_status tensor_slice_run(eng_kctx *k);
st_status tensor_split_infer(eng_kctx *k);
st_status tensor_split_run(eng_kctx *k);
st_status tensor_pad_infer(eng_kctx *k);
st_status tensor_pad_run(eng_kctx *k);
st_status tensor_compress_infer(eng_kctx *k);
st_status tensor_compress_run(eng_kctx *k);
st_status tensor_revseq_infer(eng_kctx *k);
st_status tensor_revseq_run(eng_kctx *k);
st_status tensor_tile_infer(eng_kctx *k);
st_status tensor_tile_run(eng_kctx *k);
st_status tensor_expand_infer(eng_kctx *k);
st_status tensor_expand_run(eng_kctx *k);

/* tensor_gather.c */
st_status tensor_gather_infer(eng_kctx *k);
st_status tensor_gather_run(eng_kctx *k);
st_status tensor_gather_elements_infer(eng_kctx *k);
st_status tensor_gather_elements_run(eng_kctx *k);
st_status tensor_gather_nd_infer(eng_kctx *k);
st_status tensor_gather_nd_run(eng_kctx *k);
st_status tensor_scatter_nd_infer(eng_kctx *k);
st_status tensor_scatter_nd_run(eng_kctx *k);
st_status tensor_scatter_elements_infer(eng_kctx *k);
st_status tensor_scatter_elements_run(eng_kctx *k);
st_status tensor_scatter_check(eng_node *n, st_arena *arena, st_error *err);

/* tensor_sort.c */
st_status tensor_topk_infer(eng_kctx *k);
st_status tensor_topk_run(eng_kctx *k);
st_status tensor_arg_infer(eng_kctx *k);
st_status tensor_argmax_run(eng_kctx *k);
st_status tensor_argmin_run(eng_kctx *k);
st_status tensor_cumsum_infer(eng_kctx *k);
st_status tensor_cumsum_run(eng_kctx *k);
st_status tensor_unique_infer(eng_kctx *k);
st_status tensor_unique_run(eng_kctx *k);
st_status tensor_nonzero_infer(eng_kctx *k);
st_status tensor_nonzero_run(eng_kctx *k);

/* tensor_einsum.c */
st_status tensor_einsum_check(eng_node *n, st_arena *arena, st_error *err);
st_status tensor_einsum_infer(eng_kctx *k);
st_status tensor_einsum_run(eng_kctx *k);
st_status tensor_det_infer(eng_kctx *k);
st_status tensor_det_run(eng_kctx *k);

#endif
