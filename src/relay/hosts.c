/*
 * hosts.c - the backend host table: building it from the config, its diff
 * on reload, and the admin state (ready/drain/maint/retired) with its
 * persistence in the store.
 *
 * Admin persistence. The store's hosts table holds the admin state in force
 * (set by the config or by the control API), and a kv entry
 * "cfg_admin:<name>" holds what the config file said last time. On start
 * and on reload, for each host:
 *   - the config's value (an unset `state` counts as "ready") equals what it
 *     said last time: the persisted state wins (an operator's drain through
 *     the control API survives restarts and unrelated reloads);
 *   - the config says something new (edited): the config wins;
 *   - the host has never been seen: the config's value.
 * A host that was never tracked but has a persisted record keeps it unless
 * the config sets a state explicitly.
 *
 * Reload diff, by host name: new hosts start UNKNOWN with checks at once;
 * hosts whose address changed drop their pool and start over as UNKNOWN;
 * weight/priority changes apply to the next ranking; removed hosts take no
 * new traffic (their pins move on next contact, as for a retired host),
 * finish what they carry, and are freed once idle (relay_hosts_reap). The
 * table may be re-laid out: the data path remembers hosts by name and key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/relay-internal.h"

#define ADMIN_NONE 0xFE /* no cfg_admin recorded yet */

static void kv_key(const char *name, char *key, size_t cap)
{
    snprintf(key, cap, "cfg_admin:%s", name);
}

static bool same_addr(const struct kr_addr *a, const struct kr_addr *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

int relay_host_persist(struct kr_relay *r, const struct kr_host *h)
{
    struct kr_host_rec rec;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.name, sizeof(rec.name), "%s", h->conf.name);
    rec.admin = h->admin;
    rec.weight = h->hrw.weight;
    rec.changed = kr_wall_s();
    int rc = kr_store_host_put(r->store, &rec);
    if (rc != 0)
        kr_log(KR_LOG_ERR, "event=store_error what=\"host state of %s\" error=\"%s\"", h->conf.name,
               kr_strerror(rc));
    return rc;
}

static void log_admin(const struct kr_host *h, int from, int to, const char *why)
{
    char q[128];
    kr_log(KR_LOG_INFO, "event=host_admin host=%s from=%s to=%s health=%s reason=%s", h->conf.name,
           kr_admin_name(from), kr_admin_name(to), kr_health_name(h->health),
           kr_logfmt_value(why, q, sizeof(q)));
}

/* What the config said last time ("cfg_admin:<name>"), or ADMIN_NONE. */
static uint8_t last_config_admin(struct kr_store *s, const char *name)
{
    char key[KR_CONF_NAME_MAX + 16];
    uint8_t last = ADMIN_NONE;
    size_t len = 0;
    kv_key(name, key, sizeof(key));
    if (kr_store_kv_get(s, key, &last, 1, &len) != 0 || len != 1 || last > 3)
        last = ADMIN_NONE;
    return last;
}

/* The rule above: the state held (`have`, ADMIN_NONE: none) wins while the
 * config says what it said last time (`last`) or, never recorded, nothing. */
static bool persisted_wins(uint8_t have, uint8_t last, uint8_t cfg)
{
    uint8_t cv = cfg == KR_ADMIN_UNSET ? KR_ADMIN_READY : cfg;
    return have != ADMIN_NONE && (last == cv || (last == ADMIN_NONE && cfg == KR_ADMIN_UNSET));
}

uint8_t kr_relay_stored_admin(struct kr_store *s, const char *name, uint8_t cfg)
{
    struct kr_host_rec rec;
    uint8_t have = kr_store_host_get(s, name, &rec) == 0 && rec.admin <= 3 ? rec.admin : ADMIN_NONE;
    if (persisted_wins(have, last_config_admin(s, name), cfg))
        return have;
    return cfg == KR_ADMIN_UNSET ? KR_ADMIN_READY : cfg;
}

/* The admin state for host h given the config's value (rules above).
 * `current` is the state in force for an existing host, or ADMIN_NONE. */
