/* npy_int.h - internals of src/npy shared with its unit test only.
 * Real arrays never reach the 2.0 switch (a rank-32 header is under 1 KB),
 * so the test drives the preamble wrapper directly with a long dict. */
#ifndef ST_NPY_INT_H
#define ST_NPY_INT_H

#include "npy/npy.h"

/* Appends magic, version, header length, `dict[0..dict_len)`, space padding
 * and '\n' to `out` with numpy's alignment rule.  version_major as in
 * npy_write_header (0: 1.0, or 2.0 when 1.0's 16-bit length overflows).
 * On failure `out` keeps its old length. */
st_status npy_int_wrap_header(st_buf *out, const char *dict, size_t dict_len,
                              unsigned version_major, st_error *err);

#endif
