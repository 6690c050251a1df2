/* notify: tell systemd (Type=notify) when kipd is ready and when it stops,
 * through libsystemd's sd_notify(). Without NOTIFY_SOCKET in the
 * environment (not started by systemd), or in a build without libsystemd,
 * both do nothing. Called at start-up and at shutdown only: one datagram
 * each, never on a request's path. */
#ifndef KIPD_UTIL_NOTIFY_H
#define KIPD_UTIL_NOTIFY_H

/* READY=1 with a STATUS line naming the URL (borrowed, may be NULL). */
void notify_ready(const char *url);
/* STOPPING=1. */
void notify_stopping(void);

#endif
