/* CPR sealing: AES-256-GCM tokens bound to their plan, tamper detection,
 * the wrong key, another plan, the old (version 1) format, the blind index,
 * the keyring file, and decrypting tokens in JSON text. */
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "util/arena.h"
#include "util/cpr_crypt.h"

#define PLAN_A "0b6d3c1e-5f2a-4c8e-9a7b-1d2e3f4a5b6c"
#define PLAN_B "7f00aa11-22bb-4c33-8d44-55ee66ff7788"

static char *json_of(const char *token) {
  /* The token as PostgreSQL writes it in JSON: U+0001 as \u0001. */
  static char buf[256];
  snprintf(buf, sizeof(buf), "\\u0001%s", token + 1);
  return buf;
}

/* kip.cpr_bound as JSON: "<token>:<plan id>". */
static char *bound_json(const char *token, const char *plan_id) {
  static char buf[2][256];
  static int n;
  char *b = buf[n++ % 2];
  snprintf(b, 256, "\\u0001%s:%s", token + 1, plan_id);
  return b;
}

/* A version 1 token as kipd wrote it before migration 021, written here
 * with OpenSSL directly, independently of cpr_crypt.c: additional data
 * "kipd-cpr:1:<key id>", no plan. */
static int seal_v1(const cpr_key_t *k, const char *cpr, char out[CPR_TOKEN_MAX]) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char raw[39];
  char aad[64];
  int n = 0, aad_len = snprintf(aad, sizeof(aad), "kipd-cpr:1:%s", k->id);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ok = ctx != NULL && RAND_bytes(raw, 12) == 1 &&
           EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
           EVP_EncryptInit_ex(ctx, NULL, NULL, k->enc, raw) == 1 &&
           EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, aad_len) == 1 &&
           EVP_EncryptUpdate(ctx, raw + 12, &n, (const unsigned char *)cpr, 11) == 1 &&
           EVP_EncryptFinal_ex(ctx, raw + 12 + n, &n) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, raw + 23) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok)
    return -1;
  int o = snprintf(out, CPR_TOKEN_MAX, "%s%s:", CPR_TOKEN_PREFIX_V1, k->id);
  for (int i = 0; i < 39; i += 3) {
    unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
    out[o++] = b64[(v >> 18) & 63];
    out[o++] = b64[(v >> 12) & 63];
    out[o++] = b64[(v >> 6) & 63];
    out[o++] = b64[v & 63];
  }
  out[o] = '\0';
  return 0;
}

static void write_file(const char *path, const char *text, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd >= 0) {
    if (write(fd, text, strlen(text)) < 0)
      perror("write");
    fchmod(fd, mode);
    close(fd);
  }
}

