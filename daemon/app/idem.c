/* Idempotency-Key on POST: the key's checks, the keyed write as one
 * transaction with its stored answer, and the replay (app/idem.h). */
#include "app/idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/internal.h"
#include "app/kreq_cpr.h"
#include "util/crypto.h"
#include "util/log.h"

#define IDEM_KEY_MAX 255
#define IDEM_SQLSTATE_REPLAY "KI200"

/* The wrapped statements, one per route statement, made at first use from
 * the statement's constant text. Each lives in its own allocation: the pool
 * keeps pointers to them while they run. */
typedef struct idem_wrapped_s {
  pg_stmt_t stmt;
  char *name;
  char *sql;
} idem_wrapped_t;

struct idem_cache_s {
  idem_wrapped_t **items;
  size_t n;
};

static const pg_stmt_t idem__claim = {"idem_claim",
  "SELECT kip.idem_claim($1::jsonb, $2::text, $3::text)", 3};
static const pg_stmt_t idem__replay = {"idem_replay",
  "SELECT * FROM kip.idem_replay($1::jsonb, $2::text, $3::text)", 3};

/* The state of one keyed write. */
typedef struct idem_tx_s {
  kreq_t *r;
  const pg_stmt_t *stmts[2];
  const char *const *params[2];
  const char *claim_params[3];
  kreq_row_t row;     /* the write's answer, copied into the arena */
  bool have_row;
} idem_tx_t;

/* ---- the key ---- */

static bool idem__key_ok(const char *key) {
  size_t len = strlen(key);
  if (len == 0 || len > IDEM_KEY_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e)
      return false;
  return true;
}

/* The body as hashed (j: a deep copy, changed in place). The hash is kept
 * in the database, and a plain SHA-256 of a body whose other members are
 * known can be reversed by trying every value of a small secret: so a
 * member named like "password" is left out, and a CPR number ("cpr", anywhere) is
 * replaced by its blind index, which the database holds anyway. */
static int idem__hashable(kreq_t *r, json_t *j) {
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
      if (idem__hashable(r, v) != 0)
        return -EINVAL;
    return 0;
  }
  if (!json_is_object(j))
    return 0;
  const char *k;
  json_t *v;
  void *tmp;
  json_object_foreach_safe(j, tmp, k, v) {
    if (strstr(k, "password") != NULL) {
      json_object_del(j, k);
    } else if (strcmp(k, "cpr") == 0 && json_is_string(v)) {
      char index[65];
      if (kreq_cpr_index(r, json_string_value(v), index) != 0)
        return -EINVAL;
      json_object_set_new(j, k, json_string(index));
    } else if (idem__hashable(r, v) != 0) {
      return -EINVAL;
    }
  }
  return 0;
}

/* SHA-256 hex of "METHOD path?query\n" and the body as compact JSON with
 * sorted keys, so that the same JSON sent with other spacing or key order
 * is the same request (secrets replaced: idem__hashable()). */
