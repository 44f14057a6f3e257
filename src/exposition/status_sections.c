/*
 * status_sections.c - the status page's findings (from the cached
 * kmsrelay.report/1, report.h: below threshold, clock skew, cloned images,
 * and the totals of the others) and the DNS state (kr_dns_status_json,
 * dnsservice.h: per zone what is published, the last UPDATE's result,
 * failures and retries; discovery names).
 *
 * Workstation names, CMIDs and DNS messages come from outside: all of them
 * go through mx_html().
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "exposition/html.h"
#include "exposition/status.h"

/* "(showing 20 of 31)" when the report capped the list. */
static void capped(struct evbuffer *b, const json_t *list, int64_t tot)
{
    size_t n = json_array_size(list);
    if (tot > (int64_t)n)
        evbuffer_add_printf(b, "<div class=\"meta\">showing %zu of %lld</div>", n, (long long)tot);
}

static void below_threshold(struct evbuffer *b, const json_t *list, int64_t tot)
{
    const json_t *it, *c;
    size_t i, j;

    evbuffer_add_printf(
        b,
        "<h3>Hosts below their activation threshold (%lld)</h3>\n"
        "<div class=\"scroll\"><table class=\"f\"><tr><th>Host</th><th>Application</th>"
        "<th>Count</th><th>Threshold</th><th>Clients that cannot activate "
        "there</th></tr>\n",
        (long long)tot);
    json_array_foreach(list, i, it)
    {
        const json_t *cl = json_object_get(it, "clients");
        int64_t more = mx_ji(it, "clients_total", 0) - (int64_t)json_array_size(cl);
        evbuffer_add_printf(b, "<tr><td class=\"name\" data-l=\"Host\">");
        mx_html(b, mx_js(it, "host"));
        evbuffer_add_printf(b, "</td><td data-l=\"Application\">");
        mx_html(b, mx_js(it, "application"));
        evbuffer_add_printf(
            b,
            "</td><td class=\"n\" data-l=\"Count\">%lld</td><td class=\"n\" data-l=\"Threshold\">"
            "%lld</td><td class=\"ws\" data-l=\"Clients\">",
            (long long)mx_ji(it, "count", 0), (long long)mx_ji(it, "threshold", 0));
        json_array_foreach(cl, j, c)
        {
            if (j)
                evbuffer_add_printf(b, ", ");
            mx_html(b, mx_js(c, "workstation"));
        }
        if (more > 0)
            evbuffer_add_printf(b, " and %lld more", (long long)more);
        evbuffer_add_printf(b, "</td></tr>\n");
    }
    evbuffer_add_printf(b, "</table></div>\n");
    capped(b, list, tot);
}

static void clock_skew(struct evbuffer *b, const json_t *list, int64_t tot)
{
    const json_t *it;
    size_t i;

    evbuffer_add_printf(
        b,
        "<h3>Clients with a skewed clock (%lld)</h3>\n"
        "<div class=\"scroll\"><table class=\"f\"><tr><th>Workstation</th><th>Host</th>"
        "<th>Skew</th><th>Last seen</th></tr>\n",
        (long long)tot);
    json_array_foreach(list, i, it)
    {
        int64_t s = mx_ji(it, "skew_seconds", 0);
        evbuffer_add_printf(b, "<tr><td class=\"ws\" data-l=\"Workstation\">");
        mx_html(b, mx_js(it, "workstation"));
        evbuffer_add_printf(b, "</td><td class=\"name\" data-l=\"Host\">");
        mx_html(b, mx_js(it, "host"));
        evbuffer_add_printf(
            b, "</td><td class=\"n\" data-l=\"Skew\">%+.1f h</td><td data-l=\"Last seen\">",
            (double)s / 3600.0);
        mx_html(b, mx_js(it, "last_seen"));
        evbuffer_add_printf(b, "</td></tr>\n");
    }
    evbuffer_add_printf(b, "</table></div>\n");
    capped(b, list, tot);
}

