/* http/internal: the structures shared by the files of the HTTP layer.
 *
 * Nothing outside daemon/http/ includes this file. Functions here carry the
 * http__ prefix (libuv's uv__ convention for non-static internals).
 *
 * Files and roles:
 *   server.c    listener, accept, shutdown, stats, the deferred-free reaper
 *   conn.c      one connection: llhttp glue, state machine, timers, writes
 *   request.c   request objects, path decoding, request ids
 *   response.c  status texts, the Date cache, response and problem bodies
 *   strict.c    RFC 9112 checks llhttp leaves to us (strict.h, public)
 *   peers.c     open connections per client address, the per-address cap
 *   stream.c    streamed responses (http_stream_*): head, chunks, end
 */
#ifndef KIPD_HTTP_INTERNAL_H
#define KIPD_HTTP_INTERNAL_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "http/server.h"

#define HTTP__BACKLOG 511
#define HTTP__INBUF_SIZE (16 * 1024)  /* per-connection read buffer */
#define HTTP__DISCARD_SIZE (16 * 1024) /* shared sink for lingering reads */
#define HTTP__LINGER_MS 2000          /* wait for the client's FIN after an error */
#define HTTP__MAX_REFUSING 256        /* 503 answers in flight; beyond, just close */
#define HTTP__ARENA_CHUNK 4096
#define HTTP__PEER_BUCKETS 4096       /* per-address counts: hash buckets */
#define HTTP__FD_RESERVE 256          /* descriptors kept for all but HTTP */
#define HTTP__STREAM_MAX_PENDING (1024 * 1024) /* unsent stream bytes before the
                                                  client counts as stuck */

/* Connection states (PgBouncer client_proto style: one dispatcher switches
 * on these). */
typedef enum http_conn_state_e {
  HTTP_CONN_READING,    /* reading a request; the read deadline runs */
  HTTP_CONN_DISPATCHED, /* the handler owns the request; parsing is paused */
  HTTP_CONN_WRITING,    /* the response is being written; write deadline */
  HTTP_CONN_KEEPALIVE,  /* idle between requests; idle deadline */
  HTTP_CONN_STREAMING,  /* a streamed response (stream.c): no read or idle
                           deadline; the write deadline only while bytes wait */
  HTTP_CONN_LINGERING,  /* FIN sent after a final response; draining input */
  HTTP_CONN_CLOSING,    /* handles are closing or closed */
} http_conn_state_t;

typedef enum http_conn_event_e {
  HTTP_CONN_EV_DATA,          /* bytes were appended to the input buffer */
  HTTP_CONN_EV_EOF,           /* the peer closed, or a read error */
  HTTP_CONN_EV_TIMEOUT,       /* the state's deadline passed */
  HTTP_CONN_EV_RESPOND,       /* http_respond() built the response */
  HTTP_CONN_EV_WRITTEN,       /* the response was written */
  HTTP_CONN_EV_WRITE_FAILED,  /* the response could not be written */
  HTTP_CONN_EV_SHUTDOWN,      /* the server stops: finish, then close */
  HTTP_CONN_EV_KILL,          /* the grace period is over: close now */
} http_conn_event_t;

typedef struct http__hdr_span_s {
  size_t name_off, name_len;
  size_t value_off, value_len;
} http__hdr_span_t;

typedef struct http_conn_s http_conn_t;
typedef struct http__peer_s http__peer_t;

struct http_conn_s {
  uv_tcp_t tcp;                 /* embedded handles: container_of */
  uv_timer_t timer;             /* the one deadline of the current state */
  uv_write_t write_req;         /* the response */
  uv_write_t continue_req;      /* "100 Continue" */
  uv_shutdown_t shutdown_req;
  llhttp_t parser;

  http_server_t *server;        /* NULL once orphaned by a forced shutdown */
  http_conn_t *prev, *next;     /* server->conns */
  http_conn_t *reap_next;       /* server->reap_list */

  http_conn_state_t state;
  unsigned handles_open;
  bool counted;                 /* counts in stats.connections_open */
  bool refused;                 /* over max_connections: gets a 503 */
  bool peer_counted;            /* counts in its address's open connections */
  bool reading;                 /* uv_read_start is in effect */
  bool peer_eof;                /* the client closed its side */
  bool dispatched;              /* the handler owns req until http_respond() */
  bool gone;                    /* closed while dispatched: drop the response */
  bool reap_queued;
  bool continue_pending;        /* continue_req in flight */
  bool req_started;             /* a byte of the current request arrived */
  bool in_head;                 /* the parser is before headers-complete */
  bool resume_pending;          /* run llhttp once more after a head pause */
  bool keep_alive;              /* the request allows keep-alive */
  bool resp_close;              /* the response in flight says close */
  int pause;                    /* why llhttp paused: HTTP__PAUSE_* */
  int fail_status;              /* set by a callback that rejects the request */
  const char *fail_detail;      /* static text */
  const char *fail_field;       /* static: the problem's field, or NULL */
  bool head_lf;                 /* obs-fold scan: the last head byte was LF */

  /* Unparsed input: inbuf[parse_off, in_len). */
  char *inbuf;
  size_t in_len;
  size_t parse_off;
  size_t head_bytes;            /* raw bytes of the current request head */
  size_t trailer_bytes;

