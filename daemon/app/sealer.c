#include "app/sealer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

/* Rows per pass: a pass holds the chain lock for a few tens of ms at most. */
#define SEALER_BATCH "5000"

struct sealer_s {
  uv_timer_t timer;
  pg_pool_t *pool;
  int in_flight;
  int closing;
  int timer_closed;
  int failing;
  sealer_stats_t stats;
  void (*closed_cb)(void *data);
  void *closed_data;
};

static const pg_stmt_t sealer__stmt = {
  "audit_seal", "SELECT sealed, head_seq, head_hash FROM kip.audit_seal($1::integer)", 1};

static const pg_stmt_t sealer__unsealed = {
  "audit_unsealed", "SELECT unsealed, oldest_age_s FROM kip.audit_unsealed()", 0};

static void sealer__run(sealer_t *s);
static void sealer__maybe_free(sealer_t *s);

static void sealer__on_unsealed(void *data, int err, PGresult *res) {
  sealer_t *s = data;
  s->in_flight = 0;
  if (err == 0 && PQntuples(res) == 1) {
    s->stats.unsealed_rows = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    s->stats.oldest_unsealed_age_s = strtod(PQgetvalue(res, 0, 1), NULL);
  }
  sealer__maybe_free(s);
}

/* After a run: how far behind the seal is, for /metrics. */
static void sealer__measure(sealer_t *s) {
  static const char *none[1] = {NULL};
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  s->stats.last_run_unix_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
  if (!s->closing && pg_pool_exec(s->pool, &sealer__unsealed, none, sealer__on_unsealed, s) == 0)
    s->in_flight = 1;
}

static void sealer__maybe_free(sealer_t *s) {
  if (!s->closing || !s->timer_closed || s->in_flight)
    return;
  void (*cb)(void *) = s->closed_cb;
  void *data = s->closed_data;
  free(s);
  if (cb != NULL)
    cb(data);
}

static void sealer__on_result(void *data, int err, PGresult *res) {
  sealer_t *s = data;
  s->in_flight = 0;
  if (err != 0 && err != -ECANCELED)
    s->stats.failures_total++;
  if (err == 0 && PQntuples(res) == 1) {
    if (s->failing) {
      s->failing = 0;
      log_emit(LOG_INFO, "audit sealing works again", NULL);
    }
    long sealed = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    if (sealed > 0) {
      log_emit(LOG_INFO, "audit sealed",
               json_pack("{s:i, s:s, s:s}", "sealed", (int)sealed, "head_seq", PQgetvalue(res, 0, 1),
                         "head_hash", PQgetvalue(res, 0, 2)));
      /* A full batch: more is waiting. */
      if (sealed >= atol(SEALER_BATCH) && !s->closing) {
        sealer__run(s);
        return;
      }
    }
    sealer__measure(s);
  } else if (err != -ECANCELED && !s->failing) {
    s->failing = 1;
    const char *why = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    log_emit(LOG_WARN, "audit sealing failed; retrying at each interval",
             json_pack("{s:i, s:s?}", "error", err, "message", why));
  }
  sealer__maybe_free(s);
}

static void sealer__run(sealer_t *s) {
  static const char *params[2] = {SEALER_BATCH, NULL};
  if (s->in_flight || s->closing)
    return;
  if (pg_pool_exec(s->pool, &sealer__stmt, params, sealer__on_result, s) == 0)
    s->in_flight = 1;
}

static void sealer__on_timer(uv_timer_t *t) {
  sealer__run(container_of(t, sealer_t, timer));
}

static void sealer__on_timer_closed(uv_handle_t *h) {
  sealer_t *s = container_of((uv_timer_t *)h, sealer_t, timer);
  s->timer_closed = 1;
  sealer__maybe_free(s);
}

int sealer_new(uv_loop_t *loop, pg_pool_t *pool, uint64_t interval_ms, sealer_t **out) {
  sealer_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->pool = pool;
  int rc = uv_timer_init(loop, &s->timer);
  if (rc != 0) {
    free(s);
    return rc;
  }
  if (interval_ms > 0 && (rc = uv_timer_start(&s->timer, sealer__on_timer, interval_ms, interval_ms)) != 0)
    goto fail_timer;
  *out = s;
  return 0;

fail_timer:
  s->closing = 1;
  uv_close((uv_handle_t *)&s->timer, sealer__on_timer_closed);
  return rc;
}

void sealer_close(sealer_t *s, void (*cb)(void *data), void *data) {
  s->closing = 1;
  s->closed_cb = cb;
  s->closed_data = data;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, sealer__on_timer_closed);
}

void sealer_stats(const sealer_t *s, sealer_stats_t *out) {
  *out = s->stats;
}
