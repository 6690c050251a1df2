/* db/pg_conn: one asynchronous libpq connection driven by libuv.
 *
 * This is the only file that does libpq I/O, and it only uses libpq's
 * asynchronous calls: PQconnectStartParams/PQconnectPoll to connect,
 * PQsend* to send, PQflush until the output is gone, PQconsumeInput and
 * PQgetResult (only while !PQisBusy) to read. conn__on_event() is the one
 * dispatcher for socket events; it switches on the connection state.
 *
 * Requests from the pool (EXEC, TX) run in pipeline mode: a statement not yet
 * prepared on this connection is prepared in the same round trip as its first
 * execution (Parse, Bind/Execute, ..., Sync). The pipeline is left again when
 * the Sync arrives, so a session (pg_conn_query) always finds the connection
 * in normal mode.
 */
#include "db/pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void conn__on_poll(uv_poll_t *poll, int status, int events);
static void conn__on_timer(uv_timer_t *timer);
static void conn__on_event(pg_conn_t *conn, int events);
static void conn__break(pg_conn_t *conn, int err);
static void conn__connect_failed(pg_conn_t *conn, const char *why);

/* ---- the set of prepared statement names ---------------------------------- */

static uint64_t strset__hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;  /* FNV-1a */
  for (; *s != '\0'; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h;
}

static size_t strset__find(const pg_strset_t *set, const char *s) {
  size_t mask = set->cap - 1;
  size_t i = (size_t)strset__hash(s) & mask;
  while (set->slots[i] != NULL && strcmp(set->slots[i], s) != 0)
    i = (i + 1) & mask;
  return i;
}

static bool strset_has(const pg_strset_t *set, const char *s) {
  if (set->len == 0)
    return false;
  return set->slots[strset__find(set, s)] != NULL;
}

static int strset__grow(pg_strset_t *set) {
  size_t cap = set->cap ? set->cap * 2 : 16;
  char **slots = calloc(cap, sizeof(char *));
  if (slots == NULL)
    return -ENOMEM;
  pg_strset_t bigger = {slots, cap, set->len};
  for (size_t i = 0; i < set->cap; i++)
    if (set->slots[i] != NULL)
      slots[strset__find(&bigger, set->slots[i])] = set->slots[i];
  free(set->slots);
  *set = bigger;
  return 0;
}

static int strset_add(pg_strset_t *set, const char *s) {
  if ((set->len + 1) * 2 > set->cap && strset__grow(set) < 0)
    return -ENOMEM;
  size_t i = strset__find(set, s);
  if (set->slots[i] != NULL)
    return 0;
  set->slots[i] = strdup(s);
  if (set->slots[i] == NULL)
    return -ENOMEM;
  set->len++;
  return 0;
}

static void strset_remove(pg_strset_t *set, const char *s) {
  if (set->len == 0)
    return;
  size_t mask = set->cap - 1;
  size_t i = strset__find(set, s);
  if (set->slots[i] == NULL)
    return;
  free(set->slots[i]);
  set->slots[i] = NULL;
  set->len--;
  /* Re-insert the rest of the probe run so lookups still find it. */
  for (size_t j = (i + 1) & mask; set->slots[j] != NULL; j = (j + 1) & mask) {
    char *e = set->slots[j];
    set->slots[j] = NULL;
    set->slots[strset__find(set, e)] = e;
  }
}

