/* Agreed actions: who does what by when, across plans and sectors. */
#include "api/api.h"
#include "app/app.h"

const char *const api_action_areas[] = {"substances", "somatic_health", "mental_health", "housing",
                                        "finances", "employment", "crime", "family_children",
                                        "network", "other", NULL};
static const char *const statuses[] = {"open", "in_progress", "done", "cancelled", NULL};
static const char *const scopes[] = {"mine", "organisation", NULL};
static const char *const booleans[] = {"true", "false", NULL};

/* One new action: shared with meeting outcomes, whose actions have the same
 * shape. */
const jc_field_t api_action_fields[] = {
  {.name = "title", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 200},
  {.name = "description", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 10000},
  {.name = "area", .type = JC_STRING, .flags = JC_REQUIRED, .enum_values = api_action_areas},
  {.name = "responsible_participant_id", .type = JC_STRING, .flags = JC_REQUIRED, .format = jc_format_uuid},
  {.name = "due_date", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_date},
  {.name = "agreed_in_meeting_id", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_uuid},
  {NULL},
};

static const jc_field_t action_patch_body[] = {
  {.name = "title", .type = JC_STRING, .min_len = 1, .max_len = 200},
  {.name = "description", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 10000},
  {.name = "area", .type = JC_STRING, .enum_values = api_action_areas},
  {.name = "responsible_participant_id", .type = JC_STRING, .format = jc_format_uuid},
  {.name = "due_date", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_date},
  {.name = "status", .type = JC_STRING, .enum_values = statuses},
  {NULL},
};

static const jc_field_t my_actions_query[] = {
  {.name = "limit", .type = JC_STRING, .format = api_format_limit},
  {.name = "cursor", .type = JC_STRING, .max_len = 512},
  {.name = "status", .type = JC_STRING, .enum_values = statuses},
  {.name = "overdue", .type = JC_STRING, .enum_values = booleans},
  {.name = "due_before", .type = JC_STRING, .format = jc_format_date},
  {.name = "scope", .type = JC_STRING, .enum_values = scopes},
  {NULL},
};

static const jc_field_t handover_body[] = {
  {.name = "participant_id", .type = JC_STRING, .flags = JC_REQUIRED, .format = jc_format_uuid},
  {NULL},
};

static const pg_stmt_t action_create = {"action_create",
  "SELECT * FROM kip_api.action_create($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t action_list = {"action_list",
  "SELECT * FROM kip_api.action_list($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t action_get = {"action_get",
  "SELECT * FROM kip_api.action_get($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t action_patch = {"action_patch",
  "SELECT * FROM kip_api.action_patch($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t action_history = {"action_history",
  "SELECT * FROM kip_api.action_history($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t my_actions = {"my_actions",
  "SELECT * FROM kip_api.my_actions($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t coordinator_handover = {"coordinator_handover",
  "SELECT * FROM kip_api.coordinator_handover($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t daily_pass = {"daily_pass_run",
  "SELECT * FROM kip_api.daily_pass_run($1::jsonb)", 1};

const route_t api_actions_routes[] = {
  {"POST", "/v1/plans/{id}/actions", NULL, api_action_fields, NULL, &action_create, 201,
   ROUTE_BODY | ROUTE_OPT_IF_MATCH},
  {"GET", "/v1/plans/{id}/actions", NULL, NULL, NULL, &action_list, 200, 0},
  {"GET", "/v1/actions/{id}", NULL, NULL, NULL, &action_get, 200, 0},
  {"PATCH", "/v1/actions/{id}", NULL, action_patch_body, NULL, &action_patch, 200,
   ROUTE_BODY | ROUTE_IF_MATCH},
  {"GET", "/v1/actions/{id}/history", NULL, NULL, api_page_query, &action_history, 200, 0},
  {"GET", "/v1/me/actions", NULL, NULL, my_actions_query, &my_actions, 200, 0},
  {"POST", "/v1/plans/{id}/coordinator", NULL, handover_body, NULL, &coordinator_handover, 200,
   ROUTE_BODY | ROUTE_OPT_IF_MATCH},
  {"POST", "/v1/admin/daily-pass", NULL, NULL, NULL, &daily_pass, 200, 0},
};
const size_t api_actions_n_routes = KIPD_ARRAY_SIZE(api_actions_routes);
