-- 16_actions.sql: Actions, my actions, the tovholder handover and the daily
-- pass route (daemon/api/actions.c).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- Create one action in a plan the caller may write. Used by
-- POST /v1/plans/{id}/actions and by meeting outcomes. p_field_prefix names
-- fields in errors ("actions[2]." for an outcome's third action).
CREATE FUNCTION kip.action_insert(p_user kip.users, p_plan kip.plans, p_body jsonb, p_meeting_id uuid DEFAULT NULL::uuid, p_field_prefix text DEFAULT ''::text)
 RETURNS kip.actions
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_resp uuid := (p_body->>'responsible_participant_id')::uuid;
  a kip.actions;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM kip.participants
                  WHERE id = v_resp AND plan_id = p_plan.id AND left_at IS NULL) THEN
    PERFORM kip.fail(422, 'not_a_participant', p_field_prefix || 'responsible_participant_id',
                     'must be an active participant of the plan');
  END IF;
  INSERT INTO kip.actions (plan_id, title, description, area, responsible_participant_id,
                           due_date, agreed_in_meeting_id, created_by)
  VALUES (p_plan.id, p_body->>'title', p_body->>'description', coalesce(p_body->>'area', 'other'),
          v_resp, (p_body->>'due_date')::date,
          coalesce(p_meeting_id, (p_body->>'agreed_in_meeting_id')::uuid), p_user.id)
  RETURNING * INTO a;
  PERFORM kip.emit('action.created', p_plan.id, a.id,
                   jsonb_build_object('action_id', a.id, 'status', a.status, 'version', a.version,
                                      'area', a.area, 'due_date', a.due_date,
                                      'responsible_participant_id', a.responsible_participant_id,
                                      'agreed_in_meeting_id', a.agreed_in_meeting_id));
  -- A new action is also assigned to its first responsible participant.
  PERFORM kip.emit('action.assigned', p_plan.id, a.id,
                   jsonb_build_object('action_id', a.id, 'responsible_participant_id', v_resp,
                                      'previous_responsible_participant_id', NULL,
                                      'status', a.status, 'version', a.version),
                   'action.assigned:' || a.id || ':' || v_resp);
  RETURN a;
END
$function$;

-- An action with the names a worklist needs.
CREATE FUNCTION kip.action_item(a kip.actions, p kip.plans, r kip.participants, c kip.participants)
 RETURNS json
 LANGUAGE sql
 STABLE
AS $function$
  SELECT json_build_object(
    'id', a.id, 'plan_id', a.plan_id, 'version', a.version, 'title', a.title,
    'description', a.description, 'area', a.area,
    'responsible_participant_id', a.responsible_participant_id, 'due_date', a.due_date,
    'status', a.status, 'agreed_in_meeting_id', a.agreed_in_meeting_id,
    'created_at', a.created_at, 'updated_at', a.updated_at, 'completed_at', a.completed_at,
    'overdue', kip.action_overdue(a.due_date, a.status),
    'plan', json_build_object(
      'id', p.id, 'status', p.status,
      'citizen', json_build_object('name', p.citizen_name, 'cpr', kip.cpr_mask(p.citizen_cpr)),
      'coordinator', json_build_object('participant_id', c.id, 'name', c.name)),
    'responsible', json_build_object('participant_id', r.id, 'name', r.name,
                                     'organisation_id', r.organisation_id))
$function$;

-- kip.actions.responsible_user_id (migrations/027) is the user of the
-- responsible participant (NULL for a participant without an account):
-- set on every insert and on every change of the responsible participant,
-- and followed when a participant's user changes. It lets
-- GET /v1/me/actions?overdue=true read the caller's open actions from one
-- index in due-date order (actions_user_open).
CREATE FUNCTION kip.actions_responsible_user()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  NEW.responsible_user_id := (SELECT pa.user_id FROM kip.participants pa
                               WHERE pa.id = NEW.responsible_participant_id);
  RETURN NEW;
END
$function$;

