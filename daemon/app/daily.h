/* daily: the scheduled pass that marks what became due (overdue actions,
 * consents past review_by, plans past their follow-up date, meetings with an
 * overdue outcome) as events. It runs SQL kip.daily_pass() shortly after
 * start-up and then every interval on a libuv timer. The SQL takes an
 * advisory lock and dedupes each event, so several kipd instances on one
 * database make every event exactly once. */
#ifndef KIPD_APP_DAILY_H
#define KIPD_APP_DAILY_H

#include <stdint.h>
#include <uv.h>

#include "db/pg_pool.h"
#include "util/error.h"

typedef struct daily_s daily_t;

/* For /metrics: the last pass that finished (successfully or not). */
typedef struct daily_stats_s {
  uint64_t last_end_unix_ms;    /* wall clock; 0: none yet */
  uint64_t last_duration_ns;
  uint64_t runs_total;
  uint64_t failures_total;
} daily_stats_t;
void daily_stats(const daily_t *d, daily_stats_t *out);

/* interval_ms 0 disables the timer. pool is borrowed. *out is new. */
int daily_new(uv_loop_t *loop, pg_pool_t *pool, uint64_t first_ms, uint64_t interval_ms,
              daily_t **out) KIPD_MUST_CHECK;

/* After every pass that succeeded, events_changed(events) tells the event
 * streams (app/events.h). events is borrowed; NULL (before the hub exists,
 * and before it is closed): nobody is told. */
struct events_s;
void daily_set_events(daily_t *d, struct events_s *events);

/* Stop the timer; the object frees itself once its timer is closed and no
 * pass is in flight, then calls cb (may be NULL). */
void daily_close(daily_t *d, void (*cb)(void *data), void *data);

#endif
