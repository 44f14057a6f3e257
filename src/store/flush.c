/*
 * flush.c - group commit of the pin write queue, the optional background
 * flusher, and the bounded expiry sweep that feeds the queue.
 *
 * A flush swaps the queue for the empty spare under the mutex, then commits
 * the swapped-out batch ("inflight") with no lock held, so puts and lookups
 * go on during the fsync: lookups consult the inflight batch too until the
 * commit is over. Writes are applied in key (CMID, application) order, which keeps the pages an
 * LMDB commit touches (and copies) to a minimum for random keys.
 *
 * On a failed commit nothing of the batch reached the database (LMDB aborts
 * the whole txn), so the batch goes back in front of what was queued
 * meanwhile, trimmed to max_pending, and the store is marked degraded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmsrelay/err.h"
#include "kmsrelay/store.h"
#include "store/store-internal.h"

struct apply_count {
    uint64_t written, deleted, expired;
};

static int cmp_pend(const void *a, const void *b)
{
    const struct pend *x = *(const struct pend *const *)a;
    const struct pend *y = *(const struct pend *const *)b;
    return memcmp(x->key, y->key, PEND_KEY_LEN);
}

static int apply(struct kr_store *s, MDB_txn *txn, const struct pend *e, struct apply_count *c)
{
    MDB_val k = store_val(e->key, PEND_KEY_LEN), v;
    int rc;
    switch (e->op) {
    case PEND_PUT:
        v.mv_size = e->len;
        v.mv_data = e->val;
        if ((rc = mdb_put(txn, s->dbi_pins, &k, &v, 0)) == 0)
            c->written++;
        return rc;
    case PEND_DEL:
        rc = mdb_del(txn, s->dbi_pins, &k, NULL);
        if (rc == 0)
            c->deleted++;
        return rc == MDB_NOTFOUND ? 0 : rc;
    default: {
        /* Conditional: the client may have come back since the sweep. */
        rc = mdb_get(txn, s->dbi_pins, &k, &v);
        if (rc)
            return rc == MDB_NOTFOUND ? 0 : rc;
        int64_t ls;
        if (store_pin_rec_last_seen(v.mv_data, v.mv_size, &ls) != 0 || ls >= e->idle_before)
            return 0;
        if ((rc = mdb_del(txn, s->dbi_pins, &k, NULL)) == 0)
            c->expired++;
        return rc;
    }
    }
}

/* Applies the inflight batch in one txn. Returns an LMDB/errno code. */
static int commit_batch(struct kr_store *s, const struct batch *b, struct apply_count *c)
{
    struct pend **v = malloc((b->n ? b->n : 1) * sizeof(*v));
    if (!v)
        return ENOMEM;
    for (size_t i = 0; i < b->n; i++)
        v[i] = batch_at(b, i);
    qsort(v, b->n, sizeof(*v), cmp_pend);
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(s, 0, &txn);
    if (rc == 0) {
        for (size_t i = 0; rc == 0 && i < b->n; i++)
            rc = apply(s, txn, v[i], c);
        rc = store_note_rc(s, rc); /* read zero pages: never commit what they led to */
        if (rc == 0)
            rc = mdb_txn_commit(txn); /* on failure LMDB aborts the txn itself */
        else
            mdb_txn_abort(txn);
    }
    free(v);
    /* A commit that read the guard's zero pages counts as failed: its pins
     * stay queued (the file is not used again anyway). */
    return store_note_rc(s, rc);
}

int kr_store_flush(struct kr_store *s, const char **why)
{
    pthread_mutex_lock(&s->flush_mu);
    pthread_mutex_lock(&s->mu);
    if (s->pending->n == 0) {
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_unlock(&s->flush_mu);
        return 0;
    }
    struct batch *t = s->pending;
    s->pending = s->inflight; /* the empty spare */
    s->inflight = t;
    s->committing = true;
    store_queued_update(s);
    pthread_mutex_unlock(&s->mu);

    /* Only this thread changes the inflight batch; lookups just read it. */
    struct apply_count c = {0, 0, 0};
    uint64_t t0 = store_now_us();
    int mrc = s->env_open ? commit_batch(s, s->inflight, &c) : EINVAL;
    uint64_t dt = store_now_us() - t0;
    const char *mwhy = "";
    int rc = store_err_from_mdb(mrc, &mwhy);
    if (rc != 0 && atomic_load(&s->damaged)) {
        rc = KR_EIO;
        mwhy = s->damage_why;
    }

    pthread_mutex_lock(&s->mu);
    s->committing = false; /* from here on no reader looks at inflight */
    if (rc == 0) {
        s->st.commits++;
        s->st.commit_us_total += dt;
        s->st.commit_us_last = dt;
        if (dt > s->st.commit_us_max)
            s->st.commit_us_max = dt;
        s->st.pins_written += c.written;
        s->st.pins_deleted += c.deleted;
        s->st.pins_expired += c.expired;
        atomic_store(&s->degraded, false);
    } else {
        /* Nothing reached the database: queue the batch again, in front. */
        batch_merge(s->inflight, s->pending, &s->st.drops);
        t = s->pending;
        s->pending = s->inflight;
        s->inflight = t;
        s->st.commit_failures++;
        if (rc == KR_ENOSPC)
            s->st.map_full_events++;
        s->st.last_error = rc;
        s->st.last_why = mwhy;
        atomic_store(&s->degraded, true);
        if (why)
            *why = mwhy;
    }
    store_queued_update(s);
    pthread_mutex_unlock(&s->mu);
    /* Freeing a committed batch is O(n): do it without blocking lookups.
     * flush_mu keeps the next flush from reusing the batch meanwhile. */
    if (rc == 0)
        batch_clear(s->inflight);
    pthread_mutex_unlock(&s->flush_mu);
    return rc;
}

