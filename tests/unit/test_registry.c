/* test_registry.c - the model registry: naming rules, references,
 * migrations, push/alias/rm, blob verification, fsck and gc, the MLmodel
 * parser, and allocation failures at every step of a push. */
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"

#include "base/alloc.h"
#include "registry/reg_int.h"
#include "registry/registry.h"

/* ---- fixtures ---------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    char home[128];
    char model_a[128];
    char model_b[128];
    reg_store *reg;
} fixture;

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/st_registry_XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->home, sizeof f->home, "%s/home", f->dir);
    snprintf(f->model_a, sizeof f->model_a, "%s/a.onnx", f->dir);
    snprintf(f->model_b, sizeof f->model_b, "%s/b.onnx", f->dir);
    /* The registry stores bytes; checking that they load is the CLI's job. */
    write_file(f->model_a, "model a bytes");
    write_file(f->model_b, "model b bytes, different");
    st_error err = { 0 };
    if (reg_open(f->home, REG_OPEN_CREATE, &f->reg, &err) != ST_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture *f = *state;
    reg_close(f->reg);
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int64_t push(fixture *f, const char *name, const char *path, const char *alias)
{
    reg_kv metrics[] = { { "auc", "0.91" } };
    reg_kv params[] = { { "depth", "6" } };
    reg_push_request req = {
        .name = name, .model_path = path, .format = "onnx", .alias = alias,
        .metrics = metrics, .n_metrics = 1, .params = params, .n_params = 1,
    };
    int64_t version = 0;
    st_error err = { 0 };
    st_status s = reg_push(f->reg, &req, &version, &err);
    if (s != ST_OK)
        fprintf(stderr, "push: %s\n", err.msg);
    assert_int_equal(s, ST_OK);
    return version;
}

static size_t count_files(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    assert_int_equal(fscanf(p, "%zu", &n), 1);
    pclose(p);
    return n;
}

static reg_fsck_report fsck(fixture *f, bool gc)
{
    reg_fsck_report report;
    st_error err = { 0 };
    assert_int_equal(reg_fsck(f->reg, gc, NULL, NULL, &report, &err), ST_OK);
    return report;
}

/* ---- names and references ---------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    const char *good[] = { "churn", "churn-v2", "a.b_c", "Résumé", "x y" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(reg_check_name(st_str_c(good[i]), false, NULL), ST_OK);
    char long_name[REG_NAME_MAX + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    const char *bad[] = { "", "a/b", "a\\b", "..", "a..b", "a@b", "tab\there", "nl\n", " lead", "\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", long_name };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st_error err = { 0 };
        assert_int_equal(reg_check_name(st_str_c(bad[i]), false, &err), ST_EINVAL);
        assert_true(err.msg[0] != '\0');
    }
    long_name[REG_NAME_MAX] = '\0';
    assert_int_equal(reg_check_name(st_str_c(long_name), false, NULL), ST_OK);
    assert_int_equal(reg_check_name(ST_STR("123"), true, NULL), ST_EINVAL);
    assert_int_equal(reg_check_name(ST_STR("latest"), true, NULL), ST_EINVAL);
    assert_int_equal(reg_check_name(ST_STR("prod2"), true, NULL), ST_OK);
}

static void test_refs(void **state)
{
    (void)state;
    reg_ref ref;
    assert_int_equal(reg_parse_ref(ST_STR("churn"), &ref, NULL), ST_OK);
    assert_true(st_str_eq_c(ref.name, "churn") && ref.version == 0 && ref.alias.len == 0);
    assert_int_equal(reg_parse_ref(ST_STR("churn@12"), &ref, NULL), ST_OK);
    assert_int_equal(ref.version, 12);
    assert_int_equal(reg_parse_ref(ST_STR("churn@prod"), &ref, NULL), ST_OK);
    assert_true(st_str_eq_c(ref.alias, "prod"));
    assert_int_equal(reg_parse_ref(ST_STR("churn@latest"), &ref, NULL), ST_OK);
    assert_true(ref.version == 0 && ref.alias.len == 0);
    const char *bad[] = { "churn@", "@3", "churn@0", "churn@3x", "churn@a@b", "churn@99999999999999999999",
                          "../x@1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(reg_parse_ref(st_str_c(bad[i]), &ref, NULL), ST_EINVAL);
}

/* ---- migrations -------------------------------------------------------- */

static int user_version(const char *home)
{
    char path[256];
    snprintf(path, sizeof path, "%s/registry.db", home);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_migrations(void **state)
{
    fixture *f = *state;
    assert_int_equal(user_version(f->home), REG_SCHEMA_VERSION);
    char old_home[160];
    snprintf(old_home, sizeof old_home, "%s/old", f->dir);
    reg_store *r;
    st_error err = { 0 };
    assert_int_equal(reg_open_schema(old_home, REG_OPEN_CREATE, 1, &r, &err), ST_OK);
    assert_int_equal(reg_db_exec(r, "INSERT INTO models(name, created_at) VALUES ('kept', 'then')", &err), ST_OK);
    /* Schema 1 has no lineage table yet. */
    assert_int_not_equal(reg_db_exec(r, "SELECT * FROM lineage", NULL), ST_OK);
    reg_close(r);
    assert_int_equal(user_version(old_home), 1);

    assert_int_equal(reg_open(old_home, REG_OPEN_EXISTING, &r, &err), ST_OK);
    assert_int_equal(user_version(old_home), REG_SCHEMA_VERSION);
    assert_int_equal(reg_db_exec(r, "SELECT * FROM lineage", NULL), ST_OK);
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_model *models;
    size_t n;
    assert_int_equal(reg_list_models(r, &arena, &models, &n, &err), ST_OK);
    assert_int_equal(n, 1);
    assert_string_equal(models[0].name, "kept");
    st_arena_free(&arena);
    /* A schema from the future is refused, not half-used. */
    assert_int_equal(reg_db_exec(r, "PRAGMA user_version = 99", &err), ST_OK);
    reg_close(r);
    assert_int_equal(reg_open(old_home, REG_OPEN_EXISTING, &r, &err), ST_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "newer"));
    assert_null(r);
}

static void test_open_missing(void **state)
{
    fixture *f = *state;
    char home[160];
    snprintf(home, sizeof home, "%s/nothing", f->dir);
    reg_store *r;
    st_error err = { 0 };
    assert_int_equal(reg_open(home, REG_OPEN_EXISTING, &r, &err), ST_ENOTFOUND);
    assert_non_null(strstr(err.msg, "stratus push"));
    assert_int_not_equal(access(home, F_OK), 0); /* nothing was created */
}

/* ---- push, alias, rm ---------------------------------------------------- */

static void test_push_numbering_and_dedup(void **state)
{
    fixture *f = *state;
    assert_int_equal(push(f, "churn", f->model_a, "staging"), 1);
    assert_int_equal(push(f, "churn", f->model_b, NULL), 2);
    assert_int_equal(push(f, "churn", f->model_a, NULL), 3);
    assert_int_equal(push(f, "other", f->model_a, NULL), 1);
    /* Two distinct contents, two blobs. */
    assert_int_equal(count_files(f->reg->blob_dir), 2);

    st_arena arena;
    st_arena_init(&arena, 0);
    reg_version v;
    st_error err = { 0 };
    assert_int_equal(reg_get(f->reg, ST_STR("churn@staging"), &arena, &v, &err), ST_OK);
    assert_int_equal(v.version, 1);
    assert_int_equal(v.n_metrics, 1);
    assert_string_equal(v.metrics[0].key, "auc");
    assert_true(v.metrics[0].value == 0.91);
    assert_string_equal(v.params[0].value, "6");
    assert_int_equal(v.n_aliases, 1);
    assert_string_equal(v.lineage.user, v.created_by);
    assert_false(v.lineage.has_data);
    assert_int_equal(reg_get(f->reg, ST_STR("churn"), &arena, &v, &err), ST_OK);
    assert_int_equal(v.version, 3);
    assert_int_equal(reg_get(f->reg, ST_STR("churn@9"), &arena, &v, &err), ST_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no version 9"));
    assert_int_equal(reg_get(f->reg, ST_STR("churn@prod"), &arena, &v, &err), ST_ENOTFOUND);
    assert_int_equal(reg_get(f->reg, ST_STR("nope"), &arena, &v, &err), ST_ENOTFOUND);

    char path[REG_PATH_MAX];
    assert_int_equal(reg_resolve(f->reg, ST_STR("churn@2"), path, sizeof path, &err), ST_OK);
    assert_non_null(strstr(path, "/blobs/sha256/"));

    reg_version *versions;
    size_t n;
    assert_int_equal(reg_list_versions(f->reg, ST_STR("churn"), &arena, &versions, &n, &err), ST_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(versions[i].version, (int64_t)i + 1);
    st_arena_free(&arena);
}

static void test_data_lineage(void **state)
{
    fixture *f = *state;
    char data[160];
    snprintf(data, sizeof data, "%s/train.csv", f->dir);
    write_file(data, "age,\"income, net\",label\n30,1000,0\n40,2000,1\n50,3000,1");
    reg_push_request req = { .name = "churn", .model_path = f->model_a, .format = "onnx", .data_path = data };
    int64_t version;
    st_error err = { 0 };
    assert_int_equal(reg_push(f->reg, &req, &version, &err), ST_OK);
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_version v;
    assert_int_equal(reg_get(f->reg, ST_STR("churn@1"), &arena, &v, &err), ST_OK);
    assert_true(v.lineage.has_data);
    assert_int_equal(v.lineage.data_bytes, 53);
    assert_true(reg_is_hex64(v.lineage.data_sha256, strlen(v.lineage.data_sha256)));
    assert_string_equal(v.lineage.data_schema,
                        "{\"format\":\"csv\",\"columns\":[\"age\",\"income, net\",\"label\"],\"rows\":3}");
    st_arena_free(&arena);
}

static void test_alias_and_rm(void **state)
{
    fixture *f = *state;
    push(f, "churn", f->model_a, "staging");
    push(f, "churn", f->model_b, NULL);
    st_error err = { 0 };
    assert_int_equal(reg_set_alias(f->reg, ST_STR("churn"), 2, ST_STR("production"), &err), ST_OK);
    assert_int_equal(reg_set_alias(f->reg, ST_STR("churn"), 7, ST_STR("production"), &err), ST_ENOTFOUND);
    assert_int_equal(reg_set_alias(f->reg, ST_STR("churn"), 1, ST_STR("5"), &err), ST_EINVAL);
    /* An aliased version is kept unless forced. */
    assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), 2, false, &err), ST_EINVAL);
    assert_non_null(strstr(err.msg, "production"));
    assert_int_equal(reg_set_alias(f->reg, ST_STR("churn"), 1, ST_STR("production"), &err), ST_OK);
    assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), 2, false, &err), ST_OK);
    assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), 2, false, &err), ST_ENOTFOUND);
    /* Its blob went with it; version 1's stays. */
    assert_int_equal(count_files(f->reg->blob_dir), 1);
    /* Numbers are never reused. */
    assert_int_equal(push(f, "churn", f->model_b, NULL), 3);
    assert_int_equal(reg_remove_version(f->reg, ST_STR("churn"), 1, true, &err), ST_OK);

    st_arena arena;
    st_arena_init(&arena, 0);
    reg_model *models;
    size_t n;
    assert_int_equal(reg_list_models(f->reg, &arena, &models, &n, &err), ST_OK);
    assert_int_equal(n, 1);
    assert_int_equal(models[0].n_versions, 1);
    assert_int_equal(models[0].latest_version, 3);
    assert_int_equal(models[0].n_aliases, 0);

    /* Every change is in the audit log, oldest first. */
    reg_audit_entry *audit;
    assert_int_equal(reg_list_audit(f->reg, 0, &arena, &audit, &n, &err), ST_OK);
    const char *expect[] = { "push", "alias", "push", "alias", "alias", "rm", "push", "rm" };
    assert_int_equal(n, sizeof expect / sizeof expect[0]);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(audit[i].action, expect[i]);
    assert_string_equal(audit[4].target, "churn@production");
    assert_non_null(strstr(audit[4].before, "\"version\":2"));
    assert_non_null(strstr(audit[4].after, "\"version\":1"));
    assert_null(audit[5].after);
    assert_int_equal(reg_list_audit(f->reg, 2, &arena, &audit, &n, &err), ST_OK);
    assert_int_equal(n, 2);
    assert_string_equal(audit[1].target, "churn@1");
    st_arena_free(&arena);
    assert_int_equal(fsck(f, false).damaged, 0);
}

