/* test-pg: db/ against a real PostgreSQL 15 (cluster_start into a temp dir).
 *
 * Covers the pool (prepared statements, errors, transactions, queue limits,
 * statement_timeout, close), pg_tick (a statement on a timer), pg_listen (LISTEN, its own coalesced
 * NOTIFY, reconnect), sessions, migrations (concurrent runs, checksum
 * changes, failing files) and the embedded cluster (kill -9 of the
 * postmaster, automatic restart, reconnect, stale postmaster, stop).
 * KIPD_TEST_PG_BINDIR gives the PostgreSQL binaries.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "db/cluster.h"
#include "db/migrate.h"
#include "db/pg_listen.h"
#include "db/pg_pool.h"
#include "db/pg_tick.h"
#include "tap.h"

static uv_loop_t loop;
static uv_timer_t tick;  /* wakes the loop while waiting for a condition */

static void on_tick(uv_timer_t *t) {
  (void)t;
}

static bool wait_for(bool (*done)(void *), void *arg, uint64_t ms) {
  uv_update_time(&loop);
  uint64_t until = uv_now(&loop) + ms;
  uv_timer_start(&tick, on_tick, 5, 5);
  bool ok;
  while (!(ok = done(arg)) && uv_now(&loop) < until)
    uv_run(&loop, UV_RUN_ONCE);
  uv_timer_stop(&tick);
  return ok;
}

static bool flag_set(void *p) {
  return *(bool *)p;
}

static bool pool_ready(void *p) {
  return pg_pool_ready(p);
}

static bool pool_down(void *p) {
  return !pg_pool_ready(p);
}

static bool all_up(void *p) {
  pg_pool_stats_t stats;
  pg_pool_stats(p, &stats);
  return stats.connections_up == 2;
}

static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000u;
}

/* ---- result capture ------------------------------------------------------------ */

typedef struct result_s {
  bool done;
  int calls;
  int err;
  bool has_res;
  char state[8];
  char v0[128];
  char v1[128];
} result_t;

static void copy_value(char *out, size_t len, const PGresult *res, int col) {
  out[0] = '\0';
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1 || PQnfields(res) <= col)
    return;
  snprintf(out, len, "%s", PQgetisnull(res, 0, col) ? "<NULL>" : PQgetvalue(res, 0, col));
}

static void on_result(void *data, int err, PGresult *res) {
  result_t *r = data;
  r->calls++;
  r->done = true;
  r->err = err;
  r->has_res = res != NULL;
  r->state[0] = '\0';
  if (res != NULL) {
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(r->state, sizeof(r->state), "%s", s ? s : "");
    copy_value(r->v0, sizeof(r->v0), res, 0);
    copy_value(r->v1, sizeof(r->v1), res, 1);
  }
}

static int exec_wait(pg_pool_t *pool, const pg_stmt_t *stmt, const char *const *params,
                     result_t *r) {
  memset(r, 0, sizeof(*r));
  int rc = pg_pool_exec(pool, stmt, params, on_result, r);
  if (rc < 0)
    return rc;
  wait_for(flag_set, &r->done, 15000);
  return r->done ? r->err : -9999;
}

typedef struct tx_s {
  bool done;
  int calls;
  int order[16];
  int errs[16];
  char states[16][8];
  int final_err;
  char final_state[8];
} tx_t;

static void on_tx(void *data, int index, int err, PGresult *res) {
  tx_t *t = data;
  if (t->calls < 16)
    t->order[t->calls] = index;
  t->calls++;
  const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (index < 0) {
    t->done = true;
    t->final_err = err;
    snprintf(t->final_state, sizeof(t->final_state), "%s", s ? s : "");
  } else if (index < 16) {
    t->errs[index] = err;
    snprintf(t->states[index], sizeof(t->states[index]), "%s", s ? s : "");
  }
}

typedef struct session_s {
  bool done;
  int err;
  pg_conn_t *conn;
} session_t;

static void on_acquire(void *data, int err, pg_conn_t *conn) {
  session_t *s = data;
  s->done = true;
  s->err = err;
  s->conn = conn;
}

static int query_wait(pg_conn_t *conn, const char *sql, result_t *r) {
  memset(r, 0, sizeof(*r));
  int rc = pg_conn_query(conn, sql, on_result, r);
  if (rc < 0)
    return rc;
  wait_for(flag_set, &r->done, 15000);
  return r->done ? r->err : -9999;
}

typedef struct migration_s {
  bool done;
  int err;
  int applied;
  char message[1024];
} migration_t;

static void on_migrated(void *data, int err, int applied, const char *message) {
  migration_t *m = data;
  m->done = true;
  m->err = err;
  m->applied = applied;
  snprintf(m->message, sizeof(m->message), "%s", message ? message : "");
}

typedef struct closed_s {
  bool done;
} closed_t;

static void on_pool_closed(pg_pool_t *pool, void *data) {
  (void)pool;
  ((closed_t *)data)->done = true;
}

static void on_cluster_stopped(cluster_t *c, void *data) {
  (void)c;
  *(bool *)data = true;
}

static int restarts;
static bool restarted;