int main(void) {
  cpr_keyring_t *kr = NULL, *other = NULL;
  tap_ok(cpr_keyring_new(&kr) == 0 && kr->n == 1, "a new keyring has one key");
  tap_ok(cpr_keyring_new(&other) == 0, "a second, unrelated keyring");
  const cpr_key_t *k = cpr_keyring_current(kr);
  tap_is_int((long long)strlen(k->id), CPR_KEY_ID_LEN, "key id: 16 hex characters");

  /* seal and open */
  char t1[CPR_TOKEN_MAX], t2[CPR_TOKEN_MAX], out[12];
  tap_ok(cpr_seal(k, PLAN_A, "010190-1234", t1) == 0, "seal");
  tap_ok(strncmp(t1, CPR_TOKEN_PREFIX, strlen(CPR_TOKEN_PREFIX)) == 0, "token starts with U+0001 and its version");
  tap_ok(strstr(t1, k->id) != NULL, "token names its key");
  tap_ok(strstr(t1, "010190") == NULL && strstr(t1, "1234") == NULL, "no digits of the number in the token");
  tap_is_int((long long)strlen(t1), 81, "a token is 81 bytes");
  tap_ok(cpr_open(kr, PLAN_A, t1, strlen(t1), out) == 0, "open");
  tap_is_str(out, "010190-1234", "round trip");
  tap_ok(cpr_seal(k, PLAN_A, "010190-1234", t2) == 0 && strcmp(t1, t2) != 0, "a fresh nonce per seal");
  tap_ok(cpr_seal(k, PLAN_A, "0101901234", t2) == -EINVAL, "only normalised numbers are sealed");
  tap_ok(cpr_seal(k, NULL, "010190-1234", t2) == -EINVAL, "no plan, no token");
  tap_ok(cpr_seal(k, "0B6D3C1E-5F2A-4C8E-9A7B-1D2E3F4A5B6C", "010190-1234", t2) == -EINVAL,
         "a plan id as PostgreSQL writes it (lower case)");
  tap_ok(cpr_seal(k, "0b6d3c1e5f2a4c8e9a7b1d2e3f4a5b6c", "010190-1234", t2) == -EINVAL,
         "a plan id with its hyphens");
  tap_is_int(cpr_token_version(t1, strlen(t1)), 2, "a new token is version 2");

  /* bound to its plan: another plan id does not open it */
  tap_ok(cpr_open(kr, PLAN_B, t1, strlen(t1), out) == -EBADMSG, "a token copied to another plan fails");
  char plan_c[] = PLAN_A;
  plan_c[35] = plan_c[35] == 'c' ? 'd' : 'c';
  tap_ok(cpr_open(kr, plan_c, t1, strlen(t1), out) == -EBADMSG, "one character of the plan id changed fails");
  tap_ok(cpr_open(kr, NULL, t1, strlen(t1), out) == -EBADMSG, "no plan id fails");
  tap_ok(cpr_open_v1(kr, t1, strlen(t1), out) == -EPROTO, "a version 2 token is not opened as version 1");

  /* version 1: opened only by cpr_open_v1, for re-sealing */
  char v1tok[CPR_TOKEN_MAX];
  tap_ok(seal_v1(k, "311299-4321", v1tok) == 0 && strlen(v1tok) == 81, "a version 1 token");
  tap_is_int(cpr_token_version(v1tok, strlen(v1tok)), 1, "its version is 1");
  tap_ok(cpr_open_v1(kr, v1tok, strlen(v1tok), out) == 0 && strcmp(out, "311299-4321") == 0,
         "cpr_open_v1 opens it (re-sealing)");
  tap_ok(cpr_open(kr, PLAN_A, v1tok, strlen(v1tok), out) == -EPROTO, "cpr_open refuses version 1");
  char v1as2[CPR_TOKEN_MAX];
  memcpy(v1as2, v1tok, sizeof(v1as2));
  v1as2[10] = '2';
  tap_ok(cpr_open(kr, PLAN_A, v1as2, strlen(v1as2), out) == -EBADMSG,
         "a version 1 token relabelled as version 2 fails (the additional data differs)");
  char id[CPR_KEY_ID_LEN + 1];
  tap_ok(cpr_token_key_id(t1, id) == 0 && strcmp(id, k->id) == 0, "key id of a token");
  tap_ok(cpr_token_key_id(v1tok, id) == 0 && strcmp(id, k->id) == 0, "key id of a version 1 token");
  tap_ok(cpr_token_key_id("kipd-cpr:1:0123456789abcdef:x", id) == -EINVAL, "no key id without the prefix");

  /* tampering: every byte of the payload, the key id and the version */
  size_t len = strlen(t1);
  int caught = 0, total = 0;
  for (size_t i = strlen(CPR_TOKEN_PREFIX) + CPR_KEY_ID_LEN + 1; i < len; i++) {
    char bad[CPR_TOKEN_MAX];
    memcpy(bad, t1, len + 1);
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    total++;
    if (cpr_open(kr, PLAN_A, bad, len, out) != 0)
      caught++;
  }
  tap_is_int(caught, total, "a changed character anywhere in the sealed part fails");
  char bad[CPR_TOKEN_MAX];
  memcpy(bad, t1, len + 1);
  bad[strlen(CPR_TOKEN_PREFIX) - 2] = '3';
  tap_ok(cpr_open(kr, PLAN_A, bad, len, out) == -EBADMSG, "an unknown version fails");
  bad[strlen(CPR_TOKEN_PREFIX) - 2] = '1';
  tap_ok(cpr_open_v1(kr, bad, len, out) == -EBADMSG, "a version 2 token relabelled as version 1 fails");
  tap_ok(cpr_open(kr, PLAN_A, t1, len - 1, out) == -EBADMSG, "a truncated token fails");
  tap_ok(cpr_open(kr, PLAN_A, t1 + 1, len - 1, out) == -EBADMSG, "without U+0001 it is no token");
  tap_ok(cpr_open(other, PLAN_A, t1, len, out) == -ENOENT, "another keyring lacks the key");

  /* the same id with another key (a forged key file): the tag fails */
  cpr_key_t saved = other->keys[0];
  memcpy(other->keys[0].id, k->id, sizeof(k->id));
  tap_ok(cpr_open(other, PLAN_A, t1, len, out) == -EBADMSG, "the wrong key under the right id fails");
  /* and a token of the other key relabelled with our key id fails too (AAD) */
  char t3[CPR_TOKEN_MAX];
  other->keys[0] = saved;
  tap_ok(cpr_seal(&other->keys[0], PLAN_A, "020280-5678", t3) == 0, "seal under the other key");
  memcpy(t3 + strlen(CPR_TOKEN_PREFIX), k->id, CPR_KEY_ID_LEN);
  tap_ok(cpr_open(kr, PLAN_A, t3, strlen(t3), out) == -EBADMSG, "a relabelled token fails");

  /* blind index */
  char i1[CPR_INDEX_LEN + 1], i2[CPR_INDEX_LEN + 1], i3[CPR_INDEX_LEN + 1];
  tap_ok(cpr_blind_index(k, "010190-1234", i1) == 0 && strlen(i1) == 64, "blind index: 64 hex");
  tap_ok(cpr_blind_index(k, "010190-1234", i2) == 0 && strcmp(i1, i2) == 0, "deterministic");
  tap_ok(cpr_blind_index(k, "010190-1235", i2) == 0 && strcmp(i1, i2) != 0, "another number, another index");
  tap_ok(cpr_blind_index(&other->keys[0], "010190-1234", i3) == 0 && strcmp(i1, i3) != 0,
         "another MAC key, another index");
  char fp1[CPR_INDEX_LEN + 1], fp2[CPR_INDEX_LEN + 1];
  tap_ok(cpr_key_fingerprint(k, fp1) == 0 && cpr_key_fingerprint(&other->keys[0], fp2) == 0 &&
             strcmp(fp1, fp2) != 0 && strcmp(fp1, i1) != 0,
         "fingerprints differ per key");

  /* JSON text */
  arena_t arena;
  arena_init(&arena, 4096);
  char doc[1024], *res = NULL;
  size_t res_len = 0;
  int failed = -1;
  snprintf(doc, sizeof(doc), "{\"cpr\":\"%s\",\"reason\":\"x\",\"n\":[\"%s\"]}", bound_json(t1, PLAN_A),
           bound_json(t2, PLAN_A));
  tap_ok(cpr_json_has_token(doc, strlen(doc)), "a token is seen in JSON");
  tap_ok(cpr_json_reveal(kr, doc, strlen(doc), &arena, &res, &res_len, &failed) == 0, "reveal");
  tap_is_str(res, "{\"cpr\":\"010190-1234\",\"reason\":\"x\",\"n\":[\"010190-1234\"]}", "both tokens decrypted");
  tap_is_int(failed, 0, "none failed");
  tap_is_int((long long)res_len, (long long)strlen(res), "length");

  memcpy(bad, t1, len + 1);
  bad[len - 3] = bad[len - 3] == 'A' ? 'B' : 'A';
  snprintf(doc, sizeof(doc), "{\"cpr\":\"%s\"}", bound_json(bad, PLAN_A));
  tap_ok(cpr_json_reveal(kr, doc, strlen(doc), &arena, &res, &res_len, &failed) == 0, "reveal a bad token");
  tap_is_str(res, "{\"cpr\":null}", "a token that fails becomes null");
  tap_is_int(failed, 1, "and is counted");

  /* What only the database could hold, as whole strings: each becomes
   * null, never text and never another plan's number. */
  const char *nulls[4];
  char n0[320], n1[320], n2[320], n3[320];
  snprintf(n0, sizeof(n0), "{\"cpr\":\"%s\"}", bound_json(t1, PLAN_B));   /* copied to plan B */
  snprintf(n1, sizeof(n1), "{\"cpr\":\"%s\"}", json_of(t1));              /* no plan id */
  snprintf(n2, sizeof(n2), "{\"cpr\":\"%s\"}", bound_json(v1tok, PLAN_A)); /* version 1 */
  snprintf(n3, sizeof(n3), "{\"cpr\":\"%s\"}", json_of(v1tok));            /* version 1, as before 021 */
  nulls[0] = n0, nulls[1] = n1, nulls[2] = n2, nulls[3] = n3;
  for (int i = 0; i < 4; i++)
    tap_ok(cpr_json_reveal(kr, nulls[i], strlen(nulls[i]), &arena, &res, &res_len, &failed) == 0 &&
               strcmp(res, "{\"cpr\":null}") == 0 && failed == 1,
           "refused and counted: null (%d)", i);

  /* tokens inside longer strings, or with an escaped quote, stay text */
  const char *verbatim[4];
  char v0[320], v1[320], v2[320], v3[320];
  snprintf(v0, sizeof(v0), "{\"r\":\"a%s\"}", bound_json(t1, PLAN_A));
  snprintf(v1, sizeof(v1), "{\"r\":\"%s b\"}", bound_json(t1, PLAN_A));
  snprintf(v2, sizeof(v2), "{\"r\":\"\\\"%s\\\"\"}", bound_json(t1, PLAN_A));
  snprintf(v3, sizeof(v3), "{\"r\":\"\\\\%s\"}", bound_json(t1, PLAN_A) + 1);
  verbatim[0] = v0, verbatim[1] = v1, verbatim[2] = v2, verbatim[3] = v3;
  for (int i = 0; i < 4; i++) {
    tap_ok(cpr_json_reveal(kr, verbatim[i], strlen(verbatim[i]), &arena, &res, &res_len, &failed) == 0 &&
               strcmp(res, verbatim[i]) == 0 && failed == 0,
           "not a whole string: copied verbatim (%d)", i);
  }
  const char *plain = "{\"a\":\"kipd-cpr:1:\"}";
  tap_ok(!cpr_json_has_token(plain, strlen(plain)), "no U+0001, no token");
  arena_reset(&arena);

  /* the keyring file */
  char dir[] = "/tmp/kipd-test-cpr-XXXXXX";
  tap_ok(mkdtemp(dir) != NULL, "temp folder");
  char path[256], why[300];
  snprintf(path, sizeof(path), "%s/cpr.key", dir);
  tap_ok(cpr_keyring_save(kr, path, true, why, sizeof(why)) == 0, "save exclusive");
  struct stat st;
  tap_ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the key file is 0600");
  tap_ok(cpr_keyring_save(other, path, true, why, sizeof(why)) == -EEXIST, "exclusive save never replaces");
  cpr_keyring_t *loaded = NULL;
  tap_ok(cpr_keyring_load(path, &loaded, why, sizeof(why)) == 0, "load");
  tap_ok(loaded != NULL && cpr_open(loaded, PLAN_A, t1, len, out) == 0 && strcmp(out, "010190-1234") == 0,
         "the loaded keyring opens the token");
  const cpr_key_t *added = NULL;
  tap_ok(cpr_keyring_add(loaded, &added) == 0 && loaded->n == 2, "add a key");
  char added_id[CPR_KEY_ID_LEN + 1];
  snprintf(added_id, sizeof(added_id), "%s", added->id);
  tap_ok(cpr_keyring_set_current(loaded, added_id) == 0, "make it current");
  tap_ok(cpr_keyring_save(loaded, path, false, why, sizeof(why)) == 0, "rewrite");
  cpr_keyring_free(loaded);
  loaded = NULL;
  tap_ok(cpr_keyring_load(path, &loaded, why, sizeof(why)) == 0 && loaded->n == 2 &&
             strcmp(cpr_keyring_current(loaded)->id, added_id) == 0,
         "both keys and the current one survive");
  cpr_keyring_keep_current(loaded);
  tap_ok(loaded->n == 1 && cpr_open(loaded, PLAN_A, t1, len, out) == -ENOENT, "keep_current drops the old key");
  cpr_keyring_free(loaded);
  loaded = NULL;

  chmod(path, 0640);
  tap_ok(cpr_keyring_load(path, &loaded, why, sizeof(why)) == -EPERM && strstr(why, path) != NULL,
         "group-readable: refused, naming the file");
  unlink(path);
  tap_ok(cpr_keyring_load(path, &loaded, why, sizeof(why)) == -ENOENT, "missing: -ENOENT");
  write_file(path, "{\"version\":1,\"current\":\"x\",\"keys\":[]}", 0600);
  tap_ok(cpr_keyring_load(path, &loaded, why, sizeof(why)) == -EINVAL, "no keys: refused");
  write_file(path,
             "{\"version\":1,\"current\":\"0123456789abcdef\",\"keys\":[{\"id\":\"0123456789abcdef\","
             "\"enc\":\"c2hvcnQ=\",\"mac\":\"c2hvcnQ=\"}]}",
             0600);
  tap_ok(cpr_keyring_load(path, &loaded, why, sizeof(why)) == -EINVAL && strstr(why, "c2hvcnQ") == NULL,
         "short keys: refused, without echoing them");
  write_file(path, "not json", 0600);
  tap_ok(cpr_keyring_load(path, &loaded, why, sizeof(why)) == -EINVAL, "not JSON: refused");
  unlink(path);
  rmdir(dir);

  cpr_keyring_free(kr);
  cpr_keyring_free(other);
  return tap_done();
}
