#include "app/app.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/problem.h"
#include "util/cookie.h"
#include "util/cpr_crypt.h"
#include "util/crypto.h"
#include "util/log.h"
#include "util/query.h"
#include "util/validate.h"

/* The user behind a token hash, remembered from the database's answers so
 * that the access log can name the caller of a request that kipd rejected
 * before it reached the database (a 400 or 422 from the body checks). It is
 * used for the log only, never to authenticate: every request that reaches
 * the database is authenticated there. */
#define APP_SEEN_SLOTS 1024
typedef struct app_seen_s {
  char token_hash[65];
  char user_id[40];
} app_seen_t;

#define APP_MAX_PROXIES 16

struct app_s {
  app_seen_t seen[APP_SEEN_SLOTS];
  const kipd_config_t *cfg;
  uv_loop_t *loop;
  unsigned jobs;               /* kreq_queue_work() jobs queued or running */
  pg_pool_t *pool;
  http_server_t *server;
  const route_t *routes;
  size_t n_routes;
  const cpr_keyring_t *keyring;
  /* Reverse proxies whose X-Forwarded-For is believed, as inet_ntop text. */
  char proxies[APP_MAX_PROXIES][INET6_ADDRSTRLEN];
  size_t n_proxies;
};

/* An IP address (IPv4 or IPv6, surrounding spaces allowed) in its
 * canonical text form. Returns false for anything else. */
static bool app__ip_text(const char *s, size_t len, char out[INET6_ADDRSTRLEN]) {
  while (len > 0 && (*s == ' ' || *s == '\t')) {
    s++;
    len--;
  }
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
    len--;
  char buf[INET6_ADDRSTRLEN];
  if (len == 0 || len >= sizeof(buf))
    return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  unsigned char bin[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, buf, bin) == 1)
    return inet_ntop(AF_INET, bin, out, INET6_ADDRSTRLEN) != NULL;
  if (inet_pton(AF_INET6, buf, bin) == 1)
    return inet_ntop(AF_INET6, bin, out, INET6_ADDRSTRLEN) != NULL;
  return false;
}

static int app__parse_proxies(app_t *app, const char *list) {
  for (const char *p = list; p != NULL && *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (app->n_proxies == APP_MAX_PROXIES) {
      log_errorf("trusted-proxies: at most %d addresses", APP_MAX_PROXIES);
      return -EINVAL;
    }
    if (!app__ip_text(p, len, app->proxies[app->n_proxies])) {
      log_errorf("trusted-proxies: '%.*s' is not an IP address", (int)len, p);
      return -EINVAL;
    }
    app->n_proxies++;
    p = comma ? comma + 1 : NULL;
  }
  return 0;
}

/* The client behind the request: the TCP peer, unless the peer is a
 * trusted proxy that said who its client was. The last X-Forwarded-For hop
 * is the one the proxy itself appended; earlier hops come from the client
 * and are not believed. */
static const char *app__client_addr(app_t *app, http_request_t *req) {
  if (app->n_proxies == 0)
    return req->remote_addr;
  char peer[INET6_ADDRSTRLEN];
  if (!app__ip_text(req->remote_addr, strlen(req->remote_addr), peer))
    return req->remote_addr;
  bool trusted = false;
  for (size_t i = 0; i < app->n_proxies && !trusted; i++)
    trusted = strcmp(app->proxies[i], peer) == 0;
  const char *xff = trusted ? http_request_header(req, "x-forwarded-for") : NULL;
  if (xff == NULL)
    return req->remote_addr;
  const char *last = strrchr(xff, ',');
  last = last ? last + 1 : xff;
  char client[INET6_ADDRSTRLEN];
  if (!app__ip_text(last, strlen(last), client))
    return req->remote_addr;
  char *copy = arena_strdup(&req->arena, client);
  return copy ? copy : req->remote_addr;
}

/* ---- construction ---- */

static size_t app__count_params(const char *pattern) {
  size_t n = 0;
  for (const char *p = pattern; *p; p++)
    if (*p == '{')
      n++;
  return n;
}

