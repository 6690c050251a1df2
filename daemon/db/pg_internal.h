/* db/pg_internal: what pg_pool.c and pg_conn.c share. Not an API.
 *
 * pg_pool.c owns requests, the wait queue, deferred completions and shutdown.
 * pg_conn.c owns one libpq connection each and is the only file that does
 * libpq I/O. A connection goes
 *
 *   CONNECTING -> IDLE -> BUSY -> IDLE ...
 *        |         |       |
 *        +---------+-------+--> BROKEN --(backoff timer)--> CONNECTING
 *
 * and CLOSED once the pool shuts it down. A connection handed out as a
 * session (pg_pool_acquire) keeps its state machine but is `held`: the pool
 * does not dispatch to it until pg_pool_release().
 */
#ifndef KIPD_DB_PG_INTERNAL_H
#define KIPD_DB_PG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/pg_pool.h"
#include "db/pg_resolve.h"

#define PG_POOL_MAX_PARAMS 65535  /* the protocol's limit */

/* Intrusive doubly linked list (libuv's QUEUE idea). */
typedef struct pg_list_s {
  struct pg_list_s *next;
  struct pg_list_s *prev;
} pg_list_t;

static inline void pg_list_init(pg_list_t *l) { l->next = l->prev = l; }
static inline bool pg_list_empty(const pg_list_t *l) { return l->next == l; }
static inline void pg_list_insert_tail(pg_list_t *head, pg_list_t *n) {
  n->prev = head->prev;
  n->next = head;
  head->prev->next = n;
  head->prev = n;
}
static inline void pg_list_remove(pg_list_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  pg_list_init(n);
}
/* Move every element of from to the tail of to; from ends up empty. */
static inline void pg_list_move(pg_list_t *from, pg_list_t *to) {
  if (pg_list_empty(from))
    return;
  from->next->prev = to->prev;
  to->prev->next = from->next;
  from->prev->next = to;
  to->prev = from->prev;
  pg_list_init(from);
}

typedef enum {
  PG_REQ_EXEC,          /* one prepared statement (pipeline) */
  PG_REQ_TX,            /* BEGIN, statements, COMMIT (pipeline) */
  PG_REQ_ACQUIRE,       /* wants a session connection */
  PG_REQ_QUERY,         /* session: simple protocol */
  PG_REQ_QUERY_PARAMS,  /* session: one unnamed statement */
} pg_req_kind_t;

/* What the server will answer, in order, for a pipelined request. */
typedef enum {
  PG_SLOT_BEGIN,
  PG_SLOT_PREPARE,      /* index: the statement being prepared */
  PG_SLOT_QUERY,        /* index: the statement */
  PG_SLOT_COMMIT,
  PG_SLOT_SYNC,
} pg_slot_kind_t;

typedef struct pg_slot_s {
  pg_slot_kind_t kind;
  int index;
} pg_slot_t;

/* One request. Allocated as one block with its parameter copies; freed by
 * pg_pool__req_free() after its callback returned. */
typedef struct pg_req_s {
  pg_list_t link;               /* pool queue or deferred list */
  pg_req_kind_t kind;
  union {
    pg_result_cb result;
    pg_tx_result_cb tx;
    pg_acquire_cb acquire;
  } cb;
  void *data;
  uint64_t deadline;            /* queue timeout, loop time in ms; 0 = none */
  int err;                      /* outcome when completed from the deferred list */
  pg_conn_t *conn;              /* ACQUIRE: the connection granted */

  /* EXEC / TX */
  int nstmts;
  const pg_stmt_t **stmts;      /* borrowed (static const by contract) */
  char ***params;               /* params[i][j], copies */
  pg_slot_t *slots;             /* room for 2 * nstmts + 3 */
  int nslots;
  int reported;                 /* TX: statements whose callback ran */

  /* QUERY / QUERY_PARAMS */
  char *sql;
  int nparams;
  char **qparams;
} pg_req_t;

typedef enum {
  PG_CONN_BROKEN = 0,   /* no server connection; retry timer may be armed */
  PG_CONN_CONNECTING,   /* PQconnectPoll in progress */
  PG_CONN_IDLE,         /* connected, nothing in flight */
  PG_CONN_BUSY,         /* a request (or a clean-up ROLLBACK) in flight */
  PG_CONN_CLOSED,       /* pool shut it down; only handle closes remain */
} pg_conn_state_t;

typedef enum {
  PG_PHASE_PIPELINE,    /* EXEC / TX results, slot by slot */
  PG_PHASE_SIMPLE,      /* session query: results until NULL */
  PG_PHASE_ROLLBACK,    /* clean-up ROLLBACK after a failed transaction */
} pg_phase_t;

