/* events: the live event streams and their LISTEN connection (events.h).
 *
 * A stream (events__stream_t, malloc'd) lives from events_stream_start()
 * until its HTTP request is ended AND no fetch of it is in flight, so a
 * late pool callback never touches freed memory. The hub frees itself once
 * it is closing, its handles are closed, the LISTEN connection is closed and
 * no fetch is in flight.
 */
#include "app/events.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/internal.h"
#include "db/pg_listen.h"
#include "util/log.h"

#define EVENTS__BATCH 200          /* events scanned per fetch */
#define EVENTS__HOLD_RETRY_MS 250  /* a stream held at a gap asks again */
#define EVENTS__RETRY_MS 1000      /* after a database error */

typedef struct events__stream_s events__stream_t;

struct events__stream_s {
  events__stream_t *prev, *next;  /* hub->streams while the request is held */
  events_t *hub;
  http_request_t *req;            /* NULL once ended */
  char *ctx;                      /* the fetch's $1: credential hash, passive */
  const pg_stmt_t *fetch;         /* borrowed (static, api/events.c) */
  long long after;                /* the last event handed out (kip.events_after's cursor) */
  uint64_t checked_at;            /* loop time of the last fetch that answered */
  bool dirty;                     /* there may be events after `after` */
  bool fetching;
};

struct events_s {
  uv_loop_t *loop;
  pg_pool_t *pool;
  events_config_t cfg;
  char *conninfo;
  pg_listen_t *listen;
  uv_timer_t kick;                /* runs the fetches of dirty streams */
  uv_timer_t heartbeat;
  unsigned handles_open;
  events__stream_t *streams;
  unsigned n_streams;
  unsigned fetching;              /* fetches in flight */
  bool listening;
  bool closing;
  bool listen_closed;
  void (*closed_cb)(void *data);
  void *closed_data;
};

static void events__kick(events_t *hub, uint64_t delay_ms);
static void events__end(events__stream_t *st);

/* ---- lifetime ------------------------------------------------------------ */

static void events__maybe_free(events_t *hub) {
  if (!hub->closing || hub->handles_open > 0 || !hub->listen_closed || hub->fetching > 0)
    return;
  void (*cb)(void *) = hub->closed_cb;
  void *data = hub->closed_data;
  free(hub->conninfo);
  free(hub);
  if (cb != NULL)
    cb(data);
}

static void events__stream_maybe_free(events__stream_t *st) {
  if (st->req != NULL || st->fetching)
    return;
  free(st->ctx);
  free(st);
}

static void events__unlink(events__stream_t *st) {
  events_t *hub = st->hub;
  if (st->prev != NULL)
    st->prev->next = st->next;
  else if (hub->streams == st)
    hub->streams = st->next;
  if (st->next != NULL)
    st->next->prev = st->prev;
  st->prev = st->next = NULL;
  hub->n_streams--;
}

/* End the stream's request; the stream is freed once no fetch holds it. */
static void events__end(events__stream_t *st) {
  if (st->req == NULL)
    return;
  http_request_t *req = st->req;
  st->req = NULL;
  events__unlink(st);
  http_stream_end(req);
  events__stream_maybe_free(st);
}

/* Returns false when the stream has ended (st may then be freed: do not
 * touch it again). */
static bool events__write(events__stream_t *st, const char *bytes, size_t len) {
  if (st->req == NULL)
    return false;
  if (http_stream_write(st->req, bytes, len) != 0) {
    events__end(st);
    return false;
  }
  return true;
}

/* ---- fetching ------------------------------------------------------------------ */

/* The SSE messages of a fetch's events, in one buffer. */
static char *events__render(json_t *events, size_t *out_len) {
  size_t cap = 256, len = 0;
  char *buf = malloc(cap);
  if (buf == NULL)
    return NULL;
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev) {
    const char *id = json_string_value(json_object_get(ev, "id"));
    const char *type = json_string_value(json_object_get(ev, "type"));
    char *data = json_dumps(ev, JSON_COMPACT);
    if (id == NULL || type == NULL || data == NULL) {
      free(data);
      continue;
    }
    /* Ids are digits and types [a-z._]: no line breaks; JSON_COMPACT has none. */
    size_t need = strlen(id) + strlen(type) + strlen(data) + 32;
    if (len + need > cap) {
      while (len + need > cap)
        cap *= 2;
      char *nb = realloc(buf, cap);
      if (nb == NULL) {
        free(data);
        free(buf);
        return NULL;
      }
      buf = nb;
    }
    len += (size_t)snprintf(buf + len, cap - len, "id: %s\nevent: %s\ndata: %s\n\n", id, type, data);
    free(data);
  }
  *out_len = len;
  return buf;
}

