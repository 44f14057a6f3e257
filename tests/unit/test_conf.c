/* test_conf.c - kmsrelayd's configuration (src/conf/): loading a libconfig
 * file with every setting, every kind of error reported as file:line,
 * @include, units, CIDR matching, command-line hosts, validation. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/conf.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "testutil.h"

static char tmpdir[256];
static char errbuf[8192];

static int suite_init(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kr-conf-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to tmpdir/name; returns the path (static buffer per call site). */
static const char *put(const char *name, const char *text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text as a file; returns the load result, errors in errbuf. */
static int load_text(const char *text, struct kr_conf **out)
{
    char path[300];
    put("t.conf", text, path, sizeof(path));
    errbuf[0] = '\0';
    return kr_conf_load(path, out, errbuf, sizeof(errbuf));
}

/* Expects exactly one error line, containing ":<line>: " and `needle`. */
static void expect_error(const char *text, int line, const char *needle)
{
    struct kr_conf *c = NULL;
    char want[64];
    int rc = load_text(text, &c);
    CU_ASSERT_EQUAL(rc, KR_ECONFIG);
    CU_ASSERT_PTR_NULL(c);
    snprintf(want, sizeof(want), "t.conf:%d: ", line);
    if (!strstr(errbuf, want) || !strstr(errbuf, needle))
        fprintf(stderr, "\n  want line %d and \"%s\", got: %s", line, needle, errbuf);
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, needle));
    free(c);
}

static const char full_conf[] =
    "# every setting\n"
    "instance_id = \"relay1\";\n"
    "state_dir = \"/tmp/kr-state\";\n"
    "listen = [ \"[::1]:11688\", \"127.0.0.1:0\" ];\n"
    "clients: { allow = [ \"127.0.0.0/8\", \"::1/128\" ]; max_connections = 500;\n"
    "  max_per_source = 10; rate = 5; burst = 9; idle_timeout = \"45s\"; header_timeout = \"2s\"; "
    "};\n"
    "hosts = ( { name = \"kms-a\"; address = \"10.0.0.5:1688\"; weight = 2; priority = 1;\n"
    "            state = \"drain\"; },\n"
    "          { name = \"kms-b\"; address = \"fd00::6\"; } );\n"
    "backend: { pool_size = 2; connect_timeout = \"500ms\"; attempt_timeout = \"2s\";\n"
    "           budget = \"6s\"; idle_timeout = \"1m\"; };\n"
    "routing: { pin_idle = \"60d\"; failback = \"always\"; refusal_ttl = \"2h\";\n"
    "           threshold_assist = false; count_fresh = \"30m\"; };\n"
    "store: { map_size = \"256M\"; commit_interval = \"250ms\"; commit_batch = 500; };\n"
    "health: { interval = \"10s\"; fast_interval = \"2s\"; timeout = \"1s\"; rise = 3; fall = 4; "
    "};\n"
    "log: { target = \"syslog\"; level = \"debug\"; activations = false; };\n"
    "shutdown_grace = 7;\n";