int app_new(const kipd_config_t *cfg, pg_pool_t *pool, const route_t *routes, size_t n_routes,
            app_t **out) {
  for (size_t i = 0; i < n_routes; i++) {
    const route_t *rt = &routes[i];
    if (rt->handler == NULL) {
      int want = 1 + (int)app__count_params(rt->pattern) + ((rt->flags & ROUTE_BODY) ? 1 : 0) +
                 (rt->query_spec ? 1 : 0);
      if (rt->stmt == NULL || rt->stmt->nparams != want) {
        log_errorf("route %s %s: statement takes %d parameters, route passes %d", rt->method,
                   rt->pattern, rt->stmt ? rt->stmt->nparams : -1, want);
        return -EINVAL;
      }
    }
  }
  app_t *app = calloc(1, sizeof(*app));
  if (app == NULL)
    return -ENOMEM;
  app->cfg = cfg;
  app->pool = pool;
  app->routes = routes;
  app->n_routes = n_routes;
  int rc = app__parse_proxies(app, cfg->trusted_proxies);
  if (rc != 0) {
    free(app);
    return rc;
  }
  *out = app;
  return 0;
}

void app_free(app_t *app) { free(app); }
void app_set_server(app_t *app, http_server_t *server) { app->server = server; }
void app_set_loop(app_t *app, uv_loop_t *loop) { app->loop = loop; }
void app_set_keyring(app_t *app, const cpr_keyring_t *keyring) { app->keyring = keyring; }
const kipd_config_t *app_config(const app_t *app) { return app->cfg; }
pg_pool_t *app_pool(const app_t *app) { return app->pool; }
http_server_t *app_server(const app_t *app) { return app->server; }

/* ---- helpers ---- */

static app_seen_t *app__seen_slot(app_t *app, const char *token_hash) {
  unsigned long h = strtoul((char[9]){token_hash[0], token_hash[1], token_hash[2], token_hash[3],
                                      token_hash[4], token_hash[5], token_hash[6], token_hash[7], 0},
                            NULL, 16);
  return &app->seen[h % APP_SEEN_SLOTS];
}

/* The hash of the request's credential: the token's or the session's. */
static char *kreq__cred_hash(kreq_t *r) { return r->token_hash[0] ? r->token_hash : r->session_hash; }

static void app__remember_user(kreq_t *r) {
  const char *cred = kreq__cred_hash(r);
  if (cred[0] == '\0' || r->user_id[0] == '\0')
    return;
  app_seen_t *slot = app__seen_slot(r->app, cred);
  memcpy(slot->token_hash, cred, sizeof(slot->token_hash));
  snprintf(slot->user_id, sizeof(slot->user_id), "%s", r->user_id);
}

static const char *app__recall_user(app_t *app, const char *token_hash) {
  if (token_hash[0] == '\0')
    return NULL;
  app_seen_t *slot = app__seen_slot(app, token_hash);
  return strcmp(slot->token_hash, token_hash) == 0 ? slot->user_id : NULL;
}

char *kreq_strdup(kreq_t *r, const char *s) { return arena_strdup(&r->http->arena, s); }

char *kreq_json_text(kreq_t *r, json_t *j) {
  size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
  char *buf = arena_alloc(&r->http->arena, n + 1);
  if (buf == NULL)
    return NULL;
  json_dumpb(j, buf, n, JSON_COMPACT | JSON_ENCODE_ANY);
  buf[n] = '\0';
  return buf;
}

