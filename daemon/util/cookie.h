/* cookie: reading one cookie from Cookie request headers (RFC 6265 §4.2,
 * §5.4): "name=value" pairs separated by ";" and optional whitespace, a
 * value optionally in double quotes. Pure string work; nothing is logged. */
#ifndef KIPD_UTIL_COOKIE_H
#define KIPD_UTIL_COOKIE_H

#include <stddef.h>

#include "util/error.h"

/* Find the first cookie called name (case-sensitive, as RFC 6265 compares
 * names) in header (borrowed) and copy its value, without quotes, into out
 * (out_len bytes with the NUL). Returns 0, -ENOENT when there is no such
 * cookie, or -EINVAL when its value is malformed (a character RFC 6265's
 * cookie-octet excludes, an unbalanced quote) or does not fit. */
int cookie_find(const char *header, const char *name, char *out, size_t out_len) KIPD_MUST_CHECK;

#endif
