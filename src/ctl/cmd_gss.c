/*
 * cmd_gss.c - `kmsrelayctl dns check` and `kmsrelayctl dns update`: the
 * Kerberos (GSS-TSIG) credentials proof before going live, and a signed
 * update by hand, without the daemon (issue 12).
 *
 *   dns check  --zone Z --server ADDR[:PORT] --keytab K --principal P [--debug]
 *              gets a ticket from the keytab, sets up a security context
 *              with the zone's primary (named by its SOA MNAME) and reads
 *              the _vlmcs._tcp RRset with a signed query. Writes nothing.
 *   dns update ... [--add "RR"]... [--del "RR"]...
 *              one GSS-TSIG signed UPDATE (delete-exact, then add).
 *
 * Exit codes: 0 ok, 1 the check or update failed (one line says why and
 * what to do), 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "dnsclient/gss.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

#define MAX_RRS 16

int ctl_cmd_dns_gss(const struct ctl_opts *o, int argc, char **argv);

static int usage(void)
{
    fprintf(stderr, "usage: kmsrelayctl dns check  --zone Z --server ADDR[:PORT] --keytab FILE "
                    "--principal P [--server-name N] [--debug]\n"
                    "       kmsrelayctl dns update --zone Z --server ADDR[:PORT] --keytab FILE "
                    "--principal P [--add RR]... [--del RR]...\n");
    return CTL_EXIT_USAGE;
}

static double ms_since(uint64_t t0)
{
    return (double)(kr_now_us() - t0) / 1000.0;
}

static int parse_rr(const char *text, struct kr_dns_rr *rrs, size_t *n)
{
    const char *why = "";
    if (*n >= MAX_RRS || kr_dns_rr_from_text(&rrs[*n], text, &why) != 0) {
        fprintf(stderr, "kmsrelayctl: record \"%s\": %s\n", text, *n >= MAX_RRS ? "too many" : why);
        return -1;
    }
    (*n)++;
    return 0;
}

static void print_result(const struct ctl_opts *o, const char *what, const struct kr_dns_result *r,
                         double ms)
{
    (void)o;
    if (r->status == KR_DNS_OK)
        printf("%s: ok (%s, %.1f ms%s)\n", what, kr_dns_rcode_name(r->rcode), ms,
               r->verified ? ", reply verified" : "");
    else
        printf("%s: FAILED: %s\n", what, r->message);
    for (size_t i = 0; i < r->n_rrs; i++) {
        char line[KR_DNS_NAME_MAX + KR_DNS_RDATA_MAX + 64];
        printf("  %s\n", kr_dns_rr_format(&r->rrs[i], line, sizeof(line)));
    }
}

int ctl_cmd_dns_gss(const struct ctl_opts *o, int argc, char **argv)
{
    struct kr_gss_opts go = {0};
    static struct kr_dns_rr add[MAX_RRS], del[MAX_RRS];
    size_t n_add = 0, n_del = 0;
    const char *server = NULL;
    bool check = strcmp(argv[0], "check") == 0, debug = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--debug") == 0) {
            debug = true;
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (strcmp(a, "--zone") == 0)
            go.zone = v;
        else if (strcmp(a, "--server") == 0)
            server = v;
        else if (strcmp(a, "--keytab") == 0)
            go.keytab = v;
        else if (strcmp(a, "--principal") == 0)
            go.principal = v;
        else if (strcmp(a, "--server-name") == 0)
            go.server_name = v;
        else if (strcmp(a, "--clock-offset") == 0) /* TEST ONLY: skews our TSIG time */
            go.clock_offset = strtoll(v, NULL, 10);
        else if (!check && strcmp(a, "--add") == 0) {
            if (parse_rr(v, add, &n_add))
                return CTL_EXIT_USAGE;
        } else if (!check && strcmp(a, "--del") == 0) {
            if (parse_rr(v, del, &n_del))
                return CTL_EXIT_USAGE;
        } else
            return usage();
    }
    if (!go.zone || !server || !go.keytab || !go.principal)
        return usage();
    const char *why = "";
    char with_port[300];
    if (!strchr(server, ':')) { /* an IPv4 address alone: port 53 */
        snprintf(with_port, sizeof(with_port), "%s:53", server);
        server = with_port;
    }
    if (kr_addr_parse(server, 0, &go.server, &why) != 0) {
        fprintf(stderr, "kmsrelayctl: --server %s: %s\n", server, why);
        return CTL_EXIT_USAGE;
    }
    kr_log_init("kmsrelayctl", 0, debug ? KR_LOG_DEBUG : KR_LOG_WARN);

    char err[1024];
    struct kr_gss_sess *s = NULL;
    uint64_t t0 = kr_now_us();
    int rc = kr_gss_open(&go, &s, err, sizeof(err));
    if (rc) {
        printf("credentials for %s: FAILED: %s\n", go.principal, err);
        return CTL_EXIT_FINDINGS;
    }
    printf("credentials for %s: ok (ticket and security context with %s in %.1f ms)\n",
           go.principal, kr_gss_server_principal(s), ms_since(t0));
    struct kr_dns_result *res = NULL;
    int exit_code = CTL_EXIT_OK;
    if (check) {
        char name[KR_DNS_NAME_MAX + 16];
        snprintf(name, sizeof(name), "_vlmcs._tcp.%s", go.zone);
        t0 = kr_now_us();
        rc = kr_gss_query(s, name, KR_DNS_SRV, &res);
        if (!rc)
            print_result(o, "signed query _vlmcs._tcp SRV", res, ms_since(t0));
    } else {
        struct kr_dns_update u = {go.zone, NULL, 0, del, n_del, add, n_add};
        t0 = kr_now_us();
        rc = kr_gss_update(s, &u, &res);
        if (!rc)
            print_result(o, "signed update", res, ms_since(t0));
    }
    if (rc || !res || res->status != KR_DNS_OK)
        exit_code = CTL_EXIT_FINDINGS;
    if (rc)
        printf("FAILED: %s\n", kr_strerror(rc));
    kr_dns_result_free(res);
    kr_gss_close(s);
    return exit_code;
}
