/*
 * html.h - text for the status page's HTML (status.c): every string that
 * did not come from this program (workstation names and CMIDs from
 * clients, host names, DNS messages and records) goes through mx_html().
 *
 * What it writes, so that text can never become markup and stays visible:
 *   & < > " '          -> &amp; &lt; &gt; &quot; &#39; (safe in element
 *                         content and in quoted attribute values)
 *   C0 controls, DEL   -> their Unicode control pictures (U+2400..U+241F,
 *                         U+2421): a tab or an escape byte in a name shows
 *                         as a symbol instead of vanishing or moving text
 *   C1 controls, bidi  -> U+FFFD (bidi overrides and isolates could make a
 *   embeddings/overrides  name read differently from what it is)
 *   invalid UTF-8      -> U+FFFD for each byte that starts no valid sequence
 *                         (overlong forms, surrogates, > U+10FFFF, truncated)
 * Everything else (valid UTF-8) is copied as is.
 *
 * Ownership: writes append to the caller's evbuffer; nothing is kept.
 */
#ifndef KR_EXPOSITION_HTML_H
#define KR_EXPOSITION_HTML_H

#include <stddef.h>

struct evbuffer;

/* Appends s (NUL-terminated; NULL writes nothing) escaped. */
void mx_html(struct evbuffer *b, const char *s);
/* Appends the n bytes at s escaped (NUL bytes included: as U+2400). */
void mx_html_n(struct evbuffer *b, const char *s, size_t n);

#endif
