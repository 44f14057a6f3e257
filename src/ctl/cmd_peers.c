/*
 * cmd_peers.c - kmsrelayctl peers: GET /v1/peers as a table (issue 15).
 * Exit 1 when peers are configured and none is reachable (serving alone).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ctl/api.h"
#include "ctl/ctl.h"

static void print_peers(const json_t *r)
{
    char b1[128], b2[128], b3[192], b4[32];
    if (!json_is_true(json_object_get(r, "configured"))) {
        printf("replication: off (peers.name is not set)\n");
        return;
    }
    printf("this relay: %s, %lld changes%s\n", ctl_jstr(r, "name", b1, sizeof(b1)),
           ctl_jint(r, "changes"),
           json_is_true(json_object_get(r, "alone")) ? ", ALONE: no peer reachable" : "");
    printf("%-16s %-22s %-7s %10s %9s %10s %10s  %s\n", "PEER", "ADDRESS", "STATE", "LAG", "LAG_S",
           "SENT", "APPLIED", "LAST ERROR");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r, "peers"), i, p)
    {
        snprintf(b4, sizeof(b4), "%.1f", json_real_value(json_object_get(p, "lag_seconds")));
        printf("%-16s %-22s %-7s %10lld %9s %10lld %10lld  %s\n", ctl_jstr(p, "name", b1, 64),
               ctl_jstr(p, "address", b2, sizeof(b2)), ctl_jstr(p, "state", b3, 16),
               ctl_jint(p, "lag_changes"), b4, ctl_jint(p, "sent"), ctl_jint(p, "applied"),
               ctl_jstr(p, "last_error", b3, sizeof(b3)));
    }
}

int ctl_cmd_peers(const struct ctl_opts *o0, int argc, char **argv)
{
    struct ctl_opts o = *o0;
    json_t *r;
    int rc;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o.json = 1;
        } else {
            fprintf(stderr, "usage: kmsrelayctl peers [--json]\n");
            return CTL_EXIT_USAGE;
        }
    }
    if ((rc = ctl_call(&o, "GET", "/v1/peers", NULL, &r)) != 0)
        return rc;
    if (o.json)
        ctl_print_json(r);
    else
        print_peers(r);
    bool alone = json_is_true(json_object_get(r, "alone"));
    json_decref(r);
    return alone ? CTL_EXIT_FINDINGS : CTL_EXIT_OK;
}
