/* cmidset.c - per-application CMID sets with exact sliding-window counts
 * (see cmidset.h for the design). */
#include "stubhost/cmidset.h"

#include <stdlib.h>
#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"

#define NIL UINT32_MAX
#define SLOTS_INIT 1024u /* power of two */
#define NODES_INIT 512u

struct cmid_node {
    uint8_t cmid[16];
    uint64_t seen_us;
    uint32_t prev, next; /* LRU list, oldest first; `next` also links the free list */
    uint32_t hash;
};

struct cmid_app {
    uint8_t id[16];
    struct cmid_node *nodes;
    uint32_t n_used, n_cap, free_head;
    uint32_t *slots; /* node index + 1; 0 = empty */
    uint32_t mask;   /* slot count - 1 */
    uint32_t count;
    uint32_t head, tail;
};

struct cmid_db {
    uint64_t window_us;
    uint64_t seed;
    struct cmid_app *apps[CMID_MAX_APPS];
    size_t n_apps;
    size_t total;
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint32_t cmid_hash(const struct cmid_db *db, const uint8_t cmid[16])
{
    return (uint32_t)mix64(kr_le64(cmid) ^ mix64(kr_le64(cmid + 8) ^ db->seed));
}

static struct cmid_app *app_new(const uint8_t id[16])
{
    struct cmid_app *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->slots = calloc(SLOTS_INIT, sizeof(*a->slots));
    a->nodes = malloc(NODES_INIT * sizeof(*a->nodes));
    if (!a->slots || !a->nodes) {
        free(a->slots);
        free(a->nodes);
        free(a);
        return NULL;
    }
    memcpy(a->id, id, 16);
    a->mask = SLOTS_INIT - 1;
    a->n_cap = NODES_INIT;
    a->free_head = a->head = a->tail = NIL;
    return a;
}

static void app_free(struct cmid_app *a)
{
    if (!a)
        return;
    free(a->slots);
    free(a->nodes);
    free(a);
}

struct cmid_db *cmid_db_new(uint64_t window_us, uint64_t seed)
{
    struct cmid_db *db = calloc(1, sizeof(*db));
    if (!db)
        return NULL;
    db->window_us = window_us ? window_us : 1;
    db->seed = seed;
    return db;
}

void cmid_db_free(struct cmid_db *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->n_apps; i++)
        app_free(db->apps[i]);
    free(db);
}

size_t cmid_db_size(const struct cmid_db *db)
{
    return db->total;
}

/* Slot holding `cmid`, or the empty slot where it would go. */
static uint32_t *probe(struct cmid_app *a, const uint8_t cmid[16], uint32_t h, int *found)
{
    uint32_t i = h & a->mask;
    for (;;) {
        uint32_t s = a->slots[i];
        if (s == 0) {
            *found = 0;
            return &a->slots[i];
        }
        const struct cmid_node *n = &a->nodes[s - 1];
        if (n->hash == h && memcmp(n->cmid, cmid, 16) == 0) {
            *found = 1;
            return &a->slots[i];
        }
        i = (i + 1) & a->mask;
    }
}

static void list_unlink(struct cmid_app *a, uint32_t idx)
{
    struct cmid_node *n = &a->nodes[idx];
    if (n->prev != NIL)
        a->nodes[n->prev].next = n->next;
    else
        a->head = n->next;
    if (n->next != NIL)
        a->nodes[n->next].prev = n->prev;
    else
        a->tail = n->prev;
}

static void list_append(struct cmid_app *a, uint32_t idx)
{
    struct cmid_node *n = &a->nodes[idx];
    n->prev = a->tail;
    n->next = NIL;
    if (a->tail != NIL)
        a->nodes[a->tail].next = idx;
    else
        a->head = idx;
    a->tail = idx;
}

/* Removes node `idx` from the table, the list and the count. Linear probing
 * with backward shift: later members of the probe chain move up into the
 * hole when their home slot allows it, so lookups never need tombstones. */
