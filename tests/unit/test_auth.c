/* test_auth.c - API keys of the inference routes: the key file parser
 * (comments, blank lines, whitespace, short keys, no keys), both header
 * forms, wrong keys, and reloading a changed file (a broken one keeps the
 * old keys). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"

#include "serve/serve_int.h"

#define KEY_A "alpha-0123456789abcdef"
#define KEY_B "bravo-0123456789abcdef"

static sv_keys *parse(const char *text, st_status want, st_error *err)
{
    sv_keys *k = NULL;
    st_status st = sv_keys_parse((const uint8_t *)text, strlen(text), &k, err);
    assert_int_equal(st, want);
    if (want != ST_OK)
        assert_null(k);
    return k;
}

/* A request carrying one header. */
static bool check(const sv_keys *k, const char *name, const char *value)
{
    http_header h = { st_str_c(name), st_str_c(value) };
    http_request req = { .method = ST_STR("POST"), .headers = &h, .n_headers = name ? 1 : 0 };
    return sv_keys_check(k, &req);
}

static void test_parse_file_format(void **state)
{
    (void)state;
    st_error err = { 0 };
    sv_keys *k = parse("# team keys\n\n  " KEY_A "  \r\n\t# old\n" KEY_B, ST_OK, &err);
    assert_int_equal(sv_keys_count(k), 2);
    assert_true(check(k, "X-API-Key", KEY_A));
    assert_true(check(k, "x-api-key", KEY_B));
    assert_true(check(k, "Authorization", "Bearer " KEY_A));
    assert_true(check(k, "authorization", "bearer " KEY_B));
    sv_keys_free(k);
}

static void test_wrong_or_missing_key(void **state)
{
    (void)state;
    st_error err = { 0 };
    sv_keys *k = parse(KEY_A "\n", ST_OK, &err);
    assert_false(check(k, NULL, NULL));
    assert_false(check(k, "X-API-Key", KEY_B));
    assert_false(check(k, "X-API-Key", "alpha-0123456789abcde"));  /* a prefix */
    assert_false(check(k, "X-API-Key", KEY_A "f"));                /* longer */
    assert_false(check(k, "Authorization", KEY_A));                /* no scheme */
    assert_false(check(k, "Authorization", "Basic " KEY_A));
    assert_false(check(k, "Authorization", "Bearer "));
    assert_false(check(k, "X-API-Key", "# comment"));
    sv_keys_free(k);
}

static void test_bad_files(void **state)
{
    (void)state;
    st_error err = { 0 };
    parse("", ST_EINVAL, &err);
    assert_non_null(strstr(err.msg, "no key"));
    parse("# only\n\n   \n", ST_EINVAL, &err);
    parse(KEY_A "\nshort\n", ST_EINVAL, &err);
    assert_non_null(strstr(err.msg, "line 2"));
    assert_non_null(strstr(err.msg, "16"));
    parse("alpha 0123456789abcdef\n", ST_EINVAL, &err);
    assert_non_null(strstr(err.msg, "line 1"));
    char nul[] = "alpha-0123456789\0abcdef\n";
    sv_keys *k = NULL;
    assert_int_equal(sv_keys_parse((const uint8_t *)nul, sizeof nul - 1, &k, &err), ST_EINVAL);
    assert_null(k);
}

static void write_text(const char *path, const char *text)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(rename(tmp, path), 0);  /* a new inode: seen as a change */
}

static void test_load_and_reload(void **state)
{
    (void)state;
    char dir[] = "/tmp/st_auth_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/keys", dir);
    st_error err = { 0 };
    sv_keys *k = NULL;
    assert_int_equal(sv_keys_load(path, &k, &err), ST_ENOTFOUND);
    write_text(path, KEY_A "\n");
    assert_int_equal(sv_keys_load(path, &k, &err), ST_OK);
    assert_true(check(k, "X-API-Key", KEY_A));
    assert_false(check(k, "X-API-Key", KEY_B));

    write_text(path, KEY_B "\n");
    assert_int_equal(sv_keys_reload(k, &err), ST_OK);
    assert_false(check(k, "X-API-Key", KEY_A));
    assert_true(check(k, "X-API-Key", KEY_B));

    /* A broken rewrite keeps the keys that worked. */
    write_text(path, "tiny\n");
    assert_int_equal(sv_keys_reload(k, &err), ST_EINVAL);
    assert_non_null(strstr(err.msg, path));
    assert_true(check(k, "X-API-Key", KEY_B));
    /* Unchanged since: nothing is reread, nothing fails. */
    assert_int_equal(sv_keys_reload(k, &err), ST_OK);
    write_text(path, KEY_A "\n" KEY_B "\n");
    assert_int_equal(sv_keys_reload(k, &err), ST_OK);
    assert_int_equal(sv_keys_count(k), 2);

    /* A file that is gone keeps the keys too. */
    unlink(path);
    assert_int_equal(sv_keys_reload(k, &err), ST_ENOTFOUND);
    assert_true(check(k, "X-API-Key", KEY_A));
    sv_keys_free(k);
    rmdir(dir);
}

static void test_digest_and_bearer(void **state)
{
    (void)state;
    uint8_t a[SV_DIGEST_BYTES], b[SV_DIGEST_BYTES];
    sv_digest("abc", 3, a);
    /* SHA-256("abc"), FIPS 180-2 appendix B.1. */
    static const uint8_t want[SV_DIGEST_BYTES] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
    };
    assert_memory_equal(a, want, SV_DIGEST_BYTES);
    sv_digest("abd", 3, b);
    assert_true(sv_digest_eq(a, a));
    assert_false(sv_digest_eq(a, b));
    http_header h = { ST_STR("Authorization"), ST_STR("Bearer   tok") };
    http_request req = { .headers = &h, .n_headers = 1 };
    st_str t;
    assert_true(sv_bearer_token(&req, &t));
    assert_true(st_str_eq_c(t, "tok"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_file_format),
        cmocka_unit_test(test_wrong_or_missing_key),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_load_and_reload),
        cmocka_unit_test(test_digest_and_bearer),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
