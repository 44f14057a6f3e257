/*
 * main.c - kms-loadgen: options, then the run (app.c).
 */
#include <stdio.h>

#include "loadgen/loadgen.h"

int main(int argc, char **argv)
{
    struct lg_config cfg;
    if (lg_products_init() != 0) {
        fprintf(stderr, "kms-loadgen: the built-in product table is broken\n");
        return 1;
    }
    int prc = lg_options_parse(argc, argv, &cfg);
    if (prc != 0) {
        lg_config_free(&cfg);
        return prc == 1 ? 0 : 2;
    }
    return lg_main(&cfg);
}
