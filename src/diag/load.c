/*
 * load.c - reading conversation files for the decoder: the shared vector
 * JSON format, or one hex PDU per line.
 */
#include "kmsrelay/diag.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/bytes.h"
#include "kmsrelay/err.h"

#define DIAG_MAX_PDUS 4096
#define DIAG_MAX_FILE (16u << 20)

void kr_diag_free(struct kr_diag_pdu *pdus, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(pdus[i].bytes);
    free(pdus);
}

/* Appends one hex PDU; returns 0 or a KR_E* code with err filled in. */
static int add_hex(struct kr_diag_pdu **v, size_t *n, enum kr_dir dir, const char *hex,
                   size_t hexlen, const char *name, long line, char *err, size_t errlen)
{
    if (*n >= DIAG_MAX_PDUS) {
        snprintf(err, errlen, "%s:%ld: more than %d PDUs", name, line, DIAG_MAX_PDUS);
        return KR_ETOOBIG;
    }
    char *copy = strndup(hex, hexlen);
    uint8_t *bytes = malloc(hexlen / 2 + 1);
    struct kr_diag_pdu *nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!copy || !bytes || !nv) {
        free(copy);
        free(bytes);
        if (nv)
            *v = nv;
        snprintf(err, errlen, "%s: out of memory", name);
        return KR_ENOMEM;
    }
    *v = nv;
    long got = kr_hex_decode(copy, bytes, hexlen / 2 + 1);
    free(copy);
    if (got < 0) {
        free(bytes);
        snprintf(err, errlen, "%s:%ld: not a hex PDU (odd length or a non-hex character)", name,
                 line);
        return KR_EMALF;
    }
    nv[*n].dir = dir;
    nv[*n].bytes = bytes;
    nv[*n].len = (size_t)got;
    (*n)++;
    return 0;
}

static int parse_json_list(json_t *root, const char *key, enum kr_dir dir, struct kr_diag_pdu **v,
                           size_t *n, const char *name, char *err, size_t errlen)
{
    json_t *arr = json_object_get(root, key);
    if (!arr)
        return 0;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s: \"%s\" must be a list of PDUs", name, key);
        return KR_EMALF;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *hex = json_string_value(json_object_get(e, "hex"));
        if (!hex) {
            snprintf(err, errlen, "%s: %s[%zu] has no \"hex\" string", name, key, i);
            return KR_EMALF;
        }
        int rc = add_hex(v, n, dir, hex, strlen(hex), name, (long)i + 1, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* Interleaves the two directions as a conversation runs: every client PDU is
 * followed by the next server PDU (each bind, alter_context and request of
 * KMS gets exactly one answer). */
static void interleave(struct kr_diag_pdu *v, size_t n)
{
    if (n == 0)
        return;
    struct kr_diag_pdu *tmp = malloc(n * sizeof(*v));
    if (!tmp)
        return; /* keep the grouped order; still correct, less readable */
    size_t c = 0, s = 0, o = 0;
    while (c < n && v[c].dir != KR_DIR_C2S)
        c++;
    while (s < n && v[s].dir != KR_DIR_S2C)
        s++;
    while (c < n || s < n) {
        if (c < n) {
            tmp[o++] = v[c++];
            while (c < n && v[c].dir != KR_DIR_C2S)
                c++;
        }
        if (s < n) {
            tmp[o++] = v[s++];
            while (s < n && v[s].dir != KR_DIR_S2C)
                s++;
        }
    }
    memcpy(v, tmp, o * sizeof(*v));
    free(tmp);
}

static int parse_json(const char *text, size_t len, const char *name, struct kr_diag_pdu **v,
                      size_t *n, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s:%d: %s", name, jerr.line, jerr.text);
        return KR_EMALF;
    }
    int rc = KR_EMALF;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: expected a JSON object with PDU lists", name);
    } else if (!json_object_get(root, "client_to_server") &&
               !json_object_get(root, "server_to_client")) {
        snprintf(err, errlen, "%s: no \"client_to_server\" or \"server_to_client\" list", name);
    } else {
        rc = parse_json_list(root, "client_to_server", KR_DIR_C2S, v, n, name, err, errlen);
        if (!rc)
            rc = parse_json_list(root, "server_to_client", KR_DIR_S2C, v, n, name, err, errlen);
        if (!rc && *n == 0) {
            snprintf(err, errlen, "%s: the PDU lists are empty", name);
            rc = KR_EMALF;
        }
        if (!rc)
            interleave(*v, *n);
    }
    json_decref(root);
    return rc;
}

static int parse_lines(const char *text, size_t len, const char *name, struct kr_diag_pdu **v,
                       size_t *n, char *err, size_t errlen)
{
    long line = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        line++;
        const char *q = p, *e = eol;
        const char *hash = memchr(q, '#', (size_t)(e - q));
        if (hash)
            e = hash;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        while (e > q && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (e > q) {
            int rc = add_hex(v, n, KR_DIR_UNKNOWN, q, (size_t)(e - q), name, line, err, errlen);
            if (rc)
                return rc;
        }
        p = eol + 1;
    }
    if (*n == 0) {
        snprintf(err, errlen, "%s: no PDUs found (expected hex, one PDU per line)", name);
        return KR_EMALF;
    }
    return 0;
}

int kr_diag_parse(const char *text, size_t len, const char *name, struct kr_diag_pdu **out,
                  size_t *n, char *err, size_t errlen)
{
    struct kr_diag_pdu *v = NULL;
    size_t cnt = 0;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    int rc = (i < len && text[i] == '{') ? parse_json(text, len, name, &v, &cnt, err, errlen)
                                         : parse_lines(text, len, name, &v, &cnt, err, errlen);
    if (rc) {
        kr_diag_free(v, cnt);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int kr_diag_load(const char *path, struct kr_diag_pdu **out, size_t *n, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return KR_EIO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= DIAG_MAX_FILE) {
                snprintf(err, errlen, "%s: larger than %u MiB", path, DIAG_MAX_FILE >> 20);
                rc = KR_ETOOBIG;
                break;
            }
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                snprintf(err, errlen, "%s: out of memory", path);
                rc = KR_ENOMEM;
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        if (got == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
                rc = KR_EIO;
            }
            break;
        }
        len += got;
    }
    if (f != stdin)
        fclose(f);
    if (!rc)
        rc = kr_diag_parse(buf ? buf : "", len, path, out, n, err, errlen);
    free(buf);
    return rc;
}
