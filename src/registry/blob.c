/* blob.c - content-addressed artifact store: blobs/sha256/<hex>.
 *
 * A blob is written to a temporary file in its final folder, fsynced,
 * renamed over its name (same content, so replacing is harmless and repairs
 * a damaged copy) and the folder fsynced - all before the database row that
 * names it commits.  Reading recomputes the hash. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/alloc.h"
#include "registry/reg_int.h"

#define CHUNK_BYTES (1u << 20)

bool reg_is_hex64(const char *s, size_t len)
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

void reg_blob_path(const reg_store *r, const char *hex, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", r->blob_dir, hex);
}

st_status reg_fsync_dir(const char *dir, st_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return st_fail(err, ST_EIO, "cannot open %s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    if (rc != 0 && saved != EINVAL) /* some file systems cannot sync folders */
        return st_fail(err, ST_EIO, "cannot sync %s: %s", dir, strerror(saved));
    return ST_OK;
}

static bool write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += w;
        len -= (size_t)w;
    }
    return true;
}

static void to_hex(const uint8_t *digest, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

st_status reg_hash_file(const char *path, int copy_fd, char hex[65], uint64_t *size,
                        reg_scan_fn scan, void *scan_ctx, reg_progress_fn progress,
                        void *progress_ctx, st_error *err)
{
    st_status s = ST_OK;
    uint8_t *buf = NULL;
    EVP_MD_CTX *md = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return st_fail(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO, "cannot open %s: %s", path,
                       strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        s = st_fail(err, ST_EINVAL, "%s is not a regular file", path);
        goto done;
    }
    buf = st_malloc(CHUNK_BYTES);
    md = EVP_MD_CTX_new();
    if (!buf || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        s = st_fail(err, ST_ENOMEM, "out of memory hashing %s", path);
        goto done;
    }
    uint64_t done_bytes = 0, total = (uint64_t)sb.st_size;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK_BYTES);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s = st_fail(err, ST_EIO, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)n);
        if (scan)
            scan(scan_ctx, buf, (size_t)n);
        if (copy_fd >= 0 && !write_all(copy_fd, buf, (size_t)n)) {
            s = st_fail(err, ST_EIO, "cannot write a copy of %s: %s", path, strerror(errno));
            goto done;
        }
        done_bytes += (uint64_t)n;
        if (progress)
            progress(progress_ctx, done_bytes, total > done_bytes ? total : done_bytes);
    }
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, digest, &dlen);
    to_hex(digest, hex);
    *size = done_bytes;
done:
    EVP_MD_CTX_free(md);
    st_free(buf);
    close(fd);
    return s;
}

st_status reg_blob_put(reg_store *r, const char *path, char hex[65], uint64_t *size,
                       reg_progress_fn progress, void *progress_ctx, st_error *err)
{
    static unsigned counter;
    char tmp[REG_PATH_MAX + 64], final_path[REG_PATH_MAX + 72];
    int fd = -1;
    for (int attempt = 0; fd < 0; attempt++) {
        snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%u", r->blob_dir, (long)getpid(), counter++);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
        if (fd < 0 && (errno != EEXIST || attempt == 100))
            return st_fail(err, ST_EIO, "cannot create a file in %s: %s", r->blob_dir,
                           strerror(errno));
    }
    st_status s = reg_hash_file(path, fd, hex, size, NULL, NULL, progress, progress_ctx, err);
    if (s == ST_OK && fsync(fd) != 0)
        s = st_fail(err, ST_EIO, "cannot sync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && s == ST_OK)
        s = st_fail(err, ST_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if (s != ST_OK)
        goto fail;
    reg_blob_path(r, hex, final_path, sizeof final_path);
    if (rename(tmp, final_path) != 0) {
        s = st_fail(err, ST_EIO, "cannot rename %s to %s: %s", tmp, final_path, strerror(errno));
        goto fail;
    }
    return reg_fsync_dir(r->blob_dir, err);
fail:
    unlink(tmp);
    return s;
}

st_status reg_blob_verify(reg_store *r, const char *hex, int64_t expect_size,
                          uint64_t *bytes_hashed, st_error *err)
{
    char path[REG_PATH_MAX + 72], got[65];
    uint64_t size = 0;
    reg_blob_path(r, hex, path, sizeof path);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return st_fail(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO, "blob %s is missing: %s",
                       path, strerror(errno));
    if (expect_size >= 0 && sb.st_size != expect_size)
        return st_fail(err, ST_ECORRUPT, "blob %s is damaged: %lld bytes, %lld registered", path,
                       (long long)sb.st_size, (long long)expect_size);
    st_status s = reg_hash_file(path, -1, got, &size, NULL, NULL, NULL, NULL, err);
    if (bytes_hashed)
        *bytes_hashed = size;
    if (s != ST_OK)
        return s;
    if (memcmp(got, hex, 64) != 0)
        return st_fail(err, ST_ECORRUPT, "blob %s is damaged: its content hashes to %.12s..., not %.12s...",
                       path, got, hex);
    return ST_OK;
}

st_status reg_blob_release(reg_store *r, const char *hex, bool *removed, st_error *err)
{
    *removed = false;
    sqlite3_stmt *st;
    st_status s = reg_db_prepare(r, "SELECT 1 FROM versions WHERE blob = ? LIMIT 1", &st, err);
    if (s != ST_OK)
        return s;
    reg_bind_cstr(st, 1, hex);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return ST_OK;
    if (rc != SQLITE_DONE)
        return reg_db_fail(r, rc, "registry", err);
    char path[REG_PATH_MAX + 72];
    reg_blob_path(r, hex, path, sizeof path);
    if (unlink(path) != 0)
        return errno == ENOENT ? ST_OK
                               : st_fail(err, ST_EIO, "cannot remove %s: %s", path, strerror(errno));
    *removed = true;
    return reg_fsync_dir(r->blob_dir, err);
}
