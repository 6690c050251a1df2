#include "app/daily.h"

#include <stdlib.h>
#include <time.h>

#include "app/events.h"
#include "db/pg_tick.h"
#include "util/log.h"

struct daily_s {
  pg_tick_t *tick;
  daily_stats_t stats;
  events_t *events;             /* told after a pass (borrowed; NULL: none) */
  void (*closed_cb)(void *data);
  void *closed_data;
};

static const pg_stmt_t daily__stmt = {"daily_pass", "SELECT kip.daily_pass()::text", 0};

static bool daily__on_result(void *data, int err, PGresult *res) {
  daily_t *d = data;
  if (err != -ECANCELED) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    d->stats.last_end_unix_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    d->stats.last_duration_ns = uv_hrtime() - pg_tick_sent_ns(d->tick);
    d->stats.runs_total++;
    if (err != 0)
      d->stats.failures_total++;
  }
  if (err == 0) {
    json_t *counts = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    log_emit(LOG_INFO, "daily pass", json_pack("{s:o*}", "events", counts));
    events_changed(d->events); /* it may have written events */
  } else if (err != -ECANCELED) {
    const char *why = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    log_emit(LOG_WARN, "daily pass failed; it runs again at the next interval",
             json_pack("{s:i, s:s?}", "error", err, "message", why));
  }
  return false;
}

int daily_new(uv_loop_t *loop, pg_pool_t *pool, uint64_t first_ms, uint64_t interval_ms,
              daily_t **out) {
  daily_t *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return -ENOMEM;
  int rc = pg_tick_new(loop, pool, &daily__stmt, NULL, first_ms, interval_ms, daily__on_result, d, &d->tick);
  if (rc != 0) {
    free(d);
    return rc;
  }
  *out = d;
  return 0;
}

static void daily__on_closed(void *data) {
  daily_t *d = data;
  void (*cb)(void *) = d->closed_cb;
  void *cb_data = d->closed_data;
  free(d);
  if (cb != NULL)
    cb(cb_data);
}

void daily_close(daily_t *d, void (*cb)(void *data), void *data) {
  d->closed_cb = cb;
  d->closed_data = data;
  pg_tick_close(d->tick, daily__on_closed, d);
}

void daily_set_events(daily_t *d, struct events_s *events) {
  d->events = events;
}

void daily_stats(const daily_t *d, daily_stats_t *out) {
  *out = d->stats;
}
