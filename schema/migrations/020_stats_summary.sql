-- 020_stats_summary: a summary of the statistics' fact tables (issue 15).
--
-- GET /v1/stats over every organisation aggregated each fact row of the
-- period (seconds at scale 1 of the benchmark). These tables hold the same
-- facts counted per organisation, owner sector and Copenhagen month, so an
-- analyst's year is a sum over some thousand rows (docs/statistics.md,
-- "Speed"; docs/performance.md, "Statistics (issue 15)"). They are kept
-- equal to the fact tables by statement triggers on them
-- (schema/functions/24_stats.sql, kip.stats_sum_*), so every write of
-- kip.stats_refresh() (the daily pass) moves them in the same transaction;
-- kip.stats_sum_check() compares them with a recount.
--
-- Months only: a period's first and last month may be partial (from/to
-- fall on any day), and the month holding today depends on the clock (an
-- open action counts once its due date has passed); those months are read
-- from the fact rows, every whole month from here.

-- Plans by the month of their first consent (started_*) and of their
-- closing (ended_*), for plans that started and did not close on a day
-- before the one they started (the others are read from the facts: they are
-- active in no ordinary span); closed_* by reason, every plan closed in the
-- month.
CREATE TABLE kip.stats_sum_plans (
  org                uuid NOT NULL,
  sector             text NOT NULL,
  month              date NOT NULL,
  started            integer NOT NULL,
  started_gp         integer NOT NULL,
  started_jobcenter  integer NOT NULL,
  started_addiction  integer NOT NULL,
  ended              integer NOT NULL,
  ended_gp           integer NOT NULL,
  ended_jobcenter    integer NOT NULL,
  ended_addiction    integer NOT NULL,
  closed             integer NOT NULL,
  completed          integer NOT NULL,
  transferred        integer NOT NULL,
  declined           integer NOT NULL,
  consent_withdrawn  integer NOT NULL,
  deceased           integer NOT NULL,
  moved              integer NOT NULL,
  other              integer NOT NULL,
  PRIMARY KEY (org, sector, month)
);

-- Meetings by the month of their start.
CREATE TABLE kip.stats_sum_meetings (
  org        uuid NOT NULL,
  sector     text NOT NULL,
  month      date NOT NULL,
  held       integer NOT NULL,
  cancelled  integer NOT NULL,
  attended   integer NOT NULL,
  PRIMARY KEY (org, sector, month)
);

-- Day histograms of held meetings by the month of their start: kind
-- 'first' counts days_from_consent, 'interval' days_from_previous. The days
-- are whole numbers, so a histogram gives the exact percentile_cont.
CREATE TABLE kip.stats_sum_days (
  org     uuid NOT NULL,
  sector  text NOT NULL,
  month   date NOT NULL,
  kind    text NOT NULL CHECK (kind IN ('first', 'interval')),
  days    integer NOT NULL,
  n       integer NOT NULL,
  PRIMARY KEY (org, sector, month, kind, days)
);

-- The same per owner sector only, for the groupings that need no
-- organisation (month, quarter, sector): a tenth of the rows.
CREATE TABLE kip.stats_sum_days_sector (
  sector  text NOT NULL,
  month   date NOT NULL,
  kind    text NOT NULL CHECK (kind IN ('first', 'interval')),
  days    integer NOT NULL,
  n       integer NOT NULL,
  PRIMARY KEY (month, sector, kind, days)
);

-- Actions not cancelled, by the month of their due date: done, done on
-- time, and still open (settled once the due date has passed).
CREATE TABLE kip.stats_sum_actions (
  org      uuid NOT NULL,
  sector   text NOT NULL,
  month    date NOT NULL,
  done     integer NOT NULL,
  on_time  integer NOT NULL,
  open     integer NOT NULL,
  PRIMARY KEY (org, sector, month)
);

