/*
 * key.c - TSIG keys in BIND's tsig-keygen format:
 *
 *     key "kms-proxy-key." {
 *             algorithm hmac-sha256;
 *             secret "t41f/LggFK+03OF7k6cTwWplqIR1UBV5+3jBDdJSwwI=";
 *     };
 *
 * A small tokenizer for that subset of named.conf (strings, words, braces,
 * semicolons, #, // and C comments). The file must not be accessible by
 * group or others: a secret that every local user can read is no secret.
 * Nothing here ever puts the secret into an error text.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnsclient/message.h"
#include "kmsrelay/err.h"

#define KEY_FILE_MAX 65536

struct lex {
    const char *p, *end;
    int line;
    char tok[300];
    int kind; /* 0 end, 'w' word, 's' string, or the punctuation char */
};

static int lex_next(struct lex *x, const char **why)
{
    for (;;) {
        while (x->p < x->end && (*x->p == ' ' || *x->p == '\t' || *x->p == '\r' || *x->p == '\n')) {
            x->line += *x->p == '\n';
            x->p++;
        }
        if (x->p >= x->end) {
            x->kind = 0;
            return 0;
        }
        if (*x->p == '#' || (*x->p == '/' && x->p + 1 < x->end && x->p[1] == '/')) {
            while (x->p < x->end && *x->p != '\n')
                x->p++;
            continue;
        }
        if (*x->p == '/' && x->p + 1 < x->end && x->p[1] == '*') {
            x->p += 2;
            while (x->p + 1 < x->end && !(x->p[0] == '*' && x->p[1] == '/')) {
                x->line += *x->p == '\n';
                x->p++;
            }
            if (x->p + 1 >= x->end)
                return kr_fail(why, KR_EMALF, "unterminated comment");
            x->p += 2;
            continue;
        }
        break;
    }
    char c = *x->p;
    size_t n = 0;
    if (c == '{' || c == '}' || c == ';') {
        x->kind = c;
        x->tok[0] = c;
        x->tok[1] = '\0';
        x->p++;
        return 0;
    }
    if (c == '"') {
        x->p++;
        while (x->p < x->end && *x->p != '"' && *x->p != '\n') {
            if (n + 1 >= sizeof(x->tok))
                return kr_fail(why, KR_EMALF, "quoted string too long");
            x->tok[n++] = *x->p++;
        }
        if (x->p >= x->end || *x->p != '"')
            return kr_fail(why, KR_EMALF, "unterminated string");
        x->p++;
        x->tok[n] = '\0';
        x->kind = 's';
        return 0;
    }
    while (x->p < x->end && !strchr(" \t\r\n{};\"#", *x->p)) {
        if ((unsigned char)*x->p < 0x20)
            return kr_fail(why, KR_EMALF, "control character");
        if (n + 1 >= sizeof(x->tok))
            return kr_fail(why, KR_EMALF, "word too long");
        x->tok[n++] = *x->p++;
    }
    x->tok[n] = '\0';
    x->kind = 'w';
    return 0;
}

static int expect(struct lex *x, int kind, const char **why, const char *msg)
{
    int rc = lex_next(x, why);
    if (rc)
        return rc;
    if (x->kind != kind)
        return kr_fail(why, KR_EMALF, msg);
    return 0;
}

static bool b64_ok(const char *s)
{
    size_t n = strlen(s), pad = 0;
    if (n == 0 || n % 4 != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '=') {
            if (i < n - 2)
                return false;
            pad++;
        } else if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '+' || c == '/')) {
            return false;
        }
    }
    return n / 4 * 3 - pad >= 10; /* a short secret is a typo, not a key */
}

static int algorithm(const char *in, char out[32], const char **why)
{
    static const char *const ok[] = {"hmac-sha256", "hmac-sha512", "hmac-sha1"};
    char a[40];
    size_t n = strlen(in);
    snprintf(a, sizeof(a), "%.*s", (int)(n && in[n - 1] == '.' ? n - 1 : n), in);
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcasecmp(a, ok[i]) == 0) {
            snprintf(out, 32, "%s.", ok[i]);
            return 0;
        }
    if (strcasecmp(a, "hmac-sha384") == 0 || strcasecmp(a, "hmac-sha224") == 0)
        return kr_fail(why, KR_EUNSUP,
                       "algorithm not supported by ldns (use hmac-sha256: tsig-keygen -a "
                       "hmac-sha256)");
    if (strcasecmp(a, "gss-tsig") == 0)
        return kr_fail(why, KR_EUNSUP, "GSS-TSIG is not supported (see deploy/ for Windows DNS)");
    return kr_fail(why, KR_EUNSUP, "unknown or unsupported TSIG algorithm (use hmac-sha256)");
}

