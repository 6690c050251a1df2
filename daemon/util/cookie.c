#include "util/cookie.h"

#include <stdbool.h>
#include <string.h>

static bool cookie__ws(char c) { return c == ' ' || c == '\t'; }

/* cookie-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E */
static bool cookie__octet(unsigned char c) {
  return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
         (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

int cookie_find(const char *header, const char *name, char *out, size_t out_len) {
  if (header == NULL || name == NULL || out_len == 0)
    return -EINVAL;
  size_t name_len = strlen(name);
  const char *p = header;
  while (*p != '\0') {
    /* One pair runs to the next ';' or the end. */
    const char *end = strchr(p, ';');
    if (end == NULL)
      end = p + strlen(p);
    const char *a = p;
    const char *b = end;
    while (a < b && cookie__ws(*a))
      a++;
    while (b > a && cookie__ws(b[-1]))
      b--;
    const char *eq = memchr(a, '=', (size_t)(b - a));
    if (eq != NULL) {
      const char *n_end = eq;
      while (n_end > a && cookie__ws(n_end[-1]))
        n_end--;
      if ((size_t)(n_end - a) == name_len && memcmp(a, name, name_len) == 0) {
        const char *v = eq + 1;
        while (v < b && cookie__ws(*v))
          v++;
        size_t vlen = (size_t)(b - v);
        if (vlen >= 1 && v[0] == '"') {
          if (vlen < 2 || v[vlen - 1] != '"')
            return -EINVAL;
          v++;
          vlen -= 2;
        }
        for (size_t i = 0; i < vlen; i++)
          if (!cookie__octet((unsigned char)v[i]))
            return -EINVAL;
        if (vlen + 1 > out_len)
          return -EINVAL;
        memcpy(out, v, vlen);
        out[vlen] = '\0';
        return 0;
      }
    }
    p = *end == ';' ? end + 1 : end;
  }
  return -ENOENT;
}
