/* test_metrics.c - Prometheus metrics (src/metrics): the exposition is
 * checked by a strict parser of the text format (HELP and TYPE before the
 * samples of each family, one TYPE per family, counter names ending in
 * _total, valid names and labels, escaped label values, parseable numbers,
 * no duplicate series, cumulative histogram buckets), the values fed by the
 * kr_metrics_* calls and read from a relay, the label-table bound, the
 * metrics.listen setting, and the HTTP server on loopback. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <CUnit/CUnit.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "kmsrelay/audit.h"
#include "kmsrelay/conf.h"
#include "kmsrelay/err.h"
#include "kmsrelay/kms.h"
#include "kmsrelay/metrics.h"
#include "exposition/exposition.h"
#include "metrics/counters.h"
#include "relay/relay.h"
#include "testutil.h"

/* ---- a strict parser of the text format --------------------------------- */

#define MAXS 2048

struct series {
    char name[128];
    char labels[512]; /* as written, between the braces */
    double v;
};

struct expo {
    struct series s[MAXS];
    size_t n;
    char fam[256][128];
    char type[256][16];
    bool help[256];
    size_t nfam;
    int errors;
};

static void bad(struct expo *e, const char *why, const char *line)
{
    fprintf(stderr, "exposition: %s: %.120s\n", why, line);
    e->errors++;
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

static int fam_index(struct expo *e, const char *name)
{
    for (size_t i = 0; i < e->nfam; i++)
        if (strcmp(e->fam[i], name) == 0)
            return (int)i;
    return -1;
}

/* The family a sample belongs to (histograms: strip _bucket/_sum/_count). */
static int sample_family(struct expo *e, const char *name)
{
    int i = fam_index(e, name);
    if (i >= 0)
        return i;
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(name), m = strlen(sfx[k]);
        char base[128];
        if (n > m && strcmp(name + n - m, sfx[k]) == 0 && n - m < sizeof(base)) {
            memcpy(base, name, n - m);
            base[n - m] = '\0';
            i = fam_index(e, base);
            if (i >= 0 && strcmp(e->type[i], "histogram") == 0)
                return i;
        }
    }
    return -1;
}

/* Parses {a="x",b="y\"z"}; returns the length consumed or -1. */
static int parse_labels(const char *p, char *out, size_t cap)
{
    const char *start = p;
    if (*p != '{')
        return 0;
    p++;
    while (*p != '}') {
        const char *k = p;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (p == k || !name_ok(k, (size_t)(p - k)) || *p++ != '=' || *p++ != '"')
            return -1;
        while (*p != '"') {
            if (!*p || *p == '\n')
                return -1;
            if (*p == '\\') {
                p++;
                if (*p != '\\' && *p != '"' && *p != 'n')
                    return -1;
            }
            p++;
        }
        p++;
        if (*p == ',')
            p++;
        else if (*p != '}')
            return -1;
    }
    p++;
    snprintf(out, cap, "%.*s", (int)(p - start), start);
    return (int)(p - start);
}

