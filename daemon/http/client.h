/* http/client: outbound HTTP requests on the libuv loop, with libcurl's
 * multi interface (curl_multi_socket_action driven by one uv_poll_t per
 * socket and one uv_timer_t, as curl's own multi-uv example does).
 *
 * It never blocks the loop: names are resolved by curl's threaded resolver
 * (http_client_new refuses a libcurl without AsynchDNS), sockets are
 * non-blocking, and every callback runs from a libuv callback. Knows no KIP
 * word.
 *
 * Each request: no redirects followed, no proxy (not even one from the
 * environment), connect and total timeouts, and the response body read up
 * to max_response_bytes, after which the transfer is aborted. The address a
 * connection is about to use, after DNS, is passed to the config's
 * addr_allowed, which may refuse it (the transfer then fails with
 * HTTP_CLIENT_REFUSED): a name that resolves to a forbidden address cannot
 * slip past a check made on the URL alone. */
#ifndef KIPD_HTTP_CLIENT_H
#define KIPD_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "util/error.h"

typedef struct http_client_s http_client_t;

typedef struct http_client_config_s {
  uint64_t connect_timeout_ms;   /* TCP and TLS connect: 5 s */
  uint64_t total_timeout_ms;     /* the whole request: 10 s */
  size_t max_response_bytes;     /* response body read at most: 4 KiB */
  const char *protocols;         /* curl's CURLOPT_PROTOCOLS_STR, e.g. "https" or "http,https" (copied) */
  const char *user_agent;        /* copied */
  /* Asked before each connection with the resolved address (borrowed);
   * false refuses it. NULL allows every address. */
  bool (*addr_allowed)(const struct sockaddr *sa, void *data);
  void *addr_data;
} http_client_config_t;

/* The outcome of one request. */
enum {
  HTTP_CLIENT_OK = 0,          /* an HTTP answer came (any status) */
  HTTP_CLIENT_REFUSED = 1,     /* addr_allowed refused every address */
  HTTP_CLIENT_FAILED = 2,      /* no answer: DNS, connect, TLS, timeout, reset */
  HTTP_CLIENT_TOO_LARGE = 3,   /* an answer came, but its body passed the limit */
  HTTP_CLIENT_CANCELED = 4,    /* the client is closing */
};

typedef struct http_client_result_s {
  int outcome;                 /* HTTP_CLIENT_* */
  long status;                 /* the HTTP status, 0 when none came */
  const char *error;           /* borrowed: curl's message, "" on success */
  uint64_t duration_ms;
} http_client_result_t;

typedef void (*http_client_done_cb)(void *data, const http_client_result_t *res);

/* Call once at start-up, before any thread exists (curl_global_init). */
int http_client_global_init(void) KIPD_MUST_CHECK;
void http_client_global_cleanup(void);

/* Create a client on loop. cfg is copied. Returns 0, -ENOTSUP when libcurl
 * lacks the asynchronous resolver, or -errno; *out is new. */
int http_client_new(uv_loop_t *loop, const http_client_config_t *cfg, http_client_t **out) KIPD_MUST_CHECK;

/* POST body (len bytes, copied) to url (copied) with the extra headers
 * ("Name: value" strings, NULL-terminated array, copied). cb runs exactly
 * once, never from inside this call. Returns 0, or -errno without calling
 * cb. */
int http_client_post(http_client_t *c, const char *url, const char *const *headers, const char *body,
                     size_t len, http_client_done_cb cb, void *data) KIPD_MUST_CHECK;

/* Requests in flight. */
unsigned http_client_in_flight(const http_client_t *c);

/* Abort every request (their cb runs with HTTP_CLIENT_CANCELED), close the
 * handles and free the client, then call cb (may be NULL). */
void http_client_close(http_client_t *c, void (*cb)(void *data), void *data);

#endif
