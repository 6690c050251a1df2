/* metrics: the HTTP request counters and latency histograms by route
 * template, and the /metrics page (Prometheus text format 0.0.4) that
 * gathers them with the getters of the pool, the server and the jobs. */
#ifndef KIPD_APP_METRICS_H
#define KIPD_APP_METRICS_H

#include "app/app.h"

typedef struct metrics_s metrics_t;

/* For n_routes routes; NULL when out of memory. */
metrics_t *metrics_new(size_t n_routes);
void metrics_free(metrics_t *m);

/* Count one answered request: route is the matched route's index, or -1
 * (route="other"); method the request's method (may be NULL). */
void metrics_observe(metrics_t *m, long route, const char *method, int status, uint64_t ns);

/* GET /metrics. */
void metrics_page(kreq_t *r);

#endif