/* One `{ algorithm X; secret "Y"; }` block after the key name. */
static int key_body(struct lex *x, struct kr_dns_key *k, const char **why)
{
    int rc, have_alg = 0, have_secret = 0;
    if ((rc = expect(x, '{', why, "expected '{' after the key name")))
        return rc;
    for (;;) {
        if ((rc = lex_next(x, why)))
            return rc;
        if (x->kind == '}')
            break;
        if (x->kind != 'w')
            return kr_fail(why, KR_EMALF, "expected 'algorithm' or 'secret'");
        if (strcmp(x->tok, "algorithm") == 0) {
            if ((rc = lex_next(x, why)))
                return rc;
            if (x->kind != 'w' && x->kind != 's')
                return kr_fail(why, KR_EMALF, "expected an algorithm name");
            if ((rc = algorithm(x->tok, k->algorithm, why)))
                return rc;
            have_alg = 1;
        } else if (strcmp(x->tok, "secret") == 0) {
            if ((rc = lex_next(x, why)))
                return rc;
            if (x->kind != 's' && x->kind != 'w')
                return kr_fail(why, KR_EMALF, "expected the secret in quotes");
            if (strlen(x->tok) >= sizeof(k->secret) || !b64_ok(x->tok))
                return kr_fail(why, KR_EMALF, "the secret is not valid base64 (or too short)");
            memcpy(k->secret, x->tok, strlen(x->tok) + 1);
            have_secret = 1;
        } else {
            return kr_fail(why, KR_EMALF, "unknown statement in a key block");
        }
        if ((rc = expect(x, ';', why, "expected ';'")))
            return rc;
    }
    if ((rc = expect(x, ';', why, "expected ';' after '}'")))
        return rc;
    if (!have_alg)
        return kr_fail(why, KR_EMALF, "key without an algorithm");
    if (!have_secret)
        return kr_fail(why, KR_EMALF, "key without a secret");
    return 0;
}

int kr_dns_key_parse(const char *text, size_t len, const char *name, struct kr_dns_key *out,
                     int *line, const char **why)
{
    struct lex x = {text, text + len, 1, {0}, 0};
    struct kr_dns_key k;
    char want[KR_DNS_NAME_MAX] = "";
    int rc = 0, found = 0, seen = 0;

    memset(out, 0, sizeof(*out));
    if (name && *name && kr_dns_name_absolute(name, want) != 0)
        return kr_fail(why, KR_EINVAL, "bad key name requested");
    for (;;) {
        memset(&k, 0, sizeof(k));
        if ((rc = lex_next(&x, why)))
            break;
        if (x.kind == 0)
            break;
        if (x.kind != 'w' || strcmp(x.tok, "key") != 0) {
            rc = kr_fail(why, KR_EMALF, "expected a 'key \"name\" { ... };' statement");
            break;
        }
        if ((rc = lex_next(&x, why)))
            break;
        if ((x.kind != 's' && x.kind != 'w') || kr_dns_name_absolute(x.tok, k.name) != 0) {
            rc = kr_fail(why, KR_EMALF, "bad key name");
            break;
        }
        for (char *p = k.name; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        if ((rc = key_body(&x, &k, why)))
            break;
        seen++;
        if (want[0] ? kr_dns_name_equal(want, k.name) : !found) {
            *out = k;
            found++;
        }
        if (!want[0] && seen > 1) {
            rc = kr_fail(why, KR_EINVAL, "the file holds more than one key: name the one to use");
            break;
        }
    }
    explicit_bzero(&k, sizeof(k));
    explicit_bzero(x.tok, sizeof(x.tok));
    if (rc == 0 && !found)
        rc = kr_fail(why, KR_ENOENT, want[0] ? "no key of that name in the file" : "no key found");
    if (rc != 0) {
        kr_dns_key_clear(out);
        if (line)
            *line = x.line;
    }
    return rc;
}

int kr_dns_key_load(const char *path, const char *name, struct kr_dns_key *out, char *err,
                    size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    const char *why = "";
    int line = 0, rc;

    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open key file %s: %s", path, strerror(errno));
        return KR_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "key file %s is not a regular file", path);
        close(fd);
        return KR_EINVAL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen,
                 "key file %s is accessible by group or others (mode %04o): chmod 600 %s", path,
                 (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return KR_EINVAL;
    }
    if (st.st_size > KEY_FILE_MAX || !(buf = malloc((size_t)st.st_size + 1))) {
        snprintf(err, errlen, "key file %s is too large", path);
        close(fd);
        return KR_EINVAL;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    rc = kr_dns_key_parse(buf, got, name, out, &line, &why);
    explicit_bzero(buf, got);
    free(buf);
    if (rc == KR_EMALF)
        snprintf(err, errlen, "key file %s:%d: %s", path, line, why);
    else if (rc != 0)
        snprintf(err, errlen, "key file %s: %s", path, why);
    return rc;
}

void kr_dns_key_clear(struct kr_dns_key *k)
{
    if (k)
        explicit_bzero(k, sizeof(*k));
}
