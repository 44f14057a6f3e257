/*
 * gss_cred.c - Kerberos credentials for GSS-TSIG: the keytab check (file
 * mode like the TSIG key files, the principal present), credentials from
 * the keytab into a private in-memory cache (MIT's client_keytab: the
 * library gets and renews tickets from the keytab by itself), and the
 * operator text for GSSAPI failures.
 */
#include <errno.h>
#include <krb5.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dnsclient/gss-internal.h"
#include "kmsrelay/err.h"

/* Is `principal` in the keytab? 1 yes, 0 no (list of what is there in
 * `have`), <0 when the keytab cannot be read. */
static int keytab_has(const char *path, const char *principal, char *have, size_t cap)
{
    krb5_context kc;
    krb5_keytab kt;
    krb5_kt_cursor cur;
    krb5_keytab_entry e;
    char name[600];
    int found = 0;
    have[0] = 0;
    if (krb5_init_context(&kc) != 0)
        return KR_ECRYPTO;
    snprintf(name, sizeof(name), "FILE:%s", path);
    if (krb5_kt_resolve(kc, name, &kt) != 0) {
        krb5_free_context(kc);
        return KR_EIO;
    }
    if (krb5_kt_start_seq_get(kc, kt, &cur) != 0) {
        krb5_kt_close(kc, kt);
        krb5_free_context(kc);
        return KR_EMALF;
    }
    while (!found && krb5_kt_next_entry(kc, kt, &e, &cur) == 0) {
        char *p = NULL;
        if (krb5_unparse_name(kc, e.principal, &p) == 0) {
            if (strcasecmp(p, principal) == 0)
                found = 1;
            else if (!strstr(have, p) && strlen(have) + strlen(p) + 3 < cap)
                strcat(strcat(have, have[0] ? ", " : ""), p);
            krb5_free_unparsed_name(kc, p);
        }
        krb5_free_keytab_entry_contents(kc, &e);
    }
    krb5_kt_end_seq_get(kc, kt, &cur);
    krb5_kt_close(kc, kt);
    krb5_free_context(kc);
    return found;
}

int kr_gss_keytab_check(const char *keytab, const char *principal, char *err, size_t errlen)
{
    struct stat st;
    if (!keytab || !*keytab) {
        snprintf(err, errlen, "no keytab configured for GSS-TSIG (set gss.keytab)");
        return KR_EINVAL;
    }
    if (!principal || !strchr(principal, '@')) {
        snprintf(err, errlen,
                 "GSS-TSIG principal \"%s\" has no realm (write it as account@REALM, e.g. "
                 "kmsrelay$@CORP.EXAMPLE)",
                 principal ? principal : "");
        return KR_EINVAL;
    }
    if (stat(keytab, &st) != 0) {
        snprintf(err, errlen,
                 "keytab %s: %s (export the account's keys there, e.g. samba-tool domain "
                 "exportkeytab or ktpass, then chmod 600)",
                 keytab, strerror(errno));
        return KR_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "keytab %s is not a regular file", keytab);
        return KR_EINVAL;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen,
                 "keytab %s is accessible by group or others (mode %04o): chmod 600 %s", keytab,
                 (unsigned)(st.st_mode & 07777), keytab);
        return KR_EINVAL;
    }
    char have[400];
    int rc = keytab_has(keytab, principal, have, sizeof(have));
    if (rc < 0) {
        snprintf(err, errlen, "keytab %s cannot be read as a Kerberos keytab", keytab);
        return KR_EMALF;
    }
    if (rc == 0) {
        snprintf(err, errlen,
                 "principal %s is not in keytab %s (it holds: %s): export that account's "
                 "keys, or set gss.principal to one of those",
                 principal, keytab, have[0] ? have : "nothing");
        return KR_ENOENT;
    }
    return 0;
}

static void explain_code(const struct kr_gss_sess *s, const char *what, const char *lib,
                         krb5_error_code code, char *err, size_t errlen);

/* The first ticket, with krb5 directly: its error codes say exactly what
 * went wrong (gss_acquire_cred_from would report only "no credentials"). */
static int first_ticket(struct kr_gss_sess *s, char *err, size_t errlen)
{
    krb5_context kc;
    krb5_principal me = NULL;
    krb5_keytab kt = NULL;
    krb5_ccache cc = NULL;
    krb5_creds creds;
    char ktname[600];
    bool have_creds = false;
    memset(&creds, 0, sizeof(creds));
    if (krb5_init_context(&kc) != 0) {
        snprintf(err, errlen, "Kerberos: cannot initialise (check krb5.conf / KRB5_CONFIG)");
        return KR_ECRYPTO;
    }
    snprintf(ktname, sizeof(ktname), "FILE:%s", s->keytab);
    krb5_error_code code = krb5_parse_name(kc, s->principal, &me);
    if (!code)
        code = krb5_kt_resolve(kc, ktname, &kt);
    if (!code) {
        code = krb5_get_init_creds_keytab(kc, &creds, me, kt, 0, NULL, NULL);
        have_creds = code == 0;
    }
    if (!code)
        code = krb5_cc_resolve(kc, s->ccache, &cc);
    if (!code)
        code = krb5_cc_initialize(kc, cc, me);
    if (!code)
        code = krb5_cc_store_cred(kc, cc, &creds);
    if (code) {
        const char *lib = krb5_get_error_message(kc, code);
        explain_code(s, "ticket from the keytab", lib, code, err, errlen);
        krb5_free_error_message(kc, lib);
    }
    if (have_creds)
        krb5_free_cred_contents(kc, &creds);
    if (cc)
        krb5_cc_close(kc, cc);
    if (kt)
        krb5_kt_close(kc, kt);
    krb5_free_principal(kc, me);
    krb5_free_context(kc);
    return code ? KR_ECRYPTO : 0;
}

