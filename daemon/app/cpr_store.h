/* cpr_store: the database side of CPR encryption, at start-up and in
 * kipd --rotate-key (util/cpr_crypt.h has the cryptography).
 *
 * Both run on one session connection of the pool (asynchronous libpq, like
 * the migrations) in one transaction under an advisory lock, before the HTTP
 * server listens. Both may read and write the key file (blocking I/O, which
 * is allowed then: no client is being served).
 *
 * cpr_store_open(), at every start:
 *   - kip.cpr_keys, the registry of the keys the database's tokens are
 *     sealed under, must match the key file (id and fingerprint). A missing
 *     or foreign key file is refused with a message saying which key is
 *     missing: a wrong key file never silently turns CPR numbers into null.
 *   - No key file and an empty registry (a new installation): a new key file
 *     is created (0600, atomically; a concurrent kipd creating the same
 *     file wins or loses cleanly) and its key registered as current.
 *   - A sample of the stored tokens must decrypt.
 *   - Clear numbers left in kip.cpr_pending (an existing database migrated
 *     by 010, or the benchmark generator) are sealed and deleted.
 *   - The keyring's current key becomes the registry's current key.
 *
 * cpr_store_rotate(), kipd --rotate-key (kipd must be stopped; a running
 * kipd is detected by its connections, application_name 'kipd'):
 *   1. a new key is added to the key file (atomic rewrite): both keys;
 *   2. in one transaction: the new key is registered, every token is
 *      re-sealed and every blind index recomputed under it, the old keys
 *      are dropped from the registry and the new one made current;
 *   3. the key file is rewritten with the new key only.
 *   A crash between any two steps leaves every row decryptable with the
 *   file on disk (the registry says which of the file's keys is current).
 */
#ifndef KIPD_APP_CPR_STORE_H
#define KIPD_APP_CPR_STORE_H

#include "db/pg_pool.h"
#include "util/cpr_crypt.h"
#include "util/error.h"

/* Called once. err 0: done, count is the number of CPR numbers sealed
 * (open: pending ones; rotate: all of them). Otherwise message says why
 * (borrowed for the call; never holds key material or a CPR number). */
typedef void (*cpr_store_cb)(void *data, int err, long count, const char *message);

/* *keyring may be NULL (no key file yet): on success it holds the keyring,
 * new, owned by the caller, with the database's current key current.
 * key_file is borrowed until cb. */
int cpr_store_open(pg_pool_t *pool, const char *key_file, cpr_keyring_t **keyring, cpr_store_cb cb,
                   void *data) KIPD_MUST_CHECK;

/* keyring (borrowed, changed in place) must hold the registry's keys. */
int cpr_store_rotate(pg_pool_t *pool, const char *key_file, cpr_keyring_t *keyring, cpr_store_cb cb,
                     void *data) KIPD_MUST_CHECK;

#endif
