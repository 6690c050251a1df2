/* http/response: status texts, the Date cache, response serialisation and
 * the problem+json bodies of the errors the server makes itself. */
#include "http/internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct http__status_s {
  int status;
  const char *text;
} http__status_t;

static const http__status_t http__statuses[] = {
  {100, "Continue"},
  {101, "Switching Protocols"},
  {200, "OK"},
  {201, "Created"},
  {202, "Accepted"},
  {203, "Non-Authoritative Information"},
  {204, "No Content"},
  {205, "Reset Content"},
  {206, "Partial Content"},
  {300, "Multiple Choices"},
  {301, "Moved Permanently"},
  {302, "Found"},
  {303, "See Other"},
  {304, "Not Modified"},
  {307, "Temporary Redirect"},
  {308, "Permanent Redirect"},
  {400, "Bad Request"},
  {401, "Unauthorized"},
  {402, "Payment Required"},
  {403, "Forbidden"},
  {404, "Not Found"},
  {405, "Method Not Allowed"},
  {406, "Not Acceptable"},
  {407, "Proxy Authentication Required"},
  {408, "Request Timeout"},
  {409, "Conflict"},
  {410, "Gone"},
  {411, "Length Required"},
  {412, "Precondition Failed"},
  {413, "Content Too Large"},
  {414, "URI Too Long"},
  {415, "Unsupported Media Type"},
  {416, "Range Not Satisfiable"},
  {417, "Expectation Failed"},
  {421, "Misdirected Request"},
  {422, "Unprocessable Content"},
  {423, "Locked"},
  {424, "Failed Dependency"},
  {425, "Too Early"},
  {426, "Upgrade Required"},
  {428, "Precondition Required"},
  {429, "Too Many Requests"},
  {431, "Request Header Fields Too Large"},
  {451, "Unavailable For Legal Reasons"},
  {500, "Internal Server Error"},
  {501, "Not Implemented"},
  {502, "Bad Gateway"},
  {503, "Service Unavailable"},
  {504, "Gateway Timeout"},
  {505, "HTTP Version Not Supported"},
  {507, "Insufficient Storage"},
};

const char *http_status_text(int status) {
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(http__statuses); i++)
    if (http__statuses[i].status == status)
      return http__statuses[i].text;
  if (status >= 100 && status < 200)
    return "Informational";
  if (status >= 200 && status < 300)
    return "Success";
  if (status >= 300 && status < 400)
    return "Redirection";
  if (status >= 400 && status < 500)
    return "Client Error";
  return "Server Error";
}

const char *http__date(http_server_t *s) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(NULL);
  if (now != s->date_sec || s->date[0] == '\0') {
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(s->date, sizeof(s->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    s->date_sec = now;
  }
  return s->date;
}

/* Headers the server writes itself; the handler's copies are ignored. */
static bool http__header_reserved(const char *name) {
  static const char *const reserved[] = {"content-length", "transfer-encoding", "connection",
                                         "date", "x-request-id", "keep-alive"};
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(reserved); i++)
    if (strcasecmp(name, reserved[i]) == 0)
      return true;
  return false;
}

/* Security headers on every response, unless the handler set its own value
 * (the printable agenda sets a Content-Security-Policy that allows its
 * inline style sheet). The API serves JSON to scripts, never pages to
 * embed, so the defaults forbid everything a browser could do with it, and
 * nothing personal is ever kept in a cache. */
