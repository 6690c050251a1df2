#include "app/webhook.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/webhook_sign.h"
#include "http/client.h"
#include "util/log.h"

struct webhook_s {
  uv_loop_t *loop;
  pg_pool_t *pool;
  webhook_config_t cfg;
  http_client_t *client;
  uv_timer_t timer;
  bool claiming;          /* a claim is in flight */
  bool claim_failing;     /* the last claim failed (logged once, until one succeeds) */
  unsigned in_flight;     /* deliveries claimed and not yet recorded */
  unsigned db_calls;      /* claims and results in flight */
  bool closing;
  bool timer_closed;
  bool client_closed;
  webhook_stats_t stats;
  bool backlog_in_flight;
  uint64_t backlog_at;    /* uv_now() of the last backlog count; 0: never */
  void (*closed_cb)(void *data);
  void *closed_data;
};

/* One claimed delivery, from its claim until its outcome is recorded. */
typedef struct webhook__delivery_s {
  webhook_t *w;
  char *id;
  char *claim;
  char *event_id;
  char status[24];
  char *error;
} webhook__delivery_t;

static const pg_stmt_t webhook__claim_stmt = {"webhook_claim",
  "SELECT delivery_id, claim, url, secret, event_id, body FROM kip.webhook_claim($1::integer, $2::integer)", 2};
static const pg_stmt_t webhook__result_stmt = {"webhook_result",
  "SELECT kip.webhook_result($1::uuid, $2::uuid, $3::integer, $4::text, $5::integer, $6::integer)", 6};

static void webhook__claim(webhook_t *w);

/* The backlog for /metrics is counted at most this often, from the timer. */
#define WEBHOOK_BACKLOG_EVERY_MS 10000
static const pg_stmt_t webhook__backlog_stmt = {"webhook_backlog",
  "SELECT pending, oldest_age_s FROM kip.webhook_backlog()", 0};

static void webhook__maybe_free(webhook_t *w) {
  if (!w->closing || !w->timer_closed || !w->client_closed || w->db_calls > 0 || w->in_flight > 0)
    return;
  void (*cb)(void *) = w->closed_cb;
  void *data = w->closed_data;
  free(w);
  if (cb != NULL)
    cb(data);
}

static void webhook__delivery_free(webhook__delivery_t *d) {
  webhook_t *w = d->w;
  free(d->id);
  free(d->claim);
  free(d->event_id);
  free(d->error);
  free(d);
  w->in_flight--;
}

/* The lease of a claim: longer than any request can take. */
static uint64_t webhook__lease_ms(const webhook_t *w) {
  return w->cfg.connect_timeout_ms + w->cfg.timeout_ms + 5000;
}

static void webhook__on_recorded(void *data, int err, PGresult *res) {
  webhook__delivery_t *d = data;
  webhook_t *w = d->w;
  w->db_calls--;
  if (err != 0 && err != -ECANCELED) {
    const char *why = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    log_emit(LOG_WARN, "webhook delivery outcome not recorded; it is sent again after its lease",
             json_pack("{s:s, s:i, s:s?}", "delivery_id", d->id, "error", err, "message", why));
  } else if (err == 0) {
    const char *now = PQgetvalue(res, 0, 0);
    log_emit(strcmp(now, "delivered") == 0 ? LOG_INFO : LOG_WARN, "webhook delivery",
             json_pack("{s:s, s:s, s:s, s:s, s:s?}", "delivery_id", d->id, "event_id", d->event_id,
                       "status", now, "http_status", d->status[0] ? d->status : "none",
                       "error", d->error));
  }
  webhook__delivery_free(d);
  if (!w->closing && w->in_flight < w->cfg.max_in_flight / 2 && !w->claiming)
    webhook__claim(w);
  webhook__maybe_free(w);
}

/* Record the outcome: a status (NULL: no HTTP answer) and an error. */
static void webhook__record(webhook__delivery_t *d, long status, const char *error) {
  webhook_t *w = d->w;
  char base[24], window[24];
  if (status > 0)
    snprintf(d->status, sizeof(d->status), "%ld", status);
  d->error = error != NULL && error[0] != '\0' ? strdup(error) : NULL;
  snprintf(base, sizeof(base), "%" PRIu64, w->cfg.retry_base_ms);
  snprintf(window, sizeof(window), "%" PRIu64, w->cfg.retry_window_s);
  const char *params[6] = {d->id, d->claim, status > 0 ? d->status : NULL, d->error, base, window};
  if (pg_pool_exec(w->pool, &webhook__result_stmt, params, webhook__on_recorded, d) != 0) {
    webhook__delivery_free(d);  /* the lease runs out; it is sent again */
    webhook__maybe_free(w);
    return;
  }
  w->db_calls++;
}

