#include "api/api.h"
#include "app/health.h"
#include "app/metrics.h"

const route_t api_health_routes[] = {
  {.method = "GET", .pattern = "/healthz", .handler = health_live, .flags = ROUTE_PUBLIC},
  {.method = "GET", .pattern = "/readyz", .handler = health_ready, .flags = ROUTE_PUBLIC},
  {.method = "GET", .pattern = "/metrics", .handler = metrics_page, .flags = ROUTE_PUBLIC},
  /* The contract, compiled in (api/openapi.c). */
  {.method = "GET", .pattern = "/v1/openapi.yaml", .handler = api_openapi_handler, .flags = ROUTE_PUBLIC},
};
const size_t api_health_n_routes = KIPD_ARRAY_SIZE(api_health_routes);
