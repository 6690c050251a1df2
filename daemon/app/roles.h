/* roles: the database roles kipd uses (docs/audit.md).
 *
 * The owner runs the migrations and owns everything; the runtime role serves
 * every request as a member of the NOLOGIN group role kipd_runtime, to which
 * schema/migrations/009_audit.sql grants what a request needs: on the audit log only
 * SELECT and INSERT. In embedded mode kipd makes the roles itself. */
#ifndef KIPD_APP_ROLES_H
#define KIPD_APP_ROLES_H

#define ROLES_EMBEDDED_OWNER "kipd_owner"
#define ROLES_EMBEDDED_RUNTIME "kipd_app"

/* SQL for the embedded cluster's superuser, run at every start after the
 * database exists (cluster_config_t.setup_sql); idempotent. It creates
 * kipd_owner (LOGIN; owns the database and runs the migrations),
 * kipd_runtime (NOLOGIN) and kipd_app (LOGIN, member of kipd_runtime; the
 * pool), and hands to kipd_owner what a kipd before 009 made as the
 * superuser. */
extern const char roles_embedded_setup_sql[];

#endif
