-- 11_session.sql: Password sign-in, sessions and passwords
-- (daemon/api/session.c).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- Record one failed attempt for a username (lower-cased) and answer the
-- state after it. p_settings: lock_after, lock_s, window_s. An attempt
-- while locked neither extends the lock nor counts; once a lock has ended
-- the count starts again.
CREATE FUNCTION kip.signin_failed(p_username text, p_settings jsonb, OUT failures integer, OUT locked boolean)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE FUNCTION kip.signin_locked(p_username text)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT EXISTS (SELECT 1 FROM kip.signin_failures
                  WHERE username_key = left(lower(p_username), 256) AND locked_until > now())
$function$;

-- Step 1 of POST /v1/session: the stored hash of an active user with a
-- password (NULL otherwise) and whether the username is locked. Writes
-- nothing. kipd checks the password against the hash off the event loop
-- (against a dummy hash when there is none), then calls session_create or
-- session_fail.
CREATE FUNCTION kip_api.session_lookup(p_ctx jsonb, p_username text, OUT password_hash text, OUT locked boolean)
 RETURNS record
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  SELECT pw.password_hash INTO password_hash
    FROM kip.users u JOIN kip.user_passwords pw ON pw.user_id = u.id
   WHERE u.username = lower(p_username) AND u.active;
  locked := kip.signin_locked(p_username);
END
$function$;

-- A failed sign-in: count it, audit it (with the user's id when the
-- username exists) and answer 401 with {failures, locked} for kipd, which
-- turns it into the one problem every failed sign-in gets.
CREATE FUNCTION kip_api.session_fail(p_ctx jsonb, p_username text, p_settings jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- A sign-in whose password matched: start the session, forget the failures
-- and answer 201 {user, expires_at, idle_timeout_s}; kipd adds the
-- csrf_token and the cookie. If the username was locked meanwhile (a
-- parallel attempt), it is a failure after all.
-- p_settings: idle_s, max_s, lock_after, lock_s, window_s, user_agent.
-- p_new_hash, when not NULL, replaces p_old_hash: the same password hashed
-- at the cost kipd is configured with now (unless it changed meanwhile).
-- Old sessions are pruned here, a batch at a time, a week after they ended.
CREATE FUNCTION kip_api.session_create(p_ctx jsonb, p_username text, p_session_hash text, p_csrf_hash text, p_settings jsonb, p_old_hash text, p_new_hash text)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- GET /v1/session: the session the request came with, in the shape of
-- session_create's 201 ({user, expires_at, idle_timeout_s}); kipd adds the
-- csrf_token, which it derives from the session id (docs/security.md), and
-- passes its SHA-256 as p_csrf_hash. A session made before kipd derived its
-- CSRF tokens (a random one) is moved to the derived one here, once: that
-- session's other tabs get a 403 on their next change and read the token
-- again. With a bearer token there is no session: 401. Reads only the
-- caller's own account: no audit row (docs/audit.md).
CREATE FUNCTION kip_api.session_get(p_ctx jsonb, p_csrf_hash text)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  s kip.sessions;
BEGIN
  SELECT * INTO s FROM kip.sessions WHERE id = kip.session_id();
  IF s.id IS NULL THEN
    PERFORM kip.fail(401, NULL, NULL, 'there is no session: sign in with POST /v1/session');
  END IF;
  IF s.csrf_hash IS DISTINCT FROM p_csrf_hash THEN
    UPDATE kip.sessions SET csrf_hash = p_csrf_hash WHERE id = s.id;
  END IF;
  RETURN kip.ok(jsonb_build_object('user', kip.user_doc(u), 'expires_at', s.expires_at,
                                   'idle_timeout_s', s.idle_timeout_s), 200);
END
$function$;

-- DELETE /v1/session: sign out the session the request came with. With a
-- bearer token there is no session to end: 204 all the same.
CREATE FUNCTION kip_api.session_delete(p_ctx jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  IF kip.session_id() IS NOT NULL THEN
    UPDATE kip.sessions SET revoked_at = coalesce(revoked_at, now()) WHERE id = kip.session_id();
    PERFORM kip.audit('session.delete', NULL, 'session');
  END IF;
  RETURN kip.ok(NULL, 204);
END
$function$;

-- Step 1 of PUT /v1/me/password: the caller's stored hash (NULL without a
-- password) and whether their username is locked.
CREATE FUNCTION kip_api.password_current(p_ctx jsonb, OUT password_hash text, OUT locked boolean)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  SELECT pw.password_hash INTO password_hash FROM kip.user_passwords pw WHERE pw.user_id = u.id;
  locked := kip.signin_locked(u.username);
END
$function$;

-- A wrong current_password counts as a failed sign-in of the caller's
-- username, so a stolen session cannot be used to guess the password.
-- Answers 403 with {failures, locked}.
CREATE FUNCTION kip_api.password_fail(p_ctx jsonb, p_settings jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  s record;
BEGIN
  SELECT * INTO s FROM kip.signin_failed(u.username, p_settings);
  PERFORM kip.audit('password.fail', NULL, 'user');
  RETURN kip.ok(jsonb_build_object('failures', s.failures, 'locked', s.locked), 403);
END
$function$;

-- Set the caller's new password hash (made by kipd). p_old_hash is the hash
-- the current password was checked against: if it changed meanwhile, 409.
-- Every other session of the user ends; bearer tokens stay.
CREATE FUNCTION kip_api.password_set(p_ctx jsonb, p_old_hash text, p_new_hash text)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_current text;
BEGIN
  SELECT password_hash INTO v_current FROM kip.user_passwords WHERE user_id = u.id FOR UPDATE;
  IF v_current IS DISTINCT FROM p_old_hash THEN
    PERFORM kip.fail(409, 'changed_meanwhile', 'current_password', 'the password was changed meanwhile; try again');
  END IF;
  INSERT INTO kip.user_passwords (user_id, password_hash) VALUES (u.id, p_new_hash)
  ON CONFLICT (user_id) DO UPDATE SET password_hash = EXCLUDED.password_hash, changed_at = now();
  UPDATE kip.sessions SET revoked_at = now()
   WHERE user_id = u.id AND revoked_at IS NULL AND id IS DISTINCT FROM kip.session_id();
  DELETE FROM kip.signin_failures WHERE username_key = u.username;
  PERFORM kip.audit('password.change', NULL, 'user');
  RETURN kip.ok(NULL, 204);
END
$function$;
