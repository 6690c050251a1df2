/* FHIR: a plan as an HL7 FHIR R4 Bundle (GET /v1/plans/{id}/fhir).
 *
 * The Bundle is built in SQL (kip_api.plan_fhir, schema/functions/
 * 23_fhir.sql) under the plan's access rule and audit. Here it gets the
 * FHIR media type, and the Patient's CPR identifier, revealed from its
 * sealed token like every CPR number in an answer (app/kreq_cpr.c), is
 * written as the 10 digits the Danish CPR identifier uses (DDMMYYNNNN).
 * The mapping is docs/fhir.md. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "app/app.h"

#define FHIR_CPR_SYSTEM "urn:oid:1.2.208.176.1.2"

static const pg_stmt_t plan_fhir = {"plan_fhir", "SELECT * FROM kip_api.plan_fhir($1::jsonb, $2::uuid)", 2};

/* The CPR identifiers of the Patient entries as 10 digits; one whose token
 * could not be decrypted (null) is left out, as FHIR allows no null.
 * bundle is borrowed. */
static void fhir__cpr_digits(json_t *bundle) {
  size_t i;
  json_t *entry;
  json_array_foreach(json_object_get(bundle, "entry"), i, entry) {
    json_t *res = json_object_get(entry, "resource");
    const char *type = json_string_value(json_object_get(res, "resourceType"));
    if (type == NULL || strcmp(type, "Patient") != 0)
      continue;
    json_t *ids = json_object_get(res, "identifier");
    for (size_t k = json_array_size(ids); k-- > 0;) {
      json_t *id = json_array_get(ids, k);
      const char *system = json_string_value(json_object_get(id, "system"));
      if (system == NULL || strcmp(system, FHIR_CPR_SYSTEM) != 0)
        continue;
      const char *value = json_string_value(json_object_get(id, "value"));
      if (value != NULL && strlen(value) == 11 && value[6] == '-') {
        char digits[11];
        snprintf(digits, sizeof(digits), "%.6s%.4s", value, value + 7);
        json_object_set_new(id, "value", json_string(digits));
      } else if (value == NULL) {
        json_array_remove(ids, k);
      }
    }
    if (ids != NULL && json_array_size(ids) == 0)
      json_object_del(res, "identifier");
  }
}

static void fhir_plan_done(kreq_t *r, const kreq_row_t *row) {
  json_t *bundle = kreq_row_object(r, row);
  if (bundle == NULL)
    return;
  fhir__cpr_digits(bundle);
  char *text = kreq_json_text(r, bundle);
  json_decref(bundle);
  if (text == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  http_header_t hdrs[1];
  size_t n = 0;
  char etag[32];
  const char *version = kreq_row_text(row, 2);
  if (version != NULL) {
    snprintf(etag, sizeof(etag), "\"%s\"", version);
    hdrs[n++] = (http_header_t){"ETag", etag};
  }
  kreq_reply_raw(r, kreq_row_status(r, row), "application/fhir+json; fhirVersion=4.0; charset=utf-8", text,
                 strlen(text), hdrs, n);
}

static void fhir_plan_handler(kreq_t *r) {
  const char **params = arena_alloc(&r->http->arena, 2 * sizeof(char *));
  if (params == NULL) {
    kreq_problem(r, 500, "out of memory", NULL, NULL);
    return;
  }
  params[0] = kreq_ctx(r);
  params[1] = r->match.params[0];
  kreq_exec(r, &plan_fhir, params, 200, fhir_plan_done);
}

const route_t api_fhir_routes[] = {
  {"GET", "/v1/plans/{id}/fhir", fhir_plan_handler, NULL, NULL, &plan_fhir, 200, 0},
};
const size_t api_fhir_n_routes = KIPD_ARRAY_SIZE(api_fhir_routes);