static void parse(struct expo *e, const char *text)
{
    memset(e, 0, sizeof(*e));
    while (*text) {
        const char *nl = strchr(text, '\n');
        if (!nl) {
            bad(e, "last line without newline", text);
            return;
        }
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)(nl - text), text);
        text = nl + 1;
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            char name[128], rest[900];
            if (sscanf(line + 7, "%127s %899[^\n]", name, rest) != 2) {
                bad(e, "HELP/TYPE without text", line);
                continue;
            }
            int i = fam_index(e, name);
            if (i < 0) {
                if (e->nfam == 256)
                    return;
                i = (int)e->nfam++;
                snprintf(e->fam[i], sizeof(e->fam[i]), "%s", name);
            }
            if (line[2] == 'H') {
                if (e->help[i])
                    bad(e, "second HELP", line);
                e->help[i] = true;
            } else {
                if (e->type[i][0])
                    bad(e, "second TYPE", line);
                if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram"))
                    bad(e, "bad type", line);
                snprintf(e->type[i], sizeof(e->type[i]), "%.15s", rest);
                if (strcmp(rest, "counter") == 0 &&
                    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") != 0))
                    bad(e, "counter without _total", line);
                if (strcmp(rest, "counter") != 0 && strstr(name, "_total"))
                    bad(e, "_total on a non-counter", line);
            }
            if (strncmp(name, "kmsrelay_", 9) != 0)
                bad(e, "name without kmsrelay_ prefix", line);
            continue;
        }
        if (line[0] == '#' || line[0] == '\0') {
            bad(e, "comment or empty line", line);
            continue;
        }
        struct series *s = &e->s[e->n];
        size_t nl2 = strcspn(line, "{ ");
        if (!name_ok(line, nl2) || nl2 >= sizeof(s->name)) {
            bad(e, "bad metric name", line);
            continue;
        }
        memcpy(s->name, line, nl2);
        s->name[nl2] = '\0';
        int ll = parse_labels(line + nl2, s->labels, sizeof(s->labels));
        if (ll < 0) {
            bad(e, "bad labels", line);
            continue;
        }
        const char *v = line + nl2 + ll;
        char *end;
        if (*v++ != ' ') {
            bad(e, "no space before the value", line);
            continue;
        }
        if (strcmp(v, "+Inf") == 0)
            s->v = INFINITY;
        else {
            errno = 0;
            s->v = strtod(v, &end);
            if (errno || *end || end == v)
                bad(e, "bad value", line);
        }
        int f = sample_family(e, s->name);
        if (f < 0 || !e->help[f] || !e->type[f][0])
            bad(e, "sample before its HELP and TYPE", line);
        for (size_t i = 0; i < e->n; i++)
            if (strcmp(e->s[i].name, s->name) == 0 && strcmp(e->s[i].labels, s->labels) == 0)
                bad(e, "duplicate series", line);
        if (e->n < MAXS - 1)
            e->n++;
    }
}

/* Value of one series, NAN when absent. labels: exactly as rendered. */
static double val(const struct expo *e, const char *name, const char *labels)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels ? labels : "") == 0)
            return e->s[i].v;
    return NAN;
}

static char *render(struct kr_relay *r)
{
    struct evbuffer *b = evbuffer_new();
    CU_ASSERT_EQUAL(kr_metrics_render(r, b), 0);
    return kr_test_buffer_text(b);
}

/* ---- a relay with two hosts --------------------------------------------- */

static struct kr_conf conf;
static struct kr_host ha, hb;
static struct kr_host *hp[2] = {&ha, &hb};

static void fake_relay(struct kr_relay *r)
{
    memset(r, 0, sizeof(*r));
    kr_conf_defaults(&conf);
    r->conf = &conf;
    r->started_wall = 1700000000;
    memset(&ha, 0, sizeof(ha));
    memset(&hb, 0, sizeof(hb));
    strcpy(ha.conf.name, "kms-a");
    ha.conf.weight = 2;
    ha.health = KR_HEALTH_UP;
    ha.last_check_latency_us = 1500;
    ha.stats.checks_ok = 10;
    ha.stats.requests = 7;
    memcpy(ha.counts[0].app_id, kr_kms_app_windows, 16);
    ha.counts[0].count = 31;
    ha.counts[0].when_us = 1;
    memset(ha.counts[1].app_id, 0x77, 16); /* an unknown application */
    ha.counts[1].count = 2;
    ha.counts[1].when_us = 1;
    strcpy(hb.conf.name, "kms-b");
    hb.conf.weight = 1;
    hb.health = KR_HEALTH_DOWN;
    hb.admin = KR_ADMIN_MAINT;
    hb.stats.errors = 3;
    r->hosts = hp;
    r->n_hosts = 2;
    r->stats.requests = 6;
    r->stats.retries = 2;
    r->stats.failovers = 1;
    r->stats.assists = 4;
    r->stats.reroutes_refused = 5;
    r->stats.conns_open = 3;
    r->stats.conns_denied = 8;
    r->stats.conns_limited = 9;
    r->stats.rate_limited = 11;
}

