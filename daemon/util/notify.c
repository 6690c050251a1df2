#include "util/notify.h"

#include <stdio.h>

#include "kipd-build.h"

#ifdef KIPD_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

void notify_ready(const char *url) {
#ifdef KIPD_HAVE_LIBSYSTEMD
  char msg[512];
  snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving %s", url != NULL ? url : "");
  (void)sd_notify(0, msg);
#else
  (void)url;
#endif
}

void notify_stopping(void) {
#ifdef KIPD_HAVE_LIBSYSTEMD
  (void)sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
#endif
}