static void kreq__release(kreq_t *r) {
  if (r->user_id[0] != '\0')
    app__remember_user(r);
  else if (kreq__cred_hash(r)[0] != '\0') {
    const char *u = app__recall_user(r->app, kreq__cred_hash(r));
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

void kreq_reply_raw(kreq_t *r, int status, const char *content_type, const char *body, size_t len,
                    const http_header_t *headers, size_t n_headers) {
  http_header_t hdrs[8];
  size_t n = 0;
  if (content_type != NULL)
    hdrs[n++] = (http_header_t){"Content-Type", content_type};
  for (size_t i = 0; i < n_headers && n < KIPD_ARRAY_SIZE(hdrs); i++)
    hdrs[n++] = headers[i];
  http_request_t *req = r->http;
  kreq__release(r);
  http_respond(req, status, hdrs, n, body, len);
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

/* Send a problem document (stolen) with the headers its status needs. */
static void kreq__send_problem(kreq_t *r, int status, json_t *p) {
  problem_complete_errors(json_object_get(p, "errors"), r->match.route ? r->match.route->query_spec : NULL,
                          r->query_problem);
  http_header_t hdrs[2];
  size_t n = 0;
  if (status == 401)
    hdrs[n++] = (http_header_t){"WWW-Authenticate", "Bearer realm=\"kipd\""};
  if (status == 503 || status == 429)
    hdrs[n++] = (http_header_t){"Retry-After", "1"};
  if (status == 405)
    hdrs[n++] = (http_header_t){"Allow", r->match.allow};
  kreq_reply_json(r, status, p, hdrs, n);
}

void kreq_problem_errors(kreq_t *r, int status, const char *detail, json_t *errors) {
  char *cred = kreq__cred_hash(r);
  if (status == 401 && cred[0] != '\0') {
    /* A credential the database refused names nobody, in the log either. */
    app_seen_t *slot = app__seen_slot(r->app, cred);
    if (strcmp(slot->token_hash, cred) == 0)
      memset(slot, 0, sizeof(*slot));
    cred[0] = '\0';
    r->user_id[0] = '\0';
  }
  kreq__send_problem(r, status, problem_new(status, detail, errors, r->http->request_id));
}

void kreq_problem_code(kreq_t *r, int status, const char *detail, const char *code, const char *field,
                       const char *message) {
  json_t *errors = json_array();
  if (field != NULL)
    problem_add_error(errors, code, field, message ? message : "is invalid");
  kreq_problem_errors(r, status, detail, errors);
}

void kreq_problem(kreq_t *r, int status, const char *detail, const char *field, const char *message) {
  kreq_problem_code(r, status, detail, NULL, field, message);
}

void kreq_problem_jc(kreq_t *r) {
  json_t *errors = json_array();
  const char *detail = NULL;
  for (size_t i = 0; i < r->jc.n_errors; i++) {
    /* A 400 answer lists its 400-class errors first, so the detail names
     * the reason for the status. */
    if (r->jc.status == 400 && r->jc.errors[i].status != 400)
      continue;
    problem_add_error(errors, r->jc.errors[i].code, r->jc.errors[i].field, r->jc.errors[i].message);
    if (detail == NULL)
      detail = arena_sprintf(&r->http->arena, "%s: %s", r->jc.errors[i].field, r->jc.errors[i].message);
  }
  kreq_problem_errors(r, r->jc.status, detail, errors);
}

const char *kreq_ctx(kreq_t *r) {
  json_t *ctx = json_object();
  if (r->token_hash[0])
    json_object_set_new(ctx, "token_hash", json_string(r->token_hash));
  else if (r->session_hash[0]) {
    json_object_set_new(ctx, "session_hash", json_string(r->session_hash));
    if (r->csrf_required)
      json_object_set_new(ctx, "csrf_required", json_true());
    if (r->csrf_hash[0])
      json_object_set_new(ctx, "csrf_hash", json_string(r->csrf_hash));
  }
  json_object_set_new(ctx, "request_id", json_string(r->http->request_id));
  json_object_set_new(ctx, "remote_addr", json_string(r->client_addr));
  if (r->if_match >= 0)
    json_object_set_new(ctx, "if_match", json_integer(r->if_match));
  /* Domain limits from the configuration, for the SQL rules that use them. */
  json_object_set_new(ctx, "meeting_min_minutes", json_integer(r->app->cfg->meeting_min_minutes));
  json_object_set_new(ctx, "next_meeting_max_months", json_integer(r->app->cfg->next_meeting_max_months));
  char *text = kreq_json_text(r, ctx);
  json_decref(ctx);
  return text;
}

/* ---- CPR numbers ---- */

/* The body text of a row with every sealed CPR number decrypted (tokens
 * come only from kipd: app_handle refuses U+0001 in requests). A token that
 * does not decrypt becomes null, and a warning names the request, never the
 * token. Returns body itself when it holds no token, or NULL (no memory). */
static const char *kreq__reveal(kreq_t *r, const char *body, size_t len, size_t *out_len) {
  *out_len = len;
  if (!cpr_json_has_token(body, len))
    return body;
  char *out = NULL;
  int failed = 0;
  if (r->app->keyring == NULL ||
      cpr_json_reveal(r->app->keyring, body, len, &r->http->arena, &out, out_len, &failed) != 0)
    return NULL;
  if (failed > 0)
    log_emit(LOG_WARN, "a sealed CPR number could not be decrypted; answered null",
             json_pack("{s:s, s:s, s:i}", "request_id", r->http->request_id, "statement",
                       r->stmt ? r->stmt->name : "?", "count", failed));
  return out;
}

int kreq_seal_cpr(kreq_t *r, json_t *citizen) {
  if (!json_is_object(citizen))
    return 0;
  json_t *cpr = json_object_get(citizen, "cpr");
  if (cpr == NULL)
    return 0;
  if (json_is_null(cpr)) {
    json_object_set_new(citizen, "cpr_enc", json_null());
    json_object_set_new(citizen, "cpr_hmac", json_null());
    return 0;
  }
  const cpr_keyring_t *kr = r->app->keyring;
  if (kr == NULL || !json_is_string(cpr))
    return -EINVAL;
  const char *norm = json_string_value(cpr);
  char token[CPR_TOKEN_MAX], index[CPR_INDEX_LEN + 1], mask[12];
  int rc = cpr_seal(cpr_keyring_current(kr), norm, token);
  if (rc == 0)
    rc = cpr_blind_index(cpr_keyring_current(kr), norm, index);
  if (rc != 0)
    return rc;
  validate_cpr_mask(norm, mask);
  /* The database stores the mask as citizen_cpr, the token and the index. */
  json_object_set_new(citizen, "cpr", json_string(mask));
  json_object_set_new(citizen, "cpr_enc", json_string(token));
  json_object_set_new(citizen, "cpr_hmac", json_string(index));
  return 0;
}

int kreq_cpr_index(kreq_t *r, const char *cpr, char out[65]) {
  char norm[12];
  /* Any DDMMYY-NNNN shape is looked up: an impossible date finds nothing. */
  size_t len = strlen(cpr);
  if (len == 10)
    snprintf(norm, sizeof(norm), "%.6s-%.4s", cpr, cpr + 6);
  else if (len == 11)
    snprintf(norm, sizeof(norm), "%s", cpr);
  else
    return -EINVAL;
  if (r->app->keyring == NULL)
    return -EINVAL;
  return cpr_blind_index(cpr_keyring_current(r->app->keyring), norm, out);
}

/* ---- database answers ---- */

void kreq_reply_row(kreq_t *r, PGresult *res) {
  if (PQntuples(res) != 1 || PQnfields(res) < 5) {
    log_errorf("statement %s returned %d rows", r->stmt ? r->stmt->name : "?", PQntuples(res));
    kreq_problem(r, 500, "unexpected database answer", NULL, NULL);
    return;
  }
  int status = PQgetisnull(res, 0, 0) ? r->ok_status : atoi(PQgetvalue(res, 0, 0));
  if (!PQgetisnull(res, 0, 4))
    snprintf(r->user_id, sizeof(r->user_id), "%s", PQgetvalue(res, 0, 4));
  http_header_t hdrs[2];
  size_t n = 0;
  char etag[32];
  if (!PQgetisnull(res, 0, 2)) {
    snprintf(etag, sizeof(etag), "\"%s\"", PQgetvalue(res, 0, 2));
    hdrs[n++] = (http_header_t){"ETag", etag};
  }
  if (!PQgetisnull(res, 0, 3))
    hdrs[n++] = (http_header_t){"Location", kreq_strdup(r, PQgetvalue(res, 0, 3))};
  if (status == 204 || PQgetisnull(res, 0, 1)) {
    kreq_reply_raw(r, status, NULL, "", 0, hdrs, n);
    return;
  }
  size_t len;
  const char *body = kreq__reveal(r, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1), &len);
  if (body == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  kreq_reply_raw(r, status, "application/json; charset=utf-8", body, len, hdrs, n);
}

void kreq_reply_row_with(kreq_t *r, PGresult *res, const char *key, const char *value) {
  if (PQntuples(res) != 1 || PQnfields(res) < 5 || PQgetisnull(res, 0, 1)) {
    kreq_reply_row(r, res);
    return;
  }
  size_t len;
  const char *text = kreq__reveal(r, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1), &len);
  json_t *doc = text ? json_loadb(text, len, 0, NULL) : NULL;
  if (!json_is_object(doc)) {
    json_decref(doc);
    kreq_problem(r, 500, "unexpected database answer", NULL, NULL);
    return;
  }
  if (!PQgetisnull(res, 0, 4))
    snprintf(r->user_id, sizeof(r->user_id), "%s", PQgetvalue(res, 0, 4));
  json_object_set_new(doc, key, json_string(value));
  int status = PQgetisnull(res, 0, 0) ? r->ok_status : atoi(PQgetvalue(res, 0, 0));
  http_header_t hdrs[1];
  size_t n = 0;
  if (!PQgetisnull(res, 0, 3))
    hdrs[n++] = (http_header_t){"Location", kreq_strdup(r, PQgetvalue(res, 0, 3))};
  kreq_reply_json(r, status, doc, hdrs, n);
}

json_t *kreq_row_body(kreq_t *r, PGresult *res) {
  if (PQntuples(res) != 1 || PQnfields(res) < 5 || PQgetisnull(res, 0, 1))
    return NULL;
  if (!PQgetisnull(res, 0, 4))
    snprintf(r->user_id, sizeof(r->user_id), "%s", PQgetvalue(res, 0, 4));
  size_t len;
  const char *text = kreq__reveal(r, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1), &len);
  return text ? json_loadb(text, len, 0, NULL) : NULL;
}

json_t *kreq_row_object(kreq_t *r, PGresult *res) {
  json_t *doc = kreq_row_body(r, res);
  if (json_is_object(doc))
    return doc;
  json_decref(doc);
  kreq_problem(r, 500, "unexpected database answer", NULL, NULL);
  return NULL;
}

static void kreq__db_error(kreq_t *r, PGresult *res) {
  const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
  const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  problem_db_map_t m = problem_map_sqlstate(sqlstate, constraint);
  if (m.action == PROBLEM_DB_RETRY && r->retries == 0) {
    r->retries++;
    kreq_exec(r, r->stmt, r->params, r->ok_status, r->on_result);
    return;
  }
  bool ours = sqlstate != NULL && sqlstate[0] == 'K' && sqlstate[1] == 'P';
  if (!ours && problem_is_audit_failure(PQresultErrorField(res, PG_DIAG_CONTEXT))) {
    /* The audit record could not be written: the transaction is gone, and
     * nothing read in it is sent. */
    log_emit(LOG_ERROR, "audit record not written",
             json_pack("{s:s, s:s, s:s, s:s}", "request_id", r->http->request_id,
                       "statement", r->stmt ? r->stmt->name : "?", "sqlstate", sqlstate ? sqlstate : "",
                       "error", primary ? primary : ""));
    kreq_problem(r, 503, "the audit record could not be written; try again", NULL, NULL);
    return;
  }
  json_t *errors = NULL;
  json_t *extra = NULL;
  if (ours && detail != NULL) {
    json_t *d = json_loads(detail, 0, NULL);
    if (d != NULL) {
      json_t *uid = json_object_get(d, "user_id");
      if (json_is_string(uid))
        snprintf(r->user_id, sizeof(r->user_id), "%s", json_string_value(uid));
      errors = json_incref(json_object_get(d, "errors"));
      if (json_is_object(json_object_get(d, "extra")))
        extra = json_incref(json_object_get(d, "extra"));
      json_decref(d);
    }
  }
  if (errors == NULL || !json_is_array(errors)) {
    json_decref(errors);
    errors = json_array();
  }
  if (m.field != NULL)
    problem_add_error(errors, m.code, m.field, m.message ? m.message : "is invalid");
  const char *text = NULL;
  if (ours)
    text = primary;
  else if (m.field != NULL)
    text = arena_sprintf(&r->http->arena, "%s %s", m.field, m.message);
  if (m.status == 500) {
    json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "request_id", r->http->request_id,
                          "statement", r->stmt ? r->stmt->name : "?", "sqlstate", sqlstate ? sqlstate : "",
                          "error", primary ? primary : "");
    log_emit(LOG_ERROR, "database error", f);
  }
  if (m.status == 503 && text == NULL)
    text = "the database is not available; try again";
  if (extra != NULL) {
    /* Extension members (RFC 9457 §3.2), e.g. open_actions; they never
     * replace the standard ones. */
    json_t *p = problem_new(m.status, text, errors, r->http->request_id);
    json_object_update_missing(p, extra);
    json_decref(extra);
    kreq__send_problem(r, m.status, p);
    return;
  }
  kreq_problem_errors(r, m.status, text, errors);
}

