/* test_serve_batcher.c - unit tests for the dynamic batcher of `stratus
 * serve`: every request is answered once with its own rows (merged runs
 * give the same numbers as single runs), max_queue_delay_us gathers a
 * full batch, a full queue refuses with ST_EBUSY, requests that cannot
 * merge run alone, and stopping answers what is queued. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "testing.h"

#include "base/alloc.h"
#include "serve/serve_int.h"

#define MODEL_PATH "examples/models/iris/2/model.onnx"
#define N_ITEMS 64

typedef struct job {
    sv_item item;
    float x[4 * 4];
    int64_t rows;
    eng_tensor input;
    float probs[4 * 3];
    int64_t labels[4];
    int64_t batch_rows;
    st_status status;
    _Atomic int done_calls;
} job;

static _Atomic int total_done;

static void on_done(sv_item *it, const sv_result *res)
{
    job *j = (job *)(void *)it;
    j->status = res->status;
    j->batch_rows = res->batch_rows;
    if (res->status == ST_OK) {
        assert_int_equal(res->n_outputs, 2);
        assert_int_equal(res->outputs[0].shape[0], j->rows);
        memcpy(j->probs, res->outputs[0].data, (size_t)j->rows * 3 * sizeof(float));
        memcpy(j->labels, res->outputs[1].data, (size_t)j->rows * sizeof(int64_t));
    }
    atomic_fetch_add(&j->done_calls, 1);
    atomic_fetch_add(&total_done, 1);
}

/* A version by hand, as the manager would make it. */
static sv_version *make_version(int n_workers, int64_t max_batch, int64_t delay_us, int64_t queue_size)
{
    static sv_model model; /* stats only */
    memset(&model, 0, sizeof model);
    snprintf(model.name, sizeof model.name, "iris");
    sv_version *v = st_calloc(1, sizeof *v);
    st_error err = { 0 };
    assert_int_equal(eng_load_file(MODEL_PATH, NULL, &v->engine, &err), ST_OK);
    atomic_init(&v->refs, 1);
    v->model = &model;
    snprintf(v->number_text, sizeof v->number_text, "2");
    v->inputs = st_calloc(1, sizeof *v->inputs);
    v->outputs = st_calloc(2, sizeof *v->outputs);
    v->inputs[0] = *eng_input(v->engine, 0);
    v->outputs[0] = *eng_output(v->engine, 0);
    v->outputs[1] = *eng_output(v->engine, 1);
    v->sig = (sv_model_sig){ .name = "iris", .version = "2", .inputs = v->inputs, .n_inputs = 1,
                             .outputs = v->outputs, .n_outputs = 2, .platform = "onnx" };
    v->config.max_batch_size = max_batch;
    v->config.max_queue_delay_us = delay_us;
    v->config.max_queue_size = queue_size;
    v->config.instances = n_workers;
    atomic_init(&v->is_batchable, max_batch > 1);
    v->sessions = st_calloc((size_t)n_workers, sizeof *v->sessions);
    v->n_sessions = n_workers;
    return v;
}

static void fill_job(job *j, sv_version *v, int seed, int64_t rows)
{
    memset(j, 0, sizeof *j);
    j->rows = rows;
    for (int i = 0; i < 4 * rows; i++)
        j->x[i] = (float)((seed * 7 + i * 3) % 23) * 0.3f;
    j->input = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ rows, 4 }, 2, j->x);
    j->item = (sv_item){ .version = v, .inputs = &j->input, .rows = rows, .done = on_done };
}

/* The outputs of one request run alone on its own session. */
static void check_against_single(sv_version *v, job *jobs, int n)
{
    eng_session *s = NULL;
    st_error err = { 0 };
    assert_int_equal(eng_session_new(v->engine, &s, &err), ST_OK);
    for (int i = 0; i < n; i++) {
        eng_tensor out[2];
        assert_int_equal(atomic_load(&jobs[i].done_calls), 1);
        assert_int_equal(jobs[i].status, ST_OK);
        assert_int_equal(eng_run(s, &jobs[i].input, 1, out, 2, &err), ST_OK);
        const float *p = out[0].data;
        for (int k = 0; k < jobs[i].rows * 3; k++)
            if (p[k] - jobs[i].probs[k] > 1e-5f || jobs[i].probs[k] - p[k] > 1e-5f)
                fail_msg("job %d: probability %d is %g, alone %g", i, k, (double)jobs[i].probs[k], (double)p[k]);
        for (int k = 0; k < jobs[i].rows; k++)
            assert_int_equal(jobs[i].labels[k], ((const int64_t *)out[1].data)[k]);
    }
    eng_session_free(s);
}

