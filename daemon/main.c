/* kipd: parse the configuration, build the objects, run the loop.
 *
 * Start-up, in order: the embedded PostgreSQL (unless --db), the pool, the
 * migrations, the bootstrap admin, the HTTP server. Shutdown on SIGTERM or
 * SIGINT runs the other way: stop accepting and finish in-flight requests,
 * close the pool, stop the cluster, exit 0.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "api/api.h"
#include "app/app.h"
#include "app/cpr_store.h"
#include "app/daily.h"
#include "app/roles.h"
#include "app/sealer.h"
#include "db/cluster.h"
#include "db/migrate.h"
#include "db/pg_pool.h"
#include "http/server.h"
#include "util/config.h"
#include "util/crypto.h"
#include "util/log.h"
#include "util/notify.h"

typedef struct kipd_s {
  uv_loop_t *loop;
  kipd_config_t cfg;
  cluster_t *cluster;
  pg_pool_t *pool;        /* the runtime role: serves every request */
  pg_pool_t *owner_pool;  /* the owner role: migrations only, closed after them */
  bool owner_closing;
  pg_pool_t *owner_pool_closed;
  app_t *app;
  http_server_t *server;
  daily_t *daily;
  sealer_t *sealer;
  route_t *routes;
  size_t n_routes;
  cpr_keyring_t *keyring;     /* CPR keys: from the key file, or created at first start */
  uv_signal_t sigterm;
  uv_signal_t sigint;
  bool stopping;
  int exit_code;
  char token[CRYPTO_TOKEN_LEN + 1];
  char token_tmp[4096];
} kipd_t;

static void kipd_stop(kipd_t *k, int exit_code);

/* ---- shutdown ---- */

static void kipd_on_signal_closed(uv_handle_t *h) { (void)h; }

static void kipd_on_cluster_stopped(cluster_t *c, void *data) {
  kipd_t *k = data;
  log_infof("embedded PostgreSQL stopped");
  uv_close((uv_handle_t *)&k->sigterm, kipd_on_signal_closed);
  uv_close((uv_handle_t *)&k->sigint, kipd_on_signal_closed);
}

static void kipd_on_pool_closed(pg_pool_t *pool, void *data) {
  kipd_t *k = data;
  if (k->cluster != NULL) {
    cluster_stop(k->cluster, kipd_on_cluster_stopped, k);
    return;
  }
  uv_close((uv_handle_t *)&k->sigterm, kipd_on_signal_closed);
  uv_close((uv_handle_t *)&k->sigint, kipd_on_signal_closed);
}

/* The timers that use the pool stop first: the daily pass, then the sealer. */
static void kipd_close_timers(void *data) {
  kipd_t *k = data;
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
  pg_pool_close(k->pool, kipd_on_pool_closed, k);
}

static void kipd_on_server_closed(http_server_t *server, void *data) {
  log_infof("HTTP server closed");
  kipd_close_timers(data);
}

static int kipd_bootstrap(kipd_t *k);

static void kipd_stop_rest(kipd_t *k) {
  if (k->server != NULL)
    http_server_shutdown(k->server, k->cfg.shutdown_grace_ms, kipd_on_server_closed, k);
  else if (k->pool != NULL)
    pg_pool_close(k->pool, kipd_on_pool_closed, k);
  else if (k->cluster != NULL)
    cluster_stop(k->cluster, kipd_on_cluster_stopped, k);
  else {
    uv_close((uv_handle_t *)&k->sigterm, kipd_on_signal_closed);
    uv_close((uv_handle_t *)&k->sigint, kipd_on_signal_closed);
  }
}

/* The owner's pool is closed after the migrations, or first on a stop. */
static int kipd_after_migrations(kipd_t *k);

static void kipd_on_owner_pool_closed(pg_pool_t *pool, void *data) {
  kipd_t *k = data;
  k->owner_pool_closed = pool;  /* freed after the loop, never inside its own callback */
  k->owner_pool = NULL;
  k->owner_closing = false;
  if (k->stopping) {
    kipd_stop_rest(k);
    return;
  }
  if (kipd_after_migrations(k) != 0)
    kipd_stop(k, 1);
}