static void node_remove(struct cmid_db *db, struct cmid_app *a, uint32_t idx)
{
    uint32_t i = a->nodes[idx].hash & a->mask;
    while (a->slots[i] != idx + 1)
        i = (i + 1) & a->mask;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & a->mask;
        uint32_t s = a->slots[j];
        if (s == 0)
            break;
        uint32_t home = a->nodes[s - 1].hash & a->mask;
        /* Move s into the hole at i unless its home lies cyclically in (i, j]. */
        int stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            a->slots[i] = s;
            i = j;
        }
    }
    a->slots[i] = 0;
    list_unlink(a, idx);
    a->nodes[idx].next = a->free_head;
    a->free_head = idx;
    a->count--;
    db->total--;
}

static void app_expire(struct cmid_db *db, struct cmid_app *a, uint64_t now_us)
{
    while (a->head != NIL) {
        uint64_t seen = a->nodes[a->head].seen_us;
        if (now_us < seen || now_us - seen < db->window_us)
            break;
        node_remove(db, a, a->head);
    }
}

/* Doubles the slot array when the load factor would pass 1/2. */
static int ensure_slots(struct cmid_app *a)
{
    if ((uint64_t)(a->count + 1) * 2 <= (uint64_t)a->mask + 1)
        return 0;
    uint32_t nslots = (a->mask + 1) * 2;
    uint32_t *s = calloc(nslots, sizeof(*s));
    if (!s)
        return KR_ENOMEM;
    free(a->slots);
    a->slots = s;
    a->mask = nslots - 1;
    for (uint32_t idx = a->head; idx != NIL; idx = a->nodes[idx].next) {
        uint32_t i = a->nodes[idx].hash & a->mask;
        while (a->slots[i])
            i = (i + 1) & a->mask;
        a->slots[i] = idx + 1;
    }
    return 0;
}

static uint32_t node_alloc(struct cmid_app *a)
{
    if (a->free_head != NIL) {
        uint32_t idx = a->free_head;
        a->free_head = a->nodes[idx].next;
        return idx;
    }
    if (a->n_used == a->n_cap) {
        uint32_t ncap = a->n_cap * 2;
        struct cmid_node *n = realloc(a->nodes, (size_t)ncap * sizeof(*n));
        if (!n)
            return NIL;
        a->nodes = n;
        a->n_cap = ncap;
    }
    return a->n_used++;
}

static struct cmid_app *app_find(struct cmid_db *db, const uint8_t app_id[16], int create)
{
    for (size_t i = 0; i < db->n_apps; i++)
        if (memcmp(db->apps[i]->id, app_id, 16) == 0)
            return db->apps[i];
    if (!create || db->n_apps == CMID_MAX_APPS)
        return NULL;
    struct cmid_app *a = app_new(app_id);
    if (a)
        db->apps[db->n_apps++] = a;
    return a;
}

long cmid_db_seen(struct cmid_db *db, const uint8_t app_id[16], const uint8_t cmid[16],
                  uint64_t now_us)
{
    struct cmid_app *a = app_find(db, app_id, 1);
    if (!a)
        return db->n_apps == CMID_MAX_APPS ? KR_ENOSPC : KR_ENOMEM;
    app_expire(db, a, now_us);

    uint32_t h = cmid_hash(db, cmid);
    int found;
    uint32_t *slot = probe(a, cmid, h, &found);
    if (found) {
        uint32_t idx = *slot - 1;
        a->nodes[idx].seen_us = now_us;
        list_unlink(a, idx);
        list_append(a, idx);
        return (long)a->count;
    }
    if (a->count >= CMID_MAX_PER_APP)
        node_remove(db, a, a->head);
    if (ensure_slots(a) != 0)
        return KR_ENOMEM;
    uint32_t idx = node_alloc(a);
    if (idx == NIL)
        return KR_ENOMEM;
    struct cmid_node *n = &a->nodes[idx];
    memcpy(n->cmid, cmid, 16);
    n->seen_us = now_us;
    n->hash = h;
    /* The table may have been rebuilt or shifted above: probe again. */
    slot = probe(a, cmid, h, &found);
    *slot = idx + 1;
    list_append(a, idx);
    a->count++;
    db->total++;
    return (long)a->count;
}

void cmid_db_expire(struct cmid_db *db, uint64_t now_us)
{
    for (size_t i = 0; i < db->n_apps; i++)
        app_expire(db, db->apps[i], now_us);
}
