/* test_route.c - the routing decision (src/relay/route.c) over a hand-made
 * relay: eligibility by admin and health, HRW ranking by priority tier,
 * pins from a real store in a mkdtemp() dir, refusals with their TTL,
 * threshold-assist host selection and the failback policy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "kmsrelay/store.h"
#include "relay/relay.h"
#include "relayfix.h"
#include "testutil.h"

#define NH KR_FIX_MAX_HOSTS

/* The relay under test: tests/unit/relayfix.h, hosts kms-a.. ready and up. */
static struct kr_relay_fix *fake_new(size_t n, bool with_store)
{
    struct kr_relay_fix *f = malloc(sizeof(*f));
    kr_fix_init(f, n, KR_LOG_WARN); /* refusal lines are info */
    f->conf.refusal_ttl_ms = 3600 * 1000;
    if (with_store)
        kr_fix_store_open(f, "route");
    return f;
}

static void fake_free(struct kr_relay_fix *f)
{
    kr_fix_fini(f);
    free(f);
}

static void cmid_of(uint32_t i, uint8_t cmid[16])
{
    uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull;
    for (int k = 0; k < 16; k++) {
        cmid[k] = (uint8_t)(h >> ((k % 8) * 8)) ^ (uint8_t)(k * 29 + i);
        if (k == 7)
            h = h * 0xBF58476D1CE4E5B9ull + i;
    }
}

static void mk_req(uint32_t i, struct kr_kms_request *q)
{
    memset(q, 0, sizeof(*q));
    q->ver_major = 6;
    cmid_of(i, q->cmid);
    memset(q->kms_id, 0x42, 16);
    memset(q->app_id, 0x55, 16);
    q->n_policy = 25;
}

static void put_pin(struct kr_relay_fix *f, const struct kr_kms_request *q, const char *host)
{
    struct kr_pin p;
    memset(&p, 0, sizeof(p));
    memcpy(p.cmid, q->cmid, 16);
    memcpy(p.app_id, q->app_id, 16); /* the pin of the request's pair */
    snprintf(p.host, sizeof(p.host), "%s", host);
    p.first_seen = p.last_seen = kr_wall_s();
    CU_ASSERT_FATAL(kr_store_pin_put(f->r.store, &p) == 0);
}

static bool plan_has(const struct kr_plan *p, int idx)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->hosts[i] == idx)
            return true;
    return false;
}

/* The HRW order of every host, as hrw.c ranks them. */
static size_t hrw_order(struct kr_relay_fix *f, const uint8_t cmid[16], uint16_t *out)
{
    struct kr_hrw_node nodes[NH];
    for (size_t i = 0; i < f->r.n_hosts; i++)
        nodes[i] = f->hosts[i].hrw;
    return kr_hrw_rank(nodes, f->r.n_hosts, cmid, out, NH);
}

static void test_eligibility(void)
{
    struct kr_relay_fix *f = fake_new(3, false);
    uint8_t kms[16], other[16];
    memset(kms, 0x42, 16);
    memset(other, 0x43, 16);
    struct kr_host *a = &f->hosts[0], *b = &f->hosts[1], *c = &f->hosts[2];

    CU_ASSERT(kr_route_eligible(&f->r, a, kms, false));
    CU_ASSERT(kr_route_eligible(&f->r, a, kms, true));
    a->admin = KR_ADMIN_DRAIN; /* pinned clients only */
    CU_ASSERT(!kr_route_eligible(&f->r, a, kms, false));
    CU_ASSERT(kr_route_eligible(&f->r, a, kms, true));
    a->admin = KR_ADMIN_MAINT; /* nobody */
    CU_ASSERT(!kr_route_eligible(&f->r, a, kms, false));
    CU_ASSERT(!kr_route_eligible(&f->r, a, kms, true));
    a->admin = KR_ADMIN_RETIRED;
    CU_ASSERT(!kr_route_eligible(&f->r, a, kms, false));
    CU_ASSERT(!kr_route_eligible(&f->r, a, kms, true));
    a->admin = KR_ADMIN_READY;

    a->health = KR_HEALTH_DOWN;
    CU_ASSERT(!kr_route_eligible(&f->r, a, kms, false));
    CU_ASSERT(!kr_route_eligible(&f->r, a, kms, true));
    /* UNKNOWN: fine for a pinned client; for new ones only while no host is UP */
    a->health = KR_HEALTH_UNKNOWN;
    CU_ASSERT(kr_route_eligible(&f->r, a, kms, true));
    CU_ASSERT(!kr_route_eligible(&f->r, a, kms, false));
    b->health = c->health = KR_HEALTH_UNKNOWN;
    CU_ASSERT(kr_route_eligible(&f->r, a, kms, false));
    b->health = c->health = KR_HEALTH_UP;

    /* weight 0: never for a new CMID, still for its pinned clients */
    b->hrw.weight = 0;
    CU_ASSERT(!kr_route_eligible(&f->r, b, kms, false));
    CU_ASSERT(kr_route_eligible(&f->r, b, kms, true));
    b->hrw.weight = 1;

    kr_route_note_refusal(&f->r, c, kms);
    CU_ASSERT(!kr_route_eligible(&f->r, c, kms, false));
    CU_ASSERT(!kr_route_eligible(&f->r, c, kms, true));
    CU_ASSERT(kr_route_eligible(&f->r, c, other, false));
    c->removed = true;
    CU_ASSERT(!kr_route_eligible(&f->r, c, other, true));
    fake_free(f);
}

