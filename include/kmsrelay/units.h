/*
 * units.h - durations and sizes written with units, the one shared helper
 * behind every "10s", "5m", "45d", "256M" in the configuration and the CLI.
 *
 * Text syntax (locale independent, ASCII only):
 *
 *   duration := WS* ( NUMBER | part+ ) WS*     part := NUMBER UNIT
 *     UNIT is one of ms s m h d w (lower case: "M" could be read as months).
 *     A bare number means seconds ("30" == "30s"). Compound values list
 *     their units from largest to smallest, each at most once ("1h30m",
 *     "2d12h", "1s500ms"); "30m1h", "1m30m" and "1h30" are rejected so that
 *     a typo never silently means something else.
 *
 *   size := WS* NUMBER [UNIT] WS*
 *     UNIT is B, K, KB, KiB, M, MB, MiB, G, GB, GiB, T, TB or TiB, in any
 *     letter case. Every multiple is BINARY: K = KB = KiB = 1024 bytes,
 *     M = 1024^2, G = 1024^3, T = 1024^4. ("KB" meaning 1000 would be a trap
 *     for the one operator who cares; nobody sizes a store in powers of ten.)
 *     A bare number means bytes.
 *
 * NUMBER is one or more decimal digits: no sign, no fraction, no exponent,
 * no whitespace inside the value. Values that do not fit in 64 bits are
 * rejected, never wrapped.
 *
 * Both parsers return 0 or a negative KR_E* code: KR_EMALF for bad syntax,
 * KR_ETOOBIG when the value overflows uint64_t, KR_EINVAL for a NULL
 * argument. On failure `*why` (when `why` is not NULL) points at a static
 * reason and the out-parameter is left untouched.
 *
 * The formatters write the canonical text that the parsers read back to the
 * same value; they never fail and always NUL-terminate when cap > 0
 * (truncating like snprintf when cap is too small; KR_DURATION_STRLEN and
 * KR_SIZE_STRLEN are always enough).
 */
#ifndef KMSRELAY_UNITS_H
#define KMSRELAY_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Longest canonical texts plus the NUL: "213503982333d23h59m59s999ms" and
 * "18446744073709551615B". */
#define KR_DURATION_STRLEN 32
#define KR_SIZE_STRLEN 24

/* Parses a duration into milliseconds ("1h30m" -> 5400000, "10" -> 10000). */
int kr_parse_duration_ms(const char *text, uint64_t *out_ms, const char **why);

/* Parses a size into bytes ("256M" -> 268435456, "512" -> 512). */
int kr_parse_size(const char *text, uint64_t *out_bytes, const char **why);

/* Canonical duration text: whole weeks as "Nw"; otherwise days, hours,
 * minutes, seconds and milliseconds from largest to smallest with zero parts
 * left out ("45d", "1h30m", "250ms", "1s500ms"); zero is "0s". Weeks are
 * used only for whole weeks because "45d" reads better than "6w3d". */
void kr_format_duration(uint64_t ms, char *out, size_t cap);

/* Canonical size text: the largest of T, G, M, K that divides the value
 * exactly ("256M", "1536K"), otherwise bytes with a B ("1000B", "0B"). */
void kr_format_size(uint64_t bytes, char *out, size_t cap);

#endif
