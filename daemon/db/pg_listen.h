/* db/pg_listen: one dedicated asynchronous libpq connection that LISTENs on
 * one channel, reports its notifications, and sends NOTIFY on it.
 *
 * Knows no KIP word. It connects with PQconnectStartParams/PQconnectPoll
 * (a host name resolved on libuv's threadpool first, db/pg_resolve.h),
 * driven by a uv_poll_t, sends "SET synchronous_commit TO off; LISTEN
 * <channel>" with PQsendQuery, then reads with PQconsumeInput and
 * PQnotifies. No blocking libpq call is made.
 *
 * pg_listen_notify() sends "NOTIFY <channel>" (no payload) on this same
 * connection, so a writer never has to NOTIFY in its own transaction (the
 * notify lock PostgreSQL takes at commit serialises every such commit). The
 * session's NOTIFY transactions commit asynchronously (synchronous_commit
 * off): one would otherwise wait for a WAL flush. At most one NOTIFY is in
 * flight; calls made meanwhile coalesce into exactly one more, sent when it
 * completes. The listener receives its own NOTIFY too. When the
 * connection breaks (the server went away, the backend was terminated), it
 * reconnects with exponential backoff and jitter and LISTENs again.
 *
 *   CONNECTING -> SUBSCRIBING -> LISTENING
 *        |             |             |
 *        +-------------+-------------+--> WAITING --(backoff timer)--> CONNECTING
 *
 * A notification sent while no connection listens is lost (PostgreSQL keeps
 * none for a listener that is not there), so on_ready is called every time
 * LISTEN is in effect again: the first time and after every reconnect. The
 * user then catches up from its own durable record (e.g. an outbox table read
 * by id). Callbacks never run synchronously inside a pg_listen_* call.
 */
#ifndef KIPD_DB_PG_LISTEN_H
#define KIPD_DB_PG_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "util/error.h"

typedef struct pg_listen_s pg_listen_t;

typedef struct pg_listen_config_s {
  const char *conninfo;         /* libpq connection string or URI (copied) */
  const char *channel;          /* a plain identifier [a-z_][a-z0-9_]* (copied) */
  const char *application_name; /* e.g. "kipd-listen" (copied; NULL: none) */
  uint64_t connect_timeout_ms;  /* one connection attempt: 5 s */
  uint64_t backoff_min_ms;      /* reconnect backoff start: 100 ms */
  uint64_t backoff_max_ms;      /* reconnect backoff cap: 5 s */
} pg_listen_config_t;

typedef struct pg_listen_cbs_s {
  /* LISTEN is in effect (first time, or again after a reconnect). */
  void (*on_ready)(void *data, bool reconnected);
  /* One notification on the channel; payload borrowed for the call. */
  void (*on_notify)(void *data, const char *payload);
  /* The connection was lost (or could not be made); a retry is scheduled.
   * why is borrowed, never holds a password. May be NULL. */
  void (*on_down)(void *data, const char *why);
} pg_listen_cbs_t;

/* Create and start connecting. cfg's strings are copied, cbs is copied.
 * Returns 0, -EINVAL (bad channel name), -ENOMEM. *out is new; end it with
 * pg_listen_close(). */
int pg_listen_new(uv_loop_t *loop, const pg_listen_config_t *cfg, const pg_listen_cbs_t *cbs,
                  void *data, pg_listen_t **out) KIPD_MUST_CHECK;

/* True while LISTEN is in effect. */
bool pg_listen_ready(const pg_listen_t *l);

/* Send NOTIFY <channel> (no payload) on the LISTEN connection, without
 * waiting: every listener on the channel, this one included, is notified
 * once that NOTIFY commits, which is after this call. If a NOTIFY is in
 * flight, exactly one more is sent when it completes (however many calls
 * came meanwhile). Returns false, and sends nothing, when the connection is
 * not LISTENING (or the send failed: the connection is then reconnected and
 * on_ready runs again); true when a NOTIFY is sent or queued. An error
 * answered to a NOTIFY is ignored. */
bool pg_listen_notify(pg_listen_t *l);

/* Reconnects made since start (for /metrics and tests). */
uint64_t pg_listen_reconnects(const pg_listen_t *l);

/* Drop the connection now and reconnect at once (e.g. after the embedded
 * postmaster was restarted). */
void pg_listen_reconnect(pg_listen_t *l);

/* Close the connection and the handles; no callback of cbs runs after this
 * call. cb (may be NULL) runs from the loop once everything is closed; the
 * object is freed right after cb returns. */
void pg_listen_close(pg_listen_t *l, void (*cb)(void *data), void *data);

#endif
