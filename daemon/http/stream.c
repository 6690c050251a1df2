/* http/stream: streamed responses (server.h, "Streamed responses").
 *
 * A dispatched request becomes a stream with http_stream_begin(): the
 * connection goes to HTTP_CONN_STREAMING, where no read or keep-alive
 * deadline runs. Each http_stream_write() is one uv_write of a copy; the
 * write deadline is armed while any of them waits and stopped when all are
 * out. The handler keeps the request (c->dispatched) until
 * http_stream_end(); a connection closed before that is freed only then,
 * exactly as a dropped http_respond().
 */
#include "http/internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct http__stream_write_s {
  uv_write_t req;
  http_conn_t *conn;
  size_t len;
  char bytes[];
} http__stream_write_t;

static void http__stream_notify(http_conn_t *c, http_stream_event_t ev) {
  if (c->stream_in_call || c->stream_cb == NULL || !c->dispatched || c->req == NULL)
    return;
  if (ev == HTTP_STREAM_CLOSED) {
    if (c->stream_notified_close)
      return;
    c->stream_notified_close = true;
  }
  c->stream_cb(c->req, ev, c->stream_data);
}

void http__stream_closed(http_conn_t *c) {
  http__stream_notify(c, HTTP_STREAM_CLOSED);
}

void http__stream_on_event(http_conn_t *c, http_conn_event_t ev) {
  switch (ev) {
  case HTTP_CONN_EV_DATA:
    http__conn_hold(c); /* discarded (the read buffer is the server's sink) */
    break;
  case HTTP_CONN_EV_EOF:      /* the client left (or half-closed: an SSE client never does) */
  case HTTP_CONN_EV_TIMEOUT:  /* written bytes did not drain in time */
  case HTTP_CONN_EV_WRITE_FAILED:
  case HTTP_CONN_EV_KILL:
    http__conn_close(c);
    break;
  case HTTP_CONN_EV_SHUTDOWN:
    http__stream_notify(c, HTTP_STREAM_SHUTDOWN);
    break;
  default:
    break;
  }
}

static void http__stream_on_write(uv_write_t *wr, int status) {
  http__stream_write_t *w = container_of(wr, http__stream_write_t, req);
  http_conn_t *c = w->conn;
  c->stream_pending -= w->len;
  free(w);
  if (c->state != HTTP_CONN_STREAMING)
    return; /* closing, or lingering after the end: the close or FIN follows */
  if (status != 0) {
    http__stream_on_event(c, HTTP_CONN_EV_WRITE_FAILED);
    return;
  }
  if (c->stream_pending == 0)
    http__conn_arm(c, 0);
}

/* Queue one write. Returns 0, -EPIPE, -ENOBUFS or -ENOMEM (closed then). */
static int http__stream_send(http_conn_t *c, const char *bytes, size_t len) {
  if (c->state != HTTP_CONN_STREAMING || c->gone)
    return -EPIPE;
  if (len == 0)
    return 0;
  if (c->stream_pending + len > HTTP__STREAM_MAX_PENDING) {
    http__conn_close(c);
    return -ENOBUFS;
  }
  http__stream_write_t *w = malloc(sizeof(*w) + len);
  if (w == NULL) {
    http__conn_close(c);
    return -ENOMEM;
  }
  w->conn = c;
  w->len = len;
  memcpy(w->bytes, bytes, len);
  uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, http__stream_on_write) != 0) {
    free(w);
    http__conn_close(c);
    return -EPIPE;
  }
  if (c->stream_pending == 0 && c->server != NULL)
    http__conn_arm(c, c->server->limits.write_timeout_ms);
  c->stream_pending += len;
  return 0;
}

int http_stream_begin(http_request_t *req, int status, const http_header_t *headers,
                      size_t n_headers, http_stream_cb cb, void *data) {
  http_conn_t *c = req->conn;
  if (c == NULL || c->req != req || !c->dispatched || c->streaming)
    return -EINVAL;
  http_server_t *s = c->server;
  c->streaming = true;
  c->stream_cb = cb;
  c->stream_data = data;
  c->status = status;
  if (s != NULL) {
    s->stats.requests_in_flight--;
    s->streams_open++;
  }
  if (c->gone || s == NULL)
    return -EPIPE;
  bool head_only = req->method != NULL && strcmp(req->method, "HEAD") == 0;
  char *head = NULL;
  size_t head_len = 0;
  c->resp_close = true;
  if (http__response_build(s, req, status, headers, n_headers, NULL, HTTP__STREAM_LENGTH, head_only,
                           true, &head, &head_len) != 0) {
    c->stream_in_call = true;
    http__conn_close(c);
    c->stream_in_call = false;
    return -ENOMEM;
  }
  c->state = HTTP_CONN_STREAMING;
  http__conn_arm(c, 0);
  http__conn_hold(c);
  c->stream_in_call = true;
  int rc = http__stream_send(c, head, head_len);
  c->stream_in_call = false;
  free(head);
  return rc;
}

int http_stream_write(http_request_t *req, const char *bytes, size_t len) {
  http_conn_t *c = req->conn;
  if (c == NULL || c->req != req || !c->streaming)
    return -EINVAL;
  if (req->method != NULL && strcmp(req->method, "HEAD") == 0)
    return 0;
  c->stream_in_call = true;
  int rc = http__stream_send(c, bytes, len);
  c->stream_in_call = false;
  return rc;
}

void http_stream_end(http_request_t *req) {
  http_conn_t *c = req->conn;
  if (c == NULL || c->req != req || !c->streaming || !c->dispatched)
    return;
  http_server_t *s = c->server;
  c->dispatched = false;
  c->stream_cb = NULL;
  if (s != NULL && s->streams_open > 0)
    s->streams_open--;
  http__conn_response_done(c); /* the access callback; the request is freed */
  if (c->state == HTTP_CONN_CLOSING) {
    /* Closed while the handler held it: free it once its handles are. */
    if (c->handles_open == 0) {
      if (s != NULL)
        http__server_defer_free(s, c);
      else
        http__conn_free(c);
    }
    return;
  }
  /* Let the written bytes drain (uv_shutdown waits for them), then FIN. */
  http__conn_linger(c);
}

unsigned http_server_streams_open(const http_server_t *server) {
  return server->streams_open;
}
