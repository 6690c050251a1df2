/* Unit tests for http/server: a real server on 127.0.0.1:0 runs in a libuv
 * loop on a background thread; the test drives it with plain blocking
 * sockets over loopback. Everything the loop thread owns is touched by the
 * test thread only through tsrv_call() (which runs a function on the loop
 * thread and waits) or after the thread has been joined. */
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tap.h"

/* ---- the server under test, on its own thread ---------------------------- */

typedef struct tsrv_s tsrv_t;
typedef void (*tsrv_fn)(tsrv_t *t, void *arg);

struct tsrv_s {
  uv_loop_t loop;
  uv_async_t async;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  tsrv_fn fn;
  void *arg;
  bool done;

  http_server_t *server;
  int port;

  /* Loop thread only (read through tsrv_call or after the join). */
  int handled;
  int access_count;
  int last_status;
  bool last_access_had_method;
  char last_access_rid[80];
  int closed_count;
  uint64_t closed_ns;
  uint64_t answered_ns;
  int pending_done;
  int pending_gone;
  int streams_ended;       /* /stream: http_stream_end() called */
  int streams_closed;      /* /stream: told HTTP_STREAM_CLOSED */
  int streams_shutdown;    /* /stream: told HTTP_STREAM_SHUTDOWN */
};

/* /stream?n=N&ms=M: a streamed response, "start\n" then N "tick\n" every M
 * ms, then the end. */
typedef struct streamer_s {
  uv_timer_t timer;
  http_request_t *req;
  tsrv_t *t;
  long left;
} streamer_t;

typedef struct delayed_s {
  uv_timer_t timer;
  http_request_t *req;
  tsrv_t *t;
  bool pending;
} delayed_t;

static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000u;
}

static long query_long(const char *q, const char *key, long def) {
  if (q == NULL)
    return def;
  size_t klen = strlen(key);
  for (const char *p = q; p != NULL && *p != '\0';) {
    if (strncmp(p, key, klen) == 0 && p[klen] == '=')
      return strtol(p + klen + 1, NULL, 10);
    p = strchr(p, '&');
    if (p != NULL)
      p++;
  }
  return def;
}

static void t_answer(tsrv_t *t, http_request_t *req) {
  const char *host = http_request_header(req, "HOST");
  http_header_t h[] = {
    {"Content-Type", "text/plain"},
    {"X-Method", req->method},
    {"X-Path", req->path},
    {"X-Raw-Path", req->raw_path},
    {"X-Query", req->query != NULL ? req->query : "(null)"},
    {"X-Handler-Rid", req->request_id},
    {"X-Remote", req->remote_addr},
    {"X-Host", host != NULL ? host : "(none)"},
  };
  const char *body = "hello";
  size_t len = 5;
  char idbody[64];
  long id = query_long(req->query, "id", -1);
  if (strcmp(req->path, "/echo") == 0) {
    body = req->body;
    len = req->body_len;
  } else if (id >= 0) {
    len = (size_t)snprintf(idbody, sizeof(idbody), "id-%ld", id);
    body = idbody;
  }
  t->answered_ns = uv_hrtime();
  http_respond(req, 200, h, KIPD_ARRAY_SIZE(h), body, len);
}

static void t_free_delayed(uv_handle_t *h) {
  free(container_of((uv_timer_t *)h, delayed_t, timer));
}

static void t_on_delayed(uv_timer_t *timer) {
  delayed_t *d = container_of(timer, delayed_t, timer);
  if (d->pending) {
    d->t->pending_gone = http_request_gone(d->req);
    d->t->pending_done++;
  }
  t_answer(d->t, d->req);
  uv_close((uv_handle_t *)&d->timer, t_free_delayed);
}

static void t_free_streamer(uv_handle_t *h) {
  free(container_of((uv_timer_t *)h, streamer_t, timer));
}

static void t_stream_end(streamer_t *st) {
  if (st->req == NULL)
    return;
  http_request_t *req = st->req;
  st->req = NULL;
  st->t->streams_ended++;
  http_stream_end(req);
  uv_close((uv_handle_t *)&st->timer, t_free_streamer);
}

static void t_on_tick(uv_timer_t *timer) {
  streamer_t *st = container_of(timer, streamer_t, timer);
  if (st->left-- <= 0 || http_stream_write(st->req, "tick\n", 5) != 0)
    t_stream_end(st);
}

static void t_on_stream(http_request_t *req, http_stream_event_t ev, void *data) {
  streamer_t *st = data;
  (void)req;
  if (ev == HTTP_STREAM_CLOSED)
    st->t->streams_closed++;
  else
    st->t->streams_shutdown++;
  t_stream_end(st);
}

static void t_stream(tsrv_t *t, http_request_t *req) {
  streamer_t *st = calloc(1, sizeof(*st));
  st->req = req;
  st->t = t;
  st->left = query_long(req->query, "n", 3);
  uv_timer_init(&t->loop, &st->timer);
  http_header_t h[] = {{"Content-Type", "text/event-stream"}, {"Content-Length", "99"}};
  if (http_stream_begin(req, 200, h, KIPD_ARRAY_SIZE(h), t_on_stream, st) != 0 ||
      http_stream_write(req, "start\n", 6) != 0) {
    t_stream_end(st);
    return;
  }
  uint64_t ms = (uint64_t)query_long(req->query, "ms", 20);
  uv_timer_start(&st->timer, t_on_tick, ms, ms);
}

static void t_handler(http_request_t *req, void *data) {
  tsrv_t *t = data;
  if (strcmp(req->path, "/stream") == 0) {
    t->handled++;
    t_stream(t, req);
    return;
  }
  t->handled++;
  bool slow = strcmp(req->path, "/slow") == 0;
  bool pending = strcmp(req->path, "/pending") == 0;
  if (slow || pending) {
    delayed_t *d = calloc(1, sizeof(*d));
    d->req = req;
    d->t = t;
    d->pending = pending;
    uv_timer_init(&t->loop, &d->timer);
    uv_timer_start(&d->timer, t_on_delayed, (uint64_t)query_long(req->query, "ms", 100), 0);
    return;
  }
  if (strcmp(req->path, "/big") == 0) {
    size_t n = (size_t)query_long(req->query, "n", 1000);
    char *big = malloc(n);
    memset(big, 'x', n);
    http_respond(req, 200, NULL, 0, big, n);
    free(big);
    return;
  }
  t_answer(t, req);
}

static void t_access(const http_request_t *req, int status, void *data) {
  tsrv_t *t = data;
  t->access_count++;
  t->last_status = status;
  t->last_access_had_method = req->method != NULL;
  snprintf(t->last_access_rid, sizeof(t->last_access_rid), "%s", req->request_id);
}

static void tsrv_on_async(uv_async_t *a) {
  tsrv_t *t = container_of(a, tsrv_t, async);
  uv_mutex_lock(&t->mu);
  tsrv_fn fn = t->fn;
  void *arg = t->arg;
  t->fn = NULL;
  uv_mutex_unlock(&t->mu);
  if (fn == NULL)
    return;
  fn(t, arg);
  uv_mutex_lock(&t->mu);
  t->done = true;
  uv_cond_broadcast(&t->cv);
  uv_mutex_unlock(&t->mu);
}

/* Run fn(t, arg) on the loop thread and wait for it. */
static void tsrv_call(tsrv_t *t, tsrv_fn fn, void *arg) {
  uv_mutex_lock(&t->mu);
  t->fn = fn;
  t->arg = arg;
  t->done = false;
  uv_mutex_unlock(&t->mu);
  uv_async_send(&t->async);
  uv_mutex_lock(&t->mu);
  while (!t->done)
    uv_cond_wait(&t->cv, &t->mu);
  uv_mutex_unlock(&t->mu);
}

