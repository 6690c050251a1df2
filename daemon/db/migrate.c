/* db/migrate: apply the migrations and the function files of a schema
 * folder (see migrate.h for the layout and the rules).
 *
 * The files are read and checksummed (SHA-256) up front, with blocking file
 * I/O: this runs at start-up. Then, on one session connection:
 *
 *   BEGIN
 *   SET LOCAL statement_timeout = 0; SELECT pg_advisory_xact_lock(LOCK)
 *   CREATE TABLE IF NOT EXISTS kipd_migrations (...), kipd_function_files (...)
 *   SELECT version, checksum FROM kipd_migrations
 *   SELECT checksum FROM kipd_function_files
 *   for each row recorded under a legacy checksum: UPDATE it to the file's
 *   when a migration is pending or the function files changed:
 *     SELECT the DROP statements for the code schemas' views, triggers and
 *     functions; run them
 *     for each pending migration: its text (simple protocol), then INSERT its row
 *     SET LOCAL check_function_bodies = off
 *     for each function file: its text
 *     record the function files' checksum
 *   COMMIT
 *
 * The advisory lock comes before CREATE TABLE IF NOT EXISTS, which is not
 * safe against a concurrent creator. Any error rolls everything back.
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
#define MIGRATE_SHA256_HEX (2 * 32 + 1)

typedef struct migrate_file_s {
  int version;
  char *name;                   /* file name, e.g. 001_core.sql */
  char *sql;                    /* NUL-terminated content */
  char checksum[MIGRATE_SHA256_HEX]; /* hex SHA-256 of the content */
  bool applied;
  bool rebase;                  /* recorded under a legacy checksum */
} migrate_file_t;

typedef struct migrate_set_s {
  const char *what;             /* "migrations" or "functions" */
  migrate_file_t *files;
  size_t n;
} migrate_set_t;

typedef struct migrate_legacy_s {
  int version;
  char checksum[MIGRATE_SHA256_HEX];
} migrate_legacy_t;

typedef enum {
  MIGRATE_BEGIN,
  MIGRATE_LOCK,
  MIGRATE_TABLE,
  MIGRATE_READ,
  MIGRATE_READ_FUNCTIONS,
  MIGRATE_REBASE,
  MIGRATE_DROP_LIST,
  MIGRATE_DROP,
  MIGRATE_APPLY,
  MIGRATE_RECORD,
  MIGRATE_FUNCTIONS_SETUP,
  MIGRATE_FUNCTIONS_APPLY,
  MIGRATE_FUNCTIONS_RECORD,
  MIGRATE_COMMIT,
  MIGRATE_ROLLBACK,
} migrate_step_t;

typedef struct migrate_s {
  pg_pool_t *pool;
  pg_conn_t *conn;
  migrate_done_cb cb;
  void *data;
  migrate_set_t migrations;
  migrate_set_t functions;
  migrate_legacy_t *legacy;
  size_t nlegacy;
  char functions_checksum[MIGRATE_SHA256_HEX];
  char *code_schemas;           /* text[] literal, e.g. {"a","b"} */
  bool functions_due;
  size_t current;               /* REBASE/APPLY/RECORD/FUNCTIONS_APPLY: the file */
  int applied;
  int pending;
  migrate_step_t step;
  int err;                      /* first error */
  char message[1024];
} migrate_t;

static void migrate__on_result(void *data, int err, PGresult *res);

/* ---- files -------------------------------------------------------------------- */

static void migrate__free_set(migrate_set_t *set) {
  for (size_t i = 0; i < set->n; i++) {
    free(set->files[i].name);
    free(set->files[i].sql);
  }
  free(set->files);
}

