#include "util/validate.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

bool validate_leap_year(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

bool validate_ymd(int y, int m, int d) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1)
    return false;
  int max = days[m - 1] + (m == 2 && validate_leap_year(y) ? 1 : 0);
  return d <= max;
}

static int validate__num(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i]))
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* Century from the 7th digit of a CPR number and the two-digit year, as the
 * CPR office defines it. */
static int validate__cpr_year(int digit7, int yy) {
  if (digit7 <= 3)
    return 1900 + yy;
  if (digit7 == 4 || digit7 == 9)
    return yy <= 36 ? 2000 + yy : 1900 + yy;
  return yy <= 57 ? 2000 + yy : 1800 + yy;
}

bool validate_cpr(const char *s, char out[12], char birth_date[11]) {
  char digits[11];
  size_t n = 0;
  size_t len = strlen(s);
  if (len == 10) {
    memcpy(digits, s, 10);
    n = 10;
  } else if (len == 11 && s[6] == '-') {
    memcpy(digits, s, 6);
    memcpy(digits + 6, s + 7, 4);
    n = 10;
  } else {
    return false;
  }
  digits[n] = '\0';
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)digits[i]))
      return false;
  int dd = validate__num(digits, 2);
  int mm = validate__num(digits + 2, 2);
  int yy = validate__num(digits + 4, 2);
  int year = validate__cpr_year(digits[6] - '0', yy);
  if (!validate_ymd(year, mm, dd))
    return false;
  memcpy(out, digits, 6);
  out[6] = '-';
  memcpy(out + 7, digits + 6, 4);
  out[11] = '\0';
  if (birth_date != NULL) {
    birth_date[0] = (char)('0' + year / 1000);
    birth_date[1] = (char)('0' + year / 100 % 10);
    birth_date[2] = (char)('0' + year / 10 % 10);
    birth_date[3] = (char)('0' + year % 10);
    birth_date[4] = '-';
    memcpy(birth_date + 5, digits + 2, 2);
    birth_date[7] = '-';
    memcpy(birth_date + 8, digits, 2);
    birth_date[10] = '\0';
  }
  return true;
}

void validate_cpr_mask(const char *normalised, char out[12]) {
  memcpy(out, normalised, 6);
  memcpy(out + 6, "-****", 6);
}

bool validate_date(const char *s) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
    return false;
  int y = validate__num(s, 4), m = validate__num(s + 5, 2), d = validate__num(s + 8, 2);
  if (y < 0 || m < 0 || d < 0)
    return false;
  return validate_ymd(y, m, d);
}

bool validate_datetime(const char *s) {
  size_t len = strlen(s);
  if (len < 20)
    return false;
  char date[11];
  memcpy(date, s, 10);
  date[10] = '\0';
  if (!validate_date(date))
    return false;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
    return false;
  if (s[13] != ':' || s[16] != ':')
    return false;
  int hh = validate__num(s + 11, 2), mi = validate__num(s + 14, 2), ss = validate__num(s + 17, 2);
  if (hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 60)
    return false;
  const char *p = s + 19;
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return false;
    while (isdigit((unsigned char)*p))
      p++;
  }
  if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
    return true;
  if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
    int oh = validate__num(p + 1, 2), om = validate__num(p + 4, 2);
    return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
  }
  return false;
}

bool validate_uuid(const char *s) {
  if (strlen(s) != 36)
    return false;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return false;
    } else if (!isxdigit((unsigned char)s[i])) {
      return false;
    }
  }
  return true;
}

bool validate_digits(const char *s, size_t n) {
  if (strlen(s) != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i]))
      return false;
  return true;
}

bool validate_email(const char *s) {
  size_t len = strlen(s);
  if (len < 3 || len > 254)
    return false;
  const char *at = strchr(s, '@');
  if (at == NULL || at == s || strchr(at + 1, '@') != NULL)
    return false;
  const char *dot = strchr(at + 1, '.');
  if (dot == NULL || dot == at + 1 || dot[1] == '\0')
    return false;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f)
      return false;
  return true;
}

bool validate_text(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned c = *p;
    int extra;
    unsigned cp;
    if (c < 0x80) {
      if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
        return false;
      if (c == 0x7f)
        return false;
      p++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (int i = 1; i <= extra; i++) {
      if ((p[i] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    if (cp >= 0x80 && cp < 0xa0) /* C1 controls */
      return false;
    p += extra + 1;
  }
  return true;
}

bool validate_username(const char *s) {
  size_t len = strlen(s);
  if (len < 3 || len > 64)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}
