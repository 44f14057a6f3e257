/*
 * rrset.c - building a struct kr_audit_rrset from what servers returned:
 * names normalised, SRV records merged over servers, owner markers parsed.
 * Pure data handling; collect.c feeds it from the DNS.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "kmsrelay/audit.h"
#include "kmsrelay/dns.h"
#include "kmsrelay/err.h"

static const char *const class_names[KR_AUDIT_NCLASS] = {
    "OURS_OK",    "OURS_ORPHAN", "PEER_STALE",    "AUTHORIZED_OK",
    "STALE_DEAD", "ROGUE",       "MISCONFIGURED", "UNKNOWN"};

const char *kr_audit_class_name(int cls)
{
    return cls >= 0 && cls < KR_AUDIT_NCLASS ? class_names[cls] : "UNKNOWN";
}

char *kr_audit_norm_name(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return out;
    for (; in[n] && n + 2 < cap; n++)
        out[n] = (char)tolower((unsigned char)in[n]);
    if (n > 0 && out[n - 1] != '.')
        out[n++] = '.';
    out[n] = '\0';
    return out;
}

static int same_rec(const struct kr_audit_rec *r, const struct kr_audit_srv_in *s,
                    const char *target)
{
    return r->prio == s->prio && r->weight == s->weight && r->port == s->port &&
           strcmp(r->target, target) == 0;
}

int kr_audit_add_view(struct kr_audit_rrset *set, const char *server, int ok, const char *error,
                      const struct kr_audit_srv_in *srv, size_t n)
{
    if (set->n_views >= KR_AUDIT_MAX_SERVERS)
        return KR_ENOSPC;
    unsigned v = set->n_views++;
    struct kr_audit_view *w = &set->views[v];
    memset(w, 0, sizeof(*w));
    snprintf(w->server, sizeof(w->server), "%s", server);
    w->ok = ok;
    if (!ok) {
        snprintf(w->error, sizeof(w->error), "%s", error ? error : "no answer");
        return (int)v;
    }
    w->n_srv = (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        char t[KR_AUDIT_NAME_MAX];
        kr_audit_norm_name(srv[i].target, t, sizeof(t));
        unsigned j = 0;
        while (j < set->n_rr && !same_rec(&set->rr[j], &srv[i], t))
            j++;
        if (j == set->n_rr) {
            if (set->n_rr >= KR_AUDIT_MAX_RR) {
                set->truncated = 1;
                continue;
            }
            struct kr_audit_rec *r = &set->rr[set->n_rr++];
            memset(r, 0, sizeof(*r));
            r->prio = srv[i].prio;
            r->weight = srv[i].weight;
            r->port = srv[i].port;
            snprintf(r->target, sizeof(r->target), "%s", t);
        }
        set->rr[j].seen |= 1u << v;
        set->rr[j].ttl[v] = srv[i].ttl;
    }
    return (int)v;
}

/* The format belongs to the publisher: dns/marker.c parses it for both. */
int kr_audit_marker_parse(const char *txt, uint32_t ttl, struct kr_audit_marker *out,
                          const char **why)
{
    struct kr_dns_marker m;
    memset(out, 0, sizeof(*out));
    int rc = kr_dns_marker_parse(txt, &m, why);
    if (rc != 0)
        return rc;
    snprintf(out->id, sizeof(out->id), "%s", m.owner_id);
    kr_audit_norm_name(m.target, out->target, sizeof(out->target));
    out->port = m.port;
    out->prio = m.priority;
    out->weight = m.weight;
    out->ttl = ttl;
    snprintf(out->text, sizeof(out->text), "%s", txt);
    return 0;
}

int kr_audit_add_marker(struct kr_audit_rrset *set, const char *txt, uint32_t ttl)
{
    struct kr_audit_marker m;
    if (kr_audit_marker_parse(txt, ttl, &m, NULL) != 0)
        return 0;
    for (unsigned i = 0; i < set->n_markers; i++)
        if (strcmp(set->markers[i].text, m.text) == 0)
            return 0;
    if (set->n_markers >= KR_AUDIT_MAX_RR) {
        set->truncated = 1;
        return KR_ENOSPC;
    }
    set->markers[set->n_markers++] = m;
    return 0;
}
