/* fuzz.h - the libFuzzer entry point every fuzz/<parser>.c defines. */
#ifndef ST_FUZZ_H
#define ST_FUZZ_H
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif
