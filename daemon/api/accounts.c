/* Organisations, users, tokens and /v1/me. */
#include <string.h>

#include "api/api.h"
#include "app/app.h"
#include "util/crypto.h"

static const char *const sectors[] = {
  "region_hospital", "region_psychiatry", "municipality_jobcenter", "municipality_social",
  "municipality_addiction", "general_practice", "civil_society", "private", "other", NULL};

static const char *const roles[] = {"admin", "coordinator", "caseworker", "integration", "auditor", "analyst", NULL};

static const jc_field_t organisation_body[] = {
  {.name = "name", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 200},
  {.name = "sector", .type = JC_STRING, .flags = JC_REQUIRED, .enum_values = sectors},
  {.name = "cvr", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_cvr},
  {.name = "ean", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_ean},
  {NULL},
};

static const jc_field_t role_item = {.type = JC_STRING, .enum_values = roles};

static const jc_field_t user_body[] = {
  {.name = "username", .type = JC_STRING, .flags = JC_REQUIRED, .format = jc_format_username},
  {.name = "display_name", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 200},
  {.name = "organisation_id", .type = JC_STRING, .flags = JC_REQUIRED, .format = jc_format_uuid},
  {.name = "roles", .type = JC_ARRAY, .flags = JC_REQUIRED, .items = &role_item, .min_len = 1, .max_len = 5},
  {.name = "email", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_email},
  {.name = "phone", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 40},
  /* Hashed with Argon2id off the loop (api/session.c); never stored. */
  {.name = "password", .type = JC_STRING, .format = api_format_password},
  {NULL},
};

static const jc_field_t user_patch_body[] = {
  {.name = "display_name", .type = JC_STRING, .min_len = 1, .max_len = 200},
  {.name = "roles", .type = JC_ARRAY, .items = &role_item, .min_len = 1, .max_len = 5},
  {.name = "email", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_email},
  {.name = "phone", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 40},
  {.name = "active", .type = JC_BOOL},
  {NULL},
};

static const jc_field_t token_body[] = {
  {.name = "name", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 200},
  {.name = "expires_at", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_datetime},
  {NULL},
};

static const jc_field_t user_list_query[] = {
  {.name = "limit", .type = JC_STRING, .format = api_format_limit},
  {.name = "cursor", .type = JC_STRING, .max_len = 512},
  {.name = "organisation", .type = JC_STRING, .format = jc_format_uuid},
  {NULL},
};

static const pg_stmt_t organisation_create = {"organisation_create",
  "SELECT * FROM kip_api.organisation_create($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t organisation_list = {"organisation_list",
  "SELECT * FROM kip_api.organisation_list($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t organisation_get = {"organisation_get",
  "SELECT * FROM kip_api.organisation_get($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t user_create = {"user_create",
  "SELECT * FROM kip_api.user_create($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t user_list = {"user_list",
  "SELECT * FROM kip_api.user_list($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t user_get = {"user_get",
  "SELECT * FROM kip_api.user_get($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t user_patch = {"user_patch",
  "SELECT * FROM kip_api.user_patch($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t token_create = {"token_create",
  "SELECT * FROM kip_api.token_create($1::jsonb, $2::uuid, $3::jsonb, $4::text)", 4};
static const pg_stmt_t token_list = {"token_list",
  "SELECT * FROM kip_api.token_list($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t token_delete = {"token_delete",
  "SELECT * FROM kip_api.token_delete($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t me = {"me", "SELECT * FROM kip_api.me($1::jsonb)", 1};

/* The token is made here and shown once; the database sees its hash. */
typedef struct token_state_s {
  char token[CRYPTO_TOKEN_LEN + 1];
} token_state_t;

static void token_create_done(kreq_t *r, const kreq_row_t *row) {
  token_state_t *st = r->handler_data;
  kreq_reply_row_with(r, row, "token", st->token);
  memset(st->token, 0, sizeof(st->token));
}

static void token_create_handler(kreq_t *r) {
  token_state_t *st = arena_alloc(&r->http->arena, sizeof(*st));
  char hash[65];
  if (st == NULL || crypto_token_new(st->token) != 0 ||
      crypto_sha256_hex(st->token, strlen(st->token), hash) != 0) {
    kreq_problem(r, 500, "could not make a token", NULL, NULL);
    return;
  }
  r->handler_data = st;
  const char **params = arena_alloc(&r->http->arena, 4 * sizeof(char *));
  params[0] = kreq_ctx(r);
  params[1] = r->match.params[0];
  params[2] = kreq_json_text(r, r->body);
  params[3] = kreq_strdup(r, hash);
  kreq_exec(r, &token_create, params, 201, token_create_done);
}

const route_t api_accounts_routes[] = {
  {"POST", "/v1/organisations", NULL, organisation_body, NULL, &organisation_create, 201, ROUTE_BODY},
  {"GET", "/v1/organisations", NULL, NULL, api_page_query, &organisation_list, 200, 0},
  {"GET", "/v1/organisations/{id}", NULL, NULL, NULL, &organisation_get, 200, 0},
  {"POST", "/v1/users", api_user_create_handler, user_body, NULL, &user_create, 201, ROUTE_BODY},
  {"GET", "/v1/users", NULL, NULL, user_list_query, &user_list, 200, 0},
  {"GET", "/v1/users/{id}", NULL, NULL, NULL, &user_get, 200, 0},
  {"PATCH", "/v1/users/{id}", NULL, user_patch_body, NULL, &user_patch, 200, ROUTE_BODY},
  {"POST", "/v1/users/{id}/tokens", token_create_handler, token_body, NULL, &token_create, 201,
   ROUTE_BODY | ROUTE_NO_IDEMPOTENCY},
  {"GET", "/v1/users/{id}/tokens", NULL, NULL, NULL, &token_list, 200, 0},
  {"DELETE", "/v1/tokens/{id}", NULL, NULL, NULL, &token_delete, 204, 0},
  {"GET", "/v1/me", NULL, NULL, NULL, &me, 200, 0},
};
const size_t api_accounts_n_routes = KIPD_ARRAY_SIZE(api_accounts_routes);