static void resolve_admin(struct kr_relay *r, struct kr_host *h, uint8_t cfg, uint8_t current)
{
    uint8_t cv = cfg == KR_ADMIN_UNSET ? KR_ADMIN_READY : cfg, have;
    uint8_t last = last_config_admin(r->store, h->conf.name);
    struct kr_host_rec rec;
    char key[KR_CONF_NAME_MAX + 16];
    const char *why;

    kv_key(h->conf.name, key, sizeof(key));
    have = current;
    bool rec_ok = current == ADMIN_NONE && kr_store_host_get(r->store, h->conf.name, &rec) == 0 &&
                  rec.admin <= 3;
    if (rec_ok)
        have = rec.admin;

    uint8_t admin;
    if (persisted_wins(have, last, cfg)) {
        admin = have;
        why = "persisted";
    } else {
        admin = cv;
        why = last == ADMIN_NONE ? "config" : "config changed";
    }
    if (last != cv && kr_store_kv_put(r->store, key, &cv, 1) != 0)
        kr_log(KR_LOG_ERR, "event=store_error what=\"config state of %s\"", h->conf.name);

    int from = current == ADMIN_NONE ? (have == ADMIN_NONE ? KR_ADMIN_READY : have) : current;
    h->admin = admin;
    /* Host writes are synchronous (fsync): only when something changed. */
    if (current == ADMIN_NONE ? !rec_ok || rec.admin != admin || rec.weight != h->hrw.weight
                              : current != admin)
        relay_host_persist(r, h);
    if (from != admin || (current == ADMIN_NONE && admin != KR_ADMIN_READY))
        log_admin(h, from, admin, why);
}

struct kr_host *relay_host_new(struct kr_relay *r, const struct kr_conf_host *hc, bool dynamic)
{
    struct kr_host *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->conf = *hc;
    h->dynamic = dynamic;
    h->hrw.key = kr_hrw_key(hc->name);
    h->hrw.weight = hc->weight;
    h->health = KR_HEALTH_UNKNOWN;
    h->relay = r;
    relay_weight_resolve(r, h, dynamic ? NULL : hc);
    resolve_admin(r, h, hc->admin, ADMIN_NONE);
    return h;
}

void relay_host_free(struct kr_host *h)
{
    if (!h)
        return;
    kr_health_stop(h);
    kr_backend_abort_host(h);
    free(h);
}

struct kr_host *kr_relay_host_by_name(struct kr_relay *r, const char *name)
{
    for (size_t i = 0; i < r->n_hosts; i++)
        if (!r->hosts[i]->removed && strcmp(r->hosts[i]->conf.name, name) == 0)
            return r->hosts[i];
    return NULL;
}

int kr_relay_set_admin(struct kr_relay *r, struct kr_host *h, int admin, const char *why)
{
    if (admin < KR_ADMIN_READY || admin > KR_ADMIN_RETIRED)
        return KR_EINVAL;
    int from = h->admin;
    h->admin = (uint8_t)admin;
    if (from != admin)
        log_admin(h, from, admin, why ? why : "control");
    return relay_host_persist(r, h);
}

static struct kr_host *find_any(struct kr_relay *r, const char *name)
{
    for (size_t i = 0; i < r->n_hosts; i++)
        if (strcmp(r->hosts[i]->conf.name, name) == 0)
            return r->hosts[i];
    return NULL;
}

static bool in_conf(const struct kr_conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_hosts; i++)
        if (strcmp(c->hosts[i].name, name) == 0)
            return true;
    return false;
}

/* An existing host under a (possibly) changed config entry. Returns true
 * when its pool must be closed (address changed) once the table is in place. */
static bool update_host(struct kr_relay *r, struct kr_host *h, const struct kr_conf_host *hc)
{
    bool moved = !same_addr(&h->conf.addr, &hc->addr);
    bool revived = h->removed;
    uint8_t current = h->admin;

    if (revived) {
        h->removed = false;
        current = ADMIN_NONE; /* a removed host ran as retired: ask the store */
        kr_log(KR_LOG_INFO, "event=host_added host=%s again=1", hc->name);
    }
    if (h->conf.weight != hc->weight || h->conf.priority != hc->priority)
        kr_log(KR_LOG_INFO, "event=host_changed host=%s weight=%u priority=%u", hc->name,
               hc->weight, hc->priority);
    h->conf = *hc;
    relay_weight_resolve(r, h, hc);
    if (moved) {
        char a[KR_ADDRSTRLEN];
        kr_addr_format((const struct sockaddr *)&hc->addr.ss, a);
        kr_log(KR_LOG_INFO, "event=host_changed host=%s addr=%s", hc->name, a);
    }
    if (moved || revived) {
        kr_health_stop(h);
        kr_health_set(h, KR_HEALTH_UNKNOWN, moved ? "address changed" : "added again");
        h->rise_cnt = h->fall_cnt = 0;
    }
    resolve_admin(r, h, hc->admin, current);
    if (moved || revived)
        kr_health_start(h);
    return moved;
}

