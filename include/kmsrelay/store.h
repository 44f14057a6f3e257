/*
 * store.h - the persistent state of kmsrelayd: client pins, host admin states,
 * a small key/value table, all in one LMDB environment (src/store/ is the
 * only code that sees LMDB; this header exposes no LMDB type).
 *
 * A client is the pair (CMID, application id), the way a KMS host counts
 * clients: one machine that activates Windows and Office with the same CMID
 * is two clients, in two pools. Each pair has its own pin.
 *
 * Pins ((CMID, app) -> backend host plus what reports need about the
 * client) are
 * written through a group-commit queue: kr_store_pin_put() only encodes the
 * record and queues it in memory; kr_store_flush() commits everything queued
 * in ONE write transaction, so a burst of activations costs one fsync per
 * batch, not one per request. Reads see queued writes first. Host states and
 * key/value entries are rare operator actions and are written synchronously.
 *
 * Durability (the contract the daemon relies on):
 *   - Everything committed by a kr_store_flush() that returned 0 survives a
 *     crash of the process (SIGKILL, abort): the data is in the OS page cache
 *     and LMDB's commit is atomic, so the store reopens consistent.
 *   - Pins queued after the last successful flush are lost on a process
 *     crash (at most one batch: the daemon flushes about every second or
 *     every N records). kr_store_close() flushes first.
 *   - Power loss / kernel crash: the environment uses MDB_NOMETASYNC, i.e.
 *     one fdatasync per commit instead of two; the meta page of commit K is
 *     made durable by commit K+1. So a power loss may also undo the last
 *     committed batch, never more, and the database stays consistent
 *     (LMDB keeps ACI under NOMETASYNC). Host and kv writes force a full
 *     sync (mdb_env_sync), so they are durable when their call returns 0.
 *
 * Store full: when the LMDB map or the disk is full (or any commit fails),
 * kr_store_flush() returns the error (KR_ENOSPC for map/disk full, KR_EIO
 * otherwise), KEEPS the batch queued in memory and sets the sticky degraded
 * flag (kr_store_degraded()); the environment stays open and usable, reads
 * keep working (pending pins included), and the next successful commit
 * clears the flag. The queue is bounded by max_pending: once it is full, a
 * put of a CMID that is not queued yet discards the OLDEST queued write
 * (counted in stats.drops). The router treats a degraded store as "route by
 * rendezvous hash and raise an alarm"; no client request ever fails on it.
 *
 * Threads: every function may be called from any thread; the store has its
 * own locks. With opts.flush_interval_ms > 0 the store runs one background
 * thread that flushes every interval (and early once flush_batch records are
 * queued), so the caller's thread never waits for an fsync on pins. Without
 * it the caller flushes from a timer. Host/kv writes always fsync in the
 * calling thread. kr_store_close() must be the last call, with no other
 * call running. LMDB handles do not survive fork(): open after daemonizing.
 *
 * Errors: 0 or a negative KR_E* (kmsrelay/err.h). KR_ENOENT = not found,
 * KR_EMALF = a stored record does not decode, KR_ENOSPC = map/disk full or a
 * caller buffer too small (documented per call), KR_EIO = other LMDB/system
 * failure (errno holds the system error when there was one), KR_EUNSUP = the
 * database was written by a newer, incompatible kmsrelay. `why`, when not
 * NULL, gets a static string that must not be freed.
 *
 * Ownership: all pointer arguments are borrowed for the duration of the call
 * and every value returned is a copy owned by the caller: nothing returned
 * points into LMDB's map.
 */
#ifndef KMSRELAY_STORE_H
#define KMSRELAY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KR_PIN_HOST_MAX 64  /* host name buffer, NUL included: at most 63 bytes */
#define KR_PIN_WS_MAX 193   /* workstation name, UTF-8 + NUL (= KR_KMS_WS_UTF8) */
#define KR_PIN_NAMES 4      /* distinct workstation names remembered per CMID */
#define KR_PIN_REC_MAX 1200 /* upper bound of an encoded pin record, bytes */
#define KR_PIN_KEY_LEN 32   /* pins DBI key: 16 CMID bytes, then 16 app id bytes */

/* One workstation name a CMID was seen with, and when (clone detection). */
struct kr_pin_name {
    char name[KR_PIN_WS_MAX];
    int64_t last_seen; /* unix seconds, proxy clock */
};

/*
 * A pin: what kmsrelayd knows about one client, the pair (CMID, application
 * id). Times are unix seconds on the proxy's clock. Strings are
 * NUL-terminated UTF-8 (not validated by the store beyond "no NUL inside").
 */
