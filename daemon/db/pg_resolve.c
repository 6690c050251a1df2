/* db/pg_resolve: see pg_resolve.h. */
#include "db/pg_resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_RESOLVE_MAX_HOSTS 16
#define PG_RESOLVE_MAX_ADDRS 8   /* addresses kept per name */

struct pg_resolve_plan_s {
  int n;
  char *hosts[PG_RESOLVE_MAX_HOSTS];
  char *ports[PG_RESOLVE_MAX_HOSTS];  /* per host, or all NULL (libpq's port applies) */
  bool name[PG_RESOLVE_MAX_HOSTS];    /* a DNS name, not a socket path or an address */
};

typedef struct resolve_buf_s {
  char *s;
  size_t len, cap;
} resolve_buf_t;

struct pg_resolve_s {
  uv_getaddrinfo_t req;
  uv_loop_t *loop;
  pg_resolve_plan_t plan;   /* a copy: the request may outlive its owner */
  int next;
  bool abandoned;
  pg_resolve_cb cb;
  void *data;
  resolve_buf_t host, hostaddr, port;
  int entries;
};

/* ---- the plan ---------------------------------------------------------------- */

static bool resolve__is_address(const char *s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Split a comma list into out (new strings); returns the count, -1 when too
 * many or out of memory. */
static int resolve__split(const char *list, char **out) {
  int n = 0;
  const char *p = list;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (n == PG_RESOLVE_MAX_HOSTS)
      return -1;
    out[n] = strndup(p, len);
    if (out[n] == NULL)
      return -1;
    n++;
    if (comma == NULL)
      return n;
    p = comma + 1;
  }
}

void pg_resolve_plan_free(pg_resolve_plan_t *plan) {
  if (plan == NULL)
    return;
  for (int i = 0; i < plan->n; i++) {
    free(plan->hosts[i]);
    free(plan->ports[i]);
  }
  free(plan);
}

int pg_resolve_plan_new(const char *conninfo, pg_resolve_plan_t **out) {
  *out = NULL;
  const char *host = NULL, *hostaddr = NULL, *port = NULL;
  PQconninfoOption *opts = NULL;
  bool is_conninfo = strchr(conninfo, '=') != NULL || strncmp(conninfo, "postgresql://", 13) == 0 ||
                     strncmp(conninfo, "postgres://", 11) == 0;
  if (is_conninfo) {
    char *errmsg = NULL;
    opts = PQconninfoParse(conninfo, &errmsg);
    if (opts == NULL) {
      PQfreemem(errmsg);
      return -EINVAL;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
      if (o->val == NULL || o->val[0] == '\0')
        continue;
      if (strcmp(o->keyword, "host") == 0)
        host = o->val;
      else if (strcmp(o->keyword, "hostaddr") == 0)
        hostaddr = o->val;
      else if (strcmp(o->keyword, "port") == 0)
        port = o->val;
    }
  }
  /* What libpq would take from the environment (read at start-up only). */
  if (host == NULL)
    host = getenv("PGHOST");
  if (hostaddr == NULL)
    hostaddr = getenv("PGHOSTADDR");
  if (port == NULL)
    port = getenv("PGPORT");

  int rc = 0;
  pg_resolve_plan_t *plan = NULL;
  if (host == NULL || host[0] == '\0' || (hostaddr != NULL && hostaddr[0] != '\0'))
    goto done;  /* a unix socket, or addresses given: libpq resolves nothing */
  plan = calloc(1, sizeof(*plan));
  if (plan == NULL) {
    rc = -ENOMEM;
    goto done;
  }
  plan->n = resolve__split(host, plan->hosts);
  if (plan->n < 0) {
    plan->n = 0;
    rc = -EINVAL;
    goto done;
  }
  bool any_name = false;
  for (int i = 0; i < plan->n; i++) {
    const char *h = plan->hosts[i];
    plan->name[i] = h[0] != '\0' && h[0] != '/' && h[0] != '@' && !resolve__is_address(h);
    any_name = any_name || plan->name[i];
  }
  if (port != NULL && strchr(port, ',') != NULL) {
    char *ports[PG_RESOLVE_MAX_HOSTS];
    int np = resolve__split(port, ports);
    if (np != plan->n) {
      /* libpq refuses a port list that does not match the hosts, before
       * any lookup; leave that answer to it. */
      for (int i = 0; i < np; i++)
        free(ports[i]);
      any_name = false;
    } else {
      for (int i = 0; i < np; i++)
        plan->ports[i] = ports[i];
    }
  }
  if (!any_name)
    goto done;
  *out = plan;
  plan = NULL;
done:
  pg_resolve_plan_free(plan);
  PQconninfoFree(opts);
  return rc;
}

