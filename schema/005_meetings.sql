-- 005_meetings: KIP meetings (schedule, reschedule, cancel, invitee
-- responses, the outcome with the next meeting), the agenda, the caller's
-- meetings and calendar feeds.
--
-- Versions: a meeting has its own `version` (its ETag; If-Match on
-- /v1/meetings/{id} writes compares with it) and a `sequence`, the
-- iCalendar SEQUENCE, bumped only when what a calendar shows changes
-- (reschedule, cancel). Every meeting write also bumps the plan's version,
-- because the plan document embeds its meetings.

CREATE TABLE kip.meetings (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  plan_id               uuid NOT NULL REFERENCES kip.plans (id),
  version               integer NOT NULL DEFAULT 1,
  sequence              integer NOT NULL DEFAULT 0,
  status                text NOT NULL DEFAULT 'planned'
                          CHECK (status IN ('planned', 'held', 'cancelled')),
  starts_at             timestamptz NOT NULL,
  duration_minutes      integer NOT NULL CHECK (duration_minutes BETWEEN 1 AND 1440),
  location_kind         text NOT NULL CHECK (location_kind IN ('hospital', 'citizen_home',
                          'municipality', 'general_practice', 'virtual', 'other')),
  location_address      text,
  location_room         text,
  location_video_url    text,
  purpose               text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 2000),
  chair_participant_id  uuid NOT NULL REFERENCES kip.participants (id),
  previous_meeting_id   uuid REFERENCES kip.meetings (id),
  cancel_reason         text,
  cancelled_at          timestamptz,
  created_by            uuid REFERENCES kip.users (id),
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL AND cancel_reason IS NOT NULL))
);
CREATE INDEX meetings_plan ON kip.meetings (plan_id, starts_at DESC, id DESC);
CREATE INDEX meetings_planned_start ON kip.meetings (starts_at) WHERE status = 'planned';

CREATE TABLE kip.meeting_invitees (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  plan_id         uuid NOT NULL REFERENCES kip.plans (id),
  meeting_id      uuid NOT NULL REFERENCES kip.meetings (id),
  participant_id  uuid NOT NULL REFERENCES kip.participants (id),
  position        integer NOT NULL,
  mode            text NOT NULL CHECK (mode IN ('in_person', 'phone', 'video')),
  window_start    timestamptz,
  window_end      timestamptz,
  response        text NOT NULL DEFAULT 'pending'
                    CHECK (response IN ('pending', 'accepted', 'declined')),
  responded_at    timestamptz,
  UNIQUE (meeting_id, participant_id),
  CHECK (window_start IS NULL OR window_end IS NULL OR window_start < window_end)
);
CREATE INDEX meeting_invitees_participant ON kip.meeting_invitees (participant_id);

-- The outcome of a held meeting: one per meeting (the unique key makes a
-- second outcome a conflict even under a race).
CREATE TABLE kip.meeting_outcomes (
  id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  plan_id                    uuid NOT NULL REFERENCES kip.plans (id),
  meeting_id                 uuid NOT NULL CONSTRAINT meeting_outcomes_meeting_key UNIQUE
                               REFERENCES kip.meetings (id),
  attendance                 jsonb NOT NULL CHECK (jsonb_typeof(attendance) = 'array'),
  observations               jsonb NOT NULL CHECK (jsonb_typeof(observations) = 'array'),
  summary                    text NOT NULL,
  shared_assessment          text,
  citizen_accepted           boolean NOT NULL,
  next_meeting_id            uuid REFERENCES kip.meetings (id),
  no_further_meeting_reason  text,
  recorded_by                uuid REFERENCES kip.users (id),
  recorded_at                timestamptz NOT NULL DEFAULT now(),
  CHECK ((next_meeting_id IS NULL) <> (no_further_meeting_reason IS NULL))
);

ALTER TABLE kip.actions ADD CONSTRAINT actions_agreed_in_meeting_fkey
  FOREIGN KEY (agreed_in_meeting_id) REFERENCES kip.meetings (id);
CREATE INDEX actions_meeting ON kip.actions (agreed_in_meeting_id)
  WHERE agreed_in_meeting_id IS NOT NULL;

CREATE TRIGGER meetings_history AFTER INSERT OR UPDATE ON kip.meetings
  FOR EACH ROW EXECUTE FUNCTION kip.track_history('meeting');
CREATE TRIGGER meeting_invitees_history AFTER INSERT OR UPDATE ON kip.meeting_invitees
  FOR EACH ROW EXECUTE FUNCTION kip.track_history('meeting_invitee');
CREATE TRIGGER meeting_outcomes_history AFTER INSERT OR UPDATE ON kip.meeting_outcomes
  FOR EACH ROW EXECUTE FUNCTION kip.track_history('meeting_outcome');

