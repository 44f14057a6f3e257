/*
 * main.c - kmsrelayctl: the operator's command-line tool. Global options come
 * before the command; everything after the command belongs to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/api.h"
#include "ctl/check.h"
#include "ctl/cmd_audit.h"
#include "ctl/ctl.h"

#ifndef KR_DEFAULT_SOCKET
#define KR_DEFAULT_SOCKET "/run/kmsrelay/control.sock"
#endif

static int cmd_help(const struct ctl_opts *o, int argc, char **argv);

static const struct ctl_cmd commands[] = {
    {"status", "[--check-exit]", "version, uptime, listeners, hosts, pins and activations",
     ctl_cmd_status},
    {"hosts", "[--check-exit]", "per host: health, admin, checks, pins and counts per application",
     ctl_cmd_hosts},
    {"check", "[--THRESHOLD N]...", "Nagios/Icinga check: one line, exit 0-3 (check --help)",
     ctl_cmd_check},
    {"host", "drain|ready|maint|retire NAME", "set a host's admin state (persists)", ctl_cmd_host},
    {"host", "weight NAME N", "set a host's weight (persists)", ctl_cmd_host},
    {"pin", "show|forget CMID", "show or forget the pin of a client machine id", ctl_cmd_pin},
    {"pin", "move CMID HOST", "pin a client to another host", ctl_cmd_pin},
    {"rebalance", "[--max N] [--dry-run]",
     "move up to N pins (default 100) toward an even spread by weight", ctl_cmd_rebalance},
    {"clients", "[--app A] [--host H] [--since D] [--format table|json|csv]",
     "list clients (pins); --limit N caps the list", ctl_cmd_clients},
    {"report", "[--format table|json|csv]", "activation report: counts, thresholds, problems",
     ctl_cmd_report},
    {"peers", "", "replication links to the other relays: state, lag, last error", ctl_cmd_peers},
    {"dns", "", "published SRV records, last update result, next reconcile", ctl_cmd_dns},
    {"dns", "check --zone Z --server A --keytab K --principal P",
     "prove Kerberos (GSS-TSIG) credentials: ticket, context, signed read", ctl_cmd_dns},
    {"dns", "update --zone Z ... [--add RR] [--del RR]", "one GSS-TSIG signed update by hand",
     ctl_cmd_dns},
    {"dns", "directory --zone Z --server A --keytab K --principal P",
     "an AD zone's _vlmcs records read from the directory (LDAP, Kerberos)", ctl_cmd_dns},
    {"reload", "", "reload the configuration (as SIGHUP); shows the errors if refused",
     ctl_cmd_reload},
    {"audit", "[--fix] ZONE...", "audit every _vlmcs SRV record of the zones (see audit --help)",
     ctl_cmd_audit},
    {"decode", "[--json] FILE", "decode a recorded KMS conversation (vector JSON or hex PDUs)",
     ctl_cmd_decode},
    {"store", "check|set-aside [--force] --state-dir DIR",
     "offline: check the state store; move a damaged one aside (no daemon running)", ctl_cmd_store},
    {"help", "", "show this help", cmd_help},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: kmsrelayctl [--json] [--socket PATH] COMMAND [ARGS]\n\n"
                 "Operator tool for kmsrelay, the KMS front proxy.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        char syn[128];
        snprintf(syn, sizeof(syn), "%s %s", commands[i].name, commands[i].args);
        if (strlen(syn) > 28) /* a long synopsis gets a line of its own */
            fprintf(out, "  %s\n  %-28s %s\n", syn, "", commands[i].help);
        else
            fprintf(out, "  %-28s %s\n", syn, commands[i].help);
    }
    fprintf(out,
            "\nOptions:\n"
            "  --json           machine-readable JSON output\n"
            "  --socket PATH    control socket (default %s)\n"
            "  -h, --help       this help\n"
            "  --version        print the version\n\n"
            "Exit codes: 0 ok, 1 problems found, 2 usage or input error,\n"
            "3 daemon unreachable. `check`, and `status` or `hosts` with --check-exit,\n"
            "exit like a monitoring plugin instead: 0 OK; 1 WARNING (a host down, a count\n"
            "below threshold, findings); 2 CRITICAL (no host takes new clients, not\n"
            "published in DNS, the store failing); 3 UNKNOWN (daemon unreachable, usage).\n",
            KR_DEFAULT_SOCKET);
}

static int cmd_help(const struct ctl_opts *o, int argc, char **argv)
{
    usage(stdout);
    return CTL_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct ctl_opts o = {0, KR_DEFAULT_SOCKET};
    const char *env = getenv("KMSRELAY_SOCKET");
    if (env && *env)
        o.socket = env;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o.json = 1;
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            o.socket = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return CTL_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("kmsrelayctl %s\n", KR_VERSION);
            return CTL_EXIT_OK;
        } else {
            fprintf(stderr, "kmsrelayctl: unknown option %s (see --help)\n", argv[i]);
            return CTL_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].run(&o, argc - i - 1, argv + i + 1);
    fprintf(stderr, "kmsrelayctl: unknown command '%s' (see kmsrelayctl help)\n", argv[i]);
    return CTL_EXIT_USAGE;
}
