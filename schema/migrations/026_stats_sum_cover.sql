-- 026_stats_sum_cover: the summary read by index-only scans (issue 15).
--
-- GET /v1/stats over every organisation reads each summary table's whole
-- months of the period: at scale 1 by organisation, 29,000 rows of
-- stats_sum_days, 14,000 of stats_sum_plans and 11,000 each of
-- stats_sum_meetings and stats_sum_actions, lying all over their heaps
-- (the daily pass updates them in place). Indexes on the month that hold
-- every column read let PostgreSQL answer from the index alone: the day
-- histograms' part went from 15.5 to 8.2 ms (docs/performance.md). They
-- replace 020's plain indexes on the month.
DROP INDEX kip.stats_sum_plans_month;
CREATE INDEX stats_sum_plans_month_cover ON kip.stats_sum_plans (month)
  INCLUDE (org, sector, started, started_gp, started_jobcenter, started_addiction, ended, ended_gp,
           ended_jobcenter, ended_addiction, closed, completed, transferred, declined, consent_withdrawn,
           deceased, moved, other);
DROP INDEX kip.stats_sum_meetings_month;
CREATE INDEX stats_sum_meetings_month_cover ON kip.stats_sum_meetings (month)
  INCLUDE (org, sector, held, cancelled, attended);
DROP INDEX kip.stats_sum_days_month;
CREATE INDEX stats_sum_days_month_cover ON kip.stats_sum_days (month) INCLUDE (org, sector, kind, days, n);
CREATE INDEX stats_sum_days_sector_month_cover ON kip.stats_sum_days_sector (month)
  INCLUDE (sector, kind, days, n);
DROP INDEX kip.stats_sum_actions_month;
CREATE INDEX stats_sum_actions_month_cover ON kip.stats_sum_actions (month)
  INCLUDE (org, sector, done, on_time, open);
CREATE INDEX stats_sum_action_parts_month_cover ON kip.stats_sum_action_parts (month)
  INCLUDE (area, party_sector, done, on_time, open);

-- An index-only scan skips the heap only on pages the visibility map marks
-- all-visible, and the daily pass updates these rows every hour: vacuum
-- them after 2 % of their rows changed, not the default 20 %.
ALTER TABLE kip.stats_sum_plans SET (autovacuum_vacuum_scale_factor = 0.02,
                                     autovacuum_vacuum_insert_scale_factor = 0.02);
ALTER TABLE kip.stats_sum_meetings SET (autovacuum_vacuum_scale_factor = 0.02,
                                        autovacuum_vacuum_insert_scale_factor = 0.02);
ALTER TABLE kip.stats_sum_days SET (autovacuum_vacuum_scale_factor = 0.02,
                                    autovacuum_vacuum_insert_scale_factor = 0.02);
ALTER TABLE kip.stats_sum_days_sector SET (autovacuum_vacuum_scale_factor = 0.02,
                                           autovacuum_vacuum_insert_scale_factor = 0.02);
ALTER TABLE kip.stats_sum_actions SET (autovacuum_vacuum_scale_factor = 0.02,
                                       autovacuum_vacuum_insert_scale_factor = 0.02);
ALTER TABLE kip.stats_sum_action_parts SET (autovacuum_vacuum_scale_factor = 0.02,
                                            autovacuum_vacuum_insert_scale_factor = 0.02);
