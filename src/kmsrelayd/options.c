/*
 * options.c - kmsrelayd's command line: options, the help text, and the
 * config built from a file (or the embedded defaults) plus -H/-l/-s on top.
 * The overlay is applied again on every reload, so hosts and listeners given
 * on the command line survive a SIGHUP.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kmsrelay/err.h"
#include "kmsrelayd/kmsrelayd.h"

static const char usage_text[] =
    "usage: kmsrelayd [-c FILE] [-n] [-d] [-H name=ip:port[,weight=N]]... [-l ADDR:PORT]...\n"
    "                 [-s STATE_DIR] [--port-file FILE] [--report[=FORMAT]] [--control PATH]\n"
    "                 [--version] [-h]\n"
    "\n"
    "kmsrelayd is a front proxy for Microsoft KMS hosts: clients connect to it on TCP 1688\n"
    "as they would to a KMS host, and each activation is served by one backend host chosen\n"
    "by the client machine id (CMID), sticky for life, with health checks and failover.\n"
    "It never answers an activation itself.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE      configuration file (libconfig syntax, @include allowed).\n"
    "                         Without it kmsrelayd runs with embedded defaults: listen on\n"
    "                         [::]:1688 and 0.0.0.0:1688, private client networks only,\n"
    "                         state in /var/lib/kmsrelay, and the hosts given with -H\n"
    "  -n, --check            check the configuration (with the other options applied),\n"
    "                         print \"configuration OK\" or every error as file:line: message,\n"
    "                         and exit 0 or 1\n"
    "  -d, --debug            debug logging to stderr (overrides log.level and log.target)\n"
    "  -H, --host SPEC        a backend host, repeatable, added to the file's hosts:\n"
    "                         name=ip:port[,weight=N][,priority=N][,state=drain] or ip:port\n"
    "                         (the name is then the address); the port defaults to 1688\n"
    "  -l, --listen ADDR:PORT listen here instead of the configured addresses; repeatable;\n"
    "                         \"127.0.0.1:1688\", \"[::]:1688\"; port 0 lets the kernel choose\n"
    "  -s, --state-dir DIR    where the pin database lives (overrides state_dir)\n"
    "      --port-file FILE   after start-up write the first listener's actual port to FILE\n"
    "      --report[=FORMAT]  print the activation report from the pin store (table, json\n"
    "                         or csv; default table) and exit; works while the daemon runs\n"
    "      --control PATH     the control API's socket (overrides control.socket)\n"
    "      --version          print the version and exit\n"
    "  -h, --help             print this help and exit\n"
    "\n"
    "Signals:\n"
    "  SIGHUP           reload: read and check the configuration again and apply the\n"
    "                   difference; no connection is dropped and no pin is lost. A bad new\n"
    "                   configuration is logged and the running one is kept.\n"
    "  SIGTERM, SIGINT  graceful stop: stop accepting, let requests in flight finish (up to\n"
    "                   shutdown_grace), write the pins to disk, exit 0. A second signal\n"
    "                   stops at once.\n"
    "  SIGXCPU          the same graceful stop (the CPU limit was reached; SIGKILL follows\n"
    "                   at the hard limit)\n"
    "  SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF  ignored\n"
    "\n"
    "Logs are logfmt lines on stderr (or syslog, log.target): one per activation, plus\n"
    "host state changes and errors.\n"
    "\n"
    "Exit status: 0 clean stop or configuration OK, 1 configuration or start-up error,\n"
    "2 usage error.\n";

enum { OPT_PORT_FILE = 256, OPT_VERSION, OPT_REPORT, OPT_CONTROL };

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"check", no_argument, NULL, 'n'},
    {"debug", no_argument, NULL, 'd'},
    {"host", required_argument, NULL, 'H'},
    {"listen", required_argument, NULL, 'l'},
    {"state-dir", required_argument, NULL, 's'},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"report", optional_argument, NULL, OPT_REPORT},
    {"control", required_argument, NULL, OPT_CONTROL},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int kd_parse_args(int argc, char **argv, struct kd_opts *o)
{
    int opt;
    memset(o, 0, sizeof(*o));
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:ndH:l:s:h", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o->config = optarg;
            break;
        case 'n':
            o->check = true;
            break;
        case 'd':
            o->debug = true;
            break;
        case 'H':
            if (o->n_hosts == KR_CONF_MAX_HOSTS) {
                fprintf(stderr, "kmsrelayd: at most %d hosts\n", KR_CONF_MAX_HOSTS);
                return 2;
            }
            o->hosts[o->n_hosts++] = optarg;
            break;
        case 'l':
            if (o->n_listen == KR_CONF_MAX_LISTEN) {
                fprintf(stderr, "kmsrelayd: at most %d listen addresses\n", KR_CONF_MAX_LISTEN);
                return 2;
            }
            o->listen[o->n_listen++] = optarg;
            break;
        case 's':
            o->state_dir = optarg;
            break;
        case OPT_PORT_FILE:
            o->port_file = optarg;
            break;
        case OPT_REPORT:
            o->report = optarg ? optarg : "table";
            break;
        case OPT_CONTROL:
            o->control = optarg;
            break;
        case OPT_VERSION:
            printf("kmsrelayd " KR_VERSION "\n");
            return 1;
        case 'h':
            fputs(usage_text, stdout);
            return 1;
        case ':':
            fprintf(stderr, "kmsrelayd: %s needs a value (see kmsrelayd -h)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "kmsrelayd: unknown option %s (see kmsrelayd -h)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kmsrelayd: unexpected argument \"%s\" (see kmsrelayd -h)\n", argv[optind]);
        return 2;
    }
    return 0;
}

static void add_err(char *errbuf, size_t errlen, const char *fmt, const char *a, const char *b)
{
    size_t n = strnlen(errbuf, errlen);
    if (n + 1 < errlen)
        snprintf(errbuf + n, errlen - n, fmt, a, b);
}

/* A configuration file is a few kilobytes; a huge one is a mistake (or an
 * attack on the reload path): refuse it before parsing a byte of it. */
