-- 05_outbox.sql: the outbox (kip.events, migrations/004 and 014) as the
-- integrations see it: one envelope per event, written in the transaction
-- of the change it records, and read in the order of those transactions.
--
-- No trigger NOTIFYs here: a NOTIFY in the writing transaction makes its
-- commit take PostgreSQL's database-wide notify lock and hold it through the
-- WAL flush, so every write that records an event would commit one at a
-- time (issue 12). kipd itself sends NOTIFY kip_events, with no payload, on
-- its LISTEN connection after every write request that succeeded
-- (daemon/app/events.c, events_changed). A change written by something else
-- (psql) is not announced; the live streams find it at their next fetch.
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- The envelope every consumer receives (webhooks, GET /v1/events): the id as
-- a string (it is an opaque, increasing cursor), the type, the time, the
-- plan and the resource, and the minimal payload (ids and statuses, never a
-- name or a CPR number).
CREATE FUNCTION kip.event_json(e kip.events)
 RETURNS json
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT json_build_object(
    'id', e.id::text,
    'type', e.kind,
    'occurred_at', e.at,
    'plan_id', e.plan_id,
    'resource_id', e.resource_id,
    'data', e.payload)
$function$;

-- Record one event in the outbox, in the caller's transaction, so it commits
-- and rolls back with the change it records. The family functions
-- (schema/functions/1x_*.sql) call it for every change a subscriber cares
-- about; docs/integration.md, "Events", lists the types and their payloads.
--
-- p_payload is minimal: ids, statuses, versions, dates and field names, never
-- a name, a free text, a phone number, an e-mail address or a CPR number.
-- p_dedupe_key says what makes the event once (the daily pass uses the due
-- date); without it the event is unique by its own id, since an ordinary
-- change happens once.
--
-- Returns the new event's id.
CREATE FUNCTION kip.emit(p_kind text, p_plan_id uuid, p_resource_id uuid, p_payload jsonb,
                         p_dedupe_key text DEFAULT NULL)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
DECLARE
  -- The sequence of kip.events.id (bigserial, migrations/004), by name: a
  -- pg_get_serial_sequence() would look it up in the catalog at every call.
  v_id bigint := nextval('kip.events_id_seq'::regclass);
BEGIN
  INSERT INTO kip.events (id, kind, plan_id, resource_id, dedupe_key, payload)
  VALUES (v_id, p_kind, p_plan_id, p_resource_id,
          coalesce(p_dedupe_key, p_kind || ':' || coalesce(p_resource_id::text, '-') || ':e' || v_id),
          coalesce(p_payload, '{}'));
  RETURN v_id;
END
$function$;

-- The names of the members of p_body that are among p_known, sorted: the
-- fields a PATCH changed, as an event's payload lists them ("fields"). Only
-- names, never values.
-- PL/pgSQL, so its statement is planned once per session (an SQL function
-- with a FROM is never inlined, and was planned again on every PATCH).
CREATE FUNCTION kip.event_fields(p_body jsonb, p_known text[], p_prefix text DEFAULT '')
 RETURNS jsonb
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
BEGIN
  RETURN (SELECT coalesce(jsonb_agg(p_prefix || k ORDER BY k), '[]'::jsonb)
            FROM jsonb_object_keys(CASE WHEN jsonb_typeof(p_body) = 'object' THEN p_body ELSE '{}' END) k
           WHERE k = ANY (p_known));
END
$function$;

-- The events after the one with id p_after (0 or NULL: from the start), at
-- most p_limit, in the order a consumer must take them so that none is ever
-- skipped: by (xid, id), and only those whose transaction lies below the
-- oldest transaction still running (migrations/015). An event whose
-- transaction commits late is therefore returned after the events already
-- handed out, never before them; an event of a transaction that began
-- before a still running one waits until that one ends. Resuming from an
-- id (Last-Event-ID, a webhook cursor) finds its place by that event's xid;
-- an id that no event has (a rolled-back one) resumes with the higher ids.
CREATE FUNCTION kip.events_after(p_after bigint, p_limit integer DEFAULT 100,
                                 p_horizon xid8 DEFAULT NULL)
 RETURNS SETOF kip.events
 LANGUAGE plpgsql
 STABLE
AS $function$
DECLARE
  -- p_horizon: a caller that must know which events were held back (the
  -- live stream, kip_api.events_fetch) takes the horizon once and passes it.
  v_horizon xid8 := coalesce(p_horizon, pg_snapshot_xmin(pg_current_snapshot()));
  c kip.events;
BEGIN
  IF coalesce(p_after, 0) > 0 THEN
    SELECT * INTO c FROM kip.events WHERE id = p_after;
  END IF;
  IF c.id IS NOT NULL THEN
    RETURN QUERY SELECT * FROM kip.events e
                  WHERE e.xid < v_horizon AND (e.xid, e.id) > (c.xid, c.id)
                  ORDER BY e.xid, e.id LIMIT p_limit;
  ELSE
    RETURN QUERY SELECT * FROM kip.events e
                  WHERE e.xid < v_horizon AND e.id > coalesce(p_after, 0)
                  ORDER BY e.xid, e.id LIMIT p_limit;
  END IF;
END
$function$;

-- Every event type kipd writes: what a webhook subscription may name
-- (POST /v1/webhooks, event_types). test_outbox.py checks that this list,
-- the openapi enum of Event.type and docs/integration.md's table agree.
CREATE FUNCTION kip.event_types()
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT ARRAY[
    'plan.created',
    'plan.changed',
    'plan.closed',
    'plan.coordinator_changed',
    'plan.follow_up_due',
    'consent.given',
    'consent.refused',
    'consent.withdrawn',
    'consent.review_due',
    'participant.added',
    'participant.changed',
    'participant.left',
    'meeting.scheduled',
    'meeting.changed',
    'meeting.rescheduled',
    'meeting.invitee_responded',
    'meeting.held',
    'meeting.cancelled',
    'meeting.outcome_overdue',
    'action.created',
    'action.changed',
    'action.assigned',
    'action.started',
    'action.completed',
    'action.reopened',
    'action.cancelled',
    'action.overdue',
    'action.needs_responsible']
$function$;
