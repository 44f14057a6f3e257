/*
 * migrate.c - the store's format check on open, and the one migration so
 * far: format 1 (kmsrelay up to per-application pins) to format 2.
 *
 * Format 1 kept one pin per CMID in the "pins" DBI (key: 16 CMID bytes),
 * each request overwriting the pin's application. Format 2 keeps one pin
 * per pair (CMID, application id) in the "pairs" DBI (key: CMID then app
 * id, 32 bytes). Migrating copies every format 1 value UNCHANGED under the
 * key (CMID, the application it last had), then drops "pins": no pin is
 * lost, its host and every field are kept, so every client is routed as
 * before. The values stay pin records of version 1, which the decoder
 * still reads; they become version 2 when their client next activates.
 *
 * It runs inside the open path's write transaction, so it is atomic: a
 * crash in the middle leaves the format 1 store as it was and the next
 * open migrates again. Cost: one pass and one commit, once; the dirty pages
 * of one LMDB txn bound it to a few million pins (far above a KMS estate).
 *
 * Downgrade: older builds check meta "format" before they touch any DBI and
 * refuse anything but 1, so a format 2 store is refused, never misread.
 * This build refuses what it does not know in the same way.
 */
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/store.h"
#include "store/store-internal.h"

#define FORMAT1_DBI "pins"

static int put_format(struct kr_store *s, MDB_txn *txn, uint32_t fmt)
{
    uint8_t b[4] = {(uint8_t)fmt, (uint8_t)(fmt >> 8), (uint8_t)(fmt >> 16), (uint8_t)(fmt >> 24)};
    MDB_val k = store_val("format", 6), v = store_val(b, 4);
    return mdb_put(txn, s->dbi_meta, &k, &v, 0);
}

/* Re-keys one format 1 pin. A value that does not decode keeps its bytes
 * under the zero application, like any bad record (counted, re-pinned by
 * the next activation): the migration never drops anything. */
static int move_one(struct kr_store *s, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    static const uint8_t zero[16];
    struct kr_pin p;
    uint8_t key[KR_PIN_KEY_LEN];
    bool ok = kr_pin_decode(v->mv_data, v->mv_size, &p, NULL) == 0;
    kr_pin_key(k->mv_data, ok ? p.app_id : zero, key);
    MDB_val nk = store_val(key, sizeof(key)), nv = *v;
    return mdb_put(txn, s->dbi_pins, &nk, &nv, 0);
}

static int from_format1(struct kr_store *s, MDB_txn *txn, uint64_t *moved)
{
    MDB_dbi old;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_dbi_open(txn, FORMAT1_DBI, 0, &old);
    if (rc == MDB_NOTFOUND)
        return 0; /* a format 1 store that never had a pin */
    if (rc)
        return rc;
    if ((rc = mdb_cursor_open(txn, old, &cur)) != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 16)
            continue; /* format 1 never wrote such a key */
        if ((rc = move_one(s, txn, &k, &v)) != 0)
            break;
        (*moved)++;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    return mdb_drop(txn, old, 1); /* deletes the DBI and closes its handle */
}

int store_format_upgrade(struct kr_store *s, MDB_txn *txn, uint32_t fmt, const char **why)
{
    uint64_t moved = 0;
    int rc;
    if (fmt == KR_STORE_FORMAT)
        return 0;
    if (fmt > KR_STORE_FORMAT)
        return kr_fail(why, KR_EUNSUP,
                       "store: written by a newer kmsrelay (store format above 2, this build "
                       "reads 1 and 2); refusing to open it rather than misread it: run the "
                       "newer kmsrelay, or move the state directory away to start empty");
    if (fmt != 1)
        return kr_fail(why, KR_EIO, "store: bad meta format record (format 0)");
    if ((rc = from_format1(s, txn, &moved)) != 0 || (rc = put_format(s, txn, KR_STORE_FORMAT)))
        return kr_fail(why, store_err_from_mdb(rc, NULL),
                       rc == MDB_MAP_FULL ? "store: no room to migrate the pins (format 1 to 2): "
                                            "raise the map size"
                                          : "store: cannot migrate the pins (format 1 to 2)");
    s->st.pins_migrated = moved;
    return 0;
}
