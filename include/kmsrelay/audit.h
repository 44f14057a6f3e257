/*
 * audit.h - the DNS audit: account for every _vlmcs SRV record of a zone.
 *
 * Three stages, each usable alone (kmsrelayctl audit runs them in a row,
 * kmsrelayd's periodic audit does the same from a worker thread):
 *
 *   1. collect  (audit/collect.c): the _vlmcs._tcp SRV RRset and the TXT
 *      owner markers from every authoritative server, optionally an AXFR
 *      to find _vlmcs records elsewhere, or for an AD zone (gss) the
 *      zone's _vlmcs dnsNodes read over LDAP (kmsrelay/directory.h); one
 *      struct kr_audit_rrset per owner name. Uses the blocking DNS client
 *      of kmsrelay/dns.h.
 *   2. probe    (audit/probe.c, audit/resolve.c): per record, resolve the
 *      target (A/AAAA at the same servers; CNAME and "." detected), TCP
 *      connect to each address and send one DCE/RPC bind for the KMS
 *      interface, expecting a bind_ack that accepts it. Never an
 *      activation request.
 *   3. classify (audit/classify.c): a PURE function of the collected RRset,
 *      the probe results and a policy; no I/O, no clock (the policy carries
 *      `now`), so every class is unit-tested.
 *
 * Classes (one per record, plus RRset-level and marker-only findings):
 *   OURS_OK        our marker (owner = our instance id) matches the record
 *                  and the target answers KMS
 *   OURS_ORPHAN    our marker without its record, our target:port without
 *                  a marker, our record differing from its marker, or our
 *                  record whose target does not answer
 *   PEER_STALE     the record of another kmsrelay instance (its marker) whose
 *                  target does not answer
 *   AUTHORIZED_OK  a sanctioned target that answers, or a live peer kmsrelay
 *                  (publishing needs the zone's TSIG key: authorised)
 *   STALE_DEAD     proof that the target has no address (NXDOMAIN, or NODATA
 *                  for both A and AAAA: see "Lookups" below), or the port or
 *                  the RPC bind fails on every address
 *   ROGUE          answers KMS but is not on the sanctioned list
 *   UNKNOWN        the target's lookup failed (SERVFAIL, timeout, REFUSED, no
 *                  resolver) and no address answered: no evidence either way.
 *                  Reported, never deleted.
 *   MISCONFIGURED  "." or CNAME target, a target in several records
 *                  (duplicate), a wrong port (see below), TTLs that differ
 *                  inside the RRset, servers that disagree, a peer's marker
 *                  without record, or a _vlmcs name clients never query
 *
 * Wrong port: the record's port does not answer KMS, but one of the target's
 * addresses answers KMS on another port we know for it: 1688, the port of
 * another record whose target shares an address, or a port given by the
 * caller (kmsrelayctl audit --probe-port). That is a host that moved its
 * port (slmgr /sprt) without fixing DNS. A target that answers nowhere is
 * STALE_DEAD.
 *
 * Lookups: the target's A and AAAA are asked from the zone's servers, which
 * must answer authoritatively (AA). A server that refuses or refers (the
 * name is not its data) sends the question to the resolvers (opts, else
 * /etc/resolv.conf). Only proof of absence counts against a target: an
 * authoritative NXDOMAIN or NODATA, or a resolver's negative answer that
 * carries the SOA of a zone holding the target (not the root; inside the
 * audited zone, that zone or a child of it). Anything else (SERVFAIL, a
 * timeout, REFUSED by the resolver, no resolver) sets `lookup_failed`: the
 * record is UNKNOWN unless an address answers KMS.
 *
 * Time: with dead_after_s 0 (kmsrelayctl without evidence) classification
 * is a point-in-time view: failing now is dead now, and --fix deletes
 * nothing. The daemon passes dead_after_s (24 h by default) and the time
 * each target started failing (kept in the store); kmsrelayctl passes the
 * daemon's (--history) or its own repeated probes' (--dead-for). A
 * STALE_DEAD or PEER_STALE finding is then `confirmed` only after that
 * long, and unconfirmed ones are reported but are not problems.
 *
 * Memory: every struct is flat (fixed arrays, caps below); records beyond a
 * cap are dropped and the RRset's `truncated` is set. Strings are
 * NUL-terminated; DNS names are lower case with the final dot.
 */