static void webhook__on_sent(void *data, const http_client_result_t *res) {
  webhook__delivery_t *d = data;
  webhook_t *w = d->w;
  if (res->outcome == HTTP_CLIENT_CANCELED || w->closing) {
    webhook__delivery_free(d);  /* shutting down: claimed again after the lease */
    webhook__maybe_free(w);
    return;
  }
  long status = res->outcome == HTTP_CLIENT_OK || res->outcome == HTTP_CLIENT_TOO_LARGE ? res->status : 0;
  char why[160];
  const char *error = res->error;
  if (res->outcome == HTTP_CLIENT_OK && (status < 200 || status > 299)) {
    snprintf(why, sizeof(why), "the receiver answered HTTP %ld", status);
    error = why;
  } else if (res->outcome == HTTP_CLIENT_TOO_LARGE && (status < 200 || status > 299)) {
    snprintf(why, sizeof(why), "the receiver answered HTTP %ld with a body over the limit", status);
    error = why;
  } else if (status >= 200 && status <= 299) {
    error = NULL;
  }
  if (error == NULL)
    w->stats.sent_total++;
  else
    w->stats.failed_total++;
  webhook__record(d, status, error);
}

/* Sign and send one claimed delivery. The secret is wiped once signed. */
static void webhook__send(webhook_t *w, const char *id, const char *claim, const char *url, char *secret,
                          const char *event_id, const char *body) {
  webhook__delivery_t *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return;  /* the lease runs out; it is sent again */
  d->w = w;
  w->in_flight++;
  d->id = strdup(id);
  d->claim = strdup(claim);
  d->event_id = strdup(event_id);
  char signature[WEBHOOK_SIGN_HEADER_LEN];
  int rc = webhook_sign(secret, (int64_t)time(NULL), body, strlen(body), signature);
  explicit_bzero(secret, strlen(secret));
  if (d->id == NULL || d->claim == NULL || d->event_id == NULL || rc != 0) {
    webhook__delivery_free(d);
    return;
  }
  char h_sig[WEBHOOK_SIGN_HEADER_LEN + 32], h_event[96], h_delivery[96];
  snprintf(h_sig, sizeof(h_sig), "X-KIP-Signature: %s", signature);
  snprintf(h_event, sizeof(h_event), "X-KIP-Event-Id: %s", event_id);
  snprintf(h_delivery, sizeof(h_delivery), "X-KIP-Delivery-Id: %s", id);
  const char *headers[] = {"Content-Type: application/json", h_sig, h_event, h_delivery, NULL};
  rc = http_client_post(w->client, url, headers, body, strlen(body), webhook__on_sent, d);
  explicit_bzero(h_sig, sizeof(h_sig));
  if (rc != 0)
    webhook__record(d, 0, "the request could not be started");
}

static void webhook__on_claimed(void *data, int err, PGresult *res) {
  webhook_t *w = data;
  w->claiming = false;
  w->db_calls--;
  int n = 0;
  if (err == 0 && !w->closing) {
    n = PQntuples(res);
    for (int i = 0; i < n; i++)
      webhook__send(w, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                    PQgetvalue(res, i, 3), PQgetvalue(res, i, 4), PQgetvalue(res, i, 5));
  } else if (err != 0 && err != -ECANCELED && !w->claim_failing) {
    const char *why = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    log_emit(LOG_WARN, "webhook claim failed; it runs again at the next interval",
             json_pack("{s:i, s:s?}", "error", err, "message", why));
  }
  if (err == 0 && w->claim_failing)
    log_emit(LOG_INFO, "webhook claims work again", NULL);
  if (err != -ECANCELED)
    w->claim_failing = err != 0;
  /* A full claim: there may be more due at once. */
  if (!w->closing && n > 0 && (unsigned)n >= w->cfg.batch && w->in_flight < w->cfg.max_in_flight)
    webhook__claim(w);
  webhook__maybe_free(w);
}

