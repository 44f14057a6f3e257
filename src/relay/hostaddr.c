/*
 * hostaddr.c - the address of a host written as a DNS name, as the
 * daemon's resolver finds it (src/daemon/names.c). The host is its name:
 * a new address changes where connections go and nothing else (pins point
 * to the name; admin state, weight, counts and health stay). The pool to
 * the old address is closed and a check runs at once at the new one, so a
 * dead new address is found as fast as a dead host is.
 *
 * A name that does not resolve leaves the host with no address: DOWN, with
 * "address does not resolve: <why>" as its reason, skipped by routing and
 * by the checks (route.c, health.c look at conf.addr.len) until the name
 * resolves again, when it starts over as UNKNOWN like a new host.
 */
#include <stdio.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/relay-internal.h"

static void lose_addr(struct kr_host *h, const char *why)
{
    char reason[sizeof(h->health_reason)];
    bool had = h->conf.addr.len != 0;

    snprintf(reason, sizeof(reason), "address does not resolve: %s", why ? why : "?");
    memset(&h->conf.addr, 0, sizeof(h->conf.addr));
    /* A check in flight still talks to the old address: its success must
     * not make the host UP again. The timer keeps running (health.c skips
     * a host without an address). */
    kr_health_stop(h);
    kr_health_start(h);
    h->rise_cnt = h->fall_cnt = 0;
    if (h->health != KR_HEALTH_DOWN)
        kr_health_set(h, KR_HEALTH_DOWN, reason);
    else
        snprintf(h->health_reason, sizeof(h->health_reason), "%s", reason);
    if (had) {
        kr_log(KR_LOG_WARN, "event=host_changed host=%s addr=none name=%s", h->conf.name,
               h->conf.addr_name);
        kr_backend_close_host(h);
    }
}

int kr_relay_host_set_addr(struct kr_relay *r, const char *name, const struct kr_addr *addr,
                           const char *why)
{
    struct kr_host *h = kr_relay_host_by_name(r, name);
    char a[KR_ADDRSTRLEN];

    if (!h || h->dynamic || !h->conf.addr_name[0])
        return KR_ENOENT;
    if (!addr) {
        lose_addr(h, why);
        return 0;
    }
    if (h->conf.addr.len == addr->len && memcmp(&h->conf.addr.ss, &addr->ss, addr->len) == 0)
        return 0;
    bool had = h->conf.addr.len != 0;
    h->conf.addr = *addr;
    kr_addr_format((const struct sockaddr *)&addr->ss, a);
    kr_log(KR_LOG_INFO, "event=host_changed host=%s addr=%s name=%s", h->conf.name, a,
           h->conf.addr_name);
    h->rise_cnt = h->fall_cnt = 0;
    h->n_pfail = 0;
    if (!had && h->health == KR_HEALTH_DOWN)
        kr_health_set(h, KR_HEALTH_UNKNOWN, "address resolves again");
    if (had)
        kr_backend_close_host(h); /* the pool talks to the old address */
    kr_health_stop(h);
    kr_health_start(h); /* a check at once, at the new address */
    return 0;
}

void relay_host_addr_text(const struct kr_conf_host *hc, char *out, size_t cap)
{
    char a[KR_ADDRSTRLEN];
    if (hc->addr.len) {
        kr_addr_format((const struct sockaddr *)&hc->addr.ss, a);
        snprintf(out, cap, "%s", a);
    } else {
        snprintf(out, cap, "%s:%u", hc->addr_name, hc->addr_port);
    }
}
