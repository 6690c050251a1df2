-- 14_consent.sql: The citizen's consent (daemon/api/consent.c).
--
-- Applied after the migrations, in file-name order, whenever the function
-- files change (docs/architecture.md, "Schema layout"). Each function here
-- is defined in this file and nowhere else.

-- kip.plan_contacts (migrations/028): one row per organisation that the
-- plan's live KIP consent (not superseded, not withdrawn) names as a
-- contact, with the plan's created_at, so the plan list reads the consent
-- branch of the access rule newest first. Rebuilt for the plan whenever one
-- of its consents is written (consent writes lock the plan row, so they come
-- one at a time), and moved when a plan's created_at changes.
CREATE FUNCTION kip.plan_contacts_sync()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_plan uuid;
BEGIN
  IF TG_TABLE_NAME = 'plans' THEN
    v_plan := NEW.id;
  ELSIF TG_OP = 'DELETE' THEN
    v_plan := OLD.plan_id;
  ELSE
    v_plan := NEW.plan_id;
  END IF;
  DELETE FROM kip.plan_contacts WHERE plan_id = v_plan;
  INSERT INTO kip.plan_contacts (organisation_id, plan_created_at, plan_id)
  SELECT DISTINCT o.id, p.created_at, p.id
    FROM kip.consents c
    JOIN kip.plans p ON p.id = c.plan_id
   CROSS JOIN LATERAL unnest(c.contact_organisation_ids) AS o(id)
   WHERE c.plan_id = v_plan AND c.superseded_at IS NULL AND c.withdrawn_at IS NULL AND c.kip_consent;
  RETURN NULL;
END
$function$;

CREATE TRIGGER consents_plan_contacts AFTER INSERT OR UPDATE OR DELETE ON kip.consents
  FOR EACH ROW EXECUTE FUNCTION kip.plan_contacts_sync();

CREATE TRIGGER plans_plan_contacts AFTER UPDATE OF created_at ON kip.plans
  FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at)
  EXECUTE FUNCTION kip.plan_contacts_sync();

CREATE FUNCTION kip_api.consent_record(p_ctx jsonb, p_plan_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  v_given timestamptz := (p_body->>'given_at')::timestamptz;
  v_orgs uuid[] := ARRAY(SELECT DISTINCT x::uuid
                           FROM jsonb_array_elements_text(coalesce(p_body->'contact_organisation_ids', '[]')) x);
  v_missing uuid;
  c kip.consents;
BEGIN
  PERFORM kip.require_steward(u, p, 'record the consent');
  PERFORM kip.check_version(p_ctx, p.version);
  IF v_given > now() + interval '5 minutes' THEN
    PERFORM kip.fail(422, 'in_future', 'given_at', 'lies in the future');
  END IF;
  SELECT x INTO v_missing FROM unnest(v_orgs) x
   WHERE NOT EXISTS (SELECT 1 FROM kip.organisations o WHERE o.id = x) LIMIT 1;
  IF v_missing IS NOT NULL THEN
    PERFORM kip.fail(422, 'not_found', 'contact_organisation_ids', format('no such organisation: %s', v_missing));
  END IF;
  IF p_body ? 'review_by' AND (p_body->>'review_by')::date < (v_given AT TIME ZONE 'Europe/Copenhagen')::date THEN
    PERFORM kip.fail(422, 'before_start', 'review_by', 'lies before given_at');
  END IF;
  UPDATE kip.consents SET superseded_at = now() WHERE plan_id = p.id AND superseded_at IS NULL;
  INSERT INTO kip.consents (plan_id, kip_consent, contact_organisation_ids, relatives_allowed, form,
                            given_at, recorded_by, review_by)
  VALUES (p.id, (p_body->>'kip_consent')::boolean, v_orgs,
          coalesce((p_body->>'relatives_allowed')::boolean, false), p_body->>'form', v_given, u.id,
          coalesce((p_body->>'review_by')::date,
                   ((v_given AT TIME ZONE 'Europe/Copenhagen') + interval '12 months')::date))
  RETURNING * INTO c;
  UPDATE kip.plans SET
    status = CASE WHEN c.kip_consent AND status IN ('draft', 'awaiting_consent') THEN 'active'
                  WHEN NOT c.kip_consent AND status = 'active' THEN 'awaiting_consent'
                  ELSE status END,
    version = version + 1, updated_at = now()
  WHERE id = p.id RETURNING * INTO p;
  -- consent.given when the citizen consents to the KIP, consent.refused when
  -- the record says they do not.
  PERFORM kip.emit(CASE WHEN c.kip_consent THEN 'consent.given' ELSE 'consent.refused' END, p.id, c.id,
                   jsonb_build_object('consent_id', c.id, 'kip_consent', c.kip_consent,
                                      'relatives_allowed', c.relatives_allowed,
                                      'contact_organisation_ids', to_jsonb(c.contact_organisation_ids),
                                      'form', c.form, 'given_at', c.given_at, 'review_by', c.review_by,
                                      'plan_status', p.status, 'plan_version', p.version));
  PERFORM kip.audit('create', p.id, 'consent');
  RETURN kip.ok_json(kip.consent_doc(c), 201, NULL, '/v1/plans/' || p.id || '/consent');
END
$function$;

CREATE FUNCTION kip_api.consent_withdraw(p_ctx jsonb, p_plan_id uuid, p_body jsonb)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id, true);
  c kip.consents;
  pa kip.participants;
  v_gone uuid[] := '{}';
  v_needs uuid[];
