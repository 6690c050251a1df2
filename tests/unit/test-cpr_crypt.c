/* CPR sealing: AES-256-GCM tokens, tamper detection, the wrong key, the
 * blind index, the keyring file, and decrypting tokens in JSON text. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "util/arena.h"
#include "util/cpr_crypt.h"

static char *json_of(const char *token) {
  /* The token as PostgreSQL writes it in JSON: U+0001 as \u0001. */
  static char buf[256];
  snprintf(buf, sizeof(buf), "\\u0001%s", token + 1);
  return buf;
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
  tap_ok(cpr_seal(k, "010190-1234", t1) == 0, "seal");
  tap_ok(strncmp(t1, CPR_TOKEN_PREFIX, strlen(CPR_TOKEN_PREFIX)) == 0, "token starts with U+0001 and its version");
  tap_ok(strstr(t1, k->id) != NULL, "token names its key");
  tap_ok(strstr(t1, "010190") == NULL && strstr(t1, "1234") == NULL, "no digits of the number in the token");
  tap_ok(cpr_open(kr, t1, strlen(t1), out) == 0, "open");
  tap_is_str(out, "010190-1234", "round trip");
  tap_ok(cpr_seal(k, "010190-1234", t2) == 0 && strcmp(t1, t2) != 0, "a fresh nonce per seal");
  tap_ok(cpr_seal(k, "0101901234", t2) == -EINVAL, "only normalised numbers are sealed");
  char id[CPR_KEY_ID_LEN + 1];
  tap_ok(cpr_token_key_id(t1, id) == 0 && strcmp(id, k->id) == 0, "key id of a token");
  tap_ok(cpr_token_key_id("kipd-cpr:1:0123456789abcdef:x", id) == -EINVAL, "no key id without the prefix");

  /* tampering: every byte of the payload, the key id and the version */
  size_t len = strlen(t1);
  int caught = 0, total = 0;
  for (size_t i = strlen(CPR_TOKEN_PREFIX) + CPR_KEY_ID_LEN + 1; i < len; i++) {
    char bad[CPR_TOKEN_MAX];
    memcpy(bad, t1, len + 1);
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    total++;
    if (cpr_open(kr, bad, len, out) != 0)
      caught++;
  }
  tap_is_int(caught, total, "a changed character anywhere in the sealed part fails");
  char bad[CPR_TOKEN_MAX];
  memcpy(bad, t1, len + 1);
  bad[strlen(CPR_TOKEN_PREFIX) - 2] = '2';
  tap_ok(cpr_open(kr, bad, len, out) == -EBADMSG, "another version fails");
  tap_ok(cpr_open(kr, t1, len - 1, out) == -EBADMSG, "a truncated token fails");
  tap_ok(cpr_open(kr, t1 + 1, len - 1, out) == -EBADMSG, "without U+0001 it is no token");
  tap_ok(cpr_open(other, t1, len, out) == -ENOENT, "another keyring lacks the key");

  /* the same id with another key (a forged key file): the tag fails */
  cpr_key_t saved = other->keys[0];
  memcpy(other->keys[0].id, k->id, sizeof(k->id));
  tap_ok(cpr_open(other, t1, len, out) == -EBADMSG, "the wrong key under the right id fails");
  /* and a token of the other key relabelled with our key id fails too (AAD) */
  char t3[CPR_TOKEN_MAX];
  other->keys[0] = saved;
  tap_ok(cpr_seal(&other->keys[0], "020280-5678", t3) == 0, "seal under the other key");
  memcpy(t3 + strlen(CPR_TOKEN_PREFIX), k->id, CPR_KEY_ID_LEN);
  tap_ok(cpr_open(kr, t3, strlen(t3), out) == -EBADMSG, "a relabelled token fails");

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
  snprintf(doc, sizeof(doc), "{\"cpr\":\"%s\",\"reason\":\"x\",\"n\":[\"%s\"]}", json_of(t1), json_of(t1));
  tap_ok(cpr_json_has_token(doc, strlen(doc)), "a token is seen in JSON");
  tap_ok(cpr_json_reveal(kr, doc, strlen(doc), &arena, &res, &res_len, &failed) == 0, "reveal");
  tap_is_str(res, "{\"cpr\":\"010190-1234\",\"reason\":\"x\",\"n\":[\"010190-1234\"]}", "both tokens decrypted");
  tap_is_int(failed, 0, "none failed");
  tap_is_int((long long)res_len, (long long)strlen(res), "length");

  memcpy(bad, t1, len + 1);
  bad[len - 3] = bad[len - 3] == 'A' ? 'B' : 'A';
  snprintf(doc, sizeof(doc), "{\"cpr\":\"%s\"}", json_of(bad));
  tap_ok(cpr_json_reveal(kr, doc, strlen(doc), &arena, &res, &res_len, &failed) == 0, "reveal a bad token");
  tap_is_str(res, "{\"cpr\":null}", "a token that fails becomes null");
  tap_is_int(failed, 1, "and is counted");

  /* tokens inside longer strings, or with an escaped quote, stay text */
  const char *verbatim[4];
  char v0[320], v1[320], v2[320], v3[320];
  snprintf(v0, sizeof(v0), "{\"r\":\"a%s\"}", json_of(t1));
  snprintf(v1, sizeof(v1), "{\"r\":\"%sb\"}", json_of(t1));
  snprintf(v2, sizeof(v2), "{\"r\":\"\\\"%s\\\"\"}", json_of(t1));
  snprintf(v3, sizeof(v3), "{\"r\":\"\\\\%s\"}", json_of(t1) + 1);
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
  tap_ok(loaded != NULL && cpr_open(loaded, t1, len, out) == 0 && strcmp(out, "010190-1234") == 0,
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
  tap_ok(loaded->n == 1 && cpr_open(loaded, t1, len, out) == -ENOENT, "keep_current drops the old key");
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
