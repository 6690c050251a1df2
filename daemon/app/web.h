/* app/web: serves the embedded web UI (clients/web/) next to the API.
 *
 * GET and HEAD of a path outside the API (/v1, /healthz, /readyz, /metrics)
 * answer from the table built at compile time (app/web_assets.h): an asset
 * under /assets/<hash>/ with a year's immutable cache, or index.html, the
 * single-page app, for every other path (no-cache, revalidated with its
 * ETag). An unknown path under /assets/ is 404. If-None-Match answers 304;
 * gzip copies are sent when Accept-Encoding allows. Paths are only ever
 * compared with the table, so no path can reach the file system.
 *
 * The pages get the UI's Content-Security-Policy (web_csp): only kipd's own
 * scripts, styles, images, fonts and connections; no inline script or style.
 */
#ifndef KIPD_APP_WEB_H
#define KIPD_APP_WEB_H

#include <stdbool.h>

#include "http/server.h"

extern const char web_csp[];

/* If req is a GET or HEAD of a path the web UI answers, reply to it with
 * http_respond() and return true; else return false and leave req alone.
 * req is borrowed. */
bool web_serve(http_request_t *req);

#endif
