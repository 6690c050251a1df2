/* api: kipd's HTTP resources. Each file holds one resource family: its
 * request specs (util/json_check), its SQL statements (kip_api.* functions,
 * defined in schema/functions/NN_<family>.sql) and its routes. */
#ifndef KIPD_API_API_H
#define KIPD_API_API_H

#include <libical/ical.h>
#include <stddef.h>

#include "app/router.h"
#include "util/error.h"

/* Each family's routes. */
extern const route_t api_health_routes[];
extern const size_t api_health_n_routes;
extern const route_t api_accounts_routes[];
extern const size_t api_accounts_n_routes;
extern const route_t api_plans_routes[];
extern const size_t api_plans_n_routes;
extern const route_t api_participants_routes[];
extern const size_t api_participants_n_routes;
extern const route_t api_consent_routes[];
extern const size_t api_consent_n_routes;
extern const route_t api_actions_routes[];
extern const size_t api_actions_n_routes;
extern const route_t api_meetings_routes[];
extern const size_t api_meetings_n_routes;
extern const route_t api_calendar_routes[];
extern const size_t api_calendar_n_routes;
extern const route_t api_session_routes[];
extern const size_t api_session_n_routes;

/* GET /v1/openapi.yaml: the compiled-in contract (api/openapi.c). */
struct kreq_s;
void api_openapi_handler(struct kreq_s *r);

/* POST /v1/users: with a password, hashed off the loop (api/session.c). */
struct kreq_s;
void api_user_create_handler(struct kreq_s *r);
/* The password policy as a json_check format hook (util/password.h). */
const char *api_format_password(json_t *parent, const char *key, json_t *value, const char **code);
extern const route_t api_audit_routes[];
extern const size_t api_audit_n_routes;
extern const route_t api_directory_routes[];
extern const size_t api_directory_n_routes;
extern const route_t api_events_routes[];
extern const size_t api_events_n_routes;
extern const route_t api_fhir_routes[];
extern const size_t api_fhir_n_routes;
extern const route_t api_webhooks_routes[];
extern const size_t api_webhooks_n_routes;
extern const route_t api_stats_routes[];
extern const size_t api_stats_n_routes;

/* The API layer's own state, made once at start-up before the loop serves
 * anyone (main.c), handed to the app with app_set_api() and reached from a
 * handler with app_api(r->app). There is no file-global state in api/. */
typedef struct api_s {
  icaltimezone *calendar_tz;  /* owned: Europe/Copenhagen with a plain TZID (api/calendar.c) */
} api_t;

/* Build the state: reads the calendar's time zone from libical's zoneinfo
 * (files: never on the loop). Returns 0 or -errno; *out is new. */
int api_new(api_t **out) KIPD_MUST_CHECK;
void api_free(api_t *api);

/* The calendar's zone (api/calendar.c): new in *out, or -errno. */
int api_calendar_zone_load(icaltimezone **out) KIPD_MUST_CHECK;
void api_calendar_zone_free(icaltimezone *tz);

/* The whole table, in one new array (free with free()). */
int api_routes(route_t **out, size_t *n) KIPD_MUST_CHECK;

/* Shared query-parameter specs and hooks. */
const char *api_format_limit(json_t *parent, const char *key, json_t *value, const char **code);
extern const jc_field_t api_page_query[];   /* limit, cursor */

/* Enum value lists shared across families. */
extern const char *const api_needs_areas[];
extern const char *const api_participant_roles[];
extern const char *const api_attendance_modes[];
extern const char *const api_action_areas[];   /* the needs areas and "other" */

/* The word put before a meeting room in the agenda and the calendar:
 * "lokale " for a bare number or code ("4", "B12", "2.14"), "" when the
 * room already names itself ("Lokale 4", "Mødelokale 2", "Auditoriet"),
 * i.e. holds a run of three or more letters. room is borrowed. */
const char *api_room_prefix(const char *room);

/* The fields of one new action (POST /v1/plans/{id}/actions, and each
 * action agreed in a meeting outcome). */
extern const jc_field_t api_action_fields[];

#endif
