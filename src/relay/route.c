/*
 * route.c - where one request goes: its pin, the weighted rendezvous (HRW)
 * ranking of the eligible hosts by priority tier, product refusals and the
 * candidates for threshold assist.
 *
 * A client is the pair (CMID, application id): a machine that activates
 * Windows and Office with one CMID has two pins. A plan is built in three
 * groups, each ranked by tier then HRW on the CMID (so every application of
 * a machine ranks the hosts alike):
 *   1. the pinned host, when it is usable (admin ready or drain, health UP
 *      or UNKNOWN, no refusal of this KMS id); with failback "always" only
 *      if it is also the top of the ranking. A pair with no pin yet goes
 *      first to the host of the machine's other pairs when that host is
 *      eligible for a new client (and does not refuse this KMS id), so the
 *      applications of one machine stay together where they can;
 *   2. the hosts eligible for a new CMID: admin ready, weight > 0, health UP
 *      (UNKNOWN only while no such host is UP, so a fresh start serves at
 *      once), no refusal;
 *   3. last resorts, tried only when all of the above failed within the
 *      budget: ready hosts still UNKNOWN, then DOWN ones (health can lag
 *      reality, and a client must not fail while a host could answer).
 * When refusals alone leave the plan empty the refusals are ignored, so the
 * client gets a real host's answer and never one kmsrelayd remembered.
 *
 * Cost: one store get (plus, for a pair never seen, one short cursor walk of
 * the machine's other pairs, kr_store_pin_cmid_latest: no allocation, no
 * copy of the write queue), O(hosts) work with small stack arrays. The store never fails a request:
 * a read error routes by HRW alone and raises one alarm line per episode.
 */
#include <stdio.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/guid.h"
#include "kmsrelay/log.h"
#include "relay/proxy-internal.h"

#define ROUTE_MAX_HOSTS (2 * KR_CONF_MAX_HOSTS) /* config hosts plus removed ones */

static size_t n_hosts(const struct kr_relay *r)
{
    return r->n_hosts < ROUTE_MAX_HOSTS ? r->n_hosts : ROUTE_MAX_HOSTS;
}

int route_host_index(const struct kr_relay *r, uint64_t key, const char *name)
{
    for (size_t i = 0; i < n_hosts(r); i++) {
        const struct kr_host *h = r->hosts[i];
        if (h->hrw.key == key && (!name || strcmp(h->conf.name, name) == 0))
            return (int)i;
    }
    return -1;
}

int route_host_by_name(const struct kr_relay *r, const char *name)
{
    return route_host_index(r, kr_hrw_key(name), name);
}

bool route_refuses(const struct kr_host *h, const uint8_t kms_id[16], uint64_t now_us)
{
    for (size_t i = 0; i < KR_HOST_REFUSALS; i++) {
        const struct kr_refusal *f = &h->refusals[i];
        if (f->until_us > now_us && memcmp(f->kms_id, kms_id, 16) == 0)
            return true;
    }
    return false;
}

void route_store_trouble(struct kr_relay *r, int rc, const char *what)
{
    if (r->store_degraded_alarm)
        return;
    r->store_degraded_alarm = true;
    kr_log(KR_LOG_ERR,
           "event=store_alarm state=degraded what=\"%s\" error=\"%s\" action=\"routing by "
           "rendezvous hash; pins may not be kept\"",
           what, kr_strerror(rc));
}

static void store_fine(struct kr_relay *r)
{
    if (!r->store_degraded_alarm)
        return;
    r->store_degraded_alarm = false;
    kr_log(KR_LOG_WARN, "event=store_alarm state=ok");
}

/* What a host offers to this request. */
struct elig_ctx {
    const uint8_t *kms_id;
    uint64_t now;
    bool any_up;          /* some ready host is UP for this KMS id */
    bool ignore_refusals; /* every host refuses: ask them anyway */
};

static bool refused(const struct kr_host *h, const struct elig_ctx *e)
{
    return !e->ignore_refusals && route_refuses(h, e->kms_id, e->now);
}

static bool eligible(const struct kr_host *h, const struct elig_ctx *e, bool for_pinned)
{
    if (h->removed || kr_host_unresolved(h) || refused(h, e))
        return false;
    if (for_pinned)
        return (h->admin == KR_ADMIN_READY || h->admin == KR_ADMIN_DRAIN) &&
               h->health != KR_HEALTH_DOWN;
    if (h->admin != KR_ADMIN_READY || h->hrw.weight == 0)
        return false;
    return h->health == KR_HEALTH_UP || (h->health == KR_HEALTH_UNKNOWN && !e->any_up);
}