static void feed(void)
{
    kr_metrics_reset();
    for (int i = 0; i < 3; i++)
        kr_metrics_activation("kms-a", kr_kms_app_windows, 6, 0, 0, 1500);
    kr_metrics_activation("kms-b", kr_kms_app_office2013, 5, 0xC004F042u, 0, 20000);
    kr_metrics_activation(NULL, kr_kms_app_windows, 4, 0, 0x6BA, 8000000);
    uint8_t other[16];
    memset(other, 0x42, 16);
    kr_metrics_activation("kms-a", other, 7, 0, 0, 30000000); /* beyond the last bucket */
    kr_metrics_activation("we\"ird\\host\nname", kr_kms_app_office2010, 4, 0, 0x1C010003, 0);
    kr_metrics_dns_zone("example.test.", 1, "published");
    kr_metrics_dns_zone("other.test.", 0, "withdrawn");
    kr_metrics_dns_zone("example.test.", 1, "published"); /* same zone: updated */
    kr_metrics_dns_update(0);
    kr_metrics_dns_update(0);
    kr_metrics_dns_update(1);
    kr_metrics_dns_update(99); /* ignored */
    unsigned cls[KR_AUDIT_NCLASS] = {1, 0, 0, 2, 1, 1, 0};
    kr_metrics_dns_audit(cls, KR_AUDIT_NCLASS, 1700000100);
}

static struct expo ex;

static void test_exposition(void)
{
    struct kr_relay r;
    fake_relay(&r);
    feed();
    char *text = render(&r);
    parse(&ex, text);
    if (ex.errors || getenv("KR_METRICS_DUMP"))
        fprintf(stderr, "%s", text);
    CU_ASSERT_EQUAL(ex.errors, 0);
    CU_ASSERT(ex.n > 60);

    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activations_total",
                        "{host=\"kms-a\",application=\"Windows\",version=\"6\",result=\"ok\"}"),
                    3);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activations_total",
                        "{host=\"kms-b\",application=\"Office 2013+\",version=\"5\","
                        "result=\"0xC004F042\"}"),
                    1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activations_total",
                        "{host=\"none\",application=\"Windows\",version=\"4\","
                        "result=\"unavailable\"}"),
                    1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activations_total",
                        "{host=\"kms-a\",application=\"other\",version=\"other\",result=\"ok\"}"),
                    1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activations_total",
                        "{host=\"we\\\"ird\\\\host\\nname\",application=\"Office 2010\","
                        "version=\"4\",result=\"fault\"}"),
                    1);
    /* histogram: cumulative, +Inf = count, sum in seconds */
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activation_duration_seconds_bucket", "{le=\"0.001\"}"), 1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activation_duration_seconds_bucket", "{le=\"0.0025\"}"), 4);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activation_duration_seconds_bucket", "{le=\"0.025\"}"), 5);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activation_duration_seconds_bucket", "{le=\"10\"}"), 6);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activation_duration_seconds_bucket", "{le=\"+Inf\"}"), 7);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activation_duration_seconds_count", NULL), 7);
    CU_ASSERT(fabs(val(&ex, "kmsrelay_activation_duration_seconds_sum", NULL) - 38.0245) < 1e-9);
    double prev = 0;
    for (size_t i = 0; i < ex.n; i++)
        if (strcmp(ex.s[i].name, "kmsrelay_activation_duration_seconds_bucket") == 0) {
            CU_ASSERT(ex.s[i].v >= prev);
            prev = ex.s[i].v;
        }

    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_retries_total", NULL), 2);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_failovers_total", NULL), 1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_threshold_assists_total", NULL), 4);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_product_reroutes_total", NULL), 5);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_connections_open", NULL), 3);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_connections_denied_total", "{reason=\"allow_list\"}"), 8);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_limits_hit_total", "{limit=\"rate\"}"), 11);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_limits_hit_total", "{limit=\"connections\"}"), 9);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_up", "{host=\"kms-a\"}"), 1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_up", "{host=\"kms-b\"}"), 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_health", "{host=\"kms-b\",state=\"down\"}"), 1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_health", "{host=\"kms-b\",state=\"up\"}"), 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_admin", "{host=\"kms-b\",state=\"maint\"}"), 1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_admin", "{host=\"kms-a\",state=\"ready\"}"), 1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_weight", "{host=\"kms-a\"}"), 2);
    CU_ASSERT(fabs(val(&ex, "kmsrelay_host_check_duration_seconds", "{host=\"kms-a\"}") - 0.0015) <
              1e-12);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_checks_total", "{host=\"kms-a\",result=\"ok\"}"), 10);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_errors_total", "{host=\"kms-b\"}"), 3);
    CU_ASSERT_EQUAL(
        val(&ex, "kmsrelay_host_reported_clients", "{host=\"kms-a\",application=\"Windows\"}"), 31);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_reported_clients",
                        "{host=\"kms-a\",application=\"77777777-7777-7777-7777-777777777777\"}"),
                    2);
    /* the threshold next to each reported count: 25 for Windows, 5 else */
    CU_ASSERT_EQUAL(
        val(&ex, "kmsrelay_host_activation_threshold", "{host=\"kms-a\",application=\"Windows\"}"),
        25);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_activation_threshold",
                        "{host=\"kms-a\",application=\"77777777-7777-7777-7777-777777777777\"}"),
                    5);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_client_findings", "{kind=\"clock_skew\"}"), 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_pins", NULL), 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_pins_timestamp_seconds", NULL), 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_dns_zones", NULL), 2);
    CU_ASSERT_EQUAL(
        val(&ex, "kmsrelay_dns_published", "{zone=\"example.test.\",state=\"published\"}"), 1);
    CU_ASSERT_EQUAL(
        val(&ex, "kmsrelay_dns_published", "{zone=\"other.test.\",state=\"withdrawn\"}"), 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_dns_updates_total", "{result=\"ok\"}"), 2);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_dns_updates_total", "{result=\"key\"}"), 1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_dns_updates_total", "{result=\"network\"}"), 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_dns_audit_findings", "{class=\"AUTHORIZED_OK\"}"), 2);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_dns_audit_findings", "{class=\"ROGUE\"}"), 1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_dns_audit_timestamp_seconds", NULL), 1700000100);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_start_time_seconds", NULL), 1700000000);
    CU_ASSERT_EQUAL(
        val(&ex, "kmsrelay_build_info", "{version=\"" KR_VERSION "\",instance=\"kmsrelay\"}"), 1);
    free(text);
}