static void events__on_fetched(void *data, int err, PGresult *res) {
  events__stream_t *st = data;
  events_t *hub = st->hub;
  st->fetching = false;
  hub->fetching--;
  if (st->req == NULL || hub->closing) {
    events__stream_maybe_free(st);
    events__maybe_free(hub);
    return;
  }
  if (err == -EIO && res != NULL) {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state != NULL && (strcmp(state, "KP401") == 0 || strcmp(state, "KP403") == 0)) {
      /* The token was revoked, the session ended: the stream ends too. */
      events__end(st);
      return;
    }
  }
  if (err != 0 || PQntuples(res) != 1) {
    if (err != -ECANCELED)
      log_emit(LOG_WARN, "event stream fetch failed; trying again",
               json_pack("{s:i, s:s?}", "error", err, "sqlstate",
                         res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL));
    st->dirty = true;
    events__kick(hub, EVENTS__RETRY_MS);
    return;
  }
  json_t *body = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
  json_t *events = json_object_get(body, "events");
  const char *next = json_string_value(json_object_get(body, "next"));
  if (!json_is_array(events) || next == NULL) {
    json_decref(body);
    st->dirty = true;
    events__kick(hub, EVENTS__RETRY_MS);
    return;
  }
  st->after = strtoll(next, NULL, 10);
  st->checked_at = uv_now(hub->loop);
  bool hold = json_is_true(json_object_get(body, "hold"));
  bool more = json_is_true(json_object_get(body, "more"));
  bool open = true;
  if (json_array_size(events) > 0) {
    size_t len = 0;
    char *text = events__render(events, &len);
    if (text == NULL) {
      events__end(st);
      open = false;
    } else {
      open = events__write(st, text, len);
      free(text);
    }
  }
  json_decref(body);
  if (!open)
    return; /* ended (and freed): a failed write */
  if (hold) {
    st->dirty = true;
    events__kick(hub, EVENTS__HOLD_RETRY_MS);
  } else if (more || st->dirty) {
    /* More at once, or a notification came while this fetch ran. */
    st->dirty = true;
    events__kick(hub, 0);
  }
}

static void events__fetch(events__stream_t *st) {
  events_t *hub = st->hub;
  char after[24];
  char limit[16];
  snprintf(after, sizeof(after), "%lld", st->after);
  snprintf(limit, sizeof(limit), "%d", EVENTS__BATCH);
  const char *params[3] = {st->ctx, after, limit};
  st->dirty = false;
  if (pg_pool_exec(hub->pool, st->fetch, params, events__on_fetched, st) != 0) {
    st->dirty = true;
    events__kick(hub, EVENTS__RETRY_MS);
    return;
  }
  st->fetching = true;
  hub->fetching++;
}

static void events__on_kick(uv_timer_t *t) {
  events_t *hub = container_of(t, events_t, kick);
  for (events__stream_t *st = hub->streams; st != NULL; st = st->next)
    if (st->dirty && !st->fetching)
      events__fetch(st);
}

/* Run the dirty streams' fetches after delay_ms (sooner if already due). */
static void events__kick(events_t *hub, uint64_t delay_ms) {
  if (hub->closing)
    return;
  if (uv_is_active((uv_handle_t *)&hub->kick) && uv_timer_get_due_in(&hub->kick) <= delay_ms)
    return;
  uv_timer_start(&hub->kick, events__on_kick, delay_ms, 0);
}

/* ---- the LISTEN connection -------------------------------------------------------- */

static void events__on_ready(void *data, bool reconnected) {
  events_t *hub = data;
  hub->listening = true;
  if (reconnected)
    log_emit(LOG_INFO, "event stream listener reconnected; streams catch up from the outbox",
             json_pack("{s:i}", "streams", (int)hub->n_streams));
  /* Notifications may have been missed while it was down (or before it
   * first listened): every stream reads the outbox from its position. */
  for (events__stream_t *st = hub->streams; st != NULL; st = st->next)
    st->dirty = true;
  events__kick(hub, 0);
}

