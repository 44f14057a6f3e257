/*
 * dns.h - kmsrelay's DNS client: TSIG keys, queries, TSIG-verified AXFR and
 * RFC 2136 UPDATE, non-blocking on a libevent base (plus blocking wrappers
 * for the command line). src/dnsclient/ is the only code that sees ldns; nothing
 * here exposes an ldns type.
 *
 * Transport: TCP only (RFC 1035 2-byte length framing), one connection per
 * request and server try, so an UPDATE's RCODE is always accurate (RFC 2136
 * 7.8) and a compare-and-swap prerequisite is never replayed. ldns builds,
 * signs, parses and verifies packets; every socket is libevent's.
 *
 * Replies are checked before anything is believed: ID, QR, opcode and
 * question must match the request; with a key the reply must carry a TSIG
 * of that key whose MAC verifies (covering the request MAC) and whose time
 * is within the fudge of our clock (ldns checks only the MAC); AXFR checks
 * every message (the MAC chain of RFC 8945 5.3.1; every message must be
 * signed, as BIND and Knot do).
 *
 * Servers are tried in order. SERVFAIL, NOTIMP, NOTAUTH without a TSIG
 * error, a timeout, a refused/broken connection and a malformed or
 * unverifiable-by-format reply move on to the next server; every other
 * outcome is final (RFC 2136 4.5). With mname_fallback an UPDATE whose
 * servers all failed that way (or that has no servers) is sent once more
 * to the zone's SOA MNAME, looked up through `resolvers` (else the same
 * servers, else /etc/resolv.conf).
 *
 * Errors: each request ends in a kr_dns_result whose `status` is a
 * kr_dns_status class and whose `message` is one operator-readable line
 * that says what happened and what to do (e.g. "TSIG BADSIG from
 * 127.0.0.1:5353: the server does not accept the secret of key
 * kms-proxy-key. (key problem: check the key file on both sides)").
 * Messages name keys, never key material.
 *
 * Ownership: every pointer argument is borrowed for the call only (the
 * request copies servers, key and records). A result is owned by whoever
 * receives it (the callback, or the caller of a *_sync function) and is
 * freed with kr_dns_result_free().
 *
 * The daemon side (publishing our _vlmcs SRV, discovery from SRV names) is
 * in src/dnsservice/dnsservice.h; its records in the store's kv table are described at
 * KR_DNS_KV_PREFIX below.
 */
#ifndef KMSRELAY_DNS_H
#define KMSRELAY_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/netaddr.h"

struct event_base;

#define KR_DNS_NAME_MAX 256   /* presentation name, final dot and NUL included */
#define KR_DNS_RDATA_MAX 1024 /* presentation RDATA text and NUL */
#define KR_DNS_TXT_MAX 512    /* TXT strings, concatenated, and NUL */
#define KR_DNS_MSG_MAX 512    /* kr_dns_result.message */

/* RR types used by kmsrelay (any other type works by number). */
enum kr_dns_type {
    KR_DNS_A = 1,
    KR_DNS_NS = 2,
    KR_DNS_CNAME = 5,
    KR_DNS_SOA = 6,
    KR_DNS_PTR = 12,
    KR_DNS_MX = 15,
    KR_DNS_TXT = 16,
    KR_DNS_AAAA = 28,
    KR_DNS_SRV = 33,
    KR_DNS_AXFR = 252,
    KR_DNS_ANY = 255,
};

/* "SRV", "TXT", ... or "TYPE<n>" written into buf. Returns buf. */
const char *kr_dns_type_name(uint16_t type, char buf[16]);
/* "srv", "SRV", "TYPE33" -> 33; -1 when unknown. */
int kr_dns_type_parse(const char *text);
/* "NOERROR", "REFUSED", ... "RCODE<n>". Static string (n > 23 -> "RCODE?"). */
const char *kr_dns_rcode_name(int rcode);
/* Case-insensitive comparison of two presentation names; a missing final
 * dot is ignored ("Example.test" equals "example.test."). */
bool kr_dns_name_equal(const char *a, const char *b);

/* ---- TSIG keys ---------------------------------------------------------- */

