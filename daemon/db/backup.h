/* db/backup: kipd --backup and kipd --restore, the embedded cluster's
 * database dumped and restored by PostgreSQL's own pg_dump and pg_restore.
 *
 * Knows no KIP word. The dump is pg_dump --format=custom: one consistent
 * snapshot (a repeatable-read transaction), so it can be taken while kipd
 * serves. It holds the database only: the roles are made by the set-up SQL
 * of every cluster start (app/roles.c), before the restore runs, so the
 * dump's owners and grants apply to them. The CPR key file lives outside
 * the database and is never in a dump (docs/operations.md).
 *
 * Blocking (fork, exec, waitpid): one-shot CLI modes only, before or
 * instead of the loop serving anyone.
 */
#ifndef KIPD_DB_BACKUP_H
#define KIPD_DB_BACKUP_H

#include <stddef.h>

#include "util/error.h"

/* pg_dump --format=custom of the database conninfo names into a new file
 * (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600 whatever the umask; an existing file
 * is refused with -EEXIST). On failure the partial file is removed. Returns
 * 0 or -errno with a message in err. */
int backup_dump(const char *pg_bindir, const char *conninfo, const char *file,
                char *err, size_t err_len) KIPD_MUST_CHECK;

/* pg_restore of file into the database conninfo names, in one transaction,
 * stopping at the first error. Returns 0 or -errno with a message in err. */
int backup_restore(const char *pg_bindir, const char *conninfo, const char *file,
                   char *err, size_t err_len) KIPD_MUST_CHECK;

/* file is a readable pg_dump custom-format file (its "PGDMP" header), or
 * -errno / -EINVAL with a message in err. */
int backup_check_dump(const char *file, char *err, size_t err_len) KIPD_MUST_CHECK;

/* 0 when dir is missing or an empty directory; -ENOTEMPTY (or -ENOTDIR,
 * -errno) otherwise, with a message in err. */
int backup_check_empty_dir(const char *dir, char *err, size_t err_len) KIPD_MUST_CHECK;

#endif
