/*
 * rpc.h - DCE/RPC connection-oriented PDUs as KMS uses them (MS-RPCE,
 * ncacn_ip_tcp): the common header, bind / alter_context, bind_ack /
 * alter_context_resp, request, response and fault, plus the NDR32 and NDR64
 * stub framing of the one KMS call, RequestActivation (opnum 0).
 *
 * Pure codec: no I/O, no allocation. Field offsets and values are documented
 * in shared/docs/kms-protocol.md section 1.
 *
 * Decoding contract:
 *   - Functions take the bytes received so far. KR_EMORE means the bytes are a
 *     valid prefix and more must be read; KR_EMALF means they can never become
 *     a valid PDU; KR_ETOOBIG means a length is over KR_RPC_FRAG_MAX or another
 *     documented cap; KR_EUNSUP means well formed but outside what KMS uses
 *     (authentication, non-little-endian drep, multi-fragment PDUs).
 *   - `why`, when not NULL, receives a static reason on failure.
 *   - Decoded structs may point into the input (`stub`): such pointers are
 *     borrowed and valid only while the input buffer lives.
 *   - Out-structs are fully written on success and unspecified on failure.
 *
 * Encoding contract: encoders write into a caller buffer of `cap` bytes, set
 * *outlen, and return 0 or KR_ENOSPC / KR_EINVAL. They compute frag_length
 * themselves. Encoding a decoded PDU reproduces its bytes exactly (the pad
 * bytes of bind_ack are kept for that reason).
 */
#ifndef KMSRELAY_RPC_H
#define KMSRELAY_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KR_RPC_HDR_LEN 16
/* Largest PDU we accept. KMS PDUs are under 320 bytes and a 3-item bind is
 * 160; this leaves room for binds with many items while bounding memory. */
#define KR_RPC_FRAG_MAX 2048
/* Most context items (bind) or results (bind_ack) we keep. */
#define KR_RPC_MAX_CTX 16
/* Most transfer syntaxes we keep per context item. */
#define KR_RPC_MAX_TS 4
/* Longest sec_addr port_spec we emit or accept, NUL included. */
#define KR_RPC_SECADDR_MAX 32

enum kr_rpc_ptype {
    KR_PT_REQUEST = 0,
    KR_PT_RESPONSE = 2,
    KR_PT_FAULT = 3,
    KR_PT_BIND = 11,
    KR_PT_BIND_ACK = 12,
    KR_PT_BIND_NAK = 13,
    KR_PT_ALTER = 14,
    KR_PT_ALTER_RESP = 15,
};

enum kr_rpc_pfc {
    KR_PFC_FIRST = 0x01,
    KR_PFC_LAST = 0x02,
    KR_PFC_PENDING_CANCEL = 0x04,
    KR_PFC_CONC_MPX = 0x10,
    KR_PFC_DID_NOT_EXECUTE = 0x20,
    KR_PFC_MAYBE = 0x40,
    KR_PFC_OBJECT_UUID = 0x80,
};

/* Bind result codes (p_result_t.result). */
enum kr_rpc_result_code {
    KR_BIND_ACCEPT = 0,
    KR_BIND_USER_REJECT = 1,
    KR_BIND_PROVIDER_REJECT = 2,
    KR_BIND_NEGOTIATE_ACK = 3, /* BTFN: reason carries the feature bitmask */
};
/* Provider-reject reasons. */
enum kr_rpc_reason {
    KR_REASON_NONE = 0,
    KR_REASON_ABSTRACT_NOT_SUPPORTED = 1,
    KR_REASON_TRANSFER_NOT_SUPPORTED = 2,
    KR_REASON_LOCAL_LIMIT_EXCEEDED = 3, /* the server's context table is full */
};

/* Fault status values (nca_s_*). */
#define KR_NCA_S_UNK_IF 0x1C010003u
#define KR_NCA_S_PROTO_ERROR 0x1C01000Bu
#define KR_NCA_S_OP_RNG_ERROR 0x1C010002u

/* Well-known syntaxes, as 16 wire bytes each (guid.h layout). */
extern const uint8_t kr_rpc_kms_iface[16];  /* 51c82175-844e-4750-b0d8-ec255555bc06 v1.0 */
extern const uint8_t kr_rpc_ndr32_uuid[16]; /* 8a885d04-1ceb-11c9-9fe8-08002b104860 v2 */
extern const uint8_t kr_rpc_ndr64_uuid[16]; /* 71710533-beba-4937-8319-b5dbef9ccc36 v1 */
/* Bind Time Feature Negotiation: only the first 8 bytes identify it; the last
 * 8 are the requested feature bitmask (LE u64). */
