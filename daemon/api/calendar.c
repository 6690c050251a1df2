/* Calendars: the caller's meetings as an iCalendar feed built with libical,
 * by bearer token (GET /v1/me/calendar.ics) or by a per-user secret feed
 * URL that calendar programs can subscribe to without a header
 * (GET /v1/calendar-feeds/{id}?key=...), and the settings that shape it.
 *
 * Times are in Europe/Copenhagen with a VTIMEZONE. The zone is read from
 * libical's zoneinfo once, by api_new() at start-up, and kept in the API's
 * state (api_t, reached with app_api()); the loop
 * never touches a file for a feed. The feed never holds a CPR number, and
 * the citizen's name only when the user chose it (initials otherwise). */
#include <libical/ical.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "app/app.h"
#include "util/crypto.h"

#define CALENDAR_TZID "Europe/Copenhagen"

int api_calendar_zone_load(icaltimezone **out) {
  icaltimezone *builtin = icaltimezone_get_builtin_timezone(CALENDAR_TZID);
  icalcomponent *vtz = builtin ? icaltimezone_get_component(builtin) : NULL; /* borrowed */
  if (vtz == NULL)
    return -ENOENT;
  icalcomponent *copy = icalcomponent_new_clone(vtz);
  if (copy == NULL)
    return -ENOMEM;
  icalproperty *tzid = icalcomponent_get_first_property(copy, ICAL_TZID_PROPERTY);
  if (tzid != NULL)
    icalproperty_set_tzid(tzid, CALENDAR_TZID);
  icaltimezone *tz = icaltimezone_new();
  if (tz == NULL) {
    icalcomponent_free(copy);
    return -ENOMEM;
  }
  if (!icaltimezone_set_component(tz, copy)) { /* the zone owns copy from here */
    icalcomponent_free(copy);
    icaltimezone_free(tz, 1);
    return -EINVAL;
  }
  /* Expand the zone's changes now, not on the first request. */
  struct icaltimetype probe = icaltime_from_timet_with_zone(0, 0, tz);
  (void)probe;
  *out = tz;
  return 0;
}

void api_calendar_zone_free(icaltimezone *tz) {
  if (tz != NULL)
    icaltimezone_free(tz, 1);
  icaltimezone_free_builtin_timezones();
}

static const char *const kind_labels[][2] = {
  {"hospital", "Hospital"}, {"citizen_home", "Borgerens hjem"}, {"municipality", "Kommunen"},
  {"general_practice", "Lægepraksis"}, {"virtual", "Virtuelt møde"}, {"other", "Andet sted"},
};
static const char *const mode_labels[][2] = {
  {"in_person", "fremmøde"}, {"phone", "telefon"}, {"video", "video"},
};

static const char *label(const char *const table[][2], size_t n, const char *key) {
  for (size_t i = 0; key != NULL && i < n; i++)
    if (strcmp(table[i][0], key) == 0)
      return table[i][1];
  return key ? key : "";
}

static const char *jstr(json_t *obj, const char *key) { return json_string_value(json_object_get(obj, key)); }

/* Local time of a Unix time in the feed's zone, with the zone attached. */
static struct icaltimetype local_time(json_int_t t, icaltimezone *tz) {
  struct icaltimetype tt = icaltime_from_timet_with_zone((time_t)t, 0, tz);
  tt.zone = tz;
  return tt;
}

static icalproperty *with_tzid(icalproperty *prop) {
  icalproperty_add_parameter(prop, icalparameter_new_tzid(CALENDAR_TZID));
  return prop;
}

static char *hhmm(char buf[8], json_int_t t, icaltimezone *tz) {
  struct icaltimetype tt = local_time(t, tz);
  snprintf(buf, 8, "%02u:%02u", (unsigned)tt.hour % 100u, (unsigned)tt.minute % 100u);
  return buf;
}

