/*
 * batch.c - the group-commit queue: a bounded ring plus a hash of the pin key (CMID, application
 * id) (see batch.h). Linear probing with backward-shift deletion keeps the hash free of tombstones,
 * so dropping the oldest entry over and over (a store that stays full for hours) never degrades
 * lookups.
 */
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "store/batch.h"

#define BATCH_CAP_MAX ((size_t)1 << 26)
#define BATCH_SPARE_MAX 4096 /* free value buffers kept per batch */

/* A value buffer: small ones from the batch's free list. */
static uint8_t *val_get(struct batch *b, size_t len)
{
    if (len > PEND_VAL_SMALL)
        return malloc(len);
    if (!b->spare)
        return malloc(PEND_VAL_SMALL);
    void *p = b->spare;
    memcpy(&b->spare, p, sizeof(void *));
    b->n_spare--;
    return p;
}

static void val_put(struct batch *b, uint8_t *v, size_t len)
{
    if (!v)
        return;
    if (len > PEND_VAL_SMALL || b->n_spare >= BATCH_SPARE_MAX) {
        free(v);
        return;
    }
    memcpy(v, &b->spare, sizeof(void *));
    b->spare = v;
    b->n_spare++;
}

static size_t home(const struct batch *b, const uint8_t k[PEND_KEY_LEN])
{
    uint64_t a, c, d, e;
    memcpy(&a, k, 8);
    memcpy(&c, k + 8, 8);
    memcpy(&d, k + 16, 8); /* the application id: the pair is the key */
    memcpy(&e, k + 24, 8);
    uint64_t h = (a ^ b->seed) * 0x9E3779B97F4A7C15ull;
    h ^= c + (h >> 29);
    h = (h ^ d) * 0x94D049BB133111EBull;
    h ^= e + (h >> 31);
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (size_t)h & b->mask;
}

static size_t cmid_home(const struct batch *b, const uint8_t k[16])
{
    uint64_t a, c;
    memcpy(&a, k, 8);
    memcpy(&c, k + 8, 8);
    uint64_t h = (a ^ b->seed) * 0x9E3779B97F4A7C15ull;
    h ^= c + (h >> 29);
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (size_t)h & b->mask;
}

static void cmid_note(struct batch *b, const uint8_t key[PEND_KEY_LEN], int delta)
{
    b->cmid_cnt[cmid_home(b, key)] += (uint32_t)delta;
}

bool batch_may_have_cmid(const struct batch *b, const uint8_t cmid[16])
{
    return b->n != 0 && b->cmid_cnt[cmid_home(b, cmid)] != 0;
}

int batch_init(struct batch *b, size_t cap, uint64_t seed)
{
    memset(b, 0, sizeof(*b));
    if (cap == 0 || cap > BATCH_CAP_MAX)
        return KR_EINVAL;
    size_t hs = 2;
    while (hs < 2 * cap)
        hs <<= 1;
    b->ring = calloc(cap, sizeof(*b->ring));
    b->idx = calloc(hs, sizeof(*b->idx));
    b->cmid_cnt = calloc(hs, sizeof(*b->cmid_cnt));
    if (!b->ring || !b->idx || !b->cmid_cnt) {
        batch_deinit(b);
        return KR_ENOMEM;
    }
    b->cap = cap;
    b->mask = hs - 1;
    b->seed = seed;
    return 0;
}

void batch_deinit(struct batch *b)
{
    if (b->ring)
        batch_clear(b);
    while (b->spare) {
        void *p = b->spare;
        memcpy(&b->spare, p, sizeof(void *));
        free(p);
    }
    free(b->ring);
    free(b->idx);
    free(b->cmid_cnt);
    memset(b, 0, sizeof(*b));
}

struct pend *batch_at(const struct batch *b, size_t i)
{
    return &b->ring[(b->head + i) % b->cap];
}

/* Hash slot holding the CMID, or the empty slot where it would go. */
static size_t probe(const struct batch *b, const uint8_t key[PEND_KEY_LEN])
{
    size_t i = home(b, key);
    while (b->idx[i] && memcmp(b->ring[b->idx[i] - 1].key, key, PEND_KEY_LEN) != 0)
        i = (i + 1) & b->mask;
    return i;
}

struct pend *batch_find(const struct batch *b, const uint8_t key[PEND_KEY_LEN])
{
    if (b->n == 0)
        return NULL;
    size_t i = probe(b, key);
    return b->idx[i] ? &b->ring[b->idx[i] - 1] : NULL;
}

