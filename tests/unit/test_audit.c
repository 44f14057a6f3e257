/* test_audit.c - the DNS audit's pure parts (src/audit): merging server
 * answers, owner markers, every class of kr_audit_classify() with its
 * reason, the daemon's dead_after confirmation, wrong-port candidates, the
 * JSON evidence, and a real probe against a local listener. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include <event2/event.h>

#include "audit/audit-internal.h"
#include "kmsrelay/audit.h"
#include "kmsrelay/conf.h"
#include "kmsrelay/err.h"
#include "kmsrelay/store.h"
#include "testutil.h"

#define OWNER "_vlmcs._tcp.example.test."

static struct kr_audit_rrset *new_set(void)
{
    struct kr_audit_rrset *s = calloc(1, sizeof(*s));
    strcpy(s->zone, "example.test.");
    strcpy(s->owner, OWNER);
    return s;
}

/* Marks record i as answering KMS (or failing at `stage`) on addr. */
static void probe(struct kr_audit_rrset *s, unsigned i, const char *addr, int stage)
{
    struct kr_audit_probe *p = &s->probe[i];
    p->done = 1;
    strcpy(p->addrs[p->n_addrs++], addr);
    struct kr_audit_try *t = &p->tries[p->n_tries++];
    strcpy(t->addr, addr);
    t->port = s->rr[i].port;
    t->stage = (uint8_t)stage;
    t->connect_us = 120;
    if (stage != KR_PROBE_OK)
        strcpy(t->error, stage == KR_PROBE_CONNECT ? "Connection refused" : "bind_nak");
    else
        strcpy(t->result, "bind_ack: KMS interface accepted with NDR64");
}

static const char *const sanctioned[] = {"kms-ok.example.test", "192.0.2.50"};

static struct kr_audit_policy policy(void)
{
    struct kr_audit_policy p = {0};
    p.instance_id = "relay-a";
    p.sanctioned = sanctioned;
    p.n_sanctioned = 2;
    p.now = 1700000000;
    return p;
}

static size_t classify(struct kr_audit_rrset *s, const struct kr_audit_policy *p,
                       struct kr_audit_finding *f)
{
    size_t n = kr_audit_classify(s, p, f, 16);
    CU_ASSERT_FATAL(n <= 16);
    return n;
}

static void test_names_and_merge(void)
{
    char b[64];
    CU_ASSERT_STRING_EQUAL(kr_audit_norm_name("Kms1.Example.TEST", b, sizeof(b)),
                           "kms1.example.test.");
    CU_ASSERT_STRING_EQUAL(kr_audit_norm_name(".", b, sizeof(b)), ".");
    CU_ASSERT_STRING_EQUAL(kr_audit_class_name(KR_AUDIT_ROGUE), "ROGUE");
    CU_ASSERT_STRING_EQUAL(kr_audit_class_name(99), "UNKNOWN");

    struct kr_audit_rrset *s = new_set();
    struct kr_audit_srv_in a[] = {{3600, 0, 0, 1688, "KMS1.example.test"},
                                  {3600, 0, 0, 1688, "kms2.example.test."}};
    struct kr_audit_srv_in b2[] = {{300, 0, 0, 1688, "kms1.example.test."}};
    CU_ASSERT_EQUAL(kr_audit_add_view(s, "192.0.2.1:53", 1, NULL, a, 2), 0);
    CU_ASSERT_EQUAL(kr_audit_add_view(s, "192.0.2.2:53", 1, NULL, b2, 1), 1);
    CU_ASSERT_EQUAL(kr_audit_add_view(s, "192.0.2.3:53", 0, "timed out", NULL, 0), 2);
    CU_ASSERT_EQUAL(s->n_rr, 2);
    CU_ASSERT_STRING_EQUAL(s->rr[0].target, "kms1.example.test.");
    CU_ASSERT_EQUAL(s->rr[0].seen, 3u);
    CU_ASSERT_EQUAL(s->rr[0].ttl[1], 300);
    CU_ASSERT_EQUAL(s->rr[1].seen, 1u);
    CU_ASSERT_FALSE(s->views[2].ok);
    CU_ASSERT_STRING_EQUAL(s->views[2].error, "timed out");
    free(s);
}

