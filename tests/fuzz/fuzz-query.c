/* Fuzz target: query strings and cursors.
 *
 * Input: "METHOD /path?query\n" (anything after the line is ignored). The
 * query is decoded with query_parse() as app_handle() does; a decoded query
 * must be a JSON object of strings. For a route with a query spec (the
 * lists: plans, actions, audit, accounts, directory, ...; cursors are opaque
 * strings of at most 512 bytes there, decoded by the database) it is checked
 * with jc_check() and the result must be well-formed. Re-encoding the
 * decoded parameters and decoding again must give the same object.
 */
#include <jansson.h>
#include <stdio.h>

#include "fuzz-common.h"
#include "util/arena.h"
#include "util/json_check.h"
#include "util/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Percent-encode every byte that is not unreserved. */
static char *fz_encode(const char *s, size_t len, char *out) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      *out++ = (char)ch;
    } else {
      *out++ = '%';
      *out++ = hex[ch >> 4];
      *out++ = hex[ch & 15];
    }
  }
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_routes_load();
  fz_input_t in;
  if (fz_input_split(data, size, &in) != 0)
    return 0;
  json_t *q = NULL;
  const char *why = NULL;
  if (query_parse(in.query, &q, &why) == 0) {
    if (!json_is_object(q))
      abort();
    /* Round trip: encode what was decoded, decode again. */
    size_t cap = 1;
    const char *k;
    json_t *v;
    json_object_foreach(q, k, v) {
      if (!json_is_string(v))
        abort();
      cap += 3 * (strlen(k) + json_string_length(v)) + 2;
    }
    char *enc = malloc(cap);
    char *p = enc;
    json_object_foreach(q, k, v) {
      if (p != enc)
        *p++ = '&';
      p = fz_encode(k, strlen(k), p);
      *p++ = '=';
      p = fz_encode(json_string_value(v), json_string_length(v), p);
    }
    *p = '\0';
    json_t *again = NULL;
    if (query_parse(enc, &again, &why) != 0 || !json_equal(q, again))
      abort();
    json_decref(again);
    free(enc);

    char *scratch = malloc(strlen(in.path) + 1);
    router_match_t m;
    const route_t *rt = fz_route(&in, scratch, &m);
    if (rt != NULL && rt->query_spec != NULL) {
      arena_t arena;
      arena_init(&arena, 4096);
      jc_result_t res;
      jc_result_init(&res, &arena);
      fz_check_jc(jc_check(q, rt->query_spec, &res), &res);
      arena_reset(&arena);
    }
    free(scratch);
  } else if (q != NULL) {
    abort(); /* a failed parse hands back nothing */
  }
  json_decref(q);
  free(in.buf);
  return 0;
}