static void test_every_request_gets_its_rows(void **state)
{
    (void)state;
    static job jobs[N_ITEMS];
    sv_batcher *b = NULL;
    st_error err = { 0 };
    assert_int_equal(sv_batcher_start(2, &b, &err), ST_OK);
    sv_version *v = make_version(2, 16, 0, 1024);
    atomic_store(&total_done, 0);
    for (int i = 0; i < N_ITEMS; i++) {
        fill_job(&jobs[i], v, i, 1 + i % 4);
        assert_int_equal(sv_batcher_submit(b, &jobs[i].item), ST_OK);
    }
    sv_batcher_free(b); /* answers everything queued */
    assert_int_equal(atomic_load(&total_done), N_ITEMS);
    check_against_single(v, jobs, N_ITEMS);
    sv_version_release(v);
}

static void test_delay_gathers_a_full_batch(void **state)
{
    (void)state;
    static job jobs[8];
    sv_batcher *b = NULL;
    st_error err = { 0 };
    assert_int_equal(sv_batcher_start(1, &b, &err), ST_OK);
    /* Ten seconds of delay: only reaching max_batch_size starts the run. */
    sv_version *v = make_version(1, 8, 10 * 1000 * 1000, 1024);
    atomic_store(&total_done, 0);
    for (int i = 0; i < 8; i++) {
        fill_job(&jobs[i], v, i, 1);
        assert_int_equal(sv_batcher_submit(b, &jobs[i].item), ST_OK);
    }
    for (int spins = 0; atomic_load(&total_done) < 8 && spins < 5000; spins++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&total_done), 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(jobs[i].batch_rows, 8);
    check_against_single(v, jobs, 8);
    sv_batcher_free(b);
    sv_version_release(v);
}

static void test_full_queue_is_busy(void **state)
{
    (void)state;
    static job jobs[3];
    sv_batcher *b = NULL;
    st_error err = { 0 };
    assert_int_equal(sv_batcher_start(1, &b, &err), ST_OK);
    sv_version *v = make_version(1, 100, 10 * 1000 * 1000, 2);
    atomic_store(&total_done, 0);
    for (int i = 0; i < 3; i++)
        fill_job(&jobs[i], v, i, 1);
    assert_int_equal(sv_batcher_submit(b, &jobs[0].item), ST_OK);
    assert_int_equal(sv_batcher_submit(b, &jobs[1].item), ST_OK);
    assert_int_equal(sv_batcher_submit(b, &jobs[2].item), ST_EBUSY);
    sv_batcher_free(b); /* stopping runs the queued ones without waiting */
    assert_int_equal(atomic_load(&total_done), 2);
    assert_int_equal(atomic_load(&jobs[2].done_calls), 0);
    check_against_single(v, jobs, 2);
    sv_version_release(v);
}

static void test_unmergeable_run_alone(void **state)
{
    (void)state;
    static job jobs[6];
    sv_batcher *b = NULL;
    st_error err = { 0 };
    assert_int_equal(sv_batcher_start(1, &b, &err), ST_OK);
    sv_version *v = make_version(1, 64, 0, 1024);
    atomic_store(&total_done, 0);
    for (int i = 0; i < 6; i++) {
        fill_job(&jobs[i], v, i, 2);
        if (i % 2)
            jobs[i].item.rows = -1; /* no batch axis as far as the batcher knows */
        assert_int_equal(sv_batcher_submit(b, &jobs[i].item), ST_OK);
    }
    sv_batcher_free(b);
    assert_int_equal(atomic_load(&total_done), 6);
    for (int i = 1; i < 6; i += 2)
        assert_int_equal(jobs[i].batch_rows, -1);
    check_against_single(v, jobs, 6);
    sv_version_release(v);
}

static void test_bad_request_does_not_fail_neighbours(void **state)
{
    (void)state;
    static job jobs[4];
    static float wide[4 * 5];
    sv_batcher *b = NULL;
    st_error err = { 0 };
    assert_int_equal(sv_batcher_start(1, &b, &err), ST_OK);
    sv_version *v = make_version(1, 64, 10 * 1000 * 1000, 1024);
    atomic_store(&total_done, 0);
    for (int i = 0; i < 4; i++)
        fill_job(&jobs[i], v, i, 1);
    /* Job 2 has 5 features: it must fail alone, and not merge. */
    jobs[2].input = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ 1, 5 }, 2, wide);
    for (int i = 0; i < 4; i++)
        assert_int_equal(sv_batcher_submit(b, &jobs[i].item), ST_OK);
    sv_batcher_free(b);
    assert_int_equal(atomic_load(&total_done), 4);
    assert_int_not_equal(jobs[2].status, ST_OK);
    job ok[3] = { jobs[0], jobs[1], jobs[3] };
    for (int i = 0; i < 3; i++)
        ok[i].input.data = ok[i].x;
    check_against_single(v, ok, 3);
    sv_version_release(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_request_gets_its_rows),
        cmocka_unit_test(test_delay_gathers_a_full_batch),
        cmocka_unit_test(test_full_queue_is_busy),
        cmocka_unit_test(test_unmergeable_run_alone),
        cmocka_unit_test(test_bad_request_does_not_fail_neighbours),
    };
    return cmocka_run_group_tests_name("serve_batcher", tests, NULL, NULL);
}
