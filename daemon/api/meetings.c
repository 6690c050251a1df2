/* Meetings: schedule, reschedule, cancel, invitee responses, the outcome
 * (with the actions agreed and the next meeting, in one transaction), the
 * agenda (JSON, or a printable Danish HTML page) and the caller's meetings.
 * The rules live in schema/functions/15_meetings.sql. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* ---- the printable agenda ---- */

/* Accept: the HTML page when text/html is acceptable (q > 0) and preferred
 * to application/json (a higher q, or the same q and listed first). */
static bool agenda_wants_html(const char *accept) {
  if (accept == NULL)
    return false;
  double q_html = -1, q_json = -1;
  int pos_html = -1, pos_json = -1, pos = 0;
  const char *item = accept;
  while (*item) {
    const char *end = strchr(item, ',');
    size_t n = end ? (size_t)(end - item) : strlen(item);
    while (n > 0 && (*item == ' ' || *item == '\t')) {
      item++;
      n--;
    }
    size_t type_len = 0;
    while (type_len < n && item[type_len] != ';' && item[type_len] != ' ')
      type_len++;
    double q = 1.0;
    for (size_t k = type_len; k + 2 < n; k++)
      if (item[k] == ';') {
        size_t j = k + 1;
        while (j < n && item[j] == ' ')
          j++;
        if (j + 2 <= n && (item[j] == 'q' || item[j] == 'Q') && item[j + 1] == '=')
          q = strtod(item + j + 2, NULL);
      }
    if (type_len == 9 && strncasecmp(item, "text/html", 9) == 0) {
      q_html = q;
      pos_html = pos;
    } else if (type_len == 16 && strncasecmp(item, "application/json", 16) == 0) {
      q_json = q;
      pos_json = pos;
    }
    pos++;
    if (end == NULL)
      break;
    item = end + 1;
  }
  if (q_html <= 0)
    return false;
  return q_html > q_json || (q_html == q_json && pos_html < pos_json);
}

typedef struct html_s {
  char *buf;
  size_t len, cap;
  bool failed;
} html_t;

static void html_put(html_t *h, const char *s, size_t n) {
  if (h->failed)
    return;
  if (h->len + n + 1 > h->cap) {
    size_t cap = h->cap ? h->cap : 8192;
    while (cap < h->len + n + 1)
      cap *= 2;
    char *b = realloc(h->buf, cap);
    if (b == NULL) {
      h->failed = true;
      return;
    }
    h->buf = b;
    h->cap = cap;
  }
  memcpy(h->buf + h->len, s, n);
  h->len += n;
  h->buf[h->len] = '\0';
}

static void html_raw(html_t *h, const char *s) { html_put(h, s, strlen(s)); }

/* Text into element content or a quoted attribute: & < > " ' escaped. */
static void html_text(html_t *h, const char *s) {
  if (s == NULL)
    return;
  const char *start = s;
  for (; *s; s++) {
    const char *rep = NULL;
    switch (*s) {
    case '&': rep = "&amp;"; break;
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '"': rep = "&quot;"; break;
    case '\'': rep = "&#39;"; break;
    default: continue;
    }
    html_put(h, start, (size_t)(s - start));
    html_raw(h, rep);
    start = s + 1;
  }
  html_put(h, start, (size_t)(s - start));
}

/* Text with line breaks kept. */
static void html_para(html_t *h, const char *s) {
  if (s == NULL)
    return;
  html_raw(h, "<p class=\"text\">");
  html_text(h, s);
  html_raw(h, "</p>\n");
}

static const char *jstr(json_t *obj, const char *key) { return json_string_value(json_object_get(obj, key)); }

typedef struct label_s {
  const char *key, *label;
} label_t;

