-- 011_sessions: passwords, sign-in sessions, the sign-in lockout, and
-- kip.begin_request() accepting a session as well as a bearer token.
--
-- kipd hashes passwords with Argon2id in C, on libuv's threadpool; the
-- database only stores the encoded hash and never sees a password. Session
-- ids and CSRF tokens are made by kipd; the database keeps their SHA-256.
-- See docs/security.md.

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

-- ------------------------------------------------------- request context

-- The request's id and address for the audit record, before (or without)
-- an authenticated caller: sign-in attempts. p_user_id, when known, is the
-- user the attempt was for.
CREATE FUNCTION kip.begin_anonymous(p_ctx jsonb, p_user_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('kip.request_id', coalesce(p_ctx->>'request_id', ''), true),
          set_config('kip.remote_addr', coalesce(p_ctx->>'remote_addr', ''), true),
          set_config('kip.user_id', coalesce(p_user_id::text, ''), true),
          set_config('kip.organisation_id',
                     coalesce((SELECT organisation_id::text FROM kip.users WHERE id = p_user_id), ''),
                     true),
          set_config('kip.session_id', '', true);
END
$$;

-- The session this request came with, if it came with one.
CREATE FUNCTION kip.session_id() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('kip.session_id', true), '')::uuid
$$;

-- Authenticate the caller and remember them for this transaction: by the
-- bearer token's SHA-256 (ctx.token_hash) or by the session cookie's
-- (ctx.session_hash). 401 for an unknown, revoked or expired credential or
-- an inactive user. A session request that changes state
-- (ctx.csrf_required) must carry the session's CSRF token: its SHA-256 is
-- ctx.csrf_hash, else 403 naming X-CSRF-Token, before anything is written.
-- last_seen_at/last_used_at are written at most once a minute (sooner for a
-- short idle timeout, so that a session in use never idles out).
CREATE OR REPLACE FUNCTION kip.begin_request(p_ctx jsonb) RETURNS kip.users
LANGUAGE plpgsql AS $$
DECLARE
  v_user kip.users;
  v_token_id uuid;
  v_last timestamptz;
  v_session kip.sessions;
BEGIN
  PERFORM set_config('kip.request_id', coalesce(p_ctx->>'request_id', ''), true),
          set_config('kip.remote_addr', coalesce(p_ctx->>'remote_addr', ''), true),
          set_config('kip.user_id', '', true),
          set_config('kip.organisation_id', '', true),
          set_config('kip.session_id', '', true);
  IF p_ctx ? 'session_hash' THEN
    SELECT * INTO v_session FROM kip.sessions s
     WHERE s.session_hash = p_ctx->>'session_hash'
       AND s.revoked_at IS NULL
       AND s.expires_at > now()
       AND s.last_seen_at + make_interval(secs => s.idle_timeout_s) > now();
    IF v_session.id IS NOT NULL THEN
      SELECT * INTO v_user FROM kip.users u WHERE u.id = v_session.user_id AND u.active;
    END IF;
    IF v_user.id IS NULL THEN
      PERFORM kip.fail(401, NULL, 'the session is unknown, expired or signed out; sign in again');
    END IF;
    PERFORM set_config('kip.user_id', v_user.id::text, true),
            set_config('kip.organisation_id', v_user.organisation_id::text, true),
            set_config('kip.session_id', v_session.id::text, true);
    IF coalesce((p_ctx->>'csrf_required')::boolean, false)
       AND v_session.csrf_hash IS DISTINCT FROM p_ctx->>'csrf_hash' THEN
      PERFORM kip.fail(403, 'X-CSRF-Token', 'must be the csrf_token given at sign-in');
    END IF;
    IF v_session.last_seen_at < now() - least(interval '1 minute',
                                              make_interval(secs => v_session.idle_timeout_s / 4.0)) THEN
      UPDATE kip.sessions SET last_seen_at = now() WHERE id = v_session.id;
    END IF;
    RETURN v_user;
  END IF;

  SELECT u.*, t.id, t.last_used_at INTO v_user.id, v_user.username, v_user.display_name,
         v_user.organisation_id, v_user.roles, v_user.email, v_user.phone, v_user.active,
         v_user.created_at, v_user.updated_at, v_token_id, v_last
    FROM kip.tokens t JOIN kip.users u ON u.id = t.user_id
   WHERE t.token_hash = p_ctx->>'token_hash'
     AND t.revoked_at IS NULL
     AND (t.expires_at IS NULL OR t.expires_at > now())
     AND u.active;
  IF v_user.id IS NULL THEN
    PERFORM kip.fail(401, NULL, 'the token is unknown, revoked or expired');
  END IF;
  PERFORM set_config('kip.user_id', v_user.id::text, true),
          set_config('kip.organisation_id', v_user.organisation_id::text, true);
  -- last_used_at at minute resolution, so reads rarely write the token row.
  IF v_last IS NULL OR v_last < now() - interval '1 minute' THEN
    UPDATE kip.tokens SET last_used_at = now() WHERE id = v_token_id;
  END IF;
  RETURN v_user;
