/* http/conn: one HTTP/1.1 connection.
 *
 * States (http_conn_state_t), one dispatcher http_conn__on_event():
 *
 *   READING --complete--> DISPATCHED --http_respond--> WRITING --+--> KEEPALIVE --byte--> READING
 *      |                      |                                  |
 *      +--limit/parse error---+--> (problem response) WRITING    +--> LINGERING --> CLOSING
 *
 * One request at a time: when llhttp completes a message, on_message_complete
 * pauses the parser; the bytes after it stay in inbuf until the response is
 * written. While a request is dispatched or its response is written the
 * socket is still read into the free part of inbuf (never parsed) so that a
 * disconnect is seen; reading stops when inbuf is full.
 *
 * Memory: the connection owns inbuf, the head scratch and the response
 * bytes; each request owns its arena. The connection frees itself in the
 * close callback of its last handle, unless the handler still holds the
 * request: then http_respond() drops the response and queues the free on
 * the server's reaper, so nothing is freed inside its own callback.
 */
#include "http/internal.h"
#include "http/strict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum http_parse_result_e {
  HTTP_PARSE_NEED_MORE,
  HTTP_PARSE_COMPLETE,
  HTTP_PARSE_FAILED,
} http_parse_result_t;

static void http_conn__on_event(http_conn_t *c, http_conn_event_t ev);
static void http_conn__close(http_conn_t *c);

/* ---- llhttp callbacks --------------------------------------------------- */

static int http_conn__scratch_append(http_conn_t *c, const char *at, size_t len) {
  size_t max = c->server->limits.max_header_bytes;
  if (c->scratch_len + len > max) {
    c->fail_status = 431;
    return -1;
  }
  if (c->scratch_len + len > c->scratch_cap) {
    size_t cap = c->scratch_cap ? c->scratch_cap : 1024;
    while (cap < c->scratch_len + len)
      cap *= 2;
    if (cap > max)
      cap = max;
    char *p = realloc(c->scratch, cap);
    if (p == NULL) {
      c->fail_status = 503;
      c->fail_detail = "Out of memory.";
      return -1;
    }
    c->scratch = p;
    c->scratch_cap = cap;
  }
  memcpy(c->scratch + c->scratch_len, at, len);
  c->scratch_len += len;
  return 0;
}

/* Trailers of a chunked body are skipped but limited like headers. */
static int http_conn__trailer(http_conn_t *c, size_t len) {
  c->trailer_bytes += len;
  if (c->trailer_bytes > c->server->limits.max_header_bytes) {
    c->fail_status = 431;
    return -1;
  }
  return 0;
}

static int http_conn__on_message_begin(llhttp_t *p) {
  http_conn_t *c = container_of(p, http_conn_t, parser);
  if (c->req == NULL) {
    c->req = http__request_new(c->remote_addr);
    if (c->req == NULL) {
      c->fail_status = 503;
      c->fail_detail = "Out of memory.";
      return -1;
    }
  }
  c->req_started = true;
  c->scratch_len = 0;
  c->url_len = 0;
  c->n_spans = 0;
  c->hstate = 0;
  c->headers_done = false;
  c->trailer_bytes = 0;
  c->body_cap = 0;
  return 0;
}

static int http_conn__on_url(llhttp_t *p, const char *at, size_t len) {
  http_conn_t *c = container_of(p, http_conn_t, parser);
  if (http_conn__scratch_append(c, at, len) != 0)
    return HPE_USER;
  c->url_len += len;
  return 0;
}

static int http_conn__on_header_field(llhttp_t *p, const char *at, size_t len) {
  http_conn_t *c = container_of(p, http_conn_t, parser);
  if (c->headers_done)
    return http_conn__trailer(c, len) ? HPE_USER : 0;
  if (c->hstate != 1) {
    if (c->n_spans == c->spans_cap) {
      size_t cap = c->spans_cap ? c->spans_cap * 2 : 16;
      http__hdr_span_t *n = realloc(c->spans, cap * sizeof(*n));
      if (n == NULL) {
        c->fail_status = 503;
        c->fail_detail = "Out of memory.";
        return HPE_USER;
      }
      c->spans = n;
      c->spans_cap = cap;
    }
    http__hdr_span_t *sp = &c->spans[c->n_spans++];
    sp->name_off = c->scratch_len;
    sp->name_len = 0;
    sp->value_off = c->scratch_len;
    sp->value_len = 0;
    c->hstate = 1;
  }
  if (http_conn__scratch_append(c, at, len) != 0)
    return HPE_USER;
  c->spans[c->n_spans - 1].name_len += len;
  return 0;
}

