/*
 * hostkv.c - host admin records and the generic key/value table. Both are
 * operator-paced, so every write is its own transaction followed by a forced
 * mdb_env_sync: the environment runs with MDB_NOMETASYNC (store.c), and an
 * admin "drain" must survive a power cut the moment the API said "done".
 *
 * Host record (DBI "hosts", key = host name bytes without NUL), a versioned
 * TLV like the pin record (pin_record.c explains the rules: u8 version, then
 * type u8 / length u8 (u16 when type & 0x80) / value, END = 00 00 last,
 * unknown types skipped, truncation or trailing bytes malformed):
 *
 *   1 ADMIN    1   enum kr_host_admin
 *   2 WEIGHT   4   u32
 *   3 CHANGED  8   i64 unix seconds
 *
 * Example: drain, weight 100, changed 1700000000:
 *   01  01 01 01  02 04 64 00 00 00  03 08 00 f1 53 65 00 00 00 00  00 00
 *
 * kv (DBI "kv"): key = the key string bytes, value = the caller's bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/store.h"
#include "store/store-internal.h"

#define HOST_REC_LEN 22

const char *kr_host_admin_name(uint8_t admin)
{
    static const char *const names[] = {"ready", "drain", "maint", "retired"};
    return admin < 4 ? names[admin] : "?";
}

static void host_encode(const struct kr_host_rec *h, uint8_t out[HOST_REC_LEN])
{
    struct kr_wr w = kr_wr_init(out, HOST_REC_LEN);
    kr_wr_u8(&w, KR_HOST_FORMAT);
    kr_wr_u8(&w, 1);
    kr_wr_u8(&w, 1);
    kr_wr_u8(&w, h->admin);
    kr_wr_u8(&w, 2);
    kr_wr_u8(&w, 4);
    kr_wr_u32(&w, h->weight);
    kr_wr_u8(&w, 3);
    kr_wr_u8(&w, 8);
    kr_wr_u64(&w, (uint64_t)h->changed);
    kr_wr_u8(&w, 0);
    kr_wr_u8(&w, 0);
}

static int host_decode(const uint8_t *buf, size_t len, struct kr_host_rec *h)
{
    struct kr_rd r = kr_rd_init(buf, len);
    if (len == 0 || kr_rd_u8(&r) != KR_HOST_FORMAT)
        return len ? KR_EUNSUP : KR_EMALF;
    bool ended = false;
    while (kr_rd_left(&r) > 0) {
        if (ended)
            return KR_EMALF;
        unsigned type = kr_rd_u8(&r);
        size_t flen = (type & 0x80) ? kr_rd_u16(&r) : kr_rd_u8(&r);
        const uint8_t *v = kr_rd_take(&r, flen);
        if (r.err)
            return KR_EMALF;
        if ((type == 0 && flen != 0) || (type == 1 && flen != 1) || (type == 2 && flen != 4) ||
            (type == 3 && flen != 8))
            return KR_EMALF;
        if (type == 0)
            ended = true;
        else if (type == 1)
            h->admin = v[0];
        else if (type == 2)
            h->weight = kr_le32(v);
        else if (type == 3)
            h->changed = (int64_t)kr_le64(v);
    }
    return ended ? 0 : KR_EMALF;
}

/* One put (v != NULL) or delete in its own durable transaction. */
static int sync_write(struct kr_store *s, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
    MDB_txn *txn = NULL;
    int rc = store_txn_begin(s, 0, &txn);
    if (rc == 0) {
        rc = v ? mdb_put(txn, dbi, k, v, 0) : mdb_del(txn, dbi, k, NULL);
        rc = store_note_rc(s, rc);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0)
        rc = mdb_env_sync(s->env, 1);
    if (rc == MDB_MAP_FULL) {
        pthread_mutex_lock(&s->mu);
        s->st.map_full_events++;
        pthread_mutex_unlock(&s->mu);
    }
    return store_err_from_mdb(rc, NULL);
}

/* Point read with the cached read txn; `copy` runs before the txn ends. */
static int read_one(struct kr_store *s, MDB_dbi dbi, MDB_val *k,
                    int (*copy)(const MDB_val *v, void *arg), void *arg)
{
    pthread_mutex_lock(&s->rd_mu);
    int rc = store_guard(s);
    if (rc == 0)
        rc = mdb_txn_renew(s->rtxn);
    if (rc == 0) {
        MDB_val v;
        rc = store_note_rc(s, mdb_get(s->rtxn, dbi, k, &v));
        rc = rc ? store_err_from_mdb(rc, NULL) : copy(&v, arg);
        mdb_txn_reset(s->rtxn);
        if (store_guard_tripped(s))
            rc = KR_EIO;
    } else {
        rc = store_err_from_mdb(rc, NULL);
    }
    pthread_mutex_unlock(&s->rd_mu);
    return rc;
}