/* Before anything happened every family is there, DNS ones with zeros. */
static void test_zero(void)
{
    struct kr_relay r;
    fake_relay(&r);
    r.n_hosts = 0;
    kr_metrics_reset();
    char *text = render(&r);
    parse(&ex, text);
    CU_ASSERT_EQUAL(ex.errors, 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_dns_zones", NULL), 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_dns_updates_total", "{result=\"ok\"}"), 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_dns_audit_findings", "{class=\"STALE_DEAD\"}"), 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activation_duration_seconds_count", NULL), 0);
    CU_ASSERT(fam_index(&ex, "kmsrelay_activations_total") >= 0);
    CU_ASSERT(fam_index(&ex, "kmsrelay_host_up") >= 0);
    free(text);
    /* no relay at all: the module's own counters only, still valid */
    text = render(NULL);
    parse(&ex, text);
    CU_ASSERT_EQUAL(ex.errors, 0);
    free(text);
}

/* Distinct label sets beyond the table go to the overflow counter. */
static void test_overflow(void)
{
    char host[32];
    kr_metrics_reset();
    for (int i = 0; i < MX_ACT_SLOTS + 10; i++) {
        snprintf(host, sizeof(host), "h%d", i);
        kr_metrics_activation(host, kr_kms_app_windows, 6, 0, 0, 10);
    }
    kr_metrics_activation("h0", kr_kms_app_windows, 6, 0, 0, 10); /* an existing set still counts */
    char *text = render(NULL);
    parse(&ex, text);
    CU_ASSERT_EQUAL(ex.errors, 0);
    double sum = 0;
    for (size_t i = 0; i < ex.n; i++)
        if (strcmp(ex.s[i].name, "kmsrelay_activations_total") == 0)
            sum += ex.s[i].v;
    double over = val(&ex, "kmsrelay_activations_unlabelled_total", NULL);
    CU_ASSERT(over > 0);
    CU_ASSERT_EQUAL(sum + over, MX_ACT_SLOTS + 11);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activation_duration_seconds_count", NULL),
                    MX_ACT_SLOTS + 11);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_activations_total",
                        "{host=\"h0\",application=\"Windows\",version=\"6\",result=\"ok\"}"),
                    2);
    free(text);
    kr_metrics_reset();
}

