/*
 * kms.h - KMS activation messages V4, V5 and V6 (the bytes inside the NDR
 * stub of RequestActivation); see shared/docs/kms-protocol.md sections 2-4.
 *
 * Pure codec: no I/O. Requests are decoded in full (V5 with OpenSSL's
 * AES-128-CBC, V6 with our tweaked AES), or reduced to the CMID alone with one
 * block decryption on the hot path. Responses are decoded to the fields a
 * proxy monitors.
 *
 * Boundary (DEVELOPERS brief): kmsrelay never computes integrity fields. The
 * encoders exist for the test programs (load generator, stub host); they
 * always write the V4 MAC, the V5/V6 hash, the V6 HMAC and the IV-derived
 * key-exchange fields as zeros, so their output can never activate a client.
 *
 * Version rule: major 4 is plaintext, major 5 uses the V5 key with standard
 * AES-CBC, major 6 and above use the V6 key with the tweaked schedule (as
 * vlmcsd does), so an unknown 7.0 request still decodes for diagnosis.
 *
 * Decoders return 0, KR_EMALF (too short, bad padding, inner version not
 * equal to the outer one, ePID size out of range) or KR_EUNSUP (major below
 * 4); `why` gets a static reason. Out-structs are self-contained copies,
 * written only on success. KR_ECRYPTO means OpenSSL itself failed (V5).
 *
 * V5/V6 answers need the request IV: it is the plaintext msg[4..19].
 * Thread safety: every function may be called from any thread.
 */
#ifndef KMSRELAY_KMS_H
#define KMSRELAY_KMS_H

#include <stddef.h>
#include <stdint.h>

#define KR_KMS_BASE_LEN 236   /* the plaintext request base */
#define KR_KMS_V4_REQ_LEN 252 /* base + 16-byte MAC */
#define KR_KMS_V5_REQ_LEN 260 /* version + IV + 240 encrypted */
#define KR_KMS_WS_CHARS 64    /* workstation name, UTF-16 code units */
#define KR_KMS_WS_UTF8 193    /* 64 units as UTF-8 (at most 3 bytes each) + NUL */
#define KR_KMS_EPID_MAX 128   /* PIDSize cap in bytes (vlmcs checkPidLength) */
#define KR_KMS_EPID_UTF8 193
#define KR_KMS_RESP_MAX 512 /* largest response message we build or accept */

/* HRESULTs a proxy sees or raises. */
#define KR_HR_OK 0x00000000u
#define KR_HR_INVALID_DATA 0x8007000Du
#define KR_HR_KMS_ID_MISMATCH 0xC004F042u
#define KR_HR_INVALID_TIMESTAMP 0xC004F06Cu
#define KR_HR_NOT_ENOUGH_COUNT 0xC004F038u /* raised by clients, never on the wire */
#define KR_HR_NO_KMS 0xC004F074u

/* Application ids (wire bytes, guid.h layout). */
extern const uint8_t kr_kms_app_windows[16];    /* 55c92734-d682-4d71-983e-d6ec3f16059f */
extern const uint8_t kr_kms_app_office2010[16]; /* 59a52881-a989-479d-af46-f275c6370663 */
extern const uint8_t kr_kms_app_office2013[16]; /* 0ff1ce15-a989-479d-af46-f275c6370663 */

/* The known applications by index, the order of every table by application:
 * 0 Windows, 1 Office 2010, 2 Office 2013+; KR_KMS_APPS_KNOWN for any other
 * id. kr_kms_app_id gives the id of index 0..2, NULL for any other. */
#define KR_KMS_APPS_KNOWN 3
int kr_kms_app_index(const uint8_t app_id[16]);
const uint8_t *kr_kms_app_id(int idx);
/* The name of index idx for labels and tables: "Windows", "Office 2010",
 * "Office 2013+", or "other" for any other index. */
const char *kr_kms_app_label(int idx);
/* "Windows", "Office 2010", "Office 2013+", or NULL for an unknown id. */
const char *kr_kms_app_name(const uint8_t app_id[16]);
/* The activation threshold: the count a KMS host must report before it
 * activates the clients of application `app_id`. Every client asks for its
 * own minimum (its request's N_Policy: 25 for Windows client editions, 5 for
 * Windows Server and Office) and the count serves them all, so the threshold
 * is the highest N_Policy among them.
 *
 * `n_policy` is the highest N_Policy known (0: none known). `all_known`
 * says it is that of every client (the report, which walks every pin); when
 * it is only one sample (the request that fetched a host's count: the
 * control API, the metrics), other clients of the application may ask more,
 * so the result is at least the application's usual minimum: 25 for
 * Windows, 5 for Office and unknown ids. With nothing known (n_policy 0),
 * that minimum as well. Pure (kms-protocol.md 2 N_Policy, 3.3 Count). */
