/* Plans: create, read, list, change, close, history. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "app/app.h"
#include "util/validate.h"

static const char *const goal_owners[] = {"citizen", "team", NULL};
static const char *const goal_statuses[] = {"open", "achieved", "dropped", NULL};
static const char *const plan_statuses[] = {"draft", "awaiting_consent", "active", "closed", NULL};
static const char *const close_reasons[] = {"completed", "transferred", "declined", "consent_withdrawn",
                                            "deceased", "moved", "other", NULL};

/* A CPR number is normalised to DDMMYY-NNNN, and the birth date is derived
 * from it unless the client gave one. */
static const char *format_citizen_cpr(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "invalid_cpr";
  char norm[12], birth[11];
  if (!validate_cpr(json_string_value(value), norm, birth))
    return "not a valid CPR number (DDMMYY-NNNN with a real date)";
  json_object_set_new(parent, key, json_string(norm));
  if (json_object_get(parent, "birth_date") == NULL)
    json_object_set_new(parent, "birth_date", json_string(birth));
  return NULL;
}

#define CITIZEN_FIELDS(name_flags)                                                                  \
  {.name = "name", .type = JC_STRING, .flags = name_flags, .min_len = 1, .max_len = 200},          \
  {.name = "cpr", .type = JC_STRING, .flags = JC_NULLABLE, .format = format_citizen_cpr},          \
  {.name = "birth_date", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_date},       \
  {.name = "phone", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 40},                       \
  {.name = "address", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 500},                    \
  {.name = "preferred_language", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 35},          \
  {NULL}

static const jc_field_t citizen_create[] = {CITIZEN_FIELDS(JC_REQUIRED)};
static const jc_field_t citizen_patch[] = {CITIZEN_FIELDS(0)};

static const jc_field_t sub_goal_fields[] = {
  {.name = "id", .type = JC_STRING, .format = jc_format_uuid},
  {.name = "text", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 2000},
  {.name = "status", .type = JC_STRING, .enum_values = goal_statuses},
  {NULL},
};
static const jc_field_t sub_goal_item = {.type = JC_OBJECT, .fields = sub_goal_fields};

static const jc_field_t goal_fields[] = {
  {.name = "id", .type = JC_STRING, .format = jc_format_uuid},
  {.name = "text", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 2000},
  {.name = "owner", .type = JC_STRING, .flags = JC_REQUIRED, .enum_values = goal_owners},
  {.name = "status", .type = JC_STRING, .enum_values = goal_statuses},
  {.name = "sub_goals", .type = JC_ARRAY, .items = &sub_goal_item, .max_len = 50},
  {NULL},
};
static const jc_field_t goal_item = {.type = JC_OBJECT, .fields = goal_fields};

static const jc_field_t need_fields[] = {
  {.name = "relevant", .type = JC_BOOL, .flags = JC_REQUIRED},
  {.name = "note", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 2000},
  {NULL},
};
static const jc_field_t need_value = {.type = JC_OBJECT, .fields = need_fields};

static const jc_field_t coordinator_fields[] = {
  {.name = "role", .type = JC_STRING, .enum_values = NULL},
  {.name = "role_title", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 200},
  {.name = "phone", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 40},
  {.name = "email", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_email},
  {NULL},
};

static const jc_field_t plan_create_body[] = {
  {.name = "citizen", .type = JC_OBJECT, .flags = JC_REQUIRED, .fields = citizen_create},
  {.name = "reason", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 10000},
  {.name = "goals", .type = JC_ARRAY, .items = &goal_item, .max_len = 100},
  {.name = "needs", .type = JC_MAP, .enum_values = api_needs_areas, .fields = &need_value},
  {.name = "follow_up_date", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_date},
  {.name = "approved_at", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_date},
  {.name = "coordinator", .type = JC_OBJECT, .fields = coordinator_fields},
  {NULL},
};

static const jc_field_t plan_patch_body[] = {
  {.name = "citizen", .type = JC_OBJECT, .fields = citizen_patch},
  {.name = "reason", .type = JC_STRING, .min_len = 1, .max_len = 10000},
  {.name = "goals", .type = JC_ARRAY, .items = &goal_item, .max_len = 100},
  {.name = "needs", .type = JC_MAP, .enum_values = api_needs_areas, .fields = &need_value},
  {.name = "follow_up_date", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_date},
  {.name = "approved_at", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_date},
  {.name = "status", .type = JC_STRING, .enum_values = plan_statuses},
  {NULL},
};

static const jc_field_t plan_close_body[] = {
  {.name = "reason", .type = JC_STRING, .flags = JC_REQUIRED, .enum_values = close_reasons},
  {.name = "note", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 2000},
  {NULL},
};

static const jc_field_t plan_list_query[] = {
  {.name = "limit", .type = JC_STRING, .format = api_format_limit},
  {.name = "cursor", .type = JC_STRING, .max_len = 512},
  {.name = "status", .type = JC_STRING, .enum_values = plan_statuses},
  {.name = "coordinator", .type = JC_STRING, .format = jc_format_uuid},
  {.name = "organisation", .type = JC_STRING, .format = jc_format_uuid},
  {.name = "q", .type = JC_STRING, .max_len = 200},
  {NULL},
};

