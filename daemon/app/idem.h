/* idem: Idempotency-Key on POST (docs/api.md, "Idempotency").
 *
 * app_handle() calls idem_begin() for every request: on a POST that carries
 * the header it checks the key (1 to 255 printable ASCII characters) and
 * notes it with the SHA-256 of the request (method, path, query and body)
 * in the kreq_t. kreq_exec() then hands the route's write to idem_exec(),
 * which runs it as one transaction of two statements sent in one round trip
 * (schema/functions/06_idempotency.sql):
 *
 *   1. kip.idem_claim(ctx, key, hash): authenticates, takes the key's
 *      advisory lock without waiting (409 while another request with the key
 *      runs), 422 for a stored answer to another request, SQLSTATE KI200 for
 *      a stored answer to this one;
 *   2. the route's own statement, wrapped at first use (from its constant
 *      text, never from request data) so that its answer row also goes to
 *      kip.idem_store() in the same transaction.
 *
 * On KI200 the transaction is rolled back and kip.idem_replay() answers
 * with the stored answer (checked against the access rule and audited as a
 * read). The stored body is the database's, with CPR numbers sealed; it is
 * revealed like any answer (app/kreq_cpr.c). */
#ifndef KIPD_APP_IDEM_H
#define KIPD_APP_IDEM_H

#include "app/kreq.h"
#include "db/pg_stmt.h"

typedef struct idem_cache_s idem_cache_t;

/* Check the request's Idempotency-Key, if any, and note it in r (r->idem_key,
 * r->idem_hash). Call after the body is parsed and before the handler runs.
 * GET and HEAD ignore the header; PUT, PATCH and DELETE only check it.
 * Returns 0 to go on, or a negative code after replying: 400 for a bad or
 * repeated header, 422 idempotency_not_supported on a route that refuses it
 * (ROUTE_PUBLIC, ROUTE_NO_IDEMPOTENCY). A ROUTE_SAFE POST (a search) checks
 * the key and runs as ever. */
int idem_begin(kreq_t *r) KIPD_MUST_CHECK;

/* Run stmt with params for a request that carries a key, as described
 * above; the reply is the generic row reply (kreq_reply_row()). stmt is
 * borrowed (static const); params as for kreq_exec(). */
void idem_exec(kreq_t *r, const pg_stmt_t *stmt, const char **params, int ok_status);

/* The wrapped statements made so far; freed with the app, after the pool. */
void idem_cache_free(idem_cache_t *cache);

#endif
