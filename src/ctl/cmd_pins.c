/*
 * cmd_pins.c - kmsrelayctl pin show|move|forget and rebalance.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/api.h"
#include "kmsrelay/termsafe.h"

#define KR_CTL_HOST_TEXT 80

/* One application of the machine (an element of "pins"). Every value is
 * escaped: the workstation names come from clients. */
static void print_pin(const json_t *p)
{
    static const char *const keys[] = {
        "application", "app_id",   "host",         "host_admin",  "host_health",
        "workstation", "kms_id",   "sku_id",       "first_seen",  "last_seen",
        "vm",          "licence",  "protocol",     "last_result", "last_result_name",
        "count",       "n_policy", "skew_seconds", "activations", "previous_cmid"};
    char b[256], e[4 * 256 + 1];
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = ctl_jstr(p, keys[i], b, sizeof(b));
        printf("  %-17s %s\n", keys[i], *v ? kr_term_safe(v, e, sizeof(e)) : "-");
    }
    const json_t *ws = json_object_get(p, "workstations"), *w;
    size_t i;
    printf("  %-17s", "workstations");
    json_array_foreach(ws, i, w)
    {
        char b2[64];
        printf("%s%s (%s)\n", i ? "                    " : " ",
               kr_term_safe(ctl_jstr(w, "name", b, sizeof(b)), e, sizeof(e)),
               ctl_jstr(w, "last_seen", b2, sizeof(b2)));
    }
    if (!json_array_size(ws))
        printf(" -\n");
}

/* pin show: the machine, then each of its applications. */
static void print_machine(const json_t *r)
{
    char b[64], e[4 * 256 + 1];
    const json_t *pins = json_object_get(r, "pins"), *p;
    size_t i;
    printf("%-19s %s\n", "cmid", ctl_jstr(r, "cmid", b, sizeof(b)));
    printf("%-19s %zu\n", "applications", json_array_size(pins));
    json_array_foreach(pins, i, p)
    {
        printf("\n");
        print_pin(p);
    }
    const json_t *rank = json_object_get(r, "ranking");
    printf("\n%-19s", "ranking");
    for (i = 0; i < json_array_size(rank); i++)
        printf("%s%s", i ? ", " : " ",
               kr_term_safe(json_string_value(json_array_get(rank, i)), e, sizeof(e)));
    printf("%s\n", json_array_size(rank) ? "   (where it would go without its pins)" : " -");
}

/* move / forget: one line per application. */
static void print_changes(const json_t *r, bool forget)
{
    char b[64], a[64], h[KR_CTL_HOST_TEXT];
    const json_t *pins = json_object_get(r, "pins"), *p;
    size_t i;
    ctl_jstr(r, "cmid", b, sizeof(b));
    json_array_foreach(pins, i, p)
    {
        ctl_jstr(p, "application", a, sizeof(a));
        if (forget)
            printf("%s %s: forgotten (was pinned to %s); its next activation is routed afresh\n", b,
                   a, ctl_jstr(p, "host", h, sizeof(h)));
        else if (json_is_true(json_object_get(p, "moved")))
            printf("%s %s: %s -> %s\n", b, a, ctl_jstr(p, "from", h, sizeof(h)),
                   json_string_value(json_object_get(r, "to")));
        else
            printf("%s %s: already pinned to %s\n", b, a,
                   json_string_value(json_object_get(r, "to")));
    }
}

int ctl_cmd_pin(const struct ctl_opts *o0, int argc, char **argv)
{
    static const char syn[] = "usage: kmsrelayctl pin show CMID [--app APP]\n"
                              "       kmsrelayctl pin move CMID HOST [--app APP]\n"
                              "       kmsrelayctl pin forget CMID [--app APP]\n"
                              "A client is a CMID and an application: without --app, show\n"
                              "lists every application of the machine and move/forget act on\n"
                              "all of them. APP: windows, office2010, office2013 or a GUID.\n";
    struct ctl_opts o = *o0;
    const char *pos[3] = {NULL, NULL, NULL}, *app = NULL;
    char path[512] = "/v1/pins/";
    json_t *r = NULL, *body = NULL;
    int n = 0, rc;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            o.json = 1;
        else if (strcmp(argv[i], "--app") == 0 && i + 1 < argc)
            app = argv[++i];
        else if (strncmp(argv[i], "--app=", 6) == 0)
            app = argv[i] + 6;
        else if (n < 3 && argv[i][0] != '-')
            pos[n++] = argv[i];
        else
            n = 99;
    }
    if (n < 2 || n > 3 || (app && !*app)) {
        fputs(syn, stderr);
        return CTL_EXIT_USAGE;
    }
    ctl_urlencode(pos[1], path, sizeof(path));
    bool move = strcmp(pos[0], "move") == 0 && n == 3;
    if (move)
        strncat(path, "/move", sizeof(path) - strlen(path) - 1);
    if (app) {
        strncat(path, "?app=", sizeof(path) - strlen(path) - 1);
        ctl_urlencode(app, path + strlen(path), sizeof(path) - strlen(path));
    }
    if (strcmp(pos[0], "show") == 0 && n == 2) {
        rc = ctl_call(&o, "GET", path, NULL, &r);
    } else if (strcmp(pos[0], "forget") == 0 && n == 2) {
        rc = ctl_call(&o, "DELETE", path, NULL, &r);
    } else if (move) {
        body = json_pack("{s:s}", "host", pos[2]);
        rc = ctl_call(&o, "POST", path, body, &r);
        json_decref(body);
    } else {
        fputs(syn, stderr);
        return CTL_EXIT_USAGE;
    }
    if (rc != 0)
        return rc;
    if (o.json)
        ctl_print_json(r);
    else if (pos[0][0] == 's')
        print_machine(r);
    else
        print_changes(r, pos[0][0] == 'f');
    json_decref(r);
    return CTL_EXIT_OK;
}