static void test_marker(void)
{
    struct kr_audit_marker m;
    const char *why = NULL;
    CU_ASSERT_EQUAL(kr_audit_marker_parse("kmsrelay=1 owner=relay-a target=Kms-Relay.example.test "
                                          "port=1688 prio=0 weight=100",
                                          300, &m, &why),
                    0);
    CU_ASSERT_STRING_EQUAL(m.id, "relay-a");
    CU_ASSERT_STRING_EQUAL(m.target, "kms-relay.example.test.");
    CU_ASSERT_EQUAL(m.port, 1688);
    CU_ASSERT_EQUAL(m.weight, 100);
    CU_ASSERT_EQUAL(m.ttl, 300);
    CU_ASSERT_EQUAL(kr_audit_marker_parse("v=spf1 -all", 0, &m, &why), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_audit_marker_parse("kmsrelay=1 owner=x target=a.b.", 0, &m, &why), KR_EMALF);
    CU_ASSERT_EQUAL(kr_audit_marker_parse("kmsrelay=1 owner=x target=a.b. port=70000", 0, &m, &why),
                    KR_EMALF);
    CU_ASSERT_EQUAL(kr_audit_marker_parse("kmsrelay=2 owner=x target=a. port=1", 0, &m, &why),
                    KR_ENOENT);
    CU_ASSERT_EQUAL(kr_audit_marker_parse("owner=x kmsrelay=1 target=a. port=1", 0, &m, &why),
                    KR_ENOENT);

    struct kr_audit_rrset *s = new_set();
    CU_ASSERT_EQUAL(kr_audit_add_marker(s, "hello", 300), 0);
    CU_ASSERT_EQUAL(kr_audit_add_marker(s, "kmsrelay=1 owner=a target=t. port=1", 300), 0);
    CU_ASSERT_EQUAL(kr_audit_add_marker(s, "kmsrelay=1 owner=a target=t. port=1", 300), 0);
    CU_ASSERT_EQUAL(s->n_markers, 1);
    free(s);
}

/* The Acceptance 4 zone as pure data: one record of every kind. */
static void test_every_class(void)
{
    struct kr_audit_rrset *s = new_set();
    struct kr_audit_srv_in in[] = {
        {3600, 0, 100, 41001, "kms-relay.example.test."}, /* 0 ours, live */
        {3600, 0, 0, 41002, "kms-ok.example.test."},      /* 1 sanctioned, live */
        {3600, 0, 0, 41003, "kms-dead.example.test."},    /* 2 nothing listens */
        {3600, 0, 0, 41004, "kms-pc17.example.test."},    /* 3 unsanctioned, live */
        {3600, 0, 0, 41002, "kms-alias.example.test."},   /* 4 CNAME */
        {3600, 0, 0, 41009, "kms-moved.example.test."},   /* 5 wrong port */
        {3600, 0, 0, 41005, "kms-peer.example.test."},    /* 6 peer relay, dead */
        {3600, 0, 0, 41006, "kms-peer2.example.test."},   /* 7 peer relay, live */
        {3600, 0, 0, 1688, "."},                          /* 8 dot */
        {3600, 0, 0, 41002, "ghost.example.test."},       /* 9 no address */
    };
    CU_ASSERT_EQUAL(kr_audit_add_view(s, "127.0.0.1:5353", 1, NULL, in, 10), 0);
    kr_audit_add_marker(s,
                        "kmsrelay=1 owner=relay-a target=kms-relay.example.test. port=41001 "
                        "prio=0 weight=100",
                        3600);
    kr_audit_add_marker(s, "kmsrelay=1 owner=relay-b target=kms-peer.example.test. port=41005",
                        3600);
    kr_audit_add_marker(s, "kmsrelay=1 owner=relay-c target=kms-peer2.example.test. port=41006",
                        3600);
    probe(s, 0, "127.0.0.6", KR_PROBE_OK);
    probe(s, 1, "127.0.0.2", KR_PROBE_OK);
    probe(s, 2, "127.0.0.9", KR_PROBE_CONNECT);
    probe(s, 3, "127.0.0.3", KR_PROBE_OK);
    probe(s, 4, "127.0.0.2", KR_PROBE_OK);
    s->probe[4].cname = 1;
    strcpy(s->probe[4].cname_target, "kms-ok.example.test.");
    probe(s, 5, "127.0.0.2", KR_PROBE_CONNECT);
    s->probe[5].n_alt = 1;
    strcpy(s->probe[5].alt[0].addr, "127.0.0.2");
    s->probe[5].alt[0].port = 41002;
    s->probe[5].alt[0].stage = KR_PROBE_OK;
    probe(s, 6, "127.0.0.7", KR_PROBE_BIND);
    probe(s, 7, "127.0.0.8", KR_PROBE_OK);
    s->probe[8].dot = 1;
    s->probe[9].done = 1;
    strcpy(s->probe[9].resolve_error, "NXDOMAIN");

    struct kr_audit_policy p = policy();
    struct kr_audit_finding f[16];
    size_t n = classify(s, &p, f);
    CU_ASSERT_EQUAL_FATAL(n, 10);
    static const int want[] = {KR_AUDIT_OURS_OK,    KR_AUDIT_AUTHORIZED_OK, KR_AUDIT_STALE_DEAD,
                               KR_AUDIT_ROGUE,      KR_AUDIT_MISCONFIGURED, KR_AUDIT_MISCONFIGURED,
                               KR_AUDIT_PEER_STALE, KR_AUDIT_AUTHORIZED_OK, KR_AUDIT_MISCONFIGURED,
                               KR_AUDIT_STALE_DEAD};
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(f[i].rr, (int)i);
        CU_ASSERT_EQUAL(f[i].cls, want[i]);
        CU_ASSERT_TRUE(f[i].confirmed);
        if (f[i].cls != want[i])
            fprintf(stderr, "record %zu: %s (%s)\n", i, kr_audit_class_name(f[i].cls), f[i].reason);
    }
    CU_ASSERT_EQUAL(f[0].marker, 0);
    CU_ASSERT_EQUAL(f[6].marker, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(f[2].reason, "127.0.0.9:41003"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[2].reason, "Connection refused"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[3].reason, "not on the sanctioned list"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[4].reason, "CNAME"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[5].reason, "wrong port"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[5].reason, "41002"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[6].reason, "relay-b"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[8].reason, "\".\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[9].reason, "NXDOMAIN"));
    CU_ASSERT_FALSE(kr_audit_is_problem(&f[0]));
    CU_ASSERT_FALSE(kr_audit_is_problem(&f[1]));
    CU_ASSERT_TRUE(kr_audit_is_problem(&f[2]));

    /* Evidence in the JSON report. */
    struct kr_audit_entry e = {0};
    e.set = s;
    e.f = f;
    e.n_f = n;
    struct kr_audit_result r = {1, &e, 0, NULL};
    json_t *doc = kr_audit_json(&r, &p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    json_t *fs = json_object_get(doc, "findings");
    CU_ASSERT_EQUAL(json_array_size(fs), 10);
    json_t *dead = json_array_get(fs, 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(dead, "class")), "STALE_DEAD");
    json_t *ev = json_object_get(dead, "evidence");
    json_t *pr = json_array_get(json_object_get(ev, "probes"), 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(pr, "result")), "connect_failed");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(pr, "detail")), "Connection refused");
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(pr, "connect_ms")), 0.12, 1e-9);
    json_t *sv = json_array_get(json_object_get(ev, "servers"), 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(sv, "ttl")), 3600);
    json_t *alias = json_object_get(json_object_get(json_array_get(fs, 4), "evidence"), "target");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(alias, "cname")),
                           "kms-ok.example.test.");
    json_t *sum = json_object_get(doc, "summary");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(sum, "problems")), 7);
    CU_ASSERT_EQUAL(
        json_integer_value(json_object_get(json_object_get(sum, "classes"), "MISCONFIGURED")), 3);
    CU_ASSERT_EQUAL(kr_audit_problems(&r), 7);
    FILE *dev = fopen("/dev/null", "w");
    kr_audit_print(dev, doc);
    fclose(dev);
    json_decref(doc);
    free(s);
}

