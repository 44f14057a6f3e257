/*
 * link.c - the TLS links between relays: TLS 1.3 only, both sides present a
 * certificate from the private CA of peers.ca, and the name a peer claims
 * must be in its certificate (the dialer checks it during the handshake with
 * SSL_set1_host, the listener once the peer said HELLO, before anything it
 * sends is applied). Anything else is refused and logged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "kmsrelay/err.h"
#include "kmsrelay/log.h"
#include "peer/peer-internal.h"

static void tls_errors(char *out, size_t cap)
{
    unsigned long e;
    out[0] = '\0';
    while ((e = ERR_get_error()) != 0 && strlen(out) + 1 < cap) {
        char b[256];
        ERR_error_string_n(e, b, sizeof(b));
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? "; " : "", b);
    }
}

/* The connection of an SSL, in our own ex_data slot (libevent may use
 * the app data itself). */
static int conn_idx = -1;

static struct peer_conn *conn_of(SSL *ssl)
{
    return conn_idx >= 0 ? SSL_get_ex_data(ssl, conn_idx) : NULL;
}

static void set_conn(SSL *ssl, struct peer_conn *c)
{
    if (conn_idx < 0)
        conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (conn_idx >= 0)
        SSL_set_ex_data(ssl, conn_idx, c);
}

/* TLS 1.3 external PSKs are sessions: one for the cipher both sides use. */
static SSL_SESSION *psk_session(SSL *ssl, const struct kr_peers *P)
{
    static const unsigned char aes128gcm[2] = {0x13, 0x01};
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcm);
    SSL_SESSION *s = cipher ? SSL_SESSION_new() : NULL;
    if (s && (!SSL_SESSION_set1_master_key(s, P->psk, P->psk_len) ||
              !SSL_SESSION_set_cipher(s, cipher) ||
              !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))) {
        SSL_SESSION_free(s);
        s = NULL;
    }
    return s;
}

static int psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                   SSL_SESSION **sess)
{
    struct peer_conn *c = conn_of(ssl);
    *sess = NULL;
    if (!c)
        return 0;
    SSL_SESSION *s = psk_session(ssl, c->P);
    if (s && md && md != SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s))) {
        SSL_SESSION_free(s); /* a retry with another hash: no PSK for it */
        return 1;
    }
    *id = (const unsigned char *)c->P->self;
    *idlen = strlen(c->P->self);
    *sess = s;
    return s ? 1 : 0;
}

static int psk_find(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
    struct peer_conn *c = conn_of(ssl);
    *sess = NULL;
    if (!c || idlen == 0 || idlen >= sizeof(c->psk_id))
        return 1; /* unknown identity: no PSK, the handshake fails */
    memcpy(c->psk_id, id, idlen);
    c->psk_id[idlen] = '\0';
    *sess = psk_session(ssl, c->P);
    return *sess ? 1 : 0;
}

/* peers.psk_file: hex, whitespace around it ignored, at least 32 bytes. */
static int load_psk(struct kr_peers *P, const char *path, char *err, size_t errlen)
{
    char text[2 * sizeof(P->psk) + 64];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    if (f)
        fclose(f);
    if (!f) {
        snprintf(err, errlen, "peers.psk_file: %s: %s", path, strerror(errno));
        return KR_ECONFIG;
    }
    text[n] = '\0';
    char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    size_t len = strspn(p, "0123456789abcdefABCDEF");
    char *rest = p + len;
    while (*rest == ' ' || *rest == '\t' || *rest == '\n' || *rest == '\r')
        rest++;
    if (*rest || len % 2 || len < 64 || len / 2 > sizeof(P->psk)) {
        snprintf(err, errlen,
                 "peers.psk_file: %s: not one hex key of 32 to 128 bytes (openssl rand -hex 32)",
                 path);
        return KR_ECONFIG;
    }
    for (size_t i = 0; i < len / 2; i++) {
        char b[3] = {p[2 * i], p[2 * i + 1], 0};
        P->psk[i] = (uint8_t)strtoul(b, NULL, 16);
    }
    P->psk_len = len / 2;
    return 0;
}

int link_tls_init(struct kr_peers *P, const struct kr_conf *c, char *err, size_t errlen)
{
    char why[512];
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx) {
        snprintf(err, errlen, "peers: cannot create a TLS context");
        return KR_ECRYPTO;
    }
    P->ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    if (c->peer_psk_file[0]) {
        /* Every holder of the key is a peer; no certificates. */
        SSL_CTX_set_psk_use_session_callback(ctx, psk_use);
        SSL_CTX_set_psk_find_session_callback(ctx, psk_find);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        /* The PSK's hash must be the chosen suite's: offer only that one. */
        SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
        return load_psk(P, c->peer_psk_file, err, errlen);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ctx, 4);
    const char *what = NULL, *path = NULL;
    if (SSL_CTX_load_verify_locations(ctx, c->peer_ca, NULL) != 1)
        what = "peers.ca", path = c->peer_ca;
    else if (SSL_CTX_use_certificate_chain_file(ctx, c->peer_cert) != 1)
        what = "peers.cert", path = c->peer_cert;
    else if (SSL_CTX_use_PrivateKey_file(ctx, c->peer_key, SSL_FILETYPE_PEM) != 1)
        what = "peers.key", path = c->peer_key;
    else if (SSL_CTX_check_private_key(ctx) != 1)
        what = "peers.key (does not match peers.cert)", path = c->peer_key;
    if (what) {
        tls_errors(why, sizeof(why));
        snprintf(err, errlen, "%s: %s: %s", what, path, why);
        return KR_ECONFIG;
    }
    return 0;
}

