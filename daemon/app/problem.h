/* problem: RFC 9457 problem details and the one table that maps database
 * errors (SQLSTATE) to HTTP statuses.
 *
 * Each entry of errors[] is {code, field, pointer, message}: code is stable
 * and machine-readable (the ErrorCode enum of api/openapi.yaml), field the
 * dotted path kipd has always sent ("goals[1].text"), pointer the same place
 * as an RFC 6901 JSON pointer into the request body ("/goals/1/text"), or
 * null when the field is a header or a query parameter. */
#ifndef KIPD_APP_PROBLEM_H
#define KIPD_APP_PROBLEM_H

#include <jansson.h>
#include <stdbool.h>

#include "util/json_check.h"

/* Slug and title for a status: 422 -> "validation", "Request breaks a rule". */
const char *problem_slug(int status);
const char *problem_title(int status);

/* Build a problem document. errors is stolen (may be NULL: an empty array).
 * detail and request_id are borrowed. Returns a new reference. */
json_t *problem_new(int status, const char *detail, json_t *errors, const char *request_id);

/* Append {"code","field","message"} to errors (borrowed array). code,
 * field and message are borrowed; code NULL means "invalid". */
void problem_add_error(json_t *errors, const char *code, const char *field, const char *message);

/* The RFC 6901 pointer for a field path ("goals[1].text" -> "/goals/1/text",
 * "body" -> ""), or NULL when the field is not in the body: a header (its
 * name starts with a capital, "If-Match") or "query"/"method". out must
 * hold 2 * strlen(field) + 2 bytes. */
const char *problem_pointer(const char *field, char *out);

/* Complete every entry of errors (borrowed array) before it is sent: a
 * missing code becomes "invalid", a missing pointer is derived from field
 * (problem_pointer), and null when field names one of query_spec's
 * parameters (query_spec may be NULL) or when in_query says the whole
 * problem is about the query string. */
void problem_complete_errors(json_t *errors, const jc_field_t *query_spec, bool in_query);

/* What to do with a database error. */
typedef enum {
  PROBLEM_DB_ANSWER,  /* answer with `status` */
  PROBLEM_DB_RETRY,   /* serialization failure / deadlock: retry the request once */
} problem_db_action_t;

typedef struct problem_db_map_s {
  problem_db_action_t action;
  int status;
  const char *field;   /* a field to name, from a constraint; may be NULL */
  const char *code;    /* that field's error code; NULL when field is */
  const char *message; /* a message for that field; may be NULL */
} problem_db_map_t;

/* Map a SQLSTATE (+ constraint name, may be NULL) to an HTTP answer.
 * kipd's own SQL raises SQLSTATE "KPnnn" for HTTP status nnn. */
problem_db_map_t problem_map_sqlstate(const char *sqlstate, const char *constraint);

/* True when a database error arose while writing an audit record: its
 * context (PG_DIAG_CONTEXT, borrowed, may be NULL) runs through kip.audit(),
 * kip.audit_plans() or an INSERT INTO kip.audit. Such a request answers 503
 * whatever the SQLSTATE: nothing is sent that was not audited. */
bool problem_is_audit_failure(const char *context);

#endif
