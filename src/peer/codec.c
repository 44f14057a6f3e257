/*
 * codec.c - frames of the peer protocol (kmsrelay/peerproto.h): decode,
 * encode, the last-writer-wins order and the hybrid logical clock. Pure.
 */
#include <stdbool.h>
#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"
#include "kmsrelay/peerproto.h"

#define HDR 6 /* u32 length, u8 version, u8 type */

static int fail(const char **why, int rc, const char *text)
{
    if (why)
        *why = text;
    return rc;
}

/* A name: u8 length 1..63, bytes without NUL. */
static int rd_name(struct kr_rd *r, char out[KR_PEER_NAME_MAX], const char **why)
{
    uint8_t n = kr_rd_u8(r);
    const uint8_t *p = kr_rd_take(r, n);
    if (!p)
        return fail(why, KR_EMALF, "name runs past the frame");
    if (n == 0 || n >= KR_PEER_NAME_MAX || memchr(p, 0, n))
        return fail(why, KR_EMALF, "bad name length or a NUL in a name");
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static int dec_hello(struct kr_rd *r, struct kr_peer_frame *f, const char **why)
{
    int rc = rd_name(r, f->name, why);
    if (rc)
        return rc;
    f->inc = kr_rd_u64(r);
    f->n_marks = kr_rd_u8(r);
    if (r->err)
        return fail(why, KR_EMALF, "HELLO truncated");
    if (f->n_marks > KR_PEER_MAX_ORIGINS)
        return fail(why, KR_EMALF, "HELLO lists too many origins");
    for (unsigned i = 0; i < f->n_marks; i++) {
        if ((rc = rd_name(r, f->marks[i].origin, why)) != 0)
            return rc;
        f->marks[i].inc = kr_rd_u64(r);
        f->marks[i].seq = kr_rd_u64(r);
    }
    return r->err ? fail(why, KR_EMALF, "HELLO truncated") : 0;
}

static int check_change(const struct kr_peer_change *c, const char **why)
{
    uint8_t admin;
    uint32_t w;
    switch (c->kind) {
    case KR_PEER_PIN_PUT:
        if (c->key_len != 32 || c->val_len == 0)
            return fail(why, KR_EMALF, "PIN_PUT needs a 32-byte key and a record");
        return 0;
    case KR_PEER_PIN_DEL:
        if (c->key_len != 32 || c->val_len != 0)
            return fail(why, KR_EMALF, "PIN_DEL needs a 32-byte key and no value");
        return 0;
    case KR_PEER_HOST:
        if (c->key_len == 0 || c->key_len >= KR_PEER_NAME_MAX || memchr(c->key, 0, c->key_len))
            return fail(why, KR_EMALF, "HOST needs a host name of 1..63 bytes");
        if (kr_peer_host_decode(c->val, c->val_len, &admin, &w) != 0)
            return fail(why, KR_EMALF, "HOST value: bad admin state or weight");
        return 0;
    case KR_PEER_COUNT:
        if (c->key_len <= 16 || c->key_len >= 16 + KR_PEER_NAME_MAX ||
            memchr(c->key + 16, 0, c->key_len - 16u))
            return fail(why, KR_EMALF, "COUNT needs an application id and a host name");
        if (c->val_len != 8)
            return fail(why, KR_EMALF, "COUNT value is 8 bytes");
        return 0;
    default:
        return fail(why, KR_EUNSUP, "unknown change kind");
    }
}

static int dec_change(struct kr_rd *r, struct kr_peer_frame *f, const char **why)
{
    struct kr_peer_change *c = &f->ch;
    int rc = rd_name(r, c->origin, why);
    if (rc)
        return rc;
    c->seq = kr_rd_u64(r);
    c->hlc = kr_rd_u64(r);
    c->kind = kr_rd_u8(r);
    c->key_len = kr_rd_u16(r);
    c->key = kr_rd_take(r, c->key_len);
    c->val_len = kr_rd_u16(r);
    c->val = kr_rd_take(r, c->val_len);
    if (r->err)
        return fail(why, KR_EMALF, "CHANGE truncated");
    return check_change(c, why);
}

int kr_peer_decode(const uint8_t *buf, size_t len, struct kr_peer_frame *out, size_t *used,
                   const char **why)
{
    memset(out, 0, sizeof(*out));
    if (len < 4)
        return KR_EMORE;
    uint32_t flen = kr_le32(buf);
    if (flen < 2)
        return fail(why, KR_EMALF, "frame shorter than its header");
    if (flen > KR_PEER_FRAME_MAX - 4)
        return fail(why, KR_ETOOBIG, "frame longer than 4096 bytes");
    if (len < 4 + (size_t)flen)
        return KR_EMORE;
    if (buf[4] != KR_PEER_VERSION)
        return fail(why, KR_EUNSUP, "unknown protocol version");
    out->type = buf[5];
    struct kr_rd r = kr_rd_init(buf + HDR, flen - 2);
    int rc;
    switch (out->type) {
    case KR_PEER_HELLO:
        rc = dec_hello(&r, out, why);
        break;
    case KR_PEER_CHANGE:
        rc = dec_change(&r, out, why);
        break;
    case KR_PEER_ACK:
        out->inc = kr_rd_u64(&r);
        out->seq = kr_rd_u64(&r);
        rc = r.err ? fail(why, KR_EMALF, "ACK truncated") : 0;
        break;
    case KR_PEER_RESYNC:
        out->inc = kr_rd_u64(&r);
        out->seq = kr_rd_u64(&r);
        out->phase = kr_rd_u8(&r);
        rc = r.err ? fail(why, KR_EMALF, "RESYNC truncated") : 0;
        if (rc == 0 && out->phase > 1)
            rc = fail(why, KR_EMALF, "RESYNC phase is not 0 or 1");
        break;
    default:
        return fail(why, KR_EUNSUP, "unknown frame type");
    }
    if (rc == 0 && kr_rd_left(&r) != 0)
        rc = fail(why, KR_EMALF, "trailing bytes in a frame");
    if (rc == 0)
        *used = 4 + (size_t)flen;
    return rc;
}

/* ---- encoding ------------------------------------------------------------ */

static bool wr_name(struct kr_wr *w, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= KR_PEER_NAME_MAX)
        return false;
    kr_wr_u8(w, (uint8_t)n);
    kr_wr_bytes(w, name, n);
    return true;
}

