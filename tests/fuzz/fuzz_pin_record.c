/*
 * fuzz_pin_record.c - the stored pin record (src/store/pin_record.c).
 * Property: whatever decodes re-encodes, and the re-encoding decodes to the
 * very same pin (decode zeroes its output, so memcmp is exact).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    uint8_t *buf = malloc(n ? n : 1); /* exact size: ASan sees any overread */
    if (!buf)
        return 0;
    if (n)
        memcpy(buf, d, n);
    struct kr_pin a, b;
    const char *why = NULL;
    if (kr_pin_decode(buf, n, &a, &why) == 0) {
        uint8_t enc[KR_PIN_REC_MAX];
        size_t len = 0;
        if (kr_pin_encode(&a, enc, sizeof(enc), &len) != 0)
            abort(); /* a decoded pin must be storable */
        if (kr_pin_decode(enc, len, &b, &why) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
            abort();
    }
    free(buf);
    return 0;
}
