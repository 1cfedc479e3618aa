/* tensors.h - reading the --input NAME=FILE tensors of predict and bench
 * (.npy mapped zero-copy, or ONNX TensorProto .pb) and matching them to a
 * model's declared inputs. */
#ifndef ST_CLI_TENSORS_H
#define ST_CLI_TENSORS_H

#include "base/arena.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "npy/npy.h"

typedef struct cli_inputs {
    size_t n;                /* the model's input count */
    eng_tensor *tensors;     /* in the model's input order */
    bool *is_given;          /* which ones came from --input */
    npy_file *npy;           /* mappings to close */
    st_arena arena;          /* .pb data, arrays above */
} cli_inputs;

/* Loads every --input spec and matches it to the model's inputs.  With
 * `require_all`, a missing input is a usage error listing the model's
 * inputs.  Prints its own error; returns CLI_EXIT_OK, _USAGE or _FAIL. */
int cli_inputs_load(const cli_verb *verb, const eng_model *model, const cli_multi *specs, bool require_all,
                    cli_inputs *out);
void cli_inputs_free(cli_inputs *in);

#endif