static void test_failed_push_changes_nothing(void **state)
{
    fixture *f = *state;
    push(f, "churn", f->model_a, NULL);
    st_error err = { 0 };
    int64_t version = 0;
    reg_kv bad_metric[] = { { "auc", "high" } };
    reg_kv twice[] = { { "k", "1" }, { "k", "2" } };
    reg_push_request reqs[] = {
        { .name = "churn", .model_path = f->model_b, .metrics = bad_metric, .n_metrics = 1 },
        { .name = "churn", .model_path = f->model_b, .tags = twice, .n_tags = 2 },
        { .name = "churn", .model_path = f->model_b, .alias = "42" },
        { .name = "ch/urn", .model_path = f->model_b },
        { .name = "churn", .model_path = "/nonexistent/model.onnx" },
        { .name = "churn", .model_path = f->model_b, .data_path = "/nonexistent/train.csv" },
        { .name = "churn", .model_path = f->dir },
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        err.msg[0] = '\0';
        assert_int_not_equal(reg_push(f->reg, &reqs[i], &version, &err), ST_OK);
        assert_true(err.msg[0] != '\0');
    }
    assert_int_equal(push(f, "churn", f->model_b, NULL), 2);
    assert_int_equal(fsck(f, false).damaged, 0);
}

/* ---- blobs and fsck ----------------------------------------------------- */

