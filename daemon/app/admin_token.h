/* admin_token: the bootstrap admin, once per database.
 *
 * A fresh token is written to a temporary file beside the final one (0600,
 * fsync'ed) before the database learns its hash (kip.bootstrap(), under an
 * advisory lock). When the database made the admin, the file is renamed
 * into place; when an admin existed already, it is removed. So a token the
 * database knows is always on disk, and a token on disk always works.
 *
 * The file is written before the loop serves anyone (start-up). */
#ifndef KIPD_APP_ADMIN_TOKEN_H
#define KIPD_APP_ADMIN_TOKEN_H

#include <stdbool.h>

#include "db/pg_pool.h"
#include "util/error.h"

/* err 0: done (created: the admin was made now and the token is at path);
 * otherwise -errno, already logged. */
typedef void (*admin_token_cb)(void *data, int err, bool created);

/* Bootstrap the admin on pool, writing its token to path (borrowed; must
 * live until cb). Returns 0 and calls cb later exactly once, or -errno
 * (logged) without calling it. */
int admin_token_bootstrap(pg_pool_t *pool, const char *path, admin_token_cb cb, void *data) KIPD_MUST_CHECK;

#endif
