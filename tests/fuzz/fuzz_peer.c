/*
 * fuzz_peer.c - the peer replication protocol decoder (src/peer/codec.c).
 * Properties: a frame that decodes re-encodes to exactly the bytes it came
 * from (so nothing is silently dropped or defaulted); "need more" is only
 * answered for a strict prefix of a frame; every error has a reason; the
 * input is walked frame by frame as a link reads it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/err.h"
#include "kmsrelay/peerproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void reencode(const struct kr_peer_frame *f, const uint8_t *src, size_t used)
{
    uint8_t out[KR_PEER_FRAME_MAX];
    size_t len = 0;
    int rc;
    switch (f->type) {
    case KR_PEER_HELLO:
        rc = kr_peer_enc_hello(f->name, f->inc, f->marks, f->n_marks, out, sizeof(out), &len);
        break;
    case KR_PEER_CHANGE:
        rc = kr_peer_enc_change(&f->ch, out, sizeof(out), &len);
        break;
    case KR_PEER_ACK:
        rc = kr_peer_enc_ack(f->inc, f->seq, out, sizeof(out), &len);
        break;
    case KR_PEER_RESYNC:
        rc = kr_peer_enc_resync(f->inc, f->seq, f->phase, out, sizeof(out), &len);
        break;
    default:
        abort(); /* the decoder accepted an unknown type */
    }
    if (rc != 0 || len != used || memcmp(out, src, used) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    uint8_t *buf = malloc(n ? n : 1); /* exact size: ASan sees any overread */
    if (!buf)
        return 0;
    if (n)
        memcpy(buf, d, n);
    size_t off = 0;
    while (off < n) {
        struct kr_peer_frame f;
        size_t used = 0;
        const char *why = NULL;
        int rc = kr_peer_decode(buf + off, n - off, &f, &used, &why);
        if (rc == KR_EMORE)
            break;
        if (rc != 0) {
            if (!why || !why[0])
                abort();
            break;
        }
        if (used < 6 || used > n - off)
            abort();
        reencode(&f, buf + off, used);
        off += used;
    }
    free(buf);
    return 0;
}
