#include "app/access_log.h"

#include <string.h>

#include "app/internal.h"
#include "app/kreq.h"
#include "app/metrics.h"
#include "util/log.h"

void access_log_request(const http_request_t *req, int status, void *data) {
  const kreq_t *r = req->user;
  json_t *f = json_object();
  json_object_set_new(f, "request_id", json_string(req->request_id));
  if (req->method)
    json_object_set_new(f, "method", json_string(req->method));
  const char *route = (r && r->match.route) ? r->match.route->pattern : NULL;
  json_object_set_new(f, "route", route ? json_string(route) : json_null());
  json_object_set_new(f, "status", json_integer(status));
  double ms = req->start_ns ? (double)(uv_hrtime() - req->start_ns) / 1e6 : 0.0;
  json_object_set_new(f, "duration_ms", json_real((double)(long long)(ms * 1000) / 1000.0));
  json_object_set_new(f, "user_id", (r && r->user_id[0]) ? json_string(r->user_id) : json_null());
  const char *client = (r && r->client_addr) ? r->client_addr : req->remote_addr;
  json_object_set_new(f, "remote_addr", json_string(client));
  if (strcmp(client, req->remote_addr) != 0)
    json_object_set_new(f, "proxy_addr", json_string(req->remote_addr));
  log_emit(LOG_INFO, "request", f);

  /* The counters by route template (app/metrics.c); data is the app. */
  const app_t *app = data;
  if (app != NULL) {
    long idx = -1;
    if (route != NULL && r->match.route >= app->routes && r->match.route < app->routes + app->n_routes)
      idx = (long)(r->match.route - app->routes);
    metrics_observe(app->metrics, idx, req->method, status,
                    req->start_ns ? uv_hrtime() - req->start_ns : 0);
  }
}