static void t_full(void)
{
    struct kr_conf *c = NULL;
    char a[KR_ADDRSTRLEN];
    int rc = load_text(full_conf, &c);
    if (rc)
        fprintf(stderr, "\n%s", errbuf);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(c->instance_id, "relay1");
    CU_ASSERT_STRING_EQUAL(c->state_dir, "/tmp/kr-state");
    CU_ASSERT_PTR_NOT_NULL(strstr(c->source, "t.conf"));
    CU_ASSERT_EQUAL(c->n_listen, 2);
    kr_addr_format((struct sockaddr *)&c->listen[0].ss, a);
    CU_ASSERT_STRING_EQUAL(a, "[::1]:11688");
    kr_addr_format((struct sockaddr *)&c->listen[1].ss, a);
    CU_ASSERT_STRING_EQUAL(a, "127.0.0.1:0");
    CU_ASSERT_EQUAL(c->n_allow, 2);
    CU_ASSERT_EQUAL(c->max_connections, 500);
    CU_ASSERT_EQUAL(c->max_conn_per_source, 10);
    CU_ASSERT_EQUAL(c->rate_per_source, 5);
    CU_ASSERT_EQUAL(c->burst_per_source, 9);
    CU_ASSERT_EQUAL(c->client_idle_ms, 45000);
    CU_ASSERT_EQUAL(c->client_header_ms, 2000);
    CU_ASSERT_EQUAL_FATAL(c->n_hosts, 2);
    CU_ASSERT_STRING_EQUAL(c->hosts[0].name, "kms-a");
    CU_ASSERT_EQUAL(c->hosts[0].weight, 2);
    CU_ASSERT_EQUAL(c->hosts[0].priority, 1);
    CU_ASSERT_EQUAL(c->hosts[0].admin, KR_ADMIN_DRAIN);
    kr_addr_format((struct sockaddr *)&c->hosts[1].addr.ss, a);
    CU_ASSERT_STRING_EQUAL(a, "[fd00::6]:1688"); /* default KMS port */
    CU_ASSERT_EQUAL(c->hosts[1].weight, 1);
    CU_ASSERT_EQUAL(c->hosts[1].admin, KR_ADMIN_UNSET);
    CU_ASSERT_EQUAL(c->pool_size, 2);
    CU_ASSERT_EQUAL(c->connect_timeout_ms, 500);
    CU_ASSERT_EQUAL(c->attempt_timeout_ms, 2000);
    CU_ASSERT_EQUAL(c->request_budget_ms, 6000);
    CU_ASSERT_EQUAL(c->backend_idle_ms, 60000);
    CU_ASSERT_EQUAL(c->pin_idle_ms, 60ull * 86400 * 1000);
    CU_ASSERT_EQUAL(c->failback, KR_FAILBACK_ALWAYS);
    CU_ASSERT_EQUAL(c->refusal_ttl_ms, 7200000);
    CU_ASSERT_EQUAL(c->threshold_assist, 0);
    CU_ASSERT_EQUAL(c->count_fresh_ms, 1800000);
    CU_ASSERT_EQUAL(c->map_size, 256ull << 20);
    CU_ASSERT_EQUAL(c->commit_interval_ms, 250);
    CU_ASSERT_EQUAL(c->commit_batch, 500);
    CU_ASSERT_EQUAL(c->check_interval_ms, 10000);
    CU_ASSERT_EQUAL(c->check_fast_interval_ms, 2000);
    CU_ASSERT_EQUAL(c->check_timeout_ms, 1000);
    CU_ASSERT_EQUAL(c->rise, 3);
    CU_ASSERT_EQUAL(c->fall, 4);
    CU_ASSERT_EQUAL(c->log_syslog, 1);
    CU_ASSERT_EQUAL(c->log_level, KR_LOG_DEBUG);
    CU_ASSERT_EQUAL(c->log_debug, 1);
    CU_ASSERT_EQUAL(c->log_activations, 0);
    CU_ASSERT_EQUAL(c->shutdown_grace_ms, 7000); /* bare number = seconds */
    CU_ASSERT_EQUAL(kr_conf_validate(c, errbuf, sizeof(errbuf)), 0);
    free(c);
}

static void t_defaults(void)
{
    struct kr_conf c, *d = NULL;
    kr_conf_defaults(&c);
    CU_ASSERT_EQUAL(c.n_listen, 2);
    CU_ASSERT_EQUAL(c.n_allow, 6);
    CU_ASSERT_EQUAL(c.pin_idle_ms, 45ull * 86400 * 1000);
    CU_ASSERT_EQUAL(c.request_budget_ms, 8000);
    CU_ASSERT_EQUAL(c.threshold_assist, 1);
    CU_ASSERT_EQUAL(c.failback, KR_FAILBACK_NEVER);
    CU_ASSERT_STRING_EQUAL(c.source, "");
    /* Defaults alone lack hosts. */
    errbuf[0] = '\0';
    CU_ASSERT_EQUAL(kr_conf_validate(&c, errbuf, sizeof(errbuf)), KR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "command line: no backend hosts"));
    /* An empty file is the defaults; it loads (hosts may come from -H). */
    CU_ASSERT_EQUAL(load_text("# nothing\n", &d), 0);
    CU_ASSERT_EQUAL(d->n_listen, 2);
    CU_ASSERT_EQUAL(d->max_connections, c.max_connections);
    free(d);
}

