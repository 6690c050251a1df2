#include "util/config.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kipd-build.h"
#include "util/password.h"
#include "util/paths.h"

typedef enum { OPT_STR, OPT_INT, OPT_U64, OPT_UINT, OPT_SIZE, OPT_LISTEN, OPT_FLAG } opt_type_t;

typedef struct config_opt_s {
  const char *name;    /* long flag, config-file key */
  const char *env;     /* KIPD_* variable */
  opt_type_t type;
  size_t offset;
  const char *help;
} config_opt_t;

#define OFF(field) offsetof(kipd_config_t, field)

static const config_opt_t config__opts[] = {
  {"listen", "KIPD_LISTEN", OPT_LISTEN, 0, "HOST:PORT to serve HTTP on (127.0.0.1:8080)"},
  {"data-dir", "KIPD_DATA_DIR", OPT_STR, OFF(data_dir), "data folder of the embedded PostgreSQL and the admin token"},
  {"db", "KIPD_DB", OPT_STR, OFF(db_url), "external PostgreSQL URI/conninfo; disables the embedded cluster"},
  {"db-owner", "KIPD_DB_OWNER", OPT_STR, OFF(db_owner_url), "external mode: conninfo of the role that owns the schema and runs the migrations (--db is then the runtime role); without it --db runs them and the audit is not append-only"},
  {"admin-token-file", "KIPD_ADMIN_TOKEN_FILE", OPT_STR, OFF(admin_token_file), "where the bootstrap admin token is written (DATA_DIR/admin-token)"},
  {"key-file", "KIPD_KEY_FILE", OPT_STR, OFF(key_file), "keyring of the CPR encryption keys, created 0600 when missing (DATA_DIR/cpr.key)"},
  {"schema-dir", "KIPD_SCHEMA_DIR", OPT_STR, OFF(schema_dir), "schema folder: migrations/ (numbered, applied once) and functions/ (applied whenever they change)"},
  {"pg-bindir", "KIPD_PG_BINDIR", OPT_STR, OFF(pg_bindir), "PostgreSQL server binaries for the embedded cluster"},
  {"pg-user", "KIPD_PG_USER", OPT_STR, OFF(pg_user), "system user that runs the embedded cluster when kipd is root (postgres)"},
  {"log-level", "KIPD_LOG_LEVEL", OPT_STR, OFF(log_level), "debug, info, warn or error (info)"},
  {"pool-size", "KIPD_POOL_SIZE", OPT_UINT, OFF(pool_size), "database connections (8)"},
  {"pool-queue", "KIPD_POOL_QUEUE", OPT_UINT, OFF(pool_max_queue), "requests that may wait for a connection before 503 (1024)"},
  {"pool-queue-timeout-ms", "KIPD_POOL_QUEUE_TIMEOUT_MS", OPT_U64, OFF(pool_queue_timeout_ms), "longest wait for a connection (5000)"},
  {"statement-timeout-ms", "KIPD_STATEMENT_TIMEOUT_MS", OPT_U64, OFF(pool_statement_timeout_ms), "PostgreSQL statement_timeout (10000)"},
  {"http-read-timeout-ms", "KIPD_HTTP_READ_TIMEOUT_MS", OPT_U64, OFF(http_read_timeout_ms), "deadline for a request's headers and body (10000)"},
  {"http-keepalive-timeout-ms", "KIPD_HTTP_KEEPALIVE_TIMEOUT_MS", OPT_U64, OFF(http_keepalive_timeout_ms), "idle keep-alive connections are closed after this (60000)"},
  {"max-connections", "KIPD_MAX_CONNECTIONS", OPT_UINT, OFF(http_max_connections), "HTTP connections before new ones are refused (10000)"},
  {"max-body-bytes", "KIPD_MAX_BODY_BYTES", OPT_SIZE, OFF(http_max_body_bytes), "largest request body (1048576)"},
  {"shutdown-grace-ms", "KIPD_SHUTDOWN_GRACE_MS", OPT_U64, OFF(shutdown_grace_ms), "time to finish in-flight requests on SIGTERM (10000)"},
  {"meeting-min-minutes", "KIPD_MEETING_MIN_MINUTES", OPT_INT, OFF(meeting_min_minutes), "shortest KIP meeting (90)"},
  {"next-meeting-max-months", "KIPD_NEXT_MEETING_MAX_MONTHS", OPT_INT, OFF(next_meeting_max_months), "latest next meeting after a meeting (6)"},
  {"daily-pass-interval-s", "KIPD_DAILY_PASS_INTERVAL_S", OPT_U64, OFF(daily_pass_interval_s), "how often the daily pass marks due actions, consents, plans and meetings (3600; 0 = never)"},
  {"session-idle-s", "KIPD_SESSION_IDLE_S", OPT_U64, OFF(session_idle_s), "a sign-in session unused this long expires (1800)"},
  {"session-max-s", "KIPD_SESSION_MAX_S", OPT_U64, OFF(session_max_s), "absolute lifetime of a sign-in session (43200)"},
  {"trusted-proxies", "KIPD_TRUSTED_PROXIES", OPT_STR, OFF(trusted_proxies), "comma-separated IP addresses of reverse proxies whose X-Forwarded-For names the client (none)"},
  {"public-url", "KIPD_PUBLIC_URL", OPT_STR, OFF(public_url), "the base URL people reach kipd at, e.g. https://kip.example.dk, for absolute links such as the calendar feed URL (unset: from the request's Host and X-Forwarded-Proto)"},
  {"max-connections-per-address", "KIPD_MAX_CONNECTIONS_PER_ADDRESS", OPT_UINT, OFF(max_connections_per_address), "HTTP connections from one client address before its new ones get 503; trusted proxies are exempt (256; 0 = no cap)"},
  {"cookie-secure", "KIPD_COOKIE_SECURE", OPT_STR, OFF(cookie_secure), "Secure on the session cookie: auto (when X-Forwarded-Proto is https), always or never (auto)"},
  {"signin-lock-after", "KIPD_SIGNIN_LOCK_AFTER", OPT_INT, OFF(signin_lock_after), "consecutive failed sign-ins that lock a username (5)"},
  {"signin-lock-s", "KIPD_SIGNIN_LOCK_S", OPT_U64, OFF(signin_lock_s), "how long a locked username stays locked (900)"},
  {"signin-window-s", "KIPD_SIGNIN_WINDOW_S", OPT_U64, OFF(signin_window_s), "failed sign-ins older than this are forgotten (900)"},
  {"signin-delay-ms", "KIPD_SIGNIN_DELAY_MS", OPT_U64, OFF(signin_delay_ms), "answer delay from the 3rd failed sign-in, doubling up to 8x (1000)"},
  {"password-jobs-max", "KIPD_PASSWORD_JOBS_MAX", OPT_UINT, OFF(password_jobs_max), "password hashes queued or running before 429 (16)"},
  {"argon2-t", "KIPD_ARGON2_T", OPT_UINT, OFF(argon2_t), "Argon2id passes for new password hashes (3)"},
  {"argon2-m-kib", "KIPD_ARGON2_M_KIB", OPT_UINT, OFF(argon2_m_kib), "Argon2id memory in KiB for new password hashes (65536)"},
  {"argon2-p", "KIPD_ARGON2_P", OPT_UINT, OFF(argon2_p), "Argon2id lanes (1)"},
  {"events-heartbeat-s", "KIPD_EVENTS_HEARTBEAT_S", OPT_U64, OFF(events_heartbeat_s), "how often GET /v1/events sends a heartbeat comment on each open stream (15; 0 = never)"},
  {"audit-seal-interval-ms", "KIPD_AUDIT_SEAL_INTERVAL_MS", OPT_U64, OFF(audit_seal_interval_ms), "how often new audit rows are sealed into the hash chain (1000; 0 = only at verification)"},
  {"webhook-poll-ms", "KIPD_WEBHOOK_POLL_MS", OPT_U64, OFF(webhook_poll_ms), "how often due webhook deliveries are looked for (1000; 0 = this kipd delivers none)"},
  {"webhook-timeout-ms", "KIPD_WEBHOOK_TIMEOUT_MS", OPT_U64, OFF(webhook_timeout_ms), "longest a webhook request may take in all (10000)"},
  {"webhook-connect-timeout-ms", "KIPD_WEBHOOK_CONNECT_TIMEOUT_MS", OPT_U64, OFF(webhook_connect_timeout_ms), "longest a webhook connection (TCP and TLS) may take (5000)"},
  {"webhook-retry-base-ms", "KIPD_WEBHOOK_RETRY_BASE_MS", OPT_U64, OFF(webhook_retry_base_ms), "first webhook retry after about this, doubling per attempt up to an hour, with jitter (10000)"},
  {"webhook-retry-window-s", "KIPD_WEBHOOK_RETRY_WINDOW_S", OPT_U64, OFF(webhook_retry_window_s), "a webhook delivery is retried for this long, then marked failed (86400 = 24 hours)"},
  {"webhook-max-in-flight", "KIPD_WEBHOOK_MAX_IN_FLIGHT", OPT_UINT, OFF(webhook_max_in_flight), "webhook requests at once (64)"},
  {"metrics-token", "KIPD_METRICS_TOKEN", OPT_STR, OFF(metrics_token), "GET /metrics needs Authorization: Bearer TOKEN (401 without it, 403 with another); unset: open"},
  {"metrics-loopback-only", "KIPD_METRICS_LOOPBACK_ONLY", OPT_FLAG, OFF(metrics_loopback_only), "GET /metrics answers only clients connected from a loopback address (403 otherwise)"},
  {"webhook-allow-loopback", "KIPD_WEBHOOK_ALLOW_LOOPBACK", OPT_FLAG, OFF(webhook_allow_loopback), "let webhooks reach loopback addresses, over http too; for tests only"},
  {"webhook-allow-net", "KIPD_WEBHOOK_ALLOW_NET", OPT_STR, OFF(webhook_allow_net), "comma-separated CIDR blocks of private or link-local addresses webhooks may reach (none)"},
  {"pg-nosync", "KIPD_PG_NOSYNC", OPT_FLAG, OFF(pg_nosync), "embedded cluster: initdb and run PostgreSQL without fsync; for tests only, a crash can lose data"},
  {"migrate-only", "KIPD_MIGRATE_ONLY", OPT_FLAG, OFF(migrate_only), "apply migrations and exit"},
  {"print-routes", "KIPD_PRINT_ROUTES", OPT_FLAG, OFF(print_routes), "print the route table as JSON lines and exit"},
  {"rotate-key", "KIPD_ROTATE_KEY", OPT_FLAG, OFF(rotate_key), "re-encrypt every CPR number under a new key, then exit (stop kipd first)"},
  {"backup", "KIPD_BACKUP", OPT_STR, OFF(backup_file), "embedded cluster: write a consistent pg_dump (custom format, mode 0600, never the CPR key file) of the database to FILE, then exit; works while kipd runs"},
  {"restore", "KIPD_RESTORE", OPT_STR, OFF(restore_file), "embedded cluster: create the cluster in the EMPTY --data-dir and restore FILE (a --backup) into it, then exit"},
  {"config", "KIPD_CONFIG", OPT_STR, OFF(config_file), "JSON config file whose keys are these option names"},
};