/* Names of the statements prepared on one connection (open addressing). */
typedef struct pg_strset_s {
  char **slots;
  size_t cap;
  size_t len;
} pg_strset_t;

struct pg_conn_s {
  pg_pool_t *pool;
  unsigned index;
  pg_conn_state_t state;
  bool held;                    /* handed out as a session */
  bool release_pending;         /* released while a session query ran */
  bool connected_once;
  PGconn *pq;
  pg_resolve_t *dns;            /* CONNECTING: the host names being resolved */
  uv_poll_t *poll;              /* heap: replaced when the socket changes */
  int poll_fd;
  int poll_events;
  uv_timer_t timer;             /* connect timeout (CONNECTING), retry (BROKEN) */
  uint64_t backoff_ms;
  pg_strset_t prepared;

  /* The request in flight (NULL for a clean-up ROLLBACK). */
  pg_req_t *job;
  pg_phase_t phase;
  int slot;                     /* PIPELINE: the slot being answered */
  bool slot_has_result;
  PGresult *slot_res;           /* its result so far */
  PGresult *prepare_error;      /* a failed prepare, reported as its query's error */
  PGresult *tx_error;           /* TX: the first error; the final outcome */
  PGresult *result;             /* EXEC/session: the result to deliver; TX: COMMIT's */
  int result_err;
  bool failed;                  /* TX: a statement failed */
};

struct pg_pool_s {
  uv_loop_t *loop;
  pg_pool_config_t cfg;         /* cfg.conninfo points at conninfo */
  char *conninfo;
  char *options;                /* the options keyword, with statement_timeout */
  char *application_name;       /* "kipd", or NULL when conninfo sets one */
  pg_resolve_plan_t *dns_plan;  /* host names to resolve before each connect, or NULL */
  pg_conn_t *conns;
  unsigned nconns;

  pg_list_t queue;              /* waiting requests, FIFO */
  unsigned queue_len;
  uv_timer_t queue_timer;       /* fires at the head's deadline */
  pg_list_t deferred;           /* completions to deliver from defer_idle */
  uv_idle_t defer_idle;

  bool closing;                 /* pg_pool_close was called */
  bool teardown;                /* pool handles are being closed */
  bool closed_reported;
  unsigned pending_closes;      /* uv_close calls without a close callback yet */
  pg_pool_closed_cb closed_cb;
  void *closed_data;

  char last_error[256];         /* see pg_pool_last_error() */
  uint64_t rng;
  uint64_t queries_total;
  uint64_t queue_full_total;
  uint64_t reconnects_total;
};

/* pg_conn.c */
void pg_conn__init(pg_conn_t *conn, pg_pool_t *pool, unsigned index);
void pg_conn__connect(pg_conn_t *conn);
/* Send req (EXEC, TX, QUERY, QUERY_PARAMS) on an IDLE connection. */
void pg_conn__run(pg_conn_t *conn, pg_req_t *req);
/* A session ended: reconnect, clean up or hand the connection to the pool. */
void pg_conn__released(pg_conn_t *conn);
/* pg_pool_reconnect: broken ones retry now, idle ones are re-established. */
void pg_conn__reconnect_now(pg_conn_t *conn);
/* Pool closing: disconnect a connection that is not BUSY or held. */
void pg_conn__shutdown(pg_conn_t *conn);
bool pg_conn__up(const pg_conn_t *conn);
void pg_conn__free(pg_conn_t *conn);

/* pg_pool.c, for pg_conn.c */
/* conn is IDLE and not held: give it the next queued request, or shut it
 * down if the pool is closing. */
void pg_pool__conn_idle(pg_pool_t *pool, pg_conn_t *conn);
/* A connection went BROKEN: fail the queue if no connection is left. */
void pg_pool__conn_down(pg_pool_t *pool);
/* Deliver req's callback with err from the deferred list. */
void pg_pool__complete_later(pg_pool_t *pool, pg_req_t *req, int err);
/* A session request (QUERY, QUERY_PARAMS) with sql and params copied. */
pg_req_t *pg_pool__req_new_query(pg_req_kind_t kind, const char *sql, int nparams,
                                 const char *const *params);
void pg_pool__req_free(pg_req_t *req);
/* Count a uv_close() and its callback; the last one may report closed. */
void pg_pool__close_handle(pg_pool_t *pool, uv_handle_t *h, uv_close_cb cb);
void pg_pool__handle_closed(pg_pool_t *pool);
void pg_pool__maybe_finish(pg_pool_t *pool);
uint64_t pg_pool__random(pg_pool_t *pool);

#endif
