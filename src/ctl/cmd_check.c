/*
 * cmd_check.c - kmsrelayctl check, and the verdict behind --check-exit of
 * status and hosts (the rule is in check.h).
 *
 * Output is one line in the monitoring-plugin format:
 *   KMSRELAY WARNING - host kms-b down (connect refused) | hosts=2;;;0 ...
 * critical problems first, then warnings, at most CHECK_SHOWN of them
 * (the rest as "+N more"); after the '|' the performance data, one
 * label=value;warn;crit;min;max each, the thresholds in the plugin range
 * syntax ("0" = alert above 0, "1:" = alert below 1).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/api.h"
#include "ctl/check.h"

#define CHECK_MAX 48  /* problems kept */
#define CHECK_SHOWN 4 /* problems named on the line */

static const char *const state_name[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

struct verdict {
    int state;
    struct {
        int sev;
        char text[160];
    } p[CHECK_MAX];
    size_t n, more;
    char perf[1536];
    char ok[256]; /* the summary when nothing is wrong */
};

static void problem(struct verdict *v, int sev, const char *fmt, ...)
{
    va_list ap;
    if (sev > v->state)
        v->state = sev;
    if (v->n == CHECK_MAX) {
        v->more++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(v->p[v->n].text, sizeof(v->p[v->n].text), fmt, ap);
    va_end(ap);
    v->p[v->n++].sev = sev;
}

/* label=value[uom];warn;crit;min;max */
static void perf(struct verdict *v, const char *label, long long val, const char *uom,
                 const char *warn, const char *crit, const char *max)
{
    size_t l = strlen(v->perf);
    snprintf(v->perf + l, sizeof(v->perf) - l, "%s%s=%lld%s;%s;%s;0%s%s", l ? " " : "", label, val,
             uom, warn, crit, *max ? ";" : "", max);
}

/* The range that alerts at n or more ("n-1"), none when n is 0 (off). */
static const char *at_least(long n, char *buf, size_t cap)
{
    if (n <= 0)
        return "";
    snprintf(buf, cap, "%ld", n - 1);
    return buf;
}

/* The range that alerts below n ("n:"), none when n is 0. */
static const char *below(long n, char *buf, size_t cap)
{
    if (n <= 0)
        return "";
    snprintf(buf, cap, "%ld:", n);
    return buf;
}

static int level(long n, long warn, long crit)
{
    if (crit > 0 && n >= crit)
        return CHECK_CRITICAL;
    if (warn > 0 && n >= warn)
        return CHECK_WARNING;
    return CHECK_OK;
}

static bool is(const json_t *o, const char *key, const char *want)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && strcmp(s, want) == 0;
}

struct host_tally {
    long total, up, down, eligible, below;
};

static void tally_host(const json_t *h, struct host_tally *t, int down_sev, bool list_below,
                       struct verdict *v)
{
    const json_t *c;
    size_t k;
    char b[72], app[64];
    bool off = is(h, "admin", "maint") || is(h, "admin", "retired");

    t->total++;
    t->up += is(h, "health", "up");
    if (is(h, "health", "up") && is(h, "admin", "ready") && ctl_jint(h, "weight") > 0)
        t->eligible++;
    if (is(h, "health", "down") && !off) {
        t->down++;
        if (down_sev)
            problem(v, down_sev, "host %s down (%s)", ctl_jstr(h, "name", b, sizeof(b)),
                    ctl_jstr(json_object_get(h, "check"), "result", app, sizeof(app)));
    }
    json_array_foreach(json_object_get(h, "counts"), k, c)
    {
        if (!json_is_true(json_object_get(c, "below_threshold")))
            continue;
        t->below++;
        if (list_below)
            problem(v, CHECK_WARNING, "%s %s count %lld below threshold %lld",
                    ctl_jstr(h, "name", b, sizeof(b)), ctl_jstr(c, "application", app, sizeof(app)),
                    ctl_jint(c, "count"), ctl_jint(c, "threshold"));
    }
}

static void eval_hosts(const json_t *doc, const struct ctl_check_limits *l, struct verdict *v)
{
    const json_t *list = json_object_get(doc, "hosts"), *h;
    struct host_tally t = {0};
    size_t i;
    char w[24], c[24];

    /* First the numbers (the severities depend on them), then the names. */
    json_array_foreach(list, i, h) if (!json_is_true(json_object_get(h, "removed")))
        tally_host(h, &t, CHECK_OK, false, v);
    int down_sev = level(t.down, l->down_warn, l->down_crit);
    bool list_below = level(t.below, l->below_warn, 0) != CHECK_OK;
    struct host_tally t2 = {0};
    json_array_foreach(list, i, h) if (!json_is_true(json_object_get(h, "removed")))
        tally_host(h, &t2, down_sev, list_below, v);
    if (t.eligible < l->eligible_crit)
        problem(v, CHECK_CRITICAL, "%s (%ld of %ld hosts up)",
                t.eligible ? "too few hosts take new clients" : "no host takes new clients", t.up,
                t.total);
    else if (t.eligible < l->eligible_warn)
        problem(v, CHECK_WARNING, "only %ld hosts take new clients", t.eligible);

    perf(v, "hosts", t.total, "", "", "", "");
    perf(v, "hosts_up", t.up, "", "", "", "");
    perf(v, "hosts_down", t.down, "", at_least(l->down_warn, w, sizeof(w)),
         at_least(l->down_crit, c, sizeof(c)), "");
    perf(v, "hosts_eligible", t.eligible, "", below(l->eligible_warn, w, sizeof(w)),
         below(l->eligible_crit, c, sizeof(c)), "");
    perf(v, "below_threshold", t.below, "", at_least(l->below_warn, w, sizeof(w)), "", "");
    snprintf(v->ok, sizeof(v->ok), "%ld hosts, %ld up, %ld taking new clients", t.total, t.up,
             t.eligible);
}

static void eval_dns(const json_t *doc, struct verdict *v, long *audit_problems)
{
    const json_t *z, *last;
    size_t i, n = 0, published = 0;
    char b[32], s[32], m[32];

    json_array_foreach(json_object_get(doc, "zones"), i, z)
    {
        /* ctl_jstr returns the JSON string itself; the buffers are for numbers */
        const char *zone = ctl_jstr(z, "zone", b, sizeof(b));
        n++;
        last = json_object_get(z, "last");
        if (json_is_true(json_object_get(z, "published")))
            published++;
        else
            problem(v, CHECK_CRITICAL, "not published in DNS zone %s (%s)", zone,
                    is(z, "desired", "withdrawn") ? "withdrawn: no eligible host"
                                                  : "publishing failed or pending");
        if (json_is_object(last) && !is(last, "status", "ok") && ctl_jint(z, "failures") > 0)
            problem(v, CHECK_WARNING, "DNS update for %s failing: %s %s", zone,
                    ctl_jstr(last, "status", s, sizeof(s)),
                    ctl_jstr(last, "message", m, sizeof(m)));
    }
    const json_t *sum = json_object_get(json_object_get(doc, "audit"), "summary");
    *audit_problems = sum ? ctl_jint(sum, "problems") : 0;
    perf(v, "zones", (long long)n, "", "", "", "");
    perf(v, "zones_published", (long long)published, "", "", n ? "1:" : "", "");
    if (n) {
        size_t l = strlen(v->ok);
        snprintf(v->ok + l, sizeof(v->ok) - l, "; published in %zu of %zu DNS zones", published, n);
    }
}

static void eval_findings(const json_t *report, long audit, const struct ctl_check_limits *l,
                          struct verdict *v)
{
    const json_t *t = json_object_get(report, "totals");
    long skew = t ? (long)ctl_jint(t, "clock_skew") : 0,
         clones = t ? (long)ctl_jint(t, "cloned_images") : 0;
    char w[24];

    if (level(skew + clones + audit, l->findings_warn, 0) != CHECK_OK) {
        if (skew)
            problem(v, CHECK_WARNING, "clients with a clock more than 4 h off: %ld", skew);
        if (clones)
            problem(v, CHECK_WARNING, "cloned images (one CMID, several names): %ld", clones);
        if (audit)
            problem(v, CHECK_WARNING, "_vlmcs audit problems: %ld", audit);
    }
    perf(v, "findings", skew + clones + audit, "", at_least(l->findings_warn, w, sizeof(w)), "",
         "");
    if (report) {
        perf(v, "clock_skew", skew, "", "", "", "");
        perf(v, "cloned_images", clones, "", "", "", "");
    }
    perf(v, "audit_problems", audit, "", "", "", "");
}

static void eval_store(const json_t *status, const struct ctl_check_limits *l, struct verdict *v)
{
    const json_t *st = json_object_get(status, "store");
    long long size = ctl_jint(st, "map_size"), used = ctl_jint(st, "map_used");
    long pct = size > 0 ? (long)(used * 100 / size) : 0;
    char w[24], c[24], e[32];
    const char *why = ctl_jstr(st, "last_error", e, sizeof(e));

    if (is(st, "state", "degraded"))
        problem(v, CHECK_CRITICAL, "pin store cannot commit (%s)", *why ? why : "degraded");
    int sev = level(pct, l->store_warn, l->store_crit);
    if (sev)
        problem(v, sev, "pin store %ld%% full", pct);
    snprintf(w, sizeof(w), "%ld", l->store_warn);
    snprintf(c, sizeof(c), "%ld", l->store_crit);
    perf(v, "store_used", pct, "%", l->store_warn > 0 ? w : "", l->store_crit > 0 ? c : "", "100");
}

static void print_line(const struct verdict *v, FILE *f)
{
    size_t shown = 0;
    fprintf(f, "KMSRELAY %s - ", state_name[v->state]);
    if (!v->n)
        fputs(v->ok, f);
    for (int sev = CHECK_CRITICAL; sev >= CHECK_WARNING; sev--)
        for (size_t i = 0; i < v->n; i++)
            if (v->p[i].sev == sev && shown++ < CHECK_SHOWN)
                fprintf(f, "%s%s", shown > 1 ? "; " : "", v->p[i].text);
    if (shown + v->more > CHECK_SHOWN)
        fprintf(f, " (+%zu more)", shown + v->more - CHECK_SHOWN);
    fprintf(f, " | %s\n", v->perf);
}

static void print_json(const struct verdict *v)
{
    json_t *o = json_object(), *list = json_array();
    for (size_t i = 0; i < v->n; i++)
        json_array_append_new(list, json_pack("{s:s, s:s}", "severity", state_name[v->p[i].sev],
                                              "text", v->p[i].text));
    json_object_set_new(o, "state", json_string(state_name[v->state]));
    json_object_set_new(o, "exit", json_integer(v->state));
    json_object_set_new(o, "problems", list);
    json_object_set_new(o, "perfdata", json_string(v->perf));
    ctl_print_json(o);
    json_decref(o);
}

void ctl_check_defaults(struct ctl_check_limits *l)
{
    *l = (struct ctl_check_limits){1, 0, 0, 1, 1, 1, 80, 95, true};
}

void ctl_check_docs_free(struct ctl_check_docs *d)
{
    json_decref(d->status);
    json_decref(d->hosts);
    json_decref(d->dns);
    json_decref(d->report);
    memset(d, 0, sizeof(*d));
}

/* GETs what is missing; on failure names it (UNKNOWN) in *why. */
static int fetch(const struct ctl_opts *o0, const struct ctl_check_limits *l,
                 struct ctl_check_docs *d, char *why, size_t cap)
{
    struct ctl_opts o = *o0;
    struct {
        json_t **doc;
        const char *path;
        bool want;
    } g[] = {{&d->status, "/v1/status", true},
             {&d->hosts, "/v1/hosts", true},
             {&d->dns, "/v1/dns", true},
             {&d->report, "/v1/report", l->report}};
    o.json = 0; /* errors as text, never as a JSON body on stdout */
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        if (*g[i].doc || !g[i].want)
            continue;
        int rc = ctl_call(&o, "GET", g[i].path, NULL, g[i].doc);
        if (rc == CTL_EXIT_UNREACHABLE) {
            snprintf(why, cap, "cannot reach kmsrelayd at %s", o.socket);
            return CHECK_UNKNOWN;
        }
        if (rc != 0) {
            snprintf(why, cap, "kmsrelayd answered GET %s with an error", g[i].path);
            return CHECK_UNKNOWN;
        }
    }
    return CHECK_OK;
}

