/* cpr_crypt: CPR numbers at rest. AES-256-GCM (OpenSSL EVP) for the number,
 * HMAC-SHA256 for an exact-match blind index, and the keyring file that holds
 * the keys outside the database. No primitive is written here.
 *
 * A sealed CPR number is a self-describing token, bound to its plan:
 *
 *   "\x01kipd-cpr:2:<key id>:<base64url(nonce[12] | ciphertext[11] | tag[16])>"
 *
 * The leading U+0001 makes a token impossible to type: kipd rejects that
 * character in every request (app.c), so a token in a response can only have
 * come from kipd. The GCM additional data is "kipd-cpr:2:<key id>:plan:<plan
 * id>" (the plan id as PostgreSQL writes a uuid): the version, the key id
 * and the plan are authenticated, so a token copied to another plan does
 * not open there. The nonce is 96 random bits per encryption, the tag 128
 * bits.
 *
 * Version 1 ("\x01kipd-cpr:1:...", additional data "kipd-cpr:1:<key id>",
 * no plan) is what kipd wrote before. Only cpr_open_v1() opens it, which
 * app/cpr_store.c uses to re-seal such tokens as version 2 at start-up and
 * in kipd --rotate-key; cpr_open() and the reply path refuse it.
 *
 * In a reply, SQL writes a token together with the id of the row it was
 * read from ("<token>:<plan id>", kip.cpr_bound); cpr_json_reveal() opens the
 * token with that plan id.
 *
 * The blind index is HMAC-SHA256(mac key, "DDMMYY-NNNN") in lower-case hex,
 * under a MAC key separate from the encryption key.
 *
 * The keyring file is JSON, mode 0600:
 *   {"version": 1, "current": "<id>",
 *    "keys": [{"id": "<16 hex>", "enc": "<base64 32 bytes>",
 *              "mac": "<base64 32 bytes>", "created_at": "<RFC 3339>"}]}
 *
 * File I/O happens at start-up and in kipd --rotate-key only, never on the
 * loop. Key material is wiped with OPENSSL_cleanse when freed and never
 * logged; this module does not log at all.
 */
#ifndef KIPD_UTIL_CPR_CRYPT_H
#define KIPD_UTIL_CPR_CRYPT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/arena.h"
#include "util/error.h"

#define CPR_KEY_ID_LEN 16            /* hex characters */
#define CPR_TOKEN_PREFIX "\x01kipd-cpr:2:"     /* the current version: bound to a plan */
#define CPR_TOKEN_PREFIX_V1 "\x01kipd-cpr:1:"  /* before: no plan; re-sealed at start-up */
#define CPR_TOKEN_MAX 96             /* a token is 81 bytes; + NUL */
#define CPR_PLAN_ID_LEN 36           /* a uuid as PostgreSQL writes it */
#define CPR_INDEX_LEN 64             /* hex HMAC-SHA256 */

typedef struct cpr_key_s {
  char id[CPR_KEY_ID_LEN + 1];
  unsigned char enc[32];             /* AES-256-GCM key */
  unsigned char mac[32];             /* HMAC-SHA256 key of the blind index */
  char created_at[32];
} cpr_key_t;

typedef struct cpr_keyring_s {
  cpr_key_t *keys;
  size_t n;
  size_t current;                    /* index into keys */
} cpr_keyring_t;

/* ---- the keyring ---- */

/* A new keyring with one fresh key (RAND_bytes), current. *out is new. */
int cpr_keyring_new(cpr_keyring_t **out) KIPD_MUST_CHECK;

/* Read and check the keyring file at path. Returns 0, -ENOENT when the file
 * does not exist, -EPERM when group or others may read it, or -EINVAL/-EIO
 * with a message in err (never key material). *out is new. */
int cpr_keyring_load(const char *path, cpr_keyring_t **out, char *err, size_t err_len) KIPD_MUST_CHECK;

/* Write kr to path atomically: a 0600 temporary file beside it, fsync,
 * rename (or, with exclusive, link: -EEXIST when path exists), fsync of the
 * folder. Returns 0 or -errno with a message in err. */
int cpr_keyring_save(const cpr_keyring_t *kr, const char *path, bool exclusive, char *err,
                     size_t err_len) KIPD_MUST_CHECK;

