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
--
-- STABLE, not IMMUTABLE: jsonb_build_array is STABLE, and PostgreSQL inlines
-- an SQL function only when it is declared no stricter than its body. Inlined,
-- a verification checks a link in about 8 µs instead of 50 µs.
CREATE FUNCTION kip.audit_canonical(a kip.audit)
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_array(a.id, (extract(epoch FROM a.at) * 1000000)::bigint, a.user_id,
                           a.organisation_id, a.action, a.plan_id, a.resource, a.request_id,
                           a.remote_addr)::text
$function$;

CREATE FUNCTION kip.audit_link(p_prev bytea, a kip.audit)
 RETURNS bytea
 LANGUAGE sql
 STABLE
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

-- ------------------------------------------------ verification in steps
--
-- kip.audit_verify() above checks the whole chain in one statement, which a
-- large log takes past kipd's statement_timeout (about 8 µs per link: 1.8
-- million rows take some 15 s). kipd therefore walks the chain in steps,
-- each its own short statement, carrying the walk's position and tally in
-- a jsonb state from one step to the next:
--   kip.audit_verify_begin(mode, grace)  the first state
--   kip.audit_verify_step(state, chunk)  one chunk further
--   kip.audit_verify_run(state, chunk)   chunks until done or the step's
--                                         time budget is spent
--   kip.audit_verify_result(state)       the answer, once phase = 'done'
-- The walk has two phases: 'links' recomputes the links after_seq + 1 ..
-- head_seq (each judged as kip.audit_verify() judges it); 'unsealed' looks
-- for audit rows above after_id that are not in the chain. An
-- 'incremental' walk starts from the newest checkpoint (whose own link it
-- re-checks first); a 'full' walk from the first link and the lowest id.

-- The newest checkpoint as the answers show it, or NULL.
CREATE FUNCTION kip.audit_checkpoint_json(c kip.audit_checkpoint)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT CASE WHEN c.id IS NULL THEN NULL
         ELSE jsonb_build_object('seq', c.seq, 'id', c.audit_id, 'hash', encode(c.hash, 'hex'),
                                 'mode', c.mode, 'verified_at', c.verified_at,
                                 'verified_by', c.verified_by) END
$function$;

CREATE FUNCTION kip.audit_verify_begin(p_mode text, p_grace interval)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
DECLARE
  c kip.audit_checkpoint;
  s kip.audit_seal;
  a kip.audit;
  v_problem text;
  v_first jsonb;
  v_head bigint;
BEGIN
  SELECT coalesce(max(x.seq), 0) INTO v_head FROM kip.audit_seal x;
  IF p_mode = 'incremental' THEN
    SELECT * INTO c FROM kip.audit_checkpoint x ORDER BY x.seq DESC, x.id DESC LIMIT 1;
  END IF;
  -- The checkpoint's own link must still be what was verified: its seal
  -- row unchanged, its audit row still giving the sealed hash.
  IF c.id IS NOT NULL AND c.seq > 0 THEN
    SELECT * INTO s FROM kip.audit_seal x WHERE x.seq = c.seq;
    IF NOT FOUND THEN
      v_problem := 'seal_missing';
    ELSIF s.hash <> c.hash OR s.audit_id IS DISTINCT FROM c.audit_id THEN
      v_problem := 'seal_changed';
    ELSE
      SELECT * INTO a FROM kip.audit x WHERE x.id = s.audit_id;
      IF NOT FOUND THEN
        v_problem := 'row_deleted';
      ELSIF kip.audit_link(s.prev_hash, a) <> s.hash THEN
        v_problem := 'row_changed';
      END IF;
    END IF;
    IF v_problem IS NOT NULL THEN
      v_first := jsonb_build_object('seq', c.seq, 'id', c.audit_id, 'at', a.at, 'sealed_at', s.sealed_at,
                                    'problem', v_problem);
    END IF;
  END IF;
  RETURN jsonb_build_object(
    'mode', p_mode,
    'phase', 'links',
    'grace_seconds', extract(epoch FROM p_grace)::integer,
    'from', kip.audit_checkpoint_json(c),
    'after_seq', coalesce(c.seq, 0),
    'after_hash', encode(coalesce(c.hash, decode(repeat('00', 32), 'hex')), 'hex'),
    'head_seq', v_head,
    -- NULL: from the lowest id.
    'after_id', c.unsealed_floor,
    'max_id', (SELECT max(x.id) FROM kip.audit x),
    'tail_id', (SELECT max(x.audit_id) FROM kip.audit_seal x),
    'checked', CASE WHEN c.seq > 0 THEN 1 ELSE 0 END,
    'broken', CASE WHEN v_problem IS NULL THEN 0 ELSE 1 END,
    'first_broken', v_first,
    'unsealed', 0,
    'unsealed_overdue', 0,
    'oldest_unsealed_overdue_id', NULL,
    'min_unsealed_id', NULL);
