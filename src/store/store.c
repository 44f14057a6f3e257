/*
 * store.c - the LMDB environment of kmsrelayd: open/close, the error
 * mapping, point lookups of pins and the queueing side of pin writes.
 * Commits live in flush.c, walks in iter.c, hosts and kv in hostkv.c.
 *
 * Layout: one environment (data.mdb + lock.mdb in the state directory) with
 * four named databases:
 *   pairs  32-byte key (CMID, application id) -> pin record (pin_record.c);
 *          format 1 stores had "pins" keyed by the CMID alone (migrate.c)
 *   hosts  host name    -> host record (hostkv.c)
 *   kv     string key   -> opaque bytes (e.g. what DNS last published)
 *   meta   "format"     -> u32 LE KR_STORE_FORMAT (checked, and older
 *                           formats migrated, by migrate.c)
 *
 * Flags: MDB_NOTLS so that read transactions are not tied to threads (the
 * cached lookup txn is handed between the caller's threads under rd_mu) and
 * MDB_NOMETASYNC (one fdatasync per commit; see store.h for the durability
 * argument). Opening never scans: mdb_env_open, mdb_reader_check and a
 * write txn that only opens the DBIs (and writes the format once).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "kmsrelay/err.h"
#include "kmsrelay/store.h"
#include "store/store-internal.h"

#define DEFAULT_MAP_SIZE ((uint64_t)1 << 30)
#define DEFAULT_MAX_PENDING 65536
#define DEFAULT_MAX_READERS 126
#define DEFAULT_FLUSH_BATCH 1000

int store_err_from_mdb(int rc, const char **why)
{
    if (rc == 0)
        return 0;
    if (why)
        *why = mdb_strerror(rc);
    switch (rc) {
    case MDB_NOTFOUND:
        return KR_ENOENT;
    case MDB_KEYEXIST:
        return KR_EEXIST;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EFBIG:
    case EDQUOT:
        if (rc != MDB_MAP_FULL)
            errno = rc;
        return KR_ENOSPC;
    case ENOMEM:
        return KR_ENOMEM;
    case MDB_VERSION_MISMATCH:
        return KR_EUNSUP;
    default:
        if (rc > 0)
            errno = rc;
        return KR_EIO;
    }
}

uint64_t store_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int store_txn_begin(struct kr_store *s, unsigned flags, MDB_txn **txn)
{
    *txn = NULL;
    int rc = store_guard(s);
    if (rc)
        return rc;
    rc = mdb_txn_begin(s->env, NULL, flags, txn);
    if (rc == MDB_READERS_FULL) {
        int dead = 0;
        mdb_reader_check(s->env, &dead);
        rc = mdb_txn_begin(s->env, NULL, flags, txn);
    }
    return rc;
}

void store_queued_update(struct kr_store *s)
{
    size_t n = s->pending->n + (s->committing ? s->inflight->n : 0);
    atomic_store(&s->queued, n);
}

/* Opens the DBIs and checks (or writes) the format, in one write txn (a
 * read txn when read-only: then a missing DBI or format is an error). */
