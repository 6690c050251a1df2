#include "app/webhook_sign.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int webhook_sign(const char *secret, int64_t t, const char *body, size_t len,
                 char out[WEBHOOK_SIGN_HEADER_LEN]) {
  char stamp[24];
  int n = snprintf(stamp, sizeof(stamp), "%" PRId64, t);
  if (n < 0 || (size_t)n >= sizeof(stamp))
    return -EINVAL;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned mac_len = 0;
  EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *mctx = alg != NULL ? EVP_MAC_CTX_new(alg) : NULL;
  int rc = -ENOMEM;
  if (mctx == NULL)
    goto done;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_END};
  size_t got = 0;
  rc = -EINVAL;
  if (EVP_MAC_init(mctx, (const unsigned char *)secret, strlen(secret), params) != 1 ||
      EVP_MAC_update(mctx, (const unsigned char *)stamp, (size_t)n) != 1 ||
      EVP_MAC_update(mctx, (const unsigned char *)".", 1) != 1 ||
      EVP_MAC_update(mctx, (const unsigned char *)body, len) != 1 ||
      EVP_MAC_final(mctx, mac, &got, sizeof(mac)) != 1)
    goto done;
  mac_len = (unsigned)got;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned i = 0; i < mac_len; i++)
    snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  n = snprintf(out, WEBHOOK_SIGN_HEADER_LEN, "t=%s,v1=%s", stamp, hex);
  rc = n > 0 && n < WEBHOOK_SIGN_HEADER_LEN ? 0 : -EINVAL;
done:
  EVP_MAC_CTX_free(mctx);
  EVP_MAC_free(alg);
  return rc;
}

/* True for an IP literal in the loopback blocks. */
static bool webhook_sign__loopback(const char *host) {
  return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

int webhook_sign_check_url(const netpolicy_t *net, bool allow_loopback_http, const char *url,
                           const char **reason, const char **code) {
  *code = "invalid_url";
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
  int rc = -EINVAL;
  if (u == NULL) {
    *reason = "could not be read";
    return -ENOMEM;
  }
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
    *reason = "must be an absolute https URL";
    goto done;
  }
  if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
      curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
    *reason = "must not hold a user name or password";
    goto done;
  }
  /* An IPv6 literal comes back in brackets. */
  char literal[64] = "";
  size_t hl = strlen(host);
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof(literal)) {
    memcpy(literal, host + 1, hl - 2);
    literal[hl - 2] = '\0';
    char *zone = strchr(literal, '%');
    if (zone != NULL)
      *zone = '\0';
  } else if (hl < sizeof(literal)) {
    memcpy(literal, host, hl + 1);
  }
  int allowed = netpolicy_allows_text(net, literal);  /* -EINVAL: a name, checked when delivering */
  if (strcasecmp(scheme, "https") != 0 &&
      !(strcasecmp(scheme, "http") == 0 && allow_loopback_http && allowed == 1 &&
        webhook_sign__loopback(literal))) {
    *reason = "must be an https URL";
    goto done;
  }
  if (allowed == 0) {
    *code = "url_not_allowed";
    *reason = "names a private, loopback, link-local or multicast address that kipd may not reach";
    goto done;
  }
  rc = 0;
done:
  curl_free(scheme);
  curl_free(host);
  curl_free(user);
  curl_free(password);
  curl_url_cleanup(u);
  return rc;
}