static void evaluate(const struct ctl_check_limits *l, const struct ctl_check_docs *d,
                     struct verdict *v)
{
    long audit = 0;
    memset(v, 0, sizeof(*v));
    eval_hosts(d->hosts, l, v);
    eval_dns(d->dns, v, &audit);
    eval_findings(d->report, audit, l, v);
    eval_store(d->status, l, v);
}

int ctl_check_run(const struct ctl_opts *o, const struct ctl_check_limits *l,
                  struct ctl_check_docs *d, FILE *line)
{
    char why[600];
    struct verdict *v;
    if (fetch(o, l, d, why, sizeof(why)) != CHECK_OK) {
        if (line)
            fprintf(line, "KMSRELAY UNKNOWN - %s\n", why);
        return CHECK_UNKNOWN;
    }
    if (!(v = malloc(sizeof(*v)))) {
        if (line)
            fprintf(line, "KMSRELAY UNKNOWN - out of memory\n");
        return CHECK_UNKNOWN;
    }
    evaluate(l, d, v);
    if (line && o->json)
        print_json(v);
    else if (line)
        print_line(v, line);
    int rc = v->state;
    free(v);
    return rc;
}

int ctl_check_exit_code(const struct ctl_opts *o, json_t *have, bool is_status)
{
    struct ctl_check_limits l;
    struct ctl_check_docs d = {is_status ? have : NULL, is_status ? NULL : have, NULL, NULL};
    struct ctl_opts q = *o;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);

    ctl_check_defaults(&l);
    q.json = 0;
    int rc = ctl_check_run(&q, &l, &d, mem);
    if (mem)
        fclose(mem);
    if (rc != CHECK_OK && buf) /* stdout keeps the command's own output */
        fprintf(stderr, "kmsrelayctl: --check-exit: %s", buf);
    free(buf);
    ctl_check_docs_free(&d);
    return rc;
}