/* ---- resolving ------------------------------------------------------------ */

static int resolve__append(resolve_buf_t *b, bool comma, const char *s) {
  size_t need = b->len + (comma ? 1 : 0) + strlen(s) + 1;
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 128;
    while (cap < need)
      cap *= 2;
    char *p = realloc(b->s, cap);
    if (p == NULL)
      return -ENOMEM;
    b->s = p;
    b->cap = cap;
  }
  b->len += (size_t)snprintf(b->s + b->len, b->cap - b->len, "%s%s", comma ? "," : "", s);
  return 0;
}

/* One entry of the three lists: host name, address ("" for a socket path),
 * port (when per host). */
static int resolve__entry(pg_resolve_t *r, int i, const char *addr) {
  bool comma = r->entries > 0;
  if (resolve__append(&r->host, comma, r->plan.hosts[i]) < 0 ||
      resolve__append(&r->hostaddr, comma, addr) < 0 ||
      (r->plan.ports[0] != NULL && resolve__append(&r->port, comma, r->plan.ports[i]) < 0))
    return -ENOMEM;
  r->entries++;
  return 0;
}

static void resolve__free(pg_resolve_t *r) {
  for (int i = 0; i < r->plan.n; i++) {
    free(r->plan.hosts[i]);
    free(r->plan.ports[i]);
  }
  free(r->host.s);
  free(r->hostaddr.s);
  free(r->port.s);
  free(r);
}

static void resolve__finish(pg_resolve_t *r, int status, const char *err) {
  if (!r->abandoned) {
    if (status == 0)
      r->cb(r->data, 0, r->host.s, r->hostaddr.s, r->plan.ports[0] != NULL ? r->port.s : NULL, NULL);
    else
      r->cb(r->data, status, NULL, NULL, NULL, err);
  }
  resolve__free(r);
}

static void resolve__on_addr(uv_getaddrinfo_t *req, int status, struct addrinfo *res);

/* Add the entries that need no lookup, then look up the next name; after
 * the last one, deliver. On the first call (from pg_resolve_start) a
 * failure frees r without a callback and returns < 0. */
