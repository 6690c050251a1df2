-- 24_stats.sql: activity statistics and quality indicators
-- (daemon/api/stats.c, docs/statistics.md).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.
--
-- kip_api.stats answers the raw counts of every cell. kipd (api/stats.c)
-- then suppresses small cells and their complements before anything leaves
-- the process; this file never decides what is shown.

-- The group a fact falls in: its Copenhagen month ("2026-03") or quarter
-- ("2026-Q1") for a time grouping, else the plan owner's id or sector.
CREATE FUNCTION kip.stats_key(p_group_by text, p_at timestamp with time zone, p_org uuid, p_sector text)
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  SELECT CASE p_group_by
           WHEN 'month' THEN to_char(p_at AT TIME ZONE 'Europe/Copenhagen', 'YYYY-MM')
           WHEN 'quarter' THEN to_char(p_at AT TIME ZONE 'Europe/Copenhagen', 'YYYY-"Q"Q')
           WHEN 'organisation' THEN p_org::text
           ELSE p_sector
         END
$function$;

-- The responsible party's sector for the actions table: the sector of the
-- participant's organisation; a citizen or relative without one counts as
-- "citizen" or "relative", any other participant without one as "none".
CREATE FUNCTION kip.stats_party_sector(p_kind text, p_sector text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT coalesce(p_sector, CASE WHEN p_kind IN ('citizen', 'relative') THEN p_kind ELSE 'none' END)
$function$;

-- Bring the fact tables (schema/migrations/019_stats.sql) up to date: the
-- plans written since their facts were made (plans.updated_at moves with
-- every write to a plan or its parts), and plans without facts, at most
-- p_limit of them, least recently written first, get their rows deleted and
-- made again from the live tables. The daily pass calls it; migration 019
-- made the first fill of an upgraded database. A row's
-- refreshed_at is a minute before the refresh, so that a write whose
-- transaction began before it and committed after it is seen next time.
-- Returns the number of plans refreshed.
CREATE FUNCTION kip.stats_refresh(p_limit integer DEFAULT 2000)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_plans uuid[];
  v_mark timestamptz := now() - interval '1 minute';
BEGIN
  PERFORM pg_advisory_xact_lock(7305872417);
  SELECT coalesce(array_agg(id), '{}') INTO v_plans FROM (
    SELECT p.id FROM kip.plans p LEFT JOIN kip.stats_plans sp ON sp.plan_id = p.id
     WHERE sp.plan_id IS NULL OR p.updated_at >= sp.refreshed_at
     ORDER BY p.updated_at, p.id LIMIT p_limit) d;
  DELETE FROM kip.stats_actions WHERE plan_id = ANY (v_plans);
  DELETE FROM kip.stats_meetings WHERE plan_id = ANY (v_plans);
  DELETE FROM kip.stats_plans WHERE plan_id = ANY (v_plans);

  -- Each statement starts from the plans' ids and reaches their rows by
  -- the plan_id indexes.
  INSERT INTO kip.stats_plans (plan_id, org, sector, person, started, closed_at, close_reason,
                               with_gp, with_jobcenter, with_addiction, refreshed_at)
  SELECT p.id, p.owner_organisation_id, o.sector, coalesce(p.citizen_cpr_hmac, p.id::text),
         c.started, p.closed_at, p.close_reason,
         coalesce(pa.gp, false), coalesce(pa.jobcenter, false), coalesce(pa.addiction, false), v_mark
    FROM unnest(v_plans) d(id)
    JOIN kip.plans p ON p.id = d.id
    JOIN kip.organisations o ON o.id = p.owner_organisation_id
    LEFT JOIN LATERAL (SELECT min(x.given_at) AS started FROM kip.consents x
                        WHERE x.plan_id = p.id AND x.kip_consent) c ON true
    LEFT JOIN LATERAL (
      SELECT bool_or(x.role = 'general_practitioner' OR po.sector = 'general_practice') AS gp,
             bool_or(x.role = 'jobcenter_caseworker' OR po.sector = 'municipality_jobcenter') AS jobcenter,
             bool_or(x.role = 'addiction_counsellor' OR po.sector = 'municipality_addiction') AS addiction
        FROM kip.participants x LEFT JOIN kip.organisations po ON po.id = x.organisation_id
       WHERE x.plan_id = p.id AND x.kind = 'professional') pa ON true;

  INSERT INTO kip.stats_meetings (meeting_id, plan_id, org, sector, starts_at, ends_at, status,
                                  citizen_attended, first_held, days_from_consent,
                                  days_from_previous)
  SELECT m.id, m.plan_id, sp.org, sp.sector, m.starts_at, m.starts_at + m.duration_minutes * interval '1 minute', m.status,
         coalesce(att.attended, false),
         m.status = 'held' AND m.previous IS NULL,
         CASE WHEN m.status = 'held' AND m.previous IS NULL AND sp.started IS NOT NULL
                   AND kip.today(sp.started) <= kip.today(m.starts_at)
              THEN kip.today(m.starts_at) - kip.today(sp.started) END,
         CASE WHEN m.status = 'held' THEN kip.today(m.starts_at) - kip.today(m.previous) END
    FROM (SELECT x.*, CASE WHEN x.status = 'held'
                           THEN lag(x.starts_at) OVER (PARTITION BY x.plan_id, x.status = 'held'
                                                       ORDER BY x.starts_at, x.id) END AS previous
            FROM unnest(v_plans) d(id) JOIN kip.meetings x ON x.plan_id = d.id) m
    JOIN kip.stats_plans sp ON sp.plan_id = m.plan_id
    LEFT JOIN LATERAL (
      SELECT bool_or((a->>'attended')::boolean) AS attended
        FROM kip.meeting_outcomes mo
        CROSS JOIN jsonb_array_elements(mo.attendance) a
        JOIN kip.participants cp ON cp.id = (a->>'participant_id')::uuid AND cp.kind = 'citizen'
       WHERE mo.meeting_id = m.id) att ON true;

  INSERT INTO kip.stats_actions (action_id, plan_id, org, sector, area, party_sector, due_date, status,
                                 completed_on)
  SELECT a.id, a.plan_id, sp.org, sp.sector, a.area, kip.stats_party_sector(rp.kind, ro.sector),
         a.due_date, a.status, kip.today(a.completed_at)
    FROM unnest(v_plans) d(id)
    JOIN kip.stats_plans sp ON sp.plan_id = d.id
    JOIN kip.actions a ON a.plan_id = d.id
    JOIN kip.participants rp ON rp.id = a.responsible_participant_id
    LEFT JOIN kip.organisations ro ON ro.id = rp.organisation_id
   WHERE a.due_date IS NOT NULL;

  UPDATE kip.stats_state SET refreshed_at = now();
  RETURN cardinality(v_plans);
END
$function$;

-- GET /v1/stats. Query (checked by kipd): from, to (dates, inclusive,
-- Copenhagen days; from <= to, at most 1,827 days), organisation (uuid),
-- group_by (month | quarter | organisation | sector; default month).
-- A coordinator sees their own organisation only (another one: 403); an
-- analyst sees any organisation, or all of them without `organisation`.
-- Nobody else (403). One audit row stats.read, with no plan.
--
-- Body: {from, to, group_by, organisation: {id, name, sector} | null,
-- as_of (today), groups: [{key, label}], activity: [row], closed: [row],
-- actions_by_area: [row], actions_by_sector: [row]}, every table's rows in
-- order and its total row last (key null). The definitions of every column
-- are in docs/statistics.md.
CREATE FUNCTION kip_api.stats(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_today date := kip.today();
  v_to date := coalesce((p_query->>'to')::date, v_today);
  v_from date := coalesce((p_query->>'from')::date, (v_to - interval '1 year')::date + 1);
  v_group_by text := coalesce(p_query->>'group_by', 'month');
  v_org uuid := (p_query->>'organisation')::uuid;
  v_lo timestamptz := v_from::timestamp AT TIME ZONE 'Europe/Copenhagen';
  v_hi timestamptz := (v_to + 1)::timestamp AT TIME ZONE 'Europe/Copenhagen';
  v_org_doc jsonb;
  v_body jsonb;
BEGIN
  IF u.roles && ARRAY['analyst'] THEN
    NULL;
  ELSIF u.roles && ARRAY['coordinator'] THEN
    IF v_org IS NOT NULL AND v_org <> u.organisation_id THEN
      PERFORM kip.fail(403, 'forbidden', 'organisation',
                       'a coordinator sees the statistics of their own organisation only');
    END IF;
    v_org := u.organisation_id;
  ELSE
    PERFORM kip.fail(403, 'forbidden', 'Authorization', 'the statistics are for coordinators and analysts');
  END IF;
  IF v_org IS NOT NULL THEN
    SELECT jsonb_build_object('id', o.id, 'name', o.name, 'sector', o.sector) INTO v_org_doc
      FROM kip.organisations o WHERE o.id = v_org;
    IF v_org_doc IS NULL THEN
      PERFORM kip.fail(422, 'not_found', 'organisation', 'no such organisation');
    END IF;
  END IF;

  WITH
  plans AS (
    SELECT sp.*, o.name AS org_name FROM kip.stats_plans sp JOIN kip.organisations o ON o.id = sp.org
     WHERE (v_org IS NULL OR sp.org = v_org)
  ),
  -- The groups, in order, each with its span; the total row last (key null).
  groups AS (
    SELECT row_number() OVER (ORDER BY g.ord, g.label, g.key) AS ord, g.key, g.label, g.lo, g.hi
      FROM (
        SELECT 0 AS ord, to_char(m, 'YYYY-MM') AS key, to_char(m, 'YYYY-MM') AS label,
               greatest(v_lo, m::timestamp AT TIME ZONE 'Europe/Copenhagen') AS lo,
               least(v_hi, (m + interval '1 month')::timestamp AT TIME ZONE 'Europe/Copenhagen') AS hi
          FROM generate_series(date_trunc('month', v_from::timestamp), v_to::timestamp, interval '1 month') m
         WHERE v_group_by = 'month'
        UNION ALL
        SELECT 0, to_char(q, 'YYYY-"Q"Q'), to_char(q, 'YYYY-"Q"Q'),
               greatest(v_lo, q::timestamp AT TIME ZONE 'Europe/Copenhagen'),
               least(v_hi, (q + interval '3 months')::timestamp AT TIME ZONE 'Europe/Copenhagen')
          FROM generate_series(date_trunc('quarter', v_from::timestamp), v_to::timestamp, interval '3 months') q
         WHERE v_group_by = 'quarter'
        UNION ALL
        SELECT DISTINCT 0, pl.org::text, pl.org_name, v_lo, v_hi
          FROM plans pl WHERE v_group_by = 'organisation'
        UNION ALL
        SELECT DISTINCT 0, pl.sector, pl.sector, v_lo, v_hi
          FROM plans pl WHERE v_group_by = 'sector'
        UNION ALL
        SELECT 1, NULL, NULL, v_lo, v_hi
      ) g
  ),
  -- Plans active at some time of a group's span: started (first consent)
  -- before its end and not closed before its start; for an organisation or
  -- sector group, owned there.
  active AS (
    SELECT g.key, count(DISTINCT pl.person) AS citizens_active, count(*) AS plans_active,
           count(*) FILTER (WHERE pl.started >= g.lo) AS plans_started,
           count(*) FILTER (WHERE pl.with_gp) AS plans_with_gp,
           count(*) FILTER (WHERE pl.with_jobcenter) AS plans_with_jobcenter,
           count(*) FILTER (WHERE pl.with_addiction) AS plans_with_addiction
      FROM groups g
      JOIN plans pl ON pl.started < g.hi AND (pl.closed_at IS NULL OR pl.closed_at >= g.lo)
                   AND (g.key IS NULL OR v_group_by IN ('month', 'quarter')
                        OR g.key = kip.stats_key(v_group_by, NULL, pl.org, pl.sector))
     GROUP BY g.key
  ),
  -- Meetings by their start.
  meetings AS (
    SELECT kip.stats_key(v_group_by, m.starts_at, m.org, m.sector) AS key, m.*
      FROM kip.stats_meetings m
     WHERE m.starts_at >= v_lo AND m.starts_at < v_hi AND (v_org IS NULL OR m.org = v_org)
  ),
  meeting_counts AS (
    SELECT m.key,
           count(*) FILTER (WHERE m.status = 'held') AS meetings_held,
           count(*) FILTER (WHERE m.status = 'cancelled') AS meetings_cancelled,
           count(*) FILTER (WHERE m.status = 'planned' AND m.ends_at < now()) AS meetings_outcome_overdue,
           count(*) FILTER (WHERE m.status = 'held' AND m.citizen_attended) AS meetings_citizen_attended,
           count(m.days_from_consent) AS first_meeting_plans,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.days_from_consent) AS first_meeting_median_days,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY m.days_from_consent) AS first_meeting_p90_days,
           count(m.days_from_previous) AS meeting_intervals,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY m.days_from_previous) AS meeting_interval_median_days
      FROM meetings m
     GROUP BY GROUPING SETS ((m.key), ())
  ),
  -- Actions due in the period whose outcome is settled: done, or due
  -- before today. On time: done on or before the due date (Copenhagen).
  actions AS (
    SELECT kip.stats_key(v_group_by, a.due_date::timestamp AT TIME ZONE 'Europe/Copenhagen', a.org, a.sector) AS key,
           a.area, a.party_sector, (a.status = 'done' AND a.completed_on <= a.due_date) AS on_time
      FROM kip.stats_actions a
     WHERE a.due_date >= v_from AND a.due_date <= v_to AND (v_org IS NULL OR a.org = v_org)
       AND a.status <> 'cancelled' AND (a.status = 'done' OR a.due_date < v_today)
  ),
  action_counts AS (
    SELECT x.key, count(*) AS actions_due, count(*) FILTER (WHERE x.on_time) AS actions_on_time
      FROM actions x GROUP BY GROUPING SETS ((x.key), ())
  ),
  closed AS (
    SELECT pl.key,
           count(*) AS closed,
           count(*) FILTER (WHERE pl.close_reason = 'completed') AS completed,
           count(*) FILTER (WHERE pl.close_reason = 'transferred') AS transferred,
           count(*) FILTER (WHERE pl.close_reason = 'declined') AS declined,
           count(*) FILTER (WHERE pl.close_reason = 'consent_withdrawn') AS consent_withdrawn,
           count(*) FILTER (WHERE pl.close_reason = 'deceased') AS deceased,
           count(*) FILTER (WHERE pl.close_reason = 'moved') AS moved,
           count(*) FILTER (WHERE pl.close_reason = 'other') AS other
      FROM (SELECT kip.stats_key(v_group_by, x.closed_at, x.org, x.sector) AS key, x.*
              FROM plans x WHERE x.closed_at >= v_lo AND x.closed_at < v_hi) pl
     GROUP BY GROUPING SETS ((pl.key), ())
  ),
  by_area AS (
    SELECT x.area AS key, count(*) AS actions_due, count(*) FILTER (WHERE x.on_time) AS actions_on_time
      FROM actions x GROUP BY GROUPING SETS ((x.area), ())
  ),
  by_sector AS (
    SELECT x.party_sector AS key, count(*) AS actions_due, count(*) FILTER (WHERE x.on_time) AS actions_on_time
      FROM actions x GROUP BY GROUPING SETS ((x.party_sector), ())
  )
  SELECT jsonb_build_object(
    'groups', (SELECT coalesce(jsonb_agg(jsonb_build_object('key', g.key, 'label', g.label) ORDER BY g.ord), '[]')
                 FROM groups g WHERE g.key IS NOT NULL),
    'activity', (SELECT jsonb_agg(jsonb_build_object(
        'key', g.key, 'label', g.label,
        'meetings_held', coalesce(mc.meetings_held, 0),
        'meetings_cancelled', coalesce(mc.meetings_cancelled, 0),
        'meetings_outcome_overdue', coalesce(mc.meetings_outcome_overdue, 0),
        'meetings_citizen_attended', coalesce(mc.meetings_citizen_attended, 0),
        'citizens_active', coalesce(ac.citizens_active, 0),
        'plans_active', coalesce(ac.plans_active, 0),
        'plans_started', coalesce(ac.plans_started, 0),
        'first_meeting_plans', coalesce(mc.first_meeting_plans, 0),
        'first_meeting_median_days', mc.first_meeting_median_days,
        'first_meeting_p90_days', mc.first_meeting_p90_days,
        'meeting_intervals', coalesce(mc.meeting_intervals, 0),
        'meeting_interval_median_days', mc.meeting_interval_median_days,
        'actions_due', coalesce(at.actions_due, 0),
        'actions_on_time', coalesce(at.actions_on_time, 0),
        'plans_with_gp', coalesce(ac.plans_with_gp, 0),
        'plans_with_jobcenter', coalesce(ac.plans_with_jobcenter, 0),
        'plans_with_addiction', coalesce(ac.plans_with_addiction, 0)) ORDER BY g.ord)
        FROM groups g
        LEFT JOIN active ac ON ac.key IS NOT DISTINCT FROM g.key
        LEFT JOIN meeting_counts mc ON mc.key IS NOT DISTINCT FROM g.key
        LEFT JOIN action_counts at ON at.key IS NOT DISTINCT FROM g.key),
    'closed', (SELECT jsonb_agg(jsonb_build_object(
        'key', g.key, 'label', g.label,
        'completed', coalesce(cl.completed, 0), 'transferred', coalesce(cl.transferred, 0),
        'declined', coalesce(cl.declined, 0), 'consent_withdrawn', coalesce(cl.consent_withdrawn, 0),
        'deceased', coalesce(cl.deceased, 0), 'moved', coalesce(cl.moved, 0),
        'other', coalesce(cl.other, 0), 'closed', coalesce(cl.closed, 0)) ORDER BY g.ord)
        FROM groups g LEFT JOIN closed cl ON cl.key IS NOT DISTINCT FROM g.key),
    'actions_by_area', (SELECT jsonb_agg(jsonb_build_object(
        'key', k.key, 'label', k.key, 'actions_due', coalesce(b.actions_due, 0),
        'actions_on_time', coalesce(b.actions_on_time, 0)) ORDER BY k.n)
        FROM (SELECT key, n FROM unnest(ARRAY['substances', 'somatic_health', 'mental_health', 'housing',
                'finances', 'employment', 'crime', 'family_children', 'network', 'other', NULL])
                WITH ORDINALITY AS t(key, n)) k
        LEFT JOIN by_area b ON b.key IS NOT DISTINCT FROM k.key),
    'actions_by_sector', (SELECT jsonb_agg(jsonb_build_object(
        'key', k.key, 'label', k.key, 'actions_due', coalesce(b.actions_due, 0),
        'actions_on_time', coalesce(b.actions_on_time, 0)) ORDER BY k.n)
        FROM (SELECT key, n FROM unnest(ARRAY['region_hospital', 'region_psychiatry', 'municipality_jobcenter',
                'municipality_social', 'municipality_addiction', 'general_practice', 'civil_society',
                'private', 'other', 'citizen', 'relative', 'none', NULL])
                WITH ORDINALITY AS t(key, n)) k
        LEFT JOIN by_sector b ON b.key IS NOT DISTINCT FROM k.key),
    'refreshed_at', (SELECT refreshed_at FROM kip.stats_state))
  INTO v_body;

  PERFORM kip.audit('stats.read', NULL, 'stats');
  RETURN kip.ok(jsonb_build_object('from', v_from, 'to', v_to, 'group_by', v_group_by,
                                   'organisation', v_org_doc, 'as_of', v_today) || v_body);
END
$function$;
