/* problem+json documents and the SQLSTATE -> HTTP table. */
#include <string.h>

#include "app/problem.h"
#include "tap.h"

int main(void) {
  json_t *errors = json_array();
  problem_add_error(errors, "invalid_cpr", "citizen.cpr", "not a valid CPR number");
  json_t *p = problem_new(422, "citizen.cpr: not a valid CPR number", errors, "req-1");
  tap_is_str(json_string_value(json_object_get(p, "type")), "https://kipd.dk/problems/validation", "type");
  tap_is_int(json_integer_value(json_object_get(p, "status")), 422, "status");
  tap_is_str(json_string_value(json_object_get(p, "title")), "Request breaks a rule", "title");
  tap_is_str(json_string_value(json_object_get(p, "request_id")), "req-1", "request_id");
  json_t *e0 = json_array_get(json_object_get(p, "errors"), 0);
  tap_is_str(json_string_value(json_object_get(e0, "field")), "citizen.cpr", "errors[0].field");
  tap_is_str(json_string_value(json_object_get(e0, "code")), "invalid_cpr", "errors[0].code");
  problem_complete_errors(json_object_get(p, "errors"), NULL, false);
  tap_is_str(json_string_value(json_object_get(e0, "pointer")), "/citizen/cpr", "errors[0].pointer");
  {
    char buf[64];
    tap_is_str(problem_pointer("goals[1].text", buf), "/goals/1/text", "pointer of an array item");
    tap_is_str(problem_pointer("needs.a~b/c", buf), "/needs/a~0b~1c", "pointer escapes ~ and /");
    tap_is_str(problem_pointer("body", buf), "", "body is the whole document");
    tap_ok(problem_pointer("If-Match", buf) == NULL, "a header has no pointer");
    json_t *errs = json_pack("[{s:s, s:s}, {s:s, s:s, s:s}]", "field", "limit", "message", "m", "field", "x",
                             "message", "m", "code", "too_long");
    static const jc_field_t q[] = {{.name = "limit", .type = JC_STRING}, {NULL}};
    problem_complete_errors(errs, q, false);
    tap_ok(json_is_null(json_object_get(json_array_get(errs, 0), "pointer")), "a query parameter has no pointer");
    tap_is_str(json_string_value(json_object_get(json_array_get(errs, 0), "code")), "invalid", "a missing code");
    tap_is_str(json_string_value(json_object_get(json_array_get(errs, 1), "code")), "too_long", "a code is kept");
    json_decref(errs);
  }
  json_decref(p);
  p = problem_new(404, NULL, NULL, "r");
  tap_ok(json_is_array(json_object_get(p, "errors")) && json_array_size(json_object_get(p, "errors")) == 0,
         "errors is always an array");
  tap_ok(json_object_get(p, "detail") == NULL, "no detail when none given");
  json_decref(p);

  struct { const char *state; const char *constraint; int status; problem_db_action_t action; const char *field; } cases[] = {
    {"KP404", NULL, 404, PROBLEM_DB_ANSWER, NULL},
    {"KP422", NULL, 422, PROBLEM_DB_ANSWER, NULL},
    {"KP412", NULL, 412, PROBLEM_DB_ANSWER, NULL},
    {"KP999", NULL, 500, PROBLEM_DB_ANSWER, NULL},
    {"23505", "users_username_key", 409, PROBLEM_DB_ANSWER, "username"},
    {"23505", "participants_one_active_user", 409, PROBLEM_DB_ANSWER, "user_id"},
    {"23505", "something_else", 409, PROBLEM_DB_ANSWER, NULL},
    {"23503", NULL, 422, PROBLEM_DB_ANSWER, NULL},
    {"40001", NULL, 503, PROBLEM_DB_RETRY, NULL},
    {"40P01", NULL, 503, PROBLEM_DB_RETRY, NULL},
    {"57014", NULL, 503, PROBLEM_DB_ANSWER, NULL},
    {"57P01", NULL, 503, PROBLEM_DB_ANSWER, NULL},
    {"08006", NULL, 503, PROBLEM_DB_ANSWER, NULL},
    {"53300", NULL, 503, PROBLEM_DB_ANSWER, NULL},
    {"22P02", NULL, 400, PROBLEM_DB_ANSWER, NULL},
    {"42P01", NULL, 500, PROBLEM_DB_ANSWER, NULL},
    {NULL, NULL, 500, PROBLEM_DB_ANSWER, NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    problem_db_map_t m = problem_map_sqlstate(cases[i].state, cases[i].constraint);
    char what[96];
    snprintf(what, sizeof(what), "%s/%s -> %d", cases[i].state ? cases[i].state : "(null)",
             cases[i].constraint ? cases[i].constraint : "-", cases[i].status);
    tap_ok(m.status == cases[i].status && m.action == cases[i].action &&
           ((m.field == NULL && cases[i].field == NULL) ||
            (m.field && cases[i].field && strcmp(m.field, cases[i].field) == 0)), "%s", what);
  }
  tap_is_str(problem_slug(415), "unsupported-media-type", "415 slug");
  tap_is_str(problem_slug(428), "precondition-required", "428 slug");
  tap_is_str(problem_slug(431), "headers-too-large", "431 slug");
  /* An error while writing the audit row: PostgreSQL's context lines. */
  tap_ok(problem_is_audit_failure("PL/pgSQL function kip.audit(text,uuid,text) line 3 at SQL statement\n"
                                  "SQL statement \"SELECT kip.audit('read', p.id, 'plan')\""),
         "kip.audit() in the context is an audit failure");
  tap_ok(problem_is_audit_failure("SQL statement \"INSERT INTO kip.audit (user_id, action) VALUES ...\"\n"
                                  "PL/pgSQL function kip.audit_plans(text,uuid[],text) line 3"),
         "kip.audit_plans() in the context is an audit failure");
  tap_ok(problem_is_audit_failure("PL/pgSQL function kip.test() line 1 at RAISE\n"
                                  "SQL statement \"INSERT INTO kip.audit (user_id) VALUES (1)\""),
         "a direct INSERT INTO kip.audit is an audit failure");
  tap_ok(!problem_is_audit_failure("PL/pgSQL function kip_api.audit_list(jsonb,jsonb) line 20 at SQL statement"),
         "the audit list route is not an audit write");
  tap_ok(!problem_is_audit_failure("PL/pgSQL function kip.audit_seal(integer,interval) line 9"),
         "the sealer is not an audit write");
  tap_ok(!problem_is_audit_failure(NULL), "no context");
  return tap_done();
}
