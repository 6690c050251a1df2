/* The colleague directory: GET /v1/directory, for coordinators and
 * caseworkers who add a professional from another organisation to a plan.
 *
 * It shows only what a staff page would (name, organisation, one role
 * label, work phone and e-mail) of active users, never a username, a token
 * or the roles list. A lookup is not a plan access; it is audited as
 * directory.search and rate-limited per user (schema/functions/
 * 20_directory.sql). */
#include "api/api.h"
#include "app/app.h"

static const jc_field_t directory_query[] = {
  {.name = "q", .type = JC_STRING, .min_len = 2, .max_len = 200},
  {.name = "organisation_id", .type = JC_STRING, .format = jc_format_uuid},
  {.name = "limit", .type = JC_STRING, .format = api_format_limit},
  {.name = "cursor", .type = JC_STRING, .max_len = 512},
  {NULL},
};

static const pg_stmt_t directory_list = {"directory_list",
  "SELECT * FROM kip_api.directory($1::jsonb, $2::jsonb)", 2};

/* Either a name or an organisation: the directory is searched, never
 * listed whole. */
static void directory_handler(kreq_t *r) {
  if (json_object_get(r->query, "q") == NULL && json_object_get(r->query, "organisation_id") == NULL) {
    kreq_problem_code(r, 422, "q: give q (at least 2 characters) or organisation_id", "required", "q",
                      "give q (at least 2 characters) or organisation_id");
    return;
  }
  kreq_generic(r);
}

const route_t api_directory_routes[] = {
  {"GET", "/v1/directory", directory_handler, NULL, directory_query, &directory_list, 200, 0},
};
const size_t api_directory_n_routes = KIPD_ARRAY_SIZE(api_directory_routes);