static int http_conn__on_header_value(llhttp_t *p, const char *at, size_t len) {
  http_conn_t *c = container_of(p, http_conn_t, parser);
  if (c->headers_done)
    return http_conn__trailer(c, len) ? HPE_USER : 0;
  if (c->n_spans == 0)
    return 0;
  http__hdr_span_t *sp = &c->spans[c->n_spans - 1];
  if (c->hstate != 2) {
    sp->value_off = c->scratch_len;
    c->hstate = 2;
  }
  if (http_conn__scratch_append(c, at, len) != 0)
    return HPE_USER;
  sp->value_len += len;
  return 0;
}

static int http_conn__on_headers_complete(llhttp_t *p) {
  http_conn_t *c = container_of(p, http_conn_t, parser);
  c->headers_done = true;
  c->pause = HTTP__PAUSE_HEAD;
  return HPE_PAUSED;
}

static int http_conn__on_body(llhttp_t *p, const char *at, size_t len) {
  http_conn_t *c = container_of(p, http_conn_t, parser);
  http_request_t *req = c->req;
  if (req->body_len + len > c->server->limits.max_body_bytes) {
    c->fail_status = 413;
    return HPE_USER;
  }
  if (req->body_len + len + 1 > c->body_cap) {
    /* Chunked: grow by doubling inside the arena; the old copies are
     * released with it, so the waste is bounded by the final size. */
    size_t cap = c->body_cap ? c->body_cap * 2 : 1024;
    while (cap < req->body_len + len + 1)
      cap *= 2;
    char *nb = arena_alloc(&req->arena, cap);
    if (nb == NULL) {
      c->fail_status = 503;
      c->fail_detail = "Out of memory.";
      return HPE_USER;
    }
    if (req->body_len > 0)
      memcpy(nb, req->body, req->body_len);
    req->body = nb;
    c->body_cap = cap;
  }
  memcpy((char *)req->body + req->body_len, at, len);
  req->body_len += len;
  return 0;
}

static int http_conn__on_message_complete(llhttp_t *p) {
  http_conn_t *c = container_of(p, http_conn_t, parser);
  http_request_t *req = c->req;
  if (c->body_cap > 0)
    ((char *)req->body)[req->body_len] = '\0';
  req->start_ns = uv_hrtime();
  c->keep_alive = llhttp_should_keep_alive(p) && !llhttp_get_upgrade(p);
  c->pause = HTTP__PAUSE_MESSAGE;
  return HPE_PAUSED;
}

static const llhttp_settings_t http_conn__settings = {
  .on_message_begin = http_conn__on_message_begin,
  .on_url = http_conn__on_url,
  .on_header_field = http_conn__on_header_field,
  .on_header_value = http_conn__on_header_value,
  .on_headers_complete = http_conn__on_headers_complete,
  .on_body = http_conn__on_body,
  .on_message_complete = http_conn__on_message_complete,
};

/* ---- request head ---------------------------------------------------------- */

/* Split the request target into raw path and query, and decode the path.
 * Returns 0 or an HTTP status. */
