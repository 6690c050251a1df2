/* http/peers: open connections per client address, so one client cannot
 * take every connection slot (issue #16).
 *
 * A chained hash table from the peer's address text (canonical, as
 * uv_ip4_name/uv_ip6_name write it; an IPv4-mapped IPv6 peer counts as its
 * IPv4 address) to its count of open connections. An entry exists only while
 * its count is above zero. The hash is seeded at random, so a client that
 * controls many addresses (an IPv6 /64) cannot aim them at one chain.
 *
 * Addresses in the exempt list (the trusted reverse proxies: many clients
 * arrive through them) are not counted; they are bound by the global limit
 * only. A cap of 0 turns the check off.
 */
#include "http/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

struct http__peer_s {
  http__peer_t *next;
  unsigned count;
  char addr[64];
};

/* The address a peer is counted under: "::ffff:a.b.c.d" -> "a.b.c.d". */
static const char *http__peers_key(const char *addr) {
  if (strncasecmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.') != NULL &&
      strchr(addr + 7, ':') == NULL)
    return addr + 7;
  return addr;
}

static uint64_t http__peers_hash(const http_server_t *s, const char *key) {
  uint64_t h = 1469598103934665603ull ^ s->peer_seed; /* FNV-1a, seeded */
  for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
    h ^= *p;
    h *= 1099511628211ull;
  }
  return h ^ (h >> 29);
}

/* Canonical text of an IP literal (len bytes) into out, or false. */
static bool http__peers_canon(const char *text, size_t len, char out[64]) {
  char buf[64];
  unsigned char bin[16];
  if (len == 0 || len >= sizeof(buf))
    return false;
  memcpy(buf, text, len);
  buf[len] = '\0';
  if (uv_inet_pton(AF_INET, buf, bin) == 0)
    return uv_inet_ntop(AF_INET, bin, out, 64) == 0;
  if (uv_inet_pton(AF_INET6, buf, bin) == 0) {
    if (uv_inet_ntop(AF_INET6, bin, out, 64) != 0)
      return false;
    memmove(out, http__peers_key(out), strlen(http__peers_key(out)) + 1);
    return true;
  }
  return false;
}

int http_server_set_peer_limit(http_server_t *s, unsigned per_address, const char *exempt) {
  size_t n = 0;
  for (const char *p = exempt; p != NULL && *p != '\0';) {
    const char *comma = strchr(p, ',');
    n++;
    p = comma != NULL ? comma + 1 : NULL;
  }
  char(*list)[64] = NULL;
  if (n > 0) {
    list = calloc(n, sizeof(*list));
    if (list == NULL)
      return UV_ENOMEM;
  }
  size_t i = 0;
  for (const char *p = exempt; p != NULL && *p != '\0'; i++) {
    const char *comma = strchr(p, ',');
    size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    while (len > 0 && (*p == ' ' || *p == '\t')) {
      p++;
      len--;
    }
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
      len--;
    if (!http__peers_canon(p, len, list[i])) {
      free(list);
      return UV_EINVAL;
    }
    p = comma != NULL ? comma + 1 : NULL;
  }
  if (s->peer_buckets == NULL) {
    s->peer_buckets = calloc(HTTP__PEER_BUCKETS, sizeof(*s->peer_buckets));
    if (s->peer_buckets == NULL) {
      free(list);
      return UV_ENOMEM;
    }
    if (getrandom(&s->peer_seed, sizeof(s->peer_seed), GRND_NONBLOCK) != sizeof(s->peer_seed))
      s->peer_seed = uv_hrtime();
  }
  free(s->peer_exempt);
  s->peer_exempt = list;
  s->n_peer_exempt = n;
  s->per_address_cap = per_address;
  return 0;
}

bool http__peers_admit(http_server_t *s, const char *addr, bool *counted) {
  *counted = false;
  if (s->per_address_cap == 0 || s->peer_buckets == NULL || addr[0] == '\0')
    return true;
  const char *key = http__peers_key(addr);
  for (size_t i = 0; i < s->n_peer_exempt; i++)
    if (strcmp(s->peer_exempt[i], key) == 0)
      return true;
  http__peer_t **bucket = &s->peer_buckets[http__peers_hash(s, key) % HTTP__PEER_BUCKETS];
  http__peer_t *p = *bucket;
  while (p != NULL && strcmp(p->addr, key) != 0)
    p = p->next;
  if (p != NULL && p->count >= s->per_address_cap)
    return false;
  if (p == NULL) {
    p = calloc(1, sizeof(*p));
    if (p == NULL)
      return true; /* out of memory: the global limit still holds */
    snprintf(p->addr, sizeof(p->addr), "%s", key);
    p->next = *bucket;
    *bucket = p;
  }
  p->count++;
  *counted = true;
  return true;
}

void http__peers_release(http_server_t *s, const char *addr) {
  if (s->peer_buckets == NULL)
    return;
  const char *key = http__peers_key(addr);
  http__peer_t **link = &s->peer_buckets[http__peers_hash(s, key) % HTTP__PEER_BUCKETS];
  while (*link != NULL && strcmp((*link)->addr, key) != 0)
    link = &(*link)->next;
  http__peer_t *p = *link;
  if (p == NULL)
    return;
  if (--p->count == 0) {
    *link = p->next;
    free(p);
  }
}

unsigned http_server_peer_count(const http_server_t *s, const char *addr) {
  if (s->peer_buckets == NULL)
    return 0;
  const char *key = http__peers_key(addr);
  const http__peer_t *p = s->peer_buckets[http__peers_hash(s, key) % HTTP__PEER_BUCKETS];
  while (p != NULL && strcmp(p->addr, key) != 0)
    p = p->next;
  return p != NULL ? p->count : 0;
}

void http__peers_free(http_server_t *s) {
  if (s->peer_buckets != NULL) {
    for (size_t i = 0; i < HTTP__PEER_BUCKETS; i++) {
      http__peer_t *p = s->peer_buckets[i];
      while (p != NULL) {
        http__peer_t *next = p->next;
        free(p);
        p = next;
      }
    }
  }
  free(s->peer_buckets);
  free(s->peer_exempt);
  s->peer_buckets = NULL;
  s->peer_exempt = NULL;
}
