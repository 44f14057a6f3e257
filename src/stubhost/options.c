/* options.c - kms-stubhost's command line and its --help text. */
#include "stubhost/stubhost.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/guid.h"
#include "stubhost/cmidset.h"

static const char usage_text[] =
    "NAME\n"
    "    kms-stubhost - a test double KMS host for kmsrelay's tests and benchmarks\n"
    "\n"
    "SYNOPSIS\n"
    "    kms-stubhost [options]\n"
    "\n"
    "DESCRIPTION\n"
    "    Answers KMS activation requests (protocol V4, V5, V6) over DCE/RPC on TCP\n"
    "    like a Windows 8+ KMS host: the first bind accepts NDR64 and rejects NDR32,\n"
    "    a following alter_context accepts NDR32, and bind time feature negotiation\n"
    "    (BTFN) is acknowledged. It serves many requests per connection until the\n"
    "    client closes or the idle timeout passes, keeps a real per-application set\n"
    "    of client machine ids (CMIDs) and answers with its real count.\n"
    "\n"
    "    Answers carry the request's protocol version, valid framing and ZEROED\n"
    "    integrity fields (V4 MAC, V5/V6 hash, V6 HMAC): they are structurally\n"
    "    valid but can never activate a real client.\n"
    "\n"
    "ANSWERS\n"
    "    A request on a context id that no bind or alter_context accepted gets an RPC\n"
    "    fault nca_s_unk_if (0x1C010003), an opnum other than 0 nca_s_op_rng_error\n"
    "    (0x1C010002); the connection stays open. A request whose message does not\n"
    "    decode, or whose version is not 4.0, 5.0 or 6.0, gets HRESULT 0x8007000D in a\n"
    "    normal response, as genuine hosts answer. Otherwise the CMID is recorded for\n"
    "    the request's application id and the answer carries the number of distinct\n"
    "    CMIDs of that application seen within the count window (a repeated CMID\n"
    "    does not raise it). V5 answers reuse the request IV, V6 answers get a\n"
    "    random one. At most %d application ids and %u CMIDs per application are\n"
    "    kept; beyond that the least recently seen CMID is dropped. Any PTYPE other\n"
    "    than bind, alter_context and request, and any malformed PDU, closes the\n"
    "    connection.\n"
    "\n"
    "OPTIONS\n"
    "    -l, --listen ADDR:PORT\n"
    "        Listen on this numeric address (\"127.0.0.1:1688\", \"[::1]:1688\").\n"
    "        Repeatable. Port 0 lets the kernel choose. Default: " STUB_DEFAULT_LISTEN ".\n"
    "    --port-file FILE\n"
    "        After listening, write the first listener's actual port in decimal and a\n"
    "        newline to FILE (written to FILE.tmp, then renamed). Default: none.\n"
    "    -N, --name NAME\n"
    "        Host name, logged with every request; the ePID is derived from it.\n"
    "        Default: \"" STUB_DEFAULT_NAME "\".\n"
    "    --epid TEXT\n"
    "        ePID to answer with, up to 63 characters. Default: derived from NAME in\n"
    "        the vlmcsd form PPPPP-GGGGG-KKK-KKKKKK-03-1033-BBBBB.0000-DDDYYYY.\n"
    "    --hwid HEX16\n"
    "        Host hardware id in V6 answers, 16 hex digits. Default: " STUB_DEFAULT_HWID ".\n"
    "    --ndr32-only\n"
    "        Pre-Windows-8 binding: reject NDR64, accept NDR32 in the first bind.\n"
    "    --no-btfn\n"
    "        Reject BTFN items (provider rejection) instead of acknowledging them.\n"
    "    --refuse-kmsid GUID\n"
    "        Answer HRESULT 0xC004F042 to requests for this KMS counted id.\n"
    "        Repeatable. Default: none.\n"
    "    --delay-ms N\n"
    "        Delay the answer to every request by N milliseconds; requests of one\n"
    "        connection are answered in order. Binds are answered at once. Default: 0.\n"
    "    --close-after N\n"
    "        Close a connection after answering N requests. Default: 0 (never).\n"
    "    --reject-bind\n"
    "        Answer every bind and alter_context with all items provider-rejected.\n"
    "    --hang\n"
    "        Accept connections and read, but never answer anything. SIGUSR1\n"
    "        toggles this mode at run time.\n"
    "    --idle-timeout SEC\n"
    "        Close a connection after SEC seconds without input (a delayed answer\n"
    "        still pending does not count as idle). 0 = never. Default: %d.\n"
    "    --activation-interval MIN\n"
    "        VLActivationInterval in answers, minutes. Default: %d.\n"
    "    --renewal-interval MIN\n"
    "        VLRenewalInterval in answers, minutes. Default: %d.\n"
    "    --count-window-days D\n"
    "        A CMID is counted for D days after it was last seen (a decimal number,\n"
    "        so tests can use fractions of a day). Default: %g.\n"
    "    --log FILE\n"
    "        Append the JSON lines log to FILE; \"-\" = stdout. Default: stderr.\n"
    "    -h, --help\n"
    "        Print this text and exit.\n"
    "    -V, --version\n"
    "        Print the version and exit.\n"
    "\n"
    "LOG\n"
    "    One JSON object per line, buffered and flushed at least once a second:\n"
    "    {\"event\":\"listening\",\"addr\",\"name\",\"epid\"} per listener at start-up;\n"
    "    {\"event\":\"request\",\"ts\",\"peer\",\"host\",\"epid\",\"cmid\",\"app_id\",\"app\",\n"
    "     \"kms_id\",\"version\",\"ndr\",\"workstation\",\"hresult\",\"count\"} per request;\n"
    "    {\"event\":\"fault\",...} for RPC faults, {\"event\":\"protocol_error\",\"why\"}\n"
    "    before closing a connection that sent bad bytes, {\"event\":\"hang\",\"on\"}\n"
    "    on SIGUSR1 and {\"event\":\"exit\",\"requests\"} at exit.\n"
    "\n"
    "SIGNALS\n"
    "    SIGUSR1 toggles hang mode. SIGTERM and SIGINT close everything and exit 0.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 on a clean exit, 1 when start-up fails, 2 on a usage error.\n";

