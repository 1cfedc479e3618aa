/* registry.c - maps (domain, op_type, opset) to an operator.  Each family
 * file exports a table ending with a zeroed entry; the newest entry whose
 * min_opset is not above the model's opset wins. */
#include "engine/ops/ops.h"

static const eng_op *const families[] = {
    eng_ops_elementwise,
    eng_ops_shape,
    eng_ops_linalg,
    eng_ops_conv,
    eng_ops_norm,
    eng_ops_tensor,
    eng_ops_reduce,
    eng_ops_misc,
    eng_ops_control,
    eng_ops_sequence,
    eng_ops_detection,
    eng_ops_ml_tree,
};

const eng_op *eng_op_find(st_str domain, st_str op_type, int opset)
{
    bool want_default = domain.len == 0 || st_str_eq_c(domain, "ai.onnx");
    const eng_op *best = NULL;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        for (const eng_op *op = families[f]; op->name; op++) {
            bool domain_ok = want_default ? op->domain[0] == '\0' : st_str_eq_c(domain, op->domain);
            if (!domain_ok || !st_str_eq_c(op_type, op->name) || op->min_opset > opset)
                continue;
            if (!best || op->min_opset > best->min_opset)
                best = op;
        }
    }
    return best;
}
