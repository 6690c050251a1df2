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
#include "util/cpr_crypt.h"
#include "util/json_check.h"
#include "util/netpolicy.h"
#include "util/password.h"

/* The web UI's session cookie (api/session.c sets it, app.c reads it). */
#define APP_SESSION_COOKIE "kipd_session"

struct pg_pool_s;

/* The app's part of the configuration: the KIP settings and the sign-in
 * rules (main.c fills it from util/config). Strings are borrowed and must
 * outlive the app. */
typedef struct app_config_s {
  int meeting_min_minutes;      /* shortest KIP meeting: 90 */
  int next_meeting_max_months;  /* latest next meeting after a meeting: 6 */
  uint64_t session_idle_s;      /* a session unused this long expires: 1800 */
  uint64_t session_max_s;       /* absolute lifetime of a session: 43200 */
  const char *cookie_secure;    /* "auto" (X-Forwarded-Proto), "always", "never" */
  const char *trusted_proxies;  /* comma-separated proxy IPs whose X-Forwarded-For is believed */
  int signin_lock_after;        /* consecutive failures that lock a username: 5 */
  uint64_t signin_lock_s;       /* how long it stays locked: 900 */
  uint64_t signin_window_s;     /* failures older than this are forgotten: 900 */
  uint64_t signin_delay_ms;     /* delay of the 3rd failure, doubling to 8x: 1000 */
  unsigned password_jobs_max;   /* Argon2 jobs queued or running before 429: 16 */
  password_params_t argon2;     /* t=3, m=65536 KiB, p=1 */
  const char *public_url;       /* base of absolute links ("https://kip.example.dk", no trailing
                                 * slash); NULL: from the request's Host and X-Forwarded-Proto */
  const char *listen_host;      /* the listen address, the last fallback for absolute links */
  int listen_port;
  const netpolicy_t *webhook_net; /* borrowed: addresses a webhook URL may name (api/webhooks.c) */
  bool webhook_allow_loopback;  /* http:// to a loopback address allowed (tests) */
} app_config_t;

/* Create the app. routes is borrowed and must outlive the app. cfg is
 * copied (its strings are borrowed). pool is borrowed. Returns 0 or -errno (-EINVAL when a route's
 * statement does not take the parameters the route passes, or a trusted
 * proxy is not an IP address). */
int app_new(const app_config_t *cfg, struct pg_pool_s *pool, const route_t *routes, size_t n_routes,
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

/* The API layer's own state (api/api.h api_t), opaque to the app: set once
 * at start-up, borrowed, must outlive the app. Handlers get it back with
 * app_api(). */
void app_set_api(app_t *app, void *api);

/* Accessors for handlers. */
const app_config_t *app_config(const app_t *app);
void *app_api(const app_t *app);

#endif
