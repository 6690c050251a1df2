/* access_log: one JSON line per request (request id, method, route
 * template, status, duration, user id, client and proxy address). Never a
 * token, a password or a CPR number. Also counts the request for /metrics. */
#ifndef KIPD_APP_ACCESS_LOG_H
#define KIPD_APP_ACCESS_LOG_H

#include "http/server.h"

/* The HTTP server's access callback (http_server_set_access_cb()); data is
 * the app, whose request counters it feeds (app/metrics.h), or NULL.
 * req->user is the request's kreq_t, or NULL. */
void access_log_request(const http_request_t *req, int status, void *data);

#endif
