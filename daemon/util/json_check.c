#include "util/json_check.h"

#include <string.h>

#include "util/validate.h"

void jc_result_init(jc_result_t *res, arena_t *arena) {
  res->arena = arena;
  res->n_errors = 0;
  res->status = 0;
}

void jc_add_error(jc_result_t *res, int status, const char *code, const char *field, const char *message) {
  if (status == 400 || res->status == 0)
    res->status = status;
  if (res->n_errors >= JC_MAX_ERRORS)
    return;
  jc_error_t *e = &res->errors[res->n_errors++];
  e->code = code;
  e->field = field;
  e->message = message;
  e->status = status;
}

static const char *jc__type_name(jc_type_t t) {
  switch (t) {
  case JC_STRING: return "string";
  case JC_BOOL: return "boolean";
  case JC_INT: return "integer";
  case JC_OBJECT:
  case JC_MAP: return "object";
  case JC_ARRAY: return "array";
  }
  return "value";
}

static bool jc__type_ok(jc_type_t t, json_t *v) {
  switch (t) {
  case JC_STRING: return json_is_string(v);
  case JC_BOOL: return json_is_boolean(v);
  case JC_INT: return json_is_integer(v);
  case JC_OBJECT:
  case JC_MAP: return json_is_object(v);
  case JC_ARRAY: return json_is_array(v);
  }
  return false;
}

static bool jc__in_enum(const char *const *values, const char *s) {
  for (; *values != NULL; values++)
    if (strcmp(*values, s) == 0)
      return true;
  return false;
}

static char *jc__enum_message(jc_result_t *res, const char *const *values) {
  size_t len = 16;
  for (const char *const *v = values; *v; v++)
    len += strlen(*v) + 2;
  char *msg = arena_alloc(res->arena, len);
  if (msg == NULL)
    return (char *)"not an allowed value";
  strcpy(msg, "must be one of ");
  for (const char *const *v = values; *v; v++) {
    strcat(msg, *v);
    if (v[1])
      strcat(msg, ", ");
  }
  return msg;
}

static void jc__value(json_t *parent, const char *key, json_t *v, const jc_field_t *f,
                      const char *path, jc_result_t *res);

static void jc__object(json_t *obj, const jc_field_t *spec, const char *prefix, jc_result_t *res) {
  const char *key;
  json_t *v;
  /* Unknown fields first: they are 400. */
  json_object_foreach(obj, key, v) {
    const jc_field_t *f = spec;
    while (f->name != NULL && strcmp(f->name, key) != 0)
      f++;
    if (f->name == NULL) {
      const char *path = prefix ? arena_sprintf(res->arena, "%s.%s", prefix, key) : arena_strdup(res->arena, key);
      jc_add_error(res, 400, "unknown_field", path, "unknown field");
    }
  }
  for (const jc_field_t *f = spec; f->name != NULL; f++) {
    const char *path = prefix ? arena_sprintf(res->arena, "%s.%s", prefix, f->name) : f->name;
    v = json_object_get(obj, f->name);
    if (v == NULL) {
      if (f->flags & JC_REQUIRED)
        jc_add_error(res, 422, "required", path, "is required");
      continue;
    }
    jc__value(obj, f->name, v, f, path, res);
  }
}

