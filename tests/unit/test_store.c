/* test_store.c - the persistent store (src/store): pin record codec, the
 * write queue, group commit, crash and full-store behaviour, expiry, walks,
 * hosts and kv. Every test works in its own mkdtemp() dir under /tmp. */
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/err.h"
#include "kmsrelay/store.h"
#include "store/batch.h"
#include "store/store-internal.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static char *mk_dir(char *buf)
{
    strcpy(buf, "/tmp/kr-store-XXXXXX");
    return mkdtemp(buf);
}

static void cmid_of(uint32_t i, uint8_t cmid[16])
{
    /* Spread over the key space like random GUIDs would be. */
    uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull;
    for (int k = 0; k < 16; k++) {
        cmid[k] = (uint8_t)(h >> ((k % 8) * 8)) ^ (uint8_t)(k * 31 + i);
        if (k == 7)
            h = h * 0xBF58476D1CE4E5B9ull + i;
    }
}

static void mk_pin(uint32_t i, int64_t seen, struct kr_pin *p)
{
    memset(p, 0, sizeof(*p));
    cmid_of(i, p->cmid);
    snprintf(p->host, sizeof(p->host), "kms-%c", 'a' + (int)(i % 3));
    p->first_seen = seen - 100;
    p->last_seen = seen;
    memset(p->app_id, 0x55, 16);
    memset(p->kms_id, 0x66, 16);
    char ws[64];
    snprintf(ws, sizeof(ws), "PC-%u.corp.example", i);
    kr_pin_note_name(p, ws, seen);
    p->is_vm = i & 1;
    p->license_status = (uint8_t)(i % 7);
    p->ver_major = 6;
    p->last_count = 50;
    p->n_policy = 25;
    p->skew_s = -3;
    p->activations = i;
}

/* Compares two pins the way a decode produces them. */
static int pin_eq(const struct kr_pin *a, const struct kr_pin *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

static struct kr_store *open_store(const char *dir, const struct kr_store_opts *o)
{
    struct kr_store *s = NULL;
    const char *why = NULL;
    int rc = kr_store_open(dir, o, &s, &why);
    if (rc)
        fprintf(stderr, "open %s: %s (%s)\n", dir, kr_strerror(rc), why ? why : "");
    return s;
}

/* ---- pin record codec ------------------------------------------------- */

static void full_pin(struct kr_pin *p)
{
    memset(p, 0, sizeof(*p));
    memset(p->host, 'h', KR_PIN_HOST_MAX - 1);
    p->first_seen = -5;
    p->last_seen = INT64_MAX;
    memset(p->app_id, 1, 16);
    memset(p->kms_id, 2, 16);
    memset(p->prev_cmid, 3, 16);
    for (int i = 0; i < KR_PIN_NAMES; i++) {
        memset(p->names[i].name, 'a' + i, KR_PIN_WS_MAX - 1);
        p->names[i].last_seen = 1000 - i;
    }
    p->n_names = KR_PIN_NAMES;
    memset(p->workstation, 'w', KR_PIN_WS_MAX - 1); /* differs from names[0] */
    p->is_vm = 1;
    p->license_status = 6;
    p->ver_major = 0xffff;
    p->last_hresult = 0xC004F042u;
    p->last_count = 0xffffffffu;
    p->n_policy = 25;
    p->skew_s = INT32_MIN;
    p->activations = 7;
}

static void roundtrip(const struct kr_pin *in)
{
    uint8_t buf[KR_PIN_REC_MAX];
    size_t len = 0;
    struct kr_pin out, want = *in;
    memset(want.cmid, 0, 16);
    CU_ASSERT_EQUAL_FATAL(kr_pin_encode(in, buf, sizeof(buf), &len), 0);
    const char *why = NULL;
    CU_ASSERT_EQUAL(kr_pin_decode(buf, len, &out, &why), 0);
    CU_ASSERT(pin_eq(&out, &want));
    /* Every strict prefix is malformed. */
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        int rc = kr_pin_decode(cut, n, &out, &why);
        if (rc != KR_EMALF)
            fprintf(stderr, "prefix %zu/%zu: %d\n", n, len, rc);
        CU_ASSERT_EQUAL(rc, KR_EMALF);
        free(cut);
    }
}

static void test_record_roundtrip(void)
{
    struct kr_pin p;
    full_pin(&p);
    uint8_t buf[KR_PIN_REC_MAX];
    size_t len;
    CU_ASSERT_EQUAL(kr_pin_encode(&p, buf, sizeof(buf), &len), 0);
    CU_ASSERT(len <= KR_PIN_REC_MAX);
    CU_ASSERT_EQUAL(kr_pin_encode(&p, buf, len - 1, &len), KR_ENOSPC);
    roundtrip(&p);
    /* workstation equal to names[0]: omitted on disk, restored on decode */
    memcpy(p.workstation, p.names[0].name, sizeof(p.workstation));
    roundtrip(&p);
    /* empty workstation while names exist must stay empty */
    memset(p.workstation, 0, sizeof(p.workstation));
    roundtrip(&p);
    /* minimal: only a host */
    memset(&p, 0, sizeof(p));
    strcpy(p.host, "k");
    roundtrip(&p);
    strcpy(p.workstation, "solo");
    roundtrip(&p);
    mk_pin(42, 1700000000, &p);
    roundtrip(&p);
}

/* The example of the pin_record.c header comment, byte for byte. */
static const uint8_t doc_example[] = {
    0x02, 0x01, 0x05, 'k',  'm',  's',  '-',  'a',  0x02, 0x08, 0x00, 0xf1, 0x53, 0x65, 0x00, 0x00,
    0x00, 0x00, 0x03, 0x08, 0x00, 0xf1, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00, 0x07, 0x0b, 0x00, 0xf1,
    0x53, 0x65, 0x00, 0x00, 0x00, 0x00, 'P',  'C',  '1',  0x08, 0x01, 0x01, 0x00, 0x00};

