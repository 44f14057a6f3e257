/*
 * crypt.h - internal: the two KMS ciphers behind one interface.
 *
 * Major version 5 uses the V5 key with standard AES-128 through OpenSSL EVP
 * (padding off; the codec checks padding itself). Major 6 and above use the
 * V6 key with the tweaked key schedule of our own aes.c, which EVP cannot
 * express (kms-protocol.md 4.2-4.3, 4.6). Major 4 is plaintext and never
 * reaches this file.
 *
 * Thread safety: all functions may be called from any thread. The V6 round
 * keys are expanded once; V5 keeps one set of EVP contexts per thread,
 * created on first use and freed when the thread exits.
 */
#ifndef KR_KMS_CRYPT_H
#define KR_KMS_CRYPT_H

#include <stddef.h>
#include <stdint.h>

extern const uint8_t kr_kms_key_v5[16];
extern const uint8_t kr_kms_key_v6[16];

/* 1 when `major` selects the V6 cipher, 0 for V5 (callers handle < 5). */
static inline int kr_kms_is_v6(uint16_t major)
{
    return major >= 6;
}

/* AES-128-CBC over whole blocks (len a multiple of 16, in may equal out),
 * no padding added or removed. Returns 0, KR_EINVAL or KR_ECRYPTO. */
int kr_kms_cbc_decrypt(int v6, const uint8_t iv[16], const uint8_t *in, uint8_t *out, size_t len);
int kr_kms_cbc_encrypt(int v6, const uint8_t iv[16], const uint8_t *in, uint8_t *out, size_t len);

/* One raw block decryption (the CMID hot path). Returns 0 or KR_ECRYPTO. */
int kr_kms_block_decrypt(int v6, const uint8_t in[16], uint8_t out[16]);

#endif
