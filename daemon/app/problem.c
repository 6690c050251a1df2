#include "app/problem.h"

#include <stdlib.h>
#include <string.h>

typedef struct problem_status_s {
  int status;
  const char *slug;
  const char *title;
} problem_status_t;

static const problem_status_t problem__statuses[] = {
  {400, "bad-request", "Request could not be read"},
  {401, "unauthenticated", "Authentication required"},
  {403, "forbidden", "Not allowed for your role"},
  {404, "not-found", "Not found"},
  {405, "method-not-allowed", "Method not allowed"},
  {408, "request-timeout", "Request took too long"},
  {409, "conflict", "Conflicts with the current state"},
  {412, "precondition-failed", "The resource has changed"},
  {413, "payload-too-large", "Request body too large"},
  {415, "unsupported-media-type", "Body must be application/json"},
  {422, "validation", "Request breaks a rule"},
  {428, "precondition-required", "If-Match is required"},
  {429, "too-many-requests", "Too many requests"},
  {431, "headers-too-large", "Request headers too large"},
  {500, "internal", "Internal error"},
  {503, "unavailable", "Service unavailable"},
};

static const problem_status_t *problem__find(int status) {
  for (size_t i = 0; i < sizeof(problem__statuses) / sizeof(problem__statuses[0]); i++)
    if (problem__statuses[i].status == status)
      return &problem__statuses[i];
  return NULL;
}

const char *problem_slug(int status) {
  const problem_status_t *p = problem__find(status);
  return p ? p->slug : "error";
}

const char *problem_title(int status) {
  const problem_status_t *p = problem__find(status);
  return p ? p->title : "Error";
}

json_t *problem_new(int status, const char *detail, json_t *errors, const char *request_id) {
  char type[96];
  snprintf(type, sizeof(type), "https://kipd.dk/problems/%s", problem_slug(status));
  json_t *p = json_object();
  json_object_set_new(p, "type", json_string(type));
  json_object_set_new(p, "title", json_string(problem_title(status)));
  json_object_set_new(p, "status", json_integer(status));
  if (detail != NULL)
    json_object_set_new(p, "detail", json_string(detail));
  json_object_set_new(p, "errors", errors ? errors : json_array());
  json_object_set_new(p, "request_id", json_string(request_id ? request_id : ""));
  return p;
}

void problem_add_error(json_t *errors, const char *code, const char *field, const char *message) {
  json_array_append_new(errors, json_pack("{s:s, s:s, s:s}", "code", code ? code : "invalid", "field", field,
                                          "message", message));
}

const char *problem_pointer(const char *field, char *out) {
  if (field == NULL || (field[0] >= 'A' && field[0] <= 'Z') || strcmp(field, "query") == 0 ||
      strcmp(field, "method") == 0)
    return NULL;
  char *o = out;
  if (strcmp(field, "body") != 0) {
    *o++ = '/';
    for (const char *c = field; *c; c++) {
      if (*c == '.') {
        *o++ = '/';
      } else if (*c == '[') {
        *o++ = '/';
      } else if (*c == ']') {
        /* "[1]" -> "/1": the closing bracket adds nothing. */
      } else if (*c == '~') {
        *o++ = '~';
        *o++ = '0';
      } else if (*c == '/') {
        *o++ = '~';
        *o++ = '1';
      } else {
        *o++ = *c;
      }
    }
  }
  *o = '\0';
  return out;
}

static bool problem__is_query(const jc_field_t *query_spec, const char *field) {
  for (const jc_field_t *f = query_spec; f != NULL && f->name != NULL; f++)
    if (strcmp(f->name, field) == 0)
      return true;
  return false;
}