static void test_record_example(void)
{
    struct kr_pin p, q;
    CU_ASSERT_EQUAL_FATAL(kr_pin_decode(doc_example, sizeof(doc_example), &p, NULL), 0);
    CU_ASSERT_STRING_EQUAL(p.host, "kms-a");
    CU_ASSERT_EQUAL(p.first_seen, 1700000000);
    CU_ASSERT_EQUAL(p.last_seen, 1700000000);
    CU_ASSERT_EQUAL(p.n_names, 1);
    CU_ASSERT_STRING_EQUAL(p.names[0].name, "PC1");
    CU_ASSERT_STRING_EQUAL(p.workstation, "PC1");
    CU_ASSERT_EQUAL(p.is_vm, 1);
    uint8_t buf[KR_PIN_REC_MAX];
    size_t len;
    CU_ASSERT_EQUAL(kr_pin_encode(&p, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(len, sizeof(doc_example));
    CU_ASSERT(memcmp(buf, doc_example, sizeof(doc_example)) == 0);

    /* Unknown types, short and long length forms, are skipped. */
    uint8_t ext[sizeof(doc_example) + 5 + 3 + 300];
    size_t n = sizeof(doc_example) - 2;
    memcpy(ext, doc_example, n);
    ext[n++] = 0x50; /* short form, 3 bytes */
    ext[n++] = 3;
    memset(ext + n, 0xee, 3);
    n += 3;
    ext[n++] = 0xC1; /* long form, 300 bytes */
    ext[n++] = 300 & 0xff;
    ext[n++] = 300 >> 8;
    memset(ext + n, 0, 300);
    n += 300;
    ext[n++] = 0;
    ext[n++] = 0;
    CU_ASSERT_EQUAL(kr_pin_decode(ext, n, &q, NULL), 0);
    CU_ASSERT(pin_eq(&p, &q));

    /* The same record as written before per-application pins (version 1,
     * the format of every record in a migrated store) decodes the same. */
    uint8_t v1[sizeof(doc_example)];
    memcpy(v1, doc_example, sizeof(v1));
    v1[0] = 1;
    CU_ASSERT_EQUAL(kr_pin_decode(v1, sizeof(v1), &q, NULL), 0);
    CU_ASSERT(pin_eq(&p, &q));

    /* Version 2's SKU_ID round-trips (type 17, 16 bytes). */
    memset(p.sku_id, 0x5c, 16);
    CU_ASSERT_EQUAL(kr_pin_encode(&p, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(len, sizeof(doc_example) + 18);
    CU_ASSERT_EQUAL(kr_pin_decode(buf, len, &q, NULL), 0);
    CU_ASSERT(pin_eq(&p, &q));
    CU_ASSERT_EQUAL(q.sku_id[15], 0x5c);
}

/* Decodes a copy of doc_example with one byte changed / appended. */
static int decode_patched(size_t at, uint8_t val, size_t extra)
{
    uint8_t b[sizeof(doc_example) + 4];
    memcpy(b, doc_example, sizeof(doc_example));
    memset(b + sizeof(doc_example), 0, 4);
    if (at < sizeof(b))
        b[at] = val;
    struct kr_pin p;
    const char *why = NULL;
    int rc = kr_pin_decode(b, sizeof(doc_example) + extra, &p, &why);
    if (rc)
        CU_ASSERT_PTR_NOT_NULL(why);
    return rc;
}

static void test_record_reject(void)
{
    CU_ASSERT_EQUAL(decode_patched(0, 3, 0), KR_EUNSUP);    /* version 3 */
    CU_ASSERT_EQUAL(decode_patched(0, 1, 0), 0);            /* version 1 is still read */
    CU_ASSERT_EQUAL(decode_patched(0, 0, 0), KR_EUNSUP);    /* version 0 */
    CU_ASSERT_EQUAL(decode_patched(99, 0, 1), KR_EMALF);    /* trailing byte */
    CU_ASSERT_EQUAL(decode_patched(99, 0, 2), KR_EMALF);    /* a 2nd END */
    CU_ASSERT_EQUAL(decode_patched(9, 7, 0), KR_EMALF);     /* FIRST_SEEN len 7 */
    CU_ASSERT_EQUAL(decode_patched(4, 0, 0), KR_EMALF);     /* NUL in host */
    CU_ASSERT_EQUAL(decode_patched(18, 0x02, 0), KR_EMALF); /* FIRST_SEEN twice */
    CU_ASSERT_EQUAL(decode_patched(1, 0x60, 0), KR_EMALF);  /* no host */
    CU_ASSERT_EQUAL(decode_patched(45, 1, 0), KR_EMALF);    /* END with a length */
    CU_ASSERT_EQUAL(decode_patched(29, 7, 0), KR_EMALF);    /* NAME shorter than 8 */
    CU_ASSERT_EQUAL(decode_patched(99, 0, 0), 0);           /* unpatched is fine */

    /* A fifth NAME. */
    uint8_t b[64];
    size_t n = 0;
    b[n++] = 1;
    b[n++] = 1, b[n++] = 1, b[n++] = 'h';
    for (int i = 0; i < 5; i++) {
        b[n++] = 7, b[n++] = 9;
        memset(b + n, 0, 8);
        n += 8;
        b[n++] = (uint8_t)('a' + i);
    }
    b[n++] = 0, b[n++] = 0;
    struct kr_pin p;
    CU_ASSERT_EQUAL(kr_pin_decode(b, n, &p, NULL), KR_EMALF);
    CU_ASSERT_EQUAL(kr_pin_decode(b, 0, &p, NULL), KR_EMALF);

    /* Encoder refuses pins it could not store. */
    mk_pin(1, 100, &p);
    uint8_t buf[KR_PIN_REC_MAX];
    size_t len;
    p.host[0] = 0;
    CU_ASSERT_EQUAL(kr_pin_encode(&p, buf, sizeof(buf), &len), KR_EINVAL);
    mk_pin(1, 100, &p);
    p.n_names = 5;
    CU_ASSERT_EQUAL(kr_pin_encode(&p, buf, sizeof(buf), &len), KR_EINVAL);
    mk_pin(1, 100, &p);
    memset(p.host, 'x', sizeof(p.host)); /* no NUL */
    CU_ASSERT_EQUAL(kr_pin_encode(&p, buf, sizeof(buf), &len), KR_EINVAL);
}

static void test_note_name(void)
{
    struct kr_pin p;
    memset(&p, 0, sizeof(p));
    CU_ASSERT(kr_pin_note_name(&p, "A", 10));
    CU_ASSERT(kr_pin_note_name(&p, "B", 20));
    CU_ASSERT(!kr_pin_note_name(&p, "A", 30)); /* moves A to the front */
    CU_ASSERT_EQUAL(p.n_names, 2);
    CU_ASSERT_STRING_EQUAL(p.names[0].name, "A");
    CU_ASSERT_EQUAL(p.names[0].last_seen, 30);
    CU_ASSERT_STRING_EQUAL(p.names[1].name, "B");
    CU_ASSERT(kr_pin_note_name(&p, "C", 40));
    CU_ASSERT(kr_pin_note_name(&p, "D", 50));
    CU_ASSERT_EQUAL(p.n_names, 4);
    CU_ASSERT(kr_pin_note_name(&p, "E", 60)); /* evicts B (seen at 20) */
    CU_ASSERT_EQUAL(p.n_names, 4);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_STRING_NOT_EQUAL(p.names[i].name, "B");
    CU_ASSERT_STRING_EQUAL(p.names[0].name, "E");
    CU_ASSERT_STRING_EQUAL(p.workstation, "E");
    CU_ASSERT_EQUAL(kr_pin_names_since(&p, 45), 2);
    CU_ASSERT_EQUAL(kr_pin_names_since(&p, 0), 4);
    CU_ASSERT(!kr_pin_note_name(&p, "", 70));
    CU_ASSERT_STRING_EQUAL(p.workstation, "");
    CU_ASSERT_EQUAL(p.n_names, 4);
}

/* ---- the write queue, against a naive model ---------------------------- */

/* Small values (every pin record) reuse the buffers of cleared, coalesced
 * and dropped entries: a batch in steady use allocates nothing (issue 13). */
static void test_batch_recycles(void)
{
    struct batch b;
    uint8_t key[PEND_KEY_LEN] = {1}, v[PEND_VAL_SMALL + 10];
    uint64_t dropped = 0;
    memset(v, 0xAB, sizeof(v));
    CU_ASSERT_EQUAL_FATAL(batch_init(&b, 4, 7), 0);
    CU_ASSERT_EQUAL(batch_set(&b, key, PEND_PUT, v, 120, 0, &dropped), 0);
    uint8_t *first = batch_find(&b, key)->val;
    batch_clear(&b);
    CU_ASSERT_EQUAL(b.n_spare, 1);
    key[0] = 2;
    CU_ASSERT_EQUAL(batch_set(&b, key, PEND_PUT, v, 200, 0, &dropped), 0);
    CU_ASSERT_PTR_EQUAL(batch_find(&b, key)->val, first); /* the same buffer again */
    CU_ASSERT_EQUAL(b.n_spare, 0);
    CU_ASSERT_EQUAL(batch_set(&b, key, PEND_PUT, v, 90, 0, &dropped), 0); /* coalesced */
    CU_ASSERT_EQUAL(b.n_spare, 1);
    CU_ASSERT_EQUAL(memcmp(batch_find(&b, key)->val, v, 90), 0);
    /* a large value is allocated and freed as it is, never kept */
    CU_ASSERT_EQUAL(batch_set(&b, key, PEND_PUT, v, sizeof(v), 0, &dropped), 0);
    CU_ASSERT_EQUAL(b.n_spare, 2);
    batch_clear(&b);
    CU_ASSERT_EQUAL(b.n_spare, 2);
    batch_deinit(&b); /* frees the spares (ASan: no leak) */
}

static void test_batch_model(void)
{
    enum { CAP = 37, KEYS = 120, OPS = 20000 };
    struct batch b, b2;
    CU_ASSERT_EQUAL_FATAL(batch_init(&b, CAP, 12345), 0);
    CU_ASSERT_EQUAL_FATAL(batch_init(&b2, CAP, 12345), 0);
    /* model: queue order of keys and their value byte */
    int order[CAP], val[KEYS], n = 0;
    uint64_t dropped = 0, mdrop = 0;
    unsigned seed = 7;
    for (int op = 0; op < OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % KEYS);
        uint8_t cmid[PEND_KEY_LEN] = {0}; /* CMID, zero application */
        cmid_of((uint32_t)k, cmid);
        uint8_t v = (uint8_t)op;
        CU_ASSERT_EQUAL(batch_set(&b, cmid, PEND_PUT, &v, 1, 0, &dropped), 0);
        int at = -1;
        for (int i = 0; i < n; i++)
            if (order[i] == k)
                at = i;
        if (at < 0) {
            if (n == CAP) {
                memmove(order, order + 1, (CAP - 1) * sizeof(int));
                n--;
                mdrop++;
            }
            order[n++] = k;
        }
        val[k] = v;
        if (op % 97 == 0) {
            CU_ASSERT_EQUAL(b.n, (size_t)n);
            for (int i = 0; i < n; i++) {
                struct pend *e = batch_at(&b, (size_t)i);
                uint8_t c2[PEND_KEY_LEN] = {0};
                cmid_of((uint32_t)order[i], c2);
                CU_ASSERT(memcmp(e->key, c2, PEND_KEY_LEN) == 0);
                CU_ASSERT_EQUAL(e->val[0], (uint8_t)val[order[i]]);
                CU_ASSERT_PTR_EQUAL(batch_find(&b, c2), e);
            }
        }
    }
    CU_ASSERT_EQUAL(dropped, mdrop);
    /* merge: b2 gets 5 keys, 2 of which are in b; b in front, trimmed */
    for (int i = 0; i < 5; i++) {
        uint8_t cmid[PEND_KEY_LEN] = {0}, v = 0xAA;
        cmid_of((uint32_t)(i < 2 ? order[n - 1 - i] : KEYS + i), cmid);
        batch_set(&b2, cmid, PEND_DEL, &v, 0, 0, &dropped);
    }
    uint64_t d0 = dropped;
    batch_merge(&b, &b2, &dropped);
    CU_ASSERT_EQUAL(b2.n, 0);
    CU_ASSERT_EQUAL(b.n, (size_t)CAP);
    CU_ASSERT_EQUAL(dropped - d0, (uint64_t)(n - 2 + 5 - CAP));
    for (int i = 0; i < 5; i++) {
        uint8_t cmid[PEND_KEY_LEN] = {0}; /* CMID, zero application */
        cmid_of((uint32_t)(i < 2 ? order[n - 1 - i] : KEYS + i), cmid);
        struct pend *e = batch_find(&b, cmid);
        CU_ASSERT(e && e->op == PEND_DEL);
    }
    CU_ASSERT_EQUAL(batch_at(&b, CAP - 1)->op, PEND_DEL); /* newer ones last */
    batch_deinit(&b);
    batch_deinit(&b2);
}

/* ---- the store --------------------------------------------------------- */

static void test_put_get_flush(void)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    struct kr_store *s = open_store(d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct kr_pin p, q;
    mk_pin(1, 1000, &p);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
    CU_ASSERT_EQUAL(kr_store_pending(s), 1);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), 0); /* from the queue */
    CU_ASSERT(pin_eq(&p, &q));
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 0);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_pending(s), 0);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), 0); /* from LMDB */
    CU_ASSERT(pin_eq(&p, &q));
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 1);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0); /* empty flush */
    struct kr_store_stats st;
    kr_store_stats(s, &st);
    CU_ASSERT_EQUAL(st.commits, 1);
    CU_ASSERT_EQUAL(st.pins_written, 1);
    CU_ASSERT_EQUAL(st.pins, 1);
    CU_ASSERT(st.map_size == (1u << 30));
    CU_ASSERT(st.map_used > 0 && !st.degraded);
    p.host[0] = 0;
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), KR_EINVAL);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