void config_defaults(kipd_config_t *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->listen_host = strdup("127.0.0.1");
  cfg->listen_port = 8080;
  cfg->schema_dir = paths_default_schema_dir();  /* installed, else the source tree (util/paths.h) */
  cfg->pg_bindir = strdup(KIPD_PG_BINDIR);
  cfg->pg_user = strdup("postgres");
  cfg->log_level = strdup("info");
  cfg->max_connections_per_address = 256;
  cfg->shutdown_grace_ms = 10000;
  cfg->meeting_min_minutes = 90;
  cfg->next_meeting_max_months = 6;
  cfg->daily_pass_interval_s = 3600;
  cfg->session_idle_s = 1800;
  cfg->session_max_s = 43200;
  cfg->cookie_secure = strdup("auto");
  cfg->signin_lock_after = 5;
  cfg->signin_lock_s = 900;
  cfg->signin_window_s = 900;
  cfg->signin_delay_ms = 1000;
  cfg->password_jobs_max = 16;
  cfg->argon2_t = 3;
  cfg->argon2_m_kib = 65536;
  cfg->argon2_p = 1;
  cfg->audit_seal_interval_ms = 1000;
  cfg->events_heartbeat_s = 15;
  cfg->webhook_poll_ms = 1000;
  cfg->webhook_timeout_ms = 10000;
  cfg->webhook_connect_timeout_ms = 5000;
  cfg->webhook_retry_base_ms = 10000;
  cfg->webhook_retry_window_s = 86400;
  cfg->webhook_max_in_flight = 64;
  cfg->http_max_body_bytes = 1024 * 1024;
  cfg->http_max_header_bytes = 16 * 1024;
  cfg->http_read_timeout_ms = 10000;
  cfg->http_keepalive_timeout_ms = 60000;
  cfg->http_write_timeout_ms = 30000;
  cfg->http_max_connections = 10000;
  cfg->pool_size = 8;
  cfg->pool_max_queue = 1024;
  cfg->pool_queue_timeout_ms = 5000;
  cfg->pool_statement_timeout_ms = 10000;
  cfg->pool_connect_timeout_ms = 5000;
  cfg->pool_backoff_min_ms = 100;
  cfg->pool_backoff_max_ms = 5000;
}

