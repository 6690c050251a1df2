/* events: the live event streams of GET /v1/events (Server-Sent Events).
 *
 * One events_t per kipd holds the open streams and one LISTEN connection
 * (db/pg_listen.h) on the channel kip_events. After every write request
 * that succeeded (and every daily pass), kipd calls events_changed(), which
 * sends NOTIFY kip_events (no payload) on that LISTEN connection: every kipd
 * on the database, this one included, learns that events may have been
 * committed to the outbox (kip.events). The writing transaction itself never
 * notifies (PostgreSQL's notify lock would serialise every commit). A change
 * written by something other than kipd is not announced; the streams find
 * it at their next fetch (the heartbeat's).
 * When a notification arrives, every stream is marked; a
 * zero-delay timer then runs one kip_api.events_fetch per marked stream
 * through the pool (a burst of notifications costs each stream one fetch,
 * and a stream never has two fetches in flight). The SQL authenticates the
 * stream's credential each time (401/403 end the stream) and filters by
 * kip.plan_access. When the LISTEN connection comes back after a break,
 * every stream is marked, so each catches up from its position in the
 * outbox and no event is lost. A heartbeat comment goes to every stream
 * every heartbeat_ms, and every second heartbeat a fetch that checks the
 * stream's credential again (a revoked token ends its stream within two
 * heartbeats, events or not).
 * docs/events-stream.md has the protocol.
 */
#ifndef KIPD_APP_EVENTS_H
#define KIPD_APP_EVENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "app/kreq.h"
#include "util/error.h"

struct pg_pool_s;
typedef struct events_s events_t;

typedef struct events_config_s {
  const char *conninfo;         /* the runtime role's (copied) */
  uint64_t heartbeat_ms;        /* a comment line this often: 15000 */
  uint64_t connect_timeout_ms;  /* the LISTEN connection, as the pool's */
  uint64_t backoff_min_ms;
  uint64_t backoff_max_ms;
} events_config_t;

/* Create the hub and start the LISTEN connection. pool is borrowed.
 * Returns 0 or -errno; *out is new. */
int events_new(uv_loop_t *loop, struct pg_pool_s *pool, const events_config_t *cfg,
               events_t **out) KIPD_MUST_CHECK;

/* Attach the hub to the app (borrowed), so that events_stream_start() finds
 * it. */
void events_attach(events_t *events, app_t *app);

/* Turn r into a stream that starts after the event id `after` (decimal
 * text, borrowed). fetch (borrowed, static) is the statement that reads the
 * stream's next events: ($1 context jsonb, $2 after bigint, $3 limit
 * integer) -> one row (status, body, ...) whose body is {"events": [...],
 * "next": "<id>", "hold": bool, "more": bool}. Sends the head (200,
 * text/event-stream) or a problem; either way r is answered and must not be
 * replied to again. */
void events_stream_start(kreq_t *r, const char *after, const pg_stmt_t *fetch);

/* A change that may have written events committed (a write request
 * answered < 400, a daily pass). While the LISTEN connection listens this
 * sends NOTIFY kip_events on it (coalesced: at most one in flight, one more
 * after it); otherwise this kipd's own streams look at once. hub may be
 * NULL (no-op). */
void events_changed(events_t *hub);

/* For /metrics: streams open; whether LISTEN is in effect; reconnects of
 * the LISTEN connection since start. */
unsigned events_streams(const events_t *events);
bool events_listening(const events_t *events);
uint64_t events_reconnects(const events_t *events);

/* End every stream, close the LISTEN connection and the timers; cb runs
 * from the loop once no fetch is in flight, then the hub is freed. */
void events_close(events_t *events, void (*cb)(void *data), void *data);

#endif