static void test_plan_hrw_and_tiers(void)
{
    struct kr_relay_fix *f = fake_new(3, false);
    struct kr_kms_request q;
    struct kr_plan plan;
    struct kr_pin pin;
    uint16_t order[NH];
    for (uint32_t i = 0; i < 200; i++) {
        mk_req(i, &q);
        kr_route_plan(&f->r, &q, &plan, &pin);
        size_t n = hrw_order(f, q.cmid, order);
        CU_ASSERT_EQUAL(plan.n, 3);
        CU_ASSERT_FALSE(plan.have_pin);
        CU_ASSERT_EQUAL(plan.pinned, -1);
        for (size_t k = 0; k < n && k < plan.n; k++)
            CU_ASSERT_EQUAL(plan.hosts[k], order[k]);
    }
    /* a lower priority value is a better tier, whatever the hash says */
    f->hosts[0].conf.priority = 1;
    f->hosts[1].conf.priority = 1;
    f->hosts[2].conf.priority = 0;
    for (uint32_t i = 0; i < 200; i++) {
        mk_req(i, &q);
        kr_route_plan(&f->r, &q, &plan, &pin);
        CU_ASSERT_EQUAL(plan.n, 3);
        CU_ASSERT_EQUAL(plan.hosts[0], 2);
        CU_ASSERT(plan.hosts[1] != 2 && plan.hosts[2] != 2);
    }
    fake_free(f);
}

/* Issue 14: a host written with a DNS name that has no address (not looked
 * up yet, or it does not resolve) is never tried, not even as a last
 * resort; once resolved it is a host like any other. */
static void test_unresolved_name(void)
{
    struct kr_relay_fix *f = fake_new(3, false);
    struct kr_kms_request q;
    struct kr_plan plan;
    struct kr_pin pin;
    uint8_t kms[16];
    memset(kms, 0x42, 16);
    mk_req(7, &q);
    struct kr_host *a = &f->hosts[0];

    snprintf(a->conf.addr_name, sizeof(a->conf.addr_name), "kms-a.example.test");
    a->conf.addr_port = 1688;
    memset(&a->conf.addr, 0, sizeof(a->conf.addr));
    CU_ASSERT(kr_host_unresolved(a));
    CU_ASSERT(!kr_route_eligible(&f->r, a, kms, false));
    CU_ASSERT(!kr_route_eligible(&f->r, a, kms, true));
    for (int health = KR_HEALTH_UNKNOWN; health <= KR_HEALTH_DOWN; health++) {
        a->health = (uint8_t)health;
        kr_route_plan(&f->r, &q, &plan, &pin);
        CU_ASSERT_EQUAL(plan.n, 2);
        for (size_t i = 0; i < plan.n; i++)
            CU_ASSERT_NOT_EQUAL(plan.hosts[i], 0);
    }
    a->health = KR_HEALTH_UP;
    a->conf.addr.ss.ss_family = AF_INET;
    a->conf.addr.len = sizeof(struct sockaddr_in);
    CU_ASSERT(!kr_host_unresolved(a));
    CU_ASSERT(kr_route_eligible(&f->r, a, kms, false));
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.n, 3);
    fake_free(f);
}