-- The same by area and responsible party's sector, over every organisation.
CREATE TABLE kip.stats_sum_action_parts (
  month         date NOT NULL,
  area          text NOT NULL,
  party_sector  text NOT NULL,
  done          integer NOT NULL,
  on_time       integer NOT NULL,
  open          integer NOT NULL,
  PRIMARY KEY (month, area, party_sector)
);

-- Plans with facts per owner and sector (the organisation and sector
-- groups), and per citizen: a citizen with one plan counts once wherever
-- that plan counts, so only the plans of citizens with more than one need
-- a distinct count (docs/statistics.md, "Speed").
CREATE TABLE kip.stats_owners (
  org     uuid NOT NULL,
  sector  text NOT NULL,
  plans   integer NOT NULL,
  PRIMARY KEY (org, sector)
);
CREATE TABLE kip.stats_persons (
  person  text PRIMARY KEY,
  plans   integer NOT NULL
);
-- A period reads the whole months it spans.
CREATE INDEX stats_sum_plans_month ON kip.stats_sum_plans (month);
CREATE INDEX stats_sum_meetings_month ON kip.stats_sum_meetings (month);
CREATE INDEX stats_sum_days_month ON kip.stats_sum_days (month);
CREATE INDEX stats_sum_actions_month ON kip.stats_sum_actions (month);
CREATE INDEX stats_persons_shared ON kip.stats_persons (person) WHERE plans > 1;

CREATE INDEX stats_plans_person ON kip.stats_plans (person);
CREATE INDEX stats_plans_started ON kip.stats_plans (started);
-- Plans closed on a Copenhagen day before the one they started: a column,
-- so that the planner knows how few they are.
ALTER TABLE kip.stats_plans ADD COLUMN skewed boolean NOT NULL GENERATED ALWAYS AS
  (coalesce((closed_at AT TIME ZONE 'Europe/Copenhagen')::date < (started AT TIME ZONE 'Europe/Copenhagen')::date,
            false)) STORED;
CREATE INDEX stats_plans_skewed ON kip.stats_plans (plan_id) WHERE skewed;
-- Overdue outcomes depend on the clock: read from the facts.
CREATE INDEX stats_meetings_planned ON kip.stats_meetings (starts_at) WHERE status = 'planned';
-- The days of a partial month are read from the facts by date over every
-- organisation: index-only scans, not a heap fetch per fact (the facts of a
-- day lie all over the heap). They replace 019's plain indexes on the date.
CREATE INDEX stats_meetings_start_cover ON kip.stats_meetings (starts_at)
  INCLUDE (org, sector, status, citizen_attended, days_from_consent, days_from_previous);
DROP INDEX kip.stats_meetings_start;
CREATE INDEX stats_actions_due_cover ON kip.stats_actions (due_date)
  INCLUDE (org, sector, area, party_sector, status, completed_on);
DROP INDEX kip.stats_actions_due;

