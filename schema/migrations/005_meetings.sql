-- 005_meetings: KIP meetings (schedule, reschedule, cancel, invitee
-- responses, the outcome with the next meeting), the agenda, the caller's
-- meetings and calendar feeds: the tables. Their functions live in
-- schema/functions/ (15_meetings.sql, 17_calendar.sql) since issue 11.
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
