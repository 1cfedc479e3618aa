/* version.c - `stratus version`: what this binary is and what it will use. */
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/cpu.h"
#include "buildinfo.h"
#include "cli/cli.h"
#include "json/json.h"

#define STRATUS_VERSION "0.1.0"

static int print_json(const cli_verb *verb, const char *cpu)
{
    st_buf out = { 0 };
    st_error err = { 0 };
    json_writer w;
    json_writer_init(&w, &out, &err);
    json_write_object_begin(&w);
    json_write_key(&w, ST_STR("version"));
    json_write_string(&w, ST_STR(STRATUS_VERSION));
    json_write_key(&w, ST_STR("commit"));
    json_write_string(&w, ST_STR(ST_GIT_COMMIT));
    json_write_key(&w, ST_STR("compiler"));
    json_write_string(&w, ST_STR(ST_COMPILER));
    json_write_key(&w, ST_STR("build_flags"));
    json_write_string(&w, ST_STR(ST_BUILD_FLAGS));
    json_write_key(&w, ST_STR("cpu_features"));
    json_write_array_begin(&w);
    /* cpu is a space-separated list, "none" when empty. */
    const char *p = cpu;
    while (*p && strcmp(cpu, "none") != 0) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        json_write_string(&w, st_str_make(p, len));
        p += len;
        while (*p == ' ')
            p++;
    }
    json_write_array_end(&w);
    json_write_key(&w, ST_STR("cpus"));
    json_write_int64(&w, st_cpu_count_online());
    json_write_object_end(&w);
    if (json_writer_finish(&w) != ST_OK) {
        st_buf_free(&out);
        return cli_fail(verb, "%s", st_error_msg(&err));
    }
    printf("%.*s\n", (int)out.len, (const char *)out.data);
    st_buf_free(&out);
    return CLI_EXIT_OK;
}

int cli_version_run(const cli_verb *verb, int argc, char **argv)
{
    bool as_json = false;
    const cli_flag flags[] = {
        { "--json", CLI_BOOL, &as_json, 0, 0 },
        { NULL, CLI_BOOL, NULL, 0, 0 },
    };
    const char *pos[1];
    size_t npos;
    if (!cli_parse_flags(verb, flags, argc, argv, pos, 0, &npos))
        return CLI_EXIT_USAGE;
    char cpu[256];
    st_cpu_describe(cpu, sizeof cpu);
    if (as_json)
        return print_json(verb, cpu);
    printf("stratus %s\n"
           "commit:    %s\n"
           "compiler:  %s\n"
           "flags:     %s\n"
           "cpu:       %s (%d online)\n",
           STRATUS_VERSION, ST_GIT_COMMIT, ST_COMPILER, ST_BUILD_FLAGS, cpu, st_cpu_count_online());
    return CLI_EXIT_OK;
}
