/* conv.c - operator family (being written). */
#include "engine/ops/ops.h"

const eng_op eng_ops_conv[] = {
    { 0 },
};
