/*
 * gss_sess.c - a GSS-TSIG session (see gss.h): the zone's server
 * principal from its SOA, the TKEY exchange over TCP until the context is
 * complete, and signed requests judged like every other reply (reply.c)
 * once their GSS-TSIG verified. Blocking by design (worker thread or CLI).
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "dnsclient/message.h"
#include "dnsclient/gss-internal.h"
#include "dnsclient/gss_tsig.h"
#include "dnsclient/tkey.h"
#include "kmsrelay/err.h"
#include "kmsrelay/log.h"

static atomic_uint ccache_seq;

/* ---- blocking TCP ------------------------------------------------------- */

static int wait_fd(int fd, short ev, uint64_t deadline_us)
{
    uint64_t now = kr_now_us();
    if (now >= deadline_us)
        return KR_ETIMEDOUT;
    struct pollfd p = {fd, ev, 0};
    int r = poll(&p, 1, (int)((deadline_us - now) / 1000 + 1));
    return r > 0 ? 0 : r == 0 ? KR_ETIMEDOUT : KR_EIO;
}

static int io_all(int fd, uint8_t *buf, size_t n, bool wr, uint64_t deadline_us)
{
    size_t done = 0;
    while (done < n) {
        int rc = wait_fd(fd, wr ? POLLOUT : POLLIN, deadline_us);
        if (rc)
            return rc;
        ssize_t k =
            wr ? send(fd, buf + done, n - done, MSG_NOSIGNAL) : recv(fd, buf + done, n - done, 0);
        if (k == 0)
            return KR_EIO;
        if (k < 0 && errno != EINTR && errno != EAGAIN)
            return KR_EIO;
        if (k > 0)
            done += (size_t)k;
    }
    return 0;
}

int kr_gssi_exchange(const struct kr_addr *a, uint64_t timeout_ms, const uint8_t *msg, size_t len,
                     uint8_t **reply, size_t *reply_len, char *err, size_t errlen)
{
    char as[KR_ADDRSTRLEN];
    kr_addr_format((const struct sockaddr *)&a->ss, as);
    uint64_t deadline = kr_now_us() + timeout_ms * 1000;
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = KR_EIO;
    uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len}, *buf = NULL;
    *reply = NULL;
    if (fd < 0 || len > 65535)
        goto out;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0 && errno != EINPROGRESS)
        goto out;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if ((rc = wait_fd(fd, POLLOUT, deadline)) != 0 ||
        (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr != 0)) {
        errno = soerr;
        rc = rc ? rc : KR_EIO;
        goto out;
    }
    if ((rc = io_all(fd, hdr, 2, true, deadline)) ||
        (rc = io_all(fd, (uint8_t *)msg, len, true, deadline)) ||
        (rc = io_all(fd, hdr, 2, false, deadline)))
        goto out;
    size_t n = (size_t)hdr[0] << 8 | hdr[1];
    if (!(buf = malloc(n ? n : 1))) {
        rc = KR_ENOMEM;
        goto out;
    }
    if ((rc = io_all(fd, buf, n, false, deadline)))
        goto out;
    *reply = buf;
    *reply_len = n;
    buf = NULL;
out:
    if (rc)
        snprintf(err, errlen, "%s: %s", as,
                 rc == KR_ETIMEDOUT ? "no answer in time (timeout)"
                                    : "connection failed or closed");
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---- MIC callbacks ------------------------------------------------------ */

int kr_gssi_mic(void *ctx, const uint8_t *d, size_t n, uint8_t *mic, size_t *len)
{
    struct kr_gss_sess *s = ctx;
    OM_uint32 min;
    gss_buffer_desc in = {n, (void *)d}, out = GSS_C_EMPTY_BUFFER;
    if (GSS_ERROR(gss_get_mic(&min, s->ctx, GSS_C_QOP_DEFAULT, &in, &out)))
        return KR_ECRYPTO;
    int rc = out.length <= *len ? 0 : KR_ENOSPC;
    if (!rc) {
        memcpy(mic, out.value, out.length);
        *len = out.length;
    }
    gss_release_buffer(&min, &out);
    return rc;
}

int kr_gssi_verify(void *ctx, const uint8_t *d, size_t n, const uint8_t *mic, size_t len)
{
    struct kr_gss_sess *s = ctx;
    OM_uint32 min;
    gss_buffer_desc in = {n, (void *)d}, m = {len, (void *)mic};
    return GSS_ERROR(gss_verify_mic(&min, s->ctx, &in, &m, NULL)) ? KR_ECRYPTO : 0;
}

