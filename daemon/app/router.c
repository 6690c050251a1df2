#include "app/router.h"

#include <errno.h>
#include <string.h>

/* Compare one template against path segments. */
static bool router__match_one(const char *pattern, const char *path, char *scratch,
                              const char **params, size_t *n_params) {
  size_t np = 0;
  const char *p = pattern;
  const char *s = path;
  char *out = scratch;
  while (*p != '\0' && *s != '\0') {
    if (*p != '/' || *s != '/')
      return false;
    p++;
    s++;
    if (*p == '{') {
      const char *pe = strchr(p, '}');
      const char *se = strchr(s, '/');
      size_t slen = se ? (size_t)(se - s) : strlen(s);
      if (pe == NULL || slen == 0 || np >= ROUTER_MAX_PARAMS)
        return false;
      memcpy(out, s, slen);
      out[slen] = '\0';
      params[np++] = out;
      out += slen + 1;
      p = pe + 1;
      s += slen;
    } else {
      while (*p != '\0' && *p != '/' && *s != '\0' && *s != '/') {
        if (*p != *s)
          return false;
        p++;
        s++;
      }
      if ((*p != '\0' && *p != '/') || (*s != '\0' && *s != '/'))
        return false;
    }
  }
  if (*p != '\0' || *s != '\0')
    return false;
  *n_params = np;
  return true;
}

int router_match(const route_t *routes, size_t n, const char *method, const char *path,
                 char *scratch, router_match_t *m) {
  bool path_found = false;
  m->route = NULL;
  m->n_params = 0;
  m->allow[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    const char *params[ROUTER_MAX_PARAMS];
    size_t np = 0;
    if (!router__match_one(routes[i].pattern, path, scratch, params, &np))
      continue;
    bool head_get = strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0;
    if (strcmp(routes[i].method, method) == 0 || head_get) {
      m->route = &routes[i];
      memcpy(m->params, params, sizeof(params));
      m->n_params = np;
      return 0;
    }
    path_found = true;
    if (strstr(m->allow, routes[i].method) == NULL &&
        strlen(m->allow) + strlen(routes[i].method) + 3 < sizeof(m->allow)) {
      if (m->allow[0] != '\0')
        strcat(m->allow, ", ");
      strcat(m->allow, routes[i].method);
    }
  }
  return path_found ? -EPERM : -ENOENT;
}
