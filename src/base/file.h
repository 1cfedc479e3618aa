/* file.h - whole-file reads and atomic writes. */
#ifndef ST_FILE_H
#define ST_FILE_H

#include <stddef.h>

#include "base/buf.h"
#include "base/status.h"

/* Appends the contents of `path` ("-" = stdin) to `out`; fails with
 * ST_ELIMIT (and reads no further) past max_bytes (0 = no limit). */
st_status st_file_read_all(const char *path, st_buf *out, size_t max_bytes, st_error *err);

/* Writes `len` bytes to `path` atomically: a temporary file in the same
 * folder, fsync, rename.  A crash leaves either the old file or the new. */
st_status st_file_write_atomic(const char *path, const void *data, size_t len, st_error *err);

#endif