struct kr_pin {
    uint8_t cmid[16];           /* the key, with app_id (not part of the encoded value) */
    char host[KR_PIN_HOST_MAX]; /* backend the pair is pinned to; never empty */
    int64_t first_seen;
    int64_t last_seen;                      /* idle expiry is measured from this */
    uint8_t app_id[16];                     /* application id (Windows, Office ...): key */
    uint8_t kms_id[16];                     /* KMS counted id */
    uint8_t sku_id[16];                     /* SKU (activation) id of the latest request */
    uint8_t prev_cmid[16];                  /* the request's previous CMID (chain), zero if none */
    char workstation[KR_PIN_WS_MAX];        /* name in the latest request */
    struct kr_pin_name names[KR_PIN_NAMES]; /* distinct names, most recent first */
    uint8_t n_names;
    uint8_t is_vm;          /* request VMInfo: 0 bare metal, 1 VM */
    uint8_t license_status; /* request LicenseStatus 0..6 */
    uint16_t ver_major;     /* KMS protocol major of the latest request */
    uint32_t last_hresult;  /* result of the latest activation (0 = success) */
    uint32_t last_count;    /* host's Count in the latest response */
    uint32_t n_policy;      /* request N_Policy */
    int32_t skew_s;         /* request time minus proxy clock, seconds */
    uint32_t activations;   /* requests routed for this pair */
};

/* Host admin states, set through the control API. */
enum kr_host_admin {
    KR_HOST_READY = 0,
    KR_HOST_DRAIN = 1,
    KR_HOST_MAINT = 2,
    KR_HOST_RETIRED = 3,
};

struct kr_host_rec {
    char name[KR_PIN_HOST_MAX]; /* the key; non-empty, at most 63 bytes */
    uint8_t admin;              /* enum kr_host_admin */
    uint32_t weight;
    int64_t changed; /* unix seconds of the last change */
};

#define KR_KV_KEY_MAX 255   /* kv key length, bytes (no NUL counted) */
#define KR_KV_VAL_MAX 65536 /* kv value length, bytes */

/* Open options; a zeroed struct (or NULL) means all defaults. */
struct kr_store_opts {
    uint64_t map_size;          /* LMDB map size in bytes; 0 = 1 GiB. This is the
                                 * hard cap of the database; it may be changed
                                 * between runs (never below the data in it) */
    size_t max_pending;         /* cap of queued pin writes; 0 = 65536 */
    unsigned max_readers;       /* LMDB reader slots; 0 = 126 */
    unsigned flush_interval_ms; /* > 0: background flusher thread with this
                                 * period; 0: the caller flushes */
    size_t flush_batch;         /* with the thread: wake it early once this
                                 * many writes are queued; 0 = 1000 */
    bool read_only;             /* MDB_RDONLY: creates and writes nothing (no
                                 * directory, no format record, no thread);
                                 * KR_ENOENT when there is no store; writes
                                 * fail. For checks (kmsrelayctl store check) */
};

struct kr_store_stats {
    uint64_t commits;         /* successful batch commits */
    uint64_t commit_failures; /* failed batch commits (batch kept queued) */
    uint64_t commit_us_total; /* wall time of successful commits, µs */
    uint64_t commit_us_max;
    uint64_t commit_us_last;
    uint64_t pins_written;    /* pin puts applied by successful commits */
    uint64_t pins_deleted;    /* explicit deletes applied */
    uint64_t pins_expired;    /* idle pins removed by expiry */
    uint64_t drops;           /* queued writes discarded at max_pending */
    uint64_t map_full_events; /* commits that hit the map (or disk) limit */
    uint64_t bad_records;     /* stored pin values that failed to decode */
    uint64_t pins_migrated;   /* format 1 pins re-keyed as pairs by this open */
    size_t pending;           /* writes queued, not yet in a commit */
    size_t inflight;          /* writes in the commit running right now */
    size_t pins;              /* committed pins (excludes queued ones) */
    uint64_t map_size;        /* bytes */
    uint64_t map_used;        /* bytes up to LMDB's high-water page */
    bool degraded;            /* the last batch commit failed */
    int last_error;           /* KR_E* of the last failed commit, 0 if none */
    const char *last_why;     /* static text of it, or "" */
};

struct kr_store; /* opaque */