static void migrate__free(migrate_t *m) {
  migrate__free_set(&m->migrations);
  migrate__free_set(&m->functions);
  free(m->legacy);
  free(m->code_schemas);
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

static void migrate__hex(const unsigned char *md, unsigned int len, char *out) {
  for (unsigned i = 0; i < len; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The whole file, NUL-terminated, into *out (new). */
static int migrate__slurp(migrate_t *m, const char *path, char **out, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return migrate__fail(m, -errno, "cannot open %s: %s", path, strerror(errno));
  int rc = 0;
  char *buf = NULL;
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
  buf = malloc(size + 1);
  if (buf == NULL) {
    rc = migrate__fail(m, -ENOMEM, "out of memory");
    goto out;
  }
  size_t n = 0;
  while (n < size) {
    ssize_t r = read(fd, buf + n, size - n);
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
  buf[n] = '\0';
  if (memchr(buf, '\0', n) != NULL) {
    rc = migrate__fail(m, -EINVAL, "%s contains a NUL byte", path);
    goto out;
  }
  *out = buf;
  *len = n;
  buf = NULL;
out:
  free(buf);
  close(fd);
  return rc;
}

static int migrate__read_file(migrate_t *m, const char *dir, migrate_file_t *f) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof(path), "%s/%s", dir, f->name) >= (int)sizeof(path))
    return migrate__fail(m, -ENAMETOOLONG, "%s: path too long", f->name);
  size_t n = 0;
  int rc = migrate__slurp(m, path, &f->sql, &n);
  if (rc < 0)
    return rc;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_Digest(f->sql, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
    return migrate__fail(m, -EIO, "%s: SHA-256 failed", path);
  migrate__hex(md, mdlen, f->checksum);
  return 0;
}

/* The NNN_name.sql files of dir, sorted by number, read and checksummed. */
static int migrate__scan(migrate_t *m, const char *dir, migrate_set_t *set) {
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
    if (set->n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      migrate_file_t *nf = realloc(set->files, ncap * sizeof(*nf));
      if (nf == NULL) {
        rc = migrate__fail(m, -ENOMEM, "out of memory");
        goto out;
      }
      set->files = nf;
      cap = ncap;
    }
    migrate_file_t *f = &set->files[set->n];
    memset(f, 0, sizeof(*f));
    f->version = version;
    f->name = strdup(e->d_name);
    if (f->name == NULL) {
      rc = migrate__fail(m, -ENOMEM, "out of memory");
      goto out;
    }
    set->n++;
  }
  if (set->n > 0)
    qsort(set->files, set->n, sizeof(*set->files), migrate__cmp);
  for (size_t i = 1; i < set->n; i++) {
    if (set->files[i].version == set->files[i - 1].version) {
      rc = migrate__fail(m, -EINVAL, "%s %s and %s have the same number", set->what,
                         set->files[i - 1].name, set->files[i].name);
      goto out;
    }
  }
  for (size_t i = 0; i < set->n; i++) {
    rc = migrate__read_file(m, dir, &set->files[i]);
    if (rc < 0)
      goto out;
  }
out:
  closedir(d);
  return rc;
}

/* migrations/legacy.sha256, if there is one: "<64 hex>  NNN_name.sql" lines
 * (sha256sum's format; '#' lines and blank lines are skipped). */
static int migrate__read_legacy(migrate_t *m, const char *dir) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof(path), "%s/legacy.sha256", dir) >= (int)sizeof(path))
    return migrate__fail(m, -ENAMETOOLONG, "%s: path too long", dir);
  if (access(path, F_OK) != 0)
    return 0;
  char *text = NULL;
  size_t len = 0;
  int rc = migrate__slurp(m, path, &text, &len);
  if (rc < 0)
    return rc;
  size_t cap = 0;
  int lineno = 0;
  for (char *line = text, *next; line != NULL && *line != '\0'; line = next) {
    lineno++;
    next = strchr(line, '\n');
    if (next != NULL)
      *next++ = '\0';
    if (*line == '\0' || *line == '#')
      continue;
    size_t hex = strspn(line, "0123456789abcdef");
    const char *name = line + hex;
    if (hex != 64 || name[0] != ' ' || (name[1] != ' ' && name[1] != '*')) {
      rc = migrate__fail(m, -EINVAL, "%s line %d: expected \"<sha256>  <file name>\"", path, lineno);
      break;
    }
    name += 2;
    int version = migrate__version(name);
    if (version < 0) {
      rc = migrate__fail(m, -EINVAL, "%s line %d: %s is not a migration file name", path, lineno, name);
      break;
    }
    if (m->nlegacy == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      migrate_legacy_t *nl = realloc(m->legacy, ncap * sizeof(*nl));
      if (nl == NULL) {
        rc = migrate__fail(m, -ENOMEM, "out of memory");
        break;
      }
      m->legacy = nl;
      cap = ncap;
    }
    m->legacy[m->nlegacy].version = version;
    memcpy(m->legacy[m->nlegacy].checksum, line, 64);
    m->legacy[m->nlegacy].checksum[64] = '\0';
    m->nlegacy++;
  }
  free(text);
  return rc;
}

/* One checksum over the function files: SHA-256 of "name checksum\n" lines
 * in order, so a renamed, added, removed or changed file changes it. */
