/*
 * main.c - kms-stubhost: options, then the host (server.c).
 */
#include "stubhost/stubhost.h"

int main(int argc, char **argv)
{
    struct stub_config conf;
    int rc = stub_options_parse(argc, argv, &conf);
    if (rc != 0) {
        stub_config_free(&conf);
        return rc > 0 ? 0 : 2;
    }
    return stub_run(&conf);
}
