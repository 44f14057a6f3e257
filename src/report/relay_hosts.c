/*
 * relay_hosts.c - the daemon's side of the report input: its configured
 * hosts with admin and health state and the counts they last reported
 * (relay.h struct kr_host.counts, learned from every answer).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "kmsrelay/report.h"
#include "relay/relay.h"

size_t kr_report_relay_hosts(const struct kr_relay *r, struct kr_report_host *out, size_t max)
{
    size_t n = 0;
    uint64_t now = kr_now_us();

    for (size_t i = 0; r && i < r->n_hosts && n < max; i++) {
        const struct kr_host *h = r->hosts[i];
        struct kr_report_host *o = &out[n];
        if (h->removed)
            continue;
        memset(o, 0, sizeof(*o));
        snprintf(o->name, sizeof(o->name), "%s", h->conf.name);
        snprintf(o->admin, sizeof(o->admin), "%s", kr_admin_name(h->admin));
        snprintf(o->health, sizeof(o->health), "%s", kr_health_name(h->health));
        o->weight = kr_host_weight(h);     /* in force: an operator's weight included */
        for (char *c = o->health; *c; c++) /* "UP" -> "up", like the admin names */
            *c = (char)tolower((unsigned char)*c);
        for (size_t a = 0; a < KR_HOST_APPS && o->n_counts < KR_REPORT_HOST_APPS; a++) {
            const struct kr_app_count *c = &h->counts[a];
            if (c->when_us == 0)
                continue;
            struct kr_report_count *rc = &o->counts[o->n_counts++];
            memcpy(rc->app_id, c->app_id, 16);
            rc->count = c->count;
            rc->n_policy = c->n_policy;
            rc->age_s = now > c->when_us ? (int64_t)((now - c->when_us) / 1000000) : 0;
        }
        n++;
    }
    return n;
}