static void kipd_stop(kipd_t *k, int exit_code) {
  if (k->stopping)
    return;
  k->stopping = true;
  k->exit_code = exit_code;
  notify_stopping();  /* systemd: STOPPING=1 */
  if (k->owner_pool != NULL) {
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
  kipd_stop(k, 0);
}

/* ---- serving ---- */

static int kipd_serve(kipd_t *k) {
  int rc = api_routes(&k->routes, &k->n_routes);
  if (rc != 0)
    return rc;
  /* The calendar's time zone is read from zoneinfo now, never on the loop. */
  rc = api_calendar_init();
  if (rc != 0) {
    log_emit(LOG_ERROR, "cannot load the Europe/Copenhagen time zone", json_pack("{s:i}", "error", rc));
    return rc;
  }
  rc = app_new(&k->cfg, k->pool, k->routes, k->n_routes, &k->app);
  if (rc != 0)
    return rc;
  rc = http_server_new(k->loop, &k->cfg.http, app_handle, k->app, &k->server);
  if (rc != 0)
    return rc;
  http_server_set_access_cb(k->server, app_access_log, k->app);
  app_set_server(k->app, k->server);
  app_set_loop(k->app, k->loop);
  app_set_keyring(k->app, k->keyring);
  rc = http_server_listen(k->server, k->cfg.listen_host, k->cfg.listen_port);
  if (rc != 0) {
    log_emit(LOG_ERROR, "cannot listen", json_pack("{s:s, s:i, s:s}", "host", k->cfg.listen_host,
                                                   "port", k->cfg.listen_port, "error", uv_strerror(rc)));
    return rc;
  }
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
  log_emit(LOG_INFO, "listening", json_pack("{s:s, s:i, s:s}", "url", url, "port", port,
                                            "admin_token_file", k->cfg.admin_token_file));
  notify_ready(url);  /* systemd Type=notify: READY=1 (util/notify.h) */
  return 0;
}

/* ---- bootstrap ---- */

static const pg_stmt_t kipd_bootstrap_stmt = {"bootstrap", "SELECT kip.bootstrap($1::text)", 1};

static void kipd_on_bootstrap(void *data, int err, PGresult *res) {
  kipd_t *k = data;
  memset(k->token, 0, sizeof(k->token));
  if (err != 0) {
    unlink(k->token_tmp);
    log_emit(LOG_ERROR, "bootstrap failed",
             json_pack("{s:s}", "error", res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : "database unavailable"));
    kipd_stop(k, 1);
    return;
  }
  bool created = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  if (created) {
    if (rename(k->token_tmp, k->cfg.admin_token_file) != 0) {
      log_emit(LOG_ERROR, "cannot write the admin token",
               json_pack("{s:s, s:s}", "file", k->cfg.admin_token_file, "error", strerror(errno)));
      unlink(k->token_tmp);
      kipd_stop(k, 1);
      return;
    }
    log_emit(LOG_INFO, "created the admin user", json_pack("{s:s}", "admin_token_file", k->cfg.admin_token_file));
  } else {
    unlink(k->token_tmp);
  }
  if (kipd_serve(k) != 0)
    kipd_stop(k, 1);
}

/* Write a fresh token to a temporary file next to the final one (0600), so
 * that it exists on disk before the database knows its hash. */
static int kipd_bootstrap(kipd_t *k) {
  char hash[65];
  int rc = crypto_token_new(k->token);
  if (rc == 0)
    rc = crypto_sha256_hex(k->token, strlen(k->token), hash);
  if (rc != 0)
    return rc;
  snprintf(k->token_tmp, sizeof(k->token_tmp), "%s.tmp", k->cfg.admin_token_file);
  int fd = open(k->token_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    log_emit(LOG_ERROR, "cannot write the admin token",
             json_pack("{s:s, s:s}", "file", k->token_tmp, "error", strerror(errno)));
    return -errno;
  }
  char line[CRYPTO_TOKEN_LEN + 2];
  int n = snprintf(line, sizeof(line), "%s\n", k->token);
  bool ok = fchmod(fd, 0600) == 0 && write(fd, line, (size_t)n) == n && fsync(fd) == 0;
  memset(line, 0, sizeof(line));
  close(fd);
  if (!ok) {
    unlink(k->token_tmp);
    return -EIO;
  }
  const char *params[1] = {hash};
  rc = pg_pool_exec(k->pool, &kipd_bootstrap_stmt, params, kipd_on_bootstrap, k);
  if (rc != 0)
    unlink(k->token_tmp);
  return rc;
}

/* The CPR keys checked against the database, and pending numbers sealed
 * (app/cpr_store.h); then the bootstrap admin. */
static void kipd_on_cpr_ready(void *data, int err, long count, const char *message) {
  kipd_t *k = data;
  if (err != 0) {
    log_emit(LOG_ERROR, "refusing to start: the CPR keys do not fit the database",
             json_pack("{s:s, s:s}", "key_file", k->cfg.key_file, "error", message ? message : "unknown"));
    kipd_stop(k, 1);
    return;
  }
  if (count > 0)
    log_emit(LOG_INFO, "sealed pending CPR numbers", json_pack("{s:i}", "count", (json_int_t)count));
  if (kipd_bootstrap(k) != 0)
    kipd_stop(k, 1);
}

static void kipd_on_rotated(void *data, int err, long count, const char *message) {
  kipd_t *k = data;
  if (err != 0) {
    log_emit(LOG_ERROR, "key rotation failed", json_pack("{s:s, s:s}", "key_file", k->cfg.key_file,
                                                         "error", message ? message : "unknown"));
    kipd_stop(k, 1);
    return;
  }
  log_emit(LOG_INFO, "rotated the CPR key",
           json_pack("{s:s, s:s, s:i}", "key_file", k->cfg.key_file, "key_id",
                     cpr_keyring_current(k->keyring)->id, "resealed", (json_int_t)count));
  kipd_stop(k, 0);
}

/* After the migrations, on the runtime role's pool: the CPR keys checked
 * against the database and pending numbers sealed (or, with --rotate-key,
 * everything re-encrypted), then the bootstrap admin. */
static int kipd_after_migrations(kipd_t *k) {
  return k->cfg.rotate_key ? cpr_store_rotate(k->pool, k->cfg.key_file, k->keyring, kipd_on_rotated, k)
                           : cpr_store_open(k->pool, k->cfg.key_file, &k->keyring, kipd_on_cpr_ready, k);
}

static void kipd_on_migrated(void *data, int err, int applied, const char *message) {
  kipd_t *k = data;
  if (err != 0) {
    pg_pool_t *mp = k->owner_pool != NULL ? k->owner_pool : k->pool;
    const char *why = mp != NULL ? pg_pool_last_error(mp) : "";
    log_emit(LOG_ERROR, "migration failed", json_pack("{s:s, s:s?}", "error", message ? message : "unknown",
                                                      "database", why[0] ? why : NULL));
    kipd_stop(k, 1);
    return;
  }
  log_emit(LOG_INFO, "migrations applied", json_pack("{s:i}", "applied", applied));
  if (k->cfg.migrate_only) {
    kipd_stop(k, 0);
    return;
  }
  if (k->owner_pool != NULL) {
    /* The CPR step and the bootstrap follow once the owner's connection
     * is closed: kipd serves as the runtime role only. */
    k->owner_closing = true;
    pg_pool_close(k->owner_pool, kipd_on_owner_pool_closed, k);
    return;
  }
  if (kipd_after_migrations(k) != 0)
    kipd_stop(k, 1);
}

static void kipd_on_cluster_restarted(cluster_t *c, void *data) {
  kipd_t *k = data;
  log_warnf("embedded PostgreSQL was restarted; reconnecting");
  if (k->pool != NULL)
    pg_pool_reconnect(k->pool);
  if (k->owner_pool != NULL)
    pg_pool_reconnect(k->owner_pool);
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

int main(int argc, char **argv) {
  static kipd_t k;
  char *owner_conninfo = NULL;
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
    /* The route table, one JSON object a line: the access-matrix test
     * compares it with its own table, so a new route without a row fails;
     * the schema-layout test finds each route's SQL function ("function",
     * from its statement) in the file of its family. */
    rc = api_routes(&k.routes, &k.n_routes);
    for (size_t i = 0; rc == 0 && i < k.n_routes; i++) {
      const route_t *rt = &k.routes[i];
      char function[128] = "";
      const char *call = rt->stmt != NULL ? strstr(rt->stmt->sql, "kip_api.") : NULL;
      if (call != NULL)
        snprintf(function, sizeof(function), "%.*s", (int)strspn(call, "abcdefghijklmnopqrstuvwxyz_.0123456789"), call);
      json_t *j = json_pack("{s:s, s:s, s:b, s:b, s:b, s:s?}", "method", rt->method, "path", rt->pattern,
                            "public", (rt->flags & ROUTE_PUBLIC) != 0, "body", (rt->flags & ROUTE_BODY) != 0,
                            "if_match", (rt->flags & ROUTE_IF_MATCH) != 0,
                            "function", function[0] ? function : NULL);
      char *line = json_dumps(j, JSON_COMPACT);
      printf("%s\n", line ? line : "{}");
      free(line);
      json_decref(j);
    }
    free(k.routes);
    config_free(&k.cfg);
    return rc == 0 ? 0 : 1;
  }
  const char *lv = k.cfg.log_level;
  log_set_level(strcmp(lv, "debug") == 0 ? LOG_DEBUG : strcmp(lv, "warn") == 0 ? LOG_WARN
                : strcmp(lv, "error") == 0 ? LOG_ERROR : LOG_INFO);

  if (kipd_check_secret_file(k.cfg.admin_token_file) != 0 || kipd_check_secret_file(k.cfg.key_file) != 0) {
    config_free(&k.cfg);
    return 1;
  }
  /* The CPR keyring: read now, never on the loop. A missing file is
   * created once the database says it holds no CPR key yet. */
  rc = cpr_keyring_load(k.cfg.key_file, &k.keyring, err, sizeof(err));
  if (rc != 0 && !(rc == -ENOENT && !k.cfg.rotate_key)) {
    log_emit(LOG_ERROR, "refusing to start: cannot read the key file",
             json_pack("{s:s, s:s}", "file", k.cfg.key_file, "error", err));
    config_free(&k.cfg);
    return 1;
  }
  if (k.cfg.rotate_key) {
    /* One connection, so any other connection named kipd is a running kipd. */
    k.cfg.pool.size = 1;
    long pid = k.cfg.db_url == NULL ? cluster_postmaster_alive(k.cfg.data_dir) : 0;
    if (pid > 0) {
      log_emit(LOG_ERROR, "refusing to rotate: the embedded PostgreSQL is running; stop kipd first",
               json_pack("{s:s, s:i}", "data_dir", k.cfg.data_dir, "postmaster_pid", (json_int_t)pid));
      cpr_keyring_free(k.keyring);
      config_free(&k.cfg);
      return 1;
    }
  }

  k.loop = uv_default_loop();
  uv_signal_init(k.loop, &k.sigterm);
  uv_signal_init(k.loop, &k.sigint);
  k.sigterm.data = &k;
  k.sigint.data = &k;
  uv_signal_start(&k.sigterm, kipd_on_signal, SIGTERM);
  uv_signal_start(&k.sigint, kipd_on_signal, SIGINT);

  if (k.cfg.db_url == NULL) {
    cluster_config_t cc = {
      .data_dir = k.cfg.data_dir,
      .pg_bindir = k.cfg.pg_bindir,
      .pg_user = k.cfg.pg_user,
      .db_name = "kipd",
      .setup_sql = roles_embedded_setup_sql,
    };
    log_emit(LOG_INFO, "starting embedded PostgreSQL", json_pack("{s:s}", "data_dir", k.cfg.data_dir));
    rc = cluster_start(k.loop, &cc, kipd_on_cluster_restarted, &k, 120000, &k.cluster, err, sizeof(err));
    if (rc != 0) {
      log_emit(LOG_ERROR, "cannot start the embedded PostgreSQL", json_pack("{s:s}", "error", err));
      k.cluster = NULL;
      k.exit_code = 1;
      goto fail_signals;
    }
    char runtime[PATH_MAX * 2 + 128], owner[PATH_MAX * 2 + 128];
    if (cluster_conninfo_as(k.cluster, ROLES_EMBEDDED_RUNTIME, runtime, sizeof(runtime)) != 0 ||
        cluster_conninfo_as(k.cluster, ROLES_EMBEDDED_OWNER, owner, sizeof(owner)) != 0) {
      log_emit(LOG_ERROR, "data directory path too long", NULL);
      kipd_stop(&k, 1);
      uv_run(k.loop, UV_RUN_DEFAULT);
      goto cleanup;
    }
    k.cfg.pool.conninfo = strdup(runtime);
    owner_conninfo = strdup(owner);
  } else {
    k.cfg.pool.conninfo = strdup(k.cfg.db_url);
    if (k.cfg.db_owner_url != NULL)
      owner_conninfo = strdup(k.cfg.db_owner_url);
    else
      log_emit(LOG_WARN, "the audit trail is not append-only: without --db-owner the runtime role "
               "runs the migrations and owns the tables, so it can change audit rows",
               json_pack("{s:b, s:s}", "audit_append_only", 0, "fix",
                         "give --db-owner (the owner role) and --db a role in kipd_runtime (docs/deploy.md)"));
  }

  /* The cluster's start blocked the loop for seconds (initdb): timers set
   * from now on (the connect timeouts) must not start from a stale clock. */
  uv_update_time(k.loop);
  rc = pg_pool_new(k.loop, &k.cfg.pool, &k.pool);
  if (rc == 0 && owner_conninfo != NULL) {
    pg_pool_config_t oc = k.cfg.pool;
    oc.conninfo = owner_conninfo;
    oc.size = 1;
    rc = pg_pool_new(k.loop, &oc, &k.owner_pool);
  }
  if (rc != 0) {
    log_emit(LOG_ERROR, "cannot create the database pool", json_pack("{s:i}", "error", rc));
    kipd_stop(&k, 1);
  } else {
    /* The schemas whose functions, views and triggers schema/functions/ defines. */
    static const char *const code_schemas[] = {"kip", "kip_api", NULL};
    rc = migrate_run(k.owner_pool != NULL ? k.owner_pool : k.pool, k.cfg.schema_dir, code_schemas,
                     kipd_on_migrated, &k);
    if (rc != 0) {
      log_emit(LOG_ERROR, "cannot read migrations", json_pack("{s:s}", "schema_dir", k.cfg.schema_dir));
      kipd_stop(&k, 1);
    }
  }

  uv_run(k.loop, UV_RUN_DEFAULT);
  goto cleanup;

fail_signals:
  uv_close((uv_handle_t *)&k.sigterm, kipd_on_signal_closed);
  uv_close((uv_handle_t *)&k.sigint, kipd_on_signal_closed);
  uv_run(k.loop, UV_RUN_DEFAULT);
cleanup:
  if (k.server != NULL)
    http_server_free(k.server);
  if (k.pool != NULL)
    pg_pool_free(k.pool);
  pg_pool_free(k.owner_pool_closed);
  if (k.cluster != NULL)
    cluster_free(k.cluster);
  app_free(k.app);
  free(k.routes);
  api_calendar_cleanup();
  rc = uv_loop_close(k.loop);
  if (rc != 0)
    log_warnf("loop closed with handles open: %s", uv_strerror(rc));
  log_emit(LOG_INFO, "stopped", json_pack("{s:i}", "exit_code", k.exit_code));
  cpr_keyring_free(k.keyring);
  free(owner_conninfo);
  config_free(&k.cfg);
  return k.exit_code;
}