static const label_t danish_labels[] = {
  {"hospital", "Hospital"}, {"citizen_home", "Borgerens hjem"}, {"municipality", "Kommunen"},
  {"general_practice", "Lægepraksis"}, {"virtual", "Virtuelt møde"},
  {"social_nurse", "Socialsygeplejerske"}, {"caseworker", "Sagsbehandler"},
  {"jobcenter_caseworker", "Sagsbehandler, jobcenter"}, {"support_contact_person", "Støttekontaktperson"},
  {"general_practitioner", "Praktiserende læge"}, {"addiction_counsellor", "Rusmiddelbehandler"},
  {"psychiatry", "Psykiatri"}, {"municipal_authority", "Kommunal myndighed"}, {"relative", "Pårørende"},
  {"citizen", "Borger"}, {"in_person", "Fremmøde"}, {"phone", "Telefon"}, {"video", "Video"},
  {"pending", "Afventer svar"}, {"accepted", "Kommer"}, {"declined", "Afbud"},
  {"open", "Åben"}, {"in_progress", "I gang"}, {"done", "Udført"}, {"cancelled", "Aflyst"},
  {"achieved", "Nået"}, {"dropped", "Opgivet"}, {"planned", "Planlagt"}, {"held", "Afholdt"},
  {"substances", "Rusmidler"}, {"somatic_health", "Somatisk helbred"}, {"mental_health", "Psykisk helbred"},
  {"housing", "Bolig"}, {"finances", "Økonomi"}, {"employment", "Beskæftigelse"}, {"crime", "Kriminalitet"},
  {"family_children", "Familie og børn"}, {"network", "Netværk"}, {"other", "Andet"},
  {"team", "Teamets mål"},
};

static const char *danish(const char *key) {
  if (key == NULL)
    return "";
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(danish_labels); i++)
    if (strcmp(danish_labels[i].key, key) == 0)
      return danish_labels[i].label;
  return key;
}

static void html_cell(html_t *h, const char *s) {
  html_raw(h, "<td>");
  html_text(h, s);
  html_raw(h, "</td>");
}

static void agenda_goals(html_t *h, json_t *goals) {
  size_t i;
  json_t *g;
  if (json_array_size(goals) == 0) {
    html_raw(h, "<p>Ingen mål er skrevet ned endnu.</p>\n");
    return;
  }
  html_raw(h, "<ul>\n");
  json_array_foreach(goals, i, g) {
    html_raw(h, "<li>");
    html_text(h, jstr(g, "text"));
    html_raw(h, " <span class=\"meta\">(");
    const char *owner = jstr(g, "owner");
    html_text(h, owner && strcmp(owner, "citizen") == 0 ? "Borgerens mål" : danish(owner));
    html_raw(h, ", ");
    html_text(h, danish(jstr(g, "status")));
    html_raw(h, ")</span>");
    json_t *subs = json_object_get(g, "sub_goals");
    if (json_array_size(subs) > 0) {
      size_t j;
      json_t *s;
      html_raw(h, "<ul>");
      json_array_foreach(subs, j, s) {
        html_raw(h, "<li>");
        html_text(h, jstr(s, "text"));
        html_raw(h, " <span class=\"meta\">(");
        html_text(h, danish(jstr(s, "status")));
        html_raw(h, ")</span></li>");
      }
      html_raw(h, "</ul>");
    }
    html_raw(h, "</li>\n");
  }
  html_raw(h, "</ul>\n");
}

static void agenda_actions(html_t *h, json_t *actions, bool with_area) {
  size_t i;
  json_t *a;
  html_raw(h, "<table>\n<tr><th>Indsats</th>");
  if (with_area)
    html_raw(h, "<th>Område</th>");
  html_raw(h, "<th>Ansvarlig</th><th>Frist</th><th>Status</th></tr>\n");
  json_array_foreach(actions, i, a) {
    bool overdue = json_is_true(json_object_get(a, "overdue"));
    html_raw(h, overdue ? "<tr class=\"overdue\">" : "<tr>");
    html_raw(h, "<td>");
    html_text(h, jstr(a, "title"));
    if (jstr(a, "description") != NULL) {
      html_raw(h, "<br><span class=\"meta\">");
      html_text(h, jstr(a, "description"));
      html_raw(h, "</span>");
    }
    html_raw(h, "</td>");
    if (with_area)
      html_cell(h, danish(jstr(a, "area")));
    html_cell(h, jstr(a, "responsible_name"));
    html_cell(h, jstr(a, "due_date") ? jstr(a, "due_date") : "–");
    html_raw(h, "<td>");
    html_text(h, danish(jstr(a, "status")));
    if (overdue)
      html_raw(h, " <strong>(overskredet)</strong>");
    html_raw(h, "</td></tr>\n");
  }
  html_raw(h, "</table>\n");
}

