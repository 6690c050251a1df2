-- Meetings for the benchmark data (needs schema/005_meetings.sql). Run by
-- tests/bench/gen after gen.sql, in the same (seed, scale). Meeting r (0..4)
-- of plan j starts r*42 days after the plan was made; past meetings are held
-- (90%, each with an outcome naming the next meeting) or cancelled; future
-- ones are planned. Every participant of the plan is invited.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET synchronous_commit = off;
SET session_replication_role = replica;
SET work_mem = '64MB';

\echo gen: meetings, invitees, outcomes
INSERT INTO kip.meetings (id, plan_id, version, sequence, status, starts_at, duration_minutes, location_kind,
                          location_address, location_room, purpose, chair_participant_id,
                          previous_meeting_id, cancel_reason, cancelled_at, created_by, created_at, updated_at)
SELECT bench.id('meeting', m), bench.id('plan', j), CASE WHEN st = 'planned' THEN 1 ELSE 2 END, 0, st, sa, 90,
       'hospital', 'Kettegård Allé 30, 2650 Hvidovre', 'Room ' || (1 + m % 40), 'KIP meeting ' || (r + 1),
       bench.id('pa', j * 16 + 1), CASE WHEN r > 0 THEN bench.id('meeting', m - n_plan) END,
       CASE WHEN st = 'cancelled' THEN 'citizen admitted' END,
       CASE WHEN st = 'cancelled' THEN sa - interval '1 day' END,
       bench.id('user', j % n_org), bench.plan_created(j), bench.plan_created(j)
  FROM bench.params, generate_series(0, n_meeting - 1) m,
       LATERAL (SELECT m % n_plan AS j, m / n_plan AS r) jr,
       LATERAL (SELECT bench.plan_created(j) + make_interval(days => (r * 42)::int, hours => 10) AS sa) s,
       LATERAL (SELECT CASE WHEN sa > now() THEN 'planned'
                            WHEN bench.h(m, 30) % 10 = 0 THEN 'cancelled' ELSE 'held' END AS st) t;

INSERT INTO kip.meeting_invitees (id, plan_id, meeting_id, participant_id, position, mode, response, responded_at)
SELECT md5('inv:' || mt.id || ':' || pa.id)::uuid, mt.plan_id, mt.id, pa.id,
       row_number() OVER (PARTITION BY mt.id ORDER BY pa.joined_at, pa.id) - 1, pa.default_attendance,
       CASE WHEN mt.status = 'held' THEN 'accepted' ELSE 'pending' END,
       CASE WHEN mt.status = 'held' THEN mt.starts_at - interval '2 days' END
  FROM kip.meetings mt JOIN kip.participants pa ON pa.plan_id = mt.plan_id;

INSERT INTO kip.meeting_outcomes (id, plan_id, meeting_id, attendance, observations, summary, citizen_accepted,
                                  next_meeting_id, no_further_meeting_reason, recorded_by, recorded_at)
SELECT md5('outcome:' || mt.id)::uuid, mt.plan_id, mt.id, '[]', '[]', 'Agreed the next steps', true,
       nx.id, CASE WHEN nx.id IS NULL THEN 'plan completed' END, mt.created_by,
       mt.starts_at + interval '2 hours'
  FROM kip.meetings mt LEFT JOIN kip.meetings nx ON nx.previous_meeting_id = mt.id
 WHERE mt.status = 'held';

INSERT INTO kip.history (plan_id, at, user_id, resource, resource_id, operation, field, before, after)
SELECT mt.plan_id, mt.created_at, mt.created_by, 'meeting', mt.id, 'create', 'starts_at', NULL, to_jsonb(mt.starts_at)
  FROM kip.meetings mt;
INSERT INTO kip.audit (at, user_id, organisation_id, action, plan_id, resource)
SELECT mt.starts_at + interval '2 hours', mt.created_by, NULL, 'outcome', mt.plan_id, 'meeting'
  FROM kip.meetings mt WHERE mt.status = 'held';
