-- 18_audit.sql: Reading the audit trail: /v1/audit, /v1/audit/verify, the
-- verification jobs, a plan's access log (daemon/api/audit.c).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- GET /v1/audit: newest first, keyset on id. Filters: plan_id, user_id,
-- organisation_id, action, from, to (RFC 3339). auditor only (403).
CREATE FUNCTION kip_api.audit_list(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_limit integer := kip.page_limit(p_query);
  v_plan uuid := (p_query->>'plan_id')::uuid;
  v_user uuid := (p_query->>'user_id')::uuid;
  v_org uuid := (p_query->>'organisation_id')::uuid;
  v_action text := p_query->>'action';
  v_from timestamptz := (p_query->>'from')::timestamptz;
  v_to timestamptz := (p_query->>'to')::timestamptz;
  v_before bigint;
  v_items jsonb[];
  v_keys text[];
BEGIN
  PERFORM kip.require_role(u, ARRAY['auditor'], 'only an auditor reads the audit log');
  IF v_from IS NOT NULL AND v_to IS NOT NULL AND v_to < v_from THEN
    PERFORM kip.fail(422, 'before_start', 'to', 'must not lie before from');
  END IF;
  BEGIN
    v_before := kip.cursor_decode(p_query->>'cursor')::bigint;
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    PERFORM kip.fail(400, 'invalid_cursor', 'cursor', 'not a cursor from this list');
  END;
  SELECT array_agg(jsonb_build_object(
           'id', a.id, 'at', a.at, 'user_id', a.user_id, 'organisation_id', a.organisation_id,
           'action', a.action, 'plan_id', a.plan_id, 'resource', a.resource,
           'request_id', a.request_id, 'remote_addr', a.remote_addr,
           'seq', s.seq, 'hash', encode(s.hash, 'hex')) ORDER BY a.id DESC),
         array_agg(a.id::text ORDER BY a.id DESC)
    INTO v_items, v_keys
    FROM (SELECT * FROM kip.audit a
           WHERE (v_before IS NULL OR a.id < v_before)
             AND (v_plan IS NULL OR a.plan_id = v_plan)
             AND (v_user IS NULL OR a.user_id = v_user)
             AND (v_org IS NULL OR a.organisation_id = v_org)
             AND (v_action IS NULL OR a.action = v_action)
             AND (v_from IS NULL OR a.at >= v_from)
             AND (v_to IS NULL OR a.at < v_to)
           ORDER BY a.id DESC LIMIT v_limit + 1) a
    LEFT JOIN kip.audit_seal s ON s.audit_id = a.id;
  -- Reading the log is audited; a plan filter names the plan whose log
  -- was read, so the citizen's access log shows it.
  PERFORM kip.audit('audit.list', v_plan, 'audit');
  RETURN kip.ok(kip.page(v_items, v_keys, v_limit));
END
$function$;

-- GET /v1/audit/verify: an incremental verification, in steps. kipd calls
-- this first with p_state NULL: it seals what is committed and starts a
-- walk from the newest checkpoint (kip.audit_verify_begin). While the walk
-- is not done, the answer is {"continue": state} and kipd calls again with
-- that state, each call its own short statement (daemon/api/audit.c). The
-- last call records a checkpoint when nothing was wrong, writes the audit
-- row and answers the result. auditor only (403).
CREATE FUNCTION kip_api.audit_verify(p_ctx jsonb, p_query jsonb, p_state jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_grace integer := coalesce((p_query->>'grace_seconds')::integer, 60);
  v_state jsonb := p_state;
  v_result jsonb;
BEGIN
  PERFORM kip.require_role(u, ARRAY['auditor'], 'only an auditor verifies the audit log');
  IF v_state IS NULL THEN
    PERFORM kip.audit_seal();
    v_state := kip.audit_verify_begin('incremental', make_interval(secs => v_grace));
  END IF;
  v_state := kip.audit_verify_run(v_state);
  IF v_state->>'phase' <> 'done' THEN
    RETURN kip.ok(jsonb_build_object('continue', v_state));
  END IF;
  PERFORM kip.audit_checkpoint_record(v_state, u.id, current_setting('kip.request_id', true), NULL);
  v_result := kip.audit_verify_result(v_state) || jsonb_build_object(
    'last_full', (SELECT jsonb_build_object('id', j.id, 'finished_at', j.finished_at,
                                            'ok', j.result->'ok', 'broken', j.result->'broken')
                    FROM kip.audit_verify_jobs j
                   WHERE j.mode = 'full' AND j.status = 'done'
                   ORDER BY j.finished_at DESC LIMIT 1));
  PERFORM kip.audit('audit.verify', NULL, 'audit');
  RETURN kip.ok(v_result);
END
$function$;

-- POST /v1/audit/verify-jobs: queue a full walk of the chain, from its
-- first link, for kipd's verifier (kip.audit_verify_job_step). One full
-- walk at a time: while one is queued or running, its job is answered
-- instead of a new one. 202 with the job's Location. auditor only (403).
CREATE FUNCTION kip_api.audit_verify_job_create(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_grace integer := coalesce((p_query->>'grace_seconds')::integer, 60);
  j kip.audit_verify_jobs;
BEGIN
  PERFORM kip.require_role(u, ARRAY['auditor'], 'only an auditor verifies the audit log');
  -- Two auditors asking at once get the same job.
  PERFORM pg_advisory_xact_lock(7305872418);
  SELECT * INTO j FROM kip.audit_verify_jobs x
   WHERE x.mode = 'full' AND x.status <> 'done' ORDER BY x.requested_at LIMIT 1;
  IF NOT FOUND THEN
    INSERT INTO kip.audit_verify_jobs (mode, requested_by, organisation_id, request_id, grace_seconds)
    VALUES ('full', u.id, u.organisation_id, current_setting('kip.request_id', true), v_grace)
    RETURNING * INTO j;
  END IF;
  PERFORM kip.audit('audit.verify_job', NULL, 'audit');
  RETURN kip.ok(kip.audit_verify_job_json(j), 202, NULL, '/v1/audit/verify-jobs/' || j.id);
END
$function$;

-- GET /v1/audit/verify-jobs/{id}: a job's progress, and its result once
-- done. auditor only (403); 404 for an id that names no job.
CREATE FUNCTION kip_api.audit_verify_job_read(p_ctx jsonb, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  j kip.audit_verify_jobs;
BEGIN
  PERFORM kip.require_role(u, ARRAY['auditor'], 'only an auditor verifies the audit log');
  SELECT * INTO j FROM kip.audit_verify_jobs x WHERE x.id = p_id;
  IF NOT FOUND THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such verification job');
  END IF;
  PERFORM kip.audit('audit.verify_job_read', NULL, 'audit');
  RETURN kip.ok(kip.audit_verify_job_json(j));
END
$function$;

-- GET /v1/plans/{id}/access-log: who has read or changed this plan, newest
-- first. The owning organisation's coordinators only: 404 for those who
-- cannot see the plan, 403 for those who can but may not see its log.
CREATE FUNCTION kip_api.plan_access_log(p_ctx jsonb, p_id uuid, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id);
  v_limit integer := kip.page_limit(p_query);
  v_before bigint;
  v_items jsonb[];
  v_keys text[];
BEGIN
  IF p.owner_organisation_id <> u.organisation_id OR NOT ('coordinator' = ANY (u.roles)) THEN
    PERFORM kip.fail(403, 'forbidden', 'Authorization',
                     'only a coordinator of the owning organisation reads the access log');
  END IF;
  BEGIN
    v_before := kip.cursor_decode(p_query->>'cursor')::bigint;
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    PERFORM kip.fail(400, 'invalid_cursor', 'cursor', 'not a cursor from this list');
  END;
  SELECT array_agg(jsonb_build_object(
           'id', a.id, 'at', a.at, 'action', a.action, 'resource', a.resource,
           'user', CASE WHEN a.user_id IS NULL THEN NULL
                        ELSE jsonb_build_object('id', a.user_id, 'display_name', us.display_name) END,
           'organisation', CASE WHEN a.organisation_id IS NULL THEN NULL
                                ELSE jsonb_build_object('id', a.organisation_id, 'name', o.name) END)
           ORDER BY a.id DESC),
         array_agg(a.id::text ORDER BY a.id DESC)
    INTO v_items, v_keys
    FROM (SELECT * FROM kip.audit a
           WHERE a.plan_id = p.id AND (v_before IS NULL OR a.id < v_before)
           ORDER BY a.id DESC LIMIT v_limit + 1) a
    LEFT JOIN kip.users us ON us.id = a.user_id
    LEFT JOIN kip.organisations o ON o.id = a.organisation_id;
  PERFORM kip.audit('plan.access_log', p.id, 'plan');
  RETURN kip.ok(kip.page(v_items, v_keys, v_limit));
END
$function$;
