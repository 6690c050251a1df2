-- 12_plans.sql: Plans (daemon/api/plans.c).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- Goals as stored: ids assigned, statuses defaulted, only known keys.
CREATE FUNCTION kip.goals_normalise(p_goals jsonb)
 RETURNS jsonb
 LANGUAGE sql
AS $function$
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
$function$;

CREATE FUNCTION kip.needs_normalise(p_needs jsonb)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT coalesce(jsonb_object_agg(key, jsonb_build_object(
           'relevant', (value->>'relevant')::boolean,
           'note', value->'note')), '{}'::jsonb)
    FROM jsonb_each(coalesce(p_needs, '{}'))
$function$;

-- plan_create stores the mask, the token and the blind index kipd
-- sent in place of citizen.cpr. The token is bound to the plan id kipd
-- chose (citizen.cpr_plan_id), which the plan gets.
CREATE FUNCTION kip_api.plan_create(p_ctx jsonb, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_cit jsonb := p_body->'citizen';
  v_coord jsonb := coalesce(p_body->'coordinator', '{}');
  v_pid uuid := gen_random_uuid();
  v_plan_id uuid := CASE WHEN v_cit->>'cpr_enc' IS NOT NULL THEN (v_cit->>'cpr_plan_id')::uuid
                         ELSE gen_random_uuid() END;
  p kip.plans;
  v_other uuid;
  v_warnings jsonb := '[]';
BEGIN
  PERFORM kip.require_role(u, ARRAY['coordinator', 'integration'],
                           'only coordinators and integrations create plans');
  PERFORM kip.cpr_check_sealed(v_cit, v_plan_id);
  INSERT INTO kip.plans (id, owner_organisation_id, coordinator_participant_id, citizen_name,
                         citizen_cpr, citizen_cpr_enc, citizen_cpr_hmac, citizen_birth_date, citizen_phone, citizen_address,
                         citizen_preferred_language, reason, goals, needs, follow_up_date,
                         approved_at, created_by)
  VALUES (v_plan_id, u.organisation_id, v_pid, v_cit->>'name', v_cit->>'cpr', v_cit->>'cpr_enc', v_cit->>'cpr_hmac',
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
  PERFORM kip.emit('plan.created', p.id, p.id,
                   jsonb_build_object('status', p.status, 'version', p.version,
                                      'owner_organisation_id', p.owner_organisation_id,
                                      'coordinator_participant_id', p.coordinator_participant_id,
                                      'follow_up_date', p.follow_up_date));
  PERFORM kip.emit('participant.added', p.id, pa.id,
                   jsonb_build_object('participant_id', pa.id, 'kind', pa.kind, 'role', pa.role,
                                      'organisation_id', pa.organisation_id, 'user_id', pa.user_id,
                                      'default_attendance', pa.default_attendance))
     FROM kip.participants pa WHERE pa.plan_id = p.id;
  PERFORM kip.audit('create', p.id, 'plan');
  -- duplicate_active_plan: the CPR number (by its blind index) already has
  -- an active plan the caller may see. Naming it shows that plan exists, so
  -- it is audited as shown (plan.duplicate_warning).
  IF p.citizen_cpr_hmac IS NOT NULL THEN
    SELECT o.id INTO v_other FROM kip.plans o
     WHERE o.citizen_cpr_hmac = p.citizen_cpr_hmac AND o.id <> p.id AND o.status = 'active'
       AND EXISTS (SELECT 1 FROM kip.plan_access_rule(u.id, u.organisation_id, u.roles, o.id,
                                                      o.owner_organisation_id))
     ORDER BY o.created_at DESC, o.id LIMIT 1;
    IF v_other IS NOT NULL THEN
      PERFORM kip.audit('plan.duplicate_warning', v_other, 'plan');
      v_warnings := jsonb_build_array(kip.warning('duplicate_active_plan', 'citizen.cpr', NULL,
        format('the citizen already has an active plan (%s)', v_other)));
    END IF;
  END IF;
  RETURN kip.ok_json(kip.json_append(kip.plan_doc(p), 'warnings', v_warnings), 201, p.version::text,
                     '/v1/plans/' || p.id);
END
$function$;

CREATE FUNCTION kip_api.plan_get(p_ctx jsonb, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'plan');
  RETURN kip.ok_json(kip.plan_doc(p), NULL, p.version::text);
END
$function$;

-- GET /v1/plans/{id} with If-None-Match: the access rule first (404 for a
-- plan the caller may not see, exactly as without the header), then 304
-- with the ETag and no body when the plan is at one of p_versions (-2 is
-- "*"). A 304 sends no personal data, so it writes no audit row
-- (docs/audit.md); any other answer is plan_get's, audited as ever.
CREATE FUNCTION kip_api.plan_get_unless(p_ctx jsonb, p_id uuid, p_versions bigint[])
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id);
BEGIN
  IF p.version = ANY (p_versions) OR -2 = ANY (p_versions) THEN
    RETURN kip.ok(NULL, 304, p.version::text);
  END IF;
  PERFORM kip.audit('read', p.id, 'plan');
  RETURN kip.ok_json(kip.plan_doc(p), NULL, p.version::text);
END
$function$;

-- The filters of GET /v1/plans on one plan, as a set-returning SQL function
-- (one row when the plan passes) so that the list inlines it into both
-- branches of its access rule: the cursor (the last row of the page before),
-- status, owning organisation, tovholder (by user), a name search (p_like, a
-- LIKE pattern, or NULL) and a CPR number (by its blind index).
CREATE FUNCTION kip.plan_list_filter(p kip.plans, p_ts timestamptz, p_id uuid, p_status text, p_org uuid,
                                     p_coord uuid, p_like text, p_cpr_hmac text)
 RETURNS SETOF boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT true
   WHERE (p_ts IS NULL OR (p.created_at, p.id) < (p_ts, p_id))
     AND (p_status IS NULL OR p.status = p_status)
     AND (p_org IS NULL OR p.owner_organisation_id = p_org)
     AND (p_coord IS NULL OR EXISTS (
           SELECT 1 FROM kip.participants cp
            WHERE cp.id = p.coordinator_participant_id AND cp.user_id = p_coord))
     AND (p_like IS NULL OR p.citizen_name ILIKE p_like)
     AND (p_cpr_hmac IS NULL OR p.citizen_cpr_hmac = p_cpr_hmac)
$function$;

-- The plans the caller may see, newest first. Audited with
-- kip.audit_plans(): one row per plan shown, under the route's own action.
CREATE FUNCTION kip_api.plan_list(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
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
  v_items json[];
  v_keys text[];
  v_ids uuid[];
BEGIN
  IF v_q IS NOT NULL THEN
    v_like := '%' || replace(replace(replace(v_q, '\', '\\'), '%', '\%'), '_', '\_') || '%';
    IF v_q ~ '^[0-9]{6}-?[0-9]{4}$' THEN
      v_cpr := left(v_q, 6) || '-' || right(v_q, 4);
    END IF;
  END IF;
  SELECT array_agg(kip.plan_summary(p, nm.next_meeting, ac.open_actions, ac.overdue_actions)
                   ORDER BY p.created_at DESC, p.id DESC),
         array_agg(p.created_at::text || '|' || p.id ORDER BY p.created_at DESC, p.id DESC),
         array_agg(p.id ORDER BY p.created_at DESC, p.id DESC)
    INTO v_items, v_keys, v_ids
    -- The access rule kip.plan_access, evaluated as two disjoint sets, each
    -- read newest first through its own index and cut at the page's limit
    -- before the two are merged (no function call per candidate, and no
    -- candidate beyond the page read): a caller without a plan role sees
    -- nothing; otherwise the plans of the caller's organisation
    -- (plans_owner_page), and the other organisations' plans whose live KIP
    -- consent names the caller's organisation as a contact (kip.plan_contacts,
    -- migrations/028), for coordinators and caseworkers always, for the other
    -- roles only where the caller is an active participant. The list's own
    -- filters are kip.plan_list_filter, inlined into both.
    FROM (SELECT * FROM (
            (SELECT p.* FROM kip.plans p
              WHERE u.roles && ARRAY['coordinator', 'caseworker', 'integration']
                AND p.owner_organisation_id = u.organisation_id
                AND EXISTS (SELECT 1 FROM kip.plan_list_filter(p, c.ts, c.id, v_status, v_org, v_coord, v_like,
                                                               p_query->>'cpr_hmac'))
              ORDER BY p.created_at DESC, p.id DESC LIMIT v_limit + 1)
            UNION ALL
            (SELECT p.* FROM kip.plan_contacts k JOIN kip.plans p ON p.id = k.plan_id
              WHERE u.roles && ARRAY['coordinator', 'caseworker', 'integration']
                AND k.organisation_id = u.organisation_id
                AND p.owner_organisation_id <> u.organisation_id
                AND (u.roles && ARRAY['coordinator', 'caseworker']
                     OR EXISTS (SELECT 1 FROM kip.participants pa
                                 WHERE pa.plan_id = p.id AND pa.user_id = u.id AND pa.left_at IS NULL))
                AND EXISTS (SELECT 1 FROM kip.plan_list_filter(p, c.ts, c.id, v_status, v_org, v_coord, v_like,
                                                               p_query->>'cpr_hmac'))
              ORDER BY k.plan_created_at DESC, k.plan_id DESC LIMIT v_limit + 1)) b
           ORDER BY b.created_at DESC, b.id DESC LIMIT v_limit + 1) p
   CROSS JOIN LATERAL (SELECT min(m.starts_at) AS next_meeting FROM kip.meetings m
                        WHERE m.plan_id = p.id AND m.status = 'planned' AND m.starts_at > now()) nm
   CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE a.status IN ('open', 'in_progress'))::integer
                              AS open_actions,
                              count(*) FILTER (WHERE kip.action_overdue(a.due_date, a.status))::integer
                              AS overdue_actions
                         FROM kip.actions a WHERE a.plan_id = p.id) ac;
  -- Audit every plan whose citizen the caller now sees in the list.
  PERFORM kip.audit_plans('plan.list', v_ids[1:v_limit], 'plan');
  RETURN kip.ok_json(kip.page(v_items, v_keys, v_limit));
END
$function$;

-- plan_patch: the same for a changed citizen.cpr.
CREATE FUNCTION kip_api.plan_patch(p_ctx jsonb, p_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id, true);
  v_cit jsonb := coalesce(p_body->'citizen', '{}');
  v_status text := coalesce(p_body->>'status', p.status);
  v_before kip.plans := p;
  v_fields jsonb;
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  PERFORM kip.cpr_check_sealed(v_cit, p.id);
  IF v_status <> p.status THEN
    IF v_status = 'closed' THEN
      PERFORM kip.fail(422, 'not_allowed_transition', 'status', 'close a plan with POST /v1/plans/{id}/close');
    ELSIF v_status = 'active' THEN
      IF NOT EXISTS (SELECT 1 FROM kip.consents c WHERE c.plan_id = p.id AND c.superseded_at IS NULL
                        AND c.kip_consent AND c.withdrawn_at IS NULL) THEN
        PERFORM kip.fail(422, 'consent_required', 'status', 'a plan becomes active only once kip_consent is recorded');
      END IF;
    ELSIF p.status = 'active' THEN
      PERFORM kip.fail(422, 'not_allowed_transition', 'status', 'an active plan leaves that state by closing or by consent withdrawal');
    END IF;
  END IF;
  UPDATE kip.plans SET
    status = v_status,
    citizen_name = CASE WHEN v_cit ? 'name' THEN v_cit->>'name' ELSE citizen_name END,
    citizen_cpr = CASE WHEN v_cit ? 'cpr' THEN v_cit->>'cpr' ELSE citizen_cpr END,
    citizen_cpr_enc = CASE WHEN v_cit ? 'cpr' THEN v_cit->>'cpr_enc' ELSE citizen_cpr_enc END,
    citizen_cpr_hmac = CASE WHEN v_cit ? 'cpr' THEN v_cit->>'cpr_hmac' ELSE citizen_cpr_hmac END,
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
  PERFORM kip.emit('participant.changed', p.id, pa.id,
                   jsonb_build_object('participant_id', pa.id, 'role', pa.role,
                                      'default_attendance', pa.default_attendance,
                                      'fields', (SELECT jsonb_agg(f ORDER BY f) FROM unnest(ARRAY[
                                                   CASE WHEN pa.name IS DISTINCT FROM p.citizen_name THEN 'name' END,
                                                   CASE WHEN pa.phone IS DISTINCT FROM p.citizen_phone THEN 'phone' END]) f
                                                  WHERE f IS NOT NULL)))
     FROM kip.participants pa
    WHERE pa.plan_id = p.id AND pa.kind = 'citizen'
      AND (pa.name IS DISTINCT FROM p.citizen_name OR pa.phone IS DISTINCT FROM p.citizen_phone);
  UPDATE kip.participants SET name = p.citizen_name, phone = p.citizen_phone
   WHERE plan_id = p.id AND kind = 'citizen'
     AND (name IS DISTINCT FROM p.citizen_name OR phone IS DISTINCT FROM p.citizen_phone);
  v_fields := kip.event_fields(p_body, ARRAY['status', 'reason', 'goals', 'needs', 'follow_up_date',
                                             'approved_at'])
              || kip.event_fields(v_cit, ARRAY['name', 'cpr', 'birth_date', 'phone', 'address',
                                               'preferred_language'], 'citizen.');
  PERFORM kip.emit('plan.changed', p.id, p.id,
                   jsonb_build_object('status', p.status, 'previous_status', v_before.status,
                                      'version', p.version, 'fields', v_fields));
  PERFORM kip.audit('update', p.id, 'plan');
  RETURN kip.ok_json(kip.plan_doc(p), NULL, p.version::text);
END
$function$;

CREATE FUNCTION kip_api.plan_close(p_ctx jsonb, p_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id, true);
  v_reason text := p_body->>'reason';
BEGIN
  PERFORM kip.require_steward(u, p, 'close the plan');
  PERFORM kip.check_version(p_ctx, p.version);
  IF v_reason IN ('transferred', 'other') AND nullif(btrim(p_body->>'note'), '') IS NULL THEN
    PERFORM kip.fail(422, 'required', 'note', format('is required when the reason is %s', v_reason));
  END IF;
  UPDATE kip.plans SET status = 'closed', closed_at = now(), close_reason = v_reason,
                       close_note = p_body->>'note', version = version + 1, updated_at = now()
   WHERE id = p.id RETURNING * INTO p;
  PERFORM kip.emit('plan.closed', p.id, p.id,
                   jsonb_build_object('status', p.status, 'close_reason', p.close_reason,
                                      'closed_at', p.closed_at, 'version', p.version));
  PERFORM kip.audit('close', p.id, 'plan');
  RETURN kip.ok_json(kip.plan_doc(p), NULL, p.version::text);
END
$function$;

CREATE FUNCTION kip_api.plan_history(p_ctx jsonb, p_id uuid, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id);
  v_page jsonb := kip.history_page(p.id, NULL, NULL, p_query);
BEGIN
  PERFORM kip.audit('read', p.id, 'history');
  RETURN kip.ok(v_page);
END
$function$;

-- A write must carry a token sealed under the database's current key. A
-- kipd still running with the old key after kipd --rotate-key gets 503
-- here instead of writing what the key file can no longer open. The token
-- must be of the current version (bound to its plan, "kipd-cpr:2") and
-- bound to this plan: a kipd from before the binding gets 503 too.
CREATE FUNCTION kip.cpr_check_sealed(p_citizen jsonb, p_plan_id uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF p_citizen ? 'cpr' AND p_citizen->>'cpr' IS NOT NULL THEN
    IF split_part(p_citizen->>'cpr_enc', ':', 3) IS DISTINCT FROM
         (SELECT id FROM kip.cpr_keys WHERE is_current) THEN
      PERFORM kip.fail(503, NULL, NULL, 'the CPR key was rotated; restart kipd');
    END IF;
    IF left(p_citizen->>'cpr_enc', 12) IS DISTINCT FROM E'\x01kipd-cpr:2:'
       OR p_plan_id IS NULL OR p_citizen->>'cpr_plan_id' IS DISTINCT FROM p_plan_id::text THEN
      PERFORM kip.fail(503, NULL, NULL, 'the CPR number is not sealed for this plan; restart kipd');
    END IF;
  END IF;
END
$function$;
