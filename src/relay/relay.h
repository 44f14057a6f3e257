/*
 * relay.h - kmsrelayd's runtime: the internal contract between its modules.
 *
 *   relay.c    lifecycle: create from a config, apply a new config (diff),
 *              listeners, the host table, admin-state persistence, shutdown
 *   front.c    client sessions: read PDUs, answer bind/alter_context itself,
 *              turn each request into a kr_req, send the answer back in the
 *              client's own syntax, call id and context id
 *   route.c    the routing decision for one request: pin, HRW ranking,
 *              eligibility, product refusals, threshold assist candidates
 *   forward.c  drives one kr_req through its attempts (retry on the next
 *              ranked host, refusals, assist), then updates the pin and logs
 *   backend.c  per-host pools of persistent connections with our own NDR32
 *              bind; one outstanding request per connection
 *   health.c   active RPC-bind checks, rise/fall, passive failures
 *   limits.c   allow-list, per-source connection and rate limits
 *
 * Everything runs on one libevent base in one thread; no locks. Objects that
 * callbacks can reach are freed through deferred teardown (a zero-timeout
 * event), never inside their own callback.
 *
 * Ownership: the relay owns hosts, clients, requests and pools. A kr_req is
 * owned by its client session while the client lives; if the client goes
 * away first, the request is detached (req->client = NULL), finishes its
 * backend work (to keep pins and counts right), and frees itself.
 */
#ifndef KR_RELAY_H
#define KR_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "kmsrelay/conf.h"
#include "kmsrelay/hrw.h"
#include "kmsrelay/kms.h"
#include "kmsrelay/netaddr.h"
#include "kmsrelay/rpc.h"
#include "kmsrelay/store.h"

struct kr_relay;
struct kr_client;
struct kr_req;
struct kr_bconn;

enum kr_health { KR_HEALTH_UNKNOWN = 0, KR_HEALTH_UP = 1, KR_HEALTH_DOWN = 2 };
const char *kr_health_name(int h);

#define KR_HOST_APPS 4      /* reported counts kept per host: one per application */
#define KR_HOST_REFUSALS 16 /* (KMS id -> until) refusals kept per host */
#define KR_HOST_PFAIL 16    /* distinct failing clients remembered per host */

/* What a host last reported for one application. */
struct kr_app_count {
    uint8_t app_id[16];
    uint32_t count;
    uint32_t n_policy; /* the policy of the request that got this count */
    uint64_t when_us;  /* monotonic; 0 = never */
};

struct kr_refusal {
    uint8_t kms_id[16];
    uint64_t until_us; /* monotonic; expired entries are reused */
};

struct kr_host_stats {
    uint64_t requests; /* attempts sent */
    uint64_t ok;       /* answered (any HRESULT) */
    uint64_t errors;   /* connect failure, timeout, close, garbage */
    uint64_t refusals; /* 0xC004F042 answers */
    uint64_t checks_ok;
    uint64_t checks_failed;
};

/* Runtime state of one backend host. Config part first (copied on reload). */
struct kr_host {
    struct kr_conf_host conf; /* written only by configuration (or, for a
                               * discovered host, by discovery) */
    struct kr_hrw_node hrw;   /* key from conf.name; weight: the one in force,
                               * op_weight when set, else conf.weight */
    uint32_t op_weight;       /* operator weight (weights.c), 0 = none */
    uint8_t admin;            /* enum kr_admin in force (config or control API) */
    uint8_t health;           /* enum kr_health */
    bool removed;             /* gone from the config; freed once idle */
    bool dynamic;             /* from DNS discovery (discover.c), not the config file */
    bool dyn_drained;         /* drained by discovery (not persisted; undone when back) */

    /* health checking (health.c) */
    uint32_t rise_cnt, fall_cnt;
    uint64_t last_check_us;
    uint32_t last_check_latency_us;
    char last_check_result[64];
    struct event *check_timer;
    void *check; /* health.c's in-flight check, NULL when idle */
    /* passive failures (health.c): the distinct clients whose requests
     * failed on this host since its last real answer */
    uint64_t pfail_client[KR_HOST_PFAIL];
    uint64_t pfail_us[KR_HOST_PFAIL];
    uint32_t n_pfail;
    uint64_t passive_hold_us; /* DOWN by passive failures: a passing bind
                               * check alone does not make it UP before */
    char health_reason[96];   /* why health is what it is (logged, API) */