static void test_ours_orphans(void)
{
    struct kr_audit_rrset *s = new_set();
    struct kr_audit_srv_in in[] = {
        {300, 0, 100, 1688, "kms-relay.example.test."}, /* marker says weight 50 */
        {300, 0, 0, 1700, "kms-relay2.example.test."},  /* our self target, no marker */
        {300, 0, 0, 1701, "kms-relay3.example.test."},  /* our marker, dead target */
    };
    kr_audit_add_view(s, "127.0.0.1:53", 1, NULL, in, 3);
    kr_audit_add_marker(s,
                        "kmsrelay=1 owner=relay-a target=kms-relay.example.test. port=1688 "
                        "prio=0 weight=50",
                        300);
    kr_audit_add_marker(s, "kmsrelay=1 owner=relay-a target=kms-relay3.example.test. port=1701",
                        300);
    kr_audit_add_marker(s, "kmsrelay=1 owner=relay-a target=gone.example.test. port=1688", 300);
    kr_audit_add_marker(s, "kmsrelay=1 owner=relay-z target=gone.example.test. port=1688", 300);
    probe(s, 0, "127.0.0.6", KR_PROBE_OK);
    probe(s, 1, "127.0.0.6", KR_PROBE_OK);
    probe(s, 2, "127.0.0.6", KR_PROBE_CONNECT);
    struct kr_audit_policy p = policy();
    p.self_target = "KMS-relay2.example.test";
    p.self_port = 1700;
    struct kr_audit_finding f[16];
    size_t n = classify(s, &p, f);
    CU_ASSERT_EQUAL_FATAL(n, 5);
    CU_ASSERT_EQUAL(f[0].cls, KR_AUDIT_OURS_ORPHAN);
    CU_ASSERT_PTR_NOT_NULL(strstr(f[0].reason, "differs from its marker"));
    CU_ASSERT_EQUAL(f[1].cls, KR_AUDIT_OURS_ORPHAN);
    CU_ASSERT_PTR_NOT_NULL(strstr(f[1].reason, "without an owner marker"));
    CU_ASSERT_EQUAL(f[2].cls, KR_AUDIT_OURS_ORPHAN);
    CU_ASSERT_PTR_NOT_NULL(strstr(f[2].reason, "does not answer"));
    /* Marker-only findings: ours is an orphan, a peer's is misconfigured. */
    CU_ASSERT_EQUAL(f[3].rr, -1);
    CU_ASSERT_EQUAL(f[3].cls, KR_AUDIT_OURS_ORPHAN);
    CU_ASSERT_PTR_NOT_NULL(strstr(f[3].reason, "marker without its SRV record"));
    CU_ASSERT_EQUAL(f[4].cls, KR_AUDIT_MISCONFIGURED);
    CU_ASSERT_PTR_NOT_NULL(strstr(f[4].reason, "relay-z"));
    /* Without an instance id nothing is ours: our marker is a peer's. */
    p.instance_id = NULL;
    p.self_target = NULL;
    n = classify(s, &p, f);
    CU_ASSERT_EQUAL(f[0].cls, KR_AUDIT_AUTHORIZED_OK);
    CU_ASSERT_EQUAL(f[2].cls, KR_AUDIT_PEER_STALE);
    free(s);
}