static void on_restarted(cluster_t *c, void *data) {
  (void)c;
  (void)data;
  restarts++;
  restarted = true;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static void rm_rf(const char *path) {
  nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void unlink_file(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  unlink(path);
}

static void rename_file(const char *dir, const char *from, const char *to) {
  char a[512], b[512];
  snprintf(a, sizeof(a), "%s/%s", dir, from);
  snprintf(b, sizeof(b), "%s/%s", dir, to);
  rename(a, b);
}

static int write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return -errno;
  fputs(text, f);
  fclose(f);
  return 0;
}

static long postmaster_pid(const char *data_dir) {
  char path[512];
  snprintf(path, sizeof(path), "%s/pg/postmaster.pid", data_dir);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  long pid = -1;
  if (fscanf(f, "%ld", &pid) != 1)
    pid = -1;
  fclose(f);
  return pid;
}

static pg_pool_t *new_pool(const char *conninfo, unsigned size, unsigned max_queue,
                           uint64_t queue_timeout, uint64_t stmt_timeout, uint64_t backoff_min,
                           uint64_t backoff_max) {
  pg_pool_config_t cfg = {
      .conninfo = conninfo,
      .size = size,
      .max_queue = max_queue,
      .queue_timeout_ms = queue_timeout,
      .statement_timeout_ms = stmt_timeout,
      .connect_timeout_ms = 3000,
      .backoff_min_ms = backoff_min,
      .backoff_max_ms = backoff_max,
  };
  pg_pool_t *pool = NULL;
  if (pg_pool_new(&loop, &cfg, &pool) < 0)
    return NULL;
  return pool;
}

static bool close_pool(pg_pool_t *pool) {
  closed_t closed = {false};
  pg_pool_close(pool, on_pool_closed, &closed);
  bool ok = wait_for(flag_set, &closed.done, 10000);
  if (ok)
    pg_pool_free(pool);
  return ok;
}

/* ---- statements -------------------------------------------------------------------- */

static const pg_stmt_t st_add = {"t_add", "SELECT $1::int + 1, $2::text IS NULL", 2};
static const pg_stmt_t st_prepared = {
    "t_prepared", "SELECT count(*) FROM pg_prepared_statements WHERE name = $1", 1};
static const pg_stmt_t st_div = {"t_div", "SELECT 1 / $1::int", 1};
static const pg_stmt_t st_bad = {"t_bad", "SELEC 1", 0};
static const pg_stmt_t st_sleep = {"t_sleep", "SELECT pg_sleep($1::float8)", 1};
static const pg_stmt_t st_one = {"t_one", "SELECT 1", 0};
static const pg_stmt_t st_insert = {"t_insert", "INSERT INTO items (id, v) VALUES ($1::int, $2)",
                                    2};
static const pg_stmt_t st_count = {"t_count",
                                   "SELECT count(*) FROM items WHERE id = ANY ($1::int[])", 1};
static const pg_stmt_t st_settings = {
    "t_settings",
    "SELECT current_setting('statement_timeout'), current_setting('application_name')", 0};
static const pg_stmt_t st_length = {"t_length", "SELECT length($1), length(repeat($1, 2))", 1};
static const pg_stmt_t st_work_mem = {"t_work_mem", "SELECT current_setting('work_mem')", 0};
static const pg_stmt_t st_functions = {
    "t_functions",
    "SELECT (SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc "
    "         WHERE pronamespace = 'mt'::regnamespace) || '/' || "
    "       (SELECT coalesce(string_agg(tgname, ','), '') FROM pg_trigger WHERE tgrelid = 'm2'::regclass) || '/' || "
    "       (SELECT coalesce(string_agg(relname, ','), '') FROM pg_class "
    "         WHERE relnamespace = 'mt'::regnamespace AND relkind = 'v') || '/' || "
    "       (SELECT count(*) FROM kipd_function_files)::text, "
    "       'x'",
    0};

static const pg_stmt_t st_functions_stamp = {
    "t_functions_stamp", "SELECT applied_at::text || checksum, 'x' FROM kipd_function_files", 0};

static const pg_stmt_t st_recorded_9 = {
    "t_recorded_9", "SELECT checksum, name FROM kipd_migrations WHERE version = 9", 0};

static const pg_stmt_t st_migrated = {
    "t_migrated",
    "SELECT (SELECT count(*) FROM kipd_migrations)::text || '/' || "
    "(SELECT count(*) FROM m1)::text || '/' || (SELECT count(*) FROM m2 WHERE v = 'x')::text, "
    "to_regclass('m3') IS NULL",
    0};

/* ---- tests ------------------------------------------------------------------------ */

static void test_session(pg_pool_t *pool) {
  session_t s = {0};
  int rc = pg_pool_acquire(pool, on_acquire, &s);
  tap_ok(rc == 0 && !s.done, "acquire returns without calling back");
  wait_for(flag_set, &s.done, 10000);
  if (!tap_ok(s.done && s.err == 0 && s.conn != NULL, "acquire grants a connection"))
    return;
  result_t r;
  rc = query_wait(s.conn,
                  "CREATE TABLE items (id int PRIMARY KEY, v text); "
                  "SELECT 40 + 2",
                  &r);
  tap_ok(rc == 0 && strcmp(r.v0, "42") == 0, "session: multi-statement query gives the last result");
  memset(&r, 0, sizeof(r));
  const char *params[] = {"a"};
  rc = pg_conn_query_params(s.conn, "SELECT $1::text || 'x'", 1, params, on_result, &r);
  wait_for(flag_set, &r.done, 10000);
  tap_ok(rc == 0 && r.err == 0 && strcmp(r.v0, "ax") == 0, "session: query with params");
  rc = query_wait(s.conn, "SELECT 1; SELECT 1/0; SELECT 3", &r);
  tap_ok(rc == -EIO && strcmp(r.state, "22012") == 0, "session: the first error is reported");
  memset(&r, 0, sizeof(r));
  rc = pg_conn_query(s.conn, "SELECT 2", on_result, &r);
  result_t r2;
  memset(&r2, 0, sizeof(r2));
  int rc2 = pg_conn_query(s.conn, "SELECT 3", on_result, &r2);
  wait_for(flag_set, &r.done, 10000);
  tap_ok(rc == 0 && r.err == 0 && strcmp(r.v0, "2") == 0, "session: usable after an error");
  tap_ok(rc2 == -EINVAL && r2.calls == 0, "session: a second query while one runs is -EINVAL");
  rc = query_wait(s.conn, "BEGIN; INSERT INTO items VALUES (100, 'open')", &r);
  tap_ok(rc == 0, "session: open a transaction and leave it");
  pg_pool_release(pool, s.conn);
  /* Release must have rolled the open transaction back. */
  const char *ids[] = {"{100}"};
  rc = exec_wait(pool, &st_count, ids, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "0") == 0, "release rolls back an open session transaction");
}

static void test_exec(pg_pool_t *pool) {
  result_t r;
  const char *params[] = {"41", NULL};
  int rc = exec_wait(pool, &st_add, params, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "42") == 0 && strcmp(r.v1, "t") == 0,
         "exec: prepared statement with a parameter and a NULL");
  rc = exec_wait(pool, &st_settings, NULL, &r);
  tap_is_str(r.v0, "5s", "statement_timeout set through the options keyword");
  tap_is_str(r.v1, "kipd", "application_name is kipd");
  const char *zero[] = {"0"};
  rc = exec_wait(pool, &st_div, zero, &r);
  tap_ok(rc == -EIO && r.has_res && strcmp(r.state, "22012") == 0,
         "exec: SQL error gives -EIO with SQLSTATE 22012 (got %d %s)", rc, r.state);
  rc = exec_wait(pool, &st_bad, NULL, &r);
  tap_ok(rc == -EIO && strcmp(r.state, "42601") == 0,
         "exec: a failing prepare is the query's error (got %d %s)", rc, r.state);

  /* 8 MB out (flushed over several writable events), 16 MB back. */
  size_t big = 8u << 20;
  char *text = malloc(big + 1);
  memset(text, 'k', big);
  text[big] = '\0';
  const char *big_param[] = {text};
  rc = exec_wait(pool, &st_length, big_param, &r);
  free(text);
  tap_ok(rc == 0 && strcmp(r.v0, "8388608") == 0 && strcmp(r.v1, "16777216") == 0,
         "exec: large parameter and result (%s %s)", r.v0, r.v1);
}

