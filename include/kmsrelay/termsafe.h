/*
 * termsafe.h - escaping for human-readable output. Workstation names (and
 * anything else a client puts in a request) reach the operator's terminal
 * through kmsrelayctl's tables and `pin show`; an ESC, BEL or CR in them
 * must not move the cursor, retitle or clear the terminal.
 *
 * Ownership: borrows `in`, writes the caller's buffer.
 */
#ifndef KMSRELAY_TERMSAFE_H
#define KMSRELAY_TERMSAFE_H

#include <stddef.h>

/*
 * Copies `in` (NULL = "") into out: control characters (C0, DEL, and the C1
 * controls U+0080..U+009F such as CSI), bytes that are not well-formed UTF-8
 * and the backslash become \xNN (\\ for the backslash), as the logfmt log
 * writes them; valid UTF-8 text is kept. Cuts at a character or escape
 * boundary when out is too small (4 * strlen(in) + 1 always suffices; cap 0
 * writes nothing). Returns out (or "" when cap is 0).
 */
const char *kr_term_safe(const char *in, char *out, size_t cap);

#endif
