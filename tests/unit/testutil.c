/* testutil.c - loading the conversation vectors (tests/vectors/) for the unit suites. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "kmsrelay/bytes.h"

static int load_pdus(json_t *arr, struct kr_vec_pdu **out, size_t *n)
{
    size_t cnt = json_array_size(arr);
    struct kr_vec_pdu *p = calloc(cnt ? cnt : 1, sizeof(*p));
    if (!p)
        return -1;
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(arr, i);
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *hex = json_string_value(json_object_get(e, "hex"));
        if (!type || !hex) {
            free(p);
            return -1;
        }
        snprintf(p[i].type, sizeof(p[i].type), "%s", type);
        p[i].call_id = (uint32_t)json_integer_value(json_object_get(e, "call_id"));
        size_t cap = strlen(hex) / 2 + 1;
        p[i].bytes = malloc(cap);
        long got = p[i].bytes ? kr_hex_decode(hex, p[i].bytes, cap) : -1;
        if (got < 0) {
            for (size_t j = 0; j <= i; j++)
                free(p[j].bytes);
            free(p);
            return -1;
        }
        p[i].len = (size_t)got;
    }
    *out = p;
    *n = cnt;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct kr_vec *)a)->name, ((const struct kr_vec *)b)->name);
}

int kr_vec_load_all(struct kr_vec **out, size_t *n)
{
    DIR *d = opendir(KR_VECTORS_DIR);
    if (!d) {
        fprintf(stderr, "cannot open vectors dir %s\n", KR_VECTORS_DIR);
        return -1;
    }
    struct kr_vec *v = NULL;
    size_t cnt = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", KR_VECTORS_DIR, de->d_name);
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        if (!root) {
            fprintf(stderr, "%s:%d: %s\n", path, jerr.line, jerr.text);
            continue;
        }
        struct kr_vec *nv = realloc(v, (cnt + 1) * sizeof(*v));
        if (!nv) {
            json_decref(root);
            break;
        }
        v = nv;
        struct kr_vec *e = &v[cnt];
        memset(e, 0, sizeof(*e));
        snprintf(e->name, sizeof(e->name), "%.*s", (int)(l - 5), de->d_name);
        e->root = root;
        e->expect = json_object_get(root, "expect");
        if (load_pdus(json_object_get(root, "client_to_server"), &e->c2s, &e->n_c2s) ||
            load_pdus(json_object_get(root, "server_to_client"), &e->s2c, &e->n_s2c)) {
            fprintf(stderr, "%s: bad PDU list\n", path);
            json_decref(root);
            continue;
        }
        cnt++;
    }
    closedir(d);
    if (cnt == 0) {
        fprintf(stderr, "no vectors found in %s\n", KR_VECTORS_DIR);
        free(v);
        return -1;
    }
    qsort(v, cnt, sizeof(*v), cmp_name);
    *out = v;
    *n = cnt;
    return 0;
}

void kr_vec_free_all(struct kr_vec *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < v[i].n_c2s; j++)
            free(v[i].c2s[j].bytes);
        for (size_t j = 0; j < v[i].n_s2c; j++)
            free(v[i].s2c[j].bytes);
        free(v[i].c2s);
        free(v[i].s2c);
        json_decref(v[i].root);
    }
    free(v);
}

const struct kr_vec *kr_vec_find(const struct kr_vec *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

char *kr_test_buffer_text(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *t = calloc(1, n + 1);
    if (t)
        evbuffer_remove(b, t, n);
    evbuffer_free(b);
    return t;
}
