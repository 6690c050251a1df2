#include "db/pg_tick.h"

#include <stdlib.h>

/* A side statement in flight: its owner's callback and data. */
typedef struct pg_tick_side_s {
  pg_tick_t *tick;
  pg_result_cb cb;
  void *data;
} pg_tick_side_t;

struct pg_tick_s {
  uv_timer_t timer;
  pg_pool_t *pool;
  const pg_stmt_t *stmt;
  const char *const *params;
  pg_tick_cb cb;
  void *data;
  uint64_t sent_ns;
  int main_in_flight;          /* the timed statement */
  int in_flight;               /* every statement, side ones included */
  int closing;
  int timer_closed;
  void (*closed_cb)(void *data);
  void *closed_data;
};

static void pg_tick__maybe_free(pg_tick_t *t) {
  if (!t->closing || !t->timer_closed || t->in_flight > 0)
    return;
  void (*cb)(void *) = t->closed_cb;
  void *data = t->closed_data;
  free(t);
  if (cb != NULL)
    cb(data);
}

static void pg_tick__on_result(void *data, int err, PGresult *res) {
  pg_tick_t *t = data;
  t->main_in_flight = 0;
  t->in_flight--;
  bool again = t->cb(t->data, err, res);
  if (again && !t->closing)
    pg_tick_run(t);
  pg_tick__maybe_free(t);
}

void pg_tick_run(pg_tick_t *t) {
  static const char *none[1] = {NULL};
  if (t->main_in_flight || t->closing)
    return;
  t->sent_ns = uv_hrtime();
  if (pg_pool_exec(t->pool, t->stmt, t->params ? t->params : none, pg_tick__on_result, t) == 0) {
    t->main_in_flight = 1;
    t->in_flight++;
  }
}

uint64_t pg_tick_sent_ns(const pg_tick_t *t) {
  return t->sent_ns;
}

static void pg_tick__on_side_result(void *data, int err, PGresult *res) {
  pg_tick_side_t *side = data;
  pg_tick_t *t = side->tick;
  t->in_flight--;
  side->cb(side->data, err, res);
  free(side);
  pg_tick__maybe_free(t);
}

int pg_tick_exec(pg_tick_t *t, const pg_stmt_t *stmt, const char *const *params, pg_result_cb cb,
                 void *data) {
  static const char *none[1] = {NULL};
  if (t->closing)
    return -ECANCELED;
  pg_tick_side_t *side = malloc(sizeof(*side));
  if (side == NULL)
    return -ENOMEM;
  *side = (pg_tick_side_t){t, cb, data};
  int rc = pg_pool_exec(t->pool, stmt, params ? params : none, pg_tick__on_side_result, side);
  if (rc != 0) {
    free(side);
    return rc;
  }
  t->in_flight++;
  return 0;
}

static void pg_tick__on_timer(uv_timer_t *timer) {
  pg_tick_run(container_of(timer, pg_tick_t, timer));
}

static void pg_tick__on_timer_closed(uv_handle_t *h) {
  pg_tick_t *t = container_of((uv_timer_t *)h, pg_tick_t, timer);
  t->timer_closed = 1;
  pg_tick__maybe_free(t);
}

int pg_tick_new(uv_loop_t *loop, pg_pool_t *pool, const pg_stmt_t *stmt, const char *const *params,
                uint64_t first_ms, uint64_t interval_ms, pg_tick_cb cb, void *data, pg_tick_t **out) {
  pg_tick_t *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return -ENOMEM;
  t->pool = pool;
  t->stmt = stmt;
  t->params = params;
  t->cb = cb;
  t->data = data;
  int rc = uv_timer_init(loop, &t->timer);
  if (rc != 0) {
    free(t);
    return rc;
  }
  if (interval_ms > 0 && (rc = uv_timer_start(&t->timer, pg_tick__on_timer, first_ms, interval_ms)) != 0)
    goto fail_timer;
  *out = t;
  return 0;

fail_timer:
  t->closing = 1;
  uv_close((uv_handle_t *)&t->timer, pg_tick__on_timer_closed);
  return rc;
}

void pg_tick_close(pg_tick_t *t, void (*closed)(void *data), void *data) {
  t->closing = 1;
  t->closed_cb = closed;
  t->closed_data = data;
  uv_timer_stop(&t->timer);
  uv_close((uv_handle_t *)&t->timer, pg_tick__on_timer_closed);
}