#ifndef KMSRELAY_AUDIT_H
#define KMSRELAY_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "kmsrelay/netaddr.h"

struct kr_dns_key;

#define KR_AUDIT_NAME_MAX 256 /* a DNS name as text, final dot and NUL included */
#define KR_AUDIT_ADDR_MAX 48  /* an IPv4/IPv6 address as text */
#define KR_AUDIT_SERVER_MAX 64
#define KR_AUDIT_ERR_MAX 160
#define KR_AUDIT_ID_MAX 64
#define KR_AUDIT_TXT_MAX 256
#define KR_AUDIT_MAX_SERVERS 8 /* authoritative servers per zone */
#define KR_AUDIT_MAX_RR 64     /* SRV records (and markers) per owner name */
#define KR_AUDIT_MAX_ADDRS 8   /* addresses per target */
#define KR_AUDIT_MAX_ALT 4     /* other ports tried per target */
#define KR_AUDIT_KMS_PORT 1688

enum kr_audit_class {
    KR_AUDIT_OURS_OK = 0,
    KR_AUDIT_OURS_ORPHAN,
    KR_AUDIT_PEER_STALE,
    KR_AUDIT_AUTHORIZED_OK,
    KR_AUDIT_STALE_DEAD,
    KR_AUDIT_ROGUE,
    KR_AUDIT_MISCONFIGURED,
    KR_AUDIT_UNKNOWN,
    KR_AUDIT_NCLASS
};

/* "OURS_OK", ...; "UNKNOWN" for KR_AUDIT_UNKNOWN and outside the enum. */
const char *kr_audit_class_name(int cls);

/* ---- collected data -------------------------------------------------------- */

/* One SRV record as merged over the servers that returned it. */
struct kr_audit_rec {
    uint16_t prio, weight, port;
    char target[KR_AUDIT_NAME_MAX];
    uint32_t seen;                      /* bit s: server s returned it */
    uint32_t ttl[KR_AUDIT_MAX_SERVERS]; /* TTL per server (valid where seen) */
};

/* The owner marker kmsrelay's publisher writes next to its SRV record:
 *   "kmsrelay=1 owner=<instance-id> target=<fqdn> port=<p> prio=<n> weight=<n>" */
struct kr_audit_marker {
    char id[KR_AUDIT_ID_MAX];
    char target[KR_AUDIT_NAME_MAX]; /* normalised like record targets */
    uint16_t port, prio, weight;
    uint32_t ttl;
    char text[KR_AUDIT_TXT_MAX]; /* the TXT string as read */
};

/* What one server said for the owner name. */
struct kr_audit_view {
    char server[KR_AUDIT_SERVER_MAX]; /* "127.0.0.1:53" */
    int ok;                           /* answered: NOERROR (maybe empty) or NXDOMAIN */
    char error[KR_AUDIT_ERR_MAX];     /* when !ok: timeout, REFUSED, TSIG problem... */
    unsigned n_srv;                   /* SRV records it returned */
};

/* One TCP connect + RPC bind attempt. */
enum kr_audit_stage {
    KR_PROBE_NONE = 0,    /* not tried */
    KR_PROBE_CONNECT = 1, /* connect failed or timed out */
    KR_PROBE_BIND = 2,    /* connected, but no bind_ack accepting the KMS interface */
    KR_PROBE_OK = 3,      /* bind_ack accepted the KMS interface */
};
struct kr_audit_try {
    char addr[KR_AUDIT_ADDR_MAX];
    uint16_t port;
    uint8_t stage;       /* enum kr_audit_stage */
    uint32_t connect_us; /* time to connect (or to fail) */
    uint32_t bind_us;    /* time from bind sent to answer (or failure) */
    char error[KR_AUDIT_ERR_MAX];
    char result[KR_AUDIT_ERR_MAX]; /* on KR_PROBE_OK: "NDR64 accepted" etc. */
};

