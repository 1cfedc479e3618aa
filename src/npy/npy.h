/* npy.h - NumPy .npy files: a strict zero-copy reader and a writer whose
 * output is byte-for-byte what numpy.save produces.
 *
 * Used for batch input/output (`stratus predict --input x=data.npy`), for
 * drift baselines and for test fixtures.  Only plain numeric C-order arrays
 * are handled: bool, int8..int64, uint8..uint64, float16/32/64.  Anything
 * else (object, string, structured, complex, datetime dtypes, Fortran order)
 * is refused with a message that says what the file holds.
 *
 * Reading a file (the data stays in a read-only mapping of the file):
 *
 *     npy_file f;
 *     st_error err = {0};
 *     if (npy_read_file("x.npy", &f, NULL, &err) != ST_OK) {
 *         fprintf(stderr, "%s\n", err.msg); // "x.npy: data is 24 bytes but
 *         return 1;                         //  shape (2, 3) of float64 needs 48 bytes ..."
 *     }
 *     if (f.array.dtype == ST_DT_FLOAT32)
 *         for (size_t i = 0; i < f.array.element_count; i++)
 *             sum += npy_get_double(&f.array, i); // or memcpy from f.array.data
 *     npy_file_close(&f);
 *
 * Writing (numpy reads it back with np.load):
 *
 *     float v[6] = { 1, 2, 3, 4, 5, 6 };
 *     size_t shape[2] = { 2, 3 };
 *     st_status s = npy_write_file("out.npy", ST_DT_FLOAT32, shape, 2, v, &err);
 *
 * Bytes in a file are untrusted: every length is checked against the input
 * size and every shape product for overflow before use; npy_parse never
 * reads outside [data, data + len) and never allocates.
 *
 * Element data is little-endian (this code only builds on little-endian
 * hosts).  Bool elements are bytes where any non-zero value means true
 * (numpy's rule): read them as uint8_t, never through a C `bool *`. */
#ifndef ST_NPY_H
#define ST_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/dtype.h"
#include "base/status.h"
#include "base/str.h"

/* Largest rank read or written; NumPy 1.x's own limit (NPY_MAXDIMS), so
 * every array it can save can be read here. */
#define NPY_MAX_RANK 32

/* Limits applied when npy_options leaves them 0.  The data must be in the
 * input anyway; these stop a caller from being handed more than it can
 * afford to process or copy. */
#define NPY_DEFAULT_MAX_ELEMENTS ((size_t)1 << 34)
#define NPY_DEFAULT_MAX_DATA_BYTES ((size_t)1 << 36) /* 64 GiB */

/* Reader options; a zeroed struct (or NULL) means the defaults. */
typedef struct npy_options {
    size_t max_elements;    /* largest element count accepted; 0: default */
    size_t max_data_bytes;  /* largest data section accepted; 0: default */
    /* npy_parse only: accept big-endian ('>') multi-byte dtypes and report
     * them with is_big_endian = true instead of failing.  The data is then
     * left as stored; swap a copy with npy_byteswap before using it.
     * npy_read_file ignores this and always converts to little-endian. */
    bool allow_big_endian;
} npy_options;

/* A parsed array.  `data` points into the caller's input (or into an
 * npy_file's mapping) and is valid as long as that is. */
typedef struct npy_array {
    st_dtype dtype;            /* one of the numeric types or ST_DT_BOOL */
    size_t rank;               /* 0 for a scalar (shape "()") */
    size_t shape[NPY_MAX_RANK];
    size_t element_count;      /* product of shape (1 for rank 0) */
    size_t item_bytes;         /* st_dtype_size(dtype) */
    const uint8_t *data;       /* element_count * item_bytes bytes, C order */
    size_t data_bytes;         /* exactly element_count * item_bytes */
    size_t data_offset;        /* where the data starts in the input */
    uint8_t version_major;     /* 1, 2 or 3 */
    uint8_t version_minor;     /* 0 */
    bool is_big_endian;        /* data still big-endian (allow_big_endian only) */
} npy_array;

/* Parses a complete .npy image of `len` bytes.  On ST_OK `out` describes
 * the array; its data points inside `data` (zero-copy), with the data
 * length checked to match the shape exactly.  On failure returns
 * ST_ECORRUPT (malformed or truncated), ST_EUNSUPPORTED (valid numpy but a
 * dtype, order or version this reader refuses), ST_ELIMIT or ST_EOVERFLOW,
 * with a one-line message in `err` (may be NULL); `out` is then zeroed.
 * `opts` may be NULL.  Never allocates. */
