/*
 * dns-internal.h - the DNS client's message layer, shared by src/dns files,
 * the unit tests and the fuzz target. No ldns type appears here (see
 * ldns-glue.h for the part that needs them).
 *
 * A request is built once into wire form (TSIG included) together with
 * everything its replies are checked against; kr_dnsw_reply() then judges
 * one reply message at a time. The transport (client.c) only moves bytes.
 *
 * Ownership: kr_dnsw_req owns `wire` (malloc) and a copy of the key; free
 * with kr_dnsw_req_reset(). Results are appended to a caller's
 * kr_dns_result (rrs/auth arrays grown with realloc).
 */
#ifndef KR_DNS_INTERNAL_H
#define KR_DNS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/dns.h"

#define KR_DNSW_MAC_MAX 66 /* 2-byte size + up to 64 bytes (hmac-sha512) */
#define KR_DNSW_OP_QUERY 0
#define KR_DNSW_OP_UPDATE 5

struct kr_dnsw_req {
    uint8_t *wire; /* the message as sent, TSIG included */
    size_t len;
    uint16_t id;
    uint8_t opcode;              /* KR_DNSW_OP_* */
    uint16_t qtype;              /* question type (UPDATE: SOA) */
    char qname[KR_DNS_NAME_MAX]; /* question name or zone, absolute */
    bool axfr;
    bool is_signed;
    struct kr_dns_key key; /* copy, when signed */
    uint16_t fudge;
    uint8_t req_mac[KR_DNSW_MAC_MAX]; /* the request's MAC (size-prefixed) */
    size_t req_mac_len;
    /* AXFR progress (reset by kr_dnsw_restart) */
    uint8_t chain_mac[KR_DNSW_MAC_MAX]; /* MAC of the last verified message */
    size_t chain_mac_len;
    uint32_t msgs; /* reply messages judged since the last restart */
    uint32_t soas; /* SOA records seen in the answer stream */
    size_t max_rrs;
};

/* Build a request. Returns 0, or KR_EINVAL / KR_EUNSUP / KR_ENOMEM with a
 * clear text in err (e.g. "update: del[1]: rdata \"x\" does not parse").
 * `key` may be NULL for queries and AXFR. fudge 0 means 300. */
int kr_dnsw_build_query(struct kr_dnsw_req *rq, const char *name, uint16_t type, bool rd,
                        const struct kr_dns_key *key, uint16_t fudge, char *err, size_t errlen);
int kr_dnsw_build_update(struct kr_dnsw_req *rq, const struct kr_dns_update *u,
                         const struct kr_dns_key *key, uint16_t fudge, char *err, size_t errlen);
/* Frees the wire and wipes the key copy; rq is zeroed. */
void kr_dnsw_req_reset(struct kr_dnsw_req *rq);
/* Before retrying on another server: AXFR progress back to the start. */
void kr_dnsw_restart(struct kr_dnsw_req *rq);

/* What to do after one reply message. */
enum kr_dnsw_verdict {
    KR_DNSW_DONE = 0, /* res is final (success or a final error) */
    KR_DNSW_NEXT = 1, /* this server failed (res says why): try the next one */
    KR_DNSW_MORE = 2, /* AXFR: read another message from the same connection */
};

/*
 * Judges one reply message (without the TCP length prefix) against rq:
 * format, ID/QR/opcode/question, TSIG (MAC with ldns, time window against
 * `now`, unix seconds), RCODE; fills res->status, rcode, tsig_error,
 * message, server_time, aa, verified, and appends records (QUERY: answer
 * and authority; AXFR: answer). `server` names the server in messages.
 * Never crashes on any input; a malformed message is KR_DNS_E_BADREPLY
 * with a reason in res->message.
 */
enum kr_dnsw_verdict kr_dnsw_reply(struct kr_dnsw_req *rq, const uint8_t *wire, size_t len,
                                   int64_t now, const char *server, struct kr_dns_result *res);

/* A structural pre-check of a DNS message (before ldns sees it): header
 * present, every RR within bounds, at most one TSIG and only as the last
 * RR, nothing after the last RR. 0 or KR_EMALF with why. */
int kr_dnsw_precheck(const uint8_t *wire, size_t len, const char **why);

/* Operator text for a final status (used by reply.c and the client). */
void kr_dnsw_explain(struct kr_dns_result *res, const struct kr_dnsw_req *rq, const char *server,
                     int64_t now);

/* ---- test support (fake.c): forged replies for the unit tests and the
 * fuzz seeds, so that neither needs ldns. ------------------------------- */
struct kr_dnsw_fake {
    int rcode;
    bool aa;
    const struct kr_dns_rr *answer; /* answer section (AXFR: the stream's part) */
    size_t n_answer;
    const struct kr_dns_rr *auth;
    size_t n_auth;
    bool sign;               /* a TSIG with rq's key */
    int tsig_error;          /* TSIG error field (16 BADSIG, 17 BADKEY, 18 BADTIME) */
    bool empty_mac;          /* MAC size 0 (how BADSIG/BADKEY come back) */
    int64_t time;            /* Time Signed, unix s */
    int64_t other_time;      /* BADTIME: the server's clock in Other Data, 0 = none */
    bool corrupt_mac;        /* flip a MAC bit after signing */
    const char *key_name;    /* sign under another name (NULL = rq's) */
    const uint8_t *prev_mac; /* AXFR continuation: previous message's MAC */
    size_t prev_mac_len;     /* (size-prefixed); NULL = the request's MAC */
    bool timers_only;        /* AXFR continuation digest (RFC 8945 5.3.1) */
    int id_delta;            /* added to rq->id */
    bool qr_clear;
    int opcode;       /* -1 = rq's */
    bool no_question; /* omit the question section */
};
/* Builds a reply to rq as *wire (malloc) with its MAC in mac/mac_len
 * (size-prefixed, may be NULL). 0 or KR_E*. */
int kr_dnsw_fake_reply(const struct kr_dnsw_req *rq, const struct kr_dnsw_fake *f, uint8_t **wire,
                       size_t *len, uint8_t *mac, size_t *mac_len);
/* Parses any message into records: all sections in order (the question as
 * records with TTL 0 and empty rdata; TSIG last when present),
 * counts[4] = per-section counts (additional includes TSIG), and the
 * header's opcode and RD bit. 0 or KR_EMALF. *rrs is malloc'd. */
int kr_dnsw_sections(const uint8_t *wire, size_t len, struct kr_dns_rr **rrs, size_t counts[4],
                     int *opcode, bool *rd);

/* Names: "Example.Test" -> "Example.Test." (validated, <= 255 octets on the
 * wire, labels <= 63). 0 or KR_EINVAL. */
int kr_dnsn_abs(const char *in, char out[KR_DNS_NAME_MAX]);

/* Result helpers. */
struct kr_dns_result *kr_dnsr_new(void);
int kr_dnsr_push(struct kr_dns_rr **arr, size_t *n, const struct kr_dns_rr *rr);
void kr_dnsr_clear_rrs(struct kr_dns_result *res);
void kr_dnsr_set(struct kr_dns_result *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