static void kreq__on_db(void *data, int err, PGresult *res) {
  kreq_t *r = data;
  if (err == -EIO && res != NULL) {
    kreq__db_error(r, res);
    return;
  }
  if (err != 0) {
    const char *why = err == -ENOSPC ? "too many requests are waiting for the database"
                      : err == -ETIMEDOUT ? "timed out waiting for the database"
                                          : "the database is not available; try again";
    kreq_problem(r, 503, why, NULL, NULL);
    return;
  }
  if (r->on_result != NULL)
    r->on_result(r, res);
  else
    kreq_reply_row(r, res);
}

void kreq_exec(kreq_t *r, const pg_stmt_t *stmt, const char **params, int ok_status,
               kreq_result_cb on_result) {
  r->stmt = stmt;
  r->params = params;
  r->ok_status = ok_status;
  r->on_result = on_result;
  int rc = pg_pool_exec(r->app->pool, stmt, (const char *const *)params, kreq__on_db, r);
  if (rc != 0)
    kreq_problem(r, 503, "the database is not available; try again", NULL, NULL);
}

void kreq_generic(kreq_t *r) {
  const route_t *rt = r->match.route;
  const char **params = arena_calloc(&r->http->arena, sizeof(char *) * (size_t)(rt->stmt->nparams + 1));
  if (params == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  int n = 0;
  params[n++] = kreq_ctx(r);
  for (size_t i = 0; i < r->match.n_params; i++)
    params[n++] = r->match.params[i];
  if (rt->flags & ROUTE_BODY)
    params[n++] = kreq_json_text(r, r->body);
  if (rt->query_spec)
    params[n++] = kreq_json_text(r, r->query);
  kreq_exec(r, rt->stmt, params, rt->ok_status ? rt->ok_status : 200, NULL);
}

/* ---- the request path ---- */

static bool app__is_json(const char *ct) {
  if (ct == NULL)
    return false;
  while (*ct == ' ')
    ct++;
  size_t n = strlen("application/json");
  if (strncasecmp(ct, "application/json", n) != 0)
    return false;
  const char *rest = ct + n;
  while (*rest == ' ')
    rest++;
  if (*rest == '\0')
    return true;
  if (*rest != ';')
    return false;
  rest++;
  while (*rest == ' ')
    rest++;
  return strncasecmp(rest, "charset=utf-8", 13) == 0 || strncasecmp(rest, "charset=\"utf-8\"", 15) == 0;
}

/* True when a string or key anywhere in j holds U+0001, the first
 * character of a sealed CPR number (util/cpr_crypt.h). No request may carry
 * it, so every token in a response came from kipd. */
static bool app__has_token_marker(json_t *j) {
  if (json_is_string(j))
    return memchr(json_string_value(j), '\x01', json_string_length(j)) != NULL;
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
      if (app__has_token_marker(v))
        return true;
    return false;
  }
  if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
      if (strchr(k, '\x01') != NULL || app__has_token_marker(v))
        return true;
  }
  return false;
}

