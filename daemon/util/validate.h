/* validate: format checks for values that arrive over HTTP. Pure functions,
 * no allocation. */
#ifndef KIPD_UTIL_VALIDATE_H
#define KIPD_UTIL_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

/* A CPR number: 10 digits, optionally "DDMMYY-NNNN". The date part must be a
 * real calendar date in the century given by the 7th digit (CPR rules);
 * modulus 11 is not checked. On success writes "DDMMYY-NNNN" to out (12
 * bytes) and, if birth_date is not NULL, "YYYY-MM-DD" (11 bytes). */
bool validate_cpr(const char *s, char out[12], char birth_date[11]);

/* "010190-1234" -> "010190-****" (out: 12 bytes). s must be normalised. */
void validate_cpr_mask(const char *normalised, char out[12]);

/* True if year is a leap year in the proleptic Gregorian calendar. */
bool validate_leap_year(int year);
bool validate_ymd(int y, int m, int d);

/* "YYYY-MM-DD", a real date. */
bool validate_date(const char *s);

/* RFC 3339 date-time with a mandatory offset: "2026-12-01T09:00:00+01:00",
 * "...Z", optional fraction. Checks ranges (month, day of month, hour < 24,
 * minute < 60, second <= 60, offset <= 23:59). */
bool validate_datetime(const char *s);

/* Canonical textual UUID (8-4-4-4-12 hex, any case). */
bool validate_uuid(const char *s);

/* A string of exactly n ASCII digits. */
bool validate_digits(const char *s, size_t n);

/* A plausible e-mail address: one '@', non-empty local part, a dot in the
 * domain, no spaces or control characters, at most 254 bytes. */
bool validate_email(const char *s);

/* Valid UTF-8 with no control characters other than \n, \r and \t. */
bool validate_text(const char *s);

/* Username: 3..64 of [a-z0-9._-]. */
bool validate_username(const char *s);

#endif
