/*
 * cmd_dir.c - `kmsrelayctl dns directory`: an AD zone's _vlmcs nodes as the
 * audit reads them from the directory (LDAP, SASL GSSAPI bind with the
 * account's keytab; kmsrelay/directory.h), with where the time went. Proves
 * before going live that the account may read the zone, and shows every
 * _vlmcs record of the zone and its children, tombstones left out.
 *
 *   dns directory --zone Z --server ADDR[:PORT] --keytab K --principal P
 *                 [--server-name N] [--timeout DURATION]
 *
 * ADDR is a domain controller: its DNS (port 53, or PORT) gives the zone's
 * SOA MNAME, the DC's name for ldap/<name> (unless --server-name), and its
 * LDAP port 389 is read. Exit: 0 read, 1 failed (one line says why), 2 usage.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"
#include "kmsrelay/directory.h"
#include "kmsrelay/units.h"

int ctl_cmd_dns_directory(const struct ctl_opts *o, int argc, char **argv);

static int usage(void)
{
    fprintf(stderr, "usage: kmsrelayctl dns directory --zone Z --server ADDR[:PORT] --keytab FILE "
                    "--principal P [--server-name N] [--timeout DURATION]\n");
    return CTL_EXIT_USAGE;
}

/* The zone's SOA MNAME from the DC's DNS, without the final dot. */
static int soa_mname(const struct kr_addr *dns, const char *zone, uint64_t ms, char *out,
                     size_t cap)
{
    struct kr_dns_servers s = {0};
    struct kr_dns_result *q = NULL;
    s.addrs = dns;
    s.n = 1;
    s.timeout_ms = ms;
    int rc = -1;
    if (kr_dns_query_sync(&s, NULL, zone, KR_DNS_SOA, &q) == 0 && q->status == KR_DNS_OK)
        for (size_t i = 0; i < q->n_rrs && rc; i++)
            if (q->rrs[i].type == KR_DNS_SOA) {
                snprintf(out, cap, "%s", q->rrs[i].target);
                size_t n = strlen(out);
                if (n > 1 && out[n - 1] == '.')
                    out[n - 1] = 0;
                rc = 0;
            }
    if (rc)
        printf("directory: FAILED: no SOA for %s from the server (%s): give --server-name\n", zone,
               q ? q->message : "out of memory");
    kr_dns_result_free(q);
    return rc;
}

static void print_nodes(const struct kr_dir_result *r)
{
    char line[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 64];
    for (size_t i = 0; i < r->n; i++) {
        const struct kr_dir_node *n = &r->nodes[i];
        printf("%s (%s)\n", n->owner, n->dn);
        for (size_t k = 0; k < n->n_rr; k++)
            printf("  %s\n", kr_dns_rr_format(&n->rr[k], line, sizeof(line)));
        if (n->n_bad)
            printf("  %u value(s) did not decode: %s\n", n->n_bad, n->bad_why);
    }
}

int ctl_cmd_dns_directory(const struct ctl_opts *o, int argc, char **argv)
{
    struct kr_dir_opts d = {0};
    const char *server = NULL, *why = "";
    char name[KR_DNS_NAME_MAX], err[1024], with_port[300];
    uint64_t ms = 5000;
    (void)o;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        if (strcmp(a, "--zone") == 0)
            d.zone = v;
        else if (strcmp(a, "--server") == 0)
            server = v;
        else if (strcmp(a, "--keytab") == 0)
            d.keytab = v;
        else if (strcmp(a, "--principal") == 0)
            d.principal = v;
        else if (strcmp(a, "--server-name") == 0)
            d.server_name = v;
        else if (strcmp(a, "--timeout") != 0 || kr_parse_duration_ms(v, &ms, NULL) != 0 || !ms)
            return usage();
    }
    if (!d.zone || !server || !d.keytab || !d.principal)
        return usage();
    if (!strchr(server, ':')) { /* an IPv4 address alone: port 53 */
        snprintf(with_port, sizeof(with_port), "%s:53", server);
        server = with_port;
    }
    struct kr_addr dns;
    if (kr_addr_parse(server, 0, &dns, &why) != 0) {
        fprintf(stderr, "kmsrelayctl: --server %s: %s\n", server, why);
        return CTL_EXIT_USAGE;
    }
    if (!d.server_name) {
        if (soa_mname(&dns, d.zone, ms, name, sizeof(name)) != 0)
            return CTL_EXIT_FINDINGS;
        d.server_name = name;
    }
    d.server = dns;
    if (d.server.ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&d.server.ss)->sin_port = htons(KR_DIR_LDAP_PORT);
    else
        ((struct sockaddr_in6 *)&d.server.ss)->sin6_port = htons(KR_DIR_LDAP_PORT);
    d.timeout_ms = ms;
    struct kr_dir_result r;
    if (kr_dir_vlmcs(&d, &r, err, sizeof(err)) != 0) {
        printf("directory: FAILED: %s\n", err);
        return CTL_EXIT_FINDINGS;
    }
    printf("directory: %zu _vlmcs node(s) in %s from %s (%u tombstoned skipped); ticket %.1f ms, "
           "SASL GSSAPI bind %.1f ms, search %.1f ms\n",
           r.n, r.zone_dn, r.server, r.n_tombstoned, r.ticket_us / 1000.0, r.bind_us / 1000.0,
           r.search_us / 1000.0);
    print_nodes(&r);
    kr_dir_result_free(&r);
    return CTL_EXIT_OK;
}