enum {
    OPT_PORT_FILE = 256,
    OPT_EPID,
    OPT_HWID,
    OPT_NDR32_ONLY,
    OPT_NO_BTFN,
    OPT_REFUSE,
    OPT_DELAY,
    OPT_CLOSE_AFTER,
    OPT_REJECT_BIND,
    OPT_HANG,
    OPT_IDLE,
    OPT_ACT,
    OPT_RENEW,
    OPT_WINDOW,
    OPT_LOG,
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, 'l'},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"name", required_argument, NULL, 'N'},
    {"epid", required_argument, NULL, OPT_EPID},
    {"hwid", required_argument, NULL, OPT_HWID},
    {"ndr32-only", no_argument, NULL, OPT_NDR32_ONLY},
    {"no-btfn", no_argument, NULL, OPT_NO_BTFN},
    {"refuse-kmsid", required_argument, NULL, OPT_REFUSE},
    {"delay-ms", required_argument, NULL, OPT_DELAY},
    {"close-after", required_argument, NULL, OPT_CLOSE_AFTER},
    {"reject-bind", no_argument, NULL, OPT_REJECT_BIND},
    {"hang", no_argument, NULL, OPT_HANG},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"activation-interval", required_argument, NULL, OPT_ACT},
    {"renewal-interval", required_argument, NULL, OPT_RENEW},
    {"count-window-days", required_argument, NULL, OPT_WINDOW},
    {"log", required_argument, NULL, OPT_LOG},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void print_usage(FILE *f)
{
    fprintf(f, usage_text, CMID_MAX_APPS, CMID_MAX_PER_APP, STUB_DEFAULT_IDLE_S,
            STUB_DEFAULT_ACT_MIN, STUB_DEFAULT_RENEW_MIN, STUB_DEFAULT_WINDOW_DAYS);
}