static struct kr_wr begin(uint8_t *out, size_t cap, uint8_t type)
{
    struct kr_wr w = kr_wr_init(out, cap);
    kr_wr_u32(&w, 0); /* patched by finish() */
    kr_wr_u8(&w, KR_PEER_VERSION);
    kr_wr_u8(&w, type);
    return w;
}

static int finish(struct kr_wr *w, size_t *outlen)
{
    if (w->err)
        return KR_ENOSPC;
    if (w->off > KR_PEER_FRAME_MAX)
        return KR_EINVAL;
    kr_put_le32(w->p, (uint32_t)(w->off - 4));
    *outlen = w->off;
    return 0;
}

int kr_peer_enc_hello(const char *name, uint64_t inc, const struct kr_peer_mark *marks, size_t n,
                      uint8_t *out, size_t cap, size_t *outlen)
{
    if (n > KR_PEER_MAX_ORIGINS)
        return KR_EINVAL;
    struct kr_wr w = begin(out, cap, KR_PEER_HELLO);
    if (!wr_name(&w, name))
        return KR_EINVAL;
    kr_wr_u64(&w, inc);
    kr_wr_u8(&w, (uint8_t)n);
    for (size_t i = 0; i < n; i++) {
        if (!wr_name(&w, marks[i].origin))
            return KR_EINVAL;
        kr_wr_u64(&w, marks[i].inc);
        kr_wr_u64(&w, marks[i].seq);
    }
    return finish(&w, outlen);
}

int kr_peer_enc_change(const struct kr_peer_change *c, uint8_t *out, size_t cap, size_t *outlen)
{
    if (check_change(c, NULL) != 0)
        return KR_EINVAL;
    struct kr_wr w = begin(out, cap, KR_PEER_CHANGE);
    if (!wr_name(&w, c->origin))
        return KR_EINVAL;
    kr_wr_u64(&w, c->seq);
    kr_wr_u64(&w, c->hlc);
    kr_wr_u8(&w, c->kind);
    kr_wr_u16(&w, c->key_len);
    kr_wr_bytes(&w, c->key, c->key_len);
    kr_wr_u16(&w, c->val_len);
    if (c->val_len)
        kr_wr_bytes(&w, c->val, c->val_len);
    return finish(&w, outlen);
}

int kr_peer_enc_ack(uint64_t inc, uint64_t seq, uint8_t *out, size_t cap, size_t *outlen)
{
    struct kr_wr w = begin(out, cap, KR_PEER_ACK);
    kr_wr_u64(&w, inc);
    kr_wr_u64(&w, seq);
    return finish(&w, outlen);
}

int kr_peer_enc_resync(uint64_t inc, uint64_t seq, uint8_t phase, uint8_t *out, size_t cap,
                       size_t *outlen)
{
    if (phase > 1)
        return KR_EINVAL;
    struct kr_wr w = begin(out, cap, KR_PEER_RESYNC);
    kr_wr_u64(&w, inc);
    kr_wr_u64(&w, seq);
    kr_wr_u8(&w, phase);
    return finish(&w, outlen);
}

int kr_peer_host_decode(const uint8_t *val, size_t len, uint8_t *admin, uint32_t *weight)
{
    if (len != 5 || val[0] > 3)
        return KR_EMALF;
    uint32_t w = kr_le32(val + 1);
    if (w < 1 || w > 10000)
        return KR_EMALF;
    *admin = val[0];
    *weight = w;
    return 0;
}

void kr_peer_host_encode(uint8_t admin, uint32_t weight, uint8_t out[5])
{
    out[0] = admin;
    kr_put_le32(out + 1, weight);
}

int kr_peer_lww_cmp(uint64_t hlc_a, const char *origin_a, uint64_t hlc_b, const char *origin_b)
{
    if (hlc_a != hlc_b)
        return hlc_a > hlc_b ? 1 : -1;
    int c = strcmp(origin_a, origin_b);
    return c > 0 ? 1 : c < 0 ? -1 : 0;
}

uint64_t kr_peer_hlc_next(uint64_t last, uint64_t now_ms)
{
    uint64_t t = now_ms << 16;
    return t > last ? t : last + 1;
}