static void test_small(pg_pool_t *small) {
  result_t r;
  const char *params[] = {"1", "x"};
  int rc = exec_wait(small, &st_add, params, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "2") == 0 && strcmp(r.v1, "f") == 0, "same statement, first run");
  rc = exec_wait(small, &st_add, params, &r);
  tap_ok(rc == 0, "same statement, second run (a second prepare would fail with 42P05)");
  const char *name[] = {"t_add"};
  rc = exec_wait(small, &st_prepared, name, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "1") == 0, "prepared once on the connection (count %s)", r.v0);

  /* Prepared, then the execution fails: the statement stays prepared. */
  const char *zero[] = {"0"}, *one[] = {"1"};
  rc = exec_wait(small, &st_div, zero, &r);
  tap_ok(rc == -EIO && strcmp(r.state, "22012") == 0, "first use fails at execution");
  rc = exec_wait(small, &st_div, one, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "1") == 0, "second use succeeds without a new prepare");
  const char *div_name[] = {"t_div"};
  rc = exec_wait(small, &st_prepared, div_name, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "1") == 0, "a failed execution keeps the prepared statement");

  rc = exec_wait(small, &st_work_mem, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "12MB") == 0,
         "options from the conninfo are kept next to statement_timeout (%s)", r.v0);

  rc = exec_wait(small, &st_bad, NULL, &r);
  tap_ok(rc == -EIO && strcmp(r.state, "42601") == 0, "failing prepare on a 1-connection pool");
  rc = exec_wait(small, &st_bad, NULL, &r);
  tap_ok(rc == -EIO && strcmp(r.state, "42601") == 0,
         "a failed prepare is not remembered as prepared (got %s)", r.state);
  rc = exec_wait(small, &st_one, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "1") == 0, "connection still works after a failed prepare");

  /* Transactions: commit. */
  const pg_stmt_t *ins2[] = {&st_insert, &st_insert};
  const char *a[] = {"1", "a"}, *b[] = {"2", "b"};
  const char *const *p2[] = {a, b};
  tx_t t = {0};
  rc = pg_pool_tx(small, ins2, 2, p2, on_tx, &t);
  wait_for(flag_set, &t.done, 10000);
  tap_ok(rc == 0 && t.done && t.calls == 3 && t.order[0] == 0 && t.order[1] == 1 &&
             t.order[2] == -1,
         "tx: callbacks in order 0, 1, -1");
  tap_ok(t.errs[0] == 0 && t.errs[1] == 0 && t.final_err == 0, "tx: committed");
  const char *both[] = {"{1,2}"};
  rc = exec_wait(small, &st_count, both, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "2") == 0, "tx: both rows written");

  /* Rollback: the middle statement fails. */
  const pg_stmt_t *ins3[] = {&st_insert, &st_insert, &st_insert};
  const char *c[] = {"3", "c"}, *dup[] = {"1", "dup"}, *d[] = {"4", "d"};
  const char *const *p3[] = {c, dup, d};
  memset(&t, 0, sizeof(t));
  rc = pg_pool_tx(small, ins3, 3, p3, on_tx, &t);
  wait_for(flag_set, &t.done, 10000);
  tap_ok(rc == 0 && t.done && t.errs[0] == 0 && t.errs[1] == -EIO &&
             strcmp(t.states[1], "23505") == 0 && t.errs[2] == -ECANCELED,
         "tx: failing middle statement -EIO 23505, later one -ECANCELED");
  tap_ok(t.final_err == -EIO && strcmp(t.final_state, "23505") == 0,
         "tx: final callback reports the error");
  const char *later[] = {"{3,4}"};
  rc = exec_wait(small, &st_count, later, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "0") == 0,
         "tx: nothing written, and the connection left the aborted transaction (%d %s)", rc,
         r.state);

  /* A failing prepare inside a transaction. */
  const pg_stmt_t *mixed[] = {&st_insert, &st_bad, &st_insert};
  const char *e[] = {"5", "e"}, *f[] = {"6", "f"};
  const char *const *pm[] = {e, NULL, f};
  memset(&t, 0, sizeof(t));
  rc = pg_pool_tx(small, mixed, 3, pm, on_tx, &t);
  wait_for(flag_set, &t.done, 10000);
  tap_ok(rc == 0 && t.done && t.errs[0] == 0 && t.errs[1] == -EIO &&
             strcmp(t.states[1], "42601") == 0 && t.errs[2] == -ECANCELED && t.final_err == -EIO,
         "tx: a failing prepare aborts the transaction");
  const char *five[] = {"{5,6}"};
  rc = exec_wait(small, &st_count, five, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "0") == 0, "tx: rolled back after the failed prepare");

  /* Queue full: one running, one waiting, the third is refused. */
  result_t q1, q2, q3;
  memset(&q1, 0, sizeof(q1));
  memset(&q2, 0, sizeof(q2));
  memset(&q3, 0, sizeof(q3));
  const char *short_sleep[] = {"0.05"};
  int rc1 = pg_pool_exec(small, &st_sleep, short_sleep, on_result, &q1);
  int rc2 = pg_pool_exec(small, &st_one, NULL, on_result, &q2);
  int rc3 = pg_pool_exec(small, &st_one, NULL, on_result, &q3);
  tap_ok(rc1 == 0 && rc2 == 0 && rc3 == 0 && q3.calls == 0,
         "queue full: not reported synchronously");
  wait_for(flag_set, &q3.done, 5000);
  tap_is_int(q3.err, -ENOSPC, "queue full: -ENOSPC");
  wait_for(flag_set, &q2.done, 5000);
  tap_ok(q1.err == 0 && q2.err == 0 && q1.calls == 1 && q2.calls == 1 && q3.calls == 1,
         "queue full: the running and the waiting request succeed, each called once");
  pg_pool_stats_t stats;
  pg_pool_stats(small, &stats);
  tap_ok(stats.queue_full_total == 1 && stats.connections_up == 1 && stats.queue_length == 0,
         "stats: queue_full_total 1, one connection up");

  /* Queue timeout. */
  memset(&q1, 0, sizeof(q1));
  memset(&q2, 0, sizeof(q2));
  const char *long_sleep[] = {"0.6"};
  rc1 = pg_pool_exec(small, &st_sleep, long_sleep, on_result, &q1);
  rc2 = pg_pool_exec(small, &st_one, NULL, on_result, &q2);
  wait_for(flag_set, &q2.done, 5000);
  tap_ok(rc1 == 0 && rc2 == 0 && q2.err == -ETIMEDOUT && !q1.done,
         "queue timeout: -ETIMEDOUT while the first still runs (got %d)", q2.err);
  wait_for(flag_set, &q1.done, 5000);
  tap_is_int(q1.err, 0, "queue timeout: the running query finishes");

  /* statement_timeout (1 s on this pool). */
  rc = exec_wait(small, &st_settings, NULL, &r);
  tap_is_str(r.v0, "1s", "small pool statement_timeout is 1s");
  const char *sleep3[] = {"3"};
  uint64_t t0 = now_ms();
  rc = exec_wait(small, &st_sleep, sleep3, &r);
  tap_ok(rc == -EIO && strcmp(r.state, "57014") == 0 && now_ms() - t0 < 2500,
         "statement_timeout fires with 57014 (got %d %s)", rc, r.state);

  /* Close: the running one finishes, the queued one is cancelled. */
  memset(&q1, 0, sizeof(q1));
  memset(&q2, 0, sizeof(q2));
  memset(&q3, 0, sizeof(q3));
  const char *mid_sleep[] = {"0.2"};
  rc1 = pg_pool_exec(small, &st_sleep, mid_sleep, on_result, &q1);
  rc2 = pg_pool_exec(small, &st_one, NULL, on_result, &q2);
  closed_t closed = {false};
  pg_pool_close(small, on_pool_closed, &closed);
  rc3 = pg_pool_exec(small, &st_one, NULL, on_result, &q3);
  tap_ok(rc1 == 0 && rc2 == 0 && rc3 == 0 && q2.calls == 0 && q3.calls == 0,
         "close: no callback from inside close or exec");
  wait_for(flag_set, &closed.done, 10000);
  tap_ok(closed.done && q1.err == 0 && q2.err == -ECANCELED && q3.err == -ECANCELED,
         "close: running query finished (%d), queued and late ones -ECANCELED (%d, %d)", q1.err,
         q2.err, q3.err);
  pg_pool_free(small);
}