static int init_dbs(struct kr_store *s, bool ro, const char **why)
{
    MDB_txn *txn;
    unsigned cr = ro ? 0 : MDB_CREATE;
    int rc = store_txn_begin(s, ro ? MDB_RDONLY : 0, &txn);
    if (rc)
        return store_err_from_mdb(rc, why);
    /* meta first: a format 1 store has no "pairs" DBI yet (migrate.c) */
    if ((rc = mdb_dbi_open(txn, "hosts", cr, &s->dbi_hosts)) ||
        (rc = mdb_dbi_open(txn, "kv", cr, &s->dbi_kv)) ||
        (rc = mdb_dbi_open(txn, "meta", cr, &s->dbi_meta))) {
        if (ro && rc == MDB_NOTFOUND) {
            mdb_txn_abort(txn);
            return kr_fail(why, KR_EMALF, "store: not a kmsrelay store (a database is missing)");
        }
        goto fail;
    }
    MDB_val k = store_val("format", 6), v;
    rc = mdb_get(txn, s->dbi_meta, &k, &v);
    if (rc == 0) {
        if (v.mv_size != 4) {
            mdb_txn_abort(txn);
            return kr_fail(why, KR_EIO, "store: bad meta format record");
        }
        uint8_t b[4];
        memcpy(b, v.mv_data, 4);
        uint32_t fmt =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        if (fmt != 1 && fmt != KR_STORE_FORMAT) { /* newer or bad: refused, says which */
            rc = store_format_upgrade(s, txn, fmt, why);
            mdb_txn_abort(txn);
            return rc;
        }
        if (ro && fmt == 1) {
            /* migrating writes; a read-only open (store check) cannot */
            mdb_txn_abort(txn);
            return kr_fail(why, KR_EUNSUP,
                           "store: format 1 (an older kmsrelay's, pins per CMID): kmsrelayd "
                           "migrates it to format 2 when it next opens it");
        }
        if ((rc = mdb_dbi_open(txn, "pairs", cr, &s->dbi_pins)) != 0) {
            if (ro && rc == MDB_NOTFOUND) {
                mdb_txn_abort(txn);
                return kr_fail(why, KR_EMALF,
                               "store: not a kmsrelay store (a database is missing)");
            }
            goto fail;
        }
        if ((rc = store_format_upgrade(s, txn, fmt, why)) != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
    } else if (rc == MDB_NOTFOUND && ro) {
        mdb_txn_abort(txn);
        return kr_fail(why, KR_EMALF, "store: not a kmsrelay store (no format record)");
    } else if (rc == MDB_NOTFOUND) {
        uint8_t b[4] = {KR_STORE_FORMAT, 0, 0, 0};
        v.mv_size = 4;
        v.mv_data = b;
        if ((rc = mdb_dbi_open(txn, "pairs", MDB_CREATE, &s->dbi_pins)) != 0 ||
            (rc = mdb_put(txn, s->dbi_meta, &k, &v, 0)) != 0)
            goto fail;
    } else {
        goto fail;
    }
    /* A txn that only opened existing DBIs writes nothing on commit. */
    if ((rc = mdb_txn_commit(txn)) != 0)
        return store_err_from_mdb(rc, why);
    return 0;
fail:
    mdb_txn_abort(txn);
    return store_err_from_mdb(rc, why);
}

static uint64_t random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = store_now_us() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&seed;
    return seed;
}

/* The refusal of a damaged store: what is wrong and what to do, with the
 * directory filled in (thread-local: open may run in several threads). */
static int refuse_damaged(const char *dir, int rc, const struct kr_store_check *c, const char **why)
{
    static _Thread_local char msg[8192];
    const char *advice = kr_store_check_advice(c->state);
    const char *d = strstr(advice, "DIR");
    int e = errno;
    if (d)
        snprintf(msg, sizeof(msg), "store: %s: %s; %.*s%s%s", c->path, c->what, (int)(d - advice),
                 advice, dir, d + 3);
    else
        snprintf(msg, sizeof(msg), "store: %s: %s; %s", c->path, c->what, advice);
    if (why)
        *why = msg;
    errno = rc == KR_EIO ? e : 0;
    return rc;
}

