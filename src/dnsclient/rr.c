/*
 * rr.c - kr_dns_rr: constructors, presentation text in and out, RFC 2136
 * sameness, and the conversion to and from ldns records (ldns-glue.h).
 *
 * The rdata text is the record's truth (it is what goes on the wire); the
 * typed fields are always derived from it by going through ldns once, so
 * the two cannot disagree.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dnsclient/ldns-glue.h"
#include "kmsrelay/err.h"

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* ldns prints the characters '@' and '$' of a name bare, but reads a name
 * starting with '@' as the origin and '$' as a directive: a label such as
 * "@vlmcs" in a reply would not survive a round trip through text. Escape
 * both (RFC 1035 5.1), leaving ldns's own escapes (\X, \DDD) as they are.
 * Returns a malloc'ed string like ldns_rdf2str, or NULL. */
static char *rdf_str(const ldns_rdf *f)
{
    char *s = f ? ldns_rdf2str(f) : NULL;
    if (!s || ldns_rdf_get_type(f) != LDNS_RDF_TYPE_DNAME || !strpbrk(s, "@$"))
        return s;
    size_t n = strlen(s);
    char *o = malloc(2 * n + 1);
    if (!o) {
        free(s);
        return NULL;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            o[j++] = s[i++]; /* an ldns escape: copy it and what it escapes */
            o[j++] = s[i];
            continue;
        }
        if (s[i] == '@' || s[i] == '$')
            o[j++] = '\\';
        o[j++] = s[i];
    }
    o[j] = '\0';
    free(s);
    return o;
}

/* The presentation RDATA: every field's text, space separated; a field
 * that does not fit marks the record truncated. */
static void rdata_text(const ldns_rr *in, struct kr_dns_rr *out)
{
    size_t n = 0;
    for (size_t i = 0; i < ldns_rr_rd_count(in); i++) {
        const ldns_rdf *f = ldns_rr_rdf(in, i);
        if (!f)
            continue;
        char *s = rdf_str(f);
        if (!s) {
            out->truncated = true;
            continue;
        }
        size_t l = strlen(s);
        if (n + l + 2 > sizeof(out->rdata))
            out->truncated = true;
        else {
            if (n)
                out->rdata[n++] = ' ';
            memcpy(out->rdata + n, s, l + 1);
            n += l;
        }
        free(s);
    }
}

static void target_of(const ldns_rdf *f, struct kr_dns_rr *out)
{
    char *s = rdf_str(f);
    copy_str(out->target, sizeof(out->target), s);
    free(s);
}

/* TXT: the character-strings concatenated, and how many there were. */
static void txt_of(const ldns_rr *in, struct kr_dns_rr *out)
{
    size_t t = 0;
    for (size_t i = 0; i < ldns_rr_rd_count(in); i++) {
        const ldns_rdf *f = ldns_rr_rdf(in, i);
        if (!f || ldns_rdf_size(f) < 1)
            continue;
        const uint8_t *d = ldns_rdf_data(f);
        size_t l = d[0] < ldns_rdf_size(f) ? d[0] : ldns_rdf_size(f) - 1;
        if (t + l >= sizeof(out->txt))
            l = sizeof(out->txt) - 1 - t;
        memcpy(out->txt + t, d + 1, l);
        t += l;
        if (out->txt_count < 255)
            out->txt_count++;
    }
    out->txt[t] = '\0';
}

/* The parsed view of the types kmsrelay reads (target, priority, address,
 * SOA serial, TXT text); other types keep only the RDATA text. */
