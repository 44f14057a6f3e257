/*
 * reply.c - judging one reply message: format, identity (ID, QR, opcode,
 * question), TSIG (MAC through ldns, then the time window ldns does not
 * check), RCODE, and the records. See message.h for the verdicts.
 *
 * Order matters: a TSIG error (BADSIG/BADKEY come unsigned, RFC 8945
 * 5.3.2) is reported as such before the MAC check that would fail anyway;
 * a BADTIME reply is signed and verified first, then reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/ldns-glue.h"
#include "kmsrelay/err.h"

static uint64_t u48(const ldns_rdf *f)
{
    const uint8_t *d = ldns_rdf_data(f);
    if (ldns_rdf_size(f) < 6)
        return 0;
    return (uint64_t)d[0] << 40 | (uint64_t)d[1] << 32 | (uint64_t)d[2] << 24 |
           (uint64_t)d[3] << 16 | (uint64_t)d[4] << 8 | d[5];
}

/* No TSIG on a reply to a signed request: only an unsigned error may pass
 * (reported as such, marked unverified). -1 to go on, else a verdict. */
static int unsigned_reply(const struct kr_dns_msg *rq, int rcode, const char *server,
                          struct kr_dns_result *res, const char *w)
{
    if (rq->axfr && rq->msgs > 0) {
        kr_dns_result_set(res, KR_DNS_E_KEY,
                          "%s: message %u from %s is not signed (every AXFR message must carry "
                          "a TSIG; not trusted)",
                          w, rq->msgs + 1, server);
        return KR_DNS_REPLY_DONE;
    }
    if (rcode == LDNS_RCODE_NOERROR) {
        kr_dns_result_set(res, KR_DNS_E_KEY,
                          "%s: the reply from %s is not signed although the request was (a "
                          "server without this key, or a forged reply; not trusted)",
                          w, server);
        return KR_DNS_REPLY_DONE;
    }
    return -1;
}

/* Reads the TSIG's error and time into res; false when it is signed under
 * another key name or algorithm than ours (except on BADKEY). */
static bool read_tsig(const struct kr_dns_msg *rq, const ldns_rr *t, struct kr_dns_result *res)
{
    char *owner = ldns_rdf2str(ldns_rr_owner(t));
    char *alg = ldns_rdf2str(ldns_rr_rdf(t, 0));
    bool same_key = owner && alg && kr_dns_name_equal(owner, rq->key.name) &&
                    kr_dns_name_equal(alg, rq->key.algorithm);
    res->tsig_error = ldns_rdf2native_int16(ldns_rr_rdf(t, 5));
    res->server_time = (int64_t)u48(ldns_rr_rdf(t, 1));
    const ldns_rdf *other = ldns_rr_rdf(t, 6);
    /* BADTIME: Other Data holds the server's clock (6 bytes after the length). */
    if (res->tsig_error == KR_DNS_TSIG_BADTIME && other && ldns_rdf_size(other) == 8) {
        const uint8_t *d = ldns_rdf_data(other) + 2;
        res->server_time =
            (int64_t)((uint64_t)d[0] << 40 | (uint64_t)d[1] << 32 | (uint64_t)d[2] << 24 |
                      (uint64_t)d[3] << 16 | (uint64_t)d[4] << 8 | d[5]);
    }
    free(owner);
    free(alg);
    /* BADKEY names a key the server does not know, so its TSIG may carry
     * other names (Samba: an AD server answering an HMAC key). */
    return same_key || res->tsig_error == KR_DNS_TSIG_BADKEY;
}

/* ldns verifies the MAC (over the raw wire, covering the previous MAC). It
 * detaches the TSIG and changes the ID while it works and does not always
 * put them back: restore both ourselves. On success an AXFR remembers the
 * MAC, which the next message covers. */
static bool verify_mac(struct kr_dns_msg *rq, ldns_pkt *p, ldns_rr *t, const uint8_t *wire,
                       size_t len)
{
    ldns_rdf *prev =
        ldns_rdf_new_frm_data(LDNS_RDF_TYPE_INT16_DATA, rq->chain_mac_len, rq->chain_mac);
    uint16_t id = ldns_pkt_id(p);
    bool ok = prev && ldns_pkt_tsig_verify_next(p, wire, len, rq->key.name, rq->key.secret, prev,
                                                rq->axfr && rq->msgs > 0);
    if (ldns_pkt_tsig(p) != t)
        ldns_pkt_set_tsig(p, t);
    ldns_pkt_set_id(p, id);
    ldns_rdf_deep_free(prev);
    const ldns_rdf *mac = ldns_rr_rdf(t, 3);
    if (ok && rq->axfr && ldns_rdf_size(mac) <= sizeof(rq->chain_mac)) {
        memcpy(rq->chain_mac, ldns_rdf_data(mac), ldns_rdf_size(mac));
        rq->chain_mac_len = ldns_rdf_size(mac);
    }
    return ok;
}

