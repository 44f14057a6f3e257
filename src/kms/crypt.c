/*
 * crypt.c - V5 through OpenSSL EVP, V6 through our tweaked AES (crypt.h).
 *
 * EVP contexts are cached per thread because setting one up (cipher fetch,
 * key expansion) costs far more than the single block the CMID hot path
 * needs; see the numbers in the kms module report. The daemon is
 * single-threaded, the load generator may not be, hence _Thread_local plus a
 * pthread key whose destructor frees a thread's contexts when it exits.
 */
#include "kms/crypt.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kmsrelay/aes.h"
#include "kmsrelay/err.h"

/* Public keys (kms-protocol.md 4.2; vlmcsd crypto.c, py-kms RequestV5/V6). */
const uint8_t kr_kms_key_v5[16] = {0xCD, 0x7E, 0x79, 0x6F, 0x2A, 0xB2, 0x5D, 0xCB,
                                   0x55, 0xFF, 0xC8, 0xEF, 0x83, 0x64, 0xC4, 0x70};
const uint8_t kr_kms_key_v6[16] = {0xA9, 0x4A, 0x41, 0x95, 0xE2, 0x01, 0x43, 0x2D,
                                   0x9B, 0xCB, 0x46, 0x04, 0x05, 0xD8, 0x4A, 0x21};

enum { CTX_ECB_DEC, CTX_CBC_DEC, CTX_CBC_ENC, CTX_COUNT };

struct evp_cache {
    EVP_CIPHER_CTX *ctx[CTX_COUNT];
};

static struct kr_aes v6_key;
static pthread_key_t cache_key;
static int cache_key_ok;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Thread_local struct evp_cache *tls_cache;

static void cache_free(void *p)
{
    struct evp_cache *c = p;
    if (!c)
        return;
    for (int i = 0; i < CTX_COUNT; i++)
        EVP_CIPHER_CTX_free(c->ctx[i]);
    free(c);
}

static void init_once(void)
{
    kr_aes_init(&v6_key, kr_kms_key_v6, 1);
    cache_key_ok = pthread_key_create(&cache_key, cache_free) == 0;
}

static EVP_CIPHER_CTX *make_ctx(const EVP_CIPHER *cipher, int enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return NULL;
    if (EVP_CipherInit_ex(ctx, cipher, NULL, kr_kms_key_v5, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* This thread's V5 context of the given kind, created on first use. */
static EVP_CIPHER_CTX *v5_ctx(int which)
{
    if (!tls_cache) {
        struct evp_cache *c = calloc(1, sizeof(*c));
        if (!c)
            return NULL;
        c->ctx[CTX_ECB_DEC] = make_ctx(EVP_aes_128_ecb(), 0);
        c->ctx[CTX_CBC_DEC] = make_ctx(EVP_aes_128_cbc(), 0);
        c->ctx[CTX_CBC_ENC] = make_ctx(EVP_aes_128_cbc(), 1);
        if (!c->ctx[CTX_ECB_DEC] || !c->ctx[CTX_CBC_DEC] || !c->ctx[CTX_CBC_ENC]) {
            cache_free(c);
            return NULL;
        }
        if (cache_key_ok)
            pthread_setspecific(cache_key, c);
        tls_cache = c;
    }
    return tls_cache->ctx[which];
}

static int v5_cbc(int enc, const uint8_t iv[16], const uint8_t *in, uint8_t *out, size_t len)
{
    pthread_once(&once, init_once);
    EVP_CIPHER_CTX *ctx = v5_ctx(enc ? CTX_CBC_ENC : CTX_CBC_DEC);
    if (!ctx)
        return KR_ECRYPTO;
    /* Re-initialising with only an IV keeps the expanded key. */
    int outl = 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, enc) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
        EVP_CipherUpdate(ctx, out, &outl, in, (int)len) != 1 || (size_t)outl != len)
        return KR_ECRYPTO;
    return 0;
}

int kr_kms_cbc_decrypt(int v6, const uint8_t iv[16], const uint8_t *in, uint8_t *out, size_t len)
{
    if (len % 16 || len > 4096)
        return KR_EINVAL;
    if (!v6)
        return v5_cbc(0, iv, in, out, len);
    pthread_once(&once, init_once);
    return kr_aes_cbc_decrypt(&v6_key, iv, in, out, len);
}

int kr_kms_cbc_encrypt(int v6, const uint8_t iv[16], const uint8_t *in, uint8_t *out, size_t len)
{
    if (len % 16 || len > 4096)
        return KR_EINVAL;
    if (!v6)
        return v5_cbc(1, iv, in, out, len);
    pthread_once(&once, init_once);
    return kr_aes_cbc_encrypt(&v6_key, iv, in, out, len);
}

int kr_kms_block_decrypt(int v6, const uint8_t in[16], uint8_t out[16])
{
    pthread_once(&once, init_once);
    if (v6) {
        kr_aes_decrypt_block(&v6_key, in, out);
        return 0;
    }
    EVP_CIPHER_CTX *ctx = v5_ctx(CTX_ECB_DEC);
    int outl = 0;
    if (!ctx || EVP_CipherUpdate(ctx, out, &outl, in, 16) != 1 || outl != 16)
        return KR_ECRYPTO;
    return 0;
}
