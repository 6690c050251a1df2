/* Meetings: schedule, reschedule, cancel, invitee responses, the outcome
 * (with the actions agreed and the next meeting, in one transaction), the
 * agenda (JSON, or the printable Danish HTML page of api/agenda.c) and the
 * caller's meetings.
 * The rules live in schema/functions/15_meetings.sql. */
#include <stdlib.h>
#include <string.h>

#include "api/agenda.h"
#include "api/api.h"
#include "app/app.h"

static const char *const location_kinds[] = {"hospital", "citizen_home", "municipality",
                                             "general_practice", "virtual", "other", NULL};
static const char *const invitee_responses[] = {"accepted", "declined", "pending", NULL};

/* A video link: an absolute http(s) URL without spaces or control bytes. */
static const char *format_video_url(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "invalid_url";
  const char *s = json_string_value(value);
  if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
    return "must be an http or https URL";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= ' ' || *p == 0x7f)
      return "must not contain spaces or control characters";
  return NULL;
}

static const jc_field_t location_fields[] = {
  {.name = "kind", .type = JC_STRING, .flags = JC_REQUIRED, .enum_values = location_kinds},
  {.name = "address", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 500},
  {.name = "room", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 200},
  {.name = "video_url", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 2000, .format = format_video_url},
  {NULL},
};

static const jc_field_t invitee_fields[] = {
  {.name = "participant_id", .type = JC_STRING, .flags = JC_REQUIRED, .format = jc_format_uuid},
  {.name = "mode", .type = JC_STRING, .enum_values = api_attendance_modes},
  {.name = "window_start", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_datetime},
  {.name = "window_end", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_datetime},
  {NULL},
};
static const jc_field_t invitee_item = {.type = JC_OBJECT, .fields = invitee_fields};

#define MEETING_FIELDS(start_flags, location_flags)                                                 \
  {.name = "starts_at", .type = JC_STRING, .flags = start_flags, .format = jc_format_datetime},     \
  {.name = "duration_minutes", .type = JC_INT},                                                     \
  {.name = "location", .type = JC_OBJECT, .flags = location_flags, .fields = location_fields},      \
  {.name = "purpose", .type = JC_STRING, .flags = location_flags, .min_len = 1, .max_len = 2000},   \
  {.name = "chair_participant_id", .type = JC_STRING, .format = jc_format_uuid},                    \
  {.name = "invitees", .type = JC_ARRAY, .items = &invitee_item, .max_len = 100},                   \
  {NULL}

static const jc_field_t meeting_create_body[] = {MEETING_FIELDS(JC_REQUIRED, JC_REQUIRED)};
static const jc_field_t meeting_patch_body[] = {MEETING_FIELDS(0, 0)};
/* The next meeting decided in an outcome: location and purpose default to
 * those of the meeting it follows. */
static const jc_field_t next_meeting_fields[] = {MEETING_FIELDS(JC_REQUIRED, 0)};

static const jc_field_t meeting_cancel_body[] = {
  {.name = "reason", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 2000},
  {NULL},
};

static const jc_field_t invitee_response_body[] = {
  {.name = "response", .type = JC_STRING, .flags = JC_REQUIRED, .enum_values = invitee_responses},
  {NULL},
};

static const jc_field_t attendance_fields[] = {
  {.name = "participant_id", .type = JC_STRING, .flags = JC_REQUIRED, .format = jc_format_uuid},
  {.name = "attended", .type = JC_BOOL, .flags = JC_REQUIRED},
  {.name = "mode", .type = JC_STRING, .flags = JC_NULLABLE, .enum_values = api_attendance_modes},
  {NULL},
};
static const jc_field_t attendance_item = {.type = JC_OBJECT, .fields = attendance_fields};

static const jc_field_t observation_fields[] = {
  {.name = "participant_id", .type = JC_STRING, .flags = JC_REQUIRED, .format = jc_format_uuid},
  {.name = "text", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 10000},
  {NULL},
};
static const jc_field_t observation_item = {.type = JC_OBJECT, .fields = observation_fields};

static const jc_field_t action_item = {.type = JC_OBJECT, .fields = api_action_fields};

static const jc_field_t no_further_meeting_fields[] = {
  {.name = "reason", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 2000},
  {NULL},
};

static const jc_field_t meeting_outcome_body[] = {
  {.name = "attendance", .type = JC_ARRAY, .flags = JC_REQUIRED, .items = &attendance_item,
   .min_len = 1, .max_len = 100},
  {.name = "observations", .type = JC_ARRAY, .items = &observation_item, .max_len = 100},
  {.name = "summary", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 20000},
  {.name = "shared_assessment", .type = JC_STRING, .flags = JC_NULLABLE, .max_len = 20000},
  {.name = "citizen_accepted", .type = JC_BOOL, .flags = JC_REQUIRED},
  {.name = "actions", .type = JC_ARRAY, .items = &action_item, .max_len = 50},
  {.name = "next_meeting", .type = JC_OBJECT, .flags = JC_NULLABLE, .fields = next_meeting_fields},
  {.name = "no_further_meeting", .type = JC_OBJECT, .flags = JC_NULLABLE,
   .fields = no_further_meeting_fields},
  {NULL},
};

