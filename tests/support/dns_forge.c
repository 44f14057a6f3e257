/*
 * dns_forge.c - test support: forged DNS replies (signed, unsigned, with TSIG
 * errors, wrong times, broken MACs, AXFR continuations) and a section
 * dump, so that the unit tests and the fuzz seed generator exercise
 * reply.c without including ldns. Not used by kmsrelayd itself.
 *
 * The TSIG MAC is computed here with OpenSSL's HMAC (RFC 8945 4.3.3):
 * request MAC, message without TSIG (original ID), then the TSIG variables
 * (or, for AXFR continuations, only the timers), so any field can be set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dns_forge.h"
#include "dnsclient/ldns-glue.h"
#include "kmsrelay/err.h"

static void put48(uint8_t *p, uint64_t v)
{
    for (int i = 5; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static int push_all(ldns_rr_list *l, const struct kr_dns_rr *rrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ldns_rr *r = kr_dns_rr_to_ldns(&rrs[i], NULL);
        if (!r || !ldns_rr_list_push_rr(l, r)) {
            ldns_rr_free(r);
            return KR_EINVAL;
        }
    }
    return 0;
}

static const EVP_MD *md_of(const char *alg)
{
    if (strcmp(alg, "hmac-sha512.") == 0)
        return EVP_sha512();
    if (strcmp(alg, "hmac-sha1.") == 0)
        return EVP_sha1();
    return EVP_sha256();
}

/* The TSIG RR for message `body` (wire without TSIG). */
static ldns_rr *tsig_rr(const struct kr_dns_msg *rq, const struct kr_dns_forge *f,
                        const uint8_t *body, size_t blen, uint16_t orig_id)
{
    const char *kname = f->key_name ? f->key_name : rq->key.name;
    uint8_t keybuf[128], mac[EVP_MAX_MD_SIZE], t6[6], other[6];
    unsigned maclen = 0;
    int klen =
        EVP_DecodeBlock(keybuf, (const unsigned char *)rq->key.secret, (int)strlen(rq->key.secret));
    if (klen < 0)
        return NULL;
    size_t sl = strlen(rq->key.secret);
    klen -= (sl > 0 && rq->key.secret[sl - 1] == '=') + (sl > 1 && rq->key.secret[sl - 2] == '=');

    ldns_rdf *kn = ldns_dname_new_frm_str(kname), *an = ldns_dname_new_frm_str(rq->key.algorithm);
    ldns_buffer *b = ldns_buffer_new(blen + 512);
    put48(t6, (uint64_t)f->time);
    put48(other, (uint64_t)f->other_time);
    size_t olen = f->other_time ? 6 : 0;

    const uint8_t *prev = f->prev_mac ? f->prev_mac : rq->req_mac;
    size_t plen = f->prev_mac ? f->prev_mac_len : rq->req_mac_len;
    ldns_buffer_write(b, prev, plen); /* already size-prefixed */
    ldns_buffer_write(b, body, blen);
    if (!f->timers_only) {
        ldns_rdf *c = ldns_rdf_clone(kn);
        ldns_dname2canonical(c);
        ldns_rdf2buffer_wire(b, c);
        ldns_rdf_deep_free(c);
        ldns_buffer_write_u16(b, LDNS_RR_CLASS_ANY);
        ldns_buffer_write_u32(b, 0);
        c = ldns_rdf_clone(an);
        ldns_dname2canonical(c);
        ldns_rdf2buffer_wire(b, c);
        ldns_rdf_deep_free(c);
    }
    ldns_buffer_write(b, t6, 6);
    ldns_buffer_write_u16(b, rq->fudge);
    if (!f->timers_only) {
        ldns_buffer_write_u16(b, (uint16_t)f->tsig_error);
        ldns_buffer_write_u16(b, (uint16_t)olen);
        ldns_buffer_write(b, other, olen);
    }
    HMAC(md_of(rq->key.algorithm), keybuf, klen, ldns_buffer_begin(b), ldns_buffer_position(b), mac,
         &maclen);
    ldns_buffer_free(b);
    if (f->corrupt_mac)
        mac[0] ^= 1;
    if (f->empty_mac)
        maclen = 0;

    uint8_t macrdf[2 + EVP_MAX_MD_SIZE], otherrdf[8];
    macrdf[0] = (uint8_t)(maclen >> 8);
    macrdf[1] = (uint8_t)maclen;
    memcpy(macrdf + 2, mac, maclen);
    otherrdf[0] = 0;
    otherrdf[1] = (uint8_t)olen;
    memcpy(otherrdf + 2, other, olen);

    ldns_rr *t = ldns_rr_new();
    ldns_rr_set_owner(t, kn);
    ldns_rr_set_type(t, LDNS_RR_TYPE_TSIG);
    ldns_rr_set_class(t, LDNS_RR_CLASS_ANY);
    ldns_rr_set_ttl(t, 0);
    ldns_rr_push_rdf(t, an);
    ldns_rr_push_rdf(t, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_TSIGTIME, 6, t6));
    ldns_rr_push_rdf(t, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, rq->fudge));
    ldns_rr_push_rdf(t, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_INT16_DATA, 2 + maclen, macrdf));
    ldns_rr_push_rdf(t, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, orig_id));
    ldns_rr_push_rdf(t, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, (uint16_t)f->tsig_error));
    ldns_rr_push_rdf(t, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_INT16_DATA, 2 + olen, otherrdf));
    return t;
}