extern const uint8_t kr_rpc_btfn_prefix[8]; /* 6cb71c2c-9812-4540 */

#define KR_BTFN_SEC_CTX_MULTIPLEX 0x01
#define KR_BTFN_KEEP_ON_ORPHAN 0x02

/* Transfer syntax kinds that kr_rpc_syntax_kind() recognises. */
enum kr_rpc_tskind {
    KR_TS_OTHER = 0,
    KR_TS_NDR32 = 1,
    KR_TS_NDR64 = 2,
    KR_TS_BTFN = 3,
};

/* Common header. */
struct kr_rpc_hdr {
    uint8_t vers;       /* 5 */
    uint8_t vers_minor; /* 0 */
    uint8_t ptype;      /* enum kr_rpc_ptype */
    uint8_t flags;      /* enum kr_rpc_pfc */
    uint8_t drep[4];    /* 10 00 00 00 */
    uint16_t frag_len;  /* whole PDU, header included */
    uint16_t auth_len;  /* always 0 in KMS */
    uint32_t call_id;
};

/* A UUID plus version: for an abstract syntax `version` is major | minor << 16
 * (wire order: u16 major, u16 minor); for a transfer syntax it is the u32
 * version. */
struct kr_rpc_syntax {
    uint8_t uuid[16];
    uint32_t version;
};

struct kr_rpc_ctx_item {
    uint16_t ctx_id;
    uint8_t n_ts; /* transfer syntaxes on the wire; more than KR_RPC_MAX_TS is KR_ETOOBIG */
    uint8_t reserved;
    struct kr_rpc_syntax abstract;
    struct kr_rpc_syntax ts[KR_RPC_MAX_TS];
};

/* bind (11) and alter_context (14). */
struct kr_rpc_bind {
    struct kr_rpc_hdr hdr;
    uint16_t max_xmit;
    uint16_t max_recv;
    uint32_t assoc_group;
    uint8_t n_ctx;
    uint8_t reserved[3];
    struct kr_rpc_ctx_item ctx[KR_RPC_MAX_CTX];
};

struct kr_rpc_result {
    uint16_t result; /* enum kr_rpc_result_code */
    uint16_t reason; /* enum kr_rpc_reason, or the BTFN bitmask */
    struct kr_rpc_syntax ts;
};

/* bind_ack (12) and alter_context_resp (15). */
struct kr_rpc_bind_ack {
    struct kr_rpc_hdr hdr;
    uint16_t max_xmit;
    uint16_t max_recv;
    uint32_t assoc_group;
    uint16_t sec_addr_len;             /* bytes, NUL included; 0 in alter_context_resp */
    char sec_addr[KR_RPC_SECADDR_MAX]; /* port as decimal text, NUL-terminated */
    uint8_t pad[4];                    /* alignment bytes after sec_addr, kept verbatim */
    uint8_t n_results;
    uint8_t reserved[3];
    struct kr_rpc_result results[KR_RPC_MAX_CTX];
};

/* request (0). */
struct kr_rpc_request {
    struct kr_rpc_hdr hdr;
    uint32_t alloc_hint;
    uint16_t ctx_id;
    uint16_t opnum;
    uint8_t object[16];  /* only when hdr.flags has KR_PFC_OBJECT_UUID */
    const uint8_t *stub; /* borrowed from the input */
    size_t stub_len;
};

/* response (2). */
struct kr_rpc_response {
    struct kr_rpc_hdr hdr;
    uint32_t alloc_hint;
    uint16_t ctx_id;
    uint8_t cancel_count;
    uint8_t reserved;
    const uint8_t *stub; /* borrowed from the input */
    size_t stub_len;
};

/* fault (3). */
struct kr_rpc_fault {
    struct kr_rpc_hdr hdr;
    uint32_t alloc_hint;
    uint16_t ctx_id;
    uint8_t cancel_count;
    uint8_t reserved;
    uint32_t status;     /* KR_NCA_S_* */
    uint32_t reserved2;  /* bytes 28..31, 0 from vlmcsd; kept for exact re-encoding */
    const uint8_t *stub; /* bytes after offset 32 (extended error info), borrowed; NULL/0 if none */
    size_t stub_len;
};

/* Name of a PTYPE ("bind_ack"), or "unknown". */
const char *kr_rpc_ptype_name(unsigned ptype);

/* Classifies a transfer syntax UUID+version. */
enum kr_rpc_tskind kr_rpc_syntax_kind(const struct kr_rpc_syntax *ts);

