#include "app/metrics.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "app/daily.h"
#include "app/events.h"
#include "app/internal.h"
#include "app/sealer.h"
#include "app/webhook.h"
#include "kipd-build.h"
#include "util/crypto.h"
#include "util/histogram.h"

/* Statuses seen per route: a handful each; beyond this many distinct ones
 * the rest are counted as status="other". */
#define METRICS_STATUSES 16

/* route="other" is kept per method among these, the last for any other. */
static const char *const metrics__methods[] = {"GET",    "HEAD",  "POST",    "PUT",
                                               "PATCH",  "DELETE", "OPTIONS", "other"};
#define METRICS_NMETHODS (sizeof(metrics__methods) / sizeof(metrics__methods[0]))

typedef struct metrics_series_s {
  hist_t hist;
  int status[METRICS_STATUSES];
  uint64_t count[METRICS_STATUSES];
  uint64_t other_status;
} metrics_series_t;

struct metrics_s {
  size_t n_routes;
  metrics_series_t *series;  /* n_routes, then METRICS_NMETHODS for route="other" */
};

metrics_t *metrics_new(size_t n_routes) {
  metrics_t *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return NULL;
  m->n_routes = n_routes;
  m->series = calloc(n_routes + METRICS_NMETHODS, sizeof(*m->series));
  if (m->series == NULL) {
    free(m);
    return NULL;
  }
  return m;
}

void metrics_free(metrics_t *m) {
  if (m == NULL)
    return;
  free(m->series);
  free(m);
}

void metrics_observe(metrics_t *m, long route, const char *method, int status, uint64_t ns) {
  if (m == NULL)
    return;
  metrics_series_t *s;
  if (route >= 0 && (size_t)route < m->n_routes) {
    s = &m->series[route];
  } else {
    size_t k = METRICS_NMETHODS - 1;
    for (size_t i = 0; method != NULL && i + 1 < METRICS_NMETHODS; i++)
      if (strcmp(method, metrics__methods[i]) == 0)
        k = i;
    s = &m->series[m->n_routes + k];
  }
  hist_observe(&s->hist, ns);
  for (size_t i = 0; i < METRICS_STATUSES; i++) {
    if (s->status[i] == status) {
      s->count[i]++;
      return;
    }
    if (s->status[i] == 0) {
      s->status[i] = status;
      s->count[i] = 1;
      return;
    }
  }
  s->other_status++;
}

static bool metrics__is_loopback(const char *addr) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, addr, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, addr, &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6))
      return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
  }
  return false;
}

/* The flags --metrics-loopback-only and --metrics-token. Replies and
 * returns false when the scrape is not allowed. With --metrics-loopback-only
 * both the socket's peer and the client a trusted proxy names in
 * X-Forwarded-For (r->client_addr) must be loopback: a reverse proxy on the
 * same host connects from loopback, but the client it forwards need not. */
static bool metrics__allowed(kreq_t *r) {
  const app_config_t *cfg = &r->app->cfg;
  if (cfg->metrics_loopback_only &&
      (!metrics__is_loopback(r->http->remote_addr) ||
       (r->client_addr != NULL && !metrics__is_loopback(r->client_addr)))) {
    kreq_problem_code(r, 403, "the metrics are served to loopback clients only", "forbidden", "client",
                      "must connect from a loopback address");
    return false;
  }
  if (cfg->metrics_token == NULL || cfg->metrics_token[0] == '\0')
    return true;
  const char *auth = http_request_header(r->http, "authorization");
  if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
    kreq_problem(r, 401, "send Authorization: Bearer <metrics token>", NULL, NULL);
    return false;
  }
  const char *tok = auth + 7;
  while (*tok == ' ')
    tok++;
  /* Hashes of equal length, compared in constant time. */
  char want[65], got[65];
  if (crypto_sha256_hex(cfg->metrics_token, strlen(cfg->metrics_token), want) != 0 ||
      crypto_sha256_hex(tok, strlen(tok), got) != 0) {
    kreq_problem(r, 500, "hashing failed", NULL, NULL);
    return false;
  }
  if (!crypto_equal(want, got, 64)) {
    kreq_problem_code(r, 403, "the metrics token is not the one configured", "forbidden", "Authorization",
                      "is not the metrics token");
    return false;
  }
  return true;
}

