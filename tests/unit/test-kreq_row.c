/* app/kreq_row: a libpq result decoded into the kreq_row_t handlers get.
 * The results are built in memory (PQmakeEmptyPGresult, PQsetvalue): no
 * server is involved. */
#include <libpq-fe.h>
#include <string.h>

#include "app/internal.h"
#include "tap.h"

/* A TUPLES_OK result with the given column names and rows of values (NULL:
 * SQL NULL). */
static PGresult *result(int n_cols, const char *const *names, int n_rows, const char *const *values) {
  PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
  PGresAttDesc attrs[8];
  memset(attrs, 0, sizeof(attrs));
  for (int i = 0; i < n_cols; i++) {
    attrs[i].name = (char *)names[i];
    attrs[i].typid = 25; /* text */
    attrs[i].typlen = -1;
    attrs[i].atttypmod = -1;
  }
  PQsetResultAttrs(res, n_cols, attrs);
  for (int r = 0; r < n_rows; r++)
    for (int c = 0; c < n_cols; c++) {
      const char *v = values[r * n_cols + c];
      PQsetvalue(res, r, c, (char *)v, v ? (int)strlen(v) : -1);
    }
  return res;
}

static const char *const generic[] = {"status", "body", "etag", "location", "user_id"};

static void test_generic_row(void) {
  const char *const vals[] = {NULL, "{\"id\":1}", "3", "/v1/plans/1", "11111111-1111-4111-8111-111111111111"};
  PGresult *res = result(5, generic, 1, vals);
  kreq_row_t row;
  kreq_row__decode(res, &row);
  tap_is_int(row.n_rows, 1, "one row");
  tap_is_int(row.n_fields, 5, "five columns");
  tap_ok(kreq_row_text(&row, 0) == NULL, "a NULL column is NULL");
  tap_is_str(kreq_row_text(&row, 1), "{\"id\":1}", "the body as text");
  tap_is_int((long long)row.length[1], 8, "with its length");
  tap_is_str(kreq_row_text(&row, 2), "3", "the etag");
  tap_is_str(kreq_row_text(&row, 3), "/v1/plans/1", "the location");
  tap_ok(kreq_row_text(&row, 5) == NULL && kreq_row_text(&row, -1) == NULL, "out of range is NULL");
  kreq_t r = {.ok_status = 201};
  tap_is_int(kreq_row_status(&r, &row), 201, "a NULL status is the ok status");
  kreq_row_note_user(&r, &row);
  tap_is_str(r.user_id, "11111111-1111-4111-8111-111111111111", "the user noted for the log");
  PQclear(res);

  const char *const vals2[] = {"409", NULL, NULL, NULL, NULL};
  res = result(5, generic, 1, vals2);
  kreq_row__decode(res, &row);
  tap_is_int(kreq_row_status(&r, &row), 409, "a status from the row");
  PQclear(res);
}

static void test_other_shapes(void) {
  const char *const names[] = {"password_hash", "locked"};
  const char *const vals[] = {"$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", "t"};
  PGresult *res = result(2, names, 1, vals);
  kreq_row_t row;
  kreq_row__decode(res, &row);
  tap_is_str(kreq_row_text(&row, 0), "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", "a text column");
  tap_ok(kreq_row_bool(&row, 1), "a boolean true");
  tap_ok(!kreq_row_bool(&row, 0), "text is not true");
  PQclear(res);

  const char *const vals_f[] = {NULL, "f"};
  res = result(2, names, 1, vals_f);
  kreq_row__decode(res, &row);
  tap_ok(kreq_row_text(&row, 0) == NULL, "no hash");
  tap_ok(!kreq_row_bool(&row, 1), "a boolean false");
  PQclear(res);

  res = result(2, names, 0, NULL);
  kreq_row__decode(res, &row);
  tap_is_int(row.n_rows, 0, "no row");
  tap_ok(kreq_row_text(&row, 0) == NULL && !kreq_row_bool(&row, 1), "no row: every column is NULL");
  PQclear(res);

  const char *const two[] = {"a", "t", "b", "t"};
  res = result(2, names, 2, two);
  kreq_row__decode(res, &row);
  tap_is_int(row.n_rows, 2, "two rows");
  tap_ok(kreq_row_text(&row, 0) == NULL, "more than one row: no column is read");
  PQclear(res);
}

static void test_error(void) {
  PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
  problem_db_error_t e;
  kreq_row__decode_error(res, &e);
  tap_ok(e.sqlstate == NULL && e.constraint == NULL && e.primary == NULL && e.detail == NULL &&
             e.context == NULL,
         "an error without fields decodes to NULLs");
  PQclear(res);
}

int main(void) {
  test_generic_row();
  test_other_shapes();
  test_error();
  return tap_done();
}