static bool any_up(const struct kr_relay *r, const struct elig_ctx *e)
{
    for (size_t i = 0; i < n_hosts(r); i++) {
        const struct kr_host *h = r->hosts[i];
        if (!h->removed && h->admin == KR_ADMIN_READY && h->hrw.weight > 0 &&
            h->health == KR_HEALTH_UP && !refused(h, e))
            return true;
    }
    return false;
}

bool kr_route_eligible(const struct kr_relay *r, const struct kr_host *h, const uint8_t kms_id[16],
                       bool for_pinned)
{
    struct elig_ctx e = {kms_id, kr_now_us(), false, false};
    e.any_up = any_up(r, &e);
    return eligible(h, &e, for_pinned);
}

/* Ranks the host indices in `cand` (n of them) for a CMID: lower priority
 * value first, HRW within a tier. Writes at most `max` indices to out. */
static size_t rank(const struct kr_relay *r, const uint8_t cmid[16], const uint16_t *cand, size_t n,
                   uint16_t *out, size_t max)
{
    struct kr_hrw_node nodes[ROUTE_MAX_HOSTS];
    uint16_t map[ROUTE_MAX_HOSTS], order[ROUTE_MAX_HOSTS];
    bool done[ROUTE_MAX_HOSTS] = {false};
    size_t w = 0;
    while (w < max) {
        /* the next tier: the smallest priority not ranked yet */
        bool found = false;
        uint32_t prio = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t p = r->hosts[cand[i]]->conf.priority;
            if (!done[i] && (!found || p < prio)) {
                prio = p;
                found = true;
            }
        }
        if (!found)
            break;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (done[i] || r->hosts[cand[i]]->conf.priority != prio)
                continue;
            done[i] = true;
            nodes[k] = r->hosts[cand[i]]->hrw;
            map[k++] = cand[i];
        }
        size_t got = kr_hrw_rank(nodes, k, cmid, order, k);
        for (size_t j = 0; j < got && w < max; j++)
            out[w++] = map[order[j]];
    }
    return w;
}

static bool in_plan(const struct kr_plan *p, size_t idx)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->hosts[i] == idx)
            return true;
    return false;
}

static void append(struct kr_plan *p, const uint16_t *idx, size_t n)
{
    for (size_t i = 0; i < n && p->n < KR_PLAN_MAX; i++)
        if (!in_plan(p, idx[i]))
            p->hosts[p->n++] = idx[i];
}

/* Hosts worth a last try: admin ready (or the pinned host in drain), not
 * refusing, with the given health. */
static size_t last_resorts(const struct kr_relay *r, const struct elig_ctx *e, int pinned,
                           uint8_t health, uint16_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < n_hosts(r); i++) {
        const struct kr_host *h = r->hosts[i];
        bool admin_ok =
            h->admin == KR_ADMIN_READY || ((int)i == pinned && h->admin == KR_ADMIN_DRAIN);
        if (!h->removed && !kr_host_unresolved(h) && admin_ok && h->hrw.weight > 0 &&
            h->health == health && !refused(h, e))
            out[n++] = (uint16_t)i;
    }
    return n;
}

static void build(struct kr_relay *r, const struct kr_kms_request *kreq, struct kr_plan *plan,
                  struct elig_ctx *e)
{
    uint16_t cand[ROUTE_MAX_HOSTS], ranked[ROUTE_MAX_HOSTS];
    size_t n = 0;
    plan->n = 0;
    plan->pin_usable = false;
    e->any_up = any_up(r, e);
    for (size_t i = 0; i < n_hosts(r); i++)
        if (eligible(r->hosts[i], e, false))
            cand[n++] = (uint16_t)i;
    size_t nr = rank(r, kreq->cmid, cand, n, ranked, ROUTE_MAX_HOSTS);

    if (plan->pinned < 0 && plan->machine >= 0 && eligible(r->hosts[plan->machine], e, false))
        plan->hosts[plan->n++] = (uint16_t)plan->machine;
    if (plan->pinned >= 0 && eligible(r->hosts[plan->pinned], e, true)) {
        bool back = r->conf->failback == KR_FAILBACK_ALWAYS && nr > 0 &&
                    ranked[0] != (uint16_t)plan->pinned;
        if (!back) {
            plan->hosts[plan->n++] = (uint16_t)plan->pinned;
            plan->pin_usable = true;
        }
    }
    append(plan, ranked, nr);
    static const uint8_t lagging[] = {KR_HEALTH_UNKNOWN, KR_HEALTH_DOWN};
    for (size_t g = 0; g < 2; g++) {
        n = last_resorts(r, e, plan->pinned, lagging[g], cand);
        nr = rank(r, kreq->cmid, cand, n, ranked, ROUTE_MAX_HOSTS);
        append(plan, ranked, nr);
    }
}

