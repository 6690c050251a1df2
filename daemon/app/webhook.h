/* webhook: the delivery worker. It sends each pending webhook delivery to
 * its subscriber's URL, signed, from inside kipd, on the loop.
 *
 * A libuv timer (every poll_interval_ms, and again at once while claims
 * come back full) claims due deliveries from the database with SQL
 * kip.webhook_claim() (FOR UPDATE SKIP LOCKED: several kipd instances on
 * one database share the work; the access rule and the audit are applied
 * there), posts each event's envelope (kip.event_json) with http/client
 * (libcurl multi on the loop), and records the outcome with
 * kip.webhook_result(), which schedules the retry with backoff and jitter
 * or marks the delivery delivered or failed. A claim is a lease: a kipd
 * killed mid-request leaves its deliveries to be claimed again when the
 * lease runs out (at least once). Every database call goes through the
 * asynchronous pool. */
#ifndef KIPD_APP_WEBHOOK_H
#define KIPD_APP_WEBHOOK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "db/pg_pool.h"
#include "util/error.h"
#include "util/netpolicy.h"

typedef struct webhook_config_s {
  uint64_t poll_interval_ms;    /* look for due deliveries this often: 1000; 0 = never deliver */
  unsigned batch;               /* deliveries per claim: 32 */
  unsigned max_in_flight;       /* requests at once: 64 */
  uint64_t connect_timeout_ms;  /* 5000 */
  uint64_t timeout_ms;          /* one request in all: 10000 */
  uint64_t retry_base_ms;       /* first retry after about this, doubling: 10000 */
  uint64_t retry_window_s;      /* retries stop this long after the first attempt: 86400 */
  size_t max_response_bytes;    /* 4096 */
  bool allow_loopback;          /* http:// and loopback addresses (tests) */
  const netpolicy_t *net;       /* borrowed: which resolved addresses may be reached */
} webhook_config_t;

typedef struct webhook_s webhook_t;

/* For /metrics: delivery attempts since start. */
typedef struct webhook_stats_s {
  uint64_t sent_total;          /* the receiver answered 2xx */
  uint64_t failed_total;        /* no answer, or not 2xx */
  bool backlog_measured;        /* the backlog below has been counted once */
  uint64_t backlog;             /* deliveries pending, as of the last count (every 10 s) */
  double oldest_pending_age_s;  /* age of the oldest of them then; 0: none */
} webhook_stats_t;
void webhook_stats(const webhook_t *w, webhook_stats_t *out);

/* cfg copied, pool and cfg->net borrowed. Returns 0, -ENOTSUP when libcurl
 * has no asynchronous resolver, or -errno; *out is new. */
int webhook_new(uv_loop_t *loop, pg_pool_t *pool, const webhook_config_t *cfg,
                webhook_t **out) KIPD_MUST_CHECK;

/* Stop claiming, abort the requests in flight (their deliveries are
 * claimed again after the lease), wait for the database calls in flight,
 * free, then call cb (may be NULL). */
void webhook_close(webhook_t *w, void (*cb)(void *data), void *data);

#endif
