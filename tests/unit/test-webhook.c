/* Webhooks without a network: the outbound address policy (util/netpolicy),
 * the X-KIP-Signature value and the subscription URL check
 * (app/webhook_sign). The signature is compared with one Python's hmac
 * module computed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "app/webhook_sign.h"
#include "tap.h"
#include "util/netpolicy.h"

static bool allows4(const netpolicy_t *p, const char *ip) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  inet_pton(AF_INET, ip, &sa.sin_addr);
  return netpolicy_allows(p, (const struct sockaddr *)&sa);
}

static bool allows6(const netpolicy_t *p, const char *ip) {
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
  inet_pton(AF_INET6, ip, &sa.sin6_addr);
  return netpolicy_allows(p, (const struct sockaddr *)&sa);
}

static const char *url_code(const netpolicy_t *p, bool loopback_http, const char *url) {
  const char *reason = NULL, *code = NULL;
  return webhook_sign_check_url(p, loopback_http, url, &reason, &code) == 0 ? "ok" : code;
}

int main(void) {
  char err[128] = "";
  netpolicy_t *strict = NULL, *open = NULL, *bad = NULL;
  tap_is_int(netpolicy_new(NULL, false, &strict, err, sizeof(err)), 0, "the default policy");
  tap_is_int(netpolicy_new("10.20.0.0/16, fd00:1::/32,192.168.7.7", true, &open, err, sizeof(err)), 0,
             "an allow list and loopback");
  tap_is_int(netpolicy_new("10.0.0.0/33", false, &bad, err, sizeof(err)), -EINVAL, "a /33 is refused");
  tap_ok(strstr(err, "10.0.0.0/33") != NULL, "the error names the block: %s", err);
  tap_is_int(netpolicy_new("nonsense", false, &bad, err, sizeof(err)), -EINVAL, "not an address");

  const char *refused4[] = {"127.0.0.1", "127.9.9.9", "10.0.0.1", "172.16.0.1", "172.31.255.255",
                            "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1", "224.0.0.1",
                            "239.255.255.250", "255.255.255.255", NULL};
  for (int i = 0; refused4[i]; i++)
    tap_ok(!allows4(strict, refused4[i]), "refused by default: %s", refused4[i]);
  const char *public4[] = {"8.8.8.8", "172.32.0.1", "193.163.102.1", "100.128.0.1", NULL};
  for (int i = 0; public4[i]; i++)
    tap_ok(allows4(strict, public4[i]), "public: %s", public4[i]);
  const char *refused6[] = {"::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1", "::ffff:10.0.0.1",
                            "::ffff:127.0.0.1", "64:ff9b::a00:1", NULL};
  for (int i = 0; refused6[i]; i++)
    tap_ok(!allows6(strict, refused6[i]), "refused by default: %s", refused6[i]);
  tap_ok(allows6(strict, "2a00:1450:4001:80b::200e"), "a public IPv6 address");
  tap_ok(allows6(strict, "::ffff:8.8.8.8"), "a mapped public IPv4 address");

  tap_ok(allows4(open, "10.20.3.4"), "allowed block");
  tap_ok(!allows4(open, "10.21.3.4"), "next to the allowed block");
  tap_ok(allows4(open, "192.168.7.7") && !allows4(open, "192.168.7.8"), "a single allowed address");
  tap_ok(allows6(open, "fd00:1::5") && !allows6(open, "fd00:2::5"), "allowed IPv6 block");
  tap_ok(allows4(open, "127.0.0.1") && allows6(open, "::1"), "loopback when allowed");
  tap_ok(!allows4(open, "169.254.169.254"), "link-local still refused");
  tap_is_int(netpolicy_allows_text(strict, "10.1.1.1"), 0, "literal refused");
  tap_is_int(netpolicy_allows_text(strict, "8.8.8.8"), 1, "literal allowed");
  tap_is_int(netpolicy_allows_text(strict, "example.com"), -EINVAL, "a name is not a literal");
  /* No policy at all (a library user that set none) is the default policy;
   * the fuzzer found a NULL dereference here. */
  tap_is_int(netpolicy_allows_text(NULL, "10.1.2.3"), 0, "no policy: private refused");
  tap_is_int(netpolicy_allows_text(NULL, "fe80::1"), 0, "no policy: link-local refused");
  tap_is_int(netpolicy_allows_text(NULL, "127.0.0.1"), 0, "no policy: loopback refused");
  tap_is_int(netpolicy_allows_text(NULL, "8.8.8.8"), 1, "no policy: public allowed");

  char sig[WEBHOOK_SIGN_HEADER_LEN];
  tap_is_int(webhook_sign("whsec_test", 1700000000, "{\"id\":\"1\"}", 10, sig), 0, "sign");
  tap_is_str(sig, "t=1700000000,v1=11bf4466ea17c3df3fd743af0b435368e16b7a05eb8eced85e8c4670767bdec5",
             "HMAC-SHA256 over t.body, as Python computes it");

  tap_is_str(url_code(strict, false, "https://example.com/hook"), "ok", "https name");
  tap_is_str(url_code(strict, false, "https://8.8.8.8:8443/x"), "ok", "https public literal");
  tap_is_str(url_code(strict, false, "http://example.com/hook"), "invalid_url", "http");
  tap_is_str(url_code(strict, false, "https://u:p@example.com/"), "invalid_url", "credentials");
  tap_is_str(url_code(strict, false, "example.com/hook"), "invalid_url", "not absolute");
  tap_is_str(url_code(strict, false, "https://10.0.0.5/"), "url_not_allowed", "private literal");
  tap_is_str(url_code(strict, false, "https://[fe80::1%25eth0]/"), "url_not_allowed", "link-local with zone");
  tap_is_str(url_code(strict, true, "https://127.0.0.1:9/"), "url_not_allowed", "loopback refused by the policy");
  tap_is_str(url_code(open, true, "http://127.0.0.1:9/"), "ok", "http to loopback in test mode");
  tap_is_str(url_code(open, true, "http://10.20.0.1/"), "invalid_url", "http only to loopback");
  tap_is_str(url_code(open, false, "http://127.0.0.1/"), "invalid_url", "http without the flag");

  netpolicy_free(strict);
  netpolicy_free(open);
  return tap_done();
}
