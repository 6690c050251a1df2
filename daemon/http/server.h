/* http/server: an HTTP/1.1 server on libuv + llhttp.
 *
 * Knows no KIP word. It accepts connections, parses requests with llhttp and
 * hands each complete request to one handler callback. Requests on one
 * connection are handled strictly one at a time, so pipelined requests are
 * answered in order: while a request is dispatched, parsing of the bytes that
 * follow it is paused.
 *
 * Limits (util/config.h http_limits_t): body > max_body_bytes -> 413,
 * request line + headers > max_header_bytes -> 431, a read timeout on headers
 * and body (slowloris), an idle keep-alive timeout, and max_connections, past
 * which new connections get a short 503 and are closed.
 *
 * Lifetime: an http_request_t lives until http_respond() has been called for
 * it AND its connection no longer needs it. If the client disconnects while
 * the request is dispatched, the request stays valid (http_request_gone()
 * turns true) and the response passed to http_respond() is dropped; only then
 * is the memory released. So a late database callback never touches freed
 * memory, as long as it calls http_respond() exactly once.
 *
 * A timeout of 0 in the limits disables that timeout; max_connections 0 means
 * no limit. A client that closes (or half-closes) its side while its request
 * is dispatched counts as gone. Timeouts: read (from a request's first byte,
 * or from the accept, to its last byte; not pushed back by trickling bytes)
 * -> 408 and close; keep-alive idle -> silent close; write (a response must
 * drain) -> close.
 *
 * All functions run on the loop's thread. libuv writes with write(2), so the
 * process must ignore SIGPIPE.
 */
#ifndef KIPD_HTTP_SERVER_H
#define KIPD_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/arena.h"
#include "util/error.h"

/* The HTTP layer's limits (its part of the configuration; main.c fills it). */
typedef struct http_limits_s {
  size_t max_body_bytes;        /* 1 MiB: larger bodies get 413 */
  size_t max_header_bytes;      /* 16 KiB of request line + headers: 431 */
  uint64_t read_timeout_ms;     /* header/body must arrive within this: 10 s */
  uint64_t keepalive_timeout_ms;/* idle keep-alive connection is closed: 60 s */
  uint64_t write_timeout_ms;    /* a response must drain within this: 30 s */
  unsigned max_connections;     /* further accepts are refused: 10000 */
} http_limits_t;

typedef struct http_server_s http_server_t;

typedef struct http_header_s {
  const char *name;   /* lower-cased by the server for request headers */
  const char *value;
} http_header_t;

typedef struct http_request_s {
  arena_t arena;            /* all memory of this request; freed after the response */
  const char *method;       /* "GET", "POST", ... (arena) */
  const char *path;         /* percent-decoded path, without query (arena) */
  const char *raw_path;     /* as sent, without query (arena) */
  const char *query;        /* raw query string without '?', or NULL (arena) */
  http_header_t *headers;   /* n_headers entries (arena) */
  size_t n_headers;
  const char *body;         /* NUL-terminated body, body_len bytes (arena); "" if none */
  size_t body_len;
  char request_id[65];      /* from a sane X-Request-Id header (1..64 of
                               [A-Za-z0-9._-]), else a new UUID v4 */
  char remote_addr[64];     /* peer IP address text */
  uint64_t start_ns;        /* uv_hrtime() when the request was complete */
  void *user;               /* free for the handler's per-request state */
  struct http_conn_s *conn; /* internal */
} http_request_t;

/* Called once per complete request. The handler must call http_respond()
 * exactly once, now or later from another callback. req is borrowed. */
typedef void (*http_handler_cb)(http_request_t *req, void *handler_data);

/* Called when the server has stopped accepting and every connection closed. */
typedef void (*http_server_closed_cb)(http_server_t *server, void *data);

/* Create a server on loop. limits is copied. Returns 0 or -errno; *out is new
 * and owns handles on loop: always end it with http_server_shutdown(), run
 * the loop until the closed callback, then http_server_free(). */
int http_server_new(uv_loop_t *loop, const http_limits_t *limits,
                    http_handler_cb handler, void *handler_data,
                    http_server_t **out) KIPD_MUST_CHECK;

/* Bind and listen. host is an IPv4 or IPv6 literal; port 0 picks a free port
 * (read it back with http_server_port()). Returns 0 or a negative uv error. */
int http_server_listen(http_server_t *server, const char *host, int port) KIPD_MUST_CHECK;
int http_server_port(const http_server_t *server);

/* Graceful stop: stop accepting now; let dispatched requests finish and
 * their responses drain (they say Connection: close); close idle keep-alive
 * connections at once; after grace_ms force-close whatever remains. Then
 * close all handles and call cb (always from the loop, never from inside
 * this call), after which the server may be freed with http_server_free().
 * A request still held by its handler after the force-close stays valid; its
 * later http_respond() is dropped and frees it without touching the server
 * (and without an access callback). Calling it again does nothing. */
void http_server_shutdown(http_server_t *server, uint64_t grace_ms,
                          http_server_closed_cb cb, void *data);
/* Frees the server. Only after the closed callback has run (aborts before). */
void http_server_free(http_server_t *server);