static void cloned(struct evbuffer *b, const json_t *list, int64_t tot)
{
    const json_t *it, *w;
    size_t i, j;

    evbuffer_add_printf(b,
                        "<h3>Cloned images: one CMID, several names (%lld)</h3>\n"
                        "<div class=\"scroll\"><table class=\"f\"><tr><th>CMID</th><th>Host</th>"
                        "<th>Workstations</th></tr>\n",
                        (long long)tot);
    json_array_foreach(list, i, it)
    {
        evbuffer_add_printf(b, "<tr><td class=\"ws\" data-l=\"CMID\">");
        mx_html(b, mx_js(it, "cmid"));
        evbuffer_add_printf(b, "</td><td class=\"name\" data-l=\"Host\">");
        mx_html(b, mx_js(it, "host"));
        evbuffer_add_printf(b, "</td><td class=\"ws\" data-l=\"Workstations\">");
        json_array_foreach(json_object_get(it, "workstations"), j, w)
        {
            if (j)
                evbuffer_add_printf(b, ", ");
            mx_html(b, mx_js(w, "name"));
        }
        evbuffer_add_printf(b, "</td></tr>\n");
    }
    evbuffer_add_printf(b, "</table></div>\n");
    capped(b, list, tot);
}

void mx_status_findings(struct evbuffer *b, const struct mx_page *p)
{
    const json_t *r = p->report, *f = json_object_get(r, "findings");
    const json_t *tot = json_object_get(r, "totals");
    char t[40], a[32];

    evbuffer_add_printf(b, "<h2>Findings</h2>\n");
    if (!r) {
        evbuffer_add_printf(
            b, "<p>%s", p->report_busy ? "The first report is being computed." : "No report yet.");
        if (p->report_err) {
            evbuffer_add_printf(b, " The last attempt failed: ");
            mx_html(b, p->report_err);
        }
        evbuffer_add_printf(b, "</p>\n");
        return;
    }
    evbuffer_add_printf(b,
                        "<div class=\"meta\">From the report of %s (%s ago): %lld clients "
                        "seen in %lld days, %lld pins.</div>\n",
                        mx_time_text(p->report_at, t, sizeof(t)),
                        mx_age_text(p->now - p->report_at, a, sizeof(a)),
                        (long long)mx_ji(r, "clients", 0), (long long)mx_ji(r, "window_days", 0),
                        (long long)mx_ji(r, "pins", 0));
    int64_t bt = mx_ji(tot, "below_threshold", 0), sk = mx_ji(tot, "clock_skew", 0);
    int64_t cl = mx_ji(tot, "cloned_images", 0), ch = mx_ji(tot, "cmid_changed", 0);
    int64_t st = mx_ji(tot, "stale", 0);
    if (bt)
        below_threshold(b, json_object_get(f, "below_threshold"), bt);
    if (sk)
        clock_skew(b, json_object_get(f, "clock_skew"), sk);
    if (cl)
        cloned(b, json_object_get(f, "cloned_images"), cl);
    if (ch || st)
        evbuffer_add_printf(b,
                            "<p>%lld clients changed their CMID, %lld were not seen for %lld "
                            "days (kmsrelayctl report lists them).</p>\n",
                            (long long)ch, (long long)st, (long long)mx_ji(r, "stale_days", 7));
    if (!bt && !sk && !cl && !ch && !st)
        evbuffer_add_printf(b, "<p>No findings.</p>\n");
    if (p->report_err) {
        evbuffer_add_printf(b, "<p class=\"why\">The latest report failed: ");
        mx_html(b, p->report_err);
        evbuffer_add_printf(b, "</p>\n");
    }
}

static void last_update(struct evbuffer *b, const json_t *z, int64_t now)
{
    const json_t *l = json_object_get(z, "last");
    char t[40], a[32];
    int64_t retry = mx_ji(z, "next_retry", 0);

    if (!json_is_object(l)) {
        evbuffer_add_printf(b, "<div class=\"kv\">no update sent yet</div>");
        return;
    }
    bool ok = strcmp(mx_js(l, "status"), "ok") == 0;
    evbuffer_add_printf(b, "<div class=\"kv\">last DNS operation: ");
    mx_html(b, mx_js(l, "op"));
    evbuffer_add_printf(b, " <span class=\"badge %s\">", ok ? "ok" : "bad");
    mx_html(b, mx_js(l, "status"));
    evbuffer_add_printf(b, "</span> at %s", mx_time_text(mx_ji(l, "when", 0), t, sizeof(t)));
    if (*mx_js(l, "server")) {
        evbuffer_add_printf(b, " from ");
        mx_html(b, mx_js(l, "server"));
    }
    if (*mx_js(l, "message") && !ok) {
        evbuffer_add_printf(b, "<div class=\"why\">");
        mx_html(b, mx_js(l, "message"));
        evbuffer_add_printf(b, "</div>");
    }
    if (mx_ji(z, "failures", 0))
        evbuffer_add_printf(b, " &middot; %lld failures", (long long)mx_ji(z, "failures", 0));
    if (retry > 0)
        evbuffer_add_printf(b, " &middot; retry in %s", mx_age_text(retry - now, a, sizeof(a)));
    evbuffer_add_printf(b, "</div>");
}

