/* The app object and the request pipeline: app_handle() takes each
 * request from the HTTP layer through the route match, the credentials, the
 * query string, the body, If-Match and Idempotency-Key to the route's
 * handler. */
#include "app/app.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/internal.h"
#include "app/web.h"
#include "util/cookie.h"
#include "util/crypto.h"
#include "util/log.h"
#include "util/query.h"
#include "util/validate.h"

/* ---- construction ---- */

static size_t app__count_params(const char *pattern) {
  size_t n = 0;
  for (const char *p = pattern; *p; p++)
    if (*p == '{')
      n++;
  return n;
}

int app_new(const app_config_t *cfg, pg_pool_t *pool, const route_t *routes, size_t n_routes,
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
  app->cfg = *cfg;
  app->pool = pool;
  app->routes = routes;
  app->n_routes = n_routes;
  int rc = proxy_list_parse(&app->proxies, cfg->trusted_proxies);
  if (rc != 0) {
    free(app);
    return rc;
  }
  *out = app;
  return 0;
}

void app_free(app_t *app) {
  if (app == NULL)
    return;
  idem_cache_free(app->idem);
  free(app);
}
void app_set_server(app_t *app, http_server_t *server) { app->server = server; }
void app_set_loop(app_t *app, uv_loop_t *loop) { app->loop = loop; }
void app_set_keyring(app_t *app, const cpr_keyring_t *keyring) { app->keyring = keyring; }
void app_set_api(app_t *app, void *api) { app->api = api; }
const app_config_t *app_config(const app_t *app) { return &app->cfg; }
void *app_api(const app_t *app) { return app->api; }
pg_pool_t *app_pool(const app_t *app) { return app->pool; }
http_server_t *app_server(const app_t *app) { return app->server; }

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
  r->client_addr = proxy_client_addr(&app->proxies, req);
  req->user = r;
  jc_result_init(&r->jc, &req->arena);

  char *scratch = arena_alloc(&req->arena, strlen(req->path) + 1);
  int rc = router_match(app->routes, app->n_routes, req->method, req->path, scratch, &r->match);
  if (rc == -ENOENT) {
    if (web_serve(req)) /* the web UI: every GET/HEAD outside the API (app/web.c) */
      return;
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

  /* Idempotency-Key, hashed with the checked body, before a handler seals
   * anything in it. */
  if (idem_begin(r) != 0)
    return;

  if (rt->handler != NULL)
    rt->handler(r);
  else
    kreq_generic(r);
}