static void t_errors(void)
{
    expect_error("instance_id = \"a\";\nlisen = [\"127.0.0.1:1\"];\n", 2,
                 "unknown setting \"lisen\" (did you mean \"listen\"?)");
    expect_error("\n\nclients: {\n  alow = [];\n};\n", 4,
                 "unknown setting \"alow\" in clients (did you mean \"allow\"?)");
    expect_error("hosts = ( { name = \"a\"; address = \"10.0.0.1\"; wieght = 2; } );\n", 1,
                 "unknown setting \"wieght\" in a host (did you mean \"weight\"?)");
    expect_error("frobnicate = 1;\n", 1, "unknown setting \"frobnicate\"");
    expect_error("clients: {\n max_connections = \"many\"; };\n", 2,
                 "clients.max_connections: expected a whole number, not a string");
    expect_error("health: { rise = 0; };\n", 1, "health.rise: 0 is out of range (1 to 100)");
    expect_error("health: { rise = -1; };\n", 1, "health.rise: -1 is negative");
    expect_error("x = 1;\nbackend: {\n\n budget = \"8x\"; };\n", 4,
                 "backend.budget: \"8x\" is not a duration");
    expect_error("backend: { budget = \"20m\"; };\n", 1,
                 "backend.budget: 20m is out of range (10ms to 10m)");
    expect_error("store: { map_size = \"12Q\"; };\n", 1, "store.map_size: \"12Q\" is not a size");
    expect_error("store: { map_size = \"1K\"; };\n", 1, "store.map_size: 1K is out of range");
    expect_error("routing: { failback = \"sometimes\"; };\n", 1,
                 "routing.failback: \"sometimes\" is not one of never, always");
    expect_error("routing: { threshold_assist = 1; };\n", 1,
                 "routing.threshold_assist: expected true or false, not a number");
    expect_error("log: { level = \"loud\"; };\n", 1, "is not one of error, warn, info, debug");
    expect_error("listen = [ \"127.0.0.1:1688\",\n \"1.2.3:99999\" ];\n", 2,
                 "listen: \"1.2.3:99999\"");
    expect_error("clients: { allow = [ \"10.0.0.1/8\" ]; };\n", 1,
                 "clients.allow: \"10.0.0.1/8\": address has bits set past the prefix length");
    expect_error("hosts = (\n { name = \"a\"; } );\n", 2, "host a: missing address");
    expect_error("hosts = ( { address = \"10.0.0.1\"; } );\n", 1, "missing name");
    expect_error("hosts = ( { name = \"a b\"; address = \"10.0.0.1\"; } );\n", 1,
                 "host name \"a b\" must be");
    /* host names are addresses too (issue 14), but only well-formed ones */
    expect_error("hosts = ( { name = \"a\"; address = \"kms example.com:1688\"; } );\n", 1,
                 "host a: address \"kms example.com:1688\": neither a numeric");
    expect_error("hosts = ( { name = \"a\"; address = \"10.0.0.300:1688\"; } );\n", 1,
                 "host a: address \"10.0.0.300:1688\": not a numeric");
    expect_error("hosts = ( { name = \"a\"; address = \"kms.example.com:0\"; } );\n", 1,
                 "a backend port cannot be 0");
    expect_error("hosts = ( { name = \"a\"; address = \"kms.example.com:1688\"; },\n"
                 "          { name = \"b\"; address = \"KMS.example.com.:1688\"; } );\n",
                 2, "host b has the same address KMS.example.com:1688 as host a");
    expect_error("backend: { resolve_min = \"10m\"; resolve_max = \"1m\"; };\n", 1,
                 "backend.resolve_min (10m) is longer than backend.resolve_max (1m)");
    expect_error("hosts = ( { name = \"a\"; address = \"0.0.0.0:1688\"; } );\n", 1, "wildcard");
    expect_error("hosts = ( { name = \"a\"; address = \"10.0.0.1\"; state = \"gone\"; } );\n", 1,
                 "state \"gone\" is not one of ready, drain, maint, retired");
    expect_error("hosts = ( { name = \"a\"; address = \"10.0.0.1\"; },\n"
                 "          { name = \"a\"; address = \"10.0.0.2\"; } );\n",
                 2, "host name \"a\" is used twice");
    expect_error("hosts = ( { name = \"a\"; address = \"10.0.0.1\"; },\n"
                 "          { name = \"b\"; address = \"10.0.0.1:1688\"; } );\n",
                 2, "host b has the same address 10.0.0.1:1688 as host a");
    expect_error("hosts = { name = \"a\"; };\n", 1, "hosts: expected a list");
    expect_error("backend = 5;\n", 1, "backend: expected a group");
    expect_error("\nbackend: { attempt_timeout = \"9s\"; };\n", 2,
                 "backend.attempt_timeout (9s) is longer than backend.budget (8s)");
    expect_error("listen = [];\n", 1, "listen: at least one address is needed");
    expect_error("listen = [ \"127.0.0.1:5\", \"127.0.0.1:5\" ];\n", 1, "is listed twice");
    /* Syntax errors come from libconfig, with the line. */
    expect_error("a = 1;\nb = ;\n", 2, "syntax error");
    expect_error("a = 1;\na = 2;\n", 2, "duplicate setting");
}

