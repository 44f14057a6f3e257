/*
 * gss.h - GSS-TSIG sessions (RFC 3645) on MIT Kerberos' GSSAPI (issue 12):
 * credentials from a keytab, the TKEY exchange with a zone's primary, and
 * requests signed with gss_get_mic and verified with gss_verify_mic
 * (gss_tsig.c does the bytes). No GSSAPI type appears here; only
 * gss_cred.c and gss_sess.c include it.
 *
 * Everything here BLOCKS (Kerberos may talk to a KDC, TKEY talks to the
 * DNS server): the command line calls it directly, the daemon must call it
 * from a worker thread. One session is used by one thread at a time.
 *
 * Errors are one line for operators that says what to do (no keytab or a
 * readable one, principal not in the keytab, KDC unreachable, clock skew,
 * unknown server principal, permission denied on the node). Tickets and
 * keys never appear in any message.
 *
 * A session renegotiates by itself before its context expires and once
 * after a BADKEY/BADSIG (gss_req.c), so it may be kept for many messages.
 *
 * Ownership: kr_gss_open returns a session the caller frees with
 * kr_gss_close; option strings are copied. Results as in kmsrelay/dns.h.
 */
#ifndef KR_DNS_GSS_H
#define KR_DNS_GSS_H

#include <stddef.h>
#include <stdint.h>

#include "kmsrelay/dns.h"
#include "kmsrelay/netaddr.h"

struct kr_gss_opts {
    const char *keytab;      /* client keytab (mode 0600 or stricter) */
    const char *principal;   /* "kmsrelay$@CORP.EXAMPLE" (must be in the keytab) */
    const char *zone;        /* the zone to update: its SOA MNAME names the server */
    struct kr_addr server;   /* where to send (the zone's primary); port included */
    const char *server_name; /* NULL: the zone's SOA MNAME (asked from `server`) */
    uint64_t timeout_ms;     /* per network exchange; 0 = 5000 */
    int64_t clock_offset;    /* TEST ONLY: added to the TSIG time we sign with */
};

struct kr_gss_sess;

/* Checks a keytab before anything is sent: a regular file, not accessible
 * by group or others, holding a key for `principal`. 0, or KR_EIO /
 * KR_EINVAL / KR_ENOENT with err saying what to do. */
int kr_gss_keytab_check(const char *keytab, const char *principal, char *err, size_t errlen);

/* Gets a ticket from the keytab (a private in-memory credential cache),
 * finds the server principal DNS/<MNAME>@<realm of principal>, and sets
 * up a security context through TKEY over TCP. 0 with *out, or a KR_E*
 * with err. */
int kr_gss_open(const struct kr_gss_opts *o, struct kr_gss_sess **out, char *err, size_t errlen);
void kr_gss_close(struct kr_gss_sess *s); /* NULL is fine */

/* The server principal and key name in use (for logs). */
const char *kr_gss_server_principal(const struct kr_gss_sess *s);

/* A GSS-TSIG signed UPDATE / query over TCP. Returns 0 with *out (look at
 * (*out)->status; a SERVFAIL from a GSS-authenticated update reads as
 * "permission denied on the node"), or KR_E* for a local failure. */
int kr_gss_update(struct kr_gss_sess *s, const struct kr_dns_update *u, struct kr_dns_result **out);
int kr_gss_query(struct kr_gss_sess *s, const char *name, uint16_t type,
                 struct kr_dns_result **out);

/* ---- the daemon's sessions (gss_pool.c) ----------------------------------
 * One security context per (keytab, principal, server address) serves every
 * zone, query and update on that server: a worker takes the idle session
 * (or opens one), uses it alone, and gives it back. A failed kr_gss_open
 * backs off per server (1 s doubling to 60 s): meanwhile take fails at once
 * with the same error and "(negotiation backing off)". Thread-safe. */
int kr_gss_pool_take(const struct kr_gss_opts *o, struct kr_gss_sess **out, char *err,
                     size_t errlen);
/* Returns a session taken with `o` (it stays for the next request; a
 * second idle one for the same server is closed). */
void kr_gss_pool_give(const struct kr_gss_opts *o, struct kr_gss_sess *s);
/* Closes every idle session and forgets the backoff (client freed). */
void kr_gss_pool_clear(void);

#endif