/* What probing one record's target found. */
struct kr_audit_probe {
    int done;  /* the probe ran */
    int dot;   /* target is "." */
    int cname; /* target owns a CNAME */
    char cname_target[KR_AUDIT_NAME_MAX];
    char resolved_by[KR_AUDIT_SERVER_MAX]; /* server that gave the addresses */
    char resolve_error[KR_AUDIT_ERR_MAX];  /* "" when addresses were found */
    int lookup_failed; /* a lookup gave no proof either way (SERVFAIL, timeout...) */
    unsigned n_addrs;
    char addrs[KR_AUDIT_MAX_ADDRS][KR_AUDIT_ADDR_MAX];
    unsigned n_tries; /* one per address, on the record's port */
    struct kr_audit_try tries[KR_AUDIT_MAX_ADDRS];
    unsigned n_alt; /* other ports, tried only when the record's port failed */
    struct kr_audit_try alt[KR_AUDIT_MAX_ALT];
    int64_t failing_since;            /* unix s the target began failing; 0 = unknown/answers */
    char over_time[KR_AUDIT_ERR_MAX]; /* how failing_since was established, or why not */
};

/* What a probe says about the target, for the clock of dead_after. */
enum kr_audit_liveness {
    KR_AUDIT_LIVE = 0,      /* an address answered KMS */
    KR_AUDIT_DEAD = 1,      /* proof of absence, or every address failed */
    KR_AUDIT_UNDECIDED = 2, /* lookup failed, "." target, or not probed */
};
int kr_audit_liveness(const struct kr_audit_probe *p);

/* Everything known about one _vlmcs owner name. */
struct kr_audit_rrset {
    char zone[KR_AUDIT_NAME_MAX];
    char owner[KR_AUDIT_NAME_MAX];
    int from_axfr; /* found by AXFR, not asked for */
    int from_ldap; /* found in the directory (an AD zone's dnsNode), not asked for */
    int truncated; /* more records than KR_AUDIT_MAX_RR */
    unsigned n_views;
    struct kr_audit_view views[KR_AUDIT_MAX_SERVERS];
    unsigned n_rr;
    struct kr_audit_rec rr[KR_AUDIT_MAX_RR];
    struct kr_audit_probe probe[KR_AUDIT_MAX_RR]; /* parallel to rr */
    unsigned n_markers;
    struct kr_audit_marker markers[KR_AUDIT_MAX_RR];
};

/* Lower-cases `in` into out and adds the final dot ("" stays "", "." stays
 * "."). Returns out. */
char *kr_audit_norm_name(const char *in, char *out, size_t cap);

/* Adds server `server`'s answer to `set`: n SRV records (target text in any
 * case), merged with what other servers returned (same prio, weight, port
 * and target = same record). Returns the server's index, or KR_ENOSPC when
 * KR_AUDIT_MAX_SERVERS views exist. Records past KR_AUDIT_MAX_RR set
 * `truncated`. `ok` 0 records a failed server with `error`. */
struct kr_audit_srv_in {
    uint32_t ttl;
    uint16_t prio, weight, port;
    const char *target;
};
int kr_audit_add_view(struct kr_audit_rrset *set, const char *server, int ok, const char *error,
                      const struct kr_audit_srv_in *srv, size_t n);

/* Parses a TXT string; KR_ENOENT when it is not a kmsrelay marker (no
 * "kmsrelay=1"), KR_EMALF when it is one with a bad or missing field. */
int kr_audit_marker_parse(const char *txt, uint32_t ttl, struct kr_audit_marker *out,
                          const char **why);
/* Adds a TXT string to set->markers when it is a marker (others are
 * ignored; 0 either way; KR_ENOSPC when full). Duplicates are skipped. */