static void blob_of(fixture *f, const char *ref, char *path, size_t cap)
{
    st_arena arena;
    st_arena_init(&arena, 0);
    reg_version v;
    assert_int_equal(reg_get(f->reg, st_str_c(ref), &arena, &v, NULL), ST_OK);
    reg_blob_path(f->reg, v.sha256, path, cap);
    st_arena_free(&arena);
}

static void test_corrupt_blob(void **state)
{
    fixture *f = *state;
    push(f, "churn", f->model_a, NULL);
    push(f, "churn", f->model_b, NULL);
    char path[REG_PATH_MAX], resolved[REG_PATH_MAX];
    blob_of(f, "churn@1", path, sizeof path);
    chmod(path, 0644);
    write_file(path, "model A bytes"); /* same size, one byte flipped */
    st_error err = { 0 };
    assert_int_equal(reg_resolve(f->reg, ST_STR("churn@1"), resolved, sizeof resolved, &err), ST_ECORRUPT);
    assert_non_null(strstr(err.msg, "churn@1"));
    assert_non_null(strstr(err.msg, "fsck"));
    assert_int_equal(reg_resolve(f->reg, ST_STR("churn@2"), resolved, sizeof resolved, &err), ST_OK);
    reg_fsck_report r = fsck(f, false);
    assert_int_equal(r.damaged, 1);
    assert_int_equal(r.versions, 2);
    /* A truncated blob fails on size before hashing. */
    write_file(path, "short");
    assert_int_equal(reg_resolve(f->reg, ST_STR("churn@1"), resolved, sizeof resolved, &err), ST_ECORRUPT);
    /* Pushing the same content again repairs the blob. */
    push(f, "churn", f->model_a, NULL);
    assert_int_equal(fsck(f, false).damaged, 0);
    /* A missing blob is damage too. */
    blob_of(f, "churn@2", path, sizeof path);
    unlink(path);
    assert_int_equal(reg_resolve(f->reg, ST_STR("churn@2"), resolved, sizeof resolved, &err), ST_ENOTFOUND);
    assert_int_equal(fsck(f, false).damaged, 1);
}