/* Run the migrations of schema (code schema "mt") and wait. */
static int migrate_wait(pg_pool_t *pool, const char *schema, migration_t *m) {
  static const char *const code_schemas[] = {"mt", NULL};
  memset(m, 0, sizeof(*m));
  int rc = migrate_run(pool, schema, code_schemas, on_migrated, m);
  if (rc == 0)
    wait_for(flag_set, &m->done, 20000);
  return rc;
}

static void test_migrations(const char *conninfo, pg_pool_t *pool) {
  char schema[] = "/tmp/kipd-schema-XXXXXX";
  if (!tap_ok(mkdtemp(schema) != NULL, "schema temp dir"))
    return;
  char mig[64], fun[64];
  snprintf(mig, sizeof(mig), "%s/migrations", schema);
  snprintf(fun, sizeof(fun), "%s/functions", schema);
  mkdir(mig, 0755);
  mkdir(fun, 0755);
  write_file(mig, "001_a.sql", "CREATE SCHEMA mt;\nCREATE TABLE m1 (id int);\nINSERT INTO m1 VALUES (1);\n");
  write_file(mig, "9_b.sql", "CREATE TABLE m2 (id int);\n");
  /* Needs 9_b first: numeric, not lexical, order. */
  write_file(mig, "10_c.sql", "ALTER TABLE m2 ADD COLUMN v text;\nINSERT INTO m2 VALUES (1, 'x');\n");
  write_file(mig, "README", "not a migration\n");
  write_file(mig, "002_notes.txt", "not a migration either\n");
  /* Function files: numeric order, after the migrations (f2 calls f1 and
   * reads m2.v, so both must exist when the trigger fires). */
  write_file(fun, "01_one.sql", "CREATE FUNCTION mt.f1() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n");
  write_file(fun, "02_two.sql",
             "CREATE FUNCTION mt.f2() RETURNS trigger LANGUAGE plpgsql AS $$\n"
             "BEGIN NEW.v := coalesce(NEW.v, 'from trigger ' || mt.f1()); RETURN NEW; END $$;\n"
             "CREATE TRIGGER m2_v BEFORE INSERT ON m2 FOR EACH ROW EXECUTE FUNCTION mt.f2();\n"
             "CREATE VIEW mt.v1 AS SELECT mt.f1() AS one;\n");

  pg_pool_t *other = new_pool(conninfo, 1, 8, 10000, 5000, 50, 1000);
  static const char *const code_schemas[] = {"mt", NULL};
  migration_t m1 = {0}, m2 = {0};
  int rc1 = migrate_run(pool, schema, code_schemas, on_migrated, &m1);
  int rc2 = other ? migrate_run(other, schema, code_schemas, on_migrated, &m2) : -1;
  tap_ok(rc1 == 0 && rc2 == 0 && !m1.done && !m2.done, "two migrations started");
  wait_for(flag_set, &m1.done, 20000);
  wait_for(flag_set, &m2.done, 20000);
  tap_ok(m1.done && m2.done && m1.err == 0 && m2.err == 0,
         "concurrent migrations both succeed ('%s' '%s')", m1.message, m2.message);
  tap_ok(m1.applied + m2.applied == 3 && (m1.applied == 0 || m2.applied == 0),
         "each file applied once (%d + %d)", m1.applied, m2.applied);
  result_t r;
  int rc = exec_wait(pool, &st_migrated, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "3/1/1") == 0, "3 recorded, m1 and m2 filled once (%s)", r.v0);
  rc = exec_wait(pool, &st_functions, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "f1,f2/m2_v/v1/1") == 0,
         "function files applied once: functions, trigger, view, one record (%s)", r.v0);
  rc = exec_wait(pool, &st_functions_stamp, NULL, &r);
  char stamp[128];
  snprintf(stamp, sizeof(stamp), "%s", rc == 0 ? r.v0 : "");

  rc = migrate_wait(pool, schema, &m1);
  tap_ok(rc == 0 && m1.done && m1.err == 0 && m1.applied == 0, "second run applies nothing");
  rc = exec_wait(pool, &st_functions_stamp, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v0, stamp) == 0, "unchanged function files are not applied again");

  /* A changed function file: applied again; what it no longer defines is
   * gone (f1 renamed to f3, so the view and the trigger are remade). */
  write_file(fun, "01_one.sql", "CREATE FUNCTION mt.f3() RETURNS int LANGUAGE sql AS $$ SELECT 3 $$;\n");
  write_file(fun, "02_two.sql",
             "CREATE FUNCTION mt.f2() RETURNS trigger LANGUAGE plpgsql AS $$\n"
             "BEGIN NEW.v := coalesce(NEW.v, 'from trigger ' || mt.f3()); RETURN NEW; END $$;\n"
             "CREATE TRIGGER m2_v BEFORE INSERT ON m2 FOR EACH ROW EXECUTE FUNCTION mt.f2();\n");
  rc = migrate_wait(pool, schema, &m1);
  tap_ok(rc == 0 && m1.done && m1.err == 0 && m1.applied == 0, "changed function files: %s", m1.message);
  rc = exec_wait(pool, &st_functions, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "f2,f3/m2_v//1") == 0,
         "the database holds exactly what the function files define (%s)", r.v0);

  /* A function file that defines a function twice fails as a whole. */
  write_file(fun, "03_dup.sql", "CREATE FUNCTION mt.f3() RETURNS int LANGUAGE sql AS $$ SELECT 4 $$;\n");
  rc = migrate_wait(pool, schema, &m1);
  tap_ok(rc == 0 && m1.done && m1.err == -EIO && strstr(m1.message, "functions/03_dup.sql") &&
             strstr(m1.message, "42723"),
         "a function defined twice fails, naming the file: %s", m1.message);
  rc = exec_wait(pool, &st_functions, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "f2,f3/m2_v//1") == 0, "and changes nothing (%s)", r.v0);
  unlink_file(fun, "03_dup.sql");

  write_file(mig, "9_b.sql", "CREATE TABLE m2 (id bigint);\n");
  rc = migrate_wait(pool, schema, &m1);
  tap_ok(rc == 0 && m1.done && m1.err != 0 && strstr(m1.message, "9_b.sql") &&
             strstr(m1.message, "checksum"),
         "changed checksum fails: %s", m1.message);

  /* ... unless legacy.sha256 lists the recorded checksum: the row is then
   * recorded again under the file's name and checksum. */
  rc = exec_wait(pool, &st_recorded_9, NULL, &r);
  char recorded[128], legacy[256];
  snprintf(recorded, sizeof(recorded), "%s", rc == 0 ? r.v0 : "?");
  snprintf(legacy, sizeof(legacy), "# earlier versions\n%s  9_old_name.sql\n", recorded);
  write_file(mig, "legacy.sha256", legacy);
  rename_file(mig, "9_b.sql", "9_renamed.sql");
  rc = migrate_wait(pool, schema, &m1);
  tap_ok(rc == 0 && m1.done && m1.err == 0 && m1.applied == 0, "a legacy checksum is accepted: %s",
         m1.message);
  rc = exec_wait(pool, &st_recorded_9, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v1, "9_renamed.sql") == 0 && strcmp(r.v0, recorded) != 0,
         "and re-recorded under the file's name and checksum (%s)", r.v1);
  rc = migrate_wait(pool, schema, &m1);
  tap_ok(rc == 0 && m1.done && m1.err == 0 && m1.applied == 0, "then runs clean: %s", m1.message);

  /* A recorded migration the folder does not know (a newer kipd made it). */
  rename_file(mig, "10_c.sql", "10_c.sql.off");
  rc = migrate_wait(pool, schema, &m1);
  tap_ok(rc == 0 && m1.done && m1.err == -EINVAL && strstr(m1.message, "migration 10"),
         "an unknown recorded migration fails: %s", m1.message);
  rename_file(mig, "10_c.sql.off", "10_c.sql");

  write_file(mig, "011_bad.sql", "CREATE TABLE m3 (id int);\nSELEC 1;\n");
  rc = migrate_wait(pool, schema, &m1);
  tap_ok(rc == 0 && m1.done && m1.err == -EIO && strstr(m1.message, "011_bad.sql line 2") &&
             strstr(m1.message, "42601"),
         "failing migration names file, line and SQLSTATE: %s", m1.message);
  rc = exec_wait(pool, &st_migrated, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "3/1/1") == 0 && strcmp(r.v1, "t") == 0,
         "failing migration rolled back completely (%s, m3 absent %s)", r.v0, r.v1);
  rc = exec_wait(pool, &st_functions, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "f2,f3/m2_v//1") == 0, "functions untouched by the failed run (%s)", r.v0);

  memset(&m1, 0, sizeof(m1));
  rc = migrate_run(pool, "/nonexistent/kipd-schema", code_schemas, on_migrated, &m1);
  tap_ok(rc == 0 && !m1.done, "missing schema dir: reported through the callback");
  wait_for(flag_set, &m1.done, 10000);
  tap_ok(m1.done && m1.err == -ENOENT && strstr(m1.message, "/nonexistent/kipd-schema"),
         "missing schema dir: %s", m1.message);

  if (other != NULL)
    tap_ok(close_pool(other), "second migration pool closed");
  rm_rf(schema);
}

