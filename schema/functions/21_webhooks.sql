-- 21_webhooks.sql: webhook subscriptions and their deliveries
-- (daemon/api/webhooks.c for the routes, daemon/app/webhook.c for the
-- delivery worker). docs/webhooks.md has the design.
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

CREATE FUNCTION kip.webhook_doc(w kip.webhooks)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_object(
    'id', w.id,
    'organisation_id', w.organisation_id,
    'url', w.url,
    'event_types', to_jsonb(w.event_types),
    'description', w.description,
    'created_by', w.created_by,
    'created_at', w.created_at)
$function$;

CREATE FUNCTION kip.webhook_delivery_doc(d kip.webhook_deliveries, p_event_type text)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_build_object(
    'id', d.id,
    'webhook_id', d.webhook_id,
    'event_id', d.event_id::text,
    'event_type', p_event_type,
    'status', d.status,
    'attempts', d.attempts,
    'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,
    'last_attempt_at', d.last_attempt_at,
    'last_status', d.last_status,
    'last_error', d.last_error,
    'delivered_at', d.delivered_at,
    'created_at', d.created_at)
$function$;

-- The access rule for a subscription: its organisation's integration
-- access to the plan, through the user who created it (still active and
-- still in that organisation). The same kip.plan_access as every request,
-- evaluated when the event is delivered, so a consent withdrawal stops
-- delivery at once.
CREATE FUNCTION kip.webhook_sees(p_user_id uuid, p_org uuid, p_plan_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT EXISTS (
    SELECT 1 FROM kip.plans p, kip.users u
     WHERE p.id = p_plan_id AND u.id = p_user_id AND u.active AND u.organisation_id = p_org
       AND kip.plan_access(u.id, p_org, ARRAY['integration'], p.id, p.owner_organisation_id))
$function$;

-- The fan-out: each new event becomes one pending delivery per live
-- subscription that wants its type and may see its plan now. It runs in the
-- transaction that writes the event, so a rolled-back change has no
-- delivery, and a committed one has all of its deliveries.
CREATE FUNCTION kip.webhook_fanout()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  INSERT INTO kip.webhook_deliveries (webhook_id, event_id)
  SELECT w.id, NEW.id
    FROM kip.webhooks w
   WHERE w.deleted_at IS NULL
     AND (cardinality(w.event_types) = 0 OR NEW.kind = ANY (w.event_types))
     AND kip.webhook_sees(w.created_by, w.organisation_id, NEW.plan_id)
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END;
$function$;

CREATE TRIGGER webhooks_fanout AFTER INSERT ON kip.events
  FOR EACH ROW EXECUTE FUNCTION kip.webhook_fanout();

-- For /metrics, every few seconds from the delivery worker: deliveries still
-- pending (due now or waiting for a retry) and the age in seconds of the
-- oldest (0: none). Reads the partial index of pending deliveries only.
CREATE FUNCTION kip.webhook_backlog()
 RETURNS TABLE(pending bigint, oldest_age_s double precision)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT count(*), coalesce(extract(epoch FROM now() - min(d.created_at))::double precision, 0)
    FROM kip.webhook_deliveries d
   WHERE d.status = 'pending'
$function$;

-- The delivery worker's claim (app/webhook.c): up to p_limit due
-- deliveries, locked with SKIP LOCKED so that several kipd instances on one
-- database take different ones. Each claimed delivery gets a new claim id
-- and its next_attempt_at moves p_lease_ms ahead: that is the lease of the
-- attempt. If the kipd that claimed it dies, the lease runs out and the
-- delivery is claimed again (at least once).
--
-- The access rule is applied here, at delivery time: a delivery whose
-- subscription was deleted or may no longer see the plan is withheld and
-- never sent. Every delivery sent is audited like a read by the
-- subscription's creator (action webhook.deliver, request id
-- "webhook-<delivery id>").
CREATE FUNCTION kip.webhook_claim(p_limit integer, p_lease_ms integer)
 RETURNS TABLE (delivery_id uuid, claim uuid, url text, secret text, event_id text, body text)
 LANGUAGE plpgsql
AS $function$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT d.id, w.url, w.secret, w.organisation_id, w.created_by, w.deleted_at, e.plan_id,
           e.id AS eid, kip.event_json(e)::text AS doc
      FROM kip.webhook_deliveries d
      JOIN kip.webhooks w ON w.id = d.webhook_id
      JOIN kip.events e ON e.id = d.event_id
     WHERE d.status = 'pending' AND d.next_attempt_at <= now()
     ORDER BY d.next_attempt_at, d.event_id
     LIMIT p_limit
     FOR UPDATE OF d SKIP LOCKED
  LOOP
    IF r.deleted_at IS NOT NULL OR NOT kip.webhook_sees(r.created_by, r.organisation_id, r.plan_id) THEN
      UPDATE kip.webhook_deliveries
         SET status = 'withheld', claim = NULL,
             last_error = CASE WHEN r.deleted_at IS NOT NULL THEN 'the subscription was deleted'
                               ELSE 'the subscription may no longer see the plan' END
       WHERE id = r.id;
      CONTINUE;
    END IF;
    delivery_id := r.id;
    claim := gen_random_uuid();
    url := r.url;
    secret := r.secret;
    event_id := r.eid::text;
    body := r.doc;
    UPDATE kip.webhook_deliveries d
       SET claim = webhook_claim.claim, attempts = d.attempts + 1, last_attempt_at = now(),
           next_attempt_at = now() + make_interval(secs => p_lease_ms / 1000.0)
     WHERE d.id = r.id;
    PERFORM set_config('kip.request_id', 'webhook-' || r.id, true),
            set_config('kip.remote_addr', '', true),
            set_config('kip.user_id', r.created_by::text, true),
            set_config('kip.organisation_id', r.organisation_id::text, true);
    PERFORM kip.audit('webhook.deliver', r.plan_id, 'webhook');
    RETURN NEXT;
  END LOOP;
