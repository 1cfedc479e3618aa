/* fuzz/npy.c - libFuzzer driver for the .npy reader.
 *
 * Any bytes must either parse or fail with a one-line message, never crash
 * or read outside the input.  What parses must satisfy the npy_array
 * invariants and survive a write -> parse round trip unchanged, which also
 * drives the writer with every shape and dtype the reader lets through. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "base/alloc.h"
#include "npy/npy.h"

#define CHECK(cond) \
    do {            \
        if (!(cond)) \
            abort(); \
    } while (0)

static void check_parsed(const uint8_t *data, size_t size, const npy_array *a,
                         const npy_options *opts)
{
    CHECK(a->rank <= NPY_MAX_RANK);
    CHECK(a->item_bytes == st_dtype_size(a->dtype) && a->item_bytes > 0);
    CHECK(a->data == data + a->data_offset);
    CHECK(a->data_offset <= size && size - a->data_offset == a->data_bytes);
    CHECK(a->data_bytes == a->element_count * a->item_bytes);
    size_t count = 1;
    for (size_t i = 0; i < a->rank; i++)
        count *= a->shape[i];
    CHECK(count == a->element_count);

    /* Touch the data the way a consumer would. */
    volatile double sink = 0;
    size_t step = a->element_count > 4096 ? a->element_count / 4096 : 1;
    for (size_t i = 0; i < a->element_count; i += step)
        sink += npy_get_double(a, i);
    (void)sink;

    const void *payload = a->data;
    uint8_t *swapped = NULL;
    if (a->is_big_endian) {
        swapped = st_malloc(a->data_bytes);
        if (!swapped)
            return;
        memcpy(swapped, a->data, a->data_bytes);
        npy_byteswap(swapped, a->element_count, a->item_bytes);
        payload = swapped;
    }
    st_buf out = { 0 };
    st_error err = { 0 };
    CHECK(npy_write(&out, a->dtype, a->shape, a->rank, payload, &err) == ST_OK);
    npy_array b;
    CHECK(npy_parse(out.data, out.len, opts, &b, &err) == ST_OK);
    CHECK(b.dtype == a->dtype && b.rank == a->rank && !b.is_big_endian);
    CHECK(memcmp(b.shape, a->shape, a->rank * sizeof a->shape[0]) == 0);
    CHECK(b.data_offset % 64 == 0 && b.data_bytes == a->data_bytes);
    CHECK(a->data_bytes == 0 || memcmp(b.data, payload, a->data_bytes) == 0);
    st_buf_free(&out);
    st_free(swapped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Defaults, and tight limits with big-endian allowed. */
    const npy_options options[2] = {
        { 0, 0, false },
        { (size_t)1 << 16, (size_t)1 << 20, true },
    };
    for (size_t k = 0; k < 2; k++) {
        npy_array a;
        st_error err = { 0 };
        st_status s = npy_parse(data, size, &options[k], &a, &err);
        if (s != ST_OK) {
            CHECK(err.code == s && err.msg[0] != '\0');
            CHECK(strchr(err.msg, '\n') == NULL);
            CHECK(a.data == NULL && a.rank == 0);
            continue;
        }
        check_parsed(data, size, &a, &options[k]);
    }
    /* The descr mapper on its own, over a short prefix. */
    st_dtype t;
    bool is_big;
    st_error err = { 0 };
    (void)npy_dtype_from_descr(st_str_make(data, size < 12 ? size : 12), &t, &is_big, &err);
    return 0;
}
