/* reduce.h - the strided reduction engine behind the Reduce* operators,
 * exported for other operator families and for tests/unit/test_reduce.c.
 * Internal to src/engine/ (includes eng_int.h). */
#ifndef ST_ENGINE_OPS_REDUCE_H
#define ST_ENGINE_OPS_REDUCE_H

#include "engine/eng_int.h"

typedef enum {
    ENG_REDUCE_SUM,
    ENG_REDUCE_MEAN,
    ENG_REDUCE_MAX,
    ENG_REDUCE_MIN,
    ENG_REDUCE_PROD,
    ENG_REDUCE_L1,
    ENG_REDUCE_L2,
    ENG_REDUCE_LOG_SUM,
    ENG_REDUCE_LOG_SUM_EXP,
    ENG_REDUCE_SUM_SQUARE,
} eng_reduce_op;

/* True when eng_reduce handles `op` over elements of type t (float32,
 * float64, float16, int8/uint8, int32/uint32, int64/uint64). */
bool eng_reduce_supports(eng_reduce_op op, st_dtype t);

/* Reduces x over the axes with is_reduced[axis] true (x->rank entries) into
 * out, which must already have x's dtype, out->count equal to the product
 * of the kept dims and allocated data; its shape is not read (keepdims is
 * the caller's business).  A reduction over zero elements gives the op's
 * identity (0 for sums, 1 for Prod, -inf/+inf or the type's limit for
 * Max/Min, -inf for the logs, NaN for a float Mean).  Temporaries come
 * from `scratch`; `pool` may be NULL.  ST_EUNSUPPORTED for a type
 * eng_reduce_supports rejects, ST_ENOMEM when scratch runs out. */
st_status eng_reduce(eng_reduce_op op, const eng_tensor *x, const bool *is_reduced, eng_tensor *out,
                     st_arena *scratch, st_pool *pool);

#endif
