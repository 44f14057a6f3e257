/*
 * explain.c - the operator's line for each outcome: what happened, who
 * said it, and what to do (issue 4: BADSIG/BADKEY = key problem, BADTIME =
 * clock skew, REFUSED = policy, NOTZONE/NOTAUTH = wrong zone or server,
 * SERVFAIL/timeout = retry the next server). Key names only, never key
 * material.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dnsclient/message.h"

void kr_dns_msg_describe(const struct kr_dns_msg *rq, char *out, size_t cap)
{
    char tn[16];
    if (rq->opcode == KR_DNS_OP_UPDATE)
        snprintf(out, cap, "update of %s", rq->qname);
    else if (rq->axfr)
        snprintf(out, cap, "AXFR of %s", rq->qname);
    else
        snprintf(out, cap, "query %s %s", kr_dns_type_name(rq->qtype, tn), rq->qname);
}

static void iso(int64_t t, char *out, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, cap, "%lld", (long long)t);
}

void kr_dns_explain(struct kr_dns_result *res, const struct kr_dns_msg *rq, const char *server,
                    int64_t now)
{
    char w[KR_DNS_NAME_MAX + 32], t[40];
    const char *rc = kr_dns_rcode_name(res->rcode), *key = rq->is_signed ? rq->key.name : "(none)";

    kr_dns_msg_describe(rq, w, sizeof(w));
    switch (res->status) {
    case KR_DNS_E_KEY:
        if (res->tsig_error == KR_DNS_TSIG_BADSIG)
            kr_dns_result_set(
                res, res->status,
                "TSIG BADSIG from %s for %s: the server rejected the signature of key %s "
                "(key problem: the secret differs from the server's copy; check the key "
                "file on both sides)",
                server, w, key);
        else if (res->tsig_error == KR_DNS_TSIG_BADKEY)
            kr_dns_result_set(res, res->status,
                              "TSIG BADKEY from %s for %s: the server does not know key %s with "
                              "algorithm %s (key problem: check the key name and algorithm on both "
                              "sides; Knot also answers BADKEY when its ACL denies the update; an "
                              "Active Directory DNS server (Windows, Samba) accepts only GSS-TSIG: "
                              "give that zone gss = { keytab; principal; } instead of a key)",
                              server, w, key, rq->key.algorithm);
        else
            kr_dns_result_set(res, res->status, "TSIG error %s from %s for %s with key %s",
                              kr_dns_rcode_name(res->tsig_error), server, w, key);
        break;
    case KR_DNS_E_TIME:
        iso(res->server_time, t, sizeof(t));
        kr_dns_result_set(
            res, res->status,
            "TSIG BADTIME from %s for %s: clock skew: the server's clock says %s, %+lld s "
            "from ours, more than the fudge of %u s (fix the time on one side, e.g. NTP)",
            server, w, t, (long long)(res->server_time - now), rq->fudge);
        break;
    case KR_DNS_E_REFUSED:
        kr_dns_result_set(res, res->status,
                          "REFUSED by %s for %s: the server's policy does not allow it (check "
                          "update-policy / allow-update / allow-transfer for key %s)",
                          server, w, key);
        break;
    case KR_DNS_E_ZONE:
        if (res->rcode == 10)
            kr_dns_result_set(
                res, res->status,
                "NOTZONE from %s for %s: a record is outside zone %s (wrong zone in the "
                "configuration)",
                server, w, rq->qname);
        else
            kr_dns_result_set(
                res, res->status,
                "NOTAUTH from %s for %s: the server is not authoritative for %s (wrong "
                "zone or wrong server)",
                server, w, rq->qname);
        break;
    case KR_DNS_E_PREREQ:
        kr_dns_result_set(
            res, res->status,
            "%s from %s for %s: a prerequisite failed: the RRset changed since it was "
            "read (re-read and retry)",
            rc, server, w);
        break;
    case KR_DNS_E_FORMERR:
        kr_dns_result_set(res, res->status,
                          "FORMERR from %s for %s: the server could not parse the "
                          "request",
                          server, w);
        break;
    case KR_DNS_E_SERVFAIL:
        kr_dns_result_set(
            res, res->status, "%s from %s for %s: %s (retry on the next server, then later)", rc,
            server, w,
            res->rcode == 4 ? "not implemented there (a secondary that does not forward "
                              "updates?)"
                            : "server failure");
        break;
    case KR_DNS_E_RCODE:
        kr_dns_result_set(res, res->status, "%s from %s for %s", rc, server, w);
        break;
    default:
        break;
    }
}
