/* tensors.c - --input NAME=FILE handling shared by predict and bench. */
#include "cli/tensors.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/file.h"

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int load_one(const cli_verb *verb, const char *path, cli_inputs *in, size_t slot)
{
    st_error err = { 0 };
    eng_tensor *t = &in->tensors[slot];
    if (has_suffix(path, ".npy")) {
        npy_file *f = &in->npy[slot];
        if (npy_read_file(path, f, NULL, &err) != ST_OK)
            return cli_fail(verb, "%s", st_error_msg(&err));
        if (f->array.rank > ENG_MAX_RANK)
            return cli_fail(verb, "%s: rank %zu is above %d", path, f->array.rank, ENG_MAX_RANK);
        int64_t shape[ENG_MAX_RANK];
        for (size_t i = 0; i < f->array.rank; i++)
            shape[i] = (int64_t)f->array.shape[i];
        *t = eng_tensor_make(f->array.dtype, shape, (uint32_t)f->array.rank, (void *)f->array.data);
        return CLI_EXIT_OK;
    }
    if (has_suffix(path, ".pb")) {
        st_buf bytes = { 0 };
        /* The tensor's strings point into the bytes: keep them in the arena. */
        if (st_file_read_all(path, &bytes, 0, &err) != ST_OK)
            return cli_fail(verb, "%s", st_error_msg(&err));
        uint8_t *kept = st_arena_alloc(&in->arena, bytes.len ? bytes.len : 1, 64);
        if (!kept) {
            st_buf_free(&bytes);
            return cli_fail(verb, "out of memory reading %s", path);
        }
        memcpy(kept, bytes.data, bytes.len);
        size_t len = bytes.len;
        st_buf_free(&bytes);
        if (eng_tensor_from_pb(kept, len, &in->arena, t, NULL, &err) != ST_OK)
            return cli_fail(verb, "%s: %s", path, st_error_msg(&err));
        return CLI_EXIT_OK;
    }
    return cli_usage_error(verb, "cannot tell the format of '%s': inputs are .npy or .pb (ONNX TensorProto)", path);
}

static void list_inputs(const eng_model *model, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < eng_n_inputs(model) && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", eng_input(model, i)->name);
}

int cli_inputs_load(const cli_verb *verb, const eng_model *model, const cli_multi *specs, bool require_all,
                    cli_inputs *in)
{
    memset(in, 0, sizeof *in);
    st_arena_init(&in->arena, 0);
    size_t n = eng_n_inputs(model);
    in->n = n;
    in->tensors = st_calloc(n + 1, sizeof *in->tensors);
    in->is_given = st_calloc(n + 1, sizeof *in->is_given);
    in->npy = st_calloc(n + 1, sizeof *in->npy);
    if (!in->tensors || !in->is_given || !in->npy)
        return cli_fail(verb, "out of memory");
    char names[1024];
    list_inputs(model, names, sizeof names);
    for (size_t s = 0; s < specs->count; s++) {
        const char *spec = specs->values[s];
        const char *eq = strchr(spec, '=');
        size_t slot = n;
        const char *path = spec;
        if (!eq) {
            if (n != 1)
                return cli_usage_error(verb, "--input %s: name the input (NAME=FILE); the model's inputs are: %s",
                                       spec, names);
            slot = 0;
        } else {
            st_str name = st_str_make(spec, (size_t)(eq - spec));
            path = eq + 1;
            for (size_t i = 0; i < n; i++)
                if (st_str_eq_c(name, eng_input(model, i)->name))
                    slot = i;
            if (slot == n) {
                const char *near = NULL;
                size_t best = 4;
                for (size_t i = 0; i < n; i++) {
                    size_t d = st_str_edit_distance(name, st_str_c(eng_input(model, i)->name), 8);
                    if (d < best) {
                        best = d;
                        near = eng_input(model, i)->name;
                    }
                }
                if (near)
                    return cli_usage_error(verb, "the model has no input '%.*s'; did you mean '%s'?",
                                           ST_STR_FMT(name), near);
                return cli_usage_error(verb, "the model has no input '%.*s'; its inputs are: %s", ST_STR_FMT(name),
                                       names);
            }
        }
        if (in->is_given[slot])
            return cli_usage_error(verb, "input '%s' is given twice", eng_input(model, slot)->name);
        int rc = load_one(verb, path, in, slot);
        if (rc != CLI_EXIT_OK)
            return rc;
        in->is_given[slot] = true;
    }
    if (require_all)
        for (size_t i = 0; i < n; i++)
            if (!in->is_given[i])
                return cli_usage_error(verb, "missing --input for '%s'; the model's inputs are: %s",
                                       eng_input(model, i)->name, names);
    return CLI_EXIT_OK;
}

void cli_inputs_free(cli_inputs *in)
{
    if (in->npy)
        for (size_t i = 0; i < in->n; i++)
            if (in->is_given && in->is_given[i])
                npy_file_close(&in->npy[i]);
    st_free(in->tensors);
    st_free(in->is_given);
    st_free(in->npy);
    st_arena_free(&in->arena);
    memset(in, 0, sizeof *in);
}
