#include "app/kreq_row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/internal.h"

void kreq_row__decode(const PGresult *res, kreq_row_t *row) {
  memset(row, 0, sizeof(*row));
  row->n_rows = PQntuples(res);
  int n = PQnfields(res);
  row->n_fields = n > KREQ_ROW_MAX_FIELDS ? KREQ_ROW_MAX_FIELDS : n;
  if (row->n_rows < 1)
    return;
  for (int i = 0; i < row->n_fields; i++) {
    if (PQgetisnull(res, 0, i))
      continue;
    row->value[i] = PQgetvalue(res, 0, i);
    row->length[i] = (size_t)PQgetlength(res, 0, i);
  }
}

void kreq_row__decode_error(const PGresult *res, problem_db_error_t *e) {
  e->sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  e->constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
  e->primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  e->detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  e->context = PQresultErrorField(res, PG_DIAG_CONTEXT);
}

const char *kreq_row_text(const kreq_row_t *row, int i) {
  if (row->n_rows != 1 || i < 0 || i >= row->n_fields)
    return NULL;
  return row->value[i];
}

bool kreq_row_bool(const kreq_row_t *row, int i) {
  const char *v = kreq_row_text(row, i);
  return v != NULL && strcmp(v, "t") == 0;
}

int kreq_row_status(const kreq_t *r, const kreq_row_t *row) {
  const char *v = kreq_row_text(row, 0);
  return v == NULL ? r->ok_status : atoi(v);
}

void kreq_row_note_user(kreq_t *r, const kreq_row_t *row) {
  const char *user = kreq_row_text(row, 4);
  if (user != NULL)
    snprintf(r->user_id, sizeof(r->user_id), "%s", user);
}

json_t *kreq_row_body(kreq_t *r, const kreq_row_t *row) {
  if (row->n_rows != 1 || row->n_fields < 5 || row->value[1] == NULL)
    return NULL;
  kreq_row_note_user(r, row);
  size_t len;
  const char *text = kreq_cpr__reveal(r, row->value[1], row->length[1], &len);
  return text ? json_loadb(text, len, 0, NULL) : NULL;
}

json_t *kreq_row_object(kreq_t *r, const kreq_row_t *row) {
  json_t *doc = kreq_row_body(r, row);
  if (json_is_object(doc))
    return doc;
  json_decref(doc);
  kreq_problem(r, 500, "unexpected database answer", NULL, NULL);
  return NULL;
}