int kr_audit_add_marker(struct kr_audit_rrset *set, const char *txt, uint32_t ttl);

/* ---- classification ---------------------------------------------------------- */

/* A peer relay (issue 15) as the periodic audit sees it: its records are
 * recognised by their marker's owner id = its peers.name. */
struct kr_audit_peer {
    char id[64];
    int link_up;        /* the replication link is up now */
    int64_t down_since; /* unix s since when it has been unreachable */
};

struct kr_audit_policy {
    const char *instance_id; /* ours; NULL or "" = none */
    /* Peers with a live link state (kmsrelayd only): a peer's record is the
     * peer's (AUTHORIZED_OK) while its link is up or down for less than
     * peer_stale_s, and PEER_STALE (confirmed) after that, whatever a probe
     * of its target says. */
    const struct kr_audit_peer *peers;
    size_t n_peers;
    uint64_t peer_stale_s;
    const char *self_target; /* our published target, NULL = unknown */
    uint16_t self_port;
    const char *const *sanctioned; /* host names or addresses */
    size_t n_sanctioned;
    int64_t now;           /* unix s */
    uint64_t dead_after_s; /* 0 = point in time */
};

struct kr_audit_finding {
    int cls;       /* enum kr_audit_class */
    int confirmed; /* STALE_DEAD / PEER_STALE: failing long enough (always 1 otherwise) */
    int rr;        /* index into set->rr, -1 for RRset-level or marker-only findings */
    int marker;    /* index into set->markers of the record's marker, or -1 */
    char reason[320];
};

/* Classifies every record and marker of `set` (whose probes have run) and
 * the RRset itself. Writes at most `cap` findings to out and returns how
 * many there are in all (more than cap means some were not written). One
 * finding per record, in record order, then marker-only findings, then
 * RRset-level ones. Pure: no I/O. */
size_t kr_audit_classify(const struct kr_audit_rrset *set, const struct kr_audit_policy *pol,
                         struct kr_audit_finding *out, size_t cap);

/* 1 when a finding needs attention: not OURS_OK/AUTHORIZED_OK, and
 * confirmed. */
int kr_audit_is_problem(const struct kr_audit_finding *f);

/* 1 when `target` (normalised or not) or one of the addresses is on the
 * sanctioned list (names case-insensitive, final dot optional). */
int kr_audit_sanctioned(const struct kr_audit_policy *pol, const char *target,
                        const char (*addrs)[KR_AUDIT_ADDR_MAX], unsigned n_addrs);

/* Other ports to try for record `i` when its own port fails (see "Wrong
 * port" above): 1688, ports of records whose target shares an address
 * with it, then `extra`. Writes up to KR_AUDIT_MAX_ALT distinct ports, none
 * equal to the record's own; returns the count. */
unsigned kr_audit_alt_ports(const struct kr_audit_rrset *const *sets, size_t n_sets,
                            const struct kr_audit_rrset *set, unsigned i, const uint16_t *extra,
                            size_t n_extra, uint16_t out[KR_AUDIT_MAX_ALT]);

/* ---- probing --------------------------------------------------------------------- */

/* One blocking TCP connect to addr:port plus a DCE/RPC bind (KMS interface,
 * NDR32 and NDR64 contexts), bounded by timeout_ms for the connect and again
 * for the answer. Fills *out (stage, times, error or result); returns 0
 * whatever the outcome, KR_EINVAL for an unusable address. */
int kr_audit_probe_kms(const char *addr, uint16_t port, unsigned timeout_ms,
                       struct kr_audit_try *out);

/* ---- a whole run: collect, probe, classify, fix, report ------------------ */

