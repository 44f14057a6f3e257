/*
 * fuzz_html.c - the status page's HTML escaping (src/exposition/html.c) on
 * any bytes: the output must be valid UTF-8 with no '<', '>', '"', '\'',
 * no control character, and '&' only starting one of the five entities it
 * writes, whatever the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "exposition/html.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80                    ? 1
                 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
                 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
                 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                                : 0;
    if (!len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return 0;
    mx_html_n(b, (const char *)data, size);
    size_t n = evbuffer_get_length(b);
    const unsigned char *o = evbuffer_pullup(b, -1);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_len(o + i, n - i);
        if (!len || (o[i] < 0x20 || o[i] == 0x7F || o[i] == '<' || o[i] == '>' || o[i] == '"' ||
                     o[i] == '\''))
            abort();
        if (o[i] == '&') {
            size_t k = 0;
            while (k < 5 && strncmp((const char *)o + i, ents[k], strlen(ents[k])) != 0)
                k++;
            if (k == 5 || i + strlen(ents[k]) > n)
                abort();
            len = strlen(ents[k]);
        }
        i += len;
    }
    evbuffer_free(b);
    return 0;
}
