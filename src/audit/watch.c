/*
 * watch.c - kmsrelayctl audit --dead-for: evidence over time from repeated
 * probes, for a machine without a daemon's history. A target counts as dead
 * only when it was DEAD (kr_audit_liveness) in every probe across the whole
 * span: one answer, or one lookup that could not decide, and its clock is
 * gone. That is the daemon's dead_after rule (history.c) on a shorter scale.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit/audit-internal.h"

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int cancelled(const struct kr_audit_opts *o)
{
    return o->cancel && __atomic_load_n(o->cancel, __ATOMIC_ACQUIRE);
}

/* Starts every DEAD target's clock at `t0`; returns how many there are. */
static unsigned start(struct kr_audit_result *r, int64_t t0)
{
    unsigned n = 0;
    for (size_t k = 0; k < r->n; k++)
        for (unsigned i = 0; i < r->e[k].set->n_rr; i++) {
            struct kr_audit_probe *p = &r->e[k].set->probe[i];
            p->failing_since = kr_audit_liveness(p) == KR_AUDIT_DEAD ? t0 : 0;
            n += p->failing_since != 0;
            if (p->failing_since == 0 && kr_audit_liveness(p) != KR_AUDIT_LIVE)
                snprintf(p->over_time, sizeof(p->over_time),
                         "no evidence over time: the first probe could not decide");
        }
    return n;
}

/* One round: probes each target still DEAD again; returns how many still are. */
static unsigned round_once(const struct kr_audit_opts *o, struct kr_audit_result *r, unsigned round,
                           int64_t now)
{
    unsigned n = 0;
    for (size_t k = 0; k < r->n && !cancelled(o); k++) {
        struct kr_audit_rrset *set = r->e[k].set;
        for (unsigned i = 0; i < set->n_rr && !cancelled(o); i++) {
            struct kr_audit_probe *p = &set->probe[i];
            int64_t since = p->failing_since;
            if (!since)
                continue;
            /* The other ports were tried once; what they showed (a host
             * that moved its port: MISCONFIGURED, not dead) stays. */
            unsigned n_alt = p->n_alt;
            struct kr_audit_try alt[KR_AUDIT_MAX_ALT];
            memcpy(alt, p->alt, sizeof(alt));
            kr_audit_probe_one(o, &r->e[k], i);
            p->n_alt = n_alt;
            memcpy(p->alt, alt, sizeof(alt));
            int live = kr_audit_liveness(p);
            if (live == KR_AUDIT_DEAD) {
                p->failing_since = since;
                snprintf(p->over_time, sizeof(p->over_time),
                         "dead in all %u probes over %" PRId64 " s", round + 1, now - since);
                n++;
            } else {
                snprintf(p->over_time, sizeof(p->over_time),
                         "no evidence over time: probe %u of --dead-for %s", round + 1,
                         live == KR_AUDIT_LIVE ? "found it answering" : "could not decide");
            }
        }
    }
    return n;
}

void kr_audit_watch(const struct kr_audit_opts *o, struct kr_audit_result *r, uint64_t span_ms,
                    uint64_t every_ms, FILE *progress)
{
    uint64_t t0 = kr_now_us();
    unsigned left = start(r, kr_wall_s());
    if (every_ms == 0)
        every_ms = 1000;
    for (unsigned round = 1; left && !cancelled(o); round++) {
        uint64_t elapsed = (kr_now_us() - t0) / 1000;
        if (elapsed >= span_ms)
            break;
        uint64_t wait = span_ms - elapsed < every_ms ? span_ms - elapsed : every_ms;
        if (progress) {
            fprintf(progress,
                    "kmsrelayctl audit: %u failing target(s); probing again in %" PRIu64
                    " ms (%" PRIu64 " of %" PRIu64 " ms of --dead-for done)\n",
                    left, wait, elapsed, span_ms);
            fflush(progress);
        }
        sleep_ms(wait);
        left = round_once(o, r, round, kr_wall_s());
    }
}
