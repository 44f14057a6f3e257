/* test_peer.c - the peer replication protocol (src/peer/codec.c): frames,
 * need-more versus malformed, last-writer-wins order, the hybrid logical
 * clock; and the version table and change log (src/peer/meta.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/audit.h"
#include "kmsrelay/conf.h"
#include "kmsrelay/err.h"
#include "kmsrelay/peerproto.h"
#include "peer/peer-internal.h"
#include "testutil.h"

static void check_prefixes(const uint8_t *f, size_t len)
{
    struct kr_peer_frame out;
    size_t used;
    for (size_t i = 0; i < len; i++) {
        uint8_t *b = malloc(i ? i : 1);
        memcpy(b, f, i);
        CU_ASSERT_EQUAL(kr_peer_decode(b, i, &out, &used, NULL), KR_EMORE);
        free(b);
    }
    CU_ASSERT_EQUAL(kr_peer_decode(f, len, &out, &used, NULL), 0);
    CU_ASSERT_EQUAL(used, len);
}

static void test_round_trip(void)
{
    uint8_t f[KR_PEER_FRAME_MAX], key[32], rec[40];
    size_t len, used;
    struct kr_peer_frame out;
    struct kr_peer_mark m[2] = {{"relay-b", 7, 42}, {"relay-c", 0, 0}};
    CU_ASSERT_EQUAL(kr_peer_enc_hello("relay-a", 99, m, 2, f, sizeof(f), &len), 0);
    check_prefixes(f, len);
    kr_peer_decode(f, len, &out, &used, NULL);
    CU_ASSERT_EQUAL(out.type, KR_PEER_HELLO);
    CU_ASSERT_STRING_EQUAL(out.name, "relay-a");
    CU_ASSERT_EQUAL(out.inc, 99);
    CU_ASSERT_EQUAL(out.n_marks, 2);
    CU_ASSERT_STRING_EQUAL(out.marks[0].origin, "relay-b");
    CU_ASSERT_EQUAL(out.marks[0].seq, 42);

    for (size_t i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    memset(rec, 0xAB, sizeof(rec));
    struct kr_peer_change c = {"relay-a", 5, 1ull << 40, KR_PEER_PIN_PUT, key, 32, rec, 40};
    CU_ASSERT_EQUAL(kr_peer_enc_change(&c, f, sizeof(f), &len), 0);
    check_prefixes(f, len);
    kr_peer_decode(f, len, &out, &used, NULL);
    CU_ASSERT_EQUAL(out.type, KR_PEER_CHANGE);
    CU_ASSERT_EQUAL(out.ch.seq, 5);
    CU_ASSERT_EQUAL(out.ch.hlc, 1ull << 40);
    CU_ASSERT_EQUAL(out.ch.val_len, 40);
    CU_ASSERT_EQUAL(memcmp(out.ch.key, key, 32), 0);

    uint8_t hv[5];
    kr_peer_host_encode(1, 7, hv);
    struct kr_peer_change hc = {"relay-b", 0, 3, KR_PEER_HOST, (const uint8_t *)"kms-1", 5, hv, 5};
    CU_ASSERT_EQUAL(kr_peer_enc_change(&hc, f, sizeof(f), &len), 0);
    CU_ASSERT_EQUAL(kr_peer_decode(f, len, &out, &used, NULL), 0);
    uint8_t admin;
    uint32_t w;
    CU_ASSERT_EQUAL(kr_peer_host_decode(out.ch.val, out.ch.val_len, &admin, &w), 0);
    CU_ASSERT_EQUAL(admin, 1);
    CU_ASSERT_EQUAL(w, 7);

    CU_ASSERT_EQUAL(kr_peer_enc_ack(1, 2, f, sizeof(f), &len), 0);
    check_prefixes(f, len);
    CU_ASSERT_EQUAL(kr_peer_enc_resync(1, 2, 1, f, sizeof(f), &len), 0);
    check_prefixes(f, len);
    kr_peer_decode(f, len, &out, &used, NULL);
    CU_ASSERT_EQUAL(out.phase, 1);
}

static void test_malformed(void)
{
    uint8_t f[KR_PEER_FRAME_MAX], key[32] = {0};
    size_t len, used;
    struct kr_peer_frame out;
    const char *why = NULL;
    CU_ASSERT_EQUAL(kr_peer_enc_ack(1, 2, f, sizeof(f), &len), 0);
    f[4] = 2; /* version */
    CU_ASSERT_EQUAL(kr_peer_decode(f, len, &out, &used, &why), KR_EUNSUP);
    CU_ASSERT_PTR_NOT_NULL(why);
    f[4] = 1;
    f[0]++; /* one trailing byte inside the frame */
    uint8_t g[64];
    memcpy(g, f, len);
    g[len] = 0;
    CU_ASSERT_EQUAL(kr_peer_decode(g, len + 1, &out, &used, &why), KR_EMALF);
    CU_ASSERT_STRING_EQUAL(why, "trailing bytes in a frame");
    uint8_t big[6] = {0xff, 0xff, 0, 0, 1, 2}; /* 64 KiB: refused from the header alone */
    CU_ASSERT_EQUAL(kr_peer_decode(big, sizeof(big), &out, &used, &why), KR_ETOOBIG);
    uint8_t type9[6] = {2, 0, 0, 0, 1, 9};
    CU_ASSERT_EQUAL(kr_peer_decode(type9, sizeof(type9), &out, &used, &why), KR_EUNSUP);
    /* A change that would not decode is not encoded either. */
    struct kr_peer_change bad = {"a", 1, 1, KR_PEER_PIN_PUT, key, 31, key, 1};
    CU_ASSERT_EQUAL(kr_peer_enc_change(&bad, f, sizeof(f), &len), KR_EINVAL);
    uint8_t hv[5];
    kr_peer_host_encode(4, 1, hv); /* no such admin state */
    struct kr_peer_change h = {"a", 1, 1, KR_PEER_HOST, (const uint8_t *)"h", 1, hv, 5};
    CU_ASSERT_EQUAL(kr_peer_enc_change(&h, f, sizeof(f), &len), KR_EINVAL);
    CU_ASSERT_EQUAL(kr_peer_enc_hello("", 1, NULL, 0, f, sizeof(f), &len), KR_EINVAL);
    CU_ASSERT_EQUAL(kr_peer_enc_ack(1, 2, f, 10, &len), KR_ENOSPC);
}