static void test_fsck_gc(void **state)
{
    fixture *f = *state;
    push(f, "churn", f->model_a, NULL);
    char orphan[REG_PATH_MAX + 80], temp[REG_PATH_MAX + 80], stray[REG_PATH_MAX + 80];
    snprintf(orphan, sizeof orphan, "%s/%064d", f->reg->blob_dir, 7);
    snprintf(temp, sizeof temp, "%s/.tmp-999999999-1", f->reg->blob_dir); /* no such pid */
    snprintf(stray, sizeof stray, "%s/README", f->reg->blob_dir);
    write_file(orphan, "x");
    write_file(temp, "x");
    write_file(stray, "x");
    reg_fsck_report r = fsck(f, false);
    assert_int_equal(r.damaged, 0);
    assert_int_equal(r.other, 3);
    assert_int_equal(r.removed, 0);
    r = fsck(f, true);
    assert_int_equal(r.removed, 2);
    assert_int_not_equal(access(orphan, F_OK), 0);
    assert_int_not_equal(access(temp, F_OK), 0);
    assert_int_equal(access(stray, F_OK), 0); /* not ours: left alone */
    r = fsck(f, false);
    assert_int_equal(r.other, 1);
    char resolved[REG_PATH_MAX];
    assert_int_equal(reg_resolve(f->reg, ST_STR("churn@1"), resolved, sizeof resolved, NULL), ST_OK);
}

