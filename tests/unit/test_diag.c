/*
 * test_diag.c - the conversation decoder behind `kmsrelayctl decode`.
 *
 * Acceptance: for every shared vector, every field under `expect` is
 * reproduced exactly, with the same key names. The expected values were
 * printed by the real client, so this checks the whole codec stack (RPC,
 * NDR32/NDR64, V4 plaintext, V5 AES-CBC, V6 tweaked AES) against an
 * independent implementation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/diag.h"
#include "kmsrelay/err.h"
#include "testutil.h"

static struct kr_vec *vecs;
static size_t nvecs;

static int setup(void)
{
    return kr_vec_load_all(&vecs, &nvecs);
}

static int teardown(void)
{
    kr_vec_free_all(vecs, nvecs);
    return 0;
}

/* Builds the decoder's input from a loaded vector, interleaved the way the
 * loader does it (client PDU, then its answer). */
static json_t *decode_vec(const struct kr_vec *v)
{
    size_t n = v->n_c2s + v->n_s2c;
    struct kr_diag_pdu *p = calloc(n, sizeof(*p));
    size_t o = 0;
    for (size_t i = 0; i < v->n_c2s || i < v->n_s2c; i++) {
        if (i < v->n_c2s)
            p[o++] = (struct kr_diag_pdu){KR_DIR_C2S, v->c2s[i].bytes, v->c2s[i].len};
        if (i < v->n_s2c)
            p[o++] = (struct kr_diag_pdu){KR_DIR_S2C, v->s2c[i].bytes, v->s2c[i].len};
    }
    json_t *d = kr_diag_decode(p, o);
    free(p); /* the bytes belong to the vector */
    return d;
}

/* Every key of `want` must be in `got` with an equal value. */
static int subset_equal(const char *vec, const char *what, size_t idx, json_t *want, json_t *got)
{
    const char *key;
    json_t *wv;
    int ok = 1;
    json_object_foreach(want, key, wv)
    {
        json_t *gv = json_object_get(got, key);
        if (!gv || !json_equal(wv, gv)) {
            char *ws = json_dumps(wv, JSON_ENCODE_ANY);
            char *gs = gv ? json_dumps(gv, JSON_ENCODE_ANY) : NULL;
            fprintf(stderr, "%s: %s[%zu].%s: want %s, got %s\n", vec, what, idx, key, ws,
                    gs ? gs : "(missing)");
            free(ws);
            free(gs);
            ok = 0;
        }
    }
    return ok;
}

static void test_vectors_reproduce_expect(void)
{
    CU_ASSERT_FATAL(nvecs >= 9);
    for (size_t i = 0; i < nvecs; i++) {
        const struct kr_vec *v = &vecs[i];
        json_t *d = decode_vec(v);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        json_t *want_req = json_object_get(v->expect, "requests");
        json_t *want_resp = json_object_get(v->expect, "responses");
        json_t *got_req = json_object_get(d, "requests");
        json_t *got_resp = json_object_get(d, "responses");
        CU_ASSERT_EQUAL(json_array_size(got_req), json_array_size(want_req));
        CU_ASSERT_EQUAL(json_array_size(got_resp), json_array_size(want_resp));
        for (size_t k = 0; k < json_array_size(want_req); k++)
            CU_ASSERT(subset_equal(v->name, "requests", k, json_array_get(want_req, k),
                                   json_array_get(got_req, k)));
        for (size_t k = 0; k < json_array_size(want_resp); k++)
            CU_ASSERT(subset_equal(v->name, "responses", k, json_array_get(want_resp, k),
                                   json_array_get(got_resp, k)));
        CU_ASSERT(json_equal(json_object_get(v->expect, "hresult"), json_object_get(d, "hresult")));
        /* Every PDU of a real capture decodes without error. */
        size_t j;
        json_t *p;
        json_array_foreach(json_object_get(d, "pdus"), j, p)
        {
            if (json_object_get(p, "error"))
                fprintf(stderr, "%s: pdu %zu: %s\n", v->name, j,
                        json_string_value(json_object_get(p, "error")));
            CU_ASSERT_PTR_NULL(json_object_get(p, "error"));
        }
        json_decref(d);
    }
}

/* Without its bind, the decoder must still tell NDR32 from NDR64. */
static void test_requests_without_bind(void)
{
    const struct kr_vec *v = kr_vec_find(vecs, nvecs, "v6_ndr64_two_requests");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    struct kr_diag_pdu p[2] = {{KR_DIR_UNKNOWN, v->c2s[3].bytes, v->c2s[3].len},
                               {KR_DIR_UNKNOWN, v->s2c[3].bytes, v->s2c[3].len}};
    json_t *d = kr_diag_decode(p, 2);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(d, "requests")), 1);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(d, "responses")), 1);
    json_t *pdu0 = json_array_get(json_object_get(d, "pdus"), 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(pdu0, "ndr")), "NDR64");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(pdu0, "dir")), "c2s");
    json_decref(d);
}

static void test_hex_lines_and_errors(void)
{
    const struct kr_vec *v = kr_vec_find(vecs, nvecs, "v4_win7pro_ndr32");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    size_t cap = 8 * (v->c2s[1].len + v->s2c[1].len) + 256;
    char *text = malloc(cap);
    char *w = text;
    w += sprintf(w, "# a V4 request and its response\n");
    for (size_t i = 0; i < v->c2s[1].len; i++)
        w += sprintf(w, "%02x", v->c2s[1].bytes[i]);
    w += sprintf(w, "  # request\n\n");
    for (size_t i = 0; i < v->s2c[1].len; i++)
        w += sprintf(w, "%02X", v->s2c[1].bytes[i]);
    w += sprintf(w, "\n0500000310000000\n"); /* truncated header: an error entry */
    struct kr_diag_pdu *pdus;
    size_t n;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(kr_diag_parse(text, strlen(text), "mem", &pdus, &n, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(n, 3);
    json_t *d = kr_diag_decode(pdus, n);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(d, "requests")), 1);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(d, "responses")), 1);
    json_t *bad = json_array_get(json_object_get(d, "pdus"), 2);
    CU_ASSERT_PTR_NOT_NULL(json_object_get(bad, "error"));
    json_decref(d);
    kr_diag_free(pdus, n);
    free(text);

    /* Input errors name the file and line. */
    CU_ASSERT_EQUAL(kr_diag_parse("05000b\nzz\n", 10, "f.txt", &pdus, &n, err, sizeof(err)),
                    KR_EMALF);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "f.txt:2"));
    CU_ASSERT_EQUAL(kr_diag_parse("{\"x\":1}", 7, "f.json", &pdus, &n, err, sizeof(err)), KR_EMALF);
    CU_ASSERT_EQUAL(kr_diag_parse("{broken", 7, "f.json", &pdus, &n, err, sizeof(err)), KR_EMALF);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "f.json:"));
    CU_ASSERT_EQUAL(
        kr_diag_parse("{\"client_to_server\": []}", 24, "e.json", &pdus, &n, err, sizeof(err)),
        KR_EMALF); /* found by fuzz_diag: an empty list */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty"));
    CU_ASSERT_EQUAL(kr_diag_parse("  \n# only a comment\n", 20, "e", &pdus, &n, err, sizeof(err)),
                    KR_EMALF);
}

KR_SUITE(diag)
{
    CU_pSuite s = CU_add_suite("diag", setup, teardown);
    CU_add_test(s, "vectors reproduce expect", test_vectors_reproduce_expect);
    CU_add_test(s, "requests without their bind", test_requests_without_bind);
    CU_add_test(s, "hex lines and input errors", test_hex_lines_and_errors);
}
