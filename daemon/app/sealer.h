/* sealer: appends committed audit rows to the hash chain (issue 5).
 *
 * Requests insert their audit rows unsealed, so no request waits on the
 * chain's head. Every interval_ms the sealer calls kip.audit_seal() through
 * the pool (asynchronously, like the daily pass); when a pass fills its
 * batch it runs again at once. Each pass that sealed rows logs the chain's
 * head (seq and hash): the log is the anchor outside the database against
 * a truncated chain (docs/audit.md). A failing pass is logged once, and its
 * recovery once. */
#ifndef KIPD_APP_SEALER_H
#define KIPD_APP_SEALER_H

#include <stdint.h>
#include <uv.h>

#include "db/pg_pool.h"
#include "util/error.h"

typedef struct sealer_s sealer_t;

/* For /metrics, as of the last successful run. */
typedef struct sealer_stats_s {
  uint64_t unsealed_rows;       /* audit rows above the sealed tail */
  double oldest_unsealed_age_s; /* age of the oldest of them; 0: none */
  uint64_t last_run_unix_ms;    /* wall clock; 0: none yet */
  uint64_t failures_total;      /* runs that failed */
} sealer_stats_t;
void sealer_stats(const sealer_t *s, sealer_stats_t *out);

/* Start a sealer on loop; pool is borrowed and must outlive it. interval_ms
 * 0: never runs (verification still seals). *out is new; free it with
 * sealer_close(). Returns 0 or a negative error. */
int sealer_new(uv_loop_t *loop, pg_pool_t *pool, uint64_t interval_ms, sealer_t **out) KIPD_MUST_CHECK;

/* Stop; cb(data) runs once the timer is closed and no pass is in flight,
 * after which s is freed. */
void sealer_close(sealer_t *s, void (*cb)(void *data), void *data);

#endif
