/*
 * diag.h - decoding whole recorded conversations for people and tools
 * (`kmsrelayctl decode`).
 *
 * Input is either a conversation file in the format of the shared vector JSON files
 * ("client_to_server" and "server_to_client" lists of hex PDUs) or plain text
 * with one hex PDU per line ('#' starts a comment). The decoder follows the
 * binds to learn which context id means NDR32 or NDR64, falls back to the
 * stub's own length prefixes when the bind is missing, and decodes every KMS
 * request and response it finds.
 *
 * Output is one JSON object:
 *   {"pdus": [ {"dir","type","call_id","length", ...per-type fields, "error"?} ],
 *    "requests": [ {kms_version, is_vm, license_status, grace_minutes, app_id,
 *                   sku_id, kms_id, cmid, previous_cmid, request_time_utc,
 *                   workstation, n_policy, ...} ],
 *    "responses": [ {kms_version, epid, cmid_echo, count, renewal_interval,
 *                    activation_interval, hwid (V6 only), ...} ],
 *    "hresult": "0x........"}
 * The request and response keys are exactly those under `expect` in the
 * vector files. "responses" lists successful responses only; "hresult" is
 * the first non-zero KMS result, else 0x00000000 (absent when the input has
 * no response at all). A PDU that fails to decode keeps its place in "pdus"
 * with an "error" string; decoding goes on with the next one.
 *
 * Ownership: the caller owns every returned json_t (json_decref) and every
 * array returned by kr_diag_load (kr_diag_free).
 */
#ifndef KMSRELAY_DIAG_H
#define KMSRELAY_DIAG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

enum kr_dir { KR_DIR_UNKNOWN = 0, KR_DIR_C2S = 1, KR_DIR_S2C = 2 };

struct kr_diag_pdu {
    enum kr_dir dir;
    uint8_t *bytes;
    size_t len;
};

/* Reads a conversation file. On failure returns KR_EMALF / KR_EIO and writes
 * "file:line: reason" into err. Limits: 4096 PDUs, each at most 64 KiB of
 * bytes (longer ones are still listed and reported as too big). */
int kr_diag_load(const char *path, struct kr_diag_pdu **out, size_t *n, char *err, size_t errlen);
/* Parses the same formats from memory (`name` only labels errors). */
int kr_diag_parse(const char *text, size_t len, const char *name, struct kr_diag_pdu **out,
                  size_t *n, char *err, size_t errlen);
void kr_diag_free(struct kr_diag_pdu *pdus, size_t n);

/* Decodes a conversation. Returns NULL only when out of memory. */
json_t *kr_diag_decode(const struct kr_diag_pdu *pdus, size_t n);

/* Prints the decoded object as a readable report. */
void kr_diag_print(FILE *out, const json_t *decoded);

#endif