/* If-Match: "7", 7, W/"7" or *. Returns 0 and sets *out, or -EINVAL. */
static int app__parse_if_match(const char *v, long long *out) {
  while (*v == ' ')
    v++;
  if (strcmp(v, "*") == 0) {
    *out = -2;
    return 0;
  }
  if (strncmp(v, "W/", 2) == 0)
    v += 2;
  size_t len = strlen(v);
  while (len > 0 && v[len - 1] == ' ')
    len--;
  if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
    v++;
    len -= 2;
  }
  if (len == 0 || len > 12)
    return -EINVAL;
  long long x = 0;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9')
      return -EINVAL;
    x = x * 10 + (v[i] - '0');
  }
  *out = x;
  return 0;
}

/* Bearer token or session cookie; the database decides whether either is
 * good. Keeps only SHA-256 hashes. Replies and returns -EACCES when the
 * request brings no usable credential. */
static int app__credentials(kreq_t *r) {
  http_request_t *req = r->http;
  const char *auth = http_request_header(req, "authorization");
  if (auth != NULL) {
    if (strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
      kreq_problem(r, 401, "send Authorization: Bearer <token>", NULL, NULL);
      return -EACCES;
    }
    const char *tok = auth + 7;
    while (*tok == ' ')
      tok++;
    if (crypto_sha256_hex(tok, strlen(tok), r->token_hash) != 0) {
      kreq_problem(r, 500, "hashing failed", NULL, NULL);
      return -EIO;
    }
    return 0;
  }
  /* The session cookie, from any Cookie header (HTTP/2 proxies may split
   * them). */
  char sid[128];
  int found = -ENOENT;
  for (size_t i = 0; i < req->n_headers && found == -ENOENT; i++)
    if (strcasecmp(req->headers[i].name, "cookie") == 0)
      found = cookie_find(req->headers[i].value, APP_SESSION_COOKIE, sid, sizeof(sid));
  if (found != 0 || sid[0] == '\0') {
    kreq_problem(r, 401, "send Authorization: Bearer <token>, or sign in with POST /v1/session", NULL, NULL);
    return -EACCES;
  }
  int rc = crypto_sha256_hex(sid, strlen(sid), r->session_hash);
  explicit_bzero(sid, sizeof(sid));
  if (rc != 0) {
    kreq_problem(r, 500, "hashing failed", NULL, NULL);
    return -EIO;
  }
  /* A cookie travels with every request the browser makes, also ones
   * another site makes it send: a change needs the CSRF token as well, which
   * only the page that signed in knows. */
  const char *m = req->method;
  if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && strcmp(m, "OPTIONS") != 0) {
    r->csrf_required = true;
    const char *csrf = http_request_header(req, "x-csrf-token");
    if (csrf == NULL || *csrf == '\0') {
      kreq_problem_code(r, 403, "a change made with the session cookie needs the X-CSRF-Token header",
                        "required", "X-CSRF-Token", "is required with the session cookie");
      return -EACCES;
    }
    if (crypto_sha256_hex(csrf, strlen(csrf), r->csrf_hash) != 0) {
      kreq_problem(r, 500, "hashing failed", NULL, NULL);
      return -EIO;
    }
  }
  return 0;
}