static int http_conn__build_target(http_conn_t *c) {
  http_request_t *req = c->req;
  const char *url = c->scratch;
  size_t len = c->url_len;

  /* absolute-form (RFC 9112 3.2.2): drop scheme and authority. */
  if ((len >= 7 && strncasecmp(url, "http://", 7) == 0) ||
      (len >= 8 && strncasecmp(url, "https://", 8) == 0)) {
    size_t skip = url[4] == ':' ? 7 : 8;
    const char *slash = memchr(url + skip, '/', len - skip);
    if (slash == NULL) {
      url = "/";
      len = 1;
    } else {
      len -= (size_t)(slash - url);
      url = slash;
    }
  }
  if (len == 0 || (url[0] != '/' && !(len == 1 && url[0] == '*'))) {
    c->fail_detail = "The request target is not a path.";
    return 400;
  }
  size_t path_len = len;
  const char *q = memchr(url, '?', len);
  const char *hash = memchr(url, '#', len);
  if (hash != NULL && (q == NULL || hash < q))
    path_len = (size_t)(hash - url);
  else if (q != NULL)
    path_len = (size_t)(q - url);
  char *raw = arena_strndup(&req->arena, url, path_len);
  if (raw == NULL)
    return 503;
  req->raw_path = raw;
  if (q != NULL && (hash == NULL || q < hash)) {
    size_t qlen = (hash != NULL ? (size_t)(hash - q) : len - (size_t)(q - url)) - 1;
    req->query = arena_strndup(&req->arena, q + 1, qlen);
    if (req->query == NULL)
      return 503;
  }
  char *path = NULL;
  int r = http__decode_path(&req->arena, raw, path_len, &path);
  if (r == -ENOMEM)
    return 503;
  if (r != 0) {
    c->fail_detail = "The path has an invalid percent-encoding or an encoded NUL.";
    return 400;
  }
  req->path = path;
  return 0;
}

static void http_conn__ensure_request_id(http_request_t *req) {
  if (req->request_id[0] == '\0')
    http__uuid4(req->request_id);
}

static void http_conn__on_continue_written(uv_write_t *wr, int status) {
  http_conn_t *c = container_of(wr, http_conn_t, continue_req);
  c->continue_pending = false; /* a failed write shows up on the read side */
}

static void http_conn__send_continue(http_conn_t *c) {
  static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
  if (c->continue_pending)
    return;
  uv_buf_t buf = uv_buf_init((char *)line, sizeof(line) - 1);
  if (uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &buf, 1,
               http_conn__on_continue_written) == 0)
    c->continue_pending = true;
}

/* Headers are complete: build method, target, headers and request id in the
 * request's arena and check the limits that are known now. Returns 0 or an
 * HTTP status to fail with. */
static int http_conn__head_done(http_conn_t *c) {
  http_server_t *s = c->server;
  http_request_t *req = c->req;
  llhttp_t *p = &c->parser;

  if (c->head_bytes > s->limits.max_header_bytes)
    return 431;
  req->method = arena_strdup(&req->arena, llhttp_method_name(llhttp_get_method(p)));
  if (req->method == NULL)
    return 503;

  req->n_headers = c->n_spans;
  req->headers = arena_alloc(&req->arena, (c->n_spans ? c->n_spans : 1) * sizeof(http_header_t));
  if (req->headers == NULL)
    return 503;
  for (size_t i = 0; i < c->n_spans; i++) {
    const http__hdr_span_t *sp = &c->spans[i];
    char *name = arena_strndup(&req->arena, c->scratch + sp->name_off, sp->name_len);
    char *value = arena_strndup(&req->arena, c->scratch + sp->value_off, sp->value_len);
    if (name == NULL || value == NULL)
      return 503;
    for (char *q = name; *q != '\0'; q++)
      if (*q >= 'A' && *q <= 'Z')
        *q = (char)(*q - 'A' + 'a');
    req->headers[i].name = name;
    req->headers[i].value = value;
  }

  const char *rid = http_request_header(req, "x-request-id");
  if (rid != NULL && http__request_id_ok(rid))
    snprintf(req->request_id, sizeof(req->request_id), "%s", rid);
  else
    http__uuid4(req->request_id);

  /* RFC 9112: version, Host, token names, singleton headers (strict.h). */
  int strict = http_strict_head(llhttp_get_http_major(p), llhttp_get_http_minor(p),
                                req->headers, req->n_headers, &c->fail_detail, &c->fail_field);
  if (strict != 0)
    return strict;

  int status = http_conn__build_target(c);
  if (status != 0)
    return status;

  bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
  bool chunked = (p->flags & F_CHUNKED) != 0;
  if (has_length && p->content_length > s->limits.max_body_bytes)
    return 413;
  if (has_length && p->content_length > 0) {
    char *body = arena_alloc(&req->arena, (size_t)p->content_length + 1);
    if (body == NULL)
      return 503;
    body[0] = '\0';
    req->body = body;
    c->body_cap = (size_t)p->content_length + 1;
  }
  const char *expect = http_request_header(req, "expect");
  if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
      (chunked || (has_length && p->content_length > 0)) &&
      llhttp_get_http_major(p) == 1 && llhttp_get_http_minor(p) >= 1)
    http_conn__send_continue(c);
  return 0;
}

