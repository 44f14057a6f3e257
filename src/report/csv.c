/*
 * csv.c - the report as one rectangular CSV table (RFC 4180), so that a
 * spreadsheet or Python's csv module loads it unchanged:
 *
 *   kind,application,host,cmid,workstations,value,threshold,detail
 *
 * Fields with a comma, a quote, CR or LF are quoted and quotes doubled;
 * lines end with CRLF. Workstation names come from the clients (the wire),
 * so a name that starts like a spreadsheet formula (= + - @ TAB CR) gets a
 * leading apostrophe: the classic CSV-injection guard. Nothing else is
 * changed.
 */
#include <stdio.h>
#include <string.h>

#include "kmsrelay/csv.h"
#include "kmsrelay/err.h"
#include "report/report-internal.h"

struct row {
    const char *kind, *app, *host, *cmid;
    char ws[2048];
    char value[32], threshold[32];
    char detail[2048];
    char apps[256]; /* a machine finding's applications, "Windows; Office 2013+" */
};

static void field(FILE *f, const char *s, bool first, bool guard)
{
    if (!first)
        fputc(',', f);
    kr_csv_fput(f, s, guard);
}

static void emit(FILE *f, const struct row *r)
{
    field(f, r->kind, true, false);
    field(f, r->app, false, false);
    field(f, r->host, false, false);
    field(f, r->cmid, false, false);
    field(f, r->ws, false, true); /* workstation names come from the network */
    field(f, r->value, false, false);
    field(f, r->threshold, false, false);
    field(f, r->detail, false, false);
    fputs("\r\n", f);
}

static void row_init(struct row *r, const char *kind)
{
    memset(r, 0, sizeof(*r));
    r->kind = kind;
}

static void num(char *out, long long v)
{
    snprintf(out, 32, "%lld", v);
}

/* "a; b; c" from obj[key] of each element (strings or objects). */
static void join(const json_t *arr, const char *key, const char *sep, char *out, size_t cap)
{
    size_t i;
    const json_t *v;
    out[0] = '\0';
    json_array_foreach(arr, i, v)
    {
        const char *s = json_is_string(v) ? json_string_value(v) : key ? rp_str(v, key) : "";
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? sep : "", s);
    }
}

/* A machine finding's applications (one machine, several pools). */
static const char *machine_apps(const json_t *it, struct row *r)
{
    join(json_object_get(it, "applications"), NULL, "; ", r->apps, sizeof(r->apps));
    return r->apps[0] ? r->apps : rp_str(it, "application");
}

/* A row for a finding about one machine: its applications, host, CMID and
 * workstation name. */
static void machine_row(struct row *r, const char *kind, const json_t *it)
{
    row_init(r, kind);
    r->app = machine_apps(it, r);
    r->host = rp_str(it, "host");
    r->cmid = rp_str(it, "cmid");
    snprintf(r->ws, sizeof(r->ws), "%s", rp_str(it, "workstation"));
}

static void summary(FILE *f, const json_t *rep)
{
    struct row r;
    size_t i, j;
    const json_t *a, *c;
    const char *k;
    const json_t *v;

    row_init(&r, "clients");
    r.app = "all";
    num(r.value, rp_int(rep, "clients", 0));
    snprintf(r.detail, sizeof(r.detail), "seen within %lld days", rp_int(rep, "window_days", 30));
    emit(f, &r);
    row_init(&r, "machines");
    r.app = "all";
    num(r.value, rp_int(rep, "machines", 0));
    snprintf(r.detail, sizeof(r.detail), "distinct CMIDs seen within %lld days",
             rp_int(rep, "window_days", 30));
    emit(f, &r);
    json_array_foreach(json_object_get(rep, "applications"), i, a)
    {
        const char *app = rp_str(a, "application");
        row_init(&r, "clients");
        r.app = app;
        num(r.value, rp_int(a, "clients", 0));
        emit(f, &r);
        row_init(&r, "vm");
        r.app = app;
        num(r.value, rp_int(a, "vm", 0));
        emit(f, &r);
        row_init(&r, "physical");
        r.app = app;
        num(r.value, rp_int(a, "physical", 0));
        emit(f, &r);
        json_object_foreach((json_t *)json_object_get(a, "licence"), k, v)
        {
            if (json_integer_value(v) == 0)
                continue;
            row_init(&r, "licence");
            r.app = app;
            num(r.value, (long long)json_integer_value(v));
            snprintf(r.detail, sizeof(r.detail), "%s", k);
            emit(f, &r);
        }
        json_array_foreach(json_object_get(a, "hosts"), j, c)
        {
            row_init(&r, "clients_host");
            r.app = app;
            r.host = rp_str(c, "host");
            num(r.value, rp_int(c, "clients", 0));
            emit(f, &r);
            row_init(&r, "host_count");
            r.app = app;
            r.host = rp_str(c, "host");
            if (json_is_integer(json_object_get(c, "reported_count")))
                num(r.value, rp_int(c, "reported_count", 0));
            num(r.threshold, rp_int(c, "threshold", 0));
            snprintf(r.detail, sizeof(r.detail), "%s (count from %s)",
                     json_is_true(json_object_get(c, "below_threshold"))     ? "below threshold"
                     : json_is_integer(json_object_get(c, "reported_count")) ? "ok"
                                                                             : "unknown",
                     rp_str(c, "count_source"));
            emit(f, &r);
        }
    }
}

