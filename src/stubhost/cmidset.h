/*
 * cmidset.h - the stub host's client count: per application id, the set of
 * CMIDs seen within a sliding window, as a real KMS host keeps it.
 *
 * Each application has an open-addressing hash table (linear probing,
 * backward-shift deletion, so no tombstones) over a node pool, plus a
 * doubly linked list of its nodes ordered by last-seen time. Seeing a CMID
 * moves it to the list tail; expiry pops from the head while the head is
 * older than the window. So every operation is O(1) amortised and the count
 * is exact at the time it is asked, however many CMIDs there are.
 *
 * Bounds: at most CMID_MAX_APPS application ids and CMID_MAX_PER_APP CMIDs
 * per application; at the per-application cap the least recently seen CMID
 * is evicted (a real host also keeps only its most recent contacts).
 *
 * Time is a caller-supplied monotonic microsecond clock, so the structure
 * does no I/O and never reads a clock itself.
 *
 * Ownership: cmid_db_new() allocates, cmid_db_free() releases everything.
 * Key bytes are copied.
 */
#ifndef KR_STUBHOST_CMIDSET_H
#define KR_STUBHOST_CMIDSET_H

#include <stddef.h>
#include <stdint.h>

#define CMID_MAX_APPS 64
#define CMID_MAX_PER_APP (1u << 22) /* 4,194,304 */

struct cmid_db;

/* A new empty set with the given window (> 0). `seed` keys the hash so that
 * chosen CMIDs cannot pile up in one probe chain. NULL when out of memory. */
struct cmid_db *cmid_db_new(uint64_t window_us, uint64_t seed);
/* NULL-safe. */
void cmid_db_free(struct cmid_db *db);

/*
 * Records that `cmid` of application `app_id` was seen at `now_us` and
 * returns the number of distinct CMIDs of that application seen within the
 * window ending at now_us (the new one included): a repeated CMID does not
 * increase it. Returns KR_ENOSPC when CMID_MAX_APPS other applications are
 * already tracked, KR_ENOMEM when memory runs out (the set is unchanged).
 * `now_us` must not go backwards.
 */
long cmid_db_seen(struct cmid_db *db, const uint8_t app_id[16], const uint8_t cmid[16],
                  uint64_t now_us);

/* Drops the CMIDs of every application that left the window by now_us. */
void cmid_db_expire(struct cmid_db *db, uint64_t now_us);

/* CMIDs currently held over all applications (expired ones not yet dropped
 * included). */
size_t cmid_db_size(const struct cmid_db *db);

#endif
