#include "app/kreq_problem.h"

#include <stdio.h>
#include <string.h>

#include "app/internal.h"
#include "util/log.h"

/* Send a problem document (stolen) with the headers its status needs. */
static void kreq_problem__send(kreq_t *r, int status, json_t *p) {
  problem_complete_errors(json_object_get(p, "errors"), r->match.route ? r->match.route->query_spec : NULL,
                          r->query_problem);
  http_header_t hdrs[2];
  size_t n = 0;
  if (status == 401)
    hdrs[n++] = (http_header_t){"WWW-Authenticate", "Bearer realm=\"kipd\""};
  if (status == 503 || status == 429)
    hdrs[n++] = (http_header_t){"Retry-After", "1"};
  if (status == 405)
    hdrs[n++] = (http_header_t){"Allow", r->match.allow};
  kreq_reply_json(r, status, p, hdrs, n);
}

void kreq_problem_errors(kreq_t *r, int status, const char *detail, json_t *errors) {
  char *cred = kreq__cred_hash(r);
  if (status == 401 && cred[0] != '\0') {
    /* A credential the database refused names nobody, in the log either. */
    seen_forget(&r->app->seen, cred);
    cred[0] = '\0';
    r->user_id[0] = '\0';
  }
  kreq_problem__send(r, status, problem_new(status, detail, errors, r->http->request_id));
}

void kreq_problem_code(kreq_t *r, int status, const char *detail, const char *code, const char *field,
                       const char *message) {
  json_t *errors = json_array();
  if (field != NULL)
    problem_add_error(errors, code, field, message ? message : "is invalid");
  kreq_problem_errors(r, status, detail, errors);
}

void kreq_problem(kreq_t *r, int status, const char *detail, const char *field, const char *message) {
  kreq_problem_code(r, status, detail, NULL, field, message);
}

void kreq_problem_jc(kreq_t *r) {
  json_t *errors = json_array();
  const char *detail = NULL;
  for (size_t i = 0; i < r->jc.n_errors; i++) {
    /* A 400 answer lists its 400-class errors first, so the detail names
     * the reason for the status. */
    if (r->jc.status == 400 && r->jc.errors[i].status != 400)
      continue;
    problem_add_error(errors, r->jc.errors[i].code, r->jc.errors[i].field, r->jc.errors[i].message);
    if (detail == NULL)
      detail = arena_sprintf(&r->http->arena, "%s: %s", r->jc.errors[i].field, r->jc.errors[i].message);
  }
  kreq_problem_errors(r, r->jc.status, detail, errors);
}

void kreq_problem_db(kreq_t *r, const problem_db_error_t *e) {
  const char *sqlstate = e->sqlstate;
  const char *primary = e->primary;
  problem_db_map_t m = problem_map_sqlstate(sqlstate, e->constraint);
  bool ours = sqlstate != NULL && sqlstate[0] == 'K' && sqlstate[1] == 'P';
  if (!ours && problem_is_audit_failure(e->context)) {
    /* The audit record could not be written: the transaction is gone, and
     * nothing read in it is sent. */
    log_emit(LOG_ERROR, "audit record not written",
             json_pack("{s:s, s:s, s:s, s:s}", "request_id", r->http->request_id,
                       "statement", r->stmt ? r->stmt->name : "?", "sqlstate", sqlstate ? sqlstate : "",
                       "error", primary ? primary : ""));
    kreq_problem(r, 503, "the audit record could not be written; try again", NULL, NULL);
    return;
  }
  json_t *errors = NULL;
  json_t *extra = NULL;
  if (ours && e->detail != NULL) {
    json_t *d = json_loads(e->detail, 0, NULL);
    if (d != NULL) {
      json_t *uid = json_object_get(d, "user_id");
      if (json_is_string(uid))
        snprintf(r->user_id, sizeof(r->user_id), "%s", json_string_value(uid));
      errors = json_incref(json_object_get(d, "errors"));
      if (json_is_object(json_object_get(d, "extra")))
        extra = json_incref(json_object_get(d, "extra"));
      json_decref(d);
    }
  }
  if (errors == NULL || !json_is_array(errors)) {
    json_decref(errors);
    errors = json_array();
  }
  if (m.field != NULL)
    problem_add_error(errors, m.code, m.field, m.message ? m.message : "is invalid");
  const char *text = NULL;
  if (ours)
    text = primary;
  else if (m.field != NULL)
    text = arena_sprintf(&r->http->arena, "%s %s", m.field, m.message);
  if (m.status == 500) {
    json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "request_id", r->http->request_id,
                          "statement", r->stmt ? r->stmt->name : "?", "sqlstate", sqlstate ? sqlstate : "",
                          "error", primary ? primary : "");
    log_emit(LOG_ERROR, "database error", f);
  }
  if (m.status == 503 && text == NULL)
    text = "the database is not available; try again";
  if (extra != NULL) {
    /* Extension members (RFC 9457 §3.2), e.g. open_actions; they never
     * replace the standard ones. */
    json_t *p = problem_new(m.status, text, errors, r->http->request_id);
    json_object_update_missing(p, extra);
    json_decref(extra);
    kreq_problem__send(r, m.status, p);
    return;
  }
  kreq_problem_errors(r, m.status, text, errors);
}
