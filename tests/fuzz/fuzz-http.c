/* Fuzz target: the HTTP request path.
 *
 * Raw bytes go over a real loopback socket into kipd's own HTTP server
 * (http/: llhttp glue, the RFC 9112 checks, limits), then app_handle()
 * (app/: router, path UUIDs, credentials header parsing, query decoder and
 * query specs, Content-Type, JSON body with duplicate keys refused, If-Match,
 * the body specs) and the route's handler (api/: its own checks), exactly as
 * in kipd. The database is stubbed at the boundary: the pool points at a
 * socket that does not exist, so every statement fails with -ECONNRESET and
 * the request ends in a 503, as when PostgreSQL is down. No mock of any layer
 * above the pool.
 *
 * One input = the bytes one client sends on one connection (pipelining
 * included). The client writes them, waits while the server answers, then
 * half-closes and reads until the server closes, so every connection and
 * request is released before the next input.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api.h"
#include "app/app.h"
#include "db/pg_pool.h"
#include "http/server.h"
#include "util/config.h"
#include "util/cpr_crypt.h"
#include "util/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t *fz_loop;
static http_server_t *fz_server;
static int fz_port;
static app_config_t fz_app_cfg;
static http_limits_t fz_http;
static pg_pool_config_t fz_pool;

static void fz_die(const char *what, int rc) {
  log_emit(LOG_ERROR, "fuzz-http: set-up failed", json_pack("{s:s, s:i}", "step", what, "rc", rc));
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  log_set_level(LOG_ERROR);
  /* kipd's defaults (util/config), handed to each layer as main.c does. */
  kipd_config_t c;
  config_defaults(&c);
  fz_app_cfg = (app_config_t){
    .meeting_min_minutes = c.meeting_min_minutes,
    .next_meeting_max_months = c.next_meeting_max_months,
    .session_idle_s = c.session_idle_s,
    .session_max_s = c.session_max_s,
    .cookie_secure = "auto",
    .signin_lock_after = c.signin_lock_after,
    .signin_lock_s = c.signin_lock_s,
    .signin_window_s = c.signin_window_s,
    .signin_delay_ms = 0,                   /* no timers left behind */
    .password_jobs_max = c.password_jobs_max,
    .argon2 = {.t_cost = 1, .m_kib = 8, .parallelism = 1}, /* sign-in attempts stay cheap */
    .listen_host = "127.0.0.1",
    .listen_port = 0,
  };
  fz_http = (http_limits_t){
    .max_body_bytes = 64 * 1024,
    .max_header_bytes = c.http_max_header_bytes,
    .read_timeout_ms = 2000,
    .keepalive_timeout_ms = c.http_keepalive_timeout_ms,
    .write_timeout_ms = c.http_write_timeout_ms,
    .max_connections = c.http_max_connections,
  };
  fz_pool = (pg_pool_config_t){
    .conninfo = "host=/nonexistent/kipd-fuzz dbname=none user=none connect_timeout=1",
    .size = 1,
    .max_queue = c.pool_max_queue,
    .queue_timeout_ms = c.pool_queue_timeout_ms,
    .statement_timeout_ms = c.pool_statement_timeout_ms,
    .connect_timeout_ms = c.pool_connect_timeout_ms,
    .backoff_min_ms = 1000,
    .backoff_max_ms = 1000,
  };
  config_free(&c);

  fz_loop = uv_default_loop();
  pg_pool_t *pool = NULL;
  route_t *routes = NULL;
  size_t n_routes = 0;
  app_t *app = NULL;
  cpr_keyring_t *keyring = NULL;
  int rc;
  if ((rc = pg_pool_new(fz_loop, &fz_pool, &pool)) != 0)
    fz_die("pool", rc);
  api_t *api = NULL;
  if ((rc = api_new(&api)) != 0)
    fz_die("api", rc);
  if ((rc = api_routes(&routes, &n_routes)) != 0)
    fz_die("routes", rc);
  if ((rc = app_new(&fz_app_cfg, pool, routes, n_routes, &app)) != 0)
    fz_die("app", rc);
  app_set_api(app, api);
  if ((rc = cpr_keyring_new(&keyring)) != 0)
    fz_die("keyring", rc);
  if ((rc = http_server_new(fz_loop, &fz_http, app_handle, app, &fz_server)) != 0)
    fz_die("server", rc);
  app_set_server(app, fz_server);
  app_set_loop(app, fz_loop);
  app_set_keyring(app, keyring);
  if ((rc = http_server_listen(fz_server, "127.0.0.1", 0)) != 0)
    fz_die("listen", rc);
  fz_port = http_server_port(fz_server);
  /* Let the pool find out that there is no database. */
  for (int i = 0; i < 100; i++)
    uv_run(fz_loop, UV_RUN_NOWAIT);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (fz_server == NULL)
    LLVMFuzzerInitialize(NULL, NULL);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    abort();
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fz_port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0 && errno != EINPROGRESS)
    abort();
  size_t off = 0;
  int idle = 0;
  bool shut = false;
  static char sink[65536];
  for (int i = 0; i < 20000; i++) {
    if (off < size) {
      ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
      if (n > 0)
        off += (size_t)n;
      else if (n < 0 && errno != EAGAIN && errno != EINPROGRESS && errno != ENOTCONN)
        break; /* the server closed early, e.g. after a 400 */
    } else if (!shut && idle > 3) {
      shutdown(fd, SHUT_WR);
      shut = true;
      idle = 0;
    } else if (shut && idle > 200) {
      break; /* a request still held (e.g. a job in the thread pool) */
    }
    uv_run(fz_loop, UV_RUN_NOWAIT);
    ssize_t n = recv(fd, sink, sizeof(sink), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN))
      break;
    idle = n > 0 ? 0 : idle + 1;
  }
  close(fd);
  for (int i = 0; i < 4; i++)
    uv_run(fz_loop, UV_RUN_NOWAIT);
  return 0;
}
