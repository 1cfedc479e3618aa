/* misc_ops.h - the kernels behind the eng_ops_misc table (misc.c), kept in
 * one file per family: quant.c (quantisation), signal.c (windows, DFT,
 * STFT, mel matrix), text.c (string normalisation, TF-IDF).  Each op
 * exports its check / infer / run as op_<family>_<op>_<stage>. */
#ifndef ST_ENGINE_OPS_MISC_OPS_H
#define ST_ENGINE_OPS_MISC_OPS_H

#include "engine/ops/ops.h"

#define MISC_OP_DECL(NAME)                                                      \
    st_status NAME##_check(eng_node *n, st_arena *arena, st_error *err);       \
    st_status NAME##_infer(eng_kctx *k);                                        \
    st_status NAME##_run(eng_kctx *k);

MISC_OP_DECL(op_quant_quantize)
MISC_OP_DECL(op_quant_dequantize)
MISC_OP_DECL(op_quant_dynamic)
MISC_OP_DECL(op_quant_matmul_integer)
MISC_OP_DECL(op_quant_qlinear_matmul)
MISC_OP_DECL(op_quant_qlinear_conv)

/* The three windows share infer and run; check picks the coefficients. */
st_status op_signal_hann_check(eng_node *n, st_arena *arena, st_error *err);
st_status op_signal_hamming_check(eng_node *n, st_arena *arena, st_error *err);
st_status op_signal_blackman_check(eng_node *n, st_arena *arena, st_error *err);
st_status op_signal_window_infer(eng_kctx *k);
st_status op_signal_window_run(eng_kctx *k);
MISC_OP_DECL(op_signal_dft)
MISC_OP_DECL(op_signal_stft)
MISC_OP_DECL(op_signal_mel)
MISC_OP_DECL(op_text_strnorm)
MISC_OP_DECL(op_text_tfidf)

#endif