static bool too_big(const char *path, char *errbuf, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= KD_CONF_MAX_BYTES)
        return false; /* the loader reports a missing or unreadable file */
    snprintf(errbuf, errlen,
             "%s: the file is %lld bytes; a configuration file may have at most %d bytes "
             "(1 MiB)\n",
             path, (long long)st.st_size, KD_CONF_MAX_BYTES);
    return true;
}

int kd_build_conf(const struct kd_opts *o, struct kr_conf **out, char *errbuf, size_t errlen)
{
    struct kr_conf *c = NULL;
    const char *why = NULL;
    int bad = 0;

    if (errlen)
        errbuf[0] = '\0';
    if (o->config && too_big(o->config, errbuf, errlen))
        return KR_ECONFIG;
    if (o->config) {
        if (kr_conf_load(o->config, &c, errbuf, errlen) != 0)
            return KR_ECONFIG;
    } else {
        if (!(c = malloc(sizeof(*c)))) {
            add_err(errbuf, errlen, "%s%s: out of memory\n", "kmsrelayd", "");
            return KR_ECONFIG;
        }
        kr_conf_defaults(c);
    }
    if (o->n_listen)
        c->n_listen = 0;
    for (size_t i = 0; i < o->n_listen; i++)
        if (kr_addr_parse(o->listen[i], AF_INET, &c->listen[c->n_listen++], &why) != 0) {
            add_err(errbuf, errlen, "command line: -l %s: %s\n", o->listen[i], why);
            c->n_listen--;
            bad = 1;
        }
    for (size_t i = 0; i < o->n_hosts; i++) {
        if (c->n_hosts == KR_CONF_MAX_HOSTS) {
            add_err(errbuf, errlen, "command line: -H %s: %s\n", o->hosts[i], "too many hosts");
            bad = 1;
            break;
        }
        if (kr_conf_host_parse(o->hosts[i], &c->hosts[c->n_hosts], &why) != 0) {
            add_err(errbuf, errlen, "command line: -H %s: %s\n", o->hosts[i], why);
            bad = 1;
            continue;
        }
        c->n_hosts++;
    }
    if (o->state_dir) {
        if (!*o->state_dir || strlen(o->state_dir) >= sizeof(c->state_dir)) {
            add_err(errbuf, errlen, "command line: -s %s: %s\n", o->state_dir,
                    "must be a non-empty path shorter than 256 bytes");
            bad = 1;
        } else {
            memcpy(c->state_dir, o->state_dir, strlen(o->state_dir) + 1);
        }
    }
    if (o->control) {
        if (!*o->control || strlen(o->control) >= sizeof(c->control_socket)) {
            add_err(errbuf, errlen, "command line: --control %s: %s\n", o->control,
                    "must be a non-empty path shorter than 256 bytes");
            bad = 1;
        } else {
            memcpy(c->control_socket, o->control, strlen(o->control) + 1);
        }
    }
    if (o->debug) {
        c->log_debug = 1;
        c->log_level = 3; /* KR_LOG_DEBUG */
        c->log_syslog = 0;
    }
    if (kr_conf_validate(c, errbuf, errlen) != 0)
        bad = 1;
    if (bad) {
        free(c);
        return KR_ECONFIG;
    }
    *out = c;
    return 0;
}