static int idem__hash(kreq_t *r, char out[65]) {
  http_request_t *req = r->http;
  char *body = NULL;
  size_t body_len = 0;
  if (r->body != NULL) {
    json_t *copy = json_deep_copy(r->body);
    if (copy == NULL || idem__hashable(r, copy) != 0) {
      json_decref(copy);
      return -EINVAL;
    }
    body_len = json_dumpb(copy, NULL, 0, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    body = arena_alloc(&req->arena, body_len + 1);
    if (body != NULL) {
      json_dumpb(copy, body, body_len, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
      body[body_len] = '\0';
    }
    json_decref(copy);
    if (body == NULL)
      return -ENOMEM;
  }
  char *text = arena_sprintf(&req->arena, "%s %s%s%s\n%s", req->method, req->path, req->query ? "?" : "",
                             req->query ? req->query : "", body ? body : "");
  if (text == NULL)
    return -ENOMEM;
  return crypto_sha256_hex(text, strlen(text), out);
}

int idem_begin(kreq_t *r) {
  http_request_t *req = r->http;
  if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)
    return 0; /* a read: the header means nothing */
  const char *key = NULL;
  size_t n = 0;
  for (size_t i = 0; i < req->n_headers; i++)
    if (strcasecmp(req->headers[i].name, "idempotency-key") == 0) {
      key = req->headers[i].value;
      n++;
    }
  if (key == NULL)
    return 0;
  if (n > 1) {
    kreq_problem_code(r, 400, "send Idempotency-Key once", "invalid_format", "Idempotency-Key",
                      "must be sent once");
    return -EINVAL;
  }
  if (!idem__key_ok(key)) {
    kreq_problem_code(r, 400, "Idempotency-Key must be 1 to 255 printable ASCII characters", "invalid_format",
                      "Idempotency-Key", "must be 1 to 255 printable ASCII characters");
    return -EINVAL;
  }
  if (strcmp(req->method, "POST") != 0)
    return 0; /* PUT, PATCH and DELETE are idempotent by their nature */
  const route_t *rt = r->match.route;
  if (rt->flags & (ROUTE_PUBLIC | ROUTE_NO_IDEMPOTENCY)) {
    kreq_problem_code(r, 422,
                      "this route does not take Idempotency-Key: its answer holds a secret that kipd shows "
                      "once and never stores",
                      "idempotency_not_supported", "Idempotency-Key", "is not supported on this route");
    return -EINVAL;
  }
  if (rt->flags & ROUTE_SAFE)
    return 0; /* a search changes nothing: it runs again */
  if (idem__hash(r, r->idem_hash) != 0) {
    kreq_problem(r, 500, "hashing failed", NULL, NULL);
    return -EIO;
  }
  r->idem_key = key;
  return 0;
}

/* ---- the wrapped statements ---- */

void idem_cache_free(idem_cache_t *cache) {
  if (cache == NULL)
    return;
  for (size_t i = 0; i < cache->n; i++) {
    free(cache->items[i]->name);
    free(cache->items[i]->sql);
    free(cache->items[i]);
  }
  free(cache->items);
  free(cache);
}

/* stmt's text as a data-modifying CTE whose answer row also goes to
 * kip.idem_store(): WITH a AS MATERIALIZED (<stmt>) SELECT a.* FROM a WHERE
 * kip.idem_store($key, $hash, a.status, a.body, a.etag, a.location). The
 * text comes from the route's constant statement and two placeholders. */
static const pg_stmt_t *idem__wrapped(app_t *app, const pg_stmt_t *stmt) {
  if (app->idem == NULL && (app->idem = calloc(1, sizeof(*app->idem))) == NULL)
    return NULL;
  idem_cache_t *c = app->idem;
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->items[i]->stmt.name + strlen("idem_"), stmt->name) == 0)
      return &c->items[i]->stmt;
  idem_wrapped_t **items = realloc(c->items, (c->n + 1) * sizeof(*items));
  if (items == NULL)
    return NULL;
  c->items = items;
  idem_wrapped_t *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return NULL;
  static const char fmt[] = "WITH a AS MATERIALIZED (%s) SELECT a.* FROM a "
                            "WHERE kip.idem_store($%d::text, $%d::text, a.status, a.body, a.etag, a.location)";
  int nk = stmt->nparams + 1;
  size_t name_len = strlen("idem_") + strlen(stmt->name) + 1;
  size_t sql_len = sizeof(fmt) + strlen(stmt->sql) + 24;
  w->name = malloc(name_len);
  w->sql = malloc(sql_len);
  if (w->name != NULL)
    snprintf(w->name, name_len, "idem_%s", stmt->name);
  if (w->sql != NULL)
    snprintf(w->sql, sql_len, fmt, stmt->sql, nk, nk + 1);
  if (w->name == NULL || w->sql == NULL) {
    free(w->name);
    free(w->sql);
    free(w);
    return NULL;
  }
  w->stmt = (pg_stmt_t){w->name, w->sql, stmt->nparams + 2};
  c->items[c->n++] = w;
  return &w->stmt;
}

/* ---- the keyed write ---- */

