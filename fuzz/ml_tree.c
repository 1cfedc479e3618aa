/* ml_tree.c - libFuzzer driver for the ONNX-ML tree ensembles: loads the
 * input as a model (TreeEnsemble* attributes become a tree_ir that
 * tree_compile checks) and, when it loads, runs it on four rows whose
 * values (NaN included) come from the input's last bytes.  The seed corpus
 * holds small regressor, classifier and opset-5 models. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/engine.h"
#include "fuzz.h"

#define FUZZ_ROWS 4
#define FUZZ_MAX_COLS 64

static float row_value(const uint8_t *data, size_t size, size_t i)
{
    uint8_t b = size ? data[(size - 1 - i % size)] : 0;
    if (b == 0xff)
        return NAN;
    return ((float)b - 128.0f) / 16.0f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eng_model *m = NULL;
    eng_session *s = NULL;
    st_error err = { 0 };
    if (eng_load_memory(data, size, NULL, NULL, &m, &err) != ST_OK)
        return 0;
    if (eng_n_inputs(m) != 1 || eng_n_outputs(m) > 4 || eng_session_new(m, &s, &err) != ST_OK)
        goto done;
    const eng_io *in = eng_input(m, 0);
    int64_t cols = in->rank == 2 && in->dims[1] > 0 ? in->dims[1] : 8;
    if (cols > FUZZ_MAX_COLS || in->dtype != ST_DT_FLOAT32)
        goto done;
    static float x[FUZZ_ROWS * FUZZ_MAX_COLS];
    for (size_t i = 0; i < (size_t)(FUZZ_ROWS * cols); i++)
        x[i] = row_value(data, size, i);
    eng_tensor input = eng_tensor_make(ST_DT_FLOAT32, (int64_t[]){ FUZZ_ROWS, cols }, 2, x);
    eng_tensor outputs[4];
    (void)eng_run(s, &input, 1, outputs, eng_n_outputs(m), &err);
done:
    eng_session_free(s);
    eng_free(m);
    return 0;
}
