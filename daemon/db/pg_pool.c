/* db/pg_pool: requests, the bounded wait queue, deferred completions and
 * shutdown. The libpq I/O of each connection lives in pg_conn.c.
 *
 * Callbacks are never called from inside pg_pool_exec/tx/acquire or
 * pg_conn_query*: a request that fails at once (queue full, database down,
 * pool closing) and every granted session go to pool->deferred and are
 * delivered from an idle handle on the next loop iteration.
 */
#include "db/pg_internal.h"

#include <stdlib.h>
#include <string.h>


static void pool__on_defer(uv_idle_t *idle);
static void pool__on_queue_timer(uv_timer_t *timer);
static void pool__handle_close_cb(uv_handle_t *h);

/* ---- requests ---------------------------------------------------------- */

static size_t pool__align(size_t n) {
  return (n + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
}

/* One block: req, stmt pointers, params pointers, param values, slots, then
 * the copied strings. */
static pg_req_t *pool__req_new_stmts(pg_req_kind_t kind, const pg_stmt_t *const *stmts, int n,
                                     const char *const *const *params) {
  size_t nvalues = 0, strbytes = 0;
  for (int i = 0; i < n; i++) {
    nvalues += (size_t)stmts[i]->nparams;
    for (int j = 0; j < stmts[i]->nparams; j++)
      if (params[i][j] != NULL)
        strbytes += strlen(params[i][j]) + 1;
  }
  int nslots = 2 * n + 3;
  size_t size = pool__align(sizeof(pg_req_t));
  size_t off_stmts = size;
  size += pool__align(sizeof(const pg_stmt_t *) * (size_t)n);
  size_t off_params = size;
  size += pool__align(sizeof(char **) * (size_t)n);
  size_t off_values = size;
  size += pool__align(sizeof(char *) * nvalues);
  size_t off_slots = size;
  size += pool__align(sizeof(pg_slot_t) * (size_t)nslots);
  size_t off_str = size;
  size += strbytes;

  char *block = calloc(1, size);
  if (block == NULL)
    return NULL;
  pg_req_t *req = (pg_req_t *)block;
  pg_list_init(&req->link);
  req->kind = kind;
  req->nstmts = n;
  req->stmts = (const pg_stmt_t **)(block + off_stmts);
  req->params = (char ***)(block + off_params);
  req->slots = (pg_slot_t *)(block + off_slots);
  char **values = (char **)(block + off_values);
  char *str = block + off_str;
  for (int i = 0; i < n; i++) {
    req->stmts[i] = stmts[i];
    req->params[i] = values;
    for (int j = 0; j < stmts[i]->nparams; j++) {
      const char *p = params[i][j];
      if (p == NULL) {
        values[j] = NULL;
        continue;
      }
      size_t len = strlen(p) + 1;
      memcpy(str, p, len);
      values[j] = str;
      str += len;
    }
    values += stmts[i]->nparams;
  }
  return req;
}

pg_req_t *pg_pool__req_new_query(pg_req_kind_t kind, const char *sql, int nparams,
                                 const char *const *params) {
  size_t strbytes = strlen(sql) + 1;
  for (int i = 0; i < nparams; i++)
    if (params[i] != NULL)
      strbytes += strlen(params[i]) + 1;
  size_t size = pool__align(sizeof(pg_req_t));
  size_t off_values = size;
  size += pool__align(sizeof(char *) * (size_t)nparams);
  size_t off_str = size;
  size += strbytes;

  char *block = calloc(1, size);
  if (block == NULL)
    return NULL;
  pg_req_t *req = (pg_req_t *)block;
  pg_list_init(&req->link);
  req->kind = kind;
  req->nparams = nparams;
  req->qparams = (char **)(block + off_values);
  char *str = block + off_str;
  size_t len = strlen(sql) + 1;
  memcpy(str, sql, len);
  req->sql = str;
  str += len;
  for (int i = 0; i < nparams; i++) {
    if (params[i] == NULL) {
      req->qparams[i] = NULL;
      continue;
    }
    len = strlen(params[i]) + 1;
    memcpy(str, params[i], len);
    req->qparams[i] = str;
    str += len;
  }
  return req;
}

void pg_pool__req_free(pg_req_t *req) {
  free(req);
}

static int pool__check_stmt(const pg_stmt_t *stmt, const char *const *params) {
  if (stmt == NULL || stmt->name == NULL || stmt->name[0] == '\0' || stmt->sql == NULL)
    return -EINVAL;
  if (stmt->nparams < 0 || stmt->nparams > PG_POOL_MAX_PARAMS)
    return -EINVAL;
  if (stmt->nparams > 0 && params == NULL)
    return -EINVAL;
  return 0;
}

/* ---- completion ---------------------------------------------------------- */

static void pool__deliver(pg_pool_t *pool, pg_req_t *req) {
  int err = req->err;
  switch (req->kind) {
  case PG_REQ_EXEC:
  case PG_REQ_QUERY:
  case PG_REQ_QUERY_PARAMS:
    req->cb.result(req->data, err, NULL);
    break;
  case PG_REQ_TX:
    for (int i = req->reported; i < req->nstmts; i++)
      req->cb.tx(req->data, i, err, NULL);
    req->reported = req->nstmts;
    req->cb.tx(req->data, -1, err, NULL);
    break;
  case PG_REQ_ACQUIRE: {
    pg_conn_t *conn = req->conn;
    req->conn = NULL;
    if (conn != NULL && err == 0 && (pool->closing || conn->state == PG_CONN_BROKEN)) {
      /* The grant went stale before it could be delivered. */
      err = pool->closing ? -ECANCELED : -ECONNRESET;
      pg_pool_release(pool, conn);
      conn = NULL;
    }
    req->cb.acquire(req->data, err, err == 0 ? conn : NULL);
    break;
  }
  }
}

void pg_pool__complete_later(pg_pool_t *pool, pg_req_t *req, int err) {
  req->err = err;
  pg_list_insert_tail(&pool->deferred, &req->link);
  if (!uv_is_active((uv_handle_t *)&pool->defer_idle))
    uv_idle_start(&pool->defer_idle, pool__on_defer);
}

static void pool__on_defer(uv_idle_t *idle) {
  pg_pool_t *pool = container_of(idle, pg_pool_t, defer_idle);
  pg_list_t batch;
  pg_list_init(&batch);
  pg_list_move(&pool->deferred, &batch);
  while (!pg_list_empty(&batch)) {
    pg_req_t *req = container_of(batch.next, pg_req_t, link);
    pg_list_remove(&req->link);
    pool__deliver(pool, req);
    pg_pool__req_free(req);
  }
  if (pg_list_empty(&pool->deferred))
    uv_idle_stop(&pool->defer_idle);
  pg_pool__maybe_finish(pool);
}

/* ---- queue ----------------------------------------------------------------- */

static pg_req_t *pool__queue_pop(pg_pool_t *pool) {
  if (pg_list_empty(&pool->queue))
    return NULL;
  pg_req_t *req = container_of(pool->queue.next, pg_req_t, link);
  pg_list_remove(&req->link);
  pool->queue_len--;
  if (pool->queue_len == 0)
    uv_timer_stop(&pool->queue_timer);
  return req;
}

static void pool__queue_arm(pg_pool_t *pool) {
  if (pg_list_empty(&pool->queue) || pool->cfg.queue_timeout_ms == 0)
    return;
  pg_req_t *head = container_of(pool->queue.next, pg_req_t, link);
  uint64_t now = uv_now(pool->loop);
  uint64_t wait = head->deadline > now ? head->deadline - now : 0;
  uv_timer_start(&pool->queue_timer, pool__on_queue_timer, wait, 0);
}

static void pool__on_queue_timer(uv_timer_t *timer) {
  pg_pool_t *pool = container_of(timer, pg_pool_t, queue_timer);
  uint64_t now = uv_now(pool->loop);
  while (!pg_list_empty(&pool->queue)) {
    pg_req_t *head = container_of(pool->queue.next, pg_req_t, link);
    if (head->deadline > now)
      break;
    pool__queue_pop(pool);
    pg_pool__complete_later(pool, head, -ETIMEDOUT);
  }
  pool__queue_arm(pool);
}

static void pool__fail_queue(pg_pool_t *pool, int err) {
  pg_req_t *req;
  while ((req = pool__queue_pop(pool)) != NULL)
    pg_pool__complete_later(pool, req, err);
}

/* True when no connection is up or on its way up: requests fail fast. */
static bool pool__db_down(const pg_pool_t *pool) {
  for (unsigned i = 0; i < pool->nconns; i++) {
    pg_conn_state_t s = pool->conns[i].state;
    if (s == PG_CONN_IDLE || s == PG_CONN_BUSY || s == PG_CONN_CONNECTING)
      return false;
  }
  return true;
}

static pg_conn_t *pool__find_idle(pg_pool_t *pool) {
  for (unsigned i = 0; i < pool->nconns; i++) {
    pg_conn_t *conn = &pool->conns[i];
    if (conn->state == PG_CONN_IDLE && !conn->held)
      return conn;
  }
  return NULL;
}

static void pool__assign(pg_pool_t *pool, pg_conn_t *conn, pg_req_t *req) {
  if (req->kind == PG_REQ_ACQUIRE) {
    conn->held = true;
    req->conn = conn;
    pg_pool__complete_later(pool, req, 0);
    return;
  }
  pg_conn__run(conn, req);
}

void pg_pool__conn_idle(pg_pool_t *pool, pg_conn_t *conn) {
  if (pool->closing) {
    pg_conn__shutdown(conn);
    pg_pool__maybe_finish(pool);
    return;
  }
  pg_req_t *req = pool__queue_pop(pool);
  if (req != NULL)
    pool__assign(pool, conn, req);
}

void pg_pool__conn_down(pg_pool_t *pool) {
  if (pool__db_down(pool))
    pool__fail_queue(pool, -ECONNRESET);
  pg_pool__maybe_finish(pool);
}

/* Route a new request: an idle connection, the queue, or a deferred failure. */
static void pool__submit(pg_pool_t *pool, pg_req_t *req) {
  if (req->kind == PG_REQ_EXEC || req->kind == PG_REQ_TX)
    pool->queries_total++;
  if (pool->closing) {
    pg_pool__complete_later(pool, req, -ECANCELED);
    return;
  }
  pg_conn_t *conn = pg_list_empty(&pool->queue) ? pool__find_idle(pool) : NULL;
  if (conn != NULL) {
    pool__assign(pool, conn, req);
    return;
  }
  if (pool__db_down(pool)) {
    pg_pool__complete_later(pool, req, -ECONNRESET);
    return;
  }
  if (pool->queue_len >= pool->cfg.max_queue) {
    pool->queue_full_total++;
    pg_pool__complete_later(pool, req, -ENOSPC);
    return;
  }
  if (pool->cfg.queue_timeout_ms > 0) {
    uv_update_time(pool->loop);  /* the loop may have been blocked before */
    req->deadline = uv_now(pool->loop) + pool->cfg.queue_timeout_ms;
  }
  bool was_empty = pg_list_empty(&pool->queue);
  pg_list_insert_tail(&pool->queue, &req->link);
  pool->queue_len++;
  if (was_empty)
    pool__queue_arm(pool);
}

/* ---- handles and shutdown -------------------------------------------------- */

void pg_pool__close_handle(pg_pool_t *pool, uv_handle_t *h, uv_close_cb cb) {
  pool->pending_closes++;
  uv_close(h, cb);
}

void pg_pool__handle_closed(pg_pool_t *pool) {
  pool->pending_closes--;
  if (pool->teardown && pool->pending_closes == 0 && !pool->closed_reported) {
    pool->closed_reported = true;
    if (pool->closed_cb != NULL)
      pool->closed_cb(pool, pool->closed_data);
  }
}

static void pool__handle_close_cb(uv_handle_t *h) {
  pg_pool_t *pool = h->data;
  pg_pool__handle_closed(pool);
}

/* Once every connection is CLOSED and every completion delivered, close the
 * pool's own handles; the last close callback reports closed. */
void pg_pool__maybe_finish(pg_pool_t *pool) {
  if (!pool->closing || pool->teardown)
    return;
  for (unsigned i = 0; i < pool->nconns; i++)
    if (pool->conns[i].state != PG_CONN_CLOSED)
      return;
  if (!pg_list_empty(&pool->deferred))
    return;
  pool->teardown = true;
  pg_pool__close_handle(pool, (uv_handle_t *)&pool->queue_timer, pool__handle_close_cb);
  pg_pool__close_handle(pool, (uv_handle_t *)&pool->defer_idle, pool__handle_close_cb);
}

uint64_t pg_pool__random(pg_pool_t *pool) {
  /* xorshift64*: jitter only, not security. */
  uint64_t x = pool->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  pool->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* ---- public API ------------------------------------------------------------ */

/* Validate conninfo; *options gets its options keyword (new string, NULL if
 * absent) so statement_timeout can be appended rather than replace it. */
static int pool__parse_conninfo(const char *conninfo, char **options, bool *has_appname) {
  *options = NULL;
  *has_appname = false;
  bool is_conninfo = strchr(conninfo, '=') != NULL ||
                     strncmp(conninfo, "postgresql://", 13) == 0 ||
                     strncmp(conninfo, "postgres://", 11) == 0;
  if (!is_conninfo)
    return 0;  /* a bare database name */
  char *errmsg = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
  if (opts == NULL) {
    int rc = errmsg != NULL ? -EINVAL : -ENOMEM;
    PQfreemem(errmsg);
    return rc;
  }
  int rc = 0;
  for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
    if (o->val == NULL || o->val[0] == '\0')
      continue;
    if (strcmp(o->keyword, "options") == 0) {
      *options = strdup(o->val);
      if (*options == NULL)
        rc = -ENOMEM;
    } else if (strcmp(o->keyword, "application_name") == 0) {
      *has_appname = true;
    }
  }
  PQconninfoFree(opts);
  return rc;
}

int pg_pool_new(uv_loop_t *loop, const pg_pool_config_t *cfg, pg_pool_t **out) {
  int rc;
  if (loop == NULL || cfg == NULL || out == NULL || cfg->conninfo == NULL || cfg->size == 0)
    return -EINVAL;

  pg_pool_t *pool = calloc(1, sizeof(*pool));
  if (pool == NULL)
    return -ENOMEM;
  pool->loop = loop;
  pool->cfg = *cfg;
  if (pool->cfg.backoff_min_ms == 0)
    pool->cfg.backoff_min_ms = 100;
  if (pool->cfg.backoff_max_ms < pool->cfg.backoff_min_ms)
    pool->cfg.backoff_max_ms = pool->cfg.backoff_min_ms;
  pool->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)pool ^ 0x9E3779B97F4A7C15ULL;
  if (pool->rng == 0)
    pool->rng = 1;
  pg_list_init(&pool->queue);
  pg_list_init(&pool->deferred);

  pool->conninfo = strdup(cfg->conninfo);
  if (pool->conninfo == NULL) {
    rc = -ENOMEM;
    goto fail_pool;
  }
  pool->cfg.conninfo = pool->conninfo;

  char *user_options = NULL;
  bool has_appname = false;
  rc = pool__parse_conninfo(cfg->conninfo, &user_options, &has_appname);
  if (rc < 0)
    goto fail_conninfo;
  /* statement_timeout rides on the startup packet: no extra round trip. */
  char timeout_opt[64];
  snprintf(timeout_opt, sizeof(timeout_opt), "-c statement_timeout=%llu",
           (unsigned long long)cfg->statement_timeout_ms);
  size_t len = (user_options ? strlen(user_options) + 1 : 0) + strlen(timeout_opt) + 1;
  pool->options = malloc(len);
  if (pool->options == NULL) {
    free(user_options);
    rc = -ENOMEM;
    goto fail_conninfo;
  }
  snprintf(pool->options, len, "%s%s%s", user_options ? user_options : "",
           user_options ? " " : "", timeout_opt);
  free(user_options);
  if (!has_appname) {
    pool->application_name = strdup("kipd");
    if (pool->application_name == NULL) {
      rc = -ENOMEM;
      goto fail_options;
    }
  }

  /* Host names are resolved off the loop before each connection attempt
   * (db/pg_resolve.h); libpq then gets addresses and never blocks on DNS. */
  rc = pg_resolve_plan_new(pool->conninfo, &pool->dns_plan);
  if (rc < 0)
    goto fail_appname;

  pool->nconns = cfg->size;
  pool->conns = calloc(cfg->size, sizeof(pg_conn_t));
  if (pool->conns == NULL) {
    rc = -ENOMEM;
    goto fail_plan;
  }

  /* From here on nothing fails: uv_timer_init and uv_idle_init cannot fail
   * on unix, and a connection that cannot start retries on its own. */
  uv_timer_init(loop, &pool->queue_timer);
  pool->queue_timer.data = pool;
  uv_idle_init(loop, &pool->defer_idle);
  pool->defer_idle.data = pool;
  for (unsigned i = 0; i < pool->nconns; i++)
    pg_conn__init(&pool->conns[i], pool, i);
  for (unsigned i = 0; i < pool->nconns; i++)
    pg_conn__connect(&pool->conns[i]);
  *out = pool;
  return 0;

fail_plan:
  pg_resolve_plan_free(pool->dns_plan);
fail_appname:
  free(pool->application_name);
fail_options:
  free(pool->options);
fail_conninfo:
  free(pool->conninfo);
fail_pool:
  free(pool);
  return rc;
}