int kr_dns_forge_reply(const struct kr_dns_msg *rq, const struct kr_dns_forge *f, uint8_t **wire,
                       size_t *len, uint8_t *mac, size_t *mac_len)
{
    ldns_pkt *p = ldns_pkt_new();
    uint8_t *body = NULL;
    size_t blen = 0;
    int rc = KR_EINVAL;

    *wire = NULL;
    if (!p)
        return KR_ENOMEM;
    uint16_t id = (uint16_t)(rq->id + f->id_delta);
    ldns_pkt_set_id(p, id);
    ldns_pkt_set_qr(p, !f->qr_clear);
    ldns_pkt_set_aa(p, f->aa);
    ldns_pkt_set_opcode(p, (ldns_pkt_opcode)(f->opcode >= 0 ? f->opcode : rq->opcode));
    ldns_pkt_set_rcode(p, (uint8_t)f->rcode);
    if (!f->no_question) {
        ldns_rr *q = ldns_rr_new();
        ldns_rr_set_owner(q, ldns_dname_new_frm_str(rq->qname));
        ldns_rr_set_type(q, (ldns_rr_type)rq->qtype);
        ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
        ldns_rr_set_question(q, true);
        ldns_rr_list_push_rr(ldns_pkt_question(p), q);
    }
    if (push_all(ldns_pkt_answer(p), f->answer, f->n_answer) ||
        push_all(ldns_pkt_authority(p), f->auth, f->n_auth))
        goto out;
    ldns_pkt_set_qdcount(p, (uint16_t)ldns_rr_list_rr_count(ldns_pkt_question(p)));
    ldns_pkt_set_ancount(p, (uint16_t)ldns_rr_list_rr_count(ldns_pkt_answer(p)));
    ldns_pkt_set_nscount(p, (uint16_t)ldns_rr_list_rr_count(ldns_pkt_authority(p)));
    if (f->sign) {
        if (ldns_pkt2wire(&body, p, &blen) != LDNS_STATUS_OK)
            goto out;
        ldns_rr *t = tsig_rr(rq, f, body, blen, id);
        if (!t)
            goto out;
        ldns_pkt_set_tsig(p, t);
        if (mac && mac_len) {
            const ldns_rdf *m = ldns_rr_rdf(t, 3);
            memcpy(mac, ldns_rdf_data(m), ldns_rdf_size(m));
            *mac_len = ldns_rdf_size(m);
        }
    }
    rc = ldns_pkt2wire(wire, p, len) == LDNS_STATUS_OK ? 0 : KR_ENOMEM;
out:
    free(body);
    ldns_pkt_free(p);
    return rc;
}

int kr_dns_forge_sections(const uint8_t *wire, size_t len, struct kr_dns_rr **rrs, size_t counts[4],
                          int *opcode, bool *rd)
{
    ldns_pkt *p = NULL;
    size_t n = 0;
    struct kr_dns_rr rr;

    *rrs = NULL;
    if (kr_dns_msg_precheck(wire, len, NULL) != 0 || ldns_wire2pkt(&p, wire, len) != LDNS_STATUS_OK)
        return KR_EMALF;
    const ldns_rr_list *l[4] = {ldns_pkt_question(p), ldns_pkt_answer(p), ldns_pkt_authority(p),
                                ldns_pkt_additional(p)};
    for (int s = 0; s < 4; s++) {
        counts[s] = ldns_rr_list_rr_count(l[s]);
        for (size_t i = 0; i < counts[s]; i++) {
            kr_dns_rr_from_ldns(ldns_rr_list_rr(l[s], i), &rr);
            kr_dns_rr_push(rrs, &n, &rr);
        }
    }
    if (ldns_pkt_tsig(p)) {
        kr_dns_rr_from_ldns(ldns_pkt_tsig(p), &rr);
        kr_dns_rr_push(rrs, &n, &rr);
        counts[3]++;
    }
    *opcode = (int)ldns_pkt_get_opcode(p);
    *rd = ldns_pkt_rd(p);
    ldns_pkt_free(p);
    return 0;
}
