/* json_check: declarative validation of JSON request bodies.
 *
 * A spec is an array of jc_field_t ending with {NULL}. jc_check() walks a
 * jansson object against it and collects every problem with its field path
 * ("citizen.cpr", "goals[1].text"):
 *   - unknown field, wrong JSON type          -> class 400
 *   - missing required field, value outside an enum, bad format, length out
 *     of range                                -> class 422
 * A format hook may also normalise the value in place (a CPR number is
 * rewritten to "DDMMYY-NNNN").
 *
 * Every error carries a stable machine-readable code (snake_case, e.g.
 * "required", "too_long", "invalid_uuid"), which the problem document sends
 * beside the English message. The list of codes is the enum in
 * api/openapi.yaml (ErrorCode).
 */
#ifndef KIPD_UTIL_JSON_CHECK_H
#define KIPD_UTIL_JSON_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/arena.h"

typedef enum {
  JC_STRING = 1,
  JC_BOOL,
  JC_INT,
  JC_OBJECT,
  JC_ARRAY,
  JC_MAP, /* object whose keys are limited to enum_values, values per `fields` */
} jc_type_t;

enum {
  JC_REQUIRED = 1u << 0,
  JC_NULLABLE = 1u << 1,
};

typedef struct jc_error_s {
  const char *code;    /* static: "required", "too_long", ... */
  const char *field;   /* arena */
  const char *message; /* arena or static */
  int status;          /* 400 or 422 */
} jc_error_t;

#define JC_MAX_ERRORS 32

typedef struct jc_result_s {
  arena_t *arena;      /* borrowed: paths are allocated here */
  jc_error_t errors[JC_MAX_ERRORS];
  size_t n_errors;
  int status;          /* 0 when clean, else 400 if any 400-class error, else 422 */
} jc_result_t;

/* A format hook: check (and optionally replace) parent[key]. Return NULL
 * when fine, or a static message for a 422 error; then *code may be set to
 * a static code (it starts as "invalid_format"). */
typedef const char *(*jc_format_fn)(json_t *parent, const char *key, json_t *value, const char **code);

typedef struct jc_field_s {
  const char *name;
  jc_type_t type;
  unsigned flags;
  const char *const *enum_values;   /* NULL-terminated; JC_STRING values or JC_MAP keys */
  jc_format_fn format;              /* JC_STRING only */
  const struct jc_field_s *fields;  /* JC_OBJECT: members; JC_MAP: spec of each value (one entry) */
  const struct jc_field_s *items;   /* JC_ARRAY: spec of each item (one entry, name ignored) */
  size_t min_len, max_len;          /* string length in bytes or array length; 0 = no limit */
} jc_field_t;

/* Validate obj (must be an object) against spec. Collects errors into res;
 * returns res->status. */
int jc_check(json_t *obj, const jc_field_t *spec, jc_result_t *res);

void jc_result_init(jc_result_t *res, arena_t *arena);
void jc_add_error(jc_result_t *res, int status, const char *code, const char *field, const char *message);

/* Ready-made format hooks. */
const char *jc_format_uuid(json_t *parent, const char *key, json_t *value, const char **code);
const char *jc_format_date(json_t *parent, const char *key, json_t *value, const char **code);
const char *jc_format_datetime(json_t *parent, const char *key, json_t *value, const char **code);
const char *jc_format_cpr(json_t *parent, const char *key, json_t *value, const char **code);
const char *jc_format_email(json_t *parent, const char *key, json_t *value, const char **code);
const char *jc_format_username(json_t *parent, const char *key, json_t *value, const char **code);
const char *jc_format_cvr(json_t *parent, const char *key, json_t *value, const char **code);
const char *jc_format_ean(json_t *parent, const char *key, json_t *value, const char **code);

#endif
