/*
 * iter.c - walking every pin (reports, rebalancing) with the write queue
 * merged in.
 *
 * The queue is copied (one allocation for all values) and sorted by key
 * BEFORE the first read transaction starts: a write that is queued at that
 * moment is either in the copy or, if it commits meanwhile, in the copy AND
 * in the database, so no write falls between the two. The database is then
 * walked in key order (CMID, then application id) in chunks, each in its own short read transaction
 * (re-positioned with MDB_SET_RANGE after the last key), because one long
 * read txn over a million pins would keep LMDB from reusing freed pages for
 * its whole duration. A walk of one machine (kr_store_pin_iter_cmid) is
 * the same walk restricted to the keys that start with its CMID.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/store.h"
#include "store/store-internal.h"

#define ITER_CHUNK 4096 /* records per read transaction */

struct snap {
    uint8_t key[KR_PIN_KEY_LEN];
    uint8_t op;
    uint16_t len;
    int64_t idle_before;
    const uint8_t *val; /* into the arena */
};

struct walk {
    struct kr_store *s;
    int (*cb)(const struct kr_pin *, void *);
    void *ctx;
    const uint8_t *prefix; /* 16 CMID bytes, or NULL for every pin */
    struct snap *sn;
    size_t ns, j;
    uint64_t bad;
    struct kr_pin pin;
};

static int cmp_snap(const void *a, const void *b)
{
    return memcmp(((const struct snap *)a)->key, ((const struct snap *)b)->key, KR_PIN_KEY_LEN);
}

static bool wanted(const struct walk *w, const uint8_t key[KR_PIN_KEY_LEN])
{
    return !w->prefix || memcmp(key, w->prefix, 16) == 0;
}

static void snap_one(struct snap *d, const struct pend *e, uint8_t **arena)
{
    memcpy(d->key, e->key, KR_PIN_KEY_LEN);
    d->op = e->op;
    d->len = e->len;
    d->idle_before = e->idle_before;
    d->val = NULL;
    if (e->op == PEND_PUT) {
        memcpy(*arena, e->val, e->len);
        d->val = *arena;
        *arena += e->len;
    }
}

/* Copies the queue (pending wins over inflight). *arena_out owns the bytes. */
static int snapshot(struct kr_store *s, struct walk *w, uint8_t **arena_out)
{
    pthread_mutex_lock(&s->mu);
    const struct batch *p = s->pending, *f = s->committing ? s->inflight : NULL;
    size_t n = p->n + (f ? f->n : 0), bytes = 1;
    for (size_t i = 0; i < p->n; i++)
        bytes += batch_at(p, i)->len;
    for (size_t i = 0; f && i < f->n; i++)
        bytes += batch_at(f, i)->len;
    w->sn = malloc((n ? n : 1) * sizeof(*w->sn));
    uint8_t *arena = malloc(bytes);
    if (!w->sn || !arena) {
        pthread_mutex_unlock(&s->mu);
        free(arena);
        return KR_ENOMEM;
    }
    *arena_out = arena;
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++)
        if (wanted(w, batch_at(p, i)->key))
            snap_one(&w->sn[k++], batch_at(p, i), &arena);
    for (size_t i = 0; f && i < f->n; i++)
        if (wanted(w, batch_at(f, i)->key) && !batch_find(p, batch_at(f, i)->key))
            snap_one(&w->sn[k++], batch_at(f, i), &arena);
    pthread_mutex_unlock(&s->mu);
    w->ns = k;
    qsort(w->sn, k, sizeof(*w->sn), cmp_snap);
    return 0;
}

static int emit(struct walk *w, const uint8_t *key, const void *val, size_t len)
{
    if (kr_pin_decode(val, len, &w->pin, NULL) != 0) {
        w->bad++;
        return 0;
    }
    store_pin_set_key(&w->pin, key);
    return w->cb(&w->pin, w->ctx);
}

/* Emits queued puts of keys ordered before `key` (all when key is NULL). */
static int emit_queued_before(struct walk *w, const uint8_t *key)
{
    int rc = 0;
    while (rc == 0 && w->j < w->ns && (!key || memcmp(w->sn[w->j].key, key, KR_PIN_KEY_LEN) < 0)) {
        const struct snap *q = &w->sn[w->j++];
        if (q->op == PEND_PUT)
            rc = emit(w, q->key, q->val, q->len);
    }
    return rc;
}