/*
 * Opens (creating when missing: directory 0700, files 0600) the store in
 * `dir`. First runs kr_store_check(): a damaged data.mdb (truncated, empty,
 * a bad meta page) is refused with KR_EMALF and a `why` (thread-local text,
 * valid until the thread's next open) that says what is wrong and what to
 * do; it is never repaired nor replaced by an empty store. Clears stale
 * reader slots left by crashed processes; never scans the pins, so it is
 * O(1) in their number. `opts` may be NULL. On success *out owns the store
 * (free with kr_store_close()). Errors: KR_EIO (cannot create or map; errno
 * set), KR_EMALF (damaged), KR_EUNSUP (written by a newer format), KR_ENOSPC
 * (disk or map full while initialising a new store), KR_EINVAL.
 *
 * While open, the store watches for data.mdb shrinking under it (checked
 * before every transaction, and a SIGBUS in its map is caught): it then
 * stops using the file for good, keeps new pin writes queued in memory, and
 * every flush fails with KR_EIO and a `why` saying so (the store is
 * degraded; kr_store_damaged() is true).
 *
 * Formats: a new store is written in format 2 (pins keyed by the pair). A
 * store of format 1 (kmsrelay before per-application pins: keyed by CMID
 * alone) is migrated once, in one write transaction, when it is opened:
 * every pin becomes the pair with the application it last had, with its
 * host and every field kept (src/store/migrate.c). A store of a format this
 * build does not know (a newer kmsrelay's) is refused with KR_EUNSUP and a
 * `why` that says so; older builds refuse a format 2 store the same way.
 * A read-only open (opts->read_only) of a format 1 store is refused with
 * KR_EUNSUP: migrating writes.
 */
int kr_store_open(const char *dir, const struct kr_store_opts *opts, struct kr_store **out,
                  const char **why);

/*
 * Stops the flusher thread, flushes what is queued, syncs and closes.
 * Always frees `s` (NULL is fine). Returns 0 or the error of the final
 * flush, in which case the queued pins were lost.
 */
int kr_store_close(struct kr_store *s);

/* ---- checking a store without opening it -------------------------------- */

enum kr_store_state {
    KR_STORE_OK = 0,         /* data.mdb is sound as far as the check sees */
    KR_STORE_ABSENT = 1,     /* no data.mdb: opening creates an empty store */
    KR_STORE_DAMAGED = 2,    /* truncated, empty or a damaged meta page */
    KR_STORE_NEWER = 3,      /* an LMDB data format this build cannot read */
    KR_STORE_UNREADABLE = 4, /* cannot open or read it (errno) */
};

struct kr_store_check {
    int state;            /* enum kr_store_state */
    char path[4096 + 16]; /* DIR/data.mdb */
    char what[320];       /* what is wrong, or a one-line summary */
    uint64_t file_size;   /* bytes */
    uint64_t need_size;   /* bytes the newest meta page says are in use */
    uint32_t page_size;
    uint64_t last_page, txnid;
};

/*
 * Checks DIR/data.mdb with plain reads, never mapping it (so a damaged file
 * cannot crash the caller) and without side effects: both meta pages
 * (flags, magic, LMDB data format version, page size, root pages), and the
 * file size against the last page the newest meta page uses. A zero-length
 * file is damage, not a new store. Returns 0 (state OK or ABSENT), KR_EMALF
 * (DAMAGED), KR_EUNSUP (NEWER), KR_EIO (UNREADABLE, errno set) or KR_EINVAL;
 * out->what says what is wrong. kr_store_open() runs it first and refuses a
 * store that fails it.
 */
int kr_store_check(const char *dir, struct kr_store_check *out);

/* What an operator should do about a check state (static text, "" for OK). */
const char *kr_store_check_advice(int state);

/* ---- pins --------------------------------------------------------------- */

/*
 * Looks up the pin of a pair (CMID, application id): queued writes first (a
 * queued delete or expiry answers KR_ENOENT), then the database. Fills *out
 * (a copy, cmid and app_id set) on success; zeroes it on failure. KR_ENOENT
 * when absent, KR_EMALF when the stored value does not decode (the caller
 * should re-pin, which overwrites it), KR_EIO.
 */
int kr_store_pin_get(struct kr_store *s, const uint8_t cmid[16], const uint8_t app_id[16],
                     struct kr_pin *out);

/*
 * Queues a pin write, keyed by (pin->cmid, pin->app_id); never touches the
 * disk. A second put (or delete) of a pair already queued replaces it in
 * place. KR_EINVAL when the pin does not encode (empty host, a string
 * without NUL, n_names > 4). When the queue is at max_pending the oldest
 * queued write is discarded (stats.drops).
 */
