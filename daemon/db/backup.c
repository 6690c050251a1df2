/* db/backup: pg_dump and pg_restore as child processes. See backup.h. */
#include "db/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* fork + exec argv with stdout on out_fd (or inherited when -1); stderr is
 * kipd's, so pg_dump's and pg_restore's messages reach the operator.
 * Returns the exit status (>= 0), 128 + signal, or -errno. */
static int backup__run(char *const argv[], int out_fd) {
  pid_t pid = fork();
  if (pid < 0)
    return -errno;
  if (pid == 0) {
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
      dup2(nul, 0);
    if (out_fd >= 0)
      dup2(out_fd, 1);
    execv(argv[0], argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return -errno;
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int backup__bin(const char *bindir, const char *name, char *out, size_t len) {
  return snprintf(out, len, "%s/%s", bindir, name) >= (int)len ? -ENAMETOOLONG : 0;
}

int backup_dump(const char *pg_bindir, const char *conninfo, const char *file, char *err,
                size_t err_len) {
  char bin[PATH_MAX];
  if (backup__bin(pg_bindir, "pg_dump", bin, sizeof(bin)) != 0) {
    snprintf(err, err_len, "pg_bindir too long");
    return -ENAMETOOLONG;
  }
  /* 0600 whatever the umask, never over an existing file or a symlink. */
  int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    int rc = -errno;
    snprintf(err, err_len, rc == -EEXIST ? "%s already exists; a backup never overwrites a file"
                                         : "cannot create %s: %s", file, strerror(errno));
    return rc;
  }
  if (fchmod(fd, 0600) != 0) {
    int rc = -errno;
    snprintf(err, err_len, "cannot chmod %s: %s", file, strerror(errno));
    close(fd);
    unlink(file);
    return rc;
  }
  char *argv[] = {bin, "--format=custom", "--no-password", "--dbname", (char *)conninfo, NULL};
  int rc = backup__run(argv, fd);
  if (rc == 0 && fsync(fd) != 0)
    rc = -errno;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc != 0) {
    if (rc < 0)
      snprintf(err, err_len, "pg_dump into %s failed: %s", file, strerror(-rc));
    else
      snprintf(err, err_len, "pg_dump failed (status %d); its message is above", rc);
    unlink(file);
    return rc < 0 ? rc : -EIO;
  }
  return 0;
}

int backup_restore(const char *pg_bindir, const char *conninfo, const char *file, char *err,
                   size_t err_len) {
  char bin[PATH_MAX];
  if (backup__bin(pg_bindir, "pg_restore", bin, sizeof(bin)) != 0) {
    snprintf(err, err_len, "pg_bindir too long");
    return -ENAMETOOLONG;
  }
  char *argv[] = {bin, "--no-password", "--exit-on-error", "--single-transaction", "--dbname",
                  (char *)conninfo, (char *)file, NULL};
  int rc = backup__run(argv, -1);
  if (rc != 0) {
    if (rc < 0)
      snprintf(err, err_len, "cannot run pg_restore: %s", strerror(-rc));
    else
      snprintf(err, err_len, "pg_restore failed (status %d); its message is above. Remove the half-restored data "
               "folder before trying again", rc);
    return rc < 0 ? rc : -EIO;
  }
  return 0;
}

int backup_check_dump(const char *file, char *err, size_t err_len) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int rc = -errno;
    snprintf(err, err_len, "cannot read the backup %s: %s", file, strerror(errno));
    return rc;
  }
  struct stat st;
  char magic[5];
  ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, magic, sizeof(magic)) : -1;
  close(fd);
  if (n != (ssize_t)sizeof(magic) || memcmp(magic, "PGDMP", sizeof(magic)) != 0) {
    snprintf(err, err_len, "%s is not a kipd --backup (a pg_dump custom-format file)", file);
    return -EINVAL;
  }
  return 0;
}

int backup_check_empty_dir(const char *dir, char *err, size_t err_len) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    if (errno == ENOENT)
      return 0;
    int rc = -errno;
    snprintf(err, err_len, "cannot open the data folder %s: %s", dir, strerror(errno));
    return rc;
  }
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(err, err_len, "the data folder %s is not empty (it holds %s); a restore goes into an "
             "empty or missing folder only", dir, e->d_name);
    rc = -ENOTEMPTY;
    break;
  }
  closedir(d);
  return rc;
}