static void test_rrset_level(void)
{
    struct kr_audit_rrset *s = new_set();
    struct kr_audit_srv_in a[] = {{300, 0, 0, 1688, "kms-ok.example.test."},
                                  {3600, 0, 0, 1688, "kms2.example.test."},
                                  {3600, 10, 0, 1688, "kms2.example.test."}};
    struct kr_audit_srv_in b[] = {{300, 0, 0, 1688, "kms-ok.example.test."}};
    kr_audit_add_view(s, "192.0.2.1:53", 1, NULL, a, 3);
    kr_audit_add_view(s, "192.0.2.2:53", 1, NULL, b, 1);
    for (unsigned i = 0; i < 3; i++)
        probe(s, i, "192.0.2.50", KR_PROBE_OK);
    struct kr_audit_policy p = policy();
    struct kr_audit_finding f[16];
    size_t n = classify(s, &p, f);
    CU_ASSERT_EQUAL_FATAL(n, 5);
    CU_ASSERT_EQUAL(f[0].cls, KR_AUDIT_AUTHORIZED_OK); /* by name */
    CU_ASSERT_EQUAL(f[1].cls, KR_AUDIT_MISCONFIGURED); /* duplicate target */
    CU_ASSERT_PTR_NOT_NULL(strstr(f[1].reason, "duplicate"));
    CU_ASSERT_EQUAL(f[2].cls, KR_AUDIT_MISCONFIGURED);
    CU_ASSERT_EQUAL(f[3].rr, -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(f[3].reason, "TTLs differ"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[3].reason, "300 to 3600"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[4].reason, "servers disagree"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[4].reason, "192.0.2.2:53"));
    /* A cap smaller than the count still reports the count. */
    CU_ASSERT_EQUAL(kr_audit_classify(s, &p, f, 2), 5);
    free(s);

    /* A _vlmcs name clients never query (found by AXFR). */
    s = new_set();
    strcpy(s->owner, "_vlmcs._udp.example.test.");
    s->from_axfr = 1;
    struct kr_audit_srv_in c[] = {{300, 0, 0, 1688, "kms-ok.example.test."}};
    kr_audit_add_view(s, "192.0.2.1:53", 1, NULL, c, 1);
    probe(s, 0, "192.0.2.50", KR_PROBE_OK);
    n = classify(s, &p, f);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(f[0].cls, KR_AUDIT_MISCONFIGURED);
    CU_ASSERT_PTR_NOT_NULL(strstr(f[0].reason, "never query"));
    free(s);
}

/* The daemon's view: dead only after dead_after of continuous failure. */
static void test_dead_after(void)
{
    struct kr_audit_rrset *s = new_set();
    struct kr_audit_srv_in in[] = {{300, 0, 0, 1688, "kms-dead.example.test."},
                                   {300, 0, 0, 1689, "kms-peer.example.test."}};
    kr_audit_add_view(s, "127.0.0.1:53", 1, NULL, in, 2);
    kr_audit_add_marker(s, "kmsrelay=1 owner=relay-b target=kms-peer.example.test. port=1689", 300);
    probe(s, 0, "127.0.0.9", KR_PROBE_CONNECT);
    probe(s, 1, "127.0.0.9", KR_PROBE_CONNECT);
    struct kr_audit_policy p = policy();
    p.dead_after_s = 86400;
    s->probe[0].failing_since = p.now - 3600;
    s->probe[1].failing_since = p.now - 86400;
    struct kr_audit_finding f[16];
    size_t n = classify(s, &p, f);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_EQUAL(f[0].cls, KR_AUDIT_STALE_DEAD);
    CU_ASSERT_FALSE(f[0].confirmed);
    CU_ASSERT_FALSE(kr_audit_is_problem(&f[0]));
    CU_ASSERT_EQUAL(f[1].cls, KR_AUDIT_PEER_STALE);
    CU_ASSERT_TRUE(f[1].confirmed);
    CU_ASSERT_TRUE(kr_audit_is_problem(&f[1]));
    s->probe[0].failing_since = 0; /* unknown: never confirmed */
    classify(s, &p, f);
    CU_ASSERT_FALSE(f[0].confirmed);
    free(s);
}

