/* db/pg_resolve: which connection strings need a lookup, and what libpq
 * gets after it (host kept, hostaddr the addresses, ports per address). */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "db/pg_resolve.h"
#include "tap.h"

typedef struct {
  int calls;
  int status;
  char host[256], hostaddr[256], port[256], err[256];
} got_t;

static void on_done(void *data, int status, const char *host, const char *hostaddr, const char *port,
                    const char *err) {
  got_t *g = data;
  g->calls++;
  g->status = status;
  snprintf(g->host, sizeof(g->host), "%s", host ? host : "(null)");
  snprintf(g->hostaddr, sizeof(g->hostaddr), "%s", hostaddr ? hostaddr : "(null)");
  snprintf(g->port, sizeof(g->port), "%s", port ? port : "(null)");
  snprintf(g->err, sizeof(g->err), "%s", err ? err : "");
}

static bool needs(const char *conninfo) {
  pg_resolve_plan_t *plan = NULL;
  int rc = pg_resolve_plan_new(conninfo, &plan);
  bool need = rc == 0 && plan != NULL;
  pg_resolve_plan_free(plan);
  return need;
}

static got_t resolve(uv_loop_t *loop, const char *conninfo) {
  got_t g;
  memset(&g, 0, sizeof(g));
  pg_resolve_plan_t *plan = NULL;
  if (pg_resolve_plan_new(conninfo, &plan) != 0 || plan == NULL) {
    g.status = 999;
    return g;
  }
  pg_resolve_t *r = pg_resolve_start(loop, plan, on_done, &g);
  pg_resolve_plan_free(plan);  /* the request keeps its own copy */
  tap_ok(r != NULL, "lookup started for %s", conninfo);
  tap_is_int(g.calls, 0, "no callback inside pg_resolve_start");
  uv_run(loop, UV_RUN_DEFAULT);
  return g;
}

static bool is_loopback(const char *a) { return strcmp(a, "127.0.0.1") == 0 || strcmp(a, "::1") == 0; }

int main(void) {
  unsetenv("PGHOST");
  unsetenv("PGHOSTADDR");
  unsetenv("PGPORT");
  uv_loop_t loop;
  uv_loop_init(&loop);

  /* Nothing to resolve: libpq does no DNS for these. */
  tap_ok(!needs("dbname=kipd"), "no host: the default socket");
  tap_ok(!needs("kipd"), "a bare database name");
  tap_ok(!needs("host=/var/run/postgresql dbname=kipd"), "a socket folder");
  tap_ok(!needs("postgresql:///kipd?host=/tmp/sock&user=x"), "a socket folder in a URI");
  tap_ok(!needs("host=127.0.0.1 dbname=kipd"), "an IPv4 address");
  tap_ok(!needs("host=::1 dbname=kipd"), "an IPv6 address");
  tap_ok(!needs("host=db.example hostaddr=10.0.0.5 dbname=kipd"), "hostaddr given");
  tap_ok(!needs("host=a,b port=1,2,3"), "ports that do not match the hosts: libpq refuses first");
  /* Names. */
  tap_ok(needs("host=localhost dbname=kipd"), "a name");
  tap_ok(needs("postgresql://u@localhost:5433/kipd"), "a name in a URI");
  tap_ok(needs("host=/tmp,localhost"), "a name after a socket folder");
  setenv("PGHOST", "localhost", 1);
  tap_ok(needs("dbname=kipd"), "PGHOST, as libpq reads it");
  unsetenv("PGHOST");
  pg_resolve_plan_t *plan = (pg_resolve_plan_t *)1;
  tap_is_int(pg_resolve_plan_new("host='unterminated", &plan), -EINVAL, "an unreadable string");
  tap_ok(plan == NULL, "and no plan");

  got_t g = resolve(&loop, "host=localhost port=5433 dbname=kipd");
  tap_is_int(g.calls, 1, "one callback");
  tap_is_int(g.status, 0, "localhost resolves");
  tap_ok(strncmp(g.host, "localhost", 9) == 0, "host keeps the name (%s)", g.host);
  char first[64];
  snprintf(first, sizeof(first), "%.*s", (int)strcspn(g.hostaddr, ","), g.hostaddr);
  tap_ok(is_loopback(first), "hostaddr is a loopback address (%s)", g.hostaddr);
  tap_is_str(g.port, "(null)", "a single port is left to libpq");
  int commas_host = 0, commas_addr = 0;
  for (const char *p = g.host; *p; p++)
    commas_host += *p == ',';
  for (const char *p = g.hostaddr; *p; p++)
    commas_addr += *p == ',';
  tap_is_int(commas_host, commas_addr, "one host entry per address");

  g = resolve(&loop, "host=/tmp/sock,localhost,127.0.0.2 port=1,2,3");
  tap_is_int(g.status, 0, "a mixed list resolves");
  tap_ok(strncmp(g.host, "/tmp/sock,localhost", 19) == 0, "socket entry first, then the name (%s)", g.host);
  tap_ok(strncmp(g.hostaddr, ",", 1) == 0, "the socket's hostaddr entry is empty (%s)", g.hostaddr);
  size_t n = strlen(g.hostaddr);
  tap_ok(n >= 10 && strcmp(g.hostaddr + n - 10, ",127.0.0.2") == 0, "the address entry stays (%s)", g.hostaddr);
  tap_ok(strncmp(g.port, "1,2", 3) == 0 && g.port[strlen(g.port) - 1] == '3', "ports follow their hosts (%s)",
         g.port);

  g = resolve(&loop, "host=kipd-no-such-host.invalid dbname=kipd");
  tap_is_int(g.calls, 1, "one callback for a failure");
  tap_ok(g.status < 0, "a name that does not resolve fails");
  tap_ok(strstr(g.err, "could not resolve host name \"kipd-no-such-host.invalid\"") == g.err,
         "and says which (%s)", g.err);

  /* Abandoned: no callback, nothing leaks (ASan/valgrind runs check it). */
  got_t quiet;
  memset(&quiet, 0, sizeof(quiet));
  pg_resolve_plan_new("host=localhost", &plan);
  pg_resolve_t *r = pg_resolve_start(&loop, plan, on_done, &quiet);
  pg_resolve_plan_free(plan);
  pg_resolve_abandon(r);
  uv_run(&loop, UV_RUN_DEFAULT);
  tap_is_int(quiet.calls, 0, "an abandoned lookup calls nobody");

  tap_is_int(uv_loop_close(&loop), 0, "the loop closes: no request left behind");
  return tap_done();
}
