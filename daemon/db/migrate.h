/* db/migrate: bring a database to what the schema folder says.
 *
 * The schema folder holds two kinds of SQL (docs/architecture.md, "Schema
 * layout"):
 *
 *   migrations/NNN_name.sql   tables, columns, indexes, constraints, grants
 *                             on tables, data changes. Append-only: applied
 *                             once each, in numeric order, and recorded with
 *                             a SHA-256 checksum in kipd_migrations(version,
 *                             name, checksum, applied_at). A recorded file
 *                             whose checksum changed is an error.
 *   migrations/legacy.sha256  optional, sha256sum format ("<hex>  <name>"):
 *                             checksums of earlier versions of migrations,
 *                             accepted for a recorded version in place of the
 *                             current file's; such a row is re-recorded under
 *                             the current name and checksum. A listed version
 *                             that has no file any more is a retired
 *                             migration.
 *   functions/NN_name.sql     every function, view and trigger, applied in
 *                             numeric order after the migrations.
 *
 * One transaction, under pg_advisory_xact_lock(KIPD_MIGRATE_LOCK), so two
 * kipd instances starting together are safe: the second waits, then finds
 * nothing to do. When a migration is pending or the function files'
 * combined checksum differs from the one recorded in kipd_function_files,
 * the runner first drops every view, every trigger whose function lives in
 * one of code_schemas, and every function and procedure of code_schemas
 * (extension members excepted); then it applies the pending migrations,
 * then all function files (with check_function_bodies off, as pg_restore
 * does, since the files are ordered by family, not by dependency), and
 * records their checksum. The database then holds exactly what the files
 * define. Something else that depends on a dropped function (a column
 * default, a check constraint, a view in another schema) makes the drop
 * fail, and nothing is changed.
 *
 * The files are read at start-up (before the loop serves anyone); the SQL is
 * sent through the asynchronous pool.
 */
#ifndef KIPD_DB_MIGRATE_H
#define KIPD_DB_MIGRATE_H

#include "db/pg_pool.h"
#include "util/error.h"

#define KIPD_MIGRATE_LOCK 7305872414L

/* err == 0 on success; applied = number of migration files applied now.
 * On failure, message describes it, naming the file (and line) and the
 * SQLSTATE where there is one (borrowed, valid during the call); NULL on
 * success. err: -EIO (SQL error), -EINVAL (checksum mismatch, duplicate
 * numbers, a recorded migration this folder does not know), -ENOENT etc.
 * (reading schema_dir), -ECONNRESET / -ETIMEDOUT (no database). The
 * statements run without statement_timeout. */
typedef void (*migrate_done_cb)(void *data, int err, int applied, const char *message);

/* Reads schema_dir/migrations and schema_dir/functions (blocking) and
 * starts. code_schemas: NULL-terminated names of the schemas whose
 * functions, views and triggers the function files own (borrowed for the
 * call). cb is always called exactly once, never from inside this call,
 * unless this returns -EINVAL, -ENOMEM or -ECANCELED (pool closing).
 * schema_dir is borrowed for the call. */
int migrate_run(pg_pool_t *pool, const char *schema_dir, const char *const *code_schemas,
                migrate_done_cb cb, void *data) KIPD_MUST_CHECK;

#endif