static void t_all_errors_reported(void)
{
    struct kr_conf *c = NULL;
    int rc = load_text("frob = 1;\n"
                       "health: { rise = 0; fall = 500; };\n"
                       "backend: { pool_size = \"x\"; };\n"
                       "hosts = ( { name = \"a\"; } );\n",
                       &c);
    CU_ASSERT_EQUAL(rc, KR_ECONFIG);
    int lines = 0;
    for (const char *p = errbuf; *p; p++)
        lines += *p == '\n';
    CU_ASSERT_EQUAL(lines, 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "t.conf:1: unknown setting \"frob\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "t.conf:2: health.rise"));
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "t.conf:2: health.fall"));
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "t.conf:3: backend.pool_size"));
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "t.conf:4: host a: missing address"));

    /* A small buffer: the lines that fit, then a note; never overflows. */
    char small[80];
    memset(small, 'x', sizeof(small));
    char path[300];
    snprintf(path, sizeof(path), "%s/t.conf", tmpdir);
    CU_ASSERT_EQUAL(kr_conf_load(path, &c, small, sizeof(small)), KR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(memchr(small, '\0', sizeof(small)));
    CU_ASSERT_PTR_NOT_NULL(strstr(small, "more errors"));

    errbuf[0] = '\0';
    snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
    CU_ASSERT_EQUAL(kr_conf_load(path, &c, errbuf, sizeof(errbuf)), KR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "missing.conf: cannot open"));
}

