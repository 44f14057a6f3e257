/*
 * message.h - the DNS client's message layer, shared by src/dnsclient files,
 * the unit tests and the fuzz target. The reply forger for tests is in
 * tests/support/dns_forge.h. No ldns type appears here (see
 * ldns-glue.h for the part that needs them).
 *
 * A request is built once into wire form (TSIG included) together with
 * everything its replies are checked against; kr_dns_msg_judge() then judges
 * one reply message at a time. The transport (transport.c) only moves bytes.
 *
 * Ownership: kr_dns_msg owns `wire` (malloc) and a copy of the key; free
 * with kr_dns_msg_reset(). Results are appended to a caller's
 * kr_dns_result (rrs/auth arrays grown with realloc).
 */
#ifndef KR_DNS_INTERNAL_H
#define KR_DNS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/dns.h"

#define KR_DNS_MAC_MAX 66 /* 2-byte size + up to 64 bytes (hmac-sha512) */
#define KR_DNS_OP_QUERY 0
#define KR_DNS_OP_UPDATE 5

struct kr_dns_msg {
    uint8_t *wire; /* the message as sent, TSIG included */
    size_t len;
    uint16_t id;
    uint8_t opcode;              /* KR_DNS_OP_* */
    uint16_t qtype;              /* question type (UPDATE: SOA) */
    char qname[KR_DNS_NAME_MAX]; /* question name or zone, absolute */
    bool axfr;
    bool is_signed;
    struct kr_dns_key key; /* copy, when signed */
    uint16_t fudge;
    uint8_t req_mac[KR_DNS_MAC_MAX]; /* the request's MAC (size-prefixed) */
    size_t req_mac_len;
    /* AXFR progress (reset by kr_dns_msg_restart) */
    uint8_t chain_mac[KR_DNS_MAC_MAX]; /* MAC of the last verified message */
    size_t chain_mac_len;
    uint32_t msgs; /* reply messages judged since the last restart */
    uint32_t soas; /* SOA records seen in the answer stream */
    size_t max_rrs;
};

/* Build a request. Returns 0, or KR_EINVAL / KR_EUNSUP / KR_ENOMEM with a
 * clear text in err (e.g. "update: del[1]: rdata \"x\" does not parse").
 * `key` may be NULL for queries and AXFR. fudge 0 means 300. */
int kr_dns_msg_build_query(struct kr_dns_msg *rq, const char *name, uint16_t type, bool rd,
                           const struct kr_dns_key *key, uint16_t fudge, char *err, size_t errlen);
int kr_dns_msg_build_update(struct kr_dns_msg *rq, const struct kr_dns_update *u,
                            const struct kr_dns_key *key, uint16_t fudge, char *err, size_t errlen);
/* Frees the wire and wipes the key copy; rq is zeroed. */
void kr_dns_msg_reset(struct kr_dns_msg *rq);
/* Before retrying on another server: AXFR progress back to the start. */
void kr_dns_msg_restart(struct kr_dns_msg *rq);

/* What to do after one reply message. */
enum kr_dns_verdict {
    KR_DNS_REPLY_DONE = 0, /* res is final (success or a final error) */
    KR_DNS_REPLY_NEXT = 1, /* this server failed (res says why): try the next one */
    KR_DNS_REPLY_MORE = 2, /* AXFR: read another message from the same connection */
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
enum kr_dns_verdict kr_dns_msg_judge(struct kr_dns_msg *rq, const uint8_t *wire, size_t len,
                                     int64_t now, const char *server, struct kr_dns_result *res);

/* A structural pre-check of a DNS message (before ldns sees it): header
 * present, every RR within bounds, at most one TSIG and only as the last
 * RR, nothing after the last RR. 0 or KR_EMALF with why. */
int kr_dns_msg_precheck(const uint8_t *wire, size_t len, const char **why);

/* "update of zone.", "AXFR of zone.", "query SRV name.": what rq asks, for
 * messages (explain.c). */
void kr_dns_msg_describe(const struct kr_dns_msg *rq, char *out, size_t cap);

/* Operator text for a final status (used by reply.c and the client). */
void kr_dns_explain(struct kr_dns_result *res, const struct kr_dns_msg *rq, const char *server,
                    int64_t now);

/* Names: "Example.Test" -> "Example.Test." (validated, <= 255 octets on the
 * wire, labels <= 63). 0 or KR_EINVAL. */
int kr_dns_name_absolute(const char *in, char out[KR_DNS_NAME_MAX]);

/* Result helpers. */
struct kr_dns_result *kr_dns_result_new(void);
int kr_dns_rr_push(struct kr_dns_rr **arr, size_t *n, const struct kr_dns_rr *rr);
void kr_dns_result_clear_rrs(struct kr_dns_result *res);
void kr_dns_result_set(struct kr_dns_result *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