int pg_pool_exec(pg_pool_t *pool, const pg_stmt_t *stmt, const char *const *params,
                 pg_result_cb cb, void *data) {
  if (pool == NULL || cb == NULL)
    return -EINVAL;
  int rc = pool__check_stmt(stmt, params);
  if (rc < 0)
    return rc;
  if (pool->teardown)
    return -ECANCELED;
  const pg_stmt_t *stmts[1] = {stmt};
  const char *const *plist[1] = {params};
  pg_req_t *req = pool__req_new_stmts(PG_REQ_EXEC, stmts, 1, plist);
  if (req == NULL)
    return -ENOMEM;
  req->cb.result = cb;
  req->data = data;
  pool__submit(pool, req);
  return 0;
}

int pg_pool_tx(pg_pool_t *pool, const pg_stmt_t *const *stmts, int n,
               const char *const *const *params, pg_tx_result_cb cb, void *data) {
  static const char *const no_params[1] = {NULL};
  if (pool == NULL || cb == NULL || stmts == NULL || n <= 0 || n > 10000)
    return -EINVAL;
  const char *const **plist = malloc(sizeof(*plist) * (size_t)n);
  if (plist == NULL)
    return -ENOMEM;
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    const char *const *p = params != NULL ? params[i] : NULL;
    rc = pool__check_stmt(stmts[i], p);
    plist[i] = p != NULL ? p : no_params;
  }
  if (rc == 0 && pool->teardown)
    rc = -ECANCELED;
  pg_req_t *req = NULL;
  if (rc == 0) {
    req = pool__req_new_stmts(PG_REQ_TX, stmts, n, plist);
    if (req == NULL)
      rc = -ENOMEM;
  }
  free(plist);
  if (rc < 0)
    return rc;
  req->cb.tx = cb;
  req->data = data;
  pool__submit(pool, req);
  return 0;
}

