/* password: Argon2id hashing and the password policy, over libargon2.
 *
 * Every function here is synchronous and pure CPU (tens of milliseconds at
 * the default cost): call password_hash() and password_verify() only off the
 * event loop, on libuv's threadpool (app/kreq_work.h kreq_work_queue()). Nothing
 * here logs. No primitive is written here; libargon2 does the work. */
#ifndef KIPD_UTIL_PASSWORD_H
#define KIPD_UTIL_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define PASSWORD_MIN_CHARS 12     /* Unicode code points */
#define PASSWORD_MAX_BYTES 1024   /* UTF-8 bytes */
#define PASSWORD_ENCODED_MAX 256  /* "$argon2id$v=19$m=...,t=...,p=...$salt$hash" + NUL */

/* Argon2id cost: t passes over m_kib KiB of memory with p lanes. */
typedef struct password_params_s {
  uint32_t t_cost;     /* 3 */
  uint32_t m_kib;      /* 65536 (64 MiB) */
  uint32_t parallelism;/* 1 */
} password_params_t;

/* NULL when params are usable, else a static message. */
const char *password_params_check(const password_params_t *params);

/* The policy for a new password (s is borrowed, len bytes): at least
 * PASSWORD_MIN_CHARS characters, at most PASSWORD_MAX_BYTES bytes, valid
 * UTF-8. Returns NULL when it is acceptable, else a static message. */
const char *password_policy(const char *s, size_t len);

/* Hash pwd (len bytes) with a fresh 16-byte random salt into out
 * ("$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>", NUL-terminated).
 * Returns 0, -EIO (no randomness or libargon2 failed) or -ENOMEM. */
int password_hash(const password_params_t *params, const char *pwd, size_t len,
                  char out[PASSWORD_ENCODED_MAX]) KIPD_MUST_CHECK;

/* Check pwd against an encoded Argon2id hash. encoded NULL (or not an
 * Argon2id hash) runs the same work against a dummy hash made with params,
 * so that an unknown user takes as long as a known one, and answers
 * -EACCES. Returns 0 when it matches, else -EACCES. */
int password_verify(const password_params_t *params, const char *encoded, const char *pwd,
                    size_t len) KIPD_MUST_CHECK;

/* The encoded hash's cost, parsed: false when encoded is not Argon2id. */
bool password_hash_params(const char *encoded, password_params_t *out);

#endif