int kr_store_pin_put(struct kr_store *s, const struct kr_pin *pin);

/* Queues a delete of a pair (same queueing rules as a put). Deleting an
 * absent pair is not an error. */
int kr_store_pin_del(struct kr_store *s, const uint8_t cmid[16], const uint8_t app_id[16]);

/*
 * Every pin of one machine (all applications of a CMID), in application id
 * byte order, queued writes merged in, with kr_store_pin_iter()'s rules.
 * A machine has a handful of pairs: this is one short read transaction.
 */
int kr_store_pin_iter_cmid(struct kr_store *s, const uint8_t cmid[16],
                           int (*cb)(const struct kr_pin *pin, void *ctx), void *ctx);

/*
 * The most recently seen pin among a machine's pairs (every application of
 * a CMID), queued writes included, with kr_store_pin_iter_cmid()'s rules:
 * 0 and *out, KR_ENOENT when the machine has none, another KR_E* on a store
 * error. Made for the routing step: no allocation, the queue is walked only
 * when a counting filter says this CMID may be in it, and the LMDB read uses
 * the store's cached read transaction (never a lock the flusher holds over
 * a commit).
 */
int kr_store_pin_cmid_latest(struct kr_store *s, const uint8_t cmid[16], struct kr_pin *out);

/* The pins DBI key of a pair: cmid then app_id. */
void kr_pin_key(const uint8_t cmid[16], const uint8_t app_id[16], uint8_t key[KR_PIN_KEY_LEN]);

/* Number of queued writes, including a commit in progress. */
size_t kr_store_pending(const struct kr_store *s);

/*
 * Commits every queued write in one write transaction (and one fdatasync).
 * Returns 0 (also when nothing was queued) or the commit error: KR_ENOSPC
 * (map or disk full), KR_EIO. On error the batch stays queued (bounded, see
 * the top of this file) and the store is degraded until a commit succeeds.
 * Safe to call while the background thread runs (flushes are serialised).
 */
int kr_store_flush(struct kr_store *s, const char **why);

/* True while the last batch commit failed (sticky until one succeeds). */
bool kr_store_degraded(const struct kr_store *s);

/* True once data.mdb was found truncated under the open store (sticky: the
 * file is not used again until the daemon restarts on a repaired store). */
bool kr_store_damaged(const struct kr_store *s);

/*
 * Calls cb for every pin, in (CMID, application id) byte order, so that the
 * pairs of one machine come one after the other, with queued writes merged in
 * (a queued put replaces or adds, a queued delete or expiry hides). Queued
 * writes are snapshotted when the call starts; the database is read in
 * chunks of short read transactions so a long report never pins old pages.
 * It is not a point-in-time snapshot: a pin that exists throughout is
 * visited exactly once, one changed meanwhile may show either version.
 * `*pin` is valid during the callback only. The callback may call any store
 * function (its own puts are not visited). A non-zero return from cb stops
 * the walk and is returned. Undecodable values are skipped (bad_records).
 */
int kr_store_pin_iter(struct kr_store *s, int (*cb)(const struct kr_pin *pin, void *ctx),
                      void *ctx);

/*
 * One bounded step of idle expiry: examines at most `max_scan` committed
 * pins, continuing where the previous call stopped (wrapping at the end),
 * and queues a conditional delete for each whose last_seen < idle_before.
 * The delete is applied by the next flush, inside its write transaction,
 * and only if the pin is still idle then, so a client that comes back
 * meanwhile keeps its pin. CMIDs with a queued write are skipped. Stops
 * early when the queue is full. *queued (may be NULL) gets the number of
 * deletes queued, *wrapped (may be NULL) is set when this step reached the
 * end of the pins (a full pass is complete).
 */
int kr_store_expire(struct kr_store *s, int64_t idle_before, size_t max_scan, size_t *queued,
                    bool *wrapped);

/* Committed pins, from LMDB's statistics (O(1)); queued puts not counted. */
size_t kr_store_pin_count(struct kr_store *s);

/* Fills *out with counters and sizes (never fails; sizes are 0 when LMDB
 * cannot answer). */
void kr_store_stats(struct kr_store *s, struct kr_store_stats *out);

/* ---- hosts (synchronous, durable on return) ------------------------------ */