static http_parse_result_t http_conn__fail_fold(http_conn_t *c) {
  c->fail_status = 400;
  c->fail_detail = "obs-fold (a header line continued on the next line)";
  c->fail_field = "headers";
  return HTTP_PARSE_FAILED;
}

/* Feed inbuf[parse_off, in_len) to llhttp. */
static http_parse_result_t http_conn__parse(http_conn_t *c) {
  size_t max_head = c->server->limits.max_header_bytes;
  for (;;) {
    size_t n = c->in_len - c->parse_off;
    if (n == 0 && !c->resume_pending) {
      c->in_len = c->parse_off = 0;
      return HTTP_PARSE_NEED_MORE;
    }
    c->resume_pending = false;
    const char *start = c->inbuf != NULL ? c->inbuf + c->parse_off : "";
    c->pause = HTTP__PAUSE_NONE;
    llhttp_errno_t err = llhttp_execute(&c->parser, start, n);
    if (err == HPE_OK) {
      if (c->in_head) {
        if (http_strict_fold(&c->head_lf, start, n))
          return http_conn__fail_fold(c);
        c->head_bytes += n;
        if (c->head_bytes > max_head) {
          c->fail_status = 431;
          return HTTP_PARSE_FAILED;
        }
      }
      c->in_len = c->parse_off = 0;
      return HTTP_PARSE_NEED_MORE;
    }
    if (err == HPE_PAUSED && c->pause != HTTP__PAUSE_NONE) {
      /* llhttp 8 reports the position just past the byte that completed
       * the head or the message. */
      size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - start);
      c->parse_off += used;
      llhttp_resume(&c->parser);
      if (c->pause == HTTP__PAUSE_HEAD) {
        if (http_strict_fold(&c->head_lf, start, used))
          return http_conn__fail_fold(c);
        c->head_lf = false;
        c->head_bytes += used;
        c->in_head = false;
        int status = http_conn__head_done(c);
        if (status != 0) {
          c->fail_status = status;
          return HTTP_PARSE_FAILED;
        }
        /* A body-less message completes only on the next execute, which
         * may have no bytes left to feed. */
        c->resume_pending = true;
        continue;
      }
      c->in_head = true;
      c->head_bytes = 0;
      if (c->parse_off > 0) {
        memmove(c->inbuf, c->inbuf + c->parse_off, c->in_len - c->parse_off);
        c->in_len -= c->parse_off;
        c->parse_off = 0;
      }
      return HTTP_PARSE_COMPLETE;
    }
    if (c->fail_status == 0) {
      c->fail_status = 400;
      c->fail_detail = llhttp_get_error_reason(&c->parser);
    }
    return HTTP_PARSE_FAILED;
  }
}

/* ---- helpers ------------------------------------------------------------------ */

static void http_conn__on_timer(uv_timer_t *timer) {
  http_conn_t *c = container_of(timer, http_conn_t, timer);
  http_conn__on_event(c, HTTP_CONN_EV_TIMEOUT);
}

/* Arm the state's deadline; 0 means none. */
static void http_conn__arm(http_conn_t *c, uint64_t ms) {
  if (ms == 0)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, http_conn__on_timer, ms, 0);
}

static void http_conn__on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  http_conn_t *c = container_of((uv_tcp_t *)handle, http_conn_t, tcp);
  if (c->state == HTTP_CONN_LINGERING || c->state == HTTP_CONN_STREAMING) {
    /* Nothing a client sends on a stream is read: it only shows it is there. */
    *buf = uv_buf_init(c->server->discard, sizeof(c->server->discard));
    return;
  }
  if (c->inbuf == NULL)
    c->inbuf = malloc(HTTP__INBUF_SIZE);
  if (c->inbuf == NULL) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(c->inbuf + c->in_len, (unsigned)(HTTP__INBUF_SIZE - c->in_len));
}

