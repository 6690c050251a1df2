#include "util/query.h"

#include <stdlib.h>
#include <string.h>

#include "util/validate.h"

static int query__hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long query_decode(const char *s, size_t len, char *out, int plus_is_space) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= len)
        return -EINVAL;
      int h = query__hex(s[i + 1]), l = query__hex(s[i + 2]);
      if (h < 0 || l < 0)
        return -EINVAL;
      char d = (char)(h << 4 | l);
      if (d == '\0')
        return -EINVAL;
      out[o++] = d;
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out[o++] = ' ';
    } else {
      out[o++] = c;
    }
  }
  out[o] = '\0';
  return (long)o;
}

int query_parse(const char *q, json_t **out, const char **why) {
  json_t *obj = json_object();
  if (obj == NULL)
    return -ENOMEM;
  *why = NULL;
  if (q == NULL || *q == '\0') {
    *out = obj;
    return 0;
  }
  size_t qlen = strlen(q);
  char *buf = malloc(qlen + 1);
  if (buf == NULL) {
    json_decref(obj);
    return -ENOMEM;
  }
  const char *p = q;
  int rc = 0;
  while (*p) {
    const char *amp = strchr(p, '&');
    size_t plen = amp ? (size_t)(amp - p) : strlen(p);
    if (plen > 0) {
      const char *eq = memchr(p, '=', plen);
      size_t nlen = eq ? (size_t)(eq - p) : plen;
      long n = query_decode(p, nlen, buf, 1);
      if (n <= 0) {
        *why = n == 0 ? "empty parameter name" : "bad percent-encoding";
        rc = -EINVAL;
        break;
      }
      char *name = strdup(buf);
      const char *vstart = eq ? eq + 1 : p + plen;
      size_t vlen = eq ? plen - nlen - 1 : 0;
      long v = query_decode(vstart, vlen, buf, 1);
      if (name == NULL || v < 0 || !validate_text(name) || !validate_text(buf)) {
        *why = "bad percent-encoding or invalid UTF-8";
        free(name);
        rc = -EINVAL;
        break;
      }
      if (json_object_get(obj, name) != NULL) {
        *why = "parameter given twice";
        free(name);
        rc = -EINVAL;
        break;
      }
      json_object_set_new(obj, name, json_string(buf));
      free(name);
    }
    p += plen;
    if (*p == '&')
      p++;
  }
  free(buf);
  if (rc != 0) {
    json_decref(obj);
    return rc;
  }
  *out = obj;
  return 0;
}
