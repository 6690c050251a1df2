/* crypto: thin wrappers over OpenSSL for tokens. No primitive is written
 * here; OpenSSL does the work. */
#ifndef KIPD_UTIL_CRYPTO_H
#define KIPD_UTIL_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define CRYPTO_TOKEN_LEN 48  /* "kipd_" + 43 base64url chars */

/* Generate a new bearer token from 256 random bits (RAND_bytes):
 * "kipd_" + base64url without padding. out must hold CRYPTO_TOKEN_LEN + 1. */
int crypto_token_new(char out[CRYPTO_TOKEN_LEN + 1]) KIPD_MUST_CHECK;

/* n random bytes (RAND_bytes) as base64url without padding into out, which
 * must hold ceil(4 * n / 3) + 1 bytes: 32 bytes give 43 characters and the NUL. */
int crypto_random_b64url(size_t n, char *out) KIPD_MUST_CHECK;

/* HMAC-SHA256(key, msg) (OpenSSL) as 43 base64url characters without
 * padding + NUL. */
int crypto_hmac_sha256_b64url(const void *key, size_t key_len, const char *msg, size_t msg_len,
                              char out[44]) KIPD_MUST_CHECK;

/* SHA-256 of s as 64 lower-case hex characters + NUL. */
int crypto_sha256_hex(const char *s, size_t len, char out[65]) KIPD_MUST_CHECK;

/* a == b over n bytes, in time that does not depend on where they differ
 * (CRYPTO_memcmp). */
bool crypto_equal(const void *a, const void *b, size_t n);

/* A random UUID v4 string (37 bytes with NUL). */
int crypto_uuid_v4(char out[37]) KIPD_MUST_CHECK;

#endif
