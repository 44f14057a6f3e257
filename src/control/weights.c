/*
 * weights.c - operator weights (POST /v1/hosts/NAME/weight) that survive
 * restarts and reloads.
 *
 * The relay takes a host's weight from the configuration on every start and
 * reload; an operator's weight is kept beside it in the store's kv table:
 *
 *   key   "weight:<host name>"
 *   value 8 bytes: u32 LE operator weight, u32 LE the configured weight it
 *         replaced
 *   e.g.  weight:kms-a = 03 00 00 00 01 00 00 00  (3, set over a configured 1)
 *
 * The rule is the one hosts.c applies to admin states: while the
 * configuration still says the weight the override replaced, the override
 * wins (so an unrelated reload or a restart keeps it); once someone edits
 * the configured weight, the configuration wins and the override is
 * dropped. Setting the configured weight again through the API removes the
 * override. Discovered hosts (no configured weight) keep an override as
 * long as it exists.
 *
 * The kv entry is the only source of truth for the override; the weight in
 * the store's host records (written with admin states) is informational.
 */
#include <stdio.h>
#include <string.h>

#include "control/control-internal.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

static void key_of(const char *name, char *key, size_t cap)
{
    snprintf(key, cap, "weight:%s", name);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t kr_control_config_weight(const struct kr_relay *r, const struct kr_host *h)
{
    for (size_t i = 0; i < r->conf->n_hosts; i++)
        if (strcmp(r->conf->hosts[i].name, h->conf.name) == 0)
            return r->conf->hosts[i].weight;
    return h->conf.weight; /* discovered: no configured weight */
}

static bool configured(const struct kr_relay *r, const struct kr_host *h)
{
    for (size_t i = 0; i < r->conf->n_hosts; i++)
        if (strcmp(r->conf->hosts[i].name, h->conf.name) == 0)
            return true;
    return false;
}

static void set_live(struct kr_host *h, uint32_t w)
{
    h->conf.weight = w;
    h->hrw.weight = w;
}

int kr_control_set_weight(struct kr_relay *r, struct kr_host *h, uint32_t weight)
{
    char key[KR_CONF_NAME_MAX + 16];
    uint8_t val[8];
    uint32_t from = h->conf.weight;
    uint32_t cfg = configured(r, h) ? kr_control_config_weight(r, h) : 0;
    int rc;

    if (weight < 1 || weight > CTL_WEIGHT_MAX)
        return KR_EINVAL;
    set_live(h, weight);
    key_of(h->conf.name, key, sizeof(key));
    if (cfg && weight == cfg) {
        rc = kr_store_kv_del(r->store, key);
        if (rc == KR_ENOENT)
            rc = 0;
    } else {
        put_u32(val, weight);
        put_u32(val + 4, cfg);
        rc = kr_store_kv_put(r->store, key, val, sizeof(val));
    }
    if (rc == 0) {
        /* Keep the host record's weight in step (the admin state's record). */
        struct kr_host_rec rec;
        memset(&rec, 0, sizeof(rec));
        snprintf(rec.name, sizeof(rec.name), "%s", h->conf.name);
        rec.admin = h->admin <= KR_ADMIN_RETIRED ? h->admin : KR_ADMIN_READY;
        rec.weight = weight;
        rec.changed = kr_wall_s();
        rc = kr_store_host_put(r->store, &rec);
    }
    kr_log(KR_LOG_INFO, "event=host_weight host=%s from=%u to=%u config=%u persisted=%s",
           h->conf.name, from, weight, cfg, rc == 0 ? "yes" : "no");
    return rc;
}

void kr_control_weights_apply(struct kr_relay *r)
{
    char key[KR_CONF_NAME_MAX + 16];
    uint8_t val[8];

    for (size_t i = 0; i < r->n_hosts; i++) {
        struct kr_host *h = r->hosts[i];
        size_t len = 0;
        if (h->removed)
            continue;
        key_of(h->conf.name, key, sizeof(key));
        if (kr_store_kv_get(r->store, key, val, sizeof(val), &len) != 0 || len != sizeof(val))
            continue;
        uint32_t w = get_u32(val), was = get_u32(val + 4);
        if (w < 1 || w > CTL_WEIGHT_MAX)
            continue;
        if (configured(r, h) && kr_control_config_weight(r, h) != was) {
            /* The configured weight was edited since: it wins. */
            kr_store_kv_del(r->store, key);
            kr_log(KR_LOG_INFO,
                   "event=host_weight host=%s to=%u reason=\"config changed; operator weight %u "
                   "dropped\"",
                   h->conf.name, h->conf.weight, w);
            continue;
        }
        if (h->conf.weight != w) {
            kr_log(KR_LOG_INFO, "event=host_weight host=%s from=%u to=%u reason=persisted",
                   h->conf.name, h->conf.weight, w);
            set_live(h, w);
        }
    }
}
