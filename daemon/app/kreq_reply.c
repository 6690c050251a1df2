#include "app/kreq_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/events.h"
#include "app/internal.h"
#include "util/log.h"

/* Before the reply goes out: the access log learns (or recalls) the user,
 * the handler's release hook runs, and the request's JSON is freed. */
void kreq_reply__release(kreq_t *r) {
  const char *cred = kreq__cred_hash(r);
  if (r->user_id[0] != '\0')
    seen_remember(&r->app->seen, cred, r->user_id);
  else if (cred[0] != '\0') {
    const char *u = seen_recall(&r->app->seen, cred);
    if (u != NULL)
      snprintf(r->user_id, sizeof(r->user_id), "%s", u);
  }
  if (r->on_release != NULL) {
    r->on_release(r->on_release_arg);
    r->on_release = NULL;
  }
  json_decref(r->body);
  json_decref(r->query);
  r->body = NULL;
  r->query = NULL;
  r->replied = true;
}

/* A request that may have written events: POST, PUT, PATCH, DELETE. */
static bool kreq__writes(const char *method) {
  return method != NULL && (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                            strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0);
}

/* Every reply passes here. After a write that succeeded (its transaction
 * has committed: the answer came from it), the event streams of every kipd
 * are told (events_changed(): one NOTIFY on the LISTEN connection, never in
 * the writing transaction). An idempotent replay tells them again:
 * harmless. */
void kreq_reply_raw(kreq_t *r, int status, const char *content_type, const char *body, size_t len,
                    const http_header_t *headers, size_t n_headers) {
  http_header_t hdrs[8];
  size_t n = 0;
  if (content_type != NULL)
    hdrs[n++] = (http_header_t){"Content-Type", content_type};
  for (size_t i = 0; i < n_headers && n < KIPD_ARRAY_SIZE(hdrs); i++)
    hdrs[n++] = headers[i];
  http_request_t *req = r->http;
  struct events_s *changed = status < 400 && kreq__writes(req->method) ? r->app->events : NULL;
  kreq_reply__release(r);
  http_respond(req, status, hdrs, n, body, len);
  if (changed != NULL)
    events_changed(changed);
}

void kreq_reply_json(kreq_t *r, int status, json_t *body, const http_header_t *headers,
                     size_t n_headers) {
  if (body == NULL || status == 204) {
    json_decref(body);
    kreq_reply_raw(r, status, NULL, "", 0, headers, n_headers);
    return;
  }
  bool problem = status >= 400;
  char *text = kreq_json_text(r, body);
  json_decref(body);
  if (text == NULL) {
    kreq_reply_raw(r, 500, NULL, "", 0, NULL, 0);
    return;
  }
  kreq_reply_raw(r, status,
                 problem ? "application/problem+json; charset=utf-8" : "application/json; charset=utf-8",
                 text, strlen(text), headers, n_headers);
}

void kreq_reply_row(kreq_t *r, const kreq_row_t *row) {
  if (row->n_rows != 1 || row->n_fields < 5) {
    log_errorf("statement %s returned %d rows", r->stmt ? r->stmt->name : "?", row->n_rows);
    kreq_problem(r, 500, "unexpected database answer", NULL, NULL);
    return;
  }
  int status = kreq_row_status(r, row);
  kreq_row_note_user(r, row);
  http_header_t hdrs[2];
  size_t n = 0;
  char etag[32];
  if (row->value[2] != NULL) {
    snprintf(etag, sizeof(etag), "\"%s\"", row->value[2]);
    hdrs[n++] = (http_header_t){"ETag", etag};
  }
  if (row->value[3] != NULL)
    hdrs[n++] = (http_header_t){"Location", kreq_strdup(r, row->value[3])};
  if (status == 204 || row->value[1] == NULL) {
    kreq_reply_raw(r, status, NULL, "", 0, hdrs, n);
    return;
  }
  size_t len;
  const char *body = kreq_cpr__reveal(r, row->value[1], row->length[1], &len);
  if (body == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  kreq_reply_raw(r, status, "application/json; charset=utf-8", body, len, hdrs, n);
}

void kreq_reply_row_with(kreq_t *r, const kreq_row_t *row, const char *key, const char *value) {
  if (row->n_rows != 1 || row->n_fields < 5 || row->value[1] == NULL) {
    kreq_reply_row(r, row);
    return;
  }
  size_t len;
  const char *text = kreq_cpr__reveal(r, row->value[1], row->length[1], &len);
  json_t *doc = text ? json_loadb(text, len, 0, NULL) : NULL;
  if (!json_is_object(doc)) {
    json_decref(doc);
    kreq_problem(r, 500, "unexpected database answer", NULL, NULL);
    return;
  }
  kreq_row_note_user(r, row);
  json_object_set_new(doc, key, json_string(value));
  int status = kreq_row_status(r, row);
  http_header_t hdrs[1];
  size_t n = 0;
  if (row->value[3] != NULL)
    hdrs[n++] = (http_header_t){"Location", kreq_strdup(r, row->value[3])};
  kreq_reply_json(r, status, doc, hdrs, n);
}
