#include "util/cpr_crypt.h"

#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CPR_NONCE_LEN 12
#define CPR_TAG_LEN 16
#define CPR_PLAIN_LEN 11                                   /* DDMMYY-NNNN */
#define CPR_RAW_LEN (CPR_NONCE_LEN + CPR_PLAIN_LEN + CPR_TAG_LEN) /* 39 */
#define CPR_B64_LEN 52                                     /* 39 bytes, no padding */
#define CPR_PREFIX_LEN (sizeof(CPR_TOKEN_PREFIX) - 1)      /* 12 */
#define CPR_TOKEN_LEN (CPR_PREFIX_LEN + CPR_KEY_ID_LEN + 1 + CPR_B64_LEN) /* 81 */
#define CPR_KEYRING_MAX (64 * 1024)

static const char cpr__b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static bool cpr__is_cpr(const char *s) {
  if (strlen(s) != CPR_PLAIN_LEN || s[6] != '-')
    return false;
  for (int i = 0; i < CPR_PLAIN_LEN; i++)
    if (i != 6 && (s[i] < '0' || s[i] > '9'))
      return false;
  return true;
}

static bool cpr__is_key_id(const char *s, size_t len) {
  if (len != CPR_KEY_ID_LEN)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

/* base64url without padding; n must be a multiple of 3. */
static void cpr__b64url_encode(const unsigned char *in, size_t n, char *out) {
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    *out++ = cpr__b64url[(v >> 18) & 63];
    *out++ = cpr__b64url[(v >> 12) & 63];
    *out++ = cpr__b64url[(v >> 6) & 63];
    *out++ = cpr__b64url[v & 63];
  }
  *out = '\0';
}

static int cpr__b64url_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

/* n characters (a multiple of 4) into n / 4 * 3 bytes. */
static int cpr__b64url_decode(const char *in, size_t n, unsigned char *out) {
  for (size_t i = 0; i < n; i += 4) {
    int a = cpr__b64url_value(in[i]), b = cpr__b64url_value(in[i + 1]);
    int c = cpr__b64url_value(in[i + 2]), d = cpr__b64url_value(in[i + 3]);
    if (a < 0 || b < 0 || c < 0 || d < 0)
      return -EINVAL;
    unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
    *out++ = (unsigned char)(v >> 16);
    *out++ = (unsigned char)(v >> 8);
    *out++ = (unsigned char)v;
  }
  return 0;
}

/* Standard base64 of exactly 32 bytes (the keyring file). */
static int cpr__b64_decode32(const char *s, unsigned char out[32]) {
  unsigned char buf[48];
  size_t len = strlen(s);
  if (len != 44 || s[43] != '=' || s[42] == '=')
    return -EINVAL;
  int n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
  if (n != 33) {
    OPENSSL_cleanse(buf, sizeof(buf));
    return -EINVAL;
  }
  memcpy(out, buf, 32);
  OPENSSL_cleanse(buf, sizeof(buf));
  return 0;
}

/* ---- the keyring ---- */

