/* db/pg_listen: one LISTEN connection, asynchronous, reconnecting.
 *
 * Only asynchronous libpq calls: PQconnectStartParams/PQconnectPoll to
 * connect (re-reading PQsocket() after each poll), PQsendQuery + PQflush to
 * send LISTEN and NOTIFY, PQconsumeInput/PQgetResult/PQnotifies to read.
 * At most one NOTIFY is in flight; a pg_listen_notify() meanwhile sets
 * notify_pending, and exactly one more is sent when it completes. One
 * dispatcher, listen__on_event(), switches on the state. The uv_poll_t is
 * on the heap because a new socket needs a new one while the old one is
 * still closing. A host name in the connection string is resolved on
 * libuv's threadpool before each attempt (db/pg_resolve.h), as the pool
 * does, so libpq never blocks the loop on DNS.
 */
#include "db/pg_listen.h"
#include "db/pg_resolve.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum pg_listen_state_e {
  PG_LISTEN_WAITING,      /* no connection; the backoff timer may be armed */
  PG_LISTEN_CONNECTING,   /* PQconnectPoll in progress */
  PG_LISTEN_SUBSCRIBING,  /* SET + LISTEN sent, their results not yet read */
  PG_LISTEN_LISTENING,    /* LISTEN in effect: notifications arrive */
  PG_LISTEN_CLOSED,       /* pg_listen_close() was called */
} pg_listen_state_t;

struct pg_listen_s {
  uv_loop_t *loop;
  pg_listen_state_t state;
  char *conninfo;
  char *channel;
  char *application_name;
  char *listen_sql;               /* SET synchronous_commit TO off; LISTEN <channel> */
  char *notify_sql;               /* NOTIFY <channel> */
  pg_listen_config_t cfg;
  pg_listen_cbs_t cbs;
  void *data;

  PGconn *pq;
  pg_resolve_plan_t *dns_plan;    /* NULL: nothing to resolve */
  pg_resolve_t *dns;              /* a lookup in flight (CONNECTING) */
  uv_poll_t *poll;
  int poll_fd;
  uv_timer_t timer;             /* connect timeout (CONNECTING), retry (WAITING) */
  uint64_t backoff_ms;
  uint64_t rng;
  bool listened_once;
  bool listen_failed;           /* the LISTEN statement answered an error */
  bool notify_in_flight;        /* a NOTIFY sent, its results not all read */
  bool notify_pending;          /* pg_listen_notify() called meanwhile: one more */
  uint64_t reconnects;

  unsigned handles_open;
  void (*closed_cb)(void *data);
  void *closed_data;
};

static void listen__on_poll(uv_poll_t *poll, int status, int events);
static void listen__on_timer(uv_timer_t *timer);
static void listen__connect(pg_listen_t *l);
static void listen__break(pg_listen_t *l, const char *why);

/* ---- handles ------------------------------------------------------------ */

static void listen__maybe_free(pg_listen_t *l) {
  if (l->state != PG_LISTEN_CLOSED || l->handles_open > 0)
    return;
  void (*cb)(void *) = l->closed_cb;
  void *data = l->closed_data;
  free(l->conninfo);
  free(l->channel);
  free(l->application_name);
  free(l->listen_sql);
  free(l->notify_sql);
  pg_resolve_plan_free(l->dns_plan);
  free(l);
  if (cb != NULL)
    cb(data);
}

static void listen__poll_closed(uv_handle_t *h) {
  pg_listen_t *l = h->data;
  free(h);
  l->handles_open--;
  listen__maybe_free(l);
}

static void listen__timer_closed(uv_handle_t *h) {
  pg_listen_t *l = container_of((uv_timer_t *)h, pg_listen_t, timer);
  l->handles_open--;
  listen__maybe_free(l);
}

/* Before PQfinish closes the socket, so libuv drops the right descriptor. */
static void listen__unwatch(pg_listen_t *l) {
  if (l->poll == NULL)
    return;
  uv_close((uv_handle_t *)l->poll, listen__poll_closed);
  l->poll = NULL;
  l->poll_fd = -1;
}

static int listen__watch(pg_listen_t *l, int events) {
  int fd = PQsocket(l->pq);
  if (fd < 0)
    return -EBADF;
  if (l->poll != NULL && l->poll_fd != fd)
    listen__unwatch(l);
  if (l->poll == NULL) {
    uv_poll_t *p = malloc(sizeof(*p));
    if (p == NULL)
      return -ENOMEM;
    int rc = uv_poll_init(l->loop, p, fd);
    if (rc < 0) {
      free(p);
      return rc;
    }
    p->data = l;
    l->poll = p;
    l->poll_fd = fd;
    l->handles_open++;
  }
  return uv_poll_start(l->poll, events, listen__on_poll);
}

