/* Participants of a plan. Nobody is erased: leaving sets left_at. */
#include "api/api.h"
#include "app/app.h"

static const char *const add_kinds[] = {"relative", "professional", NULL};

static const jc_field_t participant_add_body[] = {
  {.name = "kind", .type = JC_STRING, .flags = JC_REQUIRED, .enum_values = add_kinds},
  {.name = "user_id", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_uuid},
  {.name = "name", .type = JC_STRING, .min_len = 1, .max_len = 200},
  {.name = "role", .type = JC_STRING, .flags = JC_REQUIRED, .enum_values = api_participant_roles},
  {.name = "role_title", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 200},
  {.name = "organisation_id", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_uuid},
  {.name = "phone", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 40},
  {.name = "email", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_email},
  {.name = "default_attendance", .type = JC_STRING, .enum_values = api_attendance_modes},
  {NULL},
};

static const jc_field_t participant_patch_body[] = {
  {.name = "name", .type = JC_STRING, .min_len = 1, .max_len = 200},
  {.name = "role", .type = JC_STRING, .enum_values = api_participant_roles},
  {.name = "role_title", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 200},
  {.name = "phone", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 40},
  {.name = "email", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_email},
  {.name = "default_attendance", .type = JC_STRING, .enum_values = api_attendance_modes},
  {NULL},
};

static const jc_field_t participant_leave_query[] = {
  {.name = "reassign_to", .type = JC_STRING, .format = jc_format_uuid},
  {NULL},
};

static const pg_stmt_t participant_add = {"participant_add",
  "SELECT * FROM kip_api.participant_add($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t participant_list = {"participant_list",
  "SELECT * FROM kip_api.participant_list($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t participant_get = {"participant_get",
  "SELECT * FROM kip_api.participant_get($1::jsonb, $2::uuid, $3::uuid)", 3};
static const pg_stmt_t participant_patch = {"participant_patch",
  "SELECT * FROM kip_api.participant_patch($1::jsonb, $2::uuid, $3::uuid, $4::jsonb)", 4};
static const pg_stmt_t participant_leave = {"participant_leave",
  "SELECT * FROM kip_api.participant_leave($1::jsonb, $2::uuid, $3::uuid, $4::jsonb)", 4};

const route_t api_participants_routes[] = {
  {"POST", "/v1/plans/{id}/participants", NULL, participant_add_body, NULL, &participant_add, 201,
   ROUTE_BODY | ROUTE_OPT_IF_MATCH},
  {"GET", "/v1/plans/{id}/participants", NULL, NULL, NULL, &participant_list, 200, 0},
  {"GET", "/v1/plans/{id}/participants/{pid}", NULL, NULL, NULL, &participant_get, 200, 0},
  {"PATCH", "/v1/plans/{id}/participants/{pid}", NULL, participant_patch_body, NULL,
   &participant_patch, 200, ROUTE_BODY | ROUTE_OPT_IF_MATCH},
  {"DELETE", "/v1/plans/{id}/participants/{pid}", NULL, NULL, participant_leave_query,
   &participant_leave, 200, ROUTE_OPT_IF_MATCH},
};
const size_t api_participants_n_routes = KIPD_ARRAY_SIZE(api_participants_routes);
