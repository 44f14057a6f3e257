/*
 * history.c - the daemon's memory of failing targets, and its audit log
 * lines. "Since when has kms-dead:1688 been failing?" is kept in the
 * store's kv table as one JSON object (KR_AUDIT_KV_FAILING), rewritten
 * after every run with only the targets failing now, so entries of
 * records that left the DNS disappear by themselves. kmsrelayctl audit
 * --history reads the same memory back from the daemon's last report
 * (kr_audit_from_daemon).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit-internal.h"
#include "kmsrelay/log.h"
#include "kmsrelay/store.h"

/* Only a DEAD target keeps (or starts) its clock: one that answers, and
 * one whose lookup failed (no evidence either way), start again from zero,
 * so that dead_after always means "dead in every run for that long". */
static int fails(const struct kr_audit_probe *p)
{
    return kr_audit_liveness(p) == KR_AUDIT_DEAD;
}

void kr_audit_history(struct kr_store *store, struct kr_audit_result *r, int64_t now)
{
    json_t *old = NULL, *cur = json_object();
    if (store) {
        char *buf = malloc(KR_KV_VAL_MAX + 1);
        size_t len = 0;
        if (buf && kr_store_kv_get(store, KR_AUDIT_KV_FAILING, buf, KR_KV_VAL_MAX, &len) == 0)
            old = json_loadb(buf, len, 0, NULL);
        free(buf);
    }
    for (size_t k = 0; k < r->n; k++) {
        struct kr_audit_rrset *set = r->e[k].set;
        for (unsigned i = 0; i < set->n_rr; i++) {
            struct kr_audit_probe *p = &set->probe[i];
            if (!fails(p))
                continue;
            char key[KR_AUDIT_NAME_MAX + 8];
            snprintf(key, sizeof(key), "%s|%u", set->rr[i].target, (unsigned)set->rr[i].port);
            json_t *since = json_object_get(old, key);
            p->failing_since = json_is_integer(since) ? json_integer_value(since) : now;
            json_object_set_new(cur, key, json_integer(p->failing_since));
        }
    }
    if (store) {
        char *text = json_dumps(cur, JSON_COMPACT | JSON_SORT_KEYS);
        if (text && strlen(text) <= KR_KV_VAL_MAX &&
            kr_store_kv_put(store, KR_AUDIT_KV_FAILING, text, strlen(text)) != 0)
            kr_log(KR_LOG_WARN, "event=dns_audit_error msg=\"cannot save failing targets\"");
        free(text);
    }
    json_decref(old);
    json_decref(cur);
}

void kr_audit_log(const json_t *doc, uint64_t took_ms)
{
    size_t i;
    const json_t *f;
    char q1[400], q2[300];
    json_array_foreach(json_object_get(doc, "findings"), i, f)
    {
        const json_t *rec = json_object_get(f, "record");
        const char *cls = json_string_value(json_object_get(f, "class"));
        int problem = json_is_true(json_object_get(f, "problem"));
        int unconfirmed = !json_is_true(json_object_get(f, "confirmed"));
        if (!problem && !unconfirmed)
            continue;
        const json_t *since = json_object_get(json_object_get(f, "evidence"), "failing_since");
        kr_log(problem ? KR_LOG_WARN : KR_LOG_INFO,
               "event=dns_audit owner=%s class=%s confirmed=%s target=%s port=%" JSON_INTEGER_FORMAT
               " failing_since=%" JSON_INTEGER_FORMAT " reason=%s",
               json_string_value(json_object_get(f, "owner")), cls, unconfirmed ? "no" : "yes",
               kr_logfmt_value(rec ? json_string_value(json_object_get(rec, "target")) : "-", q2,
                               sizeof(q2)),
               rec ? json_integer_value(json_object_get(rec, "port")) : 0,
               json_is_integer(since) ? json_integer_value(since) : 0,
               kr_logfmt_value(json_string_value(json_object_get(f, "reason")), q1, sizeof(q1)));
    }
    const json_t *s = json_object_get(doc, "summary");
    kr_log(KR_LOG_INFO,
           "event=dns_audit_done records=%" JSON_INTEGER_FORMAT " problems=%" JSON_INTEGER_FORMAT
           " errors=%zu took_ms=%" PRIu64,
           json_integer_value(json_object_get(s, "records")),
           json_integer_value(json_object_get(s, "problems")),
           json_array_size(json_object_get(doc, "errors")), took_ms);
    json_array_foreach(json_object_get(doc, "errors"), i, f)
        kr_log(KR_LOG_WARN, "event=dns_audit_error msg=%s",
               kr_logfmt_value(json_string_value(f), q1, sizeof(q1)));
}