void config_free(kipd_config_t *cfg) {
  free(cfg->listen_host);
  free(cfg->data_dir);
  free(cfg->db_url);
  free(cfg->db_owner_url);
  free(cfg->admin_token_file);
  free(cfg->key_file);
  free(cfg->schema_dir);
  free(cfg->pg_bindir);
  free(cfg->pg_user);
  free(cfg->config_file);
  free(cfg->backup_file);
  free(cfg->restore_file);
  free(cfg->log_level);
  free(cfg->cookie_secure);
  free(cfg->trusted_proxies);
  free(cfg->metrics_token);
  free(cfg->public_url);
  free(cfg->webhook_allow_net);
  memset(cfg, 0, sizeof(*cfg));
}

static int config__parse_u64(const char *s, unsigned long long *out) {
  char *end;
  if (*s == '\0' || *s == '-')
    return -EINVAL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return -EINVAL;
  *out = v;
  return 0;
}

static int config__set(kipd_config_t *cfg, const config_opt_t *o, const char *value,
                       const char *origin, char *err, size_t err_len) {
  char *base = (char *)cfg;
  unsigned long long v = 0;
  switch (o->type) {
  case OPT_STR: {
    char **slot = (char **)(base + o->offset);
    free(*slot);
    *slot = strdup(value);
    return *slot ? 0 : -ENOMEM;
  }
  case OPT_FLAG:
    *(bool *)(base + o->offset) = value == NULL || strcmp(value, "0") != 0;
    return 0;
  case OPT_LISTEN: {
    const char *colon = strrchr(value, ':');
    if (colon == NULL || config__parse_u64(colon + 1, &v) != 0 || v > 65535)
      goto bad;
    const char *host = value;
    size_t hlen = (size_t)(colon - value);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
      host++;
      hlen -= 2;
    }
    if (hlen == 0)
      goto bad;
    free(cfg->listen_host);
    cfg->listen_host = strndup(host, hlen);
    cfg->listen_port = (int)v;
    return 0;
  }
  default:
    if (config__parse_u64(value, &v) != 0)
      goto bad;
    if (o->type == OPT_INT) {
      if (v > 1000000)
        goto bad;
      *(int *)(base + o->offset) = (int)v;
    } else if (o->type == OPT_UINT) {
      if (v > 10000000)
        goto bad;
      *(unsigned *)(base + o->offset) = (unsigned)v;
    } else if (o->type == OPT_SIZE) {
      *(size_t *)(base + o->offset) = (size_t)v;
    } else {
      *(uint64_t *)(base + o->offset) = (uint64_t)v;
    }
    return 0;
  }
