/*
 * testutil.h - shared helpers for the CUnit suites: the conversation
 * vectors of tests/vectors/ loaded into memory.
 *
 * Ownership: kr_vec_load_all() allocates everything; kr_vec_free_all()
 * releases it. `expect` is a borrowed jansson node inside `root`.
 */
#ifndef KR_TESTUTIL_H
#define KR_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct kr_vec_pdu {
    char type[24]; /* "bind", "request", ... as the file names it */
    uint32_t call_id;
    uint8_t *bytes;
    size_t len;
};

struct kr_vec {
    char name[64]; /* file name without .json */
    json_t *root;
    json_t *expect; /* borrowed from root */
    struct kr_vec_pdu *c2s;
    size_t n_c2s;
    struct kr_vec_pdu *s2c;
    size_t n_s2c;
};

/* Defines a suite's registration function, found by the generated runner
 * table: KR_SUITE(rpc) { CU_pSuite s = CU_add_suite("rpc", 0, 0); ... } */
#define KR_SUITE(name)                                                                             \
    void kr_suite_##name(void);                                                                    \
    void kr_suite_##name(void)

/* Loads every *.json in KR_VECTORS_DIR (sorted by name). Returns 0 or -1
 * with a message on stderr. */
int kr_vec_load_all(struct kr_vec **out, size_t *n);
void kr_vec_free_all(struct kr_vec *v, size_t n);

/* Finds a vector by name, or NULL. */
const struct kr_vec *kr_vec_find(const struct kr_vec *v, size_t n, const char *name);

/* What was written into b, as a NUL-terminated malloc'ed string (the
 * caller frees it); frees b. */
struct evbuffer;
char *kr_test_buffer_text(struct evbuffer *b);

#endif
