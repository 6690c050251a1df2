/* db/cluster: the embedded PostgreSQL cluster in kipd's data folder.
 *
 * Layout:
 *   DATA_DIR/              0700 (0711 when the cluster runs as another user,
 *                          so that user can reach pg/ and run/; kipd's own
 *                          files in DATA_DIR stay 0600 root)
 *   DATA_DIR/pg/           PGDATA, owned by the cluster user, 0700
 *   DATA_DIR/run/          the unix socket, owned by the cluster user, 0700:
 *                          only root and the cluster user can connect, which
 *                          is why local trust authentication is acceptable
 *   DATA_DIR/postgres.log  initdb's output and what the postmaster writes
 *                          before its logging collector runs (start-up
 *                          errors); moved to postgres.log.1 at start once it
 *                          passes 1 MiB, so the two stay under 2 MiB
 *   DATA_DIR/pg/log/       the server's own log, written by PostgreSQL's
 *                          logging collector: one file per weekday
 *                          (postgres-Mon.log ...), truncated when its day
 *                          comes round again, so at most seven days are kept
 *
 * Start-up blocks (directories, initdb, waiting for "ready" in
 * postmaster.pid, creating the database with psql/createdb): it runs before
 * the loop serves anyone. After that everything is asynchronous: the
 * postmaster is a uv_spawn child; when it exits unexpectedly it is started
 * again after a backoff (200 ms doubling to 10 s), readiness is polled from
 * postmaster.pid with a timer, and restarted_cb fires.
 *
 * If kipd itself is killed with SIGKILL the postmaster keeps running: Linux's
 * PR_SET_PDEATHSIG cannot be set through uv_spawn. Instead, the next
 * cluster_start finds the live postmaster of this data folder through
 * postmaster.pid (its pid alive, named "postgres", working directory our
 * PGDATA), asks it for a fast shutdown (SIGINT, then SIGQUIT, then SIGKILL)
 * and starts its own child.
 *
 * The postmaster runs in its own session (UV_PROCESS_DETACHED) so a Ctrl-C
 * on kipd's terminal does not reach it: kipd decides when it stops.
 */
#include "db/cluster.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CLUSTER_SUPERUSER "kipd"
#define CLUSTER_PORT "5432"
#define CLUSTER_RESTART_MIN_MS 200
#define CLUSTER_RESTART_MAX_MS 10000
#define CLUSTER_READY_POLL_MS 50
#define CLUSTER_STABLE_MS 10000       /* up this long: next restart starts at the minimum */
#define CLUSTER_STOP_ESCALATE_MS 30000 /* fast shutdown took too long: SIGQUIT */
#define CLUSTER_LOG_KEEP (1024 * 1024) /* postgres.log moves to postgres.log.1 past this, at start */

typedef enum {
  CLUSTER_STARTING,   /* child spawned, not accepting connections yet */
  CLUSTER_RUNNING,
  CLUSTER_BACKOFF,    /* child exited; restart timer armed */
  CLUSTER_STOPPING,   /* SIGINT sent; waiting for the child to exit */
  CLUSTER_STOPPED,    /* handles closing or closed */
} cluster_state_t;

struct cluster_s {
  uv_loop_t *loop;
  cluster_state_t state;
  char *data_dir;
  char *pg_dir;
  char *run_dir;
  char *log_path;
  char *pid_path;
  char *postgres_bin;
  char *db_name;
  char *conninfo;
  bool switch_user;           /* running as root: children run as uid/gid */
  uid_t uid;
  gid_t gid;
  bool nosync;
  int log_fd;

  uv_process_t *proc;         /* heap: a new one per spawn */
  int pid;
  uv_timer_t timer;           /* restart backoff, readiness poll, stop escalation */
  bool started;               /* cluster_start succeeded */
  uint64_t backoff_ms;
  uint64_t ready_at;
  int stop_signals;
  unsigned pending_closes;

  cluster_event_cb restarted_cb;
  void *cb_data;
  cluster_event_cb stop_cb;
  void *stop_data;
};

static void cluster__on_exit(uv_process_t *proc, int64_t exit_status, int term_signal);
static void cluster__on_timer(uv_timer_t *timer);

/* ---- small helpers ------------------------------------------------------------ */

