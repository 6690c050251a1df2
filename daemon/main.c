/* kipd: parse the configuration, build the objects, run the loop.
 *
 * Start-up is one state machine with one dispatcher, kipd_on_event(), like
 * the connection and pool objects:
 *
 *   STARTUP_CLUSTER → STARTUP_POOL → STARTUP_MIGRATE → STARTUP_KEYS →
 *   STARTUP_ADMIN → STARTUP_LISTEN → RUNNING → STOPPING
 *
 * Each state starts its work on KIPD_EV_ENTER and moves on at KIPD_EV_DONE;
 * KIPD_EV_FAILED (exit 1) and KIPD_EV_SIGNAL (SIGTERM or SIGINT, exit 0)
 * lead from any state to STOPPING, which runs the shutdown the other way:
 * stop accepting and finish in-flight requests, stop the timers, close the
 * pool, stop the cluster, close the signal handles. --migrate-only and
 * --rotate-key stop (exit 0) after their state's work.
 *
 * --backup and --restore (db/backup.h) run outside the state machine,
 * blocking, before any loop serves: kipd_backup() and kipd_restore().
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "api/api.h"
#include "api/print_routes.h"
#include "app/access_log.h"
#include "app/admin_token.h"
#include "app/app.h"
#include "app/cpr_store.h"
#include "app/daily.h"
#include "app/events.h"
#include "app/roles.h"
#include "app/sealer.h"
#include "app/verifier.h"
#include "app/webhook.h"
#include "db/backup.h"
#include "db/cluster.h"
#include "db/datalock.h"
#include "db/migrate.h"
#include "db/pg_pool.h"
#include "http/client.h"
#include "http/server.h"
#include "util/config.h"
#include "util/log.h"
#include "util/netpolicy.h"
#include "util/notify.h"

typedef enum kipd_state_e {
  KIPD_STARTUP_CLUSTER,  /* the embedded PostgreSQL (with --db: only the conninfo) */
  KIPD_STARTUP_POOL,     /* the runtime role's pool, and the owner's for the migrations */
  KIPD_STARTUP_MIGRATE,  /* the migrations as the owner */
  KIPD_STARTUP_KEYS,     /* the CPR keys against the database (or --rotate-key), the table
                          * rewrite as the owner; then the owner's pool is closed */
  KIPD_STARTUP_ADMIN,    /* the bootstrap admin and its token file */
  KIPD_STARTUP_LISTEN,   /* the app, the HTTP listener, the daily pass and the sealer */
  KIPD_RUNNING,
  KIPD_STOPPING,
} kipd_state_t;

typedef enum kipd_event_e {
  KIPD_EV_ENTER,   /* the state was entered: start its work */
  KIPD_EV_DONE,    /* the state's work is done */
  KIPD_EV_FAILED,  /* it failed (already logged): stop with exit code 1 */
  KIPD_EV_SIGNAL,  /* SIGTERM or SIGINT: stop with exit code 0 */
} kipd_event_t;

typedef struct kipd_s {
  kipd_state_t state;
  uv_loop_t *loop;
  kipd_config_t cfg;          /* as parsed */
  http_limits_t http_limits;  /* each layer's part of it */
  pg_pool_config_t pool_cfg;
  app_config_t app_cfg;
  char *conninfo;             /* the runtime role's */
  char *owner_conninfo;       /* the owner's, when it differs; NULL otherwise */
  cluster_t *cluster;
  pg_pool_t *pool;            /* the runtime role: serves every request */
  pg_pool_t *owner_pool;      /* the owner role: migrations and the CPR table rewrite, closed after */
  bool owner_closing;
  pg_pool_t *owner_pool_closed;
  api_t *api;                 /* the API layer's state (the calendar's time zone) */
  app_t *app;
  http_server_t *server;
  daily_t *daily;
  events_t *events;           /* GET /v1/events: the streams and their LISTEN connection */
  sealer_t *sealer;
  verifier_t *verifier;
  webhook_t *webhook;         /* the webhook delivery worker */
  netpolicy_t *webhook_net;   /* the addresses webhooks may reach */
  route_t *routes;
  size_t n_routes;
  cpr_keyring_t *keyring;     /* CPR keys: from the key file, or created at first start */
  uv_signal_t sigterm;
  uv_signal_t sigint;
  int exit_code;
} kipd_t;

static void kipd_on_event(kipd_t *k, kipd_event_t ev);

static void kipd_enter(kipd_t *k, kipd_state_t state) {
  k->state = state;
  kipd_on_event(k, KIPD_EV_ENTER);
}

/* ---- STOPPING: the shutdown, in order ---- */

static void kipd_on_signal_closed(uv_handle_t *h) { (void)h; }

static void kipd_close_signals(kipd_t *k) {
  uv_close((uv_handle_t *)&k->sigterm, kipd_on_signal_closed);
  uv_close((uv_handle_t *)&k->sigint, kipd_on_signal_closed);
}

