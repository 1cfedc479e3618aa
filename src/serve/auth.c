/* auth.c - API keys for the inference routes (--api-keys FILE) and the
 * helpers the management API shares with them: the bearer token of a
 * request, and comparison by SHA-256 digest in constant time.  Only the
 * digests of the keys are kept in memory; the key file is reread when it
 * changes (checked at most once a second), and a broken rewrite keeps the
 * keys that were loaded before. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/alloc.h"
#include "base/file.h"
#include "base/log.h"
#include "base/time.h"
#include "serve/serve_int.h"

/* Longest key accepted, and largest key file read. */
#define KEY_MAX_BYTES 1024
#define KEY_FILE_MAX_BYTES (1u << 20)
#define RELOAD_PERIOD_US 1000000

/* One loaded set of keys: immutable once made, swapped whole on reload. */
typedef struct key_set {
    uint8_t (*digests)[SV_DIGEST_BYTES];
    size_t n;
} key_set;

struct sv_keys {
    char path[4096];           /* "" when parsed from memory */
    pthread_rwlock_t lock;     /* readers check, a reload swaps `set` */
    key_set set;
    pthread_mutex_t reload_mu; /* one reload at a time */
    _Atomic uint64_t next_check_us;
    struct stat seen;          /* the file as last loaded (or tried) */
};

void sv_digest(const void *data, size_t len, uint8_t out[SV_DIGEST_BYTES])
{
    unsigned int n = 0;
    /* SHA-256 cannot fail on a valid digest type; a zero digest would only
     * make every comparison fail, never succeed wrongly, as no stored key
     * digest is all zeros in practice. */
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != SV_DIGEST_BYTES)
        memset(out, 0, SV_DIGEST_BYTES);
}

bool sv_digest_eq(const uint8_t a[SV_DIGEST_BYTES], const uint8_t b[SV_DIGEST_BYTES])
{
    return CRYPTO_memcmp(a, b, SV_DIGEST_BYTES) == 0;
}

