/*
 * control-internal.h - shared by the src/control files only.
 *
 *   server.c     evhttp glue: one generic callback, routing, replies
 *   gate.c       refuses oversized or chunked bodies before evhttp reads them
 *   dispatch.c   the one route table (method, path pattern, handler) + matching
 *   body.c       JSON bodies of the POST endpoints, strictly validated
 *   sock.c       the AF_UNIX listening socket: stale file, umask, mode, group
 *   job.c        worker threads for requests that walk the pins
 *   json.c       small JSON helpers (times, GUIDs, host state)
 *   api_*.c      the endpoints; rebalance.c the pure rebalance planner
 *
 * Threads: everything runs on the event loop except a job's work function,
 * which may touch only the store and its own context (a snapshot taken on
 * the loop) and must not look at the relay.
 */
#ifndef KR_CONTROL_INTERNAL_H
#define KR_CONTROL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "control/control.h"
#include "kmsrelay/conf.h"
#include "kmsrelay/kms.h"
#include "relay/relay.h"

#define CTL_BODY_MAX (64 * 1024) /* request bodies above this get 413 */
#define CTL_TIMEOUT_S 30         /* idle or slow connections are dropped */
#define CTL_MAX_JOBS 4           /* worker threads at once; more get 503 */
#define CTL_PARAM_MAX 128        /* one decoded path segment */
#define CTL_MAX_PARAMS 2
#define CTL_ERR_MAX 512
#define CTL_ASYNC 0 /* handler status: a job answers later */

/* Methods as route flags (one bit each). */
enum ctl_method {
    CTL_GET = 1,
    CTL_POST = 2,
    CTL_DELETE = 4,
    CTL_PUT = 8,
    CTL_HEAD = 16,
    CTL_OTHER = 32,
};
const char *ctl_method_name(int m);

struct ctl_job;
struct ctl_reload;
struct evbuffer;
struct evhttp;
struct evhttp_request;
struct evkeyvalq;
struct event;
struct event_base;
struct bufferevent;

struct kr_control {
    struct event_base *base;
    struct kr_relay *relay;
    struct kr_dns *dns;              /* NULL: no DNS service */
    struct kr_audit_periodic *audit; /* NULL: no periodic audit */
    struct kr_peers *peers;          /* NULL: replication off */
    struct evhttp *http;
    char path[KR_CONF_PATH_MAX]; /* the socket we created */
    dev_t dev;                   /* ... and its file, to unlink only ours */
    ino_t ino;
    kr_control_reload_fn reload;
    void *reload_arg;
    struct ctl_reload *reloading; /* api_misc.c: POST /v1/reload waiting */
    uint64_t requests, errors;
    struct kr_fd_guard *guard; /* sock.c: connection cap, header deadline */

    /* job.c */
    struct ctl_job *jobs; /* running, not yet answered */
    size_t n_jobs;
};

/* One request as a handler sees it. */
struct ctl_call {
    struct kr_control *ctl;
    struct kr_relay *r;
    struct evhttp_request *req;
    const char *param[CTL_MAX_PARAMS]; /* decoded path parameters */
    struct evkeyvalq *query;           /* decoded query (may be empty) */
    const char *body;                  /* request body, not NUL-terminated */
    size_t body_len;
    json_t *out;           /* handler: the reply body (owned) */
    char err[CTL_ERR_MAX]; /* handler: the error text for 4xx/5xx */
};

/* Returns the HTTP status (out set for 2xx, err for errors), or CTL_ASYNC
 * when a job took the request and will answer it. */
typedef int (*ctl_handler_fn)(struct ctl_call *c);

struct ctl_route {
    int method;          /* enum ctl_method */
    const char *pattern; /* "/v1/hosts/{name}/state" */
    const char *query;   /* accepted query parameters, comma separated */
    ctl_handler_fn fn;
    const char *help; /* one line, for GET /v1 */
};

extern const struct ctl_route ctl_routes[];
extern const size_t ctl_n_routes;

/*
 * Matches a request path (without the query) against the table. 200: *route
 * set and params[] filled with the decoded {..} segments; 404: no pattern
 * has this path; 405: a pattern matches but for other methods (their names,
 * comma separated, in allow). 400: a segment does not decode (err).
 */
int ctl_route_find(int method, const char *path, const struct ctl_route **route,
                   char params[CTL_MAX_PARAMS][CTL_PARAM_MAX], char *allow, size_t allow_len);
/* 0 when every key of q is in the comma-separated list `allowed`, else 400
 * with err naming the first unknown one. */
int ctl_query_check(const struct evkeyvalq *q, const char *allowed, char *err, size_t errlen);

