/* kipd error codes.
 *
 * Every fallible function returns 0 on success or a negative errno value on
 * failure, and callers forward it unchanged (libuv's convention). The values
 * used across layers:
 *   -ENOMEM      allocation failed
 *   -EINVAL      bad argument or malformed input
 *   -EAGAIN      try again (e.g. serialization failure)
 *   -ETIMEDOUT   a timeout fired
 *   -ECONNRESET  the peer (client or database) went away
 *   -ENOSPC      a bounded queue is full
 *   -ECANCELED   the operation was cancelled (shutdown)
 *   -EIO         the database answered with an error (see the PGresult)
 *   -EPROTO      protocol violation
 */
#ifndef KIPD_UTIL_ERROR_H
#define KIPD_UTIL_ERROR_H

#include <errno.h>

#define KIPD_MUST_CHECK __attribute__((warn_unused_result))

#ifndef container_of
#include <stddef.h>
#define container_of(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#define KIPD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
