-- 17_calendar.sql: The iCalendar feed and user settings
-- (daemon/api/calendar.c).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

CREATE FUNCTION kip_api.my_calendar(p_ctx jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  RETURN kip.ok(kip.calendar_doc(u, 'calendar.mine'));
END
$function$;

-- The secret feed URL: no bearer token. The key's SHA-256 names the feed;
-- an unknown, revoked or mismatched key, or an inactive user, is 404.
CREATE FUNCTION kip_api.calendar_feed(p_ctx jsonb, p_feed_id uuid, p_key_hash text)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
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
    PERFORM kip.fail(404, NULL, NULL, 'no such calendar feed');
  END IF;
  PERFORM set_config('kip.user_id', u.id::text, true),
          set_config('kip.organisation_id', u.organisation_id::text, true);
  IF f.last_used_at IS NULL OR f.last_used_at < now() - interval '1 minute' THEN
    UPDATE kip.calendar_feeds SET last_used_at = now() WHERE id = f.id;
  END IF;
  RETURN kip.ok(kip.calendar_doc(u, 'calendar.feed'));
END
$function$;

CREATE FUNCTION kip_api.calendar_feed_create(p_ctx jsonb, p_feed_id uuid, p_key_hash text)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  f kip.calendar_feeds;
BEGIN
  UPDATE kip.calendar_feeds SET revoked_at = now() WHERE user_id = u.id AND revoked_at IS NULL;
  INSERT INTO kip.calendar_feeds (id, user_id, key_hash) VALUES (p_feed_id, u.id, p_key_hash)
  RETURNING * INTO f;
  PERFORM kip.audit('create', NULL, 'calendar_feed');
  RETURN kip.ok(jsonb_build_object('id', f.id, 'created_at', f.created_at), 201, NULL,
                '/v1/calendar-feeds/' || f.id);
END
$function$;

CREATE FUNCTION kip_api.calendar_feed_delete(p_ctx jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  UPDATE kip.calendar_feeds SET revoked_at = now() WHERE user_id = u.id AND revoked_at IS NULL;
  PERFORM kip.audit('revoke', NULL, 'calendar_feed');
  RETURN kip.ok(NULL, 204);
END
$function$;

CREATE FUNCTION kip_api.my_settings(p_ctx jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  RETURN kip.ok(kip.settings_doc(u.id));
END
$function$;

CREATE FUNCTION kip_api.my_settings_patch(p_ctx jsonb, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
BEGIN
  INSERT INTO kip.user_settings (user_id, calendar_show_citizen_name)
  VALUES (u.id, coalesce((p_body->>'calendar_show_citizen_name')::boolean, false))
  ON CONFLICT (user_id) DO UPDATE
    SET calendar_show_citizen_name = coalesce((p_body->>'calendar_show_citizen_name')::boolean,
                                              kip.user_settings.calendar_show_citizen_name),
        updated_at = now();
  PERFORM kip.audit('update', NULL, 'settings');
  RETURN kip.ok(kip.settings_doc(u.id));
END
$function$;
