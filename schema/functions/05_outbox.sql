-- 05_outbox.sql: the outbox (kip.events, migrations/004 and 014) as the
-- integrations see it: one envelope per event, and the notification that a
-- new one is committed.
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

-- NOTIFY kip_events '<id>' for every new event. PostgreSQL delivers it when
-- the writing transaction commits, and never for one rolled back, so a
-- listener learns of exactly the committed events. The payload is only the
-- id: listeners read the event itself from the outbox, under the access rule.
CREATE FUNCTION kip.events_notify()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  PERFORM pg_notify('kip_events', NEW.id::text);
  RETURN NULL;
END;
$function$;

CREATE TRIGGER events_notify AFTER INSERT ON kip.events
  FOR EACH ROW EXECUTE FUNCTION kip.events_notify();