static void http_conn__on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  http_conn_t *c = container_of((uv_tcp_t *)stream, http_conn_t, tcp);
  if (nread == 0 || c->state == HTTP_CONN_CLOSING)
    return;
  if (nread > 0) {
    if (c->state != HTTP_CONN_LINGERING && c->state != HTTP_CONN_STREAMING)
      c->in_len += (size_t)nread;
    http_conn__on_event(c, HTTP_CONN_EV_DATA);
    return;
  }
  /* libuv stops reading after EOF or an error. */
  c->reading = false;
  if (nread == UV_EOF)
    c->peer_eof = true;
  http_conn__on_event(c, HTTP_CONN_EV_EOF);
}

static void http_conn__read(http_conn_t *c, bool on) {
  if (on && !c->reading && !c->peer_eof) {
    if (uv_read_start((uv_stream_t *)&c->tcp, http_conn__on_alloc, http_conn__on_read) == 0)
      c->reading = true;
    else
      http_conn__close(c);
  } else if (!on && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
}

/* While a request is dispatched or answered: keep reading, unparsed, while
 * inbuf has room, so a disconnect is noticed. */
static void http_conn__hold(http_conn_t *c) {
  http_conn__read(c, !c->refused && c->in_len < HTTP__INBUF_SIZE);
}

/* The response in flight is finished: written or dropped. */
static void http_conn__response_done(http_conn_t *c) {
  http_server_t *s = c->server;
  free(c->wbuf);
  c->wbuf = NULL;
  if (c->req != NULL) {
    if (s != NULL && s->access_cb != NULL)
      s->access_cb(c->req, c->status, s->access_data);
    http__request_free(c->req);
    c->req = NULL;
  }
}

static void http_conn__on_write(uv_write_t *wr, int status) {
  http_conn_t *c = container_of(wr, http_conn_t, write_req);
  http_conn__response_done(c);
  http_conn__on_event(c, status == 0 ? HTTP_CONN_EV_WRITTEN : HTTP_CONN_EV_WRITE_FAILED);
}

/* Write c->wbuf; state WRITING. */
static void http_conn__write(http_conn_t *c) {
  c->state = HTTP_CONN_WRITING;
  http_conn__arm(c, c->server->limits.write_timeout_ms);
  http_conn__hold(c);
  uv_buf_t buf = uv_buf_init(c->wbuf, (unsigned)c->wlen);
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, http_conn__on_write) != 0) {
    http_conn__response_done(c);
    http_conn__close(c);
  }
}

/* Serialise a response for c->req into c->wbuf. Returns 0, or -ENOMEM after
 * dropping the response and closing c. */
static int http_conn__build(http_conn_t *c, int status, const http_header_t *headers,
                            size_t n_headers, const char *body, size_t len) {
  http_server_t *s = c->server;
  http_request_t *req = c->req;
  bool head_only = req->method != NULL && strcmp(req->method, "HEAD") == 0;
  c->status = status;
  c->resp_close = !c->keep_alive || c->peer_eof || s->shutting_down;
  if (http__response_build(s, req, status, headers, n_headers, body, len, head_only,
                           c->resp_close, &c->wbuf, &c->wlen) != 0) {
    http_conn__response_done(c);
    http_conn__close(c);
    return -ENOMEM;
  }
  return 0;
}

/* Answer with a problem of the server's own and close afterwards. */
static void http_conn__fail(http_conn_t *c, int status, const char *detail) {
  const char *field = c->fail_field != NULL ? c->fail_field : "request";
  if (status == 413)
    field = "body";
  else if (status == 431)
    field = "headers";

  if (c->req == NULL)
    c->req = http__request_new(c->remote_addr);
  if (c->req == NULL) {
    http_conn__close(c);
    return;
  }
  http_conn__ensure_request_id(c->req);
  c->keep_alive = false;
  c->fail_status = 0;
  c->fail_detail = NULL;
  c->fail_field = NULL;

  char detail_buf[160];
  if (detail == NULL) {
    switch (status) {
    case 408: detail = "The request did not arrive in time."; break;
    case 413:
      snprintf(detail_buf, sizeof(detail_buf), "The request body exceeds %zu bytes.",
               c->server->limits.max_body_bytes);
      detail = detail_buf;
      break;
    case 431:
      snprintf(detail_buf, sizeof(detail_buf),
               "The request line and headers exceed %zu bytes.",
               c->server->limits.max_header_bytes);
      detail = detail_buf;
      break;
    case 503: detail = "The server is at its connection limit."; break;
    default: detail = "The request could not be parsed."; break;
    }
  } else if (status == 400) {
    snprintf(detail_buf, sizeof(detail_buf), "Malformed request: %s", detail);
    detail = detail_buf;
  }

  size_t blen = 0;
  char *body = http__problem_body(status, detail, field, c->req->request_id, &blen);
  http_header_t headers[2] = {
    {"Content-Type", "application/problem+json"},
    {"Retry-After", "1"},
  };
  int r = http_conn__build(c, status, headers, status == 503 ? 2 : 1, body,
                           body != NULL ? blen : 0);
  free(body);
  if (r == 0)
    http_conn__write(c);
}

