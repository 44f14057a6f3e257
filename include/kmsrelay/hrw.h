/*
 * hrw.h - weighted rendezvous hashing (highest random weight) of a CMID over
 * the eligible backend hosts of a pool.
 *
 * Every host gets, for a given CMID, the score
 *
 *     score = w / -ln(u),   u = uniform in (0,1) from hash(cmid, host key)
 *
 * and the hosts are ranked by score, best first. This is the standard
 * weighted form: host i wins with probability w_i / sum(w), adding a host
 * moves only the CMIDs that now rank the new host first, and removing a
 * host moves only the CMIDs it had (each to its own next choice). The
 * daemon pins the chosen host; on a failure it walks the same ranking.
 *
 * Stability: the ranking depends only on the CMID bytes, the host names and
 * the weights; never on the order of hosts in the config, the process or
 * the machine. The hash is SipHash-2-4 and -ln(u) is computed by our own
 * code, not libm, so a libc upgrade cannot flip near ties. Changing either
 * reshuffles every unpinned CMID: the determinism test in test_hrw.c pins
 * a few expected winners so that such a change is noticed.
 *
 * Weight 0 means "never choose": such hosts are left out of rankings
 * (draining a host without forgetting it). Exact score ties (same name
 * twice, which config validation should reject) are broken by the larger
 * key, then the lower index, so the result is still deterministic.
 *
 * Cost: one SipHash-2-4 of 16 bytes and one logarithm per host, no
 * allocation. kr_hrw_best() skips the logarithm of hosts that cannot win.
 * Measured at -O2 on a busy x86-64 (AMD EPYC) VM, CPU time: best ~80 ns for
 * 3 hosts, ~230 ns for 10, ~330 ns for 16; a full rank ~110, ~430, ~800 ns.
 */
#ifndef KMSRELAY_HRW_H
#define KMSRELAY_HRW_H

#include <stddef.h>
#include <stdint.h>

/* Largest node array accepted (rank keeps scores on the stack and costs
 * O(n^2) comparisons, both fine for pools of a handful of hosts).
 * Also bounded by the uint16_t indices. Config validation enforces it. */
#define KR_HRW_MAX_NODES 256

/* One rankable host: plain data the caller fills and owns. */
struct kr_hrw_node {
    uint64_t key;    /* kr_hrw_key(host name), computed once at config load */
    uint32_t weight; /* relative share; 0 = never chosen */
};

/* The stable 64-bit key of a host name (SipHash-2-4 of the name's bytes
 * under a fixed project key). `name` must not be NULL. */
uint64_t kr_hrw_key(const char *name);

/* The node's score for this CMID: > 0 for weight > 0, and 0 for weight 0.
 * Higher is better. */
double kr_hrw_score(const struct kr_hrw_node *n, const uint8_t cmid[16]);

/* Writes the indices of the nodes with weight > 0 into order_out, best
 * first, at most max_out of them, and returns how many were written. Returns
 * 0 when n > KR_HRW_MAX_NODES (a caller bug: validate the pool size). */
size_t kr_hrw_rank(const struct kr_hrw_node *nodes, size_t n, const uint8_t cmid[16],
                   uint16_t *order_out, size_t max_out);

/* The index of the best node (what kr_hrw_rank would put first) without
 * sorting, or -1 when no node has weight > 0 or n > KR_HRW_MAX_NODES. */
int kr_hrw_best(const struct kr_hrw_node *nodes, size_t n, const uint8_t cmid[16]);

#endif
