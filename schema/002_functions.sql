-- 002_functions: request context, errors, the access rule, audit, history
-- and the JSON documents.

CREATE TYPE kip.reply AS (
  status    integer,   -- NULL: the route's default status
  body      jsonb,     -- NULL: no body
  etag      text,      -- the version, without quotes
  location  text,
  user_id   uuid
);

-- ------------------------------------------------------- request context

-- The caller, as set by kip.begin_request() for this transaction.
CREATE FUNCTION kip.actor_id() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('kip.user_id', true), '')::uuid
$$;

CREATE FUNCTION kip.actor_org() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('kip.organisation_id', true), '')::uuid
$$;

-- Raise an HTTP error: SQLSTATE KPnnn, the field and message in DETAIL.
CREATE FUNCTION kip.fail(p_status integer, p_field text, p_message text, p_detail text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = 'KP' || p_status::text,
    MESSAGE = coalesce(p_detail, CASE WHEN p_field IS NULL THEN p_message
                                      ELSE p_field || ': ' || p_message END),
    DETAIL = jsonb_build_object(
      'user_id', kip.actor_id(),
      'errors', CASE WHEN p_field IS NULL THEN '[]'::jsonb
                     ELSE jsonb_build_array(jsonb_build_object('field', p_field, 'message', p_message))
                END)::text;
END
$$;

-- kip.fail with extra members for the problem document (e.g. the open
-- actions that block a participant from leaving).
CREATE FUNCTION kip.fail_with(p_status integer, p_field text, p_message text, p_extra jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = 'KP' || p_status::text,
    MESSAGE = p_field || ': ' || p_message,
    DETAIL = jsonb_build_object(
      'user_id', kip.actor_id(),
      'errors', jsonb_build_array(jsonb_build_object('field', p_field, 'message', p_message)),
      'extra', p_extra)::text;
END
$$;

-- Authenticate the bearer token (its SHA-256 is in ctx) and remember the
-- caller for this transaction. 401 for an unknown, revoked or expired token
-- or an inactive user.
CREATE FUNCTION kip.begin_request(p_ctx jsonb) RETURNS kip.users
LANGUAGE plpgsql AS $$
DECLARE
  v_user kip.users;
  v_token_id uuid;
  v_last timestamptz;
BEGIN
  PERFORM set_config('kip.request_id', coalesce(p_ctx->>'request_id', ''), true),
          set_config('kip.remote_addr', coalesce(p_ctx->>'remote_addr', ''), true),
          set_config('kip.user_id', '', true),
          set_config('kip.organisation_id', '', true);
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

CREATE FUNCTION kip.ok(p_body jsonb, p_status integer DEFAULT NULL, p_etag text DEFAULT NULL,
                       p_location text DEFAULT NULL)
RETURNS kip.reply LANGUAGE sql STABLE AS $$
  SELECT ROW(p_status, p_body, p_etag, p_location, kip.actor_id())::kip.reply
$$;

-- ----------------------------------------------------------------- audit

CREATE FUNCTION kip.audit(p_action text, p_plan_id uuid, p_resource text) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO kip.audit (user_id, organisation_id, action, plan_id, resource, request_id, remote_addr)
  VALUES (kip.actor_id(), kip.actor_org(), p_action, p_plan_id, p_resource,
          nullif(current_setting('kip.request_id', true), ''),
          nullif(current_setting('kip.remote_addr', true), ''))
$$;

-- ------------------------------------------------------ the access rule

-- The current consent of a plan, if any and not withdrawn.
CREATE FUNCTION kip.consent_covers(p_plan_id uuid, p_org uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM kip.consents c
                  WHERE c.plan_id = p_plan_id AND c.superseded_at IS NULL
                    AND c.withdrawn_at IS NULL AND c.kip_consent
                    AND p_org = ANY (c.contact_organisation_ids))
$$;

-- THE access rule. Every route that touches a plan goes through it, via
-- kip.require_plan() for one plan or directly in list queries.
-- A user who holds a plan-working role may see a plan when
--   * their organisation owns the plan, or
--   * the current consent covers their organisation and they are a
--     coordinator or caseworker (so a municipal team leader sees the work
--     of their organisation), or
--   * they are an active participant linked by user_id and the current
--     consent covers their organisation.
-- admin and auditor alone see no plan. A withdrawn consent covers nobody.
CREATE FUNCTION kip.plan_access(p_user_id uuid, p_org uuid, p_roles text[],
                                           p_plan_id uuid, p_owner uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT p_roles && ARRAY['coordinator', 'caseworker', 'integration']
     AND (p_owner = p_org
          OR (kip.consent_covers(p_plan_id, p_org)
              AND (p_roles && ARRAY['coordinator', 'caseworker']
                   OR EXISTS (SELECT 1 FROM kip.participants pa
                               WHERE pa.plan_id = p_plan_id AND pa.user_id = p_user_id
                                 AND pa.left_at IS NULL))))
$$;

-- Load a plan the caller may see, or 404. p_write: the plan must not be
-- closed (409). p_lock: FOR UPDATE, for writes.
CREATE FUNCTION kip.require_plan(p_user kip.users, p_plan_id uuid, p_write boolean DEFAULT false)
RETURNS kip.plans LANGUAGE plpgsql AS $$
DECLARE
  v_plan kip.plans;
BEGIN
  IF p_write THEN
    SELECT * INTO v_plan FROM kip.plans WHERE id = p_plan_id FOR UPDATE;
  ELSE
    SELECT * INTO v_plan FROM kip.plans WHERE id = p_plan_id;
  END IF;
  IF v_plan.id IS NULL OR NOT kip.plan_access(p_user.id, p_user.organisation_id, p_user.roles,
                                              v_plan.id, v_plan.owner_organisation_id) THEN
    PERFORM kip.fail(404, NULL, 'no such plan');
  END IF;
  IF p_write AND v_plan.status = 'closed' THEN
    PERFORM kip.fail(409, 'status', 'the plan is closed and read-only');
  END IF;
  RETURN v_plan;
END
$$;

-- Compare If-Match (ctx.if_match; -2 is "*") with the plan's version.
CREATE FUNCTION kip.check_version(p_ctx jsonb, p_version integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF p_ctx ? 'if_match' AND (p_ctx->>'if_match')::bigint <> -2
     AND (p_ctx->>'if_match')::bigint <> p_version THEN
    PERFORM kip.fail(412, 'If-Match', format('the plan is at version %s', p_version));
  END IF;
END
$$;

-- Bump a plan's version after any change to it or its parts.
CREATE FUNCTION kip.touch_plan(p_plan_id uuid) RETURNS kip.plans
LANGUAGE sql AS $$
  UPDATE kip.plans SET version = version + 1, updated_at = now()
   WHERE id = p_plan_id RETURNING *
$$;

CREATE FUNCTION kip.require_role(p_user kip.users, p_roles text[], p_what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT (p_user.roles && p_roles) THEN
    PERFORM kip.fail(403, 'Authorization', p_what);
  END IF;
END
$$;

-- --------------------------------------------------------------- history

CREATE FUNCTION kip.cpr_mask(p_cpr text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p_cpr IS NULL THEN NULL ELSE left(p_cpr, 6) || '-****' END
$$;

-- Record each created or changed column as one history row, named as the
-- API names it (citizen_name -> citizen.name). CPR numbers are masked.
CREATE FUNCTION kip.track_history() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_new jsonb := to_jsonb(NEW);
  v_old jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) ELSE '{}'::jsonb END;
  v_plan uuid := CASE WHEN TG_TABLE_NAME = 'plans' THEN (v_new->>'id')::uuid
                      ELSE (v_new->>'plan_id')::uuid END;
  v_key text;
  v_field text;
  v_before jsonb;
  v_after jsonb;
BEGIN
  FOR v_key IN SELECT jsonb_object_keys(v_new) LOOP
    CONTINUE WHEN v_key IN ('id', 'plan_id', 'version', 'created_at', 'updated_at', 'created_by',
                            'superseded_at');
    v_before := v_old->v_key;
    v_after := v_new->v_key;
    CONTINUE WHEN TG_OP = 'INSERT' AND (v_after IS NULL OR v_after = 'null'::jsonb);
    CONTINUE WHEN v_before IS NOT DISTINCT FROM v_after;
    v_field := CASE
      WHEN v_key LIKE 'citizen\_%' THEN 'citizen.' || substr(v_key, 9)
      WHEN v_key = 'coordinator_participant_id' THEN 'coordinator'
      ELSE v_key END;
    IF v_key = 'citizen_cpr' THEN
      v_before := to_jsonb(kip.cpr_mask(v_before #>> '{}'));
      v_after := to_jsonb(kip.cpr_mask(v_after #>> '{}'));
    END IF;
    INSERT INTO kip.history (plan_id, user_id, resource, resource_id, operation, field, before, after)
    VALUES (v_plan, kip.actor_id(), TG_ARGV[0], (v_new->>'id')::uuid,
            CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'update' END, v_field, v_before, v_after);
  END LOOP;
  RETURN NEW;
END
$$;

CREATE TRIGGER plans_history AFTER INSERT OR UPDATE ON kip.plans
  FOR EACH ROW EXECUTE FUNCTION kip.track_history('plan');
CREATE TRIGGER participants_history AFTER INSERT OR UPDATE ON kip.participants
  FOR EACH ROW EXECUTE FUNCTION kip.track_history('participant');
CREATE TRIGGER consents_history AFTER INSERT OR UPDATE ON kip.consents
  FOR EACH ROW EXECUTE FUNCTION kip.track_history('consent');

-- ------------------------------------------------------------- documents

CREATE FUNCTION kip.organisation_doc(o kip.organisations) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', o.id, 'name', o.name, 'sector', o.sector, 'cvr', o.cvr,
                            'ean', o.ean, 'created_at', o.created_at)
$$;

CREATE FUNCTION kip.user_doc(u kip.users) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', u.id, 'username', u.username, 'display_name', u.display_name,
                            'organisation_id', u.organisation_id, 'roles', to_jsonb(u.roles),
                            'email', u.email, 'phone', u.phone, 'active', u.active,
                            'created_at', u.created_at)
$$;

CREATE FUNCTION kip.token_doc(t kip.tokens) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', t.id, 'user_id', t.user_id, 'name', t.name,
                            'created_at', t.created_at, 'expires_at', t.expires_at,
                            'revoked_at', t.revoked_at, 'last_used_at', t.last_used_at)
$$;

CREATE FUNCTION kip.participant_doc(pa kip.participants) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', pa.id, 'plan_id', pa.plan_id, 'kind', pa.kind,
                            'user_id', pa.user_id, 'name', pa.name, 'role', pa.role,
                            'role_title', pa.role_title, 'organisation_id', pa.organisation_id,
                            'phone', pa.phone, 'email', pa.email,
                            'default_attendance', pa.default_attendance,
                            'active', pa.left_at IS NULL, 'joined_at', pa.joined_at,
                            'left_at', pa.left_at)
$$;

CREATE FUNCTION kip.consent_doc(c kip.consents) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', c.id, 'kip_consent', c.kip_consent,
                            'contact_organisation_ids', to_jsonb(c.contact_organisation_ids),
                            'relatives_allowed', c.relatives_allowed, 'form', c.form,
                            'given_at', c.given_at, 'recorded_by', c.recorded_by,
                            'review_by', c.review_by, 'withdrawn_at', c.withdrawn_at)
$$;

CREATE FUNCTION kip.plan_summary(p kip.plans) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', p.id, 'version', p.version, 'status', p.status,
    'citizen', jsonb_build_object('name', p.citizen_name, 'cpr', kip.cpr_mask(p.citizen_cpr)),
    'reason', p.reason, 'owner_organisation_id', p.owner_organisation_id,
    'coordinator', p.coordinator_participant_id,
    'created_at', p.created_at, 'updated_at', p.updated_at, 'closed_at', p.closed_at,
    'close_reason', p.close_reason)
$$;

-- Goals as stored: ids assigned, statuses defaulted, only known keys.
CREATE FUNCTION kip.goals_normalise(p_goals jsonb) RETURNS jsonb LANGUAGE sql VOLATILE AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'id', coalesce(g->>'id', gen_random_uuid()::text),
           'text', g->>'text',
           'owner', g->>'owner',
           'status', coalesce(g->>'status', 'open'),
           'sub_goals', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                     'id', coalesce(s->>'id', gen_random_uuid()::text),
                                     'text', s->>'text',
                                     'status', coalesce(s->>'status', 'open')) ORDER BY si)
                                    FROM jsonb_array_elements(coalesce(g->'sub_goals', '[]'))
                                         WITH ORDINALITY AS x(s, si)), '[]'::jsonb))
           ORDER BY gi), '[]'::jsonb)
    FROM jsonb_array_elements(coalesce(p_goals, '[]')) WITH ORDINALITY AS y(g, gi)
