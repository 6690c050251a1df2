-- 008_access: write rights stricter than read rights, consent withdrawal
-- making a plan read-only outside its owning organisation, and an expired
-- consent review shown on the plan.
--
-- Reading stays kip.plan_access (002). Writing a plan needs, on top of it,
-- kip.plan_may_write:
--   * the owning organisation's coordinators (and its integration, which
--     acts for the organisation), or
--   * an active participant linked by user_id, from the owning organisation
--     or from an organisation the current consent covers.
-- A withdrawn consent covers nobody, so after a withdrawal only the owning
-- organisation can change the plan. Changing an action needs one more thing
-- (kip.action_may_write): being its responsible participant, the tovholder,
-- or the owning organisation's coordinator or integration.

CREATE FUNCTION kip.plan_may_write(p_user kip.users, p kip.plans) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT (p.owner_organisation_id = p_user.organisation_id
          AND p_user.roles && ARRAY['coordinator', 'integration'])
      OR (p_user.roles && ARRAY['coordinator', 'caseworker']
          AND EXISTS (SELECT 1 FROM kip.participants pa
                       WHERE pa.plan_id = p.id AND pa.user_id = p_user.id AND pa.left_at IS NULL)
          AND (p.owner_organisation_id = p_user.organisation_id
               OR kip.consent_covers(p.id, p_user.organisation_id)))
$$;

-- Load a plan the caller may see, or 404. p_write: the caller must also
-- have the right to change it (403: they know it exists) and the plan must
-- not be closed (409). Writes lock the plan row.
CREATE OR REPLACE FUNCTION kip.require_plan(p_user kip.users, p_plan_id uuid, p_write boolean DEFAULT false)
RETURNS kip.plans LANGUAGE plpgsql AS $$
DECLARE
  v_plan kip.plans;
BEGIN
  IF p_write THEN
    SELECT * INTO v_plan FROM kip.plans WHERE id = p_plan_id FOR UPDATE;
  ELSE
    SELECT * INTO v_plan FROM kip.plans WHERE id = p_plan_id;
  END IF;
  IF v_plan.id IS NULL OR NOT kip.plan_access(p_user.id, p_user.organisation_id, p_user.roles,
                                              v_plan.id, v_plan.owner_organisation_id) THEN
    PERFORM kip.fail(404, NULL, 'no such plan');
  END IF;
  IF p_write AND NOT kip.plan_may_write(p_user, v_plan) THEN
    PERFORM kip.fail(403, 'Authorization',
      CASE WHEN v_plan.owner_organisation_id <> p_user.organisation_id
                AND NOT kip.consent_covers(v_plan.id, p_user.organisation_id)
           THEN 'the consent is withdrawn: only the owning organisation may change this plan'
           ELSE 'only the plan''s participants and the owning organisation''s coordinators may change it'
      END);
  END IF;
  IF p_write AND v_plan.status = 'closed' THEN
    PERFORM kip.fail(409, 'status', 'the plan is closed and read-only');
  END IF;
  RETURN v_plan;
END
$$;

CREATE FUNCTION kip.action_may_write(p_user kip.users, p kip.plans, a kip.actions) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT (p.owner_organisation_id = p_user.organisation_id
          AND p_user.roles && ARRAY['coordinator', 'integration'])
      OR EXISTS (SELECT 1 FROM kip.participants pa
                  WHERE pa.user_id = p_user.id AND pa.left_at IS NULL
                    AND pa.id IN (p.coordinator_participant_id, a.responsible_participant_id))
$$;

-- Load an action through its plan's access rule; for a write, the caller
-- must be allowed to change the plan and this action.
CREATE OR REPLACE FUNCTION kip.require_action(p_user kip.users, p_id uuid, p_write boolean DEFAULT false,
                                              OUT a kip.actions, OUT p kip.plans)
LANGUAGE plpgsql AS $$
DECLARE
  v_plan uuid;
BEGIN
  SELECT plan_id INTO v_plan FROM kip.actions WHERE id = p_id;
  IF v_plan IS NULL THEN
    PERFORM kip.fail(404, NULL, 'no such action');
  END IF;
  p := kip.require_plan(p_user, v_plan, p_write);
  IF p_write THEN
    SELECT * INTO a FROM kip.actions WHERE id = p_id FOR UPDATE;
    IF NOT kip.action_may_write(p_user, p, a) THEN
      PERFORM kip.fail(403, 'Authorization',
        'only the responsible participant, the tovholder or the owning organisation''s coordinators may change an action');
    END IF;
  ELSE
    SELECT * INTO a FROM kip.actions WHERE id = p_id;
  END IF;
END
$$;

-- The consent as shown, with review_expired: the yearly review date has
-- passed (in Europe/Copenhagen) and the consent is not withdrawn. The daily
-- pass lists the same consents as consent.review_due events.
CREATE OR REPLACE FUNCTION kip.consent_doc(c kip.consents) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', c.id, 'kip_consent', c.kip_consent,
                            'contact_organisation_ids', to_jsonb(c.contact_organisation_ids),
                            'relatives_allowed', c.relatives_allowed, 'form', c.form,
                            'given_at', c.given_at, 'recorded_by', c.recorded_by,
                            'review_by', c.review_by, 'withdrawn_at', c.withdrawn_at,
                            'review_expired', c.withdrawn_at IS NULL AND c.review_by < kip.today())
$$;
