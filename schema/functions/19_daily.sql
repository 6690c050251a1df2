-- 19_daily.sql: The daily pass (daemon/app/daily.c): marks due actions,
-- consents, plans and meetings.
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- The daily pass: mark what became due, as events, each exactly once
-- (dedupe_key), safe with several kipd instances (advisory lock):
-- action.overdue, consent.review_due, plan.follow_up_due and
-- meeting.outcome_overdue (a planned meeting whose end has passed without an
-- outcome, once per meeting and calendar sequence, so a rescheduled meeting
-- that is missed again counts again), and action.needs_responsible (an open
-- action whose responsible has left, once a day). It also queues an
-- incremental verification of the audit chain. Returns the new events per
-- kind.
CREATE FUNCTION kip.daily_pass(p_at timestamp with time zone DEFAULT now())
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_today date := kip.today(p_at);
  v_actions integer;
  v_consents integer;
  v_plans integer;
  v_meetings integer;
  v_needs integer;
BEGIN
  PERFORM pg_advisory_xact_lock(7305872416);
  -- Idempotency keys past their 24 hours (06_idempotency.sql) are forgotten.
  PERFORM kip.idem_purge();
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  SELECT 'action.overdue', a.plan_id, a.id, 'action.overdue:' || a.id || ':' || a.due_date,
         jsonb_build_object('action_id', a.id, 'due_date', a.due_date,
                            'responsible_participant_id', a.responsible_participant_id)
    FROM kip.actions a JOIN kip.plans p ON p.id = a.plan_id
   WHERE a.status IN ('open', 'in_progress') AND a.due_date < v_today AND p.status <> 'closed'
  ON CONFLICT (dedupe_key) DO NOTHING;
  GET DIAGNOSTICS v_actions = ROW_COUNT;
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  SELECT 'consent.review_due', c.plan_id, c.id, 'consent.review_due:' || c.id || ':' || c.review_by,
         jsonb_build_object('consent_id', c.id, 'review_by', c.review_by)
    FROM kip.consents c JOIN kip.plans p ON p.id = c.plan_id
   WHERE c.superseded_at IS NULL AND c.withdrawn_at IS NULL AND c.review_by < v_today
     AND p.status <> 'closed'
  ON CONFLICT (dedupe_key) DO NOTHING;
  GET DIAGNOSTICS v_consents = ROW_COUNT;
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  SELECT 'plan.follow_up_due', p.id, p.id, 'plan.follow_up_due:' || p.id || ':' || p.follow_up_date,
         jsonb_build_object('follow_up_date', p.follow_up_date)
    FROM kip.plans p
   WHERE p.follow_up_date < v_today AND p.status <> 'closed'
  ON CONFLICT (dedupe_key) DO NOTHING;
  GET DIAGNOSTICS v_plans = ROW_COUNT;
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  SELECT 'meeting.outcome_overdue', m.plan_id, m.id,
         'meeting.outcome_overdue:' || m.id || ':' || m.sequence,
         jsonb_build_object('meeting_id', m.id, 'starts_at', m.starts_at,
                            'ends_at', kip.meeting_ends_at(m),
                            'chair_participant_id', m.chair_participant_id)
    FROM kip.meetings m JOIN kip.plans p ON p.id = m.plan_id
   WHERE kip.meeting_overdue_outcome(m, p_at) AND p.status <> 'closed'
  ON CONFLICT (dedupe_key) DO NOTHING;
  GET DIAGNOSTICS v_meetings = ROW_COUNT;
  -- An open action whose responsible has left (a consent withdrawal ends
  -- the participation of other organisations): raised to the tovholder once
  -- a day until it is re-assigned.
  INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key, payload)
  SELECT 'action.needs_responsible', a.plan_id, a.id,
         'action.needs_responsible:' || a.id || ':' || v_today,
         jsonb_build_object('action_id', a.id, 'responsible_participant_id', a.responsible_participant_id,
                            'coordinator_participant_id', p.coordinator_participant_id)
    FROM kip.actions a JOIN kip.plans p ON p.id = a.plan_id
    JOIN kip.participants pa ON pa.id = a.responsible_participant_id
   WHERE a.status IN ('open', 'in_progress') AND pa.left_at IS NOT NULL AND p.status <> 'closed'
  ON CONFLICT (dedupe_key) DO NOTHING;
  GET DIAGNOSTICS v_needs = ROW_COUNT;
  -- The audit chain: queue an incremental verification from the newest
  -- checkpoint (docs/audit.md, "Verification"), which kipd's verifier walks
  -- in the background, so a changed row sealed since is found by the next
  -- pass (hourly by default).
  -- At most one waits at a time. Its finished predecessors are kept 30
  -- days (the checkpoints they recorded stay); an auditor's full walks stay.
  DELETE FROM kip.audit_verify_jobs j
   WHERE j.mode = 'incremental' AND j.status = 'done' AND j.finished_at < p_at - interval '30 days';
  INSERT INTO kip.audit_verify_jobs (mode)
  SELECT 'incremental'
   WHERE NOT EXISTS (SELECT 1 FROM kip.audit_verify_jobs j WHERE j.mode = 'incremental' AND j.status <> 'done');
  -- The statistics' fact tables (schema/functions/24_stats.sql), as of now.
  -- A refresh cut short by the statement timeout must not cost the events
  -- above: it is rolled back alone and goes on at the next pass.
  BEGIN
    PERFORM kip.stats_refresh();
  EXCEPTION WHEN query_canceled THEN
    RAISE WARNING 'statistics refresh cancelled; it goes on at the next daily pass';
  END;
  RETURN jsonb_build_object('as_of', v_today, 'action.overdue', v_actions,
                            'consent.review_due', v_consents, 'plan.follow_up_due', v_plans,
                            'meeting.outcome_overdue', v_meetings, 'action.needs_responsible', v_needs);
END
$function$;