$$;

CREATE FUNCTION kip.needs_normalise(p_needs jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(jsonb_object_agg(key, jsonb_build_object(
           'relevant', (value->>'relevant')::boolean,
           'note', value->'note')), '{}'::jsonb)
    FROM jsonb_each(coalesce(p_needs, '{}'))
$$;

-- Keyset cursors: hex of "timestamp|uuid" or "bigint", opaque to clients.
CREATE FUNCTION kip.cursor_encode(p_text text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT encode(convert_to(p_text, 'UTF8'), 'hex')
$$;

CREATE FUNCTION kip.cursor_decode(p_cursor text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF p_cursor IS NULL THEN
    RETURN NULL;
  END IF;
  BEGIN
    RETURN convert_from(decode(p_cursor, 'hex'), 'UTF8');
  EXCEPTION WHEN OTHERS THEN
    PERFORM kip.fail(400, 'cursor', 'not a cursor from this list');
  END;
END
$$;

CREATE FUNCTION kip.cursor_ts_id(p_query jsonb, OUT ts timestamptz, OUT id uuid)
LANGUAGE plpgsql AS $$
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
    PERFORM kip.fail(400, 'cursor', 'not a cursor from this list');
  END;
END
$$;

CREATE FUNCTION kip.page_limit(p_query jsonb) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce((p_query->>'limit')::integer, 50)
$$;

-- {"items": [...first limit...], "next_cursor": ...} from rows fetched with
-- limit + 1: the extra row proves there is a next page.
CREATE FUNCTION kip.page(p_items jsonb[], p_keys text[], p_limit integer) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object(
    'items', coalesce(to_jsonb(p_items[1:p_limit]), '[]'::jsonb),
    'next_cursor', CASE WHEN cardinality(p_items) > p_limit
                        THEN to_jsonb(kip.cursor_encode(p_keys[p_limit])) ELSE 'null'::jsonb END)
$$;

-- One page of the field-level history of a plan, or of one resource in
-- it, oldest first. The cursor is the last id seen.
CREATE FUNCTION kip.history_page(p_plan_id uuid, p_resource text, p_resource_id uuid, p_query jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_limit integer := kip.page_limit(p_query);
  v_after bigint;
  v_items jsonb[];
  v_keys text[];
BEGIN
  BEGIN
    v_after := kip.cursor_decode(p_query->>'cursor')::bigint;
  EXCEPTION WHEN invalid_text_representation THEN
    PERFORM kip.fail(400, 'cursor', 'not a cursor from this list');
  END;
  SELECT array_agg(jsonb_build_object('id', h.id, 'at', h.at, 'user_id', h.user_id,
                                      'resource', h.resource, 'resource_id', h.resource_id,
                                      'operation', h.operation, 'field', h.field,
                                      'before', h.before, 'after', h.after) ORDER BY h.id),
         array_agg(h.id::text ORDER BY h.id)
    INTO v_items, v_keys
    FROM (SELECT * FROM kip.history h
           WHERE h.plan_id = p_plan_id
             AND (p_resource IS NULL OR (h.resource = p_resource AND h.resource_id = p_resource_id))
             AND (v_after IS NULL OR h.id > v_after)
           ORDER BY h.id LIMIT v_limit + 1) h;
  RETURN kip.page(v_items, v_keys, v_limit);
END
$$;