/* Start a request after a response, a new connection or an idle period:
 * parse what is buffered and dispatch, fail or wait for more. */
static void http_conn__parse_and_go(http_conn_t *c) {
  switch (http_conn__parse(c)) {
  case HTTP_PARSE_NEED_MORE:
    http_conn__read(c, true);
    break;
  case HTTP_PARSE_COMPLETE: {
    http_server_t *s = c->server;
    c->state = HTTP_CONN_DISPATCHED;
    c->dispatched = true;
    c->req->conn = c;
    uv_timer_stop(&c->timer);
    http_conn__hold(c);
    s->stats.requests_total++;
    s->stats.requests_in_flight++;
    /* Last: the handler may respond at once and move c on. */
    s->handler(c->req, s->handler_data);
    break;
  }
  case HTTP_PARSE_FAILED:
    http_conn__fail(c, c->fail_status, c->fail_detail);
    break;
  }
}

/* After a final response with Connection: close: send FIN and drain the
 * input for a while so the client reads the response instead of a RST. */
static void http_conn__on_shutdown(uv_shutdown_t *sr, int status) {
  http_conn_t *c = container_of(sr, http_conn_t, shutdown_req);
  if (c->state == HTTP_CONN_LINGERING && (status < 0 || c->peer_eof))
    http_conn__close(c);
}

static void http_conn__linger(http_conn_t *c) {
  if (c->peer_eof || c->server->shutting_down) {
    http_conn__close(c);
    return;
  }
  c->state = HTTP_CONN_LINGERING;
  c->in_len = c->parse_off = 0;
  free(c->inbuf);
  c->inbuf = NULL;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, http_conn__on_shutdown) != 0) {
    http_conn__close(c);
    return;
  }
  http_conn__arm(c, HTTP__LINGER_MS);
  http_conn__read(c, true);
}

/* The response is written: close, or go on with the next request. */
static void http_conn__next(http_conn_t *c) {
  http_server_t *s = c->server;
  if (c->resp_close || c->peer_eof || s->shutting_down) {
    http_conn__linger(c);
    return;
  }
  c->in_head = true;
  c->head_bytes = 0;
  if (c->in_len > 0) {
    /* Pipelined bytes: the next request has begun. */
    c->state = HTTP_CONN_READING;
    c->req_started = true;
    http_conn__arm(c, s->limits.read_timeout_ms);
    http_conn__parse_and_go(c);
  } else {
    c->state = HTTP_CONN_KEEPALIVE;
    c->req_started = false;
    free(c->inbuf);
    c->inbuf = NULL;
    http_conn__arm(c, s->limits.keepalive_timeout_ms);
    http_conn__read(c, true);
  }
}

/* After a forced shutdown a closed connection whose request the handler
 * still holds leaves the server, so the server can finish; http_respond()
 * frees it later without touching the server. */
static void http_conn__orphan(http_conn_t *c) {
  http_server_t *s = c->server;
  if (c->streaming) {
    if (s->streams_open > 0)
      s->streams_open--;  /* a stream left its in-flight count at the start */
  } else {
    s->stats.requests_in_flight--;
  }
  if (c->counted)
    s->stats.connections_open--;
  else if (c->refused)
    s->refusing--;
  if (c->peer_counted)
    http__peers_release(s, c->remote_addr);
  c->counted = c->refused = c->peer_counted = false;
  http__server_unlink(s, c);
  c->server = NULL;
  http__server_maybe_finish(s);
}

