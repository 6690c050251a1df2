/* Fuzz target: the CPR, date and other format validators (util/validate.c)
 * and the body checker's format hooks built on them (util/json_check.c),
 * each with an oracle:
 *   - a CPR number that passes is normalised to DDMMYY-NNNN, passes again
 *     unchanged with the same birth date, and its birth date is a valid
 *     date; the mask keeps the first 7 characters and hides the rest;
 *   - a date that passes is YYYY-MM-DD and, with a time and Z, a valid
 *     date-time; a date-time that passes starts with a valid date;
 *   - a UUID is 36 characters; an e-mail has one '@'; a username is 3..64 of
 *     [a-z0-9._-]; text that passes is UTF-8 that jansson accepts too;
 *   - validate_ymd agrees with validate_leap_year on 29 February.
 * Input: the bytes up to the first NUL are the string (as every caller
 * sees it).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/json_check.h"
#include "util/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_cpr(const char *s) {
  char out[12], bd[11];
  memset(out, 'x', sizeof(out));
  if (!validate_cpr(s, out, bd))
    return;
  if (strlen(out) != 11 || out[6] != '-' || !validate_date(bd))
    abort();
  for (int i = 0; i < 11; i++)
    if (i != 6 && (out[i] < '0' || out[i] > '9'))
      abort();
  char out2[12], bd2[11];
  if (!validate_cpr(out, out2, bd2) || strcmp(out, out2) != 0 || strcmp(bd, bd2) != 0)
    abort();
  /* The birth date's day and month are the CPR number's. */
  if (memcmp(bd + 8, out, 2) != 0 || memcmp(bd + 5, out + 2, 2) != 0 || memcmp(bd + 2, out + 4, 2) != 0)
    abort();
  char mask[12];
  validate_cpr_mask(out, mask);
  if (memcmp(mask, out, 7) != 0 || strcmp(mask + 7, "****") != 0)
    abort();
  const char *code = NULL;
  json_t *obj = json_pack("{s:s}", "cpr", s);
  if (jc_format_cpr(obj, "cpr", json_object_get(obj, "cpr"), &code) != NULL ||
      strcmp(json_string_value(json_object_get(obj, "cpr")), out) != 0)
    abort();
  json_decref(obj);
}

static void fz_dates(const char *s, size_t len) {
  if (validate_date(s)) {
    if (len != 10)
      abort();
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (!validate_ymd(y, m, d))
      abort();
    char dt[32];
    memcpy(dt, s, 10);
    memcpy(dt + 10, "T00:00:00Z", 11);
    if (!validate_datetime(dt))
      abort();
  }
  if (validate_datetime(s)) {
    char date[11];
    if (len < 20)
      abort();
    memcpy(date, s, 10);
    date[10] = '\0';
    if (!validate_date(date))
      abort();
  }
  if (len >= 4) {
    int y = (int)((unsigned char)s[0] | (unsigned char)s[1] << 8) % 12000 - 1000;
    if (y >= 1 && y <= 9999 && validate_ymd(y, 2, 29) != validate_leap_year(y))
      abort();
    int m = (unsigned char)s[2] % 16, d = (unsigned char)s[3] % 40;
    (void)validate_ymd(y, m, d);
  }
}

static void fz_others(const char *s, size_t len) {
  if (validate_uuid(s) && len != 36)
    abort();
  if (validate_email(s)) {
    const char *at = strchr(s, '@');
    if (len > 254 || at == NULL || strchr(at + 1, '@') != NULL)
      abort();
  }
  if (validate_username(s)) {
    if (len < 3 || len > 64)
      abort();
    for (size_t i = 0; i < len; i++)
      if (strchr("abcdefghijklmnopqrstuvwxyz0123456789._-", s[i]) == NULL)
        abort();
  }
  if (validate_text(s)) {
    json_t *j = json_stringn(s, len);
    if (j == NULL)
      abort(); /* jansson disagrees: not UTF-8 */
    json_decref(j);
  }
  (void)validate_digits(s, 8);
  const char *code = NULL;
  json_t *obj = json_pack("{s:s?}", "v", NULL);
  json_t *v = json_stringn_nocheck(s, len);
  json_object_set_new(obj, "v", v);
  (void)jc_format_uuid(obj, "v", json_object_get(obj, "v"), &code);
  (void)jc_format_date(obj, "v", json_object_get(obj, "v"), &code);
  (void)jc_format_datetime(obj, "v", json_object_get(obj, "v"), &code);
  (void)jc_format_email(obj, "v", json_object_get(obj, "v"), &code);
  (void)jc_format_cvr(obj, "v", json_object_get(obj, "v"), &code);
  (void)jc_format_ean(obj, "v", json_object_get(obj, "v"), &code);
  json_decref(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (s == NULL)
    abort();
  memcpy(s, data, size);
  s[size] = '\0';
  size_t len = strlen(s);
  fz_cpr(s);
  fz_dates(s, len);
  fz_others(s, len);
  free(s);
  return 0;
}
