-- 22_events.sql: the live event stream, GET /v1/events (daemon/api/events.c,
-- daemon/app/events.c; docs/events-stream.md).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- May this user see this event on the stream? A plan's event under the one
-- access rule (kip.plan_access, checked now, so a consent withdrawal stops
-- the events at once); an event without a plan (none exists today; kinds
-- about accounts or subscriptions may come) only to admins, who manage those
-- things and see no plan.
CREATE FUNCTION kip.event_visible(u kip.users, p_plan_id uuid, p_owner uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT CASE
    WHEN p_plan_id IS NULL THEN 'admin' = ANY (u.roles)
    WHEN p_owner IS NULL THEN false
    ELSE kip.plan_access(u.id, u.organisation_id, u.roles, p_plan_id, p_owner)
  END
$function$;

-- GET /v1/events, once when the stream opens: authenticates the caller and
-- writes one audit row, events.stream (not one per event: an event holds
-- ids and statuses only, docs/audit.md). Answers where the stream starts:
-- after Last-Event-ID (kipd puts the header into the query as last_event_id)
-- or else ?after= (both checked by kipd to be digits), or, without either,
-- after the newest event, so that only new events follow.
CREATE FUNCTION kip_api.events_open(p_ctx jsonb, p_query jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  v_after bigint;
BEGIN
  IF p_query ? 'last_event_id' THEN
    v_after := (p_query->>'last_event_id')::bigint;
  ELSIF p_query ? 'after' THEN
    v_after := (p_query->>'after')::bigint;
  ELSE
    -- The newest event in the outbox's order among those already final
    -- (kip.events_after): what commits from now on, or was still running,
    -- comes after it.
    SELECT coalesce((SELECT id FROM kip.events
                      WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
                      ORDER BY xid DESC, id DESC LIMIT 1), 0)
      INTO v_after;
  END IF;
  PERFORM kip.audit('events.stream', NULL, 'events');
  RETURN kip.ok(jsonb_build_object('after', v_after::text));
END
$function$;

-- The events after p_after that this stream's user may see, at most
-- p_limit scanned, in the outbox's order (kip.events_after: by transaction,
-- and only from transactions that have ended, so an event that commits late
-- is never skipped). Called by kipd for each open stream when a NOTIFY
-- kip_events arrives (and after the LISTEN connection came back).
-- It authenticates the stream's credential every time (a revoked token, a
-- signed-out or expired session: 401, and kipd ends the stream); with
-- "passive" in the context a session's idle clock is not pushed on, since
-- an event is not the user's activity. Writes no audit row.
--
-- Body: {"events": [envelope, ...], "next": "<id>", "hold": bool, "more": bool}.
--   more: p_limit events were scanned; there may be more right away;
--   next: the stream's new position (the last event scanned, seen or not);
--   hold: committed events wait behind a transaction still running (they
--         are handed out once it ends, in its order); kipd asks again
--         shortly, since that transaction may write no event to notify.
CREATE FUNCTION kip_api.events_fetch(p_ctx jsonb, p_after bigint, p_limit integer)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  -- p_limit: kipd sends 1..1000.
  v_horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
  v_next bigint := p_after;
  v_hold boolean := false;
  v_events json[] := '{}';
  v_scanned integer := 0;
  r record;
BEGIN
  FOR r IN
    SELECT ev AS e, p.owner_organisation_id AS owner
      FROM kip.events_after(p_after, p_limit, v_horizon) ev
      LEFT JOIN kip.plans p ON p.id = ev.plan_id
     ORDER BY ev.xid, ev.id
  LOOP
    v_scanned := v_scanned + 1;
    v_next := (r.e).id;
    IF kip.event_visible(u, (r.e).plan_id, r.owner) THEN
      v_events := v_events || kip.event_json(r.e);
    END IF;
  END LOOP;
  IF v_scanned < p_limit THEN
    v_hold := EXISTS (SELECT 1 FROM kip.events e WHERE e.xid >= v_horizon);
  END IF;
  RETURN kip.ok_json(json_build_object('events', to_json(v_events), 'next', v_next::text,
                                       'hold', v_hold, 'more', v_scanned >= p_limit));
END
$function$;
