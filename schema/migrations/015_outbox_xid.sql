-- 015_outbox_xid: each event records the transaction that wrote it, so a
-- reader can tell which events are final. Ids come from a sequence when the
-- row is written, but transactions commit in another order: an event with a
-- lower id can become visible after one with a higher id. Every transaction
-- whose id (xid) lies below the oldest one still running has ended, so the
-- events written by those never change; kip.events_after()
-- (schema/functions/05_outbox.sql) pages them in (xid, id) order and never
-- skips one that commits late. Rows written before this migration all get
-- this migration's xid, which is below every later one.
ALTER TABLE kip.events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_xid ON kip.events (xid, id);