static void test_plan_health(void)
{
    struct kr_relay_fix *f = fake_new(3, false);
    struct kr_kms_request q;
    struct kr_plan plan;
    struct kr_pin pin;
    uint16_t order[NH];
    mk_req(7, &q);
    hrw_order(f, q.cmid, order);

    /* fresh start: nothing UP yet, UNKNOWN hosts serve at once in HRW order */
    for (int i = 0; i < 3; i++)
        f->hosts[i].health = KR_HEALTH_UNKNOWN;
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.n, 3);
    CU_ASSERT_EQUAL(plan.hosts[0], order[0]);

    /* one UP: it comes first, the UNKNOWN ones stay as last resorts */
    f->hosts[order[2]].health = KR_HEALTH_UP;
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.n, 3);
    CU_ASSERT_EQUAL(plan.hosts[0], order[2]);
    CU_ASSERT_EQUAL(plan.hosts[1], order[0]);

    /* DOWN hosts come last, after UNKNOWN ones */
    f->hosts[order[0]].health = KR_HEALTH_DOWN;
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.n, 3);
    CU_ASSERT_EQUAL(plan.hosts[0], order[2]);
    CU_ASSERT_EQUAL(plan.hosts[1], order[1]);
    CU_ASSERT_EQUAL(plan.hosts[2], order[0]);

    /* drain, maint, retired and removed hosts never get a new CMID */
    for (int i = 0; i < 3; i++)
        f->hosts[i].health = KR_HEALTH_UP;
    f->hosts[0].admin = KR_ADMIN_DRAIN;
    f->hosts[1].admin = KR_ADMIN_MAINT;
    f->hosts[2].admin = KR_ADMIN_RETIRED;
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.n, 0);
    f->hosts[2].admin = KR_ADMIN_READY;
    f->hosts[2].removed = true;
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.n, 0);
    fake_free(f);
}

static void test_plan_pins(void)
{
    struct kr_relay_fix *f = fake_new(3, true);
    struct kr_kms_request q;
    struct kr_plan plan;
    struct kr_pin pin;
    uint16_t order[NH];
    mk_req(11, &q);
    hrw_order(f, q.cmid, order);
    int p = order[2]; /* pin to the host the hash likes least */
    put_pin(f, &q, f->hosts[p].conf.name);

    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT(plan.have_pin);
    CU_ASSERT_EQUAL(plan.pinned, p);
    CU_ASSERT(plan.pin_usable);
    CU_ASSERT_EQUAL(plan.hosts[0], p);
    CU_ASSERT_EQUAL(plan.n, 3);
    CU_ASSERT_STRING_EQUAL(pin.host, f->hosts[p].conf.name);

    f->hosts[p].admin = KR_ADMIN_DRAIN; /* pinned clients still served */
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT(plan.pin_usable);
    CU_ASSERT_EQUAL(plan.hosts[0], p);

    f->hosts[p].health = KR_HEALTH_UNKNOWN; /* in question is not down */
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT(plan.pin_usable);
    CU_ASSERT_EQUAL(plan.hosts[0], p);

    f->hosts[p].health = KR_HEALTH_DOWN; /* next ranked host; the dead one last */
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_FALSE(plan.pin_usable);
    CU_ASSERT_EQUAL(plan.pinned, p);
    CU_ASSERT_EQUAL(plan.hosts[0], order[0]);
    CU_ASSERT_EQUAL(plan.n, 3);
    CU_ASSERT_EQUAL(plan.hosts[2], p);

    f->hosts[p].health = KR_HEALTH_UP;
    f->hosts[p].admin = KR_ADMIN_MAINT; /* no traffic at all */
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_FALSE(plan.pin_usable);
    CU_ASSERT(plan.have_pin);
    CU_ASSERT_FALSE(plan_has(&plan, p));
    CU_ASSERT_EQUAL(plan.hosts[0], order[0]);

    f->hosts[p].admin = KR_ADMIN_RETIRED;
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_FALSE(plan_has(&plan, p));

    /* a pin to a host that is gone from the config */
    f->hosts[p].admin = KR_ADMIN_READY;
    put_pin(f, &q, "kms-gone");
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT(plan.have_pin);
    CU_ASSERT_EQUAL(plan.pinned, -1);
    CU_ASSERT_EQUAL(plan.hosts[0], order[0]);

    /* no store at all: pure HRW */
    put_pin(f, &q, f->hosts[p].conf.name);
    struct kr_store *s = f->r.store;
    f->r.store = NULL;
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_FALSE(plan.have_pin);
    CU_ASSERT_EQUAL(plan.hosts[0], order[0]);
    f->r.store = s;
    fake_free(f);
}

/* A pair never seen goes to the host of the machine's most recently seen
 * other pair: committed pairs and queued writes both count (the newest
 * wins), a queued delete hides its pair, and other machines in the queue
 * (a counting filter skips them) never do. */
