#include "api/api.h"

#include <stdlib.h>
#include <string.h>

#include "util/validate.h"

const char *const api_needs_areas[] = {"substances", "somatic_health", "mental_health", "housing",
                                       "finances", "employment", "crime", "family_children",
                                       "network", NULL};

const char *const api_participant_roles[] = {
  "social_nurse", "caseworker", "jobcenter_caseworker", "support_contact_person",
  "general_practitioner", "addiction_counsellor", "psychiatry", "municipal_authority",
  "relative", "citizen", "other", NULL};

const char *const api_attendance_modes[] = {"in_person", "phone", "video", NULL};

/* limit=1..500, rewritten to an integer. */
const char *api_format_limit(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "out_of_range";
  const char *s = json_string_value(value);
  size_t len = strlen(s);
  if (len == 0 || len > 3 || !validate_digits(s, len))
    return "must be an integer from 1 to 500";
  int n = atoi(s);
  if (n < 1 || n > 500)
    return "must be an integer from 1 to 500";
  if (parent != NULL && key != NULL)
    json_object_set_new(parent, key, json_integer(n));
  return NULL;
}

const char *api_room_prefix(const char *room) {
  size_t run = 0;
  for (const unsigned char *c = (const unsigned char *)room; *c; c++) {
    /* A letter: ASCII, or a byte of a multi-byte UTF-8 character (æ, ø, å
     * and the like; continuation bytes do not count again). */
    bool letter = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c >= 0xc0;
    if (letter) {
      if (++run >= 3)
        return "";
    } else if (*c < 0x80) {
      run = 0;
    }
  }
  return "lokale ";
}

const jc_field_t api_page_query[] = {
  {.name = "limit", .type = JC_STRING, .format = api_format_limit},
  {.name = "cursor", .type = JC_STRING, .max_len = 512},
  {NULL},
};

int api_new(api_t **out) {
  api_t *api = calloc(1, sizeof(*api));
  if (api == NULL)
    return -ENOMEM;
  int rc = api_calendar_zone_load(&api->calendar_tz);
  if (rc != 0) {
    api_calendar_zone_free(NULL);
    free(api);
    return rc;
  }
  *out = api;
  return 0;
}

void api_free(api_t *api) {
  if (api == NULL)
    return;
  api_calendar_zone_free(api->calendar_tz);
  free(api);
}

int api_routes(route_t **out, size_t *n) {
  struct {
    const route_t *routes;
    size_t n;
  } families[] = {
    {api_health_routes, api_health_n_routes},
    {api_accounts_routes, api_accounts_n_routes},
    {api_plans_routes, api_plans_n_routes},
    {api_participants_routes, api_participants_n_routes},
    {api_consent_routes, api_consent_n_routes},
    {api_actions_routes, api_actions_n_routes},
    {api_meetings_routes, api_meetings_n_routes},
    {api_calendar_routes, api_calendar_n_routes},
    {api_session_routes, api_session_n_routes},
    {api_audit_routes, api_audit_n_routes},
    {api_events_routes, api_events_n_routes},
    {api_directory_routes, api_directory_n_routes},
    {api_fhir_routes, api_fhir_n_routes},
    {api_webhooks_routes, api_webhooks_n_routes},
    {api_stats_routes, api_stats_n_routes},
  };
  size_t total = 0;
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(families); i++)
    total += families[i].n;
  route_t *all = calloc(total, sizeof(*all));
  if (all == NULL)
    return -ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(families); i++) {
    memcpy(all + k, families[i].routes, families[i].n * sizeof(route_t));
    k += families[i].n;
  }
  *out = all;
  *n = total;
  return 0;
}
