-- kipd benchmark data generator: set-based SQL, deterministic in (seed, scale).
-- Run by tests/bench/gen with psql -v seed=N -v scale=S against a database
-- migrated by `kipd --migrate-only`.
--
-- Every id and every "random" choice is a hash of (seed, kind, index), so the
-- same seed and scale give the same rows (dates are relative to the load day,
-- so "overdue" stays realistic). Triggers are off while loading
-- (session_replication_role = replica, which also skips the FK triggers);
-- the history rows the triggers would have written are inserted here,
-- set-based, in the same shape (resource, operation 'create', field, after).

\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET synchronous_commit = off;
SET session_replication_role = replica;
SET maintenance_work_mem = '256MB';
SET work_mem = '64MB';

DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;

CREATE TABLE bench.params AS
SELECT :seed::bigint AS seed, :scale::numeric AS scale,
       greatest(ceil(1000 * :scale)::int, 10) AS n_org,
       greatest(ceil(10000 * :scale)::int, 100) AS n_user,
       greatest(ceil(50 * :scale)::int, 3) AS n_busy,
       greatest(ceil(100000 * :scale)::int, 100) AS n_plan,
       greatest(ceil(1000000 * :scale)::int, 1000) AS n_action,
       greatest(ceil(500000 * :scale)::int, 500) AS n_meeting,
       kip.today() AS today;

