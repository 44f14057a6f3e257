/*
 * csv.h - one RFC 4180 field writer for every CSV kmsrelay produces (the
 * report, the clients list, kmsrelayctl's tables), so quoting and the
 * CSV-injection guard cannot drift apart.
 *
 * Ownership: the writer only borrows `in`; output goes to the caller's sink.
 */
#ifndef KMSRELAY_CSV_H
#define KMSRELAY_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*kr_csv_put)(void *ctx, const char *p, size_t n);

/* Writes `in` (NULL = empty) as one field: quoted when it holds a comma, a
 * quote, CR or LF, with quotes doubled. With `guard`, a value that starts
 * like a spreadsheet formula (= + - @ TAB CR) gets a leading apostrophe, the
 * usual CSV-injection guard for text that came from the network (workstation
 * names). No separator is written. */
void kr_csv_field(const char *in, bool guard, kr_csv_put put, void *ctx);

/* kr_csv_field into a stdio stream. */
void kr_csv_fput(FILE *f, const char *in, bool guard);

#endif