static int parse_uint(const char *opt, const char *s, unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v > max) {
        fprintf(stderr, "kms-stubhost: %s wants a whole number from 0 to %lu, not \"%s\"\n", opt,
                max, s);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int add_ptr(const char ***arr, size_t *n, const char *s)
{
    const char **a = realloc(*arr, (*n + 1) * sizeof(*a));
    if (!a)
        return -1;
    a[(*n)++] = s;
    *arr = a;
    return 0;
}

static int add_refuse(struct stub_config *c, const char *s)
{
    uint8_t id[16];
    if (kr_guid_parse(s, id) != 0) {
        fprintf(stderr, "kms-stubhost: --refuse-kmsid wants a GUID, not \"%s\"\n", s);
        return -1;
    }
    uint8_t(*r)[16] = realloc(c->refuse, (c->n_refuse + 1) * sizeof(*r));
    if (!r)
        return -1;
    memcpy(r[c->n_refuse++], id, 16);
    c->refuse = r;
    return 0;
}

static int parse_one(struct stub_config *c, int opt, const char *arg)
{
    unsigned u;
    char *end;
    switch (opt) {
    case 'l':
        return add_ptr(&c->listen, &c->n_listen, arg);
    case OPT_PORT_FILE:
        c->port_file = arg;
        return 0;
    case 'N':
        if (!*arg) {
            fprintf(stderr, "kms-stubhost: --name must not be empty\n");
            return -1;
        }
        c->name = arg;
        return 0;
    case OPT_EPID: {
        const char *why = NULL;
        if (stub_epid_check(arg, &why) != 0) {
            fprintf(stderr, "kms-stubhost: --epid: %s\n", why);
            return -1;
        }
        snprintf(c->epid, sizeof(c->epid), "%s", arg);
        return 0;
    }
    case OPT_HWID:
        if (strlen(arg) != 16 || kr_hex_decode(arg, c->hwid, sizeof(c->hwid)) != 8) {
            fprintf(stderr, "kms-stubhost: --hwid wants 16 hex digits, not \"%s\"\n", arg);
            return -1;
        }
        return 0;
    case OPT_NDR32_ONLY:
        c->ndr32_only = 1;
        return 0;
    case OPT_NO_BTFN:
        c->no_btfn = 1;
        return 0;
    case OPT_REFUSE:
        return add_refuse(c, arg);
    case OPT_DELAY:
        return parse_uint("--delay-ms", arg, 3600000, &c->delay_ms);
    case OPT_CLOSE_AFTER:
        return parse_uint("--close-after", arg, UINT_MAX, &c->close_after);
    case OPT_REJECT_BIND:
        c->reject_bind = 1;
        return 0;
    case OPT_HANG:
        c->hang = 1;
        return 0;
    case OPT_IDLE:
        return parse_uint("--idle-timeout", arg, 86400, &c->idle_timeout_s);
    case OPT_ACT:
        if (parse_uint("--activation-interval", arg, UINT32_MAX, &u) != 0)
            return -1;
        c->activation_interval = u;
        return 0;
    case OPT_RENEW:
        if (parse_uint("--renewal-interval", arg, UINT32_MAX, &u) != 0)
            return -1;
        c->renewal_interval = u;
        return 0;
    case OPT_WINDOW:
        errno = 0;
        c->window_days = strtod(arg, &end);
        if (errno || end == arg || *end || !(c->window_days > 0) || c->window_days > 36500) {
            fprintf(stderr,
                    "kms-stubhost: --count-window-days wants a number of days > 0 and "
                    "<= 36500, not \"%s\"\n",
                    arg);
            return -1;
        }
        return 0;
    case OPT_LOG:
        c->log_path = arg;
        return 0;
    default:
        return -1;
    }
}

int stub_options_parse(int argc, char **argv, struct stub_config *c)
{
    memset(c, 0, sizeof(*c));
    c->name = STUB_DEFAULT_NAME;
    kr_hex_decode(STUB_DEFAULT_HWID, c->hwid, sizeof(c->hwid));
    c->idle_timeout_s = STUB_DEFAULT_IDLE_S;
    c->activation_interval = STUB_DEFAULT_ACT_MIN;
    c->renewal_interval = STUB_DEFAULT_RENEW_MIN;
    c->window_days = STUB_DEFAULT_WINDOW_DAYS;

    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "l:N:hV", long_opts, NULL)) != -1) {
        if (opt == 'h') {
            print_usage(stdout);
            return 1;
        }
        if (opt == 'V') {
            printf("kms-stubhost %s\n", KR_VERSION);
            return 1;
        }
        if (opt == '?' || parse_one(c, opt, optarg) != 0) {
            fprintf(stderr, "Try 'kms-stubhost --help' for the options.\n");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kms-stubhost: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (c->n_listen == 0 && add_ptr(&c->listen, &c->n_listen, STUB_DEFAULT_LISTEN) != 0)
        return -1;
    if (!c->epid[0])
        stub_epid_derive(c->name, c->epid);
    return 0;
}

void stub_config_free(struct stub_config *c)
{
    free(c->listen);
    free(c->refuse);
    c->listen = NULL;
    c->refuse = NULL;
    c->n_listen = c->n_refuse = 0;
}