/* Writes "fmt" into err and returns status (handlers: return ctl_fail(...)). */
int ctl_fail(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- bodies (body.c) ----------------------------------------------------- */

enum ctl_body_kind {
    CTL_BODY_EMPTY = 0, /* nothing or {} */
    CTL_BODY_STATE,     /* {"state": "ready|drain|maint|retired"} */
    CTL_BODY_WEIGHT,    /* {"weight": 1..10000} */
    CTL_BODY_MOVE,      /* {"host": NAME} */
    CTL_BODY_REBALANCE, /* {"max": 0..100000, "dry_run": bool}, both optional */
    CTL_BODY_KINDS
};

#define CTL_REBALANCE_DEFAULT 100
#define CTL_REBALANCE_MAX 100000
#define CTL_WEIGHT_MAX KR_HOST_WEIGHT_MAX

struct ctl_body {
    int state; /* enum kr_admin */
    uint32_t weight;
    char host[KR_CONF_NAME_MAX];
    uint64_t max;
    bool dry_run;
};

/* Parses and validates a body of `kind`. Returns 0 (out filled, defaults
 * for optional fields) or 400 with the reason in err. Never reads past len;
 * data need not be NUL-terminated. */
int ctl_body_parse(int kind, const char *data, size_t len, struct ctl_body *out, char *err,
                   size_t errlen);

/* ---- the body gate (gate.c) ---------------------------------------------- */

#define CTL_GATE_HEADER "X-Kmsrelay-Rejected" /* set on a request the gate refused */

/*
 * Looks at a complete request header block (first line and headers up to
 * and including the empty line). When it announces a body over `limit`
 * bytes or a chunked body, writes into out a copy of the block without
 * Content-Length, Transfer-Encoding and Expect, plus "Content-Length: 0"
 * and CTL_GATE_HEADER (its value: "413" or "411"), and returns the length
 * written; returns 0 when the request may pass unchanged, -1 when out is
 * too small (2 * len + 128 always suffices: lines end in CRLF in the copy).
 * Pure, for tests and the fuzz target.
 */
long ctl_gate_rewrite(const char *hdr, size_t len, uint64_t limit, char *out, size_t cap);
/* evhttp_set_bevcb callback: a socket bufferevent with the gate attached. */
struct bufferevent *ctl_gate_bev(struct event_base *base, void *arg);

/* ---- replies (server.c) -------------------------------------------------- */

/* Sends status with body (taken; NULL means {}) or, for status >= 400,
 * {"error": err} merged into body. Connection: close. Counts errors. */
void ctl_reply(struct kr_control *ctl, struct evhttp_request *req, int status, json_t *body,
               const char *err);

/* Sends a rendered body (taken) with content type `type`; for 2xx only. */
void ctl_reply_raw(struct kr_control *ctl, struct evhttp_request *req, int status,
                   struct evbuffer *body, const char *type);

/* ---- the socket (sock.c) ------------------------------------------------- */

/* sock.c: puts the evhttp's bound control socket under the accept guard
 * (fdguard.h): at most KR_CONTROL_MAX_CONNS connections, a request header
 * block complete within CTL_HEADER_DEADLINE_MS of the accept (evhttp's own
 * timeout restarts with every byte), a pause on EMFILE. Connections are
 * made by ctl_gate_bev. 0, or KR_ENOMEM. */
#define CTL_HEADER_DEADLINE_MS 10000
struct evhttp_bound_socket;
int ctl_sock_guard(struct kr_control *ctl, struct evhttp_bound_socket *bound);

/* Creates the listening AF_UNIX socket at path (see control.h). Returns the
 * fd or a negative KR_E* with err; dev and ino identify the file created. */
int ctl_sock_listen(const char *path, unsigned mode, const char *group, dev_t *dev, ino_t *ino,
                    char *err, size_t errlen);
/* chmod + chgrp of an existing socket file; 0 or KR_EIO with err. */
int ctl_sock_perms(const char *path, unsigned mode, const char *group, char *err, size_t errlen);
/* Removes path when it is still the file (dev, ino). */
void ctl_sock_unlink(const char *path, dev_t dev, ino_t ino);

/* ---- jobs (job.c) -------------------------------------------------------- */

struct ctl_job {
    struct kr_control *ctl;
    struct evhttp_request *req;
    void (*work)(struct ctl_job *j); /* worker thread: sets status/out/err */
    void (*done)(struct ctl_job *j); /* loop, before the reply; may be NULL */
    void *ctx;
    void (*ctx_free)(void *ctx);
    int status;
    json_t *out;          /* the reply body, or */
    struct evbuffer *raw; /* a body already rendered (large lists) */
    const char *raw_type; /* its Content-Type */
    char err[CTL_ERR_MAX];
    struct kr_offload *off;        /* loop thread: the running work (offload.h) */
    const struct kr_offload *self; /* worker thread: the same, for cancellation */
    struct ctl_job *next;          /* ctl->jobs */
};

int ctl_jobs_init(struct kr_control *ctl);
/* Cancels every running job (walks stop early), waits for them and frees
 * all; their requests are not answered. */
void ctl_jobs_stop(struct kr_control *ctl);
/* Starts work(j) on a thread for call c; the job takes ctx (ctx_free runs
 * when it is freed, also on failure). Returns CTL_ASYNC, or 503/500 with
 * c->err (ctx freed). */
int ctl_job_start(struct ctl_call *c, void (*work)(struct ctl_job *),
                  void (*done)(struct ctl_job *), void *ctx, void (*ctx_free)(void *));
/* For walk callbacks: true once the server is stopping. */
bool ctl_job_cancelled(const struct ctl_job *j);

/* ---- JSON helpers (json.c) ----------------------------------------------- */

/* "2026-11-21T07:44:30Z" (UTC); "" for t <= 0. */
void ctl_iso_time(int64_t t, char out[32]);
json_t *ctl_json_time(int64_t t); /* ISO string, or null for t <= 0 */
json_t *ctl_json_guid(const uint8_t g[16]);
/* Application slots: kr_kms_app_index (0 Windows, 1 Office 2010,
 * 2 Office 2013+) and 3 for any other id. */
#define CTL_APPS (KR_KMS_APPS_KNOWN + 1)
/* Parses an application filter: a name ("windows", "office2010",
 * "office 2013+", case and spaces ignored) or a GUID. 0 or -1. */
int ctl_app_filter_parse(const char *text, uint8_t app_id[16], int *idx, bool *by_id);
/* "up", "down", "unknown" (lower case, as the report uses). */
const char *ctl_health_word(int health);
/* "unlicensed", "licensed", "oob_grace", ... (LicenseStatus 0..6), "other". */
const char *ctl_licence_word(unsigned status);
/* "0xC004F042" */
void ctl_hresult_text(uint32_t hr, char out[12]);
/* Sets key to a new value (taken); helpers for terse JSON building. */
void ctl_set(json_t *o, const char *key, json_t *v);

/* ---- endpoints (api_*.c) ------------------------------------------------- */

int ctl_api_index(struct ctl_call *c);
int ctl_api_status(struct ctl_call *c);
int ctl_api_hosts(struct ctl_call *c);
int ctl_api_host(struct ctl_call *c);
int ctl_api_host_state(struct ctl_call *c);
int ctl_api_host_weight(struct ctl_call *c);
int ctl_api_pin_show(struct ctl_call *c);
int ctl_api_pin_move(struct ctl_call *c);
int ctl_api_pin_forget(struct ctl_call *c);
int ctl_api_rebalance(struct ctl_call *c);
int ctl_api_clients(struct ctl_call *c);
int ctl_api_report(struct ctl_call *c);
int ctl_api_dns(struct ctl_call *c);
int ctl_api_peers(struct ctl_call *c); /* api_peers.c */
/* {configured, up, total, alone} for GET /v1/status (api_peers.c). */
struct kr_peers;
json_t *ctl_peers_summary(const struct kr_peers *p);
int ctl_api_reload(struct ctl_call *c);
/* Frees a reload request still waiting (kr_control_free). */
void ctl_reload_drop(struct kr_control *ctl);

/* A pin as JSON (api_pins.c): full adds kms_id and the workstation names.
 * Touches nothing but p (worker threads use it). */
json_t *ctl_pin_json(const struct kr_pin *p, bool full);

/* One client as a line of GET /v1/clients (rows.c): a compact JSON object
 * with the fields of ctl_pin_json(p, false), or a CSV row (CRLF-terminated)
 * with the columns of CTL_CLIENTS_CSV_HEADER. Touch nothing but p. */
#define CTL_CLIENTS_CSV_HEADER                                                                     \
    "cmid,workstation,host,application,app_id,first_seen,last_seen,vm,licence,protocol,"           \
    "last_result,count,n_policy,skew_seconds,activations,previous_cmid,sku_id"
void ctl_client_row_json(struct evbuffer *b, const struct kr_pin *p);
void ctl_client_row_csv(struct evbuffer *b, const struct kr_pin *p);

/* One host as JSON (api_hosts.c); pins (may be NULL: not counted) are the
 * host's pins per application index. */
json_t *ctl_host_json(const struct kr_relay *r, const struct kr_host *h, const uint64_t *pins);

/* ---- the rebalance planner (rebalance.c) --------------------------------- */

enum ctl_rb_role {
    CTL_RB_POOL = 0, /* ready and healthy: gives surplus, takes deficit */
    CTL_RB_EVICT,    /* retired, removed or unknown: every pin should leave */
    CTL_RB_FIXED,    /* drain, maint, down: left alone */
};

struct ctl_rb_host {
    uint32_t weight;
    int role;       /* enum ctl_rb_role */
    uint64_t count; /* pins now (updated by the planner) */
    double target;  /* set by the planner (POOL hosts) */
};

struct ctl_rb_pin {
    uint8_t cmid[16];
    int64_t last_seen;
    uint32_t host; /* index into the host array */
};

struct ctl_rb_move {
    uint32_t pin; /* index into the pin array */
    uint32_t from, to;
};

/*
 * Plans at most max moves toward pin counts proportional to the weights of
 * the POOL hosts. Pins are taken least recently seen first (pins[] is sorted
 * in place: last_seen, then CMID); a pin on a POOL host moves only while its
 * host holds at least one pin more than its share and the receiving host at
 * least one less, so a balanced pool is left alone (no churn), and every pin
 * of an EVICT host moves to the POOL host furthest below its share. Returns
 * the number of moves written to out (room for max).
 */
size_t ctl_rebalance_plan(struct ctl_rb_host *hosts, size_t n_hosts, struct ctl_rb_pin *pins,
                          size_t n_pins, size_t max, struct ctl_rb_move *out);

#endif
