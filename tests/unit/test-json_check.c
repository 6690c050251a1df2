/* The declarative body checker: 400 for shape and types, 422 for rules. */
#include <string.h>

#include "tap.h"
#include "util/json_check.h"

static const char *const colours[] = {"red", "green", NULL};
static const char *const areas[] = {"housing", "finances", NULL};

static const jc_field_t inner[] = {
  {.name = "name", .type = JC_STRING, .flags = JC_REQUIRED, .min_len = 1, .max_len = 10},
  {.name = "cpr", .type = JC_STRING, .flags = JC_NULLABLE, .format = jc_format_cpr},
  {NULL},
};
static const jc_field_t item_fields[] = {
  {.name = "text", .type = JC_STRING, .flags = JC_REQUIRED},
  {.name = "colour", .type = JC_STRING, .enum_values = colours},
  {NULL},
};
static const jc_field_t item = {.type = JC_OBJECT, .fields = item_fields};
static const jc_field_t need_fields[] = {
  {.name = "relevant", .type = JC_BOOL, .flags = JC_REQUIRED},
  {NULL},
};
static const jc_field_t need = {.type = JC_OBJECT, .fields = need_fields};
static const jc_field_t spec[] = {
  {.name = "citizen", .type = JC_OBJECT, .flags = JC_REQUIRED, .fields = inner},
  {.name = "items", .type = JC_ARRAY, .items = &item, .max_len = 3},
  {.name = "needs", .type = JC_MAP, .enum_values = areas, .fields = &need},
  {.name = "count", .type = JC_INT},
  {.name = "when", .type = JC_STRING, .format = jc_format_date},
  {NULL},
};

static int check(const char *text, jc_result_t *res, arena_t *a) {
  json_t *j = json_loads(text, 0, NULL);
  jc_result_init(res, a);
  int st = jc_check(j, spec, res);
  json_decref(j);
  return st;
}

static bool has_field(const jc_result_t *res, const char *field) {
  for (size_t i = 0; i < res->n_errors; i++)
    if (strcmp(res->errors[i].field, field) == 0)
      return true;
  return false;
}

/* The code of the error on field, or "" when there is none. */
static const char *code_of(const jc_result_t *res, const char *field) {
  for (size_t i = 0; i < res->n_errors; i++)
    if (strcmp(res->errors[i].field, field) == 0)
      return res->errors[i].code ? res->errors[i].code : "(null)";
  return "";
}

int main(void) {
  arena_t a;
  arena_init(&a, 4096);
  jc_result_t res;

  tap_is_int(check("{\"citizen\":{\"name\":\"Jens\"}}", &res, &a), 0, "minimal valid body");
  tap_is_int(check("{}", &res, &a), 422, "missing required object is 422");
  tap_ok(has_field(&res, "citizen"), "names the missing field");
  tap_is_str(code_of(&res, "citizen"), "required", "code required");
  tap_is_int(check("{\"citizen\":{\"name\":5}}", &res, &a), 400, "wrong type is 400");
  tap_ok(has_field(&res, "citizen.name"), "names the nested field");
  tap_is_str(code_of(&res, "citizen.name"), "wrong_type", "code wrong_type");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\"},\"extra\":1}", &res, &a), 400, "unknown field is 400");
  tap_ok(has_field(&res, "extra"), "names the unknown field");
  tap_is_str(code_of(&res, "extra"), "unknown_field", "code unknown_field");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\",\"x\":1}}", &res, &a), 400, "unknown nested field is 400");
  tap_ok(has_field(&res, "citizen.x"), "names citizen.x");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\",\"cpr\":\"320190-1234\"}}", &res, &a), 422, "bad CPR is 422");
  tap_ok(has_field(&res, "citizen.cpr"), "names citizen.cpr");
  tap_is_str(code_of(&res, "citizen.cpr"), "invalid_cpr", "code invalid_cpr");
  tap_is_int(check("{\"citizen\":{\"name\":\"\"}}", &res, &a), 422, "empty name is 422");
  tap_is_str(code_of(&res, "citizen.name"), "too_short", "code too_short");
  tap_is_int(check("{\"citizen\":{\"name\":\"abcdefghijk\"}}", &res, &a), 422, "too long is 422");
  tap_is_str(code_of(&res, "citizen.name"), "too_long", "code too_long");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\"},\"items\":[{\"text\":\"a\",\"colour\":\"blue\"}]}", &res, &a),
             422, "value outside the enum is 422");
  tap_ok(has_field(&res, "items[0].colour"), "names items[0].colour");
  tap_is_str(code_of(&res, "items[0].colour"), "not_allowed_value", "code not_allowed_value");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\"},\"items\":[{},{},{},{}]}", &res, &a), 422, "too many items");
  tap_is_str(code_of(&res, "items"), "too_many_items", "code too_many_items");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\"},\"items\":[5]}", &res, &a), 400, "item of the wrong type");
  tap_ok(has_field(&res, "items[0]"), "names items[0]");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\"},\"needs\":{\"weather\":{\"relevant\":true}}}", &res, &a),
             422, "map key outside the enum is 422");
  tap_ok(has_field(&res, "needs.weather"), "names needs.weather");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\"},\"needs\":{\"housing\":{}}}", &res, &a), 422,
             "map value checked against its spec");
  tap_ok(has_field(&res, "needs.housing.relevant"), "names needs.housing.relevant");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\"},\"count\":1.5}", &res, &a), 400, "a real is not an integer");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\"},\"when\":\"2023-02-29\"}", &res, &a), 422, "bad date is 422");
  tap_is_str(code_of(&res, "when"), "invalid_date", "code invalid_date");
  tap_is_int(check("{\"citizen\":null}", &res, &a), 400, "null for a non-nullable field is a wrong type");
  tap_is_int(check("{\"citizen\":{\"name\":\"\u00c6\u00c6\u00c6\u00c6\u00c6\u00c6\u00c6\u00c6\u00c6\u00c6\"}}", &res, &a), 0,
             "ten characters of two bytes each fit a 10-character limit");
  tap_is_int(check("{\"citizen\":{\"name\":\"J\",\"cpr\":null}}", &res, &a), 0, "null for a nullable field");
  tap_is_int(check("[1]", &res, &a), 400, "a body that is not an object is 400");
  tap_ok(has_field(&res, "body"), "names body");

  json_t *j = json_loads("{\"citizen\":{\"name\":\"J\",\"cpr\":\"0101901234\"}}", 0, NULL);
  jc_result_init(&res, &a);
  jc_check(j, spec, &res);
  tap_is_str(json_string_value(json_object_get(json_object_get(j, "citizen"), "cpr")), "010190-1234",
             "the CPR hook normalises in place");
  json_decref(j);

  tap_is_int(check("{\"citizen\":{\"name\":\"J\",\"cpr\":\"x\"},\"bogus\":1}", &res, &a), 400,
             "a 400-class error wins over a 422-class one");
  tap_ok(res.n_errors == 2, "both errors are collected");
  arena_reset(&a);
  return tap_done();
}
