/* test_hrw.c - weighted rendezvous hashing (src/route/hrw.c): spread,
 * minimal movement on add/remove, determinism, order independence. */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/guid.h"
#include "kmsrelay/hrw.h"
#include "testutil.h"

#define N_CMIDS 10000
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* splitmix64: reproducible "random" CMIDs, the same on every run. */
static uint64_t next(uint64_t *st)
{
    uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void random_cmid(uint64_t *st, uint8_t cmid[16])
{
    uint64_t a = next(st), b = next(st);
    memcpy(cmid, &a, 8);
    memcpy(cmid + 8, &b, 8);
}

static void make_nodes(struct kr_hrw_node *nodes, const char *const *names, const uint32_t *weights,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        nodes[i].key = kr_hrw_key(names[i]);
        nodes[i].weight = weights[i];
    }
}

static const char *const names4[] = {"kms-a.example.net", "kms-b.example.net", "kms-c.example.net",
                                     "kms-d.example.net"};

/* Counts wins per host over N_CMIDS CMIDs and checks each share is within
 * +-5% (relative) of weight / total. */
static void check_spread(const uint32_t *weights, size_t n, uint64_t seed)
{
    struct kr_hrw_node nodes[4];
    make_nodes(nodes, names4, weights, n);
    unsigned wins[4] = {0};
    uint64_t st = seed;
    for (int i = 0; i < N_CMIDS; i++) {
        uint8_t cmid[16];
        random_cmid(&st, cmid);
        int b = kr_hrw_best(nodes, n, cmid);
        CU_ASSERT_FATAL(b >= 0 && (size_t)b < n);
        wins[b]++;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    for (size_t i = 0; i < n; i++) {
        double want = (double)N_CMIDS * weights[i] / (double)total;
        double dev = ((double)wins[i] - want) / want;
        if (dev > 0.05 || dev < -0.05)
            fprintf(stderr, "\n  host %zu: %u wins, want %.0f (%+.1f%%)\n", i, wins[i], want,
                    100 * dev);
        CU_ASSERT(dev <= 0.05 && dev >= -0.05);
    }
}

static void test_spread_equal(void)
{
    static const uint32_t w[] = {1, 1, 1};
    check_spread(w, 3, 1);
    check_spread(w, 3, 2);
    static const uint32_t w100[] = {100, 100, 100}; /* only ratios matter */
    check_spread(w100, 3, 3);
}

static void test_spread_weighted(void)
{
    static const uint32_t w[] = {1, 2, 3};
    check_spread(w, 3, 1);
    check_spread(w, 3, 2);
}

/* Adding a host moves only the CMIDs that now rank it first (about its
 * share of the new total) and never moves a CMID between two old hosts. */
static void check_add(const uint32_t *weights, uint64_t seed)
{
    struct kr_hrw_node nodes[4];
    make_nodes(nodes, names4, weights, 4);
    unsigned moved = 0, between_old = 0;
    uint64_t st = seed;
    for (int i = 0; i < N_CMIDS; i++) {
        uint8_t cmid[16];
        random_cmid(&st, cmid);
        int before = kr_hrw_best(nodes, 3, cmid), after = kr_hrw_best(nodes, 4, cmid);
        if (before == after)
            continue;
        moved++;
        if (after != 3)
            between_old++;
    }
    double want =
        (double)N_CMIDS * weights[3] / (double)(weights[0] + weights[1] + weights[2] + weights[3]);
    double dev = (moved - want) / want;
    if (dev > 0.05 || dev < -0.05)
        fprintf(stderr, "\n  add: %u moved, want %.0f\n", moved, want);
    CU_ASSERT(dev <= 0.05 && dev >= -0.05);
    CU_ASSERT_EQUAL(between_old, 0);
}

static void test_add_host(void)
{
    static const uint32_t equal[] = {1, 1, 1, 1}; /* ~1/4 move */
    check_add(equal, 7);
    static const uint32_t weighted[] = {1, 2, 3, 2}; /* ~2/8 move */
    check_add(weighted, 8);
}

/* Removing a host moves only its CMIDs, each to its own second choice. */
static void test_remove_host(void)
{
    static const uint32_t w[] = {1, 2, 3, 2};
    struct kr_hrw_node all[4], rest[3];
    make_nodes(all, names4, w, 4);
    const size_t gone = 1; /* kms-b; rest keeps a, c, d in that order */
    size_t map[3], k = 0;
    for (size_t i = 0; i < 4; i++)
        if (i != gone) {
            rest[k] = all[i];
            map[k++] = i;
        }
    unsigned moved = 0, wrong = 0;
    uint64_t st = 9;
    for (int i = 0; i < N_CMIDS; i++) {
        uint8_t cmid[16];
        random_cmid(&st, cmid);
        uint16_t order[4];
        CU_ASSERT_EQUAL(kr_hrw_rank(all, 4, cmid, order, 4), 4);
        int after = kr_hrw_best(rest, 3, cmid);
        CU_ASSERT_FATAL(after >= 0);
        size_t expect = order[0] == gone ? order[1] : order[0];
        if (order[0] == gone)
            moved++;
        if (map[after] != expect)
            wrong++;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT(moved > 0.95 * N_CMIDS * 2 / 8 && moved < 1.05 * N_CMIDS * 2 / 8);
}

/* Frozen results: if one of these changes, the hash, the key derivation or
 * the logarithm changed and every unpinned CMID may move to another host.
 * Only update them on purpose (and say so in the release notes). */
static void test_determinism(void)
{
    static const uint64_t keys[4] = {0x0e37d1676b5d495cull, 0x6d270cb8bad6b7bcull,
                                     0x1762a430ea510cf3ull, 0x1d0328411e52ac01ull};
    static const struct {
        const char *cmid;     /* NULL: the zero CMID */
        uint16_t equal[4];    /* ranking of a, b, c, d with weights 1:1:1:1 */
        uint16_t weighted[3]; /* ranking with weights 1:2:3:0 */
    } cases[] = {
        {NULL, {3, 0, 1, 2}, {0, 2, 1}},
        {"ffffffff-ffff-ffff-ffff-ffffffffffff", {0, 2, 3, 1}, {0, 2, 1}},
        {"03020100-0504-0706-0809-0a0b0c0d0e0f", {1, 2, 0, 3}, {1, 2, 0}},
        {"11111111-2222-4333-8444-555555555554", {1, 0, 2, 3}, {1, 0, 2}},
        {"55c92734-d682-4d71-983e-d6ec3f16059f", {3, 2, 1, 0}, {2, 1, 0}},
        {"e1c51358-fe3e-4203-a4a2-3b6b20c9734e", {2, 3, 1, 0}, {2, 1, 0}},
    };
    struct kr_hrw_node nodes[4];
    for (size_t i = 0; i < 4; i++) {
        nodes[i].key = kr_hrw_key(names4[i]);
        CU_ASSERT_EQUAL(nodes[i].key, keys[i]);
    }
    for (size_t k = 0; k < N(cases); k++) {
        uint8_t cmid[16] = {0};
        if (cases[k].cmid)
            CU_ASSERT_EQUAL_FATAL(kr_guid_parse(cases[k].cmid, cmid), 0);
        uint16_t o[4];
        for (size_t i = 0; i < 4; i++)
            nodes[i].weight = 1;
        CU_ASSERT_EQUAL(kr_hrw_rank(nodes, 4, cmid, o, 4), 4);
        CU_ASSERT(memcmp(o, cases[k].equal, sizeof(cases[k].equal)) == 0);
        nodes[0].weight = 1, nodes[1].weight = 2, nodes[2].weight = 3, nodes[3].weight = 0;
        CU_ASSERT_EQUAL(kr_hrw_rank(nodes, 4, cmid, o, 4), 3);
        CU_ASSERT(memcmp(o, cases[k].weighted, sizeof(cases[k].weighted)) == 0);
        if (k == 0) /* bit-exact: our own logarithm, no libm rounding */
            CU_ASSERT_EQUAL(kr_hrw_score(&nodes[0], cmid), 5.175092252007504);
    }
}

/* The ranking does not depend on where a host sits in the array. */
static void test_order_independence(void)
{
    static const char *const names[] = {"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7"};
    static const uint32_t w[] = {1, 5, 2, 2, 0, 3, 1, 7};
    struct kr_hrw_node base[8], shuf[8];
    make_nodes(base, names, w, 8);
    uint64_t st = 11;
    unsigned bad = 0;
    for (int i = 0; i < 2000; i++) {
        uint8_t cmid[16];
        random_cmid(&st, cmid);
        /* A Fisher-Yates shuffle per CMID. */
        memcpy(shuf, base, sizeof(base));
        for (size_t j = 7; j > 0; j--) {
            size_t r = next(&st) % (j + 1);
            struct kr_hrw_node t = shuf[j];
            shuf[j] = shuf[r];
            shuf[r] = t;
        }
        uint16_t a[8], b[8];
        size_t na = kr_hrw_rank(base, 8, cmid, a, 8), nb = kr_hrw_rank(shuf, 8, cmid, b, 8);
        CU_ASSERT_EQUAL(na, 7);
        CU_ASSERT_EQUAL(nb, 7);
        for (size_t j = 0; j < na && j < nb; j++)
            bad += base[a[j]].key != shuf[b[j]].key;
        bad += base[kr_hrw_best(base, 8, cmid)].key != shuf[kr_hrw_best(shuf, 8, cmid)].key;
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* rank agrees with best and with the scores; weight 0 is left out;
 * max_out truncates to a prefix; bad sizes are refused. */
static void test_rank_contract(void)
{
    static const char *const names[] = {"a", "b", "c", "d", "e"};
    static const uint32_t w[] = {3, 0, 1, 4, 1};
    struct kr_hrw_node nodes[5];
    make_nodes(nodes, names, w, 5);
    uint64_t st = 5;
    for (int i = 0; i < 1000; i++) {
        uint8_t cmid[16];
        random_cmid(&st, cmid);
        uint16_t full[5], part[2];
        size_t n = kr_hrw_rank(nodes, 5, cmid, full, 5);
        CU_ASSERT_EQUAL_FATAL(n, 4);
        CU_ASSERT_EQUAL(full[0], kr_hrw_best(nodes, 5, cmid));
        for (size_t j = 0; j < n; j++) {
            CU_ASSERT_NOT_EQUAL(full[j], 1);
            CU_ASSERT(kr_hrw_score(&nodes[full[j]], cmid) > 0);
            if (j > 0)
                CU_ASSERT(kr_hrw_score(&nodes[full[j - 1]], cmid) >=
                          kr_hrw_score(&nodes[full[j]], cmid));
        }
        CU_ASSERT_EQUAL(kr_hrw_rank(nodes, 5, cmid, part, 2), 2);
        CU_ASSERT(part[0] == full[0] && part[1] == full[1]);
        CU_ASSERT_EQUAL(kr_hrw_score(&nodes[1], cmid), 0.0);
    }
    uint8_t cmid[16] = {0};
    uint16_t o[4];
    struct kr_hrw_node zero[2] = {{kr_hrw_key("x"), 0}, {kr_hrw_key("y"), 0}};
    CU_ASSERT_EQUAL(kr_hrw_best(zero, 2, cmid), -1);
    CU_ASSERT_EQUAL(kr_hrw_rank(zero, 2, cmid, o, 4), 0);
    CU_ASSERT_EQUAL(kr_hrw_best(nodes, 0, cmid), -1);
    CU_ASSERT_EQUAL(kr_hrw_rank(nodes, 0, cmid, o, 4), 0);
    CU_ASSERT_EQUAL(kr_hrw_rank(nodes, 5, cmid, o, 0), 0);
    CU_ASSERT_EQUAL(kr_hrw_best(nodes, KR_HRW_MAX_NODES + 1, cmid), -1);
    CU_ASSERT_EQUAL(kr_hrw_rank(nodes, KR_HRW_MAX_NODES + 1, cmid, o, 4), 0);
    /* The same name twice ties exactly: still deterministic, lower index. */
    struct kr_hrw_node dup[2] = {{kr_hrw_key("same"), 1}, {kr_hrw_key("same"), 1}};
    CU_ASSERT_EQUAL(kr_hrw_best(dup, 2, cmid), 0);
    CU_ASSERT_EQUAL(kr_hrw_rank(dup, 2, cmid, o, 2), 2);
    CU_ASSERT(o[0] == 0 && o[1] == 1);
}

KR_SUITE(hrw)
{
    CU_pSuite s = CU_add_suite("hrw", NULL, NULL);
    CU_add_test(s, "spread 1:1:1", test_spread_equal);
    CU_add_test(s, "spread 1:2:3", test_spread_weighted);
    CU_add_test(s, "adding a host", test_add_host);
    CU_add_test(s, "removing a host", test_remove_host);
    CU_add_test(s, "determinism", test_determinism);
    CU_add_test(s, "order independence", test_order_independence);
    CU_add_test(s, "rank contract", test_rank_contract);
}
