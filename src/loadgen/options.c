/*
 * options.c - kms-loadgen's command line. Every option, its default and its
 * meaning live in the help text below; a bad value exits 2 with a message
 * that names the option.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/guid.h"
#include "loadgen/loadgen.h"

static const char help_text[] =
    "usage: kms-loadgen -t ADDR:PORT [-t ...] [options]\n"
    "\n"
    "Simulated KMS clients: builds real V4/V5/V6 activation requests (integrity fields\n"
    "zero), sends them over DCE/RPC and checks every answer.\n"
    "\n"
    "Targets and volume:\n"
    "  -t, --target ADDR:PORT   KMS host or proxy; repeatable. With several targets a\n"
    "                           client always goes to target FNV-1a(cmid) % n\n"
    "      --source ADDR        connect from this local address (e.g. 127.0.0.2;\n"
    "                           default: the kernel's choice)\n"
    "  -n, --activations N      total activations (default 1000)\n"
    "  -c, --concurrency C      parallel connections (default 8)\n"
    "  -k, --clients K          client population size (default N: every activation a\n"
    "                           new CMID); activation i is made by client i % K, so\n"
    "                           K < N means renewals of the same CMIDs\n"
    "      --per-conn R         requests per connection (default 1: a new connection per\n"
    "                           activation, as Windows does; R > 1 as vlmcs does)\n"
    "      --rate R             open loop: start R activations per second (default 0:\n"
    "                           closed loop, C activations always in flight)\n"
    "      --timeout-ms T       deadline per activation, connect included (default 10000)\n"
    "\n"
    "Population (all choices derive from the seed: same seed = same population):\n"
    "      --seed S             seed for CMIDs, IVs, versions, products (default 1)\n"
    "      --cmid GUID          fixed CMID for the next of the first clients; repeatable\n"
    "      --mix LIST           protocol version weights (default v6:60,v5:25,v4:15);\n"
    "                           versions without an allowed product are dropped\n"
    "      --products LIST      allowed products, e.g. win10,office2016 (default all;\n"
    "                           see --list-products)\n"
    "      --vm-ratio P         fraction of clients flagged as VMs (default 0.2)\n"
    "      --ws-prefix TEXT     workstation name prefix (default \"pc-\"); the name is\n"
    "                           prefix + client index + \".example.test\"\n"
    "      --skew-clients N     the first N clients send a skewed request time (default 0)\n"
    "      --skew-seconds S     their clock offset in seconds, may be negative\n"
    "                           (default 18000)\n"
    "      --clone-clients N    the last N clients reuse the CMIDs (and products) of the\n"
    "                           first N but keep their own workstation names (default 0)\n"
    "      --dual-office N      N machines activate Windows and Office with one CMID (as\n"
    "                           Windows 8+ with Office 2013+ do): the first N clients are\n"
    "                           win10 and the N clients before the clones are their\n"
    "                           office2016 side, same CMID, name, VM flag and clock\n"
    "                           (default 0)\n"
    "      --prev-cmid GUID     every request names GUID as its previous CMID (a\n"
    "                           re-imaged machine's new CMID replacing an old one)\n"
    "\n"
    "Protocol:\n"
    "      --ndr MODE           ndr32: bind offers NDR32 only (1 item);\n"
    "                           win8:  bind NDR32+NDR64+BTFN (ctx 0/1/2), alter_context\n"
    "                                  for NDR32 if rejected, first request NDR32, later\n"
    "                                  ones NDR64, as Windows does;\n"
    "                           ndr64: same bind, every request NDR64 when accepted;\n"
    "                           mixed: a seeded choice of the three per connection\n"
    "                           (default mixed)\n"
    "      --allow-hresult HEX  an HRESULT that counts as ok (refused, not an error);\n"
    "                           repeatable (default none; 0 is always ok)\n"
    "\n"
    "Output:\n"
    "      --json FILE          per-client results and the summary as JSON (\"-\" = stdout)\n"
    "      --latency-file FILE  every answered activation's latency in microseconds,\n"
    "                           one per line, in completion order (for plots)\n"
    "  -q, --quiet              no text summary\n"
    "  -v, --verbose            print every error to stderr (default: the first 10)\n"
    "      --list-products      print the product table and exit\n"
    "  -h, --help               this text\n"
    "\n"
    "Latency: per activation, from connect start to the response with --per-conn 1;\n"
    "from request send to the response with --per-conn > 1; with --rate, from the\n"
    "activation's scheduled start (so waiting for a free slot counts). Latencies are\n"
    "taken over activations the host answered.\n"
    "\n"
    "Exit status: 0 when every activation was ok, 1 on any error, 2 on usage errors.\n";

enum {
    O_SEED = 256,
    O_CMID,
    O_MIX,
    O_PRODUCTS,
    O_NDR,
    O_PER_CONN,
    O_VM_RATIO,
    O_WS_PREFIX,
    O_SKEW_CLIENTS,
    O_SKEW_SECONDS,
    O_CLONE_CLIENTS,
    O_TIMEOUT,
    O_RATE,
    O_ALLOW,
    O_JSON,
    O_LIST,
    O_SOURCE,
    O_LATFILE,
    O_DUAL_OFFICE,
    O_PREV_CMID,
};

static const struct option long_opts[] = {
    {"target", required_argument, NULL, 't'},
    {"activations", required_argument, NULL, 'n'},
    {"concurrency", required_argument, NULL, 'c'},
    {"clients", required_argument, NULL, 'k'},
    {"seed", required_argument, NULL, O_SEED},
    {"cmid", required_argument, NULL, O_CMID},
    {"mix", required_argument, NULL, O_MIX},
    {"products", required_argument, NULL, O_PRODUCTS},
    {"ndr", required_argument, NULL, O_NDR},
    {"per-conn", required_argument, NULL, O_PER_CONN},
    {"vm-ratio", required_argument, NULL, O_VM_RATIO},
    {"ws-prefix", required_argument, NULL, O_WS_PREFIX},
    {"skew-clients", required_argument, NULL, O_SKEW_CLIENTS},
    {"skew-seconds", required_argument, NULL, O_SKEW_SECONDS},
    {"clone-clients", required_argument, NULL, O_CLONE_CLIENTS},
    {"dual-office", required_argument, NULL, O_DUAL_OFFICE},
    {"prev-cmid", required_argument, NULL, O_PREV_CMID},
    {"timeout-ms", required_argument, NULL, O_TIMEOUT},
    {"rate", required_argument, NULL, O_RATE},
    {"allow-hresult", required_argument, NULL, O_ALLOW},
    {"json", required_argument, NULL, O_JSON},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"list-products", no_argument, NULL, O_LIST},
    {"source", required_argument, NULL, O_SOURCE},
    {"latency-file", required_argument, NULL, O_LATFILE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

__attribute__((format(printf, 2, 3))) static int usage_error(const char *opt, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "kms-loadgen: %s: ", opt);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'kms-loadgen --help'.\n");
    return 2;
}

/* Unsigned integer in [lo, hi]; 0 or -1. */
static int parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    if (!s || *s == '\0' || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    if (!s || *s == '\0')
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_hresult(const char *s, uint32_t *out)
{
    char *end;
    if (!s || *s == '\0' || *s == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (errno || *end != '\0' || v > 0xFFFFFFFFull)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static void set_defaults(struct lg_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->activations = 1000;
    cfg->concurrency = 8;
    cfg->seed = 1;
    cfg->mix[0] = 15;
    cfg->mix[1] = 25;
    cfg->mix[2] = 60;
    cfg->product_mask = (1u << lg_n_products) - 1;
    cfg->ndr = LG_NDR_MIXED;
    cfg->per_conn = 1;
    cfg->vm_ratio = 0.2;
    cfg->ws_prefix = "pc-";
    cfg->skew_seconds = 18000;
    cfg->timeout_ms = 10000;
}

/* Cross-option checks once everything is read. */
static int validate(struct lg_config *cfg, int have_k)
{
    if (cfg->n_targets == 0)
        return usage_error("-t/--target", "at least one target ADDR:PORT is required");
    for (unsigned i = 0; cfg->have_source && i < cfg->n_targets; i++)
        if (cfg->targets[i].ss.ss_family != cfg->source.ss.ss_family)
            return usage_error("--source", "not of the same address family as every target");
    if (!have_k)
        cfg->clients = cfg->activations;
    if (cfg->n_fixed > cfg->clients)
        return usage_error("--cmid", "more fixed CMIDs than clients (-k)");
    if (cfg->skew_clients > cfg->clients)
        return usage_error("--skew-clients", "larger than the population (-k)");
    if ((uint64_t)cfg->clone_clients * 2 > cfg->clients)
        return usage_error("--clone-clients", "must be at most half the population (-k)");
    if ((uint64_t)cfg->dual_office * 2 + cfg->clone_clients > cfg->clients)
        return usage_error("--dual-office",
                           "2 N plus --clone-clients must fit in the population (-k)");
    unsigned usable = 0;
    for (unsigned v = 0; v < 3; v++) {
        int has = 0;
        for (unsigned i = 0; i < lg_n_products; i++)
            if ((cfg->product_mask & (1u << i)) && lg_products[i].ver_major == v + 4)
                has = 1;
        if (!has)
            cfg->mix[v] = 0;
        usable += cfg->mix[v];
    }
    if (usable == 0)
        return usage_error("--products", "no allowed product has a version in --mix");
    return 0;
}

/* The option handlers below return 0 (taken), 2 (usage error, printed) or
 * NOT_MINE (another group's option). */
#define NOT_MINE (-1)

static int add_target(struct lg_config *cfg, const char *arg)
{
    const char *why = NULL;
    if (cfg->n_targets >= LG_MAX_TARGETS)
        return usage_error("-t/--target", "at most %d targets", LG_MAX_TARGETS);
    if (kr_addr_parse(arg, AF_INET, &cfg->targets[cfg->n_targets], &why) != 0 ||
        strchr(arg, ':') == NULL ||
        kr_addr_port((const struct sockaddr *)&cfg->targets[cfg->n_targets].ss) == 0)
        return usage_error("-t/--target", "'%s' is not a numeric ADDR:PORT", arg);
    snprintf(cfg->target_text[cfg->n_targets], KR_ADDRSTRLEN, "%s", arg);
    cfg->n_targets++;
    return 0;
}

static int set_source(struct lg_config *cfg, const char *arg)
{
    /* an address without a port: bind to port 0 (the kernel picks) */
    char buf[KR_ADDRSTRLEN + 8];
    const char *why = NULL;
    snprintf(buf, sizeof(buf), strchr(arg, ':') ? "[%s]:0" : "%s:0", arg);
    if (kr_addr_parse(buf, AF_INET, &cfg->source, &why) != 0)
        return usage_error("--source", "'%s' is not a numeric address", arg);
    cfg->have_source = 1;
    return 0;
}

/* "Targets and volume" of the help text. */
static int opt_volume(int o, const char *arg, struct lg_config *cfg, int *have_k)
{
    uint64_t u;
    switch (o) {
    case 't':
        return add_target(cfg, arg);
    case O_SOURCE:
        return set_source(cfg, arg);
    case 'n':
        if (parse_uint(arg, 1, LG_MAX_ACTIVATIONS, &u) != 0)
            return usage_error("-n/--activations", "'%s' is not a number >= 1", arg);
        cfg->activations = (uint32_t)u;
        return 0;
    case 'c':
        if (parse_uint(arg, 1, 100000, &u) != 0)
            return usage_error("-c/--concurrency", "'%s' is not a number from 1 to 100000", arg);
        cfg->concurrency = (unsigned)u;
        return 0;
    case 'k':
        if (parse_uint(arg, 1, LG_MAX_ACTIVATIONS, &u) != 0)
            return usage_error("-k/--clients", "'%s' is not a number >= 1", arg);
        cfg->clients = (uint32_t)u;
        *have_k = 1;
        return 0;
    case O_PER_CONN:
        if (parse_uint(arg, 1, 1000000, &u) != 0)
            return usage_error("--per-conn", "'%s' is not a number from 1 to 1000000", arg);
        cfg->per_conn = (uint32_t)u;
        return 0;
    case O_RATE:
        if (parse_double(arg, 0.001, 10000000.0, &cfg->rate) != 0)
            return usage_error("--rate", "'%s' is not a rate from 0.001 to 1e7 per second", arg);
        return 0;
    case O_TIMEOUT:
        if (parse_uint(arg, 1, 3600000, &u) != 0)
            return usage_error("--timeout-ms", "'%s' is not a number from 1 to 3600000", arg);
        cfg->timeout_ms = (uint32_t)u;
        return 0;
    default:
        return NOT_MINE;
    }
}

static int add_cmid(struct lg_config *cfg, const char *arg)
{
    uint8_t g[16];
    if (kr_guid_parse(arg, g) != 0)
        return usage_error("--cmid", "'%s' is not a GUID", arg);
    void *p = realloc(cfg->fixed_cmids, (cfg->n_fixed + 1) * sizeof(*cfg->fixed_cmids));
    if (!p)
        return usage_error("--cmid", "out of memory");
    cfg->fixed_cmids = p;
    memcpy(cfg->fixed_cmids[cfg->n_fixed++], g, 16);
    return 0;
}

static int set_skew_seconds(struct lg_config *cfg, const char *arg)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || *arg == '\0' || *end != '\0' || v < -3153600000LL || v > 3153600000LL)
        return usage_error("--skew-seconds",
                           "'%s' is not a number of seconds "
                           "(at most 100 years either way)",
                           arg);
    cfg->skew_seconds = v;
    return 0;
}

/* "Population" of the help text. */
static int opt_population(int o, const char *arg, struct lg_config *cfg)
{
    const char *why = NULL;
    uint64_t u;
    switch (o) {
    case O_SEED:
        if (parse_uint(arg, 0, UINT64_MAX, &u) != 0)
            return usage_error("--seed", "'%s' is not an unsigned number", arg);
        cfg->seed = u;
        return 0;
    case O_CMID:
        return add_cmid(cfg, arg);
    case O_MIX:
        if (lg_mix_parse(arg, cfg->mix, &why) != 0)
            return usage_error("--mix", "%s", why);
        return 0;
    case O_PRODUCTS:
        if (lg_products_parse(arg, &cfg->product_mask, &why) != 0)
            return usage_error("--products", "%s", why);
        return 0;
    case O_VM_RATIO:
        if (parse_double(arg, 0.0, 1.0, &cfg->vm_ratio) != 0)
            return usage_error("--vm-ratio", "'%s' is not a fraction from 0 to 1", arg);
        return 0;
    case O_WS_PREFIX:
        /* 64 UTF-16 units hold prefix + 10 digits + ".example.test" + NUL. */
        if (strlen(arg) > 40)
            return usage_error("--ws-prefix", "'%s' is longer than 40 bytes", arg);
        cfg->ws_prefix = arg;
        return 0;
    case O_SKEW_CLIENTS:
        if (parse_uint(arg, 0, LG_MAX_ACTIVATIONS, &u) != 0)
            return usage_error("--skew-clients", "'%s' is not a number", arg);
        cfg->skew_clients = (uint32_t)u;
        return 0;
    case O_SKEW_SECONDS:
        return set_skew_seconds(cfg, arg);
    case O_CLONE_CLIENTS:
        if (parse_uint(arg, 0, LG_MAX_ACTIVATIONS, &u) != 0)
            return usage_error("--clone-clients", "'%s' is not a number", arg);
        cfg->clone_clients = (uint32_t)u;
        return 0;
    case O_DUAL_OFFICE:
        if (parse_uint(arg, 0, LG_MAX_ACTIVATIONS, &u) != 0)
            return usage_error("--dual-office", "'%s' is not a number", arg);
        cfg->dual_office = (uint32_t)u;
        return 0;
    case O_PREV_CMID:
        if (kr_guid_parse(arg, cfg->prev_cmid) != 0)
            return usage_error("--prev-cmid", "'%s' is not a GUID", arg);
        return 0;
    default:
        return NOT_MINE;
    }
}

static int set_ndr(struct lg_config *cfg, const char *arg)
{
    static const struct {
        const char *name;
        enum lg_ndr_mode mode;
    } modes[] = {
        {"ndr32", LG_NDR32}, {"win8", LG_NDR_WIN8}, {"ndr64", LG_NDR64}, {"mixed", LG_NDR_MIXED}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(arg, modes[i].name) == 0) {
            cfg->ndr = modes[i].mode;
            return 0;
        }
    return usage_error("--ndr", "'%s' is not ndr32, win8, ndr64 or mixed", arg);
}

static int add_allow(struct lg_config *cfg, const char *arg)
{
    uint32_t hr;
    if (parse_hresult(arg, &hr) != 0)
        return usage_error("--allow-hresult", "'%s' is not a 32-bit hex HRESULT", arg);
    void *p = realloc(cfg->allow_hr, (cfg->n_allow + 1) * sizeof(*cfg->allow_hr));
    if (!p)
        return usage_error("--allow-hresult", "out of memory");
    cfg->allow_hr = p;
    cfg->allow_hr[cfg->n_allow++] = hr;
    return 0;
}

/* "Protocol" and "Output" of the help text. */
static int opt_protocol_output(int o, const char *arg, struct lg_config *cfg)
{
    switch (o) {
    case O_NDR:
        return set_ndr(cfg, arg);
    case O_ALLOW:
        return add_allow(cfg, arg);
    case O_JSON:
        cfg->json_path = arg;
        return 0;
    case O_LATFILE:
        cfg->latency_path = arg;
        return 0;
    case 'q':
        cfg->quiet = 1;
        return 0;
    case 'v':
        cfg->verbose = 1;
        return 0;
    case O_LIST:
        cfg->list_products = 1;
        return 0;
    default:
        return NOT_MINE;
    }
}

int lg_options_parse(int argc, char **argv, struct lg_config *cfg)
{
    int have_k = 0;

    set_defaults(cfg);
    optind = 1;
    opterr = 0;
    for (;;) {
        int o = getopt_long(argc, argv, ":t:n:c:k:qvh", long_opts, NULL);
        if (o == -1)
            break;
        int rc = opt_volume(o, optarg, cfg, &have_k);
        if (rc == NOT_MINE)
            rc = opt_population(o, optarg, cfg);
        if (rc == NOT_MINE)
            rc = opt_protocol_output(o, optarg, cfg);
        if (rc != NOT_MINE) {
            if (rc != 0)
                return rc;
            continue;
        }
        if (o == 'h') {
            fputs(help_text, stdout);
            return 1;
        }
        if (o == ':')
            return usage_error(argv[optind - 1], "missing value");
        if (optopt) {
            char name[3] = {'-', (char)optopt, '\0'};
            return usage_error(name, "unknown option");
        }
        return usage_error(argv[optind - 1], "unknown option");
    }
    if (optind < argc)
        return usage_error(argv[optind], "unexpected argument");
    if (cfg->list_products) {
        lg_products_print(stdout);
        return 1;
    }
    return validate(cfg, have_k);
}

void lg_config_free(struct lg_config *cfg)
{
    free(cfg->fixed_cmids);
    free(cfg->allow_hr);
    cfg->fixed_cmids = NULL;
    cfg->allow_hr = NULL;
}