/*
 * Header and framing. Validates the 16-byte header of `buf`: version 5.0,
 * little-endian ASCII drep, a known PTYPE, FIRST|LAST both set (KMS never
 * fragments), auth_length 0, 16 <= frag_length <= cap (cap 0, or a cap over
 * KR_RPC_FRAG_MAX, means KR_RPC_FRAG_MAX), and frag_length at least the
 * fixed part of the PTYPE's body. Returns the PDU's frag_length (> 0) when
 * all of it is in `buf`, KR_EMORE when the header (fewer than 16 bytes) or
 * the body is incomplete, or an error. This is what a read loop calls on its
 * input buffer. `hdr` (may be NULL) is written whenever the 16 header bytes
 * were valid, so also with KR_EMORE for an incomplete body.
 */
int kr_rpc_frame(const uint8_t *buf, size_t len, size_t cap, struct kr_rpc_hdr *hdr,
                 const char **why);

/* Writes a 16-byte header (drep 10 00 00 00, version 5.0). */
void kr_rpc_hdr_write(uint8_t out[KR_RPC_HDR_LEN], uint8_t ptype, uint8_t flags, uint16_t frag_len,
                      uint32_t call_id);

/* PDU decoders. `pdu`/`len` is one whole PDU (len >= frag_length as found by
 * kr_rpc_frame; bytes past frag_length are ignored). Each runs kr_rpc_frame
 * (cap KR_RPC_FRAG_MAX) first, so a prefix gives KR_EMORE, then checks the
 * PTYPE (another PTYPE is KR_EMALF). Inside frag_length every count is bound
 * checked: a body running past frag_length, or bytes left over after the last
 * context item / result, is KR_EMALF; more than KR_RPC_MAX_CTX items or
 * results, KR_RPC_MAX_TS transfer syntaxes or KR_RPC_SECADDR_MAX sec_addr
 * bytes is KR_ETOOBIG. A request with KR_PFC_OBJECT_UUID has its object UUID
 * in `object`; otherwise `object` is zeroed. */
int kr_rpc_bind_decode(const uint8_t *pdu, size_t len, struct kr_rpc_bind *out, const char **why);
int kr_rpc_bind_ack_decode(const uint8_t *pdu, size_t len, struct kr_rpc_bind_ack *out,
                           const char **why);
int kr_rpc_request_decode(const uint8_t *pdu, size_t len, struct kr_rpc_request *out,
                          const char **why);
int kr_rpc_response_decode(const uint8_t *pdu, size_t len, struct kr_rpc_response *out,
                           const char **why);
int kr_rpc_fault_decode(const uint8_t *pdu, size_t len, struct kr_rpc_fault *out, const char **why);

/* PDU encoders. hdr.ptype selects bind vs alter (and ack vs alter_resp);
 * hdr.flags (FIRST|LAST always added) and hdr.call_id are written;
 * hdr.frag_len is ignored and computed; version, drep and auth_length are
 * always 5.0, 10 00 00 00 and 0.
 * KR_EINVAL: a wrong PTYPE, a count over its cap, or a PDU that would exceed
 * KR_RPC_FRAG_MAX (so whatever is encoded also decodes). */
int kr_rpc_bind_encode(const struct kr_rpc_bind *in, uint8_t *out, size_t cap, size_t *outlen);
int kr_rpc_bind_ack_encode(const struct kr_rpc_bind_ack *in, uint8_t *out, size_t cap,
                           size_t *outlen);
int kr_rpc_request_encode(const struct kr_rpc_request *in, uint8_t *out, size_t cap,
                          size_t *outlen);
int kr_rpc_response_encode(const struct kr_rpc_response *in, uint8_t *out, size_t cap,
                           size_t *outlen);
int kr_rpc_fault_encode(const struct kr_rpc_fault *in, uint8_t *out, size_t cap, size_t *outlen);

/*
 * Server-side bind policy: fills `ack` (results, echoes of max_xmit/max_recv,
 * call_id and flags) for a received bind or alter_context, the way a Windows
 * 8+ KMS host answers (kms-protocol.md 1.3):
 *   - KMS interface + NDR64: accept when `ndr64` is set;
 *   - KMS interface + NDR32: accept, unless an NDR64 item is accepted in the
 *     same PDU and `ndr32_with_ndr64` is 0 (the Windows 8+ behaviour);
 *   - BTFN: negotiate_ack with (requested & 3) when `btfn` is set;
 *   - other transfer syntax: provider reject, reason 2; other interface:
 *     provider reject, reason 1.
 * `port` is the listening port for sec_addr (bind_ack only; alter_context_resp
 * carries no sec_addr). `assoc_group` is echoed when the request's is
 * non-zero, else the given value is used. bind_ack flags echo the bind's
 * (CONC_MPX included); alter_context_resp flags are FIRST|LAST. Rejected
 * results carry a zero transfer syntax. Returns 0, or KR_EINVAL when `req`
 * is not a bind/alter_context or has more than KR_RPC_MAX_CTX items.
 */