/* One stored pin, with its queued write (if any) applied. */
static int visit(struct walk *w, const uint8_t *key, const MDB_val *v)
{
    int rc = emit_queued_before(w, key);
    if (rc)
        return rc;
    if (w->j < w->ns && memcmp(w->sn[w->j].key, key, KR_PIN_KEY_LEN) == 0) {
        const struct snap *q = &w->sn[w->j++];
        int64_t ls;
        if (q->op == PEND_PUT)
            return emit(w, key, q->val, q->len);
        if (q->op == PEND_DEL)
            return 0;
        if (store_pin_rec_last_seen(v->mv_data, v->mv_size, &ls) == 0 && ls < q->idle_before)
            return 0;
    }
    return emit(w, key, v->mv_data, v->mv_size);
}

/* Walks up to ITER_CHUNK stored pins after *last (or from the start).
 * Returns an LMDB code (MDB_NOTFOUND at the end) and the callback's
 * result in *cbrc. */
static int walk_chunk(struct walk *w, uint8_t last[KR_PIN_KEY_LEN], bool *have, int *cbrc)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = store_txn_begin(w->s, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    if ((rc = mdb_cursor_open(txn, w->s->dbi_pins, &cur)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    MDB_val k = {KR_PIN_KEY_LEN, last}, v;
    if (!*have && w->prefix) {
        /* a machine's pairs: from (CMID, zero app id) on */
        memset(last, 0, KR_PIN_KEY_LEN);
        memcpy(last, w->prefix, 16);
    }
    rc = mdb_cursor_get(cur, &k, &v, *have || w->prefix ? MDB_SET_RANGE : MDB_FIRST);
    if (rc == 0 && *have && k.mv_size == KR_PIN_KEY_LEN &&
        memcmp(k.mv_data, last, KR_PIN_KEY_LEN) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    for (size_t n = 0; rc == 0 && n < ITER_CHUNK; n++) {
        if (w->prefix && (k.mv_size < 16 || memcmp(k.mv_data, w->prefix, 16) != 0)) {
            rc = MDB_NOTFOUND; /* past the machine's pairs */
            break;
        }
        if (k.mv_size == KR_PIN_KEY_LEN) {
            memcpy(last, k.mv_data, KR_PIN_KEY_LEN);
            *have = true;
            if ((*cbrc = visit(w, last, &v)) != 0)
                break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return store_note_rc(w->s, rc);
}

static int iter(struct kr_store *s, const uint8_t *prefix, int (*cb)(const struct kr_pin *, void *),
                void *ctx)
{
    struct walk *w = calloc(1, sizeof(*w));
    if (!w)
        return KR_ENOMEM;
    w->s = s;
    w->cb = cb;
    w->ctx = ctx;
    w->prefix = prefix;
    uint8_t *arena = NULL;
    int rc = snapshot(s, w, &arena);
    if (rc)
        goto out;
    uint8_t last[KR_PIN_KEY_LEN];
    bool have = false;
    int cbrc = 0, mrc = 0;
    while (cbrc == 0 && mrc == 0)
        mrc = walk_chunk(w, last, &have, &cbrc);
    if (cbrc)
        rc = cbrc;
    else if (mrc != MDB_NOTFOUND)
        rc = store_err_from_mdb(mrc, NULL);
    else
        rc = emit_queued_before(w, NULL);
out:
    if (w->bad) {
        pthread_mutex_lock(&s->mu);
        s->st.bad_records += w->bad;
        pthread_mutex_unlock(&s->mu);
    }
    free(arena);
    free(w->sn);
    free(w);
    return rc;
}

int kr_store_pin_iter(struct kr_store *s, int (*cb)(const struct kr_pin *, void *), void *ctx)
{
    return iter(s, NULL, cb, ctx);
}

int kr_store_pin_iter_cmid(struct kr_store *s, const uint8_t cmid[16],
                           int (*cb)(const struct kr_pin *, void *), void *ctx)
{
    return iter(s, cmid, cb, ctx);
}

/* ---- the latest pair of one machine (routing) ---------------------------- */

#define LATEST_QUEUED 32 /* queued writes of one machine looked at; more: walk */

struct latest {
    uint8_t app[LATEST_QUEUED][16]; /* queued keys of the machine (their say wins) */
    size_t n;
    bool overflow;
    bool have;
    struct kr_pin best;
};

static void latest_offer(struct latest *l, const struct kr_pin *p)
{
    if (!l->have || p->last_seen > l->best.last_seen) {
        l->best = *p;
        l->have = true;
    }
}

static bool latest_queued(const struct latest *l, const uint8_t key[KR_PIN_KEY_LEN])
{
    for (size_t i = 0; i < l->n; i++)
        if (memcmp(l->app[i], key + 16, 16) == 0)
            return true;
    return false;
}

/* The queue's writes of the machine (pending wins over inflight); under mu.
 * A queued conditional delete is left to the stored record (rare: the
 * record is then read without the condition, like a lookup racing it). */
static void latest_from_queue(struct kr_store *s, const uint8_t cmid[16], struct latest *l)
{
    const struct batch *bs[2] = {s->pending, s->committing ? s->inflight : NULL};
    for (size_t k = 0; k < 2; k++) {
        const struct batch *b = bs[k];
        if (!b || !batch_may_have_cmid(b, cmid))
            continue;
        for (size_t i = 0; i < b->n; i++) {
            const struct pend *e = batch_at(b, i);
            if (memcmp(e->key, cmid, 16) != 0 || e->op == PEND_EXPIRE || latest_queued(l, e->key))
                continue;
            if (l->n == LATEST_QUEUED) {
                l->overflow = true;
                return;
            }
            memcpy(l->app[l->n++], e->key + 16, 16);
            struct kr_pin p;
            if (e->op == PEND_PUT && kr_pin_decode(e->val, e->len, &p, NULL) == 0) {
                store_pin_set_key(&p, e->key);
                latest_offer(l, &p);
            }
        }
    }
}

/* The stored pairs of the machine not decided by the queue; under rd_mu. */
static int latest_from_db(struct kr_store *s, const uint8_t cmid[16], struct latest *l)
{
    int mrc = store_guard_read(s);
    if (mrc == 0)
        mrc = mdb_txn_renew(s->rtxn);
    if (mrc)
        return mrc;
    if (s->rcur)
        mrc = mdb_cursor_renew(s->rtxn, s->rcur);
    else
        mrc = mdb_cursor_open(s->rtxn, s->dbi_pins, &s->rcur); /* once */
    uint8_t from[KR_PIN_KEY_LEN] = {0};
    memcpy(from, cmid, 16);
    MDB_val k = store_val(from, sizeof(from)), v;
    if (mrc == 0)
        mrc = mdb_cursor_get(s->rcur, &k, &v, MDB_SET_RANGE);
    while (mrc == 0 && k.mv_size == KR_PIN_KEY_LEN && memcmp(k.mv_data, cmid, 16) == 0) {
        struct kr_pin p;
        if (!latest_queued(l, k.mv_data) && kr_pin_decode(v.mv_data, v.mv_size, &p, NULL) == 0) {
            store_pin_set_key(&p, k.mv_data);
            latest_offer(l, &p);
        }
        mrc = mdb_cursor_get(s->rcur, &k, &v, MDB_NEXT);
    }
    mdb_txn_reset(s->rtxn);
    mrc = store_note_rc(s, mrc);
    if (mrc == 0 || mrc == MDB_NOTFOUND)
        return store_guard_tripped(s) ? EIO : 0;
    return mrc;
}

static int latest_cb(const struct kr_pin *p, void *ctx)
{
    latest_offer(ctx, p);
    return 0;
}

int kr_store_pin_cmid_latest(struct kr_store *s, const uint8_t cmid[16], struct kr_pin *out)
{
    struct latest l;
    l.n = 0;
    l.overflow = l.have = false;
    pthread_mutex_lock(&s->mu);
    latest_from_queue(s, cmid, &l);
    pthread_mutex_unlock(&s->mu);
    int rc;
    if (l.overflow) {
        l.have = false; /* a machine with that many pairs: the general walk */
        rc = kr_store_pin_iter_cmid(s, cmid, latest_cb, &l);
    } else {
        pthread_mutex_lock(&s->rd_mu);
        int mrc = latest_from_db(s, cmid, &l);
        pthread_mutex_unlock(&s->rd_mu);
        rc = mrc ? store_err_from_mdb(mrc, NULL) : 0;
    }
    if (rc == 0 && !l.have)
        rc = KR_ENOENT;
    if (rc == 0)
        *out = l.best;
    return rc;
}