int kr_store_open(const char *dir, const struct kr_store_opts *opts, struct kr_store **out,
                  const char **why)
{
    struct kr_store_opts o;
    memset(&o, 0, sizeof(o));
    if (opts)
        o = *opts;
    if (!dir || !*dir || !out)
        return kr_fail(why, KR_EINVAL, "store: no directory");
    *out = NULL;
    if (!o.map_size)
        o.map_size = DEFAULT_MAP_SIZE;
    if (!o.max_pending)
        o.max_pending = DEFAULT_MAX_PENDING;
    if (!o.max_readers)
        o.max_readers = DEFAULT_MAX_READERS;
    if (!o.flush_batch)
        o.flush_batch = DEFAULT_FLUSH_BATCH;
    if (!o.read_only && mkdir(dir, 0700) != 0 && errno != EEXIST)
        return kr_fail(why, KR_EIO, "store: cannot create the directory");
    struct kr_store_check chk;
    int crc = kr_store_check(dir, &chk);
    if (crc != 0)
        return refuse_damaged(dir, crc, &chk, why);
    if (o.read_only && chk.state == KR_STORE_ABSENT)
        return kr_fail(why, KR_ENOENT, "store: no data.mdb (read-only open creates nothing)");

    struct kr_store *s = calloc(1, sizeof(*s));
    if (!s)
        return kr_fail(why, KR_ENOMEM, "store: out of memory");
    pthread_mutex_init(&s->flush_mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->rd_mu, NULL);
    pthread_mutex_init(&s->obs_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the flusher's timed waits */
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->st.last_why = "";
    s->guard_slot = -1;
    s->interval_ms = o.flush_interval_ms;
    s->kick_at = o.flush_batch;
    uint64_t seed = random_seed();
    int rc = batch_init(&s->b[0], o.max_pending, seed);
    if (rc == 0)
        rc = batch_init(&s->b[1], o.max_pending, seed);
    if (rc) {
        kr_fail(why, rc, "store: cannot allocate the write queue");
        goto fail;
    }
    s->pending = &s->b[0];
    s->inflight = &s->b[1];

    int mrc = mdb_env_create(&s->env);
    if (!mrc)
        mrc = mdb_env_set_maxdbs(s->env, 5); /* 4 + the format 1 "pins" (migrate.c) */
    if (!mrc)
        mrc = mdb_env_set_maxreaders(s->env, o.max_readers);
    if (!mrc)
        mrc = mdb_env_set_mapsize(s->env, (size_t)o.map_size);
    if (!mrc)
        mrc = mdb_env_open(s->env, dir, MDB_NOTLS | MDB_NOMETASYNC | (o.read_only ? MDB_RDONLY : 0),
                           0600);
    if (mrc) {
        rc = store_err_from_mdb(mrc, why);
        goto fail;
    }
    s->env_open = true;
    MDB_stat ms;
    s->psize = mdb_env_stat(s->env, &ms) == 0 ? ms.ms_psize : 4096;
    store_guard_register(s);
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* slots of crashed processes */
    rc = init_dbs(s, o.read_only, why);
    if (rc == 0 && store_guard_tripped(s))
        rc = kr_fail(why, KR_EMALF, "store: data.mdb ends before its pages (SIGBUS while opening)");
    if (rc != 0)
        goto fail;
    if ((mrc = store_txn_begin(s, MDB_RDONLY, &s->rtxn)) != 0) {
        rc = store_err_from_mdb(mrc, why);
        goto fail;
    }
    mdb_txn_reset(s->rtxn);
    if (s->interval_ms && !o.read_only && (rc = store_thread_start(s)) != 0) {
        kr_fail(why, rc, "store: cannot start the flusher thread");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    kr_store_close(s);
    return rc;
}

int kr_store_close(struct kr_store *s)
{
    if (!s)
        return 0;
    int rc = 0;
    store_thread_stop(s);
    if (s->env_open) {
        rc = kr_store_flush(s, NULL);
        if (!store_guard_tripped(s))
            mdb_env_sync(s->env, 1); /* the meta page NOMETASYNC deferred */
    }
    if (s->rcur)
        mdb_cursor_close(s->rcur);
    if (s->rtxn)
        mdb_txn_abort(s->rtxn);
    store_guard_unregister(s); /* before the map goes */
    if (s->env)
        mdb_env_close(s->env);
    batch_deinit(&s->b[0]);
    batch_deinit(&s->b[1]);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->rd_mu);
    pthread_mutex_destroy(&s->obs_mu);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->flush_mu);
    free(s);
    return rc;
}

/* Result of looking a pair up in the queue: 1 found (pin decoded or
 * deleted), 0 not queued; *expire set for a queued conditional delete. */
