/*
 * html.c - HTML escaping for the status page (see html.h for the rules).
 *
 * A small UTF-8 decoder is needed anyway to find C1 controls and bidi
 * characters, so invalid sequences are replaced here too: a browser would
 * show U+FFFD for them, but only after guessing, and the page must not
 * depend on a guess.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "exposition/html.h"

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Length of the valid UTF-8 sequence at s (at most n bytes) and its code
 * point in *cp; 0 when the bytes at s start no valid sequence. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len;
    uint32_t c;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        c = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        c = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0; /* a continuation byte, 0xC0/0xC1 (overlong) or 0xF5.. */
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

/* Characters that are valid but must not reach the page as themselves. */
static bool hidden(uint32_t c)
{
    return (c >= 0x80 && c <= 0x9F) ||     /* C1 controls */
           (c >= 0x202A && c <= 0x202E) || /* bidi embeddings and overrides */
           (c >= 0x2066 && c <= 0x2069) || /* bidi isolates */
           c == 0x200E || c == 0x200F;     /* LRM, RLM */
}

/* The Unicode control picture for a C0 control or DEL, as UTF-8. */
static void control_picture(struct evbuffer *b, unsigned char c)
{
    uint32_t cp = c == 0x7F ? 0x2421 : 0x2400u + c;
    unsigned char u[3] = {(unsigned char)(0xE0 | (cp >> 12)),
                          (unsigned char)(0x80 | ((cp >> 6) & 0x3F)),
                          (unsigned char)(0x80 | (cp & 0x3F))};
    evbuffer_add(b, u, sizeof(u));
}

void mx_html_n(struct evbuffer *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: bytes before i to copy as they are */

    while (i < n) {
        const char *ent = NULL;
        uint32_t cp = 0;
        size_t len = utf8_seq(p + i, n - i, &cp);
        switch (len ? cp : 0xFFFFFFFF) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#39;";
            break;
        default:
            if (len && cp >= 0x20 && cp != 0x7F && !hidden(cp)) {
                i += len;
                run += len;
                continue;
            }
        }
        evbuffer_add(b, p + i - run, run);
        run = 0;
        if (ent)
            evbuffer_add(b, ent, strlen(ent));
        else if (len == 1)
            control_picture(b, p[i]);
        else
            evbuffer_add(b, REPLACEMENT, sizeof(REPLACEMENT) - 1);
        i += len ? len : 1;
    }
    evbuffer_add(b, p + i - run, run);
}

void mx_html(struct evbuffer *b, const char *s)
{
    if (s)
        mx_html_n(b, s, strlen(s));
}
