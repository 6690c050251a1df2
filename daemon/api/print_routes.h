/* print_routes: kipd --print-routes, the route table as JSON lines
 * ({"method", "path", "public", "body", "if_match"}). */
#ifndef KIPD_API_PRINT_ROUTES_H
#define KIPD_API_PRINT_ROUTES_H

#include <stdio.h>

#include "util/error.h"

/* Print every route to out. Returns 0 or -errno. */
int print_routes(FILE *out) KIPD_MUST_CHECK;

#endif
