/* http/strict: the RFC 9112 checks that llhttp 8 (run without any lenient
 * flag) leaves to its caller.
 *
 * llhttp itself refuses a doubled Content-Length, Content-Length together
 * with Transfer-Encoding, a Transfer-Encoding whose last coding is not
 * chunked, bare LF and control characters in values. It accepts, and these
 * functions refuse with 400:
 *   - a request line without a version (HTTP/0.9, "GET /healthz");
 *   - a header name that is not a token (e.g. whitespace before the colon,
 *     RFC 9112 5.1: "Host : x" must be rejected, not dropped);
 *   - obs-fold, a header line continued on the next line that begins with
 *     SP or HT (RFC 9112 5.2), anywhere in the head, Transfer-Encoding too;
 *   - an HTTP/1.1 request without Host (RFC 9112 3.2);
 *   - a repeated singleton header (http_strict_singletons below).
 * An HTTP major version other than 1 gets 505.
 *
 * Pure functions, no I/O: the connection code, the unit tests and the
 * fuzzers call them.
 */
#ifndef KIPD_HTTP_STRICT_H
#define KIPD_HTTP_STRICT_H

#include <stdbool.h>
#include <stddef.h>

#include "http/server.h"

/* Lower-case names of the headers that may appear at most once. NULL-ended.
 * host, authorization, cookie (RFC 6265 5.4: one Cookie header; the session
 * lives there), content-length, transfer-encoding, content-type,
 * x-csrf-token: each is read as one value by kipd, so a second copy is a
 * place where kipd and a proxy could read the request two ways. */
extern const char *const http_strict_singletons[];

/* Scan n bytes of a request head for obs-fold: a LF followed by SP or HT.
 * *after_lf carries the state across calls (false at the head's start).
 * Returns true when a fold was found. p is borrowed. */
bool http_strict_fold(bool *after_lf, const char *p, size_t n);

/* True if name (len bytes) is a non-empty RFC 9110 token. */
bool http_strict_token(const char *name, size_t len);

/* Check a parsed head: version major.minor, headers with lower-cased names.
 * Returns 0, or the status to fail with (400, 505) and sets *detail (static
 * text) and *field (the header concerned, static, or "request"). headers
 * borrowed. */
int http_strict_head(int major, int minor, const http_header_t *headers, size_t n_headers,
                     const char **detail, const char **field);

#endif