static void test_plan_machine(void)
{
    struct kr_relay_fix *f = fake_new(3, true);
    struct kr_kms_request q, other;
    struct kr_plan plan;
    struct kr_pin pin, sib;
    uint16_t order[NH];
    mk_req(21, &q);
    hrw_order(f, q.cmid, order);
    /* other machines in the queue, none with this CMID */
    for (uint32_t i = 100; i < 400; i++) {
        mk_req(i, &other);
        put_pin(f, &other, f->hosts[order[0]].conf.name);
    }
    CU_ASSERT_EQUAL(kr_store_pin_cmid_latest(f->r.store, q.cmid, &sib), KR_ENOENT);
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.machine, -1);
    CU_ASSERT_EQUAL(plan.hosts[0], order[0]);

    /* the machine's Windows pair, committed, on the host HRW likes least */
    struct kr_kms_request win = q;
    memset(win.app_id, 0x11, 16);
    put_pin(f, &win, f->hosts[order[2]].conf.name);
    CU_ASSERT_EQUAL(kr_store_flush(f->r.store, NULL), 0);
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_FALSE(plan.have_pin);
    CU_ASSERT_EQUAL(plan.machine, order[2]);
    CU_ASSERT_EQUAL(plan.hosts[0], order[2]);

    /* a newer pair of it, only queued, on another host: the newest wins */
    struct kr_kms_request off = q;
    memset(off.app_id, 0x22, 16);
    struct kr_pin p;
    memset(&p, 0, sizeof(p));
    memcpy(p.cmid, off.cmid, 16);
    memcpy(p.app_id, off.app_id, 16);
    snprintf(p.host, sizeof(p.host), "%s", f->hosts[order[1]].conf.name);
    p.first_seen = p.last_seen = kr_wall_s() + 10;
    CU_ASSERT_FATAL(kr_store_pin_put(f->r.store, &p) == 0);
    CU_ASSERT_EQUAL(kr_store_pin_cmid_latest(f->r.store, q.cmid, &sib), 0);
    CU_ASSERT_STRING_EQUAL(sib.host, f->hosts[order[1]].conf.name);
    CU_ASSERT_EQUAL(memcmp(sib.app_id, off.app_id, 16), 0);
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.machine, order[1]);

    /* deleting it (queued) brings back the committed pair */
    CU_ASSERT_EQUAL(kr_store_pin_del(f->r.store, off.cmid, off.app_id), 0);
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.machine, order[2]);
    /* and deleting that one too (queued over a committed record) leaves none */
    CU_ASSERT_EQUAL(kr_store_pin_del(f->r.store, win.cmid, win.app_id), 0);
    CU_ASSERT_EQUAL(kr_store_pin_cmid_latest(f->r.store, q.cmid, &sib), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_store_flush(f->r.store, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_pin_cmid_latest(f->r.store, q.cmid, &sib), KR_ENOENT);
    fake_free(f);
}

static void test_failback(void)
{
    struct kr_relay_fix *f = fake_new(3, true);
    struct kr_kms_request q;
    struct kr_plan plan;
    struct kr_pin pin;
    uint16_t order[NH];
    mk_req(21, &q);
    hrw_order(f, q.cmid, order);
    put_pin(f, &q, f->hosts[order[1]].conf.name); /* moved there earlier */

    f->conf.failback = KR_FAILBACK_NEVER;
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT(plan.pin_usable);
    CU_ASSERT_EQUAL(plan.hosts[0], order[1]);

    f->conf.failback = KR_FAILBACK_ALWAYS;
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_FALSE(plan.pin_usable);
    CU_ASSERT_EQUAL(plan.hosts[0], order[0]);
    CU_ASSERT_EQUAL(plan.hosts[1], order[1]);

    /* the ranked host still down: stay where the pin is */
    f->hosts[order[0]].health = KR_HEALTH_DOWN;
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT(plan.pin_usable);
    CU_ASSERT_EQUAL(plan.hosts[0], order[1]);
    fake_free(f);
}

