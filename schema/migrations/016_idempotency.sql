-- 016_idempotency: the stored first answers of POST requests that carried an
-- Idempotency-Key (issue 14; docs/api.md, "Idempotency"). One row per user
-- and key, written in the same transaction as the write it answers, so a
-- committed write always has its answer and a rolled-back one never does.
-- A request still running holds a transaction-level advisory lock on its
-- (user, key) instead of a row (schema/functions/06_idempotency.sql), so
-- there is no "running" state that a crash could leave behind.
--
-- The body is the answer as the database made it: CPR numbers stay sealed
-- (kipd reveals them when it answers). Rows older than 24 hours are expired:
-- a new request with the key replaces the row, and the daily pass deletes
-- them.
CREATE TABLE kip.idempotency (
  user_id       uuid NOT NULL REFERENCES kip.users (id),
  key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  request_hash  text NOT NULL,   -- SHA-256 hex of method, path, query and body
  status        integer,         -- NULL: the route's default status
  body          json,
  etag          text,
  location      text,
  audit         jsonb NOT NULL DEFAULT '[]',  -- [{plan_id, resource}] the write audited
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_created ON kip.idempotency (created_at);