/* ---- set-up --------------------------------------------------------------- */

/* The zone's SOA MNAME (without the final dot) from the server itself. */
static int find_server(struct kr_gss_sess *s, char *err, size_t errlen)
{
    struct kr_dns_servers sv = {.addrs = &s->addr, .n = 1, .timeout_ms = s->timeout_ms};
    struct kr_dns_result *res = NULL;
    int rc = kr_dns_query_sync(&sv, NULL, s->zone, KR_DNS_SOA, &res);
    if (rc)
        return rc;
    rc = KR_ENOENT;
    if (res->status != KR_DNS_OK) {
        snprintf(err, errlen, "SOA of %s: %s", s->zone, res->message);
    } else {
        /* A name below the apex (a query's name) gets its zone's SOA in
         * the authority section. */
        for (size_t i = 0; i < res->n_rrs + res->n_auth && rc; i++) {
            const struct kr_dns_rr *x = i < res->n_rrs ? &res->rrs[i] : &res->auth[i - res->n_rrs];
            if (x->type == KR_DNS_SOA) {
                snprintf(s->server_name, sizeof(s->server_name), "%s", x->target);
                snprintf(s->zone, sizeof(s->zone), "%s", x->owner); /* the apex, for logs */
                rc = 0;
            }
        }
        if (rc)
            snprintf(err, errlen, "%s has no SOA record at %s (wrong zone name?)", res->server,
                     s->zone);
    }
    kr_dns_result_free(res);
    return rc;
}

static void name_principal(struct kr_gss_sess *s)
{
    size_t n = strlen(s->server_name);
    if (n && s->server_name[n - 1] == '.')
        s->server_name[n - 1] = 0;
    const char *realm = strchr(s->principal, '@');
    snprintf(s->server_principal, sizeof(s->server_principal), "DNS/%s@%s", s->server_name,
             realm ? realm + 1 : "");
    uint32_t r = 0;
    RAND_bytes((uint8_t *)&r, sizeof(r));
    snprintf(s->key_name, sizeof(s->key_name), "%u.sig-%s.", r % 1000000000u, s->server_name);
}

/* One TKEY round trip: token out, server token back. */
static int tkey_round(struct kr_gss_sess *s, const gss_buffer_desc *tok, gss_buffer_desc *back,
                      char *err, size_t errlen)
{
    uint16_t id = 0;
    uint8_t *q = NULL, *rep = NULL;
    size_t ql, rl;
    RAND_bytes((uint8_t *)&id, sizeof(id));
    int rc = kr_tkey_query(id, s->key_name, kr_wall_s(), 86400, tok->value, tok->length, &q, &ql);
    if (rc)
        return rc;
    rc = kr_gssi_exchange(&s->addr, s->timeout_ms, q, ql, &rep, &rl, err, errlen);
    free(q);
    if (rc)
        return rc;
    struct kr_tkey_reply r;
    const char *why = "";
    rc = kr_tkey_parse(rep, rl, id, s->key_name, &r, &why);
    if (rc == 0 && r.error != 0) {
        snprintf(err, errlen, "TKEY with %s refused: TKEY error %s (%u)", s->server_name,
                 kr_dns_rcode_name(r.error), r.error);
        rc = KR_ECRYPTO;
    } else if (rc == KR_ENOENT) {
        snprintf(err, errlen,
                 "TKEY with %s: %s answered %s without a key (does it accept GSS-TSIG?)",
                 s->server_name, s->server_name, kr_dns_rcode_name(r.rcode));
    } else if (rc) {
        snprintf(err, errlen, "TKEY with %s: malformed reply (%s)", s->server_name, why);
    } else if ((back->value = malloc(r.token_len ? r.token_len : 1)) != NULL) {
        /* A past or absent expiration (0) says nothing: GSSAPI's time rules. */
        s->tkey_expire = (int64_t)r.expiration > kr_wall_s() ? (int64_t)r.expiration : 0;
        memcpy(back->value, r.token, r.token_len);
        back->length = r.token_len;
    } else {
        rc = KR_ENOMEM;
    }
    free(rep);
    return rc;
}

