-- A rich fixture for tests/integration/test_stats.py, written straight into
-- the statistics' fact tables (the summary triggers count it): times
-- around Copenhagen midnights and across the DST changes, plans without a
-- consent, plans closed before they started, citizens with several plans,
-- an organisation whose plans carry two sectors (its sector changed), every
-- meeting and action status, actions done early, late and without a day.
-- Run inside a transaction that the test rolls back. (Each LATERAL names n:
-- an uncorrelated one would be evaluated once, giving every row one value.)
SELECT setseed(0.15);
CREATE TEMP TABLE fx_orgs ON COMMIT DROP AS
SELECT gen_random_uuid() AS id, 'Fixture ' || i AS name,
       (ARRAY['region_hospital', 'municipality_social', 'general_practice'])[1 + i % 3] AS sector, i
  FROM generate_series(0, 6) i;
INSERT INTO kip.organisations (id, name, sector) SELECT id, name, sector FROM fx_orgs;
CREATE TEMP TABLE fx_plans ON COMMIT DROP AS
SELECT gen_random_uuid() AS plan_id, o.id AS org,
       CASE WHEN o.i = 6 AND random() < 0.5 THEN 'civil_society' ELSE o.sector END AS sector,
       x.started, x.closed_at
  FROM generate_series(1, 700) n
 CROSS JOIN LATERAL (SELECT * FROM fx_orgs ORDER BY random() + n * 0 LIMIT 1) o
 CROSS JOIN LATERAL (SELECT CASE WHEN random() + n * 0 < 0.1 THEN NULL
                                 ELSE date_trunc('day', now()) - (random() * 900 - 20) * interval '1 day'
                                      + (random() * 4 - 2) * interval '1 hour' END AS started) s
 CROSS JOIN LATERAL (SELECT s.started, CASE WHEN random() < 0.5 THEN NULL
                                 WHEN s.started IS NULL THEN now() - random() * 900 * interval '1 day'
                                 ELSE s.started + (random() * 420 - 20) * interval '1 day' END AS closed_at) x;
INSERT INTO kip.stats_plans (plan_id, org, sector, person, started, closed_at, close_reason,
                             with_gp, with_jobcenter, with_addiction, refreshed_at)
SELECT plan_id, org, sector,
       CASE WHEN random() < 0.3 THEN 'fx-citizen-' || floor(random() * 80) ELSE plan_id::text END,
       started, closed_at,
       CASE WHEN closed_at IS NOT NULL THEN (ARRAY['completed', 'transferred', 'declined', 'consent_withdrawn',
                                                   'deceased', 'moved', 'other'])[1 + floor(random() * 7)::int] END,
       random() < 0.4, random() < 0.3, random() < 0.2, now()
  FROM fx_plans;
INSERT INTO kip.stats_meetings (meeting_id, plan_id, org, sector, starts_at, ends_at, status, citizen_attended,
                                first_held, days_from_consent, days_from_previous)
SELECT gen_random_uuid(), p.plan_id, p.org, p.sector, m.starts_at, m.starts_at + interval '90 minutes', m.status,
       random() < 0.7, m.status = 'held' AND f.first,
       CASE WHEN m.status = 'held' AND f.first AND random() < 0.9 THEN floor(random() * 60)::int END,
       CASE WHEN m.status = 'held' AND NOT f.first THEN floor(random() * 90)::int END
  FROM generate_series(1, 2500) n
 CROSS JOIN LATERAL (SELECT * FROM fx_plans ORDER BY random() + n * 0 LIMIT 1) p
 CROSS JOIN LATERAL (SELECT date_trunc('day', now()) - (random() * 900 - 60 + n * 0) * interval '1 day'
                            + (random() * 6 - 3) * interval '1 hour' AS starts_at,
                            (ARRAY['held', 'held', 'held', 'cancelled', 'planned'])[1 + floor(random() * 5)::int]
                              AS status) m
 CROSS JOIN LATERAL (SELECT random() + n * 0 < 0.3 AS first) f;
INSERT INTO kip.stats_actions (action_id, plan_id, org, sector, area, party_sector, due_date, status, completed_on)
SELECT gen_random_uuid(), p.plan_id, p.org, p.sector,
       (ARRAY['substances', 'somatic_health', 'mental_health', 'housing', 'finances', 'employment', 'crime',
              'family_children', 'network', 'other'])[1 + floor(random() * 10)::int],
       (ARRAY['region_hospital', 'municipality_social', 'citizen', 'relative', 'none'])[1 + floor(random() * 5)::int],
       a.due, a.status,
       CASE WHEN a.status = 'done' AND random() < 0.95 THEN a.due + floor(random() * 20 - 10)::int END
  FROM generate_series(1, 5000) n
 CROSS JOIN LATERAL (SELECT * FROM fx_plans ORDER BY random() + n * 0 LIMIT 1) p
 CROSS JOIN LATERAL (SELECT kip.today() - floor(random() * 900 - 100 + n * 0)::int AS due,
                            (ARRAY['open', 'in_progress', 'done', 'done', 'cancelled'])[1 + floor(random() * 5)::int]
                              AS status) a;
