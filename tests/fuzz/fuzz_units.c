/* fuzz_units.c - the duration and size parsers on arbitrary text; whatever
 * parses must format back to text that parses to the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmsrelay/units.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    /* An exact-size, NUL-terminated copy: the parsers take C strings. */
    char *text = malloc(n + 1);
    if (!text)
        return 0;
    memcpy(text, d, n);
    text[n] = '\0';

    uint64_t v, back;
    char buf[KR_DURATION_STRLEN > KR_SIZE_STRLEN ? KR_DURATION_STRLEN : KR_SIZE_STRLEN];
    const char *why = NULL;
    if (kr_parse_duration_ms(text, &v, &why) == 0) {
        kr_format_duration(v, buf, sizeof(buf));
        if (kr_parse_duration_ms(buf, &back, &why) != 0 || back != v)
            abort();
    } else if (!why) {
        abort(); /* every failure must say why */
    }
    why = NULL;
    if (kr_parse_size(text, &v, &why) == 0) {
        kr_format_size(v, buf, sizeof(buf));
        if (kr_parse_size(buf, &back, &why) != 0 || back != v)
            abort();
    } else if (!why) {
        abort();
    }
    free(text);
    return 0;
}
