-- 004_actions: agreed actions (who does what by when) and the events
-- table. Their functions (action documents, the daily pass) live in
-- schema/functions/ since issue 11.

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
