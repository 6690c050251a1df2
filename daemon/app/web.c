/* app/web: the web UI's static files, served from memory. See web.h. */
#include "app/web.h"

#include <string.h>
#include <strings.h>

#include "app/web_assets.h"
#include "util/error.h"

const char web_csp[] =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
  "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
  "frame-ancestors 'none'";

/* "/v1", "/v1/..." and the operational endpoints stay the API's. */
static bool web__is_api_path(const char *path) {
  static const char *const prefixes[] = {"/v1", "/healthz", "/readyz", "/metrics"};
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(prefixes); i++) {
    size_t n = strlen(prefixes[i]);
    if (strncmp(path, prefixes[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
      return true;
  }
  return false;
}

static const web_asset_t *web__find(const char *path) {
  for (size_t i = 0; i < web_assets_count; i++)
    if (strcmp(web_assets[i].path, path) == 0)
      return &web_assets[i];
  return NULL;
}

/* Does the Accept-Encoding list name gzip (or *) without q=0? */
static bool web__accepts_gzip(const char *ae) {
  if (ae == NULL)
    return false;
  const char *p = ae;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    const char *tok = p;
    while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
      p++;
    size_t n = (size_t)(p - tok);
    bool named = (n == 4 && strncasecmp(tok, "gzip", 4) == 0) || (n == 1 && *tok == '*');
    bool zero = false;
    while (*p && *p != ',') {
      if (*p == ';') {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
          q++;
        if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
          q += 2;
          zero = q[0] == '0' && (q[1] != '.' || strspn(q + 2, "0") == strcspn(q + 2, ", ;\t"));
        }
      }
      p++;
    }
    if (named && !zero)
      return true;
  }
  return false;
}

/* If-None-Match: "*" or a list holding etag (weak or strong). */
static bool web__not_modified(const char *inm, const char *etag) {
  if (inm == NULL)
    return false;
  if (strcmp(inm, "*") == 0)
    return true;
  return strstr(inm, etag) != NULL;
}

bool web_serve(http_request_t *req) {
  bool head = strcmp(req->method, "HEAD") == 0;
  if (!head && strcmp(req->method, "GET") != 0)
    return false;
  const char *path = req->path;
  if (path[0] != '/' || web__is_api_path(path))
    return false;

  const web_asset_t *a = NULL;
  if (strncmp(path, "/assets/", 8) == 0) {
    a = web__find(path);
    if (a == NULL || !a->immutable) {
      static const http_header_t nf[] = {{"Content-Type", "text/plain; charset=utf-8"}};
      http_respond(req, 404, nf, KIPD_ARRAY_SIZE(nf), "not found\n", 10);
      return true;
    }
  } else {
    a = web__find("/");
    if (a == NULL)
      return false;
  }

  bool gz = a->gz != NULL && web__accepts_gzip(http_request_header(req, "accept-encoding"));
  const char *etag = gz ? a->etag_gz : a->etag;
  http_header_t h[7];
  size_t n = 0;
  h[n++] = (http_header_t){"Content-Type", a->content_type};
  h[n++] = (http_header_t){"ETag", etag};
  h[n++] = (http_header_t){"Cache-Control",
                           a->immutable ? "public, max-age=31536000, immutable" : "no-cache"};
  h[n++] = (http_header_t){"Content-Security-Policy", web_csp};
  h[n++] = (http_header_t){"Vary", "Accept-Encoding"};
  if (gz)
    h[n++] = (http_header_t){"Content-Encoding", "gzip"};

  if (web__not_modified(http_request_header(req, "if-none-match"), etag)) {
    http_respond(req, 304, h, n, NULL, 0);
    return true;
  }
  if (gz)
    http_respond(req, 200, h, n, (const char *)a->gz, a->gz_len);
  else
    http_respond(req, 200, h, n, (const char *)a->data, a->len);
  return true;
}