static void tsrv_run(void *arg) {
  tsrv_t *t = arg;
  uv_run(&t->loop, UV_RUN_DEFAULT);
}

static http_limits_t test_limits(void) {
  http_limits_t l = {
    .max_body_bytes = 1024,
    .max_header_bytes = 4096,
    .read_timeout_ms = 3000,
    .keepalive_timeout_ms = 5000,
    .write_timeout_ms = 5000,
    .max_connections = 100,
  };
  return l;
}

/* The per-address cap of the next tsrv_start (test_peers). */
static unsigned tsrv_peer_cap;
static const char *tsrv_peer_exempt;

static bool tsrv_start(tsrv_t *t, const http_limits_t *limits, const char *host) {
  memset(t, 0, sizeof(*t));
  t->pending_gone = -1;
  if (uv_loop_init(&t->loop) != 0)
    return false;
  uv_mutex_init(&t->mu);
  uv_cond_init(&t->cv);
  if (http_server_new(&t->loop, limits, t_handler, t, &t->server) != 0)
    return false;
  http_server_set_access_cb(t->server, t_access, t);
  int r = http_server_set_peer_limit(t->server, tsrv_peer_cap, tsrv_peer_exempt);
  if (r != 0)
    return false;
  r = http_server_listen(t->server, host, 0);
  if (r != 0) {
    tap_diag("listen on %s: %s", host, uv_strerror(r));
    return false;
  }
  t->port = http_server_port(t->server);
  uv_async_init(&t->loop, &t->async, tsrv_on_async);
  return uv_thread_create(&t->thread, tsrv_run, t) == 0;
}

static void tsrv_on_closed(http_server_t *server, void *data) {
  tsrv_t *t = data;
  t->closed_count++;
  t->closed_ns = uv_hrtime();
  uv_close((uv_handle_t *)&t->async, NULL);
}

static void tsrv_do_shutdown(tsrv_t *t, void *arg) {
  http_server_shutdown(t->server, *(uint64_t *)arg, tsrv_on_closed, t);
}

static void tsrv_shutdown(tsrv_t *t, uint64_t grace_ms) {
  tsrv_call(t, tsrv_do_shutdown, &grace_ms);
}

/* Join the loop thread after a shutdown; returns uv_loop_close(). */
static int tsrv_join(tsrv_t *t) {
  uv_thread_join(&t->thread);
  int r = uv_loop_close(&t->loop);
  http_server_free(t->server);
  uv_mutex_destroy(&t->mu);
  uv_cond_destroy(&t->cv);
  return r;
}

typedef struct snap_s {
  http_server_stats_t stats;
  int handled, access_count, last_status, pending_done, pending_gone;
  int streams_ended, streams_closed, streams_shutdown;
  unsigned streams_open;
  bool last_access_had_method;
  char last_access_rid[80];
} snap_t;

static void tsrv_do_snap(tsrv_t *t, void *arg) {
  snap_t *s = arg;
  http_server_stats(t->server, &s->stats);
  s->handled = t->handled;
  s->access_count = t->access_count;
  s->last_status = t->last_status;
  s->pending_done = t->pending_done;
  s->pending_gone = t->pending_gone;
  s->streams_ended = t->streams_ended;
  s->streams_closed = t->streams_closed;
  s->streams_shutdown = t->streams_shutdown;
  s->streams_open = http_server_streams_open(t->server);
  s->last_access_had_method = t->last_access_had_method;
  memcpy(s->last_access_rid, t->last_access_rid, sizeof(s->last_access_rid));
}

static snap_t tsrv_snap(tsrv_t *t) {
  snap_t s;
  tsrv_call(t, tsrv_do_snap, &s);
  return s;
}

/* Poll the server's state until pred holds or ms pass. */
typedef bool (*snap_pred)(const snap_t *s, long arg);
static bool tsrv_wait(tsrv_t *t, snap_pred pred, long arg, uint64_t ms) {
  uint64_t end = now_ms() + ms;
  for (;;) {
    snap_t s = tsrv_snap(t);
    if (pred(&s, arg))
      return true;
    if (now_ms() > end)
      return false;
    usleep(10 * 1000);
  }
}

static bool pred_access_at_least(const snap_t *s, long n) { return s->access_count >= n; }
static bool pred_open_is(const snap_t *s, long n) { return (long)s->stats.connections_open == n; }
static bool pred_pending_done(const snap_t *s, long n) { return s->pending_done >= n; }

/* ---- a blocking test client ------------------------------------------------ */

typedef struct cli_s {
  int fd;
  char buf[1 << 16];
  size_t len;
} cli_t;

typedef struct resp_s {
  int status;
  int n;
  char names[40][64];
  char values[40][512];
  char body[8192];
  size_t body_len;
} resp_t;

static void cli_timeout(cli_t *c, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static bool cli_open_at(cli_t *c, int family, const char *host, int port) {
  memset(c, 0, sizeof(*c));
  c->fd = socket(family, SOCK_STREAM, 0);
  if (c->fd < 0)
    return false;
  cli_timeout(c, 5000);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t len;
  if (family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, host, &a->sin6_addr);
    len = sizeof(*a);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &a->sin_addr);
    len = sizeof(*a);
  }
  if (connect(c->fd, (struct sockaddr *)&ss, len) != 0) {
    close(c->fd);
    c->fd = -1;
    return false;
  }
  return true;
}

