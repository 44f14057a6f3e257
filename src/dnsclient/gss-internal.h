/*
 * gss-internal.h - shared by gss_cred.c and gss_sess.c only: the GSSAPI
 * side of a session. The only header besides ldns-glue.h that pulls in a
 * third-party DNS/Kerberos library.
 *
 * Ownership: a session owns its credential, context and names (released in
 * kr_gss_close).
 */
#ifndef KR_DNS_GSS_INTERNAL_H
#define KR_DNS_GSS_INTERNAL_H

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "dnsclient/gss.h"

struct kr_gss_sess {
    char keytab[512], principal[256], zone[KR_DNS_NAME_MAX];
    char server_name[KR_DNS_NAME_MAX]; /* MNAME without the final dot */
    char server_principal[KR_DNS_NAME_MAX + 64];
    char key_name[KR_DNS_NAME_MAX + 16]; /* <random>.sig-<server>. */
    char ccache[64];                     /* MEMORY:kmsrelay-<n> */
    struct kr_addr addr;
    uint64_t timeout_ms;
    int64_t clock_offset;
    gss_cred_id_t cred;
    gss_ctx_id_t ctx;
    bool samba_logged;
    uint64_t established_us; /* when the context was set up (kr_now_us) */
    int64_t tkey_expire;     /* the server's TKEY expiration (wall s), 0 = none */
    int64_t margin_s;        /* negotiate again when less than this is left */
    unsigned renew_failures; /* failed negotiations in a row (backoff) */
    uint64_t renew_retry_us; /* no new negotiation before this (kr_now_us) */
    char renew_err[400];     /* why the last one failed (repeated while backing off) */
};

/* Credentials from the keytab into a private memory cache. 0 or KR_E* with
 * err. */
int kr_gssi_acquire(struct kr_gss_sess *s, char *err, size_t errlen);

/* Destroys the session's memory credential cache. */
void kr_gssi_forget(struct kr_gss_sess *s);

/* Operator text for a failed GSSAPI call `what`: the library's own words
 * plus what to do for the cases an operator can fix (KDC unreachable,
 * clock skew, unknown server or client principal, stale keys). */
void kr_gssi_explain(const struct kr_gss_sess *s, const char *what, OM_uint32 maj, OM_uint32 min,
                     char *err, size_t errlen);

/* Sets up a new context (new key name) on an open session; `reason` is
 * logged ("stale": the server lost ours; "expiring": a fresh ticket is
 * fetched from the keytab first). Failures back off exponentially (1 s
 * doubling to 60 s): while backing off it fails at once with the last
 * error. */
int kr_gss_reopen(struct kr_gss_sess *s, const char *reason, char *err, size_t errlen);

/* Seconds the context has left: the smaller of GSSAPI's (the service
 * ticket's end) and the server's TKEY expiration; 0 without a context. */
int64_t kr_gssi_left_s(const struct kr_gss_sess *s);

/* Renegotiates when the context has less than its margin left (a quarter
 * of its lifetime, at most 5 minutes), before a message is signed. A
 * context still valid is kept when that fails. 0 or KR_E* with err. */
int kr_gssi_ensure(struct kr_gss_sess *s, char *err, size_t errlen);

/* The MIC callbacks for gss_tsig.c (ctx: the session). */
int kr_gssi_mic(void *ctx, const uint8_t *d, size_t n, uint8_t *mic, size_t *len);
int kr_gssi_verify(void *ctx, const uint8_t *d, size_t n, const uint8_t *mic, size_t len);

/* Blocking DNS over TCP: sends one message, reads one reply (*reply
 * malloc). 0, KR_ETIMEDOUT or KR_EIO with err. */
int kr_gssi_exchange(const struct kr_addr *a, uint64_t timeout_ms, const uint8_t *msg, size_t len,
                     uint8_t **reply, size_t *reply_len, char *err, size_t errlen);

#endif
