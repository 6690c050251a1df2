/* db/cluster: the embedded PostgreSQL cluster in kipd's data folder.
 *
 * Knows no KIP word. On first start it runs initdb into DATA_DIR/pg (as the
 * unprivileged system user cfg->pg_user when kipd runs as root, else as
 * kipd's own user), then runs the postmaster as a child process with
 * listen_addresses='' and its unix socket in DATA_DIR/run. If the postmaster
 * dies, it is restarted with exponential backoff and the restarted_cb fires
 * (kipd then tells the pool to reconnect). cluster_stop() asks for a fast
 * shutdown and waits for the child to exit.
 *
 * Start-up (initdb, directory set-up) is allowed to block: it runs before the
 * loop serves anyone. Restarts after that are asynchronous (uv_spawn).
 */
#ifndef KIPD_DB_CLUSTER_H
#define KIPD_DB_CLUSTER_H

#include <stdbool.h>
#include <uv.h>

#include "util/error.h"

typedef struct cluster_s cluster_t;

typedef struct cluster_config_s {
  const char *data_dir;    /* kipd's data folder (created 0700 if missing) */
  const char *pg_bindir;   /* /usr/lib/postgresql/15/bin */
  const char *pg_user;     /* "postgres"; used only when running as root */
  const char *db_name;     /* "kipd" */
  const char *setup_sql;   /* run as the superuser in db_name at every start, after the
                              database exists (psql, ON_ERROR_STOP); NULL: none. It must
                              be idempotent. */
  bool nosync;             /* initdb --no-sync and fsync=off: fast, for tests only */
} cluster_config_t;

typedef void (*cluster_event_cb)(cluster_t *c, void *data);

/* Prepare the folder, initdb if needed, start the postmaster and wait (at
 * most timeout_ms, blocking: start-up only) until it accepts connections and
 * database db_name exists. Returns 0 or -errno with a message in err. *out is
 * new. restarted_cb (may be NULL) fires after each automatic restart. cfg is
 * borrowed for the call. A postmaster still running on DATA_DIR/pg (kipd was
 * killed) is shut down first. db_name must be [A-Za-z0-9_]{1,63}. Set
 * KIPD_PG_NOSYNC=1 (tests only) for initdb --no-sync and fsync=off.
 * On failure nothing is left to free, but a spawned child's handle may still
 * be closing: run the loop before uv_loop_close(). */
int cluster_start(uv_loop_t *loop, const cluster_config_t *cfg,
                  cluster_event_cb restarted_cb, void *cb_data,
                  unsigned timeout_ms, cluster_t **out,
                  char *err, size_t err_len) KIPD_MUST_CHECK;

/* The libpq connection string for the cluster (borrowed). */
const char *cluster_conninfo(const cluster_t *c);

/* The pid of a postmaster running on DATA_DIR/pg (of a kipd that is
 * running, or was killed), or 0. Blocking file reads: start-up only. */
long cluster_postmaster_alive(const char *data_dir);
/* The connection string for the cluster as another role (trust over the
 * private socket). Returns 0, or -ENAMETOOLONG when buf (len bytes) is too
 * small. user must be [A-Za-z0-9_]{1,63}, else -EINVAL. */
int cluster_conninfo_as(const cluster_t *c, const char *user, char *buf, size_t len) KIPD_MUST_CHECK;

/* The superuser's connection string for the cluster of data_dir, running
 * or not, reached through DATA_DIR/run (a running kipd's cluster, for an
 * online kipd --backup). Returns 0, -EINVAL for a bad db_name, or
 * -ENAMETOOLONG / -errno (data_dir cannot be resolved). */
int cluster_socket_conninfo(const char *data_dir, const char *db_name, char *buf,
                            size_t len) KIPD_MUST_CHECK;

/* True while the postmaster child is running. */
bool cluster_running(const cluster_t *c);

/* Fast shutdown (SIGINT to the postmaster; SIGQUIT after 30 s, SIGKILL
 * after 5 s more), no more restarts; cb fires when the child has exited and
 * all handles are closed. */
void cluster_stop(cluster_t *c, cluster_event_cb cb, void *data);
/* Only after cluster_stop's cb (may be called from it). */
void cluster_free(cluster_t *c);

#endif