/* metrics.listen: off by default, an address when set, errors at file:line. */
static void test_conf(void)
{
    char path[] = "/tmp/kr-metrics-conf-XXXXXX";
    char err[2048] = "";
    struct kr_conf *c = NULL;
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    const char *good = "hosts = ( { name = \"a\"; address = \"127.0.0.1:1688\"; } );\n"
                       "metrics = { listen = \"127.0.0.1:9688\"; };\n";
    CU_ASSERT(write(fd, good, strlen(good)) == (ssize_t)strlen(good));
    close(fd);
    CU_ASSERT_EQUAL(kr_conf_load(path, &c, err, sizeof(err)), 0);
    if (c)
        CU_ASSERT_STRING_EQUAL(c->metrics_listen, "127.0.0.1:9688");
    free(c);
    c = NULL;

    fd = open(path, O_WRONLY | O_TRUNC);
    const char *badc = "metrics = {\n  listen = \"127.0.0.1:99999\";\n  lisen = 1;\n};\n";
    CU_ASSERT(write(fd, badc, strlen(badc)) == (ssize_t)strlen(badc));
    close(fd);
    CU_ASSERT_EQUAL(kr_conf_load(path, &c, err, sizeof(err)), KR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2: metrics.listen"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3: unknown setting \"lisen\" in metrics"));
    unlink(path);

    struct kr_conf d;
    kr_conf_defaults(&d);
    CU_ASSERT_STRING_EQUAL(d.metrics_listen, ""); /* off by default */
}

/* The HTTP server on loopback, driven on one thread: the event loop runs in
 * non-blocking steps while a plain socket talks to it. */