static void test_fsck_dangling_alias(void **state)
{
    fixture *f = *state;
    push(f, "churn", f->model_a, "staging");
    push(f, "other", f->model_b, NULL);
    /* Damage no API call can make: an alias crossing models. */
    assert_int_equal(reg_db_exec(f->reg,
                                 "UPDATE aliases SET version_id = (SELECT v.id FROM versions v "
                                 "JOIN models m ON m.id = v.model_id WHERE m.name = 'other')",
                                 NULL),
                     ST_OK);
    assert_int_equal(fsck(f, false).damaged, 1);
}

/* ---- allocation failures -------------------------------------------------- */

/* Every allocation of a push (ours and SQLite's) fails in turn: the push
 * either fails cleanly or succeeds whole, and the registry stays clean. */
static void test_push_alloc_failures(void **state)
{
    fixture *f = *state;
    push(f, "churn", f->model_a, "staging");
    int64_t expect = 2;
    /* Every point early on (opening, validation, the blob), then every
     * fourth: a push makes ~500 allocations, most inside SQLite. */
    for (uint64_t n = 1; n < 5000; n += n < 64 ? 1 : 4) {
        reg_kv metrics[] = { { "auc", "0.5" } };
        reg_push_request req = { .name = "churn", .model_path = f->model_b, .alias = "staging",
                                 .metrics = metrics, .n_metrics = 1 };
        int64_t version = 0;
        st_error err = { 0 };
        uint64_t before = st_alloc_count();
        st_alloc_fail_after(n);
        st_status s = reg_push(f->reg, &req, &version, &err);
        uint64_t used = st_alloc_count() - before;
        st_alloc_fail_reset();
        /* SQLite may keep a statement cache or a poisoned state: reopen. */
        reg_close(f->reg);
        assert_int_equal(reg_open(f->home, REG_OPEN_EXISTING, &f->reg, &err), ST_OK);
        st_arena arena;
        st_arena_init(&arena, 0);
        reg_version v;
        assert_int_equal(reg_get(f->reg, ST_STR("churn"), &arena, &v, &err), ST_OK);
        if (s == ST_OK) {
            assert_int_equal(version, expect);
            assert_int_equal(v.version, expect);
            assert_int_equal(v.n_metrics, 1);
            assert_int_equal(v.n_aliases, 1);
            expect++;
        } else {
            assert_true(err.msg[0] != '\0');
            assert_int_equal(v.version, expect - 1); /* nothing half-registered */
        }
        st_arena_free(&arena);
        assert_int_equal(fsck(f, true).damaged, 0);
        if (s == ST_OK && used < n)
            break; /* the failure point is past the whole push */
    }
    assert_true(expect > 2);
}

