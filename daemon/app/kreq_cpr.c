#include "app/kreq_cpr.h"

#include <ctype.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "app/internal.h"
#include "util/cpr_crypt.h"
#include "util/log.h"
#include "util/validate.h"

/* Tokens come only from kipd: app_handle() refuses U+0001 in requests. A
 * token that does not decrypt becomes null, and a warning names the
 * request, never the token. */
const char *kreq_cpr__reveal(kreq_t *r, const char *body, size_t len, size_t *out_len) {
  *out_len = len;
  if (!cpr_json_has_token(body, len))
    return body;
  char *out = NULL;
  int failed = 0;
  if (r->app->keyring == NULL ||
      cpr_json_reveal(r->app->keyring, body, len, &r->http->arena, &out, out_len, &failed) != 0)
    return NULL;
  if (failed > 0)
    log_emit(LOG_WARN, "a sealed CPR number could not be decrypted; answered null",
             json_pack("{s:s, s:s, s:i}", "request_id", r->http->request_id, "statement",
                       r->stmt ? r->stmt->name : "?", "count", failed));
  return out;
}

/* A new plan's id (a random, version 4 uuid), as PostgreSQL writes it. */
static int kreq_cpr__new_plan_id(char out[CPR_PLAN_ID_LEN + 1]) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof(b)) != 1)
    return -EIO;
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, CPR_PLAN_ID_LEN + 1,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
           b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return 0;
}

int kreq_cpr_seal(kreq_t *r, json_t *citizen, const char *plan_id) {
  if (!json_is_object(citizen))
    return 0;
  json_t *cpr = json_object_get(citizen, "cpr");
  if (cpr == NULL)
    return 0;
  if (json_is_null(cpr)) {
    json_object_set_new(citizen, "cpr_enc", json_null());
    json_object_set_new(citizen, "cpr_hmac", json_null());
    return 0;
  }
  const cpr_keyring_t *kr = r->app->keyring;
  if (kr == NULL || !json_is_string(cpr))
    return -EINVAL;
  const char *norm = json_string_value(cpr);
  /* The token is bound to its plan: the path's id (any case; PostgreSQL
   * writes it in lower case), or for a new plan an id chosen here, which
   * kip_api.plan_create gives the plan. */
  char pid[CPR_PLAN_ID_LEN + 1];
  if (plan_id != NULL) {
    if (strlen(plan_id) != CPR_PLAN_ID_LEN)
      return -EINVAL;
    for (int i = 0; i <= CPR_PLAN_ID_LEN; i++)
      pid[i] = (char)tolower((unsigned char)plan_id[i]);
  } else if (kreq_cpr__new_plan_id(pid) != 0) {
    return -EIO;
  }
  char token[CPR_TOKEN_MAX], index[CPR_INDEX_LEN + 1], mask[12];
  int rc = cpr_seal(cpr_keyring_current(kr), pid, norm, token);
  if (rc == 0)
    rc = cpr_blind_index(cpr_keyring_current(kr), norm, index);
  if (rc != 0)
    return rc;
  validate_cpr_mask(norm, mask);
  /* The database stores the mask as citizen_cpr, the token and the index. */
  json_object_set_new(citizen, "cpr", json_string(mask));
  json_object_set_new(citizen, "cpr_enc", json_string(token));
  json_object_set_new(citizen, "cpr_hmac", json_string(index));
  json_object_set_new(citizen, "cpr_plan_id", json_string(pid));
  return 0;
}

int kreq_cpr_index(kreq_t *r, const char *cpr, char out[65]) {
  char norm[12];
  /* Any DDMMYY-NNNN shape is looked up: an impossible date finds nothing. */
  size_t len = strlen(cpr);
  if (len == 10)
    snprintf(norm, sizeof(norm), "%.6s-%.4s", cpr, cpr + 6);
  else if (len == 11)
    snprintf(norm, sizeof(norm), "%s", cpr);
  else
    return -EINVAL;
  if (r->app->keyring == NULL)
    return -EINVAL;
  return cpr_blind_index(cpr_keyring_current(r->app->keyring), norm, out);
}