static int cpr__key_generate(cpr_key_t *k) {
  unsigned char id[CPR_KEY_ID_LEN / 2];
  memset(k, 0, sizeof(*k));
  if (RAND_bytes(k->enc, sizeof(k->enc)) != 1 || RAND_bytes(k->mac, sizeof(k->mac)) != 1 ||
      RAND_bytes(id, sizeof(id)) != 1) {
    OPENSSL_cleanse(k, sizeof(*k));
    return -EIO;
  }
  for (size_t i = 0; i < sizeof(id); i++)
    snprintf(k->id + 2 * i, 3, "%02x", id[i]);
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(k->created_at, sizeof(k->created_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return 0;
}

int cpr_keyring_new(cpr_keyring_t **out) {
  cpr_keyring_t *kr = calloc(1, sizeof(*kr));
  if (kr == NULL)
    return -ENOMEM;
  const cpr_key_t *k;
  int rc = cpr_keyring_add(kr, &k);
  if (rc != 0) {
    cpr_keyring_free(kr);
    return rc;
  }
  kr->current = 0;
  *out = kr;
  return 0;
}

int cpr_keyring_add(cpr_keyring_t *kr, const cpr_key_t **added) {
  cpr_key_t fresh;
  int rc = cpr__key_generate(&fresh);
  if (rc != 0)
    return rc;
  /* A new array, so no copy of the old keys is left behind unwiped. */
  cpr_key_t *keys = calloc(kr->n + 1, sizeof(*keys));
  if (keys == NULL) {
    OPENSSL_cleanse(&fresh, sizeof(fresh));
    return -ENOMEM;
  }
  if (kr->n > 0)
    memcpy(keys, kr->keys, kr->n * sizeof(*keys));
  keys[kr->n] = fresh;
  OPENSSL_cleanse(&fresh, sizeof(fresh));
  if (kr->keys != NULL) {
    OPENSSL_cleanse(kr->keys, kr->n * sizeof(*kr->keys));
    free(kr->keys);
  }
  kr->keys = keys;
  kr->n++;
  *added = &kr->keys[kr->n - 1];
  return 0;
}

const cpr_key_t *cpr_keyring_find(const cpr_keyring_t *kr, const char *id) {
  for (size_t i = 0; kr != NULL && i < kr->n; i++)
    if (strcmp(kr->keys[i].id, id) == 0)
      return &kr->keys[i];
  return NULL;
}

const cpr_key_t *cpr_keyring_current(const cpr_keyring_t *kr) { return &kr->keys[kr->current]; }

int cpr_keyring_set_current(cpr_keyring_t *kr, const char *id) {
  for (size_t i = 0; i < kr->n; i++) {
    if (strcmp(kr->keys[i].id, id) == 0) {
      kr->current = i;
      return 0;
    }
  }
  return -ENOENT;
}

void cpr_keyring_keep_current(cpr_keyring_t *kr) {
  if (kr->current != 0)
    kr->keys[0] = kr->keys[kr->current];
  if (kr->n > 1)
    OPENSSL_cleanse(&kr->keys[1], (kr->n - 1) * sizeof(*kr->keys));
  kr->n = 1;
  kr->current = 0;
}

void cpr_keyring_free(cpr_keyring_t *kr) {
  if (kr == NULL)
    return;
  if (kr->keys != NULL) {
    OPENSSL_cleanse(kr->keys, kr->n * sizeof(*kr->keys));
    free(kr->keys);
  }
  free(kr);
}

static int cpr__parse(const char *text, size_t len, cpr_keyring_t *kr, char *err, size_t err_len) {
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    snprintf(err, err_len, "not valid JSON at line %d", jerr.line);
    return -EINVAL;
  }
  int rc = -EINVAL;
  size_t cap = 0;
  json_t *keys = json_object_get(root, "keys");
  const char *current = json_string_value(json_object_get(root, "current"));
  if (!json_is_object(root) || json_integer_value(json_object_get(root, "version")) != 1 ||
      !json_is_integer(json_object_get(root, "version"))) {
    snprintf(err, err_len, "\"version\" must be 1");
    goto out;
  }
  if (current == NULL || !json_is_array(keys) || json_array_size(keys) == 0 ||
      json_array_size(keys) > 64) {
    snprintf(err, err_len, "needs \"current\" and a \"keys\" array of 1 to 64 keys");
    goto out;
  }
  cap = json_array_size(keys);
  kr->keys = calloc(cap, sizeof(*kr->keys));
  if (kr->keys == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  size_t i;
  json_t *item;
  json_array_foreach(keys, i, item) {
    const char *id = json_string_value(json_object_get(item, "id"));
    const char *enc = json_string_value(json_object_get(item, "enc"));
    const char *mac = json_string_value(json_object_get(item, "mac"));
    const char *created = json_string_value(json_object_get(item, "created_at"));
    cpr_key_t *k = &kr->keys[kr->n];
    if (id == NULL || !cpr__is_key_id(id, strlen(id))) {
      snprintf(err, err_len, "key %zu: \"id\" must be %d lower-case hex characters", i, CPR_KEY_ID_LEN);
      goto out;
    }
    if (cpr_keyring_find(kr, id) != NULL) {
      snprintf(err, err_len, "key %s appears twice", id);
      goto out;
    }
    if (enc == NULL || mac == NULL || cpr__b64_decode32(enc, k->enc) != 0 ||
        cpr__b64_decode32(mac, k->mac) != 0) {
      snprintf(err, err_len, "key %s: \"enc\" and \"mac\" must each be 32 bytes in base64", id);
      goto out;
    }
    memcpy(k->id, id, CPR_KEY_ID_LEN + 1);
    /* Informational; kept only when it is plainly a timestamp, since the
     * file is written back without escaping. */
    bool plain = created != NULL && strlen(created) < sizeof(k->created_at);
    for (const char *c = created; plain && *c; c++)
      plain = (*c >= '0' && *c <= '9') || *c == '-' || *c == ':' || *c == 'T' || *c == 'Z' ||
              *c == '.' || *c == '+';
    snprintf(k->created_at, sizeof(k->created_at), "%s", plain ? created : "");
    kr->n++;
  }
  if (cpr_keyring_set_current(kr, current) != 0) {
    snprintf(err, err_len, "\"current\" names no key in \"keys\"");
    goto out;
  }
  rc = 0;
out:
  if (rc != 0 && kr->keys != NULL)
    OPENSSL_cleanse(kr->keys, cap * sizeof(*kr->keys)); /* a key half read */
  json_decref(root); /* jansson does not wipe; the file's text is wiped below */
  return rc;
}

int cpr_keyring_load(const char *path, cpr_keyring_t **out, char *err, size_t err_len) {
  /* A symlink is followed (secret stores mount files that way); the mode
   * checked is the file's own. */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    snprintf(err, err_len, "cannot open %s: %s", path, strerror(e));
    return e == ENOENT ? -ENOENT : -EIO;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, err_len, "%s is not a regular file", path);
    close(fd);
    return -EIO;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    snprintf(err, err_len, "%s is readable by group or others (chmod 600 it)", path);
    close(fd);
    return -EPERM;
  }
  if (st.st_size <= 0 || st.st_size > CPR_KEYRING_MAX) {
    snprintf(err, err_len, "%s: unexpected size", path);
    close(fd);
    return -EINVAL;
  }
  size_t size = (size_t)st.st_size;
  char *buf = malloc(size);
  if (buf == NULL) {
    close(fd);
    return -ENOMEM;
  }
  size_t got = 0;
  while (got < size) {
    ssize_t r = read(fd, buf + got, size - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  int rc = -EIO;
  cpr_keyring_t *kr = NULL;
  if (got != size) {
    snprintf(err, err_len, "cannot read %s", path);
    goto out;
  }
  kr = calloc(1, sizeof(*kr));
  if (kr == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  char why[160] = "";
  rc = cpr__parse(buf, size, kr, why, sizeof(why));
  if (rc != 0) {
    snprintf(err, err_len, "key file %s: %s", path, why);
    cpr_keyring_free(kr);
    kr = NULL;
    goto out;
  }
  *out = kr;
out:
  OPENSSL_cleanse(buf, size);
  free(buf);
  return rc;
}

static int cpr__write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -EIO;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The file's text, with key material: the caller wipes and frees it. */
static char *cpr__serialise(const cpr_keyring_t *kr, size_t *len) {
  size_t cap = 128 + kr->n * 256;
  char *buf = malloc(cap);
  if (buf == NULL)
    return NULL;
  size_t n = (size_t)snprintf(buf, cap, "{\n  \"version\": 1,\n  \"current\": \"%s\",\n  \"keys\": [",
                              kr->keys[kr->current].id);
  for (size_t i = 0; i < kr->n; i++) {
    char enc[45], mac[45];
    EVP_EncodeBlock((unsigned char *)enc, kr->keys[i].enc, 32);
    EVP_EncodeBlock((unsigned char *)mac, kr->keys[i].mac, 32);
    n += (size_t)snprintf(buf + n, cap - n,
                          "%s\n    {\"id\": \"%s\", \"enc\": \"%s\", \"mac\": \"%s\", \"created_at\": \"%s\"}",
                          i ? "," : "", kr->keys[i].id, enc, mac, kr->keys[i].created_at);
    OPENSSL_cleanse(enc, sizeof(enc));
    OPENSSL_cleanse(mac, sizeof(mac));
  }
  n += (size_t)snprintf(buf + n, cap - n, "\n  ]\n}\n");
  *len = n;
  return buf;
}

int cpr_keyring_save(const cpr_keyring_t *kr, const char *path, bool exclusive, char *err,
                     size_t err_len) {
  char tmp[PATH_MAX], dir[PATH_MAX];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp) ||
      snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
    snprintf(err, err_len, "key file path too long");
    return -EINVAL;
  }
  size_t len = 0;
  char *text = cpr__serialise(kr, &len);
  if (text == NULL)
    return -ENOMEM;
  int rc = 0;
  unlink(tmp); /* left by a crash of a process with our pid */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    rc = -errno;
    snprintf(err, err_len, "cannot create %s: %s", tmp, strerror(errno));
    goto out;
  }
  if (fchmod(fd, 0600) != 0 || cpr__write_all(fd, text, len) != 0 || fsync(fd) != 0) {
    rc = -EIO;
    snprintf(err, err_len, "cannot write %s: %s", tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    goto out;
  }
  close(fd);
  if (exclusive ? link(tmp, path) != 0 : rename(tmp, path) != 0) {
    rc = -errno;
    snprintf(err, err_len, "cannot put the key file in place at %s: %s", path, strerror(errno));
    unlink(tmp);
    goto out;
  }
  if (exclusive)
    unlink(tmp);
  /* The rename itself must survive a crash. */
  int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
out:
  OPENSSL_cleanse(text, len);
  free(text);
  return rc;
}

int cpr_key_fingerprint(const cpr_key_t *k, char out[CPR_INDEX_LEN + 1]) {
  unsigned char msg[24 + 32], md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  memcpy(msg, "kipd-cpr key fingerprint", 24);
  memcpy(msg + 24, k->mac, 32);
  unsigned char *r = HMAC(EVP_sha256(), k->enc, 32, msg, sizeof(msg), md, &mdlen);
  OPENSSL_cleanse(msg, sizeof(msg));
  if (r == NULL || mdlen != 32)
    return -EIO;
  for (unsigned i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  return 0;
}

/* ---- sealing ---- */

bool cpr_plan_id_valid(const char *s) {
  if (s == NULL || strnlen(s, CPR_PLAN_ID_LEN + 1) != CPR_PLAN_ID_LEN)
    return false;
  for (int i = 0; i < CPR_PLAN_ID_LEN; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-')
        return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

/* The additional authenticated data: version 1 "kipd-cpr:1:<key id>",
 * version 2 "kipd-cpr:2:<key id>:plan:<plan id>". */
#define CPR_AAD_MAX (CPR_PREFIX_LEN + CPR_KEY_ID_LEN + 6 + CPR_PLAN_ID_LEN + 1)
static size_t cpr__aad(int version, const char *id, const char *plan_id, char out[CPR_AAD_MAX]) {
  int n = version == 1 ? snprintf(out, CPR_AAD_MAX, "kipd-cpr:1:%.16s", id)
                       : snprintf(out, CPR_AAD_MAX, "kipd-cpr:2:%.16s:plan:%.36s", id, plan_id);
  return (size_t)n;
}

int cpr_seal(const cpr_key_t *k, const char *plan_id, const char *cpr, char out[CPR_TOKEN_MAX]) {
  if (!cpr__is_cpr(cpr) || !cpr_plan_id_valid(plan_id))
    return -EINVAL;
  unsigned char raw[CPR_RAW_LEN];
  char aad[CPR_AAD_MAX];
  size_t aad_len = cpr__aad(2, k->id, plan_id, aad);
  int rc = -EIO, n = 0;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL)
    return -ENOMEM;
  if (RAND_bytes(raw, CPR_NONCE_LEN) != 1)
    goto out;
  if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CPR_NONCE_LEN, NULL) != 1 ||
      EVP_EncryptInit_ex(ctx, NULL, NULL, k->enc, raw) != 1 ||
      EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aad_len) != 1 ||
      EVP_EncryptUpdate(ctx, raw + CPR_NONCE_LEN, &n, (const unsigned char *)cpr, CPR_PLAIN_LEN) != 1 ||
      n != CPR_PLAIN_LEN ||
      EVP_EncryptFinal_ex(ctx, raw + CPR_NONCE_LEN + n, &n) != 1 || n != 0 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CPR_TAG_LEN, raw + CPR_NONCE_LEN + CPR_PLAIN_LEN) != 1)
    goto out;
  memcpy(out, CPR_TOKEN_PREFIX, CPR_PREFIX_LEN);
  memcpy(out + CPR_PREFIX_LEN, k->id, CPR_KEY_ID_LEN);
  out[CPR_PREFIX_LEN + CPR_KEY_ID_LEN] = ':';
  cpr__b64url_encode(raw, CPR_RAW_LEN, out + CPR_PREFIX_LEN + CPR_KEY_ID_LEN + 1);
  rc = 0;
