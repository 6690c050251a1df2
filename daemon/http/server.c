/* http/server: the listener, accepting, graceful shutdown and statistics.
 *
 * The server owns three handles: the listener, the grace timer and the
 * reaper (a uv_idle_t that frees connections outside their own callbacks,
 * Redis freeClientAsync style). closed_cb runs once all three and every
 * connection's handles are closed. */
#include "http/internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void http_server__on_handle_close(uv_handle_t *handle);

int http_server_new(uv_loop_t *loop, const http_limits_t *limits,
                    http_handler_cb handler, void *handler_data,
                    http_server_t **out) {
  int r;
  if (loop == NULL || limits == NULL || handler == NULL || out == NULL)
    return -EINVAL;
  http_server_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->loop = loop;
  s->limits = *limits;
  s->handler = handler;
  s->handler_data = handler_data;

  /* uv_tcp_init with AF_UNSPEC creates no socket; it is the only step that
   * can fail, so it goes first and the ladder stays short. */
  r = uv_tcp_init(loop, &s->listener);
  if (r != 0)
    goto fail_free;
  uv_timer_init(loop, &s->grace_timer);
  uv_idle_init(loop, &s->reaper);
  s->handles_open = 3;
  *out = s;
  return 0;

fail_free:
  free(s);
  return r;
}

static void http_server__on_connection(uv_stream_t *listener, int status) {
  http_server_t *s = container_of((uv_tcp_t *)listener, http_server_t, listener);
  if (status < 0 || s->shutting_down)
    return;
  http__conn_accept(s);
}

/* Make room for max_connections descriptors plus the refusals in flight
 * and HTTP__FD_RESERVE for the rest of the process (pool, cluster, logs);
 * lower max_connections where the hard limit does not allow it. */
static void http_server__fd_budget(http_server_t *s) {
  if (s->limits.max_connections == 0)
    return;
  rlim_t extra = HTTP__MAX_REFUSING + HTTP__FD_RESERVE;
  rlim_t need = (rlim_t)s->limits.max_connections + extra;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
    return;
  struct rlimit want = rl;
  want.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
  if (want.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &want) == 0)
    rl.rlim_cur = want.rlim_cur;
  if (rl.rlim_cur < need)
    s->limits.max_connections = rl.rlim_cur > extra + 16 ? (unsigned)(rl.rlim_cur - extra) : 16;
}

unsigned http_server_max_connections(const http_server_t *server) {
  return server->limits.max_connections;
}

int http_server_listen(http_server_t *server, const char *host, int port) {
  struct sockaddr_storage ss;
  struct sockaddr_storage bound;
  int len = (int)sizeof(bound);
  int r;

  if (server == NULL || host == NULL || port < 0 || port > 65535)
    return UV_EINVAL;
  if (server->shutting_down || server->listening)
    return UV_EINVAL;
  memset(&ss, 0, sizeof(ss));
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
    return UV_EINVAL;
  http_server__fd_budget(server);
  r = uv_tcp_bind(&server->listener, (const struct sockaddr *)&ss, 0);
  if (r != 0)
    return r;
  r = uv_listen((uv_stream_t *)&server->listener, HTTP__BACKLOG, http_server__on_connection);
  if (r != 0)
    return r;
  r = uv_tcp_getsockname(&server->listener, (struct sockaddr *)&bound, &len);
  if (r != 0)
    return r;
  if (bound.ss_family == AF_INET6)
    server->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
  else
    server->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  server->listening = true;
  return 0;
}

int http_server_port(const http_server_t *server) {
  return server->port;
}

void http_server_set_access_cb(http_server_t *server, http_access_cb cb, void *data) {
  server->access_cb = cb;
  server->access_data = data;
}

void http_server_stats(const http_server_t *server, http_server_stats_t *out) {
  *out = server->stats;
}

void http__server_link(http_server_t *s, http_conn_t *c) {
  c->prev = NULL;
  c->next = s->conns;
  if (s->conns != NULL)
    s->conns->prev = c;
  s->conns = c;
}

void http__server_unlink(http_server_t *s, http_conn_t *c) {
  if (c->prev != NULL)
    c->prev->next = c->next;
  else if (s->conns == c)
    s->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

static void http_server__on_reap(uv_idle_t *idle) {
  http_server_t *s = container_of(idle, http_server_t, reaper);
  http_conn_t *list = s->reap_list;
  s->reap_list = NULL;
  uv_idle_stop(&s->reaper);
  while (list != NULL) {
    http_conn_t *next = list->reap_next;
    http__conn_free(list);
    list = next;
  }
  http__server_maybe_finish(s);
}

void http__server_defer_free(http_server_t *s, http_conn_t *c) {
  if (c->reap_queued)
    return;
  c->reap_queued = true;
  c->reap_next = s->reap_list;
  s->reap_list = c;
  uv_idle_start(&s->reaper, http_server__on_reap);
}

static void http_server__on_handle_close(uv_handle_t *handle) {
  http_server_t *s = handle->data;
  if (--s->handles_open == 0 && s->finishing && !s->closed) {
    s->closed = true;
    if (s->closed_cb != NULL)
      s->closed_cb(s, s->closed_data);
  }
}

static void http_server__close_handle(http_server_t *s, uv_handle_t *handle) {
  if (uv_is_closing(handle))
    return;
  handle->data = s;
  uv_close(handle, http_server__on_handle_close);
}

void http__server_maybe_finish(http_server_t *s) {
  if (!s->shutting_down || s->finishing || s->conns != NULL || s->reap_list != NULL)
    return;
  s->finishing = true;
  http_server__close_handle(s, (uv_handle_t *)&s->grace_timer);
  http_server__close_handle(s, (uv_handle_t *)&s->reaper);
}

static void http_server__on_grace(uv_timer_t *timer) {
  http_server_t *s = container_of(timer, http_server_t, grace_timer);
  s->killed = true;
  http_conn_t *c = s->conns;
  while (c != NULL) {
    http_conn_t *next = c->next; /* kill may unlink c (orphan) */
    http__conn_kill(c);
    c = next;
  }
  http__server_maybe_finish(s);
}

void http_server_shutdown(http_server_t *server, uint64_t grace_ms,
                          http_server_closed_cb cb, void *data) {
  http_server_t *s = server;
  if (s->shutting_down)
    return;
  s->shutting_down = true;
  s->closed_cb = cb;
  s->closed_data = data;
  http_server__close_handle(s, (uv_handle_t *)&s->listener);
  uv_timer_start(&s->grace_timer, http_server__on_grace, grace_ms, 0);
  http_conn_t *c = s->conns;
  while (c != NULL) {
    http_conn_t *next = c->next;
    http__conn_shutdown(c);
    c = next;
  }
  http__server_maybe_finish(s);
}

void http_server_free(http_server_t *server) {
  if (server == NULL)
    return;
  /* Freeing with handles still open would leave them dangling in the loop. */
  if (!server->closed)
    abort();
  http__peers_free(server);
  free(server);
}