static void kipd_on_cluster_stopped(cluster_t *c, void *data) {
  kipd_t *k = data;
  log_infof("embedded PostgreSQL stopped");
  kipd_close_signals(k);
}

static void kipd_on_pool_closed(pg_pool_t *pool, void *data) {
  kipd_t *k = data;
  if (k->cluster != NULL) {
    cluster_stop(k->cluster, kipd_on_cluster_stopped, k);
    return;
  }
  kipd_close_signals(k);
}

/* What uses the pool stops first: the event streams' hub (its streams were
 * ended by the server's shutdown), the webhook worker, the daily pass, then
 * the sealer and the verifier. */
static void kipd_close_timers(void *data) {
  kipd_t *k = data;
  if (k->app != NULL)
    app_set_jobs(k->app, NULL, NULL, NULL);  /* /metrics stops reading them */
  if (k->events != NULL) {
    events_t *e = k->events;
    k->events = NULL;
    if (k->daily != NULL)
      daily_set_events(k->daily, NULL);  /* a pass ending later must not tell a freed hub */
    if (k->app != NULL)
      events_attach(NULL, k->app);       /* nor a late reply */
    events_close(e, kipd_close_timers, k);
    return;
  }
  if (k->webhook != NULL) {
    webhook_t *w = k->webhook;
    k->webhook = NULL;
    webhook_close(w, kipd_close_timers, k);
    return;
  }
  if (k->daily != NULL) {
    daily_t *d = k->daily;
    k->daily = NULL;
    daily_close(d, kipd_close_timers, k);
    return;
  }
  if (k->sealer != NULL) {
    sealer_t *s = k->sealer;
    k->sealer = NULL;
    sealer_close(s, kipd_close_timers, k);
    return;
  }
  if (k->verifier != NULL) {
    verifier_t *v = k->verifier;
    k->verifier = NULL;
    verifier_close(v, kipd_close_timers, k);
    return;
  }
  pg_pool_close(k->pool, kipd_on_pool_closed, k);
}

static void kipd_on_server_closed(http_server_t *server, void *data) {
  log_infof("HTTP server closed");
  kipd_close_timers(data);
}

/* Everything after the owner's pool. */
static void kipd_stop_rest(kipd_t *k) {
  if (k->server != NULL)
    http_server_shutdown(k->server, k->cfg.shutdown_grace_ms, kipd_on_server_closed, k);
  else if (k->pool != NULL)
    pg_pool_close(k->pool, kipd_on_pool_closed, k);
  else if (k->cluster != NULL)
    cluster_stop(k->cluster, kipd_on_cluster_stopped, k);
  else
    kipd_close_signals(k);
}

static void kipd_on_owner_pool_closed(pg_pool_t *pool, void *data) {
  kipd_t *k = data;
  k->owner_pool_closed = pool;  /* freed after the loop, never inside its own callback */
  k->owner_pool = NULL;
  k->owner_closing = false;
  if (k->state == KIPD_STOPPING)
    kipd_stop_rest(k);
  else
    kipd_on_event(k, KIPD_EV_DONE);  /* STARTUP_MIGRATE (--rotate-key) or STARTUP_KEYS is over */
}

static void kipd_stop(kipd_t *k, int exit_code) {
  if (k->state == KIPD_STOPPING)
    return;
  k->state = KIPD_STOPPING;
  k->exit_code = exit_code;
  notify_stopping();  /* systemd: STOPPING=1 */
  if (k->owner_pool != NULL) {
    /* The owner's pool is closed first (also mid-migration). */
    if (!k->owner_closing) {
      k->owner_closing = true;
      pg_pool_close(k->owner_pool, kipd_on_owner_pool_closed, k);
    }
    return;
  }
  kipd_stop_rest(k);
}