static void strset_clear(pg_strset_t *set) {
  for (size_t i = 0; i < set->cap; i++) {
    free(set->slots[i]);
    set->slots[i] = NULL;
  }
  set->len = 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static void conn__notice(void *arg, const char *message) {
  (void)arg;
  (void)message;  /* modules do not print; notices are dropped */
}

static void conn__save_error(pg_conn_t *conn, const char *why) {
  pg_pool_t *pool = conn->pool;
  const char *msg = why;
  if (msg == NULL && conn->pq != NULL)
    msg = PQerrorMessage(conn->pq);
  if (msg == NULL || msg[0] == '\0')
    return;
  snprintf(pool->last_error, sizeof(pool->last_error), "%s", msg);
  size_t n = strlen(pool->last_error);
  while (n > 0 && (pool->last_error[n - 1] == '\n' || pool->last_error[n - 1] == ' '))
    pool->last_error[--n] = '\0';
}

static bool conn__is_error(const PGresult *res) {
  ExecStatusType st = PQresultStatus(res);
  return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
}

/* The result says the session is gone (connection loss, server shutdown). */
static bool conn__lost(const pg_conn_t *conn, const PGresult *res) {
  if (PQstatus(conn->pq) == CONNECTION_BAD)
    return true;
  if (res == NULL || PQresultStatus(res) != PGRES_FATAL_ERROR)
    return false;
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  if (state == NULL)
    return false;
  return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
         strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* Keep the first error, else the last result. */
static void conn__keep(PGresult **slot, PGresult *res) {
  if (*slot == NULL) {
    *slot = res;
  } else if (conn__is_error(*slot)) {
    PQclear(res);
  } else {
    PQclear(*slot);
    *slot = res;
  }
}

static void conn__drain_notifies(pg_conn_t *conn) {
  PGnotify *n;
  while ((n = PQnotifies(conn->pq)) != NULL)
    PQfreemem(n);
}

static void conn__reset_job(pg_conn_t *conn) {
  PQclear(conn->slot_res);
  PQclear(conn->prepare_error);
  PQclear(conn->tx_error);
  PQclear(conn->result);
  conn->slot_res = conn->prepare_error = conn->tx_error = conn->result = NULL;
  conn->slot = 0;
  conn->slot_has_result = false;
  conn->result_err = 0;
  conn->failed = false;
  conn->job = NULL;
}

/* ---- socket watching ------------------------------------------------------ */

static void conn__poll_close_cb(uv_handle_t *h) {
  pg_conn_t *conn = h->data;
  pg_pool_t *pool = conn->pool;
  free(h);
  pg_pool__handle_closed(pool);
}

/* Must run before libpq closes the socket (PQfinish), so that libuv drops
 * the right file descriptor from epoll. */
static void conn__unwatch(pg_conn_t *conn) {
  if (conn->poll == NULL)
    return;
  pg_pool__close_handle(conn->pool, (uv_handle_t *)conn->poll, conn__poll_close_cb);
  conn->poll = NULL;
  conn->poll_fd = -1;
  conn->poll_events = 0;
}

/* Watch PQsocket() for events. A different socket gets a new uv_poll_t.
 * force re-registers even when nothing seems to change: during connection
 * set-up libpq may close its socket and open another that reuses the number. */
static int conn__watch(pg_conn_t *conn, int events, bool force) {
  int fd = PQsocket(conn->pq);
  if (fd < 0)
    return -EBADF;
  if (conn->poll != NULL && conn->poll_fd != fd)
    conn__unwatch(conn);
  if (conn->poll == NULL) {
    uv_poll_t *p = malloc(sizeof(*p));
    if (p == NULL)
      return -ENOMEM;
    int rc = uv_poll_init(conn->pool->loop, p, fd);
    if (rc < 0) {
      free(p);  /* not registered with the loop on failure */
      return rc;
    }
    p->data = conn;
    conn->poll = p;
    conn->poll_fd = fd;
    conn->poll_events = 0;
    force = true;
  }
  if (!force && conn->poll_events == events)
    return 0;
  int rc = uv_poll_start(conn->poll, events, conn__on_poll);
  if (rc < 0)
    return rc;
  conn->poll_events = events;
  return 0;
}

/* After a send: flush, and keep polling for writable until it is out. */
static int conn__flush(pg_conn_t *conn) {
  int r = PQflush(conn->pq);
  if (r < 0) {
    conn__break(conn, -ECONNRESET);
    return -1;
  }
  int events = r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE;
  if (conn__watch(conn, events, false) < 0) {
    conn__break(conn, -ECONNRESET);
    return -1;
  }
  return 0;
}

/* ---- connecting ------------------------------------------------------------ */

static void conn__schedule_retry(pg_conn_t *conn) {
  pg_pool_t *pool = conn->pool;
  uint64_t b = conn->backoff_ms ? conn->backoff_ms : pool->cfg.backoff_min_ms;
  uint64_t half = b / 2;
  uint64_t delay = half + (half > 0 ? pg_pool__random(pool) % (half + 1) : 0);
  conn->backoff_ms = b * 2 < pool->cfg.backoff_max_ms ? b * 2 : pool->cfg.backoff_max_ms;
  uv_timer_start(&conn->timer, conn__on_timer, delay, 0);
}

void pg_conn__init(pg_conn_t *conn, pg_pool_t *pool, unsigned index) {
  conn->pool = pool;
  conn->index = index;
  conn->state = PG_CONN_BROKEN;
  conn->poll_fd = -1;
  conn->backoff_ms = pool->cfg.backoff_min_ms;
  uv_timer_init(pool->loop, &conn->timer);  /* cannot fail on unix */
}

/* PQconnectStartParams, with the resolved host, hostaddr and port (NULL:
 * the connection string's own) after the string, which they override. */
static void conn__start(pg_conn_t *conn, const char *host, const char *hostaddr, const char *port) {
  pg_pool_t *pool = conn->pool;
  conn->state = PG_CONN_CONNECTING;
  conn->pq = pg_resolve_connect(pool->conninfo, pool->options, pool->application_name, host,
                                hostaddr, port);
  if (conn->pq == NULL) {
    conn__connect_failed(conn, "out of memory");
    return;
  }
  if (PQstatus(conn->pq) == CONNECTION_BAD) {
    conn__connect_failed(conn, NULL);
    return;
  }
  PQsetNoticeProcessor(conn->pq, conn__notice, NULL);
  /* Per libpq: start as if PQconnectPoll had asked for writable. */
  if (conn__watch(conn, UV_WRITABLE, true) < 0) {
    conn__connect_failed(conn, "cannot poll the connection socket");
    return;
  }
  /* PQconnectPoll has no timeout of its own in asynchronous use. */
  if (pool->cfg.connect_timeout_ms > 0)
    uv_timer_start(&conn->timer, conn__on_timer, pool->cfg.connect_timeout_ms, 0);
}

static void conn__on_resolved(void *data, int status, const char *host, const char *hostaddr,
                              const char *port, const char *err) {
  pg_conn_t *conn = data;
  conn->dns = NULL;
  uv_timer_stop(&conn->timer);
  if (status < 0) {
    conn__connect_failed(conn, err);
    return;
  }
  conn__start(conn, host, hostaddr, port);
}

void pg_conn__connect(pg_conn_t *conn) {
  pg_pool_t *pool = conn->pool;
  if (pool->dns_plan == NULL) {
    conn__start(conn, NULL, NULL, NULL);
    return;
  }
  /* A host name: resolve it on the threadpool first (the connect timeout
   * covers the lookup too). */
  conn->state = PG_CONN_CONNECTING;
  conn->dns = pg_resolve_start(pool->loop, pool->dns_plan, conn__on_resolved, conn);
  if (conn->dns == NULL) {
    conn__connect_failed(conn, "cannot start resolving the database host name");
    return;
  }
  if (pool->cfg.connect_timeout_ms > 0)
    uv_timer_start(&conn->timer, conn__on_timer, pool->cfg.connect_timeout_ms, 0);
}

static void conn__connect_failed(pg_conn_t *conn, const char *why) {
  pg_pool_t *pool = conn->pool;
  conn__save_error(conn, why);
  pg_resolve_abandon(conn->dns);
  conn->dns = NULL;
  uv_timer_stop(&conn->timer);
  conn__unwatch(conn);
  if (conn->pq != NULL) {
    PQfinish(conn->pq);
    conn->pq = NULL;
  }
  conn->state = PG_CONN_BROKEN;
  if (pool->closing) {
    pg_conn__shutdown(conn);
    pg_pool__maybe_finish(pool);
    return;
  }
  conn__schedule_retry(conn);
  pg_pool__conn_down(pool);
}

static void conn__connected(pg_conn_t *conn) {
  pg_pool_t *pool = conn->pool;
  uv_timer_stop(&conn->timer);
  if (PQsetnonblocking(conn->pq, 1) != 0) {
    conn__connect_failed(conn, NULL);
    return;
  }
  if (conn__watch(conn, UV_READABLE, true) < 0) {
    conn__connect_failed(conn, "cannot poll the connection socket");
    return;
  }
  strset_clear(&conn->prepared);  /* a new session has none */
  conn->state = PG_CONN_IDLE;
  conn->backoff_ms = pool->cfg.backoff_min_ms;
  if (conn->connected_once)
    pool->reconnects_total++;
  conn->connected_once = true;
  pg_pool__conn_idle(pool, conn);
}

static void conn__connect_step(pg_conn_t *conn) {
  int events;
  switch (PQconnectPoll(conn->pq)) {
  case PGRES_POLLING_OK:
    conn__connected(conn);
    return;
  case PGRES_POLLING_FAILED:
    conn__connect_failed(conn, NULL);
    return;
  case PGRES_POLLING_READING:
    events = UV_READABLE;
    break;
  default:
    events = UV_WRITABLE;
    break;
  }
  /* The socket may have changed (another host or address was tried). */
  if (conn__watch(conn, events, true) < 0)
    conn__connect_failed(conn, "cannot poll the connection socket");
}

/* ---- finishing a request ----------------------------------------------------- */

static void conn__deliver(pg_req_t *req, int err, PGresult *res) {
  switch (req->kind) {
  case PG_REQ_EXEC:
  case PG_REQ_QUERY:
  case PG_REQ_QUERY_PARAMS:
    req->cb.result(req->data, err, res);
    break;
  case PG_REQ_TX:
    for (int i = req->reported; i < req->nstmts; i++)
      req->cb.tx(req->data, i, err != 0 ? -ECANCELED : 0, NULL);
    req->reported = req->nstmts;
    req->cb.tx(req->data, -1, err, res);
    break;
  case PG_REQ_ACQUIRE:
    break;
  }
}

/* The request is answered completely: the connection is idle again. Hand it
 * on first (so requests made from the callback queue behind those already
 * waiting), then call back. The connection is not touched after that. */
static void conn__finish(pg_conn_t *conn) {
  pg_pool_t *pool = conn->pool;
  pg_req_t *req = conn->job;
  PGresult *res;
  int err;
  if (req != NULL && req->kind == PG_REQ_TX && conn->failed) {
    res = conn->tx_error;
    conn->tx_error = NULL;
    err = -EIO;
  } else {
    res = conn->result;
    conn->result = NULL;
    err = conn->result_err;
  }
  conn__reset_job(conn);
  conn->state = PG_CONN_IDLE;
  if (conn__watch(conn, UV_READABLE, false) < 0) {
    conn__break(conn, -ECONNRESET);
  } else if (conn->held) {
    if (conn->release_pending) {
      conn->held = false;
      conn->release_pending = false;
      pg_conn__released(conn);
    }
  } else {
    pg_pool__conn_idle(pool, conn);
  }
  if (req != NULL) {
    conn__deliver(req, err, res);
    pg_pool__req_free(req);
  }
  PQclear(res);
}

/* The Sync arrived. A failed transaction block is still open on the server
 * ("the session remains in an aborted transaction state"): roll it back
 * before anyone else gets the connection. */
static void conn__pipeline_done(pg_conn_t *conn) {
  if (!PQexitPipelineMode(conn->pq)) {
    conn__save_error(conn, NULL);
    conn__break(conn, -EPROTO);
    return;
  }
  if (PQtransactionStatus(conn->pq) != PQTRANS_IDLE) {
    conn->phase = PG_PHASE_ROLLBACK;
    if (!PQsendQuery(conn->pq, "ROLLBACK")) {
      conn__break(conn, -ECONNRESET);
      return;
    }
    conn__flush(conn);
    return;
  }
  conn__finish(conn);
}

/* One pipeline slot got all its results (the NULL after them arrived). */
static void conn__slot_done(pg_conn_t *conn) {
  pg_req_t *req = conn->job;
  const pg_slot_t *slot = &req->slots[conn->slot];
  PGresult *res = conn->slot_res;
  conn->slot_res = NULL;
  conn->slot_has_result = false;
  conn->slot++;
  ExecStatusType st = PQresultStatus(res);

  switch (slot->kind) {
  case PG_SLOT_BEGIN:
  case PG_SLOT_COMMIT:
    if (conn__is_error(res) && !conn->failed) {
      conn->failed = true;
      conn->tx_error = res;
    } else if (slot->kind == PG_SLOT_COMMIT && st == PGRES_COMMAND_OK) {
      PQclear(conn->result);
      conn->result = res;
    } else {
      PQclear(res);
    }
    return;

  case PG_SLOT_PREPARE:
    if (st != PGRES_COMMAND_OK) {
      /* Not prepared after all (failed, or skipped by an aborted pipeline). */
      strset_remove(&conn->prepared, req->stmts[slot->index]->name);
      if (conn__is_error(res)) {
        PQclear(conn->prepare_error);
        conn->prepare_error = res;
        return;
      }
    }
    PQclear(res);
    return;

  case PG_SLOT_QUERY: {
    int err;
    PGresult *out = res;
    if (conn->prepare_error != NULL) {
      /* Its prepare failed: that error is the statement's error. */
      PQclear(res);
      out = conn->prepare_error;
      conn->prepare_error = NULL;
      err = -EIO;
    } else if (st == PGRES_PIPELINE_ABORTED) {
      PQclear(res);
      out = NULL;
      err = -ECANCELED;
    } else if (conn__is_error(res)) {
      err = -EIO;
      const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      if (state != NULL && strcmp(state, "26000") == 0)  /* someone deallocated it */
        strset_remove(&conn->prepared, req->stmts[slot->index]->name);
    } else {
      err = 0;
    }
    if (err != -ECANCELED)
      pg_pool__observe_stmt(conn->pool, req->stmts[slot->index], uv_hrtime() - req->sent_ns, err != 0);
    if (req->kind == PG_REQ_EXEC) {
      PQclear(conn->result);
      conn->result = out;
      conn->result_err = err;
      return;
    }
    /* TX: report each statement as it completes; the first error is kept
     * for the final callback. */
    bool keep = false;
    if (err == -EIO && !conn->failed) {
      conn->failed = true;
      conn->tx_error = out;
      keep = true;
    }
    req->reported = slot->index + 1;
    req->cb.tx(req->data, slot->index, err, out);
    if (!keep)
      PQclear(out);
    return;
  }

  case PG_SLOT_SYNC:
    PQclear(res);
    return;
  }
}

static void conn__pipeline_input(pg_conn_t *conn) {
  pg_req_t *req = conn->job;
  while (!PQisBusy(conn->pq)) {
    PGresult *res = PQgetResult(conn->pq);
    if (conn->slot >= req->nslots) {
      PQclear(res);
      conn__break(conn, -EPROTO);
      return;
    }
    const pg_slot_t *slot = &req->slots[conn->slot];
    if (res == NULL) {
      if (!conn->slot_has_result)
        break;  /* nothing more to read now */
      conn__slot_done(conn);
      continue;
    }
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(res);
      if (slot->kind != PG_SLOT_SYNC) {
        conn__break(conn, -EPROTO);
        return;
      }
      conn__pipeline_done(conn);
      return;
    }
    if (conn__lost(conn, res)) {
      PQclear(res);
      conn__break(conn, -ECONNRESET);
      return;
    }
    if (slot->kind == PG_SLOT_SYNC || st == PGRES_COPY_IN || st == PGRES_COPY_OUT ||
        st == PGRES_COPY_BOTH) {
      PQclear(res);
      conn__break(conn, -EPROTO);  /* COPY is not supported here */
      return;
    }
    conn__keep(&conn->slot_res, res);
    conn->slot_has_result = true;
  }
  if (PQstatus(conn->pq) == CONNECTION_BAD)
    conn__break(conn, -ECONNRESET);
}

static void conn__simple_input(pg_conn_t *conn) {
  while (!PQisBusy(conn->pq)) {
    PGresult *res = PQgetResult(conn->pq);
    if (res == NULL) {
      conn->result_err = conn->result != NULL && conn__is_error(conn->result) ? -EIO : 0;
      conn__finish(conn);
      return;
    }
    ExecStatusType st = PQresultStatus(res);
    if (conn__lost(conn, res)) {
      PQclear(res);
      conn__break(conn, -ECONNRESET);
      return;
    }
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      PQclear(res);
      conn__break(conn, -EPROTO);
      return;
    }
    conn__keep(&conn->result, res);
  }
  if (PQstatus(conn->pq) == CONNECTION_BAD)
    conn__break(conn, -ECONNRESET);
}