static void test_coalesce_delete(void)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    struct kr_store *s = open_store(d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct kr_pin p, q;
    mk_pin(7, 1000, &p);
    for (int i = 0; i < 5; i++) {
        p.activations = (uint32_t)i;
        CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
    }
    CU_ASSERT_EQUAL(kr_store_pending(s), 1);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), 0);
    CU_ASSERT_EQUAL(q.activations, 4);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    struct kr_store_stats st;
    kr_store_stats(s, &st);
    CU_ASSERT_EQUAL(st.pins_written, 1);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), 0);
    CU_ASSERT_EQUAL(q.activations, 4);

    /* delete: hidden while queued, gone after the flush */
    CU_ASSERT_EQUAL(kr_store_pin_del(s, p.cmid, p.app_id), 0);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 1);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 0);
    /* put then delete in one batch: the delete wins; deleting the absent is fine */
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
    CU_ASSERT_EQUAL(kr_store_pin_del(s, p.cmid, p.app_id), 0);
    CU_ASSERT_EQUAL(kr_store_pending(s), 1);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 0);
    kr_store_stats(s, &st);
    CU_ASSERT_EQUAL(st.pins_deleted, 1);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

static int count_cb(const struct kr_pin *p, void *ctx)
{
    (*(size_t *)ctx)++;
    return 0;
}

