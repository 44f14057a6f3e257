/* test_termsafe.c - kr_term_safe(): client-chosen text (workstation names)
 * made safe for the operator's terminal (issue 11 item 13). */
#include <string.h>

#include <CUnit/CUnit.h>

#include "kmsrelay/termsafe.h"
#include "testutil.h"

static void expect(const char *in, const char *want)
{
    char out[256];
    const char *got = kr_term_safe(in, out, sizeof(out));
    CU_ASSERT_PTR_EQUAL(got, out);
    CU_ASSERT_STRING_EQUAL(got, want);
}

static void test_escapes(void)
{
    expect("pc-1.example.test", "pc-1.example.test");
    expect(NULL, "");
    /* title change, bell, clear screen, carriage return: all inert */
    expect("\x1b]0;owned\x07", "\\x1b]0;owned\\x07");
    expect("a\x1b[2Jb\rc\nd\te\x7f", "a\\x1b[2Jb\\x0dc\\x0ad\\x09e\\x7f");
    expect("back\\slash", "back\\\\slash");
    /* UTF-8 text is kept; C1 CSI (U+009B) and stray bytes are escaped */
    expect("K\xc3\xb6ln-\xe6\x9d\xb1\xe4\xba\xac-\xf0\x9f\x96\xa5",
           "K\xc3\xb6ln-\xe6\x9d\xb1\xe4\xba\xac-\xf0\x9f\x96\xa5");
    expect("x\xc2\x9b"
           "2Jy",
           "x\\xc2\\x9b2Jy");
    expect("\x9b\xff\xc3", "\\x9b\\xff\\xc3");
    expect("\xe0\x80\xaf", "\\xe0\\x80\\xaf"); /* overlong */
    expect("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* surrogate */
}

static void test_bounds(void)
{
    char out[8];
    /* never a cut escape: "ab" + "\x1b" needs 6 + NUL; the next does not fit */
    CU_ASSERT_STRING_EQUAL(kr_term_safe("ab\x1b\x1b", out, sizeof(out)), "ab\\x1b");
    /* never a cut character */
    CU_ASSERT_STRING_EQUAL(kr_term_safe("abcdef\xc3\xb6", out, sizeof(out)), "abcdef");
    CU_ASSERT_STRING_EQUAL(kr_term_safe("abc", out, 1), "");
    CU_ASSERT_STRING_EQUAL(kr_term_safe("abc", out, 0), "");
    /* the documented worst case fits: 4 * len + 1 */
    char in[64], big[4 * 63 + 1];
    memset(in, 0x1b, 63);
    in[63] = 0;
    CU_ASSERT_EQUAL(strlen(kr_term_safe(in, big, sizeof(big))), 4 * 63);
}

KR_SUITE(termsafe)
{
    CU_pSuite s = CU_add_suite("termsafe", NULL, NULL);
    CU_add_test(s, "control characters escaped, UTF-8 kept", test_escapes);
    CU_add_test(s, "bounded output", test_bounds);
}
