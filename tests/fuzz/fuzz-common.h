/* Shared by the fuzz targets that work on the route table: parse an input
 * "METHOD /path[?query]\n<rest>" and find its route, as app_handle() does.
 * Header-only, static functions: each target includes it once. */
#ifndef KIPD_FUZZ_COMMON_H
#define KIPD_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app/router.h"
#include "util/validate.h"

static route_t *fz_routes;
static size_t fz_n_routes;

static void fz_routes_load(void) {
  if (fz_routes == NULL && api_routes(&fz_routes, &fz_n_routes) != 0)
    abort();
}

/* Split data into a NUL-terminated first line (method, space, target) and
 * the rest. Returns a new buffer holding both (free it), or NULL when there
 * is no first line. */
typedef struct fz_input_s {
  char *buf;
  const char *method;
  char *path;          /* up to '?' */
  const char *query;   /* after '?', or NULL */
  const char *rest;    /* NUL-terminated */
  size_t rest_len;
} fz_input_t;

static int fz_input_split(const uint8_t *data, size_t size, fz_input_t *in) {
  memset(in, 0, sizeof(*in));
  const uint8_t *nl = memchr(data, '\n', size);
  if (nl == NULL)
    return -1;
  in->buf = malloc(size + 1);
  if (in->buf == NULL)
    abort();
  memcpy(in->buf, data, size);
  in->buf[size] = '\0';
  size_t line = (size_t)(nl - data);
  in->buf[line] = '\0';
  in->rest = in->buf + line + 1;
  in->rest_len = size - line - 1;
  char *sp = strchr(in->buf, ' ');
  if (sp == NULL) {
    free(in->buf);
    in->buf = NULL;
    return -1;
  }
  *sp = '\0';
  in->method = in->buf;
  in->path = sp + 1;
  char *q = strchr(in->path, '?');
  if (q != NULL) {
    *q = '\0';
    in->query = q + 1;
  }
  return 0;
}

/* The route of in, as app_handle() finds it (UUID path parameters
 * included), or NULL. scratch: strlen(path) + 1 bytes. */
static const route_t *fz_route(const fz_input_t *in, char *scratch, router_match_t *m) {
  if (router_match(fz_routes, fz_n_routes, in->method, in->path, scratch, m) != 0)
    return NULL;
  for (size_t i = 0; i < m->n_params; i++)
    if (!validate_uuid(m->params[i]))
      return NULL;
  return m->route;
}

/* Oracle for a jc_check() result: a failure has 1..JC_MAX_ERRORS errors,
 * each with a field and a message, status 400 or 422 and the overall status
 * 400 exactly when one of them is 400. */
static void fz_check_jc(int rc, const jc_result_t *res) {
  if (rc == 0) {
    if (res->n_errors != 0 || res->status != 0)
      abort();
    return;
  }
  if (res->n_errors == 0 || res->n_errors > JC_MAX_ERRORS)
    abort();
  bool any400 = false;
  for (size_t i = 0; i < res->n_errors; i++) {
    const jc_error_t *e = &res->errors[i];
    if (e->field == NULL || e->message == NULL || (e->status != 400 && e->status != 422))
      abort();
    any400 = any400 || e->status == 400;
  }
  if (res->status != (any400 ? 400 : 422))
    abort();
}

#endif