uint32_t kr_kms_activation_threshold(const uint8_t app_id[16], uint32_t n_policy, int all_known);
/* Symbolic name of an HRESULT ("SL_E_VL_KEY_MANAGEMENT_SERVICE_ID_MISMATCH")
 * or NULL when unknown. */
const char *kr_kms_hresult_name(uint32_t hr);

struct kr_kms_request {
    uint16_t ver_minor;
    uint16_t ver_major;
    uint32_t vm_info;        /* 0 bare metal, 1 VM */
    uint32_t license_status; /* 0..6 */
    uint32_t grace_minutes;
    uint8_t app_id[16];
    uint8_t sku_id[16];
    uint8_t kms_id[16];
    uint8_t cmid[16];
    uint32_t n_policy;
    uint64_t request_time; /* FILETIME: 100 ns since 1601-01-01 UTC */
    uint8_t prev_cmid[16];
    uint16_t workstation16[KR_KMS_WS_CHARS]; /* raw UTF-16LE units */
    char workstation[KR_KMS_WS_UTF8];        /* UTF-8, up to the first NUL */
};

struct kr_kms_response {
    uint16_t ver_minor;
    uint16_t ver_major;
    uint32_t epid_size;           /* P, bytes including the UTF-16 NUL */
    char epid[KR_KMS_EPID_UTF8];  /* UTF-8 */
    uint8_t cmid[16];             /* echo of the request CMID */
    uint64_t request_time;        /* echo of the request FILETIME */
    uint32_t count;               /* host's current count for the application */
    uint32_t activation_interval; /* minutes */
    uint32_t renewal_interval;    /* minutes */
    int has_hwid;                 /* V6 only */
    uint8_t hwid[8];
    uint8_t iv[16]; /* V5/V6: the response IV (plaintext on the wire) */
};

/* Full decode of a request message. */
int kr_kms_request_decode(const uint8_t *msg, size_t len, struct kr_kms_request *out,
                          const char **why);

/* Hot path: only the protocol version and the CMID. One block decryption for
 * V5/V6 (CMID = D(msg[84..99]) XOR msg[68..83]). */
int kr_kms_request_cmid(const uint8_t *msg, size_t len, uint16_t *ver_major, uint8_t cmid[16],
                        const char **why);

/* Full decode of a response message. */
int kr_kms_response_decode(const uint8_t *msg, size_t len, struct kr_kms_response *out,
                           const char **why);

/* Test-program encoders (integrity fields zero, see above). For V5/V6 `iv` is
 * the request IV (V5 responses must reuse it; V6 responses should get a fresh
 * random one, which the caller supplies). V4 ignores `iv`. The response ePID
 * is taken from `in->epid` (UTF-8, cut to 63 UTF-16 units; `epid_size` is
 * computed, not read) and the request workstation from `in->workstation`
 * (UTF-8, cut to 63 units; `workstation16` is ignored). The request's outer
 * version is the inner one. Return 0, KR_EINVAL (NULL argument, major below
 * 4, no iv for V5/V6), KR_ENOSPC, or KR_ECRYPTO. */
int kr_kms_request_encode(const struct kr_kms_request *in, const uint8_t iv[16], uint8_t *out,
                          size_t cap, size_t *outlen);
int kr_kms_response_encode(const struct kr_kms_response *in, const uint8_t iv[16], uint8_t *out,
                           size_t cap, size_t *outlen);

/* FILETIME <-> Unix seconds. */
int64_t kr_filetime_to_unix(uint64_t ft);
uint64_t kr_unix_to_filetime(int64_t unix_seconds);

/* UTF-16LE units (stopping at NUL or n) to UTF-8; lone surrogates become
 * U+FFFD. Always NUL-terminates `out` (cap > 0). Returns bytes written. */
size_t kr_utf16_to_utf8(const uint16_t *in, size_t n, char *out, size_t cap);
/* UTF-8 to UTF-16 units; invalid sequences become U+FFFD. Returns the number
 * of units written (no NUL added), at most cap. */
size_t kr_utf8_to_utf16(const char *in, uint16_t *out, size_t cap);

#endif
