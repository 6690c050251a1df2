/* db/pg_stmt: a named SQL statement, as the pool prepares it.
 *
 * Kept apart from db/pg_pool.h so that the route tables (app/router.h,
 * api/) can name their statements without seeing libpq. */
#ifndef KIPD_DB_PG_STMT_H
#define KIPD_DB_PG_STMT_H

/* A statement with a stable name. Declare these as static const; the pool
 * prepares each on each connection the first time it is used. */
typedef struct pg_stmt_s {
  const char *name;   /* unique, e.g. "plans_get" */
  const char *sql;    /* with $1..$n placeholders */
  int nparams;
} pg_stmt_t;

#endif
