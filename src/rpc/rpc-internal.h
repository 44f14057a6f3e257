/*
 * rpc-internal.h - helpers shared by the files of src/rpc/ only.
 *
 * Every PDU decoder starts with rpc_pdu_open(): it frames the PDU exactly as
 * a read loop would (so a prefix is KR_EMORE), checks the PTYPE and hands
 * back a read cursor that ends at frag_length, so that a count running past
 * the PDU latches KR_EMORE in the cursor, which the decoders turn into
 * KR_EMALF (the whole PDU is there; it can never grow).
 *
 * Every PDU encoder writes through rpc_pdu_begin()/rpc_pdu_end(), which put
 * the header first and patch frag_length last.
 */
#ifndef KR_RPC_INTERNAL_H
#define KR_RPC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/rpc.h"

/* Smallest frag_length a PTYPE can have (header plus the fixed body), given
 * the PDU flags (a request with an object UUID is 16 bytes longer). 0 for a
 * PTYPE kmsrelay does not know. */
size_t rpc_min_frag(unsigned ptype, unsigned flags);

/* Frames `pdu` and checks that its PTYPE is `pt1` or `pt2`. On success fills
 * `hdr`, sets `*r` to a cursor over the whole PDU (len = frag_length)
 * positioned after the header, and returns 0. */
int rpc_pdu_open(const uint8_t *pdu, size_t len, unsigned pt1, unsigned pt2, struct kr_rpc_hdr *hdr,
                 struct kr_rd *r, const char **why);

/* Turns a latched cursor overrun into KR_EMALF with `msg`, and rejects bytes
 * left after the body when `exact` is set. Returns 0 or KR_EMALF. */
int rpc_body_end(const struct kr_rd *r, int exact, const char *msg, const char **why);

/* Starts an encoder: a write cursor over out/cap with the 16-byte header
 * reserved. */
struct kr_wr rpc_pdu_begin(uint8_t *out, size_t cap, uint8_t ptype, uint8_t flags,
                           uint32_t call_id);

/* Finishes an encoder: checks the cursor, bounds the size by
 * KR_RPC_FRAG_MAX, patches frag_length and sets *outlen. */
int rpc_pdu_end(struct kr_wr *w, size_t *outlen);

/* A syntax is 16 UUID bytes then a u32 version; for an abstract syntax the
 * u16 major and u16 minor read as one LE u32 give major | minor << 16. */
void rpc_syntax_read(struct kr_rd *r, struct kr_rpc_syntax *s);
void rpc_syntax_write(struct kr_wr *w, const struct kr_rpc_syntax *s);

#endif
