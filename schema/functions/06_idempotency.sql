-- 06_idempotency.sql: Idempotency-Key on POST (daemon/app/idem.c, migration
-- 016; docs/api.md, "Idempotency").
--
-- A keyed POST runs as one transaction of two statements, sent in one round
-- trip (pg_pool_tx): kip.idem_claim(), then the route's own statement wrapped
-- so that its answer goes to kip.idem_store() in the same transaction. A
-- repeat of a stored request is answered by kip.idem_replay().
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- How long a key is kept.
CREATE FUNCTION kip.idem_ttl()
 RETURNS interval
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT interval '24 hours'
$function$;

-- The transaction-level advisory lock that marks (user, key) as running.
CREATE FUNCTION kip.idem_lock_key(p_user_id uuid, p_key text)
 RETURNS bigint
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT hashtextextended(p_user_id::text || '/' || p_key, 7305872418)
$function$;

-- Before the write: authenticate, take the key's lock without waiting
-- (409 idempotency_in_progress while another transaction holds it), and look
-- for a stored answer. A stored answer for another request is 422
-- idempotency_key_reused; one for this request raises SQLSTATE KI200, on
-- which kipd rolls back and answers with kip.idem_replay(). An expired row
-- is left for kip.idem_store() to replace. Notes where the audit rows of this
-- transaction start, for kip.idem_store().
CREATE FUNCTION kip.idem_claim(p_ctx jsonb, p_key text, p_hash text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_user kip.users;
  v_row kip.idempotency;
  v_from bigint;
BEGIN
  v_user := kip.begin_request(p_ctx);
  IF NOT pg_try_advisory_xact_lock(kip.idem_lock_key(v_user.id, p_key)) THEN
    PERFORM kip.fail(409, 'idempotency_in_progress', 'Idempotency-Key',
                     'a request with this key is still running; repeat it once that one has answered');
  END IF;
  SELECT * INTO v_row FROM kip.idempotency i
   WHERE i.user_id = v_user.id AND i.key = p_key AND i.created_at > now() - kip.idem_ttl();
  IF FOUND THEN
    IF v_row.request_hash <> p_hash THEN
      PERFORM kip.fail(422, 'idempotency_key_reused', 'Idempotency-Key',
                       'was used for another request (another method, path or body) in the last 24 hours');
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'KI200', MESSAGE = 'stored answer: replay';
  END IF;
  SELECT s.last_value INTO v_from FROM kip.audit_id_seq s;
  PERFORM set_config('kip.idem_audit_from', v_from::text, true);
END
$function$;

-- After the write, in its transaction: keep its answer (status, body as the
-- database made it, CPR numbers sealed, ETag, Location) and the plans its
-- audit rows name, for the replay's access check and audit. True, so that the
-- wrapped statement can call it in its WHERE clause.
CREATE FUNCTION kip.idem_store(p_key text, p_hash text, p_status integer, p_body json, p_etag text,
                               p_location text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_audit jsonb;
BEGIN
  SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('plan_id', a.plan_id, 'resource', a.resource)),
                  '[]'::jsonb)
    INTO v_audit
    FROM kip.audit a
   WHERE a.id >= current_setting('kip.idem_audit_from')::bigint
     AND a.request_id = current_setting('kip.request_id', true);
  INSERT INTO kip.idempotency AS i (user_id, key, request_hash, status, body, etag, location, audit)
  VALUES (kip.actor_id(), p_key, p_hash, p_status, p_body, p_etag, p_location, v_audit)
  ON CONFLICT (user_id, key) DO UPDATE
     SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status, body = EXCLUDED.body,
         etag = EXCLUDED.etag, location = EXCLUDED.location, audit = EXCLUDED.audit, created_at = now()
   WHERE i.created_at <= now() - kip.idem_ttl();
  IF NOT FOUND THEN
    -- Only kip.idem_claim()'s lock holder gets here, and it found no live row.
    RAISE EXCEPTION 'idempotency key stored meanwhile';
  END IF;
  RETURN true;
END
$function$;

-- A repeat of a stored request: the stored answer, after the same checks as
-- a read of what it shows. The caller must still see every plan the first
-- answer was about (a withdrawn consent hides it: 404, as a read would), and
-- the replay is audited like a read: one idempotency.replay row per plan (and
-- resource) the first request audited, or one without a plan.
CREATE FUNCTION kip.idem_replay(p_ctx jsonb, p_key text, p_hash text)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_user kip.users;
  v_row kip.idempotency;
  v_entry jsonb;
BEGIN
  v_user := kip.begin_request(p_ctx);
  SELECT * INTO v_row FROM kip.idempotency i
   WHERE i.user_id = v_user.id AND i.key = p_key AND i.created_at > now() - kip.idem_ttl();
  IF NOT FOUND THEN
    -- Expired between the claim and now: the client may simply repeat.
    PERFORM kip.fail(409, 'idempotency_in_progress', 'Idempotency-Key',
                     'the stored answer expired meanwhile; repeat the request');
  END IF;
  IF v_row.request_hash <> p_hash THEN
    PERFORM kip.fail(422, 'idempotency_key_reused', 'Idempotency-Key',
                     'was used for another request (another method, path or body) in the last 24 hours');
  END IF;
  FOR v_entry IN SELECT e FROM jsonb_array_elements(v_row.audit) e WHERE e->>'plan_id' IS NOT NULL LOOP
    IF NOT kip.plan_visible(v_user, (v_entry->>'plan_id')::uuid) THEN
      PERFORM kip.fail(404, NULL, NULL, 'no such plan');
    END IF;
  END LOOP;
  IF jsonb_array_length(v_row.audit) = 0 THEN
    PERFORM kip.audit('idempotency.replay', NULL, 'idempotency');
  ELSE
    FOR v_entry IN SELECT e FROM jsonb_array_elements(v_row.audit) e LOOP
      PERFORM kip.audit('idempotency.replay', (v_entry->>'plan_id')::uuid, v_entry->>'resource');
    END LOOP;
  END IF;
  RETURN ROW(v_row.status, v_row.body, v_row.etag, v_row.location, v_user.id)::kip.reply;
END
$function$;

-- Forget the keys older than kip.idem_ttl() (the daily pass). Returns how
-- many.
CREATE FUNCTION kip.idem_purge()
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_n integer;
BEGIN
  DELETE FROM kip.idempotency WHERE created_at <= now() - kip.idem_ttl();
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$function$;
