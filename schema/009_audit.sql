-- 009_audit: the audit trail made trustworthy (issue 5).
--
--   * Every audit row is written by kip.audit() or kip.audit_plans() (lists:
--     one row per plan shown), in the request's own transaction. Each route
--     has its own action name, "<resource>.<verb>" (docs/audit.md lists them).
--   * Append-only by grants: kipd serves as a member of the NOLOGIN group
--     role kipd_runtime, which may SELECT and INSERT audit rows and nothing
--     more. The tables belong to the role that runs the migrations.
--   * A SHA-256 hash chain over the rows, kept in the insert-only table
--     kip.audit_seal. Rows are inserted unsealed, so requests never wait on
--     a chain head; kipd's sealer calls kip.audit_seal() about once a second
--     and kip.audit_verify() recomputes the whole chain.
--   * The auditor's view (kip_api.audit_list, audit_verify) and the
--     citizen's right of access (kip_api.plan_access_log).

-- ------------------------------------------------------------ the roles

-- The group role kipd's runtime login is a member of. CREATE ROLE is
-- cluster-wide: two databases of one cluster may migrate at the same time.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kipd_runtime') THEN
    CREATE ROLE kipd_runtime NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;

-- ------------------------------------------------------- action names

-- The stored action of kip.audit(verb, plan, resource): "<resource>.<verb>",
-- with the collection reads named as lists. An action that already holds a
-- dot is stored as given.
CREATE FUNCTION kip.audit_action(p_action text, p_resource text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
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
$$;

-- PL/pgSQL rather than SQL: its INSERT plan is cached for the session, and
-- an error raised while writing the row names "function kip.audit(" in its
-- context, which kipd answers with 503 (app/problem.c).
CREATE OR REPLACE FUNCTION kip.audit(p_action text, p_plan_id uuid, p_resource text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kip.audit (user_id, organisation_id, action, plan_id, resource, request_id, remote_addr)
  VALUES (kip.actor_id(), kip.actor_org(), kip.audit_action(p_action, p_resource), p_plan_id,
          p_resource, nullif(current_setting('kip.request_id', true), ''),
          nullif(current_setting('kip.remote_addr', true), ''));
END
$$;

-- A list's audit: one row per distinct plan shown, in one statement.
CREATE FUNCTION kip.audit_plans(p_action text, p_plan_ids uuid[], p_resource text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kip.audit (user_id, organisation_id, action, plan_id, resource, request_id, remote_addr)
  SELECT kip.actor_id(), kip.actor_org(), kip.audit_action(p_action, p_resource), x, p_resource,
         nullif(current_setting('kip.request_id', true), ''),
         nullif(current_setting('kip.remote_addr', true), '')
    FROM (SELECT DISTINCT x FROM unnest(p_plan_ids) AS x WHERE x IS NOT NULL) d;
END
$$;

-- ------------------------------------------------------------ the chain

-- One link per audit row, in the order they were sealed (which is id order
-- except for rows that committed late). hash = sha256(prev_hash ||
-- kip.audit_canonical(row)); the first link's prev_hash is 32 zero bytes.
-- Insert-only: kipd_runtime may only read it.
CREATE TABLE kip.audit_seal (
  seq        bigint PRIMARY KEY CHECK (seq > 0),
  audit_id   bigint NOT NULL CONSTRAINT audit_seal_audit_id_key UNIQUE,
  prev_hash  bytea NOT NULL CHECK (length(prev_hash) = 32),
  hash       bytea NOT NULL CHECK (length(hash) = 32),
  sealed_at  timestamptz NOT NULL DEFAULT now()
);

-- Ids the sealer skipped because their row was not (yet) visible: a
-- transaction still running, or one that rolled back. Rechecked at each
-- pass; forgotten after p_gap_expiry. Bookkeeping only, never trusted by
-- verification.
CREATE TABLE kip.audit_seal_gap (
  audit_id  bigint PRIMARY KEY,
  noted_at  timestamptz NOT NULL DEFAULT now()
);

-- The row as hashed: a JSON array of every column, the time as integer
-- microseconds since the epoch so that no time zone setting changes it.
CREATE FUNCTION kip.audit_canonical(a kip.audit) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_array(a.id, (extract(epoch FROM a.at) * 1000000)::bigint, a.user_id,
                           a.organisation_id, a.action, a.plan_id, a.resource, a.request_id,
                           a.remote_addr)::text
$$;

CREATE FUNCTION kip.audit_link(p_prev bytea, a kip.audit) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT sha256(p_prev || convert_to(kip.audit_canonical(a), 'UTF8'))
$$;

-- Append the committed, unsealed rows to the chain: first the skipped ids
-- that have become visible, then the new rows after the highest sealed id,
-- at most p_max in all. One sealer at a time (advisory lock; a second one
-- returns at once with sealed = 0 and no head). SECURITY
-- DEFINER: kipd_runtime cannot write the seal tables itself.
CREATE FUNCTION kip.audit_seal(p_max integer DEFAULT 10000,
                               p_gap_expiry interval DEFAULT interval '10 minutes')
RETURNS TABLE (sealed integer, head_seq bigint, head_hash text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
$$;

-- Recompute the whole chain from the audit rows as they are now. A link is
-- broken when
--   row_deleted:  its audit row is gone;
--   row_changed:  the row's content no longer gives the sealed hash (the
--                 next link still agrees with the sealed hash);
--   seal_changed: a seal row was altered (its hash disagrees with the next
--                 link's prev_hash, or its prev_hash with the previous hash);
--   seal_missing: a seal row was deleted (seq not contiguous).
-- Rows not sealed within p_grace count as unsealed_overdue.
CREATE FUNCTION kip.audit_verify(p_grace interval DEFAULT interval '1 minute') RETURNS jsonb
LANGUAGE sql STABLE AS $$
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
$$;

-- True when the current role cannot change or remove audit rows: it owns
-- neither the table nor is a superuser, and holds no UPDATE, DELETE or
-- TRUNCATE on it. Shown by /readyz.
CREATE FUNCTION kip.audit_append_only() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
     AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_class c
                                         WHERE c.oid = 'kip.audit'::regclass), 'USAGE')
     AND NOT has_table_privilege(current_user, 'kip.audit', 'UPDATE')
     AND NOT has_table_privilege(current_user, 'kip.audit', 'DELETE')
     AND NOT has_table_privilege(current_user, 'kip.audit', 'TRUNCATE')
$$;

-- --------------------------------------------------------- the auditor

-- GET /v1/audit: newest first, keyset on id. Filters: plan_id, user_id,
-- organisation_id, action, from, to (RFC 3339). auditor only (403).
CREATE FUNCTION kip_api.audit_list(p_ctx jsonb, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
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
    PERFORM kip.fail(422, 'to', 'must not lie before from');
  END IF;
  BEGIN
    v_before := kip.cursor_decode(p_query->>'cursor')::bigint;
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    PERFORM kip.fail(400, 'cursor', 'not a cursor from this list');
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
$$;

-- GET /v1/audit/verify: seal what is committed, then recompute the chain.
CREATE FUNCTION kip_api.audit_verify(p_ctx jsonb, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_grace integer := coalesce((p_query->>'grace_seconds')::integer, 60);
  v_result jsonb;
BEGIN
  PERFORM kip.require_role(u, ARRAY['auditor'], 'only an auditor verifies the audit log');
  PERFORM kip.audit_seal();
  v_result := kip.audit_verify(make_interval(secs => v_grace));
  PERFORM kip.audit('audit.verify', NULL, 'audit');
  RETURN kip.ok(v_result);
END
$$;

-- ------------------------------------------------- the citizen's access

-- GET /v1/plans/{id}/access-log: who has read or changed this plan, newest
-- first. The owning organisation's coordinators only: 404 for those who
-- cannot see the plan, 403 for those who can but may not see its log.
CREATE FUNCTION kip_api.plan_access_log(p_ctx jsonb, p_id uuid, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_id);
  v_limit integer := kip.page_limit(p_query);
  v_before bigint;
  v_items jsonb[];
  v_keys text[];
BEGIN
  IF p.owner_organisation_id <> u.organisation_id OR NOT ('coordinator' = ANY (u.roles)) THEN
    PERFORM kip.fail(403, 'Authorization',
                     'only a coordinator of the owning organisation reads the access log');
  END IF;
  BEGIN
    v_before := kip.cursor_decode(p_query->>'cursor')::bigint;
  EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    PERFORM kip.fail(400, 'cursor', 'not a cursor from this list');
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
$$;

-- --------------------------------------- lists: one audit row per plan
--
-- The list functions below are those of 003, 005 and 006 with only their
-- audit statement changed to kip.audit_plans() and a route's own action.
CREATE OR REPLACE FUNCTION kip_api.plan_list(p_ctx jsonb, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  c record := kip.cursor_ts_id(p_query);
  v_limit integer := kip.page_limit(p_query);
  v_status text := p_query->>'status';
  v_org uuid := (p_query->>'organisation')::uuid;
  v_coord uuid := (p_query->>'coordinator')::uuid;
  v_q text := nullif(btrim(p_query->>'q'), '');
  v_like text;
  v_cpr text;
  v_items jsonb[];
  v_keys text[];
  v_ids uuid[];
BEGIN
  IF v_q IS NOT NULL THEN
    v_like := '%' || replace(replace(replace(v_q, '\', '\\'), '%', '\%'), '_', '\_') || '%';
    IF v_q ~ '^[0-9]{6}-?[0-9]{4}$' THEN
      v_cpr := left(v_q, 6) || '-' || right(v_q, 4);
    END IF;
  END IF;
  SELECT array_agg(kip.plan_summary(p) ORDER BY p.created_at DESC, p.id DESC),
         array_agg(p.created_at::text || '|' || p.id ORDER BY p.created_at DESC, p.id DESC),
         array_agg(p.id ORDER BY p.created_at DESC, p.id DESC)
    INTO v_items, v_keys, v_ids
    FROM (SELECT * FROM kip.plans p
           -- The candidates are the plans the access rule can grant, each
           -- found through its own index (owner, consent coverage,
           -- participation), so a page never walks every plan; the rule
           -- itself still decides.
           WHERE p.id IN (SELECT o.id FROM kip.plans o WHERE o.owner_organisation_id = u.organisation_id
                          UNION ALL
                          SELECT cc.plan_id FROM kip.consents cc
                           WHERE cc.contact_organisation_ids @> ARRAY[u.organisation_id]
                             AND cc.superseded_at IS NULL AND cc.withdrawn_at IS NULL AND cc.kip_consent
                          UNION ALL
                          SELECT pa.plan_id FROM kip.participants pa
                           WHERE pa.user_id = u.id AND pa.left_at IS NULL)
             AND kip.plan_access(u.id, u.organisation_id, u.roles, p.id, p.owner_organisation_id)
             AND (c.ts IS NULL OR (p.created_at, p.id) < (c.ts, c.id))
             AND (v_status IS NULL OR p.status = v_status)
             AND (v_org IS NULL OR p.owner_organisation_id = v_org)
             AND (v_coord IS NULL OR EXISTS (
                   SELECT 1 FROM kip.participants cp
                    WHERE cp.id = p.coordinator_participant_id AND cp.user_id = v_coord))
             AND (v_q IS NULL OR p.citizen_name ILIKE v_like OR p.citizen_cpr = v_cpr)
           ORDER BY p.created_at DESC, p.id DESC LIMIT v_limit + 1) p;
  -- Audit every plan whose citizen the caller now sees in the list.
  PERFORM kip.audit_plans('plan.list', v_ids[1:v_limit], 'plan');
  RETURN kip.ok(kip.page(v_items, v_keys, v_limit));
END
$$;

CREATE OR REPLACE FUNCTION kip_api.my_meetings(p_ctx jsonb, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_from date := coalesce((p_query->>'from')::date, kip.today() - 30);
  v_to date := coalesce((p_query->>'to')::date, v_from + 180);
  v_items jsonb;
  v_plans uuid[];
BEGIN
  IF v_to < v_from THEN
    PERFORM kip.fail(422, 'to', 'must not lie before from');
  END IF;
  IF v_to - v_from > 400 THEN
    PERFORM kip.fail(422, 'to', 'the range is at most 400 days');
  END IF;
  SELECT coalesce(jsonb_agg(kip.meeting_doc(x.m) || jsonb_build_object(
           'citizen', jsonb_build_object('name', (x.p).citizen_name, 'cpr', kip.cpr_mask((x.p).citizen_cpr)),
           'my_participant_id', x.my_participant_id)
           ORDER BY (x.m).starts_at, (x.m).id), '[]'::jsonb),
         array_agg(DISTINCT (x.p).id)
    INTO v_items, v_plans
    FROM kip.my_meetings(u, v_from::timestamp AT TIME ZONE 'Europe/Copenhagen',
                         (v_to + 1)::timestamp AT TIME ZONE 'Europe/Copenhagen') x;
  PERFORM kip.audit_plans('meeting.list_mine', v_plans, 'meeting');
  RETURN kip.ok(jsonb_build_object('items', v_items, 'next_cursor', NULL));
END
$$;

-- The events of a user's calendar feed, for kipd to render as iCalendar:
-- meetings from 90 days back, with the caller's own attendance window. The
-- citizen appears by initials unless the user chose the full name; the CPR
-- never appears.
CREATE FUNCTION kip.calendar_doc(u kip.users, p_action text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_full boolean := coalesce((SELECT s.calendar_show_citizen_name FROM kip.user_settings s
                               WHERE s.user_id = u.id), false);
  v_events jsonb;
  v_plans uuid[];
BEGIN
  SELECT coalesce(jsonb_agg(jsonb_build_object(
           'uid', (x.m).id::text || '@kipd',
           'sequence', (x.m).sequence,
           'status', (x.m).status,
           'start', extract(epoch FROM coalesce(i.window_start, (x.m).starts_at))::bigint,
           'end', extract(epoch FROM coalesce(i.window_end, kip.meeting_ends_at(x.m)))::bigint,
           'meeting_start', extract(epoch FROM (x.m).starts_at)::bigint,
           'meeting_end', extract(epoch FROM kip.meeting_ends_at(x.m))::bigint,
           'has_window', i.window_start IS NOT NULL OR i.window_end IS NOT NULL,
           'stamp', extract(epoch FROM (x.m).updated_at)::bigint,
           'citizen', CASE WHEN v_full THEN (x.p).citizen_name ELSE kip.initials((x.p).citizen_name) END,
           'purpose', (x.m).purpose,
           'location_kind', (x.m).location_kind, 'address', (x.m).location_address,
           'room', (x.m).location_room, 'video_url', (x.m).location_video_url,
           'mode', i.mode,
           'chair', ch.name,
           'cancel_reason', (x.m).cancel_reason)
           ORDER BY (x.m).starts_at, (x.m).id), '[]'::jsonb),
         array_agg(DISTINCT (x.p).id)
    INTO v_events, v_plans
    FROM kip.my_meetings(u, now() - interval '90 days', 'infinity') x
    LEFT JOIN kip.meeting_invitees i ON i.meeting_id = (x.m).id AND i.participant_id = x.my_participant_id
    LEFT JOIN kip.participants ch ON ch.id = (x.m).chair_participant_id;
  PERFORM kip.audit_plans(p_action, v_plans, 'calendar');
  RETURN jsonb_build_object('name', 'KIP-møder', 'events', v_events);
END
$$;

CREATE OR REPLACE FUNCTION kip_api.my_calendar(p_ctx jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  RETURN kip.ok(kip.calendar_doc(u, 'calendar.mine'));
END
$$;

-- The secret feed URL: no bearer token. The key's SHA-256 names the feed;
-- an unknown, revoked or mismatched key, or an inactive user, is 404.
CREATE OR REPLACE FUNCTION kip_api.calendar_feed(p_ctx jsonb, p_feed_id uuid, p_key_hash text) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users;
  f kip.calendar_feeds;
BEGIN
  PERFORM set_config('kip.request_id', coalesce(p_ctx->>'request_id', ''), true),
          set_config('kip.remote_addr', coalesce(p_ctx->>'remote_addr', ''), true),
          set_config('kip.user_id', '', true),
          set_config('kip.organisation_id', '', true);
  SELECT * INTO f FROM kip.calendar_feeds
   WHERE id = p_feed_id AND key_hash = p_key_hash AND revoked_at IS NULL;
  SELECT * INTO u FROM kip.users WHERE id = f.user_id AND active;
  IF u.id IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no such calendar feed');
  END IF;
  PERFORM set_config('kip.user_id', u.id::text, true),
          set_config('kip.organisation_id', u.organisation_id::text, true);
  IF f.last_used_at IS NULL OR f.last_used_at < now() - interval '1 minute' THEN
    UPDATE kip.calendar_feeds SET last_used_at = now() WHERE id = f.id;
  END IF;
  RETURN kip.ok(kip.calendar_doc(u, 'calendar.feed'));
END
$$;

CREATE OR REPLACE FUNCTION kip_api.my_actions(p_ctx jsonb, p_query jsonb) RETURNS kip.reply
LANGUAGE plpgsql AS $$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_limit integer := kip.page_limit(p_query);
  v_scope text := coalesce(p_query->>'scope', 'mine');
  v_status text := p_query->>'status';
  v_overdue boolean := (p_query->>'overdue')::boolean;
  v_due_before date := (p_query->>'due_before')::date;
  v_today date := kip.today();
  v_cursor text := kip.cursor_decode(p_query->>'cursor');
  c_late integer;
  c_due date;
  c_id uuid;
  v_items jsonb[];
  v_keys text[];
BEGIN
  IF v_cursor IS NOT NULL THEN
    BEGIN
      c_late := split_part(v_cursor, '|', 1)::integer;
      c_due := split_part(v_cursor, '|', 2)::date;
      c_id := split_part(v_cursor, '|', 3)::uuid;
    EXCEPTION WHEN OTHERS THEN
      PERFORM kip.fail(400, 'cursor', 'not a cursor from this list');
    END;
  END IF;
  SELECT array_agg(kip.action_item(x.a, x.p, x.r, x.c) ORDER BY x.late, x.due, (x.a).id),
         array_agg(x.late || '|' || x.due || '|' || (x.a).id ORDER BY x.late, x.due, (x.a).id)
    INTO v_items, v_keys
    FROM (SELECT a, p, r, c, late, due
            FROM kip.actions a
            JOIN kip.participants r ON r.id = a.responsible_participant_id
            JOIN kip.plans p ON p.id = a.plan_id
            LEFT JOIN kip.participants c ON c.id = p.coordinator_participant_id
            CROSS JOIN LATERAL (SELECT CASE WHEN a.status IN ('open', 'in_progress') AND a.due_date < v_today
                                            THEN 0 ELSE 1 END AS late,
                                       coalesce(a.due_date, 'infinity'::date) AS due) k
           WHERE CASE WHEN v_scope = 'organisation' THEN r.organisation_id = u.organisation_id
                      ELSE r.user_id = u.id END
             AND kip.plan_access(u.id, u.organisation_id, u.roles, p.id, p.owner_organisation_id)
             AND (v_status IS NULL OR a.status = v_status)
             AND (v_overdue IS NULL OR (k.late = 0) = v_overdue)
             AND (v_due_before IS NULL OR a.due_date < v_due_before)
             AND (v_cursor IS NULL OR (k.late, k.due, a.id) > (c_late, c_due, c_id))
           ORDER BY k.late, k.due, a.id
           LIMIT v_limit + 1) x;
  -- Only the plans of the actions shown (not the look-ahead row's).
  PERFORM kip.audit_plans('action.list_mine',
                          ARRAY(SELECT DISTINCT (i->>'plan_id')::uuid FROM unnest(v_items[1:v_limit]) i),
                          'action');
  RETURN kip.ok(kip.page(v_items, v_keys, v_limit));
END
$$;

-- The old one-argument form, kept for callers: the user's own calendar.
CREATE OR REPLACE FUNCTION kip.calendar_doc(u kip.users) RETURNS jsonb LANGUAGE sql AS $$
  SELECT kip.calendar_doc(u, 'calendar.mine')
$$;

-- ------------------------------------------------------------ the grants
--
-- kipd_runtime may use every table, except that it may only read and add
-- audit rows, only read the seal chain, and not touch the sealer's
-- bookkeeping. ALTER DEFAULT PRIVILEGES gives the tables, sequences and
-- functions of later migrations (created by the same owner) the same
-- grants; a later table that must be append-only revokes them itself.

GRANT USAGE ON SCHEMA kip, kip_api TO kipd_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA kip TO kipd_runtime;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA kip TO kipd_runtime;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA kip, kip_api TO kipd_runtime;
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON kip.audit FROM kipd_runtime, PUBLIC;
REVOKE ALL ON kip.audit_seal, kip.audit_seal_gap FROM kipd_runtime, PUBLIC;
GRANT SELECT ON kip.audit_seal TO kipd_runtime;

ALTER DEFAULT PRIVILEGES IN SCHEMA kip GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO kipd_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA kip GRANT USAGE, SELECT ON SEQUENCES TO kipd_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA kip, kip_api GRANT EXECUTE ON FUNCTIONS TO kipd_runtime;
