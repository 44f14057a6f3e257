/*
 * gss_ccache.c - a private credential cache from a keytab (gss_ccache.h).
 * The ticket comes through kr_gssi_acquire, so its errors read exactly like
 * those of a GSS-TSIG session.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dnsclient/gss-internal.h"
#include "dnsclient/gss_ccache.h"
#include "kmsrelay/err.h"

static atomic_uint seq;

int kr_gss_ccache_open(const char *keytab, const char *principal, char name[KR_GSS_CCACHE_NAME_MAX],
                       char *err, size_t errlen)
{
    name[0] = 0;
    int rc = kr_gss_keytab_check(keytab, principal, err, errlen);
    if (rc != 0)
        return rc;
    struct kr_gss_sess *s = calloc(1, sizeof(*s));
    if (!s)
        return snprintf(err, errlen, "out of memory"), KR_ENOMEM;
    snprintf(s->keytab, sizeof(s->keytab), "%s", keytab);
    snprintf(s->principal, sizeof(s->principal), "%s", principal);
    snprintf(s->ccache, sizeof(s->ccache), "MEMORY:kmsrelay-dir-%d-%u", (int)getpid(),
             atomic_fetch_add(&seq, 1));
    s->cred = GSS_C_NO_CREDENTIAL;
    rc = kr_gssi_acquire(s, err, errlen);
    if (s->cred != GSS_C_NO_CREDENTIAL) {
        OM_uint32 min;
        gss_release_cred(&min, &s->cred); /* the cache keeps the ticket */
    }
    if (rc == 0)
        snprintf(name, KR_GSS_CCACHE_NAME_MAX, "%s", s->ccache);
    else
        kr_gssi_forget(s);
    free(s);
    return rc;
}

void kr_gss_ccache_close(const char *name)
{
    struct kr_gss_sess s;
    if (!name || !name[0])
        return;
    snprintf(s.ccache, sizeof(s.ccache), "%s", name);
    kr_gssi_forget(&s);
}

int kr_gss_ccache_use(const char *name)
{
    OM_uint32 min;
    return GSS_ERROR(gss_krb5_ccache_name(&min, name, NULL)) ? KR_ECRYPTO : 0;
}
