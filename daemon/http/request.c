/* http/request: request objects, path decoding and request ids. */
#include "http/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

http_request_t *http__request_new(const char *remote_addr) {
  http_request_t *req = calloc(1, sizeof(*req));
  if (req == NULL)
    return NULL;
  arena_init(&req->arena, HTTP__ARENA_CHUNK);
  req->body = "";
  if (remote_addr != NULL)
    snprintf(req->remote_addr, sizeof(req->remote_addr), "%s", remote_addr);
  return req;
}

void http__request_free(http_request_t *req) {
  if (req == NULL)
    return;
  arena_reset(&req->arena);
  free(req);
}

static int http__hex(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

int http__decode_path(arena_t *arena, const char *raw, size_t len, char **out) {
  char *dst = arena_alloc(arena, len + 1);
  if (dst == NULL)
    return -ENOMEM;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (raw[i] != '%') {
      dst[n++] = raw[i];
      continue;
    }
    if (i + 2 >= len)
      return -EINVAL;
    int hi = http__hex(raw[i + 1]);
    int lo = http__hex(raw[i + 2]);
    if (hi < 0 || lo < 0)
      return -EINVAL;
    char ch = (char)(hi * 16 + lo);
    if (ch == '\0')
      return -EINVAL;
    dst[n++] = ch;
    i += 2;
  }
  dst[n] = '\0';
  *out = dst;
  return 0;
}

bool http__request_id_ok(const char *s) {
  size_t n = 0;
  for (; s[n] != '\0'; n++) {
    char ch = s[n];
    bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    if (!ok || n >= 64)
      return false;
  }
  return n >= 1;
}

void http__uuid4(char out[37]) {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof(b)) {
    ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    got += (size_t)r;
  }
  if (got < sizeof(b)) {
    /* No entropy source: still unique enough for a log correlation id. */
    static uint64_t counter;
    uint64_t x = uv_hrtime() ^ ((uint64_t)(uintptr_t)out << 17) ^ ++counter;
    for (size_t i = 0; i < sizeof(b); i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      b[i] = (unsigned char)x;
    }
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
           b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

const char *http_request_header(const http_request_t *req, const char *name) {
  if (req == NULL || name == NULL)
    return NULL;
  for (size_t i = 0; i < req->n_headers; i++)
    if (strcasecmp(req->headers[i].name, name) == 0)
      return req->headers[i].value;
  return NULL;
}
