/* db/migrate: apply the numbered plain-SQL migrations in schema_dir.
 *
 * The files are read and checksummed (SHA-256) up front, with blocking file
 * I/O: migrations run at start-up. Then, on one session connection:
 *
 *   BEGIN
 *   SET LOCAL statement_timeout = 0; SELECT pg_advisory_xact_lock(LOCK)
 *   CREATE TABLE IF NOT EXISTS kipd_migrations (...)
 *   SELECT version, checksum FROM kipd_migrations
 *   for each pending file: its text (simple protocol), then INSERT its row
 *   COMMIT
 *
 * The advisory lock comes before CREATE TABLE IF NOT EXISTS, which is not
 * safe against a concurrent creator. A second kipd waits on the lock and then
 * finds nothing to do. Any error rolls everything back.
 */
#include "db/migrate.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIGRATE_MAX_FILE (64u * 1024 * 1024)

typedef struct migrate_file_s {
  int version;
  char *name;                   /* file name, e.g. 001_core.sql */
  char *sql;                    /* NUL-terminated content */
  char checksum[2 * 32 + 1];    /* hex SHA-256 of the content */
  bool applied;
} migrate_file_t;

typedef enum {
  MIGRATE_BEGIN,
  MIGRATE_LOCK,
  MIGRATE_TABLE,
  MIGRATE_READ,
  MIGRATE_APPLY,
  MIGRATE_RECORD,
  MIGRATE_COMMIT,
  MIGRATE_ROLLBACK,
} migrate_step_t;

typedef struct migrate_s {
  pg_pool_t *pool;
  pg_conn_t *conn;
  migrate_done_cb cb;
  void *data;
  migrate_file_t *files;
  size_t nfiles;
  size_t current;               /* APPLY/RECORD: the file */
  int applied;
  migrate_step_t step;
  int err;                      /* first error */
  char message[1024];
} migrate_t;

static void migrate__on_result(void *data, int err, PGresult *res);

/* ---- files -------------------------------------------------------------------- */

static void migrate__free(migrate_t *m) {
  for (size_t i = 0; i < m->nfiles; i++) {
    free(m->files[i].name);
    free(m->files[i].sql);
  }
  free(m->files);
  free(m);
}

static int migrate__fail(migrate_t *m, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int migrate__fail(migrate_t *m, int err, const char *fmt, ...) {
  if (m->err == 0) {
    m->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->message, sizeof(m->message), fmt, ap);
    va_end(ap);
  }
  return err;
}

/* NNN_anything.sql -> NNN; -1 if the name does not match. */
static int migrate__version(const char *name) {
  const char *p = name;
  long v = 0;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (*p - '0');
    if (v > INT_MAX)
      return -1;
    p++;
  }
  if (p == name || *p != '_')
    return -1;
  size_t len = strlen(name);
  if (len < 5 || strcmp(name + len - 4, ".sql") != 0 || (size_t)(p - name) + 1 >= len - 4)
    return -1;
  return (int)v;
}

static int migrate__cmp(const void *a, const void *b) {
  const migrate_file_t *x = a, *y = b;
  return (x->version > y->version) - (x->version < y->version);
}

