-- 004_actions: agreed actions (who does what by when), tovholder history
-- documents and the events table. The plan document and the daily pass,
-- which also cover meetings, are defined once in 005_meetings.sql.

CREATE TABLE kip.actions (
  id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  plan_id                     uuid NOT NULL REFERENCES kip.plans (id),
  version                     integer NOT NULL DEFAULT 1,
  title                       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  description                 text,
  area                        text NOT NULL CHECK (area IN ('substances', 'somatic_health',
                                'mental_health', 'housing', 'finances', 'employment', 'crime',
                                'family_children', 'network', 'other')),
  responsible_participant_id  uuid NOT NULL REFERENCES kip.participants (id),
  due_date                    date,
  status                      text NOT NULL DEFAULT 'open'
                                CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
  agreed_in_meeting_id        uuid,          -- the meetings migration adds the foreign key
  created_by                  uuid REFERENCES kip.users (id),
  created_at                  timestamptz NOT NULL DEFAULT now(),
  updated_at                  timestamptz NOT NULL DEFAULT now(),
  completed_at                timestamptz,
  CHECK ((status = 'done') = (completed_at IS NOT NULL))
);
CREATE INDEX actions_plan ON kip.actions (plan_id, created_at, id);
CREATE INDEX actions_responsible_open ON kip.actions (responsible_participant_id, due_date)
  WHERE status IN ('open', 'in_progress');
CREATE INDEX actions_due_open ON kip.actions (due_date) WHERE status IN ('open', 'in_progress');

CREATE TRIGGER actions_history AFTER INSERT OR UPDATE ON kip.actions
  FOR EACH ROW EXECUTE FUNCTION kip.track_history('action');

-- Events for integrations. The webhook and event-stream issue delivers
-- them; until then they are recorded here. dedupe_key makes each event once.
CREATE TABLE kip.events (
  id           bigserial PRIMARY KEY,
  at           timestamptz NOT NULL DEFAULT now(),
  kind         text NOT NULL,
  plan_id      uuid,
  resource_id  uuid,
  dedupe_key   text NOT NULL UNIQUE,
  payload      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_plan ON kip.events (plan_id, id);

-- "Today" and "overdue" are counted in Europe/Copenhagen, never in UTC.
CREATE FUNCTION kip.today(p_at timestamptz DEFAULT now()) RETURNS date
LANGUAGE sql STABLE AS $$
  SELECT (p_at AT TIME ZONE 'Europe/Copenhagen')::date
$$;

-- Derived, never stored: the due date has passed in Copenhagen and the
-- action is neither done nor cancelled.
CREATE FUNCTION kip.action_overdue(p_due date, p_status text, p_at timestamptz DEFAULT now())
RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT p_due IS NOT NULL AND p_status IN ('open', 'in_progress') AND p_due < kip.today(p_at)
$$;

CREATE FUNCTION kip.action_doc(a kip.actions) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', a.id, 'plan_id', a.plan_id, 'version', a.version, 'title', a.title,
    'description', a.description, 'area', a.area,
    'responsible_participant_id', a.responsible_participant_id, 'due_date', a.due_date,
    'status', a.status, 'agreed_in_meeting_id', a.agreed_in_meeting_id,
    'created_at', a.created_at, 'updated_at', a.updated_at, 'completed_at', a.completed_at,
    'overdue', kip.action_overdue(a.due_date, a.status))
$$;

-- The tovholders a plan has had, oldest first.
CREATE FUNCTION kip.coordinators_doc(p_plan_id uuid) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object('participant_id', h.participant_id,
                                               'started_at', h.started_at, 'ended_at', h.ended_at)
                            ORDER BY h.id), '[]'::jsonb)
    FROM kip.coordinator_history h WHERE h.plan_id = p_plan_id
$$;

-- Create one action in a plan the caller may write. Used by
-- POST /v1/plans/{id}/actions and by meeting outcomes. p_field_prefix names
-- fields in errors ("actions[2]." for an outcome's third action).
CREATE FUNCTION kip.action_insert(p_user kip.users, p_plan kip.plans, p_body jsonb,
                                  p_meeting_id uuid DEFAULT NULL, p_field_prefix text DEFAULT '')
RETURNS kip.actions LANGUAGE plpgsql AS $$
DECLARE
  v_resp uuid := (p_body->>'responsible_participant_id')::uuid;
  a kip.actions;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM kip.participants
                  WHERE id = v_resp AND plan_id = p_plan.id AND left_at IS NULL) THEN
    PERFORM kip.fail(422, p_field_prefix || 'responsible_participant_id',
                     'must be an active participant of the plan');
  END IF;
  INSERT INTO kip.actions (plan_id, title, description, area, responsible_participant_id,
                           due_date, agreed_in_meeting_id, created_by)
  VALUES (p_plan.id, p_body->>'title', p_body->>'description', coalesce(p_body->>'area', 'other'),
          v_resp, (p_body->>'due_date')::date,
          coalesce(p_meeting_id, (p_body->>'agreed_in_meeting_id')::uuid), p_user.id)
  RETURNING * INTO a;
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  VALUES ('action.assigned', p_plan.id, a.id, 'action.assigned:' || a.id || ':' || v_resp,
          jsonb_build_object('action_id', a.id, 'responsible_participant_id', v_resp));
  RETURN a;
END
$$;