/* ---- MLmodel --------------------------------------------------------------- */

static st_status parse_ml(const char *text, reg_mlmodel *out, st_error *err)
{
    return reg_mlmodel_parse((const uint8_t *)text, strlen(text), out, err);
}

static void test_mlmodel(void **state)
{
    (void)state;
    reg_mlmodel m;
    st_error err = { 0 };
    const char *onnx =
        "artifact_path: model\n"
        "flavors:\n"
        "  onnx:\n"
        "    code: null\n"
        "    data: model.onnx  # the graph\n"
        "    onnx_version: 1.14.0\n"
        "    providers:\n"
        "    - CUDAExecutionProvider\n"
        "    - CPUExecutionProvider\n"
        "  python_function:\n"
        "    data: ignored.onnx\n"
        "    loader_module: mlflow.onnx\n"
        "mlflow_version: 2.8.0\n"
        "run_id: 1b2c3d\n"
        "utc_time_created: '2023-11-01 10:00:00.000000'\n";
    assert_int_equal(parse_ml(onnx, &m, &err), ST_OK);
    assert_string_equal(m.flavor, "onnx");
    assert_string_equal(m.data, "model.onnx");
    assert_string_equal(m.run_id, "1b2c3d");

    const char *xgb =
        "flavors:\r\n"
        "  python_function: {data: model.xgb, loader_module: mlflow.xgboost}\r\n"
        "  xgboost:\r\n"
        "    data: \"dir/model.xgb\"\r\n"
        "    model_class: xgboost.sklearn.XGBClassifier\r\n";
    assert_int_equal(parse_ml(xgb, &m, &err), ST_OK);
    assert_string_equal(m.flavor, "xgboost");
    assert_string_equal(m.data, "dir/model.xgb");

    /* onnx wins over xgboost whatever the order. */
    assert_int_equal(parse_ml("flavors:\n  xgboost:\n    data: a.xgb\n  onnx:\n    data: 'it''s.onnx'\n", &m, &err),
                     ST_OK);
    assert_string_equal(m.data, "it's.onnx");

    assert_int_equal(parse_ml("flavors:\n  sklearn:\n    pickled_model: model.pkl\n", &m, &err),
                     ST_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "sklearn"));
    assert_int_equal(parse_ml("artifact_path: x\n", &m, &err), ST_ECORRUPT);
    assert_int_equal(parse_ml("flavors:\n  onnx:\n    data: ../../etc/passwd\n", &m, &err), ST_EINVAL);
    assert_int_equal(parse_ml("flavors:\n  onnx:\n    data: /etc/passwd\n", &m, &err), ST_EINVAL);
    assert_int_equal(parse_ml("flavors:\n\tonnx:\n", &m, &err), ST_ECORRUPT);
    assert_int_equal(parse_ml("flavors:\n  onnx:\n    data: \"open\n", &m, &err), ST_ECORRUPT);
    assert_int_equal(parse_ml("flavors:\n    onnx:\n  xgboost:\n", &m, &err), ST_ECORRUPT);
    assert_int_equal(parse_ml("just text\n", &m, &err), ST_ECORRUPT);
    assert_int_equal(parse_ml("flavors:\n  onnx:\n    data: null\n", &m, &err), ST_EUNSUPPORTED);
    static const char with_nul[] = "flavors:\n  onnx:\n    data: a\0b\n";
    assert_int_equal(reg_mlmodel_parse((const uint8_t *)with_nul, sizeof with_nul - 1, &m, &err), ST_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_mlmodel),
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_numbering_and_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_lineage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_and_rm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_push_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsck_gc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsck_dangling_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
