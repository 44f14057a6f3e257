/*
 * aes.c - AES-128 (FIPS-197) with the KMS V6 key-schedule tweak. Only V6
 * needs it: OpenSSL cannot be given modified round keys (kms-protocol.md
 * 4.3, 4.6), so V5 goes through EVP and V6 through here.
 *
 * One 1 KB lookup table per direction fuses SubBytes with MixColumns (the
 * other three columns are rotations of it); a byte-at-a-time version cost
 * about 700 ns per block, this one about 130 ns. The state is four
 * little-endian column words, row r of a column in bits 8r..8r+7.
 *
 * Decryption is the "equivalent inverse cipher": it needs InvMixColumns of
 * round keys 1..9, computed in kr_aes_init from the already tweaked keys, so
 * it equals the straightforward inverse cipher over the tweaked keys
 * (kms-protocol.md 4.3, point 5).
 *
 * On x86 CPUs with AES-NI the same round keys go to AESENC/AESDEC instead
 * (chosen once, at the first kr_aes_init; the tables stay as the fallback):
 * AESDEC is one round of the equivalent inverse cipher, so drk serves both
 * paths unchanged. Measured (AMD EPYC VM, gcc 12 -O2), a 16-block CBC
 * decryption takes 2060 ns with the tables and 25 ns with AES-NI (four
 * blocks at a time; 52 ns one at a time); one block 140 ns and 14 ns; a
 * 16-block CBC encryption, which must chain, 2300 ns and 133 ns.
 */
#include "kmsrelay/aes.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define KR_AESNI 1
#include <wmmintrin.h>
#endif

#include "kmsrelay/err.h"

static const uint8_t sbox[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
};

static const uint8_t inv_sbox[256] = {
    0x52, 0x09, 0x6a, 0xd5, 0x30, 0x36, 0xa5, 0x38, 0xbf, 0x40, 0xa3, 0x9e, 0x81, 0xf3, 0xd7, 0xfb,
    0x7c, 0xe3, 0x39, 0x82, 0x9b, 0x2f, 0xff, 0x87, 0x34, 0x8e, 0x43, 0x44, 0xc4, 0xde, 0xe9, 0xcb,
    0x54, 0x7b, 0x94, 0x32, 0xa6, 0xc2, 0x23, 0x3d, 0xee, 0x4c, 0x95, 0x0b, 0x42, 0xfa, 0xc3, 0x4e,
    0x08, 0x2e, 0xa1, 0x66, 0x28, 0xd9, 0x24, 0xb2, 0x76, 0x5b, 0xa2, 0x49, 0x6d, 0x8b, 0xd1, 0x25,
    0x72, 0xf8, 0xf6, 0x64, 0x86, 0x68, 0x98, 0x16, 0xd4, 0xa4, 0x5c, 0xcc, 0x5d, 0x65, 0xb6, 0x92,
    0x6c, 0x70, 0x48, 0x50, 0xfd, 0xed, 0xb9, 0xda, 0x5e, 0x15, 0x46, 0x57, 0xa7, 0x8d, 0x9d, 0x84,
    0x90, 0xd8, 0xab, 0x00, 0x8c, 0xbc, 0xd3, 0x0a, 0xf7, 0xe4, 0x58, 0x05, 0xb8, 0xb3, 0x45, 0x06,
    0xd0, 0x2c, 0x1e, 0x8f, 0xca, 0x3f, 0x0f, 0x02, 0xc1, 0xaf, 0xbd, 0x03, 0x01, 0x13, 0x8a, 0x6b,
    0x3a, 0x91, 0x11, 0x41, 0x4f, 0x67, 0xdc, 0xea, 0x97, 0xf2, 0xcf, 0xce, 0xf0, 0xb4, 0xe6, 0x73,
    0x96, 0xac, 0x74, 0x22, 0xe7, 0xad, 0x35, 0x85, 0xe2, 0xf9, 0x37, 0xe8, 0x1c, 0x75, 0xdf, 0x6e,
    0x47, 0xf1, 0x1a, 0x71, 0x1d, 0x29, 0xc5, 0x89, 0x6f, 0xb7, 0x62, 0x0e, 0xaa, 0x18, 0xbe, 0x1b,
    0xfc, 0x56, 0x3e, 0x4b, 0xc6, 0xd2, 0x79, 0x20, 0x9a, 0xdb, 0xc0, 0xfe, 0x78, 0xcd, 0x5a, 0xf4,
    0x1f, 0xdd, 0xa8, 0x33, 0x88, 0x07, 0xc7, 0x31, 0xb1, 0x12, 0x10, 0x59, 0x27, 0x80, 0xec, 0x5f,
    0x60, 0x51, 0x7f, 0xa9, 0x19, 0xb5, 0x4a, 0x0d, 0x2d, 0xe5, 0x7a, 0x9f, 0x93, 0xc9, 0x9c, 0xef,
    0xa0, 0xe0, 0x3b, 0x4d, 0xae, 0x2a, 0xf5, 0xb0, 0xc8, 0xeb, 0xbb, 0x3c, 0x83, 0x53, 0x99, 0x61,
    0x17, 0x2b, 0x04, 0x7e, 0xba, 0x77, 0xd6, 0x26, 0xe1, 0x69, 0x14, 0x63, 0x55, 0x21, 0x0c, 0x7d,
};