struct kr_audit_opts {
    const char *const *zones; /* zone names, e.g. "example.test" */
    size_t n_zones;
    const struct kr_addr *servers; /* --server; none: the zone's NS (system resolver) */
    size_t n_servers;
    const struct kr_dns_key *key; /* signs AXFR and --fix UPDATEs; NULL: none */
    /* An AD zone's account (GSS-TSIG, issue 12), instead of key: --fix
     * UPDATEs are signed with Kerberos, and the zone's _vlmcs names are
     * read from the directory (LDAP, SASL GSSAPI, kmsrelay/directory.h)
     * because AD refuses zone transfers: the first server's address on
     * ldap_port (0 = 389), named by the zone's SOA MNAME. */
    const char *gss_keytab, *gss_principal;
    uint16_t ldap_port;
    int axfr;                    /* also scan the zone (TSIG AXFR) for _vlmcs names */
    unsigned timeout_ms;         /* per DNS try and per probe step; 0 = 3000 */
    const uint16_t *probe_ports; /* extra ports for the wrong-port check */
    size_t n_probe_ports;
    const struct kr_addr *resolvers; /* for targets outside the zone; none: resolv.conf */
    size_t n_resolvers;
    unsigned test_pause_ms; /* tests only: sleep before each --fix UPDATE */
    const int *cancel;      /* when not NULL and set (atomically): stop early */
};

/* One audited owner name with its verdicts. */
struct kr_audit_entry {
    struct kr_audit_rrset *set;                   /* owned */
    const struct kr_dns_key *key;                 /* borrowed from the opts it was collected with */
    const char *gss_keytab, *gss_principal;       /* the same (NULL: HMAC key or none) */
    struct kr_addr servers[KR_AUDIT_MAX_SERVERS]; /* where views came from, in order */
    size_t n_servers;
    size_t n_f;
    struct kr_audit_finding *f; /* owned, n_f */
    json_t **fix;               /* owned, n_f entries: what --fix did, NULL = nothing */
    /* The RRsets as read from views[0] (rdata text, exactly as the server
     * gave them), for the compare-and-swap prerequisite of --fix. */
    size_t n_txt;
    char (*txt)[1024]; /* TXT rdata presentation text, owned */
};

struct kr_audit_result {
    size_t n;
    struct kr_audit_entry *e; /* owned */
    size_t n_errors;
    char **errors; /* owned: collection failures, one line each */
};

/* Reads every zone's _vlmcs._tcp SRV and TXT RRsets from each server (and
 * with opts->axfr, or for a GSS zone from the directory, the other _vlmcs
 * names of the zone, each then asked from every server too; the directory
 * is one more view of each name). A server that fails
 * is recorded in the RRset's views and in r->errors. Returns 0 or
 * KR_ENOMEM. Blocking (kr_dns_*_sync). */
int kr_audit_collect(const struct kr_audit_opts *o, struct kr_audit_result *r);

/* Resolves and probes every record's target (see the top of this file);
 * then, for records whose port failed, the other ports. Blocking. */
void kr_audit_probe_all(const struct kr_audit_opts *o, struct kr_audit_result *r);

/* Classifies every entry (replacing earlier findings). Returns the number
 * of problems (kr_audit_is_problem), or KR_ENOMEM. */
int kr_audit_classify_all(struct kr_audit_result *r, const struct kr_audit_policy *p);

/* --fix: deletes each confirmed STALE_DEAD and PEER_STALE record (a peer's
 * marker with it), one UPDATE per record, with the SRV (and TXT) RRsets as
 * last read as a value-dependent prerequisite; prints the RRset before and
 * after each to `out` (NULL: silent). A concurrent change fails the
 * prerequisite and nothing is deleted. Only evidence over time deletes:
 * with pol->dead_after_s 0 (point in time), or a finding not confirmed, the
 * record is "skipped" with a message saying which evidence is missing and
 * how to get it. Fills entry->fix. Returns the number of records that
 * could not be removed (skipped ones not included: see kr_audit_skipped).
 * Blocking. */
int kr_audit_fix(const struct kr_audit_opts *o, const struct kr_audit_policy *pol,
                 struct kr_audit_result *r, FILE *out);
/* Number of records --fix skipped for lack of evidence over time. */
size_t kr_audit_skipped(const struct kr_audit_result *r);

