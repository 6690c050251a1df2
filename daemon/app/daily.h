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

/* interval_ms 0 disables the timer. pool is borrowed. *out is new. */
int daily_new(uv_loop_t *loop, pg_pool_t *pool, uint64_t first_ms, uint64_t interval_ms,
              daily_t **out) KIPD_MUST_CHECK;

/* Stop the timer; the object frees itself once its timer is closed and no
 * pass is in flight, then calls cb (may be NULL). */
void daily_close(daily_t *d, void (*cb)(void *data), void *data);

#endif
