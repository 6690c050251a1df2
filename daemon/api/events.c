/* The live event stream: GET /v1/events, Server-Sent Events
 * (docs/events-stream.md).
 *
 * kip_api.events_open authenticates the caller, writes the one audit row
 * (events.stream) and says where the stream starts: after Last-Event-ID,
 * else after ?after= (for a client that cannot set the header), else after
 * the newest event. app/events.c then streams: the events the caller may
 * see under kip.plan_access, each as id/event/data, and a heartbeat
 * comment (schema/functions/22_events.sql). */
#include "api/api.h"
#include "app/app.h"
#include "app/events.h"
#include "util/validate.h"

#include <string.h>

/* An event id: 1 to 18 digits (a bigint that never overflows). */
static const char *events_format_id(json_t *parent, const char *key, json_t *value, const char **code) {
  (void)parent;
  (void)key;
  *code = "invalid_format";
  const char *s = json_string_value(value);
  size_t len = strlen(s);
  if (len == 0 || len > 18 || !validate_digits(s, len))
    return "must be an event id (digits)";
  return NULL;
}

static const jc_field_t events_query[] = {
  {.name = "after", .type = JC_STRING, .format = events_format_id},
  {NULL},
};

static const pg_stmt_t events_open = {"events_open",
  "SELECT * FROM kip_api.events_open($1::jsonb, $2::jsonb)", 2};

/* Run by app/events.c for each stream when events may be there. */
static const pg_stmt_t events_fetch = {"events_fetch",
  "SELECT * FROM kip_api.events_fetch($1::jsonb, $2::bigint, $3::integer)", 3};

static void events_on_open(kreq_t *r, const kreq_row_t *row) {
  json_t *body = kreq_row_object(r, row);
  if (body == NULL)
    return;
  const char *after = json_string_value(json_object_get(body, "after"));
  events_stream_start(r, after, &events_fetch);
  json_decref(body);
}

static void events_handler(kreq_t *r) {
  const char *last = http_request_header(r->http, "last-event-id");
  if (last != NULL) {
    json_t *v = json_string(last);
    const char *code = NULL;
    const char *why = v != NULL ? events_format_id(NULL, NULL, v, &code) : "out of memory";
    json_decref(v);
    if (why != NULL) {
      kreq_problem_code(r, 400, "Last-Event-ID: must be the id of an event this stream sent",
                        "invalid_format", "Last-Event-ID", why);
      return;
    }
    json_object_set_new(r->query, "last_event_id", json_string(last));
  }
  const char *params[3] = {kreq_ctx(r), kreq_json_text(r, r->query), NULL};
  kreq_exec(r, &events_open, params, 200, events_on_open);
}

const route_t api_events_routes[] = {
  {"GET", "/v1/events", events_handler, NULL, events_query, &events_open, 200, 0},
};
const size_t api_events_n_routes = KIPD_ARRAY_SIZE(api_events_routes);
