/*
 * meta.c - the version table (which change each key's current value came
 * from) and the log of own changes kept for a peer's catch-up.
 *
 * The table is in memory: after a restart keys have no recorded version and
 * count as written at their pin's last_seen by this relay (sync.c), which
 * is older than any change decided since, so a full resync brings the
 * newest value everywhere. Deleted pins stay as tombstones, so a forget
 * made while a peer was away reaches it in a resync too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "peer/peer-internal.h"

static size_t hash(uint8_t kind, const uint8_t *key, size_t klen)
{
    uint64_t h = 1469598103934665603ull ^ kind;
    for (size_t i = 0; i < klen; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

static size_t slot(const struct meta_ent *t, size_t cap, uint8_t kind, const uint8_t *key,
                   size_t klen)
{
    size_t i = hash(kind, key, klen) & (cap - 1);
    while (t[i].klen &&
           !(t[i].kind == kind && t[i].klen == klen && memcmp(t[i].key, key, klen) == 0))
        i = (i + 1) & (cap - 1);
    return i;
}

int meta_init(struct kr_peers *P, size_t log_cap)
{
    P->meta_cap = 1024;
    P->meta = calloc(P->meta_cap, sizeof(*P->meta));
    P->log_cap = log_cap;
    P->log = calloc(log_cap, sizeof(*P->log));
    P->log_first = 1;
    return P->meta && P->log ? 0 : KR_ENOMEM;
}

void meta_free(struct kr_peers *P)
{
    for (size_t i = 0; P->log && i < P->log_cap; i++)
        free(P->log[i].buf);
    free(P->log);
    free(P->meta);
    P->log = NULL;
    P->meta = NULL;
}

struct meta_ent *meta_get(struct kr_peers *P, uint8_t kind, const uint8_t *key, size_t klen)
{
    if (klen == 0 || klen > PEER_KEY_MAX)
        return NULL;
    size_t i = slot(P->meta, P->meta_cap, kind, key, klen);
    return P->meta[i].klen ? &P->meta[i] : NULL;
}

static int grow(struct kr_peers *P)
{
    size_t cap = P->meta_cap * 2;
    struct meta_ent *t = calloc(cap, sizeof(*t));
    if (!t)
        return KR_ENOMEM;
    for (size_t i = 0; i < P->meta_cap; i++)
        if (P->meta[i].klen)
            t[slot(t, cap, P->meta[i].kind, P->meta[i].key, P->meta[i].klen)] = P->meta[i];
    free(P->meta);
    P->meta = t;
    P->meta_cap = cap;
    return 0;
}

int meta_set(struct kr_peers *P, uint8_t kind, const uint8_t *key, size_t klen, uint64_t hlc,
             uint8_t origin, bool deleted)
{
    if (klen == 0 || klen > PEER_KEY_MAX)
        return KR_EINVAL;
    if (2 * (P->meta_n + 1) > P->meta_cap && grow(P) != 0)
        return KR_ENOMEM;
    struct meta_ent *e = &P->meta[slot(P->meta, P->meta_cap, kind, key, klen)];
    if (!e->klen) {
        memcpy(e->key, key, klen);
        e->klen = (uint8_t)klen;
        e->kind = kind;
        P->meta_n++;
    }
    e->hlc = hlc;
    e->origin = origin;
    e->deleted = deleted;
    return 0;
}

size_t meta_prune(struct kr_peers *P, uint64_t before)
{
    struct meta_ent *t = calloc(P->meta_cap, sizeof(*t));
    if (!t)
        return 0; /* try again next time */
    size_t dropped = 0;
    for (size_t i = 0; i < P->meta_cap; i++) {
        const struct meta_ent *e = &P->meta[i];
        if (!e->klen)
            continue;
        if (e->hlc < before) {
            dropped++;
            continue;
        }
        t[slot(t, P->meta_cap, e->kind, e->key, e->klen)] = *e;
    }
    free(P->meta);
    P->meta = t;
    P->meta_n -= dropped;
    return dropped;
}

int meta_origin(struct kr_peers *P, const char *name)
{
    for (size_t i = 0; i < P->n_origins; i++)
        if (strcmp(P->origins[i], name) == 0)
            return (int)i;
    if (P->n_origins == PEER_ORIGINS)
        return -1;
    snprintf(P->origins[P->n_origins], sizeof(P->origins[0]), "%s", name);
    return (int)P->n_origins++;
}

int log_append(struct kr_peers *P, uint8_t kind, const uint8_t *key, size_t klen,
               const uint8_t *val, size_t vlen, uint64_t hlc)
{
    uint8_t *buf = malloc(klen + vlen + 1);
    if (!buf)
        return KR_ENOMEM;
    memcpy(buf, key, klen);
    if (vlen)
        memcpy(buf + klen, val, vlen);
    uint64_t s = ++P->seq;
    struct log_ent *e = &P->log[(s - 1) % P->log_cap];
    if (e->buf) { /* the ring is full: the oldest goes */
        free(e->buf);
        P->log_first++;
    }
    e->buf = buf;
    e->hlc = hlc;
    e->at_us = kr_now_us();
    e->kind = kind;
    e->klen = (uint16_t)klen;
    e->vlen = (uint16_t)vlen;
    return 0;
}

const struct log_ent *log_get(const struct kr_peers *P, uint64_t s)
{
    if (s < P->log_first || s > P->seq)
        return NULL;
    return &P->log[(s - 1) % P->log_cap];
}