int relay_hosts_check(const struct kr_relay *r, const struct kr_conf *c, char *err, size_t errlen)
{
    size_t busy_removed = 0;
    for (size_t i = 0; i < r->n_hosts; i++)
        if (!in_conf(c, r->hosts[i]->conf.name) &&
            (r->hosts[i]->n_conns || r->hosts[i]->n_waiting || !r->hosts[i]->removed))
            busy_removed++;
    if (c->n_hosts + busy_removed > KR_RELAY_MAX_HOSTS) {
        snprintf(err, errlen, "too many removed hosts still carry requests; retry in a moment");
        return KR_EINVAL;
    }
    return 0;
}

int relay_hosts_apply(struct kr_relay *r, const struct kr_conf *c, struct kr_host **settle,
                      size_t *n_settle, char *err, size_t errlen)
{
    size_t gone = 0;
    for (size_t i = 0; i < r->n_hosts; i++)
        gone += !in_conf(c, r->hosts[i]->conf.name);
    *n_settle = 0;
    if (relay_hosts_check(r, c, err, errlen) != 0)
        return KR_EINVAL;

    /* Allocate everything first so that the swap below cannot fail. */
    struct kr_host **tab = calloc(c->n_hosts + gone + 1, sizeof(*tab));
    struct kr_host *fresh[KR_CONF_MAX_HOSTS] = {0};
    if (!tab)
        goto nomem;
    for (size_t i = 0; i < c->n_hosts; i++)
        if (!find_any(r, c->hosts[i].name) && !(fresh[i] = relay_host_new(r, &c->hosts[i], false)))
            goto nomem;

    size_t n = 0;
    for (size_t i = 0; i < c->n_hosts; i++) {
        struct kr_host *h = fresh[i];
        if (h) {
            char a[KR_ADDRSTRLEN];
            kr_addr_format((const struct sockaddr *)&h->conf.addr.ss, a);
            kr_log(KR_LOG_INFO, "event=host_added host=%s addr=%s weight=%u admin=%s", h->conf.name,
                   a, h->conf.weight, kr_admin_name(h->admin));
            kr_health_start(h);
        } else {
            h = find_any(r, c->hosts[i].name);
            h->dynamic = h->dyn_drained = false; /* the config takes a discovered name over */
            if (update_host(r, h, &c->hosts[i]))
                settle[(*n_settle)++] = h;
        }
        tab[n++] = h;
    }
    /* Removed hosts stay in the table until idle (relay_hosts_reap). */
    for (size_t i = 0; i < r->n_hosts; i++) {
        struct kr_host *h = r->hosts[i];
        if (in_conf(c, h->conf.name))
            continue;
        if (h->dynamic && !h->removed) { /* DNS discovery's (discover.c): kept */
            tab[n++] = h;
            continue;
        }
        if (!h->removed) {
            kr_log(KR_LOG_INFO, "event=host_removed host=%s conns=%u", h->conf.name, h->n_conns);
            h->removed = true;
            /* Retired: pins move on next contact, even for code that only
             * looks at the admin state. Not persisted. */
            h->admin = KR_ADMIN_RETIRED;
            kr_health_stop(h);
            settle[(*n_settle)++] = h;
        }
        tab[n++] = h;
    }
    free(r->hosts);
    r->hosts = tab;
    r->n_hosts = n;
    return 0;

nomem:
    for (size_t i = 0; i < KR_CONF_MAX_HOSTS; i++)
        if (fresh[i])
            relay_host_free(fresh[i]);
    free(tab);
    snprintf(err, errlen, "out of memory");
    return KR_ENOMEM;
}

void relay_hosts_settle(struct kr_relay *r, struct kr_host **settle, size_t n)
{
    /* May run request callbacks synchronously (waiting attempts fail over),
     * so only once the new table and config are in place. */
    for (size_t i = 0; i < n; i++)
        kr_backend_close_host(settle[i]);
    relay_hosts_reap(r);
}

void relay_hosts_reap(struct kr_relay *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_hosts; i++) {
        struct kr_host *h = r->hosts[i];
        if (h->removed && !h->n_conns && !h->n_waiting) {
            kr_log(KR_LOG_DEBUG, "event=host_freed host=%s", h->conf.name);
            relay_host_free(h);
            continue;
        }
        r->hosts[n++] = h;
    }
    r->n_hosts = n;
}