/*
 * A TSIG key as written by BIND's tsig-keygen:
 *     key "kms-proxy-key." { algorithm hmac-sha256; secret "base64=="; };
 * Supported algorithms: hmac-sha256 (recommended), hmac-sha512, hmac-sha1.
 * hmac-sha384 and hmac-sha224 are refused (ldns 1.8 cannot sign them),
 * hmac-md5 and gss-tsig too. The secret never appears in any message.
 */
struct kr_dns_key {
    char name[KR_DNS_NAME_MAX]; /* absolute, lower case: "kms-proxy-key." */
    char algorithm[32];         /* absolute: "hmac-sha256." */
    char secret[256];           /* base64, exactly as in the file: NEVER log */
};

/*
 * Loads key `name` (NULL: the file must hold exactly one key; a name with
 * or without final dot) from a tsig-keygen file. The file must be a
 * regular file that neither group nor others can read or write (mode 0600
 * or stricter), else KR_EINVAL with err "key file F is accessible by group
 * or others (mode 0644): chmod 600 F". Other errors, each with a clear
 * err text (never containing the secret): KR_EIO (cannot open/read; errno
 * text included), KR_EMALF (syntax, with the line number; bad base64),
 * KR_EUNSUP (algorithm), KR_ENOENT (no key of that name), KR_EINVAL (more
 * than one key and no name given). *out is zeroed on failure.
 */
int kr_dns_key_load(const char *path, const char *name, struct kr_dns_key *out, char *err,
                    size_t errlen);
/* The same parser on a text in memory (no permission check). `why` gets a
 * static reason; *line (may be NULL) the 1-based line of a syntax error. */
int kr_dns_key_parse(const char *text, size_t len, const char *name, struct kr_dns_key *out,
                     int *line, const char **why);
/* Wipes the key (secret included) with explicit_bzero. */
void kr_dns_key_clear(struct kr_dns_key *k);

/* ---- records ------------------------------------------------------------ */

/*
 * One resource record. `rdata` (presentation text, as dig prints it) is
 * what goes on the wire when a record is sent; the typed fields below it
 * are a parsed view filled by the constructors and by every parser, never
 * read when building. So a record read from a reply can be handed back
 * unchanged to delete exactly that record.
 */
struct kr_dns_rr {
    char owner[KR_DNS_NAME_MAX]; /* absolute: "_vlmcs._tcp.example.test." */
    uint16_t type;               /* enum kr_dns_type or any number */
    uint16_t rclass;             /* 1 = IN */
    uint32_t ttl;
    char rdata[KR_DNS_RDATA_MAX]; /* "0 100 1688 kms1.example.test." */
    bool truncated;               /* rdata did not fit: display only, cannot be sent */

    /* parsed view */
    uint16_t priority, weight, port; /* SRV (MX: priority = preference) */
    char target[KR_DNS_NAME_MAX];    /* SRV/CNAME/NS/PTR/MX target, SOA MNAME */
    int family;                      /* A: AF_INET, AAAA: AF_INET6, else 0 */
    uint8_t addr[16];                /* A: first 4 bytes */
    char txt[KR_DNS_TXT_MAX];        /* TXT: the strings concatenated (cut at the cap) */
    uint8_t txt_count;               /* TXT: number of strings */
    uint32_t soa_serial, soa_minimum;
};

/* Constructors: fill every field (rclass IN). Names may omit the final dot
 * (they are absolute). KR_EINVAL for a bad name, an over-long text (a TXT
 * string is at most 255 bytes), a bad family. */
int kr_dns_rr_srv(struct kr_dns_rr *rr, const char *owner, uint32_t ttl, uint16_t priority,
                  uint16_t weight, uint16_t port, const char *target);
int kr_dns_rr_txt(struct kr_dns_rr *rr, const char *owner, uint32_t ttl, const char *text);
int kr_dns_rr_addr(struct kr_dns_rr *rr, const char *owner, uint32_t ttl, int family,
                   const void *addr);
/* Parses one presentation line "owner ttl [IN] TYPE rdata" (dig/zone file
 * syntax, absolute owner). KR_EMALF with why. */
int kr_dns_rr_from_text(struct kr_dns_rr *rr, const char *line, const char **why);
/* "owner ttl IN TYPE rdata", dig style. Returns out (always terminated). */
const char *kr_dns_rr_format(const struct kr_dns_rr *rr, char *out, size_t cap);
/* Same record in the RFC 2136 sense: owner (case-insensitive), class, type
 * and RDATA in canonical wire form; the TTL is ignored. */