out:
  EVP_CIPHER_CTX_free(ctx);
  OPENSSL_cleanse(raw, sizeof(raw));
  return rc;
}

int cpr_token_version(const char *token, size_t len) {
  if (len != CPR_TOKEN_LEN || !cpr__is_key_id(token + CPR_PREFIX_LEN, CPR_KEY_ID_LEN) ||
      token[CPR_PREFIX_LEN + CPR_KEY_ID_LEN] != ':')
    return -EINVAL;
  if (memcmp(token, CPR_TOKEN_PREFIX, CPR_PREFIX_LEN) == 0)
    return 2;
  if (memcmp(token, CPR_TOKEN_PREFIX_V1, CPR_PREFIX_LEN) == 0)
    return 1;
  return -EINVAL;
}

int cpr_token_key_id(const char *token, char out[CPR_KEY_ID_LEN + 1]) {
  if (cpr_token_version(token, strnlen(token, CPR_TOKEN_MAX)) < 0)
    return -EINVAL;
  memcpy(out, token + CPR_PREFIX_LEN, CPR_KEY_ID_LEN);
  out[CPR_KEY_ID_LEN] = '\0';
  return 0;
}

/* Open a token of the given version (plan_id NULL for version 1). */
static int cpr__open(const cpr_keyring_t *kr, int version, const char *plan_id, const char *token,
                     size_t len, char out[12]) {
  int found = cpr_token_version(token, len);
  if (found < 0)
    return -EBADMSG;
  if (found != version)
    return -EPROTO;
  if (version == 2 && !cpr_plan_id_valid(plan_id))
    return -EBADMSG;
  char id[CPR_KEY_ID_LEN + 1];
  memcpy(id, token + CPR_PREFIX_LEN, CPR_KEY_ID_LEN);
  id[CPR_KEY_ID_LEN] = '\0';
  const cpr_key_t *k = cpr_keyring_find(kr, id);
  if (k == NULL)
    return -ENOENT;
  unsigned char raw[CPR_RAW_LEN];
  if (cpr__b64url_decode(token + CPR_PREFIX_LEN + CPR_KEY_ID_LEN + 1, CPR_B64_LEN, raw) != 0)
    return -EBADMSG;
  char aad[CPR_AAD_MAX];
  size_t aad_len = cpr__aad(version, id, plan_id, aad);
  unsigned char plain[CPR_PLAIN_LEN + 16];
  int rc = -EBADMSG, n = 0, m = 0;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL)
    return -ENOMEM;
  /* EVP_DecryptFinal_ex checks the tag in constant time. */
  if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CPR_NONCE_LEN, NULL) != 1 ||
      EVP_DecryptInit_ex(ctx, NULL, NULL, k->enc, raw) != 1 ||
      EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aad_len) != 1 ||
      EVP_DecryptUpdate(ctx, plain, &n, raw + CPR_NONCE_LEN, CPR_PLAIN_LEN) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CPR_TAG_LEN,
                          raw + CPR_NONCE_LEN + CPR_PLAIN_LEN) != 1 ||
      EVP_DecryptFinal_ex(ctx, plain + n, &m) != 1 || n + m != CPR_PLAIN_LEN)
    goto out;
  memcpy(out, plain, CPR_PLAIN_LEN);
  out[CPR_PLAIN_LEN] = '\0';
  rc = cpr__is_cpr(out) ? 0 : -EBADMSG;
  if (rc != 0)
    OPENSSL_cleanse(out, 12);
