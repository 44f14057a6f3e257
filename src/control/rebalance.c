/*
 * rebalance.c - the plan behind POST /v1/rebalance: which pins to move so
 * that the hosts' shares of the clients follow their weights.
 *
 * Why least recently seen first: a KMS host counts the distinct clients it
 * saw in the last 30 days, and a moved client starts counting on its new
 * host only when it renews. Moving the clients that were quiet longest
 * disturbs the counts the least (they may be gone already), and the ones
 * renewing every week stay where the count needs them.
 *
 * Stability: a pin moves off a POOL host only while that host holds at
 * least one whole pin more than its share, and onto a host at least one
 * below its share, so a balanced pool (every host within one pin of its
 * share) is left alone and running the plan twice moves nothing the second
 * time. EVICT hosts (retired, removed, no longer known) give every pin,
 * each to the POOL host furthest below its share. FIXED hosts (drain,
 * maint, down) keep theirs: those states have their own meaning for pins.
 */
#include <stdlib.h>
#include <string.h>

#include "control/control-internal.h"

static int by_age(const void *a, const void *b)
{
    const struct ctl_rb_pin *x = a, *y = b;
    if (x->last_seen != y->last_seen)
        return x->last_seen < y->last_seen ? -1 : 1;
    return memcmp(x->cmid, y->cmid, 16);
}

static bool in_pool(const struct ctl_rb_host *h)
{
    return h->role == CTL_RB_POOL && h->weight > 0;
}

size_t ctl_rebalance_plan(struct ctl_rb_host *hosts, size_t n_hosts, struct ctl_rb_pin *pins,
                          size_t n_pins, size_t max, struct ctl_rb_move *out)
{
    double wsum = 0;
    uint64_t total = 0;
    size_t m = 0;

    for (size_t i = 0; i < n_hosts; i++) {
        hosts[i].target = 0;
        if (in_pool(&hosts[i])) {
            wsum += hosts[i].weight;
            total += hosts[i].count;
        } else if (hosts[i].role == CTL_RB_EVICT) {
            total += hosts[i].count;
        }
    }
    if (wsum <= 0)
        return 0; /* nowhere to move anything */
    for (size_t i = 0; i < n_hosts; i++)
        if (in_pool(&hosts[i]))
            hosts[i].target = (double)total * hosts[i].weight / wsum;

    qsort(pins, n_pins, sizeof(*pins), by_age);
    for (size_t i = 0; i < n_pins && m < max; i++) {
        uint32_t s = pins[i].host;
        if (s >= n_hosts)
            continue;
        struct ctl_rb_host *src = &hosts[s];
        bool evict = src->role == CTL_RB_EVICT;
        if (!evict && (!in_pool(src) || (double)src->count - src->target < 1.0))
            continue;
        int best = -1;
        double deficit = 0;
        for (size_t d = 0; d < n_hosts; d++) {
            if (d == s || !in_pool(&hosts[d]))
                continue;
            double def = hosts[d].target - (double)hosts[d].count;
            if (best < 0 || def > deficit) {
                best = (int)d;
                deficit = def;
            }
        }
        if (best < 0 || (!evict && deficit < 1.0))
            continue;
        src->count--;
        hosts[best].count++;
        out[m].pin = (uint32_t)i;
        out[m].from = s;
        out[m].to = (uint32_t)best;
        m++;
    }
    return m;
}
