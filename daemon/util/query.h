/* query: decode an application/x-www-form-urlencoded query string into a
 * JSON object of strings ("a=1&b=x%20y" -> {"a":"1","b":"x y"}). */
#ifndef KIPD_UTIL_QUERY_H
#define KIPD_UTIL_QUERY_H

#include <jansson.h>

#include "util/error.h"

/* q may be NULL or "". Returns 0 and a new object in *out, or -EINVAL for
 * bad percent-encoding, invalid UTF-8, an empty name, or a repeated name
 * (*why is then set to a static description). */
int query_parse(const char *q, json_t **out, const char **why) KIPD_MUST_CHECK;

/* Percent-decode (and '+' -> ' ' when plus_is_space) len bytes of s into
 * out (at least len+1 bytes). Returns the decoded length or -EINVAL. */
long query_decode(const char *s, size_t len, char *out, int plus_is_space);

#endif
