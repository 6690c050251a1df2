/* app: the request path between the HTTP layer and the API handlers.
 *
 * For each request: match the route (404/405), check Content-Type (415),
 * parse the JSON body (400) and query string (400/422), require credentials
 * (401) and If-Match (428), check the body against the route's spec
 * (400/422), then run the route's handler. Handlers run their SQL through
 * kreq_exec(); kipd's SQL functions authenticate the token, apply the one
 * access rule (kip.plan_access) and write the audit record in the same
 * statement, and raise SQLSTATE KPnnn for HTTP status nnn.
 *
 * Every response, success or problem, goes through kreq_reply*(), which
 * releases the request's JSON and hands the bytes to http_respond().
 */
#ifndef KIPD_APP_APP_H
#define KIPD_APP_APP_H

#include <jansson.h>
#include <libpq-fe.h>
#include <uv.h>

#include "app/router.h"
#include "db/pg_pool.h"
#include "http/server.h"
#include "util/config.h"
#include "util/cpr_crypt.h"
#include "util/json_check.h"

typedef struct app_s app_t;

/* The web UI's session cookie (api/session.c sets it, app.c reads it). */
#define APP_SESSION_COOKIE "kipd_session"

typedef struct kreq_s kreq_t;
/* Called with a successful single-row result of kreq_exec(). res is
 * borrowed. The callback must reply. */
typedef void (*kreq_result_cb)(kreq_t *r, PGresult *res);

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
};

/* Create the app. routes is borrowed and must outlive the app. cfg is
 * borrowed. Returns 0 or -errno (-EINVAL when a route's statement does not
 * take the parameters the route passes). */
int app_new(const kipd_config_t *cfg, pg_pool_t *pool, const route_t *routes, size_t n_routes,
            app_t **out) KIPD_MUST_CHECK;
void app_free(app_t *app);
void app_set_server(app_t *app, http_server_t *server);
/* The loop for the threadpool and timers (kreq_queue_work, kreq_delay). */
void app_set_loop(app_t *app, uv_loop_t *loop);
/* The CPR keyring (borrowed; must outlive the app). Responses that hold
 * sealed CPR numbers are decrypted with it; new ones are sealed under its
 * current key. */
void app_set_keyring(app_t *app, const cpr_keyring_t *keyring);

/* Hook these into the HTTP server. data is the app. */
void app_handle(http_request_t *req, void *data);
void app_access_log(const http_request_t *req, int status, void *data);

/* Accessors for handlers. */
const kipd_config_t *app_config(const app_t *app);
pg_pool_t *app_pool(const app_t *app);
http_server_t *app_server(const app_t *app);

/* ---- Replies (each releases the request; call exactly one, once). ---- */

/* body is stolen (may be NULL for no body). headers may be NULL. */
void kreq_reply_json(kreq_t *r, int status, json_t *body, const http_header_t *headers, size_t n_headers);
/* Raw bytes with a content type (copied). */
void kreq_reply_raw(kreq_t *r, int status, const char *content_type, const char *body, size_t len,
                    const http_header_t *headers, size_t n_headers);
/* A problem with zero or one field error (field/message may be NULL). */
void kreq_problem(kreq_t *r, int status, const char *detail, const char *field, const char *message);
/* The same with the error's code ("required", "cpr_in_url", ...; the
 * ErrorCode enum of api/openapi.yaml). Every error's pointer is derived
 * from its field when the problem is sent (problem_complete_errors). */
void kreq_problem_code(kreq_t *r, int status, const char *detail, const char *code, const char *field,
                       const char *message);
/* A problem with an errors array (stolen). */
void kreq_problem_errors(kreq_t *r, int status, const char *detail, json_t *errors);
/* A problem from the request's json_check result. */
void kreq_problem_jc(kreq_t *r);

/* ---- SQL ---- */

/* The JSON context every API statement takes as $1: token hash, request id,
 * remote address, If-Match. Arena string. */
const char *kreq_ctx(kreq_t *r);

/* Run stmt with params (params[0] is normally kreq_ctx(r)); params are
 * copied by the pool. On success with no on_result, the generic reply is
 * sent: the statement's row is (status int, body jsonb, etag text, location
 * text, user_id uuid); status NULL means ok_status. Database errors become
 * problems (SQLSTATE table in app/problem.c); a serialization failure is
 * retried once. */
void kreq_exec(kreq_t *r, const pg_stmt_t *stmt, const char **params, int ok_status,
               kreq_result_cb on_result);

/* The generic reply for a row shaped as above (for on_result callbacks that
 * only want to post-process). */
void kreq_reply_row(kreq_t *r, PGresult *res);

/* The generic reply with one extra string member added to the body object
 * (used to show a new token once). value is borrowed. */
void kreq_reply_row_with(kreq_t *r, PGresult *res, const char *key, const char *value);

/* The body of a row shaped as above, parsed: new reference, or NULL when
 * the row has no body or it is not JSON. Also notes the row's user for the
 * access log. For handlers that render the answer in another format. */
json_t *kreq_row_body(kreq_t *r, PGresult *res);

/* Seal citizen.cpr (a normalised CPR number or null) for the database:
 * cpr becomes the mask ("010190-****"), cpr_enc the sealed token, cpr_hmac
 * the blind index (both null for a null cpr). No cpr member: nothing to do.
 * citizen is borrowed. Returns 0 or -errno (answer 500). */
int kreq_seal_cpr(kreq_t *r, json_t *citizen) KIPD_MUST_CHECK;

/* The blind index (hex) of a CPR-shaped search term, 10 digits or
 * DDMMYY-NNNN. Returns 0 or -EINVAL. */
int kreq_cpr_index(kreq_t *r, const char *cpr, char out[65]) KIPD_MUST_CHECK;

/* kreq_row_body() for a row whose body must be a JSON object: new
 * reference, or NULL after answering 500 (the caller then returns). */
json_t *kreq_row_object(kreq_t *r, PGresult *res);

/* The generic handler: passes ctx, the path parameters, the body and the
 * query (each as text) to route->stmt. */
void kreq_generic(kreq_t *r);

/* ---- Work off the loop ---- */

/* Runs on libuv's threadpool: may touch only arg, never the request, the
 * app or the loop. */
typedef void (*kreq_work_fn)(void *arg);
/* Back on the loop after the work, or after a delay. Must go on with the
 * request (reply or run more SQL). */
typedef void (*kreq_then_fn)(kreq_t *r, void *arg);

/* Run work(arg) on the threadpool, then then(r, arg) on the loop. arg is
 * borrowed and must live in the request's arena (or longer). At most
 * --password-jobs-max jobs are queued or running: beyond that -ENOSPC.
 * Returns 0 or -errno; on error nothing runs and the caller replies. */
int kreq_queue_work(kreq_t *r, kreq_work_fn work, kreq_then_fn then, void *arg) KIPD_MUST_CHECK;

/* Call then(r, arg) after delay_ms, from a timer on the loop (0: on the
 * next loop iteration). Returns 0 or -errno. */
int kreq_delay(kreq_t *r, uint64_t delay_ms, kreq_then_fn then, void *arg) KIPD_MUST_CHECK;

/* Arena helpers. */
char *kreq_strdup(kreq_t *r, const char *s);
char *kreq_json_text(kreq_t *r, json_t *j); /* compact dump into the arena; j borrowed */

#endif