/* Multiplication by x (0x02) in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1. */
static inline uint8_t xt(uint8_t a)
{
    return (uint8_t)((a << 1) ^ ((a & 0x80) ? 0x1b : 0x00));
}

static uint8_t gmul(uint8_t a, uint8_t b)
{
    uint8_t r = 0;
    for (; b; b >>= 1, a = xt(a))
        if (b & 1)
            r ^= a;
    return r;
}

static inline uint32_t pack(uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
    return (uint32_t)b0 | ((uint32_t)b1 << 8) | ((uint32_t)b2 << 16) | ((uint32_t)b3 << 24);
}

static inline uint32_t rotl(uint32_t v, int n)
{
    return (v << n) | (v >> (32 - n));
}

/* te[x]: MixColumns column of S(x) entering at row 0, (2s, s, s, 3s);
 * td[x]: InvMixColumns column of Si(x) at row 0, (14s, 9s, 13s, 11s). Row
 * r's column is the word rotated left by 8r bits. */
static uint32_t te[256], td[256];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int have_aesni; /* the CPU has it */
static int use_aesni;  /* and the tests did not turn it off */

/* Once, from the first kr_aes_init (every other entry point needs a key):
 * the tables are built even with AES-NI, since the tests can force them. */
static void global_init(void)
{
    for (int x = 0; x < 256; x++) {
        uint8_t s = sbox[x], i = inv_sbox[x];
        te[x] = pack(xt(s), s, s, (uint8_t)(xt(s) ^ s));
        td[x] = pack(gmul(i, 14), gmul(i, 9), gmul(i, 13), gmul(i, 11));
    }
#ifdef KR_AESNI
    have_aesni = __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse2");
#endif
    use_aesni = have_aesni;
}

int kr_aes_set_impl(int portable)
{
    pthread_once(&init_once, global_init);
    use_aesni = have_aesni && !portable;
    return use_aesni;
}

static inline uint32_t ld(const uint8_t *p)
{
    return pack(p[0], p[1], p[2], p[3]);
}

static inline void st(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
    p[3] = (uint8_t)(v >> 24);
}

/* InvMixColumns of one 4-byte column (for the decryption round keys). */
static void inv_mix_column(uint8_t *c)
{
    uint8_t a0 = c[0], a1 = c[1], a2 = c[2], a3 = c[3];
    c[0] = (uint8_t)(gmul(a0, 14) ^ gmul(a1, 11) ^ gmul(a2, 13) ^ gmul(a3, 9));
    c[1] = (uint8_t)(gmul(a0, 9) ^ gmul(a1, 14) ^ gmul(a2, 11) ^ gmul(a3, 13));
    c[2] = (uint8_t)(gmul(a0, 13) ^ gmul(a1, 9) ^ gmul(a2, 14) ^ gmul(a3, 11));
    c[3] = (uint8_t)(gmul(a0, 11) ^ gmul(a1, 13) ^ gmul(a2, 9) ^ gmul(a3, 14));
}

void kr_aes_init(struct kr_aes *k, const uint8_t key[16], int v6_tweak)
{
    static const uint8_t rcon[10] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36};
    pthread_once(&init_once, global_init);
    uint8_t *w = k->rk;
    memcpy(w, key, 16);
    for (int i = 4; i < 44; i++) {
        uint8_t t[4];
        memcpy(t, w + 4 * (i - 1), 4);
        if (i % 4 == 0) {
            uint8_t t0 = t[0];
            t[0] = (uint8_t)(sbox[t[1]] ^ rcon[i / 4 - 1]);
            t[1] = sbox[t[2]];
            t[2] = sbox[t[3]];
            t[3] = sbox[t0];
        }
        for (int j = 0; j < 4; j++)
            w[4 * i + j] = (uint8_t)(w[4 * (i - 4) + j] ^ t[j]);
    }
    if (v6_tweak) {
        /* After the expansion, not fed back into it (kms-protocol.md 4.3). */
        w[4 * 16] ^= 0x73;
        w[6 * 16] ^= 0x09;
        w[8 * 16] ^= 0xE4;
    }
    memcpy(k->drk, k->rk, sizeof(k->rk));
    for (int i = 16; i < 160; i += 4)
        inv_mix_column(k->drk + i);
}

