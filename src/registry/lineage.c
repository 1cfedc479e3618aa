/* lineage.c - where a version came from: the git commit of the pushed
 * file's folder, and a hash and schema summary of its training data. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json/json.h"
#include "npy/npy.h"
#include "registry/reg_int.h"

extern char **environ;

void reg_source_commit(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    char copy[REG_PATH_MAX], dir[REG_PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(dir, sizeof dir, "%s", dirname(copy));
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    char *argv[] = { (char *)"git", (char *)"-C", dir, (char *)"rev-parse", (char *)"HEAD", NULL };
    pid_t pid;
    int rc = posix_spawnp(&pid, "git", &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return;
    }
    char text[128];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], text + len, sizeof text - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof text - 1)
            break;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || (len != 40 && len != 64))
        return;
    for (size_t i = 0; i < len; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return;
    if (len < cap) {
        memcpy(out, text, len);
        out[len] = '\0';
    }
}

/* ---- CSV header and row count, gathered while the file is hashed ---------- */

#define HEADER_MAX (1u << 20)

typedef struct csv_scan {
    char sep;
    st_buf header;       /* first line, up to HEADER_MAX */
    bool header_done;
    bool is_too_long;
    uint64_t newlines;
    bool ends_with_newline;
} csv_scan;

static void csv_chunk(void *ctx, const uint8_t *data, size_t len)
{
    csv_scan *c = ctx;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            c->newlines++;
            c->header_done = true;
        } else if (!c->header_done) {
            if (c->header.len < HEADER_MAX)
                st_buf_append_byte(&c->header, data[i]);
            else
                c->is_too_long = true;
        }
    }
    if (len)
        c->ends_with_newline = data[len - 1] == '\n';
}

/* Writes the header's fields as a JSON array; quoted fields ("a,b", "say
 * ""hi""") are unquoted. */
static void csv_columns(json_writer *w, const csv_scan *c)
{
    const char *p = (const char *)c->header.data;
    size_t n = c->header.len;
    if (n && p[n - 1] == '\r')
        n--;
    json_write_array_begin(w);
    st_buf field = { 0 };
    size_t i = 0;
    for (;;) {
        st_buf_clear(&field);
        if (i < n && p[i] == '"') {
            for (i++; i < n; i++) {
                if (p[i] == '"' && i + 1 < n && p[i + 1] == '"')
                    st_buf_append_byte(&field, (uint8_t)p[i++]);
                else if (p[i] == '"')
                    break;
                else
                    st_buf_append_byte(&field, (uint8_t)p[i]);
            }
            while (i < n && p[i] != c->sep)
                i++;
        } else {
            while (i < n && p[i] != c->sep)
                st_buf_append_byte(&field, (uint8_t)p[i++]);
        }
        json_write_string(w, st_buf_str(&field));
        if (i >= n)
            break;
        i++; /* the separator */
    }
    st_buf_free(&field);
    json_write_array_end(w);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

st_status reg_data_summary(const char *path, char hex[65], uint64_t *size, st_buf *schema,
                           reg_progress_fn progress, void *progress_ctx, st_error *err)
{
    bool is_csv = has_suffix(path, ".csv"), is_tsv = has_suffix(path, ".tsv");
    csv_scan scan = { .sep = is_tsv ? '\t' : ',' };
    st_status s = reg_hash_file(path, -1, hex, size, is_csv || is_tsv ? csv_chunk : NULL, &scan,
                                progress, progress_ctx, err);
    if (s != ST_OK) {
        st_buf_free(&scan.header);
        return st_fail_wrap(err, s, "--data");
    }
    json_writer w;
    json_writer_init(&w, schema, NULL);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("format"));
    if ((is_csv || is_tsv) && !scan.is_too_long) {
        json_write_string(&w, is_tsv ? ST_STR("tsv") : ST_STR("csv"));
        uint64_t lines = scan.newlines + (*size > 0 && !scan.ends_with_newline ? 1 : 0);
        json_write_key(&w, ST_STR("columns"));
        csv_columns(&w, &scan);
        json_write_key(&w, ST_STR("rows"));
        json_write_uint64(&w, lines ? lines - 1 : 0);
    } else if (has_suffix(path, ".npy")) {
        npy_file f;
        if (npy_read_file(path, &f, NULL, NULL) == ST_OK) {
            json_write_string(&w, ST_STR("npy"));
            json_write_key(&w, ST_STR("dtype"));
            json_write_string(&w, st_str_c(st_dtype_name(f.array.dtype)));
            json_write_key(&w, ST_STR("shape"));
            json_write_array_begin(&w);
            for (size_t i = 0; i < f.array.rank; i++)
                json_write_uint64(&w, f.array.shape[i]);
            json_write_array_end(&w);
            npy_file_close(&f);
        } else {
            json_write_string(&w, ST_STR("unknown"));
        }
    } else {
        json_write_string(&w, ST_STR("unknown"));
    }
    json_write_object_end(&w);
    st_buf_free(&scan.header);
    if (json_writer_finish(&w) != ST_OK) {
        /* A header that is not UTF-8 cannot be a JSON string: keep the format only. */
        st_buf_clear(schema);
        if (st_buf_append_str(schema, ST_STR("{\"format\":\"unknown\"}")) != ST_OK)
            return st_fail(err, ST_ENOMEM, "out of memory");
    }
    return ST_OK;
}
