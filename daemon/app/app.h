/* app: the request path between the HTTP layer and the API handlers.
 *
 * For each request app_handle() matches the route (404/405), requires
 * credentials (401/403), checks the query string (400/422), Content-Type
 * (415), the JSON body (400) and If-Match (428), checks the body against the
 * route's spec (400/422), then runs the route's handler. Handlers run their
 * SQL through kreq_exec(); kipd's SQL functions authenticate the token,
 * apply the one access rule (kip.plan_access) and write the audit record in
 * the same statement, and raise SQLSTATE KPnnn for HTTP status nnn.
 *
 * This header is what a handler includes: the request (app/kreq.h), its
 * decoded rows, replies, problems, CPR fields and off-loop work. None of it
 * shows libpq.
 */
#ifndef KIPD_APP_APP_H
#define KIPD_APP_APP_H

#include <jansson.h>
#include <uv.h>

#include "app/kreq.h"
#include "app/kreq_cpr.h"
#include "app/kreq_problem.h"
#include "app/kreq_reply.h"
#include "app/kreq_row.h"
#include "app/kreq_work.h"
#include "app/router.h"
#include "http/server.h"
#include "util/config.h"
#include "util/cpr_crypt.h"
#include "util/json_check.h"

/* The web UI's session cookie (api/session.c sets it, app.c reads it). */
#define APP_SESSION_COOKIE "kipd_session"

struct pg_pool_s;

/* Create the app. routes is borrowed and must outlive the app. cfg is
 * borrowed. pool is borrowed. Returns 0 or -errno (-EINVAL when a route's
 * statement does not take the parameters the route passes, or a trusted
 * proxy is not an IP address). */
int app_new(const kipd_config_t *cfg, struct pg_pool_s *pool, const route_t *routes, size_t n_routes,
            app_t **out) KIPD_MUST_CHECK;
void app_free(app_t *app);
void app_set_server(app_t *app, http_server_t *server);
/* The loop for the threadpool and timers (app/kreq_work.h). */
void app_set_loop(app_t *app, uv_loop_t *loop);
/* The CPR keyring (borrowed; must outlive the app). Responses that hold
 * sealed CPR numbers are decrypted with it; new ones are sealed under its
 * current key. */
void app_set_keyring(app_t *app, const cpr_keyring_t *keyring);

/* The HTTP server's request handler. data is the app. */
void app_handle(http_request_t *req, void *data);

/* Accessors for handlers. */
const kipd_config_t *app_config(const app_t *app);

#endif
