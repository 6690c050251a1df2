/* Consent: the gate for everything else. */
#include "api/api.h"
#include "app/app.h"

static const char *const forms[] = {"verbal", "written", NULL};

static const jc_field_t org_item = {.type = JC_STRING, .format = jc_format_uuid};

static const jc_field_t consent_body[] = {
  {.name = "kip_consent", .type = JC_BOOL, .flags = JC_REQUIRED},
  {.name = "contact_organisation_ids", .type = JC_ARRAY, .items = &org_item, .max_len = 100},
  {.name = "relatives_allowed", .type = JC_BOOL},
  {.name = "form", .type = JC_STRING, .flags = JC_REQUIRED, .enum_values = forms},
  {.name = "given_at", .type = JC_STRING, .flags = JC_REQUIRED, .format = jc_format_datetime},
  {.name = "review_by", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_date},
  {NULL},
};

static const jc_field_t withdraw_body[] = {
  {.name = "note", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 2000},
  {NULL},
};

static const pg_stmt_t consent_record = {"consent_record",
  "SELECT * FROM kip_api.consent_record($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t consent_withdraw = {"consent_withdraw",
  "SELECT * FROM kip_api.consent_withdraw($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t consent_get = {"consent_get",
  "SELECT * FROM kip_api.consent_get($1::jsonb, $2::uuid)", 2};

const route_t api_consent_routes[] = {
  {"GET", "/v1/plans/{id}/consent", NULL, NULL, NULL, &consent_get, 200, 0},
  {"POST", "/v1/plans/{id}/consent", NULL, consent_body, NULL, &consent_record, 201,
   ROUTE_BODY | ROUTE_OPT_IF_MATCH},
  {"POST", "/v1/plans/{id}/consent/withdraw", NULL, withdraw_body, NULL, &consent_withdraw, 200,
   ROUTE_BODY | ROUTE_OPT_IF_MATCH},
};
const size_t api_consent_n_routes = KIPD_ARRAY_SIZE(api_consent_routes);