-- h(i, salt): a deterministic non-negative pseudo-random bigint.
SELECT format($f$CREATE FUNCTION bench.h(i bigint, salt int) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT hashint8extended(i, salt + %s) & 281474976710655'$f$, 1000 * :seed) \gexec
SELECT format($f$CREATE FUNCTION bench.id(kind text, i bigint) RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT md5(kind || '':%s:'' || i)::uuid'$f$, :seed) \gexec
-- participants per plan: 4..8
CREATE FUNCTION bench.k(j bigint) RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT 4 + (bench.h(j, 2) % 5)::int $$;
CREATE FUNCTION bench.plan_created(j bigint) RETURNS timestamptz LANGUAGE sql STABLE AS
$$ SELECT date_trunc('day', now()) - make_interval(days => (bench.h(j, 3) % 1000)::int,
                                                   secs => (bench.h(j, 4) % 36000)::int) $$;
CREATE FUNCTION bench.plan_status(j bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN x < 70 THEN 'active' WHEN x < 80 THEN 'draft' WHEN x < 85 THEN 'awaiting_consent'
               ELSE 'closed' END FROM (SELECT bench.h(j, 1) % 100 AS x) s $$;
-- user index of participant slot s (>= 1) of plan j
CREATE FUNCTION bench.slot_user(j bigint, s int) RETURNS int LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN s = 1 THEN (j % n_org)::int
              WHEN s = 2 AND bench.h(j, 6) % 100 < 10 THEN n_org + (bench.h(j, 7) % n_busy)::int
              ELSE n_org + n_busy + ((bench.h(j, 5) + (s - 2) * 7919) % (n_user - n_org - n_busy))::int END
    FROM bench.params $$;

\echo gen: organisations, users, tokens
INSERT INTO kip.organisations (id, name, sector, cvr, created_at)
SELECT bench.id('org', o), 'Bench organisation ' || o,
       (ARRAY['region_hospital', 'region_psychiatry', 'municipality_jobcenter', 'municipality_social',
              'municipality_addiction', 'general_practice', 'civil_society'])[1 + o % 7],
       lpad((10000000 + o)::text, 8, '0'), now() - interval '4 years'
  FROM bench.params, generate_series(0, n_org - 1) o;

-- users 0..n_org-1: one tovholder (coordinator) per organisation;
-- then n_busy busy caseworkers; the rest caseworkers.
INSERT INTO kip.users (id, username, display_name, organisation_id, roles, email, created_at, updated_at)
SELECT bench.id('user', u), 'bench.u' || u, 'Bench User ' || u, bench.id('org', u % n_org),
       CASE WHEN u < n_org THEN ARRAY['coordinator'] ELSE ARRAY['caseworker'] END,
       'u' || u || '@bench.example', now() - interval '4 years', now() - interval '4 years'
  FROM bench.params, generate_series(0, n_user - 1) u;

CREATE TABLE bench.tokens AS
SELECT u, 'kipd_' || translate(rtrim(encode(sha256(convert_to('kipd-bench:' || :seed || ':' || u, 'UTF8')),
                                           'base64'), '='), '+/', '-_') AS token
  FROM bench.params, generate_series(0, n_user - 1) u;
ALTER TABLE bench.tokens ADD PRIMARY KEY (u);
ALTER TABLE bench.tokens ADD COLUMN token_hash text;
UPDATE bench.tokens SET token_hash = encode(sha256(convert_to(token, 'UTF8')), 'hex');
INSERT INTO kip.tokens (id, user_id, name, token_hash, created_at, last_used_at)
SELECT bench.id('token', u), bench.id('user', u), 'bench', token_hash, now() - interval '1 year', now()
  FROM bench.tokens;

\echo gen: plans, participants, consents
INSERT INTO kip.plans (id, version, status, owner_organisation_id, coordinator_participant_id,
                       citizen_name, citizen_cpr, citizen_birth_date, citizen_phone, citizen_address,
                       citizen_preferred_language, reason, goals, needs, follow_up_date, created_by,
                       created_at, updated_at, closed_at, close_reason)
SELECT bench.id('plan', j), 1 + (bench.h(j, 8) % 12)::int, st, bench.id('org', j % n_org),
       bench.id('pa', j * 16 + 1),
       (ARRAY['Jens', 'Mette', 'Lars', 'Anne', 'Søren', 'Hanne', 'Niels', 'Kirsten', 'Ole', 'Birgit'])[1 + bench.h(j, 9) % 10]
         || ' ' || (ARRAY['Hansen', 'Nielsen', 'Jensen', 'Pedersen', 'Andersen', 'Christensen', 'Larsen',
                          'Sørensen', 'Rasmussen', 'Jørgensen', 'Ærø'])[1 + bench.h(j, 10) % 11],
       to_char(bd, 'DDMMYY') || '-****', bd,
       '+45 ' || (20000000 + bench.h(j, 12) % 70000000), 'Benchvej ' || (1 + j % 200) || ', 2650 Hvidovre', 'da',
       'Many admissions; alcohol, housing and depression. Plan ' || j,
       jsonb_build_array(
         jsonb_build_object('id', bench.id('goal', j * 2), 'text', 'Stable housing within six months',
                            'owner', 'citizen', 'status', 'open', 'sub_goals',
                            jsonb_build_array(jsonb_build_object('id', bench.id('sub', j), 'text',
                                              'Apply for housing support', 'status', 'open'))),
         jsonb_build_object('id', bench.id('goal', j * 2 + 1), 'text', 'Reduce alcohol use',
                            'owner', 'team', 'status', 'open', 'sub_goals', '[]'::jsonb)),
       '{"substances": {"relevant": true, "note": "daily use"}, "housing": {"relevant": true, "note": null},
         "mental_health": {"relevant": true, "note": null}}'::jsonb,
       CASE WHEN st = 'active' THEN today + (bench.h(j, 13) % 120)::int - 20 END,
       bench.id('user', j % n_org), ca, ca + interval '2 days',
       CASE WHEN st = 'closed' THEN ca + interval '200 days' END,
       CASE WHEN st = 'closed' THEN 'completed' END
  FROM bench.params, generate_series(0, n_plan - 1) j,
       LATERAL (SELECT bench.plan_status(j) AS st, bench.plan_created(j) AS ca,
                       date '1950-01-01' + (bench.h(j, 14) % 20000)::int AS bd) x;

-- The CPR numbers themselves wait in kip.cpr_pending: only kipd has the key,
-- and it seals them when it starts (schema/010_cpr.sql). Until then
-- kip.plans holds the masks.
INSERT INTO kip.cpr_pending (plan_id, cpr)
SELECT bench.id('plan', j), to_char(bd, 'DDMMYY') || '-' || lpad((bench.h(j, 11) % 4000)::text, 4, '0')
  FROM bench.params, generate_series(0, n_plan - 1) j,
       LATERAL (SELECT date '1950-01-01' + (bench.h(j, 14) % 20000)::int AS bd) x;

INSERT INTO kip.participants (id, plan_id, kind, user_id, name, role, organisation_id, email,
                              default_attendance, joined_at)
SELECT bench.id('pa', j * 16 + s), bench.id('plan', j),
       CASE WHEN s = 0 THEN 'citizen' ELSE 'professional' END,
       CASE WHEN s = 0 THEN NULL ELSE bench.id('user', uu) END,
       CASE WHEN s = 0 THEN 'Citizen ' || j ELSE 'Bench User ' || uu END,
       CASE WHEN s = 0 THEN 'citizen' WHEN s = 1 THEN 'social_nurse'
            ELSE (ARRAY['caseworker', 'jobcenter_caseworker', 'addiction_counsellor', 'psychiatry',
                        'general_practitioner', 'support_contact_person'])[1 + (j + s) % 6] END,
       CASE WHEN s = 0 THEN NULL ELSE bench.id('org', uu % n_org) END,
       CASE WHEN s = 0 THEN NULL ELSE 'u' || uu || '@bench.example' END,
       (ARRAY['in_person', 'phone', 'video'])[1 + (j + s) % 3],
       bench.plan_created(j) + make_interval(mins => s)
  FROM bench.params, generate_series(0, n_plan - 1) j, generate_series(0, bench.k(j) - 1) s,
       LATERAL (SELECT CASE WHEN s = 0 THEN NULL ELSE bench.slot_user(j, s) END AS uu) x;

INSERT INTO kip.coordinator_history (plan_id, participant_id, started_at, changed_by)
SELECT p.id, p.coordinator_participant_id, p.created_at, p.created_by FROM kip.plans p;

INSERT INTO kip.consents (id, plan_id, kip_consent, contact_organisation_ids, relatives_allowed, form,
                          given_at, recorded_by, review_by, created_at)
SELECT md5('consent:' || p.id)::uuid, p.id, true, o.orgs, false, 'verbal',
       p.created_at + interval '1 day', p.created_by, (p.created_at + interval '1 year')::date,
       p.created_at + interval '1 day'
  FROM kip.plans p
  JOIN (SELECT plan_id, array_agg(DISTINCT organisation_id) AS orgs FROM kip.participants
         WHERE kind = 'professional' GROUP BY plan_id) o ON o.plan_id = p.id
 WHERE p.status IN ('active', 'closed');

\echo gen: actions
-- Status: closed plans' actions are done (80%) or cancelled; drafts' are open;
-- otherwise 35% open, 15% in progress, 40% done, 10% cancelled. Due dates
-- spread from 90 days ago to 150 days ahead (so about a third of the open
-- ones are overdue). Busy caseworkers (slot 2 of 10% of plans) get hundreds.
INSERT INTO kip.actions (id, plan_id, version, title, description, area, responsible_participant_id,
                         due_date, status, created_by, created_at, updated_at, completed_at)
SELECT bench.id('action', i), bench.id('plan', j), CASE WHEN st = 'open' THEN 1 ELSE 2 END,
       (ARRAY['Apply for housing support', 'Book a GP appointment', 'Contact the jobcentre',
              'Start addiction treatment', 'Budget meeting', 'Follow up on medication'])[1 + bench.h(i, 21) % 6]
         || ' #' || i,
       CASE WHEN i % 3 = 0 THEN 'Agreed at the KIP meeting' END,
       (ARRAY['substances', 'somatic_health', 'mental_health', 'housing', 'finances', 'employment',
              'crime', 'family_children', 'network', 'other'])[1 + bench.h(i, 22) % 10],
       bench.id('pa', j * 16 + (bench.h(i, 23) % bench.k(j))), due, st, bench.id('user', j % n_org),
       ca, ca + interval '1 day', CASE WHEN st = 'done' THEN ca + interval '1 day' END
  FROM bench.params, generate_series(0, n_action - 1) i,
       LATERAL (SELECT bench.h(i, 20) % n_plan AS j) jj,
       LATERAL (SELECT bench.plan_status(j) AS ps,
                       least(bench.plan_created(j) + make_interval(days => (bench.h(i, 24) % 60)::int), now()) AS ca,
                       today - 90 + (bench.h(i, 25) % 240)::int AS due,
                       bench.h(i, 26) % 100 AS x) y,
       LATERAL (SELECT CASE WHEN ps = 'closed' THEN CASE WHEN x < 80 THEN 'done' ELSE 'cancelled' END
                            WHEN ps = 'draft' THEN 'open'
                            WHEN x < 35 THEN 'open' WHEN x < 50 THEN 'in_progress'
                            WHEN x < 90 THEN 'done' ELSE 'cancelled' END AS st) z;

\echo gen: history and audit
INSERT INTO kip.history (plan_id, at, user_id, resource, resource_id, operation, field, before, after)
SELECT p.id, p.created_at, p.created_by, 'plan', p.id, 'create', f.field, NULL, f.val
  FROM kip.plans p, LATERAL (VALUES ('status', to_jsonb('draft'::text)),
                                    ('citizen.name', to_jsonb(p.citizen_name)),
                                    ('citizen.cpr', to_jsonb(kip.cpr_mask(p.citizen_cpr))),
                                    ('reason', to_jsonb(p.reason))) f(field, val);
INSERT INTO kip.history (plan_id, at, user_id, resource, resource_id, operation, field, before, after)
SELECT pa.plan_id, pa.joined_at, NULL, 'participant', pa.id, 'create', f.field, NULL, f.val
  FROM kip.participants pa, LATERAL (VALUES ('kind', to_jsonb(pa.kind)), ('role', to_jsonb(pa.role))) f(field, val);
INSERT INTO kip.history (plan_id, at, user_id, resource, resource_id, operation, field, before, after)
SELECT a.plan_id, a.created_at, a.created_by, 'action', a.id, 'create', f.field, NULL, f.val
  FROM kip.actions a, LATERAL (VALUES ('title', to_jsonb(a.title)), ('status', to_jsonb('open'::text)),
                                      ('responsible_participant_id', to_jsonb(a.responsible_participant_id))) f(field, val);
INSERT INTO kip.history (plan_id, at, user_id, resource, resource_id, operation, field, before, after)
SELECT a.plan_id, a.updated_at, a.created_by, 'action', a.id, 'update', 'status', to_jsonb('open'::text),
       to_jsonb(a.status)
  FROM kip.actions a WHERE a.status <> 'open';
INSERT INTO kip.audit (at, user_id, organisation_id, action, plan_id, resource)
SELECT p.created_at, p.created_by, p.owner_organisation_id, 'create', p.id, 'plan' FROM kip.plans p;
INSERT INTO kip.audit (at, user_id, organisation_id, action, plan_id, resource)
SELECT a.created_at, a.created_by, NULL, 'create', a.plan_id, 'action' FROM kip.actions a;
INSERT INTO kip.audit (at, user_id, organisation_id, action, plan_id, resource)
SELECT p.updated_at + make_interval(days => r), p.created_by, p.owner_organisation_id, 'read', p.id, 'plan'
  FROM kip.plans p, generate_series(1, 3) r;