static void test_restart(const char *data_dir, cluster_t *cluster, const char *conninfo,
                         pg_pool_t *main_pool) {
  /* Long backoff, so only pg_pool_reconnect brings it back quickly. */
  pg_pool_t *pool = new_pool(conninfo, 2, 16, 5000, 20000, 4000, 8000);
  if (!tap_ok(pool != NULL && wait_for(pool_ready, pool, 5000), "restart pool ready"))
    return;
  result_t inflight, r;
  memset(&inflight, 0, sizeof(inflight));
  const char *sleep10[] = {"10"};
  int rc = pg_pool_exec(pool, &st_sleep, sleep10, on_result, &inflight);
  bool never = false;
  wait_for(flag_set, &never, 300);

  long pid = postmaster_pid(data_dir);
  restarted = false;
  int restarts_before = restarts;
  tap_ok(pid > 1 && kill((pid_t)pid, SIGKILL) == 0, "kill -9 the postmaster (pid %ld)", pid);
  wait_for(flag_set, &inflight.done, 5000);
  tap_ok(rc == 0 && inflight.done && inflight.err == -ECONNRESET && !inflight.has_res,
         "in-flight query fails with -ECONNRESET (got %d)", inflight.err);
  tap_ok(wait_for(pool_down, pool, 5000), "pool notices: not ready");
  memset(&r, 0, sizeof(r));
  uint64_t t0 = now_ms();
  rc = pg_pool_exec(pool, &st_one, NULL, on_result, &r);
  bool sync_call = r.calls != 0;
  wait_for(flag_set, &r.done, 5000);
  tap_ok(rc == 0 && !sync_call && r.err == -ECONNRESET && now_ms() - t0 < 1000,
         "database down: fails fast with -ECONNRESET (got %d after %llu ms)", r.err,
         (unsigned long long)(now_ms() - t0));
  tap_ok(wait_for(flag_set, &restarted, 20000) && restarts == restarts_before + 1,
         "cluster restarted the postmaster and restarted_cb fired");
  long new_pid = postmaster_pid(data_dir);
  tap_ok(cluster_running(cluster) && new_pid > 1 && new_pid != pid, "a new postmaster (pid %ld)",
         new_pid);
  pg_pool_reconnect(pool);
  pg_pool_reconnect(main_pool);

  t0 = now_ms();
  tap_ok(wait_for(pool_ready, pool, 1500), "pg_pool_reconnect reconnects at once (%llu ms)",
         (unsigned long long)(now_ms() - t0));
  rc = exec_wait(pool, &st_one, NULL, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "1") == 0, "queries succeed again");
  wait_for(pool_ready, main_pool, 5000);
  const char *params[] = {"1", NULL};
  rc = exec_wait(main_pool, &st_add, params, &r);
  tap_ok(rc == 0 && strcmp(r.v0, "2") == 0, "main pool re-prepares after reconnect (%d %s)", rc,
         r.state);
  tap_ok(wait_for(all_up, pool, 3000), "both connections up again");
  pg_pool_stats_t stats;
  pg_pool_stats(pool, &stats);
  tap_ok(stats.reconnects_total == 2 && stats.connections_up == 2,
         "stats count the reconnects (%llu, up %u)", (unsigned long long)stats.reconnects_total,
         stats.connections_up);
  tap_ok(strstr(pg_pool_last_error(pool), "server") != NULL, "last_error says why: %s",
         pg_pool_last_error(pool));
  tap_ok(close_pool(pool), "restart pool closed");
}

