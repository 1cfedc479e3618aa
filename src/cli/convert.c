/* convert.c - `stratus convert`: tensors between .npy and JSON, so that
 * request bodies can be made from arrays and responses read back as arrays. */
#include <stdio.h>
#include <string.h>

#include "base/arena.h"
#include "base/file.h"
#include "cli/cli.h"
#include "json/json.h"
#include "npy/npy.h"

typedef enum { FMT_NPY, FMT_JSON } tensor_format;

static bool format_of(const char *path, tensor_format *out)
{
    size_t n = strlen(path);
    if (n >= 4 && strcmp(path + n - 4, ".npy") == 0)
        *out = FMT_NPY;
    else if (n >= 5 && strcmp(path + n - 5, ".json") == 0)
        *out = FMT_JSON;
    else
        return false;
    return true;
}

/* Reads a nested JSON array into `values` (dtype elements) and its shape. */
static st_status read_json_tensor(const char *path, st_dtype dtype, st_buf *values, size_t *shape, size_t *rank,
                                  st_error *err)
{
    st_buf text = { 0 };
    json_limits limits = json_limits_default();
    limits.max_input_bytes = (size_t)1 << 32;
    limits.max_elements = (size_t)1 << 30;
    st_status s = st_file_read_all(path, &text, limits.max_input_bytes, err);
    if (s == ST_OK) {
        st_arena arena;
        st_arena_init(&arena, 0);
        json_reader r;
        json_reader_init(&r, text.data, text.len, &limits, &arena, err);
        json_read_numbers(&r, dtype, values, shape, NPY_MAX_RANK, rank);
        s = json_reader_finish(&r);
        st_arena_free(&arena);
        if (s != ST_OK)
            st_fail_wrap(err, s, "%s", path);
    }
    st_buf_free(&text);
    return s;
}

int cli_convert_run(const cli_verb *verb, int argc, char **argv)
{
    const char *dtype_name = NULL;
    bool flat = false;
    const cli_flag flags[] = {
        { "--dtype", CLI_STRING, &dtype_name, 0, 0 },
        { "--flat", CLI_BOOL, &flat, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[2];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 2, &npos))
        return CLI_EXIT_USAGE;
    if (npos != 2)
        return cli_usage_error(verb, "needs an input and an output file");
    tensor_format in_fmt, out_fmt;
    if (!format_of(pos[0], &in_fmt))
        return cli_usage_error(verb, "cannot tell the format of '%s': name it .npy or .json", pos[0]);
    if (!format_of(pos[1], &out_fmt))
        return cli_usage_error(verb, "cannot tell the format of '%s': name it .npy or .json", pos[1]);
    if (in_fmt == out_fmt)
        return cli_usage_error(verb, "input and output are both %s; convert goes between .npy and .json",
                               in_fmt == FMT_NPY ? ".npy" : ".json");
    st_dtype dtype = ST_DT_FLOAT32;
    if (dtype_name) {
        if (!st_dtype_parse(st_str_c(dtype_name), &dtype) || dtype == ST_DT_STRING || dtype == ST_DT_UNDEFINED)
            return cli_usage_error(verb, "unknown --dtype '%s' (float16, float32, float64, int8..int64, "
                                         "uint8..uint64, bool)", dtype_name);
        if (in_fmt == FMT_NPY)
            return cli_usage_error(verb, "--dtype applies to JSON input; a .npy file carries its own");
    }
    st_error err = { 0 };
    int rc = CLI_EXIT_OK;
    if (in_fmt == FMT_NPY) {
        npy_file f;
        if (npy_read_file(pos[0], &f, NULL, &err) != ST_OK)
            return cli_fail(verb, "%s", st_error_msg(&err));
        st_buf out = { 0 };
        json_writer w;
        json_writer_init(&w, &out, &err);
        json_write_numbers(&w, f.array.dtype, f.array.data, f.array.shape, f.array.rank, !flat);
        if (json_writer_finish(&w) != ST_OK || st_buf_append_byte(&out, '\n') != ST_OK ||
            st_file_write_atomic(pos[1], out.data, out.len, &err) != ST_OK)
            rc = cli_fail(verb, "%s", st_error_msg(&err));
        st_buf_free(&out);
        npy_file_close(&f);
        return rc;
    }
    st_buf values = { 0 };
    size_t shape[NPY_MAX_RANK], rank = 0;
    if (read_json_tensor(pos[0], dtype, &values, shape, &rank, &err) != ST_OK ||
        npy_write_file(pos[1], dtype, shape, rank, values.data, &err) != ST_OK)
        rc = cli_fail(verb, "%s", st_error_msg(&err));
    st_buf_free(&values);
    return rc;
}
