/*
 * service-internal.h - state shared by the files of src/dnsservice:
 * service.c (lifecycle, tick, status), pubzone.c (health hysteresis and the
 * decision what to do next), pubops.c (reads, UPDATEs, the store), guard.c
 * (fail-static probes) and discover.c (backend discovery).
 *
 * Ownership: struct kr_dns owns its zones and discovery names (arrays of
 * pointers), its DNS client and timers. A zone owns its request in flight,
 * its timer and its guard probe.
 */
#ifndef KR_DNSD_INTERNAL_H
#define KR_DNSD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "dnsservice/dnsservice.h"
#include "kmsrelay/dns.h"
#include "kmsrelay/store.h"

#define DNS_TICK_MS 250
#define DNS_FLAPS_KEPT 32
#define DNS_MAX_OTHERS 16

enum dns_op { OP_NONE = 0, OP_READ, OP_UPDATE, OP_GUARD };
enum dns_intent { IN_NONE = 0, IN_PUBLISH, IN_WITHDRAW, IN_RECONCILE, IN_STOP };

struct dns_guard;

struct dns_zone {
    struct kr_dns *d;
    struct kr_conf_dns_zone conf;
    struct kr_dns_key key;
    char owner[KR_DNS_NAME_MAX];         /* _vlmcs._tcp.<zone> */
    uint16_t port;                       /* effective SRV port */
    struct kr_dns_rr want_srv, want_txt; /* what we publish (TTL set when written) */

    /* what we believe is in the zone (store + last success) */
    bool published;
    struct kr_dns_rr pub_srv, pub_txt;
    int64_t pub_since;

    /* service health with hysteresis (pubzone.c) */
    bool svc_up;
    uint64_t cond_since_us; /* the raw condition has differed from svc_up since */
    uint64_t state_since_us;
    uint64_t flaps[DNS_FLAPS_KEPT]; /* recent transition times (ring) */
    unsigned n_flaps;
    bool damped, damp_alerted;

    /* the operation in flight */
    int op, intent;
    struct kr_dns_req *req;
    struct dns_guard *guard;
    struct kr_dns_rr srvset[DNS_MAX_OTHERS * 2], txtset[DNS_MAX_OTHERS * 2];
    size_t n_srvset, n_txtset; /* the RRsets as read (truncated at the caps) */
    uint64_t next_reconcile_us;
    uint64_t retry_at_us; /* after a failure (backoff), 0 = none */
    uint32_t failures;
    double tokens; /* rate limit (UPDATEs per minute) */
    uint64_t tokens_us;
    bool fail_static; /* a withdrawal is being held back (alerted) */
    uint64_t guard_retry_us;
    bool removing;  /* dropped from the config: withdraw, then free */
    bool stop_sent; /* the stop/removal withdrawal was sent (once) */

    /* last result, for status and for not repeating identical log lines */
    struct {
        char op[16];
        int64_t when;
        int status;
        char message[KR_DNS_MSG_MAX];
        char server[KR_ADDRSTRLEN];
    } last;
    bool have_last;
};

struct dns_disc;

struct kr_dns {
    struct kr_dns_env env;
    struct kr_dns_client *client;
    struct dns_zone **zones;
    size_t n_zones;
    struct dns_disc **disc;
    size_t n_disc;
    struct event *tick;
    bool stopping;
    uint64_t stop_deadline_us;
};

/* The configuration in force. */
static inline const struct kr_conf *dns_conf(const struct kr_dns *d)
{
    return d->env.conf(d->env.ctx);
}

/* service.c */
void dns_arm(struct event *ev, uint64_t ms);
/* Servers of a zone for a request (budget 0 = none). */
void dns_zone_servers(const struct dns_zone *z, struct kr_dns_servers *s, uint64_t budget_ms);
/* The resolvers for discovery and guard probes (config, else the system's). */
size_t dns_resolvers(const struct kr_dns *d, struct kr_addr *out, size_t max);
/* True when some backend can take a new client now (ready and UP). */
bool dns_service_up(const struct kr_dns *d);

/* pubzone.c */
struct dns_zone *dns_zone_new(struct kr_dns *d, const struct kr_conf_dns_zone *zc, char *err,
                              size_t errlen);
/* Re-reads the zone's config (reload); returns 0 or KR_E* with err. */
int dns_zone_reconf(struct dns_zone *z, const struct kr_conf_dns_zone *zc, char *err,
                    size_t errlen);
void dns_zone_free(struct dns_zone *z);
void dns_zone_tick(struct dns_zone *z); /* hysteresis, then dns_zone_step */
void dns_zone_step(struct dns_zone *z); /* starts the next operation if none is running */
/* The op finished: success resets the backoff, failure schedules a retry. */
void dns_zone_done(struct dns_zone *z, const char *op, const struct kr_dns_result *res);
json_t *dns_zone_json(const struct dns_zone *z);

/* pubops.c */
void dns_op_read(struct dns_zone *z); /* reads SRV+TXT, then continues the intent */
void dns_op_withdraw(struct dns_zone *z, uint64_t budget_ms); /* our records, no read */
void dns_op_load(struct dns_zone *z);                         /* what the store says we published */
bool dns_rr_ours(const struct dns_zone *z, const struct kr_dns_rr *rr);
/* After the read: decide and send (publish / repair / withdraw). */
void dns_op_after_read(struct dns_zone *z);

/* guard.c: fail-static. Probes the other SRV records (resolve + TCP
 * connect); calls dns_guard_done with how many look healthy. */
void dns_guard_start(struct dns_zone *z);
void dns_guard_cancel(struct dns_zone *z);
void dns_guard_done(struct dns_zone *z, unsigned healthy, const char *evidence);

/* discover.c */
struct dns_disc *dns_disc_new(struct kr_dns *d, const char *name);
void dns_disc_free(struct dns_disc *x);
/* Removes the hosts this name brought (the name left the config). */
void dns_disc_forget(struct dns_disc *x);
const char *dns_disc_name(const struct dns_disc *x);
json_t *dns_disc_json(const struct dns_disc *x);

#endif