static void kipd_on_signal(uv_signal_t *sig, int signum) {
  kipd_t *k = sig->data;
  log_emit(LOG_INFO, "shutting down", json_pack("{s:s}", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"));
  kipd_on_event(k, KIPD_EV_SIGNAL);
}

/* ---- STARTUP_CLUSTER ---- */

static void kipd_on_cluster_restarted(cluster_t *c, void *data) {
  kipd_t *k = data;
  log_warnf("embedded PostgreSQL was restarted; reconnecting");
  if (k->pool != NULL)
    pg_pool_reconnect(k->pool);
  if (k->owner_pool != NULL)
    pg_pool_reconnect(k->owner_pool);
}

/* The embedded cluster (it blocks while initdb runs: start-up, before the
 * loop serves anyone), or the external database's conninfo. */
static int kipd_start_cluster(kipd_t *k) {
  if (k->cfg.db_url != NULL) {
    k->conninfo = strdup(k->cfg.db_url);
    if (k->cfg.db_owner_url != NULL)
      k->owner_conninfo = strdup(k->cfg.db_owner_url);
    else
      log_emit(LOG_WARN, "the audit trail is not append-only: without --db-owner the runtime role "
               "runs the migrations and owns the tables, so it can change audit rows",
               json_pack("{s:b, s:s}", "audit_append_only", 0, "fix",
                         "give --db-owner (the owner role) and --db a role in kipd_runtime (docs/deploy.md)"));
    return 0;
  }
  cluster_config_t cc = {
    .data_dir = k->cfg.data_dir,
    .pg_bindir = k->cfg.pg_bindir,
    .pg_user = k->cfg.pg_user,
    .db_name = "kipd",
    .setup_sql = roles_embedded_setup_sql,
    .nosync = k->cfg.pg_nosync,
  };
  char err[512] = "";
  log_emit(LOG_INFO, "starting embedded PostgreSQL", json_pack("{s:s}", "data_dir", k->cfg.data_dir));
  int rc = cluster_start(k->loop, &cc, kipd_on_cluster_restarted, k, 120000, &k->cluster, err, sizeof(err));
  if (rc != 0) {
    log_emit(LOG_ERROR, "cannot start the embedded PostgreSQL", json_pack("{s:s}", "error", err));
    k->cluster = NULL;
    return rc;
  }
  char runtime[PATH_MAX * 2 + 128], owner[PATH_MAX * 2 + 128];
  if (cluster_conninfo_as(k->cluster, ROLES_EMBEDDED_RUNTIME, runtime, sizeof(runtime)) != 0 ||
      cluster_conninfo_as(k->cluster, ROLES_EMBEDDED_OWNER, owner, sizeof(owner)) != 0) {
    log_emit(LOG_ERROR, "data directory path too long", NULL);
    return -ENAMETOOLONG;
  }
  k->conninfo = strdup(runtime);
  k->owner_conninfo = strdup(owner);
  return 0;
}

/* ---- STARTUP_POOL ---- */

static int kipd_start_pools(kipd_t *k) {
  /* The cluster's start blocked the loop for seconds (initdb): timers set
   * from now on (the connect timeouts) must not start from a stale clock. */
  uv_update_time(k->loop);
  k->pool_cfg.conninfo = k->conninfo;
  int rc = pg_pool_new(k->loop, &k->pool_cfg, &k->pool);
  if (rc == 0 && k->owner_conninfo != NULL) {
    pg_pool_config_t oc = k->pool_cfg;
    oc.conninfo = k->owner_conninfo;
    oc.size = 1;
    rc = pg_pool_new(k->loop, &oc, &k->owner_pool);
  }
  if (rc != 0)
    log_emit(LOG_ERROR, "cannot create the database pool", json_pack("{s:i}", "error", rc));
  return rc;
}

/* ---- STARTUP_MIGRATE ---- */

static void kipd_on_migrated(void *data, int err, int applied, const char *message) {
  kipd_t *k = data;
  if (err != 0) {
    pg_pool_t *mp = k->owner_pool != NULL ? k->owner_pool : k->pool;
    const char *why = mp != NULL ? pg_pool_last_error(mp) : "";
    log_emit(LOG_ERROR, "migration failed", json_pack("{s:s, s:s?}", "error", message ? message : "unknown",
                                                      "database", why[0] ? why : NULL));
    kipd_on_event(k, KIPD_EV_FAILED);
    return;
  }
  log_emit(LOG_INFO, "migrations applied", json_pack("{s:i}", "applied", applied));
  if (k->cfg.migrate_only) {
    kipd_stop(k, 0);
    return;
  }
  /* The owner's pool stays open for the CPR table rewrite (STARTUP_KEYS).
   * --rotate-key does not rewrite (the next start does), and must not keep
   * a connection of its own that looks like a running kipd. */
  if (k->cfg.rotate_key && k->owner_pool != NULL) {
    k->owner_closing = true;
    pg_pool_close(k->owner_pool, kipd_on_owner_pool_closed, k);
    return;
  }
  kipd_on_event(k, KIPD_EV_DONE);
}

/* The migrations run as the owner role (on the runtime pool when there is
 * no owner role, --db without --db-owner). */
static int kipd_migrate(kipd_t *k) {
  /* The schemas whose functions, views and triggers schema/functions/ defines. */
  static const char *const code_schemas[] = {"kip", "kip_api", NULL};
  int rc = migrate_run(k->owner_pool != NULL ? k->owner_pool : k->pool, k->cfg.schema_dir, code_schemas,
                       kipd_on_migrated, k);
  if (rc != 0)
    log_emit(LOG_ERROR, "cannot read migrations", json_pack("{s:s}", "schema_dir", k->cfg.schema_dir));
  return rc;
}

/* ---- STARTUP_KEYS ---- */

/* What the CPR step did to the tables, for the log. */
static void kipd_log_cpr_rewrite(const cpr_store_result_t *r) {
  if (r->rewritten)
    log_emit(LOG_INFO, "rewrote the CPR tables", json_pack("{s:s}", "tables", "kip.plans, kip.cpr_pending"));
  if (r->rewrite_problem != NULL)
    log_emit(LOG_WARN, "old row versions of the CPR tables are still on disk",
             json_pack("{s:s}", "error", r->rewrite_problem));
}

/* The owner's pool is closed once the CPR step is done: kipd serves as the
 * runtime role only (kipd_on_owner_pool_closed brings KIPD_EV_DONE). */
static void kipd_keys_done(kipd_t *k) {
  if (k->state == KIPD_STOPPING)
    return;  /* the stop closes the owner's pool itself */
  if (k->owner_pool != NULL) {
    k->owner_closing = true;
    pg_pool_close(k->owner_pool, kipd_on_owner_pool_closed, k);
    return;
  }
  kipd_on_event(k, KIPD_EV_DONE);
}

/* The CPR keys checked against the database, pending numbers sealed,
 * version 1 tokens re-sealed, the tables rewritten (app/cpr_store.h). */
static void kipd_on_cpr_ready(void *data, int err, const cpr_store_result_t *r, const char *message) {
  kipd_t *k = data;
  if (err != 0) {
    log_emit(LOG_ERROR, "refusing to start: the CPR keys do not fit the database",
             json_pack("{s:s, s:s}", "key_file", k->cfg.key_file, "error", message ? message : "unknown"));
    kipd_on_event(k, KIPD_EV_FAILED);
    return;
  }
  if (r->sealed > 0)
    log_emit(LOG_INFO, "sealed pending CPR numbers", json_pack("{s:i}", "count", (json_int_t)r->sealed));
  if (r->upgraded > 0)
    log_emit(LOG_INFO, "re-sealed CPR numbers bound to their plan",
             json_pack("{s:i}", "count", (json_int_t)r->upgraded));
  if (r->unopened > 0)
    log_emit(LOG_WARN, "CPR numbers that do not decrypt were left as they are; they read as null",
             json_pack("{s:i}", "count", (json_int_t)r->unopened));
  kipd_log_cpr_rewrite(r);
  kipd_keys_done(k);
}

static void kipd_on_rotated(void *data, int err, const cpr_store_result_t *r, const char *message) {
  kipd_t *k = data;
  if (err != 0) {
    log_emit(LOG_ERROR, "key rotation failed", json_pack("{s:s, s:s}", "key_file", k->cfg.key_file,
                                                         "error", message ? message : "unknown"));
    kipd_on_event(k, KIPD_EV_FAILED);
    return;
  }
  log_emit(LOG_INFO, "rotated the CPR key",
           json_pack("{s:s, s:s, s:i}", "key_file", k->cfg.key_file, "key_id",
                     cpr_keyring_current(k->keyring)->id, "resealed", (json_int_t)r->sealed));
  kipd_log_cpr_rewrite(r);
  kipd_stop(k, 0);
}

/* On the runtime role's pool: the keys checked and pending numbers sealed,
 * then, on the owner's, the tables rewritten when that was asked for; or,
 * with --rotate-key, everything re-encrypted (the next start rewrites). */
static int kipd_check_keys(kipd_t *k) {
  return k->cfg.rotate_key
             ? cpr_store_rotate(k->pool, k->cfg.key_file, k->keyring, kipd_on_rotated, k)
             : cpr_store_open(k->pool, k->owner_pool, k->cfg.key_file, &k->keyring, kipd_on_cpr_ready, k);
}

/* ---- STARTUP_ADMIN ---- */

static void kipd_on_admin(void *data, int err, bool created) {
  kipd_on_event(data, err != 0 ? KIPD_EV_FAILED : KIPD_EV_DONE);
}

/* ---- STARTUP_LISTEN ---- */

static int kipd_listen(kipd_t *k) {
  int rc = api_routes(&k->routes, &k->n_routes);
  if (rc != 0)
    return rc;
  /* The calendar's time zone is read from zoneinfo now, never on the loop. */
  rc = api_new(&k->api);
  if (rc != 0) {
    log_emit(LOG_ERROR, "cannot load the Europe/Copenhagen time zone", json_pack("{s:i}", "error", rc));
    return rc;
  }
  rc = app_new(&k->app_cfg, k->pool, k->routes, k->n_routes, &k->app);
  if (rc != 0)
    return rc;
  app_set_api(k->app, k->api);
  rc = http_server_new(k->loop, &k->http_limits, app_handle, k->app, &k->server);
  if (rc != 0)
    return rc;
  http_server_set_access_cb(k->server, access_log_request, k->app);
  /* One client cannot take every slot; trusted proxies carry many clients. */
  rc = http_server_set_peer_limit(k->server, k->cfg.max_connections_per_address,
                                  k->cfg.trusted_proxies);
  if (rc != 0)
    return rc;
  app_set_server(k->app, k->server);
  app_set_loop(k->app, k->loop);
  app_set_keyring(k->app, k->keyring);
  rc = http_server_listen(k->server, k->cfg.listen_host, k->cfg.listen_port);
  if (rc != 0) {
    log_emit(LOG_ERROR, "cannot listen", json_pack("{s:s, s:i, s:s}", "host", k->cfg.listen_host,
                                                   "port", k->cfg.listen_port, "error", uv_strerror(rc)));
    return rc;
  }
  if (http_server_max_connections(k->server) < k->http_limits.max_connections)
    log_emit(LOG_WARN, "max-connections lowered to fit the open file limit (RLIMIT_NOFILE)",
             json_pack("{s:i, s:i}", "max_connections", (int)http_server_max_connections(k->server),
                       "configured", (int)k->http_limits.max_connections));
  int port = http_server_port(k->server);
  bool v6 = strchr(k->cfg.listen_host, ':') != NULL;
  char url[256];
  snprintf(url, sizeof(url), v6 ? "http://[%s]:%d" : "http://%s:%d", k->cfg.listen_host, port);
  /* The daily pass: a first run soon after start-up, then every interval. */
  rc = daily_new(k->loop, k->pool, 2000, k->cfg.daily_pass_interval_s * 1000, &k->daily);
  if (rc != 0)
    return rc;
  rc = sealer_new(k->loop, k->pool, k->cfg.audit_seal_interval_ms, &k->sealer);
  if (rc != 0)
    return rc;
  /* The audit chain's verification jobs: looks for one every second. */
  rc = verifier_new(k->loop, k->pool, 1000, &k->verifier);
  if (rc != 0)
    return rc;
  /* Webhook delivery: libcurl's multi interface on this loop. */
  webhook_config_t wc = {
    .poll_interval_ms = k->cfg.webhook_poll_ms,
    .batch = 32,
    .max_in_flight = k->cfg.webhook_max_in_flight,
    .connect_timeout_ms = k->cfg.webhook_connect_timeout_ms,
    .timeout_ms = k->cfg.webhook_timeout_ms,
    .retry_base_ms = k->cfg.webhook_retry_base_ms,
    .retry_window_s = k->cfg.webhook_retry_window_s,
    .max_response_bytes = 4096,
    .allow_loopback = k->cfg.webhook_allow_loopback,
    .net = k->webhook_net,
  };
  rc = webhook_new(k->loop, k->pool, &wc, &k->webhook);
  if (rc != 0) {
    log_emit(LOG_ERROR, rc == -ENOTSUP ? "cannot deliver webhooks: libcurl has no asynchronous resolver (AsynchDNS)"
                                       : "cannot start the webhook worker",
             json_pack("{s:i}", "error", rc));
    return rc;
  }
  app_set_jobs(k->app, k->daily, k->sealer, k->webhook);  /* their getters feed /metrics */

  /* GET /v1/events: one LISTEN connection per kipd (app/events.c). */
  events_config_t ec = {
    .conninfo = k->conninfo,
    .heartbeat_ms = k->cfg.events_heartbeat_s * 1000,
    .connect_timeout_ms = k->pool_cfg.connect_timeout_ms,
    .backoff_min_ms = k->pool_cfg.backoff_min_ms,
    .backoff_max_ms = k->pool_cfg.backoff_max_ms,
  };
  rc = events_new(k->loop, k->pool, &ec, &k->events);
  if (rc != 0)
    return rc;
  events_attach(k->events, k->app);
  daily_set_events(k->daily, k->events);  /* a pass that wrote events tells the streams */
  log_emit(LOG_INFO, "listening", json_pack("{s:s, s:i, s:s}", "url", url, "port", port,
                                            "admin_token_file", k->cfg.admin_token_file));
  notify_ready(url);  /* systemd Type=notify: READY=1 (util/notify.h) */
  return 0;
}

/* ---- the dispatcher ---- */

/* A state's synchronous step: on to next, or stop. */
static void kipd_step(kipd_t *k, int rc, kipd_state_t next) {
  if (rc != 0)
    kipd_stop(k, 1);
  else
    kipd_enter(k, next);
}

/* An asynchronous step started: its callback brings KIPD_EV_DONE or
 * KIPD_EV_FAILED; if it could not start, stop. */
static void kipd_started(kipd_t *k, int rc) {
  if (rc != 0)
    kipd_stop(k, 1);
}

static void kipd_on_event(kipd_t *k, kipd_event_t ev) {
  if (k->state == KIPD_STOPPING)
    return;  /* late callbacks of the work being torn down */
  if (ev == KIPD_EV_SIGNAL) {
    kipd_stop(k, 0);
    return;
  }
  if (ev == KIPD_EV_FAILED) {
    kipd_stop(k, 1);
    return;
  }
  switch (k->state) {
  case KIPD_STARTUP_CLUSTER:
    kipd_step(k, kipd_start_cluster(k), KIPD_STARTUP_POOL);
    break;
  case KIPD_STARTUP_POOL:
    kipd_step(k, kipd_start_pools(k), KIPD_STARTUP_MIGRATE);
    break;
  case KIPD_STARTUP_MIGRATE:
    if (ev == KIPD_EV_ENTER)
      kipd_started(k, kipd_migrate(k));
    else
      kipd_enter(k, KIPD_STARTUP_KEYS);
    break;
  case KIPD_STARTUP_KEYS:
    if (ev == KIPD_EV_ENTER)
      kipd_started(k, kipd_check_keys(k));
    else
      kipd_enter(k, KIPD_STARTUP_ADMIN);
    break;
  case KIPD_STARTUP_ADMIN:
    if (ev == KIPD_EV_ENTER)
      kipd_started(k, admin_token_bootstrap(k->pool, k->cfg.admin_token_file, kipd_on_admin, k));
    else
      kipd_enter(k, KIPD_STARTUP_LISTEN);
    break;
  case KIPD_STARTUP_LISTEN:
    kipd_step(k, kipd_listen(k), KIPD_RUNNING);
    break;
  case KIPD_RUNNING:
  case KIPD_STOPPING:
    break;
  }
}

/* ---- before the loop ---- */

/* Each layer's configuration, from the parsed values (util/config only
 * parses). Strings stay borrowed from cfg. */
static void kipd_configure_layers(kipd_t *k) {
  const kipd_config_t *c = &k->cfg;
  k->http_limits = (http_limits_t){
    .max_body_bytes = c->http_max_body_bytes,
    .max_header_bytes = c->http_max_header_bytes,
    .read_timeout_ms = c->http_read_timeout_ms,
    .keepalive_timeout_ms = c->http_keepalive_timeout_ms,
    .write_timeout_ms = c->http_write_timeout_ms,
    .max_connections = c->http_max_connections,
  };
  k->pool_cfg = (pg_pool_config_t){
    .size = c->pool_size,
    .max_queue = c->pool_max_queue,
    .queue_timeout_ms = c->pool_queue_timeout_ms,
    .statement_timeout_ms = c->pool_statement_timeout_ms,
    .connect_timeout_ms = c->pool_connect_timeout_ms,
    .backoff_min_ms = c->pool_backoff_min_ms,
    .backoff_max_ms = c->pool_backoff_max_ms,
  };
  k->app_cfg = (app_config_t){
    .meeting_min_minutes = c->meeting_min_minutes,
    .next_meeting_max_months = c->next_meeting_max_months,
    .session_idle_s = c->session_idle_s,
    .session_max_s = c->session_max_s,
    .cookie_secure = c->cookie_secure,
    .trusted_proxies = c->trusted_proxies,
    .metrics_token = c->metrics_token,
    .metrics_loopback_only = c->metrics_loopback_only,
    .signin_lock_after = c->signin_lock_after,
    .signin_lock_s = c->signin_lock_s,
    .signin_window_s = c->signin_window_s,
    .signin_delay_ms = c->signin_delay_ms,
    .password_jobs_max = c->password_jobs_max,
    .argon2 = {.t_cost = c->argon2_t, .m_kib = c->argon2_m_kib, .parallelism = c->argon2_p},
    .public_url = c->public_url,
    .listen_host = c->listen_host,
    .listen_port = c->listen_port,
  };
}

/* kipd refuses secrets that others can read. */
static int kipd_check_secret_file(const char *path) {
  struct stat st;
  if (path == NULL || stat(path, &st) != 0)
    return 0;
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    log_emit(LOG_ERROR, "refusing to start: a secret file is readable by group or others",
             json_pack("{s:s, s:s}", "file", path, "fix", "chmod 600"));
    return -EPERM;
  }
  return 0;
}

/* ---- --backup and --restore: one-shot, blocking, no serving loop ---- */

static void kipd_on_oneshot_cluster_stopped(cluster_t *c, void *data) {
  (void)c;
  (void)data;
}

/* The embedded cluster started for a one-shot job (initdb on an empty
 * folder, the roles' set-up SQL), run until stopped, then freed. */
static int kipd_oneshot_cluster(kipd_t *k, int (*job)(kipd_t *k, const char *conninfo, char *err,
                                                       size_t err_len), char *err, size_t err_len) {
  cluster_config_t cc = {
    .data_dir = k->cfg.data_dir,
    .pg_bindir = k->cfg.pg_bindir,
    .pg_user = k->cfg.pg_user,
    .db_name = "kipd",
    .setup_sql = roles_embedded_setup_sql,
    .nosync = k->cfg.pg_nosync,
  };
  uv_loop_t *loop = uv_default_loop();
  cluster_t *c = NULL;
  int rc = cluster_start(loop, &cc, NULL, NULL, 120000, &c, err, err_len);
  if (rc != 0) {
    uv_run(loop, UV_RUN_DEFAULT);  /* a failed start's child handle closing */
    uv_loop_close(loop);
    return rc;
  }
  rc = job(k, cluster_conninfo(c), err, err_len);
  cluster_stop(c, kipd_on_oneshot_cluster_stopped, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  cluster_free(c);
  uv_loop_close(loop);
  return rc;
}

static int kipd_dump_job(kipd_t *k, const char *conninfo, char *err, size_t err_len) {
  return backup_dump(k->cfg.pg_bindir, conninfo, k->cfg.backup_file, err, err_len);
}

static int kipd_restore_job(kipd_t *k, const char *conninfo, char *err, size_t err_len) {
  return backup_restore(k->cfg.pg_bindir, conninfo, k->cfg.restore_file, err, err_len);
}

/* kipd --backup FILE: online through DATA_DIR/run when a kipd holds the
 * folder, else with the cluster started just for the dump. Exit code. */
static int kipd_backup(kipd_t *k) {
  char err[PATH_MAX + 256] = "";
  datalock_t *lock = NULL;
  long holder = 0;
  bool online = false;
  int rc = datalock_acquire(k->cfg.data_dir, &lock, &holder, err, sizeof(err));
  if (rc == -EBUSY) {
    char conninfo[PATH_MAX * 2 + 128];
    online = true;
    err[0] = '\0';
    rc = cluster_socket_conninfo(k->cfg.data_dir, "kipd", conninfo, sizeof(conninfo));
    if (rc != 0)
      snprintf(err, sizeof(err), "cannot reach the running cluster of %s: %s", k->cfg.data_dir,
               strerror(-rc));
    else
      rc = backup_dump(k->cfg.pg_bindir, conninfo, k->cfg.backup_file, err, sizeof(err));
  } else if (rc == 0) {
    rc = kipd_oneshot_cluster(k, kipd_dump_job, err, sizeof(err));
  }
  datalock_release(lock);
  if (rc != 0) {
    log_emit(LOG_ERROR, "backup failed", json_pack("{s:s, s:s, s:s}", "data_dir", k->cfg.data_dir,
                                                   "file", k->cfg.backup_file, "error", err));
    return 1;
  }
  log_emit(LOG_INFO, "backup written",
           json_pack("{s:s, s:s, s:b, s:I, s:s}", "data_dir", k->cfg.data_dir, "file", k->cfg.backup_file,
                     "online", online, "kipd_pid", (json_int_t)holder, "key_file",
                     "not included: back the key file up separately (docs/operations.md)"));
  return 0;
}

/* kipd --restore FILE: into an empty (or missing) data folder only. */
static int kipd_restore(kipd_t *k) {
  char err[PATH_MAX + 256] = "";
  datalock_t *lock = NULL;
  long holder = 0;
  int rc = backup_check_dump(k->cfg.restore_file, err, sizeof(err));
  if (rc == 0)
    rc = backup_check_empty_dir(k->cfg.data_dir, err, sizeof(err));
  if (rc == 0)
    rc = datalock_acquire(k->cfg.data_dir, &lock, &holder, err, sizeof(err));
  if (rc == 0)
    rc = kipd_oneshot_cluster(k, kipd_restore_job, err, sizeof(err));
  datalock_release(lock);
  if (rc != 0) {
    log_emit(LOG_ERROR, "restore failed", json_pack("{s:s, s:s, s:s}", "data_dir", k->cfg.data_dir,
                                                    "file", k->cfg.restore_file, "error", err));
    return 1;
  }
  log_emit(LOG_INFO, "restored", json_pack("{s:s, s:s, s:s}", "data_dir", k->cfg.data_dir, "file",
                                           k->cfg.restore_file, "next",
                                           "put the backed-up key file in place (--key-file, or DATA_DIR/cpr.key "
                                           "mode 0600), then start kipd"));
  return 0;
}

int main(int argc, char **argv) {
  static kipd_t k;
  char err[512] = "";
  signal(SIGPIPE, SIG_IGN);
  config_defaults(&k.cfg);
  int rc = config_load(&k.cfg, argc, argv, err, sizeof(err));
  if (rc == 1) {
    config_free(&k.cfg);
    return 0;
  }
  if (rc != 0) {
    fprintf(stderr, "kipd: %s\n", err);
    config_free(&k.cfg);
    return 2;
  }
  if (k.cfg.print_routes) {
    rc = print_routes(stdout);
    config_free(&k.cfg);
    return rc == 0 ? 0 : 1;
  }
  kipd_configure_layers(&k);
  const char *lv = k.cfg.log_level;
  log_set_level(strcmp(lv, "debug") == 0 ? LOG_DEBUG : strcmp(lv, "warn") == 0 ? LOG_WARN
                : strcmp(lv, "error") == 0 ? LOG_ERROR : LOG_INFO);

  if (k.cfg.backup_file != NULL || k.cfg.restore_file != NULL) {
    if (k.cfg.db_url != NULL || (k.cfg.backup_file != NULL && k.cfg.restore_file != NULL)) {
      fprintf(stderr, "kipd: %s\n", k.cfg.db_url != NULL
              ? "--backup and --restore are for the embedded cluster (--data-dir); for an external "
                "PostgreSQL use its own backups (docs/operations.md)"
              : "give --backup or --restore, not both");
      config_free(&k.cfg);
      return 2;
    }
    rc = k.cfg.backup_file != NULL ? kipd_backup(&k) : kipd_restore(&k);
    config_free(&k.cfg);
    return rc;
  }

  /* One kipd per data folder: refused at once, naming the holder's PID. */
  datalock_t *data_lock = NULL;
  if (k.cfg.db_url == NULL && k.cfg.data_dir != NULL) {
    long holder = 0;
    rc = datalock_acquire(k.cfg.data_dir, &data_lock, &holder, err, sizeof(err));
    if (rc != 0) {
      log_emit(LOG_ERROR, rc == -EBUSY ? "refusing to start: the data folder is in use"
                                       : "refusing to start: cannot lock the data folder",
               json_pack("{s:s, s:s, s:I}", "data_dir", k.cfg.data_dir, "error", err,
                         "holder_pid", (json_int_t)holder));
      config_free(&k.cfg);
      return 1;
    }
  }

  if (kipd_check_secret_file(k.cfg.admin_token_file) != 0 || kipd_check_secret_file(k.cfg.key_file) != 0) {
    datalock_release(data_lock);
    config_free(&k.cfg);
    return 1;
  }
  /* The CPR keyring: read now, never on the loop. A missing file is
   * created once the database says it holds no CPR key yet. */
  rc = cpr_keyring_load(k.cfg.key_file, &k.keyring, err, sizeof(err));
  if (rc != 0 && !(rc == -ENOENT && !k.cfg.rotate_key)) {
    log_emit(LOG_ERROR, "refusing to start: cannot read the key file",
             json_pack("{s:s, s:s}", "file", k.cfg.key_file, "error", err));
    datalock_release(data_lock);
    config_free(&k.cfg);
    return 1;
  }
  if (k.cfg.rotate_key) {
    /* One connection, so any other connection named kipd is a running kipd. */
    k.pool_cfg.size = 1;
    long pid = k.cfg.db_url == NULL ? cluster_postmaster_alive(k.cfg.data_dir) : 0;
    if (pid > 0) {
      log_emit(LOG_ERROR, "refusing to rotate: the embedded PostgreSQL is running; stop kipd first",
               json_pack("{s:s, s:i}", "data_dir", k.cfg.data_dir, "postmaster_pid", (json_int_t)pid));
      cpr_keyring_free(k.keyring);
      datalock_release(data_lock);
      config_free(&k.cfg);
      return 1;
    }
  }

  /* Webhooks: libcurl set up before any thread, the outbound policy parsed. */
  rc = http_client_global_init();
  if (rc == 0)
    rc = netpolicy_new(k.cfg.webhook_allow_net, k.cfg.webhook_allow_loopback, &k.webhook_net, err,
                       sizeof(err));
  if (rc != 0) {
    log_emit(LOG_ERROR, "refusing to start: invalid --webhook-allow-net",
             json_pack("{s:s}", "error", err));
    cpr_keyring_free(k.keyring);
    datalock_release(data_lock);
    config_free(&k.cfg);
    return 1;
  }
  k.app_cfg.webhook_net = k.webhook_net;
  k.app_cfg.webhook_allow_loopback = k.cfg.webhook_allow_loopback;

  k.loop = uv_default_loop();
  uv_signal_init(k.loop, &k.sigterm);
  uv_signal_init(k.loop, &k.sigint);
  k.sigterm.data = &k;
  k.sigint.data = &k;
  uv_signal_start(&k.sigterm, kipd_on_signal, SIGTERM);
  uv_signal_start(&k.sigint, kipd_on_signal, SIGINT);

  kipd_enter(&k, KIPD_STARTUP_CLUSTER);
  uv_run(k.loop, UV_RUN_DEFAULT);

  if (k.server != NULL)
    http_server_free(k.server);
  if (k.pool != NULL)
    pg_pool_free(k.pool);
  pg_pool_free(k.owner_pool_closed);
  if (k.cluster != NULL)
    cluster_free(k.cluster);
  app_free(k.app);
  free(k.routes);
  api_free(k.api);
  rc = uv_loop_close(k.loop);
  if (rc != 0)
    log_warnf("loop closed with handles open: %s", uv_strerror(rc));
  log_emit(LOG_INFO, "stopped", json_pack("{s:i}", "exit_code", k.exit_code));
  cpr_keyring_free(k.keyring);
  netpolicy_free(k.webhook_net);
  http_client_global_cleanup();
  free(k.owner_conninfo);
  free(k.conninfo);
  config_free(&k.cfg);
  datalock_release(data_lock); /* last: the postmaster has stopped */
  return k.exit_code;
}
