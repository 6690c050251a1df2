#include "app/health.h"

#include "app/internal.h"

#include <stdio.h>
#include <string.h>

/* The ping also says whether the serving role can only append to the audit
 * log (schema/functions/02_audit.sql): false when kipd runs without --db-owner. */
static const pg_stmt_t health__ping = {"health_ping", "SELECT kip.audit_append_only()", 0};

void health_live(kreq_t *r) {
  kreq_reply_json(r, 200, json_pack("{s:s}", "status", "ok"), NULL, 0);
}

static void health__on_ping(kreq_t *r, const kreq_row_t *row) {
  bool append_only = kreq_row_bool(row, 0);
  kreq_reply_json(r, 200, json_pack("{s:s, s:{s:b}}", "status", "ready", "audit", "append_only",
                                    append_only), NULL, 0);
}

void health_ready(kreq_t *r) {
  static const char *none[1] = {NULL};
  kreq_exec(r, &health__ping, none, 200, health__on_ping);
}
