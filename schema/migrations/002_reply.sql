-- 002_reply: the reply type every kip_api function returns. (Until issue 11
-- this file also held the first functions; they now live in
-- schema/functions/.)

CREATE TYPE kip.reply AS (
  status    integer,   -- NULL: the route's default status
  body      jsonb,     -- NULL: no body
  etag      text,      -- the version, without quotes
  location  text,
  user_id   uuid
);
