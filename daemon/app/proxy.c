#include "app/proxy.h"

#include <string.h>

#include "util/log.h"

/* An IP address (IPv4 or IPv6, surrounding spaces allowed) in its
 * canonical text form. Returns false for anything else. */
static bool proxy__ip_text(const char *s, size_t len, char out[INET6_ADDRSTRLEN]) {
  while (len > 0 && (*s == ' ' || *s == '\t')) {
    s++;
    len--;
  }
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
    len--;
  char buf[INET6_ADDRSTRLEN];
  if (len == 0 || len >= sizeof(buf))
    return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  unsigned char bin[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, buf, bin) == 1)
    return inet_ntop(AF_INET, bin, out, INET6_ADDRSTRLEN) != NULL;
  if (inet_pton(AF_INET6, buf, bin) == 1)
    return inet_ntop(AF_INET6, bin, out, INET6_ADDRSTRLEN) != NULL;
  return false;
}

int proxy_list_parse(proxy_list_t *list, const char *text) {
  list->n = 0;
  for (const char *p = text; p != NULL && *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (list->n == PROXY_MAX) {
      log_errorf("trusted-proxies: at most %d addresses", PROXY_MAX);
      return -EINVAL;
    }
    if (!proxy__ip_text(p, len, list->addrs[list->n])) {
      log_errorf("trusted-proxies: '%.*s' is not an IP address", (int)len, p);
      return -EINVAL;
    }
    list->n++;
    p = comma ? comma + 1 : NULL;
  }
  return 0;
}

const char *proxy_client_addr(const proxy_list_t *list, http_request_t *req) {
  if (list->n == 0)
    return req->remote_addr;
  char peer[INET6_ADDRSTRLEN];
  if (!proxy__ip_text(req->remote_addr, strlen(req->remote_addr), peer))
    return req->remote_addr;
  bool trusted = false;
  for (size_t i = 0; i < list->n && !trusted; i++)
    trusted = strcmp(list->addrs[i], peer) == 0;
  const char *xff = trusted ? http_request_header(req, "x-forwarded-for") : NULL;
  if (xff == NULL)
    return req->remote_addr;
  const char *last = strrchr(xff, ',');
  last = last ? last + 1 : xff;
  char client[INET6_ADDRSTRLEN];
  if (!proxy__ip_text(last, strlen(last), client))
    return req->remote_addr;
  char *copy = arena_strdup(&req->arena, client);
  return copy ? copy : req->remote_addr;
}
