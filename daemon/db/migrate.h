/* db/migrate: apply the numbered plain-SQL migrations in schema/.
 *
 * Files are named NNN_description.sql (e.g. 001_core.sql) and applied in
 * numeric order. All pending files are applied in ONE transaction that first
 * takes pg_advisory_xact_lock(KIPD_MIGRATE_LOCK), so two kipd instances
 * starting together are safe: the second waits, then finds nothing to do.
 * Each applied file is recorded in kipd_migrations(version, name, checksum,
 * applied_at). A recorded file whose checksum changed is an error.
 *
 * The files are read at start-up (before the loop serves anyone); the SQL is
 * sent through the asynchronous pool.
 */
#ifndef KIPD_DB_MIGRATE_H
#define KIPD_DB_MIGRATE_H

#include "db/pg_pool.h"
#include "util/error.h"

#define KIPD_MIGRATE_LOCK 7305872414L

/* err == 0 on success; applied = number of files applied now. On failure,
 * message describes it, naming the file (and line) and the SQLSTATE where
 * there is one (borrowed, valid during the call); NULL on success.
 * err: -EIO (SQL error), -EINVAL (checksum mismatch, duplicate numbers),
 * -ENOENT etc. (reading schema_dir), -ECONNRESET / -ETIMEDOUT (no
 * database). The migration statements run without statement_timeout. */
typedef void (*migrate_done_cb)(void *data, int err, int applied, const char *message);

/* Reads schema_dir (blocking) and starts. cb is always called exactly once,
 * never from inside this call, unless this returns -EINVAL, -ENOMEM or
 * -ECANCELED (pool closing). schema_dir is borrowed for the call. */
int migrate_run(pg_pool_t *pool, const char *schema_dir, migrate_done_cb cb, void *data) KIPD_MUST_CHECK;

#endif
