/*
 * cmd_ops.c - kmsrelayctl report, dns and reload.
 *
 * report renders the daemon's kmsrelay.report/1 document with the report
 * module's own writers (kr_report_write), so the table, the CSV and
 * `kmsrelayd --report` always agree. It exits 1 when the report has
 * findings (ctl.h: the command ran and found problems).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl/api.h"
#include "kmsrelay/report.h"

int ctl_cmd_report(const struct ctl_opts *o0, int argc, char **argv)
{
    struct ctl_opts o = *o0;
    struct ctl_argv a = {argc, argv, 0};
    const char *format = "table", *v;
    bool missing = false;
    json_t *r;
    int rc;

    while (a.i < argc) {
        if (ctl_opt_flag(&a, "--json"))
            format = "json";
        else if ((v = ctl_opt_value(&a, "--format", &missing)))
            format = v;
        else {
            fprintf(stderr, "usage: kmsrelayctl report [--format table|json|csv]\n");
            return CTL_EXIT_USAGE;
        }
    }
    if (o.json)
        format = "json";
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0 && strcmp(format, "csv") != 0) {
        fprintf(stderr, "kmsrelayctl: --format table, json or csv\n");
        return CTL_EXIT_USAGE;
    }
    o.json = strcmp(format, "json") == 0;
    if ((rc = ctl_call(&o, "GET", "/v1/report", NULL, &r)) != 0)
        return rc;
    if (kr_report_write(r, format, stdout, ctl_term_width()) != 0) {
        fprintf(stderr, "kmsrelayctl: the daemon's report is not a %s document\n",
                KR_REPORT_SCHEMA);
        json_decref(r);
        return CTL_EXIT_FINDINGS;
    }
    rc = kr_report_findings(r) ? CTL_EXIT_FINDINGS : CTL_EXIT_OK;
    json_decref(r);
    return rc;
}

/* A unix time from the DNS status as ISO text, "-" for none. */
static const char *when(const json_t *v, char *out, size_t cap)
{
    struct tm tm;
    time_t t = json_is_integer(v) ? (time_t)json_integer_value(v) : 0;
    if (t <= 0 || !gmtime_r(&t, &tm))
        return "-";
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

static void print_dns(const json_t *d)
{
    const json_t *zones = json_object_get(d, "zones"), *disc = json_object_get(d, "discovery"), *z,
                 *e;
    size_t i, k;
    char b[64], t1[32], t2[32];

    if (!json_array_size(zones) && !json_array_size(disc)) {
        printf("DNS: nothing configured (no dns.zones to publish in, no backend.discover)\n");
        return;
    }
    if (json_array_size(zones))
        printf("Published records (instance %s):\n", ctl_jstr(d, "instance", b, sizeof(b)));
    json_array_foreach(zones, i, z)
    {
        char b2[64], b3[64];
        printf("  zone %s: %s, %s; service %s%s%s\n", ctl_jstr(z, "zone", b, sizeof(b)),
               ctl_jstr(z, "desired", b2, sizeof(b2)),
               json_is_true(json_object_get(z, "published")) ? "published" : "not published",
               ctl_jstr(z, "service", b3, sizeof(b3)),
               json_is_true(json_object_get(z, "damped")) ? ", damped (flapping)" : "",
               json_is_true(json_object_get(z, "fail_static")) ? ", fail-static" : "");
        json_array_foreach(json_object_get(z, "records"), k, e)
            printf("    %s\n", json_string_value(e));
        const json_t *last = json_object_get(z, "last");
        if (json_is_object(last)) {
            char s1[64], s2[64], s3[64];
            printf("    last update: %s %s at %s via %s: %s\n",
                   ctl_jstr(last, "op", s1, sizeof(s1)), ctl_jstr(last, "status", s2, sizeof(s2)),
                   when(json_object_get(last, "when"), t1, sizeof(t1)),
                   ctl_jstr(last, "server", s3, sizeof(s3)),
                   ctl_jstr(last, "message", b, sizeof(b)));
        } else {
            printf("    last update: none yet\n");
        }
        printf("    next reconcile: %s",
               when(json_object_get(z, "next_reconcile"), t1, sizeof(t1)));
        if (json_is_integer(json_object_get(z, "next_retry")))
            printf(", next retry: %s", when(json_object_get(z, "next_retry"), t2, sizeof(t2)));
        printf("; failures: %lld\n", ctl_jint(z, "failures"));
    }
    if (json_array_size(disc))
        printf("%sDiscovery:\n", json_array_size(zones) ? "\n" : "");
    json_array_foreach(disc, i, z)
    {
        char b2[64];
        printf("  %s: %s (%s), next %s\n", ctl_jstr(z, "name", b, sizeof(b)),
               ctl_jstr(z, "status", b2, sizeof(b2)), ctl_jstr(z, "message", t1, sizeof(t1)),
               when(json_object_get(z, "next"), t2, sizeof(t2)));
        json_array_foreach(json_object_get(z, "hosts"), k, e)
        {
            char s1[64], s2[64], s3[64];
            printf("    %s  %s  %s  priority %lld weight %lld%s\n",
                   ctl_jstr(e, "name", s1, sizeof(s1)), ctl_jstr(e, "target", s2, sizeof(s2)),
                   ctl_jstr(e, "address", s3, sizeof(s3)), ctl_jint(e, "priority"),
                   ctl_jint(e, "weight"),
                   json_is_true(json_object_get(e, "listed")) ? "" : "  (no longer listed)");
        }
    }
}

int ctl_cmd_dns_gss(const struct ctl_opts *o, int argc, char **argv);       /* cmd_gss.c */
int ctl_cmd_dns_directory(const struct ctl_opts *o, int argc, char **argv); /* cmd_dir.c */

int ctl_cmd_dns(const struct ctl_opts *o0, int argc, char **argv)
{
    struct ctl_opts o = *o0;
    json_t *r;
    int rc;

    if (argc > 0 && (strcmp(argv[0], "check") == 0 || strcmp(argv[0], "update") == 0))
        return ctl_cmd_dns_gss(o0, argc, argv);
    if (argc > 0 && strcmp(argv[0], "directory") == 0)
        return ctl_cmd_dns_directory(o0, argc, argv);

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o.json = 1;
        } else {
            fprintf(stderr, "usage: kmsrelayctl dns\n");
            return CTL_EXIT_USAGE;
        }
    }
    if ((rc = ctl_call(&o, "GET", "/v1/dns", NULL, &r)) != 0)
        return rc;
    if (o.json)
        ctl_print_json(r);
    else
        print_dns(r);
    json_decref(r);
    return CTL_EXIT_OK;
}