static int migrate__read_file(migrate_t *m, const char *dir, migrate_file_t *f) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof(path), "%s/%s", dir, f->name) >= (int)sizeof(path))
    return migrate__fail(m, -ENAMETOOLONG, "%s: path too long", f->name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return migrate__fail(m, -errno, "cannot open %s: %s", path, strerror(errno));
  int rc = 0;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    rc = migrate__fail(m, -errno, "cannot stat %s: %s", path, strerror(errno));
    goto out;
  }
  if (st.st_size > (off_t)MIGRATE_MAX_FILE) {
    rc = migrate__fail(m, -EFBIG, "%s is larger than %u bytes", path, MIGRATE_MAX_FILE);
    goto out;
  }
  size_t size = (size_t)st.st_size;
  f->sql = malloc(size + 1);
  if (f->sql == NULL) {
    rc = migrate__fail(m, -ENOMEM, "out of memory");
    goto out;
  }
  size_t n = 0;
  while (n < size) {
    ssize_t r = read(fd, f->sql + n, size - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = migrate__fail(m, -errno, "cannot read %s: %s", path, strerror(errno));
      goto out;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  f->sql[n] = '\0';
  if (memchr(f->sql, '\0', n) != NULL) {
    rc = migrate__fail(m, -EINVAL, "%s contains a NUL byte", path);
    goto out;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_Digest(f->sql, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
    rc = migrate__fail(m, -EIO, "%s: SHA-256 failed", path);
    goto out;
  }
  for (unsigned i = 0; i < mdlen; i++)
    snprintf(f->checksum + 2 * i, 3, "%02x", md[i]);
out:
  close(fd);
  return rc;
}

static int migrate__scan(migrate_t *m, const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return migrate__fail(m, -errno, "cannot open schema directory %s: %s", dir, strerror(errno));
  int rc = 0;
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int version = migrate__version(e->d_name);
    if (version < 0)
      continue;
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
      continue;
    if (m->nfiles == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      migrate_file_t *nf = realloc(m->files, ncap * sizeof(*nf));
      if (nf == NULL) {
        rc = migrate__fail(m, -ENOMEM, "out of memory");
        goto out;
      }
      m->files = nf;
      cap = ncap;
    }
    migrate_file_t *f = &m->files[m->nfiles];
    memset(f, 0, sizeof(*f));
    f->version = version;
    f->name = strdup(e->d_name);
    if (f->name == NULL) {
      rc = migrate__fail(m, -ENOMEM, "out of memory");
      goto out;
    }
    m->nfiles++;
  }
  qsort(m->files, m->nfiles, sizeof(*m->files), migrate__cmp);
  for (size_t i = 1; i < m->nfiles; i++) {
    if (m->files[i].version == m->files[i - 1].version) {
      rc = migrate__fail(m, -EINVAL, "migrations %s and %s have the same number",
                         m->files[i - 1].name, m->files[i].name);
      goto out;
    }
  }
  for (size_t i = 0; i < m->nfiles; i++) {
    rc = migrate__read_file(m, dir, &m->files[i]);
    if (rc < 0)
      goto out;
  }
out:
  closedir(d);
  return rc;
}

/* ---- the session ---------------------------------------------------------------- */

static void migrate__finish(migrate_t *m) {
  if (m->conn != NULL) {
    pg_pool_release(m->pool, m->conn);
    m->conn = NULL;
  }
  m->cb(m->data, m->err, m->err ? 0 : m->applied, m->err ? m->message : NULL);
  migrate__free(m);
}

/* Line of a 1-based character position in text (UTF-8). */
static int migrate__line_of(const char *text, long position) {
  int line = 1;
  long chars = 0;
  for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
    if ((*p & 0xC0) == 0x80)
      continue;  /* continuation byte */
    if (++chars >= position)
      break;
    if (*p == '\n')
      line++;
  }
  return line;
}

static void migrate__sql_error(migrate_t *m, int err, const PGresult *res, const char *what) {
  if (err != -EIO || res == NULL) {
    migrate__fail(m, err, "%s: %s", what,
                  err == -ECONNRESET ? "database connection lost" : strerror(-err));
    return;
  }
  const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
  char where[64] = "";
  if (m->step == MIGRATE_APPLY && pos != NULL)
    snprintf(where, sizeof(where), " line %d",
             migrate__line_of(m->files[m->current].sql, strtol(pos, NULL, 10)));
  if (primary == NULL) {
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
    msg[strcspn(msg, "\n")] = '\0';
    migrate__fail(m, err, "%s%s: %s", what, where, msg);
    return;
  }
  migrate__fail(m, err, "%s%s: %s%s%s (SQLSTATE %s)", what, where, primary,
                detail != NULL ? ": " : "", detail != NULL ? detail : "", state ? state : "?");
}

static const char *migrate__step_name(const migrate_t *m, char *buf, size_t len) {
  switch (m->step) {
  case MIGRATE_BEGIN:
    return "BEGIN";
  case MIGRATE_LOCK:
    return "taking the migration lock";
  case MIGRATE_TABLE:
    return "creating kipd_migrations";
  case MIGRATE_READ:
    return "reading kipd_migrations";
  case MIGRATE_APPLY:
    return m->files[m->current].name;
  case MIGRATE_RECORD:
    snprintf(buf, len, "recording %s", m->files[m->current].name);
    return buf;
  case MIGRATE_COMMIT:
    return "COMMIT";
  case MIGRATE_ROLLBACK:
    return "ROLLBACK";
  }
  return "?";
}

static void migrate__query(migrate_t *m, migrate_step_t step, const char *sql) {
  m->step = step;
  int rc = pg_conn_query(m->conn, sql, migrate__on_result, m);
  if (rc < 0) {
    char buf[128];
    migrate__fail(m, rc, "%s: %s", migrate__step_name(m, buf, sizeof(buf)), strerror(-rc));
    migrate__finish(m);
  }
}

/* Apply the next pending file, or commit. */
static void migrate__next(migrate_t *m) {
  while (m->current < m->nfiles && m->files[m->current].applied)
    m->current++;
  if (m->current >= m->nfiles) {
    migrate__query(m, MIGRATE_COMMIT, "COMMIT");
    return;
  }
  migrate__query(m, MIGRATE_APPLY, m->files[m->current].sql);
}