/* gss_init_sec_context <-> TKEY until the context is complete. */
static int negotiate(struct kr_gss_sess *s, char *err, size_t errlen)
{
    OM_uint32 maj, min;
    gss_name_t target = GSS_C_NO_NAME;
    gss_buffer_desc tn = {strlen(s->server_principal), s->server_principal};
    gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER;
    int rc = 0;
    maj = gss_import_name(&min, &tn, GSS_KRB5_NT_PRINCIPAL_NAME, &target);
    if (GSS_ERROR(maj)) {
        kr_gssi_explain(s, "server principal", maj, min, err, errlen);
        return KR_EINVAL;
    }
    for (int round = 0; round < 8; round++) {
        /* No sequence flag: Windows rejects it (dns.md 2.10a). */
        maj = gss_init_sec_context(&min, s->cred, &s->ctx, target, (gss_OID)gss_mech_krb5,
                                   GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_INTEG_FLAG, 0,
                                   GSS_C_NO_CHANNEL_BINDINGS, in.length ? &in : GSS_C_NO_BUFFER,
                                   NULL, &out, NULL, NULL);
        free(in.value);
        in.value = NULL;
        in.length = 0;
        if (GSS_ERROR(maj)) {
            kr_gssi_explain(s, "security context with the DNS server", maj, min, err, errlen);
            rc = KR_ECRYPTO;
            break;
        }
        if (out.length) {
            rc = tkey_round(s, &out, &in, err, errlen);
            gss_release_buffer(&min, &out);
            if (rc)
                break;
        }
        if (maj == GSS_S_COMPLETE)
            break;
    }
    free(in.value);
    gss_release_name(&min, &target);
    if (!rc && maj != GSS_S_COMPLETE) {
        snprintf(err, errlen, "TKEY with %s did not complete", s->server_name);
        rc = KR_ECRYPTO;
    }
    return rc;
}

/* Negotiates a context and notes its lifetime; one debug line per TKEY
 * negotiation (tests count them: one context serves many messages). */
static int establish(struct kr_gss_sess *s, const char *reason, char *err, size_t errlen)
{
    uint64_t t0 = kr_now_us();
    s->tkey_expire = 0;
    int rc = negotiate(s, err, errlen);
    if (rc)
        return rc;
    s->established_us = kr_now_us();
    int64_t life = kr_gssi_left_s(s);
    s->margin_s = life / 4 < 300 ? life / 4 : 300;
    kr_log(KR_LOG_DEBUG,
           "event=gss_context zone=%s server_principal=%s key=%s reason=%s lifetime_s=%lld "
           "renew_before_s=%lld ms=%.1f",
           s->zone, s->server_principal, s->key_name, reason, (long long)life,
           (long long)s->margin_s, (double)(s->established_us - t0) / 1000.0);
    return 0;
}

int kr_gss_open(const struct kr_gss_opts *o, struct kr_gss_sess **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc = kr_gss_keytab_check(o->keytab, o->principal, err, errlen);
    if (rc)
        return rc;
    struct kr_gss_sess *s = calloc(1, sizeof(*s));
    if (!s)
        return KR_ENOMEM;
    snprintf(s->keytab, sizeof(s->keytab), "%s", o->keytab);
    snprintf(s->principal, sizeof(s->principal), "%s", o->principal);
    if (kr_dns_name_absolute(o->zone, s->zone) != 0) {
        snprintf(err, errlen, "\"%s\" is not a valid zone name", o->zone ? o->zone : "");
        free(s);
        return KR_EINVAL;
    }
    snprintf(s->ccache, sizeof(s->ccache), "MEMORY:kmsrelay-%d-%u", (int)getpid(),
             atomic_fetch_add(&ccache_seq, 1));
    s->addr = o->server;
    s->timeout_ms = o->timeout_ms ? o->timeout_ms : 5000;
    s->clock_offset = o->clock_offset;
    s->ctx = GSS_C_NO_CONTEXT;
    s->cred = GSS_C_NO_CREDENTIAL;
    if (o->server_name)
        snprintf(s->server_name, sizeof(s->server_name), "%s", o->server_name);
    else if ((rc = find_server(s, err, errlen)) != 0)
        goto fail;
    name_principal(s);
    if ((rc = kr_gssi_acquire(s, err, errlen)) || (rc = establish(s, "new", err, errlen)))
        goto fail;
    *out = s;
    return 0;
fail:
    kr_gss_close(s);
    return rc;
}