int ctl_cmd_reload(const struct ctl_opts *o0, int argc, char **argv)
{
    struct ctl_opts o = *o0;
    struct ctl_resp r;
    int rc;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o.json = 1;
        } else {
            fprintf(stderr, "usage: kmsrelayctl reload\n");
            return CTL_EXIT_USAGE;
        }
    }
    if ((rc = ctl_http(&o, "POST", "/v1/reload", NULL, &r)) != 0)
        return rc;
    ctl_resp_json(&r);
    if (o.json && r.json)
        ctl_print_json(r.json);
    if (r.status == 200) {
        char b[64];
        if (!o.json)
            printf("reloaded %s: %lld host(s), %lld listener(s)\n",
                   ctl_jstr(r.json, "config", b, sizeof(b)), ctl_jint(r.json, "hosts"),
                   ctl_jint(r.json, "listeners"));
        ctl_resp_free(&r);
        return CTL_EXIT_OK;
    }
    const json_t *e = r.json ? json_object_get(r.json, "error") : NULL, *l;
    size_t i;
    fprintf(stderr, "kmsrelayctl: reload refused: %s\n",
            json_is_string(e) ? json_string_value(e) : "the daemon refused the request");
    json_array_foreach(r.json ? json_object_get(r.json, "errors") : NULL, i, l)
        fprintf(stderr, "  %s\n", json_string_value(l));
    rc = r.status == 405 || r.status == 404 ? CTL_EXIT_USAGE : CTL_EXIT_FINDINGS;
    ctl_resp_free(&r);
    return rc;
}
