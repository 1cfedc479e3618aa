/* testing.h - what every unit test includes: cmocka and small helpers.
 * Each tests/unit/test_<module>.c is one program; its main() runs a
 * cmocka group named after the module. */
#ifndef ST_TESTING_H
#define ST_TESTING_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

/* Path of the shared test data folder (../shared/testdata from the project
 * root), or NULL when it is absent; tests that need it skip(). */
static inline const char *testing_shared_dir(void)
{
    static const char *const candidates[] = { "../shared/testdata", NULL };
    for (int i = 0; candidates[i]; i++) {
        FILE *f = fopen(candidates[i], "r");
        if (f) {
            fclose(f);
            return candidates[i];
        }
    }
    return NULL;
}

#endif
