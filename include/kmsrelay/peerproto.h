/*
 * peerproto.h - the relay-to-relay replication protocol (issue 15): a pure
 * codec of length-prefixed, versioned frames, no I/O (src/peer/codec.c; the
 * links are src/peer/link.c).
 *
 * Every frame:  u32 LE length of what follows, u8 version (1), u8 type,
 * then the body of the type. All integers little-endian. At most
 * KR_PEER_FRAME_MAX bytes in all.
 *
 *   HELLO   u8 n, n x name; u64 incarnation; u8 m, m x {name; u64 inc;
 *           u64 seq}  -- who I am (name: u8 length, 1..63 bytes) and, per
 *           origin, the last change of it I have applied (high-water mark)
 *   CHANGE  name origin; u64 seq (0 in a resync); u64 hlc; u8 kind;
 *           u16 key length, key; u16 value length, value
 *   ACK     u64 incarnation, u64 seq -- what the receiver applied so far
 *   RESYNC  u64 incarnation, u64 seq, u8 phase (0 begin, 1 end) -- a full
 *           copy of the sender's table follows (begin) / is complete (end);
 *           changes after it continue from seq + 1
 *
 * Kinds of CHANGE: PIN_PUT (key: the 32-byte pin key, value: a stored pin
 * record, src/store/pin_record.c), PIN_DEL (key, no value), HOST (key: host
 * name, value: u8 admin 0..3, u32 weight 1..10000), COUNT (key: 16-byte
 * application id then host name, value: u32 count, u32 N policy -- what the
 * host last reported for that application).
 *
 * Errors: decode returns KR_EMORE while `len` is a valid prefix of a frame
 * (read on), KR_EMALF / KR_ETOOBIG / KR_EUNSUP with *why for anything
 * malformed (the link is then closed). Decoded frames point into the input
 * (borrowed, valid while it is).
 */
#ifndef KMSRELAY_PEERPROTO_H
#define KMSRELAY_PEERPROTO_H

#include <stddef.h>
#include <stdint.h>

#define KR_PEER_VERSION 1
#define KR_PEER_FRAME_MAX 4096 /* a pin record is at most 1200 bytes */
#define KR_PEER_NAME_MAX 64    /* name buffer, NUL included */
#define KR_PEER_MAX_ORIGINS 16 /* entries of a HELLO's vector */

enum kr_peer_type {
    KR_PEER_HELLO = 1,
    KR_PEER_CHANGE = 2,
    KR_PEER_ACK = 3,
    KR_PEER_RESYNC = 4,
};

enum kr_peer_kind {
    KR_PEER_PIN_PUT = 1,
    KR_PEER_PIN_DEL = 2,
    KR_PEER_HOST = 3,
    KR_PEER_COUNT = 4,
};

struct kr_peer_mark {
    char origin[KR_PEER_NAME_MAX];
    uint64_t inc, seq;
};

struct kr_peer_change {
    char origin[KR_PEER_NAME_MAX];
    uint64_t seq, hlc;
    uint8_t kind;
    const uint8_t *key; /* borrowed */
    uint16_t key_len;
    const uint8_t *val; /* borrowed */
    uint16_t val_len;
};

struct kr_peer_frame {
    uint8_t type; /* enum kr_peer_type */
    /* HELLO */
    char name[KR_PEER_NAME_MAX];
    uint64_t inc;
    uint8_t n_marks;
    struct kr_peer_mark marks[KR_PEER_MAX_ORIGINS];
    /* CHANGE */
    struct kr_peer_change ch;
    /* ACK, RESYNC (inc above) */
    uint64_t seq;
    uint8_t phase;
};

/* Decodes the frame at the start of buf; *used gets its size. */
int kr_peer_decode(const uint8_t *buf, size_t len, struct kr_peer_frame *out, size_t *used,
                   const char **why);

/* Encoders: write one whole frame into out (cap bytes), *outlen its size.
 * KR_EINVAL for a bad argument (a name of 0 or 63+ bytes, a change that
 * would not decode), KR_ENOSPC when cap is too small. */
int kr_peer_enc_hello(const char *name, uint64_t inc, const struct kr_peer_mark *marks, size_t n,
                      uint8_t *out, size_t cap, size_t *outlen);
int kr_peer_enc_change(const struct kr_peer_change *c, uint8_t *out, size_t cap, size_t *outlen);
int kr_peer_enc_ack(uint64_t inc, uint64_t seq, uint8_t *out, size_t cap, size_t *outlen);
int kr_peer_enc_resync(uint64_t inc, uint64_t seq, uint8_t phase, uint8_t *out, size_t cap,
                       size_t *outlen);

/* The value of a HOST change. */
int kr_peer_host_decode(const uint8_t *val, size_t len, uint8_t *admin, uint32_t *weight);
void kr_peer_host_encode(uint8_t admin, uint32_t weight, uint8_t out[5]);

/* Last writer wins: >0 when version (hlc_a, origin_a) is newer than
 * (hlc_b, origin_b), <0 older, 0 the same. Ties on time go to the greater
 * origin name (byte order), so every peer picks the same winner. */
int kr_peer_lww_cmp(uint64_t hlc_a, const char *origin_a, uint64_t hlc_b, const char *origin_b);

/* Hybrid logical clock: the next timestamp after `last` at wall time
 * `now_ms` (milliseconds): max(now_ms << 16, last + 1). */
uint64_t kr_peer_hlc_next(uint64_t last, uint64_t now_ms);

#endif