static void test_persist(void)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    struct kr_store *s = open_store(d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct kr_pin p, q;
    for (uint32_t i = 0; i < 500; i++) {
        mk_pin(i, 5000 + i, &p);
        CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
        if (i == 249)
            CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    }
    CU_ASSERT_EQUAL(kr_store_close(s), 0); /* flushes the second half */
    s = open_store(d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 500);
    size_t bad = 0;
    for (uint32_t i = 0; i < 500; i++) {
        mk_pin(i, 5000 + i, &p);
        if (kr_store_pin_get(s, p.cmid, p.app_id, &q) != 0 || !pin_eq(&p, &q))
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

/* Child: batch A flushed, batch B only queued, then SIGKILL. */
static void crash_child(const char *d, int threaded)
{
    struct kr_store_opts o = {0};
    o.flush_interval_ms = threaded ? 60000 : 0; /* the thread exists but never fires */
    struct kr_store *s = NULL;
    if (kr_store_open(d, &o, &s, NULL) != 0)
        _exit(2);
    struct kr_pin p;
    for (uint32_t i = 0; i < 300; i++) {
        mk_pin(i, 1000, &p);
        if (kr_store_pin_put(s, &p) != 0)
            _exit(3);
    }
    if (kr_store_flush(s, NULL) != 0)
        _exit(4);
    for (uint32_t i = 300; i < 600; i++) {
        mk_pin(i, 1000, &p);
        if (kr_store_pin_put(s, &p) != 0)
            _exit(5);
    }
    raise(SIGKILL);
    _exit(6);
}

static void crash_case(int threaded)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0)
        crash_child(d, threaded);
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    struct kr_store *s = open_store(d, NULL); /* also clears the dead reader slot */
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 300);
    struct kr_pin p, q;
    size_t a = 0, b = 0;
    for (uint32_t i = 0; i < 600; i++) {
        mk_pin(i, 1000, &p);
        if (kr_store_pin_get(s, p.cmid, p.app_id, &q) == 0 && pin_eq(&p, &q))
            *(i < 300 ? &a : &b) += 1;
    }
    CU_ASSERT_EQUAL(a, 300);
    CU_ASSERT_EQUAL(b, 0);
    /* and the reopened store takes writes */
    mk_pin(1000, 1, &p);
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

static void test_crash(void)
{
    crash_case(0);
    crash_case(1);
}

static void test_map_full(void)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    struct kr_store_opts o = {0};
    o.map_size = 64 * 1024;
    o.max_pending = 1000;
    struct kr_store *s = open_store(d, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct kr_pin p, q;
    mk_pin(0, 1, &p);
    CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0); /* one pin fits */
    for (uint32_t i = 1; i < 1200; i++) {
        mk_pin(i, 1, &p);
        CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
    }
    CU_ASSERT_EQUAL(kr_store_pending(s), 1000); /* bounded: the 199 oldest went */
    const char *why = NULL;
    CU_ASSERT_EQUAL(kr_store_flush(s, &why), KR_ENOSPC);
    CU_ASSERT_PTR_NOT_NULL(why);
    CU_ASSERT(kr_store_degraded(s));
    CU_ASSERT_EQUAL(kr_store_pending(s), 1000); /* the batch is kept */
    mk_pin(1199, 1, &p);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), 0); /* queued pins still answer */
    CU_ASSERT(pin_eq(&p, &q));
    mk_pin(1, 1, &p);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), KR_ENOENT); /* dropped */
    mk_pin(0, 1, &p);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), 0); /* committed one */
    /* more puts during the outage stay bounded; repeated failures are fine */
    for (uint32_t i = 2000; i < 2050; i++) {
        mk_pin(i, 1, &p);
        CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
    }
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), KR_ENOSPC);
    CU_ASSERT_EQUAL(kr_store_pending(s), 1000);
    struct kr_store_stats st;
    kr_store_stats(s, &st);
    CU_ASSERT_EQUAL(st.drops, 249);
    CU_ASSERT_EQUAL(st.map_full_events, 2);
    CU_ASSERT_EQUAL(st.commit_failures, 2);
    CU_ASSERT_EQUAL(st.last_error, KR_ENOSPC);
    CU_ASSERT(st.degraded);
    /* host writes report the full map too, and nothing crashes */
    struct kr_host_rec h = {"kms-a", KR_HOST_DRAIN, 10, 5};
    int hrc = kr_store_host_put(s, &h);
    CU_ASSERT(hrc == 0 || hrc == KR_ENOSPC);
    CU_ASSERT_EQUAL(kr_store_close(s), KR_ENOSPC); /* the queue is lost */

    o.map_size = 64 << 20; /* a bigger map after restart works */
    s = open_store(d, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 1);
    for (uint32_t i = 1; i < 1200; i++) {
        mk_pin(i, 1, &p);
        CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
        if (i % 500 == 0)
            CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    }
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    CU_ASSERT(!kr_store_degraded(s));
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 1200);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