/* The host of the machine's most recently seen other pair, or -1. */
static int machine_host(struct kr_relay *r, const uint8_t cmid[16])
{
    struct kr_pin sib;
    if (kr_store_pin_cmid_latest(r->store, cmid, &sib) != 0)
        return -1;
    return route_host_by_name(r, sib.host);
}

void kr_route_plan(struct kr_relay *r, const struct kr_kms_request *kreq, struct kr_plan *plan,
                   struct kr_pin *pin)
{
    memset(plan, 0, sizeof(*plan));
    memset(pin, 0, sizeof(*pin));
    plan->pinned = -1;
    plan->machine = -1;
    if (r->store) {
        int rc = kr_store_pin_get(r->store, kreq->cmid, kreq->app_id, pin);
        if (rc == 0) {
            plan->have_pin = true;
        } else if (rc == KR_EMALF) {
            /* an unreadable record is replaced by the next pin write */
            kr_log(KR_LOG_WARN, "event=pin_unreadable action=repin");
        } else if (rc != KR_ENOENT) {
            plan->pin_unread = true;
            route_store_trouble(r, rc, "pin lookup");
        }
        if (rc == 0 || rc == KR_ENOENT || rc == KR_EMALF) {
            if (kr_store_degraded(r->store))
                route_store_trouble(r, KR_EIO, "pin commit");
            else
                store_fine(r);
        }
        if (rc != 0)
            memset(pin, 0, sizeof(*pin));
    }
    if (plan->have_pin)
        plan->pinned = route_host_by_name(r, pin->host);
    else if (r->store && !plan->pin_unread)
        plan->machine = machine_host(r, kreq->cmid);

    struct elig_ctx e = {kreq->kms_id, kr_now_us(), false, false};
    build(r, kreq, plan, &e);
    if (plan->n == 0) {
        e.ignore_refusals = true;
        build(r, kreq, plan, &e);
    }
}

void kr_route_note_refusal(struct kr_relay *r, struct kr_host *h, const uint8_t kms_id[16])
{
    uint64_t ttl = r->conf->refusal_ttl_ms;
    if (ttl == 0)
        return;
    uint64_t now = kr_now_us();
    struct kr_refusal *slot = NULL;
    for (size_t i = 0; i < KR_HOST_REFUSALS; i++) {
        struct kr_refusal *f = &h->refusals[i];
        if (memcmp(f->kms_id, kms_id, 16) == 0 && f->until_us > now) {
            f->until_us = now + ttl * 1000;
            return;
        }
        if (!slot || f->until_us < slot->until_us)
            slot = f; /* an expired entry, or the one closest to expiry */
    }
    memcpy(slot->kms_id, kms_id, 16);
    slot->until_us = now + ttl * 1000;
    char id[KR_GUID_STRLEN];
    kr_guid_format(kms_id, id);
    kr_log(KR_LOG_INFO, "event=refusal host=%s kms_id=%s ttl_ms=%llu", h->conf.name, id,
           (unsigned long long)ttl);
}

void kr_route_note_count(struct kr_relay *r, struct kr_host *h, const uint8_t app_id[16],
                         uint32_t count, uint32_t n_policy)
{
    (void)r;
    struct kr_app_count *slot = NULL;
    for (size_t i = 0; i < KR_HOST_APPS; i++) {
        struct kr_app_count *c = &h->counts[i];
        if (c->when_us && memcmp(c->app_id, app_id, 16) == 0) {
            slot = c;
            break;
        }
        if (!slot || c->when_us < slot->when_us)
            slot = c; /* an empty entry, or the oldest */
    }
    memcpy(slot->app_id, app_id, 16);
    slot->count = count;
    slot->n_policy = n_policy;
    slot->when_us = kr_now_us();
}

int kr_route_assist_host(const struct kr_relay *r, int except, const uint8_t app_id[16],
                         uint32_t n_policy, const uint8_t kms_id[16])
{
    uint64_t now = kr_now_us();
    uint64_t fresh = r->conf->count_fresh_ms * 1000;
    int best = -1;
    uint32_t best_count = 0;
    for (size_t i = 0; i < n_hosts(r); i++) {
        const struct kr_host *h = r->hosts[i];
        /* an established host: ready and UP, never one still in question */
        if ((int)i == except || h->removed || h->admin != KR_ADMIN_READY ||
            h->health != KR_HEALTH_UP || route_refuses(h, kms_id, now))
            continue;
        for (size_t j = 0; j < KR_HOST_APPS; j++) {
            const struct kr_app_count *c = &h->counts[j];
            if (!c->when_us || memcmp(c->app_id, app_id, 16) != 0)
                continue;
            if (now - c->when_us <= fresh && c->count >= n_policy &&
                (best < 0 || c->count > best_count ||
                 (c->count == best_count && h->conf.priority < r->hosts[best]->conf.priority))) {
                best = (int)i;
                best_count = c->count;
            }
        }
    }
    return best;
}
