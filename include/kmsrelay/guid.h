/*
 * guid.h - Microsoft GUIDs as they travel in KMS and DCE/RPC.
 *
 * On the wire a GUID is mixed-endian: Data1 u32 LE, Data2 u16 LE, Data3 u16
 * LE, then Data4 as 8 raw bytes. kmsrelay keeps GUIDs as their 16 wire bytes
 * and converts only for text, so `11111111-2222-4333-8444-555555555554` is
 * `11 11 11 11 22 22 33 43 84 44 55 55 55 55 55 54` in memory.
 */
#ifndef KMSRELAY_GUID_H
#define KMSRELAY_GUID_H

#include <stdint.h>

#define KR_GUID_LEN 16
#define KR_GUID_STRLEN 37 /* 36 characters and the NUL */

/* Formats wire bytes as lower-case text "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
void kr_guid_format(const uint8_t wire[KR_GUID_LEN], char out[KR_GUID_STRLEN]);

/* Parses text (either case, optional surrounding braces) into wire bytes.
 * Returns 0 or KR_EMALF; `wire` is written only on success. */
int kr_guid_parse(const char *text, uint8_t wire[KR_GUID_LEN]);

/* 1 when all 16 bytes are zero. */
int kr_guid_is_zero(const uint8_t wire[KR_GUID_LEN]);

#endif