/* The flag is sticky until a commit succeeds. In a full LMDB map even
 * deletes can fail (copy-on-write needs free pages), so the way out inside
 * one process is a batch that needs no new pages: here the failed puts are
 * cancelled by deletes of the same CMIDs (coalesced; absent keys). */
static void test_degraded_clears(void)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    struct kr_store_opts o = {0};
    o.map_size = 64 * 1024;
    struct kr_store *s = open_store(d, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct kr_pin p;
    uint32_t n = 0;
    int rc = 0;
    while (rc == 0 && n < 5000) { /* small batches until a commit fails */
        for (int k = 0; k < 20; k++, n++) {
            mk_pin(n, 1, &p);
            kr_store_pin_put(s, &p);
        }
        rc = kr_store_flush(s, NULL);
    }
    CU_ASSERT_EQUAL(rc, KR_ENOSPC);
    CU_ASSERT(kr_store_degraded(s));
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), KR_ENOSPC); /* still */
    CU_ASSERT(kr_store_degraded(s));
    size_t stored = kr_store_pin_count(s);
    CU_ASSERT_EQUAL(stored, n - 20);
    for (uint32_t i = n - 20; i < n; i++) {
        uint8_t c[16];
        cmid_of(i, c);
        uint8_t app[16];
        memset(app, 0x55, 16); /* mk_pin's application */
        kr_store_pin_del(s, c, app);
    }
    CU_ASSERT_EQUAL(kr_store_pending(s), 20);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    CU_ASSERT(!kr_store_degraded(s));
    CU_ASSERT_EQUAL(kr_store_pin_count(s), stored);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

/* Child: the file may not grow past a limit (as on a full disk). */
static void disk_full_child(const char *d)
{
    struct kr_store *s = NULL;
    if (kr_store_open(d, NULL, &s, NULL) != 0)
        _exit(2);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {256 * 1024, 256 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        _exit(3);
    struct kr_pin p, q;
    int rc = 0;
    uint32_t n = 0;
    while (rc == 0 && n < 100000) {
        for (int k = 0; k < 200; k++, n++) {
            mk_pin(n, 1, &p);
            kr_store_pin_put(s, &p);
        }
        rc = kr_store_flush(s, NULL);
    }
    if (rc != KR_ENOSPC && rc != KR_EIO)
        _exit(4);
    if (!kr_store_degraded(s))
        _exit(5);
    mk_pin(n - 1, 1, &p);
    if (kr_store_pin_get(s, p.cmid, p.app_id, &q) != 0) /* still queued, still answered */
        _exit(6);
    mk_pin(0, 1, &p);
    if (kr_store_pin_get(s, p.cmid, p.app_id, &q) != 0) /* committed earlier */
        _exit(7);
    if (kr_store_flush(s, NULL) == 0) /* still full */
        _exit(8);
    kr_store_close(s);
    _exit(0);
}

static void test_disk_full(void)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0)
        disk_full_child(d);
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(WIFEXITED(st));
    CU_ASSERT_EQUAL(WEXITSTATUS(st), 0);
    /* What was committed before the disk filled is intact. */
    struct kr_store *s = open_store(d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    size_t n = kr_store_pin_count(s), seen = 0;
    CU_ASSERT(n >= 200);
    CU_ASSERT_EQUAL(kr_store_pin_iter(s, count_cb, &seen), 0);
    CU_ASSERT_EQUAL(seen, n);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

static void test_expire(void)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    struct kr_store *s = open_store(d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct kr_pin p, q;
    for (uint32_t i = 0; i < 1000; i++) {
        mk_pin(i, (i % 2) ? 100 : 900, &p); /* odd ones idle */
        kr_store_pin_put(s, &p);
    }
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    /* one queued write: an idle CMID that came back must survive */
    mk_pin(1, 950, &p);
    kr_store_pin_put(s, &p);
    size_t total = 0, steps = 0, q_n;
    bool wrapped = false;
    while (!wrapped && steps < 100) {
        CU_ASSERT_EQUAL(kr_store_expire(s, 500, 64, &q_n, &wrapped), 0);
        CU_ASSERT(q_n <= 64);
        total += q_n;
        steps++;
    }
    CU_ASSERT(wrapped);
    CU_ASSERT_EQUAL(steps, 16); /* ceil(1000 / 64) */
    CU_ASSERT_EQUAL(total, 499);
    mk_pin(3, 100, &p);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), KR_ENOENT); /* expiry queued */
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 1000);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 501);
    mk_pin(1, 950, &p);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), 0);
    CU_ASSERT_EQUAL(q.last_seen, 950);
    struct kr_store_stats st;
    kr_store_stats(s, &st);
    CU_ASSERT_EQUAL(st.pins_expired, 499);
    /* a new pass finds nothing more */
    CU_ASSERT_EQUAL(kr_store_expire(s, 500, 10000, &q_n, &wrapped), 0);
    CU_ASSERT_EQUAL(q_n, 0);
    CU_ASSERT(wrapped);
    /* a put after the expiry was queued replaces it (coalescing) */
    mk_pin(0, 900, &p);
    CU_ASSERT_EQUAL(kr_store_expire(s, 1000, 10, &q_n, &wrapped), 0);
    CU_ASSERT_EQUAL(q_n, 10);
    kr_store_pin_put(s, &p); /* may or may not be among the 10: fine */
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    CU_ASSERT_EQUAL(kr_store_pin_get(s, p.cmid, p.app_id, &q), 0);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

struct iter_ctx {
    size_t n;
    uint8_t last[16];
    int ordered;
    size_t hosts_z;
    size_t stop_at;
};

static int iter_cb(const struct kr_pin *p, void *ctx)
{
    struct iter_ctx *c = ctx;
    if (c->n && memcmp(c->last, p->cmid, 16) >= 0)
        c->ordered = 0;
    memcpy(c->last, p->cmid, 16);
    if (strcmp(p->host, "kms-z") == 0)
        c->hosts_z++;
    c->n++;
    return c->stop_at && c->n == c->stop_at ? 42 : 0;
}