END
$$;

-- ------------------------------------------------------------- lockout

-- Record one failed attempt for a username (lower-cased) and answer the
-- state after it. p_settings: lock_after, lock_s, window_s. An attempt
-- while locked neither extends the lock nor counts; once a lock has ended
-- the count starts again.
CREATE FUNCTION kip.signin_failed(p_username text, p_settings jsonb,
                                  OUT failures integer, OUT locked boolean)
LANGUAGE plpgsql AS $$
DECLARE
  v_key text := left(lower(p_username), 256);
  v_lock_after integer := (p_settings->>'lock_after')::integer;
  v_lock interval := make_interval(secs => (p_settings->>'lock_s')::double precision);
  v_window interval := make_interval(secs => (p_settings->>'window_s')::double precision);
  f kip.signin_failures;
BEGIN
  -- Forget stale rows, a batch at a time, skipping rows another attempt
  -- holds (no waiting, no deadlock).
  DELETE FROM kip.signin_failures
   WHERE username_key IN (SELECT username_key FROM kip.signin_failures
                           WHERE last_failed_at < now() - v_window
                             AND (locked_until IS NULL OR locked_until < now())
                             AND username_key <> v_key
                           ORDER BY last_failed_at LIMIT 100 FOR UPDATE SKIP LOCKED);
  INSERT INTO kip.signin_failures (username_key, failures, first_failed_at, last_failed_at)
  VALUES (v_key, 0, now(), now()) ON CONFLICT (username_key) DO NOTHING;
  SELECT * INTO f FROM kip.signin_failures WHERE username_key = v_key FOR UPDATE;
  IF f.locked_until > now() THEN
    UPDATE kip.signin_failures SET last_failed_at = now() WHERE username_key = v_key;
    failures := f.failures;
    locked := true;
    RETURN;
  END IF;
  IF f.locked_until IS NOT NULL OR f.first_failed_at < now() - v_window THEN
    f.failures := 0;
    f.first_failed_at := now();
  END IF;
  f.failures := f.failures + 1;
  UPDATE kip.signin_failures
     SET failures = f.failures, first_failed_at = f.first_failed_at, last_failed_at = now(),
         locked_until = CASE WHEN f.failures >= v_lock_after THEN now() + v_lock END
   WHERE username_key = v_key;
  failures := f.failures;
  locked := f.failures >= v_lock_after;
END
$$;

CREATE FUNCTION kip.signin_locked(p_username text) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM kip.signin_failures
                  WHERE username_key = left(lower(p_username), 256) AND locked_until > now())
$$;

-- ---------------------------------------------------------------- sign-in

