#include "app/daily.h"

#include <stdlib.h>
#include <time.h>

#include "util/log.h"

struct daily_s {
  uv_timer_t timer;
  pg_pool_t *pool;
  uint64_t interval_ms;
  int in_flight;
  int closing;
  int timer_closed;
  uint64_t started_ns;          /* uv_hrtime() when the running pass was sent */
  daily_stats_t stats;
  void (*closed_cb)(void *data);
  void *closed_data;
};

static const pg_stmt_t daily__stmt = {"daily_pass", "SELECT kip.daily_pass()::text", 0};

static void daily__maybe_free(daily_t *d) {
  if (!d->closing || !d->timer_closed || d->in_flight)
    return;
  void (*cb)(void *) = d->closed_cb;
  void *data = d->closed_data;
  free(d);
  if (cb != NULL)
    cb(data);
}

static void daily__on_result(void *data, int err, PGresult *res) {
  daily_t *d = data;
  d->in_flight = 0;
  if (err != -ECANCELED) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    d->stats.last_end_unix_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    d->stats.last_duration_ns = uv_hrtime() - d->started_ns;
    d->stats.runs_total++;
    if (err != 0)
      d->stats.failures_total++;
  }
  if (err == 0) {
    json_t *counts = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    log_emit(LOG_INFO, "daily pass", json_pack("{s:o*}", "events", counts));
  } else if (err != -ECANCELED) {
    const char *why = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    log_emit(LOG_WARN, "daily pass failed; it runs again at the next interval",
             json_pack("{s:i, s:s?}", "error", err, "message", why));
  }
  daily__maybe_free(d);
}

static void daily__on_timer(uv_timer_t *t) {
  daily_t *d = container_of(t, daily_t, timer);
  if (d->in_flight || d->closing)
    return;
  static const char *none[1] = {NULL};
  d->started_ns = uv_hrtime();
  if (pg_pool_exec(d->pool, &daily__stmt, none, daily__on_result, d) == 0)
    d->in_flight = 1;
}

static void daily__on_timer_closed(uv_handle_t *h) {
  daily_t *d = container_of((uv_timer_t *)h, daily_t, timer);
  d->timer_closed = 1;
  daily__maybe_free(d);
}

int daily_new(uv_loop_t *loop, pg_pool_t *pool, uint64_t first_ms, uint64_t interval_ms,
              daily_t **out) {
  daily_t *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return -ENOMEM;
  d->pool = pool;
  d->interval_ms = interval_ms;
  int rc = uv_timer_init(loop, &d->timer);
  if (rc != 0) {
    free(d);
    return rc;
  }
  if (interval_ms > 0 && (rc = uv_timer_start(&d->timer, daily__on_timer, first_ms, interval_ms)) != 0)
    goto fail_timer;
  *out = d;
  return 0;

fail_timer:
  d->closing = 1;
  uv_close((uv_handle_t *)&d->timer, daily__on_timer_closed);
  return rc;
}

void daily_close(daily_t *d, void (*cb)(void *data), void *data) {
  d->closing = 1;
  d->closed_cb = cb;
  d->closed_data = data;
  uv_timer_stop(&d->timer);
  uv_close((uv_handle_t *)&d->timer, daily__on_timer_closed);
}

void daily_stats(const daily_t *d, daily_stats_t *out) {
  *out = d->stats;
}