CREATE TRIGGER actions_responsible_user BEFORE INSERT OR UPDATE OF responsible_participant_id
  ON kip.actions FOR EACH ROW EXECUTE FUNCTION kip.actions_responsible_user();

CREATE FUNCTION kip.participants_user_follow()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  UPDATE kip.actions SET responsible_user_id = NEW.user_id
   WHERE responsible_participant_id = NEW.id
     AND responsible_user_id IS DISTINCT FROM NEW.user_id;
  RETURN NULL;
END
$function$;

CREATE TRIGGER participants_user_follow AFTER UPDATE OF user_id ON kip.participants
  FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id)
  EXECUTE FUNCTION kip.participants_user_follow();

CREATE FUNCTION kip_api.action_create(p_ctx jsonb, p_plan_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  a kip.actions;
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  IF p_body->>'agreed_in_meeting_id' IS NOT NULL THEN
    IF NOT EXISTS (SELECT 1 FROM kip.meetings m WHERE m.id = (p_body->>'agreed_in_meeting_id')::uuid
                      AND m.plan_id = p.id) THEN
      PERFORM kip.fail(422, 'not_found', 'agreed_in_meeting_id', 'must be a meeting of this plan');
    END IF;
  END IF;
  a := kip.action_insert(u, p, p_body);
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('create', p.id, 'action');
  RETURN kip.ok_json(kip.json_append(kip.action_doc(a), 'warnings', kip.due_date_warnings(a.due_date, 'due_date')),
                     201, a.version::text, '/v1/actions/' || a.id);
END
$function$;

CREATE FUNCTION kip_api.action_list(p_ctx jsonb, p_plan_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'actions');
  RETURN kip.ok_json(json_build_object(
    'items', coalesce((SELECT json_agg(kip.action_doc(a) ORDER BY a.created_at, a.id)
                         FROM kip.actions a WHERE a.plan_id = p.id), '[]'::json),
    'next_cursor', NULL));
END
$function$;

CREATE FUNCTION kip_api.action_get(p_ctx jsonb, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  x record := kip.require_action(u, p_id);
BEGIN
  PERFORM kip.audit('read', (x.p).id, 'action');
  RETURN kip.ok_json(kip.action_doc(x.a), NULL, (x.a).version::text);
END
$function$;

-- Status moves. open -> in_progress | done | cancelled; in_progress -> done |
-- cancelled; done -> open (reopen: the tovholder or the responsible only).
-- cancelled is final.
CREATE FUNCTION kip.action_moves(p_status text)
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE p_status
    WHEN 'open' THEN ARRAY['in_progress', 'done', 'cancelled']
    WHEN 'in_progress' THEN ARRAY['done', 'cancelled']
    WHEN 'done' THEN ARRAY['open']
    ELSE ARRAY[]::text[] END
$function$;

CREATE FUNCTION kip_api.action_patch(p_ctx jsonb, p_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  x record := kip.require_action(u, p_id, true);
  a kip.actions := x.a;
  p kip.plans := x.p;
  v_status text := coalesce(p_body->>'status', a.status);
  v_resp uuid := coalesce((p_body->>'responsible_participant_id')::uuid, a.responsible_participant_id);
  v_moves text[];
BEGIN
  IF p_ctx ? 'if_match' AND (p_ctx->>'if_match')::bigint <> -2
     AND (p_ctx->>'if_match')::bigint <> a.version THEN
    PERFORM kip.fail(412, 'stale_version', 'If-Match', format('the action is at version %s', a.version));
  END IF;
  IF v_status <> a.status THEN
    v_moves := kip.action_moves(a.status);
    IF NOT v_status = ANY (v_moves) THEN
      PERFORM kip.fail_with(409, 'not_allowed_transition', 'status',
        format('cannot move from %s to %s; allowed: %s', a.status, v_status,
               CASE WHEN cardinality(v_moves) = 0 THEN 'none' ELSE array_to_string(v_moves, ', ') END),
        jsonb_build_object('allowed_status', to_jsonb(v_moves)));
    END IF;
    IF a.status = 'done' AND NOT EXISTS (
         SELECT 1 FROM kip.participants pa
          WHERE pa.user_id = u.id AND pa.left_at IS NULL
            AND pa.id IN (p.coordinator_participant_id, a.responsible_participant_id)) THEN
      PERFORM kip.fail(403, 'forbidden', 'status', 'only the tovholder or the responsible participant may reopen a done action');
    END IF;
  END IF;
  IF v_resp <> a.responsible_participant_id AND NOT EXISTS (
       SELECT 1 FROM kip.participants WHERE id = v_resp AND plan_id = p.id AND left_at IS NULL) THEN
    PERFORM kip.fail(422, 'not_a_participant', 'responsible_participant_id', 'must be an active participant of the plan');
  END IF;
  IF a.status = 'cancelled' AND p_body - 'status' <> '{}'::jsonb THEN
    PERFORM kip.fail(409, 'cancelled', 'status', 'a cancelled action cannot be changed');
  END IF;
  UPDATE kip.actions SET
    title = CASE WHEN p_body ? 'title' THEN p_body->>'title' ELSE title END,
    description = CASE WHEN p_body ? 'description' THEN p_body->>'description' ELSE description END,
    area = CASE WHEN p_body ? 'area' THEN p_body->>'area' ELSE area END,
    due_date = CASE WHEN p_body ? 'due_date' THEN (p_body->>'due_date')::date ELSE due_date END,
    responsible_participant_id = v_resp,
    status = v_status,
    completed_at = CASE WHEN v_status = 'done' AND a.status <> 'done' THEN now()
                        WHEN v_status <> 'done' THEN NULL ELSE completed_at END,
    version = version + 1,
    updated_at = now()
  WHERE id = a.id RETURNING * INTO a;
  -- One event per kind of change: what was changed (action.changed), who is
  -- responsible (action.assigned), the status (action.started, .completed,
  -- .reopened, .cancelled).
  IF (p_body - 'status' - 'responsible_participant_id') <> '{}'::jsonb THEN
    PERFORM kip.emit('action.changed', p.id, a.id,
                     jsonb_build_object('action_id', a.id, 'status', a.status, 'version', a.version,
                                        'area', a.area, 'due_date', a.due_date,
                                        'fields', kip.event_fields(p_body, ARRAY['title', 'description',
                                                                   'area', 'due_date'])));
  END IF;
  IF v_resp <> (x.a).responsible_participant_id THEN
    PERFORM kip.emit('action.assigned', p.id, a.id,
                     jsonb_build_object('action_id', a.id, 'responsible_participant_id', v_resp,
                                        'previous_responsible_participant_id', (x.a).responsible_participant_id,
                                        'status', a.status, 'version', a.version),
                     'action.assigned:' || a.id || ':v' || a.version);
  END IF;
  IF v_status <> (x.a).status THEN
    PERFORM kip.emit(CASE v_status WHEN 'in_progress' THEN 'action.started' WHEN 'done' THEN 'action.completed'
                                   WHEN 'open' THEN 'action.reopened' ELSE 'action.cancelled' END,
                     p.id, a.id,
                     jsonb_build_object('action_id', a.id, 'status', v_status,
                                        'previous_status', (x.a).status, 'version', a.version),
                     'action.status:' || a.id || ':v' || a.version);
  END IF;
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('update', p.id, 'action');
  RETURN kip.ok_json(kip.json_append(kip.action_doc(a), 'warnings',
                       CASE WHEN p_body ? 'due_date' THEN kip.due_date_warnings(a.due_date, 'due_date')
                            ELSE '[]'::jsonb END), NULL, a.version::text);
END
$function$;

CREATE FUNCTION kip_api.action_history(p_ctx jsonb, p_id uuid, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  x record := kip.require_action(u, p_id);
  v_page jsonb := kip.history_page((x.p).id, 'action', p_id, p_query);
BEGIN
  PERFORM kip.audit('read', (x.p).id, 'action_history');
  RETURN kip.ok(v_page);
END
$function$;

-- The caller's worklist across every plan they may see: overdue first,
-- then by due date (none last), then by id. Audited with kip.audit_plans().
-- Issue 12 (s2): the caller's participants are read from the index alone
-- (participants_user_id, migration 023); ?overdue=true repeats the overdue
-- test in a form the planner can match to actions_responsible_open (the
-- open actions by due date), so closed and not-yet-due actions are not read;
-- the responsible participant and the tovholder are looked up only for the
-- page's rows, after the LIMIT.
CREATE FUNCTION kip_api.my_actions(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_limit integer := kip.page_limit(p_query);
  v_scope text := coalesce(p_query->>'scope', 'mine');
  v_status text := p_query->>'status';
  v_overdue boolean := (p_query->>'overdue')::boolean;
  v_due_before date := (p_query->>'due_before')::date;
  v_today date := kip.today();
  v_cursor text := kip.cursor_decode(p_query->>'cursor');
  c_late integer;
  c_due date;
  c_id uuid;
  v_items json[];
  v_plans uuid[];
  v_keys text[];
BEGIN
  IF v_cursor IS NOT NULL THEN
    BEGIN
      c_late := split_part(v_cursor, '|', 1)::integer;
      c_due := split_part(v_cursor, '|', 2)::date;
      c_id := split_part(v_cursor, '|', 3)::uuid;
    EXCEPTION WHEN OTHERS THEN
      PERFORM kip.fail(400, 'invalid_cursor', 'cursor', 'not a cursor from this list');
    END;
  END IF;
  -- ?overdue=true on one's own actions (the worklist's usual view) is its own
  -- statement: its plan does not depend on the parameters, so PL/pgSQL keeps
  -- one generic plan for the session (the general statement below is planned
  -- again on each call, for the scope), and it reads only the open actions
  -- already due (actions_responsible_open).
  IF v_scope = 'mine' AND v_overdue THEN
    SELECT array_agg(kip.action_item(x.a, x.p, r, c) ORDER BY x.late, x.due, (x.a).id),
           array_agg(x.late || '|' || x.due || '|' || (x.a).id ORDER BY x.late, x.due, (x.a).id),
           array_agg((x.p).id ORDER BY x.late, x.due, (x.a).id)
      INTO v_items, v_keys, v_plans
      FROM (SELECT a, p, late, due
              FROM kip.actions a
              JOIN kip.plans p ON p.id = a.plan_id
              CROSS JOIN LATERAL (SELECT CASE WHEN a.status IN ('open', 'in_progress') AND a.due_date < v_today
                                              THEN 0 ELSE 1 END AS late,
                                         coalesce(a.due_date, 'infinity'::date) AS due) k
             WHERE a.responsible_user_id = u.id
               AND EXISTS (SELECT 1 FROM kip.plan_access_rule(u.id, u.organisation_id, u.roles, p.id,
                                                              p.owner_organisation_id))
               AND (v_status IS NULL OR a.status = v_status)
               AND a.status IN ('open', 'in_progress') AND a.due_date < v_today
               AND (v_due_before IS NULL OR a.due_date < v_due_before)
               AND (v_cursor IS NULL OR (k.late, k.due, a.id) > (c_late, c_due, c_id))
             ORDER BY a.due_date, a.id
             LIMIT v_limit + 1) x
      JOIN kip.participants r ON r.id = (x.a).responsible_participant_id
      LEFT JOIN kip.participants c ON c.id = (x.p).coordinator_participant_id;
  ELSE
    SELECT array_agg(kip.action_item(x.a, x.p, r, c) ORDER BY x.late, x.due, (x.a).id),
           array_agg(x.late || '|' || x.due || '|' || (x.a).id ORDER BY x.late, x.due, (x.a).id),
           array_agg((x.p).id ORDER BY x.late, x.due, (x.a).id)
      INTO v_items, v_keys, v_plans
      FROM (SELECT a, p, late, due
              FROM kip.participants rk
              JOIN kip.actions a ON a.responsible_participant_id = rk.id
              JOIN kip.plans p ON p.id = a.plan_id
              CROSS JOIN LATERAL (SELECT CASE WHEN a.status IN ('open', 'in_progress') AND a.due_date < v_today
                                              THEN 0 ELSE 1 END AS late,
                                         coalesce(a.due_date, 'infinity'::date) AS due) k
             WHERE CASE WHEN v_scope = 'organisation' THEN rk.organisation_id = u.organisation_id
                        ELSE rk.user_id = u.id END
               AND EXISTS (SELECT 1 FROM kip.plan_access_rule(u.id, u.organisation_id, u.roles, p.id,
                                                              p.owner_organisation_id))
               AND (v_status IS NULL OR a.status = v_status)
               AND (v_overdue IS NULL OR (k.late = 0) = v_overdue)
               AND (v_overdue IS NOT TRUE OR (a.status IN ('open', 'in_progress') AND a.due_date < v_today))
               AND (v_due_before IS NULL OR a.due_date < v_due_before)
               AND (v_cursor IS NULL OR (k.late, k.due, a.id) > (c_late, c_due, c_id))
             ORDER BY k.late, k.due, a.id
             LIMIT v_limit + 1) x
      JOIN kip.participants r ON r.id = (x.a).responsible_participant_id
      LEFT JOIN kip.participants c ON c.id = (x.p).coordinator_participant_id;
  END IF;
  -- Only the plans of the actions shown (not the look-ahead row's).
  PERFORM kip.audit_plans('action.list_mine', v_plans[1:v_limit], 'action');
  RETURN kip.ok_json(kip.page(v_items, v_keys, v_limit));
END
$function$;

-- Hand the plan over to another tovholder (any active professional); only
-- the tovholder and the owning organisation may (kip.require_steward).
CREATE FUNCTION kip_api.coordinator_handover(p_ctx jsonb, p_plan_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  v_to uuid := (p_body->>'participant_id')::uuid;
  v_from uuid := p.coordinator_participant_id;
BEGIN
  PERFORM kip.require_steward(u, p, 'hand the plan over');
  PERFORM kip.check_version(p_ctx, p.version);
  IF NOT EXISTS (SELECT 1 FROM kip.participants WHERE id = v_to AND plan_id = p.id
                    AND left_at IS NULL AND kind = 'professional') THEN
    PERFORM kip.fail(422, 'not_a_participant', 'participant_id', 'must be an active professional participant of the plan');
  END IF;
  IF v_to = p.coordinator_participant_id THEN
    PERFORM kip.fail(409, 'already_coordinator', 'participant_id', 'is already the tovholder');
  END IF;
  UPDATE kip.coordinator_history SET ended_at = now()
   WHERE plan_id = p.id AND ended_at IS NULL;
  INSERT INTO kip.coordinator_history (plan_id, participant_id, changed_by) VALUES (p.id, v_to, u.id);
  UPDATE kip.plans SET coordinator_participant_id = v_to, version = version + 1, updated_at = now()
   WHERE id = p.id RETURNING * INTO p;
  PERFORM kip.emit('plan.coordinator_changed', p.id, p.id,
                   jsonb_build_object('participant_id', v_to, 'previous_participant_id', v_from,
                                      'status', p.status, 'version', p.version),
                   'plan.coordinator_changed:' || p.id || ':v' || p.version);
  PERFORM kip.audit('handover', p.id, 'plan');
  RETURN kip.ok_json(kip.plan_doc(p), NULL, p.version::text);
END
$function$;

CREATE FUNCTION kip_api.daily_pass_run(p_ctx jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  PERFORM kip.require_role(u, ARRAY['admin'], 'only admins run the daily pass by hand');
  RETURN kip.ok(kip.daily_pass());
END
$function$;
