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
