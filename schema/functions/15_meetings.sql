-- 15_meetings.sql: Meetings: schedule, change, cancel, invitee answers,
-- outcome, agenda, my meetings (daemon/api/meetings.c).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- A meeting by id, or 404. A meeting in a plan the caller may not see
-- answers exactly as a missing one ("no such meeting"), so the id is no
-- oracle for the plan's existence (issue #16). The plan is then loaded
-- through kip.require_plan(), the one access rule.
CREATE FUNCTION kip.meeting_find(p_user kip.users, p_id uuid)
 RETURNS kip.meetings
 LANGUAGE plpgsql
AS $function$
DECLARE
  m kip.meetings;
BEGIN
  SELECT * INTO m FROM kip.meetings WHERE id = p_id;
  IF NOT kip.plan_visible(p_user, m.plan_id) THEN   -- also for a missing one (no timing oracle)
    PERFORM kip.fail(404, NULL, NULL, 'no such meeting');
  END IF;
  RETURN m;
END
$function$;

-- Load a meeting for a write: the plan must be writable (kip.require_plan
-- locks it), the meeting is locked, If-Match compares with the meeting's
-- version, and the meeting must still be planned.
CREATE FUNCTION kip.meeting_for_write(p_ctx jsonb, u kip.users, p_id uuid, OUT p kip.plans, OUT m kip.meetings)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
BEGIN
  m := kip.meeting_find(u, p_id);
  p := kip.require_plan(u, m.plan_id, true);
  SELECT * INTO m FROM kip.meetings WHERE id = p_id FOR UPDATE;
  IF p_ctx ? 'if_match' AND (p_ctx->>'if_match')::bigint <> -2
     AND (p_ctx->>'if_match')::bigint <> m.version THEN
    PERFORM kip.fail(412, 'stale_version', 'If-Match', format('the meeting is at version %s', m.version));
  END IF;
  IF m.status <> 'planned' THEN
    PERFORM kip.fail(409, 'wrong_status', 'status', format('the meeting is %s', m.status));
  END IF;
END
$function$;

-- duration_minutes from a body: default 90 (or the configured minimum when
-- that is longer); shorter than ctx.meeting_min_minutes is 422.
CREATE FUNCTION kip.meeting_duration(p_ctx jsonb, p_value jsonb, p_default integer, p_field text)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_min integer := coalesce((p_ctx->>'meeting_min_minutes')::integer, 90);
  v numeric;
BEGIN
  IF p_value IS NULL OR p_value = 'null'::jsonb THEN
    RETURN greatest(coalesce(p_default, 90), v_min);
  END IF;
  v := (p_value #>> '{}')::numeric;
  IF v < v_min THEN
    PERFORM kip.fail(422, 'too_short', p_field, format('must be at least %s minutes (a KIP meeting lasts at least %s minutes)',
                                          v_min, v_min));
  END IF;
  IF v > 720 THEN
    PERFORM kip.fail(422, 'too_long', p_field, 'must be at most 720 minutes');
  END IF;
  RETURN v::integer;
END
$function$;

CREATE FUNCTION kip.meeting_check_location(p_kind text, p_video_url text, p_field text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF p_kind = 'virtual' AND p_video_url IS NULL THEN
    PERFORM kip.fail(422, 'required', p_field || '.video_url', 'is required for a virtual meeting');
  END IF;
END
$function$;

CREATE FUNCTION kip.meeting_check_chair(p_plan_id uuid, p_chair uuid, p_field text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM kip.participants WHERE id = p_chair AND plan_id = p_plan_id
                    AND left_at IS NULL AND kind = 'professional') THEN
    PERFORM kip.fail(422, 'not_a_participant', p_field, 'must be an active professional participant of the plan');
  END IF;
END
$function$;

-- Replace a meeting's invitees with p_list ([{participant_id, mode?,
-- window_start?, window_end?}]). Responses of those invited before are
-- kept. The chair is always invited (appended when missing). Errors name
-- p_prefix || 'invitees[i].field'.
CREATE FUNCTION kip.meeting_set_invitees(m kip.meetings, p_list jsonb, p_prefix text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_end timestamptz := kip.meeting_ends_at(m);
  v_item jsonb;
  v_i integer;
  v_f text;
  v_pid uuid;
  v_ws timestamptz;
  v_we timestamptz;
  v_seen uuid[] := '{}';
  pa kip.participants;
BEGIN
  p_list := coalesce(p_list, '[]'::jsonb);
  IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_list) x
                  WHERE x->>'participant_id' = m.chair_participant_id::text) THEN
    p_list := p_list || jsonb_build_array(jsonb_build_object('participant_id', m.chair_participant_id));
  END IF;
  FOR v_item, v_i IN SELECT x, (n - 1)::integer FROM jsonb_array_elements(p_list) WITH ORDINALITY t(x, n) LOOP
    v_f := p_prefix || 'invitees[' || v_i || ']';
    v_pid := (v_item->>'participant_id')::uuid;
    SELECT * INTO pa FROM kip.participants WHERE id = v_pid AND plan_id = m.plan_id;
    IF pa.id IS NULL THEN
      PERFORM kip.fail(422, 'not_a_participant', v_f || '.participant_id', 'is not a participant of the plan');
    END IF;
    IF pa.left_at IS NOT NULL THEN
      PERFORM kip.fail(422, 'participant_left', v_f || '.participant_id', 'has left the plan; only active participants can be invited');
    END IF;
    IF v_pid = ANY (v_seen) THEN
      PERFORM kip.fail(422, 'duplicate', v_f || '.participant_id', 'is invited twice');
    END IF;
    v_seen := v_seen || v_pid;
    v_ws := (v_item->>'window_start')::timestamptz;
    v_we := (v_item->>'window_end')::timestamptz;
    IF v_ws IS NOT NULL AND (v_ws < m.starts_at OR v_ws >= v_end) THEN
      PERFORM kip.fail(422, 'outside_meeting', v_f || '.window_start',
                       format('must lie inside the meeting (%s to %s, Copenhagen time)',
                              kip.local_time(m.starts_at), kip.local_time(v_end, 'HH24:MI')));
    END IF;
    IF v_we IS NOT NULL AND (v_we <= m.starts_at OR v_we > v_end) THEN
      PERFORM kip.fail(422, 'outside_meeting', v_f || '.window_end',
                       format('must lie inside the meeting (%s to %s, Copenhagen time)',
                              kip.local_time(m.starts_at), kip.local_time(v_end, 'HH24:MI')));
    END IF;
    IF v_ws IS NOT NULL AND v_we IS NOT NULL AND v_we <= v_ws THEN
      PERFORM kip.fail(422, 'before_start', v_f || '.window_end', 'must lie after window_start');
    END IF;
    INSERT INTO kip.meeting_invitees AS mi (plan_id, meeting_id, participant_id, position, mode,
                                            window_start, window_end)
    VALUES (m.plan_id, m.id, v_pid, v_i, coalesce(v_item->>'mode', pa.default_attendance), v_ws, v_we)
    ON CONFLICT (meeting_id, participant_id) DO UPDATE
      SET position = EXCLUDED.position, mode = EXCLUDED.mode,
          window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end
      WHERE (mi.position, mi.mode, mi.window_start, mi.window_end)
            IS DISTINCT FROM (EXCLUDED.position, EXCLUDED.mode, EXCLUDED.window_start,
                              EXCLUDED.window_end);
  END LOOP;
  DELETE FROM kip.meeting_invitees WHERE meeting_id = m.id AND NOT (participant_id = ANY (v_seen));