static const char check_usage[] =
    "usage: kmsrelayctl check [--down-warn N] [--down-crit N] [--eligible-warn N]\n"
    "                         [--eligible-crit N] [--below-warn N] [--findings-warn N]\n"
    "                         [--store-warn PCT] [--store-crit PCT] [--no-report] [--json]\n"
    "One line for Nagios/Icinga-style monitoring, with performance data.\n"
    "Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (daemon unreachable, usage error).\n"
    "  --down-warn N      WARNING when N or more hosts are down (default 1; 0 = never);\n"
    "                     hosts in maintenance or retired do not count\n"
    "  --down-crit N      CRITICAL when N or more hosts are down (default 0 = never)\n"
    "  --eligible-warn N  WARNING when fewer than N hosts take new clients (default 0)\n"
    "  --eligible-crit N  CRITICAL when fewer than N hosts take new clients (up, admin\n"
    "                     ready, weight > 0; default 1)\n"
    "  --below-warn N     WARNING when N or more host counts are below an application's\n"
    "                     activation threshold (default 1; 0 = never)\n"
    "  --findings-warn N  WARNING at N or more findings: clients with a skewed clock,\n"
    "                     cloned images, _vlmcs audit problems (default 1; 0 = never)\n"
    "  --store-warn PCT   WARNING when the pin store is PCT percent full (default 80)\n"
    "  --store-crit PCT   CRITICAL when it is PCT percent full (default 95); a store that\n"
    "                     cannot commit is always CRITICAL, a DNS zone the relay is\n"
    "                     not published in too\n"
    "  --no-report        skip the activation report's findings (it walks every pin)\n";