bad:
  snprintf(err, err_len, "%s: invalid value for %s", origin, o->name);
  return -EINVAL;
}

static int config__load_file(kipd_config_t *cfg, const char *path, char *err, size_t err_len) {
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    snprintf(err, err_len, "config file %s: %s (line %d)", path, jerr.text, jerr.line);
    return -EINVAL;
  }
  int rc = 0;
  if (!json_is_object(root)) {
    snprintf(err, err_len, "config file %s: must be a JSON object", path);
    rc = -EINVAL;
    goto out;
  }
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    const config_opt_t *o = NULL;
    for (size_t i = 0; i < KIPD_ARRAY_SIZE(config__opts); i++)
      if (strcmp(config__opts[i].name, key) == 0)
        o = &config__opts[i];
    if (o == NULL || o->type == OPT_FLAG || strcmp(key, "config") == 0) {
      snprintf(err, err_len, "config file %s: unknown key \"%s\"", path, key);
      rc = -EINVAL;
      goto out;
    }
    char num[32];
    const char *s;
    if (json_is_string(val)) {
      s = json_string_value(val);
    } else if (json_is_integer(val)) {
      snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(val));
      s = num;
    } else {
      snprintf(err, err_len, "config file %s: \"%s\" must be a string or integer", path, key);
      rc = -EINVAL;
      goto out;
    }
    rc = config__set(cfg, o, s, "config file", err, err_len);
    if (rc != 0)
      goto out;
  }