static const http_header_t http__security_headers[] = {
  {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
  {"X-Content-Type-Options", "nosniff"},
  {"Referrer-Policy", "no-referrer"},
  {"Cache-Control", "no-store"},
  {"X-Frame-Options", "DENY"},
  {"Cross-Origin-Resource-Policy", "same-origin"},
};

/* A header line must not break the framing (response splitting). */
static bool http__header_safe(const char *name, const char *value) {
  if (name == NULL || value == NULL || name[0] == '\0')
    return false;
  if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
    return false;
  return true;
}

typedef struct http__wbuf_s {
  char *p;
  size_t len, cap;
} http__wbuf_t;

static void http__put(http__wbuf_t *w, const char *s, size_t n) {
  memcpy(w->p + w->len, s, n);
  w->len += n;
}

static void http__puts(http__wbuf_t *w, const char *s) {
  http__put(w, s, strlen(s));
}

int http__response_build(http_server_t *s, const http_request_t *req, int status,
                         const http_header_t *headers, size_t n_headers,
                         const char *body, size_t len, bool head_only, bool close,
                         char **out, size_t *out_len) {
  /* 1xx, 204 and 304 never carry a body; 1xx and 204 no Content-Length. */
  bool no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
  bool no_length = (status >= 100 && status < 200) || status == 204 || status == 304;
  if (len == HTTP__STREAM_LENGTH) {
    /* A streaming head: the body follows until the connection closes. */
    no_length = true;
    len = 0;
    body = NULL;
  }
  bool send_body = !no_body && !head_only;
  if (body == NULL)
    len = 0;

  const char *date = http__date(s);
  const char *text = http_status_text(status);
  size_t cap = 64 + strlen(text) + 64 + strlen(date) + 32 + strlen(req->request_id) + 64;
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(http__security_headers); i++)
    cap += strlen(http__security_headers[i].name) + strlen(http__security_headers[i].value) + 4;
  for (size_t i = 0; i < n_headers; i++)
    if (http__header_safe(headers[i].name, headers[i].value))
      cap += strlen(headers[i].name) + strlen(headers[i].value) + 4;
  if (send_body)
    cap += len;

  http__wbuf_t w = {malloc(cap), 0, cap};
  if (w.p == NULL)
    return -ENOMEM;

  char line[96];
  int n = snprintf(line, sizeof(line), "HTTP/1.1 %03d ", status % 1000);
  http__put(&w, line, (size_t)n);
  http__puts(&w, text);
  http__put(&w, "\r\n", 2);
  for (size_t i = 0; i < n_headers; i++) {
    if (!http__header_safe(headers[i].name, headers[i].value) ||
        http__header_reserved(headers[i].name))
      continue;
    http__puts(&w, headers[i].name);
    http__put(&w, ": ", 2);
    http__puts(&w, headers[i].value);
    http__put(&w, "\r\n", 2);
  }
  for (size_t k = 0; k < KIPD_ARRAY_SIZE(http__security_headers); k++) {
    bool own = false;
    for (size_t i = 0; i < n_headers && !own; i++)
      own = headers[i].name != NULL && strcasecmp(headers[i].name, http__security_headers[k].name) == 0;
    if (own)
      continue;
    http__puts(&w, http__security_headers[k].name);
    http__put(&w, ": ", 2);
    http__puts(&w, http__security_headers[k].value);
    http__put(&w, "\r\n", 2);
  }
  if (!no_length) {
    n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n", len);
    http__put(&w, line, (size_t)n);
  }
  http__puts(&w, "Date: ");
  http__puts(&w, date);
  http__put(&w, "\r\n", 2);
  if (req->request_id[0] != '\0') {
    http__puts(&w, "X-Request-Id: ");
    http__puts(&w, req->request_id);
    http__put(&w, "\r\n", 2);
  }
  http__puts(&w, close ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n");
  if (send_body && len > 0)
    http__put(&w, body, len);

  *out = w.p;
  *out_len = w.len;
  return 0;
}

static const char *http__problem_slug(int status) {
  switch (status) {
  case 400: return "bad-request";
  case 408: return "request-timeout";
  case 413: return "payload-too-large";
  case 431: return "headers-too-large";
  case 503: return "unavailable";
  case 505: return "http-version-not-supported";
  default: return "internal";
  }
}

/* The same titles as app/problem.c, which this layer may not include. */
static const char *http__problem_title(int status) {
  switch (status) {
  case 400: return "Request could not be read";
  case 408: return "Request took too long";
  case 413: return "Request body too large";
  case 431: return "Request headers too large";
  case 503: return "Service unavailable";
  case 505: return "HTTP version not supported";
  default: return "Internal error";
  }
}

/* The stable error code of each problem this layer makes (the ErrorCode
 * enum of api/openapi.yaml). */
static const char *http__problem_code(int status) {
  /* codes: */
  switch (status) {
  case 400: return "malformed_request";
  case 408: return "request_timeout";
  case 413: return "too_large";
  case 431: return "headers_too_large";
  case 503: return "too_many_connections";
  default: return "internal";
  }
  /* :codes */
}

char *http__problem_body(int status, const char *detail, const char *field,
                         const char *request_id, size_t *len) {
  char type[96];
  snprintf(type, sizeof(type), "https://kipd.dk/problems/%s", http__problem_slug(status));
  /* These fields ("request", "headers", "body") are the message as a whole:
   * no JSON pointer into a body names them. */
  json_t *p = json_pack("{s:s, s:s, s:i, s:s, s:[{s:s, s:s, s:n, s:s}], s:s}",
                        "type", type,
                        "title", http__problem_title(status),
                        "status", status,
                        "detail", detail,
                        "errors", "code", http__problem_code(status), "field", field, "pointer",
                        "message", detail,
                        "request_id", request_id);
  if (p == NULL)
    return NULL;
  char *text = json_dumps(p, JSON_COMPACT);
  json_decref(p);
  if (text != NULL)
    *len = strlen(text);
  return text;
}
