-- 014_outbox: kip.events becomes the outbox that webhooks and the live event
-- stream deliver (issue 14). Each event is written in the transaction of the
-- change it records; the trigger in functions/05_outbox.sql announces it on
-- the channel kip_events when that transaction commits.
--
-- Readers page the outbox by id; consumers that filter by kind or time use
-- this index.
CREATE INDEX events_at ON kip.events (at, id);
