/* cmd_decode.c - `kmsrelayctl decode [--json] FILE`: a capture, decoded. */
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"
#include "kmsrelay/diag.h"

int ctl_cmd_decode(const struct ctl_opts *o, int argc, char **argv)
{
    int json = o->json;
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "kmsrelayctl decode: unknown option %s\n", argv[i]);
            return CTL_EXIT_USAGE;
        } else if (path) {
            fprintf(stderr, "kmsrelayctl decode: one FILE only (got %s and %s)\n", path, argv[i]);
            return CTL_EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "usage: kmsrelayctl decode [--json] FILE|-\n"
                        "FILE is a conversation in the shared/vectors JSON format, or hex PDUs,\n"
                        "one per line ('#' starts a comment).\n");
        return CTL_EXIT_USAGE;
    }
    struct kr_diag_pdu *pdus;
    size_t n;
    char err[512];
    if (kr_diag_load(path, &pdus, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "kmsrelayctl decode: %s\n", err);
        return CTL_EXIT_USAGE;
    }
    json_t *d = kr_diag_decode(pdus, n);
    kr_diag_free(pdus, n);
    if (!d) {
        fprintf(stderr, "kmsrelayctl decode: out of memory\n");
        return CTL_EXIT_USAGE;
    }
    /* Any PDU that did not decode makes the exit code say so. */
    int bad = 0;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(d, "pdus"), i, p) bad |= json_object_get(p, "error") != NULL;
    if (json) {
        json_dumpf(d, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        kr_diag_print(stdout, d);
    }
    json_decref(d);
    return bad ? CTL_EXIT_FINDINGS : CTL_EXIT_OK;
}