static const pg_stmt_t plan_create = {"plan_create",
  "SELECT * FROM kip_api.plan_create($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t plan_list = {"plan_list",
  "SELECT * FROM kip_api.plan_list($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t plan_get = {"plan_get",
  "SELECT * FROM kip_api.plan_get($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t plan_get_unless = {"plan_get_unless",
  "SELECT * FROM kip_api.plan_get_unless($1::jsonb, $2::uuid, $3::bigint[])", 3};
static const pg_stmt_t plan_patch = {"plan_patch",
  "SELECT * FROM kip_api.plan_patch($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t plan_close = {"plan_close",
  "SELECT * FROM kip_api.plan_close($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t plan_history = {"plan_history",
  "SELECT * FROM kip_api.plan_history($1::jsonb, $2::uuid, $3::jsonb)", 3};

/* The CPR number never reaches the database in clear: kipd seals it
 * (AES-256-GCM, bound to the plan's id) and adds its blind index
 * (util/cpr_crypt.h). */
static void plan_seal_handler(kreq_t *r) {
  /* PATCH /v1/plans/{id}: bound to the path's plan; POST: to a new id. */
  const char *plan_id = r->match.n_params > 0 ? r->match.params[0] : NULL;
  if (kreq_cpr_seal(r, json_object_get(r->body, "citizen"), plan_id) != 0) {
    kreq_problem(r, 500, "the CPR number could not be sealed", NULL, NULL);
    return;
  }
  kreq_generic(r);
}

/* If-None-Match as a PostgreSQL bigint[] literal of the versions it names
 * ("{3,4}"; "*" is -2), or NULL when there is none or it is not a list of
 * kipd's ETags ("3", W/"3"). The weak prefix is accepted: If-None-Match
 * compares weakly (RFC 9110 13.1.2). */
static const char *plan__if_none_match(kreq_t *r) {
  const char *h = http_request_header(r->http, "if-none-match");
  if (h == NULL)
    return NULL;
  while (*h == ' ' || *h == '\t')
    h++;
  if (h[0] == '*') {
    const char *t = h + 1;
    while (*t == ' ' || *t == '\t')
      t++;
    return *t == '\0' ? "{-2}" : NULL;
  }
  size_t cap = strlen(h) + 3, n = 0;
  char *out = arena_alloc(&r->http->arena, cap);
  if (out == NULL)
    return NULL;
  out[n++] = '{';
  const char *c = h;
  for (int count = 0; count < 32; count++) {
    if (c[0] == 'W' && c[1] == '/')
      c += 2;
    if (*c != '"')
      return NULL;
    c++;
    size_t digits = 0;
    if (count > 0)
      out[n++] = ',';
    while (*c >= '0' && *c <= '9' && digits < 12) {
      out[n++] = *c++;
      digits++;
    }
    if (digits == 0 || *c != '"')
      return NULL;
    c++;
    while (*c == ' ' || *c == '\t')
      c++;
    if (*c == '\0') {
      out[n++] = '}';
      out[n] = '\0';
      return out;
    }
    if (*c != ',')
      return NULL;
    c++;
    while (*c == ' ' || *c == '\t')
      c++;
  }
  return NULL;
}

/* GET /v1/plans/{id}: with If-None-Match, the cheap poll of an open plan
 * (304 when unchanged, after the access rule, with no audit row). */