out:
  EVP_CIPHER_CTX_free(ctx);
  OPENSSL_cleanse(plain, sizeof(plain));
  OPENSSL_cleanse(raw, sizeof(raw));
  return rc;
}

int cpr_open(const cpr_keyring_t *kr, const char *plan_id, const char *token, size_t len, char out[12]) {
  return cpr__open(kr, 2, plan_id, token, len, out);
}

int cpr_open_v1(const cpr_keyring_t *kr, const char *token, size_t len, char out[12]) {
  return cpr__open(kr, 1, NULL, token, len, out);
}

int cpr_blind_index(const cpr_key_t *k, const char *cpr, char out[CPR_INDEX_LEN + 1]) {
  if (!cpr__is_cpr(cpr))
    return -EINVAL;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (HMAC(EVP_sha256(), k->mac, 32, (const unsigned char *)cpr, CPR_PLAIN_LEN, md, &mdlen) == NULL ||
      mdlen != 32)
    return -EIO;
  for (unsigned i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  OPENSSL_cleanse(md, sizeof(md));
  return 0;
}

/* ---- responses ---- */

/* The token as PostgreSQL and jansson write it in JSON text, any version. */
static const char cpr__json_marker[] = "\\u0001kipd-cpr:";
#define CPR_MARKER_LEN (sizeof(cpr__json_marker) - 1)
/* "\u0001" is 6 characters in JSON: a bound token ("<token>:<plan id>") is
 * this long between its quotes. */
#define CPR_BOUND_JSON_LEN (6 + CPR_TOKEN_LEN - 1 + 1 + CPR_PLAN_ID_LEN)

bool cpr_json_has_token(const char *json, size_t len) {
  return memmem(json, len, cpr__json_marker, CPR_MARKER_LEN) != NULL;
}

/* A quote at json[i] opens or closes a string: it is not escaped by an odd
 * number of backslashes before it. */
static bool cpr__unescaped_quote(const char *json, size_t i) {
  if (json[i] != '"')
    return false;
  size_t bs = 0;
  while (i > bs && json[i - bs - 1] == '\\')
    bs++;
  return bs % 2 == 0;
}

static bool cpr__token_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
         c == '_' || c == ':';
}

