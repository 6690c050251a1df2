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
  v_table text;
BEGIN
  PERFORM pg_advisory_xact_lock(7305872419);
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

  -- The summary rows that count nothing any more (see kip.stats_sum_trigger).
  FOREACH v_table IN ARRAY ARRAY['stats_sum_plans', 'stats_owners', 'stats_persons', 'stats_sum_meetings',
                                 'stats_sum_days', 'stats_sum_days_sector', 'stats_sum_actions',
                                 'stats_sum_action_parts'] LOOP
    EXECUTE format('DELETE FROM kip.%I t WHERE %s', v_table, (kip.stats_sum_shape(v_table)).empty);
  END LOOP;

  UPDATE kip.stats_state SET refreshed_at = now();
  RETURN cardinality(v_plans);
END
$function$;

-- The counts of kip.stats_sum_plans over r (kip.stats_sum_sql): its own
-- function, since kip.stats_owners' totals are the same counts summed over
-- the months.
CREATE FUNCTION kip.stats_sum_plans_sql()
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT $q$
    SELECT org, sector, month, sum(started)::int AS started, sum(started_gp)::int AS started_gp,
           sum(started_jobcenter)::int AS started_jobcenter, sum(started_addiction)::int AS started_addiction,
           sum(ended)::int AS ended, sum(ended_gp)::int AS ended_gp, sum(ended_jobcenter)::int AS ended_jobcenter,
           sum(ended_addiction)::int AS ended_addiction, sum(closed)::int AS closed,
           sum(completed)::int AS completed, sum(transferred)::int AS transferred, sum(declined)::int AS declined,
           sum(consent_withdrawn)::int AS consent_withdrawn, sum(deceased)::int AS deceased,
           sum(moved)::int AS moved, sum(other)::int AS other
      FROM (
        SELECT r.org, r.sector, date_trunc('month', r.started AT TIME ZONE 'Europe/Copenhagen')::date AS month,
               r.sgn AS started, r.sgn * r.with_gp::int AS started_gp, r.sgn * r.with_jobcenter::int AS started_jobcenter,
               r.sgn * r.with_addiction::int AS started_addiction, 0 AS ended, 0 AS ended_gp, 0 AS ended_jobcenter,
               0 AS ended_addiction, 0 AS closed, 0 AS completed, 0 AS transferred, 0 AS declined,
               0 AS consent_withdrawn, 0 AS deceased, 0 AS moved, 0 AS other
          FROM r
         WHERE r.started IS NOT NULL
           AND (r.closed_at IS NULL OR (r.closed_at AT TIME ZONE 'Europe/Copenhagen')::date
                                       >= (r.started AT TIME ZONE 'Europe/Copenhagen')::date)
        UNION ALL
        SELECT r.org, r.sector, date_trunc('month', r.closed_at AT TIME ZONE 'Europe/Copenhagen')::date,
               0, 0, 0, 0, r.sgn * n.normal, r.sgn * n.normal * r.with_gp::int,
               r.sgn * n.normal * r.with_jobcenter::int, r.sgn * n.normal * r.with_addiction::int,
               r.sgn, r.sgn * (r.close_reason = 'completed')::int, r.sgn * (r.close_reason = 'transferred')::int,
               r.sgn * (r.close_reason = 'declined')::int, r.sgn * (r.close_reason = 'consent_withdrawn')::int,
               r.sgn * (r.close_reason = 'deceased')::int, r.sgn * (r.close_reason = 'moved')::int,
               r.sgn * (r.close_reason = 'other')::int
          FROM r
         CROSS JOIN LATERAL (SELECT coalesce(r.started IS NOT NULL
                                    AND (r.closed_at AT TIME ZONE 'Europe/Copenhagen')::date
                                        >= (r.started AT TIME ZONE 'Europe/Copenhagen')::date, false)::int AS normal) n
         WHERE r.closed_at IS NOT NULL
      ) c
     GROUP BY org, sector, month $q$
$function$;