static int migrate__functions_checksum(migrate_t *m) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (ctx == NULL)
    return migrate__fail(m, -ENOMEM, "out of memory");
  int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
  for (size_t i = 0; ok && i < m->functions.n; i++) {
    const migrate_file_t *f = &m->functions.files[i];
    ok = EVP_DigestUpdate(ctx, f->name, strlen(f->name)) && EVP_DigestUpdate(ctx, " ", 1) &&
         EVP_DigestUpdate(ctx, f->checksum, strlen(f->checksum)) && EVP_DigestUpdate(ctx, "\n", 1);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32;
  EVP_MD_CTX_free(ctx);
  if (!ok)
    return migrate__fail(m, -EIO, "SHA-256 failed");
  migrate__hex(md, mdlen, m->functions_checksum);
  return 0;
}

/* {"a","b"}: a text[] literal of the schema names. */
static int migrate__schemas_literal(migrate_t *m, const char *const *schemas) {
  size_t len = 3;
  for (size_t i = 0; schemas[i] != NULL; i++) {
    if (schemas[i][0] == '\0' || strpbrk(schemas[i], "\"\\") != NULL)
      return -EINVAL;
    len += strlen(schemas[i]) + 3;
  }
  m->code_schemas = malloc(len);
  if (m->code_schemas == NULL)
    return -ENOMEM;
  char *p = m->code_schemas;
  *p++ = '{';
  for (size_t i = 0; schemas[i] != NULL; i++)
    p += sprintf(p, "%s\"%s\"", i ? "," : "", schemas[i]);
  *p++ = '}';
  *p = '\0';
  return 0;
}

static int migrate__read_all(migrate_t *m, const char *schema_dir) {
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof(dir), "%s/migrations", schema_dir) >= (int)sizeof(dir))
    return migrate__fail(m, -ENAMETOOLONG, "%s: path too long", schema_dir);
  int rc = migrate__scan(m, dir, &m->migrations);
  if (rc == 0)
    rc = migrate__read_legacy(m, dir);
  if (rc < 0)
    return rc;
  if (snprintf(dir, sizeof(dir), "%s/functions", schema_dir) >= (int)sizeof(dir))
    return migrate__fail(m, -ENAMETOOLONG, "%s: path too long", schema_dir);
  rc = migrate__scan(m, dir, &m->functions);
  if (rc == 0)
    rc = migrate__functions_checksum(m);
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

/* The file whose text the current step sends, or NULL. */
static const migrate_file_t *migrate__current_file(const migrate_t *m) {
  if (m->step == MIGRATE_APPLY)
    return &m->migrations.files[m->current];
  if (m->step == MIGRATE_FUNCTIONS_APPLY)
    return &m->functions.files[m->current];
  return NULL;
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
  const migrate_file_t *f = migrate__current_file(m);
  char where[64] = "";
  if (f != NULL && pos != NULL)
    snprintf(where, sizeof(where), " line %d", migrate__line_of(f->sql, strtol(pos, NULL, 10)));
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
  case MIGRATE_READ_FUNCTIONS:
    return "reading kipd_function_files";
  case MIGRATE_REBASE:
    snprintf(buf, len, "recording %s in place of its earlier version", m->migrations.files[m->current].name);
    return buf;
  case MIGRATE_DROP_LIST:
  case MIGRATE_DROP:
    return "dropping the functions, views and triggers of the previous function files";
  case MIGRATE_APPLY:
    snprintf(buf, len, "migrations/%s", m->migrations.files[m->current].name);
    return buf;
  case MIGRATE_RECORD:
    snprintf(buf, len, "recording %s", m->migrations.files[m->current].name);
    return buf;
  case MIGRATE_FUNCTIONS_SETUP:
    return "preparing the function files";
  case MIGRATE_FUNCTIONS_APPLY:
    snprintf(buf, len, "functions/%s", m->functions.files[m->current].name);
    return buf;
  case MIGRATE_FUNCTIONS_RECORD:
    return "recording the function files";
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
    char buf[160];
    migrate__fail(m, rc, "%s: %s", migrate__step_name(m, buf, sizeof(buf)), strerror(-rc));
    migrate__finish(m);
  }
}

static void migrate__query_params(migrate_t *m, migrate_step_t step, const char *sql, int n,
                                  const char *const *params) {
  m->step = step;
  int rc = pg_conn_query_params(m->conn, sql, n, params, migrate__on_result, m);
  if (rc < 0) {
    char buf[160];
    migrate__fail(m, rc, "%s: %s", migrate__step_name(m, buf, sizeof(buf)), strerror(-rc));
    migrate__query(m, MIGRATE_ROLLBACK, "ROLLBACK");
  }
}