/* After a verified MAC: the TSIG error field, then the time window ldns
 * does not check. -1 to go on with the RCODE, else a verdict. */
static int after_mac(const struct kr_dns_msg *rq, const ldns_rr *t, int rcode, int64_t now,
                     const char *server, struct kr_dns_result *res, const char *w)
{
    if (res->tsig_error == KR_DNS_TSIG_BADTIME) {
        res->rcode = rcode;
        res->status = KR_DNS_E_TIME;
        kr_dns_explain(res, rq, server, now);
        return KR_DNS_REPLY_DONE;
    }
    if (res->tsig_error != 0) {
        kr_dns_result_set(res, KR_DNS_E_KEY, "%s: TSIG error %s (%d) from %s", w,
                          kr_dns_rcode_name(res->tsig_error), res->tsig_error, server);
        return KR_DNS_REPLY_DONE;
    }
    int64_t signed_at = (int64_t)u48(ldns_rr_rdf(t, 1)), skew = signed_at - now;
    if (skew > rq->fudge || -skew > rq->fudge) {
        kr_dns_result_set(res, KR_DNS_E_TIME,
                          "%s: the reply from %s was signed at unix time %lld, %+lld s from our "
                          "clock, outside the fudge of %u s (clock skew: fix the time on one "
                          "side, e.g. NTP)",
                          w, server, (long long)signed_at, (long long)skew, rq->fudge);
        return KR_DNS_REPLY_DONE;
    }
    res->verified = true;
    return -1;
}

/* TSIG stage. Returns -1 to go on with the RCODE, else a verdict. */
static int check_tsig(struct kr_dns_msg *rq, ldns_pkt *p, const uint8_t *wire, size_t len,
                      int64_t now, const char *server, struct kr_dns_result *res, const char *w)
{
    ldns_rr *t = ldns_pkt_tsig(p);
    int rcode = ldns_pkt_get_rcode(p);

    if (!t)
        return unsigned_reply(rq, rcode, server, res, w);
    if (ldns_rr_rd_count(t) != 7 || ldns_rdf_get_type(ldns_rr_rdf(t, 0)) != LDNS_RDF_TYPE_DNAME ||
        ldns_rdf_size(ldns_rr_rdf(t, 1)) != 6 || ldns_rdf_size(ldns_rr_rdf(t, 5)) != 2) {
        kr_dns_result_set(res, KR_DNS_E_BADREPLY, "%s: malformed TSIG record in the reply from %s",
                          w, server);
        return KR_DNS_REPLY_NEXT;
    }
    if (!read_tsig(rq, t, res)) {
        kr_dns_result_set(res, KR_DNS_E_KEY,
                          "%s: the reply from %s is signed with another key or algorithm than "
                          "%s (%s); not trusted",
                          w, server, rq->key.name, rq->key.algorithm);
        return KR_DNS_REPLY_DONE;
    }
    if (res->tsig_error == KR_DNS_TSIG_BADSIG || res->tsig_error == KR_DNS_TSIG_BADKEY) {
        res->rcode = rcode;
        res->status = KR_DNS_E_KEY;
        kr_dns_explain(res, rq, server, now);
        return KR_DNS_REPLY_DONE;
    }
    if (!verify_mac(rq, p, t, wire, len)) {
        kr_dns_result_set(res, KR_DNS_E_KEY,
                          "%s: the reply from %s fails TSIG verification with key %s (key "
                          "problem: the secrets differ, or the reply was forged)",
                          w, server, rq->key.name);
        return KR_DNS_REPLY_DONE;
    }
    return after_mac(rq, t, rcode, now, server, res, w);
}

/* ldns accepts a record whose RDATA ends before its type's fields do (an
 * SRV without a target): such a record could be neither trusted nor sent
 * back, so the reply is malformed. */
static bool records_complete(const ldns_pkt *p, const char **why)
{
    const ldns_rr_list *l[3] = {ldns_pkt_answer(p), ldns_pkt_authority(p), ldns_pkt_additional(p)};
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < ldns_rr_list_rr_count(l[s]); i++) {
            const ldns_rr *r = ldns_rr_list_rr(l[s], i);
            const ldns_rr_descriptor *d = ldns_rr_descript((uint16_t)ldns_rr_get_type(r));
            if (ldns_rr_get_class(r) == LDNS_RR_CLASS_IN && d &&
                ldns_rr_rd_count(r) < ldns_rr_descriptor_minimum(d)) {
                kr_fail(why, KR_EMALF, "a record's data is shorter than its type needs");
                return false;
            }
        }
    return true;
}