/* rebalance's options: --json, --dry-run/-n, --max N. 0 or CTL_EXIT_USAGE. */
static int rebalance_args(struct ctl_opts *o, int argc, char **argv, long long *max, bool *dry)
{
    struct ctl_argv a = {argc, argv, 0};
    bool missing = false;
    const char *v;
    while (a.i < argc) {
        if (ctl_opt_flag(&a, "--json")) {
            o->json = 1;
        } else if (ctl_opt_flag(&a, "--dry-run") || ctl_opt_flag(&a, "-n")) {
            *dry = true;
        } else if ((v = ctl_opt_value(&a, "--max", &missing))) {
            char *end;
            *max = strtoll(v, &end, 10);
            if (*end || !*v || *max < 0 || *max > 100000) {
                fprintf(stderr, "kmsrelayctl: --max: a whole number from 0 to 100000\n");
                return CTL_EXIT_USAGE;
            }
        } else if (!missing) {
            fprintf(stderr, "usage: kmsrelayctl rebalance [--max N] [--dry-run]\n");
            return CTL_EXIT_USAGE;
        }
        if (missing) {
            fprintf(stderr, "kmsrelayctl: --max needs a value\n");
            return CTL_EXIT_USAGE;
        }
    }
    return 0;
}

/* The planned or done moves: a machine's applications on one host, moved
 * together. */
static void print_moves(const json_t *moves)
{
    static const char *const hm[] = {"CMID", "WORKSTATION", "LAST SEEN", "FROM", "TO"};
    static const char *const keys[] = {"cmid", "workstation", "last_seen", "from", "to"};
    const json_t *e;
    size_t i;
    struct ctl_table *t = ctl_table_new(5, hm);
    json_array_foreach(moves, i, e)
    {
        char b[5][256];
        const char *row[5];
        for (int k = 0; k < 5; k++) {
            ctl_jstr(e, keys[k], b[k], sizeof(b[k]));
            row[k] = b[k][0] ? b[k] : "-";
        }
        if (json_is_string(json_object_get(e, "skipped")))
            snprintf(b[4], sizeof(b[4]), "(skipped: changed meanwhile)");
        ctl_table_add(t, row);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
    printf("\n");
}

/* Each host's pins before and after, against its share by weight. */
static void print_rebalance_hosts(const json_t *hosts)
{
    static const char *const hh[] = {"HOST", "WEIGHT", "ROLE", "PINS BEFORE", "AFTER", "SHARE"};
    const json_t *e;
    size_t i;
    struct ctl_table *t = ctl_table_new(6, hh);
    json_array_foreach(hosts, i, e)
    {
        char b[6][80];
        snprintf(b[0], 80, "%s", json_string_value(json_object_get(e, "host")));
        snprintf(b[1], 80, "%lld", ctl_jint(e, "weight"));
        snprintf(b[2], 80, "%s", json_string_value(json_object_get(e, "role")));
        snprintf(b[3], 80, "%lld", ctl_jint(e, "before"));
        snprintf(b[4], 80, "%lld", ctl_jint(e, "after"));
        const json_t *sh = json_object_get(e, "share");
        if (json_is_number(sh))
            snprintf(b[5], 80, "%.1f", json_number_value(sh));
        else
            snprintf(b[5], 80, "-");
        const char *row[] = {b[0], b[1], b[2], b[3], b[4], b[5]};
        ctl_table_add(t, row);
    }
    for (size_t c = 1; c < 6; c++)
        if (c != 2)
            ctl_table_right(t, c);
    ctl_table_print(t, stdout);
    ctl_table_free(t);
}

int ctl_cmd_rebalance(const struct ctl_opts *o0, int argc, char **argv)
{
    struct ctl_opts o = *o0;
    long long max = 100;
    bool dry = false;
    json_t *r, *body;
    int rc = rebalance_args(&o, argc, argv, &max, &dry);
    if (rc != 0)
        return rc;
    body = json_pack("{s:I,s:b}", "max", (json_int_t)max, "dry_run", dry);
    rc = ctl_call(&o, "POST", "/v1/rebalance", body, &r);
    json_decref(body);
    if (rc != 0)
        return rc;
    if (o.json) {
        ctl_print_json(r);
        json_decref(r);
        return CTL_EXIT_OK;
    }
    const json_t *moves = json_object_get(r, "moves");
    if (json_array_size(moves))
        print_moves(moves);
    print_rebalance_hosts(json_object_get(r, "hosts"));
    if (json_is_true(json_object_get(r, "dry_run")))
        printf("\ndry run: would move %lld pin(s); nothing changed\n", ctl_jint(r, "planned"));
    else
        printf("\nmoved %lld pin(s)%s\n", ctl_jint(r, "moved"),
               ctl_jint(r, "skipped") ? " (some skipped: they changed meanwhile)" : "");
    json_decref(r);
    return CTL_EXIT_OK;
}