static void test_iter(void)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    struct kr_store *s = open_store(d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct kr_pin p;
    for (uint32_t i = 0; i < 10000; i++) { /* more than one chunk */
        mk_pin(i, 10, &p);
        kr_store_pin_put(s, &p);
    }
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    /* queued: 100 overrides, 50 deletes, 30 new */
    for (uint32_t i = 0; i < 100; i++) {
        mk_pin(i, 20, &p);
        strcpy(p.host, "kms-z");
        kr_store_pin_put(s, &p);
    }
    for (uint32_t i = 100; i < 150; i++) {
        cmid_of(i, p.cmid);
        kr_store_pin_del(s, p.cmid, p.app_id);
    }
    for (uint32_t i = 20000; i < 20030; i++) {
        mk_pin(i, 20, &p);
        strcpy(p.host, "kms-z");
        kr_store_pin_put(s, &p);
    }
    struct iter_ctx c = {0, {0}, 1, 0, 0};
    CU_ASSERT_EQUAL(kr_store_pin_iter(s, iter_cb, &c), 0);
    CU_ASSERT_EQUAL(c.n, 10000 - 50 + 30);
    CU_ASSERT_EQUAL(c.hosts_z, 130);
    CU_ASSERT(c.ordered);
    struct iter_ctx c2 = {0, {0}, 1, 0, 5000};
    CU_ASSERT_EQUAL(kr_store_pin_iter(s, iter_cb, &c2), 42);
    CU_ASSERT_EQUAL(c2.n, 5000);
    CU_ASSERT_EQUAL(kr_store_flush(s, NULL), 0);
    struct iter_ctx c3 = {0, {0}, 1, 0, 0};
    CU_ASSERT_EQUAL(kr_store_pin_iter(s, iter_cb, &c3), 0);
    CU_ASSERT_EQUAL(c3.n, c.n);
    CU_ASSERT_EQUAL(c3.hosts_z, 130);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

static int host_cb(const struct kr_host_rec *h, void *ctx)
{
    char *out = ctx;
    strcat(out, h->name);
    strcat(out, ":");
    strcat(out, kr_host_admin_name(h->admin));
    strcat(out, " ");
    return 0;
}

static void test_hosts_kv(void)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    struct kr_store *s = open_store(d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct kr_host_rec a = {"kms-b", KR_HOST_DRAIN, 50, 1700000000}, b = {"kms-a", 0, 100, 1};
    struct kr_host_rec g;
    CU_ASSERT_EQUAL(kr_store_host_put(s, &a), 0);
    CU_ASSERT_EQUAL(kr_store_host_put(s, &b), 0);
    a.admin = KR_HOST_MAINT;
    CU_ASSERT_EQUAL(kr_store_host_put(s, &a), 0);
    CU_ASSERT_EQUAL(kr_store_host_get(s, "nope", &g), KR_ENOENT);
    struct kr_host_rec bad = {"", 0, 0, 0};
    CU_ASSERT_EQUAL(kr_store_host_put(s, &bad), KR_EINVAL);
    bad = a;
    bad.admin = 4;
    CU_ASSERT_EQUAL(kr_store_host_put(s, &bad), KR_EINVAL);
    CU_ASSERT_EQUAL(kr_store_kv_put(s, "dns/last", "abc", 3), 0);
    CU_ASSERT_EQUAL(kr_store_kv_put(s, "empty", NULL, 0), 0);
    CU_ASSERT_EQUAL(kr_store_kv_put(s, "", "x", 1), KR_EINVAL);
    char longkey[300];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = 0;
    CU_ASSERT_EQUAL(kr_store_kv_put(s, longkey, "x", 1), KR_EINVAL);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);

    s = open_store(d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(kr_store_host_get(s, "kms-b", &g), 0);
    CU_ASSERT_STRING_EQUAL(g.name, "kms-b");
    CU_ASSERT_EQUAL(g.admin, KR_HOST_MAINT);
    CU_ASSERT_EQUAL(g.weight, 50);
    CU_ASSERT_EQUAL(g.changed, 1700000000);
    char list[256] = "";
    CU_ASSERT_EQUAL(kr_store_host_iter(s, host_cb, list), 0);
    CU_ASSERT_STRING_EQUAL(list, "kms-a:ready kms-b:maint ");
    CU_ASSERT_EQUAL(kr_store_host_del(s, "kms-a"), 0);
    CU_ASSERT_EQUAL(kr_store_host_del(s, "kms-a"), KR_ENOENT);
    char buf[8];
    size_t len = 0;
    CU_ASSERT_EQUAL(kr_store_kv_get(s, "dns/last", buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(len, 3);
    CU_ASSERT(memcmp(buf, "abc", 3) == 0);
    CU_ASSERT_EQUAL(kr_store_kv_get(s, "dns/last", buf, 2, &len), KR_ENOSPC);
    CU_ASSERT_EQUAL(len, 3);
    CU_ASSERT_EQUAL(kr_store_kv_get(s, "empty", buf, 0, &len), 0);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL(kr_store_kv_del(s, "dns/last"), 0);
    CU_ASSERT_EQUAL(kr_store_kv_get(s, "dns/last", buf, sizeof(buf), &len), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_store_kv_del(s, "dns/last"), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    s = open_store(d, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(kr_store_host_get(s, "kms-a", &g), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_store_kv_get(s, "dns/last", buf, sizeof(buf), &len), KR_ENOENT);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

struct reader_arg {
    struct kr_store *s;
    atomic_int stop;
    size_t found, errors;
};

static void *reader_main(void *arg)
{
    struct reader_arg *r = arg;
    struct kr_pin p, q;
    for (uint32_t i = 0; !atomic_load(&r->stop); i = (i + 1) % 3000) {
        mk_pin(i, 77, &p);
        int rc = kr_store_pin_get(r->s, p.cmid, p.app_id, &q);
        if (rc == 0 && pin_eq(&p, &q))
            r->found++;
        else if (rc != KR_ENOENT)
            r->errors++;
    }
    return NULL;
}

static void test_background_flush(void)
{
    char d[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mk_dir(d));
    struct kr_store_opts o = {0};
    o.flush_interval_ms = 20;
    o.flush_batch = 100;
    struct kr_store *s = open_store(d, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct reader_arg r = {s, 0, 0, 0};
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, reader_main, &r), 0);
    struct kr_pin p;
    for (uint32_t i = 0; i < 3000; i++) {
        mk_pin(i, 77, &p);
        CU_ASSERT_EQUAL(kr_store_pin_put(s, &p), 0);
        if (i % 500 == 0)
            usleep(1000);
    }
    for (int k = 0; k < 500 && kr_store_pending(s) > 0; k++)
        usleep(10000);
    CU_ASSERT_EQUAL(kr_store_pending(s), 0);
    CU_ASSERT_EQUAL(kr_store_pin_count(s), 3000);
    atomic_store(&r.stop, 1);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(r.errors, 0);
    CU_ASSERT(r.found > 0);
    struct kr_store_stats st;
    kr_store_stats(s, &st);
    CU_ASSERT(st.commits >= 1);
    CU_ASSERT_EQUAL(st.pins_written, 3000);
    CU_ASSERT_EQUAL(kr_store_close(s), 0);
    rm_rf(d);
}

/* ---- damaged data.mdb (issue 11 items 1-3) ------------------------------ */

/* A store of n committed pins in a new dir; returns data.mdb's size. */
static long mk_full_store(char *d, uint32_t n)
{
    if (!mk_dir(d))
        return -1;
    struct kr_store *s = open_store(d, NULL);
    if (!s)
        return -1;
    struct kr_pin p;
    for (uint32_t i = 0; i < n; i++) {
        mk_pin(i, 5000 + i, &p);
        kr_store_pin_put(s, &p);
    }
    kr_store_close(s);
    char path[128];
    snprintf(path, sizeof(path), "%s/data.mdb", d);
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void data_path(const char *d, char *path, size_t cap)
{
    snprintf(path, cap, "%s/data.mdb", d);
}

/* Opens in a child (the old code died of SIGBUS there) and reads every pin.
 * Returns the child's exit code: 100 + -rc of open, 0 when it opened and
 * read, or 200 + signal when it died. *why gets the refusal text. */
static int open_in_child(const char *d, char *why, size_t cap)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        struct kr_store *s = NULL;
        const char *w = NULL;
        int rc = kr_store_open(d, NULL, &s, &w);
        if (w && write(pfd[1], w, strlen(w)) < 0)
            _exit(99);
        if (rc)
            _exit(100 - rc);
        struct kr_pin p, q;
        for (uint32_t i = 0; i < 2000; i++) {
            mk_pin(i, 5000 + i, &p);
            kr_store_pin_get(s, p.cmid, p.app_id, &q);
        }
        kr_store_close(s);
        _exit(0);
    }
    close(pfd[1]);
    ssize_t n = read(pfd[0], why, cap - 1);
    why[n > 0 ? n : 0] = 0;
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? 200 + WTERMSIG(st) : WEXITSTATUS(st);
}

static void test_damaged_open(void)
{
    char d[64], path[128], why[2048];
    long size = mk_full_store(d, 2000);
    CU_ASSERT_FATAL(size > 64 * 1024);
    data_path(d, path, sizeof(path));
    struct kr_store_check c;
    CU_ASSERT_EQUAL(kr_store_check(d, &c), 0);
    CU_ASSERT_EQUAL(c.state, KR_STORE_OK);
    CU_ASSERT_EQUAL(c.file_size, (uint64_t)size);
    CU_ASSERT(c.need_size <= c.file_size && c.page_size >= 512);

    /* cut to 8 KiB, then to half: refused, says truncated and what to do */
    long cuts[2] = {8192, size / 2};
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(truncate(path, cuts[i]), 0);
        CU_ASSERT_EQUAL(kr_store_check(d, &c), KR_EMALF);
        CU_ASSERT_EQUAL(c.state, KR_STORE_DAMAGED);
        CU_ASSERT_EQUAL(open_in_child(d, why, sizeof(why)), 100 - KR_EMALF);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "truncated"));
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "kmsrelayctl store set-aside --state-dir"));
        CU_ASSERT_PTR_NOT_NULL(strstr(why, d));
    }
    /* zero length: damage, not a new empty store */
    CU_ASSERT_EQUAL_FATAL(truncate(path, 0), 0);
    CU_ASSERT_EQUAL(open_in_child(d, why, sizeof(why)), 100 - KR_EMALF);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "empty (0 bytes)"));
    struct stat st;
    CU_ASSERT(stat(path, &st) == 0 && st.st_size == 0); /* left as found */
    /* no data.mdb at all: a new store */
    CU_ASSERT_EQUAL(unlink(path), 0);
    CU_ASSERT_EQUAL(kr_store_check(d, &c), 0);
    CU_ASSERT_EQUAL(c.state, KR_STORE_ABSENT);
    CU_ASSERT_EQUAL(open_in_child(d, why, sizeof(why)), 0);
    rm_rf(d);
}