static const jc_field_t my_meetings_query[] = {
  {.name = "from", .type = JC_STRING, .format = jc_format_date},
  {.name = "to", .type = JC_STRING, .format = jc_format_date},
  {NULL},
};

static const pg_stmt_t meeting_create = {"meeting_create",
  "SELECT * FROM kip_api.meeting_create($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t meeting_list = {"meeting_list",
  "SELECT * FROM kip_api.meeting_list($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t meeting_get = {"meeting_get",
  "SELECT * FROM kip_api.meeting_get($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t meeting_patch = {"meeting_patch",
  "SELECT * FROM kip_api.meeting_patch($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t meeting_cancel = {"meeting_cancel",
  "SELECT * FROM kip_api.meeting_cancel($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t meeting_invitee_response = {"meeting_invitee_response",
  "SELECT * FROM kip_api.meeting_invitee_response($1::jsonb, $2::uuid, $3::uuid, $4::jsonb)", 4};
static const pg_stmt_t meeting_outcome = {"meeting_outcome",
  "SELECT * FROM kip_api.meeting_outcome($1::jsonb, $2::uuid, $3::jsonb)", 3};
static const pg_stmt_t meeting_agenda = {"meeting_agenda",
  "SELECT * FROM kip_api.meeting_agenda($1::jsonb, $2::uuid)", 2};
static const pg_stmt_t my_meetings = {"my_meetings",
  "SELECT * FROM kip_api.my_meetings($1::jsonb, $2::jsonb)", 2};

static void meetings_agenda_done(kreq_t *r, const kreq_row_t *row) {
  if (r->handler_data == NULL) {
    kreq_reply_row(r, row);
    return;
  }
  json_t *doc = kreq_row_object(r, row);
  if (doc == NULL)
    return;
  size_t len = 0;
  char *html = agenda_render_html(doc, &len);
  json_decref(doc);
  if (html == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  /* Its one inline style sheet is the only thing the page may load. */
  static const http_header_t hdrs[] = {
    {"Vary", "Accept"},
    {"Content-Security-Policy",
     "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
  };
  kreq_reply_raw(r, 200, "text/html; charset=utf-8", html, len, hdrs, KIPD_ARRAY_SIZE(hdrs));
  free(html);
}

static void meetings_agenda_handler(kreq_t *r) {
  /* handler_data non-NULL: render HTML. */
  r->handler_data = agenda_wants_html(http_request_header(r->http, "accept")) ? (void *)r : NULL;
  const char **params = arena_alloc(&r->http->arena, 2 * sizeof(char *));
  if (params == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  params[0] = kreq_ctx(r);
  params[1] = r->match.params[0];
  kreq_exec(r, &meeting_agenda, params, 200, meetings_agenda_done);
}

const route_t api_meetings_routes[] = {
  {"POST", "/v1/plans/{id}/meetings", NULL, meeting_create_body, NULL, &meeting_create, 201,
   ROUTE_BODY | ROUTE_OPT_IF_MATCH},
  {"GET", "/v1/plans/{id}/meetings", NULL, NULL, NULL, &meeting_list, 200, 0},
  {"GET", "/v1/meetings/{id}", NULL, NULL, NULL, &meeting_get, 200, 0},
  {"PATCH", "/v1/meetings/{id}", NULL, meeting_patch_body, NULL, &meeting_patch, 200,
   ROUTE_BODY | ROUTE_IF_MATCH},
  {"POST", "/v1/meetings/{id}/cancel", NULL, meeting_cancel_body, NULL, &meeting_cancel, 200,
   ROUTE_BODY | ROUTE_IF_MATCH},
  {"PUT", "/v1/meetings/{id}/invitees/{pid}/response", NULL, invitee_response_body, NULL,
   &meeting_invitee_response, 200, ROUTE_BODY | ROUTE_OPT_IF_MATCH},
  {"POST", "/v1/meetings/{id}/outcome", NULL, meeting_outcome_body, NULL, &meeting_outcome, 201,
   ROUTE_BODY | ROUTE_OPT_IF_MATCH},
  {"GET", "/v1/meetings/{id}/agenda", meetings_agenda_handler, NULL, NULL, &meeting_agenda, 200, 0},
  {"GET", "/v1/me/meetings", NULL, NULL, my_meetings_query, &my_meetings, 200, 0},
};
const size_t api_meetings_n_routes = KIPD_ARRAY_SIZE(api_meetings_routes);