/* One VEVENT (new). Strings go through libical, which escapes them. */
static icalcomponent *calendar_event(json_t *e, icaltimezone *tz) {
  json_int_t start = json_integer_value(json_object_get(e, "start"));
  json_int_t end = json_integer_value(json_object_get(e, "end"));
  const char *status = jstr(e, "status");
  icalcomponent *ev = icalcomponent_new(ICAL_VEVENT_COMPONENT);
  if (ev == NULL)
    return NULL;
  icalcomponent_add_property(ev, icalproperty_new_uid(jstr(e, "uid")));
  icalcomponent_add_property(ev, icalproperty_new_dtstamp(icaltime_from_timet_with_zone(
                                   (time_t)json_integer_value(json_object_get(e, "stamp")), 0,
                                   icaltimezone_get_utc_timezone())));
  icalcomponent_add_property(ev, with_tzid(icalproperty_new_dtstart(local_time(start, tz))));
  icalcomponent_add_property(ev, with_tzid(icalproperty_new_dtend(local_time(end, tz))));
  icalcomponent_add_property(ev, icalproperty_new_sequence((int)json_integer_value(json_object_get(e, "sequence"))));
  icalcomponent_add_property(ev, icalproperty_new_status(
                                   status && strcmp(status, "cancelled") == 0 ? ICAL_STATUS_CANCELLED
                                                                               : ICAL_STATUS_CONFIRMED));
  icalcomponent_add_property(ev, icalproperty_new_transp(ICAL_TRANSP_OPAQUE));

  char summary[512];
  snprintf(summary, sizeof(summary), "KIP-møde: %s", jstr(e, "citizen") ? jstr(e, "citizen") : "");
  icalcomponent_add_property(ev, icalproperty_new_summary(summary));

  const char *kind = label(kind_labels, KIPD_ARRAY_SIZE(kind_labels), jstr(e, "location_kind"));
  char *where = NULL;
  if (asprintf(&where, "%s%s%s%s%s%s", kind, jstr(e, "address") ? ", " : "",
               jstr(e, "address") ? jstr(e, "address") : "", jstr(e, "room") ? ", " : "",
               jstr(e, "room") ? api_room_prefix(jstr(e, "room")) : "",
               jstr(e, "room") ? jstr(e, "room") : "") >= 0) {
    icalcomponent_add_property(ev, icalproperty_new_location(where));
    free(where);
  }
  if (jstr(e, "video_url") != NULL)
    icalcomponent_add_property(ev, icalproperty_new_url(jstr(e, "video_url")));

  char s1[8], s2[8], s3[8], s4[8];
  char *desc = NULL;
  const char *mode = jstr(e, "mode");
  char *attendance = NULL;
  if (mode != NULL) {
    if (json_is_true(json_object_get(e, "has_window")))
      (void)!asprintf(&attendance, "Din deltagelse: %s kl. %s-%s (mødet varer %s-%s).\n",
                      label(mode_labels, KIPD_ARRAY_SIZE(mode_labels), mode), hhmm(s1, start, tz),
                      hhmm(s2, end, tz), hhmm(s3, json_integer_value(json_object_get(e, "meeting_start")), tz),
                      hhmm(s4, json_integer_value(json_object_get(e, "meeting_end")), tz));
    else
      (void)!asprintf(&attendance, "Din deltagelse: %s.\n",
                      label(mode_labels, KIPD_ARRAY_SIZE(mode_labels), mode));
  }
  if (asprintf(&desc, "Formål: %s\n%s%s%s%s%s%s%s", jstr(e, "purpose") ? jstr(e, "purpose") : "",
               attendance ? attendance : "", jstr(e, "chair") ? "Mødeleder: " : "",
               jstr(e, "chair") ? jstr(e, "chair") : "", jstr(e, "chair") ? ".\n" : "",
               jstr(e, "video_url") ? "Videolink: " : "", jstr(e, "video_url") ? jstr(e, "video_url") : "",
               jstr(e, "cancel_reason") ? "\nAflyst." : "") >= 0) {
    icalcomponent_add_property(ev, icalproperty_new_description(desc));
    free(desc);
  }
  free(attendance);
  return ev;
}

