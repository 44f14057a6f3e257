/*
 * runner.c - the one CUnit runner. `kr_unit` runs every suite; `kr_unit NAME
 * [NAME...]` runs only the named ones (ctest runs one suite per test).
 * Exits non-zero when any assertion failed.
 */
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "kr_suites.h"

int main(int argc, char **argv)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    size_t n = sizeof(kr_suites) / sizeof(kr_suites[0]);
    int added = 0;
    for (size_t i = 0; i < n; i++) {
        int want = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], kr_suites[i].name) == 0)
                want = 1;
        if (want) {
            kr_suites[i].add();
            added++;
        }
    }
    if (added == 0) {
        fprintf(stderr, "kr_unit: no suite matches; known:");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", kr_suites[i].name);
        fprintf(stderr, "\n");
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (ran == 0) {
        fprintf(stderr, "kr_unit: no test ran\n");
        return 2;
    }
    return failed ? 1 : 0;
}
