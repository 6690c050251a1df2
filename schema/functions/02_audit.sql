-- 02_audit.sql: The audit trail: one row per read or write of personal data
-- (audit, audit_plans) and the hash chain that seals it (audit_seal,
-- audit_verify). See docs/audit.md.
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- PL/pgSQL rather than SQL: its INSERT plan is cached for the session, and
-- an error raised while writing the row names "function kip.audit(" in its
-- context, which kipd answers with 503 (app/problem.c).
CREATE FUNCTION kip.audit(p_action text, p_plan_id uuid, p_resource text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  INSERT INTO kip.audit (user_id, organisation_id, action, plan_id, resource, request_id, remote_addr)
  VALUES (kip.actor_id(), kip.actor_org(), kip.audit_action(p_action, p_resource), p_plan_id,
          p_resource, nullif(current_setting('kip.request_id', true), ''),
          nullif(current_setting('kip.remote_addr', true), ''));
END
$function$;

-- The stored action of kip.audit(verb, plan, resource): "<resource>.<verb>",
-- with the collection reads named as lists. An action that already holds a
-- dot is stored as given.
CREATE FUNCTION kip.audit_action(p_action text, p_resource text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE
    WHEN strpos(p_action, '.') > 0 THEN p_action
    WHEN p_action = 'read' AND p_resource = 'participants' THEN 'participant.list'
    WHEN p_action = 'read' AND p_resource = 'meetings' THEN 'meeting.list'
    WHEN p_action = 'read' AND p_resource = 'actions' THEN 'action.list'
    WHEN p_action = 'read' AND p_resource = 'history' THEN 'plan.history'
    WHEN p_action = 'read' AND p_resource = 'action_history' THEN 'action.history'
    WHEN p_action = 'read' AND p_resource = 'agenda' THEN 'meeting.agenda'
    ELSE p_resource || '.' || p_action
  END
$function$;

-- A list's audit: one row per distinct plan shown, in one statement.
CREATE FUNCTION kip.audit_plans(p_action text, p_plan_ids uuid[], p_resource text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  INSERT INTO kip.audit (user_id, organisation_id, action, plan_id, resource, request_id, remote_addr)
  SELECT kip.actor_id(), kip.actor_org(), kip.audit_action(p_action, p_resource), x, p_resource,
         nullif(current_setting('kip.request_id', true), ''),
         nullif(current_setting('kip.remote_addr', true), '')
    FROM (SELECT DISTINCT x FROM unnest(p_plan_ids) AS x WHERE x IS NOT NULL) d;
END
$function$;

-- The row as hashed: a JSON array of every column, the time as integer
-- microseconds since the epoch so that no time zone setting changes it.
CREATE FUNCTION kip.audit_canonical(a kip.audit)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT jsonb_build_array(a.id, (extract(epoch FROM a.at) * 1000000)::bigint, a.user_id,
                           a.organisation_id, a.action, a.plan_id, a.resource, a.request_id,
                           a.remote_addr)::text
$function$;

CREATE FUNCTION kip.audit_link(p_prev bytea, a kip.audit)
 RETURNS bytea
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT sha256(p_prev || convert_to(kip.audit_canonical(a), 'UTF8'))
$function$;

-- Append the committed, unsealed rows to the chain: first the skipped ids
-- that have become visible, then the new rows after the highest sealed id,
-- at most p_max in all. One sealer at a time (advisory lock; a second one
-- returns at once with sealed = 0 and no head). SECURITY
-- DEFINER: kipd_runtime cannot write the seal tables itself.
CREATE FUNCTION kip.audit_seal(p_max integer DEFAULT 10000, p_gap_expiry interval DEFAULT '00:10:00'::interval)
 RETURNS TABLE(sealed integer, head_seq bigint, head_hash text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
  v_seq bigint;
  v_hash bytea;
  v_tail bigint;
  v_last bigint;
  v_late bigint[] := '{}';
  v_gaps bigint[] := '{}';
  v_seqs bigint[] := '{}';
  v_ids bigint[] := '{}';
  v_prevs bytea[] := '{}';
  v_hashes bytea[] := '{}';
  a kip.audit;
BEGIN
  -- Another sealer (another kipd, or a verification) is at work: it seals
  -- these rows, so this one need not wait, holding a pool connection.
  IF NOT pg_try_advisory_xact_lock(7305872417) THEN
    sealed := 0;
    RETURN NEXT;
    RETURN;
  END IF;
  SELECT s.seq, s.hash INTO v_seq, v_hash FROM kip.audit_seal s ORDER BY s.seq DESC LIMIT 1;
  v_seq := coalesce(v_seq, 0);
  v_hash := coalesce(v_hash, decode(repeat('00', 32), 'hex'));
  SELECT coalesce(max(s.audit_id), 0) INTO v_tail FROM kip.audit_seal s;
  v_last := v_tail;
  -- Late rows: ids skipped earlier whose transaction has committed since.
  FOR a IN SELECT au.* FROM kip.audit au JOIN kip.audit_seal_gap g ON g.audit_id = au.id
            WHERE NOT EXISTS (SELECT 1 FROM kip.audit_seal s WHERE s.audit_id = au.id)
            ORDER BY au.id LIMIT p_max LOOP
    v_seqs := v_seqs || (v_seq + 1);
    v_ids := v_ids || a.id;
    v_prevs := v_prevs || v_hash;
    v_hash := kip.audit_link(v_hash, a);
    v_hashes := v_hashes || v_hash;
    v_seq := v_seq + 1;
    v_late := v_late || a.id;
  END LOOP;
  -- New rows, in id order; an id missing between two visible rows is a gap.
  FOR a IN SELECT au.* FROM kip.audit au WHERE au.id > v_tail
            ORDER BY au.id LIMIT greatest(p_max - cardinality(v_ids), 0) LOOP
    IF a.id > v_last + 1 AND cardinality(v_gaps) < 10000 THEN
      v_gaps := v_gaps || ARRAY(SELECT generate_series(v_last + 1, least(a.id - 1, v_last + 10000)));
    END IF;
    v_last := a.id;
    v_seqs := v_seqs || (v_seq + 1);
    v_ids := v_ids || a.id;
    v_prevs := v_prevs || v_hash;
    v_hash := kip.audit_link(v_hash, a);
    v_hashes := v_hashes || v_hash;
    v_seq := v_seq + 1;
  END LOOP;
  IF cardinality(v_ids) > 0 THEN
    INSERT INTO kip.audit_seal (seq, audit_id, prev_hash, hash)
    SELECT * FROM unnest(v_seqs, v_ids, v_prevs, v_hashes);
  END IF;
  DELETE FROM kip.audit_seal_gap g
   WHERE g.audit_id = ANY (v_late) OR g.noted_at < now() - p_gap_expiry;
  IF cardinality(v_gaps) > 0 THEN
    INSERT INTO kip.audit_seal_gap (audit_id) SELECT unnest(v_gaps) ON CONFLICT DO NOTHING;
  END IF;
  sealed := cardinality(v_ids);
  head_seq := v_seq;
  head_hash := encode(v_hash, 'hex');
  RETURN NEXT;
END
$function$;

-- For /metrics, after each sealer run: audit rows above the sealed tail
-- (not yet sealed) and the age in seconds of the oldest of them (0: none).
-- Reads by the primary key from the tail on: cheap while the sealer keeps up.
CREATE FUNCTION kip.audit_unsealed()
 RETURNS TABLE(unsealed bigint, oldest_age_s double precision)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT count(*), coalesce(extract(epoch FROM now() - min(a.at))::double precision, 0)
    FROM kip.audit a
   WHERE a.id > (SELECT coalesce(max(s.audit_id), 0) FROM kip.audit_seal s)
$function$;

-- Recompute the whole chain from the audit rows as they are now. A link is
-- broken when
--   row_deleted:  its audit row is gone;
--   row_changed:  the row's content no longer gives the sealed hash (the
--                 next link still agrees with the sealed hash);
--   seal_changed: a seal row was altered (its hash disagrees with the next
--                 link's prev_hash, or its prev_hash with the previous hash);
--   seal_missing: a seal row was deleted (seq not contiguous).
-- Rows not sealed within p_grace count as unsealed_overdue.
CREATE FUNCTION kip.audit_verify(p_grace interval DEFAULT '00:01:00'::interval)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  WITH link AS (
    SELECT s.seq, s.audit_id, s.prev_hash, s.hash, s.sealed_at, a.at,
           a.id IS NOT NULL AS present,
           CASE WHEN a.id IS NOT NULL THEN kip.audit_link(s.prev_hash, a) END AS recomputed,
           lag(s.hash) OVER w AS before_hash,
           lag(s.seq) OVER w AS before_seq,
           lead(s.prev_hash) OVER w AS next_prev
      FROM kip.audit_seal s LEFT JOIN kip.audit a ON a.id = s.audit_id
    WINDOW w AS (ORDER BY s.seq)
  ), judged AS (
    SELECT l.*, CASE
        WHEN l.seq <> coalesce(l.before_seq, 0) + 1 THEN 'seal_missing'
        WHEN l.prev_hash <> coalesce(l.before_hash, decode(repeat('00', 32), 'hex')) THEN 'seal_changed'
        WHEN NOT l.present THEN 'row_deleted'
        WHEN l.recomputed <> l.hash AND l.next_prev IS DISTINCT FROM l.hash
             AND l.next_prev IS NOT NULL THEN 'seal_changed'
        WHEN l.recomputed <> l.hash THEN 'row_changed'
      END AS problem
      FROM link l
  ), summary AS (
    SELECT count(*) AS checked, count(*) FILTER (WHERE problem IS NOT NULL) AS broken,
           max(seq) AS head_seq
      FROM judged
  ), unsealed AS (
    SELECT count(*) AS total, count(*) FILTER (WHERE a.at < now() - p_grace) AS overdue,
           min(a.id) FILTER (WHERE a.at < now() - p_grace) AS oldest_overdue_id
      FROM kip.audit a
     WHERE NOT EXISTS (SELECT 1 FROM kip.audit_seal s WHERE s.audit_id = a.id)
  )
  SELECT jsonb_build_object(
    'ok', su.broken = 0 AND un.overdue = 0,
    'checked', su.checked,
    'broken', su.broken,
    'first_broken', (SELECT jsonb_build_object('seq', j.seq, 'id', j.audit_id, 'at', j.at,
                                               'sealed_at', j.sealed_at, 'problem', j.problem)
                       FROM judged j WHERE j.problem IS NOT NULL ORDER BY j.seq LIMIT 1),
    'unsealed', un.total,
    'unsealed_overdue', un.overdue,
    'oldest_unsealed_overdue_id', un.oldest_overdue_id,
    'grace_seconds', extract(epoch FROM p_grace)::integer,
    'head', (SELECT jsonb_build_object('seq', s.seq, 'id', s.audit_id, 'hash', encode(s.hash, 'hex'),
                                       'sealed_at', s.sealed_at)
               FROM kip.audit_seal s ORDER BY s.seq DESC LIMIT 1))
    FROM summary su, unsealed un
$function$;

-- True when the current role cannot change or remove audit rows: it owns
-- neither the table nor is a superuser, and holds no UPDATE, DELETE or
-- TRUNCATE on it. Shown by /readyz.
CREATE FUNCTION kip.audit_append_only()
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
     AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_class c
                                         WHERE c.oid = 'kip.audit'::regclass), 'USAGE')
     AND NOT has_table_privilege(current_user, 'kip.audit', 'UPDATE')
     AND NOT has_table_privilege(current_user, 'kip.audit', 'DELETE')
     AND NOT has_table_privilege(current_user, 'kip.audit', 'TRUNCATE')
$function$;