/* The whole VCALENDAR as text (new, free()), or NULL. doc is borrowed. */
static char *calendar_render(json_t *doc, icaltimezone *tz) {
  icalcomponent *cal = icalcomponent_new(ICAL_VCALENDAR_COMPONENT);
  if (cal == NULL)
    return NULL;
  icalcomponent_add_property(cal, icalproperty_new_version("2.0"));
  icalcomponent_add_property(cal, icalproperty_new_prodid("-//kipd//KIP-moeder//DA"));
  icalcomponent_add_property(cal, icalproperty_new_calscale("GREGORIAN"));
  icalproperty *name = icalproperty_new_x(jstr(doc, "name") ? jstr(doc, "name") : "KIP-møder");
  icalproperty_set_x_name(name, "X-WR-CALNAME");
  icalcomponent_add_property(cal, name);
  icalproperty *zone = icalproperty_new_x(CALENDAR_TZID);
  icalproperty_set_x_name(zone, "X-WR-TIMEZONE");
  icalcomponent_add_property(cal, zone);
  icalcomponent_add_component(cal, icalcomponent_new_clone(icaltimezone_get_component(tz)));
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(doc, "events"), i, e) {
    icalcomponent *ev = calendar_event(e, tz);
    if (ev == NULL) {
      icalcomponent_free(cal);
      return NULL;
    }
    icalcomponent_add_component(cal, ev);
  }
  char *text = icalcomponent_as_ical_string_r(cal);
  icalcomponent_free(cal);
  return text;
}

static void calendar_done(kreq_t *r, const kreq_row_t *row) {
  json_t *doc = kreq_row_body(r, row);
  const api_t *api = app_api(r->app);
  icaltimezone *tz = api != NULL ? api->calendar_tz : NULL;
  char *text = json_is_object(doc) && tz != NULL ? calendar_render(doc, tz) : NULL;
  json_decref(doc);
  if (text == NULL) {
    kreq_problem(r, 500, "could not build the calendar", NULL, NULL);
    return;
  }
  kreq_reply_raw(r, 200, "text/calendar; charset=utf-8", text, strlen(text), NULL, 0);
  free(text);
}

static const jc_field_t feed_query[] = {
  {.name = "key", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 200},
  {NULL},
};

static const jc_field_t settings_patch_body[] = {
  {.name = "calendar_show_citizen_name", .type = JC_BOOL},
  {NULL},
};

static const pg_stmt_t my_calendar = {"my_calendar", "SELECT * FROM kip_api.my_calendar($1::jsonb)", 1};
static const pg_stmt_t calendar_feed = {"calendar_feed",
  "SELECT * FROM kip_api.calendar_feed($1::jsonb, $2::uuid, $3::text)", 3};
static const pg_stmt_t calendar_feed_create = {"calendar_feed_create",
  "SELECT * FROM kip_api.calendar_feed_create($1::jsonb, $2::uuid, $3::text)", 3};
static const pg_stmt_t calendar_feed_delete = {"calendar_feed_delete",
  "SELECT * FROM kip_api.calendar_feed_delete($1::jsonb)", 1};
static const pg_stmt_t my_settings = {"my_settings", "SELECT * FROM kip_api.my_settings($1::jsonb)", 1};
static const pg_stmt_t my_settings_patch = {"my_settings_patch",
  "SELECT * FROM kip_api.my_settings_patch($1::jsonb, $2::jsonb)", 2};