-- Step 1 of POST /v1/session: the stored hash of an active user with a
-- password (NULL otherwise) and whether the username is locked. Writes
-- nothing. kipd checks the password against the hash off the event loop
-- (against a dummy hash when there is none), then calls session_create or
-- session_fail.
CREATE FUNCTION kip_api.session_lookup(p_ctx jsonb, p_username text,
                                       OUT password_hash text, OUT locked boolean)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  SELECT pw.password_hash INTO password_hash
    FROM kip.users u JOIN kip.user_passwords pw ON pw.user_id = u.id
   WHERE u.username = lower(p_username) AND u.active;
  locked := kip.signin_locked(p_username);
END
$$;

-- A failed sign-in: count it, audit it (with the user's id when the
-- username exists) and answer 401 with {failures, locked} for kipd, which
-- turns it into the one problem every failed sign-in gets.
CREATE FUNCTION kip_api.session_fail(p_ctx jsonb, p_username text, p_settings jsonb)
RETURNS kip.reply LANGUAGE plpgsql AS $$
DECLARE
  v_user uuid := (SELECT id FROM kip.users WHERE username = lower(p_username));
  s record;
BEGIN
  PERFORM kip.begin_anonymous(p_ctx, v_user);
  SELECT * INTO s FROM kip.signin_failed(p_username, p_settings);
  PERFORM kip.audit('session.fail', NULL, 'session');
  RETURN ROW(401, jsonb_build_object('failures', s.failures, 'locked', s.locked), NULL, NULL,
             v_user)::kip.reply;
END
$$;

-- A sign-in whose password matched: start the session, forget the failures
-- and answer 201 {user, expires_at, idle_timeout_s}; kipd adds the
-- csrf_token and the cookie. If the username was locked meanwhile (a
-- parallel attempt), it is a failure after all.
-- p_settings: idle_s, max_s, lock_after, lock_s, window_s, user_agent.
-- p_new_hash, when not NULL, replaces p_old_hash: the same password hashed
-- at the cost kipd is configured with now (unless it changed meanwhile).
-- Old sessions are pruned here, a batch at a time, a week after they ended.
CREATE FUNCTION kip_api.session_create(p_ctx jsonb, p_username text, p_session_hash text,
                                       p_csrf_hash text, p_settings jsonb,
                                       p_old_hash text, p_new_hash text)
RETURNS kip.reply LANGUAGE plpgsql AS $$
DECLARE
  u kip.users;
  s kip.sessions;
BEGIN
  SELECT * INTO u FROM kip.users WHERE username = lower(p_username) AND active;
  IF u.id IS NULL OR kip.signin_locked(p_username) THEN
    RETURN kip_api.session_fail(p_ctx, p_username, p_settings);
  END IF;
  PERFORM kip.begin_anonymous(p_ctx, u.id);
  DELETE FROM kip.signin_failures WHERE username_key = left(lower(p_username), 256);
  IF p_new_hash IS NOT NULL THEN
    UPDATE kip.user_passwords SET password_hash = p_new_hash
     WHERE user_id = u.id AND password_hash = p_old_hash;
  END IF;
  DELETE FROM kip.sessions
   WHERE id IN (SELECT id FROM kip.sessions
                 WHERE expires_at < now() - interval '7 days'
                 ORDER BY expires_at LIMIT 100 FOR UPDATE SKIP LOCKED);
  INSERT INTO kip.sessions (user_id, session_hash, csrf_hash, idle_timeout_s, expires_at,
                            remote_addr, user_agent)
  VALUES (u.id, p_session_hash, p_csrf_hash, (p_settings->>'idle_s')::integer,
          now() + make_interval(secs => (p_settings->>'max_s')::double precision),
          nullif(p_ctx->>'remote_addr', ''), left(p_settings->>'user_agent', 256))
  RETURNING * INTO s;
  PERFORM set_config('kip.session_id', s.id::text, true);
  PERFORM kip.audit('session.create', NULL, 'session');
  RETURN kip.ok(jsonb_build_object('user', kip.user_doc(u), 'expires_at', s.expires_at,
                                   'idle_timeout_s', s.idle_timeout_s), 201);