/* ---- kmsrelayctl audit --history: the daemon's memory ---------------------- */

static void note(struct kr_audit_probe *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(struct kr_audit_probe *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->over_time, sizeof(p->over_time), fmt, ap);
    va_end(ap);
}

/* The daemon's finding for (owner, target, port) that says dead, or NULL. */
static const json_t *daemon_finding(const json_t *report, const char *owner,
                                    const struct kr_audit_rec *r)
{
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(report, "findings"), i, f)
    {
        const json_t *rec = json_object_get(f, "record");
        const char *cls = json_string_value(json_object_get(f, "class"));
        const char *o = json_string_value(json_object_get(f, "owner"));
        const char *t = json_string_value(json_object_get(rec, "target"));
        if (!cls || !o || !t || strcmp(o, owner) != 0 || strcmp(t, r->target) != 0 ||
            json_integer_value(json_object_get(rec, "port")) != r->port)
            continue;
        if (strcmp(cls, "STALE_DEAD") == 0 || strcmp(cls, "PEER_STALE") == 0)
            return f;
    }
    return NULL;
}

/* Checks the report as a whole; returns its dead_after_s or 0 with why. */
static uint64_t usable(const json_t *report, int64_t now, uint64_t max_age_s, char *why, size_t cap)
{
    const json_t *t = json_object_get(report, "time");
    const json_t *d = json_object_get(report, "dead_after_s");
    if (!json_is_object(report)) {
        if (!why[0]) /* the caller may know better (the daemon was unreachable) */
            snprintf(
                why, cap,
                "the daemon has no audit report: its periodic audit is off or has not run yet "
                "(set dns.audit_interval and dns.zones in kmsrelayd's config, or use --dead-for)");
        return 0;
    }
    if (!json_is_integer(t) || !json_is_integer(d) || json_integer_value(d) <= 0) {
        snprintf(why, cap, "the daemon's audit report has no time or dead_after_s");
        return 0;
    }
    int64_t age = now - (int64_t)json_integer_value(t);
    if (age > (int64_t)max_age_s) {
        snprintf(
            why, cap,
            "the daemon's last audit is %" PRId64 " s old, more than --history-max-age (%" PRIu64
            " s): a target may have answered since (lower dns.audit_interval, or use --dead-for)",
            age, max_age_s);
        return 0;
    }
    return (uint64_t)json_integer_value(d);
}

uint64_t kr_audit_from_daemon(struct kr_audit_result *r, const json_t *report, int64_t now,
                              uint64_t max_age_s, char *why, size_t cap)
{
    uint64_t dead_after = usable(report, now, max_age_s, why, cap);
    for (size_t k = 0; k < r->n; k++) {
        struct kr_audit_rrset *set = r->e[k].set;
        for (unsigned i = 0; i < set->n_rr; i++) {
            struct kr_audit_probe *p = &set->probe[i];
            p->failing_since = 0;
            if (!fails(p))
                continue;
            if (!dead_after) {
                note(p, "no evidence over time: %s", why);
                continue;
            }
            const json_t *f = daemon_finding(report, set->owner, &set->rr[i]);
            const json_t *since = json_object_get(json_object_get(f, "evidence"), "failing_since");
            if (!json_is_integer(since) || json_integer_value(since) <= 0) {
                note(p,
                     "no evidence over time: the daemon's last audit did not find %s port %u "
                     "failing (wait for its next runs, or use --dead-for)",
                     set->rr[i].target, set->rr[i].port);
                continue;
            }
            p->failing_since = json_integer_value(since);
            note(p,
                 "the daemon's audit: failing since %" PRId64 " (%" PRId64
                 " s), dead after %" PRIu64 " s; failing now too",
                 p->failing_since, now - p->failing_since, dead_after);
        }
    }
    return dead_after;
}