static void listen__drop(pg_listen_t *l) {
  l->notify_in_flight = false;
  l->notify_pending = false;
  pg_resolve_abandon(l->dns);
  l->dns = NULL;
  listen__unwatch(l);
  if (l->pq != NULL) {
    PQfinish(l->pq);
    l->pq = NULL;
  }
}

static uint64_t listen__random(pg_listen_t *l) {
  uint64_t x = l->rng; /* xorshift64*: jitter only */
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  l->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static void listen__schedule_retry(pg_listen_t *l) {
  uint64_t b = l->backoff_ms ? l->backoff_ms : l->cfg.backoff_min_ms;
  uint64_t half = b / 2;
  uint64_t delay = half + (half > 0 ? listen__random(l) % (half + 1) : 0);
  l->backoff_ms = b * 2 < l->cfg.backoff_max_ms ? b * 2 : l->cfg.backoff_max_ms;
  uv_timer_start(&l->timer, listen__on_timer, delay, 0);
}

/* The connection is gone or never came: drop it, tell the user, retry. */
static void listen__break(pg_listen_t *l, const char *why) {
  char msg[256] = "";
  if (why == NULL && l->pq != NULL)
    why = PQerrorMessage(l->pq);
  snprintf(msg, sizeof(msg), "%s", why != NULL ? why : "");
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
    msg[--n] = '\0';
  uv_timer_stop(&l->timer);
  listen__drop(l);
  l->state = PG_LISTEN_WAITING;
  listen__schedule_retry(l);
  if (l->cbs.on_down != NULL)
    l->cbs.on_down(l->data, msg);
}

/* ---- connecting ------------------------------------------------------------- */

static void listen__notice(void *arg, const char *message) {
  (void)arg;
  (void)message; /* modules do not print */
}

/* PQconnectStartParams, with the resolved host, hostaddr and port (NULL:
 * the connection string's own) after the string, which they override. */
static void listen__start(pg_listen_t *l, const char *host, const char *hostaddr, const char *port) {
  l->state = PG_LISTEN_CONNECTING;
  l->pq = pg_resolve_connect(l->conninfo, NULL, l->application_name, host, hostaddr, port);
  if (l->pq == NULL) {
    listen__break(l, "out of memory");
    return;
  }
  if (PQstatus(l->pq) == CONNECTION_BAD) {
    listen__break(l, NULL);
    return;
  }
  PQsetNoticeProcessor(l->pq, listen__notice, NULL);
  if (listen__watch(l, UV_WRITABLE) < 0) {
    listen__break(l, "cannot poll the connection socket");
    return;
  }
  if (l->cfg.connect_timeout_ms > 0)
    uv_timer_start(&l->timer, listen__on_timer, l->cfg.connect_timeout_ms, 0);
}

static void listen__on_resolved(void *data, int status, const char *host, const char *hostaddr,
                                const char *port, const char *err) {
  pg_listen_t *l = data;
  l->dns = NULL;
  uv_timer_stop(&l->timer);
  if (status < 0) {
    listen__break(l, err);
    return;
  }
  listen__start(l, host, hostaddr, port);
}

static void listen__connect(pg_listen_t *l) {
  if (l->dns_plan == NULL) {
    listen__start(l, NULL, NULL, NULL);
    return;
  }
  /* A host name: resolve it on the threadpool first (the connect timeout
   * covers the lookup too). */
  l->state = PG_LISTEN_CONNECTING;
  l->dns = pg_resolve_start(l->loop, l->dns_plan, listen__on_resolved, l);
  if (l->dns == NULL) {
    listen__break(l, "cannot start resolving the database host name");
    return;
  }
  if (l->cfg.connect_timeout_ms > 0)
    uv_timer_start(&l->timer, listen__on_timer, l->cfg.connect_timeout_ms, 0);
}

/* Connected: send SET synchronous_commit TO off (the session's NOTIFY
 * transactions need not wait for a WAL flush) and LISTEN. */
static void listen__subscribe(pg_listen_t *l) {
  uv_timer_stop(&l->timer);
  if (PQsetnonblocking(l->pq, 1) != 0 || !PQsendQuery(l->pq, l->listen_sql)) {
    listen__break(l, NULL);
    return;
  }
  l->state = PG_LISTEN_SUBSCRIBING;
  l->listen_failed = false;
  int r = PQflush(l->pq);
  if (r < 0 || listen__watch(l, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE) < 0)
    listen__break(l, NULL);
}

static void listen__connect_step(pg_listen_t *l) {
  int events;
  switch (PQconnectPoll(l->pq)) {
  case PGRES_POLLING_OK:
    listen__subscribe(l);
    return;
  case PGRES_POLLING_FAILED:
    listen__break(l, NULL);
    return;
  case PGRES_POLLING_READING:
    events = UV_READABLE;
    break;
  default:
    events = UV_WRITABLE;
    break;
  }
  /* The socket may have changed (another host or address was tried). */
  if (listen__watch(l, events) < 0)
    listen__break(l, "cannot poll the connection socket");
}

/* ---- reading ------------------------------------------------------------------ */

/* Send one NOTIFY (LISTENING, none in flight). Returns false when it could
 * not be sent; the connection is then broken and the timer (idle while
 * LISTENING) breaks it from the loop, so no callback runs in the caller. */
static bool listen__send_notify(pg_listen_t *l) {
  l->notify_pending = false;
  if (!PQsendQuery(l->pq, l->notify_sql))
    goto broken;
  l->notify_in_flight = true;
  int r = PQflush(l->pq);
  if (r < 0 || listen__watch(l, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE) < 0)
    goto broken;
  return true;

broken:
  uv_timer_start(&l->timer, listen__on_timer, 0, 0);
  return false;
}

/* Read what arrived: results (SET and LISTEN's while SUBSCRIBING, a
 * NOTIFY's while LISTENING), then notifications. */
static void listen__read(pg_listen_t *l, int events) {
  if (events & UV_WRITABLE) {
    int r = PQflush(l->pq);
    if (r < 0) {
      listen__break(l, NULL);
      return;
    }
    if (listen__watch(l, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE) < 0) {
      listen__break(l, "cannot poll the connection socket");
      return;
    }
  }
  if (!(events & UV_READABLE))
    return;
  if (!PQconsumeInput(l->pq)) {
    listen__break(l, NULL);
    return;
  }
  while (!PQisBusy(l->pq)) {
    PGresult *res = PQgetResult(l->pq);
    if (res == NULL) {
      if (l->state == PG_LISTEN_SUBSCRIBING) {
        if (l->listen_failed) {
          listen__break(l, "LISTEN failed");
          return;
        }
        bool again = l->listened_once;
        if (again)
          l->reconnects++;
        l->listened_once = true;
        l->state = PG_LISTEN_LISTENING;
        l->backoff_ms = l->cfg.backoff_min_ms;
        if (l->cbs.on_ready != NULL)
          l->cbs.on_ready(l->data, again);
        if (l->state != PG_LISTEN_LISTENING)
          return; /* closed from the callback */
      } else if (l->notify_in_flight) {
        l->notify_in_flight = false; /* the NOTIFY's transaction is over */
      }
      break;
    }
    /* While LISTENING only a NOTIFY's result comes; an error there is
     * ignored (the next one may work, and the user's own catch-up fetches
     * are the safety net). */
    if (l->state == PG_LISTEN_SUBSCRIBING && PQresultStatus(res) != PGRES_COMMAND_OK)
      l->listen_failed = true;
    PQclear(res);
  }
  PGnotify *n;
  while (l->state == PG_LISTEN_LISTENING && (n = PQnotifies(l->pq)) != NULL) {
    if (strcmp(n->relname, l->channel) == 0 && l->cbs.on_notify != NULL)
      l->cbs.on_notify(l->data, n->extra);
    PQfreemem(n);
  }
  if (l->state == PG_LISTEN_LISTENING && PQstatus(l->pq) == CONNECTION_BAD) {
    listen__break(l, NULL);
    return;
  }
  if (l->state == PG_LISTEN_LISTENING && l->notify_pending && !l->notify_in_flight)
    listen__send_notify(l);
}

/* ---- the dispatcher ---------------------------------------------------------- */

static void listen__on_event(pg_listen_t *l, int status, int events) {
  switch (l->state) {
  case PG_LISTEN_CONNECTING:
    if (status < 0)
      listen__break(l, "socket error while connecting");
    else
      listen__connect_step(l);
    break;
  case PG_LISTEN_SUBSCRIBING:
  case PG_LISTEN_LISTENING:
    if (status < 0)
      listen__break(l, "socket error");
    else
      listen__read(l, events);
    break;
  case PG_LISTEN_WAITING:
  case PG_LISTEN_CLOSED:
    break;
  }
}

static void listen__on_poll(uv_poll_t *poll, int status, int events) {
  pg_listen_t *l = poll->data;
  if (poll != l->poll)
    return; /* a replaced handle, still closing */
  listen__on_event(l, status, events);
}

static void listen__on_timer(uv_timer_t *timer) {
  pg_listen_t *l = container_of(timer, pg_listen_t, timer);
  if (l->state == PG_LISTEN_CONNECTING)
    listen__break(l, "timed out connecting");
  else if (l->state == PG_LISTEN_WAITING)
    listen__connect(l);
  else if (l->state == PG_LISTEN_LISTENING)
    listen__break(l, "cannot send NOTIFY"); /* listen__send_notify() failed */
}

/* ---- public ------------------------------------------------------------------- */

static bool listen__identifier_ok(const char *s) {
  if (s == NULL || *s == '\0' || strlen(s) > 63)
    return false;
  if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
    return false;
  for (; *s != '\0'; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
      return false;
  return true;
}

static void listen__on_start(uv_timer_t *timer) {
  listen__connect(container_of(timer, pg_listen_t, timer));
}

int pg_listen_new(uv_loop_t *loop, const pg_listen_config_t *cfg, const pg_listen_cbs_t *cbs,
                  void *data, pg_listen_t **out) {
  if (loop == NULL || cfg == NULL || cfg->conninfo == NULL || cbs == NULL || out == NULL ||
      !listen__identifier_ok(cfg->channel))
    return -EINVAL;
  pg_listen_t *l = calloc(1, sizeof(*l));
  if (l == NULL)
    return -ENOMEM;
  l->loop = loop;
  l->cfg = *cfg;
  l->cbs = *cbs;
  l->data = data;
  l->poll_fd = -1;
  l->conninfo = strdup(cfg->conninfo);
  l->channel = strdup(cfg->channel);
  l->application_name = cfg->application_name != NULL ? strdup(cfg->application_name) : NULL;
  size_t sql_len = strlen(cfg->channel) + 48;
  l->listen_sql = malloc(sql_len);
  l->notify_sql = malloc(sql_len);
  if (l->conninfo == NULL || l->channel == NULL || l->listen_sql == NULL || l->notify_sql == NULL ||
      (cfg->application_name != NULL && l->application_name == NULL)) {
    free(l->conninfo);
    free(l->channel);
    free(l->application_name);
    free(l->listen_sql);
    free(l->notify_sql);
    free(l);
    return -ENOMEM;
  }
  snprintf(l->listen_sql, sql_len, "SET synchronous_commit TO off; LISTEN %s", cfg->channel);
  snprintf(l->notify_sql, sql_len, "NOTIFY %s", cfg->channel);
  int rc = pg_resolve_plan_new(l->conninfo, &l->dns_plan);
  if (rc != 0) {
    free(l->conninfo);
    free(l->channel);
    free(l->application_name);
    free(l->listen_sql);
    free(l->notify_sql);
    free(l);
    return rc;
  }
  l->cfg.conninfo = l->conninfo;
  l->cfg.channel = l->channel;
  l->cfg.application_name = l->application_name;
  if (l->cfg.backoff_min_ms == 0)
    l->cfg.backoff_min_ms = 100;
  if (l->cfg.backoff_max_ms < l->cfg.backoff_min_ms)
    l->cfg.backoff_max_ms = l->cfg.backoff_min_ms;
  l->backoff_ms = l->cfg.backoff_min_ms;
  l->rng = uv_hrtime() | 1;
  uv_timer_init(loop, &l->timer); /* cannot fail on unix */
  l->handles_open = 1;
  l->state = PG_LISTEN_WAITING;
  /* Connect from the loop, so no callback runs inside this call. */
  uv_timer_start(&l->timer, listen__on_start, 0, 0);
  *out = l;
  return 0;
}

bool pg_listen_ready(const pg_listen_t *l) {
  return l->state == PG_LISTEN_LISTENING;
}

bool pg_listen_notify(pg_listen_t *l) {
  if (l->state != PG_LISTEN_LISTENING)
    return false;
  if (l->notify_in_flight) {
    l->notify_pending = true; /* sent when the one in flight completes */
    return true;
  }
  return listen__send_notify(l);
}

uint64_t pg_listen_reconnects(const pg_listen_t *l) {
  return l->reconnects;
}

void pg_listen_reconnect(pg_listen_t *l) {
  if (l->state == PG_LISTEN_CLOSED)
    return;
  uv_timer_stop(&l->timer);
  listen__drop(l);
  l->state = PG_LISTEN_WAITING;
  l->backoff_ms = l->cfg.backoff_min_ms;
  uv_timer_start(&l->timer, listen__on_start, 0, 0);
}

void pg_listen_close(pg_listen_t *l, void (*cb)(void *data), void *data) {
  if (l->state == PG_LISTEN_CLOSED)
    return;
  l->state = PG_LISTEN_CLOSED;
  l->closed_cb = cb;
  l->closed_data = data;
  uv_timer_stop(&l->timer);
  listen__drop(l);
  uv_close((uv_handle_t *)&l->timer, listen__timer_closed);
}
