/*
 * session.c - a bound LDAP session to a domain controller (directory.h).
 *
 * We connect the socket ourselves (bounded connect, then SO_RCVTIMEO and
 * SO_SNDTIMEO so that no read or write of libldap can hang) and hand it to
 * ldap_init_fd with the DC's host name in the URL: with SASL_NOCANON the
 * GSSAPI service is ldap/<that name>, whatever the address resolves to
 * (the audit gets addresses from the config, and the DC's name from the
 * zone's SOA, as GSS-TSIG does). Cyrus SASL initiates with the default
 * credential: read.c makes the account's private ticket cache the thread's
 * default for the bind.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openldap.h>
#include <sasl/sasl.h>

#include "directory/directory-internal.h"
#include "kmsrelay/err.h"

/* A connected blocking socket whose reads and writes time out. */
static int connect_fd(const struct kr_addr *a, uint64_t ms, char *err, size_t errlen)
{
    char name[KR_ADDRSTRLEN];
    kr_addr_format((const struct sockaddr *)&a->ss, name);
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return snprintf(err, errlen, "LDAP: socket: %s", strerror(errno)), KR_EIO;
    int rc = connect(fd, (const struct sockaddr *)&a->ss, a->len);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        rc = poll(&p, 1, (int)ms);
        if (rc == 0)
            errno = ETIMEDOUT;
        else if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0)
            errno = soerr;
        rc = rc > 0 && soerr == 0 ? 0 : -1;
    }
    if (rc != 0) {
        snprintf(err, errlen,
                 "LDAP: cannot connect to %s: %s (the audit reads AD zones from a domain "
                 "controller's LDAP port)",
                 name, strerror(errno));
        close(fd);
        return KR_EIO;
    }
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Cyrus' GSSAPI asks for an authorization id: none (act as ourselves). */
static int interact(LDAP *ld, unsigned flags, void *defaults, void *in)
{
    (void)ld;
    (void)flags;
    (void)defaults;
    for (sasl_interact_t *i = in; i && i->id != SASL_CB_LIST_END; i++) {
        i->result = "";
        i->len = 0;
    }
    return LDAP_SUCCESS;
}

void kr_dir_error(LDAP *ld, int rc, const char *what, const struct kr_dir_opts *o, char *err,
                  size_t errlen)
{
    char *diag = NULL;
    ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    const char *hint = "";
    char h[400];
    if (diag && strstr(diag, "Server not found in Kerberos database")) {
        snprintf(h, sizeof(h),
                 " -- the KDC does not know ldap/%s: the zone's SOA MNAME is not the domain "
                 "controller's own name, or that DC lacks the ldap/ SPN",
                 o->server_name);
        hint = h;
    } else if (diag && strstr(diag, "Clock skew")) {
        hint = " -- clock skew beyond Kerberos' 5 minutes: synchronise this host's clock (NTP)";
    } else if (rc == LDAP_INSUFFICIENT_ACCESS) {
        hint = " -- the account may not read the zone (Authenticated Users can by default)";
    }
    snprintf(err, errlen, "LDAP %s on ldap://%s: %s%s%s%s", what, o->server_name,
             ldap_err2string(rc), diag && *diag ? " (" : "", diag && *diag ? diag : "",
             diag && *diag ? ")" : "");
    snprintf(err + strlen(err), errlen - strlen(err), "%s", hint);
    ldap_memfree(diag);
}

LDAP *kr_dir_open(const struct kr_dir_opts *o, uint64_t ms, char *err, size_t errlen)
{
    char url[KR_DNS_NAME_MAX + 32];
    LDAP *ld = NULL;
    int fd = connect_fd(&o->server, ms, err, errlen);
    if (fd < 0)
        return NULL;
    snprintf(url, sizeof(url), "ldap://%s:%u", o->server_name,
             (unsigned)kr_addr_port((const struct sockaddr *)&o->server.ss));
    if (ldap_init_fd(fd, LDAP_PROTO_TCP, url, &ld) != LDAP_SUCCESS) {
        close(fd);
        snprintf(err, errlen, "LDAP: cannot set up a session for %s", url);
        return NULL;
    }
    int v3 = LDAP_VERSION3;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    ldap_set_option(ld, LDAP_OPT_X_SASL_NOCANON, LDAP_OPT_ON);
    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
    int rc = ldap_sasl_interactive_bind_s(ld, NULL, "GSSAPI", NULL, NULL, LDAP_SASL_QUIET, interact,
                                          NULL);
    if (rc != LDAP_SUCCESS) {
        kr_dir_error(ld, rc, "SASL GSSAPI bind", o, err, errlen);
        ldap_unbind_ext_s(ld, NULL, NULL);
        return NULL;
    }
    return ld;
}

/* libldap writes with write(): a DC closing the connection would raise
 * SIGPIPE, which kills kmsrelayctl. It is blocked for this thread during
 * the call and one raised meanwhile is taken back (thread-directed, so
 * nobody else's is). */
void kr_dir_sigpipe_block(sigset_t *old)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, old);
}

void kr_dir_sigpipe_restore(const sigset_t *old)
{
    sigset_t s;
    struct timespec zero = {0, 0};
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    if (!sigismember(old, SIGPIPE))
        while (sigtimedwait(&s, NULL, &zero) > 0)
            ;
    pthread_sigmask(SIG_SETMASK, old, NULL);
}
