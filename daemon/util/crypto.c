#include "util/crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

int crypto_token_new(char out[CRYPTO_TOKEN_LEN + 1]) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char raw[33]; /* 32 random bytes + 1 pad byte for the last group */
  if (RAND_bytes(raw, 32) != 1)
    return -EIO;
  raw[32] = 0;
  memcpy(out, "kipd_", 5);
  char *p = out + 5;
  /* 32 bytes = 10 groups of 3 + 2 bytes -> 40 + 3 characters. */
  for (int i = 0; i < 30; i += 3) {
    unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
    *p++ = b64[(v >> 18) & 63];
    *p++ = b64[(v >> 12) & 63];
    *p++ = b64[(v >> 6) & 63];
    *p++ = b64[v & 63];
  }
  unsigned v = (unsigned)raw[30] << 16 | (unsigned)raw[31] << 8;
  *p++ = b64[(v >> 18) & 63];
  *p++ = b64[(v >> 12) & 63];
  *p++ = b64[(v >> 6) & 63];
  *p = '\0';
  OPENSSL_cleanse(raw, sizeof(raw));
  return 0;
}

int crypto_random_b64url(size_t n, char *out) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char raw[64];
  if (n == 0 || n > sizeof(raw) || RAND_bytes(raw, (int)n) != 1)
    return -EIO;
  char *p = out;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
    *p++ = b64[(v >> 18) & 63];
    *p++ = b64[(v >> 12) & 63];
    *p++ = b64[(v >> 6) & 63];
    *p++ = b64[v & 63];
  }
  if (n - i == 1) {
    unsigned v = (unsigned)raw[i] << 16;
    *p++ = b64[(v >> 18) & 63];
    *p++ = b64[(v >> 12) & 63];
  } else if (n - i == 2) {
    unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8;
    *p++ = b64[(v >> 18) & 63];
    *p++ = b64[(v >> 12) & 63];
    *p++ = b64[(v >> 6) & 63];
  }
  *p = '\0';
  OPENSSL_cleanse(raw, sizeof(raw));
  return 0;
}

int crypto_hmac_sha256_b64url(const void *key, size_t key_len, const char *msg, size_t msg_len,
                              char out[44]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  unsigned char b64[48];
  if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, msg_len, md, &mdlen) == NULL ||
      mdlen != 32)
    return -EIO;
  /* Base64 by OpenSSL (44 characters with one '='), then the URL alphabet
   * without padding. */
  int n = EVP_EncodeBlock(b64, md, 32);
  OPENSSL_cleanse(md, sizeof(md));
  if (n != 44)
    return -EIO;
  for (int i = 0; i < 43; i++)
    out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
  out[43] = '\0';
  OPENSSL_cleanse(b64, sizeof(b64));
  return 0;
}

int crypto_sha256_hex(const char *s, size_t len, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
    return -EIO;
  for (unsigned i = 0; i < 32; i++)
    snprintf(out + i * 2, 3, "%02x", md[i]);
  return 0;
}

int crypto_uuid_v4(char out[37]) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof(b)) != 1)
    return -EIO;
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
           b[14], b[15]);
  return 0;
}

bool crypto_equal(const void *a, const void *b, size_t n) {
  return CRYPTO_memcmp(a, b, n) == 0;
}