static void conn__rollback_input(pg_conn_t *conn) {
  while (!PQisBusy(conn->pq)) {
    PGresult *res = PQgetResult(conn->pq);
    if (res == NULL) {
      if (PQtransactionStatus(conn->pq) != PQTRANS_IDLE) {
        conn__break(conn, -EPROTO);
        return;
      }
      conn__finish(conn);
      return;
    }
    bool lost = conn__lost(conn, res);
    PQclear(res);
    if (lost) {
      conn__break(conn, -ECONNRESET);
      return;
    }
  }
  if (PQstatus(conn->pq) == CONNECTION_BAD)
    conn__break(conn, -ECONNRESET);
}

/* ---- sending ------------------------------------------------------------------ */

static int conn__send_pipeline(pg_conn_t *conn, pg_req_t *req) {
  PGconn *pq = conn->pq;
  bool tx = req->kind == PG_REQ_TX;
  int ns = 0;
  if (!PQenterPipelineMode(pq))
    return -EPROTO;
  if (tx) {
    req->slots[ns++] = (pg_slot_t){PG_SLOT_BEGIN, -1};
    if (!PQsendQueryParams(pq, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
      return -ECONNRESET;
  }
  for (int i = 0; i < req->nstmts; i++) {
    const pg_stmt_t *stmt = req->stmts[i];
    if (!strset_has(&conn->prepared, stmt->name)) {
      /* Recorded now so a repeat in this request is not prepared twice;
       * removed again if the prepare does not succeed. */
      if (strset_add(&conn->prepared, stmt->name) < 0)
        return -ENOMEM;
      req->slots[ns++] = (pg_slot_t){PG_SLOT_PREPARE, i};
      if (!PQsendPrepare(pq, stmt->name, stmt->sql, stmt->nparams, NULL))
        return -ECONNRESET;
    }
    req->slots[ns++] = (pg_slot_t){PG_SLOT_QUERY, i};
    if (!PQsendQueryPrepared(pq, stmt->name, stmt->nparams, (const char *const *)req->params[i],
                             NULL, NULL, 0))
      return -ECONNRESET;
  }
  if (tx) {
    req->slots[ns++] = (pg_slot_t){PG_SLOT_COMMIT, -1};
    if (!PQsendQueryParams(pq, "COMMIT", 0, NULL, NULL, NULL, NULL, 0))
      return -ECONNRESET;
  }
  req->slots[ns++] = (pg_slot_t){PG_SLOT_SYNC, -1};
  req->nslots = ns;
  if (!PQpipelineSync(pq))
    return -ECONNRESET;
  return 0;
}

void pg_conn__run(pg_conn_t *conn, pg_req_t *req) {
  int rc = 0;
  conn__reset_job(conn);
  conn->job = req;
  conn->state = PG_CONN_BUSY;
  switch (req->kind) {
  case PG_REQ_EXEC:
  case PG_REQ_TX:
    conn->phase = PG_PHASE_PIPELINE;
    req->sent_ns = uv_hrtime();
    rc = conn__send_pipeline(conn, req);
    break;
  case PG_REQ_QUERY:
    conn->phase = PG_PHASE_SIMPLE;
    if (!PQsendQuery(conn->pq, req->sql))
      rc = -ECONNRESET;
    break;
  case PG_REQ_QUERY_PARAMS:
    conn->phase = PG_PHASE_SIMPLE;
    if (!PQsendQueryParams(conn->pq, req->sql, req->nparams, NULL,
                           (const char *const *)req->qparams, NULL, NULL, 0))
      rc = -ECONNRESET;
    break;
  case PG_REQ_ACQUIRE:
    rc = -EINVAL;
    break;
  }
  if (rc < 0) {
    /* The connection's state is unknown now: start over. The request fails
     * with -ECONNRESET (-ENOMEM if that was the cause), deferred. */
    conn__save_error(conn, NULL);
    conn__break(conn, rc == -ENOMEM ? -ENOMEM : -ECONNRESET);
    return;
  }
  conn__flush(conn);
}

/* ---- sessions ---------------------------------------------------------------- */

static int conn__session_query(pg_conn_t *conn, pg_req_kind_t kind, const char *sql,
                               int nparams, const char *const *params, pg_result_cb cb,
                               void *data) {
  if (conn == NULL || sql == NULL || cb == NULL || nparams < 0 || nparams > PG_POOL_MAX_PARAMS ||
      (nparams > 0 && params == NULL))
    return -EINVAL;
  /* One query at a time per session, and only on a held connection. */
  if (!conn->held || conn->release_pending || conn->state == PG_CONN_BUSY)
    return -EINVAL;
  pg_req_t *req = pg_pool__req_new_query(kind, sql, nparams, params);
  if (req == NULL)
    return -ENOMEM;
  req->cb.result = cb;
  req->data = data;
  if (conn->state != PG_CONN_IDLE) {
    pg_pool__complete_later(conn->pool, req, -ECONNRESET);
    return 0;
  }
  pg_conn__run(conn, req);
  return 0;
}

int pg_conn_query(pg_conn_t *conn, const char *sql, pg_result_cb cb, void *data) {
  return conn__session_query(conn, PG_REQ_QUERY, sql, 0, NULL, cb, data);
}

int pg_conn_query_params(pg_conn_t *conn, const char *sql, int nparams,
                         const char *const *params, pg_result_cb cb, void *data) {
  return conn__session_query(conn, PG_REQ_QUERY_PARAMS, sql, nparams, params, cb, data);
}

/* ---- events ------------------------------------------------------------------- */

static void conn__busy_input(pg_conn_t *conn) {
  if (!PQconsumeInput(conn->pq)) {
    conn__save_error(conn, NULL);
    conn__break(conn, -ECONNRESET);
    return;
  }
  conn__drain_notifies(conn);
  switch (conn->phase) {
  case PG_PHASE_PIPELINE:
    conn__pipeline_input(conn);
    break;
  case PG_PHASE_SIMPLE:
    conn__simple_input(conn);
    break;
  case PG_PHASE_ROLLBACK:
    conn__rollback_input(conn);
    break;
  }
}

/* Idle: the server only speaks to report trouble (shutdown, terminate). */
static void conn__idle_input(pg_conn_t *conn) {
  if (!PQconsumeInput(conn->pq)) {
    conn__save_error(conn, NULL);
    conn__break(conn, -ECONNRESET);
    return;
  }
  conn__drain_notifies(conn);
  while (!PQisBusy(conn->pq)) {
    PGresult *res = PQgetResult(conn->pq);
    if (res == NULL)
      break;
    PQclear(res);
  }
  if (PQstatus(conn->pq) == CONNECTION_BAD) {
    conn__save_error(conn, NULL);
    conn__break(conn, -ECONNRESET);
  }
}

static void conn__on_event(pg_conn_t *conn, int events) {
  switch (conn->state) {
  case PG_CONN_CONNECTING:
    conn__connect_step(conn);
    break;
  case PG_CONN_IDLE:
    conn__idle_input(conn);
    break;
  case PG_CONN_BUSY:
    if ((events & UV_WRITABLE) && conn__flush(conn) < 0)
      break;
    if (events & UV_READABLE)
      conn__busy_input(conn);
    break;
  case PG_CONN_BROKEN:
  case PG_CONN_CLOSED:
    break;  /* stale event */
  }
}

static void conn__on_poll(uv_poll_t *poll, int status, int events) {
  pg_conn_t *conn = poll->data;
  if (status < 0) {
    if (conn->state == PG_CONN_CONNECTING) {
      conn__connect_failed(conn, uv_strerror(status));
    } else if (conn->state == PG_CONN_IDLE || conn->state == PG_CONN_BUSY) {
      conn__save_error(conn, uv_strerror(status));
      conn__break(conn, -ECONNRESET);
    }
    return;
  }
  conn__on_event(conn, events);
}

static void conn__on_timer(uv_timer_t *timer) {
  pg_conn_t *conn = container_of(timer, pg_conn_t, timer);
  switch (conn->state) {
  case PG_CONN_CONNECTING:
    conn__connect_failed(conn, "connection attempt timed out");
    break;
  case PG_CONN_BROKEN:
    if (!conn->held)
      pg_conn__connect(conn);
    break;
  default:
    break;
  }
}

/* ---- breaking, releasing, shutting down -------------------------------------- */

/* The connection is unusable: fail what is in flight (deferred), forget the
 * prepared statements and retry with backoff. */
static void conn__break(pg_conn_t *conn, int err) {
  pg_pool_t *pool = conn->pool;
  pg_req_t *req = conn->job;
  if (conn->pq != NULL && PQstatus(conn->pq) == CONNECTION_BAD)
    conn__save_error(conn, NULL);
  conn__reset_job(conn);
  uv_timer_stop(&conn->timer);
  conn__unwatch(conn);
  if (conn->pq != NULL) {
    PQfinish(conn->pq);
    conn->pq = NULL;
  }
  strset_clear(&conn->prepared);
  conn->state = PG_CONN_BROKEN;
  if (conn->release_pending) {
    conn->held = false;
    conn->release_pending = false;
  }
  /* A held connection stays broken until released: reconnecting under a
   * session would silently drop its transaction. */
  if (!conn->held) {
    if (pool->closing)
      pg_conn__shutdown(conn);
    else
      conn__schedule_retry(conn);
  }
  if (req != NULL)
    pg_pool__complete_later(pool, req, err);
  pg_pool__conn_down(pool);
}

void pg_conn__released(pg_conn_t *conn) {
  pg_pool_t *pool = conn->pool;
  switch (conn->state) {
  case PG_CONN_BROKEN:
    if (pool->closing) {
      pg_conn__shutdown(conn);
      pg_pool__maybe_finish(pool);
    } else {
      conn__schedule_retry(conn);
    }
    break;
  case PG_CONN_IDLE:
    if (PQtransactionStatus(conn->pq) != PQTRANS_IDLE) {
      /* The session left a transaction open: end it first. */
      conn__reset_job(conn);
      conn->state = PG_CONN_BUSY;
      conn->phase = PG_PHASE_ROLLBACK;
      if (!PQsendQuery(conn->pq, "ROLLBACK")) {
        conn__break(conn, -ECONNRESET);
        return;
      }
      conn__flush(conn);
      return;
    }
    pg_pool__conn_idle(pool, conn);
    break;
  default:
    break;
  }
}

void pg_conn__reconnect_now(pg_conn_t *conn) {
  if (conn->held)
    return;
  switch (conn->state) {
  case PG_CONN_IDLE:
    conn__unwatch(conn);
    PQfinish(conn->pq);
    conn->pq = NULL;
    strset_clear(&conn->prepared);
    conn->state = PG_CONN_BROKEN;
    /* fall through */
  case PG_CONN_BROKEN:
    uv_timer_stop(&conn->timer);
    conn->backoff_ms = conn->pool->cfg.backoff_min_ms;
    pg_conn__connect(conn);
    break;
  default:
    break;  /* busy ones finish first; connecting ones are on their way */
  }
}

static void conn__timer_close_cb(uv_handle_t *h) {
  pg_conn_t *conn = container_of((uv_timer_t *)h, pg_conn_t, timer);
  pg_pool__handle_closed(conn->pool);
}

void pg_conn__shutdown(pg_conn_t *conn) {
  if (conn->state == PG_CONN_CLOSED)
    return;
  pg_resolve_abandon(conn->dns);
  conn->dns = NULL;
  uv_timer_stop(&conn->timer);
  conn__unwatch(conn);
  if (conn->pq != NULL) {
    PQfinish(conn->pq);
    conn->pq = NULL;
  }
  strset_clear(&conn->prepared);
  conn->state = PG_CONN_CLOSED;
  pg_pool__close_handle(conn->pool, (uv_handle_t *)&conn->timer, conn__timer_close_cb);
}

bool pg_conn__up(const pg_conn_t *conn) {
  return conn->state == PG_CONN_IDLE || conn->state == PG_CONN_BUSY;
}

void pg_conn__free(pg_conn_t *conn) {
  strset_clear(&conn->prepared);
  free(conn->prepared.slots);
  conn->prepared.slots = NULL;
  conn->prepared.cap = 0;
}