out:
  json_decref(root);
  return rc;
}

void config_print_help(const char *argv0) {
  printf("kipd %s: case-management daemon for coordinated intervention plans (KIP)\n\n", KIPD_VERSION);
  printf("Usage: %s [--data-dir DIR | --db URI] [--listen HOST:PORT] [options]\n\n", argv0);
  printf("Without --db, kipd initialises and runs a private PostgreSQL in DIR.\n");
  printf("Precedence: flags > KIPD_* environment > --config JSON file > defaults.\n\n");
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(config__opts); i++) {
    const config_opt_t *o = &config__opts[i];
    printf("  --%-26s %-32s %s\n", o->type == OPT_FLAG ? o->name : o->name, o->env, o->help);
  }
  printf("  --%-26s %-32s %s\n", "help", "", "show this help");
  printf("  --%-26s %-32s %s\n", "version", "", "show the version");
}

int config_load(kipd_config_t *cfg, int argc, char **argv, char *err, size_t err_len) {
  struct option longopts[KIPD_ARRAY_SIZE(config__opts) + 3];
  size_t n = 0;
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(config__opts); i++, n++) {
    longopts[n].name = config__opts[i].name;
    longopts[n].has_arg = config__opts[i].type == OPT_FLAG ? no_argument : required_argument;
    longopts[n].flag = NULL;
    longopts[n].val = 1000 + (int)i;
  }
  longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
  longopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
  longopts[n] = (struct option){NULL, 0, NULL, 0};

  /* Pass 1: --help, --version, --config and flag syntax errors. */
  const char *config_path = getenv("KIPD_CONFIG");
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
    if (c == 'h') {
      config_print_help(argv[0]);
      return 1;
    }
    if (c == 'V') {
      printf("kipd %s\n", KIPD_VERSION);
      return 1;
    }
    if (c == '?' || c == ':') {
      snprintf(err, err_len, "unknown or incomplete option: %s (see --help)",
               optind > 0 && optind <= argc ? argv[optind - 1] : "?");
      return -EINVAL;
    }
    if (c >= 1000 && strcmp(config__opts[c - 1000].name, "config") == 0)
      config_path = optarg;
  }
  if (optind < argc) {
    snprintf(err, err_len, "unexpected argument: %s", argv[optind]);
    return -EINVAL;
  }
  int rc;
  if (config_path != NULL && (rc = config__load_file(cfg, config_path, err, err_len)) != 0)
    return rc;
  /* Environment. */
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(config__opts); i++) {
    const char *v = getenv(config__opts[i].env);
    if (v != NULL && *v != '\0' && (rc = config__set(cfg, &config__opts[i], v, config__opts[i].env, err, err_len)) != 0)
      return rc;
  }
  /* Flags. */
  optind = 1;
  while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
    if (c >= 1000 && (rc = config__set(cfg, &config__opts[c - 1000], optarg, "command line", err, err_len)) != 0)
      return rc;
  }
  if (cfg->db_owner_url != NULL && cfg->db_url == NULL) {
    snprintf(err, err_len, "--db-owner needs --db (the runtime role's conninfo)");
    return -EINVAL;
  }
  if (cfg->db_url == NULL && cfg->data_dir == NULL && !cfg->print_routes) {
    snprintf(err, err_len, "give --data-dir DIR (embedded PostgreSQL) or --db URI (external)");
    return -EINVAL;
  }
  if (cfg->admin_token_file == NULL && !cfg->print_routes) {
    if (cfg->data_dir == NULL) {
      snprintf(err, err_len, "--admin-token-file is required with --db and no --data-dir");
      return -EINVAL;
    }
    size_t len = strlen(cfg->data_dir) + sizeof("/admin-token");
    cfg->admin_token_file = malloc(len);
    if (cfg->admin_token_file == NULL)
      return -ENOMEM;
    snprintf(cfg->admin_token_file, len, "%s/admin-token", cfg->data_dir);
  }
  if (cfg->key_file == NULL && !cfg->print_routes) {
    /* Beside the other secrets: the data folder, or the admin token's. */
    const char *base = cfg->data_dir;
    size_t base_len = base ? strlen(base) : 0;
    if (base == NULL) {
      base = cfg->admin_token_file;
      const char *slash = strrchr(base, '/');
      base_len = slash ? (size_t)(slash - base) : 0;
      if (slash == base)
        base_len = 1;
    }
    size_t len = base_len + sizeof("/cpr.key");
    cfg->key_file = malloc(len);
    if (cfg->key_file == NULL)
      return -ENOMEM;
    if (base_len == 0)
      snprintf(cfg->key_file, len, "cpr.key");
    else
      snprintf(cfg->key_file, len, "%.*s/cpr.key", (int)base_len, base);
  }
  if (cfg->pool_size == 0 || cfg->http_max_connections == 0 || cfg->meeting_min_minutes <= 0) {
    snprintf(err, err_len, "pool-size, max-connections and meeting-min-minutes must be positive");
    return -EINVAL;
  }
  if (strcmp(cfg->cookie_secure, "auto") != 0 && strcmp(cfg->cookie_secure, "always") != 0 &&
      strcmp(cfg->cookie_secure, "never") != 0) {
    snprintf(err, err_len, "cookie-secure must be auto, always or never");
    return -EINVAL;
  }
  if (cfg->session_idle_s == 0 || cfg->session_max_s == 0 || cfg->session_idle_s > 31536000 ||
      cfg->session_max_s > 31536000 || cfg->signin_lock_after <= 0 || cfg->signin_lock_s > 31536000 ||
      cfg->signin_window_s == 0 || cfg->signin_window_s > 31536000 || cfg->signin_delay_ms > 60000 ||
      cfg->password_jobs_max == 0) {
    snprintf(err, err_len, "session-idle-s, session-max-s, signin-lock-after, signin-window-s and "
                           "password-jobs-max must be positive; durations at most a year, "
                           "signin-delay-ms at most 60000");
    return -EINVAL;
  }
  if (cfg->public_url != NULL && cfg->public_url[0] != '\0') {
    /* http(s)://host[:port][/path], kept without a trailing slash. */
    const char *u = cfg->public_url;
    size_t skip = strncmp(u, "https://", 8) == 0 ? 8 : strncmp(u, "http://", 7) == 0 ? 7 : 0;
    bool ok = skip > 0 && u[skip] != '\0' && u[skip] != '/';
    for (const unsigned char *c = (const unsigned char *)u; ok && *c; c++)
      ok = *c > ' ' && *c < 0x7f && *c != '?' && *c != '#' && *c != '"' && *c != '\\';
    if (!ok) {
      snprintf(err, err_len, "public-url must be an http:// or https:// URL without a query, e.g. "
                             "https://kip.example.dk");
      return -EINVAL;
    }
    size_t n = strlen(cfg->public_url);
    while (n > skip && cfg->public_url[n - 1] == '/')
      cfg->public_url[--n] = '\0';
  }
  password_params_t argon2 = {.t_cost = cfg->argon2_t, .m_kib = cfg->argon2_m_kib, .parallelism = cfg->argon2_p};
  const char *why = password_params_check(&argon2);
  if (why != NULL) {
    snprintf(err, err_len, "%s", why);
    return -EINVAL;
  }
  return 0;
}