void kr_gssi_forget(struct kr_gss_sess *s)
{
    krb5_context kc;
    krb5_ccache cc;
    if (!s->ccache[0] || krb5_init_context(&kc) != 0)
        return;
    if (krb5_cc_resolve(kc, s->ccache, &cc) == 0)
        krb5_cc_destroy(kc, cc); /* no ticket outlives its session */
    krb5_free_context(kc);
}

int kr_gssi_acquire(struct kr_gss_sess *s, char *err, size_t errlen)
{
    OM_uint32 maj, min;
    int rc = first_ticket(s, err, errlen);
    if (rc)
        return rc;
    gss_name_t name = GSS_C_NO_NAME;
    gss_buffer_desc nb = {strlen(s->principal), s->principal};
    maj = gss_import_name(&min, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    if (GSS_ERROR(maj)) {
        kr_gssi_explain(s, "import of the client principal", maj, min, err, errlen);
        return KR_EINVAL;
    }
    gss_key_value_element_desc el[2] = {{"client_keytab", s->keytab}, {"ccache", s->ccache}};
    gss_key_value_set_desc store = {2, el};
    maj = gss_acquire_cred_from(&min, name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_INITIATE,
                                &store, &s->cred, NULL, NULL);
    gss_release_name(&min, &name);
    if (GSS_ERROR(maj)) {
        kr_gssi_explain(s, "credentials from the keytab", maj, min, err, errlen);
        return KR_ECRYPTO;
    }
    return 0;
}

static void status_text(OM_uint32 code, int type, char *out, size_t cap)
{
    OM_uint32 min, ctx = 0;
    gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
    out[0] = 0;
    if (!GSS_ERROR(gss_display_status(&min, code, type, GSS_C_NO_OID, &ctx, &b))) {
        snprintf(out, cap, "%.*s", (int)b.length, (const char *)b.value);
        gss_release_buffer(&min, &b);
    }
}

void kr_gssi_explain(const struct kr_gss_sess *s, const char *what, OM_uint32 maj, OM_uint32 min,
                     char *err, size_t errlen)
{
    char mt[200], nt[200], lib[420];
    status_text(maj, GSS_C_GSS_CODE, mt, sizeof(mt));
    status_text(min, GSS_C_MECH_CODE, nt, sizeof(nt));
    snprintf(lib, sizeof(lib), "%s%s%s", mt, nt[0] ? ": " : "", nt);
    explain_code(s, what, lib, (krb5_error_code)min, err, errlen);
}

static void explain_code(const struct kr_gss_sess *s, const char *what, const char *lib,
                         krb5_error_code code, char *err, size_t errlen)
{
    const char *realm = strchr(s->principal, '@');
    realm = realm ? realm + 1 : "?";
    const char *hint = "";
    char h[1400];
    switch (code) {
    case KRB5_KDC_UNREACH:
    case KRB5_REALM_CANT_RESOLVE:
    case KRB5_REALM_UNKNOWN:
        snprintf(h, sizeof(h),
                 "no KDC of realm %s answered: check the [realms] kdc entry of krb5.conf "
                 "(KRB5_CONFIG) and that port 88 of a domain controller is reachable",
                 realm);
        hint = h;
        break;
    case KRB5KRB_AP_ERR_SKEW:
    case KRB5_KDCREP_SKEW: /* the KDC's reply, with kdc_timesync off */
        hint = "clock skew beyond Kerberos' 5 minutes: synchronise this host's clock with the "
               "domain controllers (NTP)";
        break;
    case KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN:
        snprintf(h, sizeof(h),
                 "the server principal %s is unknown to the KDC: the zone's SOA MNAME is not "
                 "the DNS server's own name, or that server has no DNS/ SPN (setspn -S "
                 "DNS/<fqdn> <server account>)",
                 s->server_principal);
        hint = h;
        break;
    case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
        snprintf(h, sizeof(h), "the principal %s does not exist in realm %s (check gss.principal)",
                 s->principal, realm);
        hint = h;
        break;
    case KRB5KDC_ERR_PREAUTH_FAILED:
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
        snprintf(h, sizeof(h),
                 "the keys in %s are outdated (the account's password changed): export a new "
                 "keytab",
                 s->keytab);
        hint = h;
        break;
    case KRB5_KT_NOTFOUND:
        snprintf(h, sizeof(h), "principal %s is not in keytab %s", s->principal, s->keytab);
        hint = h;
        break;
    default:
        break;
    }
    snprintf(err, errlen, "Kerberos (%s): %s%s%s", what, lib, hint[0] ? " -- " : "", hint);
}
