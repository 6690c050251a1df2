/* cpr_store: the database side of CPR encryption, at start-up and in
 * kipd --rotate-key (util/cpr_crypt.h has the cryptography).
 *
 * Both run on one session connection of the pool (asynchronous libpq, like
 * the migrations) in one transaction under an advisory lock, before the HTTP
 * server listens; the table rewrite after it runs on the owner's pool. Both may read and write the key file (blocking I/O, which
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
 *   - Version 1 tokens (not bound to a plan; written before migration 021)
 *     are re-sealed as version 2, bound to their row's plan id, in batches,
 *     only while the row still holds version 1. One that does not open is
 *     left (it reads as null) and counted.
 *   - When anything was sealed anew, kip.cpr_rewrite gets a row in the
 *     same transaction: a request for the table rewrite.
 *   - The keyring's current key becomes the registry's current key.
 *
 * After the commit, cpr_store_open rewrites the tables when
 * kip.cpr_rewrite asks for it (also when a rotation asked): VACUUM (FULL) kip.plans, kip.cpr_pending on
 * a connection of owner_pool (the owner role; VACUUM cannot run in a
 * transaction, and only the owner may rewrite), under a session advisory
 * lock that one kipd at a time takes (another starting beside it skips the
 * rewrite), then the request is deleted. The replaced row versions, with
 * clear numbers or tokens under a retired key, leave the table's files.
 * A failure of the rewrite does not fail the call: result->rewrite_problem
 * says why and what to run by hand, and the request stays for the next
 * start.
 *
 * cpr_store_rotate(), kipd --rotate-key (kipd must be stopped; a running
 * kipd is detected by its connections, application_name 'kipd'):
 *   1. a new key is added to the key file (atomic rewrite): both keys;
 *   2. in one transaction: the new key is registered, every token is
 *      re-sealed and every blind index recomputed under it, the old keys
 *      are dropped from the registry and the new one made current;
 *   3. the key file is rewritten with the new key only.
 *   Version 1 tokens are re-sealed as version 2 on the way. The rotation
 *   asks for the table rewrite (kip.cpr_rewrite), which the next start
 *   does: tokens under the retired key leave the table's files then.
 *   A crash between any two steps leaves every row decryptable with the
 *   file on disk (the registry says which of the file's keys is current).
 */
#ifndef KIPD_APP_CPR_STORE_H
#define KIPD_APP_CPR_STORE_H

#include "db/pg_pool.h"
#include "util/cpr_crypt.h"
#include "util/error.h"

typedef struct cpr_store_result_s {
  long sealed;                  /* open: pending numbers sealed; rotate: all of them re-sealed */
  long upgraded;                /* open: version 1 tokens re-sealed as version 2 */
  long unopened;                /* open: version 1 tokens that did not open, left as they are */
  bool rewritten;               /* the tables were rewritten (VACUUM FULL) */
  const char *rewrite_problem;  /* NULL, or why a requested rewrite did not run and what to do */
} cpr_store_result_t;

/* Called once. err 0: done, result says what was done (borrowed for the
 * call). Otherwise message says why (borrowed for the call; never holds
 * key material or a CPR number). */
typedef void (*cpr_store_cb)(void *data, int err, const cpr_store_result_t *result, const char *message);

/* *keyring may be NULL (no key file yet): on success it holds the keyring,
 * new, owned by the caller, with the database's current key current.
 * owner_pool (borrowed; NULL: pool) is the owner role's, for the table
 * rewrite. key_file is borrowed until cb. */
int cpr_store_open(pg_pool_t *pool, pg_pool_t *owner_pool, const char *key_file, cpr_keyring_t **keyring,
                   cpr_store_cb cb, void *data) KIPD_MUST_CHECK;

/* keyring (borrowed, changed in place) must hold the registry's keys. */
int cpr_store_rotate(pg_pool_t *pool, const char *key_file, cpr_keyring_t *keyring, cpr_store_cb cb,
                     void *data) KIPD_MUST_CHECK;

#endif
