/* config: kipd's settings as parsed from flags, environment and file.
 *
 * config only parses, into this neutral, flat representation. It knows no
 * layer's types: each layer owns its own configuration struct
 * (http_limits_t in http/server.h, pg_pool_config_t in db/pg_pool.h,
 * cluster_config_t in db/cluster.h, app_config_t in app/app.h), and main.c
 * fills each from these values. There are no global configuration
 * variables.
 *
 * Precedence: command-line flags > KIPD_* environment > config file >
 * built-in defaults. */
#ifndef KIPD_UTIL_CONFIG_H
#define KIPD_UTIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct kipd_config_s {
  char *listen_host;            /* "127.0.0.1" */
  int listen_port;              /* 8080 */
  char *data_dir;               /* embedded mode: cluster, socket, tokens */
  char *db_url;                 /* external mode when set: the runtime role */
  char *db_owner_url;           /* external mode: the owner role, for migrations */
  char *admin_token_file;       /* default DATA_DIR/admin-token */
  char *key_file;               /* CPR keyring: default DATA_DIR/cpr.key, else beside the admin token */
  char *schema_dir;             /* migrations/ and functions/ */
  char *pg_bindir;              /* /usr/lib/postgresql/15/bin */
  char *pg_user;                /* system user for the embedded cluster: postgres */
  char *config_file;
  char *log_level;              /* debug|info|warn|error */
  bool migrate_only;
  bool print_routes;            /* print the route table and exit (tests) */
  char *backup_file;            /* kipd --backup FILE: dump the embedded database, then exit */
  char *restore_file;           /* kipd --restore FILE: restore into an empty data folder, then exit */
  bool rotate_key;              /* re-encrypt every CPR number under a new key, then exit */
  uint64_t shutdown_grace_ms;   /* SIGTERM: finish in-flight work: 10 s */
  int meeting_min_minutes;      /* 90 */
  int next_meeting_max_months;  /* 6 */
  uint64_t daily_pass_interval_s; /* the daily pass runs this often: 3600; 0 = never */
  bool pg_nosync;               /* embedded cluster: initdb and run without fsync (tests only) */
  /* Sign-in and sessions (api/session.c, docs/security.md). */
  uint64_t session_idle_s;      /* a session unused this long expires: 1800 */
  uint64_t session_max_s;       /* absolute lifetime of a session: 43200 */
  char *cookie_secure;          /* "auto" (X-Forwarded-Proto), "always", "never" */
  char *trusted_proxies;        /* comma-separated proxy IPs whose X-Forwarded-For is believed */
  char *public_url;             /* base of absolute links ("https://kip.example.dk", no trailing
                                 * slash); NULL: from the request's Host and X-Forwarded-Proto */
  unsigned max_connections_per_address; /* open connections from one address (not a trusted proxy): 256; 0 = no cap */
  int signin_lock_after;        /* consecutive failures that lock a username: 5 */
  uint64_t signin_lock_s;       /* how long it stays locked: 900 */
  uint64_t signin_window_s;     /* failures older than this are forgotten: 900 */
  uint64_t signin_delay_ms;     /* delay of the 3rd failure, doubling to 8x: 1000 */
  unsigned password_jobs_max;   /* Argon2 jobs queued or running before 429: 16 */
  unsigned argon2_t;            /* Argon2id passes: 3 */
  unsigned argon2_m_kib;        /* Argon2id memory in KiB: 65536 */
  unsigned argon2_p;            /* Argon2id lanes: 1 */
  uint64_t audit_seal_interval_ms; /* the audit sealer runs this often: 1000; 0 = never */
  uint64_t events_heartbeat_s;   /* GET /v1/events: a heartbeat comment this often: 15; 0 = none */
  /* Webhooks (webhook_config_t in app/webhook.h, docs/webhooks.md). */
  uint64_t webhook_poll_ms;     /* due deliveries are looked for this often: 1000; 0 = none */
  uint64_t webhook_timeout_ms;  /* one request in all: 10000 */
  uint64_t webhook_connect_timeout_ms; /* 5000 */
  uint64_t webhook_retry_base_ms;  /* first retry after about this, doubling: 10000 */
  uint64_t webhook_retry_window_s; /* retried this long, then failed: 86400 */
  unsigned webhook_max_in_flight;  /* requests at once: 64 */
  char *metrics_token;          /* GET /metrics needs it as a bearer token; NULL: open */
  bool metrics_loopback_only;   /* GET /metrics only from loopback peers */
  bool webhook_allow_loopback;  /* loopback addresses and http:// (tests) */
  char *webhook_allow_net;      /* CIDR blocks of private addresses webhooks may reach */
  /* HTTP (http_limits_t). */
  size_t http_max_body_bytes;   /* 1 MiB: larger bodies get 413 */
  size_t http_max_header_bytes; /* 16 KiB of request line + headers: 431 */
  uint64_t http_read_timeout_ms;      /* header/body must arrive within this: 10 s */
  uint64_t http_keepalive_timeout_ms; /* idle keep-alive connection is closed: 60 s */
  uint64_t http_write_timeout_ms;     /* a response must drain within this: 30 s */
  unsigned http_max_connections;      /* further accepts are refused: 10000 */
  /* Database pool (pg_pool_config_t). */
  unsigned pool_size;           /* connections: 8 */
  unsigned pool_max_queue;      /* waiting requests before 503: 1024 */
  uint64_t pool_queue_timeout_ms;     /* a waiting request gives up: 5 s */
  uint64_t pool_statement_timeout_ms; /* server-side statement_timeout: 10 s */
  uint64_t pool_connect_timeout_ms;   /* one connection attempt: 5 s */
  uint64_t pool_backoff_min_ms;       /* reconnect backoff start: 100 ms */
  uint64_t pool_backoff_max_ms;       /* reconnect backoff cap: 5 s */
} kipd_config_t;

/* Fill cfg with defaults. */
void config_defaults(kipd_config_t *cfg);

/* Apply the config file, KIPD_* environment and argv to cfg, in order of
 * increasing precedence. Returns 0, 1 when --help/--version was handled (the
 * caller exits 0), or -EINVAL with a message in err (err_len bytes). */
int config_load(kipd_config_t *cfg, int argc, char **argv, char *err, size_t err_len) KIPD_MUST_CHECK;

/* Release strings owned by cfg. */
void config_free(kipd_config_t *cfg);

void config_print_help(const char *argv0);

#endif
