/*
 * fuzz_diag.c - `kmsrelayctl decode`'s input: a conversation file (vector
 * JSON or hex lines) parsed, every PDU decoded, and the report printed.
 * Any input must give either a clear error or a decoded conversation.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct kr_diag_pdu *pdus = NULL;
    size_t n = 0;
    char err[256];
    if (kr_diag_parse(text, size, "fuzz", &pdus, &n, err, sizeof(err)) == 0) {
        json_t *d = kr_diag_decode(pdus, n);
        FILE *null = fopen("/dev/null", "w");
        if (d && null)
            kr_diag_print(null, d);
        if (null)
            fclose(null);
        json_decref(d);
        kr_diag_free(pdus, n);
    } else if (strncmp(err, "fuzz", 4) != 0) {
        abort(); /* every input error names its source */
    }
    free(text);
    return 0;
}
