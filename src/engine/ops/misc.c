/* misc.c - operator family (being written). */
#include "engine/ops/ops.h"

const eng_op eng_ops_misc[] = {
    { 0 },
};
