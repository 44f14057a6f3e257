/*
 * discover.c - the host table's side of DNS discovery (src/dnsservice/discover.c
 * decides, this file applies): discovered hosts join the table like config
 * hosts (UNKNOWN, health-checked before they take traffic), are drained
 * when DNS stops listing them, and removed like a deleted config host when
 * they stay gone. A reload keeps them (hosts.c skips dynamic hosts).
 *
 * Discovery's own admin changes are not persisted: after a restart DNS is
 * asked again. What an operator set through the control API is persisted
 * by kr_relay_set_admin and wins (a discovery drain never overrides it,
 * and a host an operator drained is not made ready again by DNS).
 */
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/relay-internal.h"

static struct kr_host *find_any(struct kr_relay *r, const char *name)
{
    for (size_t i = 0; i < r->n_hosts; i++)
        if (strcmp(r->hosts[i]->conf.name, name) == 0)
            return r->hosts[i];
    return NULL;
}

static bool same_addr(const struct kr_addr *a, const struct kr_addr *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static void set_admin_quiet(struct kr_host *h, int admin, const char *why)
{
    if (h->admin == admin)
        return;
    kr_log(KR_LOG_INFO, "event=host_admin host=%s from=%s to=%s health=%s reason=\"%s\"",
           h->conf.name, kr_admin_name(h->admin), kr_admin_name(admin), kr_health_name(h->health),
           why);
    h->admin = (uint8_t)admin;
}

static int update(struct kr_relay *r, struct kr_host *h, const struct kr_conf_host *hc)
{
    char a[KR_ADDRSTRLEN];
    bool moved = !same_addr(&h->conf.addr, &hc->addr), revived = h->removed;

    if (!h->dynamic && !h->removed)
        return KR_EEXIST;
    h->dynamic = true;
    if (h->conf.weight != hc->weight || h->conf.priority != hc->priority)
        kr_log(KR_LOG_INFO, "event=host_changed host=%s weight=%u priority=%u source=dns", hc->name,
               hc->weight, hc->priority);
    h->conf.weight = hc->weight;
    h->conf.priority = hc->priority;
    /* The weight in force: an operator's weight wins over the SRV record's. */
    h->hrw.weight = h->op_weight ? h->op_weight : hc->weight;
    if (moved || revived) {
        h->conf.addr = hc->addr;
        kr_addr_format((const struct sockaddr *)&hc->addr.ss, a);
        kr_log(KR_LOG_INFO, "event=host_%s host=%s addr=%s source=dns",
               revived ? "added" : "changed", hc->name, a);
        h->removed = false;
        kr_health_stop(h);
        kr_health_set(h, KR_HEALTH_UNKNOWN, moved ? "address changed in DNS" : "back in DNS");
        h->rise_cnt = h->fall_cnt = 0;
        if (revived)
            h->admin = KR_ADMIN_READY;
        kr_health_start(h);
        if (moved)
            kr_backend_close_host(h); /* the pool talks to the old address */
    }
    if (h->dyn_drained) {
        h->dyn_drained = false;
        if (h->admin == KR_ADMIN_DRAIN)
            set_admin_quiet(h, KR_ADMIN_READY, "listed in DNS again");
    }
    return 0;
}

int kr_relay_dyn_add(struct kr_relay *r, const struct kr_conf_host *hc)
{
    struct kr_host *h = find_any(r, hc->name);
    if (h)
        return update(r, h, hc);
    if (r->n_hosts >= KR_RELAY_MAX_HOSTS)
        return KR_ENOSPC;
    struct kr_host **tab = realloc(r->hosts, (r->n_hosts + 1) * sizeof(*tab));
    if (!tab)
        return KR_ENOMEM;
    r->hosts = tab;
    if (!(h = relay_host_new(r, hc, true)))
        return KR_ENOMEM;
    r->hosts[r->n_hosts++] = h;
    char a[KR_ADDRSTRLEN];
    kr_addr_format((const struct sockaddr *)&hc->addr.ss, a);
    kr_log(KR_LOG_INFO,
           "event=host_added host=%s addr=%s weight=%u priority=%u admin=%s source=dns",
           h->conf.name, a, h->hrw.weight, h->conf.priority, kr_admin_name(h->admin));
    kr_health_start(h);
    return 0;
}

int kr_relay_dyn_drain(struct kr_relay *r, const char *name)
{
    struct kr_host *h = find_any(r, name);
    if (!h || !h->dynamic || h->removed)
        return KR_ENOENT;
    if (h->admin == KR_ADMIN_READY && !h->dyn_drained) {
        h->dyn_drained = true;
        set_admin_quiet(h, KR_ADMIN_DRAIN, "no longer listed in DNS");
    }
    return 0;
}

int kr_relay_dyn_remove(struct kr_relay *r, const char *name)
{
    struct kr_host *h = find_any(r, name);
    if (!h || !h->dynamic || h->removed)
        return KR_ENOENT;
    kr_log(KR_LOG_INFO, "event=host_removed host=%s conns=%u source=dns", name, h->n_conns);
    h->removed = true;
    h->admin = KR_ADMIN_RETIRED; /* pins move on next contact */
    kr_health_stop(h);
    kr_backend_close_host(h);
    relay_hosts_reap(r);
    return 0;
}
