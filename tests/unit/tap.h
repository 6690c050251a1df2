/* A tiny TAP producer for the unit tests (libuv's runner idea). */
#ifndef KIPD_TEST_TAP_H
#define KIPD_TEST_TAP_H

#include <stdbool.h>

void tap_plan(int n);
/* Record one assertion; returns cond. */
bool tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool tap_is_int(long long got, long long want, const char *what);
bool tap_is_str(const char *got, const char *want, const char *what);
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the plan if not printed yet; returns the process exit status. */
int tap_done(void);

#endif
