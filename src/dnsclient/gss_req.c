/*
 * gss_req.c - GSS-TSIG signed UPDATE and query on a session (see gss.h).
 *
 * The request is built by build.c exactly as for an HMAC key (the TSIG it
 * adds with a throw-away key is stripped again: build.c stays untouched
 * while src/dns is being split), signed with gss_get_mic, sent over TCP,
 * and the reply's GSS-TSIG verified before reply.c judges it as an
 * unsigned reply would be (RCODE, records, operator text).
 *
 * Samba quirks (dns.md 2.10a): its MAC form is accepted and logged at
 * debug level once per session; its signature on error replies verifies in
 * neither form, so an error RCODE with a bad signature is reported as an
 * unverified error rather than a key problem; SERVFAIL to an authenticated
 * update means the account has no rights on the node (Windows: REFUSED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsclient/message.h"
#include "dnsclient/gss-internal.h"
#include "dnsclient/gss_tsig.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

/* A throw-away HMAC key for build.c; its TSIG never leaves this file. */
static const struct kr_dns_key scratch_key = {"kmsrelay-unsigned.", "hmac-sha256.",
                                              "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};

/* rq's wire without its TSIG, then GSS-signed into *out. */
static int sign(struct kr_gss_sess *s, struct kr_dns_msg *rq, uint8_t **out, size_t *out_len,
                uint8_t *mac, size_t *mac_len, char *err, size_t errlen)
{
    struct kr_gsst_tsig t;
    uint8_t *body = NULL;
    size_t bl = 0;
    const char *why = "";
    const uint8_t *msg = rq->wire;
    size_t ml = rq->len;
    int rc = kr_gsst_split(rq->wire, rq->len, &t, &body, &bl, &why);
    if (rc < 0) {
        snprintf(err, errlen, "cannot re-sign the request (%s)", why);
        return rc;
    }
    if (rc == 1)
        msg = body, ml = bl;
    rc = kr_gsst_sign(msg, ml, s->key_name, kr_wall_s() + s->clock_offset, rq->fudge, kr_gssi_mic,
                      s, out, out_len, mac, mac_len, err, errlen);
    free(body);
    return rc;
}

/* Judges the reply: GSS-TSIG first, then reply.c on the unsigned body. */
static void judge(struct kr_gss_sess *s, struct kr_dns_msg *rq, const uint8_t *rep, size_t rl,
                  const uint8_t *mac, size_t mac_len, struct kr_dns_result *res)
{
    char err[300], server[KR_ADDRSTRLEN];
    struct kr_gsst_tsig t;
    uint8_t *body = NULL;
    size_t bl = 0;
    int64_t now = kr_wall_s();
    kr_addr_format((const struct sockaddr *)&s->addr.ss, server);
    int vr = kr_gsst_verify(rep, rl, s->key_name, mac, mac_len, now, kr_gssi_verify, s, &t, &body,
                            &bl, err, sizeof(err));
    if (vr == 0 && t.samba_form && !s->samba_logged) {
        s->samba_logged = true;
        kr_log(KR_LOG_DEBUG,
               "event=gss_tsig_samba_form server=%s note=\"reply MAC without the request-MAC "
               "length (Samba's form), accepted\"",
               s->server_name);
    }
    if (vr != 0 && vr != KR_ETIMEDOUT && vr != KR_EMALF) {
        const char *why = "";
        kr_gsst_split(rep, rl, &t, &body, &bl, &why); /* the unverified body */
    }
    const uint8_t *msg = body ? body : rep;
    size_t ml = body ? bl : rl;
    rq->is_signed = false;
    kr_dns_msg_judge(rq, msg, ml, now, server, res);
    res->tsig_error = t.error;
    res->server_time = t.time;
    res->verified = vr == 0;
    free(body);
    if (t.error == KR_DNS_TSIG_BADTIME) {
        kr_dns_result_set(
            res, KR_DNS_E_TIME,
            "GSS-TSIG BADTIME from %s: the server's clock and ours differ by more than "
            "the fudge (clock skew): synchronise this host's clock (NTP)",
            s->server_name);
    } else if (t.error == KR_DNS_TSIG_BADSIG || t.error == KR_DNS_TSIG_BADKEY) {
        kr_dns_result_set(res, KR_DNS_E_KEY,
                          "GSS-TSIG %s from %s: the server no longer knows our security context (a "
                          "new one is negotiated)",
                          kr_dns_rcode_name(t.error), s->server_name);
    } else if (vr == KR_ETIMEDOUT) {
        kr_dns_result_set(res, KR_DNS_E_TIME, "reply from %s: %s", s->server_name, err);
    } else if (vr != 0 && res->rcode == 0) {
        kr_dns_result_set(res, KR_DNS_E_KEY, "reply from %s not trusted: %s", s->server_name, err);
    } else if (rq->opcode == KR_DNS_OP_UPDATE &&
               (res->status == KR_DNS_E_SERVFAIL || res->status == KR_DNS_E_REFUSED)) {
        kr_dns_result_set(res, KR_DNS_E_REFUSED,
                          "update of %s refused by %s (%s) for %s: permission denied on the node "
                          "(another account owns it): grant %s (or a group it is in) Full Control "
                          "on the _VLMCS node of the zone",
                          rq->qname, s->server_name, kr_dns_rcode_name(res->rcode), s->principal,
                          s->principal);
    }
}

/* One signed exchange of a built request, on the session's context: a
 * new one first when it is about to expire, and once more after the
 * server said it no longer knows ours (BADKEY/BADSIG). */
static int run(struct kr_gss_sess *s, struct kr_dns_msg *rq, struct kr_dns_result **out)
{
    char err[400];
    struct kr_dns_result *res = kr_dns_result_new();
    if (!res)
        return KR_ENOMEM;
    kr_addr_format((const struct sockaddr *)&s->addr.ss, res->server);
    for (int attempt = 0; attempt < 2; attempt++) {
        uint8_t *w = NULL, *rep = NULL, mac[KR_GSST_MAC_MAX];
        size_t wl, rl, ml = sizeof(mac);
        if (attempt == 0 && kr_gssi_ensure(s, err, sizeof(err)) != 0) {
            kr_dns_result_set(res, KR_DNS_E_KEY, "%s", err);
            break;
        }
        int rc = sign(s, rq, &w, &wl, mac, &ml, err, sizeof(err));
        if (!rc)
            rc = kr_gssi_exchange(&s->addr, s->timeout_ms, w, wl, &rep, &rl, err, sizeof(err));
        free(w);
        if (rc) {
            kr_dns_result_set(
                res, rc == KR_ETIMEDOUT || rc == KR_EIO ? KR_DNS_E_NET : KR_DNS_E_LOCAL, "%s", err);
            break;
        }
        kr_dns_result_clear_rrs(res);
        judge(s, rq, rep, rl, mac, ml, res);
        free(rep);
        kr_log(KR_LOG_DEBUG,
               "event=gss_signed_exchange server=%s key=%s opcode=%d rcode=%s tsig_error=%u "
               "verified=%d context_left_s=%lld",
               s->server_name, s->key_name, rq->opcode, kr_dns_rcode_name(res->rcode),
               res->tsig_error, res->verified, (long long)kr_gssi_left_s(s));
        bool stale = res->tsig_error == KR_DNS_TSIG_BADSIG || res->tsig_error == KR_DNS_TSIG_BADKEY;
        if (!stale || attempt == 1)
            break;
        /* The server lost our context (restart, expiry): negotiate again. */
        if (kr_gss_reopen(s, "stale", err, sizeof(err)) != 0) {
            kr_dns_result_set(res, KR_DNS_E_KEY, "%s", err);
            break;
        }
    }
    *out = res;
    return 0;
}

/* Sends a message just built (build_rc from kr_dns_msg_build_*): a build
 * error is a local result, not a failure of the call. */
static int send_built(struct kr_gss_sess *s, int build_rc, struct kr_dns_msg *rq, const char *err,
                      struct kr_dns_result **out)
{
    *out = NULL;
    if (build_rc) {
        struct kr_dns_result *res = kr_dns_result_new();
        if (!res)
            return KR_ENOMEM;
        kr_dns_result_set(res, KR_DNS_E_LOCAL, "%s", err);
        *out = res;
        return 0;
    }
    int rc = run(s, rq, out);
    kr_dns_msg_reset(rq);
    return rc;
}

int kr_gss_update(struct kr_gss_sess *s, const struct kr_dns_update *u, struct kr_dns_result **out)
{
    struct kr_dns_msg rq;
    char err[400];
    int rc = kr_dns_msg_build_update(&rq, u, &scratch_key, 300, err, sizeof(err));
    return send_built(s, rc, &rq, err, out);
}

int kr_gss_query(struct kr_gss_sess *s, const char *name, uint16_t type, struct kr_dns_result **out)
{
    struct kr_dns_msg rq;
    char err[400];
    int rc = kr_dns_msg_build_query(&rq, name, type, false, NULL, 300, err, sizeof(err));
    return send_built(s, rc, &rq, err, out);
}
