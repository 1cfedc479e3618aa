/* fuzz/mlmodel.c - libFuzzer driver for the MLflow MLmodel parser.
 *
 * Any bytes must parse or fail with a message, never crash, read outside
 * the input or hand back a model path that leaves the folder.  The input
 * is copied to a buffer of exactly its size so ASan sees any overread. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "base/alloc.h"
#include "registry/registry.h"

#define CHECK(cond)  \
    do {             \
        if (!(cond)) \
            abort(); \
    } while (0)

static bool is_servable(const char *flavor)
{
    return strcmp(flavor, "onnx") == 0 || strcmp(flavor, "xgboost") == 0 ||
           strcmp(flavor, "lightgbm") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    reg_mlmodel m;
    st_error err = { 0 };
    st_status s = reg_mlmodel_parse(copy, size, &m, &err);
    if (s == ST_OK) {
        CHECK(is_servable(m.flavor));
        size_t len = strnlen(m.data, sizeof m.data);
        CHECK(len > 0 && len < sizeof m.data);
        CHECK(m.data[0] != '/' && !strchr(m.data, '\\'));
        CHECK(strcmp(m.data, "..") != 0 && strncmp(m.data, "../", 3) != 0 && !strstr(m.data, "/../"));
        CHECK(len < 3 || strcmp(m.data + len - 3, "/..") != 0);
        for (size_t i = 0; i < len; i++)
            CHECK((unsigned char)m.data[i] >= 0x20 && m.data[i] != 0x7f);
        CHECK(strnlen(m.run_id, sizeof m.run_id) < sizeof m.run_id);
    } else {
        CHECK(err.msg[0] != '\0');
        CHECK(err.code == s);
    }
    free(copy);
    return 0;
}