static void test_lww(void)
{
    /* Later time wins whatever the origin; a tie goes to the greater name,
     * the same on every peer (the order is antisymmetric). */
    CU_ASSERT(kr_peer_lww_cmp(2, "a", 1, "b") > 0);
    CU_ASSERT(kr_peer_lww_cmp(1, "b", 2, "a") < 0);
    CU_ASSERT(kr_peer_lww_cmp(5, "rb", 5, "ra") > 0);
    CU_ASSERT(kr_peer_lww_cmp(5, "ra", 5, "rb") < 0);
    CU_ASSERT_EQUAL(kr_peer_lww_cmp(5, "ra", 5, "ra"), 0);
    /* HLC: never backwards, even when the wall clock is. */
    uint64_t t = kr_peer_hlc_next(0, 1000);
    CU_ASSERT_EQUAL(t, 1000ull << 16);
    uint64_t u = kr_peer_hlc_next(t, 999);
    CU_ASSERT(u > t);
    CU_ASSERT(kr_peer_hlc_next(u, 2000) == 2000ull << 16);
}

static void test_meta_log(void)
{
    struct kr_peers *P = calloc(1, sizeof(*P));
    CU_ASSERT_EQUAL_FATAL(meta_init(P, 4), 0);
    CU_ASSERT_EQUAL(meta_origin(P, "ra"), 0);
    CU_ASSERT_EQUAL(meta_origin(P, "rb"), 1);
    CU_ASSERT_EQUAL(meta_origin(P, "ra"), 0);
    uint8_t key[32];
    for (unsigned i = 0; i < 3000; i++) { /* grows the table past its first size */
        memset(key, 0, sizeof(key));
        memcpy(key, &i, sizeof(i));
        CU_ASSERT_EQUAL(meta_set(P, KR_PEER_PIN_PUT, key, 32, i + 1, (uint8_t)(i & 1), i == 7), 0);
    }
    unsigned k = 7;
    memset(key, 0, sizeof(key));
    memcpy(key, &k, sizeof(k));
    struct meta_ent *e = meta_get(P, KR_PEER_PIN_PUT, key, 32);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->hlc, 8);
    CU_ASSERT(e->deleted);
    CU_ASSERT_PTR_NULL(meta_get(P, KR_PEER_HOST, key, 32)); /* kinds are separate keys */
    /* The log keeps the newest 4: older ones need a full resync. */
    for (int i = 0; i < 6; i++)
        CU_ASSERT_EQUAL(log_append(P, KR_PEER_PIN_DEL, key, 32, NULL, 0, (uint64_t)i), 0);
    CU_ASSERT_EQUAL(P->seq, 6);
    CU_ASSERT_EQUAL(P->log_first, 3);
    CU_ASSERT_PTR_NULL(log_get(P, 2));
    CU_ASSERT_PTR_NOT_NULL(log_get(P, 3));
    CU_ASSERT_EQUAL(log_get(P, 6)->hlc, 5);
    CU_ASSERT_PTR_NULL(log_get(P, 7));
    /* Pruning keeps the newer versions, findable. */
    CU_ASSERT_EQUAL(meta_prune(P, 2001), 2000);
    CU_ASSERT_EQUAL(P->meta_n, 1000);
    k = 2500;
    memset(key, 0, sizeof(key));
    memcpy(key, &k, sizeof(k));
    CU_ASSERT_PTR_NOT_NULL(meta_get(P, KR_PEER_PIN_PUT, key, 32));
    k = 7;
    memset(key, 0, sizeof(key));
    memcpy(key, &k, sizeof(k));
    CU_ASSERT_PTR_NULL(meta_get(P, KR_PEER_PIN_PUT, key, 32));
    meta_free(P);
    free(P);
}

