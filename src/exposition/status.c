/*
 * status.c - the status page (status.h): head with the style sheet, a
 * summary line, one card per backend host (health with the last check's
 * result, admin state, weight, pins, and per application the host's count
 * against the threshold as the report computed them), then the findings
 * and the DNS state (status_sections.c).
 *
 * Host state is read from the relay as the page is made; counts against
 * thresholds and findings come from the cached report (status_report.c),
 * whose time the page shows.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "kmsrelay/err.h"
#include "kmsrelay/netaddr.h"
#include "exposition/exposition-internal.h"
#include "exposition/html.h"
#include "exposition/status.h"
#include "relay/relay.h"

static const char STYLE[] =
    ":root{color-scheme:light dark}"
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;"
    "max-width:64rem;padding:.6rem .8rem 2rem}"
    "h1{font-size:1.3rem;margin:.3rem 0}"
    "h2{font-size:1.1rem;margin:1.4rem 0 .5rem;border-bottom:1px solid #8886}"
    "h3{font-size:1rem;margin:.8rem 0 .3rem}"
    ".meta{color:#777;font-size:.85rem}"
    ".summary{margin:.5rem 0;display:flex;flex-wrap:wrap;gap:.35rem}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr));gap:.6rem}"
    ".card{border:1px solid #8887;border-left:.4rem solid #999;border-radius:.4rem;"
    "padding:.45rem .7rem}"
    ".card.up{border-left-color:#2e8b3e}.card.down{border-left-color:#c0392b}"
    ".badge{display:inline-block;padding:0 .5rem;border-radius:1rem;font-size:.8rem;"
    "font-weight:600;color:#fff;background:#777;white-space:nowrap}"
    ".badge.ok,.badge.up{background:#2e8b3e}.badge.bad,.badge.down{background:#c0392b}"
    ".badge.warn{background:#a86a00}"
    ".name{font-weight:600;overflow-wrap:break-word}"
    ".why{font-size:.85rem;color:#a33;overflow-wrap:break-word}"
    ".kv{font-size:.9rem;color:#555}"
    "@media (prefers-color-scheme:dark){.kv{color:#bbb}.why{color:#f88}}"
    ".scroll{overflow-x:auto}"
    "table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.2rem 0}"
    "th,td{text-align:left;padding:.2rem .45rem;border-bottom:1px solid #8884;vertical-align:top}"
    "td.n,td.name,th{white-space:nowrap}td.n{text-align:right}"
    ".ws{overflow-wrap:break-word}"
    "pre{font:.8rem/1.35 ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere;"
    "margin:.2rem 0}"
    "ul{margin:.2rem 0;padding-left:1.2rem}"
    /* Narrow screens: each finding row becomes a small block of labelled
     * lines instead of a table wider than the phone. */
    "@media (max-width:40rem){table.f tr:first-child{display:none}"
    "table.f tr{display:block;border-bottom:1px solid #8886;padding:.25rem 0}"
    "table.f td{display:block;border:0;padding:.05rem .2rem;text-align:left;white-space:normal}"
    "table.f td[data-l]::before{content:attr(data-l) \": \";color:#777;font-size:.85rem}}";

