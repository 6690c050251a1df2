/* health: /healthz and /readyz (/metrics: app/metrics.h). */
#ifndef KIPD_APP_HEALTH_H
#define KIPD_APP_HEALTH_H

#include "app/app.h"

void health_live(kreq_t *r);     /* 200 while the process lives */
void health_ready(kreq_t *r);    /* 200 only after a database round trip */

#endif