END
$function$;

-- The outcome of one attempt: a 2xx answer is delivered; anything else is
-- retried after an exponential backoff with jitter (p_base_ms doubling per
-- attempt, capped at an hour, times a random factor between 0.5 and 1),
-- until p_window_s after the first attempt (or the last redelivery), when
-- the delivery is failed. A result for another attempt than the delivery's
-- current claim (its lease ran out and another kipd took it) changes
-- nothing. Returns the delivery's status, or 'stale'.
CREATE FUNCTION kip.webhook_result(p_delivery uuid, p_claim uuid, p_status integer, p_error text,
                                   p_base_ms integer, p_window_s integer)
 RETURNS text
 LANGUAGE plpgsql
AS $function$
DECLARE
  d kip.webhook_deliveries;
  v_wait interval;
BEGIN
  SELECT * INTO d FROM kip.webhook_deliveries WHERE id = p_delivery AND claim = p_claim FOR UPDATE;
  IF d.id IS NULL THEN
    RETURN 'stale';
  END IF;
  IF p_status BETWEEN 200 AND 299 THEN
    UPDATE kip.webhook_deliveries
       SET status = 'delivered', delivered_at = now(), claim = NULL, last_status = p_status,
           last_error = NULL
     WHERE id = d.id;
    RETURN 'delivered';
  END IF;
  IF now() >= d.retry_from + make_interval(secs => p_window_s) THEN
    UPDATE kip.webhook_deliveries
       SET status = 'failed', claim = NULL, last_status = p_status, last_error = left(p_error, 500)
     WHERE id = d.id;
    RETURN 'failed';
  END IF;
  v_wait := make_interval(secs => least(3600.0, p_base_ms / 1000.0 * power(2, least(d.attempts - 1, 30)))
                                  * (0.5 + random() / 2));
  UPDATE kip.webhook_deliveries
     SET next_attempt_at = least(now() + v_wait, d.retry_from + make_interval(secs => p_window_s)),
         claim = NULL, last_status = p_status, last_error = left(p_error, 500)
   WHERE id = d.id;
  RETURN 'pending';
END
$function$;

-- The caller manages webhooks: the integration role or an admin, for their
-- own organisation.
CREATE FUNCTION kip.require_webhook_manager(p_user kip.users)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  PERFORM kip.require_role(p_user, ARRAY['integration', 'admin'],
                           'only the integration role and admins manage webhooks');
END
$function$;

-- A live subscription of the caller's organisation, or 404.
CREATE FUNCTION kip.require_webhook(p_user kip.users, p_id uuid)
 RETURNS kip.webhooks
 LANGUAGE plpgsql
AS $function$
DECLARE
  w kip.webhooks;
BEGIN
  PERFORM kip.require_webhook_manager(p_user);
  SELECT * INTO w FROM kip.webhooks
   WHERE id = p_id AND organisation_id = p_user.organisation_id AND deleted_at IS NULL;
  IF w.id IS NULL THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such webhook');
  END IF;
  RETURN w;
END
$function$;