END
$$;

-- DELETE /v1/session: sign out the session the request came with. With a
-- bearer token there is no session to end: 204 all the same.
CREATE FUNCTION kip_api.session_delete(p_ctx jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  IF kip.session_id() IS NOT NULL THEN
    UPDATE kip.sessions SET revoked_at = coalesce(revoked_at, now()) WHERE id = kip.session_id();
    PERFORM kip.audit('session.delete', NULL, 'session');
  END IF;
  RETURN kip.ok(NULL, 204);
END
$$;

-- -------------------------------------------------------------- passwords

-- Step 1 of PUT /v1/me/password: the caller's stored hash (NULL without a
-- password) and whether their username is locked.
CREATE FUNCTION kip_api.password_current(p_ctx jsonb, OUT password_hash text, OUT locked boolean)
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  SELECT pw.password_hash INTO password_hash FROM kip.user_passwords pw WHERE pw.user_id = u.id;
  locked := kip.signin_locked(u.username);
END
$$;

-- A wrong current_password counts as a failed sign-in of the caller's
-- username, so a stolen session cannot be used to guess the password.
-- Answers 403 with {failures, locked}.
CREATE FUNCTION kip_api.password_fail(p_ctx jsonb, p_settings jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  s record;
BEGIN
  SELECT * INTO s FROM kip.signin_failed(u.username, p_settings);
  PERFORM kip.audit('password.fail', NULL, 'user');
  RETURN kip.ok(jsonb_build_object('failures', s.failures, 'locked', s.locked), 403);
END
$$;

-- Set the caller's new password hash (made by kipd). p_old_hash is the hash
-- the current password was checked against: if it changed meanwhile, 409.
-- Every other session of the user ends; bearer tokens stay.
CREATE FUNCTION kip_api.password_set(p_ctx jsonb, p_old_hash text, p_new_hash text)
RETURNS kip.reply LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_current text;
BEGIN
  SELECT password_hash INTO v_current FROM kip.user_passwords WHERE user_id = u.id FOR UPDATE;
  IF v_current IS DISTINCT FROM p_old_hash THEN
    PERFORM kip.fail(409, 'current_password', 'the password was changed meanwhile; try again');
  END IF;
  INSERT INTO kip.user_passwords (user_id, password_hash) VALUES (u.id, p_new_hash)
  ON CONFLICT (user_id) DO UPDATE SET password_hash = EXCLUDED.password_hash, changed_at = now();
  UPDATE kip.sessions SET revoked_at = now()
   WHERE user_id = u.id AND revoked_at IS NULL AND id IS DISTINCT FROM kip.session_id();
  DELETE FROM kip.signin_failures WHERE username_key = u.username;
  PERFORM kip.audit('password.change', NULL, 'user');
  RETURN kip.ok(NULL, 204);
END
$$;

-- POST /v1/users with a password, step 1: only an admin may make kipd spend
-- an Argon2 hash on a new user (403 before any hashing).
CREATE FUNCTION kip_api.user_create_check(p_ctx jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  PERFORM kip.require_role(u, ARRAY['admin'], 'only admins create users');
  RETURN kip.ok(NULL, 204);
END
$$;

-- Step 2: create the user as without a password, then store the hash.
CREATE FUNCTION kip_api.user_create(p_ctx jsonb, p_body jsonb, p_password_hash text)
RETURNS kip.reply LANGUAGE plpgsql AS $$
DECLARE
  r kip.reply := kip_api.user_create(p_ctx, p_body);
BEGIN
  INSERT INTO kip.user_passwords (user_id, password_hash)
  VALUES ((r.body->>'id')::uuid, p_password_hash);
  RETURN r;
END
$$;
