/*
 * fuzz_dns_reply.c - the DNS client's reply judge (src/dnsclient/reply.c and
 * precheck.c, ldns's wire parser below them) on arbitrary bytes, for every
 * reply kind kmsrelay reads: UPDATE replies, SRV and A answers, and AXFR
 * message streams, each with and without TSIG checking.
 *
 * Input: byte 0 picks the kind (bits 0-1: update, SRV query, AXFR, A
 * query; bit 2: the request was signed); the rest is one reply message,
 * or for AXFR a stream of [2-byte length][message] frames judged until the
 * transfer ends. The request is built once per input with a fixed ID and
 * request MAC, so seeds forged with that state (the corpus) verify and
 * reach the code behind the MAC check.
 *
 * Properties: never crash; a verdict is one of DONE/NEXT/MORE; a result
 * carries a non-empty message unless OK; plain SRV/TXT/A/AAAA/CNAME records
 * that parsed survive format -> parse -> same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/message.h"
#include "kmsrelay/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ID 0x1234
#define FUZZ_NOW 1700000000

static const char keytext[] = "key \"fuzz-key.\" { algorithm hmac-sha256; "
                              "secret \"t41f/LggFK+03OF7k6cTwWplqIR1UBV5+3jBDdJSwwI=\"; };";

static void check_rr(const struct kr_dns_rr *rr)
{
    char line[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 64], abs[KR_DNS_NAME_MAX];
    struct kr_dns_rr back;
    struct kr_dns_marker m;

    kr_dns_rr_format(rr, line, sizeof(line));
    if (rr->type == KR_DNS_TXT)
        kr_dns_marker_parse(rr->txt, &m, NULL);
    bool plain = rr->type == KR_DNS_SRV || rr->type == KR_DNS_TXT || rr->type == KR_DNS_A ||
                 rr->type == KR_DNS_AAAA || rr->type == KR_DNS_CNAME;
    if (!plain || rr->truncated || rr->rclass != 1 || kr_dns_name_absolute(rr->owner, abs) != 0)
        return;
    const char *why = NULL;
    if (kr_dns_rr_from_text(&back, line, &why) != 0 || !kr_dns_rr_same(rr, &back)) {
        fprintf(stderr, "record does not survive format/parse: %s (%s)\n", line,
                why ? why : "differs");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct kr_dns_key key;
    static bool have_key;
    struct kr_dns_msg rq;
    struct kr_dns_result res;
    char err[256];
    int rc;

    if (!have_key) {
        if (kr_dns_key_parse(keytext, strlen(keytext), NULL, &key, NULL, NULL) != 0)
            abort();
        have_key = true;
    }
    if (size < 1)
        return 0;
    int kind = data[0] & 3;
    bool sign = data[0] & 4;
    if (kind == 0) {
        struct kr_dns_rr add;
        kr_dns_rr_srv(&add, "_vlmcs._tcp.example.test", 300, 0, 100, 1688, "relay.example.test");
        struct kr_dns_update u = {"example.test", NULL, 0, NULL, 0, &add, 1};
        rc = kr_dns_msg_build_update(&rq, &u, &key, 0, err, sizeof(err));
    } else {
        static const uint16_t types[] = {0, KR_DNS_SRV, KR_DNS_AXFR, KR_DNS_A};
        rc = kr_dns_msg_build_query(&rq, kind == 2 ? "example.test" : "_vlmcs._tcp.example.test",
                                    types[kind], false, &key, 0, err, sizeof(err));
    }
    if (rc != 0)
        abort();
    /* Deterministic request state (see the top of the file). */
    rq.id = FUZZ_ID;
    memset(rq.req_mac + 2, 0x11, 32);
    rq.req_mac[0] = 0;
    rq.req_mac[1] = 32;
    rq.req_mac_len = 34;
    rq.is_signed = sign;
    kr_dns_msg_restart(&rq);

    memset(&res, 0, sizeof(res));
    const uint8_t *p = data + 1;
    size_t left = size - 1;
    int v = KR_DNS_REPLY_MORE;
    while (v == KR_DNS_REPLY_MORE) {
        size_t n = left;
        if (kind == 2) {
            if (left < 2)
                break;
            n = (size_t)p[0] << 8 | p[1];
            p += 2;
            left -= 2;
            if (n > left)
                n = left;
        }
        uint8_t *msg = malloc(n ? n : 1); /* exact size: ASan sees overreads */
        if (!msg)
            abort();
        memcpy(msg, p, n);
        v = kr_dns_msg_judge(&rq, msg, n, FUZZ_NOW, "192.0.2.1:53", &res);
        free(msg);
        p += n;
        left -= n;
        if (v != KR_DNS_REPLY_DONE && v != KR_DNS_REPLY_NEXT && v != KR_DNS_REPLY_MORE)
            abort();
        if (v != KR_DNS_REPLY_MORE && res.status != KR_DNS_OK && res.message[0] == '\0')
            abort();
        if (kind != 2 || left == 0)
            break;
    }
    for (size_t i = 0; i < res.n_rrs; i++)
        check_rr(&res.rrs[i]);
    for (size_t i = 0; i < res.n_auth; i++)
        check_rr(&res.auth[i]);
    kr_dns_result_clear_rrs(&res);
    kr_dns_msg_reset(&rq);
    return 0;
}
