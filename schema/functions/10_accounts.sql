-- 10_accounts.sql: Organisations, users, tokens and /v1/me
-- (daemon/api/accounts.c), and the bootstrap admin.
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- Each kip_api function serves one HTTP operation. Argument order is fixed
-- by the router: (ctx, path parameters..., body, query). Input has already been
-- checked for shape, types, enums and formats by kipd; these functions
-- enforce the rules that need the database.
CREATE FUNCTION kip_api.organisation_create(p_ctx jsonb, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  o kip.organisations;
BEGIN
  PERFORM kip.require_role(u, ARRAY['admin'], 'only admins create organisations');
  INSERT INTO kip.organisations (name, sector, cvr, ean)
  VALUES (p_body->>'name', p_body->>'sector', p_body->>'cvr', p_body->>'ean')
  RETURNING * INTO o;
  PERFORM kip.audit('create', NULL, 'organisation');
  RETURN kip.ok(kip.organisation_doc(o), 201, NULL, '/v1/organisations/' || o.id);
END
$function$;

CREATE FUNCTION kip_api.organisation_list(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  c record := kip.cursor_ts_id(p_query);
  v_limit integer := kip.page_limit(p_query);
  v_items jsonb[];
  v_keys text[];
BEGIN
  SELECT array_agg(kip.organisation_doc(o) ORDER BY o.created_at DESC, o.id DESC),
         array_agg(o.created_at::text || '|' || o.id ORDER BY o.created_at DESC, o.id DESC)
    INTO v_items, v_keys
    FROM (SELECT * FROM kip.organisations o
           WHERE c.ts IS NULL OR (o.created_at, o.id) < (c.ts, c.id)
           ORDER BY o.created_at DESC, o.id DESC LIMIT v_limit + 1) o;
  RETURN kip.ok(kip.page(v_items, v_keys, v_limit));
END
$function$;

CREATE FUNCTION kip_api.organisation_get(p_ctx jsonb, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  o kip.organisations;
BEGIN
  SELECT * INTO o FROM kip.organisations WHERE id = p_id;
  IF o.id IS NULL THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such organisation');
  END IF;
  RETURN kip.ok(kip.organisation_doc(o));
END
$function$;

CREATE FUNCTION kip_api.user_create(p_ctx jsonb, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  n kip.users;
BEGIN
  PERFORM kip.require_role(u, ARRAY['admin'], 'only admins create users');
  IF NOT EXISTS (SELECT 1 FROM kip.organisations WHERE id = (p_body->>'organisation_id')::uuid) THEN
    PERFORM kip.fail(422, 'not_found', 'organisation_id', 'no such organisation');
  END IF;
  IF EXISTS (SELECT 1 FROM kip.users WHERE username = p_body->>'username') THEN
    PERFORM kip.fail(409, 'duplicate', 'username', 'is already taken');
  END IF;
  INSERT INTO kip.users (username, display_name, organisation_id, roles, email, phone)
  VALUES (p_body->>'username', p_body->>'display_name', (p_body->>'organisation_id')::uuid,
          ARRAY(SELECT DISTINCT jsonb_array_elements_text(p_body->'roles') ORDER BY 1),
          p_body->>'email', p_body->>'phone')
  RETURNING * INTO n;
  PERFORM kip.audit('create', NULL, 'user');
  RETURN kip.ok(kip.user_doc(n), 201, NULL, '/v1/users/' || n.id);
END
$function$;

CREATE FUNCTION kip_api.user_list(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  c record := kip.cursor_ts_id(p_query);
  v_limit integer := kip.page_limit(p_query);
  v_org uuid := (p_query->>'organisation')::uuid;
  v_items jsonb[];
  v_keys text[];
BEGIN
  PERFORM kip.require_role(u, ARRAY['admin'], 'only admins list users');
  SELECT array_agg(kip.user_doc(x) ORDER BY x.created_at DESC, x.id DESC),
         array_agg(x.created_at::text || '|' || x.id ORDER BY x.created_at DESC, x.id DESC)
    INTO v_items, v_keys
    FROM (SELECT * FROM kip.users x
           WHERE (c.ts IS NULL OR (x.created_at, x.id) < (c.ts, c.id))
             AND (v_org IS NULL OR x.organisation_id = v_org)
           ORDER BY x.created_at DESC, x.id DESC LIMIT v_limit + 1) x;
  PERFORM kip.audit('list', NULL, 'user');
  RETURN kip.ok(kip.page(v_items, v_keys, v_limit));
END
$function$;

CREATE FUNCTION kip_api.user_get(p_ctx jsonb, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  x kip.users;
BEGIN
  IF NOT (u.id = p_id OR 'admin' = ANY (u.roles)) THEN
    PERFORM kip.fail(403, 'forbidden', 'Authorization', 'only admins see other users');
  END IF;
  SELECT * INTO x FROM kip.users WHERE id = p_id;
  IF x.id IS NULL THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such user');
  END IF;
  RETURN kip.ok(kip.user_doc(x));
END
$function$;

CREATE FUNCTION kip_api.user_patch(p_ctx jsonb, p_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  x kip.users;
BEGIN
  PERFORM kip.require_role(u, ARRAY['admin'], 'only admins change users');
  SELECT * INTO x FROM kip.users WHERE id = p_id FOR UPDATE;
  IF x.id IS NULL THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such user');
  END IF;
  IF x.id = u.id AND p_body ? 'active' AND NOT (p_body->>'active')::boolean THEN
    PERFORM kip.fail(409, 'cannot_deactivate_self', 'active', 'you cannot deactivate yourself');
  END IF;
  UPDATE kip.users SET
    display_name = CASE WHEN p_body ? 'display_name' THEN p_body->>'display_name' ELSE display_name END,
    roles = CASE WHEN p_body ? 'roles'
                 THEN ARRAY(SELECT DISTINCT jsonb_array_elements_text(p_body->'roles') ORDER BY 1)
                 ELSE roles END,
    email = CASE WHEN p_body ? 'email' THEN p_body->>'email' ELSE email END,
    phone = CASE WHEN p_body ? 'phone' THEN p_body->>'phone' ELSE phone END,
    active = CASE WHEN p_body ? 'active' THEN (p_body->>'active')::boolean ELSE active END,
    updated_at = now()
  WHERE id = p_id RETURNING * INTO x;
  PERFORM kip.audit('update', NULL, 'user');
  RETURN kip.ok(kip.user_doc(x));
END
$function$;

CREATE FUNCTION kip_api.me(p_ctx jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  RETURN kip.ok(kip.user_doc(u));
END
$function$;

-- The token itself is made by kipd; only its SHA-256 reaches the database.
CREATE FUNCTION kip_api.token_create(p_ctx jsonb, p_user_id uuid, p_body jsonb, p_token_hash text)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  x kip.users;
  t kip.tokens;
BEGIN
  IF NOT (u.id = p_user_id OR 'admin' = ANY (u.roles)) THEN
    PERFORM kip.fail(403, 'forbidden', 'Authorization', 'only admins make tokens for other users');
  END IF;
  SELECT * INTO x FROM kip.users WHERE id = p_user_id;
  IF x.id IS NULL THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such user');
  END IF;
  IF NOT x.active THEN
    PERFORM kip.fail(409, 'inactive_user', 'user_id', 'the user is not active');
  END IF;
  IF (p_body->>'expires_at')::timestamptz <= now() THEN
    PERFORM kip.fail(422, 'in_past', 'expires_at', 'must lie in the future');
  END IF;
  INSERT INTO kip.tokens (user_id, name, token_hash, expires_at)
  VALUES (x.id, p_body->>'name', p_token_hash, (p_body->>'expires_at')::timestamptz)
  RETURNING * INTO t;
  PERFORM kip.audit('create', NULL, 'token');
  RETURN kip.ok(kip.token_doc(t), 201, NULL, '/v1/tokens/' || t.id);
END
$function$;

CREATE FUNCTION kip_api.token_list(p_ctx jsonb, p_user_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  IF NOT (u.id = p_user_id OR 'admin' = ANY (u.roles)) THEN
    PERFORM kip.fail(403, 'forbidden', 'Authorization', 'only admins see the tokens of other users');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM kip.users WHERE id = p_user_id) THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such user');
  END IF;
  RETURN kip.ok(jsonb_build_object(
    'items', coalesce((SELECT jsonb_agg(kip.token_doc(t) ORDER BY t.created_at DESC, t.id DESC)
                         FROM kip.tokens t WHERE t.user_id = p_user_id), '[]'::jsonb),
    'next_cursor', NULL));
END
$function$;

CREATE FUNCTION kip_api.token_delete(p_ctx jsonb, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  t kip.tokens;
BEGIN
  SELECT * INTO t FROM kip.tokens WHERE id = p_id FOR UPDATE;
  IF t.id IS NULL OR NOT (t.user_id = u.id OR 'admin' = ANY (u.roles)) THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such token');
  END IF;
  UPDATE kip.tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = p_id;
  PERFORM kip.audit('revoke', NULL, 'token');
  RETURN kip.ok(NULL, 204);
END
$function$;

-- First start: create the admin user and its token, once, under a lock.
-- Returns true when it created them.
CREATE FUNCTION kip.bootstrap(p_token_hash text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_org uuid;
  v_user uuid;
BEGIN
  PERFORM pg_advisory_xact_lock(7305872415);
  IF EXISTS (SELECT 1 FROM kip.users) THEN
    RETURN false;
  END IF;
  INSERT INTO kip.organisations (name, sector) VALUES ('kipd administration', 'other')
  RETURNING id INTO v_org;
  INSERT INTO kip.users (username, display_name, organisation_id, roles)
  VALUES ('admin', 'Administrator', v_org, ARRAY['admin']) RETURNING id INTO v_user;
  INSERT INTO kip.tokens (user_id, name, token_hash) VALUES (v_user, 'bootstrap', p_token_hash);
  RETURN true;
END
$function$;

-- POST /v1/users with a password, step 1: only an admin may make kipd spend
-- an Argon2 hash on a new user (403 before any hashing).
CREATE FUNCTION kip_api.user_create_check(p_ctx jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  PERFORM kip.require_role(u, ARRAY['admin'], 'only admins create users');
  RETURN kip.ok(NULL, 204);
END
$function$;

-- Step 2: create the user as without a password, then store the hash.
CREATE FUNCTION kip_api.user_create(p_ctx jsonb, p_body jsonb, p_password_hash text)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  r kip.reply := kip_api.user_create(p_ctx, p_body);
BEGIN
  INSERT INTO kip.user_passwords (user_id, password_hash)
  VALUES ((r.body->>'id')::uuid, p_password_hash);
  RETURN r;
END
$function$;
