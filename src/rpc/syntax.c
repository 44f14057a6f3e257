/*
 * syntax.c - the well-known syntax UUIDs of KMS over DCE/RPC, PTYPE names,
 * and the classification of transfer syntaxes (kms-protocol.md 1.2).
 *
 * UUIDs are kept as their 16 wire bytes (guid.h): Data1..Data3 little-endian,
 * Data4 raw, so they compare with memcmp against what a peer sent.
 */
#include <string.h>

#include "kmsrelay/rpc.h"
#include "rpc-internal.h"

/* 51c82175-844e-4750-b0d8-ec255555bc06, KMSServer.idl RequestActivation. */
const uint8_t kr_rpc_kms_iface[16] = {0x75, 0x21, 0xc8, 0x51, 0x4e, 0x84, 0x50, 0x47,
                                      0xb0, 0xd8, 0xec, 0x25, 0x55, 0x55, 0xbc, 0x06};
/* 8a885d04-1ceb-11c9-9fe8-08002b104860, NDR (NDR32) v2. */
const uint8_t kr_rpc_ndr32_uuid[16] = {0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11,
                                       0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60};
/* 71710533-beba-4937-8319-b5dbef9ccc36, NDR64 v1. */
const uint8_t kr_rpc_ndr64_uuid[16] = {0x33, 0x05, 0x71, 0x71, 0xba, 0xbe, 0x37, 0x49,
                                       0x83, 0x19, 0xb5, 0xdb, 0xef, 0x9c, 0xcc, 0x36};
/* 6cb71c2c-9812-4540-...: MS-RPCE 2.2.2.14; the last 8 bytes are a bitmask. */
const uint8_t kr_rpc_btfn_prefix[8] = {0x2c, 0x1c, 0xb7, 0x6c, 0x12, 0x98, 0x40, 0x45};

const char *kr_rpc_ptype_name(unsigned ptype)
{
    switch (ptype) {
    case KR_PT_REQUEST:
        return "request";
    case KR_PT_RESPONSE:
        return "response";
    case KR_PT_FAULT:
        return "fault";
    case KR_PT_BIND:
        return "bind";
    case KR_PT_BIND_ACK:
        return "bind_ack";
    case KR_PT_BIND_NAK:
        return "bind_nak";
    case KR_PT_ALTER:
        return "alter_context";
    case KR_PT_ALTER_RESP:
        return "alter_context_resp";
    default:
        return "unknown";
    }
}

enum kr_rpc_tskind kr_rpc_syntax_kind(const struct kr_rpc_syntax *ts)
{
    /* The version is part of the identity: NDR v1 or NDR64 v2 do not exist,
     * and accepting them would promise an encoding we cannot speak. */
    if (memcmp(ts->uuid, kr_rpc_ndr32_uuid, 16) == 0)
        return ts->version == 2 ? KR_TS_NDR32 : KR_TS_OTHER;
    if (memcmp(ts->uuid, kr_rpc_ndr64_uuid, 16) == 0)
        return ts->version == 1 ? KR_TS_NDR64 : KR_TS_OTHER;
    /* BTFN: only the prefix identifies it (the rest is the bitmask);
     * MS-RPCE 2.2.2.13 fixes its version at 1. */
    if (memcmp(ts->uuid, kr_rpc_btfn_prefix, sizeof(kr_rpc_btfn_prefix)) == 0)
        return ts->version == 1 ? KR_TS_BTFN : KR_TS_OTHER;
    return KR_TS_OTHER;
}

void rpc_syntax_read(struct kr_rd *r, struct kr_rpc_syntax *s)
{
    kr_rd_copy(r, s->uuid, sizeof(s->uuid));
    s->version = kr_rd_u32(r);
}

void rpc_syntax_write(struct kr_wr *w, const struct kr_rpc_syntax *s)
{
    kr_wr_bytes(w, s->uuid, sizeof(s->uuid));
    kr_wr_u32(w, s->version);
}