bool sv_bearer_token(const http_request *req, st_str *token)
{
    st_str v = http_request_header(req, "Authorization");
    static const char scheme[] = "Bearer ";
    const size_t n = sizeof scheme - 1;
    if (!v.ptr || v.len <= n || !st_str_eq_nocase(st_str_make(v.ptr, n), st_str_make(scheme, n)))
        return false;
    st_str t = st_str_make(v.ptr + n, v.len - n);
    while (t.len && (t.ptr[0] == ' ' || t.ptr[0] == '\t')) {
        t.ptr++;
        t.len--;
    }
    if (!t.len)
        return false;
    *token = t;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void key_set_free(key_set *s)
{
    st_free(s->digests);
    *s = (key_set){ 0 };
}

/* The parser behind both the file and the fuzzer. */
static st_status parse_keys(const uint8_t *data, size_t len, key_set *out, st_error *err)
{
    *out = (key_set){ 0 };
    /* First pass: count lines, bounding the digest array. */
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += data[i] == '\n';
    key_set s = { 0 };
    s.digests = st_calloc(lines, sizeof *s.digests);
    if (!s.digests)
        return st_fail(err, ST_ENOMEM, "out of memory reading %zu lines of API keys", lines);
    size_t line_no = 0;
    for (size_t pos = 0; pos < len;) {
        line_no++;
        const uint8_t *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t line_start = pos, a = pos, b = end;
        pos = nl ? end + 1 : len;
        while (a < b && is_space((char)data[a]))
            a++;
        while (b > a && is_space((char)data[b - 1]))
            b--;
        if (a == b || data[a] == '#')
            continue;
        for (size_t i = a; i < b; i++) {
            if (data[i] < 0x21 || data[i] == 0x7f) {
                key_set_free(&s);
                return st_fail(err, ST_EINVAL,
                               "line %zu: a key has a space or control character at column %zu; one key per "
                               "line, printable ASCII or UTF-8 without spaces", line_no, i - line_start + 1);
            }
        }
        if (b - a < SV_KEY_MIN_BYTES) {
            key_set_free(&s);
            return st_fail(err, ST_EINVAL, "line %zu: the key has %zu bytes; keys need at least %d (make one "
                           "with: openssl rand -hex 32)", line_no, b - a, SV_KEY_MIN_BYTES);
        }
        if (b - a > KEY_MAX_BYTES) {
            key_set_free(&s);
            return st_fail(err, ST_EINVAL, "line %zu: the key has %zu bytes; at most %d are accepted", line_no,
                           b - a, KEY_MAX_BYTES);
        }
        sv_digest(data + a, b - a, s.digests[s.n++]);
    }
    if (s.n == 0) {
        key_set_free(&s);
        return st_fail(err, ST_EINVAL, "no key in it: write one key per line (blank lines and lines starting "
                       "with # are skipped)");
    }
    *out = s;
    return ST_OK;
}

static sv_keys *keys_new(const key_set *set)
{
    sv_keys *k = st_calloc(1, sizeof *k);
    if (!k)
        return NULL;
    pthread_rwlock_init(&k->lock, NULL);
    pthread_mutex_init(&k->reload_mu, NULL);
    k->set = *set;
    return k;
}

st_status sv_keys_parse(const uint8_t *data, size_t len, sv_keys **out, st_error *err)
{
    *out = NULL;
    key_set set;
    st_status st = parse_keys(data, len, &set, err);
    if (st != ST_OK)
        return st;
    *out = keys_new(&set);
    if (!*out) {
        key_set_free(&set);
        return st_fail(err, ST_ENOMEM, "out of memory");
    }
    return ST_OK;
}

/* Reads and parses the file; *sb receives what was read (stat before the
 * read, so a change during it is seen by the next check). */
static st_status read_key_file(const char *path, struct stat *sb, key_set *out, st_error *err)
{
    if (stat(path, sb) != 0)
        return st_fail(err, ST_ENOTFOUND, "API key file %s: %s", path, strerror(errno));
    st_buf text = { 0 };
    st_status st = st_file_read_all(path, &text, KEY_FILE_MAX_BYTES, err);
    if (st == ST_OK)
        st = parse_keys(text.data, text.len, out, err);
    st_buf_free(&text);
    if (st != ST_OK)
        st_fail_wrap(err, st, "API key file %s", path);
    return st;
}

st_status sv_keys_load(const char *path, sv_keys **out, st_error *err)
{
    *out = NULL;
    if (strlen(path) >= sizeof((sv_keys *)0)->path)
        return st_fail(err, ST_EINVAL, "API key file path too long: %s", path);
    struct stat sb;
    key_set set;
    st_status st = read_key_file(path, &sb, &set, err);
    if (st != ST_OK)
        return st;
    sv_keys *k = keys_new(&set);
    if (!k) {
        key_set_free(&set);
        return st_fail(err, ST_ENOMEM, "out of memory");
    }
    snprintf(k->path, sizeof k->path, "%s", path);
    k->seen = sb;
    atomic_store(&k->next_check_us, st_now_us() + RELOAD_PERIOD_US);
    *out = k;
    return ST_OK;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

st_status sv_keys_reload(sv_keys *k, st_error *err)
{
    if (!k->path[0])
        return ST_OK;
    pthread_mutex_lock(&k->reload_mu);
    st_status st = ST_OK;
    struct stat sb;
    if (stat(k->path, &sb) == 0 && same_file(&sb, &k->seen))
        goto done;
    key_set set;
    st = read_key_file(k->path, &sb, &set, err);
    if (st != ST_OK) {
        /* Remember the broken version so the log says so once, not every
         * second; a fixed file has another mtime and is read again. */
        k->seen = sb;
        ST_LOG_WARN("%s; keeping the %zu key%s loaded before", st_error_msg(err), k->set.n,
                    k->set.n == 1 ? "" : "s");
        goto done;
    }
    k->seen = sb;
    pthread_rwlock_wrlock(&k->lock);
    key_set old = k->set;
    k->set = set;
    pthread_rwlock_unlock(&k->lock);
    key_set_free(&old);
    ST_LOG_INFO("API keys reloaded from %s: %zu key%s", k->path, set.n, set.n == 1 ? "" : "s");
done:
    pthread_mutex_unlock(&k->reload_mu);
    return st;
}

bool sv_keys_check(const sv_keys *keys, const http_request *req)
{
    /* The set is shared and swapped on reload; the const is the caller's
     * view (a check changes no key), the lock and timestamps are ours. */
    sv_keys *k = (sv_keys *)keys;
    uint64_t now = st_now_us(), next = atomic_load_explicit(&k->next_check_us, memory_order_relaxed);
    if (k->path[0] && now >= next &&
        atomic_compare_exchange_strong(&k->next_check_us, &next, now + RELOAD_PERIOD_US)) {
        st_error err = { 0 };
        sv_keys_reload(k, &err);
    }
    st_str key = http_request_header(req, "X-API-Key");
    if (!key.ptr || !key.len) {
        if (!sv_bearer_token(req, &key))
            return false;
    }
    uint8_t digest[SV_DIGEST_BYTES];
    sv_digest(key.ptr, key.len, digest);
    /* Every stored key is compared, so the time taken says nothing about
     * which one (if any) matched. */
    bool is_match = false;
    pthread_rwlock_rdlock(&k->lock);
    for (size_t i = 0; i < k->set.n; i++)
        is_match |= sv_digest_eq(digest, k->set.digests[i]);
    pthread_rwlock_unlock(&k->lock);
    return is_match;
}

size_t sv_keys_count(const sv_keys *keys)
{
    sv_keys *k = (sv_keys *)keys;
    pthread_rwlock_rdlock(&k->lock);
    size_t n = k->set.n;
    pthread_rwlock_unlock(&k->lock);
    return n;
}

void sv_keys_free(sv_keys *k)
{
    if (!k)
        return;
    key_set_free(&k->set);
    pthread_rwlock_destroy(&k->lock);
    pthread_mutex_destroy(&k->reload_mu);
    st_free(k);
}
