#include "util/netpolicy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct netpolicy__block_s {
  unsigned char addr[16];  /* IPv4 as ::ffff:a.b.c.d */
  unsigned bits;           /* prefix length over the 128 bits */
} netpolicy__block_t;

struct netpolicy_s {
  bool allow_loopback;
  size_t n;
  netpolicy__block_t *blocks;
};

static void netpolicy__map4(const unsigned char v4[4], unsigned char out[16]) {
  memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  memcpy(out + 12, v4, 4);
}

static bool netpolicy__in(const unsigned char a[16], const unsigned char net[16], unsigned bits) {
  unsigned full = bits / 8, rest = bits % 8;
  if (memcmp(a, net, full) != 0)
    return false;
  if (rest == 0)
    return true;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return (a[full] & mask) == (net[full] & mask);
}

/* One literal, with an optional "/bits", into a block. */
static int netpolicy__parse(const char *text, size_t len, netpolicy__block_t *b) {
  char buf[64];
  if (len == 0 || len >= sizeof(buf))
    return -EINVAL;
  memcpy(buf, text, len);
  buf[len] = '\0';
  char *slash = strchr(buf, '/');
  long bits = -1;
  if (slash != NULL) {
    char *end;
    *slash = '\0';
    bits = strtol(slash + 1, &end, 10);
    if (slash[1] == '\0' || *end != '\0' || bits < 0)
      return -EINVAL;
  }
  unsigned char bin[16];
  if (inet_pton(AF_INET, buf, bin) == 1) {
    if (bits > 32)
      return -EINVAL;
    netpolicy__map4(bin, b->addr);
    b->bits = (unsigned)(bits < 0 ? 128 : 96 + bits);
    return 0;
  }
  if (inet_pton(AF_INET6, buf, bin) == 1) {
    if (bits > 128)
      return -EINVAL;
    memcpy(b->addr, bin, 16);
    b->bits = (unsigned)(bits < 0 ? 128 : bits);
    return 0;
  }
  return -EINVAL;
}

int netpolicy_new(const char *allow, bool allow_loopback, netpolicy_t **out, char *err, size_t err_len) {
  netpolicy_t *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return -ENOMEM;
  p->allow_loopback = allow_loopback;
  size_t n = 0;
  for (const char *s = allow; s != NULL && *s != '\0'; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL)
    n++;
  if (n > 0 && (p->blocks = calloc(n, sizeof(*p->blocks))) == NULL) {
    free(p);
    return -ENOMEM;
  }
  for (const char *s = allow; s != NULL && *s != '\0';) {
    const char *comma = strchr(s, ',');
    size_t len = comma ? (size_t)(comma - s) : strlen(s);
    while (len > 0 && *s == ' ') {
      s++;
      len--;
    }
    while (len > 0 && s[len - 1] == ' ')
      len--;
    if (netpolicy__parse(s, len, &p->blocks[p->n]) != 0) {
      snprintf(err, err_len, "not an address or CIDR block: %.*s", (int)(len > 64 ? 64 : len), s);
      netpolicy_free(p);
      return -EINVAL;
    }
    p->n++;
    s = comma ? comma + 1 : NULL;
  }
  *out = p;
  return 0;
}

void netpolicy_free(netpolicy_t *p) {
  if (p == NULL)
    return;
  free(p->blocks);
  free(p);
}

/* The blocks that are not the public internet, over the IPv4-mapped form. */
typedef struct netpolicy__special_s {
  const char *cidr;
  bool loopback;
} netpolicy__special_t;

static const netpolicy__special_t netpolicy__special[] = {
  {"0.0.0.0/8", false},     {"10.0.0.0/8", false},    {"100.64.0.0/10", false},
  {"127.0.0.0/8", true},    {"169.254.0.0/16", false}, {"172.16.0.0/12", false},
  {"192.0.0.0/24", false},  {"192.168.0.0/16", false}, {"198.18.0.0/15", false},
  {"224.0.0.0/4", false},   {"240.0.0.0/4", false},    {"::1/128", true},
  {"::/96", false},         {"fc00::/7", false},       {"fe80::/10", false},
  {"ff00::/8", false},      {"64:ff9b::/96", false},   {"2002::/16", false},
};

/* p NULL is the default policy: no extra networks, no loopback. */
static bool netpolicy__allows16(const netpolicy_t *p, const unsigned char a[16]) {
  for (size_t i = 0; p != NULL && i < p->n; i++)
    if (netpolicy__in(a, p->blocks[i].addr, p->blocks[i].bits))
      return true;
  for (size_t i = 0; i < KIPD_ARRAY_SIZE(netpolicy__special); i++) {
    netpolicy__block_t b;
    if (netpolicy__parse(netpolicy__special[i].cidr, strlen(netpolicy__special[i].cidr), &b) != 0)
      return false;
    if (netpolicy__in(a, b.addr, b.bits))
      return netpolicy__special[i].loopback && p != NULL && p->allow_loopback;
  }
  return true;
}

bool netpolicy_allows(const netpolicy_t *p, const struct sockaddr *sa) {
  unsigned char a[16];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    netpolicy__map4((const unsigned char *)&s4->sin_addr, a);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    memcpy(a, &s6->sin6_addr, 16);
  } else {
    return false;
  }
  return netpolicy__allows16(p, a);
}

int netpolicy_allows_text(const netpolicy_t *p, const char *text) {
  netpolicy__block_t b;
  if (text == NULL || netpolicy__parse(text, strlen(text), &b) != 0 || b.bits != 128 ||
      strchr(text, '/') != NULL)
    return -EINVAL;
  return netpolicy__allows16(p, b.addr) ? 1 : 0;
}
