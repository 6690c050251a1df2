/* http/strict: RFC 9112 checks on a request head that llhttp leaves to us.
 * See strict.h for the list and the reasons. */
#include "http/strict.h"

#include <string.h>

const char *const http_strict_singletons[] = {
  "host", "authorization", "cookie", "content-length", "transfer-encoding",
  "content-type", "x-csrf-token", NULL,
};

bool http_strict_fold(bool *after_lf, const char *p, size_t n) {
  bool lf = *after_lf;
  for (size_t i = 0; i < n; i++) {
    char ch = p[i];
    if (lf && (ch == ' ' || ch == '\t')) {
      *after_lf = false;
      return true;
    }
    lf = ch == '\n';
  }
  *after_lf = lf;
  return false;
}

/* RFC 9110 5.6.2: tchar. */
static bool http_strict__tchar(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
    return true;
  return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

bool http_strict_token(const char *name, size_t len) {
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!http_strict__tchar((unsigned char)name[i]))
      return false;
  return true;
}

int http_strict_head(int major, int minor, const http_header_t *headers, size_t n_headers,
                     const char **detail, const char **field) {
  *field = "request";
  if (major == 0) {
    *detail = "the request line has no HTTP version";
    return 400;
  }
  if (major != 1) {
    *detail = "only HTTP/1.0 and HTTP/1.1 are served";
    return 505;
  }
  bool has_host = false;
  for (size_t i = 0; i < n_headers; i++) {
    const char *name = headers[i].name;
    if (!http_strict_token(name, strlen(name))) {
      *detail = "a header name is not a token (whitespace before the colon?)";
      return 400;
    }
    if (strcmp(name, "host") == 0)
      has_host = true;
    for (const char *const *s = http_strict_singletons; *s != NULL; s++) {
      if (strcmp(name, *s) != 0)
        continue;
      for (size_t j = i + 1; j < n_headers; j++) {
        if (strcmp(headers[j].name, *s) == 0) {
          *detail = "a header that may appear once is repeated";
          *field = *s;
          return 400;
        }
      }
    }
  }
  if (!has_host && minor >= 1) {
    *detail = "an HTTP/1.1 request must carry a Host header";
    *field = "host";
    return 400;
  }
  return 0;
}