-- The first fill, from the fact tables as they are (migration 019 filled
-- them). The same counts as the triggers and kip.stats_sum_check()
-- (schema/functions/24_stats.sql) make; no function exists while
-- migrations run.
INSERT INTO kip.stats_sum_plans
SELECT org, sector, month, sum(started), sum(started_gp), sum(started_jobcenter), sum(started_addiction),
       sum(ended), sum(ended_gp), sum(ended_jobcenter), sum(ended_addiction),
       sum(closed), sum(completed), sum(transferred), sum(declined), sum(consent_withdrawn),
       sum(deceased), sum(moved), sum(other)
  FROM (
    SELECT p.org, p.sector, date_trunc('month', p.started AT TIME ZONE 'Europe/Copenhagen')::date AS month,
           1 AS started, p.with_gp::int AS started_gp, p.with_jobcenter::int AS started_jobcenter,
           p.with_addiction::int AS started_addiction, 0 AS ended, 0 AS ended_gp, 0 AS ended_jobcenter,
           0 AS ended_addiction, 0 AS closed, 0 AS completed, 0 AS transferred, 0 AS declined,
           0 AS consent_withdrawn, 0 AS deceased, 0 AS moved, 0 AS other
      FROM kip.stats_plans p
     WHERE p.started IS NOT NULL
       AND (p.closed_at IS NULL OR (p.closed_at AT TIME ZONE 'Europe/Copenhagen')::date
                                   >= (p.started AT TIME ZONE 'Europe/Copenhagen')::date)
    UNION ALL
    SELECT p.org, p.sector, date_trunc('month', p.closed_at AT TIME ZONE 'Europe/Copenhagen')::date,
           0, 0, 0, 0,
           CASE WHEN n.normal THEN 1 ELSE 0 END,
           CASE WHEN n.normal THEN p.with_gp::int ELSE 0 END,
           CASE WHEN n.normal THEN p.with_jobcenter::int ELSE 0 END,
           CASE WHEN n.normal THEN p.with_addiction::int ELSE 0 END,
           1, (p.close_reason = 'completed')::int, (p.close_reason = 'transferred')::int,
           (p.close_reason = 'declined')::int, (p.close_reason = 'consent_withdrawn')::int,
           (p.close_reason = 'deceased')::int, (p.close_reason = 'moved')::int, (p.close_reason = 'other')::int
      FROM kip.stats_plans p
     CROSS JOIN LATERAL (SELECT p.started IS NOT NULL
                                AND (p.closed_at AT TIME ZONE 'Europe/Copenhagen')::date
                                    >= (p.started AT TIME ZONE 'Europe/Copenhagen')::date AS normal) n
     WHERE p.closed_at IS NOT NULL
  ) c
 GROUP BY org, sector, month;

INSERT INTO kip.stats_sum_meetings
SELECT m.org, m.sector, date_trunc('month', m.starts_at AT TIME ZONE 'Europe/Copenhagen')::date,
       count(*) FILTER (WHERE m.status = 'held'), count(*) FILTER (WHERE m.status = 'cancelled'),
       count(*) FILTER (WHERE m.status = 'held' AND m.citizen_attended)
  FROM kip.stats_meetings m
 GROUP BY 1, 2, 3
HAVING count(*) FILTER (WHERE m.status IN ('held', 'cancelled')) > 0;

INSERT INTO kip.stats_sum_days
SELECT m.org, m.sector, date_trunc('month', m.starts_at AT TIME ZONE 'Europe/Copenhagen')::date, d.kind, d.days,
       count(*)
  FROM kip.stats_meetings m
 CROSS JOIN LATERAL (VALUES ('first', m.days_from_consent), ('interval', m.days_from_previous)) d(kind, days)
 WHERE d.days IS NOT NULL
 GROUP BY 1, 2, 3, 4, 5;

INSERT INTO kip.stats_sum_days_sector
SELECT sector, month, kind, days, sum(n) FROM kip.stats_sum_days GROUP BY 1, 2, 3, 4;

INSERT INTO kip.stats_sum_actions
SELECT a.org, a.sector, date_trunc('month', a.due_date)::date,
       count(*) FILTER (WHERE a.status = 'done'),
       count(*) FILTER (WHERE a.status = 'done' AND a.completed_on <= a.due_date),
       count(*) FILTER (WHERE a.status <> 'done')
  FROM kip.stats_actions a
 WHERE a.status <> 'cancelled'
 GROUP BY 1, 2, 3;

INSERT INTO kip.stats_sum_action_parts
SELECT date_trunc('month', a.due_date)::date, a.area, a.party_sector,
       count(*) FILTER (WHERE a.status = 'done'),
       count(*) FILTER (WHERE a.status = 'done' AND a.completed_on <= a.due_date),
       count(*) FILTER (WHERE a.status <> 'done')
  FROM kip.stats_actions a
 WHERE a.status <> 'cancelled'
 GROUP BY 1, 2, 3;

INSERT INTO kip.stats_owners SELECT org, sector, count(*) FROM kip.stats_plans GROUP BY 1, 2;
INSERT INTO kip.stats_persons SELECT person, count(*) FROM kip.stats_plans GROUP BY 1;
