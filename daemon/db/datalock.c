/* db/datalock: an exclusive flock on DATA_DIR/kipd.lock for kipd's life.
 * See datalock.h. */
#include "db/datalock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct datalock_s {
  int fd;
  char path[PATH_MAX];
};

static int datalock__mkdir_p(const char *path) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
    return -ENAMETOOLONG;
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(buf, 0700) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

/* The PID in the lock file, or 0. */
static long datalock__read_pid(int fd) {
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  char *end = NULL;
  long pid = strtol(buf, &end, 10);
  return end != buf && pid > 0 ? pid : 0;
}

int datalock_acquire(const char *data_dir, datalock_t **out, long *holder_pid,
                     char *err, size_t err_len) {
  *out = NULL;
  *holder_pid = 0;
  int rc = datalock__mkdir_p(data_dir);
  if (rc != 0) {
    snprintf(err, err_len, "cannot create the data folder %s: %s", data_dir, strerror(-rc));
    return rc;
  }
  datalock_t *l = calloc(1, sizeof(*l));
  if (l == NULL) {
    snprintf(err, err_len, "out of memory");
    return -ENOMEM;
  }
  if (snprintf(l->path, sizeof(l->path), "%s/kipd.lock", data_dir) >= (int)sizeof(l->path)) {
    snprintf(err, err_len, "the data folder's path is too long");
    rc = -ENAMETOOLONG;
    goto fail_free;
  }
  l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (l->fd < 0) {
    rc = -errno;
    snprintf(err, err_len, "cannot open %s: %s", l->path, strerror(errno));
    goto fail_free;
  }
  if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
    rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
    if (rc == -EBUSY) {
      /* The holder writes its PID just after locking: give it a moment. */
      for (int i = 0; i < 50 && *holder_pid == 0; i++) {
        *holder_pid = datalock__read_pid(l->fd);
        if (*holder_pid == 0)
          nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
      }
      snprintf(err, err_len,
               "the data folder %s is in use by another kipd (PID %ld holds %s); stop kipd first, "
               "or give this one its own --data-dir",
               data_dir, *holder_pid, l->path);
    } else {
      snprintf(err, err_len, "cannot lock %s: %s", l->path, strerror(-rc));
    }
    goto fail_close;
  }
  char pid[32];
  int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, pid, (size_t)len, 0) != len) {
    rc = -errno;
    snprintf(err, err_len, "cannot write %s: %s", l->path, strerror(errno));
    goto fail_close;
  }
  *out = l;
  return 0;

fail_close:
  close(l->fd);
fail_free:
  free(l);
  return rc;
}

const char *datalock_path(const datalock_t *l) {
  return l->path;
}

void datalock_release(datalock_t *l) {
  if (l == NULL)
    return;
  if (ftruncate(l->fd, 0) != 0) {
    /* The PID stays; harmless: only the lock counts. */
  }
  close(l->fd);
  free(l);
}
