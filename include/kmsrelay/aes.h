/*
 * aes.h - our own AES-128 block cipher, needed only because KMS V6 modifies
 * the key schedule (kms-protocol.md 4.3), which OpenSSL's EVP cannot express.
 *
 * Standard AES-128 (v6_tweak = 0) is the FIPS-197 cipher and is tested against
 * OpenSSL; the tweak XORs expanded-key bytes 64, 96 and 128 with 0x73, 0x09
 * and 0xE4 after a standard expansion, and decryption is equivalent to the
 * straightforward inverse cipher over the same modified round keys (it runs
 * the table-driven equivalent inverse cipher on InvMixColumns of them).
 *
 * Not constant-time: the KMS keys are public constants, so there is no
 * secret to leak through timing. On x86 CPUs with AES-NI the instructions do
 * the rounds (selected once at run time); elsewhere portable C tables do.
 *
 * Ownership: plain values, nothing allocates.
 */
#ifndef KMSRELAY_AES_H
#define KMSRELAY_AES_H

#include <stddef.h>
#include <stdint.h>

#define KR_AES_BLOCK 16

struct kr_aes {
    uint8_t rk[176];  /* 11 round keys of 16 bytes, tweak applied */
    uint8_t drk[176]; /* decryption keys: rk with InvMixColumns on keys 1..9 */
};

/* Expands `key`; applies the KMS V6 tweak when v6_tweak is non-zero. */
void kr_aes_init(struct kr_aes *k, const uint8_t key[16], int v6_tweak);
void kr_aes_encrypt_block(const struct kr_aes *k, const uint8_t in[16], uint8_t out[16]);
void kr_aes_decrypt_block(const struct kr_aes *k, const uint8_t in[16], uint8_t out[16]);

/* Tests only: non-zero `portable` forces the portable table code, zero
 * restores the default (AES-NI when this CPU has it). Not thread-safe against
 * concurrent encryption; it exists so that the unit tests can compare both
 * paths. Returns 1 when AES-NI is in use afterwards, 0 otherwise. */
int kr_aes_set_impl(int portable);

/* CBC over whole blocks (len a multiple of 16; in and out may be the same
 * buffer). No padding is added or removed. Returns 0 or KR_EINVAL. */
int kr_aes_cbc_encrypt(const struct kr_aes *k, const uint8_t iv[16], const uint8_t *in,
                       uint8_t *out, size_t len);
int kr_aes_cbc_decrypt(const struct kr_aes *k, const uint8_t iv[16], const uint8_t *in,
                       uint8_t *out, size_t len);

#endif