static int renew_ticket(struct kr_gss_sess *s, char *err, size_t errlen)
{
    OM_uint32 min;
    if (s->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&min, &s->cred);
    s->cred = GSS_C_NO_CREDENTIAL;
    kr_gssi_forget(s); /* the new context must not reuse the old service ticket */
    return kr_gssi_acquire(s, err, errlen);
}

/* Backs off after a failed negotiation: 1 s, doubling to 60 s. */
static void renew_failed(struct kr_gss_sess *s, const char *reason, const char *err)
{
    unsigned n = s->renew_failures < 6 ? s->renew_failures : 6;
    uint64_t wait_s = (1u << n) < 60 ? (1u << n) : 60;
    s->renew_failures++;
    s->renew_retry_us = kr_now_us() + wait_s * 1000000;
    snprintf(s->renew_err, sizeof(s->renew_err), "%s", err);
    char q[sizeof(s->renew_err) + 8];
    kr_log(KR_LOG_WARN,
           "event=gss_context_failed zone=%s server=%s reason=%s retry_s=%llu error=%s", s->zone,
           s->server_name, reason, (unsigned long long)wait_s, kr_logfmt_value(err, q, sizeof(q)));
}

int kr_gss_reopen(struct kr_gss_sess *s, const char *reason, char *err, size_t errlen)
{
    OM_uint32 min;
    uint64_t now = kr_now_us();
    if (now < s->renew_retry_us) {
        /* The same text each time: the service logs repeats as repeats. */
        snprintf(err, errlen, "%s (negotiation backing off)", s->renew_err);
        return KR_ECRYPTO;
    }
    /* The old context stays usable until the new one is complete. */
    gss_ctx_id_t old = s->ctx;
    char old_key[sizeof(s->key_name)];
    int64_t old_expire = s->tkey_expire;
    snprintf(old_key, sizeof(old_key), "%s", s->key_name);
    s->ctx = GSS_C_NO_CONTEXT;
    name_principal(s); /* a fresh key name: the old one may linger on the server */
    int rc = 0;
    if (strcmp(reason, "expiring") == 0 || s->cred == GSS_C_NO_CREDENTIAL)
        rc = renew_ticket(s, err, errlen);
    if (!rc)
        rc = establish(s, reason, err, errlen);
    if (rc) {
        if (s->ctx != GSS_C_NO_CONTEXT)
            gss_delete_sec_context(&min, &s->ctx, GSS_C_NO_BUFFER);
        s->ctx = old;
        s->tkey_expire = old_expire;
        snprintf(s->key_name, sizeof(s->key_name), "%s", old_key);
        renew_failed(s, reason, err);
        return rc;
    }
    if (old != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&min, &old, GSS_C_NO_BUFFER);
    s->renew_failures = 0;
    s->renew_retry_us = 0;
    return 0;
}

int64_t kr_gssi_left_s(const struct kr_gss_sess *s)
{
    OM_uint32 min, t = 0;
    if (s->ctx == GSS_C_NO_CONTEXT || GSS_ERROR(gss_context_time(&min, s->ctx, &t)))
        return 0; /* GSS_S_CONTEXT_EXPIRED included */
    int64_t left = t == GSS_C_INDEFINITE ? INT64_MAX : (int64_t)t;
    if (s->tkey_expire && s->tkey_expire - kr_wall_s() < left)
        left = s->tkey_expire - kr_wall_s();
    return left > 0 ? left : 0;
}

int kr_gssi_ensure(struct kr_gss_sess *s, char *err, size_t errlen)
{
    int64_t left = kr_gssi_left_s(s);
    if (left > s->margin_s)
        return 0;
    int rc = kr_gss_reopen(s, "expiring", err, errlen);
    if (rc && left > 0) { /* the old context still works for now */
        kr_log(KR_LOG_DEBUG, "event=gss_context_kept zone=%s left_s=%lld", s->zone,
               (long long)left);
        return 0;
    }
    return rc;
}

void kr_gss_close(struct kr_gss_sess *s)
{
    OM_uint32 min;
    if (!s)
        return;
    if (s->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&min, &s->ctx, GSS_C_NO_BUFFER);
    if (s->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&min, &s->cred);
    kr_gssi_forget(s);
    free(s);
}

const char *kr_gss_server_principal(const struct kr_gss_sess *s)
{
    return s->server_principal;
}