static void t_include(void)
{
    char path[300], main_path[300], cwd[512];
    struct kr_conf *c = NULL;

    put("inc-hosts.conf",
        "hosts = ( { name = \"a\"; address = \"127.0.0.1:1700\"; },\n"
        "          { name = \"b\"; address = \"127.0.0.1:1701\"; weight = 3; } );\n",
        path, sizeof(path));
    put("inc-main.conf",
        "instance_id = \"inc\";\n@include \"inc-hosts.conf\"\nshutdown_grace = \"1s\";\n",
        main_path, sizeof(main_path));
    /* From another working directory: includes are relative to the file. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
    CU_ASSERT_EQUAL_FATAL(chdir("/"), 0);
    errbuf[0] = '\0';
    int rc = kr_conf_load(main_path, &c, errbuf, sizeof(errbuf));
    CU_ASSERT_EQUAL(chdir(cwd), 0);
    if (rc)
        fprintf(stderr, "\n%s", errbuf);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(c->n_hosts, 2);
    CU_ASSERT_EQUAL(c->hosts[1].weight, 3);
    CU_ASSERT_EQUAL(c->shutdown_grace_ms, 1000);
    free(c);

    /* An error inside the included file names that file and its line. */
    put("inc-bad.conf", "health: {\n  fall = 0;\n};\n", path, sizeof(path));
    put("inc-main2.conf", "instance_id = \"inc\";\n@include \"inc-bad.conf\"\n", main_path,
        sizeof(main_path));
    errbuf[0] = '\0';
    CU_ASSERT_EQUAL(kr_conf_load(main_path, &c, errbuf, sizeof(errbuf)), KR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "inc-bad.conf:2: health.fall"));

    /* A missing include is an error at the @include line. */
    put("inc-main3.conf", "a = 1;\n\n@include \"nope.conf\"\n", main_path, sizeof(main_path));
    errbuf[0] = '\0';
    CU_ASSERT_EQUAL(kr_conf_load(main_path, &c, errbuf, sizeof(errbuf)), KR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "inc-main3.conf:3: "));
}

static void t_units(void)
{
    struct kr_conf *c = NULL;
    CU_ASSERT_EQUAL_FATAL(load_text("routing: { pin_idle = \"45d\"; refusal_ttl = \"1h30m\"; };\n"
                                    "store: { map_size = \"2G\"; commit_interval = 2; };\n"
                                    "clients: { idle_timeout = \"1s500ms\"; };\n",
                                    &c),
                          0);
    CU_ASSERT_EQUAL(c->pin_idle_ms, 45ull * 86400 * 1000);
    CU_ASSERT_EQUAL(c->refusal_ttl_ms, 5400000);
    CU_ASSERT_EQUAL(c->map_size, 2ull << 30);
    CU_ASSERT_EQUAL(c->commit_interval_ms, 2000);
    CU_ASSERT_EQUAL(c->client_idle_ms, 1500);
    free(c);
    CU_ASSERT_EQUAL(load_text("routing: { pin_idle = \"30m1h\"; };\n", &c), KR_ECONFIG);
    CU_ASSERT_EQUAL(load_text("routing: { pin_idle = 1.5; };\n", &c), KR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "expected a duration such as \"10s\", not a decimal"));
}

static struct sockaddr_storage sa4(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &s->sin_addr);
    return ss;
}

static struct sockaddr_storage sa6(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
    s->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &s->sin6_addr);
    return ss;
}

static int match(const char *cidr, struct sockaddr_storage ss)
{
    struct kr_cidr c;
    CU_ASSERT_EQUAL_FATAL(kr_cidr_parse(cidr, &c, NULL), 0);
    return kr_cidr_match(&c, (struct sockaddr *)&ss);
}

