#include "app/sealer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/pg_tick.h"
#include "util/log.h"

/* Rows per pass: a pass holds the chain lock for a few tens of ms at most. */
#define SEALER_BATCH "5000"

struct sealer_s {
  pg_tick_t *tick;
  int failing;
  sealer_stats_t stats;
  void (*closed_cb)(void *data);
  void *closed_data;
};

static const char *const sealer__params[2] = {SEALER_BATCH, NULL};

static const pg_stmt_t sealer__stmt = {
  "audit_seal", "SELECT sealed, head_seq, head_hash FROM kip.audit_seal($1::integer)", 1};

static const pg_stmt_t sealer__unsealed = {
  "audit_unsealed", "SELECT unsealed, oldest_age_s FROM kip.audit_unsealed()", 0};

static void sealer__on_unsealed(void *data, int err, PGresult *res) {
  sealer_t *s = data;
  if (err == 0 && PQntuples(res) == 1) {
    s->stats.unsealed_rows = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    s->stats.oldest_unsealed_age_s = strtod(PQgetvalue(res, 0, 1), NULL);
  }
}

/* After a run: how far behind the seal is, for /metrics. */
static void sealer__measure(sealer_t *s) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  s->stats.last_run_unix_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
  if (pg_tick_exec(s->tick, &sealer__unsealed, NULL, sealer__on_unsealed, s) != 0)
    return;   /* closing, or no memory: the gauges wait for the next run */
}

/* Returns true when a full batch was sealed: more is waiting. */
static bool sealer__on_result(void *data, int err, PGresult *res) {
  sealer_t *s = data;
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
      if (sealed >= atol(SEALER_BATCH))
        return true;
    }
    sealer__measure(s);
  } else if (err != -ECANCELED && !s->failing) {
    s->failing = 1;
    const char *why = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    log_emit(LOG_WARN, "audit sealing failed; retrying at each interval",
             json_pack("{s:i, s:s?}", "error", err, "message", why));
  }
  return false;
}

int sealer_new(uv_loop_t *loop, pg_pool_t *pool, uint64_t interval_ms, sealer_t **out) {
  sealer_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  int rc = pg_tick_new(loop, pool, &sealer__stmt, sealer__params, interval_ms, interval_ms, sealer__on_result,
                       s, &s->tick);
  if (rc != 0) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

static void sealer__on_closed(void *data) {
  sealer_t *s = data;
  void (*cb)(void *) = s->closed_cb;
  void *cb_data = s->closed_data;
  free(s);
  if (cb != NULL)
    cb(cb_data);
}

void sealer_close(sealer_t *s, void (*cb)(void *data), void *data) {
  s->closed_cb = cb;
  s->closed_data = data;
  pg_tick_close(s->tick, sealer__on_closed, s);
}

void sealer_stats(const sealer_t *s, sealer_stats_t *out) {
  *out = s->stats;
}