const char *mx_js(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

int64_t mx_ji(const json_t *o, const char *key, int64_t dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

const char *mx_time_text(int64_t t, char *out, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, cap, "never");
    return out;
}

const char *mx_age_text(int64_t s, char *out, size_t cap)
{
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(out, cap, "%lld s", (long long)s);
    else if (s < 7200)
        snprintf(out, cap, "%lld min", (long long)(s / 60));
    else if (s < 172800)
        snprintf(out, cap, "%lld h", (long long)(s / 3600));
    else
        snprintf(out, cap, "%lld d", (long long)(s / 86400));
    return out;
}

static const char *lower_health(int h)
{
    return h == KR_HEALTH_UP ? "up" : h == KR_HEALTH_DOWN ? "down" : "unknown";
}

static bool host_shown(const struct kr_host *h)
{
    return h && !h->removed;
}

/* The report's totals member, 0 without a report. */
static int64_t total(const struct mx_page *p, const char *what)
{
    return mx_ji(json_object_get(p->report, "totals"), what, 0);
}

static void badge(struct evbuffer *b, const char *cls, const char *fmt, long long n)
{
    evbuffer_add_printf(b, "<span class=\"badge %s\">", cls);
    evbuffer_add_printf(b, fmt, n);
    evbuffer_add_printf(b, "</span>");
}

static void summary(struct evbuffer *b, const struct mx_page *p)
{
    size_t n = 0, up = 0, down = 0, zones = 0, pub = 0;
    const json_t *z;
    size_t i;

    for (i = 0; p->relay && i < p->relay->n_hosts; i++)
        if (host_shown(p->relay->hosts[i])) {
            n++;
            up += p->relay->hosts[i]->health == KR_HEALTH_UP;
            down += p->relay->hosts[i]->health == KR_HEALTH_DOWN;
        }
    evbuffer_add_printf(b, "<div class=\"summary\">");
    char f[64];
    snprintf(f, sizeof(f), "%%lld of %zu hosts up", n);
    badge(b, up == n && n ? "ok" : up ? "warn" : "bad", f, (long long)up);
    if (down)
        badge(b, "bad", "%lld down", (long long)down);
    static const char *const kinds[][2] = {{"below_threshold", "below threshold"},
                                           {"clock_skew", "clock skew"},
                                           {"cloned_images", "cloned images"}};
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        long long t = (long long)total(p, kinds[i][0]);
        if (t) {
            snprintf(f, sizeof(f), "%%lld %s", kinds[i][1]);
            badge(b, "warn", f, t);
        }
    }
    json_array_foreach(json_object_get(p->dns, "zones"), i, z)
    {
        zones++;
        pub += json_is_true(json_object_get(z, "published"));
    }
    if (zones) {
        snprintf(f, sizeof(f), "DNS: published in %%lld of %zu zone%s", zones,
                 zones == 1 ? "" : "s");
        badge(b, pub == zones ? "ok" : "bad", f, (long long)pub);
    }
    evbuffer_add_printf(b, "</div>\n");
}

/* Per application: the host's count against its threshold (the report's
 * "applications"[].hosts[] rows for this host). */
static void host_counts(struct evbuffer *b, const struct mx_page *p, const char *name)
{
    const json_t *app, *row;
    size_t i, j, rows = 0;

    json_array_foreach(json_object_get(p->report, "applications"), i, app)
    {
        json_array_foreach(json_object_get(app, "hosts"), j, row)
        {
            if (strcmp(mx_js(row, "host"), name) != 0)
                continue;
            if (!rows++)
                evbuffer_add_printf(b, "<table><tr><th>Application</th>"
                                       "<th>Count / threshold</th><th></th></tr>");
            bool below = json_is_true(json_object_get(row, "below_threshold"));
            int64_t cnt = mx_ji(row, "reported_count", -1);
            evbuffer_add_printf(b, "<tr><td>");
            mx_html(b, mx_js(app, "application"));
            if (cnt >= 0)
                evbuffer_add_printf(b, "</td><td class=\"n\">%lld", (long long)cnt);
            else
                evbuffer_add_printf(b, "</td><td class=\"n\">none");
            evbuffer_add_printf(b, " / %lld</td><td>", (long long)mx_ji(row, "threshold", 0));
            badge(b, below ? "warn" : "ok", below ? "below" : "ok", 0);
            evbuffer_add_printf(b, "</td></tr>");
        }
    }
    if (rows)
        evbuffer_add_printf(b, "</table>");
    else if (p->report)
        evbuffer_add_printf(b, "<div class=\"kv\">no activations yet</div>");
}

