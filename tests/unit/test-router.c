/* Route matching, path parameters, 404 vs 405, and the query decoder. */
#include <errno.h>
#include <string.h>

#include "app/router.h"
#include "tap.h"
#include "util/query.h"

static const route_t routes[] = {
  {.method = "GET", .pattern = "/v1/plans"},
  {.method = "POST", .pattern = "/v1/plans"},
  {.method = "GET", .pattern = "/v1/plans/{id}"},
  {.method = "PATCH", .pattern = "/v1/plans/{id}"},
  {.method = "GET", .pattern = "/v1/plans/{id}/participants/{pid}"},
  {.method = "POST", .pattern = "/v1/plans/{id}/consent/withdraw"},
  {.method = "GET", .pattern = "/healthz"},
};

int main(void) {
  router_match_t m;
  char scratch[256];
  const size_t n = sizeof(routes) / sizeof(routes[0]);

  tap_is_int(router_match(routes, n, "GET", "/v1/plans", scratch, &m), 0, "exact path");
  tap_ok(m.route == &routes[0], "the GET route");
  tap_is_int(router_match(routes, n, "POST", "/v1/plans", scratch, &m), 0, "same path, other method");
  tap_ok(m.route == &routes[1], "the POST route");
  tap_is_int(router_match(routes, n, "GET", "/v1/plans/abc", scratch, &m), 0, "one parameter");
  tap_is_int((long long)m.n_params, 1, "one parameter captured");
  tap_is_str(m.params[0], "abc", "its value");
  tap_is_int(router_match(routes, n, "GET", "/v1/plans/p1/participants/p2", scratch, &m), 0, "two parameters");
  tap_is_str(m.params[0], "p1", "first");
  tap_is_str(m.params[1], "p2", "second");
  tap_is_int(router_match(routes, n, "DELETE", "/v1/plans/abc", scratch, &m), -EPERM, "known path, wrong method");
  tap_is_str(m.allow, "GET, PATCH", "Allow lists the methods");
  tap_is_int(router_match(routes, n, "GET", "/v1/plan", scratch, &m), -ENOENT, "unknown path");
  tap_is_int(router_match(routes, n, "GET", "/v1/plans/", scratch, &m), -ENOENT, "empty segment is not a parameter");
  tap_is_int(router_match(routes, n, "GET", "/v1/plans/a/b", scratch, &m), -ENOENT, "extra segment");
  tap_is_int(router_match(routes, n, "GET", "/v1/plansx", scratch, &m), -ENOENT, "prefix is not a match");
  tap_is_int(router_match(routes, n, "HEAD", "/healthz", scratch, &m), 0, "HEAD matches GET");
  tap_is_int(router_match(routes, n, "POST", "/v1/plans/x/consent/withdraw", scratch, &m), 0, "literal after a parameter");

  json_t *q = NULL;
  const char *why = NULL;
  tap_is_int(query_parse("status=active&q=J%C3%B8rgen+Hansen&limit=2", &q, &why), 0, "query parses");
  tap_is_str(json_string_value(json_object_get(q, "q")), "Jørgen Hansen", "percent and plus decoded");
  tap_is_str(json_string_value(json_object_get(q, "limit")), "2", "values stay strings");
  json_decref(q);
  tap_is_int(query_parse("a=1&a=2", &q, &why), -EINVAL, "a repeated parameter is refused");
  tap_is_int(query_parse("a=%zz", &q, &why), -EINVAL, "bad percent-encoding is refused");
  tap_is_int(query_parse("a=%00", &q, &why), -EINVAL, "an encoded NUL is refused");
  tap_is_int(query_parse("a=%", &q, &why), -EINVAL, "a truncated escape is refused");
  tap_is_int(query_parse("flag&x=", &q, &why), 0, "names without values");
  tap_is_str(json_string_value(json_object_get(q, "flag")), "", "empty value");
  json_decref(q);
  tap_is_int(query_parse(NULL, &q, &why), 0, "no query");
  tap_is_int((long long)json_object_size(q), 0, "empty object");
  json_decref(q);
  return tap_done();
}
