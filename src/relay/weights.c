/*
 * weights.c - a host's operator weight (kmsrelayctl host weight, POST
 * /v1/hosts/NAME/weight): runtime state of the relay's hosts, set by
 * kr_relay_set_weight only, persisted here, and resolved whenever a host
 * joins the table or the configuration is applied (start, reload, a host
 * discovered through DNS), whether or not the control socket is up.
 *
 * A host has two weights: h->conf.weight, what its configuration says (the
 * config file, or the SRV record for a discovered host; written only by
 * configuration and discovery), and h->op_weight, the operator's override
 * (0 = none). The weight in force, h->hrw.weight, is the override when set.
 * Discovery never touches the override.
 *
 * Persistence, in the store's kv table:
 *
 *   key   "weight:<host name>"
 *   value 8 bytes: u32 LE operator weight, u32 LE the configured weight it
 *         replaced (0 for a discovered host)
 *   e.g.  weight:kms-a = 03 00 00 00 01 00 00 00  (3, set over a configured 1)
 *
 * The rule is the one hosts.c applies to admin states: while the
 * configuration still says the weight the override replaced, the override
 * wins (so an unrelated reload or a restart keeps it); once someone edits
 * the configured weight, the configuration wins and the override is
 * dropped. Setting the configured weight again removes the override.
 * Discovered hosts (no configured weight) keep an override as long as it
 * exists. The weight in the store's host records (written with admin
 * states) is informational.
 */
#include <stdio.h>
#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/relay-internal.h"

static void key_of(const char *name, char *key, size_t cap)
{
    snprintf(key, cap, "weight:%s", name);
}

static const struct kr_conf_host *config_entry(const struct kr_conf *c, const char *name)
{
    for (size_t i = 0; c && i < c->n_hosts; i++)
        if (strcmp(c->hosts[i].name, name) == 0)
            return &c->hosts[i];
    return NULL;
}

uint32_t kr_relay_config_weight(const struct kr_relay *r, const struct kr_host *h)
{
    const struct kr_conf_host *hc = h->dynamic ? NULL : config_entry(r->conf, h->conf.name);
    return hc ? hc->weight : h->conf.weight; /* discovered: the SRV record's */
}

static void set_live(struct kr_host *h, uint32_t op)
{
    h->op_weight = op;
    h->hrw.weight = op ? op : h->conf.weight;
}

int kr_relay_set_weight(struct kr_relay *r, struct kr_host *h, uint32_t weight)
{
    char key[KR_CONF_NAME_MAX + 16];
    uint8_t val[8];
    uint32_t from = h->hrw.weight;
    const struct kr_conf_host *hc = h->dynamic ? NULL : config_entry(r->conf, h->conf.name);
    uint32_t cfg = hc ? hc->weight : 0;
    int rc;

    if (weight < 1 || weight > KR_HOST_WEIGHT_MAX)
        return KR_EINVAL;
    key_of(h->conf.name, key, sizeof(key));
    if (cfg && weight == cfg) {
        set_live(h, 0);
        rc = kr_store_kv_del(r->store, key);
        if (rc == KR_ENOENT)
            rc = 0;
    } else {
        set_live(h, weight);
        kr_put_le32(val, weight);
        kr_put_le32(val + 4, cfg);
        rc = kr_store_kv_put(r->store, key, val, sizeof(val));
    }
    if (rc == 0)
        rc = relay_host_persist(r, h); /* the host record's weight in step */
    kr_log(KR_LOG_INFO, "event=host_weight host=%s from=%u to=%u config=%u persisted=%s",
           h->conf.name, from, weight, cfg, rc == 0 ? "yes" : "no");
    return rc;
}

uint32_t kr_relay_stored_weight(struct kr_store *s, const char *name, const struct kr_conf_host *hc,
                                uint32_t *dropped)
{
    char key[KR_CONF_NAME_MAX + 16];
    uint8_t val[8];
    size_t len = 0;

    if (dropped)
        *dropped = 0;
    key_of(name, key, sizeof(key));
    if (kr_store_kv_get(s, key, val, sizeof(val), &len) != 0 || len != sizeof(val))
        return 0;
    uint32_t w = kr_le32(val), was = kr_le32(val + 4);
    if (w < 1 || w > KR_HOST_WEIGHT_MAX)
        return 0;
    if (hc && hc->weight != was) { /* the configured weight was edited since: it wins */
        if (dropped)
            *dropped = w;
        return 0;
    }
    return w;
}

void relay_weight_resolve(struct kr_relay *r, struct kr_host *h, const struct kr_conf_host *hc)
{
    char key[KR_CONF_NAME_MAX + 16];
    uint32_t before = h->hrw.weight, dropped;
    uint32_t w = kr_relay_stored_weight(r->store, h->conf.name, hc, &dropped);

    set_live(h, w);
    if (dropped) {
        key_of(h->conf.name, key, sizeof(key));
        kr_store_kv_del(r->store, key);
        kr_log(KR_LOG_INFO,
               "event=host_weight host=%s to=%u reason=\"config changed; operator weight %u "
               "dropped\"",
               h->conf.name, h->conf.weight, dropped);
    } else if (w && before != w) {
        kr_log(KR_LOG_INFO, "event=host_weight host=%s from=%u to=%u reason=persisted",
               h->conf.name, before, w);
    }
}

void kr_relay_weights_apply(struct kr_relay *r)
{
    for (size_t i = 0; i < r->n_hosts; i++) {
        struct kr_host *h = r->hosts[i];
        if (!h->removed)
            relay_weight_resolve(r, h, h->dynamic ? NULL : config_entry(r->conf, h->conf.name));
    }
}
