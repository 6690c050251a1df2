#include "http/client.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

typedef struct http_client__sock_s http_client__sock_t;
typedef struct http_client__req_s http_client__req_t;

struct http_client_s {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  http_client_config_t cfg;
  char *protocols;
  char *user_agent;
  unsigned in_flight;
  http_client__req_t *reqs;     /* requests in flight */
  http_client__sock_t *socks;   /* sockets curl watches */
  unsigned handles_open;        /* the timer and the polls not yet closed */
  bool closing;
  void (*closed_cb)(void *data);
  void *closed_data;
};

/* One socket curl asked us to watch. */
struct http_client__sock_s {
  uv_poll_t poll;
  curl_socket_t fd;
  http_client_t *client;
  http_client__sock_t *prev, *next;
};

struct http_client__req_s {
  http_client_t *client;
  CURL *easy;
  struct curl_slist *headers;
  http_client_done_cb cb;
  void *data;
  size_t received;
  bool too_large;
  bool refused;
  uint64_t started_ms;
  char errbuf[CURL_ERROR_SIZE];
  http_client__req_t *prev, *next;
};

int http_client_global_init(void) {
  return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -ENOMEM;
}

void http_client_global_cleanup(void) { curl_global_cleanup(); }

static void http_client__maybe_free(http_client_t *c) {
  if (!c->closing || c->handles_open > 0)
    return;
  void (*cb)(void *) = c->closed_cb;
  void *data = c->closed_data;
  free(c->protocols);
  free(c->user_agent);
  free(c);
  if (cb != NULL)
    cb(data);
}

static void http_client__on_handle_closed(uv_handle_t *h) {
  http_client_t *c = h->data;
  if (h->type == UV_POLL)
    free(container_of((uv_poll_t *)h, http_client__sock_t, poll));
  c->handles_open--;
  http_client__maybe_free(c);
}

static void http_client__sock_close(http_client_t *c, http_client__sock_t *sk) {
  if (sk->prev != NULL)
    sk->prev->next = sk->next;
  else
    c->socks = sk->next;
  if (sk->next != NULL)
    sk->next->prev = sk->prev;
  uv_poll_stop(&sk->poll);
  uv_close((uv_handle_t *)&sk->poll, http_client__on_handle_closed);
}

/* Unlink, report and free one request. The easy handle is already out of
 * the multi handle. */
static void http_client__finish(http_client__req_t *r, const http_client_result_t *res) {
  http_client_t *c = r->client;
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    c->reqs = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
  c->in_flight--;
  curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  r->cb(r->data, res);  /* res->error may point into r->errbuf: free r after */
  free(r);
}

/* Report every transfer curl has finished. Runs from a libuv callback,
 * after curl_multi_socket_action returned, never inside a curl callback. */
static void http_client__check_done(http_client_t *c) {
  CURLMsg *m;
  int pending;
  while (!c->closing && (m = curl_multi_info_read(c->multi, &pending)) != NULL) {
    if (m->msg != CURLMSG_DONE)
      continue;
    CURL *easy = m->easy_handle;
    CURLcode code = m->data.result;
    http_client__req_t *r = NULL;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(c->multi, easy);
    http_client_result_t res = {
      .outcome = code == CURLE_OK ? HTTP_CLIENT_OK
                 : r->too_large   ? HTTP_CLIENT_TOO_LARGE
                 : r->refused     ? HTTP_CLIENT_REFUSED
                                  : HTTP_CLIENT_FAILED,
      .status = status,
      .error = code == CURLE_OK ? "" : r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(code),
      .duration_ms = uv_now(c->loop) - r->started_ms,
    };
    if (res.outcome == HTTP_CLIENT_REFUSED)
      res.error = "the address is not allowed";
    http_client__finish(r, &res);
  }
}

static void http_client__on_poll(uv_poll_t *h, int status, int events) {
  http_client__sock_t *sk = container_of(h, http_client__sock_t, poll);
  http_client_t *c = sk->client;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  int running;
  curl_multi_socket_action(c->multi, sk->fd, flags, &running);  /* may close sk (deferred) */
  http_client__check_done(c);
}

static void http_client__on_timeout(uv_timer_t *t) {
  http_client_t *c = container_of(t, http_client_t, timer);
  int running;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  http_client__check_done(c);
}

