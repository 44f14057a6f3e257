/*
 * observe.c - the store's one change observer (kmsrelay/store.h): how the
 * replication between relays (src/peer) learns of every pin and host write
 * without hooks in the relay's I/O code.
 */
#include <pthread.h>

#include "kmsrelay/store.h"
#include "store/store-internal.h"

void kr_store_set_observer(struct kr_store *s, kr_store_observer_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->obs_mu);
    s->obs_fn = fn;
    s->obs_ctx = ctx;
    pthread_mutex_unlock(&s->obs_mu);
}

void store_observe(struct kr_store *s, int kind, const uint8_t *key, size_t key_len,
                   const uint8_t *val, size_t val_len)
{
    /* Read both under the lock so removal is clean; the call runs outside
     * it (the observer takes locks of its own). */
    pthread_mutex_lock(&s->obs_mu);
    kr_store_observer_fn fn = s->obs_fn;
    void *ctx = s->obs_ctx;
    pthread_mutex_unlock(&s->obs_mu);
    if (fn)
        fn(ctx, kind, key, key_len, val, val_len);
}
