/* proxy: the trusted reverse proxies (--trusted-proxies) and the client
 * behind a request: the TCP peer, unless the peer is a trusted proxy that
 * said who its client was in X-Forwarded-For. */
#ifndef KIPD_APP_PROXY_H
#define KIPD_APP_PROXY_H

#include <arpa/inet.h>
#include <stddef.h>

#include "http/server.h"
#include "util/error.h"

#define PROXY_MAX 16

typedef struct proxy_list_s {
  char addrs[PROXY_MAX][INET6_ADDRSTRLEN];  /* canonical inet_ntop text */
  size_t n;
} proxy_list_t;

/* Parse a comma-separated list of IP addresses (text borrowed, may be NULL
 * for none) into list. Returns 0, or -EINVAL after logging which entry is
 * wrong (not an address, or more than PROXY_MAX). */
int proxy_list_parse(proxy_list_t *list, const char *text) KIPD_MUST_CHECK;

/* The client's address for req: req->remote_addr (borrowed), or, when the
 * peer is in list, the last X-Forwarded-For hop (the one the proxy itself
 * appended; earlier hops come from the client and are not believed), copied
 * into the request's arena. */
const char *proxy_client_addr(const proxy_list_t *list, http_request_t *req);

#endif
