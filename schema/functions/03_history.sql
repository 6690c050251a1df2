-- 03_history.sql: The change history: the trigger that records every change
-- of a plan, its participants, consents, actions and meetings, and the page
-- reader. The triggers are attached here, next to their function.
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- The history trigger: each created or changed column becomes one history
-- row, named as the API names it (citizen_name -> citizen.name). CPR changes
-- are found by the blind index and recorded as masks.
CREATE FUNCTION kip.track_history()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_new jsonb := to_jsonb(NEW);
  v_old jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) ELSE '{}'::jsonb END;
  v_plan uuid := CASE WHEN TG_TABLE_NAME = 'plans' THEN (v_new->>'id')::uuid
                      ELSE (v_new->>'plan_id')::uuid END;
  v_key text;
  v_field text;
  v_before jsonb;
  v_after jsonb;
  v_cpr_maintenance boolean := coalesce(current_setting('kip.cpr_maintenance', true), '') = 'on';
BEGIN
  FOR v_key IN SELECT jsonb_object_keys(v_new) LOOP
    -- responsible_user_id: derived from the responsible participant (16_actions.sql).
    CONTINUE WHEN v_key IN ('id', 'plan_id', 'version', 'created_at', 'updated_at', 'created_by',
                            'superseded_at', 'responsible_user_id');
    v_before := v_old->v_key;
    v_after := v_new->v_key;
    CONTINUE WHEN TG_OP = 'INSERT' AND (v_after IS NULL OR v_after = 'null'::jsonb);
    CONTINUE WHEN v_before IS NOT DISTINCT FROM v_after;
    -- CPR numbers: the blind index says whether the number changed (the
    -- mask alone cannot), and the history shows the masks. The token is
    -- never recorded. Re-encryption (kipd at start-up, kipd --rotate-key)
    -- changes no citizen and records nothing.
    CONTINUE WHEN v_key IN ('citizen_cpr', 'citizen_cpr_enc');
    CONTINUE WHEN v_key = 'citizen_cpr_hmac' AND v_cpr_maintenance;
    IF v_key = 'citizen_cpr_hmac' THEN
      v_key := 'citizen_cpr';
      v_before := v_old->'citizen_cpr';
      v_after := v_new->'citizen_cpr';
    END IF;
    v_field := CASE
      WHEN v_key LIKE 'citizen\_%' THEN 'citizen.' || substr(v_key, 9)
      WHEN v_key = 'coordinator_participant_id' THEN 'coordinator'
      ELSE v_key END;
    IF v_key = 'citizen_cpr' THEN  -- masks already; cpr_mask() keeps it so
      v_before := to_jsonb(kip.cpr_mask(v_before #>> '{}'));
      v_after := to_jsonb(kip.cpr_mask(v_after #>> '{}'));
    END IF;
    INSERT INTO kip.history (plan_id, user_id, resource, resource_id, operation, field, before, after)
    VALUES (v_plan, kip.actor_id(), TG_ARGV[0], (v_new->>'id')::uuid,
            CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'update' END, v_field, v_before, v_after);
  END LOOP;
  RETURN NEW;
END
$function$;

-- One page of the field-level history of a plan, or of one resource in
-- it, oldest first. The cursor is the last id seen.
CREATE FUNCTION kip.history_page(p_plan_id uuid, p_resource text, p_resource_id uuid, p_query jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_limit integer := kip.page_limit(p_query);
  v_after bigint;
  v_items jsonb[];
  v_keys text[];
BEGIN
  BEGIN
    v_after := kip.cursor_decode(p_query->>'cursor')::bigint;
  EXCEPTION WHEN invalid_text_representation THEN
    PERFORM kip.fail(400, 'invalid_cursor', 'cursor', 'not a cursor from this list');
  END;
  SELECT array_agg(jsonb_build_object('id', h.id, 'at', h.at, 'user_id', h.user_id,
                                      'resource', h.resource, 'resource_id', h.resource_id,
                                      'operation', h.operation, 'field', h.field,
                                      'before', h.before, 'after', h.after) ORDER BY h.id),
         array_agg(h.id::text ORDER BY h.id)
    INTO v_items, v_keys
    FROM (SELECT * FROM kip.history h
           WHERE h.plan_id = p_plan_id
             AND (p_resource IS NULL OR (h.resource = p_resource AND h.resource_id = p_resource_id))
             AND (v_after IS NULL OR h.id > v_after)
           ORDER BY h.id LIMIT v_limit + 1) h;
  RETURN kip.page(v_items, v_keys, v_limit);
END
$function$;

-- Each table whose changes a plan's history shows. A trigger is code: it
-- lives here, beside its function, and is attached again whenever the
-- function files are applied.
CREATE TRIGGER actions_history AFTER INSERT OR UPDATE ON kip.actions FOR EACH ROW EXECUTE FUNCTION kip.track_history('action');
CREATE TRIGGER consents_history AFTER INSERT OR UPDATE ON kip.consents FOR EACH ROW EXECUTE FUNCTION kip.track_history('consent');
CREATE TRIGGER meeting_invitees_history AFTER INSERT OR UPDATE ON kip.meeting_invitees FOR EACH ROW EXECUTE FUNCTION kip.track_history('meeting_invitee');
CREATE TRIGGER meeting_outcomes_history AFTER INSERT OR UPDATE ON kip.meeting_outcomes FOR EACH ROW EXECUTE FUNCTION kip.track_history('meeting_outcome');
CREATE TRIGGER meetings_history AFTER INSERT OR UPDATE ON kip.meetings FOR EACH ROW EXECUTE FUNCTION kip.track_history('meeting');
CREATE TRIGGER participants_history AFTER INSERT OR UPDATE ON kip.participants FOR EACH ROW EXECUTE FUNCTION kip.track_history('participant');
CREATE TRIGGER plans_history AFTER INSERT OR UPDATE ON kip.plans FOR EACH ROW EXECUTE FUNCTION kip.track_history('plan');