/* Last-writer-wins merge against a real store (src/peer/sync.c). */
static void test_lww_merge(void)
{
    char dir[] = "/tmp/kr-peer-lww-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    struct kr_store *st = NULL;
    CU_ASSERT_EQUAL_FATAL(kr_store_open(dir, NULL, &st, NULL), 0);
    struct kr_peers *P = calloc(1, sizeof(*P));
    CU_ASSERT_EQUAL_FATAL(meta_init(P, 16), 0);
    pthread_mutex_init(&P->mu, NULL);
    P->store = st;
    strcpy(P->self, "rb");
    meta_origin(P, "rb");
    /* A pin written before this process knew any version: its last_seen
     * (1000 s) stands for its time, as if written by us (rb). */
    struct kr_pin pin;
    memset(&pin, 0, sizeof(pin));
    memset(pin.cmid, 7, 16);
    memset(pin.app_id, 9, 16);
    strcpy(pin.host, "kms-1");
    pin.first_seen = pin.last_seen = 1000;
    CU_ASSERT_EQUAL_FATAL(kr_store_pin_put(st, &pin), 0);
    uint8_t key[32];
    kr_pin_key(pin.cmid, pin.app_id, key);
    uint64_t t = 1000ull * 1000 << 16;
    struct kr_peer_change c = {"ra", 1, t - 1, KR_PEER_PIN_PUT, key, 32, (const uint8_t *)"x", 1};
    CU_ASSERT_FALSE(peer_wins(P, &c)); /* older than the stored pin */
    c.hlc = t;
    CU_ASSERT_FALSE(peer_wins(P, &c)); /* same time: "rb" > "ra" keeps ours */
    strcpy(c.origin, "rc");
    CU_ASSERT_TRUE(peer_wins(P, &c)); /* same time, greater origin: theirs */
    CU_ASSERT(P->hlc >= t);           /* our clock moved past what we saw */
    strcpy(c.origin, "ra");
    c.hlc = t + 5;
    CU_ASSERT_TRUE(peer_wins(P, &c)); /* newer */
    c.hlc = t + 4;
    CU_ASSERT_FALSE(peer_wins(P, &c)); /* a late, older change is dropped */
    struct kr_peer_change del = {"rb", 2, t + 6, KR_PEER_PIN_DEL, key, 32, NULL, 0};
    CU_ASSERT_TRUE(peer_wins(P, &del));
    CU_ASSERT_TRUE(meta_get(P, KR_PEER_PIN_PUT, key, 32)->deleted); /* a tombstone */
    c.hlc = t + 5;
    CU_ASSERT_FALSE(peer_wins(P, &c)); /* the forget wins over the older put */
    /* Applying the same set in another order gives the same winner. */
    struct kr_peers *Q = calloc(1, sizeof(*Q));
    CU_ASSERT_EQUAL_FATAL(meta_init(Q, 16), 0);
    pthread_mutex_init(&Q->mu, NULL);
    Q->store = st;
    strcpy(Q->self, "rz");
    meta_origin(Q, "rz");
    CU_ASSERT_TRUE(peer_wins(Q, &del));
    CU_ASSERT_FALSE(peer_wins(Q, &c));
    meta_free(Q);
    pthread_mutex_destroy(&Q->mu);
    free(Q);
    meta_free(P);
    pthread_mutex_destroy(&P->mu);
    free(P);
    kr_store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* The peers group of the configuration (src/conf/peers.c). */
static int load_conf(const char *body, struct kr_conf **c, char *err, size_t cap)
{
    char path[] = "/tmp/kr-peer-conf-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "hosts = ( { name = \"kms-1\"; address = \"127.0.0.1:1688\"; } );\n%s", body);
    fclose(f);
    err[0] = '\0';
    int rc = kr_conf_load(path, c, err, cap);
    unlink(path);
    return rc;
}

#define TLS "ca = \"/c.pem\"; cert = \"/a.pem\"; key = \"/a.key\"; "

static void test_conf(void)
{
    struct kr_conf *c = NULL;
    char err[2048];
    CU_ASSERT_EQUAL(load_conf("peers: { name = \"ra\"; listen = \"127.0.0.1:7688\"; " TLS
                              "relays = ( { name = \"rb\"; address = \"10.0.0.2:7688\"; } ); };",
                              &c, err, sizeof(err)),
                    0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->peer_name, "ra");
    CU_ASSERT_EQUAL(c->n_peers, 1);
    CU_ASSERT_STRING_EQUAL(c->peers[0].name, "rb");
    CU_ASSERT_EQUAL(c->peer_log_size, 100000);
    CU_ASSERT_EQUAL(c->peer_retry_ms, 1000);
    free(c);
    c = NULL;
    /* Off by default. */
    CU_ASSERT_EQUAL(load_conf("", &c, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(c->peer_name[0], '\0');
    CU_ASSERT_EQUAL(c->n_peers, 0);
    free(c);
    static const struct {
        const char *body, *needle;
    } bad[] = {
        {"peers: { relays = ( { name = \"rb\"; address = \"10.0.0.2:7688\"; } ); };",
         "peers.name is not set"},
        {"peers: { name = \"ra\"; listen = \"127.0.0.1:7688\"; };", "ca, cert and key"},
        {"peers: { name = \"ra\"; " TLS "};", "peers.listen"},
        {"peers: { name = \"ra\"; listen = \"127.0.0.1:7688\"; " TLS
         "relays = ( { name = \"ra\"; address = \"10.0.0.2:7688\"; } ); };",
         "this relay's own name"},
        {"peers: { name = \"ra\"; listen = \"127.0.0.1:7688\"; " TLS
         "relays = ( { name = \"rb\"; address = \"nowhere\"; } ); };",
         "peer rb: address"},
        {"peers: { name = \"ra\"; listen = \"127.0.0.1:7688\"; " TLS
         "relays = ( { name = \"rb\"; address = \"10.0.0.2:1\"; port = 2; } ); };",
         "unknown setting \"port\""},
        {"peers: { name = \"ra\"; listen = \"127.0.0.1:7688\"; " TLS "relay = (); };",
         "unknown setting"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = NULL;
        CU_ASSERT_EQUAL(load_conf(bad[i].body, &c, err, sizeof(err)), KR_ECONFIG);
        if (!strstr(err, bad[i].needle))
            fprintf(stderr, "\n  case %zu: want \"%s\" in: %s", i, bad[i].needle, err);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].needle));
        CU_ASSERT_PTR_NULL(c);
    }
}

/* The audit marks a peer relay's record by its link state (issue 15). */
static void test_audit_peer(void)
{
    struct kr_audit_rrset *s = calloc(1, sizeof(*s));
    strcpy(s->zone, "example.test.");
    strcpy(s->owner, "_vlmcs._tcp.example.test.");
    struct kr_audit_srv_in in[] = {{300, 0, 0, 1688, "relay-b.example.test."}};
    kr_audit_add_view(s, "127.0.0.1:53", 1, NULL, in, 1);
    kr_audit_add_marker(s, "kmsrelay=1 owner=relay-b target=relay-b.example.test. port=1688", 300);
    struct kr_audit_probe *pr = &s->probe[0]; /* its target does not answer */
    pr->done = 1;
    strcpy(pr->addrs[pr->n_addrs++], "127.0.0.9");
    struct kr_audit_try *t = &pr->tries[pr->n_tries++];
    strcpy(t->addr, "127.0.0.9");
    t->port = 1688;
    t->stage = KR_PROBE_CONNECT;
    strcpy(t->error, "Connection refused");

    struct kr_audit_peer peer = {"relay-b", 1, 0};
    struct kr_audit_policy pol = {0};
    pol.instance_id = "relay-a";
    pol.now = 1700000000;
    pol.peer_stale_s = 300;
    struct kr_audit_finding f[4];
    CU_ASSERT_EQUAL_FATAL(kr_audit_classify(s, &pol, f, 4), 1);
    CU_ASSERT_EQUAL(f[0].cls, KR_AUDIT_PEER_STALE); /* no link state: the probe decides */
    pol.peers = &peer;
    pol.n_peers = 1;
    kr_audit_classify(s, &pol, f, 4);
    CU_ASSERT_EQUAL(f[0].cls, KR_AUDIT_AUTHORIZED_OK); /* link up: a peer's record */
    CU_ASSERT_PTR_NOT_NULL(strstr(f[0].reason, "link up"));
    peer.link_up = 0;
    peer.down_since = pol.now - 10;
    kr_audit_classify(s, &pol, f, 4);
    CU_ASSERT_EQUAL(f[0].cls, KR_AUDIT_AUTHORIZED_OK); /* not for long: still the peer's */
    CU_ASSERT_FALSE(kr_audit_is_problem(&f[0]));
    peer.down_since = pol.now - 301;
    kr_audit_classify(s, &pol, f, 4);
    CU_ASSERT_EQUAL(f[0].cls, KR_AUDIT_PEER_STALE);
    CU_ASSERT(f[0].confirmed);
    CU_ASSERT(kr_audit_is_problem(&f[0]));
    free(s);
}

KR_SUITE(peer)
{
    CU_pSuite s = CU_add_suite("peer", NULL, NULL);
    CU_add_test(s, "frames round trip, every prefix is need-more", test_round_trip);
    CU_add_test(s, "malformed frames are refused with a reason", test_malformed);
    CU_add_test(s, "last writer wins, hybrid logical clock", test_lww);
    CU_add_test(s, "version table and change log", test_meta_log);
    CU_add_test(s, "last-writer-wins merge against a store", test_lww_merge);
    CU_add_test(s, "the peers group of the configuration", test_conf);
    CU_add_test(s, "audit: a peer's record follows its link state", test_audit_peer);
}