static void metrics__head(hist_buf_t *b, const char *name, const char *type, const char *help) {
  hist_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics__one(hist_buf_t *b, const char *name, const char *type, const char *help,
                         unsigned long long v) {
  metrics__head(b, name, type, help);
  hist_buf_printf(b, "%s %llu\n", name, v);
}

static void metrics__series_labels(const metrics_t *m, const route_t *routes, size_t i, char *out,
                                   size_t n) {
  char route[256];
  const char *method;
  if (i < m->n_routes) {
    hist_escape_label(routes[i].pattern, route, sizeof(route));
    method = routes[i].method;
  } else {
    strcpy(route, "other");
    method = metrics__methods[i - m->n_routes];
  }
  snprintf(out, n, "route=\"%s\",method=\"%s\"", route, method);
}

static void metrics__http(hist_buf_t *b, const app_t *app) {
  const metrics_t *m = app->metrics;
  if (m == NULL)
    return;
  size_t total = m->n_routes + METRICS_NMETHODS;
  char labels[320];
  metrics__head(b, "kipd_http_requests_total", "counter",
                "HTTP requests answered, by route template, method and status.");
  for (size_t i = 0; i < total; i++) {
    const metrics_series_t *s = &m->series[i];
    if (s->hist.count == 0)
      continue;
    metrics__series_labels(m, app->routes, i, labels, sizeof(labels));
    for (size_t k = 0; k < METRICS_STATUSES && s->status[k] != 0; k++)
      hist_buf_printf(b, "kipd_http_requests_total{%s,status=\"%d\"} %llu\n", labels, s->status[k],
                  (unsigned long long)s->count[k]);
    if (s->other_status > 0)
      hist_buf_printf(b, "kipd_http_requests_total{%s,status=\"other\"} %llu\n", labels,
                  (unsigned long long)s->other_status);
  }
  metrics__head(b, "kipd_http_request_duration_seconds", "histogram",
                "Time from the complete request to the response, by route template and method.");
  for (size_t i = 0; i < total; i++) {
    if (m->series[i].hist.count == 0)
      continue;
    metrics__series_labels(m, app->routes, i, labels, sizeof(labels));
    hist_write(b, "kipd_http_request_duration_seconds", labels, &m->series[i].hist);
  }
}

typedef struct metrics_stmt_ctx_s {
  hist_buf_t *b;
  bool errors;
} metrics_stmt_ctx_t;

static void metrics__stmt(const pg_stmt_stat_t *s, void *data) {
  metrics_stmt_ctx_t *c = data;
  char name[160], labels[192];
  hist_escape_label(s->name, name, sizeof(name));
  snprintf(labels, sizeof(labels), "statement=\"%s\"", name);
  if (c->errors)
    hist_buf_printf(c->b, "kipd_db_statement_errors_total{%s} %llu\n", labels,
                (unsigned long long)s->errors);
  else
    hist_write(c->b, "kipd_db_statement_duration_seconds", labels, &s->hist);
}

static void metrics__db(hist_buf_t *b, const app_t *app) {
  pg_pool_stats_t ps = {0};
  pg_pool_stats(app->pool, &ps);
  metrics__one(b, "kipd_db_pool_connections_up", "gauge", "Database connections that are up.",
               ps.connections_up);
  metrics__one(b, "kipd_db_pool_connections_busy", "gauge",
               "Database connections in use (running a query or held).", ps.connections_busy);
  metrics__one(b, "kipd_db_pool_connections_idle", "gauge", "Database connections up and idle.",
               ps.connections_up - (ps.connections_busy < ps.connections_up ? ps.connections_busy
                                                                            : ps.connections_up));
  metrics__one(b, "kipd_db_pool_queue_length", "gauge", "Requests waiting for a connection.",
               ps.queue_length);
  metrics__one(b, "kipd_db_queries_total", "counter", "Queries sent.", ps.queries_total);
  metrics__one(b, "kipd_db_queue_full_total", "counter",
               "Requests refused because the queue was full.", ps.queue_full_total);
  metrics__one(b, "kipd_db_reconnects_total", "counter", "Database reconnections.",
               ps.reconnects_total);
  metrics__one(b, "kipd_db_statement_errors_all_total", "counter",
               "Statements answered with an error, all statements.", ps.errors_total);
  metrics_stmt_ctx_t c = {b, false};
  metrics__head(b, "kipd_db_statement_duration_seconds", "histogram",
                "Time per named statement, from the send of its pipeline to its result.");
  pg_pool_stmt_stats(app->pool, metrics__stmt, &c);
  c.errors = true;
  metrics__head(b, "kipd_db_statement_errors_total", "counter",
                "Statements answered with an error, by statement name.");
  pg_pool_stmt_stats(app->pool, metrics__stmt, &c);
}

static void metrics__server(hist_buf_t *b, const app_t *app) {
  http_server_stats_t hs = {0};
  if (app->server != NULL)
    http_server_stats(app->server, &hs);
  metrics__one(b, "kipd_http_requests_received_total", "counter",
               "HTTP requests received (all routes; was kipd_http_requests_total without labels).",
               hs.requests_total);
  metrics__one(b, "kipd_http_requests_in_flight", "gauge", "Requests being handled.",
               hs.requests_in_flight);
  metrics__one(b, "kipd_http_connections_open", "gauge", "Open HTTP connections.",
               hs.connections_open);
  metrics__one(b, "kipd_http_connections_total", "counter", "HTTP connections accepted.",
               hs.connections_total);
  metrics__one(b, "kipd_http_connections_refused_total", "counter",
               "Connections refused over the limit.", hs.connections_refused);
}

static void metrics__jobs(hist_buf_t *b, const app_t *app) {
  if (app->daily != NULL) {
    daily_stats_t d;
    daily_stats(app->daily, &d);
    metrics__head(b, "kipd_daily_last_run_timestamp_seconds", "gauge",
                  "When the last daily pass finished (Unix time; 0: not yet).");
    hist_buf_printf(b, "kipd_daily_last_run_timestamp_seconds %.3f\n", d.last_end_unix_ms / 1e3);
    metrics__head(b, "kipd_daily_last_run_duration_seconds", "gauge",
                  "How long the last daily pass took.");
    hist_buf_printf(b, "kipd_daily_last_run_duration_seconds %.6f\n", d.last_duration_ns / 1e9);
    metrics__one(b, "kipd_daily_runs_total", "counter", "Daily passes finished.", d.runs_total);
    metrics__one(b, "kipd_daily_failures_total", "counter", "Daily passes that failed.",
                 d.failures_total);
  }
  if (app->sealer != NULL) {
    sealer_stats_t s;
    sealer_stats(app->sealer, &s);
    metrics__one(b, "kipd_audit_unsealed_rows", "gauge",
                 "Audit rows not yet sealed, as of the sealer's last run.", s.unsealed_rows);
    metrics__head(b, "kipd_audit_oldest_unsealed_age_seconds", "gauge",
                  "Age of the oldest audit row not yet sealed at the sealer's last run (0: none).");
    hist_buf_printf(b, "kipd_audit_oldest_unsealed_age_seconds %.3f\n", s.oldest_unsealed_age_s);
    metrics__head(b, "kipd_audit_sealer_last_run_timestamp_seconds", "gauge",
                  "When the sealer last ran successfully (Unix time; 0: not yet).");
    hist_buf_printf(b, "kipd_audit_sealer_last_run_timestamp_seconds %.3f\n", s.last_run_unix_ms / 1e3);
    metrics__one(b, "kipd_audit_sealer_failures_total", "counter", "Sealer runs that failed.",
                 s.failures_total);
  }
  const events_t *ev = app->events;
  metrics__one(b, "kipd_event_streams_open", "gauge", "Open GET /v1/events streams.",
               ev != NULL ? events_streams(ev) : 0u);
  metrics__one(b, "kipd_event_listener_up", "gauge",
               "1 while the LISTEN kip_events connection listens.",
               ev != NULL && events_listening(ev) ? 1u : 0u);
  metrics__one(b, "kipd_event_listener_reconnects_total", "counter",
               "Reconnections of the LISTEN connection.",
               ev != NULL ? (unsigned long long)events_reconnects(ev) : 0ull);
  if (app->webhook != NULL) {
    webhook_stats_t w;
    webhook_stats(app->webhook, &w);
    metrics__one(b, "kipd_webhook_deliveries_sent_total", "counter",
                 "Webhook deliveries the receiver accepted (2xx).", w.sent_total);
    metrics__one(b, "kipd_webhook_deliveries_failed_total", "counter",
                 "Webhook delivery attempts that failed (error or non-2xx).", w.failed_total);
    if (w.backlog_measured) {
      metrics__one(b, "kipd_webhook_backlog", "gauge",
                   "Webhook deliveries pending, counted every 10 s by the delivery worker.", w.backlog);
      metrics__head(b, "kipd_webhook_oldest_pending_age_seconds", "gauge",
                    "Age of the oldest pending webhook delivery at the last count (0: none).");
      hist_buf_printf(b, "kipd_webhook_oldest_pending_age_seconds %.3f\n", w.oldest_pending_age_s);
    }
  }
}

void metrics_page(kreq_t *r) {
  if (!metrics__allowed(r))
    return;
  const app_t *app = r->app;
  hist_buf_t b = {0};
  metrics__head(&b, "kipd_build_info", "gauge", "The version and commit of this kipd, always 1.");
  hist_buf_printf(&b, "kipd_build_info{version=\"%s\",git=\"%s\"} 1\n", KIPD_VERSION, KIPD_GIT);
  metrics__http(&b, app);
  metrics__server(&b, app);
  metrics__db(&b, app);
  metrics__jobs(&b, app);
  if (b.failed) {
    hist_buf_free(&b);
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  kreq_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL, 0);
  hist_buf_free(&b);
}