static void test_refusals(void)
{
    struct kr_relay_fix *f = fake_new(3, false);
    struct kr_kms_request q, q2;
    struct kr_plan plan;
    struct kr_pin pin;
    uint16_t order[NH];
    mk_req(5, &q);
    mk_req(5, &q2);
    memset(q2.kms_id, 0x77, 16);
    hrw_order(f, q.cmid, order);

    f->conf.refusal_ttl_ms = 40;
    kr_route_note_refusal(&f->r, &f->hosts[order[0]], q.kms_id);
    kr_route_note_refusal(&f->r, &f->hosts[order[0]], q.kms_id); /* refreshes, one entry */
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.n, 2);
    CU_ASSERT_FALSE(plan_has(&plan, order[0]));
    CU_ASSERT_EQUAL(plan.hosts[0], order[1]);
    kr_route_plan(&f->r, &q2, &plan, &pin); /* another KMS id is not refused */
    CU_ASSERT_EQUAL(plan.n, 3);
    CU_ASSERT_EQUAL(plan.hosts[0], order[0]);

    usleep(60 * 1000); /* the TTL runs out */
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.n, 3);
    CU_ASSERT_EQUAL(plan.hosts[0], order[0]);

    /* everybody refuses: ask them anyway, the client gets a host's answer */
    f->conf.refusal_ttl_ms = 3600 * 1000;
    for (int i = 0; i < 3; i++)
        kr_route_note_refusal(&f->r, &f->hosts[i], q.kms_id);
    kr_route_plan(&f->r, &q, &plan, &pin);
    CU_ASSERT_EQUAL(plan.n, 3);
    CU_ASSERT_EQUAL(plan.hosts[0], order[0]);

    /* a TTL of 0 remembers nothing */
    f->conf.refusal_ttl_ms = 0;
    kr_route_note_refusal(&f->r, &f->hosts[0], q2.kms_id);
    CU_ASSERT(kr_route_eligible(&f->r, &f->hosts[0], q2.kms_id, false));

    /* the table is bounded: many KMS ids reuse the oldest slots */
    f->conf.refusal_ttl_ms = 3600 * 1000;
    uint8_t id[16] = {0};
    for (int i = 0; i < 3 * KR_HOST_REFUSALS; i++) {
        id[0] = (uint8_t)i;
        kr_route_note_refusal(&f->r, &f->hosts[1], id);
    }
    CU_ASSERT(!kr_route_eligible(&f->r, &f->hosts[1], id, false));
    fake_free(f);
}

static void test_assist_host(void)
{
    struct kr_relay_fix *f = fake_new(4, false);
    uint8_t app[16], app2[16], kms[16];
    memset(app, 0x55, 16);
    memset(app2, 0x56, 16);
    memset(kms, 0x42, 16);
    f->conf.count_fresh_ms = 3600 * 1000;

    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 25, kms), -1); /* nobody reported */
    kr_route_note_count(&f->r, &f->hosts[0], app, 3, 25);              /* the fresh host */
    kr_route_note_count(&f->r, &f->hosts[1], app, 24, 25);             /* not enough */
    kr_route_note_count(&f->r, &f->hosts[2], app2, 50, 25);            /* another application */
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 25, kms), -1);

    kr_route_note_count(&f->r, &f->hosts[3], app, 50, 25);
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 25, kms), 3);
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 3, app, 25, kms), -1); /* never itself */
    kr_route_note_count(&f->r, &f->hosts[1], app, 60, 25);             /* updates in place */
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 25, kms), 1);  /* the highest count */

    f->hosts[1].health = KR_HEALTH_DOWN;
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 25, kms), 3);
    f->hosts[3].health = KR_HEALTH_UNKNOWN; /* not established */
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 25, kms), -1);
    f->hosts[3].health = KR_HEALTH_UP;
    f->hosts[3].admin = KR_ADMIN_DRAIN;
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 25, kms), -1);
    f->hosts[3].admin = KR_ADMIN_READY;
    kr_route_note_refusal(&f->r, &f->hosts[3], kms);
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 25, kms), -1);
    memset(f->hosts[3].refusals, 0, sizeof(f->hosts[3].refusals));
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 25, kms), 3);
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 51, kms), -1); /* policy above */

    /* a stale count does not count */
    f->conf.count_fresh_ms = 10;
    usleep(30 * 1000);
    CU_ASSERT_EQUAL(kr_route_assist_host(&f->r, 0, app, 25, kms), -1);
    fake_free(f);
}

KR_SUITE(route)
{
    CU_pSuite s = CU_add_suite("route", NULL, NULL);
    CU_add_test(s, "eligibility", test_eligibility);
    CU_add_test(s, "plan_hrw_and_tiers", test_plan_hrw_and_tiers);
    CU_add_test(s, "plan_health", test_plan_health);
    CU_add_test(s, "unresolved host name", test_unresolved_name);
    CU_add_test(s, "plan_pins", test_plan_pins);
    CU_add_test(s, "plan_machine", test_plan_machine);
    CU_add_test(s, "failback", test_failback);
    CU_add_test(s, "refusals", test_refusals);
    CU_add_test(s, "assist_host", test_assist_host);
}
