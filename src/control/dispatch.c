/*
 * dispatch.c - the control API's one route table and its matching.
 *
 * A pattern is a path of literal segments and {parameter} segments. The
 * request path is split at '/' first and each segment percent-decoded
 * afterwards, so "%2F" inside a host name never changes the shape of the
 * path. A path that matches a pattern with another method is answered 405
 * with an Allow header rather than 404: the resource exists.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "control/control-internal.h"
#include "kmsrelay/bytes.h"

const struct ctl_route ctl_routes[] = {
    {CTL_GET, "/v1", "", ctl_api_index, "this list of endpoints"},
    {CTL_GET, "/v1/status", "", ctl_api_status,
     "version, uptime, listeners, counts of hosts, pins and activations, store state"},
    {CTL_GET, "/v1/hosts", "", ctl_api_hosts,
     "every host: health, admin state, checks, pins and reported counts per application"},
    {CTL_GET, "/v1/hosts/{name}", "", ctl_api_host, "one host, as in /v1/hosts"},
    {CTL_POST, "/v1/hosts/{name}/state", "", ctl_api_host_state,
     "set the admin state: {\"state\": \"ready|drain|maint|retired\"}"},
    {CTL_POST, "/v1/hosts/{name}/weight", "", ctl_api_host_weight,
     "set the weight: {\"weight\": 1..10000}"},
    {CTL_GET, "/v1/pins/{cmid}", "app", ctl_api_pin_show,
     "the pins of one client machine id, one per application (?app= for one)"},
    {CTL_DELETE, "/v1/pins/{cmid}", "app", ctl_api_pin_forget,
     "forget a machine's pins (?app= for one application)"},
    {CTL_POST, "/v1/pins/{cmid}/move", "app", ctl_api_pin_move,
     "move a machine's pins (?app= for one application) to another host: {\"host\": NAME}"},
    {CTL_POST, "/v1/rebalance", "", ctl_api_rebalance,
     "move up to max pins toward an even spread by weight: {\"max\": N, \"dry_run\": true}"},
    {CTL_GET, "/v1/clients", "app,host,since,limit,format", ctl_api_clients,
     "clients (pins): ?app=, ?host=, ?since= (a duration), ?limit=, ?format=json|csv"},
    {CTL_GET, "/v1/report", "", ctl_api_report, "the activation report (kmsrelay.report/1)"},
    {CTL_GET, "/v1/peers", "", ctl_api_peers,
     "replication links: state, lag (changes and seconds), last error"},
    {CTL_GET, "/v1/dns", "", ctl_api_dns, "published SRV records, last update, next reconcile"},
    {CTL_POST, "/v1/reload", "", ctl_api_reload,
     "reload the configuration (as SIGHUP); lists the errors when it is refused"},
};

const size_t ctl_n_routes = sizeof(ctl_routes) / sizeof(ctl_routes[0]);

const char *ctl_method_name(int m)
{
    switch (m) {
    case CTL_GET:
        return "GET";
    case CTL_POST:
        return "POST";
    case CTL_DELETE:
        return "DELETE";
    case CTL_PUT:
        return "PUT";
    case CTL_HEAD:
        return "HEAD";
    default:
        return "OTHER";
    }
}

int ctl_fail(char *err, size_t errlen, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return status;
}

/* Percent-decodes seg[0..n) into out; refuses NUL bytes and overlong
 * segments. Returns 0 or -1. */
static int decode_segment(const char *seg, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)seg[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = kr_hex_digit(seg[i + 1])) < 0 ||
                (lo = kr_hex_digit(seg[i + 2])) < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Does path match pattern? Fills params (decoded) on a match. 1 match, 0 no
 * match, -1 a segment does not decode. */
static int match(const char *pattern, const char *path, char params[CTL_MAX_PARAMS][CTL_PARAM_MAX])
{
    const char *p = pattern, *s = path;
    size_t np = 0;

    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        size_t pl = strcspn(p, "/"), sl = strcspn(s, "/");
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (sl == 0 || np == CTL_MAX_PARAMS)
                return 0;
            if (decode_segment(s, sl, params[np], CTL_PARAM_MAX) != 0)
                return -1;
            np++;
        } else if (pl != sl || memcmp(p, s, pl) != 0) {
            return 0;
        }
        p += pl;
        s += sl;
    }
    return *p == '\0' && *s == '\0';
}

int ctl_route_find(int method, const char *path, const struct ctl_route **route,
                   char params[CTL_MAX_PARAMS][CTL_PARAM_MAX], char *allow, size_t allow_len)
{
    char tmp[CTL_MAX_PARAMS][CTL_PARAM_MAX] = {{0}};
    char norm[1024];
    size_t n = strlen(path);
    int methods = 0, bad = 0;

    /* One trailing slash is forgiven ("/v1/hosts/"). */
    if (n >= sizeof(norm))
        return 404;
    memcpy(norm, path, n + 1);
    if (n > 1 && norm[n - 1] == '/')
        norm[n - 1] = '\0';

    *route = NULL;
    if (allow_len)
        allow[0] = '\0';
    for (size_t i = 0; i < ctl_n_routes; i++) {
        int m = match(ctl_routes[i].pattern, norm, tmp);
        if (m < 0) {
            bad = 1;
            continue;
        }
        if (m == 0)
            continue;
        if (ctl_routes[i].method == method) {
            *route = &ctl_routes[i];
            memcpy(params, tmp, sizeof(tmp));
            return 200;
        }
        methods |= ctl_routes[i].method;
    }
    if (bad)
        return 400;
    if (!methods)
        return 404;
    for (int b = 1; b < CTL_OTHER; b <<= 1)
        if (methods & b) {
            size_t l = strlen(allow);
            snprintf(allow + l, allow_len - l, "%s%s", l ? ", " : "", ctl_method_name(b));
        }
    return 405;
}

int ctl_query_check(const struct evkeyvalq *q, const char *allowed, char *err, size_t errlen)
{
    const struct evkeyval *kv;
    TAILQ_FOREACH(kv, q, next)
    {
        size_t kl = strlen(kv->key);
        const char *a = allowed;
        bool ok = false;
        while (*a && !ok) {
            size_t al = strcspn(a, ",");
            ok = al == kl && memcmp(a, kv->key, kl) == 0;
            a += al + (a[al] == ',');
        }
        if (!ok)
            return ctl_fail(err, errlen, 400, "unknown query parameter \"%.64s\"%s%s", kv->key,
                            *allowed ? "; accepted: " : " (this endpoint takes none)", allowed);
    }
    return 0;
}