static void sw_encrypt_block(const struct kr_aes *k, const uint8_t in[16], uint8_t out[16])
{
    const uint8_t *rk = k->rk;
    uint32_t s[4], t[4];
    for (int c = 0; c < 4; c++)
        s[c] = ld(in + 4 * c) ^ ld(rk + 4 * c);
    for (int r = 1; r < 10; r++) {
        rk += 16;
        for (int c = 0; c < 4; c++)
            t[c] = te[s[c] & 0xff] ^ rotl(te[(s[(c + 1) & 3] >> 8) & 0xff], 8) ^
                   rotl(te[(s[(c + 2) & 3] >> 16) & 0xff], 16) ^
                   rotl(te[s[(c + 3) & 3] >> 24], 24) ^ ld(rk + 4 * c);
        memcpy(s, t, sizeof(s));
    }
    rk += 16;
    for (int c = 0; c < 4; c++)
        st(out + 4 * c, pack(sbox[s[c] & 0xff], sbox[(s[(c + 1) & 3] >> 8) & 0xff],
                             sbox[(s[(c + 2) & 3] >> 16) & 0xff], sbox[s[(c + 3) & 3] >> 24]) ^
                            ld(rk + 4 * c));
}

static void sw_decrypt_block(const struct kr_aes *k, const uint8_t in[16], uint8_t out[16])
{
    const uint8_t *rk = k->drk + 160;
    uint32_t s[4], t[4];
    for (int c = 0; c < 4; c++)
        s[c] = ld(in + 4 * c) ^ ld(rk + 4 * c);
    for (int r = 9; r > 0; r--) {
        rk -= 16;
        for (int c = 0; c < 4; c++)
            t[c] = td[s[c] & 0xff] ^ rotl(td[(s[(c + 3) & 3] >> 8) & 0xff], 8) ^
                   rotl(td[(s[(c + 2) & 3] >> 16) & 0xff], 16) ^
                   rotl(td[s[(c + 1) & 3] >> 24], 24) ^ ld(rk + 4 * c);
        memcpy(s, t, sizeof(s));
    }
    rk -= 16;
    for (int c = 0; c < 4; c++)
        st(out + 4 * c,
           pack(inv_sbox[s[c] & 0xff], inv_sbox[(s[(c + 3) & 3] >> 8) & 0xff],
                inv_sbox[(s[(c + 2) & 3] >> 16) & 0xff], inv_sbox[s[(c + 1) & 3] >> 24]) ^
               ld(rk + 4 * c));
}

#ifdef KR_AESNI
/* AES-NI path. Loads and stores are unaligned: callers pass packet bytes.
 * The 11 round keys are loaded once per call into k[], not once per block. */
#define NI __attribute__((target("aes,sse2")))