/* CURLMOPT_SOCKETFUNCTION: watch, re-arm or forget one socket. */
static int http_client__on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp) {
  http_client_t *c = userp;
  http_client__sock_t *sk = socketp;
  if (action == CURL_POLL_REMOVE) {
    if (sk != NULL) {
      if (!c->closing)
        curl_multi_assign(c->multi, fd, NULL);
      http_client__sock_close(c, sk);
    }
    return 0;
  }
  if (sk == NULL) {
    sk = calloc(1, sizeof(*sk));
    if (sk == NULL)
      return -1;
    if (uv_poll_init_socket(c->loop, &sk->poll, fd) != 0) {
      free(sk);
      return -1;
    }
    sk->poll.data = c;
    sk->fd = fd;
    sk->client = c;
    sk->next = c->socks;
    if (c->socks != NULL)
      c->socks->prev = sk;
    c->socks = sk;
    c->handles_open++;
    curl_multi_assign(c->multi, fd, sk);
  }
  int events = 0;
  if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
    events |= UV_READABLE;
  if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
    events |= UV_WRITABLE;
  return uv_poll_start(&sk->poll, events, http_client__on_poll) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle. */
static int http_client__on_timer(CURLM *multi, long timeout_ms, void *userp) {
  http_client_t *c = userp;
  if (timeout_ms < 0)
    return uv_timer_stop(&c->timer) == 0 ? 0 : -1;
  return uv_timer_start(&c->timer, http_client__on_timeout, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* CURLOPT_OPENSOCKETFUNCTION: the resolved address, before connecting. */
static curl_socket_t http_client__on_open_socket(void *clientp, curlsocktype purpose,
                                                 struct curl_sockaddr *address) {
  http_client__req_t *r = clientp;
  const http_client_config_t *cfg = &r->client->cfg;
  if (purpose != CURLSOCKTYPE_IPCXN)
    return CURL_SOCKET_BAD;
  if (cfg->addr_allowed != NULL && !cfg->addr_allowed(&address->addr, cfg->addr_data)) {
    r->refused = true;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* CURLOPT_WRITEFUNCTION: count the body, abort past the limit. */
static size_t http_client__on_write(char *ptr, size_t size, size_t n, void *userdata) {
  http_client__req_t *r = userdata;
  r->received += size * n;
  if (r->received > r->client->cfg.max_response_bytes) {
    r->too_large = true;
    return 0;
  }
  return size * n;
}

int http_client_new(uv_loop_t *loop, const http_client_config_t *cfg, http_client_t **out) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  if (v == NULL || !(v->features & CURL_VERSION_ASYNCHDNS))
    return -ENOTSUP;
  http_client_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return -ENOMEM;
  c->loop = loop;
  c->cfg = *cfg;
  c->protocols = strdup(cfg->protocols != NULL ? cfg->protocols : "https");
  c->user_agent = strdup(cfg->user_agent != NULL ? cfg->user_agent : "http-client");
  c->cfg.protocols = c->protocols;
  c->cfg.user_agent = c->user_agent;
  int rc = -ENOMEM;
  if (c->protocols == NULL || c->user_agent == NULL)
    goto fail_alloc;
  c->multi = curl_multi_init();
  if (c->multi == NULL)
    goto fail_alloc;
  rc = uv_timer_init(loop, &c->timer);
  if (rc != 0)
    goto fail_multi;
  c->timer.data = c;
  c->handles_open = 1;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, http_client__on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, http_client__on_timer);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  *out = c;
  return 0;

fail_multi:
  curl_multi_cleanup(c->multi);
fail_alloc:
  free(c->protocols);
  free(c->user_agent);
  free(c);
  return rc;
}

int http_client_post(http_client_t *c, const char *url, const char *const *headers, const char *body,
                     size_t len, http_client_done_cb cb, void *data) {
  if (c->closing)
    return -ECANCELED;
  http_client__req_t *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return -ENOMEM;
  r->client = c;
  r->cb = cb;
  r->data = data;
  r->easy = curl_easy_init();
  if (r->easy == NULL)
    goto fail;
  for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
    struct curl_slist *next = curl_slist_append(r->headers, headers[i]);
    if (next == NULL)
      goto fail;
    r->headers = next;
  }
  struct curl_slist *next = curl_slist_append(r->headers, "Expect:");  /* no 100-continue wait */
  if (next == NULL)
    goto fail;
  r->headers = next;
  CURL *e = r->easy;
  if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, c->cfg.protocols) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK ||
      curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK)
    goto fail;
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");   /* never a proxy from the environment */
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->cfg.connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->cfg.total_timeout_ms);
  curl_easy_setopt(e, CURLOPT_USERAGENT, c->cfg.user_agent);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_client__on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, http_client__on_open_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
  r->started_ms = uv_now(c->loop);
  if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
    goto fail;
  r->next = c->reqs;
  if (c->reqs != NULL)
    c->reqs->prev = r;
  c->reqs = r;
  c->in_flight++;
  return 0;

fail:
  if (r->easy != NULL)
    curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  free(r);
  return -ENOMEM;
}

unsigned http_client_in_flight(const http_client_t *c) { return c->in_flight; }

void http_client_close(http_client_t *c, void (*cb)(void *data), void *data) {
  c->closed_cb = cb;
  c->closed_data = data;
  c->closing = true;  /* from here a new request is refused */
  while (c->reqs != NULL) {
    http_client__req_t *r = c->reqs;
    curl_multi_remove_handle(c->multi, r->easy);
    http_client_result_t res = {.outcome = HTTP_CLIENT_CANCELED, .error = "canceled",
                                .duration_ms = uv_now(c->loop) - r->started_ms};
    http_client__finish(r, &res);
  }
  curl_multi_cleanup(c->multi);  /* may still report sockets removed */
  c->multi = NULL;
  while (c->socks != NULL)
    http_client__sock_close(c, c->socks);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, http_client__on_handle_closed);
}
