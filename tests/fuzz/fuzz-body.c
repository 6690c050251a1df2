/* Fuzz target: JSON body validation for every route that takes a body
 * (plans, participants, consent, meetings, outcomes, actions, accounts,
 * sessions, ...), with the specs of daemon/api/ taken from the route
 * table itself.
 *
 * Input: "METHOD /path\n<body>", e.g.
 *   "POST /v1/plans/4a0c...-.../meetings\n{\"starts_at\": ...}".
 * The body is parsed as app_handle() parses it (jansson, duplicate keys
 * refused) and checked against the route's body_spec with jc_check(); the
 * result must be well-formed (fz_check_jc). A checked body is checked a
 * second time and must pass: the format hooks normalise values (CPR numbers)
 * into a form they accept again.
 */
#include <jansson.h>

#include "fuzz-common.h"
#include "util/arena.h"
#include "util/json_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_routes_load();
  fz_input_t in;
  if (fz_input_split(data, size, &in) != 0)
    return 0;
  char *scratch = malloc(strlen(in.path) + 1);
  router_match_t m;
  const route_t *rt = fz_route(&in, scratch, &m);
  json_error_t jerr;
  json_t *body = json_loadb(in.rest, in.rest_len, JSON_REJECT_DUPLICATES, &jerr);
  if (rt != NULL && (rt->flags & ROUTE_BODY) && rt->body_spec != NULL && body != NULL) {
    arena_t arena;
    arena_init(&arena, 4096);
    jc_result_t res;
    jc_result_init(&res, &arena);
    int rc = jc_check(body, rt->body_spec, &res);
    fz_check_jc(rc, &res);
    if (rc == 0) {
      jc_result_init(&res, &arena);
      if (jc_check(body, rt->body_spec, &res) != 0)
        abort(); /* a body that passed must pass again */
    }
    arena_reset(&arena);
  }
  json_decref(body);
  free(scratch);
  free(in.buf);
  return 0;
}