static void host_card(struct evbuffer *b, const struct mx_page *p, const struct kr_host *h)
{
    const char *hs = lower_health(h->health);
    char age[32];
    uint64_t pins;

    evbuffer_add_printf(b, "<div class=\"card %s\"><span class=\"name\">", hs);
    mx_html(b, h->conf.name);
    evbuffer_add_printf(b, "</span> <span class=\"badge %s\">%s</span> ", hs, hs);
    evbuffer_add_printf(b, "<span class=\"badge%s\">%s</span>", h->admin ? " warn" : "",
                        kr_admin_name(h->admin));
    if (h->last_check_us && h->health != KR_HEALTH_UP) {
        uint64_t now = kr_now_us();
        int64_t ago = now > h->last_check_us ? (int64_t)((now - h->last_check_us) / 1000000) : 0;
        evbuffer_add_printf(b, "<div class=\"why\">last check: ");
        mx_html(b, h->last_check_result);
        evbuffer_add_printf(b, " (%s ago)</div>", mx_age_text(ago, age, sizeof(age)));
    }
    char addr[KR_ADDRSTRLEN];
    kr_addr_format((const struct sockaddr *)&h->conf.addr.ss, addr);
    evbuffer_add_printf(b, "<div class=\"kv\">");
    if (h->conf.addr_name[0]) { /* written as a DNS name: the name, then what it resolved to */
        mx_html(b, h->conf.addr_name);
        evbuffer_add_printf(b, ":%u (", h->conf.addr_port);
        mx_html(b, h->conf.addr.len ? addr : "does not resolve");
        evbuffer_add_printf(b, ")");
    } else {
        mx_html(b, addr);
    }
    evbuffer_add_printf(b, " &middot; weight %u &middot; pins ", kr_host_weight(h));
    if (mx_pins_of(h->conf.name, &pins))
        evbuffer_add_printf(b, "%llu", (unsigned long long)pins);
    else
        evbuffer_add_printf(b, "%s", mx_pins_when() ? "0" : "not counted yet");
    evbuffer_add_printf(b, " &middot; %u connections%s</div>", h->n_conns,
                        h->dynamic ? " &middot; discovered" : "");
    host_counts(b, p, h->conf.name);
    evbuffer_add_printf(b, "</div>\n");
}

static void hosts(struct evbuffer *b, const struct mx_page *p)
{
    evbuffer_add_printf(b, "<h2>Hosts</h2>\n<div class=\"cards\">\n");
    for (size_t i = 0; p->relay && i < p->relay->n_hosts; i++)
        if (host_shown(p->relay->hosts[i]))
            host_card(b, p, p->relay->hosts[i]);
    evbuffer_add_printf(b, "</div>\n");
    if (!p->relay || !p->relay->n_hosts)
        evbuffer_add_printf(b, "<p>No backend hosts.</p>\n");
}

int mx_status_page(struct evbuffer *b, const struct mx_page *p)
{
    size_t before = evbuffer_get_length(b);
    const char *inst = p->relay && p->relay->conf ? p->relay->conf->instance_id : "";
    char t[40];

    evbuffer_add_printf(b,
                        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                        "<meta name=\"viewport\" content=\"width=device-width, "
                        "initial-scale=1\">\n<meta http-equiv=\"refresh\" content=\"%d\">\n"
                        "<title>kmsrelayd ",
                        MX_STATUS_REFRESH_S);
    mx_html(b, inst);
    evbuffer_add_printf(b, "</title>\n<style>%s</style></head>\n<body>\n<h1>kmsrelayd ", STYLE);
    mx_html(b, inst);
    evbuffer_add_printf(b, "</h1>\n<div class=\"meta\">%s &middot; version %s",
                        mx_time_text(p->now, t, sizeof(t)), KR_VERSION);
    if (p->relay && p->relay->started_wall)
        evbuffer_add_printf(b, " &middot; up %s",
                            mx_age_text(p->now - p->relay->started_wall, t, sizeof(t)));
    evbuffer_add_printf(b, " &middot; refreshes every %d s</div>\n", MX_STATUS_REFRESH_S);
    summary(b, p);
    hosts(b, p);
    mx_status_findings(b, p);
    mx_status_dns(b, p);
    evbuffer_add_printf(b, "<p class=\"meta\">Read-only. Prometheus metrics: "
                           "<a href=\"/metrics\">/metrics</a>. Details: kmsrelayctl hosts, "
                           "report, dns.</p>\n</body></html>\n");
    return evbuffer_get_length(b) > before ? 0 : KR_ENOMEM;
}
