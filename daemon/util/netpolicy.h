/* netpolicy: which network addresses an outbound connection may reach.
 *
 * The default refuses every address that is not public: loopback
 * (127.0.0.0/8, ::1), "this network" (0.0.0.0/8, ::), private (10/8,
 * 172.16/12, 192.168/16, 100.64/10 shared address space, fc00::/7),
 * link-local (169.254/16, fe80::/10), multicast (224/4, ff00::/8), the
 * reserved and broadcast block (240/4), and the IPv4-mapped and
 * NAT64/6to4 forms of those (::ffff:a.b.c.d is judged as a.b.c.d). An
 * allow list of CIDR blocks ("10.20.0.0/16,fd00::/8") lets named blocks
 * through, and allow_loopback lets loopback through (tests).
 *
 * Pure functions on parsed addresses; it knows nothing of HTTP or KIP and
 * never resolves a name. Used on the address a connection is about to use
 * (after DNS), so a name that resolves to a private address is refused. */
#ifndef KIPD_UTIL_NETPOLICY_H
#define KIPD_UTIL_NETPOLICY_H

#include <stdbool.h>
#include <sys/socket.h>

#include "util/error.h"

typedef struct netpolicy_s netpolicy_t;

/* allow: comma-separated CIDR blocks or single addresses (NULL or "" for
 * none), borrowed. Returns 0, -EINVAL (a block that is not CIDR; its text is
 * copied into err) or -ENOMEM; *out is new (free with netpolicy_free). */
int netpolicy_new(const char *allow, bool allow_loopback, netpolicy_t **out, char *err,
                  size_t err_len) KIPD_MUST_CHECK;
void netpolicy_free(netpolicy_t *p);

/* p (borrowed) may be NULL in the two functions below: the default policy,
 * no extra networks and no loopback. */

/* True when a connection to sa (AF_INET or AF_INET6; borrowed) is allowed. */
bool netpolicy_allows(const netpolicy_t *p, const struct sockaddr *sa);

/* For an IP literal (IPv4 or IPv6 text, without brackets): 1 allowed,
 * 0 refused, -EINVAL when text is not an IP literal. */
int netpolicy_allows_text(const netpolicy_t *p, const char *text);

#endif
