/* Oversight: the audit log for auditors, its hash-chain check (incremental,
 * in steps, and the full walk as a background job), and the citizen's
 * access log of one plan (schema/functions/18_audit.sql, docs/audit.md). */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app/app.h"
#include "util/validate.h"

/* grace_seconds=0..86400: how long a row may stay unsealed before verify
 * counts it as overdue. */
static const char *format_grace(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "out_of_range";
  const char *s = json_string_value(value);
  size_t len = strlen(s);
  if (len == 0 || len > 5 || !validate_digits(s, len) || atoi(s) > 86400)
    return "must be an integer from 0 to 86400";
  if (parent != NULL && key != NULL)
    json_object_set_new(parent, key, json_integer(atoi(s)));
  return NULL;
}

static const jc_field_t audit_list_query[] = {
  {.name = "limit", .type = JC_STRING, .format = api_format_limit},
  {.name = "cursor", .type = JC_STRING, .max_len = 512},
  {.name = "plan_id", .type = JC_STRING, .format = jc_format_uuid},
  {.name = "user_id", .type = JC_STRING, .format = jc_format_uuid},
  {.name = "organisation_id", .type = JC_STRING, .format = jc_format_uuid},
  {.name = "action", .type = JC_STRING, .min_len = 1, .max_len = 100},
  {.name = "from", .type = JC_STRING, .format = jc_format_datetime},
  {.name = "to", .type = JC_STRING, .format = jc_format_datetime},
  {NULL},
};

static const jc_field_t audit_verify_query[] = {
  {.name = "grace_seconds", .type = JC_STRING, .format = format_grace},
  {NULL},
};

static const pg_stmt_t audit_list = {"audit_list",
  "SELECT * FROM kip_api.audit_list($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t audit_verify = {"audit_verify",
  "SELECT * FROM kip_api.audit_verify($1::jsonb, $2::jsonb, $3::jsonb)", 3};
static const pg_stmt_t audit_verify_job_create = {"audit_verify_job_create",
  "SELECT * FROM kip_api.audit_verify_job_create($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t audit_verify_job_read = {"audit_verify_job_read",
  "SELECT * FROM kip_api.audit_verify_job_read($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t plan_access_log = {"plan_access_log",
  "SELECT * FROM kip_api.plan_access_log($1::jsonb, $2::uuid, $3::jsonb)", 3};

/* GET /v1/audit/verify walks the chain from the newest checkpoint in steps,
 * each its own short statement, so that none comes near the statement
 * timeout however long the log: while the walk goes on, the answer is
 * {"continue": state}, and the next step gets that state ($3). The last step
 * answers the result (and writes the audit row). Between steps the pool
 * connection is free for other requests. */
static void audit_verify_step_done(kreq_t *r, const kreq_row_t *row) {
  json_t *body = kreq_row_body(r, row);
  json_t *state = json_object_get(body, "continue");
  if (!json_is_object(state)) {
    json_decref(body);
    kreq_reply_row(r, row);
    return;
  }
  const char **params = r->handler_data;
  params[2] = kreq_json_text(r, state);
  json_decref(body);
  if (params[2] == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  params[0] = kreq_ctx(r);
  kreq_exec(r, &audit_verify, params, 200, audit_verify_step_done);
}

static void audit_verify_handler(kreq_t *r) {
  const char **params = arena_calloc(&r->http->arena, 4 * sizeof(char *));
  if (params == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  r->handler_data = params;
  params[0] = kreq_ctx(r);
  params[1] = kreq_json_text(r, r->query);
  params[2] = NULL;  /* the first step */
  kreq_exec(r, &audit_verify, params, 200, audit_verify_step_done);
}

const route_t api_audit_routes[] = {
  {"GET", "/v1/audit", NULL, NULL, audit_list_query, &audit_list, 200, 0},
  {"GET", "/v1/audit/verify", audit_verify_handler, NULL, audit_verify_query, &audit_verify, 200, 0},
  {"POST", "/v1/audit/verify-jobs", NULL, NULL, audit_verify_query, &audit_verify_job_create, 202, 0},
  {"GET", "/v1/audit/verify-jobs/{id}", NULL, NULL, NULL, &audit_verify_job_read, 200, 0},
  {"GET", "/v1/plans/{id}/access-log", NULL, NULL, api_page_query, &plan_access_log, 200, 0},
};
const size_t api_audit_n_routes = KIPD_ARRAY_SIZE(api_audit_routes);