-- Per-user settings. calendar_show_citizen_name: the calendar feed shows
-- the citizen's full name instead of initials.
CREATE TABLE kip.user_settings (
  user_id                     uuid PRIMARY KEY REFERENCES kip.users (id),
  calendar_show_citizen_name  boolean NOT NULL DEFAULT false,
  updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- Secret calendar feed URLs: only the SHA-256 of the key is stored. One
-- active feed per user; making a new one revokes the old.
CREATE TABLE kip.calendar_feeds (
  id            uuid PRIMARY KEY,
  user_id       uuid NOT NULL REFERENCES kip.users (id),
  key_hash      text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  created_at    timestamptz NOT NULL DEFAULT now(),
  revoked_at    timestamptz,
  last_used_at  timestamptz
);
CREATE UNIQUE INDEX calendar_feeds_one_active ON kip.calendar_feeds (user_id) WHERE revoked_at IS NULL;

-- ------------------------------------------------------------- documents

CREATE FUNCTION kip.meeting_ends_at(m kip.meetings) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
  SELECT m.starts_at + m.duration_minutes * interval '1 minute'
$$;

-- Derived, never stored: planned, its end has passed, no outcome.
CREATE FUNCTION kip.meeting_overdue_outcome(m kip.meetings, p_at timestamptz DEFAULT now())
RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT m.status = 'planned' AND kip.meeting_ends_at(m) < p_at
$$;

CREATE FUNCTION kip.local_time(p_at timestamptz, p_format text DEFAULT 'YYYY-MM-DD HH24:MI')
RETURNS text LANGUAGE sql STABLE AS $$
  SELECT to_char(p_at AT TIME ZONE 'Europe/Copenhagen', p_format)
$$;

CREATE FUNCTION kip.invitee_doc(i kip.meeting_invitees) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('participant_id', i.participant_id, 'mode', i.mode,
                            'window_start', i.window_start, 'window_end', i.window_end,
                            'response', i.response, 'responded_at', i.responded_at)
$$;

CREATE FUNCTION kip.outcome_doc(o kip.meeting_outcomes) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'attendance', o.attendance, 'observations', o.observations, 'summary', o.summary,
    'shared_assessment', o.shared_assessment, 'citizen_accepted', o.citizen_accepted,
    'action_ids', coalesce((SELECT jsonb_agg(a.id ORDER BY a.created_at, a.id) FROM kip.actions a
                             WHERE a.agreed_in_meeting_id = o.meeting_id), '[]'::jsonb),
    'next_meeting_id', o.next_meeting_id,
    'no_further_meeting', CASE WHEN o.no_further_meeting_reason IS NULL THEN NULL
                               ELSE jsonb_build_object('reason', o.no_further_meeting_reason) END,
    'recorded_by', o.recorded_by, 'recorded_at', o.recorded_at)
$$;

CREATE FUNCTION kip.meeting_doc(m kip.meetings) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', m.id, 'plan_id', m.plan_id, 'version', m.version, 'sequence', m.sequence,
    'status', m.status, 'starts_at', m.starts_at, 'ends_at', kip.meeting_ends_at(m),
    'duration_minutes', m.duration_minutes,
    'location', jsonb_build_object('kind', m.location_kind, 'address', m.location_address,
                                   'room', m.location_room, 'video_url', m.location_video_url),
    'purpose', m.purpose, 'chair_participant_id', m.chair_participant_id,
    'invitees', coalesce((SELECT jsonb_agg(kip.invitee_doc(i) ORDER BY i.position)
                            FROM kip.meeting_invitees i WHERE i.meeting_id = m.id), '[]'::jsonb),
    'previous_meeting_id', m.previous_meeting_id,
    'cancel_reason', m.cancel_reason, 'cancelled_at', m.cancelled_at,
    'overdue_outcome', kip.meeting_overdue_outcome(m),
    'outcome', (SELECT kip.outcome_doc(o) FROM kip.meeting_outcomes o WHERE o.meeting_id = m.id),
    'created_at', m.created_at, 'updated_at', m.updated_at)
$$;

-- The whole plan in one document, built in one statement (see
-- BENCH-NOTES): citizen, consent, participants, tovholders, meetings (newest
-- first, each with its outcome) and actions.
CREATE FUNCTION kip.plan_doc(p kip.plans) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', p.id, 'version', p.version, 'status', p.status,
    'citizen', jsonb_build_object('name', p.citizen_name, 'cpr', p.citizen_cpr,
                                  'birth_date', p.citizen_birth_date, 'phone', p.citizen_phone,
                                  'address', p.citizen_address,
                                  'preferred_language', p.citizen_preferred_language),
    'reason', p.reason,
    'owner_organisation_id', p.owner_organisation_id,
    'coordinator', p.coordinator_participant_id,
    'coordinators', kip.coordinators_doc(p.id),
    'goals', p.goals,
    'needs', p.needs,
    'consent', (SELECT kip.consent_doc(c) FROM kip.consents c
                 WHERE c.plan_id = p.id AND c.superseded_at IS NULL),
    'participants', coalesce((SELECT jsonb_agg(kip.participant_doc(pa) ORDER BY pa.joined_at, pa.id)
                                FROM kip.participants pa WHERE pa.plan_id = p.id), '[]'::jsonb),
    'meetings', coalesce((SELECT jsonb_agg(kip.meeting_doc(m) ORDER BY m.starts_at DESC, m.id DESC)
                            FROM kip.meetings m WHERE m.plan_id = p.id), '[]'::jsonb),
    'actions', coalesce((SELECT jsonb_agg(kip.action_doc(a) ORDER BY a.created_at, a.id)
                           FROM kip.actions a WHERE a.plan_id = p.id), '[]'::jsonb),
    'follow_up_date', p.follow_up_date,
    'approved_at', p.approved_at,
    'created_at', p.created_at, 'updated_at', p.updated_at, 'closed_at', p.closed_at,
    'close_reason', p.close_reason, 'close_note', p.close_note)
$$;

-- ------------------------------------------------------------- the rules

-- A meeting by id, or 404. The plan is then loaded through
-- kip.require_plan(), the one access rule, which answers 404 too.
CREATE FUNCTION kip.meeting_find(p_id uuid) RETURNS kip.meetings LANGUAGE plpgsql AS $$
DECLARE
  m kip.meetings;
