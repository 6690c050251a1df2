-- 00_request.sql: The request context: who is asking (begin_request,
-- actor_id), replies (ok, fail), versions (check_version, touch_plan), pages
-- and cursors, and the Copenhagen clock.
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- The caller, as set by kip.begin_request() for this transaction.
CREATE FUNCTION kip.actor_id()
 RETURNS uuid
 LANGUAGE sql
 STABLE
AS $function$
  SELECT nullif(current_setting('kip.user_id', true), '')::uuid
$function$;

CREATE FUNCTION kip.actor_org()
 RETURNS uuid
 LANGUAGE sql
 STABLE
AS $function$
  SELECT nullif(current_setting('kip.organisation_id', true), '')::uuid
$function$;

-- Raise an HTTP error: SQLSTATE KPnnn, the field and message in DETAIL.
CREATE FUNCTION kip.fail(p_status integer, p_code text, p_field text, p_message text,
                         p_detail text DEFAULT NULL::text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  -- p_code: the stable error code of the field's error (the ErrorCode enum
  -- of api/openapi.yaml); NULL only when there is no field. kipd adds the
  -- JSON pointer from the field (daemon/app/problem.c).
  RAISE EXCEPTION USING
    ERRCODE = 'KP' || p_status::text,
    MESSAGE = coalesce(p_detail, CASE WHEN p_field IS NULL THEN p_message
                                      ELSE p_field || ': ' || p_message END),
    DETAIL = jsonb_build_object(
      'user_id', kip.actor_id(),
      'errors', CASE WHEN p_field IS NULL THEN '[]'::jsonb
                     ELSE jsonb_build_array(jsonb_build_object('code', coalesce(p_code, 'invalid'),
                                                               'field', p_field, 'message', p_message))
                END)::text;
END
$function$;

-- The RFC 6901 pointer of a field path: "goals[1].text" -> "/goals/1/text"
-- (the same rule as problem_pointer() in daemon/app/problem.c).
CREATE FUNCTION kip.json_pointer(p_field text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT '/' || replace(replace(replace(replace(replace(p_field, '~', '~0'), '/', '~1'), ']', ''), '[', '/'),
                        '.', '/')
$function$;

-- One warnings[] entry: {code, field, pointer, participant_id, message}.
-- p_code is the stable code (the WarningCode enum of api/openapi.yaml).
CREATE FUNCTION kip.warning(p_code text, p_field text, p_participant_id uuid, p_message text)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT jsonb_build_object('code', p_code, 'field', p_field, 'pointer', kip.json_pointer(p_field),
                            'participant_id', p_participant_id, 'message', p_message)
$function$;

-- due_in_past: an action's due date before today (Copenhagen). Allowed (an
-- action agreed late is recorded as agreed); an array of 0 or 1 warnings.
CREATE FUNCTION kip.due_date_warnings(p_due date, p_field text)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT CASE WHEN p_due < kip.today()
    THEN jsonb_build_array(kip.warning('due_in_past', p_field, NULL,
           format('the due date %s lies in the past (today is %s, Copenhagen time)', p_due, kip.today())))
    ELSE '[]'::jsonb END
$function$;

-- kip.fail with extra members for the problem document (e.g. the open
-- actions that block a participant from leaving).
CREATE FUNCTION kip.fail_with(p_status integer, p_code text, p_field text, p_message text, p_extra jsonb)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = 'KP' || p_status::text,
    MESSAGE = p_field || ': ' || p_message,
    DETAIL = jsonb_build_object(
      'user_id', kip.actor_id(),
      'errors', jsonb_build_array(jsonb_build_object('code', coalesce(p_code, 'invalid'), 'field', p_field,
                                                     'message', p_message)),
      'extra', p_extra)::text;
END
$function$;

-- Authenticate the caller and remember them for this transaction: by the
-- bearer token's SHA-256 (ctx.token_hash) or by the session cookie's
-- (ctx.session_hash). 401 for an unknown, revoked or expired credential or
-- an inactive user. A session request that changes state
-- (ctx.csrf_required) must carry the session's CSRF token: its SHA-256 is
-- ctx.csrf_hash, else 403 naming X-CSRF-Token, before anything is written.
-- A session's last_seen_at is written at most once a minute (sooner for a
-- short idle timeout, so that a session in use never idles out); a token's
-- last_used_at at most once per 15 minutes.
CREATE FUNCTION kip.begin_request(p_ctx jsonb)
 RETURNS kip.users
 LANGUAGE plpgsql