-- POST /v1/webhooks. The URL was checked by kipd against its outbound
-- policy (api/webhooks.c); the secret was made by kipd from 256 random bits
-- and is answered once, by kipd, never by this function.
CREATE FUNCTION kip_api.webhook_create(p_ctx jsonb, p_id uuid, p_secret text, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  w kip.webhooks;
  v_types text[] := '{}';
  v_type text;
  i integer := 0;
BEGIN
  PERFORM kip.require_webhook_manager(u);
  IF p_body->>'url' !~ '^https?://' THEN
    PERFORM kip.fail(422, 'invalid_url', 'url', 'must be an https URL');
  END IF;
  FOR v_type IN SELECT jsonb_array_elements_text(coalesce(p_body->'event_types', '[]'::jsonb)) LOOP
    IF v_type !~ '^[a-z_]+\.[a-z_]+$' THEN
      PERFORM kip.fail(422, 'invalid_format', 'event_types[' || i || ']',
                       'must be an event type such as action.assigned');
    END IF;
    IF NOT v_type = ANY (kip.event_types()) THEN
      PERFORM kip.fail(422, 'not_allowed_value', 'event_types[' || i || ']',
                       'not an event type kipd writes (docs/integration.md, "Events")');
    END IF;
    IF NOT v_type = ANY (v_types) THEN
      v_types := v_types || v_type;
    END IF;
    i := i + 1;
  END LOOP;
  INSERT INTO kip.webhooks (id, organisation_id, created_by, url, event_types, description, secret)
  VALUES (p_id, u.organisation_id, u.id, p_body->>'url', v_types, p_body->>'description', p_secret)
  RETURNING * INTO w;
  PERFORM kip.audit('webhook.create', NULL, 'webhook');
  RETURN kip.ok(kip.webhook_doc(w), 201, NULL, '/v1/webhooks/' || w.id);
END
$function$;

CREATE FUNCTION kip_api.webhook_list(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  c record := kip.cursor_ts_id(p_query);
  v_limit integer := kip.page_limit(p_query);
  v_items jsonb[];
  v_keys text[];
BEGIN
  PERFORM kip.require_webhook_manager(u);
  SELECT array_agg(kip.webhook_doc(w) ORDER BY w.created_at DESC, w.id DESC),
         array_agg(w.created_at::text || '|' || w.id ORDER BY w.created_at DESC, w.id DESC)
    INTO v_items, v_keys
    FROM (SELECT * FROM kip.webhooks w
           WHERE w.organisation_id = u.organisation_id AND w.deleted_at IS NULL
             AND (c.ts IS NULL OR (w.created_at, w.id) < (c.ts, c.id))
           ORDER BY w.created_at DESC, w.id DESC LIMIT v_limit + 1) w;
  PERFORM kip.audit('webhook.list', NULL, 'webhook');
  RETURN kip.ok(kip.page(v_items, v_keys, v_limit));
END
$function$;

-- DELETE /v1/webhooks/{id}: the subscription stops at once; its pending
-- deliveries are withheld.
CREATE FUNCTION kip_api.webhook_delete(p_ctx jsonb, p_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  w kip.webhooks := kip.require_webhook(u, p_id);
BEGIN
  UPDATE kip.webhooks SET deleted_at = now() WHERE id = w.id;
  UPDATE kip.webhook_deliveries
     SET status = 'withheld', claim = NULL, last_error = 'the subscription was deleted'
   WHERE webhook_id = w.id AND status = 'pending';
  PERFORM kip.audit('webhook.delete', NULL, 'webhook');
  RETURN kip.ok(NULL, 204);
END
$function$;

-- GET /v1/webhooks/{id}/deliveries: newest first; withheld deliveries are
-- not shown (their plan is no longer the subscriber's to know about).
CREATE FUNCTION kip_api.webhook_deliveries(p_ctx jsonb, p_id uuid, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  w kip.webhooks := kip.require_webhook(u, p_id);
  c record := kip.cursor_ts_id(p_query);
  v_limit integer := kip.page_limit(p_query);
  v_items jsonb[];
  v_keys text[];
BEGIN
  SELECT array_agg(kip.webhook_delivery_doc(x.del, x.kind) ORDER BY x.created_at DESC, x.id DESC),
         array_agg(x.created_at::text || '|' || x.id ORDER BY x.created_at DESC, x.id DESC)
    INTO v_items, v_keys
    FROM (SELECT d AS del, e.kind, d.created_at, d.id
            FROM kip.webhook_deliveries d JOIN kip.events e ON e.id = d.event_id
           WHERE d.webhook_id = w.id AND d.status <> 'withheld'
             AND (p_query->>'status' IS NULL OR d.status = p_query->>'status')
             AND (c.ts IS NULL OR (d.created_at, d.id) < (c.ts, c.id))
           ORDER BY d.created_at DESC, d.id DESC LIMIT v_limit + 1) x;
  PERFORM kip.audit('webhook.deliveries', NULL, 'webhook');
  RETURN kip.ok(kip.page(v_items, v_keys, v_limit));
END
$function$;

-- POST /v1/webhooks/{id}/deliveries/{delivery_id}/redeliver: the delivery
-- is pending again, due now, with a new retry window. The access rule is
-- applied again when it is sent.
CREATE FUNCTION kip_api.webhook_redeliver(p_ctx jsonb, p_id uuid, p_delivery_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  w kip.webhooks := kip.require_webhook(u, p_id);
  d kip.webhook_deliveries;
BEGIN
  UPDATE kip.webhook_deliveries
     SET status = 'pending', next_attempt_at = now(), retry_from = now(), claim = NULL,
         delivered_at = NULL
   WHERE id = p_delivery_id AND webhook_id = w.id AND status <> 'withheld'
  RETURNING * INTO d;
  IF d.id IS NULL THEN
    PERFORM kip.fail(404, NULL, NULL, 'no such delivery');
  END IF;
  PERFORM kip.audit('webhook.redeliver', NULL, 'webhook');
  RETURN kip.ok(kip.webhook_delivery_doc(d, (SELECT kind FROM kip.events WHERE id = d.event_id)), 202);
END
$function$;
