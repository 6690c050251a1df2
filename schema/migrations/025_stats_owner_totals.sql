-- 025_stats_owner_totals: all-time sums of plans started and ended per
-- organisation and owner sector (issue 15).
--
-- GET /v1/stats counts the active plans of a span as S(hi) - C(lo): the
-- plans started before the span's end less those ended before its start.
-- It summed stats_sum_plans over every month before the cut, so its cost
-- grew with the years of history kipd holds (34,000 rows at scale 1 over
-- 40 months, read on every request by organisation). With these totals it
-- sums the months from the period's start on instead: S(hi) = the total
-- less the months from hi on (docs/statistics.md, "Speed").
-- Kept by the same statement triggers as the other summaries
-- (kip.stats_sum_sql('stats_owners'), schema/functions/24_stats.sql) and
-- checked by kip.stats_sum_check().
ALTER TABLE kip.stats_owners
  ADD COLUMN started            integer NOT NULL DEFAULT 0,
  ADD COLUMN started_gp         integer NOT NULL DEFAULT 0,
  ADD COLUMN started_jobcenter  integer NOT NULL DEFAULT 0,
  ADD COLUMN started_addiction  integer NOT NULL DEFAULT 0,
  ADD COLUMN ended              integer NOT NULL DEFAULT 0,
  ADD COLUMN ended_gp           integer NOT NULL DEFAULT 0,
  ADD COLUMN ended_jobcenter    integer NOT NULL DEFAULT 0,
  ADD COLUMN ended_addiction    integer NOT NULL DEFAULT 0;

-- The first fill, from stats_sum_plans (the same sums as
-- kip.stats_sum_sql('stats_owners'); no function exists while migrations run).
UPDATE kip.stats_owners o
   SET started = s.started, started_gp = s.started_gp, started_jobcenter = s.started_jobcenter,
       started_addiction = s.started_addiction, ended = s.ended, ended_gp = s.ended_gp,
       ended_jobcenter = s.ended_jobcenter, ended_addiction = s.ended_addiction
  FROM (SELECT org, sector, sum(started) AS started, sum(started_gp) AS started_gp,
               sum(started_jobcenter) AS started_jobcenter, sum(started_addiction) AS started_addiction,
               sum(ended) AS ended, sum(ended_gp) AS ended_gp, sum(ended_jobcenter) AS ended_jobcenter,
               sum(ended_addiction) AS ended_addiction
          FROM kip.stats_sum_plans GROUP BY org, sector) s
 WHERE o.org = s.org AND o.sector = s.sector;