static void t_cidr(void)
{
    struct kr_cidr c;
    const char *why = NULL;

    CU_ASSERT_EQUAL(kr_cidr_parse("10.0.0.0/8", &c, NULL), 0);
    CU_ASSERT_EQUAL(c.family, AF_INET);
    CU_ASSERT_EQUAL(c.prefix, 8);
    CU_ASSERT_EQUAL(kr_cidr_parse("fc00::/7", &c, NULL), 0);
    CU_ASSERT_EQUAL(c.family, AF_INET6);
    CU_ASSERT_EQUAL(kr_cidr_parse("127.0.0.1", &c, NULL), 0);
    CU_ASSERT_EQUAL(c.prefix, 32);
    CU_ASSERT_EQUAL(kr_cidr_parse("0.0.0.0/0", &c, NULL), 0);
    static const char *const bad[] = {
        "",           "/8",     "10.0.0.0/",   "10.0.0.0/33", "10.0.0.0/x", "fc00::/129",
        "10.0.0.1/8", "host/8", "10.0.0.0/8/", "10.0.0.0/-1", "1.2.3.4.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        CU_ASSERT_NOT_EQUAL(kr_cidr_parse(bad[i], &c, &why), 0);
        CU_ASSERT_PTR_NOT_NULL(why);
    }

    CU_ASSERT_TRUE(match("10.0.0.0/8", sa4("10.200.3.4")));
    CU_ASSERT_FALSE(match("10.0.0.0/8", sa4("11.0.0.1")));
    CU_ASSERT_TRUE(match("172.16.0.0/12", sa4("172.31.255.255")));
    CU_ASSERT_FALSE(match("172.16.0.0/12", sa4("172.32.0.0")));
    CU_ASSERT_TRUE(match("127.0.0.1/32", sa4("127.0.0.1")));
    CU_ASSERT_FALSE(match("127.0.0.1/32", sa4("127.0.0.2")));
    CU_ASSERT_TRUE(match("0.0.0.0/0", sa4("8.8.8.8")));
    /* v4-mapped IPv6 peers (dual-stack sockets) match IPv4 rules. */
    CU_ASSERT_TRUE(match("10.0.0.0/8", sa6("::ffff:10.1.2.3")));
    CU_ASSERT_FALSE(match("10.0.0.0/8", sa6("::ffff:11.1.2.3")));
    CU_ASSERT_TRUE(match("127.0.0.1/32", sa6("::ffff:127.0.0.1")));
    CU_ASSERT_FALSE(match("127.0.0.1/32", sa6("::ffff:127.0.0.2")));
    /* ...but a native IPv6 address never matches an IPv4 rule. */
    CU_ASSERT_FALSE(match("0.0.0.0/0", sa6("::1")));
    CU_ASSERT_FALSE(match("10.0.0.0/8", sa6("::a00:1"))); /* v4-compatible is not mapped */
    CU_ASSERT_TRUE(match("fc00::/7", sa6("fd12:3456::1")));
    CU_ASSERT_FALSE(match("fc00::/7", sa6("fe80::1")));
    CU_ASSERT_TRUE(match("::1/128", sa6("::1")));
    CU_ASSERT_FALSE(match("::1/128", sa4("127.0.0.1")));
    CU_ASSERT_TRUE(match("::/0", sa6("2001:db8::1")));
    CU_ASSERT_TRUE(match("::/0", sa4("192.0.2.1"))); /* through its mapped form */
    CU_ASSERT_TRUE(match("::ffff:0:0/96", sa4("192.0.2.1")));
    CU_ASSERT_TRUE(match("2001:db8::/33", sa6("2001:db8:7fff::1")));
    CU_ASSERT_FALSE(match("2001:db8::/33", sa6("2001:db8:8000::1")));

    struct sockaddr_storage un;
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    CU_ASSERT_FALSE(match("0.0.0.0/0", un));
}

/* Issue 14: an address may be a DNS name, kept with its port and the
 * place it was written; numeric addresses stay numeric. */