/* The statements that drop what the previous function files made: views
 * and materialized views of the code schemas, triggers that call one of
 * their functions, then the functions and procedures. One DROP per kind,
 * so objects that depend on each other go together. */
static const char migrate__drop_list_sql[] =
  "WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = ANY ($1::text[])), "
  "ext AS (SELECT objid, classid FROM pg_depend WHERE deptype = 'e') "
  "SELECT concat_ws(E';\\n', "
  "(SELECT 'DROP VIEW ' || string_agg(format('%I.%I', n.nspname, c.relname), ', ') "
  "   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
  "  WHERE c.relkind = 'v' AND c.relnamespace IN (SELECT oid FROM ns) "
  "    AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)), "
  "(SELECT 'DROP MATERIALIZED VIEW ' || string_agg(format('%I.%I', n.nspname, c.relname), ', ') "
  "   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
  "  WHERE c.relkind = 'm' AND c.relnamespace IN (SELECT oid FROM ns) "
  "    AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)), "
  "(SELECT string_agg(format('DROP TRIGGER %I ON %I.%I', t.tgname, n.nspname, c.relname), E';\\n') "
  "   FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
  "   JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
  "  WHERE NOT t.tgisinternal AND p.pronamespace IN (SELECT oid FROM ns)), "
  "(SELECT 'DROP ROUTINE ' || string_agg(format('%I.%I(%s)', n.nspname, p.proname, "
  "                                              pg_get_function_identity_arguments(p.oid)), ', ') "
  "   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
  "  WHERE p.pronamespace IN (SELECT oid FROM ns) "
  "    AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)))";

/* Re-record the next legacy row, or go on to the migrations. */
static void migrate__next_rebase(migrate_t *m) {
  while (m->current < m->migrations.n && !m->migrations.files[m->current].rebase)
    m->current++;
  if (m->current < m->migrations.n) {
    migrate_file_t *f = &m->migrations.files[m->current];
    f->rebase = false;
    char version[16];
    snprintf(version, sizeof(version), "%d", f->version);
    const char *params[3] = {version, f->name, f->checksum};
    migrate__query_params(m, MIGRATE_REBASE,
                          "UPDATE kipd_migrations SET name = $2, checksum = $3 WHERE version = $1::int",
                          3, params);
    return;
  }
  if (!m->functions_due) {
    migrate__query(m, MIGRATE_COMMIT, "COMMIT");
    return;
  }
  const char *params[1] = {m->code_schemas};
  migrate__query_params(m, MIGRATE_DROP_LIST, migrate__drop_list_sql, 1, params);
}

/* Apply the next function file, or record them. */
static void migrate__next_function(migrate_t *m) {
  if (m->current < m->functions.n) {
    migrate__query(m, MIGRATE_FUNCTIONS_APPLY, m->functions.files[m->current].sql);
    return;
  }
  char count[16];
  snprintf(count, sizeof(count), "%zu", m->functions.n);
  const char *params[2] = {m->functions_checksum, count};
  migrate__query_params(m, MIGRATE_FUNCTIONS_RECORD,
                        "WITH gone AS (DELETE FROM kipd_function_files) "
                        "INSERT INTO kipd_function_files (checksum, files) VALUES ($1, $2::int)",
                        2, params);
}

/* Apply the next pending migration, or go on to the function files. */
static void migrate__next(migrate_t *m) {
  while (m->current < m->migrations.n && m->migrations.files[m->current].applied)
    m->current++;
  if (m->current < m->migrations.n) {
    migrate__query(m, MIGRATE_APPLY, m->migrations.files[m->current].sql);
    return;
  }
  m->current = 0;
  migrate__query(m, MIGRATE_FUNCTIONS_SETUP, "SET LOCAL check_function_bodies = off");
}

static migrate_file_t *migrate__file_of(migrate_t *m, long version) {
  for (size_t i = 0; i < m->migrations.n; i++)
    if (m->migrations.files[i].version == version)
      return &m->migrations.files[i];
  return NULL;
}

static bool migrate__is_legacy(const migrate_t *m, long version, const char *checksum) {
  for (size_t i = 0; i < m->nlegacy; i++)
    if (m->legacy[i].version == version && strcmp(m->legacy[i].checksum, checksum) == 0)
      return true;
  return false;
}