/* Every stream looks: the outbox hands events out in the order of their
 * transactions (kip.events_after), so an event with a lower id than a
 * stream's position can still be new to it. One fetch per stream at a
 * time; a change during a fetch asks for one more after it. */
static void events__mark_all(events_t *hub) {
  bool any = false;
  for (events__stream_t *st = hub->streams; st != NULL; st = st->next) {
    st->dirty = true;
    any = true;
  }
  if (any)
    events__kick(hub, 0);
}

/* A NOTIFY kip_events: some kipd committed a change that may have written
 * events. The payload (empty from kipd's own NOTIFY) is not read. */
static void events__on_notify(void *data, const char *payload) {
  (void)payload;
  events__mark_all(data);
}

static void events__on_down(void *data, const char *why) {
  events_t *hub = data;
  if (hub->listening)
    log_emit(LOG_WARN, "event stream listener lost its connection; reconnecting",
             json_pack("{s:s}", "reason", why != NULL ? why : ""));
  hub->listening = false;
}

static void events__on_listen_closed(void *data) {
  events_t *hub = data;
  hub->listen_closed = true;
  events__maybe_free(hub);
}

/* ---- heartbeat -------------------------------------------------------------------- */

static void events__on_heartbeat(uv_timer_t *t) {
  events_t *hub = container_of(t, events_t, heartbeat);
  static const char beat[] = ": heartbeat\n\n";
  events__stream_t *st = hub->streams;
  while (st != NULL) {
    events__stream_t *next = st->next; /* a failed write unlinks and frees st */
    if (!events__write(st, beat, sizeof(beat) - 1)) {
      st = next;
      continue;
    }
    /* And, every second heartbeat of the stream, a fetch: it checks the
     * credential again (a revoked token ends the stream even when no event
     * comes) and catches up on a notification lost anyway. Per stream, from
     * its own last fetch, so the checks of many streams spread out. */
    if (uv_now(hub->loop) - st->checked_at >= hub->cfg.heartbeat_ms * 3 / 2)
      st->dirty = true;
    st = next;
  }
  events__kick(hub, 0);
}

/* ---- streams ------------------------------------------------------------------------ */

static void events__on_http(http_request_t *req, http_stream_event_t ev, void *data) {
  (void)req;
  (void)ev; /* closed or shutting down: either way the stream ends */
  events__end(data);
}

/* The fetch context: the stream's credential and "passive". New text. */
static char *events__ctx(kreq_t *r) {
  json_t *ctx = json_object();
  if (r->token_hash[0])
    json_object_set_new(ctx, "token_hash", json_string(r->token_hash));
  else
    json_object_set_new(ctx, "session_hash", json_string(r->session_hash));
  json_object_set_new(ctx, "passive", json_true());
  json_object_set_new(ctx, "request_id", json_string(r->http->request_id));
  json_object_set_new(ctx, "remote_addr", json_string(r->client_addr));
  char *text = json_dumps(ctx, JSON_COMPACT);
  json_decref(ctx);
  return text;
}

void events_stream_start(kreq_t *r, const char *after, const pg_stmt_t *fetch) {
  events_t *hub = r->app->events;
  char *end = NULL;
  long long pos = after != NULL ? strtoll(after, &end, 10) : -1;
  if (hub == NULL || hub->closing || pos < 0 || end == after || *end != '\0') {
    kreq_problem(r, 503, "the event stream is not available; try again", NULL, NULL);
    return;
  }
  static const http_header_t headers[] = {
    {"Content-Type", "text/event-stream; charset=utf-8"},
    {"Cache-Control", "no-store"},
    {"X-Accel-Buffering", "no"},
  };
  if (strcmp(r->http->method, "HEAD") == 0) {
    /* The head a GET would get, and no stream to hold open. */
    kreq_reply_raw(r, 200, NULL, "", 0, headers, KIPD_ARRAY_SIZE(headers));
    return;
  }
  events__stream_t *st = calloc(1, sizeof(*st));
  char *ctx = st != NULL ? events__ctx(r) : NULL;
  if (ctx == NULL) {
    free(st);
    kreq_problem(r, 503, "out of memory", NULL, NULL);
    return;
  }
  st->hub = hub;
  st->ctx = ctx;
  st->fetch = fetch;
  st->after = pos;
  st->checked_at = uv_now(hub->loop);
  st->req = r->http;
  kreq_reply__release(r);
  /* Linked first: the stream is ended through events__end() from here on. */
  st->next = hub->streams;
  if (hub->streams != NULL)
    hub->streams->prev = st;
  hub->streams = st;
  hub->n_streams++;
  if (http_stream_begin(st->req, 200, headers, KIPD_ARRAY_SIZE(headers), events__on_http, st) != 0) {
    events__end(st);
    return;
  }
  /* The client learns at once that the stream is open (and a proxy sends
   * the head on), and how long to wait before it reconnects. */
  static const char hello[] = ": kipd events\nretry: 3000\n\n";
  if (!events__write(st, hello, sizeof(hello) - 1))
    return;
  /* Events committed between the open and now, or after Last-Event-ID. */
  st->dirty = true;
  events__kick(hub, 0);
}

