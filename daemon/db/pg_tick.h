/* pg_tick: one statement run through the pool on a timer.
 *
 * The skeleton the background jobs share (the audit sealer, the audit
 * verifier, the daily pass): a uv_timer_t that sends the statement every
 * interval, never while an earlier one is in flight; an answer that asks
 * for it sends it again at once (a full batch: more is waiting); side
 * statements of the owner (pg_tick_exec) counted as in flight too; and a
 * close that waits for the timer's close and for every answer before it
 * calls back. Knows nothing of what the statement does. */
#ifndef KIPD_DB_PG_TICK_H
#define KIPD_DB_PG_TICK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "db/pg_pool.h"
#include "util/error.h"

typedef struct pg_tick_s pg_tick_t;

/* The answer to the timed statement, as pg_result_cb (res borrowed; err
 * -ECANCELED while the pool closes). Returns true to send the statement
 * again at once; ignored once pg_tick_close() was called. */
typedef bool (*pg_tick_cb)(void *data, int err, PGresult *res);

/* Start on loop: the statement stmt with params (both borrowed, static;
 * params NULL-terminated, may be NULL for none) is sent first after
 * first_ms, then every interval_ms (0: never by the timer; pg_tick_run()
 * still sends it). pool is borrowed and must outlive the tick. *out is
 * new; free it with pg_tick_close(). Returns 0 or a negative error. */
int pg_tick_new(uv_loop_t *loop, pg_pool_t *pool, const pg_stmt_t *stmt, const char *const *params,
                uint64_t first_ms, uint64_t interval_ms, pg_tick_cb cb, void *data,
                pg_tick_t **out) KIPD_MUST_CHECK;

/* Send the statement now, unless it is in flight or the tick is closing. */
void pg_tick_run(pg_tick_t *t);

/* uv_hrtime() when the timed statement was last sent (0: never). */
uint64_t pg_tick_sent_ns(const pg_tick_t *t);

/* A side statement of the owner (e.g. a measurement after a run): like
 * pg_pool_exec(), but counted as in flight, so the tick does not close
 * before cb has run. Returns 0, or a negative error without calling cb
 * (also -ECANCELED when the tick is closing). */
int pg_tick_exec(pg_tick_t *t, const pg_stmt_t *stmt, const char *const *params, pg_result_cb cb,
                 void *data) KIPD_MUST_CHECK;

/* Stop; closed(data) runs once the timer is closed and no statement is in
 * flight, after which t is freed. No cb runs after closed. */
void pg_tick_close(pg_tick_t *t, void (*closed)(void *data), void *data);

#endif
