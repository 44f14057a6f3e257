/*
 * names.c - the DNS client's vocabulary: type, RCODE and status names, and
 * presentation names (absolute form, case-insensitive comparison).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dnsclient/message.h"
#include "kmsrelay/err.h"

static const struct {
    uint16_t type;
    const char *name;
} types[] = {
    {KR_DNS_A, "A"},     {KR_DNS_NS, "NS"},     {KR_DNS_CNAME, "CNAME"}, {KR_DNS_SOA, "SOA"},
    {KR_DNS_PTR, "PTR"}, {KR_DNS_MX, "MX"},     {KR_DNS_TXT, "TXT"},     {KR_DNS_AAAA, "AAAA"},
    {KR_DNS_SRV, "SRV"}, {41, "OPT"},           {46, "RRSIG"},           {48, "DNSKEY"},
    {250, "TSIG"},       {KR_DNS_AXFR, "AXFR"}, {KR_DNS_ANY, "ANY"},
};

const char *kr_dns_type_name(uint16_t type, char buf[16])
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (types[i].type == type) {
            snprintf(buf, 16, "%s", types[i].name);
            return buf;
        }
    snprintf(buf, 16, "TYPE%u", type);
    return buf;
}

int kr_dns_type_parse(const char *text)
{
    if (!text)
        return -1;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcasecmp(types[i].name, text) == 0)
            return types[i].type;
    if (strncasecmp(text, "TYPE", 4) == 0 && isdigit((unsigned char)text[4])) {
        char *end;
        unsigned long v = strtoul(text + 4, &end, 10);
        if (*end == '\0' && v <= 65535)
            return (int)v;
    }
    return -1;
}

static const char *const rcodes[] = {
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",  "RCODE11",  "RCODE12", "RCODE13", "RCODE14",  "RCODE15",
    "BADSIG",  "BADKEY",  "BADTIME",  "BADMODE",  "BADNAME", "BADALG",  "BADTRUNC", "BADCOOKIE",
};

const char *kr_dns_rcode_name(int rcode)
{
    if (rcode >= 0 && rcode < (int)(sizeof(rcodes) / sizeof(rcodes[0])))
        return rcodes[rcode];
    return "RCODE?";
}

static const char *const statuses[] = {
    "ok",      "key",      "clock",   "refused",   "zone",  "prereq",
    "formerr", "servfail", "network", "bad_reply", "rcode", "local",
};

const char *kr_dns_status_name(int status)
{
    if (status >= 0 && status < (int)(sizeof(statuses) / sizeof(statuses[0])))
        return statuses[status];
    return "?";
}

bool kr_dns_status_transient(int status)
{
    return status == KR_DNS_E_SERVFAIL || status == KR_DNS_E_NET || status == KR_DNS_E_BADREPLY;
}

bool kr_dns_name_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && a[la - 1] == '.')
        la--;
    if (lb && b[lb - 1] == '.')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

int kr_dns_name_absolute(const char *in, char out[KR_DNS_NAME_MAX])
{
    size_t n = in ? strlen(in) : 0, label = 0, wire = 1;

    if (n == 0 || n >= KR_DNS_NAME_MAX - 1)
        return KR_EINVAL;
    if (strcmp(in, ".") == 0) {
        snprintf(out, KR_DNS_NAME_MAX, ".");
        return 0;
    }
    /* Printable, no spaces; escapes are not used by kmsrelay's names. */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '\\' || ch == '"' || ch == ';' || ch == '(' ||
            ch == ')')
            return KR_EINVAL;
        if (ch == '.') {
            if (label == 0 && !(i == n - 1 && n > 1))
                return KR_EINVAL; /* empty label */
            if (label)
                wire += label + 1;
            label = 0;
        } else if (++label > 63) {
            return KR_EINVAL;
        }
    }
    wire += label ? label + 1 : 0;
    if (wire > 255)
        return KR_EINVAL;
    snprintf(out, KR_DNS_NAME_MAX, "%s%s", in, in[n - 1] == '.' ? "" : ".");
    return 0;
}