/* Open a bound token as it appears in JSON (at points at its "\u0001",
 * n characters up to the closing quote). */
static int cpr__open_json(const cpr_keyring_t *kr, const char *at, size_t n, char out[12]) {
  if (n != CPR_BOUND_JSON_LEN || at[6 + CPR_TOKEN_LEN - 1] != ':')
    return -EBADMSG;
  char token[CPR_TOKEN_MAX], plan_id[CPR_PLAN_ID_LEN + 1];
  token[0] = '\x01';
  memcpy(token + 1, at + 6, CPR_TOKEN_LEN - 1);
  memcpy(plan_id, at + 6 + CPR_TOKEN_LEN, CPR_PLAN_ID_LEN);
  plan_id[CPR_PLAN_ID_LEN] = '\0';
  return cpr_open(kr, plan_id, token, CPR_TOKEN_LEN, out);
}

int cpr_json_reveal(const cpr_keyring_t *kr, const char *json, size_t len, arena_t *arena,
                    char **out, size_t *out_len, int *failed) {
  /* Each replacement is shorter than the text it replaces. */
  char *buf = arena_alloc(arena, len + 1);
  if (buf == NULL)
    return -ENOMEM;
  size_t o = 0, i = 0;
  *failed = 0;
  while (i < len) {
    const char *hit = memmem(json + i, len - i, cpr__json_marker, CPR_MARKER_LEN);
    if (hit == NULL)
      break;
    size_t at = (size_t)(hit - json);
    /* A whole string: an opening quote right before, then only token
     * characters (at most a bound token's length) up to the closing
     * quote. Anything else is copied. */
    size_t end = at + CPR_MARKER_LEN;
    while (end < len && end - at <= CPR_BOUND_JSON_LEN && cpr__token_char(json[end]))
      end++;
    bool whole = at >= i + 1 && cpr__unescaped_quote(json, at - 1) && end < len && json[end] == '"' &&
                 end - at <= CPR_BOUND_JSON_LEN;
    if (!whole) {
      memcpy(buf + o, json + i, at + 1 - i);
      o += at + 1 - i;
      i = at + 1;
      continue;
    }
    char cpr[12];
    int rc = cpr__open_json(kr, json + at, end - at, cpr);
    /* Copy up to the opening quote, then the replacement. */
    memcpy(buf + o, json + i, at - 1 - i);
    o += at - 1 - i;
    if (rc == 0) {
      buf[o++] = '"';
      memcpy(buf + o, cpr, CPR_PLAIN_LEN);
      o += CPR_PLAIN_LEN;
      buf[o++] = '"';
    } else {
      memcpy(buf + o, "null", 4);
      o += 4;
      (*failed)++;
    }
    OPENSSL_cleanse(cpr, sizeof(cpr));
    i = end + 1;
  }
  memcpy(buf + o, json + i, len - i);
  o += len - i;
  buf[o] = '\0';
  *out = buf;
  *out_len = o;
  return 0;
}
