/* verifier: walks the audit chain's verification jobs in the background
 * (issue 16).
 *
 * A job is a walk of the hash chain queued in kip.audit_verify_jobs: a
 * full walk from the first link (POST /v1/audit/verify-jobs, the auditor),
 * or an incremental one from the newest checkpoint (queued by the daily
 * pass). Every interval_ms the verifier calls kip.audit_verify_job_step()
 * through the pool (asynchronously, like the sealer). A step claims the
 * oldest unfinished job FOR UPDATE SKIP LOCKED, walks it on for at most a
 * quarter of the statement timeout and commits its progress; while a step
 * returns a job, the next one is sent at once. Several kipd on one database
 * step a job one at a time, and a restarted kipd goes on from the last
 * committed step. A finished job is logged; one that found the chain broken
 * at error level (docs/audit.md). */
#ifndef KIPD_APP_VERIFIER_H
#define KIPD_APP_VERIFIER_H

#include <stdint.h>
#include <uv.h>

#include "db/pg_pool.h"
#include "util/error.h"

typedef struct verifier_s verifier_t;

/* Start a verifier on loop; pool is borrowed and must outlive it.
 * interval_ms 0: never runs (jobs stay queued). *out is new; free it with
 * verifier_close(). Returns 0 or a negative error. */
int verifier_new(uv_loop_t *loop, pg_pool_t *pool, uint64_t interval_ms, verifier_t **out) KIPD_MUST_CHECK;

/* Stop; cb(data) runs once the timer is closed and no step is in flight,
 * after which v is freed. */
void verifier_close(verifier_t *v, void (*cb)(void *data), void *data);

#endif
