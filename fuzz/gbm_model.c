/* gbm_model.c - libFuzzer target for the XGBoost (JSON, UBJSON) and
 * LightGBM (text) loaders.  Each input goes through eng_load_memory (the
 * front end by content, then tree_compile); a model that loads is run on
 * rows of NaN, zeros and values taken from the input bytes, and its
 * outputs must have the declared shape.  The UBJSON reader also runs on
 * every input directly, so its paths are reached without a valid model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz.h"
#include "engine/engine.h"
#include "engine/gbm_int.h"

#define CHECK(cond)          \
    do {                     \
        if (!(cond))         \
            abort();         \
    } while (0)

/* Rows to score: a NaN row, a zero row, then rows from the input bytes
 * (small integers, to hit categories, and their negatives). */
static void run_model(eng_model *m, const uint8_t *data, size_t size)
{
    const eng_io *in = eng_input(m, 0);
    CHECK(in && in->rank == 2 && in->dims[1] > 0);
    size_t cols = (size_t)in->dims[1];
    if (cols > 4096)
        return;
    size_t rows = 4;
    float *x = calloc(rows * cols, sizeof *x);
    CHECK(x);
    for (size_t c = 0; c < cols; c++) {
        x[c] = NAN;
        uint8_t b = size ? data[(c * 7) % size] : 0;
        x[2 * cols + c] = (float)(b % 40);
        x[3 * cols + c] = b & 1 ? -(float)(b % 7) - 0.5f : (float)b * 0.37f;
    }
    eng_session *s = NULL;
    st_error err = { 0 };
    CHECK(eng_session_new(m, &s, &err) == ST_OK);
    eng_tensor t = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ (int64_t)rows, (int64_t)cols }, 2, x);
    eng_tensor out;
    CHECK(eng_run(s, &t, 1, &out, 1, &err) == ST_OK);
    const eng_io *o = eng_output(m, 0);
    CHECK(out.dtype == ST_DT_FLOAT32 && (int)out.rank == o->rank && out.shape[0] == (int64_t)rows);
    volatile float sink = 0;
    for (size_t i = 0; i < out.count; i++)
        sink += ((const float *)out.data)[i];
    (void)sink;
    eng_session_free(s);
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_arena arena;
    st_arena_init(&arena, 0);
    st_error err = { 0 };
    json_value *v;
    (void)ubj_parse(data, size, &arena, &v, &err);
    st_arena_free(&arena);

    eng_model *m = NULL;
    if (gbm_detect(data, size) != GBM_FORMAT_NONE && eng_load_memory(data, size, NULL, NULL, &m, &err) == ST_OK) {
        run_model(m, data, size);
        eng_free(m);
    }
    return 0;
}