static void http_conn__on_handle_closed(http_conn_t *c) {
  if (--c->handles_open > 0)
    return;
  if (c->dispatched) {
    /* The handler still holds the request; http_respond() frees c. */
    if (c->server != NULL && c->server->killed)
      http_conn__orphan(c);
    return;
  }
  /* The close callback of the last handle: the place to free. */
  http__conn_free(c);
}

static void http_conn__on_tcp_close(uv_handle_t *handle) {
  http_conn__on_handle_closed(container_of((uv_tcp_t *)handle, http_conn_t, tcp));
}

static void http_conn__on_timer_close(uv_handle_t *handle) {
  http_conn__on_handle_closed(container_of((uv_timer_t *)handle, http_conn_t, timer));
}

static void http_conn__close(http_conn_t *c) {
  if (c->state == HTTP_CONN_CLOSING)
    return;
  c->state = HTTP_CONN_CLOSING;
  c->reading = false;
  if (c->dispatched)
    c->gone = true;
  else if (c->req != NULL && c->wbuf == NULL) {
    /* A request still being read; a response in flight is finished by its
     * write callback (UV_ECANCELED). */
    http__request_free(c->req);
    c->req = NULL;
  }
  uv_close((uv_handle_t *)&c->tcp, http_conn__on_tcp_close);
  uv_close((uv_handle_t *)&c->timer, http_conn__on_timer_close);
  if (c->streaming)
    http__stream_closed(c); /* last: the handler may end the stream now */
}

/* ---- the dispatcher ---------------------------------------------------------- */

static void http_conn__on_event(http_conn_t *c, http_conn_event_t ev) {
  switch (c->state) {
  case HTTP_CONN_KEEPALIVE:
    if (ev == HTTP_CONN_EV_DATA) {
      c->state = HTTP_CONN_READING;
      c->req_started = true;
      http_conn__arm(c, c->server->limits.read_timeout_ms);
      http_conn__parse_and_go(c);
    } else if (ev == HTTP_CONN_EV_EOF || ev == HTTP_CONN_EV_TIMEOUT ||
               ev == HTTP_CONN_EV_SHUTDOWN || ev == HTTP_CONN_EV_KILL) {
      http_conn__close(c);
    }
    break;

  case HTTP_CONN_READING:
    switch (ev) {
    case HTTP_CONN_EV_DATA:
      c->req_started = true;
      http_conn__parse_and_go(c);
      break;
    case HTTP_CONN_EV_TIMEOUT:
      /* The deadline covers the whole head and body, from the first byte
       * (or the accept), and is not pushed back by trickling bytes. */
      if (c->req_started) {
        http_conn__fail(c, 408, NULL);
      } else {
        http_conn__close(c);
      }
      break;
    case HTTP_CONN_EV_SHUTDOWN:
      if (!c->req_started)
        http_conn__close(c);
      /* else: let the request finish; its response says close. */
      break;
    case HTTP_CONN_EV_EOF:
    case HTTP_CONN_EV_KILL:
      http_conn__close(c);
      break;
    default:
      break;
    }
    break;

  case HTTP_CONN_DISPATCHED:
    switch (ev) {
    case HTTP_CONN_EV_DATA:
      http_conn__hold(c);
      break;
    case HTTP_CONN_EV_EOF:
    case HTTP_CONN_EV_KILL:
      http_conn__close(c); /* the request stays until http_respond() */
      break;
    case HTTP_CONN_EV_RESPOND:
      http_conn__write(c);
      break;
    default:
      break;
    }
    break;

  case HTTP_CONN_WRITING:
    switch (ev) {
    case HTTP_CONN_EV_DATA:
      http_conn__hold(c);
      break;
    case HTTP_CONN_EV_EOF:
      if (!c->peer_eof)
        http_conn__close(c); /* a read error, not a half-close */
      break;
    case HTTP_CONN_EV_TIMEOUT:
    case HTTP_CONN_EV_WRITE_FAILED:
    case HTTP_CONN_EV_KILL:
      http_conn__close(c);
      break;
    case HTTP_CONN_EV_WRITTEN:
      http_conn__next(c);
      break;
    default:
      break;
    }
    break;

  case HTTP_CONN_STREAMING:
    http__stream_on_event(c, ev);
    break;

  case HTTP_CONN_LINGERING:
    if (ev != HTTP_CONN_EV_DATA)
      http_conn__close(c);
    break;

  case HTTP_CONN_CLOSING:
    break;
  }
}

