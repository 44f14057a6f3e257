/*
 * build.c - requests in wire form: queries, AXFR and RFC 2136 UPDATE, TSIG
 * signed with the key's algorithm set explicitly (ldns has no default).
 * The request's MAC is kept: every reply's MAC covers it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/ldns-glue.h"
#include "kmsrelay/err.h"

static int sign_and_wire(struct kr_dns_msg *rq, ldns_pkt *p, const struct kr_dns_key *key,
                         char *err, size_t errlen)
{
    ldns_pkt_set_random_id(p);
    rq->id = ldns_pkt_id(p);
    if (key && strcmp(key->algorithm, "hmac-sha256.") != 0 &&
        strcmp(key->algorithm, "hmac-sha512.") != 0 && strcmp(key->algorithm, "hmac-sha1.") != 0) {
        /* Checked here too: ldns leaks on its own failure path. */
        snprintf(err, errlen, "key %s: algorithm %s is not supported (use hmac-sha256)", key->name,
                 key->algorithm);
        return KR_EUNSUP;
    }
    if (key) {
        ldns_status st =
            ldns_pkt_tsig_sign(p, key->name, key->secret, rq->fudge, key->algorithm, NULL);
        ldns_rr *t = ldns_pkt_tsig(p);
        if (st != LDNS_STATUS_OK || !t || ldns_rr_rd_count(t) < 4) {
            snprintf(err, errlen, "cannot sign with key %s (%s): %s", key->name, key->algorithm,
                     ldns_get_errorstr_by_id(st));
            return KR_ECRYPTO;
        }
        const ldns_rdf *mac = ldns_rr_rdf(t, 3);
        if (ldns_rdf_size(mac) > sizeof(rq->req_mac)) {
            snprintf(err, errlen, "TSIG MAC too long");
            return KR_ECRYPTO;
        }
        memcpy(rq->req_mac, ldns_rdf_data(mac), ldns_rdf_size(mac));
        rq->req_mac_len = ldns_rdf_size(mac);
        rq->key = *key;
        rq->is_signed = true;
    }
    if (ldns_pkt2wire(&rq->wire, p, &rq->len) != LDNS_STATUS_OK || !rq->wire) {
        snprintf(err, errlen, "cannot encode the request");
        return KR_ENOMEM;
    }
    if (rq->len > 65535) {
        snprintf(err, errlen, "request of %zu bytes is too large for DNS over TCP", rq->len);
        return KR_EINVAL;
    }
    kr_dns_msg_restart(rq);
    return 0;
}

int kr_dns_msg_build_query(struct kr_dns_msg *rq, const char *name, uint16_t type, bool rd,
                           const struct kr_dns_key *key, uint16_t fudge, char *err, size_t errlen)
{
    memset(rq, 0, sizeof(*rq));
    rq->fudge = fudge ? fudge : 300;
    rq->opcode = KR_DNS_OP_QUERY;
    rq->qtype = type;
    rq->axfr = type == KR_DNS_AXFR;
    if (kr_dns_name_absolute(name, rq->qname) != 0) {
        snprintf(err, errlen, "\"%s\" is not a valid domain name", name ? name : "");
        return KR_EINVAL;
    }
    ldns_rdf *q = ldns_dname_new_frm_str(rq->qname);
    if (!q) {
        snprintf(err, errlen, "\"%s\" is not a valid domain name", rq->qname);
        return KR_EINVAL;
    }
    ldns_pkt *p =
        ldns_pkt_query_new(q, (ldns_rr_type)type, LDNS_RR_CLASS_IN, rd && !rq->axfr ? LDNS_RD : 0);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return KR_ENOMEM;
    }
    int rc = sign_and_wire(rq, p, key, err, errlen);
    ldns_pkt_free(p);
    if (rc)
        kr_dns_msg_reset(rq);
    return rc;
}

/* Adds the records of one section, with the class and TTL the section
 * needs (class 0 / ttl UINT32_MAX: as given). */
