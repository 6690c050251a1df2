-- 003_api: one function per HTTP operation. Argument order is fixed by the
-- router: (ctx, path parameters..., body, query). Input has already been
-- checked for shape, types, enums and formats by kipd; these functions
-- enforce the rules that need the database.

-- ----------------------------------------------------------- organisations

CREATE FUNCTION kip_api.organisation_create(p_ctx jsonb, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
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
$$;

CREATE FUNCTION kip_api.organisation_list(p_ctx jsonb, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
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
$$;

CREATE FUNCTION kip_api.organisation_get(p_ctx jsonb, p_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  o kip.organisations;
BEGIN
  SELECT * INTO o FROM kip.organisations WHERE id = p_id;
  IF o.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no such organisation');
  END IF;
  RETURN kip.ok(kip.organisation_doc(o));
END
$$;

-- ------------------------------------------------------------------ users

CREATE FUNCTION kip_api.user_create(p_ctx jsonb, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  n kip.users;
BEGIN
  PERFORM kip.require_role(u, ARRAY['admin'], 'only admins create users');
  IF NOT EXISTS (SELECT 1 FROM kip.organisations WHERE id = (p_body->>'organisation_id')::uuid) THEN
    PERFORM kip.fail(422, 'organisation_id', 'no such organisation');
  END IF;
  IF EXISTS (SELECT 1 FROM kip.users WHERE username = p_body->>'username') THEN
    PERFORM kip.fail(409, 'username', 'is already taken');
  END IF;
  INSERT INTO kip.users (username, display_name, organisation_id, roles, email, phone)
  VALUES (p_body->>'username', p_body->>'display_name', (p_body->>'organisation_id')::uuid,
          ARRAY(SELECT DISTINCT jsonb_array_elements_text(p_body->'roles') ORDER BY 1),
          p_body->>'email', p_body->>'phone')
  RETURNING * INTO n;
  PERFORM kip.audit('create', NULL, 'user');
  RETURN kip.ok(kip.user_doc(n), 201, NULL, '/v1/users/' || n.id);
END
$$;

CREATE FUNCTION kip_api.user_list(p_ctx jsonb, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
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
$$;

CREATE FUNCTION kip_api.user_get(p_ctx jsonb, p_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  x kip.users;
BEGIN
  IF NOT (u.id = p_id OR 'admin' = ANY (u.roles)) THEN
    PERFORM kip.fail(403, 'Authorization', 'only admins see other users');
  END IF;
  SELECT * INTO x FROM kip.users WHERE id = p_id;
  IF x.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no such user');
  END IF;
  RETURN kip.ok(kip.user_doc(x));
END
$$;

CREATE FUNCTION kip_api.user_patch(p_ctx jsonb, p_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  x kip.users;
BEGIN
  PERFORM kip.require_role(u, ARRAY['admin'], 'only admins change users');
  SELECT * INTO x FROM kip.users WHERE id = p_id FOR UPDATE;
  IF x.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no such user');
  END IF;
  IF x.id = u.id AND p_body ? 'active' AND NOT (p_body->>'active')::boolean THEN
    PERFORM kip.fail(409, 'active', 'you cannot deactivate yourself');
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
$$;

CREATE FUNCTION kip_api.me(p_ctx jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  RETURN kip.ok(kip.user_doc(u));
END
$$;

-- ----------------------------------------------------------------- tokens

-- The token itself is made by kipd; only its SHA-256 reaches the database.
CREATE FUNCTION kip_api.token_create(p_ctx jsonb, p_user_id uuid, p_body jsonb, p_token_hash text)
RETURNS kip.reply LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  x kip.users;
  t kip.tokens;
BEGIN
  IF NOT (u.id = p_user_id OR 'admin' = ANY (u.roles)) THEN
    PERFORM kip.fail(403, 'Authorization', 'only admins make tokens for other users');
  END IF;
  SELECT * INTO x FROM kip.users WHERE id = p_user_id;
  IF x.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no such user');
  END IF;
  IF NOT x.active THEN
    PERFORM kip.fail(409, 'user_id', 'the user is not active');
  END IF;
  IF (p_body->>'expires_at')::timestamptz <= now() THEN
    PERFORM kip.fail(422, 'expires_at', 'must lie in the future');
  END IF;
  INSERT INTO kip.tokens (user_id, name, token_hash, expires_at)
  VALUES (x.id, p_body->>'name', p_token_hash, (p_body->>'expires_at')::timestamptz)
  RETURNING * INTO t;
  PERFORM kip.audit('create', NULL, 'token');
  RETURN kip.ok(kip.token_doc(t), 201, NULL, '/v1/tokens/' || t.id);
END
$$;

CREATE FUNCTION kip_api.token_list(p_ctx jsonb, p_user_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  IF NOT (u.id = p_user_id OR 'admin' = ANY (u.roles)) THEN
    PERFORM kip.fail(403, 'Authorization', 'only admins see the tokens of other users');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM kip.users WHERE id = p_user_id) THEN
    PERFORM kip.fail(404, NULL, 'no such user');
  END IF;
  RETURN kip.ok(jsonb_build_object(
    'items', coalesce((SELECT jsonb_agg(kip.token_doc(t) ORDER BY t.created_at DESC, t.id DESC)
                         FROM kip.tokens t WHERE t.user_id = p_user_id), '[]'::jsonb),
    'next_cursor', NULL));
END
$$;

CREATE FUNCTION kip_api.token_delete(p_ctx jsonb, p_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  t kip.tokens;
BEGIN
  SELECT * INTO t FROM kip.tokens WHERE id = p_id FOR UPDATE;
  IF t.id IS NULL OR NOT (t.user_id = u.id OR 'admin' = ANY (u.roles)) THEN
    PERFORM kip.fail(404, NULL, 'no such token');
  END IF;
  UPDATE kip.tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = p_id;
  PERFORM kip.audit('revoke', NULL, 'token');
  RETURN kip.ok(NULL, 204);
END
$$;

-- First start: create the admin user and its token, once, under a lock.
-- Returns true when it created them.
CREATE FUNCTION kip.bootstrap(p_token_hash text) RETURNS boolean
LANGUAGE plpgsql AS $$
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
$$;

-- ------------------------------------------------------------------ plans

CREATE FUNCTION kip_api.plan_create(p_ctx jsonb, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_cit jsonb := p_body->'citizen';
  v_coord jsonb := coalesce(p_body->'coordinator', '{}');
  v_pid uuid := gen_random_uuid();
  p kip.plans;
BEGIN
  PERFORM kip.require_role(u, ARRAY['coordinator', 'integration'],
                           'only coordinators and integrations create plans');
  INSERT INTO kip.plans (owner_organisation_id, coordinator_participant_id, citizen_name,
                         citizen_cpr, citizen_birth_date, citizen_phone, citizen_address,
                         citizen_preferred_language, reason, goals, needs, follow_up_date,
                         approved_at, created_by)
  VALUES (u.organisation_id, v_pid, v_cit->>'name', v_cit->>'cpr',
          (v_cit->>'birth_date')::date, v_cit->>'phone', v_cit->>'address',
          v_cit->>'preferred_language', coalesce(p_body->>'reason', ''),
          kip.goals_normalise(p_body->'goals'), kip.needs_normalise(p_body->'needs'),
          (p_body->>'follow_up_date')::date, (p_body->>'approved_at')::date, u.id)
  RETURNING * INTO p;
  INSERT INTO kip.participants (id, plan_id, kind, user_id, name, role, role_title,
                                organisation_id, phone, email)
  VALUES (v_pid, p.id, 'professional', u.id, u.display_name,
          coalesce(v_coord->>'role', 'social_nurse'), v_coord->>'role_title', u.organisation_id,
          coalesce(v_coord->>'phone', u.phone), coalesce(v_coord->>'email', u.email));
  INSERT INTO kip.participants (plan_id, kind, name, role, phone)
  VALUES (p.id, 'citizen', p.citizen_name, 'citizen', p.citizen_phone);
  INSERT INTO kip.coordinator_history (plan_id, participant_id, changed_by) VALUES (p.id, v_pid, u.id);
  PERFORM kip.audit('create', p.id, 'plan');
  RETURN kip.ok(kip.plan_doc(p), 201, p.version::text, '/v1/plans/' || p.id);
END
$$;

CREATE FUNCTION kip_api.plan_get(p_ctx jsonb, p_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'plan');
  RETURN kip.ok(kip.plan_doc(p), NULL, p.version::text);
END
$$;

CREATE FUNCTION kip_api.plan_list(p_ctx jsonb, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  c record := kip.cursor_ts_id(p_query);
  v_limit integer := kip.page_limit(p_query);
  v_status text := p_query->>'status';
  v_org uuid := (p_query->>'organisation')::uuid;
  v_coord uuid := (p_query->>'coordinator')::uuid;
  v_q text := nullif(btrim(p_query->>'q'), '');
  v_like text;
  v_cpr text;
  v_items jsonb[];
  v_keys text[];
  v_ids uuid[];
BEGIN
  IF v_q IS NOT NULL THEN
    v_like := '%' || replace(replace(replace(v_q, '\', '\\'), '%', '\%'), '_', '\_') || '%';
    IF v_q ~ '^[0-9]{6}-?[0-9]{4}$' THEN
      v_cpr := left(v_q, 6) || '-' || right(v_q, 4);
    END IF;
  END IF;
  SELECT array_agg(kip.plan_summary(p) ORDER BY p.created_at DESC, p.id DESC),
         array_agg(p.created_at::text || '|' || p.id ORDER BY p.created_at DESC, p.id DESC),
         array_agg(p.id ORDER BY p.created_at DESC, p.id DESC)
    INTO v_items, v_keys, v_ids
    FROM (SELECT * FROM kip.plans p
           -- The candidates are the plans the access rule can grant, each
           -- found through its own index (owner, consent coverage,
           -- participation), so a page never walks every plan; the rule
           -- itself still decides.
           WHERE p.id IN (SELECT o.id FROM kip.plans o WHERE o.owner_organisation_id = u.organisation_id
                          UNION ALL
                          SELECT cc.plan_id FROM kip.consents cc
                           WHERE cc.contact_organisation_ids @> ARRAY[u.organisation_id]
                             AND cc.superseded_at IS NULL AND cc.withdrawn_at IS NULL AND cc.kip_consent
                          UNION ALL
                          SELECT pa.plan_id FROM kip.participants pa
                           WHERE pa.user_id = u.id AND pa.left_at IS NULL)
             AND kip.plan_access(u.id, u.organisation_id, u.roles, p.id, p.owner_organisation_id)
             AND (c.ts IS NULL OR (p.created_at, p.id) < (c.ts, c.id))
             AND (v_status IS NULL OR p.status = v_status)
             AND (v_org IS NULL OR p.owner_organisation_id = v_org)
             AND (v_coord IS NULL OR EXISTS (
                   SELECT 1 FROM kip.participants cp
                    WHERE cp.id = p.coordinator_participant_id AND cp.user_id = v_coord))
             AND (v_q IS NULL OR p.citizen_name ILIKE v_like OR p.citizen_cpr = v_cpr)
           ORDER BY p.created_at DESC, p.id DESC LIMIT v_limit + 1) p;
  -- Audit every plan whose citizen the caller now sees in the list.
  INSERT INTO kip.audit (user_id, organisation_id, action, plan_id, resource, request_id, remote_addr)
  SELECT u.id, u.organisation_id, 'list', x, 'plan', nullif(current_setting('kip.request_id', true), ''),
         nullif(current_setting('kip.remote_addr', true), '')
    FROM unnest(v_ids[1:v_limit]) AS x;
  RETURN kip.ok(kip.page(v_items, v_keys, v_limit));
END
$$;

CREATE FUNCTION kip_api.plan_patch(p_ctx jsonb, p_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id, true);
  v_cit jsonb := coalesce(p_body->'citizen', '{}');
  v_status text := coalesce(p_body->>'status', p.status);
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  IF v_status <> p.status THEN
    IF v_status = 'closed' THEN
      PERFORM kip.fail(422, 'status', 'close a plan with POST /v1/plans/{id}/close');
    ELSIF v_status = 'active' THEN
      IF NOT EXISTS (SELECT 1 FROM kip.consents c WHERE c.plan_id = p.id AND c.superseded_at IS NULL
                        AND c.kip_consent AND c.withdrawn_at IS NULL) THEN
        PERFORM kip.fail(422, 'status', 'a plan becomes active only once kip_consent is recorded');
      END IF;
    ELSIF p.status = 'active' THEN
      PERFORM kip.fail(422, 'status', 'an active plan leaves that state by closing or by consent withdrawal');
    END IF;
  END IF;
  UPDATE kip.plans SET
    status = v_status,
    citizen_name = CASE WHEN v_cit ? 'name' THEN v_cit->>'name' ELSE citizen_name END,
    citizen_cpr = CASE WHEN v_cit ? 'cpr' THEN v_cit->>'cpr' ELSE citizen_cpr END,
    citizen_birth_date = CASE WHEN v_cit ? 'birth_date' THEN (v_cit->>'birth_date')::date
                              ELSE citizen_birth_date END,
    citizen_phone = CASE WHEN v_cit ? 'phone' THEN v_cit->>'phone' ELSE citizen_phone END,
    citizen_address = CASE WHEN v_cit ? 'address' THEN v_cit->>'address' ELSE citizen_address END,
    citizen_preferred_language = CASE WHEN v_cit ? 'preferred_language'
                                      THEN v_cit->>'preferred_language'
                                      ELSE citizen_preferred_language END,
    reason = CASE WHEN p_body ? 'reason' THEN p_body->>'reason' ELSE reason END,
    goals = CASE WHEN p_body ? 'goals' THEN kip.goals_normalise(p_body->'goals') ELSE goals END,
    needs = CASE WHEN p_body ? 'needs' THEN kip.needs_normalise(p_body->'needs') ELSE needs END,
    follow_up_date = CASE WHEN p_body ? 'follow_up_date' THEN (p_body->>'follow_up_date')::date
                          ELSE follow_up_date END,
    approved_at = CASE WHEN p_body ? 'approved_at' THEN (p_body->>'approved_at')::date
                       ELSE approved_at END,
    version = version + 1,
    updated_at = now()
  WHERE id = p.id RETURNING * INTO p;
  -- Keep the citizen participant in step with the citizen.
  UPDATE kip.participants SET name = p.citizen_name, phone = p.citizen_phone
   WHERE plan_id = p.id AND kind = 'citizen'
     AND (name IS DISTINCT FROM p.citizen_name OR phone IS DISTINCT FROM p.citizen_phone);
  PERFORM kip.audit('update', p.id, 'plan');
  RETURN kip.ok(kip.plan_doc(p), NULL, p.version::text);
END
$$;

CREATE FUNCTION kip_api.plan_close(p_ctx jsonb, p_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id, true);
  v_reason text := p_body->>'reason';
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  IF v_reason IN ('transferred', 'other') AND nullif(btrim(p_body->>'note'), '') IS NULL THEN
    PERFORM kip.fail(422, 'note', format('is required when the reason is %s', v_reason));
  END IF;
  UPDATE kip.plans SET status = 'closed', closed_at = now(), close_reason = v_reason,
                       close_note = p_body->>'note', version = version + 1, updated_at = now()
   WHERE id = p.id RETURNING * INTO p;
  PERFORM kip.audit('close', p.id, 'plan');
  RETURN kip.ok(kip.plan_doc(p), NULL, p.version::text);
END
$$;

CREATE FUNCTION kip_api.plan_history(p_ctx jsonb, p_id uuid, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id);
  v_page jsonb := kip.history_page(p.id, NULL, NULL, p_query);
BEGIN
  PERFORM kip.audit('read', p.id, 'history');
  RETURN kip.ok(v_page);
END
$$;

-- ----------------------------------------------------------- participants

CREATE FUNCTION kip_api.participant_add(p_ctx jsonb, p_plan_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  x kip.users;
  v_kind text := p_body->>'kind';
  v_org uuid := (p_body->>'organisation_id')::uuid;
  v_name text := p_body->>'name';
  c kip.consents;
  pa kip.participants;
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  IF p_body ? 'user_id' AND p_body->>'user_id' IS NOT NULL THEN
    IF v_kind <> 'professional' THEN
      PERFORM kip.fail(422, 'user_id', 'only professionals are linked to a user account');
    END IF;
    SELECT * INTO x FROM kip.users WHERE id = (p_body->>'user_id')::uuid AND active;
    IF x.id IS NULL THEN
      PERFORM kip.fail(422, 'user_id', 'no such active user');
    END IF;
    v_name := coalesce(v_name, x.display_name);
    v_org := coalesce(v_org, x.organisation_id);
    IF v_org <> x.organisation_id THEN
      PERFORM kip.fail(422, 'organisation_id', 'differs from the organisation of the user');
    END IF;
  END IF;
  IF v_name IS NULL THEN
    PERFORM kip.fail(422, 'name', 'is required without user_id');
  END IF;
  IF v_org IS NOT NULL AND NOT EXISTS (SELECT 1 FROM kip.organisations WHERE id = v_org) THEN
    PERFORM kip.fail(422, 'organisation_id', 'no such organisation');
  END IF;
  SELECT * INTO c FROM kip.consents
   WHERE plan_id = p.id AND superseded_at IS NULL AND withdrawn_at IS NULL AND kip_consent;
  IF v_kind = 'relative' AND NOT coalesce(c.relatives_allowed, false) THEN
    PERFORM kip.fail(422, 'kind', 'relatives take part only when the consent allows it (relatives_allowed)');
  END IF;
  IF v_kind = 'professional' AND v_org IS NOT NULL AND v_org <> p.owner_organisation_id
     AND NOT (v_org = ANY (coalesce(c.contact_organisation_ids, '{}'))) THEN
    PERFORM kip.fail(422, 'organisation_id',
                     'the citizen has not consented to contact with this organisation');
  END IF;
  IF x.id IS NOT NULL AND EXISTS (SELECT 1 FROM kip.participants
                                    WHERE plan_id = p.id AND user_id = x.id AND left_at IS NULL) THEN
    PERFORM kip.fail(409, 'user_id', 'is already an active participant of this plan');
  END IF;
  INSERT INTO kip.participants (plan_id, kind, user_id, name, role, role_title, organisation_id,
                                phone, email, default_attendance)
  VALUES (p.id, v_kind, x.id, v_name, p_body->>'role', p_body->>'role_title', v_org,
          coalesce(p_body->>'phone', x.phone), coalesce(p_body->>'email', x.email),
          coalesce(p_body->>'default_attendance', 'in_person'))
  RETURNING * INTO pa;
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('create', p.id, 'participant');
  RETURN kip.ok(kip.participant_doc(pa), 201, NULL,
                '/v1/plans/' || p.id || '/participants/' || pa.id);
END
$$;

CREATE FUNCTION kip_api.participant_list(p_ctx jsonb, p_plan_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'participants');
  RETURN kip.ok(jsonb_build_object(
    'items', coalesce((SELECT jsonb_agg(kip.participant_doc(pa) ORDER BY pa.joined_at, pa.id)
                         FROM kip.participants pa WHERE pa.plan_id = p.id), '[]'::jsonb),
    'next_cursor', NULL), NULL, p.version::text);
END
$$;

CREATE FUNCTION kip.require_participant(p_plan_id uuid, p_id uuid, p_lock boolean DEFAULT false)
RETURNS kip.participants LANGUAGE plpgsql AS $$
DECLARE
  pa kip.participants;
BEGIN
  IF p_lock THEN
    SELECT * INTO pa FROM kip.participants WHERE id = p_id AND plan_id = p_plan_id FOR UPDATE;
  ELSE
    SELECT * INTO pa FROM kip.participants WHERE id = p_id AND plan_id = p_plan_id;
  END IF;
  IF pa.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no such participant');
  END IF;
  RETURN pa;
END
$$;

CREATE FUNCTION kip_api.participant_get(p_ctx jsonb, p_plan_id uuid, p_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id);
  pa kip.participants := kip.require_participant(p.id, p_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'participant');
  RETURN kip.ok(kip.participant_doc(pa));
END
$$;

CREATE FUNCTION kip_api.participant_patch(p_ctx jsonb, p_plan_id uuid, p_id uuid, p_body jsonb)
RETURNS kip.reply LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  pa kip.participants := kip.require_participant(p.id, p_id, true);
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  IF pa.left_at IS NOT NULL THEN
    PERFORM kip.fail(409, 'left_at', 'the participant has left the plan');
  END IF;
  IF pa.kind = 'citizen' AND (p_body ? 'name' OR p_body ? 'phone') THEN
    PERFORM kip.fail(422, CASE WHEN p_body ? 'name' THEN 'name' ELSE 'phone' END,
                     'change the citizen through PATCH /v1/plans/{id}');
  END IF;
  UPDATE kip.participants SET
    name = CASE WHEN p_body ? 'name' THEN p_body->>'name' ELSE name END,
    role = CASE WHEN p_body ? 'role' THEN p_body->>'role' ELSE role END,
    role_title = CASE WHEN p_body ? 'role_title' THEN p_body->>'role_title' ELSE role_title END,
    phone = CASE WHEN p_body ? 'phone' THEN p_body->>'phone' ELSE phone END,
    email = CASE WHEN p_body ? 'email' THEN p_body->>'email' ELSE email END,
    default_attendance = CASE WHEN p_body ? 'default_attendance' THEN p_body->>'default_attendance'
                              ELSE default_attendance END
  WHERE id = pa.id RETURNING * INTO pa;
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('update', p.id, 'participant');
  RETURN kip.ok(kip.participant_doc(pa));
END
$$;

-- Leaving never erases: it sets left_at. A participant who holds open
-- actions gets 409 listing them, unless reassign_to names who takes them
-- over; then the leave and the re-assignments commit together.
CREATE FUNCTION kip_api.participant_leave(p_ctx jsonb, p_plan_id uuid, p_id uuid, p_query jsonb)
RETURNS kip.reply LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  pa kip.participants := kip.require_participant(p.id, p_id, true);
  v_to uuid := (p_query->>'reassign_to')::uuid;
  v_open jsonb;
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  IF pa.left_at IS NOT NULL THEN
    PERFORM kip.fail(409, 'left_at', 'the participant has already left the plan');
  END IF;
  IF pa.kind = 'citizen' THEN
    PERFORM kip.fail(409, 'kind', 'the citizen cannot leave the plan; close it instead');
  END IF;
  IF pa.id = p.coordinator_participant_id THEN
    PERFORM kip.fail(409, 'coordinator', 'the tovholder cannot leave; hand the plan over first');
  END IF;
  IF v_to IS NOT NULL AND (v_to = pa.id OR NOT EXISTS (
       SELECT 1 FROM kip.participants WHERE id = v_to AND plan_id = p.id AND left_at IS NULL)) THEN
    PERFORM kip.fail(422, 'reassign_to', 'must name another active participant of the plan');
  END IF;
  SELECT jsonb_agg(jsonb_build_object('id', a.id, 'title', a.title, 'status', a.status,
                                      'due_date', a.due_date) ORDER BY a.created_at, a.id)
    INTO v_open
    FROM kip.actions a
   WHERE a.responsible_participant_id = pa.id AND a.status IN ('open', 'in_progress');
  IF v_open IS NOT NULL AND v_to IS NULL THEN
    PERFORM kip.fail_with(409, 'reassign_to',
      format('is required: the participant is responsible for %s open action(s)', jsonb_array_length(v_open)),
      jsonb_build_object('open_actions', v_open));
  END IF;
  IF v_open IS NOT NULL THEN
    UPDATE kip.actions SET responsible_participant_id = v_to, version = version + 1, updated_at = now()
     WHERE responsible_participant_id = pa.id AND status IN ('open', 'in_progress');
    INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
    SELECT 'action.assigned', p.id, (o->>'id')::uuid,
           'action.assigned:' || (o->>'id') || ':leave:' || pa.id,
           jsonb_build_object('action_id', o->>'id', 'responsible_participant_id', v_to)
      FROM jsonb_array_elements(v_open) o;
  END IF;
  UPDATE kip.participants SET left_at = now() WHERE id = pa.id RETURNING * INTO pa;
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('leave', p.id, 'participant');
  RETURN kip.ok(kip.participant_doc(pa));
END
$$;

-- ---------------------------------------------------------------- consent

CREATE FUNCTION kip_api.consent_record(p_ctx jsonb, p_plan_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  v_given timestamptz := (p_body->>'given_at')::timestamptz;
  v_orgs uuid[] := ARRAY(SELECT DISTINCT x::uuid
                           FROM jsonb_array_elements_text(coalesce(p_body->'contact_organisation_ids', '[]')) x);
  v_missing uuid;
  c kip.consents;
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  IF v_given > now() + interval '5 minutes' THEN
    PERFORM kip.fail(422, 'given_at', 'lies in the future');
  END IF;
  SELECT x INTO v_missing FROM unnest(v_orgs) x
   WHERE NOT EXISTS (SELECT 1 FROM kip.organisations o WHERE o.id = x) LIMIT 1;
  IF v_missing IS NOT NULL THEN
    PERFORM kip.fail(422, 'contact_organisation_ids', format('no such organisation: %s', v_missing));
  END IF;
  IF p_body ? 'review_by' AND (p_body->>'review_by')::date < (v_given AT TIME ZONE 'Europe/Copenhagen')::date THEN
    PERFORM kip.fail(422, 'review_by', 'lies before given_at');
  END IF;
  UPDATE kip.consents SET superseded_at = now() WHERE plan_id = p.id AND superseded_at IS NULL;
  INSERT INTO kip.consents (plan_id, kip_consent, contact_organisation_ids, relatives_allowed, form,
                            given_at, recorded_by, review_by)
  VALUES (p.id, (p_body->>'kip_consent')::boolean, v_orgs,
          coalesce((p_body->>'relatives_allowed')::boolean, false), p_body->>'form', v_given, u.id,
          coalesce((p_body->>'review_by')::date,
                   ((v_given AT TIME ZONE 'Europe/Copenhagen') + interval '12 months')::date))
  RETURNING * INTO c;
  UPDATE kip.plans SET
    status = CASE WHEN c.kip_consent AND status IN ('draft', 'awaiting_consent') THEN 'active'
                  WHEN NOT c.kip_consent AND status = 'active' THEN 'awaiting_consent'
                  ELSE status END,
    version = version + 1, updated_at = now()
  WHERE id = p.id;
  PERFORM kip.audit('create', p.id, 'consent');
  RETURN kip.ok(kip.consent_doc(c), 201, NULL, '/v1/plans/' || p.id || '/consent');
END
$$;

CREATE FUNCTION kip_api.consent_withdraw(p_ctx jsonb, p_plan_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  c kip.consents;
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  SELECT * INTO c FROM kip.consents WHERE plan_id = p.id AND superseded_at IS NULL FOR UPDATE;
  IF c.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no consent is recorded for this plan');
  END IF;
  IF c.withdrawn_at IS NOT NULL THEN
    PERFORM kip.fail(409, 'consent.withdrawn_at', 'the consent is already withdrawn');
  END IF;
  UPDATE kip.consents SET withdrawn_at = now(), withdraw_note = p_body->>'note'
   WHERE id = c.id RETURNING * INTO c;
  UPDATE kip.plans SET status = CASE WHEN status = 'active' THEN 'awaiting_consent' ELSE status END,
                       version = version + 1, updated_at = now()
   WHERE id = p.id;
  PERFORM kip.audit('withdraw', p.id, 'consent');
  RETURN kip.ok(kip.consent_doc(c));
END
$$;

CREATE FUNCTION kip_api.consent_get(p_ctx jsonb, p_plan_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id);
  c kip.consents;
BEGIN
  SELECT * INTO c FROM kip.consents WHERE plan_id = p.id AND superseded_at IS NULL;
  IF c.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no consent is recorded for this plan');
  END IF;
  PERFORM kip.audit('read', p.id, 'consent');
  RETURN kip.ok(kip.consent_doc(c));
END
$$;