void problem_complete_errors(json_t *errors, const jc_field_t *query_spec, bool in_query) {
  size_t i;
  json_t *e;
  json_array_foreach(errors, i, e) {
    if (!json_is_object(e))
      continue;
    if (!json_is_string(json_object_get(e, "code")))
      json_object_set_new(e, "code", json_string("invalid"));
    if (json_object_get(e, "pointer") != NULL)
      continue;
    const char *field = json_string_value(json_object_get(e, "field"));
    if (field == NULL || in_query || problem__is_query(query_spec, field)) {
      json_object_set_new(e, "pointer", json_null());
      continue;
    }
    char *buf = malloc(2 * strlen(field) + 2);
    const char *ptr = buf ? problem_pointer(field, buf) : NULL;
    json_object_set_new(e, "pointer", ptr ? json_string(ptr) : json_null());
    free(buf);
  }
}

/* Unique and foreign-key constraints of the schema, by name, to the field a
 * client should fix. */
typedef struct problem_constraint_s {
  const char *constraint;
  int status;
  const char *field;
  const char *code;
  const char *message;
} problem_constraint_t;

static const problem_constraint_t problem__constraints[] = {
  {"users_username_key", 409, "username", "duplicate", "is already taken"},
  {"users_organisation_id_fkey", 422, "organisation_id", "not_found", "no such organisation"},
  {"participants_one_active_user", 409, "user_id", "duplicate", "is already an active participant of this plan"},
  {"participants_organisation_id_fkey", 422, "organisation_id", "not_found", "no such organisation"},
  {"participants_user_id_fkey", 422, "user_id", "not_found", "no such user"},
};

problem_db_map_t problem_map_sqlstate(const char *sqlstate, const char *constraint) {
  problem_db_map_t m = {PROBLEM_DB_ANSWER, 500, NULL, NULL, NULL};
  if (sqlstate == NULL || strlen(sqlstate) != 5)
    return m;
  if (sqlstate[0] == 'K' && sqlstate[1] == 'P') {
    int s = atoi(sqlstate + 2);
    m.status = (s >= 400 && s <= 599) ? s : 500;
    return m;
  }
  if (constraint != NULL) {
    for (size_t i = 0; i < sizeof(problem__constraints) / sizeof(problem__constraints[0]); i++) {
      if (strcmp(problem__constraints[i].constraint, constraint) == 0) {
        m.status = problem__constraints[i].status;
        m.field = problem__constraints[i].field;
        m.code = problem__constraints[i].code;
        m.message = problem__constraints[i].message;
        return m;
      }
    }
  }
  if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0) {
    m.action = PROBLEM_DB_RETRY;
    m.status = 503;
    return m;
  }
  if (strcmp(sqlstate, "23505") == 0) { m.status = 409; return m; }          /* unique_violation */
  if (strcmp(sqlstate, "23503") == 0) { m.status = 422; return m; }          /* foreign_key_violation */
  if (strcmp(sqlstate, "23514") == 0) { m.status = 422; return m; }          /* check_violation */
  if (strcmp(sqlstate, "23502") == 0) { m.status = 422; return m; }          /* not_null_violation */
  if (strncmp(sqlstate, "22", 2) == 0) { m.status = 400; return m; }         /* data exception */
  if (strcmp(sqlstate, "57014") == 0) { m.status = 503; return m; }          /* statement timeout */
  if (strncmp(sqlstate, "57P", 3) == 0) { m.status = 503; return m; }        /* admin/crash shutdown */
  if (strncmp(sqlstate, "08", 2) == 0) { m.status = 503; return m; }         /* connection exception */
  if (strncmp(sqlstate, "53", 2) == 0) { m.status = 503; return m; }         /* insufficient resources */
  if (strcmp(sqlstate, "25006") == 0) { m.status = 503; return m; }          /* read-only transaction */
  return m;
}

bool problem_is_audit_failure(const char *context) {
  if (context == NULL)
    return false;
  return strstr(context, "function kip.audit(") != NULL ||
         strstr(context, "function kip.audit_plans(") != NULL ||
         strstr(context, "INSERT INTO kip.audit (") != NULL;
}
