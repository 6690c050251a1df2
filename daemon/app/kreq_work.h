/* kreq_work: a request's work off the loop (libuv's threadpool, e.g. an
 * Argon2 hash) and its continuations after a delay (a timer). */
#ifndef KIPD_APP_KREQ_WORK_H
#define KIPD_APP_KREQ_WORK_H

#include <stdint.h>

#include "app/kreq.h"
#include "util/error.h"

/* Runs on libuv's threadpool: may touch only arg, never the request, the
 * app or the loop. */
typedef void (*kreq_work_fn)(void *arg);
/* Back on the loop after the work, or after a delay. Must go on with the
 * request (reply or run more SQL). */
typedef void (*kreq_work_then_fn)(kreq_t *r, void *arg);

/* Run work(arg) on the threadpool, then then(r, arg) on the loop. arg is
 * borrowed and must live in the request's arena (or longer). At most
 * --password-jobs-max jobs are queued or running: beyond that -ENOSPC.
 * Returns 0 or -errno; on error nothing runs and the caller replies. */
int kreq_work_queue(kreq_t *r, kreq_work_fn work, kreq_work_then_fn then, void *arg) KIPD_MUST_CHECK;

/* Call then(r, arg) after delay_ms, from a timer on the loop (0: on the
 * next loop iteration). Returns 0 or -errno. */
int kreq_work_delay(kreq_t *r, uint64_t delay_ms, kreq_work_then_fn then, void *arg) KIPD_MUST_CHECK;

#endif