int pg_pool_acquire(pg_pool_t *pool, pg_acquire_cb cb, void *data) {
  if (pool == NULL || cb == NULL)
    return -EINVAL;
  if (pool->teardown)
    return -ECANCELED;
  pg_req_t *req = calloc(1, sizeof(*req));
  if (req == NULL)
    return -ENOMEM;
  pg_list_init(&req->link);
  req->kind = PG_REQ_ACQUIRE;
  req->cb.acquire = cb;
  req->data = data;
  pool__submit(pool, req);
  return 0;
}

void pg_pool_release(pg_pool_t *pool, pg_conn_t *conn) {
  if (pool == NULL || conn == NULL || conn->pool != pool || !conn->held)
    return;
  if (conn->state == PG_CONN_BUSY) {
    conn->release_pending = true;  /* finished when the query completes */
    return;
  }
  conn->held = false;
  conn->release_pending = false;
  pg_conn__released(conn);
}

bool pg_pool_ready(const pg_pool_t *pool) {
  for (unsigned i = 0; i < pool->nconns; i++)
    if (pg_conn__up(&pool->conns[i]))
      return true;
  return false;
}

void pg_pool_reconnect(pg_pool_t *pool) {
  if (pool->closing)
    return;
  for (unsigned i = 0; i < pool->nconns; i++)
    pg_conn__reconnect_now(&pool->conns[i]);
}

