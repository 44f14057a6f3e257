/*
 * sync.c - blocking wrappers for the command line (kmsrelayctl): each runs
 * a private event base until its one request ends. Never used inside
 * kmsrelayd. Also the system resolvers from /etc/resolv.conf.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dnsclient/transport.h"
#include "kmsrelay/err.h"

struct waiter {
    struct event_base *base;
    struct kr_dns_result *res;
};

static void on_done(struct kr_dns_result *res, void *arg)
{
    struct waiter *w = arg;
    w->res = res;
    event_base_loopbreak(w->base);
}

static int run(const struct kr_dns_servers *s, const struct kr_dns_client_opts *opts, int kind,
               const char *name, uint16_t type, const struct kr_dns_update *u,
               struct kr_dns_result **out)
{
    struct waiter w = {NULL, NULL};
    struct kr_dns_client *c = NULL;
    int rc;

    *out = NULL;
    if (!(w.base = event_base_new()))
        return KR_ENOMEM;
    if (!(c = kr_dns_client_new(w.base, opts))) {
        event_base_free(w.base);
        return KR_ENOMEM;
    }
    if (kind == KR_DNS_KIND_UPDATE)
        rc = kr_dns_update(c, s, u, on_done, &w, NULL);
    else
        rc = kr_dns_query(c, s, name, type, on_done, &w, NULL);
    if (rc == 0)
        while (!w.res && event_base_dispatch(w.base) == 0)
            ;
    kr_dns_client_free(c);
    /* Let freed bufferevents finish their deferred cleanup. */
    event_base_loop(w.base, EVLOOP_NONBLOCK);
    event_base_free(w.base);
    if (rc == 0 && !w.res)
        return KR_EIO;
    *out = w.res;
    return rc;
}

int kr_dns_query_sync(const struct kr_dns_servers *s, const struct kr_dns_client_opts *opts,
                      const char *name, uint16_t type, struct kr_dns_result **out)
{
    return run(s, opts, KR_DNS_KIND_QUERY, name, type, NULL, out);
}

int kr_dns_axfr_sync(const struct kr_dns_servers *s, const struct kr_dns_client_opts *opts,
                     const char *zone, struct kr_dns_result **out)
{
    return run(s, opts, KR_DNS_KIND_AXFR, zone, KR_DNS_AXFR, NULL, out);
}

int kr_dns_update_sync(const struct kr_dns_servers *s, const struct kr_dns_client_opts *opts,
                       const struct kr_dns_update *u, struct kr_dns_result **out)
{
    return run(s, opts, KR_DNS_KIND_UPDATE, NULL, 0, u, out);
}

size_t kr_dns_system_resolvers(struct kr_addr *out, size_t max)
{
    FILE *f = fopen("/etc/resolv.conf", "r");
    char line[256], addr[128];
    size_t n = 0;

    if (!f)
        return 0;
    while (n < max && fgets(line, sizeof(line), f)) {
        if (sscanf(line, " nameserver %127s", addr) != 1)
            continue;
        char *pct = strchr(addr, '%'); /* fe80::1%eth0: scope ids are not supported */
        if (pct)
            continue;
        memset(&out[n], 0, sizeof(out[n]));
        struct sockaddr_in *sin = (struct sockaddr_in *)&out[n].ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out[n].ss;
        if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            sin->sin_port = htons(53);
            out[n++].len = sizeof(*sin);
        } else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(53);
            out[n++].len = sizeof(*sin6);
        }
    }
    fclose(f);
    return n;
}
