/*
 * test_hostaddr.c - the relay's side of host names (src/relay/hostaddr.c,
 * issue 14): a new address keeps the host's name, admin state and health;
 * a name that does not resolve makes it DOWN with the reason and no
 * address; numeric hosts are not touched.
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "relay/relay.h"
#include "relayfix.h"
#include "testutil.h"

static struct kr_addr v4(const char *ip, uint16_t port)
{
    struct kr_addr a;
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
    memset(&a, 0, sizeof(a));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    CU_ASSERT_FATAL(inet_pton(AF_INET, ip, &sin->sin_addr) == 1);
    a.len = sizeof(*sin);
    return a;
}

static void t_set_addr(void)
{
    struct kr_relay_fix *f = calloc(1, sizeof(*f));
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    kr_fix_init(f, 2, KR_LOG_ERR);
    f->r.base = event_base_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->r.base);
    struct kr_host *a = &f->hosts[0], *b = &f->hosts[1];
    struct kr_addr x = v4("10.0.0.5", 1688), y = v4("10.0.0.6", 1688);

    snprintf(a->conf.addr_name, sizeof(a->conf.addr_name), "kms-a.example.test");
    a->conf.addr_port = 1688;
    a->health = KR_HEALTH_UNKNOWN;
    b->conf.addr = x;

    /* numeric hosts and unknown names are not this function's */
    CU_ASSERT_EQUAL(kr_relay_host_set_addr(&f->r, "kms-b", &y, NULL), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_relay_host_set_addr(&f->r, "kms-z", &y, NULL), KR_ENOENT);
    CU_ASSERT(b->conf.addr.len == x.len && memcmp(&b->conf.addr.ss, &x.ss, x.len) == 0);

    /* does not resolve: DOWN, with the reason, and no address */
    CU_ASSERT_EQUAL(kr_relay_host_set_addr(&f->r, "kms-a", NULL, "NXDOMAIN (no such name)"), 0);
    CU_ASSERT_EQUAL(a->health, KR_HEALTH_DOWN);
    CU_ASSERT_STRING_EQUAL(a->health_reason, "address does not resolve: NXDOMAIN (no such name)");
    CU_ASSERT(kr_host_unresolved(a));

    /* resolves again: UNKNOWN (checked before traffic), with the address */
    CU_ASSERT_EQUAL(kr_relay_host_set_addr(&f->r, "kms-a", &x, NULL), 0);
    CU_ASSERT_EQUAL(a->health, KR_HEALTH_UNKNOWN);
    CU_ASSERT(!kr_host_unresolved(a));
    CU_ASSERT_PTR_NOT_NULL(a->check_timer); /* checks run at the address */

    /* a new address of an UP, drained host: name, admin, health stay */
    a->health = KR_HEALTH_UP;
    a->admin = KR_ADMIN_DRAIN;
    a->fall_cnt = 2;
    CU_ASSERT_EQUAL(kr_relay_host_set_addr(&f->r, "kms-a", &y, NULL), 0);
    CU_ASSERT(a->conf.addr.len == y.len && memcmp(&a->conf.addr.ss, &y.ss, y.len) == 0);
    CU_ASSERT_EQUAL(a->health, KR_HEALTH_UP);
    CU_ASSERT_EQUAL(a->admin, KR_ADMIN_DRAIN);
    CU_ASSERT_STRING_EQUAL(a->conf.name, "kms-a");
    CU_ASSERT_EQUAL(a->fall_cnt, 0); /* the old address's streak is not the new one's */
    /* the same address again: nothing changes */
    a->fall_cnt = 1;
    CU_ASSERT_EQUAL(kr_relay_host_set_addr(&f->r, "kms-a", &y, NULL), 0);
    CU_ASSERT_EQUAL(a->fall_cnt, 1);

    for (size_t i = 0; i < 2; i++)
        kr_health_stop(&f->hosts[i]);
    event_base_free(f->r.base);
    kr_fix_fini(f);
    free(f);
}

KR_SUITE(hostaddr)
{
    CU_pSuite s = CU_add_suite("hostaddr", NULL, NULL);
    CU_add_test(s, "set address", t_set_addr);
}
