/* kreq: one API request on its way through kipd, and the SQL it runs.
 *
 * The request pipeline (app_handle(), app/app.c) makes a kreq_t for every
 * request and hands it to the route's handler. Handlers run their SQL with
 * kreq_exec() and get the answer as a decoded row (app/kreq_row.h), never
 * as a libpq result. Every request ends with exactly one reply
 * (app/kreq_reply.h or app/kreq_problem.h).
 *
 * The related rooms, all for one kreq_t:
 *   kreq.c          the request's SQL: its context ($1), its statement, one retry
 *   kreq_row.c      the database's answer, decoded into a kreq_row_t
 *   kreq_reply.c    replies: JSON, raw bytes, the generic row
 *   kreq_problem.c  problem replies, also the one for a database error
 *   kreq_cpr.c      sealing CPR numbers in bodies, revealing them in answers
 *   kreq_work.c     work on the threadpool, continuations after a delay
 */
#ifndef KIPD_APP_KREQ_H
#define KIPD_APP_KREQ_H

#include <jansson.h>
#include <stdbool.h>

#include "app/router.h"
#include "db/pg_stmt.h"
#include "http/server.h"
#include "util/json_check.h"

typedef struct app_s app_t;
typedef struct kreq_s kreq_t;
typedef struct kreq_row_s kreq_row_t;

/* Called with the row a successful kreq_exec() returned. row is borrowed,
 * and so are its strings: they live until the callback returns. The
 * callback must reply (or run more SQL). */
typedef void (*kreq_result_cb)(kreq_t *r, const kreq_row_t *row);

struct kreq_s {
  http_request_t *http;     /* borrowed; owns the arena this struct lives in */
  app_t *app;
  router_match_t match;
  json_t *body;             /* owned; NULL when the route takes none */
  json_t *query;            /* owned; object of query parameters */
  char token_hash[65];      /* SHA-256 hex of the bearer token, "" if none */
  const char *client_addr;  /* the client: the TCP peer, or X-Forwarded-For's last hop when the
                             * peer is a trusted proxy (--trusted-proxies) */
  char session_hash[65];    /* SHA-256 hex of the session cookie, "" if none */
  char csrf_hash[65];       /* SHA-256 hex of X-CSRF-Token, "" if none */
  bool csrf_required;       /* a state-changing request with the session cookie */
  long long if_match;       /* -1 absent, -2 "*", else the version */
  char user_id[40];         /* for the access log, set from the SQL answer */
  jc_result_t jc;
  bool query_problem;       /* the problem is about the query string: no error has a body pointer */
  /* The statement in flight, kept for one retry after a serialization
   * failure. */
  const pg_stmt_t *stmt;
  const char **params;
  int retries;
  int ok_status;
  kreq_result_cb on_result;
  void *handler_data;       /* free for the handler */
  /* Called once when the reply is sent, whichever path sends it (e.g. to
   * wipe a password held in the arena). */
  void (*on_release)(void *arg);
  void *on_release_arg;
  bool replied;
  /* Idempotency-Key of a POST that stores its answer (app/idem.h): the key
   * (borrowed from the request's headers) and the request's SHA-256 hex;
   * NULL when the request carries none. */
  const char *idem_key;
  char idem_hash[65];
};

/* The JSON context every API statement takes as $1: token hash, request id,
 * remote address, If-Match, and the meeting rules of the configuration
 * (meeting_min_minutes, next_meeting_max_months) for the SQL that applies
 * them. Arena string. */
const char *kreq_ctx(kreq_t *r);

/* Run stmt with params (params[0] is normally kreq_ctx(r)); params are
 * copied by the pool. With no on_result and an Idempotency-Key on the
 * request, idem_exec() runs it and stores its answer (app/idem.h). On
 * success with no on_result, the generic reply is sent: the statement's row is (status int, body jsonb, etag text, location
 * text, user_id uuid); status NULL means ok_status. Database errors become
 * problems (kreq_problem_db()); a serialization failure is retried once. */
void kreq_exec(kreq_t *r, const pg_stmt_t *stmt, const char **params, int ok_status,
               kreq_result_cb on_result);

/* The generic handler: passes ctx, the path parameters, the body and the
 * query (each as text) to route->stmt. */
void kreq_generic(kreq_t *r);

/* Arena helpers. */
char *kreq_strdup(kreq_t *r, const char *s);
char *kreq_json_text(kreq_t *r, json_t *j); /* compact dump into the arena; j borrowed */

#endif