-- The summary of the fact tables (schema/migrations/020_stats_summary.sql):
-- statement triggers on the three fact tables add what a statement
-- inserted and take away what it deleted, in the same transaction, so the
-- summary always equals a recount of the facts (kip.stats_sum_check). The
-- counts of each summary, over a relation r (the rows of a fact table with
-- sgn +1 or -1), are kip.stats_sum_sql(table); the migration's first fill
-- is the same counts with sgn 1 over the whole fact table.
CREATE FUNCTION kip.stats_sum_sql(p_table text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE p_table
  WHEN 'stats_sum_plans' THEN kip.stats_sum_plans_sql()
  WHEN 'stats_sum_meetings' THEN $q$
    SELECT r.org, r.sector, date_trunc('month', r.starts_at AT TIME ZONE 'Europe/Copenhagen')::date AS month,
           coalesce(sum(r.sgn) FILTER (WHERE r.status = 'held'), 0)::int AS held,
           coalesce(sum(r.sgn) FILTER (WHERE r.status = 'cancelled'), 0)::int AS cancelled,
           coalesce(sum(r.sgn) FILTER (WHERE r.status = 'held' AND r.citizen_attended), 0)::int AS attended
      FROM r
     WHERE r.status IN ('held', 'cancelled')
     GROUP BY 1, 2, 3 $q$
  WHEN 'stats_sum_days' THEN $q$
    SELECT r.org, r.sector, date_trunc('month', r.starts_at AT TIME ZONE 'Europe/Copenhagen')::date AS month,
           d.kind, d.days, sum(r.sgn)::int AS n
      FROM r
     CROSS JOIN LATERAL (VALUES ('first', r.days_from_consent), ('interval', r.days_from_previous)) d(kind, days)
     WHERE d.days IS NOT NULL
     GROUP BY 1, 2, 3, 4, 5 $q$
  WHEN 'stats_sum_days_sector' THEN $q$
    SELECT r.sector, date_trunc('month', r.starts_at AT TIME ZONE 'Europe/Copenhagen')::date AS month,
           d.kind, d.days, sum(r.sgn)::int AS n
      FROM r
     CROSS JOIN LATERAL (VALUES ('first', r.days_from_consent), ('interval', r.days_from_previous)) d(kind, days)
     WHERE d.days IS NOT NULL
     GROUP BY 1, 2, 3, 4 $q$
  WHEN 'stats_sum_actions' THEN $q$
    SELECT r.org, r.sector, date_trunc('month', r.due_date)::date AS month,
           coalesce(sum(r.sgn) FILTER (WHERE r.status = 'done'), 0)::int AS done,
           coalesce(sum(r.sgn) FILTER (WHERE r.status = 'done' AND r.completed_on <= r.due_date), 0)::int AS on_time,
           coalesce(sum(r.sgn) FILTER (WHERE r.status <> 'done'), 0)::int AS open
      FROM r
     WHERE r.status <> 'cancelled'
     GROUP BY 1, 2, 3 $q$
  WHEN 'stats_sum_action_parts' THEN $q$
    SELECT date_trunc('month', r.due_date)::date AS month, r.area, r.party_sector,
           coalesce(sum(r.sgn) FILTER (WHERE r.status = 'done'), 0)::int AS done,
           coalesce(sum(r.sgn) FILTER (WHERE r.status = 'done' AND r.completed_on <= r.due_date), 0)::int AS on_time,
           coalesce(sum(r.sgn) FILTER (WHERE r.status <> 'done'), 0)::int AS open
      FROM r
     WHERE r.status <> 'cancelled'
     GROUP BY 1, 2, 3 $q$
  -- Per owner: its plans, and the all-time sums of stats_sum_plans' started
  -- and ended counts (migration 025).
  WHEN 'stats_owners' THEN $q$
    SELECT o.org, o.sector, sum(o.plans)::int AS plans, sum(o.started)::int AS started,
           sum(o.started_gp)::int AS started_gp, sum(o.started_jobcenter)::int AS started_jobcenter,
           sum(o.started_addiction)::int AS started_addiction, sum(o.ended)::int AS ended,
           sum(o.ended_gp)::int AS ended_gp, sum(o.ended_jobcenter)::int AS ended_jobcenter,
           sum(o.ended_addiction)::int AS ended_addiction
      FROM (SELECT r.org, r.sector, r.sgn AS plans, 0 AS started, 0 AS started_gp, 0 AS started_jobcenter,
                   0 AS started_addiction, 0 AS ended, 0 AS ended_gp, 0 AS ended_jobcenter, 0 AS ended_addiction
              FROM r
            UNION ALL
            SELECT p.org, p.sector, 0, p.started, p.started_gp, p.started_jobcenter, p.started_addiction,
                   p.ended, p.ended_gp, p.ended_jobcenter, p.ended_addiction
              FROM ($q$ || kip.stats_sum_plans_sql() || $q$) p) o
     GROUP BY 1, 2 $q$
  WHEN 'stats_persons' THEN $q$
    SELECT r.person, sum(r.sgn)::int AS plans FROM r GROUP BY 1 $q$
  END
$function$;

-- Each summary table: its key columns, its counters, and the condition
-- under which a row counts nothing (it is then deleted).
CREATE FUNCTION kip.stats_sum_shape(p_table text, OUT keys text[], OUT counters text[], OUT empty text)
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT k, c, e FROM (VALUES
    ('stats_sum_plans', ARRAY['org', 'sector', 'month'],
     ARRAY['started', 'started_gp', 'started_jobcenter', 'started_addiction', 'ended', 'ended_gp',
           'ended_jobcenter', 'ended_addiction', 'closed', 'completed', 'transferred', 'declined',
           'consent_withdrawn', 'deceased', 'moved', 'other'],
     't.started = 0 AND t.ended = 0 AND t.closed = 0'),
    ('stats_sum_meetings', ARRAY['org', 'sector', 'month'], ARRAY['held', 'cancelled', 'attended'],
     't.held = 0 AND t.cancelled = 0'),
    ('stats_sum_days', ARRAY['org', 'sector', 'month', 'kind', 'days'], ARRAY['n'], 't.n = 0'),
    ('stats_sum_days_sector', ARRAY['sector', 'month', 'kind', 'days'], ARRAY['n'], 't.n = 0'),
    ('stats_sum_actions', ARRAY['org', 'sector', 'month'], ARRAY['done', 'on_time', 'open'],
     't.done = 0 AND t.open = 0'),
    ('stats_sum_action_parts', ARRAY['month', 'area', 'party_sector'], ARRAY['done', 'on_time', 'open'],
     't.done = 0 AND t.open = 0'),
    ('stats_owners', ARRAY['org', 'sector'],
     ARRAY['plans', 'started', 'started_gp', 'started_jobcenter', 'started_addiction', 'ended', 'ended_gp',
           'ended_jobcenter', 'ended_addiction'],
     't.plans = 0'),
    ('stats_persons', ARRAY['person'], ARRAY['plans'], 't.plans = 0')) v(t, k, c, e)
   WHERE t = p_table
$function$;

-- The statement triggers: add the counts of the rows a statement inserted
-- (sgn +1) and take away those of the rows it deleted (sgn -1). A row that
-- comes to count nothing stays until kip.stats_refresh() deletes such rows
-- at its end (a refresh first takes a plan's counts away, then adds them
-- back). The transition tables old_rows and new_rows are seen only by this
-- function's own (dynamic) SQL.
CREATE FUNCTION kip.stats_sum_trigger()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_source text := CASE TG_OP
    WHEN 'INSERT' THEN 'SELECT n.*, 1 AS sgn FROM new_rows n'
    WHEN 'DELETE' THEN 'SELECT o.*, -1 AS sgn FROM old_rows o'
    ELSE 'SELECT o.*, -1 AS sgn FROM old_rows o UNION ALL SELECT n.*, 1 FROM new_rows n' END;
  v_table text;
  v_counts text;
  sh record;
BEGIN
  FOREACH v_table IN ARRAY CASE TG_TABLE_NAME
      WHEN 'stats_plans' THEN ARRAY['stats_sum_plans', 'stats_owners', 'stats_persons']
      WHEN 'stats_meetings' THEN ARRAY['stats_sum_meetings', 'stats_sum_days', 'stats_sum_days_sector']
      ELSE ARRAY['stats_sum_actions', 'stats_sum_action_parts'] END LOOP
    sh := kip.stats_sum_shape(v_table);
    v_counts := format('WITH r AS (%s) %s', v_source, kip.stats_sum_sql(v_table));
    EXECUTE format('INSERT INTO kip.%I AS t SELECT * FROM (%s) c ON CONFLICT (%s) DO UPDATE SET %s',
                   v_table, v_counts, array_to_string(sh.keys, ', '),
                   (SELECT string_agg(format('%I = t.%I + excluded.%I', c, c, c), ', ')
                      FROM unnest(sh.counters) c));
  END LOOP;
  RETURN NULL;
END
$function$;

CREATE TRIGGER stats_plans_sum_insert AFTER INSERT ON kip.stats_plans
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kip.stats_sum_trigger();
CREATE TRIGGER stats_plans_sum_delete AFTER DELETE ON kip.stats_plans
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kip.stats_sum_trigger();
CREATE TRIGGER stats_plans_sum_update AFTER UPDATE ON kip.stats_plans
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kip.stats_sum_trigger();
CREATE TRIGGER stats_meetings_sum_insert AFTER INSERT ON kip.stats_meetings
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kip.stats_sum_trigger();
CREATE TRIGGER stats_meetings_sum_delete AFTER DELETE ON kip.stats_meetings
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kip.stats_sum_trigger();
CREATE TRIGGER stats_meetings_sum_update AFTER UPDATE ON kip.stats_meetings
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kip.stats_sum_trigger();
CREATE TRIGGER stats_actions_sum_insert AFTER INSERT ON kip.stats_actions
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kip.stats_sum_trigger();
CREATE TRIGGER stats_actions_sum_delete AFTER DELETE ON kip.stats_actions
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kip.stats_sum_trigger();
CREATE TRIGGER stats_actions_sum_update AFTER UPDATE ON kip.stats_actions
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kip.stats_sum_trigger();

-- The rows where a summary table differs from a recount of the facts
-- (none when all is well): {table, row, recount} per difference; rows that
-- count nothing are left out on both sides. For the tests, and for an
-- operator who doubts the figures.
CREATE FUNCTION kip.stats_sum_check()
 RETURNS SETOF jsonb
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_table text;
  v_fact text;
  sh record;
  v_on text;
BEGIN
  FOREACH v_table IN ARRAY ARRAY['stats_sum_plans', 'stats_owners', 'stats_persons', 'stats_sum_meetings',
                                 'stats_sum_days', 'stats_sum_days_sector', 'stats_sum_actions',
                                 'stats_sum_action_parts'] LOOP
    sh := kip.stats_sum_shape(v_table);
    v_fact := CASE WHEN v_table IN ('stats_sum_plans', 'stats_owners', 'stats_persons') THEN 'stats_plans'
                   WHEN v_table IN ('stats_sum_meetings', 'stats_sum_days', 'stats_sum_days_sector') THEN 'stats_meetings'
                   ELSE 'stats_actions' END;
    v_on := (SELECT string_agg(format('t.%I = c.%I', k, k), ' AND ') FROM unnest(sh.keys) k);
    RETURN QUERY EXECUTE format(
      'WITH c AS (SELECT * FROM (WITH r AS (SELECT f.*, 1 AS sgn FROM kip.%I f) %s) x WHERE NOT (%s)), '
      '     t AS (SELECT * FROM kip.%I t WHERE NOT (%s)) '
      'SELECT jsonb_build_object(''table'', %L, ''row'', to_jsonb(t), ''recount'', to_jsonb(c)) '
      '  FROM t FULL JOIN c ON %s WHERE t IS DISTINCT FROM c::kip.%I',
      v_fact, kip.stats_sum_sql(v_table), replace(sh.empty, 't.', 'x.'), v_table, sh.empty, v_table, v_on,
      v_table);
  END LOOP;
END
$function$;

-- The columns of each table of the statistics body, in the order of its
-- rows' arrays (kip.stats_body_summary and kip.stats_body_facts): each row
-- is an array, not an object, so that kipd reads 1,001 rows by organisation
-- without parsing 19 key names in each (docs/performance.md). The last row
-- of each table is its total (key null).
CREATE FUNCTION kip.stats_columns()
 RETURNS json
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT json_build_object(
    'activity', json_build_array('key', 'label', 'meetings_held', 'meetings_cancelled', 'meetings_outcome_overdue',
                                 'meetings_citizen_attended', 'citizens_active', 'plans_active', 'plans_started',
                                 'first_meeting_plans', 'first_meeting_median_days', 'first_meeting_p90_days',
                                 'meeting_intervals', 'meeting_interval_median_days', 'actions_due',
                                 'actions_on_time', 'plans_with_gp', 'plans_with_jobcenter', 'plans_with_addiction'),
    'closed', json_build_array('key', 'label', 'completed', 'transferred', 'declined', 'consent_withdrawn',
                               'deceased', 'moved', 'other', 'closed'),
    'actions_by_area', json_build_array('key', 'label', 'actions_due', 'actions_on_time'),
    'actions_by_sector', json_build_array('key', 'label', 'actions_due', 'actions_on_time'))
$function$;

-- The figures from the fact rows: for one organisation (p_org), where it
-- is an index range over that organisation's rows, and for the tests, which
-- compare kip.stats_body_summary with it. The body of GET /v1/stats without
-- its from, to, group_by, organisation and as_of.
CREATE FUNCTION kip.stats_body_facts(p_from date, p_to date, p_today date, p_group_by text, p_org uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
 SET jit TO off
AS $function$
DECLARE
  v_today date := p_today;
  v_to date := p_to;
  v_from date := p_from;
  v_group_by text := p_group_by;
  v_org uuid := p_org;
  v_lo timestamptz := v_from::timestamp AT TIME ZONE 'Europe/Copenhagen';
  v_hi timestamptz := (v_to + 1)::timestamp AT TIME ZONE 'Europe/Copenhagen';
  v_body jsonb;
BEGIN
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
    'columns', kip.stats_columns(),
    'groups', (SELECT coalesce(jsonb_agg(jsonb_build_object('key', g.key, 'label', g.label) ORDER BY g.ord), '[]')
                 FROM groups g WHERE g.key IS NOT NULL),
    'activity', (SELECT jsonb_agg(jsonb_build_array(
        g.key, g.label,
        coalesce(mc.meetings_held, 0),
        coalesce(mc.meetings_cancelled, 0),
        coalesce(mc.meetings_outcome_overdue, 0),
        coalesce(mc.meetings_citizen_attended, 0),
        coalesce(ac.citizens_active, 0),
        coalesce(ac.plans_active, 0),
        coalesce(ac.plans_started, 0),
        coalesce(mc.first_meeting_plans, 0),
        mc.first_meeting_median_days,
        mc.first_meeting_p90_days,
        coalesce(mc.meeting_intervals, 0),
        mc.meeting_interval_median_days,
        coalesce(at.actions_due, 0),
        coalesce(at.actions_on_time, 0),
        coalesce(ac.plans_with_gp, 0),
        coalesce(ac.plans_with_jobcenter, 0),
        coalesce(ac.plans_with_addiction, 0)) ORDER BY g.ord)
        FROM groups g
        LEFT JOIN active ac ON ac.key IS NOT DISTINCT FROM g.key
        LEFT JOIN meeting_counts mc ON mc.key IS NOT DISTINCT FROM g.key
        LEFT JOIN action_counts at ON at.key IS NOT DISTINCT FROM g.key),
    'closed', (SELECT jsonb_agg(jsonb_build_array(
        g.key, g.label,
        coalesce(cl.completed, 0), coalesce(cl.transferred, 0),
        coalesce(cl.declined, 0), coalesce(cl.consent_withdrawn, 0),
        coalesce(cl.deceased, 0), coalesce(cl.moved, 0),
        coalesce(cl.other, 0), coalesce(cl.closed, 0)) ORDER BY g.ord)
        FROM groups g LEFT JOIN closed cl ON cl.key IS NOT DISTINCT FROM g.key),
    'actions_by_area', (SELECT jsonb_agg(jsonb_build_array(
        k.key, k.key, coalesce(b.actions_due, 0), coalesce(b.actions_on_time, 0)) ORDER BY k.n)
        FROM (SELECT key, n FROM unnest(ARRAY['substances', 'somatic_health', 'mental_health', 'housing',
                'finances', 'employment', 'crime', 'family_children', 'network', 'other', NULL])
                WITH ORDINALITY AS t(key, n)) k
        LEFT JOIN by_area b ON b.key IS NOT DISTINCT FROM k.key),
    'actions_by_sector', (SELECT jsonb_agg(jsonb_build_array(
        k.key, k.key, coalesce(b.actions_due, 0), coalesce(b.actions_on_time, 0)) ORDER BY k.n)
        FROM (SELECT key, n FROM unnest(ARRAY['region_hospital', 'region_psychiatry', 'municipality_jobcenter',
                'municipality_social', 'municipality_addiction', 'general_practice', 'civil_society',
                'private', 'other', 'citizen', 'relative', 'none', NULL])
                WITH ORDINALITY AS t(key, n)) k
        LEFT JOIN by_sector b ON b.key IS NOT DISTINCT FROM k.key),
    'refreshed_at', (SELECT refreshed_at FROM kip.stats_state))
  INTO v_body;
  RETURN v_body;
END
$function$;

-- The figures of every organisation (no `organisation`), from the summary:
-- the body of GET /v1/stats as json (built as json, not jsonb: half the
-- time for 1,001 groups), its header (from, to, group_by, organisation
-- null, as_of) and then the same tables as kip.stats_body_facts for p_org
-- NULL, which the tests compare it with. A whole month of the period that does not hold p_today
-- is read from the summary; the days of the other months (a period's
-- partial first and last month, and today's month, where whether an open
-- action counts depends on the day) from the fact rows. Active plans are
-- not additive over months: a plan counts in every span it is active in.
-- They are counted as S(hi) - C(lo): the plans started before the span's
-- end less those closed before its start (for plans not closed on a day
-- before the one they started, S and C are month sums of the summary up to
-- the cut's month plus the fact rows of that month before the cut); the
-- few plans closed before they started are counted from the facts.
-- Distinct citizens: a citizen with one plan counts once where the plan
-- counts, so citizens_active = plans_active - the active plans of citizens
-- with more than one plan + those citizens counted distinctly from the facts
-- (kip.stats_persons names them).
-- The activity and closed tables are one GROUP BY key over a UNION ALL of
-- the groups and each per-group result; the other per-group results are
-- matched on coalesce(key, '') (no key is ever ''; the total row's key is
-- null). Not IS NOT DISTINCT FROM, which can only be joined by nested
-- loops: with 1,001 groups (by organisation) those took about 1,000,000
-- comparisons per join (docs/performance.md). One generic plan per
-- session (plan_cache_mode): planning this statement for every call took
-- longer than running parts of it. work_mem 1MB: the generic plan expects
-- up to a million rows where there are thousands, and each hash aggregate
-- then zeroes a table as large as work_mem allows (16 MB in the benchmark's
-- cluster; a quarter of the CPU profile was memset and page faults). Every
-- table here has at most some 60,000 groups (five years by organisation).
CREATE FUNCTION kip.stats_body_summary(p_from date, p_to date, p_today date, p_group_by text)
 RETURNS json
 LANGUAGE plpgsql
 STABLE
 SET jit TO off
 SET plan_cache_mode TO force_generic_plan
 SET work_mem TO '1MB'
AS $function$
DECLARE
  v_group_by text := p_group_by;
  v_lo timestamptz := p_from::timestamp AT TIME ZONE 'Europe/Copenhagen';
  v_hi timestamptz := (p_to + 1)::timestamp AT TIME ZONE 'Europe/Copenhagen';
  v_lo_month date := date_trunc('month', p_from::timestamp)::date;
  v_hi_month date := date_trunc('month', (p_to + 1)::timestamp)::date;
  v_body json;
BEGIN
  WITH
  months AS (
    SELECT m::date AS month,
           m::date >= p_from AND (m + interval '1 month')::date <= p_to + 1
             AND NOT (m::date <= p_today AND p_today < (m + interval '1 month')::date) AS whole,
           greatest(m::date, p_from) AS lo_day, least((m + interval '1 month')::date, p_to + 1) AS hi_day
      FROM generate_series(date_trunc('month', p_from::timestamp), p_to::timestamp, interval '1 month') m
  ),
  whole AS (SELECT month FROM months WHERE whole),
  whole_range AS (SELECT min(month) AS first, max(month) AS last FROM whole),
  -- The days read from the facts: [lo_day, hi_day), as Copenhagen times [lo, hi).
  edges AS (
    SELECT lo_day, hi_day, lo_day::timestamp AT TIME ZONE 'Europe/Copenhagen' AS lo,
           hi_day::timestamp AT TIME ZONE 'Europe/Copenhagen' AS hi
      FROM months WHERE NOT whole
  ),
  owners AS (
    SELECT s.org, s.sector, o.name AS org_name
      FROM kip.stats_owners s JOIN kip.organisations o ON o.id = s.org WHERE s.plans > 0
  ),
  groups AS (
    SELECT row_number() OVER (ORDER BY g.ord, g.label, g.key) AS ord, g.key, g.label, g.lo, g.hi
      FROM (
        SELECT 0 AS ord, to_char(m, 'YYYY-MM') AS key, to_char(m, 'YYYY-MM') AS label,
               greatest(v_lo, m::timestamp AT TIME ZONE 'Europe/Copenhagen') AS lo,
               least(v_hi, (m + interval '1 month')::timestamp AT TIME ZONE 'Europe/Copenhagen') AS hi
          FROM generate_series(date_trunc('month', p_from::timestamp), p_to::timestamp, interval '1 month') m
         WHERE v_group_by = 'month'
        UNION ALL
        SELECT 0, to_char(q, 'YYYY-"Q"Q'), to_char(q, 'YYYY-"Q"Q'),
               greatest(v_lo, q::timestamp AT TIME ZONE 'Europe/Copenhagen'),
               least(v_hi, (q + interval '3 months')::timestamp AT TIME ZONE 'Europe/Copenhagen')
          FROM generate_series(date_trunc('quarter', p_from::timestamp), p_to::timestamp, interval '3 months') q
         WHERE v_group_by = 'quarter'
        UNION ALL
        SELECT DISTINCT 0, ow.org::text, ow.org_name, v_lo, v_hi FROM owners ow WHERE v_group_by = 'organisation'
        UNION ALL
        SELECT DISTINCT 0, ow.sector, ow.sector, v_lo, v_hi FROM owners ow WHERE v_group_by = 'sector'
        UNION ALL
        SELECT 1, NULL, NULL, v_lo, v_hi
      ) g
  ),
  -- Each group's span as days and months, and its scope: '*' for every
  -- organisation, else the organisation's id or the sector.
  spans AS (
    SELECT g.key, g.lo, g.hi, (g.lo AT TIME ZONE 'Europe/Copenhagen')::date AS lo_day,
           (g.hi AT TIME ZONE 'Europe/Copenhagen')::date AS hi_day,
           date_trunc('month', g.lo AT TIME ZONE 'Europe/Copenhagen')::date AS lo_month,
           date_trunc('month', g.hi AT TIME ZONE 'Europe/Copenhagen')::date AS hi_month,
           CASE WHEN g.key IS NOT NULL AND v_group_by IN ('organisation', 'sector') THEN g.key ELSE '*' END AS scope
      FROM groups g
  ),
  -- Started and ended plans of every organisation per month, from the
  -- period's first month on, and over all time (kip.stats_owners' totals).
  plan_tail AS (
    SELECT s.month, sum(s.started) AS started, sum(s.started_gp) AS started_gp,
           sum(s.started_jobcenter) AS started_jobcenter, sum(s.started_addiction) AS started_addiction,
           sum(s.ended) AS ended, sum(s.ended_gp) AS ended_gp, sum(s.ended_jobcenter) AS ended_jobcenter,
           sum(s.ended_addiction) AS ended_addiction
      FROM kip.stats_sum_plans s WHERE s.month >= v_lo_month AND (s.started <> 0 OR s.ended <> 0)
     GROUP BY s.month
  ),
  plan_total AS (
    SELECT coalesce(sum(o.started), 0) AS started, coalesce(sum(o.started_gp), 0) AS started_gp,
           coalesce(sum(o.started_jobcenter), 0) AS started_jobcenter,
           coalesce(sum(o.started_addiction), 0) AS started_addiction, coalesce(sum(o.ended), 0) AS ended,
           coalesce(sum(o.ended_gp), 0) AS ended_gp, coalesce(sum(o.ended_jobcenter), 0) AS ended_jobcenter,
           coalesce(sum(o.ended_addiction), 0) AS ended_addiction
      FROM kip.stats_owners o
  ),

  -- The fact rows of a cut's month before the cut (only p_from and p_to + 1
  -- may fall inside a month): plans started (s) or ended (e) there.
  cuts AS (
    SELECT c.day, date_trunc('month', c.day::timestamp)::timestamp AT TIME ZONE 'Europe/Copenhagen' AS mlo,
           c.day::timestamp AT TIME ZONE 'Europe/Copenhagen' AS lo
      FROM (VALUES (p_from), (p_to + 1)) c(day)
  ),
  cut_plans AS (
    SELECT c.day, p.org, p.sector, 1 AS s, 0 AS e, p.with_gp, p.with_jobcenter, p.with_addiction
      FROM cuts c JOIN kip.stats_plans p ON p.started >= c.mlo AND p.started < c.lo
     WHERE p.closed_at IS NULL OR (p.closed_at AT TIME ZONE 'Europe/Copenhagen')::date
                                  >= (p.started AT TIME ZONE 'Europe/Copenhagen')::date
    UNION ALL
    SELECT c.day, p.org, p.sector, 0, 1, p.with_gp, p.with_jobcenter, p.with_addiction
      FROM cuts c JOIN kip.stats_plans p ON p.closed_at >= c.mlo AND p.closed_at < c.lo
     WHERE (p.closed_at AT TIME ZONE 'Europe/Copenhagen')::date >= (p.started AT TIME ZONE 'Europe/Copenhagen')::date
  ),
  cut_counts AS (
    SELECT CASE WHEN grouping(x.scope) = 1 THEN '*' ELSE x.scope END AS scope, x.day,
           sum(x.s) AS started, sum(x.s) FILTER (WHERE x.with_gp) AS started_gp,
           sum(x.s) FILTER (WHERE x.with_jobcenter) AS started_jobcenter,
           sum(x.s) FILTER (WHERE x.with_addiction) AS started_addiction,
           sum(x.e) AS ended, sum(x.e) FILTER (WHERE x.with_gp) AS ended_gp,
           sum(x.e) FILTER (WHERE x.with_jobcenter) AS ended_jobcenter,
           sum(x.e) FILTER (WHERE x.with_addiction) AS ended_addiction
      FROM (SELECT CASE v_group_by WHEN 'organisation' THEN c.org::text WHEN 'sector' THEN c.sector END AS scope, c.*
              FROM cut_plans c) x
     GROUP BY GROUPING SETS ((x.scope, x.day), (x.day))
  ),
  -- S and C at each span's ends, from the summary's months before the cut:
  -- the all-time totals (kip.stats_owners) less the months from the cut on,
  -- so that only the months from the period's start are read, however many
  -- years kipd holds. For every organisation from the sums per month; for
  -- one organisation or sector (whose spans are all the period) in one pass
  -- over its rows.
  prefix AS (
    SELECT sp.key,
           t.started - coalesce(sum(pm.started) FILTER (WHERE pm.month >= sp.hi_month), 0) AS s_hi,
           t.started_gp - coalesce(sum(pm.started_gp) FILTER (WHERE pm.month >= sp.hi_month), 0) AS s_hi_gp,
           t.started_jobcenter - coalesce(sum(pm.started_jobcenter) FILTER (WHERE pm.month >= sp.hi_month), 0)
             AS s_hi_jobcenter,
           t.started_addiction - coalesce(sum(pm.started_addiction) FILTER (WHERE pm.month >= sp.hi_month), 0)
             AS s_hi_addiction,
           t.started - coalesce(sum(pm.started), 0) AS s_lo,
           t.ended - coalesce(sum(pm.ended), 0) AS c_lo,
           t.ended_gp - coalesce(sum(pm.ended_gp), 0) AS c_lo_gp,
           t.ended_jobcenter - coalesce(sum(pm.ended_jobcenter), 0) AS c_lo_jobcenter,
           t.ended_addiction - coalesce(sum(pm.ended_addiction), 0) AS c_lo_addiction
      FROM spans sp CROSS JOIN plan_total t
      LEFT JOIN plan_tail pm ON pm.month >= sp.lo_month
     WHERE sp.scope = '*'
     GROUP BY sp.key, t.started, t.started_gp, t.started_jobcenter, t.started_addiction, t.ended, t.ended_gp,
              t.ended_jobcenter, t.ended_addiction
    UNION ALL
    SELECT sp.key, x.s_hi, x.s_hi_gp, x.s_hi_jobcenter, x.s_hi_addiction, x.s_lo, x.c_lo, x.c_lo_gp,
           x.c_lo_jobcenter, x.c_lo_addiction
      FROM (SELECT u.scope, sum(u.s_hi) AS s_hi, sum(u.s_hi_gp) AS s_hi_gp, sum(u.s_hi_jobcenter) AS s_hi_jobcenter,
                   sum(u.s_hi_addiction) AS s_hi_addiction, sum(u.s_lo) AS s_lo, sum(u.c_lo) AS c_lo,
                   sum(u.c_lo_gp) AS c_lo_gp, sum(u.c_lo_jobcenter) AS c_lo_jobcenter,
                   sum(u.c_lo_addiction) AS c_lo_addiction
              FROM (SELECT CASE v_group_by WHEN 'organisation' THEN o.org::text ELSE o.sector END AS scope,
                           o.started AS s_hi, o.started_gp AS s_hi_gp, o.started_jobcenter AS s_hi_jobcenter,
                           o.started_addiction AS s_hi_addiction, o.started AS s_lo, o.ended AS c_lo,
                           o.ended_gp AS c_lo_gp, o.ended_jobcenter AS c_lo_jobcenter,
                           o.ended_addiction AS c_lo_addiction
                      FROM kip.stats_owners o
                     WHERE v_group_by IN ('organisation', 'sector')
                    UNION ALL
                    SELECT CASE v_group_by WHEN 'organisation' THEN pm.org::text ELSE pm.sector END,
                           CASE WHEN pm.month >= v_hi_month THEN -pm.started ELSE 0 END,
                           CASE WHEN pm.month >= v_hi_month THEN -pm.started_gp ELSE 0 END,
                           CASE WHEN pm.month >= v_hi_month THEN -pm.started_jobcenter ELSE 0 END,
                           CASE WHEN pm.month >= v_hi_month THEN -pm.started_addiction ELSE 0 END,
                           -pm.started, -pm.ended, -pm.ended_gp, -pm.ended_jobcenter, -pm.ended_addiction
                      FROM kip.stats_sum_plans pm
                     WHERE v_group_by IN ('organisation', 'sector') AND pm.month >= v_lo_month) u
             GROUP BY 1) x
      JOIN spans sp ON sp.scope = x.scope
  ),
  -- The plans counted from the facts: those of citizens with more than one
  -- plan (shared) and those closed on a day before they started (skewed).
  direct AS (
    SELECT p.org, p.sector, p.person, p.started, p.closed_at, p.with_gp, p.with_jobcenter, p.with_addiction,
           true AS shared, p.skewed
      FROM kip.stats_persons pp JOIN kip.stats_plans p ON p.person = pp.person
     WHERE pp.plans > 1 AND p.started IS NOT NULL
    UNION ALL
    SELECT p.org, p.sector, p.person, p.started, p.closed_at, p.with_gp, p.with_jobcenter, p.with_addiction,
           false, true
      FROM kip.stats_plans p
     WHERE p.skewed
       AND NOT EXISTS (SELECT 1 FROM kip.stats_persons pp WHERE pp.person = p.person AND pp.plans > 1)
  ),
  direct_scoped AS (
    SELECT '*' AS scope, d.* FROM direct d
    UNION ALL
    SELECT kip.stats_key(v_group_by, NULL, d.org, d.sector), d.* FROM direct d
     WHERE v_group_by IN ('organisation', 'sector')
  ),
  -- Per span: the active plans of citizens with several plans, and those
  -- citizens (one hash aggregate over (span, citizen)); and the skewed plans.
  shared_counts AS (
    SELECT y.key, sum(y.plans) AS shared_active, count(*) AS shared_citizens
      FROM (SELECT sp.key, d.person, count(*) AS plans
              FROM spans sp
              JOIN direct_scoped d ON d.scope = sp.scope AND d.started < sp.hi
                                  AND (d.closed_at IS NULL OR d.closed_at >= sp.lo)
             WHERE d.shared
             GROUP BY sp.key, d.person) y
     GROUP BY y.key
  ),
  skewed_counts AS (
    SELECT sp.key, count(*) AS skewed_active, count(*) FILTER (WHERE d.started >= sp.lo) AS skewed_started,
           count(*) FILTER (WHERE d.with_gp) AS skewed_gp,
           count(*) FILTER (WHERE d.with_jobcenter) AS skewed_jobcenter,
           count(*) FILTER (WHERE d.with_addiction) AS skewed_addiction
      FROM spans sp
      JOIN direct_scoped d ON d.scope = sp.scope AND d.started < sp.hi
                          AND (d.closed_at IS NULL OR d.closed_at >= sp.lo)
     WHERE d.skewed
     GROUP BY sp.key
  ),
  direct_counts AS (
    SELECT sp.key, coalesce(sh.shared_active, 0) AS shared_active, coalesce(sh.shared_citizens, 0) AS shared_citizens,
           sk.skewed_active, sk.skewed_started, sk.skewed_gp, sk.skewed_jobcenter, sk.skewed_addiction
      FROM spans sp
      LEFT JOIN shared_counts sh ON coalesce(sh.key, '') = coalesce(sp.key, '')
      LEFT JOIN skewed_counts sk ON coalesce(sk.key, '') = coalesce(sp.key, '')
  ),
  active AS (
    SELECT sp.key,
           a.plans_active - coalesce(dc.shared_active, 0) + coalesce(dc.shared_citizens, 0) AS citizens_active,
           a.plans_active,
           coalesce(pf.s_hi, 0) + coalesce(ch.started, 0) - coalesce(pf.s_lo, 0) - coalesce(cl.started, 0)
             + coalesce(dc.skewed_started, 0) AS plans_started,
           coalesce(pf.s_hi_gp, 0) + coalesce(ch.started_gp, 0) - coalesce(pf.c_lo_gp, 0)
             - coalesce(cl.ended_gp, 0) + coalesce(dc.skewed_gp, 0) AS plans_with_gp,
           coalesce(pf.s_hi_jobcenter, 0) + coalesce(ch.started_jobcenter, 0) - coalesce(pf.c_lo_jobcenter, 0)
             - coalesce(cl.ended_jobcenter, 0) + coalesce(dc.skewed_jobcenter, 0) AS plans_with_jobcenter,
           coalesce(pf.s_hi_addiction, 0) + coalesce(ch.started_addiction, 0) - coalesce(pf.c_lo_addiction, 0)
             - coalesce(cl.ended_addiction, 0) + coalesce(dc.skewed_addiction, 0) AS plans_with_addiction
      FROM spans sp
      LEFT JOIN prefix pf ON coalesce(pf.key, '') = coalesce(sp.key, '')
      LEFT JOIN cut_counts ch ON ch.scope = sp.scope AND ch.day = sp.hi_day
      LEFT JOIN cut_counts cl ON cl.scope = sp.scope AND cl.day = sp.lo_day
      LEFT JOIN direct_counts dc ON coalesce(dc.key, '') = coalesce(sp.key, '')
     CROSS JOIN LATERAL (SELECT coalesce(pf.s_hi, 0) + coalesce(ch.started, 0) - coalesce(pf.c_lo, 0)
                                - coalesce(cl.ended, 0) + coalesce(dc.skewed_active, 0) AS plans_active) a
  ),
  -- The fact rows of the days not read from the summary, read once for
  -- both tables that need them: meetings held or cancelled (only a held
  -- meeting has days from consent or from the previous one), and actions
  -- that count as due.
  edge_meetings AS MATERIALIZED (
    SELECT m.org, m.sector, date_trunc('month', m.starts_at AT TIME ZONE 'Europe/Copenhagen')::date AS month,
           m.status, m.citizen_attended, m.days_from_consent, m.days_from_previous
      FROM edges e JOIN kip.stats_meetings m ON m.starts_at >= e.lo AND m.starts_at < e.hi
     WHERE m.status IN ('held', 'cancelled')
  ),
  edge_actions AS MATERIALIZED (
    SELECT a.org, a.sector, date_trunc('month', a.due_date)::date AS month, a.area, a.party_sector,
           a.status = 'done' AND a.completed_on <= a.due_date AS on_time
      FROM edges e JOIN kip.stats_actions a ON a.due_date >= e.lo_day AND a.due_date < e.hi_day
     WHERE a.status <> 'cancelled' AND (a.status = 'done' OR a.due_date < p_today)
  ),
  -- Meetings: whole months from the summary, the other days from the facts.
  meeting_units AS (
    SELECT kip.stats_key(v_group_by, s.month::timestamp AT TIME ZONE 'Europe/Copenhagen', s.org, s.sector) AS key,
           s.held, s.cancelled, s.attended
      FROM whole_range wr JOIN kip.stats_sum_meetings s ON s.month BETWEEN wr.first AND wr.last
      JOIN whole w ON w.month = s.month
    UNION ALL
    SELECT kip.stats_key(v_group_by, f.month::timestamp AT TIME ZONE 'Europe/Copenhagen', f.org, f.sector),
           f.held, f.cancelled, f.attended
      FROM (SELECT m.org, m.sector, m.month,
                   count(*) FILTER (WHERE m.status = 'held') AS held,
                   count(*) FILTER (WHERE m.status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE m.status = 'held' AND m.citizen_attended) AS attended
              FROM edge_meetings m
             GROUP BY 1, 2, 3) f
  ),
  meeting_sums AS (
    SELECT u.key, sum(u.held) AS held, sum(u.cancelled) AS cancelled, sum(u.attended) AS attended
      FROM meeting_units u GROUP BY GROUPING SETS ((u.key), ())
  ),
  -- An overdue outcome depends on the clock: from the facts.
  overdue AS (
    SELECT x.key, count(*) AS n
      FROM (SELECT kip.stats_key(v_group_by, m.starts_at, m.org, m.sector) AS key FROM kip.stats_meetings m
             WHERE m.status = 'planned' AND m.starts_at >= v_lo AND m.starts_at < v_hi AND m.ends_at < now()) x
     GROUP BY GROUPING SETS ((x.key), ())
  ),
  -- The day histograms, and from them the exact percentile_cont: the value
  -- at 0-based position i is the smallest day whose running count exceeds
  -- i; between two positions PostgreSQL interpolates lo + f * (hi - lo).
  -- (Keys sort as bytes, COLLATE "C": sorting them by the database's locale
  -- took a third of a year by organisation. Each organisation's months are
  -- summed by its uuid before its key is made.)
  day_keyed AS (
    SELECT u.key COLLATE "C" AS key, u.kind COLLATE "C" AS kind, u.days, sum(u.n) AS n
      FROM (
        SELECT s.org::text AS key, s.kind, s.days, s.n
          FROM (SELECT s.org, s.kind, s.days, sum(s.n) AS n
                  FROM whole_range wr JOIN kip.stats_sum_days s ON s.month BETWEEN wr.first AND wr.last
                  JOIN whole w ON w.month = s.month
                 WHERE v_group_by = 'organisation'
                 GROUP BY 1, 2, 3) s
        UNION ALL
        SELECT kip.stats_key(v_group_by, s.month::timestamp AT TIME ZONE 'Europe/Copenhagen', NULL, s.sector),
               s.kind, s.days, s.n
          FROM whole_range wr JOIN kip.stats_sum_days_sector s ON s.month BETWEEN wr.first AND wr.last
          JOIN whole w ON w.month = s.month
         WHERE v_group_by <> 'organisation'
        UNION ALL
        SELECT kip.stats_key(v_group_by, f.month::timestamp AT TIME ZONE 'Europe/Copenhagen', f.org, f.sector),
               f.kind, f.days, f.n
          FROM (SELECT m.org, m.sector, m.month, d.kind, d.days, count(*) AS n
                  FROM edge_meetings m
                 CROSS JOIN LATERAL (VALUES ('first', m.days_from_consent), ('interval', m.days_from_previous))
                         d(kind, days)
                 WHERE d.days IS NOT NULL
                 GROUP BY 1, 2, 3, 4, 5) f
      ) u
     GROUP BY 1, 2, 3
  ),
  day_units AS (
    SELECT d.key, d.kind, d.days, d.n FROM day_keyed d
    UNION ALL
    SELECT NULL, d.kind, d.days, sum(d.n) FROM day_keyed d GROUP BY d.kind, d.days
  ),
  day_running AS (
    SELECT d.key, d.kind, d.days,
           sum(d.n) OVER (PARTITION BY d.key, d.kind ORDER BY d.days) AS upto,
           sum(d.n) OVER (PARTITION BY d.key, d.kind) AS total
      FROM day_units d
  ),
  day_stats AS (
    SELECT r.key, r.kind, max(r.total) AS n,
           min(r.days) FILTER (WHERE r.upto > floor(0.5::float8 * (r.total - 1))) AS m1,
           min(r.days) FILTER (WHERE r.upto > ceil(0.5::float8 * (r.total - 1))) AS m2,
           min(r.days) FILTER (WHERE r.upto > floor(0.9::float8 * (r.total - 1))) AS p1,
           min(r.days) FILTER (WHERE r.upto > ceil(0.9::float8 * (r.total - 1))) AS p2
      FROM day_running r GROUP BY r.key, r.kind
  ),
  percentiles AS (
    SELECT s.key, s.kind, s.n,
           s.m1::float8 + ((0.5::float8 * (s.n - 1)::float8 - floor(0.5::float8 * (s.n - 1)::float8))
                           * (s.m2::float8 - s.m1::float8)) AS median,
           s.p1::float8 + ((0.9::float8 * (s.n - 1)::float8 - floor(0.9::float8 * (s.n - 1)::float8))
                           * (s.p2::float8 - s.p1::float8)) AS p90
      FROM day_stats s
  ),
  -- Actions: a whole month before today's counts its open actions as due,
  -- one after it does not. The facts of the other days are read twice,
  -- grouped as each table needs them.
  action_counts AS (
    SELECT x.key, sum(x.due) AS actions_due, sum(x.on_time) AS actions_on_time
      FROM (SELECT kip.stats_key(v_group_by, u.month::timestamp AT TIME ZONE 'Europe/Copenhagen', u.org, u.sector)
                     AS key, u.due, u.on_time
              FROM (SELECT s.org, s.sector, s.month, s.done + CASE WHEN s.month < p_today THEN s.open ELSE 0 END AS due,
                           s.on_time
                      FROM whole_range wr JOIN kip.stats_sum_actions s ON s.month BETWEEN wr.first AND wr.last
                      JOIN whole w ON w.month = s.month
                    UNION ALL
                    SELECT a.org, a.sector, a.month, count(*), count(*) FILTER (WHERE a.on_time)
                      FROM edge_actions a
                     GROUP BY 1, 2, 3) u) x
     GROUP BY GROUPING SETS ((x.key), ())
  ),
  part_units AS (
    SELECT s.area, s.party_sector, s.done + CASE WHEN s.month < p_today THEN s.open ELSE 0 END AS due, s.on_time
      FROM whole_range wr JOIN kip.stats_sum_action_parts s ON s.month BETWEEN wr.first AND wr.last
      JOIN whole w ON w.month = s.month
    UNION ALL
    SELECT a.area, a.party_sector, count(*), count(*) FILTER (WHERE a.on_time)
      FROM edge_actions a
     GROUP BY 1, 2
  ),
  by_area AS (
    SELECT x.area AS key, sum(x.due) AS actions_due, sum(x.on_time) AS actions_on_time
      FROM part_units x GROUP BY GROUPING SETS ((x.area), ())
  ),
  by_sector AS (
    SELECT x.party_sector AS key, sum(x.due) AS actions_due, sum(x.on_time) AS actions_on_time
      FROM part_units x GROUP BY GROUPING SETS ((x.party_sector), ())
  ),
  closed AS (
    SELECT x.key, sum(x.closed) AS closed, sum(x.completed) AS completed, sum(x.transferred) AS transferred,
           sum(x.declined) AS declined, sum(x.consent_withdrawn) AS consent_withdrawn,
           sum(x.deceased) AS deceased, sum(x.moved) AS moved, sum(x.other) AS other
      FROM (
        SELECT kip.stats_key(v_group_by, s.month::timestamp AT TIME ZONE 'Europe/Copenhagen', s.org, s.sector) AS key,
               s.closed, s.completed, s.transferred, s.declined, s.consent_withdrawn, s.deceased, s.moved, s.other
          FROM whole_range wr JOIN kip.stats_sum_plans s ON s.month BETWEEN wr.first AND wr.last
      JOIN whole w ON w.month = s.month
         WHERE s.closed <> 0
        UNION ALL
        SELECT kip.stats_key(v_group_by, f.month::timestamp AT TIME ZONE 'Europe/Copenhagen', f.org, f.sector),
               f.closed, f.completed, f.transferred, f.declined, f.consent_withdrawn, f.deceased, f.moved, f.other
          FROM (SELECT p.org, p.sector, date_trunc('month', p.closed_at AT TIME ZONE 'Europe/Copenhagen')::date AS month,
                       count(*) AS closed, count(*) FILTER (WHERE p.close_reason = 'completed') AS completed,
                       count(*) FILTER (WHERE p.close_reason = 'transferred') AS transferred,
                       count(*) FILTER (WHERE p.close_reason = 'declined') AS declined,
                       count(*) FILTER (WHERE p.close_reason = 'consent_withdrawn') AS consent_withdrawn,
                       count(*) FILTER (WHERE p.close_reason = 'deceased') AS deceased,
                       count(*) FILTER (WHERE p.close_reason = 'moved') AS moved,
                       count(*) FILTER (WHERE p.close_reason = 'other') AS other
                  FROM edges e JOIN kip.stats_plans p ON p.closed_at >= e.lo AND p.closed_at < e.hi
                 GROUP BY 1, 2, 3) f
      ) x
     GROUP BY GROUPING SETS ((x.key), ())
  ),
  -- Each table's rows: one GROUP BY key over the groups and every per-group
  -- result (a key that is no group is dropped; the total's key is null, and
  -- GROUP BY takes nulls as one). No join of the 1,001 groups of a year by
  -- organisation with each result, which the planner, expecting about 200
  -- groups, did by nested loops (docs/performance.md). Each result gives
  -- its values in the slots v1..v8 (counts) and d1, d2 (days, float8, as
  -- the facts' percentile_cont gives them), named by src.
  cells AS (
    SELECT g.key, g.ord, g.label, 'group' AS src, NULL::numeric AS v1, NULL::numeric AS v2, NULL::numeric AS v3,
           NULL::numeric AS v4, NULL::numeric AS v5, NULL::numeric AS v6, NULL::numeric AS v7, NULL::numeric AS v8,
           NULL::float8 AS d1, NULL::float8 AS d2
      FROM groups g
    UNION ALL
    SELECT ms.key, NULL, NULL, 'meetings', ms.held, ms.cancelled, ms.attended, NULL, NULL, NULL, NULL, NULL, NULL, NULL
      FROM meeting_sums ms
    UNION ALL
    SELECT od.key, NULL, NULL, 'overdue', od.n, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM overdue od
    UNION ALL
    SELECT f.key, NULL, NULL, f.kind, f.n, NULL, NULL, NULL, NULL, NULL, NULL, NULL, f.median, f.p90
      FROM percentiles f
    UNION ALL
    SELECT ac.key, NULL, NULL, 'active', ac.citizens_active, ac.plans_active, ac.plans_started, ac.plans_with_gp,
           ac.plans_with_jobcenter, ac.plans_with_addiction, NULL, NULL, NULL, NULL
      FROM active ac
    UNION ALL
    SELECT at.key, NULL, NULL, 'actions', at.actions_due, at.actions_on_time, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
      FROM action_counts at
    UNION ALL
    SELECT cl.key, NULL, NULL, 'closed', cl.completed, cl.transferred, cl.declined, cl.consent_withdrawn,
           cl.deceased, cl.moved, cl.other, cl.closed, NULL, NULL
      FROM closed cl
  ),
  rows_by_key AS (
    SELECT c.key COLLATE "C" AS key, max(c.ord) AS ord, max(c.label) AS label,
           coalesce(max(c.v1) FILTER (WHERE c.src = 'meetings'), 0) AS meetings_held,
           coalesce(max(c.v2) FILTER (WHERE c.src = 'meetings'), 0) AS meetings_cancelled,
           coalesce(max(c.v1) FILTER (WHERE c.src = 'overdue'), 0) AS meetings_outcome_overdue,
           coalesce(max(c.v3) FILTER (WHERE c.src = 'meetings'), 0) AS meetings_citizen_attended,
           coalesce(max(c.v1) FILTER (WHERE c.src = 'active'), 0) AS citizens_active,
           coalesce(max(c.v2) FILTER (WHERE c.src = 'active'), 0) AS plans_active,
           coalesce(max(c.v3) FILTER (WHERE c.src = 'active'), 0) AS plans_started,
           coalesce(max(c.v1) FILTER (WHERE c.src = 'first'), 0) AS first_meeting_plans,
           max(c.d1) FILTER (WHERE c.src = 'first') AS first_meeting_median_days,
           max(c.d2) FILTER (WHERE c.src = 'first') AS first_meeting_p90_days,
           coalesce(max(c.v1) FILTER (WHERE c.src = 'interval'), 0) AS meeting_intervals,
           max(c.d1) FILTER (WHERE c.src = 'interval') AS meeting_interval_median_days,
           coalesce(max(c.v1) FILTER (WHERE c.src = 'actions'), 0) AS actions_due,
           coalesce(max(c.v2) FILTER (WHERE c.src = 'actions'), 0) AS actions_on_time,
           coalesce(max(c.v4) FILTER (WHERE c.src = 'active'), 0) AS plans_with_gp,
           coalesce(max(c.v5) FILTER (WHERE c.src = 'active'), 0) AS plans_with_jobcenter,
           coalesce(max(c.v6) FILTER (WHERE c.src = 'active'), 0) AS plans_with_addiction,
           coalesce(max(c.v1) FILTER (WHERE c.src = 'closed'), 0) AS completed,
           coalesce(max(c.v2) FILTER (WHERE c.src = 'closed'), 0) AS transferred,
           coalesce(max(c.v3) FILTER (WHERE c.src = 'closed'), 0) AS declined,
           coalesce(max(c.v4) FILTER (WHERE c.src = 'closed'), 0) AS consent_withdrawn,
           coalesce(max(c.v5) FILTER (WHERE c.src = 'closed'), 0) AS deceased,
           coalesce(max(c.v6) FILTER (WHERE c.src = 'closed'), 0) AS moved,
           coalesce(max(c.v7) FILTER (WHERE c.src = 'closed'), 0) AS other,
           coalesce(max(c.v8) FILTER (WHERE c.src = 'closed'), 0) AS closed
      FROM cells c
     GROUP BY c.key COLLATE "C"
    HAVING max(c.ord) IS NOT NULL
  )
  SELECT json_build_object(
    'from', p_from, 'to', p_to, 'group_by', p_group_by, 'organisation', NULL::json, 'as_of', p_today,
    'columns', kip.stats_columns(),
    'groups', (SELECT coalesce(json_agg(json_build_object('key', g.key, 'label', g.label) ORDER BY g.ord), '[]'::json)
                 FROM groups g WHERE g.key IS NOT NULL),
    'activity', (SELECT json_agg(json_build_array(
        r.key, r.label,
        r.meetings_held,
        r.meetings_cancelled,
        r.meetings_outcome_overdue,
        r.meetings_citizen_attended,
        r.citizens_active,
        r.plans_active,
        r.plans_started,
        r.first_meeting_plans,
        r.first_meeting_median_days,
        r.first_meeting_p90_days,
        r.meeting_intervals,
        r.meeting_interval_median_days,
        r.actions_due,
        r.actions_on_time,
        r.plans_with_gp,
        r.plans_with_jobcenter,
        r.plans_with_addiction) ORDER BY r.ord)
        FROM rows_by_key r),
    'closed', (SELECT json_agg(json_build_array(
        r.key, r.label,
        r.completed,
        r.transferred,
        r.declined,
        r.consent_withdrawn,
        r.deceased,
        r.moved,
        r.other,
        r.closed) ORDER BY r.ord)
        FROM rows_by_key r),
    'actions_by_area', (SELECT json_agg(json_build_array(
        k.key, k.key, coalesce(b.actions_due, 0), coalesce(b.actions_on_time, 0)) ORDER BY k.n)
        FROM (SELECT key, n FROM unnest(ARRAY['substances', 'somatic_health', 'mental_health', 'housing',
                'finances', 'employment', 'crime', 'family_children', 'network', 'other', NULL])
                WITH ORDINALITY AS t(key, n)) k
        LEFT JOIN by_area b ON coalesce(b.key, '') = coalesce(k.key, '')),
    'actions_by_sector', (SELECT json_agg(json_build_array(
        k.key, k.key, coalesce(b.actions_due, 0), coalesce(b.actions_on_time, 0)) ORDER BY k.n)
        FROM (SELECT key, n FROM unnest(ARRAY['region_hospital', 'region_psychiatry', 'municipality_jobcenter',
                'municipality_social', 'municipality_addiction', 'general_practice', 'civil_society',
                'private', 'other', 'citizen', 'relative', 'none', NULL])
                WITH ORDINALITY AS t(key, n)) k
        LEFT JOIN by_sector b ON coalesce(b.key, '') = coalesce(k.key, '')),
    'refreshed_at', (SELECT refreshed_at FROM kip.stats_state))
  INTO v_body;
  RETURN v_body;
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
  v_org_doc jsonb;
  v_body json;
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

  -- Every organisation: the summary (kip.stats_body_summary); one: its
  -- fact rows, an index range (kip.stats_body_facts). The same figures.
  -- The summary's body is json with these first keys (built as json: half
  -- the time of jsonb for 1,001 groups); kipd lays the answer out again.
  IF v_org IS NULL THEN
    v_body := kip.stats_body_summary(v_from, v_to, v_today, v_group_by);
  ELSE
    v_body := (jsonb_build_object('from', v_from, 'to', v_to, 'group_by', v_group_by, 'organisation', v_org_doc,
                                  'as_of', v_today)
               || kip.stats_body_facts(v_from, v_to, v_today, v_group_by, v_org))::json;
  END IF;

  PERFORM kip.audit('stats.read', NULL, 'stats');
  RETURN kip.ok_json(v_body);
END
$function$;
