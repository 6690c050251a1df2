/* db/pg_resolve: the host names of a libpq connection string, resolved off
 * the loop.
 *
 * Given a host name, PQconnectPoll resolves it with a blocking getaddrinfo
 * inside the loop thread. So before each connection attempt the names are
 * resolved with uv_getaddrinfo (libuv's threadpool), and libpq gets the
 * addresses as `hostaddr`, with `host` kept for TLS verification, Kerberos
 * and .pgpass. Resolving again at every attempt follows a failover that
 * moves a DNS name.
 *
 *   pg_resolve_plan_new()   at start-up: parse the connection string (and
 *                           PGHOST/PGHOSTADDR/PGPORT, as libpq would); NULL
 *                           plan when there is nothing to resolve (a unix
 *                           socket, IP addresses, or hostaddr given)
 *   pg_resolve_start()      resolve every name; the callback gets the
 *                           host, hostaddr and port lists to pass to libpq
 *   pg_resolve_abandon()    the owner no longer wants the answer; the
 *                           request frees itself when libuv returns it
 */
#ifndef KIPD_DB_PG_RESOLVE_H
#define KIPD_DB_PG_RESOLVE_H

#include <libpq-fe.h>
#include <uv.h>

typedef struct pg_resolve_plan_s pg_resolve_plan_t;
typedef struct pg_resolve_s pg_resolve_t;

/* status 0: host, hostaddr and port (port may be NULL: leave libpq's) are
 * the keyword values to add after the connection string; they live until
 * the callback returns. status < 0: err says which name failed and why. */
typedef void (*pg_resolve_cb)(void *data, int status, const char *host, const char *hostaddr,
                              const char *port, const char *err);

/* 0 and *out NULL: nothing to resolve. -EINVAL: unreadable string. */
int pg_resolve_plan_new(const char *conninfo, pg_resolve_plan_t **out);
void pg_resolve_plan_free(pg_resolve_plan_t *plan);

/* Starts resolving; the callback runs later on the loop (never inside this
 * call), unless the request was abandoned. Returns NULL (and calls nothing) when
 * out of memory or when libuv cannot start the lookup. */
pg_resolve_t *pg_resolve_start(uv_loop_t *loop, const pg_resolve_plan_t *plan, pg_resolve_cb cb,
                               void *data);
void pg_resolve_abandon(pg_resolve_t *r);

/* PQconnectStartParams on conninfo (expanded as a connection string or
 * URI), with options and application_name when not NULL, and the host,
 * hostaddr and port a lookup answered (hostaddr NULL: the string's own)
 * after it, which they override. The pool's connections and the LISTEN
 * connection start the same way. */
PGconn *pg_resolve_connect(const char *conninfo, const char *options, const char *application_name,
                           const char *host, const char *hostaddr, const char *port);

#endif