static void parsed_view(const ldns_rr *in, struct kr_dns_rr *out)
{
    const ldns_rdf *f0 = ldns_rr_rdf(in, 0);
    size_t rd = ldns_rr_rd_count(in);
    switch (out->type) {
    case KR_DNS_SRV:
        if (rd == 4) {
            out->priority = ldns_rdf2native_int16(ldns_rr_rdf(in, 0));
            out->weight = ldns_rdf2native_int16(ldns_rr_rdf(in, 1));
            out->port = ldns_rdf2native_int16(ldns_rr_rdf(in, 2));
            target_of(ldns_rr_rdf(in, 3), out);
        }
        break;
    case KR_DNS_MX:
        if (rd == 2) {
            out->priority = ldns_rdf2native_int16(ldns_rr_rdf(in, 0));
            target_of(ldns_rr_rdf(in, 1), out);
        }
        break;
    case KR_DNS_CNAME:
    case KR_DNS_NS:
    case KR_DNS_PTR:
    case KR_DNS_SOA:
        if (f0 && ldns_rdf_get_type(f0) == LDNS_RDF_TYPE_DNAME)
            target_of(f0, out);
        if (out->type == KR_DNS_SOA && rd == 7) {
            out->soa_serial = ldns_rdf2native_int32(ldns_rr_rdf(in, 2));
            out->soa_minimum = ldns_rdf2native_int32(ldns_rr_rdf(in, 6));
        }
        break;
    case KR_DNS_A:
        if (f0 && ldns_rdf_size(f0) == 4) {
            out->family = AF_INET;
            memcpy(out->addr, ldns_rdf_data(f0), 4);
        }
        break;
    case KR_DNS_AAAA:
        if (f0 && ldns_rdf_size(f0) == 16) {
            out->family = AF_INET6;
            memcpy(out->addr, ldns_rdf_data(f0), 16);
        }
        break;
    case KR_DNS_TXT:
        txt_of(in, out);
        break;
    default:
        break;
    }
}

void kr_dns_rr_from_ldns(const ldns_rr *in, struct kr_dns_rr *out)
{
    memset(out, 0, sizeof(*out));
    char *s = rdf_str(ldns_rr_owner(in));
    copy_str(out->owner, sizeof(out->owner), s);
    free(s);
    out->type = (uint16_t)ldns_rr_get_type(in);
    out->rclass = (uint16_t)ldns_rr_get_class(in);
    out->ttl = ldns_rr_ttl(in);
    rdata_text(in, out);
    parsed_view(in, out);
}

ldns_rr *kr_dns_rr_to_ldns(const struct kr_dns_rr *rr, const char **why)
{
    char line[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 64], tn[16], owner[KR_DNS_NAME_MAX];
    ldns_rr *out = NULL;

    if (rr->truncated) {
        kr_fail(why, KR_ETOOBIG, "record text was truncated when read; it cannot be sent");
        return NULL;
    }
    if (kr_dns_name_absolute(rr->owner, owner) != 0) {
        kr_fail(why, KR_EINVAL, "bad owner name");
        return NULL;
    }
    snprintf(line, sizeof(line), "%s %u IN %s %s", owner, rr->ttl, kr_dns_type_name(rr->type, tn),
             rr->rdata);
    if (ldns_rr_new_frm_str(&out, line, 0, NULL, NULL) != LDNS_STATUS_OK || !out) {
        kr_fail(why, KR_EMALF, "record does not parse");
        return NULL;
    }
    if (rr->rclass && rr->rclass != LDNS_RR_CLASS_IN)
        ldns_rr_set_class(out, (ldns_rr_class)rr->rclass);
    return out;
}

/* Runs a constructed record through ldns so the view comes from the text. */
static int finish(struct kr_dns_rr *rr, const char *owner, uint32_t ttl, uint16_t type)
{
    struct kr_dns_rr tmp;
    memset(&tmp, 0, sizeof(tmp));
    if (kr_dns_name_absolute(owner, tmp.owner) != 0)
        return KR_EINVAL;
    tmp.type = type;
    tmp.rclass = LDNS_RR_CLASS_IN;
    tmp.ttl = ttl;
    memcpy(tmp.rdata, rr->rdata, sizeof(tmp.rdata));
    ldns_rr *l = kr_dns_rr_to_ldns(&tmp, NULL);
    if (!l)
        return KR_EINVAL;
    kr_dns_rr_from_ldns(l, rr);
    ldns_rr_free(l);
    return 0;
}