static int queued_lookup(struct kr_store *s, const uint8_t key[KR_PIN_KEY_LEN], struct kr_pin *out,
                         int *rc, int64_t *expire)
{
    int found = 0;
    pthread_mutex_lock(&s->mu);
    struct pend *e = batch_find(s->pending, key);
    if (!e && s->committing)
        e = batch_find(s->inflight, key);
    if (e && e->op == PEND_PUT) {
        *rc = kr_pin_decode(e->val, e->len, out, NULL);
        found = 1;
    } else if (e && e->op == PEND_DEL) {
        *rc = KR_ENOENT;
        found = 1;
    } else if (e) {
        *expire = e->idle_before;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

void kr_pin_key(const uint8_t cmid[16], const uint8_t app_id[16], uint8_t key[KR_PIN_KEY_LEN])
{
    memcpy(key, cmid, 16);
    memcpy(key + 16, app_id, 16);
}

/* The key is the truth about whose pin it is (a format 1 record migrated
 * under its last application says the same; see migrate.c). */
void store_pin_set_key(struct kr_pin *p, const uint8_t key[KR_PIN_KEY_LEN])
{
    memcpy(p->cmid, key, 16);
    memcpy(p->app_id, key + 16, 16);
}

int kr_store_pin_get(struct kr_store *s, const uint8_t cmid[16], const uint8_t app_id[16],
                     struct kr_pin *out)
{
    int rc = 0;
    int64_t expire = INT64_MIN;
    uint8_t key[KR_PIN_KEY_LEN];
    kr_pin_key(cmid, app_id, key);
    if (queued_lookup(s, key, out, &rc, &expire)) {
        if (rc == 0)
            store_pin_set_key(out, key);
        else
            memset(out, 0, sizeof(*out));
        return rc;
    }
    pthread_mutex_lock(&s->rd_mu);
    int mrc = store_guard_read(s);
    if (mrc == 0)
        mrc = mdb_txn_renew(s->rtxn);
    if (mrc == 0) {
        MDB_val k = store_val(key, sizeof(key)), v;
        mrc = store_note_rc(s, mdb_get(s->rtxn, s->dbi_pins, &k, &v));
        /* Decoding copies the value out before the txn is reset. */
        rc = mrc ? store_err_from_mdb(mrc, NULL) : kr_pin_decode(v.mv_data, v.mv_size, out, NULL);
        mdb_txn_reset(s->rtxn);
        if (store_guard_tripped(s))
            rc = KR_EIO; /* what was read may be the guard's zero pages */
    } else {
        rc = store_err_from_mdb(mrc, NULL);
    }
    pthread_mutex_unlock(&s->rd_mu);
    if (rc == KR_EMALF || rc == KR_EUNSUP) {
        pthread_mutex_lock(&s->mu);
        s->st.bad_records++;
        pthread_mutex_unlock(&s->mu);
    }
    if (rc == 0 && out->last_seen < expire)
        rc = KR_ENOENT; /* the queued expiry will delete it */
    if (rc == 0)
        store_pin_set_key(out, key);
    else
        memset(out, 0, sizeof(*out));
    return rc;
}

static int enqueue(struct kr_store *s, const uint8_t key[KR_PIN_KEY_LEN], enum pend_op op,
                   const uint8_t *val, size_t len)
{
    pthread_mutex_lock(&s->mu);
    int rc = batch_set(s->pending, key, op, val, len, 0, &s->st.drops);
    store_queued_update(s);
    if (s->thr_running && s->pending->n >= s->kick_at)
        pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int kr_store_pin_put(struct kr_store *s, const struct kr_pin *pin)
{
    uint8_t buf[KR_PIN_REC_MAX], key[KR_PIN_KEY_LEN];
    size_t len;
    int rc = kr_pin_encode(pin, buf, sizeof(buf), &len);
    if (rc)
        return rc == KR_ENOSPC ? KR_EINVAL : rc;
    kr_pin_key(pin->cmid, pin->app_id, key);
    rc = enqueue(s, key, PEND_PUT, buf, len);
    if (rc == 0)
        store_observe(s, KR_STORE_CH_PIN_PUT, key, KR_PIN_KEY_LEN, buf, len);
    return rc;
}

int kr_store_pin_del(struct kr_store *s, const uint8_t cmid[16], const uint8_t app_id[16])
{
    uint8_t key[KR_PIN_KEY_LEN];
    kr_pin_key(cmid, app_id, key);
    int rc = enqueue(s, key, PEND_DEL, NULL, 0);
    if (rc == 0)
        store_observe(s, KR_STORE_CH_PIN_DEL, key, KR_PIN_KEY_LEN, NULL, 0);
    return rc;
}

size_t kr_store_pending(const struct kr_store *s)
{
    return atomic_load(&s->queued);
}

bool kr_store_degraded(const struct kr_store *s)
{
    return atomic_load(&s->degraded);
}

size_t kr_store_pin_count(struct kr_store *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->rd_mu);
    if (store_guard(s) == 0 && mdb_txn_renew(s->rtxn) == 0) {
        MDB_stat ms;
        if (mdb_stat(s->rtxn, s->dbi_pins, &ms) == 0)
            n = ms.ms_entries;
        mdb_txn_reset(s->rtxn);
    }
    pthread_mutex_unlock(&s->rd_mu);
    return n;
}

void kr_store_stats(struct kr_store *s, struct kr_store_stats *out)
{
    bool damaged = store_guard_tripped(s);
    pthread_mutex_lock(&s->mu);
    if (damaged && s->st.last_why != s->damage_why) {
        /* Damage found by a lookup, with no write queued: report it like a
         * failed commit so that the daemon's commit alarm names it at once. */
        s->st.commit_failures++;
        s->st.last_error = KR_EIO;
        s->st.last_why = s->damage_why;
        atomic_store(&s->degraded, true);
    }
    *out = s->st;
    out->pending = s->pending->n;
    out->inflight = s->committing ? s->inflight->n : 0;
    pthread_mutex_unlock(&s->mu);
    out->degraded = kr_store_degraded(s);
    out->pins = kr_store_pin_count(s);
    MDB_envinfo info;
    MDB_stat ms;
    out->map_size = out->map_used = 0;
    if (store_guard(s) == 0 && mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &ms) == 0) {
        out->map_size = info.me_mapsize;
        out->map_used = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    }
}