/* The agenda as a printable Danish page. Every value from the document is
 * escaped; only the fixed labels above are written raw. */
static void agenda_html(html_t *h, json_t *a) {
  json_t *local = json_object_get(a, "local");
  json_t *loc = json_object_get(a, "location");
  json_t *citizen = json_object_get(a, "citizen");
  json_t *chair = json_object_get(a, "chair");
  html_raw(h, "<!DOCTYPE html>\n<html lang=\"da\">\n<head>\n<meta charset=\"utf-8\">\n<title>Dagsorden for KIP-møde ");
  html_text(h, jstr(local, "date"));
  html_raw(h, "</title>\n<style>\n"
              "body{font-family:Arial,Helvetica,sans-serif;font-size:11pt;max-width:48em;margin:2em auto;color:#000}\n"
              "h1{font-size:16pt;margin-bottom:.2em}h2{font-size:13pt;margin-top:1.4em;border-bottom:1px solid #000}\n"
              "table{border-collapse:collapse;width:100%}th,td{border:1px solid #777;padding:.25em .4em;"
              "text-align:left;vertical-align:top}th{background:#eee}\n"
              ".meta{color:#444;font-size:10pt}.overdue td{font-weight:bold}.text{white-space:pre-wrap}\n"
              "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}dd{margin:0}\n"
              ".notes{height:12em;border:1px solid #777}\n"
              "@media print{body{margin:0;max-width:none}h2{break-after:avoid}tr{break-inside:avoid}}\n"
              "</style>\n</head>\n<body>\n<h1>Dagsorden for KIP-møde</h1>\n<dl>\n<dt>Borger</dt><dd>");
  html_text(h, jstr(citizen, "name"));
  if (jstr(citizen, "phone")) {
    html_raw(h, ", tlf. ");
    html_text(h, jstr(citizen, "phone"));
  }
  html_raw(h, "</dd>\n<dt>Tidspunkt</dt><dd>");
  html_text(h, jstr(local, "weekday"));
  html_raw(h, " ");
  html_text(h, jstr(local, "date"));
  html_raw(h, " kl. ");
  html_text(h, jstr(local, "start"));
  html_raw(h, "–");
  html_text(h, jstr(local, "end"));
  html_raw(h, " (dansk tid)</dd>\n<dt>Sted</dt><dd>");
  html_text(h, danish(jstr(loc, "kind")));
  if (jstr(loc, "address")) {
    html_raw(h, ", ");
    html_text(h, jstr(loc, "address"));
  }
  if (jstr(loc, "room")) {
    html_raw(h, ", ");
    html_raw(h, api_room_prefix(jstr(loc, "room")));
    html_text(h, jstr(loc, "room"));
  }
  if (jstr(loc, "video_url")) {
    html_raw(h, "<br>Videolink: ");
    html_text(h, jstr(loc, "video_url"));
  }
  html_raw(h, "</dd>\n<dt>Mødeleder</dt><dd>");
  html_text(h, jstr(chair, "name"));
  html_raw(h, "</dd>\n<dt>Status</dt><dd>");
  html_text(h, danish(jstr(a, "status")));
  html_raw(h, "</dd>\n</dl>\n<h2>Formål med mødet</h2>\n");
  html_para(h, jstr(a, "purpose"));

  html_raw(h, "<h2>Deltagere</h2>\n<table>\n<tr><th>Navn</th><th>Rolle</th><th>Organisation</th>"
              "<th>Telefon</th><th>E-mail</th><th>Deltager</th><th>Svar</th></tr>\n");
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(a, "participants"), i, p) {
    html_raw(h, "<tr>");
    html_cell(h, jstr(p, "name"));
    html_raw(h, "<td>");
    html_text(h, danish(jstr(p, "role")));
    if (jstr(p, "role_title")) {
      html_raw(h, "<br><span class=\"meta\">");
      html_text(h, jstr(p, "role_title"));
      html_raw(h, "</span>");
    }
    html_raw(h, "</td>");
    html_cell(h, jstr(p, "organisation_name"));
    html_cell(h, jstr(p, "phone"));
    html_cell(h, jstr(p, "email"));
    html_raw(h, "<td>");
    html_text(h, danish(jstr(p, "mode")));
    if (jstr(p, "window_local")) {
      html_raw(h, " kl. ");
      html_text(h, jstr(p, "window_local"));
    }
    html_raw(h, "</td>");
    html_cell(h, danish(jstr(p, "response")));
    html_raw(h, "</tr>\n");
  }
  html_raw(h, "</table>\n<h2>Mål</h2>\n");
  agenda_goals(h, json_object_get(a, "goals"));

  html_raw(h, "<h2>Åbne indsatser</h2>\n");
  json_t *open = json_object_get(a, "open_actions");
  if (json_array_size(open) == 0)
    html_raw(h, "<p>Ingen åbne indsatser.</p>\n");
  else
    agenda_actions(h, open, true);

  html_raw(h, "<h2>Sidste møde</h2>\n");
  json_t *prev = json_object_get(a, "previous_meeting");
  if (!json_is_object(prev)) {
    html_raw(h, "<p>Dette er det første møde.</p>\n");
  } else {
    html_raw(h, "<p>Afholdt ");
    html_text(h, jstr(prev, "local_date"));
    html_raw(h, ".</p>\n<h3>Resumé</h3>\n");
    html_para(h, jstr(prev, "summary"));
    if (jstr(prev, "shared_assessment")) {
      html_raw(h, "<h3>Fælles vurdering</h3>\n");
      html_para(h, jstr(prev, "shared_assessment"));
    }
    json_t *agreed = json_object_get(prev, "agreed_actions");
    html_raw(h, "<h3>Aftalt på mødet</h3>\n");
    if (json_array_size(agreed) == 0)
      html_raw(h, "<p>Ingen indsatser blev aftalt.</p>\n");
    else
      agenda_actions(h, agreed, false);
  }
  html_raw(h, "<h2>Status fra hver deltager, fælles vurdering og nye aftaler</h2>\n<div class=\"notes\"></div>\n"
              "<h2>Næste møde</h2>\n<p>Dato: ____________________ &nbsp; Sted: ____________________</p>\n"
              "</body>\n</html>\n");
}