END
$function$;

-- The current invitees as an invitee list, windows moved by p_shift and
-- dropped when they no longer fit p_starts_at + p_duration. PL/pgSQL
-- RETURN (SELECT ...): planned once per session (as SQL it was planned on
-- every call, issue 12).
CREATE FUNCTION kip.meeting_invitee_list(p_meeting_id uuid, p_shift interval, p_starts_at timestamp with time zone, p_duration integer, p_active_only boolean)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (
    SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
             'participant_id', i.participant_id, 'mode', i.mode,
             'window_start', CASE WHEN fits THEN i.window_start + p_shift END,
             'window_end', CASE WHEN fits THEN i.window_end + p_shift END)) ORDER BY i.position), '[]'::jsonb)
      FROM kip.meeting_invitees i
      JOIN kip.participants pa ON pa.id = i.participant_id
      CROSS JOIN LATERAL (SELECT
             coalesce(i.window_start + p_shift >= p_starts_at, true)
         AND coalesce(i.window_end + p_shift <= p_starts_at + p_duration * interval '1 minute', true)
         AND coalesce(i.window_start + p_shift < p_starts_at + p_duration * interval '1 minute', true)
         AND coalesce(i.window_end + p_shift > p_starts_at, true) AS fits) f
     WHERE i.meeting_id = p_meeting_id AND (NOT p_active_only OR pa.left_at IS NULL));
END
$function$;

