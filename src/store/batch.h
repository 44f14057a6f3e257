/*
 * batch.h - the in-memory queue of pin writes waiting for a group commit
 * (private to src/store/).
 *
 * A batch is a ring of at most `cap` writes in arrival order plus an
 * open-addressing hash on the key (CMID, application id), so that a repeated write of one pair
 * replaces the queued one in place (coalescing) and lookups are O(1). When
 * the ring is full, adding a new CMID discards the oldest write: memory stays
 * bounded however long the disk refuses commits.
 *
 * Not thread-safe: the store serialises access with its mutex.
 * Ownership: a batch owns the `val` buffers of its entries. Values of up to
 * PEND_VAL_SMALL bytes (every pin record in practice) live in fixed-size
 * buffers that a batch keeps on its own free list when its entries go
 * (clear, coalesce, drop), so that a batch in steady use allocates nothing:
 * the two batches of a store take turns, and the flusher clears the one it
 * committed while the loop fills the other.
 */
#ifndef KR_STORE_BATCH_H
#define KR_STORE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A queued write's key: the pins DBI key, CMID then application id (the
 * same as KR_PIN_KEY_LEN in kmsrelay/store.h). */
#define PEND_KEY_LEN 32

enum pend_op {
    PEND_PUT = 1,    /* write `val` */
    PEND_DEL = 2,    /* delete */
    PEND_EXPIRE = 3, /* delete if the stored last_seen < idle_before */
};

struct pend {
    uint8_t key[PEND_KEY_LEN]; /* CMID, application id */
    uint8_t op;                /* enum pend_op */
    uint16_t len;              /* PEND_PUT: bytes in val */
    int64_t idle_before;       /* PEND_EXPIRE */
    uint8_t *val;              /* PEND_PUT: owned, encoded pin record */
};

struct batch {
    struct pend *ring;
    size_t cap;    /* ring capacity */
    size_t head;   /* ring index of the oldest entry */
    size_t n;      /* entries queued */
    uint32_t *idx; /* hash slots: ring index + 1, 0 = empty */
    size_t mask;   /* hash size - 1 (a power of two >= 2 * cap) */
    uint64_t seed; /* keyed hash: CMIDs come from the network */
    /* Counting filter on the CMID alone (the first 16 key bytes), mask + 1
     * counters: 0 means no queued write of any pair of that machine, so the
     * routing step's "other pairs of this machine" question skips the queue
     * without walking it. */
    uint32_t *cmid_cnt;
    void *spare; /* free PEND_VAL_SMALL buffers, linked through their first bytes */
    size_t n_spare;
};

#define PEND_VAL_SMALL 256

/* Allocates for `cap` entries (1..2^26). 0 or KR_ENOMEM / KR_EINVAL. */
int batch_init(struct batch *b, size_t cap, uint64_t seed);
/* Frees everything (the struct itself is the caller's). */
void batch_deinit(struct batch *b);

/* The queued write of a key, or NULL. The pointer is valid until the batch
 * is next modified. */
struct pend *batch_find(const struct batch *b, const uint8_t key[PEND_KEY_LEN]);

/* False when no queued write has this CMID (true may be a collision). */
bool batch_may_have_cmid(const struct batch *b, const uint8_t cmid[16]);

/* The i-th oldest entry (i < n). */
struct pend *batch_at(const struct batch *b, size_t i);

/*
 * Queues or replaces the write of a key. For PEND_PUT, `val`/`len` are
 * copied. Adds 1 to *dropped when the oldest entry had to go. 0 or
 * KR_ENOMEM (then the batch is unchanged).
 */
int batch_set(struct batch *b, const uint8_t key[PEND_KEY_LEN], enum pend_op op, const uint8_t *val,
              size_t len, int64_t idle_before, uint64_t *dropped);

/* Frees every entry; the batch is empty and reusable. */
void batch_clear(struct batch *b);

/*
 * After a failed commit of `older`, re-queues its writes in front of the
 * ones queued meanwhile in `newer`: afterwards `older` holds its own entries
 * that `newer` does not supersede, then all of `newer`'s, oldest first,
 * trimmed to cap (each entry discarded adds 1 to *dropped); `newer` is empty.
 */
void batch_merge(struct batch *older, struct batch *newer, uint64_t *dropped);

#endif