static void jc__value(json_t *parent, const char *key, json_t *v, const jc_field_t *f,
                      const char *path, jc_result_t *res) {
  if (json_is_null(v)) {
    /* null where a value is expected is a wrong type, required or not. */
    if (!(f->flags & JC_NULLABLE))
      jc_add_error(res, 400, "wrong_type", path, arena_sprintf(res->arena, "must be a %s, not null", jc__type_name(f->type)));
    return;
  }
  if (!jc__type_ok(f->type, v)) {
    jc_add_error(res, 400, "wrong_type", path, arena_sprintf(res->arena, "must be a %s", jc__type_name(f->type)));
    return;
  }
  switch (f->type) {
  case JC_STRING: {
    const char *s = json_string_value(v);
    size_t bytes = json_string_length(v);
    if (strlen(s) != bytes || !validate_text(s)) {
      jc_add_error(res, 422, "invalid_characters", path, "contains control characters or a NUL");
      return;
    }
    /* Lengths count characters (code points): Danish names have æ, ø, å. */
    size_t len = 0;
    for (const char *c = s; *c; c++)
      if (((unsigned char)*c & 0xc0) != 0x80)
        len++;
    if (f->min_len && len < f->min_len) {
      jc_add_error(res, 422, "too_short", path, f->min_len == 1 ? "must not be empty"
                   : arena_sprintf(res->arena, "must be at least %zu characters", f->min_len));
      return;
    }
    if (f->max_len && len > f->max_len) {
      jc_add_error(res, 422, "too_long", path, arena_sprintf(res->arena, "must be at most %zu characters", f->max_len));
      return;
    }
    if (f->enum_values && !jc__in_enum(f->enum_values, s)) {
      jc_add_error(res, 422, "not_allowed_value", path, jc__enum_message(res, f->enum_values));
      return;
    }
    if (f->format) {
      const char *code = "invalid_format";
      const char *msg = f->format(parent, key, v, &code);
      if (msg != NULL)
        jc_add_error(res, 422, code, path, msg);
    }
    break;
  }
  case JC_OBJECT:
    if (f->fields)
      jc__object(v, f->fields, path, res);
    break;
  case JC_MAP: {
    const char *k;
    json_t *mv;
    json_object_foreach(v, k, mv) {
      const char *kpath = arena_sprintf(res->arena, "%s.%s", path, k);
      if (f->enum_values && !jc__in_enum(f->enum_values, k)) {
        jc_add_error(res, 422, "not_allowed_value", kpath, jc__enum_message(res, f->enum_values));
        continue;
      }
      if (f->fields)
        jc__value(v, k, mv, f->fields, kpath, res);
    }
    break;
  }
  case JC_ARRAY: {
    size_t n = json_array_size(v);
    if (f->min_len && n < f->min_len) {
      jc_add_error(res, 422, "too_few_items", path, f->min_len == 1 ? "must not be empty"
                   : arena_sprintf(res->arena, "must have at least %zu items", f->min_len));
      return;
    }
    if (f->max_len && n > f->max_len) {
      jc_add_error(res, 422, "too_many_items", path, arena_sprintf(res->arena, "must have at most %zu items", f->max_len));
      return;
    }
    if (f->items) {
      for (size_t i = 0; i < n; i++) {
        const char *ipath = arena_sprintf(res->arena, "%s[%zu]", path, i);
        json_t *item = json_array_get(v, i);
        if (json_is_null(item) || !jc__type_ok(f->items->type, item)) {
          jc_add_error(res, 400, "wrong_type", ipath, arena_sprintf(res->arena, "must be a %s", jc__type_name(f->items->type)));
          continue;
        }
        if (f->items->type == JC_OBJECT && f->items->fields) {
          jc__object(item, f->items->fields, ipath, res);
        } else if (f->items->type == JC_STRING) {
          /* Reuse the string checks with the array as parent: the format
           * hook gets the index as a NULL key and must not replace it. */
          jc__value(NULL, NULL, item, f->items, ipath, res);
        }
      }
    }
    break;
  }
  default:
    break;
  }
}

int jc_check(json_t *obj, const jc_field_t *spec, jc_result_t *res) {
  if (!json_is_object(obj)) {
    jc_add_error(res, 400, "wrong_type", "body", "must be a JSON object");
    return res->status;
  }
  jc__object(obj, spec, NULL, res);
  return res->status;
}

const char *jc_format_uuid(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "invalid_uuid";
  return validate_uuid(json_string_value(value)) ? NULL : "must be a UUID";
}

const char *jc_format_date(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "invalid_date";
  return validate_date(json_string_value(value)) ? NULL : "must be a date (YYYY-MM-DD)";
}

const char *jc_format_datetime(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "invalid_datetime";
  return validate_datetime(json_string_value(value)) ? NULL
         : "must be an RFC 3339 date-time with an offset";
}

const char *jc_format_cpr(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "invalid_cpr";
  char norm[12];
  if (!validate_cpr(json_string_value(value), norm, NULL))
    return "not a valid CPR number (DDMMYY-NNNN with a real date)";
  if (parent != NULL && key != NULL)
    json_object_set_new(parent, key, json_string(norm));
  return NULL;
}

const char *jc_format_email(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "invalid_email";
  return validate_email(json_string_value(value)) ? NULL : "not a valid e-mail address";
}

const char *jc_format_username(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "invalid_username";
  return validate_username(json_string_value(value)) ? NULL
         : "must be 3 to 64 characters of a-z, 0-9, '.', '_' or '-'";
}

const char *jc_format_cvr(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "invalid_cvr";
  return validate_digits(json_string_value(value), 8) ? NULL : "must be 8 digits";
}

const char *jc_format_ean(json_t *parent, const char *key, json_t *value, const char **code) {
  *code = "invalid_ean";
  return validate_digits(json_string_value(value), 13) ? NULL : "must be 13 digits";
}