/* ---- work off the loop ---- */

typedef struct kreq_job_s {
  uv_work_t work;
  kreq_t *r;
  kreq_work_fn fn;
  kreq_then_fn then;
  void *arg;
} kreq_job_t;

static void kreq__job_run(uv_work_t *w) {
  kreq_job_t *job = container_of(w, kreq_job_t, work);
  job->fn(job->arg);
}

static void kreq__job_done(uv_work_t *w, int status) {
  kreq_job_t *job = container_of(w, kreq_job_t, work);
  job->r->app->jobs--;
  job->then(job->r, job->arg);
}

int kreq_queue_work(kreq_t *r, kreq_work_fn work, kreq_then_fn then, void *arg) {
  app_t *app = r->app;
  if (app->loop == NULL)
    return -EINVAL;
  if (app->jobs >= app->cfg->password_jobs_max)
    return -ENOSPC;
  kreq_job_t *job = arena_calloc(&r->http->arena, sizeof(*job));
  if (job == NULL)
    return -ENOMEM;
  *job = (kreq_job_t){.r = r, .fn = work, .then = then, .arg = arg};
  int rc = uv_queue_work(app->loop, &job->work, kreq__job_run, kreq__job_done);
  if (rc != 0)
    return rc;
  app->jobs++;
  return 0;
}