static int resolve__next(pg_resolve_t *r, bool first) {
  while (r->next < r->plan.n && !r->plan.name[r->next]) {
    const char *h = r->plan.hosts[r->next];
    if (resolve__entry(r, r->next, resolve__is_address(h) ? h : "") < 0) {
      if (first) {
        resolve__free(r);
        return -ENOMEM;
      }
      resolve__finish(r, -ENOMEM, "out of memory");
      return -ENOMEM;
    }
    r->next++;
  }
  if (r->next == r->plan.n) {  /* never on the first call: the plan has a name */
    resolve__finish(r, 0, NULL);
    return 0;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(r->loop, &r->req, resolve__on_addr, r->plan.hosts[r->next], NULL, &hints);
  if (rc < 0) {
    if (first) {
      resolve__free(r);
      return rc;
    }
    char err[300];
    snprintf(err, sizeof(err), "could not resolve host name \"%s\": %s", r->plan.hosts[r->next],
             uv_strerror(rc));
    resolve__finish(r, rc, err);
  }
  return rc;
}

static void resolve__on_addr(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  pg_resolve_t *r = req->data;
  if (r->abandoned) {
    uv_freeaddrinfo(res);
    resolve__free(r);
    return;
  }
  int i = r->next;
  if (status < 0) {
    char err[300];
    snprintf(err, sizeof(err), "could not resolve host name \"%s\": %s", r->plan.hosts[i],
             uv_strerror(status));
    uv_freeaddrinfo(res);
    resolve__finish(r, status, err);
    return;
  }
  char seen[PG_RESOLVE_MAX_ADDRS][INET6_ADDRSTRLEN];
  int kept = 0;
  for (struct addrinfo *a = res; a != NULL && kept < PG_RESOLVE_MAX_ADDRS; a = a->ai_next) {
    char ip[INET6_ADDRSTRLEN];
    const void *src = a->ai_family == AF_INET
                          ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                          : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
    if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
        inet_ntop(a->ai_family, src, ip, sizeof(ip)) == NULL)
      continue;
    bool dup = false;
    for (int k = 0; k < kept && !dup; k++)
      dup = strcmp(seen[k], ip) == 0;
    if (dup)
      continue;
    memcpy(seen[kept++], ip, sizeof(ip));
    if (resolve__entry(r, i, ip) < 0) {
      uv_freeaddrinfo(res);
      resolve__finish(r, -ENOMEM, "out of memory");
      return;
    }
  }
  uv_freeaddrinfo(res);
  if (kept == 0) {
    char err[300];
    snprintf(err, sizeof(err), "could not resolve host name \"%s\": no IPv4 or IPv6 address",
             r->plan.hosts[i]);
    resolve__finish(r, -EHOSTUNREACH, err);
    return;
  }
  r->next++;
  resolve__next(r, false);
}

pg_resolve_t *pg_resolve_start(uv_loop_t *loop, const pg_resolve_plan_t *plan, pg_resolve_cb cb,
                               void *data) {
  pg_resolve_t *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NULL;
  r->loop = loop;
  r->cb = cb;
  r->data = data;
  r->req.data = r;
  r->plan.n = plan->n;
  for (int i = 0; i < plan->n; i++) {
    r->plan.name[i] = plan->name[i];
    r->plan.hosts[i] = strdup(plan->hosts[i]);
    r->plan.ports[i] = plan->ports[i] ? strdup(plan->ports[i]) : NULL;
    if (r->plan.hosts[i] == NULL || (plan->ports[i] != NULL && r->plan.ports[i] == NULL)) {
      r->plan.n = i + 1;
      resolve__free(r);
      return NULL;
    }
  }
  /* The plan holds at least one name, so resolve__next reaches
   * uv_getaddrinfo before it could deliver: the callback never runs inside
   * this call. */
  return resolve__next(r, true) < 0 ? NULL : r;
}

void pg_resolve_abandon(pg_resolve_t *r) {
  if (r == NULL)
    return;
  r->abandoned = true;
  uv_cancel((uv_req_t *)&r->req);  /* or, already running, its callback frees it */
}

PGconn *pg_resolve_connect(const char *conninfo, const char *options, const char *application_name,
                           const char *host, const char *hostaddr, const char *port) {
  const char *keys[8];
  const char *values[8];
  int k = 0;
  /* dbname first: with expand_dbname it is expanded as a conninfo or URI,
   * and the keywords after it override what it sets. */
  keys[k] = "dbname";
  values[k++] = conninfo;
  if (options != NULL) {
    keys[k] = "options";
    values[k++] = options;
  }
  if (application_name != NULL) {
    keys[k] = "application_name";
    values[k++] = application_name;
  }
  if (hostaddr != NULL) {
    keys[k] = "host";
    values[k++] = host;
    keys[k] = "hostaddr";
    values[k++] = hostaddr;
    if (port != NULL) {
      keys[k] = "port";
      values[k++] = port;
    }
  }
  keys[k] = NULL;
  values[k] = NULL;
  return PQconnectStartParams(keys, values, 1);
}
