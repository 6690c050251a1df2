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

-- The first fill, here rather than in the daily pass: migrations run without
-- a statement timeout, a daily pass has kipd's (10 s), and an upgraded
-- database may hold many plans (scale 1 of the benchmark, 100,000: minutes).
-- The same rows kip.stats_refresh() makes, in plain SQL (no function exists
-- while migrations run); refreshed_at a minute back, as there.
INSERT INTO kip.stats_plans (plan_id, org, sector, person, started, closed_at, close_reason,
                             with_gp, with_jobcenter, with_addiction, refreshed_at)
SELECT p.id, p.owner_organisation_id, o.sector, coalesce(p.citizen_cpr_hmac, p.id::text),
       c.started, p.closed_at, p.close_reason,
       coalesce(pa.gp, false), coalesce(pa.jobcenter, false), coalesce(pa.addiction, false),
       now() - interval '1 minute'
  FROM kip.plans p
  JOIN kip.organisations o ON o.id = p.owner_organisation_id
  LEFT JOIN (SELECT plan_id, min(given_at) AS started FROM kip.consents WHERE kip_consent
              GROUP BY plan_id) c ON c.plan_id = p.id
  LEFT JOIN (SELECT x.plan_id,
                    bool_or(x.role = 'general_practitioner' OR po.sector = 'general_practice') AS gp,
                    bool_or(x.role = 'jobcenter_caseworker' OR po.sector = 'municipality_jobcenter') AS jobcenter,
                    bool_or(x.role = 'addiction_counsellor' OR po.sector = 'municipality_addiction') AS addiction
               FROM kip.participants x LEFT JOIN kip.organisations po ON po.id = x.organisation_id
              WHERE x.kind = 'professional'
              GROUP BY x.plan_id) pa ON pa.plan_id = p.id;

INSERT INTO kip.stats_meetings (meeting_id, plan_id, org, sector, starts_at, ends_at, status,
                                citizen_attended, first_held, days_from_consent, days_from_previous)
SELECT m.id, m.plan_id, sp.org, sp.sector, m.starts_at,
       m.starts_at + m.duration_minutes * interval '1 minute', m.status,
       coalesce(att.attended, false),
       m.status = 'held' AND m.previous IS NULL,
       CASE WHEN m.status = 'held' AND m.previous IS NULL AND sp.started IS NOT NULL
                 AND (sp.started AT TIME ZONE 'Europe/Copenhagen')::date
                     <= (m.starts_at AT TIME ZONE 'Europe/Copenhagen')::date
            THEN (m.starts_at AT TIME ZONE 'Europe/Copenhagen')::date
                 - (sp.started AT TIME ZONE 'Europe/Copenhagen')::date END,
       CASE WHEN m.status = 'held'
            THEN (m.starts_at AT TIME ZONE 'Europe/Copenhagen')::date
                 - (m.previous AT TIME ZONE 'Europe/Copenhagen')::date END
  FROM (SELECT x.*, CASE WHEN x.status = 'held'
                         THEN lag(x.starts_at) OVER (PARTITION BY x.plan_id, x.status = 'held'
                                                     ORDER BY x.starts_at, x.id) END AS previous
          FROM kip.meetings x) m
  JOIN kip.stats_plans sp ON sp.plan_id = m.plan_id
  LEFT JOIN (SELECT mo.meeting_id, bool_or((a->>'attended')::boolean) AS attended
               FROM kip.meeting_outcomes mo
               CROSS JOIN jsonb_array_elements(mo.attendance) a
               JOIN kip.participants cp ON cp.id = (a->>'participant_id')::uuid AND cp.kind = 'citizen'
              GROUP BY mo.meeting_id) att ON att.meeting_id = m.id;

INSERT INTO kip.stats_actions (action_id, plan_id, org, sector, area, party_sector, due_date, status,
                               completed_on)
SELECT a.id, a.plan_id, sp.org, sp.sector, a.area,
       coalesce(ro.sector, CASE WHEN rp.kind IN ('citizen', 'relative') THEN rp.kind ELSE 'none' END),
       a.due_date, a.status, (a.completed_at AT TIME ZONE 'Europe/Copenhagen')::date
  FROM kip.actions a
  JOIN kip.stats_plans sp ON sp.plan_id = a.plan_id
  JOIN kip.participants rp ON rp.id = a.responsible_participant_id
  LEFT JOIN kip.organisations ro ON ro.id = rp.organisation_id
 WHERE a.due_date IS NOT NULL;

UPDATE kip.stats_state SET refreshed_at = now();