/* ---- the hub ------------------------------------------------------------------------- */

void events_changed(events_t *hub) {
  if (hub == NULL || hub->closing)
    return;
  /* Listening: one NOTIFY on the LISTEN connection tells every kipd on the
   * database, this one too (its own LISTEN receives it). Otherwise no
   * other kipd can be told, but this one's streams look at once. */
  if (!pg_listen_notify(hub->listen))
    events__mark_all(hub);
}

void events_attach(events_t *events, app_t *app) {
  app->events = events;
}

unsigned events_streams(const events_t *events) {
  return events->n_streams;
}

bool events_listening(const events_t *events) {
  return events->listening;
}

uint64_t events_reconnects(const events_t *events) {
  return events->closing ? 0 : pg_listen_reconnects(events->listen);
}

static void events__timer_closed(uv_handle_t *h) {
  events_t *hub = h->data;
  hub->handles_open--;
  events__maybe_free(hub);
}

int events_new(uv_loop_t *loop, pg_pool_t *pool, const events_config_t *cfg, events_t **out) {
  events_t *hub = calloc(1, sizeof(*hub));
  if (hub == NULL)
    return -ENOMEM;
  hub->loop = loop;
  hub->pool = pool;
  hub->cfg = *cfg;
  hub->conninfo = strdup(cfg->conninfo);
  if (hub->conninfo == NULL) {
    free(hub);
    return -ENOMEM;
  }
  hub->cfg.conninfo = hub->conninfo;
  uv_timer_init(loop, &hub->kick);
  uv_timer_init(loop, &hub->heartbeat);
  hub->kick.data = hub;
  hub->heartbeat.data = hub;
  hub->handles_open = 2;
  pg_listen_config_t lc = {
    .conninfo = hub->conninfo,
    .channel = "kip_events",
    .application_name = "kipd-events",
    .connect_timeout_ms = cfg->connect_timeout_ms,
    .backoff_min_ms = cfg->backoff_min_ms,
    .backoff_max_ms = cfg->backoff_max_ms,
  };
  static const pg_listen_cbs_t cbs = {events__on_ready, events__on_notify, events__on_down};
  int rc = pg_listen_new(loop, &lc, &cbs, hub, &hub->listen);
  if (rc != 0)
    goto fail_timers;
  if (cfg->heartbeat_ms > 0)
    uv_timer_start(&hub->heartbeat, events__on_heartbeat, cfg->heartbeat_ms, cfg->heartbeat_ms);
  *out = hub;
  return 0;

fail_timers:
  hub->closing = true;
  hub->listen_closed = true;
  uv_close((uv_handle_t *)&hub->kick, events__timer_closed);
  uv_close((uv_handle_t *)&hub->heartbeat, events__timer_closed);
  return rc;
}

void events_close(events_t *hub, void (*cb)(void *data), void *data) {
  if (hub->closing)
    return;
  while (hub->streams != NULL)
    events__end(hub->streams);
  hub->closing = true;
  hub->closed_cb = cb;
  hub->closed_data = data;
  uv_close((uv_handle_t *)&hub->kick, events__timer_closed);
  uv_close((uv_handle_t *)&hub->heartbeat, events__timer_closed);
  pg_listen_close(hub->listen, events__on_listen_closed, hub);
}
