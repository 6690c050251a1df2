/* app/internal: what the files of the app layer share with each other.
 *
 * Nothing outside daemon/app/ includes this file (but its unit tests, e.g.
 * tests/unit/test-kreq_row.c). Functions here carry a
 * double underscore after their file's prefix (libuv's uv__ convention for
 * non-static internals). It is the one app header that shows libpq.
 */
#ifndef KIPD_APP_INTERNAL_H
#define KIPD_APP_INTERNAL_H

#include <libpq-fe.h>
#include <uv.h>

#include "app/app.h"
#include "app/idem.h"
#include "app/proxy.h"
#include "app/seen.h"
#include "db/pg_pool.h"

struct app_s {
  seen_t seen;                 /* the users behind credentials, for the access log */
  app_config_t cfg;
  void *api;                   /* the API layer's state, opaque here */
  uv_loop_t *loop;
  unsigned jobs;               /* kreq_work_queue() jobs queued or running */
  pg_pool_t *pool;
  http_server_t *server;
  const route_t *routes;
  size_t n_routes;
  const cpr_keyring_t *keyring;
  proxy_list_t proxies;        /* reverse proxies whose X-Forwarded-For is believed */
  struct events_s *events;     /* the live event streams (app/events.c); NULL: none */
  idem_cache_t *idem;          /* the statements wrapped for Idempotency-Key (app/idem.c) */
  struct metrics_s *metrics;   /* request counters by route (app/metrics.c) */
  const struct daily_s *daily; /* the jobs whose getters /metrics reads; NULL until set */
  const struct sealer_s *sealer;
  const struct webhook_s *webhook;
};

/* For the app's own routes (app/health.c). */
pg_pool_t *app_pool(const app_t *app);
http_server_t *app_server(const app_t *app);

/* kreq.c: the hash of the request's credential, the token's or the
 * session's ("" if none). Writable: a refused credential is cleared. */
char *kreq__cred_hash(kreq_t *r);

/* kreq_reply.c: what every reply does before the bytes go out (the access
 * log's user, the release hook, the request's JSON freed). For a request
 * that streams instead (app/events.c). */
void kreq_reply__release(kreq_t *r);

/* kreq_row.c: decode a successful result (res borrowed; row's strings
 * borrow from it) and an error result. */
void kreq_row__decode(const PGresult *res, kreq_row_t *row);
void kreq_row__decode_error(const PGresult *res, problem_db_error_t *e);

/* kreq_cpr.c: the body text of a row with every sealed CPR number
 * decrypted. Returns body itself when it holds no token, an arena copy, or
 * NULL (no memory). */
const char *kreq_cpr__reveal(kreq_t *r, const char *body, size_t len, size_t *out_len);

#endif
