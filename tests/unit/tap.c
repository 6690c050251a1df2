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
  printf("%s %d - ", cond ? "ok" : "not ok", tap__n);
  vprintf(fmt, ap);
  printf("\n");
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

void tap_diag(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("# ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
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
