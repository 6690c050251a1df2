/* --print-routes: the route table, one JSON object a line. The
 * access-matrix test compares it with its own table, so a new route without
 * a row there fails; the schema-layout test finds each route's SQL function
 * ("function", from its statement) in the file of its family. */
#include "api/print_routes.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

int print_routes(FILE *out) {
  route_t *routes = NULL;
  size_t n = 0;
  int rc = api_routes(&routes, &n);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const route_t *rt = &routes[i];
    char function[128] = "";
    const char *call = rt->stmt != NULL ? strstr(rt->stmt->sql, "kip_api.") : NULL;
    if (call != NULL)
      snprintf(function, sizeof(function), "%.*s", (int)strspn(call, "abcdefghijklmnopqrstuvwxyz_.0123456789"), call);
    json_t *j = json_pack("{s:s, s:s, s:b, s:b, s:b, s:s?}", "method", rt->method, "path", rt->pattern,
                          "public", (rt->flags & ROUTE_PUBLIC) != 0, "body", (rt->flags & ROUTE_BODY) != 0,
                          "if_match", (rt->flags & ROUTE_IF_MATCH) != 0,
                          "function", function[0] ? function : NULL);
    char *line = json_dumps(j, JSON_COMPACT);
    fprintf(out, "%s\n", line ? line : "{}");
    free(line);
    json_decref(j);
  }
  free(routes);
  return rc;
}