BEGIN
  SELECT * INTO m FROM kip.meetings WHERE id = p_id;
  IF m.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no such meeting');
  END IF;
  RETURN m;
END
$$;

-- Load a meeting for a write: the plan must be writable (kip.require_plan
-- locks it), the meeting is locked, If-Match compares with the meeting's
-- version, and the meeting must still be planned.
CREATE FUNCTION kip.meeting_for_write(p_ctx jsonb, u kip.users, p_id uuid, OUT p kip.plans,
                                      OUT m kip.meetings)
LANGUAGE plpgsql AS $$
BEGIN
  m := kip.meeting_find(p_id);
  p := kip.require_plan(u, m.plan_id, true);
  SELECT * INTO m FROM kip.meetings WHERE id = p_id FOR UPDATE;
  IF p_ctx ? 'if_match' AND (p_ctx->>'if_match')::bigint <> -2
     AND (p_ctx->>'if_match')::bigint <> m.version THEN
    PERFORM kip.fail(412, 'If-Match', format('the meeting is at version %s', m.version));
  END IF;
  IF m.status <> 'planned' THEN
    PERFORM kip.fail(409, 'status', format('the meeting is %s', m.status));
  END IF;
END
$$;

-- duration_minutes from a body: default 90 (or the configured minimum when
-- that is longer); shorter than ctx.meeting_min_minutes is 422.
CREATE FUNCTION kip.meeting_duration(p_ctx jsonb, p_value jsonb, p_default integer, p_field text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_min integer := coalesce((p_ctx->>'meeting_min_minutes')::integer, 90);
  v numeric;
BEGIN
  IF p_value IS NULL OR p_value = 'null'::jsonb THEN
    RETURN greatest(coalesce(p_default, 90), v_min);
  END IF;
  v := (p_value #>> '{}')::numeric;
  IF v < v_min THEN
    PERFORM kip.fail(422, p_field, format('must be at least %s minutes (a KIP meeting lasts at least %s minutes)',
                                          v_min, v_min));
  END IF;
  IF v > 720 THEN
    PERFORM kip.fail(422, p_field, 'must be at most 720 minutes');
  END IF;
  RETURN v::integer;
END
$$;

CREATE FUNCTION kip.meeting_check_location(p_kind text, p_video_url text, p_field text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF p_kind = 'virtual' AND p_video_url IS NULL THEN
    PERFORM kip.fail(422, p_field || '.video_url', 'is required for a virtual meeting');
  END IF;
END
$$;

CREATE FUNCTION kip.meeting_check_chair(p_plan_id uuid, p_chair uuid, p_field text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM kip.participants WHERE id = p_chair AND plan_id = p_plan_id
                    AND left_at IS NULL AND kind = 'professional') THEN
    PERFORM kip.fail(422, p_field, 'must be an active professional participant of the plan');
  END IF;
END
$$;

-- Replace a meeting's invitees with p_list ([{participant_id, mode?,
-- window_start?, window_end?}]). Responses of those invited before are
-- kept. The chair is always invited (appended when missing). Errors name
-- p_prefix || 'invitees[i].field'.
CREATE FUNCTION kip.meeting_set_invitees(m kip.meetings, p_list jsonb, p_prefix text) RETURNS void
LANGUAGE plpgsql AS $$
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
      PERFORM kip.fail(422, v_f || '.participant_id', 'is not a participant of the plan');
    END IF;
    IF pa.left_at IS NOT NULL THEN
      PERFORM kip.fail(422, v_f || '.participant_id', 'has left the plan; only active participants can be invited');
    END IF;
    IF v_pid = ANY (v_seen) THEN
      PERFORM kip.fail(422, v_f || '.participant_id', 'is invited twice');
    END IF;
    v_seen := v_seen || v_pid;
    v_ws := (v_item->>'window_start')::timestamptz;
    v_we := (v_item->>'window_end')::timestamptz;
    IF v_ws IS NOT NULL AND (v_ws < m.starts_at OR v_ws >= v_end) THEN
      PERFORM kip.fail(422, v_f || '.window_start',
                       format('must lie inside the meeting (%s to %s, Copenhagen time)',
                              kip.local_time(m.starts_at), kip.local_time(v_end, 'HH24:MI')));
    END IF;
    IF v_we IS NOT NULL AND (v_we <= m.starts_at OR v_we > v_end) THEN
      PERFORM kip.fail(422, v_f || '.window_end',
                       format('must lie inside the meeting (%s to %s, Copenhagen time)',
                              kip.local_time(m.starts_at), kip.local_time(v_end, 'HH24:MI')));
    END IF;
    IF v_ws IS NOT NULL AND v_we IS NOT NULL AND v_we <= v_ws THEN
      PERFORM kip.fail(422, v_f || '.window_end', 'must lie after window_start');
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
$$;

-- The current invitees as an invitee list, windows moved by p_shift and
-- dropped when they no longer fit p_starts_at + p_duration.
CREATE FUNCTION kip.meeting_invitee_list(p_meeting_id uuid, p_shift interval, p_starts_at timestamptz,
                                         p_duration integer, p_active_only boolean)
RETURNS jsonb LANGUAGE sql STABLE AS $$
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
   WHERE i.meeting_id = p_meeting_id AND (NOT p_active_only OR pa.left_at IS NULL)
$$;