static void test_unreachable(void) {
  pg_pool_t *pool = NULL;
  pg_pool_config_t bad = {.conninfo = "host=/x bogus_option=1", .size = 1, .max_queue = 1};
  tap_is_int(pg_pool_new(&loop, &bad, &pool), -EINVAL, "malformed conninfo: -EINVAL");
  if (pool != NULL)
    close_pool(pool);
  pool = new_pool("host=/nonexistent/kipd-socket-dir dbname=kipd", 2, 8, 5000, 1000, 1000, 2000);
  if (!tap_ok(pool != NULL, "pool on an unreachable server"))
    return;
  result_t r;
  memset(&r, 0, sizeof(r));
  uint64_t t0 = now_ms();
  int rc = pg_pool_exec(pool, &st_one, NULL, on_result, &r);
  bool sync_call = r.calls != 0;
  wait_for(flag_set, &r.done, 6000);
  tap_ok(rc == 0 && !sync_call && r.err == -ECONNRESET && now_ms() - t0 < 1000,
         "unreachable: fails fast with -ECONNRESET, not after the queue timeout (%d, %llu ms)",
         r.err, (unsigned long long)(now_ms() - t0));
  tap_ok(!pg_pool_ready(pool) && strstr(pg_pool_last_error(pool), "kipd-socket-dir") != NULL,
         "unreachable: not ready, last_error: %s", pg_pool_last_error(pool));
  tap_is_int(pg_pool_exec(pool, NULL, NULL, on_result, &r), -EINVAL, "exec without stmt: -EINVAL");
  const pg_stmt_t *none[] = {&st_add};
  tap_is_int(pg_pool_tx(pool, none, 1, NULL, NULL, NULL), -EINVAL, "tx without cb: -EINVAL");
  tap_is_int(pg_pool_tx(pool, none, 1, NULL, on_tx, &r), -EINVAL,
             "tx: statement with params but none given: -EINVAL");
  tap_ok(close_pool(pool), "unreachable pool closed");
}

/* A server that accepts the connection but never answers: only the
 * connect timeout ends the attempt. */
static void test_connect_timeout(void) {
  char dir[] = "/tmp/kipd-hang-XXXXXX";
  if (!tap_ok(mkdtemp(dir) != NULL, "hang temp dir"))
    return;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/.s.PGSQL.5432", dir);
  int rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
  rc = rc == 0 ? listen(fd, 16) : rc;
  char conninfo[200];
  snprintf(conninfo, sizeof(conninfo), "host=%s dbname=kipd", dir);
  pg_pool_config_t cfg = {.conninfo = conninfo, .size = 1, .max_queue = 4,
                          .queue_timeout_ms = 5000, .statement_timeout_ms = 1000,
                          .connect_timeout_ms = 200, .backoff_min_ms = 5000,
                          .backoff_max_ms = 5000};
  pg_pool_t *pool = NULL;
  if (!tap_ok(rc == 0 && pg_pool_new(&loop, &cfg, &pool) == 0, "pool on a silent server")) {
    close(fd);
    rm_rf(dir);
    return;
  }
  result_t r;
  memset(&r, 0, sizeof(r));
  uint64_t t0 = now_ms();
  rc = pg_pool_exec(pool, &st_one, NULL, on_result, &r);
  wait_for(flag_set, &r.done, 6000);
  uint64_t took = now_ms() - t0;
  tap_ok(rc == 0 && r.err == -ECONNRESET && took >= 150 && took < 2000,
         "connect_timeout ends the attempt; the waiting request fails (%d after %llu ms)", r.err,
         (unsigned long long)took);
  tap_is_str(pg_pool_last_error(pool), "connection attempt timed out", "last_error: timed out");
  tap_ok(close_pool(pool), "silent-server pool closed");
  close(fd);
  rm_rf(dir);
}

static void test_parent_dir(const char *bindir) {
  if (geteuid() != 0) {
    tap_diag("not root: skipping the parent directory check");
    return;
  }
  char outer[] = "/tmp/kipd-nest-XXXXXX";
  if (!tap_ok(mkdtemp(outer) != NULL, "nested temp dir"))
    return;
  char inner[64];
  snprintf(inner, sizeof(inner), "%s/data", outer);
  cluster_config_t cfg = {inner, bindir, "postgres", "kipd", NULL, .nosync = true};
  cluster_t *c = NULL;
  char err[512] = "";
  int rc = cluster_start(&loop, &cfg, NULL, NULL, 10000, &c, err, sizeof(err));
  tap_ok(rc == -EACCES && strstr(err, outer) != NULL && strstr(err, "traversable") != NULL,
         "a parent the cluster user cannot enter is named: %s", err);
  rm_rf(outer);
}

/* A postmaster left behind by a kipd killed with -9: started by hand. */
static pid_t start_stray_postmaster(const char *bindir, const char *data_dir) {
  char bin[512], pg[512], sock[600], log[512];
  snprintf(bin, sizeof(bin), "%s/postgres", bindir);
  snprintf(pg, sizeof(pg), "%s/pg", data_dir);
  snprintf(sock, sizeof(sock), "unix_socket_directories=%s/run", data_dir);
  snprintf(log, sizeof(log), "%s/postgres.log", data_dir);
  struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_APPEND);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (pw != NULL && (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0))
      _exit(126);
    if (chdir(data_dir) < 0)
      _exit(126);
    execl(bin, bin, "-D", pg, "-p", "5432", "-c", "listen_addresses=", "-c", sock, "-c",
          "unix_socket_permissions=0700", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 500 && pid > 0; i++) {
    char path[600], buf[1024] = "";
    snprintf(path, sizeof(path), "%s/postmaster.pid", pg);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
      size_t n = fread(buf, 1, sizeof(buf) - 1, f);
      buf[n] = '\0';
      fclose(f);
      if (atol(buf) == pid && strstr(buf, "ready") != NULL)
        return pid;
    }
    usleep(20000);
  }
  return -1;
}