static void t_host_names(void)
{
    struct kr_conf_host h;
    const char *why = NULL;
    struct kr_conf *c = NULL;

    CU_ASSERT_EQUAL_FATAL(kr_conf_host_parse("kms1=kms1.corp.example:1700,weight=2", &h, &why), 0);
    CU_ASSERT_STRING_EQUAL(h.name, "kms1");
    CU_ASSERT_STRING_EQUAL(h.addr_name, "kms1.corp.example");
    CU_ASSERT_EQUAL(h.addr_port, 1700);
    CU_ASSERT_EQUAL(h.addr.len, 0);
    CU_ASSERT_EQUAL(h.addr.ss.ss_family, AF_UNSPEC);
    CU_ASSERT_STRING_EQUAL(h.addr_at, "-H");
    CU_ASSERT_EQUAL_FATAL(kr_conf_host_parse("kms2.corp.example.", &h, &why), 0);
    CU_ASSERT_STRING_EQUAL(h.name, "kms2.corp.example.");
    CU_ASSERT_STRING_EQUAL(h.addr_name, "kms2.corp.example");
    CU_ASSERT_EQUAL(h.addr_port, 1688);
    CU_ASSERT_EQUAL_FATAL(kr_conf_host_parse("x=dc_1-kms:1688", &h, &why), 0);
    CU_ASSERT_STRING_EQUAL(h.addr_name, "dc_1-kms");
    /* numeric forms: no name, a real address */
    CU_ASSERT_EQUAL_FATAL(kr_conf_host_parse("x=10.0.0.5:1689", &h, &why), 0);
    CU_ASSERT_STRING_EQUAL(h.addr_name, "");
    CU_ASSERT_EQUAL(h.addr.ss.ss_family, AF_INET);
    CU_ASSERT_EQUAL_FATAL(kr_conf_host_parse("x=fd00::5", &h, &why), 0);
    CU_ASSERT_STRING_EQUAL(h.addr_name, "");
    CU_ASSERT_EQUAL(h.addr.ss.ss_family, AF_INET6);

    CU_ASSERT_EQUAL_FATAL(load_text("backend: { resolve_min = \"2s\"; };\n"
                                    "hosts = ( { name = \"a\"; address = \"10.0.0.1\"; },\n"
                                    "  { name = \"b\";\n"
                                    "    address = \"kms-b.corp.example:1700\"; } );\n",
                                    &c),
                          0);
    CU_ASSERT_STRING_EQUAL(c->hosts[0].addr_name, "");
    CU_ASSERT_STRING_EQUAL(c->hosts[1].addr_name, "kms-b.corp.example");
    CU_ASSERT_EQUAL(c->hosts[1].addr_port, 1700);
    CU_ASSERT_PTR_NOT_NULL(strstr(c->hosts[1].addr_at, "t.conf:4"));
    CU_ASSERT_EQUAL(c->resolve_min_ms, 2000);
    CU_ASSERT_EQUAL(c->resolve_max_ms, 300000);
    free(c);
}

static void t_host_parse(void)
{
    struct kr_conf_host h;
    const char *why = NULL;
    char a[KR_ADDRSTRLEN];

    CU_ASSERT_EQUAL_FATAL(kr_conf_host_parse("kms-a=127.0.0.1:1700,weight=3", &h, &why), 0);
    CU_ASSERT_STRING_EQUAL(h.name, "kms-a");
    CU_ASSERT_EQUAL(h.weight, 3);
    CU_ASSERT_EQUAL(h.priority, 0);
    CU_ASSERT_EQUAL(h.admin, KR_ADMIN_UNSET);
    kr_addr_format((struct sockaddr *)&h.addr.ss, a);
    CU_ASSERT_STRING_EQUAL(a, "127.0.0.1:1700");

    CU_ASSERT_EQUAL_FATAL(kr_conf_host_parse("127.0.0.1:1701", &h, &why), 0);
    CU_ASSERT_STRING_EQUAL(h.name, "127.0.0.1:1701");
    CU_ASSERT_EQUAL(h.weight, 1);
    CU_ASSERT_EQUAL_FATAL(kr_conf_host_parse("six=[::1]:1702,priority=2,state=drain", &h, &why), 0);
    CU_ASSERT_EQUAL(h.addr.ss.ss_family, AF_INET6);
    CU_ASSERT_EQUAL(h.priority, 2);
    CU_ASSERT_EQUAL(h.admin, KR_ADMIN_DRAIN);
    CU_ASSERT_EQUAL_FATAL(kr_conf_host_parse("x=10.0.0.5", &h, &why), 0);
    CU_ASSERT_EQUAL(kr_addr_port((struct sockaddr *)&h.addr.ss), 1688);
    CU_ASSERT_EQUAL_FATAL(kr_conf_host_parse("[::1]:1703", &h, &why), 0);
    CU_ASSERT_STRING_EQUAL(h.name, "[::1]:1703");

    static const char *const bad[] = {
        "",
        "a=",
        "=1.2.3.4:1",
        "a=-host:1688",
        "a=host.:1688:1",
        "a=host..example:1688",
        "a=host:99999",
        "a=host:",
        "a=10.0.0.300",
        "a=kms_1.example.com/24",
        "a=0.0.0.0:1688",
        "a=1.2.3.4:0",
        "a=1.2.3.4:1,weight=0",
        "a=1.2.3.4:1,weight=x",
        "a=1.2.3.4:1,color=red",
        "a=1.2.3.4:1,state=up",
        "a b=1.2.3.4:1",
        "a=1.2.3.4:1,weight",
        "1688",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        int rc = kr_conf_host_parse(bad[i], &h, &why);
        if (rc == 0)
            fprintf(stderr, "\n  accepted bad host \"%s\"", bad[i]);
        CU_ASSERT_NOT_EQUAL(rc, 0);
        CU_ASSERT_PTR_NOT_NULL(why);
    }
}