/* The timer lives in the request's arena: it is closed before the
 * continuation runs, and the continuation's reply frees the arena. */
typedef struct kreq_timer_s {
  uv_timer_t timer;
  kreq_t *r;
  kreq_then_fn then;
  void *arg;
} kreq_timer_t;

static void kreq__timer_closed(uv_handle_t *h) {
  kreq_timer_t *t = container_of((uv_timer_t *)h, kreq_timer_t, timer);
  t->then(t->r, t->arg);
}

static void kreq__timer_fired(uv_timer_t *timer) {
  uv_close((uv_handle_t *)timer, kreq__timer_closed);
}

int kreq_delay(kreq_t *r, uint64_t delay_ms, kreq_then_fn then, void *arg) {
  app_t *app = r->app;
  if (app->loop == NULL)
    return -EINVAL;
  kreq_timer_t *t = arena_calloc(&r->http->arena, sizeof(*t));
  if (t == NULL)
    return -ENOMEM;
  int rc = uv_timer_init(app->loop, &t->timer);
  if (rc != 0)
    return rc;
  t->r = r;
  t->then = then;
  t->arg = arg;
  rc = uv_timer_start(&t->timer, kreq__timer_fired, delay_ms, 0);
  if (rc != 0) {
    /* Closing still calls the continuation, which replies. */
    uv_close((uv_handle_t *)&t->timer, kreq__timer_closed);
  }
  return 0;
}