/* ---- pg_tick: a statement on a timer ------------------------------------------------ */

typedef struct tick_state_s {
  int answers;          /* answers to the timed statement */
  int again_until;      /* ask for an immediate rerun while answers < this */
  int max_in_flight;    /* answers seen while another was in flight: must stay 0 */
  int in_flight;
  int side_answers;
  int side_err;
  bool closed;
  bool late;            /* a callback after closed */
} tick_state_t;

static bool tick_on_result(void *data, int err, PGresult *res) {
  tick_state_t *st = data;
  if (st->closed)
    st->late = true;
  if (err == 0 && PQntuples(res) == 1)
    st->answers++;
  return st->answers < st->again_until;
}

static void tick_on_side(void *data, int err, PGresult *res) {
  tick_state_t *st = data;
  (void)res;
  if (st->closed)
    st->late = true;
  st->side_answers++;
  st->side_err = err;
}

static void tick_on_closed(void *data) {
  ((tick_state_t *)data)->closed = true;
}

static bool tick_answers_3(void *p) {
  return ((tick_state_t *)p)->answers >= 3;
}

static bool tick_answers_4(void *p) {
  return ((tick_state_t *)p)->answers >= 4;
}

static void test_tick(pg_pool_t *pool) {
  /* Reruns at once while the callback asks, without waiting for the timer
   * (an hour here). */
  tick_state_t st = {.again_until = 3};
  pg_tick_t *t = NULL;
  tap_is_int(pg_tick_new(&loop, pool, &st_one, NULL, 0, 3600 * 1000, tick_on_result, &st, &t), 0,
             "pg_tick_new");
  tap_ok(wait_for(tick_answers_3, &st, 5000), "tick: the first run at 0 ms, then again at once");
  uv_update_time(&loop);
  uint64_t until = uv_now(&loop) + 200;
  while (uv_now(&loop) < until)
    uv_run(&loop, UV_RUN_NOWAIT), uv_update_time(&loop);
  tap_is_int(st.answers, 3, "tick: no rerun once the callback says no, before the interval");
  pg_tick_run(t);
  pg_tick_run(t);   /* in flight: not sent twice */
  tap_ok(wait_for(tick_answers_4, &st, 5000), "tick: pg_tick_run sends it");
  until = uv_now(&loop) + 300;
  while (uv_now(&loop) < until)
    uv_run(&loop, UV_RUN_NOWAIT), uv_update_time(&loop);
  tap_is_int(st.answers, 4, "tick: a second pg_tick_run while in flight sends nothing");
  tap_ok(pg_tick_sent_ns(t) > 0, "tick: the send time is kept");
  /* A side statement in flight holds the close back. */
  static const char *const sleep_params[2] = {"0.3", NULL};
  tap_is_int(pg_tick_exec(t, &st_sleep, sleep_params, tick_on_side, &st), 0, "tick: a side statement");
  pg_tick_close(t, tick_on_closed, &st);
  tap_ok(!st.closed, "tick: not closed while the side statement runs");
  tap_ok(wait_for(flag_set, &st.closed, 5000), "tick: closed after it");
  tap_is_int(st.side_answers, 1, "tick: the side statement answered once");
  tap_is_int(st.side_err, 0, "tick: and without error");
  tap_ok(!st.late, "tick: no callback after the close callback");

  /* The timer: every 30 ms. */
  tick_state_t timed = {.again_until = 0};
  tap_is_int(pg_tick_new(&loop, pool, &st_one, NULL, 30, 30, tick_on_result, &timed, &t), 0,
             "pg_tick_new with an interval");
  tap_ok(wait_for(tick_answers_3, &timed, 5000), "tick: the timer sends it again and again");
  pg_tick_close(t, tick_on_closed, &timed);
  tap_ok(wait_for(flag_set, &timed.closed, 5000), "tick: closed");
}

/* ---- pg_listen ------------------------------------------------------------------ */

typedef struct listen_state_s {
  int ready;
  int downs;
  int notified;         /* notifications with an empty payload */
  int notified_x;       /* with the payload "x" */
  int other;
  bool closed;
} listen_state_t;

static void listen_on_ready(void *data, bool reconnected) {
  (void)reconnected;
  ((listen_state_t *)data)->ready++;
}

static void listen_on_notify(void *data, const char *payload) {
  listen_state_t *st = data;
  if (payload[0] == '\0')
    st->notified++;
  else if (strcmp(payload, "x") == 0)
    st->notified_x++;
  else
    st->other++;
}

static void listen_on_down(void *data, const char *why) {
  (void)why;
  ((listen_state_t *)data)->downs++;
}

static void listen_on_closed(void *data) {
  ((listen_state_t *)data)->closed = true;
}

static bool listen_ready_1(void *p) {
  return ((listen_state_t *)p)->ready >= 1;
}
static bool listen_ready_2(void *p) {
  return ((listen_state_t *)p)->ready >= 2;
}
static bool listen_notified_2(void *p) {
  return ((listen_state_t *)p)->notified >= 2;
}
static bool listen_notified_3(void *p) {
  return ((listen_state_t *)p)->notified >= 3;
}
static bool listen_notified_x(void *p) {
  return ((listen_state_t *)p)->notified_x >= 1;
}
static bool listen_down(void *p) {
  return ((listen_state_t *)p)->downs >= 1;
}

/* Let the loop run for ms (what may still arrive, arrives). */
static bool never(void *p) {
  (void)p;
  return false;
}

static const pg_stmt_t st_notify_x = {"t_notify_x", "SELECT pg_notify('t_chan', 'x')", 0};
static const pg_stmt_t st_kill_listen = {
  "t_kill_listen",
  "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 't-listen'", 0};

