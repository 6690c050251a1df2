/* router: the route table type and path-template matching.
 * Templates look like "/v1/plans/{id}/participants/{pid}"; each {name}
 * matches one non-empty path segment. */
#ifndef KIPD_APP_ROUTER_H
#define KIPD_APP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "db/pg_stmt.h"
#include "util/json_check.h"

#define ROUTER_MAX_PARAMS 4

struct kreq_s;
typedef void (*route_handler_fn)(struct kreq_s *r);

enum {
  ROUTE_PUBLIC = 1u << 0,     /* no authentication */
  ROUTE_IF_MATCH = 1u << 1,   /* If-Match required (428 without) */
  ROUTE_BODY = 1u << 2,       /* takes a JSON body (checked against body_spec) */
  ROUTE_OPT_IF_MATCH = 1u << 3, /* If-Match honoured when sent */
  ROUTE_NO_IDEMPOTENCY = 1u << 4, /* a POST whose answer holds a secret shown once: Idempotency-Key
                                   * answers 422 (app/idem.h) */
  ROUTE_SAFE = 1u << 5,       /* a POST that only reads (a search): Idempotency-Key is checked, and
                               * the request runs again */
};

typedef struct route_s {
  const char *method;
  const char *pattern;
  route_handler_fn handler;      /* NULL: the generic SQL call */
  const jc_field_t *body_spec;   /* with ROUTE_BODY */
  const jc_field_t *query_spec;  /* allowed query parameters; NULL: none */
  const pg_stmt_t *stmt;         /* the SQL the generic handler calls; with a handler of
                                  * its own, its main statement (--print-routes names it) */
  int ok_status;                 /* 200, 201, 204 */
  unsigned flags;
} route_t;

typedef struct router_match_s {
  const route_t *route;
  const char *params[ROUTER_MAX_PARAMS];   /* borrowed from the arena copy */
  size_t n_params;
  char allow[128];                         /* for 405: "GET, PATCH" */
} router_match_t;

/* Match method + path. path is split in place into a copy the caller
 * provides (scratch, strlen(path)+1 bytes). Returns 0 on match, -ENOENT for
 * no such path, -EPERM when the path exists but not the method (allow set). */
int router_match(const route_t *routes, size_t n, const char *method, const char *path,
                 char *scratch, router_match_t *m);

#endif