/* ---- entry points ------------------------------------------------------------ */

void http__conn_accept(http_server_t *s) {
  http_conn_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return;
  if (uv_tcp_init(s->loop, &c->tcp) != 0) {
    free(c);
    return;
  }
  uv_timer_init(s->loop, &c->timer);
  c->handles_open = 2;
  c->server = s;
  c->state = HTTP_CONN_READING;
  c->in_head = true;
  llhttp_init(&c->parser, HTTP_REQUEST, &http_conn__settings);
  http__server_link(s, c);

  if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp) != 0) {
    http_conn__close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage peer;
  int len = (int)sizeof(peer);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) == 0) {
    if (peer.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&peer, c->remote_addr, sizeof(c->remote_addr));
    else
      uv_ip4_name((struct sockaddr_in *)&peer, c->remote_addr, sizeof(c->remote_addr));
  }

  bool over_all = s->limits.max_connections > 0 &&
                  s->stats.connections_open >= s->limits.max_connections;
  bool over_peer = !over_all && !http__peers_admit(s, c->remote_addr, &c->peer_counted);
  if (over_all || over_peer) {
    s->stats.connections_refused++;
    if (s->refusing >= HTTP__MAX_REFUSING) {
      http_conn__close(c);
      return;
    }
    c->refused = true;
    s->refusing++;
    http_conn__fail(c, 503, over_peer ? "Too many connections from this address." : NULL);
    return;
  }
  c->counted = true;
  s->stats.connections_open++;
  s->stats.connections_total++;
  http_conn__arm(c, s->limits.read_timeout_ms);
  http_conn__read(c, true);
}

void http__conn_shutdown(http_conn_t *c) {
  http_conn__on_event(c, HTTP_CONN_EV_SHUTDOWN);
}

void http__conn_kill(http_conn_t *c) {
  if (c->state != HTTP_CONN_CLOSING) {
    http_conn__on_event(c, HTTP_CONN_EV_KILL);
    return;
  }
  /* Already closed, still held by its handler: let it go. */
  if (c->handles_open == 0 && c->dispatched)
    http_conn__orphan(c);
}

void http__conn_free(http_conn_t *c) {
  http_server_t *s = c->server;
  if (s != NULL) {
    if (c->counted)
      s->stats.connections_open--;
    else if (c->refused)
      s->refusing--;
    if (c->peer_counted)
      http__peers_release(s, c->remote_addr);
    http__server_unlink(s, c);
  }
  http__request_free(c->req);
  free(c->wbuf);
  free(c->inbuf);
  free(c->scratch);
  free(c->spans);
  free(c);
  if (s != NULL)
    http__server_maybe_finish(s);
}

/* ---- public request API ------------------------------------------------------ */

bool http_request_gone(const http_request_t *req) {
  return req->conn == NULL || req->conn->gone;
}

void http_respond(http_request_t *req, int status, const http_header_t *headers,
                  size_t n_headers, const char *body, size_t len) {
  http_conn_t *c = req->conn;
  if (c == NULL || c->req != req || !c->dispatched)
    return; /* not a dispatched request, or answered twice */
  if (status < 100 || status > 999)
    status = 500;
  c->dispatched = false;
  http_server_t *s = c->server;
  if (s != NULL)
    s->stats.requests_in_flight--;

  if (c->gone) {
    /* The client left: drop the response, then the connection. */
    c->status = status;
    http_conn__response_done(c);
    if (c->handles_open == 0) {
      if (s != NULL)
        http__server_defer_free(s, c);
      else
        http__conn_free(c); /* orphan: no loop callback of ours holds it */
    }
    return;
  }
  if (http_conn__build(c, status, headers, n_headers, body, len) == 0)
    http_conn__on_event(c, HTTP_CONN_EV_RESPOND);
}

/* ---- for stream.c -------------------------------------------------------------- */

void http__conn_close(http_conn_t *c) { http_conn__close(c); }
void http__conn_linger(http_conn_t *c) { http_conn__linger(c); }
void http__conn_arm(http_conn_t *c, uint64_t ms) { http_conn__arm(c, ms); }
void http__conn_hold(http_conn_t *c) { http_conn__hold(c); }
void http__conn_response_done(http_conn_t *c) { http_conn__response_done(c); }