    /* connection pool (backend.c) */
    struct kr_bconn *idle; /* ready, bound, no request */
    struct kr_bconn *busy; /* connecting, binding or carrying a request */
    uint32_t n_conns;
    struct kr_attempt *wait_head, *wait_tail; /* attempts waiting for a connection */
    uint32_t n_waiting;
    struct event *wait_timer; /* backend.c: deadline of waiting attempts, lazily
                               * created; freed by kr_backend_abort_host() */
    uint64_t wait_timer_us;   /* when wait_timer fires, 0 = not armed */
    uint64_t reuse_after_us;  /* backend.c: the host closes connections right
                               * after answering; do not pool them until then */

    /* learned from answers (forward.c) */
    struct kr_app_count counts[KR_HOST_APPS];
    struct kr_refusal refusals[KR_HOST_REFUSALS];

    struct kr_host_stats stats;
    struct kr_relay *relay;
};

/* The outcome of one attempt on one host (backend.c -> forward.c). */
enum kr_attempt_status {
    KR_ATT_OK = 0,        /* a response PDU arrived; see hresult/msg */
    KR_ATT_CONNECT = 1,   /* connect failed or bind rejected */
    KR_ATT_TIMEOUT = 2,   /* no complete answer within the attempt timeout */
    KR_ATT_CLOSED = 3,    /* the host closed before a full answer */
    KR_ATT_GARBAGE = 4,   /* undecodable answer or a fault PDU */
    KR_ATT_CANCELLED = 5, /* the relay is stopping */
};
const char *kr_attempt_status_name(int st);

typedef void (*kr_attempt_cb)(struct kr_attempt *a, void *arg);

/* One try of a KMS message on one host. Owned by backend.c from
 * kr_backend_submit() until its callback returns. */
struct kr_attempt {
    struct kr_host *host;
    int status;         /* enum kr_attempt_status */
    uint32_t hresult;   /* KR_ATT_OK: the stub's HRESULT */
    const uint8_t *msg; /* KR_ATT_OK and hresult 0: the KMS response, valid
                         * only during the callback */
    size_t msg_len;
    uint64_t latency_us;
    kr_attempt_cb cb;
    void *arg;
    struct kr_attempt *next; /* wait queue link */
    /* backend.c private */
    const uint8_t *req_msg;
    size_t req_len;
    uint64_t deadline_us;
    struct kr_bconn *conn;
    struct event *timer; /* unused: deadlines run on the connection's or the
                          * host's wait timer, so an attempt allocates nothing */
    uint64_t start_us;
    uint8_t fresh_retry; /* already re-sent once after a reused connection
                          * turned out to be closed by the host */
    uint8_t waiting;     /* in the host's wait queue */
    uint8_t sent;        /* the request reached a connection */
    uint8_t blame;       /* set by backend.c with a failure status: count it
                          * against the host's health (not for a wait on our own
                          * busy pool, nor for the 2nd.. waiter failed by one
                          * failed connect) */
};

/* Sends a KMS request message to a host as an NDR32 request on a pooled
 * connection (opening one if the pool has room, else queueing). `msg` must
 * stay valid until the callback. Exactly one callback per submit. Returns 0,
 * or KR_ENOMEM (no callback then). */
int kr_backend_submit(struct kr_host *h, struct kr_attempt *a, const uint8_t *msg, size_t len,
                      uint64_t timeout_ms, kr_attempt_cb cb, void *arg);
/* Cancels a submitted attempt; its callback runs with KR_ATT_CANCELLED. */
void kr_backend_cancel(struct kr_attempt *a);
/* Closes idle connections and fails waiting attempts (host removed/stopping):
 * KR_ATT_CANCELLED when the relay is stopping, else KR_ATT_CONNECT (so the
 * request moves on to its next host). Busy connections finish their request
 * and are then closed instead of pooled while h->removed or r->stopping. */
void kr_backend_close_host(struct kr_host *h);
/* For teardown (relay destroy, after r->stopping is set and the clients are
 * closed): cancels every attempt of the host (callbacks run synchronously
 * with KR_ATT_CANCELLED), frees all its connections and its wait timer.
 * Afterwards h->n_conns == 0 and the host can be freed. */
void kr_backend_abort_host(struct kr_host *h);

/* Health (health.c). */
void kr_health_start(struct kr_host *h); /* begin periodic checks */
void kr_health_stop(struct kr_host *h);
/* A request of `client` (its CMID) failed on h for a reason of the host's
 * (timeout, close, garbage, connect). Enough distinct clients make h DOWN
 * whatever its bind checks say. */
void kr_health_passive_failure(struct kr_host *h, const char *why, const uint8_t client[16]);
void kr_health_passive_success(struct kr_host *h);
/* Sets health and logs the change once, with the reason. */
void kr_health_set(struct kr_host *h, int health, const char *why);