static int cluster__msg(char *err, size_t err_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cluster__msg(char *err, size_t err_len, int rc, const char *fmt, ...) {
  if (err != NULL && err_len > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* Copy with truncation (snprintf "%s" draws truncation warnings). */
static void cluster__copy(char *out, size_t len, const char *s) {
  size_t n = strlen(s);
  if (n >= len)
    n = len - 1;
  memcpy(out, s, n);
  out[n] = '\0';
}

static uint64_t cluster__now_ms(void) {
  return uv_hrtime() / 1000000u;
}

static void cluster__sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static char *cluster__join(const char *dir, const char *name) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s", dir, name) < 0)
    return NULL;
  return p;
}

/* A conninfo value in single quotes with \ and ' escaped. */
static void cluster__quote(char *out, size_t len, const char *s) {
  size_t o = 0;
  if (o + 1 < len)
    out[o++] = '\'';
  for (; *s != '\0' && o + 3 < len; s++) {
    if (*s == '\'' || *s == '\\')
      out[o++] = '\\';
    out[o++] = *s;
  }
  if (o + 1 < len)
    out[o++] = '\'';
  out[o] = '\0';
}

static int cluster__mkdir_p(const char *path, mode_t leaf_mode) {
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
  if (mkdir(buf, leaf_mode) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

/* Read a small text file; returns bytes read or -errno. */
static ssize_t cluster__read_small(const char *path, char *buf, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t n = 0;
  while (n + 1 < len) {
    ssize_t r = read(fd, buf + n, len - 1 - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  return (ssize_t)n;
}

/* postmaster.pid: line 1 the pid, line 8 the status ("ready" when accepting
 * connections). Returns 0 or -errno. */
static int cluster__read_pidfile(const char *path, long *pid, char *status, size_t status_len) {
  char buf[4096];
  ssize_t n = cluster__read_small(path, buf, sizeof(buf));
  if (n < 0)
    return (int)n;
  *pid = 0;
  status[0] = '\0';
  int line = 0;
  /* Walk lines by hand: some are empty (listen_addresses is ''). */
  char *s = buf;
  while (s != NULL && *s != '\0') {
    char *nl = strchr(s, '\n');
    if (nl != NULL)
      *nl = '\0';
    line++;
    if (line == 1)
      *pid = strtol(s, NULL, 10);
    else if (line == 8) {
      cluster__copy(status, status_len, s);
      size_t l = strlen(status);
      while (l > 0 && status[l - 1] == ' ')
        status[--l] = '\0';
    }
    s = nl != NULL ? nl + 1 : NULL;
  }
  return 0;
}

/* Alive and not a zombie. */
static bool cluster__alive(pid_t pid) {
  if (kill(pid, 0) < 0 && errno == ESRCH)
    return false;
  char path[64], buf[512];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  if (cluster__read_small(path, buf, sizeof(buf)) <= 0)
    return kill(pid, 0) == 0 || errno != ESRCH;
  char *paren = strrchr(buf, ')');
  if (paren == NULL || paren[1] == '\0' || paren[2] == '\0')
    return true;
  return paren[2] != 'Z' && paren[2] != 'X';
}

static bool cluster__is_our_postmaster(const cluster_t *c, pid_t pid) {
  char path[64], buf[256];
  snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
  if (cluster__read_small(path, buf, sizeof(buf)) <= 0)
    return false;
  buf[strcspn(buf, "\n")] = '\0';
  if (strcmp(buf, "postgres") != 0 && strcmp(buf, "postmaster") != 0)
    return false;
  /* The postmaster works in its data directory. */
  char cwd[PATH_MAX];
  snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
  ssize_t n = readlink(path, cwd, sizeof(cwd) - 1);
  if (n < 0)
    return false;
  cwd[n] = '\0';
  return strcmp(cwd, c->pg_dir) == 0;
}

/* The last non-empty line of postgres.log, for error messages. */
static void cluster__log_tail(const cluster_t *c, char *out, size_t len) {
  out[0] = '\0';
  int fd = open(c->log_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  char buf[1024];
  off_t size = lseek(fd, 0, SEEK_END);
  off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
  close(fd);
  if (n <= 0)
    return;
  buf[n] = '\0';
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    buf[--n] = '\0';
  char *last = strrchr(buf, '\n');
  cluster__copy(out, len, last != NULL ? last + 1 : buf);
}

/* ---- permissions ----------------------------------------------------------------- */

typedef struct cluster_ids_s {
  uid_t uid;
  gid_t gid;
  gid_t groups[64];
  int ngroups;
} cluster_ids_t;

static bool cluster__can_traverse(const struct stat *st, const cluster_ids_t *ids) {
  if (st->st_uid == ids->uid)
    return (st->st_mode & S_IXUSR) != 0;
  bool member = st->st_gid == ids->gid;
  for (int i = 0; i < ids->ngroups && !member; i++)
    member = st->st_gid == ids->groups[i];
  if (member)
    return (st->st_mode & S_IXGRP) != 0;
  return (st->st_mode & S_IXOTH) != 0;
}

/* Every parent of data_dir must be traversable by the cluster user; data_dir
 * itself is made traversable (o+x, g+x) if it is not. */
static int cluster__check_path(const cluster_t *c, const char *user, char *err, size_t err_len) {
  cluster_ids_t ids = {.uid = c->uid, .gid = c->gid, .ngroups = 64};
  if (getgrouplist(user, c->gid, ids.groups, &ids.ngroups) < 0)
    ids.ngroups = 0;
  char buf[PATH_MAX];
  snprintf(buf, sizeof(buf), "%s", c->data_dir);
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != '\0')
      continue;
    bool last = *p == '\0';
    if (last)
      break;
    *p = '\0';
    struct stat st;
    if (stat(buf, &st) < 0)
      return cluster__msg(err, err_len, -errno, "cannot stat %s: %s", buf, strerror(errno));
    if (!cluster__can_traverse(&st, &ids))
      return cluster__msg(err, err_len, -EACCES,
                          "directory %s is not traversable by the PostgreSQL user %s "
                          "(needs o+x); the data directory must lie below directories it can enter",
                          buf, user);
    *p = '/';
  }
  struct stat st;
  if (stat(c->data_dir, &st) < 0)
    return cluster__msg(err, err_len, -errno, "cannot stat %s: %s", c->data_dir, strerror(errno));
  if (!cluster__can_traverse(&st, &ids) &&
      chmod(c->data_dir, (st.st_mode & 07777) | S_IXGRP | S_IXOTH) < 0)
    return cluster__msg(err, err_len, -errno, "cannot chmod %s: %s", c->data_dir, strerror(errno));
  return 0;
}

/* A directory owned by the cluster user with mode 0700. */
static int cluster__own_dir(const cluster_t *c, const char *path, bool must_be_empty_to_chown,
                            char *err, size_t err_len) {
  if (mkdir(path, 0700) < 0 && errno != EEXIST)
    return cluster__msg(err, err_len, -errno, "cannot create %s: %s", path, strerror(errno));
  struct stat st;
  if (lstat(path, &st) < 0)
    return cluster__msg(err, err_len, -errno, "cannot stat %s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return cluster__msg(err, err_len, -ENOTDIR, "%s is not a directory", path);
  if (st.st_uid != c->uid) {
    if (!c->switch_user)
      return cluster__msg(err, err_len, -EPERM, "%s is owned by uid %u, not by kipd's user (uid %u)",
                          path, (unsigned)st.st_uid, (unsigned)c->uid);
    if (must_be_empty_to_chown) {
      char version[PATH_MAX];
      snprintf(version, sizeof(version), "%s/PG_VERSION", path);
      if (access(version, F_OK) == 0)
        return cluster__msg(err, err_len, -EPERM,
                            "%s holds a cluster owned by uid %u, not by the PostgreSQL user (uid %u)",
                            path, (unsigned)st.st_uid, (unsigned)c->uid);
    }
    if (chown(path, c->uid, c->gid) < 0)
      return cluster__msg(err, err_len, -errno, "cannot chown %s: %s", path, strerror(errno));
  }
  if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) < 0)
    return cluster__msg(err, err_len, -errno, "cannot chmod %s: %s", path, strerror(errno));
  return 0;
}

/* ---- blocking children (start-up only) ----------------------------------------- */

/* fork + exec argv; stdout goes to out (if given) or the log, stderr to the
 * log. Waits until deadline. Returns the exit status (>= 0) or -errno. */
static int cluster__run(const cluster_t *c, char *const argv[], bool as_cluster_user,
                        char *out, size_t out_len, uint64_t deadline) {
  int pipefd[2] = {-1, -1};
  if (out != NULL) {
    out[0] = '\0';
    if (pipe2(pipefd, O_CLOEXEC) < 0)
      return -errno;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int rc = -errno;
    if (out != NULL) {
      close(pipefd[0]);
      close(pipefd[1]);
    }
    return rc;
  }
  if (pid == 0) {
    /* Child: async-signal-safe calls only. */
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
      dup2(nul, 0);
    dup2(out != NULL ? pipefd[1] : c->log_fd, 1);
    dup2(c->log_fd, 2);
    if (as_cluster_user && c->switch_user) {
      if (setgroups(0, NULL) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)
        _exit(126);
    }
    if (chdir(c->data_dir) < 0)
      _exit(126);
    execv(argv[0], argv);
    _exit(127);
  }
  size_t n = 0;
  if (out != NULL) {
    close(pipefd[1]);
    for (;;) {
      uint64_t now = cluster__now_ms();
      if (now >= deadline)
        break;
      struct pollfd pfd = {pipefd[0], POLLIN, 0};
      int pr = poll(&pfd, 1, (int)(deadline - now));
      if (pr < 0 && errno == EINTR)
        continue;
      if (pr <= 0)
        break;
      char tmp[256];
      ssize_t r = read(pipefd[0], tmp, sizeof(tmp));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      size_t copy = (size_t)r;
      if (n + copy >= out_len)
        copy = out_len - 1 - n;
      memcpy(out + n, tmp, copy);
      n += copy;
      out[n] = '\0';
    }
    close(pipefd[0]);
  }
  int status;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      break;
    if (w < 0 && errno != EINTR)
      return -errno;
    if (cluster__now_ms() >= deadline) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return -ETIMEDOUT;
    }
    cluster__sleep_ms(10);
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int cluster__bin(const cluster_t *c, const char *bindir, const char *name, char *out,
                        size_t len) {
  if (snprintf(out, len, "%s/%s", bindir, name) >= (int)len)
    return -ENAMETOOLONG;
  return 0;
}

static int cluster__initdb(cluster_t *c, const char *bindir, uint64_t deadline, char *err,
                           size_t err_len) {
  char bin[PATH_MAX];
  if (cluster__bin(c, bindir, "initdb", bin, sizeof(bin)) < 0)
    return cluster__msg(err, err_len, -ENAMETOOLONG, "pg_bindir too long");
  /* Local trust: the socket directory is 0700, reachable only by root and
   * the cluster user. Peer would not work: kipd connects as root to a
   * cluster run by another user. TCP is off and rejected anyway. */
  char *argv[] = {bin, "-D", c->pg_dir, "-U", CLUSTER_SUPERUSER, "--auth-local=trust",
                  "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8",
                  c->nosync ? "--no-sync" : NULL, NULL};
  int rc = cluster__run(c, argv, true, NULL, 0, deadline);
  if (rc == 0)
    return 0;
  char tail[256];
  cluster__log_tail(c, tail, sizeof(tail));
  if (rc < 0)
    return cluster__msg(err, err_len, rc, "initdb %s: %s (see %s)", c->pg_dir,
                        rc == -ETIMEDOUT ? "timed out" : strerror(-rc), c->log_path);
  return cluster__msg(err, err_len, -EIO, "initdb %s failed with status %d: %s (see %s)", c->pg_dir,
                      rc, tail, c->log_path);
}

/* A postmaster left running by a kipd that was killed: fast shutdown. */
static int cluster__stop_stale(cluster_t *c, char *err, size_t err_len) {
  long pid;
  char status[32];
  if (cluster__read_pidfile(c->pid_path, &pid, status, sizeof(status)) < 0)
    return 0;
  if (pid < 0)
    pid = -pid;  /* a standalone backend writes its pid negated */
  if (pid <= 1 || !cluster__alive((pid_t)pid) || !cluster__is_our_postmaster(c, (pid_t)pid))
    return 0;
  static const struct {
    int sig;
    unsigned wait_ms;
  } steps[] = {{SIGINT, 15000}, {SIGQUIT, 5000}, {SIGKILL, 5000}};
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(steps); i++) {
    kill((pid_t)pid, steps[i].sig);
    uint64_t until = cluster__now_ms() + steps[i].wait_ms;
    while (cluster__alive((pid_t)pid) && cluster__now_ms() < until)
      cluster__sleep_ms(20);
    if (cluster__alive((pid_t)pid))
      continue;
    /* Dead. If nobody reaps it (a container whose init does not), the
     * zombie still answers kill(pid, 0) and the new postmaster would take
     * the lock files for a live one: remove them. */
    until = cluster__now_ms() + 1000;
    while (kill((pid_t)pid, 0) == 0 && cluster__now_ms() < until)
      cluster__sleep_ms(20);
    if (kill((pid_t)pid, 0) == 0) {
      char lock[PATH_MAX];
      snprintf(lock, sizeof(lock), "%s/.s.PGSQL." CLUSTER_PORT ".lock", c->run_dir);
      unlink(c->pid_path);
      unlink(lock);
    }
    return 0;
  }
  return cluster__msg(err, err_len, -EBUSY, "a stale postmaster (pid %ld) of %s does not exit", pid,
                      c->pg_dir);
}

/* ---- the postmaster child ------------------------------------------------------- */

static void cluster__free_handle_cb(uv_handle_t *h) {
  free(h);
}

static void cluster__maybe_stopped(cluster_t *c) {
  if (c->state == CLUSTER_STOPPED && c->pending_closes == 0 && c->stop_cb != NULL) {
    cluster_event_cb cb = c->stop_cb;
    c->stop_cb = NULL;
    cb(c, c->stop_data);
  }
}

static void cluster__proc_close_cb(uv_handle_t *h) {
  cluster_t *c = h->data;
  free(h);
  c->pending_closes--;
  cluster__maybe_stopped(c);
}

static void cluster__timer_close_cb(uv_handle_t *h) {
  cluster_t *c = container_of((uv_timer_t *)h, cluster_t, timer);
  c->pending_closes--;
  cluster__maybe_stopped(c);
}

static int cluster__spawn(cluster_t *c) {
  char sockdirs[PATH_MAX + 64];
  bool quote = strpbrk(c->run_dir, " ,\t") != NULL;
  snprintf(sockdirs, sizeof(sockdirs), "unix_socket_directories=%s%s%s", quote ? "\"" : "",
           c->run_dir, quote ? "\"" : "");
  char *args[] = {c->postgres_bin, "-D", c->pg_dir, "-p", CLUSTER_PORT,
                  "-c", "listen_addresses=", "-c", sockdirs,
                  "-c", "unix_socket_permissions=0700",
                  /* PostgreSQL rotates its own log: kipd writes no file on
                   * the loop, and the postmaster's stderr cannot be rotated
                   * under it. */
                  "-c", "logging_collector=on", "-c", "log_directory=log",
                  "-c", "log_filename=postgres-%a.log", "-c", "log_truncate_on_rotation=on",
                  "-c", "log_rotation_age=1d", "-c", "log_rotation_size=0",
                  c->nosync ? "-c" : NULL, "fsync=off", NULL};
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = c->log_fd;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = c->log_fd;
  uv_process_options_t opts;
  memset(&opts, 0, sizeof(opts));
  opts.exit_cb = cluster__on_exit;
  opts.file = c->postgres_bin;
  opts.args = args;
  opts.cwd = c->data_dir;
  opts.stdio_count = 3;
  opts.stdio = stdio;
  opts.flags = UV_PROCESS_DETACHED;
  if (c->switch_user) {
    opts.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
    opts.uid = c->uid;
    opts.gid = c->gid;
  }
  uv_process_t *proc = calloc(1, sizeof(*proc));
  if (proc == NULL)
    return -ENOMEM;
  proc->data = c;
  int rc = uv_spawn(c->loop, proc, &opts);
  if (rc < 0) {
    /* uv_spawn registered the handle even though it failed. Once started,
     * the close counts towards cluster_stop's callback. */
    if (c->started) {
      c->pending_closes++;
      uv_close((uv_handle_t *)proc, cluster__proc_close_cb);
    } else {
      uv_close((uv_handle_t *)proc, cluster__free_handle_cb);
    }
    return rc;
  }
  c->proc = proc;
  c->pid = proc->pid;
  c->stop_signals = 0;
  return 0;
}

/* Let go of the child's handle. In normal operation the close is counted;
 * during a failed start the cluster is freed before the callback runs. */
static void cluster__close_proc(cluster_t *c, bool counted) {
  if (c->proc == NULL)
    return;
  if (counted) {
    c->pending_closes++;
    uv_close((uv_handle_t *)c->proc, cluster__proc_close_cb);
  } else {
    uv_close((uv_handle_t *)c->proc, cluster__free_handle_cb);
  }
  c->proc = NULL;
  c->pid = 0;
}

static bool cluster__pidfile_ready(const cluster_t *c) {
  long pid;
  char status[32];
  if (cluster__read_pidfile(c->pid_path, &pid, status, sizeof(status)) < 0)
    return false;
  return pid == c->pid && strcmp(status, "ready") == 0;
}

static void cluster__finish_stop(cluster_t *c) {
  c->state = CLUSTER_STOPPED;
  uv_timer_stop(&c->timer);
  c->pending_closes++;
  uv_close((uv_handle_t *)&c->timer, cluster__timer_close_cb);
}

static void cluster__schedule_restart(cluster_t *c) {
  c->state = CLUSTER_BACKOFF;
  uv_timer_start(&c->timer, cluster__on_timer, c->backoff_ms, 0);
  c->backoff_ms = c->backoff_ms * 2 < CLUSTER_RESTART_MAX_MS ? c->backoff_ms * 2
                                                             : CLUSTER_RESTART_MAX_MS;
}

static void cluster__on_exit(uv_process_t *proc, int64_t exit_status, int term_signal) {
  cluster_t *c = proc->data;
  (void)exit_status;
  (void)term_signal;
  cluster__close_proc(c, true);
  switch (c->state) {
  case CLUSTER_STOPPING:
    cluster__finish_stop(c);
    break;
  case CLUSTER_RUNNING:
    if (uv_now(c->loop) - c->ready_at >= CLUSTER_STABLE_MS)
      c->backoff_ms = CLUSTER_RESTART_MIN_MS;
    /* fall through */
  case CLUSTER_STARTING:
    uv_timer_stop(&c->timer);
    cluster__schedule_restart(c);
    break;
  case CLUSTER_BACKOFF:
  case CLUSTER_STOPPED:
    break;
  }
}

static void cluster__on_timer(uv_timer_t *timer) {
  cluster_t *c = container_of(timer, cluster_t, timer);
  switch (c->state) {
  case CLUSTER_BACKOFF:
    if (cluster__spawn(c) < 0) {
      cluster__schedule_restart(c);
      break;
    }
    c->state = CLUSTER_STARTING;
    uv_timer_start(&c->timer, cluster__on_timer, CLUSTER_READY_POLL_MS, CLUSTER_READY_POLL_MS);
    break;
  case CLUSTER_STARTING:
    if (!cluster__pidfile_ready(c))
      break;
    uv_timer_stop(&c->timer);
    c->state = CLUSTER_RUNNING;
    c->ready_at = uv_now(c->loop);
    if (c->restarted_cb != NULL)
      c->restarted_cb(c, c->cb_data);
    break;
  case CLUSTER_STOPPING:
    /* Fast shutdown is taking too long: immediate, then kill. */
    if (c->proc != NULL) {
      c->stop_signals++;
      uv_process_kill(c->proc, c->stop_signals == 1 ? SIGQUIT : SIGKILL);
      uv_timer_start(&c->timer, cluster__on_timer, 5000, 0);
    }
    break;
  case CLUSTER_RUNNING:
  case CLUSTER_STOPPED:
    break;
  }
}

/* ---- start ----------------------------------------------------------------------- */

static bool cluster__valid_db_name(const char *s) {
  size_t n = 0;
  for (; s[n] != '\0'; n++) {
    char ch = s[n];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_'))
      return false;
  }
  return n > 0 && n < 64;
}

static void cluster__destroy(cluster_t *c) {
  if (c->log_fd >= 0)
    close(c->log_fd);
  free(c->data_dir);
  free(c->pg_dir);
  free(c->run_dir);
  free(c->log_path);
  free(c->pid_path);
  free(c->postgres_bin);
  free(c->db_name);
  free(c->conninfo);
  free(c);
}

/* The database exists, or is created. psql and createdb run as kipd's user
 * (root reaches the 0700 socket directory). */
static int cluster__ensure_db(cluster_t *c, const char *bindir, uint64_t deadline, char *err,
                              size_t err_len) {
  char psql[PATH_MAX], createdb[PATH_MAX], sql[160], out[64];
  if (cluster__bin(c, bindir, "psql", psql, sizeof(psql)) < 0 ||
      cluster__bin(c, bindir, "createdb", createdb, sizeof(createdb)) < 0)
    return cluster__msg(err, err_len, -ENAMETOOLONG, "pg_bindir too long");
  snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_database WHERE datname = '%s'", c->db_name);
  char *check[] = {psql, "-X", "-w", "-q", "-A", "-t", "-h", c->run_dir, "-p", CLUSTER_PORT,
                   "-U", CLUSTER_SUPERUSER, "-d", "postgres", "-c", sql, NULL};
  int rc = cluster__run(c, check, false, out, sizeof(out), deadline);
  if (rc != 0)
    return cluster__msg(err, err_len, rc < 0 ? rc : -EIO,
                        "psql could not query the cluster (status %d; see %s)", rc, c->log_path);
  if (out[0] == '1')
    return 0;
  char *create[] = {createdb, "-w", "-h", c->run_dir, "-p", CLUSTER_PORT, "-U", CLUSTER_SUPERUSER,
                    c->db_name, NULL};
  rc = cluster__run(c, create, false, NULL, 0, deadline);
  if (rc != 0)
    return cluster__msg(err, err_len, rc < 0 ? rc : -EIO,
                        "createdb %s failed (status %d; see %s)", c->db_name, rc, c->log_path);
  return 0;
}

/* The set-up SQL, as the superuser, in the database; stops at the first error. */
static int cluster__setup(cluster_t *c, const char *bindir, const char *sql, uint64_t deadline,
                          char *err, size_t err_len) {
  char psql[PATH_MAX];
  if (cluster__bin(c, bindir, "psql", psql, sizeof(psql)) < 0)
    return cluster__msg(err, err_len, -ENAMETOOLONG, "pg_bindir too long");
  char *argv[] = {psql, "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-h", c->run_dir, "-p",
                  CLUSTER_PORT, "-U", CLUSTER_SUPERUSER, "-d", c->db_name, "-c", (char *)sql, NULL};
  int rc = cluster__run(c, argv, false, NULL, 0, deadline);
  if (rc != 0)
    return cluster__msg(err, err_len, rc < 0 ? rc : -EIO,
                        "the database set-up failed (status %d; see %s)", rc, c->log_path);
  return 0;
}

int cluster_start(uv_loop_t *loop, const cluster_config_t *cfg, cluster_event_cb restarted_cb,
                  void *cb_data, unsigned timeout_ms, cluster_t **out, char *err,
                  size_t err_len) {
  int rc;
  if (err != NULL && err_len > 0)
    err[0] = '\0';
  if (loop == NULL || cfg == NULL || out == NULL || cfg->data_dir == NULL ||
      cfg->data_dir[0] == '\0' || cfg->pg_bindir == NULL || cfg->db_name == NULL)
    return cluster__msg(err, err_len, -EINVAL, "cluster: missing configuration");
  if (!cluster__valid_db_name(cfg->db_name))
    return cluster__msg(err, err_len, -EINVAL,
                        "database name '%s' must be 1-63 letters, digits or underscores",
                        cfg->db_name);
  uint64_t deadline = cluster__now_ms() + (timeout_ms ? timeout_ms : 60000);

  cluster_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return cluster__msg(err, err_len, -ENOMEM, "out of memory");
  c->loop = loop;
  c->log_fd = -1;
  c->backoff_ms = CLUSTER_RESTART_MIN_MS;
  c->restarted_cb = restarted_cb;
  c->cb_data = cb_data;
  c->nosync = cfg->nosync;

  /* Who runs the cluster. */
  const char *user = cfg->pg_user != NULL ? cfg->pg_user : "postgres";
  if (geteuid() == 0) {
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
      rc = cluster__msg(err, err_len, -ENOENT, "system user '%s' for PostgreSQL does not exist",
                        user);
      goto fail;
    }
    if (pw->pw_uid == 0) {
      rc = cluster__msg(err, err_len, -EPERM, "PostgreSQL cannot run as root (pg_user '%s')", user);
      goto fail;
    }
    c->switch_user = true;
    c->uid = pw->pw_uid;
    c->gid = pw->pw_gid;
  } else {
    c->uid = geteuid();
    c->gid = getegid();
  }

  /* The folder. */
  rc = cluster__mkdir_p(cfg->data_dir, 0700);
  if (rc < 0) {
    cluster__msg(err, err_len, rc, "cannot create %s: %s", cfg->data_dir, strerror(-rc));
    goto fail;
  }
  c->data_dir = realpath(cfg->data_dir, NULL);
  if (c->data_dir == NULL) {
    rc = cluster__msg(err, err_len, -errno, "cannot resolve %s: %s", cfg->data_dir,
                      strerror(errno));
    goto fail;
  }
  c->pg_dir = cluster__join(c->data_dir, "pg");
  c->run_dir = cluster__join(c->data_dir, "run");
  c->log_path = cluster__join(c->data_dir, "postgres.log");
  c->pid_path = cluster__join(c->data_dir, "pg/postmaster.pid");
  c->postgres_bin = cluster__join(cfg->pg_bindir, "postgres");
  c->db_name = strdup(cfg->db_name);
  if (!c->pg_dir || !c->run_dir || !c->log_path || !c->pid_path || !c->postgres_bin ||
      !c->db_name) {
    rc = cluster__msg(err, err_len, -ENOMEM, "out of memory");
    goto fail;
  }
  if (strlen(c->run_dir) + sizeof("/.s.PGSQL." CLUSTER_PORT ".lock") >
      sizeof(((struct sockaddr_un *)0)->sun_path)) {
    rc = cluster__msg(err, err_len, -ENAMETOOLONG,
                      "data directory path %s is too long for a unix socket path", c->data_dir);
    goto fail;
  }
  if (strchr(c->run_dir, '"') != NULL) {
    rc = cluster__msg(err, err_len, -EINVAL, "data directory path must not contain '\"'");
    goto fail;
  }
  char quoted_dir[PATH_MAX * 2 + 3];
  cluster__quote(quoted_dir, sizeof(quoted_dir), c->run_dir);
  if (asprintf(&c->conninfo, "host=%s port=" CLUSTER_PORT " dbname=%s user=" CLUSTER_SUPERUSER,
               quoted_dir, c->db_name) < 0) {
    c->conninfo = NULL;
    rc = cluster__msg(err, err_len, -ENOMEM, "out of memory");
    goto fail;
  }
  if (c->switch_user) {
    rc = cluster__check_path(c, user, err, err_len);
    if (rc < 0)
      goto fail;
  }
  rc = cluster__own_dir(c, c->pg_dir, true, err, err_len);
  if (rc < 0)
    goto fail;
  rc = cluster__own_dir(c, c->run_dir, false, err, err_len);
  if (rc < 0)
    goto fail;
  struct stat log_st;
  if (stat(c->log_path, &log_st) == 0 && log_st.st_size > CLUSTER_LOG_KEEP) {
    char old[PATH_MAX];
    snprintf(old, sizeof(old), "%s.1", c->log_path);
    if (rename(c->log_path, old) < 0) {
      rc = cluster__msg(err, err_len, -errno, "cannot move %s aside: %s", c->log_path, strerror(errno));
      goto fail;
    }
  }
  c->log_fd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (c->log_fd < 0) {
    rc = cluster__msg(err, err_len, -errno, "cannot open %s: %s", c->log_path, strerror(errno));
    goto fail;
  }
  if (c->switch_user && fchown(c->log_fd, c->uid, c->gid) < 0) {
    rc = cluster__msg(err, err_len, -errno, "cannot chown %s: %s", c->log_path, strerror(errno));
    goto fail;
  }

  /* First start: initdb. */
  char version[PATH_MAX];
  snprintf(version, sizeof(version), "%s/PG_VERSION", c->pg_dir);
  if (access(version, F_OK) < 0) {
    rc = cluster__initdb(c, cfg->pg_bindir, deadline, err, err_len);
    if (rc < 0)
      goto fail;
  }

  rc = cluster__stop_stale(c, err, err_len);
  if (rc < 0)
    goto fail;

  rc = cluster__spawn(c);
  if (rc < 0) {
    cluster__msg(err, err_len, rc, "cannot start %s: %s", c->postgres_bin, uv_strerror(rc));
    goto fail;
  }
  for (;;) {
    if (cluster__pidfile_ready(c))
      break;
    if (!cluster__alive(c->pid)) {
      char tail[256];
      cluster__log_tail(c, tail, sizeof(tail));
      rc = cluster__msg(err, err_len, -EIO, "postgres exited during start-up: %s (see %s)", tail,
                        c->log_path);
      goto fail_child;
    }
    if (cluster__now_ms() >= deadline) {
      rc = cluster__msg(err, err_len, -ETIMEDOUT,
                        "postgres did not accept connections within %u ms (see %s)", timeout_ms,
                        c->log_path);
      goto fail_child;
    }
    cluster__sleep_ms(20);
  }

  rc = cluster__ensure_db(c, cfg->pg_bindir, deadline, err, err_len);
  if (rc < 0)
    goto fail_child;
  if (cfg->setup_sql != NULL) {
    rc = cluster__setup(c, cfg->pg_bindir, cfg->setup_sql, deadline, err, err_len);
    if (rc < 0)
      goto fail_child;
  }

  uv_timer_init(loop, &c->timer);  /* cannot fail on unix */
  c->state = CLUSTER_RUNNING;
  c->started = true;
  c->ready_at = uv_now(loop);
  *out = c;
  return 0;

fail_child: {
  /* Immediate shutdown, then reap it ourselves: once its handle is closed
   * libuv no longer waits for it. */
  pid_t pid = c->pid;
  cluster__close_proc(c, false);
  kill(pid, SIGQUIT);
  uint64_t until = cluster__now_ms() + 5000;
  int status;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (cluster__now_ms() >= until) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    cluster__sleep_ms(10);
  }
}
fail:
  cluster__destroy(c);
  return rc;
}

const char *cluster_conninfo(const cluster_t *c) {
  return c->conninfo;
}

long cluster_postmaster_alive(const char *data_dir) {
  char path[PATH_MAX], status[64];
  long pid = 0;
  snprintf(path, sizeof(path), "%s/pg/postmaster.pid", data_dir);
  if (cluster__read_pidfile(path, &pid, status, sizeof(status)) != 0 || pid <= 0)
    return 0;
  return cluster__alive((pid_t)pid) ? pid : 0;
}

int cluster_conninfo_as(const cluster_t *c, const char *user, char *buf, size_t len) {
  if (user == NULL || !cluster__valid_db_name(user))
    return -EINVAL;
  char quoted_dir[PATH_MAX * 2 + 3];
  cluster__quote(quoted_dir, sizeof(quoted_dir), c->run_dir);
  int n = snprintf(buf, len, "host=%s port=" CLUSTER_PORT " dbname=%s user=%s", quoted_dir,
                   c->db_name, user);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int cluster_socket_conninfo(const char *data_dir, const char *db_name, char *buf, size_t len) {
  if (db_name == NULL || !cluster__valid_db_name(db_name))
    return -EINVAL;
  char *real = realpath(data_dir, NULL);
  if (real == NULL)
    return -errno;
  char run_dir[PATH_MAX], quoted_dir[PATH_MAX * 2 + 3];
  int n = snprintf(run_dir, sizeof(run_dir), "%s/run", real);
  free(real);
  if (n < 0 || (size_t)n >= sizeof(run_dir))
    return -ENAMETOOLONG;
  cluster__quote(quoted_dir, sizeof(quoted_dir), run_dir);
  n = snprintf(buf, len, "host=%s port=" CLUSTER_PORT " dbname=%s user=" CLUSTER_SUPERUSER,
               quoted_dir, db_name);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool cluster_running(const cluster_t *c) {
  return c->proc != NULL && (c->state == CLUSTER_RUNNING || c->state == CLUSTER_STARTING);
}

void cluster_stop(cluster_t *c, cluster_event_cb cb, void *data) {
  if (c->state == CLUSTER_STOPPING || c->state == CLUSTER_STOPPED)
    return;
  c->stop_cb = cb;
  c->stop_data = data;
  uv_timer_stop(&c->timer);
  if (c->proc == NULL) {
    cluster__finish_stop(c);
    return;
  }
  c->state = CLUSTER_STOPPING;
  uv_process_kill(c->proc, SIGINT);  /* fast shutdown */
  uv_timer_start(&c->timer, cluster__on_timer, CLUSTER_STOP_ESCALATE_MS, 0);
}

void cluster_free(cluster_t *c) {
  if (c == NULL)
    return;
  cluster__destroy(c);
}