struct kr_rpc_bind_policy {
    int ndr64;            /* offer NDR64 */
    int ndr32_with_ndr64; /* also accept NDR32 when NDR64 is accepted */
    int btfn;             /* acknowledge bind time feature negotiation */
};
int kr_rpc_bind_answer(const struct kr_rpc_bind *req, const struct kr_rpc_bind_policy *pol,
                       uint16_t port, uint32_t assoc_group, struct kr_rpc_bind_ack *ack);

/*
 * Client side of a KMS bind (used by the backend pool, health checks and the
 * DNS audit's probe). kr_rpc_kms_bind_encode writes a bind for the KMS
 * interface v1.0 offering NDR32 as context 0 and, with `with_ndr64`, NDR64 as
 * context 1; no BTFN. kr_rpc_kms_bind_accepted returns the transfer syntax
 * (KR_TS_NDR32 or KR_TS_NDR64) of the first accepted result, or 0 when the
 * answer accepts neither.
 */
int kr_rpc_kms_bind_encode(uint32_t call_id, uint16_t max_frag, bool with_ndr64, uint8_t *out,
                           size_t cap, size_t *outlen);
int kr_rpc_kms_bind_accepted(const struct kr_rpc_bind_ack *ack);

/*
 * NDR framing of RequestActivation (opnum 0).
 *   request stub, NDR32: u32 N, u32 N (conformance), N bytes
 *   request stub, NDR64: u64 N, u64 N, N bytes
 *   response stub, success NDR32: u32 M, u32 referent 0x20000, u32 M, M bytes,
 *       zero pad to 4, u32 HRESULT
 *   response stub, success NDR64: u64 M, u64 referent, u64 M, M bytes, pad, u32 HRESULT
 *   response stub, error: NDR32 u32 0, u32 0 (NULL), u32 HRESULT;
 *       NDR64 u64 0, u64 0, u32 HRESULT
 * Messages are capped at KR_NDR_MSG_MAX bytes.
 *
 * `stub` is always a whole stub (it comes from a whole PDU), so a length that
 * runs past it is KR_EMALF, never KR_EMORE. A length over KR_NDR_MSG_MAX is
 * KR_ETOOBIG (64-bit NDR64 lengths are compared as such, never truncated).
 * Bytes after the last field are tolerated (alignment slack) and ignored.
 * The pad before the HRESULT is measured from the start of the stub, which is
 * the same as from the PDU start (the stub starts at offset 24).
 */
#define KR_NDR_MSG_MAX 1024
#define KR_NDR_REFERENT 0x00020000u

enum kr_ndr { KR_NDR32 = 1, KR_NDR64 = 2 };

/* Decodes a request stub. *msg points into `stub`. */
int kr_ndr_req_decode(enum kr_ndr ndr, const uint8_t *stub, size_t len, const uint8_t **msg,
                      size_t *msg_len, const char **why);
int kr_ndr_req_encode(enum kr_ndr ndr, const uint8_t *msg, size_t msg_len, uint8_t *out, size_t cap,
                      size_t *outlen);

struct kr_ndr_resp {
    uint32_t hresult;   /* 0 on success */
    const uint8_t *msg; /* NULL for an error reply (NULL pointer on the wire) */
    size_t msg_len;
};
int kr_ndr_resp_decode(enum kr_ndr ndr, const uint8_t *stub, size_t len, struct kr_ndr_resp *out,
                       const char **why);
/* msg NULL (and msg_len 0) encodes an error reply carrying `hresult`. */
int kr_ndr_resp_encode(enum kr_ndr ndr, const uint8_t *msg, size_t msg_len, uint32_t hresult,
                       uint8_t *out, size_t cap, size_t *outlen);

/* Guesses NDR32 vs NDR64 from a request or response stub's length prefixes,
 * for decoding captures that lack their bind. Returns KR_NDR32, KR_NDR64 or
 * KR_EMALF when neither fits. */
int kr_ndr_guess(const uint8_t *stub, size_t len, int is_response);

#endif