/* Routing (route.c). A plan is the ordered list of hosts to try. */
#define KR_PLAN_MAX 16
struct kr_plan {
    uint16_t hosts[KR_PLAN_MAX]; /* indices into relay->hosts */
    size_t n;
    int pinned;      /* index of the pinned host, -1 when none or unknown */
    bool pin_usable; /* the pinned host is hosts[0] */
    bool have_pin;   /* a pin record exists */
    int machine;     /* no pin for this (CMID, app): host of the machine's other
                      * applications' pins (most recent), -1 when none */
    bool pin_unread; /* the store failed the lookup: route by HRW, and do not
                      * overwrite a pin we could not read */
};
/* Builds the plan for a decoded request. Never fails: an empty plan means no
 * eligible host. `pin` is filled when a pin exists. */
void kr_route_plan(struct kr_relay *r, const struct kr_kms_request *kreq, struct kr_plan *plan,
                   struct kr_pin *pin);
/* Is host eligible to answer this request? (health, admin, refusal) */
bool kr_route_eligible(const struct kr_relay *r, const struct kr_host *h, const uint8_t kms_id[16],
                       bool for_pinned);
/* Remembers a 0xC004F042 from a host for a KMS id (refusal_ttl). */
void kr_route_note_refusal(struct kr_relay *r, struct kr_host *h, const uint8_t kms_id[16]);
/* Remembers a host's reported count for an application. */
void kr_route_note_count(struct kr_relay *r, struct kr_host *h, const uint8_t app_id[16],
                         uint32_t count, uint32_t n_policy);
/* An eligible ready host other than `except` whose recent count for app_id is
 * >= n_policy, or -1. */
int kr_route_assist_host(const struct kr_relay *r, int except, const uint8_t app_id[16],
                         uint32_t n_policy, const uint8_t kms_id[16]);

/* One client request in flight (front.c creates, forward.c drives). */
struct kr_req {
    struct kr_client *client; /* NULL once the client went away */
    struct kr_relay *relay;
    uint32_t call_id;            /* client's */
    uint16_t ctx_id;             /* client's */
    int ndr;                     /* client's syntax: KR_NDR32 / KR_NDR64 */
    uint8_t msg[KR_NDR_MSG_MAX]; /* the client's KMS message, copied */
    size_t msg_len;
    struct kr_kms_request kreq; /* decoded */
    struct kr_plan plan;
    size_t next_try; /* index into plan.hosts */
    int chosen;      /* host that answered, -1 */
    uint32_t retries;
    bool assisted, rerouted;
    uint64_t start_us, deadline_us;
    struct kr_attempt att;
    uint32_t last_refusal; /* 0xC004F042 to relay if every host refuses */
    struct kr_req *next;   /* client's FIFO of requests */

    /* forward.c private. Hosts are remembered by HRW key and name, not by
     * pointer, because a reload may re-lay out relay->hosts meanwhile. */
    struct kr_pin pin;                  /* as read by kr_route_plan */
    uint64_t plan_keys[KR_PLAN_MAX];    /* hrw.key of plan.hosts[i] */
    char peer[KR_ADDRSTRLEN];           /* client address, for the log line */
    char chosen_name[KR_CONF_NAME_MAX]; /* host whose answer counts for the pin */
    char assist_name[KR_CONF_NAME_MAX]; /* threshold assist host, "" if none */
    uint8_t held[KR_KMS_RESP_MAX];      /* chosen host's answer while assisting */
    size_t held_len;
    uint32_t count;      /* Count of the answer returned, 0 if none */
    uint32_t host_count; /* Count of the chosen host's own answer (the pin
                          * records this one: under threshold assist the
                          * client gets another host's answer) */
    bool pin_failed;     /* the pinned host failed during this request */
    bool pin_refused;    /* the pinned host refuses this KMS id */
    /* failures that may follow the request rather than the host (closed,
     * garbage), by plan position: held against the host only once another
     * host answered the same request */
    uint8_t pending[KR_PLAN_MAX];
    uint8_t n_pending;
    bool client_fault; /* 2+ hosts failed on this request and none answered */
};

/* forward.c: starts routing; calls kr_front_reply() exactly once (unless
 * the client is gone), then frees the request. */
void kr_forward_start(struct kr_req *q);

/* front.c: the answer for a request, in the client's framing. msg NULL means
 * an error reply carrying hresult; fault_status non-zero sends a fault PDU
 * instead. */