/* Inserts or replaces by name. KR_EINVAL on a bad name or admin > 3. */
int kr_store_host_put(struct kr_store *s, const struct kr_host_rec *h);
/* KR_ENOENT when absent. *out is a copy. */
int kr_store_host_get(struct kr_store *s, const char *name, struct kr_host_rec *out);
/* KR_ENOENT when absent. */
int kr_store_host_del(struct kr_store *s, const char *name);
/* All hosts in name order (copied out first, so cb may call any store
 * function). Non-zero from cb stops and is returned. */
int kr_store_host_iter(struct kr_store *s, int (*cb)(const struct kr_host_rec *h, void *ctx),
                       void *ctx);
/* "ready", "drain", "maint", "retired" or "?". */
const char *kr_host_admin_name(uint8_t admin);

/* ---- key/value (synchronous, durable on return) -------------------------- */

/* key: non-empty, at most KR_KV_KEY_MAX bytes; len <= KR_KV_VAL_MAX. */
int kr_store_kv_put(struct kr_store *s, const char *key, const void *val, size_t len);
/* Copies the value into buf. *len gets the value's length on success and on
 * KR_ENOSPC (buf smaller than the value; nothing copied). KR_ENOENT. */
int kr_store_kv_get(struct kr_store *s, const char *key, void *buf, size_t cap, size_t *len);
/* KR_ENOENT when absent. */
int kr_store_kv_del(struct kr_store *s, const char *key);

/* ---- change observer (replication between relays, issue 15) ------------ */

enum kr_store_change_kind {
    KR_STORE_CH_PIN_PUT = 1, /* key: the pin key; val: the encoded pin record */
    KR_STORE_CH_PIN_DEL = 2, /* key: the pin key; no val (idle expiry is not
                              * reported: every relay decides it the same way
                              * from the replicated last_seen) */
    KR_STORE_CH_HOST = 3,    /* key: host name (no NUL); val: the stored host
                              * record (decode with kr_store_host_rec_decode) */
};

/* Called synchronously, in the thread that made the change, right after a
 * successful kr_store_pin_put / pin_del / host_put, with no store lock held.
 * Everything is borrowed for the call. It must not call back into the
 * store's write functions of the same kind on the same thread without a
 * guard of its own (it would be told about its own write). */
typedef void (*kr_store_observer_fn)(void *ctx, int kind, const uint8_t *key, size_t key_len,
                                     const uint8_t *val, size_t val_len);

/* Installs (fn non-NULL) or removes (NULL) the one observer. */
void kr_store_set_observer(struct kr_store *s, kr_store_observer_fn fn, void *ctx);

/* Decodes a host record handed to an observer (name from the key). */
int kr_store_host_rec_decode(const uint8_t *key, size_t key_len, const uint8_t *val, size_t len,
                             struct kr_host_rec *out);

/* ---- pin record codec (pure; public for tests and the fuzz target) ------- */

/*
 * Encodes everything but the CMID (which is the LMDB key) into out. Sets
 * *outlen. KR_EINVAL for a pin that cannot be stored, KR_ENOSPC when cap is
 * too small (KR_PIN_REC_MAX always suffices). Format: src/store/pin_record.c.
 */
int kr_pin_encode(const struct kr_pin *pin, uint8_t *out, size_t cap, size_t *outlen);

/*
 * Decodes a record of format 1 (written before pins were per application)
 * or 2. *out is fully zeroed first (so decoded pins compare with memcmp);
 * cmid stays zero (app_id is in the record). KR_EMALF for truncation,
 * trailing bytes, a bad length or a missing host; KR_EUNSUP for an unknown
 * format version.
 */
int kr_pin_decode(const uint8_t *buf, size_t len, struct kr_pin *out, const char **why);

/*
 * Records that the client was seen with workstation `name` at `now`: sets
 * pin->workstation, moves or inserts the name at names[0] (evicting the
 * least recently seen when all 4 are used). Names are compared as DNS names
 * (kr_pin_name_eq), so "PC-2.corp.example" and "pc-2.CORP.example." are one
 * entry (spelled as last seen). An empty name only sets workstation.
 * Returns true when the name was not in the list.
 */
bool kr_pin_note_name(struct kr_pin *pin, const char *name, int64_t now);

/* Workstation names compared as DNS names: ASCII case-insensitive, one
 * trailing dot ignored. */
bool kr_pin_name_eq(const char *a, const char *b);

/* Distinct workstation names (kr_pin_name_eq) seen at or after `since`
 * (2+ = cloned image). */
unsigned kr_pin_names_since(const struct kr_pin *pin, int64_t since);

#endif