/* Compare what is recorded with the files. */
static int migrate__check_recorded(migrate_t *m, const PGresult *res) {
  for (int row = 0; row < PQntuples(res); row++) {
    long version = strtol(PQgetvalue(res, row, 0), NULL, 10);
    const char *checksum = PQgetvalue(res, row, 1);
    migrate_file_t *f = migrate__file_of(m, version);
    bool legacy = migrate__is_legacy(m, version, checksum);
    if (f != NULL && strcmp(f->checksum, checksum) == 0) {
      f->applied = true;
    } else if (f != NULL && legacy) {
      f->applied = true;
      f->rebase = true;
    } else if (f != NULL) {
      return migrate__fail(m, -EINVAL,
                           "%s: checksum mismatch: the file changed after it was applied "
                           "(recorded %.12s..., file %.12s...); add a new migration instead",
                           f->name, checksum, f->checksum);
    } else if (!legacy) {
      return migrate__fail(m, -EINVAL,
                           "the database has migration %ld (checksum %.12s...), which the schema "
                           "folder does not have: it was made by a newer kipd",
                           version, checksum);
    }
  }
  m->pending = 0;
  for (size_t i = 0; i < m->migrations.n; i++)
    m->pending += !m->migrations.files[i].applied;
  return 0;
}

static void migrate__on_result(void *data, int err, PGresult *res) {
  migrate_t *m = data;
  char buf[160];
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
                   "applied_at timestamptz NOT NULL DEFAULT now()); "
                   "CREATE TABLE IF NOT EXISTS kipd_function_files ("
                   "checksum text NOT NULL, "
                   "files int NOT NULL, "
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
    migrate__query(m, MIGRATE_READ_FUNCTIONS, "SELECT checksum FROM kipd_function_files");
    break;
  case MIGRATE_READ_FUNCTIONS:
    m->functions_due = m->pending > 0 || PQntuples(res) != 1 ||
                       strcmp(PQgetvalue(res, 0, 0), m->functions_checksum) != 0;
    m->current = 0;
    migrate__next_rebase(m);
    break;
  case MIGRATE_REBASE:
    m->current++;
    migrate__next_rebase(m);
    break;
  case MIGRATE_DROP_LIST: {
    const char *drops = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
    if (drops[0] != '\0') {
      migrate__query(m, MIGRATE_DROP, drops);
    } else {
      m->current = 0;
      migrate__next(m);
    }
    break;
  }
  case MIGRATE_DROP:
    m->current = 0;
    migrate__next(m);
    break;
  case MIGRATE_APPLY: {
    migrate_file_t *f = &m->migrations.files[m->current];
    char version[16];
    snprintf(version, sizeof(version), "%d", f->version);
    const char *params[3] = {version, f->name, f->checksum};
    migrate__query_params(m, MIGRATE_RECORD,
                          "INSERT INTO kipd_migrations (version, name, checksum) "
                          "VALUES ($1::int, $2, $3)",
                          3, params);
    break;
  }
  case MIGRATE_RECORD:
    m->applied++;
    m->migrations.files[m->current].applied = true;
    m->current++;
    migrate__next(m);
    break;
  case MIGRATE_FUNCTIONS_SETUP:
    m->current = 0;
    migrate__next_function(m);
    break;
  case MIGRATE_FUNCTIONS_APPLY:
    m->current++;
    migrate__next_function(m);
    break;
  case MIGRATE_FUNCTIONS_RECORD:
    migrate__query(m, MIGRATE_COMMIT, "COMMIT");
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

int migrate_run(pg_pool_t *pool, const char *schema_dir, const char *const *code_schemas,
                migrate_done_cb cb, void *data) {
  if (pool == NULL || schema_dir == NULL || code_schemas == NULL || cb == NULL)
    return -EINVAL;
  migrate_t *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return -ENOMEM;
  m->pool = pool;
  m->cb = cb;
  m->data = data;
  m->migrations.what = "migrations";
  m->functions.what = "function files";
  int rc = migrate__schemas_literal(m, code_schemas);
  if (rc < 0) {
    migrate__free(m);
    return rc;
  }
  /* A file error is kept and reported through cb once the session is
   * granted, so cb is never called from inside migrate_run. */
  (void)migrate__read_all(m, schema_dir);
  rc = pg_pool_acquire(pool, migrate__on_acquire, m);
  if (rc < 0) {
    migrate__free(m);
    return rc;
  }
  return 0;
}
