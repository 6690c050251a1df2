-- 011_sessions: passwords, sign-in sessions, the sign-in lockout, and
-- kip.begin_request() accepting a session as well as a bearer token.
--
-- kipd hashes passwords with Argon2id in C, on libuv's threadpool; the
-- database only stores the encoded hash and never sees a password. Session
-- ids and CSRF tokens are made by kipd; the database keeps their SHA-256.
-- See docs/security.md.
--
-- Its functions (once in this file) live in schema/functions/ since
-- issue 11; this file keeps the tables and the data changes.

-- One row per user who has a password. A table of its own rather than a
-- column of kip.users, so the kip.users row type, which every kip_api
-- function holds and kip.user_doc() renders, carries no hash: no SELECT *
-- or to_jsonb(user) can ever put it into an answer.
CREATE TABLE kip.user_passwords (
  user_id        uuid PRIMARY KEY REFERENCES kip.users (id),
  password_hash  text NOT NULL CHECK (password_hash LIKE '$argon2id$%' AND length(password_hash) <= 255),
  changed_at     timestamptz NOT NULL DEFAULT now()
);

-- Sign-in sessions of the web UI. The cookie's value and the CSRF token are
-- kept only as SHA-256. idle_timeout_s and expires_at are fixed when the
-- session is made (from --session-idle-s and --session-max-s).
CREATE TABLE kip.sessions (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id         uuid NOT NULL REFERENCES kip.users (id),
  session_hash    text NOT NULL UNIQUE CHECK (session_hash ~ '^[0-9a-f]{64}$'),
  csrf_hash       text NOT NULL CHECK (csrf_hash ~ '^[0-9a-f]{64}$'),
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_seen_at    timestamptz NOT NULL DEFAULT now(),
  idle_timeout_s  integer NOT NULL CHECK (idle_timeout_s > 0),
  expires_at      timestamptz NOT NULL,
  revoked_at      timestamptz,
  remote_addr     text,
  user_agent      text CHECK (length(user_agent) <= 256)
);
CREATE INDEX sessions_user ON kip.sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expires ON kip.sessions (expires_at);

-- Failed sign-ins per lower-cased username, whether or not the user exists.
-- Rows whose failures are forgotten and whose lock has ended are pruned at
-- every failure, so the table holds only the usernames tried within the
-- window or locked now.
CREATE TABLE kip.signin_failures (
  username_key     text PRIMARY KEY CHECK (length(username_key) BETWEEN 1 AND 256),
  failures         integer NOT NULL CHECK (failures >= 0),
  first_failed_at  timestamptz NOT NULL,
  last_failed_at   timestamptz NOT NULL,
  locked_until     timestamptz
);
CREATE INDEX signin_failures_last ON kip.signin_failures (last_failed_at);
