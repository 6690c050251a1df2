-- 021: CPR tokens bound to their plan, and the table rewrite that takes
-- old values off the disk (issue #16; docs/cpr-encryption.md).
--
-- A token of version 2, "\x01kipd-cpr:2:<key id>:<base64url>", has the
-- plan's id in its AES-GCM additional data, so a token copied into
-- another plan's row does not open there. SQL cannot re-seal (the key is
-- not here): kipd re-seals every version 1 token at start-up, in C, before
-- it serves (app/cpr_store.c). Until then the column holds both versions,
-- so the CHECK allows both; kipd never opens a version 1 token outside
-- that re-sealing step (and kipd --rotate-key, which re-seals too).
ALTER TABLE kip.plans DROP CONSTRAINT plans_citizen_cpr_enc_token;
ALTER TABLE kip.plans ADD CONSTRAINT plans_citizen_cpr_enc_token
  CHECK (citizen_cpr_enc ~ '^\x01kipd-cpr:[12]:[0-9a-f]{16}:[A-Za-z0-9_-]{52}$');
COMMENT ON COLUMN kip.plans.citizen_cpr_enc IS
  'the CPR number sealed by kipd (AES-256-GCM, bound to the plan id), see docs/cpr-encryption.md';

-- A row here asks for the table rewrite: after kipd sealed clear numbers
-- (kip.cpr_pending), re-sealed version 1 tokens or rotated the key, the
-- replaced row versions stay in the table's files until they are
-- rewritten. kipd runs VACUUM (FULL) on kip.plans and kip.cpr_pending as
-- the owner role at the next start-up, then deletes the row. The sealing
-- transaction inserts the row, so a crash between the two leaves the
-- request in place.
CREATE TABLE kip.cpr_rewrite (
  one           boolean PRIMARY KEY DEFAULT true CHECK (one),
  requested_at  timestamptz NOT NULL DEFAULT now(),
  reason        text NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON kip.cpr_rewrite TO kipd_runtime;

-- An existing database: its clear numbers were sealed by an earlier kipd
-- (migration 010), and nothing rewrote the table since.
INSERT INTO kip.cpr_rewrite (reason)
SELECT 'migration 021: numbers sealed before it may remain in old row versions'
 WHERE EXISTS (SELECT 1 FROM kip.plans WHERE citizen_cpr_enc IS NOT NULL)
    OR EXISTS (SELECT 1 FROM kip.cpr_pending);