void kr_front_reply(struct kr_req *q, uint32_t hresult, const uint8_t *msg, size_t msg_len,
                    uint32_t fault_status);
/* front.c: a new accepted client connection (fd is non-blocking). Takes
 * the fd (closed on refusal). */
void kr_front_accept(struct kr_relay *r, int fd, const struct sockaddr *sa, int salen,
                     uint16_t listen_port);
/* front.c: closes every client session at once and frees it (for relay
 * destroy, never from inside a session callback). Requests in flight are
 * detached and finish on their own (or are cancelled by
 * kr_backend_abort_host()). */
void kr_front_close_all(struct kr_relay *r);
/* front.c: a finished request back to the relay's pool (forward.c). */
void kr_front_req_free(struct kr_req *q);
/* front.c: frees the pools (relay destroy, after everything finished). */
void kr_front_pools_free(struct kr_relay *r);

/* limits.c: per-source accounting. Returns NULL when allowed (and counts the
 * connection under the source key written to `key`, which the caller keeps
 * for release and request), else a static reason ("not in allow-list", ...). */
const char *kr_limits_admit(struct kr_relay *r, const struct sockaddr *sa, uint8_t key[16]);
void kr_limits_release(struct kr_relay *r, const uint8_t key[16]);
/* Token bucket per source: true when a request may proceed now. */
bool kr_limits_request(struct kr_relay *r, const uint8_t key[16]);
/* The source key of an address (IPv6 cut to clients.ipv6_prefix). */
bool kr_limits_source_key(const struct kr_relay *r, const struct sockaddr *sa, uint8_t key[16]);
/* limits.c, for relay.c: state lifecycle, and dropping idle entries (called
 * from the relay's housekeeping timer). init returns 0 or KR_ENOMEM. */
int kr_limits_init(struct kr_relay *r);
void kr_limits_free(struct kr_relay *r);
void kr_limits_sweep(struct kr_relay *r);
/* limits.c: live per-source entries and connections counted (for status). */
size_t kr_limits_sources(const struct kr_relay *r);

/* Global counters for status and metrics. */
struct kr_relay_stats {
    uint64_t conns_accepted, conns_denied, conns_limited, conns_open;
    uint64_t requests, activations_ok, activations_failed;
    uint64_t retries, failovers, assists, reroutes_refused;
    uint64_t bad_pdus, rate_limited;
    uint64_t pins_new, pins_moved;
};

struct kr_listener;

struct kr_relay {
    struct event_base *base;
    const struct kr_conf *conf; /* borrowed from the daemon; replaced on reload */
    struct kr_store *store;     /* borrowed: the daemon opens and closes it */
    bool store_degraded_alarm;  /* logged once per episode */

    struct kr_host **hosts; /* array of n_hosts pointers */
    size_t n_hosts;

    struct kr_listener *listeners;
    struct kr_client *clients; /* list of live sessions */
    /* front.c: freed sessions and requests kept for reuse (bounded), so
     * that nothing is allocated per connection or request at steady state */
    struct kr_client *free_clients;
    struct kr_req *free_reqs;
    size_t n_free_clients, n_free_reqs;
    void *limits; /* limits.c state */

    struct kr_relay_stats stats;
    uint64_t started_us;
    int64_t started_wall;
    bool stopping;
    size_t reqs_inflight; /* kr_req objects alive (front.c creates, forward.c
                           * frees): what kr_relay_inflight() reports */

    struct event *expire_timer; /* relay.c: housekeeping every ~10 s (pin expiry,
                                 * removed hosts, limits entries) */
    struct event *log_flush_ev; /* relay.c: writes the loop's buffered log lines */
    bool early_close;           /* the event backend reports a peer's FIN (EV_CLOSED) */
};

/* relay.c */
/* Builds the host table and opens the listeners of `conf` (borrowed, like
 * `store`: both must outlive the relay). 0 or KR_E* with err. */
int kr_relay_create(struct event_base *base, const struct kr_conf *conf, struct kr_store *store,
                    struct kr_relay **out, char *err, size_t errlen);
/* Reload: switches to `newconf` (borrowed; the caller frees the old one
 * after this returns 0). On failure nothing changed. */
int kr_relay_apply(struct kr_relay *r, const struct kr_conf *newconf, char *err, size_t errlen);
void kr_relay_stop_accepting(struct kr_relay *r);
void kr_relay_destroy(struct kr_relay *r);
struct kr_host *kr_relay_host_by_name(struct kr_relay *r, const char *name);
/* Host runtime state: admin state and operator weight, each set by one
 * function and persisted in the store, resolved from it whenever a host
 * joins the table or a configuration is applied (hosts.c, weights.c). */