bool kr_dns_rr_same(const struct kr_dns_rr *a, const struct kr_dns_rr *b);

/* ---- kmsrelay's ownership marker (TXT at the same name as the SRV) ------ */

/*
 * "kmsrelay=1 owner=<instance-id> target=<fqdn.> port=<p> prio=<n> weight=<n>"
 * written in the same UPDATE as the SRV it describes. A marker proves
 * ownership only together with the SRV it names (same target and port).
 */
struct kr_dns_marker {
    char owner_id[64]; /* instance id: [A-Za-z0-9._-], 1..63 bytes */
    char target[KR_DNS_NAME_MAX];
    uint16_t port, priority, weight;
};
/* KR_EINVAL when the id has other characters or the text would not fit. */
int kr_dns_marker_format(const struct kr_dns_marker *m, char *out, size_t cap);
/* KR_ENOENT: not a kmsrelay marker (no leading "kmsrelay=1"); KR_EMALF: a
 * marker with a missing or bad field (why says which). Unknown keys are
 * ignored (later versions may add some). */
int kr_dns_marker_parse(const char *text, struct kr_dns_marker *out, const char **why);

/*
 * What the daemon last published, in the store's kv table:
 *   key   "dns:pub:<zone.>"  (zone lower case, absolute)
 *   value two lines, kr_dns_rr_format() of the SRV then of the TXT marker,
 *         each ended by '\n' (parse with kr_dns_rr_from_text). Absent when
 *         nothing is published (withdrawn, or never).
 */
#define KR_DNS_KV_PREFIX "dns:pub:"

/* ---- requests ----------------------------------------------------------- */

/* The class of a request's outcome. */
enum kr_dns_status {
    KR_DNS_OK = 0,         /* NOERROR (a query: also NXDOMAIN, see rcode) */
    KR_DNS_E_KEY = 1,      /* TSIG BADSIG/BADKEY, or an unsigned or forged reply to a
                            * signed request: key problem, do not retry fast */
    KR_DNS_E_TIME = 2,     /* TSIG BADTIME, or the reply's time is outside the fudge:
                            * clock skew (server_time says the server's clock) */
    KR_DNS_E_REFUSED = 3,  /* REFUSED: the server's policy (ACL, update-policy) */
    KR_DNS_E_ZONE = 4,     /* NOTZONE, or NOTAUTH without TSIG error on every server:
                            * wrong zone or wrong server */
    KR_DNS_E_PREREQ = 5,   /* UPDATE prerequisite failed (YXDOMAIN, YXRRSET, NXDOMAIN,
                            * NXRRSET): the RRset changed, re-read */
    KR_DNS_E_FORMERR = 6,  /* FORMERR: the server could not parse our message */
    KR_DNS_E_SERVFAIL = 7, /* SERVFAIL or NOTIMP on every server: retry later */
    KR_DNS_E_NET = 8,      /* timeout or connection failure on every server */
    KR_DNS_E_BADREPLY = 9, /* a malformed or mismatched reply (last server tried) */
    KR_DNS_E_RCODE = 10,   /* another RCODE */
    KR_DNS_E_LOCAL = 11,   /* could not build or sign the request (bad record, ...) */
};
/* "ok", "key", "clock", "refused", "zone", "prereq", "formerr", "servfail",
 * "network", "bad_reply", "rcode", "local". */
const char *kr_dns_status_name(int status);
/* True for the classes worth retrying later by themselves (SERVFAIL, NET,
 * BADREPLY); the others need an operator or a re-read first. */
bool kr_dns_status_transient(int status);

/* TSIG error codes (RFC 8945) as found in kr_dns_result.tsig_error. */
#define KR_DNS_TSIG_BADSIG 16
#define KR_DNS_TSIG_BADKEY 17
#define KR_DNS_TSIG_BADTIME 18
#define KR_DNS_TSIG_BADTRUNC 22