NI static inline __m128i ni_ld(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

NI static inline void ni_st(uint8_t *p, __m128i v)
{
    _mm_storeu_si128((__m128i *)(void *)p, v);
}

NI static inline void ni_keys(const uint8_t *rk, __m128i k[11])
{
    for (int r = 0; r < 11; r++)
        k[r] = ni_ld(rk + 16 * r);
}

NI static inline __m128i ni_enc(const __m128i k[11], __m128i s)
{
    s = _mm_xor_si128(s, k[0]);
    for (int r = 1; r < 10; r++)
        s = _mm_aesenc_si128(s, k[r]);
    return _mm_aesenclast_si128(s, k[10]);
}

/* k[] from drk: round keys 1..9 already InvMixColumns'ed, as AESDEC wants. */
NI static inline __m128i ni_dec(const __m128i k[11], __m128i s)
{
    s = _mm_xor_si128(s, k[10]);
    for (int r = 9; r > 0; r--)
        s = _mm_aesdec_si128(s, k[r]);
    return _mm_aesdeclast_si128(s, k[0]);
}

NI static void ni_encrypt_block(const struct kr_aes *k, const uint8_t in[16], uint8_t out[16])
{
    __m128i rk[11];
    ni_keys(k->rk, rk);
    ni_st(out, ni_enc(rk, ni_ld(in)));
}

NI static void ni_decrypt_block(const struct kr_aes *k, const uint8_t in[16], uint8_t out[16])
{
    __m128i rk[11];
    ni_keys(k->drk, rk);
    ni_st(out, ni_dec(rk, ni_ld(in)));
}

/* Encryption chains, one block after the other. */
NI static void ni_cbc_encrypt(const struct kr_aes *k, const uint8_t iv[16], const uint8_t *in,
                              uint8_t *out, size_t len)
{
    __m128i rk[11], prev = ni_ld(iv);
    ni_keys(k->rk, rk);
    for (size_t off = 0; off < len; off += 16) {
        prev = ni_enc(rk, _mm_xor_si128(ni_ld(in + off), prev));
        ni_st(out + off, prev);
    }
}

/* Decryption does not chain, so four blocks go through the rounds side by
 * side: AESDEC's latency is several cycles, its throughput about one per
 * cycle. Named variables, not arrays: gcc -O2 does not unroll, and an array
 * version went through the stack and was slower than one block at a time.
 * Every ciphertext block is loaded before
 * its plaintext is stored, so in may equal out. */
NI static void ni_cbc_decrypt(const struct kr_aes *k, const uint8_t iv[16], const uint8_t *in,
                              uint8_t *out, size_t len)
{
    __m128i rk[11], prev = ni_ld(iv);
    ni_keys(k->drk, rk);
    size_t off = 0;
    for (; off + 64 <= len; off += 64) {
        __m128i c0 = ni_ld(in + off), c1 = ni_ld(in + off + 16);
        __m128i c2 = ni_ld(in + off + 32), c3 = ni_ld(in + off + 48);
        __m128i p0 = _mm_xor_si128(c0, rk[10]), p1 = _mm_xor_si128(c1, rk[10]);
        __m128i p2 = _mm_xor_si128(c2, rk[10]), p3 = _mm_xor_si128(c3, rk[10]);
        for (int r = 9; r > 0; r--) {
            p0 = _mm_aesdec_si128(p0, rk[r]);
            p1 = _mm_aesdec_si128(p1, rk[r]);
            p2 = _mm_aesdec_si128(p2, rk[r]);
            p3 = _mm_aesdec_si128(p3, rk[r]);
        }
        ni_st(out + off, _mm_xor_si128(_mm_aesdeclast_si128(p0, rk[0]), prev));
        ni_st(out + off + 16, _mm_xor_si128(_mm_aesdeclast_si128(p1, rk[0]), c0));
        ni_st(out + off + 32, _mm_xor_si128(_mm_aesdeclast_si128(p2, rk[0]), c1));
        ni_st(out + off + 48, _mm_xor_si128(_mm_aesdeclast_si128(p3, rk[0]), c2));
        prev = c3;
    }
    for (; off < len; off += 16) {
        __m128i c = ni_ld(in + off);
        ni_st(out + off, _mm_xor_si128(ni_dec(rk, c), prev));
        prev = c;
    }
}
#endif

void kr_aes_encrypt_block(const struct kr_aes *k, const uint8_t in[16], uint8_t out[16])
{
#ifdef KR_AESNI
    if (use_aesni) {
        ni_encrypt_block(k, in, out);
        return;
    }
#endif
    sw_encrypt_block(k, in, out);
}

void kr_aes_decrypt_block(const struct kr_aes *k, const uint8_t in[16], uint8_t out[16])
{
#ifdef KR_AESNI
    if (use_aesni) {
        ni_decrypt_block(k, in, out);
        return;
    }
#endif
    sw_decrypt_block(k, in, out);
}

int kr_aes_cbc_encrypt(const struct kr_aes *k, const uint8_t iv[16], const uint8_t *in,
                       uint8_t *out, size_t len)
{
    if (len % KR_AES_BLOCK)
        return KR_EINVAL;
#ifdef KR_AESNI
    if (use_aesni) {
        ni_cbc_encrypt(k, iv, in, out, len);
        return 0;
    }
#endif
    uint8_t prev[16];
    memcpy(prev, iv, 16);
    for (size_t off = 0; off < len; off += 16) {
        uint8_t x[16];
        for (int i = 0; i < 16; i++)
            x[i] = (uint8_t)(in[off + i] ^ prev[i]);
        sw_encrypt_block(k, x, out + off);
        memcpy(prev, out + off, 16);
    }
    return 0;
}

int kr_aes_cbc_decrypt(const struct kr_aes *k, const uint8_t iv[16], const uint8_t *in,
                       uint8_t *out, size_t len)
{
    if (len % KR_AES_BLOCK)
        return KR_EINVAL;
#ifdef KR_AESNI
    if (use_aesni) {
        ni_cbc_decrypt(k, iv, in, out, len);
        return 0;
    }
#endif
    uint8_t prev[16];
    memcpy(prev, iv, 16);
    for (size_t off = 0; off < len; off += 16) {
        uint8_t c[16], p[16];
        memcpy(c, in + off, 16); /* in may equal out: keep the ciphertext */
        sw_decrypt_block(k, c, p);
        for (int i = 0; i < 16; i++)
            out[off + i] = (uint8_t)(p[i] ^ prev[i]);
        memcpy(prev, c, 16);
    }
    return 0;
}