static void my_calendar_handler(kreq_t *r) {
  const char **params = arena_alloc(&r->http->arena, sizeof(char *));
  if (params == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  params[0] = kreq_ctx(r);
  kreq_exec(r, &my_calendar, params, 200, calendar_done);
}

/* The secret URL: only the key's SHA-256 reaches the database. */
static void calendar_feed_handler(kreq_t *r) {
  const char *key = json_string_value(json_object_get(r->query, "key"));
  char hash[65];
  const char **params = arena_alloc(&r->http->arena, 3 * sizeof(char *));
  if (params == NULL || key == NULL || crypto_sha256_hex(key, strlen(key), hash) != 0) {
    kreq_problem(r, 500, "could not read the feed key", NULL, NULL);
    return;
  }
  params[0] = kreq_ctx(r);
  params[1] = r->match.params[0];
  params[2] = kreq_strdup(r, hash);
  kreq_exec(r, &calendar_feed, params, 200, calendar_done);
}

typedef struct feed_state_s {
  char *url;   /* arena; wiped when answered */
} feed_state_t;

static void calendar_feed_create_done(kreq_t *r, const kreq_row_t *row) {
  feed_state_t *st = r->handler_data;
  kreq_reply_row_with(r, row, "url", st->url);
  explicit_bzero(st->url, strlen(st->url));
}

/* True for a Host header kipd may echo into a link: a host name or address
 * and an optional port, nothing else. */
static bool calendar__host_ok(const char *h) {
  if (h == NULL || *h == '\0' || strlen(h) > 255)
    return false;
  for (const char *c = h; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
          *c == '-' || *c == ':' || *c == '[' || *c == ']'))
      return false;
  return true;
}

/* The base of an absolute link: --public-url, else the scheme and host the
 * request came to (X-Forwarded-Proto https from a TLS proxy, the Host
 * header), else the listen address. Arena string without a trailing slash. */
static const char *calendar__base_url(kreq_t *r) {
  const app_config_t *cfg = app_config(r->app);
  if (cfg->public_url != NULL && cfg->public_url[0] != '\0')
    return cfg->public_url;
  const char *proto = http_request_header(r->http, "x-forwarded-proto");
  const char *scheme = proto != NULL && strcasecmp(proto, "https") == 0 ? "https" : "http";
  const char *host = http_request_header(r->http, "host");
  if (calendar__host_ok(host))
    return arena_sprintf(&r->http->arena, "%s://%s", scheme, host);
  return arena_sprintf(&r->http->arena, "%s://%s:%d", scheme, cfg->listen_host, cfg->listen_port);
}

/* A new feed URL: 256 random bits, shown once; the database keeps the
 * SHA-256. Any earlier feed of the user stops working. */
static void calendar_feed_create_handler(kreq_t *r) {
  feed_state_t *st = arena_alloc(&r->http->arena, sizeof(*st));
  char key[CRYPTO_TOKEN_LEN + 1], hash[65], id[37];
  const char **params = arena_alloc(&r->http->arena, 3 * sizeof(char *));
  if (st == NULL || params == NULL || crypto_token_new(key) != 0 ||
      crypto_sha256_hex(key, strlen(key), hash) != 0 || crypto_uuid_v4(id) != 0) {
    kreq_problem(r, 500, "could not make a feed key", NULL, NULL);
    return;
  }
  st->url = arena_sprintf(&r->http->arena, "%s/v1/calendar-feeds/%s?key=%s", calendar__base_url(r), id, key);
  explicit_bzero(key, sizeof(key));
  if (st->url == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  r->handler_data = st;
  params[0] = kreq_ctx(r);
  params[1] = kreq_strdup(r, id);
  params[2] = kreq_strdup(r, hash);
  kreq_exec(r, &calendar_feed_create, params, 201, calendar_feed_create_done);
}

const route_t api_calendar_routes[] = {
  {"GET", "/v1/me/calendar.ics", my_calendar_handler, NULL, NULL, &my_calendar, 200, 0},
  {"POST", "/v1/me/calendar-feed", calendar_feed_create_handler, NULL, NULL, &calendar_feed_create, 201,
   ROUTE_NO_IDEMPOTENCY},
  {"DELETE", "/v1/me/calendar-feed", NULL, NULL, NULL, &calendar_feed_delete, 204, 0},
  {"GET", "/v1/calendar-feeds/{id}", calendar_feed_handler, NULL, feed_query, &calendar_feed, 200,
   ROUTE_PUBLIC},
  {"GET", "/v1/me/settings", NULL, NULL, NULL, &my_settings, 200, 0},
  {"PATCH", "/v1/me/settings", NULL, settings_patch_body, NULL, &my_settings_patch, 200, ROUTE_BODY},
};
const size_t api_calendar_n_routes = KIPD_ARRAY_SIZE(api_calendar_routes);