/* Removes hash slot i, shifting later members of its cluster back. */
static void unhash(struct batch *b, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & b->mask;
        if (!b->idx[j])
            break;
        size_t k = home(b, b->ring[b->idx[j] - 1].key);
        /* Entry j may move to i only if its home is not in (i, j]. */
        bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            b->idx[i] = b->idx[j];
            i = j;
        }
    }
    b->idx[i] = 0;
}

static void free_entry(struct batch *b, struct pend *e)
{
    val_put(b, e->val, e->len);
    memset(e, 0, sizeof(*e));
}

static void drop_oldest(struct batch *b, uint64_t *dropped)
{
    struct pend *e = &b->ring[b->head];
    unhash(b, probe(b, e->key));
    cmid_note(b, e->key, -1);
    free_entry(b, e);
    b->head = (b->head + 1) % b->cap;
    b->n--;
    (*dropped)++;
}

/* Appends a moved entry whose CMID is not queued; makes room if full. */
static void push(struct batch *b, const struct pend *e, uint64_t *dropped)
{
    if (b->n == b->cap)
        drop_oldest(b, dropped);
    size_t r = (b->head + b->n) % b->cap;
    b->ring[r] = *e;
    b->idx[probe(b, e->key)] = (uint32_t)(r + 1);
    cmid_note(b, e->key, 1);
    b->n++;
}

int batch_set(struct batch *b, const uint8_t key[PEND_KEY_LEN], enum pend_op op, const uint8_t *val,
              size_t len, int64_t idle_before, uint64_t *dropped)
{
    struct pend e;
    memset(&e, 0, sizeof(e));
    memcpy(e.key, key, PEND_KEY_LEN);
    e.op = (uint8_t)op;
    e.idle_before = idle_before;
    if (op == PEND_PUT) {
        if (len == 0 || len > UINT16_MAX)
            return KR_EINVAL;
        if (!(e.val = val_get(b, len)))
            return KR_ENOMEM;
        memcpy(e.val, val, len);
        e.len = (uint16_t)len;
    }
    struct pend *old = batch_find(b, key);
    if (old) {
        /* Coalesce: the newest write wins, at the old position. */
        val_put(b, old->val, old->len);
        *old = e;
        return 0;
    }
    push(b, &e, dropped);
    return 0;
}

void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free_entry(b, batch_at(b, i));
    memset(b->idx, 0, (b->mask + 1) * sizeof(*b->idx));
    memset(b->cmid_cnt, 0, (b->mask + 1) * sizeof(*b->cmid_cnt));
    b->head = 0;
    b->n = 0;
}

/* Forgets the entries without freeing them (they were moved elsewhere). */
static void batch_forget(struct batch *b)
{
    memset(b->idx, 0, (b->mask + 1) * sizeof(*b->idx));
    memset(b->cmid_cnt, 0, (b->mask + 1) * sizeof(*b->cmid_cnt));
    b->head = 0;
    b->n = 0;
}

void batch_merge(struct batch *older, struct batch *newer, uint64_t *dropped)
{
    /* Compact `older` in place, freeing what `newer` supersedes; the write
     * position never passes the read position, so no entry is overwritten
     * before it is read. */
    size_t w = 0;
    for (size_t r = 0; r < older->n; r++) {
        struct pend *e = batch_at(older, r);
        if (batch_find(newer, e->key)) {
            val_put(older, e->val, e->len);
            continue;
        }
        if (w != r)
            *batch_at(older, w) = *e;
        w++;
    }
    for (size_t r = w; r < older->n; r++)
        memset(batch_at(older, r), 0, sizeof(struct pend));
    size_t kept = w;
    memset(older->idx, 0, (older->mask + 1) * sizeof(*older->idx));
    memset(older->cmid_cnt, 0, (older->mask + 1) * sizeof(*older->cmid_cnt));
    older->n = 0;
    for (size_t i = 0; i < kept; i++) {
        size_t r = (older->head + i) % older->cap;
        older->idx[probe(older, older->ring[r].key)] = (uint32_t)(r + 1);
        cmid_note(older, older->ring[r].key, 1);
        older->n++;
    }
    for (size_t i = 0; i < newer->n; i++)
        push(older, batch_at(newer, i), dropped);
    batch_forget(newer);
}
