-- 13_participants.sql: Participants of a plan (daemon/api/participants.c).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

CREATE FUNCTION kip_api.participant_add(p_ctx jsonb, p_plan_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
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
      PERFORM kip.fail(422, 'not_a_professional', 'user_id', 'only professionals are linked to a user account');
    END IF;
    SELECT * INTO x FROM kip.users WHERE id = (p_body->>'user_id')::uuid AND active;
    IF x.id IS NULL THEN
      PERFORM kip.fail(422, 'not_found', 'user_id', 'no such active user');
    END IF;
    v_name := coalesce(v_name, x.display_name);
    v_org := coalesce(v_org, x.organisation_id);
    IF v_org <> x.organisation_id THEN
      PERFORM kip.fail(422, 'organisation_mismatch', 'organisation_id', 'differs from the organisation of the user');
    END IF;
  END IF;
  IF v_name IS NULL THEN
    PERFORM kip.fail(422, 'required', 'name', 'is required without user_id');
  END IF;
  IF v_org IS NOT NULL AND NOT EXISTS (SELECT 1 FROM kip.organisations WHERE id = v_org) THEN
    PERFORM kip.fail(422, 'not_found', 'organisation_id', 'no such organisation');
  END IF;
  SELECT * INTO c FROM kip.consents
   WHERE plan_id = p.id AND superseded_at IS NULL AND withdrawn_at IS NULL AND kip_consent;
  IF v_kind = 'relative' AND NOT coalesce(c.relatives_allowed, false) THEN
    PERFORM kip.fail(422, 'not_in_consent', 'kind', 'relatives take part only when the consent allows it (relatives_allowed)');
  END IF;
  IF v_kind = 'professional' AND v_org IS NOT NULL AND v_org <> p.owner_organisation_id
     AND NOT (v_org = ANY (coalesce(c.contact_organisation_ids, '{}'))) THEN
    PERFORM kip.fail(422, 'not_in_consent', 'organisation_id',
                     'the citizen has not consented to contact with this organisation');
  END IF;
  IF x.id IS NOT NULL AND EXISTS (SELECT 1 FROM kip.participants
                                    WHERE plan_id = p.id AND user_id = x.id AND left_at IS NULL) THEN
    PERFORM kip.fail(409, 'duplicate', 'user_id', 'is already an active participant of this plan');
  END IF;
  INSERT INTO kip.participants (plan_id, kind, user_id, name, role, role_title, organisation_id,
                                phone, email, default_attendance)
  VALUES (p.id, v_kind, x.id, v_name, p_body->>'role', p_body->>'role_title', v_org,
          coalesce(p_body->>'phone', x.phone), coalesce(p_body->>'email', x.email),
          coalesce(p_body->>'default_attendance', 'in_person'))
  RETURNING * INTO pa;
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.emit('participant.added', p.id, pa.id,
                   jsonb_build_object('participant_id', pa.id, 'kind', pa.kind, 'role', pa.role,
                                      'organisation_id', pa.organisation_id, 'user_id', pa.user_id,
                                      'default_attendance', pa.default_attendance));
  PERFORM kip.audit('create', p.id, 'participant');
  RETURN kip.ok_json(kip.participant_doc(pa), 201, NULL,
                '/v1/plans/' || p.id || '/participants/' || pa.id);
END
$function$;

CREATE FUNCTION kip_api.participant_list(p_ctx jsonb, p_plan_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'participants');
  RETURN kip.ok_json(json_build_object(
    'items', coalesce((SELECT json_agg(kip.participant_doc(pa) ORDER BY pa.joined_at, pa.id)
                         FROM kip.participants pa WHERE pa.plan_id = p.id), '[]'::json),
    'next_cursor', NULL), NULL, p.version::text);
END
$function$;

CREATE FUNCTION kip_api.participant_get(p_ctx jsonb, p_plan_id uuid, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id);
  pa kip.participants := kip.require_participant(p.id, p_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'participant');
  RETURN kip.ok_json(kip.participant_doc(pa));
END
$function$;

CREATE FUNCTION kip_api.participant_patch(p_ctx jsonb, p_plan_id uuid, p_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  pa kip.participants := kip.require_participant(p.id, p_id, true);
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  IF pa.left_at IS NOT NULL THEN
    PERFORM kip.fail(409, 'participant_left', 'left_at', 'the participant has left the plan');
  END IF;
  IF pa.kind = 'citizen' AND (p_body ? 'name' OR p_body ? 'phone') THEN
    PERFORM kip.fail(422, 'not_allowed', CASE WHEN p_body ? 'name' THEN 'name' ELSE 'phone' END,
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
  PERFORM kip.emit('participant.changed', p.id, pa.id,
                   jsonb_build_object('participant_id', pa.id, 'role', pa.role,
                                      'default_attendance', pa.default_attendance,
                                      'fields', kip.event_fields(p_body, ARRAY['name', 'role', 'role_title',
                                                                 'phone', 'email', 'default_attendance'])));
  PERFORM kip.audit('update', p.id, 'participant');
  RETURN kip.ok_json(kip.participant_doc(pa));
END
$function$;

-- Leaving never erases: it sets left_at. A participant who holds open
-- actions gets 409 listing them, unless reassign_to names who takes them
-- over; then the leave and the re-assignments commit together.
CREATE FUNCTION kip_api.participant_leave(p_ctx jsonb, p_plan_id uuid, p_id uuid, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  pa kip.participants := kip.require_participant(p.id, p_id, true);
  v_to uuid := (p_query->>'reassign_to')::uuid;
  v_open jsonb;
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  IF pa.left_at IS NOT NULL THEN
    PERFORM kip.fail(409, 'participant_left', 'left_at', 'the participant has already left the plan');
  END IF;
  IF pa.kind = 'citizen' THEN
    PERFORM kip.fail(409, 'citizen_cannot_leave', 'kind', 'the citizen cannot leave the plan; close it instead');
  END IF;
  IF pa.id = p.coordinator_participant_id THEN
    PERFORM kip.fail(409, 'coordinator_cannot_leave', 'coordinator', 'the tovholder cannot leave; hand the plan over first');
  END IF;
  IF v_to IS NOT NULL AND (v_to = pa.id OR NOT EXISTS (
       SELECT 1 FROM kip.participants WHERE id = v_to AND plan_id = p.id AND left_at IS NULL)) THEN
    PERFORM kip.fail(422, 'not_a_participant', 'reassign_to', 'must name another active participant of the plan');
  END IF;
  SELECT jsonb_agg(jsonb_build_object('id', a.id, 'title', a.title, 'status', a.status,
                                      'due_date', a.due_date) ORDER BY a.created_at, a.id)
    INTO v_open
    FROM kip.actions a
   WHERE a.responsible_participant_id = pa.id AND a.status IN ('open', 'in_progress');
  IF v_open IS NOT NULL AND v_to IS NULL THEN
    PERFORM kip.fail_with(409, 'open_actions', 'reassign_to',
      format('is required: the participant is responsible for %s open action(s)', jsonb_array_length(v_open)),
      jsonb_build_object('open_actions', v_open));
  END IF;
  IF v_open IS NOT NULL THEN
    UPDATE kip.actions SET responsible_participant_id = v_to, version = version + 1, updated_at = now()
     WHERE responsible_participant_id = pa.id AND status IN ('open', 'in_progress');
    PERFORM kip.emit('action.assigned', p.id, a.id,
                     jsonb_build_object('action_id', a.id, 'responsible_participant_id', v_to,
                                        'previous_responsible_participant_id', pa.id,
                                        'status', a.status, 'version', a.version),
                     'action.assigned:' || a.id || ':leave:' || pa.id)
       FROM kip.actions a
      WHERE a.id IN (SELECT (o->>'id')::uuid FROM jsonb_array_elements(v_open) o);
  END IF;
  UPDATE kip.participants SET left_at = now() WHERE id = pa.id RETURNING * INTO pa;
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.emit('participant.left', p.id, pa.id,
                   jsonb_build_object('participant_id', pa.id, 'left_at', pa.left_at,
                                      'reassigned_to', v_to,
                                      'reassigned_action_ids', coalesce((SELECT jsonb_agg(o->'id')
                                                                  FROM jsonb_array_elements(v_open) o),
                                                                '[]'::jsonb)));
  PERFORM kip.audit('leave', p.id, 'participant');
  RETURN kip.ok_json(kip.participant_doc(pa));
END
$function$;
