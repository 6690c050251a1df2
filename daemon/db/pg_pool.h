/* db/pg_pool: a pool of asynchronous libpq connections driven by libuv.
 *
 * Knows no KIP word. No blocking libpq call is made: connections start with
 * PQconnectStartParams/PQconnectPoll, run in non-blocking mode, flush with
 * PQflush, and are read with PQconsumeInput/PQgetResult from uv_poll_t
 * callbacks. Statements are prepared once per connection, lazily, in the same
 * round trip as their first execution (pipeline mode).
 *
 * Requests wait in a bounded FIFO queue when all connections are busy. A full
 * queue fails at once with -ENOSPC; a request that waited queue_timeout_ms
 * fails with -ETIMEDOUT; while the database is unreachable, requests fail
 * with -ECONNRESET (mapped to 503 by the app layer). Broken connections are
 * re-established with exponential backoff; the pool never needs a restart.
 * statement_timeout is set on every connection.
 */
#ifndef KIPD_DB_PG_POOL_H
#define KIPD_DB_PG_POOL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "db/pg_stmt.h"
#include "util/error.h"
#include "util/histogram.h"

/* The pool's configuration (its part of kipd's; main.c fills it). */
typedef struct pg_pool_config_s {
  const char *conninfo;         /* libpq connection string or URI */
  unsigned size;                /* connections: 8 */
  unsigned max_queue;           /* waiting requests before 503: 1024 */
  uint64_t queue_timeout_ms;    /* a waiting request gives up: 5 s */
  uint64_t statement_timeout_ms;/* server-side statement_timeout: 10 s */
  uint64_t connect_timeout_ms;  /* one connection attempt: 5 s */
  uint64_t backoff_min_ms;      /* reconnect backoff start: 100 ms */
  uint64_t backoff_max_ms;      /* reconnect backoff cap: 5 s */
} pg_pool_config_t;

typedef struct pg_pool_s pg_pool_t;
typedef struct pg_conn_s pg_conn_t;

/* Result of one query.
 *   err == 0:  res is the PGresult (PGRES_TUPLES_OK / PGRES_COMMAND_OK).
 *   err == -EIO: the server answered with an error; res holds it (read
 *              PG_DIAG_SQLSTATE, PG_DIAG_MESSAGE_DETAIL, ...).
 *   other err:  res is NULL (-ENOSPC queue full, -ETIMEDOUT queue wait,
 *              -ECONNRESET database unreachable or connection lost,
 *              -ECANCELED pool shutting down).
 * res is borrowed: it is PQclear()ed when the callback returns. */
typedef void (*pg_result_cb)(void *data, int err, PGresult *res);

/* Create the pool on loop and start connecting. cfg is copied (conninfo
 * duplicated). Returns 0 or -errno; *out is new. */
int pg_pool_new(uv_loop_t *loop, const pg_pool_config_t *cfg, pg_pool_t **out) KIPD_MUST_CHECK;

/* Run one prepared statement with text parameters (params[i] may be NULL for
 * SQL NULL; params are copied before this returns). The callback is always
 * called exactly once, never synchronously from inside this call. Returns 0,
 * or -errno without calling cb (only for -ENOMEM / -EINVAL, and -ECANCELED
 * late in pg_pool_close, see there). stmt is borrowed and must outlive the
 * request (static const). */
int pg_pool_exec(pg_pool_t *pool, const pg_stmt_t *stmt,
                 const char *const *params, pg_result_cb cb, void *data) KIPD_MUST_CHECK;

/* Run several prepared statements in one transaction and one round trip
 * (pipeline mode: BEGIN, each statement, COMMIT, one sync). params[i] is the
 * parameter array of stmts[i] (params, or params[i] for a statement without
 * parameters, may be NULL); stmts and params are borrowed for the call,
 * parameter strings are copied. cb is called once per statement in order
 * (index i via the pg_tx_result_cb), and then once with index -1 and the
 * outcome of the whole transaction (err 0 = committed, res = COMMIT's
 * result). A statement's err 0 is provisional: only index -1 says whether it
 * was committed. If any statement fails (-EIO, also when its prepare failed),
 * the transaction is rolled back, later statements report -ECANCELED and
 * index -1 gets -EIO with the failing statement's PGresult. If the request
 * never ran or its connection was lost (-ENOSPC, -ETIMEDOUT, -ECONNRESET,
 * -ECANCELED), every statement and index -1 get that err with res NULL.
 * Never calls back synchronously; returns 0, or -EINVAL/-ENOMEM (and
 * -ECANCELED late in pg_pool_close) without calling cb. */
