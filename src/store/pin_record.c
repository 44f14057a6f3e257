/*
 * pin_record.c - the on-disk value of a pin (LMDB "pins" DBI), and the
 * workstation-name bookkeeping that goes with it.
 *
 * Key: the pair, 16 raw CMID bytes then 16 application id bytes (format 1
 * stores keyed by the CMID alone; see migrate.c).
 * Value: a versioned TLV record, all integers little-endian:
 *
 *   u8  format version (2; 1 is still read)
 *   TLV*                 type u8; if type & 0x80 a u16 length, else a u8
 *                        length; then `length` value bytes
 *   END                  type 0, length 0: must be the LAST bytes
 *
 * Types (fixed lengths unless noted; a field equal to zero is omitted and
 * decodes as zero, to keep the typical record ~120 bytes):
 *
 *   1 HOST        1..63   backend host name (required, no NUL)
 *   2 FIRST_SEEN  8       i64
 *   3 LAST_SEEN   8       i64
 *   4 APP_ID      16
 *   5 KMS_ID      16
 *   6 WORKSTATION 0..192  omitted when equal to names[0] (see below)
 *   7 NAME        8..200  i64 last_seen, then 0..192 name bytes; repeated,
 *                         at most 4, in list order (most recent first)
 *   8 VM          1
 *   9 LICENSE     1
 *  10 VER_MAJOR   2
 *  11 HRESULT     4
 *  12 COUNT       4
 *  13 N_POLICY    4
 *  14 SKEW        4       i32
 *  15 PREV_CMID   16
 *  16 ACTIVATIONS 4
 *  17 SKU_ID      16      (version 2)
 *
 * Versions: 1 was written while a pin was per CMID (its APP_ID was the
 * application of the latest request); 2 is per pair, APP_ID equals the
 * key's, and adds SKU_ID. The TLV layout is the same, so one decoder reads
 * both; the version byte is what tells an old build "not yours".
 *
 * WORKSTATION rule: the encoder omits it when n_names > 0 and it equals
 * names[0].name (the usual case), and otherwise writes it even when empty;
 * an absent WORKSTATION decodes as names[0].name (or "" with no names).
 *
 * Forward compatibility: unknown types (either length form) are skipped, so
 * a newer kmsrelay may add fields; a new incompatible layout bumps the
 * version byte, which this build rejects (KR_EUNSUP). Rejected as KR_EMALF:
 * a record that does not end exactly with END (truncated, or trailing bytes
 * after END), a known type with a bad length or a NUL inside a string, a
 * repeated known type (other than NAME), a 5th NAME, no HOST. Because END is
 * mandatory, every strict prefix of a valid record is malformed.
 *
 * Example, host "kms-a", first/last seen 1700000000 (0x6553F100), VM,
 * one name "PC1" seen at 1700000000:
 *
 *   02                                   version 2
 *   01 05 6b 6d 73 2d 61                 HOST "kms-a"
 *   02 08 00 f1 53 65 00 00 00 00        FIRST_SEEN
 *   03 08 00 f1 53 65 00 00 00 00        LAST_SEEN
 *   07 0b 00 f1 53 65 00 00 00 00 50 43 31   NAME (1700000000, "PC1")
 *   08 01 01                             VM = 1
 *   00 00                                END
 *
 * (WORKSTATION "PC1" is implied by names[0]; app/kms ids are zero here.)
 */
#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/store.h"
#include "store/store-internal.h"

enum {
    T_END = 0,
    T_HOST = 1,
    T_FIRST_SEEN = 2,
    T_LAST_SEEN = 3,
    T_APP_ID = 4,
    T_KMS_ID = 5,
    T_WORKSTATION = 6,
    T_NAME = 7,
    T_VM = 8,
    T_LICENSE = 9,
    T_VER_MAJOR = 10,
    T_HRESULT = 11,
    T_COUNT = 12,
    T_N_POLICY = 13,
    T_SKEW = 14,
    T_PREV_CMID = 15,
    T_ACTIVATIONS = 16,
    T_SKU_ID = 17,
    T_KNOWN_MAX = 17,
};