static struct peer_conn *conn_new(struct kr_peers *P, struct bufferevent *bev, bool outbound)
{
    struct peer_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->P = P;
    c->bev = bev;
    c->outbound = outbound;
    c->next = P->conns;
    P->conns = c;
    return c;
}

static void conn_unlink(struct peer_conn *c)
{
    for (struct peer_conn **pp = &c->P->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
}

void link_close(struct peer_conn *c, const char *why)
{
    struct peer *p = c->peer;
    conn_unlink(c);
    if (c->bev) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        if (ssl)
            SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN); /* no close_notify wait */
        bufferevent_free(c->bev);
    }
    if (p && p->link == c)
        peer_link_down(p, why);
    free(c);
}

void link_free_all(struct kr_peers *P)
{
    if (P->lis)
        evconnlistener_free(P->lis);
    P->lis = NULL;
    while (P->conns) {
        struct peer_conn *c = P->conns;
        if (c->peer)
            c->peer->link = NULL; /* no reconnect, no log at shutdown */
        c->peer = NULL;
        link_close(c, NULL);
    }
}

void link_send(struct peer_conn *c, const uint8_t *frame, size_t len)
{
    bufferevent_write(c->bev, frame, len);
    if (c->peer)
        c->peer->st.bytes_out += len;
}

size_t link_out_pending(const struct peer_conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

bool link_cert_names(const struct peer_conn *c, const char *name)
{
    if (c->P->psk_len) /* the key is the proof; inbound, the identity must match */
        return c->outbound || strcmp(c->psk_id, name) == 0;
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    return cert && SSL_get_verify_result(ssl) == X509_V_OK &&
           X509_check_host(cert, name, strlen(name), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) ==
               1;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    sync_on_read(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct peer_conn *c = arg;
    if (c->hello_got)
        sync_pump(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct peer_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        /* Both sides send at least a heartbeat every PEER_HEARTBEAT_S (the
         * read timeout set in setup_bev): a silent link is a dead one, a
         * partition sends no FIN. */
        c->tls_up = true;
        sync_on_tls_up(c);
        return;
    }
    char why[300] = "";
    unsigned long e = bufferevent_get_openssl_error(bev);
    if (what & BEV_EVENT_TIMEOUT) {
        snprintf(why, sizeof(why), "nothing received for %d s", PEER_DEAD_S);
    } else if (e) {
        ERR_error_string_n(e, why, sizeof(why));
    } else if (what & BEV_EVENT_EOF) {
        snprintf(why, sizeof(why), "closed by the peer");
    } else {
        int en = EVUTIL_SOCKET_ERROR();
        snprintf(why, sizeof(why), "%s", en ? evutil_socket_error_to_string(en) : "link error");
    }
    if (!c->tls_up && e) {
        /* The handshake failed: a wrong certificate, CA or name, or no TLS 1.3. */
        const char *who = c->peer ? c->peer->name : "?";
        kr_log(KR_LOG_WARN, "event=peer_refused peer=%s remote=%s reason=\"TLS handshake: %s\"",
               who, c->remote, why);
        if (c->peer)
            c->peer->st.refused++;
        else
            c->P->refused++;
    }
    link_close(c, why);
}

static void setup_bev(struct peer_conn *c)
{
    struct timeval tv = {PEER_DEAD_S, 0}; /* also bounds a stalled handshake */
    bufferevent_set_timeouts(c->bev, &tv, NULL);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, 256 * 1024, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

void link_dial(struct peer *p)
{
    struct kr_peers *P = p->P;
    SSL *ssl = SSL_new(P->ctx);
    if (!ssl)
        return peer_link_down(p, "cannot create a TLS session");
    SSL_set1_host(ssl, p->name); /* the certificate must name the peer */
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        P->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return peer_link_down(p, "out of memory");
    }
    struct peer_conn *c = conn_new(P, bev, true);
    if (!c) {
        bufferevent_free(bev);
        return peer_link_down(p, "out of memory");
    }
    c->peer = p;
    p->link = c;
    set_conn(ssl, c);
    kr_addr_format((const struct sockaddr *)&p->addr.ss, c->remote);
    setup_bev(c);
    if (bufferevent_socket_connect(bev, (const struct sockaddr *)&p->addr.ss, (int)p->addr.len) !=
        0)
        link_close(c, "connect failed");
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct kr_peers *P = arg;
    SSL *ssl = SSL_new(P->ctx);
    if (!ssl) {
        evutil_closesocket(fd);
        return;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        P->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        return;
    }
    struct peer_conn *c = conn_new(P, bev, false);
    if (!c) {
        bufferevent_free(bev);
        return;
    }
    set_conn(ssl, c);
    kr_addr_format(sa, c->remote);
    setup_bev(c);
}

int link_listen(struct kr_peers *P, const struct kr_conf *c, char *err, size_t errlen)
{
    struct kr_addr a;
    memset(&a, 0, sizeof(a));
    const char *why = "";
    if (kr_addr_parse(c->peer_listen, 0, &a, &why) != 0) {
        snprintf(err, errlen, "peers.listen: \"%s\" is not an address", c->peer_listen);
        return KR_ECONFIG;
    }
    P->lis = evconnlistener_new_bind(
        P->base, on_accept, P, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        16, (const struct sockaddr *)&a.ss, (int)a.len);
    if (!P->lis) {
        snprintf(err, errlen, "peers.listen %s: %s", c->peer_listen, strerror(errno));
        return KR_EIO;
    }
    kr_log(KR_LOG_INFO, "event=peers_listen addr=%s", c->peer_listen);
    return 0;
}