st_status npy_parse(const uint8_t *data, size_t len, const npy_options *opts,
                    npy_array *out, st_error *err);

/* An opened .npy file: `array` plus the memory that holds it. */
typedef struct npy_file {
    npy_array array;     /* data points into `base`; always little-endian */
    uint8_t *base;       /* the mapping (or heap copy for pipes) */
    size_t size;         /* bytes at base */
    bool is_mapped;      /* base is an mmap (else from st_malloc) */
} npy_file;

/* Opens and parses `path`.  Regular files are mapped read-only (private);
 * pipes and other streams are read into memory.  Big-endian arrays are
 * converted to little-endian in the private copy, so `out->array` is always
 * native.  Errors are npy_parse's, ST_ENOTFOUND, ST_EIO or ST_ENOMEM; the
 * message starts with the path instead of "npy".  On success the caller
 * owns `out` and must call npy_file_close; on failure `out` is zeroed and
 * owns nothing.  As with any mapping, another process truncating the file
 * while it is open makes reads of the lost pages fault (SIGBUS). */
st_status npy_read_file(const char *path, npy_file *out, const npy_options *opts,
                        st_error *err);

/* Releases what npy_read_file acquired; safe on a zeroed npy_file and when
 * called twice. */
void npy_file_close(npy_file *f);

/* Appends a .npy preamble (magic, version, header dict, padding) for an
 * array of `dtype` and `shape[0..rank)` to `out`, exactly as numpy 1.24
 * writes it (data offset a multiple of 64).  version_major 0 picks 1.0, or
 * 2.0 when the header does not fit 1.0's 16-bit length (numpy's rule); 1, 2
 * or 3 force that version (ST_ELIMIT when 1.0 cannot hold it).  ST_EINVAL for
 * an unsupported dtype or rank > NPY_MAX_RANK, ST_EOVERFLOW when the shape
 * product overflows, ST_ENOMEM.  On failure `out` keeps its old length. */
st_status npy_write_header(st_buf *out, st_dtype dtype, const size_t *shape,
                           size_t rank, unsigned version_major, st_error *err);

/* Appends a whole .npy image (header then data) to `out`.  `data` holds
 * product(shape) elements of `dtype`, little-endian, C order; it may be NULL
 * only when that product is 0.  Errors as npy_write_header; on failure
 * `out` keeps its old length. */
st_status npy_write(st_buf *out, st_dtype dtype, const size_t *shape, size_t rank,
                    const void *data, st_error *err);

/* Writes `path` atomically: a temporary file in the same directory, fsync,
 * rename over `path`, fsync of the directory.  A crash leaves either the old
 * file or the new one, never a mix; on error the temporary file is removed.
 * Errors as npy_write plus ST_EIO (message names the path and errno). */
st_status npy_write_file(const char *path, st_dtype dtype, const size_t *shape,
                         size_t rank, const void *data, st_error *err);

/* The numpy descr numpy.save writes for `dtype` ("<f4", "|b1", "|u1");
 * NULL when .npy cannot hold the type (string, undefined, invalid). */
const char *npy_descr_from_dtype(st_dtype dtype);

/* Maps a descr string ("<f4", "|b1", ">i8", "=u2", "f8") to a dtype.
 * `is_big_endian` (may be NULL) is set for '>' with an item of more than
 * one byte.  On an unsupported descr returns ST_EUNSUPPORTED (object,
 * string, complex, ...) or ST_ECORRUPT (not a dtype at all) with a message
 * naming it. */
st_status npy_dtype_from_descr(st_str descr, st_dtype *out, bool *is_big_endian,
                               st_error *err);

/* Reverses the byte order of `count` items of `item_bytes` (1, 2, 4 or 8)
 * in place; 1-byte items are left alone. */
void npy_byteswap(void *data, size_t count, size_t item_bytes);

/* Element `index` (C order) of `a` converted to double, honouring
 * is_big_endian and unaligned data; NaN when index >= element_count.  Large
 * 64-bit integers round to the nearest double. */
double npy_get_double(const npy_array *a, size_t index);

#endif
