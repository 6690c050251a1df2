/* csv: writing CSV for spreadsheets with a Danish locale (docs/statistics.md,
 * "CSV"): fields separated by ';', records ended by CRLF, UTF-8 with a BOM
 * at the start of the text.
 *
 * Quoting follows RFC 4180 with ';' as the separator: a field that holds the
 * separator, a double quote, CR or LF, or that begins or ends with a space, is
 * put in double quotes and each double quote in it doubled. A text field that
 * begins with '=', '+', '-', '@', TAB or CR is written with a leading
 * apostrophe, so that a spreadsheet shows it as text instead of running it
 * as a formula (OWASP "CSV injection"); numbers are written with
 * csv_number() and never get one. Memory only; nothing is logged. */
#ifndef KIPD_UTIL_CSV_H
#define KIPD_UTIL_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/error.h"

typedef struct csv_s {
  FILE *out;      /* an open_memstream() over text/len */
  char *text;
  size_t len;
  bool at_start;  /* no field yet in this record */
  int error;
} csv_t;

/* Start a text with the BOM. Returns 0 or -ENOMEM. */
int csv_init(csv_t *c) KIPD_MUST_CHECK;

/* One text field (s borrowed; NULL writes an empty field). */
void csv_text(csv_t *c, const char *s);

/* One number: an integer, or with `decimals` digits after a decimal comma
 * ("0,875"). */
void csv_number(csv_t *c, double value, int decimals);

/* End the record (CRLF). */
void csv_end_record(csv_t *c);

/* The whole text: new in *text (free()), its length in *len. Returns 0 or
 * the first error (-ENOMEM); the writer is finished either way. */
int csv_finish(csv_t *c, char **text, size_t *len) KIPD_MUST_CHECK;

#endif
