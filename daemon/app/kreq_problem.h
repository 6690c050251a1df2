/* kreq_problem: problem+json replies (RFC 9457, app/problem.h), also the
 * one for a database error, whose SQLSTATE goes through the table in
 * app/problem.c. Like every reply, each releases the request. */
#ifndef KIPD_APP_KREQ_PROBLEM_H
#define KIPD_APP_KREQ_PROBLEM_H

#include <jansson.h>

#include "app/kreq.h"
#include "app/problem.h"

/* A problem with zero or one field error (field/message may be NULL). */
void kreq_problem(kreq_t *r, int status, const char *detail, const char *field, const char *message);

/* The same with the error's code ("required", "cpr_in_url", ...; the
 * ErrorCode enum of api/openapi.yaml). Every error's pointer is derived
 * from its field when the problem is sent (problem_complete_errors). */
void kreq_problem_code(kreq_t *r, int status, const char *detail, const char *code, const char *field,
                       const char *message);

/* A problem with an errors array (stolen). */
void kreq_problem_errors(kreq_t *r, int status, const char *detail, json_t *errors);

/* A problem from the request's json_check result. */
void kreq_problem_jc(kreq_t *r);

/* The problem for a database error (e borrowed): KPnnn with the field
 * errors from its DETAIL, a constraint or SQLSTATE through
 * problem_map_sqlstate(), 503 when the audit record could not be written. */
void kreq_problem_db(kreq_t *r, const problem_db_error_t *e);

#endif