static bool question_ok(const struct kr_dns_msg *rq, const ldns_pkt *p, const char **why)
{
    const ldns_rr_list *q = ldns_pkt_question(p);
    size_t n = ldns_rr_list_rr_count(q);
    if (n == 0) {
        /* Allowed for AXFR continuations, UPDATE and error replies. */
        if (rq->opcode == KR_DNS_OP_QUERY && !rq->axfr &&
            ldns_pkt_get_rcode(p) == LDNS_RCODE_NOERROR)
            return kr_fail(why, KR_EMALF, "the reply has no question section") == 0;
        return true;
    }
    if (n > 1)
        return kr_fail(why, KR_EMALF, "the reply has more than one question") == 0;
    const ldns_rr *r = ldns_rr_list_rr(q, 0);
    char *name = ldns_rdf2str(ldns_rr_owner(r));
    bool ok = name && kr_dns_name_equal(name, rq->qname) && ldns_rr_get_type(r) == rq->qtype &&
              ldns_rr_get_class(r) == LDNS_RR_CLASS_IN;
    free(name);
    if (!ok)
        kr_fail(why, KR_EMALF, "the reply's question differs from ours");
    return ok;
}

static int append(struct kr_dns_rr **arr, size_t *n, const ldns_rr_list *l)
{
    struct kr_dns_rr rr;
    for (size_t i = 0; i < ldns_rr_list_rr_count(l); i++) {
        kr_dns_rr_from_ldns(ldns_rr_list_rr(l, i), &rr);
        if (kr_dns_rr_push(arr, n, &rr) != 0)
            return KR_ENOMEM;
    }
    return 0;
}

/* AXFR: the stream starts with the zone's SOA and ends with it again. */
static int axfr_records(struct kr_dns_msg *rq, const ldns_pkt *p, struct kr_dns_result *res,
                        const char *w, const char *server)
{
    const ldns_rr_list *l = ldns_pkt_answer(p);
    struct kr_dns_rr rr;
    for (size_t i = 0; i < ldns_rr_list_rr_count(l); i++) {
        const ldns_rr *r = ldns_rr_list_rr(l, i);
        if (rq->soas >= 2) {
            kr_dns_result_set(res, KR_DNS_E_BADREPLY, "%s: records after the closing SOA from %s",
                              w, server);
            return KR_DNS_REPLY_NEXT;
        }
        if (ldns_rr_get_type(r) == LDNS_RR_TYPE_SOA) {
            if (++rq->soas == 2)
                continue;
        } else if (rq->soas == 0) {
            kr_dns_result_set(res, KR_DNS_E_BADREPLY,
                              "%s: the transfer from %s does not start with SOA", w, server);
            return KR_DNS_REPLY_NEXT;
        }
        if (res->n_rrs >= (rq->max_rrs ? rq->max_rrs : 200000)) {
            kr_dns_result_set(res, KR_DNS_E_LOCAL, "%s: more than %zu records; transfer stopped", w,
                              res->n_rrs);
            return KR_DNS_REPLY_DONE;
        }
        kr_dns_rr_from_ldns(r, &rr);
        if (kr_dns_rr_push(&res->rrs, &res->n_rrs, &rr) != 0) {
            kr_dns_result_set(res, KR_DNS_E_LOCAL, "%s: out of memory", w);
            return KR_DNS_REPLY_DONE;
        }
    }
    if (rq->soas >= 2) {
        kr_dns_result_set(res, KR_DNS_OK, "%s from %s: %zu records in %u messages", w, server,
                          res->n_rrs, rq->msgs);
        return KR_DNS_REPLY_DONE;
    }
    return KR_DNS_REPLY_MORE;
}

/* The RCODE of an authenticated (or acceptably unsigned) reply. */
static int by_rcode(struct kr_dns_msg *rq, ldns_pkt *p, int64_t now, const char *server,
                    struct kr_dns_result *res, const char *w)
{
    int rcode = res->rcode;
    bool query = rq->opcode == KR_DNS_OP_QUERY;