#define WS_LEN_MAX (KR_PIN_WS_MAX - 1)

static bool is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Length of a string inside a fixed buffer, or -1 when it has no NUL. */
static long bounded_len(const char *s, size_t cap)
{
    const char *nul = memchr(s, 0, cap);
    return nul ? nul - s : -1;
}

static void tlv(struct kr_wr *w, uint8_t type, const void *v, size_t len)
{
    kr_wr_u8(w, type);
    kr_wr_u8(w, (uint8_t)len);
    kr_wr_bytes(w, v, len);
}

static void tlv_u64(struct kr_wr *w, uint8_t type, uint64_t v)
{
    if (!v)
        return;
    kr_wr_u8(w, type);
    kr_wr_u8(w, 8);
    kr_wr_u64(w, v);
}

static void tlv_u32(struct kr_wr *w, uint8_t type, uint32_t v)
{
    if (!v)
        return;
    kr_wr_u8(w, type);
    kr_wr_u8(w, 4);
    kr_wr_u32(w, v);
}

static void tlv_id(struct kr_wr *w, uint8_t type, const uint8_t id[16])
{
    if (!is_zero(id, 16))
        tlv(w, type, id, 16);
}

int kr_pin_encode(const struct kr_pin *p, uint8_t *out, size_t cap, size_t *outlen)
{
    long hl = bounded_len(p->host, sizeof(p->host));
    long wl = bounded_len(p->workstation, sizeof(p->workstation));
    if (hl <= 0 || wl < 0 || p->n_names > KR_PIN_NAMES)
        return KR_EINVAL;
    long nl[KR_PIN_NAMES];
    for (unsigned i = 0; i < p->n_names; i++)
        if ((nl[i] = bounded_len(p->names[i].name, sizeof(p->names[i].name))) < 0)
            return KR_EINVAL;

    struct kr_wr w = kr_wr_init(out, cap);
    kr_wr_u8(&w, KR_PIN_FORMAT);
    tlv(&w, T_HOST, p->host, (size_t)hl);
    tlv_u64(&w, T_FIRST_SEEN, (uint64_t)p->first_seen);
    tlv_u64(&w, T_LAST_SEEN, (uint64_t)p->last_seen);
    tlv_id(&w, T_APP_ID, p->app_id);
    tlv_id(&w, T_KMS_ID, p->kms_id);
    if (p->n_names == 0 ? wl > 0 : strcmp(p->workstation, p->names[0].name) != 0)
        tlv(&w, T_WORKSTATION, p->workstation, (size_t)wl);
    for (unsigned i = 0; i < p->n_names; i++) {
        kr_wr_u8(&w, T_NAME);
        kr_wr_u8(&w, (uint8_t)(8 + nl[i]));
        kr_wr_u64(&w, (uint64_t)p->names[i].last_seen);
        kr_wr_bytes(&w, p->names[i].name, (size_t)nl[i]);
    }
    if (p->is_vm)
        tlv(&w, T_VM, &p->is_vm, 1);
    if (p->license_status)
        tlv(&w, T_LICENSE, &p->license_status, 1);
    if (p->ver_major) {
        kr_wr_u8(&w, T_VER_MAJOR);
        kr_wr_u8(&w, 2);
        kr_wr_u16(&w, p->ver_major);
    }
    tlv_u32(&w, T_HRESULT, p->last_hresult);
    tlv_u32(&w, T_COUNT, p->last_count);
    tlv_u32(&w, T_N_POLICY, p->n_policy);
    tlv_u32(&w, T_SKEW, (uint32_t)p->skew_s);
    tlv_id(&w, T_PREV_CMID, p->prev_cmid);
    tlv_u32(&w, T_ACTIVATIONS, p->activations);
    tlv_id(&w, T_SKU_ID, p->sku_id);
    kr_wr_u8(&w, T_END);
    kr_wr_u8(&w, 0);
    if (w.err)
        return KR_ENOSPC;
    *outlen = w.off;
    return 0;
}

