-- 20_directory.sql: the colleague directory (daemon/api/directory.c).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- The one role label a colleague sees: the first of the user's roles in
-- this order.
CREATE FUNCTION kip.directory_role(p_roles text[])
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT r FROM unnest(ARRAY['coordinator', 'caseworker', 'integration', 'auditor', 'analyst', 'admin']) WITH ORDINALITY AS x(r, n)
   WHERE r = ANY (p_roles) ORDER BY n LIMIT 1
$function$;

-- What a colleague finds about a user: what a hospital's or municipality's
-- staff page shows. Never the username, a token or the roles list.
CREATE FUNCTION kip.directory_doc(d kip.users, o kip.organisations)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_object('id', d.id, 'display_name', d.display_name,
                            'organisation', jsonb_build_object('id', o.id, 'name', o.name, 'sector', o.sector),
                            'role', kip.directory_role(d.roles), 'phone', d.phone, 'email', d.email)
$function$;

-- Take one lookup from the caller's bucket: at most 20 at once, refilled
-- by one a second. None left: 429 (kipd adds Retry-After: 1, when the next
-- one is there). A refused lookup takes nothing.
CREATE FUNCTION kip.directory_take(p_user uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_burst constant double precision := 20;
  v_per_s constant double precision := 1;
  v_tokens double precision;
BEGIN
  INSERT INTO kip.directory_quota AS q (user_id, tokens, updated_at)
  VALUES (p_user, v_burst, now())
  ON CONFLICT (user_id) DO UPDATE
    SET tokens = least(v_burst, q.tokens + greatest(0, extract(epoch FROM now() - q.updated_at)) * v_per_s),
        updated_at = now()
  RETURNING tokens INTO v_tokens;
  IF v_tokens < 1 THEN
    PERFORM kip.fail(429, NULL, NULL, 'too many directory lookups; try again in a second');
  END IF;
  UPDATE kip.directory_quota SET tokens = v_tokens - 1 WHERE user_id = p_user;
END
$function$;

-- GET /v1/directory: active users whose name holds q (case-insensitive)
-- and/or who belong to organisation_id, by name. For coordinators and
-- caseworkers. Not a plan access: one audit row directory.search with no
-- plan. kipd has checked that q (2..200 characters) or organisation_id is
-- given.
CREATE FUNCTION kip_api.directory(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_q text := nullif(btrim(p_query->>'q'), '');
  v_org uuid := (p_query->>'organisation_id')::uuid;
  v_limit integer := kip.page_limit(p_query);
  v_cursor text := kip.cursor_decode(p_query->>'cursor');
  v_after_name text;
  v_after_id uuid;
  v_like text;
  v_items jsonb[];
  v_keys text[];
BEGIN
  IF NOT (u.roles && ARRAY['coordinator', 'caseworker']) THEN
    PERFORM kip.fail(403, 'forbidden', 'Authorization', 'the directory is for coordinators and caseworkers');
  END IF;
  IF v_cursor IS NOT NULL THEN
    BEGIN
      v_after_id := right(v_cursor, 36)::uuid;
      v_after_name := left(v_cursor, length(v_cursor) - 37);
    EXCEPTION WHEN OTHERS THEN
      PERFORM kip.fail(400, 'invalid_cursor', 'cursor', 'not a cursor from this list');
    END;
  END IF;
  PERFORM kip.directory_take(u.id);
  IF v_q IS NOT NULL THEN
    v_like := '%' || replace(replace(replace(v_q, '\', '\\'), '%', '\%'), '_', '\_') || '%';
  END IF;
  SELECT array_agg(kip.directory_doc(d, o) ORDER BY lower(d.display_name), d.id),
         array_agg(lower(d.display_name) || '|' || d.id ORDER BY lower(d.display_name), d.id)
    INTO v_items, v_keys
    FROM (SELECT * FROM kip.users d
           WHERE d.active
             AND (v_q IS NULL OR d.display_name ILIKE v_like)
             AND (v_org IS NULL OR d.organisation_id = v_org)
             AND (v_after_id IS NULL OR (lower(d.display_name), d.id) > (v_after_name, v_after_id))
           ORDER BY lower(d.display_name), d.id LIMIT v_limit + 1) d
    JOIN kip.organisations o ON o.id = d.organisation_id;
  PERFORM kip.audit('directory.search', NULL, 'directory');
  RETURN kip.ok(kip.page(v_items, v_keys, v_limit));
END
$function$;