void app_handle(http_request_t *req, void *data) {
  app_t *app = data;
  kreq_t *r = arena_calloc(&req->arena, sizeof(*r));
  if (r == NULL) {
    http_respond(req, 500, NULL, 0, "", 0);
    return;
  }
  r->http = req;
  r->app = app;
  r->if_match = -1;
  r->client_addr = app__client_addr(app, req);
  req->user = r;
  jc_result_init(&r->jc, &req->arena);

  char *scratch = arena_alloc(&req->arena, strlen(req->path) + 1);
  int rc = router_match(app->routes, app->n_routes, req->method, req->path, scratch, &r->match);
  if (rc == -ENOENT) {
    kreq_problem(r, 404, "no such resource", NULL, NULL);
    return;
  }
  if (rc == -EPERM) {
    kreq_problem_code(r, 405, arena_sprintf(&req->arena, "allowed: %s", r->match.allow), "method_not_allowed", "method",
                 arena_sprintf(&req->arena, "must be one of %s", r->match.allow));
    return;
  }
  const route_t *rt = r->match.route;

  /* Path parameters are UUIDs: anything else cannot name a resource. */
  for (size_t i = 0; i < r->match.n_params; i++) {
    if (!validate_uuid(r->match.params[i])) {
      kreq_problem(r, 404, "no such resource", NULL, NULL);
      return;
    }
  }

  /* Credentials before anything that reveals the shape of the API. */
  if (!(rt->flags & ROUTE_PUBLIC) && app__credentials(r) != 0)
    return;

  /* Query parameters. */
  const char *why = NULL;
  if (query_parse(req->query, &r->query, &why) != 0) {
    kreq_problem_code(r, 400, "the query string could not be read", "invalid_query", "query", why ? why : "invalid");
    return;
  }
  if (app__has_token_marker(r->query)) {
    kreq_problem_code(r, 400, "the query string holds a control character", "invalid_characters", "query",
                      "must not contain U+0001");
    return;
  }
  r->query_problem = true;
  if (rt->query_spec != NULL) {
    if (jc_check(r->query, rt->query_spec, &r->jc) != 0) {
      kreq_problem_jc(r);
      return;
    }
  } else if (json_object_size(r->query) > 0) {
    const char *k = json_object_iter_key(json_object_iter(r->query));
    kreq_problem_code(r, 400, "this endpoint takes no query parameters", "unknown_field", k,
                      "unknown query parameter");
    return;
  }
  r->query_problem = false;

  /* Body. */
  if (rt->flags & ROUTE_BODY) {
    const char *ct = http_request_header(req, "content-type");
    if (req->body_len == 0 && ct == NULL) {
      r->body = json_object();
    } else if (!app__is_json(ct)) {
      kreq_problem_code(r, 415, "send the body as application/json; charset=utf-8", "unsupported_media_type",
                        "Content-Type",
                   "must be application/json");
      return;
    } else {
      json_error_t jerr;
      r->body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
      if (r->body == NULL) {
        char *msg = arena_sprintf(&req->arena, "invalid JSON at line %d column %d: %s", jerr.line,
                                  jerr.column, jerr.text);
        kreq_problem_code(r, 400, msg, "invalid_json", "body", msg);
        return;
      }
      if (app__has_token_marker(r->body)) {
        kreq_problem_code(r, 400, "the body holds a control character", "invalid_characters", "body",
                          "must not contain U+0001");
        return;
      }
    }
  } else if (req->body_len > 0) {
    kreq_problem_code(r, 400, "this endpoint takes no request body", "unexpected_body", "body", "must be empty");
    return;
  }

  /* Preconditions. */
  const char *im = http_request_header(req, "if-match");
  if (im != NULL && (rt->flags & (ROUTE_IF_MATCH | ROUTE_OPT_IF_MATCH))) {
    if (app__parse_if_match(im, &r->if_match) != 0) {
      kreq_problem_code(r, 400, "If-Match must be an ETag such as \"3\"", "invalid_etag", "If-Match",
                        "not a valid ETag");
      return;
    }
  } else if (rt->flags & ROUTE_IF_MATCH) {
    kreq_problem_code(r, 428, "send If-Match with the ETag you last read", "required", "If-Match", "is required");
    return;
  }

  if ((rt->flags & ROUTE_BODY) && rt->body_spec != NULL && jc_check(r->body, rt->body_spec, &r->jc) != 0) {
    kreq_problem_jc(r);
    return;
  }

  if (rt->handler != NULL)
    rt->handler(r);
  else
    kreq_generic(r);
}

void app_access_log(const http_request_t *req, int status, void *data) {
  const kreq_t *r = req->user;
  json_t *f = json_object();
  json_object_set_new(f, "request_id", json_string(req->request_id));
  if (req->method)
    json_object_set_new(f, "method", json_string(req->method));
  const char *route = (r && r->match.route) ? r->match.route->pattern : NULL;
  json_object_set_new(f, "route", route ? json_string(route) : json_null());
  json_object_set_new(f, "status", json_integer(status));
  double ms = req->start_ns ? (double)(uv_hrtime() - req->start_ns) / 1e6 : 0.0;
  json_object_set_new(f, "duration_ms", json_real((double)(long long)(ms * 1000) / 1000.0));
  json_object_set_new(f, "user_id", (r && r->user_id[0]) ? json_string(r->user_id) : json_null());
  const char *client = (r && r->client_addr) ? r->client_addr : req->remote_addr;
  json_object_set_new(f, "remote_addr", json_string(client));
  if (strcmp(client, req->remote_addr) != 0)
    json_object_set_new(f, "proxy_addr", json_string(req->remote_addr));
  log_emit(LOG_INFO, "request", f);
}