/* Copies a string value into dst[cap] (NUL-terminated); rejects NULs. */
static int get_str(const uint8_t *v, size_t len, char *dst, size_t cap, const char **why)
{
    if (len >= cap)
        return kr_fail(why, KR_EMALF, "pin record: string too long");
    if (memchr(v, 0, len))
        return kr_fail(why, KR_EMALF, "pin record: NUL inside a string");
    memcpy(dst, v, len);
    dst[len] = 0;
    return 0;
}

/* Fixed length of a known type, or -1 when variable. */
static int fixed_len(unsigned type)
{
    switch (type) {
    case T_FIRST_SEEN:
    case T_LAST_SEEN:
        return 8;
    case T_APP_ID:
    case T_KMS_ID:
    case T_PREV_CMID:
    case T_SKU_ID:
        return 16;
    case T_VM:
    case T_LICENSE:
        return 1;
    case T_VER_MAJOR:
        return 2;
    case T_HRESULT:
    case T_COUNT:
    case T_N_POLICY:
    case T_SKEW:
    case T_ACTIVATIONS:
        return 4;
    default:
        return -1;
    }
}

static int decode_field(unsigned type, const uint8_t *v, size_t len, struct kr_pin *p,
                        const char **why)
{
    int fl = fixed_len(type);
    if (fl >= 0 && len != (size_t)fl)
        return kr_fail(why, KR_EMALF, "pin record: bad field length");
    switch (type) {
    case T_HOST:
        if (len == 0)
            return kr_fail(why, KR_EMALF, "pin record: empty host");
        return get_str(v, len, p->host, sizeof(p->host), why);
    case T_FIRST_SEEN:
        p->first_seen = (int64_t)kr_le64(v);
        break;
    case T_LAST_SEEN:
        p->last_seen = (int64_t)kr_le64(v);
        break;
    case T_APP_ID:
        memcpy(p->app_id, v, 16);
        break;
    case T_KMS_ID:
        memcpy(p->kms_id, v, 16);
        break;
    case T_PREV_CMID:
        memcpy(p->prev_cmid, v, 16);
        break;
    case T_SKU_ID:
        memcpy(p->sku_id, v, 16);
        break;
    case T_WORKSTATION:
        return get_str(v, len, p->workstation, sizeof(p->workstation), why);
    case T_NAME: {
        if (p->n_names == KR_PIN_NAMES)
            return kr_fail(why, KR_EMALF, "pin record: more than 4 names");
        if (len < 8)
            return kr_fail(why, KR_EMALF, "pin record: bad field length");
        struct kr_pin_name *n = &p->names[p->n_names++];
        n->last_seen = (int64_t)kr_le64(v);
        return get_str(v + 8, len - 8, n->name, sizeof(n->name), why);
    }
    case T_VM:
        p->is_vm = v[0];
        break;
    case T_LICENSE:
        p->license_status = v[0];
        break;
    case T_VER_MAJOR:
        p->ver_major = kr_le16(v);
        break;
    case T_HRESULT:
        p->last_hresult = kr_le32(v);
        break;
    case T_COUNT:
        p->last_count = kr_le32(v);
        break;
    case T_N_POLICY:
        p->n_policy = kr_le32(v);
        break;
    case T_SKEW:
        p->skew_s = (int32_t)kr_le32(v);
        break;
    case T_ACTIVATIONS:
        p->activations = kr_le32(v);
        break;
    default:
        break; /* unknown: skipped (forward compatible) */
    }
    return 0;
}

