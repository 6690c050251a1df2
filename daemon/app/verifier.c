#include "app/verifier.h"

#include <stdlib.h>
#include <string.h>

#include "db/pg_tick.h"
#include "util/log.h"

/* Links per chunk; a step walks chunks until its time budget is spent
 * (kip.audit_verify_run: a quarter of the statement timeout, at most 1 s). */
#define VERIFIER_CHUNK "5000"

struct verifier_s {
  pg_tick_t *tick;
  int failing;
  void (*closed_cb)(void *data);
  void *closed_data;
};

static const char *const verifier__params[2] = {VERIFIER_CHUNK, NULL};

static const pg_stmt_t verifier__stmt = {
  "audit_verify_job_step",
  "SELECT job_id, mode, done, result::text FROM kip.audit_verify_job_step($1::integer)", 1};

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

/* Returns true when a step was taken: there may be more of this job, or
 * another. */
static bool verifier__on_result(void *data, int err, PGresult *res) {
  verifier_t *v = data;
  if (err == 0) {
    if (v->failing) {
      v->failing = 0;
      log_emit(LOG_INFO, "audit verification jobs run again", NULL);
    }
    if (PQntuples(res) == 1) {
      if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
        verifier__log_done(res);
      return true;
    }
  } else if (err != -ECANCELED && !v->failing) {
    v->failing = 1;
    const char *why = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    log_emit(LOG_WARN, "audit verification step failed; retrying at each interval",
             json_pack("{s:i, s:s?}", "error", err, "message", why));
  }
  return false;
}

int verifier_new(uv_loop_t *loop, pg_pool_t *pool, uint64_t interval_ms, verifier_t **out) {
  verifier_t *v = calloc(1, sizeof(*v));
  if (v == NULL)
    return -ENOMEM;
  int rc = pg_tick_new(loop, pool, &verifier__stmt, verifier__params, interval_ms, interval_ms,
                       verifier__on_result, v, &v->tick);
  if (rc != 0) {
    free(v);
    return rc;
  }
  *out = v;
  return 0;
}

static void verifier__on_closed(void *data) {
  verifier_t *v = data;
  void (*cb)(void *) = v->closed_cb;
  void *cb_data = v->closed_data;
  free(v);
  if (cb != NULL)
    cb(cb_data);
}

void verifier_close(verifier_t *v, void (*cb)(void *data), void *data) {
  v->closed_cb = cb;
  v->closed_data = data;
  pg_tick_close(v->tick, verifier__on_closed, v);
}
