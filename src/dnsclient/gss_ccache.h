/*
 * gss_ccache.h - a private Kerberos credential cache filled from a keytab,
 * for code that authenticates with the same account as GSS-TSIG but
 * through another library (the directory module's LDAP SASL GSSAPI bind,
 * issue 12). Kerberos stays in dnsclient: the caller gets only the cache's
 * name and makes it its thread's default while it binds.
 *
 * BLOCKS (talks to the KDC): call it from the command line or a worker
 * thread. Errors as in gss.h (one line for operators, no secrets).
 *
 * Ownership: the cache lives until kr_gss_ccache_close(name).
 */
#ifndef KR_DNS_GSS_CCACHE_H
#define KR_DNS_GSS_CCACHE_H

#include <stddef.h>

#define KR_GSS_CCACHE_NAME_MAX 64

/* Checks the keytab (kr_gss_keytab_check), gets a ticket for `principal`
 * into a new in-memory cache and writes its name ("MEMORY:...") to name.
 * 0, or a KR_E* with err. */
int kr_gss_ccache_open(const char *keytab, const char *principal, char name[KR_GSS_CCACHE_NAME_MAX],
                       char *err, size_t errlen);
/* Destroys the cache (no ticket outlives its use). NULL or "" is fine. */
void kr_gss_ccache_close(const char *name);

/* Makes `name` the calling thread's default credential cache for GSSAPI
 * (MIT's gss_krb5_ccache_name is per thread), so that a library that
 * initiates with the default credential (Cyrus SASL) uses it. NULL goes
 * back to the process default. 0 or KR_ECRYPTO. */
int kr_gss_ccache_use(const char *name);

#endif
