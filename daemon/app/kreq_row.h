/* kreq_row: the database's answer to a request's statement, decoded.
 *
 * Handlers never see libpq: kreq_exec() decodes the result into a
 * kreq_row_t (app/kreq_row.c is the one file of the request path that reads
 * a PGresult) and passes it to the handler's callback. */
#ifndef KIPD_APP_KREQ_ROW_H
#define KIPD_APP_KREQ_ROW_H

#include <jansson.h>
#include <stddef.h>

#include "app/kreq.h"

#define KREQ_ROW_MAX_FIELDS 8

/* The first row of an answer, as text. Every string is borrowed from the
 * database's answer and lives until the result callback returns. */
struct kreq_row_s {
  int n_rows;     /* rows the statement returned */
  int n_fields;   /* columns kept (at most KREQ_ROW_MAX_FIELDS) */
  const char *value[KREQ_ROW_MAX_FIELDS];  /* NULL for SQL NULL */
  size_t length[KREQ_ROW_MAX_FIELDS];
};

/* Column i of the answer's one row: borrowed text, or NULL when it is SQL
 * NULL, out of range, or the answer is not exactly one row. */
const char *kreq_row_text(const kreq_row_t *row, int i);

/* True when column i is the boolean true ("t"). */
bool kreq_row_bool(const kreq_row_t *row, int i);

/* For a row shaped (status, body, etag, location, user_id): */

/* Its status, or the request's ok_status when the column is NULL. */
int kreq_row_status(const kreq_t *r, const kreq_row_t *row);

/* Its body, parsed, with sealed CPR numbers revealed: new reference, or
 * NULL when the row has no body or it is not JSON. Also notes the row's user
 * for the access log. For handlers that render the answer in another
 * format. */
json_t *kreq_row_body(kreq_t *r, const kreq_row_t *row);

/* kreq_row_body() for a row whose body must be a JSON object: new
 * reference, or NULL after answering 500 (the caller then returns). */
json_t *kreq_row_object(kreq_t *r, const kreq_row_t *row);

/* Note the row's user_id (if any) for the access log. */
void kreq_row_note_user(kreq_t *r, const kreq_row_t *row);

#endif