static void test_listen(const char *conninfo, pg_pool_t *pool) {
  listen_state_t st = {0};
  pg_listen_config_t cfg = {conninfo, "t_chan", "t-listen", 5000, 50, 200};
  static const pg_listen_cbs_t cbs = {listen_on_ready, listen_on_notify, listen_on_down};
  pg_listen_t *l = NULL;
  tap_is_int(pg_listen_new(&loop, &cfg, &cbs, &st, &l), 0, "pg_listen_new");
  if (l == NULL)
    return;
  tap_ok(!pg_listen_notify(l), "listen: notify before LISTEN is in effect sends nothing (false)");
  tap_ok(wait_for(listen_ready_1, &st, 5000) && pg_listen_ready(l), "listen: ready");

  /* Five calls in a row: one NOTIFY in flight, the other four coalesce into
   * exactly one more after it. The listener receives its own. */
  bool all = true;
  for (int i = 0; i < 5; i++)
    all = pg_listen_notify(l) && all;
  tap_ok(all, "listen: notify while listening (sent or queued) is true");
  tap_ok(wait_for(listen_notified_2, &st, 5000), "listen: its own NOTIFY arrives, no payload");
  wait_for(never, NULL, 300);
  tap_is_int(st.notified, 2, "listen: five calls, one in flight: exactly two NOTIFYs");
  tap_ok(pg_listen_notify(l), "listen: notify after the last completed");
  tap_ok(wait_for(listen_notified_3, &st, 5000), "listen: a new NOTIFY once none is in flight");
  wait_for(never, NULL, 200);
  tap_is_int(st.notified, 3, "listen: and only one");

  /* Another session's notification, with a payload. */
  result_t r;
  tap_is_int(exec_wait(pool, &st_notify_x, NULL, &r), 0, "pg_notify from the pool");
  tap_ok(wait_for(listen_notified_x, &st, 5000) && st.other == 0, "listen: another session's payload");

  /* A terminated backend: on_down, notify is false while down, then LISTEN
   * again (on_ready), and notify works on the new connection. */
  pg_listen_notify(l); /* in flight when the backend goes: cleared with it */
  pg_listen_notify(l);
  tap_is_int(exec_wait(pool, &st_kill_listen, NULL, &r), 0, "terminate the LISTEN backend");
  tap_ok(wait_for(listen_down, &st, 5000), "listen: on_down");
  tap_ok(!pg_listen_ready(l) && !pg_listen_notify(l), "listen: notify while down is false");
  tap_ok(wait_for(listen_ready_2, &st, 5000) && pg_listen_ready(l), "listen: ready again");
  tap_ok(pg_listen_reconnects(l) == 1, "listen: one reconnect");
  int before = st.notified;
  tap_ok(pg_listen_notify(l), "listen: notify on the new connection");
  wait_for(never, NULL, 300);
  tap_is_int(st.notified, before + 1, "listen: it arrives, once");

  pg_listen_notify(l); /* in flight at close: no callback after close */
  int notified = st.notified;
  pg_listen_close(l, listen_on_closed, &st);
  tap_ok(wait_for(flag_set, &st.closed, 5000), "listen: closed");
  wait_for(never, NULL, 100);
  tap_is_int(st.notified, notified, "listen: no callback after close");
}

int main(void) {
  const char *bindir = getenv("KIPD_TEST_PG_BINDIR");
  if (bindir == NULL || bindir[0] == '\0')
    bindir = "/usr/lib/postgresql/15/bin";
  signal(SIGPIPE, SIG_IGN);

  uv_loop_init(&loop);
  uv_timer_init(&loop, &tick);

  char data_dir[] = "/tmp/kipd-pg-XXXXXX";
  if (mkdtemp(data_dir) == NULL) {
    tap_ok(false, "mkdtemp: %s", strerror(errno));
    return tap_done();
  }
  uint64_t started = now_ms();

  cluster_config_t ccfg = {data_dir, bindir, "postgres", "kipd", NULL, .nosync = true};
  cluster_t *cluster = NULL;
  char err[512] = "";
  int rc = cluster_start(&loop, &ccfg, on_restarted, NULL, 60000, &cluster, err, sizeof(err));
  if (!tap_ok(rc == 0, "cluster_start (%s)", err)) {
    rm_rf(data_dir);
    return tap_done();
  }
  tap_ok(cluster_running(cluster), "cluster running");
  struct stat st;
  char path[600];
  snprintf(path, sizeof(path), "%s/run", data_dir);
  tap_ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700, "socket dir is 0700");
  tap_ok(strstr(cluster_conninfo(cluster), "dbname=kipd") != NULL, "conninfo: %s",
         cluster_conninfo(cluster));
  char *conninfo = strdup(cluster_conninfo(cluster));

  pg_pool_t *pool = new_pool(conninfo, 2, 64, 5000, 5000, 50, 1000);
  tap_ok(pool != NULL, "pg_pool_new");
  tap_ok(pool != NULL && wait_for(pool_ready, pool, 5000), "pool ready");
  if (pool == NULL)
    return tap_done();

  test_unreachable();
  test_connect_timeout();
  test_parent_dir(bindir);
  test_session(pool);
  test_exec(pool);
  test_tick(pool);
  test_listen(conninfo, pool);
  char small_conninfo[700];
  snprintf(small_conninfo, sizeof(small_conninfo), "%s options='-c work_mem=12MB'", conninfo);
  pg_pool_t *small = new_pool(small_conninfo, 1, 1, 200, 1000, 50, 1000);
  if (tap_ok(small != NULL && wait_for(pool_ready, small, 5000), "small pool ready"))
    test_small(small);
  test_migrations(conninfo, pool);
  test_restart(data_dir, cluster, conninfo, pool);

  bool stopped = false;
  cluster_stop(cluster, on_cluster_stopped, &stopped);
  tap_ok(wait_for(flag_set, &stopped, 30000), "cluster_stop calls back");
  tap_ok(!cluster_running(cluster), "cluster not running after stop");
  cluster_free(cluster);
  tap_ok(wait_for(pool_down, pool, 5000), "pool notices the stopped cluster");
  tap_ok(close_pool(pool), "main pool closed");

  /* A stray postmaster from a killed kipd: cluster_start stops it first. */
  pid_t stray = start_stray_postmaster(bindir, data_dir);
  if (tap_ok(stray > 0, "stray postmaster started (pid %d)", (int)stray)) {
    rc = cluster_start(&loop, &ccfg, NULL, NULL, 60000, &cluster, err, sizeof(err));
    int status;
    pid_t reaped = waitpid(stray, &status, WNOHANG);
    tap_ok(rc == 0 && reaped == stray, "cluster_start replaces a stray postmaster (%s)", err);
    if (rc == 0) {
      tap_ok(postmaster_pid(data_dir) != stray && cluster_running(cluster),
             "our own postmaster runs");
      stopped = false;
      cluster_stop(cluster, on_cluster_stopped, &stopped);
      tap_ok(wait_for(flag_set, &stopped, 30000), "second cluster stopped");
      cluster_free(cluster);
    }
    if (reaped != stray) {
      kill(stray, SIGKILL);
      waitpid(stray, &status, 0);
    }
  }

  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  tap_is_int(uv_loop_close(&loop), 0, "uv_loop_close: no handles left");
  tap_diag("took %llu ms", (unsigned long long)(now_ms() - started));
  free(conninfo);
  if (getenv("KIPD_TEST_KEEP") == NULL)
    rm_rf(data_dir);
  else
    tap_diag("kept %s", data_dir);
  return tap_done();
}
