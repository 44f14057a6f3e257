/* test_aes.c - our AES-128 (src/kms/aes.c): FIPS-197 answers, agreement with
 * OpenSSL on random keys and data, and the KMS V6 key-schedule tweak, under
 * both the AES-NI path (the default where the CPU has it) and the portable
 * tables; plus the two paths against each other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <openssl/evp.h>

#include "kmsrelay/aes.h"
#include "kmsrelay/bytes.h"
#include "testutil.h"

/* Deterministic xorshift64*, so a failure can be reproduced. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static void rnd(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        p[i] = (uint8_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 56);
    }
}

static void hex(const char *h, uint8_t *out, size_t n)
{
    CU_ASSERT_EQUAL_FATAL(kr_hex_decode(h, out, n), (long)n);
}

/* FIPS-197 Appendix C.1 (AES-128). */
static void test_fips_c1(void)
{
    uint8_t key[16], pt[16], ct[16], out[16];
    hex("000102030405060708090a0b0c0d0e0f", key, 16);
    hex("00112233445566778899aabbccddeeff", pt, 16);
    hex("69c4e0d86a7b0430d8cdb78070b4c55a", ct, 16);
    struct kr_aes k;
    kr_aes_init(&k, key, 0);
    kr_aes_encrypt_block(&k, pt, out);
    CU_ASSERT(memcmp(out, ct, 16) == 0);
    kr_aes_decrypt_block(&k, ct, out);
    CU_ASSERT(memcmp(out, pt, 16) == 0);
    /* In place. */
    memcpy(out, pt, 16);
    kr_aes_encrypt_block(&k, out, out);
    CU_ASSERT(memcmp(out, ct, 16) == 0);
}

/* FIPS-197 Appendix A.1: expansion of 2b7e1516 28aed2a6 abf71588 09cf4f3c. */
static void test_fips_a1(void)
{
    static const struct {
        int i;
        const char *w;
    } words[] = {
        {0, "2b7e1516"},  {4, "a0fafe17"},  {5, "88542cb1"},  {7, "2a6c7605"},
        {8, "f2c295f2"},  {11, "7359f67f"}, {12, "3d80477d"}, {16, "ef44a541"},
        {20, "d4d1c6f8"}, {32, "ead27321"}, {36, "ac7766f3"}, {39, "575c006e"},
        {40, "d014f9a8"}, {41, "c9ee2589"}, {42, "e13f0cc8"}, {43, "b6630ca6"},
    };
    uint8_t key[16];
    hex("2b7e151628aed2a6abf7158809cf4f3c", key, 16);
    struct kr_aes k;
    kr_aes_init(&k, key, 0);
    for (size_t n = 0; n < sizeof(words) / sizeof(words[0]); n++) {
        uint8_t w[4];
        hex(words[n].w, w, 4);
        CU_ASSERT(memcmp(k.rk + 4 * words[n].i, w, 4) == 0);
    }
}

static void ossl_ecb(const uint8_t key[16], const uint8_t in[16], uint8_t out[16])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l = 0;
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT(EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), NULL, key, NULL) == 1);
    EVP_CIPHER_CTX_set_padding(c, 0);
    CU_ASSERT(EVP_EncryptUpdate(c, out, &l, in, 16) == 1 && l == 16);
    EVP_CIPHER_CTX_free(c);
}

/* 10,000 random keys, each with a random block: equal to OpenSSL, and the
 * decryption inverts. */
