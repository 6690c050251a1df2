#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap__n;
static int tap__failed;
static int tap__planned = -1;

void tap_plan(int n) {
  tap__planned = n;
  printf("1..%d\n", n);
}

static bool tap__vok(bool cond, const char *fmt, va_list ap) {
  tap__n++;
  char desc[1024];
  vsnprintf(desc, sizeof(desc), fmt, ap);
  for (char *c = desc; *c; c++)   /* a description is one TAP line */
    if (*c == '\n' || *c == '\r' || *c == '\t')
      *c = ' ';
  printf("%s %d - %s\n", cond ? "ok" : "not ok", tap__n, desc);
  fflush(stdout);
  if (!cond)
    tap__failed++;
  return cond;
}

bool tap_ok(bool cond, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  bool r = tap__vok(cond, fmt, ap);
  va_end(ap);
  return r;
}

bool tap_is_int(long long got, long long want, const char *what) {
  bool r = tap_ok(got == want, "%s", what);
  if (!r)
    tap_diag("  got %lld, want %lld", got, want);
  return r;
}

bool tap_is_str(const char *got, const char *want, const char *what) {
  bool same = (got == NULL && want == NULL) ||
              (got != NULL && want != NULL && strcmp(got, want) == 0);
  bool r = tap_ok(same, "%s", what);
  if (!r)
    tap_diag("  got '%s', want '%s'", got ? got : "(null)", want ? want : "(null)");
  return r;
}

/* Every line of a diagnostic starts with "# ", so multi-line messages (from
 * libpq, say) stay valid TAP. */
void tap_diag(const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  char *line = buf;
  for (;;) {
    char *nl = strchr(line, '\n');
    if (nl != NULL)
      *nl = '\0';
    printf("# %s\n", line);
    if (nl == NULL || nl[1] == '\0')
      break;
    line = nl + 1;
  }
  fflush(stdout);
}

int tap_done(void) {
  if (tap__planned < 0)
    printf("1..%d\n", tap__n);
  else if (tap__planned != tap__n) {
    printf("# planned %d, ran %d\n", tap__planned, tap__n);
    return 1;
  }
  return tap__failed ? 1 : 0;
}