-- Warnings for a written meeting: it starts in the past (allowed: meetings
-- are often recorded afterwards), or an invitee who is a user is invited to
-- another planned meeting at an overlapping time (windows considered). The
-- other meeting is not named: it may lie in a plan the caller cannot see.
-- The overlap is looked up from the user's participants to the planned
-- meetings of their plans (meetings_plan_planned, migration 023) that start
-- in the window where an overlap is possible: a meeting lasts at most 1440
-- minutes (its CHECK), and an invitee's window lies inside its meeting and
-- the invitee is a participant of the meeting's plan (both kept by
-- kip.meeting_set_invitees, the only writer of meeting_invitees). Before
-- issue 12 it read every invitation the user ever had (2/3 of an outcome's
-- time). PL/pgSQL RETURN (SELECT ...): one statement planned once per
-- session. Of several overlapping meetings the earliest is named, and of
-- those starting together the one ending first.
CREATE FUNCTION kip.meeting_warnings(m kip.meetings, p_prefix text DEFAULT ''::text)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (
  SELECT coalesce(jsonb_agg(w ORDER BY ord), '[]'::jsonb) FROM (
    SELECT -1 AS ord, kip.warning('starts_in_past', p_prefix || 'starts_at', NULL,
             format('the meeting starts in the past (%s, Copenhagen time); it is recorded as given',
                    kip.local_time(m.starts_at))) AS w
     WHERE m.status = 'planned' AND m.starts_at < now()
    UNION ALL
    SELECT i.position, kip.warning('overlap', p_prefix || 'invitees[' || i.position || ']', i.participant_id,
             format('%s is invited to another meeting at an overlapping time (%s to %s, Copenhagen time)',
                    pa.name, kip.local_time(o.s), kip.local_time(o.e, 'HH24:MI')))
      FROM kip.meeting_invitees i
      JOIN kip.participants pa ON pa.id = i.participant_id
      CROSS JOIN LATERAL (
        SELECT coalesce(i2.window_start, m2.starts_at) AS s,
               coalesce(i2.window_end, kip.meeting_ends_at(m2)) AS e
          FROM kip.participants pa2
          JOIN kip.meetings m2 ON m2.plan_id = pa2.plan_id AND m2.status = 'planned'
           AND m2.starts_at < coalesce(i.window_end, kip.meeting_ends_at(m))
           AND m2.starts_at > coalesce(i.window_start, m.starts_at) - interval '1440 minutes'
          JOIN kip.meeting_invitees i2 ON i2.meeting_id = m2.id AND i2.participant_id = pa2.id
         WHERE pa2.user_id = pa.user_id AND m2.id <> m.id
           AND tstzrange(coalesce(i2.window_start, m2.starts_at),
                         coalesce(i2.window_end, kip.meeting_ends_at(m2)))
               && tstzrange(coalesce(i.window_start, m.starts_at),
                            coalesce(i.window_end, kip.meeting_ends_at(m)))
         ORDER BY 1, 2 LIMIT 1) o
     WHERE i.meeting_id = m.id AND m.status = 'planned' AND pa.user_id IS NOT NULL) x);
END
$function$;

-- Create a planned meeting from a body {starts_at, duration_minutes?,
-- location?, purpose?, chair_participant_id?, invitees?}. p_base, when
-- given, is the meeting this one follows: location, duration, purpose,
-- chair and invitees default to its own. Without invitees and without a
-- base, every active participant is invited in their default mode.
-- citizen_not_invited: an explicit invitee list (p_invitees, as sent; NULL
-- when the client sent none and kipd chose the invitees) that leaves out
-- the plan's citizen while they take part in the plan. An array of 0 or 1.
-- PL/pgSQL RETURN (SELECT ...), planned once per session (issue 12).
CREATE FUNCTION kip.meeting_citizen_warnings(m kip.meetings, p_invitees jsonb, p_prefix text DEFAULT ''::text)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  -- Tested here, not in the statement: a test on the parameter alone lets a
  -- custom plan fold the statement away, and then PostgreSQL planned it again
  -- on every call instead of keeping the generic plan (0.24 ms per outcome).
  IF p_invitees IS NULL OR jsonb_typeof(p_invitees) IS DISTINCT FROM 'array' THEN
    RETURN '[]'::jsonb;
  END IF;
  RETURN (
    SELECT coalesce(jsonb_agg(kip.warning('citizen_not_invited', p_prefix || 'invitees', pa.id,
                      format('the citizen (%s) is not invited', pa.name))), '[]'::jsonb)
      FROM kip.participants pa
     WHERE pa.plan_id = m.plan_id AND pa.kind = 'citizen' AND pa.left_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM kip.meeting_invitees i WHERE i.meeting_id = m.id AND i.participant_id = pa.id));
END
$function$;

CREATE FUNCTION kip.meeting_insert(p_ctx jsonb, u kip.users, p kip.plans, b jsonb, p_prefix text, p_base kip.meetings DEFAULT NULL::kip.meetings)
 RETURNS kip.meetings
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_loc jsonb := b->'location';
  v_start timestamptz := (b->>'starts_at')::timestamptz;
  v_chair uuid := coalesce((b->>'chair_participant_id')::uuid,
                           CASE WHEN p_base.id IS NOT NULL THEN p_base.chair_participant_id END,
                           p.coordinator_participant_id);
  v_invitees jsonb := b->'invitees';
  m kip.meetings;