static int host_key(const char *name, MDB_val *k)
{
    size_t n = name ? strnlen(name, KR_PIN_HOST_MAX) : 0;
    if (n == 0 || n >= KR_PIN_HOST_MAX)
        return KR_EINVAL;
    *k = store_val(name, n);
    return 0;
}

int kr_store_host_put(struct kr_store *s, const struct kr_host_rec *h)
{
    MDB_val k;
    if (host_key(h->name, &k) != 0 || h->admin > KR_HOST_RETIRED)
        return KR_EINVAL;
    uint8_t buf[HOST_REC_LEN];
    host_encode(h, buf);
    MDB_val v = store_val(buf, sizeof(buf));
    int rc = sync_write(s, s->dbi_hosts, &k, &v);
    if (rc == 0)
        store_observe(s, KR_STORE_CH_HOST, (const uint8_t *)h->name, strlen(h->name), buf,
                      sizeof(buf));
    return rc;
}

int kr_store_host_rec_decode(const uint8_t *key, size_t key_len, const uint8_t *val, size_t len,
                             struct kr_host_rec *out)
{
    memset(out, 0, sizeof(*out));
    if (key_len == 0 || key_len >= sizeof(out->name))
        return KR_EMALF;
    memcpy(out->name, key, key_len);
    return host_decode(val, len, out);
}

struct host_out {
    struct kr_host_rec *h;
    const MDB_val *k;
};

static int copy_host(const MDB_val *v, void *arg)
{
    struct host_out *o = arg;
    memset(o->h, 0, sizeof(*o->h));
    memcpy(o->h->name, o->k->mv_data, o->k->mv_size);
    return host_decode(v->mv_data, v->mv_size, o->h);
}

int kr_store_host_get(struct kr_store *s, const char *name, struct kr_host_rec *out)
{
    MDB_val k;
    int rc = host_key(name, &k);
    struct host_out o = {out, &k};
    if (rc == 0)
        rc = read_one(s, s->dbi_hosts, &k, copy_host, &o);
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}

int kr_store_host_del(struct kr_store *s, const char *name)
{
    MDB_val k;
    if (host_key(name, &k) != 0)
        return KR_EINVAL;
    return sync_write(s, s->dbi_hosts, &k, NULL);
}

int kr_store_host_iter(struct kr_store *s, int (*cb)(const struct kr_host_rec *, void *), void *ctx)
{
    /* Hosts are few: copy them all out, then call back with no txn held. */
    struct kr_host_rec *all = NULL;
    size_t n = 0, cap = 0;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = store_txn_begin(s, MDB_RDONLY, &txn);
    if (rc == 0 && (rc = mdb_cursor_open(txn, s->dbi_hosts, &cur)) == 0) {
        MDB_val k, v;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size == 0 || k.mv_size >= KR_PIN_HOST_MAX)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                struct kr_host_rec *na = realloc(all, cap * sizeof(*all));
                if (!na) {
                    rc = ENOMEM;
                    break;
                }
                all = na;
            }
            struct host_out o = {&all[n], &k};
            if (copy_host(&v, &o) == 0)
                n++;
        }
        mdb_cursor_close(cur);
    }
    if (txn)
        mdb_txn_abort(txn);
    rc = rc == MDB_NOTFOUND ? 0 : store_err_from_mdb(rc, NULL);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cb(&all[i], ctx);
    free(all);
    return rc;
}

static int kv_key(const char *key, MDB_val *k)
{
    size_t n = key ? strnlen(key, KR_KV_KEY_MAX + 1) : 0;
    if (n == 0 || n > KR_KV_KEY_MAX)
        return KR_EINVAL;
    *k = store_val(key, n);
    return 0;
}

int kr_store_kv_put(struct kr_store *s, const char *key, const void *val, size_t len)
{
    MDB_val k;
    if (kv_key(key, &k) != 0 || len > KR_KV_VAL_MAX || (len && !val))
        return KR_EINVAL;
    MDB_val v = store_val(val, len);
    return sync_write(s, s->dbi_kv, &k, &v);
}

struct kv_out {
    void *buf;
    size_t cap;
    size_t *len;
};

static int copy_kv(const MDB_val *v, void *arg)
{
    struct kv_out *o = arg;
    if (o->len)
        *o->len = v->mv_size;
    if (v->mv_size > o->cap)
        return KR_ENOSPC;
    if (v->mv_size)
        memcpy(o->buf, v->mv_data, v->mv_size);
    return 0;
}

int kr_store_kv_get(struct kr_store *s, const char *key, void *buf, size_t cap, size_t *len)
{
    MDB_val k;
    if (kv_key(key, &k) != 0)
        return KR_EINVAL;
    struct kv_out o = {buf, cap, len};
    return read_one(s, s->dbi_kv, &k, copy_kv, &o);
}

int kr_store_kv_del(struct kr_store *s, const char *key)
{
    MDB_val k;
    if (kv_key(key, &k) != 0)
        return KR_EINVAL;
    return sync_write(s, s->dbi_kv, &k, NULL);
}