-- Warnings for a written meeting: it starts in the past (allowed: meetings
-- are often recorded afterwards), or an invitee who is a user is invited to
-- another planned meeting at an overlapping time (windows considered). The
-- other meeting is not named: it may lie in a plan the caller cannot see.
CREATE FUNCTION kip.meeting_warnings(m kip.meetings, p_prefix text DEFAULT '') RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(w ORDER BY ord), '[]'::jsonb) FROM (
    SELECT -1 AS ord, jsonb_build_object(
             'code', 'starts_in_past', 'field', p_prefix || 'starts_at', 'participant_id', NULL,
             'message', format('the meeting starts in the past (%s, Copenhagen time); it is recorded as given',
                               kip.local_time(m.starts_at))) AS w
     WHERE m.status = 'planned' AND m.starts_at < now()
    UNION ALL
    SELECT i.position, jsonb_build_object(
             'code', 'overlap', 'field', p_prefix || 'invitees[' || i.position || ']',
             'participant_id', i.participant_id,
             'message', format('%s is invited to another meeting at an overlapping time (%s to %s, Copenhagen time)',
                               pa.name, kip.local_time(o.s), kip.local_time(o.e, 'HH24:MI')))
      FROM kip.meeting_invitees i
      JOIN kip.participants pa ON pa.id = i.participant_id
      CROSS JOIN LATERAL (
        SELECT coalesce(i2.window_start, m2.starts_at) AS s,
               coalesce(i2.window_end, kip.meeting_ends_at(m2)) AS e
          FROM kip.meeting_invitees i2
          JOIN kip.participants pa2 ON pa2.id = i2.participant_id
          JOIN kip.meetings m2 ON m2.id = i2.meeting_id
         WHERE pa2.user_id = pa.user_id AND m2.id <> m.id AND m2.status = 'planned'
           AND tstzrange(coalesce(i2.window_start, m2.starts_at),
                         coalesce(i2.window_end, kip.meeting_ends_at(m2)))
               && tstzrange(coalesce(i.window_start, m.starts_at),
                            coalesce(i.window_end, kip.meeting_ends_at(m)))
         ORDER BY 1 LIMIT 1) o
     WHERE i.meeting_id = m.id AND m.status = 'planned' AND pa.user_id IS NOT NULL) x
$$;

-- Create a planned meeting from a body {starts_at, duration_minutes?,
-- location?, purpose?, chair_participant_id?, invitees?}. p_base, when
-- given, is the meeting this one follows: location, duration, purpose,
-- chair and invitees default to its own. Without invitees and without a
-- base, every active participant is invited in their default mode.
CREATE FUNCTION kip.meeting_insert(p_ctx jsonb, u kip.users, p kip.plans, b jsonb, p_prefix text,
                                   p_base kip.meetings DEFAULT NULL)
RETURNS kip.meetings LANGUAGE plpgsql AS $$
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
      PERFORM kip.fail(422, p_prefix || 'location', 'is required');
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
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  VALUES ('meeting.scheduled', p.id, m.id, 'meeting.scheduled:' || m.id,
          jsonb_build_object('meeting_id', m.id, 'starts_at', m.starts_at,
                             'duration_minutes', m.duration_minutes));
  RETURN m;
END
$$;

CREATE FUNCTION kip.meeting_reply(m kip.meetings, p_warnings jsonb, p_status integer DEFAULT NULL,
                                  p_location boolean DEFAULT false)
RETURNS kip.reply LANGUAGE sql STABLE AS $$
  SELECT kip.ok(kip.meeting_doc(m) || jsonb_build_object('warnings', p_warnings), p_status,
                m.version::text, CASE WHEN p_location THEN '/v1/meetings/' || m.id END)
$$;

-- ------------------------------------------------------------- endpoints

