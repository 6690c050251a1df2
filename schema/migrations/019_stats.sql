-- 019_stats: statistics (issue 15).
--
-- A new role, `analyst`: reads the aggregate statistics of every
-- organisation (GET /v1/stats) and nothing else. It is not a plan-working
-- role, so kip.plan_access gives it no plan (schema/functions/01_access.sql).
ALTER TABLE kip.users DROP CONSTRAINT users_roles_check;
ALTER TABLE kip.users ADD CONSTRAINT users_roles_check CHECK (cardinality(roles) > 0 AND roles <@
  ARRAY['admin', 'coordinator', 'caseworker', 'integration', 'auditor', 'analyst']);

-- The statistics read these fact tables, not the live ones: one row per
-- plan, meeting and action with what the figures need already joined and
-- computed (docs/statistics.md, "Freshness"). kip.stats_refresh()
-- (schema/functions/24_stats.sql) rewrites the rows of every plan changed
-- since its last run; the daily pass calls it. At scale 1 of the benchmark
-- the live query took minutes, these take milliseconds
-- (docs/performance.md, "Statistics").
CREATE TABLE kip.stats_plans (
  plan_id       uuid PRIMARY KEY,
  org           uuid NOT NULL,
  sector        text NOT NULL,
  person        text NOT NULL,        -- the CPR number's blind index, else the plan id
  started       timestamptz,          -- the first consent to KIP
  closed_at     timestamptz,
  close_reason  text,
  with_gp         boolean NOT NULL,
  with_jobcenter  boolean NOT NULL,
  with_addiction  boolean NOT NULL,
  refreshed_at  timestamptz NOT NULL
);
CREATE INDEX stats_plans_org ON kip.stats_plans (org);
CREATE INDEX stats_plans_closed ON kip.stats_plans (closed_at) WHERE closed_at IS NOT NULL;

CREATE TABLE kip.stats_meetings (
  meeting_id        uuid PRIMARY KEY,
  plan_id           uuid NOT NULL,
  org               uuid NOT NULL,
  sector            text NOT NULL,
  starts_at         timestamptz NOT NULL,
  ends_at           timestamptz NOT NULL,
  status            text NOT NULL,
  citizen_attended  boolean NOT NULL,
  first_held        boolean NOT NULL,  -- the plan's first held meeting
  days_from_consent integer,           -- first_held: Copenhagen days from the first consent
  days_from_previous integer           -- held, not first: days from the held meeting before
);
CREATE INDEX stats_meetings_start ON kip.stats_meetings (starts_at);
CREATE INDEX stats_meetings_org_start ON kip.stats_meetings (org, starts_at);
CREATE INDEX stats_meetings_plan ON kip.stats_meetings (plan_id);

CREATE TABLE kip.stats_actions (
  action_id     uuid PRIMARY KEY,
  plan_id       uuid NOT NULL,
  org           uuid NOT NULL,
  sector        text NOT NULL,
  area          text NOT NULL,
  party_sector  text NOT NULL,
  due_date      date NOT NULL,
  status        text NOT NULL,
  completed_on  date                  -- the Copenhagen day it was done
);
CREATE INDEX stats_actions_due ON kip.stats_actions (due_date);
CREATE INDEX stats_actions_org_due ON kip.stats_actions (org, due_date);
CREATE INDEX stats_actions_plan ON kip.stats_actions (plan_id);

-- When kip.stats_refresh() last ran: one row.
CREATE TABLE kip.stats_state (
  one           boolean PRIMARY KEY DEFAULT true CHECK (one),
  refreshed_at  timestamptz
);
INSERT INTO kip.stats_state (one, refreshed_at) VALUES (true, NULL);

-- kip.stats_refresh() reads every consent of a plan (the first one to KIP);
-- the only index on consents.plan_id covers the current one.
CREATE INDEX consents_plan ON kip.consents (plan_id);