static void t_validate(void)
{
    struct kr_conf c;
    const char *why;
    kr_conf_defaults(&c);
    CU_ASSERT_EQUAL(kr_conf_host_parse("a=127.0.0.1:1700", &c.hosts[0], &why), 0);
    CU_ASSERT_EQUAL(kr_conf_host_parse("a=127.0.0.1:1701", &c.hosts[1], &why), 0);
    c.n_hosts = 2;
    errbuf[0] = '\0';
    CU_ASSERT_EQUAL(kr_conf_validate(&c, errbuf, sizeof(errbuf)), KR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "host name \"a\" is used twice"));
    c.hosts[1].name[0] = 'b';
    c.attempt_timeout_ms = 100;
    c.connect_timeout_ms = 200;
    c.check_fast_interval_ms = c.check_interval_ms + 1;
    errbuf[0] = '\0';
    CU_ASSERT_EQUAL(kr_conf_validate(&c, errbuf, sizeof(errbuf)), KR_ECONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "connect_timeout (200ms) is longer"));
    CU_ASSERT_PTR_NOT_NULL(strstr(errbuf, "health.fast_interval"));
    c.connect_timeout_ms = 100;
    c.check_fast_interval_ms = 1000;
    errbuf[0] = '\0';
    CU_ASSERT_EQUAL(kr_conf_validate(&c, errbuf, sizeof(errbuf)), 0);
    CU_ASSERT_STRING_EQUAL(errbuf, "");
}

static void t_admin_names(void)
{
    CU_ASSERT_STRING_EQUAL(kr_admin_name(KR_ADMIN_READY), "ready");
    CU_ASSERT_STRING_EQUAL(kr_admin_name(KR_ADMIN_DRAIN), "drain");
    CU_ASSERT_STRING_EQUAL(kr_admin_name(KR_ADMIN_MAINT), "maint");
    CU_ASSERT_STRING_EQUAL(kr_admin_name(KR_ADMIN_RETIRED), "retired");
    CU_ASSERT_STRING_EQUAL(kr_admin_name(KR_ADMIN_UNSET), "unset");
    CU_ASSERT_STRING_EQUAL(kr_admin_name(7), "?");
    CU_ASSERT_EQUAL(kr_admin_parse("maint"), KR_ADMIN_MAINT);
    CU_ASSERT_EQUAL(kr_admin_parse("retired"), KR_ADMIN_RETIRED);
    CU_ASSERT_EQUAL(kr_admin_parse("Ready"), -1);
    CU_ASSERT_EQUAL(kr_admin_parse(""), -1);
    CU_ASSERT_EQUAL(kr_admin_parse(NULL), -1);
}

KR_SUITE(conf)
{
    CU_pSuite s = CU_add_suite("conf", suite_init, suite_clean);
    CU_add_test(s, "full config", t_full);
    CU_add_test(s, "defaults", t_defaults);
    CU_add_test(s, "errors with file:line", t_errors);
    CU_add_test(s, "every error reported", t_all_errors_reported);
    CU_add_test(s, "@include", t_include);
    CU_add_test(s, "units", t_units);
    CU_add_test(s, "cidr", t_cidr);
    CU_add_test(s, "host parse", t_host_parse);
    CU_add_test(s, "host names", t_host_names);
    CU_add_test(s, "validate", t_validate);
    CU_add_test(s, "admin names", t_admin_names);
}