static void idem__send(idem_tx_t *tx);

static void idem__copy_row(kreq_t *r, const kreq_row_t *in, kreq_row_t *out) {
  *out = *in;
  for (int i = 0; i < in->n_fields; i++) {
    if (in->value[i] == NULL)
      continue;
    char *v = arena_alloc(&r->http->arena, in->length[i] + 1);
    if (v == NULL) {
      out->n_rows = 0; /* answered as an unexpected database answer */
      return;
    }
    memcpy(v, in->value[i], in->length[i]);
    v[in->length[i]] = '\0';
    out->value[i] = v;
  }
}

static void idem__replay_stored(kreq_t *r) {
  const char **params = arena_calloc(&r->http->arena, 3 * sizeof(char *));
  if (params == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  params[0] = kreq_ctx(r);
  params[1] = r->idem_key;
  params[2] = r->idem_hash;
  r->idem_key = NULL; /* the replay is a plain statement */
  r->retries = 0;
  kreq_exec(r, &idem__replay, params, r->ok_status, NULL);
}

static void idem__on_db(void *data, int index, int err, PGresult *res) {
  idem_tx_t *tx = data;
  kreq_t *r = tx->r;
  if (index == 1 && err == 0) {
    kreq_row_t row;
    kreq_row__decode(res, &row);
    idem__copy_row(r, &row, &tx->row);
    tx->have_row = true;
    return;
  }
  if (index != -1)
    return; /* the transaction's outcome decides */
  if (err == 0) {
    if (!tx->have_row) {
      kreq_problem(r, 500, "unexpected database answer", NULL, NULL);
      return;
    }
    kreq_reply_row(r, &tx->row);
    return;
  }
  if (err == -EIO && res != NULL) {
    problem_db_error_t e;
    kreq_row__decode_error(res, &e);
    if (e.sqlstate != NULL && strcmp(e.sqlstate, IDEM_SQLSTATE_REPLAY) == 0) {
      idem__replay_stored(r);
      return;
    }
    problem_db_map_t m = problem_map_sqlstate(e.sqlstate, e.constraint);
    if (m.action == PROBLEM_DB_RETRY && r->retries == 0) {
      r->retries++;
      tx->have_row = false;
      idem__send(tx);
      return;
    }
    kreq_problem_db(r, &e);
    return;
  }
  const char *why = err == -ENOSPC ? "too many requests are waiting for the database"
                    : err == -ETIMEDOUT ? "timed out waiting for the database"
                                        : "the database is not available; try again";
  kreq_problem(r, 503, why, NULL, NULL);
}

static void idem__send(idem_tx_t *tx) {
  int rc = pg_pool_tx(tx->r->app->pool, tx->stmts, 2, tx->params, idem__on_db, tx);
  if (rc != 0)
    kreq_problem(tx->r, 503, "the database is not available; try again", NULL, NULL);
}

void idem_exec(kreq_t *r, const pg_stmt_t *stmt, const char **params, int ok_status) {
  r->stmt = stmt;
  r->params = params;
  r->ok_status = ok_status;
  r->on_result = NULL;
  idem_tx_t *tx = arena_calloc(&r->http->arena, sizeof(*tx));
  const char **wparams = arena_calloc(&r->http->arena, (size_t)(stmt->nparams + 2) * sizeof(char *));
  const pg_stmt_t *wrapped = idem__wrapped(r->app, stmt);
  if (tx == NULL || wparams == NULL || wrapped == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  for (int i = 0; i < stmt->nparams; i++)
    wparams[i] = params[i];
  wparams[stmt->nparams] = r->idem_key;
  wparams[stmt->nparams + 1] = r->idem_hash;
  tx->r = r;
  tx->claim_params[0] = params[0]; /* the request's context */
  tx->claim_params[1] = r->idem_key;
  tx->claim_params[2] = r->idem_hash;
  tx->stmts[0] = &idem__claim;
  tx->stmts[1] = wrapped;
  tx->params[0] = tx->claim_params;
  tx->params[1] = wparams;
  idem__send(tx);
}
