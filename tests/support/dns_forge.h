/*
 * dns_forge.h - forged DNS replies for the unit tests and the fuzz seeds
 * (tests/support/dns_forge.c), so that neither needs ldns itself. Linked
 * only into test programs, never into the daemon or the CLI.
 */
#ifndef KR_TESTS_DNS_FORGE_H
#define KR_TESTS_DNS_FORGE_H

#include "dnsclient/message.h"

struct kr_dns_forge {
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
int kr_dns_forge_reply(const struct kr_dns_msg *rq, const struct kr_dns_forge *f, uint8_t **wire,
                       size_t *len, uint8_t *mac, size_t *mac_len);
/* Parses any message into records: all sections in order (the question as
 * records with TTL 0 and empty rdata; TSIG last when present),
 * counts[4] = per-section counts (additional includes TSIG), and the
 * header's opcode and RD bit. 0 or KR_EMALF. *rrs is malloc'd. */
int kr_dns_forge_sections(const uint8_t *wire, size_t len, struct kr_dns_rr **rrs, size_t counts[4],
                          int *opcode, bool *rd);

#endif