static void zone(struct evbuffer *b, const json_t *z, int64_t now)
{
    const json_t *rr;
    size_t i;
    bool pub = json_is_true(json_object_get(z, "published"));
    const char *want = mx_js(z, "desired");

    evbuffer_add_printf(b, "<div class=\"card %s\"><span class=\"name\">", pub ? "up" : "down");
    mx_html(b, mx_js(z, "zone"));
    evbuffer_add_printf(b, "</span> <span class=\"badge %s\">%s</span>", pub ? "ok" : "bad",
                        pub ? "published" : "not published");
    if (strcmp(want, pub ? "published" : "withdrawn") != 0) {
        evbuffer_add_printf(b, " <span class=\"badge warn\">want ");
        mx_html(b, want);
        evbuffer_add_printf(b, "</span>");
    }
    if (json_is_true(json_object_get(z, "fail_static")))
        evbuffer_add_printf(b, " <span class=\"badge warn\">fail-static</span>");
    if (json_is_true(json_object_get(z, "damped")))
        evbuffer_add_printf(b, " <span class=\"badge warn\">damped</span>");
    evbuffer_add_printf(b, "<div class=\"kv\">");
    mx_html(b, mx_js(z, "owner"));
    evbuffer_add_printf(b, " &rarr; ");
    mx_html(b, mx_js(z, "target"));
    evbuffer_add_printf(b, ":%lld &middot; backends %s</div>", (long long)mx_ji(z, "port", 0),
                        strcmp(mx_js(z, "service"), "up") == 0 ? "up" : "down");
    if (json_array_size(json_object_get(z, "records"))) {
        evbuffer_add_printf(b, "<pre>");
        json_array_foreach(json_object_get(z, "records"), i, rr)
        {
            mx_html(b, json_string_value(rr));
            evbuffer_add_printf(b, "\n");
        }
        evbuffer_add_printf(b, "</pre>");
    }
    last_update(b, z, now);
    evbuffer_add_printf(b, "</div>\n");
}

static void discovery(struct evbuffer *b, const json_t *list)
{
    const json_t *d;
    size_t i;

    evbuffer_add_printf(
        b, "<h3>Discovery</h3>\n<div class=\"scroll\"><table class=\"f\"><tr><th>Name</th>"
           "<th>Status</th><th>Hosts</th><th></th></tr>\n");
    json_array_foreach(list, i, d)
    {
        evbuffer_add_printf(b, "<tr><td class=\"name\" data-l=\"Name\">");
        mx_html(b, mx_js(d, "name"));
        evbuffer_add_printf(b, "</td><td data-l=\"Status\">");
        mx_html(b, mx_js(d, "status"));
        evbuffer_add_printf(b, "</td><td class=\"n\" data-l=\"Hosts\">%zu</td><td class=\"ws\">",
                            json_array_size(json_object_get(d, "hosts")));
        mx_html(b, mx_js(d, "message"));
        evbuffer_add_printf(b, "</td></tr>\n");
    }
    evbuffer_add_printf(b, "</table></div>\n");
}

void mx_status_dns(struct evbuffer *b, const struct mx_page *p)
{
    const json_t *zones = json_object_get(p->dns, "zones");
    const json_t *disc = json_object_get(p->dns, "discovery");
    const json_t *z;
    size_t i;

    evbuffer_add_printf(b, "<h2>DNS</h2>\n");
    if (!json_array_size(zones) && !json_array_size(disc)) {
        evbuffer_add_printf(b, "<p>Not publishing and not discovering: no dns.zones or "
                               "dns.discover configured.</p>\n");
        return;
    }
    if (json_array_size(zones)) {
        evbuffer_add_printf(b, "<div class=\"cards\">\n");
        json_array_foreach(zones, i, z) zone(b, z, p->now);
        evbuffer_add_printf(b, "</div>\n");
    }
    if (json_array_size(disc))
        discovery(b, disc);
}
