/*
 * cmd_hosts.c - kmsrelayctl status, hosts, and host drain|ready|maint|
 * retire|weight NAME [N].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/api.h"
#include "ctl/check.h"
#include "kmsrelay/units.h"

/* Leftover arguments: --json after the command, --check-exit where
 * check_exit is given, anything else positional. Returns the number of
 * positionals (at most max) or -1 on an unknown option. */
static int scan(const struct ctl_opts *o, struct ctl_opts *out, int argc, char **argv,
                const char **pos, int max, bool *check_exit)
{
    int n = 0;
    *out = *o;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            out->json = 1;
        } else if (check_exit && strcmp(argv[i], "--check-exit") == 0) {
            *check_exit = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "kmsrelayctl: unknown option %s\n", argv[i]);
            return -1;
        } else if (n < max) {
            pos[n++] = argv[i];
        } else {
            fprintf(stderr, "kmsrelayctl: unexpected argument \"%s\"\n", argv[i]);
            return -1;
        }
    }
    return n;
}

static void human_size(long long b, char *out, size_t cap)
{
    if (b >= 1024LL * 1024 * 1024)
        snprintf(out, cap, "%.1f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024 * 1024)
        snprintf(out, cap, "%.1f MiB", b / (1024.0 * 1024));
    else
        snprintf(out, cap, "%.1f KiB", b / 1024.0);
}

int ctl_cmd_status(const struct ctl_opts *o0, int argc, char **argv)
{
    struct ctl_opts o;
    const char *pos[1];
    json_t *s;
    char b1[32], b2[32], up[KR_DURATION_STRLEN];
    bool check = false;
    int rc;

    if (scan(o0, &o, argc, argv, pos, 0, &check) != 0)
        return check ? CHECK_UNKNOWN : CTL_EXIT_USAGE;
    if ((rc = ctl_call(&o, "GET", "/v1/status", NULL, &s)) != 0)
        return check ? CHECK_UNKNOWN : rc;
    if (o.json) {
        ctl_print_json(s);
        if (check)
            return ctl_check_exit_code(&o, s, true);
        json_decref(s);
        return CTL_EXIT_OK;
    }
    const json_t *h = json_object_get(s, "hosts"), *hh = json_object_get(h, "health"),
                 *ha = json_object_get(h, "admin"), *a = json_object_get(s, "activations"),
                 *c = json_object_get(s, "connections"), *st = json_object_get(s, "store"),
                 *ct = json_object_get(s, "control"), *l = json_object_get(s, "listeners");
    kr_format_duration((uint64_t)ctl_jint(s, "uptime_seconds") * 1000, up, sizeof(up));
    printf("kmsrelayd %s (instance %s, pid %lld), up %s\n", ctl_jstr(s, "version", b1, 32),
           ctl_jstr(s, "instance", b2, 32), ctl_jint(s, "pid"), up);
    printf("config:       %s\n", ctl_jstr(s, "config", b1, 32));
    printf("listeners:    ");
    for (size_t i = 0; i < json_array_size(l); i++)
        printf("%s%s", i ? ", " : "", json_string_value(json_array_get(l, i)));
    printf("\n");
    printf("hosts:        %lld (%lld up, %lld down, %lld unknown; %lld ready, %lld drain, "
           "%lld maint, %lld retired)\n",
           ctl_jint(h, "total"), ctl_jint(hh, "up"), ctl_jint(hh, "down"), ctl_jint(hh, "unknown"),
           ctl_jint(ha, "ready"), ctl_jint(ha, "drain"), ctl_jint(ha, "maint"),
           ctl_jint(ha, "retired"));
    printf("pins:         %lld\n", ctl_jint(s, "pins"));
    printf("activations:  %lld requests, %lld ok, %lld failed, %lld in flight\n",
           ctl_jint(a, "requests"), ctl_jint(a, "ok"), ctl_jint(a, "failed"),
           ctl_jint(a, "in_flight"));
    printf("              %lld retries, %lld failovers, %lld threshold assists, %lld refused "
           "reroutes; %lld new pins, %lld moved\n",
           ctl_jint(a, "retries"), ctl_jint(a, "failovers"), ctl_jint(a, "threshold_assists"),
           ctl_jint(a, "reroutes_refused"), ctl_jint(a, "pins_new"), ctl_jint(a, "pins_moved"));
    printf("connections:  %lld open, %lld accepted, %lld denied, %lld limited, %lld rate "
           "limited, %lld bad PDUs\n",
           ctl_jint(c, "open"), ctl_jint(c, "accepted"), ctl_jint(c, "denied"),
           ctl_jint(c, "limited"), ctl_jint(c, "rate_limited"), ctl_jint(c, "bad_pdus"));
    human_size(ctl_jint(st, "map_used"), b1, sizeof(b1));
    human_size(ctl_jint(st, "map_size"), b2, sizeof(b2));
    const json_t *le = json_object_get(st, "last_error");
    printf("store:        %s, %lld pins committed, %lld pending, %s of %s used%s%s\n",
           ctl_jstr(st, "state", up, sizeof(up)), ctl_jint(st, "pins_committed"),
           ctl_jint(st, "pending"), b1, b2, json_is_string(le) ? "; last error: " : "",
           json_is_string(le) ? json_string_value(le) : "");
    const json_t *pe = json_object_get(s, "peers");
    if (json_is_true(json_object_get(pe, "configured")))
        printf("peers:        %lld of %lld up%s\n", ctl_jint(pe, "up"), ctl_jint(pe, "total"),
               json_is_true(json_object_get(pe, "alone"))
                   ? "; ALONE: serving with the local table only"
                   : "");
    printf("control:      %s (%lld requests, %lld errors)\n", ctl_jstr(ct, "socket", b1, 32),
           ctl_jint(ct, "requests"), ctl_jint(ct, "errors"));
    fflush(stdout);
    if (check)
        return ctl_check_exit_code(&o, s, true);
    json_decref(s);
    return CTL_EXIT_OK;
}

/* "12.3ms" */
static void latency(const json_t *chk, char *out, size_t cap)
{
    const json_t *v = json_object_get(chk, "latency_ms");
    if (json_is_number(v))
        snprintf(out, cap, "%.1fms", json_number_value(v));
    else
        snprintf(out, cap, "-");
}

static const char *app_names[] = {"Windows", "Office 2010", "Office 2013+", "other"};

/* Table 1: one row per host. */
static void add_host_row(struct ctl_table *t1, const json_t *h)
{
    char w[16], lat[16], pins[24], req[24], err[24], chk[40], b[32], hbuf[24];
    char name[72], addr[72], admin[24];
    const json_t *p = json_object_get(h, "pins"), *ck = json_object_get(h, "check");

    snprintf(hbuf, sizeof(hbuf), "%s", ctl_jstr(h, "health", b, sizeof(b)));
    snprintf(w, sizeof(w), "%lld", ctl_jint(h, "weight"));
    if (ctl_jint(h, "weight") != ctl_jint(h, "config_weight"))
        snprintf(w, sizeof(w), "%lld*", ctl_jint(h, "weight"));
    latency(ck, lat, sizeof(lat));
    snprintf(pins, sizeof(pins), "%lld", ctl_jint(p, "total"));
    snprintf(req, sizeof(req), "%lld", ctl_jint(h, "requests"));
    snprintf(err, sizeof(err), "%lld", ctl_jint(h, "errors"));
    snprintf(chk, sizeof(chk), "%.30s", ctl_jstr(ck, "result", b, sizeof(b)));
    snprintf(name, sizeof(name), "%s%s", ctl_jstr(h, "name", b, sizeof(b)),
             json_is_true(json_object_get(h, "removed")) ? " (removed)" : "");
    snprintf(addr, sizeof(addr), "%s", ctl_jstr(h, "address", b, sizeof(b)));
    if (!addr[0]) /* a host name that does not resolve (yet): show the name */
        snprintf(addr, sizeof(addr), "%s", ctl_jstr(h, "address_name", b, sizeof(b)));
    snprintf(admin, sizeof(admin), "%s", ctl_jstr(h, "admin", b, sizeof(b)));
    const char *row[] = {name, addr, hbuf, admin, w, chk[0] ? chk : "-", lat, pins, req, err};
    ctl_table_add(t1, row);
}

/* Table 2: per application of one host, its pins and reported count. */
static void add_count_rows(struct ctl_table *t2, const json_t *h)
{
    const json_t *p = json_object_get(h, "pins"), *counts = json_object_get(h, "counts");
    char name[72], b[32];

    snprintf(name, sizeof(name), "%s%s", ctl_jstr(h, "name", b, sizeof(b)),
             json_is_true(json_object_get(h, "removed")) ? " (removed)" : "");
    for (int a = 0; a < 4; a++) {
        const json_t *cnt = NULL, *e;
        size_t k;
        json_array_foreach(counts, k, e)
        {
            if (strcmp(ctl_jstr(e, "application", b, sizeof(b)), app_names[a]) == 0)
                cnt = e;
        }
        long long np = ctl_jint(p, app_names[a]);
        if (!cnt && np == 0)
            continue;
        char pn[24], cn[24] = "-", th[24] = "-", age[KR_DURATION_STRLEN] = "-",
                     status[64] = "no answer yet";
        snprintf(pn, sizeof(pn), "%lld", np);
        if (cnt) {
            snprintf(cn, sizeof(cn), "%lld", ctl_jint(cnt, "count"));
            snprintf(th, sizeof(th), "%lld", ctl_jint(cnt, "threshold"));
            kr_format_duration((uint64_t)ctl_jint(cnt, "age_seconds") * 1000, age, sizeof(age));
            bool below = json_is_true(json_object_get(cnt, "below_threshold"));
            snprintf(status, sizeof(status), "%s%s", below ? "BELOW THRESHOLD" : "ok",
                     json_is_false(json_object_get(cnt, "fresh")) ? " (old)" : "");
        }
        const char *row2[] = {name, app_names[a], pn, cn, th, age, status};
        ctl_table_add(t2, row2);
    }
}

/* After the tables: warnings, pins on unknown hosts, the weight footnote. */
static void print_notes(const json_t *list, const json_t *unknown)
{
    const json_t *h;
    size_t i;
    int warnings = 0;
    char b[72];

    json_array_foreach(list, i, h)
    {
        const json_t *ws = json_object_get(h, "warnings"), *wv;
        size_t k;
        json_array_foreach(ws, k, wv)
        {
            if (!warnings++)
                printf("\nWarnings:\n");
            printf("  %s: %s\n", ctl_jstr(h, "name", b, sizeof(b)), json_string_value(wv));
        }
    }
    if (json_array_size(unknown)) {
        printf("\nPins on hosts that are no longer configured (they move on next contact):\n");
        json_array_foreach(unknown, i, h)
            printf("  %s: %lld\n", ctl_jstr(h, "host", b, sizeof(b)), ctl_jint(h, "pins"));
    }
    json_array_foreach(list, i, h)
    {
        if (ctl_jint(h, "weight") != ctl_jint(h, "config_weight")) {
            printf("\n* weight set through the control API (the configuration says "
                   "otherwise)\n");
            break;
        }
    }
}

static void print_hosts(const json_t *list, const json_t *unknown)
{
    static const char *const h1[] = {"HOST",  "ADDRESS", "HEALTH", "ADMIN",    "WEIGHT",
                                     "CHECK", "LATENCY", "PINS",   "REQUESTS", "ERRORS"};
    static const char *const h2[] = {"HOST",      "APPLICATION", "PINNED", "COUNT",
                                     "THRESHOLD", "AGE",         "STATUS"};
    struct ctl_table *t1 = ctl_table_new(10, h1), *t2 = ctl_table_new(7, h2);
    size_t i;
    const json_t *h;

    json_array_foreach(list, i, h)
    {
        add_host_row(t1, h);
        add_count_rows(t2, h);
    }
    for (size_t c = 4; c < 10; c++)
        if (c != 5)
            ctl_table_right(t1, c);
    for (size_t c = 2; c < 5; c++)
        ctl_table_right(t2, c);
    ctl_table_print(t1, stdout);
    printf("\n");
    ctl_table_print(t2, stdout);
    print_notes(list, unknown);
    ctl_table_free(t1);
    ctl_table_free(t2);
}

int ctl_cmd_hosts(const struct ctl_opts *o0, int argc, char **argv)
{
    struct ctl_opts o;
    const char *pos[1];
    json_t *r;
    bool check = false;
    int rc;

    if (scan(o0, &o, argc, argv, pos, 0, &check) != 0)
        return check ? CHECK_UNKNOWN : CTL_EXIT_USAGE;
    if ((rc = ctl_call(&o, "GET", "/v1/hosts", NULL, &r)) != 0)
        return check ? CHECK_UNKNOWN : rc;
    if (o.json)
        ctl_print_json(r);
    else
        print_hosts(json_object_get(r, "hosts"), json_object_get(r, "unknown_hosts"));
    fflush(stdout);
    if (check)
        return ctl_check_exit_code(&o, r, false);
    json_decref(r);
    return CTL_EXIT_OK;
}

int ctl_cmd_host(const struct ctl_opts *o0, int argc, char **argv)
{
    static const char syn[] = "usage: kmsrelayctl host drain|ready|maint|retire NAME\n"
                              "       kmsrelayctl host weight NAME N\n";
    struct ctl_opts o;
    const char *pos[3] = {NULL, NULL, NULL};
    char path[512] = "/v1/hosts/", b[64];
    json_t *body, *r;
    int n = scan(o0, &o, argc, argv, pos, 3, NULL), rc;

    if (n < 2) {
        fputs(syn, stderr);
        return CTL_EXIT_USAGE;
    }
    const char *verb = pos[0], *state = NULL;
    if (strcmp(verb, "weight") == 0) {
        char *end;
        long w = n == 3 ? strtol(pos[2], &end, 10) : -1;
        if (n != 3 || *end || w < 1 || w > 10000) {
            fprintf(stderr, "kmsrelayctl: host weight NAME N: N is a whole number from 1 to "
                            "10000\n");
            return CTL_EXIT_USAGE;
        }
        body = json_pack("{s:I}", "weight", (json_int_t)w);
        ctl_urlencode(pos[1], path, sizeof(path));
        strncat(path, "/weight", sizeof(path) - strlen(path) - 1);
    } else {
        if (strcmp(verb, "drain") == 0 || strcmp(verb, "ready") == 0 || strcmp(verb, "maint") == 0)
            state = verb;
        else if (strcmp(verb, "retire") == 0 || strcmp(verb, "retired") == 0)
            state = "retired";
        if (!state || n != 2) {
            fputs(syn, stderr);
            return CTL_EXIT_USAGE;
        }
        body = json_pack("{s:s}", "state", state);
        ctl_urlencode(pos[1], path, sizeof(path));
        strncat(path, "/state", sizeof(path) - strlen(path) - 1);
    }
    rc = ctl_call(&o, "POST", path, body, &r);
    json_decref(body);
    if (rc != 0)
        return rc;
    if (o.json)
        ctl_print_json(r);
    else if (state)
        printf("%s: %s -> %s (health %s)\n", ctl_jstr(r, "host", b, sizeof(b)),
               json_string_value(json_object_get(r, "previous")),
               json_string_value(json_object_get(r, "admin")),
               json_string_value(json_object_get(r, "health")));
    else
        printf("%s: weight %lld -> %lld (configured %lld)\n", ctl_jstr(r, "host", b, sizeof(b)),
               ctl_jint(r, "previous"), ctl_jint(r, "weight"), ctl_jint(r, "config_weight"));
    json_decref(r);
    return CTL_EXIT_OK;
}