static void webhook__claim(webhook_t *w) {
  if (w->claiming || w->closing || w->in_flight >= w->cfg.max_in_flight)
    return;
  unsigned room = w->cfg.max_in_flight - w->in_flight;
  char limit[16], lease[24];
  snprintf(limit, sizeof(limit), "%u", room < w->cfg.batch ? room : w->cfg.batch);
  snprintf(lease, sizeof(lease), "%" PRIu64, webhook__lease_ms(w));
  const char *params[2] = {limit, lease};
  if (pg_pool_exec(w->pool, &webhook__claim_stmt, params, webhook__on_claimed, w) == 0) {
    w->claiming = true;
    w->db_calls++;
  }
}

static void webhook__on_backlog(void *data, int err, PGresult *res) {
  webhook_t *w = data;
  w->backlog_in_flight = false;
  w->db_calls--;
  if (err == 0 && PQntuples(res) == 1) {
    w->stats.backlog = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    w->stats.oldest_pending_age_s = strtod(PQgetvalue(res, 0, 1), NULL);
    w->stats.backlog_measured = true;
  }
  webhook__maybe_free(w);
}

/* Count the pending deliveries through the pool, never on a scrape. */
static void webhook__backlog(webhook_t *w) {
  static const char *none[1] = {NULL};
  uint64_t now = uv_now(w->loop);
  if (w->backlog_in_flight || w->closing ||
      (w->backlog_at != 0 && now - w->backlog_at < WEBHOOK_BACKLOG_EVERY_MS))
    return;
  if (pg_pool_exec(w->pool, &webhook__backlog_stmt, none, webhook__on_backlog, w) == 0) {
    w->backlog_at = now;
    w->backlog_in_flight = true;
    w->db_calls++;
  }
}

static void webhook__on_timer(uv_timer_t *t) {
  webhook_t *w = container_of(t, webhook_t, timer);
  webhook__backlog(w);
  webhook__claim(w);
}

static bool webhook__addr_allowed(const struct sockaddr *sa, void *data) {
  return netpolicy_allows((const netpolicy_t *)data, sa);
}

static void webhook__on_timer_closed(uv_handle_t *h) {
  webhook_t *w = container_of((uv_timer_t *)h, webhook_t, timer);
  w->timer_closed = true;
  webhook__maybe_free(w);
}

static void webhook__on_client_closed(void *data) {
  webhook_t *w = data;
  w->client_closed = true;
  webhook__maybe_free(w);
}

int webhook_new(uv_loop_t *loop, pg_pool_t *pool, const webhook_config_t *cfg, webhook_t **out) {
  webhook_t *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return -ENOMEM;
  w->loop = loop;
  w->pool = pool;
  w->cfg = *cfg;
  if (w->cfg.batch == 0)
    w->cfg.batch = 1;
  if (w->cfg.max_in_flight == 0)
    w->cfg.max_in_flight = 1;
  http_client_config_t hc = {
    .connect_timeout_ms = cfg->connect_timeout_ms,
    .total_timeout_ms = cfg->timeout_ms,
    .max_response_bytes = cfg->max_response_bytes,
    .protocols = cfg->allow_loopback ? "http,https" : "https",
    .user_agent = "kipd-webhooks",
    .addr_allowed = webhook__addr_allowed,
    .addr_data = (void *)cfg->net,
  };
  int rc = http_client_new(loop, &hc, &w->client);
  if (rc != 0)
    goto fail_client;
  rc = uv_timer_init(loop, &w->timer);
  if (rc != 0)
    goto fail_timer;
  if (cfg->poll_interval_ms > 0 &&
      (rc = uv_timer_start(&w->timer, webhook__on_timer, cfg->poll_interval_ms, cfg->poll_interval_ms)) != 0) {
    w->closing = true;
    uv_close((uv_handle_t *)&w->timer, webhook__on_timer_closed);
    http_client_close(w->client, webhook__on_client_closed, w);
    return rc;
  }
  *out = w;
  return 0;

fail_timer:
  w->closing = true;
  w->timer_closed = true;
  http_client_close(w->client, webhook__on_client_closed, w);
  return rc;
fail_client:
  free(w);
  return rc;
}

void webhook_close(webhook_t *w, void (*cb)(void *data), void *data) {
  w->closing = true;
  w->closed_cb = cb;
  w->closed_data = data;
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, webhook__on_timer_closed);
  http_client_close(w->client, webhook__on_client_closed, w);
}

void webhook_stats(const webhook_t *w, webhook_stats_t *out) {
  *out = w->stats;
}