BEGIN
  PERFORM kip.require_steward(u, p, 'withdraw the consent');
  PERFORM kip.check_version(p_ctx, p.version);
  SELECT * INTO c FROM kip.consents WHERE plan_id = p.id AND superseded_at IS NULL FOR UPDATE;
  IF c.id IS NULL THEN
    PERFORM kip.fail(404, NULL, NULL, 'no consent is recorded for this plan');
  END IF;
  IF c.withdrawn_at IS NOT NULL THEN
    PERFORM kip.fail(409, 'already_withdrawn', 'consent.withdrawn_at', 'the consent is already withdrawn');
  END IF;
  UPDATE kip.consents SET withdrawn_at = now(), withdraw_note = p_body->>'note'
   WHERE id = c.id RETURNING * INTO c;
  UPDATE kip.plans SET status = CASE WHEN status = 'active' THEN 'awaiting_consent' ELSE status END,
                       version = version + 1, updated_at = now()
   WHERE id = p.id RETURNING * INTO p;
  PERFORM kip.emit('consent.withdrawn', p.id, c.id,
                   jsonb_build_object('consent_id', c.id, 'withdrawn_at', c.withdrawn_at,
                                      'plan_status', p.status, 'plan_version', p.version));
  -- Participants of organisations that lost access leave the plan (the
  -- tovholder stays until handed over), each with its participant.left
  -- event; their invitations to planned meetings end with it. Their open
  -- actions need a new responsible: answered here, and raised daily to the
  -- tovholder (kip.daily_pass, action.needs_responsible) until re-assigned.
  FOR pa IN
    UPDATE kip.participants SET left_at = now()
     WHERE plan_id = p.id AND left_at IS NULL AND kind = 'professional'
       AND organisation_id IS NOT NULL AND organisation_id <> p.owner_organisation_id
       AND id IS DISTINCT FROM p.coordinator_participant_id
    RETURNING *
  LOOP
    v_gone := v_gone || pa.id;
    PERFORM kip.emit('participant.left', p.id, pa.id,
                     jsonb_build_object('participant_id', pa.id, 'left_at', pa.left_at,
                                        'reassigned_to', NULL, 'reassigned_action_ids', '[]'::jsonb));
  END LOOP;
  WITH uninvited AS (
    DELETE FROM kip.meeting_invitees i USING kip.meetings m
     WHERE m.id = i.meeting_id AND m.plan_id = p.id AND m.status = 'planned'
       AND i.participant_id = ANY (v_gone)
    RETURNING i.meeting_id)
  UPDATE kip.meetings SET version = version + 1, updated_at = now()
   WHERE id IN (SELECT meeting_id FROM uninvited);
  SELECT coalesce(array_agg(a.id ORDER BY a.created_at, a.id), '{}') INTO v_needs
    FROM kip.actions a
   WHERE a.plan_id = p.id AND a.responsible_participant_id = ANY (v_gone)
     AND a.status IN ('open', 'in_progress');
  PERFORM kip.audit('withdraw', p.id, 'consent');
  IF cardinality(v_gone) > 0 THEN
    PERFORM kip.audit('leave', p.id, 'participant');
  END IF;
  RETURN kip.ok_json((kip.consent_doc(c)::jsonb || jsonb_build_object('needs_responsible', to_jsonb(v_needs)))::json);
END
$function$;

CREATE FUNCTION kip_api.consent_get(p_ctx jsonb, p_plan_id uuid)
 RETURNS kip.reply
 LANGUAGE plpgsql
AS $function$
DECLARE
  u kip.users := kip.begin_request(p_ctx);
  p kip.plans := kip.require_plan(u, p_plan_id);
  c kip.consents;
BEGIN
  SELECT * INTO c FROM kip.consents WHERE plan_id = p.id AND superseded_at IS NULL;
  IF c.id IS NULL THEN
    PERFORM kip.fail(404, NULL, NULL, 'no consent is recorded for this plan');
  END IF;
  PERFORM kip.audit('read', p.id, 'consent');
  RETURN kip.ok_json(kip.consent_doc(c));
END
$function$;