/* Overwrites `n` bytes at `off` of data.mdb. */
static void poke(const char *path, long off, const void *b, size_t n)
{
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fseek(f, off, SEEK_SET);
    CU_ASSERT_EQUAL(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* Offset of the meta page LMDB uses (the one with the larger txnid). */
static long newest_meta(const char *path, long psize)
{
    uint64_t t[2] = {0, 0};
    FILE *f = fopen(path, "rb");
    for (int i = 0; f && i < 2; i++) {
        fseek(f, i * psize + 144, SEEK_SET);
        if (fread(&t[i], 8, 1, f) != 1)
            t[i] = 0;
    }
    if (f)
        fclose(f);
    return t[1] > t[0] ? psize : 0;
}

static void test_damaged_meta(void)
{
    /* what to write where (offsets inside the newest meta page) and the
     * text the refusal must carry */
    static const struct {
        long off;
        uint8_t bytes[8];
        size_t n;
        const char *want;
        int rc;
    } cases[] = {
        {136, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00}, 8, "last page number", KR_EMALF},
        {136, {0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}, 8, "truncated", KR_EMALF},
        {128, {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00}, 8, "root page", KR_EMALF},
        {16, {0xde, 0xc0, 0xad, 0x0b}, 4, "magic", KR_EMALF},
        {20, {0x07}, 1, "data format version", KR_EUNSUP},
        {40, {0x00, 0x03}, 2, "page size", KR_EMALF},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char d[64], path[128], why[2048];
        CU_ASSERT_FATAL(mk_full_store(d, 300) > 0);
        data_path(d, path, sizeof(path));
        struct kr_store_check c;
        CU_ASSERT_EQUAL_FATAL(kr_store_check(d, &c), 0);
        long m = newest_meta(path, c.page_size);
        poke(path, m + cases[i].off, cases[i].bytes, cases[i].n);
        CU_ASSERT_EQUAL(kr_store_check(d, &c), cases[i].rc);
        int got = open_in_child(d, why, sizeof(why));
        CU_ASSERT_EQUAL(got, 100 - cases[i].rc);
        if (!strstr(why, cases[i].want) || got != 100 - cases[i].rc)
            fprintf(stderr, "meta case %zu: exit %d, %s\n", i, got, why);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, cases[i].want));
        CU_ASSERT_PTR_NULL(strstr(why, "Cannot allocate memory"));
        rm_rf(d);
    }
}