/* Append a fresh key (not made current). *added is borrowed from kr and
 * valid until kr changes. */
int cpr_keyring_add(cpr_keyring_t *kr, const cpr_key_t **added) KIPD_MUST_CHECK;

/* The key named id, or NULL (borrowed). */
const cpr_key_t *cpr_keyring_find(const cpr_keyring_t *kr, const char *id);
/* The current key (borrowed). */
const cpr_key_t *cpr_keyring_current(const cpr_keyring_t *kr);
/* Make id current. -ENOENT when kr has no such key. */
int cpr_keyring_set_current(cpr_keyring_t *kr, const char *id) KIPD_MUST_CHECK;
/* Drop (and wipe) every key but the current one. */
void cpr_keyring_keep_current(cpr_keyring_t *kr);
/* Wipe and free (NULL is fine). */
void cpr_keyring_free(cpr_keyring_t *kr);

/* A fingerprint that names the key without revealing it:
 * hex HMAC-SHA256(enc key, "kipd-cpr key fingerprint" | mac key). */
int cpr_key_fingerprint(const cpr_key_t *k, char out[CPR_INDEX_LEN + 1]) KIPD_MUST_CHECK;

/* ---- sealing ---- */

/* True when s is a plan id as PostgreSQL writes a uuid: 36 characters,
 * lower-case hex, hyphens at 8, 13, 18 and 23. */
bool cpr_plan_id_valid(const char *s);

/* Encrypt a normalised CPR number ("DDMMYY-NNNN") of the plan plan_id under
 * k into a version 2 token (NUL-terminated). Returns 0, -EINVAL (not a
 * number, or plan_id not valid) or -EIO. */
int cpr_seal(const cpr_key_t *k, const char *plan_id, const char *cpr, char out[CPR_TOKEN_MAX])
    KIPD_MUST_CHECK;

/* Decrypt a version 2 token (len bytes, need not be NUL-terminated) of the
 * plan plan_id with the key it names. Returns 0 and the CPR number in out;
 * -ENOENT when kr lacks the key; -EPROTO for a version 1 token (refused
 * here: see cpr_open_v1); -EBADMSG when the token is malformed or fails
 * authentication (a flipped byte, the wrong key, another plan). */
int cpr_open(const cpr_keyring_t *kr, const char *plan_id, const char *token, size_t len, char out[12])
    KIPD_MUST_CHECK;

/* Decrypt a version 1 token (no plan). For re-sealing only
 * (app/cpr_store.c); the same returns as cpr_open, -EPROTO for any other
 * version. */
int cpr_open_v1(const cpr_keyring_t *kr, const char *token, size_t len, char out[12]) KIPD_MUST_CHECK;

/* A token's version (1 or 2), or -EINVAL if it is no token. */
int cpr_token_version(const char *token, size_t len);

/* The key id a token (either version) names, copied to out; -EINVAL if it
 * is no token. */
int cpr_token_key_id(const char *token, char out[CPR_KEY_ID_LEN + 1]) KIPD_MUST_CHECK;

/* The blind index of a normalised CPR number under k's MAC key. */
int cpr_blind_index(const cpr_key_t *k, const char *cpr, char out[CPR_INDEX_LEN + 1]) KIPD_MUST_CHECK;

/* ---- responses ---- */

/* True when the JSON text may hold a token (a fast scan for its escaped
 * prefix, "\u0001kipd-cpr:"). */
bool cpr_json_has_token(const char *json, size_t len);

/* Replace every whole JSON string in json (len bytes) that starts with the
 * escaped prefix "\u0001kipd-cpr:" and holds only token characters by the
 * decrypted CPR number as a JSON string. Only "<version 2 token>:<plan
 * id>" (kip.cpr_bound) opens, with that plan id; anything else with the
 * prefix (a version 1 token, a token without its plan id, one that fails
 * authentication) becomes null, and *failed counts those. Text in other
 * strings is left alone, including a token's characters inside a longer
 * string. The result is allocated in arena (NUL-terminated, *out_len
 * bytes). Returns 0 or -ENOMEM. */
int cpr_json_reveal(const cpr_keyring_t *kr, const char *json, size_t len, arena_t *arena,
                    char **out, size_t *out_len, int *failed) KIPD_MUST_CHECK;

#endif
