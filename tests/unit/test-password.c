/* Argon2id hashing and the password policy (util/password). */
#include <string.h>

#include "tap.h"
#include "util/password.h"

int main(void) {
  /* Cheap parameters: the format and the checks, not the cost. */
  password_params_t cheap = {.t_cost = 1, .m_kib = 1024, .parallelism = 1};
  char hash[PASSWORD_ENCODED_MAX], hash2[PASSWORD_ENCODED_MAX];
  const char *pw = "korrekt hest batteri hæfteklamme";

  tap_ok(password_params_check(&cheap) == NULL, "cheap parameters are usable");
  password_params_t bad = {.t_cost = 0, .m_kib = 65536, .parallelism = 1};
  tap_ok(password_params_check(&bad) != NULL, "t=0 refused");
  bad = (password_params_t){.t_cost = 3, .m_kib = 512, .parallelism = 1};
  tap_ok(password_params_check(&bad) != NULL, "under 1 MiB refused");

  tap_is_int(password_hash(&cheap, pw, strlen(pw), hash), 0, "hash");
  tap_ok(strncmp(hash, "$argon2id$v=19$m=1024,t=1,p=1$", 30) == 0, "encoded Argon2id: %s", hash);
  tap_ok(strstr(hash, "hæfte") == NULL, "no password in the hash");
  tap_is_int(password_hash(&cheap, pw, strlen(pw), hash2), 0, "hash again");
  tap_ok(strcmp(hash, hash2) != 0, "a fresh salt each time");
  tap_is_int(password_verify(&cheap, hash, pw, strlen(pw)), 0, "the right password");
  tap_is_int(password_verify(&cheap, hash, "korrekt hest", 12), -EACCES, "a wrong password");
  tap_is_int(password_verify(&cheap, hash, pw, strlen(pw) - 1), -EACCES, "one byte short");
  tap_is_int(password_verify(&cheap, NULL, pw, strlen(pw)), -EACCES, "no hash: the dummy work, refused");
  tap_is_int(password_verify(&cheap, "$2b$10$bcrypt", pw, strlen(pw)), -EACCES, "not Argon2id: refused");
  password_params_t got;
  tap_ok(password_hash_params(hash, &got) && got.m_kib == 1024 && got.t_cost == 1 && got.parallelism == 1,
         "the cost read back from the hash");

  tap_ok(password_policy("elleve-tegn", 11) != NULL, "11 characters refused");
  tap_ok(password_policy("tolv-tegn-ok", 12) == NULL, "12 characters accepted");
  const char *danish = "æøåæøåæøåæøå";   /* 12 characters, 24 bytes */
  tap_ok(password_policy(danish, strlen(danish)) == NULL, "12 Danish letters accepted");
  tap_ok(password_policy(danish, strlen(danish) - 2) != NULL, "11 Danish letters refused");
  char big[1100];
  memset(big, 'x', sizeof(big));
  tap_ok(password_policy(big, 1024) == NULL, "1024 bytes accepted");
  tap_ok(password_policy(big, 1025) != NULL, "1025 bytes refused");
  tap_ok(password_policy("\xff\xfe-invalid-utf8", 16) != NULL, "invalid UTF-8 refused");
  tap_ok(password_policy("\xc0\xafoverlong-slash", 16) != NULL, "overlong encoding refused");
  tap_ok(password_policy("\xed\xa0\x80surrogate-half", 17) != NULL, "surrogate refused");
  tap_ok(password_policy("truncated-\xe2\x82", 12) != NULL, "truncated sequence refused");
  tap_ok(password_policy("emoji-\xf0\x9f\x94\x91-nøgle", 17) == NULL, "4-byte characters counted once");
  return tap_done();
}
