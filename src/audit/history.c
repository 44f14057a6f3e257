/*
 * history.c - the daemon's memory of failing targets, and its audit log
 * lines. "Since when has kms-dead:1688 been failing?" is kept in the
 * store's kv table as one JSON object (KR_AUDIT_KV_FAILING), rewritten
 * after every run with only the targets failing now, so entries of
 * records that left the DNS disappear by themselves.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit-internal.h"
#include "kmsrelay/log.h"
#include "kmsrelay/store.h"

static int fails(const struct kr_audit_probe *p)
{
    for (unsigned i = 0; i < p->n_tries; i++)
        if (p->tries[i].stage == KR_PROBE_OK)
            return 0;
    return !p->dot;
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
