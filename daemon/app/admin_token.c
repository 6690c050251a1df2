#include "app/admin_token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crypto.h"
#include "util/log.h"

typedef struct admin_token_job_s {
  const char *path;
  char tmp[4096];
  admin_token_cb cb;
  void *data;
} admin_token_job_t;

static const pg_stmt_t admin_token__stmt = {"bootstrap", "SELECT kip.bootstrap($1::text)", 1};

static void admin_token__finish(admin_token_job_t *job, int err, bool created) {
  admin_token_cb cb = job->cb;
  void *data = job->data;
  free(job);
  cb(data, err, created);
}

static void admin_token__on_result(void *data, int err, PGresult *res) {
  admin_token_job_t *job = data;
  if (err != 0) {
    unlink(job->tmp);
    log_emit(LOG_ERROR, "bootstrap failed",
             json_pack("{s:s}", "error", res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : "database unavailable"));
    admin_token__finish(job, err, false);
    return;
  }
  bool created = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  if (!created) {
    unlink(job->tmp);
    admin_token__finish(job, 0, false);
    return;
  }
  if (rename(job->tmp, job->path) != 0) {
    int e = -errno;
    log_emit(LOG_ERROR, "cannot write the admin token",
             json_pack("{s:s, s:s}", "file", job->path, "error", strerror(errno)));
    unlink(job->tmp);
    admin_token__finish(job, e, false);
    return;
  }
  log_emit(LOG_INFO, "created the admin user", json_pack("{s:s}", "admin_token_file", job->path));
  admin_token__finish(job, 0, true);
}

/* The token in a 0600 file at tmp, flushed to disk. Returns 0 or -errno. */
static int admin_token__write(const char *tmp, const char *token) {
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = -errno;
    log_emit(LOG_ERROR, "cannot write the admin token",
             json_pack("{s:s, s:s}", "file", tmp, "error", strerror(errno)));
    return e;
  }
  char line[CRYPTO_TOKEN_LEN + 2];
  int n = snprintf(line, sizeof(line), "%s\n", token);
  bool ok = fchmod(fd, 0600) == 0 && write(fd, line, (size_t)n) == n && fsync(fd) == 0;
  explicit_bzero(line, sizeof(line));
  close(fd);
  if (!ok) {
    unlink(tmp);
    return -EIO;
  }
  return 0;
}

int admin_token_bootstrap(pg_pool_t *pool, const char *path, admin_token_cb cb, void *data) {
  admin_token_job_t *job = calloc(1, sizeof(*job));
  if (job == NULL)
    return -ENOMEM;
  *job = (admin_token_job_t){.path = path, .cb = cb, .data = data};
  snprintf(job->tmp, sizeof(job->tmp), "%s.tmp", path);
  char token[CRYPTO_TOKEN_LEN + 1], hash[65];
  int rc = crypto_token_new(token);
  if (rc == 0)
    rc = crypto_sha256_hex(token, strlen(token), hash);
  if (rc == 0)
    rc = admin_token__write(job->tmp, token);
  explicit_bzero(token, sizeof(token));
  if (rc == 0) {
    const char *params[1] = {hash};
    rc = pg_pool_exec(pool, &admin_token__stmt, params, admin_token__on_result, job);
    if (rc != 0)
      unlink(job->tmp);
  }
  if (rc != 0)
    free(job);
  return rc;
}