BEGIN
  IF v_loc IS NULL OR v_loc = 'null'::jsonb THEN
    IF p_base.id IS NULL THEN
      PERFORM kip.fail(422, 'required', p_prefix || 'location', 'is required');
    END IF;
    v_loc := jsonb_build_object('kind', p_base.location_kind, 'address', p_base.location_address,
                                'room', p_base.location_room, 'video_url', p_base.location_video_url);
  END IF;
  PERFORM kip.meeting_check_location(v_loc->>'kind', v_loc->>'video_url', p_prefix || 'location');
  PERFORM kip.meeting_check_chair(p.id, v_chair, p_prefix || 'chair_participant_id');
  INSERT INTO kip.meetings (plan_id, starts_at, duration_minutes, location_kind, location_address,
                            location_room, location_video_url, purpose, chair_participant_id,
                            previous_meeting_id, created_by)
  VALUES (p.id, v_start,
          kip.meeting_duration(p_ctx, b->'duration_minutes', p_base.duration_minutes,
                               p_prefix || 'duration_minutes'),
          v_loc->>'kind', v_loc->>'address', v_loc->>'room', v_loc->>'video_url',
          coalesce(b->>'purpose', p_base.purpose), v_chair, p_base.id, u.id)
  RETURNING * INTO m;
  IF v_invitees IS NULL OR v_invitees = 'null'::jsonb THEN
    IF p_base.id IS NOT NULL THEN
      v_invitees := kip.meeting_invitee_list(p_base.id, m.starts_at - p_base.starts_at, m.starts_at,
                                             m.duration_minutes, true);
    ELSE
      SELECT coalesce(jsonb_agg(jsonb_build_object('participant_id', pa.id) ORDER BY pa.joined_at, pa.id),
                      '[]'::jsonb)
        INTO v_invitees
        FROM kip.participants pa WHERE pa.plan_id = p.id AND pa.left_at IS NULL;
    END IF;
  END IF;
  PERFORM kip.meeting_set_invitees(m, v_invitees, p_prefix);
  PERFORM kip.emit('meeting.scheduled', p.id, m.id,
                   jsonb_build_object('meeting_id', m.id, 'status', m.status, 'version', m.version,
                                      'sequence', m.sequence, 'starts_at', m.starts_at,
                                      'duration_minutes', m.duration_minutes,
                                      'chair_participant_id', m.chair_participant_id,
                                      'previous_meeting_id', m.previous_meeting_id),
                   'meeting.scheduled:' || m.id);
  RETURN m;
END
$function$;

CREATE FUNCTION kip.meeting_reply(m kip.meetings, p_warnings jsonb, p_status integer DEFAULT NULL::integer, p_location boolean DEFAULT false)
 RETURNS kip.reply
 LANGUAGE sql
 STABLE
AS $function$
  SELECT kip.ok(kip.meeting_doc(m)::jsonb || jsonb_build_object('warnings', p_warnings), p_status,
                m.version::text, CASE WHEN p_location THEN '/v1/meetings/' || m.id END)
$function$;

