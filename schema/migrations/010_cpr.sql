-- 010: CPR numbers at rest (issue #5, the CPR part).
--
-- The database never holds a CPR number in clear. kipd seals it with
-- AES-256-GCM under a key from its key file (never in the database) and
-- sends three values in place of citizen.cpr (daemon/util/cpr_crypt.h):
--   citizen_cpr       the mask, "DDMMYY-****", for lists and history (the
--                     first six digits are the birth date, stored anyway);
--   citizen_cpr_enc   the sealed token "\x01kipd-cpr:1:<key id>:<base64url>";
--   citizen_cpr_hmac  HMAC-SHA256 of the number under a separate MAC key,
--                     the blind index that exact search compares.
-- Responses carry the token where the full number goes (kip.plan_doc);
-- kipd decrypts it before sending. See docs/cpr-encryption.md.
--
-- SQL cannot encrypt (the key is not here), so this migration moves the
-- clear numbers of an existing database to kip.cpr_pending, and kipd seals
-- them at start-up, before it serves anyone, and deletes the pending rows.
--
-- Its functions (once in this file) live in schema/functions/ since
-- issue 11; this file keeps the tables and the data changes.

-- The keys the database's tokens are sealed under: id and a fingerprint
-- (an HMAC under the key, which does not reveal it), never the key itself.
-- kipd refuses to start when its key file does not hold them.
CREATE TABLE kip.cpr_keys (
  id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
  fingerprint  text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
  is_current   boolean NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX cpr_keys_one_current ON kip.cpr_keys (is_current) WHERE is_current;

-- Clear numbers waiting for kipd to seal them (legacy rows; the benchmark
-- generator). Empty once kipd has started.
CREATE TABLE kip.cpr_pending (
  plan_id  uuid PRIMARY KEY REFERENCES kip.plans (id),
  cpr      text NOT NULL CHECK (cpr ~ '^[0-9]{6}-[0-9]{4}$')
);

ALTER TABLE kip.plans ADD COLUMN citizen_cpr_enc text, ADD COLUMN citizen_cpr_hmac text;

-- Existing rows: the number to kip.cpr_pending, the mask in its place. This
-- changes no citizen, and no history trigger is attached while migrations
-- run (the function step attaches them afterwards).
INSERT INTO kip.cpr_pending (plan_id, cpr)
SELECT id, citizen_cpr FROM kip.plans WHERE citizen_cpr IS NOT NULL;
ALTER TABLE kip.plans DROP CONSTRAINT plans_citizen_cpr_check;
UPDATE kip.plans SET citizen_cpr = left(citizen_cpr, 6) || '-****' WHERE citizen_cpr IS NOT NULL;

ALTER TABLE kip.plans
  ADD CONSTRAINT plans_citizen_cpr_masked CHECK (citizen_cpr ~ '^[0-9]{6}-\*{4}$'),
  ADD CONSTRAINT plans_citizen_cpr_enc_token
    CHECK (citizen_cpr_enc ~ '^\x01kipd-cpr:1:[0-9a-f]{16}:[A-Za-z0-9_-]{52}$'),
  ADD CONSTRAINT plans_citizen_cpr_hmac_hex CHECK (citizen_cpr_hmac ~ '^[0-9a-f]{64}$'),
  ADD CONSTRAINT plans_citizen_cpr_sealed
    CHECK ((citizen_cpr_enc IS NULL) = (citizen_cpr_hmac IS NULL)
           AND (citizen_cpr_enc IS NULL OR citizen_cpr IS NOT NULL));
COMMENT ON COLUMN kip.plans.citizen_cpr IS 'the CPR number masked (DDMMYY-****), never in clear';
COMMENT ON COLUMN kip.plans.citizen_cpr_enc IS 'the CPR number sealed by kipd (AES-256-GCM), see docs/cpr-encryption.md';
COMMENT ON COLUMN kip.plans.citizen_cpr_hmac IS 'HMAC-SHA256 blind index of the CPR number, for exact search';

DROP INDEX kip.plans_cpr;
CREATE INDEX plans_cpr_hmac ON kip.plans (citizen_cpr_hmac) WHERE citizen_cpr_hmac IS NOT NULL;
