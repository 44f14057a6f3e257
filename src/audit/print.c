/*
 * print.c - the audit report as a table for people, built from the JSON
 * report (report.c) so that both outputs always agree. One block per
 * audited name: the servers asked, then one line per finding; problems get
 * their evidence (addresses, each probe with its latency) underneath.
 */
#include <stdio.h>
#include <string.h>

#include "kmsrelay/audit.h"

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long num(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void print_probes(FILE *out, const char *label, const json_t *a)
{
    size_t i;
    const json_t *t;
    json_array_foreach(a, i, t)
    {
        const char *addr = str(t, "addr");
        fprintf(out, "      %s %s%s%s:%lld %s: %s (connect %.1f ms", label,
                strchr(addr, ':') ? "[" : "", addr, strchr(addr, ':') ? "]" : "", num(t, "port"),
                str(t, "result"), str(t, "detail"),
                json_real_value(json_object_get(t, "connect_ms")));
        const json_t *b = json_object_get(t, "bind_ms");
        if (b)
            fprintf(out, ", bind %.1f ms", json_real_value(b));
        fprintf(out, ")\n");
    }
}

static void print_evidence(FILE *out, const json_t *f)
{
    const json_t *ev = json_object_get(f, "evidence");
    const json_t *tg = json_object_get(ev, "target");
    size_t i;
    const json_t *v;
    fprintf(out, "      servers:");
    json_array_foreach(json_object_get(ev, "servers"), i, v)
    {
        fprintf(out, " %s", str(v, "server"));
        if (json_object_get(v, "ttl"))
            fprintf(out, " (ttl %lld)", num(v, "ttl"));
        else if (!json_is_true(json_object_get(v, "ok")))
            fprintf(out, " (%s)", str(v, "error"));
    }
    fputc('\n', out);
    if (tg) {
        fprintf(out, "      target:");
        if (json_is_string(json_object_get(tg, "cname")))
            fprintf(out, " CNAME to %s;", str(tg, "cname"));
        json_array_foreach(json_object_get(tg, "addresses"), i, v)
            fprintf(out, " %s", json_string_value(v));
        if (json_is_true(json_object_get(tg, "lookup_failed")))
            fprintf(out, " %s (no verdict)", str(tg, "error"));
        else if (json_is_string(json_object_get(tg, "error")))
            fprintf(out, " no address: %s", str(tg, "error"));
        if (str(tg, "resolved_by")[0])
            fprintf(out, " (from %s)", str(tg, "resolved_by"));
        fputc('\n', out);
    }
    print_probes(out, "tried", json_object_get(ev, "probes"));
    print_probes(out, "also tried", json_object_get(ev, "other_ports"));
    if (str(ev, "over_time")[0])
        fprintf(out, "      over time: %s\n", str(ev, "over_time"));
}

static void print_fix(FILE *out, const json_t *fix)
{
    fprintf(out, "      fix: %s", str(fix, "action"));
    if (str(fix, "error")[0])
        fprintf(out, ": %s", str(fix, "error"));
    fputc('\n', out);
}

void kr_audit_print(FILE *out, const json_t *doc)
{
    size_t i, k;
    const json_t *z, *f;
    json_array_foreach(json_object_get(doc, "zones"), i, z)
    {
        fprintf(out, "%s (zone %s, %s)\n", str(z, "owner"), str(z, "zone"),
                strcmp(str(z, "found_by"), "axfr") == 0   ? "found by AXFR"
                : strcmp(str(z, "found_by"), "ldap") == 0 ? "found in the directory"
                                                          : "queried");
        const json_t *v;
        json_array_foreach(json_object_get(z, "servers"), k, v)
        {
            if (json_is_true(json_object_get(v, "ok")))
                fprintf(out, "  server %s: %lld SRV records\n", str(v, "server"),
                        num(v, "records"));
            else
                fprintf(out, "  server %s: FAILED: %s\n", str(v, "server"), str(v, "error"));
        }
        fprintf(out, "  %-14s %-32s %5s %9s %6s  %s\n", "CLASS", "TARGET", "PORT", "PRIO/WGHT",
                "TTL", "WHY");
        json_array_foreach(json_object_get(doc, "findings"), k, f)
        {
            if (strcmp(str(f, "owner"), str(z, "owner")) != 0)
                continue;
            const json_t *r = json_object_get(f, "record");
            char pw[16] = "-", port[8] = "-", ttl[12] = "-";
            const char *target = "(RRset)";
            if (json_is_object(r)) {
                snprintf(pw, sizeof(pw), "%lld/%lld", num(r, "prio"), num(r, "weight"));
                snprintf(port, sizeof(port), "%lld", num(r, "port"));
                snprintf(ttl, sizeof(ttl), "%lld", num(r, "ttl"));
                target = str(r, "target");
            } else if (json_is_object(json_object_get(f, "marker"))) {
                target = "(marker)";
            }
            const char *cls = str(f, "class");
            char shown[40];
            snprintf(shown, sizeof(shown), "%s%s", cls,
                     json_is_true(json_object_get(f, "confirmed")) ? "" : "?");
            fprintf(out, "  %-14s %-32s %5s %9s %6s  %s\n", shown, target, port, pw, ttl,
                    str(f, "reason"));
            if (json_is_true(json_object_get(f, "problem")) ||
                !json_is_true(json_object_get(f, "confirmed")))
                print_evidence(out, f);
            if (json_object_get(f, "fix"))
                print_fix(out, json_object_get(f, "fix"));
        }
        fputc('\n', out);
    }
    const json_t *s = json_object_get(doc, "summary");
    fprintf(out, "%lld records, %lld findings, %lld problems", num(s, "records"),
            num(s, "findings"), num(s, "problems"));
    const char *key;
    const json_t *n;
    const char *sep = ": ";
    json_object_foreach((json_t *)json_object_get(s, "classes"), key, n)
    {
        fprintf(out, "%s%s %lld", sep, key, (long long)json_integer_value(n));
        sep = ", ";
    }
    fputc('\n', out);
    if (json_is_true(json_object_get(doc, "point_in_time")))
        fprintf(out,
                "(point-in-time view: a target failing now is reported dead now, and --fix\n"
                " deletes nothing; --dead-for or --history give evidence over time, as the\n"
                " daemon's periodic audit waits dns.dead_after before calling a record dead)\n");
    json_array_foreach(json_object_get(doc, "errors"), k, f)
        fprintf(out, "error: %s\n", json_string_value(f));
}
