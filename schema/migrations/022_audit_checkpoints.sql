-- 022_audit_checkpoints: verification of the audit chain in bounded steps
-- (issue 16, "the gaps you noted yourselves").
--
-- GET /v1/audit/verify used to recompute the whole chain in one statement,
-- which a large log takes past kipd's statement_timeout. Now:
--   * kip.audit_checkpoint: each verification that found nothing wrong
--     records the link it verified up to. GET /v1/audit/verify re-checks
--     the newest checkpoint's link and walks on from it, a chunk of links
--     per statement.
--   * kip.audit_verify_jobs: the full walk from the first link, queued by
--     the auditor (POST /v1/audit/verify-jobs) or by the daily pass (an
--     incremental one), run a chunk at a time by kipd's verifier
--     (daemon/app/verifier.c), resumable, one kipd at a time per job.
-- The functions are in schema/functions/02_audit.sql and 18_audit.sql;
-- docs/audit.md, "Verification".

-- One row per verification that found the chain intact up to seq. Written
-- only by kip.audit_checkpoint_record() (SECURITY DEFINER): kipd_runtime
-- may read it, not write it, like the seal chain.
CREATE TABLE kip.audit_checkpoint (
  id              bigserial PRIMARY KEY,
  seq             bigint NOT NULL CHECK (seq >= 0),   -- the last link verified (0: an empty chain)
  audit_id        bigint,                             -- its audit row
  hash            bytea NOT NULL CHECK (length(hash) = 32),
  -- Every audit row with an id up to here was sealed (or is an id the
  -- sealer never saw); the next incremental check for unsealed rows
  -- starts above it.
  unsealed_floor  bigint NOT NULL,
  mode            text NOT NULL CHECK (mode IN ('incremental', 'full')),
  checked         bigint NOT NULL,                    -- links walked by this verification
  verified_at     timestamptz NOT NULL DEFAULT now(),
  verified_by     uuid,                               -- the auditor; NULL: the daily pass
  request_id      text,                               -- the request, or 'verify-job-<id>'
  job_id          uuid
);
CREATE INDEX audit_checkpoint_seq ON kip.audit_checkpoint (seq DESC, id DESC);
REVOKE ALL ON kip.audit_checkpoint FROM kipd_runtime, PUBLIC;
GRANT SELECT ON kip.audit_checkpoint TO kipd_runtime;

-- A verification walked in the background, a chunk per step. state is the
-- walk's position and tally (kip.audit_verify_begin / _step); result the
-- answer once done, shaped like GET /v1/audit/verify's.
CREATE TABLE kip.audit_verify_jobs (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  mode             text NOT NULL CHECK (mode IN ('incremental', 'full')),
  status           text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done')),
  requested_by     uuid,          -- the auditor; NULL: the daily pass
  organisation_id  uuid,
  request_id       text,
  grace_seconds    integer NOT NULL DEFAULT 60 CHECK (grace_seconds BETWEEN 0 AND 86400),
  requested_at     timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  updated_at       timestamptz,
  finished_at      timestamptz,
  steps            integer NOT NULL DEFAULT 0,
  state            jsonb,
  result           jsonb
);
-- The verifier's claim: the oldest unfinished job.
CREATE INDEX audit_verify_jobs_open ON kip.audit_verify_jobs (requested_at, id)
  WHERE status <> 'done';