/* Sets a host's admin state and persists it (control API and config). */
int kr_relay_set_admin(struct kr_relay *r, struct kr_host *h, int admin, const char *why);
/* The rule of hosts.c, read-only (also for the offline report): the admin
 * state a host `name` that the configuration gives `cfg` (KR_ADMIN_UNSET
 * allowed) starts with, from what store s holds. */
uint8_t kr_relay_stored_admin(struct kr_store *s, const char *name, uint8_t cfg);
#define KR_HOST_WEIGHT_MAX 10000
/* The weight in force: the operator's when set, else the configured one. */
static inline uint32_t kr_host_weight(const struct kr_host *h)
{
    return h->op_weight ? h->op_weight : h->conf.weight;
}
/* Sets a host's operator weight now (1..KR_HOST_WEIGHT_MAX) and persists it
 * (see weights.c); the configured weight again removes the override.
 * Returns 0, KR_EINVAL, or the store's error (in force anyway then). */
int kr_relay_set_weight(struct kr_relay *r, struct kr_host *h, uint32_t weight);
/* Resolves every host's operator weight from the store again (start and
 * reload do this themselves). */
void kr_relay_weights_apply(struct kr_relay *r);
/* The weight the configuration gives host h (the SRV record's for a
 * discovered host). */
uint32_t kr_relay_config_weight(const struct kr_relay *r, const struct kr_host *h);
/* The rule of weights.c, read-only (also for the offline report): the
 * operator weight store s holds for host `name` that is in force against its
 * configuration entry hc (NULL: a discovered host), 0 when there is none.
 * When the configured weight was edited since, the stored one no longer
 * applies: 0, and *dropped (may be NULL) gets it (else 0). */
uint32_t kr_relay_stored_weight(struct kr_store *s, const char *name, const struct kr_conf_host *hc,
                                uint32_t *dropped);
/* Pending client requests (for graceful shutdown). */
size_t kr_relay_inflight(const struct kr_relay *r);
/* The addresses the listeners are bound to (actual ports, also for port 0),
 * in config order; returns how many were written (at most max). */
size_t kr_relay_listen_addrs(const struct kr_relay *r, struct kr_addr *out, size_t max);
/* The same as text, comma separated ("127.0.0.1:1688,[::1]:1688"). */
void kr_relay_listen_describe(const struct kr_relay *r, char *out, size_t cap);
/* discover.c: hosts found through DNS (src/dnsservice/discover.c). They are not
 * in the config file and survive reloads. Changes made here are not
 * persisted (discovery decides again after a restart); an operator's admin
 * state from the control API is. */
/* Adds or updates a discovered host (new: health UNKNOWN, checks start, no
 * traffic before it is UP). Undoes a discovery drain. KR_EEXIST when a
 * config host has that name, KR_ENOSPC when the table is full. */
int kr_relay_dyn_add(struct kr_relay *r, const struct kr_conf_host *hc);
/* DNS no longer lists it: drain (pinned clients only) unless an operator
 * already set another state. KR_ENOENT when not a discovered host. */
int kr_relay_dyn_drain(struct kr_relay *r, const char *name);
/* Gone for good: removed like a host deleted from the config. */
int kr_relay_dyn_remove(struct kr_relay *r, const char *name);

/* A host written with a DNS name whose address is not known (not resolved
 * yet, or the name does not resolve): nowhere to connect, so routing and
 * the checks skip it. */
static inline bool kr_host_unresolved(const struct kr_host *h)
{
    return h->conf.addr_name[0] && h->conf.addr.len == 0;
}

/* hostaddr.c: a config host whose address is a DNS name gets the address
 * the daemon resolved (`addr`), or none (`addr` NULL: the name does not
 * resolve, `why` says how; the host is DOWN until it does). The name, pins,
 * admin state and health stay; a new address closes the pool and checks at
 * once. KR_ENOENT when no config host of that name has a named address. */
int kr_relay_host_set_addr(struct kr_relay *r, const char *name, const struct kr_addr *addr,
                           const char *why);

/* listen.c: descriptors kept back from clients for config c (backend pools,
 * health checks, store, logs, DNS): the start's descriptor budget, for
 * `kmsrelayd -n` to check without applying it. */
uint64_t kr_relay_fd_reserve(const struct kr_conf *c);

/* Most hosts the table holds: config hosts plus removed ones still busy
 * (route.c scans at most this many). */
#define KR_RELAY_MAX_HOSTS (2 * KR_CONF_MAX_HOSTS)

#endif