int kr_dns_rr_srv(struct kr_dns_rr *rr, const char *owner, uint32_t ttl, uint16_t priority,
                  uint16_t weight, uint16_t port, const char *target)
{
    char t[KR_DNS_NAME_MAX];
    memset(rr, 0, sizeof(*rr));
    if (kr_dns_name_absolute(target, t) != 0)
        return KR_EINVAL;
    snprintf(rr->rdata, sizeof(rr->rdata), "%u %u %u %s", priority, weight, port, t);
    return finish(rr, owner, ttl, KR_DNS_SRV);
}

int kr_dns_rr_txt(struct kr_dns_rr *rr, const char *owner, uint32_t ttl, const char *text)
{
    size_t n = 0;
    memset(rr, 0, sizeof(*rr));
    if (!text || strlen(text) > 255)
        return KR_EINVAL;
    rr->rdata[n++] = '"';
    for (const char *p = text; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (n + 6 >= sizeof(rr->rdata))
            return KR_EINVAL;
        if (c == '"' || c == '\\')
            n += (size_t)snprintf(rr->rdata + n, 3, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            n += (size_t)snprintf(rr->rdata + n, 5, "\\%03u", c);
        else
            rr->rdata[n++] = (char)c;
    }
    rr->rdata[n++] = '"';
    rr->rdata[n] = '\0';
    return finish(rr, owner, ttl, KR_DNS_TXT);
}

int kr_dns_rr_addr(struct kr_dns_rr *rr, const char *owner, uint32_t ttl, int family,
                   const void *addr)
{
    char a[INET6_ADDRSTRLEN];
    memset(rr, 0, sizeof(*rr));
    if ((family != AF_INET && family != AF_INET6) || !inet_ntop(family, addr, a, sizeof(a)))
        return KR_EINVAL;
    snprintf(rr->rdata, sizeof(rr->rdata), "%s", a);
    return finish(rr, owner, ttl, family == AF_INET ? KR_DNS_A : KR_DNS_AAAA);
}

int kr_dns_rr_from_text(struct kr_dns_rr *rr, const char *line, const char **why)
{
    ldns_rr *l = NULL;
    memset(rr, 0, sizeof(*rr));
    if (!line || strlen(line) >= KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX)
        return kr_fail(why, KR_EMALF, "record text missing or too long");
    if (ldns_rr_new_frm_str(&l, line, 0, NULL, NULL) != LDNS_STATUS_OK || !l)
        return kr_fail(why, KR_EMALF, "record text does not parse (owner ttl class type rdata)");
    kr_dns_rr_from_ldns(l, rr);
    ldns_rr_free(l);
    return 0;
}

const char *kr_dns_rr_format(const struct kr_dns_rr *rr, char *out, size_t cap)
{
    char tn[16];
    if (cap == 0)
        return out;
    snprintf(out, cap, "%s %u %s %s %s", rr->owner, rr->ttl,
             rr->rclass == 1 || rr->rclass == 0 ? "IN"
             : rr->rclass == 254                ? "NONE"
                                                : "ANY",
             kr_dns_type_name(rr->type, tn), rr->rdata);
    return out;
}

bool kr_dns_rr_same(const struct kr_dns_rr *a, const struct kr_dns_rr *b)
{
    if (a->type != b->type || !kr_dns_name_equal(a->owner, b->owner))
        return false;
    ldns_rr *la = kr_dns_rr_to_ldns(a, NULL), *lb = kr_dns_rr_to_ldns(b, NULL);
    bool same = la && lb && ldns_rr_compare(la, lb) == 0;
    if (!la || !lb)
        same = strcmp(a->rdata, b->rdata) == 0 && !a->truncated && !b->truncated;
    ldns_rr_free(la);
    ldns_rr_free(lb);
    return same;
}