static void findings(FILE *f, const json_t *rep)
{
    const json_t *fd = json_object_get(rep, "findings");
    struct row r;
    size_t i, j;
    const json_t *it, *c;

    json_array_foreach(json_object_get(fd, "below_threshold"), i, it)
    {
        const json_t *cl = json_object_get(it, "clients");
        for (j = 0; j < json_array_size(cl) || j == 0; j++) {
            c = json_array_get(cl, j);
            row_init(&r, "below_threshold");
            r.app = rp_str(it, "application");
            r.host = rp_str(it, "host");
            r.cmid = c ? rp_str(c, "cmid") : "";
            snprintf(r.ws, sizeof(r.ws), "%s", c ? rp_str(c, "workstation") : "");
            num(r.value, rp_int(it, "count", 0));
            num(r.threshold, rp_int(it, "threshold", 0));
            if (c)
                snprintf(r.detail, sizeof(r.detail), "client needs %lld", rp_int(c, "n_policy", 0));
            else
                snprintf(r.detail, sizeof(r.detail), "no client listed");
            emit(f, &r);
        }
    }
    json_array_foreach(json_object_get(fd, "clock_skew"), i, it)
    {
        machine_row(&r, "clock_skew", it);
        num(r.value, rp_int(it, "skew_seconds", 0));
        num(r.threshold, rp_int(rep, "skew_limit_seconds", 0));
        snprintf(r.detail, sizeof(r.detail), "last seen %s", rp_str(it, "last_seen"));
        emit(f, &r);
    }
    json_array_foreach(json_object_get(fd, "cloned_images"), i, it)
    {
        const json_t *ws = json_object_get(it, "workstations");
        machine_row(&r, "cloned_image", it);
        join(ws, "name", "; ", r.ws, sizeof(r.ws));
        num(r.value, (long long)json_array_size(ws));
        snprintf(r.detail, sizeof(r.detail), "one CMID, several workstation names");
        emit(f, &r);
    }
    json_array_foreach(json_object_get(fd, "cmid_changed"), i, it)
    {
        machine_row(&r, "cmid_changed", it);
        num(r.value, (long long)json_array_size(json_object_get(it, "chain")));
        join(json_object_get(it, "chain"), NULL, " > ", r.detail, sizeof(r.detail));
        emit(f, &r);
    }
    json_array_foreach(json_object_get(fd, "stale"), i, it)
    {
        machine_row(&r, "stale", it);
        num(r.value, rp_int(it, "days_idle", 0));
        num(r.threshold, rp_int(rep, "stale_days", 7));
        snprintf(r.detail, sizeof(r.detail), "last seen %s", rp_str(it, "last_seen"));
        emit(f, &r);
    }
}

int kr_report_write_csv(const json_t *report, FILE *out)
{
    if (!json_is_object(report) || strcmp(rp_str(report, "schema"), KR_REPORT_SCHEMA) != 0)
        return KR_EINVAL;
    fputs("kind,application,host,cmid,workstations,value,threshold,detail\r\n", out);
    summary(out, report);
    findings(out, report);
    return fflush(out) == 0 && !ferror(out) ? 0 : KR_EIO;
}