static void *flusher_main(void *arg)
{
    struct kr_store *s = arg;
    bool failed = false;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += s->interval_ms / 1000;
        dl.tv_nsec += (long)(s->interval_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        /* A full queue wakes us early, unless the last commit failed: then
         * retrying at once would only spin on a full map. */
        while (!s->stop && (failed || s->pending->n < s->kick_at))
            if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
                break;
        if (s->stop || s->pending->n == 0)
            continue;
        pthread_mutex_unlock(&s->mu);
        failed = kr_store_flush(s, NULL) != 0;
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int store_thread_start(struct kr_store *s)
{
    if (pthread_create(&s->thr, NULL, flusher_main, s) != 0)
        return KR_EIO;
    s->thr_running = true;
    return 0;
}

void store_thread_stop(struct kr_store *s)
{
    if (!s->thr_running)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thr, NULL);
    s->thr_running = false;
}

/* Queues a conditional delete unless the CMID already has a queued write.
 * Returns false when the queue is full (the sweep must stop). */
static bool queue_expiry(struct kr_store *s, const uint8_t key[KR_PIN_KEY_LEN], int64_t idle_before,
                         size_t *q)
{
    bool ok = true;
    pthread_mutex_lock(&s->mu);
    if (batch_find(s->pending, key) || (s->committing && batch_find(s->inflight, key))) {
        /* a fresher write is on its way */
    } else if (s->pending->n >= s->pending->cap) {
        ok = false; /* never evict real writes for an expiry */
    } else if (batch_set(s->pending, key, PEND_EXPIRE, NULL, 0, idle_before, &s->st.drops) == 0) {
        (*q)++;
        store_queued_update(s);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

int kr_store_expire(struct kr_store *s, int64_t idle_before, size_t max_scan, size_t *queued,
                    bool *wrapped)
{
    size_t q = 0;
    bool wr = false, full = false;
    uint8_t start[KR_PIN_KEY_LEN], last[KR_PIN_KEY_LEN] = {0};
    pthread_mutex_lock(&s->mu);
    bool have = s->sweep_valid;
    memcpy(start, s->sweep_key, KR_PIN_KEY_LEN);
    pthread_mutex_unlock(&s->mu);
    bool moved = false;

    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = store_txn_begin(s, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_cursor_open(txn, s->dbi_pins, &cur);
    MDB_val k = {KR_PIN_KEY_LEN, start}, v;
    if (rc == 0 && max_scan > 0) {
        rc = mdb_cursor_get(cur, &k, &v, have ? MDB_SET_RANGE : MDB_FIRST);
        if (rc == 0 && have && k.mv_size == KR_PIN_KEY_LEN &&
            memcmp(k.mv_data, start, KR_PIN_KEY_LEN) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); /* resume after it */
    }
    for (size_t n = 0; rc == 0 && n < max_scan; n++) {
        int64_t ls;
        if (k.mv_size == KR_PIN_KEY_LEN &&
            store_pin_rec_last_seen(v.mv_data, v.mv_size, &ls) == 0 && ls < idle_before &&
            !queue_expiry(s, k.mv_data, idle_before, &q)) {
            full = true;
            break;
        }
        if (k.mv_size == KR_PIN_KEY_LEN) {
            memcpy(last, k.mv_data, KR_PIN_KEY_LEN);
            moved = true;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND) {
        wr = true;
        rc = 0;
    }
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    rc = store_note_rc(s, rc);
    if (rc == 0) {
        pthread_mutex_lock(&s->mu);
        if (wr && !full) {
            s->sweep_valid = false;
        } else if (moved) {
            memcpy(s->sweep_key, last, KR_PIN_KEY_LEN);
            s->sweep_valid = true;
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (queued)
        *queued = q;
    if (wrapped)
        *wrapped = wr && !full;
    return store_err_from_mdb(rc, NULL);
}