typedef void (*pg_tx_result_cb)(void *data, int index, int err, PGresult *res);
int pg_pool_tx(pg_pool_t *pool, const pg_stmt_t *const *stmts, int n,
               const char *const *const *params, pg_tx_result_cb cb, void *data) KIPD_MUST_CHECK;

/* Sessions: hold one connection for a sequence of queries (migrations,
 * bootstrap). acquire's cb gets the connection (or err != 0, conn NULL);
 * it waits in the same queue as exec/tx and is never called synchronously.
 * pg_conn_query runs plain SQL via the simple query protocol (several
 * statements allowed; cb gets the LAST result, or the first error).
 * pg_conn_query_params runs one unnamed statement with text params (sql
 * and params copied). One query at a time: both return -EINVAL if conn is
 * not held or a query is still running, -ENOMEM, else 0 and cb runs later
 * (-ECONNRESET if the session's connection was lost; a lost session
 * connection is not re-established until it is released, so a transaction
 * can never silently continue on a new connection). Release the connection
 * with pg_pool_release when done; released while a query runs, it is
 * released after that query's cb. A transaction left open by the session is
 * rolled back before the pool reuses the connection; other session state
 * (SET, temporary tables) is not reset. */
typedef void (*pg_acquire_cb)(void *data, int err, pg_conn_t *conn);
int pg_pool_acquire(pg_pool_t *pool, pg_acquire_cb cb, void *data) KIPD_MUST_CHECK;
int pg_conn_query(pg_conn_t *conn, const char *sql, pg_result_cb cb, void *data) KIPD_MUST_CHECK;
int pg_conn_query_params(pg_conn_t *conn, const char *sql, int nparams,
                         const char *const *params, pg_result_cb cb, void *data) KIPD_MUST_CHECK;
void pg_pool_release(pg_pool_t *pool, pg_conn_t *conn);

/* True while at least one connection is up (for /readyz). */
bool pg_pool_ready(const pg_pool_t *pool);

/* The most recent connection-level error message from libpq, e.g. why the
 * database is unreachable (borrowed, "" if none). The pool does not log; the
 * app layer may. Never holds a password. */
const char *pg_pool_last_error(const pg_pool_t *pool);

/* Ask the pool to drop and re-establish every connection soon (used after
 * the embedded postmaster was restarted): broken connections retry now with
 * their backoff reset, idle ones are re-established now, busy ones and held
 * sessions are left alone (a dead one breaks on its own). */
void pg_pool_reconnect(pg_pool_t *pool);

typedef struct pg_pool_stats_s {
  unsigned connections_up;
  unsigned connections_busy;
  unsigned queue_length;
  uint64_t queries_total;
  uint64_t queue_full_total;
  uint64_t reconnects_total;
  uint64_t errors_total;        /* statements answered with an error (SQL or prepare) */
} pg_pool_stats_t;
void pg_pool_stats(const pg_pool_t *pool, pg_pool_stats_t *out);

/* Time per statement name, from the send of its pipeline to its result
 * (so a statement's time includes the ones before it in the same request). */
typedef struct pg_stmt_stat_s {
  char *name;                   /* the statement's name (a copy); NULL: an empty slot */
  hist_t hist;
  uint64_t errors;
} pg_stmt_stat_t;
/* Calls cb for every statement that has run at least once, in no order. */
typedef void (*pg_stmt_stat_cb)(const pg_stmt_stat_t *s, void *data);
void pg_pool_stmt_stats(const pg_pool_t *pool, pg_stmt_stat_cb cb, void *data);

/* Close: fail queued requests with -ECANCELED, let running queries finish
 * (their callbacks run), close every connection and handle, then call cb.
 * A held session keeps its connection until pg_pool_release(). Requests
 * made after close are failed with -ECANCELED through their callback, or,
 * once the pool's own handles are closing, returned as -ECANCELED without
 * calling it. Free with pg_pool_free() after cb. */
typedef void (*pg_pool_closed_cb)(pg_pool_t *pool, void *data);
void pg_pool_close(pg_pool_t *pool, pg_pool_closed_cb cb, void *data);
void pg_pool_free(pg_pool_t *pool);

#endif