static void test_sanctioned_and_alt_ports(void)
{
    struct kr_audit_policy p = policy();
    const char addrs[2][KR_AUDIT_ADDR_MAX] = {"198.51.100.1", "192.0.2.50"};
    CU_ASSERT_TRUE(kr_audit_sanctioned(&p, "KMS-OK.example.test.", NULL, 0));
    CU_ASSERT_FALSE(kr_audit_sanctioned(&p, "kms-okay.example.test.", addrs, 1));
    CU_ASSERT_TRUE(kr_audit_sanctioned(&p, "other.", addrs, 2));

    struct kr_audit_rrset *s = new_set(), *t = new_set();
    struct kr_audit_srv_in in[] = {{300, 0, 0, 41009, "kms-moved.example.test."},
                                   {300, 0, 0, 41002, "kms-ok.example.test."},
                                   {300, 0, 0, 41003, "elsewhere.example.test."}};
    struct kr_audit_srv_in in2[] = {{300, 0, 0, 41007, "kms-ok.other.test."}};
    kr_audit_add_view(s, "127.0.0.1:53", 1, NULL, in, 3);
    kr_audit_add_view(t, "127.0.0.1:53", 1, NULL, in2, 1);
    probe(s, 0, "127.0.0.2", KR_PROBE_CONNECT);
    probe(s, 1, "127.0.0.2", KR_PROBE_OK);
    probe(s, 2, "127.0.0.3", KR_PROBE_OK);
    probe(t, 0, "127.0.0.2", KR_PROBE_OK);
    const struct kr_audit_rrset *sets[] = {s, t};
    uint16_t extra[] = {41002, 5000}, out[KR_AUDIT_MAX_ALT];
    unsigned n = kr_audit_alt_ports(sets, 2, s, 0, extra, 2, out);
    CU_ASSERT_EQUAL_FATAL(n, 4);
    CU_ASSERT_EQUAL(out[0], 1688);
    CU_ASSERT_EQUAL(out[1], 41002);
    CU_ASSERT_EQUAL(out[2], 41007);
    CU_ASSERT_EQUAL(out[3], 5000);
    free(s);
    free(t);
}

/* A real probe: a listener that accepts but answers garbage, and a closed
 * port. (Live KMS answers are covered by the integration test.) */
static void test_probe_socket(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    CU_ASSERT_FATAL(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0);
    CU_ASSERT_FATAL(listen(l, 4) == 0);
    getsockname(l, (struct sockaddr *)&a, &al);
    uint16_t port = ntohs(a.sin_port);
    struct kr_audit_try t;
    /* Accepted by the kernel, never answered: the bind times out. */
    CU_ASSERT_EQUAL(kr_audit_probe_kms("127.0.0.1", port, 200, &t), 0);
    CU_ASSERT_EQUAL(t.stage, KR_PROBE_BIND);
    CU_ASSERT_PTR_NOT_NULL(strstr(t.error, "no bind_ack"));
    CU_ASSERT_TRUE(t.bind_us >= 150000);
    close(l);
    CU_ASSERT_EQUAL(kr_audit_probe_kms("127.0.0.1", port, 200, &t), 0);
    CU_ASSERT_EQUAL(t.stage, KR_PROBE_CONNECT);
    CU_ASSERT_STRING_EQUAL(t.error, "Connection refused");
    CU_ASSERT_EQUAL(kr_audit_probe_kms("kms.example.test", 1688, 200, &t), KR_EINVAL);
}

/* The daemon's memory: a failure keeps its first time across runs; a
 * target that answers again, or leaves the DNS, is forgotten. */