    if (rcode == LDNS_RCODE_NOERROR || (query && !rq->axfr && rcode == LDNS_RCODE_NXDOMAIN)) {
        if (rq->axfr)
            return axfr_records(rq, p, res, w, server);
        if (append(&res->rrs, &res->n_rrs, ldns_pkt_answer(p)) ||
            append(&res->auth, &res->n_auth, ldns_pkt_authority(p))) {
            kr_dns_result_set(res, KR_DNS_E_LOCAL, "%s: out of memory", w);
            return KR_DNS_REPLY_DONE;
        }
        kr_dns_result_set(res, KR_DNS_OK, "%s: %s from %s (%zu records)", w,
                          kr_dns_rcode_name(rcode), server, res->n_rrs);
        return KR_DNS_REPLY_DONE;
    }
    switch (rcode) {
    case LDNS_RCODE_SERVFAIL:
    case LDNS_RCODE_NOTIMPL:
        res->status = KR_DNS_E_SERVFAIL;
        break;
    case LDNS_RCODE_REFUSED:
        res->status = KR_DNS_E_REFUSED;
        break;
    case LDNS_RCODE_NOTAUTH:
    case LDNS_RCODE_NOTZONE:
        res->status = KR_DNS_E_ZONE;
        break;
    case LDNS_RCODE_NXDOMAIN:
    case LDNS_RCODE_YXDOMAIN:
    case LDNS_RCODE_YXRRSET:
    case LDNS_RCODE_NXRRSET:
        res->status = query ? KR_DNS_E_RCODE : KR_DNS_E_PREREQ;
        break;
    case LDNS_RCODE_FORMERR:
        res->status = KR_DNS_E_FORMERR;
        break;
    default:
        res->status = KR_DNS_E_RCODE;
        break;
    }
    kr_dns_explain(res, rq, server, now);
    /* RFC 2136 4.5: SERVFAIL/NOTIMP mean "try another server". NOTAUTH:
     * another listed server may be authoritative. A query's REFUSED may be
     * a resolver's ACL: another may answer. Everything else is final. */
    if (res->status == KR_DNS_E_SERVFAIL || rcode == LDNS_RCODE_NOTAUTH ||
        (query && rcode == LDNS_RCODE_REFUSED))
        return KR_DNS_REPLY_NEXT;
    return KR_DNS_REPLY_DONE;
}

enum kr_dns_verdict kr_dns_msg_judge(struct kr_dns_msg *rq, const uint8_t *wire, size_t len,
                                     int64_t now, const char *server, struct kr_dns_result *res)
{
    const char *why = "";
    char w[KR_DNS_NAME_MAX + 32];
    ldns_pkt *p = NULL;
    int v;

    kr_dns_msg_describe(rq, w, sizeof(w));
    snprintf(res->server, sizeof(res->server), "%s", server);
    res->rcode = -1;
    res->tsig_error = 0;
    res->verified = false;
    if (kr_dns_msg_precheck(wire, len, &why) != 0 ||
        ldns_wire2pkt(&p, wire, len) != LDNS_STATUS_OK) {
        kr_dns_result_set(res, KR_DNS_E_BADREPLY, "%s: malformed reply from %s: %s", w, server,
                          p ? "ldns could not parse it" : why);
        ldns_pkt_free(p);
        return KR_DNS_REPLY_NEXT;
    }
    if (ldns_pkt_id(p) != rq->id || !ldns_pkt_qr(p) || (int)ldns_pkt_get_opcode(p) != rq->opcode ||
        !question_ok(rq, p, &why) || !records_complete(p, &why)) {
        if (ldns_pkt_id(p) != rq->id)
            why = "the reply's ID differs from the request's";
        else if (!ldns_pkt_qr(p))
            why = "the message is not a reply (QR=0)";
        else if ((int)ldns_pkt_get_opcode(p) != rq->opcode)
            why = "the reply's opcode differs from the request's";
        kr_dns_result_set(res, KR_DNS_E_BADREPLY, "%s: %s reply from %s: %s", w,
                          strstr(why, "record") ? "malformed" : "mismatched", server, why);
        ldns_pkt_free(p);
        return KR_DNS_REPLY_NEXT;
    }
    res->aa = ldns_pkt_aa(p);
    res->rcode = ldns_pkt_get_rcode(p);
    if (rq->is_signed && (v = check_tsig(rq, p, wire, len, now, server, res, w)) >= 0) {
        ldns_pkt_free(p);
        return (enum kr_dns_verdict)v;
    }
    res->messages = ++rq->msgs;
    v = by_rcode(rq, p, now, server, res, w);
    if (rq->is_signed && !res->verified && res->status != KR_DNS_OK) {
        size_t n = strlen(res->message);
        snprintf(res->message + n, sizeof(res->message) - n, " [unsigned reply]");
    }
    ldns_pkt_free(p);
    return (enum kr_dns_verdict)v;
}
