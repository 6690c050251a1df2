#include "app/verifier.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* Links per chunk; a step walks chunks until its time budget is spent
 * (kip.audit_verify_run: a quarter of the statement timeout, at most 1 s). */
#define VERIFIER_CHUNK "5000"

struct verifier_s {
  uv_timer_t timer;
  pg_pool_t *pool;
  int in_flight;
  int closing;
  int timer_closed;
  int failing;
  void (*closed_cb)(void *data);
  void *closed_data;
};

static const pg_stmt_t verifier__stmt = {
  "audit_verify_job_step",
  "SELECT job_id, mode, done, result::text FROM kip.audit_verify_job_step($1::integer)", 1};

static void verifier__run(verifier_t *v);

static void verifier__maybe_free(verifier_t *v) {
  if (!v->closing || !v->timer_closed || v->in_flight)
    return;
  void (*cb)(void *) = v->closed_cb;
  void *data = v->closed_data;
  free(v);
  if (cb != NULL)
    cb(data);
}

/* A finished job: its result in the log, at error level when the chain
 * does not verify. */
static void verifier__log_done(PGresult *res) {
  json_t *result = json_loads(PQgetvalue(res, 0, 3), 0, NULL);
  int ok = json_is_true(json_object_get(result, "ok"));
  json_t *fields = json_pack("{s:s, s:s, s:O*, s:O*, s:O*, s:O*}", "job_id", PQgetvalue(res, 0, 0),
                             "mode", PQgetvalue(res, 0, 1), "checked", json_object_get(result, "checked"),
                             "broken", json_object_get(result, "broken"),
                             "unsealed_overdue", json_object_get(result, "unsealed_overdue"),
                             "first_broken", json_object_get(result, "first_broken"));
  log_emit(ok ? LOG_INFO : LOG_ERROR, ok ? "audit chain verified" : "audit chain does NOT verify", fields);
  json_decref(result);
}

static void verifier__on_result(void *data, int err, PGresult *res) {
  verifier_t *v = data;
  v->in_flight = 0;
  if (err == 0) {
    if (v->failing) {
      v->failing = 0;
      log_emit(LOG_INFO, "audit verification jobs run again", NULL);
    }
    if (PQntuples(res) == 1) {
      if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
        verifier__log_done(res);
      /* A step was taken: there may be more of this job, or another. */
      if (!v->closing) {
        verifier__run(v);
        return;
      }
    }
  } else if (err != -ECANCELED && !v->failing) {
    v->failing = 1;
    const char *why = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    log_emit(LOG_WARN, "audit verification step failed; retrying at each interval",
             json_pack("{s:i, s:s?}", "error", err, "message", why));
  }
  verifier__maybe_free(v);
}

static void verifier__run(verifier_t *v) {
  static const char *params[2] = {VERIFIER_CHUNK, NULL};
  if (v->in_flight || v->closing)
    return;
  if (pg_pool_exec(v->pool, &verifier__stmt, params, verifier__on_result, v) == 0)
    v->in_flight = 1;
}

static void verifier__on_timer(uv_timer_t *t) {
  verifier__run(container_of(t, verifier_t, timer));
}

static void verifier__on_timer_closed(uv_handle_t *h) {
  verifier_t *v = container_of((uv_timer_t *)h, verifier_t, timer);
  v->timer_closed = 1;
  verifier__maybe_free(v);
}

int verifier_new(uv_loop_t *loop, pg_pool_t *pool, uint64_t interval_ms, verifier_t **out) {
  verifier_t *v = calloc(1, sizeof(*v));
  if (v == NULL)
    return -ENOMEM;
  v->pool = pool;
  int rc = uv_timer_init(loop, &v->timer);
  if (rc != 0) {
    free(v);
    return rc;
  }
  if (interval_ms > 0 &&
      (rc = uv_timer_start(&v->timer, verifier__on_timer, interval_ms, interval_ms)) != 0)
    goto fail_timer;
  *out = v;
  return 0;

fail_timer:
  v->closing = 1;
  uv_close((uv_handle_t *)&v->timer, verifier__on_timer_closed);
  return rc;
}

void verifier_close(verifier_t *v, void (*cb)(void *data), void *data) {
  v->closing = 1;
  v->closed_cb = cb;
  v->closed_data = data;
  uv_timer_stop(&v->timer);
  uv_close((uv_handle_t *)&v->timer, verifier__on_timer_closed);
}