CREATE FUNCTION kip_api.meeting_create(p_ctx jsonb, p_plan_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  m kip.meetings;
BEGIN
  PERFORM kip.check_version(p_ctx, p.version);
  m := kip.meeting_insert(p_ctx, u, p, p_body, '');
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('create', p.id, 'meeting');
  RETURN kip.meeting_reply(m, kip.meeting_warnings(m), 201, true);
END
$$;

CREATE FUNCTION kip_api.meeting_list(p_ctx jsonb, p_plan_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'meetings');
  RETURN kip.ok(jsonb_build_object(
    'items', coalesce((SELECT jsonb_agg(kip.meeting_doc(m) ORDER BY m.starts_at DESC, m.id DESC)
                         FROM kip.meetings m WHERE m.plan_id = p.id), '[]'::jsonb),
    'next_cursor', NULL));
END
$$;

CREATE FUNCTION kip_api.meeting_get(p_ctx jsonb, p_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  m kip.meetings := kip.meeting_find(p_id);
  p kip.plans := kip.require_plan(u, m.plan_id);
BEGIN
  PERFORM kip.audit('read', p.id, 'meeting');
  RETURN kip.ok(kip.meeting_doc(m), NULL, m.version::text);
END
$$;

-- Reschedule or change a planned meeting. Without `invitees`, attendance
-- windows move with the meeting. A new time resets every response to
-- pending. The calendar sequence is bumped.
CREATE FUNCTION kip_api.meeting_patch(p_ctx jsonb, p_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
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
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  VALUES ('meeting.rescheduled', p.id, m.id, 'meeting.rescheduled:' || m.id || ':' || m.sequence,
          jsonb_build_object('meeting_id', m.id, 'starts_at', m.starts_at,
                             'duration_minutes', m.duration_minutes, 'sequence', m.sequence));
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('update', p.id, 'meeting');
  RETURN kip.meeting_reply(m, kip.meeting_warnings(m));
END
$$;

CREATE FUNCTION kip_api.meeting_cancel(p_ctx jsonb, p_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  w record := kip.meeting_for_write(p_ctx, u, p_id);
  m kip.meetings := w.m;
BEGIN
  UPDATE kip.meetings SET status = 'cancelled', cancel_reason = p_body->>'reason',
                          cancelled_at = now(), version = version + 1, sequence = sequence + 1,
                          updated_at = now()
   WHERE id = m.id RETURNING * INTO m;
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  VALUES ('meeting.cancelled', m.plan_id, m.id, 'meeting.cancelled:' || m.id,
          jsonb_build_object('meeting_id', m.id, 'reason', m.cancel_reason));
  PERFORM kip.touch_plan(m.plan_id);
  PERFORM kip.audit('cancel', m.plan_id, 'meeting');
  RETURN kip.ok(kip.meeting_doc(m), NULL, m.version::text);
END
$$;

-- An invitee's answer, recorded by anyone who may write the plan (the
-- invitee through their own account, or the tovholder who took the call).
CREATE FUNCTION kip_api.meeting_invitee_response(p_ctx jsonb, p_id uuid, p_participant_id uuid,
                                                 p_body jsonb)
RETURNS kip.reply LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  w record := kip.meeting_for_write(p_ctx, u, p_id);
  m kip.meetings := w.m;
  i kip.meeting_invitees;
BEGIN
  SELECT * INTO i FROM kip.meeting_invitees WHERE meeting_id = m.id AND participant_id = p_participant_id
     FOR UPDATE;
  IF i.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'the participant is not invited to this meeting');
  END IF;
  IF i.response IS DISTINCT FROM p_body->>'response' THEN
    UPDATE kip.meeting_invitees SET response = p_body->>'response',
                                    responded_at = CASE WHEN p_body->>'response' = 'pending' THEN NULL
                                                        ELSE now() END
     WHERE id = i.id;
    UPDATE kip.meetings SET version = version + 1, updated_at = now() WHERE id = m.id RETURNING * INTO m;
    PERFORM kip.touch_plan(m.plan_id);
  END IF;
  PERFORM kip.audit('respond', m.plan_id, 'meeting');
  RETURN kip.ok(kip.meeting_doc(m), NULL, m.version::text);
END
$$;

-- Record a meeting as held, in one transaction: attendance, observations,
-- summary, shared assessment, the citizen's acceptance, the actions agreed
-- (through kip.action_insert, the rules of POST /v1/plans/{id}/actions), and
-- exactly one of next_meeting (created here) or no_further_meeting.
CREATE FUNCTION kip_api.meeting_outcome(p_ctx jsonb, p_id uuid, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_m kip.meetings := kip.meeting_find(p_id);
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
BEGIN
  SELECT * INTO m FROM kip.meetings WHERE id = p_id FOR UPDATE;
  IF p_ctx ? 'if_match' AND (p_ctx->>'if_match')::bigint <> -2
     AND (p_ctx->>'if_match')::bigint <> m.version THEN
    PERFORM kip.fail(412, 'If-Match', format('the meeting is at version %s', m.version));
  END IF;
  IF m.status = 'held' OR EXISTS (SELECT 1 FROM kip.meeting_outcomes WHERE meeting_id = m.id) THEN
    PERFORM kip.fail(409, 'outcome', 'the meeting already has an outcome');
  END IF;
  IF m.status = 'cancelled' THEN
    PERFORM kip.fail(409, 'status', 'the meeting is cancelled');
  END IF;
  IF m.starts_at > now() THEN
    PERFORM kip.fail(422, 'starts_at', format('the meeting has not started yet (%s, Copenhagen time)',
                                              kip.local_time(m.starts_at)));
  END IF;
  IF (v_next IS NULL OR v_next = 'null'::jsonb) = (v_none IS NULL OR v_none = 'null'::jsonb) THEN
    PERFORM kip.fail(422, CASE WHEN v_next IS NULL OR v_next = 'null'::jsonb THEN 'next_meeting'
                               ELSE 'no_further_meeting' END,
                     'give exactly one of next_meeting and no_further_meeting');
  END IF;
  -- Attendance: participants of the plan, each once.
  FOR v_item, v_i IN SELECT x, (n - 1)::integer
                       FROM jsonb_array_elements(p_body->'attendance') WITH ORDINALITY t(x, n) LOOP
    v_pid := (v_item->>'participant_id')::uuid;
    IF NOT EXISTS (SELECT 1 FROM kip.participants WHERE id = v_pid AND plan_id = p.id) THEN
      PERFORM kip.fail(422, 'attendance[' || v_i || '].participant_id', 'is not a participant of the plan');
    END IF;
    IF v_pid = ANY (v_seen) THEN
      PERFORM kip.fail(422, 'attendance[' || v_i || '].participant_id', 'is listed twice');
    END IF;
    v_seen := v_seen || v_pid;
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
      PERFORM kip.fail(422, 'observations[' || v_i || '].participant_id', 'is not a participant of the plan');
    END IF;
    v_observations := v_observations || jsonb_build_array(jsonb_build_object(
      'participant_id', v_pid, 'text', v_item->>'text'));
  END LOOP;
  -- The agreed actions, under the rules of POST /v1/plans/{id}/actions.
  FOR v_item, v_i IN SELECT x, (n - 1)::integer
                       FROM jsonb_array_elements(coalesce(p_body->'actions', '[]')) WITH ORDINALITY t(x, n) LOOP
    PERFORM kip.action_insert(u, p, v_item - 'agreed_in_meeting_id', m.id, 'actions[' || v_i || '].');
  END LOOP;
  IF v_next IS NOT NULL AND v_next <> 'null'::jsonb THEN
    v_next_start := (v_next->>'starts_at')::timestamptz;
    IF v_next_start <= m.starts_at THEN
      PERFORM kip.fail(422, 'next_meeting.starts_at', 'must lie after this meeting');
    END IF;
    IF v_next_start > m.starts_at + make_interval(months => v_max) THEN
      PERFORM kip.fail(422, 'next_meeting.starts_at',
                       format('must lie at most %s months after this meeting (by %s)', v_max,
                              kip.local_time(m.starts_at + make_interval(months => v_max), 'YYYY-MM-DD')));
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
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  VALUES ('meeting.held', p.id, m.id, 'meeting.held:' || m.id,
          jsonb_build_object('meeting_id', m.id, 'next_meeting_id', nm.id));
  PERFORM kip.touch_plan(p.id);
  PERFORM kip.audit('outcome', p.id, 'meeting');
  RETURN kip.meeting_reply(m, CASE WHEN nm.id IS NULL THEN '[]'::jsonb
                                   ELSE kip.meeting_warnings(nm, 'next_meeting.') END,
                           201, true);
END
$$;

-- The meeting template as it is printed: purpose, citizen (never the CPR),
-- the invited participants with contact details, goals, every action still
-- open (overdue ones flagged) and what the last held meeting agreed.
CREATE FUNCTION kip_api.meeting_agenda(p_ctx jsonb, p_id uuid) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  m kip.meetings := kip.meeting_find(p_id);
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
  RETURN kip.ok(jsonb_build_object(
    'meeting_id', m.id, 'plan_id', p.id, 'status', m.status,
    'starts_at', m.starts_at, 'ends_at', v_end, 'duration_minutes', m.duration_minutes,
    'time_zone', 'Europe/Copenhagen',
    'local', jsonb_build_object(
      'weekday', (ARRAY['mandag', 'tirsdag', 'onsdag', 'torsdag', 'fredag', 'lørdag', 'søndag'])
                 [extract(isodow FROM m.starts_at AT TIME ZONE 'Europe/Copenhagen')::integer],
      'date', kip.local_time(m.starts_at, 'YYYY-MM-DD'),
      'start', kip.local_time(m.starts_at, 'HH24:MI'), 'end', kip.local_time(v_end, 'HH24:MI')),
    'location', jsonb_build_object('kind', m.location_kind, 'address', m.location_address,
                                   'room', m.location_room, 'video_url', m.location_video_url),
    'purpose', m.purpose,
    'citizen', jsonb_build_object('name', p.citizen_name, 'phone', p.citizen_phone,
                                  'address', p.citizen_address,
                                  'preferred_language', p.citizen_preferred_language),
    'chair', (SELECT jsonb_build_object('participant_id', pa.id, 'name', pa.name, 'phone', pa.phone,
                                        'email', pa.email)
                FROM kip.participants pa WHERE pa.id = m.chair_participant_id),
    'participants', coalesce((SELECT jsonb_agg(jsonb_build_object(
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
       WHERE i.meeting_id = m.id), '[]'::jsonb),
    'goals', p.goals,
    'open_actions', coalesce((SELECT jsonb_agg(jsonb_build_object(
        'id', a.id, 'title', a.title, 'description', a.description, 'area', a.area,
        'status', a.status, 'due_date', a.due_date, 'overdue', kip.action_overdue(a.due_date, a.status),
        'responsible_participant_id', a.responsible_participant_id, 'responsible_name', ra.name,
        'agreed_in_meeting_id', a.agreed_in_meeting_id)
        ORDER BY a.due_date NULLS LAST, a.created_at, a.id)
        FROM kip.actions a JOIN kip.participants ra ON ra.id = a.responsible_participant_id
       WHERE a.plan_id = p.id AND a.status IN ('open', 'in_progress')), '[]'::jsonb),
    'previous_meeting', CASE WHEN prev.id IS NULL THEN NULL ELSE jsonb_build_object(
        'meeting_id', prev.id, 'starts_at', prev.starts_at,
        'local_date', kip.local_time(prev.starts_at, 'YYYY-MM-DD'),
        'summary', o.summary, 'shared_assessment', o.shared_assessment,
        'citizen_accepted', o.citizen_accepted,
        'agreed_actions', coalesce((SELECT jsonb_agg(jsonb_build_object(
            'id', a.id, 'title', a.title, 'status', a.status, 'due_date', a.due_date,
            'overdue', kip.action_overdue(a.due_date, a.status),
            'responsible_participant_id', a.responsible_participant_id, 'responsible_name', ra.name)
            ORDER BY a.created_at, a.id)
            FROM kip.actions a JOIN kip.participants ra ON ra.id = a.responsible_participant_id
           WHERE a.agreed_in_meeting_id = prev.id), '[]'::jsonb)) END));
END
$$;

-- --------------------------------------------------------- my meetings

-- The caller's meetings: invited or chairing, through a participant linked
-- to the caller, in plans the caller may see (kip.plan_access).
CREATE FUNCTION kip.my_meetings(u kip.users, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (m kip.meetings, p kip.plans, my_participant_id uuid)
LANGUAGE sql STABLE AS $$
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
     AND kip.plan_access(u.id, u.organisation_id, u.roles, p.id, p.owner_organisation_id)
$$;

CREATE FUNCTION kip_api.my_meetings(p_ctx jsonb, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_from date := coalesce((p_query->>'from')::date, kip.today() - 30);
  v_to date := coalesce((p_query->>'to')::date, v_from + 180);
  v_items jsonb;
  v_plans uuid[];
BEGIN
  IF v_to < v_from THEN
    PERFORM kip.fail(422, 'to', 'must not lie before from');
  END IF;
  IF v_to - v_from > 400 THEN
    PERFORM kip.fail(422, 'to', 'the range is at most 400 days');
  END IF;
  SELECT coalesce(jsonb_agg(kip.meeting_doc(x.m) || jsonb_build_object(
           'citizen', jsonb_build_object('name', (x.p).citizen_name, 'cpr', kip.cpr_mask((x.p).citizen_cpr)),
           'my_participant_id', x.my_participant_id)
           ORDER BY (x.m).starts_at, (x.m).id), '[]'::jsonb),
         array_agg(DISTINCT (x.p).id)
    INTO v_items, v_plans
    FROM kip.my_meetings(u, v_from::timestamp AT TIME ZONE 'Europe/Copenhagen',
                         (v_to + 1)::timestamp AT TIME ZONE 'Europe/Copenhagen') x;
  INSERT INTO kip.audit (user_id, organisation_id, action, plan_id, resource, request_id, remote_addr)
  SELECT u.id, u.organisation_id, 'list', x, 'meeting', nullif(current_setting('kip.request_id', true), ''),
         nullif(current_setting('kip.remote_addr', true), '')
    FROM unnest(v_plans) AS x;
  RETURN kip.ok(jsonb_build_object('items', v_items, 'next_cursor', NULL));
END
$$;

-- ------------------------------------------------------------ calendars

CREATE FUNCTION kip.initials(p_name text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(string_agg(upper(left(w, 1)) || '.', '' ORDER BY n), '')
    FROM regexp_split_to_table(btrim(p_name), '[\s-]+') WITH ORDINALITY t(w, n)
   WHERE w <> ''
$$;

-- The events of a user's calendar feed, for kipd to render as iCalendar:
-- meetings from 90 days back, with the caller's own attendance window. The
-- citizen appears by initials unless the user chose the full name; the CPR
-- never appears.
CREATE FUNCTION kip.calendar_doc(u kip.users) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_full boolean := coalesce((SELECT s.calendar_show_citizen_name FROM kip.user_settings s
                               WHERE s.user_id = u.id), false);
  v_events jsonb;
  v_plans uuid[];
BEGIN
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'uid', (x.m).id::text || '@kipd',
           'sequence', (x.m).sequence,
           'status', (x.m).status,
           'start', extract(epoch FROM coalesce(i.window_start, (x.m).starts_at))::bigint,
           'end', extract(epoch FROM coalesce(i.window_end, kip.meeting_ends_at(x.m)))::bigint,
           'meeting_start', extract(epoch FROM (x.m).starts_at)::bigint,
           'meeting_end', extract(epoch FROM kip.meeting_ends_at(x.m))::bigint,
           'has_window', i.window_start IS NOT NULL OR i.window_end IS NOT NULL,
           'stamp', extract(epoch FROM (x.m).updated_at)::bigint,
           'citizen', CASE WHEN v_full THEN (x.p).citizen_name ELSE kip.initials((x.p).citizen_name) END,
           'purpose', (x.m).purpose,
           'location_kind', (x.m).location_kind, 'address', (x.m).location_address,
           'room', (x.m).location_room, 'video_url', (x.m).location_video_url,
           'mode', i.mode,
           'chair', ch.name,
           'cancel_reason', (x.m).cancel_reason)
           ORDER BY (x.m).starts_at, (x.m).id), '[]'::jsonb),
         array_agg(DISTINCT (x.p).id)
    INTO v_events, v_plans
    FROM kip.my_meetings(u, now() - interval '90 days', 'infinity') x
    LEFT JOIN kip.meeting_invitees i ON i.meeting_id = (x.m).id AND i.participant_id = x.my_participant_id
    LEFT JOIN kip.participants ch ON ch.id = (x.m).chair_participant_id;
  INSERT INTO kip.audit (user_id, organisation_id, action, plan_id, resource, request_id, remote_addr)
  SELECT u.id, u.organisation_id, 'list', x, 'calendar', nullif(current_setting('kip.request_id', true), ''),
         nullif(current_setting('kip.remote_addr', true), '')
    FROM unnest(v_plans) AS x;
  RETURN jsonb_build_object('name', 'KIP-møder', 'events', v_events);
END
$$;

CREATE FUNCTION kip_api.my_calendar(p_ctx jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  RETURN kip.ok(kip.calendar_doc(u));
END
$$;

-- The secret feed URL: no bearer token. The key's SHA-256 names the feed;
-- an unknown, revoked or mismatched key, or an inactive user, is 404.
CREATE FUNCTION kip_api.calendar_feed(p_ctx jsonb, p_feed_id uuid, p_key_hash text) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users;
  f kip.calendar_feeds;
BEGIN
  PERFORM set_config('kip.request_id', coalesce(p_ctx->>'request_id', ''), true),
          set_config('kip.remote_addr', coalesce(p_ctx->>'remote_addr', ''), true),
          set_config('kip.user_id', '', true),
          set_config('kip.organisation_id', '', true);
  SELECT * INTO f FROM kip.calendar_feeds
   WHERE id = p_feed_id AND key_hash = p_key_hash AND revoked_at IS NULL;
  SELECT * INTO u FROM kip.users WHERE id = f.user_id AND active;
  IF u.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no such calendar feed');
  END IF;
  PERFORM set_config('kip.user_id', u.id::text, true),
          set_config('kip.organisation_id', u.organisation_id::text, true);
  IF f.last_used_at IS NULL OR f.last_used_at < now() - interval '1 minute' THEN
    UPDATE kip.calendar_feeds SET last_used_at = now() WHERE id = f.id;
  END IF;
  RETURN kip.ok(kip.calendar_doc(u));
END
$$;

CREATE FUNCTION kip_api.calendar_feed_create(p_ctx jsonb, p_feed_id uuid, p_key_hash text)
RETURNS kip.reply LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  f kip.calendar_feeds;
BEGIN
  UPDATE kip.calendar_feeds SET revoked_at = now() WHERE user_id = u.id AND revoked_at IS NULL;
  INSERT INTO kip.calendar_feeds (id, user_id, key_hash) VALUES (p_feed_id, u.id, p_key_hash)
  RETURNING * INTO f;
  PERFORM kip.audit('create', NULL, 'calendar_feed');
  RETURN kip.ok(jsonb_build_object('id', f.id, 'created_at', f.created_at), 201, NULL,
                '/v1/calendar-feeds/' || f.id);
END
$$;

CREATE FUNCTION kip_api.calendar_feed_delete(p_ctx jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  UPDATE kip.calendar_feeds SET revoked_at = now() WHERE user_id = u.id AND revoked_at IS NULL;
  PERFORM kip.audit('revoke', NULL, 'calendar_feed');
  RETURN kip.ok(NULL, 204);
END
$$;

CREATE FUNCTION kip.settings_doc(p_user_id uuid) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('calendar_show_citizen_name',
                            coalesce((SELECT s.calendar_show_citizen_name FROM kip.user_settings s
                                       WHERE s.user_id = p_user_id), false))
$$;

CREATE FUNCTION kip_api.my_settings(p_ctx jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  RETURN kip.ok(kip.settings_doc(u.id));
END
$$;

CREATE FUNCTION kip_api.my_settings_patch(p_ctx jsonb, p_body jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  INSERT INTO kip.user_settings (user_id, calendar_show_citizen_name)
  VALUES (u.id, coalesce((p_body->>'calendar_show_citizen_name')::boolean, false))
  ON CONFLICT (user_id) DO UPDATE
    SET calendar_show_citizen_name = coalesce((p_body->>'calendar_show_citizen_name')::boolean,
                                              kip.user_settings.calendar_show_citizen_name),
        updated_at = now();
  PERFORM kip.audit('update', NULL, 'settings');
  RETURN kip.ok(kip.settings_doc(u.id));
END
$$;

-- -------------------------------------------------------- the daily pass

-- The daily pass: mark what became due, as events, each exactly once
-- (dedupe_key), safe with several kipd instances (advisory lock):
-- action.overdue, consent.review_due, plan.follow_up_due and
-- meeting.outcome_overdue (a planned meeting whose end has passed without an
-- outcome, once per meeting and calendar sequence, so a rescheduled meeting
-- that is missed again counts again). Returns the new events per kind.
CREATE FUNCTION kip.daily_pass(p_at timestamptz DEFAULT now()) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_today date := kip.today(p_at);
  v_actions integer;
  v_consents integer;
  v_plans integer;
  v_meetings integer;
BEGIN
  PERFORM pg_advisory_xact_lock(7305872416);
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  SELECT 'action.overdue', a.plan_id, a.id, 'action.overdue:' || a.id || ':' || a.due_date,
         jsonb_build_object('action_id', a.id, 'due_date', a.due_date,
                            'responsible_participant_id', a.responsible_participant_id)
    FROM kip.actions a JOIN kip.plans p ON p.id = a.plan_id
   WHERE a.status IN ('open', 'in_progress') AND a.due_date < v_today AND p.status <> 'closed'
  ON CONFLICT (dedupe_key) DO NOTHING;
  GET DIAGNOSTICS v_actions = ROW_COUNT;
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  SELECT 'consent.review_due', c.plan_id, c.id, 'consent.review_due:' || c.id || ':' || c.review_by,
         jsonb_build_object('consent_id', c.id, 'review_by', c.review_by)
    FROM kip.consents c JOIN kip.plans p ON p.id = c.plan_id
   WHERE c.superseded_at IS NULL AND c.withdrawn_at IS NULL AND c.review_by < v_today
     AND p.status <> 'closed'
  ON CONFLICT (dedupe_key) DO NOTHING;
  GET DIAGNOSTICS v_consents = ROW_COUNT;
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  SELECT 'plan.follow_up_due', p.id, p.id, 'plan.follow_up_due:' || p.id || ':' || p.follow_up_date,
         jsonb_build_object('follow_up_date', p.follow_up_date)
    FROM kip.plans p
   WHERE p.follow_up_date < v_today AND p.status <> 'closed'
  ON CONFLICT (dedupe_key) DO NOTHING;
  GET DIAGNOSTICS v_plans = ROW_COUNT;
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  SELECT 'meeting.outcome_overdue', m.plan_id, m.id,
         'meeting.outcome_overdue:' || m.id || ':' || m.sequence,
         jsonb_build_object('meeting_id', m.id, 'starts_at', m.starts_at,
                            'ends_at', kip.meeting_ends_at(m),
                            'chair_participant_id', m.chair_participant_id)
    FROM kip.meetings m JOIN kip.plans p ON p.id = m.plan_id
   WHERE kip.meeting_overdue_outcome(m, p_at) AND p.status <> 'closed'
  ON CONFLICT (dedupe_key) DO NOTHING;
  GET DIAGNOSTICS v_meetings = ROW_COUNT;
  RETURN jsonb_build_object('as_of', v_today, 'action.overdue', v_actions,
                            'consent.review_due', v_consents, 'plan.follow_up_due', v_plans,
                            'meeting.outcome_overdue', v_meetings);
END
$$;