static void test_history(void)
{
    char dir[] = "/tmp/kr-audit-hist-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    struct kr_store *st = NULL;
    CU_ASSERT_FATAL(kr_store_open(dir, NULL, &st, NULL) == 0);
    struct kr_audit_entry e = {0};
    struct kr_audit_result r = {1, &e, 0, NULL};
    e.set = new_set();
    struct kr_audit_srv_in in[] = {{300, 0, 0, 1688, "kms-dead.example.test."},
                                   {300, 0, 0, 1688, "kms-ok.example.test."}};
    kr_audit_add_view(e.set, "127.0.0.1:53", 1, NULL, in, 2);
    probe(e.set, 0, "127.0.0.9", KR_PROBE_CONNECT);
    probe(e.set, 1, "127.0.0.2", KR_PROBE_OK);
    kr_audit_history(st, &r, 1000);
    CU_ASSERT_EQUAL(e.set->probe[0].failing_since, 1000);
    CU_ASSERT_EQUAL(e.set->probe[1].failing_since, 0);
    kr_audit_history(st, &r, 5000);
    CU_ASSERT_EQUAL(e.set->probe[0].failing_since, 1000); /* remembered */
    char buf[256];
    size_t len = 0;
    CU_ASSERT_EQUAL(kr_store_kv_get(st, KR_AUDIT_KV_FAILING, buf, sizeof(buf) - 1, &len), 0);
    buf[len] = '\0';
    CU_ASSERT_STRING_EQUAL(buf, "{\"kms-dead.example.test.|1688\":1000}");
    e.set->probe[0].tries[0].stage = KR_PROBE_OK; /* it answers again */
    e.set->probe[0].failing_since = 0;
    kr_audit_history(st, &r, 6000);
    CU_ASSERT_EQUAL(kr_store_kv_get(st, KR_AUDIT_KV_FAILING, buf, sizeof(buf) - 1, &len), 0);
    CU_ASSERT_EQUAL(len, 2); /* {} */
    e.set->probe[0].tries[0].stage = KR_PROBE_CONNECT;
    kr_audit_history(st, &r, 7000);
    CU_ASSERT_EQUAL(e.set->probe[0].failing_since, 7000); /* a new failure */
    free(e.set);
    kr_store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* The periodic runner on a real event loop: a zone whose server is down
 * still produces a report (with the error), and destroy is clean. */
static void test_periodic(void)
{
    struct kr_conf *c = calloc(1, sizeof(*c));
    kr_conf_defaults(c);
    struct kr_audit_periodic *p;
    struct event_base *base = event_base_new();
    CU_ASSERT_FATAL(base != NULL);
    /* Off by default: an idle object. */
    p = kr_audit_periodic_create(base, c, NULL);
    CU_ASSERT_FATAL(p != NULL);
    CU_ASSERT_PTR_NULL(kr_audit_periodic_json(p));
    kr_audit_periodic_destroy(p);

    int l = socket(AF_INET, SOCK_STREAM, 0); /* a port nobody listens on */
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    bind(l, (struct sockaddr *)&a, sizeof(a));
    getsockname(l, (struct sockaddr *)&a, &al);
    close(l);
    c->n_dns_zones = 1;
    strcpy(c->dns_zones[0].name, "example.test.");
    c->dns_zones[0].n_servers = 1;
    memcpy(&c->dns_zones[0].servers[0].ss, &a, sizeof(a));
    c->dns_zones[0].servers[0].len = sizeof(a);
    c->dns_timeout_ms = 500;
    c->dns_audit_interval_ms = 200;
    p = kr_audit_periodic_create(base, c, NULL);
    CU_ASSERT_FATAL(p != NULL);
    json_t *doc = NULL;
    for (int i = 0; i < 100 && !doc; i++) { /* bounded: 10 s */
        struct timeval tv = {0, 100000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        doc = kr_audit_periodic_json(p);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(doc, "dead_after_s")), 86400);
    CU_ASSERT_TRUE(json_array_size(json_object_get(doc, "errors")) >= 1);
    json_decref(doc);
    c->dns_audit_interval_ms = 0; /* reload turns it off */
    kr_audit_periodic_apply(p, c);
    kr_audit_periodic_destroy(p);
    event_base_free(base);
    free(c);
}

/* Issue 11 item 10: a failed lookup is no evidence; only proof of absence is. */
static void test_lookup_failed_is_unknown(void)
{
    struct kr_audit_rrset *s = new_set();
    struct kr_audit_srv_in in[] = {
        {300, 0, 0, 1688, "kms-ok.example.test."},     /* 0 sanctioned, SERVFAIL */
        {300, 0, 0, 1688, "kms-x.example.test."},      /* 1 A found and refused, AAAA timed out */
        {300, 0, 0, 1689, "kms-peer.example.test."},   /* 2 a peer's, resolver down */
        {300, 0, 0, 1688, "kms-gone.example.test."},   /* 3 NXDOMAIN: proof */
        {300, 0, 0, 1690, "kms-back.example.test."},   /* 4 AAAA failed, A answers */
        {300, 0, 0, 1691, "kms-relay.example.test."}}; /* 5 ours, SERVFAIL */
    kr_audit_add_view(s, "127.0.0.1:53", 1, NULL, in, 6);
    kr_audit_add_marker(s, "kmsrelay=1 owner=relay-b target=kms-peer.example.test. port=1689", 300);
    kr_audit_add_marker(s, "kmsrelay=1 owner=relay-a target=kms-relay.example.test. port=1691",
                        300);
    for (unsigned i = 0; i < 6; i++)
        s->probe[i].done = 1;
    s->probe[0].lookup_failed = 1;
    strcpy(s->probe[0].resolve_error, "lookup failed: SERVFAIL from 127.0.0.1:53");
    probe(s, 1, "127.0.0.9", KR_PROBE_CONNECT);
    s->probe[1].lookup_failed = 1;
    strcpy(s->probe[1].resolve_error, "lookup failed: timeout");
    s->probe[2].lookup_failed = 1;
    strcpy(s->probe[2].resolve_error, "lookup failed: connection refused by 127.0.0.1:9");
    strcpy(s->probe[3].resolve_error, "NXDOMAIN from 127.0.0.1:53");
    probe(s, 4, "127.0.0.2", KR_PROBE_OK);
    s->probe[4].lookup_failed = 1;
    s->probe[5].lookup_failed = 1;
    CU_ASSERT_EQUAL(kr_audit_liveness(&s->probe[0]), KR_AUDIT_UNDECIDED);
    CU_ASSERT_EQUAL(kr_audit_liveness(&s->probe[1]), KR_AUDIT_UNDECIDED);
    CU_ASSERT_EQUAL(kr_audit_liveness(&s->probe[3]), KR_AUDIT_DEAD);
    CU_ASSERT_EQUAL(kr_audit_liveness(&s->probe[4]), KR_AUDIT_LIVE);

    struct kr_audit_policy p = policy();
    struct kr_audit_finding f[16];
    CU_ASSERT_EQUAL_FATAL(classify(s, &p, f), 6);
    static const int want[] = {KR_AUDIT_UNKNOWN,    KR_AUDIT_UNKNOWN, KR_AUDIT_UNKNOWN,
                               KR_AUDIT_STALE_DEAD, KR_AUDIT_ROGUE,   KR_AUDIT_UNKNOWN};
    for (unsigned i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(f[i].cls, want[i]);
        if (f[i].cls != want[i])
            fprintf(stderr, "record %u: %s (%s)\n", i, kr_audit_class_name(f[i].cls), f[i].reason);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(f[0].reason, "SERVFAIL"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[0].reason, "sanctioned"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[0].reason, "never deleted"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f[3].reason, "NXDOMAIN"));
    CU_ASSERT_TRUE(kr_audit_is_problem(&f[0])); /* reported */
    CU_ASSERT_STRING_EQUAL(kr_audit_class_name(KR_AUDIT_UNKNOWN), "UNKNOWN");
    free(s);
}

/* The daemon's clock only runs for DEAD targets: a failed lookup resets it. */
static void test_history_undecided(void)
{
    struct kr_audit_entry e = {0};
    struct kr_audit_result r = {1, &e, 0, NULL};
    e.set = new_set();
    struct kr_audit_srv_in in[] = {{300, 0, 0, 1688, "kms-dead.example.test."}};
    kr_audit_add_view(e.set, "127.0.0.1:53", 1, NULL, in, 1);
    probe(e.set, 0, "127.0.0.9", KR_PROBE_CONNECT);
    kr_audit_history(NULL, &r, 1000);
    CU_ASSERT_EQUAL(e.set->probe[0].failing_since, 1000);
    e.set->probe[0].lookup_failed = 1;
    e.set->probe[0].failing_since = 0;
    kr_audit_history(NULL, &r, 2000);
    CU_ASSERT_EQUAL(e.set->probe[0].failing_since, 0);
    free(e.set);
}

/* Issue 11 item 11: --fix deletes only with evidence over time. The gate
 * comes before any DNS traffic: an entry without servers shows whether a
 * record got past it ("failed: no server answered") or not ("skipped"). */
static const char *fix_action(struct kr_audit_result *r, const struct kr_audit_policy *p,
                              const char **err)
{
    CU_ASSERT_FATAL(kr_audit_classify_all(r, p) >= 0);
    struct kr_audit_opts o = {0};
    kr_audit_fix(&o, p, r, NULL);
    json_t *fx = r->e[0].fix[0];
    *err = json_string_value(json_object_get(fx, "error"));
    return json_string_value(json_object_get(fx, "action"));
}

static void test_fix_needs_evidence(void)
{
    struct kr_audit_result r = {0};
    struct kr_audit_entry *e = kr_audit_new_entry(&r, "example.test", OWNER);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    struct kr_audit_srv_in in[] = {{300, 0, 0, 1688, "kms-dead.example.test."}};
    kr_audit_add_view(e->set, "127.0.0.1:53", 1, NULL, in, 1);
    probe(e->set, 0, "127.0.0.9", KR_PROBE_CONNECT);
    struct kr_audit_policy p = policy();
    const char *err = NULL;

    /* One moment (point in time): dead now, but nothing is deleted. */
    CU_ASSERT_STRING_EQUAL(fix_action(&r, &p, &err), "skipped");
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "--dead-for"));
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "--history"));
    CU_ASSERT_EQUAL(kr_audit_skipped(&r), 1);
    /* Failing, but not for long enough. */
    p.dead_after_s = 60;
    e->set->probe[0].failing_since = p.now - 10;
    CU_ASSERT_STRING_EQUAL(fix_action(&r, &p, &err), "skipped");
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "failing for 10 s only"));
    /* Long enough: past the gate (and then no server to send to). */
    e->set->probe[0].failing_since = p.now - 60;
    CU_ASSERT_STRING_EQUAL(fix_action(&r, &p, &err), "failed");
    CU_ASSERT_EQUAL(kr_audit_skipped(&r), 0);
    /* Never for a record whose lookup failed, whatever its history. */
    e->set->probe[0].lookup_failed = 1;
    CU_ASSERT_FATAL(kr_audit_classify_all(&r, &p) >= 0);
    CU_ASSERT_EQUAL(r.e[0].f[0].cls, KR_AUDIT_UNKNOWN);
    struct kr_audit_opts o = {0};
    CU_ASSERT_EQUAL(kr_audit_fix(&o, &p, &r, NULL), 0);
    CU_ASSERT_PTR_NULL(r.e[0].fix[0]);
    kr_audit_result_free(&r);
}