void pg_pool_stats(const pg_pool_t *pool, pg_pool_stats_t *out) {
  memset(out, 0, sizeof(*out));
  for (unsigned i = 0; i < pool->nconns; i++) {
    const pg_conn_t *conn = &pool->conns[i];
    if (pg_conn__up(conn))
      out->connections_up++;
    if (conn->state == PG_CONN_BUSY || (conn->held && pg_conn__up(conn)))
      out->connections_busy++;
  }
  out->queue_length = pool->queue_len;
  out->queries_total = pool->queries_total;
  out->queue_full_total = pool->queue_full_total;
  out->reconnects_total = pool->reconnects_total;
  out->errors_total = pool->errors_total;
}

/* The table is keyed by the statement's name (copied): two statement
 * objects of one name are one series, and an entry outlives its object. */
static size_t pool__stmt_slot(pg_stmt_stat_t *tab, size_t cap, const char *name) {
  uint64_t h = 14695981039346656037ULL;  /* FNV-1a */
  for (const char *p = name; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  size_t i = (size_t)h & (cap - 1);
  while (tab[i].name != NULL && strcmp(tab[i].name, name) != 0)
    i = (i + 1) & (cap - 1);
  return i;
}

void pg_pool__observe_stmt(pg_pool_t *pool, const pg_stmt_t *stmt, uint64_t ns, bool failed) {
  if (failed)
    pool->errors_total++;
  if ((pool->stmt_stats_len + 1) * 2 > pool->stmt_stats_cap) {
    size_t cap = pool->stmt_stats_cap ? pool->stmt_stats_cap * 2 : 256;
    pg_stmt_stat_t *tab = calloc(cap, sizeof(*tab));
    if (tab == NULL)
      return;  /* the statistic is lost, the query is not */
    for (size_t i = 0; i < pool->stmt_stats_cap; i++)
      if (pool->stmt_stats[i].name != NULL)
        tab[pool__stmt_slot(tab, cap, pool->stmt_stats[i].name)] = pool->stmt_stats[i];
    free(pool->stmt_stats);
    pool->stmt_stats = tab;
    pool->stmt_stats_cap = cap;
  }
  pg_stmt_stat_t *e = &pool->stmt_stats[pool__stmt_slot(pool->stmt_stats, pool->stmt_stats_cap, stmt->name)];
  if (e->name == NULL) {
    e->name = strdup(stmt->name);
    if (e->name == NULL)
      return;
    pool->stmt_stats_len++;
  }
  hist_observe(&e->hist, ns);
  if (failed)
    e->errors++;
}

void pg_pool_stmt_stats(const pg_pool_t *pool, pg_stmt_stat_cb cb, void *data) {
  for (size_t i = 0; i < pool->stmt_stats_cap; i++)
    if (pool->stmt_stats[i].name != NULL)
      cb(&pool->stmt_stats[i], data);
}

void pg_pool_close(pg_pool_t *pool, pg_pool_closed_cb cb, void *data) {
  if (pool->closing)
    return;
  pool->closing = true;
  pool->closed_cb = cb;
  pool->closed_data = data;
  pool__fail_queue(pool, -ECANCELED);
  for (unsigned i = 0; i < pool->nconns; i++) {
    pg_conn_t *conn = &pool->conns[i];
    if (conn->state != PG_CONN_BUSY && conn->state != PG_CONN_CLOSED && !conn->held)
      pg_conn__shutdown(conn);
  }
  pg_pool__maybe_finish(pool);
}

void pg_pool_free(pg_pool_t *pool) {
  if (pool == NULL)
    return;
  for (unsigned i = 0; i < pool->nconns; i++)
    pg_conn__free(&pool->conns[i]);
  free(pool->conns);
  for (size_t i = 0; i < pool->stmt_stats_cap; i++)
    free(pool->stmt_stats[i].name);
  free(pool->stmt_stats);
  pg_resolve_plan_free(pool->dns_plan);
  free(pool->application_name);
  free(pool->options);
  free(pool->conninfo);
  free(pool);
}

const char *pg_pool_last_error(const pg_pool_t *pool) {
  return pool->last_error;
}
