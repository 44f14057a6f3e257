/*
 * store-internal.h - the struct behind the opaque struct kr_store, shared by
 * the files of src/store/ (and only by them: it is the one header that
 * includes <lmdb.h>).
 *
 * Locking (never take them in another order):
 *   flush_mu  serialises batch commits (kr_store_flush and the thread);
 *   mu        the queue, the stats, the sweep position; held only for
 *             memory work, never across an LMDB write or a callback;
 *   rd_mu     the one cached read transaction used by point lookups.
 * LMDB itself serialises write transactions; with MDB_NOTLS a read txn is
 * not bound to a thread, which is what lets rd_mu hand it around.
 */
#ifndef KR_STORE_INTERNAL_H
#define KR_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>

#include "kmsrelay/store.h"
#include "store/batch.h"

#define KR_PIN_FORMAT 2     /* version byte of a pin record (1 is still read) */
#define KR_PIN_FORMAT_MIN 1 /* oldest pin record version read */
#define KR_HOST_FORMAT 1    /* version byte of a host record */
#define KR_STORE_FORMAT                                                                            \
    2 /* meta "format": layout of the DBIs and keys;                                               \
       * 1 = pins keyed by CMID alone (migrate.c) */

_Static_assert(KR_PIN_KEY_LEN == PEND_KEY_LEN, "the queue and the DBI share the pin key");

struct kr_store {
    MDB_env *env;
    bool env_open;                                 /* mdb_env_open succeeded */
    MDB_dbi dbi_pins, dbi_hosts, dbi_kv, dbi_meta; /* dbi_pins: the "pairs" DBI */

    pthread_mutex_t flush_mu;
    pthread_mutex_t mu;
    pthread_mutex_t rd_mu;
    MDB_txn *rtxn;    /* under rd_mu; kept reset between lookups */
    MDB_cursor *rcur; /* under rd_mu: a cursor of rtxn, renewed with it */

    /* Under mu. */
    struct batch b[2];
    struct batch *pending;  /* writes queued for the next commit */
    struct batch *inflight; /* writes of the running commit (if committing) */
    bool committing;
    struct kr_store_stats st;          /* counters only; sizes are filled on demand */
    uint8_t sweep_key[KR_PIN_KEY_LEN]; /* expiry resumes after this pair */
    bool sweep_valid;

    atomic_size_t queued; /* pending + inflight, for lock-free readers */
    atomic_bool degraded;

    /* Truncation guard (guard.c). */
    uint32_t psize;             /* LMDB page size */
    int guard_slot;             /* SIGBUS registry slot, -1 = none */
    atomic_int damage_claim;    /* 1 once a thread writes damage_why */
    atomic_bool damaged;        /* sticky: LMDB is never touched again */
    _Atomic uint64_t seen_size; /* largest data.mdb size seen (it never shrinks) */
    char damage_why[512];       /* written once, before damaged is set */

    /* Background flusher. */
    pthread_t thr;
    pthread_cond_t cv; /* under mu: wakes the thread */
    bool thr_running;
    bool stop;
    unsigned interval_ms;
    size_t kick_at;

    /* Change observer (observe.c), under obs_mu. */
    pthread_mutex_t obs_mu;
    kr_store_observer_fn obs_fn;
    void *obs_ctx;
};

/* An MDB_val over borrowed bytes. LMDB's struct is not const-correct but
 * never writes through a key or a put value; the uintptr_t round trip says
 * so without tripping -Wcast-qual. */
static inline MDB_val store_val(const void *p, size_t n)
{
    MDB_val v;
    v.mv_size = n;
    v.mv_data = (void *)(uintptr_t)p;
    return v;
}

/* The one translation of LMDB and errno codes into KR_E* (sets *why to the
 * LMDB text when why is not NULL, and errno for system errors). */
int store_err_from_mdb(int rc, const char **why);

/* Begins a transaction, running mdb_reader_check and retrying once when the
 * reader table is full of dead processes' slots. */
int store_txn_begin(struct kr_store *s, unsigned flags, MDB_txn **txn);

/* Microseconds on the monotonic clock. */
uint64_t store_now_us(void);

/* last_seen of an encoded pin record (a full decode). */
int store_pin_rec_last_seen(const uint8_t *buf, size_t len, int64_t *last_seen);

/* Truncation guard (guard.c). store_guard() runs before a transaction and
 * returns 0 or EIO (the store is damaged); store_guard_tripped() after one
 * (true when a SIGBUS hit this store's map meanwhile, or it was damaged
 * before). store_mark_damaged() records the first reason. */
void store_guard_register(struct kr_store *s);
void store_guard_unregister(struct kr_store *s);
int store_guard(struct kr_store *s);
/* store_guard() for point lookups: no system call when the SIGBUS guard is
 * on (it reads the last byte in use through the map), store_guard() else. */
int store_guard_read(struct kr_store *s);
bool store_guard_tripped(struct kr_store *s);
void store_mark_damaged(struct kr_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Marks the store damaged on LMDB's corruption codes; returns rc, or EIO
 * once the store is damaged (then nothing read can be trusted, not even a
 * "not found"). */
int store_note_rc(struct kr_store *s, int rc);
/* Where the SIGBUS guard believes the map starts, NULL when it is off (tests). */
const void *store_guard_map(const struct kr_store *s);
/* Sets p->cmid and p->app_id from a pins DBI key (store.c). */
void store_pin_set_key(struct kr_pin *p, const uint8_t key[KR_PIN_KEY_LEN]);

/*
 * Called by the open path inside its write txn once the DBIs are open, with
 * the format found in meta (migrate.c): 0 when it is the current one; an
 * older one is migrated in `txn` (meta rewritten; the caller commits);
 * KR_EUNSUP with a clear `why` for a newer or unknown one.
 */
int store_format_upgrade(struct kr_store *s, MDB_txn *txn, uint32_t fmt, const char **why);

/* Starts / stops the background flusher (flush.c). */
int store_thread_start(struct kr_store *s);
void store_thread_stop(struct kr_store *s);

/* Tells the observer (if any) about a change the caller just made
 * (observe.c); called with no store lock held. */
void store_observe(struct kr_store *s, int kind, const uint8_t *key, size_t key_len,
                   const uint8_t *val, size_t val_len);

/* Updates s->queued after a queue change; call with mu held. */
void store_queued_update(struct kr_store *s);

#endif