static int parse_limit(struct ctl_argv *a, struct ctl_check_limits *l, bool *bad)
{
    static const struct {
        const char *name;
        size_t off;
        long max;
    } opts[] = {
        {"--down-warn", offsetof(struct ctl_check_limits, down_warn), 100000},
        {"--down-crit", offsetof(struct ctl_check_limits, down_crit), 100000},
        {"--eligible-warn", offsetof(struct ctl_check_limits, eligible_warn), 100000},
        {"--eligible-crit", offsetof(struct ctl_check_limits, eligible_crit), 100000},
        {"--below-warn", offsetof(struct ctl_check_limits, below_warn), 100000},
        {"--findings-warn", offsetof(struct ctl_check_limits, findings_warn), 100000000},
        {"--store-warn", offsetof(struct ctl_check_limits, store_warn), 100},
        {"--store-crit", offsetof(struct ctl_check_limits, store_crit), 100},
    };
    bool missing = false;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        const char *v = ctl_opt_value(a, opts[i].name, &missing);
        if (!v && !missing)
            continue;
        char *end = NULL;
        long n = v ? strtol(v, &end, 10) : -1;
        if (!v || !*v || *end || n < 0 || n > opts[i].max) {
            fprintf(stderr, "kmsrelayctl: %s takes a whole number from 0 to %ld\n", opts[i].name,
                    opts[i].max);
            *bad = true;
            return 1;
        }
        *(long *)((char *)l + opts[i].off) = n;
        return 1;
    }
    return 0;
}

int ctl_cmd_check(const struct ctl_opts *o0, int argc, char **argv)
{
    struct ctl_opts o = *o0;
    struct ctl_argv a = {argc, argv, 0};
    struct ctl_check_limits l;
    struct ctl_check_docs d = {0};
    bool bad = false;

    ctl_check_defaults(&l);
    while (a.i < argc && !bad) {
        if (ctl_opt_flag(&a, "--json"))
            o.json = 1;
        else if (ctl_opt_flag(&a, "--no-report"))
            l.report = false;
        else if (ctl_opt_flag(&a, "-h") || ctl_opt_flag(&a, "--help")) {
            fputs(check_usage, stdout);
            return CHECK_OK;
        } else if (!parse_limit(&a, &l, &bad)) {
            fprintf(stderr, "kmsrelayctl: check: unknown argument %s\n", argv[a.i]);
            bad = true;
        }
    }
    if (bad) {
        fputs(check_usage, stderr);
        printf("KMSRELAY UNKNOWN - usage error\n");
        return CHECK_UNKNOWN; /* plugins say UNKNOWN, never CRITICAL, for a usage error */
    }
    int rc = ctl_check_run(&o, &l, &d, stdout);
    ctl_check_docs_free(&d);
    return rc;
}