/* One client cannot take every slot (issue #16): at most per_address open
 * connections from one client address (0: no cap); the next gets a 503
 * problem+json and is closed. exempt is a comma-separated list of IP
 * literals (the trusted reverse proxies, through which many clients arrive)
 * that only the global max_connections binds; NULL or "" for none. Loopback
 * is not exempt. Call before http_server_listen(). Returns 0, UV_EINVAL
 * for an exempt entry that is not an IP address, or UV_ENOMEM. */
int http_server_set_peer_limit(http_server_t *server, unsigned per_address,
                               const char *exempt) KIPD_MUST_CHECK;

/* Open connections counted for addr now (tests, diagnostics). */
unsigned http_server_peer_count(const http_server_t *server, const char *addr);

/* The max_connections in force. http_server_listen() raises the process's
 * soft RLIMIT_NOFILE towards max_connections plus the descriptors a refusal
 * and the rest of kipd need; where the hard limit is lower, it lowers
 * max_connections to fit, so that past the limit a client still gets the
 * 503 rather than a reset from an accept that failed with EMFILE. */
unsigned http_server_max_connections(const http_server_t *server);

/* Statistics for /metrics. */
typedef struct http_server_stats_s {
  uint64_t connections_open;
  uint64_t connections_total;
  uint64_t connections_refused;
  uint64_t requests_total;
  uint64_t requests_in_flight;
} http_server_stats_t;
void http_server_stats(const http_server_t *server, http_server_stats_t *out);

/* Called after every response the server sends or drops, including the
 * ones it makes itself (400 on a parse error, 413, 431, 408, 503 over
 * capacity). For those, method/path may be NULL. req is borrowed and only
 * valid during the call. Used for the one-line-per-request log. */
typedef void (*http_access_cb)(const http_request_t *req, int status, void *data);
void http_server_set_access_cb(http_server_t *server, http_access_cb cb, void *data);

/* Look up a request header, case-insensitively. Returns a borrowed value or
 * NULL. With several headers of that name, the first. */
const char *http_request_header(const http_request_t *req, const char *name);

/* True once the client has gone away; the response will be dropped. */
bool http_request_gone(const http_request_t *req);

/* Send the response. status e.g. 200. headers (n_headers, may be 0) are
 * copied; the server adds Content-Length, Date, X-Request-Id and Connection
 * and ignores handler headers of those names (and Transfer-Encoding,
 * Keep-Alive), as well as any header containing CR or LF. body (len bytes)
 * is copied; for HEAD, 1xx, 204 and 304 it is not sent (1xx, 204 and 304 get
 * no Content-Length). The request's memory is released once the response is
 * written (or dropped). Call exactly once; req is invalid afterwards. */
void http_respond(http_request_t *req, int status,
                  const http_header_t *headers, size_t n_headers,
                  const char *body, size_t len);

/* ---- Streamed responses (Server-Sent Events and the like) ----
 *
 * Instead of http_respond(), a handler may stream: http_stream_begin()
 * sends the status and headers without Content-Length and with
 * Connection: close (the body ends when the connection closes, so no
 * chunked framing is needed and any HTTP/1.x client or proxy reads it);
 * http_stream_write() sends bytes as they come; http_stream_end() ends the
 * stream. A streaming connection has no read or keep-alive deadline; the
 * write deadline runs only while written bytes wait to drain, and more than
 * 1 MiB unsent closes it (a stuck client). It counts towards
 * max_connections and the per-address cap like any other connection.
 *
 * The handler keeps the request until it calls http_stream_end(), exactly
 * once, whatever happens; only then is the memory released (the same
 * deferred free as http_respond()). cb is told, never from inside an
 * http_stream_* call:
 *   HTTP_STREAM_CLOSED    the client went away, a write failed or timed out,
 *                         or the server's grace period ended: call
 *                         http_stream_end() (now or later);
 *   HTTP_STREAM_SHUTDOWN  the server is shutting down: write what is left
 *                         and call http_stream_end().
 * HEAD requests get the head only. */
typedef enum http_stream_event_e {
  HTTP_STREAM_CLOSED,
  HTTP_STREAM_SHUTDOWN,
} http_stream_event_t;
typedef void (*http_stream_cb)(http_request_t *req, http_stream_event_t ev, void *data);

/* Send the head. headers are copied (as http_respond(); the server adds the
 * security headers unless given). Returns 0, -EINVAL (not a dispatched
 * request), -EPIPE (the client is gone: call http_stream_end()) or -ENOMEM
 * (the connection is closed: call http_stream_end()). */
int http_stream_begin(http_request_t *req, int status, const http_header_t *headers,
                      size_t n_headers, http_stream_cb cb, void *data) KIPD_MUST_CHECK;
/* Send len bytes (copied). Returns 0, -EPIPE (gone), -ENOBUFS (too much
 * unsent: the connection is closed) or -ENOMEM; after an error call
 * http_stream_end(). */
int http_stream_write(http_request_t *req, const char *bytes, size_t len) KIPD_MUST_CHECK;
/* End the stream: the bytes written so far drain, then the connection
 * closes. req is invalid afterwards. */
void http_stream_end(http_request_t *req);
/* Streams open now (for /metrics). */
unsigned http_server_streams_open(const http_server_t *server);

/* Reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
