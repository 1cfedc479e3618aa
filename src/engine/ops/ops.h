/* ops.h - operator families (one table per file under src/engine/ops/). */
#ifndef ST_ENGINE_OPS_H
#define ST_ENGINE_OPS_H

#include "engine/eng_int.h"

extern const eng_op eng_ops_elementwise[];
extern const eng_op eng_ops_shape[];
extern const eng_op eng_ops_linalg[];
extern const eng_op eng_ops_conv[];   /* Conv, ConvTranspose, pooling */
extern const eng_op eng_ops_norm[];   /* normalisations, softmax, resize */
extern const eng_op eng_ops_tensor[]; /* indexing, slicing, generation */
extern const eng_op eng_ops_reduce[]; /* reductions and losses */
extern const eng_op eng_ops_misc[];   /* recurrent, quantisation, strings, signal */
extern const eng_op eng_ops_control[]; /* If, Loop, Scan */
extern const eng_op eng_ops_sequence[]; /* sequences and optionals */
extern const eng_op eng_ops_detection[]; /* NonMaxSuppression */
extern const eng_op eng_ops_ml_tree[]; /* ONNX-ML tree ensembles */

/* Load-time state for a Gelu node (also used when passes.c fuses the
 * exported Erf pattern into one node). */
st_status eng_gelu_check(eng_node *n, st_arena *arena, st_error *err);

/* An infer function for ops whose single output has the first input's
 * type and shape. */
st_status eng_infer_same_as_input(eng_kctx *k);

/* Permutes the axes of a C-order array of `rank` dims: out dim i is in
 * dim perm[i]. */
void eng_transpose(const void *src, void *dst, size_t elem_bytes, const int64_t *shape, uint32_t rank,
                   const int *perm);

#endif
