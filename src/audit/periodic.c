/*
 * periodic.c - kmsrelayd's periodic DNS audit (audit.h has the contract).
 *
 * The event loop owns the timer; each run happens off the loop
 * (kr_offload_start, offload.h) with a private copy of the config, because
 * collecting and probing block (kr_dns_*_sync, connect + bind); its result
 * comes back on the loop as soon as the run ends. The loop never waits on
 * the run except in destroy, which cancels it. At most one run at a time; a
 * run that is still going when the next is due simply delays it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "audit/audit-internal.h"
#include "kmsrelay/metrics.h"
#include "kmsrelay/conf.h"
#include "kmsrelay/log.h"
#include "kmsrelay/offload.h"
#include "kmsrelay/store.h"
#include "peer/peer.h"

#define FIRST_RUN_MS 10000 /* let the publisher publish before the first look */

struct kr_audit_periodic {
    struct event_base *base;
    struct kr_store *store;
    struct kr_conf *conf; /* current config (loop thread) */
    struct event *tick;
    struct kr_offload *run;       /* the run in progress (loop thread), NULL when idle */
    struct kr_conf *run_conf;     /* the run's copy */
    json_t *result;               /* written by the run, read once it is done */
    json_t *last;                 /* loop thread: the last finished report */
    const struct kr_peers *peers; /* link states of the peer relays (issue 15) */
    struct kr_audit_peer run_peers[KR_CONF_MAX_PEERS]; /* the run's snapshot of them */
    size_t run_n_peers;
    int64_t started; /* a peer never up counts as down since then */
};

static void schedule(struct kr_audit_periodic *p, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(p->tick, &tv);
}

static int enabled(const struct kr_conf *c)
{
    return c->dns_audit_interval_ms > 0 && c->n_dns_zones > 0;
}

/* Reads the sanctioned-hosts file: names or addresses, '#' comments. */
static size_t read_sanctioned(const char *path, char (*out)[KR_AUDIT_NAME_MAX], size_t max)
{
    FILE *f = path[0] ? fopen(path, "r") : NULL;
    char line[512];
    size_t n = 0;
    if (!f) {
        if (path[0])
            kr_log(KR_LOG_WARN, "event=dns_audit_error msg=\"cannot read dns.sanctioned_file\"");
        return 0;
    }
    while (fgets(line, sizeof(line), f) && n < max) {
        char *save = NULL;
        line[strcspn(line, "#")] = '\0';
        for (char *t = strtok_r(line, ", \t\r\n", &save); t && n < max;
             t = strtok_r(NULL, ", \t\r\n", &save))
            snprintf(out[n++], KR_AUDIT_NAME_MAX, "%s", t);
    }
    fclose(f);
    return n;
}

static void worker(struct kr_offload *run, void *arg)
{
    struct kr_audit_periodic *p = arg;
    const int *cancel = kr_offload_cancel_flag(run);
    const struct kr_conf *c = p->run_conf;
    struct kr_audit_result r = {0};
    struct kr_dns_key *keys = calloc(c->n_dns_zones ? c->n_dns_zones : 1, sizeof(*keys));
    char(*sanc)[KR_AUDIT_NAME_MAX] = calloc(256, KR_AUDIT_NAME_MAX);
    const char **sp = calloc(256, sizeof(*sp));
    uint64_t t0 = kr_now_us();

    if (keys && sanc && sp) {
        for (size_t i = 0; i < c->n_dns_zones; i++) {
            const struct kr_conf_dns_zone *z = &c->dns_zones[i];
            const char *name = z->name;
            char err[512];
            struct kr_audit_opts o = {0};
            o.zones = &name;
            o.n_zones = 1;
            o.servers = z->servers;
            o.n_servers = z->n_servers;
            o.timeout_ms = (unsigned)c->dns_timeout_ms;
            o.cancel = cancel;
            if (z->key_file[0] && kr_dns_key_load(z->key_file, z->key_name[0] ? z->key_name : NULL,
                                                  &keys[i], err, sizeof(err)) == 0)
                o.key = &keys[i];
            if (z->gss_keytab[0]) { /* an AD zone: its directory too, with Kerberos */
                o.gss_keytab = z->gss_keytab;
                o.gss_principal = z->gss_principal;
            }
            if (kr_audit_collect(&o, &r) != 0)
                break;
        }
        struct kr_audit_opts o = {0};
        o.timeout_ms = (unsigned)c->dns_timeout_ms;
        o.cancel = cancel;
        o.resolvers = c->dns_resolvers; /* targets outside the zone */
        o.n_resolvers = c->n_dns_resolvers;
        kr_audit_probe_all(&o, &r);
        kr_audit_history(p->store, &r, kr_wall_s());

        struct kr_audit_policy pol = {0};
        size_t n = read_sanctioned(c->dns_sanctioned_file, sanc, 256);
        for (size_t i = 0; i < n; i++)
            sp[i] = sanc[i];
        pol.instance_id = c->instance_id;
        pol.peers = p->run_peers;
        pol.n_peers = p->run_n_peers;
        pol.peer_stale_s = c->peer_stale_ms / 1000;
        pol.sanctioned = sp;
        pol.n_sanctioned = n;
        pol.now = kr_wall_s();
        pol.dead_after_s =
            c->dns_dead_after_ms ? c->dns_dead_after_ms / 1000 : KR_AUDIT_DEAD_AFTER_DEFAULT_S;
        if (c->n_dns_zones && c->dns_zones[0].target[0]) {
            pol.self_target = c->dns_zones[0].target;
            pol.self_port = (uint16_t)c->dns_zones[0].port;
        }
        if (kr_audit_classify_all(&r, &pol) >= 0 && !kr_offload_cancelled(run))
            p->result = kr_audit_json(&r, &pol);
    }
    if (p->result) {
        kr_audit_log(p->result, (kr_now_us() - t0) / 1000);
        char *text = json_dumps(p->result, JSON_COMPACT);
        if (p->store && text && strlen(text) <= KR_KV_VAL_MAX)
            kr_store_kv_put(p->store, KR_AUDIT_KV_LAST, text, strlen(text));
        free(text);
    }
    for (size_t i = 0; keys && i < c->n_dns_zones; i++)
        kr_dns_key_clear(&keys[i]);
    free(keys);
    free(sanc);
    free(sp);
    kr_audit_result_free(&r);
}