struct kr_dns_result {
    int status;                   /* enum kr_dns_status */
    int rcode;                    /* RCODE of the reply that decided, -1 if none */
    int tsig_error;               /* from that reply's TSIG, 0 if none */
    char message[KR_DNS_MSG_MAX]; /* one line for operators (no secrets) */
    char server[KR_ADDRSTRLEN];   /* the server that decided (or was tried last) */
    int64_t server_time;          /* unix s from the reply's TSIG, 0 if unsigned */
    bool aa;                      /* reply had AA set */
    bool verified;                /* reply TSIG verified (MAC and time) */
    uint32_t messages;            /* AXFR: messages received */
    size_t n_rrs;                 /* QUERY: answer section; AXFR: the zone (the */
    struct kr_dns_rr *rrs;        /* closing SOA dropped); UPDATE: none */
    size_t n_auth;                /* QUERY: authority section (the SOA of a */
    struct kr_dns_rr *auth;       /* NODATA/NXDOMAIN answer) */
};
void kr_dns_result_free(struct kr_dns_result *res); /* NULL is fine */

/* Where and how to send one request. Copied by the request. */
struct kr_dns_servers {
    const struct kr_addr *addrs; /* tried in order; n may be 0 with mname_fallback */
    size_t n;
    const struct kr_dns_key *key;    /* NULL: unsigned (queries only; UPDATE needs one) */
    uint64_t timeout_ms;             /* one server try (connect to last byte); 0 = 3000 */
    uint64_t budget_ms;              /* the whole request over all servers; 0 = no cap */
    bool recursion;                  /* QUERY: set RD (the addrs are resolvers) */
    bool mname_fallback;             /* UPDATE: see the top of this file. The update goes
                                      * to the MNAME on the port of addrs[0] (53 if none) */
    const struct kr_addr *resolvers; /* where the fallback asks for the SOA and the
                                      * MNAME's address: NULL = addrs, or with no
                                      * addrs /etc/resolv.conf (recursion on) */
    size_t n_resolvers;
    /* GSS-TSIG (RFC 3645, issue 12) instead of `key`: the account's keytab
     * and principal. Queries and updates then run on a worker thread
     * (Kerberos blocks), one security context per server kept between
     * requests (gss_pool.c); AXFR stays
     * HMAC-only; addrs must be given (no MNAME fallback). NULL = HMAC. */
    const char *gss_keytab;
    const char *gss_principal;
};

struct kr_dns_client_opts {
    uint16_t fudge;      /* TSIG fudge we sign with and accept; 0 = 300 s */
    size_t axfr_max_rrs; /* 0 = 200000; a bigger zone fails with KR_DNS_E_LOCAL */
    /* Wall clock for the TSIG time check (tests); NULL = kr_wall_s(). */
    int64_t (*wall)(void *ctx);
    void *wall_ctx;
};

struct kr_dns_client; /* opaque: one per event base, any number of requests */
struct kr_dns_req;    /* opaque handle of one request in flight */

/* The callback runs exactly once per request, always from the event loop
 * (never inside the submitting call), unless the request is cancelled. It
 * owns `res`. It may submit new requests and cancel others. */
typedef void (*kr_dns_cb)(struct kr_dns_result *res, void *arg);

/* NULL when out of memory. opts may be NULL. */
struct kr_dns_client *kr_dns_client_new(struct event_base *base,
                                        const struct kr_dns_client_opts *opts);
/* Cancels every request (no callback runs) and frees the client. */
void kr_dns_client_free(struct kr_dns_client *c);

/* A query for (name, type), class IN. Returns 0 (the callback will run) or
 * KR_EINVAL (NULL argument) / KR_ENOMEM, and then no callback runs. *out
 * (may be NULL) gets the handle, valid until the callback starts. */
int kr_dns_query(struct kr_dns_client *c, const struct kr_dns_servers *s, const char *name,
                 uint16_t type, kr_dns_cb cb, void *arg, struct kr_dns_req **out);

/* A zone transfer (AXFR) of `zone`; with a key every message's TSIG is
 * verified. The result holds the whole zone. Same return rules. */
int kr_dns_axfr(struct kr_dns_client *c, const struct kr_dns_servers *s, const char *zone,
                kr_dns_cb cb, void *arg, struct kr_dns_req **out);

