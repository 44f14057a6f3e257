/*
 * bytes.h - little-endian cursors over borrowed buffers, and hex.
 *
 * Every wire format in KMS is little-endian. The cursors make bounds checks
 * impossible to forget: an overrun latches an error (KR_EMORE when reading,
 * KR_ENOSPC when writing), later operations become no-ops that read zeros,
 * and the caller checks `err` once at the end (Knot's wire_ctx idea).
 *
 * Ownership: cursors borrow their buffer; nothing here allocates.
 */
#ifndef KMSRELAY_BYTES_H
#define KMSRELAY_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kmsrelay/err.h"

static inline uint16_t kr_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t kr_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t kr_le64(const uint8_t *p)
{
    return (uint64_t)kr_le32(p) | ((uint64_t)kr_le32(p + 4) << 32);
}
static inline void kr_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void kr_put_le32(uint8_t *p, uint32_t v)
{
    kr_put_le16(p, (uint16_t)v);
    kr_put_le16(p + 2, (uint16_t)(v >> 16));
}
static inline void kr_put_le64(uint8_t *p, uint64_t v)
{
    kr_put_le32(p, (uint32_t)v);
    kr_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Read cursor. */
struct kr_rd {
    const uint8_t *p;
    size_t len;
    size_t off;
    int err; /* 0, or KR_EMORE once a read ran past len */
};

static inline struct kr_rd kr_rd_init(const uint8_t *p, size_t len)
{
    struct kr_rd r = {p, len, 0, 0};
    return r;
}
static inline size_t kr_rd_left(const struct kr_rd *r)
{
    return r->err ? 0 : r->len - r->off;
}
/* Returns a pointer to the next n bytes and advances, or NULL on overrun. */
static inline const uint8_t *kr_rd_take(struct kr_rd *r, size_t n)
{
    if (r->err || n > r->len - r->off) {
        r->err = KR_EMORE;
        return NULL;
    }
    const uint8_t *q = r->p + r->off;
    r->off += n;
    return q;
}
static inline uint8_t kr_rd_u8(struct kr_rd *r)
{
    const uint8_t *q = kr_rd_take(r, 1);
    return q ? q[0] : 0;
}
static inline uint16_t kr_rd_u16(struct kr_rd *r)
{
    const uint8_t *q = kr_rd_take(r, 2);
    return q ? kr_le16(q) : 0;
}
static inline uint32_t kr_rd_u32(struct kr_rd *r)
{
    const uint8_t *q = kr_rd_take(r, 4);
    return q ? kr_le32(q) : 0;
}
static inline uint64_t kr_rd_u64(struct kr_rd *r)
{
    const uint8_t *q = kr_rd_take(r, 8);
    return q ? kr_le64(q) : 0;
}
static inline void kr_rd_copy(struct kr_rd *r, void *dst, size_t n)
{
    const uint8_t *q = kr_rd_take(r, n);
    if (q)
        memcpy(dst, q, n);
    else
        memset(dst, 0, n);
}

/* Write cursor. */
struct kr_wr {
    uint8_t *p;
    size_t cap;
    size_t off;
    int err; /* 0, or KR_ENOSPC once a write ran past cap */
};

static inline struct kr_wr kr_wr_init(uint8_t *p, size_t cap)
{
    struct kr_wr w = {p, cap, 0, 0};
    return w;
}
/* Reserves n bytes and returns them, or NULL on overflow. */
static inline uint8_t *kr_wr_take(struct kr_wr *w, size_t n)
{
    if (w->err || n > w->cap - w->off) {
        w->err = KR_ENOSPC;
        return NULL;
    }
    uint8_t *q = w->p + w->off;
    w->off += n;
    return q;
}
static inline void kr_wr_u8(struct kr_wr *w, uint8_t v)
{
    uint8_t *q = kr_wr_take(w, 1);
    if (q)
        q[0] = v;
}
static inline void kr_wr_u16(struct kr_wr *w, uint16_t v)
{
    uint8_t *q = kr_wr_take(w, 2);
    if (q)
        kr_put_le16(q, v);
}
static inline void kr_wr_u32(struct kr_wr *w, uint32_t v)
{
    uint8_t *q = kr_wr_take(w, 4);
    if (q)
        kr_put_le32(q, v);
}
static inline void kr_wr_u64(struct kr_wr *w, uint64_t v)
{
    uint8_t *q = kr_wr_take(w, 8);
    if (q)
        kr_put_le64(q, v);
}
static inline void kr_wr_bytes(struct kr_wr *w, const void *src, size_t n)
{
    uint8_t *q = kr_wr_take(w, n);
    if (q && n)
        memcpy(q, src, n);
}
static inline void kr_wr_zero(struct kr_wr *w, size_t n)
{
    uint8_t *q = kr_wr_take(w, n);
    if (q)
        memset(q, 0, n);
}

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void kr_hex_encode(const uint8_t *in, size_t n, char *out);

/* Decodes hex (either case; spaces, tabs and ':' between byte pairs are
 * skipped) into out. Returns the number of bytes written (>= 0), KR_EMALF on
 * a bad digit or an odd count, KR_ENOSPC when out is too small. */
long kr_hex_decode(const char *in, uint8_t *out, size_t cap);

/* The value of one hex digit (either case), or -1. */
int kr_hex_digit(char c);

#endif
