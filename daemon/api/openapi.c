/* GET /v1/openapi.yaml: the API contract, api/openapi.yaml, compiled into
 * kipd at build time (daemon/api/embed.py), so it is never read from disk
 * and always matches the binary. Public, like /healthz. */
#include "api/api.h"
#include "app/app.h"

extern const unsigned char api_openapi_yaml[];
extern const size_t api_openapi_yaml_len;

void api_openapi_handler(kreq_t *r) {
  kreq_reply_raw(r, 200, "application/yaml; charset=utf-8", (const char *)api_openapi_yaml,
                 api_openapi_yaml_len, NULL, 0);
}