/* Compare what is recorded with the files. */
static int migrate__check_recorded(migrate_t *m, const PGresult *res) {
  for (int row = 0; row < PQntuples(res); row++) {
    long version = strtol(PQgetvalue(res, row, 0), NULL, 10);
    const char *checksum = PQgetvalue(res, row, 1);
    for (size_t i = 0; i < m->nfiles; i++) {
      migrate_file_t *f = &m->files[i];
      if (f->version != version)
        continue;
      if (strcmp(f->checksum, checksum) != 0)
        return migrate__fail(m, -EINVAL,
                             "%s: checksum mismatch: the file changed after it was applied "
                             "(recorded %.12s..., file %.12s...); add a new migration instead",
                             f->name, checksum, f->checksum);
      f->applied = true;
    }
  }
  return 0;
}

static void migrate__on_result(void *data, int err, PGresult *res) {
  migrate_t *m = data;
  char buf[128];
  if (m->step == MIGRATE_ROLLBACK) {
    migrate__finish(m);  /* reports the error that led here */
    return;
  }
  if (err != 0) {
    migrate__sql_error(m, err, res, migrate__step_name(m, buf, sizeof(buf)));
    if (err == -ECONNRESET || err == -ECANCELED) {
      migrate__finish(m);  /* nothing to roll back on a dead connection */
      return;
    }
    migrate__query(m, MIGRATE_ROLLBACK, "ROLLBACK");
    return;
  }
  switch (m->step) {
  case MIGRATE_BEGIN: {
    char sql[128];
    snprintf(sql, sizeof(sql),
             "SET LOCAL statement_timeout = 0; SELECT pg_advisory_xact_lock(%ld)",
             (long)KIPD_MIGRATE_LOCK);
    migrate__query(m, MIGRATE_LOCK, sql);
    break;
  }
  case MIGRATE_LOCK:
    migrate__query(m, MIGRATE_TABLE,
                   "CREATE TABLE IF NOT EXISTS kipd_migrations ("
                   "version int PRIMARY KEY, "
                   "name text NOT NULL, "
                   "checksum text NOT NULL, "
                   "applied_at timestamptz NOT NULL DEFAULT now())");
    break;
  case MIGRATE_TABLE:
    migrate__query(m, MIGRATE_READ, "SELECT version, checksum FROM kipd_migrations");
    break;
  case MIGRATE_READ:
    if (migrate__check_recorded(m, res) < 0) {
      migrate__query(m, MIGRATE_ROLLBACK, "ROLLBACK");
      break;
    }
    m->current = 0;
    migrate__next(m);
    break;
  case MIGRATE_APPLY: {
    migrate_file_t *f = &m->files[m->current];
    char version[16];
    snprintf(version, sizeof(version), "%d", f->version);
    const char *params[3] = {version, f->name, f->checksum};
    m->step = MIGRATE_RECORD;
    int rc = pg_conn_query_params(m->conn,
                                  "INSERT INTO kipd_migrations (version, name, checksum) "
                                  "VALUES ($1::int, $2, $3)",
                                  3, params, migrate__on_result, m);
    if (rc < 0) {
      migrate__fail(m, rc, "recording %s: %s", f->name, strerror(-rc));
      migrate__query(m, MIGRATE_ROLLBACK, "ROLLBACK");
    }
    break;
  }
  case MIGRATE_RECORD:
    m->applied++;
    m->files[m->current].applied = true;
    m->current++;
    migrate__next(m);
    break;
  case MIGRATE_COMMIT:
    migrate__finish(m);
    break;
  case MIGRATE_ROLLBACK:
    break;
  }
}

static void migrate__on_acquire(void *data, int err, pg_conn_t *conn) {
  migrate_t *m = data;
  m->conn = conn;
  if (m->err != 0) {  /* reading the files failed */
    migrate__finish(m);
    return;
  }
  if (err != 0) {
    migrate__fail(m, err, "no database connection for migrations: %s",
                  err == -ECONNRESET ? "database unreachable" : strerror(-err));
    migrate__finish(m);
    return;
  }
  migrate__query(m, MIGRATE_BEGIN, "BEGIN");
}

int migrate_run(pg_pool_t *pool, const char *schema_dir, migrate_done_cb cb, void *data) {
  if (pool == NULL || schema_dir == NULL || cb == NULL)
    return -EINVAL;
  migrate_t *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return -ENOMEM;
  m->pool = pool;
  m->cb = cb;
  m->data = data;
  /* A file error is kept and reported through cb once the session is
   * granted, so cb is never called from inside migrate_run. */
  (void)migrate__scan(m, schema_dir);
  int rc = pg_pool_acquire(pool, migrate__on_acquire, m);
  if (rc < 0) {
    migrate__free(m);
    return rc;
  }
  return 0;
}