/* Findings by class for /metrics (kmsrelay_dns_audit_findings). */
static void export_metrics(const json_t *report)
{
    unsigned per_class[KR_AUDIT_NCLASS] = {0};
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(report, "findings"), i, f)
    {
        const char *cls = json_string_value(json_object_get(f, "class"));
        for (int c = 0; cls && c < KR_AUDIT_NCLASS; c++)
            if (strcmp(cls, kr_audit_class_name(c)) == 0)
                per_class[c]++;
    }
    kr_metrics_dns_audit(per_class, KR_AUDIT_NCLASS, kr_wall_s());
}

/* On the loop once a run ended: keep its report and export it. */
static void run_done(void *arg)
{
    struct kr_audit_periodic *p = arg;
    p->run = NULL;
    free(p->run_conf);
    p->run_conf = NULL;
    if (p->result) {
        json_decref(p->last);
        p->last = p->result;
        p->result = NULL;
        export_metrics(p->last);
    }
}

/* Loop thread: the peers' link states for the run (it runs in another
 * thread, the replication service belongs to this one). */
static void snapshot_peers(struct kr_audit_periodic *p)
{
    struct kr_peer_status st[KR_CONF_MAX_PEERS];
    size_t n = p->peers ? kr_peers_status(p->peers, st, KR_CONF_MAX_PEERS) : 0;
    p->run_n_peers = 0;
    for (size_t i = 0; i < n && i < KR_CONF_MAX_PEERS; i++) {
        struct kr_audit_peer *a = &p->run_peers[p->run_n_peers++];
        _Static_assert(sizeof(a->id) == sizeof(st[i].name), "peer names fit");
        memcpy(a->id, st[i].name, sizeof(a->id));
        a->link_up = st[i].up;
        a->down_since = st[i].down_since ? st[i].down_since : p->started;
    }
}

void kr_audit_periodic_set_peers(struct kr_audit_periodic *p, const struct kr_peers *peers)
{
    if (p)
        p->peers = peers;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct kr_audit_periodic *p = arg;
    (void)fd;
    (void)what;
    if (!enabled(p->conf))
        return;
    schedule(p, p->conf->dns_audit_interval_ms);
    if (p->run)
        return; /* the previous run is still going: skip this one */
    if (!(p->run_conf = malloc(sizeof(*p->run_conf))))
        return;
    memcpy(p->run_conf, p->conf, sizeof(*p->conf));
    snapshot_peers(p);
    if (!(p->run = kr_offload_start(p->base, worker, run_done, p))) {
        kr_log(KR_LOG_WARN, "event=dns_audit_error msg=\"cannot start the audit thread\"");
        free(p->run_conf);
        p->run_conf = NULL;
    }
}

struct kr_audit_periodic *kr_audit_periodic_create(struct event_base *base, const struct kr_conf *c,
                                                   struct kr_store *store)
{
    struct kr_audit_periodic *p = calloc(1, sizeof(*p));
    if (!p || !(p->conf = malloc(sizeof(*p->conf))) || !(p->tick = evtimer_new(base, on_tick, p))) {
        kr_audit_periodic_destroy(p);
        return NULL;
    }
    p->base = base;
    p->store = store;
    p->started = kr_wall_s();
    memcpy(p->conf, c, sizeof(*c));
    if (enabled(c))
        schedule(p,
                 FIRST_RUN_MS < c->dns_audit_interval_ms ? FIRST_RUN_MS : c->dns_audit_interval_ms);
    return p;
}

void kr_audit_periodic_apply(struct kr_audit_periodic *p, const struct kr_conf *c)
{
    uint64_t was = p->conf->dns_audit_interval_ms;
    memcpy(p->conf, c, sizeof(*c));
    if (!enabled(c))
        evtimer_del(p->tick);
    else if (was != c->dns_audit_interval_ms || !evtimer_pending(p->tick, NULL))
        schedule(p, c->dns_audit_interval_ms);
}

void kr_audit_periodic_destroy(struct kr_audit_periodic *p)
{
    if (!p)
        return;
    if (p->run) {
        kr_offload_cancel(p->run); /* waits for it; run_done is not called */
        p->run = NULL;
        json_decref(p->result);
        free(p->run_conf);
    }
    if (p->tick)
        event_free(p->tick);
    json_decref(p->last);
    free(p->conf);
    free(p);
}

json_t *kr_audit_periodic_json(struct kr_audit_periodic *p)
{
    return p && p->last ? json_incref(p->last) : NULL;
}
