#include "util/csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int csv_init(csv_t *c) {
  memset(c, 0, sizeof(*c));
  c->out = open_memstream(&c->text, &c->len);
  if (c->out == NULL)
    return -ENOMEM;
  c->at_start = true;
  if (fputs("\xEF\xBB\xBF", c->out) == EOF)
    c->error = -ENOMEM;
  return 0;
}

static void csv__separator(csv_t *c) {
  if (!c->at_start && fputc(';', c->out) == EOF)
    c->error = -ENOMEM;
  c->at_start = false;
}

void csv_text(csv_t *c, const char *s) {
  csv__separator(c);
  if (s == NULL || *s == '\0')
    return;
  size_t n = strlen(s);
  bool formula = strchr("=+-@\t\r", s[0]) != NULL;
  bool quote = strpbrk(s, ";\"\r\n") != NULL || s[0] == ' ' || s[n - 1] == ' ';
  if (quote && fputc('"', c->out) == EOF)
    c->error = -ENOMEM;
  if (formula && fputc('\'', c->out) == EOF)
    c->error = -ENOMEM;
  for (const char *p = s; *p; p++) {
    if (*p == '"' && fputc('"', c->out) == EOF)
      c->error = -ENOMEM;
    if (fputc(*p, c->out) == EOF)
      c->error = -ENOMEM;
  }
  if (quote && fputc('"', c->out) == EOF)
    c->error = -ENOMEM;
}

void csv_number(csv_t *c, double value, int decimals) {
  char buf[64];
  csv__separator(c);
  if (decimals < 0 || decimals > 6)
    decimals = 0;
  int n = snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  if (n < 0 || (size_t)n >= sizeof(buf)) {
    c->error = -EINVAL;
    return;
  }
  /* The C locale writes '.', whatever the process's locale: make it ','. */
  char *dot = strchr(buf, '.');
  if (dot != NULL)
    *dot = ',';
  if (fputs(buf, c->out) == EOF)
    c->error = -ENOMEM;
}

void csv_end_record(csv_t *c) {
  if (fputs("\r\n", c->out) == EOF)
    c->error = -ENOMEM;
  c->at_start = true;
}

int csv_finish(csv_t *c, char **text, size_t *len) {
  int rc = c->error;
  if (fclose(c->out) != 0 && rc == 0)
    rc = -ENOMEM;
  c->out = NULL;
  if (rc != 0) {
    free(c->text);
    c->text = NULL;
    return rc;
  }
  *text = c->text;
  *len = c->len;
  c->text = NULL;
  return 0;
}