  /* Request head under construction: URL then header names and values. */
  char *scratch;
  size_t scratch_len, scratch_cap;
  size_t url_len;
  http__hdr_span_t *spans;
  size_t n_spans, spans_cap;
  int hstate;                   /* 0 none, 1 in a field, 2 in a value */
  bool headers_done;
  size_t body_cap;

  http_request_t *req;          /* being read, dispatched or answered */
  char *wbuf;                   /* the response bytes being written */
  size_t wlen;
  int status;                   /* of the response in flight */

  char remote_addr[64];

  /* A streamed response (stream.c). The handler holds req (dispatched)
   * until http_stream_end(). */
  bool streaming;
  bool stream_in_call;          /* inside http_stream_*: no callback */
  bool stream_notified_close;   /* stream_cb got HTTP_STREAM_CLOSED */
  http_stream_cb stream_cb;
  void *stream_data;
  size_t stream_pending;        /* bytes handed to uv_write, not yet written */
};

struct http_server_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_timer_t grace_timer;
  uv_idle_t reaper;             /* frees connections outside their callbacks */
  unsigned handles_open;

  http_limits_t limits;
  http_handler_cb handler;
  void *handler_data;
  http_access_cb access_cb;
  void *access_data;
  http_server_closed_cb closed_cb;
  void *closed_data;

  http_conn_t *conns;           /* every connection object not yet freed */
  http_conn_t *reap_list;
  unsigned refusing;            /* refused connections still open */
  /* peers.c: open connections per client address. */
  http__peer_t **peer_buckets;  /* HTTP__PEER_BUCKETS chains, or NULL */
  uint64_t peer_seed;
  unsigned streams_open;        /* streamed responses not yet ended */
  unsigned per_address_cap;     /* 0: no cap */
  char (*peer_exempt)[64];      /* canonical addresses not counted */
  size_t n_peer_exempt;
  http_server_stats_t stats;
  int port;

  bool listening;
  bool shutting_down;
  bool killed;                  /* the grace period is over */
  bool finishing;               /* the last server handles are closing */
  bool closed;                  /* closed_cb was called */

  time_t date_sec;
  char date[40];
  char discard[HTTP__DISCARD_SIZE];
};

enum { HTTP__PAUSE_NONE = 0, HTTP__PAUSE_HEAD, HTTP__PAUSE_MESSAGE };

/* server.c */
void http__server_link(http_server_t *s, http_conn_t *c);
void http__server_unlink(http_server_t *s, http_conn_t *c);
/* Free c from the reaper on the next loop iteration. */
void http__server_defer_free(http_server_t *s, http_conn_t *c);
/* Call closed_cb once shut down and every connection is gone. */
void http__server_maybe_finish(http_server_t *s);

/* peers.c */
/* May a new connection from addr be served? *counted tells whether it was
 * counted (release it with http__peers_release when it ends). */
bool http__peers_admit(http_server_t *s, const char *addr, bool *counted);
void http__peers_release(http_server_t *s, const char *addr);
void http__peers_free(http_server_t *s);

/* conn.c */
/* Accept one pending connection from s->listener. */
void http__conn_accept(http_server_t *s);
void http__conn_shutdown(http_conn_t *c);
void http__conn_kill(http_conn_t *c);
/* Release c and its buffers; its handles must be closed. */
void http__conn_free(http_conn_t *c);
/* For stream.c: close now; finish a final response (FIN, linger); arm the
 * state's deadline (0: none); keep reading while a request is held; the
 * response in flight is finished (access callback, request freed). */
void http__conn_close(http_conn_t *c);
void http__conn_linger(http_conn_t *c);
void http__conn_arm(http_conn_t *c, uint64_t ms);
void http__conn_hold(http_conn_t *c);
void http__conn_response_done(http_conn_t *c);

/* stream.c: the connection's events while it streams (STREAMING state). */
void http__stream_on_event(http_conn_t *c, http_conn_event_t ev);
/* The connection closed while streaming: tell the handler (once). */
void http__stream_closed(http_conn_t *c);

/* request.c */
/* A new empty request, or NULL on out of memory. */
http_request_t *http__request_new(const char *remote_addr);
void http__request_free(http_request_t *req);
/* Percent-decode raw (len bytes) into a new arena string. Returns 0, or
 * -EINVAL on a bad escape or an encoded NUL, -ENOMEM. */
int http__decode_path(arena_t *arena, const char *raw, size_t len, char **out) KIPD_MUST_CHECK;
/* True if s is 1..64 characters of [A-Za-z0-9._-]. */
bool http__request_id_ok(const char *s);
/* Write a new random UUID v4 (37 bytes with the NUL) into out. */
void http__uuid4(char out[37]);

/* response.c */
/* The IMF-fixdate for now, cached per second. Borrowed. */
const char *http__date(http_server_t *s);
/* Serialise a whole response into one new malloc'd buffer (*out, *out_len).
 * len HTTP__STREAM_LENGTH: only the head of a streamed response, without
 * Content-Length (the body ends when the connection closes). Returns 0 or
 * -ENOMEM. */
#define HTTP__STREAM_LENGTH ((size_t)-1)
int http__response_build(http_server_t *s, const http_request_t *req, int status,
                         const http_header_t *headers, size_t n_headers,
                         const char *body, size_t len, bool head_only, bool close,
                         char **out, size_t *out_len) KIPD_MUST_CHECK;
/* A problem+json body as new malloc'd text, or NULL. field/detail borrowed. */
char *http__problem_body(int status, const char *detail, const char *field,
                         const char *request_id, size_t *len);

#endif