AS $function$
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
      PERFORM kip.fail(401, NULL, NULL, 'the session is unknown, expired or signed out; sign in again');
    END IF;
    PERFORM set_config('kip.user_id', v_user.id::text, true),
            set_config('kip.organisation_id', v_user.organisation_id::text, true),
            set_config('kip.session_id', v_session.id::text, true);
    IF coalesce((p_ctx->>'csrf_required')::boolean, false)
       AND v_session.csrf_hash IS DISTINCT FROM p_ctx->>'csrf_hash' THEN
      PERFORM kip.fail(403, 'csrf_mismatch', 'X-CSRF-Token', 'must be the csrf_token given at sign-in');
    END IF;
    -- "passive": a request the user did not make (the live event stream
    -- fetching an event, 22_events.sql) does not keep the session alive.
    IF NOT coalesce((p_ctx->>'passive')::boolean, false)
       AND v_session.last_seen_at < now() - least(interval '1 minute',
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
    PERFORM kip.fail(401, NULL, NULL, 'the token is unknown, revoked or expired');
  END IF;
  PERFORM set_config('kip.user_id', v_user.id::text, true),
          set_config('kip.organisation_id', v_user.organisation_id::text, true);
  -- last_used_at at a resolution of 15 minutes (issue 12): a read writes
  -- the token row at most once per 15 minutes per token, not on every
  -- first use in a minute. The first use always writes it.
  IF v_last IS NULL OR v_last < now() - interval '15 minutes' THEN
    UPDATE kip.tokens SET last_used_at = now() WHERE id = v_token_id;
  END IF;
  RETURN v_user;
END
$function$;

CREATE FUNCTION kip.ok(p_body jsonb, p_status integer DEFAULT NULL::integer, p_etag text DEFAULT NULL::text, p_location text DEFAULT NULL::text)
 RETURNS kip.reply
 LANGUAGE sql
 STABLE
AS $function$
  SELECT ROW(p_status, p_body::json, p_etag, p_location, kip.actor_id())::kip.reply
$function$;

-- kip.ok for a body built as json (the documents of 04_documents.sql): sent
-- as built, keys in the order written. A separate name, because a NULL body
-- could not choose between a json and a jsonb kip.ok.
CREATE FUNCTION kip.ok_json(p_body json, p_status integer DEFAULT NULL::integer, p_etag text DEFAULT NULL::text, p_location text DEFAULT NULL::text)
 RETURNS kip.reply
 LANGUAGE sql
 STABLE
AS $function$
  SELECT ROW(p_status, p_body, p_etag, p_location, kip.actor_id())::kip.reply
$function$;

-- A json object with one more member at its end, keeping the order of the
-- keys already written (json_build_object's documents): e.g. a document
-- and the warnings of the write that made it.
CREATE FUNCTION kip.json_append(p_doc json, p_key text, p_value jsonb)
 RETURNS json
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  -- PL/pgSQL, not SQL: the subquery keeps an SQL function from being inlined,
  -- so it was parsed and planned again on every write (docs/performance.md).
  IF json_typeof(p_doc) IS DISTINCT FROM 'object' THEN
    RETURN p_doc;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM json_object_keys(p_doc)) THEN
    RETURN json_build_object(p_key, p_value);
  END IF;
  RETURN (left(btrim(p_doc::text), -1) || ', ' || to_json(p_key)::text || ' : ' || p_value::text || '}')::json;
END
$function$;

-- Compare If-Match (ctx.if_match; -2 is "*") with the plan's version.
CREATE FUNCTION kip.check_version(p_ctx jsonb, p_version integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF p_ctx ? 'if_match' AND (p_ctx->>'if_match')::bigint <> -2
     AND (p_ctx->>'if_match')::bigint <> p_version THEN
    PERFORM kip.fail(412, 'stale_version', 'If-Match', format('the plan is at version %s', p_version));
  END IF;
END
$function$;

-- Bump a plan's version after any change to it or its parts.
-- PL/pgSQL, so the UPDATE's plan is cached per session; an SQL function with
-- a data-modifying statement is planned again on every call.
CREATE FUNCTION kip.touch_plan(p_plan_id uuid)
 RETURNS kip.plans
 LANGUAGE plpgsql
AS $function$
DECLARE
  p kip.plans;
BEGIN
  UPDATE kip.plans SET version = version + 1, updated_at = now()
   WHERE id = p_plan_id RETURNING * INTO p;
  RETURN p;
END
$function$;

-- Keyset cursors: hex of "timestamp|uuid" or "bigint", opaque to clients.
-- STABLE as its body is (convert_to), so the planner inlines it.
CREATE FUNCTION kip.cursor_encode(p_text text)
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  SELECT encode(convert_to(p_text, 'UTF8'), 'hex')
$function$;

CREATE FUNCTION kip.cursor_decode(p_cursor text)
 RETURNS text
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF p_cursor IS NULL THEN
    RETURN NULL;
  END IF;
  BEGIN
    RETURN convert_from(decode(p_cursor, 'hex'), 'UTF8');
  EXCEPTION WHEN OTHERS THEN
    PERFORM kip.fail(400, 'invalid_cursor', 'cursor', 'not a cursor from this list');
  END;
END
$function$;

CREATE FUNCTION kip.cursor_ts_id(p_query jsonb, OUT ts timestamp with time zone, OUT id uuid)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
DECLARE
  v text := kip.cursor_decode(p_query->>'cursor');
BEGIN
  IF v IS NULL THEN
    RETURN;
  END IF;
  BEGIN
    ts := split_part(v, '|', 1)::timestamptz;
    id := split_part(v, '|', 2)::uuid;
  EXCEPTION WHEN OTHERS THEN
    PERFORM kip.fail(400, 'invalid_cursor', 'cursor', 'not a cursor from this list');
  END;
END
$function$;

CREATE FUNCTION kip.page_limit(p_query jsonb)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT coalesce((p_query->>'limit')::integer, 50)
$function$;

-- {"items": [...first limit...], "next_cursor": ...} from rows fetched with
-- limit + 1: the extra row proves there is a next page. STABLE, as
-- json_build_object is: an IMMUTABLE label over a STABLE body keeps the
-- planner from inlining it, and it was planned again on every list.
CREATE FUNCTION kip.page(p_items jsonb[], p_keys text[], p_limit integer)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_object(
    'items', coalesce(to_jsonb(p_items[1:p_limit]), '[]'::jsonb),
    'next_cursor', CASE WHEN cardinality(p_items) > p_limit
                        THEN to_jsonb(kip.cursor_encode(p_keys[p_limit])) ELSE 'null'::jsonb END)
$function$;

-- The same for items built as json.
CREATE FUNCTION kip.page(p_items json[], p_keys text[], p_limit integer)
 RETURNS json
 LANGUAGE sql
 STABLE
AS $function$
  SELECT json_build_object(
    'items', coalesce(array_to_json(p_items[1:p_limit]), '[]'::json),
    'next_cursor', CASE WHEN cardinality(p_items) > p_limit
                        THEN kip.cursor_encode(p_keys[p_limit]) END)
$function$;

-- "Today" and "overdue" are counted in Europe/Copenhagen, never in UTC.
CREATE FUNCTION kip.today(p_at timestamp with time zone DEFAULT now())
 RETURNS date
 LANGUAGE sql
 STABLE
AS $function$
  SELECT (p_at AT TIME ZONE 'Europe/Copenhagen')::date
$function$;

CREATE FUNCTION kip.local_time(p_at timestamp with time zone, p_format text DEFAULT 'YYYY-MM-DD HH24:MI'::text)
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  SELECT to_char(p_at AT TIME ZONE 'Europe/Copenhagen', p_format)
$function$;

-- The request's id and address for the audit record, before (or without)
-- an authenticated caller: sign-in attempts. p_user_id, when known, is the
-- user the attempt was for.
CREATE FUNCTION kip.begin_anonymous(p_ctx jsonb, p_user_id uuid DEFAULT NULL::uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  PERFORM set_config('kip.request_id', coalesce(p_ctx->>'request_id', ''), true),
          set_config('kip.remote_addr', coalesce(p_ctx->>'remote_addr', ''), true),
          set_config('kip.user_id', coalesce(p_user_id::text, ''), true),
          set_config('kip.organisation_id',
                     coalesce((SELECT organisation_id::text FROM kip.users WHERE id = p_user_id), ''),
                     true),
          set_config('kip.session_id', '', true);
END
$function$;

-- The session this request came with, if it came with one.
CREATE FUNCTION kip.session_id()
 RETURNS uuid
 LANGUAGE sql
 STABLE
AS $function$
  SELECT nullif(current_setting('kip.session_id', true), '')::uuid
$function$;