CREATE FUNCTION kip_api.meeting_create(p_ctx jsonb, p_plan_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  m kip.meetings;
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  m := kip.meeting_insert(p_ctx, u, p, p_body, '');
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('create', p.id, 'meeting');
  RETURN kip.meeting_reply(m, kip.meeting_warnings(m) || kip.meeting_citizen_warnings(m, p_body->'invitees'),
                           201, true);
END
$function$;

CREATE FUNCTION kip_api.meeting_list(p_ctx jsonb, p_plan_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'meetings');
  RETURN kip.ok_json(json_build_object('items', kip.meetings_doc(p.id), 'next_cursor', NULL));
END
$function$;

CREATE FUNCTION kip_api.meeting_get(p_ctx jsonb, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  m kip.meetings := kip.meeting_find(u, p_id);
  p kip.plans := kip.require_plan(u, m.plan_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'meeting');
  RETURN kip.ok_json(kip.meeting_doc(m), NULL, m.version::text);
END
$function$;

-- Reschedule or change a planned meeting. Without `invitees`, attendance
-- windows move with the meeting. A new time resets every response to
-- pending. The calendar sequence is bumped.
CREATE FUNCTION kip_api.meeting_patch(p_ctx jsonb, p_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  w record := kip.meeting_for_write(p_ctx, u, p_id);
  p kip.plans := w.p;
  m kip.meetings := w.m;
  v_loc jsonb := p_body->'location';
  v_start timestamptz := coalesce((p_body->>'starts_at')::timestamptz, m.starts_at);
  v_dur integer := CASE WHEN p_body ? 'duration_minutes'
                        THEN kip.meeting_duration(p_ctx, p_body->'duration_minutes', NULL, 'duration_minutes')
                        ELSE m.duration_minutes END;
  v_chair uuid := coalesce((p_body->>'chair_participant_id')::uuid, m.chair_participant_id);
  v_invitees jsonb := p_body->'invitees';
  v_retimed boolean;
BEGIN
  IF v_loc IS NOT NULL THEN
    PERFORM kip.meeting_check_location(v_loc->>'kind', v_loc->>'video_url', 'location');
  END IF;
  IF v_chair <> m.chair_participant_id THEN
    PERFORM kip.meeting_check_chair(p.id, v_chair, 'chair_participant_id');
  END IF;
  v_retimed := v_start <> m.starts_at OR v_dur <> m.duration_minutes;
  IF v_invitees IS NULL THEN
    v_invitees := kip.meeting_invitee_list(m.id, v_start - m.starts_at, v_start, v_dur, false);
  END IF;
  UPDATE kip.meetings SET
    starts_at = v_start, duration_minutes = v_dur,
    location_kind = CASE WHEN v_loc IS NOT NULL THEN v_loc->>'kind' ELSE location_kind END,
    location_address = CASE WHEN v_loc IS NOT NULL THEN v_loc->>'address' ELSE location_address END,
    location_room = CASE WHEN v_loc IS NOT NULL THEN v_loc->>'room' ELSE location_room END,
    location_video_url = CASE WHEN v_loc IS NOT NULL THEN v_loc->>'video_url' ELSE location_video_url END,
    purpose = coalesce(p_body->>'purpose', purpose),
    chair_participant_id = v_chair,
    version = version + 1, sequence = sequence + 1, updated_at = now()
  WHERE id = m.id RETURNING * INTO m;
  PERFORM kip.meeting_set_invitees(m, v_invitees, '');
  IF v_retimed THEN
    UPDATE kip.meeting_invitees SET response = 'pending', responded_at = NULL
     WHERE meeting_id = m.id AND response <> 'pending';
  END IF;
  -- meeting.rescheduled when the time moved (every answer is pending
  -- again), meeting.changed for any other change (place, purpose, chair,
  -- invitees).
  PERFORM kip.emit(CASE WHEN v_retimed THEN 'meeting.rescheduled' ELSE 'meeting.changed' END, p.id, m.id,
                   jsonb_build_object('meeting_id', m.id, 'status', m.status, 'version', m.version,
                                      'sequence', m.sequence, 'starts_at', m.starts_at,
                                      'duration_minutes', m.duration_minutes,
                                      'chair_participant_id', m.chair_participant_id,
                                      'fields', kip.event_fields(p_body, ARRAY['starts_at', 'duration_minutes',
                                                                 'location', 'purpose', 'chair_participant_id',
                                                                 'invitees'])),
                   'meeting.rescheduled:' || m.id || ':' || m.sequence);
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('update', p.id, 'meeting');
  RETURN kip.meeting_reply(m, kip.meeting_warnings(m) || kip.meeting_citizen_warnings(m, p_body->'invitees'));
END
$function$;

CREATE FUNCTION kip_api.meeting_cancel(p_ctx jsonb, p_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  w record := kip.meeting_for_write(p_ctx, u, p_id);
  m kip.meetings := w.m;
BEGIN
  UPDATE kip.meetings SET status = 'cancelled', cancel_reason = p_body->>'reason',
                          cancelled_at = now(), version = version + 1, sequence = sequence + 1,
                          updated_at = now()
   WHERE id = m.id RETURNING * INTO m;
  -- The reason is free text, so the event does not carry it.
  PERFORM kip.emit('meeting.cancelled', m.plan_id, m.id,
                   jsonb_build_object('meeting_id', m.id, 'status', m.status, 'version', m.version,
                                      'sequence', m.sequence, 'cancelled_at', m.cancelled_at),
                   'meeting.cancelled:' || m.id);
  PERFORM kip.touch_plan(m.plan_id);
  PERFORM kip.audit('cancel', m.plan_id, 'meeting');
  RETURN kip.ok_json(kip.meeting_doc(m), NULL, m.version::text);
END
$function$;

-- An invitee's answer, recorded by anyone who may write the plan (the
-- invitee through their own account, or the tovholder who took the call).
CREATE FUNCTION kip_api.meeting_invitee_response(p_ctx jsonb, p_id uuid, p_participant_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  w record := kip.meeting_for_write(p_ctx, u, p_id);
  m kip.meetings := w.m;
  i kip.meeting_invitees;
BEGIN
  SELECT * INTO i FROM kip.meeting_invitees WHERE meeting_id = m.id AND participant_id = p_participant_id
     FOR UPDATE;
  IF i.id IS NULL THEN
    PERFORM kip.fail(404, NULL, NULL, 'the participant is not invited to this meeting');
  END IF;
  IF i.response IS DISTINCT FROM p_body->>'response' THEN
    UPDATE kip.meeting_invitees SET response = p_body->>'response',
                                    responded_at = CASE WHEN p_body->>'response' = 'pending' THEN NULL
                                                        ELSE now() END
     WHERE id = i.id;
    UPDATE kip.meetings SET version = version + 1, updated_at = now() WHERE id = m.id RETURNING * INTO m;
    PERFORM kip.touch_plan(m.plan_id);
    PERFORM kip.emit('meeting.invitee_responded', m.plan_id, m.id,
                     jsonb_build_object('meeting_id', m.id, 'participant_id', i.participant_id,
                                        'response', p_body->>'response',
                                        'previous_response', i.response, 'version', m.version));
  END IF;
  PERFORM kip.audit('respond', m.plan_id, 'meeting');
  RETURN kip.ok_json(kip.meeting_doc(m), NULL, m.version::text);
END
$function$;

-- Record a meeting as held, in one transaction: attendance, observations,
-- summary, shared assessment, the citizen's acceptance, the actions agreed
-- (through kip.action_insert, the rules of POST /v1/plans/{id}/actions), and
-- exactly one of next_meeting (created here) or no_further_meeting.
CREATE FUNCTION kip_api.meeting_outcome(p_ctx jsonb, p_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_m kip.meetings := kip.meeting_find(u, p_id);
  p kip.plans := kip.require_plan(u, v_m.plan_id, true);
  m kip.meetings;
  nm kip.meetings;
  v_next jsonb := p_body->'next_meeting';
  v_none jsonb := p_body->'no_further_meeting';
  v_max integer := coalesce((p_ctx->>'next_meeting_max_months')::integer, 6);
  v_item jsonb;
  v_i integer;
  v_seen uuid[] := '{}';
  v_pid uuid;
  v_attendance jsonb := '[]';
  v_observations jsonb := '[]';
  v_next_start timestamptz;
  v_warnings jsonb := '[]';
BEGIN
  SELECT * INTO m FROM kip.meetings WHERE id = p_id FOR UPDATE;
  IF p_ctx ? 'if_match' AND (p_ctx->>'if_match')::bigint <> -2
     AND (p_ctx->>'if_match')::bigint <> m.version THEN
    PERFORM kip.fail(412, 'stale_version', 'If-Match', format('the meeting is at version %s', m.version));
  END IF;
  IF m.status = 'held' OR EXISTS (SELECT 1 FROM kip.meeting_outcomes WHERE meeting_id = m.id) THEN
    PERFORM kip.fail(409, 'already_recorded', 'outcome', 'the meeting already has an outcome');
  END IF;
  IF m.status = 'cancelled' THEN
    PERFORM kip.fail(409, 'cancelled', 'status', 'the meeting is cancelled');
  END IF;
  IF m.starts_at > now() THEN
    PERFORM kip.fail(422, 'in_future', 'starts_at', format('the meeting has not started yet (%s, Copenhagen time)',
                                              kip.local_time(m.starts_at)));
  END IF;
  IF (v_next IS NULL OR v_next = 'null'::jsonb) = (v_none IS NULL OR v_none = 'null'::jsonb) THEN
    PERFORM kip.fail(422, 'exactly_one', CASE WHEN v_next IS NULL OR v_next = 'null'::jsonb THEN 'next_meeting'
                               ELSE 'no_further_meeting' END,
                     'give exactly one of next_meeting and no_further_meeting');
  END IF;
  -- Attendance: participants of the plan, each once.
  FOR v_item, v_i IN SELECT x, (n - 1)::integer
                       FROM jsonb_array_elements(p_body->'attendance') WITH ORDINALITY t(x, n) LOOP
    v_pid := (v_item->>'participant_id')::uuid;
    IF NOT EXISTS (SELECT 1 FROM kip.participants WHERE id = v_pid AND plan_id = p.id) THEN
      PERFORM kip.fail(422, 'not_a_participant', 'attendance[' || v_i || '].participant_id', 'is not a participant of the plan');
    END IF;
    IF v_pid = ANY (v_seen) THEN
      PERFORM kip.fail(422, 'duplicate', 'attendance[' || v_i || '].participant_id', 'is listed twice');
    END IF;
    v_seen := v_seen || v_pid;
    IF (v_item->>'attended')::boolean AND NOT EXISTS (
         SELECT 1 FROM kip.meeting_invitees i WHERE i.meeting_id = m.id AND i.participant_id = v_pid) THEN
      v_warnings := v_warnings || jsonb_build_array(kip.warning('attendance_not_invited',
        'attendance[' || v_i || '].participant_id', v_pid,
        format('%s attended but was not invited', (SELECT pa.name FROM kip.participants pa WHERE pa.id = v_pid))));
    END IF;
    v_attendance := v_attendance || jsonb_build_array(jsonb_build_object(
      'participant_id', v_pid, 'attended', (v_item->>'attended')::boolean,
      'mode', CASE WHEN (v_item->>'attended')::boolean
                   THEN coalesce(v_item->>'mode',
                                 (SELECT i.mode FROM kip.meeting_invitees i
                                   WHERE i.meeting_id = m.id AND i.participant_id = v_pid),
                                 (SELECT pa.default_attendance FROM kip.participants pa WHERE pa.id = v_pid))
              END));
  END LOOP;
  FOR v_item, v_i IN SELECT x, (n - 1)::integer
                       FROM jsonb_array_elements(coalesce(p_body->'observations', '[]')) WITH ORDINALITY t(x, n) LOOP
    v_pid := (v_item->>'participant_id')::uuid;
    IF NOT EXISTS (SELECT 1 FROM kip.participants WHERE id = v_pid AND plan_id = p.id) THEN
      PERFORM kip.fail(422, 'not_a_participant', 'observations[' || v_i || '].participant_id', 'is not a participant of the plan');
    END IF;
    v_observations := v_observations || jsonb_build_array(jsonb_build_object(
      'participant_id', v_pid, 'text', v_item->>'text'));
  END LOOP;
  -- The agreed actions, under the rules of POST /v1/plans/{id}/actions.
  FOR v_item, v_i IN SELECT x, (n - 1)::integer
                       FROM jsonb_array_elements(coalesce(p_body->'actions', '[]')) WITH ORDINALITY t(x, n) LOOP
    PERFORM kip.action_insert(u, p, v_item - 'agreed_in_meeting_id', m.id, 'actions[' || v_i || '].');
    v_warnings := v_warnings || kip.due_date_warnings((v_item->>'due_date')::date,
                                                      'actions[' || v_i || '].due_date');
  END LOOP;
  IF v_next IS NOT NULL AND v_next <> 'null'::jsonb THEN
    v_next_start := (v_next->>'starts_at')::timestamptz;
    IF v_next_start <= m.starts_at THEN
      PERFORM kip.fail(422, 'before_start', 'next_meeting.starts_at', 'must lie after this meeting');
    END IF;
    -- Months are counted on Copenhagen's calendar, whatever the session's
    -- time zone: 6 months after 1 March 00:30 is 1 September 00:30.
    IF v_next_start > ((m.starts_at AT TIME ZONE 'Europe/Copenhagen') + make_interval(months => v_max))
                      AT TIME ZONE 'Europe/Copenhagen' THEN
      PERFORM kip.fail(422, 'too_late', 'next_meeting.starts_at',
                       format('must lie at most %s months after this meeting (by %s)', v_max,
                              to_char((m.starts_at AT TIME ZONE 'Europe/Copenhagen') + make_interval(months => v_max),
                                      'YYYY-MM-DD')));
    END IF;
    nm := kip.meeting_insert(p_ctx, u, p, v_next, 'next_meeting.', m);
  END IF;
  INSERT INTO kip.meeting_outcomes (plan_id, meeting_id, attendance, observations, summary,
                                    shared_assessment, citizen_accepted, next_meeting_id,
                                    no_further_meeting_reason, recorded_by)
  VALUES (p.id, m.id, v_attendance, v_observations, p_body->>'summary', p_body->>'shared_assessment',
          (p_body->>'citizen_accepted')::boolean, nm.id, v_none->>'reason', u.id);
  UPDATE kip.meetings SET status = 'held', version = version + 1, updated_at = now()
   WHERE id = m.id RETURNING * INTO m;
  PERFORM kip.emit('meeting.held', p.id, m.id,
                   jsonb_build_object('meeting_id', m.id, 'status', m.status, 'version', m.version,
                                      'next_meeting_id', nm.id,
                                      'no_further_meeting', nm.id IS NULL,
                                      'citizen_accepted', (p_body->>'citizen_accepted')::boolean,
                                      'action_ids', coalesce((SELECT jsonb_agg(a.id ORDER BY a.created_at, a.id)
                                                                FROM kip.actions a
                                                               WHERE a.agreed_in_meeting_id = m.id),
                                                             '[]'::jsonb)),
                   'meeting.held:' || m.id);
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('outcome', p.id, 'meeting');
  IF nm.id IS NOT NULL THEN
    v_warnings := v_warnings || kip.meeting_warnings(nm, 'next_meeting.')
                  || kip.meeting_citizen_warnings(nm, v_next->'invitees', 'next_meeting.');
  END IF;
  RETURN kip.meeting_reply(m, v_warnings, 201, true);
END
$function$;

-- The meeting template as it is printed: purpose, citizen (never the CPR),
-- the invited participants with contact details, goals, every action still
-- open (overdue ones flagged) and what the last held meeting agreed.
CREATE FUNCTION kip_api.meeting_agenda(p_ctx jsonb, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  m kip.meetings := kip.meeting_find(u, p_id);
  p kip.plans := kip.require_plan(u, m.plan_id);
  prev kip.meetings;
  o kip.meeting_outcomes;
  v_end timestamptz := kip.meeting_ends_at(m);
BEGIN
  SELECT * INTO prev FROM kip.meetings
   WHERE plan_id = p.id AND status = 'held' AND id <> m.id AND starts_at < m.starts_at
   ORDER BY starts_at DESC, id DESC LIMIT 1;
  SELECT * INTO o FROM kip.meeting_outcomes WHERE meeting_id = prev.id;
  PERFORM kip.audit('read', p.id, 'agenda');
  RETURN kip.ok_json(json_build_object(
    'meeting_id', m.id, 'plan_id', p.id, 'status', m.status,
    'starts_at', m.starts_at, 'ends_at', v_end, 'duration_minutes', m.duration_minutes,
    'time_zone', 'Europe/Copenhagen',
    'local', json_build_object(
      'weekday', (ARRAY['mandag', 'tirsdag', 'onsdag', 'torsdag', 'fredag', 'lørdag', 'søndag'])
                 [extract(isodow FROM m.starts_at AT TIME ZONE 'Europe/Copenhagen')::integer],
      'date', kip.local_time(m.starts_at, 'YYYY-MM-DD'),
      'start', kip.local_time(m.starts_at, 'HH24:MI'), 'end', kip.local_time(v_end, 'HH24:MI')),
    'location', json_build_object('kind', m.location_kind, 'address', m.location_address,
                                   'room', m.location_room, 'video_url', m.location_video_url),
    'purpose', m.purpose,
    'citizen', json_build_object('name', p.citizen_name, 'phone', p.citizen_phone,
                                  'address', p.citizen_address,
                                  'preferred_language', p.citizen_preferred_language),
    'chair', (SELECT json_build_object('participant_id', pa.id, 'name', pa.name, 'phone', pa.phone,
                                        'email', pa.email)
                FROM kip.participants pa WHERE pa.id = m.chair_participant_id),
    'participants', coalesce((SELECT json_agg(json_build_object(
        'participant_id', pa.id, 'name', pa.name, 'kind', pa.kind, 'role', pa.role,
        'role_title', pa.role_title, 'organisation_id', pa.organisation_id,
        'organisation_name', og.name, 'phone', pa.phone, 'email', pa.email,
        'mode', i.mode, 'window_start', i.window_start, 'window_end', i.window_end,
        'window_local', CASE WHEN i.window_start IS NULL AND i.window_end IS NULL THEN NULL
                             ELSE kip.local_time(coalesce(i.window_start, m.starts_at), 'HH24:MI') || '–' ||
                                  kip.local_time(coalesce(i.window_end, v_end), 'HH24:MI') END,
        'response', i.response) ORDER BY i.position)
        FROM kip.meeting_invitees i
        JOIN kip.participants pa ON pa.id = i.participant_id
        LEFT JOIN kip.organisations og ON og.id = pa.organisation_id
       WHERE i.meeting_id = m.id), '[]'::json),
    'goals', p.goals,
    'open_actions', coalesce((SELECT json_agg(json_build_object(
        'id', a.id, 'title', a.title, 'description', a.description, 'area', a.area,
        'status', a.status, 'due_date', a.due_date, 'overdue', kip.action_overdue(a.due_date, a.status),
        'responsible_participant_id', a.responsible_participant_id, 'responsible_name', ra.name,
        'agreed_in_meeting_id', a.agreed_in_meeting_id)
        ORDER BY a.due_date NULLS LAST, a.created_at, a.id)
        FROM kip.actions a JOIN kip.participants ra ON ra.id = a.responsible_participant_id
       WHERE a.plan_id = p.id AND a.status IN ('open', 'in_progress')), '[]'::json),
    'previous_meeting', CASE WHEN prev.id IS NULL THEN NULL ELSE json_build_object(
        'meeting_id', prev.id, 'starts_at', prev.starts_at,
        'local_date', kip.local_time(prev.starts_at, 'YYYY-MM-DD'),
        'summary', o.summary, 'shared_assessment', o.shared_assessment,
        'citizen_accepted', o.citizen_accepted,
        'agreed_actions', coalesce((SELECT json_agg(json_build_object(
            'id', a.id, 'title', a.title, 'status', a.status, 'due_date', a.due_date,
            'overdue', kip.action_overdue(a.due_date, a.status),
            'responsible_participant_id', a.responsible_participant_id, 'responsible_name', ra.name)
            ORDER BY a.created_at, a.id)
            FROM kip.actions a JOIN kip.participants ra ON ra.id = a.responsible_participant_id
           WHERE a.agreed_in_meeting_id = prev.id), '[]'::json)) END));
END
$function$;

-- The caller's meetings: invited or chairing, through a participant linked
-- to the caller, in plans the caller may see (kip.plan_access).
CREATE FUNCTION kip.my_meetings(u kip.users, p_from timestamp with time zone, p_to timestamp with time zone)
 RETURNS TABLE(m kip.meetings, p kip.plans, my_participant_id uuid)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT m, p, me.id
    FROM kip.meetings m
    JOIN kip.plans p ON p.id = m.plan_id
    CROSS JOIN LATERAL (
      SELECT pa.id FROM kip.participants pa
       WHERE pa.plan_id = m.plan_id AND pa.user_id = u.id
         AND (pa.id = m.chair_participant_id
              OR EXISTS (SELECT 1 FROM kip.meeting_invitees i
                          WHERE i.meeting_id = m.id AND i.participant_id = pa.id))
       ORDER BY pa.left_at IS NULL DESC, pa.joined_at DESC LIMIT 1) me
   WHERE m.starts_at >= p_from AND m.starts_at < p_to
     AND EXISTS (SELECT 1 FROM kip.plan_access_rule(u.id, u.organisation_id, u.roles, p.id, p.owner_organisation_id))
$function$;

CREATE FUNCTION kip_api.my_meetings(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_from date := coalesce((p_query->>'from')::date, kip.today() - 30);
  v_to date := coalesce((p_query->>'to')::date, v_from + 180);
  v_items jsonb;
  v_plans uuid[];
BEGIN
  IF v_to < v_from THEN
    PERFORM kip.fail(422, 'before_start', 'to', 'must not lie before from');
  END IF;
  IF v_to - v_from > 400 THEN
    PERFORM kip.fail(422, 'out_of_range', 'to', 'the range is at most 400 days');
  END IF;
  SELECT coalesce(jsonb_agg(kip.meeting_doc(x.m)::jsonb || jsonb_build_object(
           'citizen', jsonb_build_object('name', (x.p).citizen_name, 'cpr', kip.cpr_mask((x.p).citizen_cpr)),
           'my_participant_id', x.my_participant_id)
           ORDER BY (x.m).starts_at, (x.m).id), '[]'::jsonb),
         array_agg(DISTINCT (x.p).id)
    INTO v_items, v_plans
    FROM kip.my_meetings(u, v_from::timestamp AT TIME ZONE 'Europe/Copenhagen',
                         (v_to + 1)::timestamp AT TIME ZONE 'Europe/Copenhagen') x;
  PERFORM kip.audit_plans('meeting.list_mine', v_plans, 'meeting');
  RETURN kip.ok(jsonb_build_object('items', v_items, 'next_cursor', NULL));
END
$function$;

CREATE FUNCTION kip.initials(p_name text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT coalesce(string_agg(upper(left(w, 1)) || '.', '' ORDER BY n), '')
    FROM regexp_split_to_table(btrim(p_name), '[\s-]+') WITH ORDINALITY t(w, n)
   WHERE w <> ''
$function$;
