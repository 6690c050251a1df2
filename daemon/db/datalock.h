/* db/datalock: one kipd per data folder.
 *
 * Two kipd on one data folder would fight over its PostgreSQL: the second
 * would take the first one's live postmaster for a leftover and shut it
 * down (issue #16). So an embedded kipd holds an exclusive flock(2) on
 * DATA_DIR/kipd.lock for its whole life, with its PID written in the file.
 * A second kipd is refused at once, told the PID that holds the folder.
 *
 * The lock belongs to the open file, not to a PID guessed from a file: the
 * kernel drops it when kipd exits in any way, kill -9 included, so a stale
 * lock file never blocks a start. The descriptor is close-on-exec, so the
 * postmaster and initdb never inherit it (a postmaster orphaned by a killed
 * kipd does not keep the folder locked; the next kipd shuts it down, see
 * db/cluster.h). The file is never unlinked: unlinking would let a second
 * kipd lock a new file while a third still holds the old one.
 *
 * Blocking file work: start-up only, before the loop runs.
 */
#ifndef KIPD_DB_DATALOCK_H
#define KIPD_DB_DATALOCK_H

#include <stddef.h>

#include "util/error.h"

typedef struct datalock_s datalock_t;

/* Create data_dir if missing (0700, parents 0755), lock DATA_DIR/kipd.lock
 * and write our PID into it. Returns 0 with *out new; -EBUSY when another
 * process holds the lock, with its PID in *holder_pid (0 if it could not be
 * read); or -errno. err (err_len bytes) gets a message naming the folder and,
 * for -EBUSY, the PID. data_dir is borrowed. */
int datalock_acquire(const char *data_dir, datalock_t **out, long *holder_pid,
                     char *err, size_t err_len) KIPD_MUST_CHECK;

/* The lock file's path (borrowed from l). */
const char *datalock_path(const datalock_t *l);

/* Empty the PID from the file, unlock and free. NULL is fine. */
void datalock_release(datalock_t *l);

#endif
