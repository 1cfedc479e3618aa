/* file.c - whole-file reads and atomic writes (temp file + fsync + rename). */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

st_status st_file_read_all(const char *path, st_buf *out, size_t max_bytes, st_error *err)
{
    bool is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return st_fail(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (!is_stdin && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return st_fail(err, ST_EINVAL, "%s: is a folder, not a file", path);
    }
    st_status s = ST_OK;
    size_t start = out->len;
    for (;;) {
        if ((s = st_buf_reserve(out, 1 << 16)) != ST_OK) {
            st_fail(err, s, "%s: out of memory reading the file", path);
            break;
        }
        ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            s = st_fail(err, ST_EIO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        out->len += (size_t)n;
        if (max_bytes && out->len - start > max_bytes) {
            s = st_fail(err, ST_ELIMIT, "%s: larger than the limit of %zu bytes", path, max_bytes);
            break;
        }
    }
    if (!is_stdin)
        close(fd);
    return s;
}

st_status st_file_write_atomic(const char *path, const void *data, size_t len, st_error *err)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return st_fail(err, ST_EINVAL, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return st_fail(err, ST_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    const unsigned char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return st_fail(err, ST_EIO, "%s: write failed: %s", path, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return st_fail(err, ST_EIO, "%s: cannot flush to disk: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return st_fail(err, ST_EIO, "%s: cannot rename into place: %s", path, strerror(e));
    }
    return ST_OK;
}