/* Evidence over time from repeated probes (kmsrelayctl audit --dead-for):
 * re-probes every target that is DEAD (kr_audit_liveness) every `every_ms`
 * until `span_ms` have passed since the first probe (the one already in r)
 * or none is DEAD any more. A target that was DEAD in every probe gets
 * failing_since = the time of the first; one that answered or could not be
 * decided in any probe gets 0 (its probe shows the last result). Classify
 * with dead_after_s = span in seconds afterwards. `progress` (NULL: quiet)
 * gets a line per round. Blocking for span_ms. */
void kr_audit_watch(const struct kr_audit_opts *o, struct kr_audit_result *r, uint64_t span_ms,
                    uint64_t every_ms, FILE *progress);

/* Evidence over time from kmsrelayd's periodic audit (kmsrelayctl audit
 * --history): `report` is the "audit" member of GET /v1/dns (the daemon's
 * last report). Every target of r that is DEAD now gets the daemon's
 * failing_since for the same owner, target and port (STALE_DEAD or
 * PEER_STALE there), or 0 with over_time saying why. A report older than
 * max_age_s gives nothing. Returns the daemon's dead_after_s (> 0), or 0
 * with `why` set when the report is unusable (none, too old, malformed). */
uint64_t kr_audit_from_daemon(struct kr_audit_result *r, const json_t *report, int64_t now,
                              uint64_t max_age_s, char *why, size_t cap);

/* The report: {"zones", "findings": [...], "summary", "errors"}; NULL on
 * ENOMEM. The caller decrefs. */
json_t *kr_audit_json(const struct kr_audit_result *r, const struct kr_audit_policy *p);
/* The same report as a readable table. */
void kr_audit_print(FILE *out, const json_t *report);

/* Number of problems in r (kr_audit_is_problem). */
size_t kr_audit_problems(const struct kr_audit_result *r);

void kr_audit_result_free(struct kr_audit_result *r);

/* ---- kmsrelayd's periodic audit (audit/periodic.c) --------------------------- */

/*
 * Every dns.audit_interval (0 = off, the default) the daemon audits each
 * zone of dns.zones (its servers and key) from a worker thread, so the
 * event loop never waits for DNS or probes. Since when each target has
 * been failing is kept in the store (kv "audit:failing": a JSON object
 * {"<target>|<port>": unix s}); a record is dead only after dns.dead_after
 * (24 h) of failure. Problems are logged (event=dns_audit, warn), the last
 * report is kept in memory and in kv "audit:last" (when under 64 KB).
 *
 * Lifecycle, from the event loop's thread: create after the store is open,
 * apply after a reload, destroy before the store closes (it cancels and
 * joins a run in progress: at most one DNS or probe timeout).
 */
struct event_base;
struct kr_conf;
struct kr_store;
struct kr_audit_periodic;

#define KR_AUDIT_KV_FAILING "audit:failing"
#define KR_AUDIT_KV_LAST "audit:last"
#define KR_AUDIT_DEAD_AFTER_DEFAULT_S 86400

/* Always returns an object (idle when the audit is off); NULL = ENOMEM.
 * `store` may be NULL (no history: nothing is ever confirmed dead). */
struct kr_audit_periodic *kr_audit_periodic_create(struct event_base *base, const struct kr_conf *c,
                                                   struct kr_store *store);
void kr_audit_periodic_apply(struct kr_audit_periodic *p, const struct kr_conf *c);
void kr_audit_periodic_destroy(struct kr_audit_periodic *p);
/* The replication service whose link states decide the peers' records
 * (issue 15); NULL = none. Borrowed: must outlive the audit or be unset. */
struct kr_peers;
void kr_audit_periodic_set_peers(struct kr_audit_periodic *p, const struct kr_peers *peers);
/* The last report (a new reference), or NULL before the first run ends. */
json_t *kr_audit_periodic_json(struct kr_audit_periodic *p);

#endif
