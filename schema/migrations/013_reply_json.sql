-- 013_reply_json: a reply's body is json, not jsonb (issue 12). The read
-- documents are built with json_build_object/json_agg, which keep the keys
-- in the order written (id, version, status, ...) and are not re-parsed at
-- every nesting level; kipd sends the text as it comes.
ALTER TYPE kip.reply ALTER ATTRIBUTE body TYPE json;
