/* Webhooks: subscriptions of an organisation's systems to the outbox
 * (issue 14). POST, GET /v1/webhooks, DELETE /v1/webhooks/{id}, the
 * deliveries of one, and redelivery by hand; for the integration role and
 * admins, within their own organisation (schema/functions/21_webhooks.sql).
 *
 * The URL is checked here against the outbound policy (app/webhook_sign.h):
 * https, no credentials, and no private, loopback, link-local or multicast
 * IP literal unless --webhook-allow-net names it. A host name is checked
 * again on the address it resolves to at every delivery. The secret is made
 * here from 256 random bits and answered once; delivery is app/webhook.c. */
#include <string.h>

#include "api/api.h"
#include "app/app.h"
#include "app/webhook_sign.h"
#include "util/crypto.h"

#define WEBHOOK_SECRET_PREFIX "whsec_"

static const jc_field_t event_type_item[] = {
  {.name = "item", .type = JC_STRING, .min_len = 3, .max_len = 100},
  {NULL},
};

static const jc_field_t webhook_create_body[] = {
  {.name = "url", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 10, .max_len = 2000},
  {.name = "event_types", .type = JC_ARRAY, .items = event_type_item, .max_len = 100},
  {.name = "description", .type = JC_STRING, .max_len = 200},
  {NULL},
};

static const char *const delivery_statuses[] = {"pending", "delivered", "failed", NULL};

static const jc_field_t deliveries_query[] = {
  {.name = "limit", .type = JC_STRING, .format = api_format_limit},
  {.name = "cursor", .type = JC_STRING, .max_len = 512},
  {.name = "status", .type = JC_STRING, .enum_values = delivery_statuses},
  {NULL},
};

static const pg_stmt_t webhook_create = {"webhook_create",
  "SELECT * FROM kip_api.webhook_create($1::jsonb, $2::uuid, $3::text, $4::jsonb)", 4};
static const pg_stmt_t webhook_list = {"webhook_list",
  "SELECT * FROM kip_api.webhook_list($1::jsonb, $2::jsonb)", 2};
static const pg_stmt_t webhook_delete = {"webhook_delete",
  "SELECT * FROM kip_api.webhook_delete($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t webhook_deliveries = {"webhook_deliveries",
  "SELECT * FROM kip_api.webhook_deliveries($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t webhook_redeliver = {"webhook_redeliver",
  "SELECT * FROM kip_api.webhook_redeliver($1::jsonb, $2::uuid, $3::uuid)", 3};

typedef struct webhook_state_s {
  char *secret;   /* arena; wiped when answered */
} webhook_state_t;

static void webhook_wipe(void *arg) {
  webhook_state_t *st = arg;
  if (st->secret != NULL)
    explicit_bzero(st->secret, strlen(st->secret));
}

/* The 201 answer: the subscription and, this once, its secret. */
static void webhook_create_done(kreq_t *r, const kreq_row_t *row) {
  webhook_state_t *st = r->handler_data;
  kreq_reply_row_with(r, row, "secret", st->secret);
}

static void webhook_create_handler(kreq_t *r) {
  const app_config_t *cfg = app_config(r->app);
  const char *url = json_string_value(json_object_get(r->body, "url"));
  const char *reason = NULL, *code = NULL;
  int rc = webhook_sign_check_url(cfg->webhook_net, cfg->webhook_allow_loopback, url, &reason, &code);
  if (rc == -ENOMEM) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  if (rc != 0) {
    kreq_problem_code(r, 422, arena_sprintf(&r->http->arena, "url: %s", reason), code, "url", reason);
    return;
  }
  webhook_state_t *st = arena_alloc(&r->http->arena, sizeof(*st));
  const char **params = arena_alloc(&r->http->arena, 4 * sizeof(char *));
  char random[44], id[37];
  if (st == NULL || params == NULL || crypto_random_b64url(32, random) != 0 || crypto_uuid_v4(id) != 0) {
    kreq_problem(r, 500, "could not make a webhook secret", NULL, NULL);
    return;
  }
  st->secret = arena_sprintf(&r->http->arena, "%s%s", WEBHOOK_SECRET_PREFIX, random);
  explicit_bzero(random, sizeof(random));
  if (st->secret == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  r->handler_data = st;
  r->on_release = webhook_wipe;
  r->on_release_arg = st;
  params[0] = kreq_ctx(r);
  params[1] = kreq_strdup(r, id);
  params[2] = st->secret;
  params[3] = kreq_json_text(r, r->body);
  kreq_exec(r, &webhook_create, params, 201, webhook_create_done);
}

const route_t api_webhooks_routes[] = {
  /* Its answer shows the signing secret once: no Idempotency-Key (a stored
   * answer would keep the secret for 24 hours). */
  {"POST", "/v1/webhooks", webhook_create_handler, webhook_create_body, NULL, &webhook_create, 201,
   ROUTE_BODY | ROUTE_NO_IDEMPOTENCY},
  {"GET", "/v1/webhooks", NULL, NULL, api_page_query, &webhook_list, 200, 0},
  {"DELETE", "/v1/webhooks/{id}", NULL, NULL, NULL, &webhook_delete, 204, 0},
  {"GET", "/v1/webhooks/{id}/deliveries", NULL, NULL, deliveries_query, &webhook_deliveries, 200, 0},
  {"POST", "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", NULL, NULL, NULL, &webhook_redeliver, 202,
   0},
};
const size_t api_webhooks_n_routes = KIPD_ARRAY_SIZE(api_webhooks_routes);
