/* csv.c - libFuzzer target for the text/csv reader (src/serve/csv.c):
 * the input is a CSV body parsed as several dtypes.  Checks: failures
 * carry a message; successes have rows * cols values within the limit;
 * float64 values written back as CSV (shortest form) parse to the same
 * bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz.h"
#include "json/json.h"
#include "serve/proto_int.h"

#define CHECK(cond)          \
    do {                     \
        if (!(cond))         \
            abort();         \
    } while (0)

static void round_trip(const sv_csv *csv)
{
    st_buf text = { 0 };
    const double *v = csv->data;
    char num[JSON_NUMBER_MAX_CHARS];
    for (size_t r = 0; r < csv->rows; r++) {
        for (size_t c = 0; c < csv->cols; c++) {
            double d = v[r * csv->cols + c];
            size_t n = json_format_double(d, num);
            if (n == 0) {
                const char *s = isnan(d) ? "nan" : d > 0 ? "inf" : "-inf";
                n = strlen(s);
                memcpy(num, s, n);
            }
            if (c)
                st_buf_append_byte(&text, ',');
            st_buf_append(&text, num, n);
        }
        st_buf_append(&text, "\r\n", 2);
    }
    st_arena arena;
    st_arena_init(&arena, 0);
    sv_csv back;
    st_error err = { 0 };
    CHECK(sv_csv_parse(text.data, text.len, ST_DT_FLOAT64, SIZE_MAX, &arena, &back, &err) == ST_OK);
    CHECK(back.rows == csv->rows && back.cols == csv->cols);
    const double *w = back.data;
    for (size_t i = 0; i < csv->rows * csv->cols; i++)
        CHECK((isnan(v[i]) && isnan(w[i])) || memcmp(&v[i], &w[i], sizeof v[i]) == 0);
    st_arena_free(&arena);
    st_buf_free(&text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const st_dtype types[] = { ST_DT_FLOAT64, ST_DT_FLOAT32, ST_DT_FLOAT16, ST_DT_INT64,
                                      ST_DT_UINT8,   ST_DT_INT8,    ST_DT_BOOL };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        st_arena arena;
        st_arena_init(&arena, 0);
        sv_csv csv;
        st_error err = { 0 };
        size_t limit = 1 << 16;
        st_status s = sv_csv_parse(data, size, types[i], limit, &arena, &csv, &err);
        if (s != ST_OK) {
            CHECK(err.code == s && err.msg[0] != '\0');
        } else {
            CHECK(csv.rows > 0 && csv.cols > 0 && csv.rows * csv.cols <= limit && csv.data);
            if (types[i] == ST_DT_FLOAT64)
                round_trip(&csv);
        }
        st_arena_free(&arena);
    }
    return 0;
}
