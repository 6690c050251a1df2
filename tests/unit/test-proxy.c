/* app/proxy: the trusted-proxy list and the client behind X-Forwarded-For;
 * app/seen: the users behind credentials, for the access log. */
#include <stdio.h>
#include <string.h>

#include "app/proxy.h"
#include "app/seen.h"
#include "tap.h"

/* A request from peer with an optional X-Forwarded-For header. */
static void request(http_request_t *req, http_header_t *hdr, const char *peer, const char *xff) {
  memset(req, 0, sizeof(*req));
  arena_init(&req->arena, 1024);
  snprintf(req->remote_addr, sizeof(req->remote_addr), "%s", peer);
  if (xff != NULL) {
    *hdr = (http_header_t){"x-forwarded-for", xff};
    req->headers = hdr;
    req->n_headers = 1;
  }
}

static void test_parse(void) {
  proxy_list_t l;
  tap_is_int(proxy_list_parse(&l, NULL), 0, "no list");
  tap_is_int((long long)l.n, 0, "no proxies");
  tap_is_int(proxy_list_parse(&l, "10.0.0.5, ::1 ,2001:DB8::0:1"), 0, "three addresses");
  tap_is_int((long long)l.n, 3, "three proxies");
  tap_is_str(l.addrs[0], "10.0.0.5", "IPv4 kept");
  tap_is_str(l.addrs[1], "::1", "spaces trimmed");
  tap_is_str(l.addrs[2], "2001:db8::1", "IPv6 in canonical form");
  tap_is_int(proxy_list_parse(&l, "10.0.0.5,proxy.example"), -EINVAL, "a name is not an address");
  tap_is_int(proxy_list_parse(&l, "10.0.0.5,,10.0.0.6"), -EINVAL, "an empty entry");
  char many[PROXY_MAX * 16 + 32] = "";
  for (int i = 0; i <= PROXY_MAX; i++)
    snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s10.0.0.%d", i ? "," : "", i);
  tap_is_int(proxy_list_parse(&l, many), -EINVAL, "more than PROXY_MAX addresses");
}

static void test_client(void) {
  proxy_list_t l;
  http_request_t req;
  http_header_t hdr;
  tap_is_int(proxy_list_parse(&l, "10.0.0.5"), 0, "one proxy");

  request(&req, &hdr, "10.0.0.5", "198.51.100.7, 203.0.113.9");
  tap_is_str(proxy_client_addr(&l, &req), "203.0.113.9", "a trusted proxy: its last hop");
  arena_reset(&req.arena);

  request(&req, &hdr, "10.0.0.6", "203.0.113.9");
  tap_is_str(proxy_client_addr(&l, &req), "10.0.0.6", "an untrusted peer: the peer");
  arena_reset(&req.arena);

  request(&req, &hdr, "10.0.0.5", "203.0.113.9, not-an-ip");
  tap_is_str(proxy_client_addr(&l, &req), "10.0.0.5", "a last hop that is no address: the peer");
  arena_reset(&req.arena);

  request(&req, &hdr, "10.0.0.5", NULL);
  tap_is_str(proxy_client_addr(&l, &req), "10.0.0.5", "no header: the peer");
  arena_reset(&req.arena);

  proxy_list_t none;
  tap_is_int(proxy_list_parse(&none, ""), 0, "an empty list");
  request(&req, &hdr, "10.0.0.5", "203.0.113.9");
  tap_is_str(proxy_client_addr(&none, &req), "10.0.0.5", "no trusted proxies: the header is ignored");
  arena_reset(&req.arena);
}

static void test_seen(void) {
  static seen_t seen;
  const char *a = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  /* The same first 32 bits: the same slot. */
  const char *b = "01234567ffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
  tap_ok(seen_recall(&seen, a) == NULL, "nothing remembered yet");
  seen_remember(&seen, a, "11111111-1111-4111-8111-111111111111");
  tap_is_str(seen_recall(&seen, a), "11111111-1111-4111-8111-111111111111", "remembered");
  tap_ok(seen_recall(&seen, b) == NULL, "another credential in the same slot is not confused");
  seen_remember(&seen, b, "22222222-2222-4222-8222-222222222222");
  tap_ok(seen_recall(&seen, a) == NULL, "a newer credential takes the slot");
  tap_is_str(seen_recall(&seen, b), "22222222-2222-4222-8222-222222222222", "the newer one");
  seen_forget(&seen, a);
  tap_ok(seen_recall(&seen, b) != NULL, "forgetting another credential leaves the slot");
  seen_forget(&seen, b);
  tap_ok(seen_recall(&seen, b) == NULL, "forgotten");
  seen_remember(&seen, "", "33333333-3333-4333-8333-333333333333");
  tap_ok(seen_recall(&seen, "") == NULL, "an empty credential is never remembered");
}

int main(void) {
  test_parse();
  test_client();
  test_seen();
  return tap_done();
}
