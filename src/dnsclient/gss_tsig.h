/*
 * gss_tsig.h - RFC 3645 GSS-TSIG over wire bytes (issue 12): the TSIG
 * record with algorithm "gss-tsig.", the bytes a MIC covers, and the
 * verification of a reply, including Samba's MAC form. No GSSAPI or ldns
 * type appears here: the MIC itself is a callback (gss_get_mic and
 * gss_verify_mic in gss_sess.c, an HMAC in the unit tests and the fuzz
 * target), so this codec is tested without a KDC.
 *
 * What a MIC covers (RFC 8945 4.3.3 and 5.3, as BIND's nsupdate -g does):
 *   request: the message as it is before the TSIG RR (ARCOUNT not counting
 *            it), then the TSIG variables: key name and algorithm name
 *            (lower case, uncompressed), class ANY, TTL 0, time signed (48
 *            bit), fudge, error, other length and other data;
 *   reply:   the request MAC with its 2-byte length in front, the reply
 *            without its TSIG (ARCOUNT minus one, the original ID put back),
 *            then the reply's TSIG variables.
 * Samba (4.17, source4/dns_server/dns_crypto.c) leaves the 2-byte length
 * out of the reply digest; the verifier tries the RFC form first and then
 * that one, and says which it accepted (dns.md 2.10a).
 *
 * Ownership: every output buffer (*out, *body) is malloc'd for the caller;
 * inputs are borrowed for the call.
 */
#ifndef KR_DNS_GSS_TSIG_H
#define KR_DNS_GSS_TSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/dns.h"

#define KR_GSST_ALG "gss-tsig."
#define KR_GSST_MAC_MAX 512 /* a Kerberos MIC is 28-60 bytes; SPNEGO adds little */

/* Computes the MIC of data into mic (cap in *len, length out). 0 or KR_E*. */
typedef int (*kr_gsst_mic_fn)(void *ctx, const uint8_t *data, size_t len, uint8_t *mic,
                              size_t *mic_len);
/* 0 when mic is a valid MIC of data, else KR_ECRYPTO. */
typedef int (*kr_gsst_verify_fn)(void *ctx, const uint8_t *data, size_t len, const uint8_t *mic,
                                 size_t mic_len);

/* A TSIG record as found in a message (pointers into that message). */
struct kr_gsst_tsig {
    char key_name[KR_DNS_NAME_MAX]; /* lower case, absolute */
    char algorithm[KR_DNS_NAME_MAX];
    int64_t time;
    uint16_t fudge, orig_id, error;
    const uint8_t *mac, *other;
    size_t mac_len, other_len;
    bool samba_form; /* verify: the MAC matched only in Samba's form */
};

/*
 * Signs a message that has no TSIG yet: *out (malloc) is msg with the
 * TSIG RR appended and ARCOUNT + 1; mac/mac_len (cap in, length out) get
 * the MIC, which every reply's MAC covers. 0, KR_EINVAL (not a DNS
 * message, bad key name), KR_ENOMEM, or the callback's error; err says why.
 */
int kr_gsst_sign(const uint8_t *msg, size_t len, const char *key_name, int64_t now, uint16_t fudge,
                 kr_gsst_mic_fn mic, void *ctx, uint8_t **out, size_t *out_len, uint8_t *mac,
                 size_t *mac_len, char *err, size_t errlen);

/*
 * Splits a message: when its last additional RR is a TSIG, fills *t and
 * sets *body (malloc) to the message without it (ARCOUNT - 1, original ID)
 * and returns 1; 0 when there is no TSIG (*body NULL); KR_EMALF with why
 * for a malformed message. Never reads outside wire[0..len).
 */
int kr_gsst_split(const uint8_t *wire, size_t len, struct kr_gsst_tsig *t, uint8_t **body,
                  size_t *body_len, const char **why);

/*
 * Verifies a signed reply to a request whose MAC was req_mac: same key
 * name and algorithm, the MIC (RFC form, else Samba's: t->samba_form), and
 * the time within the reply's fudge of `now`. Returns 0 with *body as in
 * kr_gsst_split; KR_ENOENT (no TSIG), KR_EMALF, KR_EINVAL (another key or
 * algorithm), KR_ECRYPTO (the MIC does not verify in either form),
 * KR_ETIMEDOUT (time outside the fudge: clock skew), each with err.
 * *body is NULL on every error.
 */
int kr_gsst_verify(const uint8_t *wire, size_t len, const char *key_name, const uint8_t *req_mac,
                   size_t req_mac_len, int64_t now, kr_gsst_verify_fn vf, void *ctx,
                   struct kr_gsst_tsig *t, uint8_t **body, size_t *body_len, char *err,
                   size_t errlen);

/* Name helpers shared with tkey.c: presentation name -> uncompressed
 * lower-case wire form into out (cap >= 255); returns its length or
 * KR_EINVAL. */
int kr_gsst_name_wire(const char *name, uint8_t *out, size_t cap);
/* Reads a (possibly compressed) name at *off into text (lower case,
 * absolute) and advances *off past it. KR_EMALF on any defect. */
int kr_gsst_name_read(const uint8_t *wire, size_t len, size_t *off, char out[KR_DNS_NAME_MAX]);
/* Offset just past the RR starting at off (name, fixed part, rdata), or
 * KR_EMALF. */
int kr_gsst_skip_rr(const uint8_t *wire, size_t len, size_t off, size_t *next);

#endif
