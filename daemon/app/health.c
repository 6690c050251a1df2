#include "app/health.h"

#include "app/events.h"
#include "app/internal.h"

#include <stdio.h>
#include <string.h>

/* The ping also says whether the serving role can only append to the audit
 * log (schema/functions/02_audit.sql): false when kipd runs without --db-owner. */
static const pg_stmt_t health__ping = {"health_ping", "SELECT kip.audit_append_only()", 0};

void health_live(kreq_t *r) {
  kreq_reply_json(r, 200, json_pack("{s:s}", "status", "ok"), NULL, 0);
}

static void health__on_ping(kreq_t *r, const kreq_row_t *row) {
  bool append_only = kreq_row_bool(row, 0);
  kreq_reply_json(r, 200, json_pack("{s:s, s:{s:b}}", "status", "ready", "audit", "append_only",
                                    append_only), NULL, 0);
}

void health_ready(kreq_t *r) {
  static const char *none[1] = {NULL};
  kreq_exec(r, &health__ping, none, 200, health__on_ping);
}

void health_metrics(kreq_t *r) {
  http_server_stats_t hs = {0};
  pg_pool_stats_t ps = {0};
  if (app_server(r->app) != NULL)
    http_server_stats(app_server(r->app), &hs);
  pg_pool_stats(app_pool(r->app), &ps);
  char *text = arena_sprintf(&r->http->arena,
    "# HELP kipd_http_requests_total HTTP requests received.\n"
    "# TYPE kipd_http_requests_total counter\n"
    "kipd_http_requests_total %llu\n"
    "# HELP kipd_http_requests_in_flight Requests being handled.\n"
    "# TYPE kipd_http_requests_in_flight gauge\n"
    "kipd_http_requests_in_flight %llu\n"
    "# HELP kipd_http_connections_open Open HTTP connections.\n"
    "# TYPE kipd_http_connections_open gauge\n"
    "kipd_http_connections_open %llu\n"
    "# HELP kipd_http_connections_total HTTP connections accepted.\n"
    "# TYPE kipd_http_connections_total counter\n"
    "kipd_http_connections_total %llu\n"
    "# HELP kipd_http_connections_refused_total Connections refused over the limit.\n"
    "# TYPE kipd_http_connections_refused_total counter\n"
    "kipd_http_connections_refused_total %llu\n"
    "# HELP kipd_db_pool_connections_up Database connections that are up.\n"
    "# TYPE kipd_db_pool_connections_up gauge\n"
    "kipd_db_pool_connections_up %u\n"
    "# HELP kipd_db_pool_connections_busy Database connections running a query.\n"
    "# TYPE kipd_db_pool_connections_busy gauge\n"
    "kipd_db_pool_connections_busy %u\n"
    "# HELP kipd_db_pool_queue_length Requests waiting for a connection.\n"
    "# TYPE kipd_db_pool_queue_length gauge\n"
    "kipd_db_pool_queue_length %u\n"
    "# HELP kipd_db_queries_total Queries sent.\n"
    "# TYPE kipd_db_queries_total counter\n"
    "kipd_db_queries_total %llu\n"
    "# HELP kipd_db_queue_full_total Requests refused because the queue was full.\n"
    "# TYPE kipd_db_queue_full_total counter\n"
    "kipd_db_queue_full_total %llu\n"
    "# HELP kipd_db_reconnects_total Database reconnections.\n"
    "# TYPE kipd_db_reconnects_total counter\n"
    "kipd_db_reconnects_total %llu\n",
    (unsigned long long)hs.requests_total, (unsigned long long)hs.requests_in_flight,
    (unsigned long long)hs.connections_open, (unsigned long long)hs.connections_total,
    (unsigned long long)hs.connections_refused, ps.connections_up, ps.connections_busy,
    ps.queue_length, (unsigned long long)ps.queries_total, (unsigned long long)ps.queue_full_total,
    (unsigned long long)ps.reconnects_total);
  const events_t *ev = r->app->events;
  char *streams = arena_sprintf(&r->http->arena,
    "# HELP kipd_event_streams_open Open GET /v1/events streams.\n"
    "# TYPE kipd_event_streams_open gauge\n"
    "kipd_event_streams_open %u\n"
    "# HELP kipd_event_listener_up 1 while the LISTEN kip_events connection listens.\n"
    "# TYPE kipd_event_listener_up gauge\n"
    "kipd_event_listener_up %d\n"
    "# HELP kipd_event_listener_reconnects_total Reconnections of the LISTEN connection.\n"
    "# TYPE kipd_event_listener_reconnects_total counter\n"
    "kipd_event_listener_reconnects_total %llu\n",
    ev != NULL ? events_streams(ev) : 0u, ev != NULL && events_listening(ev) ? 1 : 0,
    ev != NULL ? (unsigned long long)events_reconnects(ev) : 0ull);
  if (text != NULL && streams != NULL)
    text = arena_sprintf(&r->http->arena, "%s%s", text, streams);
  kreq_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text), NULL, 0);
}
