#include "util/password.h"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#define PASSWORD__SALT_LEN 16
#define PASSWORD__HASH_LEN 32

const char *password_params_check(const password_params_t *params) {
  if (params->t_cost < 1 || params->t_cost > 100)
    return "argon2-t must be 1..100";
  if (params->parallelism < 1 || params->parallelism > 16)
    return "argon2-p must be 1..16";
  if (params->m_kib < 8 * params->parallelism || params->m_kib < 1024 || params->m_kib > 4u * 1024 * 1024)
    return "argon2-m-kib must be 1024..4194304 (and at least 8 per lane)";
  return NULL;
}

/* Counts the code points of valid UTF-8 (no overlongs, no surrogates);
 * -1 when s is not valid UTF-8. */
static long password__utf8_chars(const unsigned char *s, size_t len) {
  long n = 0;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t more;
    unsigned cp;
    if (c < 0x80) {
      i++;
      n++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      more = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      more = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      more = 3;
      cp = c & 0x07;
    } else {
      return -1;
    }
    if (len - i <= more)
      return -1;
    for (size_t k = 1; k <= more; k++) {
      unsigned cc = s[i + k];
      if ((cc & 0xc0) != 0x80)
        return -1;
      cp = cp << 6 | (cc & 0x3f);
    }
    if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
      return -1;
    i += more + 1;
    n++;
  }
  return n;
}

const char *password_policy(const char *s, size_t len) {
  if (len > PASSWORD_MAX_BYTES)
    return "must be at most 1024 bytes";
  long chars = password__utf8_chars((const unsigned char *)s, len);
  if (chars < 0)
    return "must be valid UTF-8";
  if (chars < PASSWORD_MIN_CHARS)
    return "must be at least 12 characters";
  return NULL;
}

int password_hash(const password_params_t *params, const char *pwd, size_t len,
                  char out[PASSWORD_ENCODED_MAX]) {
  unsigned char salt[PASSWORD__SALT_LEN];
  if (RAND_bytes(salt, sizeof(salt)) != 1)
    return -EIO;
  size_t need = argon2_encodedlen(params->t_cost, params->m_kib, params->parallelism,
                                  PASSWORD__SALT_LEN, PASSWORD__HASH_LEN, Argon2_id);
  if (need > PASSWORD_ENCODED_MAX)
    return -EINVAL;
  int rc = argon2id_hash_encoded(params->t_cost, params->m_kib, params->parallelism, pwd, len, salt,
                                 sizeof(salt), PASSWORD__HASH_LEN, out, PASSWORD_ENCODED_MAX);
  if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
    return -ENOMEM;
  return rc == ARGON2_OK ? 0 : -EIO;
}

bool password_hash_params(const char *encoded, password_params_t *out) {
  unsigned m, t, p;
  int used = 0;
  if (encoded == NULL ||
      sscanf(encoded, "$argon2id$v=19$m=%u,t=%u,p=%u$%n", &m, &t, &p, &used) != 3 || used == 0)
    return false;
  out->m_kib = m;
  out->t_cost = t;
  out->parallelism = p;
  return true;
}

int password_verify(const password_params_t *params, const char *encoded, const char *pwd,
                    size_t len) {
  password_params_t stored;
  if (encoded == NULL || !password_hash_params(encoded, &stored)) {
    /* The same work as a real check, with nothing to match. */
    char dummy[PASSWORD_ENCODED_MAX];
    if (password_hash(params, pwd, len, dummy) == 0)
      OPENSSL_cleanse(dummy, sizeof(dummy));
    return -EACCES;
  }
  return argon2id_verify(encoded, pwd, len) == ARGON2_OK ? 0 : -EACCES;
}