static void test_random_vs_openssl(void)
{
    int bad = 0;
    for (int n = 0; n < 10000; n++) {
        uint8_t key[16], pt[16], ours[16], ref[16], back[16];
        rnd(key, 16);
        rnd(pt, 16);
        struct kr_aes k;
        kr_aes_init(&k, key, 0);
        kr_aes_encrypt_block(&k, pt, ours);
        ossl_ecb(key, pt, ref);
        kr_aes_decrypt_block(&k, ours, back);
        bad += memcmp(ours, ref, 16) != 0 || memcmp(back, pt, 16) != 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_cbc_vs_openssl(void)
{
    for (int n = 0; n < 200; n++) {
        uint8_t key[16], iv[16], pt[320], ours[320], ref[320], back[320];
        size_t len = 16 * (1 + (size_t)(n % 20));
        rnd(key, 16);
        rnd(iv, 16);
        rnd(pt, len);
        struct kr_aes k;
        kr_aes_init(&k, key, 0);
        CU_ASSERT_EQUAL(kr_aes_cbc_encrypt(&k, iv, pt, ours, len), 0);
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        int l1 = 0;
        CU_ASSERT_FATAL(c != NULL);
        EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, key, iv);
        EVP_CIPHER_CTX_set_padding(c, 0);
        CU_ASSERT(EVP_EncryptUpdate(c, ref, &l1, pt, (int)len) == 1 && (size_t)l1 == len);
        EVP_CIPHER_CTX_free(c);
        CU_ASSERT(memcmp(ours, ref, len) == 0);
        CU_ASSERT_EQUAL(kr_aes_cbc_decrypt(&k, iv, ours, back, len), 0);
        CU_ASSERT(memcmp(back, pt, len) == 0);
        /* In place, both ways. */
        memcpy(back, pt, len);
        kr_aes_cbc_encrypt(&k, iv, back, back, len);
        CU_ASSERT(memcmp(back, ref, len) == 0);
        kr_aes_cbc_decrypt(&k, iv, back, back, len);
        CU_ASSERT(memcmp(back, pt, len) == 0);
    }
    struct kr_aes k;
    uint8_t z[16] = {0}, buf[17];
    kr_aes_init(&k, z, 0);
    CU_ASSERT_EQUAL(kr_aes_cbc_encrypt(&k, z, buf, buf, 17), KR_EINVAL);
    CU_ASSERT_EQUAL(kr_aes_cbc_decrypt(&k, z, buf, buf, 15), KR_EINVAL);
}

/* kms-protocol.md 4.3: only byte 0 of round keys 4, 6 and 8 change. */
static void test_v6_tweak(void)
{
    for (int n = 0; n < 1000; n++) {
        uint8_t key[16], pt[16], ct[16], back[16];
        rnd(key, 16);
        rnd(pt, 16);
        struct kr_aes std, v6;
        kr_aes_init(&std, key, 0);
        kr_aes_init(&v6, key, 1);
        int other = 0;
        for (int i = 0; i < 176; i++) {
            uint8_t d = (uint8_t)(std.rk[i] ^ v6.rk[i]);
            uint8_t want = i == 64 ? 0x73 : i == 96 ? 0x09 : i == 128 ? 0xE4 : 0;
            other += d != want;
        }
        CU_ASSERT_EQUAL(other, 0);
        kr_aes_encrypt_block(&v6, pt, ct);
        kr_aes_decrypt_block(&v6, ct, back);
        CU_ASSERT(memcmp(back, pt, 16) == 0);
        uint8_t ct_std[16];
        kr_aes_encrypt_block(&std, pt, ct_std);
        CU_ASSERT(memcmp(ct, ct_std, 16) != 0);
    }
}

/* Whether /proc/cpuinfo lists the "aes" flag (x86 only: the fast path is
 * x86-only), independently of the library's own CPUID check. */
static int cpu_has_aesni(void)
{
#if defined(__x86_64__) || defined(__i386__)
    FILE *f = fopen("/proc/cpuinfo", "r");
    char *line = NULL;
    size_t cap = 0;
    int has = 0;
    CU_ASSERT_FATAL(f != NULL);
    while (!has && getline(&line, &cap, f) > 0)
        has = strncmp(line, "flags", 5) == 0 && (strstr(line, " aes ") || strstr(line, " aes\n"));
    free(line);
    fclose(f);
    return has;
#else
    return 0;
#endif
}

/* The fast path is what runs wherever the CPU has it: nothing is skipped
 * silently on this machine. */
static void test_impl_selected(void)
{
    int has = cpu_has_aesni();
    CU_ASSERT_EQUAL(kr_aes_set_impl(0), has);
    CU_ASSERT_EQUAL(kr_aes_set_impl(1), 0);
    CU_ASSERT_EQUAL(kr_aes_set_impl(0), has);
}

/* AES-NI against the tables on random keys (standard and V6), blocks and
 * CBC buffers of 1..20 blocks (so every tail after the four-block groups),
 * in place too: byte for byte equal. Decryption gets random input, not only
 * ciphertexts of its own encryption. */
static void test_aesni_vs_portable(void)
{
    int bad = 0;
    for (int n = 0; n < 2000; n++) {
        uint8_t key[16], iv[16], in[320], eb[2][16], db[2][16];
        uint8_t ec[2][320], dc[2][320], ei[2][320], di[2][320];
        size_t len = 16 * (1 + (size_t)(n % 20));
        rnd(key, 16);
        rnd(iv, 16);
        rnd(in, len);
        struct kr_aes k;
        kr_aes_init(&k, key, (n / 20) & 1);
        for (int p = 0; p < 2; p++) {
            kr_aes_set_impl(p);
            kr_aes_encrypt_block(&k, in, eb[p]);
            kr_aes_decrypt_block(&k, in, db[p]);
            CU_ASSERT_EQUAL(kr_aes_cbc_encrypt(&k, iv, in, ec[p], len), 0);
            CU_ASSERT_EQUAL(kr_aes_cbc_decrypt(&k, iv, in, dc[p], len), 0);
            memcpy(ei[p], in, len);
            kr_aes_cbc_encrypt(&k, iv, ei[p], ei[p], len);
            memcpy(di[p], in, len);
            kr_aes_cbc_decrypt(&k, iv, di[p], di[p], len);
        }
        bad += memcmp(eb[0], eb[1], 16) != 0 || memcmp(db[0], db[1], 16) != 0 ||
               memcmp(ec[0], ec[1], len) != 0 || memcmp(dc[0], dc[1], len) != 0 ||
               memcmp(ei[0], ec[0], len) != 0 || memcmp(di[0], dc[0], len) != 0 ||
               memcmp(ei[1], ec[1], len) != 0 || memcmp(di[1], dc[1], len) != 0;
    }
    kr_aes_set_impl(0);
    CU_ASSERT_EQUAL(bad, 0);
}

/* The known-answer and OpenSSL tests again with the tables forced. */
#define PORTABLE(fn)                                                                               \
    static void fn##_portable(void)                                                                \
    {                                                                                              \
        kr_aes_set_impl(1);                                                                        \
        fn();                                                                                      \
        kr_aes_set_impl(0);                                                                        \
    }
PORTABLE(test_fips_c1)
PORTABLE(test_random_vs_openssl)
PORTABLE(test_cbc_vs_openssl)
PORTABLE(test_v6_tweak)

KR_SUITE(aes)
{
    CU_pSuite s = CU_add_suite("aes", NULL, NULL);
    CU_add_test(s, "AES-NI selected where the CPU has it", test_impl_selected);
    CU_add_test(s, "FIPS-197 C.1 encrypt/decrypt", test_fips_c1);
    CU_add_test(s, "FIPS-197 A.1 key expansion", test_fips_a1);
    CU_add_test(s, "10000 random keys vs OpenSSL ECB", test_random_vs_openssl);
    CU_add_test(s, "CBC vs OpenSSL, in place", test_cbc_vs_openssl);
    CU_add_test(s, "V6 tweak: exactly 3 round-key bytes", test_v6_tweak);
    CU_add_test(s, "AES-NI equals the portable tables", test_aesni_vs_portable);
    CU_add_test(s, "portable: FIPS-197 C.1", test_fips_c1_portable);
    CU_add_test(s, "portable: 10000 random keys vs OpenSSL", test_random_vs_openssl_portable);
    CU_add_test(s, "portable: CBC vs OpenSSL, in place", test_cbc_vs_openssl_portable);
    CU_add_test(s, "portable: V6 tweak", test_v6_tweak_portable);
}