static void agenda_done(kreq_t *r, PGresult *res) {
  if (r->handler_data == NULL) {
    kreq_reply_row(r, res);
    return;
  }
  json_t *doc = kreq_row_object(r, res);
  if (doc == NULL)
    return;
  html_t h = {0};
  agenda_html(&h, doc);
  json_decref(doc);
  if (h.failed) {
    free(h.buf);
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  /* Its one inline style sheet is the only thing the page may load. */
  static const http_header_t hdrs[] = {
    {"Vary", "Accept"},
    {"Content-Security-Policy",
     "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
  };
  kreq_reply_raw(r, 200, "text/html; charset=utf-8", h.buf, h.len, hdrs, KIPD_ARRAY_SIZE(hdrs));
  free(h.buf);
}

static void agenda_handler(kreq_t *r) {
  /* handler_data non-NULL: render HTML. */
  r->handler_data = agenda_wants_html(http_request_header(r->http, "accept")) ? (void *)r : NULL;
  const char **params = arena_alloc(&r->http->arena, 2 * sizeof(char *));
  if (params == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  params[0] = kreq_ctx(r);
  params[1] = r->match.params[0];
  kreq_exec(r, &meeting_agenda, params, 200, agenda_done);
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
  {"GET", "/v1/meetings/{id}/agenda", agenda_handler, NULL, NULL, &meeting_agenda, 200, 0},
  {"GET", "/v1/me/meetings", NULL, NULL, my_meetings_query, &my_meetings, 200, 0},
};
const size_t api_meetings_n_routes = KIPD_ARRAY_SIZE(api_meetings_routes);