/* --history: the daemon's report gives failing_since per record. */
static void test_from_daemon(void)
{
    struct kr_audit_entry e = {0};
    struct kr_audit_result r = {1, &e, 0, NULL};
    e.set = new_set();
    struct kr_audit_srv_in in[] = {{300, 0, 0, 1688, "kms-dead.example.test."},
                                   {300, 0, 0, 1688, "kms-new.example.test."}};
    kr_audit_add_view(e.set, "127.0.0.1:53", 1, NULL, in, 2);
    probe(e.set, 0, "127.0.0.9", KR_PROBE_CONNECT);
    probe(e.set, 1, "127.0.0.8", KR_PROBE_CONNECT);
    json_t *rep =
        json_pack("{s:I, s:I, s:[{s:s, s:s, s:{s:s, s:i}, s:{s:I}}]}", "time", (json_int_t)1000000,
                  "dead_after_s", (json_int_t)86400, "findings", "owner", OWNER, "class",
                  "STALE_DEAD", "record", "target", "kms-dead.example.test.", "port", 1688,
                  "evidence", "failing_since", (json_int_t)900000);
    char why[400] = "";
    CU_ASSERT_EQUAL(kr_audit_from_daemon(&r, rep, 1000060, 3600, why, sizeof(why)), 86400);
    CU_ASSERT_EQUAL(e.set->probe[0].failing_since, 900000);
    CU_ASSERT_EQUAL(e.set->probe[1].failing_since, 0); /* the daemon has not seen it */
    CU_ASSERT_PTR_NOT_NULL(strstr(e.set->probe[1].over_time, "did not find"));
    /* Too old a report gives nothing. */
    why[0] = '\0';
    CU_ASSERT_EQUAL(kr_audit_from_daemon(&r, rep, 1000000 + 7200, 3600, why, sizeof(why)), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "old"));
    CU_ASSERT_EQUAL(e.set->probe[0].failing_since, 0);
    /* No report (the periodic audit is off). */
    why[0] = '\0';
    CU_ASSERT_EQUAL(kr_audit_from_daemon(&r, NULL, 1000060, 3600, why, sizeof(why)), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "dns.audit_interval"));
    json_decref(rep);
    free(e.set);
}

KR_SUITE(audit)
{
    CU_pSuite s = CU_add_suite("audit", NULL, NULL);
    CU_add_test(s, "names and merging server answers", test_names_and_merge);
    CU_add_test(s, "owner markers", test_marker);
    CU_add_test(s, "every class with its reason and evidence", test_every_class);
    CU_add_test(s, "our records: orphans both ways", test_ours_orphans);
    CU_add_test(s, "RRset level: TTLs, servers, names", test_rrset_level);
    CU_add_test(s, "daemon: dead only after dead_after", test_dead_after);
    CU_add_test(s, "sanctioned list and wrong-port candidates", test_sanctioned_and_alt_ports);
    CU_add_test(s, "probe against local sockets", test_probe_socket);
    CU_add_test(s, "daemon: failing-since memory in the store", test_history);
    CU_add_test(s, "daemon: periodic runs on an event loop", test_periodic);
    CU_add_test(s, "a failed lookup is UNKNOWN, never dead", test_lookup_failed_is_unknown);
    CU_add_test(s, "daemon: a failed lookup resets the clock", test_history_undecided);
    CU_add_test(s, "--fix needs evidence over time", test_fix_needs_evidence);
    CU_add_test(s, "--history: the daemon's failing_since", test_from_daemon);
}