/*
 * An RFC 2136 UPDATE of `zone`. Sections, in this order on the wire:
 *   prereq  "RRset exists (value dependent)": for each (owner, type) listed,
 *           the zone's RRset must equal exactly the records given (no more,
 *           no fewer; TTLs are not compared). For compare-and-swap, list the
 *           whole RRset as last read. Fails with KR_DNS_E_PREREQ (NXRRSET).
 *   del     "delete this exact RR" (sent as CLASS NONE, TTL 0): deleting an
 *           absent RR is a no-op. Never an RRset delete.
 *   add     "add this RR" with its TTL (a duplicate is a no-op). Note that
 *           an added TTL becomes the TTL of the whole RRset.
 * Deletes come before adds, so delete-ours + add-ours is one atomic,
 * idempotent replace. An UPDATE needs a key (else KR_DNS_E_LOCAL).
 */
struct kr_dns_update {
    const char *zone;
    const struct kr_dns_rr *prereq;
    size_t n_prereq;
    const struct kr_dns_rr *del;
    size_t n_del;
    const struct kr_dns_rr *add;
    size_t n_add;
};
int kr_dns_update(struct kr_dns_client *c, const struct kr_dns_servers *s,
                  const struct kr_dns_update *u, kr_dns_cb cb, void *arg, struct kr_dns_req **out);

/* Stops a request; its callback will not run. The handle is invalid after. */
void kr_dns_cancel(struct kr_dns_req *req);

/* ---- blocking wrappers (command line only, never in the daemon) --------- */

/* Each runs a private event base until the request ends. Returns 0 and sets
 * *out (caller frees; look at (*out)->status), or KR_ENOMEM / KR_EINVAL.
 * opts may be NULL. */
int kr_dns_query_sync(const struct kr_dns_servers *s, const struct kr_dns_client_opts *opts,
                      const char *name, uint16_t type, struct kr_dns_result **out);
int kr_dns_axfr_sync(const struct kr_dns_servers *s, const struct kr_dns_client_opts *opts,
                     const char *zone, struct kr_dns_result **out);
int kr_dns_update_sync(const struct kr_dns_servers *s, const struct kr_dns_client_opts *opts,
                       const struct kr_dns_update *u, struct kr_dns_result **out);

/* ---- a host name's addresses (src/dnsclient/addr.c) --------------------- */

/*
 * A and AAAA of one name, asked at once through recursive resolvers
 * (s->recursion should be set), with the TTL to re-resolve by. CNAME
 * chains are followed by the resolver; every A/AAAA of the answer counts.
 * Addresses: IPv4 first, then IPv6, each in byte order (stable whatever
 * order the server rotates them in), all with `port`.
 */
#define KR_DNS_ADDRS_MAX 16
struct kr_dns_addrs {
    size_t n;
    struct kr_addr addrs[KR_DNS_ADDRS_MAX];
    uint32_t ttl;                 /* least TTL of the answer's records; when n == 0 and
                                   * `absent`, the negative TTL (SOA); else 0 */
    bool absent;                  /* n == 0 and both answers say so (NXDOMAIN, or no A
                                   * and no AAAA): not a passing failure */
    char message[KR_DNS_MSG_MAX]; /* n == 0: why, one line ("NXDOMAIN from
                                   * 127.0.0.1:53", a network error, ...) */
};
typedef void (*kr_dns_addrs_cb)(const struct kr_dns_addrs *res, void *arg);
struct kr_dns_lookup; /* opaque: one lookup in flight */

/* Same rules as kr_dns_query (callback once, from the loop, never inside
 * this call; 0 or KR_EINVAL/KR_ENOMEM and then no callback). */
int kr_dns_lookup_addrs(struct kr_dns_client *c, const struct kr_dns_servers *s, const char *name,
                        uint16_t port, kr_dns_addrs_cb cb, void *arg, struct kr_dns_lookup **out);
/* Stops a lookup; its callback will not run. NULL is fine. */
void kr_dns_lookup_cancel(struct kr_dns_lookup *l);
/* The blocking form (command line, `kmsrelayd -n`). 0 (look at out->n) or
 * KR_ENOMEM / KR_EINVAL. */
int kr_dns_lookup_addrs_sync(const struct kr_dns_servers *s, const char *name, uint16_t port,
                             struct kr_dns_addrs *out);

/* The nameservers of /etc/resolv.conf (port 53), for callers with no
 * configured servers. Returns how many were written (at most max). */
size_t kr_dns_system_resolvers(struct kr_addr *out, size_t max);

#endif
