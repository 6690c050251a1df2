-- 009_audit: the audit trail made trustworthy (issue 5).
--
--   * Every audit row is written by kip.audit() or kip.audit_plans() (lists:
--     one row per plan shown), in the request's own transaction. Each route
--     has its own action name, "<resource>.<verb>" (docs/audit.md lists them).
--   * Append-only by grants: kipd serves as a member of the NOLOGIN group
--     role kipd_runtime, which may SELECT and INSERT audit rows and nothing
--     more. The tables belong to the role that runs the migrations.
--   * A SHA-256 hash chain over the rows, kept in the insert-only table
--     kip.audit_seal. Rows are inserted unsealed, so requests never wait on
--     a chain head; kipd's sealer calls kip.audit_seal() about once a second
--     and kip.audit_verify() recomputes the whole chain.
--   * The auditor's view (kip_api.audit_list, audit_verify) and the
--     citizen's right of access (kip_api.plan_access_log).
--
-- Its functions (once in this file) live in schema/functions/ since
-- issue 11; this file keeps the tables and the data changes.

-- ------------------------------------------------------------ the roles

-- The group role kipd's runtime login is a member of. CREATE ROLE is
-- cluster-wide: two databases of one cluster may migrate at the same time.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kipd_runtime') THEN
    CREATE ROLE kipd_runtime NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;

-- ------------------------------------------------------------ the chain

-- One link per audit row, in the order they were sealed (which is id order
-- except for rows that committed late). hash = sha256(prev_hash ||
-- kip.audit_canonical(row)); the first link's prev_hash is 32 zero bytes.
-- Insert-only: kipd_runtime may only read it.
CREATE TABLE kip.audit_seal (
  seq        bigint PRIMARY KEY CHECK (seq > 0),
  audit_id   bigint NOT NULL CONSTRAINT audit_seal_audit_id_key UNIQUE,
  prev_hash  bytea NOT NULL CHECK (length(prev_hash) = 32),
  hash       bytea NOT NULL CHECK (length(hash) = 32),
  sealed_at  timestamptz NOT NULL DEFAULT now()
);

-- Ids the sealer skipped because their row was not (yet) visible: a
-- transaction still running, or one that rolled back. Rechecked at each
-- pass; forgotten after p_gap_expiry. Bookkeeping only, never trusted by
-- verification.
CREATE TABLE kip.audit_seal_gap (
  audit_id  bigint PRIMARY KEY,
  noted_at  timestamptz NOT NULL DEFAULT now()
);

-- ------------------------------------------------------------ the grants
--
-- kipd_runtime may use every table, except that it may only read and add
-- audit rows, only read the seal chain, and not touch the sealer's
-- bookkeeping. ALTER DEFAULT PRIVILEGES gives the tables, sequences and
-- functions of later migrations (created by the same owner) the same
-- grants; a later table that must be append-only revokes them itself.

GRANT USAGE ON SCHEMA kip, kip_api TO kipd_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA kip TO kipd_runtime;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA kip TO kipd_runtime;
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON kip.audit FROM kipd_runtime, PUBLIC;
REVOKE ALL ON kip.audit_seal, kip.audit_seal_gap FROM kipd_runtime, PUBLIC;
GRANT SELECT ON kip.audit_seal TO kipd_runtime;

ALTER DEFAULT PRIVILEGES IN SCHEMA kip GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO kipd_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA kip GRANT USAGE, SELECT ON SEQUENCES TO kipd_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA kip, kip_api GRANT EXECUTE ON FUNCTIONS TO kipd_runtime;