static void plan_get_handler(kreq_t *r) {
  const char *versions = plan__if_none_match(r);
  if (versions == NULL) {
    kreq_generic(r);
    return;
  }
  const char **params = arena_alloc(&r->http->arena, 3 * sizeof(char *));
  if (params == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  params[0] = kreq_ctx(r);
  params[1] = r->match.params[0];
  params[2] = versions;
  kreq_exec(r, &plan_get_unless, params, 200, NULL);
}

/* True when q (trimmed of blanks) looks like a CPR number: 10 digits or
 * DDMMYY-NNNN. The trimmed text goes to out (16 bytes). */
static bool plan__cpr_shaped(const char *q, char out[16]) {
  while (*q == ' ' || *q == '\t')
    q++;
  size_t len = strlen(q);
  while (len > 0 && (q[len - 1] == ' ' || q[len - 1] == '\t'))
    len--;
  bool shaped = len == 10 || len == 11;
  for (size_t i = 0; shaped && i < len; i++)
    shaped = (q[i] >= '0' && q[i] <= '9') || (len == 11 && i == 6 && q[i] == '-');
  if (shaped)
    snprintf(out, 16, "%.*s", (int)len, q);
  return shaped;
}

/* GET /v1/plans: a CPR number in the URL would stay in every proxy's and
 * access log on the way, so a CPR-shaped q is refused before anything is
 * looked up; POST /v1/plans/search takes it in the body. */
static void plan_list_handler(kreq_t *r) {
  const char *q = json_string_value(json_object_get(r->query, "q"));
  char trimmed[16];
  if (q != NULL && plan__cpr_shaped(q, trimmed)) {
    kreq_problem_code(r, 422, "q: a CPR number must not be in the URL; search with POST /v1/plans/search",
                      "cpr_in_url", "q", "must not be a CPR number; send it in the body of POST /v1/plans/search");
    return;
  }
  kreq_generic(r);
}

static const jc_field_t plan_search_body[] = {
  {.name = "cpr", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_cpr},
  {.name = "q", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 200},
  {.name = "status", .type = JC_STRING, .flags = JC_NULLABLE, .enum_values = plan_statuses},
  {.name = "coordinator", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_uuid},
  {.name = "organisation", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_uuid},
  {.name = "limit", .type = JC_INT, .flags = JC_NULLABLE},
  {.name = "cursor", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 512},
  {NULL},
};

/* POST /v1/plans/search: the list of GET /v1/plans, with the search terms
 * in the body. A CPR number (cpr, or a CPR-shaped q) is searched by its
 * blind index only: the number itself never reaches the database. The
 * query object handed to kip_api.plan_list is the one GET builds. */
static void plan_search_handler(kreq_t *r) {
  json_t *query = json_object();
  static const char *const copied[] = {"q", "status", "coordinator", "organisation", "cursor", NULL};
  for (const char *const *k = copied; *k != NULL; k++) {
    json_t *v = json_object_get(r->body, *k);
    if (json_is_string(v))
      json_object_set(query, *k, v);
  }
  json_t *limit = json_object_get(r->body, "limit");
  if (json_is_integer(limit)) {
    json_int_t n = json_integer_value(limit);
    if (n < 1 || n > 500) {
      json_decref(query);
      kreq_problem_code(r, 422, "limit: must be an integer from 1 to 500", "out_of_range", "limit",
                        "must be an integer from 1 to 500");
      return;
    }
    json_object_set(query, "limit", limit);
  }
  const char *cpr = json_string_value(json_object_get(r->body, "cpr"));
  const char *q = json_string_value(json_object_get(r->body, "q"));
  char trimmed[16], index[65];
  if (cpr == NULL && q != NULL && plan__cpr_shaped(q, trimmed)) {
    cpr = trimmed;
    json_object_del(query, "q");
  }
  if (cpr != NULL) {
    if (kreq_cpr_index(r, cpr, index) != 0) {
      json_decref(query);
      kreq_problem(r, 500, "the CPR number could not be looked up", NULL, NULL);
      return;
    }
    json_object_set_new(query, "cpr_hmac", json_string(index));
  }
  explicit_bzero(trimmed, sizeof(trimmed));
  const char **params = arena_alloc(&r->http->arena, 2 * sizeof(char *));
  params[0] = kreq_ctx(r);
  params[1] = kreq_json_text(r, query);
  json_decref(query);
  kreq_exec(r, &plan_list, params, 200, NULL);
}

/* The coordinator's role uses the participant roles; set here because the
 * shared list lives in routes.c. */
static void plan_create_handler(kreq_t *r) {
  json_t *coord = json_object_get(r->body, "coordinator");
  json_t *role = coord ? json_object_get(coord, "role") : NULL;
  if (role != NULL) {
    bool ok = false;
    for (const char *const *v = api_participant_roles; *v; v++)
      if (strcmp(*v, json_string_value(role)) == 0 && strcmp(*v, "citizen") != 0 &&
          strcmp(*v, "relative") != 0)
        ok = true;
    if (!ok) {
      kreq_problem_code(r, 422, "coordinator.role: not a professional role", "not_allowed_value",
                        "coordinator.role",
                        "must be a professional participant role");
      return;
    }
  }
  plan_seal_handler(r);
}

const route_t api_plans_routes[] = {
  {"POST", "/v1/plans/search", plan_search_handler, plan_search_body, NULL, &plan_list, 200,
   ROUTE_BODY | ROUTE_SAFE},
  {"POST", "/v1/plans", plan_create_handler, plan_create_body, NULL, &plan_create, 201, ROUTE_BODY},
  {"GET", "/v1/plans", plan_list_handler, NULL, plan_list_query, &plan_list, 200, 0},
  {"GET", "/v1/plans/{id}", plan_get_handler, NULL, NULL, &plan_get, 200, 0},
  {"PATCH", "/v1/plans/{id}", plan_seal_handler, plan_patch_body, NULL, &plan_patch, 200, ROUTE_BODY | ROUTE_IF_MATCH},
  {"POST", "/v1/plans/{id}/close", NULL, plan_close_body, NULL, &plan_close, 200, ROUTE_BODY | ROUTE_IF_MATCH},
  {"GET", "/v1/plans/{id}/history", NULL, NULL, api_page_query, &plan_history, 200, 0},
};
const size_t api_plans_n_routes = KIPD_ARRAY_SIZE(api_plans_routes);
