/* webhook_sign: how a webhook delivery is signed, and which URLs a
 * subscription may name.
 *
 * The signature header is
 *   X-KIP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<body>">
 * keyed by the subscription's secret (OpenSSL's HMAC). A receiver
 * recomputes it over the raw body it got and compares in constant time,
 * and refuses a t too far from its own clock (docs/webhooks.md). */
#ifndef KIPD_APP_WEBHOOK_SIGN_H
#define KIPD_APP_WEBHOOK_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/netpolicy.h"

#define WEBHOOK_SIGN_HEADER_LEN 128

/* The header's value ("t=...,v1=...") into out. secret and body borrowed. */
int webhook_sign(const char *secret, int64_t t, const char *body, size_t len,
                 char out[WEBHOOK_SIGN_HEADER_LEN]) KIPD_MUST_CHECK;

/* A subscription's URL, checked when it is made: an absolute https URL
 * (http only to a loopback address, and only with allow_loopback_http),
 * without a user name or password, whose host, when an IP literal, the
 * policy net allows. Names are resolved only when delivering, where the
 * resolved address is checked again (http/client.h). Returns 0, or -EINVAL
 * with a static reason and error code (invalid_url, url_not_allowed). */
int webhook_sign_check_url(const netpolicy_t *net, bool allow_loopback_http, const char *url,
                           const char **reason, const char **code) KIPD_MUST_CHECK;

#endif