static int add_list(ldns_rr_list *l, const struct kr_dns_rr *rrs, size_t n, const char *sect,
                    ldns_rr_class cls, bool ttl0, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = "";
        char tn[16];
        ldns_rr *r = kr_dns_rr_to_ldns(&rrs[i], &why);
        if (!r) {
            snprintf(err, errlen, "update %s[%zu] (%s %s \"%.80s\"): %s", sect, i, rrs[i].owner,
                     kr_dns_type_name(rrs[i].type, tn), rrs[i].rdata, why);
            return KR_EINVAL;
        }
        if (cls)
            ldns_rr_set_class(r, cls);
        if (ttl0)
            ldns_rr_set_ttl(r, 0);
        if (!ldns_rr_list_push_rr(l, r)) {
            ldns_rr_free(r);
            snprintf(err, errlen, "out of memory");
            return KR_ENOMEM;
        }
    }
    return 0;
}

int kr_dns_msg_build_update(struct kr_dns_msg *rq, const struct kr_dns_update *u,
                            const struct kr_dns_key *key, uint16_t fudge, char *err, size_t errlen)
{
    ldns_rr_list *pr = NULL, *up = NULL;
    ldns_pkt *p = NULL;
    int rc;

    memset(rq, 0, sizeof(*rq));
    rq->fudge = fudge ? fudge : 300;
    rq->opcode = KR_DNS_OP_UPDATE;
    rq->qtype = KR_DNS_SOA;
    if (!u || kr_dns_name_absolute(u->zone, rq->qname) != 0) {
        snprintf(err, errlen, "update: \"%s\" is not a valid zone name",
                 u && u->zone ? u->zone : "");
        return KR_EINVAL;
    }
    if (!key) {
        snprintf(err, errlen, "update of %s: no TSIG key configured", rq->qname);
        return KR_EINVAL;
    }
    if (u->n_del + u->n_add + u->n_prereq == 0) {
        snprintf(err, errlen, "update of %s: nothing to change", rq->qname);
        return KR_EINVAL;
    }
    pr = ldns_rr_list_new();
    up = ldns_rr_list_new();
    if (!pr || !up) {
        snprintf(err, errlen, "out of memory");
        rc = KR_ENOMEM;
        goto out;
    }
    /* Prerequisite "RRset exists (value dependent)": class IN, TTL 0. */
    if ((rc =
             add_list(pr, u->prereq, u->n_prereq, "prereq", LDNS_RR_CLASS_IN, true, err, errlen)) ||
        (rc = add_list(up, u->del, u->n_del, "del", LDNS_RR_CLASS_NONE, true, err, errlen)) ||
        (rc = add_list(up, u->add, u->n_add, "add", LDNS_RR_CLASS_IN, false, err, errlen)))
        goto out;
    ldns_rdf *zone = ldns_dname_new_frm_str(rq->qname);
    if (!zone || !(p = ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, pr, up, NULL))) {
        snprintf(err, errlen, "cannot build the update message");
        rc = KR_ENOMEM;
        goto out;
    }
    /* ldns_update_pkt_new starts from a query with RD set; RFC 2136 wants
     * the Z/flag bits zero. */
    ldns_pkt_set_rd(p, false);
    rc = sign_and_wire(rq, p, key, err, errlen);
out:
    ldns_rr_list_deep_free(pr);
    ldns_rr_list_deep_free(up);
    ldns_pkt_free(p);
    if (rc)
        kr_dns_msg_reset(rq);
    return rc;
}

void kr_dns_msg_reset(struct kr_dns_msg *rq)
{
    free(rq->wire);
    explicit_bzero(rq, sizeof(*rq));
}

void kr_dns_msg_restart(struct kr_dns_msg *rq)
{
    memcpy(rq->chain_mac, rq->req_mac, rq->req_mac_len);
    rq->chain_mac_len = rq->req_mac_len;
    rq->soas = 0;
    rq->msgs = 0;
}