static char *http_get(struct event_base *base, uint16_t port, const char *req)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CU_ASSERT(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t cap = 1 << 20, len = 0;
    char *buf = calloc(1, cap);
    for (int i = 0; i < 5000; i++) { /* bounded: about 5 s */
        event_base_loop(base, EVLOOP_NONBLOCK);
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n == 0)
            break;
        if (n > 0)
            len += (size_t)n;
        else
            usleep(1000);
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

static void test_server(void)
{
    struct event_base *base = event_base_new();
    struct kr_metrics_server *m = NULL;
    struct kr_relay r;
    char err[256] = "";
    fake_relay(&r);
    feed();

    /* off: no server */
    CU_ASSERT_EQUAL(kr_metrics_server_start(base, &r, &conf, &m, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NULL(m);
    snprintf(conf.metrics_listen, sizeof(conf.metrics_listen), "127.0.0.1:0");
    CU_ASSERT_EQUAL_FATAL(kr_metrics_server_start(base, &r, &conf, &m, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    const char *addr = kr_metrics_server_addr(m);
    CU_ASSERT(strncmp(addr, "127.0.0.1:", 10) == 0);
    uint16_t port = (uint16_t)atoi(addr + 10);
    CU_ASSERT(port > 0);

    char *resp =
        http_get(base, port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CU_ASSERT(strncmp(resp, "HTTP/1.1 200", 12) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(resp, "Content-Type: text/plain; version=0.0.4"));
    char *body = strstr(resp, "\r\n\r\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    parse(&ex, body + 4);
    CU_ASSERT_EQUAL(ex.errors, 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_retries_total", NULL), 2);
    free(resp);

    resp = http_get(base, port, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CU_ASSERT(strncmp(resp, "HTTP/1.1 404", 12) == 0);
    free(resp);
    resp = http_get(base, port,
                    "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n");
    CU_ASSERT(strncmp(resp, "HTTP/1.1 501", 12) == 0); /* evhttp's answer to a method not allowed */
    free(resp);

    /* reload: same address keeps the server, "" stops it, a bad one fails */
    struct kr_metrics_server *before = m;
    CU_ASSERT_EQUAL(kr_metrics_server_apply(&m, base, &r, &conf, err, sizeof(err)), 0);
    CU_ASSERT_PTR_EQUAL(m, before);
    struct kr_conf c2 = conf;
    snprintf(c2.metrics_listen, sizeof(c2.metrics_listen), "192.0.2.1:1"); /* not ours */
    CU_ASSERT_EQUAL(kr_metrics_server_apply(&m, base, &r, &c2, err, sizeof(err)), KR_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot listen"));
    c2.metrics_listen[0] = '\0';
    CU_ASSERT_EQUAL(kr_metrics_server_apply(&m, base, &r, &c2, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NULL(m);
    kr_metrics_server_free(m);
    conf.metrics_listen[0] = '\0';
    event_base_free(base);
    kr_metrics_reset();
}

/* The background pin count also counts the report's clock-skew and
 * cloned-image clients (within 30 days), and a raised N_Policy raises the
 * threshold gauge. */
static void test_client_findings(void)
{
    char dir[] = "/tmp/kr-metrics-XXXXXX", cmd[64];
    struct kr_store *st = NULL;
    const char *why = NULL;
    struct kr_relay r;
    int64_t now = kr_wall_s();
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &st, &why), 0);
    for (int i = 0; i < 5; i++) {
        struct kr_pin p;
        memset(&p, 0, sizeof(p));
        p.cmid[0] = (uint8_t)(i + 1);
        strcpy(p.host, "kms-a");
        p.first_seen = p.last_seen = i == 4 ? now - 40 * 86400 : now - 60; /* #4 is old */
        p.skew_s = i == 0 ? 5 * 3600 : i == 1 ? -(4 * 3600 + 1) : i == 4 ? 9 * 3600 : 60;
        kr_pin_note_name(&p, "ws-a", p.last_seen);
        if (i == 2 || i == 4)
            kr_pin_note_name(&p, "ws-b", p.last_seen);
        CU_ASSERT_EQUAL(kr_store_pin_put(st, &p), 0);
    }
    CU_ASSERT_EQUAL(kr_store_flush(st, &why), 0);
    kr_metrics_reset();
    fake_relay(&r);
    ha.counts[0].n_policy = 40;
    r.store = st;
    struct event_base *base = event_base_new();
    r.base = base;
    free(render(&r)); /* starts the count; its result arrives on the loop */
    char *text = NULL;
    for (int i = 0; i < 500; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        text = render(&r);
        if (!strstr(text, "kmsrelay_host_pins_timestamp_seconds 0\n"))
            break;
        free(text);
        text = NULL;
        usleep(10 * 1000);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    parse(&ex, text);
    CU_ASSERT_EQUAL(ex.errors, 0);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_client_findings", "{kind=\"clock_skew\"}"), 2);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_client_findings", "{kind=\"cloned_image\"}"), 1);
    CU_ASSERT_EQUAL(val(&ex, "kmsrelay_host_pins", "{host=\"kms-a\"}"), 5);
    CU_ASSERT_EQUAL(
        val(&ex, "kmsrelay_host_activation_threshold", "{host=\"kms-a\",application=\"Windows\"}"),
        40);
    free(text);
    kr_metrics_reset();
    event_base_free(base);
    kr_store_close(st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

KR_SUITE(metrics)
{
    CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
    CU_add_test(s, "exposition format and values", test_exposition);
    CU_add_test(s, "every family present before any event", test_zero);
    CU_add_test(s, "label table bound", test_overflow);
    CU_add_test(s, "metrics.listen setting", test_conf);
    CU_add_test(s, "HTTP server and reload", test_server);
    CU_add_test(s, "client findings and thresholds", test_client_findings);
}