/* Connect to 127.0.0.1:port from the loopback address src (127.0.0.2, ...). */
static bool cli_open_from(cli_t *c, const char *src, int port) {
  memset(c, 0, sizeof(*c));
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0)
    return false;
  cli_timeout(c, 5000);
  struct sockaddr_in a = {.sin_family = AF_INET};
  inet_pton(AF_INET, src, &a.sin_addr);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (bind(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      connect(c->fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
    close(c->fd);
    c->fd = -1;
    return false;
  }
  return true;
}

static bool cli_open(cli_t *c, int port) {
  return cli_open_at(c, AF_INET, "127.0.0.1", port);
}

static void cli_close(cli_t *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

static bool cli_send(cli_t *c, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    data += n;
    len -= (size_t)n;
  }
  return true;
}

static bool cli_sends(cli_t *c, const char *s) {
  return cli_send(c, s, strlen(s));
}

static bool cli_fill(cli_t *c) {
  if (c->len == sizeof(c->buf))
    return false;
  ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
  if (n <= 0)
    return false;
  c->len += (size_t)n;
  return true;
}

static void cli_consume(cli_t *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

static const char *resp_header(const resp_t *r, const char *name) {
  for (int i = 0; i < r->n; i++)
    if (strcasecmp(r->names[i], name) == 0)
      return r->values[i];
  return NULL;
}

/* Read one response. head_request: the body is not sent. */
static bool cli_read(cli_t *c, resp_t *r, bool head_request) {
  memset(r, 0, sizeof(*r));
  char *end;
  while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
    if (!cli_fill(c))
      return false;
  size_t head_len = (size_t)(end - c->buf) + 4;
  char *head = strndup(c->buf, head_len - 4);
  cli_consume(c, head_len);
  if (sscanf(head, "HTTP/1.1 %d", &r->status) != 1) {
    free(head);
    return false;
  }
  char *save = NULL;
  char *line = strtok_r(head, "\r\n", &save); /* status line */
  while ((line = strtok_r(NULL, "\r\n", &save)) != NULL && r->n < 40) {
    char *colon = strchr(line, ':');
    if (colon == NULL)
      continue;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ')
      v++;
    snprintf(r->names[r->n], sizeof(r->names[0]), "%s", line);
    snprintf(r->values[r->n], sizeof(r->values[0]), "%s", v);
    r->n++;
  }
  free(head);
  const char *cl = resp_header(r, "content-length");
  size_t want = (cl != NULL && !head_request) ? (size_t)strtoul(cl, NULL, 10) : 0;
  if (want >= sizeof(r->body))
    return false;
  while (c->len < want)
    if (!cli_fill(c))
      return false;
  memcpy(r->body, c->buf, want);
  r->body[want] = '\0';
  r->body_len = want;
  cli_consume(c, want);
  return true;
}

/* True if the server closes the connection (EOF or reset) within ms,
 * without sending anything more. */
static bool cli_eof(cli_t *c, int ms) {
  if (c->len > 0)
    return false;
  cli_timeout(c, ms);
  char b[256];
  ssize_t n = recv(c->fd, b, sizeof(b), 0);
  cli_timeout(c, 5000);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Send a request and read its response on a fresh connection. */
static bool oneshot(int port, const char *req, resp_t *r) {
  cli_t c;
  if (!cli_open(&c, port))
    return false;
  bool ok = cli_sends(&c, req) && cli_read(&c, r, false);
  cli_close(&c);
  return ok;
}

static bool is_uuid4(const char *s) {
  if (s == NULL || strlen(s) != 36 || s[14] != '4')
    return false;
  for (int i = 0; i < 36; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-'))
      return false;
    if (!dash && strchr("0123456789abcdef", s[i]) == NULL)
      return false;
  }
  return strchr("89ab", s[19]) != NULL;
}

static bool has(const char *hay, const char *needle) {
  return hay != NULL && strstr(hay, needle) != NULL;
}

/* ---- tests on the main server ------------------------------------------------ */

static void test_keepalive(tsrv_t *t) {
  cli_t c;
  resp_t r;
  tap_ok(cli_open(&c, t->port), "connect");
  tap_ok(cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t.example\r\n\r\n") && cli_read(&c, &r, false),
         "first GET answered");
  tap_is_int(r.status, 200, "first GET: 200");
  tap_is_str(r.body, "hello", "first GET: body");
  tap_is_str(resp_header(&r, "connection"), "keep-alive", "first GET: Connection: keep-alive");
  tap_is_str(resp_header(&r, "content-length"), "5", "first GET: Content-Length");
  tap_ok(has(resp_header(&r, "date"), " GMT"), "first GET: Date");
  tap_is_str(resp_header(&r, "x-host"), "t.example", "handler finds Host case-insensitively");
  tap_is_str(resp_header(&r, "x-remote"), "127.0.0.1", "remote_addr is the peer IP");
  tap_is_str(resp_header(&r, "x-method"), "GET", "method");
  tap_ok(is_uuid4(resp_header(&r, "x-request-id")), "generated X-Request-Id is a UUID v4");
  tap_is_str(resp_header(&r, "x-handler-rid"), resp_header(&r, "x-request-id"),
             "handler saw the same request id");
  char first_rid[80];
  snprintf(first_rid, sizeof(first_rid), "%s", resp_header(&r, "x-request-id"));

  tap_ok(cli_sends(&c, "GET /hello?id=7 HTTP/1.1\r\nHost: t\r\n\r\n") && cli_read(&c, &r, false),
         "second GET on the same connection answered");
  tap_is_str(r.body, "id-7", "second GET: body");
  tap_ok(strcmp(first_rid, resp_header(&r, "x-request-id")) != 0, "each request gets its own id");
  cli_close(&c);
}

static void test_pipelined(tsrv_t *t) {
  cli_t c;
  resp_t r;
  tap_ok(cli_open(&c, t->port), "connect for pipelining");
  uint64_t start = now_ms();
  const char *reqs =
      "GET /slow?ms=200&id=1 HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /slow?ms=10&id=2 HTTP/1.1\r\nHost: t\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nid-3"
      "GET /hello?id=4 HTTP/1.1\r\nHost: t\r\n\r\n";
  tap_ok(cli_sends(&c, reqs), "four pipelined requests in one write");
  const char *want[] = {"id-1", "id-2", "id-3", "id-4"};
  bool in_order = true;
  for (int i = 0; i < 4; i++) {
    if (!cli_read(&c, &r, false) || r.status != 200 || strcmp(r.body, want[i]) != 0) {
      tap_diag("response %d: status %d body '%s'", i, r.status, r.body);
      in_order = false;
      break;
    }
  }
  tap_ok(in_order, "pipelined responses come in request order");
  tap_ok(now_ms() - start >= 190, "the slow first request held back the others");
  cli_close(&c);
}

static void test_bodies(tsrv_t *t) {
  resp_t r;
  cli_t c;
  tap_ok(oneshot(t->port,
                 "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 15\r\n\r\nhello=world&x=1", &r),
         "Content-Length POST answered");
  tap_is_str(r.body, "hello=world&x=1", "Content-Length body");
  tap_is_str(resp_header(&r, "x-method"), "POST", "POST method");

  tap_ok(cli_open(&c, t->port), "connect for chunked");
  tap_ok(cli_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n") &&
             cli_read(&c, &r, false),
         "chunked POST answered");
  tap_is_str(r.body, "hello world", "chunked body decoded");
  tap_ok(cli_sends(&c, "GET /hello?id=9 HTTP/1.1\r\nHost: t\r\n\r\n") && cli_read(&c, &r, false) &&
             strcmp(r.body, "id-9") == 0,
         "connection still in step after a chunked body with a trailer");
  cli_close(&c);

  tap_ok(oneshot(t->port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r) &&
             r.status == 200 && r.body_len == 0,
         "empty body is answered");
}

static void check_problem(const resp_t *r, int status, const char *slug, const char *field,
                          const char *what) {
  char buf[160];
  snprintf(buf, sizeof(buf), "%s: status %d", what, status);
  tap_is_int(r->status, status, buf);
  snprintf(buf, sizeof(buf), "%s: problem+json", what);
  tap_is_str(resp_header(r, "content-type"), "application/problem+json", buf);
  char type[128];
  snprintf(type, sizeof(type), "\"type\":\"https://kipd.dk/problems/%s\"", slug);
  snprintf(buf, sizeof(buf), "%s: type %s", what, slug);
  tap_ok(has(r->body, type), "%s", buf);
  char fld[64];
  snprintf(fld, sizeof(fld), "\"field\":\"%s\"", field);
  char st[32];
  snprintf(st, sizeof(st), "\"status\":%d", status);
  tap_ok(has(r->body, fld) && has(r->body, st) && has(r->body, "\"title\":") &&
             has(r->body, "\"detail\":"),
         "%s: body has status, title, detail and errors[].field %s", what, field);
  const char *rid = resp_header(r, "x-request-id");
  char ridj[128];
  snprintf(ridj, sizeof(ridj), "\"request_id\":\"%s\"", rid ? rid : "?");
  tap_ok(rid != NULL && has(r->body, ridj), "%s: request_id in body matches X-Request-Id", what);
  snprintf(buf, sizeof(buf), "%s: Connection: close", what);
  tap_is_str(resp_header(r, "connection"), "close", buf);
}

static void test_server_limits(tsrv_t *t) {
  cli_t c;
  resp_t r;

  tap_ok(cli_open(&c, t->port), "connect for 413");
  tap_ok(cli_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n") &&
             cli_read(&c, &r, false),
         "oversized Content-Length answered before the body");
  check_problem(&r, 413, "payload-too-large", "body", "413 by Content-Length");
  tap_ok(cli_eof(&c, 3000), "413: connection closed");
  cli_close(&c);

  tap_ok(cli_open(&c, t->port), "connect for chunked 413");
  bool sent = cli_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
  char chunk[600];
  memset(chunk, 'a', sizeof(chunk));
  memcpy(chunk, "200\r\n", 5);
  memcpy(chunk + 5 + 512, "\r\n", 2);
  for (int i = 0; i < 3 && sent; i++)
    sent = cli_send(&c, chunk, 5 + 512 + 2);
  tap_ok(sent && cli_read(&c, &r, false), "oversized chunked body answered");
  check_problem(&r, 413, "payload-too-large", "body", "413 by chunked body");
  tap_ok(cli_eof(&c, 3000), "chunked 413: connection closed");
  cli_close(&c);

  char *big = malloc(8192);
  int n = snprintf(big, 8192, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
  memset(big + n, 'b', 5000);
  memcpy(big + n + 5000, "\r\n\r\n", 5);
  tap_ok(cli_open(&c, t->port), "connect for 431");
  tap_ok(cli_sends(&c, big) && cli_read(&c, &r, false), "huge header answered");
  check_problem(&r, 431, "headers-too-large", "headers", "431");
  tap_ok(cli_eof(&c, 3000), "431: connection closed");
  cli_close(&c);

  /* Many small headers: each piece is small, the head is not. */
  n = snprintf(big, 8192, "GET /hello HTTP/1.1\r\nHost: t\r\n");
  for (int i = 0; n < 6000; i++)
    n += snprintf(big + n, 8192 - (size_t)n, "X-H%d: v\r\n", i);
  snprintf(big + n, 8192 - (size_t)n, "\r\n");
  tap_ok(oneshot(t->port, big, &r) && r.status == 431, "many headers over the limit: 431");
  free(big);

  snap_t before = tsrv_snap(t);
  tap_ok(cli_open(&c, t->port), "connect for garbage");
  tap_ok(cli_sends(&c, "\x01\x02garbage\r\n\r\n") && cli_read(&c, &r, false), "garbage answered");
  check_problem(&r, 400, "bad-request", "request", "400 on garbage");
  tap_ok(cli_eof(&c, 3000), "400: connection closed");
  cli_close(&c);
  tap_ok(tsrv_wait(t, pred_access_at_least, before.access_count + 1, 2000),
         "access callback ran for the server's own 400");
  snap_t after = tsrv_snap(t);
  tap_is_int(after.last_status, 400, "access callback got status 400");
  tap_is_str(after.last_access_rid, resp_header(&r, "x-request-id"),
             "access callback got the 400's request id");
  tap_is_int(after.handled, before.handled, "the handler never saw the garbage");

  tap_ok(oneshot(t->port, "GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n", &r) && r.status == 400 &&
             has(r.body, "bad-request"),
         "invalid percent-encoding: 400");
  tap_ok(oneshot(t->port, "GET /a%00b HTTP/1.1\r\nHost: t\r\n\r\n", &r) && r.status == 400,
         "encoded NUL: 400");
  tap_ok(oneshot(t->port, "GET /a%4 HTTP/1.1\r\nHost: t\r\n\r\n", &r) && r.status == 400,
         "truncated escape: 400");
}

/* RFC 9112 strictness (http/strict.h): each hostile head gets 400 (or 505)
 * and a closed connection, the handler never sees it, and a keep-alive
 * probe opened before keeps being served meanwhile. */
typedef struct strict_case_s {
  const char *what;
  const char *req;
  int status;
  const char *field;
} strict_case_t;

static void test_strict(tsrv_t *t) {
  static const strict_case_t cases[] = {
    {"no version (HTTP/0.9 line)", "GET /hello\r\n\r\n", 400, "request"},
    {"no version, Host given", "GET /hello\r\nHost: t\r\n\r\n", 400, "request"},
    {"HTTP/1.1 without Host", "GET /hello HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "host"},
    {"duplicate Host", "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "host"},
    {"duplicate Host, other case", "GET /hello HTTP/1.1\r\nHost: a\r\nhOST: a\r\n\r\n", 400, "host"},
    {"whitespace before the colon", "GET /hello HTTP/1.1\r\nHost : t\r\n\r\n", 400, "request"},
    {"whitespace before the colon, 2nd header",
     "GET /hello HTTP/1.1\r\nHost: t\r\nAuthorization : Bearer x\r\n\r\n", 400, "request"},
    {"obs-fold", "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n", 400, "headers"},
    {"obs-fold with a tab", "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\r\n\tb\r\n\r\n", 400, "headers"},
    {"obs-fold inside Transfer-Encoding",
     "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
     400, "headers"},
    {"two Authorization", "GET /hello HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer a\r\n"
     "Authorization: Bearer b\r\n\r\n", 400, "authorization"},
    {"two Cookie", "GET /hello HTTP/1.1\r\nHost: t\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n", 400,
     "cookie"},
    {"two Content-Type", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: a/b\r\n"
     "Content-Type: c/d\r\nContent-Length: 1\r\n\r\nx", 400, "content-type"},
    {"two Transfer-Encoding", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "request"},
    {"Content-Length and Transfer-Encoding", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "request"},
    {"Transfer-Encoding then Content-Length", "POST /echo HTTP/1.1\r\nHost: t\r\n"
     "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400, "request"},
    {"doubled Content-Length", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
     "Content-Length: 1\r\n\r\nx", 400, "request"},
    {"Content-Length list", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\nx", 400,
     "request"},
    {"HTTP/2.0 request line", "GET /hello HTTP/2.0\r\nHost: t\r\n\r\n", 505, "request"},
  };
  cli_t probe;
  resp_t r;
  tap_ok(cli_open(&probe, t->port) &&
             cli_sends(&probe, "GET /hello?id=1 HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&probe, &r, false) && r.status == 200,
         "strict: probe connection served");
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(cases); i++) {
    const strict_case_t *k = &cases[i];
    snap_t before = tsrv_snap(t);
    cli_t c;
    bool read = cli_open(&c, t->port) && cli_sends(&c, k->req) && cli_read(&c, &r, false);
    tap_ok(read, "strict: %s: answered", k->what);
    char what[160];
    snprintf(what, sizeof(what), "strict: %s: status %d", k->what, k->status);
    tap_is_int(r.status, k->status, what);
    char fld[64];
    snprintf(fld, sizeof(fld), "\"field\":\"%s\"", k->field);
    tap_ok(has(resp_header(&r, "content-type"), "application/problem+json") && has(r.body, fld),
           "strict: %s: problem+json naming %s", k->what, k->field);
    tap_ok(cli_eof(&c, 3000), "strict: %s: connection closed", k->what);
    cli_close(&c);
    snap_t after = tsrv_snap(t);
    snprintf(what, sizeof(what), "strict: %s: the handler never saw it", k->what);
    tap_is_int(after.handled, before.handled, what);
    char probe_req[80];
    snprintf(probe_req, sizeof(probe_req), "GET /hello?id=%zu HTTP/1.1\r\nHost: t\r\n\r\n", i + 10);
    char want[32];
    snprintf(want, sizeof(want), "id-%zu", i + 10);
    tap_ok(cli_sends(&probe, probe_req) && cli_read(&probe, &r, false) && r.status == 200 &&
               has(r.body, want),
           "strict: %s: the probe is still served", k->what);
  }
  cli_close(&probe);
  tap_ok(oneshot(t->port, "GET /hello HTTP/2.0\r\nHost: t\r\n\r\n", &r) &&
             has(r.body, "\"type\":\"https://kipd.dk/problems/http-version-not-supported\""),
         "strict: 505 has its own problem type");

  /* A fold split across two reads is still seen. */
  cli_t c;
  tap_ok(cli_open(&c, t->port) && cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\r\n"),
         "strict: split fold: first half sent");
  usleep(100 * 1000);
  tap_ok(cli_sends(&c, " b\r\n\r\n") && cli_read(&c, &r, false) && r.status == 400,
         "strict: split fold: 400");
  cli_close(&c);

  /* What stays allowed. */
  tap_ok(oneshot(t->port, "GET /hello HTTP/1.0\r\n\r\n", &r) && r.status == 200,
         "strict: HTTP/1.0 without Host: 200");
  tap_ok(oneshot(t->port, "GET /hello HTTP/1.1\r\nHost:\r\n\r\n", &r) && r.status == 200,
         "strict: an empty Host: 200");
  tap_ok(oneshot(t->port, "GET /hello HTTP/1.1\r\nHost: t\r\nAccept: a/b\r\nAccept: c/d\r\n\r\n",
                 &r) && r.status == 200,
         "strict: a repeated list header (Accept): 200");
  tap_ok(oneshot(t->port, "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a b\r\n\r\n", &r) &&
             r.status == 200,
         "strict: a space inside a value is no fold: 200");
  tap_ok(oneshot(t->port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\na\r\n b\r\n",
                 &r) && r.status == 200 && has(r.body, "a\r\n b"),
         "strict: CRLF SP in a body is no fold: 200");
}

static void test_paths(tsrv_t *t) {
  resp_t r;
  tap_ok(oneshot(t->port, "GET /caf%C3%A9/a%20b?x=1%202&y HTTP/1.1\r\nHost: t\r\n\r\n", &r),
         "encoded path answered");
  tap_is_str(resp_header(&r, "x-path"), "/caf\xc3\xa9/a b", "path is percent-decoded");
  tap_is_str(resp_header(&r, "x-raw-path"), "/caf%C3%A9/a%20b", "raw_path kept as sent");
  tap_is_str(resp_header(&r, "x-query"), "x=1%202&y", "query passed through raw");
  tap_ok(oneshot(t->port, "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n", &r), "plain path answered");
  tap_is_str(resp_header(&r, "x-query"), "(null)", "no '?': query is NULL");
  tap_ok(oneshot(t->port, "GET /q? HTTP/1.1\r\nHost: t\r\n\r\n", &r), "empty query answered");
  tap_is_str(resp_header(&r, "x-query"), "", "bare '?': query is empty");
  tap_ok(oneshot(t->port, "GET http://example.com/abs?q=1 HTTP/1.1\r\nHost: t\r\n\r\n", &r),
         "absolute-form answered");
  tap_is_str(resp_header(&r, "x-path"), "/abs", "absolute-form: path");
  tap_is_str(resp_header(&r, "x-query"), "q=1", "absolute-form: query");
  tap_ok(oneshot(t->port, "GET /x%0D%0AEvil:%20yes HTTP/1.1\r\nHost: t\r\n\r\n", &r) &&
             r.status == 200,
         "CR LF in the decoded path answered");
  tap_ok(resp_header(&r, "evil") == NULL && resp_header(&r, "x-path") == NULL &&
             resp_header(&r, "x-raw-path") != NULL,
         "a response header with CR LF is dropped, not split");
}

static void test_request_ids(tsrv_t *t) {
  resp_t r;
  tap_ok(oneshot(t->port, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc-123.X_y\r\n\r\n", &r),
         "request with an X-Request-Id answered");
  tap_is_str(resp_header(&r, "x-request-id"), "abc-123.X_y", "sane X-Request-Id echoed");
  tap_is_str(resp_header(&r, "x-handler-rid"), "abc-123.X_y", "handler sees the client's id");

  char req[256], id64[65];
  memset(id64, 'a', 64);
  id64[64] = '\0';
  snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: t\r\nx-request-id: %s\r\n\r\n", id64);
  tap_ok(oneshot(t->port, req, &r), "64-character id answered");
  tap_is_str(resp_header(&r, "x-request-id"), id64, "64-character id echoed");
  snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: t\r\nx-request-id: %sa\r\n\r\n", id64);
  tap_ok(oneshot(t->port, req, &r) && is_uuid4(resp_header(&r, "x-request-id")),
         "65-character id replaced by a UUID");
  tap_ok(oneshot(t->port, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Request-Id: bad id!\r\n\r\n", &r) &&
             is_uuid4(resp_header(&r, "x-request-id")),
         "id with bad characters replaced by a UUID");
  tap_ok(oneshot(t->port, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Request-Id: a\"b\r\n\r\n", &r) &&
             is_uuid4(resp_header(&r, "x-request-id")),
         "id with a quote replaced by a UUID");
}

static void test_methods_and_versions(tsrv_t *t) {
  cli_t c;
  resp_t r;
  tap_ok(cli_open(&c, t->port), "connect for HEAD");
  tap_ok(cli_sends(&c, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n") && cli_read(&c, &r, true),
         "HEAD answered");
  tap_is_str(resp_header(&r, "content-length"), "5", "HEAD: Content-Length of the body");
  tap_ok(cli_sends(&c, "GET /hello?id=5 HTTP/1.1\r\nHost: t\r\n\r\n") && cli_read(&c, &r, false) &&
             r.status == 200 && strcmp(r.body, "id-5") == 0,
         "HEAD sent no body bytes (the next response parses)");
  cli_close(&c);

  tap_ok(cli_open(&c, t->port), "connect for HTTP/1.0");
  tap_ok(cli_sends(&c, "GET /hello HTTP/1.0\r\n\r\n") && cli_read(&c, &r, false) && r.status == 200,
         "HTTP/1.0 answered");
  tap_is_str(resp_header(&r, "connection"), "close", "HTTP/1.0: Connection: close");
  tap_ok(cli_eof(&c, 3000), "HTTP/1.0: connection closed");
  cli_close(&c);

  tap_ok(cli_open(&c, t->port), "connect for HTTP/1.0 keep-alive");
  tap_ok(cli_sends(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") &&
             cli_read(&c, &r, false),
         "HTTP/1.0 keep-alive answered");
  tap_is_str(resp_header(&r, "connection"), "keep-alive", "HTTP/1.0 keep-alive honoured");
  cli_close(&c);

  tap_ok(cli_open(&c, t->port), "connect for Connection: close");
  tap_ok(cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                       "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&c, &r, false),
         "Connection: close answered");
  tap_is_str(resp_header(&r, "connection"), "close", "client's close is echoed");
  tap_ok(cli_eof(&c, 3000), "closed after the response, the pipelined request ignored");
  cli_close(&c);

  tap_ok(cli_open(&c, t->port), "connect for 100-continue");
  tap_ok(cli_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                       "Content-Length: 5\r\n\r\n") &&
             cli_read(&c, &r, false),
         "interim response read");
  tap_is_int(r.status, 100, "Expect: 100-continue gets 100 Continue");
  tap_ok(cli_sends(&c, "hello") && cli_read(&c, &r, false) && r.status == 200 &&
             strcmp(r.body, "hello") == 0,
         "body after 100 Continue echoed");
  cli_close(&c);

  tap_ok(oneshot(t->port, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                          "Content-Length: 5000\r\n\r\n", &r),
         "100-continue with too large a body answered");
  tap_is_int(r.status, 413, "too large with Expect: 413, no 100");
}

static void test_disconnect_while_pending(tsrv_t *t) {
  snap_t before = tsrv_snap(t);
  cli_t c;
  tap_ok(cli_open(&c, t->port), "connect for disconnect");
  tap_ok(cli_sends(&c, "GET /pending?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n"), "pending request sent");
  usleep(100 * 1000);
  snap_t mid = tsrv_snap(t);
  tap_is_int((long long)mid.stats.requests_in_flight, 1, "request is in flight");
  cli_close(&c);
  tap_ok(tsrv_wait(t, pred_pending_done, before.pending_done + 1, 3000),
         "handler answered after the client left");
  snap_t after = tsrv_snap(t);
  tap_is_int(after.pending_gone, 1, "http_request_gone() was true at the late answer");
  tap_ok(tsrv_wait(t, pred_access_at_least, before.access_count + 1, 2000) &&
             tsrv_snap(t).last_status == 200,
         "dropped response still reaches the access callback");
  tap_ok(tsrv_wait(t, pred_open_is, 0, 3000), "connection released after the late answer");
  tap_is_int((long long)tsrv_snap(t).stats.requests_in_flight, 0, "nothing in flight");
}

/* ---- tests on a server with short timeouts ---------------------------------- */

static void test_timeouts(void) {
  tsrv_t t;
  http_limits_t l = test_limits();
  l.read_timeout_ms = 300;
  l.keepalive_timeout_ms = 300;
  l.write_timeout_ms = 300;
  tap_ok(tsrv_start(&t, &l, "127.0.0.1"), "timeout server started");
  cli_t c;
  resp_t r;

  /* Slowloris: half a head, then a byte now and then. */
  tap_ok(cli_open(&c, t.port), "connect for slowloris");
  uint64_t start = now_ms();
  bool sent = cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n");
  bool readable = false;
  while (sent && now_ms() - start < 3000) {
    struct pollfd p = {c.fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      readable = true;
      break;
    }
    sent = cli_sends(&c, "X");
  }
  uint64_t elapsed = now_ms() - start;
  tap_ok(readable && cli_read(&c, &r, false), "slowloris gets an answer");
  check_problem(&r, 408, "request-timeout", "request", "408");
  tap_ok(elapsed >= 250 && elapsed < 1500,
         "trickling bytes do not extend the read deadline (%llu ms)", (unsigned long long)elapsed);
  tap_ok(cli_eof(&c, 3000), "408: connection closed");
  cli_close(&c);

  /* Idle keep-alive. */
  tap_ok(cli_open(&c, t.port), "connect for idle keep-alive");
  tap_ok(cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") && cli_read(&c, &r, false) && r.status == 200,
         "request before idling answered");
  start = now_ms();
  tap_ok(cli_eof(&c, 3000), "idle keep-alive connection closed silently");
  elapsed = now_ms() - start;
  tap_ok(elapsed >= 250 && elapsed < 2000, "after the keep-alive timeout (%llu ms)",
         (unsigned long long)elapsed);
  cli_close(&c);

  /* A connection that never sends a byte. */
  tap_ok(cli_open(&c, t.port), "connect and stay silent");
  tap_ok(cli_eof(&c, 3000), "silent connection closed without an answer");
  cli_close(&c);

  /* Write timeout: the client never reads a 32 MiB response. */
  tap_ok(tsrv_wait(&t, pred_open_is, 0, 3000), "no connections before the write test");
  tap_ok(cli_open(&c, t.port), "connect for write timeout");
  tap_ok(cli_sends(&c, "GET /big?n=33554432 HTTP/1.1\r\nHost: t\r\n\r\n"), "big response requested");
  usleep(100 * 1000);
  tap_ok(tsrv_wait(&t, pred_open_is, 0, 3000), "stalled response closed by the write timeout");
  cli_close(&c);

  tsrv_shutdown(&t, 1000);
  tap_is_int(tsrv_join(&t), 0, "timeout server: loop closes cleanly");
}

/* ---- max_connections --------------------------------------------------------- */

static void test_refusal(void) {
  tsrv_t t;
  http_limits_t l = test_limits();
  l.max_connections = 1;
  tap_ok(tsrv_start(&t, &l, "127.0.0.1"), "one-connection server started");
  cli_t a, b;
  resp_t r;
  tap_ok(cli_open(&a, t.port) && cli_sends(&a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&a, &r, false) && r.status == 200,
         "first connection served");
  tap_ok(cli_open(&b, t.port), "second connection accepted by the kernel");
  tap_ok(cli_sends(&b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") && cli_read(&b, &r, false),
         "second connection answered");
  check_problem(&r, 503, "unavailable", "request", "503 over capacity");
  tap_is_str(resp_header(&r, "retry-after"), "1", "503 carries Retry-After");
  tap_ok(cli_eof(&b, 3000), "refused connection closed");
  cli_close(&b);
  snap_t s = tsrv_snap(&t);
  tap_is_int((long long)s.stats.connections_refused, 1, "connections_refused counted");
  tap_is_int((long long)s.stats.connections_total, 1, "refused one not in connections_total");
  tap_is_int(s.last_status, 503, "access callback saw the 503");
  tap_ok(!s.last_access_had_method, "503 access record has no method");
  tap_ok(cli_sends(&a, "GET /hello?id=2 HTTP/1.1\r\nHost: t\r\n\r\n") && cli_read(&a, &r, false) &&
             strcmp(r.body, "id-2") == 0,
         "first connection still served");
  cli_close(&a);
  tsrv_shutdown(&t, 1000);
  tap_is_int(tsrv_join(&t), 0, "one-connection server: loop closes cleanly");
}

/* The per-address cap: 4 from 127.0.0.2, then 503; another address and the
 * exempt proxy are still served; closing one frees its slot. */
typedef struct peer_q_s {
  const char *addr;
  unsigned count;
} peer_q_t;

static void tsrv_do_peer_count(tsrv_t *t, void *arg) {
  peer_q_t *q = arg;
  q->count = http_server_peer_count(t->server, q->addr);
}

static unsigned tsrv_peer_count(tsrv_t *t, const char *addr) {
  peer_q_t q = {addr, 0};
  tsrv_call(t, tsrv_do_peer_count, &q);
  return q.count;
}

static bool pred_peer_count_zero(const snap_t *s, long arg) {
  return s->stats.connections_open == (uint64_t)arg;
}

static void test_peers(void) {
  tsrv_t t;
  http_limits_t l = test_limits();
  tsrv_peer_cap = 4;
  tsrv_peer_exempt = "127.0.0.4, ::1";
  bool started = tsrv_start(&t, &l, "127.0.0.1");
  tsrv_peer_cap = 0;
  tsrv_peer_exempt = NULL;
  if (!tap_ok(started, "per-address server started (cap 4, 127.0.0.4 exempt)"))
    return;

  cli_t held[4], extra, other, proxy[6];
  resp_t r;
  bool all = true;
  for (int i = 0; i < 4; i++)
    all = all && cli_open_from(&held[i], "127.0.0.2", t.port) &&
          cli_sends(&held[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") &&
          cli_read(&held[i], &r, false) && r.status == 200;
  tap_ok(all, "4 keep-alive connections from 127.0.0.2 served");
  tap_is_int(tsrv_peer_count(&t, "127.0.0.2"), 4, "4 counted for 127.0.0.2");
  tap_ok(cli_open_from(&extra, "127.0.0.2", t.port) &&
             cli_sends(&extra, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") && cli_read(&extra, &r, false),
         "a 5th from 127.0.0.2 is answered");
  check_problem(&r, 503, "unavailable", "request", "5th from one address");
  tap_ok(has(r.body, "Too many connections from this address."), "503 says why");
  tap_is_str(resp_header(&r, "retry-after"), "1", "per-address 503 carries Retry-After");
  tap_ok(cli_eof(&extra, 3000), "the 5th is closed");
  cli_close(&extra);
  tap_ok(cli_open_from(&other, "127.0.0.3", t.port) &&
             cli_sends(&other, "GET /hello?id=3 HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&other, &r, false) && r.status == 200 && strcmp(r.body, "id-3") == 0,
         "127.0.0.3 is still served");
  cli_close(&other);
  all = true;
  for (int i = 0; i < 6; i++)
    all = all && cli_open_from(&proxy[i], "127.0.0.4", t.port) &&
          cli_sends(&proxy[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") &&
          cli_read(&proxy[i], &r, false) && r.status == 200;
  tap_ok(all, "6 from the exempt 127.0.0.4 served");
  tap_is_int(tsrv_peer_count(&t, "127.0.0.4"), 0, "the exempt address is not counted");
  for (int i = 0; i < 6; i++)
    cli_close(&proxy[i]);
  tap_ok(cli_sends(&held[0], "GET /hello?id=7 HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&held[0], &r, false) && strcmp(r.body, "id-7") == 0,
         "the held connections are still served");
  cli_close(&held[3]);
  tap_ok(tsrv_wait(&t, pred_peer_count_zero, 3, 3000), "a closed one is released");
  tap_is_int(tsrv_peer_count(&t, "127.0.0.2"), 3, "3 counted for 127.0.0.2");
  tap_ok(cli_open_from(&extra, "127.0.0.2", t.port) &&
             cli_sends(&extra, "GET /hello?id=8 HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&extra, &r, false) && r.status == 200,
         "its slot is free again");
  cli_close(&extra);
  for (int i = 0; i < 3; i++)
    cli_close(&held[i]);
  tap_ok(tsrv_wait(&t, pred_peer_count_zero, 0, 3000), "every connection closed");
  tap_is_int(tsrv_peer_count(&t, "127.0.0.2"), 0, "nothing counted at the end");
  tsrv_shutdown(&t, 1000);
  tap_is_int(tsrv_join(&t), 0, "per-address server: loop closes cleanly");

  http_server_t *s = NULL;
  uv_loop_t loop;
  uv_loop_init(&loop);
  tap_ok(http_server_new(&loop, &l, t_handler, NULL, &s) == 0, "server for a bad exempt list");
  tap_is_int(http_server_set_peer_limit(s, 4, "10.0.0.1,not-an-ip"), UV_EINVAL,
             "an exempt entry that is not an IP: UV_EINVAL");
  http_server_shutdown(s, 0, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  http_server_free(s);
  tap_is_int(uv_loop_close(&loop), 0, "its loop closes cleanly");
}

/* ---- shutdown ------------------------------------------------------------------ */

/* Read until the server closes; the bytes in out (NUL-terminated). */
static bool cli_read_to_eof(cli_t *c, char *out, size_t cap) {
  while (cli_fill(c))
    ;
  if (c->len >= cap)
    return false;
  memcpy(out, c->buf, c->len);
  out[c->len] = '\0';
  return true;
}

static bool pred_streams_closed(const snap_t *s, long n) { return s->streams_closed >= n; }
static bool pred_streams_open_is(const snap_t *s, long n) { return (long)s->streams_open == n; }

static void test_streams(void) {
  tsrv_t t;
  http_limits_t l = test_limits();
  l.read_timeout_ms = 150;       /* a stream outlives both */
  l.keepalive_timeout_ms = 150;
  tap_ok(tsrv_start(&t, &l, "127.0.0.1"), "stream server started");
  cli_t c;
  resp_t r;
  char body[4096];
  tap_ok(cli_open(&c, t.port) && cli_sends(&c, "GET /stream?n=8&ms=50 HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&c, &r, false),
         "stream: head read");
  tap_is_int(r.status, 200, "stream: 200");
  tap_ok(resp_header(&r, "content-length") == NULL, "stream: no Content-Length (not even the handler's)");
  tap_is_str(resp_header(&r, "connection"), "close", "stream: Connection: close");
  tap_is_str(resp_header(&r, "content-type"), "text/event-stream", "stream: the handler's headers");
  tap_ok(resp_header(&r, "x-content-type-options") != NULL, "stream: the security headers");
  tap_ok(cli_read_to_eof(&c, body, sizeof(body)), "stream: read to the end");
  tap_is_str(body, "start\ntick\ntick\ntick\ntick\ntick\ntick\ntick\ntick\n",
             "stream: every chunk in order over 400 ms, past the read and keep-alive deadlines");
  cli_close(&c);
  snap_t s = tsrv_snap(&t);
  tap_is_int(s.streams_ended, 1, "stream: ended once");
  tap_is_int(s.streams_closed, 0, "stream: not told of a close it made itself");
  tap_ok(tsrv_wait(&t, pred_access_at_least, 1, 2000), "stream: access callback at the end");
  s = tsrv_snap(&t);
  tap_is_int(s.last_status, 200, "stream: access callback with its status");
  tap_is_int((long long)s.stats.requests_in_flight, 0, "stream: not counted in flight");

  /* The client leaves in the middle: the handler is told, ends, and the
   * connection is freed. */
  tap_ok(cli_open(&c, t.port) && cli_sends(&c, "GET /stream?n=1000&ms=10 HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&c, &r, false) && r.status == 200,
         "stream 2: open");
  tap_ok(tsrv_wait(&t, pred_streams_open_is, 1, 2000), "stream 2: counted open");
  cli_close(&c);
  tap_ok(tsrv_wait(&t, pred_streams_closed, 1, 3000), "stream 2: the handler is told the client left");
  tap_ok(tsrv_wait(&t, pred_open_is, 0, 3000), "stream 2: the connection is freed");
  s = tsrv_snap(&t);
  tap_is_int((long long)s.streams_open, 0, "stream 2: no stream open");
  tap_is_int(s.streams_ended, 2, "stream 2: ended");

  /* Shutdown with streams open: each handler is told and ends its stream,
   * long before the grace period. */
  cli_t a, b;
  tap_ok(cli_open(&a, t.port) && cli_sends(&a, "GET /stream?n=100000&ms=10 HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&a, &r, false) && cli_open(&b, t.port) &&
             cli_sends(&b, "GET /stream?n=100000&ms=10 HTTP/1.1\r\nHost: t\r\n\r\n") && cli_read(&b, &r, false),
         "two streams open");
  tap_ok(tsrv_wait(&t, pred_streams_open_is, 2, 2000), "two streams counted open");
  uint64_t t0 = now_ms();
  tsrv_shutdown(&t, 5000);
  tap_ok(cli_read_to_eof(&a, body, sizeof(body)) && cli_read_to_eof(&b, body, sizeof(body)),
         "shutdown: both streams end");
  tap_is_int(tsrv_join(&t), 0, "stream server: loop closes cleanly");
  tap_ok(now_ms() - t0 < 2000, "shutdown: well within the grace period");
  tap_is_int(t.streams_shutdown, 2, "shutdown: both handlers told");
  tap_is_int(t.streams_ended, 4, "shutdown: both ended");
  cli_close(&a);
  cli_close(&b);
}

static void test_graceful_shutdown(void) {
  tsrv_t t;
  http_limits_t l = test_limits();
  tap_ok(tsrv_start(&t, &l, "127.0.0.1"), "shutdown server started");
  cli_t busy, idle, late;
  resp_t r;
  tap_ok(cli_open(&idle, t.port) && cli_sends(&idle, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&idle, &r, false) && r.status == 200,
         "idle keep-alive connection set up");
  tap_ok(cli_open(&busy, t.port) && cli_sends(&busy, "GET /slow?ms=400&id=42 HTTP/1.1\r\nHost: t\r\n\r\n"),
         "slow request sent");
  usleep(100 * 1000);
  uint64_t shutdown_ns = uv_hrtime();
  tsrv_shutdown(&t, 5000);
  tap_ok(cli_eof(&idle, 1000), "idle keep-alive connection closed at once");
  tap_ok(!cli_open(&late, t.port), "no new connections after shutdown");
  tap_ok(cli_read(&busy, &r, false), "in-flight request answered during shutdown");
  tap_is_int(r.status, 200, "in-flight answer: 200");
  tap_is_str(r.body, "id-42", "in-flight answer: body");
  tap_is_str(resp_header(&r, "connection"), "close", "in-flight answer says close");
  tap_ok(cli_eof(&busy, 3000), "connection closed after the answer");
  cli_close(&busy);
  cli_close(&idle);
  tap_is_int(tsrv_join(&t), 0, "shutdown server: loop closes cleanly");
  tap_is_int(t.closed_count, 1, "closed callback ran once");
  tap_ok(t.closed_ns >= t.answered_ns && t.answered_ns > shutdown_ns,
         "closed callback waited for the in-flight request");
  tap_is_int(t.access_count, 2, "access callback ran for both requests");
}

static void test_forced_shutdown(void) {
  tsrv_t t;
  http_limits_t l = test_limits();
  tap_ok(tsrv_start(&t, &l, "127.0.0.1"), "forced-shutdown server started");
  cli_t c;
  tap_ok(cli_open(&c, t.port) && cli_sends(&c, "GET /pending?ms=700 HTTP/1.1\r\nHost: t\r\n\r\n"),
         "long request sent");
  usleep(100 * 1000);
  uint64_t shutdown_ns = uv_hrtime();
  tsrv_shutdown(&t, 100);
  tap_ok(cli_eof(&c, 3000), "connection force-closed after the grace period");
  cli_close(&c);
  tap_is_int(tsrv_join(&t), 0, "forced-shutdown server: loop closes cleanly");
  tap_is_int(t.closed_count, 1, "closed callback ran once");
  tap_ok(t.closed_ns - shutdown_ns < 500 * 1000000ull,
         "closed callback did not wait for the handler (%llu ms)",
         (unsigned long long)((t.closed_ns - shutdown_ns) / 1000000));
  tap_is_int(t.pending_done, 1, "handler answered the orphaned request later");
  tap_is_int(t.pending_gone, 1, "orphaned request reported gone");
}

static void on_plain_closed(http_server_t *server, void *data) {
  (*(int *)data)++;
}

static void test_listen_errors(void) {
  uv_loop_t loop;
  http_server_t *s = NULL;
  http_limits_t l = test_limits();
  int closed = 0;
  tap_is_int(uv_loop_init(&loop), 0, "loop for listen errors");
  tap_is_int(http_server_new(&loop, &l, t_handler, NULL, &s), 0, "server created");
  tap_is_int(http_server_listen(s, "not-an-ip", 0), UV_EINVAL, "bad host: UV_EINVAL");
  tap_is_int(http_server_listen(s, "127.0.0.1", 70000), UV_EINVAL, "bad port: UV_EINVAL");
  http_server_t *none = NULL;
  tap_is_int(http_server_new(&loop, NULL, t_handler, NULL, &none), -EINVAL, "no limits: -EINVAL");
  http_server_shutdown(s, 0, on_plain_closed, &closed);
  tap_is_int(closed, 0, "closed callback not called from inside shutdown");
  uv_run(&loop, UV_RUN_DEFAULT);
  tap_is_int(closed, 1, "closed callback after shutdown of an idle server");
  http_server_free(s);
  tap_is_int(uv_loop_close(&loop), 0, "listen-error loop closes cleanly");
}

static void test_ipv6(void) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  bool have6 = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  if (fd >= 0)
    close(fd);
  if (!have6) {
    tap_ok(true, "# SKIP no IPv6 loopback");
    return;
  }
  tsrv_t t;
  http_limits_t l = test_limits();
  tap_ok(tsrv_start(&t, &l, "::1"), "IPv6 server started on ::1");
  tap_ok(t.port > 0, "IPv6 port picked");
  cli_t c;
  resp_t r;
  tap_ok(cli_open_at(&c, AF_INET6, "::1", t.port) && cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") &&
             cli_read(&c, &r, false) && r.status == 200,
         "IPv6 request answered");
  tap_is_str(resp_header(&r, "x-remote"), "::1", "IPv6 remote_addr");
  cli_close(&c);
  tsrv_shutdown(&t, 1000);
  tap_is_int(tsrv_join(&t), 0, "IPv6 server: loop closes cleanly");
}

static void test_status_text(void) {
  tap_is_str(http_status_text(200), "OK", "status text 200");
  tap_is_str(http_status_text(404), "Not Found", "status text 404");
  tap_is_str(http_status_text(408), "Request Timeout", "status text 408");
  tap_is_str(http_status_text(422), "Unprocessable Content", "status text 422");
  tap_is_str(http_status_text(428), "Precondition Required", "status text 428");
  tap_is_str(http_status_text(431), "Request Header Fields Too Large", "status text 431");
  tap_is_str(http_status_text(503), "Service Unavailable", "status text 503");
  tap_is_str(http_status_text(599), "Server Error", "unknown 5xx");
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IONBF, 0);

  test_status_text();
  test_listen_errors();

  tsrv_t t;
  http_limits_t l = test_limits();
  if (!tap_ok(tsrv_start(&t, &l, "127.0.0.1"), "main server started on 127.0.0.1:0"))
    return tap_done();
  tap_ok(t.port > 0, "port 0 picked a port");
  test_keepalive(&t);
  test_pipelined(&t);
  test_bodies(&t);
  test_server_limits(&t);
  test_paths(&t);
  test_request_ids(&t);
  test_methods_and_versions(&t);
  test_disconnect_while_pending(&t);
  test_strict(&t);
  snap_t s = tsrv_snap(&t);
  tap_is_int((long long)s.stats.requests_total, s.handled, "requests_total counts dispatched requests");
  tap_ok(s.handled > 25, "the handler ran for every good request (%d)", s.handled);
  tap_ok(s.stats.connections_total >= 20, "connections_total counts (%llu)",
         (unsigned long long)s.stats.connections_total);
  tsrv_shutdown(&t, 2000);
  tap_is_int(tsrv_join(&t), 0, "main server: loop closes cleanly");
  tap_is_int(t.closed_count, 1, "main server: closed callback once");

  test_timeouts();
  test_refusal();
  test_peers();
  test_streams();
  test_graceful_shutdown();
  test_forced_shutdown();
  test_ipv6();
  return tap_done();
}