int kr_pin_decode(const uint8_t *buf, size_t len, struct kr_pin *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    struct kr_rd r = kr_rd_init(buf, len);
    if (len == 0)
        return kr_fail(why, KR_EMALF, "pin record: empty");
    uint8_t ver = kr_rd_u8(&r);
    if (ver < KR_PIN_FORMAT_MIN || ver > KR_PIN_FORMAT)
        return kr_fail(why, KR_EUNSUP, "pin record: unknown format version");
    uint32_t seen = 0; /* bit per known type, to reject repeats */
    bool have_ws = false, ended = false;
    int rc = 0;
    while (kr_rd_left(&r) > 0) {
        if (ended) {
            rc = kr_fail(why, KR_EMALF, "pin record: bytes after END");
            goto fail;
        }
        unsigned type = kr_rd_u8(&r);
        size_t flen = (type & 0x80) ? kr_rd_u16(&r) : kr_rd_u8(&r);
        const uint8_t *v = kr_rd_take(&r, flen);
        if (r.err) {
            rc = kr_fail(why, KR_EMALF, "pin record: truncated field");
            goto fail;
        }
        if (type == T_END) {
            if (flen != 0) {
                rc = kr_fail(why, KR_EMALF, "pin record: END with a length");
                goto fail;
            }
            ended = true;
            continue;
        }
        if (type <= T_KNOWN_MAX && type != T_NAME) {
            if (seen & (1u << type)) {
                rc = kr_fail(why, KR_EMALF, "pin record: repeated field");
                goto fail;
            }
            seen |= 1u << type;
        }
        if (type == T_WORKSTATION)
            have_ws = true;
        if ((rc = decode_field(type, v, flen, out, why)) != 0)
            goto fail;
    }
    if (!ended) {
        rc = kr_fail(why, KR_EMALF, "pin record: no END (truncated)");
        goto fail;
    }
    if (!(seen & (1u << T_HOST))) {
        rc = kr_fail(why, KR_EMALF, "pin record: no host");
        goto fail;
    }
    if (!have_ws && out->n_names > 0)
        memcpy(out->workstation, out->names[0].name, sizeof(out->workstation));
    return 0;
fail:
    memset(out, 0, sizeof(*out));
    return rc;
}

int store_pin_rec_last_seen(const uint8_t *buf, size_t len, int64_t *last_seen)
{
    struct kr_pin p;
    int rc = kr_pin_decode(buf, len, &p, NULL);
    if (rc == 0)
        *last_seen = p.last_seen;
    return rc;
}

/* Length of a DNS name without its one trailing dot. */
static size_t dns_len(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '.' ? n - 1 : n;
}

bool kr_pin_name_eq(const char *a, const char *b)
{
    size_t n = dns_len(a);
    if (n != dns_len(b))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        /* ASCII only, like DNS: a locale must not fold UTF-8 bytes */
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

bool kr_pin_note_name(struct kr_pin *pin, const char *name, int64_t now)
{
    size_t len = strnlen(name, WS_LEN_MAX);
    memcpy(pin->workstation, name, len);
    pin->workstation[len] = 0;
    if (len == 0)
        return false;
    unsigned n = pin->n_names > KR_PIN_NAMES ? KR_PIN_NAMES : pin->n_names;
    /* `at` is the slot that disappears when names[0..at-1] shift down one. */
    unsigned at = n;
    for (unsigned i = 0; i < n; i++)
        if (kr_pin_name_eq(pin->names[i].name, pin->workstation))
            at = i;
    bool fresh = at == n;
    if (fresh && n < KR_PIN_NAMES) {
        n++; /* a free slot at the end */
    } else if (fresh) {
        at = 0; /* full: evict the least recently seen name */
        for (unsigned i = 1; i < n; i++)
            if (pin->names[i].last_seen < pin->names[at].last_seen)
                at = i;
    }
    memmove(&pin->names[1], &pin->names[0], at * sizeof(pin->names[0]));
    memset(&pin->names[0], 0, sizeof(pin->names[0]));
    memcpy(pin->names[0].name, pin->workstation, len);
    pin->names[0].last_seen = now;
    pin->n_names = (uint8_t)n;
    return fresh;
}

unsigned kr_pin_names_since(const struct kr_pin *pin, int64_t since)
{
    unsigned c = 0, n = pin->n_names < KR_PIN_NAMES ? pin->n_names : KR_PIN_NAMES;
    for (unsigned i = 0; i < n; i++) {
        if (pin->names[i].last_seen < since)
            continue;
        /* records written before names were compared as DNS names may
         * hold two spellings of one name: count it once */
        bool dup = false;
        for (unsigned j = 0; j < i && !dup; j++)
            dup = pin->names[j].last_seen >= since &&
                  kr_pin_name_eq(pin->names[j].name, pin->names[i].name);
        c += !dup;
    }
    return c;
}