/* data.mdb cut under an open store: no crash, lookups fail with KR_EIO,
 * writes stay queued, flushes fail and say why, and it stays that way. */
static void test_truncated_while_open(void)
{
    char d[64], path[128];
    long size = mk_full_store(d, 3000);
    CU_ASSERT_FATAL(size > 0);
    data_path(d, path, sizeof(path));
    pid_t pid = fork();
    if (pid == 0) {
        struct kr_store *s = open_store(d, NULL);
        struct kr_pin p, q;
        mk_pin(1, 5001, &p);
        if (!s || kr_store_pin_get(s, p.cmid, p.app_id, &q) != 0)
            _exit(2);
        if (truncate(path, size / 2) != 0)
            _exit(3);
        int bad = 0;
        for (uint32_t i = 0; i < 3000; i++) {
            mk_pin(i, 5000 + i, &p);
            int rc = kr_store_pin_get(s, p.cmid, p.app_id, &q);
            bad += rc != KR_EIO;
        }
        if (bad || !kr_store_damaged(s))
            _exit(4);
        /* found by lookups alone: the stats already say so (the daemon's
         * commit alarm reads them) */
        struct kr_store_stats s0;
        kr_store_stats(s, &s0);
        if (!s0.degraded || s0.commit_failures != 1 || !strstr(s0.last_why, "truncated"))
            _exit(9);
        mk_pin(7, 9999, &p);
        const char *why = NULL;
        if (kr_store_pin_put(s, &p) != 0 || kr_store_flush(s, &why) != KR_EIO || !why ||
            !strstr(why, "truncated") || kr_store_pending(s) != 1)
            _exit(5);
        if (kr_store_pin_get(s, p.cmid, p.app_id, &q) != 0 || q.last_seen != 9999)
            _exit(6); /* queued pins still answer */
        struct kr_store_stats st;
        kr_store_stats(s, &st);
        if (!st.degraded || st.last_error != KR_EIO)
            _exit(7);
        _exit(kr_store_close(s) == KR_EIO ? 0 : 8);
    }
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        fprintf(stderr, "truncated-while-open child: status 0x%x\n", st);
    rm_rf(d);
}

/* The SIGBUS path itself: a read of the map beyond the end of the file (the
 * race the fstat check cannot close) is caught, not fatal. */
static void test_sigbus_guard(void)
{
    char d[64], path[128];
    long size = mk_full_store(d, 3000);
    CU_ASSERT_FATAL(size > 0);
    data_path(d, path, sizeof(path));
    pid_t pid = fork();
    if (pid == 0) {
        struct kr_store *s = open_store(d, NULL);
        if (!s)
            _exit(2);
        volatile const uint8_t *m = store_guard_map(s); /* NULL: the guard is off */
        if (!m || truncate(path, 8192) != 0)
            _exit(3);
        uint8_t x = m[size - 100]; /* beyond the new end: SIGBUS */
        if (x != 0 || !store_guard_tripped(s) || !kr_store_damaged(s))
            _exit(4);
        struct kr_pin p, q;
        mk_pin(1, 5001, &p);
        if (kr_store_pin_get(s, p.cmid, p.app_id, &q) != KR_EIO)
            _exit(5);
        kr_store_close(s);
        /* a SIGBUS elsewhere still kills */
        signal(SIGALRM, SIG_DFL);
        raise(SIGBUS);
        _exit(6);
    }
    int st = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    /* killed by the last SIGBUS (or, under ASan, by its report: exit 1 or
     * SIGABRT, depending on ASAN_OPTIONS) */
    bool died = WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CU_ASSERT(died);
    if (!died)
        fprintf(stderr, "sigbus child: status 0x%x\n", st);
    rm_rf(d);
}

static void test_open_errors(void)
{
    struct kr_store *s = NULL;
    const char *why = NULL;
    CU_ASSERT_EQUAL(kr_store_open("", NULL, &s, &why), KR_EINVAL);
    CU_ASSERT_EQUAL(kr_store_open("/proc/kr-no-such/dir", NULL, &s, &why), KR_EIO);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(why);
    CU_ASSERT_EQUAL(kr_store_close(NULL), 0);
}

KR_SUITE(store)
{
    CU_pSuite s = CU_add_suite("store", NULL, NULL);
    CU_add_test(s, "pin record round trip and prefixes", test_record_roundtrip);
    CU_add_test(s, "pin record documented example, unknown TLVs", test_record_example);
    CU_add_test(s, "pin record rejects", test_record_reject);
    CU_add_test(s, "workstation names", test_note_name);
    CU_add_test(s, "write queue against a model", test_batch_model);
    CU_add_test(s, "batch recycles value buffers", test_batch_recycles);
    CU_add_test(s, "put/get through the queue and after flush", test_put_get_flush);
    CU_add_test(s, "coalescing and delete", test_coalesce_delete);
    CU_add_test(s, "persistence across reopen", test_persist);
    CU_add_test(s, "SIGKILL keeps flushed batches", test_crash);
    CU_add_test(s, "map full degrades, bounded, recovers", test_map_full);
    CU_add_test(s, "degraded flag clears on a good commit", test_degraded_clears);
    CU_add_test(s, "disk full (file size limit)", test_disk_full);
    CU_add_test(s, "expiry in bounded steps", test_expire);
    CU_add_test(s, "iteration merges the queue", test_iter);
    CU_add_test(s, "hosts and kv", test_hosts_kv);
    CU_add_test(s, "background flusher with a concurrent reader", test_background_flush);
    CU_add_test(s, "open errors", test_open_errors);
    CU_add_test(s, "damaged data.mdb: truncated, empty", test_damaged_open);
    CU_add_test(s, "damaged meta pages", test_damaged_meta);
    CU_add_test(s, "data.mdb truncated under an open store", test_truncated_while_open);
    CU_add_test(s, "SIGBUS in the map is caught", test_sigbus_guard);
}
