/* dtype.h - element types shared by the engine, JSON, .npy and protocols.
 * Values are ONNX TensorProto.DataType numbers, so the loader maps them
 * directly. */
#ifndef ST_DTYPE_H
#define ST_DTYPE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

/* X(enum name, onnx number, element bytes (0 for string), short name) */
#define ST_DTYPE_LIST(X)                     \
    X(ST_DT_UNDEFINED, 0, 0, "undefined")    \
    X(ST_DT_FLOAT32, 1, 4, "float32")        \
    X(ST_DT_UINT8, 2, 1, "uint8")            \
    X(ST_DT_INT8, 3, 1, "int8")              \
    X(ST_DT_UINT16, 4, 2, "uint16")          \
    X(ST_DT_INT16, 5, 2, "int16")            \
    X(ST_DT_INT32, 6, 4, "int32")            \
    X(ST_DT_INT64, 7, 8, "int64")            \
    X(ST_DT_STRING, 8, 0, "string")          \
    X(ST_DT_BOOL, 9, 1, "bool")              \
    X(ST_DT_FLOAT16, 10, 2, "float16")       \
    X(ST_DT_FLOAT64, 11, 8, "float64")       \
    X(ST_DT_UINT32, 12, 4, "uint32")         \
    X(ST_DT_UINT64, 13, 8, "uint64")

typedef enum {
#define ST_DTYPE_ENUM_(name, num, size, str) name = num,
    ST_DTYPE_LIST(ST_DTYPE_ENUM_)
#undef ST_DTYPE_ENUM_
    ST_DT_COUNT_
} st_dtype;

/* Bytes per element; 0 for string and undefined or unknown values. */
size_t st_dtype_size(st_dtype t);
/* "float32", "int64", ...; "invalid" for values outside the list. */
const char *st_dtype_name(st_dtype t);
/* Parses a name as st_dtype_name prints it; false when unknown. */
bool st_dtype_parse(st_str name, st_dtype *out);
/* True for values that are members of the list above. */
bool st_dtype_is_valid(int value);

/* IEEE half <-> single conversion, exact (round to nearest even). */
float st_half_to_float(unsigned short h);
unsigned short st_float_to_half(float f);

#endif
