/* test_json_suite.c - JSONTestSuite conformance (../shared/testdata/json/
 * test_parsing): y_* must be accepted, n_* rejected, i_* may go either way
 * but must not crash or hang.  Each file runs through json_validate, the
 * DOM, and a full cursor walk; the three must agree. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"

#include "base/alloc.h"
#include "json/json.h"

#define SUITE_DIR "json/test_parsing"

typedef struct {
    char path[1536];
    char name[256];
} suite_file;

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const suite_file *)a)->name, ((const suite_file *)b)->name);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    *len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    /* An exact-size copy so ASan flags any read past the end. */
    char *exact = buf ? malloc(n ? n : 1) : NULL;
    if (exact)
        memcpy(exact, buf, n);
    free(buf);
    *len = n;
    return exact;
}

/* Walks any document with the cursor alone, reading every value. */
static st_status walk(json_reader *r)
{
    switch (json_peek(r)) {
    case JSON_KIND_NULL: return json_read_null(r);
    case JSON_KIND_BOOL: {
        bool b;
        return json_read_bool(r, &b);
    }
    case JSON_KIND_NUMBER: {
        st_str t;
        return json_read_number_text(r, &t);
    }
    case JSON_KIND_STRING: {
        st_str s;
        return json_read_string(r, &s);
    }
    case JSON_KIND_ARRAY:
        if (json_enter_array(r) != ST_OK)
            return json_reader_status(r);
        while (json_array_next(r))
            if (walk(r) != ST_OK)
                return json_reader_status(r);
        return json_reader_status(r);
    case JSON_KIND_OBJECT: {
        if (json_enter_object(r) != ST_OK)
            return json_reader_status(r);
        st_str key;
        while (json_object_next(r, &key))
            if (walk(r) != ST_OK)
                return json_reader_status(r);
        return json_reader_status(r);
    }
    default:
        return json_reader_status(r) != ST_OK ? json_reader_status(r) : ST_EINTERNAL;
    }
}

/* 0 accepted, 1 rejected, -1 when the three layers disagree. */
static int judge(const char *data, size_t len, char *why, size_t why_len)
{
    st_error e1 = { 0 }, e2 = { 0 }, e3 = { 0 };
    st_status v = json_validate(data, len, NULL, &e1);

    st_arena arena;
    st_arena_init(&arena, 0);
    json_value *root = NULL;
    st_status d = json_parse(data, len, NULL, &arena, &root, &e2);
    st_arena_free(&arena);

    st_arena_init(&arena, 0);
    json_reader r;
    json_reader_init(&r, data, len, NULL, &arena, &e3);
    st_status c = walk(&r);
    if (c == ST_OK)
        c = json_reader_finish(&r);
    st_arena_free(&arena);

    if ((v == ST_OK) != (d == ST_OK) || (v == ST_OK) != (c == ST_OK)) {
        snprintf(why, why_len, "layers disagree: validate %s (%s), dom %s (%s), cursor %s (%s)",
                 st_status_name(v), st_error_msg(&e1), st_status_name(d), st_error_msg(&e2),
                 st_status_name(c), st_error_msg(&e3));
        return -1;
    }
    snprintf(why, why_len, "%s", v == ST_OK ? "accepted" : st_error_msg(&e1));
    return v == ST_OK ? 0 : 1;
}

static void run_suite(char prefix)
{
    const char *shared = testing_shared_dir();
    char dir[1024];
    if (!shared) {
        print_message("skipped: ../shared/testdata is absent (JSONTestSuite not available)\n");
        skip();
    }
    snprintf(dir, sizeof dir, "%s/%s", shared, SUITE_DIR);
    DIR *d = opendir(dir);
    if (!d) {
        print_message("skipped: %s is absent (JSONTestSuite not available)\n", dir);
        skip();
    }
    size_t n = 0, cap = 512;
    suite_file *files = malloc(cap * sizeof *files);
    assert_non_null(files);
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] != prefix || ent->d_name[1] != '_')
            continue;
        if (n == cap) {
            cap *= 2;
            files = realloc(files, cap * sizeof *files);
            assert_non_null(files);
        }
        snprintf(files[n].name, sizeof files[n].name, "%s", ent->d_name);
        snprintf(files[n].path, sizeof files[n].path, "%s/%s", dir, ent->d_name);
        n++;
    }
    closedir(d);
    qsort(files, n, sizeof *files, cmp_files);

    char failures[2048] = "";
    size_t nfail = 0, used = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        char *data = read_file(files[i].path, &len);
        assert_non_null(data);
        char why[1500];
        int verdict = judge(data, len, why, sizeof why);
        free(data);
        bool bad = verdict < 0 || (prefix == 'y' && verdict != 0) || (prefix == 'n' && verdict != 1);
        if (bad) {
            nfail++;
            if (used < sizeof failures - 1) {
                int w = snprintf(failures + used, sizeof failures - used, "\n  %s: %s",
                                 files[i].name, why);
                if (w > 0)
                    used += (size_t)w;
            }
        }
    }
    free(files);
    print_message("%c_* files: %zu checked\n", prefix, n);
    if (nfail)
        fail_msg("%zu of %zu %c_* files failed:%s", nfail, n, prefix, failures);
    assert_true(n > 0);
}

static void test_suite_y_accepted(void **state)
{
    (void)state;
    run_suite('y');
}

static void test_suite_n_rejected(void **state)
{
    (void)state;
    run_suite('n');
}

static void test_suite_i_no_crash(void **state)
{
    (void)state;
    run_suite('i');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite_y_accepted),
        cmocka_unit_test(test_suite_n_rejected),
        cmocka_unit_test(test_suite_i_no_crash),
    };
    return cmocka_run_group_tests_name("json_suite", tests, NULL, NULL);
}