END
$function$;

-- One chunk further: p_chunk links, or 4 * p_chunk audit ids in the
-- 'unsealed' phase (an index probe each, far cheaper than a link).
CREATE FUNCTION kip.audit_verify_step(p_state jsonb, p_chunk integer DEFAULT 5000)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
DECLARE
  v_after bigint := (p_state->>'after_seq')::bigint;
  v_after_hash bytea := decode(p_state->>'after_hash', 'hex');
  v_head bigint := (p_state->>'head_seq')::bigint;
  v_after_id bigint := (p_state->>'after_id')::bigint;
  v_max_id bigint := (p_state->>'max_id')::bigint;
  v_grace interval := make_interval(secs => (p_state->>'grace_seconds')::integer);
  v_n bigint;
  v_broken bigint;
  v_first jsonb;
  v_last bigint;
  v_last_hash bytea;
  v_unsealed bigint;
  v_overdue bigint;
  v_oldest bigint;
  v_min bigint;
BEGIN
  IF p_state->>'phase' = 'links' THEN
    WITH s AS (
      -- One link beyond the chunk: the last judged link needs the next
      -- one's prev_hash.
      SELECT x.* FROM kip.audit_seal x WHERE x.seq > v_after ORDER BY x.seq LIMIT p_chunk + 1
    ), link AS (
      SELECT s.seq, s.audit_id, s.prev_hash, s.hash, s.sealed_at, (x.arow).at,
             (x.arow).id IS NOT NULL AS present,
             CASE WHEN (x.arow).id IS NOT NULL THEN kip.audit_link(s.prev_hash, x.arow) END AS recomputed,
             coalesce(lag(s.hash) OVER w, v_after_hash) AS before_hash,
             coalesce(lag(s.seq) OVER w, v_after) AS before_seq,
             lead(s.prev_hash) OVER w AS next_prev,
             row_number() OVER w AS n
        FROM s
        -- Each link's audit row by its primary key (OFFSET 0 keeps this a
        -- lookup per link: no plan, whatever the statistics, may hash the
        -- whole table for one chunk).
        LEFT JOIN LATERAL (SELECT a AS arow FROM kip.audit a WHERE a.id = s.audit_id OFFSET 0) x ON true
      WINDOW w AS (ORDER BY s.seq)
    ), judged AS (
      SELECT l.*, CASE
          WHEN l.seq <> l.before_seq + 1 THEN 'seal_missing'
          WHEN l.prev_hash <> l.before_hash THEN 'seal_changed'
          WHEN NOT l.present THEN 'row_deleted'
          WHEN l.recomputed <> l.hash AND l.next_prev IS DISTINCT FROM l.hash
               AND l.next_prev IS NOT NULL THEN 'seal_changed'
          WHEN l.recomputed <> l.hash THEN 'row_changed'
        END AS problem
        FROM link l
       WHERE l.n <= p_chunk AND l.seq <= v_head
    )
    SELECT count(*), count(*) FILTER (WHERE j.problem IS NOT NULL), max(j.seq),
           (SELECT j2.hash FROM judged j2 ORDER BY j2.seq DESC LIMIT 1),
           (SELECT jsonb_build_object('seq', j3.seq, 'id', j3.audit_id, 'at', j3.at,
                                      'sealed_at', j3.sealed_at, 'problem', j3.problem)
              FROM judged j3 WHERE j3.problem IS NOT NULL ORDER BY j3.seq LIMIT 1)
      INTO v_n, v_broken, v_last, v_last_hash, v_first
      FROM judged j;
    IF v_n = 0 OR v_last >= v_head THEN
      p_state := jsonb_set(p_state, '{phase}', '"unsealed"');
    END IF;
    IF v_n > 0 THEN
      p_state := p_state || jsonb_build_object(
        'after_seq', v_last,
        'after_hash', encode(v_last_hash, 'hex'),
        'checked', (p_state->>'checked')::bigint + v_n,
        'broken', (p_state->>'broken')::bigint + v_broken,
        'first_broken', coalesce(p_state->'first_broken', v_first));
      -- (jsonb's null is not SQL NULL: keep the earlier one if any.)
      IF jsonb_typeof(p_state->'first_broken') = 'null' AND v_first IS NOT NULL THEN
        p_state := jsonb_set(p_state, '{first_broken}', v_first);
      END IF;
    END IF;
    RETURN p_state;
  END IF;
  IF p_state->>'phase' = 'unsealed' THEN
    WITH c AS (
      SELECT a.id, a.at, EXISTS (SELECT 1 FROM kip.audit_seal s WHERE s.audit_id = a.id) AS sealed
        FROM kip.audit a
       WHERE a.id > coalesce(v_after_id, -9223372036854775808) AND a.id <= v_max_id
       ORDER BY a.id LIMIT 4 * p_chunk
    )
    SELECT count(*), max(c.id), count(*) FILTER (WHERE NOT c.sealed),
           count(*) FILTER (WHERE NOT c.sealed AND c.at < now() - v_grace),
           min(c.id) FILTER (WHERE NOT c.sealed AND c.at < now() - v_grace),
           min(c.id) FILTER (WHERE NOT c.sealed)
      INTO v_n, v_last, v_unsealed, v_overdue, v_oldest, v_min
      FROM c;
    IF v_n > 0 THEN
      p_state := p_state || jsonb_build_object(
        'after_id', v_last,
        'unsealed', (p_state->>'unsealed')::bigint + v_unsealed,
        'unsealed_overdue', (p_state->>'unsealed_overdue')::bigint + v_overdue);
      IF jsonb_typeof(p_state->'oldest_unsealed_overdue_id') = 'null' AND v_oldest IS NOT NULL THEN
        p_state := jsonb_set(p_state, '{oldest_unsealed_overdue_id}', to_jsonb(v_oldest));
      END IF;
      IF jsonb_typeof(p_state->'min_unsealed_id') = 'null' AND v_min IS NOT NULL THEN
        p_state := jsonb_set(p_state, '{min_unsealed_id}', to_jsonb(v_min));
      END IF;
    END IF;
    IF v_n < 4 * p_chunk OR v_last >= v_max_id OR v_max_id IS NULL THEN
      p_state := jsonb_set(p_state, '{phase}', '"done"');
    END IF;
  END IF;
  RETURN p_state;
END
$function$;

-- How long one statement of a walk may go on adding chunks: a quarter of
-- the statement_timeout, at most a second (and at least one chunk).
CREATE FUNCTION kip.audit_verify_budget()
 RETURNS interval
 LANGUAGE sql
 STABLE
AS $function$
  SELECT make_interval(secs => CASE WHEN t.ms <= 0 THEN 1.0 ELSE least(1.0, t.ms / 4000.0) END)
    FROM (SELECT setting::bigint AS ms FROM pg_settings WHERE name = 'statement_timeout') t
$function$;

-- Chunks until the walk is done or the budget spent. Under a short
-- statement_timeout the chunks are smaller too: 5 links per millisecond of
-- it (a link takes 8-20 µs), at least 500.
CREATE FUNCTION kip.audit_verify_run(p_state jsonb, p_chunk integer DEFAULT 5000)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
DECLARE
  v_until timestamptz := clock_timestamp() + kip.audit_verify_budget();
  v_ms bigint := (SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout');
  v_chunk integer := CASE WHEN v_ms > 0 THEN least(p_chunk, greatest(500, v_ms * 5)) ELSE p_chunk END;
BEGIN
  LOOP
    EXIT WHEN p_state->>'phase' = 'done';
    p_state := kip.audit_verify_step(p_state, v_chunk);
    EXIT WHEN clock_timestamp() >= v_until;
  END LOOP;
  RETURN p_state;
END
$function$;

-- The answer of a finished walk (GET /v1/audit/verify, a job's result).
CREATE FUNCTION kip.audit_verify_result(p_state jsonb)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_object(
    'ok', (p_state->>'broken')::bigint = 0 AND (p_state->>'unsealed_overdue')::bigint = 0,
    'mode', p_state->'mode',
    'checked', p_state->'checked',
    'broken', p_state->'broken',
    'first_broken', p_state->'first_broken',
    'unsealed', p_state->'unsealed',
    'unsealed_overdue', p_state->'unsealed_overdue',
    'oldest_unsealed_overdue_id', p_state->'oldest_unsealed_overdue_id',
    'grace_seconds', p_state->'grace_seconds',
    'from', p_state->'from',
    'head', (SELECT jsonb_build_object('seq', s.seq, 'id', s.audit_id, 'hash', encode(s.hash, 'hex'),
                                       'sealed_at', s.sealed_at)
               FROM kip.audit_seal s WHERE s.seq = (p_state->>'after_seq')::bigint))
$function$;

-- Record a finished walk that found nothing wrong as the newest checkpoint
-- (does nothing for one that did). SECURITY DEFINER: kipd_runtime may read
-- the checkpoints, not write them. The link must still be in the chain
-- with the hash the walk saw. The new unsealed_floor stays below every
-- row that may still be sealed: below the lowest unsealed row seen, the
-- sealer's tail when the walk began and the lowest id the sealer is still
-- waiting for.
CREATE FUNCTION kip.audit_checkpoint_record(p_state jsonb, p_by uuid, p_request_id text, p_job uuid)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
  v_seq bigint := (p_state->>'after_seq')::bigint;
  v_hash bytea := decode(p_state->>'after_hash', 'hex');
  v_audit_id bigint;
  v_floor bigint;
BEGIN
  IF p_state->>'phase' <> 'done' OR (p_state->>'broken')::bigint <> 0
     OR (p_state->>'unsealed_overdue')::bigint <> 0 THEN
    RETURN;
  END IF;
  IF v_seq > 0 THEN
    SELECT s.audit_id INTO v_audit_id FROM kip.audit_seal s WHERE s.seq = v_seq AND s.hash = v_hash;
    IF NOT FOUND THEN
      RETURN;
    END IF;
  END IF;
  v_floor := least((p_state->>'tail_id')::bigint, (p_state->>'max_id')::bigint,
                   (p_state->>'min_unsealed_id')::bigint - 1,
                   (SELECT min(g.audit_id) - 1 FROM kip.audit_seal_gap g));
  v_floor := coalesce(v_floor, (p_state->>'after_id')::bigint, 0);
  INSERT INTO kip.audit_checkpoint (seq, audit_id, hash, unsealed_floor, mode, checked, verified_by,
                                    request_id, job_id)
  VALUES (v_seq, v_audit_id, v_hash, v_floor, p_state->>'mode', (p_state->>'checked')::bigint, p_by,
          p_request_id, p_job);
END
$function$;

-- One step of the oldest unfinished verification job (kipd's verifier,
-- daemon/app/verifier.c, calls it about once a second and at once again
-- while it returns a job). The job row is claimed FOR UPDATE SKIP LOCKED:
-- with several kipd on one database a job is stepped by one at a time, and
-- its progress is committed with each step, so a restarted kipd goes on
-- where the last step ended. Returns no row when there is nothing to do.
CREATE FUNCTION kip.audit_verify_job_step(p_chunk integer DEFAULT 5000)
 RETURNS TABLE(job_id uuid, mode text, done boolean, result jsonb)
 LANGUAGE plpgsql
AS $function$
DECLARE
  j kip.audit_verify_jobs;
  v_state jsonb;
BEGIN
  SELECT * INTO j FROM kip.audit_verify_jobs x
   WHERE x.status <> 'done' ORDER BY x.requested_at, x.id LIMIT 1 FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  v_state := coalesce(j.state, kip.audit_verify_begin(j.mode, make_interval(secs => j.grace_seconds)));
  v_state := kip.audit_verify_run(v_state, p_chunk);
  job_id := j.id;
  mode := j.mode;
  done := v_state->>'phase' = 'done';
  IF done THEN
    result := kip.audit_verify_result(v_state);
    PERFORM kip.audit_checkpoint_record(v_state, j.requested_by, 'verify-job-' || j.id, j.id);
  END IF;
  UPDATE kip.audit_verify_jobs x
     SET status = CASE WHEN done THEN 'done' ELSE 'running' END,
         state = v_state, result = audit_verify_job_step.result, steps = x.steps + 1,
         started_at = coalesce(x.started_at, now()), updated_at = now(),
         finished_at = CASE WHEN done THEN now() END
   WHERE x.id = j.id;
  RETURN NEXT;
END
$function$;

-- A job as GET /v1/audit/verify-jobs/{id} shows it.
CREATE FUNCTION kip.audit_verify_job_json(j kip.audit_verify_jobs)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_object(
    'id', j.id, 'mode', j.mode, 'status', j.status, 'requested_by', j.requested_by,
    'requested_at', j.requested_at, 'started_at', j.started_at, 'finished_at', j.finished_at,
    'steps', j.steps, 'grace_seconds', j.grace_seconds,
    'progress', CASE WHEN j.state IS NULL THEN NULL ELSE jsonb_build_object(
        'phase', j.state->'phase', 'checked', j.state->'checked', 'head_seq', j.state->'head_seq',
        'broken', j.state->'broken') END,
    'result', j.result)
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
